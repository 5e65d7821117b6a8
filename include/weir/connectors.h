/*
 * weir/connectors.h: built-in sources and sinks for tests, examples and embedding.
 *
 * Each connector is an object created from a config (copied, strings included), added to a
 * job with its weir_job_add_* call, and destroyed by the caller after weir_job_destroy.
 */
#ifndef WEIR_CONNECTORS_H
#define WEIR_CONNECTORS_H

#include <stdio.h>

#include "job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- generator source --------------------------------------------------------------------- */

/*
 * Writes the value of record `index` into `buf` (capacity `cap`) and returns its length, or a
 * negative WEIR_E* code. Must be a pure function of `index`: the generator is replayable.
 * Called from the source's subtask threads concurrently.
 */
typedef long (*weir_gen_fn)(void *data, uint64_t index, uint8_t *buf, size_t cap);

typedef struct weir_generator_config {
  uint64_t count;            /* records in total; 0 = unbounded */
  size_t value_len;          /* default value length in bytes (default fn only; default 100) */
  uint32_t key_count;        /* keys "k<index mod key_count>"; 0 = records have no key */
  int64_t ts_start;          /* event time of record 0 (ms) */
  int64_t ts_step;           /* event time increment per index (ms); 0 = no timestamps */
  uint32_t records_per_poll; /* records emitted per poll call (default 256) */
  weir_gen_fn fn;            /* value function; NULL = "<index as 20 digits>" padded with 'x' */
  void *fn_data;             /* borrowed; passed to fn */
} weir_generator_config;

typedef struct weir_generator weir_generator;

/*
 * A deterministic, resumable source. Record i has offset i, key "k<i mod key_count>", event
 * time ts_start + i * ts_step, and its value from `fn`. With parallelism P, subtask s emits the
 * indices i with i mod P == s in increasing order: one "split" (stride P, next index). Its
 * snapshot lists its splits, so a restored job replays exactly what followed the snapshot; a
 * restore at another parallelism deals the old splits out (old subtask j to new subtask
 * j mod P; a subtask with several emits them merged in index order, one with none ends).
 */
WEIR_API int weir_generator_create(weir_generator **gen, const weir_generator_config *cfg);
WEIR_API void weir_generator_destroy(weir_generator *gen);
/* Start every subtask at the first index >= `offset` (before start; restore overrides it). */
WEIR_API int weir_generator_set_start(weir_generator *gen, uint64_t offset);
WEIR_API int weir_job_add_generator(weir_job *job, const char *name, weir_generator *gen, int *id);

/* ---- line source (file or stdin) ---------------------------------------------------------- */

typedef struct weir_line_source_config {
  const char *path;    /* file to read; NULL or "-" = stdin */
  size_t max_line_len; /* longest accepted line in bytes, newline excluded (default 1 MiB) */
} weir_line_source_config;

typedef struct weir_line_source weir_line_source;

/*
 * Emits one record per line (without the line ending; a trailing "\r" is removed too), with
 * offset = 1-based line number and meta = the path. Parallelism must be 1. A line longer than
 * max_line_len fails the job with an error naming path:line. Ends at end of file.
 */
WEIR_API int weir_line_source_create(weir_line_source **src, const weir_line_source_config *cfg);
WEIR_API void weir_line_source_destroy(weir_line_source *src);
WEIR_API int weir_job_add_line_source(weir_job *job, const char *name, weir_line_source *src,
                                      int *id);

/* ---- push source ------------------------------------------------------------------------- */

typedef struct weir_push_source weir_push_source;

/*
 * A source the host program feeds from its own threads. Records are copied into bounded
 * batches; a full source blocks the pushing thread (backpressure). Parallelism must be 1.
 * `capacity_batches` bounds the queue (0 = the job's channel capacity).
 */
WEIR_API int weir_push_source_create(weir_push_source **src, size_t capacity_batches);
WEIR_API void weir_push_source_destroy(weir_push_source *src);
WEIR_API int weir_job_add_push_source(weir_job *job, const char *name, weir_push_source *src,
                                      int *id);
/*
 * Copies `n` records into the source. Blocks while the queue is full. Any thread; concurrent
 * pushes are serialised, so one call's records stay contiguous and in order. Allowed once the
 * source was added to a job (records queue until the job runs). Returns 0, WEIR_ESTATE (not
 * added, closed, or the source has ended), WEIR_ECANCELED (the job was cancelled or failed) or
 * WEIR_ETOOBIG (a record larger than the batch bound: the records before it are kept).
 * Records a call returned 0 for are emitted even when the job is stopped (weir_job_stop).
 */
WEIR_API int weir_push_source_push(weir_push_source *src, const weir_record *recs, size_t n);
/* Ends the input: records pushed before are processed, then the source ends. Any thread. */
WEIR_API int weir_push_source_close(weir_push_source *src);

/* ---- file / stdout sink ------------------------------------------------------------------ */

typedef struct weir_file_sink_config {
  const char *path; /* file to write (created 0644 or truncated); NULL or "-" = stdout */
  bool append;      /* append instead of truncate */
  bool with_key;    /* write "key<TAB>value" instead of "value" */
} weir_file_sink_config;

typedef struct weir_file_sink weir_file_sink;

/* Opens (creating 0644, or truncating unless `append`) the file at once, so a bad path fails
 * here. Writes one line per record; subtasks share the file, each batch written under one
 * lock. Flushed when the sink's input ends; flushed, fsync'd and closed by destroy. */
WEIR_API int weir_file_sink_create(weir_file_sink **sink, const weir_file_sink_config *cfg);
WEIR_API void weir_file_sink_destroy(weir_file_sink *sink);
WEIR_API int weir_job_add_file_sink(weir_job *job, int upstream, const char *name,
                                    weir_file_sink *sink, int *id);

/* ---- callback sink ----------------------------------------------------------------------- */

/*
 * Receives records on the sink's subtask threads (concurrently when parallelism > 1).
 * `recs` is borrowed for the call. Return 0 or a negative WEIR_E* code to fail the job.
 */
typedef int (*weir_sink_cb)(void *data, int subtask, const weir_record *recs, size_t n);

WEIR_API int weir_job_add_callback_sink(weir_job *job, int upstream, const char *name,
                                        weir_sink_cb cb, void *data, int *id);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_CONNECTORS_H */
