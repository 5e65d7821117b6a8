/*
 * kpl.c: KPL aggregated records: 128-bit hash keys, the KCL-compatible decoder with shard-range
 * filtering, and the aggregator. See kpl_int.h for the interface and FORMAT.md for the format.
 *
 * The decoder reads the protobuf body with its own zero-copy wire reader instead of
 * protobuf-c's unpack, which allocates every Record and copies every key and payload: here a
 * user record is three views into the input, and the only memory is the per-decoder index of
 * the key tables, reused from one Kinesis record to the next. The reader follows the semantics
 * of the Java protobuf runtime the KCL parses with (see weir__kpl_decoder_open); the unit tests
 * check it against protobuf-c's code generated from proto/kpl.proto.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "../../runtime/log_int.h"
#include "kpl_int.h"

/* Protobuf wire types (protobuf encoding specification). */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

/* Longest varint (protobuf encoding specification). */
#define KPL_VARINT_MAX 10
/* Deepest group nesting skipped inside unknown fields; the Java runtime stops at 100 levels of
 * recursion, and no writer of this format emits groups at all. */
#define KPL_GROUP_DEPTH_MAX 64
/* Field numbers and tag bytes (FORMAT.md section 2). */
#define KPL_AGG_PK_TABLE 1
#define KPL_AGG_EHK_TABLE 2
#define KPL_AGG_RECORDS 3
#define KPL_REC_PK_INDEX 1
#define KPL_REC_EHK_INDEX 2
#define KPL_REC_DATA 3
#define KPL_REC_TAGS 4
#define KPL_TAG_KEY 1
#define KPL_TAG_VALUE 2
#define KPL_TAG_BYTE(field, wt) ((uint8_t)(((field) << 3) | (wt)))
/* Longest sequence number printed in a log line (KCL pattern: up to 129 digits). */
#define KPL_LOG_SEQ_MAX 129
/* First size of the decoder's table index; it doubles from there up to its bound. */
#define KPL_DEC_TABLE_INITIAL 64
/* First size of the aggregator's key index (slots; a power of two). */
#define KPL_AGG_INDEX_INITIAL 64
/* Longest partition key in bytes: 256 characters of at most 4 UTF-8 bytes each. */
#define KPL_PARTITION_KEY_MAX_BYTES (WEIR_KPL_PARTITION_KEY_MAX_CHARS * 4)

static const uint8_t kpl_magic[WEIR_KPL_MAGIC_LEN] = {0xF3, 0x89, 0x9A, 0xC2};

/* ---------------------------------------------------------------------------------------------
 * MD5 and 128-bit values
 */

int weir__kpl_md5_init(struct weir_kpl_md5 *h) {
  h->ctx = EVP_MD_CTX_new();
  h->md = EVP_MD_fetch(NULL, "MD5", NULL);
  if (h->ctx == NULL || h->md == NULL) {
    int err = h->ctx == NULL ? WEIR_ENOMEM : WEIR_ESYS;

    WEIR_LOG_ERR("kpl: OpenSSL cannot provide MD5 (%s)",
                 h->md == NULL ? "EVP_MD_fetch failed" : "out of memory");
    weir__kpl_md5_cleanup(h);
    return err;
  }
  return 0;
}

void weir__kpl_md5_cleanup(struct weir_kpl_md5 *h) {
  EVP_MD_CTX_free(h->ctx);
  EVP_MD_free(h->md);
  h->ctx = NULL;
  h->md = NULL;
}

int weir__kpl_md5(struct weir_kpl_md5 *h, const void *p, size_t len,
                  uint8_t out[WEIR_KPL_DIGEST_LEN]) {
  unsigned int n = 0;

  if (h == NULL) {
    if (EVP_Digest(p, len, out, &n, EVP_md5(), NULL) != 1)
      goto fail;
    return 0;
  }
  if (EVP_DigestInit_ex2(h->ctx, h->md, NULL) != 1 || EVP_DigestUpdate(h->ctx, p, len) != 1 ||
      EVP_DigestFinal_ex(h->ctx, out, &n) != 1)
    goto fail;
  return 0;
fail:
  WEIR_LOG_ERR("kpl: OpenSSL MD5 digest failed");
  return WEIR_ESYS;
}

int weir__kpl_u128_cmp(struct weir_kpl_u128 a, struct weir_kpl_u128 b) {
  if (a.hi != b.hi)
    return a.hi < b.hi ? -1 : 1;
  if (a.lo != b.lo)
    return a.lo < b.lo ? -1 : 1;
  return 0;
}

struct weir_kpl_u128 weir__kpl_u128_from_be(const uint8_t be[16]) {
  struct weir_kpl_u128 v = {0, 0};

  for (int i = 0; i < 8; i++) {
    v.hi = (v.hi << 8) | be[i];
    v.lo = (v.lo << 8) | be[8 + i];
  }
  return v;
}

void weir__kpl_u128_to_be(struct weir_kpl_u128 v, uint8_t be[16]) {
  for (int i = 7; i >= 0; i--) {
    be[i] = (uint8_t)v.hi;
    be[8 + i] = (uint8_t)v.lo;
    v.hi >>= 8;
    v.lo >>= 8;
  }
}

int weir__kpl_u128_parse(const char *s, size_t len, struct weir_kpl_u128 *out) {
  struct weir_kpl_u128 v = {0, 0};

  if (s == NULL || len == 0)
    return WEIR_EPARSE;
  for (size_t i = 0; i < len; i++) {
    uint64_t d, p0, p1, carry;

    if (s[i] < '0' || s[i] > '9')
      return WEIR_EPARSE;
    d = (uint64_t)(s[i] - '0');
    /* v = v * 10 + d on 32-bit halves of lo, so every partial product fits in 64 bits. */
    p0 = (v.lo & 0xFFFFFFFFu) * 10 + d;
    p1 = (v.lo >> 32) * 10 + (p0 >> 32);
    carry = p1 >> 32;
    if (v.hi > (UINT64_MAX - carry) / 10)
      return WEIR_EPARSE;
    v.hi = v.hi * 10 + carry;
    v.lo = (p1 << 32) | (p0 & 0xFFFFFFFFu);
  }
  *out = v;
  return 0;
}

