/*
 * test_bad_input.c: bad input at the edges (issue 9). Each test feeds bad records between good
 * ones and checks that the bad ones give a clear error or are counted and skipped, per the
 * configuration, that nothing crashes, and that every good record around them arrives:
 *  - malformed records into the Kinesis source with the JSON deserializer (skipped and counted,
 *    or failing the job with stream, shard and sequence number in the message);
 *  - oversized records and invalid UTF-8 partition keys into the Kinesis sink (fail_on_error
 *    true: a clear error; false: dead-lettered), read back from kinesalite;
 *  - malformed JSON into every JSON field operator (weir_bad_records_total, or a failed job);
 *  - one pipeline file holding every class of mistake, fixed one at a time: each error has
 *    file:line:col pointing at the mistake (tests/unit/test_pipeline_config.c checks each
 *    message exactly; this checks them together, from a file on disk, in the Kinesis and
 *    analytics sections too, and with bytes that are not UTF-8).
 * The Kinesis tests skip when `npm ci` has not been run in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/kinesis_fixture.h"
#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"
#include "operators/json_int.h"

static struct weir_test_kserver srv;
static weir_kinesis_client *cli;
static char tmp_dir[64];

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  srv.pid = 0;
  srv.stdin_fd = -1;
  kfx_make_dir(tmp_dir, sizeof(tmp_dir), "weir-bad-input");
}

static void teardown(void) {
  kfx_teardown(&srv, &cli, tmp_dir);
}

TestSuite(bad_input, .init = quiet, .fini = teardown);

static void start_server(void) {
  kfx_start(&srv, &cli, "kinesalite");
}

static void make_stream(const char *stream) {
  kfx_make_stream(cli, stream, 1);
}

/* ---- collecting records ------------------------------------------------------------------ */

#define MAX_GOT 64

struct got {
  pthread_mutex_t mu;
  size_t n;
  char v[MAX_GOT][64];
};

static int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  struct got *g = data;

  (void)subtask;
  pthread_mutex_lock(&g->mu);
  for (size_t i = 0; i < n && g->n < MAX_GOT; i++, g->n++)
    snprintf(g->v[g->n], sizeof(g->v[g->n]), "%.*s", (int)recs[i].value.len,
             (const char *)recs[i].value.ptr);
  pthread_mutex_unlock(&g->mu);
  return 0;
}

/* Reads every record of the single shard of `stream` into g (data) and keys (partition keys). */
static void read_stream(const char *stream, struct got *g, struct got *keys) {
  struct weir_kinesis_iterator_req req = {stream, "shardId-000000000000",
                                          WEIR_KINESIS_ITER_TRIM_HORIZON, NULL, 0};
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  struct weir_kinesis_records r;

  g->n = keys->n = 0;
  weir__kinesis_records_init(&r);
  cr_assert_eq(weir__kinesis_get_shard_iterator(cli, &req, it), 0);
  for (int empty = 0; empty < 2;) {
    cr_assert_eq(weir__kinesis_get_records(cli, it, 0, &r), 0);
    empty = r.n == 0 ? empty + 1 : 0;
    for (size_t i = 0; i < r.n && g->n < MAX_GOT; i++, g->n++, keys->n++) {
      snprintf(g->v[g->n], sizeof(g->v[g->n]), "%.*s",
               (int)(r.recs[i].data.len < 60 ? r.recs[i].data.len : 60),
               (const char *)r.recs[i].data.ptr);
      snprintf(keys->v[keys->n], sizeof(keys->v[keys->n]), "%.*s", (int)r.recs[i].partition_key.len,
               (const char *)r.recs[i].partition_key.ptr);
    }
    snprintf(it, sizeof(it), "%s", r.next_iterator);
  }
  weir__kinesis_records_free(&r);
}

/* ---- the Kinesis source with the JSON deserializer --------------------------------------- */

/* Good records "{"i":<n>}" with malformed ones between them. */
static const char *const src_input[] = {
    "{\"i\":0}",     "{\"i\":",        "{\"i\":1}", "not json",  "{\"i\":2}",
    "\xff\xfe\"x\"", "{\"i\":3}",      "[1,2",      "{\"i\":4}", "{\"a\":1} trailing",
    "{\"i\":5}",     "\"unterminated", "{\"i\":6}",
};
#define SRC_N (sizeof(src_input) / sizeof(src_input[0]))
#define SRC_GOOD 7
#define SRC_FIRST_BAD 1

