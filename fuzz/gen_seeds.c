/*
 * gen_seeds.c: writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from valid
 * examples made with weir's own encoders, plus a few hand-written edge cases. Run by hand
 * after a wire format changes:  build-fuzz/fuzz/gen_seeds fuzz/corpus
 * (Not run by scripts/fuzz.sh: the checked-in corpus is the seed set.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "connectors/kinesis/kpl_int.h"
#include "proto/checkpoint.pb-c.h"
#include "runtime/ckpt_store_int.h"
#include "runtime/state_int.h"
#include "weir/state.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t len) {
  char path[1024];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", root, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    perror(path);
    exit(1);
  }
  snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
  if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

static void puts_(const char *target, const char *name, const char *s) {
  put(target, name, s, strlen(s));
}

/* A mode byte, then the bytes. */
static void put_mode(const char *target, const char *name, uint8_t mode, const void *p,
                     size_t len) {
  uint8_t *b = malloc(len + 1);
  b[0] = mode;
  memcpy(b + 1, p, len);
  put(target, name, b, len + 1);
  free(b);
}

static void get_records(void) {
  const char *t = "get_records";
  puts_(t, "kinesalite",
        "{\"Records\":[{\"SequenceNumber\":"
        "\"49590338271490256608559692538361571095921575989136588898\",\"Data\":\"aGVsbG8=\","
        "\"PartitionKey\":\"k1\",\"ApproximateArrivalTimestamp\":1795632695.57},"
        "{\"SequenceNumber\":\"49590338271490256608559692540925702759324208523137515618\","
        "\"Data\":\"\",\"PartitionKey\":\"\\u00e9t\\u00e9\",\"ApproximateArrivalTimestamp\":"
        "1795632695}],\"NextShardIterator\":\"AAAAAAAAAAFx8ut1WOk5xRlFXHbQnFGo3a9YdIL1\","
        "\"MillisBehindLatest\":0}");
  puts_(t, "empty_end_of_shard", "{\"Records\":[],\"MillisBehindLatest\":0}");
  puts_(t, "child_shards",
        "{\"Records\":[],\"NextShardIterator\":null,\"MillisBehindLatest\":12,\"ChildShards\":"
        "[{\"ShardId\":\"shardId-000000000001\",\"ParentShards\":[\"shardId-000000000000\"],"
        "\"HashKeyRange\":{\"StartingHashKey\":\"0\",\"EndingHashKey\":"
        "\"170141183460469231731687303715884105727\"}},{\"ShardId\":\"shardId-000000000002\","
        "\"ParentShards\":[\"shardId-000000000000\"],\"HashKeyRange\":{\"StartingHashKey\":"
        "\"170141183460469231731687303715884105728\",\"EndingHashKey\":"
        "\"340282366920938463463374607431768211455\"}}]}");
  puts_(t, "kms_escapes",
        "{ \"Records\" : [ { \"Data\" : \"AAECAwQFBgcICQ==\", \"PartitionKey\" : "
        "\"a\\\"b\\\\c\\/\\ud83d\\ude00\", \"SequenceNumber\" : \"1\", \"EncryptionType\" : "
        "\"KMS\", \"Extra\" : {\"x\":[1,2.5e3,true,false,null]} } ], \"NextShardIterator\" : "
        "\"it\" }");
}

