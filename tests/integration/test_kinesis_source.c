/*
 * test_kinesis_source.c: the Kinesis source in whole jobs against kinesalite: TRIM_HORIZON,
 * LATEST and AT_TIMESTAMP reads, per-key order, metadata and metrics, KPL de-aggregation, two
 * streams in one source, parallelism 3 over 5 shards, restore with parallelism 2 from a
 * savepoint, split and merge during consumption at parallelism 2, the checkpoint gate (its
 * decisions without a server, a bounded read that needs it to ask for a checkpoint, and none
 * without checkpoints), deserializers. Skipped when `npm ci` has not
 * been run in tests/kinesis-servers. (The kill -9 loop is test_kinesis_source_crash.c.)
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/kinesis_fixture.h"
#include "../support/kinesis_server.c"
#include "../support/ksrc_job.h"
#include "connectors/kinesis/json_int.h"
#include "connectors/kinesis/source_int.h"
#include "proto/kinesis_source.pb-c.h"

static struct weir_test_kserver srv;
static weir_kinesis_client *cli;
static char dir[64];

static void teardown(void) {
  kfx_teardown(&srv, &cli, dir);
}

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
}

static void start_server(void) {
  kfx_start(&srv, &cli, "kinesalite");
}

static void make_stream(const char *stream, uint32_t shards) {
  kfx_make_stream(cli, stream, shards);
}

static void make_dir(void) {
  kfx_make_dir(dir, sizeof(dir), "weir-ksrc");
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

static int64_t wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- collecting what the source emits ----------------------------------------------------- */

#define MAX_RECS 20000

struct collect {
  unsigned char seen[MAX_RECS];
  long last_per_key[2][KSRC_KEYS]; /* per stream slot (meta "b/...": 1) */
  atomic_long total;
  long dups, order_violations, bad, no_ts;
  char meta_prefix[2][32];
};

static struct collect col;

static void collect_reset(void) {
  memset(&col, 0, sizeof(col));
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < KSRC_KEYS; k++)
      col.last_per_key[s][k] = -1;
}

/* Record values are "<index, 8 digits>", keys "k<index mod KSRC_KEYS>", meta "<stream>/<shard>".
 * Records of the second stream ("b") have indices offset by MAX_RECS / 2. */
static int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  for (size_t i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    char num[9], key[16];
    long idx;
    int slot;

    if (r->value.len != 8) {
      col.bad++;
      continue;
    }
    memcpy(num, r->value.ptr, 8);
    num[8] = '\0';
    idx = strtol(num, NULL, 10);
    slot = r->meta.len > 2 && r->meta.ptr[0] == 'b' && r->meta.ptr[1] == '/';
    snprintf(key, sizeof(key), "k%ld", idx % KSRC_KEYS);
    if (idx < 0 || idx >= MAX_RECS || r->key.len != strlen(key) ||
        memcmp(r->key.ptr, key, r->key.len) != 0 || r->meta.len < 3) {
      col.bad++;
      continue;
    }
    if (r->timestamp == WEIR_NO_TIMESTAMP)
      col.no_ts++;
    if (col.seen[idx]++)
      col.dups++;
    if (idx < col.last_per_key[slot][idx % KSRC_KEYS])
      col.order_violations++;
    col.last_per_key[slot][idx % KSRC_KEYS] = idx;
    atomic_fetch_add(&col.total, 1);
  }
  return 0;
}

static void source_config(weir_kinesis_source_config *sc, const char *const *streams, size_t n) {
  weir_kinesis_source_config_init(sc);
  sc->streams = streams;
  sc->n_streams = n;
  ksrc_client_config(&sc->client, srv.endpoint);
  sc->initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
  sc->discovery_interval_ms = 300;
  sc->getrecords_interval_ms = 50;
}

/* Runs source -> callback sink to the end (stop_at_end) with checkpoints every 100 ms. */
static weir_job *run_collect(weir_kinesis_source_config *sc, int par) {
  weir_job *job;
  int src, rc;

  sc->stop_at_end = true;
  make_dir();
  cr_assert_eq(weir_job_create(&job, "ksrc"), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 100), 0);
  cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", sc, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(job, src, par), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, src, "out", collect_cb, NULL, NULL), 0);
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  return job;
}

static void assert_all_once(long from, long to) {
  cr_assert_eq(col.bad, 0, "%ld malformed records", col.bad);
  cr_assert_eq(col.dups, 0, "%ld duplicates", col.dups);
  cr_assert_eq(col.order_violations, 0, "%ld per-key order violations", col.order_violations);
  for (long i = 0; i < MAX_RECS; i++)
    cr_assert_eq(col.seen[i], i >= from && i < to ? 1 : 0, "record %ld seen %d times", i,
                 col.seen[i]);
  cr_assert_eq(atomic_load(&col.total), to - from);
}

TestSuite(kinesis_source, .init = quiet, .fini = teardown, .timeout = 240);

/* ---- timestamps (no server) ---------------------------------------------------------------- */

Test(kinesis_source, parses_initial_timestamps) {
  int64_t ms;

  cr_assert_eq(weir__ksrc_parse_timestamp("2026-11-26T01:00:00Z", &ms), 0);
  cr_assert_eq(ms, 1795654800000LL);
  cr_assert_eq(weir__ksrc_parse_timestamp("2026-11-26T02:30:00.250+01:30", &ms), 0);
  cr_assert_eq(ms, 1795654800250LL);
  cr_assert_eq(weir__ksrc_parse_timestamp("1795654800.5", &ms), 0);
  cr_assert_eq(ms, 1795654800500LL);
  cr_assert_eq(weir__ksrc_parse_timestamp("1795654800", &ms), 0);
  cr_assert_eq(ms, 1795654800000LL);
  cr_assert_eq(weir__ksrc_parse_timestamp("2026-13-01T00:00:00Z", &ms), WEIR_EINVAL);
  cr_assert_eq(weir__ksrc_parse_timestamp("yesterday", &ms), WEIR_EINVAL);
  cr_assert_eq(weir__ksrc_parse_timestamp("", &ms), WEIR_EINVAL);
}

Test(kinesis_source, rejects_bad_configs) {
  const char *streams[] = {"s", "s"};
  weir_kinesis_source_config sc;
  weir_job *job;

  cr_assert_eq(weir_job_create(&job, "bad"), 0);
  weir_kinesis_source_config_init(&sc);
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), WEIR_EINVAL, "no stream");
  sc.streams = streams;
  sc.n_streams = 2;
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), WEIR_EINVAL, "same twice");
  sc.n_streams = 1;
  sc.initial_position = WEIR_KINESIS_START_AT_TIMESTAMP;
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), WEIR_EINVAL, "no timestamp");
  sc.initial_timestamp = "not a time";
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), WEIR_EINVAL, "bad timestamp");
  sc.initial_timestamp = "1795654800";
  sc.getrecords_max = 10001;
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), WEIR_EINVAL, "Limit > 10000");
  sc.getrecords_max = 0;
  sc.credentials = WEIR_KINESIS_CREDS_BASIC;
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), WEIR_EINVAL, "BASIC, no keys");
  sc.credentials = WEIR_KINESIS_CREDS_AUTO;
  cr_assert_eq(weir_job_add_kinesis_source(job, "k", &sc, NULL), 0);
  weir_job_destroy(job);
}

