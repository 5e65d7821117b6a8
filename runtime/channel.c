/* channel.c: bounded batch channels and the consumer-side gate (see channel_int.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel_int.h"
#include "log_int.h"

/* Batches a channel owns beyond its ring: one being filled by the producer and one being
 * read by the consumer, so a full ring never starves either side of a batch. */
#define WEIR_CHAN_SPARE_BATCHES 2

#define CHECK_PTHREAD(call) WEIR_ASSERT((call) == 0)

int64_t weir__now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_to_timespec(int64_t deadline_ms, struct timespec *ts) {
  ts->tv_sec = deadline_ms / 1000;
  ts->tv_nsec = (deadline_ms % 1000) * 1000000;
}

static void cond_init_monotonic(pthread_cond_t *c) {
  pthread_condattr_t attr;

  CHECK_PTHREAD(pthread_condattr_init(&attr));
  CHECK_PTHREAD(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
  CHECK_PTHREAD(pthread_cond_init(c, &attr));
  CHECK_PTHREAD(pthread_condattr_destroy(&attr));
}

int weir__gate_init(struct weir_gate *g, size_t n_chans, size_t ring_cap, size_t batch_records,
                    size_t batch_bytes) {
  size_t i;

  memset(g, 0, sizeof(*g));
  CHECK_PTHREAD(pthread_mutex_init(&g->mu, NULL));
  cond_init_monotonic(&g->cond);
  g->batch_records = batch_records;
  g->batch_bytes = batch_bytes;
  g->chans = calloc(n_chans ? n_chans : 1, sizeof(*g->chans));
  if (g->chans == NULL)
    goto fail;
  for (i = 0; i < n_chans; i++) {
    struct weir_chan *c = &g->chans[i];

    c->gate = g;
    c->ring_cap = ring_cap;
    c->pool_cap = ring_cap + WEIR_CHAN_SPARE_BATCHES;
    c->ring = calloc(ring_cap, sizeof(*c->ring));
    c->free = calloc(c->pool_cap, sizeof(*c->free));
    cond_init_monotonic(&c->not_full);
    g->n_chans = i + 1;
    if (c->ring == NULL || c->free == NULL)
      goto fail;
  }
  return 0;

fail:
  weir__gate_destroy(g);
  return WEIR_ENOMEM;
}

void weir__gate_destroy(struct weir_gate *g) {
  size_t i, j;

  for (i = 0; i < g->n_chans; i++) {
    struct weir_chan *c = &g->chans[i];

    for (j = 0; j < c->len; j++) {
      struct weir_msg *m = &c->ring[(c->head + j) % c->ring_cap];

      if (m->kind == WEIR_MSG_BATCH)
        weir__batch_free(m->batch);
    }
    for (j = 0; j < c->n_free; j++)
      weir__batch_free(c->free[j]);
    free(c->ring);
    free(c->free);
    CHECK_PTHREAD(pthread_cond_destroy(&c->not_full));
  }
  free(g->chans);
  g->chans = NULL;
  g->n_chans = 0;
  CHECK_PTHREAD(pthread_cond_destroy(&g->cond));
  CHECK_PTHREAD(pthread_mutex_destroy(&g->mu));
}

struct weir_batch *weir__chan_acquire(struct weir_chan *c, int *err) {
  struct weir_gate *g = c->gate;
  struct weir_batch *b = NULL;

  *err = 0;
  CHECK_PTHREAD(pthread_mutex_lock(&g->mu));
  while (!g->cancelled && c->n_free == 0 && c->n_alloc == c->pool_cap) {
    c->producers_waiting++;
    c->batch_waiters++;
    CHECK_PTHREAD(pthread_cond_wait(&c->not_full, &g->mu));
    c->batch_waiters--;
    c->producers_waiting--;
  }
  if (g->cancelled) {
    *err = WEIR_ECANCELED;
  } else if (c->n_free > 0) {
    b = c->free[--c->n_free];
  } else {
    /* Grow the pool lazily, up to its bound, so idle channels cost little memory. */
    b = weir__batch_new(g->batch_records, g->batch_bytes);
    if (b == NULL)
      *err = WEIR_ENOMEM;
    else
      c->n_alloc++;
  }
  CHECK_PTHREAD(pthread_mutex_unlock(&g->mu));
  return b;
}

static void release_locked(struct weir_chan *c, struct weir_batch *b) {
  WEIR_ASSERT(c->n_free < c->pool_cap);
  weir__batch_reset(b);
  c->free[c->n_free++] = b;
  if (c->batch_waiters > 0)
    CHECK_PTHREAD(pthread_cond_broadcast(&c->not_full));
}

void weir__chan_release(struct weir_chan *c, struct weir_batch *b) {
  CHECK_PTHREAD(pthread_mutex_lock(&c->gate->mu));
  release_locked(c, b);
  CHECK_PTHREAD(pthread_mutex_unlock(&c->gate->mu));
}

int weir__chan_push(struct weir_chan *c, const struct weir_msg *m) {
  struct weir_gate *g = c->gate;
  int rc = 0;

  CHECK_PTHREAD(pthread_mutex_lock(&g->mu));
  while (!g->cancelled && c->len == c->ring_cap) {
    c->producers_waiting++;
    CHECK_PTHREAD(pthread_cond_wait(&c->not_full, &g->mu));
    c->producers_waiting--;
  }
  if (g->cancelled) {
    if (m->kind == WEIR_MSG_BATCH)
      release_locked(c, m->batch);
    rc = WEIR_ECANCELED;
  } else {
    c->ring[(c->head + c->len) % c->ring_cap] = *m;
    c->len++;
    if (g->consumer_waiting)
      CHECK_PTHREAD(pthread_cond_signal(&g->cond));
  }
  CHECK_PTHREAD(pthread_mutex_unlock(&g->mu));
  return rc;
}

int weir__gate_pop(struct weir_gate *g, struct weir_msg *m, size_t *chan_idx, int64_t deadline_ms) {
  struct timespec ts;
  size_t k;
  int rc;

  CHECK_PTHREAD(pthread_mutex_lock(&g->mu));
  for (;;) {
    if (g->cancelled) {
      rc = WEIR_ECANCELED;
      break;
    }
    for (k = 0; k < g->n_chans; k++) {
      size_t i = (g->next + k) % g->n_chans;
      struct weir_chan *c = &g->chans[i];

      if (c->blocked || c->len == 0)
        continue;
      *m = c->ring[c->head];
      c->head = (c->head + 1) % c->ring_cap;
      c->len--;
      if (m->kind == WEIR_MSG_END) {
        WEIR_ASSERT(!c->ended);
        c->ended = true;
        g->n_ended++;
      }
      /* Wake a blocked producer only once half the ring is free: one wake-up moves many
       * batches, instead of a futex round trip per batch. */
      if (c->producers_waiting > 0 && c->len <= c->ring_cap / 2)
        CHECK_PTHREAD(pthread_cond_broadcast(&c->not_full));
      g->next = (i + 1) % g->n_chans;
      *chan_idx = i;
      rc = 0;
      goto out;
    }
    if (g->n_ended == g->n_chans) {
      rc = WEIR_EOF;
      break;
    }
    if (deadline_ms >= 0 && weir__now_ms() >= deadline_ms) {
      rc = WEIR_ETIMEDOUT;
      break;
    }
    g->consumer_waiting = true;
    if (deadline_ms < 0) {
      CHECK_PTHREAD(pthread_cond_wait(&g->cond, &g->mu));
    } else {
      int w;

      deadline_to_timespec(deadline_ms, &ts);
      w = pthread_cond_timedwait(&g->cond, &g->mu, &ts);
      WEIR_ASSERT(w == 0 || w == ETIMEDOUT);
    }
    g->consumer_waiting = false;
  }
out:
  CHECK_PTHREAD(pthread_mutex_unlock(&g->mu));
  return rc;
}

void weir__gate_block(struct weir_gate *g, size_t chan_idx, bool blocked) {
  CHECK_PTHREAD(pthread_mutex_lock(&g->mu));
  g->chans[chan_idx].blocked = blocked;
  CHECK_PTHREAD(pthread_mutex_unlock(&g->mu));
}

void weir__gate_cancel(struct weir_gate *g) {
  size_t i;

  CHECK_PTHREAD(pthread_mutex_lock(&g->mu));
  g->cancelled = true;
  CHECK_PTHREAD(pthread_cond_broadcast(&g->cond));
  for (i = 0; i < g->n_chans; i++)
    CHECK_PTHREAD(pthread_cond_broadcast(&g->chans[i].not_full));
  CHECK_PTHREAD(pthread_mutex_unlock(&g->mu));
}
