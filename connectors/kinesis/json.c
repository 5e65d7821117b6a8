/* json.c: a bounded JSON writer for request bodies, and base64 (RFC 4648) both ways. */
#include <inttypes.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kinesis/json_int.h"

void weir__kjson_init(struct weir_kjson *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

void weir__kjson_init_head(struct weir_kjson *b, size_t max, size_t head) {
  weir__kjson_init(b, max);
  b->head = head;
}

void weir__kjson_free(struct weir_kjson *b) {
  if (b->p != NULL)
    free(b->p - b->head);
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
    if ((p = realloc(b->p != NULL ? b->p - b->head : NULL, b->head + cap)) == NULL) {
      b->err = WEIR_ENOMEM;
      return NULL;
    }
    b->p = p + b->head;
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

/* Bytes at the start of s[0..n) that JSON takes as they are (no '"', '\\' or control
 * character), eight at a time: partition keys are almost always all of them. */
static size_t plain_prefix(const uint8_t *s, size_t n) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  size_t i = 0;

  for (; i + 8 <= n; i += 8) {
    uint64_t x, q, b;

    memcpy(&x, s + i, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    /* A byte below 0x20, or equal to '"' or '\\', sets its high bit here (exact for bytes
     * without their own high bit, which are never escaped: ~x masks them out). */
    if ((((x - ones * 0x20) | (q - ones) | (b - ones)) & ~x & highs) != 0)
      break;
  }
  for (; i < n; i++)
    if (s[i] == '"' || s[i] == '\\' || s[i] < 0x20)
      break;
  return i;
}

/* Length of the JSON string literal (quotes included) of s[0..n). */
static size_t str_len(const uint8_t *s, size_t n) {
  size_t i = plain_prefix(s, n), out = 2 + i;

  for (; i < n; i++)
    out += (s[i] == '"' || s[i] == '\\') ? 2 : s[i] < 0x20 ? 6 : 1;
  return out;
}

/* Writes the JSON string literal of s[0..n) (str_len(s, n) bytes) at w. */
static void str_write(char *w, const uint8_t *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = plain_prefix(s, n);

  *w++ = '"';
  memcpy(w, s, i);
  w += i;
  for (; i < n; i++) {
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
}

void weir__kjson_str(struct weir_kjson *b, const uint8_t *s, size_t n) {
  size_t out = str_len(s, n);
  char *w;

  if ((w = grow(b, out)) == NULL)
    return;
  str_write(w, s, n);
  commit(b, out);
}

void weir__kjson_put_entry(struct weir_kjson *b, bool first, weir_buf data, weir_buf key,
                           const char *ehk) {
  static const char d[] = ",{\"Data\":\"",
                    k[] = "\",\"PartitionKey\":", h[] = ",\"ExplicitHashKey\":\"";
  size_t dl = sizeof(d) - 1 - (first ? 1 : 0), el = weir__b64_encoded_len(data.len),
         kl = str_len(key.ptr, key.len), hl = ehk != NULL ? strlen(ehk) : 0;
  size_t total = dl + el + sizeof(k) - 1 + kl + (ehk != NULL ? sizeof(h) - 1 + hl + 1 : 0) + 1;
  char *w = grow(b, total);

  if (w == NULL)
    return;
  memcpy(w, d + (first ? 1 : 0), dl);
  w += dl;
  weir__b64_encode(data.ptr, data.len, w);
  w += el;
  memcpy(w, k, sizeof(k) - 1);
  w += sizeof(k) - 1;
  str_write(w, key.ptr, key.len);
  w += kl;
  if (ehk != NULL) {
    memcpy(w, h, sizeof(h) - 1);
    w += sizeof(h) - 1;
    memcpy(w, ehk, hl);
    w += hl;
    *w++ = '"';
  }
  *w = '}';
  commit(b, total);
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

/* The base64 character of a 6-bit value, as a constant expression. */
#define B64C(x)                                                                                    \
  (char)((x) < 26    ? 'A' + (x)                                                                   \
         : (x) < 52  ? 'a' + (x)-26                                                                \
         : (x) < 62  ? '0' + (x)-52                                                                \
         : (x) == 62 ? '+'                                                                         \
                     : '/')
#define B64P(v)                                                                                    \
  { B64C((v) >> 6), B64C((v)&63) }
#define B64P4(v) B64P(v), B64P((v) + 1), B64P((v) + 2), B64P((v) + 3)
#define B64P16(v) B64P4(v), B64P4((v) + 4), B64P4((v) + 8), B64P4((v) + 12)
#define B64P64(v) B64P16(v), B64P16((v) + 16), B64P16((v) + 32), B64P16((v) + 48)
#define B64P256(v) B64P64(v), B64P64((v) + 64), B64P64((v) + 128), B64P64((v) + 192)
#define B64P1024(v) B64P256(v), B64P256((v) + 256), B64P256((v) + 512), B64P256((v) + 768)

/* The two base64 characters of every 12-bit value (8 KiB, stays in L1 while a request is
 * written): one lookup per two characters instead of one per character. */
static const char b64_pairs[4096][2] = {B64P1024(0), B64P1024(1024), B64P1024(2048),
                                        B64P1024(3072)};

#undef B64P1024
#undef B64P256
#undef B64P64
#undef B64P16
#undef B64P4
#undef B64P
#undef B64C

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B64_SSSE3 1
/*
 * Twelve bytes into sixteen characters per step, with SSSE3 (the method of W. Muła and
 * D. Lemire, "Faster Base64 Encoding and Decoding Using AVX2 Instructions", 2018, on 128-bit
 * registers): a shuffle puts each 3-byte group in a 32-bit lane as bytes (b1, b0, b2, b1); two
 * masked 16-bit multiplies move its four 6-bit values to the lane's four bytes; a second
 * shuffle picks, per value, the offset that makes it its character ('A' - 0 for 0..25,
 * 'a' - 26 for 26..51, '0' - 52 for 52..61, '+' - 62, '/' - 63). Each step loads 16 bytes and
 * uses 12, so it runs while 16 remain. Returns the bytes consumed (a multiple of 12).
 */
__attribute__((target("ssse3"))) static size_t b64_encode_ssse3(const uint8_t *in, size_t n,
                                                                char *out) {
  const __m128i spread = _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1);
  const __m128i offsets =
      _mm_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
  size_t i = 0;

  for (; i + 16 <= n; i += 12, out += 16) {
    __m128i v = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(in + i)), spread);
    /* values 0 and 2 of each lane (bits 10..15 of the low half, 6..11 of the high half) */
    __m128i a =
        _mm_mulhi_epu16(_mm_and_si128(v, _mm_set1_epi32(0x0fc0fc00)), _mm_set1_epi32(0x04000040));
    /* values 1 and 3 (bits 4..9 of the low half, 0..5 of the high half) */
    __m128i b =
        _mm_mullo_epi16(_mm_and_si128(v, _mm_set1_epi32(0x003f03f0)), _mm_set1_epi32(0x01000010));
    __m128i x = _mm_or_si128(a, b);
    /* offset index: 0 for 0..25, 1 for 26..51, 2..13 for 52..63 */
    __m128i k =
        _mm_sub_epi8(_mm_subs_epu8(x, _mm_set1_epi8(51)), _mm_cmpgt_epi8(x, _mm_set1_epi8(25)));

    _mm_storeu_si128((__m128i *)(void *)out, _mm_add_epi8(x, _mm_shuffle_epi8(offsets, k)));
  }
  return i;
}
#endif

void weir__b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t i = 0;

#ifdef B64_SSSE3
  if (n >= 16 && __builtin_cpu_supports("ssse3")) {
    i = b64_encode_ssse3(in, n, out);
    out += i / 3 * 4;
  }
#endif

  /* Six bytes (48 bits, eight characters) per step. */
  for (; i + 6 <= n; i += 6) {
    uint64_t v = (uint64_t)in[i] << 40 | (uint64_t)in[i + 1] << 32 | (uint64_t)in[i + 2] << 24 |
                 (uint64_t)in[i + 3] << 16 | (uint64_t)in[i + 4] << 8 | in[i + 5];
    memcpy(out, b64_pairs[v >> 36], 2);
    memcpy(out + 2, b64_pairs[(v >> 24) & 0xfff], 2);
    memcpy(out + 4, b64_pairs[(v >> 12) & 0xfff], 2);
    memcpy(out + 6, b64_pairs[v & 0xfff], 2);
    out += 8;
  }
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    memcpy(out, b64_pairs[v >> 12], 2);
    memcpy(out + 2, b64_pairs[v & 0xfff], 2);
    out += 4;
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
