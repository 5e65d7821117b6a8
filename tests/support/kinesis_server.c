/* kinesis_server.c: see kinesis_server.h. Test-only code, included into the tests using it. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connectors/kinesis/client_int.h"
#include "kinesis_server.h"
#include "node_child.c"

/* kinesis-local needs ~1-3 s on a loaded 2-core machine; leave plenty of margin. */
#define KSERVER_START_TIMEOUT_MS 60000

static char kserver_dir_buf[PATH_MAX];

const char *weir_test_kserver_dir(void) {
  const char *env = getenv("WEIR_KINESIS_SERVERS_DIR");
  char tmp[PATH_MAX];

  if (env != NULL && env[0] != '\0')
    return env;
  /* __FILE__ is tests/support/kinesis_server.c (absolute under CMake). */
  snprintf(tmp, sizeof(tmp), "%s", __FILE__);
  snprintf(kserver_dir_buf, sizeof(kserver_dir_buf), "%s/../kinesis-servers", dirname(tmp));
  return kserver_dir_buf;
}

/* kinesis-local's certificate is inside the package's server.json ({"server":{"cert":...}}). */
static int kserver_write_ca(struct weir_test_kserver *s, const char *dir, char *why, size_t cap) {
  char path[PATH_MAX];
  json_t *root, *cert;
  json_error_t jerr;
  FILE *f;
  int fd, rc = WEIR_TEST_KSERVER_FAIL;

  snprintf(path, sizeof(path), "%s/node_modules/kinesis-local/server.json", dir);
  root = json_load_file(path, 0, &jerr);
  cert = json_object_get(json_object_get(root, "server"), "cert");
  if (!json_is_string(cert)) {
    snprintf(why, cap, "%s: no server.cert (%s)", path, jerr.text);
    goto done;
  }
  snprintf(s->ca_file, sizeof(s->ca_file), "/tmp/weir-kinesis-local-ca-XXXXXX");
  if ((fd = mkstemp(s->ca_file)) < 0 || (f = fdopen(fd, "w")) == NULL) {
    snprintf(why, cap, "cannot write a CA file: %s", strerror(errno));
    s->ca_file[0] = '\0';
    goto done;
  }
  fputs(json_string_value(cert), f);
  fclose(f);
  rc = WEIR_TEST_KSERVER_OK;

done:
  json_decref(root);
  return rc;
}

int weir_test_kserver_start(struct weir_test_kserver *s, const char *which, char *why,
                            size_t why_cap) {
  const char *dir = weir_test_kserver_dir();
  const char *argv[] = {"node", "start.js", which, NULL};
  char path[PATH_MAX], line[512];
  json_t *root = NULL;
  struct stat st;

  memset(s, 0, sizeof(*s));
  s->stdin_fd = -1;
  snprintf(path, sizeof(path), "%s/node_modules/%s/package.json", dir, which);
  if (stat(path, &st) != 0) {
    snprintf(why, why_cap,
             "%s is not installed: run `npm ci` in %s to test against the local Kinesis servers",
             which, dir);
    return WEIR_TEST_KSERVER_SKIP;
  }
  if (strcmp(which, "kinesis-local") == 0 &&
      kserver_write_ca(s, dir, why, why_cap) != WEIR_TEST_KSERVER_OK)
    return WEIR_TEST_KSERVER_FAIL;
  /* One JSON line: {"server":..., "port":P[, "tlsPort":T]}. */
  if (weir_test_node_start(&s->pid, &s->stdin_fd, dir, argv, KSERVER_START_TIMEOUT_MS, line,
                           sizeof(line), which, why, why_cap) != 0)
    goto fail;
  root = json_loads(line, 0, NULL);
  s->port = (int)json_integer_value(json_object_get(root, "port"));
  s->tls_port = (int)json_integer_value(json_object_get(root, "tlsPort"));
  json_decref(root);
  if (s->port <= 0) {
    snprintf(why, why_cap, "%s printed no port: %s", which, line);
    goto fail;
  }
  snprintf(s->endpoint, sizeof(s->endpoint), "http://127.0.0.1:%d", s->port);
  return WEIR_TEST_KSERVER_OK;

fail:
  weir_test_kserver_stop(s);
  return WEIR_TEST_KSERVER_FAIL;
}

void weir_test_kserver_stop(struct weir_test_kserver *s) {
  weir_test_node_stop(&s->pid, &s->stdin_fd);
  if (s->ca_file[0] != '\0') {
    unlink(s->ca_file);
    s->ca_file[0] = '\0';
  }
}

void weir_test_kserver_client_config(weir_kinesis_config *cfg, const char *endpoint) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->region = "us-east-1";
  cfg->endpoint = endpoint;
  cfg->access_key_id = WEIR_TEST_ACCESS_KEY_ID;
  cfg->secret_access_key = WEIR_TEST_SECRET_ACCESS_KEY;
  cfg->connect_timeout_ms = 2000;
  cfg->request_timeout_ms = 20000;
}

weir_kinesis_client *weir_test_kserver_connect(const char *endpoint, const char *ca_file,
                                               const char *resolve) {
  weir_kinesis_config cfg;
  weir_kinesis_client *c = NULL;

  weir_test_kserver_client_config(&cfg, endpoint);
  cfg.ca_file = ca_file;
  cfg.connect_timeout_ms = 5000;
  if (weir__kinesis_client_create_ex(&c, &cfg, resolve) != 0)
    return NULL;
  return c;
}
