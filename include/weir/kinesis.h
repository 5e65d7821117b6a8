/*
 * weir/kinesis.h: connecting to Amazon Kinesis Data Streams (or a compatible server).
 *
 * A weir_kinesis_config says where and as whom: region, endpoint, credentials, TLS and
 * timeouts. Every field is optional: unset fields come from the environment and the shared AWS
 * files the way the AWS CLI reads them (AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_KINESIS
 * / AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE,
 * ~/.aws/credentials and ~/.aws/config). Stream names are given per source or sink.
 *
 * Secrets given here are copied into the client, used only to sign requests, never logged, and
 * zeroed when the client is destroyed.
 */
#ifndef WEIR_KINESIS_H
#define WEIR_KINESIS_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_kinesis_config {
  const char *region;            /* e.g. "eu-west-1"; NULL = environment, then profile */
  const char *endpoint;          /* e.g. "http://127.0.0.1:4567"; NULL = environment, profile,
                                    then https://kinesis.<region>.amazonaws.com */
  const char *access_key_id;     /* static credentials: set both this and the secret, or neither
                                    (NULL = environment, then shared files) */
  const char *secret_access_key; /* static credentials */
  const char *session_token;     /* static temporary credentials; optional */
  const char *profile;           /* shared-file profile; NULL = AWS_PROFILE, else "default" */
  const char *ca_file;           /* PEM file of CAs to trust instead of the system's; NULL =
                                    system store. TLS verification cannot be turned off. */
  int64_t connect_timeout_ms;    /* 0 = 10000 */
  int64_t request_timeout_ms;    /* whole request, response included; 0 = 30000 */
} weir_kinesis_config;

/* A connection to the service: credentials, signer, HTTP connection, buffers. One thread at a
 * time; make one per thread. */
typedef struct weir_kinesis_client weir_kinesis_client;

/*
 * Resolves region, endpoint and credentials and makes a client. `cfg` and its strings are
 * copied (may be freed after the call); NULL = all defaults. Returns 0, WEIR_EINVAL (bad
 * value), WEIR_ENOTFOUND (no credentials or no region found: the logged message says what was
 * tried), WEIR_EPARSE (a malformed shared file), WEIR_ENOMEM or WEIR_EIO. On success *out is
 * owned by the caller: weir_kinesis_client_destroy. Any thread.
 */
WEIR_API int weir_kinesis_client_create(weir_kinesis_client **out, const weir_kinesis_config *cfg);

/* Closes the connection, zeroes the secrets and frees. NULL is a no-op. */
WEIR_API void weir_kinesis_client_destroy(weir_kinesis_client *client);

/* ==== Kinesis sink ========================================================================= */

#include <stdbool.h> /* fail_on_error; size_t comes with common.h */

/* Forward declaration (weir/job.h) so this header stays usable on its own. */
typedef struct weir_job weir_job;

/* How a record's partition key is chosen. */
typedef enum {
  WEIR_KINESIS_PK_RECORD_KEY = 0, /* the record's key; records without a key get a random one */
  WEIR_KINESIS_PK_FIXED,          /* `partition_key` for every record (one shard, total order) */
  WEIR_KINESIS_PK_RANDOM          /* a random key per record (spread over shards, no order) */
} weir_kinesis_pk_mode;

/* Sink limits. PutRecords takes 1..500 entries per call (Kinesis API reference, PutRecords). */
#define WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS 500
/* Request size (data + partition keys): 5 MiB is the limit every stream accepts (and the one
 * kinesalite enforces); the current API reference allows 10 MiB ("large records", tied to the
 * stream's MaxRecordSizeInKiB): see shared/testdata/kinesis-api.md, PutRecords "Limits". */
#define WEIR_KINESIS_SINK_DEFAULT_REQUEST_BYTES (5u << 20)
#define WEIR_KINESIS_SINK_MAX_REQUEST_BYTES (10u << 20)
/* Per-record limit (data + partition key) when the stream does not report MaxRecordSizeInKiB:
 * 1 MiB (PutRecords "Limits"). */
#define WEIR_KINESIS_SINK_DEFAULT_RECORD_BYTES (1u << 20)

typedef struct weir_kinesis_sink_config {
  const char *stream;         /* required; copied */
  weir_kinesis_config client; /* where and as whom (strings copied); each subtask opens its
                                 own client from it */
  weir_kinesis_pk_mode pk_mode;
  const char *partition_key;   /* WEIR_KINESIS_PK_FIXED: the key (1..256 characters); copied */
  size_t max_buffered_records; /* records buffered per subtask before process() blocks to flush
                                  (backpressure); 0 = 10000, at least 1 */
  size_t max_buffered_bytes;   /* bytes (data + keys) buffered per subtask; 0 = 8 MiB; raised to
                                  the stream's per-record limit + 1 KiB when smaller */
  size_t max_request_records;  /* entries per PutRecords; 0 = 500, at most 500 */
  size_t max_request_bytes;    /* data + keys per PutRecords; 0 = 5 MiB, at most 10 MiB */
  int64_t linger_ms;           /* a partial buffer is sent after at most this long (checked on
                                  the job's tick); 0 = 100, -1 = only when full or at barriers */
  bool fail_on_error;          /* true: an oversized record or an invalid partition key fails
                                  the job; false: it is dropped, counted and logged once. Use
                                  weir_kinesis_sink_config_init, which sets true. */
} weir_kinesis_sink_config;

/* Fills *cfg with the defaults (all zero but fail_on_error = true). Any thread. */
WEIR_API void weir_kinesis_sink_config_init(weir_kinesis_sink_config *cfg);

/*
 * Adds a sink writing every record's value to Kinesis stream cfg->stream with batched
 * PutRecords. Guarantee: at-least-once. At every checkpoint barrier (and at the end of input)
 * each subtask sends everything it buffered and waits until every entry is acknowledged; if it
 * cannot (a fatal service error), the job fails and the checkpoint is never completed. Only the
 * entries a PutRecords reports as failed are resent; throttling and transient errors are
 * retried without limit (with backoff), so an unreachable stream blocks the job.
 * Per-partition-key order holds: a record is never sent while an earlier record with the same
 * partition key is unacknowledged (see docs/kinesis-sink.md).
 *
 * `cfg` and its strings are copied. `upstream`, `name` and `id` as in weir_job_add_sink. Each
 * subtask opens its own client in open (checking the stream with DescribeStreamSummary) and
 * closes it in close. Only before start; the building thread. Returns 0, WEIR_EINVAL (bad
 * config), WEIR_ENOMEM, or the codes of weir_job_add_sink.
 */
WEIR_API int weir_job_add_kinesis_sink(weir_job *job, int upstream, const char *name,
                                       const weir_kinesis_sink_config *cfg, int *id);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_KINESIS_H */
