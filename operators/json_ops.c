/*
 * json_ops.c: the JSON field operators of weir/analytics.h: parse (validate), filter by field
 * conditions, project/rename, key from a field, and the late-record split. Each reads fields
 * in place with the scanner of json_scan.c; nothing is allocated per record (output bytes go
 * through the subtask's scratch buffer, which weir_emit copies).
 */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "analytics_int.h"
#include "json_int.h"

#define MAX_CONDS 16
#define MAX_FIELDS 64

/* ---- shared per-subtask instance ---------------------------------------------------------- */

struct cond {
  struct weir__json_path path;
  weir_json_op op;
  char *value; /* owned, NUL-terminated */
  size_t value_len;
  double num;
  bool value_is_num;
};

struct json_op {
  weir_bad_record_policy on_bad;
  /* filter */
  struct cond conds[MAX_CONDS];
  size_t n_conds;
  /* project */
  struct weir__json_path fields[MAX_FIELDS];
  char *as_quoted[MAX_FIELDS]; /* owned: "\"name\":" */
  size_t as_len[MAX_FIELDS];
  size_t n_fields;
  size_t names_len; /* sum of as_len */
  /* key_by */
  struct weir__json_path key;
  /* split_late */
  bool late;
};

struct json_inst {
  const struct json_op *op;
  weir_metric *bad;
  regex_t re[MAX_CONDS]; /* compiled per subtask: regexec on one regex_t serialises */
  bool re_ok[MAX_CONDS];
};

static void json_op_free(void *p) {
  struct json_op *o = p;
  size_t i;

  if (o == NULL)
    return;
  for (i = 0; i < o->n_conds; i++)
    free(o->conds[i].value);
  for (i = 0; i < o->n_fields; i++)
    free(o->as_quoted[i]);
  free(o);
}

static int json_open(weir_ctx *ctx, void *data, void **inst) {
  const struct json_op *o = data;
  struct json_inst *j = calloc(1, sizeof(*j));
  size_t i;

  *inst = NULL; /* so close never sees the node data */
  if (j == NULL)
    return WEIR_ENOMEM;
  *inst = j;
  j->op = o;
  j->bad = weir__bad_record_metric(ctx);
  for (i = 0; i < o->n_conds; i++) {
    if (o->conds[i].op != WEIR_JSON_REGEX)
      continue;
    if (regcomp(&j->re[i], o->conds[i].value, REG_EXTENDED | REG_NOSUB) != 0)
      return WEIR_EINVAL; /* checked when the node was added: cannot happen */
    j->re_ok[i] = true;
  }
  return 0;
}

static void json_close(weir_ctx *ctx, void *inst) {
  struct json_inst *j = inst;
  size_t i;

  (void)ctx;
  if (j == NULL)
    return;
  for (i = 0; i < MAX_CONDS; i++)
    if (j->re_ok[i])
      regfree(&j->re[i]);
  free(j);
}

/* ---- parse -------------------------------------------------------------------------------- */

static int parse_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct json_inst *j = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    if (weir__json_validate(recs[i].value.ptr, recs[i].value.len) != 0) {
      if ((rc = weir__bad_record(ctx, j->op->on_bad, j->bad, &recs[i], "not a JSON object")) != 0)
        return rc;
      continue;
    }
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  }
  return 0;
}

/* ---- filter ------------------------------------------------------------------------------- */

/* The field's text as a C string in scratch: strings unescaped, others literal. */
static const char *field_cstr(weir_ctx *ctx, struct weir__json_span s, size_t *len) {
  uint8_t *buf = weir_ctx_scratch(ctx, s.len + 1);

  if (buf == NULL || weir__json_unescape(s, buf, s.len, len) != 0)
    return NULL;
  buf[*len] = '\0';
  return (const char *)buf;
}

