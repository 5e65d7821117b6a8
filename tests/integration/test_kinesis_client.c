/*
 * test_kinesis_client.c: the Kinesis client against real local servers: kinesalite (data plane,
 * split/merge, errors, keep-alive) and kinesis-local (ListShards pagination and filters,
 * ChildShards, TLS verification). Each test starts its own server; tests are skipped with a
 * message when `npm ci` has not been run in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/kinesis_server.c"
#include "connectors/aws/http_int.h"
#include "connectors/kinesis/client_int.h"

static struct weir_test_kserver srv;
static weir_kinesis_client *cli;

static void teardown(void) {
  weir_kinesis_client_destroy(cli);
  cli = NULL;
  weir_test_kserver_stop(&srv);
}

/* Starts `which` and connects a client to its plain port (or skips the test). */
#define START(which)                                                                               \
  do {                                                                                             \
    char why_[512];                                                                                \
    int src_ = weir_test_kserver_start(&srv, which, why_, sizeof(why_));                           \
    if (src_ == WEIR_TEST_KSERVER_SKIP)                                                            \
      cr_skip_test("%s", why_);                                                                    \
    cr_assert_eq(src_, WEIR_TEST_KSERVER_OK, "cannot start %s: %s", which, why_);                  \
    cli = connect_to(srv.endpoint, NULL, NULL);                                                    \
  } while (0)

/* Local servers accept any well-formed signature; these are the SigV4 suite's example keys. */
static weir_kinesis_client *connect_to(const char *endpoint, const char *ca_file,
                                       const char *resolve) {
  weir_kinesis_client *c = weir_test_kserver_connect(endpoint, ca_file, resolve);

  cr_assert_not_null(c, "cannot make a client for %s", endpoint);
  return c;
}

static void create_active(const char *stream, uint32_t shards) {
  int rc = weir__kinesis_create_stream(cli, stream, shards);
  cr_assert_eq(rc, 0, "CreateStream: %s: %s", weir_err_name(rc),
               weir__kinesis_last_error(cli)->message);
  rc = weir__kinesis_wait_active(cli, stream, 20000);
  cr_assert_eq(rc, 0, "wait ACTIVE: %s", weir_err_name(rc));
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define MAX_SHARDS 16
static struct weir_kinesis_shard shard_buf[MAX_SHARDS];

static struct weir_kinesis_shard_list list_all(const char *stream) {
  struct weir_kinesis_shard_list l = {shard_buf, 0, MAX_SHARDS};
  int rc = weir__kinesis_list_all_shards(cli, stream, NULL, &l);
  cr_assert_eq(rc, 0, "ListShards: %s", weir_err_name(rc));
  return l;
}

static const struct weir_kinesis_shard *find_shard(const struct weir_kinesis_shard_list *l,
                                                   const char *id) {
  for (size_t i = 0; i < l->len; i++)
    if (strcmp(l->v[i].shard_id, id) == 0)
      return &l->v[i];
  return NULL;
}

/* ---- kinesalite ---------------------------------------------------------------------------- */

TestSuite(kinesalite, .fini = teardown, .timeout = 120);

Test(kinesalite, create_describe_list_delete) {
  struct weir_kinesis_stream_summary sum;
  struct weir_kinesis_shard_list l;

  START("kinesalite");
  create_active("s1", 2);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "s1", &sum), 0);
  cr_assert_str_eq(sum.stream_name, "s1");
  cr_assert_eq(sum.status, WEIR_KINESIS_STATUS_ACTIVE);
  cr_assert_eq(sum.open_shard_count, 2);
  cr_assert_eq(sum.retention_hours, 24);
  cr_assert_gt(sum.creation_ms, 0);
  cr_assert(strstr(sum.stream_arn, ":stream/s1") != NULL, "arn %s", sum.stream_arn);

  l = list_all("s1");
  cr_assert_eq(l.len, 2);
  cr_assert_str_eq(l.v[0].shard_id, "shardId-000000000000");
  cr_assert_str_eq(l.v[0].hash_range.start, "0");
  cr_assert_str_eq(l.v[0].hash_range.end, "170141183460469231731687303715884105727");
  cr_assert_str_eq(l.v[1].hash_range.start, "170141183460469231731687303715884105728");
  cr_assert_str_eq(l.v[1].hash_range.end, "340282366920938463463374607431768211455");
  cr_assert_str_eq(l.v[0].ending_seq, "");
  cr_assert_neq(l.v[0].starting_seq[0], '\0');

  cr_assert_eq(weir__kinesis_delete_stream(cli, "s1"), 0);
}

