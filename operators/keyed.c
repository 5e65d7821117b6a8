/*
 * keyed.c: the built-in keyed aggregates on weir's keyed state: a running count and a running
 * sum per key. Each input record updates its key's aggregate and emits the new value (an
 * update stream, like a Flink keyed reduce): key = the record's key, value = the aggregate in
 * decimal, timestamp and metadata of the input record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/job_int.h"
#include "weir/state.h"

enum agg_kind { AGG_COUNT, AGG_SUM };

struct agg {
  enum agg_kind kind;
  weir_value_state *st;
};

static int agg_open(weir_ctx *ctx, void *data, void **inst) {
  struct agg *a = calloc(1, sizeof(*a));

  if (a == NULL)
    return WEIR_ENOMEM;
  a->kind = (enum agg_kind)(intptr_t)data;
  *inst = a;
  return weir_ctx_value_state(ctx, a->kind == AGG_COUNT ? "count" : "sum", &a->st);
}

/* Parses a decimal int64 (optional sign, optional surrounding blanks). */
static int parse_i64(weir_buf v, int64_t *out) {
  char buf[32];
  char *end;
  long long x;

  if (v.len == 0 || v.len >= sizeof(buf))
    return WEIR_EPARSE;
  memcpy(buf, v.ptr, v.len);
  buf[v.len] = '\0';
  errno = 0;
  x = strtoll(buf, &end, 10);
  while (*end == ' ' || *end == '\t' || *end == '\r')
    end++;
  if (errno != 0 || end == buf || *end != '\0')
    return WEIR_EPARSE;
  *out = x;
  return 0;
}

static int agg_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct agg *a = inst;
  char num[24];
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    weir_record out = *r;
    int64_t acc = 0, add = 1;
    weir_buf cur;

    if (a->kind == AGG_SUM && parse_i64(r->value, &add) != 0) {
      weir_ctx_set_error(ctx,
                         "record at offset %" PRIu64 "%s%.*s: value '%.*s' is not a decimal "
                         "integer",
                         r->offset, r->meta.len ? " of " : "", (int)r->meta.len,
                         (const char *)r->meta.ptr, (int)(r->value.len > 40 ? 40 : r->value.len),
                         (const char *)r->value.ptr);
      return WEIR_EPARSE;
    }
    rc = weir_value_state_get(a->st, r->key, &cur);
    if (rc == 0 && cur.len == sizeof(acc))
      memcpy(&acc, cur.ptr, sizeof(acc));
    else if (rc != 0 && rc != WEIR_ENOTFOUND)
      return rc;
    acc += add;
    if ((rc = weir_value_state_put(a->st, r->key,
                                   (weir_buf){(const uint8_t *)&acc, sizeof(acc)})) != 0)
      return rc;
    out.value.ptr = (const uint8_t *)num;
    out.value.len = (size_t)snprintf(num, sizeof(num), "%" PRId64, acc);
    if ((rc = weir_emit(ctx, &out)) != 0)
      return rc;
  }
  return 0;
}

static void agg_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static int add_agg(weir_job *job, int upstream, const char *name, enum agg_kind kind, int *id) {
  weir_operator op = {0};

  op.open = agg_open;
  op.process = agg_process;
  op.close = agg_close;
  return weir_job_add_operator(job, upstream, name, &op, (void *)(intptr_t)kind, id);
}

int weir_job_keyed_count(weir_job *job, int upstream, const char *name, int *id) {
  return add_agg(job, upstream, name, AGG_COUNT, id);
}

int weir_job_keyed_sum(weir_job *job, int upstream, const char *name, int *id) {
  return add_agg(job, upstream, name, AGG_SUM, id);
}
