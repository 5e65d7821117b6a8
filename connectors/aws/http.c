/*
 * http.c: signed HTTP/1.1 requests over libcurl, one or several at a time.
 *
 * Two ways through libcurl. A POST (every Kinesis operation) goes over a connection libcurl
 * sets up and keeps in CURLOPT_CONNECT_ONLY mode: libcurl resolves, connects, tunnels through a
 * proxy and does TLS with verification; the request head and body are written with
 * curl_easy_send and the response read with curl_easy_recv and parsed by http-parser. A GET,
 * and weir__http_perform_many, go through libcurl's full transfer (easy_perform / multi).
 * The raw POST path costs a fraction of a full transfer: no per-request URL parsing, header
 * store, progress meter, buffer allocation or poll before each read, which matter at the
 * sink's rate of requests (docs/internals/kinesis-client.md).
 */
#include <curl/curl.h>
#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "connectors/aws/http_int.h"
#include "runtime/log_int.h"

/* Headers the signer may add (session token). */
#define EXTRA_HEADERS_MAX 2
/* Header lines of one request: the caller's, Host, X-Amz-Date, the signer's extras,
 * Authorization, and the two that remove curl defaults (Expect, Accept). */
#define HDR_LINES_MAX (WEIR_HTTP_MAX_HEADERS + 2 + EXTRA_HEADERS_MAX + 3)
/* Bound of one header line ("Name: value"). */
#define HDR_LINE_MAX (WEIR_HTTP_AUTH_MAX + 64)

struct weir_http {
  CURL *easy;                 /* owned; keeps the connection cache */
  char *ca_file;              /* owned copy or NULL */
  char *resolve_entry;        /* owned copy or NULL */
  struct curl_slist *resolve; /* owned; CURLOPT_RESOLVE list */
  /* The request's header list: curl only reads it during the transfer, so its nodes and
   * lines live here and are rewritten per request without an allocation. The lines carry
   * the Authorization header and the session token: they are wiped after each transfer, at
   * the next prepare and at destroy. */
  struct curl_slist hdr_nodes[HDR_LINES_MAX];
  size_t hdr_n;
  char hdr_buf[HDR_LINES_MAX * HDR_LINE_MAX];
  size_t hdr_used;
  /* The easy handle holds the options every POST shares (set after curl_easy_reset); a POST
   * on a configured handle sets only URL, headers and body. A GET resets it. */
  bool configured;
  /* Host header of the last URL (parsing a URL allocates in libcurl: once per endpoint). */
  char host_url[WEIR_HTTP_URL_MAX];
  char host[WEIR_HTTP_HOST_MAX];
  /* X-Amz-Date of the last second seen. */
  time_t date_sec;
  char amz_date[32];
  long connect_timeout_ms;
  long request_timeout_ms;
  weir_http_sign_cb sign_cb;
  void *sign_data;
  /* Response body: grows up to max_response and is kept for the next request. */
  uint8_t *buf;
  size_t len;
  size_t cap;
  size_t max_response;
  bool too_big;
  struct weir_http_response *resp; /* the response being filled (borrowed during a request) */
  long connects;                   /* new connections opened, summed over requests */
  char errbuf[CURL_ERROR_SIZE];
  /* POSTs: a CONNECT_ONLY handle holding one kept-alive connection (NULL = none open), the
   * request head being written, the receive buffer and the response parser's state. */
  CURL *raw;                       /* owned, or NULL */
  curl_socket_t raw_sock;          /* the connection's socket while raw != NULL */
  char raw_url[WEIR_HTTP_URL_MAX]; /* the URL raw was connected for */
  char path[WEIR_HTTP_URL_MAX];    /* request target of host_url: path and query */
  char head[HDR_LINES_MAX * HDR_LINE_MAX + WEIR_HTTP_URL_MAX + 64]; /* wiped after use */
  size_t head_len;
  uint8_t rbuf[64 * 1024]; /* curl_easy_recv lands here, then http-parser reads it */
  http_parser parser;
  bool hp_done;       /* the final response is complete */
  bool hp_keep;       /* ... and the connection may carry the next request */
  bool hp_bad_status; /* a status below 100 */
  bool hp_in_value;   /* the last header callback was a value */
  char hp_name[32];   /* the header being read ('\0' = not one we read) */
  size_t hp_name_len;
  char hp_value[128];
  size_t hp_value_len;
  /* The POST on its way (weir__http_post_begin until it is over). */
  bool post_active;
  bool post_sending;        /* writing the request (else reading the answer) */
  bool post_reused;         /* sent on a kept connection */
  bool post_got_any;        /* some answer byte arrived */
  int post_attempt;         /* 0, or 1 once sent again on a new connection */
  int64_t post_deadline;    /* monotonic ms */
  const char *post_url;     /* borrowed from the request */
  const uint8_t *post_body; /* borrowed: the body, body_headroom bytes before it writable */
  size_t post_body_len;
  size_t post_headroom;
  struct weir_http_response *post_resp; /* borrowed */
  /* What is left to write: up to two pieces (head and body, or both in the headroom). */
  const uint8_t *seg_p[2];
  size_t seg_n[2];
  size_t seg_i, seg_count;
  uint8_t *seg_wipe; /* the head's copy in the headroom, wiped once written; NULL */
};

static void raw_close(struct weir_http *h);

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

