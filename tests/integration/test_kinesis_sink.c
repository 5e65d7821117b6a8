/*
 * test_kinesis_sink.c: the Kinesis sink in whole jobs against kinesalite: every record written
 * exactly once in per-key order with checkpoints running, oversized records failing the job
 * with a message naming stream and size, and an unreachable endpoint failing cleanly. Tests
 * that need the server are skipped when `npm ci` has not been run in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/kinesis_fixture.h"
#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"
#include "connectors/kinesis/sink_int.h"

static struct weir_test_kserver srv;
static weir_kinesis_client *cli;
static char ckpt_dir[64];

static void teardown(void) {
  kfx_teardown(&srv, &cli, ckpt_dir);
}

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
}

/* Starts kinesalite (or skips), connects the test's own client and makes `stream` ACTIVE. */
static void start_with_stream(const char *stream, uint32_t shards) {
  kfx_start(&srv, &cli, "kinesalite");
  kfx_make_stream(cli, stream, shards);
}

static void make_ckpt_dir(void) {
  kfx_make_dir(ckpt_dir, sizeof(ckpt_dir), "weir-ksink");
}

/* ---- reading the stream back -------------------------------------------------------------- */

#define N_RECORDS 3000
#define N_KEYS 37
#define MAX_SHARDS 8

struct readback {
  unsigned char seen[N_RECORDS];
  long last_per_key[N_KEYS]; /* last index read per key, -1 = none */
  size_t total;
  size_t dups;
  size_t order_violations;
};

/* Reads every shard from TRIM_HORIZON to the end and checks each record: value
 * "<index, 20 digits>xxx...", partition key "k<index mod N_KEYS>". */
static void read_back(const char *stream, struct readback *rb) {
  static struct weir_kinesis_shard shards[MAX_SHARDS];
  struct weir_kinesis_shard_list l = {shards, 0, MAX_SHARDS};
  struct weir_kinesis_records got;
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];

  memset(rb, 0, sizeof(*rb));
  for (int k = 0; k < N_KEYS; k++)
    rb->last_per_key[k] = -1;
  cr_assert_eq(weir__kinesis_list_all_shards(cli, stream, NULL, &l), 0);
  weir__kinesis_records_init(&got);
  for (size_t s = 0; s < l.len; s++) {
    struct weir_kinesis_iterator_req req = {stream, l.v[s].shard_id, WEIR_KINESIS_ITER_TRIM_HORIZON,
                                            NULL, 0};
    int empty = 0;

    cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &req, it), 0);
    while (empty < 2) {
      cr_assert_eq(weir__kinesis_get_records(cli, it, 10000, &got), 0);
      empty = got.n == 0 ? empty + 1 : 0;
      for (size_t i = 0; i < got.n; i++) {
        const struct weir_kinesis_record *r = &got.recs[i];
        char num[21], key[16];
        long idx;

        cr_assert_geq(r->data.len, 20);
        memcpy(num, r->data.ptr, 20);
        num[20] = '\0';
        idx = strtol(num, NULL, 10);
        cr_assert(idx >= 0 && idx < N_RECORDS, "bad record '%s'", num);
        snprintf(key, sizeof(key), "k%ld", idx % N_KEYS);
        cr_assert_eq(r->partition_key.len, strlen(key));
        cr_assert_eq(memcmp(r->partition_key.ptr, key, strlen(key)), 0);
        if (rb->seen[idx]++)
          rb->dups++;
        if (idx < rb->last_per_key[idx % N_KEYS])
          rb->order_violations++;
        rb->last_per_key[idx % N_KEYS] = idx;
        rb->total++;
      }
      if (!got.has_next)
        break;
      strcpy(it, got.next_iterator);
    }
  }
  weir__kinesis_records_free(&got);
}

