/*
 * test_weir_cli.c: the `weir` binary, run as a separate process: help and usage errors,
 * validate (good and bad files, JSON log lines), run a generator -> file pipeline to its end,
 * SIGTERM -> savepoint -> a second run resumes with no record lost or repeated, checkpoints
 * list/show, the Prometheus endpoint scraped with libcurl, and operator plugins (the example
 * plugin, and one built for another ABI version, refused with the exact message).
 *
 * Paths come from the build: WEIR_CLI (the binary), WEIR_PLUGIN_UPPER (examples/plugins) and
 * WEIR_PLUGIN_BAD_ABI (tests/support/plugin_bad_abi.c). Waits poll for a condition with a
 * generous deadline; nothing asserts on time.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/kinesis_server.c"

#ifndef WEIR_CLI
#define WEIR_CLI ""
#endif
#ifndef WEIR_PLUGIN_UPPER
#define WEIR_PLUGIN_UPPER ""
#endif
#ifndef WEIR_SOURCE_DIR
#define WEIR_SOURCE_DIR ""
#endif
#ifndef WEIR_PLUGIN_BAD_ABI
#define WEIR_PLUGIN_BAD_ABI ""
#endif

/* The longest any wait polls before the test fails (a hung binary, not a slow one). */
#define WAIT_LIMIT_MS 120000

static char dir[64];
static struct weir_test_kserver srv;
/* stdin of the next run() ("/dev/null" when NULL). */
static const char *run_stdin;

static void setup(void) {
  cr_assert_str_neq(WEIR_CLI, "", "built without the weir target");
  snprintf(dir, sizeof(dir), "/tmp/weir-cli-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];

  weir_test_kserver_stop(&srv);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  (void)system(cmd);
}

TestSuite(weir_cli, .init = setup, .fini = teardown, .timeout = 240);

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

static char *path_in(const char *name) {
  static char bufs[64][256];
  static int next;
  char *p = bufs[next++ % 64];

  snprintf(p, 256, "%s/%s", dir, name);
  return p;
}

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

static void write_file(const char *path, const char *fmt, ...) {
  FILE *f = fopen(path, "w");
  va_list ap;

  cr_assert_not_null(f, "%s", path);
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

/* Starts weir with stdout/stderr into files; argv is NULL-terminated after `err`. */
static pid_t vspawn(const char *out, const char *err, va_list ap) {
  const char *argv[32];
  int n = 0;
  pid_t pid;

  argv[n++] = WEIR_CLI;
  while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
    n++;
  argv[n] = NULL;
  fflush(NULL);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);

    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return pid;
}

static pid_t spawn(const char *out, const char *err, ...) {
  va_list ap;
  pid_t pid;

  va_start(ap, err);
  pid = vspawn(out, err, ap);
  va_end(ap);
  return pid;
}

static int wait_exit(pid_t pid) {
  int st;

  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct result {
  int status;
  char *out, *err;
};

/* Runs weir to its end; stdout and stderr captured. */
static struct result run(const char *first, ...) {
  struct result r;
  va_list ap;
  pid_t pid;
  const char *out = path_in("stdout"), *err = path_in("stderr");

  fflush(NULL);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    const char *argv[32];
    int n = 0;
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open(run_stdin != NULL ? run_stdin : "/dev/null", O_RDONLY);

    argv[n++] = WEIR_CLI;
    argv[n++] = first;
    va_start(ap, first);
    while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
      n++;
    va_end(ap);
    argv[n] = NULL;
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  r.status = wait_exit(pid);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

#define RUN(...) run(__VA_ARGS__, (const char *)NULL)

static void result_free(struct result *r) {
  free(r->out);
  free(r->err);
}

static long count_lines(const char *path) {
  char *s = slurp(path);
  long n = 0;

  for (char *p = s; *p; p++)
    n += *p == '\n';
  free(s);
  return n;
}

/* Polls until `path` has at least `lines` lines (or the child ended). */
static void wait_lines(const char *path, long lines, pid_t pid) {
  for (int waited = 0; waited < WAIT_LIMIT_MS; waited += 20) {
    if (count_lines(path) >= lines)
      return;
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "weir ended early");
    sleep_ms(20);
  }
  cr_assert_fail("%s never reached %ld lines", path, lines);
}

/* Polls until `path` contains `needle`; returns a copy of the file. */
static char *wait_text(const char *path, const char *needle, pid_t pid) {
  for (int waited = 0; waited < WAIT_LIMIT_MS; waited += 20) {
    char *s = slurp(path);

    if (strstr(s, needle) != NULL)
      return s;
    free(s);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "weir ended early");
    sleep_ms(20);
  }
  cr_assert_fail("'%s' never appeared in %s", needle, path);
  return NULL;
}

/* Checks that `path` holds the generator's values 0..n-1, each once, in order. */
static long check_sequence(const char *path) {
  char *s = slurp(path), *line, *save = NULL;
  long n = 0;

  for (line = strtok_r(s, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char want[32];

    snprintf(want, sizeof(want), "%020ld", n);
    cr_assert_str_eq(line, want, "line %ld: record lost or repeated", n + 1);
    n++;
  }
  free(s);
  return n;
}

/* ---- help and usage ------------------------------------------------------------------------ */

Test(weir_cli, help_for_every_command) {
  static const char *const cmds[][2] = {{"--help", "Usage: weir [GLOBAL OPTIONS] COMMAND"},
                                        {"run", "Usage: weir run [OPTIONS] FILE"},
                                        {"validate", "Usage: weir validate [OPTIONS] FILE..."},
                                        {"checkpoints", "Usage: weir checkpoints list DIR"},
                                        {"kinesis", "Usage: weir kinesis [GLOBAL OPTIONS]"}};

  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    struct result r = i == 0 ? RUN("--help") : RUN(cmds[i][0], "--help");

    cr_assert_eq(r.status, 0, "%s: %s", cmds[i][0], r.err);
    cr_assert_not_null(strstr(r.out, cmds[i][1]), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "xit codes"), "%s", r.out);
    result_free(&r);
  }
}

