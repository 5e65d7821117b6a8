/*
 * window_timers.c: the in-memory timer index of the window operator (see window_int.h).
 */
#include <stdlib.h>
#include <string.h>

#include "window_int.h"

/* Spare key buffers kept for reuse (each keeps its capacity). */
#define POOL_MAX 64

void weir__timers_init(struct weir__timers *t, size_t max_buckets) {
  memset(t, 0, sizeof(*t));
  t->max = max_buckets;
}

void weir__timers_destroy(struct weir__timers *t) {
  size_t i;

  for (i = 0; i < t->n; i++)
    free(t->b[i].buf);
  for (i = 0; i < t->n_pool; i++)
    free(t->pool[i].buf);
  free(t->b);
  free(t->pool);
  memset(t, 0, sizeof(*t));
}

/* Index of the first bucket with time >= `time`. */
static size_t lower_bound(const struct weir__timers *t, int64_t time) {
  size_t lo = 0, hi = t->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (t->b[mid].time < time)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int weir__timers_add(struct weir__timers *t, int64_t time, weir_buf key) {
  size_t i = lower_bound(t, time);
  struct weir__bucket *b;
  uint32_t klen = (uint32_t)key.len;

  if (i == t->n || t->b[i].time != time) {
    if (t->n == t->max)
      return WEIR_ETOOBIG;
    if (t->n == t->cap) {
      size_t cap = t->cap ? t->cap * 2 : 16;
      struct weir__bucket *nb;

      if (cap > t->max)
        cap = t->max;
      if ((nb = realloc(t->b, cap * sizeof(*nb))) == NULL)
        return WEIR_ENOMEM;
      t->b = nb;
      t->cap = cap;
    }
    memmove(&t->b[i + 1], &t->b[i], (t->n - i) * sizeof(t->b[0]));
    t->n++;
    b = &t->b[i];
    memset(b, 0, sizeof(*b));
    b->time = time;
    if (t->n_pool > 0)
      *b = t->pool[--t->n_pool], b->time = time, b->len = 0;
  }
  b = &t->b[i];
  if (key.len > UINT32_MAX - sizeof(klen))
    return WEIR_ETOOBIG;
  if (b->cap - b->len < sizeof(klen) + key.len) {
    size_t cap = b->cap ? b->cap : 256;
    uint8_t *nb;

    while (cap - b->len < sizeof(klen) + key.len)
      cap *= 2;
    if ((nb = realloc(b->buf, cap)) == NULL)
      return WEIR_ENOMEM;
    b->buf = nb;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, &klen, sizeof(klen));
  if (key.len)
    memcpy(b->buf + b->len + sizeof(klen), key.ptr, key.len);
  b->len += sizeof(klen) + key.len;
  t->n_keys++;
  return 0;
}

bool weir__timers_pop(struct weir__timers *t, int64_t limit, struct weir__bucket *out) {
  if (t->n == 0 || t->b[0].time > limit)
    return false;
  *out = t->b[0];
  memmove(&t->b[0], &t->b[1], (t->n - 1) * sizeof(t->b[0]));
  t->n--;
  return true;
}

void weir__timers_recycle(struct weir__timers *t, struct weir__bucket *b) {
  size_t i;

  for (i = 0; i + sizeof(uint32_t) <= b->len;) {
    uint32_t klen;

    memcpy(&klen, b->buf + i, sizeof(klen));
    i += sizeof(klen) + klen;
    t->n_keys--;
  }
  if (b->buf == NULL)
    return;
  if (t->n_pool < POOL_MAX) {
    if (t->pool == NULL && (t->pool = calloc(POOL_MAX, sizeof(*t->pool))) == NULL) {
      free(b->buf);
      return;
    }
    b->len = 0;
    t->pool[t->n_pool++] = *b;
    return;
  }
  free(b->buf);
}

int64_t weir__timers_next(const struct weir__timers *t) {
  return t->n ? t->b[0].time : INT64_MAX;
}
