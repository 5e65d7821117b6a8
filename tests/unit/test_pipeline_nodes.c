/*
 * test_pipeline_nodes.c: the pipeline node types of the analytics operators and the Kinesis
 * source (runtime/pipeline_analytics.c, runtime/pipeline_kinesis_source.c): a file using every
 * key validates and builds, the operators run and give the results their keys ask for, and each
 * bad key, value or combination is reported with its exact message at its line:column.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/pipeline.h"

/* Validates `yaml` and returns the error message ("" when valid), in a static buffer. */
static const char *check(const char *yaml) {
  static char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;
  int rc;

  rc = weir_pipeline_load_string(&p, "p.yaml", yaml, strlen(yaml), WEIR_PIPELINE_VALIDATE_ONLY, err,
                                 sizeof(err));
  if (rc == 0) {
    cr_assert_not_null(p);
    weir_pipeline_destroy(p);
    err[0] = '\0';
  } else {
    cr_assert_eq(rc, WEIR_EPARSE, "rc %d: %s", rc, err);
    cr_assert_null(p);
    cr_assert_neq(err[0], '\0', "an error without a message (rc %d)", rc);
  }
  return err;
}

#define EXPECT_ERR(yaml, msg) cr_assert_str_eq(check(yaml), msg)

/* Loads `yaml` for real (not validate-only), runs the job to its end and destroys it. */
static void run(const char *yaml) {
  char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;
  int rc;

  rc = weir_pipeline_load_string(&p, "p.yaml", yaml, strlen(yaml), 0, err, sizeof(err));
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(weir_job_run(weir_pipeline_job(p)), 0, "%s", weir_job_error(weir_pipeline_job(p)));
  weir_pipeline_destroy(p);
}

/* Writes `text` to DIR/name. */
static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  cr_assert_not_null(f = fopen(path, "w"));
  cr_assert_eq(fputs(text, f) >= 0, true);
  fclose(f);
}