static void put_records(void) {
  const char *t = "put_records";
  /* Byte 0: (n - 1) % 64 for the parser's expected entry count. */
  static const char ok2[] =
      "\x01{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":"
      "\"49590338271490256608559692538361571095921575989136588898\",\"ShardId\":"
      "\"shardId-000000000000\"},{\"SequenceNumber\":\"4959033827149025660855969254092570\","
      "\"ShardId\":\"shardId-000000000001\"}],\"EncryptionType\":\"NONE\"}";
  static const char mixed3[] =
      "\x02{\"FailedRecordCount\":2,\"Records\":[{\"ErrorCode\":"
      "\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate exceeded for shard "
      "shardId-000000000000 in stream s under account 111111111111.\"},{\"SequenceNumber\":"
      "\"1\",\"ShardId\":\"shardId-000000000000\"},{\"ErrorCode\":\"InternalFailure\","
      "\"ErrorMessage\":\"Internal service failure.\"}]}";
  static const char nulls1[] =
      "\x00{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":\"2\",\"ShardId\":"
      "\"shardId-000000000003\",\"ErrorCode\":null,\"ErrorMessage\":null}],"
      "\"EncryptionType\":null}";
  put(t, "ok2", ok2, sizeof(ok2) - 1);
  put(t, "mixed3", mixed3, sizeof(mixed3) - 1);
  /* Shapes at the edge of the fast path for common entries (records.c): another member,
   * a repeated member, an escape, a null next to an error. */
  static const char edges4[] =
      "\x03{\"Records\":[{\"ShardId\":\"shardId-000000000002\",\"SequenceNumber\":\"3\","
      "\"EncryptionType\":\"KMS\"},{\"ShardId\":\"a\",\"ShardId\":\"b\",\"SequenceNumber\":"
      "\"4\"},{\"SequenceNumber\":\"5\",\"ShardId\":\"s\\u0031\"},{\"ErrorCode\":"
      "\"InternalFailure\",\"ErrorMessage\":null,\"SequenceNumber\":null}]}";
  put(t, "nulls1", nulls1, sizeof(nulls1) - 1);
  put(t, "edges4", edges4, sizeof(edges4) - 1);
}

static void list_shards(void) {
  const char *t = "list_shards";
  puts_(t, "two_shards",
        "{\"Shards\":[{\"ShardId\":\"shardId-000000000000\",\"HashKeyRange\":{"
        "\"StartingHashKey\":\"0\",\"EndingHashKey\":\"170141183460469231731687303715884105727\""
        "},\"SequenceNumberRange\":{\"StartingSequenceNumber\":"
        "\"49590338271468955861094467006541000000000000000000000002\"}},{\"ShardId\":"
        "\"shardId-000000000001\",\"HashKeyRange\":{\"StartingHashKey\":"
        "\"170141183460469231731687303715884105728\",\"EndingHashKey\":"
        "\"340282366920938463463374607431768211455\"},\"SequenceNumberRange\":{"
        "\"StartingSequenceNumber\":\"49590338271491256606239849000000000000000000000000000018\""
        "}}]}");
  puts_(t, "split_with_token",
        "{\"Shards\":[{\"ShardId\":\"shardId-000000000000\",\"HashKeyRange\":{"
        "\"StartingHashKey\":\"0\",\"EndingHashKey\":\"340282366920938463463374607431768211455\""
        "},\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\",\"EndingSequenceNumber\":"
        "\"99\"}},{\"ShardId\":\"shardId-000000000001\",\"ParentShardId\":"
        "\"shardId-000000000000\",\"AdjacentParentShardId\":null,\"HashKeyRange\":{"
        "\"StartingHashKey\":\"0\",\"EndingHashKey\":\"1\"},\"SequenceNumberRange\":{"
        "\"StartingSequenceNumber\":\"100\",\"EndingSequenceNumber\":null}}],\"NextToken\":"
        "\"AAAAAAAAAAGK9EEG0sJqVhCUS2JsgigQ5dcpB4q9PYswrH2oK44Skbjtm+WR0xA=\"}");
  puts_(t, "empty", "{\"Shards\":[]}");
}

