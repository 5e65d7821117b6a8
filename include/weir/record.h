/*
 * weir/record.h: the record model.
 *
 * A record is a value (bytes), an optional key (bytes), an event timestamp and source metadata.
 * Records travel in batches whose bytes live in a per-batch arena that the runtime recycles:
 * operators see `const weir_record` arrays whose pointers are borrowed for the duration of the
 * callback that received them. To keep a record, copy its bytes.
 */
#ifndef WEIR_RECORD_H
#define WEIR_RECORD_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Timestamp value meaning "no event time". */
#define WEIR_NO_TIMESTAMP INT64_MIN

typedef struct weir_record {
  weir_buf value;    /* the payload; ptr may be NULL when len is 0 */
  weir_buf key;      /* partition/grouping key; len 0 means "no key" */
  int64_t timestamp; /* event time in milliseconds since the epoch, or WEIR_NO_TIMESTAMP */
  weir_buf meta;     /* source-defined metadata (file name, stream/shard); may be empty */
  uint64_t offset;   /* source-defined position (generator index, line number, ...) */
} weir_record;

/* Returns a record with empty value, key and metadata and no timestamp. */
static inline weir_record weir_record_init(void) {
  weir_record r = {{NULL, 0}, {NULL, 0}, WEIR_NO_TIMESTAMP, {NULL, 0}, 0};
  return r;
}

/* Returns a weir_buf viewing a NUL-terminated string (borrowed, not copied). */
static inline weir_buf weir_buf_str(const char *s) {
  weir_buf b = {(const uint8_t *)s, 0};
  while (s != NULL && s[b.len] != '\0')
    b.len++;
  return b;
}

#ifdef __cplusplus
}
#endif
#endif /* WEIR_RECORD_H */
