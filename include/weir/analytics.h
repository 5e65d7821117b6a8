/*
 * weir/analytics.h: event time, watermarks, keyed aggregates, windows and JSON field operators.
 *
 * The model is Flink's (docs/windows-and-time.md has worked examples and the exact rules):
 *
 *   source -> json_filter / json_project -> assign_timestamps -> json_key_by -> window -> sink
 *
 * - weir_job_assign_timestamps sets each record's event time (from the source, a function or
 *   a JSON field) and generates bounded-out-of-orderness watermarks; it marks its output idle
 *   after a timeout without records, so idle inputs do not hold event time back downstream.
 * - weir_job_window aggregates per key and window (tumbling, sliding, session, or "global" =
 *   a running keyed aggregate) with count/sum/min/max/avg or a user aggregate written in C. An
 *   event-time window [start, end) fires once the watermark reaches end - 1; records for
 *   windows already past end - 1 + allowed lateness are late: dropped and counted (metric
 *   weir_window_late_records_total) or sent on as a side output tagged WEIR_LATE_META.
 *   Window contents and timers live in keyed state: checkpointed, restored exactly, and
 *   redistributed by key group when the parallelism changes.
 * - The JSON field operators read fields of JSON object records without building a tree
 *   (no allocation per record): filter by a condition, project/rename, take the key from a
 *   field. Window results are JSON: {"key":…,"window_start":…,"window_end":…,"count":…}.
 *
 * Every weir_job_* call here follows the rules of weir_job_add_operator (job.h): only before
 * start, the config is copied (strings included), returns 0, WEIR_EINVAL (with the reason in
 * weir_job_error for config errors), WEIR_EEXIST, WEIR_ESTATE or WEIR_ENOMEM.
 */
#ifndef WEIR_ANALYTICS_H
#define WEIR_ANALYTICS_H

#include <stdbool.h>

#include "common.h"
#include "job.h"
#include "record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest JSON field path ("a.b.c"), in bytes. */
#define WEIR_JSON_MAX_PATH 256
/* Deepest JSON nesting the field operators accept; deeper records are bad records. */
#define WEIR_JSON_MAX_DEPTH 64

/* What an operator does with a record it cannot use (not JSON, field missing or not a number
 * where one is needed). Dropped records are counted in weir_bad_records_total{node=...}. */
typedef enum {
  WEIR_BAD_RECORD_FAIL = 0, /* fail the job with WEIR_EPARSE naming the record's offset */
  WEIR_BAD_RECORD_DROP      /* drop it and count it */
} weir_bad_record_policy;

/* ---- event time and watermarks ------------------------------------------------------------ */

typedef enum {
  WEIR_TS_FROM_RECORD = 0, /* keep the timestamp the source set (weir_record.timestamp) */
  WEIR_TS_FROM_FN,         /* call `fn` */
  WEIR_TS_FROM_JSON_FIELD  /* a numeric JSON field holding milliseconds since the epoch */
} weir_ts_from;

/* Sets *ts (ms) for `rec` (borrowed for the call). Return 0, WEIR_ENOTFOUND (no timestamp: a
 * bad record) or another negative WEIR_E* code to fail the job. Called on subtask threads,
 * concurrently when the node's parallelism > 1; `data` is the config's fn_data. */
typedef int (*weir_timestamp_fn)(void *data, const weir_record *rec, int64_t *ts);

typedef struct weir_watermark_config {
  weir_ts_from from;
  weir_timestamp_fn fn;   /* WEIR_TS_FROM_FN */
  void *fn_data;          /* borrowed until weir_job_destroy */
  const char *json_field; /* WEIR_TS_FROM_JSON_FIELD: dotted path, copied */
  /* Bound B on out-of-orderness: after the largest timestamp T seen so far, records down to
   * T - B still count as on time. Watermark = T - B - 1 (Flink's BoundedOutOfOrderness). */
  int64_t max_out_of_orderness_ms;
  /* Emit the watermark after every input batch (0, the default: deterministic for tests and
   * lowest latency) or at most every interval_ms of processing time. */
  int64_t interval_ms;
  /* Mark the output idle after this long without records (0 = never), so downstream
   * minimums skip it; the next record makes it active again (see weir_emit_idle). */
  int64_t idle_timeout_ms;
  weir_bad_record_policy on_bad; /* record without a usable timestamp */
} weir_watermark_config;

