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

/* Forward declarations (weir/job.h, weir/record.h). */
typedef struct weir_ctx weir_ctx;
struct weir_record;

/* How a record's partition key is chosen when the serializer gives none. */
typedef enum {
  WEIR_KINESIS_PK_RECORD_KEY = 0, /* the record's key; records without a key get a random one */
  WEIR_KINESIS_PK_FIXED,          /* `partition_key` for every record (one shard, total order) */
  WEIR_KINESIS_PK_RANDOM          /* a random key per record (spread over shards, no order) */
} weir_kinesis_pk_mode;

/*
 * What a serializer makes of one record. The sink fills it with the defaults before each call
 * (data = the record's value, stream = NULL, no partition key, no explicit hash key); the
 * serializer changes what it wants. Every view is borrowed until the serializer returns to the
 * sink (point it at the input record, at static memory, or at weir_ctx_scratch memory): the
 * sink copies the bytes before it calls the serializer again.
 */
typedef struct weir_kinesis_sink_out {
  weir_buf data;              /* the Kinesis record's data (may be empty) */
  const char *stream;         /* NUL-terminated target stream; NULL = the sink's `stream`. At
                                 most WEIR_KINESIS_SINK_MAX_STREAMS distinct streams per
                                 subtask (like KinesisSerializationSchema.getTargetStream) */
  weir_buf partition_key;     /* 1..256 characters of UTF-8; len 0 = chosen by pk_mode */
  weir_buf explicit_hash_key; /* decimal 0..2^128-1; len 0 = none (the key's MD5 decides) */
} weir_kinesis_sink_out;

/*
 * Turns one record into a Kinesis record. Returns 0 (send *out), 1 (skip the record), or a
 * negative WEIR_E* code, which fails the job (set a message with weir_ctx_set_error). Called on
 * the sink's subtask threads, concurrently on different subtasks; `data` is the config's
 * serializer_data, shared by the subtasks.
 */
typedef int (*weir_kinesis_serialize_cb)(weir_ctx *ctx, void *data, const struct weir_record *in,
                                         weir_kinesis_sink_out *out);

/* How the sink keeps near the shards' write limits. */
typedef enum {
  WEIR_KINESIS_RATE_AIMD = 0, /* additive increase / multiplicative decrease of the entries in
                                 flight: halved when a request is throttled, grown by
                                 WEIR_KINESIS_SINK_AIMD_INCREASE per clean request */
  WEIR_KINESIS_RATE_NONE      /* only max_in_flight bounds the rate (throttled entries are still
                                 retried with backoff) */
} weir_kinesis_rate_mode;

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
/* PutRecords calls in flight per subtask: default and bound. */
#define WEIR_KINESIS_SINK_DEFAULT_IN_FLIGHT 4
#define WEIR_KINESIS_SINK_MAX_IN_FLIGHT 64
/* Distinct target streams one subtask may write to. */
#define WEIR_KINESIS_SINK_MAX_STREAMS 64
/* AIMD: entries the in-flight window grows by per request without throttled entries. */
#define WEIR_KINESIS_SINK_AIMD_INCREASE 50

typedef struct weir_kinesis_sink_config {
  const char *stream;         /* required: the default target stream; copied */
  weir_kinesis_config client; /* where and as whom (strings copied); each subtask opens its
                                 own clients from it */
  weir_kinesis_pk_mode pk_mode;
  const char *partition_key; /* WEIR_KINESIS_PK_FIXED: the key (1..256 characters); copied */
  weir_kinesis_serialize_cb serializer; /* NULL = the record's value to `stream`, key by pk_mode */
  void *serializer_data;                /* borrowed until the job is destroyed */
  size_t max_buffered_records;  /* records buffered per subtask before process() blocks until
                                   some are acknowledged (backpressure); 0 = 10000, at least 1 */
  size_t max_buffered_bytes;    /* bytes (data + keys) buffered per subtask; 0 = 8 MiB; raised to
                                   twice the largest per-record limit + 4 KiB when smaller */
  size_t max_request_records;   /* entries per PutRecords; 0 = 500, at most 500 */
  size_t max_request_bytes;     /* data + keys per PutRecords; 0 = 5 MiB, at most 10 MiB */
  size_t max_in_flight;         /* PutRecords calls in flight per subtask (each on its own
                                   connection and thread); 0 = 4, at most 64 */
  int64_t linger_ms;            /* a partial request is sent after at most this long (checked on
                                   the job's tick); 0 = 100, -1 = only when full or at barriers */
  bool fail_on_error;           /* true: an oversized record, an invalid key or a per-record error
                                   the service will not take on retry fails the job; false: the
                                   record is counted, logged once per kind and written to
                                   dead_letter_path. Use weir_kinesis_sink_config_init (true). */
  const char *dead_letter_path; /* fail_on_error = false: records refused are appended here as
                                   JSON lines (docs/kinesis-sink.md); NULL = counted only.
                                   Copied */
  bool aggregation;             /* pack records into KPL aggregates per shard (off by default) */
  size_t aggregation_max_bytes; /* bound on one aggregate (data + key); 0 = the stream's
                                   per-record limit */
  weir_kinesis_rate_mode rate_mode; /* 0 = AIMD */
} weir_kinesis_sink_config;

