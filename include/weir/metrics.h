/*
 * weir/metrics.h: the runtime's metrics: named counters and gauges, read while the job runs.
 *
 * A metric series is a name, a kind, a help text and a set of labels (Prometheus' data model).
 * Operators and connectors register their series in `open` with weir_ctx_metric, which adds the
 * labels node="<node name>" and subtask="<index>"; the host registers job-level series with
 * weir_job_metric. Updating a series is one relaxed atomic operation: cheap enough for hot paths
 * when done once per batch.
 *
 * Readers (a status line, a Prometheus endpoint, tests) walk the series with
 * weir_job_metrics_foreach, render them with weir_job_metrics_text, or sum one name with
 * weir_job_metric_sum, from any thread, while the job runs and after it ended.
 *
 * Lifetime: series belong to the job and stay valid (and readable) until weir_job_destroy.
 * Registering the same name and labels twice returns the same series.
 */
#ifndef WEIR_METRICS_H
#define WEIR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_job weir_job;
typedef struct weir_ctx weir_ctx;

/* One series. Opaque; owned by the job. */
typedef struct weir_metric weir_metric;

typedef enum {
  WEIR_METRIC_COUNTER = 0, /* only goes up (records read, calls, errors) */
  WEIR_METRIC_GAUGE        /* any value (buffer fill, lag in ms) */
} weir_metric_kind;

/* At most this many labels per series, including node and subtask. */
#define WEIR_METRIC_MAX_LABELS 8

/*
 * Registers (or finds) a series. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]* (weir's own start
 * with "weir_"); `help` is one line (NULL = none). `labels` is a NULL-terminated array of
 * alternating label names and values ({"stream", "orders", "shard", "shardId-0", NULL}), or NULL;
 * label names follow the name rule, values are any UTF-8 (escaped when rendered). Everything is
 * copied. *out is borrowed from the job until weir_job_destroy.
 *
 * Returns 0, WEIR_EINVAL (bad name or label, too many labels, or the name registered before
 * with another kind), or WEIR_ENOMEM. Any thread.
 */
WEIR_API int weir_job_metric(weir_job *job, weir_metric_kind kind, const char *name,
                             const char *help, const char *const *labels, weir_metric **out);

/* As weir_job_metric for the job running `ctx`, with node and subtask labels added. From any
 * operator callback (normally open). */
WEIR_API int weir_ctx_metric(weir_ctx *ctx, weir_metric_kind kind, const char *name,
                             const char *help, const char *const *labels, weir_metric **out);

/* Adds `delta` (counters: >= 0). NULL is a no-op, so an unregistered metric costs a branch. */
WEIR_API void weir_metric_add(weir_metric *m, int64_t delta);
/* Sets a gauge. NULL is a no-op. */
WEIR_API void weir_metric_set(weir_metric *m, int64_t value);
/* The current value (0 for NULL). */
WEIR_API int64_t weir_metric_value(const weir_metric *m);

/* What a reader sees of one series. Strings are borrowed for the callback only. */
typedef struct weir_metric_info {
  const char *name;
  const char *help;   /* "" when none */
  const char *labels; /* rendered Prometheus label list without braces: node="map",subtask="0"
                         ("" when none) */
  weir_metric_kind kind;
  int64_t value;
} weir_metric_info;

/*
 * Calls cb for every series in registration order (series of one name are not necessarily
 * adjacent). A non-zero return from cb stops the walk and is returned. Any thread; cb must not
 * register metrics.
 */
WEIR_API int weir_job_metrics_foreach(weir_job *job,
                                      int (*cb)(void *arg, const weir_metric_info *m), void *arg);

/*
 * Renders every series in the Prometheus text exposition format (version 0.0.4), one HELP and
 * TYPE line per name, series grouped by name. *out is NUL-terminated, owned by the caller
 * (free()), *len its length (may be NULL). Returns 0 or WEIR_ENOMEM. Any thread.
 */
WEIR_API int weir_job_metrics_text(weir_job *job, char **out, size_t *len);

/*
 * The sum of the values of every series called `name` whose rendered labels contain
 * `label_filter` as a substring (NULL or "" = all), e.g. weir_job_metric_sum(job,
 * "weir_kinesis_source_records_total", "shard=\"shardId-000000000001\""). 0 when none match.
 */
WEIR_API int64_t weir_job_metric_sum(weir_job *job, const char *name, const char *label_filter);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_METRICS_H */
