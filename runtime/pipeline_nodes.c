/*
 * pipeline_nodes.c: pipeline node types for the built-in connectors (weir/connectors.h):
 * the generator, file and stdin line sources, and file and stdout sinks. Each reads its keys
 * (docs/configuration.md, "Pipeline files") and, unless validating, creates its connector.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline_int.h"
#include "weir/connectors.h"

/* The generator's default value starts with the index as this many digits (generator.c). */
#define GEN_INDEX_DIGITS 20
#define GEN_VALUE_MAX 65536
/* With a rate, a poll emits about this many milliseconds' worth of records, so barriers and
 * stop requests are seen promptly. */
#define GEN_RATE_POLL_MS 20

/* ---- generator ----------------------------------------------------------------------------- */

struct pace {
  int64_t period_ns; /* sleep before each record */
  size_t value_len;
};

/* The default generator value ("<index as 20 digits>" padded with 'x'), produced at most
 * `rate` times a second per subtask: it sleeps one period before each record. */
static long paced_value(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  const struct pace *p = data;
  struct timespec ts = {(time_t)(p->period_ns / 1000000000), (long)(p->period_ns % 1000000000)};
  char digits[GEN_INDEX_DIGITS + 1];

  if (p->value_len > cap)
    return WEIR_ETOOBIG;
  nanosleep(&ts, NULL);
  snprintf(digits, sizeof(digits), "%0*" PRIu64, GEN_INDEX_DIGITS, index);
  memcpy(buf, digits, GEN_INDEX_DIGITS);
  memset(buf + GEN_INDEX_DIGITS, 'x', p->value_len - GEN_INDEX_DIGITS);
  return (long)p->value_len;
}

static void generator_free(void *g) {
  weir_generator_destroy(g);
}

int weir__pnode_generator(struct weir__pnode *n) {
  weir_generator_config cfg = {0};
  weir_generator *gen = NULL;
  struct pace *pace = NULL;
  int64_t count, keys, ts_start, ts_step, per_poll, start, rate;
  uint64_t value_len;
  int rc;

  if ((rc = weir__cfg_int(n->cfg, "count", false, 0, 0, INT64_MAX, &count)) != 0 ||
      (rc = weir__cfg_size(n->cfg, "value_len", false, 100, GEN_INDEX_DIGITS, GEN_VALUE_MAX,
                           &value_len)) != 0 ||
      (rc = weir__cfg_int(n->cfg, "keys", false, 0, 0, UINT32_MAX, &keys)) != 0 ||
      (rc = weir__cfg_int(n->cfg, "ts_start", false, 0, INT64_MIN / 2, INT64_MAX / 2, &ts_start)) !=
          0 ||
      (rc = weir__cfg_duration(n->cfg, "ts_step", false, 0, 0, 86400000, &ts_step)) != 0 ||
      (rc = weir__cfg_int(n->cfg, "rate", false, 0, 0, 1000000000, &rate)) != 0 ||
      (rc = weir__cfg_int(n->cfg, "records_per_poll", false,
                          rate > 0 ? (rate * GEN_RATE_POLL_MS + 999) / 1000 : 256, 1, 65536,
                          &per_poll)) != 0 ||
      (rc = weir__cfg_int(n->cfg, "start", false, 0, 0, INT64_MAX, &start)) != 0)
    return rc;
  if (n->dry_run)
    return 0;
  cfg.count = (uint64_t)count;
  cfg.value_len = (size_t)value_len;
  cfg.key_count = (uint32_t)keys;
  cfg.ts_start = ts_start;
  cfg.ts_step = ts_step;
  cfg.records_per_poll = (uint32_t)per_poll;
  if (rate > 0) {
    if ((pace = malloc(sizeof(*pace))) == NULL)
      return WEIR_ENOMEM;
    pace->period_ns = 1000000000 / rate;
    pace->value_len = (size_t)value_len;
    if ((rc = weir__pnode_own(n, pace, free)) != 0)
      return rc;
    cfg.fn = paced_value;
    cfg.fn_data = pace;
  }
  if ((rc = weir_generator_create(&gen, &cfg)) != 0)
    return rc;
  if ((rc = weir__pnode_own(n, gen, generator_free)) != 0)
    return rc;
  if ((rc = weir_generator_set_start(gen, (uint64_t)start)) != 0)
    return rc;
  return weir_job_add_generator(n->job, n->name, gen, &n->id);
}

/* ---- line sources -------------------------------------------------------------------------- */

static void line_source_free(void *s) {
  weir_line_source_destroy(s);
}

static int line_source(struct weir__pnode *n, bool is_stdin) {
  weir_line_source_config cfg = {0};
  weir_line_source *src = NULL;
  const char *path = NULL;
  uint64_t max_line;
  int rc;

  if ((!is_stdin && (rc = weir__cfg_str(n->cfg, "path", true, NULL, &path)) != 0) ||
      (rc = weir__cfg_size(n->cfg, "max_line_len", false, 1u << 20, 1, 256u << 20, &max_line)) != 0)
    return rc;
  if (path != NULL && path[0] == '\0')
    return weir__cfg_error(weir__cfg_get(n->cfg, "path"), "name a file, or use type: stdin",
                           "empty path");
  n->max_parallelism = 1;
  if (n->dry_run)
    return 0;
  cfg.path = is_stdin ? NULL : path;
  cfg.max_line_len = (size_t)max_line;
  if ((rc = weir_line_source_create(&src, &cfg)) != 0)
    return rc;
  if ((rc = weir__pnode_own(n, src, line_source_free)) != 0)
    return rc;
  return weir_job_add_line_source(n->job, n->name, src, &n->id);
}

int weir__pnode_file_source(struct weir__pnode *n) {
  return line_source(n, false);
}

int weir__pnode_stdin_source(struct weir__pnode *n) {
  return line_source(n, true);
}

/* ---- file sinks ---------------------------------------------------------------------------- */

static void file_sink_free(void *s) {
  weir_file_sink_destroy(s);
}

static int file_sink(struct weir__pnode *n, bool is_stdout) {
  weir_file_sink_config cfg = {0};
  weir_file_sink *sink = NULL;
  const char *path = NULL;
  bool append = false, with_key;
  int rc;

  if ((!is_stdout && ((rc = weir__cfg_str(n->cfg, "path", true, NULL, &path)) != 0 ||
                      (rc = weir__cfg_bool(n->cfg, "append", false, false, &append)) != 0)) ||
      (rc = weir__cfg_bool(n->cfg, "with_key", false, false, &with_key)) != 0)
    return rc;
  if (path != NULL && path[0] == '\0')
    return weir__cfg_error(weir__cfg_get(n->cfg, "path"), "name a file, or use type: stdout",
                           "empty path");
  if (n->dry_run)
    return 0;
  cfg.path = is_stdout ? NULL : path;
  cfg.append = append;
  cfg.with_key = with_key;
  if ((rc = weir_file_sink_create(&sink, &cfg)) != 0) {
    if (rc == WEIR_EIO)
      return weir__cfg_error(weir__cfg_get(n->cfg, "path"),
                             "check that the directory exists and is writable",
                             "cannot open the file for writing");
    return rc;
  }
  if ((rc = weir__pnode_own(n, sink, file_sink_free)) != 0)
    return rc;
  return weir_job_add_file_sink(n->job, n->upstream, n->name, sink, &n->id);
}

int weir__pnode_file_sink(struct weir__pnode *n) {
  return file_sink(n, false);
}

int weir__pnode_stdout_sink(struct weir__pnode *n) {
  return file_sink(n, true);
}
