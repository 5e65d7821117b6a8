/*
 * yaml_cfg.c: the configuration tree behind pipeline files: YAML (libyaml's document API) turned
 * into maps, sequences and interpolated scalars that remember where they were written, plus the
 * typed getters that turn them into values or into one precise error message.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "yaml_cfg_int.h"

/* Keys a getter may ask of one map (more are still read; only the hint list is capped). */
#define KNOWN_MAX 48
/* Longest value echoed back in an error message. */
#define ECHO_MAX 64

struct entry {
  char *key;          /* owned */
  unsigned line, col; /* of the key */
  weir__cfg *val;     /* owned */
  bool used;
};

struct weir__cfg {
  weir__cfg_doc *doc; /* borrowed: the owning document */
  enum weir__cfg_kind kind;
  unsigned line, col;    /* 1-based start of the node */
  char *path;            /* owned */
  char *str;             /* owned; scalars only */
  bool from_env;         /* the scalar took text from the environment: never echo it */
  size_t len;            /* entries (map) or items (seq) */
  struct entry *entries; /* owned; maps */
  weir__cfg **items;     /* owned; sequences */
  const char **known;    /* owned (maps, made on first use); entries borrowed: callers' literals */
  size_t n_known;
};

struct weir__cfg_doc {
  char *file; /* owned */
  weir__cfg *root;
  size_t nodes;
  bool failed;
  char err[WEIR__CFG_ERR_MAX];
};

/* ---- errors ------------------------------------------------------------------------------ */

static int verror_at(weir__cfg_doc *doc, unsigned line, unsigned col, const char *path,
                     const char *hint, const char *fmt, va_list ap) {
  size_t n;

  if (doc->failed)
    return WEIR_EPARSE;
  doc->failed = true;
  n = (size_t)snprintf(doc->err, sizeof(doc->err), "%s:%u:%u: %s%s", doc->file, line, col,
                       path != NULL ? path : "", path != NULL && path[0] ? ": " : "");
  if (n < sizeof(doc->err))
    n += (size_t)vsnprintf(doc->err + n, sizeof(doc->err) - n, fmt, ap);
  if (hint != NULL && n < sizeof(doc->err))
    snprintf(doc->err + n, sizeof(doc->err) - n, " (hint: %s)", hint);
  return WEIR_EPARSE;
}

static int error_at(weir__cfg_doc *doc, unsigned line, unsigned col, const char *path,
                    const char *hint, const char *fmt, ...) WEIR_PRINTF(6, 7);
static int error_at(weir__cfg_doc *doc, unsigned line, unsigned col, const char *path,
                    const char *hint, const char *fmt, ...) {
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = verror_at(doc, line, col, path, hint, fmt, ap);
  va_end(ap);
  return rc;
}

int weir__cfg_error(weir__cfg *node, const char *hint, const char *fmt, ...) {
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = verror_at(node->doc, node->line, node->col, node->path, hint, fmt, ap);
  va_end(ap);
  return rc;
}

bool weir__cfg_failed(const weir__cfg *node) {
  return node->doc->failed;
}

/* The value as it may appear in a message: quoted and shortened, or hidden if from the
 * environment. */
static const char *echo(const weir__cfg *v, char *buf, size_t cap) {
  if (v->kind != WEIR__CFG_SCALAR)
    return v->kind == WEIR__CFG_MAP ? "a map" : v->kind == WEIR__CFG_SEQ ? "a list" : "null";
  if (v->from_env)
    return "a value from the environment (not shown)";
  if (strlen(v->str) > ECHO_MAX)
    snprintf(buf, cap, "\"%.*s...\"", ECHO_MAX, v->str);
  else
    snprintf(buf, cap, "\"%s\"", v->str);
  return buf;
}

/* ---- building the tree ------------------------------------------------------------------- */

static void node_free(weir__cfg *n) {
  if (n == NULL)
    return;
  for (size_t i = 0; i < n->len; i++) {
    if (n->kind == WEIR__CFG_MAP) {
      free(n->entries[i].key);
      node_free(n->entries[i].val);
    } else if (n->kind == WEIR__CFG_SEQ) {
      node_free(n->items[i]);
    }
  }
  free(n->entries);
  free(n->items);
  free(n->known);
  free(n->path);
  free(n->str);
  free(n);
}