#define N_PUT 500

static struct weir_kinesis_put_entry entries[N_PUT];
static struct weir_kinesis_put_result results[N_PUT];
static uint8_t payload[N_PUT][24];
static char keys[N_PUT][16];

/* Record i: binary bytes (NUL, 0xff, '"', '\\' included) of length 1 + i % 23. */
static size_t fill_payload(int i, uint8_t *p) {
  size_t n = 1 + (size_t)i % 23;
  for (size_t j = 0; j < n; j++)
    p[j] = (uint8_t)(i * 31 + j * 7);
  p[0] = (uint8_t)(i & 0xff);
  return n;
}

/* Hash keys at both ends of the key space: on a 2-shard stream, shard 0 and shard 1. */
#define HASH_KEY_MIN "0"
#define HASH_KEY_MAX "340282366920938463463374607431768211455"

/* Puts records first..first+n-1. With `alternate`, even records go to shard 0 and odd ones to
 * the last shard through explicit hash keys. */
static void put_batch_ex(const char *stream, int first, int n, bool alternate) {
  size_t failed = 99;
  for (int i = 0; i < n; i++) {
    size_t len = fill_payload(first + i, payload[i]);
    snprintf(keys[i], sizeof(keys[i]), "pk-%d", first + i);
    entries[i].data = (weir_buf){payload[i], len};
    entries[i].partition_key = weir_buf_str(keys[i]);
    entries[i].explicit_hash_key = !alternate ? NULL : i % 2 == 0 ? HASH_KEY_MIN : HASH_KEY_MAX;
  }
  int rc = weir__kinesis_put_records(cli, stream, entries, (size_t)n, results, &failed);
  cr_assert_eq(rc, 0, "PutRecords: %s %s", weir_err_name(rc),
               weir__kinesis_last_error(cli)->message);
  cr_assert_eq(failed, 0);
}

static void put_batch(const char *stream, int first, int n) {
  put_batch_ex(stream, first, n, false);
}

/* Index of the put result with this sequence number, or -1. */
static int find_seq(const char *seq, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(results[i].sequence_number, seq) == 0)
      return i;
  return -1;
}

static void check_record(const struct weir_kinesis_record *r, int i) {
  uint8_t want[24];
  char key[16];
  size_t len = fill_payload(i, want);
  snprintf(key, sizeof(key), "pk-%d", i);
  cr_assert_eq(r->data.len, len, "record %d length", i);
  cr_assert_eq(memcmp(r->data.ptr, want, len), 0, "record %d data", i);
  cr_assert_eq(r->partition_key.len, strlen(key));
  cr_assert_eq(memcmp(r->partition_key.ptr, key, strlen(key)), 0);
  cr_assert_neq(r->arrival_ms, WEIR_NO_TIMESTAMP);
}

static struct weir_kinesis_records got;

static void get_iter(const char *stream, const char *shard, enum weir_kinesis_iterator_type t,
                     const char *seq, int64_t ts, char *it) {
  struct weir_kinesis_iterator_req req = {stream, shard, t, seq, ts};
  int rc = weir__kinesis_get_shard_iterator(cli, &req, it);
  cr_assert_eq(rc, 0, "GetShardIterator %d on %s: %s %s", (int)t, shard, weir_err_name(rc),
               weir__kinesis_last_error(cli)->message);
}

