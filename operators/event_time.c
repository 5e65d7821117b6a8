/*
 * event_time.c: the timestamp assigner and bounded-out-of-orderness watermark generator
 * (weir_job_assign_timestamps). It is a watermark generator node (job_int.h): watermarks and
 * idle status from upstream stop here; it emits its own, and declares itself idle after
 * idle_timeout_ms of processing time without records.
 *
 * Its state is the largest timestamp seen (8 bytes per subtask, list state semantics), so a
 * restored job resumes with the watermark it had and decides lateness as the uninterrupted
 * run did; the watermark is re-sent before the first record after a restore.
 */
#include <stdlib.h>
#include <string.h>

#include "analytics_int.h"
#include "json_int.h"

struct ts_op {
  weir_watermark_config cfg;
  char *json_field; /* owned copy */
  struct weir__json_path path;
};

struct ts_inst {
  const struct ts_op *op;
  weir_metric *bad;
  int64_t max_ts;      /* largest timestamp seen; INT64_MIN = none */
  int64_t last_rec_ms; /* monotonic time of the last input batch */
  int64_t last_wm_ms;  /* monotonic time of the last watermark emission */
  bool resend;         /* restored: send the watermark before the next records */
};

static void ts_op_free(void *p) {
  struct ts_op *o = p;

  if (o != NULL)
    free(o->json_field);
  free(o);
}

static int ts_open(weir_ctx *ctx, void *data, void **inst) {
  struct ts_inst *t = calloc(1, sizeof(*t));

  *inst = NULL;
  if (t == NULL)
    return WEIR_ENOMEM;
  t->op = data;
  t->bad = weir__bad_record_metric(ctx);
  t->max_ts = INT64_MIN;
  t->last_rec_ms = t->last_wm_ms = weir__now_ms();
  *inst = t;
  return 0;
}

static void ts_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

/* The watermark for the largest timestamp seen: max - bound - 1 (nothing older than the
 * bound is still expected). */
static int emit_wm(weir_ctx *ctx, struct ts_inst *t) {
  int64_t b = t->op->cfg.max_out_of_orderness_ms;

  if (t->max_ts == INT64_MIN)
    return 0;
  t->last_wm_ms = weir__now_ms();
  t->resend = false;
  return weir_emit_watermark(ctx,
                             t->max_ts < INT64_MIN + b + 1 ? INT64_MIN + 1 : t->max_ts - b - 1);
}

static int get_ts(weir_ctx *ctx, const struct ts_op *o, const weir_record *r, int64_t *ts) {
  struct weir__json_span s;
  double d;
  int rc;

  (void)ctx;
  switch (o->cfg.from) {
  case WEIR_TS_FROM_FN:
    return o->cfg.fn(o->cfg.fn_data, r, ts);
  case WEIR_TS_FROM_JSON_FIELD:
    rc = weir__json_find(r->value.ptr, r->value.len, &o->path, &s);
    if (rc != 0)
      return rc;
    if (weir__json_number(s, &d) != 0 || d != d || d < -9.2e18 || d > 9.2e18)
      return WEIR_ENOTFOUND;
    *ts = (int64_t)d;
    return 0;
  default:
    *ts = r->timestamp;
    return r->timestamp == WEIR_NO_TIMESTAMP ? WEIR_ENOTFOUND : 0;
  }
}

static int ts_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct ts_inst *t = inst;
  const struct ts_op *o = t->op;
  size_t i;
  int rc;

  if (t->resend && (rc = emit_wm(ctx, t)) != 0)
    return rc;
  for (i = 0; i < n; i++) {
    weir_record w = recs[i];

    rc = get_ts(ctx, o, &recs[i], &w.timestamp);
    if (rc == WEIR_ENOTFOUND || rc == WEIR_EPARSE) {
      if ((rc = weir__bad_record(ctx, o->cfg.on_bad, t->bad, &recs[i],
                                 "no usable event timestamp")) != 0)
        return rc;
      continue;
    }
    if (rc != 0)
      return rc;
    if (w.timestamp > t->max_ts)
      t->max_ts = w.timestamp;
    if ((rc = weir_emit(ctx, &w)) != 0)
      return rc;
  }
  t->last_rec_ms = weir__now_ms();
  if (o->cfg.interval_ms == 0 || t->last_rec_ms - t->last_wm_ms >= o->cfg.interval_ms)
    return emit_wm(ctx, t);
  return 0;
}

static int ts_tick(weir_ctx *ctx, void *inst, int64_t now_ms) {
  struct ts_inst *t = inst;
  const weir_watermark_config *c = &t->op->cfg;
  int rc;

  if (c->interval_ms > 0 && now_ms - t->last_wm_ms >= c->interval_ms && (rc = emit_wm(ctx, t)) != 0)
    return rc;
  if (c->idle_timeout_ms > 0 && now_ms - t->last_rec_ms >= c->idle_timeout_ms)
    return weir_emit_idle(ctx, true);
  return 0;
}

static int ts_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  const struct ts_inst *t = inst;

  (void)ctx;
  (void)ckpt_id;
  return weir_snapshot_write(out, &t->max_ts, sizeof(t->max_ts));
}

/* One call per part; a rescaled subtask may get several (it keeps the largest) or none. */
static int ts_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  struct ts_inst *t = inst;
  int64_t v;

  (void)ctx;
  if (state.len == 0)
    return 0;
  if (state.len != sizeof(v))
    return WEIR_EPARSE;
  memcpy(&v, state.ptr, sizeof(v));
  if (v > t->max_ts)
    t->max_ts = v;
  t->resend = t->max_ts != INT64_MIN;
  return 0;
}

int weir_job_assign_timestamps(weir_job *job, int upstream, const char *name,
                               const weir_watermark_config *cfg, int *id) {
  weir_operator op = {0};
  struct ts_op *o;

  if (job == NULL || cfg == NULL)
    return WEIR_EINVAL;
  if (cfg->max_out_of_orderness_ms < 0 || cfg->interval_ms < 0 || cfg->idle_timeout_ms < 0 ||
      (cfg->from == WEIR_TS_FROM_FN && cfg->fn == NULL) || cfg->from < WEIR_TS_FROM_RECORD ||
      cfg->from > WEIR_TS_FROM_JSON_FIELD) {
    weir__job_set_error(job,
                        "assign_timestamps '%s': negative bound, interval or timeout, or "
                        "WEIR_TS_FROM_FN without fn",
                        name != NULL ? name : "");
    return WEIR_EINVAL;
  }
  if ((o = calloc(1, sizeof(*o))) == NULL)
    return WEIR_ENOMEM;
  o->cfg = *cfg;
  o->cfg.json_field = NULL;
  if (cfg->from == WEIR_TS_FROM_JSON_FIELD) {
    if (weir__json_path_init(&o->path, cfg->json_field) != 0) {
      weir__job_set_error(job, "assign_timestamps '%s': bad JSON field path",
                          name != NULL ? name : "");
      ts_op_free(o);
      return WEIR_EINVAL;
    }
    if ((o->json_field = strdup(cfg->json_field)) == NULL) {
      ts_op_free(o);
      return WEIR_ENOMEM;
    }
    o->cfg.json_field = o->json_field;
  }
  op.open = ts_open;
  op.process = ts_process;
  op.on_tick = ts_tick;
  op.snapshot = ts_snapshot;
  op.restore = ts_restore;
  op.close = ts_close;
  op.redistribute_state = true;
  return weir__add_owned_operator(job, upstream, name, &op, o, ts_op_free, false, true, id);
}
