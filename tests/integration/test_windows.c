/*
 * Keyed event-time windows end to end: generator (JSON records) -> assign_timestamps ->
 * json_key_by -> window -> callback sink, results compared exactly with a reference
 * computation. In order, out of order within the bound, late records (dropped and counted, or
 * side output), allowed lateness, idle inputs, parallelism 1 and 4, watermarks across a
 * key-by shuffle, user aggregates, the running keyed aggregate and processing time.
 */
#include <criterion/criterion.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/window_ref.h"

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* ---- input data --------------------------------------------------------------------------- */

enum data_mode { IN_ORDER, OUT_OF_ORDER };

#define NKEYS 5

static void rec_of(enum data_mode m, uint64_t i, char *key, size_t kcap, int64_t *ts, int64_t *v) {
  snprintf(key, kcap, "u%d", (int)((i * 7) % NKEYS));
  *ts = (int64_t)i * 10;
  if (m == OUT_OF_ORDER)
    *ts += ((int64_t)((i * 7919) % 9) - 4) * 20; /* +-80 ms */
  *v = (int64_t)((i * 37) % 101) - 50;
}

static long gen_json(void *data, uint64_t i, uint8_t *buf, size_t cap) {
  enum data_mode m = (enum data_mode)(intptr_t)data;
  char key[16];
  int64_t ts, v;

  rec_of(m, i, key, sizeof(key), &ts, &v);
  return snprintf((char *)buf, cap, "{\"k\":\"%s\",\"ts\":%" PRId64 ",\"v\":%" PRId64 "}", key, ts,
                  v);
}

/* A fixed sequence of (key, ts) records, for the lateness tests. */
struct seq {
  const char *key;
  int64_t ts;
};

static const struct seq *g_seq;

static long gen_seq(void *data, uint64_t i, uint8_t *buf, size_t cap) {
  (void)data;
  return snprintf((char *)buf, cap, "{\"k\":\"%s\",\"ts\":%" PRId64 ",\"v\":1}", g_seq[i].key,
                  g_seq[i].ts);
}

/* ---- the job ------------------------------------------------------------------------------ */

struct opts {
  uint64_t count;
  weir_gen_fn fn;
  void *fn_data;
  int src_par;
  int win_par;
  int64_t bound;
  int64_t idle_ms;
  weir_window_config win;
  bool side_output; /* late records to `late` */
};

struct wjob {
  weir_job *job;
  weir_generator *gen;
};

static void build(struct wjob *j, const struct opts *o, struct lines *out, struct lines *late) {
  weir_generator_config g = {0};
  weir_watermark_config wc = {0};
  int src, ts, key, win, split;

  g.count = o->count;
  g.fn = o->fn;
  g.fn_data = o->fn_data;
  g.records_per_poll = 1; /* one watermark per record: lateness is deterministic */
  wc.from = WEIR_TS_FROM_JSON_FIELD;
  wc.json_field = "ts";
  wc.max_out_of_orderness_ms = o->bound;
  wc.idle_timeout_ms = o->idle_ms;
  cr_assert_eq(weir_generator_create(&j->gen, &g), 0);
  cr_assert_eq(weir_job_create(&j->job, "windows"), 0);
  cr_assert_eq(weir_job_add_generator(j->job, "gen", j->gen, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(j->job, src, o->src_par), 0);
  cr_assert_eq(weir_job_assign_timestamps(j->job, src, "ts", &wc, &ts), 0);
  cr_assert_eq(weir_job_set_parallelism(j->job, ts, o->src_par), 0);
  cr_assert_eq(weir_job_json_key_by(j->job, ts, "key", "k", WEIR_BAD_RECORD_FAIL, &key), 0);
  cr_assert_eq(weir_job_set_parallelism(j->job, key, o->src_par), 0);
  cr_assert_eq(weir_job_window(j->job, key, "win", &o->win, &win), 0, "%s", weir_job_error(j->job));
  cr_assert_eq(weir_job_set_parallelism(j->job, win, o->win_par), 0);
  if (!o->side_output) {
    cr_assert_eq(weir_job_add_callback_sink(j->job, win, "out", collect_cb, out, NULL), 0);
    return;
  }
  cr_assert_eq(weir_job_split_late(j->job, win, "results", false, &split), 0);
  cr_assert_eq(weir_job_add_callback_sink(j->job, split, "out", collect_cb, out, NULL), 0);
  cr_assert_eq(weir_job_split_late(j->job, win, "late", true, &split), 0);
  cr_assert_eq(weir_job_add_callback_sink(j->job, split, "late-out", collect_cb, late, NULL), 0);
}

static void destroy(struct wjob *j) {
  weir_job_destroy(j->job);
  weir_generator_destroy(j->gen);
}

static void assert_same(struct lines *got, struct lines *want) {
  size_t i;

  lines_sort(got);
  for (i = 0; i < got->n && i < want->n; i++)
    cr_assert_str_eq(got->v[i], want->v[i], "result %zu of %zu differs", i, want->n);
  cr_assert_eq(got->n, want->n, "%zu results, expected %zu", got->n, want->n);
}

/* Runs the generated data through windows of `size`/`slide` and compares with the reference. */
static void run_generated(enum data_mode m, int src_par, int win_par, int64_t size, int64_t slide) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct lines want = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct opts o = {0};
  struct ref r = {0};
  struct wjob j;
  uint64_t i;

  quiet();
  o.count = 3000;
  o.fn = gen_json;
  o.fn_data = (void *)(intptr_t)m;
  o.src_par = src_par;
  o.win_par = win_par;
  o.bound = 200; /* the data is out of order by at most 160 ms between any two records */
  o.win.kind = slide == size ? WEIR_WINDOW_TUMBLING : WEIR_WINDOW_SLIDING;
  o.win.size_ms = size;
  o.win.slide_ms = slide;
  o.win.aggs = WEIR_AGG_COUNT | WEIR_AGG_SUM | WEIR_AGG_MIN | WEIR_AGG_MAX | WEIR_AGG_AVG;
  o.win.value_field = "v";
  for (i = 0; i < o.count; i++) {
    char key[16];
    int64_t ts, v;

    rec_of(m, i, key, sizeof(key), &ts, &v);
    ref_add(&r, key, ts, (double)v, size, slide);
  }
  ref_lines(&r, &want);
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  cr_assert_eq(weir_job_metric_sum(j.job, "weir_window_late_records_total", NULL), 0);
  destroy(&j);
  assert_same(&out, &want);
  lines_free(&out);
  lines_free(&want);
  ref_free(&r);
}