static bool field_equals(weir_ctx *ctx, const struct cond *c, struct weir__json_span s) {
  const char *str;
  size_t len;
  double x;

  if (s.type == WEIR__JSON_NUMBER && c->value_is_num)
    return weir__json_number(s, &x) == 0 && x == c->num;
  if (s.type == WEIR__JSON_STRING && !s.escaped)
    return s.len == c->value_len && memcmp(s.ptr, c->value, s.len) == 0;
  if ((str = field_cstr(ctx, s, &len)) == NULL)
    return false;
  return len == c->value_len && memcmp(str, c->value, len) == 0;
}

/* 1 = the record passes, 0 = it does not, < 0 = not JSON. */
static int eval_cond(weir_ctx *ctx, struct json_inst *j, size_t ci, const weir_record *r) {
  const struct cond *c = &j->op->conds[ci];
  struct weir__json_span s;
  const char *str;
  size_t len;
  double x;
  int rc = weir__json_find(r->value.ptr, r->value.len, &c->path, &s);

  if (rc == WEIR_EPARSE)
    return rc;
  if (rc == WEIR_ENOTFOUND)
    return c->op == WEIR_JSON_NE || c->op == WEIR_JSON_MISSING;
  switch (c->op) {
  case WEIR_JSON_EQ:
    return field_equals(ctx, c, s);
  case WEIR_JSON_NE:
    return !field_equals(ctx, c, s);
  case WEIR_JSON_EXISTS:
    return 1;
  case WEIR_JSON_MISSING:
    return 0;
  case WEIR_JSON_REGEX:
    if ((str = field_cstr(ctx, s, &len)) == NULL)
      return 0;
    return regexec(&j->re[ci], str, 0, NULL, 0) == 0;
  default:
    if (s.type != WEIR__JSON_NUMBER || weir__json_number(s, &x) != 0)
      return 0;
    switch (c->op) {
    case WEIR_JSON_LT:
      return x < c->num;
    case WEIR_JSON_LE:
      return x <= c->num;
    case WEIR_JSON_GT:
      return x > c->num;
    default:
      return x >= c->num;
    }
  }
}

static int filter_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct json_inst *j = inst;
  size_t i, ci;
  int rc, keep;

  for (i = 0; i < n; i++) {
    keep = 1;
    for (ci = 0; ci < j->op->n_conds && keep == 1; ci++)
      keep = eval_cond(ctx, j, ci, &recs[i]);
    if (keep < 0) {
      if ((rc = weir__bad_record(ctx, j->op->on_bad, j->bad, &recs[i], "not a JSON object")) != 0)
        return rc;
      continue;
    }
    if (keep && (rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  }
  return 0;
}

/* ---- project ------------------------------------------------------------------------------ */

static int project_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct json_inst *j = inst;
  const struct json_op *o = j->op;
  size_t i, f;
  int rc;

  for (i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    /* Output: braces, commas and names, plus each value at most once from the input. */
    size_t cap = r->value.len + o->names_len + o->n_fields + 2, len = 0;
    char *out = weir_ctx_scratch(ctx, cap);
    weir_record w = *r;
    bool bad = false;

    if (out == NULL) {
      weir_ctx_set_error(ctx, "projected record of up to %zu bytes exceeds the batch bound", cap);
      return WEIR_ETOOBIG;
    }
    if (weir__json_validate(r->value.ptr, r->value.len) != 0)
      bad = true;
    out[len++] = '{';
    for (f = 0; f < o->n_fields && !bad; f++) {
      struct weir__json_span s;
      const uint8_t *v;
      size_t vlen;

      rc = weir__json_find(r->value.ptr, r->value.len, &o->fields[f], &s);
      if (rc == WEIR_ENOTFOUND)
        continue;
      if (rc != 0) {
        bad = true;
        break;
      }
      v = s.ptr;
      vlen = s.len;
      if (s.type == WEIR__JSON_STRING) {
        v--; /* keep the quotes */
        vlen += 2;
      }
      if (len > 1)
        out[len++] = ',';
      memcpy(out + len, o->as_quoted[f], o->as_len[f]);
      len += o->as_len[f];
      memcpy(out + len, v, vlen);
      len += vlen;
    }
    if (bad) {
      if ((rc = weir__bad_record(ctx, o->on_bad, j->bad, r, "not a JSON object")) != 0)
        return rc;
      continue;
    }
    out[len++] = '}';
    w.value.ptr = (const uint8_t *)out;
    w.value.len = len;
    if ((rc = weir_emit(ctx, &w)) != 0)
      return rc;
  }
  return 0;
}

