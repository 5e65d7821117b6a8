/* errors.c: parsing and classifying Kinesis error responses; backoff with full jitter. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "connectors/kinesis/errors_int.h"

void weir__kinesis_error_code_normalize(char *code) {
  char *p;
  size_t n;

  /* "Code:http://internal.amazon.com/coral/..." -> "Code" */
  if ((p = strchr(code, ':')) != NULL)
    *p = '\0';
  /* "com.amazonaws.kinesis.v20131202#InvalidArgumentException" -> "InvalidArgumentException" */
  if ((p = strrchr(code, '#')) != NULL) {
    n = strlen(p + 1);
    memmove(code, p + 1, n + 1);
  }
}

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);

  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

void weir__kinesis_parse_error(long http_status, const char *error_type_header, const uint8_t *body,
                               size_t len, struct weir_kinesis_error *err) {
  json_t *root = NULL, *v;

  err->http_status = http_status;
  err->code[0] = '\0';
  err->message[0] = '\0';
  if (len > 0)
    root = json_loadb((const char *)body, len, 0, NULL);
  if (error_type_header != NULL && error_type_header[0] != '\0')
    copy_str(err->code, sizeof(err->code), error_type_header);
  else if (json_is_object(root) && json_is_string(v = json_object_get(root, "code")))
    copy_str(err->code, sizeof(err->code), json_string_value(v));
  else if (json_is_object(root) && json_is_string(v = json_object_get(root, "__type")))
    copy_str(err->code, sizeof(err->code), json_string_value(v));
  weir__kinesis_error_code_normalize(err->code);
  if (json_is_object(root)) {
    if (json_is_string(v = json_object_get(root, "message")) ||
        json_is_string(v = json_object_get(root, "Message")))
      copy_str(err->message, sizeof(err->message), json_string_value(v));
  }
  json_decref(root);
  err->cls = weir__kinesis_classify(http_status, err->code);
}

static bool in_list(const char *code, const char *const *list) {
  for (; *list != NULL; list++)
    if (strcmp(code, *list) == 0)
      return true;
  return false;
}

/* botocore standard retry mode's throttling codes, plus KMSThrottlingException (kinesis-api.md). */
static const char *const throttling_codes[] = {"ProvisionedThroughputExceededException",
                                               "LimitExceededException",
                                               "KMSThrottlingException",
                                               "Throttling",
                                               "ThrottlingException",
                                               "ThrottledException",
                                               "RequestThrottledException",
                                               "TooManyRequestsException",
                                               "RequestLimitExceeded",
                                               "BandwidthLimitExceeded",
                                               "RequestThrottled",
                                               "SlowDown",
                                               "PriorRequestNotComplete",
                                               NULL};

static const char *const transient_codes[] = {"InternalFailure",
                                              "InternalFailureException",
                                              "InternalServerError",
                                              "ServiceUnavailable",
                                              "ServiceUnavailableException",
                                              "RequestTimeout",
                                              "RequestTimeoutException",
                                              NULL};

enum weir_kinesis_err_class weir__kinesis_classify(long http_status, const char *code) {
  if (http_status >= 200 && http_status < 300 && (code == NULL || code[0] == '\0'))
    return WEIR_KINESIS_ERR_NONE;
  if (code != NULL && in_list(code, throttling_codes))
    return WEIR_KINESIS_ERR_THROTTLING;
  if (code != NULL && in_list(code, transient_codes))
    return WEIR_KINESIS_ERR_TRANSIENT;
  if (http_status == 429)
    return WEIR_KINESIS_ERR_THROTTLING;
  if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504)
    return WEIR_KINESIS_ERR_TRANSIENT;
  return WEIR_KINESIS_ERR_FATAL;
}

int weir__kinesis_error_rc(const struct weir_kinesis_error *err) {
  const char *c = err->code;

  if (strcmp(c, "ResourceNotFoundException") == 0)
    return WEIR_ENOTFOUND;
  if (strcmp(c, "ResourceInUseException") == 0)
    return WEIR_ESTATE;
  if (strcmp(c, "InvalidArgumentException") == 0 || strcmp(c, "ValidationException") == 0 ||
      strcmp(c, "SerializationException") == 0)
    return WEIR_EINVAL;
  if (err->cls == WEIR_KINESIS_ERR_THROTTLING)
    return WEIR_EAGAIN;
  /* No response: the transport's or signer's own code (WEIR_ETIMEDOUT, WEIR_ETOOBIG, ...). */
  if (err->http_status == 0 && err->rc < 0)
    return err->rc;
  return WEIR_EIO;
}

static uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s != 0 ? *s : 0x9e3779b97f4a7c15ull;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

int64_t weir__kinesis_backoff_ms(const struct weir_kinesis_retry *p, int retry, uint64_t *rng) {
  double cap = (double)p->base_ms;
  double u;

  /* base * exp^retry, stopping at the cap (no libm needed, no overflow). */
  for (int i = 0; i < retry && cap < (double)p->max_ms; i++)
    cap *= p->exp;
  if (!(cap < (double)p->max_ms))
    cap = (double)p->max_ms;
  if (cap <= 0)
    return 0;
  u = (double)(xorshift64(rng) >> 11) / (double)(1ull << 53); /* [0, 1) */
  return (int64_t)(u * cap);
}
