/*
 * sink_rate.c: the Kinesis sink's rate control: AIMD on the entries in flight.
 *
 * Why AIMD rather than a per-shard token bucket: a token bucket needs to know each shard's
 * capacity and every other writer's share of it; it also needs the shard of every record (an
 * MD5 per record) even without aggregation. The service's own answer, throttled entries, is
 * exact and includes other writers: halve the window of entries in flight whenever a request
 * comes back with throttled entries, and grow it by WEIR_KINESIS_SINK_AIMD_INCREASE entries per
 * request that comes back clean (the scheme Apache Flink's AsyncSinkWriter uses by default,
 * AIMDScalingStrategy). Throttled entries are retried with exponential backoff besides
 * (sink_batch.c), so a throttled shard sees fewer requests, not a retry storm.
 *
 * The window bounds entries (Kinesis records) in flight; it never goes below one request of
 * WEIR_KINESIS_SINK_AIMD_MIN entries, and one request may always be in flight.
 *
 * Threads: the subtask thread only.
 */
#include "connectors/kinesis/sink_int.h"

/* Smallest window: ten entries, so a throttled stream still makes progress. */
#define WEIR_KINESIS_SINK_AIMD_MIN 10.0

static double window_max(const struct ksub *s) {
  return (double)s->n_slots * (double)s->cfg->max_request_records;
}

void weir__ksink_rate_init(struct ksub *s) {
  s->window = window_max(s);
}

size_t weir__ksink_rate_allow(const struct ksub *s) {
  size_t max = s->cfg->max_request_records, room;

  if (s->cfg->rate_mode == WEIR_KINESIS_RATE_NONE)
    return max;
  if (s->busy == 0)
    return s->window < (double)max ? (size_t)s->window : max;
  room = s->window > (double)s->in_flight_entries
             ? (size_t)(s->window - (double)s->in_flight_entries)
             : 0;
  /* A sliver of room makes a tiny request: wait for acknowledgements instead. */
  if (room < max && room < (size_t)(s->window / 4))
    return 0;
  return room < max ? room : max;
}

void weir__ksink_rate_result(struct ksub *s, size_t sent, size_t throttled) {
  (void)sent;
  if (throttled > 0) {
    s->window /= 2;
    if (s->window < WEIR_KINESIS_SINK_AIMD_MIN)
      s->window = WEIR_KINESIS_SINK_AIMD_MIN;
  } else {
    s->window += WEIR_KINESIS_SINK_AIMD_INCREASE;
    if (s->window > window_max(s))
      s->window = window_max(s);
  }
}