static bool valid_var_char(char c, bool first) {
  return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/*
 * Replaces ${VAR} and ${VAR:-default} in `in`. "$${" stands for a literal "${". On success
 * *out is allocated; on failure an error is recorded at (line, col).
 */
static int interpolate(weir__cfg_doc *doc, unsigned line, unsigned col, const char *path,
                       const char *in, char **out, bool *from_env) {
  char *buf;
  size_t n = 0;
  const char *p = in;

  *from_env = false;
  if (strchr(in, '$') == NULL) { /* the common case: nothing to replace */
    if (strlen(in) > WEIR__CFG_MAX_SCALAR)
      return error_at(doc, line, col, path, NULL, "value longer than %u bytes",
                      (unsigned)WEIR__CFG_MAX_SCALAR);
    *out = strdup(in);
    return *out != NULL ? 0 : WEIR_ENOMEM;
  }
  if ((buf = malloc(WEIR__CFG_MAX_SCALAR + 1)) == NULL)
    return WEIR_ENOMEM;
  while (*p != '\0') {
    const char *val = NULL, *def = NULL, *end;
    char name[256];
    size_t name_len, val_len, def_len = 0;

    if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
      val = "${";
      val_len = 2;
      p += 3;
    } else if (p[0] == '$' && p[1] == '{') {
      const char *q = p + 2;

      while (valid_var_char(*q, q == p + 2))
        q++;
      name_len = (size_t)(q - (p + 2));
      end = strchr(q, '}');
      if (name_len == 0 || name_len >= sizeof(name) || end == NULL ||
          (q != end && strncmp(q, ":-", 2) != 0)) {
        free(buf);
        return error_at(doc, line, col, path,
                        "write ${NAME} or ${NAME:-default}; NAME is letters, digits and '_'; "
                        "$${ is a literal ${",
                        "bad environment variable reference");
      }
      memcpy(name, p + 2, name_len);
      name[name_len] = '\0';
      if (q != end) {
        def = q + 2;
        def_len = (size_t)(end - def);
      }
      val = getenv(name);
      if (val == NULL || (def != NULL && val[0] == '\0')) {
        if (def == NULL) {
          free(buf);
          return error_at(doc, line, col, path,
                          "export it before running, or give a default: ${NAME:-default}",
                          "environment variable %s is not set", name);
        }
        val = def;
        val_len = def_len;
      } else {
        val_len = strlen(val);
        *from_env = true;
      }
      p = end + 1;
    } else {
      val = p;
      val_len = 1;
      p++;
    }
    if (n + val_len > WEIR__CFG_MAX_SCALAR) {
      free(buf);
      return error_at(doc, line, col, path, NULL, "value longer than %u bytes",
                      (unsigned)WEIR__CFG_MAX_SCALAR);
    }
    memcpy(buf + n, val, val_len);
    n += val_len;
  }
  buf[n] = '\0';
  /* Keep only what the value needs (the work buffer is the bound's size). */
  *out = strdup(buf);
  free(buf);
  return *out != NULL ? 0 : WEIR_ENOMEM;
}

static char *join_path(const char *parent, const char *key, long index) {
  size_t cap = strlen(parent) + (key != NULL ? strlen(key) : 0) + 32;
  char *p = malloc(cap);

  if (p == NULL)
    return NULL;
  if (key != NULL)
    snprintf(p, cap, "%s%s%s", parent, parent[0] ? "." : "", key);
  else
    snprintf(p, cap, "%s[%ld]", parent, index);
  return p;
}

