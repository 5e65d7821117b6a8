/* ckpt_inspect.c: listing and describing the checkpoints of a directory, for people and tools. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_store_int.h"
#include "log_int.h"
#include "proto/checkpoint.pb-c.h"
#include "weir/checkpoint.h"

/* Opens an existing store only: inspection never creates a directory. */
static int open_existing(const char *dir, struct weir__ckpt_store **s) {
  char path[4096];
  struct stat st;

  if (dir == NULL)
    return WEIR_EINVAL;
  if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >= sizeof(path))
    return WEIR_ETOOBIG;
  if (stat(path, &st) != 0) {
    WEIR_LOG_ERR("checkpoints: no checkpoint store in %s", dir);
    return WEIR_ENOTFOUND;
  }
  return weir__ckpt_store_open(dir, NULL, s);
}

static uint64_t total_bytes(const Weir__Ckpt__CheckpointMetadata *m) {
  uint64_t sum = 0;
  size_t i, j;

  for (i = 0; i < m->n_operators; i++)
    for (j = 0; j < m->operators[i]->n_subtask_state_bytes; j++)
      sum += m->operators[i]->subtask_state_bytes[j];
  return sum;
}

int weir_checkpoint_list(const char *dir, weir_checkpoint_info **infos, size_t *n) {
  struct weir__ckpt_store *s = NULL;
  struct weir__ckpt_info *all = NULL;
  weir_checkpoint_info *out = NULL;
  size_t n_all = 0, i, k = 0;
  int rc;

  if (infos == NULL || n == NULL)
    return WEIR_EINVAL;
  if ((rc = open_existing(dir, &s)) != 0)
    return rc;
  if ((rc = weir__ckpt_store_list(s, &all, &n_all)) != 0)
    goto out;
  if ((out = calloc(n_all + 1, sizeof(*out))) == NULL) {
    rc = WEIR_ENOMEM;
    goto out;
  }
  for (i = 0; i < n_all; i++) {
    Weir__Ckpt__CheckpointMetadata *m = NULL;

    if (!all[i].complete)
      continue;
    if ((rc = weir__ckpt_store_read_meta(s, all[i].id, &m)) != 0) {
      WEIR_LOG_ERR("checkpoints in %s: %s", dir, weir__ckpt_store_last_error());
      goto out;
    }
    out[k].id = all[i].id;
    out[k].start_ms = m->start_time_ms;
    out[k].end_ms = m->end_time_ms;
    out[k].state_bytes = total_bytes(m);
    out[k].operators = m->n_operators;
    k++;
    weir__ckpt_meta_free(m);
  }
  *infos = out;
  *n = k;
  out = NULL;
out:
  free(out);
  free(all);
  weir__ckpt_store_close(s);
  return rc;
}

/* A bounded text buffer: appends past the bound are cut off (the text stays terminated). */
struct text {
  char *p;
  size_t len;
  size_t cap;
};

static void put(struct text *t, const char *fmt, ...) WEIR_PRINTF(2, 3);

static void put(struct text *t, const char *fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  if (n > 0)
    t->len = (size_t)n < t->cap - t->len ? t->len + (size_t)n : t->cap - 1;
}

/* Bound on a description: enough for hundreds of operators and subtasks. */
#define WEIR_DESCRIBE_MAX (1u << 20)

int weir_checkpoint_describe(const char *dir, uint64_t id, char **text) {
  struct weir__ckpt_store *s = NULL;
  Weir__Ckpt__CheckpointMetadata *m = NULL;
  struct text t = {NULL, 0, WEIR_DESCRIBE_MAX};
  size_t i, j;
  int rc;

  if (text == NULL)
    return WEIR_EINVAL;
  if ((rc = open_existing(dir, &s)) != 0)
    return rc;
  if (id == 0 && (rc = weir__ckpt_store_latest(s, &id)) != 0)
    goto out;
  if ((rc = weir__ckpt_store_read_meta(s, id, &m)) != 0) {
    WEIR_LOG_ERR("checkpoint %" PRIu64 " in %s: %s", id, dir, weir__ckpt_store_last_error());
    goto out;
  }
  if ((t.p = malloc(t.cap)) == NULL) {
    rc = WEIR_ENOMEM;
    goto out;
  }
  t.p[0] = '\0';
  put(&t,
      "checkpoint %" PRIu64 "\njob: %s\nstarted: %" PRId64 " ms since epoch\n"
      "duration: %" PRId64 " ms\nmax parallelism: %u\nstate bytes: %" PRIu64 "\n",
      m->checkpoint_id, m->job_name, m->start_time_ms, m->end_time_ms - m->start_time_ms,
      m->max_parallelism, total_bytes(m));
  for (i = 0; i < m->n_operators; i++) {
    const Weir__Ckpt__OperatorInfo *o = m->operators[i];

    put(&t, "operator %s: parallelism %u, keys %" PRIu64 ", bytes per subtask:", o->uid,
        o->parallelism, o->key_count);
    for (j = 0; j < o->n_subtask_state_bytes; j++)
      put(&t, " %" PRIu64, o->subtask_state_bytes[j]);
    put(&t, "\n");
  }
  for (i = 0; i < m->n_sources; i++) {
    const Weir__Ckpt__SourcePosition *sp = m->sources[i];

    put(&t, "source %s subtask %u position ", sp->uid, sp->subtask);
    for (j = 0; j < sp->position.len && j < 64; j++)
      put(&t, "%02x", sp->position.data[j]);
    put(&t, "%s%s%s\n", sp->position.len > 64 ? "..." : "", sp->description[0] ? " " : "",
        sp->description);
  }
  *text = t.p;
  t.p = NULL;
out:
  free(t.p);
  weir__ckpt_meta_free(m);
  weir__ckpt_store_close(s);
  return rc;
}
