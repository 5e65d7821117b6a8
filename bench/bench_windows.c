/*
 * bench_windows: keyed tumbling-window count (issue 7) against a bare hash-map count loop
 * measured in the same run.
 *
 *   bare map     one thread: for each record, XXH3 of its key, a probe into an open-addressing
 *                table of (key, window) -> count, results read out when a window closes
 *   no window    (info) source -> assign_timestamps -> key_by => sink: the runtime's own
 *                cost (emitting, batch copies, the channel, hashing) that every windowed run
 *                pays too
 *   window       source -> assign_timestamps -> key_by => window count -> sink (2 threads:
 *                source chain and window task with the sink chained, one hash channel)
 *   window+ckpt  the same with a checkpoint every second (LMDB under /tmp), over 5 N records
 *                (the sequence goes on: event time i, key k<i mod K; WEIR_BENCH_CKPT_ROUNDS
 *                changes the 5): N records take under a second, so a run of N completed no
 *                checkpoint. Prints the checkpoints completed and their trigger-to-complete
 *                p50/p99
 *   json         the source emits {"k":"k<id>","ts":<ms>,"v":<i>}; json_key_by and
 *                assign_timestamps read the fields; records/s and MB/s of JSON input
 *   scanner      (info) weir's in-place scanner (operators/json_scan.c) on the same documents:
 *                validate + the same two lookups, one thread
 *   jansson      (info) json_loadb + json_object_get of the same documents, one thread: the
 *                per-record cost of parsing with jansson instead of the in-place scanner
 *
 * The source is the benchmark's own (src_poll): keys come from a precomputed pool, as in the
 * bare map, so no run pays for formatting them; JSON documents are formatted without printf.
 * Records: N (default 10 M; argv[1] or WEIR_BENCH_RECORDS) with K keys (default 100 K; argv[2]
 * or WEIR_BENCH_KEYS), record i has key k<i mod K> and event time i ms; windows are N/10 ms
 * long, so each key gets about N/(10 K) records per window and there are 10 windows. Every run
 * checks that the counts it produced add up to N. Target (issue 7): window >= 30 % of bare map.
 * The line under "window" splits the CPU per record into what the job costs without a window
 * and what the window operator adds (the difference of the two runs' CPU time; on a loaded
 * machine it moves by +-10 ns from run to run, and is meaningless when either run was starved).
 * The next line gives the CPU per record of each of the window run's two threads (read with
 * CLOCK_THREAD_CPUTIME_ID by the source at its last poll and by the sink at its last result):
 * running in parallel, the slower one bounds the wall rate, whatever the load elsewhere.
 * WEIR_BENCH_ONLY=nowin|window|ckpt|json runs the bare map and that run only and prints one
 * line (for `perf record`, or to compare two builds run after one another).
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>
#include <xxhash.h>

#include "operators/json_int.h"

/* CPU seconds (user + system) of the whole process: less sensitive than wall time to other
 * programs sharing the machine. */
