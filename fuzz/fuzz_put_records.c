/* fuzz_put_records.c: PutRecords response bodies -> weir__kinesis_parse_put_records. The first
 * byte picks how many entries the request had (1..64); the rest is the body. The parse must
 * agree with weir__kinesis_parse_put_records_general (no fast path): same code, same results;
 * and weir__kinesis_parse_put_outcomes (dense; shard ids when the second byte is odd) on code,
 * outcomes and shard ids. */
#include <string.h>

#include "connectors/kinesis/client_int.h"
#include "fuzz_common.h"

#define MAX_N 64
static struct weir_kinesis_put_result results[MAX_N], general[MAX_N];
static struct weir_kinesis_put_outcomes outcomes;
static char shard_ids[MAX_N][WEIR_KINESIS_SHARD_ID_MAX + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n, failed = 0, count = 0, general_failed = 0;
  int rc;

  if (size < 1)
    return 0;
  n = 1 + data[0] % MAX_N;
  memset(results, 0xA5, sizeof(results));
  memset(general, 0x5A, sizeof(general));
  rc = weir__kinesis_parse_put_records(data + 1, size - 1, results, n, &failed);
  FUZZ_CHECK(weir__kinesis_parse_put_records_general(data + 1, size - 1, general, n,
                                                     &general_failed) == rc);
  memset(&outcomes, 0xC3, sizeof(outcomes));
  memset(shard_ids, 0xC3, sizeof(shard_ids));
  outcomes.shard_ids = size > 1 && (data[1] & 1) ? shard_ids : NULL;
  FUZZ_CHECK(weir__kinesis_parse_put_outcomes(data + 1, size - 1, &outcomes, n) == rc);
  if (rc != 0)
    return 0;
  FUZZ_CHECK(failed == general_failed);
  FUZZ_CHECK(outcomes.failed == general_failed);
  for (size_t i = 0, f = 0; i < n; i++) {
    FUZZ_CHECK(outcomes.ok[i] == general[i].ok);
    if (!outcomes.ok[i]) {
      FUZZ_CHECK(strcmp(outcomes.fail[f].error_code, general[i].error_code) == 0);
      FUZZ_CHECK(strcmp(outcomes.fail[f].error_message, general[i].error_message) == 0);
      f++;
    } else if (outcomes.shard_ids != NULL) {
      FUZZ_CHECK(strcmp(shard_ids[i], general[i].shard_id) == 0);
    }
  }
  for (size_t i = 0; i < n; i++) {
    const struct weir_kinesis_put_result *r = &results[i];
    const struct weir_kinesis_put_result *g = &general[i];
    FUZZ_CHECK(r->ok == true || r->ok == false);
    FUZZ_CHECK(r->ok == g->ok);
    if (r->ok) {
      FUZZ_CHECK(memchr(r->sequence_number, 0, sizeof(r->sequence_number)) != NULL);
      FUZZ_CHECK(memchr(r->shard_id, 0, sizeof(r->shard_id)) != NULL);
      FUZZ_CHECK(strcmp(r->sequence_number, g->sequence_number) == 0);
      FUZZ_CHECK(strcmp(r->shard_id, g->shard_id) == 0);
    } else {
      FUZZ_CHECK(memchr(r->error_code, 0, sizeof(r->error_code)) != NULL);
      FUZZ_CHECK(memchr(r->error_message, 0, sizeof(r->error_message)) != NULL);
      FUZZ_CHECK(strcmp(r->error_code, g->error_code) == 0);
      FUZZ_CHECK(strcmp(r->error_message, g->error_message) == 0);
      count++;
    }
  }
  FUZZ_CHECK(failed == count);
  return 0;
}