Test(kinesalite, put_and_get_with_every_iterator_type) {
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  const char *shard0 = "shardId-000000000000";
  int per_shard[2] = {0, 0}, seen = 0, first_in_shard0 = -1, second_in_shard0 = -1;

  START("kinesalite");
  create_active("data", 2);
  put_batch("data", 0, N_PUT);
  for (int i = 0; i < N_PUT; i++) {
    cr_assert(results[i].ok);
    per_shard[strcmp(results[i].shard_id, shard0) == 0 ? 0 : 1]++;
  }
  cr_assert_eq(per_shard[0] + per_shard[1], N_PUT);
  cr_assert_gt(per_shard[0], 0);
  cr_assert_gt(per_shard[1], 0);

  /* TRIM_HORIZON on both shards: every record back, byte for byte, in put order per shard. */
  weir__kinesis_records_init(&got);
  for (int s = 0; s < 2; s++) {
    const char *shard = s == 0 ? shard0 : "shardId-000000000001";
    int n = 0, last = -1;
    get_iter("data", shard, WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0, it);
    for (int calls = 0; n < per_shard[s] && calls < 50; calls++) {
      cr_assert_eq(weir__kinesis_get_records(cli, it, 200, &got), 0);
      for (size_t k = 0; k < got.n; k++) {
        int i = find_seq(got.recs[k].sequence_number, N_PUT);
        cr_assert_geq(i, 0, "unknown sequence number %s", got.recs[k].sequence_number);
        cr_assert_str_eq(results[i].shard_id, shard);
        cr_assert_gt(i, last, "order within the shard");
        last = i;
        check_record(&got.recs[k], i);
        if (s == 0 && n == 0)
          first_in_shard0 = i;
        if (s == 0 && n == 1)
          second_in_shard0 = i;
        n++;
      }
      cr_assert(got.has_next);
      strcpy(it, got.next_iterator);
    }
    cr_assert_eq(n, per_shard[s]);
    seen += n;
  }
  cr_assert_eq(seen, N_PUT);
  cr_assert_eq(got.millis_behind_latest, 0);

  /* AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER of the first record of shard 0. */
  get_iter("data", shard0, WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER,
           results[first_in_shard0].sequence_number, 0, it);
  cr_assert_eq(weir__kinesis_get_records(cli, it, 1, &got), 0);
  cr_assert_eq(got.n, 1);
  cr_assert_str_eq(got.recs[0].sequence_number, results[first_in_shard0].sequence_number);
  check_record(&got.recs[0], first_in_shard0);
  get_iter("data", shard0, WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER,
           results[first_in_shard0].sequence_number, 0, it);
  cr_assert_eq(weir__kinesis_get_records(cli, it, 1, &got), 0);
  cr_assert_eq(got.n, 1);
  cr_assert_str_eq(got.recs[0].sequence_number, results[second_in_shard0].sequence_number);
  check_record(&got.recs[0], second_in_shard0);

  /* LATEST: only what is put afterwards. Explicit hash key 0 puts everything on shard 0. */
  get_iter("data", shard0, WEIR_KINESIS_ITER_LATEST, NULL, 0, it);
  cr_assert_eq(weir__kinesis_get_records(cli, it, 0, &got), 0);
  cr_assert_eq(got.n, 0);
  strcpy(it, got.next_iterator);
  usleep(50000);
  int64_t between = wall_ms();
  usleep(50000);
  /* Both shards get some of these (kinesalite never answers an AT_TIMESTAMP request on a
   * shard with no record at or after the timestamp). */
  put_batch_ex("data", 1000, 3, true);
  {
    int on0 = 0;
    for (int i = 0; i < 3; i++)
      on0 += strcmp(results[i].shard_id, shard0) == 0;
    cr_assert_eq(weir__kinesis_get_records(cli, it, 0, &got), 0);
    cr_assert_eq((int)got.n, on0, "LATEST sees exactly the new records of shard 0");
    for (size_t k = 0; k < got.n; k++)
      check_record(&got.recs[k], 1000 + find_seq(got.recs[k].sequence_number, 3));
  }

  /* AT_TIMESTAMP between the two batches: on each shard, exactly the second batch's records. */
  for (int s = 0; s < 2; s++) {
    const char *shard = s == 0 ? shard0 : "shardId-000000000001";
    int want = 0;
    for (int i = 0; i < 3; i++)
      want += strcmp(results[i].shard_id, shard) == 0;
    get_iter("data", shard, WEIR_KINESIS_ITER_AT_TIMESTAMP, NULL, between, it);
    cr_assert_eq(weir__kinesis_get_records(cli, it, 0, &got), 0);
    cr_assert_eq((int)got.n, want, "AT_TIMESTAMP on %s", shard);
    for (size_t k = 0; k < got.n; k++) {
      int i = find_seq(got.recs[k].sequence_number, 3);
      cr_assert_geq(i, 0);
      check_record(&got.recs[k], 1000 + i);
      cr_assert_geq(got.recs[k].arrival_ms, between);
    }
  }
  weir__kinesis_records_free(&got);
}

