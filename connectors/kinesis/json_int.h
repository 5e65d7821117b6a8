/*
 * json_int.h: writing Kinesis request bodies and decoding base64, without jansson.
 *
 * Request bodies are written straight into one reusable, bounded buffer (no JSON tree, no
 * per-record allocation): PutRecords of 500 records is one pass of appends. Base64 is the
 * standard alphabet with '=' padding (RFC 4648 section 4), as the Kinesis blob type uses.
 *
 * Threads: a weir_kjson belongs to one thread at a time; the base64 functions are pure.
 */
#ifndef WEIR_KINESIS_JSON_INT_H
#define WEIR_KINESIS_JSON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/common.h"

/* A growable text buffer with a hard bound. Appends past `max` fail with WEIR_ETOOBIG and
 * leave the buffer unusable until weir__kjson_reset; the first error sticks in `err`. */
struct weir_kjson {
  char *p; /* the text; `head` bytes of the same allocation precede it */
  size_t len;
  size_t cap;
  size_t max;
  size_t head; /* bytes before p that belong to the buffer (weir__kjson_init_head) */
  int err;
};

void weir__kjson_init(struct weir_kjson *b, size_t max);
/* As weir__kjson_init, with `head` bytes of scratch space kept before the text (p - head ..
 * p), which a transport may fill with the request head so head and body go out in one
 * write. */
void weir__kjson_init_head(struct weir_kjson *b, size_t max, size_t head);
void weir__kjson_free(struct weir_kjson *b);
/* Empties the buffer (keeps its memory) and clears the error. */
void weir__kjson_reset(struct weir_kjson *b);
void weir__kjson_raw(struct weir_kjson *b, const char *s, size_t n);
void weir__kjson_lit(struct weir_kjson *b, const char *s); /* NUL-terminated literal */
/* Appends a JSON string literal (quotes included) of UTF-8 bytes, escaping '"', '\\' and
 * control characters. */
void weir__kjson_str(struct weir_kjson *b, const uint8_t *s, size_t n);
void weir__kjson_cstr(struct weir_kjson *b, const char *s);
/* Appends one PutRecords entry, {"Data":"<base64>","PartitionKey":"<key>"} plus
 * ,"ExplicitHashKey":"<ehk>" when ehk is not NULL (decimal digits: written as they are),
 * preceded by a comma unless first, with one bound check for the whole entry. */
void weir__kjson_put_entry(struct weir_kjson *b, bool first, weir_buf data, weir_buf key,
                           const char *ehk);
/* Appends "\"<base64 of data>\"". */
void weir__kjson_b64(struct weir_kjson *b, const uint8_t *data, size_t n);
void weir__kjson_i64(struct weir_kjson *b, int64_t v);
/* Appends epoch milliseconds as JSON seconds with a 3-digit fraction ("1459799926.480"). */
void weir__kjson_epoch_ms(struct weir_kjson *b, int64_t ms);

/* Length of the base64 encoding of n bytes. */
static inline size_t weir__b64_encoded_len(size_t n) {
  return (n + 2) / 3 * 4;
}
/* Upper bound on the decoded length of n base64 characters. */
static inline size_t weir__b64_decoded_max(size_t n) {
  return n / 4 * 3 + 3;
}
/* Encodes n bytes into out (weir__b64_encoded_len(n) bytes, no NUL). */
void weir__b64_encode(const uint8_t *in, size_t n, char *out);
/*
 * Decodes strict padded base64 (length a multiple of 4, '=' only as the last one or two
 * characters, no whitespace). Writes at most weir__b64_decoded_max(n) bytes to out and the
 * decoded length to *out_len. Returns 0 or WEIR_EPARSE.
 */
int weir__b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len);

#endif /* WEIR_KINESIS_JSON_INT_H */
