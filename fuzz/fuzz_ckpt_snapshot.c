/*
 * fuzz_ckpt_snapshot.c: OperatorSnapshot blobs -> weir__keyed_backend_restore (the decoding
 * path of checkpoint restore, runtime/state.c), into a backend of max parallelism 128 owning
 * every key group. A blob that restores is snapshotted again and restored into a second
 * backend: the round trip must succeed and keep every entry.
 */
#include <string.h>

#include "fuzz_common.h"
#include "runtime/state_int.h"

#define MAX_PAR 128
/* A small state budget: the fuzzer should find the ETOOBIG paths, not exhaust memory. */
#define BUDGET (16u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct weir__keyed_backend *b = NULL, *b2 = NULL;
  struct weir__snapshot_header hdr, hdr2;
  struct weir__snapshot_blob blob = {NULL, 0, 0};
  uint8_t *ops = NULL, *ops2 = NULL;
  size_t ops_len = 0, ops2_len = 0;
  int rc;

  if (weir__keyed_backend_create(MAX_PAR, 0, MAX_PAR - 1, BUDGET, &b) != 0)
    abort();
  rc = weir__keyed_backend_restore(b, (weir_buf){data, size}, "fuzz", &ops, &ops_len, &hdr);
  if (rc != 0)
    goto done;
  FUZZ_CHECK(hdr.key_count == hdr.key_count_all);
  FUZZ_CHECK(weir__keyed_backend_key_count(b) == hdr.key_count);
  FUZZ_CHECK(ops_len == 0 || ops != NULL);

  rc = weir__keyed_backend_snapshot(b, "again", 0, 1, ops, ops_len, &blob);
  if (rc == WEIR_ETOOBIG || rc == WEIR_ENOMEM)
    goto done;
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(blob.key_count == hdr.key_count);
  if (weir__keyed_backend_create(MAX_PAR, 0, MAX_PAR - 1, BUDGET, &b2) != 0)
    abort();
  rc = weir__keyed_backend_restore(b2, (weir_buf){blob.ptr, blob.len}, "fuzz round trip", &ops2,
                                   &ops2_len, &hdr2);
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(hdr2.key_count == hdr.key_count);
  FUZZ_CHECK(weir__keyed_backend_key_count(b2) == weir__keyed_backend_key_count(b));
  FUZZ_CHECK(ops2_len == ops_len && (ops_len == 0 || memcmp(ops, ops2, ops_len) == 0));

done:
  free(blob.ptr);
  free(ops);
  free(ops2);
  weir__keyed_backend_destroy(b2);
  weir__keyed_backend_destroy(b);
  return 0;
}
