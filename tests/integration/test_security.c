/*
 * Security properties, each checked against the real thing:
 *   - AWS secrets (the secret access key and the session token) never appear in log lines (at
 *     debug level), job errors, metrics text, checkpoint files or client error messages, on
 *     success and on failing calls; after everything is destroyed, the secret access key is
 *     nowhere in the process's memory (it was zeroed, not just freed);
 *   - TLS is verified by default: kinesis-local's self-signed endpoint is refused without its
 *     CA (with a message saying it is a certificate problem), and with its CA but the wrong
 *     host name; it is accepted with the CA and the right name;
 *   - checkpoint files are created 0600 and the directory 0700 even with umask 0;
 *   - `weir run --metrics-port` listens on 127.0.0.1 only, unless --metrics-bind says otherwise.
 * Tests that need a Kinesis server are skipped when `npm ci` has not been run in
 * tests/kinesis-servers.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"

#ifndef WEIR_CLI
#define WEIR_CLI ""
#endif

/* Bytes of captured log text kept (past it, lines are counted but dropped: see capture). */
#define LOG_CAP (4 * 1024 * 1024)
/* The longest any wait polls before the test fails (a hung binary, not a slow one). */
#define WAIT_LIMIT_MS 120000

static struct weir_test_kserver srv;
static char tmp[64];

static void setup(void) {
  snprintf(tmp, sizeof(tmp), "/tmp/weir-sec-XXXXXX");
  cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void) {
  char cmd[128];

  weir_test_kserver_stop(&srv);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 240);

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* Starts `which` (or skips the test). */
static void start_server(const char *which) {
  char why[512];
  int rc = weir_test_kserver_start(&srv, which, why, sizeof(why));

  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start %s: %s", which, why);
}

/* ---- captured logs --------------------------------------------------------------------------- */

static struct {
  pthread_mutex_t mu;
  char *text; /* LOG_CAP bytes */
  size_t len;
  size_t lines, dropped, debug_lines;
} logs = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, 0};

static void capture(void *data, weir_log_level level, const char *msg) {
  size_t n = strlen(msg);

  (void)data;
  pthread_mutex_lock(&logs.mu);
  logs.lines++;
  if (level == WEIR_LOG_DEBUG)
    logs.debug_lines++;
  if (logs.len + n + 2 < LOG_CAP) {
    memcpy(logs.text + logs.len, msg, n);
    logs.len += n;
    logs.text[logs.len++] = '\n';
    logs.text[logs.len] = '\0';
  } else {
    logs.dropped++;
  }
  pthread_mutex_unlock(&logs.mu);
}

static void capture_logs(void) {
  logs.text = calloc(1, LOG_CAP);
  cr_assert_not_null(logs.text);
  weir_log_set_handler(capture, NULL, WEIR_LOG_DEBUG);
}

/* ---- secrets --------------------------------------------------------------------------------- */

/* The markers: built at run time from random bytes, so they exist nowhere in the binary, and
 * kept in heap buffers this test zeroes when it is done with them. */
struct markers {
  char *secret; /* 40 characters, like a real secret access key */
  char *token;  /* 120 characters */
};

static char *random_marker(const char *prefix, size_t len) {
  static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint8_t rnd[256];
  char *m = calloc(1, len + 1);
  size_t p = strlen(prefix), i;

  cr_assert_not_null(m);
  cr_assert(len <= sizeof(rnd) && p < len);
  cr_assert_eq(getrandom(rnd, len, 0), (ssize_t)len);
  memcpy(m, prefix, p);
  for (i = p; i < len; i++)
    m[i] = alnum[rnd[i] % (sizeof(alnum) - 1)];
  explicit_bzero(rnd, sizeof(rnd));
  return m;
}

static void markers_make(struct markers *mk) {
  mk->secret = random_marker("wSecretMark", 40);
  mk->token = random_marker("wTokenMark", 120);
}

static void markers_wipe(struct markers *mk) {
  explicit_bzero(mk->secret, strlen(mk->secret));
  explicit_bzero(mk->token, strlen(mk->token));
  free(mk->secret);
  free(mk->token);
}

