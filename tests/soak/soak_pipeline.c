/*
 * soak_pipeline.c: the soak run (issue 9). A steady pipeline for a given time under the fault
 * proxy:
 *
 *   producer thread --PutRecords--> proxy --> kinesalite "soak-in" (2 shards)
 *   job: Kinesis source (JSON) -> json_key_by("k") -> running keyed count (GLOBAL window)
 *        -> Kinesis sink "soak-out", checkpoints every second, everything through the proxy
 *
 * The proxy (tests/support/fault_proxy.js) injects throttling, 500 InternalFailure and
 * PutRecords partial failures at low rates; none of these forwards the request, so nothing is
 * written twice and the counts below must match exactly.
 *
 * Prints RSS (VmRSS of this process: the job, not the node servers) after the warm-up, every
 * report interval and at the end; records produced / read / written; checkpoints completed;
 * faults injected by kind. At the end the producer stops and the job must drain: records read ==
 * produced and records written == read. Exits 0 when drained and the end RSS is below
 * 2 x warm-up RSS + 32 MiB (a generous bound: it catches a leak per record or per checkpoint,
 * not allocator noise; docs/guarantees.md, "Soak"), 1 otherwise, 77 when node or the npm
 * packages are missing (skip).
 *
 * Usage: soak_pipeline [--seconds N (600)] [--rate RECORDS_PER_S (200)] [--keys N (100)]
 *                      [--report-every S (60)] [--seed N (1)] [--no-rss-check]
 * scripts/soak.sh runs the full form and a short valgrind run.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/fault_proxy.c"
#include "../support/kinesis_producer.c"
#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"

#define SOAK_IN "soak-in"
#define SOAK_OUT "soak-out"
#define SOAK_EXIT_SKIP 77
/* Time allowed for the job to drain after the producer stops. */
#define SOAK_DRAIN_TIMEOUT_MS 180000
/* RSS bound at the end: 2 x warm-up + this (see the header comment). */
#define SOAK_RSS_SLACK_KB (32 * 1024)

/* Low-rate faults; first match wins. Throttling, 500s and partial failures forward nothing. */
static const char soak_rules[] =
    "[{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"rate\":0.03,\"fraction\":0.2},"
    "{\"op\":\"PutRecords\",\"fault\":\"throttle\",\"rate\":0.02},"
    "{\"op\":\"GetRecords\",\"fault\":\"throttle\",\"rate\":0.02},"
    "{\"op\":\"*\",\"fault\":\"http_500\",\"rate\":0.01}]";

struct soak_opts {
  long seconds;
  long rate;
  long keys;
  long report_every;
  uint64_t seed;
  bool rss_check; /* false with --no-rss-check (sanitizer builds: see tests/CMakeLists.txt) */
};

/* VmRSS of this process in KiB, -1 when unreadable. */
static long soak_rss_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* Prints the proxy's injection counters as "kind=n ...". */
static void soak_print_faults(struct weir_test_fproxy *px) {
  static const char *kinds[] = {"throttle", "http_500", "partial_failure"};

  printf("faults injected:");
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    printf(" %s=%ld", kinds[i], weir_test_fproxy_injected(px, kinds[i]));
  printf("\n");
}

static void soak_print_progress(weir_job *job, struct weir_test_producer *p, int64_t t0,
                                long rss0) {
  weir_checkpoint_stats cs;
  long rss = soak_rss_kb();

  weir_job_checkpoint_stats(job, &cs);
  printf("[%6.1f s] rss=%ld KiB (%+ld) produced=%ld in=%" PRId64 " out=%" PRId64
         " checkpoints=%" PRIu64 " ckpt_p99=%.1f ms\n",
         (double)(weir_test_now_ms() - t0) / 1000.0, rss, rss0 >= 0 ? rss - rss0 : 0,
         atomic_load(&p->produced),
         weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL),
         weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL), cs.completed,
         (double)cs.p99_duration_us / 1000.0);
  fflush(stdout);
}

static int soak_parse(int argc, char **argv, struct soak_opts *o) {
  o->seconds = 600;
  o->rate = 200;
  o->keys = 100;
  o->report_every = 60;
  o->seed = 1;
  o->rss_check = true;
  for (int i = 1; i < argc; i++) {
    long *dst = NULL;
    char *end;
    long v;

    if (strcmp(argv[i], "--no-rss-check") == 0) {
      o->rss_check = false;
      continue;
    }
    if (strcmp(argv[i], "--seconds") == 0)
      dst = &o->seconds;
    else if (strcmp(argv[i], "--rate") == 0)
      dst = &o->rate;
    else if (strcmp(argv[i], "--keys") == 0)
      dst = &o->keys;
    else if (strcmp(argv[i], "--report-every") == 0)
      dst = &o->report_every;
    else if (strcmp(argv[i], "--seed") != 0 || i + 1 >= argc) {
      fprintf(stderr,
              "usage: %s [--seconds N] [--rate RECORDS_PER_S] [--keys N] [--report-every S] "
              "[--seed N] [--no-rss-check]\n",
              argv[0]);
      return -1;
    }
    if (i + 1 >= argc)
      return -1;
    v = strtol(argv[++i], &end, 10);
    if (*end != '\0' || v < 1) {
      fprintf(stderr, "%s: %s needs a positive number\n", argv[0], argv[i - 1]);
      return -1;
    }
    if (dst != NULL)
      *dst = v;
    else
      o->seed = (uint64_t)v;
  }
  return 0;
}