/* ---- key by ------------------------------------------------------------------------------- */

static int key_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct json_inst *j = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    weir_record w = *r;
    struct weir__json_span s;

    rc = weir__json_find(r->value.ptr, r->value.len, &j->op->key, &s);
    if (rc == 0 && (s.type == WEIR__JSON_OBJECT || s.type == WEIR__JSON_ARRAY))
      rc = WEIR_ENOTFOUND;
    if (rc != 0) {
      if ((rc = weir__bad_record(ctx, j->op->on_bad, j->bad, r,
                                 rc == WEIR_EPARSE ? "not a JSON object"
                                                   : "key field missing or not a scalar")) != 0)
        return rc;
      continue;
    }
    if (s.escaped) {
      uint8_t *buf = weir_ctx_scratch(ctx, s.len);

      if (buf == NULL || weir__json_unescape(s, buf, s.len, &w.key.len) != 0) {
        if ((rc = weir__bad_record(ctx, j->op->on_bad, j->bad, r, "bad string escape in key")) != 0)
          return rc;
        continue;
      }
      w.key.ptr = buf;
    } else {
      w.key.ptr = s.ptr; /* inside the input: passed on by reference */
      w.key.len = s.len;
    }
    if ((rc = weir_emit(ctx, &w)) != 0)
      return rc;
  }
  return 0;
}

/* ---- late split --------------------------------------------------------------------------- */

