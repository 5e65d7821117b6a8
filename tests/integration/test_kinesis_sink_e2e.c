/*
 * test_kinesis_sink_e2e.c: the Kinesis sink end to end against kinesalite, read back with the
 * AWS SDK for JavaScript (tests/kinesis-servers/sdk_read_all.js): every record of a
 * checkpointed job in per-key order with several requests in flight; kill -9 and restart cycles
 * losing nothing, with duplicates only from replayed intervals; a target stream per record and
 * explicit hash keys on the expected shard; KPL aggregation de-aggregated exactly by
 * aws-kinesis-agg; dead letters; backpressure while the server is unreachable, then draining;
 * partial failures and throttling injected by the fault proxy. Skipped when `npm ci` has not been
 * run in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/fault_proxy.c"
#include "../support/kinesis_fixture.h"
#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"
#include "connectors/kinesis/sink_int.h"

static struct weir_test_kserver srv;
static struct weir_test_fproxy px;
static weir_kinesis_client *cli;
static char tmp_dir[64];

static void teardown(void) {
  weir_test_fproxy_stop(&px);
  kfx_teardown(&srv, &cli, tmp_dir);
}

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  px.pid = 0;
  px.stdin_fd = -1;
}

static void start_server(void) {
  kfx_start(&srv, &cli, "kinesalite");
  kfx_make_dir(tmp_dir, sizeof(tmp_dir), "weir-ksink-e2e");
}

static void make_stream(const char *stream, uint32_t shards) {
  kfx_make_stream(cli, stream, shards);
}

/* ---- reading back with the SDK ----------------------------------------------------------------
 */

struct rec {
  long idx; /* from the data's first 20 digits; -1 when not a number */
  char pk[64];
  char shard[32];
  char ehk[48];
  uint8_t data[128];
  size_t data_len;
};

struct readback {
  struct rec *v;
  size_t n, cap;
  long kinesis_records;
};

/* Runs sdk_read_all.js and parses its lines into rb (records in shard, then sequence order). */
static void sdk_read(const char *stream, bool deagg, struct readback *rb) {
  char cmd[1024], *line = NULL;
  size_t line_cap = 0;
  bool done = false;
  FILE *f;

  memset(rb, 0, sizeof(*rb));
  rb->kinesis_records = -1;
  snprintf(cmd, sizeof(cmd),
           "cd '%s' && env -u LD_PRELOAD NODE_NO_WARNINGS=1 node sdk_read_all.js '%s' '%s' %s",
           weir_test_kserver_dir(), srv.endpoint, stream, deagg ? "--deagg" : "");
  cr_assert_not_null(f = popen(cmd, "r"));
  while (getline(&line, &line_cap, f) > 0) {
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    struct rec *r;
    const char *b64;
    uint8_t tmp[256];
    int len;

    cr_assert_not_null(o, "bad line from sdk_read_all.js: %s", line);
    if (json_is_true(json_object_get(o, "done"))) {
      rb->kinesis_records = (long)json_integer_value(json_object_get(o, "kinesis_records"));
      done = true;
      json_decref(o);
      continue;
    }
    if (rb->n == rb->cap) {
      rb->cap = rb->cap ? 2 * rb->cap : 4096;
      cr_assert_not_null(rb->v = realloc(rb->v, rb->cap * sizeof(*rb->v)));
    }
    r = &rb->v[rb->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->pk, sizeof(r->pk), "%s", json_string_value(json_object_get(o, "pk")));
    snprintf(r->shard, sizeof(r->shard), "%s", json_string_value(json_object_get(o, "shard")));
    if (json_is_string(json_object_get(o, "ehk")))
      snprintf(r->ehk, sizeof(r->ehk), "%s", json_string_value(json_object_get(o, "ehk")));
    b64 = json_string_value(json_object_get(o, "data_b64"));
    cr_assert(strlen(b64) < 160, "record too long: %s", b64);
    len = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)strlen(b64));
    cr_assert_geq(len, 0);
    len -= (int)(strlen(b64) >= 1 && b64[strlen(b64) - 1] == '=') +
           (int)(strlen(b64) >= 2 && b64[strlen(b64) - 2] == '=');
    r->data_len = (size_t)len < sizeof(r->data) ? (size_t)len : sizeof(r->data);
    memcpy(r->data, tmp, r->data_len);
    r->idx = -1;
    if (r->data_len >= 20) {
      char num[21];

      memcpy(num, r->data, 20);
      num[20] = '\0';
      r->idx = strtol(num, NULL, 10);
    }
    json_decref(o);
  }
  free(line);
  cr_assert_eq(pclose(f), 0, "sdk_read_all.js failed");
  cr_assert(done, "sdk_read_all.js did not finish");
}

