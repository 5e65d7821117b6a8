/*
 * task.c: the task thread. Runs one subtask of a chain: polls its source or pops its gate,
 * pushes records through the chained operators batch by batch, and routes the tail's output
 * into downstream channels. Control events (watermark, barrier, end-of-input) travel in band:
 * before one is forwarded, every partial output batch is sent, so order is kept.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint_int.h"
#include "log_int.h"
#include "state_int.h"
#include "task_int.h"
#include "weir/metrics.h"

/* Pause after a source reports nothing available (WEIR_EAGAIN). */
#define WEIR_SOURCE_IDLE_MS 1

/* ---- failure ------------------------------------------------------------------------------ */

/* Records the first failure of this task (the innermost failing operator) and fails the job. */
static int task_fail(struct task *t, struct weir_ctx *x, int rc) {
  weir_job *job = t->job;

  if (rc == WEIR_ECANCELED && atomic_load(&job->cancelled))
    return rc; /* torn down by someone else: not this operator's failure */
  weir__job_fail(job, rc, "operator '%s' (subtask %d/%d) failed: %s%s%s", x->node->name,
                 t->subtask + 1, x->node->parallelism, weir_strerror(rc), x->err[0] ? ": " : "",
                 x->err);
  return rc;
}

static bool job_cancelled(const struct task *t) {
  return atomic_load_explicit(&t->job->cancelled, memory_order_relaxed);
}

/* ---- outputs ------------------------------------------------------------------------------ */

static int send_batch(struct output *o, int d) {
  struct weir_msg m = {WEIR_MSG_BATCH, 0, o->cur[d]};

  o->cur[d] = NULL;
  return weir__chan_push(o->chans[d], &m);
}

static int flush_outputs(struct task *t) {
  size_t i;
  int d, rc;

  for (i = 0; i < t->n_outs; i++) {
    struct output *o = &t->outs[i];

    for (d = 0; d < o->n_targets; d++)
      if (o->cur[d] != NULL && o->cur[d]->len > 0 && (rc = send_batch(o, d)) != 0)
        return rc;
  }
  t->pending_since = -1;
  return 0;
}

int weir__task_broadcast(struct task *t, int kind, int64_t value) {
  struct weir_msg m = {kind, value, NULL};
  size_t i;
  int d, rc;

  if ((rc = flush_outputs(t)) != 0)
    return rc;
  for (i = 0; i < t->n_outs; i++)
    for (d = 0; d < t->outs[i].n_targets; d++)
      if ((rc = weir__chan_push(t->outs[i].chans[d], &m)) != 0)
        return rc;
  return 0;
}

static void release_outputs(struct task *t) {
  size_t i;
  int d;

  for (i = 0; i < t->n_outs; i++) {
    struct output *o = &t->outs[i];

    for (d = 0; d < o->n_targets; d++) {
      if (o->cur[d] != NULL)
        weir__chan_release(o->chans[d], o->cur[d]);
      o->cur[d] = NULL;
    }
  }
}

static int out_append(struct task *t, struct weir_ctx *x, struct output *o, int d,
                      const weir_record *rec) {
  int rc;

  for (;;) {
    if (o->cur[d] == NULL) {
      o->cur[d] = weir__chan_acquire(o->chans[d], &rc);
      if (o->cur[d] == NULL)
        return rc;
    }
    rc = weir__batch_append(o->cur[d], rec);
    if (rc == 0) {
      if (t->pending_since < 0)
        t->pending_since = weir__now_ms();
      return 0;
    }
    if (rc != WEIR_EAGAIN || o->cur[d]->len == 0) {
      weir_ctx_set_error(x, "record of %zu bytes is larger than the batch bound of %zu bytes",
                         rec->value.len + rec->key.len + rec->meta.len, o->cur[d]->arena_cap);
      return WEIR_ETOOBIG;
    }
    if ((rc = send_batch(o, d)) != 0)
      return rc;
  }
}