static bool is_null_scalar(const yaml_node_t *yn) {
  const char *s = (const char *)yn->data.scalar.value;

  if (yn->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

/* Converts libyaml node `yn` into a new tree node with key path `path` (ownership taken). */
static int build(weir__cfg_doc *doc, yaml_document_t *yd, yaml_node_t *yn, char *path, int depth,
                 weir__cfg **out) {
  weir__cfg *n = calloc(1, sizeof(*n));
  int rc = WEIR_ENOMEM;

  *out = NULL;
  if (n == NULL) {
    free(path);
    return WEIR_ENOMEM;
  }
  n->doc = doc;
  n->path = path;
  n->line = (unsigned)yn->start_mark.line + 1;
  n->col = (unsigned)yn->start_mark.column + 1;
  if (path == NULL)
    goto fail;
  if (++doc->nodes > WEIR__CFG_MAX_NODES) {
    rc = weir__cfg_error(n, "aliases may expand into too many nodes", "more than %u nodes",
                         (unsigned)WEIR__CFG_MAX_NODES);
    goto fail;
  }
  if (depth > WEIR__CFG_MAX_DEPTH) {
    rc = weir__cfg_error(n, NULL, "nested deeper than %d levels", WEIR__CFG_MAX_DEPTH);
    goto fail;
  }
  switch (yn->type) {
  case YAML_SCALAR_NODE:
    if (is_null_scalar(yn)) {
      n->kind = WEIR__CFG_NULL;
      break;
    }
    n->kind = WEIR__CFG_SCALAR;
    rc = interpolate(doc, n->line, n->col, n->path, (const char *)yn->data.scalar.value, &n->str,
                     &n->from_env);
    if (rc != 0)
      goto fail;
    break;
  case YAML_SEQUENCE_NODE: {
    size_t cnt = (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);

    n->kind = WEIR__CFG_SEQ;
    if (cnt > 0 && (n->items = calloc(cnt, sizeof(*n->items))) == NULL)
      goto fail;
    for (size_t i = 0; i < cnt; i++) {
      yaml_node_t *c = yaml_document_get_node(yd, yn->data.sequence.items.start[i]);

      rc = build(doc, yd, c, join_path(n->path, NULL, (long)i), depth + 1, &n->items[i]);
      n->len = i + 1;
      if (rc != 0)
        goto fail;
    }
    break;
  }
  case YAML_MAPPING_NODE: {
    size_t cnt = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);

    n->kind = WEIR__CFG_MAP;
    if (cnt > 0 && (n->entries = calloc(cnt, sizeof(*n->entries))) == NULL)
      goto fail;
    for (size_t i = 0; i < cnt; i++) {
      yaml_node_pair_t *pair = &yn->data.mapping.pairs.start[i];
      yaml_node_t *k = yaml_document_get_node(yd, pair->key);
      yaml_node_t *v = yaml_document_get_node(yd, pair->value);
      struct entry *e = &n->entries[i];

      e->line = (unsigned)k->start_mark.line + 1;
      e->col = (unsigned)k->start_mark.column + 1;
      if (k->type != YAML_SCALAR_NODE) {
        rc = error_at(doc, e->line, e->col, n->path, "keys are plain words such as 'name'",
                      "a key must be a string");
        goto fail;
      }
      for (size_t j = 0; j < i; j++) {
        if (strcmp(n->entries[j].key, (const char *)k->data.scalar.value) == 0) {
          char *p = join_path(n->path, n->entries[j].key, 0);

          rc = error_at(doc, e->line, e->col, p != NULL ? p : "", "remove one of them",
                        "duplicate key (first at line %u)", n->entries[j].line);
          free(p);
          goto fail;
        }
      }
      if ((e->key = strdup((const char *)k->data.scalar.value)) == NULL)
        goto fail;
      n->len = i + 1;
      rc = build(doc, yd, v, join_path(n->path, e->key, 0), depth + 1, &e->val);
      if (rc != 0)
        goto fail;
    }
    break;
  }
  default:
    n->kind = WEIR__CFG_NULL;
    break;
  }
  *out = n;
  return 0;
fail:
  node_free(n);
  return rc != 0 ? rc : WEIR_ENOMEM;
}

int weir__cfg_parse(weir__cfg_doc **docp, const char *file, const char *text, size_t len) {
  weir__cfg_doc *doc = calloc(1, sizeof(*doc));
  yaml_parser_t parser;
  yaml_document_t yd;
  bool parser_ok = false, doc_ok = false;
  yaml_node_t *root;
  int rc = WEIR_ENOMEM;

  *docp = doc;
  if (doc == NULL)
    return WEIR_ENOMEM;
  if ((doc->file = strdup(file != NULL ? file : "<string>")) == NULL)
    goto fail;
  if (len > WEIR__CFG_MAX_BYTES) {
    rc = error_at(doc, 1, 1, NULL, "split the pipeline or shorten it", "file larger than %u bytes",
                  (unsigned)WEIR__CFG_MAX_BYTES);
    goto fail;
  }
  if (!yaml_parser_initialize(&parser))
    goto fail;
  parser_ok = true;
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &yd) && parser.error == YAML_READER_ERROR) {
    /* Bytes that are not UTF-8 (or a control character): libyaml's reader gives only a byte
     * offset, no mark, so find the line and column here instead of reporting 1:1. */
    size_t off = parser.problem_offset < len ? parser.problem_offset : len, bol = 0;
    unsigned line = 1;

    for (size_t i = 0; i < off; i++)
      if (text[i] == '\n') {
        line++;
        bol = i + 1;
      }
    rc = error_at(doc, line, (unsigned)(off - bol) + 1, NULL,
                  "save the file as UTF-8 and quote or remove control characters",
                  "YAML syntax error: %s (byte 0x%02x)",
                  parser.problem ? parser.problem : "unreadable input",
                  off < len ? (unsigned)(unsigned char)text[off] : 0u);
    goto fail;
  }
  if (parser.error != YAML_NO_ERROR) { /* yaml_parser_load failed */
    const yaml_mark_t *m = parser.problem_mark.line || parser.problem_mark.column
                               ? &parser.problem_mark
                               : &parser.context_mark;
    rc = error_at(doc, (unsigned)m->line + 1, (unsigned)m->column + 1, NULL,
                  "check indentation, colons and quotes near here; indent with spaces, not tabs",
                  "YAML syntax error: %s%s%s", parser.problem ? parser.problem : "unknown",
                  parser.context ? " " : "", parser.context ? parser.context : "");
    goto fail;
  }
  doc_ok = true;
  root = yaml_document_get_root_node(&yd);
  if (root == NULL) {
    rc = error_at(doc, 1, 1, NULL, "see docs/configuration.md for an example", "the file is empty");
    goto fail;
  }
  char *path = strdup("");
  rc = build(doc, &yd, root, path, 0, &doc->root);
  if (rc != 0)
    goto fail;
  yaml_document_delete(&yd);
  yaml_parser_delete(&parser);
  return 0;
