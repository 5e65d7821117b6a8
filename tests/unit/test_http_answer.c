/*
 * test_http_answer.c: how the POST path of connectors/aws/http.c reads an answer (http-parser
 * and weir's callbacks), through weir__http_parse_answer: the same code a POST runs on the
 * bytes curl_easy_recv returns. Every case is fed whole and in pieces of 1, 2 and 7 bytes, so
 * status line, header names and values, chunk sizes and bodies are split everywhere.
 * Real servers in front of the same path: test_kinesis_client, test_http_wire.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <string.h>

#include "connectors/aws/http_int.h"
#include "weir/weir.h"

static const size_t pieces[] = {1, 2, 7, 1u << 20};

struct want {
  int rc;
  long status;
  const char *body;       /* NULL: not checked (failures) */
  const char *error_type; /* "" when none */
  int curl_code;
  bool retryable; /* for failures: weir__http_transport_retryable */
};

static void check(const char *what, const char *answer, size_t max_response, const struct want *w) {
  for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
    struct weir_http_opts o = {0};
    struct weir_http_response resp;
    struct weir_http *h = NULL;
    int rc;

    o.max_response = max_response;
    cr_assert_eq(weir__http_create(&h, &o), 0);
    rc = weir__http_parse_answer(h, (const uint8_t *)answer, strlen(answer), pieces[i], &resp);
    cr_assert_eq(rc, w->rc, "%s, pieces of %zu: rc %s, expected %s (%s)", what, pieces[i],
                 weir_err_name(rc), weir_err_name(w->rc), resp.error);
    cr_assert_eq(resp.curl_code, w->curl_code, "%s, pieces of %zu: curl code %d, expected %d", what,
                 pieces[i], resp.curl_code, w->curl_code);
    if (rc == 0) {
      cr_assert_eq(resp.status, w->status, "%s: status %ld", what, resp.status);
      cr_assert_str_eq(resp.error, "", "%s", what);
    } else {
      cr_assert_neq(resp.error[0], '\0', "%s: a failure says what happened", what);
      cr_assert_eq(weir__http_transport_retryable(resp.curl_code), w->retryable, "%s", what);
    }
    if (w->body != NULL) {
      cr_assert_eq(resp.body_len, strlen(w->body), "%s, pieces of %zu: body of %zu bytes", what,
                   pieces[i], resp.body_len);
      cr_assert_str_eq((const char *)resp.body, w->body, "%s, pieces of %zu", what, pieces[i]);
    }
    cr_assert_str_eq(resp.error_type, w->error_type, "%s", what);
    weir__http_destroy(h);
  }
}

Test(http_answer, content_length_body) {
  struct want w = {0, 200, "{\"StreamNames\":[],\"HasMoreStreams\":false}", "", CURLE_OK, false};

  check("content-length",
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 41\r\n"
        "Date: Thu, 26 Nov 2026 08:00:00 GMT\r\n\r\n"
        "{\"StreamNames\":[],\"HasMoreStreams\":false}",
        0, &w);
}

Test(http_answer, chunked_body_with_extensions_and_trailer) {
  struct want w = {0, 200, "{\"a\":1}\n", "", CURLE_OK, false};

  check("chunked",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\nTrailer: x\r\n\r\n",
        0, &w);
}

Test(http_answer, interim_answers_are_skipped) {
  struct want w = {0, 201, "{}", "", CURLE_OK, false};

  check("100 then 201",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
        "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}",
        0, &w);
}

Test(http_answer, error_type_header_keeps_the_code) {
  struct want w = {
      0,        400,  "{\"__type\":\"ResourceNotFoundException\"}", "ResourceNotFoundException",
      CURLE_OK, false};

  check("x-amzn-errortype",
        "HTTP/1.1 400 Bad Request\r\nX-Amzn-ErrorType: "
        "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.kinesis/\r\n"
        "Content-Length: 38\r\n\r\n{\"__type\":\"ResourceNotFoundException\"}",
        0, &w);
}

Test(http_answer, long_unread_headers_do_not_matter) {
  char answer[4096];
  struct want w = {0, 200, "ok", "", CURLE_OK, false};
  char pad[1500];

  memset(pad, 'v', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  snprintf(answer, sizeof(answer),
           "HTTP/1.1 200 OK\r\nX-Long-%s: %s\r\nx-amzn-errortypex: no\r\nContent-Length: 2\r\n"
           "\r\nok",
           pad, pad);
  check("long headers", answer, 0, &w);
}

Test(http_answer, body_delimited_by_the_end_of_the_connection) {
  struct want w = {0, 200, "until the end", "", CURLE_OK, false};

  check("eof body", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 0, &w);
}

Test(http_answer, an_answer_cut_short_is_retryable) {
  struct want cut = {WEIR_EIO, 0, NULL, "", CURLE_PARTIAL_FILE, true};
  struct want none = {WEIR_EIO, 0, NULL, "", CURLE_GOT_NOTHING, true};
  struct want head = {WEIR_EIO, 0, NULL, "", CURLE_PARTIAL_FILE, true};

  check("truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Fail", 0, &cut);
  check("nothing", "", 0, &none);
  check("half a head", "HTTP/1.1 200 OK\r\nContent-Le", 0, &head);
}

Test(http_answer, bodies_over_the_bound_are_refused) {
  struct want declared = {WEIR_ETOOBIG, 0, NULL, "", CURLE_WRITE_ERROR, false};
  struct want chunked = {WEIR_ETOOBIG, 0, NULL, "", CURLE_WRITE_ERROR, false};
  struct want at_bound = {0, 200, "0123456789abcdef", "", CURLE_OK, false};

  check("content-length over", "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}", 64, &declared);
  check("chunked over",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"
        "1\r\nx\r\n0\r\n\r\n",
        16, &chunked);
  check("at the bound", "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n0123456789abcdef", 16,
        &at_bound);
}

Test(http_answer, what_is_not_http_fails_without_retry) {
  struct want w = {WEIR_EIO, 0, NULL, "", CURLE_WEIRD_SERVER_REPLY, false};

  check("ssh banner", "SSH-2.0-OpenSSH_9.2\r\n", 0, &w);
  check("status below 100", "HTTP/1.1 099 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 0, &w);
  check("status 000", "HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n", 0, &w);
  check("bad chunk size",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 0, &w);
}
