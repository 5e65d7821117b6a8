/*
 * window_ref.h: helpers for the window tests (tests/integration/test_windows*.c and the
 * window crash child): a thread-safe collector of output lines and a straightforward
 * reference implementation of keyed tumbling/sliding window aggregates, formatted exactly
 * like the window operator's JSON results, to compare with.
 */
#ifndef WEIR_TEST_WINDOW_REF_H
#define WEIR_TEST_WINDOW_REF_H

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

/* ---- collecting output -------------------------------------------------------------------- */

struct lines {
  pthread_mutex_t mu;
  char **v;
  size_t n, cap;
};

static inline void lines_add(struct lines *l, const char *s, size_t len) {
  pthread_mutex_lock(&l->mu);
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->v = realloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n] = malloc(len + 1);
  memcpy(l->v[l->n], s, len);
  l->v[l->n][len] = '\0';
  l->n++;
  pthread_mutex_unlock(&l->mu);
}

static inline size_t lines_count(struct lines *l) {
  size_t n;

  pthread_mutex_lock(&l->mu);
  n = l->n;
  pthread_mutex_unlock(&l->mu);
  return n;
}

static inline int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  size_t i;

  (void)subtask;
  for (i = 0; i < n; i++)
    lines_add(data, (const char *)recs[i].value.ptr, recs[i].value.len);
  return 0;
}

static inline int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline void lines_sort(struct lines *l) {
  qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

static inline void lines_free(struct lines *l) {
  size_t i;

  for (i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* ---- reference aggregation ---------------------------------------------------------------- */

struct ref_win {
  char key[32];
  int64_t start, end;
  int64_t count;
  double sum, min, max;
};

struct ref {
  struct ref_win *w;
  size_t n, cap;
};

static inline int64_t ref_floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;

  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static inline void ref_add_one(struct ref *r, const char *key, int64_t start, int64_t end,
                               double v) {
  size_t i;

  for (i = 0; i < r->n; i++)
    if (r->w[i].start == start && strcmp(r->w[i].key, key) == 0)
      break;
  if (i == r->n) {
    if (r->n == r->cap) {
      r->cap = r->cap ? r->cap * 2 : 64;
      r->w = realloc(r->w, r->cap * sizeof(*r->w));
    }
    memset(&r->w[i], 0, sizeof(r->w[i]));
    snprintf(r->w[i].key, sizeof(r->w[i].key), "%s", key);
    r->w[i].start = start;
    r->w[i].end = end;
    r->w[i].min = r->w[i].max = v;
    r->n++;
  }
  r->w[i].count++;
  r->w[i].sum += v;
  if (v < r->w[i].min)
    r->w[i].min = v;
  if (v > r->w[i].max)
    r->w[i].max = v;
}

/* Adds a record to every window of size `size` sliding by `slide` (tumbling: slide = size). */
static inline void ref_add(struct ref *r, const char *key, int64_t ts, double v, int64_t size,
                           int64_t slide) {
  int64_t s;

  for (s = ref_floor_div(ts, slide) * slide; s > ts - size; s -= slide)
    ref_add_one(r, key, s, s + size, v);
}

static inline void ref_num(double v, char *buf, size_t cap) {
  if (v == floor(v) && fabs(v) <= 9007199254740992.0)
    snprintf(buf, cap, "%lld", (long long)v);
  else
    snprintf(buf, cap, "%.17g", v);
}

/* The operator's JSON for window i with all five built-in aggregates. */
static inline void ref_format(const struct ref_win *w, char *buf, size_t cap) {
  char sum[40], mn[40], mx[40], avg[40];

  ref_num(w->sum, sum, sizeof(sum));
  ref_num(w->min, mn, sizeof(mn));
  ref_num(w->max, mx, sizeof(mx));
  ref_num(w->sum / (double)w->count, avg, sizeof(avg));
  snprintf(buf, cap,
           "{\"key\":\"%s\",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64
           ",\"count\":%" PRId64 ",\"sum\":%s,\"min\":%s,\"max\":%s,\"avg\":%s}",
           w->key, w->start, w->end, w->count, sum, mn, mx, avg);
}

/* The reference results as sorted lines. */
static inline void ref_lines(const struct ref *r, struct lines *out) {
  char buf[512];
  size_t i;

  for (i = 0; i < r->n; i++) {
    ref_format(&r->w[i], buf, sizeof(buf));
    lines_add(out, buf, strlen(buf));
  }
  lines_sort(out);
}

static inline void ref_free(struct ref *r) {
  free(r->w);
  r->w = NULL;
  r->n = r->cap = 0;
}

#endif /* WEIR_TEST_WINDOW_REF_H */