Test(kinesalite, split_and_merge) {
  struct weir_kinesis_shard_list l;
  const struct weir_kinesis_shard *a, *b, *m;

  START("kinesalite");
  create_active("sm", 1);
  cr_assert_eq(weir__kinesis_split_shard(cli, "sm", "shardId-000000000000",
                                         "170141183460469231731687303715884105728"),
               0);
  cr_assert_eq(weir__kinesis_wait_active(cli, "sm", 20000), 0);
  l = list_all("sm");
  cr_assert_eq(l.len, 3);
  cr_assert_neq(l.v[0].ending_seq[0], '\0', "the parent is closed");
  a = find_shard(&l, "shardId-000000000001");
  b = find_shard(&l, "shardId-000000000002");
  cr_assert(a != NULL && b != NULL);
  cr_assert_str_eq(a->parent_shard_id, "shardId-000000000000");
  cr_assert_str_eq(a->hash_range.start, "0");
  cr_assert_str_eq(a->hash_range.end, "170141183460469231731687303715884105727");
  cr_assert_str_eq(b->hash_range.start, "170141183460469231731687303715884105728");

  cr_assert_eq(
      weir__kinesis_merge_shards(cli, "sm", "shardId-000000000001", "shardId-000000000002"), 0);
  cr_assert_eq(weir__kinesis_wait_active(cli, "sm", 20000), 0);
  l = list_all("sm");
  cr_assert_eq(l.len, 4);
  m = find_shard(&l, "shardId-000000000003");
  cr_assert(m != NULL);
  cr_assert_str_eq(m->parent_shard_id, "shardId-000000000001");
  cr_assert_str_eq(m->adjacent_parent_shard_id, "shardId-000000000002");
  cr_assert_str_eq(m->hash_range.start, "0");
  cr_assert_str_eq(m->hash_range.end, "340282366920938463463374607431768211455");
}

Test(kinesalite, missing_stream_is_fatal_with_the_service_message) {
  struct weir_kinesis_stream_summary sum;
  const struct weir_kinesis_error *e;

  START("kinesalite");
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "no-such-stream", &sum), WEIR_ENOTFOUND);
  e = weir__kinesis_last_error(cli);
  cr_assert_str_eq(e->code, "ResourceNotFoundException");
  cr_assert_eq(e->cls, WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(e->http_status, 400);
  cr_assert_eq(e->attempts, 1, "fatal errors are not retried");
  cr_assert(strstr(e->message, "no-such-stream") != NULL, "message: %s", e->message);
}

Test(kinesalite, keep_alive_connection_closed_by_the_server_is_survived) {
  struct weir_kinesis_stream_summary sum;

  START("kinesalite");
  create_active("ka", 1);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "ka", &sum), 0);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "ka", &sum), 0);
  cr_assert_eq(weir__http_connects(cli->http), 1, "one connection, reused");
  /* Node closes idle keep-alive connections after 5 s. */
  sleep(6);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "ka", &sum), 0);
  /* Normally 2: a new connection once the server has closed the idle one. On a starved
   * machine node's 5 s timer may not have fired yet, and the old connection is reused. */
  if (weir__http_connects(cli->http) != 2)
    fprintf(stderr, "note: the server had not closed the idle connection after 6 s\n");
  cr_assert_leq(weir__http_connects(cli->http), 2);
  cr_assert_eq(weir__kinesis_last_error(cli)->attempts, 1, "no retry was needed");
  cr_assert_eq(sum.status, WEIR_KINESIS_STATUS_ACTIVE);
}

/* A signer stub: the local servers only check that the header is well formed. */
static int stub_sign(void *data, const struct weir_http_sign_input *in, char *auth, size_t auth_cap,
                     struct weir_http_header *extra, size_t extra_cap, size_t *n_extra) {
  (void)data;
  (void)extra;
  (void)extra_cap;
  *n_extra = 0;
  cr_assert_eq(strlen(in->payload_sha256_hex), 64);
  cr_assert_eq(strlen(in->amz_date), 16);
  snprintf(auth, auth_cap,
           "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/%.8s/us-east-1/kinesis/aws4_request, "
           "SignedHeaders=host;x-amz-date, Signature=%s",
           in->amz_date, in->payload_sha256_hex);
  return 0;
}