static void kpl(void) {
  const char *t = "kpl_decode";
  struct weir_kpl_aggregator *a;
  struct weir_kpl_agg_config cfg = {0, 0, WEIR_KPL_AGG_STYLE_JAVA};
  struct weir_kpl_agg_result res;
  static uint8_t out[4096];
  weir_buf ehk = {(const uint8_t *)"170141183460469231731687303715884105728", 39};

  if (weir__kpl_agg_new(&a, &cfg) != 0)
    exit(1);
  /* Aggregates are stored unwrapped (mode 0): the fuzzer mutates the real digest too. And
   * their bodies alone under mode 1, where the harness adds magic and digest. */
  weir__kpl_agg_add(a, (weir_buf){(const uint8_t *)"alpha", 5}, NULL,
                    (weir_buf){(const uint8_t *)"one", 3});
  weir__kpl_agg_add(a, (weir_buf){(const uint8_t *)"beta", 4}, &ehk,
                    (weir_buf){(const uint8_t *)"two", 3});
  weir__kpl_agg_add(a, (weir_buf){(const uint8_t *)"alpha", 5}, NULL,
                    (weir_buf){(const uint8_t *)"three", 5});
  if (weir__kpl_agg_finish(a, out, sizeof(out), &res) != 0)
    exit(1);
  put_mode(t, "java_three", 0, out, res.len);
  put_mode(t, "java_three_body", 1, out + WEIR_KPL_MAGIC_LEN, res.len - WEIR_KPL_OVERHEAD);
  put_mode(t, "java_three_body_ranged", 3, out + WEIR_KPL_MAGIC_LEN, res.len - WEIR_KPL_OVERHEAD);
  weir__kpl_agg_free(a);

  cfg.style = WEIR_KPL_AGG_STYLE_KPL;
  if (weir__kpl_agg_new(&a, &cfg) != 0)
    exit(1);
  for (int i = 0; i < 6; i++) {
    char pk[8], d[16];
    snprintf(pk, sizeof(pk), "k%d", i % 3);
    snprintf(d, sizeof(d), "record-%d", i);
    weir__kpl_agg_add(a, (weir_buf){(const uint8_t *)pk, strlen(pk)}, NULL,
                      (weir_buf){(const uint8_t *)d, strlen(d)});
  }
  if (weir__kpl_agg_finish(a, out, sizeof(out), &res) != 0)
    exit(1);
  put_mode(t, "kpl_six", 0, out, res.len);
  put_mode(t, "kpl_six_body", 1, out + WEIR_KPL_MAGIC_LEN, res.len - WEIR_KPL_OVERHEAD);
  weir__kpl_agg_free(a);
  put_mode(t, "plain", 0, "just a plain record", 19);
  put_mode(t, "magic_only", 0, WEIR_KPL_MAGIC, WEIR_KPL_MAGIC_LEN);
}

/* A backend for key groups [first, last] of 128 holding the same entries (those it owns). */
static struct weir__keyed_backend *filled(uint32_t first, uint32_t last) {
  struct weir__keyed_backend *b;
  void *vs, *ms, *ls;

  if (weir__keyed_backend_create(128, first, last, 0, &b) != 0 ||
      weir__keyed_backend_register(b, WEIR__STATE_VALUE, "count", &vs) != 0 ||
      weir__keyed_backend_register(b, WEIR__STATE_MAP, "seen", &ms) != 0 ||
      weir__keyed_backend_register(b, WEIR__STATE_LIST, "events", &ls) != 0)
    exit(1);
  for (int i = 0; i < 8; i++) {
    char k[16], v[16];
    snprintf(k, sizeof(k), "key-%d", i);
    snprintf(v, sizeof(v), "%d", i * 7);
    weir_buf kb = {(const uint8_t *)k, strlen(k)}, vb = {(const uint8_t *)v, strlen(v)};
    /* Keys outside the backend's key groups are refused: skip them. */
    if (weir_value_state_put(vs, kb, vb) != 0)
      continue;
    if (i % 2 == 0) {
      weir_map_state_put(ms, kb, (weir_buf){(const uint8_t *)"a", 1}, vb);
      weir_map_state_put(ms, kb, (weir_buf){(const uint8_t *)"b", 1}, vb);
    }
    if (i % 3 == 0) {
      weir_list_state_append(ls, kb, vb);
      weir_list_state_append(ls, kb, kb);
    }
  }
  return b;
}