/* Whether `hay` (len bytes) holds either marker. */
static const char *leaked(const struct markers *mk, const void *hay, size_t len) {
  if (hay == NULL)
    return NULL;
  if (memmem(hay, len, mk->secret, strlen(mk->secret)) != NULL)
    return "the secret access key";
  if (memmem(hay, len, mk->token, strlen(mk->token)) != NULL)
    return "the session token";
  return NULL;
}

static void assert_clean(const struct markers *mk, const char *what, const char *text) {
  const char *w = leaked(mk, text, text != NULL ? strlen(text) : 0);

  /* The message names what leaked and where, never the marker itself. */
  cr_assert_null(w, "%s leaked into %s", w, what);
}

static void client_config(weir_kinesis_config *cfg, const struct markers *mk,
                          const char *endpoint) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->region = "us-east-1";
  cfg->endpoint = endpoint;
  cfg->access_key_id = "AKIDSECURITYTEST";
  cfg->secret_access_key = mk->secret;
  cfg->session_token = mk->token;
  cfg->connect_timeout_ms = 2000;
  cfg->request_timeout_ms = 20000;
}

/* Runs generator -> Kinesis sink (`stream` at `endpoint`) with checkpoints in `ckpt`; checks
 * its error and metrics text for the markers; returns the run's code. */
static int sink_job(const struct markers *mk, const char *endpoint, const char *stream,
                    const char *ckpt) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  char *metrics = NULL;
  size_t mlen = 0;
  int src, rc;

  g.count = 2000;
  g.key_count = 7;
  g.value_len = 40;
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_create(&job, "secrets"), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, ckpt), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(job, 20), 0);
  weir_kinesis_sink_config_init(&k);
  k.stream = stream;
  client_config(&k.client, mk, endpoint);
  k.max_request_records = 50;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  rc = weir_job_run(job);
  assert_clean(mk, "weir_job_error", weir_job_error(job));
  cr_assert_eq(weir_job_metrics_text(job, &metrics, &mlen), 0);
  cr_assert_gt(mlen, 0);
  cr_assert_null(leaked(mk, metrics, mlen), "a secret leaked into the metrics text");
  free(metrics);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  return rc;
}

/* Every regular file under `dir` (one level of subdirectories), checked for the markers. */
static void assert_files_clean(const struct markers *mk, const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;

  cr_assert_not_null(d, "%s", dir);
  while ((e = readdir(d)) != NULL) {
    char path[512];
    struct stat st;

    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    cr_assert_eq(stat(path, &st), 0);
    if (S_ISDIR(st.st_mode)) {
      assert_files_clean(mk, path);
    } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
      int fd = open(path, O_RDONLY);
      char *buf = malloc((size_t)st.st_size);

      cr_assert(fd >= 0 && buf != NULL);
      cr_assert_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
      close(fd);
      cr_assert_null(leaked(mk, buf, (size_t)st.st_size), "a secret leaked into %s", path);
      free(buf);
    }
  }
  closedir(d);
}

/* XOR mask of the memory scan's needle: the needle is kept masked, so the scan never meets a
 * plain copy of the secret that the test itself made. */
#define MASK 0x5a

/*
 * Scans every readable and writable mapping of this process (heap, stacks, data) for the
 * bytes whose masked form is `masked` (len bytes), through /proc/self/mem so sanitizers see no
 * access to freed memory. Each chunk read is masked and searched for `masked`: the masked
 * needle itself unmasks to something else, and the scan buffer is zeroed after each chunk.
 * Returns the mapping's line of /proc/self/maps where the bytes are, or NULL. Mappings over
 * 1 GiB (sanitizer shadow) are skipped.
 */
