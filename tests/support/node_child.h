/*
 * node_child.h: test support: a Node.js helper process (a local Kinesis server, the fault
 * proxy) started for one test. Its stdin is a pipe held by the test process, so it also exits
 * when the test process dies; it reports readiness as one JSON line on stdout.
 *
 * Included by kinesis_server.c and fault_proxy.c (#include "node_child.c"; guarded, so a test
 * may include both): not part of the library.
 */
#ifndef WEIR_TEST_NODE_CHILD_H
#define WEIR_TEST_NODE_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Starts `node argv[1] argv[2] ...` (argv: NULL-terminated, argv[0] ignored, borrowed) in
 * directory `cwd_or_NULL`, with LD_PRELOAD removed (a sanitizer shim preloaded into the tests
 * has no business in node). Waits up to timeout_ms for its first stdout line, copied into line
 * (cap bytes, NUL-terminated, with its newline). On success *pid and *stdin_fd hold the child
 * and the write end of its stdin, and 0 is returned; on failure the child is stopped, `why`
 * (why_cap bytes) says why, naming `what`, and -1 is returned.
 */
int weir_test_node_start(pid_t *pid, int *stdin_fd, const char *cwd_or_NULL,
                         const char *const argv[], int64_t timeout_ms, char *line, size_t cap,
                         const char *what, char *why, size_t why_cap);

/* Stops the child: closes its stdin, SIGTERM, SIGKILL after 5 s. Sets *pid = 0 and
 * *stdin_fd = -1. Idempotent. */
void weir_test_node_stop(pid_t *pid, int *stdin_fd);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t weir_test_node_now_ms(void);

#endif /* WEIR_TEST_NODE_CHILD_H */
