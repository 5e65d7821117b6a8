/*
 * test_kinesis_api.c: the Kinesis client's pure parts: error parsing and classification,
 * backoff, base64, the request-body writer and the GetRecords parser (no server needed).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kinesis/client_int.h"

static void parse(long status, const char *hdr, const char *body, struct weir_kinesis_error *e) {
  memset(e, 0, sizeof(*e));
  weir__kinesis_parse_error(status, hdr, (const uint8_t *)body, strlen(body), e);
}

Test(kinesis_errors, bare_and_namespaced_codes) {
  struct weir_kinesis_error e;

  parse(400, NULL,
        "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream foo not found.\"}", &e);
  cr_assert_str_eq(e.code, "ResourceNotFoundException");
  cr_assert_str_eq(e.message, "Stream foo not found.");
  cr_assert_eq(e.cls, WEIR_KINESIS_ERR_FATAL);
  e.rc = 0;
  cr_assert_eq(weir__kinesis_error_rc(&e), WEIR_ENOTFOUND);

  parse(400, NULL,
        "{\"__type\":\"com.amazonaws.kinesis.v20131202#InvalidArgumentException\","
        "\"Message\":\"bad\"}",
        &e);
  cr_assert_str_eq(e.code, "InvalidArgumentException");
  cr_assert_str_eq(e.message, "bad");
  cr_assert_eq(weir__kinesis_error_rc(&e), WEIR_EINVAL);

  parse(400, NULL,
        "{\"__type\":\"com.amazon.coral.service#SerializationException:http://internal/x\"}", &e);
  cr_assert_str_eq(e.code, "SerializationException");
  cr_assert_str_eq(e.message, "");

  /* The header wins over the body; its URL suffix is dropped. */
  parse(400, "ProvisionedThroughputExceededException:http://internal.amazon.com/coral/",
        "{\"__type\":\"Other\"}", &e);
  cr_assert_str_eq(e.code, "ProvisionedThroughputExceededException");
  cr_assert_eq(e.cls, WEIR_KINESIS_ERR_THROTTLING);
  cr_assert_eq(weir__kinesis_error_rc(&e), WEIR_EAGAIN);

  /* kinesis-local: HTTP 500 with an empty body. */
  parse(500, NULL, "", &e);
  cr_assert_str_eq(e.code, "");
  cr_assert_eq(e.cls, WEIR_KINESIS_ERR_TRANSIENT);

  parse(503, NULL, "<html>not json</html>", &e);
  cr_assert_eq(e.cls, WEIR_KINESIS_ERR_TRANSIENT);
}

