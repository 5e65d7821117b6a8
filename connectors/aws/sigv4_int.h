/*
 * sigv4_int.h: AWS Signature Version 4 (AWS4-HMAC-SHA256) request signing.
 *
 * A signer is made once from credentials, a region and a service name; each request is then
 * signed with one call that writes the Authorization header value into a caller buffer
 * (weir__sigv4_sign), or the presigned-URL query parameters (weir__sigv4_presign). The
 * intermediate steps (canonical request, string to sign, signing key) are exposed for tests.
 *
 * Canonicalisation follows the rules the AWS test suites exercise for services other than S3:
 *   - path: the request-line path (before '?') is normalised (empty, "." and ".." segments and
 *     duplicate slashes removed, a trailing slash kept) unless WEIR_SIGV4_NO_NORMALIZE_PATH, then
 *     every byte outside the RFC 3986 unreserved set and '/' is percent-encoded. The path is
 *     NOT decoded first: a path already percent-encoded on the wire is encoded again, which is
 *     the "double encoding" non-S3 services expect.
 *   - query: split on '&', each "key[=value]" percent-decoded then re-encoded with the
 *     unreserved set, sorted by encoded key then encoded value; '+' is a literal plus.
 *   - headers: names lowercased, values trimmed and runs of spaces/tabs collapsed to one space
 *     (obs-fold continuation lines must be joined with a space by the caller, as HTTP says);
 *     repeated names joined with ',' in the order given; sorted by name (stable). Every header
 *     passed is signed, except Authorization which is ignored. Pass only headers that reach the
 *     server unchanged (Host is required by AWS; User-Agent and Content-Length are optional).
 *   - header mode adds, when the caller's headers lack them: x-amz-date (from amz_date),
 *     x-amz-security-token (when the credentials have a session token, unless
 *     WEIR_SIGV4_OMIT_SESSION_TOKEN), x-amz-content-sha256 (with WEIR_SIGV4_SIGN_BODY). The
 *     caller must send those same headers: X-Amz-Date with amz_date, X-Amz-Security-Token with
 *     weir__sigv4_session_token(), x-amz-content-sha256 with the payload hash.
 *
 * Cost: no heap allocation by weir per request; canonical text is streamed through a small
 * stack buffer into SHA-256, never built in memory unless a test asks for it. (OpenSSL 3.0's
 * EVP_DigestInit allocates its provider context once per digest: 3 per signature, plus one
 * when the payload is hashed.) Every list is bounded (WEIR_SIGV4_MAX_*): past a bound the call
 * returns WEIR_ETOOBIG.
 *
 * Signing-key cache: per signer, WEIR_SIGV4_KEY_CACHE entries keyed by (date, region,
 * service), replaced round-robin; a miss costs four HMACs. Keys are zeroed on destroy.
 *
 * Threads: a signer is used by one thread at a time. It owns a reusable OpenSSL digest
 * context and the key cache and takes no lock; make one signer per thread that signs
 * (creation is cheap: no I/O, no key derivation). Different signers are independent.
 */
#ifndef WEIR_AWS_SIGV4_INT_H
#define WEIR_AWS_SIGV4_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials_int.h"
#include "weir/common.h"

#define WEIR_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* X-Amz-Date: ISO 8601 basic format, "YYYYMMDDTHHMMSSZ". */
#define WEIR_SIGV4_DATE_LEN 16
/* Hex SHA-256: payload hashes and signatures. */
#define WEIR_SIGV4_HEX_LEN 64
#define WEIR_SIGV4_KEY_LEN 32
/* Literal payload hash for unsigned payloads (SigV4 docs). */
#define WEIR_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Presigned URLs may be valid at most 7 days (SigV4 query-string auth, X-Amz-Expires). */
#define WEIR_SIGV4_MAX_EXPIRES 604800u

/* Bounds on one request. Past any of them signing returns WEIR_ETOOBIG. */
#define WEIR_SIGV4_MAX_HEADERS 64        /* headers passed by the caller */
#define WEIR_SIGV4_MAX_QUERY_PARAMS 128  /* '&'-separated query parameters */
#define WEIR_SIGV4_MAX_PATH_SEGMENTS 128 /* path segments kept while normalising */
#define WEIR_SIGV4_MAX_NAME 128          /* region and service names */
#define WEIR_SIGV4_SIGNED_HEADERS_MAX 2048
/* Caller buffer for weir__sigv4_sign: enough for the key id, scope, 64 hex digits and a
 * signed-header list of typical length; a longer value returns WEIR_ETOOBIG. */
#define WEIR_SIGV4_AUTHZ_MAX 1024
/* Signing keys cached per signer. */
#define WEIR_SIGV4_KEY_CACHE 4

/* Signer flags (weir_sigv4_config.flags). */
enum {
  /* Keep ".", ".." and "//" in the path as given (S3 style). Default: normalise. */
  WEIR_SIGV4_NO_NORMALIZE_PATH = 1u << 0,
  /* Do not sign X-Amz-Security-Token (some services want it added after signing). */
  WEIR_SIGV4_OMIT_SESSION_TOKEN = 1u << 1,
  /* Header mode: add and sign "x-amz-content-sha256: <payload hash>" (S3 style). */
  WEIR_SIGV4_SIGN_BODY = 1u << 2
};

/* One request header: borrowed views, valid for the duration of the call. */
struct weir_sigv4_header {
  weir_buf name;
  weir_buf value;
};

