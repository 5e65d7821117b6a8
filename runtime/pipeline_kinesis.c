/*
 * pipeline_kinesis.c: the `kinesis` sink node type (weir_job_add_kinesis_sink,
 * docs/kinesis-sink.md). Connection keys are those of the source (weir__pnode_kinesis_client);
 * the rest are named after weir_kinesis_sink_config's fields (docs/configuration.md,
 * "Pipeline files").
 */
#include <stdio.h>
#include <string.h>

#include "pipeline_int.h"
#include "weir/kinesis.h"

/* Partition keys are 1..256 characters (Kinesis API reference, PutRecordsRequestEntry). */
#define PK_MAX 256
/* Bounds of the buffer keys: a subtask may buffer at most this many records / bytes. */
#define BUFFER_MAX_RECORDS 1000000
#define BUFFER_MAX_BYTES (1ull << 30)
#define LINGER_MAX_MS 3600000

static const char *const pk_modes[] = {"record_key", "fixed", "random", NULL};
static const char *const rate_modes[] = {"aimd", "none", NULL};

int weir__pnode_kinesis_sink(struct weir__pnode *n) {
  weir_kinesis_sink_config cfg;
  weir__cfg *m = n->cfg;
  int64_t buf_records, req_records, in_flight, linger;
  uint64_t buf_bytes, req_bytes, agg_bytes;
  int pk, rate, rc;

  weir_kinesis_sink_config_init(&cfg);
  if ((rc = weir__cfg_str(m, "stream", true, NULL, &cfg.stream)) != 0 ||
      (rc = weir__pnode_kinesis_client(m, &cfg.client)) != 0 ||
      (rc = weir__cfg_enum(m, "pk_mode", false, pk_modes, 0, &pk)) != 0 ||
      (rc = weir__cfg_str(m, "partition_key", pk == WEIR_KINESIS_PK_FIXED, NULL,
                          &cfg.partition_key)) != 0 ||
      (rc = weir__cfg_int(m, "max_buffered_records", false, 10000, 1, BUFFER_MAX_RECORDS,
                          &buf_records)) != 0 ||
      (rc = weir__cfg_size(m, "max_buffered_bytes", false, 8u << 20, 1, BUFFER_MAX_BYTES,
                           &buf_bytes)) != 0 ||
      (rc = weir__cfg_int(m, "max_request_records", false, WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, 1,
                          WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, &req_records)) != 0 ||
      (rc = weir__cfg_size(m, "max_request_bytes", false, WEIR_KINESIS_SINK_DEFAULT_REQUEST_BYTES,
                           1, WEIR_KINESIS_SINK_MAX_REQUEST_BYTES, &req_bytes)) != 0 ||
      (rc = weir__cfg_int(m, "max_in_flight", false, WEIR_KINESIS_SINK_DEFAULT_IN_FLIGHT, 1,
                          WEIR_KINESIS_SINK_MAX_IN_FLIGHT, &in_flight)) != 0 ||
      (rc = weir__cfg_duration(m, "linger", false, 100, 0, LINGER_MAX_MS, &linger)) != 0 ||
      (rc = weir__cfg_bool(m, "fail_on_error", false, true, &cfg.fail_on_error)) != 0 ||
      (rc = weir__cfg_str(m, "dead_letter_path", false, NULL, &cfg.dead_letter_path)) != 0 ||
      (rc = weir__cfg_bool(m, "aggregation", false, false, &cfg.aggregation)) != 0 ||
      (rc = weir__cfg_size(m, "aggregation_max_bytes", false, 0, 0,
                           WEIR_KINESIS_SINK_MAX_REQUEST_BYTES, &agg_bytes)) != 0 ||
      (rc = weir__cfg_enum(m, "rate_mode", false, rate_modes, 0, &rate)) != 0)
    return rc;
  if (cfg.stream[0] == '\0')
    return weir__cfg_error(weir__cfg_get(m, "stream"), "name the target stream", "empty stream");
  if (pk != WEIR_KINESIS_PK_FIXED && cfg.partition_key != NULL)
    return weir__cfg_error(weir__cfg_get(m, "partition_key"),
                           "remove it, or write 'pk_mode: fixed'",
                           "partition_key is used only with pk_mode fixed");
  if (cfg.partition_key != NULL &&
      (cfg.partition_key[0] == '\0' || strlen(cfg.partition_key) > PK_MAX))
    return weir__cfg_error(weir__cfg_get(m, "partition_key"), "use 1 to 256 characters",
                           "bad partition key");
  if (cfg.dead_letter_path != NULL && cfg.fail_on_error)
    return weir__cfg_error(weir__cfg_get(m, "dead_letter_path"),
                           "add 'fail_on_error: false', or remove it",
                           "dead_letter_path is used only with fail_on_error: false");
  if (n->dry_run)
    return 0;
  cfg.pk_mode = (weir_kinesis_pk_mode)pk;
  cfg.max_buffered_records = (size_t)buf_records;
  cfg.max_buffered_bytes = (size_t)buf_bytes;
  cfg.max_request_records = (size_t)req_records;
  cfg.max_request_bytes = (size_t)req_bytes;
  cfg.max_in_flight = (size_t)in_flight;
  cfg.linger_ms = linger == 0 ? -1 : linger;
  cfg.aggregation_max_bytes = (size_t)agg_bytes;
  cfg.rate_mode = (weir_kinesis_rate_mode)rate;
  return weir_job_add_kinesis_sink(n->job, n->upstream, n->name, &cfg, &n->id);
}
