/*
 * source_int.h: the Kinesis source's internal interface, shared by its modules:
 *   source.c        the operator (open, poll, snapshot, restore, close) and building;
 *   source_shards.c the node-wide shard table: discovery, assignment, lineage, restore pool;
 *   source_pos.c    positions, their snapshot encoding, iterator requests, timestamps;
 *   source_read.c   fetching (GetRecords with budget, backoff, iterator renewal) and emitting
 *                   (de-aggregation, deserialization, watermarks).
 *
 * Threads: `struct ksrc` (the node's data) is shared by every subtask; its table fields are
 * guarded by `mu` (the only lock; nothing else is locked while it is held). `struct ksub` and
 * its `struct kshard`s belong to one subtask thread.
 */
#ifndef WEIR_KINESIS_SOURCE_INT_H
#define WEIR_KINESIS_SOURCE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "connectors/kinesis/client_int.h"
#include "connectors/kinesis/kpl_int.h"
#include "weir/job.h"
#include "weir/kinesis.h"
#include "weir/metrics.h"

/* Snapshot format version (proto/kinesis_source.proto SourceSnapshot.version). */
#define WEIR__KSRC_SNAPSHOT_VERSION 1

/* Defaults (Flink ConsumerConfigConstants: SHARD_DISCOVERY_INTERVAL_MILLIS 10000,
 * SHARD_GETRECORDS_MAX 10000, SHARD_GETRECORDS_INTERVAL_MILLIS 200). */
#define KSRC_DEFAULT_DISCOVERY_MS 10000
#define KSRC_DEFAULT_INTERVAL_MS 200
#define KSRC_DEFAULT_PER_POLL 512
/* Shard iterators expire 5 minutes after they are returned (GetShardIterator API reference);
 * one older than this is renewed from the position before use. */
#define KSRC_ITERATOR_RENEW_MS (4 * 60 * 1000)
/* Longest a poll naps when no shard is due (keeps barriers and stop requests prompt). */
#define KSRC_NAP_MAX_MS 10
/* A child held by the checkpoint gate in a job without periodic checkpoints asks for one again
 * after this long (the one it asked for may have failed). */
#define KSRC_GATE_RETRY_MS 10000

enum kpos_kind {
  KPOS_LATEST = 1, /* values match proto PositionKind */
  KPOS_TRIM_HORIZON = 2,
  KPOS_AT_TIMESTAMP = 3,
  KPOS_SEQUENCE = 4,
  KPOS_SHARD_END = 5
};

/* A shard position: what was emitted last (see proto/kinesis_source.proto). Plain value. */
struct kpos {
  enum kpos_kind kind;
  bool partial;  /* SEQUENCE: the aggregate at seq was emitted up to `sub` only */
  uint64_t sub;  /* SEQUENCE: last emitted sub-sequence number */
  int64_t ts_ms; /* AT_TIMESTAMP */
  char seq[WEIR_KINESIS_SEQ_MAX + 1];
};

/* One shard in the node-wide table. */
struct kshard_info {
  int stream; /* index into the source's streams */
  struct weir_kinesis_shard shard;
  uint64_t hash;     /* assignment hash of (stream, shard id) */
  bool finished;     /* read to its end by its owner (or restored as such) */
  bool claimed;      /* its owner made a local entry for it */
  bool initial;      /* listed by the first discovery of a fresh job: takes the initial position */
  uint64_t known_at; /* listing_seq when it entered the table (see weir__ksrc_parents_done) */
  /* The checkpoint gate (see weir__ksrc_parents_done). A shard finished otherwise (restored as
   * SHARD_END, or closed at a fresh LATEST start) emitted nothing in this run: nothing to wait
   * for. */
  bool read_end;     /* finished by its owner reading it to its end in this run */
  uint64_t end_ckpt; /* read_end: the first checkpoint whose snapshot holds the end (0: none) */
  bool end_asked;    /* a checkpoint was requested because a child waits for that end */
};

/* A restored position not yet claimed by its owner. */
struct krestored {
  char stream[WEIR_KINESIS_STREAM_NAME_MAX + 1];
  char shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1];
  uint64_t hash;
  struct kpos pos;
};

/* The node's data: the copied configuration plus the shared shard table. */
struct ksrc {
  weir_kinesis_source_config cfg; /* strings point into this allocation's tail */
  const char *streams[WEIR_KINESIS_SOURCE_MAX_STREAMS];
  int64_t initial_ts_ms; /* AT_TIMESTAMP, parsed */
  size_t alloc_size;     /* of this allocation, zeroed before it is freed */
  size_t max_shards;     /* WEIR_KINESIS_SOURCE_MAX_SHARDS */

