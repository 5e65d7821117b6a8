/*
 * bench_checkpoint: what checkpointing costs a running job, against baselines measured in the
 * same run (issue #3, "Benchmark").
 *
 *   1. throughput of a stateful pipeline with checkpoints every 1 s and every 100 ms, as a
 *      ratio to the same job without a checkpoint directory (targets >= 0.95 and >= 0.85);
 *   2. checkpoint latency p50/p99, trigger to complete, for small keyed state (100 keys, ~2 KiB
 *      of snapshots), checkpoints every 100 ms for 5 s, once at full load (the channels full, so
 *      barriers queue behind records) and once at light load (a rate-limited generator: the
 *      runtime's and the store's own cost), beside a bare synced LMDB commit of 2 KiB measured
 *      before and after (target: checkpoint p50 <= 3x bare p50);
 *   3. restore time of a keyed state of 1 M keys (target <= 1 s), from weir_job_start until
 *      every subtask of the restored operator has its state and has seen its (empty) input.
 *
 * The pipeline everywhere: generator (parallelism 1) -> key_by => (key hash) => keyed count
 * (weir_value_state, parallelism 2) -> callback sink (parallelism 2, chained with the count).
 * The count emits one record per input (key, 8-byte count) and the sink counts what it gets;
 * every bounded run checks that count exactly, and the restore runs check the restored key
 * count and the sum of all counts. Exits 1 when a check fails or a job fails; a missed target
 * is reported, not an error.
 *
 * Run:  bench_checkpoint [scale]   (scale multiplies the throughput runs' record count; at 1
 *                                   each run takes about 3-5 s on a 2-core VM)
 * Works in a mkdtemp directory under $TMPDIR (default /tmp), removed at the end, so the sync
 * figures are those of that file system.
 */
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <weir/weir.h>

#define REPEATS 3
#define COUNT_PARALLELISM 2
#define VALUE_LEN 32
/* Throughput runs: records per run at scale 1 (about 3-5 s each on a 2-core VM), keys. */
#define THRU_RECORDS 32000000.0
#define THRU_KEYS 10000u
/* Latency run: few keys, so each checkpoint's state is a few KiB, like the bare commit. */
#define LAT_KEYS 100u
#define LAT_INTERVAL_MS 100
#define LAT_RUN_MS 5000
/* Light-load latency run: the generator sleeps this long per record (a few k records/s). */
#define LIGHT_SLEEP_US 100
/* Bare LMDB commits (half before the latency run, half after) and the value each puts. */
#define BARE_COMMITS 200
#define BARE_VALUE_LEN 2048
/* Restore: keys of the state, and restores of it timed. */
#define RESTORE_KEYS 1000000u
#define RESTORE_REPEATS 3

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile; sorts v. */
static double pct(double *v, size_t n, double p) {
  qsort(v, n, sizeof(*v), cmp_double);
  return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

static double median3(const double *v) {
  double s[REPEATS];

  memcpy(s, v, sizeof(s));
  return pct(s, REPEATS, 0.5);
}

/* ---- the job ------------------------------------------------------------------------------ */

/* Shared by every subtask of the count and the sink of one job (the nodes' `data`). */
struct shared {
  atomic_uint_fast64_t sunk; /* records the sink received */
  /* Restore runs: set in the count's finish. */
  bool check_finish;
  uint32_t keys;
  atomic_uint_fast64_t restored_keys; /* keys in state, over the subtasks */
  atomic_uint_fast64_t count_sum;     /* sum of every key's count */
  atomic_int_fast64_t finish_ns;      /* latest finish time (CLOCK_MONOTONIC ns) */
};

struct counter {
  weir_value_state *count;
  struct shared *sh;
};

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

static int count_open(weir_ctx *ctx, void *data, void **inst) {
  struct counter *c = calloc(1, sizeof(*c));

  if (c == NULL)
    return WEIR_ENOMEM;
  c->sh = data;
  *inst = c;
  return weir_ctx_value_state(ctx, "count", &c->count);
}

static int count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct counter *c = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    weir_record out = weir_record_init();
    weir_buf v;
    uint64_t cnt = 0;

    rc = weir_value_state_get(c->count, recs[i].key, &v);
    if (rc == 0)
      memcpy(&cnt, v.ptr, sizeof(cnt));
    else if (rc != WEIR_ENOTFOUND)
      return rc;
    cnt++;
    if ((rc = weir_value_state_put(c->count, recs[i].key,
                                   (weir_buf){(const uint8_t *)&cnt, sizeof(cnt)})) != 0)
      return rc;
    out.key = recs[i].key;
    out.value = (weir_buf){(const uint8_t *)&cnt, sizeof(cnt)};
    if ((rc = weir_emit(ctx, &out)) != 0)
      return rc;
  }
  return 0;
}

