/*
 * sink_int.h: the Kinesis sink's internal interface, shared by its modules:
 *
 *   sink.c       the operator: configuration, open/close, serializing records into the buffer,
 *                linger, barriers, metrics;
 *   sink_batch.c the buffer (a ring of entries over a ring arena), the key set that enforces
 *                per-key order, building requests, and acting on their results;
 *   sink_send.c  the requests in flight: one client and one request slot each, driven by the
 *                subtask thread as one event loop;
 *   sink_agg.c   KPL aggregation: shard maps from ListShards, aggregates per shard;
 *   sink_rate.c  AIMD rate control on the entries in flight;
 *   sink_dlq.c   per-record errors that are not retried: logging once per kind, dead letters.
 *
 * Threads: `struct ksink` is read-only after weir_job_add_kinesis_sink. A `struct ksub` and
 * its slots belong to its subtask thread; nothing here is locked.
 */
#ifndef WEIR_KINESIS_SINK_INT_H
#define WEIR_KINESIS_SINK_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "connectors/kinesis/client_int.h"
#include "connectors/kinesis/kpl_int.h"
#include "weir/common.h"
#include "weir/job.h"
#include "weir/kinesis.h"
#include "weir/metrics.h"

/*
 * Per-entry fault injection: before each PutRecords the sink asks `fn` about every entry of the
 * request; an entry for which it returns true is not sent and is treated as if the service had
 * answered with `code` (set *code; NULL or not set = ProvisionedThroughputExceededException)
 * for it, so the sink's retry and ordering logic runs against a real server. `value` and
 * `partition_key` are borrowed for the call. Called on the sink's sender threads, concurrently.
 * Process-wide: set it (or NULL) before weir_job_start, not while a job runs.
 */
typedef bool (*weir__ksink_fault_fn)(void *data, weir_buf partition_key, weir_buf value);
void weir__kinesis_sink_set_fault(weir__ksink_fault_fn fn, void *data);
/* As above, with the error code to report (a static string) chosen per entry. */
typedef bool (*weir__ksink_fault_code_fn)(void *data, weir_buf partition_key, weir_buf value,
                                          const char **code);
void weir__kinesis_sink_set_fault_code(weir__ksink_fault_code_fn fn, void *data);

/* Bound on distinct per-record error codes counted with their own metric label. */
#define KSINK_MAX_ERROR_CODES 8
/* Bound on the open shards of a stream the aggregation map holds. */
#define KSINK_MAX_SHARDS 10000
/* Slots of a request's key-hash set (kslot.kset): a power of two at least twice the entries
 * of a request, so probing ends. */
#define KSINK_KSET_SLOTS 1024
_Static_assert(KSINK_KSET_SLOTS >= 2 * WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS,
               "a request's key set must stay at most half full");

/* The node's data: the copied configuration, shared read-only by the subtasks. */
struct ksink {
  weir_kinesis_sink_config cfg; /* strings point into this allocation */
  size_t alloc_size;            /* bytes of this allocation, zeroed before it is freed */
};

enum kent_state { KENT_FREE = 0, KENT_PENDING, KENT_IN_FLIGHT, KENT_DONE };

/* One buffered record. Its bytes are contiguous in the arena: data, partition key, explicit
 * hash key. */
struct kentry {
  size_t off;                    /* in the arena */
  uint32_t data_len;             /* <= the stream's record limit (10 MiB at most) */
  uint16_t key_len;              /* 1..WEIR_KINESIS_PARTITION_KEY_BYTES_MAX */
  uint8_t ehk_len;               /* 0..39 */
  uint8_t stream;                /* index in ksub.streams */
  uint8_t state;                 /* enum kent_state */
  uint32_t hash;                 /* of (stream, partition key), for the key set */
  uint32_t attempts;             /* sends so far */
  int64_t retry_at_ms;           /* not sent again before this monotonic time */
  struct weir_kpl_u128 hash_key; /* aggregation only: the effective hash key */
};

