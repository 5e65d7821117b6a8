/*
 * client_int.h: the Kinesis Data Streams JSON API (version 2013-12-02) over signed HTTP/1.1.
 *
 * Every call is one POST of an application/x-amz-json-1.1 body with X-Amz-Target
 * Kinesis_20131202.<Operation>, retried on throttling and transient errors with exponential
 * backoff and full jitter under a per-operation policy (errors.c), and failing with the
 * service's own error code and message otherwise (weir__kinesis_last_error).
 *
 * Values the service treats as numbers beyond 64 bits (sequence numbers, hash keys) are kept as
 * the exact decimal strings the service sent; they are never converted to doubles.
 *
 * Threads: a client is used by one thread at a time (it owns one connection, one signer and one
 * response buffer). Make one client per thread; clients are independent.
 */
#ifndef WEIR_KINESIS_CLIENT_INT_H
#define WEIR_KINESIS_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connectors/aws/credentials_int.h"
#include "connectors/aws/http_int.h"
#include "connectors/kinesis/errors_int.h"
#include "connectors/kinesis/json_int.h"
#include "weir/kinesis.h"
#include "weir/record.h"

/* ---- service limits (Kinesis API reference, service-2.json; see kinesis-api.md) ---------- */

/* PutRecords: 1..500 entries per call (API limit). */
#define WEIR_KINESIS_PUT_MAX_RECORDS 500
/* GetRecords Limit: 1..10000 records per call (API limit). */
#define WEIR_KINESIS_GET_MAX_RECORDS 10000
/* GetRecords returns at most 10 MiB of data per call (API limit). */
#define WEIR_KINESIS_GET_MAX_DATA (10u << 20)
/* Largest record data: the model's Data max (10 MiB, "large records"). */
#define WEIR_KINESIS_RECORD_MAX (10u << 20)
/* Sequence numbers: 0|([1-9]\d{0,128}) (model), so up to 129 digits. */
#define WEIR_KINESIS_SEQ_MAX 129
/* Hash keys: 0..2^128-1, up to 39 decimal digits (model). */
#define WEIR_KINESIS_HASH_KEY_MAX 39
/* Shard ids: 1..128 characters (model). */
#define WEIR_KINESIS_SHARD_ID_MAX 128
/* Stream names: 1..128 characters, [a-zA-Z0-9_.-]+ (model). */
#define WEIR_KINESIS_STREAM_NAME_MAX 128
/* Shard iterators: 1..512 characters (model). */
#define WEIR_KINESIS_ITERATOR_MAX 512
/* Partition keys: 1..256 Unicode characters (model); up to 4 UTF-8 bytes each. */
#define WEIR_KINESIS_PARTITION_KEY_MAX 256
#define WEIR_KINESIS_PARTITION_KEY_BYTES_MAX (4 * WEIR_KINESIS_PARTITION_KEY_MAX)
/* ListShards NextToken: 1..1048576 characters (model). */
#define WEIR_KINESIS_NEXT_TOKEN_MAX 1048576
/* ListShards MaxResults: 1..10000 (model). */
#define WEIR_KINESIS_LIST_SHARDS_MAX_RESULTS 10000
/* Open shards per stream: OpenShardCount 0..1000000 (model). */
#define WEIR_KINESIS_SHARDS_MAX 1000000
/* PutRecords request: 10 MiB per request (current API reference; 5 MiB on older streams). */
#define WEIR_KINESIS_PUT_MAX_REQUEST (10u << 20)
/*
 * Bound on one GetRecords response body: 10 MiB of data is 14 MiB of base64; 10000 records add
 * at most ~256 B partition key + ~130 B sequence number + ~150 B of JSON each (~5.4 MiB).
 */
#define WEIR_KINESIS_GET_MAX_RESPONSE (20u << 20)
/* Bound on other responses (ListShards pages of up to 10000 shards of ~500 B each). */
#define WEIR_KINESIS_MAX_RESPONSE (8u << 20)
/* A GetRecords response normally holds at most 2 child shards (merge: 1, split: 2). */
#define WEIR_KINESIS_CHILD_SHARDS_MAX 8

/* ---- operations ----------------------------------------------------------------------- */

