/*
 * sink_int.h: test hooks of the Kinesis sink (sink.c). Not for production use.
 */
#ifndef WEIR_KINESIS_SINK_INT_H
#define WEIR_KINESIS_SINK_INT_H

#include <stdbool.h>

#include "weir/common.h"

/*
 * Per-entry fault injection: before each PutRecords the sink asks `fn` about every entry of the
 * request; an entry for which it returns true is not sent and is treated as if the service had
 * answered ProvisionedThroughputExceededException for it, so the sink's retry and ordering logic
 * runs against a real server. `value` and `partition_key` are borrowed for the call. Called on
 * the sink's subtask threads (concurrently when parallelism > 1). Process-wide: set it (or NULL)
 * before weir_job_start, not while a job runs.
 */
typedef bool (*weir__ksink_fault_fn)(void *data, weir_buf partition_key, weir_buf value);
void weir__kinesis_sink_set_fault(weir__ksink_fault_fn fn, void *data);

#endif /* WEIR_KINESIS_SINK_INT_H */