/*
 * Checks records "<index>" with keys "k<index mod keys>" for indices 0..n-1: all present; per
 * key, each record follows the previous one of its key (index + keys) or goes back to a replay
 * (index <= previous), never skips forward. Returns the duplicates; *backs = jumps back.
 */
static size_t check_keyed(const struct readback *rb, long n, long keys, size_t *backs) {
  unsigned char *seen = calloc((size_t)n, 1);
  long *last = malloc((size_t)keys * sizeof(long));
  size_t dups = 0;

  *backs = 0;
  for (long k = 0; k < keys; k++)
    last[k] = k - keys; /* so the first record of key k must be k */
  for (size_t i = 0; i < rb->n; i++) {
    const struct rec *r = &rb->v[i];
    char want[32];
    long k;

    cr_assert(r->idx >= 0 && r->idx < n, "unexpected record index %ld", r->idx);
    k = r->idx % keys;
    snprintf(want, sizeof(want), "k%ld", k);
    cr_assert_str_eq(r->pk, want, "record %ld has key %s", r->idx, r->pk);
    if (seen[r->idx]++)
      dups++;
    if (r->idx <= last[k])
      (*backs)++;
    else
      cr_assert_eq(r->idx, last[k] + keys, "key %s: record %ld after %ld (skipped or reordered)",
                   want, r->idx, last[k]);
    last[k] = r->idx;
  }
  for (long i = 0; i < n; i++)
    cr_assert(seen[i], "record %ld is missing", i);
  free(seen);
  free(last);
  return dups;
}

static weir_job *generator_job(uint64_t count, uint32_t keys, weir_generator **gen, int *src) {
  weir_generator_config g = {0};
  weir_job *job;

  g.count = count;
  g.key_count = keys;
  g.value_len = 40;
  g.records_per_poll = 128;
  cr_assert_eq(weir_job_create(&job, "ksink-e2e"), 0);
  cr_assert_eq(weir_generator_create(gen, &g), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", *gen, src), 0);
  return job;
}

static void sink_config(weir_kinesis_sink_config *k, const char *stream, const char *endpoint) {
  weir_kinesis_sink_config_init(k);
  k->stream = stream;
  weir_test_kserver_client_config(&k->client, endpoint);
}

static void run_ok(weir_job *job) {
  int rc = weir_job_run(job);

  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
}

TestSuite(kinesis_sink_e2e, .init = quiet, .fini = teardown, .timeout = 280);

/* ---- every record, per-key order, several requests in flight ------------------------------- */

#define N_ALL 12000
#define KEYS_ALL 101

Test(kinesis_sink_e2e, sdk_reads_every_record_in_key_order) {
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback rb;
  size_t backs, dups;
  int src;
  int64_t calls, entries, recs;

  start_server();
  make_stream("all", 4);
  job = generator_job(N_ALL, KEYS_ALL, &gen, &src);
  sink_config(&k, "all", srv.endpoint);
  k.max_in_flight = 4;
  k.max_buffered_records = 3000;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, tmp_dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 100), 0);
  run_ok(job);
  cr_assert_geq(weir_job_last_checkpoint(job), 1, "no checkpoint completed during the run");
  calls = weir_job_metric_sum(job, "weir_kinesis_sink_put_records_calls_total", NULL);
  entries = weir_job_metric_sum(job, "weir_kinesis_sink_entries_sent_total", NULL);
  recs = weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL);
  cr_assert_eq(recs, N_ALL);
  cr_assert_gt(calls, 0);
  cr_assert_geq(weir_job_metric_sum(job, "weir_kinesis_sink_barrier_flushes_total", NULL), 1);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_buffered_records", NULL), 0);
  fprintf(stderr, "[sdk_reads_every_record] %d keys: %lld PutRecords, %.1f entries per request\n",
          KEYS_ALL, (long long)calls, (double)entries / (double)calls);
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  sdk_read("all", false, &rb);
  cr_assert_eq(rb.n, N_ALL, "read %zu of %d", rb.n, N_ALL);
  dups = check_keyed(&rb, N_ALL, KEYS_ALL, &backs);
  cr_assert_eq(dups, 0);
  cr_assert_eq(backs, 0);
  free(rb.v);
}

/* ---- kill -9 and restart ----------------------------------------------------------------------
 */