enum weir_kinesis_op {
  WEIR_KINESIS_OP_LIST_SHARDS = 0,
  WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY,
  WEIR_KINESIS_OP_GET_SHARD_ITERATOR,
  WEIR_KINESIS_OP_GET_RECORDS,
  WEIR_KINESIS_OP_PUT_RECORDS,
  WEIR_KINESIS_OP_CREATE_STREAM,
  WEIR_KINESIS_OP_DELETE_STREAM,
  WEIR_KINESIS_OP_SPLIT_SHARD,
  WEIR_KINESIS_OP_MERGE_SHARDS,
  WEIR_KINESIS_OP_UPDATE_SHARD_COUNT,
  WEIR_KINESIS_OP_COUNT
};

/* The operation name as in X-Amz-Target ("ListShards"). */
const char *weir__kinesis_op_name(enum weir_kinesis_op op);

/* Sets the retry policy of one operation (tests use short ones). Before the calls it affects. */
void weir__kinesis_set_retry(weir_kinesis_client *c, enum weir_kinesis_op op,
                             const struct weir_kinesis_retry *policy);

/* The error of the client's last failed call (code, message, class, HTTP status). Borrowed:
 * valid until the next call on the client. */
const struct weir_kinesis_error *weir__kinesis_last_error(const weir_kinesis_client *c);

/* For tests: the underlying HTTP handle's "host:port:addr" pin (TLS to a name), before use. */
int weir__kinesis_client_create_ex(weir_kinesis_client **out, const weir_kinesis_config *cfg,
                                   const char *resolve);

/*
 * Sends one call: `body` (borrowed, len bytes of JSON) to operation `op`, with retries. On 0 the
 * response body is in *resp_body (borrowed from the client until its next call, NUL-terminated;
 * *resp_len bytes). Errors: the return codes of weir__kinesis_error_rc (see errors_int.h) with
 * the details in weir__kinesis_last_error.
 */
int weir__kinesis_call(weir_kinesis_client *c, enum weir_kinesis_op op, const char *stream,
                       const uint8_t *body, size_t len, const uint8_t **resp_body,
                       size_t *resp_len);

/*
 * One call without blocking on its answer, for an event loop driving several clients (the
 * sink). One attempt: no retries, whatever the op's policy; the caller schedules them. `body`
 * and `stream` stay borrowed until the call is over.
 *
 * weir__kinesis_call_begin returns 0 when the request is on its way, else the call's error
 * (as weir__kinesis_call's after its last attempt). Then, whenever weir__kinesis_call_socket()
 * is ready for weir__kinesis_call_events() or weir__kinesis_call_deadline() (monotonic ms)
 * passed, call weir__kinesis_call_step: when it sets *done the call is over and it returns
 * what weir__kinesis_call would (with *resp_body and *resp_len on success); before that it
 * returns 0. weir__kinesis_call_abort ends a call on its way.
 */
int weir__kinesis_call_begin(weir_kinesis_client *c, enum weir_kinesis_op op, const char *stream,
                             const uint8_t *body, size_t len);
int weir__kinesis_call_step(weir_kinesis_client *c, bool *done, const uint8_t **resp_body,
                            size_t *resp_len);
int weir__kinesis_call_socket(const weir_kinesis_client *c);
short weir__kinesis_call_events(const weir_kinesis_client *c);
int64_t weir__kinesis_call_deadline(const weir_kinesis_client *c);
void weir__kinesis_call_abort(weir_kinesis_client *c);

/* ---- shapes --------------------------------------------------------------------------- */

struct weir_kinesis_hash_range {
  char start[WEIR_KINESIS_HASH_KEY_MAX + 1]; /* inclusive, decimal */
  char end[WEIR_KINESIS_HASH_KEY_MAX + 1];   /* inclusive, decimal */
};

struct weir_kinesis_shard {
  char shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1];
  char parent_shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1];          /* "" when none */
  char adjacent_parent_shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1]; /* "" when none */
  struct weir_kinesis_hash_range hash_range;
  char starting_seq[WEIR_KINESIS_SEQ_MAX + 1];
  char ending_seq[WEIR_KINESIS_SEQ_MAX + 1]; /* "" while the shard is open */
};

/* A bounded list of shards, owned by the caller: cap entries at `v`. */
struct weir_kinesis_shard_list {
  struct weir_kinesis_shard *v;
  size_t len;
  size_t cap;
};