Test(bad_input, kinesis_source_json_bad_records_skipped_or_failing) {
  const char *streams[] = {"bad-in"};
  struct weir_kinesis_put_entry e[SRC_N];
  struct weir_kinesis_put_result res[SRC_N];
  static struct got got;
  weir_kinesis_source_config sc;
  size_t failed;
  weir_job *job;
  int src, rc;

  start_server();
  make_stream("bad-in");
  for (size_t i = 0; i < SRC_N; i++) {
    e[i].data = weir_buf_str(src_input[i]);
    e[i].partition_key = weir_buf_str("p");
    e[i].explicit_hash_key = NULL;
  }
  cr_assert_eq(weir__kinesis_put_records(cli, "bad-in", e, SRC_N, res, &failed), 0);
  cr_assert_eq(failed, 0);
  for (int fail = 0; fail < 2; fail++) {
    pthread_mutex_init(&got.mu, NULL);
    got.n = 0;
    weir_kinesis_source_config_init(&sc);
    sc.streams = streams;
    sc.n_streams = 1;
    weir_test_kserver_client_config(&sc.client, srv.endpoint);
    sc.initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
    sc.deserializer = WEIR_KINESIS_DESER_JSON;
    sc.fail_on_deserialize_error = fail;
    sc.stop_at_end = true;
    cr_assert_eq(weir_job_create(&job, "json"), 0);
    cr_assert_eq(weir_job_add_kinesis_source(job, "kinesis", &sc, &src), 0);
    cr_assert_eq(weir_job_add_callback_sink(job, src, "out", collect_cb, &got, NULL), 0);
    rc = weir_job_run(job);
    if (fail) {
      const char *msg = weir_job_error(job);

      cr_assert_eq(rc, WEIR_EPARSE, "rc %s: %s", weir_err_name(rc), msg);
      cr_assert_not_null(strstr(msg, "bad-in/shardId-000000000000"), "%s", msg);
      cr_assert_not_null(strstr(msg, res[SRC_FIRST_BAD].sequence_number),
                         "the first bad record's sequence number %s is not in: %s",
                         res[SRC_FIRST_BAD].sequence_number, msg);
      cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_rejected_total", NULL), 1);
    } else {
      cr_assert_eq(rc, 0, "%s", weir_job_error(job));
      cr_assert_eq(got.n, SRC_GOOD, "good records: %zu", got.n);
      for (size_t i = 0; i < SRC_GOOD; i++) {
        char want[16];

        snprintf(want, sizeof(want), "{\"i\":%zu}", i);
        cr_assert_str_eq(got.v[i], want, "record %zu, in order", i);
      }
      cr_assert_eq(weir_job_metric_sum(job, "weir_kinesis_source_rejected_total", NULL),
                   (int64_t)(SRC_N - SRC_GOOD));
    }
    weir_job_destroy(job);
    pthread_mutex_destroy(&got.mu);
  }
}

/* ---- the Kinesis sink: oversized records, invalid partition keys ------------------------- */

#define SINK_N 20
#define SINK_BIG 5     /* this record's data is made larger than the per-record limit */
#define SINK_BADKEY 12 /* this record's partition key is not UTF-8 */
static uint8_t big_data[(1u << 20) + 1];
static const char bad_key[] = "k\xff\xfe\xc3";

/* Values "r<i>" keyed "k<i mod 3>"; SINK_BIG gets 1 MiB + 1 of data, SINK_BADKEY a key that is
 * not UTF-8 (a lone 0xff, 0xfe and a truncated two-byte sequence). */
static int edge_serializer(weir_ctx *ctx, void *data, const weir_record *in,
                           weir_kinesis_sink_out *out) {
  int which = *(const int *)data;

  (void)ctx;
  if (in->value.len == 3 && memcmp(in->value.ptr, "r05", 3) == 0 && (which & 1)) {
    memset(big_data, 'b', sizeof(big_data));
    out->data = (weir_buf){big_data, sizeof(big_data)};
  }
  if (in->value.len == 3 && memcmp(in->value.ptr, "r12", 3) == 0 && (which & 2))
    out->partition_key = (weir_buf){(const uint8_t *)bad_key, sizeof(bad_key) - 1};
  return 0;
}

/* Every record r00..r<SINK_N-1> but `missing` read back exactly once, under its key k<i mod 3>,
 * each key's records in order (the sink keeps per-key order, not order across keys). */