Test(weir_cli, usage_errors_exit_2) {
  struct result r = RUN("frobnicate");

  cr_assert_eq(r.status, 2);
  cr_assert_str_eq(r.err, "weir: error: unknown command 'frobnicate' (run, validate, "
                          "checkpoints or kinesis) (try 'weir --help')\n");
  result_free(&r);
  r = RUN("run", "--metrics-port", "http", "x.yaml");
  cr_assert_eq(r.status, 2);
  cr_assert_str_eq(r.err, "weir: error: run: --metrics-port: 'http' is not a port number "
                          "(0..65535) (try 'weir run --help')\n");
  result_free(&r);
  r = RUN("run");
  cr_assert_eq(r.status, 2);
  result_free(&r);
}

/* ---- validate ------------------------------------------------------------------------------ */

Test(weir_cli, validate_good_and_bad) {
  const char *good = path_in("good.yaml"), *bad = path_in("bad.yaml"), *out = path_in("o.txt");
  char want[512];
  struct result r;

  write_file(good,
             "name: good\nsources:\n  - type: generator\nsinks:\n  - type: file\n"
             "    path: %s\n",
             out);
  write_file(bad,
             "name: bad\n"
             "checkpoint:\n"
             "  dir: %s/ck\n"
             "  interval: 10 seconds\n"
             "sources:\n  - type: generator\nsinks:\n  - type: stdout\n",
             dir);
  r = RUN("validate", good);
  cr_assert_eq(r.status, 0, "%s", r.err);
  snprintf(want, sizeof(want), "%s: ok (job 'good')\n", good);
  cr_assert_str_eq(r.out, want);
  cr_assert_eq(access(out, F_OK), -1, "validate created the sink's file");
  result_free(&r);

  r = RUN("validate", bad);
  cr_assert_eq(r.status, 3);
  snprintf(want, sizeof(want),
           "weir: error: %s:4:13: checkpoint.interval: bad duration \"10 seconds\": unknown "
           "unit (hint: write a number and a unit: 250ms, 10s, 5m, 1h, 1m30s)\n",
           bad);
  cr_assert_str_eq(r.err, want);
  result_free(&r);

  r = RUN("--log-format", "json", "validate", bad);
  cr_assert_eq(r.status, 3);
  cr_assert(strncmp(r.err, "{\"time\":\"", 9) == 0, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "\"level\":\"error\",\"msg\":\""), "%s", r.err);
  cr_assert_not_null(strstr(r.err, ":4:13: checkpoint.interval: bad duration \\\"10 seconds\\\""),
                     "%s", r.err);
  result_free(&r);

  r = RUN("validate", path_in("missing.yaml"));
  cr_assert_eq(r.status, 1);
  result_free(&r);
}