  pthread_mutex_t mu;         /* guards everything below */
  struct kshard_info *shards; /* owned: max_shards entries, n_shards used */
  size_t n_shards;
  struct krestored *restored; /* owned: max_shards entries, n_restored used */
  size_t n_restored;
  uint64_t generation;   /* bumped when the table changes (new shards, finished flags) */
  bool restored_started; /* a restored snapshot said the initial list had been taken */
  bool discovered;       /* the first discovery of this run completed */
  bool discover_now;     /* a shard ended: list shards again at the next chance */
  uint64_t listing_seq;  /* listings started (subtask 0 only, one at a time) */
  uint64_t listed_seq;   /* the number (listing_seq) of the last listing that completed */
  bool lister_ended;     /* subtask 0 ended (stop_at_end): no listing will come any more */
  int ready;             /* subtasks that finished restore (reached their first poll) */
  int parallelism;
  bool gate;          /* the job checkpoints: children wait for the checkpoint gate */
  uint64_t completed; /* newest checkpoint notify_checkpoint_complete reported (any subtask) */
};

/* A shard owned by this subtask. */
enum kshard_state { KS_WAITING = 0, KS_READING, KS_FINISHED };

struct kshard {
  int stream;
  char shard_id[WEIR_KINESIS_SHARD_ID_MAX + 1];
  char parents[2][WEIR_KINESIS_SHARD_ID_MAX + 1];
  struct weir_kpl_hash_range range;
  bool has_range;
  enum kshard_state state;
  struct kpos pos; /* last emitted (advanced only as records are emitted) */
  char iterator[WEIR_KINESIS_ITERATOR_MAX + 1];
  bool have_iter;
  int64_t iter_ms;       /* monotonic time the iterator was obtained */
  int64_t next_fetch_ms; /* monotonic: not before */
  int64_t calls[WEIR_KINESIS_SOURCE_CALLS_PER_SECOND]; /* ring of recent call times */
  size_t call_i;
  int backoff_n;    /* consecutive throttled/failed calls (sets the backoff) */
  int errors_n;     /* consecutive transient errors (bounded by the retry policy) */
  bool caught_up;   /* last GetRecords: no records and not behind */
  bool skip_active; /* resuming inside an aggregate: skip sub <= skip_sub at pos.seq */
  uint64_t skip_sub;
  int64_t watermark; /* largest arrival time emitted; WEIR_NO_TIMESTAMP before any */
  int64_t active_ms; /* monotonic time of the last record (or of the start) */
  size_t ti;         /* index of its entry in src->shards (entries never move) */
  bool gate_held;    /* WAITING on the checkpoint gate (counted in ksub.gate_waiting) */
  int64_t gate_since_ms, gate_asked_ms; /* monotonic: held since, checkpoint last asked for */
  char meta[WEIR_KINESIS_STREAM_NAME_MAX + 1 + WEIR_KINESIS_SHARD_ID_MAX + 1];
  size_t meta_len;
  /* Series (borrowed from the job). */
  weir_metric *m_lag, *m_records, *m_bytes, *m_calls, *m_throttles, *m_renewals;
};

/* One subtask. */
struct ksub {
  struct ksrc *src; /* borrowed: the node's data, outlives the subtask */
  int index, parallelism;
  weir_kinesis_client *client;       /* owned: this subtask's connection */
  struct weir_kinesis_records batch; /* owned: the one GetRecords result being emitted */
  struct weir_kpl_decoder *dec;      /* owned */
  struct kshard *shards;             /* owned: src->max_shards entries, n_shards used */
  size_t n_shards;
  uint64_t seen_generation;
  bool started; /* passed the restore barrier */
  bool counted; /* counted in src->ready */
  size_t rr;    /* round-robin start for picking a shard */
  /* The batch being emitted: shard index, next Kinesis record, and an aggregate open in dec. */
  long cur; /* -1 = none */
  size_t cur_rec;
  bool in_record;    /* dec holds the Kinesis record cur_rec, partially emitted */
  int64_t skip_upto; /* sub-records <= this of the open record were emitted before a restart */
  int64_t next_discovery_ms;
  int64_t last_watermark;
  bool idle_out; /* weir_emit_idle(true) sent and no record or watermark since */
  uint64_t rng;
  weir_metric *m_rejected, *m_filtered;
  weir_metric *m_gate_waiting, *m_gated; /* the checkpoint gate's gauge and counter */
  int64_t gate_waiting;                  /* shards with gate_held */
  size_t ends_unsnapshotted; /* shards read to their end here that no snapshot holds yet */
  bool ckpt_periodic;        /* the job has periodic checkpoints (an interval) */
  bool logged_ungated;       /* the no-checkpoint order note was logged */
  uint64_t rejected;
  bool logged_reject;
  struct weir_kinesis_shard_list scratch; /* owned: listing results (subtask 0 only) */
};

/* ---- source_pos.c ------------------------------------------------------------------------ */

/* Parses ISO-8601 (YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]) or epoch seconds ("1764118800.25") into
 * ms since the epoch. 0 or WEIR_EINVAL. */
int weir__ksrc_parse_timestamp(const char *s, int64_t *ms);

/* Fills the GetShardIterator request that resumes after `pos` (kinds other than SHARD_END),
 * and sets the shard's skip state for a partial aggregate. */