static double cpu_s(void) {
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of the calling thread. */
static double thread_cpu_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t n_records = 10000000;
/* The checkpointed run goes on for ckpt_rounds * n_records records (the same sequence, event
 * time continuing): 10 M records take under a second, too short for checkpoints every second. */
static uint64_t ckpt_rounds = 5;
static uint64_t run_records;             /* records of the run in progress */
static weir_checkpoint_stats ckpt_stats; /* of the window+ckpt run */
static uint32_t n_keys = 100000;
static int64_t win_ms;

/* ---- bare hash-map loop ------------------------------------------------------------------ */

struct slot {
  uint64_t hash;
  uint32_t key; /* key index + 1; 0 = empty */
  int64_t window;
  uint64_t count;
};

static double bare_map(uint64_t *total) {
  size_t cap = 1, i;
  struct slot *t;
  char(*keys)[16] = malloc((size_t)n_keys * 16);
  uint8_t *klen = malloc(n_keys);
  int64_t cur_window = 0;
  double t0, dt;
  uint64_t r;

  while (cap < (size_t)n_keys * 2)
    cap <<= 1;
  t = calloc(cap, sizeof(*t));
  for (i = 0; i < n_keys; i++)
    klen[i] = (uint8_t)snprintf(keys[i], 16, "k%zu", i);
  *total = 0;
  t0 = now_s();
  for (r = 0; r < n_records; r++) {
    uint32_t k = (uint32_t)(r % n_keys);
    int64_t w = (int64_t)r / win_ms;
    uint64_t h = XXH3_64bits(keys[k], klen[k]) ^ (uint64_t)w * 0x9E3779B97F4A7C15ull;
    size_t p = h & (cap - 1);

    if (w != cur_window) { /* the window closed: read out and clear (the "firing") */
      for (i = 0; i < cap; i++)
        if (t[i].key != 0) {
          *total += t[i].count;
          t[i].key = 0;
        }
      cur_window = w;
    }
    while (t[p].key != 0 && !(t[p].key == k + 1 && t[p].window == w))
      p = (p + 1) & (cap - 1);
    if (t[p].key == 0) {
      t[p].key = k + 1;
      t[p].hash = h;
      t[p].window = w;
      t[p].count = 0;
    }
    t[p].count++;
  }
  for (i = 0; i < cap; i++)
    if (t[i].key != 0)
      *total += t[i].count;
  dt = now_s() - t0;
  free(t);
  free(keys);
  free(klen);
  return dt;
}

/* ---- weir jobs --------------------------------------------------------------------------- */

struct sum_sink {
  uint64_t count; /* sum of the "count" fields of every result */
  uint64_t results;
  double cpu; /* CPU seconds of the sink's thread when the count reached run_records */
};

static int sum_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  struct sum_sink *s = data;
  size_t i;

  (void)subtask;
  if (s->results == UINT64_MAX) { /* no window: count the records themselves */
    s->count += n;
  } else {
    for (i = 0; i < n; i++) {
      const char *p = memmem(recs[i].value.ptr, recs[i].value.len, "\"count\":", 8);

      if (p != NULL)
        s->count += strtoull(p + 8, NULL, 10);
    }
    s->results += n;
  }
  if (s->count == run_records) /* the last records or results: the thread's work is done */
    s->cpu = thread_cpu_s();
  return 0;
}

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

/* The record keys "k<j>", precomputed once (as the bare map's), so no run pays for formatting
 * them: what is measured is the pipeline, not snprintf. */
static char (*key_pool)[16];
static uint8_t *key_len;

static void make_keys(void) {
  uint32_t j;

  key_pool = malloc((size_t)n_keys * sizeof(*key_pool));
  key_len = malloc(n_keys);
  for (j = 0; j < n_keys; j++)
    key_len[j] = (uint8_t)snprintf(key_pool[j], sizeof(key_pool[j]), "k%u", j);
}

static size_t put_u64(char *p, uint64_t v) {
  char tmp[24];
  size_t n = 0, len = 0;

  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0)
    p[len++] = tmp[--n];
  return len;
}

/* Record i as JSON: {"k":"k<i mod keys>","ts":i,"v":i} (buf holds at least 96 bytes). */
static long json_value(void *data, uint64_t i, uint8_t *buf, size_t cap) {
  char *p = (char *)buf;
  uint32_t k = (uint32_t)(i % n_keys);
  size_t n = 0;

  (void)data;
  (void)cap;
  memcpy(p, "{\"k\":\"", 6);
  n = 6;
  memcpy(p + n, key_pool[k], key_len[k]);
  n += key_len[k];
  memcpy(p + n, "\",\"ts\":", 7);
  n += 7;
  n += put_u64(p + n, i);
  memcpy(p + n, ",\"v\":", 5);
  n += 5;
  n += put_u64(p + n, i);
  p[n++] = '}';
  return (long)n;
}

/* The benchmark source: record i has key k<i mod keys> (plain runs) or the JSON above, event
 * time i ms, value "1"; 256 records per poll like the built-in generator. Parallelism 1. */
struct bench_src {
  bool json;
  uint64_t next;
  double cpu; /* CPU seconds of the source's thread at its last poll */
  char buf[96];
};

static int src_poll(weir_ctx *ctx, void *inst) {
  struct bench_src *s = inst;
  int k, rc;

  for (k = 0; k < 256 && s->next < run_records; k++, s->next++) {
    weir_record r = weir_record_init();

    if (s->json) {
      r.value.ptr = (const uint8_t *)s->buf;
      r.value.len = (size_t)json_value(NULL, s->next, (uint8_t *)s->buf, sizeof(s->buf));
    } else {
      uint32_t j = (uint32_t)(s->next % n_keys);

      r.key.ptr = (const uint8_t *)key_pool[j];
      r.key.len = key_len[j];
      r.value.ptr = (const uint8_t *)"1";
      r.value.len = 1;
      r.timestamp = (int64_t)s->next;
    }
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
  }
  if (s->next < run_records)
    return 0;
  s->cpu = thread_cpu_s();
  return WEIR_EOF;
}