#if defined(__clang__) || __GNUC__ >= 8
/* Not instrumented: under TSan the masking loop over every mapping would take minutes. */
__attribute__((no_sanitize("thread", "address", "undefined")))
#endif
static const char *
find_in_memory(const uint8_t *masked, size_t len, char *where, size_t where_len) {
  FILE *maps = fopen("/proc/self/maps", "r");
  int mem = open("/proc/self/mem", O_RDONLY);
  size_t chunk = (size_t)1 << 20;
  uint8_t *buf = calloc(1, chunk + len);
  char line[512];
  const char *found = NULL;

  cr_assert(maps != NULL && mem >= 0 && buf != NULL);
  while (found == NULL && fgets(line, sizeof(line), maps) != NULL) {
    unsigned long lo, hi, a;
    char perms[8];

    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' || perms[1] != 'w' ||
        hi - lo > ((unsigned long)1 << 30))
      continue;
    for (a = lo; a < hi && found == NULL; a += chunk) {
      size_t want = hi - a < chunk + len ? hi - a : chunk + len;
      ssize_t got = pread(mem, buf, want, (off_t)a);

      for (ssize_t i = 0; i < got; i++)
        buf[i] ^= MASK;
      if (got > 0 && memmem(buf, (size_t)got, masked, len) != NULL) {
        snprintf(where, where_len, "%s", line);
        found = where;
      }
      memset(buf, 0, chunk + len);
    }
  }
  free(buf);
  close(mem);
  fclose(maps);
  return found;
}

Test(security, secrets_never_appear_in_logs_errors_metrics_files_or_memory) {
  struct markers mk;
  weir_kinesis_config cfg;
  weir_kinesis_client *cli = NULL;
  struct weir_kinesis_stream_summary sum;
  char ckpt[3][128], unreachable[64], where[600];
  const char *hit;
  int rc, i;

  start_server("kinesalite");
  capture_logs();
  markers_make(&mk);
  for (i = 0; i < 3; i++)
    snprintf(ckpt[i], sizeof(ckpt[i]), "%s/ck%d", tmp, i);

  /* Control plane with the marker credentials: one call that works, one that fails. */
  client_config(&cfg, &mk, srv.endpoint);
  cr_assert_eq(weir_kinesis_client_create(&cli, &cfg), 0);
  rc = weir__kinesis_create_stream(cli, "sec", 2);
  cr_assert_eq(rc, 0, "CreateStream: %s", weir_err_name(rc));
  cr_assert_eq(weir__kinesis_wait_active(cli, "sec", 20000), 0);
  rc = weir__kinesis_describe_stream_summary(cli, "no-such-stream", &sum);
  cr_assert_neq(rc, 0);
  assert_clean(&mk, "a client error message", weir__kinesis_last_error(cli)->message);
  weir_kinesis_client_destroy(cli);

  /* A job that works, one on a missing stream, one on an endpoint nobody listens on. */
  rc = sink_job(&mk, srv.endpoint, "sec", ckpt[0]);
  cr_assert_eq(rc, 0, "the working job failed");
  rc = sink_job(&mk, srv.endpoint, "no-such-stream", ckpt[1]);
  cr_assert_neq(rc, 0, "a missing stream did not fail the job");
  snprintf(unreachable, sizeof(unreachable), "http://127.0.0.1:1");
  rc = sink_job(&mk, unreachable, "sec", ckpt[2]);
  cr_assert_neq(rc, 0, "an unreachable endpoint did not fail the job");

  /* Everything weir logged, down to debug level, and every file it wrote. */
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  cr_assert_gt(logs.debug_lines, 0, "no debug lines were logged: the check would be vacuous");
  cr_assert_eq(logs.dropped, 0, "log capture overflowed");
  cr_assert(strstr(logs.text, "no-such-stream") != NULL, "the failing calls were not logged");
  cr_assert_null(leaked(&mk, logs.text, logs.len), "a secret leaked into the log");
  for (i = 0; i < 3; i++)
    assert_files_clean(&mk, ckpt[i]);
  cr_log_info("secrets: %zu log lines (%zu debug) checked", logs.lines, logs.debug_lines);

  /* Memory: once every client, job and sink is destroyed, neither the secret access key nor
   * the session token may be left anywhere in this process (zeroed, not merely freed: a core
   * dump would show freed memory). Plain HTTP here, so no TLS library buffered the token. */
  {
    uint8_t msecret[64], mtoken[160], mcanary[64];
    size_t ls = strlen(mk.secret), lt = strlen(mk.token);
    char *canary = random_marker("wCanary", 40);

    for (size_t j = 0; j < ls; j++)
      msecret[j] = (uint8_t)mk.secret[j] ^ MASK;
    for (size_t j = 0; j < lt; j++)
      mtoken[j] = (uint8_t)mk.token[j] ^ MASK;
    for (size_t j = 0; j < 40; j++)
      mcanary[j] = (uint8_t)canary[j] ^ MASK;
    markers_wipe(&mk);
    /* The scan works: it finds a live heap string. */
    cr_assert_not_null(find_in_memory(mcanary, 40, where, sizeof(where)),
                       "the memory scan cannot find a live string: the check would be vacuous");
    explicit_bzero(canary, 40);
    free(canary);
    hit = find_in_memory(msecret, ls, where, sizeof(where));
    cr_assert_null(hit,
                   "the secret access key is still in memory after every object using it "
                   "was destroyed, in: %s",
                   where);
    hit = find_in_memory(mtoken, lt, where, sizeof(where));
    cr_assert_null(hit,
                   "the session token is still in memory after every object using it "
                   "was destroyed, in: %s",
                   where);
  }
}