Test(kinesis_errors, classification) {
  cr_assert_eq(weir__kinesis_classify(400, "LimitExceededException"), WEIR_KINESIS_ERR_THROTTLING);
  cr_assert_eq(weir__kinesis_classify(400, "KMSThrottlingException"), WEIR_KINESIS_ERR_THROTTLING);
  cr_assert_eq(weir__kinesis_classify(400, "ThrottlingException"), WEIR_KINESIS_ERR_THROTTLING);
  cr_assert_eq(weir__kinesis_classify(429, ""), WEIR_KINESIS_ERR_THROTTLING);
  cr_assert_eq(weir__kinesis_classify(500, "InternalFailure"), WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(weir__kinesis_classify(500, "InternalFailureException"), WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(weir__kinesis_classify(503, "ServiceUnavailable"), WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(weir__kinesis_classify(502, ""), WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(weir__kinesis_classify(504, ""), WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(weir__kinesis_classify(400, "ValidationException"), WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(weir__kinesis_classify(400, "AccessDeniedException"), WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(weir__kinesis_classify(403, "InvalidClientTokenId"), WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(weir__kinesis_classify(400, "ResourceNotFoundException"), WEIR_KINESIS_ERR_FATAL);
  cr_assert_eq(weir__kinesis_classify(200, ""), WEIR_KINESIS_ERR_NONE);
}

Test(kinesis_errors, full_jitter_backoff_stays_within_the_cap) {
  struct weir_kinesis_retry p = {3, 300, 1000, 1.5};
  uint64_t rng = 42;
  int64_t max_seen[4] = {0, 0, 0, 0};

  for (int k = 0; k < 2000; k++) {
    for (int r = 0; r < 4; r++) {
      int64_t d = weir__kinesis_backoff_ms(&p, r, &rng);
      cr_assert_geq(d, 0);
      if (d > max_seen[r])
        max_seen[r] = d;
    }
  }
  /* caps: 300, 450, 675, 1000 (1012.5 capped) */
  cr_assert_lt(max_seen[0], 300);
  cr_assert_gt(max_seen[0], 250);
  cr_assert_lt(max_seen[1], 450);
  cr_assert_gt(max_seen[1], 400);
  cr_assert_lt(max_seen[2], 675);
  cr_assert_lt(max_seen[3], 1000);
  cr_assert_gt(max_seen[3], 900);
}

Test(kinesis_base64, round_trip_and_strictness) {
  uint8_t in[64], out[64];
  char enc[128];
  size_t n;

  for (size_t len = 0; len < 40; len++) {
    for (size_t i = 0; i < len; i++)
      in[i] = (uint8_t)(i * 37 + len);
    weir__b64_encode(in, len, enc);
    cr_assert_eq(weir__b64_decode(enc, weir__b64_encoded_len(len), out, &n), 0);
    cr_assert_eq(n, len);
    cr_assert_eq(memcmp(in, out, len), 0);
  }
  cr_assert_eq(weir__b64_decode("XzxkYXRhPl8w", 12, out, &n), 0);
  cr_assert_eq(n, 9);
  cr_assert_eq(memcmp(out, "_<data>_0", 9), 0);
  cr_assert_eq(weir__b64_decode("AAE=", 4, out, &n), 0);
  cr_assert_eq(n, 2);
  cr_assert_eq(weir__b64_decode("AA==", 4, out, &n), 0);
  cr_assert_eq(n, 1);
  cr_assert_eq(weir__b64_decode("AAE", 3, out, &n), WEIR_EPARSE);  /* not a multiple of 4 */
  cr_assert_eq(weir__b64_decode("A=AA", 4, out, &n), WEIR_EPARSE); /* '=' inside */
  cr_assert_eq(weir__b64_decode("AB==", 4, out, &n), WEIR_EPARSE); /* non-zero pad bits */
  cr_assert_eq(weir__b64_decode("AA E", 4, out, &n), WEIR_EPARSE); /* whitespace */
  cr_assert_eq(weir__b64_decode("AA-_", 4, out, &n), WEIR_EPARSE); /* URL alphabet */
}

Test(kinesis_json, writer_escapes_and_bounds) {
  struct weir_kjson b;
  const uint8_t key[] = {'a', '"', '\\', 0x01, 0xc3, 0xa9};

  weir__kjson_init(&b, 64);
  weir__kjson_lit(&b, "{\"k\":");
  weir__kjson_str(&b, key, sizeof(key));
  weir__kjson_lit(&b, ",\"t\":");
  weir__kjson_epoch_ms(&b, 1459799926480);
  weir__kjson_lit(&b, "}");
  cr_assert_eq(b.err, 0);
  cr_assert_str_eq(b.p, "{\"k\":\"a\\\"\\\\\\u0001\xc3\xa9\",\"t\":1459799926.480}");
  weir__kjson_reset(&b);
  for (int i = 0; i < 10; i++)
    weir__kjson_lit(&b, "0123456789");
  cr_assert_eq(b.err, WEIR_ETOOBIG);
  weir__kjson_free(&b);
}

/* The writer's strings against jansson's reading of them: every prefix length and position of
 * a byte that needs escaping (the eight-at-a-time scan must never let one through), in a
 * buffer with headroom that grows as it goes. */
Test(kinesis_json, strings_read_back_exactly) {
  static const char *const pieces[] = {"a",    "Z",  "~",    "\"",       "\\", "\x01",
                                       "\x1f", "\t", "\x7f", "\xc3\xa9", " ",  "/"};
  struct weir_kjson b;
  unsigned seed = 7;

  weir__kjson_init_head(&b, 1u << 20, 64);
  for (int round = 0; round < 3000; round++) {
    char in[96];
    size_t n = 0, want = (size_t)(rand_r(&seed) % 40);
    json_error_t err;
    json_t *v;

    while (n < want) {
      /* mostly plain bytes, so escapes land at every offset of an eight-byte word */
      const char *p = rand_r(&seed) % 6 == 0 ? pieces[rand_r(&seed) % 12] : "k";

      memcpy(in + n, p, strlen(p));
      n += strlen(p);
    }
    weir__kjson_reset(&b);
    for (int k = 0; k <= round % 3; k++) {
      if (k > 0)
        weir__kjson_lit(&b, ",");
      else
        weir__kjson_lit(&b, "[");
      weir__kjson_str(&b, (const uint8_t *)in, n);
    }
    weir__kjson_lit(&b, "]");
    cr_assert_eq(b.err, 0);
    v = json_loads(b.p, 0, &err);
    cr_assert_not_null(v, "round %d: %s in %s", round, err.text, b.p);
    for (size_t k = 0; k < json_array_size(v); k++) {
      json_t *e = json_array_get(v, k);

      cr_assert_eq(json_string_length(e), n, "round %d: %s", round, b.p);
      cr_assert(memcmp(json_string_value(e), in, n) == 0, "round %d: %s", round, b.p);
    }
    json_decref(v);
  }
  weir__kjson_free(&b);
}

Test(kinesis_get_records, documented_example_and_nulls) {
  /* The GetRecords example response of the API reference, plus kinesis-local-style nulls. */
  const char *body =
      "{\"MillisBehindLatest\": 2100,"
      " \"NextShardIterator\": \"AAAAAAAAAAHsW8zCWf9164uy8Epue6WS3w6wmj4a4USt+CNvMd6uXQ+HL5vA\","
      " \"ChildShards\": null,"
      " \"Records\": [{\"Data\": \"XzxkYXRhPl8w\", \"PartitionKey\": \"partitionKey\","
      "   \"ApproximateArrivalTimestamp\": 1.441215410867E9, \"EncryptionType\": null,"
      "   \"SequenceNumber\": \"21269319989652663814458848515492872193\"},"
      "  {\"Data\": \"\", \"PartitionKey\": \"k\", \"SequenceNumber\": \"1\"}]}";
  struct weir_kinesis_records r;

  weir__kinesis_records_init(&r);
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, strlen(body), &r), 0);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.recs[0].data.len, 9);
  cr_assert_eq(memcmp(r.recs[0].data.ptr, "_<data>_0", 9), 0);
  cr_assert_eq(r.recs[0].partition_key.len, 12);
  cr_assert_str_eq(r.recs[0].sequence_number, "21269319989652663814458848515492872193");
  cr_assert_eq(r.recs[0].arrival_ms, 1441215410867);
  cr_assert_eq(r.recs[1].data.len, 0);
  cr_assert_eq(r.recs[1].arrival_ms, WEIR_NO_TIMESTAMP);
  cr_assert(r.has_next);
  cr_assert_eq(r.millis_behind_latest, 2100);
  cr_assert_eq(r.n_children, 0);

  /* A closed shard's end: no iterator (null), child shards. */
  body = "{\"Records\":[],\"NextShardIterator\":null,\"MillisBehindLatest\":0,"
         "\"ChildShards\":[{\"ShardId\":\"shardId-000000000001\","
         "\"ParentShards\":[\"shardId-000000000000\"],"
         "\"HashKeyRange\":{\"StartingHashKey\":\"0\",\"EndingHashKey\":\"17\"}}]}";
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, strlen(body), &r), 0);
  cr_assert_eq(r.n, 0);
  cr_assert(!r.has_next);
  cr_assert_eq(r.n_children, 1);
  cr_assert_str_eq(r.children[0].shard_id, "shardId-000000000001");
  cr_assert_str_eq(r.children[0].parents[0], "shardId-000000000000");
  cr_assert_str_eq(r.children[0].hash_range.end, "17");

  body =
      "{\"Records\":[{\"Data\":\"not base64!\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}";
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, strlen(body), &r),
               WEIR_EPARSE);
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)"[]", 2, &r), WEIR_EPARSE);
  weir__kinesis_records_free(&r);
}

