/*
 * The window operator's timers and the cleanup of its keys (operators/window_fire.c): windows
 * fire on the watermark (not only at the end of input), including a window that took a free
 * slot over without a timer of its own (it relies on the key's pending cleanup timer); a key
 * with no window for one window length is removed from the state; keys that are active, or
 * emptied less than one window length ago, are kept.
 *
 * The source emits a fixed sequence, one record per poll, so each record gets its own
 * watermark (bound 0: watermark = largest timestamp - 1); then it waits. The test takes a
 * savepoint once every window ending at or before 400 has fired, and reads the window
 * operator's key count from it.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

struct ev {
  const char *key;
  int64_t ts;
};

/* Tumbling windows of 100 ms. "dead" has one window, [0, 100); "skip" has [0, 100) and
 * [100, 200), its second record arriving after [0, 100) fired (so it takes its free slot over
 * and its window is due exactly at its cleanup time, 199); "k300" has only [300, 400); the
 * "live" keys have every window up to [400, 500). */
static const struct ev seq[] = {
    {"dead", 10},   {"skip", 20},   {"live0", 50},  {"live1", 50},  {"live0", 150},
    {"skip", 160},  {"live1", 150}, {"live0", 250}, {"live1", 250}, {"k300", 310},
    {"live0", 350}, {"live1", 350}, {"live0", 450}, {"live1", 450},
};
#define N_SEQ (sizeof(seq) / sizeof(seq[0]))

/* Results of windows ending at or before 400, as "key start end count", sorted. */
static const char *const want[] = {
    "dead 0 100 1",    "k300 300 400 1",  "live0 0 100 1", "live0 100 200 1",
    "live0 200 300 1", "live0 300 400 1", "live1 0 100 1", "live1 100 200 1",
    "live1 200 300 1", "live1 300 400 1", "skip 0 100 1",  "skip 100 200 1",
};
#define N_WANT (sizeof(want) / sizeof(want[0]))

struct src {
  size_t next;
};

static int src_poll(weir_ctx *ctx, void *inst) {
  struct src *s = inst;
  weir_record r = weir_record_init();

  if (s->next == N_SEQ)
    return WEIR_EAGAIN; /* wait for the savepoint */
  r.key = weir_buf_str(seq[s->next].key);
  r.value = weir_buf_str("1");
  r.timestamp = seq[s->next].ts;
  s->next++;
  return weir_emit(ctx, &r);
}

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

struct results {
  pthread_mutex_t mu;
  char v[64][64];
  size_t n;
};

/* Reads `"name":<integer>` from a result. */
static int64_t field(const char *doc, const char *name) {
  char pat[32];
  const char *p;

  snprintf(pat, sizeof(pat), "\"%s\":", name);
  p = strstr(doc, pat);
  cr_assert_not_null(p, "no %s in %s", name, doc);
  return strtoll(p + strlen(pat), NULL, 10);
}

static int collect(void *data, int subtask, const weir_record *recs, size_t n) {
  struct results *res = data;
  size_t i;

  (void)subtask;
  pthread_mutex_lock(&res->mu);
  for (i = 0; i < n; i++) {
    char doc[256], key[32];
    const char *k;

    cr_assert_lt(recs[i].value.len, sizeof(doc));
    memcpy(doc, recs[i].value.ptr, recs[i].value.len);
    doc[recs[i].value.len] = '\0';
    k = strstr(doc, "\"key\":\"");
    cr_assert_not_null(k);
    k += 7;
    snprintf(key, sizeof(key), "%.*s", (int)(strchr(k, '"') - k), k);
    cr_assert_lt(res->n, 64);
    snprintf(res->v[res->n++], sizeof(res->v[0]), "%s %" PRId64 " %" PRId64 " %" PRId64, key,
             field(doc, "window_start"), field(doc, "window_end"), field(doc, "count"));
  }
  pthread_mutex_unlock(&res->mu);
  return 0;
}

static size_t count_results(struct results *res) {
  size_t n;

  pthread_mutex_lock(&res->mu);
  n = res->n;
  pthread_mutex_unlock(&res->mu);
  return n;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

Test(window_cleanup, fires_on_watermark_and_removes_dead_keys, .timeout = 60) {
  char tmpl[] = "/tmp/weir-wclean-XXXXXX", *dir = mkdtemp(tmpl), *text = NULL, cmd[128];
  struct results res = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};
  struct src s = {0};
  weir_operator so = {0};
  weir_watermark_config wc = {0};
  weir_window_config w = {0};
  weir_job *job = NULL;
  struct timespec pause = {0, 2000000};
  const char *line;
  int src, ts, key, win;
  size_t i;

  cr_assert_not_null(dir);
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
  so.poll = src_poll;
  wc.from = WEIR_TS_FROM_RECORD;
  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = 100;
  w.aggs = WEIR_AGG_COUNT;
  cr_assert_eq(weir_job_create(&job, "cleanup"), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, dir), 0);
  cr_assert_eq(weir_job_add_source(job, "src", &so, &s, &src), 0);
  cr_assert_eq(weir_job_assign_timestamps(job, src, "ts", &wc, &ts), 0);
  cr_assert_eq(weir_job_key_by(job, ts, "key", key_of, NULL, &key), 0);
  cr_assert_eq(weir_job_window(job, key, "win", &w, &win), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, win, "sink", collect, &res, NULL), 0);
  cr_assert_eq(weir_job_start(job), 0);
  /* Every window ending at or before 400 fires on the watermark; a window that relied on a
   * cleanup timer that was not pending would only fire at the end of input, which a savepoint
   * stop never reaches: this wait would then run into the test's timeout. */
  while (count_results(&res) < N_WANT)
    nanosleep(&pause, NULL);
  cr_assert_eq(weir_job_stop_with_savepoint(job), 0);
  cr_assert_eq(weir_job_wait(job), 0, "%s", weir_job_error(job));
  cr_assert_gt(weir_job_last_checkpoint(job), 0, "no savepoint was taken");
  weir_job_destroy(job);

  qsort(res.v, res.n, sizeof(res.v[0]), cmp_str);
  cr_assert_eq(res.n, N_WANT, "%zu results before the savepoint, expected %zu", res.n, N_WANT);
  for (i = 0; i < N_WANT; i++)
    cr_assert_str_eq(res.v[i], want[i]);

  /* At the savepoint the watermark is 449: live0 and live1 hold [400, 500); k300's window was
   * purged at 399, less than a window length ago, so it is kept for reuse; "dead" (purged at 99)
   * and "skip" (purged at 199) have been without a window for a whole window length. */
  cr_assert_eq(weir_checkpoint_describe(dir, 0, &text), 0);
  line = strstr(text, "operator win:");
  cr_assert_not_null(line, "%s", text);
  cr_assert_not_null(strstr(line, "keys 3,"), "expected 3 keys in the window state: %s", text);
  free(text);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}