Test(windows, tumbling_in_order_parallelism_1) {
  run_generated(IN_ORDER, 1, 1, 1000, 1000);
}

Test(windows, tumbling_in_order_parallelism_4) {
  run_generated(IN_ORDER, 4, 4, 1000, 1000);
}

Test(windows, tumbling_out_of_order_within_bound_parallelism_1) {
  run_generated(OUT_OF_ORDER, 1, 1, 1000, 1000);
}

Test(windows, tumbling_out_of_order_within_bound_parallelism_4) {
  run_generated(OUT_OF_ORDER, 4, 4, 500, 500);
}

Test(windows, sliding_out_of_order_parallelism_1) {
  run_generated(OUT_OF_ORDER, 1, 1, 1000, 250);
}

Test(windows, sliding_out_of_order_parallelism_4) {
  run_generated(OUT_OF_ORDER, 2, 4, 1000, 300);
}

/* Many keys (more than the operator's prefetch ring holds, so its pipelines over a batch and
 * over a firing bucket wrap around many times), some of lengths 8..16 and over 16 bytes. */
#define MANY_KEYS 1500

static void many_key_of(uint64_t i, char *key, size_t cap) {
  unsigned k = (unsigned)((i * 7919) % MANY_KEYS);

  if (k % 3 == 0)
    snprintf(key, cap, "m%u", k);
  else if (k % 3 == 1)
    snprintf(key, cap, "mk-%08u", k);
  else
    snprintf(key, cap, "a-longer-key-%010u", k);
}

static long gen_many(void *data, uint64_t i, uint8_t *buf, size_t cap) {
  char key[32];

  (void)data;
  many_key_of(i, key, sizeof(key));
  return snprintf((char *)buf, cap, "{\"k\":\"%s\",\"ts\":%" PRIu64 ",\"v\":%d}", key, i,
                  (int)(i % 13) - 6);
}

static void run_many_keys(int win_par) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct lines want = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct opts o = {0};
  struct ref r = {0};
  struct wjob j;
  uint64_t i;

  quiet();
  o.count = 12000;
  o.fn = gen_many;
  o.src_par = 1;
  o.win_par = win_par;
  o.win.kind = WEIR_WINDOW_TUMBLING;
  o.win.size_ms = 4000;
  o.win.aggs = WEIR_AGG_COUNT | WEIR_AGG_SUM | WEIR_AGG_MIN | WEIR_AGG_MAX | WEIR_AGG_AVG;
  o.win.value_field = "v";
  for (i = 0; i < o.count; i++) {
    char key[32];

    many_key_of(i, key, sizeof(key));
    ref_add(&r, key, (int64_t)i, (double)((int)(i % 13) - 6), 4000, 4000);
  }
  ref_lines(&r, &want);
  cr_assert_eq(want.n, 3 * MANY_KEYS);
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  destroy(&j);
  assert_same(&out, &want);
  lines_free(&out);
  lines_free(&want);
  ref_free(&r);
}

Test(windows, many_keys_parallelism_1) {
  run_many_keys(1);
}

Test(windows, many_keys_parallelism_3) {
  run_many_keys(3);
}

/* ---- lateness ----------------------------------------------------------------------------- */

static void run_seq(const struct seq *s, size_t n, weir_window_config *win, bool side,
                    struct lines *out, struct lines *late, int64_t *late_count) {
  struct opts o = {0};
  struct wjob j;

  quiet();
  g_seq = s;
  o.count = n;
  o.fn = gen_seq;
  o.src_par = 1;
  o.win_par = 2;
  o.bound = 0;
  o.win = *win;
  o.side_output = side;
  build(&j, &o, out, late);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  *late_count = weir_job_metric_sum(j.job, "weir_window_late_records_total", NULL);
  destroy(&j);
  lines_sort(out);
}