/* ---- initial positions --------------------------------------------------------------------- */

/* 4 shards from TRIM_HORIZON: every record once, in per-key order, with arrival timestamps,
 * metadata and metrics. */
Test(kinesis_source, trim_horizon_reads_everything_in_key_order) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_job *job;

  start_server();
  make_stream("s", 4);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 3000), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.getrecords_max = 200;
  sc.max_records_per_poll = 50;
  job = run_collect(&sc, 1);
  assert_all_once(0, 3000);
  cr_assert_eq(col.no_ts, 0, "%ld records without arrival timestamp", col.no_ts);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL), 3000);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_bytes_total", NULL), 3000 * 8);
  cr_assert_geq(weir_job_metric_sum(job, "weir_kinesis_source_getrecords_total", NULL), 4 * 2);
  cr_assert_gt(weir_job_metric_sum(job, "weir_kinesis_source_getrecords_total",
                                   "shard=\"shardId-000000000003\""),
               0);
  weir_job_destroy(job);
}

struct runner {
  weir_job *job;
  int rc;
};

static void *run_thread(void *arg) {
  struct runner *r = arg;

  r->rc = weir_job_run(r->job);
  return NULL;
}

/* LATEST: records written before the source got its iterators are not read; all written after
 * are. */
Test(kinesis_source, latest_reads_only_new_records) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  struct runner run = {0};
  pthread_t th;
  int src;

  start_server();
  make_stream("s", 3);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 500), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.initial_position = WEIR_KINESIS_START_LATEST;
  cr_assert_eq(weir_job_create(&run.job, "latest"), 0);
  cr_assert_eq(weir_job_add_kinesis_source(run.job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_add_callback_sink(run.job, src, "out", collect_cb, NULL, NULL), 0);
  cr_assert_eq(pthread_create(&th, NULL, run_thread, &run), 0);
  /* Every shard has been read once: its iterator was taken at LATEST. */
  for (int i = 0; i < 2000; i++) {
    int polled = 0;

    for (int s = 0; s < 3; s++) {
      char f[64];

      snprintf(f, sizeof(f), "shard=\"shardId-00000000000%d\"", s);
      polled += weir_job_metric_sum(run.job, "weir_kinesis_source_getrecords_total", f) > 0;
    }
    if (polled == 3)
      break;
    sleep_ms(10);
  }
  cr_assert_eq(ksrc_put_plain(cli, "s", 500, 700), 0);
  for (int i = 0; i < 3000 && atomic_load(&col.total) < 700; i++)
    sleep_ms(10);
  weir_job_stop(run.job);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(run.rc, 0, "job: %s", weir_job_error(run.job));
  assert_all_once(500, 1200);
  weir_job_destroy(run.job);
}

/* AT_TIMESTAMP: only records that arrived at or after the timestamp (epoch seconds). */
Test(kinesis_source, at_timestamp_reads_from_the_timestamp) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  char ts[32];
  int64_t t;
  weir_job *job;

  start_server();
  make_stream("s", 2);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 400), 0);
  sleep_ms(1500);
  t = wall_ms();
  sleep_ms(1500);
  cr_assert_eq(ksrc_put_plain(cli, "s", 400, 600), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  snprintf(ts, sizeof(ts), "%lld.%03lld", (long long)(t / 1000), (long long)(t % 1000));
  sc.initial_position = WEIR_KINESIS_START_AT_TIMESTAMP;
  sc.initial_timestamp = ts;
  job = run_collect(&sc, 1);
  assert_all_once(400, 1000);
  weir_job_destroy(job);
}

/* ---- de-aggregation ------------------------------------------------------------------------ */

/* KPL aggregates (weir's aggregator, up to 25 user records each) mixed with plain records: every
 * user record once, in per-key order. */
Test(kinesis_source, deaggregates_kpl_records) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_job *job;

  start_server();
  make_stream("s", 3);
  cr_assert_eq(ksrc_put_aggregated(cli, "s", 0, 1500, 25), 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 1500, 500), 0);
  cr_assert_eq(ksrc_put_aggregated(cli, "s", 2000, 1000, 7), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.max_records_per_poll = 3; /* slices end inside aggregates */
  job = run_collect(&sc, 1);
  assert_all_once(0, 3000);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_filtered_total", NULL), 0);
  weir_job_destroy(job);
}

/* ---- streams and parallelism --------------------------------------------------------------- */

/* Two streams in one source: all records of both (stream b's indices start at 10000). */
Test(kinesis_source, two_streams_in_one_source) {
  const char *streams[] = {"a", "b"};
  weir_kinesis_source_config sc;
  weir_job *job;

  start_server();
  make_stream("a", 2);
  make_stream("b", 3);
  cr_assert_eq(ksrc_put_plain(cli, "a", 0, 1000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "b", 10000, 1500), 0);
  collect_reset();
  source_config(&sc, streams, 2);
  job = run_collect(&sc, 2);
  cr_assert_eq(col.bad, 0);
  cr_assert_eq(col.dups, 0);
  cr_assert_eq(col.order_violations, 0);
  cr_assert_eq(atomic_load(&col.total), 2500);
  for (long i = 0; i < MAX_RECS; i++)
    cr_assert_eq(col.seen[i], (i < 1000 || (i >= 10000 && i < 11500)) ? 1 : 0, "record %ld", i);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_records_total", "stream=\"a\""), 1000);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_records_total", "stream=\"b\""), 1500);
  weir_job_destroy(job);
}

struct owners {
  int subtask_of[5]; /* -1 none, -2 more than one */
};

static int owners_cb(void *arg, const weir_metric_info *m) {
  struct owners *o = arg;
  const char *sh, *st;
  int shard, subtask;

  if (strcmp(m->name, "weir_kinesis_source_getrecords_total") != 0 || m->value == 0)
    return 0;
  sh = strstr(m->labels, "shard=\"shardId-");
  st = strstr(m->labels, "subtask=\"");
  cr_assert(sh != NULL && st != NULL, "labels %s", m->labels);
  shard = atoi(sh + strlen("shard=\"shardId-"));
  subtask = atoi(st + strlen("subtask=\""));
  cr_assert(shard >= 0 && shard < 5);
  o->subtask_of[shard] = o->subtask_of[shard] == -1 ? subtask : -2;
  return 0;
}