Test(weir_cli, example_pipelines_are_valid) {
  struct result r = RUN("validate", WEIR_SOURCE_DIR "/examples/pipelines/hello.yaml");

  cr_assert_eq(r.status, 0, "%s", r.err);
  result_free(&r);
}

/* ---- run ----------------------------------------------------------------------------------- */

Test(weir_cli, run_to_completion) {
  const char *p = path_in("p.yaml"), *out = path_in("out.txt");
  struct result r;

  write_file(p,
             "name: bounded\nsources:\n  - type: generator\n    count: 5000\n"
             "    value_len: 20\nsinks:\n  - type: file\n    path: %s\n",
             out);
  r = RUN("run", p);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "weir: job 'bounded' finished\n"), "%s", r.err);
  cr_assert_str_eq(r.out, "");
  cr_assert_eq(check_sequence(out), 5000);
  result_free(&r);
}

Test(weir_cli, sigterm_savepoint_then_resume) {
  const char *p = path_in("p.yaml"), *out = path_in("out.txt"), *err = path_in("err.txt");
  char *text, want[256];
  long first, total;
  pid_t pid;
  int st;
  struct result r;

  /* Paced so that the job is certainly still running when the signal comes. */
  write_file(p,
             "name: resumable\n"
             "checkpoint:\n  dir: %s/ck\n  interval: 100ms\n"
             "sources:\n  - type: generator\n    name: gen\n    value_len: 20\n    rate: 2000\n"
             "sinks:\n  - type: file\n    path: %s\n    append: true\n",
             dir, out);
  pid = spawn(path_in("o1"), err, "run", p, (const char *)NULL);
  wait_lines(out, 500, pid);
  kill(pid, SIGTERM);
  st = wait_exit(pid);
  text = slurp(err);
  cr_assert_eq(st, 0, "%s", text);
  cr_assert_not_null(strstr(text, "Terminated: stopping with a savepoint"), "%s", text);
  cr_assert_not_null(strstr(text, "stopped with savepoint "), "%s", text);
  free(text);
  first = check_sequence(out);
  cr_assert_geq(first, 500);

  /* The second run restores the savepoint and appends exactly what follows it. */
  pid = spawn(path_in("o2"), err, "run", "--status-interval", "100", p, (const char *)NULL);
  wait_lines(out, first + 500, pid);
  kill(pid, SIGINT);
  st = wait_exit(pid);
  text = slurp(err);
  cr_assert_eq(st, 0, "%s", text);
  cr_assert_not_null(strstr(text, "started, restored from checkpoint "), "%s", text);
  /* stderr is a file: the status comes as log lines. */
  cr_assert_not_null(strstr(text, " | checkpoint "), "%s", text);
  free(text);
  total = check_sequence(out);
  cr_assert_geq(total, first + 500);

  /* checkpoints list shows the savepoint; show describes it, with the source's position. */
  r = RUN("checkpoints", "list", path_in("ck"));
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strncmp(r.out, "ID ", 3) == 0, "%s", r.out);
  cr_assert_geq(count_lines(path_in("stdout")), 2);
  result_free(&r);
  r = RUN("checkpoints", "show", path_in("ck"));
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.out, "job: resumable\n"), "%s", r.out);
  cr_assert_not_null(strstr(r.out, "source gen subtask 0 position "), "%s", r.out);
  result_free(&r);
  r = RUN("checkpoints", "show", path_in("ck"), "999999");
  cr_assert_eq(r.status, 1);
  snprintf(want, sizeof(want), "weir: error: checkpoints: no checkpoint 999999 in '%s'\n",
           path_in("ck"));
  cr_assert_not_null(strstr(r.err, want), "%s", r.err);
  result_free(&r);

  /* --from-checkpoint with the oldest retained id: that one is restored, not the latest. */
  {
    unsigned long long oldest = 0;
    char id[32], needle[96];

    r = RUN("checkpoints", "list", path_in("ck"));
    cr_assert_eq(sscanf(strchr(r.out, '\n') + 1, "%llu", &oldest), 1, "%s", r.out);
    result_free(&r);
    snprintf(id, sizeof(id), "%llu", oldest);
    snprintf(needle, sizeof(needle), "started, restored from checkpoint %llu in", oldest);
    pid = spawn(path_in("o3"), err, "run", "--from-checkpoint", id, p, (const char *)NULL);
    free(wait_text(err, needle, pid));
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid), 0);
  }

  /* --from-checkpoint with an id that does not exist: the job cannot start. */
  total = count_lines(out);
  r = RUN("run", "--from-checkpoint", "999999", p);
  cr_assert_eq(r.status, 1, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "cannot start job 'resumable'"), "%s", r.err);
  result_free(&r);
  cr_assert_eq(count_lines(out), total, "a failed start wrote records");
}