Test(kinesis_get_records, escapes_unknown_members_and_any_order) {
  const char *body = "{ \"Unknown\": {\"a\": [1, 2.5e3, true, false, null, {\"b\": \"\\\"}\"}]},"
                     "  \"Records\" : [ { \"SequenceNumber\" : \"42\", \"Extra\": [[]],"
                     "    \"PartitionKey\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\/\","
                     "    \"Data\": \"AA\\/\\/\" } ],"
                     "  \"MillisBehindLatest\": 7 }";
  struct weir_kinesis_records r;
  const char *want_key = "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" /";

  weir__kinesis_records_init(&r);
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, strlen(body), &r), 0);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.recs[0].sequence_number, "42");
  cr_assert_eq(r.recs[0].partition_key.len, strlen(want_key));
  cr_assert_eq(memcmp(r.recs[0].partition_key.ptr, want_key, strlen(want_key)), 0);
  cr_assert_eq(r.recs[0].data.len, 3); /* "AA//" = 00 0f ff */
  cr_assert_eq(r.recs[0].data.ptr[0], 0x00);
  cr_assert_eq(r.recs[0].data.ptr[1], 0x0f);
  cr_assert_eq(r.recs[0].data.ptr[2], 0xff);
  cr_assert(!r.has_next);
  cr_assert_eq(r.millis_behind_latest, 7);
  weir__kinesis_records_free(&r);
}

Test(kinesis_get_records, every_truncation_is_rejected) {
  const char *body =
      "{\"Records\":[{\"Data\":\"AAEC\",\"PartitionKey\":\"k\\u0041\",\"SequenceNumber\":\"1\","
      "\"ApproximateArrivalTimestamp\":1.5E9}],\"NextShardIterator\":\"it\","
      "\"ChildShards\":[{\"ShardId\":\"s\",\"ParentShards\":[\"p\"],"
      "\"HashKeyRange\":{\"StartingHashKey\":\"0\",\"EndingHashKey\":\"9\"}}]}";
  struct weir_kinesis_records r;
  size_t len = strlen(body);

  weir__kinesis_records_init(&r);
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, len, &r), 0);
  cr_assert_eq(r.n_children, 1);
  cr_assert_eq(r.recs[0].arrival_ms, 1500000000000);
  for (size_t n = 0; n < len; n++) {
    /* A heap copy of exactly n bytes, so ASan sees any read past the end. */
    uint8_t *copy = malloc(n + 1);
    memcpy(copy, body, n);
    cr_assert_eq(weir__kinesis_parse_get_records(copy, n, &r), WEIR_EPARSE, "prefix %zu", n);
    cr_assert_eq(r.n, 0);
    free(copy);
  }
  weir__kinesis_records_free(&r);
}