fail:
  if (doc_ok)
    yaml_document_delete(&yd);
  if (parser_ok)
    yaml_parser_delete(&parser);
  if (!doc->failed) {
    weir__cfg_doc_free(doc);
    *docp = NULL;
    return WEIR_ENOMEM;
  }
  return rc;
}

void weir__cfg_doc_free(weir__cfg_doc *doc) {
  if (doc == NULL)
    return;
  node_free(doc->root);
  free(doc->file);
  free(doc);
}

const char *weir__cfg_doc_error(const weir__cfg_doc *doc) {
  return doc->err;
}

weir__cfg *weir__cfg_root(weir__cfg_doc *doc) {
  return doc->root;
}

/* ---- reading ----------------------------------------------------------------------------- */

enum weir__cfg_kind weir__cfg_kind(const weir__cfg *node) {
  return node->kind;
}

const char *weir__cfg_path(const weir__cfg *node) {
  return node->path;
}

bool weir__cfg_from_env(const weir__cfg *node) {
  return node != NULL && node->kind == WEIR__CFG_SCALAR && node->from_env;
}

const char *weir__cfg_scalar(const weir__cfg *node) {
  return node->kind == WEIR__CFG_SCALAR ? node->str : NULL;
}

size_t weir__cfg_len(const weir__cfg *node) {
  return node->kind == WEIR__CFG_MAP || node->kind == WEIR__CFG_SEQ ? node->len : 0;
}

weir__cfg *weir__cfg_item(const weir__cfg *node, size_t i) {
  if (i >= weir__cfg_len(node))
    return NULL;
  return node->kind == WEIR__CFG_SEQ ? node->items[i] : node->entries[i].val;
}

const char *weir__cfg_key(const weir__cfg *node, size_t i) {
  if (node->kind != WEIR__CFG_MAP || i >= node->len)
    return NULL;
  node->entries[i].used = true;
  return node->entries[i].key;
}