/* Restore runs: the input is empty, so finish runs right after this subtask restored its state
 * and saw the end of its input. Stamps the time first, then checks the state. */
static int count_finish(weir_ctx *ctx, void *inst) {
  struct counter *c = inst;
  struct shared *sh = c->sh;
  struct timespec ts;
  int_fast64_t t, prev;
  uint64_t sum = 0;
  uint32_t i;
  char k[16];

  (void)ctx;
  if (!sh->check_finish)
    return 0;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t = (int_fast64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  prev = atomic_load(&sh->finish_ns);
  while (prev < t && !atomic_compare_exchange_weak(&sh->finish_ns, &prev, t))
    ;
  atomic_fetch_add(&sh->restored_keys, weir_value_state_count(c->count));
  for (i = 0; i < sh->keys; i++) {
    weir_buf key = {(const uint8_t *)k, (size_t)snprintf(k, sizeof(k), "k%" PRIu32, i)}, v;
    uint64_t cnt;
    int rc = weir_value_state_get(c->count, key, &v);

    if (rc == WEIR_EINVAL || rc == WEIR_ENOTFOUND)
      continue; /* another subtask's key, or never seen */
    if (rc != 0)
      return rc;
    memcpy(&cnt, v.ptr, sizeof(cnt));
    sum += cnt;
  }
  atomic_fetch_add(&sh->count_sum, sum);
  return 0;
}

static void count_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static int sink_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  struct shared *sh = data;

  (void)subtask;
  (void)recs;
  atomic_fetch_add_explicit(&sh->sunk, n, memory_order_relaxed);
  return 0;
}

struct spec {
  const char *dir; /* checkpoint directory, NULL = no checkpoints */
  int64_t interval_ms;
  uint64_t records; /* 0 = unbounded */
  uint32_t keys;
  bool light; /* rate-limited generator (light-load latency run) */
};

struct built {
  weir_job *job;
  weir_generator *gen;
  struct shared sh;
};

/* The generator's default value ("<index as 20 digits>" padded with 'x'), after a short sleep:
 * a light load that keeps the channels empty, so latency excludes queueing. */
static long slow_value(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  struct timespec ts = {0, LIGHT_SLEEP_US * 1000L};
  int n;

  (void)data;
  nanosleep(&ts, NULL);
  n = snprintf((char *)buf, cap, "%020" PRIu64 "xxxxxxxxxxxx", index);
  return n < 0 || (size_t)n >= cap ? WEIR_ETOOBIG : n;
}