static void check_per_key_order(const struct got *got, const struct got *keys, int missing) {
  int seen[SINK_N] = {0}, last[3] = {-1, -1, -1};

  for (size_t j = 0; j < got->n; j++) {
    int i = -1;
    char want[8];

    cr_assert_eq(sscanf(got->v[j], "r%d", &i), 1, "unexpected record %s", got->v[j]);
    cr_assert(i >= 0 && i < SINK_N && i != missing, "unexpected record %s", got->v[j]);
    cr_assert_eq(seen[i]++, 0, "record %s twice", got->v[j]);
    snprintf(want, sizeof(want), "k%d", i % 3);
    cr_assert_str_eq(keys->v[j], want, "record %s", got->v[j]);
    cr_assert_gt(i, last[i % 3], "key %s: record %d after %d", want, i, last[i % 3]);
    last[i % 3] = i;
  }
  for (int i = 0; i < SINK_N; i++)
    cr_assert(i == missing || seen[i], "record r%02d is missing", i);
}

/* Runs SINK_N records through a Kinesis sink to `stream`; which: 1 = the oversized record,
 * 2 = the bad key, 3 = both. Returns the job's code; *msg gets its error. */
static int run_sink(const char *stream, int which, bool fail_on_error, const char *dlq, char *msg,
                    size_t msg_cap, int64_t *dead) {
  static int which_s;
  weir_record recs[SINK_N];
  char v[SINK_N][8], key[SINK_N][8];
  weir_push_source *ps;
  weir_kinesis_sink_config k;
  weir_job *job;
  int src, rc;

  which_s = which;
  cr_assert_eq(weir_job_create(&job, "sink-edges"), 0);
  cr_assert_eq(weir_push_source_create(&ps, 0), 0);
  cr_assert_eq(weir_job_add_push_source(job, "in", ps, &src), 0);
  weir_kinesis_sink_config_init(&k);
  k.stream = stream;
  weir_test_kserver_client_config(&k.client, srv.endpoint);
  k.serializer = edge_serializer;
  k.serializer_data = &which_s;
  k.fail_on_error = fail_on_error;
  k.dead_letter_path = dlq;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  for (int i = 0; i < SINK_N; i++) {
    recs[i] = weir_record_init();
    recs[i].value = (weir_buf){(const uint8_t *)v[i], (size_t)snprintf(v[i], 8, "r%02d", i)};
    recs[i].key = (weir_buf){(const uint8_t *)key[i], (size_t)snprintf(key[i], 8, "k%d", i % 3)};
  }
  /* One call: the records are one batch, queued until the job runs. */
  cr_assert_eq(weir_push_source_push(ps, recs, SINK_N), 0);
  cr_assert_eq(weir_push_source_close(ps), 0);
  rc = weir_job_run(job);
  snprintf(msg, msg_cap, "%s", weir_job_error(job));
  *dead = weir_job_metric_sum(job, "weir_kinesis_sink_dead_letters_total", NULL);
  weir_job_destroy(job);
  weir_push_source_destroy(ps);
  return rc;
}

Test(bad_input, kinesis_sink_oversized_record_fails_or_is_dead_lettered) {
  static struct got got, keys;
  char msg[1024], dlq[128], *line = NULL;
  size_t line_cap = 0;
  int64_t dead;
  int rc, lines = 0;
  FILE *f;

  start_server();
  make_stream("edge-fail");
  make_stream("edge-dlq");
  rc = run_sink("edge-fail", 1, true, NULL, msg, sizeof(msg), &dead);
  cr_assert_eq(rc, WEIR_ETOOBIG, "%s: %s", weir_err_name(rc), msg);
  cr_assert_not_null(strstr(msg, "edge-fail"), "the stream is not named: %s", msg);
  cr_assert_not_null(strstr(msg, "data 1048577"), "the size is not given: %s", msg);
  cr_assert_not_null(strstr(msg, "limit of 1048576 bytes"), "the limit is not given: %s", msg);

  snprintf(dlq, sizeof(dlq), "%s/dead.jsonl", tmp_dir);
  rc = run_sink("edge-dlq", 1, false, dlq, msg, sizeof(msg), &dead);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), msg);
  cr_assert_eq(dead, 1);
  cr_assert_not_null(f = fopen(dlq, "r"));
  while (getline(&line, &line_cap, f) > 0) { /* the data makes the line about 1.4 MB long */
    lines++;
    cr_assert_not_null(strstr(line, "\"stream\":\"edge-dlq\""), "%.200s", line);
    cr_assert_not_null(strstr(line, "\"partition_key\":\"k2\""), "%.200s", line);
    cr_assert_not_null(strstr(line, "oversized"), "%.200s", line);
  }
  free(line);
  fclose(f);
  cr_assert_eq(lines, 1);
  read_stream("edge-dlq", &got, &keys);
  cr_assert_eq(got.n, SINK_N - 1);
  check_per_key_order(&got, &keys, SINK_BIG);
}

