/*
 * basic.c: the stateless per-record operators (map, filter, flat_map, key_by), each a
 * weir_operator whose process loop calls a user function per record.
 */
#include <stdlib.h>

#include "../runtime/job_int.h"

/* Node data of a convenience operator: owned by the node (freed with the job). */
struct fn_op {
  union {
    weir_map_fn map;
    weir_filter_fn filter;
    weir_flat_map_fn flat_map;
    weir_key_fn key;
  } fn;
  void *data; /* the user's, borrowed */
};

static int map_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct fn_op *f = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    weir_record out = recs[i];

    if ((rc = f->fn.map(ctx, f->data, &recs[i], &out)) < 0)
      return rc;
    if ((rc = weir_emit(ctx, &out)) != 0)
      return rc;
  }
  return 0;
}

static int filter_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct fn_op *f = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    rc = f->fn.filter(f->data, &recs[i]);
    if (rc < 0)
      return rc;
    if (rc > 0 && (rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  }
  return 0;
}

static int flat_map_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct fn_op *f = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++)
    if ((rc = f->fn.flat_map(ctx, f->data, &recs[i])) < 0)
      return rc;
  return 0;
}

static int key_by_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct fn_op *f = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    weir_record out = recs[i];

    if ((rc = f->fn.key(ctx, f->data, &recs[i], &out.key)) < 0)
      return rc;
    if ((rc = weir_emit(ctx, &out)) != 0)
      return rc;
  }
  return 0;
}

static int add_fn_op(weir_job *job, int upstream, const char *name,
                     int (*process)(weir_ctx *, void *, const weir_record *, size_t),
                     struct fn_op *f, bool key_by, int *id) {
  weir_operator op = {0};
  int node, rc;

  op.process = process;
  rc = weir_job_add_operator(job, upstream, name, &op, f, &node);
  if (rc != 0) {
    free(f);
    return rc;
  }
  job->nodes[node].owned_data = f;
  job->nodes[node].key_by = key_by;
  if (id != NULL)
    *id = node;
  return 0;
}

int weir_job_map(weir_job *job, int upstream, const char *name, weir_map_fn fn, void *data,
                 int *id) {
  struct fn_op *f;

  if (job == NULL || fn == NULL)
    return WEIR_EINVAL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return WEIR_ENOMEM;
  f->fn.map = fn;
  f->data = data;
  return add_fn_op(job, upstream, name, map_process, f, false, id);
}

int weir_job_filter(weir_job *job, int upstream, const char *name, weir_filter_fn fn, void *data,
                    int *id) {
  struct fn_op *f;

  if (job == NULL || fn == NULL)
    return WEIR_EINVAL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return WEIR_ENOMEM;
  f->fn.filter = fn;
  f->data = data;
  return add_fn_op(job, upstream, name, filter_process, f, false, id);
}

int weir_job_flat_map(weir_job *job, int upstream, const char *name, weir_flat_map_fn fn,
                      void *data, int *id) {
  struct fn_op *f;

  if (job == NULL || fn == NULL)
    return WEIR_EINVAL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return WEIR_ENOMEM;
  f->fn.flat_map = fn;
  f->data = data;
  return add_fn_op(job, upstream, name, flat_map_process, f, false, id);
}

int weir_job_key_by(weir_job *job, int upstream, const char *name, weir_key_fn fn, void *data,
                    int *id) {
  struct fn_op *f;

  if (job == NULL || fn == NULL)
    return WEIR_EINVAL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return WEIR_ENOMEM;
  f->fn.key = fn;
  f->data = data;
  return add_fn_op(job, upstream, name, key_by_process, f, true, id);
}