/*
 * libcurl's memory goes through these: every block is zeroed before it is freed, so request
 * buffers that held the session token (X-Amz-Security-Token) do not linger in freed heap, where
 * a core dump would show them. realloc is malloc, copy and a zeroing free. Not on a per-record
 * path: curl allocates per request and per connection.
 */
static void *zmalloc(size_t n) {
  return malloc(n);
}

/* explicit_bzero (glibc's memset, not optimised away) rather than OPENSSL_cleanse: curl frees
 * its 16 KiB receive and 64 KiB upload buffers after every request, and OpenSSL's byte-and-
 * word loop wiping them was a visible share of a sender thread's CPU. */
static void zfree(void *p) {
  if (p != NULL) {
    explicit_bzero(p, malloc_usable_size(p));
    free(p);
  }
}

static void *zrealloc(void *p, size_t n) {
  size_t old;
  void *q;

  if (p == NULL)
    return malloc(n);
  old = malloc_usable_size(p);
  if ((q = malloc(n > 0 ? n : 1)) == NULL)
    return NULL;
  memcpy(q, p, old < n ? old : n);
  zfree(p);
  return q;
}

static char *zstrdup(const char *str) {
  return strdup(str);
}

static void *zcalloc(size_t n, size_t size) {
  return calloc(n, size);
}

/* If the host program initialised libcurl first, its allocator stays (curl keeps the first). */
static void global_init_once(void) {
  global_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, zmalloc, zfree, zrealloc, zstrdup,
                                   zcalloc) == CURLE_OK
                  ? 0
                  : WEIR_EIO;
}

int weir__http_global_init(void) {
  pthread_once(&global_once, global_init_once);
  return global_rc;
}

/* Ensures room for `need` body bytes plus the terminating NUL, within the bound. */
static int reserve(struct weir_http *h, size_t need) {
  size_t cap;
  uint8_t *p;

  if (need > h->max_response) {
    h->too_big = true;
    return WEIR_ETOOBIG;
  }
  if (need + 1 <= h->cap)
    return 0;
  cap = h->cap ? h->cap : 4096;
  while (cap < need + 1)
    cap *= 2;
  if (cap > h->max_response + 1)
    cap = h->max_response + 1;
  p = realloc(h->buf, cap);
  if (p == NULL)
    return WEIR_ENOMEM;
  h->buf = p;
  h->cap = cap;
  return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct weir_http *h = userdata;
  size_t n = size * nmemb;

  if (reserve(h, h->len + n) != 0)
    return 0; /* makes curl fail with CURLE_WRITE_ERROR */
  memcpy(h->buf + h->len, ptr, n);
  h->len += n;
  return n;
}

/* Case-insensitive prefix match of a header line against "name:". */
static const char *header_value(const char *line, size_t len, const char *name) {
  size_t nl = strlen(name);

  if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
    return NULL;
  line += nl + 1;
  while (*line == ' ' || *line == '\t')
    line++;
  return line;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct weir_http *h = userdata;
  size_t n = size * nmemb;
  char line[WEIR_HTTP_HEADER_LINE_MAX];
  const char *v;
  size_t vl;

  if (n >= sizeof(line))
    return n; /* a header we do not read */
  memcpy(line, ptr, n);
  line[n] = '\0';
  while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
    line[--n] = '\0';
  if (strncmp(line, "HTTP/", 5) == 0) {
    /* A new response (after a 100 Continue, or a retried connection): start over. */
    h->len = 0;
    h->resp->error_type[0] = '\0';
    return size * nmemb;
  }
  if ((v = header_value(line, n, "content-length")) != NULL) {
    /* Size the buffer once for the whole body; past the bound, fail before reading it. */
    unsigned long long cl = strtoull(v, NULL, 10);
    if (cl > h->max_response) {
      h->too_big = true;
      return 0;
    }
    if (reserve(h, (size_t)cl) != 0)
      return 0;
  } else if ((v = header_value(line, n, "x-amzn-errortype")) != NULL) {
    vl = strcspn(v, ":"); /* "Code:http://internal.amazon.com/..." keeps only the code */
    if (vl >= sizeof(h->resp->error_type))
      vl = sizeof(h->resp->error_type) - 1;
    memcpy(h->resp->error_type, v, vl);
    h->resp->error_type[vl] = '\0';
  }
  return size * nmemb;
}

