/*
 * test_fault_proxy.c: the fault-injecting proxy (tests/support/fault_proxy.js) between weir's
 * Kinesis client and a real kinesalite. Each fault kind is checked as the client sees it:
 * throttling and 5xx are retried and then succeed (or surface once the retries run out),
 * a partial PutRecords failure leaves exactly the failed entries unwritten (checked by reading
 * the shard), ExpiredIteratorException surfaces with its code, resets, stalls and truncated
 * bodies give clean errors; and the same seed gives the same injections.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../support/fault_proxy.c"
#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"

static struct weir_test_kserver srv;
static struct weir_test_fproxy px;
static weir_kinesis_client *cli;

static void teardown(void) {
  weir_kinesis_client_destroy(cli);
  cli = NULL;
  weir_test_fproxy_stop(&px);
  weir_test_kserver_stop(&srv);
}

TestSuite(fault_proxy, .fini = teardown);

/* Short retry policies for every operation: `retries` retries, 1..5 ms apart. */
static void set_retries(weir_kinesis_client *c, int retries) {
  struct weir_kinesis_retry p = {retries, 1, 5, 1.5};
  for (int op = 0; op < WEIR_KINESIS_OP_COUNT; op++)
    weir__kinesis_set_retry(c, (enum weir_kinesis_op)op, &p);
}

static weir_kinesis_client *connect_to(const char *endpoint, int64_t request_timeout_ms) {
  weir_kinesis_config cfg;
  weir_kinesis_client *c = NULL;
  int rc;

  weir_test_kserver_client_config(&cfg, endpoint);
  cfg.connect_timeout_ms = 5000;
  cfg.request_timeout_ms = request_timeout_ms;
  rc = weir__kinesis_client_create_ex(&c, &cfg, NULL);
  cr_assert_eq(rc, 0, "client: %s", weir_strerror(rc));
  set_retries(c, 0);
  return c;
}

/* Starts kinesalite and a proxy with `seed` in front of it (no rules yet), connects a client
 * through the proxy and creates a one-shard stream "s". */
static void start(uint64_t seed, int64_t request_timeout_ms) {
  char why[512];
  int rc = weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why));

  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start kinesalite: %s", why);
  rc = weir_test_fproxy_start(&px, srv.endpoint, seed, NULL, why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start the proxy: %s", why);
  cli = connect_to(px.endpoint, request_timeout_ms);
  rc = weir__kinesis_create_stream(cli, "s", 1);
  cr_assert_eq(rc, 0, "CreateStream: %s", weir_err_name(rc));
  rc = weir__kinesis_wait_active(cli, "s", 20000);
  cr_assert_eq(rc, 0, "wait ACTIVE: %s", weir_err_name(rc));
}

static void rules(const char *json) {
  cr_assert_eq(weir_test_fproxy_set_rules(&px, json), 0, "rules refused: %s", json);
}

#define N_PUT 100
static char payload[N_PUT][16];
static struct weir_kinesis_put_entry entries[N_PUT];
static struct weir_kinesis_put_result results[N_PUT];

/* Entries "rec-000".."rec-<n-1>" with partition key = data. */
static void make_entries(size_t n) {
  for (size_t i = 0; i < n; i++) {
    snprintf(payload[i], sizeof(payload[i]), "rec-%03u", (unsigned)(i % 1000));
    entries[i].data = (weir_buf){(const uint8_t *)payload[i], strlen(payload[i])};
    entries[i].partition_key = entries[i].data;
    entries[i].explicit_hash_key = NULL;
  }
}