size_t weir__kpl_u128_format(struct weir_kpl_u128 v, char out[WEIR_KPL_HASH_KEY_DEC_MAX + 1]) {
  /* Divide by 10^9 over four 32-bit limbs: each step yields nine digits. */
  uint32_t limb[4] = {(uint32_t)(v.hi >> 32), (uint32_t)v.hi, (uint32_t)(v.lo >> 32),
                      (uint32_t)v.lo};
  char tmp[WEIR_KPL_HASH_KEY_DEC_MAX + 9];
  size_t n = 0, len = 0;

  do {
    uint64_t rem = 0;
    bool zero = true;

    for (int i = 0; i < 4; i++) {
      uint64_t cur = (rem << 32) | limb[i];

      limb[i] = (uint32_t)(cur / 1000000000u);
      rem = cur % 1000000000u;
      zero = zero && limb[i] == 0;
    }
    for (int k = 0; k < 9; k++) {
      tmp[n++] = (char)('0' + rem % 10);
      rem /= 10;
    }
    if (zero)
      break;
  } while (1);
  while (n > 1 && tmp[n - 1] == '0')
    n--;
  while (n > 0)
    out[len++] = tmp[--n];
  out[len] = '\0';
  return len;
}

int weir__kpl_hash_key_be(struct weir_kpl_md5 *h, weir_buf partition_key, uint8_t out[16]) {
  return weir__kpl_md5(h, partition_key.len ? partition_key.ptr : (const uint8_t *)"",
                       partition_key.len, out);
}

int weir__kpl_hash_key(struct weir_kpl_md5 *h, weir_buf partition_key, struct weir_kpl_u128 *out) {
  uint8_t d[WEIR_KPL_DIGEST_LEN];
  int rc = weir__kpl_hash_key_be(h, partition_key, d);

  if (rc == 0)
    *out = weir__kpl_u128_from_be(d);
  return rc;
}

int weir__kpl_hash_key_dec(struct weir_kpl_md5 *h, weir_buf partition_key,
                           char out[WEIR_KPL_HASH_KEY_DEC_MAX + 1], size_t *len) {
  struct weir_kpl_u128 v;
  size_t n;
  int rc = weir__kpl_hash_key(h, partition_key, &v);

  if (rc != 0)
    return rc;
  n = weir__kpl_u128_format(v, out);
  if (len != NULL)
    *len = n;
  return 0;
}

int weir__kpl_effective_hash_key(struct weir_kpl_md5 *h, weir_buf partition_key,
                                 const weir_buf *explicit_hash_key, struct weir_kpl_u128 *out) {
  if (explicit_hash_key != NULL)
    return weir__kpl_u128_parse((const char *)explicit_hash_key->ptr, explicit_hash_key->len, out);
  return weir__kpl_hash_key(h, partition_key, out);
}

int weir__kpl_hash_range_parse(const char *starting_hash_key, const char *ending_hash_key,
                               struct weir_kpl_hash_range *out) {
  struct weir_kpl_hash_range r;

  if (starting_hash_key == NULL || ending_hash_key == NULL ||
      weir__kpl_u128_parse(starting_hash_key, strlen(starting_hash_key), &r.start) != 0 ||
      weir__kpl_u128_parse(ending_hash_key, strlen(ending_hash_key), &r.end) != 0 ||
      weir__kpl_u128_cmp(r.start, r.end) > 0)
    return WEIR_EPARSE;
  *out = r;
  return 0;
}

bool weir__kpl_hash_range_contains(const struct weir_kpl_hash_range *r, struct weir_kpl_u128 key) {
  return weir__kpl_u128_cmp(key, r->start) >= 0 && weir__kpl_u128_cmp(key, r->end) <= 0;
}

int weir__kpl_shard_find(const struct weir_kpl_hash_range *ranges, size_t n,
                         struct weir_kpl_u128 key, size_t *index) {
  for (size_t i = 0; i < n; i++) {
    if (weir__kpl_hash_range_contains(&ranges[i], key)) {
      *index = i;
      return 0;
    }
  }
  return WEIR_ENOTFOUND;
}

int weir__kpl_shard_find_sorted(const struct weir_kpl_hash_range *ranges, size_t n,
                                struct weir_kpl_u128 key, size_t *index) {
  size_t lo = 0, hi = n;

  /* Find the last range whose start <= key, then check its end. */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (weir__kpl_u128_cmp(ranges[mid].start, key) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0 || !weir__kpl_hash_range_contains(&ranges[lo - 1], key))
    return WEIR_ENOTFOUND;
  *index = lo - 1;
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Protobuf wire reader. Every function takes a cursor and the end of its message and never
 * reads past it; on failure the message is malformed and the cursor is meaningless.
 */

static inline bool read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
  const uint8_t *p = *pp;
  uint64_t v = 0;

  if (p < end && *p < 0x80) {
    *out = *p;
    *pp = p + 1;
    return true;
  }
  for (unsigned i = 0; i < KPL_VARINT_MAX && p < end; i++) {
    uint8_t b = *p++;

    /* Bits past the 64th are dropped, as the Java runtime does. */
    v |= (uint64_t)(b & 0x7F) << (7 * i);
    if (b < 0x80) {
      *out = v;
      *pp = p;
      return true;
    }
  }
  return false;
}

/* A tag: the Java runtime reads it as a 32-bit varint (higher bits dropped); field 0 is an
 * error there and here. */
static inline bool read_tag(const uint8_t **pp, const uint8_t *end, uint32_t *field, unsigned *wt) {
  uint64_t v;

  if (!read_varint(pp, end, &v))
    return false;
  *field = (uint32_t)v >> 3;
  *wt = (unsigned)v & 7;
  return *field != 0;
}

/* A length prefix: a 32-bit signed size in the Java runtime; it must fit in what is left. */
static inline bool read_len(const uint8_t **pp, const uint8_t *end, size_t *len) {
  uint64_t v;
  uint32_t n;

  if (!read_varint(pp, end, &v))
    return false;
  n = (uint32_t)v;
  if (n > INT32_MAX || n > (size_t)(end - *pp))
    return false;
  *len = n;
  return true;
}

static bool skip_field(const uint8_t **pp, const uint8_t *end, uint32_t field, unsigned wt,
                       unsigned depth) {
  uint64_t v;
  size_t len;

  switch (wt) {
  case WT_VARINT:
    return read_varint(pp, end, &v);
  case WT_I64:
    if ((size_t)(end - *pp) < 8)
      return false;
    *pp += 8;
    return true;
  case WT_LEN:
    if (!read_len(pp, end, &len))
      return false;
    *pp += len;
    return true;
  case WT_I32:
    if ((size_t)(end - *pp) < 4)
      return false;
    *pp += 4;
    return true;
  case WT_SGROUP:
    if (depth >= KPL_GROUP_DEPTH_MAX)
      return false;
    for (;;) {
      uint32_t f;
      unsigned w;

      if (!read_tag(pp, end, &f, &w))
        return false;
      if (w == WT_EGROUP)
        return f == field;
      if (!skip_field(pp, end, f, w, depth + 1))
        return false;
    }
  default: /* an end-group outside its group, or wire types 6 and 7 */
    return false;
  }
}