enum weir_kinesis_shard_filter_type {
  WEIR_KINESIS_FILTER_NONE = 0,
  WEIR_KINESIS_FILTER_AFTER_SHARD_ID,
  WEIR_KINESIS_FILTER_AT_TRIM_HORIZON,
  WEIR_KINESIS_FILTER_FROM_TRIM_HORIZON,
  WEIR_KINESIS_FILTER_AT_LATEST,
  WEIR_KINESIS_FILTER_AT_TIMESTAMP,
  WEIR_KINESIS_FILTER_FROM_TIMESTAMP
};

struct weir_kinesis_list_shards_req {
  const char *stream;                   /* borrowed; ignored when next_token is set */
  const char *next_token;               /* borrowed; NULL = first page */
  const char *exclusive_start_shard_id; /* borrowed; NULL = none */
  uint32_t max_results;                 /* 0 = server default */
  enum weir_kinesis_shard_filter_type filter;
  const char *filter_shard_id; /* AFTER_SHARD_ID */
  int64_t filter_timestamp_ms; /* AT_TIMESTAMP / FROM_TIMESTAMP */
};

/*
 * One ListShards page: appends the page's shards to `out` (WEIR_ETOOBIG when they do not fit)
 * and copies the NextToken into next_token (cap bytes; "" on the last page; WEIR_ETOOBIG when
 * it does not fit; next_token may be NULL to ignore it).
 */
int weir__kinesis_list_shards(weir_kinesis_client *c,
                              const struct weir_kinesis_list_shards_req *req,
                              struct weir_kinesis_shard_list *out, char *next_token,
                              size_t next_token_cap);

/* Parses a ListShards response body (exposed for tests and fuzzing): appends its shards to
 * `out` and copies NextToken as weir__kinesis_list_shards does. 0, WEIR_EPARSE or WEIR_ETOOBIG;
 * on failure `out` may hold the shards parsed before the bad one. */
int weir__kinesis_parse_list_shards(const uint8_t *body, size_t len,
                                    struct weir_kinesis_shard_list *out, char *next_token,
                                    size_t next_token_cap);

/* Every shard of a stream (all pages; `filter` as in the request, NULL = none). */
int weir__kinesis_list_all_shards(weir_kinesis_client *c, const char *stream,
                                  const struct weir_kinesis_list_shards_req *filter,
                                  struct weir_kinesis_shard_list *out);

enum weir_kinesis_stream_status {
  WEIR_KINESIS_STATUS_UNKNOWN = 0,
  WEIR_KINESIS_STATUS_CREATING,
  WEIR_KINESIS_STATUS_DELETING,
  WEIR_KINESIS_STATUS_ACTIVE,
  WEIR_KINESIS_STATUS_UPDATING
};

struct weir_kinesis_stream_summary {
  char stream_name[WEIR_KINESIS_STREAM_NAME_MAX + 1];
  char stream_arn[2048 + 1]; /* StreamARN: 1..2048 (model) */
  enum weir_kinesis_stream_status status;
  bool on_demand; /* StreamModeDetails.StreamMode == ON_DEMAND */
  int64_t retention_hours;
  int64_t creation_ms; /* StreamCreationTimestamp */
  int64_t open_shard_count;
  int64_t consumer_count;      /* -1 when absent */
  int64_t max_record_size_kib; /* MaxRecordSizeInKiB; 0 when the server does not send it */
  bool encrypted;              /* EncryptionType == KMS */
};

int weir__kinesis_describe_stream_summary(weir_kinesis_client *c, const char *stream,
                                          struct weir_kinesis_stream_summary *out);

enum weir_kinesis_iterator_type {
  WEIR_KINESIS_ITER_TRIM_HORIZON = 0,
  WEIR_KINESIS_ITER_LATEST,
  WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER,
  WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER,
  WEIR_KINESIS_ITER_AT_TIMESTAMP
};

struct weir_kinesis_iterator_req {
  const char *stream;   /* borrowed */
  const char *shard_id; /* borrowed */
  enum weir_kinesis_iterator_type type;
  const char *sequence_number; /* borrowed; the *_SEQUENCE_NUMBER types */
  int64_t timestamp_ms;        /* AT_TIMESTAMP */
};

/* Writes the iterator into `out` (WEIR_KINESIS_ITERATOR_MAX + 1 bytes). */
int weir__kinesis_get_shard_iterator(weir_kinesis_client *c,
                                     const struct weir_kinesis_iterator_req *req,
                                     char out[WEIR_KINESIS_ITERATOR_MAX + 1]);