/*
 * Adds a timestamp assigner and watermark generator (Flink's assignTimestampsAndWatermarks).
 * Its output records carry the assigned timestamp; watermarks and idle status from its
 * upstream stop here and it emits its own. Put it right after the source (same parallelism:
 * it is chained into the source's thread) so each source subtask gets its own watermark.
 * At the end of a bounded input, the end of input itself fires every remaining window.
 */
WEIR_API int weir_job_assign_timestamps(weir_job *job, int upstream, const char *name,
                                        const weir_watermark_config *cfg, int *id);

/* ---- aggregates and windows --------------------------------------------------------------- */

/* Built-in aggregates, OR-ed together in weir_window_config.aggs. */
#define WEIR_AGG_COUNT 0x01u /* records in the window */
#define WEIR_AGG_SUM 0x02u   /* sum of the numeric input */
#define WEIR_AGG_MIN 0x04u
#define WEIR_AGG_MAX 0x08u
#define WEIR_AGG_AVG 0x10u /* sum / count */

/* Largest user accumulator, in bytes. */
#define WEIR_AGG_MAX_ACC 1024

/*
 * A user-defined aggregate (Flink's AggregateFunction). The accumulator is `acc_size` plain
 * bytes that the runtime stores in keyed state and copies freely: it must not hold pointers.
 * Callbacks run on subtask threads, concurrently across subtasks; `data` is shared.
 */
typedef struct weir_aggregate {
  size_t acc_size;                                           /* 1..WEIR_AGG_MAX_ACC */
  void (*create)(void *data, void *acc);                     /* initialise an empty accumulator */
  int (*add)(void *data, void *acc, const weir_record *rec); /* 0, or < 0 fails the job */
  /* Folds `other` into `acc` when two session windows merge. Required for
   * WEIR_WINDOW_SESSION, unused otherwise. */
  void (*merge)(void *data, void *acc, const void *other);
  /* Writes the result as one JSON value (number, string with quotes, object...) into buf and
   * returns its length, or a negative WEIR_E* code. cap is at least 256. */
  long (*result)(void *data, const void *acc, char *buf, size_t cap);
  const char *name; /* JSON field name of the result in the output (copied) */
  void *data;       /* borrowed until weir_job_destroy */
} weir_aggregate;

typedef enum {
  WEIR_WINDOW_TUMBLING = 0, /* [k*size, (k+1)*size) */
  WEIR_WINDOW_SLIDING,      /* [k*slide, k*slide + size): size/slide windows per record */
  WEIR_WINDOW_GLOBAL,       /* no window: a running keyed aggregate, one update per record */
  WEIR_WINDOW_SESSION       /* per key: [first, last + gap) over records at most gap_ms apart */
} weir_window_kind;

typedef enum {
  WEIR_TIME_EVENT = 0, /* record timestamps and watermarks */
  WEIR_TIME_PROCESSING /* the wall clock (CLOCK_REALTIME) when the record is processed */
} weir_time_mode;

typedef enum {
  WEIR_LATE_DROP = 0,   /* drop and count in weir_window_late_records_total */
  WEIR_LATE_SIDE_OUTPUT /* count, and emit the record unchanged with meta WEIR_LATE_META */
} weir_late_policy;

/* The meta of a late record sent as side output; test it with weir_record_is_late. */
#define WEIR_LATE_META "weir.late"

typedef struct weir_window_config {
  weir_window_kind kind;
  weir_time_mode time;
  int64_t size_ms;  /* tumbling, sliding: window length (> 0) */
  int64_t slide_ms; /* sliding: 0 < slide <= size, and size / slide <= 64 */
  int64_t gap_ms;   /* session: inactivity gap (> 0) */
  /* Event time: a window is kept this long after it fired; records arriving for it
   * meanwhile update it and fire it again (Flink's allowed lateness). 0 = drop at once. */
  int64_t allowed_lateness_ms;
  weir_late_policy late;
  unsigned aggs; /* WEIR_AGG_* bits; 0 with user == NULL means WEIR_AGG_COUNT */
  /* The number sum/min/max/avg read: a JSON field path (copied), or NULL = the whole value as
   * a decimal number. A record without one is a bad record (on_bad). */
  const char *value_field;
  const weir_aggregate *user; /* instead of aggs (copied; its data borrowed) */
  weir_bad_record_policy on_bad;
  size_t max_open_windows; /* per subtask distinct window ends open at once (default 65536) */
} weir_window_config;