/* A target stream as one subtask knows it. */
struct kstream {
  char name[WEIR_KINESIS_STREAM_NAME_MAX + 1];
  size_t record_limit; /* per-record bytes (data + key) the stream accepts */
  int bad_rc;          /* DescribeStreamSummary failed: 0 = fine */
  char bad_msg[832];   /* why, for dead letters */
  /* Aggregation: the open shards, sorted by starting hash key. */
  struct weir_kpl_hash_range *ranges;               /* owned, n_shards */
  char (*shard_ids)[WEIR_KINESIS_SHARD_ID_MAX + 1]; /* owned, n_shards */
  size_t n_shards;
  bool map_stale; /* a record landed on another shard than the map said: refresh */
};

enum kslot_state { SLOT_IDLE = 0, SLOT_QUEUED, SLOT_DONE };

/* One request slot: IDLE, QUEUED (its PutRecords on its way) or DONE (answered or failed, not
 * yet handled). */
struct kslot {
  weir_kinesis_client *client; /* owned */
  int state;                   /* enum kslot_state */
  /* The request (written before QUEUED). */
  int stream;
  size_t n;
  struct weir_kinesis_put_entry req[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS];
  uint32_t first[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS]; /* members of entry i: */
  uint32_t count[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS]; /* members[first .. first+count) */
  uint32_t *members; /* owned, cap_ents: ring positions of the buffered entries sent */
  size_t n_members;
  size_t bytes;     /* data + keys of the request */
  uint8_t *agg_buf; /* owned (aggregation only): aggregates' data, max_request_bytes */
  size_t agg_len;
  char ehk[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS][WEIR_KPL_HASH_KEY_DEC_MAX + 1];
  /* Plain requests in flight: the key hashes of the request (slot hash % KSINK_KSET_SLOTS,
   * tag (hash >> 16) | 1, 0 = empty; 2 KiB, few cache lines to fetch), so a later build checks
   * a pending entry against the requests in flight without walking their entries. keys_live:
   * the set is filled and the request not yet handled. Dispatcher only. */
  bool keys_live;
  uint16_t kset[KSINK_KSET_SLOTS];
  /* The outcome (once DONE): rc, err when rc != 0, and the answer's body (in the client's
   * buffer, valid until its next call), parsed by weir__ksink_slot_results into out. */
  int rc;
  struct weir_kinesis_error err;
  const uint8_t *answer;
  size_t answer_len;
  size_t sent; /* entries sent (fewer than n when the fault hook failed some) */
  const struct weir_kinesis_put_outcomes *out; /* borrowed: ksub.out, n entries */
  /* Fault injection only (allocated when the hook is set): the entries sent, and per entry of
   * the request the code the hook failed it with (NULL: sent). */
  struct weir_kinesis_put_entry *fi_req;
  const char **fi_code;
};

/* The key set of one request build: open addressing over (stream, partition key), cleared in
 * O(1) by bumping the generation. */
struct kkey {
  uint32_t gen;
  uint32_t hash; /* the entry's kentry.hash: a probe compares it before touching the entry */
  uint32_t ent;  /* ring position of the first pending entry seen with this key */
  int32_t agg;   /* >= 0: taken into aggregate `agg` of the build, still open; -1 = blocked */
};

struct ksink_metrics {
  weir_metric *records, *bytes, *calls, *entries_sent, *retries, *throttled, *dead_letters;
  weir_metric *buffered_records, *buffered_bytes, *in_flight, *window;
  weir_metric *flushes, *flush_ms, *flush_last_ms, *aggregates, *shard_refreshes;
  weir_metric *failed_other;
  char codes[KSINK_MAX_ERROR_CODES][64];
  weir_metric *failed[KSINK_MAX_ERROR_CODES];
};