/* Reads DIR/name whole into buf (NUL-terminated). */
static void read_file(const char *dir, const char *name, char *buf, size_t cap) {
  char path[512];
  size_t n;
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  cr_assert_not_null(f = fopen(path, "r"), "%s", path);
  n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

static const char clicks[] = "{\"page\":\"/a\",\"user\":\"u1\",\"n\":5,\"ts\":1000}\n"
                             "not json\n"
                             "{\"page\":\"/b\",\"user\":\"u2\",\"n\":7,\"ts\":2500}\n"
                             "{\"page\":\"/a\",\"user\":\"u3\",\"n\":1,\"ts\":9999}\n"
                             "{\"page\":\"/a\",\"user\":\"u1\",\"n\":2,\"ts\":10000}\n"
                             "{\"page\":\"/b\",\"user\":\"u4\",\"ts\":12000}\n"
                             "{\"page\":\"/a\",\"user\":\"u2\",\"n\":4,\"ts\":15000}\n";

Test(pipeline_nodes, json_operators_run) {
  char dir[] = "/tmp/weir-pnodes-XXXXXX", yaml[2048], out[4096];

  cr_assert_not_null(mkdtemp(dir));
  write_file(dir, "in.jsonl", clicks);
  snprintf(yaml, sizeof(yaml),
           "sources:\n"
           "  - type: file\n"
           "    path: %s/in.jsonl\n"
           "operators:\n"
           "  - type: json_parse\n"
           "    on_bad: drop\n"
           "  - type: json_filter\n"
           "    where:\n"
           "      - {field: page, op: eq, value: /a}\n"
           "      - {field: n, op: ge, value: 2}\n"
           "      - {field: user, op: exists}\n"
           "      - {field: user, op: regex, value: \"^u[0-9]+$\"}\n"
           "  - type: json_project\n"
           "    fields: [user, {field: n, as: clicks}]\n"
           "sinks:\n"
           "  - type: file\n"
           "    path: %s/out.jsonl\n",
           dir, dir);
  cr_assert_str_eq(check(yaml), "");
  run(yaml);
  read_file(dir, "out.jsonl", out, sizeof(out));
  cr_assert_str_eq(out, "{\"user\":\"u1\",\"clicks\":5}\n"
                        "{\"user\":\"u1\",\"clicks\":2}\n"
                        "{\"user\":\"u2\",\"clicks\":4}\n");
}

Test(pipeline_nodes, key_by_timestamps_window_run) {
  char dir[] = "/tmp/weir-pnodes-XXXXXX", yaml[2048], out[4096];

  cr_assert_not_null(mkdtemp(dir));
  write_file(dir, "in.jsonl", clicks);
  snprintf(yaml, sizeof(yaml),
           "sources:\n"
           "  - type: file\n"
           "    path: %s/in.jsonl\n"
           "operators:\n"
           "  - type: json_parse\n"
           "    on_bad: drop\n"
           "  - type: timestamps\n"
           "    from: field\n"
           "    field: ts\n"
           "    max_out_of_orderness: 1s\n"
           "    interval: 0\n"
           "    idle_timeout: 0\n"
           "  - type: key_by\n"
           "    field: page\n"
           "  - type: window\n"
           "    uid: per-page\n"
           "    kind: tumbling\n"
           "    time: event\n"
           "    size: 10s\n"
           "    aggregates: [count, sum, max]\n"
           "    value_field: n\n"
           "    allowed_lateness: 0\n"
           "    late: drop\n"
           "    max_open_windows: 100\n"
           "    format: json\n"
           "    on_bad: drop\n"
           "sinks:\n"
           "  - type: file\n"
           "    path: %s/out.jsonl\n",
           dir, dir);
  cr_assert_str_eq(check(yaml), "");
  run(yaml);
  read_file(dir, "out.jsonl", out, sizeof(out));
  /* Window [0, 10s): /a 5+1, /b 7. [10s, 20s): /a 2+4; /b's record has no n: dropped (bad). */
  cr_assert(strstr(out, "{\"key\":\"/a\",\"window_start\":0,\"window_end\":10000,\"count\":2,"
                        "\"sum\":6,\"max\":5}\n") != NULL,
            "%s", out);
  cr_assert(strstr(out, "{\"key\":\"/b\",\"window_start\":0,\"window_end\":10000,\"count\":1,"
                        "\"sum\":7,\"max\":7}\n") != NULL,
            "%s", out);
  cr_assert(strstr(out, "{\"key\":\"/a\",\"window_start\":10000,\"window_end\":20000,\"count\":2,"
                        "\"sum\":6,\"max\":4}\n") != NULL,
            "%s", out);
  cr_assert_null(strstr(out, "\"window_start\":10000,\"window_end\":20000,\"count\":1"), "%s", out);
}

Test(pipeline_nodes, other_window_kinds_validate) {
  static const char *const windows[] = {
      "    kind: sliding\n    size: 1m\n    slide: 10s\n    aggregates: [avg, min]\n"
      "    value_field: n\n",
      "    kind: session\n    gap: 30s\n    late: side_output\n    allowed_lateness: 5s\n",
      "    kind: global\n",
      "    kind: tumbling\n    time: processing\n    size: 1s\n",
  };
  char yaml[1024];

  for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
    snprintf(yaml, sizeof(yaml),
             "sources:\n  - type: generator\noperators:\n  - type: key_by\n    field: k\n"
             "  - type: window\n%ssinks:\n  - type: stdout\n",
             windows[i]);
    cr_assert_str_eq(check(yaml), "", "%s", windows[i]);
  }
  cr_assert_str_eq(check("sources:\n  - type: generator\noperators:\n  - type: timestamps\n"
                         "    from: source\n    max_out_of_orderness: 2s\n"
                         "sinks:\n  - type: stdout\n"),
                   "");
}

