/*
 * Checkpoint semantics: barrier alignment across several unioned inputs (with and without
 * watermarks), at-least-once mode, notify_checkpoint_complete, timeouts and aborts, retention,
 * a savepoint asked for while a checkpoint is in flight, restore errors (missing state, damaged
 * blobs, a directory that is not a weir store) and operator state written by snapshot/restore
 * callbacks.
 *
 * Every test works in its own mkdtemp directory. Criterion forks per test, so each store is
 * opened inside the test, and only once at a time per directory (the job's store is closed by
 * weir_job_wait before the test opens it).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "proto/checkpoint.pb-c.h"
#include "runtime/ckpt_store_int.h"

/* Keys "k0".."k<KEYS-1>" in every test. */
#define KEYS 16
/* Most subtasks of one operator in these tests. */
#define MAX_SUB 4
/* Generous bound for every polled condition (sanitizer builds are slow). */
#define WAIT_MS 60000
/* Most ids one test records (notify calls, snapshot calls). */
#define MAX_IDS 4096

/* ---- fixture --------------------------------------------------------------------------------- */

static char root[256];

static void setup(void) {
  snprintf(root, sizeof(root), "/tmp/weir-csem-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  /* Expected failures are logged as errors; keep warnings (aborted checkpoints) quiet. */
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
}

static void teardown(void) {
  char cmd[300];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", root);
}

TestSuite(ckpt_semantics, .init = setup, .fini = teardown, .timeout = 120);

static const char *ckpt_dir(void) {
  static char d[300];

  snprintf(d, sizeof(d), "%s/ckpt", root);
  return d;
}

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};

  nanosleep(&ts, NULL);
}

#define CHECK(call)                                                                                \
  do {                                                                                             \
    int check_rc_ = (call);                                                                        \
    cr_assert_eq(check_rc_, 0, "%s: %s", #call, weir_err_name(check_rc_));                         \
  } while (0)

/* Polls `cond` every 2 ms until it holds or WAIT_MS pass; returns whether it held. */
static bool poll_until(bool (*cond)(void *), void *arg) {
  int64_t end = now_ms() + WAIT_MS;

  while (!cond(arg)) {
    if (now_ms() > end)
      return false;
    sleep_us(2000);
  }
  return true;
}

static uint64_t completed_of(const weir_job *job) {
  weir_checkpoint_stats st;

  weir_job_checkpoint_stats(job, &st);
  return st.completed;
}

static uint64_t failed_of(const weir_job *job) {
  weir_checkpoint_stats st;

  weir_job_checkpoint_stats(job, &st);
  return st.failed;
}

static int drop_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  (void)recs;
  (void)n;
  return 0;
}

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

/* ---- the keyed counter: value state per key, watermark and notify observation ------------- */

struct tally {
  pthread_mutex_t mu;
  uint64_t finals[KEYS]; /* summed over the subtasks' finish calls */
  int n_finals[KEYS];
  atomic_ullong processed;
  atomic_ullong wm_calls;
  atomic_bool wm_decreased;
  atomic_llong wm_bad_prev, wm_bad_next;
};

static void tally_reset(struct tally *t) {
  memset(t->finals, 0, sizeof(t->finals));
  memset(t->n_finals, 0, sizeof(t->n_finals));
  atomic_store(&t->processed, 0);
  atomic_store(&t->wm_calls, 0);
  atomic_store(&t->wm_decreased, false);
}

static void tally_init(struct tally *t) {
  pthread_mutex_init(&t->mu, NULL);
  tally_reset(t);
}

static bool tally_has_finals(struct tally *t) {
  bool any = false;
  int k;

  pthread_mutex_lock(&t->mu);
  for (k = 0; k < KEYS; k++)
    any = any || t->n_finals[k] > 0;
  pthread_mutex_unlock(&t->mu);
  return any;
}

struct counter {
  struct tally *t;
  weir_value_state *count;
  bool have_wm;
  int64_t last_wm;
};

static int count_open(weir_ctx *ctx, void *data, void **inst) {
  struct counter *c = calloc(1, sizeof(*c));

  if (c == NULL)
    return WEIR_ENOMEM;
  c->t = data;
  *inst = c;
  return weir_ctx_value_state(ctx, "count", &c->count);
}

static int count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct counter *c = inst;
  size_t i;
  int rc;

  (void)ctx;
  for (i = 0; i < n; i++) {
    uint64_t cnt = 0;
    weir_buf v;

    rc = weir_value_state_get(c->count, recs[i].key, &v);
    if (rc == 0)
      memcpy(&cnt, v.ptr, sizeof(cnt));
    else if (rc != WEIR_ENOTFOUND)
      return rc;
    cnt++;
    rc =
        weir_value_state_put(c->count, recs[i].key, (weir_buf){(const uint8_t *)&cnt, sizeof(cnt)});
    if (rc != 0)
      return rc;
  }
  atomic_fetch_add(&c->t->processed, n);
  return 0;
}

static int count_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  struct counter *c = inst;

  (void)ctx;
  if (c->have_wm && wm < c->last_wm) {
    atomic_store(&c->t->wm_bad_prev, c->last_wm);
    atomic_store(&c->t->wm_bad_next, wm);
    atomic_store(&c->t->wm_decreased, true);
  }
  c->have_wm = true;
  c->last_wm = wm;
  atomic_fetch_add(&c->t->wm_calls, 1);
  return 0;
}

static int count_finish(weir_ctx *ctx, void *inst) {
  struct counter *c = inst;
  char k[16];
  int i, rc;

  (void)ctx;
  for (i = 0; i < KEYS; i++) {
    weir_buf key = {(const uint8_t *)k, (size_t)snprintf(k, sizeof(k), "k%d", i)}, v;
    uint64_t cnt;

    rc = weir_value_state_get(c->count, key, &v);
    if (rc == WEIR_EINVAL || rc == WEIR_ENOTFOUND)
      continue; /* another subtask's key, or never seen */
    if (rc != 0)
      return rc;
    memcpy(&cnt, v.ptr, sizeof(cnt));
    pthread_mutex_lock(&c->t->mu);
    c->t->finals[i] += cnt;
    c->t->n_finals[i]++;
    pthread_mutex_unlock(&c->t->mu);
  }
  return 0;
}

static void count_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static weir_operator counter_op(void) {
  weir_operator op = {0};

  op.open = count_open;
  op.process = count_process;
  op.on_watermark = count_watermark;
  op.finish = count_finish;
  op.close = count_close;
  return op;
}

/* ---- generators paced by their value function ---------------------------------------------- */

/* Sleeps 1 ms every `*data` indices, so a bounded generator lasts long enough for several
 * checkpoints. The value stays a pure function of the index. */
static long paced_value(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  unsigned every = *(const unsigned *)data;
  int n = snprintf((char *)buf, cap, "v%" PRIu64, index);

  if (every != 0 && index % every == 0)
    sleep_us(1000);
  return n;
}