void weir__ksrc_iterator_req(struct kshard *k, const char *stream,
                             struct weir_kinesis_iterator_req *req);

/* The assignment hash of (stream, shard id) (FNV-1a 64 over "stream\0shard"). */
uint64_t weir__ksrc_hash(const char *stream, const char *shard_id);

/* Writes this subtask's snapshot: its shards' positions plus the unclaimed restored ones it
 * owns. Takes src->mu. 0, WEIR_ENOMEM, or weir_snapshot_write's code. */
int weir__ksrc_snapshot(struct ksub *s, weir_snapshot *out);

/* Decodes a snapshot part into the restore pool (takes src->mu). 0, WEIR_EPARSE (not a
 * snapshot of a known version), WEIR_ETOOBIG (more shards than the bound). */
int weir__ksrc_restore(struct ksrc *src, weir_buf state);

/* ---- source_shards.c --------------------------------------------------------------------- */

/* Lists every stream's shards and merges them into the table (subtask 0 only). 0 or the
 * client's error (logged). */
int weir__ksrc_discover(struct ksub *s);

/* Claims the table's shards this subtask owns that it has no entry for yet, with their restored
 * or initial positions, and refreshes parent-finished states. Takes src->mu. 0 or WEIR_ENOMEM
 * / WEIR_ETOOBIG. */
int weir__ksrc_sync(struct ksub *s, weir_ctx *ctx);

/* The position a table shard its owner has not claimed yet would start from (for snapshots
 * taken before the owner's next poll). False when the restore pool holds its position. Under
 * src->mu. */
bool weir__ksrc_unclaimed_pos(const struct ksrc *src, const struct kshard_info *e, struct kpos *p);

/* Adds the children a GetRecords reported at a shard's end (read from TRIM_HORIZON). Takes
 * src->mu. 0 or WEIR_ETOOBIG. */
int weir__ksrc_add_children(struct ksub *s, int stream,
                            const struct weir_kinesis_child_shard *children, size_t n);

/* Publishes that a local shard was read to its end; `rediscover` asks subtask 0 to list shards
 * at its next poll (when GetRecords did not name the children). Takes src->mu. */
void weir__ksrc_mark_finished(struct ksub *s, const struct kshard *k, bool rediscover);

/* What weir__ksrc_parents_done found about the checkpoint gate of one shard. */
struct kgate {
  bool held;  /* every parent finished, but one read to its end by another subtask in this run is
                 in no completed checkpoint yet: the shard waits */
  bool cross; /* a parent was read to its end by another subtask in this run */
  bool gate;  /* the job checkpoints (the gate applies to such parents) */
  bool ask;   /* held, no snapshot holds that parent's end yet and nobody asked: ask for a
                 checkpoint now (once per parent) */
  int owner;  /* cross: the subtask that read that parent */
  uint64_t completed;                         /* newest completed checkpoint known */
  char parent[WEIR_KINESIS_SHARD_ID_MAX + 1]; /* cross: that parent */
};

/* True when k may start: every parent is finished (or no longer listed), and each one another
 * subtask read to its end in this run is in a completed checkpoint (the checkpoint gate, when
 * the job checkpoints). *g says why not, or how it passed. Takes src->mu. */
bool weir__ksrc_parents_done(struct ksub *s, const struct kshard *k, struct kgate *g);

/* Records that this subtask's snapshot for checkpoint `ckpt_id` holds the ends of the shards it
 * read to their end since its previous snapshot. Call before weir__ksrc_snapshot, on the
 * subtask's thread. Takes src->mu. */
void weir__ksrc_note_ends(struct ksub *s, uint64_t ckpt_id);

/* Checkpoint `ckpt_id` completed (notify_checkpoint_complete of any subtask). Takes src->mu. */
void weir__ksrc_checkpoint_done(struct ksrc *src, uint64_t ckpt_id);

/* ---- source_read.c ----------------------------------------------------------------------- */

/* Fetches the next batch of one due shard into s->batch (s->cur set), or returns WEIR_EAGAIN
 * with *wait_ms the time until the next one is due. Fatal errors return their code with the
 * context's error set. */
int weir__ksrc_fetch(struct ksub *s, weir_ctx *ctx, int64_t *wait_ms);

/* Emits up to `budget` user records from the current batch; *emitted counts them. */
int weir__ksrc_emit(struct ksub *s, weir_ctx *ctx, size_t budget, size_t *emitted);

/* Emits the source's watermark if the minimum over non-idle shards advanced. */
int weir__ksrc_watermark(struct ksub *s, weir_ctx *ctx, int64_t now_ms);

/* Monotonic milliseconds. */
int64_t weir__ksrc_now_ms(void);

/* True when the job is being cancelled (sleep and retry loops stop). */
bool weir__ksrc_cancelled(const weir_ctx *ctx);

/* True when the job checkpoints (it has a checkpoint directory); *periodic: with an interval. */
bool weir__ksrc_checkpointing(const weir_ctx *ctx, bool *periodic);

#endif /* WEIR_KINESIS_SOURCE_INT_H */
