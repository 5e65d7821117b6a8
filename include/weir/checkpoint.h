/*
 * weir/checkpoint.h: checkpoints (barrier-aligned snapshots committed to LMDB), restore, stop
 * with savepoint, and inspection.
 *
 * With a checkpoint directory set, a coordinator thread periodically injects barrier N at every
 * source. Each source records its position exactly where it emits barrier N; each task aligns
 * barrier N across its inputs (exactly-once mode), snapshots the state of its operators, and
 * forwards the barrier. When every task has stored its snapshot, one synced LMDB transaction
 * records checkpoint N and makes it the latest complete one; only then is
 * notify_checkpoint_complete(N) delivered. On start, a job with a checkpoint directory restores
 * from the latest complete checkpoint there: user state is updated exactly once.
 *
 * Options below are job options: set them before weir_job_start (WEIR_ESTATE after).
 */
#ifndef WEIR_CHECKPOINT_H
#define WEIR_CHECKPOINT_H

#include "job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WEIR_EXACTLY_ONCE = 0, /* align barriers: state reflects exactly the records before them */
  WEIR_AT_LEAST_ONCE = 1 /* no alignment: lower latency; after restore some records count twice */
} weir_checkpoint_mode;

/* Enables checkpointing into directory `dir` (copied; created 0700; files 0600). One job per
 * directory, and one open store per directory per process. */
WEIR_API int weir_job_set_checkpoint_dir(weir_job *job, const char *dir);
/* Time between checkpoint triggers (default 0 = no periodic checkpoints; 10..86400000 ms). */
WEIR_API int weir_job_set_checkpoint_interval(weir_job *job, int64_t ms);
/* A checkpoint not complete after this long is aborted (default 600000 ms; 10..86400000). */
WEIR_API int weir_job_set_checkpoint_timeout(weir_job *job, int64_t ms);
/* Least time between the end of one checkpoint and the next trigger (default 0). */
WEIR_API int weir_job_set_checkpoint_min_pause(weir_job *job, int64_t ms);
WEIR_API int weir_job_set_checkpoint_mode(weir_job *job, weir_checkpoint_mode mode);
/* Consecutive failed (timed out or failing) checkpoints tolerated before the job fails
 * (default 0, as in Flink). */
WEIR_API int weir_job_set_tolerable_checkpoint_failures(weir_job *job, int n);
/* Complete checkpoints kept in the directory (default 3, range 1..1000). */
WEIR_API int weir_job_set_checkpoint_retention(weir_job *job, unsigned k);
/* LMDB map size: the most the checkpoint directory may hold (default 1 GiB). */
WEIR_API int weir_job_set_checkpoint_map_size(weir_job *job, size_t bytes);
/* Restore from checkpoint `id` instead of the latest (0 = latest, the default). */
WEIR_API int weir_job_set_restore_checkpoint(weir_job *job, uint64_t id);
/* Let a restore drop state of operators (uids) the job no longer has (default false: an error). */
WEIR_API int weir_job_set_allow_non_restored_state(weir_job *job, bool allow);

/*
 * Stop with savepoint: takes a final checkpoint; every source stops right after emitting its
 * barrier, so the checkpoint covers exactly what was read; then every task ends without its
 * operators' finish callbacks (the input did not end: a job restored from the savepoint goes
 * on where this one stopped, as Flink's stop without --drain). weir_job_wait returns 0 once done;
 * weir_job_last_checkpoint gives the savepoint's id. If the savepoint fails, the job still
 * stops and the previous checkpoint remains the latest; the failure counts against the
 * tolerable checkpoint failures (past them weir_job_wait returns its code). Operators get no
 * notify_checkpoint_complete for the savepoint: their tasks have ended. Any thread, after
 * start; a second call while one is in flight does nothing.
 * Returns 0, WEIR_ESTATE (not running) or WEIR_EINVAL (no checkpoint directory).
 */
WEIR_API int weir_job_stop_with_savepoint(weir_job *job);

/* Requests one checkpoint now (besides the periodic ones). Any thread, after start. */
WEIR_API int weir_job_trigger_checkpoint(weir_job *job);

/* The id of the latest checkpoint this job completed or restored from (0 = none). Any thread. */
WEIR_API uint64_t weir_job_last_checkpoint(const weir_job *job);

/* Checkpoint statistics of a job, for monitoring and benchmarks. Any thread. */
typedef struct weir_checkpoint_stats {
  uint64_t completed;       /* checkpoints completed by this run */
  uint64_t failed;          /* aborted: timed out or failed */
  uint64_t restored_id;     /* checkpoint restored from at start (0 = fresh start) */
  int64_t last_duration_us; /* trigger to complete, of the last completed checkpoint */
  int64_t p50_duration_us;  /* over the last (up to) 1024 completed checkpoints */
  int64_t p99_duration_us;
} weir_checkpoint_stats;
WEIR_API void weir_job_checkpoint_stats(const weir_job *job, weir_checkpoint_stats *out);

/* ---- inspection (without running the job) ---------------------------------------------- */

typedef struct weir_checkpoint_info {
  uint64_t id;
  int64_t start_ms;     /* wall clock, ms since the epoch, when triggered */
  int64_t end_ms;       /* wall clock when complete */
  uint64_t state_bytes; /* all snapshot blobs together */
  size_t operators;     /* stateful operators (uids) in it */
} weir_checkpoint_info;

/*
 * Lists the complete checkpoints in `dir`, oldest first. *infos is allocated (free with free());
 * *n entries. Returns 0, WEIR_ENOTFOUND (no store there), WEIR_EEXIST (the store is open in
 * this process: a running job) or a store error.
 */
WEIR_API int weir_checkpoint_list(const char *dir, weir_checkpoint_info **infos, size_t *n);

/*
 * Describes checkpoint `id` (0 = latest) of `dir` as text for people: id, times, duration, and
 * per operator: uid, parallelism, state bytes per subtask, keys; source positions. *text is
 * allocated (free with free()).
 */
WEIR_API int weir_checkpoint_describe(const char *dir, uint64_t id, char **text);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_CHECKPOINT_H */
