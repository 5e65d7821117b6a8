/*
 * weir/job.h: building and running a dataflow job.
 *
 * A job is a directed acyclic graph of nodes: sources (no inputs), operators, and sinks (no
 * outputs). Each node runs as `parallelism` subtasks. At start, nodes joined by a forward edge
 * with equal parallelism (one output edge upstream, one input edge downstream) are chained into
 * one task: one thread, no queue between them. Other edges become bounded channels between
 * task threads, partitioned forward, round-robin (rebalance), by key hash, or broadcast.
 *
 * Lifecycle: weir_job_create -> weir_job_add_* / weir_job_set_* -> weir_job_start ->
 * weir_job_wait (weir_job_stop from any thread) -> weir_job_destroy.
 *
 * Threads: building calls (add/set/connect/start/destroy) are for one thread at a time.
 * weir_job_stop and weir_job_cancel may be called from any thread, at any time after create.
 */
#ifndef WEIR_JOB_H
#define WEIR_JOB_H

#include <stdbool.h>

#include "common.h"
#include "record.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_job weir_job;

/*
 * Per-subtask context handed to every operator callback. Borrowed: valid only during the
 * callback, and only on the calling thread.
 */
typedef struct weir_ctx weir_ctx;

/* Opaque sink for snapshot bytes (see weir_operator.snapshot). */
typedef struct weir_snapshot weir_snapshot;

/* Upstream argument meaning "no input yet; connect later with weir_job_connect". */
#define WEIR_NO_INPUT (-1)

/* Default key-group count (Flink's "max parallelism"): the bound on any node's parallelism. */
#define WEIR_DEFAULT_MAX_PARALLELISM 128

typedef enum {
  WEIR_PART_AUTO = 0,  /* forward if parallelisms match, else rebalance; key hash after key_by */
  WEIR_PART_FORWARD,   /* subtask i -> subtask i; parallelisms must match */
  WEIR_PART_REBALANCE, /* round-robin, record by record */
  WEIR_PART_HASH,      /* by key: key group = hash(key) mod max parallelism */
  WEIR_PART_BROADCAST  /* every record to every downstream subtask */
} weir_partitioning;

/*
 * The operator interface. Every callback is optional except `process` for operators and sinks
 * and `poll` for sources. Callbacks of one subtask are called from one thread, never
 * concurrently; subtasks of one node run on different threads and share `data`.
 *
 * Callbacks return 0 or a negative WEIR_E* code. A failing callback fails the job; the job's
 * error message names the operator and subtask, plus any detail set with weir_ctx_set_error.
 */
typedef struct weir_operator {
  /*
   * Called once per subtask on its thread before anything else. `*inst` starts as the node's
   * `data`; set it to a per-subtask object to keep subtask state apart. On failure, `close`
   * is still called with whatever *inst holds.
   */
  int (*open)(weir_ctx *ctx, void *data, void **inst);

  /* Sources only: emit zero or more records with weir_emit and return 0; WEIR_EOF when the
   * source is exhausted (bounded input); WEIR_EAGAIN when nothing is available now (the runtime
   * flushes partial batches and calls again soon). */
  int (*poll)(weir_ctx *ctx, void *inst);

  /* Operators and sinks: handle `n` input records. `recs` is borrowed for this call only. */
  int (*process)(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n);

  /* Called every tick interval (weir_job_set_tick_interval) with a monotonic time in ms. */
  int (*on_tick)(weir_ctx *ctx, void *inst, int64_t now_ms);

  /* Called when the subtask's input watermark (minimum over its inputs) advances. The runtime
   * forwards the watermark downstream after this returns. */
  int (*on_watermark)(weir_ctx *ctx, void *inst, int64_t watermark);

  /* Called once when every input has ended, before downstream is told: may still emit. */
  int (*finish)(weir_ctx *ctx, void *inst);

  /* Write this subtask's state for checkpoint `ckpt_id` into `out`. Setting it makes the
   * operator stateful: its state is matched by uid on restore (weir_job_set_uid). */
  int (*snapshot)(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out);

  /* Restore state written by snapshot; `state` is borrowed for this call. Called after open. */
  int (*restore)(weir_ctx *ctx, void *inst, weir_buf state);

  /* Checkpoint `ckpt_id` (and every earlier one) is durably complete. */
  void (*notify_checkpoint_complete)(weir_ctx *ctx, void *inst, uint64_t ckpt_id);

  /* Called once per subtask, last, on its thread; releases what open made. */
  void (*close)(weir_ctx *ctx, void *inst);

  /*
   * Operator state is a list of independent parts (like Flink's list state): a restore at a
   * different parallelism hands old subtask j's state to new subtask j mod parallelism, one
   * restore call per part, and a subtask that takes no part gets one call with empty state.
   * When false (the default), such a restore is refused: the state cannot be split.
   */
  bool redistribute_state;
} weir_operator;

