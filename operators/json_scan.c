/*
 * json_scan.c: the in-place JSON scanner behind the field operators (see json_int.h). A
 * recursive-descent reader over RFC 8259 that only ever skips or points into the input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_int.h"

struct rd {
  const uint8_t *p;
  const uint8_t *end;
  int depth;
};

static void skip_ws(struct rd *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/*
 * Length of the well-formed UTF-8 sequence starting at p (before end), or 0 when there is none:
 * RFC 3629 (Unicode table 3-7), so no overlong forms, no surrogates, nothing above U+10FFFF.
 * RFC 8259 section 8.1 requires JSON text to be UTF-8; the Kinesis source's JSON deserializer
 * (jansson) refuses the same bytes, so a record is bad or good the same way at both places.
 */
static size_t utf8_seq(const uint8_t *p, const uint8_t *end) {
  uint8_t c = p[0], lo = 0x80, hi = 0xBF;
  size_t n;

  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF)
      return 0;
  return n;
}

/* At the opening quote. Leaves r->p after the closing quote. */
static int read_string(struct rd *r, struct weir__json_span *s) {
  const uint8_t *start;
  int i;

  r->p++;
  start = r->p;
  s->escaped = 0;
  while (r->p < r->end) {
    uint8_t c = *r->p;

    if (c == '"') {
      s->ptr = start;
      s->len = (size_t)(r->p - start);
      s->type = WEIR__JSON_STRING;
      r->p++;
      return 0;
    }
    if (c < 0x20)
      return WEIR_EPARSE;
    if (c >= 0x80) { /* not ASCII: a whole, valid UTF-8 sequence or a bad record */
      size_t n = utf8_seq(r->p, r->end);

      if (n == 0)
        return WEIR_EPARSE;
      r->p += n;
      continue;
    }
    if (c == '\\') {
      s->escaped = 1;
      if (++r->p >= r->end)
        return WEIR_EPARSE;
      switch (*r->p) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        break;
      case 'u':
        if (r->end - r->p < 5)
          return WEIR_EPARSE;
        for (i = 1; i <= 4; i++)
          if (hexval(r->p[i]) < 0)
            return WEIR_EPARSE;
        r->p += 4;
        break;
      default:
        return WEIR_EPARSE;
      }
    }
    r->p++;
  }
  return WEIR_EPARSE;
}

static bool is_digit(const struct rd *r) {
  return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

static int read_number(struct rd *r, struct weir__json_span *s) {
  const uint8_t *start = r->p;

  if (r->p < r->end && *r->p == '-')
    r->p++;
  if (!is_digit(r))
    return WEIR_EPARSE;
  if (*r->p == '0')
    r->p++;
  else
    while (is_digit(r))
      r->p++;
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    if (!is_digit(r))
      return WEIR_EPARSE;
    while (is_digit(r))
      r->p++;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
      r->p++;
    if (!is_digit(r))
      return WEIR_EPARSE;
    while (is_digit(r))
      r->p++;
  }
  s->ptr = start;
  s->len = (size_t)(r->p - start);
  s->type = WEIR__JSON_NUMBER;
  return 0;
}

static int read_literal(struct rd *r, const char *lit, int type, struct weir__json_span *s) {
  size_t n = strlen(lit);

  if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
    return WEIR_EPARSE;
  s->ptr = r->p;
  s->len = n;
  s->type = type;
  r->p += n;
  return 0;
}

static int read_value(struct rd *r, struct weir__json_span *s);

/* At '{' or '['. Skips the whole container. */
static int read_container(struct rd *r, struct weir__json_span *s) {
  const uint8_t *start = r->p;
  uint8_t close = *r->p == '{' ? '}' : ']';
  struct weir__json_span tmp;
  int rc, first = 1;

  if (++r->depth > WEIR_JSON_MAX_DEPTH)
    return WEIR_EPARSE;
  r->p++;
  for (;;) {
    skip_ws(r);
    if (r->p >= r->end)
      return WEIR_EPARSE;
    if (*r->p == close && first)
      break;
    if (!first) {
      if (*r->p == close)
        break;
      if (*r->p != ',')
        return WEIR_EPARSE;
      r->p++;
      skip_ws(r);
    }
    first = 0;
    if (close == '}') {
      if (r->p >= r->end || *r->p != '"' || (rc = read_string(r, &tmp)) != 0)
        return WEIR_EPARSE;
      skip_ws(r);
      if (r->p >= r->end || *r->p != ':')
        return WEIR_EPARSE;
      r->p++;
    }
    if ((rc = read_value(r, &tmp)) != 0)
      return rc;
  }
  r->p++;
  r->depth--;
  s->ptr = start;
  s->len = (size_t)(r->p - start);
  s->type = close == '}' ? WEIR__JSON_OBJECT : WEIR__JSON_ARRAY;
  return 0;
}