static int route(struct task *t, struct weir_ctx *x, const weir_record *rec) {
  int max_par = t->job->max_parallelism;
  size_t i;
  int d, rc = 0;

  for (i = 0; i < t->n_outs && rc == 0; i++) {
    struct output *o = &t->outs[i];

    switch (o->part) {
    case WEIR_PART_HASH:
      /* One target owns every key group: no need to hash the key to find it. */
      d = o->n_targets == 1
              ? 0
              : weir__key_group_subtask(weir__key_group(rec->key, max_par), max_par, o->n_targets);
      rc = out_append(t, x, o, d, rec);
      break;
    case WEIR_PART_REBALANCE:
      d = (int)(o->rr++ % (uint32_t)o->n_targets);
      rc = out_append(t, x, o, d, rec);
      break;
    case WEIR_PART_BROADCAST:
      for (d = 0; d < o->n_targets && rc == 0; d++)
        rc = out_append(t, x, o, d, rec);
      break;
    default: /* forward */
      rc = out_append(t, x, o, 0, rec);
      break;
    }
  }
  return rc;
}

/* ---- the chain ---------------------------------------------------------------------------- */

static int run_op(struct task *t, size_t pos, const weir_record *recs, size_t n);

/* Hands what operator `pos` emitted so far to operator pos + 1. */
static int flush_link(struct task *t, size_t pos) {
  struct weir_batch *b = t->ctxs[pos].link;
  int rc;

  if (b == NULL || b->len == 0)
    return 0;
  rc = run_op(t, pos + 1, b->recs, b->len);
  weir__batch_reset(b);
  return rc;
}

static int run_op(struct task *t, size_t pos, const weir_record *recs, size_t n) {
  struct weir_ctx *x = &t->ctxs[pos];
  int rc = x->node->op.process(x, x->inst, recs, n);

  if (x->m_records != NULL)
    weir_metric_add(x->m_records, (int64_t)n);

  if (rc < 0)
    return task_fail(t, x, rc);
  return flush_link(t, pos);
}

/* Runs an optional per-operator callback on every operator from `from` on, in chain order,
 * passing what each emits down the chain. `which` selects the callback. */
enum chain_cb { CB_WATERMARK, CB_TICK, CB_FINISH };

/* Returns 1 (not an error) when a watermark stopped at a watermark generator. */
static int run_chain_cb(struct task *t, size_t from, enum chain_cb which, int64_t arg) {
  size_t i;
  int rc;

  for (i = from; i < t->chain->len; i++) {
    struct weir_ctx *x = &t->ctxs[i];
    const weir_operator *op = &x->node->op;

    if (which == CB_WATERMARK && x->node->wm_generator)
      return 1; /* it makes its own watermarks; upstream ones end here */
    rc = 0;
    if (which == CB_WATERMARK && op->on_watermark != NULL)
      rc = op->on_watermark(x, x->inst, arg);
    else if (which == CB_TICK && op->on_tick != NULL)
      rc = op->on_tick(x, x->inst, arg);
    else if (which == CB_FINISH && op->finish != NULL)
      rc = op->finish(x, x->inst);
    if (rc < 0)
      return task_fail(t, x, rc);
    if ((rc = flush_link(t, i)) != 0)
      return rc;
  }
  return 0;
}

static int advance_watermark(struct task *t, size_t from, int64_t wm) {
  int rc = run_chain_cb(t, from, CB_WATERMARK, wm);

  if (rc == 1)
    return 0;
  return rc != 0 ? rc : weir__task_broadcast(t, WEIR_MSG_WATERMARK, wm);
}

/*
 * Idleness (Flink's WatermarkStatus): a producer that has nothing to send says so in band
 * (WEIR_MSG_IDLE 1); consumers leave that input out of their watermark minimum until it says
 * WEIR_MSG_IDLE 0 (sent before its next record or watermark). A task whose live inputs are
 * all idle is idle itself and says so downstream. Status from positions >= `from` of the chain
 * stops at a watermark generator, which decides its own status.
 */
static int propagate_status(struct task *t, size_t from, bool idle) {
  size_t i;

  for (i = from; i < t->chain->len; i++)
    if (t->ctxs[i].node->wm_generator)
      return 0;
  if (t->idle_out == idle)
    return 0;
  t->idle_out = idle;
  return weir__task_broadcast(t, WEIR_MSG_IDLE, idle ? 1 : 0);
}

static bool emits_watermarks(const struct weir_ctx *x) {
  return x->node->kind == NODE_SOURCE || x->node->wm_generator;
}

/* ---- timers ------------------------------------------------------------------------------- */

static int64_t next_deadline(const struct task *t) {
  int64_t d = t->next_tick;

  if (t->pending_since >= 0 && t->pending_since + t->job->buffer_timeout_ms < d)
    d = t->pending_since + t->job->buffer_timeout_ms;
  return d;
}