Test(kinesalite, http_requests_in_flight_together_and_bounded_bodies) {
  struct weir_http_opts o = {0};
  struct weir_http *hs[3] = {NULL, NULL, NULL};
  struct weir_http_multi *mu = NULL;
  struct weir_http_request reqs[3];
  struct weir_http_response resps[3];
  struct weir_http_header hdrs[2] = {{"Content-Type", "application/x-amz-json-1.1"},
                                     {"X-Amz-Target", "Kinesis_20131202.ListStreams"}};
  char url[96];
  int rcs[3];

  START("kinesalite");
  snprintf(url, sizeof(url), "%s/", srv.endpoint);
  o.sign_cb = stub_sign;
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(weir__http_create(&hs[i], &o), 0);
    reqs[i] = (struct weir_http_request){"POST", url, hdrs, 2, (const uint8_t *)"{}", 2, 0};
  }
  cr_assert_eq(weir__http_multi_create(&mu), 0);
  for (int round = 0; round < 2; round++) {
    cr_assert_eq(weir__http_perform_many(mu, hs, reqs, resps, rcs, 3), 0);
    for (int i = 0; i < 3; i++) {
      cr_assert_eq(rcs[i], 0, "request %d: %s", i, resps[i].error);
      cr_assert_eq(resps[i].status, 200);
      cr_assert(strstr((const char *)resps[i].body, "StreamNames") != NULL);
    }
  }
  /* The same handles work alone afterwards. */
  cr_assert_eq(weir__http_perform(hs[0], &reqs[0], &resps[0]), 0);
  cr_assert_eq(resps[0].status, 200);
  weir__http_multi_destroy(mu);
  for (int i = 0; i < 3; i++)
    weir__http_destroy(hs[i]);

  /* A response larger than the bound fails with WEIR_ETOOBIG. */
  o.max_response = 8;
  cr_assert_eq(weir__http_create(&hs[0], &o), 0);
  cr_assert_eq(weir__http_perform(hs[0], &reqs[0], &resps[0]), WEIR_ETOOBIG);
  weir__http_destroy(hs[0]);
}

/* ---- kinesis-local ------------------------------------------------------------------------- */

TestSuite(kinesis_local, .fini = teardown, .timeout = 180);

Test(kinesis_local, list_shards_pagination_and_filter) {
  struct weir_kinesis_shard_list l = {shard_buf, 0, MAX_SHARDS};
  struct weir_kinesis_list_shards_req req = {0};
  char token[4096];
  int pages = 0;

  START("kinesis-local");
  create_active("pages", 5);
  req.stream = "pages";
  req.max_results = 2;
  do {
    cr_assert_eq(weir__kinesis_list_shards(cli, &req, &l, token, sizeof(token)), 0);
    pages++;
    req.next_token = token;
  } while (token[0] != '\0' && pages < 10);
  cr_assert_eq(pages, 3);
  cr_assert_eq(l.len, 5);
  for (size_t i = 0; i < 5; i++) {
    char want[32];
    snprintf(want, sizeof(want), "shardId-%012zu", i);
    cr_assert_str_eq(l.v[i].shard_id, want);
  }

  memset(&req, 0, sizeof(req));
  req.filter = WEIR_KINESIS_FILTER_AFTER_SHARD_ID;
  req.filter_shard_id = "shardId-000000000002";
  l.len = 0;
  cr_assert_eq(weir__kinesis_list_all_shards(cli, "pages", &req, &l), 0);
  cr_assert_eq(l.len, 2);
  cr_assert_str_eq(l.v[0].shard_id, "shardId-000000000003");
  cr_assert_str_eq(l.v[1].shard_id, "shardId-000000000004");
}