static int build(const struct spec *s, struct built *b) {
  weir_generator_config g = {0};
  weir_operator count = {0};
  int src, keyed, cnt, out, rc;

  memset(b, 0, sizeof(*b));
  b->sh.keys = s->keys;
  g.count = s->records;
  g.key_count = s->keys;
  g.value_len = VALUE_LEN;
  if (s->light) {
    g.fn = slow_value;
    g.records_per_poll = 1; /* the source sees a trigger within one sleep */
  }
  count.open = count_open;
  count.process = count_process;
  count.finish = count_finish;
  count.close = count_close;
  if ((rc = weir_generator_create(&b->gen, &g)) != 0 ||
      (rc = weir_job_create(&b->job, "bench-ckpt")) != 0)
    return rc;
  if (s->dir != NULL && ((rc = weir_job_set_checkpoint_dir(b->job, s->dir)) != 0 ||
                         (rc = weir_job_set_checkpoint_interval(b->job, s->interval_ms)) != 0))
    return rc;
  if ((rc = weir_job_add_generator(b->job, "gen", b->gen, &src)) != 0 ||
      (rc = weir_job_key_by(b->job, src, "by-key", key_of, NULL, &keyed)) != 0 ||
      (rc = weir_job_add_operator(b->job, keyed, "count", &count, &b->sh, &cnt)) != 0 ||
      (rc = weir_job_set_parallelism(b->job, cnt, COUNT_PARALLELISM)) != 0 ||
      (rc = weir_job_set_uid(b->job, cnt, "count")) != 0 ||
      (rc = weir_job_add_callback_sink(b->job, cnt, "out", sink_cb, &b->sh, &out)) != 0 ||
      (rc = weir_job_set_parallelism(b->job, out, COUNT_PARALLELISM)) != 0)
    return rc; /* count and sink: same parallelism, forward edge: chained in one task */
  return 0;
}

static void destroy(struct built *b) {
  weir_job_destroy(b->job);
  weir_generator_destroy(b->gen);
  b->job = NULL;
  b->gen = NULL;
}

static int job_failed(const char *what, const struct built *b, int rc) {
  fprintf(stderr, "%s: %s: %s\n", what, weir_err_name(rc),
          b->job != NULL ? weir_job_error(b->job) : "");
  return 1;
}

/* ---- 1. throughput ------------------------------------------------------------------------ */

enum { CFG_NONE, CFG_1S, CFG_100MS, N_CFG };
static const char *const cfg_name[N_CFG] = {"no checkpoints", "checkpoint every 1 s",
                                            "checkpoint every 100 ms"};
static const int64_t cfg_interval[N_CFG] = {0, 1000, 100};

struct thru_result {
  double rate[N_CFG][REPEATS]; /* records/s */
  uint64_t completed[N_CFG][REPEATS];
  double p50_ms[N_CFG][REPEATS];
};

static int thru_run(const char *root, int cfg, int rep, uint64_t records, struct thru_result *r) {
  char dir[600];
  struct spec s = {NULL, 0, records, THRU_KEYS, false};
  struct built b;
  weir_checkpoint_stats st;
  double t0, t;
  int rc;

  if (cfg != CFG_NONE) {
    /* A fresh directory per run: a job restores from whatever its directory holds. */
    snprintf(dir, sizeof(dir), "%s/thru-%d-%d", root, cfg, rep);
    s.dir = dir;
    s.interval_ms = cfg_interval[cfg];
  }
  if ((rc = build(&s, &b)) != 0) {
    job_failed("build", &b, rc);
    destroy(&b);
    return 1;
  }
  t0 = now_s();
  rc = weir_job_run(b.job);
  t = now_s() - t0;
  if (rc != 0) {
    job_failed(cfg_name[cfg], &b, rc);
    destroy(&b);
    return 1;
  }
  weir_job_checkpoint_stats(b.job, &st);
  if (atomic_load(&b.sh.sunk) != records) {
    fprintf(stderr, "%s, run %d: the sink got %" PRIu64 " records, expected %" PRIu64 "\n",
            cfg_name[cfg], rep + 1, (uint64_t)atomic_load(&b.sh.sunk), records);
    destroy(&b);
    return 1;
  }
  if (st.failed != 0) {
    fprintf(stderr, "%s, run %d: %" PRIu64 " checkpoints failed\n", cfg_name[cfg], rep + 1,
            st.failed);
    destroy(&b);
    return 1;
  }
  r->rate[cfg][rep] = (double)records / t;
  r->completed[cfg][rep] = st.completed;
  r->p50_ms[cfg][rep] = (double)st.p50_duration_us / 1e3;
  printf("  run %d  %-24s %6.2f s  %6.3f M records/s  %3" PRIu64 " checkpoints", rep + 1,
         cfg_name[cfg], t, r->rate[cfg][rep] / 1e6, st.completed);
  if (st.completed > 0)
    printf(" (p50 %.2f ms, p99 %.2f ms)", (double)st.p50_duration_us / 1e3,
           (double)st.p99_duration_us / 1e3);
  printf("\n");
  fflush(stdout);
  destroy(&b);
  return 0;
}