/*
 * What kinesalite does with a partition key that is not UTF-8: the PutRecords body is JSON, so
 * the bytes cannot be carried as they are. Found (2026-11): weir's client writes the bytes
 * unescaped (connectors/kinesis/json.c weir__kjson_str) and kinesalite decodes the body as
 * UTF-8 with replacement, so it stores the record under a different key (U+FFFD for each bad
 * byte). Real Kinesis documents partition keys as Unicode strings; a body that is not UTF-8 is
 * a SerializationException for the whole request. Either way the record would not keep its key:
 * the sink must refuse such a key itself (fail_on_error: a clear error; else a dead letter).
 */
/* What happens today, and must keep holding: no crash, no failed job, nothing lost: every
 * other record arrives with its key, and the bad-key record is either dead-lettered (once the
 * sink checks keys) or stored by kinesalite under its decoded key (U+FFFD per bad byte). */
Test(bad_input, kinesis_sink_invalid_utf8_partition_key_no_crash_nothing_lost) {
  static struct got got, keys;
  char msg[1024], dlq[128];
  int64_t dead;
  int rc, others = 0, mangled = 0;
  size_t at = 0;

  start_server();
  make_stream("key-now");
  snprintf(dlq, sizeof(dlq), "%s/dead-now.jsonl", tmp_dir);
  rc = run_sink("key-now", 2, false, dlq, msg, sizeof(msg), &dead);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), msg);
  read_stream("key-now", &got, &keys);
  for (size_t i = 0; i < got.n; i++) {
    if (strcmp(got.v[i], "r12") == 0) {
      cr_assert_str_neq(keys.v[i], bad_key);
      mangled++;
      at = i;
      continue;
    }
    cr_assert(keys.v[i][0] == 'k' && keys.v[i][1] >= '0' && keys.v[i][1] <= '2' &&
                  keys.v[i][2] == '\0',
              "record %s arrived with key '%s'", got.v[i], keys.v[i]);
    others++;
  }
  cr_assert_eq(others, SINK_N - 1);
  cr_assert_eq(mangled + dead, 1, "the bad-key record is lost or doubled");
  if (mangled)
    cr_log_info("a partition key that is not UTF-8 reached kinesalite and was stored as '%s' "
                "(%zu bytes; the sink does not check UTF-8 yet)",
                keys.v[at], strlen(keys.v[at]));
}

/* What must happen: connectors/kinesis/sink.c check() refuses a key that is not UTF-8 as
 * "invalid_partition_key" (see the comment above the previous test). */
Test(bad_input, kinesis_sink_invalid_utf8_partition_key_fails_or_is_dead_lettered) {
  static struct got got, keys;
  char msg[1024], dlq[128], line[512];
  int64_t dead;
  int rc, lines = 0;
  FILE *f;

  start_server();
  make_stream("key-fail");
  make_stream("key-dlq");
  rc = run_sink("key-fail", 2, true, NULL, msg, sizeof(msg), &dead);
  cr_assert_neq(rc, 0, "a key that is not UTF-8 was sent (the server stores a different key)");
  cr_assert_not_null(strstr(msg, "key-fail"), "the stream is not named: %s", msg);
  cr_assert_not_null(strstr(msg, "partition key"), "%s", msg);

  snprintf(dlq, sizeof(dlq), "%s/dead.jsonl", tmp_dir);
  rc = run_sink("key-dlq", 2, false, dlq, msg, sizeof(msg), &dead);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), msg);
  cr_assert_eq(dead, 1);
  cr_assert_not_null(f = fopen(dlq, "r"));
  while (fgets(line, sizeof(line), f) != NULL) {
    lines++;
    cr_assert_not_null(strstr(line, "\"stream\":\"key-dlq\""), "%s", line);
    cr_assert_not_null(strstr(line, "invalid_partition_key"), "%s", line);
  }
  fclose(f);
  cr_assert_eq(lines, 1);
  read_stream("key-dlq", &got, &keys);
  cr_assert_eq(got.n, SINK_N - 1);
  check_per_key_order(&got, &keys, SINK_BADKEY);
}

