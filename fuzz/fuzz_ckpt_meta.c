/*
 * fuzz_ckpt_meta.c: checkpoint store values -> frame verification and CheckpointMetadata
 * decoding (weir__ckpt_frame_decode, weir__ckpt_meta_decode: the decoding steps of
 * weir__ckpt_store_read_meta and of every blob read).
 *
 * Byte 0 is a mode: bit 0 clear verifies the rest as a raw frame (header, length, checksum),
 * then decodes a COMPLETE frame's payload; bit 0 set frames the rest correctly (so the fuzzer
 * gets past the checksum) and decodes it as the metadata of checkpoint 7. A decoded metadata
 * is walked the way restore and `weir-kinesis ckpt` read it.
 */
#include <string.h>
#include <xxhash.h>

#include "fuzz_common.h"
#include "runtime/ckpt_store_int.h"

#define FRAME_COMPLETE 2
static uint8_t *framed;
static size_t framed_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  return 0;
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void walk(const Weir__Ckpt__CheckpointMetadata *m) {
  size_t sum = 0;

  FUZZ_CHECK(m->checkpoint_id == 7);
  FUZZ_CHECK(m->format_version == WEIR__CKPT_META_FORMAT_VERSION);
  FUZZ_CHECK(m->job_name != NULL);
  sum += strlen(m->job_name);
  for (size_t i = 0; i < m->n_operators; i++) {
    const Weir__Ckpt__OperatorInfo *oi = m->operators[i];
    FUZZ_CHECK(oi != NULL && oi->uid != NULL);
    sum += strlen(oi->uid);
    for (size_t j = 0; j < oi->n_subtask_state_bytes; j++)
      sum += (size_t)oi->subtask_state_bytes[j];
  }
  for (size_t i = 0; i < m->n_sources; i++) {
    const Weir__Ckpt__SourcePosition *sp = m->sources[i];
    FUZZ_CHECK(sp != NULL && sp->uid != NULL && sp->description != NULL);
    FUZZ_CHECK(sp->position.len == 0 || sp->position.data != NULL);
    sum += strlen(sp->uid) + strlen(sp->description) + sp->position.len;
  }
  (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Weir__Ckpt__CheckpointMetadata *m = NULL;
  weir_buf payload;
  char why[256];
  int type = 0, rc;

  if (size < 1)
    return 0;
  if ((data[0] & 1) == 0) {
    rc = weir__ckpt_frame_decode(data + 1, size - 1, &type, &payload, why, sizeof(why));
    if (rc != 0) {
      FUZZ_CHECK(rc == WEIR_EPARSE && memchr(why, 0, sizeof(why)) != NULL);
      return 0;
    }
    FUZZ_CHECK(type >= 1 && type <= 3);
    FUZZ_CHECK(payload.len + WEIR__CKPT_FRAME_HEADER == size - 1);
    if (type != FRAME_COMPLETE)
      return 0;
  } else {
    size_t need = size - 1 + WEIR__CKPT_FRAME_HEADER;
    if (need > framed_cap) {
      free(framed);
      framed_cap = need;
      if ((framed = malloc(framed_cap)) == NULL)
        abort();
    }
    memcpy(framed, "WCKP", 4);
    framed[4] = WEIR__CKPT_FRAME_VERSION;
    framed[5] = FRAME_COMPLETE;
    framed[6] = framed[7] = 0;
    put_le64(framed + 8, size - 1);
    put_le64(framed + 16, XXH3_64bits(data + 1, size - 1));
    memcpy(framed + WEIR__CKPT_FRAME_HEADER, data + 1, size - 1);
    rc = weir__ckpt_frame_decode(framed, need, &type, &payload, why, sizeof(why));
    FUZZ_CHECK(rc == 0 && type == FRAME_COMPLETE && payload.len == size - 1);
  }
  rc = weir__ckpt_meta_decode(payload, 7, &m, why, sizeof(why));
  if (rc == 0) {
    walk(m);
    weir__ckpt_meta_free(m);
  } else {
    FUZZ_CHECK(rc == WEIR_EPARSE && m == NULL);
  }
  return 0;
}