static const char kinesis_source_full[] =
    "sources:\n"
    "  - type: kinesis\n"
    "    streams: [clicks, views]\n"
    "    region: eu-west-1\n"
    "    endpoint: http://127.0.0.1:1\n"
    "    access_key_id: ${WEIR_TEST_KEY_ID}\n"
    "    secret_access_key: ${WEIR_TEST_SECRET}\n"
    "    session_token: token\n"
    "    connect_timeout: 2s\n"
    "    request_timeout: 10s\n"
    "    credentials_provider: basic\n"
    "    initial_position: at_timestamp\n"
    "    initial_timestamp: 2026-11-26T01:00:00Z\n"
    "    discovery_interval: 0\n"
    "    getrecords_max: 500\n"
    "    getrecords_interval: 250ms\n"
    "    getrecords_backoff: {retries: 5, base: 100ms, max: 2s, exp: 2}\n"
    "    getiterator_backoff: {retries: 1}\n"
    "    listshards_backoff: {base: 1s, max: 10s}\n"
    "    idle_timeout: 30s\n"
    "    deserializer: json\n"
    "    fail_on_deserialize_error: true\n"
    "    max_records_per_poll: 64\n"
    "    stop_at_end: false\n"
    "sinks:\n"
    "  - type: stdout\n";

Test(pipeline_nodes, kinesis_source_full_file_builds) {
  char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;

  setenv("WEIR_TEST_KEY_ID", "AKIDEXAMPLE", 1);
  setenv("WEIR_TEST_SECRET", "s3cr3t-value", 1);
  cr_assert_str_eq(check(kinesis_source_full), "");
  /* Built for real: weir_job_add_kinesis_source accepts the config (nothing connects before
   * the job starts). */
  cr_assert_eq(weir_pipeline_load_string(&p, "p.yaml", kinesis_source_full,
                                         strlen(kinesis_source_full), 0, err, sizeof(err)),
               0, "%s", err);
  weir_pipeline_destroy(p);
  cr_assert_str_eq(check("sources:\n  - type: kinesis\n    streams: [a]\n"
                         "sinks:\n  - type: stdout\n"),
                   "");
}

Test(pipeline_nodes, json_parse_errors) {
  /* json parse bad policy */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_parse\n"
             "    on_bad: skip\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:13: operators[0].on_bad: bad value \"skip\" (hint: one of: fail, drop)");
  /* json parse unknown key */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_parse\n"
             "    onbad: drop\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:5: operators[0].onbad: unknown key (hint: did you mean 'on_bad'? keys here: "
             "type, name, uid, partition, parallelism, input, on_bad)");
}

Test(pipeline_nodes, json_filter_errors) {
  /* filter missing where */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:5:5: operators[0]: missing required key 'where' (hint: add 'where: <list>')");
  /* filter where not list */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where: page\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:12: operators[0].where: expected a list, got \"page\" (hint: write one '- "
             "item' per line under it)");
  /* filter empty where */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where: []\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:12: operators[0].where: a filter has 1 to 16 conditions, not 0 (hint: write "
             "1 to 16 conditions such as {field: page, op: eq, value: /})");
  /* filter cond not map */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where: [page]\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:13: operators[0].where[0]: expected a map (hint: write {field: F, op: eq, "
             "value: V})");
  /* filter bad op */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where:\n"
             "      - {field: page, op: like, value: x}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:27: operators[0].where[0].op: bad value \"like\" (hint: one of: eq, ne, lt, "
             "le, gt, ge, exists, missing, regex)");
  /* filter missing value */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where:\n"
             "      - {field: page, op: eq}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:9: operators[0].where[0]: missing required key 'value' (hint: add 'value: "
             "<text>')");
  /* filter numeric op */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where:\n"
             "      - {field: n, op: gt, value: ten}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:35: operators[0].where[0].value: op gt needs a numeric value (hint: compare "
             "with a number such as 100)");
  /* filter exists with value */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: json_filter\n"
      "    where:\n"
      "      - {field: n, op: exists, value: 1}\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:7:39: operators[0].where[0].value: op exists takes no value (hint: remove it)");
  /* filter bad regex */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: json_filter\n"
      "    where:\n"
      "      - {field: page, op: regex, value: \"(unclosed\"}\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:7:41: operators[0].where[0].value: bad regular expression (hint: write a POSIX "
      "extended regular expression such as ^/product/)");
  /* filter unknown cond key */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where:\n"
             "      - {field: n, op: eq, value: 1, negate: true}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:38: operators[0].where[0].negate: unknown key (hint: keys here: field, op, "
             "value)");
  /* filter missing field */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where:\n"
             "      - {op: eq, value: 1}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:9: operators[0].where[0]: missing required key 'field' (hint: add 'field: "
             "<text>')");
  /* filter too many */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_filter\n"
             "    where:\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "      - {field: n, op: exists}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:7: operators[0].where: a filter has 1 to 16 conditions, not 17 (hint: write "
             "1 to 16 conditions such as {field: page, op: eq, value: /})");
}