/* ---- JSON field operators on malformed JSON ------------------------------------------------ */

/* Good objects {"k":"a","n":<i>} between malformed ones; offsets 0.. in this order. */
static const char *const json_input[] = {
    "{\"k\":\"a\",\"n\":1}", "{\"k\":\"a\",\"n\":",        /* truncated */
    "{\"k\":\"a\",\"n\":2}", "{\"k\":\"a\" \"n\":3}",      /* missing comma */
    "{\"k\":\"a\",\"n\":3}", "{\"k\":\"\xff\",\"n\":9}",   /* a string that is not UTF-8 */
    "{\"k\":\"a\",\"n\":4}", "{\"k\":\"a\",\"n\":9} tail", /* trailing garbage */
    "{\"k\":\"a\",\"n\":5}", "[{\"k\":\"a\",\"n\":9}]",    /* not an object */
    "{\"k\":\"a\",\"n\":6}", "{\"k\":\"a\",\"n\":9,}",     /* trailing comma */
    "{\"k\":\"a\",\"n\":7}", "",                           /* empty */
    "{\"k\":\"a\",\"n\":8}",
};
#define JSON_N (sizeof(json_input) / sizeof(json_input[0]))
#define JSON_GOOD 8

/* OP_PARSE_FILTER: json_parse ahead of json_filter, the composition docs recommend for strict
 * checking. */
enum json_op { OP_PARSE, OP_FILTER, OP_PROJECT, OP_KEY_BY_WINDOW, OP_PARSE_FILTER };

/* Runs the records through one operator with on_bad; *bad = weir_bad_records_total. */
static int run_json(enum json_op op, weir_bad_record_policy on_bad, struct got *out, int64_t *bad,
                    char *msg, size_t msg_cap) {
  weir_record recs[JSON_N];
  weir_push_source *ps;
  weir_job *job;
  int src, id, rc;

  cr_assert_eq(weir_job_create(&job, "json-bad"), 0);
  cr_assert_eq(weir_push_source_create(&ps, 0), 0);
  cr_assert_eq(weir_job_add_push_source(job, "in", ps, &src), 0);
  switch (op) {
  case OP_PARSE:
    cr_assert_eq(weir_job_json_parse(job, src, "op", on_bad, &id), 0);
    break;
  case OP_FILTER:
  case OP_PARSE_FILTER: {
    weir_json_cond c = {"n", WEIR_JSON_GE, "0"};
    int up = src;

    if (op == OP_PARSE_FILTER)
      cr_assert_eq(weir_job_json_parse(job, src, "parse", on_bad, &up), 0);
    cr_assert_eq(weir_job_json_filter(job, up, "op", &c, 1, on_bad, &id), 0);
    break;
  }
  case OP_PROJECT: {
    weir_json_field f = {"n", "n"};

    cr_assert_eq(weir_job_json_project(job, src, "op", &f, 1, on_bad, &id), 0);
    break;
  }
  case OP_KEY_BY_WINDOW: {
    weir_window_config w = {0};
    int k;

    w.kind = WEIR_WINDOW_GLOBAL;
    w.time = WEIR_TIME_PROCESSING;
    w.aggs = WEIR_AGG_SUM;
    w.value_field = "n";
    w.on_bad = on_bad;
    cr_assert_eq(weir_job_json_key_by(job, src, "op", "k", on_bad, &k), 0);
    cr_assert_eq(weir_job_window(job, k, "sum", &w, &id), 0);
    cr_assert_eq(weir_job_set_uid(job, id, "sum"), 0);
    break;
  }
  }
  cr_assert_eq(weir_job_add_callback_sink(job, id, "out", collect_cb, out, NULL), 0);
  for (size_t i = 0; i < JSON_N; i++) {
    recs[i] = weir_record_init();
    recs[i].value = weir_buf_str(json_input[i]);
    recs[i].offset = i;
  }
  cr_assert_eq(weir_push_source_push(ps, recs, JSON_N), 0);
  cr_assert_eq(weir_push_source_close(ps), 0);
  rc = weir_job_run(job);
  snprintf(msg, msg_cap, "%s", weir_job_error(job));
  *bad = weir_job_metric_sum(job, "weir_bad_records_total", NULL);
  weir_job_destroy(job);
  weir_push_source_destroy(ps);
  return rc;
}