static weir_generator *paced_gen(uint64_t count, const unsigned *every) {
  weir_generator_config g = {0};
  weir_generator *gen = NULL;

  g.count = count;
  g.key_count = KEYS;
  g.records_per_poll = 32;
  g.fn = paced_value;
  g.fn_data = (void *)(uintptr_t)every;
  CHECK(weir_generator_create(&gen, &g));
  return gen;
}

/* ---- union job: several generators -> key_by each -> one keyed counter -------------------- */

#define UNION_SOURCES 3
#define UNION_PER_SOURCE 32000 /* a multiple of KEYS */

/* The last source is not paced: a slow lane behind it keeps its channel full, so its barriers
 * arrive long after the other inputs' and alignment has to hold those inputs back. */
static const unsigned union_pace[UNION_SOURCES] = {60, 90, 0};

/* A map on its own task that passes about 64 records per ms. */
static int slow_lane(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  static _Thread_local unsigned n;

  (void)ctx;
  (void)data;
  (void)in;
  (void)out;
  if (++n % 64 == 0)
    sleep_us(1000);
  return 0;
}

/* Adds a slow lane after `upstream` (not chained to it) and returns its id. */
static int add_slow_lane(weir_job *job, int upstream, const char *name) {
  int id;

  CHECK(weir_job_map(job, upstream, name, slow_lane, NULL, &id));
  CHECK(weir_job_set_partitioning(job, upstream, id, WEIR_PART_REBALANCE));
  return id;
}

struct union_job {
  weir_job *job;
  weir_generator *gens[UNION_SOURCES];
};

static void union_build(struct union_job *u, struct tally *t, weir_checkpoint_mode mode,
                        int64_t interval_ms) {
  weir_operator op = counter_op();
  int s, src, kb, cnt = -1, sink;
  char name[32];

  memset(u, 0, sizeof(*u));
  CHECK(weir_job_create(&u->job, "union"));
  CHECK(weir_job_set_checkpoint_dir(u->job, ckpt_dir()));
  CHECK(weir_job_set_checkpoint_mode(u->job, mode));
  /* A short queue keeps the slow lane's backlog, and so each alignment, short. */
  CHECK(weir_job_set_channel_capacity(u->job, 2));
  if (interval_ms > 0)
    CHECK(weir_job_set_checkpoint_interval(u->job, interval_ms));
  for (s = 0; s < UNION_SOURCES; s++) {
    u->gens[s] = paced_gen(UNION_PER_SOURCE, &union_pace[s]);
    snprintf(name, sizeof(name), "gen-%c", 'a' + s);
    CHECK(weir_job_add_generator(u->job, name, u->gens[s], &src));
    snprintf(name, sizeof(name), "src-uid-%d", s);
    CHECK(weir_job_set_uid(u->job, src, name));
    if (s == 0)
      CHECK(weir_job_set_parallelism(u->job, src, 2));
    if (s == UNION_SOURCES - 1)
      src = add_slow_lane(u->job, src, "slow-lane");
    snprintf(name, sizeof(name), "by-key-%c", 'a' + s);
    CHECK(weir_job_key_by(u->job, src, name, key_of, NULL, &kb));
    if (s == 0) {
      CHECK(weir_job_set_parallelism(u->job, kb, 2));
      CHECK(weir_job_add_operator(u->job, kb, "count", &op, t, &cnt));
      CHECK(weir_job_set_parallelism(u->job, cnt, 3));
    } else {
      CHECK(weir_job_connect(u->job, kb, cnt, WEIR_PART_HASH));
    }
  }
  CHECK(weir_job_add_callback_sink(u->job, cnt, "sink", drop_cb, NULL, &sink));
}

static void union_destroy(struct union_job *u) {
  int s;

  weir_job_destroy(u->job);
  for (s = 0; s < UNION_SOURCES; s++)
    weir_generator_destroy(u->gens[s]);
}

struct progress {
  weir_job *job;
  struct tally *t;
  uint64_t completed;
  uint64_t processed;
};

static bool progress_reached(void *arg) {
  struct progress *p = arg;

  return completed_of(p->job) >= p->completed && atomic_load(&p->t->processed) >= p->processed;
}

/*
 * Run 1 takes periodic checkpoints, then stops with a savepoint part-way. Run 2 restores it,
 * takes more periodic checkpoints and is cancelled (a crash). Run 3 restores the latest of
 * those and finishes. Returns run 3's final counts in t->finals.
 */
static void union_three_runs(struct tally *t, weir_checkpoint_mode mode) {
  struct union_job u;
  struct progress p;
  weir_checkpoint_stats st;
  uint64_t sp, crash_id;
  int rc;

  /* Run 1. */
  union_build(&u, t, mode, 20);
  CHECK(weir_job_start(u.job));
  p = (struct progress){u.job, t, 2, UNION_SOURCES * UNION_PER_SOURCE / 10};
  cr_assert(poll_until(progress_reached, &p), "run 1: no 2 checkpoints / records processed");
  CHECK(weir_job_stop_with_savepoint(u.job));
  cr_assert_eq(weir_job_wait(u.job), 0, "%s", weir_job_error(u.job));
  sp = weir_job_last_checkpoint(u.job);
  weir_job_checkpoint_stats(u.job, &st);
  cr_assert_geq(st.completed, 3, "periodic checkpoints plus the savepoint");
  cr_assert_gt(sp, 0);
  union_destroy(&u);
  /* Part-way. (Whether finish ran is checked by savepoint_during_a_checkpoint_suspends.) */
  cr_assert_lt(atomic_load(&t->processed), (uint64_t)UNION_SOURCES * UNION_PER_SOURCE);

  /* Run 2: restore, checkpoint, crash. */
  tally_reset(t);
  union_build(&u, t, mode, 20);
  CHECK(weir_job_start(u.job));
  p = (struct progress){u.job, t, 2, 1};
  cr_assert(poll_until(progress_reached, &p), "run 2: no 2 checkpoints");
  weir_job_cancel(u.job);
  rc = weir_job_wait(u.job);
  cr_assert(rc == WEIR_ECANCELED || rc == 0, "%s", weir_job_error(u.job));
  weir_job_checkpoint_stats(u.job, &st);
  cr_assert_eq(st.restored_id, sp);
  crash_id = weir_job_last_checkpoint(u.job);
  cr_assert_gt(crash_id, sp);
  union_destroy(&u);

  /* Run 3: restore the latest periodic checkpoint and finish. */
  tally_reset(t);
  union_build(&u, t, mode, 20);
  cr_assert_eq(weir_job_run(u.job), 0, "%s", weir_job_error(u.job));
  weir_job_checkpoint_stats(u.job, &st);
  cr_assert_eq(st.restored_id, crash_id);
  union_destroy(&u);
}

