/* fault_proxy.c: see fault_proxy.h. Test-only code, included into the tests using it. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fault_proxy.h"
#include "node_child.c"

/* Node starts in well under a second; leave margin for a loaded 2-core machine. */
#define FPROXY_START_TIMEOUT_MS 30000
/* Control calls are local and small. */
#define FPROXY_CONTROL_TIMEOUT_MS 10000
/* Bound on a stats answer kept while reading it. */
#define FPROXY_STATS_MAX 65536

/* fault_proxy.js sits next to this file (__FILE__ is absolute under CMake). */
static void fproxy_script(char *out, size_t cap) {
  char tmp[PATH_MAX];

  snprintf(tmp, sizeof(tmp), "%s", __FILE__);
  snprintf(out, cap, "%s/fault_proxy.js", dirname(tmp));
}

/* True when `node` is an executable somewhere on PATH. */
static bool fproxy_have_node(void) {
  const char *path = getenv("PATH");
  char buf[PATH_MAX];

  if (path == NULL)
    return false;
  while (*path != '\0') {
    const char *end = strchr(path, ':');
    size_t len = end != NULL ? (size_t)(end - path) : strlen(path);
    if (len > 0 && len < sizeof(buf) - 6) {
      snprintf(buf, sizeof(buf), "%.*s/node", (int)len, path);
      if (access(buf, X_OK) == 0)
        return true;
    }
    if (end == NULL)
      break;
    path = end + 1;
  }
  return false;
}

int weir_test_fproxy_start(struct weir_test_fproxy *p, const char *target_endpoint, uint64_t seed,
                           const char *rules_json_or_NULL, char *why, size_t why_cap) {
  char script[PATH_MAX], seed_s[32], line[256];
  const char *rules = rules_json_or_NULL != NULL ? rules_json_or_NULL : "[]";
  const char *argv[] = {"node",    script, "--target", target_endpoint, "--seed", seed_s,
                        "--rules", rules,  NULL};
  json_t *root;

  memset(p, 0, sizeof(*p));
  p->stdin_fd = -1;
  if (!fproxy_have_node()) {
    snprintf(why, why_cap, "node is not on PATH: install Node.js to run the fault-proxy tests");
    return WEIR_TEST_KSERVER_SKIP;
  }
  fproxy_script(script, sizeof(script));
  snprintf(seed_s, sizeof(seed_s), "%" PRIu64, seed);
  /* One JSON line: {"port":P}. Bad rules make it exit at once (its stderr says why). */
  if (weir_test_node_start(&p->pid, &p->stdin_fd, NULL, argv, FPROXY_START_TIMEOUT_MS, line,
                           sizeof(line), "fault_proxy.js", why, why_cap) != 0)
    goto fail;
  root = json_loads(line, 0, NULL);
  p->port = (int)json_integer_value(json_object_get(root, "port"));
  json_decref(root);
  if (p->port <= 0) {
    snprintf(why, why_cap, "fault_proxy.js printed no port: %s", line);
    goto fail;
  }
  snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%d", p->port);
  return WEIR_TEST_KSERVER_OK;

fail:
  weir_test_fproxy_stop(p);
  return WEIR_TEST_KSERVER_FAIL;
}

/* A bounded response buffer for the control calls. */
struct fproxy_buf {
  char *v; /* borrowed from the caller */
  size_t len;
  size_t cap; /* including the NUL */
  bool overflow;
};

static size_t fproxy_write_cb(char *ptr, size_t size, size_t nmemb, void *data) {
  struct fproxy_buf *b = data;
  size_t n = size * nmemb;

  if (b->len + n + 1 > b->cap) {
    b->overflow = true;
    return 0;
  }
  memcpy(b->v + b->len, ptr, n);
  b->len += n;
  b->v[b->len] = '\0';
  return n;
}

/* One control call: GET (post_body NULL) or POST of post_body to path; the answer into out.
 * Returns the HTTP status, or -1 when the call failed or the answer did not fit. */
static long fproxy_control(struct weir_test_fproxy *p, const char *path, const char *post_body,
                           char *out, size_t cap) {
  char url[128];
  struct fproxy_buf b = {out, 0, cap, false};
  struct curl_slist *hdrs = NULL;
  long status = -1;
  CURL *h;

  if (p->port <= 0 || cap == 0)
    return -1;
  out[0] = '\0';
  h = curl_easy_init();
  if (h == NULL)
    return -1;
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", p->port, path);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)FPROXY_CONTROL_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fproxy_write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  if (post_body != NULL) {
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body);
  }
  if (curl_easy_perform(h) == CURLE_OK && !b.overflow)
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  return status;
}

int weir_test_fproxy_set_rules(struct weir_test_fproxy *p, const char *rules_json) {
  char answer[1024];
  long status = fproxy_control(p, "/__proxy/rules", rules_json, answer, sizeof(answer));

  if (status != 200) {
    fprintf(stderr, "fault proxy: rules refused (HTTP %ld): %s\n", status, answer);
    return -1;
  }
  return 0;
}

int weir_test_fproxy_stats(struct weir_test_fproxy *p, char *json, size_t cap) {
  return fproxy_control(p, "/__proxy/stats", NULL, json, cap) == 200 ? 0 : -1;
}

/* A count from the stats: stats[group][key], or stats[key] when group is NULL; 0 when absent
 * from an object that is there, -1 on error. */
static long fproxy_stat(struct weir_test_fproxy *p, const char *group, const char *key) {
  char *buf = malloc(FPROXY_STATS_MAX);
  json_t *root = NULL, *obj, *v;
  long n = -1;

  if (buf == NULL)
    return -1;
  if (weir_test_fproxy_stats(p, buf, FPROXY_STATS_MAX) != 0)
    goto done;
  root = json_loads(buf, 0, NULL);
  obj = group != NULL ? json_object_get(root, group) : root;
  if (!json_is_object(obj))
    goto done;
  v = json_object_get(obj, key);
  n = json_is_integer(v) ? (long)json_integer_value(v) : 0;

done:
  json_decref(root);
  free(buf);
  return n;
}

long weir_test_fproxy_injected(struct weir_test_fproxy *p, const char *fault) {
  return fproxy_stat(p, "injected", fault);
}

long weir_test_fproxy_connections(struct weir_test_fproxy *p) {
  return fproxy_stat(p, NULL, "connections");
}

void weir_test_fproxy_stop(struct weir_test_fproxy *p) {
  weir_test_node_stop(&p->pid, &p->stdin_fd);
  p->port = 0;
}
