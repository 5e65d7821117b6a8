/*
 * bench_kinesis_put_get.c: weir's Kinesis client vs the AWS SDK for JavaScript v3, on the same
 * kinesalite in one run.
 *
 * Starts kinesalite (tests/kinesis-servers, after `npm ci` there), makes one 4-shard stream per
 * client, and for each client puts N records of 100 bytes with PutRecords (500 per call,
 * CONCURRENCY calls in flight) and then drains every shard with GetRecords. Prints records/s
 * and client CPU seconds per 100 K records for both, and the ratios (targets: records/s >= the
 * SDK's; CPU per record <= 1/10 of the SDK's). The server's own CPU is not counted for either.
 *
 * Usage: bench_kinesis_put_get [records, default 200000] [concurrency, default 4]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../tests/support/kinesis_server.c"
#include "bench_clock.h"
#include "connectors/kinesis/client_int.h"

#define RECORD_BYTES 100
#define SHARDS 4
#define MAX_THREADS 16

static const char *endpoint;
static atomic_size_t next_index;
static size_t total;
static atomic_size_t got_records;
static atomic_int failures;

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
      memcpy(data[i], &idx, sizeof(idx) < RECORD_BYTES ? sizeof(idx) : RECORD_BYTES);
      snprintf(keys[i], sizeof(keys[i]), "pk-%zu", idx);
      e[i] = (struct weir_kinesis_put_entry){{data[i], RECORD_BYTES}, weir_buf_str(keys[i]), NULL};
    }
    /* Resend failed entries until none is left (neither local server fails any). */
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

struct drain_job {
  const char *stream;
  struct weir_kinesis_shard_list *shards;
  atomic_size_t *next_shard;
};

static void *get_worker(void *arg) {
  struct drain_job *job = arg;
  weir_kinesis_client *c = connect_client();
  struct weir_kinesis_records r;
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];

  weir__kinesis_records_init(&r);
  for (;;) {
    size_t s = atomic_fetch_add(job->next_shard, 1);
    struct weir_kinesis_iterator_req req;
    if (s >= job->shards->len)
      break;
    req = (struct weir_kinesis_iterator_req){job->stream, job->shards->v[s].shard_id,
                                             WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
    if (weir__kinesis_get_shard_iterator(c, &req, it) != 0) {
      atomic_fetch_add(&failures, 1);
      continue;
    }
    for (;;) {
      if (weir__kinesis_get_records(c, it, WEIR_KINESIS_GET_MAX_RECORDS, &r) != 0) {
        atomic_fetch_add(&failures, 1);
        break;
      }
      atomic_fetch_add(&got_records, r.n);
      if (r.n == 0 || !r.has_next)
        break;
      strcpy(it, r.next_iterator);
    }
  }
  weir__kinesis_records_free(&r);
  weir_kinesis_client_destroy(c);
  return NULL;
}

struct result {
  double put_wall, put_cpu, get_wall, get_cpu;
  size_t got;
};

static void run_weir(const char *stream, int conc, struct result *out) {
  pthread_t th[MAX_THREADS];
  struct weir_kinesis_shard sh[SHARDS * 2];
  struct weir_kinesis_shard_list shards = {sh, 0, SHARDS * 2};
  atomic_size_t next_shard = 0;
  struct drain_job job = {stream, &shards, &next_shard};
  weir_kinesis_client *c = connect_client();
  double t0, c0;

  t0 = bench_wall();
  c0 = bench_cpu_self();
  for (int i = 0; i < conc; i++)
    pthread_create(&th[i], NULL, put_worker, (void *)stream);
  for (int i = 0; i < conc; i++)
    pthread_join(th[i], NULL);
  out->put_wall = bench_wall() - t0;
  out->put_cpu = bench_cpu_self() - c0;

  t0 = bench_wall();
  c0 = bench_cpu_self();
  if (weir__kinesis_list_all_shards(c, stream, NULL, &shards) != 0)
    exit(1);
  for (int i = 0; i < conc; i++)
    pthread_create(&th[i], NULL, get_worker, &job);
  for (int i = 0; i < conc; i++)
    pthread_join(th[i], NULL);
  out->get_wall = bench_wall() - t0;
  out->get_cpu = bench_cpu_self() - c0;
  out->got = atomic_load(&got_records);
  weir_kinesis_client_destroy(c);
}