#define N_CRASH 20000
#define KEYS_CRASH 23

static pid_t spawn_child(const char *stream) {
  char n[32], keys[32];
  pid_t pid;

  snprintf(n, sizeof(n), "%d", N_CRASH);
  snprintf(keys, sizeof(keys), "%d", KEYS_CRASH);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    execl(WEIR_KSINK_CHILD, WEIR_KSINK_CHILD, srv.endpoint, stream, tmp_dir, n, keys, (char *)NULL);
    _exit(127);
  }
  return pid;
}

Test(kinesis_sink_e2e, kill9_restart_cycles_lose_nothing) {
  struct readback rb;
  size_t backs, dups;
  int status, kills = 0;
  pid_t pid;

  start_server();
  make_stream("crash", 2);
  srand((unsigned)time(NULL));
  for (int cycle = 0; cycle < 4; cycle++) {
    pid = spawn_child("crash");
    usleep((useconds_t)(300 + rand() % 500) * 1000);
    if (kill(pid, SIGKILL) == 0)
      kills++;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
  }
  pid = spawn_child("crash");
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the last run failed (status %d)",
            status);

  sdk_read("crash", false, &rb);
  dups = check_keyed(&rb, N_CRASH, KEYS_CRASH, &backs);
  fprintf(stderr, "[kill9] %d kills, %zu records read, %zu duplicates, %zu replays (per key)\n",
          kills, rb.n, dups, backs);
  cr_assert_geq(kills, 1);
  /* Every duplicate comes from a replay, and each replay starts inside what was sent. */
  cr_assert_leq(backs, (size_t)kills * KEYS_CRASH);
  free(rb.v);
}

/* ---- target stream per record, explicit hash keys ---------------------------------------------
 */

static char ehk_top[48]; /* a hash key in the last shard of stream "odd" */

static int route(weir_ctx *ctx, void *data, const weir_record *in, weir_kinesis_sink_out *out) {
  (void)ctx;
  (void)data;
  if (in->offset % 2 == 1) {
    out->stream = "odd";
    out->explicit_hash_key = weir_buf_str(ehk_top);
  }
  if (in->offset % 10 == 9)
    return 1; /* skipped */
  return 0;
}

Test(kinesis_sink_e2e, target_stream_per_record_and_explicit_hash_key) {
  static struct weir_kinesis_shard shards[8];
  struct weir_kinesis_shard_list l = {shards, 0, 8};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback even, odd;
  const char *last_shard;
  int src;

  start_server();
  make_stream("even", 2);
  make_stream("odd", 4);
  cr_assert_eq(weir__kinesis_list_all_shards(cli, "odd", NULL, &l), 0);
  cr_assert_eq(l.len, 4);
  /* ListShards order is by shard id; the shard whose range ends at 2^128-1 is the last. */
  last_shard = NULL;
  for (size_t i = 0; i < l.len; i++)
    if (strcmp(l.v[i].hash_range.end, "340282366920938463463374607431768211455") == 0) {
      last_shard = l.v[i].shard_id;
      snprintf(ehk_top, sizeof(ehk_top), "%s", l.v[i].hash_range.start);
    }
  cr_assert_not_null(last_shard);
  job = generator_job(1000, 7, &gen, &src);
  sink_config(&k, "even", srv.endpoint);
  k.serializer = route;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  run_ok(job);
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  sdk_read("even", false, &even);
  sdk_read("odd", false, &odd);
  cr_assert_eq(even.n, 500);
  cr_assert_eq(odd.n, 400); /* 500 odd indices, minus the 100 ending in 9 */
  for (size_t i = 0; i < even.n; i++)
    cr_assert_eq(even.v[i].idx % 2, 0);
  for (size_t i = 0; i < odd.n; i++) {
    cr_assert_eq(odd.v[i].idx % 2, 1);
    cr_assert_neq(odd.v[i].idx % 10, 9);
    cr_assert_str_eq(odd.v[i].shard, last_shard, "record %ld on %s", odd.v[i].idx, odd.v[i].shard);
  }
  free(even.v);
  free(odd.v);
}

/* ---- aggregation --------------------------------------------------------------------------------
 */

#define N_AGG 8000
#define KEYS_AGG 50

