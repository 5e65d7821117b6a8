/* test_state.c: keyed state (runtime/state.c): value/map/list semantics, snapshot and restore,
 * redistribution across parallelism changes, damaged blobs, and the byte budget. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/checkpoint.pb-c.h"
#include "runtime/job_int.h"
#include "runtime/state_int.h"

#define MAXP 128

static weir_buf sbuf(const char *s) {
  weir_buf b = {(const uint8_t *)s, strlen(s)};
  return b;
}

static weir_buf kbuf(char *tmp, size_t cap, const char *prefix, unsigned i) {
  int n = snprintf(tmp, cap, "%s%u", prefix, i);
  weir_buf b = {(const uint8_t *)tmp, (size_t)n};
  return b;
}

static bool buf_is(weir_buf b, const char *s) {
  return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

static struct weir__keyed_backend *make_backend(int subtask, int parallelism, size_t max_bytes) {
  struct weir__keyed_backend *b = NULL;
  uint32_t first, last;

  weir__key_group_range(subtask, parallelism, MAXP, &first, &last);
  cr_assert_eq(weir__keyed_backend_create(MAXP, first, last, max_bytes, &b), 0);
  return b;
}

static weir_value_state *value_state(struct weir__keyed_backend *b, const char *name) {
  void *st = NULL;

  cr_assert_eq(weir__keyed_backend_register(b, WEIR__STATE_VALUE, name, &st), 0);
  return st;
}

static weir_map_state *map_state(struct weir__keyed_backend *b, const char *name) {
  void *st = NULL;

  cr_assert_eq(weir__keyed_backend_register(b, WEIR__STATE_MAP, name, &st), 0);
  return st;
}

static weir_list_state *list_state(struct weir__keyed_backend *b, const char *name) {
  void *st = NULL;

  cr_assert_eq(weir__keyed_backend_register(b, WEIR__STATE_LIST, name, &st), 0);
  return st;
}

/* ---- key groups ----------------------------------------------------------------------------- */

Test(state, key_group_range_matches_owner) {
  static const int maxps[] = {1, 2, 3, 7, 128, 1000};
  size_t m;

  for (m = 0; m < sizeof(maxps) / sizeof(maxps[0]); m++) {
    int maxp = maxps[m], p, i;

    for (p = 1; p <= maxp && p <= 40; p++) {
      uint32_t next = 0;

      for (i = 0; i < p; i++) {
        uint32_t first, last, kg;

        weir__key_group_range(i, p, maxp, &first, &last);
        cr_assert_eq(first, next, "maxp %d p %d subtask %d: gap", maxp, p, i);
        cr_assert_leq(first, last);
        for (kg = first; kg <= last; kg++)
          cr_assert_eq(weir__key_group_subtask(kg, maxp, p), i);
        next = last + 1;
      }
      cr_assert_eq(next, (uint32_t)maxp);
    }
  }
}

/* ---- value state ---------------------------------------------------------------------------- */