Test(kinesis_local, child_shards_at_the_end_of_a_split_shard) {
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  int n = 0, calls = 0;

  START("kinesis-local");
  create_active("kids", 1);
  put_batch("kids", 0, 3);
  cr_assert_eq(weir__kinesis_split_shard(cli, "kids", "shardId-000000000000",
                                         "170141183460469231731687303715884105728"),
               0);
  cr_assert_eq(weir__kinesis_wait_active(cli, "kids", 20000), 0);
  weir__kinesis_records_init(&got);
  get_iter("kids", "shardId-000000000000", WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0, it);
  for (; calls < 20; calls++) {
    cr_assert_eq(weir__kinesis_get_records(cli, it, 0, &got), 0);
    for (size_t k = 0; k < got.n; k++)
      check_record(&got.recs[k], find_seq(got.recs[k].sequence_number, 3));
    n += (int)got.n;
    if (!got.has_next)
      break;
    strcpy(it, got.next_iterator);
  }
  cr_assert_eq(n, 3);
  cr_assert(!got.has_next, "a closed shard read to its end has no next iterator");
  cr_assert_eq(got.n_children, 2);
  cr_assert_str_eq(got.children[0].parents[0], "shardId-000000000000");
  cr_assert_str_eq(got.children[1].parents[0], "shardId-000000000000");
  cr_assert_str_eq(got.children[0].hash_range.start, "0");
  cr_assert_str_eq(got.children[1].hash_range.end, "340282366920938463463374607431768211455");
  weir__kinesis_records_free(&got);
}