/* ---- TLS verification ------------------------------------------------------------------------ */

/* A client of the TLS port at `url`, optionally trusting `ca_file` and pinning `resolve`
 * ("host:port:addr"); returns DescribeStreamSummary's code and copies the error message. */
static int tls_call(const char *url, const char *ca_file, const char *resolve, char *msg,
                    size_t msg_len) {
  weir_kinesis_config cfg;
  weir_kinesis_client *c = NULL;
  struct weir_kinesis_stream_summary sum;
  int rc;

  weir_test_kserver_client_config(&cfg, url);
  cfg.ca_file = ca_file;
  cfg.connect_timeout_ms = 5000;
  if (resolve != NULL)
    cr_assert_eq(weir__kinesis_client_create_ex(&c, &cfg, resolve), 0);
  else
    cr_assert_eq(weir_kinesis_client_create(&c, &cfg), 0);
  rc = weir__kinesis_describe_stream_summary(c, "tls", &sum);
  snprintf(msg, msg_len, "%s", weir__kinesis_last_error(c)->message);
  weir_kinesis_client_destroy(c);
  return rc;
}

Test(security, tls_is_verified_by_default_with_a_clear_certificate_error) {
  char url[128], by_name[128], pin[128], msg[1024];
  weir_kinesis_config cfg = {0};
  weir_kinesis_client *c = NULL;
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  weir_job *job;
  int rc, src;

  start_server("kinesis-local");
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  cr_assert_gt(srv.tls_port, 0);
  /* The stream, made over the plain port. */
  weir_test_kserver_client_config(&cfg, srv.endpoint);
  cr_assert_eq(weir_kinesis_client_create(&c, &cfg), 0);
  cr_assert_eq(weir__kinesis_create_stream(c, "tls", 1), 0);
  cr_assert_eq(weir__kinesis_wait_active(c, "tls", 20000), 0);
  weir_kinesis_client_destroy(c);

  /* The public API, no CA given: the self-signed certificate is refused, and the message
   * says it is a certificate problem and what to do. */
  snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.tls_port);
  rc = tls_call(url, NULL, NULL, msg, sizeof(msg));
  cr_assert_eq(rc, WEIR_EIO, "accepted without the CA: %s", weir_err_name(rc));
  cr_assert(strstr(msg, "certificate") != NULL, "not a clear certificate error: %s", msg);
  cr_assert(strstr(msg, "ca_file") != NULL, "the error does not say how to trust a CA: %s", msg);

  /* The CA, but the wrong name (the certificate names "Unknown"): host names are verified. */
  rc = tls_call(url, srv.ca_file, NULL, msg, sizeof(msg));
  cr_assert_eq(rc, WEIR_EIO, "accepted a certificate for another host: %s", weir_err_name(rc));
  cr_assert(strstr(msg, "does not match target host name") != NULL,
            "not a clear host name error: %s", msg);

  /* The CA and the right name: accepted. */
  snprintf(by_name, sizeof(by_name), "https://Unknown:%d", srv.tls_port);
  snprintf(pin, sizeof(pin), "Unknown:%d:127.0.0.1", srv.tls_port);
  rc = tls_call(by_name, srv.ca_file, pin, msg, sizeof(msg));
  cr_assert_eq(rc, 0, "refused with the CA: %s: %s", weir_err_name(rc), msg);

  /* A job's Kinesis sink on the TLS endpoint without its CA fails, naming the certificate. */
  g.count = 10;
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_create(&job, "tls"), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  weir_kinesis_sink_config_init(&k);
  k.stream = "tls";
  k.client = cfg;
  k.client.endpoint = url;
  k.client.connect_timeout_ms = 5000;
  cr_assert_eq(weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL), 0);
  rc = weir_job_run(job);
  cr_assert_neq(rc, 0, "the sink wrote to an unverified TLS endpoint");
  cr_assert(strstr(weir_job_error(job), "certificate") != NULL, "%s", weir_job_error(job));
  cr_assert(strstr(weir_job_error(job), "ca_file") != NULL, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}