Test(pipeline_nodes, json_project_errors) {
  /* project missing fields */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: json_project\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:5:5: operators[0]: missing required key 'fields' (hint: add 'fields: <list>')");
  /* project empty */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_project\n"
             "    fields: []\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:13: operators[0].fields: a projection has 1 to 64 fields, not 0 (hint: list "
             "1 to 64 fields: a path, or {field: PATH, as: NAME})");
  /* project item list */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_project\n"
             "    fields: [[a]]\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:14: operators[0].fields[0]: expected a field path or a map (hint: write a "
             "path, or {field: PATH, as: NAME})");
  /* project unknown key */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: json_project\n"
      "    fields:\n"
      "      - {field: a, rename: b}\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:7:20: operators[0].fields[0].rename: unknown key (hint: keys here: field, as)");
  /* project empty path */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: json_project\n"
             "    fields: [\"\"]\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:14: operators[0].fields[0]: a field path has 1 to 256 characters (hint: "
             "write a dotted path such as user.id)");
}

Test(pipeline_nodes, key_by_errors) {
  /* key by missing field */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:5:5: operators[0]: missing required key 'field' (hint: add 'field: <text>')");
  /* key by empty field */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: \"\"\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:12: operators[0].field: a field path has 1 to 256 characters (hint: write a "
             "dotted path such as user.id)");
}

Test(pipeline_nodes, timestamps_errors) {
  /* ts missing field */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: timestamps\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:5:5: operators[0]: missing required key 'field' (hint: add 'field: <text>')");
  /* ts source with field */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: timestamps\n"
             "    from: source\n"
             "    field: ts\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:12: operators[0].field: 'field' is used only with 'from: field' (hint: "
             "remove it, or write 'from: field')");
  /* ts bad from */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: timestamps\n"
             "    from: header\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:6:11: operators[0].from: bad value \"header\" (hint: one of: field, source)");
  /* ts bad duration */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: timestamps\n"
             "    field: ts\n"
             "    max_out_of_orderness: 5 parsecs\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:27: operators[0].max_out_of_orderness: bad duration \"5 parsecs\": unknown "
             "unit (hint: write a number and a unit: 250ms, 10s, 5m, 1h, 1m30s)");
  /* ts unknown key */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: timestamps\n"
             "    field: ts\n"
             "    max_out_of_order: 5s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:5: operators[0].max_out_of_order: unknown key (hint: keys here: type, name, "
             "uid, partition, parallelism, input, from, field, max_out_of_orderness, interval, "
             "idle_timeout, on_bad)");
}

