/* client.c: the Kinesis client object and its call path: sign, send, classify, back off, retry. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/aws/credentials_int.h"
#include "connectors/aws/http_int.h"
#include "connectors/aws/sigv4_int.h"
#include "connectors/kinesis/client_int.h"
#include "runtime/log_int.h"
#include "weir/record.h"

/* API version 2013-12-02: X-Amz-Target prefix (service-2.json "targetPrefix"). */
#define TARGET_PREFIX "Kinesis_20131202."
/* AWS JSON 1.1 protocol content type (service-2.json "jsonVersion": "1.1"). */
#define CONTENT_TYPE "application/x-amz-json-1.1"
/* Signing name (service-2.json "signingName"). */
#define SIGNING_NAME "kinesis"

static const char *const op_names[WEIR_KINESIS_OP_COUNT] = {
    [WEIR_KINESIS_OP_LIST_SHARDS] = "ListShards",
    [WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY] = "DescribeStreamSummary",
    [WEIR_KINESIS_OP_GET_SHARD_ITERATOR] = "GetShardIterator",
    [WEIR_KINESIS_OP_GET_RECORDS] = "GetRecords",
    [WEIR_KINESIS_OP_PUT_RECORDS] = "PutRecords",
    [WEIR_KINESIS_OP_CREATE_STREAM] = "CreateStream",
    [WEIR_KINESIS_OP_DELETE_STREAM] = "DeleteStream",
    [WEIR_KINESIS_OP_SPLIT_SHARD] = "SplitShard",
    [WEIR_KINESIS_OP_MERGE_SHARDS] = "MergeShards",
    [WEIR_KINESIS_OP_UPDATE_SHARD_COUNT] = "UpdateShardCount",
};

const char *weir__kinesis_op_name(enum weir_kinesis_op op) {
  return (unsigned)op < WEIR_KINESIS_OP_COUNT ? op_names[op] : "?";
}

static void default_policies(struct weir_kinesis_retry *p) {
  const struct weir_kinesis_retry get = {
      WEIR_KINESIS_GETRECORDS_RETRIES, WEIR_KINESIS_GETRECORDS_BACKOFF_BASE_MS,
      WEIR_KINESIS_GETRECORDS_BACKOFF_MAX_MS, WEIR_KINESIS_GETRECORDS_BACKOFF_EXP};
  const struct weir_kinesis_retry iter = {
      WEIR_KINESIS_GETITERATOR_RETRIES, WEIR_KINESIS_GETITERATOR_BACKOFF_BASE_MS,
      WEIR_KINESIS_GETITERATOR_BACKOFF_MAX_MS, WEIR_KINESIS_GETITERATOR_BACKOFF_EXP};
  const struct weir_kinesis_retry list = {
      WEIR_KINESIS_LIST_SHARDS_RETRIES, WEIR_KINESIS_LIST_SHARDS_BACKOFF_BASE_MS,
      WEIR_KINESIS_LIST_SHARDS_BACKOFF_MAX_MS, WEIR_KINESIS_LIST_SHARDS_BACKOFF_EXP};
  const struct weir_kinesis_retry describe = {
      WEIR_KINESIS_DESCRIBE_RETRIES, WEIR_KINESIS_DESCRIBE_BACKOFF_BASE_MS,
      WEIR_KINESIS_DESCRIBE_BACKOFF_MAX_MS, WEIR_KINESIS_DESCRIBE_BACKOFF_EXP};

  p[WEIR_KINESIS_OP_LIST_SHARDS] = list;
  p[WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY] = describe;
  p[WEIR_KINESIS_OP_GET_SHARD_ITERATOR] = iter;
  p[WEIR_KINESIS_OP_GET_RECORDS] = get;
  p[WEIR_KINESIS_OP_PUT_RECORDS] = get;
  p[WEIR_KINESIS_OP_CREATE_STREAM] = list;
  p[WEIR_KINESIS_OP_DELETE_STREAM] = list;
  p[WEIR_KINESIS_OP_SPLIT_SHARD] = list;
  p[WEIR_KINESIS_OP_MERGE_SHARDS] = list;
  p[WEIR_KINESIS_OP_UPDATE_SHARD_COUNT] = list;
}