Test(state, value_semantics) {
  struct weir__keyed_backend *b = make_backend(0, 1, 0);
  weir_value_state *v = value_state(b, "v"), *again;
  weir_buf got, empty = {NULL, 0};
  char big[1000];

  cr_assert_eq(weir_value_state_get(v, sbuf("a"), &got), WEIR_ENOTFOUND);
  cr_assert_eq(weir_value_state_put(v, sbuf("a"), sbuf("1")), 0);
  cr_assert_eq(weir_value_state_get(v, sbuf("a"), &got), 0);
  cr_assert(buf_is(got, "1"));
  /* Grow past the block, shrink back, and write a value borrowed from the state itself. */
  memset(big, 'b', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  cr_assert_eq(weir_value_state_put(v, sbuf("a"), sbuf(big)), 0);
  cr_assert_eq(weir_value_state_get(v, sbuf("a"), &got), 0);
  cr_assert(buf_is(got, big));
  cr_assert_eq(weir_value_state_put(v, sbuf("a"), sbuf("22")), 0);
  cr_assert_eq(weir_value_state_get(v, sbuf("a"), &got), 0);
  cr_assert(buf_is(got, "22"));
  cr_assert_eq(weir_value_state_put(v, sbuf("b"), got), 0);
  cr_assert_eq(weir_value_state_get(v, sbuf("b"), &got), 0);
  cr_assert(buf_is(got, "22"));
  /* Empty key and empty value are values like any other. */
  cr_assert_eq(weir_value_state_put(v, empty, empty), 0);
  cr_assert_eq(weir_value_state_get(v, empty, &got), 0);
  cr_assert_eq(got.len, 0);
  cr_assert_eq(weir_value_state_count(v), 3);
  cr_assert_eq(weir_value_state_remove(v, sbuf("a")), 0);
  cr_assert_eq(weir_value_state_remove(v, sbuf("a")), WEIR_ENOTFOUND);
  cr_assert_eq(weir_value_state_get(v, sbuf("a"), &got), WEIR_ENOTFOUND);
  cr_assert_eq(weir_value_state_count(v), 2);
  /* Same name and kind: same handle; another kind: refused. */
  again = value_state(b, "v");
  cr_assert_eq(again, v);
  {
    void *st;
    cr_assert_eq(weir__keyed_backend_register(b, WEIR__STATE_MAP, "v", &st), WEIR_EINVAL);
    cr_assert_eq(weir__keyed_backend_register(b, WEIR__STATE_VALUE, "", &st), WEIR_EINVAL);
  }
  weir__keyed_backend_destroy(b);
}

Test(state, many_keys_with_churn) {
  struct weir__keyed_backend *b = make_backend(0, 1, 0);
  weir_value_state *v = value_state(b, "v");
  char k[32], val[32];
  size_t bytes_after_first;
  unsigned i, round;
  weir_buf got;

  for (round = 0; round < 3; round++) {
    for (i = 0; i < 50000; i++) {
      snprintf(val, sizeof(val), "r%u-%u", round, i);
      cr_assert_eq(weir_value_state_put(v, kbuf(k, sizeof(k), "key-", i), sbuf(val)), 0);
    }
    for (i = 0; i < 50000; i += 2)
      cr_assert_eq(weir_value_state_remove(v, kbuf(k, sizeof(k), "key-", i)), 0);
    cr_assert_eq(weir_value_state_count(v), 25000);
    for (i = 0; i < 50000; i++) {
      int rc = weir_value_state_get(v, kbuf(k, sizeof(k), "key-", i), &got);

      snprintf(val, sizeof(val), "r%u-%u", round, i);
      if (i % 2 == 0) {
        cr_assert_eq(rc, WEIR_ENOTFOUND, "key %u", i);
      } else {
        cr_assert_eq(rc, 0, "key %u", i);
        cr_assert(buf_is(got, val));
      }
    }
    if (round == 0)
      bytes_after_first = weir__keyed_backend_bytes(b);
  }
  /* Steady churn reuses freed entries and blocks: no growth after the first round. */
  cr_assert_eq(weir__keyed_backend_bytes(b), bytes_after_first);
  weir__keyed_backend_destroy(b);
}

/* Keys of every length up to 40 that differ from each other in one byte only, at every
 * position: the index compares tags, then lengths, then bytes (inline up to 16 bytes). The
 * hashed calls (_h) and prefetch hints give the same results as the plain ones. */
Test(state, keys_differing_in_one_byte_and_hashed_calls) {
  struct weir__keyed_backend *b = make_backend(0, 1, 0);
  weir_value_state *v = value_state(b, "v");
  uint8_t key[40];
  size_t len, pos, n = 0;
  weir_buf got;

  weir__value_state_prefetch(v, 42, 0); /* empty table: nothing to prefetch */
  for (len = 0; len <= sizeof(key); len++)
    for (pos = 0; pos <= len; pos++) {
      weir_buf k = {key, len}, val = {(const uint8_t *)&n, sizeof(n)};

      memset(key, 'x', sizeof(key));
      if (pos < len)
        key[pos] = 'y';
      if (pos == len && len > 0)
        continue; /* only the empty key has no y */
      cr_assert_eq(weir__value_state_put_h(v, k, weir__state_key_hash(k), val), 0);
      n++;
    }
  cr_assert_eq(weir_value_state_count(v), n);
  n = 0;
  for (len = 0; len <= sizeof(key); len++)
    for (pos = 0; pos <= len; pos++) {
      weir_buf k = {key, len};
      size_t want = n;
      uint64_t h;

      memset(key, 'x', sizeof(key));
      if (pos < len)
        key[pos] = 'y';
      if (pos == len && len > 0)
        continue;
      h = weir__state_key_hash(k);
      weir__value_state_prefetch(v, h, 0);
      weir__value_state_prefetch(v, h, 1);
      weir__value_state_prefetch(v, h, 2);
      cr_assert_eq(weir_value_state_get(v, k, &got), 0, "len %zu pos %zu", len, pos);
      cr_assert_eq(got.len, sizeof(want));
      cr_assert_eq(memcmp(got.ptr, &want, sizeof(want)), 0, "len %zu pos %zu", len, pos);
      cr_assert_eq(weir__value_state_get_h(v, k, h, &got), 0);
      cr_assert_eq(memcmp(got.ptr, &want, sizeof(want)), 0);
      n++;
    }
  /* A length differs from every stored one at this position: not found. */
  memset(key, 'x', sizeof(key));
  key[3] = 'z';
  cr_assert_eq(weir_value_state_get(v, (weir_buf){key, 12}, &got), WEIR_ENOTFOUND);
  cr_assert_eq(weir__value_state_remove_h(v, (weir_buf){key, 12}, 7), WEIR_ENOTFOUND);
  /* Remove half through the hashed call; the rest stay reachable (backward-shift delete). */
  n = 0;
  for (len = 0; len <= sizeof(key); len++)
    for (pos = 0; pos <= len; pos++) {
      weir_buf k = {key, len};

      memset(key, 'x', sizeof(key));
      if (pos < len)
        key[pos] = 'y';
      if (pos == len && len > 0)
        continue;
      if (n++ % 2 == 0)
        cr_assert_eq(weir__value_state_remove_h(v, k, weir__state_key_hash(k)), 0);
      else
        cr_assert_eq(weir_value_state_get(v, k, &got), 0, "len %zu pos %zu", len, pos);
    }
  cr_assert_eq(weir_value_state_count(v), n / 2);
  weir__keyed_backend_destroy(b);
}

Test(state, foreign_key_refused) {
  struct weir__keyed_backend *b = make_backend(0, 2, 0); /* key groups 0..63 */
  weir_value_state *v = value_state(b, "v");
  char k[32];
  unsigned i;

  for (i = 0;; i++) {
    weir_buf key = kbuf(k, sizeof(k), "k", i);

    if (weir__key_group(key, MAXP) >= 64) {
      cr_assert_eq(weir_value_state_put(v, key, sbuf("x")), WEIR_EINVAL);
      cr_assert(strstr(weir__state_last_error(), "outside this subtask's key groups") != NULL);
      break;
    }
    cr_assert_eq(weir_value_state_put(v, key, sbuf("x")), 0);
  }
  weir__keyed_backend_destroy(b);
}

/* ---- map and list state --------------------------------------------------------------------- */

static int count_cb(void *data, weir_buf mk, weir_buf val) {
  (void)mk;
  (void)val;
  (*(int *)data)++;
  return 0;
}

Test(state, map_semantics) {
  struct weir__keyed_backend *b = make_backend(0, 1, 0);
  weir_map_state *m = map_state(b, "m");
  char mk[32], val[32];
  weir_buf got;
  int n = 0, i;

  cr_assert_eq(weir_map_state_get(m, sbuf("a"), sbuf("x"), &got), WEIR_ENOTFOUND);
  for (i = 0; i < 100; i++) {
    snprintf(val, sizeof(val), "v%d", i);
    cr_assert_eq(weir_map_state_put(m, sbuf("a"), kbuf(mk, sizeof(mk), "mk", i), sbuf(val)), 0);
  }
  cr_assert_eq(weir_map_state_put(m, sbuf("b"), sbuf("mk1"), sbuf("other")), 0);
  cr_assert_eq(weir_map_state_put(m, sbuf("a"), sbuf("mk5"), sbuf("five")), 0);
  cr_assert_eq(weir_map_state_get(m, sbuf("a"), sbuf("mk5"), &got), 0);
  cr_assert(buf_is(got, "five"));
  cr_assert_eq(weir_map_state_get(m, sbuf("b"), sbuf("mk1"), &got), 0);
  cr_assert(buf_is(got, "other"));
  cr_assert_eq(weir_map_state_get(m, sbuf("a"), sbuf("mk1"), &got), 0);
  cr_assert(buf_is(got, "v1"));
  cr_assert_eq(weir_map_state_foreach(m, sbuf("a"), count_cb, &n), 0);
  cr_assert_eq(n, 100);
  cr_assert_eq(weir_map_state_remove(m, sbuf("a"), sbuf("mk7")), 0);
  cr_assert_eq(weir_map_state_remove(m, sbuf("a"), sbuf("mk7")), WEIR_ENOTFOUND);
  n = 0;
  cr_assert_eq(weir_map_state_foreach(m, sbuf("a"), count_cb, &n), 0);
  cr_assert_eq(n, 99);
  cr_assert_eq(weir__keyed_backend_key_count(b), 2);
  cr_assert_eq(weir_map_state_clear(m, sbuf("a")), 0);
  n = 0;
  cr_assert_eq(weir_map_state_foreach(m, sbuf("a"), count_cb, &n), 0);
  cr_assert_eq(n, 0);
  cr_assert_eq(weir_map_state_get(m, sbuf("a"), sbuf("mk1"), &got), WEIR_ENOTFOUND);
  /* The key goes away with its last entry. */
  cr_assert_eq(weir_map_state_remove(m, sbuf("b"), sbuf("mk1")), 0);
  cr_assert_eq(weir__keyed_backend_key_count(b), 0);
  weir__keyed_backend_destroy(b);
}

struct collected {
  char vals[16][16];
  int n;
};

static int list_cb(void *data, weir_buf v) {
  struct collected *c = data;

  cr_assert_lt(c->n, 16);
  memcpy(c->vals[c->n], v.ptr, v.len);
  c->vals[c->n][v.len] = '\0';
  c->n++;
  return 0;
}

Test(state, list_semantics) {
  struct weir__keyed_backend *b = make_backend(0, 1, 0);
  weir_list_state *l = list_state(b, "l");
  struct collected c = {{{0}}, 0};
  char val[16];
  int i;

  cr_assert_eq(weir_list_state_len(l, sbuf("k")), 0);
  for (i = 0; i < 10; i++) {
    snprintf(val, sizeof(val), "e%d", i);
    cr_assert_eq(weir_list_state_append(l, sbuf("k"), sbuf(val)), 0);
  }
  cr_assert_eq(weir_list_state_append(l, sbuf("j"), sbuf("other")), 0);
  cr_assert_eq(weir_list_state_len(l, sbuf("k")), 10);
  cr_assert_eq(weir_list_state_foreach(l, sbuf("k"), list_cb, &c), 0);
  cr_assert_eq(c.n, 10);
  for (i = 0; i < 10; i++) {
    snprintf(val, sizeof(val), "e%d", i);
    cr_assert_str_eq(c.vals[i], val, "append order");
  }
  cr_assert_eq(weir_list_state_clear(l, sbuf("k")), 0);
  cr_assert_eq(weir_list_state_len(l, sbuf("k")), 0);
  cr_assert_eq(weir_list_state_len(l, sbuf("j")), 1);
  weir__keyed_backend_destroy(b);
}

/* ---- snapshot and restore ------------------------------------------------------------------- */

/* Fills value "v", map "m" and list "l" with n keys (only keys this backend owns). */
static unsigned fill(struct weir__keyed_backend *b, int subtask, int p, unsigned n) {
  weir_value_state *v = value_state(b, "v");
  weir_map_state *m = map_state(b, "m");
  weir_list_state *l = list_state(b, "l");
  char k[32], val[32];
  unsigned i, mine = 0;

  for (i = 0; i < n; i++) {
    weir_buf key = kbuf(k, sizeof(k), "key-", i);

    if (weir__key_group_subtask(weir__key_group(key, MAXP), MAXP, p) != subtask)
      continue;
    mine++;
    snprintf(val, sizeof(val), "val-%u", i);
    cr_assert_eq(weir_value_state_put(v, key, sbuf(val)), 0);
    if (i % 3 == 0) {
      cr_assert_eq(weir_map_state_put(m, key, sbuf("x"), sbuf(val)), 0);
      cr_assert_eq(weir_map_state_put(m, key, sbuf("y"), sbuf("why")), 0);
    }
    if (i % 5 == 0) {
      cr_assert_eq(weir_list_state_append(l, key, sbuf("first")), 0);
      cr_assert_eq(weir_list_state_append(l, key, sbuf(val)), 0);
    }
  }
  return mine;
}

/* Checks that `b` holds exactly what fill() put for the keys it owns. */
static void verify(struct weir__keyed_backend *b, int subtask, int p, unsigned n) {
  weir_value_state *v = value_state(b, "v");
  weir_map_state *m = map_state(b, "m");
  weir_list_state *l = list_state(b, "l");
  char k[32], val[32];
  unsigned i;
  weir_buf got;

  for (i = 0; i < n; i++) {
    weir_buf key = kbuf(k, sizeof(k), "key-", i);
    struct collected c = {{{0}}, 0};

    if (weir__key_group_subtask(weir__key_group(key, MAXP), MAXP, p) != subtask)
      continue;
    snprintf(val, sizeof(val), "val-%u", i);
    cr_assert_eq(weir_value_state_get(v, key, &got), 0, "key %u lost", i);
    cr_assert(buf_is(got, val));
    if (i % 3 == 0) {
      cr_assert_eq(weir_map_state_get(m, key, sbuf("x"), &got), 0);
      cr_assert(buf_is(got, val));
      cr_assert_eq(weir_map_state_get(m, key, sbuf("y"), &got), 0);
      cr_assert(buf_is(got, "why"));
    } else {
      cr_assert_eq(weir_map_state_get(m, key, sbuf("x"), &got), WEIR_ENOTFOUND);
    }
    cr_assert_eq(weir_list_state_foreach(l, key, list_cb, &c), 0);
    if (i % 5 == 0) {
      cr_assert_eq(c.n, 2);
      cr_assert_str_eq(c.vals[0], "first");
      cr_assert_str_eq(c.vals[1], val);
    } else {
      cr_assert_eq(c.n, 0);
    }
  }
}

Test(state, snapshot_restore_round_trip) {
  struct weir__keyed_backend *a = make_backend(0, 1, 0), *b = make_backend(0, 1, 0);
  struct weir__snapshot_blob blob, blob2;
  struct weir__snapshot_header hdr;
  uint8_t *ops = NULL;
  size_t ops_len = 0;
  unsigned n = fill(a, 0, 1, 5000);
  weir_buf in;
  int rc;

  cr_assert_eq(n, 5000);
  cr_assert_eq(
      weir__keyed_backend_snapshot(a, "counter", 0, 1, (const uint8_t *)"opstate", 7, &blob), 0);
  cr_assert_eq(blob.key_count, 5000 + 1667 + 1000);
  in.ptr = blob.ptr;
  in.len = blob.len;
  rc = weir__keyed_backend_restore(b, in, "test blob", &ops, &ops_len, &hdr);
  cr_assert_eq(rc, 0, "%s", weir__state_last_error());
  cr_assert_eq(ops_len, 7);
  cr_assert_eq(memcmp(ops, "opstate", 7), 0);
  cr_assert_eq(hdr.key_count, blob.key_count);
  cr_assert_eq(hdr.key_count_all, blob.key_count);
  cr_assert_eq(hdr.parallelism, 1);
  verify(b, 0, 1, 5000);
  cr_assert_eq(weir__keyed_backend_key_count(b), weir__keyed_backend_key_count(a));
  /* Snapshotting the restored backend gives a blob of the same size (same content, possibly in
   * another order within a key group). */
  cr_assert_eq(weir__keyed_backend_snapshot(b, "counter", 0, 1, ops, ops_len, &blob2), 0);
  cr_assert_eq(blob2.len, blob.len);
  /* Restoring the same blob twice is a duplicate-key error, never a silent merge. */
  cr_assert_eq(weir__keyed_backend_restore(b, in, "again", NULL, NULL, NULL), WEIR_EPARSE);
  cr_assert(strstr(weir__state_last_error(), "twice") != NULL, "%s", weir__state_last_error());
  free(ops);
  free(blob.ptr);
  free(blob2.ptr);
  weir__keyed_backend_destroy(a);
  weir__keyed_backend_destroy(b);
}

Test(state, restore_registers_states_first_met) {
  struct weir__keyed_backend *a = make_backend(0, 1, 0), *b = make_backend(0, 1, 0);
  struct weir__snapshot_blob blob;
  weir_value_state *v;
  weir_buf got, in;
  void *st;

  cr_assert_eq(weir_value_state_put(value_state(a, "count"), sbuf("k"), sbuf("3")), 0);
  cr_assert_eq(weir__keyed_backend_snapshot(a, "op", 0, 1, NULL, 0, &blob), 0);
  in.ptr = blob.ptr;
  in.len = blob.len;
  cr_assert_eq(weir__keyed_backend_restore(b, in, NULL, NULL, NULL, NULL), 0);
  v = value_state(b, "count"); /* the operator's open runs after restore */
  cr_assert_eq(weir_value_state_get(v, sbuf("k"), &got), 0);
  cr_assert(buf_is(got, "3"));
  /* A state restored as one kind cannot be registered as another. */
  cr_assert_eq(weir__keyed_backend_register(b, WEIR__STATE_LIST, "count", &st), WEIR_EINVAL);
  free(blob.ptr);
  weir__keyed_backend_destroy(a);
  weir__keyed_backend_destroy(b);
}

/* 100k keys written by 2 subtasks (parallelism 2) restored into 3 subtasks (parallelism 3):
 * every key lands in exactly the subtask owning its key group; none lost or duplicated. */
Test(state, rescale_2_to_3_redistributes_by_key_group) {
  enum { N = 100000 };
  struct weir__keyed_backend *old[2], *neu[3];
  struct weir__snapshot_blob blobs[2];
  uint64_t total = 0;
  char k[32], val[32];
  unsigned i;
  int s, t;

  for (s = 0; s < 2; s++) {
    weir_value_state *v;

    old[s] = make_backend(s, 2, 0);
    v = value_state(old[s], "count");
    for (i = 0; i < N; i++) {
      weir_buf key = kbuf(k, sizeof(k), "user-", i);

      if (weir__key_group_subtask(weir__key_group(key, MAXP), MAXP, 2) != s)
        continue;
      snprintf(val, sizeof(val), "%u", i * 7);
      cr_assert_eq(weir_value_state_put(v, key, sbuf(val)), 0);
    }
    cr_assert_eq(weir__keyed_backend_snapshot(old[s], "count-op", s, 2, NULL, 0, &blobs[s]), 0);
  }
  cr_assert_eq(blobs[0].key_count + blobs[1].key_count, N);
  for (t = 0; t < 3; t++) {
    neu[t] = make_backend(t, 3, 0);
    for (s = 0; s < 2; s++) {
      weir_buf in = {blobs[s].ptr, blobs[s].len};
      char origin[64];

      snprintf(origin, sizeof(origin), "old subtask %d", s);
      cr_assert_eq(weir__keyed_backend_restore(neu[t], in, origin, NULL, NULL, NULL), 0, "%s",
                   weir__state_last_error());
    }
    total += weir__keyed_backend_key_count(neu[t]);
  }
  cr_assert_eq(total, N, "keys lost or duplicated: %llu", (unsigned long long)total);
  for (i = 0; i < N; i++) {
    weir_buf key = kbuf(k, sizeof(k), "user-", i), got;
    int owner = weir__key_group_subtask(weir__key_group(key, MAXP), MAXP, 3), found = 0;

    for (t = 0; t < 3; t++) {
      weir_value_state *v = value_state(neu[t], "count");
      int rc = weir_value_state_get(v, key, &got);

      if (t == owner) {
        cr_assert_eq(rc, 0, "key %u missing from its owner %d", i, owner);
        snprintf(val, sizeof(val), "%u", i * 7);
        cr_assert(buf_is(got, val));
        found++;
      } else {
        cr_assert_eq(rc, WEIR_EINVAL, "key %u readable from subtask %d", i, t);
      }
    }
    cr_assert_eq(found, 1);
  }
  for (s = 0; s < 2; s++) {
    free(blobs[s].ptr);
    weir__keyed_backend_destroy(old[s]);
  }
  for (t = 0; t < 3; t++)
    weir__keyed_backend_destroy(neu[t]);
}

Test(state, rescale_3_to_1_with_map_and_list) {
  struct weir__keyed_backend *old[3], *one = make_backend(0, 1, 0);
  struct weir__snapshot_blob blobs[3];
  unsigned total = 0;
  int s;

  for (s = 0; s < 3; s++) {
    weir_buf in;

    old[s] = make_backend(s, 3, 0);
    total += fill(old[s], s, 3, 3000);
    cr_assert_eq(weir__keyed_backend_snapshot(old[s], "op", s, 3, NULL, 0, &blobs[s]), 0);
    in.ptr = blobs[s].ptr;
    in.len = blobs[s].len;
    cr_assert_eq(weir__keyed_backend_restore(one, in, NULL, NULL, NULL, NULL), 0);
  }
  cr_assert_eq(total, 3000);
  verify(one, 0, 1, 3000);
  for (s = 0; s < 3; s++) {
    free(blobs[s].ptr);
    weir__keyed_backend_destroy(old[s]);
  }
  weir__keyed_backend_destroy(one);
}

/* ---- damaged and foreign blobs -------------------------------------------------------------- */

static struct weir__snapshot_blob sample_blob(void) {
  struct weir__keyed_backend *a = make_backend(0, 1, 0);
  struct weir__snapshot_blob blob;

  fill(a, 0, 1, 500);
  cr_assert_eq(weir__keyed_backend_snapshot(a, "op", 0, 1, NULL, 0, &blob), 0);
  weir__keyed_backend_destroy(a);
  return blob;
}

/* Decodes the sample blob, lets `edit` change it, re-encodes. */
static weir_buf edited(void (*edit)(Weir__Ckpt__OperatorSnapshot *m), uint8_t **owned) {
  struct weir__snapshot_blob blob = sample_blob();
  Weir__Ckpt__OperatorSnapshot *m = weir__ckpt__operator_snapshot__unpack(NULL, blob.len, blob.ptr);
  weir_buf out;

  cr_assert_not_null(m);
  edit(m);
  *owned = malloc(weir__ckpt__operator_snapshot__get_packed_size(m));
  out.len = weir__ckpt__operator_snapshot__pack(m, *owned);
  out.ptr = *owned;
  weir__ckpt__operator_snapshot__free_unpacked(m, NULL);
  free(blob.ptr);
  return out;
}

static void version_2(Weir__Ckpt__OperatorSnapshot *m) {
  m->format_version = 2;
}

static void maxp_64(Weir__Ckpt__OperatorSnapshot *m) {
  m->max_parallelism = 64;
}

static void wrong_group(Weir__Ckpt__OperatorSnapshot *m) {
  m->key_groups[0]->key_group = m->key_groups[1]->key_group;
}

static void drop_trailer(Weir__Ckpt__OperatorSnapshot *m) {
  m->n_key_groups--; /* as if cut at a key-group boundary */
  weir__ckpt__key_group__free_unpacked(m->key_groups[m->n_key_groups], NULL);
}

static void expect_restore_error(weir_buf in, int want, const char *needle) {
  struct weir__keyed_backend *b = make_backend(0, 1, 0);
  int rc = weir__keyed_backend_restore(b, in, "checkpoint 9 uid 'op' subtask 0", NULL, NULL, NULL);

  cr_assert_eq(rc, want, "got %s: %s", weir_err_name(rc), weir__state_last_error());
  cr_assert(strstr(weir__state_last_error(), "checkpoint 9 uid 'op' subtask 0") != NULL, "%s",
            weir__state_last_error());
  cr_assert(strstr(weir__state_last_error(), needle) != NULL, "'%s' lacks '%s'",
            weir__state_last_error(), needle);
  weir__keyed_backend_destroy(b);
}

Test(state, foreign_version_is_clear_error) {
  uint8_t *owned;

  expect_restore_error(edited(version_2, &owned), WEIR_EPARSE,
                       "snapshot format version 2 is not supported");
  free(owned);
}

Test(state, changed_max_parallelism_is_clear_error) {
  uint8_t *owned;

  expect_restore_error(edited(maxp_64, &owned), WEIR_EINVAL, "max parallelism 64");
  free(owned);
}

Test(state, key_in_wrong_group_is_corrupt) {
  uint8_t *owned;

  expect_restore_error(edited(wrong_group, &owned), WEIR_EPARSE, "under key group");
  free(owned);
}

Test(state, blob_cut_at_field_boundary_is_detected) {
  uint8_t *owned;

  expect_restore_error(edited(drop_trailer, &owned), WEIR_EPARSE, "truncated or corrupt");
  free(owned);
}

Test(state, truncated_and_garbage_blobs_are_clear_errors) {
  struct weir__snapshot_blob blob = sample_blob();
  weir_buf in = {blob.ptr, blob.len / 2};
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};

  expect_restore_error(in, WEIR_EPARSE, "truncated or corrupt");
  in.len = blob.len - 1;
  expect_restore_error(in, WEIR_EPARSE, "truncated or corrupt");
  in.ptr = junk;
  in.len = sizeof(junk);
  expect_restore_error(in, WEIR_EPARSE, "truncated or corrupt");
  in.len = 0; /* an empty blob decodes to version 0 */
  expect_restore_error(in, WEIR_EPARSE, "format version 0");
  free(blob.ptr);
}