void weir__cfg_known(weir__cfg *map, const char *key) {
  if (map == NULL || map->kind != WEIR__CFG_MAP)
    return;
  for (size_t i = 0; i < map->n_known; i++)
    if (strcmp(map->known[i], key) == 0)
      goto mark;
  if (map->known == NULL)
    map->known = calloc(KNOWN_MAX, sizeof(*map->known));
  if (map->known != NULL && map->n_known < KNOWN_MAX)
    map->known[map->n_known++] = key;
mark:
  for (size_t i = 0; i < map->len; i++)
    if (strcmp(map->entries[i].key, key) == 0)
      map->entries[i].used = true;
}

weir__cfg *weir__cfg_get(weir__cfg *map, const char *key) {
  if (map == NULL || map->kind != WEIR__CFG_MAP)
    return NULL;
  weir__cfg_known(map, key);
  for (size_t i = 0; i < map->len; i++)
    if (strcmp(map->entries[i].key, key) == 0)
      return map->entries[i].val;
  return NULL;
}

/* Looks `key` up for a getter: *v = NULL when absent (error if required). */
static int lookup(weir__cfg *map, const char *key, bool required, const char *what, weir__cfg **v) {
  char hint[128];

  *v = NULL;
  if (map == NULL)
    return required ? WEIR_EINVAL : 0;
  if (map->doc->failed)
    return WEIR_EPARSE;
  *v = weir__cfg_get(map, key);
  if (*v != NULL && (*v)->kind == WEIR__CFG_NULL)
    *v = NULL;
  if (*v == NULL && required) {
    snprintf(hint, sizeof(hint), "add '%s: <%s>'", key, what);
    return weir__cfg_error(map, hint, "missing required key '%s'", key);
  }
  return 0;
}

static int need_scalar(weir__cfg *v, const char *what, const char *hint) {
  char buf[ECHO_MAX + 8];

  if (v->kind == WEIR__CFG_SCALAR)
    return 0;
  return weir__cfg_error(v, hint, "expected %s, got %s", what, echo(v, buf, sizeof(buf)));
}

int weir__cfg_str(weir__cfg *map, const char *key, bool required, const char *def,
                  const char **out) {
  weir__cfg *v;
  int rc;

  *out = def;
  if ((rc = lookup(map, key, required, "text", &v)) != 0 || v == NULL)
    return rc;
  if ((rc = need_scalar(v, "a string", "write a single value, quoted if it has ':' or '#'")) != 0)
    return rc;
  *out = v->str;
  return 0;
}

static bool parse_i64(const char *s, int64_t *out) {
  char *end;
  long long x;

  errno = 0;
  x = strtoll(s, &end, 10);
  if (end == s || *end != '\0' || errno != 0 || isspace((unsigned char)s[0]))
    return false;
  *out = x;
  return true;
}

static int range_error(weir__cfg *v, const char *shown, const char *min, const char *max) {
  char hint[128];

  snprintf(hint, sizeof(hint), "allowed %s..%s", min, max);
  return weir__cfg_error(v, hint, "%s is out of range", shown);
}

int weir__cfg_int(weir__cfg *map, const char *key, bool required, int64_t def, int64_t min,
                  int64_t max, int64_t *out) {
  char buf[ECHO_MAX + 8], a[24], b[24];
  weir__cfg *v;
  int64_t x;
  int rc;

  *out = def;
  if ((rc = lookup(map, key, required, "integer", &v)) != 0 || v == NULL)
    return rc;
  if ((rc = need_scalar(v, "an integer", "write a whole number such as 4")) != 0)
    return rc;
  if (!parse_i64(v->str, &x))
    return weir__cfg_error(v, "write a whole number such as 4", "expected an integer, got %s",
                           echo(v, buf, sizeof(buf)));
  if (x < min || x > max) {
    snprintf(a, sizeof(a), "%" PRId64, min);
    snprintf(b, sizeof(b), "%" PRId64, max);
    return range_error(v, echo(v, buf, sizeof(buf)), a, b);
  }
  *out = x;
  return 0;
}

