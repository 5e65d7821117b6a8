/* The built-in keyed aggregates: exact update streams, bad input, and restore from a savepoint. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weir/weir.h>

#define NKEYS 5

struct last {
  pthread_mutex_t mu;
  int64_t last[NKEYS];    /* latest update per key */
  int64_t updates[NKEYS]; /* updates seen per key */
  bool decreasing;        /* an update not above the key's previous one (sums of >= 0 values) */
};

/* Index of key "k<digit>", or -1. (No Criterion assertions here: it runs on task threads.) */
static int key_index(weir_buf k) {
  if (k.len != 2 || k.ptr[0] != 'k' || k.ptr[1] < '0' || k.ptr[1] >= '0' + NKEYS)
    return -1;
  return k.ptr[1] - '0';
}

static int collect(void *data, int subtask, const weir_record *recs, size_t n) {
  struct last *l = data;
  size_t i;

  (void)subtask;
  pthread_mutex_lock(&l->mu);
  for (i = 0; i < n; i++) {
    char num[32];
    int k = key_index(recs[i].key);
    int64_t v;

    if (k < 0) {
      l->decreasing = true; /* reported as a failure by every test */
      continue;
    }

    snprintf(num, sizeof(num), "%.*s", (int)recs[i].value.len, (const char *)recs[i].value.ptr);
    v = strtoll(num, NULL, 10);
    if (l->updates[k] > 0 && v < l->last[k])
      l->decreasing = true;
    l->last[k] = v;
    l->updates[k]++;
  }
  pthread_mutex_unlock(&l->mu);
  return 0;
}

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

/* Value of record i: i in decimal. */
static long decimal_index(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  (void)data;
  return snprintf((char *)buf, cap, "%" PRIu64, index);
}

static long not_a_number(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  (void)data;
  return snprintf((char *)buf, cap, index == 37 ? "12x" : "1");
}

struct pipeline {
  weir_job *job;
  weir_generator *gen;
};

static void build_par(struct pipeline *p, const char *dir, uint64_t count, weir_gen_fn fn, bool sum,
                      int gen_par, int par, struct last *l) {
  weir_generator_config g = {0};
  int src, keyed, agg;

  g.count = count;
  g.key_count = NKEYS;
  g.fn = fn;
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
  cr_assert_eq(weir_generator_create(&p->gen, &g), 0);
  cr_assert_eq(weir_job_create(&p->job, "keyed"), 0);
  if (dir != NULL)
    cr_assert_eq(weir_job_set_checkpoint_dir(p->job, dir), 0);
  cr_assert_eq(weir_job_add_generator(p->job, "gen", p->gen, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(p->job, src, gen_par), 0);
  cr_assert_eq(weir_job_key_by(p->job, src, "by-key", key_of, NULL, &keyed), 0);
  if (sum)
    cr_assert_eq(weir_job_keyed_sum(p->job, keyed, "sum", &agg), 0);
  else
    cr_assert_eq(weir_job_keyed_count(p->job, keyed, "count", &agg), 0);
  cr_assert_eq(weir_job_set_parallelism(p->job, agg, par), 0);
  cr_assert_eq(weir_job_add_callback_sink(p->job, agg, "out", collect, l, NULL), 0);
}

static void build(struct pipeline *p, const char *dir, uint64_t count, weir_gen_fn fn, bool sum,
                  int par, struct last *l) {
  build_par(p, dir, count, fn, sum, 1, par, l);
}

static void destroy(struct pipeline *p) {
  weir_job_destroy(p->job);
  weir_generator_destroy(p->gen);
}

Test(keyed, count_emits_every_update_exactly) {
  struct last l = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, false};
  struct pipeline p;
  int k;

  build(&p, NULL, 5000, NULL, false, 2, &l);
  cr_assert_eq(weir_job_run(p.job), 0, "%s", weir_job_error(p.job));
  for (k = 0; k < NKEYS; k++) {
    cr_assert_eq(l.last[k], 1000, "k%d counted %" PRId64, k, l.last[k]);
    cr_assert_eq(l.updates[k], 1000);
  }
  cr_assert(!l.decreasing);
  destroy(&p);
}

/* Sum over i < n with i mod NKEYS == k. */
static int64_t expected_sum(uint64_t n, int k) {
  int64_t s = 0;
  uint64_t i;

  for (i = (uint64_t)k; i < n; i += NKEYS)
    s += (int64_t)i;
  return s;
}