static int read_value(struct rd *r, struct weir__json_span *s) {
  skip_ws(r);
  if (r->p >= r->end)
    return WEIR_EPARSE;
  s->escaped = 0;
  switch (*r->p) {
  case '"':
    return read_string(r, s);
  case '{':
  case '[':
    return read_container(r, s);
  case 't':
    return read_literal(r, "true", WEIR__JSON_TRUE, s);
  case 'f':
    return read_literal(r, "false", WEIR__JSON_FALSE, s);
  case 'n':
    return read_literal(r, "null", WEIR__JSON_NULL, s);
  default:
    return read_number(r, s);
  }
}

int weir__json_path_init(struct weir__json_path *p, const char *path) {
  size_t len, i, start = 0;

  if (path == NULL || (len = strlen(path)) == 0 || len > WEIR_JSON_MAX_PATH)
    return WEIR_EINVAL;
  memcpy(p->buf, path, len + 1);
  p->n = 0;
  for (i = 0; i <= len; i++) {
    if (i < len && path[i] != '.')
      continue;
    if (i == start || p->n == WEIR_JSON_MAX_DEPTH)
      return WEIR_EINVAL;
    p->off[p->n] = (uint16_t)start;
    p->len[p->n] = (uint16_t)(i - start);
    p->n++;
    start = i + 1;
  }
  return 0;
}

