/*
 * records.c: parsing the data-plane responses (GetRecords, PutRecords) in place.
 *
 * A GetRecords response can be 10 MiB of base64 in up to 10000 records. A general JSON parser
 * would copy every string into its own allocation (several mallocs per record) before the
 * base64 could be decoded; instead this scanner walks the response buffer once, decodes each
 * Data string straight from the buffer into the record arena, copies partition keys and
 * sequence numbers next to it, and skips members it does not know. The only allocations are the
 * arena and record array, grown to the largest response seen and then reused.
 *
 * PutRecords responses (500 result entries) are scanned the same way, straight into the
 * caller's result array: a JSON tree of them costs more CPU than the rest of the call.
 *
 * The scanner accepts RFC 8259 JSON (any member order, unknown members, null for absent,
 * escapes in any string) and rejects anything else with WEIR_EPARSE. Nesting of skipped values
 * is bounded by SKIP_DEPTH_MAX.
 */
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "connectors/kinesis/client_int.h"
#include "runtime/log_int.h"

/* Deepest nesting accepted inside a skipped (unknown) member. */
#define SKIP_DEPTH_MAX 64

struct scan {
  const char *p;
  const char *end;
};

/* A string token: the raw bytes between the quotes, and whether they hold escapes. */
struct str {
  const char *s;
  size_t len;
  bool escaped;
};

static void ws(struct scan *sc) {
  while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
    sc->p++;
}

static bool eat(struct scan *sc, char c) {
  ws(sc);
  if (sc->p < sc->end && *sc->p == c) {
    sc->p++;
    return true;
  }
  return false;
}

static bool peek(struct scan *sc, char c) {
  ws(sc);
  return sc->p < sc->end && *sc->p == c;
}

static bool literal(struct scan *sc, const char *lit, size_t n) {
  ws(sc);
  if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0)
    return false;
  sc->p += n;
  return true;
}

static int string(struct scan *sc, struct str *out) {
  const char *p;

  if (!eat(sc, '"'))
    return WEIR_EPARSE;
  out->s = p = sc->p;
  out->escaped = false;
  for (;;) {
    /* Fast path: scan to the next quote or backslash. */
    while (p < sc->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
      p++;
    if (p >= sc->end || (unsigned char)*p < 0x20)
      return WEIR_EPARSE;
    if (*p == '"')
      break;
    out->escaped = true;
    if (++p >= sc->end)
      return WEIR_EPARSE;
    p++; /* the escaped character; \uXXXX digits are plain characters to this loop */
  }
  out->len = (size_t)(p - out->s);
  sc->p = p + 1;
  return 0;
}

static int hex4(const char *s, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    *v <<= 4;
    if (c >= '0' && c <= '9')
      *v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      *v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      *v |= (unsigned)(c - 'A' + 10);
    else
      return WEIR_EPARSE;
  }
  return 0;
}

/* Unescapes a string token into out (at most t->len bytes: unescaping never lengthens). */
static int unescape(const struct str *t, uint8_t *out, size_t *out_len) {
  const char *s = t->s, *e = t->s + t->len;
  size_t o = 0;

  if (!t->escaped) {
    memcpy(out, s, t->len);
    *out_len = t->len;
    return 0;
  }
  while (s < e) {
    unsigned cp, lo;
    if (*s != '\\') {
      out[o++] = (uint8_t)*s++;
      continue;
    }
    s++;
    switch (*s++) {
    case '"':
      out[o++] = '"';
      continue;
    case '\\':
      out[o++] = '\\';
      continue;
    case '/':
      out[o++] = '/';
      continue;
    case 'b':
      out[o++] = '\b';
      continue;
    case 'f':
      out[o++] = '\f';
      continue;
    case 'n':
      out[o++] = '\n';
      continue;
    case 'r':
      out[o++] = '\r';
      continue;
    case 't':
      out[o++] = '\t';
      continue;
    case 'u':
      break;
    default:
      return WEIR_EPARSE;
    }
    if (e - s < 4 || hex4(s, &cp) != 0)
      return WEIR_EPARSE;
    s += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (e - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) != 0 || lo < 0xdc00 ||
          lo > 0xdfff)
        return WEIR_EPARSE;
      s += 6;
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
      return WEIR_EPARSE;
    }
    if (cp < 0x80) {
      out[o++] = (uint8_t)cp;
    } else if (cp < 0x800) {
      out[o++] = (uint8_t)(0xc0 | cp >> 6);
      out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out[o++] = (uint8_t)(0xe0 | cp >> 12);
      out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
      out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
    } else {
      out[o++] = (uint8_t)(0xf0 | cp >> 18);
      out[o++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
      out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
      out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
    }
  }
  *out_len = o;
  return 0;
}