enum mode { M_WINDOW, M_CKPT, M_JSON, M_NOWIN };

/* CPU seconds of the source chain's thread and of the sink's thread (the window task's in the
 * windowed runs, where the sink is chained to the window) of the last run. */
static double thr_src, thr_sink;

static int run_job(enum mode m, double *secs, double *cpu, uint64_t *counted) {
  struct bench_src bs = {m == M_JSON, 0, 0.0, {0}};
  weir_operator so = {0};
  weir_watermark_config wc = {0};
  weir_window_config w = {0};
  struct sum_sink sink = {0, m == M_NOWIN ? UINT64_MAX : 0, 0.0};
  weir_job *job = NULL;
  char dir[] = "/tmp/weir-bench-win-XXXXXX";
  int src, ts, key, win, rc;
  double t0, c0;

  run_records = m == M_CKPT ? n_records * ckpt_rounds : n_records;
  so.poll = src_poll;
  wc.from = m == M_JSON ? WEIR_TS_FROM_JSON_FIELD : WEIR_TS_FROM_RECORD;
  wc.json_field = "ts";
  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = win_ms;
  w.aggs = WEIR_AGG_COUNT;
  if ((rc = weir_job_create(&job, "bench")) != 0)
    goto out;
  if (m == M_CKPT) {
    if (mkdtemp(dir) == NULL) {
      rc = WEIR_EIO;
      goto out;
    }
    if ((rc = weir_job_set_checkpoint_dir(job, dir)) != 0 ||
        (rc = weir_job_set_checkpoint_interval(job, 1000)) != 0)
      goto out;
  }
  if ((rc = weir_job_add_source(job, "src", &so, &bs, &src)) != 0 ||
      (rc = weir_job_assign_timestamps(job, src, "ts", &wc, &ts)) != 0)
    goto out;
  if (m == M_JSON)
    rc = weir_job_json_key_by(job, ts, "key", "k", WEIR_BAD_RECORD_FAIL, &key);
  else
    rc = weir_job_key_by(job, ts, "key", key_of, NULL, &key);
  if (rc != 0)
    goto out;
  if (m == M_NOWIN)
    win = key;
  else if ((rc = weir_job_window(job, key, "win", &w, &win)) != 0)
    goto out;
  if ((rc = weir_job_add_callback_sink(job, win, "sink", sum_cb, &sink, NULL)) != 0)
    goto out;
  t0 = now_s();
  c0 = cpu_s();
  rc = weir_job_run(job);
  *secs = now_s() - t0;
  *cpu = cpu_s() - c0;
  if (m == M_CKPT)
    weir_job_checkpoint_stats(job, &ckpt_stats);
  *counted = sink.count;
  thr_src = bs.cpu;
  thr_sink = sink.cpu;
  if (rc != 0)
    fprintf(stderr, "bench_windows: %s\n", weir_job_error(job));
out:
  weir_job_destroy(job);
  if (m == M_CKPT) {
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "bench_windows: could not remove %s\n", dir);
  }
  return rc;
}

/* jansson parse of the same JSON documents, one thread: the alternative to the scanner. */
static double jansson_parse(uint64_t n, double *bytes) {
  char buf[128];
  double t0 = now_s();
  uint64_t i, sum = 0;

  *bytes = 0;
  for (i = 0; i < n; i++) {
    long len = json_value(NULL, i, (uint8_t *)buf, sizeof(buf));
    json_t *doc = json_loadb(buf, (size_t)len, 0, NULL);
    json_t *k = json_object_get(doc, "k"), *ts = json_object_get(doc, "ts");

    sum += json_string_length(k) + (uint64_t)json_integer_value(ts);
    json_decref(doc);
    *bytes += (double)len;
  }
  if (sum == 0)
    fprintf(stderr, "bench_windows: jansson parsed nothing\n");
  return now_s() - t0;
}

