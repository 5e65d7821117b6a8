/*
 * test_ksink_buf.c: the Kinesis sink's record buffer (connectors/kinesis/sink_batch.c) on its
 * own: the entry ring over the ring arena, with its early wrap.
 *
 * Every check walks the live entries oldest first and asserts the layout arena_place relies
 * on: each entry inside the arena, offsets ascending with at most one drop (the wrap), entries
 * after the drop ending at or before the head's offset, none overlapping the previous one,
 * arena_tail at the end of the newest, buf_bytes the sum; and that sampled bytes of every entry
 * still hold what was pushed (an overwrite by a later record shows).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kinesis/sink_int.h"

#define MiB ((size_t)1 << 20)
/* The soft bound in sink_batch.c (ARENA_SOFT_BYTES). */
#define SOFT MiB

struct buf {
  struct ksub s;
  weir_kinesis_sink_config cfg;
  uint32_t *seq; /* cap_ents: the record number at each ring position */
  uint32_t next; /* the next record number */
  size_t max_end;
  size_t wraps; /* pushes placed at 0 with entries live */
  size_t early; /* of which would have fit before the arena's end */
  uint8_t *data;
};

static void buf_open(struct buf *b, size_t arena, size_t ents) {
  memset(b, 0, sizeof(*b));
  weir_kinesis_sink_config_init(&b->cfg);
  b->cfg.max_buffered_records = ents;
  b->cfg.max_buffered_bytes = arena;
  b->cfg.max_request_records = 500;
  b->cfg.max_in_flight = 4;
  b->cfg.aggregation = false;
  b->s.cfg = &b->cfg;
  b->s.arena_cap = arena;
  cr_assert_eq(weir__ksink_buf_init(&b->s), 0);
  b->seq = calloc(ents, sizeof(*b->seq));
  b->data = malloc(arena);
  cr_assert(b->seq != NULL && b->data != NULL);
}

static void buf_close(struct buf *b) {
  weir__ksink_buf_free(&b->s);
  free(b->seq);
  free(b->data);
}