/* ---- checkpoint file modes ------------------------------------------------------------------- */

static int drop_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  (void)recs;
  (void)n;
  return 0;
}

Test(security, checkpoint_files_are_0600_and_the_directory_0700_under_umask_0) {
  char dir[128];
  weir_generator_config g = {0};
  weir_generator *gen;
  weir_job *job;
  struct dirent *e;
  struct stat st;
  DIR *d;
  int src, files = 0;

  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  umask(0);
  snprintf(dir, sizeof(dir), "%s/ckpt", tmp);
  g.count = 0; /* unbounded: the job is still running when the savepoint is asked for */
  g.key_count = 3;
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_create(&job, "modes"), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, src, "out", drop_cb, NULL, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(job, dir), 0);
  cr_assert_eq(weir_job_start(job), 0);
  cr_assert_eq(weir_job_stop_with_savepoint(job), 0);
  cr_assert_eq(weir_job_wait(job), 0, "%s", weir_job_error(job));
  cr_assert_gt(weir_job_last_checkpoint(job), 0);
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  cr_assert_eq(stat(dir, &st), 0);
  cr_assert_eq(st.st_mode & 07777, 0700, "directory mode %o", st.st_mode & 07777);
  d = opendir(dir);
  cr_assert_not_null(d);
  while ((e = readdir(d)) != NULL) {
    char path[600];

    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "%s has mode %o", path, st.st_mode & 07777);
    files++;
  }
  closedir(d);
  cr_assert_geq(files, 3, "expected data.mdb, lock.mdb and weir.lock");
}

/* ---- metrics endpoint binds loopback -----------------------------------------------------------
 */

/* The whole file, NUL-terminated ("" when absent). Free with free(). */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *p;
  long n;

  if (f == NULL)
    return strdup("");
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  p = malloc((size_t)n + 1);
  cr_assert_not_null(p);
  n = (long)fread(p, 1, (size_t)n, f);
  p[n] = '\0';
  fclose(f);
  return p;
}

/* Starts `weir run --metrics-port 0 [--metrics-bind bind] pipeline`; returns its pid and the
 * port it reports. */