Test(ckpt_semantics, aligned_union_of_three_sources_counts_exactly_once) {
  struct tally t;
  int k;

  tally_init(&t);
  union_three_runs(&t, WEIR_EXACTLY_ONCE);
  for (k = 0; k < KEYS; k++) {
    cr_assert_eq(t.n_finals[k], 1, "k%d reported by %d subtasks", k, t.n_finals[k]);
    cr_assert_eq(t.finals[k], (uint64_t)UNION_SOURCES * UNION_PER_SOURCE / KEYS,
                 "k%d counted %" PRIu64 ", expected exactly %d", k, t.finals[k],
                 UNION_SOURCES * UNION_PER_SOURCE / KEYS);
  }
}

Test(ckpt_semantics, at_least_once_union_never_loses_records) {
  struct tally t;
  int k;

  tally_init(&t);
  union_three_runs(&t, WEIR_AT_LEAST_ONCE);
  for (k = 0; k < KEYS; k++) {
    cr_assert_eq(t.n_finals[k], 1, "k%d reported by %d subtasks", k, t.n_finals[k]);
    cr_assert_geq(t.finals[k], (uint64_t)UNION_SOURCES * UNION_PER_SOURCE / KEYS,
                  "k%d counted %" PRIu64 ", fewer than the %d records it had", k, t.finals[k],
                  UNION_SOURCES * UNION_PER_SOURCE / KEYS);
  }
}

/* ---- sources that emit watermarks ---------------------------------------------------------- */

#define WM_SOURCES 3
#define WM_PER_SOURCE 16000 /* a multiple of KEYS */
#define WM_EVERY 50         /* a watermark after every WM_EVERY records */

struct wm_src {
  uint64_t count;
  unsigned per_poll;
  long sleep_us; /* after each poll */
  int64_t ts_step;
};

struct wm_inst {
  const struct wm_src *cfg;
  uint64_t next;
  char key[16];
};

static int wm_open(weir_ctx *ctx, void *data, void **inst) {
  struct wm_inst *w = calloc(1, sizeof(*w));

  (void)ctx;
  if (w == NULL)
    return WEIR_ENOMEM;
  w->cfg = data;
  *inst = w;
  return 0;
}

static int wm_poll(weir_ctx *ctx, void *inst) {
  struct wm_inst *w = inst;
  unsigned j;
  int rc;

  if (w->next >= w->cfg->count)
    return WEIR_EOF;
  for (j = 0; j < w->cfg->per_poll && w->next < w->cfg->count; j++) {
    weir_record r = weir_record_init();
    int n = snprintf(w->key, sizeof(w->key), "k%d", (int)(w->next % KEYS));

    r.key = (weir_buf){(const uint8_t *)w->key, (size_t)n};
    r.value = r.key;
    r.timestamp = (int64_t)w->next * w->cfg->ts_step;
    r.offset = w->next;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
    w->next++;
    if (w->next % WM_EVERY == 0 && (rc = weir_emit_watermark(ctx, r.timestamp)) != 0)
      return rc;
  }
  sleep_us(w->cfg->sleep_us);
  return 0;
}

static int wm_snapshot(weir_ctx *ctx, void *inst, uint64_t id, weir_snapshot *out) {
  struct wm_inst *w = inst;

  (void)ctx;
  (void)id;
  return weir_snapshot_write(out, &w->next, sizeof(w->next));
}

static int wm_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  struct wm_inst *w = inst;

  if (state.len != sizeof(w->next)) {
    weir_ctx_set_error(ctx, "position of %zu bytes", state.len);
    return WEIR_EPARSE;
  }
  memcpy(&w->next, state.ptr, sizeof(w->next));
  return 0;
}

static void wm_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static const struct wm_src wm_cfgs[WM_SOURCES] = {
    {WM_PER_SOURCE, 16, 100, 10}, {WM_PER_SOURCE, 24, 100, 7}, {WM_PER_SOURCE, 40, 100, 13}};

static weir_job *wm_build(struct tally *t, int64_t interval_ms) {
  weir_operator src = {0}, cnt_op = counter_op();
  weir_job *job = NULL;
  int s, id, kb, cnt = -1;
  char name[32];

  src.open = wm_open;
  src.poll = wm_poll;
  src.snapshot = wm_snapshot;
  src.restore = wm_restore;
  src.close = wm_close;
  CHECK(weir_job_create(&job, "watermarks"));
  CHECK(weir_job_set_checkpoint_dir(job, ckpt_dir()));
  CHECK(weir_job_set_checkpoint_interval(job, interval_ms));
  CHECK(weir_job_set_channel_capacity(job, 2));
  for (s = 0; s < WM_SOURCES; s++) {
    snprintf(name, sizeof(name), "wm-src-%d", s);
    CHECK(weir_job_add_source(job, name, &src, (void *)&wm_cfgs[s], &id));
    if (s == 0) {
      /* Keyed directly by the HASH edge: the record's own key. */
      CHECK(weir_job_add_operator(job, WEIR_NO_INPUT, "count", &cnt_op, t, &cnt));
      CHECK(weir_job_set_parallelism(job, cnt, 2));
      CHECK(weir_job_connect(job, id, cnt, WEIR_PART_HASH));
    } else {
      if (s == WM_SOURCES - 1)
        id = add_slow_lane(job, id, "slow-lane");
      snprintf(name, sizeof(name), "by-key-%d", s);
      CHECK(weir_job_key_by(job, id, name, key_of, NULL, &kb));
      CHECK(weir_job_connect(job, kb, cnt, WEIR_PART_AUTO));
    }
  }
  CHECK(weir_job_add_callback_sink(job, cnt, "sink", drop_cb, NULL, NULL));
  return job;
}

/* Run 1 checkpoints while every source emits watermarks, then crashes (cancel); run 2 restores
 * its latest checkpoint and finishes. */
Test(ckpt_semantics, barriers_interleaved_with_watermarks_keep_state_exact) {
  struct tally t;
  struct progress p;
  weir_checkpoint_stats st;
  weir_job *job;
  uint64_t crash_id;
  int k, rc;

  tally_init(&t);
  job = wm_build(&t, 20);
  CHECK(weir_job_start(job));
  p = (struct progress){job, &t, 3, WM_SOURCES * WM_PER_SOURCE / 10};
  cr_assert(poll_until(progress_reached, &p), "no 3 checkpoints / records processed");
  weir_job_cancel(job);
  rc = weir_job_wait(job);
  cr_assert(rc == WEIR_ECANCELED || rc == 0, "%s", weir_job_error(job));
  crash_id = weir_job_last_checkpoint(job);
  weir_job_destroy(job);
  cr_assert(!tally_has_finals(&t), "run 1 must be cancelled before its input ends");
  cr_assert_gt(atomic_load(&t.wm_calls), 0, "run 1: on_watermark never called");
  cr_assert(!atomic_load(&t.wm_decreased), "run 1: watermark went back from %lld to %lld",
            (long long)atomic_load(&t.wm_bad_prev), (long long)atomic_load(&t.wm_bad_next));

  tally_reset(&t);
  job = wm_build(&t, 20);
  cr_assert_eq(weir_job_run(job), 0, "%s", weir_job_error(job));
  weir_job_checkpoint_stats(job, &st);
  cr_assert_eq(st.restored_id, crash_id);
  weir_job_destroy(job);
  cr_assert_gt(atomic_load(&t.wm_calls), 0, "run 2: on_watermark never called");
  cr_assert(!atomic_load(&t.wm_decreased), "run 2: watermark went back from %lld to %lld",
            (long long)atomic_load(&t.wm_bad_prev), (long long)atomic_load(&t.wm_bad_next));
  for (k = 0; k < KEYS; k++) {
    cr_assert_eq(t.n_finals[k], 1, "k%d reported by %d subtasks", k, t.n_finals[k]);
    cr_assert_eq(t.finals[k], (uint64_t)WM_SOURCES * WM_PER_SOURCE / KEYS,
                 "k%d counted %" PRIu64 ", expected exactly %d", k, t.finals[k],
                 WM_SOURCES * WM_PER_SOURCE / KEYS);
  }
}

