/*
 * pipeline_analytics.c: pipeline node types for the analytics operators (weir/analytics.h):
 * json_parse, json_filter, json_project, key_by (a JSON field), timestamps (event time and
 * watermarks) and window. Each reads its keys (docs/configuration.md, "Pipeline files") and,
 * unless validating, adds its operator. Checks the operators would make at build time (slide
 * against size, numeric comparison values) are made here too, so `weir validate` reports them
 * at their line and column.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"
#include "weir/analytics.h"

/* weir_job_json_filter takes 1..16 conditions, weir_job_json_project 1..64 fields
 * (weir/analytics.h). */
#define FILTER_MAX_CONDS 16
#define PROJECT_MAX_FIELDS 64
/* weir_window_config: size / slide <= 64 for sliding windows. */
#define SLIDING_MAX_PANES 64
/* Bound on one window operator's open window ends (weir_window_config.max_open_windows). */
#define WINDOW_MAX_OPEN (1u << 24)
/* Upper bound of every duration here: 100 days. */
#define DUR_MAX (100LL * 86400000)

static const char *const bad_policies[] = {"fail", "drop", NULL};

/* Reads `on_bad` (fail | drop; default fail) into *out. */
static int on_bad(struct weir__pnode *n, weir_bad_record_policy *out) {
  int v, rc;

  if ((rc = weir__cfg_enum(n->cfg, "on_bad", false, bad_policies, 0, &v)) != 0)
    return rc;
  *out = (weir_bad_record_policy)v;
  return 0;
}

/* Reads a field path (required unless `required` is false) and checks its length. */
static int field_path(weir__cfg *map, const char *key, bool required, const char **out) {
  int rc;

  if ((rc = weir__cfg_str(map, key, required, NULL, out)) != 0)
    return rc;
  if (*out != NULL && ((*out)[0] == '\0' || strlen(*out) > WEIR_JSON_MAX_PATH))
    return weir__cfg_error(weir__cfg_get(map, key), "write a dotted path such as user.id",
                           "a field path has 1 to %d characters", WEIR_JSON_MAX_PATH);
  return 0;
}

/* ---- json_parse ---------------------------------------------------------------------------- */

int weir__pnode_json_parse(struct weir__pnode *n) {
  weir_bad_record_policy bad;
  int rc;

  if ((rc = on_bad(n, &bad)) != 0 || n->dry_run)
    return rc;
  return weir_job_json_parse(n->job, n->upstream, n->name, bad, &n->id);
}

/* ---- json_filter --------------------------------------------------------------------------- */

static const char *const filter_ops[] = {"eq", "ne",     "lt",      "le",    "gt",
                                         "ge", "exists", "missing", "regex", NULL};

