/*
 * bench_kinesis_source.c: weir's Kinesis source draining a stream into a null sink, versus an
 * AWS SDK for JavaScript v3 GetRecords loop (tests/kinesis-servers/sdk_get_loop.js), on the same
 * kinesalite and the same stream in one run.
 *
 * Starts kinesalite (tests/kinesis-servers, after `npm ci` there), fills one 4-shard stream with
 * N records of 100 bytes, then reads all of it from TRIM_HORIZON with the same GetRecords Limit
 * (10000): first the SDK loop (all 4 shards concurrently), then the weir job kinesis source ->
 * null sink with checkpoints every second (stop_at_end), once with source parallelism 1 and once
 * with 4. Prints records/s and client CPU seconds per 100 K records for each, and the ratios to
 * the SDK (targets: records/s >= 1.0x, CPU per record <= 1/10). The server's CPU is not counted.
 *
 * Usage: bench_kinesis_source [records]   (default 100000; the figure is 500000, also
 *        selected by WEIR_BENCH_FULL=1)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../tests/support/kinesis_server.c"
#include "bench_clock.h"
#include "connectors/kinesis/client_int.h"
#include "weir/weir.h"

#define RECORD_BYTES 100
#define SHARDS 4
#define PUTTERS 4
#define LIMIT 10000

static const char *endpoint;
static atomic_size_t next_index;
static size_t total;
static atomic_int failures;
static atomic_size_t sunk;

static weir_kinesis_client *connect_client(void) {
  weir_kinesis_config cfg;
  weir_kinesis_client *c = NULL;

  weir_test_kserver_client_config(&cfg, endpoint);
  if (weir_kinesis_client_create(&c, &cfg) != 0) {
    fprintf(stderr, "cannot make a client\n");
    exit(1);
  }
  return c;
}

static void *put_worker(void *arg) {
  static _Thread_local struct weir_kinesis_put_entry e[WEIR_KINESIS_PUT_MAX_RECORDS];
  static _Thread_local struct weir_kinesis_put_result res[WEIR_KINESIS_PUT_MAX_RECORDS];
  static _Thread_local uint8_t data[WEIR_KINESIS_PUT_MAX_RECORDS][RECORD_BYTES];
  static _Thread_local char keys[WEIR_KINESIS_PUT_MAX_RECORDS][24];
  weir_kinesis_client *c = connect_client();
  const char *stream = arg;

  for (;;) {
    size_t first = atomic_fetch_add(&next_index, WEIR_KINESIS_PUT_MAX_RECORDS), n, failed;

    if (first >= total)
      break;
    n = total - first < WEIR_KINESIS_PUT_MAX_RECORDS ? total - first : WEIR_KINESIS_PUT_MAX_RECORDS;
    for (size_t i = 0; i < n; i++) {
      size_t idx = first + i;

      memset(data[i], (int)(idx & 0xff), RECORD_BYTES);
      memcpy(data[i], &idx, sizeof(idx));
      snprintf(keys[i], sizeof(keys[i]), "pk-%zu", idx);
      e[i] = (struct weir_kinesis_put_entry){{data[i], RECORD_BYTES}, weir_buf_str(keys[i]), NULL};
    }
    while (n > 0) {
      size_t k = 0;

      if (weir__kinesis_put_records(c, stream, e, n, res, &failed) != 0) {
        atomic_fetch_add(&failures, 1);
        break;
      }
      for (size_t i = 0; i < n; i++)
        if (!res[i].ok)
          e[k++] = e[i];
      n = k;
    }
  }
  weir_kinesis_client_destroy(c);
  return NULL;
}

static int null_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  (void)recs;
  atomic_fetch_add_explicit(&sunk, n, memory_order_relaxed);
  return 0;
}

struct result {
  double wall, cpu;
  size_t got;
  uint64_t checkpoints;
};

static int run_weir(const char *stream, int par, struct result *out) {
  const char *streams[] = {stream};
  weir_kinesis_source_config sc;
  weir_checkpoint_stats st;
  char dir[64] = "/tmp/weir-bench-ksrc-XXXXXX", cmd[128];
  weir_job *job = NULL;
  double t0, c0;
  int src, snk, rc;

  if (mkdtemp(dir) == NULL)
    return WEIR_EIO;
  atomic_store(&sunk, 0);
  weir_kinesis_source_config_init(&sc);
  sc.streams = streams;
  sc.n_streams = 1;
  weir_test_kserver_client_config(&sc.client, endpoint);
  sc.initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
  sc.getrecords_max = LIMIT;
  sc.stop_at_end = true;
  t0 = bench_wall();
  c0 = bench_cpu_self();
  if ((rc = weir_job_create(&job, "bench-ksrc")) != 0 ||
      (rc = weir_job_set_checkpoint_dir(job, dir)) != 0 ||
      (rc = weir_job_set_checkpoint_interval(job, 1000)) != 0 ||
      (rc = weir_job_add_kinesis_source(job, "kinesis", &sc, &src)) != 0 ||
      (rc = weir_job_set_parallelism(job, src, par)) != 0 ||
      (rc = weir_job_add_callback_sink(job, src, "null", null_sink, NULL, &snk)) != 0 ||
      (rc = weir_job_set_parallelism(job, snk, par)) != 0 || (rc = weir_job_run(job)) != 0)
    fprintf(stderr, "weir job: %s: %s\n", weir_strerror(rc), job ? weir_job_error(job) : "");
  out->wall = bench_wall() - t0;
  out->cpu = bench_cpu_self() - c0;
  out->got = atomic_load(&sunk);
  weir_job_checkpoint_stats(job, &st);
  out->checkpoints = st.completed;
  weir_job_destroy(job);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
  return rc;
}

static int run_sdk(const char *stream, struct result *out) {
  char cmd[1024], line[1024];
  FILE *p;
  json_t *root;

  snprintf(cmd, sizeof(cmd), "cd '%s' && node sdk_get_loop.js '%s' '%s' %d 2>/dev/null",
           weir_test_kserver_dir(), endpoint, stream, LIMIT);
  if ((p = popen(cmd, "r")) == NULL || fgets(line, sizeof(line), p) == NULL) {
    if (p != NULL)
      pclose(p);
    return -1;
  }
  pclose(p);
  if ((root = json_loads(line, 0, NULL)) == NULL)
    return -1;
  out->wall = json_number_value(json_object_get(root, "wall"));
  out->cpu = json_number_value(json_object_get(root, "cpu"));
  out->got = (size_t)json_integer_value(json_object_get(root, "got"));
  json_decref(root);
  return 0;
}

static void print_row(const char *who, const struct result *r, const struct result *base) {
  double rps = (double)r->got / r->wall, cpu = r->cpu * 1e5 / (double)r->got;

  printf("  %-14s %9.0f rec/s  %7.4f CPU s/100K  read %zu", who, rps, cpu, r->got);
  if (base != NULL)
    printf("  | vs sdk: rec/s %.2fx, CPU/record %.3fx, %llu checkpoints",
           rps / ((double)base->got / base->wall), cpu / (base->cpu * 1e5 / (double)base->got),
           (unsigned long long)r->checkpoints);
  printf("\n");
}

int main(int argc, char **argv) {
  struct weir_test_kserver srv;
  struct result s = {0}, w1 = {0}, w4 = {0};
  pthread_t th[PUTTERS];
  weir_kinesis_client *c;
  char why[512];
  const char *full = getenv("WEIR_BENCH_FULL");
  int ok;

  total = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10)
                   : (full != NULL && full[0] == '1' ? 500000 : 100000);
  if (total == 0)
    return 2;
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  if (weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why)) != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "bench_kinesis_source: %s\n", why);
    return 1;
  }
  endpoint = srv.endpoint;
  c = connect_client();
  if (weir__kinesis_create_stream(c, "bench", SHARDS) != 0 ||
      weir__kinesis_wait_active(c, "bench", 20000) != 0) {
    weir_test_kserver_stop(&srv);
    return 1;
  }
  weir_kinesis_client_destroy(c);
  for (int i = 0; i < PUTTERS; i++)
    pthread_create(&th[i], NULL, put_worker, (void *)"bench");
  for (int i = 0; i < PUTTERS; i++)
    pthread_join(th[i], NULL);

  printf("kinesalite, %zu records of %d B over %d shards, GetRecords Limit %d\n", total,
         RECORD_BYTES, SHARDS, LIMIT);
  if (run_sdk("bench", &s) != 0) {
    fprintf(stderr, "the SDK run failed (is @aws-sdk/client-kinesis installed?)\n");
    weir_test_kserver_stop(&srv);
    return 1;
  }
  ok = run_weir("bench", 1, &w1) == 0 && run_weir("bench", 4, &w4) == 0;
  weir_test_kserver_stop(&srv);
  print_row("sdk v3 loop", &s, NULL);
  print_row("weir p=1", &w1, &s);
  print_row("weir p=4", &w4, &s);
  printf("  targets: rec/s >= 1.0x sdk, CPU per record <= 0.1x sdk; put errors: %d\n",
         atomic_load(&failures));
  return ok && atomic_load(&failures) == 0 && s.got == total && w1.got == total && w4.got == total
             ? 0
             : 1;
}