Test(kinesis_get_records, large_response_round_trip) {
  /* 4000 records of 1000 bytes: ~5.5 MB of JSON, parsed without a JSON tree. */
  enum { N = 4000, SZ = 1000 };
  struct weir_kjson b;
  struct weir_kinesis_records r;
  uint8_t data[SZ];

  weir__kjson_init(&b, 64u << 20);
  weir__kjson_lit(&b, "{\"Records\":[");
  for (int i = 0; i < N; i++) {
    char seq[64];
    for (int j = 0; j < SZ; j++)
      data[j] = (uint8_t)(i + j * 13);
    snprintf(seq, sizeof(seq), "4968056255206378731176252313972680293542658545853818%04d", i);
    weir__kjson_lit(&b, i ? ",{\"Data\":" : "{\"Data\":");
    weir__kjson_b64(&b, data, SZ);
    weir__kjson_lit(&b, ",\"PartitionKey\":\"key\",\"ApproximateArrivalTimestamp\":1.7E9,"
                        "\"SequenceNumber\":");
    weir__kjson_cstr(&b, seq);
    weir__kjson_lit(&b, "}");
  }
  weir__kjson_lit(&b, "],\"NextShardIterator\":\"x\",\"MillisBehindLatest\":0}");
  cr_assert_eq(b.err, 0);
  weir__kinesis_records_init(&r);
  cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)b.p, b.len, &r), 0);
  cr_assert_eq(r.n, N);
  for (int i = 0; i < N; i += 397) {
    for (int j = 0; j < SZ; j++)
      data[j] = (uint8_t)(i + j * 13);
    cr_assert_eq(r.recs[i].data.len, SZ);
    cr_assert_eq(memcmp(r.recs[i].data.ptr, data, SZ), 0);
  }
  cr_assert_leq(r.arena_cap, b.len + 1, "the arena is never larger than the response");
  weir__kinesis_records_free(&r);
  weir__kjson_free(&b);
}

Test(kinesis_client, refused_connections_are_transient_and_retried) {
  const struct weir_kinesis_retry quick = {3, 1, 4, 2.0};
  weir_kinesis_config cfg = {0};
  struct weir_kinesis_stream_summary sum;
  weir_kinesis_client *c = NULL;
  const struct weir_kinesis_error *e;

  cfg.region = "us-east-1";
  cfg.endpoint = "http://127.0.0.1:1"; /* nothing listens on port 1 */
  cfg.access_key_id = "AKIDEXAMPLE";
  cfg.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  cr_assert_eq(weir_kinesis_client_create(&c, &cfg), 0);
  weir__kinesis_set_retry(c, WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY, &quick);
  cr_assert_eq(weir__kinesis_describe_stream_summary(c, "s", &sum), WEIR_EIO);
  e = weir__kinesis_last_error(c);
  cr_assert_eq(e->cls, WEIR_KINESIS_ERR_TRANSIENT);
  cr_assert_eq(e->attempts, 4);
  cr_assert_eq(e->http_status, 0);
  weir_kinesis_client_destroy(c);
}

Test(kinesis_client, config_errors) {
  weir_kinesis_config cfg = {0};
  weir_kinesis_client *c = (weir_kinesis_client *)1;

  cfg.region = "us-east-1";
  cfg.endpoint = "ftp://127.0.0.1:1";
  cfg.access_key_id = "AKIDEXAMPLE";
  cfg.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  cr_assert_eq(weir_kinesis_client_create(&c, &cfg), WEIR_EINVAL);
  cr_assert_null(c);
  cfg.endpoint = "http://127.0.0.1:1";
  cfg.connect_timeout_ms = -1;
  cr_assert_eq(weir_kinesis_client_create(&c, &cfg), WEIR_EINVAL);
  weir_kinesis_client_destroy(NULL);
}

Test(kinesis_put_records, per_entry_results) {
  const char *body =
      "{\"FailedRecordCount\":2,\"EncryptionType\":null,\"Records\":["
      "{\"SequenceNumber\":\"49543463076548007577105092703039560359975228518395019266\","
      "\"ShardId\":\"shardId-000000000000\"},"
      "{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate exceeded "
      "for shard shardId-000000000001 in stream exampleStreamName under account 111111111111.\"},"
      "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"Internal service failure.\","
      "\"SequenceNumber\":null,\"ShardId\":null}]}";
  struct weir_kinesis_put_result res[3];
  size_t failed = 0;

  cr_assert_eq(
      weir__kinesis_parse_put_records((const uint8_t *)body, strlen(body), res, 3, &failed), 0);
  cr_assert_eq(failed, 2);
  cr_assert(res[0].ok);
  cr_assert_str_eq(res[0].sequence_number,
                   "49543463076548007577105092703039560359975228518395019266");
  cr_assert_str_eq(res[0].shard_id, "shardId-000000000000");
  cr_assert(!res[1].ok);
  cr_assert_str_eq(res[1].error_code, "ProvisionedThroughputExceededException");
  cr_assert(strstr(res[1].error_message, "Rate exceeded") == res[1].error_message);
  cr_assert(!res[2].ok);
  cr_assert_str_eq(res[2].error_code, "InternalFailure");
  /* Exactly one result per entry. */
  cr_assert_eq(
      weir__kinesis_parse_put_records((const uint8_t *)body, strlen(body), res, 2, &failed),
      WEIR_EPARSE);
  cr_assert_eq(
      weir__kinesis_parse_put_records((const uint8_t *)body, strlen(body) - 1, res, 3, &failed),
      WEIR_EPARSE);
}