/* Parallelism 3 over 5 shards: each shard read by exactly one subtask, more than one subtask
 * busy, every record once. */
Test(kinesis_source, parallelism_3_over_5_shards) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  struct owners o = {{-1, -1, -1, -1, -1}};
  bool used[3] = {false, false, false};
  int busy = 0;
  weir_job *job;

  start_server();
  make_stream("s", 5);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 4000), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  job = run_collect(&sc, 3);
  assert_all_once(0, 4000);
  cr_assert_eq(weir_job_metrics_foreach(job, owners_cb, &o), 0);
  for (int s = 0; s < 5; s++) {
    cr_assert_geq(o.subtask_of[s], 0, "shard %d read by %s", s,
                  o.subtask_of[s] == -1 ? "nobody" : "several subtasks");
    used[o.subtask_of[s]] = true;
  }
  for (int i = 0; i < 3; i++)
    busy += used[i];
  cr_assert_geq(busy, 2, "all shards on one subtask");
  weir_job_destroy(job);
}

/* Stop with savepoint while a source with parallelism 3 is half way, restore with parallelism
 * 2: the keyed counts are exact (positions moved to their new owners). */
Test(kinesis_source, restore_with_parallelism_2) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_file_sink_config fc = {NULL, false, false};
  unsigned long counts[KSRC_KEYS] = {0};
  char out[128];
  int64_t read1 = -1, read2 = -1;

  start_server();
  make_stream("s", 5);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 2000), 0);
  cr_assert_eq(ksrc_put_aggregated(cli, "s", 2000, 2000, 10), 0);
  make_dir();
  snprintf(out, sizeof(out), "%s/out.txt", dir);
  fc.path = out;
  for (int run = 0; run < 2; run++) {
    weir_file_sink *sink;
    weir_job *job;
    int src, cnt, rc;

    source_config(&sc, streams, 1);
    sc.getrecords_max = 20;
    sc.max_records_per_poll = 7;
    sc.stop_at_end = run == 1;
    cr_assert_eq(weir_job_create(&job, "ksrc-restore"), 0);
    cr_assert_eq(weir_job_set_checkpoint_dir(job, dir), 0);
    cr_assert_eq(weir_job_set_checkpoint_interval(job, 100), 0);
    cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_set_parallelism(job, src, run == 0 ? 3 : 2), 0);
    cr_assert_eq(ksrc_add_count(job, src, 2, &cnt), 0);
    cr_assert_eq(weir_file_sink_create(&sink, &fc), 0);
    cr_assert_eq(weir_job_add_file_sink(job, cnt, "out", sink, NULL), 0);
    if (run == 0) {
      struct runner r = {job, 0};
      pthread_t th;

      cr_assert_eq(pthread_create(&th, NULL, run_thread, &r), 0);
      while (weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL) < 1500)
        sleep_ms(20);
      cr_assert_eq(weir_job_stop_with_savepoint(job), 0);
      cr_assert_eq(pthread_join(th, NULL), 0);
      cr_assert_eq(r.rc, 0, "run 1: %s", weir_job_error(job));
      read1 = weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL);
    } else {
      rc = weir_job_run(job);
      cr_assert_eq(rc, 0, "run 2: %s", weir_job_error(job));
      read2 = weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL);
    }
    weir_job_destroy(job);
    weir_file_sink_destroy(sink);
  }
  cr_assert_eq(read1 + read2, 4000, "run 1 read %lld, run 2 %lld", (long long)read1,
               (long long)read2);
  cr_assert_eq(ksrc_read_finals(out, counts), KSRC_KEYS);
  for (int k = 0; k < KSRC_KEYS; k++)
    cr_assert_eq(counts[k], 4000 / KSRC_KEYS, "key k%d: %lu", k, counts[k]);
}

/* ---- resharding ---------------------------------------------------------------------------- */

/* Children of the shards of stream `stream` that have a parent owned by another of `par` source
 * subtasks: the ones that must pass the checkpoint gate. */
static long cross_subtask_children(const char *stream, int par) {
  static struct weir_kinesis_shard shards[16];
  struct weir_kinesis_shard_list l = {shards, 0, 16};
  long n = 0;

  cr_assert_eq(weir__kinesis_list_all_shards(cli, stream, NULL, &l), 0);
  for (size_t i = 0; i < l.len; i++) {
    uint64_t owner = weir__ksrc_hash(stream, shards[i].shard_id) % (uint64_t)par;
    const char *p0 = shards[i].parent_shard_id, *p1 = shards[i].adjacent_parent_shard_id;

    n += (p0[0] != '\0' && weir__ksrc_hash(stream, p0) % (uint64_t)par != owner) ||
         (p1[0] != '\0' && weir__ksrc_hash(stream, p1) % (uint64_t)par != owner);
  }
  return n;
}

/* Split shard 0 and then merge one of its children with shard 1 while the source (parallelism 2,
 * checkpoints every 150 ms) runs, writing records before and after each: nothing lost or
 * repeated, and per key the records come in the order they were written (parents before
 * children), also when a parent and its child belong to different subtasks (the checkpoint
 * gate: each such child counted in weir_kinesis_source_gated_children_total). */
Test(kinesis_source, split_and_merge_keep_key_order) {
  const char *streams[] = {"s"};
  static struct weir_kinesis_shard shards[16];
  struct weir_kinesis_shard_list l = {shards, 0, 16};
  weir_kinesis_source_config sc;
  struct runner run = {0};
  const char *c2 = NULL;
  pthread_t th;
  long cross;
  int64_t gated;
  int src;

  start_server();
  make_stream("s", 2);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 1500), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.getrecords_max = 50; /* slow: the parents are still being read when the children appear */
  make_dir();
  cr_assert_eq(weir_job_create(&run.job, "reshard"), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(run.job, dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(run.job, 150), 0);
  cr_assert_eq(weir_job_add_kinesis_source(run.job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(run.job, src, 2), 0);
  cr_assert_eq(weir_job_add_callback_sink(run.job, src, "out", collect_cb, NULL, NULL), 0);
  cr_assert_eq(pthread_create(&th, NULL, run_thread, &run), 0);

  /* Split shard 0 (hash keys 0..2^127-1) in the middle. */
  cr_assert_eq(weir__kinesis_split_shard(cli, "s", "shardId-000000000000",
                                         "85070591730234615865843651857942052864"),
               0, "SplitShard: %s", weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, "s", 20000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 1500, 1500), 0);
  /* Merge the upper child of the split with shard 1 (adjacent). */
  cr_assert_eq(weir__kinesis_list_all_shards(cli, "s", NULL, &l), 0);
  for (size_t i = 0; i < l.len; i++)
    if (strcmp(shards[i].parent_shard_id, "shardId-000000000000") == 0 &&
        strcmp(shards[i].hash_range.start, "85070591730234615865843651857942052864") == 0)
      c2 = shards[i].shard_id;
  cr_assert_not_null(c2);
  cr_assert_eq(weir__kinesis_merge_shards(cli, "s", c2, "shardId-000000000001"), 0,
               "MergeShards: %s", weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, "s", 20000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 3000, 1500), 0);

  for (int i = 0; i < 9000 && atomic_load(&col.total) < 4500; i++)
    sleep_ms(10);
  sleep_ms(300); /* a duplicate would arrive now */
  weir_job_stop(run.job);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(run.rc, 0, "job: %s", weir_job_error(run.job));
  assert_all_once(0, 4500);
  cross = cross_subtask_children("s", 2);
  gated = weir_job_metric_sum(run.job, "weir_kinesis_source_gated_children_total", NULL);
  fprintf(stderr,
          "[kinesis_source split/merge] children with a parent on another subtask %ld, "
          "gated %lld, checkpoints %llu\n",
          cross, (long long)gated, (unsigned long long)weir_job_last_checkpoint(run.job));
  /* Every child had records, so each started, and each with a parent elsewhere through the
   * gate. */
  cr_assert_eq(gated, cross, "%lld children passed the gate, %ld have a parent elsewhere",
               (long long)gated, cross);
  cr_assert_eq(weir_job_metric_sum(run.job, "weir_kinesis_source_gate_waiting", NULL), 0);
  weir_job_destroy(run.job);
}