static void snapshot(void) {
  const char *t = "ckpt_snapshot";
  struct weir__keyed_backend *b;
  struct weir__snapshot_blob blob;
  uint32_t first, last;

  b = filled(0, 127);
  if (weir__keyed_backend_snapshot(b, "window-count", 0, 1, (const uint8_t *)"op-bytes", 8,
                                   &blob) != 0)
    exit(1);
  put(t, "three_kinds_p1", blob.ptr, blob.len);
  free(blob.ptr);
  weir__keyed_backend_destroy(b);
  /* Subtask 1 of 2: its key-group range only. */
  weir__key_group_range(1, 2, 128, &first, &last);
  b = filled(first, last);
  if (weir__keyed_backend_snapshot(b, "window-count", 1, 2, NULL, 0, &blob) != 0)
    exit(1);
  put(t, "subtask1_of_2", blob.ptr, blob.len);
  free(blob.ptr);
  weir__keyed_backend_destroy(b);
  if (weir__keyed_backend_create(128, 0, 127, 0, &b) != 0 ||
      weir__keyed_backend_snapshot(b, "empty", 0, 1, NULL, 0, &blob) != 0)
    exit(1);
  put(t, "empty", blob.ptr, blob.len);
  free(blob.ptr);
  weir__keyed_backend_destroy(b);
}

static void meta(void) {
  const char *t = "ckpt_meta";
  Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT;
  Weir__Ckpt__OperatorInfo o1 = WEIR__CKPT__OPERATOR_INFO__INIT,
                           o2 = WEIR__CKPT__OPERATOR_INFO__INIT;
  Weir__Ckpt__SourcePosition s1 = WEIR__CKPT__SOURCE_POSITION__INIT;
  Weir__Ckpt__OperatorInfo *ops[2] = {&o1, &o2};
  Weir__Ckpt__SourcePosition *srcs[1] = {&s1};
  uint64_t bytes[2] = {1234, 0};
  uint8_t buf[1024];
  size_t n;

  m.format_version = WEIR__CKPT_META_FORMAT_VERSION;
  m.checkpoint_id = 7;
  m.start_time_ms = 1795632695000;
  m.end_time_ms = 1795632695120;
  m.job_name = "clicks-per-minute";
  m.max_parallelism = 128;
  o1.uid = "window-count";
  o1.parallelism = 2;
  o1.n_subtask_state_bytes = 2;
  o1.subtask_state_bytes = bytes;
  o1.key_count = 8;
  o2.uid = "kinesis-sink";
  o2.parallelism = 1;
  m.n_operators = 2;
  m.operators = ops;
  s1.uid = "kinesis-source";
  s1.subtask = 0;
  s1.position = (ProtobufCBinaryData){9, (uint8_t *)"\x01shard-00"};
  s1.description =
      "shardId-000000000000 seq 49590338271490256608559692538361571095921575989136588898";
  m.n_sources = 1;
  m.sources = srcs;
  n = weir__ckpt__checkpoint_metadata__pack(&m, buf);
  /* Mode 1: the harness frames it. */
  put_mode(t, "meta7", 1, buf, n);
  m.n_sources = 0;
  m.n_operators = 0;
  n = weir__ckpt__checkpoint_metadata__pack(&m, buf);
  put_mode(t, "meta7_bare", 1, buf, n);
  /* Mode 0: a raw frame, as stored (header + payload). */
  {
    uint8_t fr[1024 + 24];
    uint64_t h;
    memcpy(fr, "WCKP\x01\x02\x00\x00", 8);
    for (int i = 0; i < 8; i++)
      fr[8 + i] = (uint8_t)((uint64_t)n >> (8 * i));
    h = XXH3_64bits(buf, n);
    for (int i = 0; i < 8; i++)
      fr[16 + i] = (uint8_t)(h >> (8 * i));
    memcpy(fr + 24, buf, n);
    put_mode(t, "frame_complete", 0, fr, 24 + n);
    memcpy(fr, "WCKP\x01\x01\x00\x00", 8);
    memset(fr + 8, 0, 8);
    h = XXH3_64bits("", 0);
    for (int i = 0; i < 8; i++)
      fr[16 + i] = (uint8_t)(h >> (8 * i));
    put_mode(t, "frame_pending", 0, fr, 24);
  }
}