static int split_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct json_op *o = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++)
    if (weir_record_is_late(&recs[i]) == o->late && (rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  return 0;
}

/* ---- building ----------------------------------------------------------------------------- */

static int add_json_op(weir_job *job, int upstream, const char *name, struct json_op *o,
                       int (*process)(weir_ctx *, void *, const weir_record *, size_t), bool key_by,
                       int *id) {
  weir_operator op = {0};

  op.open = json_open;
  op.process = process;
  op.close = json_close;
  return weir__add_owned_operator(job, upstream, name, &op, o, json_op_free, key_by, false, id);
}

static struct json_op *new_op(weir_bad_record_policy on_bad) {
  struct json_op *o = calloc(1, sizeof(*o));

  if (o != NULL)
    o->on_bad = on_bad;
  return o;
}

int weir_job_json_parse(weir_job *job, int upstream, const char *name,
                        weir_bad_record_policy on_bad, int *id) {
  struct json_op *o;

  if (job == NULL)
    return WEIR_EINVAL;
  if ((o = new_op(on_bad)) == NULL)
    return WEIR_ENOMEM;
  return add_json_op(job, upstream, name, o, parse_process, false, id);
}

static bool parse_num(const char *s, double *out) {
  char *end;

  if (s == NULL || *s == '\0')
    return false;
  *out = strtod(s, &end);
  return *end == '\0';
}

int weir_job_json_filter(weir_job *job, int upstream, const char *name, const weir_json_cond *conds,
                         size_t n, weir_bad_record_policy on_bad, int *id) {
  struct json_op *o;
  size_t i;

  if (job == NULL || conds == NULL || n == 0 || n > MAX_CONDS)
    return WEIR_EINVAL;
  if ((o = new_op(on_bad)) == NULL)
    return WEIR_ENOMEM;
  for (i = 0; i < n; i++) {
    struct cond *c = &o->conds[i];
    const char *v = conds[i].value != NULL ? conds[i].value : "";
    regex_t re;

    o->n_conds = i + 1;
    c->op = conds[i].op;
    if ((c->value = strdup(v)) == NULL) {
      json_op_free(o);
      return WEIR_ENOMEM;
    }
    c->value_len = strlen(v);
    c->value_is_num = parse_num(v, &c->num);
    if (weir__json_path_init(&c->path, conds[i].field) != 0 || c->op < WEIR_JSON_EQ ||
        c->op > WEIR_JSON_REGEX ||
        (c->op >= WEIR_JSON_LT && c->op <= WEIR_JSON_GE && !c->value_is_num)) {
      weir__job_set_error(job,
                          "json filter '%s': condition %zu: bad field path, operator or "
                          "non-numeric comparison value '%s'",
                          name != NULL ? name : "", i + 1, v);
      json_op_free(o);
      return WEIR_EINVAL;
    }
    if (c->op == WEIR_JSON_REGEX) {
      if (regcomp(&re, v, REG_EXTENDED | REG_NOSUB) != 0) {
        weir__job_set_error(job, "json filter '%s': condition %zu: bad regular expression '%s'",
                            name != NULL ? name : "", i + 1, v);
        json_op_free(o);
        return WEIR_EINVAL;
      }
      regfree(&re);
    }
  }
  return add_json_op(job, upstream, name, o, filter_process, false, id);
}

int weir_job_json_project(weir_job *job, int upstream, const char *name,
                          const weir_json_field *fields, size_t n, weir_bad_record_policy on_bad,
                          int *id) {
  struct json_op *o;
  size_t i;

  if (job == NULL || fields == NULL || n == 0 || n > MAX_FIELDS)
    return WEIR_EINVAL;
  if ((o = new_op(on_bad)) == NULL)
    return WEIR_ENOMEM;
  for (i = 0; i < n; i++) {
    struct weir__json_path *p = &o->fields[i];
    const char *as;
    size_t as_len;
    char *q;
    long ql;

    if (weir__json_path_init(p, fields[i].field) != 0) {
      weir__job_set_error(job, "json project '%s': bad field path '%s'", name != NULL ? name : "",
                          fields[i].field != NULL ? fields[i].field : "(null)");
      json_op_free(o);
      return WEIR_EINVAL;
    }
    as = fields[i].as != NULL ? fields[i].as : p->buf + p->off[p->n - 1];
    as_len = fields[i].as != NULL ? strlen(as) : p->len[p->n - 1];
    if ((q = malloc(6 * as_len + 4)) == NULL) {
      json_op_free(o);
      return WEIR_ENOMEM;
    }
    o->as_quoted[i] = q;
    o->n_fields = i + 1;
    ql = weir__json_quote((const uint8_t *)as, as_len, q, 6 * as_len + 3);
    WEIR_ASSERT(ql > 0);
    q[ql++] = ':';
    o->as_len[i] = (size_t)ql;
    o->names_len += (size_t)ql;
  }
  return add_json_op(job, upstream, name, o, project_process, false, id);
}

int weir_job_json_key_by(weir_job *job, int upstream, const char *name, const char *field,
                         weir_bad_record_policy on_bad, int *id) {
  struct json_op *o;

  if (job == NULL)
    return WEIR_EINVAL;
  if ((o = new_op(on_bad)) == NULL)
    return WEIR_ENOMEM;
  if (weir__json_path_init(&o->key, field) != 0) {
    json_op_free(o);
    return WEIR_EINVAL;
  }
  return add_json_op(job, upstream, name, o, key_process, true, id);
}

int weir_job_split_late(weir_job *job, int upstream, const char *name, bool late, int *id) {
  weir_operator op = {0};
  struct json_op *o;

  if (job == NULL)
    return WEIR_EINVAL;
  if ((o = new_op(WEIR_BAD_RECORD_FAIL)) == NULL)
    return WEIR_ENOMEM;
  o->late = late;
  op.process = split_process;
  return weir__add_owned_operator(job, upstream, name, &op, o, json_op_free, false, false, id);
}
