/* fuzz_list_shards.c: ListShards response bodies -> weir__kinesis_parse_list_shards, into a
 * list that already holds one shard (as on a second page) with room for 32 more. */
#include <string.h>

#include "connectors/kinesis/client_int.h"
#include "fuzz_common.h"

#define CAP 33
static struct weir_kinesis_shard shards[CAP];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct weir_kinesis_shard_list l = {shards, 1, CAP};
  char token[128];
  int rc;

  memset(token, 0x5A, sizeof(token));
  rc = weir__kinesis_parse_list_shards(data, size, &l, token, sizeof(token));
  FUZZ_CHECK(l.len >= 1 && l.len <= l.cap);
  for (size_t i = 1; i < l.len; i++) {
    const struct weir_kinesis_shard *s = &l.v[i];
    FUZZ_CHECK(strlen(s->shard_id) <= WEIR_KINESIS_SHARD_ID_MAX);
    FUZZ_CHECK(strlen(s->hash_range.start) <= WEIR_KINESIS_HASH_KEY_MAX);
    FUZZ_CHECK(strlen(s->hash_range.end) <= WEIR_KINESIS_HASH_KEY_MAX);
    FUZZ_CHECK(strlen(s->starting_seq) <= WEIR_KINESIS_SEQ_MAX);
    FUZZ_CHECK(strlen(s->ending_seq) <= WEIR_KINESIS_SEQ_MAX);
  }
  if (rc == 0)
    FUZZ_CHECK(memchr(token, 0, sizeof(token)) != NULL);
  /* Without a token buffer. */
  l.len = 1;
  (void)weir__kinesis_parse_list_shards(data, size, &l, NULL, 0);
  FUZZ_CHECK(l.len <= l.cap);
  return 0;
}