int weir__cfg_bool(weir__cfg *map, const char *key, bool required, bool def, bool *out) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  char buf[ECHO_MAX + 8];
  weir__cfg *v;
  int rc;

  *out = def;
  if ((rc = lookup(map, key, required, "true|false", &v)) != 0 || v == NULL)
    return rc;
  if ((rc = need_scalar(v, "true or false", "write true or false")) != 0)
    return rc;
  for (size_t i = 0; i < 3; i++) {
    if (strcasecmp(v->str, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(v->str, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return weir__cfg_error(v, "write true or false", "expected true or false, got %s",
                         echo(v, buf, sizeof(buf)));
}

/* Parses "<digits>" then optional spaces; returns the rest or NULL. */
static const char *take_number(const char *s, uint64_t *out) {
  uint64_t x = 0;

  if (!isdigit((unsigned char)*s))
    return NULL;
  while (isdigit((unsigned char)*s)) {
    if (x > (UINT64_MAX - 9) / 10)
      return NULL;
    x = x * 10 + (uint64_t)(*s++ - '0');
  }
  while (*s == ' ')
    s++;
  *out = x;
  return s;
}

int weir__cfg_size(weir__cfg *map, const char *key, bool required, uint64_t def, uint64_t min,
                   uint64_t max, uint64_t *out) {
  static const struct {
    const char *unit;
    uint64_t mul;
  } units[] = {{"", 1},
               {"B", 1},
               {"KiB", 1ull << 10},
               {"MiB", 1ull << 20},
               {"GiB", 1ull << 30},
               {"TiB", 1ull << 40},
               {"KB", 1000ull},
               {"MB", 1000000ull},
               {"GB", 1000000000ull},
               {"TB", 1000000000000ull}};
  static const char hint[] = "write a number and a unit: 512, 64KiB, 1MiB, 2GiB, 10MB";
  char buf[ECHO_MAX + 8], a[24], b[24];
  weir__cfg *v;
  const char *rest;
  uint64_t x;
  int rc;

  *out = def;
  if ((rc = lookup(map, key, required, "size", &v)) != 0 || v == NULL)
    return rc;
  if ((rc = need_scalar(v, "a size", hint)) != 0)
    return rc;
  if ((rest = take_number(v->str, &x)) == NULL)
    return weir__cfg_error(v, hint, "bad size %s", echo(v, buf, sizeof(buf)));
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcmp(rest, units[i].unit) != 0)
      continue;
    if (x > UINT64_MAX / units[i].mul)
      return weir__cfg_error(v, hint, "size %s is too large", echo(v, buf, sizeof(buf)));
    x *= units[i].mul;
    if (x < min || x > max) {
      snprintf(a, sizeof(a), "%" PRIu64, min);
      snprintf(b, sizeof(b), "%" PRIu64, max);
      return range_error(v, echo(v, buf, sizeof(buf)), a, b);
    }
    *out = x;
    return 0;
  }
  return weir__cfg_error(v, hint, "bad size %s: unknown unit", echo(v, buf, sizeof(buf)));
}

int weir__cfg_duration(weir__cfg *map, const char *key, bool required, int64_t def, int64_t min,
                       int64_t max, int64_t *out) {
  static const struct {
    const char *unit;
    int64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  static const char hint[] = "write a number and a unit: 250ms, 10s, 5m, 1h, 1m30s";
  char buf[ECHO_MAX + 8], a[24], b[24];
  weir__cfg *v;
  const char *p;
  int64_t total = 0;
  int rc;

  *out = def;
  if ((rc = lookup(map, key, required, "duration", &v)) != 0 || v == NULL)
    return rc;
  if ((rc = need_scalar(v, "a duration", hint)) != 0)
    return rc;
  if (strcmp(v->str, "0") == 0)
    goto check;
  p = v->str;
  if (*p == '\0')
    return weir__cfg_error(v, hint, "bad duration %s", echo(v, buf, sizeof(buf)));
  while (*p != '\0') {
    uint64_t x;
    size_t ulen = 0, best = 0;
    int64_t mul = 0;

    if ((p = take_number(p, &x)) == NULL)
      return weir__cfg_error(v, hint, "bad duration %s", echo(v, buf, sizeof(buf)));
    while (isalpha((unsigned char)p[ulen]))
      ulen++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
      if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0) {
        mul = units[i].ms;
        best = ulen;
      }
    }
    if (mul == 0)
      return weir__cfg_error(v, hint, "bad duration %s: %s", echo(v, buf, sizeof(buf)),
                             ulen == 0 ? "missing unit" : "unknown unit");
    if (x > (uint64_t)(INT64_MAX / mul) || total > INT64_MAX - (int64_t)x * mul)
      return weir__cfg_error(v, hint, "duration %s is too long", echo(v, buf, sizeof(buf)));
    total += (int64_t)x * mul;
    p += best;
    while (*p == ' ')
      p++;
  }
check:
  if (total < min || total > max) {
    snprintf(a, sizeof(a), "%" PRId64 "ms", min);
    snprintf(b, sizeof(b), "%" PRId64 "ms", max);
    return range_error(v, echo(v, buf, sizeof(buf)), a, b);
  }
  *out = total;
  return 0;
}