/* Reads shard 0 of "s" from TRIM_HORIZON to its current end; counts[i] += copies of rec-i. */
static void read_all(int counts[N_PUT]) {
  struct weir_kinesis_iterator_req ir = {"s", "shardId-000000000000",
                                         WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  struct weir_kinesis_records got;
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  int rc;

  memset(counts, 0, sizeof(int) * N_PUT);
  rc = weir__kinesis_get_shard_iterator(cli, &ir, it);
  cr_assert_eq(rc, 0, "GetShardIterator: %s", weir_err_name(rc));
  weir__kinesis_records_init(&got);
  for (int calls = 0; calls < 100; calls++) {
    rc = weir__kinesis_get_records(cli, it, 1000, &got);
    cr_assert_eq(rc, 0, "GetRecords: %s", weir_err_name(rc));
    for (size_t k = 0; k < got.n; k++) {
      unsigned i;
      cr_assert_eq(got.recs[k].data.len, 7);
      cr_assert_eq(sscanf((const char *)got.recs[k].data.ptr, "rec-%3u", &i), 1);
      cr_assert_lt(i, N_PUT);
      counts[i]++;
    }
    if (got.n == 0)
      break;
    cr_assert(got.has_next);
    snprintf(it, sizeof(it), "%s", got.next_iterator);
  }
  weir__kinesis_records_free(&got);
}

Test(fault_proxy, throttling_is_retried_then_succeeds_or_surfaces_as_eagain) {
  size_t failed = 99;
  int rc;

  start(1, 20000);
  make_entries(10);
  rules("[{\"op\":\"PutRecords\",\"fault\":\"throttle\",\"count\":2}]");
  set_retries(cli, 3);
  rc = weir__kinesis_put_records(cli, "s", entries, 10, results, &failed);
  cr_assert_eq(rc, 0, "PutRecords after two throttles: %s", weir_err_name(rc));
  cr_assert_eq(failed, 0);
  cr_assert_eq(weir_test_fproxy_injected(&px, "throttle"), 2);

  /* More throttles than retries: the call fails with WEIR_EAGAIN and the service's code. */
  rules("[{\"op\":\"PutRecords\",\"fault\":\"throttle\"}]");
  set_retries(cli, 2);
  rc = weir__kinesis_put_records(cli, "s", entries, 10, results, &failed);
  cr_assert_eq(rc, WEIR_EAGAIN, "got %s", weir_err_name(rc));
  {
    const struct weir_kinesis_error *e = weir__kinesis_last_error(cli);
    cr_assert_str_eq(e->code, "ProvisionedThroughputExceededException");
    cr_assert_eq(e->http_status, 400);
    cr_assert_eq(e->cls, WEIR_KINESIS_ERR_THROTTLING);
    cr_assert_eq(e->attempts, 3);
  }
  cr_assert_eq(weir_test_fproxy_injected(&px, "throttle"), 5);
}

Test(fault_proxy, server_errors_500_and_503_are_retried_then_surface) {
  struct weir_kinesis_stream_summary sum;
  int rc;

  start(2, 20000);
  rules("[{\"op\":\"DescribeStreamSummary\",\"fault\":\"http_500\",\"count\":1},"
        "{\"op\":\"DescribeStreamSummary\",\"fault\":\"http_503\",\"count\":1}]");
  set_retries(cli, 2);
  rc = weir__kinesis_describe_stream_summary(cli, "s", &sum);
  cr_assert_eq(rc, 0, "DescribeStreamSummary after a 500 and a 503: %s", weir_err_name(rc));
  cr_assert_str_eq(sum.stream_name, "s");
  cr_assert_eq(weir_test_fproxy_injected(&px, "http_500"), 1);
  cr_assert_eq(weir_test_fproxy_injected(&px, "http_503"), 1);

  set_retries(cli, 0);
  rules("[{\"op\":\"*\",\"fault\":\"http_500\",\"count\":1}]");
  rc = weir__kinesis_describe_stream_summary(cli, "s", &sum);
  cr_assert_eq(rc, WEIR_EIO);
  cr_assert_str_eq(weir__kinesis_last_error(cli)->code, "InternalFailure");
  cr_assert_eq(weir__kinesis_last_error(cli)->http_status, 500);
  cr_assert_eq(weir__kinesis_last_error(cli)->cls, WEIR_KINESIS_ERR_TRANSIENT);
  rules("[{\"op\":\"*\",\"fault\":\"http_503\",\"count\":1}]");
  rc = weir__kinesis_describe_stream_summary(cli, "s", &sum);
  cr_assert_eq(rc, WEIR_EIO);
  cr_assert_str_eq(weir__kinesis_last_error(cli)->code, "ServiceUnavailable");
  cr_assert_eq(weir__kinesis_last_error(cli)->http_status, 503);
}

Test(fault_proxy, partial_failure_leaves_exactly_the_failed_entries_unwritten) {
  int counts[N_PUT], n_failed = 0;
  size_t failed = 0, n_resend = 0;
  struct weir_kinesis_put_entry resend[N_PUT];
  int resend_idx[N_PUT];
  int rc;

  start(3, 20000);
  make_entries(N_PUT);
  rules("[{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"fraction\":0.3,\"count\":1}]");
  rc = weir__kinesis_put_records(cli, "s", entries, N_PUT, results, &failed);
  cr_assert_eq(rc, 0, "PutRecords: %s", weir_err_name(rc));
  cr_assert_eq(failed, 30);
  for (int i = 0; i < N_PUT; i++) {
    if (results[i].ok) {
      cr_assert_neq(results[i].sequence_number[0], '\0');
      cr_assert_str_eq(results[i].shard_id, "shardId-000000000000");
    } else {
      cr_assert_str_eq(results[i].error_code, "ProvisionedThroughputExceededException");
      resend[n_resend] = entries[i];
      resend_idx[n_resend++] = i;
      n_failed++;
    }
  }
  cr_assert_eq(n_failed, 30);
  cr_assert_eq(weir_test_fproxy_injected(&px, "partial_failure"), 1);

  /* The shard holds exactly the entries reported ok, once each. */
  read_all(counts);
  for (int i = 0; i < N_PUT; i++)
    cr_assert_eq(counts[i], results[i].ok ? 1 : 0, "rec-%03d: %d copies, ok=%d", i, counts[i],
                 results[i].ok);

  /* Resending only the failed entries completes the set, each record exactly once. */
  rc = weir__kinesis_put_records(cli, "s", resend, n_resend, results, &failed);
  cr_assert_eq(rc, 0);
  cr_assert_eq(failed, 0);
  read_all(counts);
  for (int i = 0; i < N_PUT; i++)
    cr_assert_eq(counts[i], 1, "rec-%03d: %d copies", i, counts[i]);
  (void)resend_idx;

  /* Every entry failed, with a chosen code: nothing reaches the server. */
  rules("[{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"fraction\":1,"
        "\"error_code\":\"InternalFailure\",\"count\":1}]");
  rc = weir__kinesis_put_records(cli, "s", entries, 5, results, &failed);
  cr_assert_eq(rc, 0);
  cr_assert_eq(failed, 5);
  for (int i = 0; i < 5; i++) {
    cr_assert(!results[i].ok);
    cr_assert_str_eq(results[i].error_code, "InternalFailure");
  }
  read_all(counts);
  for (int i = 0; i < N_PUT; i++)
    cr_assert_eq(counts[i], 1, "rec-%03d: %d copies", i, counts[i]);
}

Test(fault_proxy, expired_iterator_surfaces_with_its_code) {
  struct weir_kinesis_iterator_req ir = {"s", "shardId-000000000000",
                                         WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  struct weir_kinesis_records got;
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  size_t failed;
  int rc;

  start(4, 20000);
  make_entries(3);
  cr_assert_eq(weir__kinesis_put_records(cli, "s", entries, 3, results, &failed), 0);
  cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &ir, it), 0);
  /* A "*" rule still only hits GetRecords. */
  rules("[{\"op\":\"*\",\"fault\":\"expired_iterator\",\"count\":1}]");
  set_retries(cli, 3);
  weir__kinesis_records_init(&got);
  rc = weir__kinesis_get_records(cli, it, 0, &got);
  cr_assert_eq(rc, WEIR_EIO, "got %s", weir_err_name(rc));
  {
    const struct weir_kinesis_error *e = weir__kinesis_last_error(cli);
    cr_assert_str_eq(e->code, "ExpiredIteratorException");
    cr_assert_eq(e->http_status, 400);
    cr_assert_eq(e->cls, WEIR_KINESIS_ERR_FATAL);
    cr_assert_eq(e->attempts, 1, "an expired iterator is not retried");
  }
  /* A fresh iterator reads everything. */
  cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &ir, it), 0);
  rc = weir__kinesis_get_records(cli, it, 0, &got);
  cr_assert_eq(rc, 0, "GetRecords: %s", weir_err_name(rc));
  cr_assert_eq(got.n, 3);
  weir__kinesis_records_free(&got);
  cr_assert_eq(weir_test_fproxy_injected(&px, "expired_iterator"), 1);
}

