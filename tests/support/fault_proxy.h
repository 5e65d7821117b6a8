/*
 * fault_proxy.h: test support: a fault-injecting HTTP proxy between weir's Kinesis client and a
 * real local Kinesis server (kinesalite or kinesis-local, see kinesis_server.h).
 *
 * The proxy is `node tests/support/fault_proxy.js --target <endpoint> --seed N [--rules JSON]`,
 * bound to 127.0.0.1 on a free port; it prints {"port":P} as one JSON line and forwards every
 * request to the target, except those a rule picks for a fault. Rules (a JSON array, first
 * match wins, decisions drawn from a PRNG seeded with `seed`, so the same seed and the same
 * request sequence give the same injections):
 *
 *   {"op": "PutRecords" | "GetRecords" | ... | "*",      (from X-Amz-Target)
 *    "fault": "throttle" | "http_500" | "http_503" | "reset" | "slow" | "stall" | "truncate" |
 *             "expired_iterator" | "partial_failure" |
 *             wire shapes: "chunked" | "trickle" | "continue" | "close" | "eof_body" | "garbage",
 *    "rate": 0..1 (default 1), "after": N (skip the first N matching requests),
 *    "count": N (at most N injections), "delay_ms": N ("slow"),
 *    "fraction": 0..1 ("partial_failure", default 0.5),
 *    "error_code": "..." ("partial_failure", default ProvisionedThroughputExceededException)}
 *
 * The wire shapes forward the request and change only how the real answer is written (chunked
 * in several chunks; trickled in 1-7 byte writes; after an interim 100 Continue; with
 * Connection: close and a close; delimited by the connection's end), or answer with a line
 * that is not HTTP and nothing forwarded ("garbage").
 *
 * See docs/internals/testing.md for what each fault does on the wire. Control calls go to the
 * same port: POST /__proxy/rules replaces the rules (and resets their after/count counters),
 * GET /__proxy/stats returns {"forwarded":{"<op>":n,...},"injected":{"<fault>":n,...},
 * "connections":n} (client connections that carried a request).
 *
 * The proxy's stdin is a pipe held by the test process, so it exits when the test process
 * dies. Include the .c file from a test (#include "../support/fault_proxy.c") after, or instead
 * of, kinesis_server.c: it is not part of the library. Uses libcurl and jansson.
 */
#ifndef WEIR_TEST_FAULT_PROXY_H
#define WEIR_TEST_FAULT_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kinesis_server.h" /* WEIR_TEST_KSERVER_OK / _SKIP / _FAIL */

struct weir_test_fproxy {
  pid_t pid;         /* the node process, 0 when not running */
  int stdin_fd;      /* write end of its stdin pipe, -1 when closed */
  int port;          /* the proxy's port on 127.0.0.1 */
  char endpoint[64]; /* "http://127.0.0.1:<port>": give this to the client instead of the
                        server's endpoint */
};

/*
 * Starts a proxy in front of `target_endpoint` (borrowed; e.g. a weir_test_kserver's
 * endpoint, plain HTTP only) with PRNG seed `seed` and the rules `rules_json_or_NULL`
 * (borrowed; NULL or "[]" forwards everything). Returns WEIR_TEST_KSERVER_OK,
 * WEIR_TEST_KSERVER_SKIP when node is not available, or WEIR_TEST_KSERVER_FAIL (bad rules, the
 * proxy did not start); on SKIP/FAIL `why` (why_cap bytes) says why.
 */
int weir_test_fproxy_start(struct weir_test_fproxy *p, const char *target_endpoint, uint64_t seed,
                           const char *rules_json_or_NULL, char *why, size_t why_cap);

/*
 * Replaces the proxy's rules with `rules_json` (borrowed; a JSON array). Injection counters
 * in the stats are kept; the rules' own after/count counters restart. The PRNG is not
 * reseeded. Returns 0, or -1 if the proxy refused the rules or could not be reached.
 */
int weir_test_fproxy_set_rules(struct weir_test_fproxy *p, const char *rules_json);

/*
 * Copies the proxy's stats JSON ({"forwarded":{op:n},"injected":{fault:n}}) into json (cap
 * bytes, NUL-terminated). Returns 0, or -1 if unreachable or the answer does not fit.
 */
int weir_test_fproxy_stats(struct weir_test_fproxy *p, char *json, size_t cap);

/* Number of injections of fault kind `fault` (e.g. "throttle") so far; 0 if none, -1 on error. */
long weir_test_fproxy_injected(struct weir_test_fproxy *p, const char *fault);

/* Number of client connections that carried at least one request (control calls not counted)
 * so far; -1 on error. */
long weir_test_fproxy_connections(struct weir_test_fproxy *p);

/* Stops the proxy (closes its stdin, SIGTERM, SIGKILL after 5 s). Idempotent. */
void weir_test_fproxy_stop(struct weir_test_fproxy *p);

#endif /* WEIR_TEST_FAULT_PROXY_H */