static const struct seq late_seq[] = {
    {"a", 100},  {"a", 200}, {"b", 900}, {"a", 1500}, /* watermark 1499: [0,1000) fires: a=2, b=1 */
    {"a", 300},                                       /* late: dropped */
    {"b", 999},                                       /* late */
    {"a", 2500},                                      /* [1000,2000) fires: a=1 */
    {"a", 1999},                                      /* late */
    {"a", 2000},                                      /* on time */
};

Test(windows, late_records_are_dropped_and_counted) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_window_config w = {0};
  int64_t late;

  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = 1000;
  run_seq(late_seq, sizeof(late_seq) / sizeof(late_seq[0]), &w, false, &out, NULL, &late);
  cr_assert_eq(late, 3);
  cr_assert_eq(out.n, 4);
  cr_assert_str_eq(out.v[0], "{\"key\":\"a\",\"window_start\":0,\"window_end\":1000,\"count\":2}");
  cr_assert_str_eq(out.v[1],
                   "{\"key\":\"a\",\"window_start\":1000,\"window_end\":2000,\"count\":1}");
  cr_assert_str_eq(out.v[2],
                   "{\"key\":\"a\",\"window_start\":2000,\"window_end\":3000,\"count\":2}");
  cr_assert_str_eq(out.v[3], "{\"key\":\"b\",\"window_start\":0,\"window_end\":1000,\"count\":1}");
  lines_free(&out);
}

Test(windows, late_records_go_to_the_side_output) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct lines late = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_window_config w = {0};
  int64_t n_late;

  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = 1000;
  w.late = WEIR_LATE_SIDE_OUTPUT;
  run_seq(late_seq, sizeof(late_seq) / sizeof(late_seq[0]), &w, true, &out, &late, &n_late);
  cr_assert_eq(n_late, 3);
  cr_assert_eq(out.n, 4);
  lines_sort(&late);
  cr_assert_eq(late.n, 3);
  cr_assert_str_eq(late.v[0], "{\"k\":\"a\",\"ts\":1999,\"v\":1}");
  cr_assert_str_eq(late.v[1], "{\"k\":\"a\",\"ts\":300,\"v\":1}");
  cr_assert_str_eq(late.v[2], "{\"k\":\"b\",\"ts\":999,\"v\":1}");
  lines_free(&out);
  lines_free(&late);
}

Test(windows, allowed_lateness_fires_again_then_drops) {
  static const struct seq s[] = {
      {"a", 100},  {"a", 1500}, /* wm 1499: [0,1000) fires with 1 */
      {"a", 300},               /* within lateness 1000: [0,1000) fires again with 2 */
      {"a", 2600}, /* wm 2599: [1000,2000) fires with 1; [0,1000) cleaned up (999+1000) */
      {"a", 400},  /* late: dropped */
      {"a", 1200}, /* [1000,2000) still kept until 2999: fires again with 2 */
  };
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_window_config w = {0};
  int64_t late;

  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = 1000;
  w.allowed_lateness_ms = 1000;
  run_seq(s, sizeof(s) / sizeof(s[0]), &w, false, &out, NULL, &late);
  cr_assert_eq(late, 1);
  cr_assert_eq(out.n, 5);
  cr_assert_str_eq(out.v[0], "{\"key\":\"a\",\"window_start\":0,\"window_end\":1000,\"count\":1}");
  cr_assert_str_eq(out.v[1], "{\"key\":\"a\",\"window_start\":0,\"window_end\":1000,\"count\":2}");
  cr_assert_str_eq(out.v[2],
                   "{\"key\":\"a\",\"window_start\":1000,\"window_end\":2000,\"count\":1}");
  cr_assert_str_eq(out.v[3],
                   "{\"key\":\"a\",\"window_start\":1000,\"window_end\":2000,\"count\":2}");
  cr_assert_str_eq(out.v[4],
                   "{\"key\":\"a\",\"window_start\":2000,\"window_end\":3000,\"count\":1}");
  lines_free(&out);
}

/* ---- user aggregate and running aggregate ------------------------------------------------- */

/* Distinct-ish: the product of (v + 51) mod 1000003 and the count, as a JSON array. */
struct prod_acc {
  int64_t prod;
  int64_t n;
};

static void prod_create(void *data, void *acc) {
  struct prod_acc a = {1, 0};

  (void)data;
  memcpy(acc, &a, sizeof(a));
}

static int prod_add(void *data, void *acc, const weir_record *rec) {
  struct prod_acc a;
  const char *p = memchr(rec->value.ptr, 'v', rec->value.len);
  long v;

  (void)data;
  if (p == NULL)
    return WEIR_EPARSE;
  v = strtol(p + 3, NULL, 10);
  memcpy(&a, acc, sizeof(a));
  a.prod = a.prod * (v + 51) % 1000003;
  a.n++;
  memcpy(acc, &a, sizeof(a));
  return 0;
}