int weir__pnode_json_filter(struct weir__pnode *n) {
  weir_json_cond conds[FILTER_MAX_CONDS];
  weir_bad_record_policy bad;
  weir__cfg *where, *c;
  size_t count;
  int rc;

  if ((rc = weir__cfg_seq(n->cfg, "where", true, &where)) != 0 || (rc = on_bad(n, &bad)) != 0)
    return rc;
  count = weir__cfg_len(where);
  if (count == 0 || count > FILTER_MAX_CONDS)
    return weir__cfg_error(where,
                           "write 1 to 16 conditions such as {field: page, op: eq, value: /}",
                           "a filter has 1 to %d conditions, not %zu", FILTER_MAX_CONDS, count);
  for (size_t i = 0; i < count; i++) {
    const char *value;
    int op;
    char *end;

    c = weir__cfg_item(where, i);
    if (weir__cfg_kind(c) != WEIR__CFG_MAP)
      return weir__cfg_error(c, "write {field: F, op: eq, value: V}", "expected a map");
    if ((rc = field_path(c, "field", true, &conds[i].field)) != 0 ||
        (rc = weir__cfg_enum(c, "op", false, filter_ops, 0, &op)) != 0)
      return rc;
    conds[i].op = (weir_json_op)op;
    if (conds[i].op == WEIR_JSON_EXISTS || conds[i].op == WEIR_JSON_MISSING) {
      if ((rc = weir__cfg_str(c, "value", false, NULL, &value)) != 0)
        return rc;
      if (value != NULL)
        return weir__cfg_error(weir__cfg_get(c, "value"), "remove it", "op %s takes no value",
                               filter_ops[op]);
    } else if ((rc = weir__cfg_str(c, "value", true, NULL, &value)) != 0) {
      return rc;
    }
    if (conds[i].op >= WEIR_JSON_LT && conds[i].op <= WEIR_JSON_GE &&
        (strtod(value, &end), end == value || *end != '\0'))
      return weir__cfg_error(weir__cfg_get(c, "value"), "compare with a number such as 100",
                             "op %s needs a numeric value", filter_ops[op]);
    if (conds[i].op == WEIR_JSON_REGEX) {
      regex_t re; /* compiled here only to report a bad pattern at its line */

      if (regcomp(&re, value, REG_EXTENDED | REG_NOSUB) != 0)
        return weir__cfg_error(weir__cfg_get(c, "value"),
                               "write a POSIX extended regular expression such as ^/product/",
                               "bad regular expression");
      regfree(&re);
    }
    conds[i].value = value;
    if ((rc = weir__cfg_check_unknown(c)) != 0)
      return rc;
  }
  if (n->dry_run)
    return 0;
  return weir_job_json_filter(n->job, n->upstream, n->name, conds, count, bad, &n->id);
}

/* ---- json_project -------------------------------------------------------------------------- */

int weir__pnode_json_project(struct weir__pnode *n) {
  weir_json_field fields[PROJECT_MAX_FIELDS];
  weir_bad_record_policy bad;
  weir__cfg *seq, *f;
  size_t count;
  int rc;

  if ((rc = weir__cfg_seq(n->cfg, "fields", true, &seq)) != 0 || (rc = on_bad(n, &bad)) != 0)
    return rc;
  count = weir__cfg_len(seq);
  if (count == 0 || count > PROJECT_MAX_FIELDS)
    return weir__cfg_error(seq, "list 1 to 64 fields: a path, or {field: PATH, as: NAME}",
                           "a projection has 1 to %d fields, not %zu", PROJECT_MAX_FIELDS, count);
  for (size_t i = 0; i < count; i++) {
    f = weir__cfg_item(seq, i);
    fields[i].as = NULL;
    if (weir__cfg_kind(f) == WEIR__CFG_SCALAR) {
      fields[i].field = weir__cfg_scalar(f);
      if (fields[i].field[0] == '\0' || strlen(fields[i].field) > WEIR_JSON_MAX_PATH)
        return weir__cfg_error(f, "write a dotted path such as user.id",
                               "a field path has 1 to %d characters", WEIR_JSON_MAX_PATH);
    } else if (weir__cfg_kind(f) == WEIR__CFG_MAP) {
      if ((rc = field_path(f, "field", true, &fields[i].field)) != 0 ||
          (rc = weir__cfg_str(f, "as", false, NULL, &fields[i].as)) != 0 ||
          (rc = weir__cfg_check_unknown(f)) != 0)
        return rc;
    } else {
      return weir__cfg_error(f, "write a path, or {field: PATH, as: NAME}",
                             "expected a field path or a map");
    }
  }
  if (n->dry_run)
    return 0;
  return weir_job_json_project(n->job, n->upstream, n->name, fields, count, bad, &n->id);
}

/* ---- key_by -------------------------------------------------------------------------------- */

int weir__pnode_key_by(struct weir__pnode *n) {
  weir_bad_record_policy bad;
  const char *field;
  int rc;

  if ((rc = field_path(n->cfg, "field", true, &field)) != 0 || (rc = on_bad(n, &bad)) != 0 ||
      n->dry_run)
    return rc;
  return weir_job_json_key_by(n->job, n->upstream, n->name, field, bad, &n->id);
}

