/*
 * test_http_wire.c: weir's POST transport (connectors/aws/http.c: a libcurl CONNECT_ONLY
 * connection, the request written by weir, the answer read and parsed by http-parser) against
 * the wire shapes real servers and proxies produce. Real Kinesis calls (PutRecords of a few
 * hundred entries, DescribeStreamSummary, GetShardIterator, GetRecords, an error answer) go to
 * kinesalite through tests/support/fault_proxy.js, which forwards each request and writes the
 * real answer chunked, trickled a few bytes at a time, after a 100 Continue, with Connection:
 * close, or delimited by the connection's end; the records are read back and compared, and the
 * connections counted on both sides are what keep-alive implies. A non-HTTP answer fails at
 * once and is not retried; a reset or a truncated answer on a kept connection is retried.
 * Finally POSTs go through an HTTP CONNECT proxy named by http_proxy / HTTPS_PROXY
 * (tests/support/connect_proxy.js, which counts its tunnels), to kinesalite over http:// and
 * to kinesis-local's TLS port over https:// with the certificate still verified.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../support/fault_proxy.c"
#include "../support/kinesis_server.c"
#include "connectors/aws/http_int.h"
#include "connectors/kinesis/client_int.h"

static struct weir_test_kserver srv;
static struct weir_test_fproxy px;
static weir_kinesis_client *admin; /* straight to the server: creates the stream */
static weir_kinesis_client *cli;   /* the client under test */
static weir_kinesis_client *cli2;
static struct weir_http *bounded; /* a bare handle with a small response bound */
static pid_t cp_pid;              /* connect_proxy.js, 0 when not running */
static int cp_stdin = -1;
static int cp_port;

static void teardown(void) {
  weir__http_destroy(bounded);
  bounded = NULL;
  weir_kinesis_client_destroy(cli2);
  cli2 = NULL;
  weir_kinesis_client_destroy(cli);
  cli = NULL;
  weir_kinesis_client_destroy(admin);
  admin = NULL;
  weir_test_node_stop(&cp_pid, &cp_stdin);
  weir_test_fproxy_stop(&px);
  weir_test_kserver_stop(&srv);
}

TestSuite(http_wire, .fini = teardown, .timeout = 240);

/* Every operation retried `retries` times, 1..5 ms apart. */
static void set_retries(weir_kinesis_client *c, int retries) {
  struct weir_kinesis_retry p = {retries, 1, 5, 1.5};
  for (int op = 0; op < WEIR_KINESIS_OP_COUNT; op++)
    weir__kinesis_set_retry(c, (enum weir_kinesis_op)op, &p);
}

static weir_kinesis_client *connect_to(const char *endpoint, const char *ca_file,
                                       const char *resolve) {
  weir_kinesis_client *c = weir_test_kserver_connect(endpoint, ca_file, resolve);

  cr_assert_not_null(c, "cannot make a client for %s", endpoint);
  set_retries(c, 0);
  return c;
}

/* Starts `which` and makes a one-shard stream `stream` on it with `admin`, straight to the
 * server (so the proxies count only the client under test). Skips when not installed. */
static void start_server(const char *which, const char *stream) {
  char why[512];
  int rc = weir_test_kserver_start(&srv, which, why, sizeof(why));

  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start %s: %s", which, why);
  admin = connect_to(srv.endpoint, NULL, NULL);
  rc = weir__kinesis_create_stream(admin, stream, 1);
  cr_assert_eq(rc, 0, "CreateStream: %s %s", weir_err_name(rc),
               weir__kinesis_last_error(admin)->message);
  rc = weir__kinesis_wait_active(admin, stream, 20000);
  cr_assert_eq(rc, 0, "wait ACTIVE: %s", weir_err_name(rc));
}