/*
 * A JSON number (RFC 8259 grammar), without strtod (whose decimal point follows the host
 * program's locale). *integral says whether it has no fraction or exponent, and then *i is its
 * exact value; *ms is the value times 1000, rounded (epoch seconds -> milliseconds), exact for
 * up to 18 significant digits and saturated at the int64 range.
 */
static int number(struct scan *sc, int64_t *i, bool *integral, int64_t *ms) {
  const char *p, *e = sc->end;
  uint64_t mant = 0;
  int digits = 0, scale = 0, exp = 0;
  bool neg = false, exp_neg = false;

  ws(sc);
  p = sc->p;
  if (p < e && *p == '-') {
    neg = true;
    p++;
  }
  if (p >= e || *p < '0' || *p > '9' || (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9'))
    return WEIR_EPARSE;
  for (; p < e && *p >= '0' && *p <= '9'; p++) {
    if (digits < 18) {
      mant = mant * 10 + (uint64_t)(*p - '0');
      digits += mant != 0;
    } else {
      scale++; /* digits past 18 only shift the magnitude */
    }
  }
  *integral = true;
  if (p < e && *p == '.') {
    *integral = false;
    if (++p >= e || *p < '0' || *p > '9')
      return WEIR_EPARSE;
    for (; p < e && *p >= '0' && *p <= '9'; p++) {
      if (digits < 18) {
        mant = mant * 10 + (uint64_t)(*p - '0');
        digits += mant != 0;
        scale--;
      }
    }
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    *integral = false;
    p++;
    if (p < e && (*p == '+' || *p == '-'))
      exp_neg = *p++ == '-';
    if (p >= e || *p < '0' || *p > '9')
      return WEIR_EPARSE;
    for (; p < e && *p >= '0' && *p <= '9'; p++)
      if (exp < 10000)
        exp = exp * 10 + (*p - '0');
  }
  sc->p = p;
  scale += exp_neg ? -exp : exp;
  if (*integral) {
    if (scale != 0 || mant > (uint64_t)INT64_MAX)
      return WEIR_EPARSE; /* an integer beyond int64: no Kinesis integer is */
    *i = neg ? -(int64_t)mant : (int64_t)mant;
  } else {
    *i = 0;
  }
  /* ms = mant * 10^(scale + 3), rounded half away from zero. */
  scale += 3;
  if (mant == 0) {
    *ms = 0;
    return 0;
  }
  if (scale >= 0) {
    for (; scale > 0 && mant <= (uint64_t)INT64_MAX / 10; scale--)
      mant *= 10;
    if (scale > 0 || mant > (uint64_t)INT64_MAX)
      mant = (uint64_t)INT64_MAX;
  } else if (scale < -19) {
    mant = 0;
  } else {
    uint64_t div = 1;
    for (; scale < 0; scale++)
      div *= 10;
    mant = (mant + div / 2) / div;
  }
  *ms = neg ? -(int64_t)mant : (int64_t)mant;
  return 0;
}

static int skip_value(struct scan *sc, int depth) {
  struct str t;
  int64_t i, ms;
  bool integral;

  if (depth > SKIP_DEPTH_MAX)
    return WEIR_EPARSE;
  ws(sc);
  if (sc->p >= sc->end)
    return WEIR_EPARSE;
  switch (*sc->p) {
  case '"':
    return string(sc, &t);
  case '{':
    sc->p++;
    if (eat(sc, '}'))
      return 0;
    do {
      if (string(sc, &t) != 0 || !eat(sc, ':') || skip_value(sc, depth + 1) != 0)
        return WEIR_EPARSE;
    } while (eat(sc, ','));
    return eat(sc, '}') ? 0 : WEIR_EPARSE;
  case '[':
    sc->p++;
    if (eat(sc, ']'))
      return 0;
    do {
      if (skip_value(sc, depth + 1) != 0)
        return WEIR_EPARSE;
    } while (eat(sc, ','));
    return eat(sc, ']') ? 0 : WEIR_EPARSE;
  case 't':
    return literal(sc, "true", 4) ? 0 : WEIR_EPARSE;
  case 'f':
    return literal(sc, "false", 5) ? 0 : WEIR_EPARSE;
  case 'n':
    return literal(sc, "null", 4) ? 0 : WEIR_EPARSE;
  default:
    return number(sc, &i, &integral, &ms);
  }
}

static bool key_is(const struct str *k, const char *name) {
  size_t n = strlen(name);
  return !k->escaped && k->len == n && memcmp(k->s, name, n) == 0;
}

/* A string member that may be null: *present says which. */
static int opt_string(struct scan *sc, struct str *t, bool *present) {
  if (literal(sc, "null", 4)) {
    *present = false;
    return 0;
  }
  *present = true;
  return string(sc, t);
}

/* Copies a short string token (unescaped, NUL-terminated) into a fixed buffer. */
static int copy_small(const struct str *t, char *dst, size_t cap) {
  size_t n;

  if (t->len >= cap)
    return WEIR_EPARSE;
  if (unescape(t, (uint8_t *)dst, &n) != 0)
    return WEIR_EPARSE;
  dst[n] = '\0';
  return 0;
}

static int hash_range(struct scan *sc, struct weir_kinesis_hash_range *r) {
  struct str k, v;

  if (!eat(sc, '{'))
    return WEIR_EPARSE;
  if (eat(sc, '}'))
    return 0;
  do {
    if (string(sc, &k) != 0 || !eat(sc, ':'))
      return WEIR_EPARSE;
    if (key_is(&k, "StartingHashKey") || key_is(&k, "EndingHashKey")) {
      char *dst = key_is(&k, "StartingHashKey") ? r->start : r->end;
      if (string(sc, &v) != 0 || copy_small(&v, dst, sizeof(r->start)) != 0)
        return WEIR_EPARSE;
    } else if (skip_value(sc, 0) != 0) {
      return WEIR_EPARSE;
    }
  } while (eat(sc, ','));
  return eat(sc, '}') ? 0 : WEIR_EPARSE;
}

static int child_shard(struct scan *sc, struct weir_kinesis_child_shard *ch) {
  struct str k, v;
  size_t np = 0;

  memset(ch, 0, sizeof(*ch));
  if (!eat(sc, '{'))
    return WEIR_EPARSE;
  if (eat(sc, '}'))
    return WEIR_EPARSE;
  do {
    if (string(sc, &k) != 0 || !eat(sc, ':'))
      return WEIR_EPARSE;
    if (key_is(&k, "ShardId")) {
      if (string(sc, &v) != 0 || copy_small(&v, ch->shard_id, sizeof(ch->shard_id)) != 0)
        return WEIR_EPARSE;
    } else if (key_is(&k, "HashKeyRange")) {
      if (hash_range(sc, &ch->hash_range) != 0)
        return WEIR_EPARSE;
    } else if (key_is(&k, "ParentShards") && eat(sc, '[')) {
      if (!eat(sc, ']')) {
        do {
          if (string(sc, &v) != 0)
            return WEIR_EPARSE;
          if (np < 2 && copy_small(&v, ch->parents[np++], sizeof(ch->parents[0])) != 0)
            return WEIR_EPARSE;
        } while (eat(sc, ','));
        if (!eat(sc, ']'))
          return WEIR_EPARSE;
      }
    } else if (skip_value(sc, 0) != 0) {
      return WEIR_EPARSE;
    }
  } while (eat(sc, ','));
  if (!eat(sc, '}') || ch->shard_id[0] == '\0')
    return WEIR_EPARSE;
  return 0;
}

void weir__kinesis_records_init(struct weir_kinesis_records *r) {
  memset(r, 0, sizeof(*r));
  r->millis_behind_latest = -1;
}

void weir__kinesis_records_free(struct weir_kinesis_records *r) {
  free(r->recs);
  free(r->arena);
  weir__kinesis_records_init(r);
}

/* Grows the record array (bounded by the API's 10000) and the arena (by the response size). */
static int reserve(struct weir_kinesis_records *r, size_t n, size_t arena) {
  if (n > r->recs_cap) {
    size_t cap = r->recs_cap ? r->recs_cap * 2 : 64;
    struct weir_kinesis_record *p;
    if (cap < n)
      cap = n;
    if (cap > WEIR_KINESIS_GET_MAX_RECORDS)
      cap = WEIR_KINESIS_GET_MAX_RECORDS;
    if (n > cap)
      return WEIR_EPARSE; /* more records than GetRecords can return */
    if ((p = realloc(r->recs, cap * sizeof(*p))) == NULL)
      return WEIR_ENOMEM;
    r->recs = p;
    r->recs_cap = cap;
  }
  if (arena > r->arena_cap) {
    uint8_t *p = realloc(r->arena, arena);
    if (p == NULL)
      return WEIR_ENOMEM;
    r->arena = p;
    r->arena_cap = arena;
  }
  return 0;
}

/*
 * One record object. Everything it stores in the arena is shorter than its text in the
 * response (base64 shrinks by 3/4, unescaping never lengthens, a sequence number's NUL takes
 * the place of a quote), so with an arena as large as the response it cannot overflow.
 */
static int record(struct scan *sc, struct weir_kinesis_records *r, size_t *pos) {
  struct weir_kinesis_record *rec = &r->recs[r->n];
  struct str k, v, data = {NULL, 0, false};
  bool have_data = false, have_key = false, have_seq = false, present;
  uint8_t *a = r->arena;
  size_t n;

  rec->arrival_ms = WEIR_NO_TIMESTAMP;
  rec->kms_encrypted = false;
  if (!eat(sc, '{'))
    return WEIR_EPARSE;
  if (eat(sc, '}'))
    return WEIR_EPARSE;
  do {
    if (string(sc, &k) != 0 || !eat(sc, ':'))
      return WEIR_EPARSE;
    if (key_is(&k, "Data")) {
      if (string(sc, &data) != 0)
        return WEIR_EPARSE;
      have_data = true;
    } else if (key_is(&k, "PartitionKey")) {
      if (string(sc, &v) != 0 || unescape(&v, a + *pos, &n) != 0)
        return WEIR_EPARSE;
      rec->partition_key = (weir_buf){a + *pos, n};
      *pos += n;
      have_key = true;
    } else if (key_is(&k, "SequenceNumber")) {
      if (string(sc, &v) != 0 || v.escaped || v.len == 0 || v.len > WEIR_KINESIS_SEQ_MAX)
        return WEIR_EPARSE;
      memcpy(a + *pos, v.s, v.len);
      a[*pos + v.len] = '\0';
      rec->sequence_number = (const char *)a + *pos;
      *pos += v.len + 1;
      have_seq = true;
    } else if (key_is(&k, "ApproximateArrivalTimestamp")) {
      int64_t i;
      bool integral;
      if (literal(sc, "null", 4))
        continue;
      if (number(sc, &i, &integral, &rec->arrival_ms) != 0)
        return WEIR_EPARSE;
    } else if (key_is(&k, "EncryptionType")) {
      if (opt_string(sc, &v, &present) != 0)
        return WEIR_EPARSE;
      rec->kms_encrypted = present && v.len == 3 && memcmp(v.s, "KMS", 3) == 0;
    } else if (skip_value(sc, 0) != 0) {
      return WEIR_EPARSE;
    }
  } while (eat(sc, ','));
  if (!eat(sc, '}') || !have_data || !have_key || !have_seq)
    return WEIR_EPARSE;
  /* Data last: decoded straight from the response into the arena. Standard base64 has no
   * character JSON must escape; an encoder may still write "\/", so unescape first then. */
  if (data.escaped) {
    size_t raw;
    if (unescape(&data, a + *pos, &raw) != 0 ||
        weir__b64_decode((const char *)a + *pos, raw, a + *pos, &n) != 0)
      return WEIR_EPARSE;
  } else if (weir__b64_decode(data.s, data.len, a + *pos, &n) != 0) {
    return WEIR_EPARSE;
  }
  rec->data = (weir_buf){a + *pos, n};
  *pos += n;
  return 0;
}

int weir__kinesis_parse_get_records(const uint8_t *body, size_t len,
                                    struct weir_kinesis_records *out) {
  struct scan sc = {(const char *)body, (const char *)body + len};
  struct str k, v;
  bool have_records = false, present;
  size_t pos = 0;
  int rc;

  out->n = 0;
  out->n_children = 0;
  out->has_next = false;
  out->next_iterator[0] = '\0';
  out->millis_behind_latest = -1;
  /* The arena holds at most the response's length (see record()); +1 for an empty body. */
  if ((rc = reserve(out, 0, len + 1)) != 0)
    return rc;
  if (!eat(&sc, '{'))
    return WEIR_EPARSE;
  if (!eat(&sc, '}')) {
    do {
      if (string(&sc, &k) != 0 || !eat(&sc, ':'))
        goto bad;
      if (key_is(&k, "Records")) {
        if (!eat(&sc, '['))
          goto bad;
        have_records = true;
        if (eat(&sc, ']'))
          continue;
        do {
          if ((rc = reserve(out, out->n + 1, len + 1)) != 0)
            goto fail;
          if (record(&sc, out, &pos) != 0)
            goto bad;
          out->n++;
        } while (eat(&sc, ','));
        if (!eat(&sc, ']'))
          goto bad;
      } else if (key_is(&k, "NextShardIterator")) {
        if (opt_string(&sc, &v, &present) != 0)
          goto bad;
        if (present) {
          if (copy_small(&v, out->next_iterator, sizeof(out->next_iterator)) != 0)
            goto bad;
          out->has_next = true;
        }
      } else if (key_is(&k, "MillisBehindLatest")) {
        int64_t i, ms;
        bool integral;
        if (literal(&sc, "null", 4))
          continue;
        if (number(&sc, &i, &integral, &ms) != 0 || !integral)
          goto bad;
        out->millis_behind_latest = i;
      } else if (key_is(&k, "ChildShards") && peek(&sc, '[')) {
        sc.p++;
        if (eat(&sc, ']'))
          continue;
        do {
          if (out->n_children >= WEIR_KINESIS_CHILD_SHARDS_MAX ||
              child_shard(&sc, &out->children[out->n_children]) != 0)
            goto bad;
          out->n_children++;
        } while (eat(&sc, ','));
        if (!eat(&sc, ']'))
          goto bad;
      } else if (skip_value(&sc, 0) != 0) {
        goto bad;
      }
    } while (eat(&sc, ','));
    if (!eat(&sc, '}'))
      goto bad;
  }
  ws(&sc);
  if (sc.p != sc.end || !have_records)
    goto bad;
  WEIR_ASSERT(pos <= out->arena_cap);
  return 0;

bad:
  rc = WEIR_EPARSE;
fail:
  out->n = 0;
  out->n_children = 0;
  out->has_next = false;
  return rc;
}

/*
 * The end of a string whose opening quote is just before p: its closing quote, or NULL when it
 * holds an escape or a control character or is not closed (the general path decides those).
 * The string's first bytes are copied to dst[0..cap) on the way (cap may be 0), NUL-terminated
 * after at most cap - 1 of them; bytes of dst past the NUL may be overwritten.
 *
 * Without SSE2, eight bytes at a time: a word holds none of '"', '\\' and bytes below 0x20 when
 * no byte of w ^ '"', w ^ '\\' or w - 0x20 borrows. A borrow can only mark bytes above a real
 * match, so the lowest marked byte is the first match (the byte loop finds it on big-endian
 * hosts).
 */
static inline const char *plain_string_copy(const char *p, const char *e, char *dst, size_t cap) {
  const char *s = p;
  size_t stored = 0, len, keep;

#if defined(__SSE2__)
  /* Sixteen bytes at a time where SSE2 is there (every x86-64). */
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);

  for (; e - p >= 16; p += 16) {
    __m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, bslash)),
                             _mm_cmpeq_epi8(_mm_min_epu8(w, ctl), w));
    unsigned bits = (unsigned)_mm_movemask_epi8(m);

    if (stored + 16 <= cap) {
      /* may run past the quote: the NUL below ends the string */
      _mm_storeu_si128((__m128i *)(void *)(dst + stored), w);
      stored += 16;
    }
    if (bits != 0) {
      p += __builtin_ctz(bits);
      break;
    }
  }