/* The HTTP layer's signing hook: SigV4 over every header the transport sends. */
static int sign_cb(void *data, const struct weir_http_sign_input *in, char *auth, size_t auth_cap,
                   struct weir_http_header *extra, size_t extra_cap, size_t *n_extra) {
  struct weir_kinesis_client *c = data;
  struct weir_sigv4_header hdrs[WEIR_HTTP_MAX_HEADERS + 4];
  struct weir_sigv4_request req;
  weir_buf token;
  size_t n = 0;

  *n_extra = 0;
  if (in->n_headers > WEIR_HTTP_MAX_HEADERS + 2)
    return WEIR_ETOOBIG;
  for (size_t i = 0; i < in->n_headers; i++) {
    hdrs[n].name = weir_buf_str(in->headers[i].name);
    hdrs[n].value = weir_buf_str(in->headers[i].value);
    n++;
  }
  token = weir__sigv4_session_token(c->signer);
  if (token.len > 0) {
    /* The signer signs x-amz-security-token itself; the request must carry the same value. */
    if (extra_cap < 1 || token.len >= sizeof(c->token_hdr))
      return WEIR_ETOOBIG;
    memcpy(c->token_hdr, token.ptr, token.len);
    c->token_hdr[token.len] = '\0';
    extra[0] = (struct weir_http_header){"X-Amz-Security-Token", c->token_hdr};
    *n_extra = 1;
  }
  memset(&req, 0, sizeof(req));
  req.method = weir_buf_str(in->method);
  req.path = weir_buf_str(in->path);
  req.query = weir_buf_str(in->query);
  req.headers = hdrs;
  req.n_headers = n;
  req.payload_hash = weir_buf_str(in->payload_sha256_hex);
  req.amz_date = in->amz_date;
  return weir__sigv4_sign(c->signer, &req, auth, auth_cap, NULL);
}

int weir__kinesis_client_create_ex(weir_kinesis_client **out, const weir_kinesis_config *cfg,
                                   const char *resolve) {
  static const weir_kinesis_config defaults;
  struct weir_kinesis_client *c = NULL;
  struct weir_aws_options opts;
  struct weir_sigv4_config scfg;
  struct weir_http_opts hopts;
  char err[WEIR_AWS_ERR_MAX];
  const char *p;
  int rc;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  if (cfg == NULL)
    cfg = &defaults;
  if (cfg->connect_timeout_ms < 0 || cfg->request_timeout_ms < 0)
    return WEIR_EINVAL;
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return WEIR_ENOMEM;
  default_policies(c->retry);
  c->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)c << 16) ^ 0x2545f4914f6cdd1dull;
  weir__kjson_init_head(&c->body, WEIR_KINESIS_PUT_MAX_REQUEST, WEIR_HTTP_HEAD_ROOM);

  memset(&opts, 0, sizeof(opts));
  opts.access_key_id = cfg->access_key_id;
  opts.secret_access_key = cfg->secret_access_key;
  opts.session_token = cfg->session_token;
  opts.profile = cfg->profile;
  opts.region = cfg->region;
  opts.endpoint_url = cfg->endpoint;
  /* On failure the resolver has logged what was wrong and how to fix it. */
  if ((rc = weir__aws_resolve(&opts, SIGNING_NAME, &c->aws, err, sizeof(err))) != 0)
    goto fail;
  c->resolved = true;

  /* The request URL is the endpoint plus "/" (every Kinesis operation is POST /). */
  p = c->aws.endpoint;
  if (snprintf(c->url, sizeof(c->url), "%s/", p) >= (int)sizeof(c->url)) {
    rc = WEIR_ETOOBIG;
    goto fail;
  }

  memset(&scfg, 0, sizeof(scfg));
  scfg.creds = c->aws.creds;
  scfg.region = c->aws.region;
  scfg.service = SIGNING_NAME;
  if ((rc = weir__sigv4_signer_create(&scfg, &c->signer)) != 0) {
    WEIR_LOG_ERR("[kinesis] cannot make a SigV4 signer for region %s: %s", c->aws.region,
                 weir_strerror(rc));
    goto fail;
  }

  memset(&hopts, 0, sizeof(hopts));
  hopts.ca_file = cfg->ca_file;
  hopts.connect_timeout_ms = (long)cfg->connect_timeout_ms;
  hopts.request_timeout_ms = (long)cfg->request_timeout_ms;
  hopts.max_response = WEIR_KINESIS_GET_MAX_RESPONSE;
  hopts.resolve = resolve;
  hopts.sign_cb = sign_cb;
  hopts.sign_data = c;
  if ((rc = weir__http_create(&c->http, &hopts)) != 0)
    goto fail;
  WEIR_LOG_DEBUG("[kinesis] client for %s in %s, credentials from %s", c->aws.endpoint,
                 c->aws.region, weir__aws_credentials_describe(c->aws.creds));
  *out = c;
  return 0;