int weir__http_create(struct weir_http **out, const struct weir_http_opts *opts) {
  struct weir_http *h = NULL;
  int rc;

  if (out == NULL || opts == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  if ((rc = weir__http_global_init()) != 0)
    return rc;
  h = calloc(1, sizeof(*h));
  if (h == NULL)
    return WEIR_ENOMEM;
  rc = WEIR_ENOMEM;
  if (opts->ca_file != NULL && (h->ca_file = strdup(opts->ca_file)) == NULL)
    goto fail;
  if (opts->resolve != NULL) {
    if ((h->resolve_entry = strdup(opts->resolve)) == NULL)
      goto fail;
    if ((h->resolve = curl_slist_append(NULL, h->resolve_entry)) == NULL)
      goto fail;
  }
  h->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                                                       : WEIR_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
  h->request_timeout_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms
                                                       : WEIR_HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
  h->max_response = opts->max_response > 0 ? opts->max_response : WEIR_HTTP_DEFAULT_MAX_RESPONSE;
  h->sign_cb = opts->sign_cb;
  h->sign_data = opts->sign_data;
  rc = WEIR_EIO;
  if ((h->easy = curl_easy_init()) == NULL)
    goto fail;
  *out = h;
  return 0;

fail:
  weir__http_destroy(h);
  return rc;
}

/* Wipes the header lines of the last request: they carry the session token. */
static void wipe_headers(struct weir_http *h) {
  if (h->hdr_used > 0)
    OPENSSL_cleanse(h->hdr_buf, h->hdr_used);
  h->hdr_used = 0;
  h->hdr_n = 0;
}

void weir__http_destroy(struct weir_http *h) {
  if (h == NULL)
    return;
  if (h->easy != NULL)
    curl_easy_cleanup(h->easy);
  raw_close(h);
  if (h->seg_wipe != NULL) /* a POST still on its way: its head's copy in the body's headroom */
    OPENSSL_cleanse(h->seg_wipe, h->head_len);
  OPENSSL_cleanse(h->head, h->head_len); /* wiped after each request: 0 unless one is on its way */
  wipe_headers(h);
  curl_slist_free_all(h->resolve);
  free(h->resolve_entry);
  free(h->ca_file);
  free(h->buf);
  free(h);
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;

  EVP_Digest(p != NULL ? p : (const uint8_t *)"", n, md, &mdlen, EVP_sha256(), NULL);
  for (unsigned int i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

/* Extracts the Host header value (host[:port], port only when given in the URL) and the
 * request target (path and query). */
static int url_parts(const char *url, char *host, size_t cap, char *path, size_t path_cap) {
  CURLU *u = curl_url();
  char *hn = NULL, *port = NULL, *pa = NULL, *q = NULL;
  int rc = WEIR_EINVAL;
  int n;

  if (u == NULL)
    return WEIR_ENOMEM;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
    goto fail;
  if (curl_url_get(u, CURLUPART_HOST, &hn, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PATH, &pa, 0) != CURLUE_OK)
    goto fail;
  if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
    n = snprintf(host, cap, "%s:%s", hn, port);
  else
    n = snprintf(host, cap, "%s", hn);
  rc = (n < 0 || (size_t)n >= cap) ? WEIR_ETOOBIG : 0;
  if (rc == 0) {
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK)
      n = snprintf(path, path_cap, "%s?%s", pa, q);
    else
      n = snprintf(path, path_cap, "%s", pa);
    rc = (n < 0 || (size_t)n >= path_cap) ? WEIR_ETOOBIG : 0;
  }

fail:
  curl_free(hn);
  curl_free(port);
  curl_free(pa);
  curl_free(q);
  curl_url_cleanup(u);
  return rc;
}

/* The Host header value (and h->path) of url, parsed once per distinct URL. */
static int cached_host(struct weir_http *h, const char *url, const char **host) {
  size_t n = strlen(url);
  int rc;

  if (n < sizeof(h->host_url) && memcmp(h->host_url, url, n + 1) == 0) {
    *host = h->host;
    return 0;
  }
  h->host_url[0] = '\0';
  if ((rc = url_parts(url, h->host, sizeof(h->host), h->path, sizeof(h->path))) != 0)
    return rc;
  if (n < sizeof(h->host_url))
    memcpy(h->host_url, url, n + 1);
  *host = h->host;
  return 0;
}

/* Appends "name: value" (or "name:", which tells curl not to send its own header of that
 * name, when value is empty) to the request's header list. */
static int append_header(struct weir_http *h, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value), len = nl + 1 + (vl > 0 ? 1 + vl : 0);
  char *line = h->hdr_buf + h->hdr_used;

  if (h->hdr_n >= HDR_LINES_MAX || len >= HDR_LINE_MAX ||
      len + 1 > sizeof(h->hdr_buf) - h->hdr_used)
    return WEIR_ETOOBIG;
  memcpy(line, name, nl);
  line[nl] = ':';
  if (vl > 0) {
    line[nl + 1] = ' ';
    memcpy(line + nl + 2, value, vl);
  }
  line[len] = '\0';
  h->hdr_used += len + 1;
  h->hdr_nodes[h->hdr_n].data = line;
  h->hdr_nodes[h->hdr_n].next = NULL;
  if (h->hdr_n > 0)
    h->hdr_nodes[h->hdr_n - 1].next = &h->hdr_nodes[h->hdr_n];
  h->hdr_n++;
  return 0;
}

/* What every connection of the handle gets: HTTP/1.1 only (for TLS, ALPN offers http/1.1
 * alone), timeouts, TLS verification on, the CA file and pinned address, the error buffer. */
static void connection_options(struct weir_http *h, CURL *e, long timeout_ms) {
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (h->ca_file != NULL)
    curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
  if (h->resolve != NULL)
    curl_easy_setopt(e, CURLOPT_RESOLVE, h->resolve);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
}

/* The options every request shares; after curl_easy_reset. */
static void configure(struct weir_http *h) {
  CURL *e = h->easy;

  curl_easy_reset(e); /* keeps the connection cache and DNS cache */
  connection_options(h, e, h->request_timeout_ms);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
}

/* Resets resp and the handle's per-request state; resp is filled from now on. */
static void begin_request(struct weir_http *h, struct weir_http_response *resp) {
  memset(resp, 0, sizeof(*resp));
  h->resp = resp;
  h->len = 0;
  h->too_big = false;
  h->errbuf[0] = '\0';
}

/* Starts a request: resets resp and the handle's per-request state, and writes the request's
 * header lines into h->hdr_nodes: Host, X-Amz-Date, the caller's, the signer's and
 * Authorization. */
static int sign_headers(struct weir_http *h, const struct weir_http_request *req,
                        struct weir_http_response *resp, bool *post) {
  struct weir_http_header hdrs[WEIR_HTTP_MAX_HEADERS + 2];
  struct weir_http_header extra[EXTRA_HEADERS_MAX];
  size_t n_extra = 0, n = 0;
  char payload_hash[65], auth[WEIR_HTTP_AUTH_MAX];
  const char *host;
  time_t now;
  int rc;

  begin_request(h, resp);
  wipe_headers(h);
  if (req->method == NULL || req->url == NULL || req->n_headers > WEIR_HTTP_MAX_HEADERS)
    return WEIR_EINVAL;
  if ((*post = strcmp(req->method, "POST") == 0) == false && strcmp(req->method, "GET") != 0)
    return WEIR_EINVAL;
  if ((rc = cached_host(h, req->url, &host)) != 0)
    return rc;
  now = time(NULL);
  if (now != h->date_sec || h->amz_date[0] == '\0') {
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(h->amz_date, sizeof(h->amz_date), "%Y%m%dT%H%M%SZ", &tm);
    h->date_sec = now;
  }

  hdrs[n++] = (struct weir_http_header){"Host", host};
  hdrs[n++] = (struct weir_http_header){"X-Amz-Date", h->amz_date};
  for (size_t i = 0; i < req->n_headers; i++)
    hdrs[n++] = req->headers[i];

  for (size_t i = 0; i < n; i++)
    if ((rc = append_header(h, hdrs[i].name, hdrs[i].value)) != 0)
      return rc;
  if (h->sign_cb != NULL) {
    struct weir_http_sign_input in = {req->method, host, "/",          "",
                                      hdrs,        n,    payload_hash, h->amz_date};
    sha256_hex(req->body, req->body_len, payload_hash);
    auth[0] = '\0';
    rc = h->sign_cb(h->sign_data, &in, auth, sizeof(auth), extra, EXTRA_HEADERS_MAX, &n_extra);
    if (rc == 0 && n_extra > EXTRA_HEADERS_MAX)
      rc = WEIR_EINVAL;
    for (size_t i = 0; rc == 0 && i < n_extra; i++)
      rc = append_header(h, extra[i].name, extra[i].value);
    if (rc == 0)
      rc = append_header(h, "Authorization", auth);
    OPENSSL_cleanse(auth, sizeof(auth));
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Configures h->easy for one full libcurl transfer: headers (signed), body, options. */
static int prepare(struct weir_http *h, const struct weir_http_request *req,
                   struct weir_http_response *resp) {
  CURL *e = h->easy;
  bool post;
  int rc;

  if ((rc = sign_headers(h, req, resp, &post)) != 0)
    return rc;
  /* kinesis-local never answers "Expect: 100-continue": without this, curl waits 1 s on
   * bodies over 1 MiB. (An empty "Expect:" value would get 417 from Node: remove it.) */
  if ((rc = append_header(h, "Expect", "")) != 0)
    return rc;
  /* libcurl adds an "Accept: any type" header unless told otherwise; keep requests minimal. */
  if ((rc = append_header(h, "Accept", "")) != 0)
    return rc;

  /* Shared options once per handle (and again after a GET): curl_easy_reset and a dozen
   * setopt calls per request cost more than the request's own work on small bodies. */
  if (!h->configured || !post) {
    configure(h);
    h->configured = post;
  }
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, &h->hdr_nodes[0]);
  if (post) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body != NULL ? (const char *)req->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  return 0;
}

/* Sets resp's error text and code for a transfer that failed with curl code cc (h->errbuf or
 * curl's text for cc); returns the request's rc. */
static int transport_error(struct weir_http *h, CURLcode cc, struct weir_http_response *resp) {
  int rc;

  resp->curl_code = (int)cc;
  if (h->too_big) {
    rc = WEIR_ETOOBIG;
    snprintf(resp->error, sizeof(resp->error), "response body larger than %zu bytes",
             h->max_response);
  } else {
    bool tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
               cc == CURLE_SSL_ISSUER_ERROR;
    /* Verification is always on; say how to trust a private CA instead of turning it off. */
    const char *msg = h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(cc);
    const char *hint = tls ? " (TLS certificate not trusted: for a private CA set ca_file to "
                             "its PEM file; the URL's host must be a name the certificate holds)"
                           : "";
    size_t hl = strlen(hint), ml = strlen(msg);

    rc = cc == CURLE_OPERATION_TIMEDOUT ? WEIR_ETIMEDOUT : WEIR_EIO;
    if (ml > sizeof(resp->error) - 1 - hl)
      ml = sizeof(resp->error) - 1 - hl;
    memcpy(resp->error, msg, ml);
    memcpy(resp->error + ml, hint, hl + 1);
  }
  if (rc != WEIR_ETOOBIG)
    resp->status = 0;
  return rc;
}

/* Points resp at the body (NUL-terminated) and ends the request; returns rc. */
static int finish_body(struct weir_http *h, int rc, struct weir_http_response *resp) {
  if (reserve(h, h->len) != 0 && rc == 0)
    rc = WEIR_ENOMEM;
  if (h->buf != NULL)
    h->buf[h->len] = '\0';
  resp->body = h->buf != NULL ? h->buf : (const uint8_t *)"";
  resp->body_len = h->len;
  h->resp = NULL;
  wipe_headers(h);
  return rc;
}

/* Fills resp after the transfer ended with curl code `cc`; returns the request's rc. */
static int finish(struct weir_http *h, CURLcode cc, struct weir_http_response *resp) {
  int rc = 0;
  long nc = 0;

  resp->curl_code = (int)cc;
  curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &resp->status);
  if (curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &nc) == CURLE_OK)
    h->connects += nc;
  if (cc != CURLE_OK)
    rc = transport_error(h, cc, resp);
  return finish_body(h, rc, resp);
}

