/*
 * test_fuzz_entry_points.c: the decoding entry points added for the fuzz targets (fuzz/):
 * weir__kinesis_parse_list_shards (ops.c), weir__ckpt_frame_decode and weir__ckpt_meta_decode
 * (ckpt_store.c). The same code runs inside weir__kinesis_list_shards and
 * weir__ckpt_store_read_meta; these tests pin their results on small valid and broken inputs.
 * Also the regression tests of what the fuzzers found (snapshot_restore).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <xxhash.h>

#include "connectors/kinesis/client_int.h"
#include "runtime/ckpt_store_int.h"
#include "runtime/state_int.h"
#include "weir/state.h"

static const char two_shards[] =
    "{\"Shards\":[{\"ShardId\":\"shardId-000000000000\",\"HashKeyRange\":{\"StartingHashKey\":"
    "\"0\",\"EndingHashKey\":\"1\"},\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"5\","
    "\"EndingSequenceNumber\":\"9\"}},{\"ShardId\":\"shardId-000000000001\",\"ParentShardId\":"
    "\"shardId-000000000000\",\"AdjacentParentShardId\":null,\"HashKeyRange\":{"
    "\"StartingHashKey\":\"2\",\"EndingHashKey\":\"3\"},\"SequenceNumberRange\":{"
    "\"StartingSequenceNumber\":\"10\"}}],\"NextToken\":\"tok-123\"}";

static int parse_ls(const char *body, struct weir_kinesis_shard_list *l, char *tok, size_t cap) {
  return weir__kinesis_parse_list_shards((const uint8_t *)body, strlen(body), l, tok, cap);
}

Test(list_shards_parse, appends_shards_and_copies_the_token) {
  struct weir_kinesis_shard v[4];
  struct weir_kinesis_shard_list l = {v, 1, 4};
  char tok[16];

  cr_assert_eq(parse_ls(two_shards, &l, tok, sizeof(tok)), 0);
  cr_assert_eq(l.len, 3);
  cr_assert_str_eq(v[1].shard_id, "shardId-000000000000");
  cr_assert_str_eq(v[1].ending_seq, "9");
  cr_assert_str_eq(v[2].parent_shard_id, "shardId-000000000000");
  cr_assert_str_eq(v[2].adjacent_parent_shard_id, "");
  cr_assert_str_eq(v[2].hash_range.end, "3");
  cr_assert_str_eq(v[2].ending_seq, "");
  cr_assert_str_eq(tok, "tok-123");

  /* The last page has no token. */
  l.len = 0;
  cr_assert_eq(parse_ls("{\"Shards\":[]}", &l, tok, sizeof(tok)), 0);
  cr_assert_str_eq(tok, "");
  cr_assert_eq(parse_ls("{\"Shards\":[]}", &l, NULL, 0), 0);
}

Test(list_shards_parse, bounds_and_malformed_bodies) {
  struct weir_kinesis_shard v[2];
  struct weir_kinesis_shard_list l = {v, 1, 2};
  char tok[7];

  cr_assert_eq(parse_ls(two_shards, &l, NULL, 0), WEIR_ETOOBIG, "two shards, room for one");
  cr_assert_eq(l.len, 1, "nothing appended");
  l.len = 0;
  cr_assert_eq(parse_ls(two_shards, &l, tok, sizeof(tok)), WEIR_ETOOBIG, "token too long");
  l.len = 0;
  cr_assert_eq(parse_ls("", &l, NULL, 0), WEIR_EPARSE);
  cr_assert_eq(parse_ls("[]", &l, NULL, 0), WEIR_EPARSE);
  cr_assert_eq(parse_ls("{\"Shards\":{}}", &l, NULL, 0), WEIR_EPARSE);
  cr_assert_eq(parse_ls("{\"Shards\":[{\"ShardId\":\"x\"}]}", &l, NULL, 0), WEIR_EPARSE);
  cr_assert_eq(parse_ls("{\"Shards\":[]", &l, NULL, 0), WEIR_EPARSE);
  /* A list already past its capacity is refused, not written past. */
  l.len = 3;
  cr_assert_eq(parse_ls("{\"Shards\":[]}", &l, NULL, 0), WEIR_ETOOBIG);
}

