/*
 * pipeline_kinesis_source.c: the `kinesis` source node type (weir_job_add_kinesis_source,
 * docs/kinesis-source.md), and the connection keys every Kinesis node reads (region, endpoint,
 * credentials, TLS, timeouts: weir__pnode_kinesis_client). Keys are named after the C config
 * fields, which follow Flink's Kinesis connector (docs/configuration.md, "Pipeline files").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kinesis/source_int.h" /* weir__ksrc_parse_timestamp: checked when validating */
#include "pipeline_int.h"
#include "weir/kinesis.h"

/* Upper bounds the source checks (connectors/kinesis/source.c, validate). */
#define DISCOVERY_MAX_MS 86400000
#define GETRECORDS_INTERVAL_MAX_MS 3600000
#define BACKOFF_MAX_RETRIES 1000
#define BACKOFF_MAX_MS 3600000
#define POLL_MAX_RECORDS 65536
#define TIMEOUT_MAX_MS 3600000

static const char *const creds_names[] = {"auto", "basic", "env_var", "profile", NULL};
static const char *const start_names[] = {"latest", "trim_horizon", "at_timestamp", NULL};
static const char *const deser_names[] = {"raw", "utf8", "json", NULL};

int weir__pnode_kinesis_client(weir__cfg *m, weir_kinesis_config *out) {
  int rc;

  memset(out, 0, sizeof(*out));
  if ((rc = weir__cfg_str(m, "region", false, NULL, &out->region)) != 0 ||
      (rc = weir__cfg_str(m, "endpoint", false, NULL, &out->endpoint)) != 0 ||
      (rc = weir__cfg_str(m, "access_key_id", false, NULL, &out->access_key_id)) != 0 ||
      (rc = weir__cfg_str(m, "secret_access_key", false, NULL, &out->secret_access_key)) != 0 ||
      (rc = weir__cfg_str(m, "session_token", false, NULL, &out->session_token)) != 0 ||
      (rc = weir__cfg_str(m, "profile", false, NULL, &out->profile)) != 0 ||
      (rc = weir__cfg_str(m, "ca_file", false, NULL, &out->ca_file)) != 0 ||
      (rc = weir__cfg_duration(m, "connect_timeout", false, 10000, 1, TIMEOUT_MAX_MS,
                               &out->connect_timeout_ms)) != 0 ||
      (rc = weir__cfg_duration(m, "request_timeout", false, 30000, 1, TIMEOUT_MAX_MS,
                               &out->request_timeout_ms)) != 0)
    return rc;
  if ((out->access_key_id == NULL) != (out->secret_access_key == NULL))
    return weir__cfg_error(
        weir__cfg_get(m, out->access_key_id == NULL ? "secret_access_key" : "access_key_id"),
        "set both access_key_id and secret_access_key, or neither",
        "static credentials need both keys");
  return 0;
}

/* Reads a retry policy map {retries, base, max, exp} (all optional; absent = the default). */
static int read_backoff(weir__cfg *m, const char *key, weir_kinesis_backoff *b) {
  weir__cfg *map;
  const char *exp_s;
  int64_t retries;
  char *end;
  int rc;

  memset(b, 0, sizeof(*b));
  if ((rc = weir__cfg_map(m, key, false, &map)) != 0 || map == NULL)
    return rc;
  if ((rc = weir__cfg_int(map, "retries", false, 0, 0, BACKOFF_MAX_RETRIES, &retries)) != 0 ||
      (rc = weir__cfg_duration(map, "base", false, 0, 0, BACKOFF_MAX_MS, &b->base_ms)) != 0 ||
      (rc = weir__cfg_duration(map, "max", false, 0, 0, BACKOFF_MAX_MS, &b->max_ms)) != 0 ||
      (rc = weir__cfg_str(map, "exp", false, NULL, &exp_s)) != 0 ||
      (rc = weir__cfg_check_unknown(map)) != 0)
    return rc;
  b->retries = (int)retries;
  if (exp_s != NULL) {
    b->exp = strtod(exp_s, &end);
    if (end == exp_s || *end != '\0' || !(b->exp >= 1.0 && b->exp <= 10.0))
      return weir__cfg_error(weir__cfg_get(map, "exp"), "write a number from 1 to 10, e.g. 1.5",
                             "bad backoff exponent");
  }
  if (b->base_ms > b->max_ms)
    return weir__cfg_error(weir__cfg_get(map, "base"), "set max to at least base",
                           "base is above max");
  return 0;
}