/* ---- a pass-through operator watching snapshots and notifications -------------------------- */

struct watch {
  pthread_mutex_t mu;
  /* Snapshot calls: their ids, and which ones slept. */
  uint64_t snap_ids[MAX_IDS];
  bool slept[MAX_IDS];
  size_t n_snaps;
  /* Snapshot calls numbered [sleep_from, sleep_to) (0-based) sleep sleep_ms; sleep_to < 0:
   * every call from sleep_from on. */
  int sleep_from, sleep_to;
  long sleep_ms;
  uint64_t notified[MAX_IDS];
  size_t n_notified;
  atomic_ullong records;
  atomic_int finishes;
  atomic_bool in_slow_snapshot;
};

static void watch_init(struct watch *w) {
  memset(w, 0, sizeof(*w));
  pthread_mutex_init(&w->mu, NULL);
  w->sleep_from = w->sleep_to = 0;
}

static int watch_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct watch *w = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++)
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  atomic_fetch_add(&w->records, n);
  return 0;
}

static int watch_snapshot(weir_ctx *ctx, void *inst, uint64_t id, weir_snapshot *out) {
  struct watch *w = inst;
  bool sleep_now;
  int call;

  (void)ctx;
  pthread_mutex_lock(&w->mu);
  call = (int)w->n_snaps;
  sleep_now = call >= w->sleep_from && (w->sleep_to < 0 || call < w->sleep_to);
  if (w->n_snaps < MAX_IDS) {
    w->snap_ids[w->n_snaps] = id;
    w->slept[w->n_snaps] = sleep_now;
    w->n_snaps++;
  }
  pthread_mutex_unlock(&w->mu);
  if (sleep_now) {
    atomic_store(&w->in_slow_snapshot, true);
    sleep_us(w->sleep_ms * 1000);
    atomic_store(&w->in_slow_snapshot, false);
  }
  return weir_snapshot_write(out, &id, sizeof(id));
}

static int watch_finish(weir_ctx *ctx, void *inst) {
  struct watch *w = inst;

  (void)ctx;
  atomic_fetch_add(&w->finishes, 1);
  return 0;
}

static int watch_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  (void)ctx;
  (void)inst;
  (void)state;
  return 0;
}

static void watch_notify(weir_ctx *ctx, void *inst, uint64_t id) {
  struct watch *w = inst;

  (void)ctx;
  pthread_mutex_lock(&w->mu);
  if (w->n_notified < MAX_IDS)
    w->notified[w->n_notified++] = id;
  pthread_mutex_unlock(&w->mu);
}

/* gen (unbounded, paced) -> rebalance -> watch -> sink. */
struct watch_job {
  weir_job *job;
  weir_generator *gen;
};

static const unsigned watch_pace = 50;

static void watch_build(struct watch_job *wj, struct watch *w) {
  weir_operator op = {0};
  int src, id;

  op.process = watch_process;
  op.snapshot = watch_snapshot;
  op.restore = watch_restore;
  op.finish = watch_finish;
  op.notify_checkpoint_complete = watch_notify;
  wj->gen = paced_gen(0, &watch_pace);
  CHECK(weir_job_create(&wj->job, "watch"));
  CHECK(weir_job_set_checkpoint_dir(wj->job, ckpt_dir()));
  CHECK(weir_job_add_generator(wj->job, "gen", wj->gen, &src));
  CHECK(weir_job_add_operator(wj->job, src, "watch", &op, w, &id));
  CHECK(weir_job_set_partitioning(wj->job, src, id, WEIR_PART_REBALANCE));
  CHECK(weir_job_add_callback_sink(wj->job, id, "sink", drop_cb, NULL, NULL));
}

static void watch_destroy(struct watch_job *wj) {
  weir_job_destroy(wj->job);
  weir_generator_destroy(wj->gen);
}

struct notify_progress {
  struct watch *w;
  weir_job *job;
  size_t notified;
  uint64_t failed;
};

static bool notify_reached(void *arg) {
  struct notify_progress *p = arg;
  size_t n;

  pthread_mutex_lock(&p->w->mu);
  n = p->w->n_notified;
  pthread_mutex_unlock(&p->w->mu);
  return n >= p->notified && failed_of(p->job) >= p->failed;
}

static bool id_in(uint64_t id, const weir_checkpoint_info *infos, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (infos[i].id == id)
      return true;
  return false;
}

Test(ckpt_semantics, notify_only_for_completed_checkpoints_in_order) {
  struct watch w;
  struct watch_job wj;
  struct notify_progress p;
  weir_checkpoint_info *infos = NULL;
  weir_checkpoint_stats st;
  size_t n = 0, i;
  uint64_t max_slept = 0;

  watch_init(&w);
  /* Snapshot calls 2 and 3 outlast the timeout: those checkpoints abort. */
  w.sleep_from = 2;
  w.sleep_to = 4;
  w.sleep_ms = 400;
  watch_build(&wj, &w);
  CHECK(weir_job_set_checkpoint_interval(wj.job, 20));
  CHECK(weir_job_set_checkpoint_timeout(wj.job, 60));
  CHECK(weir_job_set_tolerable_checkpoint_failures(wj.job, 1000000));
  CHECK(weir_job_set_checkpoint_retention(wj.job, 1000));
  CHECK(weir_job_start(wj.job));
  p = (struct notify_progress){&w, wj.job, 5, 2};
  cr_assert(poll_until(notify_reached, &p), "no 5 notifications after 2 aborts");
  CHECK(weir_job_stop_with_savepoint(wj.job));
  cr_assert_eq(weir_job_wait(wj.job), 0, "%s", weir_job_error(wj.job));
  weir_job_checkpoint_stats(wj.job, &st);
  watch_destroy(&wj);
  cr_assert_geq(st.failed, 2);

  CHECK(weir_checkpoint_list(ckpt_dir(), &infos, &n));
  cr_assert_eq(n, st.completed, "retention 1000 keeps every completed checkpoint");
  for (i = 1; i < n; i++)
    cr_assert_gt(infos[i].id, infos[i - 1].id);
  /* Snapshot ids strictly increase across the aborts; the slow ones were aborted. */
  for (i = 0; i < w.n_snaps; i++) {
    if (i > 0)
      cr_assert_gt(w.snap_ids[i], w.snap_ids[i - 1], "snapshot ids %" PRIu64 " then %" PRIu64,
                   w.snap_ids[i - 1], w.snap_ids[i]);
    if (w.slept[i]) {
      cr_assert(!id_in(w.snap_ids[i], infos, n), "timed-out checkpoint %" PRIu64 " is listed",
                w.snap_ids[i]);
      max_slept = w.snap_ids[i];
    }
  }
  cr_assert_gt(max_slept, 0);
  cr_assert_gt(infos[n - 1].id, max_slept, "no checkpoint completed after the slow ones");
  /* Notifications: strictly increasing, each a listed (complete) checkpoint. */
  cr_assert_geq(w.n_notified, 5);
  for (i = 0; i < w.n_notified; i++) {
    if (i > 0)
      cr_assert_gt(w.notified[i], w.notified[i - 1], "notified %" PRIu64 " then %" PRIu64,
                   w.notified[i - 1], w.notified[i]);
    cr_assert(id_in(w.notified[i], infos, n), "notified checkpoint %" PRIu64 " is not complete",
              w.notified[i]);
  }
  free(infos);
}