/* One subtask. */
struct ksub {
  const struct ksink *sink;
  const weir_kinesis_sink_config *cfg; /* &sink->cfg */
  weir_ctx *ctx;                       /* the current callback's; set on entry to each one */
  weir_kinesis_client *client;         /* owned: control calls (describe, list shards) */
  struct kstream streams[WEIR_KINESIS_SINK_MAX_STREAMS];
  size_t n_streams;
  size_t max_record_limit; /* largest record_limit of the streams known */
  /* The buffer: a ring of entries (oldest at head) over a ring arena. */
  struct kentry *ents; /* owned, cap_ents */
  size_t cap_ents, head, n_ents;
  uint8_t *arena; /* owned, arena_cap */
  size_t arena_cap, arena_tail;
  size_t pending;    /* entries not DONE */
  size_t unsent;     /* entries PENDING (not in flight) */
  size_t buf_bytes;  /* bytes of live entries */
  int64_t oldest_ms; /* monotonic arrival of the oldest PENDING record at its last flush; 0 */
  /* The key set. */
  struct kkey *keys; /* owned, key_slots (a power of two >= 2 * cap_ents) */
  size_t key_slots;
  uint32_t key_gen;
  /* Plain mode: the first walk_skip entries from head hold no PENDING entry (entries in
   * flight or done), so a build starts its walk after them. Reset by a retry, lowered by
   * reclaim. */
  size_t walk_skip;
  bool idle;             /* the last plain build walked everything and found nothing to send */
  int64_t next_retry_ms; /* with idle: the earliest retry time of a blocked head entry */
  /* Requests in flight. */
  struct kslot *slots; /* owned, n_slots */
  /* The outcomes of the slot being handled (owned), and with the fault hook set those of the
   * entries it sent (owned). With aggregation their shard_ids are owned too. */
  struct weir_kinesis_put_outcomes *out;
  struct weir_kinesis_put_outcomes *fi_out;
  size_t n_slots, busy;
  size_t in_flight_entries;
  /* Rate control (sink_rate.c). */
  double window; /* entries allowed in flight */
  /* Aggregation (sink_agg.c). */
  struct weir_kpl_aggregator *agg; /* owned when aggregation is on */
  struct weir_kpl_md5 md5;
  bool md5_init;
  /* Dead letters (sink_dlq.c). */
  int dlq_fd;     /* -1 when none */
  char *dlq_line; /* owned, dlq_cap: one JSON line */
  size_t dlq_cap;
  uint32_t logged_kinds; /* bit per kind logged once */
  char logged_codes[KSINK_MAX_ERROR_CODES][64];
  uint64_t rng;
  bool failed; /* a fatal error happened: every later call fails */
  int fail_rc;
  struct ksink_metrics m;
  /* Counters for the closing debug line. */
  uint64_t records_out, put_calls, entries_failed, dead;
};

/* ---- sink.c ---- */
int64_t weir__ksink_now_ms(void);
bool weir__ksink_cancelled(const struct ksub *s);
/* Fails the subtask with a message for the job (the first failure wins). Returns rc. */
int weir__ksink_fail(struct ksub *s, int rc, const char *fmt, ...) WEIR_PRINTF(3, 4);
/* The stream index for `name`, describing it on first sight. WEIR_ETOOBIG past the bound. */
int weir__ksink_stream(struct ksub *s, const char *name, int *index);

/* ---- sink_batch.c ---- */
int weir__ksink_buf_init(struct ksub *s);
void weir__ksink_buf_free(struct ksub *s);
/* Space for a record of `len` bytes (entry and arena), without waiting. */
bool weir__ksink_buf_fits(const struct ksub *s, size_t len);
/* Appends a record (caller checked fits). */
void weir__ksink_buf_push(struct ksub *s, int stream, weir_buf data, weir_buf key, weir_buf ehk,
                          const struct weir_kpl_u128 *hash_key);
/* Drops acknowledged (KENT_DONE) entries from the head (called after each request). */
void weir__ksink_buf_reclaim(struct ksub *s);
enum ksink_goal { KSINK_POLL = 0, KSINK_SPACE, KSINK_DRAIN };
/*
 * Moves the buffer forward: acts on finished requests, sends what may be sent (full requests;
 * partial ones too when `partial`), and for KSINK_SPACE waits until a record of `len` bytes
 * fits, for KSINK_DRAIN until nothing is pending. Returns 0, WEIR_ECANCELED or the error that
 * failed the subtask.
 */