static pid_t run_with_metrics(const char *bind, int *port) {
  char pipeline[128], err[128], out[128], *text = NULL, *u;
  FILE *f;
  pid_t pid;
  int waited;

  snprintf(pipeline, sizeof(pipeline), "%s/p.yaml", tmp);
  snprintf(err, sizeof(err), "%s/err-%s.txt", tmp, bind != NULL ? bind : "default");
  snprintf(out, sizeof(out), "%s/out.txt", tmp);
  f = fopen(pipeline, "w");
  cr_assert_not_null(f);
  fprintf(f,
          "name: bound\nsources:\n  - type: generator\n    rate: 100\nsinks:\n"
          "  - type: file\n    path: %s\n",
          out);
  fclose(f);
  fflush(NULL);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = open("/dev/null", O_RDONLY);

    dup2(in, 0);
    dup2(e, 1);
    dup2(e, 2);
    if (bind != NULL)
      execl(WEIR_CLI, WEIR_CLI, "run", "--metrics-port", "0", "--metrics-bind", bind, pipeline,
            (char *)NULL);
    else
      execl(WEIR_CLI, WEIR_CLI, "run", "--metrics-port", "0", pipeline, (char *)NULL);
    _exit(127);
  }
  for (waited = 0; waited < WAIT_LIMIT_MS; waited += 20) {
    text = slurp(err);
    if (strstr(text, "/metrics\n") != NULL)
      break;
    free(text);
    text = NULL;
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "weir ended early");
    sleep_ms(20);
  }
  cr_assert_not_null(text, "weir never reported its metrics address");
  u = strstr(text, "metrics on http://");
  cr_assert_not_null(u, "%s", text);
  u = strchr(u + strlen("metrics on http://"), ':');
  cr_assert_not_null(u, "%s", text);
  *port = atoi(u + 1);
  cr_assert_gt(*port, 0, "%s", text);
  free(text);
  return pid;
}

/* The local addresses (hex, as /proc/net/tcp{,6} print them) listening on `port`. */
static size_t listeners(int port, char addrs[][64], size_t cap) {
  static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  size_t n = 0;

  for (size_t i = 0; i < 2; i++) {
    FILE *f = fopen(files[i], "r");
    char line[512];

    if (f == NULL)
      continue;
    while (fgets(line, sizeof(line), f) != NULL) {
      char local[64], remote[64];
      unsigned st, p;
      char *colon;

      if (sscanf(line, " %*d: %63s %63s %x", local, remote, &st) != 3 || st != 0x0A)
        continue; /* 0x0A: TCP_LISTEN */
      colon = strrchr(local, ':');
      if (colon == NULL || sscanf(colon + 1, "%x", &p) != 1 || (int)p != port)
        continue;
      *colon = '\0';
      if (n < cap)
        snprintf(addrs[n++], 64, "%s", local);
    }
    fclose(f);
  }
  return n;
}

/* A non-loopback IPv4 address of this host, if it has one. */
static bool other_address(struct in_addr *out) {
  struct ifaddrs *ifs, *it;
  bool found = false;

  if (getifaddrs(&ifs) != 0)
    return false;
  for (it = ifs; it != NULL && !found; it = it->ifa_next)
    if (it->ifa_addr != NULL && it->ifa_addr->sa_family == AF_INET) {
      struct in_addr a = ((struct sockaddr_in *)(void *)it->ifa_addr)->sin_addr;

      if ((ntohl(a.s_addr) >> 24) != 127) {
        *out = a;
        found = true;
      }
    }
  freeifaddrs(ifs);
  return found;
}

/* Connects to addr:port; returns 0 or the errno. */
static int try_connect(struct in_addr addr, int port) {
  struct sockaddr_in sin = {0};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

  cr_assert_geq(fd, 0);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr = addr;
  if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
    rc = errno;
  close(fd);
  return rc;
}

Test(security, metrics_endpoint_listens_on_loopback_only_by_default) {
  char addrs[8][64];
  struct in_addr other;
  int port, status, refused = -1;
  size_t n;
  pid_t pid;

  if (WEIR_CLI[0] == '\0')
    cr_skip_test("built without the weir command (libyaml or libmicrohttpd missing)");
  pid = run_with_metrics(NULL, &port);
  n = listeners(port, addrs, 8);
  if (other_address(&other))
    refused = try_connect(other, port);
  kill(pid, SIGTERM);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert_eq(n, 1, "expected one listening socket on port %d, found %zu", port, n);
  cr_assert_str_eq(addrs[0], "0100007F", "the metrics port listens on %s, not 127.0.0.1", addrs[0]);
  if (refused == -1)
    cr_log_info("no non-loopback IPv4 address here: the connect check was skipped");
  else
    cr_assert_neq(refused, 0, "the metrics port answered on a non-loopback address");

  /* Told otherwise, it binds the wildcard address: the check above can tell the difference. */
  pid = run_with_metrics("0.0.0.0", &port);
  n = listeners(port, addrs, 8);
  kill(pid, SIGTERM);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(addrs[0], "00000000");
}