fail:
  weir_kinesis_client_destroy(c);
  return rc;
}

int weir_kinesis_client_create(weir_kinesis_client **out, const weir_kinesis_config *cfg) {
  return weir__kinesis_client_create_ex(out, cfg, NULL);
}

void weir_kinesis_client_destroy(weir_kinesis_client *c) {
  if (c == NULL)
    return;
  weir__http_destroy(c->http);
  weir__sigv4_signer_destroy(c->signer);
  if (c->resolved)
    weir__aws_resolved_release(&c->aws);
  weir__kjson_free(&c->body);
  OPENSSL_cleanse(c->token_hdr, sizeof(c->token_hdr));
  free(c);
}

void weir__kinesis_set_retry(weir_kinesis_client *c, enum weir_kinesis_op op,
                             const struct weir_kinesis_retry *policy) {
  WEIR_ASSERT((unsigned)op < WEIR_KINESIS_OP_COUNT && policy != NULL);
  c->retry[op] = *policy;
}

const struct weir_kinesis_error *weir__kinesis_last_error(const weir_kinesis_client *c) {
  return &c->err;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Sets up the HTTP request of a call in c->a_*: target header, the body (the client's own body
 * buffer keeps room for the request head before the text). */
static void request_init(weir_kinesis_client *c, enum weir_kinesis_op op, const char *stream,
                         const uint8_t *body, size_t len) {
  WEIR_ASSERT((unsigned)op < WEIR_KINESIS_OP_COUNT);
  c->a_op = op;
  c->a_stream = stream != NULL ? stream : "";
  snprintf(c->a_target, sizeof(c->a_target), TARGET_PREFIX "%s", op_names[op]);
  c->a_hdrs[0] = (struct weir_http_header){"Content-Type", CONTENT_TYPE};
  c->a_hdrs[1] = (struct weir_http_header){"X-Amz-Target", c->a_target};
  c->a_req = (struct weir_http_request){"POST",
                                        c->url,
                                        c->a_hdrs,
                                        2,
                                        body,
                                        len,
                                        body == (const uint8_t *)c->body.p ? c->body.head : 0};
}

/* Reads the outcome of one attempt (rc and c->a_resp from the transport) into c->err; returns
 * 0 for a 2xx answer. */
static int attempt_outcome(weir_kinesis_client *c, int rc, int attempt) {
  const struct weir_http_response *resp = &c->a_resp;
  struct weir_kinesis_error *err = &c->err;

  memset(err, 0, sizeof(*err));
  err->attempts = attempt + 1;
  if (rc == 0 && resp->status >= 200 && resp->status < 300)
    return 0;
  if (rc == 0) {
    weir__kinesis_parse_error(resp->status, resp->error_type, resp->body, resp->body_len, err);
    if (err->code[0] == '\0')
      snprintf(err->code, sizeof(err->code), "HTTP%ld", resp->status);
  } else {
    /* No response: the transport says whether the failure is worth another try. */
    err->http_status = 0;
    snprintf(err->code, sizeof(err->code), "%s",
             rc == WEIR_ETIMEDOUT ? "RequestTimeout" : weir_err_name(rc));
    snprintf(err->message, sizeof(err->message), "%s",
             resp->error[0] ? resp->error : weir_strerror(rc));
    err->cls =
        (rc == WEIR_EIO || rc == WEIR_ETIMEDOUT) && weir__http_transport_retryable(resp->curl_code)
            ? WEIR_KINESIS_ERR_TRANSIENT
            : WEIR_KINESIS_ERR_FATAL;
  }
  err->rc = rc;
  return rc != 0 ? rc : WEIR_EIO;
}

/* The call failed for good (c->err from its last attempt): its rc, logged once. */
static int call_failed(weir_kinesis_client *c) {
  struct weir_kinesis_error *err = &c->err;
  const char *op = op_names[c->a_op];
  int rc = weir__kinesis_error_rc(err);

  err->rc = rc;
  if (c->quiet)
    WEIR_LOG_DEBUG("[kinesis %s %s] %s%s%s (HTTP %ld, %d attempt%s)", op, c->a_stream, err->code,
                   err->message[0] ? ": " : "", err->message, err->http_status, err->attempts,
                   err->attempts == 1 ? "" : "s");
  else
    WEIR_LOG_ERR("[kinesis %s %s] %s%s%s (HTTP %ld, %d attempt%s)", op, c->a_stream, err->code,
                 err->message[0] ? ": " : "", err->message, err->http_status, err->attempts,
                 err->attempts == 1 ? "" : "s");
  return rc;
}

int weir__kinesis_call(weir_kinesis_client *c, enum weir_kinesis_op op, const char *stream,
                       const uint8_t *body, size_t len, const uint8_t **resp_body,
                       size_t *resp_len) {
  const struct weir_kinesis_retry *policy = &c->retry[op];
  int attempt;

  request_init(c, op, stream, body, len);
  for (attempt = 0;; attempt++) {
    int rc = weir__http_perform(c->http, &c->a_req, &c->a_resp);

    if (attempt_outcome(c, rc, attempt) == 0) {
      *resp_body = c->a_resp.body;
      *resp_len = c->a_resp.body_len;
      return 0;
    }
    if (c->err.cls == WEIR_KINESIS_ERR_FATAL || attempt >= policy->retries)
      break;
    {
      int64_t delay = weir__kinesis_backoff_ms(policy, attempt, &c->rng);
      WEIR_LOG_DEBUG("[kinesis %s %s] %s (%s), retry %d/%d in %lld ms", op_names[op], c->a_stream,
                     c->err.code,
                     c->err.cls == WEIR_KINESIS_ERR_THROTTLING ? "throttled" : "transient",
                     attempt + 1, policy->retries, (long long)delay);
      sleep_ms(delay);
    }
  }
  return call_failed(c);
}

int weir__kinesis_call_begin(weir_kinesis_client *c, enum weir_kinesis_op op, const char *stream,
                             const uint8_t *body, size_t len) {
  int rc;

  request_init(c, op, stream, body, len);
  memset(&c->err, 0, sizeof(c->err));
  if ((rc = weir__http_post_begin(c->http, &c->a_req, &c->a_resp)) == 0)
    return 0;
  (void)attempt_outcome(c, rc, 0);
  return call_failed(c);
}

int weir__kinesis_call_step(weir_kinesis_client *c, bool *done, const uint8_t **resp_body,
                            size_t *resp_len) {
  int rc = weir__http_post_step(c->http, done);

  if (!*done)
    return 0;
  if (attempt_outcome(c, rc, 0) == 0) {
    *resp_body = c->a_resp.body;
    *resp_len = c->a_resp.body_len;
    return 0;
  }
  return call_failed(c);
}

int weir__kinesis_call_socket(const weir_kinesis_client *c) {
  return weir__http_post_socket(c->http);
}

short weir__kinesis_call_events(const weir_kinesis_client *c) {
  return weir__http_post_events(c->http);
}

int64_t weir__kinesis_call_deadline(const weir_kinesis_client *c) {
  return weir__http_post_deadline(c->http);
}

void weir__kinesis_call_abort(weir_kinesis_client *c) {
  weir__http_post_abort(c->http);
}

size_t weir__kinesis_str_size(const char *s) {
  return s == NULL ? 0 : strlen(s) + 1;
}

const char *weir__kinesis_str_put(char **pos, const char *src) {
  char *d = *pos;
  size_t n;

  if (src == NULL)
    return NULL;
  n = strlen(src) + 1;
  memcpy(d, src, n);
  *pos += n;
  return d;
}

size_t weir__kinesis_config_strings_size(const weir_kinesis_config *c) {
  return weir__kinesis_str_size(c->region) + weir__kinesis_str_size(c->endpoint) +
         weir__kinesis_str_size(c->access_key_id) + weir__kinesis_str_size(c->secret_access_key) +
         weir__kinesis_str_size(c->session_token) + weir__kinesis_str_size(c->profile) +
         weir__kinesis_str_size(c->ca_file);
}

void weir__kinesis_config_put_strings(weir_kinesis_config *dst, const weir_kinesis_config *src,
                                      char **pos) {
  dst->region = weir__kinesis_str_put(pos, src->region);
  dst->endpoint = weir__kinesis_str_put(pos, src->endpoint);
  dst->access_key_id = weir__kinesis_str_put(pos, src->access_key_id);
  dst->secret_access_key = weir__kinesis_str_put(pos, src->secret_access_key);
  dst->session_token = weir__kinesis_str_put(pos, src->session_token);
  dst->profile = weir__kinesis_str_put(pos, src->profile);
  dst->ca_file = weir__kinesis_str_put(pos, src->ca_file);
}
