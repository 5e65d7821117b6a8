/*
 * analytics_int.h: helpers shared by the analytics operators (json_ops.c, event_time.c,
 * window.c, analytics_common.c).
 */
#ifndef WEIR_ANALYTICS_INT_H
#define WEIR_ANALYTICS_INT_H

#include "../runtime/job_int.h"
#include "../runtime/log_int.h"
#include "weir/analytics.h"
#include "weir/metrics.h"

/* Counter of dropped bad records, per node and subtask. */
#define WEIR__BAD_RECORDS_METRIC "weir_bad_records_total"

/*
 * Adds an operator whose node data `owned` (transferred, also on failure) is freed with the
 * job by `owned_free` (NULL = free()). `key_by` makes its outgoing edges hash partitioned,
 * `wm_generator` makes it a watermark generator (job_int.h). Same returns as
 * weir_job_add_operator.
 */
int weir__add_owned_operator(weir_job *job, int upstream, const char *name, const weir_operator *op,
                             void *owned, void (*owned_free)(void *), bool key_by,
                             bool wm_generator, int *id);

/*
 * Handles a record an operator cannot use: under WEIR_BAD_RECORD_DROP counts it in `counter`
 * and returns 0 (the caller drops it); else sets the callback error ("<why>: record at offset
 * N [of meta]: '<first bytes>'") and returns WEIR_EPARSE.
 */
int weir__bad_record(weir_ctx *ctx, weir_bad_record_policy policy, weir_metric *counter,
                     const weir_record *r, const char *why);

/* Registers the bad-record counter of this subtask (NULL on failure: counting is skipped). */
weir_metric *weir__bad_record_metric(weir_ctx *ctx);

#endif /* WEIR_ANALYTICS_INT_H */