/* ---- POST over a CONNECT_ONLY connection -------------------------------------------------- */

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void raw_close(struct weir_http *h) {
  if (h->raw != NULL)
    curl_easy_cleanup(h->raw);
  h->raw = NULL;
  h->raw_url[0] = '\0';
}

/* Opens the connection for url (DNS, TCP, proxy tunnel, TLS) within the deadline. */
static CURLcode raw_connect(struct weir_http *h, const char *url, int64_t deadline) {
  int64_t left = deadline - mono_ms();
  curl_socket_t sock = CURL_SOCKET_BAD;
  size_t n = strlen(url);
  CURLcode cc;
  CURL *e;

  raw_close(h);
  if (n >= sizeof(h->raw_url))
    return CURLE_URL_MALFORMAT;
  if (left <= 0)
    return CURLE_OPERATION_TIMEDOUT;
  if ((h->raw = e = curl_easy_init()) == NULL)
    return CURLE_OUT_OF_MEMORY;
  connection_options(h, e, (long)left);
  curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
  /* Through a proxy (the *_proxy environment variables), tunnel: the request is written to
   * the connection as to the server itself. */
  curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
  /* curl_easy_recv reads at most this much per call (default 16 KiB). */
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)sizeof(h->rbuf));
  curl_easy_setopt(e, CURLOPT_URL, url);
  if ((cc = curl_easy_perform(e)) == CURLE_OK &&
      (cc = curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &sock)) == CURLE_OK &&
      sock == CURL_SOCKET_BAD)
    cc = CURLE_COULDNT_CONNECT;
  if (cc != CURLE_OK) {
    raw_close(h);
    return cc;
  }
  h->raw_sock = sock;
  memcpy(h->raw_url, url, n + 1);
  h->connects++;
  return CURLE_OK;
}