/*
 * Per-record function types for the convenience operators below. `data` is the pointer given
 * when the node was added, shared by all subtasks. They return 0 (map, flat_map, key_by),
 * 1/0 (filter: keep/drop), or a negative WEIR_E* code to fail the job.
 */

/* map: `*out` starts as a copy of `*in` (same borrowed pointers). Point out->value / key at
 * the input, at static memory, or at weir_ctx_scratch memory; the runtime copies `*out`. */
typedef int (*weir_map_fn)(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out);
typedef int (*weir_filter_fn)(void *data, const weir_record *in);
/* flat_map: call weir_emit any number of times. */
typedef int (*weir_flat_map_fn)(weir_ctx *ctx, void *data, const weir_record *in);
/* key_by: set *key (memory as for map). The node's outgoing edges default to WEIR_PART_HASH. */
typedef int (*weir_key_fn)(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key);

/* ---- building ---------------------------------------------------------------------------- */

/* Creates an empty job. `name` is copied. Returns 0, WEIR_EINVAL or WEIR_ENOMEM. */
WEIR_API int weir_job_create(weir_job **job, const char *name);

/* Stops (cancel), joins and frees a job. NULL is a no-op. Not with a concurrent stop call. */
WEIR_API void weir_job_destroy(weir_job *job);

/*
 * Adds a node. `name` is copied and must be unique within the job; `op` is copied; `data` is
 * borrowed and must stay valid until weir_job_destroy. `upstream` is a node id or WEIR_NO_INPUT.
 * On success stores the new node id in *id (may be NULL). Only before start.
 * Returns 0, WEIR_EINVAL (missing callback, bad upstream, upstream is a sink), WEIR_EEXIST
 * (name taken), WEIR_ESTATE (job started), WEIR_ETOOBIG (more than 4096 nodes) or WEIR_ENOMEM.
 */
WEIR_API int weir_job_add_source(weir_job *job, const char *name, const weir_operator *op,
                                 void *data, int *id);
WEIR_API int weir_job_add_operator(weir_job *job, int upstream, const char *name,
                                   const weir_operator *op, void *data, int *id);
WEIR_API int weir_job_add_sink(weir_job *job, int upstream, const char *name,
                               const weir_operator *op, void *data, int *id);

/* Convenience stateless operators built on weir_operator. Same rules as weir_job_add_operator. */
WEIR_API int weir_job_map(weir_job *job, int upstream, const char *name, weir_map_fn fn, void *data,
                          int *id);
WEIR_API int weir_job_filter(weir_job *job, int upstream, const char *name, weir_filter_fn fn,
                             void *data, int *id);
WEIR_API int weir_job_flat_map(weir_job *job, int upstream, const char *name, weir_flat_map_fn fn,
                               void *data, int *id);
WEIR_API int weir_job_key_by(weir_job *job, int upstream, const char *name, weir_key_fn fn,
                             void *data, int *id);

/* Adds an edge from -> to (a node may have several inputs and outputs). Only before start. */
WEIR_API int weir_job_connect(weir_job *job, int from, int to, weir_partitioning part);

/* Sets the partitioning of the existing edge from -> to. Only before start. */
WEIR_API int weir_job_set_partitioning(weir_job *job, int from, int to, weir_partitioning part);

/* Sets a node's parallelism (default 1; checked at start against max parallelism). */
WEIR_API int weir_job_set_parallelism(weir_job *job, int node, int parallelism);

/* Sets a node's stable user id, used to match its state across restarts (default: its name,
 * so renaming a stateful node without setting a uid orphans its state). Copied. Before start. */
WEIR_API int weir_job_set_uid(weir_job *job, int node, const char *uid);

/* Job-wide options. Each may only be called before start; each returns WEIR_EINVAL when out of
 * range and WEIR_ESTATE after start. */

/* Records and arena bytes per batch (defaults 512 records, 2 MiB; a record larger than
 * `max_bytes` fails the job with WEIR_ETOOBIG). records 1..65536, bytes 4 KiB..256 MiB. */
WEIR_API int weir_job_set_batch_size(weir_job *job, size_t max_records, size_t max_bytes);
/* Batches a channel holds before its producer blocks (default 8, range 1..4096). */
WEIR_API int weir_job_set_channel_capacity(weir_job *job, size_t batches);
/* A partial output batch is sent after at most this long (default 100 ms, 0 = after every
 * poll/process call; at most 3600000). */
WEIR_API int weir_job_set_buffer_timeout(weir_job *job, int64_t ms);
/* Interval between on_tick calls (default 100 ms, range 1..3600000). */
WEIR_API int weir_job_set_tick_interval(weir_job *job, int64_t ms);
/* Key groups (default 128, range 1..32768). Parallelism may not exceed it. */
WEIR_API int weir_job_set_max_parallelism(weir_job *job, int max_parallelism);

/* ---- running ----------------------------------------------------------------------------- */