/* ---- timestamps ---------------------------------------------------------------------------- */

static const char *const ts_froms[] = {"field", "source", NULL};

int weir__pnode_timestamps(struct weir__pnode *n) {
  weir_watermark_config cfg = {0};
  const char *field;
  int from, rc;

  if ((rc = weir__cfg_enum(n->cfg, "from", false, ts_froms, 0, &from)) != 0 ||
      (rc = field_path(n->cfg, "field", from == 0, &field)) != 0 ||
      (rc = weir__cfg_duration(n->cfg, "max_out_of_orderness", false, 0, 0, DUR_MAX,
                               &cfg.max_out_of_orderness_ms)) != 0 ||
      (rc = weir__cfg_duration(n->cfg, "interval", false, 0, 0, DUR_MAX, &cfg.interval_ms)) != 0 ||
      (rc = weir__cfg_duration(n->cfg, "idle_timeout", false, 0, 0, DUR_MAX,
                               &cfg.idle_timeout_ms)) != 0 ||
      (rc = on_bad(n, &cfg.on_bad)) != 0)
    return rc;
  if (from == 1 && field != NULL)
    return weir__cfg_error(weir__cfg_get(n->cfg, "field"), "remove it, or write 'from: field'",
                           "'field' is used only with 'from: field'");
  if (n->dry_run)
    return 0;
  cfg.from = from == 0 ? WEIR_TS_FROM_JSON_FIELD : WEIR_TS_FROM_RECORD;
  cfg.json_field = field;
  return weir_job_assign_timestamps(n->job, n->upstream, n->name, &cfg, &n->id);
}

/* ---- window -------------------------------------------------------------------------------- */

static const char *const win_kinds[] = {"tumbling", "sliding", "global", "session", NULL};
static const char *const win_times[] = {"event", "processing", NULL};
static const char *const win_lates[] = {"drop", "side_output", NULL};
static const char *const win_formats[] = {"json", NULL};
static const char *const agg_names[] = {"count", "sum", "min", "max", "avg", NULL};

/* Records "missing required key" for a key only some window kinds need. */
static int need_for_kind(weir__cfg *map, const char *key, const char *kind) {
  char hint[64];

  snprintf(hint, sizeof(hint), "add '%s: <duration>'", key);
  return weir__cfg_error(map, hint, "missing required key '%s' for a %s window", key, kind);
}

/* Reports a key the window kind does not use. */
static int unused_for_kind(weir__cfg *map, const char *key, const char *kind) {
  return weir__cfg_error(weir__cfg_get(map, key), "remove it", "'%s' does not apply to a %s window",
                         key, kind);
}

/* Reads `aggregates` (a list of count/sum/min/max/avg; default [count]) into WEIR_AGG_* bits. */
static int read_aggs(weir__cfg *map, unsigned *aggs) {
  weir__cfg *seq, *a;
  int rc;

  *aggs = 0;
  if ((rc = weir__cfg_seq(map, "aggregates", false, &seq)) != 0)
    return rc;
  if (seq == NULL) {
    *aggs = WEIR_AGG_COUNT;
    return 0;
  }
  if (weir__cfg_len(seq) == 0)
    return weir__cfg_error(seq, "list some of: count, sum, min, max, avg", "no aggregates");
  for (size_t i = 0; i < weir__cfg_len(seq); i++) {
    const char *s;
    size_t k;

    a = weir__cfg_item(seq, i);
    s = weir__cfg_scalar(a);
    for (k = 0; s != NULL && agg_names[k] != NULL && strcmp(s, agg_names[k]) != 0; k++)
      ;
    if (s == NULL)
      return weir__cfg_error(a, "one of: count, sum, min, max, avg", "expected an aggregate name");
    if (agg_names[k] == NULL)
      return weir__cfg_error(a, "one of: count, sum, min, max, avg", "unknown aggregate \"%s\"",
                             weir__cfg_from_env(a) ? "(from the environment)" : s);
    if (*aggs & (1u << k))
      return weir__cfg_error(a, "list each aggregate once", "duplicate aggregate \"%s\"",
                             agg_names[k]);
    *aggs |= 1u << k; /* agg_names is in WEIR_AGG_* bit order */
  }
  return 0;
}