Test(kinesis_get_records, timestamps_in_every_notation) {
  static const struct {
    const char *text;
    int64_t ms;
  } cases[] = {
      {"1.441215410867E9", 1441215410867},
      {"1441215410.867", 1441215410867},
      {"1441215410", 1441215410000},
      {"1795632695.57", 1795632695570},
      {"1.4412154108675e+9", 1441215410868},
      {"14412154108670e-4", 1441215410867},
      {"0", 0},
      {"0.0004", 0},
      {"2.5E-3", 3},
      {"-1.5", -1500},
  };
  struct weir_kinesis_records r;
  char body[256];

  weir__kinesis_records_init(&r);
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    snprintf(body, sizeof(body),
             "{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\","
             "\"ApproximateArrivalTimestamp\":%s}]}",
             cases[k].text);
    cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, strlen(body), &r), 0, "%s",
                 cases[k].text);
    cr_assert_eq(r.recs[0].arrival_ms, cases[k].ms, "%s -> %lld", cases[k].text,
                 (long long)r.recs[0].arrival_ms);
  }
  static const char *const bad[] = {"01", "1.", ".5", "1e", "+1", "--1", "1.5e+"};
  for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    snprintf(body, sizeof(body),
             "{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\","
             "\"ApproximateArrivalTimestamp\":%s}]}",
             bad[k]);
    cr_assert_eq(weir__kinesis_parse_get_records((const uint8_t *)body, strlen(body), &r),
                 WEIR_EPARSE, "%s", bad[k]);
  }
  weir__kinesis_records_free(&r);
}

Test(kinesis_base64, encoder_matches_openssl) {
  uint8_t in[300];
  char enc[410], ref[410];
  uint64_t x = 88172645463325252u;

  for (size_t len = 0; len <= sizeof(in); len++) {
    for (size_t i = 0; i < len; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      in[i] = (uint8_t)x;
    }
    memset(enc, 0, sizeof(enc));
    weir__b64_encode(in, len, enc);
    EVP_EncodeBlock((unsigned char *)ref, in, (int)len);
    cr_assert_str_eq(enc, ref, "length %zu", len);
  }
}

Test(kinesis_put_records, both_member_orders_and_near_misses) {
  /* kinesalite writes ShardId first, AWS SequenceNumber first; the other entries take the
   * general path (whitespace, an escape, an extra member) and must give the same results. */
  const char *body =
      "{\"FailedRecordCount\":0,\"Records\":["
      "{\"ShardId\":\"shardId-000000000003\",\"SequenceNumber\":\"4954346307654800757"
      "7105092703039560359975228518395019266\"},"
      "{\"SequenceNumber\":\"12\",\"ShardId\":\"shardId-000000000001\"},"
      "{ \"ShardId\":\"shardId-000000000002\",\"SequenceNumber\":\"13\"},"
      "{\"ShardId\":\"shardId-00000000000\\u0034\",\"SequenceNumber\":\"14\"},"
      "{\"ShardId\":\"shardId-000000000005\",\"SequenceNumber\":\"15\",\"X\":1},"
      "{\"ShardId\":\"shardId-000000000006\",\"SequenceNumber\":\"1x\"}]}";
  static const char *const shards[] = {"shardId-000000000003", "shardId-000000000001",
                                       "shardId-000000000002", "shardId-000000000004",
                                       "shardId-000000000005", "shardId-000000000006"};
  static const char *const seqs[] = {
      "49543463076548007577105092703039560359975228518395019266", "12", "13", "14", "15", "1x"};
  struct weir_kinesis_put_result res[6];
  size_t failed = 1;

  cr_assert_eq(
      weir__kinesis_parse_put_records((const uint8_t *)body, strlen(body), res, 6, &failed), 0);
  cr_assert_eq(failed, 0);
  for (int i = 0; i < 6; i++) {
    cr_assert(res[i].ok, "entry %d", i);
    cr_assert_str_eq(res[i].shard_id, shards[i], "entry %d", i);
    cr_assert_str_eq(res[i].sequence_number, seqs[i], "entry %d", i);
  }
  /* A member missing after the fast path's prefix is an error, not a short result. */
  body = "{\"Records\":[{\"ShardId\":\"shardId-000000000003\"}]}";
  cr_assert_eq(
      weir__kinesis_parse_put_records((const uint8_t *)body, strlen(body), res, 1, &failed),
      WEIR_EPARSE);
}

/* Parses body with and without the fast path (records.c) and asserts the two agree: the same
 * return code and, on success, the same results. Returns the code. */
