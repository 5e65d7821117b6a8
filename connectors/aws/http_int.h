/*
 * http_int.h: the HTTP/1.1 transport of the AWS connectors, over libcurl.
 *
 * One struct weir_http keeps its connections alive between requests and its response buffer
 * too (no reallocation once it has grown to the largest response seen). A POST is written on
 * a connection libcurl opened in CONNECT_ONLY mode (libcurl does DNS, proxies and TLS) and its
 * answer parsed with http-parser; a GET, and requests in flight together through
 * weir__http_perform_many, are libcurl transfers (docs/internals/kinesis-client.md). Every
 * request is signed through a hook: the transport computes the payload SHA-256 and the
 * X-Amz-Date, sets the Host header, and asks the signer for the Authorization header value.
 *
 * TLS peer and host verification are always on; `ca_file` replaces the system CA store.
 *
 * Threads: a handle is used by one thread at a time. weir__http_global_init is idempotent and
 * thread-safe (pthread_once).
 */
#ifndef WEIR_AWS_HTTP_INT_H
#define WEIR_AWS_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/common.h"

/* Request headers a caller may add (the transport adds Host, X-Amz-Date, Authorization,
 * X-Amz-Content-Sha256 is not sent: Kinesis does not need it). */
#define WEIR_HTTP_MAX_HEADERS 16
/* An Authorization header value: algorithm, credential scope, signed header list and a
 * 64-hex-digit signature; 1 KiB is ample for the handful of headers signed here. */
#define WEIR_HTTP_AUTH_MAX 1024
/* A Host header value: a DNS name (RFC 1035: 253 characters) plus ":port". */
#define WEIR_HTTP_HOST_MAX 300
/* A request URL (endpoint plus path). */
#define WEIR_HTTP_URL_MAX 2048
/* One header line; longer values are refused with WEIR_ETOOBIG. */
#define WEIR_HTTP_HEADER_LINE_MAX 512
/* Headroom a body buffer keeps for the request head (weir_http_request.body_headroom): the
 * head of a Kinesis POST is about 400 bytes, 1.5 KiB with a session token. */
#define WEIR_HTTP_HEAD_ROOM 2048
/* Default bound on a response body when the options give none. */
#define WEIR_HTTP_DEFAULT_MAX_RESPONSE (1u << 20)
/* Defaults for the timeouts (ms). */
#define WEIR_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define WEIR_HTTP_DEFAULT_REQUEST_TIMEOUT_MS 30000

/* One header. Both strings borrowed for the call. */
struct weir_http_header {
  const char *name;
  const char *value;
};

/* What the signer gets: everything borrowed for the duration of the hook call. */
struct weir_http_sign_input {
  const char *method;                     /* "POST" */
  const char *host;                       /* the Host header value: host[:port] */
  const char *path;                       /* "/" */
  const char *query;                      /* "" (no '?') */
  const struct weir_http_header *headers; /* the request headers, Host and X-Amz-Date included */
  size_t n_headers;
  const char *payload_sha256_hex; /* 64 lowercase hex digits of SHA-256(body) */
  const char *amz_date;           /* "YYYYMMDDTHHMMSSZ", the X-Amz-Date value */
};

/*
 * Signer hook: writes the Authorization header value (NUL-terminated) into `auth` (capacity
 * auth_cap) and may add at most `extra_cap` headers to `extra` (e.g. X-Amz-Security-Token;
 * strings must stay valid until the request completes) setting *n_extra. Returns 0 or a
 * negative WEIR_E* code, which fails the request. Called on the requesting thread, once per
 * request attempt. Must never log a secret.
 */
typedef int (*weir_http_sign_cb)(void *data, const struct weir_http_sign_input *in, char *auth,
                                 size_t auth_cap, struct weir_http_header *extra, size_t extra_cap,
                                 size_t *n_extra);

struct weir_http_opts {
  const char *ca_file;       /* PEM bundle replacing the system store; NULL = system. Copied. */
  long connect_timeout_ms;   /* 0 = WEIR_HTTP_DEFAULT_CONNECT_TIMEOUT_MS */
  long request_timeout_ms;   /* whole request; 0 = WEIR_HTTP_DEFAULT_REQUEST_TIMEOUT_MS */
  size_t max_response;       /* body bound; 0 = WEIR_HTTP_DEFAULT_MAX_RESPONSE */
  const char *resolve;       /* "host:port:addr" pinned DNS entry (tests); NULL. Copied. */
  weir_http_sign_cb sign_cb; /* NULL = no Authorization header */
  void *sign_data;           /* borrowed; passed to sign_cb */
};

struct weir_http_request {
  const char *method;                     /* "POST" or "GET" */
  const char *url;                        /* absolute http:// or https:// URL */
  const struct weir_http_header *headers; /* borrowed; at most WEIR_HTTP_MAX_HEADERS */
  size_t n_headers;
  const uint8_t *body; /* borrowed until the call returns; may be NULL when body_len is 0 */
  size_t body_len;
  /* Bytes right before body the transport may overwrite during the call (0 = none): a POST
   * whose head fits writes it there and sends head and body with one write (the head is wiped
   * again before the call returns). */
  size_t body_headroom;
};