static size_t frame(uint8_t *out, int type, const uint8_t *p, size_t len) {
  uint64_t h = XXH3_64bits(p, len);

  memcpy(out, "WCKP", 4);
  out[4] = WEIR__CKPT_FRAME_VERSION;
  out[5] = (uint8_t)type;
  out[6] = out[7] = 0;
  for (int i = 0; i < 8; i++) {
    out[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    out[16 + i] = (uint8_t)(h >> (8 * i));
  }
  memcpy(out + WEIR__CKPT_FRAME_HEADER, p, len);
  return WEIR__CKPT_FRAME_HEADER + len;
}

Test(ckpt_decode, frame_and_metadata) {
  Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT, *got = NULL;
  uint8_t pb[256], fr[512];
  weir_buf payload;
  char why[200];
  size_t n, fn;
  int type;

  m.format_version = WEIR__CKPT_META_FORMAT_VERSION;
  m.checkpoint_id = 7;
  m.job_name = "j";
  n = weir__ckpt__checkpoint_metadata__pack(&m, pb);
  fn = frame(fr, 2, pb, n);
  cr_assert_eq(weir__ckpt_frame_decode(fr, fn, &type, &payload, why, sizeof(why)), 0);
  cr_assert_eq(type, 2);
  cr_assert_eq(payload.len, n);
  cr_assert_eq(weir__ckpt_meta_decode(payload, 7, &got, why, sizeof(why)), 0);
  cr_assert_not_null(got);
  cr_assert_str_eq(got->job_name, "j");
  weir__ckpt_meta_free(got);

  /* Another id, another version, garbage: WEIR_EPARSE with a reason, nothing returned. */
  cr_assert_eq(weir__ckpt_meta_decode(payload, 8, &got, why, sizeof(why)), WEIR_EPARSE);
  cr_assert_null(got);
  cr_assert(strstr(why, "id 7") != NULL, "%s", why);
  m.format_version = 99;
  n = weir__ckpt__checkpoint_metadata__pack(&m, pb);
  cr_assert_eq(weir__ckpt_meta_decode((weir_buf){pb, n}, 7, &got, why, sizeof(why)), WEIR_EPARSE);
  cr_assert(strstr(why, "version 99") != NULL, "%s", why);
  cr_assert_eq(
      weir__ckpt_meta_decode((weir_buf){(const uint8_t *)"\xff\xff", 2}, 7, &got, why, sizeof(why)),
      WEIR_EPARSE);
  cr_assert_null(got);

  /* Frames: truncated, a flipped payload bit, an unknown type, a short header. */
  cr_assert_eq(weir__ckpt_frame_decode(fr, fn - 1, &type, &payload, why, sizeof(why)), WEIR_EPARSE);
  cr_assert(strstr(why, "truncated") != NULL, "%s", why);
  fr[fn - 1] ^= 1;
  cr_assert_eq(weir__ckpt_frame_decode(fr, fn, &type, &payload, why, sizeof(why)), WEIR_EPARSE);
  cr_assert(strstr(why, "checksum") != NULL, "%s", why);
  fn = frame(fr, 9, pb, n);
  cr_assert_eq(weir__ckpt_frame_decode(fr, fn, &type, &payload, why, sizeof(why)), WEIR_EPARSE);
  cr_assert_eq(weir__ckpt_frame_decode(fr, 10, &type, &payload, why, sizeof(why)), WEIR_EPARSE);
}

/* Found by fuzz_ckpt_snapshot: a blob whose map (or list) entry lost its pairs (one flipped bit
 * in a field tag) restored "successfully" without the key. The writer never writes an empty
 * entry, so restore must call it corrupt. */
static void empty_entry_is_refused(enum weir__state_kind kind) {
  struct weir__keyed_backend *b = NULL, *r = NULL;
  struct weir__snapshot_blob blob;
  Weir__Ckpt__OperatorSnapshot *msg;
  weir_buf k = {(const uint8_t *)"key", 3}, v = {(const uint8_t *)"val", 3};
  uint8_t *buf;
  size_t n;
  void *st;

  cr_assert_eq(weir__keyed_backend_create(128, 0, 127, 0, &b), 0);
  cr_assert_eq(weir__keyed_backend_register(b, kind, "s", &st), 0);
  if (kind == WEIR__STATE_MAP)
    cr_assert_eq(weir_map_state_put(st, k, v, v), 0);
  else
    cr_assert_eq(weir_list_state_append(st, k, v), 0);
  cr_assert_eq(weir__keyed_backend_snapshot(b, "op", 0, 1, NULL, 0, &blob), 0);

  /* As written, it restores. */
  cr_assert_eq(weir__keyed_backend_create(128, 0, 127, 0, &r), 0);
  cr_assert_eq(
      weir__keyed_backend_restore(r, (weir_buf){blob.ptr, blob.len}, "t", NULL, NULL, NULL), 0);
  cr_assert_eq(weir__keyed_backend_key_count(r), 1);
  weir__keyed_backend_destroy(r);

  /* Without its pairs/values, it is refused. */
  msg = weir__ckpt__operator_snapshot__unpack(NULL, blob.len, blob.ptr);
  cr_assert_not_null(msg);
  cr_assert_eq(msg->n_key_groups, 1);
  if (kind == WEIR__STATE_MAP)
    msg->key_groups[0]->states[0]->maps[0]->n_pairs = 0;
  else
    msg->key_groups[0]->states[0]->lists[0]->n_values = 0;
  buf = malloc(weir__ckpt__operator_snapshot__get_packed_size(msg));
  n = weir__ckpt__operator_snapshot__pack(msg, buf);
  cr_assert_eq(weir__keyed_backend_create(128, 0, 127, 0, &r), 0);
  cr_assert_eq(weir__keyed_backend_restore(r, (weir_buf){buf, n}, "t", NULL, NULL, NULL),
               WEIR_EPARSE);
  weir__keyed_backend_destroy(r);
  free(buf);
  /* Restore n_pairs/n_values so free_unpacked frees what it allocated. */
  if (kind == WEIR__STATE_MAP)
    msg->key_groups[0]->states[0]->maps[0]->n_pairs = 1;
  else
    msg->key_groups[0]->states[0]->lists[0]->n_values = 1;
  weir__ckpt__operator_snapshot__free_unpacked(msg, NULL);
  free(blob.ptr);
  weir__keyed_backend_destroy(b);
}

Test(snapshot_restore, empty_map_entry_is_corrupt) {
  empty_entry_is_refused(WEIR__STATE_MAP);
}

Test(snapshot_restore, empty_list_entry_is_corrupt) {
  empty_entry_is_refused(WEIR__STATE_LIST);
}