/* Fills *cfg with the defaults (all zero but fail_on_error = true). Any thread. */
WEIR_API void weir_kinesis_sink_config_init(weir_kinesis_sink_config *cfg);

/*
 * Adds a sink writing every record's value to Kinesis stream cfg->stream with batched
 * PutRecords (or to the stream the serializer names per record). Guarantee: at-least-once. At every
 * checkpoint barrier (and at the end of input) each subtask sends everything it buffered and waits
 * until every entry is acknowledged; if it cannot (a fatal service error), the job fails and the
 * checkpoint is never completed. Only the entries a PutRecords reports as failed are resent;
 * throttling and transient errors are retried without limit (with backoff), so an unreachable
 * stream blocks the job. Per-partition-key order holds: a record is never sent while an earlier
 * record with the same stream and partition key is unacknowledged or awaiting retry (see
 * docs/kinesis-sink.md).
 *
 * `cfg` and its strings are copied. `upstream`, `name` and `id` as in weir_job_add_sink. Each
 * subtask opens its own client in open (checking the stream with DescribeStreamSummary) and
 * closes it in close. Only before start; the building thread. Returns 0, WEIR_EINVAL (bad
 * config), WEIR_ENOMEM, or the codes of weir_job_add_sink.
 */
WEIR_API int weir_job_add_kinesis_sink(weir_job *job, int upstream, const char *name,
                                       const weir_kinesis_sink_config *cfg, int *id);

/* ==== Kinesis source ======================================================================= */

#include "record.h" /* weir_record, weir_buf */

typedef struct weir_ctx weir_ctx;

/* Where a shard is read from when no checkpoint says otherwise (Flink's STREAM_INITIAL_POSITION).
 * Shards that appear after the job first started (children of a split or merge, new shards)
 * are always read from TRIM_HORIZON so that nothing written to them is missed. */
typedef enum {
  WEIR_KINESIS_START_LATEST = 0,   /* records written after the source got its iterator */
  WEIR_KINESIS_START_TRIM_HORIZON, /* the oldest record still retained */
  WEIR_KINESIS_START_AT_TIMESTAMP  /* the first record arriving at or after initial_timestamp */
} weir_kinesis_start_position;

/* Where credentials come from (Flink's AWS_CREDENTIALS_PROVIDER). */
typedef enum {
  WEIR_KINESIS_CREDS_AUTO = 0, /* static keys if set, else environment, else shared files */
  WEIR_KINESIS_CREDS_BASIC,    /* client.access_key_id / secret_access_key; required */
  WEIR_KINESIS_CREDS_ENV_VAR,  /* AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
                                  only, read when each subtask opens */
  WEIR_KINESIS_CREDS_PROFILE   /* the shared-file profile client.profile (NULL = AWS_PROFILE or
                                  "default") only: static keys in the config and environment
                                  keys are not used */
} weir_kinesis_credentials_provider;

/* Built-in deserializers: how a user record becomes the emitted record's value. */
typedef enum {
  WEIR_KINESIS_DESER_RAW = 0, /* the data bytes as they are */
  WEIR_KINESIS_DESER_UTF8,    /* the data bytes, rejected unless valid UTF-8 */
  WEIR_KINESIS_DESER_JSON     /* the data bytes, rejected unless one valid JSON value */
} weir_kinesis_deserializer;

/* A user record as the deserializer sees it (one Kinesis record, or one record of a KPL
 * aggregate). Every pointer is borrowed for the call only. */
typedef struct weir_kinesis_source_record {
  weir_buf data;                /* the user record's data */
  weir_buf partition_key;       /* its partition key (UTF-8) */
  const char *sequence_number;  /* the Kinesis record's sequence number (decimal, NUL-ended) */
  uint64_t sub_sequence_number; /* index in its aggregate; 0 for a plain record */
  bool aggregated;              /* it came out of a KPL aggregate */
  int64_t arrival_ms;           /* ApproximateArrivalTimestamp (ms since the epoch) or
                                   WEIR_NO_TIMESTAMP */
  const char *stream;           /* stream name */
  const char *shard_id;         /* shard id */
} weir_kinesis_source_record;

/*
 * A user deserializer. `*out` arrives filled with the default mapping (value = data, key =
 * partition key, timestamp = arrival time, meta = "<stream>/<shard id>", offset = sub-sequence
 * number); change what you need. Memory `out` points at must be the input's, static, or from
 * weir_ctx_scratch(ctx): the runtime copies the record when the callback returns. Return 0 to
 * emit `*out`, 1 to drop the record silently, or a negative WEIR_E* code to reject it (counted
 * in weir_kinesis_source_rejected_total; skipped or failing the job per
 * fail_on_deserialize_error). Called on the source's subtask threads, concurrently when the
 * parallelism is above 1; `data` is the deserialize_data pointer given in the configuration.
 */
