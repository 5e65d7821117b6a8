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

#include "kinesis_server.h"

/* kinesis-local needs ~1-3 s on a loaded 2-core machine; leave plenty of margin. */
#define KSERVER_START_TIMEOUT_MS 60000
#define KSERVER_STOP_GRACE_MS 5000

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

static int64_t kserver_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
  char path[PATH_MAX], line[512];
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  size_t len = 0;
  int64_t deadline;
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
  if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) {
    snprintf(why, why_cap, "pipe: %s", strerror(errno));
    goto fail;
  }
  s->pid = fork();
  if (s->pid < 0) {
    snprintf(why, why_cap, "fork: %s", strerror(errno));
    s->pid = 0;
    goto fail;
  }
  if (s->pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    close(in_pipe[0]);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(out_pipe[1]);
    if (chdir(dir) != 0)
      _exit(127);
    /* A sanitizer shim preloaded into the tests has no business in node. */
    unsetenv("LD_PRELOAD");
    execlp("node", "node", "start.js", which, (char *)NULL);
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  in_pipe[0] = out_pipe[1] = -1;
  s->stdin_fd = in_pipe[1];
  in_pipe[1] = -1;
  fcntl(s->stdin_fd, F_SETFD, FD_CLOEXEC);

  /* One JSON line: {"server":..., "port":P[, "tlsPort":T]}. */
  deadline = kserver_now_ms() + KSERVER_START_TIMEOUT_MS;
  while (len == 0 || line[len - 1] != '\n') {
    struct pollfd pfd = {out_pipe[0], POLLIN, 0};
    int64_t left = deadline - kserver_now_ms();
    ssize_t n;
    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
      snprintf(why, why_cap, "%s did not report its port within %d ms", which,
               KSERVER_START_TIMEOUT_MS);
      goto fail;
    }
    n = read(out_pipe[0], line + len, sizeof(line) - 1 - len);
    if (n <= 0) {
      snprintf(why, why_cap, "%s exited before it was ready (see its stderr above)", which);
      goto fail;
    }
    len += (size_t)n;
    if (len >= sizeof(line) - 1) {
      snprintf(why, why_cap, "%s printed an overlong line", which);
      goto fail;
    }
  }
  line[len] = '\0';
  close(out_pipe[0]);
  out_pipe[0] = -1;
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
  for (int i = 0; i < 2; i++) {
    if (in_pipe[i] >= 0)
      close(in_pipe[i]);
    if (out_pipe[i] >= 0)
      close(out_pipe[i]);
  }
  weir_test_kserver_stop(s);
  return WEIR_TEST_KSERVER_FAIL;
}

void weir_test_kserver_stop(struct weir_test_kserver *s) {
  int status;

  if (s->stdin_fd >= 0) {
    close(s->stdin_fd);
    s->stdin_fd = -1;
  }
  if (s->pid > 0) {
    int64_t deadline = kserver_now_ms() + KSERVER_STOP_GRACE_MS;
    kill(s->pid, SIGTERM);
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
      if (kserver_now_ms() > deadline) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        break;
      }
      usleep(20000);
    }
    s->pid = 0;
  }
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