static void prod_merge(void *data, void *acc, const void *other) {
  struct prod_acc a, b;

  (void)data;
  memcpy(&a, acc, sizeof(a));
  memcpy(&b, other, sizeof(b));
  a.prod = a.prod * b.prod % 1000003;
  a.n += b.n;
  memcpy(acc, &a, sizeof(a));
}

static long prod_result(void *data, const void *acc, char *buf, size_t cap) {
  struct prod_acc a;

  (void)data;
  memcpy(&a, acc, sizeof(a));
  return snprintf(buf, cap, "[%" PRId64 ",%" PRId64 "]", a.prod, a.n);
}

Test(windows, user_aggregate) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_aggregate agg = {
      sizeof(struct prod_acc), prod_create, prod_add, NULL, prod_result, "prod", NULL};
  struct opts o = {0};
  struct wjob j;
  int64_t prod[NKEYS][4], n[NKEYS][4];
  uint64_t i;
  size_t k;

  quiet();
  for (k = 0; k < NKEYS; k++)
    for (i = 0; i < 4; i++)
      prod[k][i] = 1, n[k][i] = 0;
  o.count = 400;
  o.fn = gen_json;
  o.fn_data = (void *)(intptr_t)IN_ORDER;
  o.src_par = 1;
  o.win_par = 3;
  o.win.kind = WEIR_WINDOW_TUMBLING;
  o.win.size_ms = 1000;
  o.win.user = &agg;
  for (i = 0; i < o.count; i++) {
    char key[16];
    int64_t ts, v;

    rec_of(IN_ORDER, i, key, sizeof(key), &ts, &v);
    k = (size_t)(key[1] - '0');
    prod[k][ts / 1000] = prod[k][ts / 1000] * (v + 51) % 1000003;
    n[k][ts / 1000]++;
  }
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  destroy(&j);
  cr_assert_eq(out.n, NKEYS * 4);
  for (k = 0; k < NKEYS; k++)
    for (i = 0; i < 4; i++) {
      char want[160];
      size_t x;
      bool found = false;

      snprintf(want, sizeof(want),
               "{\"key\":\"u%zu\",\"window_start\":%" PRIu64 ",\"window_end\":%" PRIu64
               ",\"prod\":[%" PRId64 ",%" PRId64 "]}",
               k, i * 1000, i * 1000 + 1000, prod[k][i], n[k][i]);
      for (x = 0; x < out.n; x++)
        found |= strcmp(out.v[x], want) == 0;
      cr_assert(found, "missing %s", want);
    }
  lines_free(&out);
}

Test(windows, global_window_is_a_running_keyed_aggregate) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct opts o = {0};
  struct wjob j;
  int64_t sum = 0, max = -100;
  uint64_t i;
  char want[128];

  quiet();
  o.count = 200;
  o.fn = gen_json;
  o.fn_data = (void *)(intptr_t)IN_ORDER;
  o.src_par = 1;
  o.win_par = 2;
  o.win.kind = WEIR_WINDOW_GLOBAL;
  o.win.aggs = WEIR_AGG_COUNT | WEIR_AGG_SUM | WEIR_AGG_MAX;
  o.win.value_field = "v";
  for (i = 0; i < o.count; i++) {
    char key[16];
    int64_t ts, v;

    rec_of(IN_ORDER, i, key, sizeof(key), &ts, &v);
    if (strcmp(key, "u3") == 0) {
      sum += v;
      max = v > max ? v : max;
    }
  }
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  destroy(&j);
  cr_assert_eq(out.n, o.count, "one update per record");
  snprintf(want, sizeof(want),
           "{\"key\":\"u3\",\"count\":40,\"sum\":%" PRId64 ",\"max\":%" PRId64 "}", sum, max);
  {
    size_t x;
    bool found = false;

    for (x = 0; x < out.n; x++)
      found |= strcmp(out.v[x], want) == 0;
    cr_assert(found, "no final update %s", want);
  }
  lines_free(&out);
}

/* ---- processing time ---------------------------------------------------------------------- */

Test(windows, processing_time_windows_count_every_record) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct opts o = {0};
  struct wjob j;
  int64_t total = 0;
  size_t x;

  quiet();
  o.count = 2000;
  o.fn = gen_json;
  o.fn_data = (void *)(intptr_t)IN_ORDER;
  o.src_par = 1;
  o.win_par = 2;
  o.win.kind = WEIR_WINDOW_TUMBLING;
  o.win.time = WEIR_TIME_PROCESSING;
  o.win.size_ms = 50;
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  destroy(&j);
  for (x = 0; x < out.n; x++) {
    long long s, e, c;
    char key[16];

    cr_assert_eq(
        sscanf(out.v[x],
               "{\"key\":\"%3[^\"]\",\"window_start\":%lld,\"window_end\":%lld,\"count\":%lld}",
               key, &s, &e, &c),
        4, "%s", out.v[x]);
    cr_assert_eq(e - s, 50);
    cr_assert_eq(s % 50, 0);
    total += c;
  }
  cr_assert_eq(total, (int64_t)o.count);
  lines_free(&out);
}

