/*
 * json_int.h: a small JSON scanner for the field operators (json_ops.c, event_time.c,
 * window.c). It reads fields of one JSON text in place, without building a tree and without
 * allocating: every result is a span of the input. See docs/internals/windows.md for why
 * this and not jansson on the per-record path.
 *
 * Threads: pure functions of their arguments; any thread.
 */
#ifndef WEIR_JSON_INT_H
#define WEIR_JSON_INT_H

#include <stddef.h>
#include <stdint.h>

#include "weir/analytics.h"

enum weir__json_type {
  WEIR__JSON_STRING = 1, /* span: the bytes between the quotes, still escaped */
  WEIR__JSON_NUMBER,
  WEIR__JSON_OBJECT, /* span: from '{' to '}' inclusive */
  WEIR__JSON_ARRAY,
  WEIR__JSON_TRUE,
  WEIR__JSON_FALSE,
  WEIR__JSON_NULL
};

struct weir__json_span {
  const uint8_t *ptr; /* borrowed from the document */
  size_t len;
  int type;    /* enum weir__json_type */
  int escaped; /* strings: contains a backslash escape */
};

/* A parsed field path: up to WEIR_JSON_MAX_DEPTH components of one copied string. */
struct weir__json_path {
  char buf[WEIR_JSON_MAX_PATH + 1];
  uint16_t off[WEIR_JSON_MAX_DEPTH];
  uint16_t len[WEIR_JSON_MAX_DEPTH];
  int n;
};

/* Splits "a.b.c" into components. 0, or WEIR_EINVAL (empty, too long, empty component). */
int weir__json_path_init(struct weir__json_path *p, const char *path);

/* Checks that the document is exactly one JSON object (whitespace around allowed).
 * 0 or WEIR_EPARSE. */
int weir__json_validate(const uint8_t *doc, size_t len);

/*
 * Finds the field at `path` in a document that must be an object. 0 with *out set;
 * WEIR_ENOTFOUND; WEIR_EPARSE when the document is not JSON up to the field (members after
 * it are not checked).
 */
int weir__json_find(const uint8_t *doc, size_t len, const struct weir__json_path *path,
                    struct weir__json_span *out);

/* Calls cb for each top-level member (name still escaped, without quotes). 0, WEIR_EPARSE, or
 * cb's non-zero return. */
typedef int (*weir__json_member_cb)(void *data, struct weir__json_span name,
                                    struct weir__json_span value);
int weir__json_members(const uint8_t *doc, size_t len, weir__json_member_cb cb, void *data);

/* A string span's content unescaped (UTF-8) into buf. 0 with *out_len, WEIR_ETOOBIG, or
 * WEIR_EPARSE (bad escape). Non-strings are copied as their literal text. */
int weir__json_unescape(struct weir__json_span s, uint8_t *buf, size_t cap, size_t *out_len);

/* A number span as a double. 0 or WEIR_EPARSE (not a number span). */
int weir__json_number(struct weir__json_span s, double *out);

/* Writes `s` as a JSON string (quotes included) into buf. Returns the length, or
 * WEIR_ETOOBIG. */
long weir__json_quote(const uint8_t *s, size_t len, char *buf, size_t cap);

/* Writes a double as a JSON number: integers exactly (up to 2^53), others with %.17g.
 * Returns the length (buf holds at least 32 bytes). */
int weir__json_fmt_number(double v, char *buf, size_t cap);

#endif /* WEIR_JSON_INT_H */