static int put_both(const char *body, size_t len, struct weir_kinesis_put_result *res, size_t n,
                    size_t *failed) {
  static struct weir_kinesis_put_result gen[WEIR_KINESIS_PUT_MAX_RECORDS];
  static struct weir_kinesis_put_outcomes out;
  static char shard_ids[WEIR_KINESIS_PUT_MAX_RECORDS][WEIR_KINESIS_SHARD_ID_MAX + 1];
  size_t gfailed = 0;
  int rc, grc;

  cr_assert_leq(n, WEIR_KINESIS_PUT_MAX_RECORDS);
  rc = weir__kinesis_parse_put_records((const uint8_t *)body, len, res, n, failed);
  grc = weir__kinesis_parse_put_records_general((const uint8_t *)body, len, gen, n, &gfailed);
  cr_assert_eq(rc, grc, "fast %d, general %d: %.*s", rc, grc, (int)len, body);
  /* The dense outcomes, without and with shard ids: the same (garbage left in what they do not
   * write must not leak). */
  for (int ids = 0; ids < 2; ids++) {
    int orc;

    memset(&out, 0x5A, sizeof(out));
    memset(shard_ids, 0x5A, sizeof(shard_ids));
    out.shard_ids = ids ? shard_ids : NULL;
    orc = weir__kinesis_parse_put_outcomes((const uint8_t *)body, len, &out, n);
    cr_assert_eq(orc, grc, "outcomes %d, general %d: %.*s", orc, grc, (int)len, body);
    if (orc != 0)
      continue;
    cr_assert_eq(out.failed, gfailed);
    for (size_t i = 0, f = 0; i < n; i++) {
      cr_assert_eq(out.ok[i], gen[i].ok, "entry %zu", i);
      if (!out.ok[i]) {
        cr_assert_str_eq(out.fail[f].error_code, gen[i].error_code, "entry %zu", i);
        cr_assert_str_eq(out.fail[f].error_message, gen[i].error_message, "entry %zu", i);
        f++;
      } else if (ids) {
        cr_assert_str_eq(shard_ids[i], gen[i].shard_id, "entry %zu", i);
      }
    }
  }
  if (rc != 0)
    return rc;
  cr_assert_eq(*failed, gfailed);
  /* The fields that mean something (client_int.h): the ids of an acknowledged entry, code and
   * message of a failed one. */
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(res[i].ok, gen[i].ok, "entry %zu", i);
    if (res[i].ok) {
      cr_assert_str_eq(res[i].sequence_number, gen[i].sequence_number, "entry %zu", i);
      cr_assert_str_eq(res[i].shard_id, gen[i].shard_id, "entry %zu", i);
    } else {
      cr_assert_str_eq(res[i].error_code, gen[i].error_code, "entry %zu", i);
      cr_assert_str_eq(res[i].error_message, gen[i].error_message, "entry %zu", i);
    }
  }
  return rc;
}

/* Every proper prefix of body fails, read from a buffer of exactly its length (ASan catches a
 * read past it). */
static void put_prefixes_fail(const char *body, size_t n) {
  static struct weir_kinesis_put_result res[WEIR_KINESIS_PUT_MAX_RECORDS];
  size_t len = strlen(body), failed;

  for (size_t k = 0; k < len; k++) {
    char *cut = malloc(k ? k : 1);

    cr_assert_not_null(cut);
    memcpy(cut, body, k);
    cr_assert_eq(put_both(cut, k, res, n, &failed), WEIR_EPARSE, "prefix %zu of %s", k, body);
    free(cut);
  }
}