/* ---- the response parser's callbacks (http-parser) */

/* A header line is complete: act on the two this transport reads. */
static void hp_header(struct weir_http *h) {
  if (h->hp_name_len > 0 && strcasecmp(h->hp_name, "x-amzn-errortype") == 0) {
    /* "Code:http://internal.amazon.com/..." keeps only the code */
    size_t vl = strcspn(h->hp_value, ":");

    if (vl >= sizeof(h->resp->error_type))
      vl = sizeof(h->resp->error_type) - 1;
    memcpy(h->resp->error_type, h->hp_value, vl);
    h->resp->error_type[vl] = '\0';
  }
  h->hp_name_len = h->hp_value_len = 0;
  h->hp_name[0] = h->hp_value[0] = '\0';
}

/* Appends a piece of a header name or value; one that does not fit is not one we read. */
static void hp_append(char *dst, size_t cap, size_t *len, const char *at, size_t n) {
  if (*len + n >= cap) {
    *len = cap; /* marks it too long: never matches */
    dst[0] = '\0';
    return;
  }
  memcpy(dst + *len, at, n);
  *len += n;
  dst[*len] = '\0';
}

static int hp_message_begin(http_parser *p) {
  struct weir_http *h = p->data;

  h->len = 0;
  h->hp_in_value = false;
  h->hp_name_len = h->hp_value_len = 0;
  h->hp_name[0] = h->hp_value[0] = '\0';
  h->resp->error_type[0] = '\0';
  return 0;
}

static int hp_header_field(http_parser *p, const char *at, size_t n) {
  struct weir_http *h = p->data;

  if (h->hp_in_value) {
    hp_header(h);
    h->hp_in_value = false;
  }
  if (h->hp_name_len < sizeof(h->hp_name))
    hp_append(h->hp_name, sizeof(h->hp_name), &h->hp_name_len, at, n);
  return 0;
}

static int hp_header_value(http_parser *p, const char *at, size_t n) {
  struct weir_http *h = p->data;

  h->hp_in_value = true;
  if (h->hp_value_len < sizeof(h->hp_value))
    hp_append(h->hp_value, sizeof(h->hp_value), &h->hp_value_len, at, n);
  return 0;
}

static int hp_headers_complete(http_parser *p) {
  struct weir_http *h = p->data;

  if (h->hp_in_value)
    hp_header(h);
  h->hp_in_value = false;
  if (p->status_code < 100) {
    h->hp_bad_status = true; /* http-parser takes any three digits; HTTP has 100..999 */
    return -1;
  }
  /* Size the buffer once for the whole body; past the bound, fail before reading it. */
  if (p->content_length != ULLONG_MAX && p->content_length > 0) {
    if (p->content_length > h->max_response) {
      h->too_big = true;
      return -1; /* an error for http-parser (1 and 2 mean "no body") */
    }
    if (reserve(h, (size_t)p->content_length) != 0)
      return -1;
  }
  return 0;
}

static int hp_body(http_parser *p, const char *at, size_t n) {
  struct weir_http *h = p->data;

  if (reserve(h, h->len + n) != 0)
    return 1;
  memcpy(h->buf + h->len, at, n);
  h->len += n;
  return 0;
}