static uint8_t pat(uint32_t seq, size_t i) {
  return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static size_t ring(const struct ksub *s, size_t i) {
  return (s->head + i) % s->cap_ents;
}

/* Pushes record `next` of data_len bytes (key "k<next>") when it fits; returns whether. */
static bool push(struct buf *b, size_t data_len) {
  struct ksub *s = &b->s;
  char key[16];
  size_t klen = (size_t)snprintf(key, sizeof(key), "k%u", b->next), pos;
  size_t tail = s->arena_tail;

  if (!weir__ksink_buf_fits(s, data_len + klen))
    return false;
  for (size_t i = 0; i < data_len; i++)
    b->data[i] = pat(b->next, i);
  pos = ring(s, s->n_ents);
  weir__ksink_buf_push(s, 0, (weir_buf){b->data, data_len}, (weir_buf){(const uint8_t *)key, klen},
                       (weir_buf){NULL, 0}, NULL);
  cr_assert_eq(s->ents[pos].state, KENT_PENDING);
  if (s->ents[pos].off == 0 && s->n_ents > 1) {
    b->wraps++;
    b->early += s->arena_cap - tail >= data_len + klen;
  }
  if (s->arena_tail > b->max_end)
    b->max_end = s->arena_tail;
  b->seq[pos] = b->next++;
  return true;
}

/* Acknowledges the i-th oldest live entry (any order) and reclaims. */
static void ack(struct buf *b, size_t i) {
  b->s.ents[ring(&b->s, i)].state = KENT_DONE;
  weir__ksink_buf_reclaim(&b->s);
}

static void check(const struct buf *b) {
  const struct ksub *s = &b->s;
  size_t drops = 0, sum = 0, prev_off = 0, prev_end = 0, head_off;

  if (s->n_ents == 0) {
    cr_assert_eq(s->arena_tail, 0);
    cr_assert_eq(s->buf_bytes, 0);
    return;
  }
  head_off = s->ents[s->head].off;
  for (size_t i = 0; i < s->n_ents; i++) {
    const struct kentry *e = &s->ents[ring(s, i)];
    size_t len = (size_t)e->data_len + e->key_len + e->ehk_len;
    weir_buf d = weir__ksink_data(s, e);
    char key[16];

    cr_assert_leq(e->off + len, s->arena_cap, "entry %zu past the arena", i);
    if (i > 0 && e->off < prev_off) {
      drops++;
      cr_assert_eq(e->off, 0, "a wrap goes to offset 0");
    } else if (i > 0) {
      cr_assert_geq(e->off, prev_end, "entry %zu overlaps the one before", i);
    }
    if (drops > 0)
      cr_assert_leq(e->off + len, head_off, "wrapped entry %zu runs into the head", i);
    /* Sampled bytes: the ends and every 4 KiB. */
    for (size_t k = 0; k < d.len; k = k + 1 < 8 || k + 9 > d.len ? k + 1 : k + 4096)
      cr_assert_eq(d.ptr[k], pat(b->seq[ring(s, i)], k), "entry %zu byte %zu", i, k);
    snprintf(key, sizeof(key), "k%u", b->seq[ring(s, i)]);
    cr_assert_eq(weir__ksink_key(s, e).len, strlen(key));
    cr_assert(memcmp(weir__ksink_key(s, e).ptr, key, strlen(key)) == 0);
    prev_off = e->off;
    prev_end = e->off + len;
    sum += len;
  }
  cr_assert_leq(drops, 1);
  cr_assert_eq(s->arena_tail, prev_end, "arena_tail is the end of the newest entry");
  cr_assert_eq(s->buf_bytes, sum);
}

Test(ksink_buf, steady_flow_wraps_early_and_reuses_the_arena_start) {
  /* 100-byte records, four requests of 500 in flight: ~200 KB live in an 8 MiB arena. */
  struct buf b;

  buf_open(&b, 8 * MiB, 10000);
  for (int i = 0; i < 200000; i++) {
    if (b.s.n_ents >= 2000) {
      for (int k = 0; k < 500; k++)
        b.s.ents[ring(&b.s, (size_t)k)].state = KENT_DONE;
      weir__ksink_buf_reclaim(&b.s);
    }
    cr_assert(push(&b, 100));
    if (i % 997 == 0)
      check(&b);
  }
  check(&b);
  cr_assert_gt(b.early, 10, "the ring wrapped early %zu times", b.early);
  cr_assert_lt(b.max_end, 2 * SOFT, "the tail reached %zu of an 8 MiB arena", b.max_end);
  buf_close(&b);
}

Test(ksink_buf, full_buffer_uses_the_whole_arena) {
  struct buf b;

  buf_open(&b, 8 * MiB, 1u << 17);
  /* Nothing acknowledged: the buffer fills the arena, not just the soft bound. */
  while (push(&b, 1000))
    ;
  check(&b);
  cr_assert_geq(b.s.buf_bytes, 8 * MiB - 1100);
  cr_assert_eq(b.wraps, 0);
  while (b.s.n_ents > 0)
    ack(&b, 0);
  check(&b);
  cr_assert(push(&b, 10));
  cr_assert_eq(b.s.ents[b.s.head].off, 0, "an empty buffer starts again at 0");

  buf_close(&b);
}

Test(ksink_buf, ring_full_by_count_wraps_early_without_losing_room) {
  /* As in bench_kinesis_sink: the producer keeps the entry ring full (10000 records of ~100
   * bytes, ~1 MiB) and requests of 500 come back oldest first. The ring cycles through a few
   * MiB of the arena, and every time a record does not fit it is the entry ring that is full,
   * never the space before the head. */
  struct buf b;
  size_t full = 0;

  buf_open(&b, 8 * MiB, 10000);
  while (b.next < 300000) {
    if (!push(&b, 100)) {
      cr_assert_eq(b.s.n_ents, b.s.cap_ents, "the arena ran out first (%zu bytes live)",
                   b.s.buf_bytes);
      check(&b);
      full++;
      for (int k = 0; k < 500; k++)
        b.s.ents[ring(&b.s, (size_t)k)].state = KENT_DONE;
      weir__ksink_buf_reclaim(&b.s);
    }
  }
  check(&b);
  cr_assert_gt(full, 500);
  cr_assert_gt(b.early, 10, "the ring wrapped early %zu times", b.early);
  cr_assert_lt(b.max_end, 4 * MiB, "the tail reached %zu of an 8 MiB arena", b.max_end);
  buf_close(&b);
}

Test(ksink_buf, records_larger_than_the_soft_bound) {
  /* Records of 0.5..3.5 MiB (up to the sink's limit of half the arena) among small ones,
   * acknowledged out of order. */
  struct buf b;
  uint64_t x = 0x9E3779B97F4A7C15u;

  buf_open(&b, 8 * MiB, 4096);
  for (int i = 0; i < 1500; i++) {
    size_t len;

    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    len = x % 4 == 0 ? MiB / 2 + (size_t)(x >> 8) % (3 * MiB) : (size_t)(x >> 8) % 2000;
    if (!push(&b, len)) {
      /* Full: acknowledge a random live entry (the head sometimes) until it fits. */
      while (!weir__ksink_buf_fits(&b.s, len + 16)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ack(&b, x % 3 == 0 ? 0 : (size_t)(x >> 8) % b.s.n_ents);
      }
      cr_assert(push(&b, len));
    }
    check(&b);
  }
  buf_close(&b);
}

Test(ksink_buf, random_sizes_and_acks_keep_every_invariant) {
  struct buf b;
  uint64_t x = 88172645463325252u;

  buf_open(&b, 4 * SOFT, 1024); /* the smallest arena that wraps early */
  for (int i = 0; i < 40000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    if (x % 16 < 9 || b.s.n_ents == 0) {
      size_t len = x % 97 == 0 ? (size_t)(x >> 8) % SOFT : (size_t)(x >> 8) % 700;

      push(&b, len); /* may not fit: then the buffer is unchanged */
    } else {
      /* Mostly near the head (requests come back roughly in order), sometimes anywhere. */
      size_t n = b.s.n_ents;
      ack(&b, x % 5 == 0 ? (size_t)(x >> 8) % n : (size_t)(x >> 8) % (n < 600 ? n : 600));
    }
    if (i % 8 == 0 || b.s.arena_tail < 4096)
      check(&b); /* and right after each wrap */
  }
  cr_assert_gt(b.early, 0);
  buf_close(&b);
}

Test(ksink_buf, early_wrap_only_when_the_record_fits_before_the_head) {
  /* Head entry at h >= the soft bound with few bytes live: a record of h bytes wraps early to
   * offset 0 (ending exactly at the head); one of h + 1 bytes does not fit there and goes at
   * the tail, as without the early wrap. */
  struct buf b;
  size_t h, t;

  buf_open(&b, 8 * MiB, 1024);
  cr_assert(push(&b, SOFT + 100)); /* record 0, key "k0" */
  cr_assert(push(&b, 100));        /* record 1 */
  ack(&b, 0);
  check(&b);
  h = b.s.ents[b.s.head].off;
  t = b.s.arena_tail;
  cr_assert_eq(h, SOFT + 100 + 2);
  cr_assert(push(&b, h + 1 - 2)); /* record 2: h + 1 bytes with its key */
  cr_assert_eq(b.s.ents[ring(&b.s, 1)].off, t, "a record longer than the space before the head");
  check(&b);
  ack(&b, 0); /* now only record 2 is live: too many bytes for an early wrap */
  check(&b);
  h = b.s.ents[b.s.head].off;
  cr_assert(push(&b, 100)); /* record 3 */
  cr_assert_eq(b.s.ents[ring(&b.s, 1)].off, h + b.s.ents[b.s.head].data_len + 2);
  ack(&b, 0);
  check(&b);
  h = b.s.ents[b.s.head].off; /* record 3, the only one live */
  cr_assert_geq(h, SOFT);
  cr_assert(push(&b, h - 2)); /* record 4: exactly h bytes: wraps early */
  cr_assert_eq(b.s.ents[ring(&b.s, 1)].off, 0);
  cr_assert_eq(b.s.arena_tail, h);
  check(&b);
  cr_assert(!weir__ksink_buf_fits(&b.s, 1), "the space before the head is full");
  buf_close(&b);
}

Test(ksink_buf, growing_backlog_fills_the_whole_arena) {
  /* Three records in for every one acknowledged: the live bytes are past half the soft bound
   * before the head is past the soft bound, so no early wrap cuts the buffer short. */
  struct buf b;

  buf_open(&b, 8 * MiB, 1u << 16);
  for (;;) {
    if (!push(&b, 500))
      break;
    if (b.next % 3 == 0)
      ack(&b, 0);
  }
  check(&b);
  cr_assert_geq(b.s.buf_bytes, 8 * MiB - 2 * SOFT, "full at %zu bytes", b.s.buf_bytes);
  buf_close(&b);
}