/* ---- idleness ----------------------------------------------------------------------------- */

/* Two source subtasks: subtask 0 emits a record every poll with event time advancing 10 ms,
 * forever; subtask 1 emits nothing. Without idleness subtask 1 holds the window operator's
 * watermark at its minimum and no window fires before the end. */
struct idle_src {
  int64_t next[2];
};

static int idle_poll(weir_ctx *ctx, void *inst) {
  struct idle_src *s = inst;
  int sub = weir_ctx_subtask(ctx);
  char buf[64];
  weir_record r = weir_record_init();

  if (weir_ctx_stopping(ctx))
    return WEIR_EOF;
  if (sub == 1) {
    sleep_ms(1);
    return WEIR_EAGAIN;
  }
  r.value.ptr = (const uint8_t *)buf;
  r.value.len = (size_t)snprintf(buf, sizeof(buf), "{\"k\":\"a\",\"ts\":%" PRId64 "}", s->next[0]);
  s->next[0] += 10;
  sleep_ms(1);
  return weir_emit(ctx, &r);
}

struct idle_seen {
  struct lines lines;
  bool stopped; /* set by the test before it stops the job */
  int before_stop;
};

static int idle_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct idle_seen *s = data;

  (void)subtask;
  if (!__atomic_load_n(&s->stopped, __ATOMIC_SEQ_CST))
    __atomic_add_fetch(&s->before_stop, (int)n, __ATOMIC_SEQ_CST);
  return collect_cb(&s->lines, subtask, recs, n);
}

Test(windows, an_idle_input_does_not_hold_back_windows, .timeout = 60) {
  struct idle_src src = {{0, 0}};
  struct idle_seen seen = {{PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0}, false, 0};
  weir_operator op = {0};
  weir_watermark_config wc = {0};
  weir_window_config w = {0};
  weir_job *job;
  int s, ts, key, win, tries;

  quiet();
  op.poll = idle_poll;
  wc.from = WEIR_TS_FROM_JSON_FIELD;
  wc.json_field = "ts";
  wc.idle_timeout_ms = 20;
  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = 100;
  cr_assert_eq(weir_job_create(&job, "idle"), 0);
  cr_assert_eq(weir_job_set_tick_interval(job, 5), 0);
  cr_assert_eq(weir_job_add_source(job, "src", &op, &src, &s), 0);
  cr_assert_eq(weir_job_set_parallelism(job, s, 2), 0);
  cr_assert_eq(weir_job_assign_timestamps(job, s, "ts", &wc, &ts), 0);
  cr_assert_eq(weir_job_set_parallelism(job, ts, 2), 0);
  cr_assert_eq(weir_job_json_key_by(job, ts, "key", "k", WEIR_BAD_RECORD_FAIL, &key), 0);
  cr_assert_eq(weir_job_set_parallelism(job, key, 2), 0);
  cr_assert_eq(weir_job_window(job, key, "win", &w, &win), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, win, "out", idle_sink, &seen, NULL), 0);
  cr_assert_eq(weir_job_start(job), 0, "%s", weir_job_error(job));
  /* Waits for progress, not for a time: the bound only keeps a broken build from hanging. */
  for (tries = 0; tries < 20000 && __atomic_load_n(&seen.before_stop, __ATOMIC_SEQ_CST) < 3;
       tries++)
    sleep_ms(1);
  __atomic_store_n(&seen.stopped, true, __ATOMIC_SEQ_CST);
  weir_job_stop(job);
  cr_assert_eq(weir_job_wait(job), 0, "%s", weir_job_error(job));
  weir_job_destroy(job);
  cr_assert_geq(seen.before_stop, 3, "windows fired only at the end: the idle input held them");
  lines_sort(&seen.lines);
  cr_assert_str_eq(seen.lines.v[0],
                   "{\"key\":\"a\",\"window_start\":0,\"window_end\":100,\"count\":10}");
  lines_free(&seen.lines);
}

/* ---- watermarks across a shuffle ---------------------------------------------------------- */

/* A sink that records, per subtask, whether a record arrived at or behind the watermark it had
 * already seen, and the watermarks themselves (they must never go back). */
struct wm_sink_state {
  int64_t wm[3];
  int64_t n_wm[3];
  int violations;
  int64_t records;
};

static int wm_open(weir_ctx *ctx, void *data, void **inst) {
  (void)ctx;
  *inst = data;
  return 0;
}

static int wm_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct wm_sink_state *s = inst;
  int sub = weir_ctx_subtask(ctx);
  size_t i;

  for (i = 0; i < n; i++)
    if (recs[i].timestamp <= s->wm[sub])
      __atomic_add_fetch(&s->violations, 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&s->records, (int64_t)n, __ATOMIC_SEQ_CST);
  return 0;
}

static int wm_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  struct wm_sink_state *s = inst;
  int sub = weir_ctx_subtask(ctx);

  if (wm <= s->wm[sub])
    __atomic_add_fetch(&s->violations, 1, __ATOMIC_SEQ_CST);
  s->wm[sub] = wm;
  s->n_wm[sub]++;
  return 0;
}