struct bounded {
  weir_job *job;
  int rc;
  atomic_bool done;
};

static void *bounded_thread(void *arg) {
  struct bounded *b = arg;

  b->rc = weir_job_run(b->job);
  atomic_store(&b->done, true);
  return NULL;
}

/* Bounded read (stop_at_end) at source parallelism 2 of stream "x", whose shard 0 was split
 * before the job started: shard 0 (and 1) hash to subtask 1, both children to subtask 0, so each
 * child needs the checkpoint gate when the job checkpoints. `ckpt_dir`: with a checkpoint
 * directory; `interval`: its interval (0: none, the gate must ask for a checkpoint itself). The
 * job must end by itself; a child held for good would keep it running (failed after 60 s). */
static weir_job *gate_bounded_read(bool ckpt_dir, int64_t interval) {
  const char *streams[] = {"x"};
  weir_kinesis_source_config sc;
  struct bounded run = {0};
  pthread_t th;
  int src, i;

  start_server();
  make_stream("x", 2);
  cr_assert_eq(ksrc_put_plain(cli, "x", 0, 400), 0);
  cr_assert_eq(weir__kinesis_split_shard(cli, "x", "shardId-000000000000",
                                         "85070591730234615865843651857942052864"),
               0, "SplitShard: %s", weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, "x", 20000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "x", 400, 400), 0);
  cr_assert_eq(cross_subtask_children("x", 2), 2, "stream x: both children on the other subtask");
  collect_reset();
  source_config(&sc, streams, 1);
  sc.stop_at_end = true;
  cr_assert_eq(weir_job_create(&run.job, "gate"), 0);
  if (ckpt_dir) {
    make_dir();
    cr_assert_eq(weir_job_set_checkpoint_dir(run.job, dir), 0);
    if (interval > 0)
      cr_assert_eq(weir_job_set_checkpoint_interval(run.job, interval), 0);
  }
  cr_assert_eq(weir_job_add_kinesis_source(run.job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(run.job, src, 2), 0);
  cr_assert_eq(weir_job_add_callback_sink(run.job, src, "out", collect_cb, NULL, NULL), 0);
  cr_assert_eq(pthread_create(&th, NULL, bounded_thread, &run), 0);
  for (i = 0; i < 6000 && !atomic_load(&run.done); i++)
    sleep_ms(10);
  if (i == 6000)
    weir_job_cancel(run.job);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_neq(i, 6000, "the bounded job did not end: a child held for good?");
  cr_assert_eq(run.rc, 0, "job: %s", weir_job_error(run.job));
  assert_all_once(0, 800);
  return run.job;
}

/* No periodic checkpoints (a directory, no interval): the gate asks for the checkpoint it needs,
 * so both children start and the bounded read ends. */
Test(kinesis_source, gate_asks_for_a_checkpoint) {
  weir_job *job = gate_bounded_read(true, 0);

  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_gated_children_total", NULL), 2);
  cr_assert_geq(weir_job_last_checkpoint(job), 1, "no checkpoint was taken");
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_gate_waiting", NULL), 0);
  weir_job_destroy(job);
}

/* No checkpoint directory: nothing to wait for, the children start at once (order by timing
 * only, docs/guarantees.md) and nothing counts as gated. */
Test(kinesis_source, no_gate_without_checkpoints) {
  weir_job *job = gate_bounded_read(false, 0);

  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_gated_children_total", NULL), 0);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_gate_waiting", NULL), 0);
  weir_job_destroy(job);
}

/* ---- deserializers ------------------------------------------------------------------------- */

static int json_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)recs;
  (void)data;
  (void)subtask;
  atomic_fetch_add(&col.total, (long)n);
  return 0;
}

/* The JSON deserializer drops invalid records (counted) unless told to fail the job. */
Test(kinesis_source, json_deserializer_rejects_invalid_records) {
  const char *streams[] = {"s"};
  static const char *vals[] = {"{\"a\":1}", "[1,2", "42", "not json", "\"s\""};
  struct weir_kinesis_put_entry e[5];
  weir_kinesis_source_config sc;
  weir_job *job;
  int src, rc;

  start_server();
  make_stream("s", 1);
  for (int i = 0; i < 5; i++) {
    e[i].data = weir_buf_str(vals[i]);
    e[i].partition_key = weir_buf_str("p");
    e[i].explicit_hash_key = NULL;
  }
  cr_assert_eq(ksrc_put(cli, "s", e, 5), 0);
  for (int fail = 0; fail < 2; fail++) {
    collect_reset();
    source_config(&sc, streams, 1);
    sc.deserializer = WEIR_KINESIS_DESER_JSON;
    sc.fail_on_deserialize_error = fail;
    sc.stop_at_end = true;
    cr_assert_eq(weir_job_create(&job, "json"), 0);
    cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_callback_sink(job, src, "out", json_cb, NULL, NULL), 0);
    rc = weir_job_run(job);
    if (fail) {
      cr_assert_eq(rc, WEIR_EPARSE, "rc %s", weir_err_name(rc));
      cr_assert_not_null(strstr(weir_job_error(job), "s/shardId-000000000000"), "%s",
                         weir_job_error(job));
    } else {
      cr_assert_eq(rc, 0, "%s", weir_job_error(job));
      cr_assert_eq(atomic_load(&col.total), 3);
      cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_rejected_total", NULL), 2);
    }
    weir_job_destroy(job);
  }
}

