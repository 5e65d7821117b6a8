/* The window operator's timer index (operators/window_timers.c): order, bounds, reuse. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "operators/window_int.h"

static weir_buf key(const char *s) {
  weir_buf b = {(const uint8_t *)s, strlen(s)};

  return b;
}

/* The keys of a popped bucket, joined by ','. */
static void keys_of(const struct weir__bucket *b, char *out, size_t cap) {
  size_t i = 0, n = 0;

  out[0] = '\0';
  while (i + 4 <= b->len) {
    uint32_t klen;

    memcpy(&klen, b->buf + i, 4);
    i += 4;
    n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)klen,
                          (const char *)b->buf + i);
    i += klen;
  }
}

Test(window_timers, pops_due_buckets_in_time_order) {
  struct weir__timers t;
  struct weir__bucket b;
  char ks[128];

  weir__timers_init(&t, 8);
  cr_assert_eq(weir__timers_add(&t, 1999, key("a")), 0);
  cr_assert_eq(weir__timers_add(&t, 999, key("b")), 0);
  cr_assert_eq(weir__timers_add(&t, 999, key("c")), 0);
  cr_assert_eq(weir__timers_add(&t, -1, key("")), 0);
  cr_assert_eq(weir__timers_next(&t), -1);
  cr_assert(weir__timers_pop(&t, 1000, &b));
  cr_assert_eq(b.time, -1);
  keys_of(&b, ks, sizeof(ks));
  cr_assert_str_eq(ks, "");
  weir__timers_recycle(&t, &b);
  cr_assert(weir__timers_pop(&t, 1000, &b));
  cr_assert_eq(b.time, 999);
  keys_of(&b, ks, sizeof(ks));
  cr_assert_str_eq(ks, "b,c");
  weir__timers_recycle(&t, &b);
  cr_assert(!weir__timers_pop(&t, 1998, &b), "1999 is not due at 1998");
  cr_assert_eq(weir__timers_next(&t), 1999);
  /* A recycled buffer is reused by the next new time. */
  cr_assert_eq(weir__timers_add(&t, 5000, key("d")), 0);
  cr_assert_eq(t.n_pool, 1);
  cr_assert(weir__timers_pop(&t, INT64_MAX, &b));
  cr_assert_eq(b.time, 1999);
  weir__timers_recycle(&t, &b);
  cr_assert(weir__timers_pop(&t, INT64_MAX, &b));
  keys_of(&b, ks, sizeof(ks));
  cr_assert_str_eq(ks, "d");
  weir__timers_recycle(&t, &b);
  cr_assert_eq(t.n_keys, 0);
  cr_assert_eq(weir__timers_next(&t), INT64_MAX);
  weir__timers_destroy(&t);
}

Test(window_timers, bounds_distinct_times) {
  struct weir__timers t;
  int i;

  weir__timers_init(&t, 4);
  for (i = 0; i < 4; i++)
    cr_assert_eq(weir__timers_add(&t, i * 10, key("k")), 0);
  cr_assert_eq(weir__timers_add(&t, 10, key("more keys at a known time are fine")), 0);
  cr_assert_eq(weir__timers_add(&t, 99, key("k")), WEIR_ETOOBIG);
  cr_assert_eq(t.n, 4);
  weir__timers_destroy(&t);
}