Test(fault_proxy, reset_stall_and_truncate_give_clean_errors) {
  struct weir_kinesis_stream_summary sum;
  struct weir_kinesis_records got;
  struct weir_kinesis_iterator_req ir = {"s", "shardId-000000000000",
                                         WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  size_t failed;
  long resets;
  int rc;

  /* Short request timeout so a stalled request ends soon. */
  start(5, 1500);
  weir__kinesis_records_init(&got);

  /* reset: no answer at all. libcurl itself resends a request once when a reused connection
   * dies before any answer, so every attempt is reset here. */
  rules("[{\"op\":\"DescribeStreamSummary\",\"fault\":\"reset\"}]");
  rc = weir__kinesis_describe_stream_summary(cli, "s", &sum);
  cr_assert_lt(rc, 0);
  cr_assert_eq(weir__kinesis_last_error(cli)->http_status, 0);
  cr_assert_eq(weir__kinesis_last_error(cli)->cls, WEIR_KINESIS_ERR_TRANSIENT);
  resets = weir_test_fproxy_injected(&px, "reset");
  cr_assert_geq(resets, 1);
  rules("[]");
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "s", &sum), 0, "the next call works");

  /* Three resets with three retries allowed: the fourth attempt succeeds. */
  rules("[{\"op\":\"DescribeStreamSummary\",\"fault\":\"reset\",\"count\":3}]");
  set_retries(cli, 3);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "s", &sum), 0);
  cr_assert_eq(weir_test_fproxy_injected(&px, "reset"), resets + 3);
  set_retries(cli, 0);

  /* stall: the client's request timeout ends it. */
  rules("[{\"op\":\"DescribeStreamSummary\",\"fault\":\"stall\",\"count\":1}]");
  rc = weir__kinesis_describe_stream_summary(cli, "s", &sum);
  cr_assert_eq(rc, WEIR_ETIMEDOUT, "got %s", weir_err_name(rc));
  cr_assert_eq(weir__kinesis_last_error(cli)->http_status, 0);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "s", &sum), 0, "the next call works");

  /* truncate: half the promised body, then the connection closes. */
  make_entries(3);
  cr_assert_eq(weir__kinesis_put_records(cli, "s", entries, 3, results, &failed), 0);
  cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &ir, it), 0);
  rules("[{\"op\":\"GetRecords\",\"fault\":\"truncate\",\"count\":1}]");
  rc = weir__kinesis_get_records(cli, it, 0, &got);
  cr_assert_lt(rc, 0, "a truncated body is an error");
  cr_assert_eq(weir__kinesis_last_error(cli)->cls, WEIR_KINESIS_ERR_TRANSIENT);
  rc = weir__kinesis_get_records(cli, it, 0, &got);
  cr_assert_eq(rc, 0, "the same iterator works again: %s", weir_err_name(rc));
  cr_assert_eq(got.n, 3);

  /* slow: forwarded after the delay (shorter than the timeout), so the call succeeds. */
  rules("[{\"op\":\"GetRecords\",\"fault\":\"slow\",\"delay_ms\":200,\"count\":1}]");
  rc = weir__kinesis_get_records(cli, it, 0, &got);
  cr_assert_eq(rc, 0, "slow: %s", weir_err_name(rc));
  cr_assert_eq(got.n, 3);
  weir__kinesis_records_free(&got);

  cr_assert_eq(weir_test_fproxy_injected(&px, "stall"), 1);
  cr_assert_eq(weir_test_fproxy_injected(&px, "truncate"), 1);
  cr_assert_eq(weir_test_fproxy_injected(&px, "slow"), 1);
  cr_assert_eq(weir_test_fproxy_injected(&px, "throttle"), 0);
}