int weir__cfg_enum(weir__cfg *map, const char *key, bool required, const char *const *names,
                   int def, int *out) {
  char buf[ECHO_MAX + 8], hint[256] = "one of: ";
  weir__cfg *v;
  int rc;

  *out = def;
  for (size_t i = 0; names[i] != NULL; i++) {
    size_t n = strlen(hint);

    snprintf(hint + n, sizeof(hint) - n, "%s%s", i > 0 ? ", " : "", names[i]);
  }
  if ((rc = lookup(map, key, required, "value", &v)) != 0 || v == NULL)
    return rc;
  if ((rc = need_scalar(v, "a word", hint)) != 0)
    return rc;
  for (int i = 0; names[i] != NULL; i++) {
    if (strcmp(v->str, names[i]) == 0) {
      *out = i;
      return 0;
    }
  }
  return weir__cfg_error(v, hint, "bad value %s", echo(v, buf, sizeof(buf)));
}

static int get_kind(weir__cfg *map, const char *key, bool required, enum weir__cfg_kind kind,
                    weir__cfg **out) {
  char buf[ECHO_MAX + 8];
  weir__cfg *v;
  int rc;

  *out = NULL;
  if ((rc = lookup(map, key, required, kind == WEIR__CFG_MAP ? "map" : "list", &v)) != 0 ||
      v == NULL)
    return rc;
  if (v->kind != kind)
    return weir__cfg_error(v,
                           kind == WEIR__CFG_MAP ? "indent 'key: value' lines under it"
                                                 : "write one '- item' per line under it",
                           "expected %s, got %s", kind == WEIR__CFG_MAP ? "a map" : "a list",
                           echo(v, buf, sizeof(buf)));
  *out = v;
  return 0;
}

int weir__cfg_map(weir__cfg *map, const char *key, bool required, weir__cfg **out) {
  return get_kind(map, key, required, WEIR__CFG_MAP, out);
}

int weir__cfg_seq(weir__cfg *map, const char *key, bool required, weir__cfg **out) {
  return get_kind(map, key, required, WEIR__CFG_SEQ, out);
}

/* Levenshtein distance of two short strings (capped at 64 bytes each). */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), prev[65], cur[65];

  if (la > 64 || lb > 64)
    return 99;
  for (size_t j = 0; j <= lb; j++)
    prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]), del = prev[j] + 1, ins = cur[j - 1] + 1;

      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, sizeof(prev));
  }
  return prev[lb];
}

int weir__cfg_check_unknown(weir__cfg *map) {
  if (map == NULL || map->kind != WEIR__CFG_MAP)
    return 0;
  if (map->doc->failed)
    return WEIR_EPARSE;
  for (size_t i = 0; i < map->len; i++) {
    struct entry *e = &map->entries[i];
    char hint[512] = "", *path;
    const char *best = NULL;
    size_t best_d = 3, n;
    int rc;

    if (e->used)
      continue;
    for (size_t k = 0; k < map->n_known; k++) {
      size_t d = edit_distance(e->key, map->known[k]);

      if (d < best_d) {
        best_d = d;
        best = map->known[k];
      }
    }
    if (best != NULL)
      snprintf(hint, sizeof(hint), "did you mean '%s'? ", best);
    n = strlen(hint);
    snprintf(hint + n, sizeof(hint) - n, "%s", map->n_known > 0 ? "keys here: " : "no keys here");
    for (size_t k = 0; k < map->n_known; k++) {
      n = strlen(hint);
      snprintf(hint + n, sizeof(hint) - n, "%s%s", k > 0 ? ", " : "", map->known[k]);
    }
    path = join_path(map->path, e->key, 0);
    rc = error_at(map->doc, e->line, e->col, path != NULL ? path : e->key, hint, "unknown key");
    free(path);
    return rc;
  }
  return 0;
}