/* The in-place scanner on the same documents, same two lookups, one thread. */
static double scanner_parse(uint64_t n) {
  struct weir__json_path pk, pt;
  struct weir__json_span k, ts;
  char buf[128];
  double t0 = now_s(), d;
  uint64_t i, sum = 0;

  weir__json_path_init(&pk, "k");
  weir__json_path_init(&pt, "ts");
  for (i = 0; i < n; i++) {
    long len = json_value(NULL, i, (uint8_t *)buf, sizeof(buf));

    if (weir__json_validate((const uint8_t *)buf, (size_t)len) == 0 &&
        weir__json_find((const uint8_t *)buf, (size_t)len, &pk, &k) == 0 &&
        weir__json_find((const uint8_t *)buf, (size_t)len, &pt, &ts) == 0 &&
        weir__json_number(ts, &d) == 0)
      sum += k.len + (uint64_t)d;
  }
  if (sum == 0)
    fprintf(stderr, "bench_windows: the scanner parsed nothing\n");
  return now_s() - t0;
}

static double json_bytes(uint64_t n) {
  char buf[128];
  double b = 0;
  uint64_t i;

  for (i = 0; i < n; i++)
    b += (double)json_value(NULL, i, (uint8_t *)buf, sizeof(buf));
  return b;
}

/* WEIR_BENCH_ONLY=<run> (nowin, window, ckpt or json): the bare map and that run only, for
 * profiling one of them (perf record); prints one line instead of the table. */
static const char *only;

static bool want(const char *run) {
  return only == NULL || strcmp(only, run) == 0;
}