#define N_CALLS 48

/* With `seed`: which of N_CALLS DescribeStreamSummary calls a rate-0.5 throttle hit (bits) and
 * which entries of one partial_failure PutRecords failed. Starts and stops its own servers. */
static void injection_pattern(uint64_t seed, bool hit[N_CALLS], bool pf[N_PUT]) {
  struct weir_kinesis_stream_summary sum;
  size_t failed;

  start(seed, 20000);
  rules("[{\"op\":\"DescribeStreamSummary\",\"fault\":\"throttle\",\"rate\":0.5,\"after\":2},"
        "{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"fraction\":0.25}]");
  for (int i = 0; i < N_CALLS; i++) {
    int rc = weir__kinesis_describe_stream_summary(cli, "s", &sum);
    cr_assert(rc == 0 || rc == WEIR_EAGAIN, "got %s", weir_err_name(rc));
    hit[i] = rc == WEIR_EAGAIN;
  }
  cr_assert_eq(hit[0] || hit[1], false, "\"after\":2 spares the first two");
  make_entries(N_PUT);
  cr_assert_eq(weir__kinesis_put_records(cli, "s", entries, N_PUT, results, &failed), 0);
  cr_assert_eq(failed, 25);
  for (int i = 0; i < N_PUT; i++)
    pf[i] = !results[i].ok;
  teardown();
}