static weir_job *job_with_generator(const weir_generator_config *gcfg, weir_generator **gen,
                                    int *src) {
  weir_job *job;

  cr_assert_eq(weir_job_create(&job, "ksink"), 0);
  cr_assert_eq(weir_generator_create(gen, gcfg), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", *gen, src), 0);
  return job;
}

TestSuite(kinesis_sink, .init = quiet, .fini = teardown, .timeout = 240);

/* Generator -> sink with checkpoints every 50 ms and a small buffer (backpressure flushes,
 * linger flushes and barrier flushes all happen): every record lands exactly once, in per-key
 * order. */
Test(kinesis_sink, every_record_once_in_key_order) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback *rb = calloc(1, sizeof(*rb));
  int src, rc;

  start_with_stream("out", 2);
  make_ckpt_dir();
  g.count = N_RECORDS;
  g.key_count = N_KEYS;
  g.value_len = 64;
  g.records_per_poll = 64;
  job = job_with_generator(&g, &gen, &src);
  weir_kinesis_sink_config_init(&k);
  k.stream = "out";
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  k.max_buffered_records = 256;
  k.max_request_records = 100;
  k.linger_ms = 20;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, ckpt_dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 50), 0);
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  cr_assert_geq(weir_job_last_checkpoint(job), 1, "no checkpoint completed during the run");
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  read_back("out", rb);
  cr_assert_eq(rb->dups, 0, "%zu duplicates", rb->dups);
  cr_assert_eq(rb->order_violations, 0, "%zu per-key order violations", rb->order_violations);
  cr_assert_eq(rb->total, N_RECORDS, "read %zu of %d", rb->total, N_RECORDS);
  for (int i = 0; i < N_RECORDS; i++)
    cr_assert_eq(rb->seen[i], 1, "record %d seen %d times", i, rb->seen[i]);
  free(rb);
}

/* A fixed partition key: one key, so every request holds one entry and the whole stream is in
 * order. */
Test(kinesis_sink, fixed_key_total_order) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct weir_kinesis_shard_list l;
  static struct weir_kinesis_shard shards[MAX_SHARDS];
  struct weir_kinesis_records got;
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  long last = -1, n = 0;
  int src, rc;

  start_with_stream("one", 1);
  g.count = 200;
  job = job_with_generator(&g, &gen, &src);
  weir_kinesis_sink_config_init(&k);
  k.stream = "one";
  k.pk_mode = WEIR_KINESIS_PK_FIXED;
  k.partition_key = "only";
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  l = (struct weir_kinesis_shard_list){shards, 0, MAX_SHARDS};
  cr_assert_eq(weir__kinesis_list_all_shards(cli, "one", NULL, &l), 0);
  cr_assert_eq(l.len, 1);
  struct weir_kinesis_iterator_req req = {"one", l.v[0].shard_id, WEIR_KINESIS_ITER_TRIM_HORIZON,
                                          NULL, 0};
  cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &req, it), 0);
  weir__kinesis_records_init(&got);
  cr_assert_eq(weir__kinesis_get_records(cli, it, 10000, &got), 0);
  for (size_t i = 0; i < got.n; i++) {
    long idx = strtol((const char *)got.recs[i].data.ptr, NULL, 10);
    cr_assert_eq(idx, last + 1, "record %ld after %ld", idx, last);
    cr_assert_eq(got.recs[i].partition_key.len, 4);
    last = idx;
    n++;
  }
  weir__kinesis_records_free(&got);
  cr_assert_eq(n, 200);
}

/* Linger off and a large buffer: nothing is sent until a barrier arrives; when the checkpoint
 * completes, every record pushed before it is in the stream. */