/* Tag sub-message: validated (proto2 requires its key) and otherwise ignored. */
static bool check_tag_msg(const uint8_t *p, const uint8_t *end) {
  bool has_key = false;

  while (p < end) {
    uint32_t field;
    unsigned wt;
    size_t len;

    if (!read_tag(&p, end, &field, &wt))
      return false;
    if ((field == KPL_TAG_KEY || field == KPL_TAG_VALUE) && wt == WT_LEN) {
      if (!read_len(&p, end, &len))
        return false;
      p += len;
      has_key = has_key || field == KPL_TAG_KEY;
    } else if (!skip_field(&p, end, field, wt, 0)) {
      return false;
    }
  }
  return has_key;
}

/* One Record, parsed: views into the body. */
struct kpl_rec {
  uint64_t pk_index;
  uint64_t ehk_index;
  const uint8_t *data;
  size_t data_len;
  bool has_ehk;
};

static bool parse_record(const uint8_t *p, const uint8_t *end, struct kpl_rec *r) {
  bool has_pk = false, has_data = false;

  r->has_ehk = false;
  while (p < end) {
    uint32_t field;
    unsigned wt;
    size_t len;

    if (!read_tag(&p, end, &field, &wt))
      return false;
    if (field == KPL_REC_PK_INDEX && wt == WT_VARINT) {
      if (!read_varint(&p, end, &r->pk_index))
        return false;
      has_pk = true;
    } else if (field == KPL_REC_EHK_INDEX && wt == WT_VARINT) {
      if (!read_varint(&p, end, &r->ehk_index))
        return false;
      r->has_ehk = true;
    } else if (field == KPL_REC_DATA && wt == WT_LEN) {
      /* A repeated singular field: the last occurrence wins, as in every protobuf runtime. */
      if (!read_len(&p, end, &len))
        return false;
      r->data = p;
      r->data_len = len;
      p += len;
      has_data = true;
    } else if (field == KPL_REC_TAGS && wt == WT_LEN) {
      if (!read_len(&p, end, &len) || !check_tag_msg(p, p + len))
        return false;
      p += len;
    } else if (!skip_field(&p, end, field, wt, 0)) {
      return false;
    }
  }
  return has_pk && has_data;
}

/* ---------------------------------------------------------------------------------------------
 * Decoder
 */

/* A key-table entry: offset and length in the body (bodies are below 4 GiB, checked at open). */
struct kpl_span {
  uint32_t off;
  uint32_t len;
};

/* Per-entry cache of the range check, reset at every open. */
enum { KEY_UNKNOWN = 0, KEY_IN_RANGE, KEY_OUT_OF_RANGE, KEY_INVALID };

struct weir_kpl_decoder {
  struct weir_kpl_input in; /* views borrowed from the caller until the next open */
  const uint8_t *body;      /* the protobuf inside in.data */
  size_t body_len;
  struct kpl_span *pk; /* cap entries each; npk / nehk used */
  struct kpl_span *ehk;
  uint8_t *pk_state;
  uint8_t *ehk_state;
  size_t npk;
  size_t nehk;
  size_t cap;
  size_t max_entries;
  size_t count;   /* user records next() yields for the open record */
  size_t emitted; /* user records next() has yielded */
  size_t cursor;  /* next() position in the body */
  int tail_err;   /* what next() returns after the last record: WEIR_EOF or WEIR_EPARSE */
  enum weir_kpl_kind kind;
  bool is_open;
  struct weir_kpl_md5 md5;
};

int weir__kpl_decoder_new(struct weir_kpl_decoder **out, size_t max_table_entries) {
  struct weir_kpl_decoder *d;
  int rc;

  if (out == NULL || max_table_entries > UINT32_MAX)
    return WEIR_EINVAL;
  d = calloc(1, sizeof(*d));
  if (d == NULL)
    return WEIR_ENOMEM;
  d->max_entries = max_table_entries ? max_table_entries : WEIR_KPL_DECODER_TABLE_MAX_DEFAULT;
  rc = weir__kpl_md5_init(&d->md5);
  if (rc != 0)
    goto fail;
  *out = d;
  return 0;
fail:
  weir__kpl_decoder_free(d);
  return rc;
}

void weir__kpl_decoder_free(struct weir_kpl_decoder *d) {
  if (d == NULL)
    return;
  weir__kpl_md5_cleanup(&d->md5);
  free(d->pk);
  free(d->ehk);
  free(d->pk_state);
  free(d->ehk_state);
  free(d);
}

/* Grows the table index to hold `need` entries per table; it never shrinks. */
static int dec_reserve(struct weir_kpl_decoder *d, size_t need) {
  size_t cap = d->cap ? d->cap : KPL_DEC_TABLE_INITIAL;
  void *p;

  while (cap < need)
    cap *= 2;
  if (cap > d->max_entries)
    cap = d->max_entries;
  /* Each array is replaced as soon as it is reallocated, so a failure leaves valid arrays that
   * are at least d->cap long. */
  if ((p = realloc(d->pk, cap * sizeof(*d->pk))) == NULL)
    return WEIR_ENOMEM;
  d->pk = p;
  if ((p = realloc(d->ehk, cap * sizeof(*d->ehk))) == NULL)
    return WEIR_ENOMEM;
  d->ehk = p;
  if ((p = realloc(d->pk_state, cap)) == NULL)
    return WEIR_ENOMEM;
  d->pk_state = p;
  if ((p = realloc(d->ehk_state, cap)) == NULL)
    return WEIR_ENOMEM;
  d->ehk_state = p;
  d->cap = cap;
  return 0;
}

/* What pass 1 learned about the body. */
struct kpl_scan {
  size_t nrec;
  uint64_t max_pk_index;
  bool any_ehk;
  bool overflow; /* a table outgrew max_entries */
};

/* Adds a table entry; past the bound it only counts, so that the scan can still tell a
 * malformed body (plain record) from a too-big aggregate. */
static int dec_add_entry(struct weir_kpl_decoder *d, struct kpl_span **tab, size_t *n,
                         const uint8_t *p, size_t len, struct kpl_scan *s) {
  int rc;

  if (*n >= d->max_entries) {
    s->overflow = true;
    (*n)++;
    return 0;
  }
  if (*n >= d->cap && (rc = dec_reserve(d, *n + 1)) != 0)
    return rc;
  (*tab)[*n].off = (uint32_t)(p - d->body);
  (*tab)[*n].len = (uint32_t)len;
  (*n)++;
  return 0;
}

/*
 * Pass 1: validates the whole body as an AggregatedRecord and indexes the key tables. Returns
 * 1 when valid, 0 when not (the record is plain), or a negative WEIR_E* code.
 */