/* ---- timeouts ---------------------------------------------------------------------------- */

Test(ckpt_semantics, timeouts_are_tolerated_and_later_checkpoints_complete) {
  struct watch w;
  struct watch_job wj;
  struct notify_progress p;
  uint64_t failed_before;

  watch_init(&w);
  /* The first three snapshot calls outlast the timeout. */
  w.sleep_from = 0;
  w.sleep_to = 3;
  w.sleep_ms = 500;
  watch_build(&wj, &w);
  CHECK(weir_job_set_checkpoint_interval(wj.job, 20));
  CHECK(weir_job_set_checkpoint_timeout(wj.job, 40));
  CHECK(weir_job_set_tolerable_checkpoint_failures(wj.job, 1000000));
  CHECK(weir_job_start(wj.job));
  p = (struct notify_progress){&w, wj.job, 0, 3};
  cr_assert(poll_until(notify_reached, &p), "three checkpoints did not time out");
  cr_assert_eq(completed_of(wj.job), 0, "a checkpoint completed while the operator slept");
  failed_before = failed_of(wj.job);
  /* The operator no longer sleeps: checkpoints complete again and the job keeps running. */
  p = (struct notify_progress){&w, wj.job, 3, 0};
  cr_assert(poll_until(notify_reached, &p), "no checkpoint completed after the slow ones");
  cr_assert_geq(completed_of(wj.job), 3);
  cr_assert_geq(failed_of(wj.job), failed_before);
  weir_job_stop(wj.job);
  cr_assert_eq(weir_job_wait(wj.job), 0, "%s", weir_job_error(wj.job));
  watch_destroy(&wj);
}

Test(ckpt_semantics, timeout_with_no_tolerated_failures_fails_the_job) {
  struct watch w;
  struct watch_job wj;
  weir_checkpoint_stats st;
  int rc;

  watch_init(&w);
  w.sleep_from = 0;
  w.sleep_to = -1;
  w.sleep_ms = 300;
  watch_build(&wj, &w);
  CHECK(weir_job_set_checkpoint_interval(wj.job, 20));
  CHECK(weir_job_set_checkpoint_timeout(wj.job, 40));
  CHECK(weir_job_set_tolerable_checkpoint_failures(wj.job, 0));
  CHECK(weir_job_start(wj.job));
  rc = weir_job_wait(wj.job);
  cr_assert_eq(rc, WEIR_ETIMEDOUT, "wait returned %s: %s", weir_err_name(rc),
               weir_job_error(wj.job));
  cr_assert(strstr(weir_job_error(wj.job), "checkpoint") != NULL, "%s", weir_job_error(wj.job));
  cr_assert(strstr(weir_job_error(wj.job), "timed out") != NULL, "%s", weir_job_error(wj.job));
  weir_job_checkpoint_stats(wj.job, &st);
  cr_assert_eq(st.completed, 0);
  cr_assert_eq(st.failed, 1);
  watch_destroy(&wj);
}

/* ---- retention --------------------------------------------------------------------------- */

static bool completed_at_least_1(void *job) {
  return completed_of(job) >= 1;
}

static bool completed_at_least_8(void *job) {
  return completed_of(job) >= 8;
}

Test(ckpt_semantics, retention_keeps_the_newest_two) {
  struct watch w;
  struct watch_job wj;
  weir_checkpoint_info *infos = NULL;
  size_t n = 0;
  uint64_t sp;

  watch_init(&w);
  watch_build(&wj, &w);
  CHECK(weir_job_set_checkpoint_interval(wj.job, 10));
  CHECK(weir_job_set_checkpoint_retention(wj.job, 2));
  CHECK(weir_job_start(wj.job));
  cr_assert(poll_until(completed_at_least_8, wj.job));
  CHECK(weir_job_stop_with_savepoint(wj.job));
  cr_assert_eq(weir_job_wait(wj.job), 0, "%s", weir_job_error(wj.job));
  sp = weir_job_last_checkpoint(wj.job);
  cr_assert_eq(failed_of(wj.job), 0);
  watch_destroy(&wj);

  CHECK(weir_checkpoint_list(ckpt_dir(), &infos, &n));
  cr_assert_eq(n, 2, "%zu checkpoints kept", n);
  cr_assert_eq(infos[1].id, sp, "newest kept %" PRIu64 ", savepoint %" PRIu64, infos[1].id, sp);
  cr_assert_eq(infos[0].id, sp - 1);
  free(infos);

  /* An old checkpoint is gone for restores too. */
  watch_init(&w);
  watch_build(&wj, &w);
  CHECK(weir_job_set_restore_checkpoint(wj.job, 1));
  cr_assert_eq(weir_job_start(wj.job), WEIR_ENOTFOUND, "%s", weir_job_error(wj.job));
  watch_destroy(&wj);
}

/* ---- a savepoint requested while a checkpoint is in flight ------------------------------ */

static bool in_slow_snapshot(void *w) {
  return atomic_load(&((struct watch *)w)->in_slow_snapshot);
}

/* checkpoint.h: with a savepoint "every task ends without its operators' finish callbacks". A
 * savepoint asked for while a periodic checkpoint is still in flight must wait for it, then be
 * taken as a checkpoint of its own. */