int weir__pnode_kinesis_source(struct weir__pnode *n) {
  const char *streams[WEIR_KINESIS_SOURCE_MAX_STREAMS];
  weir_kinesis_source_config cfg;
  weir__cfg *seq, *m = n->cfg;
  int creds, start, deser, rc;
  int64_t discovery, gr_max, gr_interval, per_poll, ts_ms;
  size_t count;

  weir_kinesis_source_config_init(&cfg);
  if ((rc = weir__cfg_seq(m, "streams", true, &seq)) != 0)
    return rc;
  count = weir__cfg_len(seq);
  if (count == 0 || count > WEIR_KINESIS_SOURCE_MAX_STREAMS)
    return weir__cfg_error(seq, "list 1 to 16 stream names", "a source reads 1 to %d streams",
                           WEIR_KINESIS_SOURCE_MAX_STREAMS);
  for (size_t i = 0; i < count; i++) {
    weir__cfg *s = weir__cfg_item(seq, i);
    const char *name = weir__cfg_scalar(s);

    if (name == NULL || name[0] == '\0' || strlen(name) > WEIR_KINESIS_STREAM_NAME_MAX)
      return weir__cfg_error(s, "write a stream name of 1 to 128 characters",
                             "expected a stream name");
    for (size_t j = 0; j < i; j++)
      if (strcmp(streams[j], name) == 0)
        return weir__cfg_error(s, "list each stream once", "duplicate stream");
    streams[i] = name;
  }
  if ((rc = weir__pnode_kinesis_client(m, &cfg.client)) != 0 ||
      (rc = weir__cfg_enum(m, "credentials_provider", false, creds_names, 0, &creds)) != 0 ||
      (rc = weir__cfg_enum(m, "initial_position", false, start_names, 0, &start)) != 0 ||
      (rc = weir__cfg_str(m, "initial_timestamp", start == WEIR_KINESIS_START_AT_TIMESTAMP, NULL,
                          &cfg.initial_timestamp)) != 0 ||
      (rc = weir__cfg_duration(m, "discovery_interval", false, 10000, 0, DISCOVERY_MAX_MS,
                               &discovery)) != 0 ||
      (rc = weir__cfg_int(m, "getrecords_max", false, WEIR_KINESIS_GET_MAX_RECORDS, 1,
                          WEIR_KINESIS_GET_MAX_RECORDS, &gr_max)) != 0 ||
      (rc = weir__cfg_duration(m, "getrecords_interval", false, 200, 1, GETRECORDS_INTERVAL_MAX_MS,
                               &gr_interval)) != 0 ||
      (rc = read_backoff(m, "getrecords_backoff", &cfg.getrecords_backoff)) != 0 ||
      (rc = read_backoff(m, "getiterator_backoff", &cfg.getiterator_backoff)) != 0 ||
      (rc = read_backoff(m, "listshards_backoff", &cfg.listshards_backoff)) != 0 ||
      (rc = weir__cfg_duration(m, "idle_timeout", false, 0, 0, DISCOVERY_MAX_MS,
                               &cfg.idle_timeout_ms)) != 0 ||
      (rc = weir__cfg_enum(m, "deserializer", false, deser_names, 0, &deser)) != 0 ||
      (rc = weir__cfg_bool(m, "fail_on_deserialize_error", false, false,
                           &cfg.fail_on_deserialize_error)) != 0 ||
      (rc = weir__cfg_int(m, "max_records_per_poll", false, 512, 1, POLL_MAX_RECORDS, &per_poll)) !=
          0 ||
      (rc = weir__cfg_bool(m, "stop_at_end", false, false, &cfg.stop_at_end)) != 0)
    return rc;
  if (creds == WEIR_KINESIS_CREDS_BASIC && cfg.client.access_key_id == NULL)
    return weir__cfg_error(m,
                           "add access_key_id: ${AWS_ACCESS_KEY_ID} and secret_access_key: "
                           "${AWS_SECRET_ACCESS_KEY}",
                           "credentials_provider basic needs access_key_id and secret_access_key");
  if (start != WEIR_KINESIS_START_AT_TIMESTAMP && cfg.initial_timestamp != NULL)
    return weir__cfg_error(weir__cfg_get(m, "initial_timestamp"),
                           "remove it, or write 'initial_position: at_timestamp'",
                           "initial_timestamp is used only with initial_position at_timestamp");
  if (cfg.initial_timestamp != NULL &&
      weir__ksrc_parse_timestamp(cfg.initial_timestamp, &ts_ms) != 0)
    return weir__cfg_error(weir__cfg_get(m, "initial_timestamp"),
                           "write ISO-8601 such as 2026-11-26T01:00:00Z, or epoch seconds",
                           "bad timestamp");
  if (n->dry_run)
    return 0;
  cfg.streams = streams;
  cfg.n_streams = count;
  cfg.credentials = (weir_kinesis_credentials_provider)creds;
  cfg.initial_position = (weir_kinesis_start_position)start;
  cfg.discovery_interval_ms = discovery == 0 ? -1 : discovery;
  cfg.getrecords_max = (uint32_t)gr_max;
  cfg.getrecords_interval_ms = gr_interval;
  cfg.deserializer = (weir_kinesis_deserializer)deser;
  cfg.max_records_per_poll = (size_t)per_poll;
  return weir_job_add_kinesis_source(n->job, n->name, &cfg, &n->id);
}