/* Builds the job: source -> json_key_by -> running count -> sink. */
static int soak_build(weir_job *job, const char *endpoint, const char *ckpt_dir) {
  const char *streams[] = {SOAK_IN};
  weir_kinesis_source_config src;
  weir_kinesis_sink_config snk;
  weir_window_config win = {0};
  int s, k, w, o, rc;

  weir_kinesis_source_config_init(&src);
  src.streams = streams;
  src.n_streams = 1;
  weir_test_kserver_client_config(&src.client, endpoint);
  src.initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
  src.deserializer = WEIR_KINESIS_DESER_JSON;
  src.fail_on_deserialize_error = true;
  weir_kinesis_sink_config_init(&snk);
  snk.stream = SOAK_OUT;
  weir_test_kserver_client_config(&snk.client, endpoint);
  win.kind = WEIR_WINDOW_GLOBAL;
  win.time = WEIR_TIME_PROCESSING;
  win.aggs = WEIR_AGG_COUNT;
  win.on_bad = WEIR_BAD_RECORD_FAIL;
  if ((rc = weir_job_add_kinesis_source(job, "source", &src, &s)) != 0 ||
      (rc = weir_job_set_uid(job, s, "source")) != 0 ||
      (rc = weir_job_json_key_by(job, s, "by-k", "k", WEIR_BAD_RECORD_FAIL, &k)) != 0 ||
      (rc = weir_job_window(job, k, "count", &win, &w)) != 0 ||
      (rc = weir_job_set_uid(job, w, "count")) != 0 ||
      (rc = weir_job_add_kinesis_sink(job, w, "sink", &snk, &o)) != 0 ||
      (rc = weir_job_set_checkpoint_dir(job, ckpt_dir)) != 0 ||
      (rc = weir_job_set_checkpoint_interval(job, 1000)) != 0)
    return rc;
  return 0;
}