int weir__json_validate(const uint8_t *doc, size_t len) {
  struct rd r = {doc, doc + len, 0};
  struct weir__json_span s;

  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{' || read_container(&r, &s) != 0)
    return WEIR_EPARSE;
  skip_ws(&r);
  return r.p == r.end ? 0 : WEIR_EPARSE;
}

/* Compares a member name span (maybe escaped) with a path component. */
static bool name_eq(struct weir__json_span name, const char *comp, size_t comp_len) {
  uint8_t buf[WEIR_JSON_MAX_PATH];
  size_t n;

  if (!name.escaped)
    return name.len == comp_len && memcmp(name.ptr, comp, comp_len) == 0;
  if (name.len > 6 * WEIR_JSON_MAX_PATH || weir__json_unescape(name, buf, sizeof(buf), &n) != 0)
    return false;
  return n == comp_len && memcmp(buf, comp, comp_len) == 0;
}

int weir__json_members(const uint8_t *doc, size_t len, weir__json_member_cb cb, void *data) {
  struct rd r = {doc, doc + len, 1};
  struct weir__json_span name, val;
  int rc, first = 1;

  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{')
    return WEIR_EPARSE;
  r.p++;
  for (;;) {
    skip_ws(&r);
    if (r.p >= r.end)
      return WEIR_EPARSE;
    if (*r.p == '}')
      return 0;
    if (!first) {
      if (*r.p != ',')
        return WEIR_EPARSE;
      r.p++;
      skip_ws(&r);
    }
    first = 0;
    if (r.p >= r.end || *r.p != '"' || read_string(&r, &name) != 0)
      return WEIR_EPARSE;
    skip_ws(&r);
    if (r.p >= r.end || *r.p != ':')
      return WEIR_EPARSE;
    r.p++;
    if ((rc = read_value(&r, &val)) != 0)
      return rc;
    if ((rc = cb(data, name, val)) != 0)
      return rc;
  }
}

struct find_ctx {
  const struct weir__json_path *path;
  int level;
  struct weir__json_span *out;
};

/* Found is signalled by returning 1 from the member callback. */
static int find_cb(void *data, struct weir__json_span name, struct weir__json_span val) {
  struct find_ctx *f = data;
  const struct weir__json_path *p = f->path;

  if (!name_eq(name, p->buf + p->off[f->level], p->len[f->level]))
    return 0;
  if (f->level + 1 == p->n) {
    *f->out = val;
    return 1;
  }
  if (val.type != WEIR__JSON_OBJECT)
    return 2; /* the path goes through a non-object: not found */
  f->level++;
  {
    int rc = weir__json_members(val.ptr, val.len, find_cb, f);

    return rc == 0 ? 2 : rc;
  }
}

int weir__json_find(const uint8_t *doc, size_t len, const struct weir__json_path *path,
                    struct weir__json_span *out) {
  struct find_ctx f = {path, 0, out};
  int rc = weir__json_members(doc, len, find_cb, &f);

  if (rc == 1)
    return 0;
  if (rc == 0 || rc == 2)
    return WEIR_ENOTFOUND;
  return WEIR_EPARSE;
}

static size_t put_utf8(uint8_t *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (uint8_t)(0xC0 | (cp >> 6));
    o[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | (cp >> 12));
    o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (uint8_t)(0xF0 | (cp >> 18));
  o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

static unsigned hex4(const uint8_t *p) {
  return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

int weir__json_unescape(struct weir__json_span s, uint8_t *buf, size_t cap, size_t *out_len) {
  const uint8_t *p = s.ptr, *end = s.ptr + s.len;
  size_t n = 0;

  if (s.type != WEIR__JSON_STRING || !s.escaped) {
    if (s.len > cap)
      return WEIR_ETOOBIG;
    if (s.len)
      memcpy(buf, s.ptr, s.len);
    *out_len = s.len;
    return 0;
  }
  while (p < end) {
    uint8_t c = *p++;
    unsigned cp;

    if (cap - n < 4)
      return WEIR_ETOOBIG;
    if (c != '\\') {
      buf[n++] = c;
      continue;
    }
    if (p >= end)
      return WEIR_EPARSE;
    c = *p++;
    switch (c) {
    case 'b':
      buf[n++] = '\b';
      break;
    case 'f':
      buf[n++] = '\f';
      break;
    case 'n':
      buf[n++] = '\n';
      break;
    case 'r':
      buf[n++] = '\r';
      break;
    case 't':
      buf[n++] = '\t';
      break;
    case 'u':
      if (end - p < 4)
        return WEIR_EPARSE;
      cp = hex4(p);
      p += 4;
      /* A surrogate pair; a lone surrogate becomes U+FFFD. */
      if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
        unsigned lo = hex4(p + 2);

        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
      }
      if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD;
      n += put_utf8(buf + n, cp);
      break;
    default:
      buf[n++] = c; /* " \ / */
      break;
    }
  }
  *out_len = n;
  return 0;
}

int weir__json_number(struct weir__json_span s, double *out) {
  char tmp[64];

  if (s.type != WEIR__JSON_NUMBER || s.len >= sizeof(tmp))
    return WEIR_EPARSE;
  memcpy(tmp, s.ptr, s.len);
  tmp[s.len] = '\0';
  *out = strtod(tmp, NULL);
  return 0;
}

long weir__json_quote(const uint8_t *s, size_t len, char *buf, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  size_t i, n = 0;

  if (cap < 2)
    return WEIR_ETOOBIG;
  buf[n++] = '"';
  for (i = 0; i < len; i++) {
    uint8_t c = s[i];

    if (cap - n < 8)
      return WEIR_ETOOBIG;
    if (c == '"' || c == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)c;
    } else if (c < 0x20) {
      buf[n++] = '\\';
      buf[n++] = 'u';
      buf[n++] = '0';
      buf[n++] = '0';
      buf[n++] = hex[c >> 4];
      buf[n++] = hex[c & 15];
    } else {
      buf[n++] = (char)c;
    }
  }
  buf[n++] = '"';
  return (long)n;
}

int weir__json_fmt_number(double v, char *buf, size_t cap) {
  if (!isfinite(v))
    return snprintf(buf, cap, "null");
  if (v == floor(v) && fabs(v) <= 9007199254740992.0)
    return snprintf(buf, cap, "%lld", (long long)v);
  return snprintf(buf, cap, "%.17g", v);
}
