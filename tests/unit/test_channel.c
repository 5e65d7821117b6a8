/*
 * test_channel.c: the internal channel and gate (runtime/channel_int.h) and the batch arena
 * (runtime/batch_int.h).
 *
 * Blocking is proved without timing assertions: a test waits (with a generous bound) until the
 * blocked thread is counted in the channel's `producers_waiting` or the gate's
 * `consumer_waiting`, read under the gate's mutex, and then checks how far the thread got.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/channel_int.h"

/* Bound on any wait for another thread to reach a state; far above what a loaded CI machine
 * under TSan needs, and only ever reached when the code under test is broken. */
#define WAIT_LIMIT_MS 20000
/* Extra time given to a blocked thread to (wrongly) make progress before checking it did not. */
#define GRACE_MS 100

#define REC_BYTES 64
#define BATCH_RECORDS 8
#define BATCH_BYTES 4096

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* The peeks below take the gate's mutex, as every reader of gate state must. They do not use
 * Criterion asserts, so that helper threads may call them too. */
static void gate_lock(struct weir_gate *g) {
  if (pthread_mutex_lock(&g->mu) != 0)
    abort();
}

static void gate_unlock(struct weir_gate *g) {
  if (pthread_mutex_unlock(&g->mu) != 0)
    abort();
}

static size_t producers_waiting(struct weir_gate *g, size_t chan_idx) {
  size_t n;

  gate_lock(g);
  n = (size_t)g->chans[chan_idx].producers_waiting;
  gate_unlock(g);
  return n;
}

static bool consumer_waiting(struct weir_gate *g) {
  bool w;

  gate_lock(g);
  w = g->consumer_waiting;
  gate_unlock(g);
  return w;
}

/* Waits until `n` producers are blocked on channel `chan_idx`; fails the test past the limit. */
static void wait_producers_blocked(struct weir_gate *g, size_t chan_idx, size_t n) {
  int64_t limit = weir__now_ms() + WAIT_LIMIT_MS;

  while (producers_waiting(g, chan_idx) != n) {
    cr_assert_lt(weir__now_ms(), limit, "no producer blocked on channel %zu", chan_idx);
    sleep_ms(1);
  }
}

static void wait_consumer_blocked(struct weir_gate *g) {
  int64_t limit = weir__now_ms() + WAIT_LIMIT_MS;

  while (!consumer_waiting(g)) {
    cr_assert_lt(weir__now_ms(), limit, "the consumer never blocked");
    sleep_ms(1);
  }
}

static void wait_counter(atomic_size_t *counter, size_t want) {
  int64_t limit = weir__now_ms() + WAIT_LIMIT_MS;

  while (atomic_load(counter) != want) {
    cr_assert_lt(weir__now_ms(), limit, "counter stuck at %zu, want %zu", atomic_load(counter),
                 want);
    sleep_ms(1);
  }
}

/* A record whose offset is `offset` and whose value is its decimal text. */
static weir_record make_record(uint64_t offset, char *buf, size_t cap) {
  weir_record r = weir_record_init();
  int n = snprintf(buf, cap, "%llu", (unsigned long long)offset);

  r.value.ptr = (const uint8_t *)buf;
  r.value.len = (size_t)n;
  r.offset = offset;
  return r;
}

/* Sends one batch holding one record with offset `tag` on channel `c`. */
static void push_batch(struct weir_chan *c, uint64_t tag) {
  char buf[32];
  weir_record r = make_record(tag, buf, sizeof(buf));
  struct weir_msg m = {WEIR_MSG_BATCH, 0, NULL};
  int err = -100;

  m.batch = weir__chan_acquire(c, &err);
  cr_assert_not_null(m.batch);
  cr_assert_eq(err, 0);
  cr_assert_eq(m.batch->len, 0, "an acquired batch must be empty");
  cr_assert_eq(weir__batch_append(m.batch, &r), 0);
  cr_assert_eq(weir__chan_push(c, &m), 0);
}

static void push_control(struct weir_chan *c, int kind, int64_t value) {
  struct weir_msg m = {kind, value, NULL};

  cr_assert_eq(weir__chan_push(c, &m), 0);
}

/* Pops one message that must be a one-record batch tagged `tag` from channel `chan`, checks the
 * record and releases the batch. */
static void expect_batch(struct weir_gate *g, size_t chan, uint64_t tag) {
  struct weir_msg m;
  size_t idx = SIZE_MAX;
  char buf[32];
  int n;

  cr_assert_eq(weir__gate_pop(g, &m, &idx, -1), 0);
  cr_assert_eq(m.kind, WEIR_MSG_BATCH, "want a batch, got kind %d", m.kind);
  cr_assert_eq(idx, chan, "batch %llu: want channel %zu, got %zu", (unsigned long long)tag, chan,
               idx);
  cr_assert_eq(m.batch->len, 1);
  cr_assert_eq(m.batch->recs[0].offset, tag, "want tag %llu, got %llu", (unsigned long long)tag,
               (unsigned long long)m.batch->recs[0].offset);
  n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)tag);
  cr_assert_eq(m.batch->recs[0].value.len, (size_t)n);
  cr_assert_eq(memcmp(m.batch->recs[0].value.ptr, buf, (size_t)n), 0);
  weir__chan_release(&g->chans[idx], m.batch);
}