static int hp_message_complete(http_parser *p) {
  struct weir_http *h = p->data;

  /* An interim response (100 Continue and the like) is followed by the real one. */
  if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101)
    return 0;
  h->hp_done = true;
  h->hp_keep = http_should_keep_alive(p) != 0;
  http_parser_pause(p, 1); /* bytes after the response are not this request's */
  return 0;
}

static const http_parser_settings hp_settings = {
    .on_message_begin = hp_message_begin,
    .on_header_field = hp_header_field,
    .on_header_value = hp_header_value,
    .on_headers_complete = hp_headers_complete,
    .on_body = hp_body,
    .on_message_complete = hp_message_complete,
};

/* Starts parsing an answer. */
static void hp_start(struct weir_http *h) {
  http_parser_init(&h->parser, HTTP_RESPONSE);
  h->parser.data = h;
  h->hp_done = h->hp_keep = h->hp_bad_status = false;
}

/* Feeds the next n bytes of the answer to the parser; n == 0 says the connection ended, which
 * ends a body delimited by it (http-parser then completes the message). Returns CURLE_OK (see
 * h->hp_done) or the error; `more` tells whether bytes arrived before (for the error). */
static CURLcode hp_feed(struct weir_http *h, const uint8_t *p, size_t n, bool more) {
  enum http_errno he;
  size_t used;

  if (n == 0) {
    http_parser_execute(&h->parser, &hp_settings, NULL, 0);
    if (h->hp_done) {
      h->hp_keep = false;
      return CURLE_OK;
    }
    snprintf(h->errbuf, sizeof(h->errbuf), "%s",
             more ? "connection closed before the whole response arrived"
                  : "connection closed before any response");
    return more ? CURLE_PARTIAL_FILE : CURLE_GOT_NOTHING;
  }
  used = http_parser_execute(&h->parser, &hp_settings, (const char *)p, n);
  he = HTTP_PARSER_ERRNO(&h->parser);
  if (he == HPE_PAUSED) {
    if (used < n)
      h->hp_keep = false; /* more than one answer: do not trust the connection */
    return CURLE_OK;
  }
  if (he == HPE_OK)
    return CURLE_OK;
  if (h->too_big)
    return CURLE_WRITE_ERROR;
  if (h->hp_bad_status) {
    snprintf(h->errbuf, sizeof(h->errbuf), "malformed HTTP response: status %03u",
             h->parser.status_code);
    return CURLE_WEIRD_SERVER_REPLY;
  }
  if (he == HPE_CB_headers_complete || he == HPE_CB_body)
    return CURLE_OUT_OF_MEMORY;
  snprintf(h->errbuf, sizeof(h->errbuf), "malformed HTTP response: %s", http_errno_description(he));
  return CURLE_WEIRD_SERVER_REPLY;
}

int weir__http_parse_answer(struct weir_http *h, const uint8_t *bytes, size_t n, size_t piece,
                            struct weir_http_response *resp) {
  CURLcode cc = CURLE_OK;
  size_t off = 0;

  begin_request(h, resp);
  hp_start(h);
  while (cc == CURLE_OK && !h->hp_done) {
    size_t k = n - off < piece ? n - off : piece;

    cc = hp_feed(h, bytes + off, k, off > 0);
    if (k == 0)
      break;
    off += k;
  }
  if (cc != CURLE_OK)
    return finish_body(h, transport_error(h, cc, resp), resp);
  resp->status = (long)h->parser.status_code;
  return finish_body(h, 0, resp);
}

/* Writes the request head: request line, the signed header lines, Content-Length. */
static int raw_head(struct weir_http *h, size_t body_len) {
  size_t cap = sizeof(h->head), n;
  int w = snprintf(h->head, cap, "POST %s HTTP/1.1\r\n", h->path);

  if (w < 0 || (size_t)w >= cap)
    return WEIR_ETOOBIG;
  n = (size_t)w;
  for (size_t i = 0; i < h->hdr_n; i++) {
    size_t l = strlen(h->hdr_nodes[i].data);

    if (n + l + 2 >= cap)
      return WEIR_ETOOBIG;
    memcpy(h->head + n, h->hdr_nodes[i].data, l);
    h->head[n + l] = '\r';
    h->head[n + l + 1] = '\n';
    n += l + 2;
  }
  w = snprintf(h->head + n, cap - n, "Content-Length: %zu\r\n\r\n", body_len);
  if (w < 0 || (size_t)w >= cap - n)
    return WEIR_ETOOBIG;
  h->head_len = n + (size_t)w;
  return 0;
}

/* Whether the kept connection can carry a request: still open, and the server sent nothing
 * since the last response (a readable socket between requests is its close, or garbage). */
static bool raw_alive(struct weir_http *h, const char *url) {
  struct pollfd pfd;

  if (h->raw == NULL || strcmp(h->raw_url, url) != 0)
    return false;
  pfd = (struct pollfd){h->raw_sock, POLLIN, 0};
  return poll(&pfd, 1, 0) == 0;
}

/* Writes what the socket takes now of the request (see h->post_sending). */
static CURLcode raw_push(struct weir_http *h) {
  while (h->seg_i < h->seg_count) {
    size_t sent = 0;
    CURLcode cc = curl_easy_send(h->raw, h->seg_p[h->seg_i], h->seg_n[h->seg_i], &sent);

    if (cc == CURLE_AGAIN)
      return CURLE_OK;
    if (cc != CURLE_OK)
      return cc;
    h->seg_p[h->seg_i] += sent;
    if ((h->seg_n[h->seg_i] -= sent) == 0)
      h->seg_i++;
  }
  if (h->seg_wipe != NULL)
    OPENSSL_cleanse(h->seg_wipe, h->head_len);
  h->seg_wipe = NULL;
  h->post_sending = false;
  return CURLE_OK;
}