/*
 * Validates the graph and starts every task thread. On a graph error returns WEIR_EGRAPH and
 * weir_job_error() says what is wrong and where. A job starts at most once.
 */
WEIR_API int weir_job_start(weir_job *job);

/*
 * Waits until every task has ended and every thread is joined. Returns 0 when the job finished
 * (bounded sources ended or it was stopped), WEIR_ECANCELED when cancelled, or the first error
 * (weir_job_error() names the operator). Call from one thread, once, after start.
 */
WEIR_API int weir_job_wait(weir_job *job);

/* weir_job_start then weir_job_wait. */
WEIR_API int weir_job_run(weir_job *job);

/*
 * Graceful stop: sources stop polling and end their outputs, every operator finishes, sinks see
 * all records emitted before the stop. Returns immediately; any thread; idempotent.
 */
WEIR_API void weir_job_stop(weir_job *job);

/* Immediate stop: every task ends as soon as it sees the flag; in-flight records are dropped.
 * Any thread; idempotent. */
WEIR_API void weir_job_cancel(weir_job *job);

/* The last error message ("" if none). Borrowed: valid until the next call on the job from
 * the building thread, or destroy. */
WEIR_API const char *weir_job_error(const weir_job *job);

/* ---- inside callbacks -------------------------------------------------------------------- */

/*
 * Emits a record downstream. Value, key and metadata are copied into the output batch; `rec`
 * stays the caller's. Returns 0, WEIR_ETOOBIG (larger than the batch arena), WEIR_EINVAL
 * (called from a sink) or WEIR_ECANCELED (the job is being torn down; return it).
 */
WEIR_API int weir_emit(weir_ctx *ctx, const weir_record *rec);

/*
 * Emits a watermark: no record with event time <= `ts` follows on this subtask's output.
 * Sources and watermark generators (weir_job_assign_timestamps, weir/analytics.h) only; a
 * watermark not above the previous one is ignored. Emitting one also ends an idle period
 * (see weir_emit_idle). Returns 0, WEIR_EINVAL (another kind of operator) or WEIR_ECANCELED.
 */
WEIR_API int weir_emit_watermark(weir_ctx *ctx, int64_t ts);

/*
 * Marks this subtask's output idle (true) or active again (false): Flink's WatermarkStatus
 * IDLE / ACTIVE. Downstream tasks leave an idle input out of the minimum they take over their
 * inputs' watermarks, so one silent shard or partition does not hold event time back for the
 * whole job; a task whose live inputs are all idle is idle itself (and forwards the highest
 * watermark its idle inputs reached). The status travels in band, in order with records.
 *
 * For sources and watermark generators only. A source that has had nothing to read for a
 * while (e.g. a Kinesis shard with no new records for its idle timeout) calls
 * weir_emit_idle(ctx, true) from poll; weir_emit and weir_emit_watermark switch back to active
 * by themselves before the record or watermark goes out, so calling (ctx, false) is optional.
 * Records of a source that became active again may be late for windows downstream if the
 * others moved event time past them (the price of idleness, as in Flink). Repeated calls with
 * the same status cost nothing. Like watermarks, a source's status stops at a timestamp
 * assigner (weir_job_assign_timestamps) further down its chain: that node then declares
 * idleness itself, after its idle_timeout_ms without records. Returns 0, WEIR_EINVAL
 * (another kind of operator) or WEIR_ECANCELED. Call only from the subtask's callbacks (poll,
 * process, on_tick), on its thread.
 */
WEIR_API int weir_emit_idle(weir_ctx *ctx, bool idle);

/* Per-subtask scratch memory of at least `len` bytes, reused across calls (contents are not
 * kept). Borrowed until the next weir_ctx_scratch call on this subtask. NULL if `len` exceeds
 * the batch byte bound or memory is short. */
WEIR_API void *weir_ctx_scratch(weir_ctx *ctx, size_t len);

/* This subtask's index (0-based) and its node's parallelism. */
WEIR_API int weir_ctx_subtask(const weir_ctx *ctx);
WEIR_API int weir_ctx_parallelism(const weir_ctx *ctx);
/* The node's name (borrowed, valid for the job's lifetime). */
WEIR_API const char *weir_ctx_name(const weir_ctx *ctx);
/* True once a graceful stop was requested: sources should return WEIR_EOF soon. */
WEIR_API bool weir_ctx_stopping(const weir_ctx *ctx);

/* Attaches a detail to the failure a callback is about to return (copied, truncated to 512
 * bytes). Never include secrets. */
WEIR_API void weir_ctx_set_error(weir_ctx *ctx, const char *fmt, ...) WEIR_PRINTF(2, 3);

/* Appends `len` bytes to a snapshot being written. WEIR_ETOOBIG past 64 MiB per subtask. */
WEIR_API int weir_snapshot_write(weir_snapshot *s, const void *ptr, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_JOB_H */
