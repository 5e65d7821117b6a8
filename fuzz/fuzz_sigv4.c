/*
 * fuzz_sigv4.c: SigV4 canonicalisation of odd requests (connectors/aws/sigv4_int.h).
 *
 * The input is split on '\n': line 0 the method, line 1 the path, line 2 the query, then one
 * header per line ("name:value", split at the first ':') up to an empty line; what follows is
 * the payload. Byte values in the method's first character pick flags and modes. The canonical
 * request, the string to sign, the Authorization value and presigned query parameters are all
 * computed; each must be NUL-terminated with the length reported.
 */
#include <string.h>

#include "connectors/aws/credentials_int.h"
#include "connectors/aws/sigv4_int.h"
#include "fuzz_common.h"

#define MAX_H WEIR_SIGV4_MAX_HEADERS + 2
static struct weir_sigv4_signer *signers[2];
static char out[16384];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *creds = NULL;
  struct weir_sigv4_config cfg = {0};

  (void)argc;
  (void)argv;
  fuzz_quiet();
  /* The example keys of the AWS SigV4 test suite. */
  o.access_key_id = "AKIDEXAMPLE";
  o.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  o.session_token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW";
  if (weir__aws_credentials_from_static(&o, &creds, NULL, 0) != 0)
    abort();
  cfg.creds = creds;
  cfg.region = "us-east-1";
  cfg.service = "service";
  if (weir__sigv4_signer_create(&cfg, &signers[0]) != 0)
    abort();
  cfg.flags = WEIR_SIGV4_NO_NORMALIZE_PATH | WEIR_SIGV4_SIGN_BODY;
  if (weir__sigv4_signer_create(&cfg, &signers[1]) != 0)
    abort();
  weir__aws_credentials_free(creds);
  return 0;
}

/* The next '\n'-terminated piece of [*p, end), as a view. */
static weir_buf next_line(const uint8_t **p, const uint8_t *end) {
  const uint8_t *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
  weir_buf b = {s, nl != NULL ? (size_t)(nl - s) : (size_t)(end - s)};
  *p = nl != NULL ? nl + 1 : end;
  return b;
}

static void check(int rc, size_t len) {
  if (rc == 0)
    FUZZ_CHECK(strlen(out) == len && len < sizeof(out));
  else
    FUZZ_CHECK(rc == WEIR_EINVAL || rc == WEIR_ETOOBIG || rc == WEIR_ENOMEM);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size;
  struct weir_sigv4_header hdrs[MAX_H];
  struct weir_sigv4_request req;
  struct weir_sigv4_signer *s;
  size_t len = 0;
  unsigned sel;
  int rc;

  if (size < 1)
    return 0;
  sel = data[0];
  memset(&req, 0, sizeof(req));
  s = signers[sel & 1];
  req.method = next_line(&p, end);
  req.path = next_line(&p, end);
  req.query = next_line(&p, end);
  while (p < end && *p != '\n' && req.n_headers < MAX_H) {
    weir_buf line = next_line(&p, end);
    const uint8_t *colon = memchr(line.ptr, ':', line.len);
    size_t nlen = colon != NULL ? (size_t)(colon - line.ptr) : line.len;
    hdrs[req.n_headers].name = (weir_buf){line.ptr, nlen};
    hdrs[req.n_headers].value =
        colon != NULL ? (weir_buf){colon + 1, line.len - nlen - 1} : (weir_buf){line.ptr, 0};
    req.n_headers++;
  }
  if (p < end)
    p++;
  req.headers = hdrs;
  req.payload = (weir_buf){p, (size_t)(end - p)};
  if (sel & 2)
    req.payload_hash = (weir_buf){(const uint8_t *)WEIR_SIGV4_UNSIGNED_PAYLOAD,
                                  sizeof(WEIR_SIGV4_UNSIGNED_PAYLOAD) - 1};
  req.amz_date = (sel & 4) ? "20150830T123600Z" : "2015083OT12360OZ";
  if (sel & 8)
    req.region = (weir_buf){(const uint8_t *)"eu-west-1", 9};

  rc = weir__sigv4_canonical_request(s, &req, out, sizeof(out), &len);
  check(rc, len);
  rc = weir__sigv4_string_to_sign(s, &req, out, sizeof(out), &len);
  check(rc, len);
  rc = weir__sigv4_sign(s, &req, out, sizeof(out), &len);
  check(rc, len);
  if (rc == 0)
    FUZZ_CHECK(strncmp(out, WEIR_SIGV4_ALGORITHM " ", sizeof(WEIR_SIGV4_ALGORITHM)) == 0);
  req.expires = (sel & 16) ? 86400 : 1 + (sel >> 5);
  rc = weir__sigv4_presign(s, &req, out, sizeof(out), &len);
  check(rc, len);
  /* A tiny output buffer must fail cleanly, never overflow. */
  req.expires = 0;
  rc = weir__sigv4_sign(s, &req, out, 40, &len);
  FUZZ_CHECK(rc != 0);
  return 0;
}