static int run_timers(struct task *t, int64_t now) {
  int rc;

  if (now >= t->next_tick) {
    t->next_tick = now + t->job->tick_ms;
    if ((rc = run_chain_cb(t, 0, CB_TICK, now)) != 0)
      return rc;
  }
  if (t->pending_since >= 0 && now - t->pending_since >= t->job->buffer_timeout_ms)
    return flush_outputs(t);
  return 0;
}

/* ---- inputs ------------------------------------------------------------------------------- */

static int on_input_watermark(struct task *t, size_t ci, int64_t wm) {
  int64_t min = INT64_MAX, max_idle = INT64_MIN;
  size_t i, live = 0;

  if (ci < t->gate.n_chans && wm > t->inputs[ci].watermark)
    t->inputs[ci].watermark = wm;
  for (i = 0; i < t->gate.n_chans; i++) {
    if (t->gate.chans[i].ended)
      continue;
    live++;
    if (t->inputs[i].idle) {
      if (t->inputs[i].watermark > max_idle)
        max_idle = t->inputs[i].watermark;
    } else if (t->inputs[i].watermark < min) {
      min = t->inputs[i].watermark;
    }
  }
  /* Every live input idle: what they reached so far is complete (Flink does the same). */
  if (min == INT64_MAX && live > 0)
    min = max_idle;
  /* All inputs ended: no watermark to derive; end-of-input does the rest. */
  if (min == INT64_MAX || min <= t->in_watermark)
    return 0;
  t->in_watermark = min;
  return advance_watermark(t, 0, min);
}

/* Recomputes whether every live input is idle and tells downstream when that changed. */
static int update_input_status(struct task *t) {
  size_t i, live = 0, idle = 0;

  for (i = 0; i < t->gate.n_chans; i++) {
    if (t->gate.chans[i].ended)
      continue;
    live++;
    idle += t->inputs[i].idle;
  }
  return propagate_status(t, 0, live > 0 && idle == live);
}

static int on_input_idle(struct task *t, size_t ci, bool idle) {
  int rc;

  t->inputs[ci].idle = idle;
  /* Going active first tells downstream, so the records that follow are not "from an idle
   * producer"; going idle may let the minimum advance over the remaining inputs. */
  if (!idle && (rc = update_input_status(t)) != 0)
    return rc;
  if ((rc = on_input_watermark(t, SIZE_MAX, INT64_MIN)) != 0)
    return rc;
  return idle ? update_input_status(t) : 0;
}

/* Every input delivered barrier `id` (or ended): snapshot, then pass the barrier on. */
static int barrier_reached(struct task *t, uint64_t id) {
  int rc = weir__ckpt_snapshot_chain(t, id);

  return rc != 0 ? rc : weir__task_broadcast(t, WEIR_MSG_BARRIER, (int64_t)id);
}

/* Barrier alignment (exactly-once): an input that delivered barrier N is held back until every
 * live input has; then the barrier goes downstream. A newer barrier supersedes an older one. */
static int check_alignment(struct task *t) {
  size_t i, done = 0;
  uint64_t id = t->aligning;

  if (id == 0)
    return 0;
  for (i = 0; i < t->gate.n_chans; i++)
    done += t->gate.chans[i].ended || t->inputs[i].barrier >= id;
  if (done < t->gate.n_chans)
    return 0;
  for (i = 0; i < t->gate.n_chans; i++)
    weir__gate_block(&t->gate, i, false);
  t->aligning = 0;
  return barrier_reached(t, id);
}

static int on_barrier(struct task *t, size_t ci, uint64_t id) {
  size_t i;

  t->inputs[ci].barrier = id;
  if (id < t->aligning)
    return 0; /* stale */
  if (id > t->aligning) {
    for (i = 0; i < t->gate.n_chans; i++)
      weir__gate_block(&t->gate, i, false);
    t->aligning = id;
  }
  /* At-least-once: keep reading the inputs that are ahead; their records land in state before
   * the snapshot and may count twice after a restore. */
  if (t->job->ckpt.mode == WEIR_EXACTLY_ONCE)
    weir__gate_block(&t->gate, ci, true);
  return check_alignment(t);
}