Test(kinesis_put_records, fast_path_shapes_agree_with_general) {
  /* Both member orders, failures mixed in with nulls in any order, kinesis-local's explicit
   * nulls and an EncryptionType per entry, a repeated member (the last one wins), an unknown
   * member of each kind, whitespace, escapes, an empty ErrorCode. */
  const char *body =
      "{\"FailedRecordCount\":3,\"EncryptionType\":null,\"Records\":["
      "{\"SequenceNumber\":\"49543463076548007577105092703039560359975228518395019266\","
      "\"ShardId\":\"shardId-000000000000\"},"
      "{\"ShardId\":\"shardId-000000000001\",\"SequenceNumber\":\"1\"},"
      "{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate "
      "exceeded for shard shardId-000000000001.\"},"
      "{\"SequenceNumber\":null,\"ShardId\":null,\"ErrorCode\":\"InternalFailure\","
      "\"ErrorMessage\":\"Internal service failure.\"},"
      "{\"ErrorMessage\":null,\"ErrorCode\":\"InternalFailure\"},"
      "{\"SequenceNumber\":\"2\",\"ShardId\":\"shardId-000000000002\",\"ErrorCode\":null,"
      "\"ErrorMessage\":null,\"EncryptionType\":\"KMS\"},"
      "{\"ShardId\":\"a\",\"SequenceNumber\":\"3\",\"ShardId\":\"shardId-000000000003\"},"
      "{\"X\":1,\"SequenceNumber\":\"4\",\"ShardId\":\"s\"},"
      "{\"X\":{\"y\":[true]},\"SequenceNumber\":\"5\",\"ShardId\":\"s\"},"
      "{\"SequenceNumber\":\"6\",\"ShardId\":\"s\",\"X\":null},"
      "{\"SequenceNumber\" : \"7\", \"ShardId\":\"s\"},"
      "{\"SequenceNumber\":\"8\",\"ShardId\":\"s\\u0031\"},"
      "{\"SequenceNumber\":\"9\",\"Shard\\u0049d\":\"x\",\"ShardId\":\"s\"},"
      "{\"ErrorCode\":\"\",\"SequenceNumber\":\"10\",\"ShardId\":\"s\"}"
      "]}";
  static const struct {
    bool ok;
    const char *seq, *shard, *code;
  } want[] = {
      {true, "49543463076548007577105092703039560359975228518395019266", "shardId-000000000000",
       ""},
      {true, "1", "shardId-000000000001", ""},
      {false, "", "", "ProvisionedThroughputExceededException"},
      {false, "", "", "InternalFailure"},
      {false, "", "", "InternalFailure"},
      {true, "2", "shardId-000000000002", ""},
      {true, "3", "shardId-000000000003", ""},
      {true, "4", "s", ""},
      {true, "5", "s", ""},
      {true, "6", "s", ""},
      {true, "7", "s", ""},
      {true, "8", "s1", ""},
      {true, "9", "s", ""},
      {true, "10", "s", ""},
  };
  const size_t n = sizeof(want) / sizeof(want[0]);
  struct weir_kinesis_put_result res[sizeof(want) / sizeof(want[0])];
  size_t failed = 0;

  cr_assert_eq(put_both(body, strlen(body), res, n, &failed), 0);
  cr_assert_eq(failed, 3);
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(res[i].ok, want[i].ok, "entry %zu", i);
    if (want[i].ok) {
      cr_assert_str_eq(res[i].sequence_number, want[i].seq, "entry %zu", i);
      cr_assert_str_eq(res[i].shard_id, want[i].shard, "entry %zu", i);
    } else {
      cr_assert_str_eq(res[i].error_code, want[i].code, "entry %zu", i);
    }
  }
  cr_assert_str_eq(res[2].error_message, "Rate exceeded for shard shardId-000000000001.");
  cr_assert_str_eq(res[4].error_message, "");
  /* Wrong entry counts, trailing garbage, and every truncation fail. */
  cr_assert_eq(put_both(body, strlen(body), res, n - 1, &failed), WEIR_EPARSE);
  cr_assert_eq(
      weir__kinesis_parse_put_records((const uint8_t *)body, strlen(body), res, n + 1, &failed),
      WEIR_EPARSE);
  put_prefixes_fail(body, n);
}

Test(kinesis_put_records, fast_path_limits_and_malformed_entries) {
  char seq[WEIR_KINESIS_SEQ_MAX + 2], shard[WEIR_KINESIS_SHARD_ID_MAX + 2], msg[400];
  char body[2048];
  struct weir_kinesis_put_result res[1];
  size_t failed;

  /* The longest sequence number and shard id fit; one more character is an error. */
  memset(seq, '7', sizeof(seq));
  seq[WEIR_KINESIS_SEQ_MAX] = '\0';
  memset(shard, 'x', sizeof(shard));
  shard[WEIR_KINESIS_SHARD_ID_MAX] = '\0';
  snprintf(body, sizeof(body), "{\"Records\":[{\"SequenceNumber\":\"%s\",\"ShardId\":\"%s\"}]}",
           seq, shard);
  cr_assert_eq(put_both(body, strlen(body), res, 1, &failed), 0);
  cr_assert_str_eq(res[0].sequence_number, seq);
  cr_assert_str_eq(res[0].shard_id, shard);
  snprintf(body, sizeof(body), "{\"Records\":[{\"SequenceNumber\":\"%s7\",\"ShardId\":\"s\"}]}",
           seq);
  cr_assert_eq(put_both(body, strlen(body), res, 1, &failed), WEIR_EPARSE);
  snprintf(body, sizeof(body), "{\"Records\":[{\"ShardId\":\"%sx\",\"SequenceNumber\":\"1\"}]}",
           shard);
  cr_assert_eq(put_both(body, strlen(body), res, 1, &failed), WEIR_EPARSE);
  /* A long message is cut to its buffer, not an error. */
  memset(msg, 'm', sizeof(msg));
  msg[sizeof(msg) - 1] = '\0';
  snprintf(body, sizeof(body),
           "{\"Records\":[{\"ErrorCode\":\"InternalFailure\","
           "\"ErrorMessage\":\"%s\"}]}",
           msg);
  cr_assert_eq(put_both(body, strlen(body), res, 1, &failed), 0);
  cr_assert_eq(failed, 1);
  cr_assert_eq(strlen(res[0].error_message), sizeof(res[0].error_message) - 1);
  /* Entries that are neither a result nor an error, or are not JSON. */
  static const char *const bad[] = {
      "{\"Records\":[{}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\"}]}",
      "{\"Records\":[{\"ShardId\":\"s\",\"SequenceNumber\":\"\"}]}",
      "{\"Records\":[{\"SequenceNumber\":null,\"ShardId\":\"s\"}]}",
      "{\"Records\":[{\"ErrorMessage\":\"no code\"}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\",}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\"]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\"}}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\"}]}x",
      "{\"Records\":[{\"SequenceNumber\":\"1\"\"ShardId\":\"s\"}]}",
      "{\"Records\":[{\"SequenceNumber\":1,\"ShardId\":\"s\"}]}",
      "{\"Records\":[{\"SequenceNumber\":nul,\"ShardId\":\"s\"}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\t\"}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\\q\"}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"X\":\"unterminated}]}",
      "{\"Records\":[{\"SequenceNumber\":\"1\",\"X\" \"y\",\"ShardId\":\"s\"}]}",
  };
  for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
    cr_assert_eq(put_both(bad[k], strlen(bad[k]), res, 1, &failed), WEIR_EPARSE, "%s", bad[k]);
}