Test(pipeline_nodes, window_errors) {
  /* win missing kind */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    size: 10s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:5: operators[1]: missing required key 'kind' (hint: add 'kind: <value>')");
  /* win bad kind */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: hopping\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:8:11: operators[1].kind: bad value \"hopping\" (hint: one of: tumbling, "
             "sliding, global, session)");
  /* win tumbling no size */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:5: operators[1]: missing required key 'size' for a tumbling window (hint: "
             "add 'size: <duration>')");
  /* win sliding no slide */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: sliding\n"
             "    size: 1m\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:5: operators[1]: missing required key 'slide' for a sliding window (hint: "
             "add 'slide: <duration>')");
  /* win slide above size */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: sliding\n"
             "    size: 10s\n"
             "    slide: 20s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:12: operators[1].slide: slide must be at most size and size / slide at "
             "most 64 (hint: use a slide between size / 64 and size)");
  /* win too many panes */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: sliding\n"
             "    size: 65s\n"
             "    slide: 1s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:12: operators[1].slide: slide must be at most size and size / slide at "
             "most 64 (hint: use a slide between size / 64 and size)");
  /* win tumbling slide */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 10s\n"
             "    slide: 5s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:12: operators[1].slide: 'slide' does not apply to a tumbling window (hint: "
             "remove it)");
  /* win session no gap */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: session\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:7:5: operators[1]: missing required key 'gap' for a session window (hint: add "
             "'gap: <duration>')");
  /* win session size */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: session\n"
             "    gap: 30s\n"
             "    size: 1m\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:11: operators[1].size: 'size' does not apply to a session window (hint: "
             "remove it)");
  /* win global gap */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: global\n"
             "    gap: 30s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:9:10: operators[1].gap: 'gap' does not apply to a global window (hint: remove "
             "it)");
  /* win bad agg */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: key_by\n"
      "    field: page\n"
      "  - type: window\n"
      "    kind: tumbling\n"
      "    size: 10s\n"
      "    aggregates: [count, median]\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:10:25: operators[1].aggregates[1]: unknown aggregate \"median\" (hint: one of: "
      "count, sum, min, max, avg)");
  /* win dup agg */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: key_by\n"
      "    field: page\n"
      "  - type: window\n"
      "    kind: tumbling\n"
      "    size: 10s\n"
      "    aggregates: [sum, sum]\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:10:23: operators[1].aggregates[1]: duplicate aggregate \"sum\" (hint: list each "
      "aggregate once)");
  /* win empty aggs */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 10s\n"
             "    aggregates: []\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:17: operators[1].aggregates: no aggregates (hint: list some of: count, "
             "sum, min, max, avg)");
  /* win aggs not list */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: key_by\n"
      "    field: page\n"
      "  - type: window\n"
      "    kind: tumbling\n"
      "    size: 10s\n"
      "    aggregates: count\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:10:17: operators[1].aggregates: expected a list, got \"count\" (hint: write one "
      "'- item' per line under it)");
  /* win bad late */
  EXPECT_ERR(
      "sources:\n"
      "  - type: file\n"
      "    path: /tmp/x.jsonl\n"
      "operators:\n"
      "  - type: key_by\n"
      "    field: page\n"
      "  - type: window\n"
      "    kind: tumbling\n"
      "    size: 10s\n"
      "    late: keep\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:10:11: operators[1].late: bad value \"keep\" (hint: one of: drop, side_output)");
  /* win bad format */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 10s\n"
             "    format: csv\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:13: operators[1].format: bad value \"csv\" (hint: one of: json)");
  /* win bad lateness */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 10s\n"
             "    allowed_lateness: soon\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:23: operators[1].allowed_lateness: bad duration \"soon\" (hint: write a "
             "number and a unit: 250ms, 10s, 5m, 1h, 1m30s)");
  /* win bad time */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 10s\n"
             "    time: ingestion\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:11: operators[1].time: bad value \"ingestion\" (hint: one of: event, "
             "processing)");
  /* win unknown key */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 10s\n"
             "    lateness: 1s\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:10:5: operators[1].lateness: unknown key (hint: keys here: type, name, uid, "
             "partition, parallelism, input, kind, time, size, slide, gap, aggregates, "
             "value_field, allowed_lateness, late, max_open_windows, format, on_bad)");
  /* win zero size */
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: /tmp/x.jsonl\n"
             "operators:\n"
             "  - type: key_by\n"
             "    field: page\n"
             "  - type: window\n"
             "    kind: tumbling\n"
             "    size: 0\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:9:11: operators[1].size: \"0\" is out of range (hint: allowed "
             "1ms..8640000000ms)");
}