static int handle_msg(struct task *t, const struct weir_msg *m, size_t ci) {
  struct weir_chan *c = &t->gate.chans[ci];
  int rc = 0;

  switch (m->kind) {
  case WEIR_MSG_BATCH:
    t->in_bytes[0].lo = m->batch->arena;
    t->in_bytes[0].hi = m->batch->arena + m->batch->used;
    rc = run_op(t, 0, m->batch->recs, m->batch->len);
    t->in_bytes[0].lo = t->in_bytes[0].hi = NULL;
    weir__chan_release(c, m->batch);
    break;
  case WEIR_MSG_WATERMARK:
    rc = on_input_watermark(t, ci, m->value);
    break;
  case WEIR_MSG_BARRIER:
    rc = on_barrier(t, ci, (uint64_t)m->value);
    break;
  case WEIR_MSG_END:
    rc = on_input_watermark(t, SIZE_MAX, INT64_MIN);
    if (rc == 0)
      rc = update_input_status(t);
    if (rc == 0)
      rc = check_alignment(t);
    break;
  case WEIR_MSG_IDLE:
    rc = on_input_idle(t, ci, m->value != 0);
    break;
  default:
    WEIR_ASSERT(0 && "unknown message kind");
  }
  return rc;
}

/* ---- main loops --------------------------------------------------------------------------- */

/* Emits barrier N when the coordinator triggered it: the source's position is exactly the last
 * record it emitted, since polls return between records. WEIR_EOF after a savepoint barrier:
 * the source stops there. */
static int source_checkpoint(struct task *t) {
  uint64_t id = atomic_load_explicit(&t->job->ckpt_trigger, memory_order_acquire);
  int rc;

  if (id <= t->barrier_sent)
    return 0;
  t->barrier_sent = id;
  if ((rc = weir__ckpt_snapshot_chain(t, id)) != 0 ||
      (rc = weir__task_broadcast(t, WEIR_MSG_BARRIER, (int64_t)id)) != 0)
    return rc;
  if (id != atomic_load(&t->job->savepoint_id))
    return 0;
  /* Set before this source's end-of-input goes out, so every task that sees the end sees it. */
  atomic_store(&t->job->suspending, true);
  return WEIR_EOF;
}

static int source_loop(struct task *t) {
  struct weir_ctx *x = &t->ctxs[0];
  int rc;

  while (!job_cancelled(t)) {
    int64_t now;

    if (atomic_load_explicit(&t->job->stopping, memory_order_relaxed))
      return 0;
    if ((rc = source_checkpoint(t)) != 0)
      return rc == WEIR_EOF ? 0 : rc;
    weir__ckpt_notify(t);
    rc = x->node->op.poll(x, x->inst);
    if (x->emitted != x->emitted_published) {
      weir_metric_add(x->m_records, (int64_t)(x->emitted - x->emitted_published));
      x->emitted_published = x->emitted;
    }
    if (rc == WEIR_EOF)
      return 0;
    if (rc == WEIR_EAGAIN) {
      struct timespec ts = {0, WEIR_SOURCE_IDLE_MS * 1000000L};

      if ((rc = flush_link(t, 0)) != 0 || (rc = flush_outputs(t)) != 0)
        return rc;
      nanosleep(&ts, NULL);
    } else if (rc < 0) {
      return task_fail(t, x, rc);
    } else if ((rc = flush_link(t, 0)) != 0) {
      return rc;
    }
    now = weir__now_ms();
    if (now >= next_deadline(t) && (rc = run_timers(t, now)) != 0)
      return rc;
  }
  return WEIR_ECANCELED;
}

static int input_loop(struct task *t) {
  struct weir_msg m;
  size_t ci;
  int rc;

  for (;;) {
    /* Take what is queued without waiting; when the input runs dry, send partial output
     * batches before sleeping, so latency is bounded by the upstream, not by batch size. */
    rc = weir__gate_pop(&t->gate, &m, &ci, 0);
    if (rc == WEIR_ETIMEDOUT) {
      if (t->pending_since >= 0 && (rc = flush_outputs(t)) != 0)
        return rc;
      rc = weir__gate_pop(&t->gate, &m, &ci, next_deadline(t));
    }
    if (rc == 0)
      rc = handle_msg(t, &m, ci);
    else if (rc == WEIR_EOF)
      return 0;
    weir__ckpt_notify(t);
    if (rc != 0 && rc != WEIR_ETIMEDOUT)
      return rc;
    {
      int64_t now = weir__now_ms();

      if (now >= next_deadline(t) && (rc = run_timers(t, now)) != 0)
        return rc;
    }
  }
}