Test(ckpt_semantics, savepoint_during_a_checkpoint_suspends) {
  struct watch w;
  struct watch_job wj;
  weir_checkpoint_stats st;
  uint64_t in_flight, sp;
  int rc;

  watch_init(&w);
  w.sleep_from = 0;
  w.sleep_to = 1;
  w.sleep_ms = 300;
  watch_build(&wj, &w);
  CHECK(weir_job_start(wj.job));
  CHECK(weir_job_trigger_checkpoint(wj.job));
  cr_assert(poll_until(in_slow_snapshot, &w), "the first snapshot never started");
  in_flight = w.snap_ids[0];
  CHECK(weir_job_stop_with_savepoint(wj.job));
  rc = weir_job_wait(wj.job);
  sp = weir_job_last_checkpoint(wj.job);
  weir_job_checkpoint_stats(wj.job, &st);
  watch_destroy(&wj);
  cr_assert_eq(rc, 0);
  cr_assert_eq(atomic_load(&w.finishes), 0,
               "finish ran: the job was drained instead of stopped at a savepoint");
  cr_assert_gt(sp, in_flight, "savepoint %" PRIu64 " is the checkpoint %" PRIu64 " in flight", sp,
               in_flight);
  cr_assert_eq(st.completed, 2);
}

/* ---- restore errors ---------------------------------------------------------------------- */

/* gen (unbounded) -> key_by -> keyed count (uid "count") [-> extra operator] -> sink. */
struct small_job {
  weir_job *job;
  weir_generator *gen;
  struct tally t;
};

static void small_build(struct small_job *sj, const weir_operator *extra) {
  weir_generator_config g = {0};
  weir_operator op = counter_op();
  int src, kb, cnt, last;

  memset(sj, 0, sizeof(*sj));
  tally_init(&sj->t);
  g.count = 0;
  g.key_count = KEYS;
  g.value_len = 24;
  CHECK(weir_generator_create(&sj->gen, &g));
  CHECK(weir_job_create(&sj->job, "small"));
  CHECK(weir_job_set_checkpoint_dir(sj->job, ckpt_dir()));
  CHECK(weir_job_add_generator(sj->job, "gen", sj->gen, &src));
  CHECK(weir_job_key_by(sj->job, src, "by-key", key_of, NULL, &kb));
  CHECK(weir_job_add_operator(sj->job, kb, "count", &op, &sj->t, &cnt));
  last = cnt;
  if (extra != NULL)
    CHECK(weir_job_add_operator(sj->job, cnt, "audit", extra, NULL, &last));
  CHECK(weir_job_add_callback_sink(sj->job, last, "sink", drop_cb, NULL, NULL));
}

static void small_destroy(struct small_job *sj) {
  weir_job_destroy(sj->job);
  weir_generator_destroy(sj->gen);
}

static bool processed_some(void *t) {
  return atomic_load(&((struct tally *)t)->processed) >= 1000;
}

/* Runs the small job until it processed some records, then stops it with a savepoint. */
static uint64_t small_savepoint(void) {
  struct small_job sj;
  uint64_t sp;

  small_build(&sj, NULL);
  CHECK(weir_job_start(sj.job));
  cr_assert(poll_until(processed_some, &sj.t));
  CHECK(weir_job_stop_with_savepoint(sj.job));
  cr_assert_eq(weir_job_wait(sj.job), 0, "%s", weir_job_error(sj.job));
  sp = weir_job_last_checkpoint(sj.job);
  cr_assert_gt(sp, 0);
  small_destroy(&sj);
  return sp;
}

static int pass_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  size_t i;
  int rc;

  (void)inst;
  for (i = 0; i < n; i++)
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  return 0;
}

static int pass_snapshot(weir_ctx *ctx, void *inst, uint64_t id, weir_snapshot *out) {
  (void)ctx;
  (void)inst;
  (void)id;
  return weir_snapshot_write(out, "x", 1);
}

Test(ckpt_semantics, restore_refuses_a_stateful_operator_without_state) {
  weir_operator extra = {0};
  struct small_job sj;
  uint64_t sp = small_savepoint();
  char want[64];

  extra.process = pass_process;
  extra.snapshot = pass_snapshot;
  small_build(&sj, &extra);
  cr_assert_eq(weir_job_start(sj.job), WEIR_EINVAL);
  cr_assert(strstr(weir_job_error(sj.job), "'audit'") != NULL, "%s", weir_job_error(sj.job));
  snprintf(want, sizeof(want), "checkpoint %" PRIu64, sp);
  cr_assert(strstr(weir_job_error(sj.job), want) != NULL, "%s", weir_job_error(sj.job));
  small_destroy(&sj);

  /* Without a snapshot callback the same operator is stateless and the job restores. */
  extra.snapshot = NULL;
  small_build(&sj, &extra);
  CHECK(weir_job_start(sj.job));
  cr_assert(poll_until(processed_some, &sj.t));
  weir_job_stop(sj.job);
  cr_assert_eq(weir_job_wait(sj.job), 0, "%s", weir_job_error(sj.job));
  small_destroy(&sj);
}

/* Opens the store's LMDB environment directly and flips a payload byte of the blob of
 * (id, uid, subtask): the frame's checksum no longer matches. */
static void corrupt_blob_in_place(uint64_t id, const char *uid, uint32_t subtask) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k, v;
  uint8_t key[300], *copy;
  size_t ul = strlen(uid);
  int i;

  for (i = 0; i < 8; i++)
    key[i] = (uint8_t)(id >> (56 - 8 * i));
  memcpy(key + 8, uid, ul);
  key[8 + ul] = 0;
  for (i = 0; i < 4; i++)
    key[9 + ul + i] = (uint8_t)(subtask >> (24 - 8 * i));
  k.mv_size = 13 + ul;
  k.mv_data = key;
  cr_assert_eq(mdb_env_create(&env), 0);
  cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
  cr_assert_eq(mdb_env_set_mapsize(env, WEIR__CKPT_DEFAULT_MAP_SIZE), 0);
  cr_assert_eq(mdb_env_open(env, ckpt_dir(), 0, 0600), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "weir.blobs", 0, &dbi), 0);
  cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0, "no blob for (%" PRIu64 ", %s, %u)", id, uid, subtask);
  cr_assert_gt(v.mv_size, WEIR__CKPT_FRAME_HEADER);
  copy = malloc(v.mv_size);
  cr_assert_not_null(copy);
  memcpy(copy, v.mv_data, v.mv_size);
  copy[v.mv_size - 1] ^= 0x5a;
  v.mv_data = copy;
  cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  free(copy);
}

Test(ckpt_semantics, restore_of_a_damaged_blob_names_checkpoint_uid_and_subtask) {
  struct small_job sj;
  uint64_t sp = small_savepoint();
  char want[64];
  int rc;

  corrupt_blob_in_place(sp, "count", 0);
  small_build(&sj, NULL);
  rc = weir_job_run(sj.job);
  cr_assert_eq(rc, WEIR_EPARSE, "run returned %s: %s", weir_err_name(rc), weir_job_error(sj.job));
  snprintf(want, sizeof(want), "[ckpt %" PRIu64 "]", sp);
  cr_assert(strstr(weir_job_error(sj.job), want) != NULL, "%s", weir_job_error(sj.job));
  cr_assert(strstr(weir_job_error(sj.job), "uid 'count' subtask 0") != NULL, "%s",
            weir_job_error(sj.job));
  cr_assert(strstr(weir_job_error(sj.job), "checksum") != NULL, "%s", weir_job_error(sj.job));
  cr_assert(!tally_has_finals(&sj.t));
  small_destroy(&sj);
}