int main(int argc, char **argv) {
  const char *e;
  double t_bare, t_win = 0, t_ckpt = 0, t_json = 0, t_jan, t_scan, t_nowin = 0, jan_bytes, mb;
  double n_ckpt, c_bare, cp_win = 0, cp_ckpt = 0, cp_json = 0, cp_nowin = 0, th_win_src,
                         th_win_task;
  uint64_t total = 0, c_win = 0, c_ckpt = 0, c_json = 0, c_nowin = 0, jan_n;
  int bad = 0;

  if ((e = getenv("WEIR_BENCH_RECORDS")) != NULL)
    n_records = strtoull(e, NULL, 10);
  if ((e = getenv("WEIR_BENCH_CKPT_ROUNDS")) != NULL && strtoull(e, NULL, 10) > 0)
    ckpt_rounds = strtoull(e, NULL, 10);
  if ((e = getenv("WEIR_BENCH_KEYS")) != NULL)
    n_keys = (uint32_t)strtoul(e, NULL, 10);
  only = getenv("WEIR_BENCH_ONLY");
  if (argc > 1)
    n_records = strtoull(argv[1], NULL, 10);
  if (argc > 2)
    n_keys = (uint32_t)strtoul(argv[2], NULL, 10);
  if (n_records < 10 || n_keys == 0) {
    fprintf(stderr, "usage: %s [records >= 10] [keys > 0]\n", argv[0]);
    return 2;
  }
  win_ms = (int64_t)(n_records / 10);
  make_keys();
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
  printf("bench_windows: %" PRIu64 " records, %u keys, tumbling windows of %" PRId64
         " ms (event time = index), %ld CPUs\n",
         n_records, n_keys, win_ms, sysconf(_SC_NPROCESSORS_ONLN));

  c_bare = cpu_s();
  t_bare = bare_map(&total);
  c_bare = cpu_s() - c_bare;
  if (total != n_records)
    bad = 1;
  if (want("nowin") &&
      (run_job(M_NOWIN, &t_nowin, &cp_nowin, &c_nowin) != 0 || c_nowin != n_records))
    bad = 1;
  if (want("window") && (run_job(M_WINDOW, &t_win, &cp_win, &c_win) != 0 || c_win != n_records))
    bad = 1;
  th_win_src = thr_src;
  th_win_task = thr_sink;
  if (want("ckpt") &&
      (run_job(M_CKPT, &t_ckpt, &cp_ckpt, &c_ckpt) != 0 || c_ckpt != n_records * ckpt_rounds))
    bad = 1;
  if (want("json") && (run_job(M_JSON, &t_json, &cp_json, &c_json) != 0 || c_json != n_records))
    bad = 1;
  if (only != NULL) { /* profiling one run: no table */
    double t = t_nowin + t_win + t_ckpt / ckpt_rounds + t_json,
           c = cp_nowin + cp_win + cp_ckpt / ckpt_rounds + cp_json;

    printf("%s: %.2f Mrec/s = %.1f%% of bare (%.2f Mrec/s), CPU ns per record %.1f (bare %.1f; "
           "source thread %.1f, sink thread %.1f)\n",
           only, n_records / t / 1e6, 100.0 * t_bare / t, n_records / t_bare / 1e6,
           1e9 * c / (double)n_records, 1e9 * c_bare / (double)n_records,
           1e9 * thr_src / (double)run_records, 1e9 * thr_sink / (double)run_records);
    return bad;
  }
  jan_n = n_records / 4;
  t_jan = jansson_parse(jan_n, &jan_bytes);
  t_scan = scanner_parse(jan_n);
  mb = json_bytes(n_records) / 1e6;

  printf("\nwall time (records/s over the run) and CPU time (records per CPU-second of the whole "
         "process,\nall threads: what the run costs, less disturbed by other load)\n");
  printf("%-12s %10s %10s %12s %12s %12s\n", "run", "Mrec/s", "MB/s", "vs bare", "Mrec/cpu-s",
         "vs bare");
#define CPU_COLS(c) n_records / (c) / 1e6, 100.0 * c_bare / (c)
  printf("%-12s %10.2f %10s %11.1f%% %12.2f %11.1f%%\n", "bare map", n_records / t_bare / 1e6, "",
         100.0, CPU_COLS(c_bare));
  printf("%-12s %10.2f %10s %11.1f%% %12.2f %11.1f%%  (info: the job without the window)\n",
         "no window", n_records / t_nowin / 1e6, "", 100.0 * t_bare / t_nowin, CPU_COLS(cp_nowin));
  printf("%-12s %10.2f %10s %11.1f%% %12.2f %11.1f%%  (target >= 30%% of bare, wall: %s)\n",
         "window", n_records / t_win / 1e6, "", 100.0 * t_bare / t_win, CPU_COLS(cp_win),
         t_bare / t_win >= 0.30 ? "met" : "MISSED");
  printf("%12s CPU ns per record: bare map %.0f, job without window %.0f, window operator "
         "%.0f (window run minus no-window run: the part the window adds)\n",
         "", 1e9 * c_bare / (double)n_records, 1e9 * cp_nowin / (double)n_records,
         1e9 * (cp_win - cp_nowin) / (double)n_records);
  printf("%12s CPU ns per record by thread: source chain %.0f, window task (with the sink) %.0f; "
         "run in parallel, the slower one sets the pace\n",
         "", 1e9 * th_win_src / (double)n_records, 1e9 * th_win_task / (double)n_records);
  n_ckpt = (double)(n_records * ckpt_rounds);
  printf("%-12s %10.2f %10s %11.1f%% %12.2f %11.1f%%  (%.0f M records, a checkpoint every 1 s)\n",
         "window+ckpt", n_ckpt / t_ckpt / 1e6, "", 100.0 * (n_ckpt / t_ckpt) / (n_records / t_bare),
         n_ckpt / cp_ckpt / 1e6, 100.0 * (n_ckpt / cp_ckpt) / (n_records / c_bare), n_ckpt / 1e6);
  printf("%12s checkpoints completed: %" PRIu64 " in %.1f s, trigger to complete p50 %.1f ms, "
         "p99 %.1f ms\n",
         "", ckpt_stats.completed, t_ckpt, ckpt_stats.p50_duration_us / 1e3,
         ckpt_stats.p99_duration_us / 1e3);
  printf("%-12s %10.2f %10.1f %11.1f%% %12.2f %11.1f%%\n", "json", n_records / t_json / 1e6,
         mb / t_json, 100.0 * t_bare / t_json, CPU_COLS(cp_json));
  printf("%-12s %10.2f %10.1f %12s  (parse + 2 field lookups only, 1 thread, %" PRIu64
         " records)\n",
         "jansson", jan_n / t_jan / 1e6, jan_bytes / 1e6 / t_jan, "(info)", jan_n);
  printf("%-12s %10.2f %10.1f %12s  (validate + the same 2 lookups, in place, 1 thread)\n",
         "scanner", jan_n / t_scan / 1e6, jan_bytes / 1e6 / t_scan, "(info)");
  if (bad) {
    fprintf(stderr,
            "bench_windows: a run failed or its counts do not add up (bare %" PRIu64
            ", window %" PRIu64 ", ckpt %" PRIu64 " (of %" PRIu64 "), json %" PRIu64
            ", expected %" PRIu64 ")\n",
            total, c_win, c_ckpt, n_records * ckpt_rounds, c_json, n_records);
    return 1;
  }
  return 0;
}
