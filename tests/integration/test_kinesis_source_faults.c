/*
 * test_kinesis_source_faults.c: the Kinesis source against kinesalite behind the fault-injecting
 * proxy (tests/support/fault_proxy.js): throttled GetRecords calls are backed off and retried,
 * expired iterators are renewed from the position, 5xx answers are retried; in every case each
 * record is read once, in per-key order, and the source's metrics count exactly the faults the
 * proxy injected. A restore whose positions no longer exist (the stream was recreated) falls
 * back to TRIM_HORIZON. Skipped when node or the npm packages are missing.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/fault_proxy.c"
#include "../support/kinesis_fixture.h"
#include "../support/kinesis_server.c"
#include "../support/ksrc_job.h"

static struct weir_test_kserver srv;
static struct weir_test_fproxy px;
static weir_kinesis_client *cli;
static char dir[64];

static void teardown(void) {
  weir_test_fproxy_stop(&px);
  kfx_teardown(&srv, &cli, dir);
}

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
}

/* kinesalite with stream "s" of `shards` shards holding records [0, n), and a proxy with
 * `rules` in front of it. */
static void start(uint32_t shards, long n, const char *rules) {
  char why[512];
  int rc;

  kfx_start(&srv, &cli, "kinesalite");
  kfx_make_stream(cli, "s", shards);
  cr_assert_eq(ksrc_put_plain(cli, "s", 0, n), 0);
  rc = weir_test_fproxy_start(&px, srv.endpoint, 42, rules, why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start the proxy: %s", why);
}

#define MAX_RECS 10000

struct collect {
  unsigned char seen[MAX_RECS];
  long last_per_key[KSRC_KEYS];
  long total, dups, order_violations, bad;
};

static struct collect col;

static int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  for (size_t i = 0; i < n; i++) {
    char num[9];
    long idx;

    if (recs[i].value.len != 8) {
      col.bad++;
      continue;
    }
    memcpy(num, recs[i].value.ptr, 8);
    num[8] = '\0';
    idx = strtol(num, NULL, 10);
    if (idx < 0 || idx >= MAX_RECS) {
      col.bad++;
      continue;
    }
    if (col.seen[idx]++)
      col.dups++;
    if (idx < col.last_per_key[idx % KSRC_KEYS])
      col.order_violations++;
    col.last_per_key[idx % KSRC_KEYS] = idx;
    __atomic_add_fetch(&col.total, 1, __ATOMIC_SEQ_CST);
  }
  return 0;
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

/* Reads "s" through `endpoint` to its end; returns the finished job (caller destroys). With
 * `savepoint_at` > 0 the job reads without end and is stopped with a savepoint once it has
 * read that many records. */
static weir_job *read_all(const char *endpoint, const char *ckpt_dir, long savepoint_at) {
  const char *streams[] = {"s"};
  weir_kinesis_source_config sc;
  weir_job *job;
  int src, rc;

  memset(&col, 0, sizeof(col));
  for (int k = 0; k < KSRC_KEYS; k++)
    col.last_per_key[k] = -1;
  weir_kinesis_source_config_init(&sc);
  sc.streams = streams;
  sc.n_streams = 1;
  ksrc_client_config(&sc.client, endpoint);
  sc.initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
  sc.getrecords_max = 100;
  sc.getrecords_interval_ms = 20;
  sc.getrecords_backoff = (weir_kinesis_backoff){10, 20, 200, 1.5};
  sc.getiterator_backoff = (weir_kinesis_backoff){10, 20, 200, 1.5};
  sc.stop_at_end = savepoint_at == 0;
  cr_assert_eq(weir_job_create(&job, "ksrc-faults"), 0);
  if (ckpt_dir != NULL) {
    cr_assert_eq(weir_job_set_checkpoint_dir(job, ckpt_dir), 0);
    cr_assert_eq(weir_job_set_checkpoint_interval(job, 100), 0);
  }
  cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, src, "out", collect_cb, NULL, NULL), 0);
  if (savepoint_at > 0) {
    struct runner r = {job, 0};
    pthread_t th;

    cr_assert_eq(pthread_create(&th, NULL, run_thread, &r), 0);
    while (__atomic_load_n(&col.total, __ATOMIC_SEQ_CST) < savepoint_at)
      usleep(10000);
    cr_assert_eq(weir_job_stop_with_savepoint(job), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    rc = r.rc;
  } else {
    rc = weir_job_run(job);
  }
  cr_assert_eq(rc, 0, "job: %s: %s", weir_err_name(rc), weir_job_error(job));
  return job;
}