int weir__pnode_window(struct weir__pnode *n) {
  weir_window_config cfg = {0};
  weir__cfg *m = n->cfg;
  int kind, time, late, format, rc;
  int64_t size, slide, gap, max_open;

  if ((rc = weir__cfg_enum(m, "kind", true, win_kinds, 0, &kind)) != 0 ||
      (rc = weir__cfg_enum(m, "time", false, win_times, 0, &time)) != 0 ||
      (rc = weir__cfg_duration(m, "size", false, 0, 1, DUR_MAX, &size)) != 0 ||
      (rc = weir__cfg_duration(m, "slide", false, 0, 1, DUR_MAX, &slide)) != 0 ||
      (rc = weir__cfg_duration(m, "gap", false, 0, 1, DUR_MAX, &gap)) != 0 ||
      (rc = read_aggs(m, &cfg.aggs)) != 0 ||
      (rc = field_path(m, "value_field", false, &cfg.value_field)) != 0 ||
      (rc = weir__cfg_duration(m, "allowed_lateness", false, 0, 0, DUR_MAX,
                               &cfg.allowed_lateness_ms)) != 0 ||
      (rc = weir__cfg_enum(m, "late", false, win_lates, 0, &late)) != 0 ||
      (rc = weir__cfg_int(m, "max_open_windows", false, 65536, 1, WINDOW_MAX_OPEN, &max_open)) !=
          0 ||
      (rc = weir__cfg_enum(m, "format", false, win_formats, 0, &format)) != 0 ||
      (rc = on_bad(n, &cfg.on_bad)) != 0)
    return rc;
  (void)format; /* JSON is the only result format (weir_job_window) */

  /* Which durations each kind takes. */
  switch ((weir_window_kind)kind) {
  case WEIR_WINDOW_TUMBLING:
  case WEIR_WINDOW_SLIDING:
    if (size == 0)
      return need_for_kind(m, "size", win_kinds[kind]);
    if (kind == WEIR_WINDOW_SLIDING && slide == 0)
      return need_for_kind(m, "slide", win_kinds[kind]);
    if (kind == WEIR_WINDOW_TUMBLING && slide != 0)
      return unused_for_kind(m, "slide", win_kinds[kind]);
    if (gap != 0)
      return unused_for_kind(m, "gap", win_kinds[kind]);
    if (kind == WEIR_WINDOW_SLIDING && (slide > size || size / slide > SLIDING_MAX_PANES))
      return weir__cfg_error(weir__cfg_get(m, "slide"), "use a slide between size / 64 and size",
                             "slide must be at most size and size / slide at most %d",
                             SLIDING_MAX_PANES);
    break;
  case WEIR_WINDOW_SESSION:
    if (gap == 0)
      return need_for_kind(m, "gap", win_kinds[kind]);
    if (size != 0)
      return unused_for_kind(m, "size", win_kinds[kind]);
    if (slide != 0)
      return unused_for_kind(m, "slide", win_kinds[kind]);
    break;
  case WEIR_WINDOW_GLOBAL:
    if (size != 0)
      return unused_for_kind(m, "size", win_kinds[kind]);
    if (slide != 0)
      return unused_for_kind(m, "slide", win_kinds[kind]);
    if (gap != 0)
      return unused_for_kind(m, "gap", win_kinds[kind]);
    break;
  }
  if (n->dry_run)
    return 0;
  cfg.kind = (weir_window_kind)kind;
  cfg.time = (weir_time_mode)time;
  cfg.size_ms = size;
  cfg.slide_ms = slide;
  cfg.gap_ms = gap;
  cfg.late = (weir_late_policy)late;
  cfg.max_open_windows = (size_t)max_open;
  return weir_job_window(n->job, n->upstream, n->name, &cfg, &n->id);
}