struct seen_cb {
  atomic_int calls;
  char seq[WEIR_KINESIS_SEQ_MAX + 1];
  char stream[16], shard[32];
};

static int user_deser(void *data, weir_ctx *ctx, const weir_kinesis_source_record *in,
                      weir_record *out) {
  struct seen_cb *s = data;
  static const char upper[] = "UPPER";

  (void)ctx;
  if (atomic_fetch_add(&s->calls, 1) == 0) {
    snprintf(s->seq, sizeof(s->seq), "%s", in->sequence_number);
    snprintf(s->stream, sizeof(s->stream), "%s", in->stream);
    snprintf(s->shard, sizeof(s->shard), "%s", in->shard_id);
  }
  if (in->data.len == 4 && memcmp(in->data.ptr, "drop", 4) == 0)
    return 1;
  out->value = (weir_buf){(const uint8_t *)upper, 5};
  return 0;
}

static int upper_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  for (size_t i = 0; i < n; i++)
    if (recs[i].value.len == 5 && memcmp(recs[i].value.ptr, "UPPER", 5) == 0)
      atomic_fetch_add(&col.total, 1);
  return 0;
}

/* A user deserializer sees sequence number, stream and shard; it can rewrite and drop. */
Test(kinesis_source, user_deserializer) {
  const char *streams[] = {"s"};
  struct weir_kinesis_put_entry e[3];
  static struct seen_cb seen;
  weir_kinesis_source_config sc;
  weir_job *job;
  int src, rc;

  start_server();
  make_stream("s", 1);
  for (int i = 0; i < 3; i++) {
    e[i].data = weir_buf_str(i == 1 ? "drop" : "keep");
    e[i].partition_key = weir_buf_str("p");
    e[i].explicit_hash_key = NULL;
  }
  cr_assert_eq(ksrc_put(cli, "s", e, 3), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.deserialize_cb = user_deser;
  sc.deserialize_data = &seen;
  sc.stop_at_end = true;
  cr_assert_eq(weir_job_create(&job, "user"), 0);
  cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, src, "out", upper_cb, NULL, NULL), 0);
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "%s", weir_job_error(job));
  cr_assert_eq(atomic_load(&seen.calls), 3);
  cr_assert_eq(atomic_load(&col.total), 2);
  cr_assert_str_eq(seen.stream, "s");
  cr_assert_str_eq(seen.shard, "shardId-000000000000");
  cr_assert_gt(strlen(seen.seq), 10);
  weir_job_destroy(job);
}

/* ---- aws-kinesis-agg (npm) aggregates ------------------------------------------------------ */

/* Runs `node kpl_agg.js encode` on records [first, first + n) (keys as ksrc_job.h) and puts
 * every Kinesis record it produces into `stream`; returns how many it produced. */
static int put_with_aws_kinesis_agg(const char *stream, long first, long n) {
  char in[128], out[128], cmd[512], line[1 << 16];
  struct weir_kinesis_put_entry e;
  FILE *f;
  int produced = 0;

  snprintf(in, sizeof(in), "%s/agg-in.jsonl", dir);
  snprintf(out, sizeof(out), "%s/agg-out.jsonl", dir);
  cr_assert_not_null(f = fopen(in, "w"));
  for (long i = first; i < first + n; i++) {
    char data[16], b64[32];
    size_t len = (size_t)snprintf(data, sizeof(data), "%08ld", i);

    weir__b64_encode((const uint8_t *)data, len, b64);
    b64[weir__b64_encoded_len(len)] = '\0';
    fprintf(f, "{\"pk\":\"k%ld\",\"data_b64\":\"%s\"}\n", i % KSRC_KEYS, b64);
  }
  fclose(f);
  snprintf(cmd, sizeof(cmd), "cd '%s' && node kpl_agg.js encode < '%s' > '%s'",
           weir_test_kserver_dir(), in, out);
  cr_assert_eq(system(cmd), 0, "kpl_agg.js encode failed");
  cr_assert_not_null(f = fopen(out, "r"));
  while (fgets(line, sizeof(line), f) != NULL) {
    static uint8_t data[1 << 16];
    json_t *j = json_loads(line, 0, NULL), *ehk;
    const char *b64;
    size_t len;

    cr_assert_not_null(j);
    b64 = json_string_value(json_object_get(j, "data_b64"));
    cr_assert_eq(weir__b64_decode(b64, strlen(b64), data, &len), 0);
    e.data = (weir_buf){data, len};
    e.partition_key = weir_buf_str(json_string_value(json_object_get(j, "pk")));
    ehk = json_object_get(j, "ehk");
    e.explicit_hash_key = json_is_string(ehk) ? json_string_value(ehk) : NULL;
    cr_assert_eq(ksrc_put(cli, stream, &e, 1), 0);
    json_decref(j);
    produced++;
  }
  fclose(f);
  return produced;
}

/* Aggregates written by aws-kinesis-agg (the npm library, another implementation of the KPL
 * format) are split into their user records. */
Test(kinesis_source, deaggregates_aws_kinesis_agg_records) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_job *job;

  start_server();
  make_stream("s", 1);
  make_dir();
  cr_assert_gt(put_with_aws_kinesis_agg("s", 0, 1200), 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 1200, 300), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.max_records_per_poll = 11;
  sc.stop_at_end = true;
  {
    weir_job *j;
    int src, rc;

    cr_assert_eq(weir_job_create(&j, "agg"), 0);
    cr_assert_eq(weir_job_add_kinesis_source(j, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_callback_sink(j, src, "out", collect_cb, NULL, NULL), 0);
    rc = weir_job_run(j);
    cr_assert_eq(rc, 0, "%s", weir_job_error(j));
    job = j;
  }
  assert_all_once(0, 1500);
  weir_job_destroy(job);
}

/* The KCL's whole-aggregate rule: aws-kinesis-agg packs records of every key into one aggregate,
 * which lands on one shard of a 2-shard stream; some of its user records hash outside that
 * shard's range, so the aggregate is dropped whole (counted), while plain records arrive. */
Test(kinesis_source, aggregates_outside_the_shard_range_are_dropped_whole) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_job *job;
  int aggs;

  start_server();
  make_stream("s", 2);
  make_dir();
  aggs = put_with_aws_kinesis_agg("s", 0, 200);
  cr_assert_gt(aggs, 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 200, 300), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.stop_at_end = true;
  {
    int src, rc;

    cr_assert_eq(weir_job_create(&job, "filter"), 0);
    cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_callback_sink(job, src, "out", collect_cb, NULL, NULL), 0);
    rc = weir_job_run(job);
    cr_assert_eq(rc, 0, "%s", weir_job_error(job));
  }
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_filtered_total", NULL), aggs);
  assert_all_once(200, 500);
  weir_job_destroy(job);
}