Test(weir_cli, sigterm_without_checkpoints_stops_gracefully) {
  const char *p = path_in("p.yaml"), *out = path_in("out.txt"), *err = path_in("err.txt");
  char *text;
  pid_t pid;
  int st;

  write_file(p,
             "name: plain\nsources:\n  - type: generator\n    value_len: 20\n    rate: 2000\n"
             "sinks:\n  - type: file\n    path: %s\n",
             out);
  pid = spawn(path_in("o"), err, "run", p, (const char *)NULL);
  wait_lines(out, 100, pid);
  kill(pid, SIGTERM);
  st = wait_exit(pid);
  text = slurp(err);
  cr_assert_eq(st, 0, "%s", text);
  cr_assert_not_null(strstr(text, "stopping (no checkpoint dir, so no savepoint)"), "%s", text);
  cr_assert_not_null(strstr(text, "weir: job 'plain' stopped\n"), "%s", text);
  free(text);
  cr_assert_geq(check_sequence(out), 100);
}

/*
 * A second signal cancels. The sink writes into a FIFO this test stops reading, so the job
 * blocks in a write: the first SIGTERM asks it to stop (it cannot finish while blocked), the
 * second cancels it; once the FIFO is drained, weir must exit 130 ("cancelled"), not 0 as a
 * stopped job does.
 */
Test(weir_cli, second_signal_cancels) {
  const char *p = path_in("p.yaml"), *fifo = path_in("fifo"), *err = path_in("err.txt");
  char buf[65536], *text;
  long got = 0;
  ssize_t n;
  pid_t pid;
  int fd, st;

  cr_assert_eq(mkfifo(fifo, 0600), 0);
  write_file(p,
             "name: blocked\nsources:\n  - type: generator\n    value_len: 1000\n"
             "sinks:\n  - type: file\n    path: %s\n",
             fifo);
  pid = spawn(path_in("o"), err, "run", p, (const char *)NULL);
  cr_assert_geq(fd = open(fifo, O_RDONLY), 0); /* weir's file sink opens it at load */
  /* Take some records, then stop reading: the pipe fills and the sink blocks. */
  while (got < 200000 && (n = read(fd, buf, sizeof(buf))) > 0)
    got += n;
  cr_assert_geq(got, 200000);
  free(wait_text(err, "job 'blocked' started", pid));
  sleep_ms(200);
  kill(pid, SIGTERM);
  free(wait_text(err, "Terminated: stopping (no checkpoint dir, so no savepoint)", pid));
  sleep_ms(200);
  cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the job ended although its sink is blocked");
  kill(pid, SIGTERM);
  free(wait_text(err, "Terminated again: cancelling now", pid));
  while ((n = read(fd, buf, sizeof(buf))) > 0) /* unblock the sink; EOF when weir exits */
    ;
  close(fd);
  st = wait_exit(pid);
  text = slurp(err);
  cr_assert_eq(st, 130, "exit %d: %s", st, text);
  cr_assert_not_null(strstr(text, "job 'blocked' cancelled"), "%s", text);
  cr_assert_null(strstr(text, "job 'blocked' stopped"), "%s", text);
  free(text);
}