static void expect_control(struct weir_gate *g, size_t chan, int kind, int64_t value) {
  struct weir_msg m;
  size_t idx = SIZE_MAX;

  cr_assert_eq(weir__gate_pop(g, &m, &idx, -1), 0);
  cr_assert_eq(m.kind, kind, "want kind %d, got %d", kind, m.kind);
  cr_assert_eq(idx, chan, "want channel %zu, got %zu", chan, idx);
  if (kind != WEIR_MSG_END)
    cr_assert_eq(m.value, value, "want value %lld, got %lld", (long long)value, (long long)m.value);
}

/* Pops with a short deadline and expects the given non-zero result. */
static void expect_pop_rc(struct weir_gate *g, int want) {
  struct weir_msg m;
  size_t idx;
  int rc = weir__gate_pop(g, &m, &idx, weir__now_ms() + 20);

  cr_assert_eq(rc, want, "pop: want %s, got %s", weir_err_name(want), weir_err_name(rc));
}

/* ---- order ------------------------------------------------------------------------------- */

Test(channel, fifo_order_within_a_channel) {
  struct weir_gate g;
  uint64_t tag = 0, next = 0;
  int round, i;

  cr_assert_eq(weir__gate_init(&g, 1, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  /* Three in, three out, on a ring of four with one message always queued: the head walks
   * around the ring's end many times. The ring never overflows, so nothing here blocks. */
  push_batch(&g.chans[0], tag++);
  for (round = 0; round < 20; round++) {
    for (i = 0; i < 3; i++)
      push_batch(&g.chans[0], tag++);
    cr_assert_eq(g.chans[0].len, 4);
    for (i = 0; i < 3; i++)
      expect_batch(&g, 0, next++);
  }
  while (next < tag)
    expect_batch(&g, 0, next++);
  cr_assert_eq(g.chans[0].len, 0);
  expect_pop_rc(&g, WEIR_ETIMEDOUT);
  weir__gate_destroy(&g);
}

Test(channel, control_messages_keep_their_place_among_batches) {
  struct weir_gate g;

  cr_assert_eq(weir__gate_init(&g, 1, 8, BATCH_RECORDS, BATCH_BYTES), 0);
  push_batch(&g.chans[0], 1);
  push_control(&g.chans[0], WEIR_MSG_WATERMARK, 1000);
  push_batch(&g.chans[0], 2);
  push_control(&g.chans[0], WEIR_MSG_BARRIER, 7);
  push_batch(&g.chans[0], 3);
  push_control(&g.chans[0], WEIR_MSG_WATERMARK, INT64_MAX);
  push_control(&g.chans[0], WEIR_MSG_END, 0);

  expect_batch(&g, 0, 1);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 1000);
  expect_batch(&g, 0, 2);
  expect_control(&g, 0, WEIR_MSG_BARRIER, 7);
  expect_batch(&g, 0, 3);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, INT64_MAX);
  expect_control(&g, 0, WEIR_MSG_END, 0);
  expect_pop_rc(&g, WEIR_EOF);
  weir__gate_destroy(&g);
}