static int dec_scan(struct weir_kpl_decoder *d, struct kpl_scan *s) {
  const uint8_t *p = d->body, *end = d->body + d->body_len;
  int rc;

  memset(s, 0, sizeof(*s));
  d->npk = 0;
  d->nehk = 0;
  while (p < end) {
    uint32_t field;
    unsigned wt;
    size_t len;

    if (!read_tag(&p, end, &field, &wt))
      return 0;
    if (wt == WT_LEN && field >= KPL_AGG_PK_TABLE && field <= KPL_AGG_RECORDS) {
      if (!read_len(&p, end, &len))
        return 0;
      if (field == KPL_AGG_RECORDS) {
        struct kpl_rec r;

        if (!parse_record(p, p + len, &r))
          return 0;
        s->nrec++;
        if (r.pk_index > s->max_pk_index)
          s->max_pk_index = r.pk_index;
        s->any_ehk = s->any_ehk || r.has_ehk;
      } else {
        rc = field == KPL_AGG_PK_TABLE ? dec_add_entry(d, &d->pk, &d->npk, p, len, s)
                                       : dec_add_entry(d, &d->ehk, &d->nehk, p, len, s);
        if (rc != 0)
          return rc;
      }
      p += len;
    } else if (!skip_field(&p, end, field, wt, 0)) {
      return 0;
    }
  }
  return 1;
}

/* The next Record after d->cursor (body already validated). False at the end. */
static bool dec_next_rec(struct weir_kpl_decoder *d, size_t *cursor, struct kpl_rec *r) {
  const uint8_t *p = d->body + *cursor, *end = d->body + d->body_len;

  while (p < end) {
    uint32_t field;
    unsigned wt;
    size_t len;

    if (!read_tag(&p, end, &field, &wt))
      return false;
    if (field == KPL_AGG_RECORDS && wt == WT_LEN) {
      if (!read_len(&p, end, &len) || !parse_record(p, p + len, r))
        return false;
      *cursor = (size_t)(p + len - d->body);
      return true;
    }
    if (!skip_field(&p, end, field, wt, 0))
      return false;
  }
  return false;
}

static weir_buf span_buf(const struct weir_kpl_decoder *d, const struct kpl_span *s) {
  weir_buf b = {d->body + s->off, s->len};
  return b;
}

/* The sequence number for log lines, as a "%.*s" pair: bounded, never NULL. */
static int seq_log_len(const struct weir_kpl_decoder *d) {
  if (d->in.sequence_number.ptr == NULL)
    return 0;
  return (int)(d->in.sequence_number.len < KPL_LOG_SEQ_MAX ? d->in.sequence_number.len
                                                           : KPL_LOG_SEQ_MAX);
}

static const char *seq_log_ptr(const struct weir_kpl_decoder *d) {
  return d->in.sequence_number.ptr != NULL ? (const char *)d->in.sequence_number.ptr : "";
}

/*
 * Reads an explicit hash key from a table the way the KCL does (new BigInteger(text), then a
 * range check): an optional sign and decimal digits. Returns KEY_INVALID when that is not the
 * text (the KCL throws), KEY_OUT_OF_RANGE for a negative value or one above 2^128-1 (outside
 * every shard, so the KCL drops the aggregate), else KEY_UNKNOWN with *out set.
 */
