/*
 * bench_kinesis_sink.c: weir's Kinesis sink vs the AWS SDK for JavaScript v3 PutRecords loop, on
 * the same kinesalite in one run, and the sink with KPL aggregation on vs off.
 *
 * Starts kinesalite (tests/kinesis-servers, after `npm ci` there) and makes one 4-shard stream
 * per run. weir: a job generator -> Kinesis sink writing N records of 100 bytes with a random
 * partition key each, CONCURRENCY requests in flight (max_in_flight), until every record is
 * acknowledged. SDK: tests/kinesis-servers/sdk_put_loop.js, 500 entries per PutRecords and
 * CONCURRENCY calls in flight. Then the sink again with aggregation on (N user records, key
 * "k<i mod 1000>"). Prints records/s and client CPU seconds per 100 K records (process user +
 * system time; the server's CPU is not counted) and the ratios; targets: records/s >= the SDK's,
 * CPU per record <= 1/10 of the SDK's, aggregation on >= 10x the user records/s of off.
 *
 * Usage: bench_kinesis_sink [records, default 200000] [concurrency, default 4] [weir|plain [keys]]
 * ("weir": only the sink's runs, without and with aggregation, for profiling and for measuring
 * batch fill with `keys` distinct partition keys; default 0 = a random key per record; "plain":
 * only the run without aggregation)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <weir/weir.h>

#include "../tests/support/kinesis_server.c"
#include "bench_clock.h"
#include "connectors/kinesis/client_int.h"

#define RECORD_BYTES 100
#define SHARDS 4

static const char *endpoint;

struct result {
  double wall, cpu;
  double per_request; /* entries per PutRecords */
  long kinesis_records;
  long minflt; /* minor page faults of the process during the run */
  long csw;    /* context switches (voluntary and not) of the process during the run */
};

/* generator -> sink; keys = 0: a random partition key per record. */
static int run_weir(const char *stream, size_t n, int conc, bool agg, uint32_t keys,
                    struct result *out) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen = NULL;
  weir_job *job = NULL;
  double t0, c0;
  struct rusage ru0, ru1;
  int src, rc;

  g.count = n;
  g.value_len = RECORD_BYTES;
  g.key_count = keys;
  g.records_per_poll = 512;
  weir_kinesis_sink_config_init(&k);
  k.stream = stream;
  weir_test_kserver_client_config(&k.client, endpoint);
  k.max_in_flight = (size_t)conc;
  k.aggregation = agg;
  getrusage(RUSAGE_SELF, &ru0);
  t0 = bench_wall();
  c0 = bench_cpu_self();
  if ((rc = weir_generator_create(&gen, &g)) == 0 && (rc = weir_job_create(&job, "bench")) == 0 &&
      (rc = weir_job_add_generator(job, "gen", gen, &src)) == 0 &&
      (rc = weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL)) == 0)
    rc = weir_job_run(job);
  out->wall = bench_wall() - t0;
  out->cpu = bench_cpu_self() - c0;
  getrusage(RUSAGE_SELF, &ru1);
  out->minflt = ru1.ru_minflt - ru0.ru_minflt;
  out->csw = ru1.ru_nvcsw - ru0.ru_nvcsw + ru1.ru_nivcsw - ru0.ru_nivcsw;
  if (rc != 0)
    fprintf(stderr, "weir run: %s: %s\n", weir_strerror(rc), job ? weir_job_error(job) : "");
  else {
    int64_t calls = weir_job_metric_sum(job, "weir_kinesis_sink_put_records_calls_total", NULL);
    int64_t sent = weir_job_metric_sum(job, "weir_kinesis_sink_entries_sent_total", NULL);

    out->per_request = calls > 0 ? (double)sent / (double)calls : 0;
    out->kinesis_records = (long)sent;
    if (weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL) != (int64_t)n) {
      fprintf(stderr, "weir run: not every record was acknowledged\n");
      rc = -1;
    }
  }
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  return rc;
}