Test(channel, round_robin_across_channels) {
  struct weir_gate g;
  int i;

  cr_assert_eq(weir__gate_init(&g, 3, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  for (i = 0; i < 3; i++) {
    push_batch(&g.chans[0], 100 + (uint64_t)i);
    push_batch(&g.chans[1], 200 + (uint64_t)i);
    push_batch(&g.chans[2], 300 + (uint64_t)i);
  }
  /* A busy channel never starves the others: each pop moves on to the next channel. */
  for (i = 0; i < 3; i++) {
    expect_batch(&g, 0, 100 + (uint64_t)i);
    expect_batch(&g, 1, 200 + (uint64_t)i);
    expect_batch(&g, 2, 300 + (uint64_t)i);
  }
  /* Empty channels are skipped; the rotation continues after the channel last served. */
  push_batch(&g.chans[0], 1);
  push_batch(&g.chans[0], 2);
  push_batch(&g.chans[2], 3);
  expect_batch(&g, 0, 1);
  expect_batch(&g, 2, 3);
  expect_batch(&g, 0, 2);
  expect_pop_rc(&g, WEIR_ETIMEDOUT);
  weir__gate_destroy(&g);
}

/* ---- end of input and deadlines ---------------------------------------------------------- */

Test(channel, eof_only_after_every_channel_ended) {
  struct weir_gate g;

  cr_assert_eq(weir__gate_init(&g, 3, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  push_control(&g.chans[0], WEIR_MSG_END, 0);
  expect_control(&g, 0, WEIR_MSG_END, 0);
  /* One of three ended: the others may still send, so no EOF. */
  expect_pop_rc(&g, WEIR_ETIMEDOUT);

  push_control(&g.chans[2], WEIR_MSG_END, 0);
  expect_control(&g, 2, WEIR_MSG_END, 0);
  expect_pop_rc(&g, WEIR_ETIMEDOUT);
  cr_assert_eq(g.n_ended, 2);

  /* The last channel's data and its END are both delivered before EOF. */
  push_batch(&g.chans[1], 5);
  push_control(&g.chans[1], WEIR_MSG_WATERMARK, 9);
  push_control(&g.chans[1], WEIR_MSG_END, 0);
  expect_batch(&g, 1, 5);
  expect_control(&g, 1, WEIR_MSG_WATERMARK, 9);
  expect_control(&g, 1, WEIR_MSG_END, 0);
  expect_pop_rc(&g, WEIR_EOF);
  /* EOF is sticky, also without a deadline. */
  {
    struct weir_msg m;
    size_t idx;

    cr_assert_eq(weir__gate_pop(&g, &m, &idx, -1), WEIR_EOF);
  }
  weir__gate_destroy(&g);
}

Test(channel, queued_messages_come_before_eof) {
  struct weir_gate g;

  cr_assert_eq(weir__gate_init(&g, 2, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  push_control(&g.chans[0], WEIR_MSG_END, 0);
  push_batch(&g.chans[1], 1);
  push_batch(&g.chans[1], 2);
  push_control(&g.chans[1], WEIR_MSG_END, 0);
  expect_control(&g, 0, WEIR_MSG_END, 0);
  expect_batch(&g, 1, 1);
  expect_batch(&g, 1, 2);
  expect_control(&g, 1, WEIR_MSG_END, 0);
  expect_pop_rc(&g, WEIR_EOF);
  weir__gate_destroy(&g);
}

Test(channel, gate_without_channels_is_at_eof) {
  struct weir_gate g;

  cr_assert_eq(weir__gate_init(&g, 0, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  expect_pop_rc(&g, WEIR_EOF);
  weir__gate_destroy(&g);
}

Test(channel, pop_times_out_at_its_deadline) {
  struct weir_gate g;
  struct weir_msg m;
  size_t idx;
  int64_t deadline;

  cr_assert_eq(weir__gate_init(&g, 2, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  deadline = weir__now_ms() + 50;
  cr_assert_eq(weir__gate_pop(&g, &m, &idx, deadline), WEIR_ETIMEDOUT);
  /* It waited for the deadline rather than giving up early. */
  cr_assert_geq(weir__now_ms(), deadline);

  /* A deadline already past still returns what is queued... */
  push_batch(&g.chans[1], 4);
  cr_assert_eq(weir__gate_pop(&g, &m, &idx, 0), 0);
  cr_assert_eq(idx, 1);
  cr_assert_eq(m.batch->recs[0].offset, 4);
  weir__chan_release(&g.chans[idx], m.batch);
  /* ...and times out at once when nothing is. */
  cr_assert_eq(weir__gate_pop(&g, &m, &idx, 0), WEIR_ETIMEDOUT);
  weir__gate_destroy(&g);
}

struct late_push {
  struct weir_chan *chan;
  struct weir_gate *gate;
  int rc;
};

/* Pushes a batch tagged 77 once the consumer sleeps in pop (or after the wait limit). */
static void *push_when_consumer_waits(void *arg) {
  struct late_push *lp = arg;
  int64_t limit = weir__now_ms() + WAIT_LIMIT_MS;
  struct weir_msg m = {WEIR_MSG_BATCH, 0, NULL};
  char buf[32];
  weir_record r = make_record(77, buf, sizeof(buf));

  while (!consumer_waiting(lp->gate) && weir__now_ms() < limit)
    sleep_ms(1);
  if ((m.batch = weir__chan_acquire(lp->chan, &lp->rc)) == NULL)
    return NULL;
  if ((lp->rc = weir__batch_append(m.batch, &r)) == 0)
    lp->rc = weir__chan_push(lp->chan, &m);
  return NULL;
}

Test(channel, pop_with_deadline_wakes_for_a_push) {
  struct weir_gate g;
  struct late_push lp;
  pthread_t t;

  cr_assert_eq(weir__gate_init(&g, 2, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  lp.chan = &g.chans[1];
  lp.gate = &g;
  lp.rc = -100;
  cr_assert_eq(pthread_create(&t, NULL, push_when_consumer_waits, &lp), 0);
  {
    struct weir_msg m;
    size_t idx;
    int rc = weir__gate_pop(&g, &m, &idx, weir__now_ms() + 2 * WAIT_LIMIT_MS);

    cr_assert_eq(rc, 0, "pop: %s", weir_err_name(rc));
    cr_assert_eq(idx, 1);
    cr_assert_eq(m.batch->recs[0].offset, 77);
    weir__chan_release(&g.chans[idx], m.batch);
  }
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(lp.rc, 0, "producer: %s", weir_err_name(lp.rc));
  weir__gate_destroy(&g);
}

/* ---- backpressure ------------------------------------------------------------------------ */

struct producer {
  struct weir_chan *chan;
  size_t n;           /* messages to send */
  atomic_size_t done; /* messages sent so far */
  int rc;             /* first push/acquire failure */
};

/* Pushes n watermarks 0..n-1, counting each one after it is in the ring. */
static void *push_watermarks(void *arg) {
  struct producer *p = arg;
  size_t i;

  for (i = 0; i < p->n; i++) {
    struct weir_msg m = {WEIR_MSG_WATERMARK, (int64_t)i, NULL};

    if ((p->rc = weir__chan_push(p->chan, &m)) != 0)
      break;
    atomic_fetch_add(&p->done, 1);
  }
  return NULL;
}

Test(channel, full_ring_blocks_the_producer_until_half_is_free) {
  enum { N = 4, EXTRA = 3 };
  struct weir_gate g;
  struct producer p = {NULL, N + EXTRA, 0, 0};
  pthread_t t;
  size_t i;

  cr_assert_eq(weir__gate_init(&g, 1, N, BATCH_RECORDS, BATCH_BYTES), 0);
  p.chan = &g.chans[0];
  cr_assert_eq(pthread_create(&t, NULL, push_watermarks, &p), 0);

  wait_producers_blocked(&g, 0, 1);
  sleep_ms(GRACE_MS);
  cr_assert_eq(atomic_load(&p.done), N, "a full ring of %d took %zu messages", N,
               atomic_load(&p.done));
  cr_assert_eq(producers_waiting(&g, 0), 1, "the producer left its wait without a pop");

  /* A blocked producer is woken once half the ring is free, not on every pop: after one pop
   * (3 of 4 queued) it stays blocked; after the second (2 of 4) it refills the ring. */
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 0);
  sleep_ms(GRACE_MS);
  cr_assert_eq(atomic_load(&p.done), N, "the producer moved before half the ring was free");
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 1);
  wait_counter(&p.done, N + 2);
  wait_producers_blocked(&g, 0, 1);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 2);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 3);
  wait_counter(&p.done, N + EXTRA);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(p.rc, 0);
  for (i = N; i < N + EXTRA; i++)
    expect_control(&g, 0, WEIR_MSG_WATERMARK, (int64_t)i);
  expect_pop_rc(&g, WEIR_ETIMEDOUT);
  weir__gate_destroy(&g);
}

struct acquirer {
  struct weir_chan *chan;
  atomic_size_t done;
  struct weir_batch *got;
  int err;
};

static void *acquire_one(void *arg) {
  struct acquirer *a = arg;

  a->got = weir__chan_acquire(a->chan, &a->err);
  atomic_fetch_add(&a->done, 1);
  return NULL;
}

Test(channel, batch_pool_is_bounded) {
  enum { N = 3, POOL = N + 2 };
  struct weir_batch *held[POOL];
  struct acquirer a = {NULL, 0, NULL, -100};
  struct weir_gate g;
  pthread_t t;
  size_t i;
  int err;

  cr_assert_eq(weir__gate_init(&g, 1, N, BATCH_RECORDS, BATCH_BYTES), 0);
  for (i = 0; i < POOL; i++) {
    held[i] = weir__chan_acquire(&g.chans[0], &err);
    cr_assert_not_null(held[i]);
    cr_assert_eq(err, 0);
  }
  /* Queued batches count against the pool as much as held ones. */
  {
    struct weir_msg m = {WEIR_MSG_BATCH, 0, held[0]};

    cr_assert_eq(weir__chan_push(&g.chans[0], &m), 0);
  }

  a.chan = &g.chans[0];
  cr_assert_eq(pthread_create(&t, NULL, acquire_one, &a), 0);
  wait_producers_blocked(&g, 0, 1);
  sleep_ms(GRACE_MS);
  cr_assert_eq(atomic_load(&a.done), 0, "acquired a batch beyond the pool bound");
  cr_assert_eq(g.chans[0].n_alloc, POOL);

  /* Consuming the queued batch and releasing it hands it to the waiting producer. */
  {
    struct weir_msg m;
    size_t idx;

    cr_assert_eq(weir__gate_pop(&g, &m, &idx, -1), 0);
    cr_assert_eq(m.batch, held[0]);
    weir__chan_release(&g.chans[idx], m.batch);
  }
  wait_counter(&a.done, 1);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(a.err, 0);
  cr_assert_eq(a.got, held[0], "the waiter should get the recycled batch");
  cr_assert_eq(g.chans[0].n_alloc, POOL, "the pool grew past its bound");

  for (i = 0; i < POOL; i++)
    weir__chan_release(&g.chans[0], held[i]);
  cr_assert_eq(g.chans[0].n_free, POOL);
  weir__gate_destroy(&g);
}

Test(channel, released_batches_are_reset_and_reused) {
  struct weir_gate g;
  struct weir_batch *b, *again;
  char buf[32];
  weir_record r = make_record(1, buf, sizeof(buf));
  int err;

  cr_assert_eq(weir__gate_init(&g, 1, 1, BATCH_RECORDS, BATCH_BYTES), 0);
  b = weir__chan_acquire(&g.chans[0], &err);
  cr_assert_not_null(b);
  cr_assert_eq(b->cap, BATCH_RECORDS);
  cr_assert_eq(b->arena_cap, BATCH_BYTES);
  cr_assert_eq(weir__batch_append(b, &r), 0);
  weir__chan_release(&g.chans[0], b);
  again = weir__chan_acquire(&g.chans[0], &err);
  cr_assert_eq(again, b);
  cr_assert_eq(again->len, 0);
  cr_assert_eq(again->used, 0);
  cr_assert_eq(g.chans[0].n_alloc, 1, "release must recycle, not allocate");
  weir__chan_release(&g.chans[0], again);
  weir__gate_destroy(&g);
}

/* ---- blocking one channel ---------------------------------------------------------------- */

Test(channel, block_holds_back_one_channel_while_others_flow) {
  struct weir_gate g;

  cr_assert_eq(weir__gate_init(&g, 3, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  push_batch(&g.chans[0], 1);
  push_batch(&g.chans[0], 2);
  push_batch(&g.chans[1], 10);
  push_batch(&g.chans[1], 11);
  push_batch(&g.chans[2], 20);

  weir__gate_block(&g, 0, true);
  expect_batch(&g, 1, 10);
  expect_batch(&g, 2, 20);
  expect_batch(&g, 1, 11);
  /* Channel 0 has two batches queued, but it is held back. */
  expect_pop_rc(&g, WEIR_ETIMEDOUT);
  cr_assert_eq(g.chans[0].len, 2);

  /* The other channels may even end; a blocked END is not delivered, so no EOF yet. */
  push_control(&g.chans[0], WEIR_MSG_END, 0);
  push_control(&g.chans[1], WEIR_MSG_END, 0);
  push_control(&g.chans[2], WEIR_MSG_END, 0);
  expect_control(&g, 2, WEIR_MSG_END, 0);
  expect_control(&g, 1, WEIR_MSG_END, 0);
  expect_pop_rc(&g, WEIR_ETIMEDOUT);

  weir__gate_block(&g, 0, false);
  expect_batch(&g, 0, 1);
  expect_batch(&g, 0, 2);
  expect_control(&g, 0, WEIR_MSG_END, 0);
  expect_pop_rc(&g, WEIR_EOF);
  weir__gate_destroy(&g);
}

Test(channel, blocked_channel_still_applies_backpressure) {
  enum { N = 2 };
  struct weir_gate g;
  struct producer p = {NULL, N + 1, 0, 0};
  pthread_t t;

  cr_assert_eq(weir__gate_init(&g, 2, N, BATCH_RECORDS, BATCH_BYTES), 0);
  weir__gate_block(&g, 0, true);
  p.chan = &g.chans[0];
  cr_assert_eq(pthread_create(&t, NULL, push_watermarks, &p), 0);
  wait_producers_blocked(&g, 0, 1);
  cr_assert_eq(atomic_load(&p.done), N);

  /* The unblocked channel flows past the stuck one. */
  push_batch(&g.chans[1], 5);
  expect_batch(&g, 1, 5);
  cr_assert_eq(atomic_load(&p.done), N);

  weir__gate_block(&g, 0, false);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 0);
  wait_counter(&p.done, N + 1);
  cr_assert_eq(pthread_join(t, NULL), 0);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 1);
  expect_control(&g, 0, WEIR_MSG_WATERMARK, 2);
  weir__gate_destroy(&g);
}

/* ---- cancel ------------------------------------------------------------------------------ */

Test(channel, cancel_wakes_a_producer_blocked_in_acquire) {
  enum { N = 1, POOL = N + 2 };
  struct weir_batch *held[POOL];
  struct acquirer a = {NULL, 0, NULL, -100};
  struct weir_gate g;
  pthread_t t;
  size_t i;
  int err;

  cr_assert_eq(weir__gate_init(&g, 2, N, BATCH_RECORDS, BATCH_BYTES), 0);
  for (i = 0; i < POOL; i++) {
    held[i] = weir__chan_acquire(&g.chans[1], &err);
    cr_assert_not_null(held[i]);
  }
  a.chan = &g.chans[1];
  cr_assert_eq(pthread_create(&t, NULL, acquire_one, &a), 0);
  wait_producers_blocked(&g, 1, 1);
  cr_assert_eq(atomic_load(&a.done), 0);

  weir__gate_cancel(&g);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_null(a.got);
  cr_assert_eq(a.err, WEIR_ECANCELED, "acquire: %s", weir_err_name(a.err));

  /* Every later acquire fails the same way, even with a free batch in the pool. */
  weir__chan_release(&g.chans[1], held[0]);
  cr_assert_null(weir__chan_acquire(&g.chans[1], &err));
  cr_assert_eq(err, WEIR_ECANCELED);
  cr_assert_null(weir__chan_acquire(&g.chans[0], &err));
  cr_assert_eq(err, WEIR_ECANCELED);
  for (i = 1; i < POOL; i++)
    weir__chan_release(&g.chans[1], held[i]);
  weir__gate_destroy(&g);
}

struct batch_pusher {
  struct weir_chan *chan;
  struct weir_batch *batch;
  atomic_size_t done;
  int rc;
};

static void *push_one_batch(void *arg) {
  struct batch_pusher *bp = arg;
  struct weir_msg m = {WEIR_MSG_BATCH, 0, bp->batch};

  bp->rc = weir__chan_push(bp->chan, &m);
  atomic_fetch_add(&bp->done, 1);
  return NULL;
}

Test(channel, cancel_wakes_a_producer_blocked_in_push) {
  enum { N = 2 };
  struct batch_pusher bp = {NULL, NULL, 0, -100};
  struct weir_gate g;
  pthread_t t;
  size_t free_before;
  int err, i;

  cr_assert_eq(weir__gate_init(&g, 1, N, BATCH_RECORDS, BATCH_BYTES), 0);
  for (i = 0; i < N; i++)
    push_control(&g.chans[0], WEIR_MSG_WATERMARK, i);
  bp.chan = &g.chans[0];
  bp.batch = weir__chan_acquire(&g.chans[0], &err);
  cr_assert_not_null(bp.batch);
  free_before = g.chans[0].n_free;
  cr_assert_eq(pthread_create(&t, NULL, push_one_batch, &bp), 0);
  wait_producers_blocked(&g, 0, 1);
  cr_assert_eq(atomic_load(&bp.done), 0);

  weir__gate_cancel(&g);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(bp.rc, WEIR_ECANCELED, "push: %s", weir_err_name(bp.rc));
  /* The refused batch went back to the pool: the producer must not touch it again. */
  cr_assert_eq(g.chans[0].n_free, free_before + 1);
  cr_assert_eq(g.chans[0].len, N, "a refused message was queued");

  /* Later pushes, of control messages too, are refused without blocking. */
  {
    struct weir_msg m = {WEIR_MSG_END, 0, NULL};

    cr_assert_eq(weir__chan_push(&g.chans[0], &m), WEIR_ECANCELED);
  }
  weir__gate_destroy(&g);
}

struct popper {
  struct weir_gate *gate;
  int64_t deadline;
  int rc;
};

static void *pop_one(void *arg) {
  struct popper *p = arg;
  struct weir_msg m;
  size_t idx;

  p->rc = weir__gate_pop(p->gate, &m, &idx, p->deadline);
  return NULL;
}

static void cancel_wakes_consumer(int64_t deadline) {
  struct weir_gate g;
  struct popper p = {NULL, deadline, -100};
  pthread_t t;

  cr_assert_eq(weir__gate_init(&g, 2, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  p.gate = &g;
  cr_assert_eq(pthread_create(&t, NULL, pop_one, &p), 0);
  wait_consumer_blocked(&g);
  weir__gate_cancel(&g);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(p.rc, WEIR_ECANCELED, "pop: %s", weir_err_name(p.rc));
  weir__gate_destroy(&g);
}

Test(channel, cancel_wakes_a_blocked_consumer) {
  cancel_wakes_consumer(-1);
}

Test(channel, cancel_wakes_a_consumer_waiting_with_a_deadline) {
  cancel_wakes_consumer(weir__now_ms() + 10 * WAIT_LIMIT_MS);
}

Test(channel, cancel_beats_queued_messages_and_destroy_frees_them) {
  struct weir_gate g;
  struct weir_msg m;
  size_t idx;

  cr_assert_eq(weir__gate_init(&g, 2, 4, BATCH_RECORDS, BATCH_BYTES), 0);
  push_batch(&g.chans[0], 1);
  push_batch(&g.chans[0], 2);
  push_batch(&g.chans[1], 3);
  weir__gate_cancel(&g);
  cr_assert_eq(weir__gate_pop(&g, &m, &idx, -1), WEIR_ECANCELED);
  /* Three batches are still queued; destroy frees them (checked by ASan's leak detector). */
  cr_assert_eq(g.chans[0].len + g.chans[1].len, 3);
  weir__gate_destroy(&g);
}

/* ---- batches ----------------------------------------------------------------------------- */

Test(batch, append_copies_value_key_and_meta_into_the_arena) {
  struct weir_batch *b = weir__batch_new(4, 64);
  char value[] = "hello", key[] = "k1", meta[] = "file.txt";
  weir_record r = weir_record_init();
  const weir_record *got;

  cr_assert_not_null(b);
  r.value = weir_buf_str(value);
  r.key = weir_buf_str(key);
  r.meta = weir_buf_str(meta);
  r.timestamp = 1234;
  r.offset = 99;
  cr_assert_eq(weir__batch_append(b, &r), 0);
  cr_assert_eq(b->len, 1);
  cr_assert_eq(b->used, 5 + 2 + 8);

  /* The caller's buffers may change or die after append. */
  memset(value, 'X', 5);
  memset(key, 'X', 2);
  memset(meta, 'X', 8);
  got = &b->recs[0];
  cr_assert_eq(got->value.len, 5);
  cr_assert_eq(memcmp(got->value.ptr, "hello", 5), 0);
  cr_assert_eq(got->key.len, 2);
  cr_assert_eq(memcmp(got->key.ptr, "k1", 2), 0);
  cr_assert_eq(got->meta.len, 8);
  cr_assert_eq(memcmp(got->meta.ptr, "file.txt", 8), 0);
  cr_assert_eq(got->timestamp, 1234);
  cr_assert_eq(got->offset, 99);
  cr_assert(got->value.ptr >= b->arena && got->meta.ptr + 8 <= b->arena + b->arena_cap,
            "record bytes live outside the arena");

  /* A record without key or meta has NULL views for them, and no timestamp stays none. */
  r = weir_record_init();
  r.value = weir_buf_str("v");
  cr_assert_eq(weir__batch_append(b, &r), 0);
  got = &b->recs[1];
  cr_assert_null(got->key.ptr);
  cr_assert_eq(got->key.len, 0);
  cr_assert_null(got->meta.ptr);
  cr_assert_eq(got->timestamp, WEIR_NO_TIMESTAMP);
  cr_assert_eq(got->value.ptr, b->arena + 15, "records are packed in append order");
  cr_assert_eq(memcmp(b->recs[0].value.ptr, "hello", 5), 0, "append overwrote an earlier record");
  weir__batch_free(b);
}

Test(batch, full_by_record_count_returns_eagain) {
  struct weir_batch *b = weir__batch_new(3, 4096);
  weir_record r = weir_record_init();
  int i;

  cr_assert_not_null(b);
  r.value = weir_buf_str("abc");
  for (i = 0; i < 3; i++)
    cr_assert_eq(weir__batch_append(b, &r), 0);
  cr_assert_eq(weir__batch_append(b, &r), WEIR_EAGAIN);
  cr_assert_eq(b->len, 3, "a refused append changed the batch");
  cr_assert_eq(b->used, 9);

  weir__batch_reset(b);
  cr_assert_eq(b->len, 0);
  cr_assert_eq(b->used, 0);
  cr_assert_eq(weir__batch_append(b, &r), 0);
  cr_assert_eq(b->recs[0].value.ptr, b->arena, "reset must rewind the arena");
  weir__batch_free(b);
}

Test(batch, full_by_bytes_returns_eagain_and_too_big_returns_etoobig) {
  enum { ARENA = 32 };
  struct weir_batch *b = weir__batch_new(100, ARENA);
  uint8_t big[ARENA + 1];
  weir_record r = weir_record_init();

  cr_assert_not_null(b);
  memset(big, 'b', sizeof(big));

  /* 20 + 10 bytes fit; 3 more do not, but would fit in an empty batch. */
  r.value.ptr = big;
  r.value.len = 20;
  cr_assert_eq(weir__batch_append(b, &r), 0);
  r.value.len = 10;
  cr_assert_eq(weir__batch_append(b, &r), 0);
  r.value.len = 3;
  cr_assert_eq(weir__batch_append(b, &r), WEIR_EAGAIN);
  cr_assert_eq(b->len, 2);
  cr_assert_eq(b->used, 30);
  r.value.len = 2;
  cr_assert_eq(weir__batch_append(b, &r), 0, "an exact fit must be accepted");
  cr_assert_eq(b->used, ARENA);

  /* The bound counts value, key and meta together; it is ETOOBIG even on a full batch. */
  r.value.len = 20;
  r.key.ptr = big;
  r.key.len = 10;
  r.meta.ptr = big;
  r.meta.len = 3;
  cr_assert_eq(weir__batch_append(b, &r), WEIR_ETOOBIG);
  weir__batch_reset(b);
  cr_assert_eq(weir__batch_append(b, &r), WEIR_ETOOBIG);
  cr_assert_eq(b->len, 0);

  r = weir_record_init();
  r.value.ptr = big;
  r.value.len = ARENA + 1;
  cr_assert_eq(weir__batch_append(b, &r), WEIR_ETOOBIG);
  r.value.len = ARENA;
  cr_assert_eq(weir__batch_append(b, &r), 0, "a record of exactly the arena size fits");
  weir__batch_free(b);
}

Test(batch, empty_records_take_no_bytes) {
  struct weir_batch *b = weir__batch_new(2, 4096);
  weir_record r = weir_record_init();

  cr_assert_not_null(b);
  cr_assert_eq(weir__batch_append(b, &r), 0);
  cr_assert_eq(weir__batch_append(b, &r), 0);
  cr_assert_eq(b->used, 0);
  cr_assert_eq(b->recs[1].value.len, 0);
  cr_assert_eq(weir__batch_append(b, &r), WEIR_EAGAIN);
  weir__batch_free(b);
}

/* ---- many producers ---------------------------------------------------------------------- */

#define STRESS_PRODUCERS 4
#define STRESS_CHANS 2 /* producers 0 and 2 share channel 0; 1 and 3 share channel 1 */
#define STRESS_MSGS 10000
#define STRESS_RING 4
#define STRESS_WM_EVERY 97

/* A record's offset encodes its producer and sequence number; so does a watermark's value. */
#define STRESS_TAG(p, seq) (((uint64_t)(p) << 32) | (uint64_t)(seq))

struct stress {
  struct weir_gate gate;
  atomic_int live[STRESS_CHANS]; /* producers still sending on each channel */
};

struct stress_producer {
  struct stress *s;
  int id;
  int rc;
};

/* Sends STRESS_MSGS messages: batches of 1..5 records with consecutive sequence numbers, and
 * every STRESS_WM_EVERY-th message a watermark carrying the next sequence number. The last
 * producer of a channel ends it. */
static void *stress_produce(void *arg) {
  struct stress_producer *sp = arg;
  struct weir_chan *c = &sp->s->gate.chans[sp->id % STRESS_CHANS];
  uint64_t seq = 0;
  int i;

  for (i = 0; i < STRESS_MSGS; i++) {
    struct weir_msg m = {WEIR_MSG_BATCH, 0, NULL};
    int k, n = 1 + (i * 7 + sp->id) % 5;

    if (i % STRESS_WM_EVERY == 0) {
      m.kind = WEIR_MSG_WATERMARK;
      m.value = (int64_t)STRESS_TAG(sp->id, seq);
    } else {
      if ((m.batch = weir__chan_acquire(c, &sp->rc)) == NULL)
        return NULL;
      for (k = 0; k < n; k++) {
        weir_record r = weir_record_init();

        r.offset = STRESS_TAG(sp->id, seq);
        r.value.ptr = (const uint8_t *)&r.offset;
        r.value.len = sizeof(r.offset);
        if ((sp->rc = weir__batch_append(m.batch, &r)) != 0)
          return NULL;
        seq++;
      }
    }
    if ((sp->rc = weir__chan_push(c, &m)) != 0)
      return NULL;
  }
  if (atomic_fetch_sub(&sp->s->live[sp->id % STRESS_CHANS], 1) == 1) {
    struct weir_msg end = {WEIR_MSG_END, 0, NULL};

    sp->rc = weir__chan_push(c, &end);
  }
  return NULL;
}

Test(channel, many_producers_keep_per_producer_order) {
  struct stress s;
  struct stress_producer sp[STRESS_PRODUCERS];
  pthread_t t[STRESS_PRODUCERS];
  uint64_t next[STRESS_PRODUCERS] = {0}, total = 0, expect_total = 0, sent;
  size_t watermarks = 0, ends = 0;
  int i, rc;

  cr_assert_eq(weir__gate_init(&s.gate, STRESS_CHANS, STRESS_RING, 8, 256), 0);
  for (i = 0; i < STRESS_CHANS; i++)
    atomic_init(&s.live[i], STRESS_PRODUCERS / STRESS_CHANS);
  for (i = 0; i < STRESS_PRODUCERS; i++) {
    sp[i] = (struct stress_producer){&s, i, 0};
    cr_assert_eq(pthread_create(&t[i], NULL, stress_produce, &sp[i]), 0);
  }

  for (;;) {
    struct weir_msg m;
    size_t idx, k;

    rc = weir__gate_pop(&s.gate, &m, &idx, weir__now_ms() + WAIT_LIMIT_MS);
    if (rc != 0)
      break;
    cr_assert_lt(idx, STRESS_CHANS);
    if (m.kind == WEIR_MSG_END) {
      ends++;
      continue;
    }
    if (m.kind == WEIR_MSG_WATERMARK) {
      uint64_t p = (uint64_t)m.value >> 32;

      /* In-band: every record the producer sent before the watermark arrived before it. */
      cr_assert_lt(p, STRESS_PRODUCERS);
      cr_assert_eq((int)(p % STRESS_CHANS), (int)idx, "watermark on the wrong channel");
      cr_assert_eq((uint64_t)m.value, STRESS_TAG(p, next[p]),
                   "producer %d: watermark at seq %llu, records delivered up to %llu", (int)p,
                   (unsigned long long)(m.value & 0xffffffff), (unsigned long long)next[p]);
      watermarks++;
      continue;
    }
    cr_assert_eq(m.kind, WEIR_MSG_BATCH);
    cr_assert_gt(m.batch->len, 0);
    for (k = 0; k < m.batch->len; k++) {
      uint64_t off = m.batch->recs[k].offset, p = off >> 32, v;

      cr_assert_lt(p, STRESS_PRODUCERS);
      cr_assert_eq((int)(p % STRESS_CHANS), (int)idx, "record on the wrong channel");
      cr_assert_eq(off & 0xffffffff, next[p], "producer %d: got seq %llu, want %llu", (int)p,
                   (unsigned long long)(off & 0xffffffff), (unsigned long long)next[p]);
      cr_assert_eq(m.batch->recs[k].value.len, sizeof(v));
      memcpy(&v, m.batch->recs[k].value.ptr, sizeof(v));
      cr_assert_eq(v, off, "record bytes corrupted");
      next[p]++;
      total++;
    }
    weir__chan_release(&s.gate.chans[idx], m.batch);
  }
  cr_assert_eq(rc, WEIR_EOF, "pop: %s", weir_err_name(rc));
  for (i = 0; i < STRESS_PRODUCERS; i++) {
    int j;

    cr_assert_eq(pthread_join(t[i], NULL), 0);
    cr_assert_eq(sp[i].rc, 0, "producer %d: %s", i, weir_err_name(sp[i].rc));
    for (sent = 0, j = 0; j < STRESS_MSGS; j++)
      if (j % STRESS_WM_EVERY != 0)
        sent += (uint64_t)(1 + (j * 7 + i) % 5);
    cr_assert_eq(next[i], sent, "producer %d: got %llu of %llu records", i,
                 (unsigned long long)next[i], (unsigned long long)sent);
    expect_total += sent;
  }
  cr_assert_eq(ends, STRESS_CHANS);
  cr_assert_eq(watermarks,
               (size_t)STRESS_PRODUCERS * ((STRESS_MSGS + STRESS_WM_EVERY - 1) / STRESS_WM_EVERY));
  cr_assert_eq(total, expect_total, "records: got %llu, sent %llu", (unsigned long long)total,
               (unsigned long long)expect_total);
  for (i = 0; i < STRESS_CHANS; i++) {
    cr_assert_leq(s.gate.chans[i].n_alloc, STRESS_RING + 2, "pool grew past its bound");
    cr_assert_eq(s.gate.chans[i].n_free, s.gate.chans[i].n_alloc, "a batch was lost");
  }
  weir__gate_destroy(&s.gate);
}