/* Writes checkpoint sp + 1 through the store: a copy of sp whose blob of (uid, subtask) is a
 * well-framed payload of garbage. */
static uint64_t commit_copy_with_garbage(uint64_t sp, const char *bad_uid, int bad_subtask) {
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x13, 0x37};
  Weir__Ckpt__CheckpointMetadata *meta = NULL;
  struct weir__ckpt_store *s = NULL;
  uint64_t id = sp + 1;
  size_t i;
  int sub;

  CHECK(weir__ckpt_store_open(ckpt_dir(), NULL, &s));
  CHECK(weir__ckpt_store_read_meta(s, sp, &meta));
  CHECK(weir__ckpt_store_begin(s, id));
  for (i = 0; i < meta->n_operators; i++) {
    const char *uid = meta->operators[i]->uid;

    for (sub = 0; sub < (int)meta->operators[i]->parallelism; sub++) {
      uint8_t *p = NULL;
      size_t len = 0;

      if (strcmp(uid, bad_uid) == 0 && sub == bad_subtask) {
        CHECK(weir__ckpt_store_put(s, id, uid, sub, (weir_buf){garbage, sizeof(garbage)}));
        continue;
      }
      CHECK(weir__ckpt_store_get_blob(s, sp, uid, sub, &p, &len));
      CHECK(weir__ckpt_store_put(s, id, uid, sub, (weir_buf){p, len}));
      free(p);
    }
  }
  CHECK(weir__ckpt_store_commit(s, id, meta));
  weir__ckpt_meta_free(meta);
  weir__ckpt_store_close(s);
  return id;
}

Test(ckpt_semantics, restore_of_an_undecodable_blob_names_checkpoint_uid_and_subtask) {
  struct small_job sj;
  uint64_t sp = small_savepoint(), bad;
  char want[96];
  int rc;

  bad = commit_copy_with_garbage(sp, "count", 0);
  small_build(&sj, NULL);
  rc = weir_job_run(sj.job);
  cr_assert_eq(rc, WEIR_EPARSE, "run returned %s: %s", weir_err_name(rc), weir_job_error(sj.job));
  snprintf(want, sizeof(want), "checkpoint %" PRIu64 " uid 'count' subtask 0", bad);
  cr_assert(strstr(weir_job_error(sj.job), want) != NULL, "%s", weir_job_error(sj.job));
  small_destroy(&sj);

  /* The intact savepoint still restores. */
  small_build(&sj, NULL);
  CHECK(weir_job_set_restore_checkpoint(sj.job, sp));
  CHECK(weir_job_start(sj.job));
  cr_assert(poll_until(processed_some, &sj.t));
  weir_job_stop(sj.job);
  cr_assert_eq(weir_job_wait(sj.job), 0, "%s", weir_job_error(sj.job));
  small_destroy(&sj);
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");

  cr_assert_not_null(f, "%s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

Test(ckpt_semantics, directory_that_is_not_a_weir_store_is_a_clear_error) {
  char path[400], text[8192];
  weir_checkpoint_info *infos = NULL;
  struct small_job sj;
  size_t n = 0, i;
  int rc;

  cr_assert_eq(mkdir(ckpt_dir(), 0700), 0);
  snprintf(path, sizeof(path), "%s/data.mdb", ckpt_dir());
  for (i = 0; i < sizeof(text); i++)
    text[i] = (char)('a' + i % 26);
  write_file(path, text, sizeof(text));

  small_build(&sj, NULL);
  rc = weir_job_start(sj.job);
  cr_assert_neq(rc, 0, "a job started on a garbage data.mdb");
  cr_assert_eq(rc, WEIR_EPARSE, "%s: %s", weir_err_name(rc), weir_job_error(sj.job));
  cr_assert(strstr(weir_job_error(sj.job), ckpt_dir()) != NULL, "%s", weir_job_error(sj.job));
  small_destroy(&sj);
  cr_assert_eq(weir_checkpoint_list(ckpt_dir(), &infos, &n), WEIR_EPARSE);
}

/* A valid LMDB environment that some other program wrote: data in its main database. */
Test(ckpt_semantics, foreign_lmdb_environment_is_refused) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k = {5, (void *)"hello"}, v = {5, (void *)"world"};
  struct small_job sj;
  char err[1024];
  int rc;

  cr_assert_eq(mkdir(ckpt_dir(), 0700), 0);
  cr_assert_eq(mdb_env_create(&env), 0);
  cr_assert_eq(mdb_env_open(env, ckpt_dir(), 0, 0600), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
  cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  small_build(&sj, NULL);
  rc = weir_job_start(sj.job);
  snprintf(err, sizeof(err), "%s", weir_job_error(sj.job));
  if (rc == 0) {
    /* Adopted: stop the job before asserting, so no task outlives this frame. */
    weir_job_cancel(sj.job);
    weir_job_wait(sj.job);
  }
  small_destroy(&sj);
  cr_assert_eq(rc, WEIR_EPARSE, "start returned %s: %s", weir_err_name(rc), err);
  cr_assert(strstr(err, "not a weir checkpoint store") != NULL, "%s", err);
}

/* ---- operator state through snapshot/restore callbacks ------------------------------------- */

#define SUM_RECORDS 60000u

struct sum_shared {
  pthread_mutex_t mu;
  uint64_t total_sum, total_n; /* from finish */
  uint64_t snap_sum[MAX_SUB], snap_n[MAX_SUB], snap_id[MAX_SUB];
  uint64_t restored_sum[MAX_SUB], restored_n[MAX_SUB];
  int restores;
  atomic_ullong seen;
  int fail_rc; /* snapshot returns this when set */
  const char *fail_detail;
};

struct summer {
  struct sum_shared *sh;
  int sub;
  uint64_t sum, n;
};

static int sum_open(weir_ctx *ctx, void *data, void **inst) {
  struct summer *s = calloc(1, sizeof(*s));

  if (s == NULL)
    return WEIR_ENOMEM;
  s->sh = data;
  s->sub = weir_ctx_subtask(ctx);
  *inst = s;
  if (s->sub >= MAX_SUB)
    return WEIR_EINVAL;
  return 0;
}

static int sum_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct summer *s = inst;
  size_t i;

  (void)ctx;
  for (i = 0; i < n; i++) {
    s->sum += recs[i].offset;
    s->n++;
  }
  atomic_fetch_add(&s->sh->seen, n);
  return 0;
}

static int sum_snapshot(weir_ctx *ctx, void *inst, uint64_t id, weir_snapshot *out) {
  struct summer *s = inst;
  uint64_t b[2] = {s->sum, s->n};
  int rc;

  if (s->sh->fail_rc != 0) {
    if (s->sh->fail_detail != NULL)
      weir_ctx_set_error(ctx, "%s", s->sh->fail_detail);
    return s->sh->fail_rc;
  }
  if ((rc = weir_snapshot_write(out, b, sizeof(b))) != 0)
    return rc;
  pthread_mutex_lock(&s->sh->mu);
  s->sh->snap_sum[s->sub] = s->sum;
  s->sh->snap_n[s->sub] = s->n;
  s->sh->snap_id[s->sub] = id;
  pthread_mutex_unlock(&s->sh->mu);
  return 0;
}

static int sum_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  struct summer *s = inst;
  uint64_t b[2];

  if (state.len != sizeof(b)) {
    weir_ctx_set_error(ctx, "operator state of %zu bytes, expected %zu", state.len, sizeof(b));
    return WEIR_EPARSE;
  }
  memcpy(b, state.ptr, sizeof(b));
  s->sum = b[0];
  s->n = b[1];
  pthread_mutex_lock(&s->sh->mu);
  s->sh->restored_sum[s->sub] = s->sum;
  s->sh->restored_n[s->sub] = s->n;
  s->sh->restores++;
  pthread_mutex_unlock(&s->sh->mu);
  return 0;
}