/*
 * The request to sign. Every view is borrowed for the duration of the call only.
 */
struct weir_sigv4_request {
  weir_buf method; /* "POST", "GET", ... */
  weir_buf path;   /* request-target path as sent, before any '?'; empty means "/" */
  weir_buf query;  /* as sent, after the '?' (without it); may be empty */
  const struct weir_sigv4_header *headers;
  size_t n_headers; /* at most WEIR_SIGV4_MAX_HEADERS */
  /* The body, hashed with SHA-256 when payload_hash is empty. */
  weir_buf payload;
  /* Precomputed payload hash (64 lowercase hex digits) or WEIR_SIGV4_UNSIGNED_PAYLOAD; used
   * verbatim when non-empty (then `payload` is not read). */
  weir_buf payload_hash;
  /* WEIR_SIGV4_DATE_LEN characters from weir__sigv4_format_date (NUL not required). The
   * scope date is its first 8 characters. */
  const char *amz_date;
  /* 0: header mode (Authorization). 1..WEIR_SIGV4_MAX_EXPIRES: presigned-URL (query) mode,
   * X-Amz-Expires in seconds. */
  uint32_t expires;
  /* Override the signer's region or service for this request; empty = the signer's. */
  weir_buf region;
  weir_buf service;
};

struct weir_sigv4_config {
  const struct weir_aws_credentials *creds; /* copied: may be freed after create */
  const char *region;                       /* copied, e.g. "us-east-1" */
  const char *service;                      /* copied: the signing name, e.g. "kinesis" */
  unsigned flags;                           /* WEIR_SIGV4_* flags */
};

struct weir_sigv4_signer;

/*
 * Makes a signer. 0, WEIR_EINVAL (missing credentials, region or service, or a region or
 * service with characters other than [A-Za-z0-9._-]), WEIR_ETOOBIG (name longer than
 * WEIR_SIGV4_MAX_NAME), WEIR_ENOMEM. *out is owned by the caller: weir__sigv4_signer_destroy.
 */
int weir__sigv4_signer_create(const struct weir_sigv4_config *cfg, struct weir_sigv4_signer **out);
/* Zeroes the copied secrets and cached keys, frees. NULL is a no-op. */
void weir__sigv4_signer_destroy(struct weir_sigv4_signer *s);

/*
 * Header mode: writes the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") to out, NUL-terminated; *out_len (may be NULL) gets its
 * length without the NUL. Returns 0, WEIR_EINVAL (malformed request: empty method, bad
 * amz_date, header name or value with CR/LF, expires set, ...), WEIR_ETOOBIG (out too small or a
 * bound exceeded; out is then ""), WEIR_ENOMEM (OpenSSL could not allocate).
 */
int weir__sigv4_sign(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req, char *out,
                     size_t out_cap, size_t *out_len);

/*
 * Query mode (req->expires > 0): writes the query parameters to append to the request's own
 * query (after a '&' when it is non-empty): "X-Amz-Algorithm=...&X-Amz-Credential=...&
 * X-Amz-Date=...&X-Amz-SignedHeaders=...&X-Amz-Expires=...[&X-Amz-Security-Token=...]&
 * X-Amz-Signature=...". The token is appended even with WEIR_SIGV4_OMIT_SESSION_TOKEN (it is
 * then just not signed). Errors as for weir__sigv4_sign.
 */
int weir__sigv4_presign(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                        char *out, size_t out_cap, size_t *out_len);

/* For tests and debugging: the canonical request (either mode), NUL-terminated. Holds the
 * session token when it is signed. Errors as for weir__sigv4_sign. */
int weir__sigv4_canonical_request(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                                  char *out, size_t out_cap, size_t *out_len);
/* For tests and debugging: the string to sign (either mode), NUL-terminated. */
int weir__sigv4_string_to_sign(struct weir_sigv4_signer *s, const struct weir_sigv4_request *req,
                               char *out, size_t out_cap, size_t *out_len);
/* For tests: the derived signing key (kSigning) for a scope date ("YYYYMMDD"), through the
 * cache. Empty region/service mean the signer's. The key is secret: never log it. */
int weir__sigv4_signing_key(struct weir_sigv4_signer *s, const char *date8, weir_buf region,
                            weir_buf service, uint8_t key[WEIR_SIGV4_KEY_LEN]);

/* The session token to send as X-Amz-Security-Token (len 0 when none). Borrowed: valid until
 * the signer is destroyed. It is a secret: put it on the wire, never in a log. */
weir_buf weir__sigv4_session_token(const struct weir_sigv4_signer *s);

/* Hex SHA-256 of data (64 digits + NUL) with the signer's digest context, e.g. to send
 * x-amz-content-sha256 and then sign with payload_hash set. 0 or WEIR_ENOMEM. */
int weir__sigv4_payload_hash(struct weir_sigv4_signer *s, const void *data, size_t len,
                             char out[WEIR_SIGV4_HEX_LEN + 1]);

/* Formats a Unix time (seconds, UTC) as X-Amz-Date, NUL-terminated. 0, or WEIR_EINVAL for a
 * time outside years 1970..9999. Any thread. */
int weir__sigv4_format_date(int64_t unix_seconds, char out[WEIR_SIGV4_DATE_LEN + 1]);

#endif /* WEIR_AWS_SIGV4_INT_H */
