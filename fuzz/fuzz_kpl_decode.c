/*
 * fuzz_kpl_decode.c: Kinesis record data -> the KPL de-aggregator (kpl_int.h decoder).
 *
 * Byte 0 is a mode: bit 0 set wraps the rest as an aggregate (magic + body + the body's MD5),
 * so the fuzzer reaches the protobuf reader instead of stopping at the digest check; bit 1
 * set decodes with a shard hash-key range (the upper half of the key space), so the filtering
 * path runs too. Every user record's views must lie inside the input.
 */
#include <openssl/evp.h>
#include <string.h>

#include "connectors/kinesis/kpl_int.h"
#include "fuzz_common.h"

/* 1 MiB: the largest Kinesis record data (WEIR_KPL_KINESIS_RECORD_MAX). */
#define FUZZ_KPL_MAX_INPUT (1u << 20)

static struct weir_kpl_decoder *dec;
static uint8_t *wrapped;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  /* A small table bound so the fuzzer can reach WEIR_ETOOBIG too. */
  if (weir__kpl_decoder_new(&dec, 4096) != 0)
    abort();
  wrapped = malloc(FUZZ_KPL_MAX_INPUT + WEIR_KPL_OVERHEAD);
  if (wrapped == NULL)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char pk[] = "pk", seq[] = "49590338271490256608559692538361571095921575989136588898";
  struct weir_kpl_hash_range upper = {{UINT64_C(1) << 63, 0}, {UINT64_MAX, UINT64_MAX}};
  struct weir_kpl_input in;
  struct weir_kpl_user_record ur;
  enum weir_kpl_kind kind;
  const uint8_t *buf;
  size_t len, count, seen = 0;
  unsigned mode;
  int rc;

  if (size < 1 || size - 1 > FUZZ_KPL_MAX_INPUT)
    return 0;
  mode = data[0];
  if (mode & 1) {
    unsigned int md_len = 0;
    memcpy(wrapped, WEIR_KPL_MAGIC, WEIR_KPL_MAGIC_LEN);
    memcpy(wrapped + WEIR_KPL_MAGIC_LEN, data + 1, size - 1);
    if (EVP_Digest(data + 1, size - 1, wrapped + WEIR_KPL_MAGIC_LEN + size - 1, &md_len, EVP_md5(),
                   NULL) != 1)
      abort();
    buf = wrapped;
    len = size - 1 + WEIR_KPL_OVERHEAD;
  } else {
    buf = data + 1;
    len = size - 1;
  }
  memset(&in, 0, sizeof(in));
  in.data = (weir_buf){buf, len};
  in.partition_key = (weir_buf){(const uint8_t *)pk, sizeof(pk) - 1};
  in.sequence_number = (weir_buf){(const uint8_t *)seq, sizeof(seq) - 1};
  rc = weir__kpl_decoder_open(dec, &in, (mode & 2) ? &upper : NULL, &kind);
  if (rc != 0 && rc != WEIR_EPARSE)
    return 0;
  count = weir__kpl_decoder_count(dec);
  if (kind == WEIR_KPL_PLAIN)
    FUZZ_CHECK(count == 1);
  if (kind == WEIR_KPL_FILTERED)
    FUZZ_CHECK(count == 0);
  while ((rc = weir__kpl_decoder_next(dec, &ur)) == 0) {
    FUZZ_CHECK(seen < count);
    FUZZ_CHECK(fuzz_within(ur.data.ptr, ur.data.len, buf, len));
    FUZZ_CHECK(fuzz_within(ur.partition_key.ptr, ur.partition_key.len, buf, len) ||
               ur.partition_key.ptr == in.partition_key.ptr);
    if (ur.has_explicit_hash_key)
      FUZZ_CHECK(fuzz_within(ur.explicit_hash_key.ptr, ur.explicit_hash_key.len, buf, len));
    FUZZ_CHECK(ur.sequence_number.ptr == in.sequence_number.ptr);
    FUZZ_CHECK(ur.aggregated == (kind == WEIR_KPL_AGGREGATE));
    if (kind == WEIR_KPL_AGGREGATE)
      FUZZ_CHECK(ur.sub_sequence_number == seen);
    seen++;
  }
  FUZZ_CHECK(rc == WEIR_EOF || rc == WEIR_EPARSE);
  if (rc == WEIR_EOF)
    FUZZ_CHECK(seen == count);
  return 0;
}
