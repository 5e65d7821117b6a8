/*
 * sigv4.c: AWS Signature Version 4 signing: canonical request, string to sign, signing-key
 * cache, Authorization header and presigned query (rules and API in sigv4_int.h).
 *
 * One signature is: prepare (validate, hash the payload if needed, collect and sort the
 * headers), stream the canonical request through a staging buffer into SHA-256, build the
 * string to sign in a fixed stack buffer, HMAC it with the cached signing key. Working memory
 * is on the stack and bounded (about 12 KiB); nothing is allocated by weir.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/log_int.h"
#include "sigv4_int.h"

#define HMAC_BLOCK 64 /* SHA-256 block size (RFC 2104 B) */
#define SCOPE_TERM "aws4_request"
/* "YYYYMMDD/" + region + "/" + service + "/aws4_request" */
#define SCOPE_MAX (8 + 1 + WEIR_SIGV4_MAX_NAME + 1 + WEIR_SIGV4_MAX_NAME + 1 + 12)
#define CREDENTIAL_MAX (WEIR_AWS_ACCESS_KEY_ID_MAX + 1 + SCOPE_MAX)
/* "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + 64 hex digits */
#define STS_MAX (16 + 1 + WEIR_SIGV4_DATE_LEN + 1 + SCOPE_MAX + 1 + WEIR_SIGV4_HEX_LEN)
#define PAYLOAD_HASH_MAX 128
#define STAGE_CAP 1024
/* Headers the signer may add in header mode: x-amz-date, x-amz-security-token,
 * x-amz-content-sha256. */
#define ADDED_HEADERS_MAX 3
/* Parameters the signer adds in query mode: Algorithm, Credential, Date, Expires,
 * Security-Token, SignedHeaders. */
#define ADDED_PARAMS_MAX 6

struct key_entry {
  bool valid;
  char date[8];
  size_t region_len;
  size_t service_len;
  char region[WEIR_SIGV4_MAX_NAME];
  char service[WEIR_SIGV4_MAX_NAME];
  uint8_t key[WEIR_SIGV4_KEY_LEN]; /* secret: zeroed on destroy */
};

struct weir_sigv4_signer {
  EVP_MD *sha256; /* fetched once: an implicit fetch per init would cost a store lookup */
  EVP_MD_CTX *md; /* reused for every digest; one thread at a time (see the header) */
  unsigned flags;
  size_t region_len;
  size_t service_len;
  size_t akid_len;
  char region[WEIR_SIGV4_MAX_NAME + 1];
  char service[WEIR_SIGV4_MAX_NAME + 1];
  char akid[WEIR_AWS_ACCESS_KEY_ID_MAX + 1];
  /* Secrets, never logged, zeroed on destroy: "AWS4" + secret access key (the first HMAC
   * key of the derivation), and the session token (NULL when none). */
  uint8_t k_secret[4 + WEIR_AWS_SECRET_MAX];
  size_t k_secret_len;
  char *token;
  size_t token_len;
  struct key_entry cache[WEIR_SIGV4_KEY_CACHE];
  unsigned cache_next; /* round-robin victim */
};

/* ---------------------------------------------------------------------------------------- */
/* Characters                                                                                 */

static bool is_unreserved(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

static bool is_ws(uint8_t c) {
  return c == ' ' || c == '\t';
}

static uint8_t lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
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

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static void to_hex(const uint8_t *in, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex_lower[in[i] >> 4];
    out[2 * i + 1] = hex_lower[in[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Printable ASCII without space: methods, payload hashes. */
static bool is_visible(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] <= 0x20 || p[i] >= 0x7f)
      return false;
  return true;
}

static bool is_name(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)p[i];
    if (!is_unreserved(c) || c == '~')
      return false;
  }
  return true;
}