Test(windows, watermarks_cross_a_key_by_shuffle) {
  struct wm_sink_state st = {{INT64_MIN, INT64_MIN, INT64_MIN}, {0, 0, 0}, 0, 0};
  weir_generator_config g = {0};
  weir_watermark_config wc = {0};
  weir_operator sink = {0};
  weir_generator *gen;
  weir_job *job;
  int src, ts, key, snk, i;

  quiet();
  g.count = 20000;
  g.fn = gen_json;
  g.fn_data = (void *)(intptr_t)OUT_OF_ORDER;
  g.records_per_poll = 16;
  wc.from = WEIR_TS_FROM_JSON_FIELD;
  wc.json_field = "ts";
  wc.max_out_of_orderness_ms = 200;
  sink.open = wm_open;
  sink.process = wm_process;
  sink.on_watermark = wm_watermark;
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_create(&job, "wm"), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(job, src, 2), 0);
  cr_assert_eq(weir_job_assign_timestamps(job, src, "ts", &wc, &ts), 0);
  cr_assert_eq(weir_job_set_parallelism(job, ts, 2), 0);
  cr_assert_eq(weir_job_json_key_by(job, ts, "key", "k", WEIR_BAD_RECORD_FAIL, &key), 0);
  cr_assert_eq(weir_job_set_parallelism(job, key, 2), 0);
  cr_assert_eq(weir_job_add_sink(job, key, "sink", &sink, &st, &snk), 0);
  cr_assert_eq(weir_job_set_parallelism(job, snk, 3), 0);
  cr_assert_eq(weir_job_run(job), 0, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert_eq(st.records, 20000);
  cr_assert_eq(st.violations, 0, "a record or watermark arrived behind a watermark");
  for (i = 0; i < 3; i++) {
    cr_assert_gt(st.n_wm[i], 10, "subtask %d saw %lld watermarks", i, (long long)st.n_wm[i]);
    /* The last records have event times near 20000 * 10: the watermark got close. */
    cr_assert_geq(st.wm[i], 199000, "subtask %d ended at %lld", i, (long long)st.wm[i]);
  }
}

/* ---- configuration ------------------------------------------------------------------------ */

Test(windows, bad_configurations_are_refused) {
  weir_window_config w = {0};
  weir_watermark_config wc = {0};
  weir_job *job;

  quiet();
  cr_assert_eq(weir_job_create(&job, "bad"), 0);
  w.kind = WEIR_WINDOW_TUMBLING;
  cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &w, NULL), WEIR_EINVAL);
  cr_assert(strstr(weir_job_error(job), "size_ms") != NULL, "%s", weir_job_error(job));
  w.kind = WEIR_WINDOW_SLIDING;
  w.size_ms = 1000;
  w.slide_ms = 10;
  cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &w, NULL), WEIR_EINVAL);
  w.slide_ms = 2000;
  cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &w, NULL), WEIR_EINVAL);
  w.slide_ms = 100;
  w.allowed_lateness_ms = -1;
  cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &w, NULL), WEIR_EINVAL);
  w.allowed_lateness_ms = 0;
  w.value_field = "a..b";
  cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &w, NULL), WEIR_EINVAL);
  w.value_field = NULL;
  cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &w, NULL), 0);
  wc.from = WEIR_TS_FROM_FN;
  cr_assert_eq(weir_job_assign_timestamps(job, WEIR_NO_INPUT, "t", &wc, NULL), WEIR_EINVAL);
  wc.from = WEIR_TS_FROM_JSON_FIELD;
  cr_assert_eq(weir_job_assign_timestamps(job, WEIR_NO_INPUT, "t", &wc, NULL), WEIR_EINVAL);
  wc.json_field = "ts";
  wc.max_out_of_orderness_ms = -5;
  cr_assert_eq(weir_job_assign_timestamps(job, WEIR_NO_INPUT, "t", &wc, NULL), WEIR_EINVAL);
  weir_job_destroy(job);
}

/* ---- weir_emit_idle from a source --------------------------------------------------------- */

/* Subtask 0 emits watermarks 1000, 2000, ... 10000 then waits; subtask 1 declares itself idle
 * and emits nothing. Downstream must advance to 10000 on subtask 0 alone. Then subtask 1
 * becomes active again with a record and watermark 20000, and subtask 0 moves to 30000: the
 * minimum must be 20000 (30000 would mean subtask 1 was still left out). */
struct idle_wm {
  int64_t sink_wm; /* newest watermark the sink saw (atomic) */
  int phase;       /* 0: running; 1: subtask 1 should wake up; 2: it did; 3: the sink saw it */
  int64_t next0;
};