static void sigv4(void) {
  const char *t = "sigv4";
  /* Byte 0: selector bits (see fuzz_sigv4.c); then method, path, query, headers, payload. */
  puts_(t, "kinesis_post",
        "\x05POST\n/\n\nContent-Type:application/x-amz-json-1.1\nHost:kinesis.us-east-1."
        "amazonaws.com\nX-Amz-Target:Kinesis_20131202.ListShards\n\n{\"StreamName\":\"s\"}");
  puts_(t, "get_vanilla_query",
        "\x04GET\n/\nParam2=value2&Param1=value1\nHost:example.amazonaws.com\n\n");
  puts_(t, "odd_path",
        "\x04GET\n/example/.././/%20space/~tilde/./\nb=&a=%2B+%zz&a=1&=x\n"
        "Host:example.amazonaws.com\nMy-Header1:  value1  with   spaces \n"
        "my-header1:second\n\n");
  puts_(t, "no_normalize_presign",
        "\x15GET\n//a/b/../c\nX-Amz-Date=1&k\nhost:example.amazonaws.com\nx-amz-date:"
        "20150830T123600Z\n\nbody");
  puts_(t, "utf8_and_bad_date",
        "\x08PUT\n/\xe1\x88\xb4\n\xe1\x88\xb4=\xe1\x88\xb4\nHost:h\n"
        "X-Empty:\nNoColon\n\n");
}

/* Byte 0: piece size - 1; byte 1: bound index (64 << i bytes); then the answer. */
static void http_answer(void) {
  const char *t = "http_answer";
  static const char ok[] = "\xff\x07HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                           "Content-Length: 41\r\nDate: Thu, 26 Nov 2026 08:00:00 GMT\r\n"
                           "Connection: keep-alive\r\n\r\n"
                           "{\"StreamNames\":[],\"HasMoreStreams\":false}";
  static const char chunked[] = "\x02\x03HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\nTrailer: x\r\n\r\n";
  static const char cont[] = "\x10\x02HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                             "content-length: 2\r\n\r\n{}";
  static const char err[] = "\x07\x03HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: "
                            "ResourceNotFoundException:http://internal.amazon.com/coral/\r\n"
                            "Content-Length: 68\r\n\r\n{\"__type\":\"ResourceNotFoundException\","
                            "\"message\":\"Stream s not found\"}";
  static const char eof[] =
      "\x00\x01HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
  static const char cut[] = "\x40\x04HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Fail";
  static const char big[] = "\xff\x00HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}";
  static const char junk[] = "\x05\x01SSH-2.0-OpenSSH_9.2\r\n";
  put(t, "ok", ok, sizeof(ok) - 1);
  put(t, "chunked", chunked, sizeof(chunked) - 1);
  put(t, "continue", cont, sizeof(cont) - 1);
  put(t, "error", err, sizeof(err) - 1);
  put(t, "eof_body", eof, sizeof(eof) - 1);
  put(t, "truncated", cut, sizeof(cut) - 1);
  put(t, "too_big", big, sizeof(big) - 1);
  put(t, "not_http", junk, sizeof(junk) - 1);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_seeds <corpus-dir>\n");
    return 2;
  }
  root = argv[1];
  mkdir(root, 0755);
  get_records();
  put_records();
  list_shards();
  kpl();
  snapshot();
  meta();
  sigv4();
  http_answer();
  return 0;
}