Test(kinesis_sink, barrier_flushes_before_checkpoint_completes) {
  weir_kinesis_sink_config k;
  weir_push_source *push;
  weir_job *job;
  struct readback *rb = calloc(1, sizeof(*rb));
  static weir_record recs[100];
  static char vals[100][24], keys[100][8];
  int src, rc;

  start_with_stream("ckpt", 2);
  make_ckpt_dir();
  cr_assert_eq(weir_job_create(&job, "ksink"), 0);
  cr_assert_eq(weir_push_source_create(&push, 0), 0);
  cr_assert_eq(weir_job_add_push_source(job, "push", push, &src), 0);
  weir_kinesis_sink_config_init(&k);
  k.stream = "ckpt";
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  k.linger_ms = -1;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, ckpt_dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 3600000), 0);
  cr_assert_eq(weir_job_start(job), 0);
  for (int i = 0; i < 100; i++) {
    snprintf(vals[i], sizeof(vals[i]), "%020d", i);
    snprintf(keys[i], sizeof(keys[i]), "k%d", i % N_KEYS);
    recs[i] = weir_record_init();
    recs[i].value = (weir_buf){(const uint8_t *)vals[i], 20};
    recs[i].key = (weir_buf){(const uint8_t *)keys[i], strlen(keys[i])};
  }
  cr_assert_eq(weir_push_source_push(push, recs, 100), 0);
  usleep(500 * 1000); /* the records reach the sink (buffer timeout 100 ms) */
  read_back("ckpt", rb);
  cr_assert_eq(rb->total, 0, "sent before any barrier: %zu", rb->total);

  cr_assert_eq(weir_job_trigger_checkpoint(job), 0);
  for (int i = 0; i < 200 && weir_job_last_checkpoint(job) == 0; i++)
    usleep(50 * 1000);
  cr_assert_geq(weir_job_last_checkpoint(job), 1, "no checkpoint completed");
  read_back("ckpt", rb);
  cr_assert_eq(rb->total, 100, "in the stream at checkpoint completion: %zu", rb->total);
  cr_assert_eq(rb->dups, 0);
  cr_assert_eq(rb->order_violations, 0);

  cr_assert_eq(weir_push_source_close(push), 0);
  rc = weir_job_wait(job);
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_push_source_destroy(push);
  free(rb);
}

/* Injected per-entry failures (ProvisionedThroughputExceededException, as the service reports
 * them): every 3rd record fails its first attempt, every 7th its first three. */
#define N_FAULT 1000
static int attempts[N_FAULT];

static bool inject(void *data, weir_buf key, weir_buf value) {
  char num[21];
  long idx;

  (void)data;
  (void)key;
  memcpy(num, value.ptr, 20);
  num[20] = '\0';
  idx = strtol(num, NULL, 10);
  if (idx < 0 || idx >= N_FAULT)
    return false;
  attempts[idx]++;
  if (idx % 7 == 0)
    return attempts[idx] <= 3;
  return idx % 3 == 0 && attempts[idx] == 1;
}

/* Only the failed entries are resent (each record is attempted exactly 1 + its injected
 * failures times), nothing is lost or duplicated, and per-key order holds across retries. */
Test(kinesis_sink, partial_failures_resend_only_failed_entries_in_order) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback *rb = calloc(1, sizeof(*rb));
  int src, rc;

  start_with_stream("faults", 2);
  make_ckpt_dir();
  g.count = N_FAULT;
  g.key_count = N_KEYS;
  g.value_len = 40;
  job = job_with_generator(&g, &gen, &src);
  weir_kinesis_sink_config_init(&k);
  k.stream = "faults";
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  k.max_buffered_records = 400;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, ckpt_dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 100), 0);
  weir__kinesis_sink_set_fault(inject, NULL);
  rc = weir_job_run(job);
  weir__kinesis_sink_set_fault(NULL, NULL);
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  for (int i = 0; i < N_FAULT; i++) {
    int want = i % 7 == 0 ? 4 : i % 3 == 0 ? 2 : 1;
    cr_assert_eq(attempts[i], want, "record %d attempted %d times, expected %d", i, attempts[i],
                 want);
  }
  read_back("faults", rb);
  cr_assert_eq(rb->dups, 0, "%zu duplicates", rb->dups);
  cr_assert_eq(rb->order_violations, 0, "%zu per-key order violations", rb->order_violations);
  cr_assert_eq(rb->total, N_FAULT, "read %zu of %d", rb->total, N_FAULT);
  free(rb);
}

/* The server goes away mid-run: the sink retries without limit, so the job blocks instead of
 * failing; a cancel ends it promptly with WEIR_ECANCELED (not an earlier failure). */
