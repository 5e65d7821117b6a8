/*
 * test_pipeline_kinesis_sink.c: the `kinesis` sink node type (runtime/pipeline_kinesis.c): a file
 * using every key validates and builds, and each bad key, value or combination is reported with
 * its exact message at its line:column. (Kept apart from test_pipeline_nodes.c so that it can be
 * committed with the sink.)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const char kinesis_sink_full[] = "sources:\n"
                                        "  - type: generator\n"
                                        "    count: 10\n"
                                        "sinks:\n"
                                        "  - type: kinesis\n"
                                        "    stream: out\n"
                                        "    region: eu-west-1\n"
                                        "    endpoint: http://127.0.0.1:1\n"
                                        "    access_key_id: AKIDEXAMPLE\n"
                                        "    secret_access_key: ${WEIR_TEST_SECRET}\n"
                                        "    session_token: token\n"
                                        "    profile: default\n"
                                        "    connect_timeout: 2s\n"
                                        "    request_timeout: 10s\n"
                                        "    pk_mode: fixed\n"
                                        "    partition_key: all\n"
                                        "    max_buffered_records: 2000\n"
                                        "    max_buffered_bytes: 4MiB\n"
                                        "    max_request_records: 250\n"
                                        "    max_request_bytes: 1MiB\n"
                                        "    max_in_flight: 2\n"
                                        "    linger: 0\n"
                                        "    fail_on_error: false\n"
                                        "    dead_letter_path: /tmp/weir-dlq-never-written.jsonl\n"
                                        "    aggregation: true\n"
                                        "    aggregation_max_bytes: 64KiB\n"
                                        "    rate_mode: none\n";

Test(pipeline_nodes, kinesis_sink_full_file_builds) {
  char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;

  setenv("WEIR_TEST_SECRET", "s3cr3t-value", 1);
  cr_assert_str_eq(check(kinesis_sink_full), "");
  /* Built for real: weir_job_add_kinesis_sink accepts the config (subtasks connect in open). */
  cr_assert_eq(weir_pipeline_load_string(&p, "p.yaml", kinesis_sink_full, strlen(kinesis_sink_full),
                                         0, err, sizeof(err)),
               0, "%s", err);
  weir_pipeline_destroy(p);
  cr_assert_str_eq(check("sources:\n  - type: generator\nsinks:\n  - type: kinesis\n"
                         "    stream: out\n"),
                   "");
}

Test(pipeline_nodes, kinesis_sink_errors) {
  /* sink missing stream */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    pk_mode: random\n",
             "p.yaml:4:5: sinks[0]: missing required key 'stream' (hint: add 'stream: <text>')");
  /* sink fixed no key */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    pk_mode: fixed\n",
             "p.yaml:4:5: sinks[0]: missing required key 'partition_key' (hint: add "
             "'partition_key: <text>')");
  /* sink key not fixed */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    partition_key: k\n",
             "p.yaml:6:20: sinks[0].partition_key: partition_key is used only with pk_mode fixed "
             "(hint: remove it, or write 'pk_mode: fixed')");
  /* sink bad pk mode */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    pk_mode: hash\n",
             "p.yaml:6:14: sinks[0].pk_mode: bad value \"hash\" (hint: one of: record_key, fixed, "
             "random)");
  /* sink in flight */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    max_in_flight: 65\n",
             "p.yaml:6:20: sinks[0].max_in_flight: \"65\" is out of range (hint: allowed 1..64)");
  /* sink request bytes */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    max_request_bytes: 11MiB\n",
             "p.yaml:6:24: sinks[0].max_request_bytes: \"11MiB\" is out of range (hint: allowed "
             "1..10485760)");
  /* sink dlq fail */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    dead_letter_path: /tmp/dlq.jsonl\n",
             "p.yaml:6:23: sinks[0].dead_letter_path: dead_letter_path is used only with "
             "fail_on_error: false (hint: add 'fail_on_error: false', or remove it)");
  /* sink bad linger */
  EXPECT_ERR(
      "sources:\n"
      "  - type: generator\n"
      "sinks:\n"
      "  - type: kinesis\n"
      "    stream: out\n"
      "    linger: later\n",
      "p.yaml:6:13: sinks[0].linger: bad duration \"later\" (hint: write a number and a unit: "
      "250ms, 10s, 5m, 1h, 1m30s)");
  /* sink bad rate */
  EXPECT_ERR(
      "sources:\n"
      "  - type: generator\n"
      "sinks:\n"
      "  - type: kinesis\n"
      "    stream: out\n"
      "    rate_mode: token_bucket\n",
      "p.yaml:6:16: sinks[0].rate_mode: bad value \"token_bucket\" (hint: one of: aimd, none)");
  /* sink long key: 257 characters */
  {
    char yaml[512], key[258];

    memset(key, 'k', 257);
    key[257] = '\0';
    snprintf(yaml, sizeof(yaml),
             "sources:\n  - type: generator\nsinks:\n  - type: kinesis\n    stream: out\n"
             "    pk_mode: fixed\n    partition_key: %s\n",
             key);
    EXPECT_ERR(yaml, "p.yaml:7:20: sinks[0].partition_key: bad partition key (hint: use 1 to 256 "
                     "characters)");
  }
  /* sink unknown key */
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: kinesis\n"
             "    stream: out\n"
             "    streams: [out]\n",
             "p.yaml:6:5: sinks[0].streams: unknown key (hint: did you mean 'stream'? keys here: "
             "type, name, uid, partition, parallelism, input, stream, region, endpoint, "
             "access_key_id, secret_access_key, session_token, profile, ca_file, connect_timeout, "
             "request_timeout, pk_mode, partition_key, max_buffered_records, max_buffered_bytes, "
             "max_request_records, max_request_bytes, max_in_flight, linger, fail_on_error, "
             "dead_letter_path, aggregation, aggregation_max_bytes, rate_mode)");
}