/* Registers the runtime's own series for the operator at `x`: records out of each source
 * subtask and into each sink subtask (what a status line shows as records in/out). */
static int open_metrics(struct weir_ctx *x) {
  if (x->node->kind == NODE_SOURCE)
    return weir_ctx_metric(x, WEIR_METRIC_COUNTER, "weir_source_records_total",
                           "Records emitted by a source subtask.", NULL, &x->m_records);
  if (x->node->kind == NODE_SINK)
    return weir_ctx_metric(x, WEIR_METRIC_COUNTER, "weir_sink_records_total",
                           "Records received by a sink subtask.", NULL, &x->m_records);
  return 0;
}

static int open_chain(struct task *t) {
  size_t i;
  int rc;

  for (i = 0; i < t->chain->len; i++) {
    struct weir_ctx *x = &t->ctxs[i];

    x->opened = true;
    if ((rc = open_metrics(x)) != 0)
      return task_fail(t, x, rc);
    if (x->node->op.open != NULL && (rc = x->node->op.open(x, x->node->data, &x->inst)) < 0)
      return task_fail(t, x, rc);
  }
  return 0;
}

static void close_chain(struct task *t) {
  size_t i;

  for (i = 0; i < t->chain->len; i++) {
    struct weir_ctx *x = &t->ctxs[i];

    if (x->opened && x->node->op.close != NULL)
      x->node->op.close(x, x->inst);
    x->opened = false;
  }
}

void *weir__task_main(void *arg) {
  struct task *t = arg;
  int rc;

  t->next_tick = weir__now_ms() + t->job->tick_ms;
  t->barrier_sent = atomic_load(&t->job->ckpt_completed); /* the restored id, or 0 */
  t->notified = t->barrier_sent;
  rc = open_chain(t);
  if (rc == 0)
    rc = weir__ckpt_restore_chain(t);
  if (rc == 0)
    rc = t->has_gate ? input_loop(t) : source_loop(t);
  if (rc == 0 && atomic_load(&t->job->suspending)) {
    /* Stopped at a savepoint: the input did not end, so operators do not finish; the job
     * resumes from the savepoint. A task that never saw the savepoint's barrier (a bounded
     * source that ended just before it) still acknowledges it with its final state. */
    rc = weir__task_broadcast(t, WEIR_MSG_END, 0);
    if (rc == 0)
      weir__ckpt_task_finished(t, true);
  } else if (rc == 0 && (rc = run_chain_cb(t, 0, CB_FINISH, 0)) == 0) {
    rc = weir__task_broadcast(t, WEIR_MSG_END, 0);
    if (rc == 0)
      weir__ckpt_task_finished(t, false);
  }
  if (rc != 0 && rc != WEIR_ECANCELED)
    weir__job_fail(t->job, rc, "task '%s' (subtask %d): %s", t->ctxs[0].node->name, t->subtask + 1,
                   weir_strerror(rc));
  release_outputs(t);
  close_chain(t);
  return NULL;
}

void weir__task_free(struct task *t) {
  size_t i;

  if (t->ctxs != NULL) {
    for (i = 0; i < t->chain->len; i++) {
      weir__batch_free(t->ctxs[i].link);
      free(t->ctxs[i].scratch);
      weir__keyed_backend_destroy(t->ctxs[i].keyed);
    }
  }
  weir__ckpt_free_finals(t);
  free(t->in_bytes);
  for (i = 0; t->outs != NULL && i < t->n_outs; i++) {
    free(t->outs[i].chans);
    free(t->outs[i].cur);
  }
  free(t->outs);
  if (t->has_gate)
    weir__gate_destroy(&t->gate);
  free(t->inputs);
  free(t->ctxs);
  free(t);
}

/* ---- the callback API --------------------------------------------------------------------- */

/* True when `b` is empty or lies in one of ranges[0..n). */
static inline bool buf_within(weir_buf b, const struct byte_range *ranges, size_t n) {
  size_t i;

  if (b.len == 0)
    return true;
  for (i = 0; i < n; i++)
    if (b.ptr >= ranges[i].lo && b.ptr + b.len <= ranges[i].hi)
      return true;
  return false;
}

