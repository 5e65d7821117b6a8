/*
 * push_source.c: a source fed by the host program. Host threads copy records into batches of a
 * one-channel gate (the same bounded channel tasks use, so a full source blocks the host);
 * the source task pops them and emits their records.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "../runtime/job_int.h"
#include "../runtime/log_int.h"
#include "weir/connectors.h"

/* How long one poll waits for a batch before letting the task flush and check for stop. */
#define WEIR_PUSH_POLL_WAIT_MS 10

struct weir_push_source {
  struct weir_gate gate;
  size_t capacity;    /* 0 = the job's channel capacity */
  bool ready;         /* gate initialised (by weir_job_add_push_source) */
  pthread_mutex_t mu; /* serialises whole pushes, so one push's records stay contiguous */
  bool closed;        /* guarded by mu */
  atomic_bool ending; /* the source is ending: refuse pushes (read under mu by pushers) */
};

int weir_push_source_create(weir_push_source **srcp, size_t capacity_batches) {
  weir_push_source *s;

  if (srcp == NULL || capacity_batches > 4096)
    return WEIR_EINVAL;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  s->capacity = capacity_batches;
  WEIR_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);
  *srcp = s;
  return 0;
}

void weir_push_source_destroy(weir_push_source *src) {
  if (src == NULL)
    return;
  if (src->ready)
    weir__gate_destroy(&src->gate);
  WEIR_ASSERT(pthread_mutex_destroy(&src->mu) == 0);
  free(src);
}

static int send_batch(struct weir_chan *c, struct weir_batch *b) {
  struct weir_msg m = {WEIR_MSG_BATCH, 0, b};

  return weir__chan_push(c, &m);
}

int weir_push_source_push(weir_push_source *src, const weir_record *recs, size_t n) {
  struct weir_chan *c;
  struct weir_batch *b = NULL;
  size_t i = 0;
  int rc = 0;

  if (src == NULL || (recs == NULL && n > 0))
    return WEIR_EINVAL;
  if (!src->ready)
    return WEIR_ESTATE;
  c = &src->gate.chans[0];
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (src->closed || atomic_load(&src->ending)) {
    rc = WEIR_ESTATE;
    goto out;
  }
  while (i < n) {
    if (b == NULL && (b = weir__chan_acquire(c, &rc)) == NULL)
      goto out;
    rc = weir__batch_append(b, &recs[i]);
    if (rc == 0) {
      i++;
      continue;
    }
    if (rc != WEIR_EAGAIN || b->len == 0) {
      weir__log(WEIR_LOG_ERROR, "push source: record %zu of %zu bytes exceeds the batch bound", i,
                recs[i].value.len + recs[i].key.len + recs[i].meta.len);
      rc = WEIR_ETOOBIG;
      goto out;
    }
    rc = send_batch(c, b);
    b = NULL;
    if (rc != 0)
      goto out;
  }
  if (b != NULL) {
    rc = send_batch(c, b);
    b = NULL;
  }
out:
  /* After a record too big, the records copied before it are still sent: nothing is lost. */
  if (b != NULL && b->len == 0)
    weir__chan_release(c, b);
  else if (b != NULL && send_batch(c, b) != 0 && rc == 0)
    rc = WEIR_ECANCELED;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  return rc;
}

int weir_push_source_close(weir_push_source *src) {
  struct weir_msg m = {WEIR_MSG_END, 0, NULL};
  int rc = 0;

  if (src == NULL)
    return WEIR_EINVAL;
  if (!src->ready)
    return WEIR_ESTATE;
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (!src->closed) {
    src->closed = true;
    rc = weir__chan_push(&src->gate.chans[0], &m);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  return rc;
}

static int push_poll(weir_ctx *ctx, void *inst) {
  weir_push_source *s = inst;
  struct weir_msg m;
  size_t ci, i;
  int rc;

  rc = weir__gate_pop(&s->gate, &m, &ci, weir__now_ms() + WEIR_PUSH_POLL_WAIT_MS);
  if (rc == WEIR_ETIMEDOUT)
    return WEIR_EAGAIN;
  if (rc != 0)
    return rc; /* WEIR_EOF once closed and drained */
  if (m.kind != WEIR_MSG_BATCH)
    return m.kind == WEIR_MSG_END ? WEIR_EOF : 0;
  for (i = 0, rc = 0; i < m.batch->len && rc == 0; i++)
    rc = weir_emit(ctx, &m.batch->recs[i]);
  weir__chan_release(&s->gate.chans[0], m.batch);
  return rc;
}

/* Emits every batch already queued, without waiting. 0, or an emit error. */
static int drain(weir_ctx *ctx, weir_push_source *s) {
  struct weir_msg m;
  size_t ci, i;
  int rc;

  while ((rc = weir__gate_pop(&s->gate, &m, &ci, 0)) == 0) {
    if (m.kind != WEIR_MSG_BATCH)
      continue;
    for (i = 0, rc = 0; i < m.batch->len && rc == 0; i++)
      rc = weir_emit(ctx, &m.batch->recs[i]);
    weir__chan_release(&s->gate.chans[0], m.batch);
    if (rc != 0)
      return rc;
  }
  return rc == WEIR_ETIMEDOUT || rc == WEIR_EOF ? 0 : rc;
}

/*
 * End of the source (input closed, or a graceful stop): refuse new pushes, then emit what was
 * accepted, so a stop loses nothing a push call returned 0 for. A pusher blocked on a full
 * queue holds `mu`, so drain while waiting for it.
 */
static int push_finish(weir_ctx *ctx, void *inst) {
  weir_push_source *s = inst;
  int rc;

  /* Pushers that take mu from now on give up at once, so the trylock below cannot starve. */
  atomic_store(&s->ending, true);
  while (pthread_mutex_trylock(&s->mu) != 0)
    if ((rc = drain(ctx, s)) != 0)
      return rc;
  s->closed = true;
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  return drain(ctx, s);
}

static void push_close(weir_ctx *ctx, void *inst) {
  weir_push_source *s = inst;

  (void)ctx;
  /* The job is over for this source: wake any host thread blocked on a full queue. */
  weir__gate_cancel(&s->gate);
}

int weir_job_add_push_source(weir_job *job, const char *name, weir_push_source *src, int *id) {
  weir_operator op = {0};
  int node, rc;

  if (job == NULL || src == NULL)
    return WEIR_EINVAL;
  if (src->ready)
    return WEIR_EEXIST; /* already part of a job */
  /* The batch bounds are the job's at this point: set batch size before adding. */
  rc = weir__gate_init(&src->gate, 1, src->capacity ? src->capacity : job->chan_cap,
                       job->batch_records, job->batch_bytes);
  if (rc != 0)
    return rc;
  op.poll = push_poll;
  op.finish = push_finish;
  op.close = push_close;
  if ((rc = weir_job_add_source(job, name, &op, src, &node)) != 0) {
    weir__gate_destroy(&src->gate);
    return rc;
  }
  src->ready = true;
  job->nodes[node].max_parallelism = 1;
  if (id != NULL)
    *id = node;
  return 0;
}
