/*
 * kinesis_server.h: test support: starts a local Kinesis-compatible server (kinesalite or
 * kinesis-local, from tests/kinesis-servers) for one test and stops it at teardown.
 *
 * The server is `node tests/kinesis-servers/start.js <name>`, bound to 127.0.0.1 on free ports;
 * it prints its ports as one JSON line. Its stdin is a pipe held by the test process, so the
 * server also exits when the test process dies. Include the .c file from a test
 * (#include "../support/kinesis_server.c"): it is not part of the library.
 */
#ifndef WEIR_TEST_KINESIS_SERVER_H
#define WEIR_TEST_KINESIS_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <weir/kinesis.h>

/* The credentials every test gives a local server (neither server checks them). */
#define WEIR_TEST_ACCESS_KEY_ID "AKIDEXAMPLE"
#define WEIR_TEST_SECRET_ACCESS_KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

struct weir_test_kserver {
  pid_t pid;              /* the node process, 0 when not running */
  int stdin_fd;           /* write end of its stdin pipe, -1 when closed */
  int port;               /* plain HTTP port */
  int tls_port;           /* kinesis-local only; 0 otherwise */
  char endpoint[64];      /* "http://127.0.0.1:<port>" */
  char ca_file[PATH_MAX]; /* kinesis-local: its self-signed certificate as a PEM file */
};

enum { WEIR_TEST_KSERVER_OK = 0, WEIR_TEST_KSERVER_SKIP = 1, WEIR_TEST_KSERVER_FAIL = -1 };

/*
 * Starts server `which` ("kinesalite" or "kinesis-local"). Returns WEIR_TEST_KSERVER_OK,
 * WEIR_TEST_KSERVER_SKIP when the npm packages are not installed (why says how to install
 * them), or WEIR_TEST_KSERVER_FAIL (why says what went wrong).
 */
int weir_test_kserver_start(struct weir_test_kserver *s, const char *which, char *why,
                            size_t why_cap);

/* Stops the server (SIGTERM, then SIGKILL after 5 s) and removes the CA file. Idempotent. */
void weir_test_kserver_stop(struct weir_test_kserver *s);

/* The directory holding start.js and package.json (from WEIR_KINESIS_SERVERS_DIR or next to
 * this source file). */
const char *weir_test_kserver_dir(void);

/*
 * Fills *cfg (zeroed first) for a client of a local server at `endpoint` (borrowed: it must
 * outlive the config): region us-east-1, the test credentials above, a 2 s connect and a 20 s
 * request timeout. Tests change fields after the call where they need other values.
 */
void weir_test_kserver_client_config(weir_kinesis_config *cfg, const char *endpoint);

/*
 * A client (owned by the caller) for `endpoint` with the config above and a 5 s connect
 * timeout, trusting `ca_file` (NULL = the system store) and with the pinned address `resolve`
 * ("host:port:addr", NULL = none; both borrowed); NULL on failure (the reason is logged).
 */
weir_kinesis_client *weir_test_kserver_connect(const char *endpoint, const char *ca_file,
                                               const char *resolve);

#endif /* WEIR_TEST_KINESIS_SERVER_H */
