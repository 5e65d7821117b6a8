/*
 * weir: a small, fast stream-processing runtime.
 *
 * The umbrella header: include this one. Topic headers beside it:
 *   common.h      error codes, logging, weir_buf
 *   record.h      the record model
 *   job.h         graphs, operators, running jobs
 *   connectors.h  built-in sources and sinks
 *   checkpoint.h  checkpoints, restore, savepoints
 *   state.h       keyed state for operators
 *   kinesis.h     Kinesis connection configuration
 *   analytics.h   event time, watermarks, windows, JSON field operators
 *   metrics.h     counters and gauges read while a job runs
 *   pipeline.h    jobs loaded from YAML pipeline files
 *   plugin.h      the operator plugin ABI
 */
#ifndef WEIR_H
#define WEIR_H

#include "analytics.h"
#include "checkpoint.h"
#include "common.h"
#include "connectors.h"
#include "job.h"
#include "kinesis.h"
#include "metrics.h"
#include "pipeline.h"
#include "plugin.h"
#include "record.h"
#include "state.h"

#endif /* WEIR_H */