Test(keyed, sum_adds_decimal_values_per_key) {
  struct last l = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, false};
  struct pipeline p;
  int k;

  build(&p, NULL, 10000, decimal_index, true, 3, &l);
  cr_assert_eq(weir_job_run(p.job), 0, "%s", weir_job_error(p.job));
  for (k = 0; k < NKEYS; k++)
    cr_assert_eq(l.last[k], expected_sum(10000, k), "k%d summed %" PRId64, k, l.last[k]);
  cr_assert(!l.decreasing);
  destroy(&p);
}

Test(keyed, sum_of_a_non_number_names_the_record) {
  struct last l = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, false};
  struct pipeline p;

  build(&p, NULL, 100, not_a_number, true, 1, &l);
  cr_assert_eq(weir_job_run(p.job), WEIR_EPARSE);
  cr_assert(strstr(weir_job_error(p.job), "'sum'") != NULL, "%s", weir_job_error(p.job));
  cr_assert(strstr(weir_job_error(p.job), "offset 37") != NULL, "%s", weir_job_error(p.job));
  cr_assert(strstr(weir_job_error(p.job), "'12x'") != NULL, "%s", weir_job_error(p.job));
  destroy(&p);
}

Test(keyed, sum_restores_from_a_savepoint_at_another_parallelism, .timeout = 60) {
  struct last l = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, false};
  char tmpl[] = "/tmp/weir-keyed-XXXXXX";
  char *dir = mkdtemp(tmpl);
  const uint64_t n = 500000;
  struct pipeline p;
  int k;

  cr_assert_not_null(dir);
  build(&p, dir, n, decimal_index, true, 2, &l);
  cr_assert_eq(weir_job_start(p.job), 0);
  for (;;) {
    int64_t seen;
    struct timespec ts = {0, 2000000};

    pthread_mutex_lock(&l.mu);
    seen = l.updates[0];
    pthread_mutex_unlock(&l.mu);
    if (seen >= 100)
      break;
    nanosleep(&ts, NULL);
  }
  cr_assert_eq(weir_job_stop_with_savepoint(p.job), 0);
  cr_assert_eq(weir_job_wait(p.job), 0, "%s", weir_job_error(p.job));
  cr_assert_gt(weir_job_last_checkpoint(p.job), 0);
  destroy(&p);
  cr_assert_lt(l.last[0], expected_sum(n, 0), "the first run must stop before the end");

  build(&p, dir, n, decimal_index, true, 3, &l);
  cr_assert_eq(weir_job_run(p.job), 0, "%s", weir_job_error(p.job));
  for (k = 0; k < NKEYS; k++)
    cr_assert_eq(l.last[k], expected_sum(n, k), "k%d summed %" PRId64 " after restore", k,
                 l.last[k]);
  cr_assert(!l.decreasing);
  destroy(&p);
}

/* Stops a running pipeline with a savepoint once key k0 has `updates` updates. */
static void savepoint_after(struct pipeline *p, struct last *l, int64_t updates) {
  cr_assert_eq(weir_job_start(p->job), 0);
  for (;;) {
    int64_t seen;
    struct timespec ts = {0, 2000000};

    pthread_mutex_lock(&l->mu);
    seen = l->updates[0];
    pthread_mutex_unlock(&l->mu);
    if (seen >= updates)
      break;
    nanosleep(&ts, NULL);
  }
  cr_assert_eq(weir_job_stop_with_savepoint(p->job), 0);
  cr_assert_eq(weir_job_wait(p->job), 0, "%s", weir_job_error(p->job));
  cr_assert_gt(weir_job_last_checkpoint(p->job), 0);
}

/* The generator's splits are dealt out to a new source parallelism: 2 -> 3 (one subtask gets
 * none) -> 1 (one subtask takes them all); every index is summed exactly once. */
Test(keyed, source_positions_redistribute_across_parallelism_changes, .timeout = 90) {
  struct last l = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, false};
  char tmpl[] = "/tmp/weir-keyed-XXXXXX";
  char *dir = mkdtemp(tmpl);
  const uint64_t n = 300000;
  struct pipeline p;
  int k;

  cr_assert_not_null(dir);
  build_par(&p, dir, n, decimal_index, true, 2, 2, &l);
  savepoint_after(&p, &l, 100);
  destroy(&p);

  build_par(&p, dir, n, decimal_index, true, 3, 2, &l);
  savepoint_after(&p, &l, l.updates[0] + 100);
  destroy(&p);
  cr_assert_lt(l.last[0], expected_sum(n, 0), "the second run must stop before the end");

  build_par(&p, dir, n, decimal_index, true, 1, 3, &l);
  cr_assert_eq(weir_job_run(p.job), 0, "%s", weir_job_error(p.job));
  destroy(&p);
  for (k = 0; k < NKEYS; k++)
    cr_assert_eq(l.last[k], expected_sum(n, k), "k%d summed %" PRId64, k, l.last[k]);
}