/* A record from GetRecords: views into the owning weir_kinesis_records' arena. */
struct weir_kinesis_record {
  weir_buf data;               /* decoded bytes */
  weir_buf partition_key;      /* UTF-8 bytes */
  const char *sequence_number; /* NUL-terminated decimal string */
  int64_t arrival_ms;          /* ApproximateArrivalTimestamp; WEIR_NO_TIMESTAMP when absent */
  bool kms_encrypted;
};

struct weir_kinesis_child_shard {
  char shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1];
  char parents[2][WEIR_KINESIS_SHARD_ID_MAX + 1]; /* "" when unused */
  struct weir_kinesis_hash_range hash_range;
};

/*
 * The result of GetRecords, reused from call to call: its arena and record array grow to the
 * largest response seen (bounded by WEIR_KINESIS_GET_MAX_RESPONSE) and are then recycled, so
 * steady-state reading allocates nothing. Records are views into `arena`: valid until the next
 * GetRecords into the same object or weir__kinesis_records_free. Owned by the caller.
 */
struct weir_kinesis_records {
  struct weir_kinesis_record *recs;
  size_t n;
  size_t recs_cap;
  uint8_t *arena;
  size_t arena_cap;
  bool has_next; /* false once a closed shard has been read to its end */
  char next_iterator[WEIR_KINESIS_ITERATOR_MAX + 1];
  int64_t millis_behind_latest; /* -1 when absent */
  struct weir_kinesis_child_shard children[WEIR_KINESIS_CHILD_SHARDS_MAX];
  size_t n_children;
};

void weir__kinesis_records_init(struct weir_kinesis_records *r);
void weir__kinesis_records_free(struct weir_kinesis_records *r);

/* GetRecords with `iterator` (borrowed) and `limit` (0 = server default, else 1..10000). */
int weir__kinesis_get_records(weir_kinesis_client *c, const char *iterator, uint32_t limit,
                              struct weir_kinesis_records *out);

/* Parses a GetRecords response body (exposed for tests and benchmarks). */
int weir__kinesis_parse_get_records(const uint8_t *body, size_t len,
                                    struct weir_kinesis_records *out);

struct weir_kinesis_put_entry {
  weir_buf data;                 /* borrowed for the call */
  weir_buf partition_key;        /* borrowed; 1..256 characters of UTF-8 */
  const char *explicit_hash_key; /* borrowed decimal string or NULL */
};

/* The outcome of one entry. Only the fields for its outcome are set: the others hold anything. */
struct weir_kinesis_put_result {
  bool ok;
  char sequence_number[WEIR_KINESIS_SEQ_MAX + 1]; /* when ok */
  char shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1];   /* when ok */
  char error_code[64];                            /* when !ok, e.g. "InternalFailure" */
  char error_message[256];                        /* when !ok */
};

/*
 * PutRecords of n (1..500) entries. Returns 0 when the call succeeded, even if some entries
 * failed: results[i] (n entries, caller-owned) says which, *failed counts them. Resend the
 * failed entries (both per-entry error codes are retryable).
 */
int weir__kinesis_put_records(weir_kinesis_client *c, const char *stream,
                              const struct weir_kinesis_put_entry *entries, size_t n,
                              struct weir_kinesis_put_result *results, size_t *failed);
/* PutRecords as one call on its way (see weir__kinesis_call_begin): writes the body from
 * `entries` (borrowed for this call only) and sends it. Once weir__kinesis_call_step is done
 * with 0, weir__kinesis_put_records_answer parses its body into *out (n entries, the n given
 * here): 0, or WEIR_EPARSE with the client's last error set. The body stays valid until the
 * client's next call. */
struct weir_kinesis_put_outcomes;
int weir__kinesis_put_records_begin(weir_kinesis_client *c, const char *stream,
                                    const struct weir_kinesis_put_entry *entries, size_t n);
int weir__kinesis_put_records_answer(weir_kinesis_client *c, const uint8_t *resp, size_t len,
                                     struct weir_kinesis_put_outcomes *out, size_t n);

/* Parses a PutRecords response for n entries into results (exposed for tests). 0 or
 * WEIR_EPARSE (also when the response does not hold exactly n results). */
int weir__kinesis_parse_put_records(const uint8_t *body, size_t len,
                                    struct weir_kinesis_put_result *results, size_t n,
                                    size_t *failed);
/*
 * The outcomes of a PutRecords answer, dense, for callers that act on every entry (the sink):
 * writing a 520-byte result per entry costs a cache miss each. ok[i] per entry; the results of
 * the failed entries (error code and message) in entry order in fail[0..failed); when
 * shard_ids is set (caller-owned, n entries), the shard of each acknowledged entry.
 */