/* ---- budget --------------------------------------------------------------------------------- */

Test(state, budget_reached_is_etoobig_and_changes_nothing) {
  struct weir__keyed_backend *b = make_backend(0, 1, 1 << 20);
  weir_value_state *v = value_state(b, "v");
  char k[32], val[64];
  unsigned i, n;
  weir_buf got;
  int rc = 0;

  memset(val, 'v', sizeof(val) - 1);
  val[sizeof(val) - 1] = '\0';
  for (i = 0; i < 1000000 && rc == 0; i++)
    rc = weir_value_state_put(v, kbuf(k, sizeof(k), "key-", i), sbuf(val));
  cr_assert_eq(rc, WEIR_ETOOBIG);
  cr_assert(strstr(weir__state_last_error(), "budget") != NULL, "%s", weir__state_last_error());
  cr_assert_leq(weir__keyed_backend_bytes(b), (size_t)1 << 20);
  n = i - 1; /* keys 0..n-1 were stored */
  cr_assert_eq(weir_value_state_count(v), n);
  cr_assert_eq(weir_value_state_get(v, kbuf(k, sizeof(k), "key-", n), &got), WEIR_ENOTFOUND);
  cr_assert_eq(weir_value_state_get(v, kbuf(k, sizeof(k), "key-", n - 1), &got), 0);
  /* Freed room is reused. */
  cr_assert_eq(weir_value_state_remove(v, kbuf(k, sizeof(k), "key-", 0)), 0);
  cr_assert_eq(weir_value_state_put(v, kbuf(k, sizeof(k), "key-", n), sbuf(val)), 0);
  /* An entry over the per-entry bound is refused up front. */
  {
    weir_buf huge = {(const uint8_t *)val, (size_t)WEIR_STATE_MAX_ENTRY_BYTES + 1};
    cr_assert_eq(weir_value_state_put(v, sbuf("x"), huge), WEIR_ETOOBIG);
  }
  weir__keyed_backend_destroy(b);
}

Test(state, restore_over_budget_is_etoobig) {
  struct weir__snapshot_blob blob = sample_blob();
  struct weir__keyed_backend *b = make_backend(0, 1, 64 * 1024);
  weir_buf in = {blob.ptr, blob.len};

  cr_assert_eq(weir__keyed_backend_restore(b, in, "small", NULL, NULL, NULL), WEIR_ETOOBIG);
  cr_assert(strstr(weir__state_last_error(), "small: ") == weir__state_last_error(), "%s",
            weir__state_last_error());
  free(blob.ptr);
  weir__keyed_backend_destroy(b);
}