/* Reads and parses what has arrived of the answer (see h->hp_done). */
static CURLcode raw_pull(struct weir_http *h) {
  while (!h->hp_done) {
    size_t got = 0;
    CURLcode cc = curl_easy_recv(h->raw, h->rbuf, sizeof(h->rbuf), &got);

    if (cc == CURLE_AGAIN)
      return CURLE_OK;
    if (cc == CURLE_OK)
      cc = hp_feed(h, h->rbuf, got, h->post_got_any);
    /* before the error return: bytes that are not HTTP count as an answer */
    h->post_got_any = h->post_got_any || got > 0;
    if (cc != CURLE_OK || got == 0)
      return cc;
  }
  return CURLE_OK;
}

/* Sends the request on the kept connection, opening one when there is none (or it died). */
static CURLcode raw_transmit(struct weir_http *h) {
  CURLcode cc;

  h->post_reused = raw_alive(h, h->post_url);
  h->post_got_any = false;
  h->errbuf[0] = '\0';
  h->len = 0;
  if (!h->post_reused && (cc = raw_connect(h, h->post_url, h->post_deadline)) != CURLE_OK)
    return cc;
  h->seg_i = 0;
  h->seg_wipe = NULL;
  if (h->head_len <= h->post_headroom && h->post_body_len > 0) {
    /* Head and body in one write: one segment train, one wake-up of the server. */
    uint8_t *w = (uint8_t *)h->post_body - h->head_len;

    memcpy(w, h->head, h->head_len);
    h->seg_wipe = w;
    h->seg_p[0] = w;
    h->seg_n[0] = h->head_len + h->post_body_len;
    h->seg_count = 1;
  } else {
    h->seg_p[0] = (const uint8_t *)h->head;
    h->seg_n[0] = h->head_len;
    h->seg_p[1] = h->post_body;
    h->seg_n[1] = h->post_body_len;
    h->seg_count = h->post_body_len > 0 ? 2 : 1;
  }
  h->post_sending = true;
  hp_start(h);
  return raw_push(h);
}

/* Ends the POST with curl code cc; returns its result. */
static int raw_end(struct weir_http *h, CURLcode cc) {
  struct weir_http_response *resp = h->post_resp;
  int rc = 0;

  if (h->seg_wipe != NULL)
    OPENSSL_cleanse(h->seg_wipe, h->head_len);
  h->seg_wipe = NULL;
  OPENSSL_cleanse(h->head, h->head_len);
  h->head_len = 0;
  h->post_active = false;
  h->post_resp = NULL;
  if (cc != CURLE_OK)
    rc = transport_error(h, cc, resp);
  else
    resp->status = (long)h->parser.status_code;
  return finish_body(h, rc, resp);
}

/* After a write or read step ended with cc (CURLE_OK: the answer is complete): ends the POST
 * or sends it again. Returns its result when *done. */
static int raw_settle(struct weir_http *h, CURLcode cc, bool *done) {
  *done = true;
  if (cc == CURLE_OK) {
    if (!h->hp_keep)
      raw_close(h);
    return raw_end(h, cc);
  }
  raw_close(h);
  /* A kept connection the server closed as the request went out: once more on a new one,
   * as libcurl does. Not after any response byte, a timeout or a fresh connection. */
  if (h->post_attempt == 0 && h->post_reused && !h->post_got_any &&
      cc != CURLE_OPERATION_TIMEDOUT && !h->too_big) {
    h->post_attempt = 1;
    if ((cc = raw_transmit(h)) == CURLE_OK) {
      *done = false;
      return 0;
    }
    raw_close(h);
  }
  return raw_end(h, cc);
}

int weir__http_post_begin(struct weir_http *h, const struct weir_http_request *req,
                          struct weir_http_response *resp) {
  CURLcode cc;
  bool post, done;
  int rc;

  if (h == NULL || req == NULL || resp == NULL || h->post_active)
    return WEIR_EINVAL;
  if ((rc = sign_headers(h, req, resp, &post)) != 0 || !post ||
      (rc = raw_head(h, req->body_len)) != 0) {
    OPENSSL_cleanse(h->head, sizeof(h->head));
    h->head_len = 0;
    h->resp = NULL;
    wipe_headers(h);
    return rc != 0 ? rc : WEIR_EINVAL;
  }
  h->post_active = true;
  h->post_attempt = 0;
  h->post_deadline = mono_ms() + h->request_timeout_ms;
  h->post_url = req->url;
  h->post_body = req->body;
  h->post_body_len = req->body_len;
  h->post_headroom = req->body_headroom;
  h->post_resp = resp;
  if ((cc = raw_transmit(h)) == CURLE_OK)
    return 0;
  rc = raw_settle(h, cc, &done);
  return done ? (rc != 0 ? rc : WEIR_EIO) : 0;
}