struct weir_kinesis_put_outcomes {
  uint8_t ok[WEIR_KINESIS_PUT_MAX_RECORDS];
  size_t failed;
  struct weir_kinesis_put_result fail[WEIR_KINESIS_PUT_MAX_RECORDS];
  char (*shard_ids)[WEIR_KINESIS_SHARD_ID_MAX + 1];
};
/* Parses a PutRecords response for n entries into *out (as weir__kinesis_parse_put_records). */
int weir__kinesis_parse_put_outcomes(const uint8_t *body, size_t len,
                                     struct weir_kinesis_put_outcomes *out, size_t n);
/* The same without the fast path for common result entries: what it must agree with (for
 * tests and the fuzzer). */
int weir__kinesis_parse_put_records_general(const uint8_t *body, size_t len,
                                            struct weir_kinesis_put_result *results, size_t n,
                                            size_t *failed);

/* Control plane, for tools and tests. */
int weir__kinesis_create_stream(weir_kinesis_client *c, const char *stream, uint32_t shards);
int weir__kinesis_delete_stream(weir_kinesis_client *c, const char *stream);
int weir__kinesis_split_shard(weir_kinesis_client *c, const char *stream, const char *shard_id,
                              const char *new_starting_hash_key);
int weir__kinesis_merge_shards(weir_kinesis_client *c, const char *stream, const char *shard_id,
                               const char *adjacent_shard_id);
/* UpdateShardCount with ScalingType UNIFORM_SCALING: the stream gets `target` open shards
 * (1..WEIR_KINESIS_SHARDS_MAX) of equal hash-key ranges, made by splits and merges; the stream
 * is UPDATING meanwhile (weir__kinesis_wait_active). Not on kinesalite (kinesis-local, AWS). */
int weir__kinesis_update_shard_count(weir_kinesis_client *c, const char *stream, uint32_t target);

/* Polls DescribeStreamSummary until the stream is ACTIVE, at most timeout_ms. WEIR_ETIMEDOUT. */
int weir__kinesis_wait_active(weir_kinesis_client *c, const char *stream, int64_t timeout_ms);

/* ---- copying configurations ------------------------------------------------------------ */

/*
 * Connectors keep their configuration, strings included, in one allocation (node data freed
 * and wiped as one block). weir__kinesis_str_size is the room a string takes (0 for NULL);
 * weir__kinesis_str_put copies it to *pos and advances *pos (NULL stays NULL). The two
 * config calls do the same for every string of a weir_kinesis_config: size, then put into
 * *dst (which already holds a copy of *src's other fields).
 */
size_t weir__kinesis_str_size(const char *s);
const char *weir__kinesis_str_put(char **pos, const char *src);
size_t weir__kinesis_config_strings_size(const weir_kinesis_config *c);
void weir__kinesis_config_put_strings(weir_kinesis_config *dst, const weir_kinesis_config *src,
                                      char **pos);

/* ---- the client object (client.c; the operations in ops.c fill its body buffer) ----------- */

struct weir_http;
struct weir_sigv4_signer;

struct weir_kinesis_client {
  struct weir_aws_resolved aws;        /* owned: credentials, region, endpoint */
  bool resolved;                       /* aws holds something to release */
  struct weir_sigv4_signer *signer;    /* owned */
  struct weir_http *http;              /* owned: one connection, reused */
  char url[WEIR_AWS_ENDPOINT_MAX + 2]; /* endpoint + "/" */
  struct weir_kinesis_retry retry[WEIR_KINESIS_OP_COUNT];
  uint64_t rng;                  /* backoff jitter */
  struct weir_kjson body;        /* request body, reused; bounded by the PutRecords limit */
  struct weir_kinesis_error err; /* the last failed call */
  char token_hdr[WEIR_AWS_SESSION_TOKEN_MAX + 1]; /* X-Amz-Security-Token value, per request */
  bool quiet; /* final errors logged at debug level: the caller retries and logs (the sink) */
  /* The call on its way (weir__kinesis_call_begin until it is over). */
  enum weir_kinesis_op a_op;
  const char *a_stream; /* borrowed */
  char a_target[64];
  struct weir_http_header a_hdrs[2];
  struct weir_http_request a_req;
  struct weir_http_response a_resp;
};

#endif /* WEIR_KINESIS_CLIENT_INT_H */