static int run_sdk(const char *stream, size_t n, int conc, struct result *out) {
  char cmd[1024], line[1024];
  FILE *p;
  json_t *root;

  snprintf(cmd, sizeof(cmd),
           "cd '%s' && NODE_NO_WARNINGS=1 node sdk_put_loop.js '%s' '%s' %zu %d %d",
           weir_test_kserver_dir(), endpoint, stream, n, RECORD_BYTES, conc);
  if ((p = popen(cmd, "r")) == NULL || fgets(line, sizeof(line), p) == NULL) {
    if (p != NULL)
      pclose(p);
    return -1;
  }
  pclose(p);
  if ((root = json_loads(line, 0, NULL)) == NULL)
    return -1;
  out->wall = json_number_value(json_object_get(root, "put_wall"));
  out->cpu = json_number_value(json_object_get(root, "put_cpu"));
  out->per_request = 500;
  json_decref(root);
  return 0;
}

static void row(const char *who, size_t n, const struct result *r) {
  printf("  %-14s %9.0f records/s  %7.3f CPU s/100K records  %6.1f entries/request\n", who,
         (double)n / r->wall, r->cpu * 1e5 / (double)n, r->per_request);
}

int main(int argc, char **argv) {
  struct weir_test_kserver srv;
  struct result w = {0}, s = {0}, a = {0};
  weir_kinesis_client *c;
  weir_kinesis_config cfg;
  char why[512];
  size_t n;
  int conc, rc = 0;

  n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
  conc = argc > 2 ? atoi(argv[2]) : 4;
  if (n == 0 || conc <= 0 || conc > WEIR_KINESIS_SINK_MAX_IN_FLIGHT)
    return 2;
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  if (weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why)) != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "bench_kinesis_sink: %s\n", why);
    return 1;
  }
  endpoint = srv.endpoint;
  weir_test_kserver_client_config(&cfg, endpoint);
  if (weir_kinesis_client_create(&c, &cfg) != 0 ||
      weir__kinesis_create_stream(c, "weir-sink", SHARDS) != 0 ||
      weir__kinesis_create_stream(c, "sdk-put", SHARDS) != 0 ||
      weir__kinesis_create_stream(c, "weir-agg", SHARDS) != 0 ||
      weir__kinesis_wait_active(c, "weir-sink", 20000) != 0 ||
      weir__kinesis_wait_active(c, "sdk-put", 20000) != 0 ||
      weir__kinesis_wait_active(c, "weir-agg", 20000) != 0) {
    weir_test_kserver_stop(&srv);
    return 1;
  }
  weir_kinesis_client_destroy(c);

  printf("kinesalite, %zu records of %d B, %d PutRecords in flight, %d shards\n", n, RECORD_BYTES,
         conc, SHARDS);
  if (argc > 3 && (strcmp(argv[3], "weir") == 0 || strcmp(argv[3], "plain") == 0)) {
    uint32_t keys = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0;

    rc = run_weir("weir-sink", n, conc, false, keys, &w);
    if (rc == 0 && strcmp(argv[3], "weir") == 0)
      rc = run_weir("weir-agg", n, conc, true, keys, &a);
    weir_test_kserver_stop(&srv);
    printf("  %u keys (0 = random)\n", keys);
    row("weir sink", n, &w);
    row("weir sink+agg", n, &a);
    printf("  minor page faults during the run: weir sink %ld, weir sink+agg %ld\n", w.minflt,
           a.minflt);
    printf("  context switches during the run: weir sink %ld, weir sink+agg %ld\n", w.csw, a.csw);
    return rc == 0 ? 0 : 1;
  }
  if (run_weir("weir-sink", n, conc, false, 0, &w) != 0 || run_sdk("sdk-put", n, conc, &s) != 0 ||
      run_weir("weir-agg", n, conc, true, 1000, &a) != 0) {
    fprintf(stderr, "a run failed (is @aws-sdk/client-kinesis installed?)\n");
    rc = 1;
  }
  weir_test_kserver_stop(&srv);
  if (rc != 0)
    return rc;
  row("weir sink", n, &w);
  row("sdk loop", n, &s);
  row("weir sink+agg", n, &a);
  printf("  ratios weir/sdk: records/s %.2f (target >= 1.0), CPU per record %.3f (target <= 0.1)\n",
         s.wall / w.wall, w.cpu / s.cpu);
  printf("  aggregation on/off: user records/s %.1fx (target >= 10x); %ld Kinesis records for %zu "
         "user records\n",
         w.wall / a.wall, a.kinesis_records, n);
  return 0;
}