/* ---- watermarks ---------------------------------------------------------------------------- */

static atomic_llong max_watermark;

static int wm_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  (void)inst;
  for (size_t i = 0; i < n; i++)
    if (weir_emit(ctx, &recs[i]) != 0)
      return WEIR_ECANCELED;
  return 0;
}

static int wm_on_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  (void)ctx;
  (void)inst;
  if (wm > atomic_load(&max_watermark))
    atomic_store(&max_watermark, wm);
  return 0;
}

/* Records only in one of two shards, written while the job runs: without an idle timeout the
 * empty shard holds the watermark back; with one, the watermark follows the busy shard's arrival
 * times. */
Test(kinesis_source, idle_shards_stop_holding_the_watermark) {
  const char *streams[] = {"s"};
  struct weir_kinesis_put_entry e[5];
  weir_kinesis_source_config sc;
  int64_t before;

  start_server();
  make_stream("s", 2);
  /* "k1" hashes into one shard only: every record goes there. */
  for (int i = 0; i < 5; i++) {
    e[i].data = weir_buf_str("00000001");
    e[i].partition_key = weir_buf_str("k1");
    e[i].explicit_hash_key = NULL;
  }
  for (int idle = 0; idle < 2; idle++) {
    weir_operator op = {0};
    struct runner run = {0};
    pthread_t th;
    int src, mid;

    atomic_store(&max_watermark, INT64_MIN);
    collect_reset();
    source_config(&sc, streams, 1);
    sc.idle_timeout_ms = idle ? 300 : 0;
    op.process = wm_process;
    op.on_watermark = wm_on_watermark;
    cr_assert_eq(weir_job_create(&run.job, "wm"), 0);
    cr_assert_eq(weir_job_add_kinesis_source(run.job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_operator(run.job, src, "wm", &op, NULL, &mid), 0);
    cr_assert_eq(weir_job_add_callback_sink(run.job, mid, "out", json_cb, NULL, NULL), 0);
    cr_assert_eq(pthread_create(&th, NULL, run_thread, &run), 0);
    before = wall_ms();
    for (int i = 0; i < 10; i++) {
      cr_assert_eq(ksrc_put(cli, "s", e, 5), 0);
      sleep_ms(100);
    }
    for (int i = 0; i < 3000 && atomic_load(&col.total) < 50 * (idle + 1); i++)
      sleep_ms(10);
    cr_assert_eq(atomic_load(&col.total), 50 * (idle + 1));
    weir_job_stop(run.job);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(run.rc, 0, "%s", weir_job_error(run.job));
    if (idle)
      cr_assert_geq(atomic_load(&max_watermark), before + 300, "watermark %lld, writes from %lld",
                    (long long)atomic_load(&max_watermark), (long long)before);
    else
      cr_assert_lt(atomic_load(&max_watermark), before - 3600000,
                   "an empty non-idle shard must hold the watermark (got %lld)",
                   (long long)atomic_load(&max_watermark));
    weir_job_destroy(run.job);
  }
}

/* ---- kinesis-local: ChildShards ------------------------------------------------------------ */

/* kinesis-local names a closed shard's children in its last GetRecords (kinesalite does not).
 * With discovery only at start, the children of a split can only come from ChildShards: every
 * record is still read once, parents before children. MillisBehindLatest is real here. */
Test(kinesis_source, kinesis_local_children_from_getrecords) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_kinesis_config cfg;
  struct runner run = {0};
  char why[512];
  pthread_t th;
  int src, rc;

  rc = weir_test_kserver_start(&srv, "kinesis-local", why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start kinesis-local: %s", why);
  ksrc_client_config(&cfg, srv.endpoint);
  cr_assert_eq(weir_kinesis_client_create(&cli, &cfg), 0);
  make_stream("s", 1);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 300), 0);
  collect_reset();
  source_config(&sc, streams, 1);
  sc.discovery_interval_ms = -1;
  sc.getrecords_max = 20;
  cr_assert_eq(weir_job_create(&run.job, "children"), 0);
  cr_assert_eq(weir_job_add_kinesis_source(run.job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_add_callback_sink(run.job, src, "out", collect_cb, NULL, NULL), 0);
  cr_assert_eq(pthread_create(&th, NULL, run_thread, &run), 0);
  for (int i = 0; i < 1000 && atomic_load(&col.total) == 0; i++)
    sleep_ms(10);
  cr_assert_eq(weir__kinesis_split_shard(cli, "s", "shardId-000000000000",
                                         "170141183460469231731687303715884105728"),
               0, "SplitShard: %s", weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, "s", 30000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 300, 300), 0);
  for (int i = 0; i < 6000 && atomic_load(&col.total) < 600; i++)
    sleep_ms(10);
  sleep_ms(300);
  weir_job_stop(run.job);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(run.rc, 0, "job: %s", weir_job_error(run.job));
  assert_all_once(0, 600);
  cr_assert_gt(weir_job_metric_sum(run.job, "weir_kinesis_source_getrecords_total",
                                   "shard=\"shardId-000000000001\""),
               0);
  cr_assert_gt(weir_job_metric_sum(run.job, "weir_kinesis_source_getrecords_total",
                                   "shard=\"shardId-000000000002\""),
               0);
  weir_job_destroy(run.job);
}

/* ---- LATEST across a restore, credentials from the environment ------------------------------ */

/* A LATEST source stopped with a savepoint before any record arrived, restored after records
 * were written: it reads them (its position was pinned when it first asked for LATEST) instead of
 * jumping to the new LATEST. Credentials come from the environment (ENV_VAR). */
Test(kinesis_source, latest_position_survives_a_restore) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_job *job;

  start_server();
  make_stream("s", 2);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 100), 0);
  make_dir();
  cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV", 1), 0);
  cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", "secretfromenv", 1), 0);
  for (int run = 0; run < 2; run++) {
    struct runner r = {0};
    pthread_t th;
    int src;

    collect_reset();
    source_config(&sc, streams, 1);
    sc.initial_position = WEIR_KINESIS_START_LATEST;
    sc.credentials = WEIR_KINESIS_CREDS_ENV_VAR;
    sc.client.access_key_id = sc.client.secret_access_key = NULL;
    sc.stop_at_end = run == 1;
    cr_assert_eq(weir_job_create(&job, "latest-restore"), 0);
    cr_assert_eq(weir_job_set_checkpoint_dir(job, dir), 0);
    cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_callback_sink(job, src, "out", collect_cb, NULL, NULL), 0);
    r.job = job;
    cr_assert_eq(pthread_create(&th, NULL, run_thread, &r), 0);
    if (run == 0) {
      /* Both shards have taken their LATEST iterator and been read once. */
      while (weir_job_metric_sum(job, "weir_kinesis_source_getrecords_total",
                                 "shard=\"shardId-000000000000\"") == 0 ||
             weir_job_metric_sum(job, "weir_kinesis_source_getrecords_total",
                                 "shard=\"shardId-000000000001\"") == 0)
        sleep_ms(10);
      cr_assert_eq(weir_job_stop_with_savepoint(job), 0);
    }
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(r.rc, 0, "run %d: %s", run, weir_job_error(job));
    if (run == 0) {
      cr_assert_eq(atomic_load(&col.total), 0, "LATEST read old records");
      cr_assert_eq(ksrc_put_plain(cli, "s", 100, 300), 0);
    }
    weir_job_destroy(job);
  }
  assert_all_once(100, 400);
}