/* kinesalite with stream "w", the fault proxy in front of it (no rules) and `cli` through it. */
static void start_proxied(uint64_t seed) {
  char why[512];
  int rc;

  start_server("kinesalite", "w");
  rc = weir_test_fproxy_start(&px, srv.endpoint, seed, NULL, why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start the fault proxy: %s", why);
  cli = connect_to(px.endpoint, NULL, NULL);
}

static void rules(const char *json) {
  cr_assert_eq(weir_test_fproxy_set_rules(&px, json), 0, "rules refused: %s", json);
}

/* ---- the workload ---------------------------------------------------------------------- */

#define N_BATCH 300
#define N_REC (3 * N_BATCH)
#define DATA_MAX 112

static uint8_t payload[N_REC][DATA_MAX];
static char keys[N_REC][16];
static struct weir_kinesis_put_entry entries[N_BATCH];
static struct weir_kinesis_put_result results[N_REC];
static int sent; /* requests the test made through the proxy (each call once: no retries) */

/* Record i: 48..111 binary bytes (NUL, 0xff, quotes and all). */
static size_t rec_data(int i, uint8_t *p) {
  size_t n = 48 + (size_t)(i * 7) % (DATA_MAX - 48);
  for (size_t j = 0; j < n; j++)
    p[j] = (uint8_t)(i * 131 + (int)j * 29 + (int)(j >> 3));
  return n;
}

/* The call just made on c succeeded at the first attempt. */
static void one_attempt(weir_kinesis_client *c, const char *what) {
  cr_assert_eq(weir__kinesis_last_error(c)->attempts, 1, "%s: %d attempts", what,
               weir__kinesis_last_error(c)->attempts);
  sent++;
}

/* PutRecords of records first..first+n-1 to `stream`; every entry must be stored. */
static void put_batch(weir_kinesis_client *c, const char *stream, int first, int n) {
  size_t failed = 99;
  int rc;

  for (int i = 0; i < n; i++) {
    size_t len = rec_data(first + i, payload[first + i]);
    snprintf(keys[first + i], sizeof(keys[0]), "k-%d", first + i);
    entries[i].data = (weir_buf){payload[first + i], len};
    entries[i].partition_key = weir_buf_str(keys[first + i]);
    entries[i].explicit_hash_key = NULL;
  }
  rc = weir__kinesis_put_records(c, stream, entries, (size_t)n, &results[first], &failed);
  cr_assert_eq(rc, 0, "PutRecords %d..%d: %s %s", first, first + n - 1, weir_err_name(rc),
               weir__kinesis_last_error(c)->message);
  cr_assert_eq(failed, 0);
  for (int i = first; i < first + n; i++) {
    cr_assert(results[i].ok, "entry %d", i);
    cr_assert_str_eq(results[i].shard_id, "shardId-000000000000");
  }
}

static struct weir_kinesis_records got;

/* Reads shard 0 of `stream` from TRIM_HORIZON, `limit` records a call, until n records came
 * back; each must be record i, in put order, with its sequence number. Returns the number of
 * requests made (GetShardIterator included). `one_try`: each must succeed at once. */
static int read_back(weir_kinesis_client *c, const char *stream, int n, uint32_t limit,
                     bool one_try) {
  struct weir_kinesis_iterator_req ir = {stream, "shardId-000000000000",
                                         WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  int seen = 0, calls = 0, rc;

  rc = weir__kinesis_get_shard_iterator(c, &ir, it);
  cr_assert_eq(rc, 0, "GetShardIterator: %s %s", weir_err_name(rc),
               weir__kinesis_last_error(c)->message);
  if (one_try)
    one_attempt(c, "GetShardIterator");
  calls++;
  weir__kinesis_records_init(&got);
  while (seen < n && calls < 40) {
    rc = weir__kinesis_get_records(c, it, limit, &got);
    cr_assert_eq(rc, 0, "GetRecords: %s %s", weir_err_name(rc),
                 weir__kinesis_last_error(c)->message);
    if (one_try)
      one_attempt(c, "GetRecords");
    calls++;
    cr_assert_leq(got.n, (size_t)(n - seen), "more records than were put");
    for (size_t k = 0; k < got.n; k++, seen++) {
      const struct weir_kinesis_record *r = &got.recs[k];
      uint8_t want[DATA_MAX];
      size_t len = rec_data(seen, want);
      cr_assert_str_eq(r->sequence_number, results[seen].sequence_number, "record %d", seen);
      cr_assert_eq(r->data.len, len, "record %d length", seen);
      cr_assert_eq(memcmp(r->data.ptr, want, len), 0, "record %d data", seen);
      cr_assert_eq(r->partition_key.len, strlen(keys[seen]));
      cr_assert_eq(memcmp(r->partition_key.ptr, keys[seen], strlen(keys[seen])), 0);
    }
    cr_assert(got.has_next);
    snprintf(it, sizeof(it), "%s", got.next_iterator);
  }
  cr_assert_eq(seen, n, "records read back");
  weir__kinesis_records_free(&got);
  return calls;
}

/* The same calls a source and a sink make, on c: two PutRecords of N_BATCH entries (bodies of
 * tens of KB both ways), DescribeStreamSummary of `stream` and of a missing stream (an error
 * answer), then the records read back in GetRecords of 250 (answers of ~60 KB). Every call must
 * succeed at its first attempt; `sent` counts them. */
static void workload(weir_kinesis_client *c, const char *stream) {
  struct weir_kinesis_stream_summary sum;
  const struct weir_kinesis_error *e;
  int rc;

  put_batch(c, stream, 0, N_BATCH);
  one_attempt(c, "PutRecords");
  put_batch(c, stream, N_BATCH, N_BATCH);
  one_attempt(c, "PutRecords");

  rc = weir__kinesis_describe_stream_summary(c, stream, &sum);
  cr_assert_eq(rc, 0, "DescribeStreamSummary: %s %s", weir_err_name(rc),
               weir__kinesis_last_error(c)->message);
  one_attempt(c, "DescribeStreamSummary");
  cr_assert_str_eq(sum.stream_name, stream);
  cr_assert_eq(sum.status, WEIR_KINESIS_STATUS_ACTIVE);
  cr_assert_eq(sum.open_shard_count, 1);

  rc = weir__kinesis_describe_stream_summary(c, "no-such-stream", &sum);
  cr_assert_eq(rc, WEIR_ENOTFOUND, "missing stream: %s", weir_err_name(rc));
  e = weir__kinesis_last_error(c);
  cr_assert_str_eq(e->code, "ResourceNotFoundException");
  cr_assert_eq(e->http_status, 400);
  cr_assert(strstr(e->message, "no-such-stream") != NULL, "message: %s", e->message);
  one_attempt(c, "DescribeStreamSummary (missing)");

  read_back(c, stream, 2 * N_BATCH, 250, true);
}

/* ---- a bare handle, to see the response as the transport returns it -------------------- */

/* The local servers only check that Authorization is well formed. */
static int stub_sign(void *data, const struct weir_http_sign_input *in, char *auth, size_t auth_cap,
                     struct weir_http_header *extra, size_t extra_cap, size_t *n_extra) {
  (void)data;
  (void)extra;
  (void)extra_cap;
  *n_extra = 0;
  snprintf(auth, auth_cap,
           "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/%.8s/us-east-1/kinesis/aws4_request, "
           "SignedHeaders=host;x-amz-date, Signature=%s",
           in->amz_date, in->payload_sha256_hex);
  return 0;
}

#define BOUND 8192

/* One POST of `body` to operation `op` on the bare handle. */
static int bare_post(const char *url, const char *op, const char *body,
                     struct weir_http_response *resp) {
  char target[64];
  struct weir_http_header hdrs[2] = {{"Content-Type", "application/x-amz-json-1.1"},
                                     {"X-Amz-Target", target}};
  struct weir_http_request req = {"POST", url, hdrs, 2, (const uint8_t *)body, strlen(body), 0};

  snprintf(target, sizeof(target), "Kinesis_20131202.%s", op);
  sent++;
  return weir__http_perform(bounded, &req, resp);
}

/* Through the bare handle (responses bounded to BOUND bytes): an error answer keeps its
 * x-amzn-ErrorType header (the proxy adds it as AWS does, weir reads it before the body); an
 * answer over the bound fails with WEIR_ETOOBIG, mid-body when it has no Content-Length, and
 * leaves nothing behind for the next request. Returns the connections the handle opened. */
static long bare_checks(void) {
  struct weir_http_opts o = {0};
  struct weir_http_response resp;
  struct weir_kinesis_iterator_req ir = {"w", "shardId-000000000000",
                                         WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  char url[96], it[WEIR_KINESIS_ITERATOR_MAX + 1], body[WEIR_KINESIS_ITERATOR_MAX + 64];
  int rc;

  o.max_response = BOUND;
  o.sign_cb = stub_sign;
  o.connect_timeout_ms = 5000;
  cr_assert_eq(weir__http_create(&bounded, &o), 0);
  snprintf(url, sizeof(url), "%s/", px.endpoint);

  rc = bare_post(url, "DescribeStreamSummary", "{\"StreamName\":\"nope\"}", &resp);
  cr_assert_eq(rc, 0, "error answer: %s %s", weir_err_name(rc), resp.error);
  cr_assert_eq(resp.status, 400);
  cr_assert_str_eq(resp.error_type, "ResourceNotFoundException");
  cr_assert(strstr((const char *)resp.body, "\"ResourceNotFoundException\"") != NULL, "body: %s",
            (const char *)resp.body);
  cr_assert_eq(resp.body_len, strlen((const char *)resp.body));

  /* The iterator comes from the admin client, straight from the server. */
  cr_assert_eq(weir__kinesis_get_shard_iterator(admin, &ir, it), 0);
  snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
  rc = bare_post(url, "GetRecords", body, &resp);
  cr_assert_eq(rc, WEIR_ETOOBIG, "a %d-record answer over %d bytes: %s", 2 * N_BATCH, BOUND,
               weir_err_name(rc));

  rc = bare_post(url, "DescribeStreamSummary", "{\"StreamName\":\"w\"}", &resp);
  cr_assert_eq(rc, 0, "after WEIR_ETOOBIG: %s %s", weir_err_name(rc), resp.error);
  cr_assert_eq(resp.status, 200, "status %ld: %s", resp.status, (const char *)resp.body);
  cr_assert(strstr((const char *)resp.body, "\"StreamStatus\":\"ACTIVE\"") != NULL, "body: %s",
            (const char *)resp.body);
  cr_assert_str_eq(resp.error_type, "");
  return weir__http_connects(bounded);
}

/* ---- wire shapes ----------------------------------------------------------------------- */

static char wire[65536]; /* one answer as the proxy wrote it, NUL-terminated */

/* Where the head of the final answer in `wire` ends (after interim 1xx answers), or NULL while
 * incomplete; `lower` (cap bytes) gets a lowercase copy of that head. */
static const char *final_head(char *lower, size_t cap) {
  const char *p = wire, *end;

  while ((end = strstr(p, "\r\n\r\n")) != NULL && strncmp(p, "HTTP/1.1 1", 10) == 0)
    p = end + 4;
  if (end == NULL || (size_t)(end + 4 - p) >= cap)
    return NULL;
  for (size_t i = 0; i < (size_t)(end + 4 - p); i++)
    lower[i] = (char)tolower((unsigned char)p[i]);
  lower[end + 4 - p] = '\0';
  return end + 4;
}

/* Sends one DescribeStreamSummary of "w" to the proxy on a plain socket and reads what comes
 * back into `wire` until the answer is complete (by its Content-Length or last chunk; one
 * with Connection: close, to the end) or the connection ends. *eof: the proxy closed it. */
static void raw_exchange(bool *eof) {
  static const char body[] = "{\"StreamName\":\"w\"}";
  struct sockaddr_in a = {0};
  char req[1024], head[4096];
  size_t len = 0;
  int fd, n;

  n = snprintf(req, sizeof(req),
               "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Content-Type: application/x-amz-json-1.1\r\n"
               "X-Amz-Target: Kinesis_20131202.DescribeStreamSummary\r\n"
               "X-Amz-Date: 20250101T000000Z\r\n"
               "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/"
               "kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n"
               "Content-Length: %zu\r\n\r\n%s",
               px.port, strlen(body), body);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)px.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
  *eof = false;
  for (;;) {
    struct pollfd pfd = {fd, POLLIN, 0};
    const char *b;
    ssize_t r;

    cr_assert_eq(poll(&pfd, 1, 20000), 1, "no complete answer after 20 s: %.*s", (int)len, wire);
    r = recv(fd, wire + len, sizeof(wire) - 1 - len, 0);
    cr_assert_geq(r, 0);
    if (r == 0) {
      *eof = true;
      break;
    }
    len += (size_t)r;
    wire[len] = '\0';
    cr_assert_lt(len, sizeof(wire) - 1);
    /* Complete answers that close the connection are read to its end. */
    if ((b = final_head(head, sizeof(head))) == NULL ||
        strstr(head, "\r\nconnection: close\r\n") != NULL)
      continue;
    if (strstr(head, "\r\ncontent-length: ") != NULL &&
        (size_t)(wire + len - b) >= strtoul(strstr(head, "\r\ncontent-length: ") + 18, NULL, 10))
      break;
    if (strstr(head, "\r\ntransfer-encoding: chunked\r\n") != NULL && len >= 5 &&
        strcmp(wire + len - 5, "0\r\n\r\n") == 0)
      break;
  }
  close(fd);
}

/* The proxy writes `shape` as promised (so these tests cannot pass on plain answers). */
static void check_wire(const char *shape) {
  char head[4096];
  const char *b;
  bool eof;

  raw_exchange(&eof);
  b = final_head(head, sizeof(head));
  cr_assert_not_null(b, "%s: no answer head in %s", shape, wire);
  cr_assert(strncmp(head, "http/1.1 200 ", 13) == 0, "%s: %s", shape, wire);
  cr_assert(strstr(b, "\"StreamName\":\"w\"") != NULL, "%s: %s", shape, wire);
  if (strcmp(shape, "chunked") == 0) {
    int chunks = 0;
    cr_assert(strstr(head, "\r\ntransfer-encoding: chunked\r\n") != NULL, "%s", wire);
    cr_assert(strstr(head, "\r\ncontent-length:") == NULL, "%s", wire);
    for (const char *p = b; strtoul(p, NULL, 16) > 0; chunks++)
      p = strstr(p, "\r\n") + 2 + strtoul(p, NULL, 16) + 2;
    cr_assert_geq(chunks, 3, "%d chunks: %s", chunks, wire);
  } else if (strcmp(shape, "continue") == 0) {
    cr_assert(strncmp(wire, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ", 38) == 0, "%s", wire);
  } else if (strcmp(shape, "close") == 0) {
    cr_assert(strstr(head, "\r\nconnection: close\r\n") != NULL, "%s", wire);
    cr_assert(strstr(head, "\r\ncontent-length: ") != NULL, "%s", wire);
    cr_assert(eof, "close: the proxy must close the connection after the answer");
  } else if (strcmp(shape, "eof_body") == 0) {
    cr_assert(eof, "eof_body: the connection must end the body");
    cr_assert(strstr(head, "\r\ncontent-length:") == NULL, "%s", wire);
    cr_assert(strstr(head, "\r\ntransfer-encoding:") == NULL, "%s", wire);
    cr_assert(strstr(head, "\r\nconnection:") == NULL, "%s", wire);
  } else {
    cr_assert(strstr(head, "\r\ncontent-length: ") != NULL, "%s", wire);
  }
  if (strcmp(shape, "chunked") == 0 || strcmp(shape, "continue") == 0 ||
      strcmp(shape, "trickle") == 0)
    cr_assert(!eof, "%s: the connection stays open", shape);
}

/* Every answer in wire shape `shape`: the workload and the bare checks succeed; `keep`: one
 * connection carries every request of a client (a new one only after WEIR_ETOOBIG), else one
 * connection per request. The proxy shaped every answer and saw the same connections. */
static void shape_test(const char *shape, uint64_t seed, bool keep) {
  char r[128];
  long bare_conns;

  start_proxied(seed);
  snprintf(r, sizeof(r), "[{\"op\":\"*\",\"fault\":\"%s\"}]", shape);
  rules(r);
  sent = 0;
  workload(cli, "w");
  if (keep)
    cr_assert_eq(weir__http_connects(cli->http), 1, "%s: %ld connections for %d requests", shape,
                 weir__http_connects(cli->http), sent);
  else
    cr_assert_eq(weir__http_connects(cli->http), sent, "%s: %ld connections for %d requests", shape,
                 weir__http_connects(cli->http), sent);
  bare_conns = bare_checks();
  /* WEIR_ETOOBIG drops the connection with the rest of the body in it: the third request
   * goes on a new one. */
  cr_assert_eq(bare_conns, keep ? 2 : 3, "%s: the bare handle opened %ld connections", shape,
               bare_conns);
  cr_assert_eq(weir_test_fproxy_injected(&px, shape), sent, "every answer was %s", shape);
  cr_assert_eq(weir_test_fproxy_connections(&px), weir__http_connects(cli->http) + bare_conns,
               "the proxy saw the connections the clients opened");
  check_wire(shape);
}

Test(http_wire, chunked_answers_on_one_kept_connection) {
  shape_test("chunked", 11, true);
}

Test(http_wire, trickled_answers_split_anywhere_on_one_kept_connection) {
  shape_test("trickle", 12, true);
}

Test(http_wire, interim_100_continue_is_skipped_on_one_kept_connection) {
  shape_test("continue", 13, true);
}

Test(http_wire, connection_close_means_a_new_connection_per_request) {
  shape_test("close", 14, false);
}

Test(http_wire, body_delimited_by_the_connection_end_means_a_new_connection_per_request) {
  shape_test("eof_body", 15, false);
}

/* Only some answers shaped: shapes mixed on one kept connection (chunked after a plain answer,
 * an interim answer after a chunked one, ...), then a close that ends it. */
Test(http_wire, shapes_mixed_on_one_connection) {
  start_proxied(16);
  rules("[{\"op\":\"PutRecords\",\"fault\":\"chunked\"},"
        "{\"op\":\"DescribeStreamSummary\",\"fault\":\"continue\"},"
        "{\"op\":\"GetRecords\",\"fault\":\"trickle\",\"count\":1},"
        "{\"op\":\"GetRecords\",\"fault\":\"chunked\"}]");
  sent = 0;
  workload(cli, "w");
  cr_assert_eq(weir__http_connects(cli->http), 1, "%ld connections for %d requests",
               weir__http_connects(cli->http), sent);
  cr_assert_eq(weir_test_fproxy_injected(&px, "chunked"), 2 + 2);
  cr_assert_eq(weir_test_fproxy_injected(&px, "continue"), 2);
  cr_assert_eq(weir_test_fproxy_injected(&px, "trickle"), 1);

  /* A close on the GetShardIterator answer: the rest goes on a second connection. */
  rules("[{\"op\":\"GetShardIterator\",\"fault\":\"close\"},"
        "{\"op\":\"GetRecords\",\"fault\":\"eof_body\",\"count\":1}]");
  read_back(cli, "w", 2 * N_BATCH, 400, true);
  /* GetShardIterator closed the first connection, the eof_body GetRecords the second: the
   * second GetRecords went on a third. */
  cr_assert_eq(weir__http_connects(cli->http), 3);
  cr_assert_eq(weir_test_fproxy_connections(&px), 3);
}

Test(http_wire, garbage_fails_at_once_with_a_clear_error_and_is_not_retried) {
  struct weir_kinesis_stream_summary sum;
  const struct weir_kinesis_error *e;
  int rc;

  start_proxied(17);
  set_retries(cli, 3);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli, "w", &sum), 0);
  /* On the kept connection: a response byte arrived, so no resend on a new one either. The
   * proxy holds the connection open after the line: a client waiting for more would end with
   * the 20 s request timeout (WEIR_ETIMEDOUT) instead. */
  rules("[{\"op\":\"DescribeStreamSummary\",\"fault\":\"garbage\"}]");
  rc = weir__kinesis_describe_stream_summary(cli, "w", &sum);
  e = weir__kinesis_last_error(cli);
  cr_assert_eq(rc, WEIR_EIO, "got %s: %s", weir_err_name(rc), e->message);
  cr_assert_eq(e->attempts, 1, "a non-HTTP answer is not retried (%d attempts)", e->attempts);
  cr_assert_eq(e->cls, WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(e->http_status, 0);
  cr_assert(strstr(e->message, "malformed HTTP response") != NULL, "message: %s", e->message);
  cr_assert_eq(weir_test_fproxy_injected(&px, "garbage"), 1, "injected %ld",
               weir_test_fproxy_injected(&px, "garbage"));

  /* On a fresh connection too. */
  weir_kinesis_client_destroy(cli);
  cli = connect_to(px.endpoint, NULL, NULL);
  set_retries(cli, 3);
  rc = weir__kinesis_describe_stream_summary(cli, "w", &sum);
  cr_assert_eq(rc, WEIR_EIO, "got %s", weir_err_name(rc));
  cr_assert_eq(weir__kinesis_last_error(cli)->attempts, 1);
  cr_assert_eq(weir_test_fproxy_injected(&px, "garbage"), 2);

  /* The client is not left broken: the next call opens a new connection and works. */
  rules("[]");
  rc = weir__kinesis_describe_stream_summary(cli, "w", &sum);
  cr_assert_eq(rc, 0, "after garbage: %s", weir_err_name(rc));
  cr_assert_str_eq(sum.stream_name, "w");
  cr_assert_eq(weir__http_connects(cli->http), 2);
}

Test(http_wire, reset_and_truncate_on_a_kept_connection_are_retried) {
  struct weir_kinesis_iterator_req ir = {"w", "shardId-000000000000",
                                         WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  const struct weir_kinesis_error *e;
  int rc;

  start_proxied(18);
  set_retries(cli, 3);
  put_batch(cli, "w", 0, N_BATCH);
  cr_assert_eq(weir__http_connects(cli->http), 1);

  /* One reset on the kept connection, before any answer: the transport sends the request once
   * more on a new connection by itself; the call sees one attempt. Nothing was forwarded, so
   * nothing is stored twice. */
  rules("[{\"op\":\"PutRecords\",\"fault\":\"reset\",\"count\":1}]");
  put_batch(cli, "w", N_BATCH, N_BATCH);
  e = weir__kinesis_last_error(cli);
  cr_assert_eq(e->attempts, 1, "%d attempts", e->attempts);
  cr_assert_eq(weir_test_fproxy_injected(&px, "reset"), 1);
  cr_assert_eq(weir__http_connects(cli->http), 2);

  /* Two: the resend on the new connection is reset too, and the client's retry succeeds. */
  rules("[{\"op\":\"PutRecords\",\"fault\":\"reset\",\"count\":2}]");
  put_batch(cli, "w", 2 * N_BATCH, N_BATCH);
  e = weir__kinesis_last_error(cli);
  cr_assert_eq(e->attempts, 2, "%d attempts", e->attempts);
  cr_assert_eq(weir_test_fproxy_injected(&px, "reset"), 3);
  cr_assert_eq(weir__http_connects(cli->http), 4);

  /* A truncated GetRecords answer on the kept connection: not resent by the transport (an
   * answer had begun), retried by the client on a new connection, with every record. */
  rules("[]");
  cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &ir, it), 0);
  cr_assert_eq(weir__http_connects(cli->http), 4);
  rules("[{\"op\":\"GetRecords\",\"fault\":\"truncate\",\"count\":1}]");
  weir__kinesis_records_init(&got);
  rc = weir__kinesis_get_records(cli, it, 0, &got);
  e = weir__kinesis_last_error(cli);
  cr_assert_eq(rc, 0, "GetRecords after a truncated answer: %s %s", weir_err_name(rc), e->message);
  cr_assert_eq(e->attempts, 2, "%d attempts", e->attempts);
  cr_assert_eq(got.n, (size_t)N_REC);
  weir__kinesis_records_free(&got);
  cr_assert_eq(weir_test_fproxy_injected(&px, "truncate"), 1);
  cr_assert_eq(weir__http_connects(cli->http), 5);

  /* Everything stored exactly once, in order. */
  rules("[]");
  read_back(cli, "w", N_REC, 0, true);
}

/* ---- through an HTTP CONNECT proxy from the environment ---------------------------------- */

/* Starts tests/support/connect_proxy.js (skips without node). */
static void cp_start(void) {
  char script[PATH_MAX], tmp[PATH_MAX], line[256], why[512];
  const char *argv[] = {"node", script, NULL};
  json_t *root;

  if (!fproxy_have_node())
    cr_skip_test("node is not on PATH: install Node.js to run the proxy tests");
  snprintf(tmp, sizeof(tmp), "%s", __FILE__);
  snprintf(script, sizeof(script), "%s/../support/connect_proxy.js", dirname(tmp));
  cr_assert_eq(weir_test_node_start(&cp_pid, &cp_stdin, NULL, argv, 30000, line, sizeof(line),
                                    "connect_proxy.js", why, sizeof(why)),
               0, "%s", why);
  root = json_loads(line, 0, NULL);
  cp_port = (int)json_integer_value(json_object_get(root, "port"));
  json_decref(root);
  cr_assert_gt(cp_port, 0, "connect_proxy.js printed %s", line);
}

/* The CONNECT proxy's stats (never through a proxy itself). Owned by the caller. */
static json_t *cp_stats(void) {
  static char buf[16384];
  struct fproxy_buf b = {buf, 0, sizeof(buf), false};
  char url[96];
  long status = 0;
  CURL *h = curl_easy_init();

  cr_assert_not_null(h);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/__proxy/stats", cp_port);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fproxy_write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  cr_assert_eq(curl_easy_perform(h), CURLE_OK);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  cr_assert_eq(status, 200);
  return json_loads(buf, 0, NULL);
}

static long cp_count(const char *key) {
  json_t *root = cp_stats();
  long n = (long)json_integer_value(json_object_get(root, key));
  json_decref(root);
  return n;
}

/* Tunnels made to `authority` ("host:port"). */
static long cp_tunnels_to(const char *authority) {
  json_t *root = cp_stats();
  long n = (long)json_integer_value(json_object_get(json_object_get(root, "targets"), authority));
  json_decref(root);
  return n;
}

/* ---- several calls on their way at once, driven from one thread ------------------------ */

#define N_CLIENTS 4
#define PER_CLIENT (N_BATCH / N_CLIENTS)

/* What the sink does with its slots: four clients begin a PutRecords each, then one poll loop
 * steps whichever socket is ready until every answer is complete. Answers are trickled a few
 * bytes at a time, so each call needs several steps and the calls finish interleaved. Every
 * entry must be stored exactly once, on one kept connection per client. */
Test(http_wire, calls_on_their_way_together_are_stepped_from_one_thread) {
  static struct weir_kinesis_put_entry ents[N_CLIENTS][PER_CLIENT];
  static struct weir_kinesis_put_outcomes out[N_CLIENTS];
  weir_kinesis_client *c[N_CLIENTS];
  int steps[N_CLIENTS] = {0}, order[N_CLIENTS], finished = 0, rounds = 0;
  bool done[N_CLIENTS] = {false};
  uint8_t seen[N_BATCH] = {0};
  int rc;

  start_proxied(21);
  rules("[{\"op\":\"PutRecords\",\"fault\":\"trickle\"}]");
  for (int k = 0; k < N_CLIENTS; k++) {
    c[k] = connect_to(px.endpoint, NULL, NULL);
    for (int j = 0; j < PER_CLIENT; j++) {
      int i = k * PER_CLIENT + j;
      size_t len = rec_data(i, payload[i]);

      snprintf(keys[i], sizeof(keys[0]), "k-%d", i);
      ents[k][j] = (struct weir_kinesis_put_entry){{payload[i], len}, weir_buf_str(keys[i]), NULL};
    }
  }
  for (int k = 0; k < N_CLIENTS; k++) {
    rc = weir__kinesis_put_records_begin(c[k], "w", ents[k], PER_CLIENT);
    cr_assert_eq(rc, 0, "begin %d: %s %s", k, weir_err_name(rc),
                 weir__kinesis_last_error(c[k])->message);
    cr_assert_geq(weir__kinesis_call_socket(c[k]), 0);
  }
  while (finished < N_CLIENTS) {
    struct pollfd pfd[N_CLIENTS];
    int who[N_CLIENTS], n = 0;

    cr_assert_lt(++rounds, 100000, "the calls never finished");
    for (int k = 0; k < N_CLIENTS; k++)
      if (!done[k]) {
        pfd[n] =
            (struct pollfd){weir__kinesis_call_socket(c[k]), weir__kinesis_call_events(c[k]), 0};
        who[n++] = k;
      }
    cr_assert_gt(poll(pfd, (nfds_t)n, 5000), 0, "no call made progress in 5 s");
    for (int j = 0; j < n; j++) {
      int k = who[j];
      const uint8_t *body;
      size_t len;
      bool fin = false;

      if (pfd[j].revents == 0)
        continue;
      steps[k]++;
      rc = weir__kinesis_call_step(c[k], &fin, &body, &len);
      if (!fin) {
        cr_assert_eq(rc, 0);
        continue;
      }
      cr_assert_eq(rc, 0, "client %d: %s %s", k, weir_err_name(rc),
                   weir__kinesis_last_error(c[k])->message);
      cr_assert_eq(weir__kinesis_put_records_answer(c[k], body, len, &out[k], PER_CLIENT), 0);
      cr_assert_eq(out[k].failed, 0);
      for (int e = 0; e < PER_CLIENT; e++)
        cr_assert(out[k].ok[e], "client %d entry %d", k, e);
      done[k] = true;
      order[finished++] = k;
    }
  }
  for (int k = 0; k < N_CLIENTS; k++) {
    /* trickled: the answer came in several pieces, each a step */
    cr_assert_gt(steps[k], 2, "client %d finished in %d steps", k, steps[k]);
    cr_assert_eq(weir__http_connects(c[k]->http), 1);
  }
  fprintf(stderr, "[together] %d poll rounds; finished in order %d %d %d %d\n", rounds, order[0],
          order[1], order[2], order[3]);
  cr_assert_eq(weir_test_fproxy_injected(&px, "trickle"), N_CLIENTS);

  /* Read back: every record exactly once, its data intact (the calls' order in the shard is
   * theirs to choose). */
  {
    struct weir_kinesis_iterator_req ir = {"w", "shardId-000000000000",
                                           WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
    char it[WEIR_KINESIS_ITERATOR_MAX + 1];
    int total = 0;

    cr_assert_eq(weir__kinesis_get_shard_iterator(admin, &ir, it), 0);
    weir__kinesis_records_init(&got);
    for (int calls = 0; total < N_BATCH && calls < 40; calls++) {
      cr_assert_eq(weir__kinesis_get_records(admin, it, 1000, &got), 0);
      for (size_t r = 0; r < got.n; r++, total++) {
        const struct weir_kinesis_record *rec = &got.recs[r];
        uint8_t want[DATA_MAX];
        char key[16];
        int i;
        size_t len;

        cr_assert_lt(rec->partition_key.len, sizeof(key));
        memcpy(key, rec->partition_key.ptr, rec->partition_key.len);
        key[rec->partition_key.len] = '\0';
        cr_assert_eq(sscanf(key, "k-%d", &i), 1, "key %s", key);
        cr_assert(i >= 0 && i < N_BATCH && !seen[i], "record %d twice or unknown", i);
        seen[i] = 1;
        len = rec_data(i, want);
        cr_assert_eq(rec->data.len, len, "record %d length", i);
        cr_assert_eq(memcmp(rec->data.ptr, want, len), 0, "record %d data", i);
      }
      snprintf(it, sizeof(it), "%s", got.next_iterator);
    }
    weir__kinesis_records_free(&got);
    cr_assert_eq(total, N_BATCH, "records read back");
  }
  for (int k = 0; k < N_CLIENTS; k++)
    weir_kinesis_client_destroy(c[k]);
}

/* No proxy variable the environment may hold reaches libcurl except those a test sets. */
static void clear_proxy_env(void) {
  static const char *const names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                      "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    unsetenv(names[i]);
}

Test(http_wire, posts_tunnel_through_the_http_proxy_of_the_environment) {
  struct weir_kinesis_stream_summary sum;
  char proxy[64], authority[64];

  start_server("kinesalite", "w");
  cp_start();
  clear_proxy_env();
  snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", cp_port);
  cr_assert_eq(setenv("http_proxy", proxy, 1), 0);
  cli = connect_to(srv.endpoint, NULL, NULL);
  sent = 0;
  workload(cli, "w");
  unsetenv("http_proxy");

  /* One tunnel, to the server, carried every request; each record's base64 data went up in a
   * PutRecords and came down in a GetRecords. */
  snprintf(authority, sizeof(authority), "127.0.0.1:%d", srv.port);
  cr_assert_eq(weir__http_connects(cli->http), 1);
  cr_assert_eq(cp_count("tunnels"), 1);
  cr_assert_eq(cp_tunnels_to(authority), 1);
  cr_assert_gt(cp_count("bytes_up"), 2 * N_BATCH * 64);
  cr_assert_gt(cp_count("bytes_down"), 2 * N_BATCH * 64);
  cr_assert_eq(cp_count("refused"), 0);

  /* Without the variable a new client goes straight to the server. */
  cli2 = connect_to(srv.endpoint, NULL, NULL);
  cr_assert_eq(weir__kinesis_describe_stream_summary(cli2, "w", &sum), 0);
  cr_assert_eq(weir__http_connects(cli2->http), 1);
  cr_assert_eq(cp_count("tunnels"), 1, "no tunnel without http_proxy");
}

Test(http_wire, https_posts_tunnel_through_HTTPS_PROXY_with_tls_verified) {
  char proxy[64], url[128], authority[64];
  struct weir_kinesis_stream_summary sum;
  const struct weir_kinesis_error *e;
  int rc;

  start_server("kinesis-local", "w");
  cr_assert_gt(srv.tls_port, 0);
  cp_start();
  clear_proxy_env();
  snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", cp_port);
  cr_assert_eq(setenv("HTTPS_PROXY", proxy, 1), 0);
  /* The package's certificate names "Unknown", a name that resolves nowhere: no pinned address
   * this time, only the proxy (which sends every tunnel to 127.0.0.1) can reach it. */
  snprintf(url, sizeof(url), "https://Unknown:%d", srv.tls_port);
  snprintf(authority, sizeof(authority), "Unknown:%d", srv.tls_port);

  /* The tunnel does not bypass verification: without the CA the handshake is refused. */
  cli = connect_to(url, NULL, NULL);
  rc = weir__kinesis_describe_stream_summary(cli, "w", &sum);
  e = weir__kinesis_last_error(cli);
  cr_assert_eq(rc, WEIR_EIO, "refused without the CA: %s %s", weir_err_name(rc), e->message);
  cr_assert_eq(e->cls, WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(e->attempts, 1);
  cr_assert(strstr(e->message, "certificate") != NULL, "message: %s", e->message);
  cr_assert_eq(cp_tunnels_to(authority), 1);
  weir_kinesis_client_destroy(cli);

  cli = connect_to(url, srv.ca_file, NULL);
  sent = 0;
  workload(cli, "w");
  unsetenv("HTTPS_PROXY");
  cr_assert_eq(weir__http_connects(cli->http), 1);
  cr_assert_eq(cp_count("tunnels"), 2);
  cr_assert_eq(cp_tunnels_to(authority), 2);
  cr_assert_gt(cp_count("bytes_up"), 2 * N_BATCH * 64);
  cr_assert_gt(cp_count("bytes_down"), 2 * N_BATCH * 64);
}