Test(kinesis_sink_e2e, aggregation_deaggregated_exactly_by_the_sdk) {
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback rb;
  size_t backs, dups;
  int src;

  start_server();
  make_stream("agg", 4);
  job = generator_job(N_AGG, KEYS_AGG, &gen, &src);
  sink_config(&k, "agg", srv.endpoint);
  k.aggregation = true;
  k.aggregation_max_bytes = 64 << 10;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, tmp_dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 200), 0);
  run_ok(job);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL), N_AGG);
  cr_assert_gt(weir_job_metric_sum(job, "weir_kinesis_sink_aggregates_total", NULL), 0);
  /* Every aggregate landed on the shard the map said (the answers' shard ids agree with it):
   * the map was loaded once, never reloaded on wrong-shard evidence. */
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_shard_map_loads_total", NULL), 1);
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  sdk_read("agg", true, &rb);
  fprintf(stderr, "[aggregation] %zu user records in %ld Kinesis records\n", rb.n,
          rb.kinesis_records);
  cr_assert_eq(rb.n, N_AGG);
  cr_assert_lt(rb.kinesis_records, N_AGG / 10);
  dups = check_keyed(&rb, N_AGG, KEYS_AGG, &backs);
  cr_assert_eq(dups, 0);
  cr_assert_eq(backs, 0);
  /* Each user record sits on the shard its key hashes to: the same key, always the same shard. */
  {
    char first_shard[KEYS_AGG][32] = {{0}};

    for (size_t i = 0; i < rb.n; i++) {
      long key = rb.v[i].idx % KEYS_AGG;

      if (first_shard[key][0] == '\0')
        snprintf(first_shard[key], sizeof(first_shard[key]), "%s", rb.v[i].shard);
      cr_assert_str_eq(rb.v[i].shard, first_shard[key]);
    }
  }
  free(rb.v);
}

/* ---- dead letters
 * -------------------------------------------------------------------------------- */

#define BIG_INDEX 5
static uint8_t big_value[(1u << 20) + 10];

static int big_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  (void)ctx;
  (void)data;
  if (in->offset == BIG_INDEX) {
    memset(big_value, 'b', sizeof(big_value));
    out->value = (weir_buf){big_value, sizeof(big_value)};
  }
  return 0;
}

/* Record 17 is refused by the "service" with a code that is not retried. */
static bool refuse_17(void *data, weir_buf key, weir_buf value, const char **code) {
  (void)data;
  (void)key;
  if (value.len >= 20 && strncmp((const char *)value.ptr, "00000000000000000017", 20) == 0) {
    *code = "KMSAccessDeniedException";
    return true;
  }
  return false;
}

Test(kinesis_sink_e2e, dead_letters_when_fail_on_error_is_off) {
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback rb;
  char path[128], line[4096];
  int src, n_lines = 0;
  bool saw_big = false, saw_17 = false;
  FILE *f;

  start_server();
  make_stream("dlq", 1);
  snprintf(path, sizeof(path), "%s/dead.jsonl", tmp_dir);
  job = generator_job(100, 3, &gen, &src);
  cr_assert_eq(weir_job_map(job, src, "grow", big_map, NULL, &src), 0);
  sink_config(&k, "dlq", srv.endpoint);
  k.fail_on_error = false;
  k.dead_letter_path = path;
  weir__kinesis_sink_set_fault_code(refuse_17, NULL);
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  run_ok(job);
  weir__kinesis_sink_set_fault_code(NULL, NULL);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_dead_letters_total", NULL), 2);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_entries_failed_total",
                                   "code=\"KMSAccessDeniedException\""),
               1);
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  cr_assert_not_null(f = fopen(path, "r"));
  /* The big line is longer than the buffer: read the head of each line only. */
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strchr(line, '\n') == NULL) {
      int c;

      while ((c = fgetc(f)) != EOF && c != '\n')
        ;
    }
    n_lines++;
    cr_assert(strstr(line, "{\"v\":1,") == line, "%s", line);
    cr_assert(strstr(line, "\"stream\":\"dlq\"") != NULL, "%s", line);
    if (strstr(line, "\"partition_key\":\"k2\"") != NULL && strstr(line, "\"data_b64\":\"YmJi"))
      saw_big = true; /* "bbb" */
    if (strstr(line, "\"partition_key\":\"k2\"") != NULL &&
        strstr(line, "\"error\":\"KMSAccessDeniedException\"") != NULL)
      saw_17 = true; /* 17 mod 3 = 2 */
  }
  fclose(f);
  cr_assert_eq(n_lines, 2);
  cr_assert(saw_big);
  cr_assert(saw_17);
  sdk_read("dlq", false, &rb);
  cr_assert_eq(rb.n, 98);
  free(rb.v);
}