static int idle_wm_poll(weir_ctx *ctx, void *inst) {
  struct idle_wm *s = inst;
  weir_record r = weir_record_init();
  int rc;

  if (weir_ctx_stopping(ctx))
    return WEIR_EOF;
  sleep_ms(1);
  if (weir_ctx_subtask(ctx) == 1) {
    if (__atomic_load_n(&s->phase, __ATOMIC_SEQ_CST) == 1) {
      r.value = weir_buf_str("late riser");
      r.timestamp = 20000;
      __atomic_store_n(&s->phase, 2, __ATOMIC_SEQ_CST); /* before the sink can set 3 */
      if ((rc = weir_emit(ctx, &r)) != 0 || (rc = weir_emit_watermark(ctx, 20000)) != 0)
        return rc;
      return 0;
    }
    return __atomic_load_n(&s->phase, __ATOMIC_SEQ_CST) == 0 ? weir_emit_idle(ctx, true)
                                                             : WEIR_EAGAIN;
  }
  if (s->next0 > 10000) {
    if (__atomic_load_n(&s->phase, __ATOMIC_SEQ_CST) == 3 && s->next0 < 30000) {
      s->next0 = 30000;
      return weir_emit_watermark(ctx, 30000);
    }
    return WEIR_EAGAIN;
  }
  rc = weir_emit_watermark(ctx, s->next0);
  s->next0 += 1000;
  return rc;
}

static int idle_wm_open(weir_ctx *ctx, void *data, void **inst) {
  (void)ctx;
  *inst = data;
  return 0;
}

/* Seeing subtask 1's record means its input is active again here (ACTIVE precedes it in its
 * channel): only then may subtask 0 move on, since channels are not ordered with each other. */
static int idle_wm_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct idle_wm *s = inst;

  (void)ctx;
  (void)recs;
  if (n > 0)
    __atomic_store_n(&s->phase, 3, __ATOMIC_SEQ_CST);
  return 0;
}

static int idle_wm_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  struct idle_wm *s = inst;

  (void)ctx;
  __atomic_store_n(&s->sink_wm, wm, __ATOMIC_SEQ_CST);
  return 0;
}

Test(windows, a_source_marked_idle_is_left_out_of_the_minimum, .timeout = 60) {
  struct idle_wm st = {INT64_MIN, 0, 1000};
  weir_operator src = {0}, sink = {0};
  int64_t wm;
  weir_job *job;
  int s, k, tries;

  quiet();
  src.poll = idle_wm_poll;
  sink.open = idle_wm_open;
  sink.process = idle_wm_process;
  sink.on_watermark = idle_wm_watermark;
  cr_assert_eq(weir_job_create(&job, "idle-src"), 0);
  cr_assert_eq(weir_job_add_source(job, "src", &src, &st, &s), 0);
  cr_assert_eq(weir_job_set_parallelism(job, s, 2), 0);
  cr_assert_eq(weir_job_add_sink(job, s, "sink", &sink, &st, &k), 0);
  cr_assert_eq(weir_job_set_partitioning(job, s, k, WEIR_PART_REBALANCE), 0);
  cr_assert_eq(weir_job_start(job), 0, "%s", weir_job_error(job));
  for (tries = 0; tries < 20000 && __atomic_load_n(&st.sink_wm, __ATOMIC_SEQ_CST) < 10000; tries++)
    sleep_ms(1);
  cr_assert_eq(__atomic_load_n(&st.sink_wm, __ATOMIC_SEQ_CST), 10000,
               "the idle subtask held the watermark back");
  __atomic_store_n(&st.phase, 1, __ATOMIC_SEQ_CST);
  for (tries = 0; tries < 20000 && __atomic_load_n(&st.sink_wm, __ATOMIC_SEQ_CST) < 20000; tries++)
    sleep_ms(1);
  /* Read before stopping: once one input has ended, the other alone sets the watermark. */
  wm = __atomic_load_n(&st.sink_wm, __ATOMIC_SEQ_CST);
  weir_job_stop(job);
  cr_assert_eq(weir_job_wait(job), 0, "%s", weir_job_error(job));
  weir_job_destroy(job);
  cr_assert_eq(wm, 20000, "inputs at 20000 (active again) and 30000 give 20000, not %lld",
               (long long)wm);
}

/* ---- session windows ---------------------------------------------------------------------- */

Test(windows, sessions_close_after_the_gap) {
  static const struct seq s[] = {
      {"a", 0},   {"a", 50}, {"a", 120}, /* one session [0, 220) */
      {"b", 130},                        /* [130, 230) */
      {"a", 400},                        /* wm 399: a [0,220) and b [130,230) fire */
      {"a", 100},                        /* late: its merged session [100,200) is gone */
      {"a", 500},                        /* [400, 600) */
  };
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_window_config w = {0};
  int64_t late;

  w.kind = WEIR_WINDOW_SESSION;
  w.gap_ms = 100;
  w.aggs = WEIR_AGG_COUNT;
  run_seq(s, sizeof(s) / sizeof(s[0]), &w, false, &out, NULL, &late);
  cr_assert_eq(late, 1, "late %lld", (long long)late);
  cr_assert_eq(out.n, 3);
  cr_assert_str_eq(out.v[0], "{\"key\":\"a\",\"window_start\":0,\"window_end\":220,\"count\":3}");
  cr_assert_str_eq(out.v[1], "{\"key\":\"a\",\"window_start\":400,\"window_end\":600,\"count\":2}");
  cr_assert_str_eq(out.v[2], "{\"key\":\"b\",\"window_start\":130,\"window_end\":230,\"count\":1}");
  lines_free(&out);
}