/*
 * json_parse and json_project check the whole record. json_filter, json_key_by, the window's
 * value_field (and timestamps) read only up to their field (operators/json_int.h,
 * weir__json_find: "members after it are not checked"): a record malformed only after the field
 * (JSON_LATE_BAD of them here) may pass them. Either way no good record is lost and every record
 * is either counted as bad or passed on whole; json_parse ahead makes the check strict.
 */
#define JSON_LATE_BAD 2
Test(bad_input, json_operators_count_or_fail_on_malformed_json) {
  static const char *names[] = {"json_parse", "json_filter", "json_project", "json_key_by+window",
                                "json_parse+json_filter"};
  static struct got out;
  const int64_t n_bad = (int64_t)(JSON_N - JSON_GOOD);
  char msg[512];
  int64_t bad;

  for (int op = OP_PARSE; op <= OP_PARSE_FILTER; op++) {
    bool lazy = op == OP_FILTER || op == OP_KEY_BY_WINDOW;
    size_t good = 0, passed_bad = 0;
    int rc;

    pthread_mutex_init(&out.mu, NULL);
    out.n = 0;
    rc = run_json((enum json_op)op, WEIR_BAD_RECORD_DROP, &out, &bad, msg, sizeof(msg));
    cr_assert_eq(rc, 0, "%s: %s", names[op], msg);
    if (lazy)
      cr_assert(bad >= n_bad - JSON_LATE_BAD && bad <= n_bad, "%s: bad records counted %lld",
                names[op], (long long)bad);
    else
      cr_assert_eq(bad, n_bad, "%s: bad records counted %lld", names[op], (long long)bad);
    if (op == OP_KEY_BY_WINDOW) {
      /* A running sum: n = 1..8 from the good records, 9 from each bad one passed on. */
      char want[32];

      cr_assert_eq(out.n, (size_t)(JSON_N - (size_t)bad), "%s: %zu results", names[op], out.n);
      snprintf(want, sizeof(want), "\"sum\":%lld", 36 + 9 * (long long)(n_bad - bad));
      cr_assert_not_null(strstr(out.v[out.n - 1], want), "%s: %s", names[op], out.v[out.n - 1]);
    } else {
      for (size_t i = 0; i < out.n; i++) {
        char want[8];

        if (strstr(out.v[i], "\"n\":9") != NULL) { /* a bad record let through whole */
          passed_bad++;
          continue;
        }
        snprintf(want, sizeof(want), "\"n\":%zu", ++good);
        cr_assert_not_null(strstr(out.v[i], want), "%s: good record %zu is %s", names[op], good,
                           out.v[i]);
      }
      cr_assert_eq(good, JSON_GOOD, "%s: %zu good records out", names[op], good);
      cr_assert_eq((int64_t)passed_bad, n_bad - bad, "%s", names[op]);
    }
    pthread_mutex_destroy(&out.mu);

    pthread_mutex_init(&out.mu, NULL);
    out.n = 0;
    rc = run_json((enum json_op)op, WEIR_BAD_RECORD_FAIL, &out, &bad, msg, sizeof(msg));
    cr_assert_eq(rc, WEIR_EPARSE, "%s: %s: %s", names[op], weir_err_name(rc), msg);
    {
      /* The first bad record a node meets: key_by and the window run on their own threads, so
       * either may fail first (offset 1 passes key_by: its "k" comes before the breakage). */
      const char *at = strstr(msg, "offset ");
      long off = at != NULL ? strtol(at + 7, NULL, 10) : -1;

      cr_assert(off % 2 == 1 && off < (long)JSON_N, "%s: no bad record named: %s", names[op], msg);
      if (!lazy)
        cr_assert_eq(off, 1, "%s", msg);
      for (const char *c = msg; *c != '\0'; c++)
        cr_assert((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f,
                  "%s: an unprintable byte in the message: %s", names[op], msg);
    }
    pthread_mutex_destroy(&out.mu);
  }
}

/* The scanner behind the field operators takes strings of well-formed UTF-8 only (RFC 8259
 * section 8.1; RFC 3629), as the Kinesis source's JSON deserializer (jansson) does. */
Test(bad_input, json_scanner_checks_utf8_in_strings) {
  static const char *const ok[] = {"{\"s\":\"caf\xc3\xa9\"}", "{\"s\":\"\xe2\x82\xac\"}",
                                   "{\"s\":\"\xf0\x9f\x98\x80\"}", "{\"\xc3\xa9\":1}",
                                   "{\"s\":\"\xef\xbf\xbd\xf4\x8f\xbf\xbf\"}"};
  static const char *const bad[] = {
      "{\"s\":\"\x80\"}",             /* a lone continuation byte */
      "{\"s\":\"\xc0\x80\"}",         /* overlong NUL */
      "{\"s\":\"\xe0\x80\xaf\"}",     /* overlong '/' */
      "{\"s\":\"\xed\xa0\x80\"}",     /* a UTF-16 surrogate */
      "{\"s\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
      "{\"s\":\"\xf5\x80\x80\x80\"}", /* no such lead byte */
      "{\"s\":\"\xe2\x82\"}",         /* cut short by the closing quote */
      "{\"\xff\":1}",                 /* in a member name */
  };

  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    cr_assert_eq(weir__json_validate((const uint8_t *)ok[i], strlen(ok[i])), 0, "ok[%zu]", i);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_eq(weir__json_validate((const uint8_t *)bad[i], strlen(bad[i])), WEIR_EPARSE,
                 "bad[%zu]", i);
  /* Cut inside a sequence at the very end of the input: no read past it. */
  cr_assert_eq(weir__json_validate((const uint8_t *)"{\"s\":\"\xf0\x9f", 8), WEIR_EPARSE);
}

/* ---- a pipeline file with every class of mistake --------------------------------------------- */

/*
 * The valid file, one line per entry; each mistake replaces one line. Loading the file with all
 * mistakes in, the loader names one of them (file:line:col and a word of the message); the test
 * repairs that line and loads again, until the file is valid: every mistake is found, in some
 * order, each at its own line.
 */
struct mistake {
  int line;         /* 1-based line in `good` */
  const char *bad;  /* replacement line */
  const char *word; /* expected in the message */
  int at;           /* the line the error names when not `line` (0 = `line`) */
  bool fixed;
};

static const char *const good[] = {
    "name: edges",                              /* 1 */
    "parallelism: 1",                           /* 2 */
    "checkpoint:",                              /* 3 */
    "  dir: /tmp/weir-bad-input-never-created", /* 4 */
    "  interval: 1s",                           /* 5 */
    "  mode: exactly_once",                     /* 6 */
    "sources:",                                 /* 7 */
    "  - type: kinesis",                        /* 8 */
    "    name: in",                             /* 9 */
    "    uid: in",                              /* 10 */
    "    streams: [clicks]",                    /* 11 */
    "    region: us-east-1",                    /* 12 */
    "    endpoint: http://127.0.0.1:1",         /* 13 */
    "    initial_position: trim_horizon",       /* 14 */
    "    deserializer: json",                   /* 15 */
    "    fail_on_deserialize_error: false",     /* 16 */
    "    getrecords_max: 100",                  /* 17 */
    "operators:",                               /* 18 */
    "  - type: json_filter",                    /* 19 */
    "    where:",                               /* 20 */
    "      - {field: page, op: exists}",        /* 21 */
    "    on_bad: drop",                         /* 22 */
    "  - type: key_by",                         /* 23 */
    "    field: page",                          /* 24 */
    "  - type: window",                         /* 25 */
    "    name: counts",                         /* 26 */
    "    uid: counts",                          /* 27 */
    "    kind: tumbling",                       /* 28 */
    "    size: 10s",                            /* 29 */
    "    aggregates: [count]",                  /* 30 */
    "sinks:",                                   /* 31 */
    "  - type: kinesis",                        /* 32 */
    "    input: counts",                        /* 33 */
    "    stream: out",                          /* 34 */
    "    region: us-east-1",                    /* 35 */
    "    endpoint: http://127.0.0.1:1",         /* 36 */
    "    pk_mode: record_key",                  /* 37 */
    "    max_request_records: 100",             /* 38 */
    "    fail_on_error: true",                  /* 39 */
};
#define GOOD_LINES (sizeof(good) / sizeof(good[0]))

static struct mistake mistakes[] = {
    {2, "parallelism: two", "integer", 0, false},                   /* wrong type */
    {5, "  interval: 1 fortnight", "duration", 0, false},           /* bad duration */
    {6, "  mode: exactly-once", "exactly_once", 0, false},          /* bad enum */
    {11, "    streams: clicks", "list", 0, false},                  /* scalar for a list */
    {12, "    regoin: us-east-1", "region", 0, false},              /* unknown key, with a hint */
    {14, "    initial_position: oldest", "trim_horizon", 0, false}, /* bad enum (kinesis) */
    {16, "    fail_on_deserialize_error: maybe", "true or false", 0, false}, /* bad bool */
    {17, "    getrecords_max: 20000", "range", 0, false},                    /* out of range */
    {21, "      - {field: page, op: sorta}", "op", 0, false}, /* bad condition operator */
    {22, "    on_bad: ignore", "drop", 0, false},             /* bad enum (analytics) */
    {24, "    field: \"${WEIR_BAD_INPUT_UNSET}\"", "WEIR_BAD_INPUT_UNSET", 0,
     false},                                                         /* unset env var */
    {29, "    size: 10", "unit", 0, false},                          /* duration without unit */
    {30, "    aggregates: [count, median]", "median", 0, false},     /* unknown aggregate */
    {33, "    input: nowhere", "nowhere", 0, false},                 /* graph: unknown input */
    {34, "    stream:", "missing required key 'stream'", 32, false}, /* required value missing */
    {37, "    pk_mode: fixed", "missing required key 'partition_key'", 32,
     false},                                                 /* missing dependent key */
    {38, "    max_request_records: 501", "range", 0, false}, /* over the API limit */
    {39, "    fail_on_error: \xff\xfe", "UTF-8", 0, false},  /* bytes that are not UTF-8 */
    {26, "    name: counts: x", "YAML", 0, false},           /* YAML syntax error */
};
#define N_MISTAKES (sizeof(mistakes) / sizeof(mistakes[0]))

static void write_pipeline(const char *path) {
  FILE *f = fopen(path, "w");

  cr_assert_not_null(f);
  for (size_t i = 0; i < GOOD_LINES; i++) {
    const char *text = good[i];

    for (size_t m = 0; m < N_MISTAKES; m++)
      if (mistakes[m].line == (int)i + 1 && !mistakes[m].fixed)
        text = mistakes[m].bad;
    fprintf(f, "%s\n", text);
  }
  cr_assert_eq(fclose(f), 0);
}

Test(bad_input, pipeline_file_with_every_class_of_mistake) {
  char path[128], err[WEIR_PIPELINE_ERR_MAX], prefix[160];
  weir_pipeline *p = NULL;
  size_t found = 0;

  unsetenv("WEIR_BAD_INPUT_UNSET");
  snprintf(path, sizeof(path), "%s/edges.yaml", tmp_dir);
  for (;;) {
    int rc, line, col;
    size_t m, plen = (size_t)snprintf(prefix, sizeof(prefix), "%s:", path);

    write_pipeline(path);
    err[0] = '\0';
    rc = weir_pipeline_load(&p, path, WEIR_PIPELINE_VALIDATE_ONLY, err, sizeof(err));
    if (rc == 0) {
      weir_pipeline_destroy(p);
      break;
    }
    cr_assert_null(p);
    cr_assert(rc == WEIR_EPARSE || rc == WEIR_EGRAPH, "rc %s: %s", weir_err_name(rc), err);
    cr_assert(strncmp(err, prefix, plen) == 0, "no file name: %s", err);
    cr_assert_eq(sscanf(err + plen, "%d:%d:", &line, &col), 2, "no line:col: %s", err);
    cr_assert_gt(col, 0, "%s", err);
    for (m = 0; m < N_MISTAKES; m++)
      if (!mistakes[m].fixed && (mistakes[m].at != 0 ? mistakes[m].at : mistakes[m].line) == line)
        break;
    if (m == N_MISTAKES) /* a YAML error may point at the line after the mistake */
      for (m = 0; m < N_MISTAKES; m++)
        if (!mistakes[m].fixed && mistakes[m].at == 0 && mistakes[m].line == line - 1 &&
            strstr(mistakes[m].word, "YAML") != NULL)
          break;
    cr_assert_lt(m, N_MISTAKES, "the error points at line %d, where no mistake is left: %s", line,
                 err);
    cr_assert_not_null(strstr(err, mistakes[m].word), "line %d: '%s' not in: %s", line,
                       mistakes[m].word, err);
    cr_assert_lt(strlen(err), (size_t)WEIR_PIPELINE_ERR_MAX);
    for (const char *c = err; *c != '\0'; c++)
      cr_assert((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f,
                "an unprintable byte 0x%02x in: %s", (unsigned char)*c, err);
    cr_log_info("%s", err);
    mistakes[m].fixed = true;
    found++;
    cr_assert_leq(found, N_MISTAKES);
  }
  cr_assert_eq(found, N_MISTAKES, "only %zu of %zu mistakes were reported", found, N_MISTAKES);
}
