/* json.c: a bounded JSON writer for request bodies, and base64 (RFC 4648) both ways. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kinesis/json_int.h"

void weir__kjson_init(struct weir_kjson *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

void weir__kjson_free(struct weir_kjson *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

void weir__kjson_reset(struct weir_kjson *b) {
  b->len = 0;
  b->err = 0;
}

/* Makes room for n more bytes plus a NUL; returns the write position or NULL. */
static char *grow(struct weir_kjson *b, size_t n) {
  size_t need, cap;
  char *p;

  if (b->err != 0)
    return NULL;
  if (n > b->max || b->len > b->max - n) {
    b->err = WEIR_ETOOBIG;
    return NULL;
  }
  need = b->len + n + 1;
  if (need > b->cap) {
    cap = b->cap ? b->cap : 1024;
    while (cap < need)
      cap *= 2;
    if (cap > b->max + 1)
      cap = b->max + 1;
    if ((p = realloc(b->p, cap)) == NULL) {
      b->err = WEIR_ENOMEM;
      return NULL;
    }
    b->p = p;
    b->cap = cap;
  }
  return b->p + b->len;
}

static void commit(struct weir_kjson *b, size_t n) {
  b->len += n;
  b->p[b->len] = '\0';
}

void weir__kjson_raw(struct weir_kjson *b, const char *s, size_t n) {
  char *w = grow(b, n);

  if (w == NULL)
    return;
  memcpy(w, s, n);
  commit(b, n);
}

void weir__kjson_lit(struct weir_kjson *b, const char *s) {
  weir__kjson_raw(b, s, strlen(s));
}

void weir__kjson_str(struct weir_kjson *b, const uint8_t *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t out = 2;
  char *w;

  for (size_t i = 0; i < n; i++)
    out += (s[i] == '"' || s[i] == '\\') ? 2 : s[i] < 0x20 ? 6 : 1;
  if ((w = grow(b, out)) == NULL)
    return;
  *w++ = '"';
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\') {
      *w++ = '\\';
      *w++ = (char)c;
    } else if (c < 0x20) {
      memcpy(w, "\\u00", 4);
      w[4] = hex[c >> 4];
      w[5] = hex[c & 15];
      w += 6;
    } else {
      *w++ = (char)c;
    }
  }
  *w = '"';
  commit(b, out);
}

void weir__kjson_cstr(struct weir_kjson *b, const char *s) {
  weir__kjson_str(b, (const uint8_t *)s, strlen(s));
}

void weir__kjson_b64(struct weir_kjson *b, const uint8_t *data, size_t n) {
  size_t el = weir__b64_encoded_len(n);
  char *w = grow(b, el + 2);

  if (w == NULL)
    return;
  w[0] = '"';
  weir__b64_encode(data, n, w + 1);
  w[el + 1] = '"';
  commit(b, el + 2);
}

void weir__kjson_i64(struct weir_kjson *b, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);

  weir__kjson_raw(b, tmp, (size_t)n);
}

void weir__kjson_epoch_ms(struct weir_kjson *b, int64_t ms) {
  char tmp[32];
  int64_t s = ms / 1000, f = ms % 1000;
  int n;

  if (f < 0) {
    f += 1000;
    s -= 1;
  }
  n = snprintf(tmp, sizeof(tmp), "%" PRId64 ".%03d", s, (int)f);
  weir__kjson_raw(b, tmp, (size_t)n);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void weir__b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t i = 0;

  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *out++ = b64_alphabet[v >> 18];
    *out++ = b64_alphabet[(v >> 12) & 63];
    *out++ = b64_alphabet[(v >> 6) & 63];
    *out++ = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    *out++ = b64_alphabet[v >> 18];
    *out++ = b64_alphabet[(v >> 12) & 63];
    *out++ = '=';
    *out++ = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    *out++ = b64_alphabet[v >> 18];
    *out++ = b64_alphabet[(v >> 12) & 63];
    *out++ = b64_alphabet[(v >> 6) & 63];
    *out++ = '=';
  }
}

/* 0..63 for alphabet characters, 64 for anything else. */
static const uint8_t b64_rev[256] = {
#define R64 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64
    R64, R64, 64,  64,  64,  64,  64,  64, 64, 64, 64, 64, 64, 62, 64, 64, 64, 63, /* '+' '/' */
    52,  53,  54,  55,  56,  57,  58,  59, 60, 61, 64, 64, 64, 64, 64, 64,         /* '0'..'9' */
    64,  0,   1,   2,   3,   4,   5,   6,  7,  8,  9,  10, 11, 12, 13, 14,         /* 'A'.. */
    15,  16,  17,  18,  19,  20,  21,  22, 23, 24, 25, 64, 64, 64, 64, 64,         /* ..'Z' */
    64,  26,  27,  28,  29,  30,  31,  32, 33, 34, 35, 36, 37, 38, 39, 40,         /* 'a'.. */
    41,  42,  43,  44,  45,  46,  47,  48, 49, 50, 51, 64, 64, 64, 64, 64,         /* ..'z' */
    R64, R64, R64, R64, R64, R64, R64, R64
#undef R64
};

int weir__b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len) {
  const uint8_t *s = (const uint8_t *)in;
  size_t full, o = 0, pad = 0;

  if (n % 4 != 0)
    return WEIR_EPARSE;
  if (n >= 4 && s[n - 1] == '=')
    pad = s[n - 2] == '=' ? 2 : 1;
  full = n - (pad ? 4 : 0); /* characters in complete, unpadded quads */
  for (size_t i = 0; i < full; i += 4) {
    uint32_t a = b64_rev[s[i]], b = b64_rev[s[i + 1]], c = b64_rev[s[i + 2]], d = b64_rev[s[i + 3]];
    if ((a | b | c | d) & 64)
      return WEIR_EPARSE;
    uint32_t v = a << 18 | b << 12 | c << 6 | d;
    out[o++] = (uint8_t)(v >> 16);
    out[o++] = (uint8_t)(v >> 8);
    out[o++] = (uint8_t)v;
  }
  if (pad) {
    const uint8_t *q = s + full;
    uint32_t a = b64_rev[q[0]], b = b64_rev[q[1]];
    uint32_t c = pad == 1 ? b64_rev[q[2]] : 0;
    if ((a | b | c) & 64)
      return WEIR_EPARSE;
    /* The bits below the last whole byte must be zero (canonical encoding). */
    if (pad == 2 ? (b & 15) != 0 : (c & 3) != 0)
      return WEIR_EPARSE;
    out[o++] = (uint8_t)((a << 2) | (b >> 4));
    if (pad == 1)
      out[o++] = (uint8_t)((b << 4) | (c >> 2));
  }
  *out_len = o;
  return 0;
}