int weir__ksink_pump(struct ksub *s, enum ksink_goal goal, size_t len, bool partial);
/* Bytes of entry e (data + key + explicit hash key) and views of its parts. */
weir_buf weir__ksink_data(const struct ksub *s, const struct kentry *e);
weir_buf weir__ksink_key(const struct ksub *s, const struct kentry *e);
/* Key set: finds or inserts entry `pos`'s key; *slot_out is its slot; true when it was there. */
bool weir__ksink_key_find(struct ksub *s, uint32_t pos, struct kkey **slot_out);
void weir__ksink_keys_clear(struct ksub *s);
/* An entry may go into the request being built now (pending, retry time passed, stream). */
bool weir__ksink_sendable(const struct ksub *s, const struct kentry *e, int stream, int64_t now);

/* ---- sink_send.c ---- */
/* Allocates the slots, their clients (no connection is opened yet) and the outcomes block. */
int weir__ksink_slots_start(struct ksub *s);
/* Abandons the requests still on their way (their records stay unacknowledged) and frees it
 * all. */
void weir__ksink_slots_stop(struct ksub *s);
/* Sends a built slot's request (QUEUED; DONE at once when it could not go out). */
void weir__ksink_slot_submit(struct ksub *s, struct kslot *slot);
/* Parses a DONE slot's answer (rc 0) into ksub.out and points slot->out at it, with the fault
 * hook's failures merged in. 0, or the parse error (the slot client's last error says it). */
int weir__ksink_slot_results(struct ksub *s, struct kslot *slot);
/* An idle slot, or NULL. */
struct kslot *weir__ksink_slot_idle(struct ksub *s);
/* Moves the requests in flight forward until a slot is DONE or `until_ms` (monotonic; 0 = do not
 * wait) passes; returns the DONE slots' count and stores them in done[] (n_slots entries). */
size_t weir__ksink_slots_wait(struct ksub *s, int64_t until_ms, struct kslot **done);

/* ---- sink_agg.c ---- */
int weir__ksink_agg_init(struct ksub *s);
void weir__ksink_agg_free(struct ksub *s);
/* The effective hash key of a record (explicit hash key, else MD5 of the key). */
int weir__ksink_hash_key(struct ksub *s, weir_buf key, weir_buf ehk, struct weir_kpl_u128 *out);
/* Loads (or reloads when stale) the stream's shard map. */
int weir__ksink_shard_map(struct ksub *s, struct kstream *st);
/* The index of the shard holding hash key k in the stream's map (0 when there is no map). */
size_t weir__ksink_shard_of(const struct kstream *st, struct weir_kpl_u128 k);
/* Builds the request of `slot` for `stream` from aggregates; returns its entries. */
size_t weir__ksink_build_agg(struct ksub *s, struct kslot *slot, int stream, size_t max_entries,
                             int64_t now);
/* After a successful aggregate: marks the map stale when it landed elsewhere than expected. */
void weir__ksink_agg_check_shard(struct ksub *s, struct kslot *slot, size_t i);

/* ---- sink_rate.c ---- */
void weir__ksink_rate_init(struct ksub *s);
/* Entries the next request may hold (0 = wait for acknowledgements). */
size_t weir__ksink_rate_allow(const struct ksub *s);
void weir__ksink_rate_result(struct ksub *s, size_t sent, size_t throttled);

/* ---- sink_dlq.c ---- */
int weir__ksink_dlq_open(struct ksub *s);
void weir__ksink_dlq_close(struct ksub *s);
/* fsyncs the dead-letter file (at barriers). */
int weir__ksink_dlq_sync(struct ksub *s);
/* A record refused for good: fails the subtask (fail_on_error) or logs once per kind, counts
 * and writes a dead letter. `kind` names the reason ("oversized", the service's code, ...).
 * Returns 0 (dropped) or the failure code. */
int weir__ksink_refuse(struct ksub *s, int stream, weir_buf key, weir_buf ehk, weir_buf data,
                       const char *kind, const char *message);
/* The metric counting per-record failures with `code`. */
weir_metric *weir__ksink_failed_metric(struct ksub *s, const char *code);

#endif /* WEIR_KINESIS_SINK_INT_H */