static bool buf_eq_lower(weir_buf b, const char *lit) {
  size_t n = strlen(lit);
  if (b.len != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (lower(b.ptr[i]) != (uint8_t)lit[i])
      return false;
  return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Digests                                                                                    */

/* OpenSSL failures on a fetched SHA-256 can only be allocation failures (3.0 allocates the
 * provider context in EVP_DigestInit_ex), hence WEIR_ENOMEM. */
static int md_init(struct weir_sigv4_signer *s) {
  return EVP_DigestInit_ex(s->md, s->sha256, NULL) == 1 ? 0 : WEIR_ENOMEM;
}

static int md_update(struct weir_sigv4_signer *s, const void *p, size_t n) {
  return (n == 0 || EVP_DigestUpdate(s->md, p, n) == 1) ? 0 : WEIR_ENOMEM;
}

static int md_final(struct weir_sigv4_signer *s, uint8_t out[32]) {
  unsigned int n = 0;
  return (EVP_DigestFinal_ex(s->md, out, &n) == 1 && n == 32) ? 0 : WEIR_ENOMEM;
}

static int sha256(struct weir_sigv4_signer *s, const void *p, size_t n, uint8_t out[32]) {
  int rc;
  if ((rc = md_init(s)) != 0 || (rc = md_update(s, p, n)) != 0 || (rc = md_final(s, out)) != 0)
    return rc;
  return 0;
}

/* HMAC-SHA256 (RFC 2104) over the signer's reusable digest context: HMAC() and EVP_MAC fetch
 * and allocate on every call, which costs more than the hashing itself for short inputs. */
static int hmac_sha256(struct weir_sigv4_signer *s, const uint8_t *key, size_t key_len,
                       const void *msg, size_t msg_len, uint8_t out[32]) {
  uint8_t k[HMAC_BLOCK] = {0};
  uint8_t pad[HMAC_BLOCK];
  uint8_t inner[32];
  int rc;

  if (key_len > HMAC_BLOCK) {
    if ((rc = sha256(s, key, key_len, k)) != 0)
      goto done;
  } else {
    memcpy(k, key, key_len);
  }
  for (size_t i = 0; i < HMAC_BLOCK; i++)
    pad[i] = k[i] ^ 0x36;
  if ((rc = md_init(s)) != 0 || (rc = md_update(s, pad, HMAC_BLOCK)) != 0 ||
      (rc = md_update(s, msg, msg_len)) != 0 || (rc = md_final(s, inner)) != 0)
    goto done;
  for (size_t i = 0; i < HMAC_BLOCK; i++)
    pad[i] = k[i] ^ 0x5c;
  if ((rc = md_init(s)) != 0 || (rc = md_update(s, pad, HMAC_BLOCK)) != 0 ||
      (rc = md_update(s, inner, sizeof(inner))) != 0 || (rc = md_final(s, out)) != 0)
    goto done;
done:
  OPENSSL_cleanse(k, sizeof(k));
  OPENSSL_cleanse(pad, sizeof(pad));
  OPENSSL_cleanse(inner, sizeof(inner));
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Sink: text goes to SHA-256 through a staging buffer, and/or to a bounded text buffer.      */

struct sink {
  struct weir_sigv4_signer *s; /* non-NULL: hash everything written (md_init done) */
  char *text;                  /* non-NULL: also copy it here */
  size_t text_cap;             /* room for text, excluding the NUL */
  size_t text_len;
  size_t stage_len;
  int err; /* first error; later writes are ignored */
  uint8_t stage[STAGE_CAP];
};

static void sink_init(struct sink *k, struct weir_sigv4_signer *hash_with, char *text,
                      size_t text_cap) {
  k->s = hash_with;
  k->text = text;
  k->text_cap = text_cap > 0 ? text_cap - 1 : 0;
  k->text_len = 0;
  k->stage_len = 0;
  k->err = 0;
  if (text != NULL && text_cap > 0)
    text[0] = '\0';
  if (hash_with != NULL)
    k->err = md_init(hash_with);
}

static void sink_put(struct sink *k, const void *p, size_t n) {
  if (k->err != 0 || n == 0)
    return;
  if (k->text != NULL) {
    if (n > k->text_cap - k->text_len) {
      k->err = WEIR_ETOOBIG;
      return;
    }
    memcpy(k->text + k->text_len, p, n);
    k->text_len += n;
  }
  if (k->s != NULL) {
    if (n > STAGE_CAP - k->stage_len) {
      if ((k->err = md_update(k->s, k->stage, k->stage_len)) != 0)
        return;
      k->stage_len = 0;
      if (n >= STAGE_CAP) {
        k->err = md_update(k->s, p, n);
        return;
      }
    }
    memcpy(k->stage + k->stage_len, p, n);
    k->stage_len += n;
  }
}

static void sink_putc(struct sink *k, char c) {
  if (k->s != NULL && k->text == NULL && k->err == 0 && k->stage_len < STAGE_CAP) {
    k->stage[k->stage_len++] = (uint8_t)c;
    return;
  }
  sink_put(k, &c, 1);
}

static void sink_puts(struct sink *k, const char *str) {
  sink_put(k, str, strlen(str));
}

static void sink_put_pct(struct sink *k, uint8_t c) {
  char e[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};
  sink_put(k, e, 3);
}

/* Percent-encodes every byte outside the unreserved set (and '/' when keep_slash). */
static void sink_put_encoded(struct sink *k, const uint8_t *p, size_t n, bool keep_slash) {
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    if (is_unreserved(p[i]) || (keep_slash && p[i] == '/'))
      continue;
    sink_put(k, p + run, i - run);
    sink_put_pct(k, p[i]);
    run = i + 1;
  }
  sink_put(k, p + run, n - run);
}

/* Finishes: NUL-terminates the text, and/or finalises the hash into `hash`. */
static int sink_finish(struct sink *k, uint8_t hash[32]) {
  if (k->err == 0 && k->s != NULL) {
    if ((k->err = md_update(k->s, k->stage, k->stage_len)) == 0)
      k->err = md_final(k->s, hash);
    k->stage_len = 0;
  }
  if (k->text != NULL) {
    if (k->err != 0)
      k->text_len = 0;
    k->text[k->text_len] = '\0';
  }
  return k->err;
}

/* ---------------------------------------------------------------------------------------- */
/* Query parameters: compared and written in their canonical (encoded) form on the fly.     */

struct qparam {
  weir_buf key;
  weir_buf val;
  bool literal; /* signer-made: encode as is; caller's: percent-decode first */
};

struct enc_iter {
  const uint8_t *p;
  size_t n;
  size_t i;
  bool literal;
  uint8_t pend[2];
  int n_pend;
};

static void enc_iter_init(struct enc_iter *it, weir_buf b, bool literal) {
  it->p = b.ptr;
  it->n = b.len;
  it->i = 0;
  it->literal = literal;
  it->n_pend = 0;
}

/* Next byte of the canonical encoding, or -1 at the end. */
static int enc_next(struct enc_iter *it) {
  uint8_t c;
  if (it->n_pend > 0) {
    c = it->pend[2 - it->n_pend];
    it->n_pend--;
    return c;
  }
  if (it->i >= it->n)
    return -1;
  c = it->p[it->i];
  if (!it->literal && c == '%' && it->i + 2 < it->n && hexval(it->p[it->i + 1]) >= 0 &&
      hexval(it->p[it->i + 2]) >= 0) {
    c = (uint8_t)(hexval(it->p[it->i + 1]) << 4 | hexval(it->p[it->i + 2]));
    it->i += 3;
  } else {
    it->i++;
  }
  if (is_unreserved(c))
    return c;
  it->pend[0] = (uint8_t)hex_upper[c >> 4];
  it->pend[1] = (uint8_t)hex_upper[c & 15];
  it->n_pend = 2;
  return '%';
}

static int enc_cmp(weir_buf a, bool a_lit, weir_buf b, bool b_lit) {
  struct enc_iter ia, ib;
  enc_iter_init(&ia, a, a_lit);
  enc_iter_init(&ib, b, b_lit);
  for (;;) {
    int ca = enc_next(&ia), cb = enc_next(&ib);
    if (ca != cb || ca < 0)
      return ca - cb;
  }
}

static int qparam_cmp(const struct qparam *a, const struct qparam *b) {
  int c = enc_cmp(a->key, a->literal, b->key, b->literal);
  return c != 0 ? c : enc_cmp(a->val, a->literal, b->val, b->literal);
}

static void sink_put_canonical(struct sink *k, weir_buf b, bool literal) {
  struct enc_iter it;
  uint8_t chunk[64];
  size_t n = 0;
  int c;

  if (literal) {
    sink_put_encoded(k, b.ptr, b.len, false);
    return;
  }
  enc_iter_init(&it, b, false);
  while ((c = enc_next(&it)) >= 0) {
    chunk[n++] = (uint8_t)c;
    if (n == sizeof(chunk)) {
      sink_put(k, chunk, n);
      n = 0;
    }
  }
  sink_put(k, chunk, n);
}

/* ---------------------------------------------------------------------------------------- */
/* Request preparation                                                                        */

struct hdr {
  weir_buf name;
  weir_buf value;
};

struct prep {
  const struct weir_sigv4_request *req;
  bool query_mode;
  const char *region;
  size_t region_len;
  const char *service;
  size_t service_len;
  char payload_hex[PAYLOAD_HASH_MAX + 1];
  size_t payload_hex_len;
  size_t n_hdrs;
  size_t signed_len;
  size_t scope_len;
  size_t credential_len; /* akid + "/" + scope */
  struct hdr hdrs[WEIR_SIGV4_MAX_HEADERS + ADDED_HEADERS_MAX];
  char signed_headers[WEIR_SIGV4_SIGNED_HEADERS_MAX];
  char credential[CREDENTIAL_MAX + 1];
  char expires[16];
};

static int name_cmp(weir_buf a, weir_buf b) {
  size_t n = a.len < b.len ? a.len : b.len;
  for (size_t i = 0; i < n; i++) {
    uint8_t ca = lower(a.ptr[i]), cb = lower(b.ptr[i]);
    if (ca != cb)
      return ca < cb ? -1 : 1;
  }
  return a.len < b.len ? -1 : (a.len > b.len ? 1 : 0);
}

static weir_buf bstr(const char *s) {
  weir_buf b = {(const uint8_t *)s, strlen(s)};
  return b;
}

static weir_buf trimmed(weir_buf b) {
  while (b.len > 0 && is_ws(b.ptr[0])) {
    b.ptr++;
    b.len--;
  }
  while (b.len > 0 && is_ws(b.ptr[b.len - 1]))
    b.len--;
  return b;
}

static bool valid_amz_date(const char *d) {
  for (int i = 0; i < WEIR_SIGV4_DATE_LEN; i++) {
    char c = d[i];
    bool ok = (i == 8) ? c == 'T' : (i == 15) ? c == 'Z' : (c >= '0' && c <= '9');
    if (!ok)
      return false;
  }
  return true;
}

static int check_header(const struct weir_sigv4_header *h, size_t idx) {
  if (h->name.len == 0 || (h->name.ptr == NULL) || (h->value.len > 0 && h->value.ptr == NULL)) {
    WEIR_LOG_ERR("sigv4: header %zu has an empty name or a NULL value", idx);
    return WEIR_EINVAL;
  }
  for (size_t i = 0; i < h->name.len; i++) {
    uint8_t c = h->name.ptr[i];
    if (c <= 0x20 || c >= 0x7f || c == ':') {
      WEIR_LOG_ERR("sigv4: header %zu: name has a space, ':' or control character", idx);
      return WEIR_EINVAL;
    }
  }
  for (size_t i = 0; i < h->value.len; i++) {
    uint8_t c = h->value.ptr[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      /* The value is not logged: it may be a token. */
      WEIR_LOG_ERR("sigv4: header '%.*s': value has a control character (CR, LF or NUL); "
                   "join folded lines with a space",
                   (int)(h->name.len > 64 ? 64 : h->name.len), (const char *)h->name.ptr);
      return WEIR_EINVAL;
    }
  }
  return 0;
}

/* Validates the request, hashes the payload, collects and sorts headers, builds the scope,
 * the credential and the signed-header list. */
static int prepare(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                   bool query_mode, struct prep *p) {
  bool have_date = false, have_token = false, have_sha = false;
  weir_buf date_buf;
  uint8_t digest[32];
  int rc, n;

  p->req = req;
  p->query_mode = query_mode;
  if (req->method.len == 0 || req->method.ptr == NULL ||
      !is_visible(req->method.ptr, req->method.len)) {
    WEIR_LOG_ERR("sigv4: the method is empty or has a space or control character");
    return WEIR_EINVAL;
  }
  if (req->amz_date == NULL || strnlen(req->amz_date, WEIR_SIGV4_DATE_LEN) < WEIR_SIGV4_DATE_LEN ||
      !valid_amz_date(req->amz_date)) {
    WEIR_LOG_ERR("sigv4: amz_date is not YYYYMMDDTHHMMSSZ");
    return WEIR_EINVAL;
  }
  if (query_mode ? (req->expires == 0 || req->expires > WEIR_SIGV4_MAX_EXPIRES)
                 : req->expires != 0) {
    WEIR_LOG_ERR("sigv4: expires %u is not valid for %s (presigned URLs: 1..%u s)", req->expires,
                 query_mode ? "a presigned URL" : "Authorization-header signing",
                 WEIR_SIGV4_MAX_EXPIRES);
    return WEIR_EINVAL;
  }
  if (req->n_headers > WEIR_SIGV4_MAX_HEADERS) {
    WEIR_LOG_ERR("sigv4: %zu headers, more than the bound of %d", req->n_headers,
                 WEIR_SIGV4_MAX_HEADERS);
    return WEIR_ETOOBIG;
  }
  if ((req->path.len > 0 && req->path.ptr == NULL) ||
      (req->query.len > 0 && req->query.ptr == NULL) ||
      (req->payload.len > 0 && req->payload.ptr == NULL) ||
      (req->n_headers > 0 && req->headers == NULL)) {
    WEIR_LOG_ERR("sigv4: NULL pointer with a non-zero length in the request");
    return WEIR_EINVAL;
  }

  /* Region and service: the request's override or the signer's. */
  p->region = s->region;
  p->region_len = s->region_len;
  p->service = s->service;
  p->service_len = s->service_len;
  if (req->region.len > 0) {
    p->region = (const char *)req->region.ptr;
    p->region_len = req->region.len;
  }
  if (req->service.len > 0) {
    p->service = (const char *)req->service.ptr;
    p->service_len = req->service.len;
  }
  if (p->region_len > WEIR_SIGV4_MAX_NAME || p->service_len > WEIR_SIGV4_MAX_NAME ||
      !is_name(p->region, p->region_len) || !is_name(p->service, p->service_len)) {
    WEIR_LOG_ERR("sigv4: region or service override is not a name of at most %d characters",
                 WEIR_SIGV4_MAX_NAME);
    return WEIR_EINVAL;
  }

  /* Payload hash. */
  if (req->payload_hash.len > 0) {
    if (req->payload_hash.ptr == NULL || req->payload_hash.len > PAYLOAD_HASH_MAX ||
        !is_visible(req->payload_hash.ptr, req->payload_hash.len)) {
      WEIR_LOG_ERR("sigv4: payload_hash is not a hex digest or UNSIGNED-PAYLOAD");
      return WEIR_EINVAL;
    }
    memcpy(p->payload_hex, req->payload_hash.ptr, req->payload_hash.len);
    p->payload_hex[req->payload_hash.len] = '\0';
    p->payload_hex_len = req->payload_hash.len;
  } else {
    if ((rc = sha256(s, req->payload.ptr, req->payload.len, digest)) != 0)
      return rc;
    to_hex(digest, 32, p->payload_hex);
    p->payload_hex_len = WEIR_SIGV4_HEX_LEN;
  }

  /* Headers, then the ones the signer adds. */
  date_buf.ptr = (const uint8_t *)req->amz_date;
  date_buf.len = WEIR_SIGV4_DATE_LEN;
  p->n_hdrs = 0;
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct weir_sigv4_header *h = &req->headers[i];
    if ((rc = check_header(h, i)) != 0)
      return rc;
    if (buf_eq_lower(h->name, "authorization"))
      continue;
    if (buf_eq_lower(h->name, "x-amz-date")) {
      weir_buf v = trimmed(h->value);
      if (!query_mode &&
          (v.len != WEIR_SIGV4_DATE_LEN || memcmp(v.ptr, req->amz_date, v.len) != 0)) {
        WEIR_LOG_ERR("sigv4: the X-Amz-Date header differs from amz_date");
        return WEIR_EINVAL;
      }
      have_date = true;
    } else if (buf_eq_lower(h->name, "x-amz-security-token")) {
      have_token = true;
    } else if (buf_eq_lower(h->name, "x-amz-content-sha256")) {
      have_sha = true;
    }
    p->hdrs[p->n_hdrs].name = h->name;
    p->hdrs[p->n_hdrs].value = h->value;
    p->n_hdrs++;
  }
  if (!query_mode) {
    if (!have_date) {
      p->hdrs[p->n_hdrs].name = bstr("x-amz-date");
      p->hdrs[p->n_hdrs++].value = date_buf;
    }
    if (!have_token && s->token_len > 0 && !(s->flags & WEIR_SIGV4_OMIT_SESSION_TOKEN)) {
      p->hdrs[p->n_hdrs].name = bstr("x-amz-security-token");
      p->hdrs[p->n_hdrs].value.ptr = (const uint8_t *)s->token;
      p->hdrs[p->n_hdrs++].value.len = s->token_len;
    }
    if (!have_sha && (s->flags & WEIR_SIGV4_SIGN_BODY)) {
      p->hdrs[p->n_hdrs].name = bstr("x-amz-content-sha256");
      p->hdrs[p->n_hdrs].value.ptr = (const uint8_t *)p->payload_hex;
      p->hdrs[p->n_hdrs++].value.len = p->payload_hex_len;
    }
  }

  /* Stable insertion sort by lower-cased name: repeated names keep the caller's order. */
  for (size_t i = 1; i < p->n_hdrs; i++) {
    struct hdr h = p->hdrs[i];
    size_t j = i;
    while (j > 0 && name_cmp(p->hdrs[j - 1].name, h.name) > 0) {
      p->hdrs[j] = p->hdrs[j - 1];
      j--;
    }
    p->hdrs[j] = h;
  }

  /* Signed headers: the distinct names, lower-cased, ';'-separated. */
  p->signed_len = 0;
  for (size_t i = 0; i < p->n_hdrs; i++) {
    weir_buf nm = p->hdrs[i].name;
    if (i > 0 && name_cmp(p->hdrs[i - 1].name, nm) == 0)
      continue;
    if (p->signed_len + nm.len + 1 >= sizeof(p->signed_headers)) {
      WEIR_LOG_ERR("sigv4: signed header list longer than %d bytes", WEIR_SIGV4_SIGNED_HEADERS_MAX);
      return WEIR_ETOOBIG;
    }
    if (p->signed_len > 0)
      p->signed_headers[p->signed_len++] = ';';
    for (size_t j = 0; j < nm.len; j++)
      p->signed_headers[p->signed_len++] = (char)lower(nm.ptr[j]);
  }
  p->signed_headers[p->signed_len] = '\0';

  /* Credential: "<akid>/<date>/<region>/<service>/aws4_request"; the scope is its tail. */
  n = snprintf(p->credential, sizeof(p->credential), "%s/%.8s/%.*s/%.*s/" SCOPE_TERM, s->akid,
               req->amz_date, (int)p->region_len, p->region, (int)p->service_len, p->service);
  WEIR_ASSERT(n > 0 && (size_t)n < sizeof(p->credential));
  p->credential_len = (size_t)n;
  p->scope_len = p->credential_len - s->akid_len - 1;
  snprintf(p->expires, sizeof(p->expires), "%u", req->expires);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Canonical request                                                                          */

static int put_path(struct sink *k, const struct weir_sigv4_signer *s, weir_buf path) {
  weir_buf seg[WEIR_SIGV4_MAX_PATH_SEGMENTS];
  size_t n_seg = 0, i = 0;

  if (path.len == 0) {
    sink_putc(k, '/');
    return 0;
  }
  if (s->flags & WEIR_SIGV4_NO_NORMALIZE_PATH) {
    if (path.ptr[0] != '/')
      sink_putc(k, '/');
    sink_put_encoded(k, path.ptr, path.len, true);
    return 0;
  }
  /* Normalise: drop empty and "." segments, ".." removes the previous segment. */
  while (i < path.len) {
    size_t start = i;
    weir_buf sgm;
    while (i < path.len && path.ptr[i] != '/')
      i++;
    sgm.ptr = path.ptr + start;
    sgm.len = i - start;
    i++; /* the '/' */
    if (sgm.len == 0 || (sgm.len == 1 && sgm.ptr[0] == '.'))
      continue;
    if (sgm.len == 2 && sgm.ptr[0] == '.' && sgm.ptr[1] == '.') {
      if (n_seg > 0)
        n_seg--;
      continue;
    }
    if (n_seg == WEIR_SIGV4_MAX_PATH_SEGMENTS) {
      WEIR_LOG_ERR("sigv4: path has more than %d segments", WEIR_SIGV4_MAX_PATH_SEGMENTS);
      return WEIR_ETOOBIG;
    }
    seg[n_seg++] = sgm;
  }
  sink_putc(k, '/');
  for (size_t j = 0; j < n_seg; j++) {
    if (j > 0)
      sink_putc(k, '/');
    sink_put_encoded(k, seg[j].ptr, seg[j].len, false);
  }
  if (n_seg > 0 && path.ptr[path.len - 1] == '/')
    sink_putc(k, '/');
  return 0;
}

static int put_query(struct sink *k, const struct weir_sigv4_signer *s, const struct prep *p) {
  struct qparam qp[WEIR_SIGV4_MAX_QUERY_PARAMS + ADDED_PARAMS_MAX];
  size_t n = 0, i = 0;
  weir_buf q = p->req->query;

  while (i < q.len) {
    size_t start = i, eq;
    while (i < q.len && q.ptr[i] != '&')
      i++;
    if (i > start) {
      if (n == WEIR_SIGV4_MAX_QUERY_PARAMS) {
        WEIR_LOG_ERR("sigv4: query has more than %d parameters", WEIR_SIGV4_MAX_QUERY_PARAMS);
        return WEIR_ETOOBIG;
      }
      for (eq = start; eq < i && q.ptr[eq] != '='; eq++)
        ;
      qp[n].key.ptr = q.ptr + start;
      qp[n].key.len = eq - start;
      qp[n].val.ptr = q.ptr + (eq < i ? eq + 1 : i);
      qp[n].val.len = eq < i ? i - eq - 1 : 0;
      qp[n].literal = false;
      n++;
    }
    i++; /* the '&' */
  }
  if (p->query_mode) {
    struct qparam add[ADDED_PARAMS_MAX] = {
        {bstr("X-Amz-Algorithm"), bstr(WEIR_SIGV4_ALGORITHM), true},
        {bstr("X-Amz-Credential"), {(const uint8_t *)p->credential, p->credential_len}, true},
        {bstr("X-Amz-Date"), {(const uint8_t *)p->req->amz_date, WEIR_SIGV4_DATE_LEN}, true},
        {bstr("X-Amz-Expires"), bstr(p->expires), true},
        {bstr("X-Amz-SignedHeaders"), {(const uint8_t *)p->signed_headers, p->signed_len}, true},
        {bstr("X-Amz-Security-Token"), {(const uint8_t *)s->token, s->token_len}, true},
    };
    size_t n_add = (s->token_len > 0 && !(s->flags & WEIR_SIGV4_OMIT_SESSION_TOKEN)) ? 6 : 5;
    memcpy(qp + n, add, n_add * sizeof(add[0]));
    n += n_add;
  }
  for (size_t a = 1; a < n; a++) {
    struct qparam x = qp[a];
    size_t b = a;
    while (b > 0 && qparam_cmp(&qp[b - 1], &x) > 0) {
      qp[b] = qp[b - 1];
      b--;
    }
    qp[b] = x;
  }
  for (size_t a = 0; a < n; a++) {
    if (a > 0)
      sink_putc(k, '&');
    sink_put_canonical(k, qp[a].key, qp[a].literal);
    sink_putc(k, '=');
    sink_put_canonical(k, qp[a].val, qp[a].literal);
  }
  return 0;
}

/* Trimmed, with every run of spaces and tabs collapsed to one space. */
static void put_header_value(struct sink *k, weir_buf v) {
  size_t i = 0, run;
  v = trimmed(v);
  run = 0;
  while (i < v.len) {
    if (!is_ws(v.ptr[i])) {
      i++;
      continue;
    }
    sink_put(k, v.ptr + run, i - run);
    sink_putc(k, ' ');
    while (i < v.len && is_ws(v.ptr[i]))
      i++;
    run = i;
  }
  sink_put(k, v.ptr + run, v.len - run);
}

static void put_lower(struct sink *k, weir_buf b) {
  char chunk[64];
  size_t n = 0;
  for (size_t i = 0; i < b.len; i++) {
    chunk[n++] = (char)lower(b.ptr[i]);
    if (n == sizeof(chunk)) {
      sink_put(k, chunk, n);
      n = 0;
    }
  }
  sink_put(k, chunk, n);
}

/* Writes the canonical request to the sink. */
static int put_canonical_request(struct sink *k, const struct weir_sigv4_signer *s,
                                 const struct prep *p) {
  int rc;

  sink_put(k, p->req->method.ptr, p->req->method.len);
  sink_putc(k, '\n');
  if ((rc = put_path(k, s, p->req->path)) != 0)
    return rc;
  sink_putc(k, '\n');
  if ((rc = put_query(k, s, p)) != 0)
    return rc;
  sink_putc(k, '\n');
  for (size_t i = 0; i < p->n_hdrs; i++) {
    if (i > 0 && name_cmp(p->hdrs[i - 1].name, p->hdrs[i].name) == 0) {
      sink_putc(k, ',');
    } else {
      if (i > 0)
        sink_putc(k, '\n');
      put_lower(k, p->hdrs[i].name);
      sink_putc(k, ':');
    }
    put_header_value(k, p->hdrs[i].value);
  }
  if (p->n_hdrs > 0)
    sink_putc(k, '\n');
  sink_putc(k, '\n');
  sink_put(k, p->signed_headers, p->signed_len);
  sink_putc(k, '\n');
  sink_put(k, p->payload_hex, p->payload_hex_len);
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Signing key, string to sign, signature                                                     */

static int derive_key(struct weir_sigv4_signer *s, const char *date8, const char *region,
                      size_t region_len, const char *service, size_t service_len,
                      const uint8_t **key) {
  struct key_entry *e;
  uint8_t k1[32], k2[32];
  int rc;

  for (unsigned i = 0; i < WEIR_SIGV4_KEY_CACHE; i++) {
    e = &s->cache[i];
    if (e->valid && memcmp(e->date, date8, 8) == 0 && e->region_len == region_len &&
        e->service_len == service_len && memcmp(e->region, region, region_len) == 0 &&
        memcmp(e->service, service, service_len) == 0) {
      *key = e->key;
      return 0;
    }
  }
  e = &s->cache[s->cache_next];
  s->cache_next = (s->cache_next + 1) % WEIR_SIGV4_KEY_CACHE;
  e->valid = false;
  if ((rc = hmac_sha256(s, s->k_secret, s->k_secret_len, date8, 8, k1)) != 0 ||
      (rc = hmac_sha256(s, k1, 32, region, region_len, k2)) != 0 ||
      (rc = hmac_sha256(s, k2, 32, service, service_len, k1)) != 0 ||
      (rc = hmac_sha256(s, k1, 32, SCOPE_TERM, strlen(SCOPE_TERM), e->key)) != 0)
    goto done;
  memcpy(e->date, date8, 8);
  memcpy(e->region, region, region_len);
  e->region_len = region_len;
  memcpy(e->service, service, service_len);
  e->service_len = service_len;
  e->valid = true;
  *key = e->key;
done:
  OPENSSL_cleanse(k1, sizeof(k1));
  OPENSSL_cleanse(k2, sizeof(k2));
  return rc;
}

/* Hashes the canonical request and builds the string to sign into sts[STS_MAX + 1]. */
static int build_sts(struct weir_sigv4_signer *s, const struct prep *p, char *sts,
                     size_t *sts_len) {
  struct sink k;
  uint8_t h[32];
  char hex[WEIR_SIGV4_HEX_LEN + 1];
  int rc, n;

  sink_init(&k, s, NULL, 0);
  rc = put_canonical_request(&k, s, p);
  if (rc == 0)
    rc = sink_finish(&k, h);
  /* The staging buffer held the canonical request, session token included. */
  OPENSSL_cleanse(&k, sizeof(k));
  if (rc != 0)
    return rc;
  to_hex(h, 32, hex);
  n = snprintf(sts, STS_MAX + 1, WEIR_SIGV4_ALGORITHM "\n%.16s\n%.*s\n%s", p->req->amz_date,
               (int)p->scope_len, p->credential + s->akid_len + 1, hex);
  WEIR_ASSERT(n > 0 && n <= STS_MAX);
  *sts_len = (size_t)n;
  return 0;
}

static int compute_signature(struct weir_sigv4_signer *s, const struct prep *p,
                             char sig[WEIR_SIGV4_HEX_LEN + 1]) {
  char sts[STS_MAX + 1];
  size_t sts_len;
  const uint8_t *key;
  uint8_t mac[32];
  int rc;

  if ((rc = build_sts(s, p, sts, &sts_len)) != 0)
    return rc;
  if ((rc = derive_key(s, p->req->amz_date, p->region, p->region_len, p->service, p->service_len,
                       &key)) != 0)
    return rc;
  if ((rc = hmac_sha256(s, key, WEIR_SIGV4_KEY_LEN, sts, sts_len, mac)) != 0)
    return rc;
  to_hex(mac, 32, sig);
  return 0;
}

static int finish_out(struct sink *k, size_t *out_len, const char *what) {
  int rc = sink_finish(k, NULL);
  if (rc == WEIR_ETOOBIG)
    WEIR_LOG_ERR("sigv4: %s does not fit the caller's buffer of %zu bytes", what, k->text_cap + 1);
  if (out_len != NULL)
    *out_len = rc == 0 ? k->text_len : 0;
  return rc;
}

static int check_out(char *out, size_t out_cap, size_t *out_len) {
  if (out_len != NULL)
    *out_len = 0;
  if (out == NULL || out_cap == 0)
    return WEIR_EINVAL;
  out[0] = '\0';
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* API                                                                                        */

int weir__sigv4_signer_create(const struct weir_sigv4_config *cfg, struct weir_sigv4_signer **out) {
  struct weir_sigv4_signer *s = NULL;
  weir_buf secret, token;
  const char *akid;
  size_t rlen, slen;
  int rc;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  if (cfg == NULL || cfg->creds == NULL || cfg->region == NULL || cfg->service == NULL) {
    WEIR_LOG_ERR("sigv4: signer needs credentials, a region and a service");
    return WEIR_EINVAL;
  }
  rlen = strlen(cfg->region);
  slen = strlen(cfg->service);
  if (rlen > WEIR_SIGV4_MAX_NAME || slen > WEIR_SIGV4_MAX_NAME) {
    WEIR_LOG_ERR("sigv4: region or service name longer than %d characters", WEIR_SIGV4_MAX_NAME);
    return WEIR_ETOOBIG;
  }
  if (rlen == 0 || slen == 0 || !is_name(cfg->region, rlen) || !is_name(cfg->service, slen)) {
    WEIR_LOG_ERR("sigv4: region '%s' or service '%s' is empty or has characters outside "
                 "[A-Za-z0-9._-]",
                 cfg->region, cfg->service);
    return WEIR_EINVAL;
  }
  akid = weir__aws_credentials_access_key_id(cfg->creds);
  weir__aws_credentials_secrets(cfg->creds, &secret, &token);
  /* The credentials module bounds these; re-check rather than trust across modules. */
  if (strlen(akid) > WEIR_AWS_ACCESS_KEY_ID_MAX || secret.len > WEIR_AWS_SECRET_MAX ||
      token.len > WEIR_AWS_SESSION_TOKEN_MAX)
    return WEIR_ETOOBIG;

  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  if ((s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
      (s->md = EVP_MD_CTX_new()) == NULL) {
    rc = WEIR_ENOMEM;
    goto fail;
  }
  if (token.len > 0) {
    if ((s->token = malloc(token.len + 1)) == NULL) {
      rc = WEIR_ENOMEM;
      goto fail;
    }
    memcpy(s->token, token.ptr, token.len);
    s->token[token.len] = '\0';
    s->token_len = token.len;
  }
  s->flags = cfg->flags;
  memcpy(s->region, cfg->region, rlen + 1);
  s->region_len = rlen;
  memcpy(s->service, cfg->service, slen + 1);
  s->service_len = slen;
  s->akid_len = strlen(akid);
  memcpy(s->akid, akid, s->akid_len + 1);
  memcpy(s->k_secret, "AWS4", 4);
  memcpy(s->k_secret + 4, secret.ptr, secret.len);
  s->k_secret_len = 4 + secret.len;
  *out = s;
  return 0;

fail:
  weir__sigv4_signer_destroy(s);
  return rc;
}

void weir__sigv4_signer_destroy(struct weir_sigv4_signer *s) {
  if (s == NULL)
    return;
  if (s->token != NULL) {
    OPENSSL_cleanse(s->token, s->token_len);
    free(s->token);
  }
  EVP_MD_CTX_free(s->md);
  EVP_MD_free(s->sha256);
  OPENSSL_cleanse(s, sizeof(*s));
  free(s);
}

int weir__sigv4_canonical_request(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                                  char *out, size_t out_cap, size_t *out_len) {
  struct prep p;
  struct sink k;
  int rc;

  if ((rc = check_out(out, out_cap, out_len)) != 0 || s == NULL || req == NULL)
    return rc != 0 ? rc : WEIR_EINVAL;
  if ((rc = prepare(s, req, req->expires > 0, &p)) != 0)
    return rc;
  sink_init(&k, NULL, out, out_cap);
  if ((rc = put_canonical_request(&k, s, &p)) != 0) {
    out[0] = '\0';
    return rc;
  }
  return finish_out(&k, out_len, "canonical request");
}

int weir__sigv4_string_to_sign(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                               char *out, size_t out_cap, size_t *out_len) {
  char sts[STS_MAX + 1];
  size_t sts_len;
  struct prep p;
  struct sink k;
  int rc;

  if ((rc = check_out(out, out_cap, out_len)) != 0 || s == NULL || req == NULL)
    return rc != 0 ? rc : WEIR_EINVAL;
  if ((rc = prepare(s, req, req->expires > 0, &p)) != 0 ||
      (rc = build_sts(s, &p, sts, &sts_len)) != 0)
    return rc;
  sink_init(&k, NULL, out, out_cap);
  sink_put(&k, sts, sts_len);
  return finish_out(&k, out_len, "string to sign");
}

int weir__sigv4_sign(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req, char *out,
                     size_t out_cap, size_t *out_len) {
  char sig[WEIR_SIGV4_HEX_LEN + 1];
  struct prep p;
  struct sink k;
  int rc;

  if ((rc = check_out(out, out_cap, out_len)) != 0 || s == NULL || req == NULL)
    return rc != 0 ? rc : WEIR_EINVAL;
  if ((rc = prepare(s, req, false, &p)) != 0 || (rc = compute_signature(s, &p, sig)) != 0)
    return rc;
  sink_init(&k, NULL, out, out_cap);
  sink_puts(&k, WEIR_SIGV4_ALGORITHM " Credential=");
  sink_put(&k, p.credential, p.credential_len);
  sink_puts(&k, ", SignedHeaders=");
  sink_put(&k, p.signed_headers, p.signed_len);
  sink_puts(&k, ", Signature=");
  sink_put(&k, sig, WEIR_SIGV4_HEX_LEN);
  return finish_out(&k, out_len, "Authorization header");
}

int weir__sigv4_presign(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                        char *out, size_t out_cap, size_t *out_len) {
  char sig[WEIR_SIGV4_HEX_LEN + 1];
  struct prep p;
  struct sink k;
  int rc;

  if ((rc = check_out(out, out_cap, out_len)) != 0 || s == NULL || req == NULL)
    return rc != 0 ? rc : WEIR_EINVAL;
  if ((rc = prepare(s, req, true, &p)) != 0 || (rc = compute_signature(s, &p, sig)) != 0)
    return rc;
  sink_init(&k, NULL, out, out_cap);
  sink_puts(&k, "X-Amz-Algorithm=" WEIR_SIGV4_ALGORITHM "&X-Amz-Credential=");
  sink_put_encoded(&k, (const uint8_t *)p.credential, p.credential_len, false);
  sink_puts(&k, "&X-Amz-Date=");
  sink_put(&k, req->amz_date, WEIR_SIGV4_DATE_LEN);
  sink_puts(&k, "&X-Amz-SignedHeaders=");
  sink_put_encoded(&k, (const uint8_t *)p.signed_headers, p.signed_len, false);
  sink_puts(&k, "&X-Amz-Expires=");
  sink_puts(&k, p.expires);
  if (s->token_len > 0) {
    sink_puts(&k, "&X-Amz-Security-Token=");
    sink_put_encoded(&k, (const uint8_t *)s->token, s->token_len, false);
  }
  sink_puts(&k, "&X-Amz-Signature=");
  sink_put(&k, sig, WEIR_SIGV4_HEX_LEN);
  return finish_out(&k, out_len, "presigned query");
}

int weir__sigv4_signing_key(struct weir_sigv4_signer *s, const char *date8, weir_buf region,
                            weir_buf service, uint8_t key[WEIR_SIGV4_KEY_LEN]) {
  const char *r, *v;
  size_t rl, vl;
  const uint8_t *k;
  int rc;

  if (s == NULL || date8 == NULL || key == NULL || strnlen(date8, 8) != 8)
    return WEIR_EINVAL;
  r = region.len > 0 ? (const char *)region.ptr : s->region;
  rl = region.len > 0 ? region.len : s->region_len;
  v = service.len > 0 ? (const char *)service.ptr : s->service;
  vl = service.len > 0 ? service.len : s->service_len;
  if (rl > WEIR_SIGV4_MAX_NAME || vl > WEIR_SIGV4_MAX_NAME)
    return WEIR_ETOOBIG;
  if (!is_name(r, rl) || !is_name(v, vl))
    return WEIR_EINVAL;
  if ((rc = derive_key(s, date8, r, rl, v, vl, &k)) != 0)
    return rc;
  memcpy(key, k, WEIR_SIGV4_KEY_LEN);
  return 0;
}

weir_buf weir__sigv4_session_token(const struct weir_sigv4_signer *s) {
  weir_buf b = {NULL, 0};
  if (s != NULL && s->token_len > 0) {
    b.ptr = (const uint8_t *)s->token;
    b.len = s->token_len;
  }
  return b;
}

int weir__sigv4_payload_hash(struct weir_sigv4_signer *s, const void *data, size_t len,
                             char out[WEIR_SIGV4_HEX_LEN + 1]) {
  uint8_t h[32];
  int rc;
  if (s == NULL || out == NULL || (data == NULL && len > 0))
    return WEIR_EINVAL;
  if ((rc = sha256(s, data, len, h)) != 0)
    return rc;
  to_hex(h, 32, out);
  return 0;
}

int weir__sigv4_format_date(int64_t unix_seconds, char out[WEIR_SIGV4_DATE_LEN + 1]) {
  struct tm tm;
  time_t t;

  /* 253402300799 is 9999-12-31T23:59:59Z: four-digit years only. */
  if (out == NULL || unix_seconds < 0 || unix_seconds > INT64_C(253402300799))
    return WEIR_EINVAL;
  t = (time_t)unix_seconds;
  if (gmtime_r(&t, &tm) == NULL)
    return WEIR_EINVAL;
  if (strftime(out, WEIR_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm) != WEIR_SIGV4_DATE_LEN)
    return WEIR_EINVAL;
  return 0;
}