/* Out of order within a large bound: a record bridging two sessions merges them. */
Test(windows, sessions_merge_when_a_record_bridges_them) {
  static const struct seq s[] = {
      {"a", 0},   /* [0,100) */
      {"a", 300}, /* [300,400) */
      {"a", 150}, /* [150,250): touches neither */
      {"a", 90},  /* [90,190) bridges [0,100) and [150,250): [0,250) */
      {"a", 240}, /* [240,340) bridges [0,250) and [300,400): [0,400) */
      {"b", 5000},
  };
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_window_config w = {0};
  struct opts o = {0};
  struct wjob j;

  quiet();
  g_seq = s;
  o.count = sizeof(s) / sizeof(s[0]);
  o.fn = gen_seq;
  o.src_par = 1;
  o.win_par = 1;
  o.bound = 1000;
  w.kind = WEIR_WINDOW_SESSION;
  w.gap_ms = 100;
  w.aggs = WEIR_AGG_COUNT | WEIR_AGG_SUM;
  w.value_field = "v";
  o.win = w;
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  cr_assert_eq(weir_job_metric_sum(j.job, "weir_window_late_records_total", NULL), 0);
  destroy(&j);
  lines_sort(&out);
  cr_assert_eq(out.n, 2);
  cr_assert_str_eq(out.v[0],
                   "{\"key\":\"a\",\"window_start\":0,\"window_end\":400,\"count\":5,\"sum\":5}");
  cr_assert_str_eq(out.v[1], "{\"key\":\"b\",\"window_start\":5000,\"window_end\":5100,\"count\":1,"
                             "\"sum\":1}");
  lines_free(&out);
}

/* A session that was extended after its timer was set fires at its new end, not the old one:
 * with bound 0 every record moves the watermark. */
Test(windows, a_growing_session_fires_at_its_last_end) {
  static const struct seq s[] = {
      {"a", 0},    {"a", 90}, {"a", 180}, {"a", 270}, /* one session [0,370) */
      {"z", 300},  /* wm 299: a's first timer (99) finds it not due */
      {"z", 1000}, /* wm 999: a fires with 4 */
  };
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_window_config w = {0};
  int64_t late;

  w.kind = WEIR_WINDOW_SESSION;
  w.gap_ms = 100;
  run_seq(s, sizeof(s) / sizeof(s[0]), &w, false, &out, NULL, &late);
  cr_assert_eq(late, 0);
  cr_assert_eq(out.n, 3);
  cr_assert_str_eq(out.v[0], "{\"key\":\"a\",\"window_start\":0,\"window_end\":370,\"count\":4}");
  cr_assert_str_eq(out.v[1],
                   "{\"key\":\"z\",\"window_start\":1000,\"window_end\":1100,\"count\":1}");
  cr_assert_str_eq(out.v[2], "{\"key\":\"z\",\"window_start\":300,\"window_end\":400,\"count\":1}");
  lines_free(&out);
}

/* Sessions merge user accumulators with `merge`; without one they are refused. */
Test(windows, sessions_merge_user_accumulators) {
  static const struct seq s[] = {
      {"a", 0}, {"a", 300}, {"a", 150}, {"a", 90}, {"a", 240}, /* one session [0,400) */
  };
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_aggregate agg = {
      sizeof(struct prod_acc), prod_create, prod_add, prod_merge, prod_result, "prod", NULL};
  struct opts o = {0};
  struct wjob j;
  int64_t p = 1;
  int i;

  quiet();
  for (i = 0; i < 5; i++)
    p = p * 52 % 1000003; /* every record has v = 1: factor 1 + 51 */
  g_seq = s;
  o.count = 5;
  o.fn = gen_seq;
  o.src_par = 1;
  o.win_par = 1;
  o.bound = 1000;
  o.win.kind = WEIR_WINDOW_SESSION;
  o.win.gap_ms = 100;
  o.win.user = &agg;
  build(&j, &o, &out, NULL);
  cr_assert_eq(weir_job_run(j.job), 0, "%s", weir_job_error(j.job));
  destroy(&j);
  cr_assert_eq(out.n, 1);
  {
    char want[128];

    snprintf(want, sizeof(want),
             "{\"key\":\"a\",\"window_start\":0,\"window_end\":400,\"prod\":[%" PRId64 ",5]}", p);
    cr_assert_str_eq(out.v[0], want);
  }
  lines_free(&out);
  {
    weir_job *job;

    agg.merge = NULL;
    cr_assert_eq(weir_job_create(&job, "nomerge"), 0);
    cr_assert_eq(weir_job_window(job, WEIR_NO_INPUT, "w", &o.win, NULL), WEIR_EINVAL);
    cr_assert(strstr(weir_job_error(job), "merge") != NULL, "%s", weir_job_error(job));
    weir_job_destroy(job);
  }
}
