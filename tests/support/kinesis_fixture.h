/*
 * kinesis_fixture.h: test support for Criterion tests against a local Kinesis server: start
 * the server and a client (skipping the test when the npm packages are missing), make an
 * ACTIVE stream, a temporary directory, and undo it all at teardown. Each test file keeps its
 * own `srv`, `cli` and directory variables and passes them in.
 *
 * Include with kinesis_server.c (which defines the server functions used here).
 */
#ifndef WEIR_TEST_KINESIS_FIXTURE_H
#define WEIR_TEST_KINESIS_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kinesis/client_int.h"
#include "kinesis_server.h"

/* Starts `which` ("kinesalite" or "kinesis-local") into *srv and a client for it into *cli
 * (owned by the caller: kfx_teardown destroys it). Skips the test when the server is not
 * installed; fails it when the server does not start. */
static inline void kfx_start(struct weir_test_kserver *srv, weir_kinesis_client **cli,
                             const char *which) {
  weir_kinesis_config cfg;
  char why[512];
  int rc = weir_test_kserver_start(srv, which, why, sizeof(why));

  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start %s: %s", which, why);
  weir_test_kserver_client_config(&cfg, srv->endpoint);
  cr_assert_eq(weir_kinesis_client_create(cli, &cfg), 0);
}

/* Creates `stream` with `shards` shards and waits until it is ACTIVE. */
static inline void kfx_make_stream(weir_kinesis_client *cli, const char *stream, uint32_t shards) {
  int rc = weir__kinesis_create_stream(cli, stream, shards);

  cr_assert_eq(rc, 0, "CreateStream %s: %s", stream, weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, stream, 20000), 0);
}

/* Makes a fresh directory /tmp/<prefix>-XXXXXX into dir (cap bytes). */
static inline void kfx_make_dir(char *dir, size_t cap, const char *prefix) {
  snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
  cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

/* Destroys *cli, stops the server and removes dir (when not empty; dir is then cleared). */
static inline void kfx_teardown(struct weir_test_kserver *srv, weir_kinesis_client **cli,
                                char *dir) {
  char cmd[128];

  weir_kinesis_client_destroy(*cli);
  *cli = NULL;
  weir_test_kserver_stop(srv);
  if (dir != NULL && dir[0] != '\0') {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    dir[0] = '\0';
  }
}

#endif /* WEIR_TEST_KINESIS_FIXTURE_H */