/* A source subtask that owns no shard marks its output idle (weir_emit_idle), so the other
 * subtask's watermark reaches a downstream operator that takes the minimum over both. */
Test(kinesis_source, subtask_without_shards_is_idle) {
  const char *streams[] = {"s"};
  struct weir_kinesis_put_entry e[5];
  weir_kinesis_source_config sc;
  weir_operator op = {0};
  struct runner run = {0};
  int64_t before;
  pthread_t th;
  int src, mid;

  start_server();
  make_stream("s", 1);
  for (int i = 0; i < 5; i++) {
    e[i].data = weir_buf_str("00000001");
    e[i].partition_key = weir_buf_str("k1");
    e[i].explicit_hash_key = NULL;
  }
  atomic_store(&max_watermark, INT64_MIN);
  collect_reset();
  source_config(&sc, streams, 1);
  op.process = wm_process;
  op.on_watermark = wm_on_watermark;
  cr_assert_eq(weir_job_create(&run.job, "wm2"), 0);
  cr_assert_eq(weir_job_add_kinesis_source(run.job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(run.job, src, 2), 0);
  cr_assert_eq(weir_job_add_operator(run.job, src, "wm", &op, NULL, &mid), 0);
  cr_assert_eq(weir_job_set_partitioning(run.job, src, mid, WEIR_PART_REBALANCE), 0);
  cr_assert_eq(weir_job_add_callback_sink(run.job, mid, "out", json_cb, NULL, NULL), 0);
  cr_assert_eq(pthread_create(&th, NULL, run_thread, &run), 0);
  before = wall_ms();
  for (int i = 0; i < 6; i++) {
    cr_assert_eq(ksrc_put(cli, "s", e, 5), 0);
    sleep_ms(100);
  }
  for (int i = 0; i < 3000 && atomic_load(&col.total) < 30; i++)
    sleep_ms(10);
  for (int i = 0; i < 300 && atomic_load(&max_watermark) < before; i++)
    sleep_ms(10);
  weir_job_stop(run.job);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(run.rc, 0, "%s", weir_job_error(run.job));
  cr_assert_eq(atomic_load(&col.total), 30);
  cr_assert_geq(atomic_load(&max_watermark), before, "watermark %lld, writes from %lld",
                (long long)atomic_load(&max_watermark), (long long)before);
  weir_job_destroy(run.job);
}

/* ---- snapshot decoding and resume requests (no server) ------------------------------------- */

static struct ksrc *pool_new(void) {
  struct ksrc *k = calloc(1, sizeof(*k));

  cr_assert_not_null(k);
  k->max_shards = 4;
  k->shards = calloc(k->max_shards, sizeof(*k->shards));
  k->restored = calloc(k->max_shards, sizeof(*k->restored));
  cr_assert(k->shards != NULL && k->restored != NULL);
  cr_assert_eq(pthread_mutex_init(&k->mu, NULL), 0);
  return k;
}

static void pool_free(struct ksrc *k) {
  pthread_mutex_destroy(&k->mu);
  free(k->shards);
  free(k->restored);
  free(k);
}

static size_t pack(uint32_t version, size_t n, int kind, const char *seq, uint8_t *buf) {
  Weir__Ksrc__SourceSnapshot snap = WEIR__KSRC__SOURCE_SNAPSHOT__INIT;
  Weir__Ksrc__ShardPosition m[6], *p[6];

  for (size_t i = 0; i < n; i++) {
    weir__ksrc__shard_position__init(&m[i]);
    m[i].stream = "s";
    m[i].shard_id = i == 0 ? "shardId-000000000000" : "shardId-000000000001";
    m[i].kind = (Weir__Ksrc__PositionKind)kind;
    m[i].sequence_number = (char *)seq;
    m[i].sub_sequence_number = 3;
    m[i].partial = true;
    p[i] = &m[i];
  }
  snap.version = version;
  snap.n_shards = n;
  snap.shards = p;
  snap.started = true;
  return weir__ksrc__source_snapshot__pack(&snap, buf);
}

/* Restore takes valid parts into the pool and refuses unknown versions, garbage, bad positions
 * and more positions than the bound, without crashing. */
Test(kinesis_source, restore_checks_snapshots) {
  uint8_t buf[1024];
  struct ksrc *k = pool_new();
  size_t len;

  len = pack(WEIR__KSRC_SNAPSHOT_VERSION, 2, KPOS_SEQUENCE, "4968", buf);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){buf, len}), 0);
  cr_assert_eq(k->n_restored, 2);
  cr_assert(k->restored_started);
  cr_assert_str_eq(k->restored[1].shard_id, "shardId-000000000001");
  cr_assert_eq(k->restored[1].pos.sub, 3);
  cr_assert(k->restored[1].pos.partial);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){NULL, 0}), 0, "empty part: nothing");
  len = pack(2, 1, KPOS_SEQUENCE, "4968", buf);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){buf, len}), WEIR_EPARSE, "unknown version");
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){(const uint8_t *)"\xff\xff\xff", 3}), WEIR_EPARSE,
               "garbage");
  len = pack(WEIR__KSRC_SNAPSHOT_VERSION, 1, KPOS_SEQUENCE, "", buf);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){buf, len}), WEIR_EPARSE, "no sequence number");
  len = pack(WEIR__KSRC_SNAPSHOT_VERSION, 1, 9, "1", buf);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){buf, len}), WEIR_EPARSE, "unknown kind");
  len = pack(WEIR__KSRC_SNAPSHOT_VERSION, 2, KPOS_TRIM_HORIZON, "", buf);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){buf, len}), 0);
  cr_assert_eq(weir__ksrc_restore(k, (weir_buf){buf, len}), WEIR_ETOOBIG, "over the bound");
  pool_free(k);
}

/* The checkpoint gate's decisions (no server): a child owned by subtask 0 whose parent subtask
 * 1 read to its end waits until a completed checkpoint holds that end; a parent read by the same
 * subtask, one restored as finished, or a job without checkpoints does not hold it. */