Test(kinesis_put_records, full_response_every_entry) {
  /* A 500-entry response as AWS and kinesalite write it, with a failure every 7th entry (71). */
  static struct weir_kinesis_put_result res[WEIR_KINESIS_PUT_MAX_RECORDS];
  struct weir_kjson b;
  size_t failed;

  weir__kjson_init(&b, 1u << 20);
  for (int order = 0; order < 2; order++) {
    weir__kjson_reset(&b);
    weir__kjson_lit(&b, "{\"FailedRecordCount\":71,\"Records\":[");
    for (size_t i = 0; i < WEIR_KINESIS_PUT_MAX_RECORDS; i++) {
      char seq[80], shard[32], m[160];

      snprintf(seq, sizeof(seq), "4968056255206378731176252313972680293542658545%010zu", i);
      snprintf(shard, sizeof(shard), "shardId-%012zu", i % 7);
      if (i % 7 == 3)
        snprintf(m, sizeof(m), "%s{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"f%zu\"}",
                 i ? "," : "", i);
      else if (order == 0)
        snprintf(m, sizeof(m), "%s{\"SequenceNumber\":\"%s\",\"ShardId\":\"%s\"}", i ? "," : "",
                 seq, shard);
      else
        snprintf(m, sizeof(m), "%s{\"ShardId\":\"%s\",\"SequenceNumber\":\"%s\"}", i ? "," : "",
                 shard, seq);
      weir__kjson_lit(&b, m);
    }
    weir__kjson_lit(&b, "]}");
    cr_assert_eq(b.err, 0);
    cr_assert_eq(put_both(b.p, b.len, res, WEIR_KINESIS_PUT_MAX_RECORDS, &failed), 0);
    cr_assert_eq(failed, 71); /* i % 7 == 3 for i < 500 */
    for (size_t i = 0; i < WEIR_KINESIS_PUT_MAX_RECORDS; i++) {
      char seq[80], shard[32];

      snprintf(seq, sizeof(seq), "4968056255206378731176252313972680293542658545%010zu", i);
      snprintf(shard, sizeof(shard), "shardId-%012zu", i % 7);
      cr_assert_eq(res[i].ok, i % 7 != 3, "entry %zu", i);
      if (res[i].ok) {
        cr_assert_str_eq(res[i].sequence_number, seq);
        cr_assert_str_eq(res[i].shard_id, shard);
      } else {
        cr_assert_str_eq(res[i].error_code, "InternalFailure");
      }
    }
  }
  weir__kjson_free(&b);
}

Test(kinesis_json, put_entries) {
  const uint8_t key[] = {'k', '"', '\\', 0x01};
  struct weir_kjson b;

  weir__kjson_init(&b, 1024);
  weir__kjson_lit(&b, "[");
  weir__kjson_put_entry(&b, true, (weir_buf){(const uint8_t *)"hello", 5}, (weir_buf){key, 4},
                        NULL);
  weir__kjson_put_entry(&b, false, (weir_buf){NULL, 0}, (weir_buf){(const uint8_t *)"p", 1},
                        "170141183460469231731687303715884105728");
  weir__kjson_lit(&b, "]");
  cr_assert_eq(b.err, 0);
  cr_assert_str_eq(b.p, "[{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k\\\"\\\\\\u0001\"},"
                        "{\"Data\":\"\",\"PartitionKey\":\"p\",\"ExplicitHashKey\":"
                        "\"170141183460469231731687303715884105728\"}]");
  cr_assert_eq(b.len, strlen(b.p));
  /* Past the bound: the entry is not written and the error sticks. */
  weir__kjson_reset(&b);
  b.max = 20;
  weir__kjson_put_entry(&b, true, (weir_buf){(const uint8_t *)"hello", 5}, (weir_buf){key, 4},
                        NULL);
  cr_assert_eq(b.err, WEIR_ETOOBIG);
  cr_assert_eq(b.len, 0);
  weir__kjson_free(&b);
}