Test(kinesis_sink, stopped_server_blocks_until_cancel) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct timespec t0, t1;
  int src, rc;

  start_with_stream("gone", 1);
  g.count = 0; /* unbounded */
  g.key_count = N_KEYS;
  job = job_with_generator(&g, &gen, &src);
  weir_kinesis_sink_config_init(&k);
  k.stream = "gone";
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  k.max_buffered_records = 500;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_start(job), 0);
  usleep(500 * 1000);
  weir_test_kserver_stop(&srv);
  usleep(1500 * 1000);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  weir_job_cancel(job);
  rc = weir_job_wait(job);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  cr_assert_eq(rc, WEIR_ECANCELED, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  cr_assert_lt(t1.tv_sec - t0.tv_sec, 10, "cancel took %ld s", (long)(t1.tv_sec - t0.tv_sec));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}

/* Record 5 is 1 MiB + 1 byte of data: over the per-record limit with its key. */
#define BIG_INDEX 5
#define BIG_LEN ((1u << 20) + 1)

static uint8_t big_value[BIG_LEN];

/* The generator's values are bounded (64 KiB): a map makes record BIG_INDEX large. */
static int big_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  (void)ctx;
  (void)data;
  if (in->offset == BIG_INDEX) {
    memset(big_value, 'b', sizeof(big_value));
    out->value = (weir_buf){big_value, sizeof(big_value)};
  }
  return 0;
}

Test(kinesis_sink, oversized_record_fails_naming_stream_and_size) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  char size[32];
  int src, rc;

  start_with_stream("big-stream", 1);
  g.count = 10;
  job = job_with_generator(&g, &gen, &src);
  cr_assert_eq(weir_job_map(job, src, "grow", big_map, NULL, &src), 0);
  weir_kinesis_sink_config_init(&k);
  k.stream = "big-stream";
  k.pk_mode = WEIR_KINESIS_PK_FIXED;
  k.partition_key = "p";
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  rc = weir_job_run(job);
  cr_assert_eq(rc, WEIR_ETOOBIG, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  snprintf(size, sizeof(size), "%u bytes", BIG_LEN + 1);
  cr_assert(strstr(weir_job_error(job), "big-stream") != NULL, "%s", weir_job_error(job));
  cr_assert(strstr(weir_job_error(job), size) != NULL, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}

/* Nothing listens on the endpoint: the sink fails at open with a message naming the stream,
 * after a few short retries, instead of hanging. */
Test(kinesis_sink, unreachable_endpoint_fails_cleanly) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  int src, rc;

  g.count = 100;
  job = job_with_generator(&g, &gen, &src);
  weir_kinesis_sink_config_init(&k);
  k.stream = "nowhere";
  weir_test_kserver_client_config(&k.client, "http://127.0.0.1:1");
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  rc = weir_job_run(job);
  cr_assert_neq(rc, 0);
  cr_assert(strstr(weir_job_error(job), "nowhere") != NULL, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}

Test(kinesis_sink, config_validation) {
  weir_kinesis_sink_config k;
  weir_job *job;
  int src;
  weir_generator *gen;
  weir_generator_config g = {0};

  g.count = 1;
  job = job_with_generator(&g, &gen, &src);
  weir_kinesis_sink_config_init(&k);
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL); /* no stream */
  k.stream = "s";
  k.max_request_records = 501;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.max_request_records = 0;
  k.max_request_bytes = (10u << 20) + 1;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.max_request_bytes = 0;
  k.pk_mode = WEIR_KINESIS_PK_FIXED; /* without a key */
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.partition_key = "x";
  k.max_in_flight = WEIR_KINESIS_SINK_MAX_IN_FLIGHT + 1;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.max_in_flight = 0;
  k.aggregation_max_bytes = 10; /* below the KPL minimum */
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.aggregation_max_bytes = 0;
  k.rate_mode = (weir_kinesis_rate_mode)7;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.rate_mode = WEIR_KINESIS_RATE_NONE;
  k.dead_letter_path = "";
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), WEIR_EINVAL);
  k.dead_letter_path = NULL;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "a", &k, NULL), 0);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}