Test(weir_cli, checkpoints_of_a_missing_dir) {
  struct result r = RUN("checkpoints", "list", path_in("nothing-here"));

  cr_assert_eq(r.status, 1);
  cr_assert_not_null(strstr(r.err, "no checkpoint store in"), "%s", r.err);
  result_free(&r);
}

/* ---- metrics endpoint ---------------------------------------------------------------------- */

static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg) {
  char **buf = arg;
  size_t old = strlen(*buf), n = size * nmemb;
  char *p = realloc(*buf, old + n + 1);

  cr_assert_not_null(p);
  memcpy(p + old, ptr, n);
  p[old + n] = '\0';
  *buf = p;
  return n;
}

static long http_get(const char *url, char **body, char **ctype) {
  CURL *c = curl_easy_init();
  long code = 0;
  char *ct = NULL;

  *body = calloc(1, 1);
  cr_assert_not_null(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  cr_assert_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  if (ctype != NULL)
    *ctype = strdup(ct != NULL ? ct : "");
  curl_easy_cleanup(c);
  return code;
}

Test(weir_cli, metrics_endpoint) {
  const char *p = path_in("p.yaml"), *err = path_in("err.txt");
  char *text, *body, *ctype, url[128], *u;
  pid_t pid;
  int st;

  write_file(p,
             "name: scraped\ncheckpoint:\n  dir: %s/ck\n  interval: 50ms\n"
             "sources:\n  - type: generator\n    rate: 1000\nsinks:\n  - type: file\n"
             "    path: %s/out.txt\n",
             dir, dir);
  pid = spawn(path_in("o"), err, "run", "--metrics-port", "0", p, (const char *)NULL);
  text = wait_text(err, "/metrics\n", pid);
  u = strstr(text, "weir: metrics on http://127.0.0.1:");
  cr_assert_not_null(u, "%s", text);
  cr_assert_eq(sscanf(u, "weir: metrics on %127s", url), 1);
  free(text);
  /* Wait until at least one checkpoint completed, then the series must say so. */
  for (int waited = 0;; waited += 20) {
    cr_assert_lt(waited, WAIT_LIMIT_MS, "no checkpoint completed");
    cr_assert_eq(http_get(url, &body, &ctype), 200);
    if (strstr(body, "\nweir_checkpoints_completed_total 0\n") == NULL)
      break;
    free(body);
    free(ctype);
    sleep_ms(20);
  }
  cr_assert_str_eq(ctype, "text/plain; version=0.0.4; charset=utf-8");
  cr_assert_not_null(strstr(body, "# TYPE weir_checkpoints_completed_total counter\n"
                                  "weir_checkpoints_completed_total "),
                     "%s", body);
  cr_assert_not_null(strstr(body, "\nweir_checkpoint_restored_id 0\n"), "%s", body);
  cr_assert_null(strstr(body, "\nweir_checkpoint_last_id 0\n"), "%s", body);
  free(body);
  free(ctype);
  u = strrchr(url, '/');
  strcpy(u, "/nothing");
  cr_assert_eq(http_get(url, &body, NULL), 404);
  free(body);
  kill(pid, SIGTERM);
  st = wait_exit(pid);
  cr_assert_eq(st, 0);
}

/* ---- plugins ------------------------------------------------------------------------------- */

Test(weir_cli, plugin_good_abi) {
  const char *p = path_in("p.yaml"), *out = path_in("out.txt");
  struct result r;
  char *s;

  if (WEIR_PLUGIN_UPPER[0] == '\0')
    cr_skip_test("built without the examples (WEIR_BUILD_EXAMPLES=OFF): no example plugin");
  write_file(p,
             "sources:\n  - type: generator\n    count: 2\n    value_len: 22\n"
             "operators:\n  - type: plugin\n    path: %s\n    params: {suffix: \"!\"}\n"
             "sinks:\n  - type: file\n    path: %s\n",
             WEIR_PLUGIN_UPPER, out);
  r = RUN("run", p);
  cr_assert_eq(r.status, 0, "%s", r.err);
  s = slurp(out);
  cr_assert_str_eq(s, "00000000000000000000XX!\n00000000000000000001XX!\n");
  free(s);
  result_free(&r);
}

Test(weir_cli, plugin_bad_abi_is_refused) {
  const char *p = path_in("p.yaml");
  char want[1024];
  struct result r;

  cr_assert_str_neq(WEIR_PLUGIN_BAD_ABI, "", "built without the bad-ABI plugin");
  write_file(p,
             "sources:\n  - type: generator\n"
             "operators:\n  - type: plugin\n    path: %s\n"
             "sinks:\n  - type: stdout\n",
             WEIR_PLUGIN_BAD_ABI);
  snprintf(want, sizeof(want),
           "weir: error: %s:5:11: operators[0].path: plugin %s was built for weir plugin ABI "
           "version 2, but this weir supports ABI version 1 (hint: rebuild the plugin against "
           "this weir's <weir/plugin.h>)\n",
           p, WEIR_PLUGIN_BAD_ABI);
  r = RUN("validate", p);
  cr_assert_eq(r.status, 3);
  cr_assert_str_eq(r.err, want);
  result_free(&r);
  r = RUN("run", p);
  cr_assert_eq(r.status, 3);
  cr_assert_str_eq(r.err, want);
  result_free(&r);
}

/* ---- kinesis helpers ----------------------------------------------------------------------- */

Test(weir_cli, kinesis_helpers_against_kinesalite) {
  const char *in = path_in("lines.txt");
  char why[512];
  struct result r;
  int rc = weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why));

  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start kinesalite: %s", why);
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret", 1);
  setenv("AWS_REGION", "us-east-1", 1);
  setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/weir-test/credentials", 1);
  setenv("AWS_CONFIG_FILE", "/nonexistent/weir-test/config", 1);
  unsetenv("AWS_PROFILE");
  unsetenv("AWS_SESSION_TOKEN");

  r = RUN("kinesis", "--endpoint", srv.endpoint, "create", "cli-w", "--shards", "1", "--wait");
  cr_assert_eq(r.status, 0, "%s", r.err);
  result_free(&r);
  write_file(in, "alpha\nbeta\ngamma\n");
  run_stdin = in;
  r = RUN("kinesis", "--endpoint", srv.endpoint, "put", "cli-w", "--key", "k");
  run_stdin = NULL;
  cr_assert_eq(r.status, 0, "%s", r.err);
  result_free(&r);
  r = RUN("kinesis", "--endpoint", srv.endpoint, "tail", "cli-w", "--from", "trim-horizon", "--max",
          "3");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, "alpha\nbeta\ngamma\n");
  result_free(&r);
  r = RUN("kinesis", "--endpoint", srv.endpoint, "describe", "cli-w");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.out, "cli-w"), "%s", r.out);
  result_free(&r);
  r = RUN("kinesis", "--endpoint", srv.endpoint, "describe", "no-such-stream");
  cr_assert_eq(r.status, 1);
  cr_assert_not_null(strstr(r.err, "weir kinesis describe: "), "%s", r.err);
  cr_assert_not_null(strstr(r.err, "ResourceNotFoundException"), "%s", r.err);
  result_free(&r);
}
