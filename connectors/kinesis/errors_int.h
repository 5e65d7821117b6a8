/*
 * errors_int.h: Kinesis error responses: parsing the {"__type", "message"} shape, classifying
 * errors as throttling / transient / fatal, and the retry policy (exponential backoff with full
 * jitter) per operation.
 *
 * Pure functions and plain structs: any thread.
 */
#ifndef WEIR_KINESIS_ERRORS_INT_H
#define WEIR_KINESIS_ERRORS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/common.h"

#define WEIR_KINESIS_ERR_CODE_MAX 128
#define WEIR_KINESIS_ERR_MESSAGE_MAX 512

enum weir_kinesis_err_class {
  WEIR_KINESIS_ERR_NONE = 0,
  WEIR_KINESIS_ERR_THROTTLING, /* retry after a backoff */
  WEIR_KINESIS_ERR_TRANSIENT,  /* 5xx, resets, timeouts: retry after a backoff */
  WEIR_KINESIS_ERR_FATAL       /* validation, not found, access denied: surface it */
};

/* One failed call: the service's code and message (or the transport's), and its class. */
struct weir_kinesis_error {
  long http_status;                           /* 0 when no response arrived */
  char code[WEIR_KINESIS_ERR_CODE_MAX];       /* "ResourceNotFoundException"; "" when unknown */
  char message[WEIR_KINESIS_ERR_MESSAGE_MAX]; /* the service's message, or transport text */
  enum weir_kinesis_err_class cls;
  int attempts; /* attempts made, retries included */
  int rc;       /* the WEIR_E* code the call returned */
};

/*
 * Parses an error response: the code from the X-Amzn-ErrorType header value (may be NULL or
 * ""), else the body's "code", else "__type"; then everything from the first ':' is dropped
 * and only what follows the last '#' is kept. The message is the body's "message", else
 * "Message", else "". A body that is empty or not JSON leaves code/message empty. Fills
 * code, message, http_status and cls of `err`.
 */
void weir__kinesis_parse_error(long http_status, const char *error_type_header, const uint8_t *body,
                               size_t len, struct weir_kinesis_error *err);

/* Reduces a raw error code to its bare name in place (see weir__kinesis_parse_error). */
void weir__kinesis_error_code_normalize(char *code);

/* Classifies an error response by code and status (code "" = unknown). */
enum weir_kinesis_err_class weir__kinesis_classify(long http_status, const char *code);

/*
 * The WEIR_E* code for a final error: ResourceNotFoundException -> WEIR_ENOTFOUND,
 * ResourceInUseException -> WEIR_ESTATE, InvalidArgument/Validation/Serialization ->
 * WEIR_EINVAL, exhausted throttling -> WEIR_EAGAIN; without a response, the transport's code
 * kept in err->rc (WEIR_ETIMEDOUT, WEIR_ETOOBIG, WEIR_EIO, ...); else WEIR_EIO.
 */
int weir__kinesis_error_rc(const struct weir_kinesis_error *err);

/* Retry policy of one operation: attempts = 1 + retries; delay before retry n (0-based) is
 * uniform in [0, min(max_ms, base_ms * exp^n)] ("full jitter"). */
struct weir_kinesis_retry {
  int retries;
  int64_t base_ms;
  int64_t max_ms;
  double exp;
};

/*
 * Defaults, after Apache Flink's Kinesis connector (flink-connector-kinesis,
 * org.apache.flink.streaming.connectors.kinesis.config.ConsumerConfigConstants):
 *   DEFAULT_SHARD_GETRECORDS_RETRIES = 3, _BACKOFF_BASE = 300 ms, _MAX = 1000 ms,
 * _EXPONENTIAL_CONSTANT = 1.5 DEFAULT_SHARD_GETITERATOR_RETRIES = 3, _BACKOFF_BASE = 300 ms, _MAX =
 * 1000 ms, 1.5 DEFAULT_LIST_SHARDS_RETRIES = 10, _BACKOFF_BASE = 1000 ms, _MAX = 5000 ms, 1.5
 *   DEFAULT_STREAM_DESCRIBE_RETRIES = 50, _BACKOFF_BASE = 2000 ms, _MAX = 5000 ms, 1.5
 * Flink has no consumer constant for PutRecords (its sink relies on the SDK); weir uses the
 * GetRecords values. Control-plane calls (create, delete, split, merge) use the ListShards ones.
 */
#define WEIR_KINESIS_GETRECORDS_RETRIES 3
#define WEIR_KINESIS_GETRECORDS_BACKOFF_BASE_MS 300
#define WEIR_KINESIS_GETRECORDS_BACKOFF_MAX_MS 1000
#define WEIR_KINESIS_GETRECORDS_BACKOFF_EXP 1.5
#define WEIR_KINESIS_GETITERATOR_RETRIES 3
#define WEIR_KINESIS_GETITERATOR_BACKOFF_BASE_MS 300
#define WEIR_KINESIS_GETITERATOR_BACKOFF_MAX_MS 1000
#define WEIR_KINESIS_GETITERATOR_BACKOFF_EXP 1.5
#define WEIR_KINESIS_LIST_SHARDS_RETRIES 10
#define WEIR_KINESIS_LIST_SHARDS_BACKOFF_BASE_MS 1000
#define WEIR_KINESIS_LIST_SHARDS_BACKOFF_MAX_MS 5000
#define WEIR_KINESIS_LIST_SHARDS_BACKOFF_EXP 1.5
#define WEIR_KINESIS_DESCRIBE_RETRIES 50
#define WEIR_KINESIS_DESCRIBE_BACKOFF_BASE_MS 2000
#define WEIR_KINESIS_DESCRIBE_BACKOFF_MAX_MS 5000
#define WEIR_KINESIS_DESCRIBE_BACKOFF_EXP 1.5

/* The delay (ms) before retry number `retry` (0-based); `rng` is a caller-owned xorshift state
 * (any non-zero seed). */
int64_t weir__kinesis_backoff_ms(const struct weir_kinesis_retry *p, int retry, uint64_t *rng);

#endif /* WEIR_KINESIS_ERRORS_INT_H */