static int sum_finish(weir_ctx *ctx, void *inst) {
  struct summer *s = inst;

  (void)ctx;
  pthread_mutex_lock(&s->sh->mu);
  s->sh->total_sum += s->sum;
  s->sh->total_n += s->n;
  pthread_mutex_unlock(&s->sh->mu);
  return 0;
}

static void sum_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static const unsigned sum_pace = 100;

/* gen (count records, paced; 0 = unbounded) -> rebalance -> summer x2 -> sink. */
static weir_job *sum_build(struct sum_shared *sh, weir_generator **gen, uint64_t count,
                           int64_t interval_ms) {
  weir_operator op = {0};
  weir_job *job = NULL;
  int src, id;

  op.open = sum_open;
  op.process = sum_process;
  op.snapshot = sum_snapshot;
  op.restore = sum_restore;
  op.finish = sum_finish;
  op.close = sum_close;
  *gen = paced_gen(count, &sum_pace);
  CHECK(weir_job_create(&job, "sum"));
  CHECK(weir_job_set_checkpoint_dir(job, ckpt_dir()));
  if (interval_ms > 0)
    CHECK(weir_job_set_checkpoint_interval(job, interval_ms));
  CHECK(weir_job_add_generator(job, "gen", *gen, &src));
  CHECK(weir_job_add_operator(job, src, "summer", &op, sh, &id));
  CHECK(weir_job_set_parallelism(job, id, 2));
  CHECK(weir_job_set_partitioning(job, src, id, WEIR_PART_REBALANCE));
  CHECK(weir_job_add_callback_sink(job, id, "sink", drop_cb, NULL, NULL));
  return job;
}

static bool sum_seen_some(void *sh) {
  return atomic_load(&((struct sum_shared *)sh)->seen) >= SUM_RECORDS / 5;
}

static void sum_shared_init(struct sum_shared *sh) {
  memset(sh, 0, sizeof(*sh));
  pthread_mutex_init(&sh->mu, NULL);
}

Test(ckpt_semantics, operator_state_round_trips_through_a_savepoint) {
  struct sum_shared sh, sh2;
  weir_generator *gen;
  weir_job *job;
  uint64_t sp;
  int s;

  sum_shared_init(&sh);
  job = sum_build(&sh, &gen, SUM_RECORDS, 0);
  CHECK(weir_job_start(job));
  cr_assert(poll_until(sum_seen_some, &sh));
  /* One checkpoint first, completed before the savepoint is asked for. */
  CHECK(weir_job_trigger_checkpoint(job));
  cr_assert(poll_until(completed_at_least_1, job));
  CHECK(weir_job_stop_with_savepoint(job));
  cr_assert_eq(weir_job_wait(job), 0, "%s", weir_job_error(job));
  sp = weir_job_last_checkpoint(job);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert_eq(sh.restores, 0, "a fresh start restored state");
  cr_assert_eq(sh.total_n, 0, "run 1 must stop before its input ends");
  for (s = 0; s < 2; s++)
    cr_assert_eq(sh.snap_id[s], sp, "subtask %d last snapshot %" PRIu64 ", savepoint %" PRIu64, s,
                 sh.snap_id[s], sp);
  cr_assert_gt(sh.snap_n[0] + sh.snap_n[1], 0);
  cr_assert_lt(sh.snap_n[0] + sh.snap_n[1], SUM_RECORDS);

  sum_shared_init(&sh2);
  job = sum_build(&sh2, &gen, SUM_RECORDS, 0);
  cr_assert_eq(weir_job_run(job), 0, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert_eq(sh2.restores, 2);
  for (s = 0; s < 2; s++) {
    cr_assert_eq(sh2.restored_sum[s], sh.snap_sum[s], "subtask %d", s);
    cr_assert_eq(sh2.restored_n[s], sh.snap_n[s], "subtask %d", s);
  }
  cr_assert_eq(sh2.total_n, SUM_RECORDS);
  cr_assert_eq(sh2.total_sum, (uint64_t)SUM_RECORDS * (SUM_RECORDS - 1) / 2);
}

static weir_job *failing_sum_job(struct sum_shared *sh, weir_generator **gen, const char *detail) {
  sum_shared_init(sh);
  sh->fail_rc = WEIR_EIO;
  sh->fail_detail = detail;
  return sum_build(sh, gen, 0, 20);
}

Test(ckpt_semantics, snapshot_error_fails_the_job_naming_the_operator) {
  struct sum_shared sh;
  weir_generator *gen;
  weir_job *job = failing_sum_job(&sh, &gen, NULL);
  int rc;

  CHECK(weir_job_start(job));
  rc = weir_job_wait(job);
  cr_assert_eq(rc, WEIR_EIO, "wait returned %s: %s", weir_err_name(rc), weir_job_error(job));
  cr_assert(strstr(weir_job_error(job), "'summer'") != NULL, "%s", weir_job_error(job));
  cr_assert(strstr(weir_job_error(job), "snapshot") != NULL, "%s", weir_job_error(job));
  cr_assert_eq(completed_of(job), 0);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}

/* job.h: "the job's error message names the operator and subtask, plus any detail set with
 * weir_ctx_set_error". */
Test(ckpt_semantics, snapshot_error_keeps_the_operators_detail) {
  struct sum_shared sh;
  weir_generator *gen;
  weir_job *job = failing_sum_job(&sh, &gen, "disk quota of the side file exceeded");
  char err[1024];
  int rc;

  CHECK(weir_job_start(job));
  rc = weir_job_wait(job);
  snprintf(err, sizeof(err), "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert_eq(rc, WEIR_EIO, "wait returned %s: %s", weir_err_name(rc), err);
  cr_assert(strstr(err, "'summer'") != NULL, "%s", err);
  cr_assert(strstr(err, "disk quota of the side file exceeded") != NULL, "%s", err);
}