int weir_emit(weir_ctx *x, const weir_record *rec) {
  int rc;

  if (x->idle && (rc = weir_emit_idle(x, false)) != 0)
    return rc;
  x->emitted++;
  if (x->link != NULL) {
    /* A record whose bytes lie in batches that outlive the next operator's call (this
     * operator's input, or any input further up the chain) is passed on by reference: a
     * filter or a key_by on the same thread copies nothing. Other bytes (scratch, the
     * operator's own buffers) are copied into the link batch. */
    bool by_ref = buf_within(rec->value, x->task->in_bytes, x->pos + 1) &&
                  buf_within(rec->key, x->task->in_bytes, x->pos + 1) &&
                  buf_within(rec->meta, x->task->in_bytes, x->pos + 1);

    rc = by_ref ? weir__batch_append_ref(x->link, rec) : weir__batch_append(x->link, rec);
    if (rc == WEIR_EAGAIN) {
      if ((rc = flush_link(x->task, x->pos)) != 0)
        return rc;
      rc = by_ref ? weir__batch_append_ref(x->link, rec) : weir__batch_append(x->link, rec);
    }
    if (rc == WEIR_ETOOBIG || rc == WEIR_EAGAIN) {
      weir_ctx_set_error(x, "record of %zu bytes is larger than the batch bound of %zu bytes",
                         rec->value.len + rec->key.len + rec->meta.len, x->link->arena_cap);
      rc = WEIR_ETOOBIG;
    }
    return rc;
  }
  if (x->node->kind == NODE_SINK) {
    weir_ctx_set_error(x, "a sink cannot emit records");
    return WEIR_EINVAL;
  }
  return route(x->task, x, rec);
}

int weir_emit_watermark(weir_ctx *x, int64_t ts) {
  struct task *t = x->task;
  int rc;

  if (!emits_watermarks(x)) {
    weir_ctx_set_error(x, "only sources and watermark generators emit watermarks");
    return WEIR_EINVAL;
  }
  if (ts <= x->out_wm)
    return 0; /* watermarks never go back */
  x->out_wm = ts;
  if (x->idle && (rc = weir_emit_idle(x, false)) != 0)
    return rc;
  /* What this operator emitted so far goes first, so its records precede the watermark. */
  if ((rc = flush_link(t, x->pos)) != 0)
    return rc;
  return advance_watermark(t, x->pos + 1, ts);
}

int weir_emit_idle(weir_ctx *x, bool idle) {
  struct task *t = x->task;
  int rc;

  if (!emits_watermarks(x)) {
    weir_ctx_set_error(x, "only sources and watermark generators emit idle status");
    return WEIR_EINVAL;
  }
  if (x->idle == idle)
    return 0;
  x->idle = idle;
  if (idle && (rc = flush_link(t, x->pos)) != 0)
    return rc;
  return propagate_status(t, x->pos + 1, idle);
}

void *weir_ctx_scratch(weir_ctx *x, size_t len) {
  if (len > x->task->job->batch_bytes)
    return NULL;
  if (len > x->scratch_cap || x->scratch == NULL) {
    size_t cap = len < 256 ? 256 : len;
    uint8_t *p = realloc(x->scratch, cap);

    if (p == NULL)
      return NULL;
    x->scratch = p;
    x->scratch_cap = cap;
  }
  return x->scratch;
}

int weir_ctx_subtask(const weir_ctx *x) {
  return x->task->subtask;
}

int weir_ctx_parallelism(const weir_ctx *x) {
  return x->node->parallelism;
}

const char *weir_ctx_name(const weir_ctx *x) {
  return x->node->name;
}

bool weir_ctx_stopping(const weir_ctx *x) {
  return atomic_load_explicit(&x->task->job->stopping, memory_order_relaxed);
}

void weir_ctx_set_error(weir_ctx *x, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(x->err, sizeof(x->err), fmt, ap);
  va_end(ap);
}

/* Bound on one subtask's snapshot; see weir_snapshot_write. */
#define WEIR_SNAPSHOT_MAX (64u << 20)

int weir_snapshot_write(weir_snapshot *s, const void *ptr, size_t len) {
  if (len > WEIR_SNAPSHOT_MAX - s->len)
    return WEIR_ETOOBIG;
  if (s->len + len > s->cap) {
    size_t cap = s->cap ? s->cap : 256;
    uint8_t *p;

    while (cap < s->len + len)
      cap *= 2;
    if ((p = realloc(s->ptr, cap)) == NULL)
      return WEIR_ENOMEM;
    s->ptr = p;
    s->cap = cap;
  }
  memcpy(s->ptr + s->len, ptr, len);
  s->len += len;
  return 0;
}