#else
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;

  for (; e - p >= 8; p += 8) {
    uint64_t w, t;

    memcpy(&w, p, 8);
    if (stored + 8 <= cap) {
      memcpy(dst + stored, &w, 8); /* may run past the quote: the NUL below ends the string */
      stored += 8;
    }
    t = (((w ^ (ones * '"')) - ones) | ((w ^ (ones * '\\')) - ones) | (w - ones * 0x20)) & ~w &
        highs;
    if (t != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      p += __builtin_ctzll(t) >> 3;
#endif
      break;
    }
  }
#endif
  for (; p < e && *p != '"'; p++)
    if (*p == '\\' || (unsigned char)*p < 0x20)
      return NULL;
  if (p >= e)
    return NULL;
  if (cap > 0) {
    len = (size_t)(p - s);
    keep = len < cap ? len : cap - 1;
    if (stored < keep)
      memcpy(dst + stored, s + stored, keep - stored);
    dst[keep] = '\0';
  }
  return p;
}

/* p starts with the literal lit (of n characters): the position after it, else NULL. */
static const char *fast_lit(const char *p, const char *e, const char *lit, size_t n) {
  return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* The members put_result_fast stores, as bits (a repeated one goes the general way). */
enum { PUT_SEQ = 1, PUT_SHARD = 2, PUT_CODE = 4, PUT_MSG = 8, PUT_OTHER = 16 };

/*
 * A result entry as services write it, without whitespace, in one pass without token objects:
 * members SequenceNumber, ShardId, ErrorCode and ErrorMessage in any order, each a string
 * without escapes or null, and other members whose value is such a string or null (skipped).
 * That covers AWS ({"SequenceNumber":"<digits>","ShardId":"<id>"} and failed entries),
 * kinesalite (ShardId first) and kinesis-local (explicit nulls). Returns false for anything
 * else, having written only into res; put_result then parses the entry in full, so the fast
 * path accepts nothing the general one would not, with the same result, and leaves every error
 * to it.
 */
static bool put_result_fast(struct scan *sc, struct weir_kinesis_put_result *res, bool ids) {
#define LIT(s) s, sizeof(s) - 1
  const char *p = sc->p, *e = sc->end;
  /* got: members with a string value (written into res, the ids only when `ids`); full: ...
   * that is not empty */
  unsigned seen = 0, got = 0, full = 0;

  if (p >= e || *p != '{')
    return false;
  do {
    const char *q;
    unsigned f;
    size_t len; /* the longest value the member may have */

    if (++p >= e || *p != '"')
      return false;
    p++;
    /* Known keys are matched with their closing quote and colon; anything else is another
     * member (a known key written with an escape is one for the general path too). */
    if ((q = fast_lit(p, e, LIT("SequenceNumber\":"))) != NULL)
      f = PUT_SEQ;
    else if ((q = fast_lit(p, e, LIT("ShardId\":"))) != NULL)
      f = PUT_SHARD;
    else if ((q = fast_lit(p, e, LIT("ErrorCode\":"))) != NULL)
      f = PUT_CODE;
    else if ((q = fast_lit(p, e, LIT("ErrorMessage\":"))) != NULL)
      f = PUT_MSG;
    else if ((q = plain_string_copy(p, e, NULL, 0)) != NULL && e - q >= 2 && q[1] == ':')
      f = PUT_OTHER, q += 2;
    else
      return false;
    if ((seen & f & ~(unsigned)PUT_OTHER) != 0)
      return false;
    seen |= f;
    p = q;
    if ((q = fast_lit(p, e, LIT("null"))) != NULL) {
      p = q; /* absent: the field stays "" */
      continue;
    }
    if (p >= e || *p != '"')
      return false;
    p++;
    /* Messages are cut to their buffers as put_result does; the ids must fit. */
    switch (f) {
    case PUT_SEQ:
      q = ids ? plain_string_copy(p, e, res->sequence_number, sizeof(res->sequence_number))
              : plain_string_copy(p, e, NULL, 0);
      len = WEIR_KINESIS_SEQ_MAX;
      break;
    case PUT_SHARD:
      q = ids ? plain_string_copy(p, e, res->shard_id, sizeof(res->shard_id))
              : plain_string_copy(p, e, NULL, 0);
      len = WEIR_KINESIS_SHARD_ID_MAX;
      break;
    case PUT_CODE:
      q = plain_string_copy(p, e, res->error_code, sizeof(res->error_code));
      len = SIZE_MAX;
      break;
    case PUT_MSG:
      q = plain_string_copy(p, e, res->error_message, sizeof(res->error_message));
      len = SIZE_MAX;
      break;
    default:
      q = plain_string_copy(p, e, NULL, 0);
      len = SIZE_MAX;
      break;
    }
    if (q == NULL || (size_t)(q - p) > len)
      return false;
    got |= f;
    if (q > p)
      full |= f;
    p = q + 1;
  } while (p < e && *p == ',');
#undef LIT
  if (p >= e || *p != '}')
    return false;
  /* Only the fields that mean something for the outcome are written (a 520-byte result is
   * eight cache lines; an acknowledged entry touches two): the ids when ok, code and message
   * when not, "" for one that was null. */
  if ((full & PUT_CODE) != 0) {
    res->ok = false;
    if ((got & PUT_MSG) == 0)
      res->error_message[0] = '\0';
  } else if ((full & (PUT_SEQ | PUT_SHARD)) == (PUT_SEQ | PUT_SHARD)) {
    res->ok = true;
  } else {
    return false; /* neither a result nor an error: the general path reports it */
  }
  sc->p = p + 1;
  return true;
}

/* One PutRecords result entry: SequenceNumber + ShardId, or ErrorCode + ErrorMessage. */
/* How a PutRecords answer is parsed: the general scanner only, or the fast path first, with
 * or without the ids of acknowledged entries. */
enum put_mode { PUT_GENERAL, PUT_FAST, PUT_FAST_NO_IDS };

static int put_result(struct scan *sc, struct weir_kinesis_put_result *res, enum put_mode mode) {
  struct str k, v;
  bool present;

  ws(sc);
  if (mode != PUT_GENERAL && put_result_fast(sc, res, mode == PUT_FAST))
    return 0;
  memset(res, 0, sizeof(*res));
  if (!eat(sc, '{'))
    return WEIR_EPARSE;
  if (eat(sc, '}'))
    return WEIR_EPARSE;
  do {
    if (string(sc, &k) != 0 || !eat(sc, ':'))
      return WEIR_EPARSE;
    if (key_is(&k, "SequenceNumber")) {
      if (opt_string(sc, &v, &present) != 0 ||
          (present && copy_small(&v, res->sequence_number, sizeof(res->sequence_number)) != 0))
        return WEIR_EPARSE;
    } else if (key_is(&k, "ShardId")) {
      if (opt_string(sc, &v, &present) != 0 ||
          (present && copy_small(&v, res->shard_id, sizeof(res->shard_id)) != 0))
        return WEIR_EPARSE;
    } else if (key_is(&k, "ErrorCode") || key_is(&k, "ErrorMessage")) {
      bool code = key_is(&k, "ErrorCode");
      char *dst = code ? res->error_code : res->error_message;
      size_t cap = code ? sizeof(res->error_code) : sizeof(res->error_message);
      if (opt_string(sc, &v, &present) != 0)
        return WEIR_EPARSE;
      if (present) {
        /* Messages are informative: cut them to the buffer rather than fail. */
        struct str cut = v;
        if (cut.len >= cap)
          cut.len = cap - 1;
        if (copy_small(&cut, dst, cap) != 0) {
          /* The cut split an escape: keep the raw text. */
          memcpy(dst, cut.s, cut.len);
          dst[cut.len] = '\0';
        }
      }
    } else if (skip_value(sc, 0) != 0) {
      return WEIR_EPARSE;
    }
  } while (eat(sc, ','));
  if (!eat(sc, '}'))
    return WEIR_EPARSE;
  if (res->error_code[0] != '\0')
    return 0;
  if (res->sequence_number[0] == '\0' || res->shard_id[0] == '\0')
    return WEIR_EPARSE;
  res->ok = true;
  return 0;
}

/* Parses into results[n], or, with `out`, into *out through one scratch result. */
static int parse_put_records(const uint8_t *body, size_t len,
                             struct weir_kinesis_put_result *results, size_t n, size_t *failed,
                             enum put_mode mode, struct weir_kinesis_put_outcomes *out) {
  struct scan sc = {(const char *)body, (const char *)body + len};
  struct weir_kinesis_put_result scratch;
  struct str k;
  size_t got = 0, nfail = 0;
  bool have_records = false;

  if (!eat(&sc, '{'))
    return WEIR_EPARSE;
  if (!eat(&sc, '}')) {
    do {
      if (string(&sc, &k) != 0 || !eat(&sc, ':'))
        return WEIR_EPARSE;
      if (key_is(&k, "Records")) {
        if (!eat(&sc, '['))
          return WEIR_EPARSE;
        have_records = true;
        if (eat(&sc, ']'))
          continue;
        do {
          struct weir_kinesis_put_result *r = out != NULL ? &scratch : &results[got];

          if (got >= n || put_result(&sc, r, mode) != 0)
            return WEIR_EPARSE;
          if (out != NULL) {
            out->ok[got] = r->ok;
            if (!r->ok)
              out->fail[nfail] = *r;
            else if (out->shard_ids != NULL)
              memcpy(out->shard_ids[got], r->shard_id, strlen(r->shard_id) + 1);
          }
          nfail += !r->ok;
          got++;
        } while (eat(&sc, ','));
        if (!eat(&sc, ']'))
          return WEIR_EPARSE;
      } else if (skip_value(&sc, 0) != 0) {
        return WEIR_EPARSE;
      }
    } while (eat(&sc, ','));
    if (!eat(&sc, '}'))
      return WEIR_EPARSE;
  }
  ws(&sc);
  if (sc.p != sc.end || !have_records || got != n)
    return WEIR_EPARSE;
  if (failed != NULL)
    *failed = nfail;
  if (out != NULL)
    out->failed = nfail;
  return 0;
}

int weir__kinesis_parse_put_records(const uint8_t *body, size_t len,
                                    struct weir_kinesis_put_result *results, size_t n,
                                    size_t *failed) {
  return parse_put_records(body, len, results, n, failed, PUT_FAST, NULL);
}

int weir__kinesis_parse_put_records_general(const uint8_t *body, size_t len,
                                            struct weir_kinesis_put_result *results, size_t n,
                                            size_t *failed) {
  return parse_put_records(body, len, results, n, failed, PUT_GENERAL, NULL);
}

int weir__kinesis_parse_put_outcomes(const uint8_t *body, size_t len,
                                     struct weir_kinesis_put_outcomes *out, size_t n) {
  if (n > WEIR_KINESIS_PUT_MAX_RECORDS)
    return WEIR_EPARSE;
  return parse_put_records(body, len, NULL, n, NULL,
                           out->shard_ids != NULL ? PUT_FAST : PUT_FAST_NO_IDS, out);
}