Test(kinesis_source, checkpoint_gate_decisions) {
  struct ksrc *src = pool_new();
  struct ksub a, b;
  struct kshard child, parent;
  struct kshard_info *pe;
  struct kgate g;

  src->parallelism = 2;
  src->gate = true;
  src->n_shards = 2;
  pe = &src->shards[0];
  strcpy(pe->shard.shard_id, "shardId-000000000000");
  pe->hash = 1; /* owner: subtask 1 */
  strcpy(src->shards[1].shard.shard_id, "shardId-000000000002");
  strcpy(src->shards[1].shard.parent_shard_id, "shardId-000000000000");
  src->shards[1].hash = 0;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  a.src = b.src = src;
  a.parallelism = b.parallelism = 2;
  b.index = 1;
  memset(&child, 0, sizeof(child));
  strcpy(child.shard_id, "shardId-000000000002");
  strcpy(child.parents[0], "shardId-000000000000");
  child.ti = 1;
  memset(&parent, 0, sizeof(parent));
  strcpy(parent.shard_id, "shardId-000000000000");
  parent.state = KS_READING;
  b.shards = &parent;
  b.n_shards = 1;

  /* Parent still being read: the lineage rule holds the child, not the gate. */
  cr_assert(!weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(!g.held);
  /* Subtask 1 reads it to its end: held, and the first look asks for a checkpoint. */
  parent.state = KS_FINISHED;
  weir__ksrc_mark_finished(&b, &parent, false);
  cr_assert(!weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(g.held && g.ask && g.cross && g.gate);
  cr_assert_eq(g.owner, 1);
  cr_assert_str_eq(g.parent, "shardId-000000000000");
  cr_assert(!weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(g.held && !g.ask, "asked once per parent");
  /* Checkpoint 5 holds the end; 4 completing does not release the child, 6 does (5 failed). */
  weir__ksrc_note_ends(&b, 5);
  cr_assert_eq(pe->end_ckpt, 5);
  weir__ksrc_note_ends(&b, 6);
  cr_assert_eq(pe->end_ckpt, 5, "the first snapshot that holds the end counts");
  weir__ksrc_checkpoint_done(src, 4);
  cr_assert(!weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(g.held);
  weir__ksrc_checkpoint_done(src, 6);
  weir__ksrc_checkpoint_done(src, 3);
  cr_assert_eq(src->completed, 6);
  cr_assert(weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(!g.held && g.cross && g.gate);
  cr_assert_eq(g.completed, 6);
  /* Not yet in a snapshot, but read by the child's own subtask: no wait. */
  pe->end_ckpt = 0;
  src->completed = 0;
  pe->hash = 2;
  cr_assert(weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(!g.cross && !g.held);
  /* Restored as finished (nothing of it read in this run): no wait. */
  pe->hash = 1;
  pe->read_end = false;
  cr_assert(weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(!g.cross && !g.held);
  /* No checkpoints: no wait, the crossing is reported (logged once by the caller). */
  pe->read_end = true;
  src->gate = false;
  cr_assert(weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(g.cross && !g.gate && !g.held);
  /* Parallelism 1: everything on one subtask. */
  src->gate = true;
  src->parallelism = 1;
  a.parallelism = 1;
  cr_assert(weir__ksrc_parents_done(&a, &child, &g));
  cr_assert(!g.cross && !g.held);
  pool_free(src);
}

/* The GetShardIterator request for each kind of position. */
Test(kinesis_source, resume_requests) {
  struct kshard sh;
  struct weir_kinesis_iterator_req req;

  memset(&sh, 0, sizeof(sh));
  strcpy(sh.shard_id, "shardId-000000000007");
  sh.pos.kind = KPOS_SEQUENCE;
  strcpy(sh.pos.seq, "123");
  weir__ksrc_iterator_req(&sh, "s", &req);
  cr_assert_eq(req.type, WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER);
  cr_assert_str_eq(req.sequence_number, "123");
  cr_assert(!sh.skip_active);
  sh.pos.partial = true;
  sh.pos.sub = 4;
  weir__ksrc_iterator_req(&sh, "s", &req);
  cr_assert_eq(req.type, WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER);
  cr_assert(sh.skip_active);
  cr_assert_eq(sh.skip_sub, 4);
  sh.pos.kind = KPOS_AT_TIMESTAMP;
  sh.pos.ts_ms = 1795654800500LL;
  weir__ksrc_iterator_req(&sh, "s", &req);
  cr_assert_eq(req.type, WEIR_KINESIS_ITER_AT_TIMESTAMP);
  cr_assert_eq(req.timestamp_ms, 1795654800500LL);
  cr_assert(!sh.skip_active);
  sh.pos.kind = KPOS_LATEST;
  weir__ksrc_iterator_req(&sh, "s", &req);
  cr_assert_eq(req.type, WEIR_KINESIS_ITER_LATEST);
  sh.pos.kind = KPOS_TRIM_HORIZON;
  weir__ksrc_iterator_req(&sh, "s", &req);
  cr_assert_eq(req.type, WEIR_KINESIS_ITER_TRIM_HORIZON);
}

/* PROFILE credentials come from the named shared-file profile only: a missing profile fails the
 * job even when environment credentials are set; an existing one works. */
Test(kinesis_source, profile_credentials) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  char path[128];
  FILE *f;

  start_server();
  make_stream("s", 1);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, 50), 0);
  make_dir();
  snprintf(path, sizeof(path), "%s/credentials", dir);
  cr_assert_not_null(f = fopen(path, "w"));
  fprintf(f, "[p1]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = secretprofile\n");
  fclose(f);
  cr_assert_eq(setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1), 0);
  cr_assert_eq(setenv("AWS_CONFIG_FILE", "/nonexistent/weir-test-config", 1), 0);
  cr_assert_eq(setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV", 1), 0);
  cr_assert_eq(setenv("AWS_SECRET_ACCESS_KEY", "secretfromenv", 1), 0);
  for (int ok = 0; ok < 2; ok++) {
    weir_job *job;
    int src, rc;

    collect_reset();
    source_config(&sc, streams, 1);
    sc.credentials = WEIR_KINESIS_CREDS_PROFILE;
    sc.client.profile = ok ? "p1" : "nope";
    sc.stop_at_end = true;
    cr_assert_eq(weir_job_create(&job, "profile"), 0);
    cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_callback_sink(job, src, "out", collect_cb, NULL, NULL), 0);
    rc = weir_job_run(job);
    if (ok) {
      cr_assert_eq(rc, 0, "%s", weir_job_error(job));
      assert_all_once(0, 50);
    } else {
      cr_assert_neq(rc, 0, "a missing profile must fail even with environment credentials");
    }
    weir_job_destroy(job);
  }
}