static void assert_all_once(long from, long to) {
  cr_assert_eq(col.bad, 0);
  cr_assert_eq(col.dups, 0, "%ld duplicates", col.dups);
  cr_assert_eq(col.order_violations, 0, "%ld order violations", col.order_violations);
  for (long i = from; i < to; i++)
    cr_assert_eq(col.seen[i], 1, "record %ld seen %d times", i, col.seen[i]);
  cr_assert_eq(col.total, to - from);
}

TestSuite(kinesis_source_faults, .init = quiet, .fini = teardown, .timeout = 240);

Test(kinesis_source_faults, throttled_getrecords_are_backed_off) {
  weir_job *job;
  long injected;

  start(2, 2000, "[{\"op\":\"GetRecords\",\"fault\":\"throttle\",\"rate\":0.4,\"count\":25}]");
  job = read_all(px.endpoint, NULL, 0);
  assert_all_once(0, 2000);
  injected = weir_test_fproxy_injected(&px, "throttle");
  cr_assert_gt(injected, 0);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_throttles_total", NULL), injected);
  weir_job_destroy(job);
}

Test(kinesis_source_faults, expired_iterators_are_renewed_from_the_position) {
  weir_job *job;
  long injected;

  start(2, 2000,
        "[{\"op\":\"GetRecords\",\"fault\":\"expired_iterator\",\"rate\":0.3,\"count\":15}]");
  job = read_all(px.endpoint, NULL, 0);
  assert_all_once(0, 2000);
  injected = weir_test_fproxy_injected(&px, "expired_iterator");
  cr_assert_gt(injected, 0);
  cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_iterator_renewals_total", NULL),
               injected);
  weir_job_destroy(job);
}

Test(kinesis_source_faults, server_errors_are_retried) {
  weir_job *job;

  start(2, 1500,
        "[{\"op\":\"GetRecords\",\"fault\":\"http_500\",\"rate\":0.2,\"count\":8},"
        "{\"op\":\"GetShardIterator\",\"fault\":\"http_503\",\"rate\":0.3,\"count\":3}]");
  job = read_all(px.endpoint, NULL, 0);
  assert_all_once(0, 1500);
  cr_assert_gt(
      weir_test_fproxy_injected(&px, "http_500") + weir_test_fproxy_injected(&px, "http_503"), 0);
  weir_job_destroy(job);
}

/* A checkpoint whose sequence numbers no longer exist (the stream was deleted and created again)
 * restores without failing: the source warns and reads the new stream from TRIM_HORIZON. */
Test(kinesis_source_faults, unreadable_restored_position_falls_back_to_trim_horizon) {
  weir_job *job;

  start(1, 300, "[]");
  strcpy(dir, "/tmp/weir-ksrc-f-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  job = read_all(srv.endpoint, dir, 300);
  assert_all_once(0, 300);
  cr_assert_geq(weir_job_last_checkpoint(job), 1);
  weir_job_destroy(job);

  cr_assert_eq(weir__kinesis_delete_stream(cli, "s"), 0);
  sleep(2); /* kinesalite's sequence numbers carry the shard's creation time in seconds */
  for (int i = 0; i < 200; i++) {
    if (weir__kinesis_create_stream(cli, "s", 1) == 0)
      break;
    usleep(50000);
  }
  cr_assert_eq(weir__kinesis_wait_active(cli, "s", 20000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "s", 1000, 200), 0);
  job = read_all(srv.endpoint, dir, 0);
  assert_all_once(1000, 1200);
  weir_job_destroy(job);
}