/* ---- backpressure -----------------------------------------------------------------------------
 */

static _Atomic long passed;

static int count_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  (void)ctx;
  (void)data;
  (void)in;
  (void)out;
  passed++;
  return 0;
}

#define N_BP 30000
#define BP_RECORDS 500
#define BP_BYTES (3u << 20)

Test(kinesis_sink_e2e, backpressure_while_unreachable_then_drains) {
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback rb;
  size_t backs, dups;
  char why[512];
  long a, b;
  int src, rc;

  start_server();
  make_stream("bp", 2);
  rc = weir_test_fproxy_start(&px, srv.endpoint, 7, NULL, why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "proxy: %s", why);
  job = generator_job(N_BP, 13, &gen, &src);
  cr_assert_eq(weir_job_map(job, src, "count", count_map, NULL, &src), 0);
  sink_config(&k, "bp", px.endpoint);
  k.max_buffered_records = BP_RECORDS;
  k.max_buffered_bytes = BP_BYTES;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  /* Unreachable from the first PutRecords on: every one is answered with a connection reset. */
  cr_assert_eq(weir_test_fproxy_set_rules(&px, "[{\"op\":\"PutRecords\",\"fault\":\"reset\"}]"), 0);
  cr_assert_eq(weir_job_start(job), 0);
  /* Wait until the pipeline is blocked: the count stops moving. */
  b = -1;
  for (int i = 0; i < 100; i++) {
    a = passed;
    usleep(300 * 1000);
    b = passed;
    if (a == b && b > 0 && weir_job_metric_sum(job, "weir_kinesis_sink_retries_total", NULL) > 0)
      break;
  }
  cr_assert_eq(a, b, "the pipeline did not block");
  cr_assert_lt(b, N_BP, "everything passed although nothing could be sent");
  cr_assert_leq(weir_job_metric_sum(job, "weir_kinesis_sink_buffered_records", NULL), BP_RECORDS);
  cr_assert_leq(weir_job_metric_sum(job, "weir_kinesis_sink_buffered_bytes", NULL), BP_BYTES);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL), 0);
  cr_assert_gt(weir_job_metric_sum(job, "weir_kinesis_sink_retries_total", NULL), 0);
  /* The server comes back: everything drains and the job ends. */
  cr_assert_eq(weir_test_fproxy_set_rules(&px, "[]"), 0);
  rc = weir_job_wait(job);
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL), N_BP);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  sdk_read("bp", false, &rb);
  dups = check_keyed(&rb, N_BP, 13, &backs);
  cr_assert_eq(dups, 0);
  free(rb.v);
}

/* ---- partial failures and throttling through the fault proxy ------------------------------------
 */

#define N_PX 6000
#define KEYS_PX 31

Test(kinesis_sink_e2e, proxy_partial_failures_and_throttling_keep_order_lose_nothing) {
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  struct readback rb;
  size_t backs, dups;
  char why[512];
  int src, rc;

  start_server();
  make_stream("px", 2);
  rc = weir_test_fproxy_start(
      &px, srv.endpoint, 42,
      "[{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"rate\":0.4,\"fraction\":0.3},"
      "{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"rate\":0.2,\"fraction\":0.5,"
      "\"error_code\":\"InternalFailure\"},"
      "{\"op\":\"PutRecords\",\"fault\":\"throttle\",\"rate\":0.2},"
      "{\"op\":\"PutRecords\",\"fault\":\"http_503\",\"rate\":0.1}]",
      why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "proxy: %s", why);
  job = generator_job(N_PX, KEYS_PX, &gen, &src);
  sink_config(&k, "px", px.endpoint);
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, tmp_dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 100), 0);
  run_ok(job);
  cr_assert_gt(weir_job_metric_sum(job, "weir_kinesis_sink_throttled_total", NULL), 0);
  cr_assert_gt(weir_job_metric_sum(job, "weir_kinesis_sink_entries_failed_total",
                                   "code=\"InternalFailure\""),
               0);
  cr_assert_gt(weir_test_fproxy_injected(&px, "partial_failure"), 0);
  cr_assert_gt(weir_test_fproxy_injected(&px, "throttle"), 0);
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  sdk_read("px", false, &rb);
  dups = check_keyed(&rb, N_PX, KEYS_PX, &backs);
  cr_assert_eq(dups, 0, "%zu duplicates", dups);
  cr_assert_eq(backs, 0);
  cr_assert_eq(rb.n, N_PX);
  free(rb.v);
}