/*
 * Adds a keyed window aggregate. Its input must be partitioned by key (weir_job_key_by or
 * weir_job_json_key_by right before it). Output per (key, window) firing: key = the key,
 * timestamp = window end - 1, value = one JSON object
 *   {"key":"k1","window_start":0,"window_end":60000,"count":3,"sum":12,...}
 * with the selected aggregates (count, sum, min, max, avg in that order; a user aggregate's
 * result under its name). WEIR_WINDOW_GLOBAL emits {"key":…,"count":…} after every record.
 * Window contents and pending timers are keyed state ("weir.window.v1"): give the node a uid.
 */
WEIR_API int weir_job_window(weir_job *job, int upstream, const char *name,
                             const weir_window_config *cfg, int *id);

/* True when `rec` is a late record sent on by WEIR_LATE_SIDE_OUTPUT. */
static inline bool weir_record_is_late(const weir_record *rec) {
  static const char tag[] = WEIR_LATE_META;
  size_t i;

  if (rec->meta.len != sizeof(tag) - 1)
    return false;
  for (i = 0; i < rec->meta.len; i++)
    if (rec->meta.ptr[i] != (uint8_t)tag[i])
      return false;
  return true;
}

/* A filter keeping only the late records (late = true: the side output) or only the others. */
WEIR_API int weir_job_split_late(weir_job *job, int upstream, const char *name, bool late, int *id);

/* ---- JSON field operators ----------------------------------------------------------------- */

/*
 * Field paths are dotted names of object members from the top level ("user.id"); a member
 * whose name contains '.' cannot be addressed. Records must be JSON objects (RFC 8259);
 * anything else is a bad record.
 */

/* Keeps records that are valid JSON objects; bad ones fail the job or are dropped (on_bad). */
WEIR_API int weir_job_json_parse(weir_job *job, int upstream, const char *name,
                                 weir_bad_record_policy on_bad, int *id);

typedef enum {
  WEIR_JSON_EQ = 0, /* equal: strings by content, numbers numerically, else the literal */
  WEIR_JSON_NE,     /* not equal (true when the field is missing) */
  WEIR_JSON_LT,     /* numeric comparisons: false unless the field is a number */
  WEIR_JSON_LE,
  WEIR_JSON_GT,
  WEIR_JSON_GE,
  WEIR_JSON_EXISTS,  /* the field is present (value ignored) */
  WEIR_JSON_MISSING, /* the field is absent (value ignored) */
  WEIR_JSON_REGEX    /* POSIX extended regex search in the string (or literal) value */
} weir_json_op;

typedef struct weir_json_cond {
  const char *field; /* path, copied */
  weir_json_op op;
  const char *value; /* copied; for comparisons a number, for EQ/NE a string or number */
} weir_json_cond;

/* Keeps records meeting all `n` conditions (1..16). Records that are not JSON objects are bad
 * records (on_bad). WEIR_EINVAL for a bad regex or a non-numeric comparison value. */
WEIR_API int weir_job_json_filter(weir_job *job, int upstream, const char *name,
                                  const weir_json_cond *conds, size_t n,
                                  weir_bad_record_policy on_bad, int *id);

typedef struct weir_json_field {
  const char *field; /* source path, copied */
  const char *as;    /* output member name (copied); NULL = the last path component */
} weir_json_field;

/* Rewrites each record as an object holding only the `n` (1..64) fields, renamed, in this
 * order; missing fields are left out. Key, timestamp and meta are kept. */
WEIR_API int weir_job_json_project(weir_job *job, int upstream, const char *name,
                                   const weir_json_field *fields, size_t n,
                                   weir_bad_record_policy on_bad, int *id);

/* A key_by whose key is the field's value: a string's content (unescaped), or the literal text
 * of a number, true, false or null. Missing field: a bad record. Edges leaving it are hash
 * partitioned, as after weir_job_key_by. */
WEIR_API int weir_job_json_key_by(weir_job *job, int upstream, const char *name, const char *field,
                                  weir_bad_record_policy on_bad, int *id);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_ANALYTICS_H */