typedef int (*weir_kinesis_deserialize_cb)(void *data, weir_ctx *ctx,
                                           const weir_kinesis_source_record *in, weir_record *out);

/* Retry policy of one call type: attempts = 1 + retries, full-jitter backoff between them
 * uniform in [0, min(max_ms, base_ms * exp^n)]. All zero = the default of that call type. */
typedef struct weir_kinesis_backoff {
  int retries;
  int64_t base_ms;
  int64_t max_ms;
  double exp;
} weir_kinesis_backoff;

/* Most streams one source reads. */
#define WEIR_KINESIS_SOURCE_MAX_STREAMS 16
/* Most shards (all streams, open and closed) one source tracks. */
#define WEIR_KINESIS_SOURCE_MAX_SHARDS 4096
/* Per-shard read budget: 5 GetRecords calls per second (Kinesis Data Streams quotas). */
#define WEIR_KINESIS_SOURCE_CALLS_PER_SECOND 5
/* Per-shard read budget: 2 MiB of data per second (Kinesis Data Streams quotas). After a
 * GetRecords that returned B bytes, the shard is not read again for B / 2 MiB seconds, so a
 * shard with a backlog is drained at the quota instead of being throttled by the service. */
#define WEIR_KINESIS_SOURCE_BYTES_PER_SECOND (2u << 20)

typedef struct weir_kinesis_source_config {
  const char *const *streams; /* 1..WEIR_KINESIS_SOURCE_MAX_STREAMS names, same region; the
                                 array and the names are copied */
  size_t n_streams;
  weir_kinesis_config client; /* where and as whom (strings copied) */
  weir_kinesis_credentials_provider credentials;
  weir_kinesis_start_position initial_position;
  const char *initial_timestamp;  /* AT_TIMESTAMP: ISO-8601 ("2026-11-26T01:00:00Z", optional
                                     fraction and +hh:mm offset) or epoch seconds ("1764118800.5");
                                     copied */
  int64_t discovery_interval_ms;  /* ListShards every this long (default 10000; -1 = only once
                                     at start) */
  uint32_t getrecords_max;        /* GetRecords Limit (default 10000; 1..10000) */
  int64_t getrecords_interval_ms; /* least time between GetRecords calls of one shard that
                                     returned less than a full batch (default 200). The budget of
                                     5 calls per second and shard is kept whatever this is. */
  weir_kinesis_backoff getrecords_backoff;  /* throttling and transient GetRecords errors
                                               (default 3 retries, 300 ms, 1000 ms, 1.5;
                                               throttling is retried without limit) */
  weir_kinesis_backoff getiterator_backoff; /* GetShardIterator (default 3, 300, 1000, 1.5) */
  weir_kinesis_backoff listshards_backoff;  /* ListShards (default 10, 1000, 5000, 1.5) */
  int64_t idle_timeout_ms; /* a shard with no record for this long stops holding the source's
                              watermark back (default 0 = never idle) */
  weir_kinesis_deserializer deserializer;     /* when deserialize_cb is NULL */
  weir_kinesis_deserialize_cb deserialize_cb; /* NULL = the built-in `deserializer` */
  void *deserialize_data;                     /* borrowed: valid until weir_job_destroy */
  bool fail_on_deserialize_error; /* a rejected record fails the job (default: skipped and
                                     counted) */
  size_t max_records_per_poll;    /* user records emitted per poll call (default 512) */
  bool stop_at_end; /* bounded reading: a subtask ends (WEIR_EOF) once every shard it owns is
                       read to its end or returned an empty GetRecords with MillisBehindLatest 0;
                       for tests, backfills and benchmarks */
} weir_kinesis_source_config;

/* Fills *cfg with the defaults (all zero). Any thread. */
WEIR_API void weir_kinesis_source_config_init(weir_kinesis_source_config *cfg);

/*
 * Adds a source reading every shard of cfg->streams, with per-shard positions in the job's
 * checkpoints (exactly-once state downstream), parent-before-child order through resharding,
 * KPL de-aggregation, per-shard watermarks and metrics (docs/kinesis-source.md).
 *
 * The source may run with any parallelism: shards are assigned to subtasks by a hash of stream
 * name and shard id; one subtask lists shards for the whole node. Its state is redistributable:
 * a job restored with another parallelism keeps every position.
 *
 * `cfg` and its strings are copied (deserialize_data is borrowed). `name` and `id` as in
 * weir_job_add_source. Only before start; the building thread. Returns 0, WEIR_EINVAL (bad
 * config, e.g. an unparseable initial_timestamp), WEIR_ENOMEM, or the codes of
 * weir_job_add_source.
 */
WEIR_API int weir_job_add_kinesis_source(weir_job *job, const char *name,
                                         const weir_kinesis_source_config *cfg, int *id);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_KINESIS_H */