int main(int argc, char **argv) {
  struct weir_test_kserver srv = {0};
  struct weir_test_fproxy px = {0};
  struct weir_test_producer prod = {0};
  struct soak_opts o;
  weir_kinesis_client *admin = NULL;
  weir_kinesis_config acfg;
  weir_job *job = NULL;
  weir_checkpoint_stats cs;
  bool job_started = false, drained = false;
  char why[512], dir[64] = "", cmd[128];
  long rss_warm = -1, rss_end, rss_max = 0, warmup_s;
  int64_t t0, t_end, next_report, in = 0, out = 0, drain_ms = 0;
  int rc, exit_code = 1;

  srv.stdin_fd = -1;
  px.stdin_fd = -1;
  if (soak_parse(argc, argv, &o) != 0)
    return 2;
  /* Warm-up: a tenth of the run, 3..60 s; RSS is compared against its end. */
  warmup_s = o.seconds / 10 < 3 ? 3 : o.seconds / 10 > 60 ? 60 : o.seconds / 10;
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  rc = weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP) {
    printf("SKIP: %s\n", why);
    return SOAK_EXIT_SKIP;
  }
  if (rc != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "cannot start kinesalite: %s\n", why);
    goto done;
  }
  rc = weir_test_fproxy_start(&px, srv.endpoint, o.seed, soak_rules, why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP) {
    printf("SKIP: %s\n", why);
    exit_code = SOAK_EXIT_SKIP;
    goto done;
  }
  if (rc != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "cannot start the fault proxy: %s\n", why);
    goto done;
  }
  weir_test_kserver_client_config(&acfg, srv.endpoint); /* streams are made without faults */
  if (weir_kinesis_client_create(&admin, &acfg) != 0 ||
      weir__kinesis_create_stream(admin, SOAK_IN, 2) != 0 ||
      weir__kinesis_create_stream(admin, SOAK_OUT, 2) != 0 ||
      weir__kinesis_wait_active(admin, SOAK_IN, 30000) != 0 ||
      weir__kinesis_wait_active(admin, SOAK_OUT, 30000) != 0) {
    fprintf(stderr, "cannot create the streams\n");
    goto done;
  }
  strcpy(dir, "/tmp/weir-soak-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    dir[0] = '\0';
    perror("mkdtemp");
    goto done;
  }
  if ((rc = weir_job_create(&job, "soak")) != 0 || (rc = soak_build(job, px.endpoint, dir)) != 0 ||
      (rc = weir_job_start(job)) != 0) {
    fprintf(stderr, "job: %s: %s\n", weir_strerror(rc), job != NULL ? weir_job_error(job) : "");
    goto done;
  }
  job_started = true;
  prod.endpoint = px.endpoint;
  prod.stream = SOAK_IN;
  prod.rate = o.rate;
  prod.keys = o.keys;
  if (weir_test_producer_start(&prod) != 0)
    goto done;
  printf("soak: %ld s at %ld records/s over %ld keys, warm-up %ld s, seed %" PRIu64 "\n", o.seconds,
         o.rate, o.keys, warmup_s, o.seed);
  printf("pipeline: producer -> proxy -> kinesalite %s (2 shards) -> source (JSON) -> "
         "json_key_by(k) -> running count -> sink %s; checkpoints every 1 s\n",
         SOAK_IN, SOAK_OUT);
  t0 = weir_test_now_ms();
  t_end = t0 + o.seconds * 1000;
  next_report = t0 + warmup_s * 1000;
  while (weir_test_now_ms() < t_end) {
    long rss = soak_rss_kb();

    if (rss > rss_max)
      rss_max = rss;
    if (weir_test_now_ms() >= next_report) {
      if (rss_warm < 0) {
        rss_warm = rss;
        printf("warm-up done: rss_start=%ld KiB\n", rss_warm);
      }
      soak_print_progress(job, &prod, t0, rss_warm);
      next_report += o.report_every * 1000;
    }
    if (atomic_load(&prod.rc) != 0) {
      fprintf(stderr, "producer failed: %s\n", weir_strerror(atomic_load(&prod.rc)));
      goto done;
    }
    weir_test_sleep_ms(200);
  }
  weir_test_producer_stop(&prod);
  if (rss_warm < 0)
    rss_warm = soak_rss_kb();
  /* Drain: everything produced read, everything read written. */
  {
    int64_t t_drain = weir_test_now_ms();

    while (weir_test_now_ms() - t_drain < SOAK_DRAIN_TIMEOUT_MS) {
      in = weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL);
      out = weir_job_metric_sum(job, "weir_kinesis_sink_records_total", NULL);
      if (in == atomic_load(&prod.produced) && out == in) {
        drained = true;
        break;
      }
      weir_test_sleep_ms(100);
    }
    drain_ms = weir_test_now_ms() - t_drain;
  }
  rss_end = soak_rss_kb();
  if (rss_end > rss_max)
    rss_max = rss_end;
  soak_print_progress(job, &prod, t0, rss_warm);
  weir_job_stop(job);
  rc = weir_job_wait(job);
  job_started = false;
  if (rc != 0) {
    fprintf(stderr, "job failed: %s: %s\n", weir_strerror(rc), weir_job_error(job));
    goto done;
  }
  weir_job_checkpoint_stats(job, &cs);
  printf("---- soak result ----\n");
  printf("duration: %ld s (+ drain %.1f s)\n", o.seconds, (double)drain_ms / 1000.0);
  printf("records: produced=%ld in=%" PRId64 " out=%" PRId64 " (producer put calls failed "
         "after retries: %ld)\n",
         atomic_load(&prod.produced), in, out, atomic_load(&prod.put_errors));
  printf("checkpoints: completed=%" PRIu64 " failed=%" PRIu64 " p50=%.1f ms p99=%.1f ms\n",
         cs.completed, cs.failed, (double)cs.p50_duration_us / 1000.0,
         (double)cs.p99_duration_us / 1000.0);
  soak_print_faults(&px);
  printf("rss: start(after warm-up)=%ld KiB end=%ld KiB max=%ld KiB growth=%+ld KiB "
         "(bound: end < 2 x start + %d KiB)\n",
         rss_warm, rss_end, rss_max, rss_end - rss_warm, SOAK_RSS_SLACK_KB);
  printf("drained: %s\n", drained ? "yes" : "NO");
  if (!o.rss_check)
    printf("rss bound: not checked (--no-rss-check)\n");
  if (drained && (!o.rss_check || rss_end < 2 * rss_warm + SOAK_RSS_SLACK_KB) &&
      atomic_load(&prod.produced) > 0) {
    printf("SOAK OK\n");
    exit_code = 0;
  } else {
    printf("SOAK FAILED\n");
  }

done:
  weir_test_producer_stop(&prod);
  if (job_started) {
    weir_job_cancel(job);
    (void)weir_job_wait(job);
  }
  weir_job_destroy(job);
  weir_kinesis_client_destroy(admin);
  weir_test_fproxy_stop(&px);
  weir_test_kserver_stop(&srv);
  if (dir[0] != '\0') {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", dir);
  }
  return exit_code;
}