int weir__http_post_step(struct weir_http *h, bool *done) {
  CURLcode cc;

  *done = false;
  if (!h->post_active)
    return WEIR_EINVAL;
  cc = h->post_sending ? raw_push(h) : raw_pull(h);
  if (cc == CURLE_OK && !h->hp_done) {
    if (mono_ms() < h->post_deadline)
      return 0;
    snprintf(h->errbuf, sizeof(h->errbuf), "request timed out after %ld ms", h->request_timeout_ms);
    cc = CURLE_OPERATION_TIMEDOUT;
  }
  return raw_settle(h, cc, done);
}

int weir__http_post_socket(const struct weir_http *h) {
  return h->post_active ? (int)h->raw_sock : -1;
}

short weir__http_post_events(const struct weir_http *h) {
  return h->post_sending ? POLLOUT : POLLIN;
}

int64_t weir__http_post_deadline(const struct weir_http *h) {
  return h->post_deadline;
}

void weir__http_post_abort(struct weir_http *h) {
  if (h == NULL || !h->post_active)
    return;
  raw_close(h);
  snprintf(h->errbuf, sizeof(h->errbuf), "request abandoned");
  (void)raw_end(h, CURLE_ABORTED_BY_CALLBACK);
}

/* A POST over the kept connection (opened or reopened as needed), waiting for its answer. */
static int raw_post(struct weir_http *h, const struct weir_http_request *req,
                    struct weir_http_response *resp) {
  bool done = false;
  int rc = weir__http_post_begin(h, req, resp);

  if (!h->post_active)
    return rc;
  while (!done) {
    struct pollfd pfd = {h->raw_sock, weir__http_post_events(h), 0};
    int64_t left = h->post_deadline - mono_ms();

    /* A failed poll (EINTR) only shortens the wait: the step tells what happened. */
    if (left > 0)
      (void)poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
    rc = weir__http_post_step(h, &done);
  }
  return rc;
}

int weir__http_perform(struct weir_http *h, const struct weir_http_request *req,
                       struct weir_http_response *resp) {
  int rc;

  if (h == NULL || req == NULL || resp == NULL)
    return WEIR_EINVAL;
  if (req->method != NULL && strcmp(req->method, "POST") == 0)
    return raw_post(h, req, resp);
  if ((rc = prepare(h, req, resp)) != 0) {
    h->resp = NULL;
    wipe_headers(h);
    return rc;
  }
  return finish(h, curl_easy_perform(h->easy), resp);
}

struct weir_http_multi {
  CURLM *m; /* owned; its connection pool serves every request sent through it */
};

int weir__http_multi_create(struct weir_http_multi **out) {
  struct weir_http_multi *mu;
  int rc;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  if ((rc = weir__http_global_init()) != 0)
    return rc;
  if ((mu = calloc(1, sizeof(*mu))) == NULL)
    return WEIR_ENOMEM;
  if ((mu->m = curl_multi_init()) == NULL) {
    free(mu);
    return WEIR_ENOMEM;
  }
  *out = mu;
  return 0;
}

void weir__http_multi_destroy(struct weir_http_multi *mu) {
  if (mu == NULL)
    return;
  curl_multi_cleanup(mu->m);
  free(mu);
}

/* rcs[i] == IN_FLIGHT while request i runs (a value no WEIR_E* code takes). */
#define IN_FLIGHT 1

int weir__http_perform_many(struct weir_http_multi *mu, struct weir_http *const *hs,
                            const struct weir_http_request *reqs, struct weir_http_response *resps,
                            int *rcs, size_t n) {
  int running = 0, rc = 0;

  if (n == 0)
    return 0;
  if (mu == NULL || hs == NULL || reqs == NULL || resps == NULL || rcs == NULL)
    return WEIR_EINVAL;
  for (size_t i = 0; i < n; i++) {
    rcs[i] = prepare(hs[i], &reqs[i], &resps[i]);
    if (rcs[i] != 0) {
      hs[i]->resp = NULL;
      wipe_headers(hs[i]);
      continue;
    }
    if (curl_multi_add_handle(mu->m, hs[i]->easy) != CURLM_OK) {
      rcs[i] = WEIR_EIO;
      hs[i]->resp = NULL;
      rc = WEIR_EIO;
      goto done;
    }
    rcs[i] = IN_FLIGHT;
  }
  do {
    CURLMsg *msg;
    int left;
    if (curl_multi_perform(mu->m, &running) != CURLM_OK) {
      rc = WEIR_EIO;
      goto done;
    }
    while ((msg = curl_multi_info_read(mu->m, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      for (size_t i = 0; i < n; i++) {
        if (rcs[i] == IN_FLIGHT && hs[i]->easy == msg->easy_handle) {
          rcs[i] = finish(hs[i], msg->data.result, &resps[i]);
          break;
        }
      }
    }
    if (running > 0 && curl_multi_poll(mu->m, NULL, 0, 1000, NULL) != CURLM_OK) {
      rc = WEIR_EIO;
      goto done;
    }
  } while (running > 0);

done:
  /* Removing a handle that is not in the multi is a no-op for libcurl. */
  for (size_t i = 0; i < n; i++) {
    curl_multi_remove_handle(mu->m, hs[i]->easy);
    if (rcs[i] == IN_FLIGHT) {
      rcs[i] = WEIR_EIO;
      hs[i]->resp = NULL;
    }
  }
  return rc;
}

long weir__http_connects(const struct weir_http *h) {
  return h->connects;
}

bool weir__http_transport_retryable(int curl_code) {
  switch ((CURLcode)curl_code) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_SSL_CONNECT_ERROR: /* a reset during the handshake; verification has its own codes */
    return true;
  default:
    return false;
  }
}