Test(kinesis_local, tls_is_verified) {
  struct weir_kinesis_stream_summary sum;
  char url[128], pin[128];
  weir_kinesis_client *tls_cli;
  const struct weir_kinesis_error *e;
  int rc;

  START("kinesis-local");
  create_active("tls", 1);
  cr_assert_gt(srv.tls_port, 0);
  /* The package's certificate names "Unknown" (CN, no SAN): reach 127.0.0.1 by that name. */
  snprintf(url, sizeof(url), "https://Unknown:%d", srv.tls_port);
  snprintf(pin, sizeof(pin), "Unknown:%d:127.0.0.1", srv.tls_port);

  tls_cli = connect_to(url, NULL, pin);
  rc = weir__kinesis_describe_stream_summary(tls_cli, "tls", &sum);
  e = weir__kinesis_last_error(tls_cli);
  cr_assert_eq(rc, WEIR_EIO, "refused without the CA: %s", weir_err_name(rc));
  cr_assert_eq(e->cls, WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(e->attempts, 1, "a certificate failure is not retried");
  weir_kinesis_client_destroy(tls_cli);

  tls_cli = connect_to(url, srv.ca_file, pin);
  rc = weir__kinesis_describe_stream_summary(tls_cli, "tls", &sum);
  cr_assert_eq(rc, 0, "accepted with the CA: %s %s", weir_err_name(rc),
               weir__kinesis_last_error(tls_cli)->message);
  cr_assert_str_eq(sum.stream_name, "tls");
  weir_kinesis_client_destroy(tls_cli);
}

Test(kinesis_local, server_errors_are_retried_then_surface) {
  const struct weir_kinesis_retry quick = {2, 1, 5, 1.5};
  const struct weir_kinesis_error *e;

  START("kinesis-local");
  /* kinesis-local answers a garbage iterator with HTTP 500 and an empty body: transient. */
  weir__kinesis_set_retry(cli, WEIR_KINESIS_OP_GET_RECORDS, &quick);
  weir__kinesis_records_init(&got);
  cr_assert_eq(weir__kinesis_get_records(cli, "garbage", 0, &got), WEIR_EIO);
  e = weir__kinesis_last_error(cli);
  cr_assert_eq(e->http_status, 500);
  cr_assert_eq(e->cls, WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(e->attempts, 3, "1 attempt + 2 retries");
  weir__kinesis_records_free(&got);
}

Test(kinesis_local, put_records_reports_per_entry_failures) {
  static uint8_t big[(1u << 20) + 1];
  struct weir_kinesis_put_entry e[2] = {
      {{(const uint8_t *)"ok", 2}, {(const uint8_t *)"a", 1}, NULL},
      {{big, sizeof(big)}, {(const uint8_t *)"b", 1}, NULL},
  };
  size_t failed = 0;

  START("kinesis-local");
  create_active("partial", 1);
  cr_assert_eq(weir__kinesis_put_records(cli, "partial", e, 2, results, &failed), 0);
  cr_assert_eq(failed, 1);
  cr_assert(results[0].ok);
  cr_assert_str_eq(results[0].shard_id, "shardId-000000000000");
  cr_assert(!results[1].ok);
  cr_assert_neq(results[1].error_code[0], '\0');
}

/* ---- cross-client checks with the AWS SDK for JavaScript v3 -------------------------------- */

/* Runs `node sdk_check.js args` and parses its one JSON line (NULL on failure). */
static json_t *run_sdk(const char *args) {
  static char out[1 << 20];
  char cmd[1024];
  size_t len = 0, n;
  FILE *p;

  snprintf(cmd, sizeof(cmd), "cd '%s' && NODE_NO_WARNINGS=1 node sdk_check.js %s",
           weir_test_kserver_dir(), args);
  if ((p = popen(cmd, "r")) == NULL)
    return NULL;
  while (len < sizeof(out) - 1 && (n = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0)
    len += n;
  out[len] = '\0';
  if (pclose(p) != 0)
    return NULL;
  return json_loads(out, 0, NULL);
}

/* sdk_check.js's sdkData(i). */
static size_t sdk_data(int i, uint8_t *b) {
  size_t n = 1 + (size_t)i % 40;
  for (size_t j = 0; j < n; j++)
    b[j] = (uint8_t)(i * 53 + (int)j * 11);
  return n;
}

Test(kinesalite, records_cross_between_weir_and_the_aws_sdk) {
  char path[PATH_MAX + 64], args[256], it[WEIR_KINESIS_ITERATOR_MAX + 1];
  struct stat st;
  json_t *root, *recs;
  int seen = 0;

  START("kinesalite");
  snprintf(path, sizeof(path), "%s/node_modules/@aws-sdk/client-kinesis/package.json",
           weir_test_kserver_dir());
  if (stat(path, &st) != 0)
    cr_skip_test("@aws-sdk/client-kinesis is not installed: run `npm ci` in %s",
                 weir_test_kserver_dir());

  /* weir puts, the SDK reads. */
  create_active("to-sdk", 2);
  put_batch("to-sdk", 0, 60);
  snprintf(args, sizeof(args), "get '%s' to-sdk", srv.endpoint);
  root = run_sdk(args);
  cr_assert_not_null(root, "sdk_check.js get failed");
  recs = json_object_get(root, "records");
  cr_assert_eq(json_array_size(recs), 60);
  for (size_t k = 0; k < 60; k++) {
    json_t *r = json_array_get(recs, k);
    const char *b64 = json_string_value(json_object_get(r, "data"));
    uint8_t dec[64], want[24];
    size_t n;
    int i = atoi(json_string_value(json_object_get(r, "pk")) + 3); /* "pk-<i>" */
    size_t wl = fill_payload(i, want);
    cr_assert_eq(weir__b64_decode(b64, strlen(b64), dec, &n), 0);
    cr_assert_eq(n, wl);
    cr_assert_eq(memcmp(dec, want, wl), 0, "record %d", i);
    cr_assert_str_eq(json_string_value(json_object_get(r, "seq")), results[i].sequence_number);
  }
  json_decref(root);

  /* The SDK puts, weir reads. */
  create_active("from-sdk", 1);
  snprintf(args, sizeof(args), "put '%s' from-sdk 80", srv.endpoint);
  root = run_sdk(args);
  cr_assert_not_null(root, "sdk_check.js put failed");
  json_decref(root);
  weir__kinesis_records_init(&got);
  get_iter("from-sdk", "shardId-000000000000", WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0, it);
  for (int calls = 0; seen < 80 && calls < 20; calls++) {
    cr_assert_eq(weir__kinesis_get_records(cli, it, 0, &got), 0);
    for (size_t k = 0; k < got.n; k++) {
      uint8_t want[64];
      char key[16];
      size_t wl = sdk_data(seen, want);
      snprintf(key, sizeof(key), "sdk-%d", seen);
      cr_assert_eq(got.recs[k].partition_key.len, strlen(key));
      cr_assert_eq(memcmp(got.recs[k].partition_key.ptr, key, strlen(key)), 0);
      cr_assert_eq(got.recs[k].data.len, wl);
      cr_assert_eq(memcmp(got.recs[k].data.ptr, want, wl), 0, "record %d", seen);
      seen++;
    }
    strcpy(it, got.next_iterator);
  }
  cr_assert_eq(seen, 80);
  weir__kinesis_records_free(&got);
}