static int run_sdk(const char *stream, int conc, struct result *out) {
  char cmd[1024], line[1024];
  FILE *p;
  json_t *root;

  snprintf(cmd, sizeof(cmd), "cd '%s' && node sdk_put_get.js '%s' '%s' %zu %d %d",
           weir_test_kserver_dir(), endpoint, stream, total, RECORD_BYTES, conc);
  if ((p = popen(cmd, "r")) == NULL || fgets(line, sizeof(line), p) == NULL) {
    if (p != NULL)
      pclose(p);
    return -1;
  }
  pclose(p);
  if ((root = json_loads(line, 0, NULL)) == NULL)
    return -1;
  out->put_wall = json_number_value(json_object_get(root, "put_wall"));
  out->put_cpu = json_number_value(json_object_get(root, "put_cpu"));
  out->get_wall = json_number_value(json_object_get(root, "get_wall"));
  out->get_cpu = json_number_value(json_object_get(root, "get_cpu"));
  out->got = (size_t)json_integer_value(json_object_get(root, "got"));
  json_decref(root);
  return 0;
}

static void print_row(const char *who, const struct result *r) {
  printf(
      "  %-5s put %8.0f rec/s  %6.3f CPU s/100K | get %8.0f rec/s  %6.3f CPU s/100K | read %zu\n",
      who, (double)total / r->put_wall, r->put_cpu * 1e5 / (double)total,
      (double)r->got / r->get_wall, r->get_cpu * 1e5 / (double)total, r->got);
}

int main(int argc, char **argv) {
  struct weir_test_kserver srv;
  struct result w = {0}, s = {0};
  weir_kinesis_client *c;
  char why[512];
  int conc;

  total = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 200000;
  conc = argc > 2 ? atoi(argv[2]) : 4;
  if (total == 0 || conc <= 0 || conc > MAX_THREADS)
    return 2;
  if (weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why)) != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "bench_kinesis_put_get: %s\n", why);
    return 1;
  }
  endpoint = srv.endpoint;
  c = connect_client();
  if (weir__kinesis_create_stream(c, "weir-bench", SHARDS) != 0 ||
      weir__kinesis_create_stream(c, "sdk-bench", SHARDS) != 0 ||
      weir__kinesis_wait_active(c, "weir-bench", 20000) != 0 ||
      weir__kinesis_wait_active(c, "sdk-bench", 20000) != 0) {
    weir_test_kserver_stop(&srv);
    return 1;
  }
  weir_kinesis_client_destroy(c);

  printf("kinesalite, %zu records of %d B, PutRecords x500, %d in flight, %d shards\n", total,
         RECORD_BYTES, conc, SHARDS);
  run_weir("weir-bench", conc, &w);
  if (run_sdk("sdk-bench", conc, &s) != 0) {
    fprintf(stderr, "the SDK run failed (is @aws-sdk/client-kinesis installed?)\n");
    weir_test_kserver_stop(&srv);
    return 1;
  }
  weir_test_kserver_stop(&srv);
  print_row("weir", &w);
  print_row("sdk", &s);
  printf("  ratios weir/sdk: put rec/s %.2f, get rec/s %.2f; CPU per record: put %.3f, get %.3f\n",
         s.put_wall / w.put_wall, (double)w.got / w.get_wall / ((double)s.got / s.get_wall),
         w.put_cpu / s.put_cpu, w.get_cpu / s.get_cpu);
  printf("  targets: rec/s >= sdk, CPU per record <= 0.1 x sdk; errors: %d\n",
         atomic_load(&failures));
  return atomic_load(&failures) == 0 && w.got == total && s.got == total ? 0 : 1;
}
