/*
 * analytics_common.c: what the analytics operators share: adding a node that owns its config,
 * and the bad-record policy.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "analytics_int.h"

/* Bytes of a bad record quoted in its error message. */
#define BAD_RECORD_HEAD 60

int weir__add_owned_operator(weir_job *job, int upstream, const char *name, const weir_operator *op,
                             void *owned, void (*owned_free)(void *), bool key_by,
                             bool wm_generator, int *id) {
  int node, rc;

  rc = weir_job_add_operator(job, upstream, name, op, owned, &node);
  if (rc != 0) {
    if (owned_free != NULL)
      owned_free(owned);
    else
      free(owned);
    return rc;
  }
  job->nodes[node].owned_data = owned;
  job->nodes[node].owned_free = owned_free;
  job->nodes[node].key_by = key_by;
  job->nodes[node].wm_generator = wm_generator;
  if (id != NULL)
    *id = node;
  return 0;
}

int weir__bad_record(weir_ctx *ctx, weir_bad_record_policy policy, weir_metric *counter,
                     const weir_record *r, const char *why) {
  /* The record's head, with bytes that are not printable ASCII written as \xNN: a bad record
   * may hold anything (invalid UTF-8, control bytes, NUL) and the message goes to logs. */
  char head[BAD_RECORD_HEAD * 4 + 1];
  size_t n = 0;

  if (policy == WEIR_BAD_RECORD_DROP) {
    weir_metric_add(counter, 1);
    return 0;
  }
  for (size_t i = 0; i < r->value.len && i < BAD_RECORD_HEAD; i++) {
    uint8_t c = r->value.ptr[i];

    if (c >= 0x20 && c < 0x7f)
      head[n++] = (char)c;
    else
      n += (size_t)snprintf(head + n, sizeof(head) - n, "\\x%02x", c);
  }
  head[n] = '\0';
  weir_ctx_set_error(ctx, "%s: record at offset %" PRIu64 "%s%.*s: '%s'", why, r->offset,
                     r->meta.len ? " of " : "", (int)(r->meta.len > 200 ? 200 : r->meta.len),
                     (const char *)r->meta.ptr, head);
  return WEIR_EPARSE;
}

weir_metric *weir__bad_record_metric(weir_ctx *ctx) {
  weir_metric *m = NULL;

  if (weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, WEIR__BAD_RECORDS_METRIC,
                      "Records dropped because they could not be used (bad JSON, missing field)",
                      NULL, &m) != 0)
    return NULL;
  return m;
}