Test(fault_proxy, same_seed_same_injections) {
  bool a[N_CALLS], b[N_CALLS], c[N_CALLS], pa[N_PUT], pb[N_PUT], pc[N_PUT];
  int hits = 0;

  injection_pattern(42, a, pa);
  injection_pattern(42, b, pb);
  injection_pattern(43, c, pc);
  cr_assert_arr_eq(a, b, sizeof(a), "same seed, same throttled calls");
  cr_assert_arr_eq(pa, pb, sizeof(pa), "same seed, same failed entries");
  for (int i = 0; i < N_CALLS; i++)
    hits += a[i];
  /* 46 draws at rate 0.5: the seed fixes the count; these bounds only rule out "never" and
   * "always" (the seed's actual count is far inside them). */
  cr_assert(hits > 5 && hits < 41, "%d of %d throttled", hits, N_CALLS);
  cr_assert(memcmp(a, c, sizeof(a)) != 0 || memcmp(pa, pc, sizeof(pa)) != 0,
            "another seed, another pattern");
}

Test(fault_proxy, control_endpoint_refuses_bad_rules_and_counts) {
  char stats[4096];
  struct weir_kinesis_stream_summary sum;

  start(6, 20000);
  cr_assert_eq(weir_test_fproxy_set_rules(&px, "[{\"op\":\"*\",\"fault\":\"explode\"}]"), -1);
  cr_assert_eq(weir_test_fproxy_set_rules(&px, "[{\"op\":\"*\",\"fault\":\"throttle\","
                                               "\"rate\":2}]"),
               -1);
  cr_assert_eq(weir_test_fproxy_set_rules(&px, "not json"), -1);
  cr_assert_eq(weir_test_fproxy_set_rules(&px, "[]"), 0);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "s", &sum), 0);
  cr_assert_eq(weir_test_fproxy_stats(&px, stats, sizeof(stats)), 0);
  {
    json_t *root = json_loads(stats, 0, NULL);
    json_t *fw = json_object_get(root, "forwarded");
    cr_assert(json_is_object(fw), "stats: %s", stats);
    cr_assert_eq(json_integer_value(json_object_get(fw, "CreateStream")), 1, "stats: %s", stats);
    cr_assert_geq(json_integer_value(json_object_get(fw, "DescribeStreamSummary")), 2);
    cr_assert_eq(json_object_size(json_object_get(root, "injected")), 0);
    json_decref(root);
  }
  cr_assert_eq(weir_test_fproxy_injected(&px, "throttle"), 0);
  /* A stats answer that does not fit is an error, not a truncated string. */
  cr_assert_eq(weir_test_fproxy_stats(&px, stats, 8), -1);
}