static int ehk_classify(weir_buf b, struct weir_kpl_u128 *out) {
  const char *s = (const char *)b.ptr;
  size_t len = b.len, i;
  bool negative = false;

  if (len > 0 && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s++;
    len--;
  }
  if (len == 0)
    return KEY_INVALID;
  for (i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return KEY_INVALID;
  if (weir__kpl_u128_parse(s, len, out) != 0)
    return KEY_OUT_OF_RANGE; /* all digits, so only too large */
  if (negative && (out->hi | out->lo) != 0)
    return KEY_OUT_OF_RANGE;
  return KEY_UNKNOWN;
}

/* Range state of a key-table entry, computed once per open. */
static int dec_key_state(struct weir_kpl_decoder *d, bool is_ehk, size_t idx,
                         const struct weir_kpl_hash_range *range, uint8_t *state) {
  uint8_t *st = is_ehk ? &d->ehk_state[idx] : &d->pk_state[idx];
  struct weir_kpl_u128 key;
  int rc;

  if (*st == KEY_UNKNOWN) {
    if (is_ehk) {
      *st = (uint8_t)ehk_classify(span_buf(d, &d->ehk[idx]), &key);
      if (*st != KEY_UNKNOWN)
        goto done;
    } else {
      rc = weir__kpl_hash_key(&d->md5, span_buf(d, &d->pk[idx]), &key);
      if (rc != 0)
        return rc;
    }
    *st = range == NULL || weir__kpl_hash_range_contains(range, key) ? KEY_IN_RANGE
                                                                     : KEY_OUT_OF_RANGE;
  }
done:
  *state = *st;
  return 0;
}

/*
 * Pass 2, the KCL's loop over the records: an index out of range or an unparsable explicit
 * hash key ends the aggregate after the records before it (WEIR_EPARSE); with a range, the
 * first record outside it drops the whole aggregate.
 */
static int dec_check(struct weir_kpl_decoder *d, const struct weir_kpl_hash_range *range,
                     size_t nrec) {
  size_t cursor = 0;
  const char *why = NULL;
  struct kpl_rec r = {0, 0, NULL, 0, false};
  size_t i;
  int rc;

  if (d->npk)
    memset(d->pk_state, KEY_UNKNOWN, d->npk);
  if (d->nehk)
    memset(d->ehk_state, KEY_UNKNOWN, d->nehk);
  for (i = 0; i < nrec; i++) {
    uint8_t st;

    if (!dec_next_rec(d, &cursor, &r))
      WEIR_ASSERT(!"record count changed between passes");
    if (r.pk_index >= d->npk) {
      why = "partition_key_index is past the end of the partition key table";
      break;
    }
    if (r.has_ehk) {
      if (r.ehk_index >= d->nehk) {
        why = "explicit_hash_key_index is past the end of the explicit hash key table";
        break;
      }
      if ((rc = dec_key_state(d, true, (size_t)r.ehk_index, range, &st)) != 0)
        return rc;
      if (st == KEY_INVALID) {
        why = "its explicit hash key is not a decimal number";
        break;
      }
    } else if (range != NULL) {
      if ((rc = dec_key_state(d, false, (size_t)r.pk_index, range, &st)) != 0)
        return rc;
    } else {
      st = KEY_IN_RANGE;
    }
    if (st == KEY_OUT_OF_RANGE) {
      WEIR_LOG_DEBUG("[kpl seq %.*s] aggregate dropped: user record %zu's hash key is outside "
                     "the shard's range or 0..2^128-1 (a stale producer's copy; FORMAT.md "
                     "section 7)",
                     seq_log_len(d), seq_log_ptr(d), i);
      d->kind = WEIR_KPL_FILTERED;
      d->count = 0;
      return 0;
    }
  }
  if (why != NULL) {
    WEIR_LOG_ERR("[kpl seq %.*s] malformed aggregate: user record %zu of %zu: %s (pk index %" PRIu64
                 ", table sizes %zu/%zu); delivering only the %zu user records before it, as the "
                 "KCL does",
                 seq_log_len(d), seq_log_ptr(d), i, nrec, why, r.pk_index, d->npk, d->nehk, i);
    d->count = i;
    d->tail_err = WEIR_EPARSE;
    return WEIR_EPARSE;
  }
  return 0;
}

static bool range_is_everything(const struct weir_kpl_hash_range *r) {
  return r->start.hi == 0 && r->start.lo == 0 && r->end.hi == UINT64_MAX && r->end.lo == UINT64_MAX;
}

int weir__kpl_decoder_open(struct weir_kpl_decoder *d, const struct weir_kpl_input *in,
                           const struct weir_kpl_hash_range *range, enum weir_kpl_kind *kind) {
  uint8_t digest[WEIR_KPL_DIGEST_LEN];
  struct kpl_scan scan;
  const char *why;
  int rc;

  if (d == NULL || in == NULL || kind == NULL || (in->data.ptr == NULL && in->data.len != 0) ||
      in->data.len > UINT32_MAX)
    return WEIR_EINVAL;
  d->in = *in;
  d->is_open = true;
  d->kind = WEIR_KPL_PLAIN;
  d->count = 1;
  d->emitted = 0;
  d->cursor = 0;
  d->tail_err = WEIR_EOF;
  d->npk = 0;
  d->nehk = 0;
  *kind = WEIR_KPL_PLAIN;
  if (range != NULL && range_is_everything(range))
    range = NULL;

  /* FORMAT.md section 1, rules 1 and 2: the magic, then more than a digest's worth of bytes. */
  if (in->data.len <= WEIR_KPL_OVERHEAD || memcmp(in->data.ptr, kpl_magic, WEIR_KPL_MAGIC_LEN))
    return 0;
  d->body = in->data.ptr + WEIR_KPL_MAGIC_LEN;
  d->body_len = in->data.len - WEIR_KPL_OVERHEAD;
  /* Rule 3: the MD5 trailer. */
  if ((rc = weir__kpl_md5(&d->md5, d->body, d->body_len, digest)) != 0)
    goto fail;
  if (memcmp(digest, d->body + d->body_len, WEIR_KPL_DIGEST_LEN) != 0) {
    why = "MD5 trailer mismatch";
    goto plain;
  }
  /* Rule 4: the body parses. */
  rc = dec_scan(d, &scan);
  if (rc < 0)
    goto fail;
  if (rc == 0) {
    why = "body is not a valid AggregatedRecord";
    goto plain;
  }
  if (scan.overflow) {
    WEIR_LOG_ERR("[kpl seq %.*s] aggregate not delivered: its key tables have %zu and %zu entries, "
                 "more than this decoder's bound of %zu (raise max_table_entries)",
                 seq_log_len(d), seq_log_ptr(d), d->npk, d->nehk, d->max_entries);
    rc = WEIR_ETOOBIG;
    goto fail;
  }
  d->kind = WEIR_KPL_AGGREGATE;
  d->count = scan.nrec;
  *kind = WEIR_KPL_AGGREGATE;
  if (range != NULL || scan.any_ehk || (scan.nrec > 0 && scan.max_pk_index >= d->npk)) {
    rc = dec_check(d, range, scan.nrec);
    *kind = d->kind;
    if (rc != 0 && rc != WEIR_EPARSE)
      goto fail;
    return rc;
  }
  return 0;

plain:
  WEIR_LOG_DEBUG("[kpl seq %.*s] starts with the KPL magic but %s: delivered as a plain record",
                 seq_log_len(d), seq_log_ptr(d), why);
  d->npk = 0;
  d->nehk = 0;
  return 0;
fail:
  d->is_open = false;
  d->count = 0;
  d->npk = 0;
  d->nehk = 0;
  return rc;
}

size_t weir__kpl_decoder_count(const struct weir_kpl_decoder *d) {
  return d->is_open ? d->count : 0;
}

void weir__kpl_decoder_tables(const struct weir_kpl_decoder *d, size_t *partition_keys,
                              size_t *explicit_hash_keys) {
  bool agg = d->is_open && d->kind != WEIR_KPL_PLAIN;

  if (partition_keys != NULL)
    *partition_keys = agg ? d->npk : 0;
  if (explicit_hash_keys != NULL)
    *explicit_hash_keys = agg ? d->nehk : 0;
}

int weir__kpl_decoder_next(struct weir_kpl_decoder *d, struct weir_kpl_user_record *out) {
  struct kpl_rec r;

  if (d == NULL || out == NULL || !d->is_open)
    return WEIR_ESTATE;
  if (d->emitted >= d->count)
    return d->tail_err;
  out->sequence_number = d->in.sequence_number;
  out->sub_sequence_number = d->emitted;
  if (d->kind == WEIR_KPL_PLAIN) {
    out->data = d->in.data;
    out->partition_key = d->in.partition_key;
    out->has_explicit_hash_key = d->in.has_explicit_hash_key;
    out->explicit_hash_key = d->in.explicit_hash_key;
    if (!out->has_explicit_hash_key) {
      out->explicit_hash_key.ptr = NULL;
      out->explicit_hash_key.len = 0;
    }
    out->aggregated = false;
    out->partition_key_index = 0;
    out->explicit_hash_key_index = 0;
    d->emitted++;
    return 0;
  }
  /* Open validated the body and the indices of the first `count` records; a failure here
   * means the caller changed the bytes, which is reported rather than trusted. */
  if (!dec_next_rec(d, &d->cursor, &r) || r.pk_index >= d->npk ||
      (r.has_ehk && r.ehk_index >= d->nehk)) {
    d->count = d->emitted;
    d->tail_err = WEIR_EPARSE;
    return WEIR_EPARSE;
  }
  out->data.ptr = r.data;
  out->data.len = r.data_len;
  out->partition_key = span_buf(d, &d->pk[r.pk_index]);
  out->has_explicit_hash_key = r.has_ehk;
  if (r.has_ehk) {
    out->explicit_hash_key = span_buf(d, &d->ehk[r.ehk_index]);
  } else {
    out->explicit_hash_key.ptr = NULL;
    out->explicit_hash_key.len = 0;
  }
  out->aggregated = true;
  out->partition_key_index = r.pk_index;
  out->explicit_hash_key_index = r.has_ehk ? r.ehk_index : 0;
  d->emitted++;
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Aggregator
 */

/* A key-index slot; empty unless gen equals the index's current generation, so that a reset
 * empties the index in O(1). */
struct kpl_slot {
  uint32_t gen;
  uint32_t hash;
  uint32_t off; /* key bytes in the table buffer */
  uint32_t len;
  uint32_t index; /* table index */
  uint32_t aux;   /* partition keys in the Java style: 1 + index of the computed hash key */
};

struct kpl_keyset {
  struct kpl_slot *slots; /* cap slots, a power of two; at most half are used */
  size_t cap;
  size_t max_cap;
  size_t n;
  uint32_t gen;
};

struct weir_kpl_aggregator {
  struct weir_kpl_agg_config cfg;
  uint8_t *pkbuf;  /* encoded partition_key_table entries; cfg.max_size bytes */
  uint8_t *ehkbuf; /* encoded explicit_hash_key_table entries; cfg.max_size bytes */
  uint8_t *recbuf; /* encoded records; cfg.max_size bytes */
  size_t pklen;
  size_t ehklen;
  size_t reclen;
  struct kpl_keyset pks;
  struct kpl_keyset ehks;
  size_t count;
  struct weir_kpl_u128 first_hash_key;
  weir_buf first_pk;   /* view into pkbuf */
  weir_buf first_data; /* view into recbuf */
  bool plain_only;     /* KPL style: one record too big to aggregate, sent plain */
  bool finished;
  struct weir_kpl_md5 md5;
};

static size_t varint_len(uint64_t v) {
  size_t n = 1;

  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

static size_t pow2_at_least(size_t n) {
  size_t p = 1;

  while (p < n)
    p *= 2;
  return p;
}

static void keyset_free(struct kpl_keyset *ks) {
  free(ks->slots);
  ks->slots = NULL;
}

/* Makes room for one more key (at most half the slots in use). */
static int keyset_reserve(struct kpl_keyset *ks) {
  struct kpl_slot *old = ks->slots, *slots;
  size_t cap = ks->cap ? ks->cap * 2 : KPL_AGG_INDEX_INITIAL;

  if ((ks->n + 1) * 2 <= ks->cap)
    return 0;
  if (cap > ks->max_cap)
    return (ks->n + 1) < ks->cap ? 0 : WEIR_ETOOBIG;
  slots = calloc(cap, sizeof(*slots));
  if (slots == NULL)
    return WEIR_ENOMEM;
  for (size_t i = 0; i < ks->cap; i++) {
    size_t j;

    if (old[i].gen != ks->gen)
      continue;
    for (j = old[i].hash & (cap - 1); slots[j].gen == ks->gen; j = (j + 1) & (cap - 1))
      ;
    slots[j] = old[i];
  }
  free(old);
  ks->slots = slots;
  ks->cap = cap;
  return 0;
}

/* Finds key (in buf's entries) or the empty slot where it would go. */
static struct kpl_slot *keyset_find(struct kpl_keyset *ks, const uint8_t *buf, weir_buf key,
                                    uint32_t hash) {
  size_t mask = ks->cap - 1;

  for (size_t j = hash & mask;; j = (j + 1) & mask) {
    struct kpl_slot *s = &ks->slots[j];

    if (s->gen != ks->gen)
      return s;
    if (s->hash == hash && s->len == key.len && memcmp(buf + s->off, key.ptr, key.len) == 0)
      return s;
  }
}

static void keyset_reset(struct kpl_keyset *ks) {
  ks->n = 0;
  if (++ks->gen == 0) {
    if (ks->slots != NULL)
      memset(ks->slots, 0, ks->cap * sizeof(*ks->slots));
    ks->gen = 1;
  }
}

static uint32_t key_hash(weir_buf key) {
  return (uint32_t)XXH3_64bits(key.len ? key.ptr : (const uint8_t *)"", key.len);
}

int weir__kpl_agg_new(struct weir_kpl_aggregator **out, const struct weir_kpl_agg_config *cfg) {
  struct weir_kpl_agg_config c = {0, 0, WEIR_KPL_AGG_STYLE_KPL};
  struct weir_kpl_aggregator *a = NULL;
  int rc = WEIR_ENOMEM;

  if (out == NULL)
    return WEIR_EINVAL;
  if (cfg != NULL)
    c = *cfg;
  if (c.max_size == 0)
    c.max_size = WEIR_KPL_KINESIS_RECORD_MAX;
  if (c.max_size < WEIR_KPL_AGG_MIN_SIZE || c.max_size > WEIR_KPL_RECORD_MAX_LIMIT ||
      (c.style != WEIR_KPL_AGG_STYLE_KPL && c.style != WEIR_KPL_AGG_STYLE_JAVA)) {
    WEIR_LOG_ERR("kpl aggregator: max_size %zu is outside %d..%d or the style is unknown",
                 c.max_size, WEIR_KPL_AGG_MIN_SIZE, WEIR_KPL_RECORD_MAX_LIMIT);
    return WEIR_EINVAL;
  }
  a = calloc(1, sizeof(*a));
  if (a == NULL)
    goto fail;
  a->cfg = c;
  a->pkbuf = malloc(c.max_size);
  a->ehkbuf = malloc(c.max_size);
  a->recbuf = malloc(c.max_size);
  if (a->pkbuf == NULL || a->ehkbuf == NULL || a->recbuf == NULL)
    goto fail;
  /* Every table entry takes at least 3 bytes (tag, length, one character), so a table cannot
   * have more than max_size / 3 entries; the index is kept at most half full. */
  a->pks.max_cap = pow2_at_least(2 * (c.max_size / 3 + 2));
  a->ehks.max_cap = a->pks.max_cap;
  a->pks.gen = 1;
  a->ehks.gen = 1;
  if ((rc = weir__kpl_md5_init(&a->md5)) != 0)
    goto fail;
  *out = a;
  return 0;
fail:
  weir__kpl_agg_free(a);
  return rc;
}

void weir__kpl_agg_free(struct weir_kpl_aggregator *a) {
  if (a == NULL)
    return;
  weir__kpl_md5_cleanup(&a->md5);
  keyset_free(&a->pks);
  keyset_free(&a->ehks);
  free(a->pkbuf);
  free(a->ehkbuf);
  free(a->recbuf);
  free(a);
}

static size_t pk_chars(weir_buf pk) {
  size_t n = 0;

  for (size_t i = 0; i < pk.len; i++)
    n += (pk.ptr[i] & 0xC0) != 0x80;
  return n;
}

static size_t entry_len(size_t len) {
  return 1 + varint_len(len) + len;
}

/* Appends a table entry (tag, length, bytes) to buf at *len; returns the key bytes' offset. */
static uint32_t put_entry(uint8_t *buf, size_t *len, uint8_t tag, weir_buf key) {
  uint8_t *p = buf + *len;
  uint32_t off;

  *p++ = tag;
  p = put_varint(p, key.len);
  off = (uint32_t)(p - buf);
  if (key.len)
    memcpy(p, key.ptr, key.len);
  *len = off + key.len;
  return off;
}

/* Where a user record goes: table lookups and its encoded sizes, computed before anything in
 * the aggregator changes. */
struct kpl_plan {
  weir_buf pk;
  weir_buf ehk; /* text stored in the table; ptr NULL when reusing a computed entry */
  struct kpl_slot *pk_slot;
  struct kpl_slot *ehk_slot;
  uint32_t pk_hash;
  uint32_t ehk_hash;
  uint32_t pk_index;
  uint32_t ehk_index;
  bool has_ehk;
  bool new_pk;
  bool new_ehk;
  bool computed_ehk;       /* Java style: the stored EHK is the partition key's hash key */
  struct weir_kpl_u128 hk; /* the record's hash key, when known (always for the first) */
  size_t body;             /* encoded Record, without its own tag and length */
  size_t total;            /* the Kinesis record (data + outer key) with this user record */
  char hk_text[WEIR_KPL_HASH_KEY_DEC_MAX + 1];
};

/* Validates a user record's keys; fills p->hk from an explicit hash key. */
static int agg_validate(weir_buf pk, const weir_buf *ehk, struct kpl_plan *p) {
  if (pk.len == 0 || pk.len > KPL_PARTITION_KEY_MAX_BYTES ||
      pk_chars(pk) > WEIR_KPL_PARTITION_KEY_MAX_CHARS) {
    WEIR_LOG_ERR("kpl aggregator: partition key of %zu bytes rejected: Kinesis needs 1 to %d "
                 "characters",
                 pk.len, WEIR_KPL_PARTITION_KEY_MAX_CHARS);
    return WEIR_EINVAL;
  }
  if (ehk != NULL && (ehk->len > KPL_PARTITION_KEY_MAX_BYTES ||
                      weir__kpl_u128_parse((const char *)ehk->ptr, ehk->len, &p->hk) != 0)) {
    WEIR_LOG_ERR("kpl aggregator: explicit hash key \"%.*s\" rejected: it must be the decimal "
                 "text of a value from 0 to 2^128-1",
                 (int)(ehk->len < 64 ? ehk->len : 64),
                 ehk->ptr != NULL ? (const char *)ehk->ptr : "");
    return WEIR_EINVAL;
  }
  return 0;
}

/* Looks the keys up and sizes the result. The key indices must have room for one more key. */
static int agg_plan(struct weir_kpl_aggregator *a, weir_buf pk, const weir_buf *ehk,
                    size_t data_len, struct kpl_plan *p) {
  size_t rec, outer_pk;
  int rc;

  p->pk = pk;
  p->pk_hash = key_hash(pk);
  p->pk_slot = keyset_find(&a->pks, a->pkbuf, pk, p->pk_hash);
  p->new_pk = p->pk_slot->gen != a->pks.gen;
  p->pk_index = p->new_pk ? (uint32_t)a->pks.n : p->pk_slot->index;
  p->has_ehk = ehk != NULL;
  p->computed_ehk = false;
  p->new_ehk = false;
  p->ehk_slot = NULL;
  p->ehk.ptr = NULL;
  p->ehk.len = 0;
  if (ehk != NULL) {
    p->ehk = *ehk;
  } else if (a->cfg.style == WEIR_KPL_AGG_STYLE_JAVA) {
    p->has_ehk = true;
    p->computed_ehk = true;
    if (!p->new_pk && p->pk_slot->aux != 0) {
      p->ehk_index = p->pk_slot->aux - 1; /* computed for an earlier record */
    } else {
      if ((rc = weir__kpl_hash_key(&a->md5, pk, &p->hk)) != 0)
        return rc;
      p->ehk.ptr = (const uint8_t *)p->hk_text;
      p->ehk.len = weir__kpl_u128_format(p->hk, p->hk_text);
    }
  }
  if (p->ehk.ptr != NULL) {
    p->ehk_hash = key_hash(p->ehk);
    p->ehk_slot = keyset_find(&a->ehks, a->ehkbuf, p->ehk, p->ehk_hash);
    p->new_ehk = p->ehk_slot->gen != a->ehks.gen;
    p->ehk_index = p->new_ehk ? (uint32_t)a->ehks.n : p->ehk_slot->index;
  }
  /* The outer explicit hash key is the first record's hash key. */
  if (a->count == 0 && ehk == NULL && p->ehk.ptr == NULL &&
      (rc = weir__kpl_hash_key(&a->md5, pk, &p->hk)) != 0)
    return rc;

  /* Exact size with this record (field-number order, FORMAT.md section 2). */
  p->body = 1 + varint_len(p->pk_index) + (p->has_ehk ? 1 + varint_len(p->ehk_index) : 0) + 1 +
            varint_len(data_len) + data_len;
  rec = 1 + varint_len(p->body) + p->body;
  outer_pk = a->cfg.style == WEIR_KPL_AGG_STYLE_KPL ? 1 : a->count ? a->first_pk.len : pk.len;
  p->total = WEIR_KPL_OVERHEAD + a->pklen + a->ehklen + a->reclen + rec + outer_pk +
             (p->new_pk ? entry_len(pk.len) : 0) + (p->new_ehk ? entry_len(p->ehk.len) : 0);
  return 0;
}

static void slot_fill(struct kpl_slot *s, uint32_t gen, uint32_t hash, uint32_t len, uint32_t index,
                      uint32_t off) {
  s->gen = gen;
  s->hash = hash;
  s->len = len;
  s->index = index;
  s->off = off;
  s->aux = 0;
}

/* Appends the planned record; it fits (checked against max_size). */
static void agg_commit(struct weir_kpl_aggregator *a, const struct kpl_plan *p, weir_buf data) {
  uint8_t *w;

  if (p->new_pk) {
    uint32_t off = put_entry(a->pkbuf, &a->pklen, KPL_TAG_BYTE(KPL_AGG_PK_TABLE, WT_LEN), p->pk);

    slot_fill(p->pk_slot, a->pks.gen, p->pk_hash, (uint32_t)p->pk.len, p->pk_index, off);
    a->pks.n++;
  }
  if (p->new_ehk) {
    uint32_t off =
        put_entry(a->ehkbuf, &a->ehklen, KPL_TAG_BYTE(KPL_AGG_EHK_TABLE, WT_LEN), p->ehk);

    slot_fill(p->ehk_slot, a->ehks.gen, p->ehk_hash, (uint32_t)p->ehk.len, p->ehk_index, off);
    a->ehks.n++;
  }
  if (p->computed_ehk)
    p->pk_slot->aux = p->ehk_index + 1;
  w = a->recbuf + a->reclen;
  *w++ = KPL_TAG_BYTE(KPL_AGG_RECORDS, WT_LEN);
  w = put_varint(w, p->body);
  *w++ = KPL_TAG_BYTE(KPL_REC_PK_INDEX, WT_VARINT);
  w = put_varint(w, p->pk_index);
  if (p->has_ehk) {
    *w++ = KPL_TAG_BYTE(KPL_REC_EHK_INDEX, WT_VARINT);
    w = put_varint(w, p->ehk_index);
  }
  *w++ = KPL_TAG_BYTE(KPL_REC_DATA, WT_LEN);
  w = put_varint(w, data.len);
  if (data.len)
    memcpy(w, data.ptr, data.len);
  if (a->count == 0) {
    a->first_pk.ptr = a->pkbuf + p->pk_slot->off;
    a->first_pk.len = p->pk.len;
    a->first_data.ptr = w;
    a->first_data.len = data.len;
    a->first_hash_key = p->hk;
  }
  a->reclen = (size_t)(w + data.len - a->recbuf);
  a->count++;
}

/* The KPL style's lone record too big to aggregate: kept as plain data (the KPL sends a
 * container of one user record unaggregated). */
static void agg_keep_plain(struct weir_kpl_aggregator *a, const struct kpl_plan *p, weir_buf data) {
  memcpy(a->pkbuf, p->pk.ptr, p->pk.len);
  if (data.len)
    memcpy(a->recbuf, data.ptr, data.len);
  a->first_pk.ptr = a->pkbuf;
  a->first_pk.len = p->pk.len;
  a->first_data.ptr = a->recbuf;
  a->first_data.len = data.len;
  a->first_hash_key = p->hk;
  a->plain_only = true;
  a->count = 1;
}

int weir__kpl_agg_add(struct weir_kpl_aggregator *a, weir_buf partition_key,
                      const weir_buf *explicit_hash_key, weir_buf data) {
  struct kpl_plan plan;
  int rc;

  if (a == NULL || (partition_key.ptr == NULL && partition_key.len) ||
      (data.ptr == NULL && data.len))
    return WEIR_EINVAL;
  if (a->finished)
    return WEIR_ESTATE;
  memset(&plan.hk, 0, sizeof(plan.hk));
  if ((rc = agg_validate(partition_key, explicit_hash_key, &plan)) != 0)
    return rc;
  if (a->plain_only || (a->cfg.max_count && a->count >= a->cfg.max_count))
    return WEIR_EAGAIN;
  /* Room for a new key in each index first: growing rehashes, which moves slots. */
  if ((rc = keyset_reserve(&a->pks)) != 0 || (rc = keyset_reserve(&a->ehks)) != 0)
    return rc == WEIR_ETOOBIG ? (a->count ? WEIR_EAGAIN : WEIR_ETOOBIG) : rc;
  if ((rc = agg_plan(a, partition_key, explicit_hash_key, data.len, &plan)) != 0)
    return rc;
  if (data.len > a->cfg.max_size || plan.total > a->cfg.max_size) {
    if (a->count)
      return WEIR_EAGAIN;
    if (a->cfg.style == WEIR_KPL_AGG_STYLE_KPL && data.len + partition_key.len <= a->cfg.max_size) {
      agg_keep_plain(a, &plan, data);
      return 0;
    }
    return WEIR_ETOOBIG;
  }
  agg_commit(a, &plan, data);
  return 0;
}

size_t weir__kpl_agg_count(const struct weir_kpl_aggregator *a) {
  return a->count;
}

static bool agg_is_plain(const struct weir_kpl_aggregator *a) {
  return a->plain_only || (a->cfg.style == WEIR_KPL_AGG_STYLE_KPL && a->count == 1);
}

size_t weir__kpl_agg_size(const struct weir_kpl_aggregator *a) {
  if (a->count == 0)
    return 0;
  if (agg_is_plain(a))
    return a->first_data.len;
  return WEIR_KPL_OVERHEAD + a->pklen + a->ehklen + a->reclen;
}

int weir__kpl_agg_finish(struct weir_kpl_aggregator *a, uint8_t *out, size_t cap,
                         struct weir_kpl_agg_result *res) {
  size_t size, pb;
  uint8_t *p;
  int rc;

  if (a == NULL || res == NULL || (out == NULL && cap))
    return WEIR_EINVAL;
  if (a->count == 0)
    return WEIR_ESTATE;
  size = weir__kpl_agg_size(a);
  if (cap < size)
    return WEIR_ETOOBIG;
  res->count = a->count;
  res->len = size;
  weir__kpl_u128_format(a->first_hash_key, res->explicit_hash_key);
  if (agg_is_plain(a)) {
    if (size)
      memcpy(out, a->first_data.ptr, size);
    res->aggregated = false;
    res->partition_key = a->first_pk;
  } else {
    pb = a->pklen + a->ehklen + a->reclen;
    memcpy(out, kpl_magic, WEIR_KPL_MAGIC_LEN);
    p = out + WEIR_KPL_MAGIC_LEN;
    memcpy(p, a->pkbuf, a->pklen);
    p += a->pklen;
    if (a->ehklen)
      memcpy(p, a->ehkbuf, a->ehklen);
    p += a->ehklen;
    memcpy(p, a->recbuf, a->reclen);
    if ((rc = weir__kpl_md5(&a->md5, out + WEIR_KPL_MAGIC_LEN, pb, out + WEIR_KPL_MAGIC_LEN + pb)))
      return rc;
    res->aggregated = true;
    if (a->cfg.style == WEIR_KPL_AGG_STYLE_KPL) {
      res->partition_key.ptr = (const uint8_t *)WEIR_KPL_AGG_PARTITION_KEY;
      res->partition_key.len = sizeof(WEIR_KPL_AGG_PARTITION_KEY) - 1;
    } else {
      res->partition_key = a->first_pk;
    }
  }
  a->finished = true;
  return 0;
}

void weir__kpl_agg_reset(struct weir_kpl_aggregator *a) {
  a->pklen = 0;
  a->ehklen = 0;
  a->reclen = 0;
  a->count = 0;
  a->plain_only = false;
  a->finished = false;
  a->first_pk.ptr = NULL;
  a->first_pk.len = 0;
  a->first_data.ptr = NULL;
  a->first_data.len = 0;
  keyset_reset(&a->pks);
  keyset_reset(&a->ehks);
}