/*
 * A response. `body` points into the handle's buffer: valid until the next request on the same
 * handle or its destruction. The body is NUL-terminated (body[body_len] == 0) for parsers.
 */
struct weir_http_response {
  long status;         /* HTTP status; 0 when no response arrived */
  const uint8_t *body; /* borrowed, see above */
  size_t body_len;
  int curl_code;        /* CURLcode of the transfer; 0 = CURLE_OK */
  char error_type[128]; /* X-Amzn-ErrorType response header, "" when absent */
  char error[256];      /* transport error text, "" on success */
};

struct weir_http;

/* Initialises libcurl once per process. Returns 0 or WEIR_EIO. Any thread. */
int weir__http_global_init(void);

/* Creates a handle. Returns 0, WEIR_EINVAL, WEIR_ENOMEM or WEIR_EIO (curl init failed). */
int weir__http_create(struct weir_http **out, const struct weir_http_opts *opts);
/* Frees a handle and closes its connections. NULL is a no-op. */
void weir__http_destroy(struct weir_http *h);

/*
 * Sends one request and waits for the whole response. Returns 0 when a response arrived
 * (whatever its status: read resp->status), WEIR_ETOOBIG when the body exceeded the bound,
 * WEIR_ETIMEDOUT, WEIR_EIO for other transport failures (resp->curl_code and resp->error say
 * which), WEIR_EINVAL for a bad request, or the signer's error.
 */
int weir__http_perform(struct weir_http *h, const struct weir_http_request *req,
                       struct weir_http_response *resp);

/*
 * A POST in flight without blocking, for callers that run several handles from one event loop
 * (the Kinesis sink). weir__http_perform of a POST is begin, then steps until done.
 *
 * weir__http_post_begin signs the request, opens (or reuses) the connection, which blocks for
 * DNS, TCP and TLS on a new one, and writes what the socket takes now. It returns 0 when the
 * request is on its way, else its result (as weir__http_perform's; the request is over). The
 * request's body (with its headroom) and url, and resp, stay borrowed until the request is
 * over; the handle may overwrite the headroom until then.
 *
 * While it is on its way, wait until weir__http_post_socket() is ready for
 * weir__http_post_events() (POLLOUT while writing the request, then POLLIN) or its deadline
 * (weir__http_post_deadline, monotonic ms) passes, then call weir__http_post_step: it writes
 * and reads what it can without blocking and sets *done when the request is over, returning
 * its result; before that it returns 0. A kept connection found closed as the request went out
 * is reopened once and the request sent again, as weir__http_perform does. A step after the
 * deadline with the answer incomplete ends the request with WEIR_ETIMEDOUT.
 *
 * weir__http_post_abort ends a request on its way (its connection is closed). Destroying the
 * handle does too.
 */
int weir__http_post_begin(struct weir_http *h, const struct weir_http_request *req,
                          struct weir_http_response *resp);
int weir__http_post_step(struct weir_http *h, bool *done);
int weir__http_post_socket(const struct weir_http *h);
short weir__http_post_events(const struct weir_http *h);
int64_t weir__http_post_deadline(const struct weir_http *h);
void weir__http_post_abort(struct weir_http *h);

/*
 * A set of requests in flight together. Its connection pool is separate from the handles' own
 * (used by weir__http_perform): use one multi per group of handles, for the group's lifetime.
 * One thread at a time.
 */
struct weir_http_multi;

int weir__http_multi_create(struct weir_http_multi **out);
/* Closes the multi's connections. Remove nothing first: no handle stays attached between
 * calls. NULL is a no-op. */
void weir__http_multi_destroy(struct weir_http_multi *mu);

/*
 * Sends n requests at once, request i on handle hs[i] (distinct handles), and waits for all of
 * them. rcs[i] receives what weir__http_perform would have returned for request i; resps[i]
 * borrows hs[i]'s buffer as with weir__http_perform. Returns 0 when every request got its rc,
 * else WEIR_EIO (then requests not finished have rc WEIR_EIO).
 */
int weir__http_perform_many(struct weir_http_multi *mu, struct weir_http *const *hs,
                            const struct weir_http_request *reqs, struct weir_http_response *resps,
                            int *rcs, size_t n);

/*
 * Tests and fuzzing: parses `bytes` (n of them) as the answer to a POST exactly as a POST on
 * the handle's connection would, fed to the parser in pieces of at most `piece` bytes (>= 1)
 * and then the end of the connection, and fills resp as weir__http_perform does (same rc, body
 * in the handle's buffer).
 */
int weir__http_parse_answer(struct weir_http *h, const uint8_t *bytes, size_t n, size_t piece,
                            struct weir_http_response *resp);

/* Connections the handle has opened so far (new TCP connections, not reused ones): lets tests
 * check connection reuse. */
long weir__http_connects(const struct weir_http *h);

/* True when the transfer failed in a way worth retrying (reset, refused, timeout, nothing
 * received); false for TLS verification failures, bad URLs and the like. */
bool weir__http_transport_retryable(int curl_code);

#endif /* WEIR_AWS_HTTP_INT_H */