/* ---- 2. latency --------------------------------------------------------------------------- */

/* `n` synced commits, each one write transaction putting BARE_VALUE_LEN bytes under a new key,
 * into an already open environment; latencies in ms into lat. */
static int bare_commits(MDB_env *env, uint64_t first, int n, double *lat) {
  static char val[BARE_VALUE_LEN];
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  int i, mrc;

  memset(val, 'v', sizeof(val));
  for (i = 0; i < n; i++) {
    uint64_t id = first + (uint64_t)i;
    MDB_val k = {sizeof(id), &id}, v = {sizeof(val), val};
    double t0 = now_s();

    if ((mrc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
      goto fail;
    if ((mrc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 ||
        (mrc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
      mdb_txn_abort(txn);
      goto fail;
    }
    if ((mrc = mdb_txn_commit(txn)) != 0)
      goto fail;
    lat[i] = (now_s() - t0) * 1e3;
  }
  return 0;

fail:
  fprintf(stderr, "bare LMDB commit: %s\n", mdb_strerror(mrc));
  return 1;
}

struct lat_job_result {
  weir_checkpoint_stats st;
  uint64_t state_bytes; /* of the last checkpoint */
  double rate;          /* records/s */
};

struct lat_result {
  double bare_p50, bare_p99; /* ms */
  struct lat_job_result full, light;
};

/* Runs the small-state job with checkpoints every LAT_INTERVAL_MS for LAT_RUN_MS, then stops. */
static int lat_job(const char *dir, bool light, struct lat_job_result *r) {
  struct spec s = {dir, LAT_INTERVAL_MS, 0, LAT_KEYS, light};
  struct built b = {0};
  weir_checkpoint_info *infos = NULL;
  size_t n = 0;
  double t0;
  int rc, ret = 1;

  if ((rc = build(&s, &b)) != 0) {
    job_failed("build", &b, rc);
    goto out;
  }
  t0 = now_s();
  if ((rc = weir_job_start(b.job)) != 0) {
    job_failed("latency run", &b, rc);
    goto out;
  }
  sleep_ms(LAT_RUN_MS);
  weir_job_stop(b.job);
  if ((rc = weir_job_wait(b.job)) != 0) {
    job_failed("latency run", &b, rc);
    goto out;
  }
  r->rate = (double)atomic_load(&b.sh.sunk) / (now_s() - t0);
  weir_job_checkpoint_stats(b.job, &r->st);
  destroy(&b);
  if (r->st.completed == 0 || r->st.failed != 0) {
    fprintf(stderr, "latency run: %" PRIu64 " checkpoints completed, %" PRIu64 " failed\n",
            r->st.completed, r->st.failed);
    goto out;
  }
  if ((rc = weir_checkpoint_list(dir, &infos, &n)) != 0 || n == 0) {
    fprintf(stderr, "weir_checkpoint_list %s: %s\n", dir, weir_err_name(rc));
    goto out;
  }
  r->state_bytes = infos[n - 1].state_bytes;
  printf("  %-10s %3" PRIu64 " checkpoints of %" PRIu64
         " bytes of state, %.3f M records/s: p50 %.3f ms, p99 %.3f ms\n",
         light ? "light load" : "full load", r->st.completed, r->state_bytes, r->rate / 1e6,
         (double)r->st.p50_duration_us / 1e3, (double)r->st.p99_duration_us / 1e3);
  fflush(stdout);
  ret = 0;
out:
  free(infos);
  destroy(&b);
  return ret;
}

static int lat_run(const char *root, struct lat_result *r) {
  char full[600], light[600], bare[600];
  double lat[BARE_COMMITS];
  MDB_env *env = NULL;
  int mrc, ret = 1;

  snprintf(full, sizeof(full), "%s/latency-full", root);
  snprintf(light, sizeof(light), "%s/latency-light", root);
  snprintf(bare, sizeof(bare), "%s/bare", root);
  if (mkdir(bare, 0700) != 0) {
    perror("mkdir");
    return 1;
  }
  if ((mrc = mdb_env_create(&env)) != 0 || (mrc = mdb_env_set_mapsize(env, 64u << 20)) != 0 ||
      (mrc = mdb_env_open(env, bare, 0, 0600)) != 0) {
    fprintf(stderr, "bare LMDB env: %s\n", mdb_strerror(mrc));
    goto out;
  }
  if (bare_commits(env, 0, BARE_COMMITS / 2, lat) != 0 || lat_job(full, false, &r->full) != 0 ||
      lat_job(light, true, &r->light) != 0 ||
      bare_commits(env, BARE_COMMITS / 2, BARE_COMMITS - BARE_COMMITS / 2,
                   lat + BARE_COMMITS / 2) != 0)
    goto out;
  r->bare_p50 = pct(lat, BARE_COMMITS, 0.50);
  r->bare_p99 = pct(lat, BARE_COMMITS, 0.99);
  printf("  bare synced LMDB commit (%d bytes): p50 %.3f ms, p99 %.3f ms\n", BARE_VALUE_LEN,
         r->bare_p50, r->bare_p99);
  ret = 0;
out:
  mdb_env_close(env);
  return ret;
}

/* ---- 3. restore --------------------------------------------------------------------------- */

struct restore_result {
  uint64_t position; /* records the savepoint covers */
  uint64_t state_bytes;
  double savepoint_ms; /* trigger to complete of the savepoint */
  double restore_s[RESTORE_REPEATS];
  double run_s[RESTORE_REPEATS]; /* whole weir_job_run of the restored job */
};

static int restore_run(const char *root, struct restore_result *r) {
  char dir[600];
  struct spec s = {dir, 0, 0, RESTORE_KEYS, false};
  struct built b = {0};
  weir_checkpoint_info *infos = NULL;
  weir_checkpoint_stats st;
  uint64_t sp;
  size_t n = 0;
  int rc, i, ret = 1;

  snprintf(dir, sizeof(dir), "%s/restore", root);
  /* Build the state: an unbounded generator over RESTORE_KEYS keys, stopped with a savepoint
   * once every key was seen at least once. */
  if ((rc = build(&s, &b)) != 0) {
    job_failed("build", &b, rc);
    goto out;
  }
  if ((rc = weir_job_start(b.job)) != 0) {
    job_failed("state build", &b, rc);
    goto out;
  }
  while (atomic_load(&b.sh.sunk) < RESTORE_KEYS)
    sleep_ms(2);
  if ((rc = weir_job_stop_with_savepoint(b.job)) != 0) {
    job_failed("stop with savepoint", &b, rc);
    goto out;
  }
  if ((rc = weir_job_wait(b.job)) != 0) {
    job_failed("state build", &b, rc);
    goto out;
  }
  weir_job_checkpoint_stats(b.job, &st);
  if ((sp = weir_job_last_checkpoint(b.job)) == 0) {
    fprintf(stderr, "state build: no savepoint was taken\n");
    goto out;
  }
  /* The savepoint covers exactly what the source read, and all of it reached the sink. */
  r->position = atomic_load(&b.sh.sunk);
  r->savepoint_ms = (double)st.last_duration_us / 1e3;
  destroy(&b);
  if ((rc = weir_checkpoint_list(dir, &infos, &n)) != 0 || n == 0) {
    fprintf(stderr, "weir_checkpoint_list %s: %s\n", dir, weir_err_name(rc));
    goto out;
  }
  r->state_bytes = infos[n - 1].state_bytes;

  /* Restore it: the generator resumes at its end (count = position) and ends at once, so each
   * count subtask restores, sees its input end and finishes; the latest finish ends restore. */
  s.records = r->position;
  for (i = 0; i < RESTORE_REPEATS; i++) {
    struct timespec ts;
    double t0, t1;

    if ((rc = build(&s, &b)) != 0) {
      job_failed("build", &b, rc);
      goto out;
    }
    b.sh.check_finish = true;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = now_s();
    rc = weir_job_run(b.job);
    t1 = now_s();
    if (rc != 0) {
      job_failed("restore run", &b, rc);
      goto out;
    }
    weir_job_checkpoint_stats(b.job, &st);
    if (st.restored_id != sp || atomic_load(&b.sh.restored_keys) != RESTORE_KEYS ||
        atomic_load(&b.sh.count_sum) != r->position || atomic_load(&b.sh.sunk) != 0) {
      fprintf(stderr,
              "restore run %d: restored checkpoint %" PRIu64 " (want %" PRIu64 "), %" PRIu64
              " keys (want %u), counts summing to %" PRIu64 " (want %" PRIu64 "), %" PRIu64
              " records out (want 0)\n",
              i + 1, st.restored_id, sp, (uint64_t)atomic_load(&b.sh.restored_keys), RESTORE_KEYS,
              (uint64_t)atomic_load(&b.sh.count_sum), r->position,
              (uint64_t)atomic_load(&b.sh.sunk));
      goto out;
    }
    r->restore_s[i] = (double)(atomic_load(&b.sh.finish_ns) -
                               ((int_fast64_t)ts.tv_sec * 1000000000 + ts.tv_nsec)) /
                      1e9;
    r->run_s[i] = t1 - t0;
    printf("  restore %d: state ready in %.3f s (weir_job_run %.3f s, with the final snapshot "
           "and the key check)\n",
           i + 1, r->restore_s[i], r->run_s[i]);
    fflush(stdout);
    destroy(&b);
  }
  ret = 0;
out:
  free(infos);
  destroy(&b);
  return ret;
}

/* ---- main --------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void row(const char *figure, const char *value, const char *baseline, double ratio,
                const char *target, int verdict) {
  char rs[32] = "-";

  if (ratio >= 0)
    snprintf(rs, sizeof(rs), "%.3f", ratio);
  printf("%-36s %-16s %-16s %-7s %-10s %s\n", figure, value, baseline, rs, target,
         verdict < 0 ? "info"
         : verdict   ? "PASS"
                     : "MISS");
}

/* The latency rows of one run: p50 against the 3x target, p99 for information. */
static void lat_rows(const char *load, const struct lat_job_result *r, const struct lat_result *l) {
  double p50 = (double)r->st.p50_duration_us / 1e3, p99 = (double)r->st.p99_duration_us / 1e3;
  char fig[64], v[32], bl[32];

  snprintf(fig, sizeof(fig), "checkpoint latency p50, %s", load);
  snprintf(v, sizeof(v), "%.3f ms", p50);
  snprintf(bl, sizeof(bl), "%.3f ms", l->bare_p50);
  row(fig, v, bl, p50 / l->bare_p50, "<= 3x", p50 <= 3 * l->bare_p50);
  snprintf(fig, sizeof(fig), "checkpoint latency p99, %s", load);
  snprintf(v, sizeof(v), "%.3f ms", p99);
  snprintf(bl, sizeof(bl), "%.3f ms", l->bare_p99);
  row(fig, v, bl, p99 / l->bare_p99, "-", -1);
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? strtod(argv[1], NULL) : 1.0;
  const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  uint64_t records = (uint64_t)(THRU_RECORDS * scale);
  static struct thru_result thru;
  struct lat_result lat = {0};
  struct restore_result rst = {0};
  double med[N_CFG], r1, r2, rmed, cpl[RESTORE_REPEATS];
  char root[512], v[64], bl[64];
  int cfg, rep, ret = 1;

  if (scale <= 0 || records < 1000) {
    fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
    return 2;
  }
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN); /* default handler (stderr), no INFO */
  snprintf(root, sizeof(root), "%s/weir-bench-ckpt-XXXXXX", tmp);
  if (mkdtemp(root) == NULL) {
    perror("mkdtemp");
    return 1;
  }

  printf("bench_checkpoint: generator -> key_by => keyed count (value state, parallelism %d) "
         "-> callback sink; working in %s\n",
         COUNT_PARALLELISM, root);
  printf("1. throughput, %" PRIu64 " records over %u keys per run, configurations interleaved, "
         "%d rounds\n",
         records, THRU_KEYS, REPEATS);
  fflush(stdout);
  for (rep = 0; rep < REPEATS; rep++)
    for (cfg = 0; cfg < N_CFG; cfg++)
      if (thru_run(root, cfg, rep, records, &thru) != 0)
        goto out;
  for (cfg = 0; cfg < N_CFG; cfg++)
    med[cfg] = median3(thru.rate[cfg]);
  r1 = med[CFG_1S] / med[CFG_NONE];
  r2 = med[CFG_100MS] / med[CFG_NONE];

  printf("2. checkpoint latency, trigger to complete: %u keys, checkpoint every %d ms for %d ms, "
         "at full load then at light load; %d bare synced LMDB commits around them\n",
         LAT_KEYS, LAT_INTERVAL_MS, LAT_RUN_MS, BARE_COMMITS);
  fflush(stdout);
  if (lat_run(root, &lat) != 0)
    goto out;

  printf("3. restore: %u keys, parallelism %d, savepoint then %d restores\n", RESTORE_KEYS,
         COUNT_PARALLELISM, RESTORE_REPEATS);
  fflush(stdout);
  if (restore_run(root, &rst) != 0)
    goto out;
  memcpy(cpl, rst.restore_s, sizeof(cpl));
  rmed = pct(cpl, RESTORE_REPEATS, 0.5);

  printf("\n%-36s %-16s %-16s %-7s %-10s %s\n", "figure", "value", "baseline", "ratio", "target",
         "result");
  snprintf(bl, sizeof(bl), "%.3f M rec/s", med[CFG_NONE] / 1e6);
  snprintf(v, sizeof(v), "%.3f M rec/s", med[CFG_1S] / 1e6);
  row("throughput, checkpoint every 1 s", v, bl, r1, ">= 0.95", r1 >= 0.95);
  snprintf(v, sizeof(v), "%.3f M rec/s", med[CFG_100MS] / 1e6);
  row("throughput, checkpoint every 100 ms", v, bl, r2, ">= 0.85", r2 >= 0.85);
  lat_rows("full load", &lat.full, &lat);
  lat_rows("light load", &lat.light, &lat);
  snprintf(v, sizeof(v), "%.3f s", rmed);
  row("restore, 1 M keys (median of 3)", v, "-", -1, "<= 1 s", rmed <= 1.0);
  snprintf(v, sizeof(v), "%.1f MiB", (double)rst.state_bytes / 1048576.0);
  row("  state size (savepoint blobs)", v, "-", -1, "-", -1);
  snprintf(v, sizeof(v), "%.1f ms", rst.savepoint_ms);
  row("  savepoint of 1 M keys, duration", v, "-", -1, "-", -1);
  ret = 0;

out:
  if (nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "could not remove %s\n", root);
  return ret;
}