Test(pipeline_nodes, kinesis_source_errors) {
  setenv("WEIR_TEST_SECRET", "s3cr3t-value", 1);
  /* ks missing streams */
  EXPECT_ERR(
      "sources:\n"
      "  - type: kinesis\n"
      "    region: us-east-1\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:2:5: sources[0]: missing required key 'streams' (hint: add 'streams: <list>')");
  /* ks streams scalar */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: clicks\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:14: sources[0].streams: expected a list, got \"clicks\" (hint: write one '- "
             "item' per line under it)");
  /* ks streams empty */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: []\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:14: sources[0].streams: a source reads 1 to 16 streams (hint: list 1 to 16 "
             "stream names)");
  /* ks streams dup */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a, b, a]\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:21: sources[0].streams[2]: duplicate stream (hint: list each stream once)");
  /* ks streams item map */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [{name: a}]\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:15: sources[0].streams[0]: expected a stream name (hint: write a stream "
             "name of 1 to 128 characters)");
  /* ks bad position */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    initial_position: earliest\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:23: sources[0].initial_position: bad value \"earliest\" (hint: one of: "
             "latest, trim_horizon, at_timestamp)");
  /* ks at ts missing */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    initial_position: at_timestamp\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:5: sources[0]: missing required key 'initial_timestamp' (hint: add "
             "'initial_timestamp: <text>')");
  /* ks ts without at */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    initial_timestamp: 2026-11-26T01:00:00Z\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:24: sources[0].initial_timestamp: initial_timestamp is used only with "
             "initial_position at_timestamp (hint: remove it, or write 'initial_position: "
             "at_timestamp')");
  /* ks bad ts */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    initial_position: at_timestamp\n"
             "    initial_timestamp: yesterday\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:5:24: sources[0].initial_timestamp: bad timestamp (hint: write ISO-8601 such "
             "as 2026-11-26T01:00:00Z, or epoch seconds)");
  /* ks basic no keys */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    credentials_provider: basic\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:5: sources[0]: credentials_provider basic needs access_key_id and "
             "secret_access_key (hint: add access_key_id: ${AWS_ACCESS_KEY_ID} and "
             "secret_access_key: ${AWS_SECRET_ACCESS_KEY})");
  /* ks bad provider */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    credentials_provider: instance\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:27: sources[0].credentials_provider: bad value \"instance\" (hint: one of: "
             "auto, basic, env_var, profile)");
  /* ks half keys */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    access_key_id: AKIDEXAMPLE\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:20: sources[0].access_key_id: static credentials need both keys (hint: set "
             "both access_key_id and secret_access_key, or neither)");
  /* ks getrecords max */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    getrecords_max: 20000\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:21: sources[0].getrecords_max: \"20000\" is out of range (hint: allowed "
             "1..10000)");
  /* ks backoff unknown */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    getrecords_backoff: {retries: 3, jitter: full}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:38: sources[0].getrecords_backoff.jitter: unknown key (hint: keys here: "
             "retries, base, max, exp)");
  /* ks backoff exp */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    listshards_backoff: {exp: 0.5}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:31: sources[0].listshards_backoff.exp: bad backoff exponent (hint: write a "
             "number from 1 to 10, e.g. 1.5)");
  /* ks backoff base max */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    getiterator_backoff: {base: 2s, max: 1s}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:33: sources[0].getiterator_backoff.base: base is above max (hint: set max "
             "to at least base)");
  /* ks bad deser */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    deserializer: avro\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:19: sources[0].deserializer: bad value \"avro\" (hint: one of: raw, utf8, "
             "json)");
  /* ks bad idle */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    idle_timeout: forever\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:19: sources[0].idle_timeout: bad duration \"forever\" (hint: write a number "
             "and a unit: 250ms, 10s, 5m, 1h, 1m30s)");
  /* ks bad bool */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    stop_at_end: maybe\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:18: sources[0].stop_at_end: expected true or false, got \"maybe\" (hint: "
             "write true or false)");
  /* ks unknown key */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    stream: a\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:5: sources[0].stream: unknown key (hint: did you mean 'streams'? keys here: "
             "type, name, uid, parallelism, streams, region, endpoint, access_key_id, "
             "secret_access_key, session_token, profile, ca_file, connect_timeout, "
             "request_timeout, credentials_provider, initial_position, initial_timestamp, "
             "discovery_interval, getrecords_max, getrecords_interval, getrecords_backoff, "
             "getiterator_backoff, listshards_backoff, idle_timeout, deserializer, "
             "fail_on_deserialize_error, max_records_per_poll, stop_at_end)");
  /* ks secret env */
  EXPECT_ERR("sources:\n"
             "  - type: kinesis\n"
             "    streams: [a]\n"
             "    secret_access_key: ${WEIR_TEST_SECRET}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:24: sources[0].secret_access_key: static credentials need both keys (hint: "
             "set both access_key_id and secret_access_key, or neither)");
  cr_assert_null(strstr(check("sources:\n  - type: kinesis\n    streams: [a]\n"
                              "    secret_access_key: ${WEIR_TEST_SECRET}\n"
                              "sinks:\n  - type: stdout\n"),
                        "s3cr3t"));
}
