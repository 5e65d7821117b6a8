/* fuzz_put_records.c: PutRecords response bodies -> weir__kinesis_parse_put_records. The first
 * byte picks how many entries the request had (1..64); the rest is the body. */
#include <string.h>

#include "connectors/kinesis/client_int.h"
#include "fuzz_common.h"

#define MAX_N 64
static struct weir_kinesis_put_result results[MAX_N];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n, failed = 0, count = 0;

  if (size < 1)
    return 0;
  n = 1 + data[0] % MAX_N;
  memset(results, 0xA5, sizeof(results));
  if (weir__kinesis_parse_put_records(data + 1, size - 1, results, n, &failed) != 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    const struct weir_kinesis_put_result *r = &results[i];
    FUZZ_CHECK(r->ok == true || r->ok == false);
    if (r->ok) {
      FUZZ_CHECK(memchr(r->sequence_number, 0, sizeof(r->sequence_number)) != NULL);
      FUZZ_CHECK(memchr(r->shard_id, 0, sizeof(r->shard_id)) != NULL);
    } else {
      FUZZ_CHECK(memchr(r->error_code, 0, sizeof(r->error_code)) != NULL);
      FUZZ_CHECK(memchr(r->error_message, 0, sizeof(r->error_message)) != NULL);
      count++;
    }
  }
  FUZZ_CHECK(failed == count);
  return 0;
}
