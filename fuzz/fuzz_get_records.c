/* fuzz_get_records.c: GetRecords response bodies -> weir__kinesis_parse_get_records. The result
 * object is reused across inputs, as the client reuses it between calls. */
#include <string.h>

#include "connectors/kinesis/client_int.h"
#include "fuzz_common.h"

static struct weir_kinesis_records recs;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  weir__kinesis_records_init(&recs);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (weir__kinesis_parse_get_records(data, size, &recs) != 0)
    return 0;
  FUZZ_CHECK(recs.n <= recs.recs_cap);
  FUZZ_CHECK(recs.n_children <= WEIR_KINESIS_CHILD_SHARDS_MAX);
  FUZZ_CHECK(strlen(recs.next_iterator) <= WEIR_KINESIS_ITERATOR_MAX);
  for (size_t i = 0; i < recs.n; i++) {
    const struct weir_kinesis_record *r = &recs.recs[i];
    FUZZ_CHECK(fuzz_within(r->data.ptr, r->data.len, recs.arena, recs.arena_cap));
    FUZZ_CHECK(fuzz_within(r->partition_key.ptr, r->partition_key.len, recs.arena, recs.arena_cap));
    FUZZ_CHECK(r->sequence_number != NULL);
    FUZZ_CHECK(strlen(r->sequence_number) <= WEIR_KINESIS_SEQ_MAX);
    FUZZ_CHECK(fuzz_within(r->sequence_number, strlen(r->sequence_number) + 1, recs.arena,
                           recs.arena_cap));
  }
  for (size_t i = 0; i < recs.n_children; i++)
    FUZZ_CHECK(strlen(recs.children[i].shard_id) <= WEIR_KINESIS_SHARD_ID_MAX);
  return 0;
}
