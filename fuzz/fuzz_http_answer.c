/* fuzz_http_answer.c: HTTP/1.1 answers -> the POST path's parsing (http-parser and weir's
 * callbacks: header capture, body bound, interim answers, chunked and close-delimited bodies).
 * The first byte picks the piece size the bytes arrive in (1..256), the second the response
 * bound (64 bytes << 0..7); the rest is what the server sent before closing the connection. */
#include <string.h>

#include "connectors/aws/http_int.h"
#include "fuzz_common.h"

static struct weir_http *handles[8];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  for (size_t i = 0; i < 8; i++) {
    struct weir_http_opts o = {0};

    o.max_response = (size_t)64 << i;
    if (weir__http_create(&handles[i], &o) != 0)
      return -1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct weir_http_response resp;
  struct weir_http *h;
  size_t piece, bound;
  int rc;

  if (size < 2)
    return 0;
  piece = 1 + (size_t)data[0];
  h = handles[data[1] % 8];
  bound = (size_t)64 << (data[1] % 8);
  rc = weir__http_parse_answer(h, data + 2, size - 2, piece, &resp);
  FUZZ_CHECK(rc == 0 || rc == WEIR_EIO || rc == WEIR_ETOOBIG || rc == WEIR_ENOMEM);
  FUZZ_CHECK(resp.body != NULL && resp.body[resp.body_len] == '\0');
  FUZZ_CHECK(resp.body_len <= bound);
  FUZZ_CHECK(memchr(resp.error_type, 0, sizeof(resp.error_type)) != NULL);
  FUZZ_CHECK(memchr(resp.error, 0, sizeof(resp.error)) != NULL);
  if (rc == 0) {
    FUZZ_CHECK(resp.status >= 100 && resp.status <= 999);
    FUZZ_CHECK(resp.error[0] == '\0');
  } else {
    FUZZ_CHECK(resp.error[0] != '\0');
  }
  return 0;
}
