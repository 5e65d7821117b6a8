/*
 * test_weir_kinesis_cli.c: the weir-kinesis command-line tool, run as a separate process
 * against kinesalite: create, put stdin lines, tail (raw and JSON), describe, delete; usage
 * errors (exit 2, message naming the argument); service errors (exit 1, the service's message);
 * and a set AWS_SECRET_ACCESS_KEY never appearing in any output.
 *
 * The tool's path comes from the build (WEIR_KINESIS_CLI). Tests needing a server are skipped
 * with a message when `npm ci` has not been run in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/kinesis_server.c"
#include "connectors/kinesis/json_int.h"

#ifndef WEIR_KINESIS_CLI
#define WEIR_KINESIS_CLI ""
#endif

/* Distinctive, so that finding it in an output cannot be a coincidence. */
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzSeCrEtCLI"

static struct weir_test_kserver srv;

static void teardown(void) {
  weir_test_kserver_stop(&srv);
}

/* The output of one run of the tool. */
struct run {
  int status; /* exit code, or 128 + signal */
  char *out;  /* stdout, NUL-terminated (records may hold NULs: use out_len) */
  size_t out_len;
  char *err; /* stderr, NUL-terminated */
};

static char *slurp(FILE *f, size_t *len) {
  long n;
  char *p;

  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  p = malloc((size_t)n + 1);
  cr_assert_not_null(p);
  cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
  p[n] = '\0';
  if (len != NULL)
    *len = (size_t)n;
  return p;
}

static void run_free(struct run *r) {
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof(*r));
}

/*
 * Runs the tool with `input` (len bytes) on stdin and the arguments after it (NULL-terminated).
 * Every run checks that the secret appears in neither stdout nor stderr.
 */
static struct run run_cli(const char *input, size_t len, ...) {
  const char *argv[32];
  struct run r = {0};
  FILE *in = tmpfile(), *out = tmpfile(), *err = tmpfile();
  va_list ap;
  int n = 0, st;
  pid_t pid;

  argv[n++] = WEIR_KINESIS_CLI;
  va_start(ap, len);
  while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
    n++;
  va_end(ap);
  argv[n] = NULL;
  cr_assert(in != NULL && out != NULL && err != NULL);
  if (len > 0)
    cr_assert_eq(fwrite(input, 1, len, in), len);
  fflush(in);
  rewind(in);
  fflush(NULL);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(fileno(in), 0);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.out = slurp(out, &r.out_len);
  r.err = slurp(err, NULL);
  fclose(in);
  fclose(out);
  fclose(err);
  cr_assert(memmem(r.out, r.out_len, SECRET, strlen(SECRET)) == NULL, "secret on stdout");
  cr_assert(strstr(r.err, SECRET) == NULL, "secret on stderr: %s", r.err);
  return r;
}

#define RUN(...) run_cli(NULL, 0, __VA_ARGS__, (const char *)NULL)
#define RUN_IN(in, len, ...) run_cli(in, len, __VA_ARGS__, (const char *)NULL)

/* Credentials and region from the environment; the endpoint as given (NULL = none). */
static void set_env(const char *endpoint) {
  cr_assert_str_neq(WEIR_KINESIS_CLI, "", "built without the weir-kinesis target");
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
  setenv("AWS_REGION", "us-east-1", 1);
  setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/weir-test/credentials", 1);
  setenv("AWS_CONFIG_FILE", "/nonexistent/weir-test/config", 1);
  unsetenv("AWS_PROFILE");
  unsetenv("AWS_SESSION_TOKEN");
  unsetenv("AWS_ENDPOINT_URL");
  if (endpoint != NULL)
    setenv("AWS_ENDPOINT_URL_KINESIS", endpoint, 1);
  else
    unsetenv("AWS_ENDPOINT_URL_KINESIS");
}

static void start_server(void) {
  char why[512];
  int rc = weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why));

  if (rc == WEIR_TEST_KSERVER_SKIP)
    cr_skip_test("%s", why);
  cr_assert_eq(rc, WEIR_TEST_KSERVER_OK, "cannot start kinesalite: %s", why);
  set_env(srv.endpoint);
}

/* ---- the data set -------------------------------------------------------------------------- */

#define N_LINES 1000
#define GROUP_KEY "grp"

/* Line i of the input given with --key-from-tab: empty lines, 'grp<TAB>g-<i>' lines (one key,
 * so their order must survive), and plain lines with quotes, backslashes and UTF-8. */
static void make_line(int i, char *line, size_t cap) {
  if (i % 50 == 7)
    line[0] = '\0';
  else if (i % 37 == 3)
    snprintf(line, cap, GROUP_KEY "\tg-%04d", i);
  else
    snprintf(line, cap, "line %d \"q\" \\ caf\xc3\xa9 %*s", i, i % 40, "pad");
}

/* The record the tool makes of that line: the part after the tab, if any. */
static const char *record_of(const char *line) {
  const char *tab = strchr(line, '\t');
  return tab != NULL ? tab + 1 : line;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text into n lines (each '\n'-terminated); returns a malloc'd array of pointers into
 * it (the '\n's are replaced by NULs). */
static char **split_lines(char *text, size_t len, size_t *n) {
  char **v = malloc((len + 1) * sizeof(*v));
  size_t k = 0, start = 0;

  cr_assert_not_null(v);
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '\n') {
      text[i] = '\0';
      v[k++] = text + start;
      start = i + 1;
    }
  }
  cr_assert_eq(start, len, "output does not end with a newline");
  *n = k;
  return v;
}

/* ---- tests --------------------------------------------------------------------------------- */

TestSuite(weir_kinesis_cli, .fini = teardown, .timeout = 180);

Test(weir_kinesis_cli, create_put_tail_describe_delete) {
  static char input[N_LINES * 97], lines[N_LINES + 3][96];
  static const char *want[N_LINES + 3];
  size_t in_len = 0, n_want = 0, n_got;
  char **got;
  struct run r;
  int last_group = -1, n_group = 0;

  start_server();
  r = RUN("create", "cli-s", "--shards", "2", "--wait");
  cr_assert_eq(r.status, 0, "create: %s", r.err);
  cr_assert(strstr(r.err, "ACTIVE") != NULL, "create --wait: %s", r.err);
  run_free(&r);

  /* 1000 lines with --key-from-tab. */
  for (int i = 0; i < N_LINES; i++) {
    make_line(i, lines[i], sizeof(lines[i]));
    size_t l = strlen(lines[i]);
    memcpy(input + in_len, lines[i], l);
    input[in_len + l] = '\n';
    in_len += l + 1;
    want[n_want++] = record_of(lines[i]);
  }
  r = RUN_IN(input, in_len, "put", "cli-s", "--key-from-tab");
  cr_assert_eq(r.status, 0, "put: %s", r.err);
  cr_assert(strstr(r.err, "1000 records") != NULL, "put report: %s", r.err);
  run_free(&r);

  /* Without --key-from-tab a tab is data; the last line has no newline. */
  snprintf(lines[N_LINES], sizeof(lines[0]), "k\tv kept whole");
  snprintf(lines[N_LINES + 1], sizeof(lines[0]), "%s", "");
  snprintf(lines[N_LINES + 2], sizeof(lines[0]), "no newline at the end");
  for (int i = N_LINES; i < N_LINES + 3; i++)
    want[n_want++] = lines[i];
  {
    const char tail_in[] = "k\tv kept whole\n\nno newline at the end";
    r = RUN_IN(tail_in, sizeof(tail_in) - 1, "put", "cli-s");
    cr_assert_eq(r.status, 0, "put: %s", r.err);
    cr_assert(strstr(r.err, "3 records") != NULL, "put report: %s", r.err);
    run_free(&r);
  }

  /* tail raw: the same multiset of records, byte for byte; one key's records in put order. */
  r = RUN("tail", "cli-s", "--from", "trim-horizon", "--format", "raw");
  cr_assert_eq(r.status, 0, "tail: %s", r.err);
  got = split_lines(r.out, r.out_len, &n_got);
  cr_assert_eq(n_got, n_want, "records read back");
  for (size_t i = 0; i < n_got; i++) {
    int g;
    if (sscanf(got[i], "g-%d", &g) == 1) {
      cr_assert_gt(g, last_group, "order within key " GROUP_KEY ": g-%d after g-%d", g, last_group);
      last_group = g;
      n_group++;
    }
  }
  cr_assert_gt(n_group, 20);
  qsort(got, n_got, sizeof(*got), cmp_str);
  qsort(want, n_want, sizeof(*want), cmp_str);
  for (size_t i = 0; i < n_want; i++)
    cr_assert_str_eq(got[i], want[i], "record %zu of the sorted multiset", i);
  free(got);
  run_free(&r);

  /* tail json: one object per line with the five fields; data decodes to the same records. */
  r = RUN("tail", "cli-s", "--format", "json");
  cr_assert_eq(r.status, 0, "tail json: %s", r.err);
  got = split_lines(r.out, r.out_len, &n_got);
  cr_assert_eq(n_got, n_want);
  for (size_t i = 0; i < n_got; i++) {
    json_error_t jerr;
    json_t *o = json_loads(got[i], 0, &jerr);
    const char *b64, *pk, *shard;
    uint8_t dec[128];
    size_t dec_len;
    cr_assert_not_null(o, "line %zu is not JSON (%s): %s", i, jerr.text, got[i]);
    shard = json_string_value(json_object_get(o, "shard"));
    pk = json_string_value(json_object_get(o, "pk"));
    b64 = json_string_value(json_object_get(o, "data_b64"));
    cr_assert(shard != NULL && strncmp(shard, "shardId-", 8) == 0);
    cr_assert(json_is_string(json_object_get(o, "seq")));
    cr_assert(json_is_integer(json_object_get(o, "ts")));
    cr_assert(pk != NULL && b64 != NULL);
    cr_assert_leq(strlen(b64), 160);
    cr_assert_eq(weir__b64_decode(b64, strlen(b64), dec, &dec_len), 0);
    dec[dec_len] = '\0';
    if (strncmp((char *)dec, "g-", 2) == 0)
      cr_assert_str_eq(pk, GROUP_KEY);
    cr_assert_not_null(bsearch(&(const char *){(char *)dec}, want, n_want, sizeof(*want), cmp_str),
                       "unexpected record %s", dec);
    json_decref(o);
  }
  free(got);
  run_free(&r);

  /* --max stops early. */
  r = RUN("tail", "cli-s", "--max", "5");
  cr_assert_eq(r.status, 0, "tail --max: %s", r.err);
  got = split_lines(r.out, r.out_len, &n_got);
  cr_assert_eq(n_got, 5);
  free(got);
  run_free(&r);

  /* describe: the summary and both shards with their ranges. */
  r = RUN("describe", "cli-s");
  cr_assert_eq(r.status, 0, "describe: %s", r.err);
  cr_assert(strstr(r.out, "status:       ACTIVE\n") != NULL, "%s", r.out);
  cr_assert(strstr(r.out, "shards:       2\n") != NULL, "%s", r.out);
  cr_assert(strstr(r.out, "shardId-000000000000 OPEN") != NULL, "%s", r.out);
  cr_assert(strstr(r.out, "shardId-000000000001 OPEN") != NULL, "%s", r.out);
  cr_assert(strstr(r.out, "hash keys   0..170141183460469231731687303715884105727\n") != NULL, "%s",
            r.out);
  run_free(&r);

  r = RUN("delete", "cli-s");
  cr_assert_eq(r.status, 0, "delete: %s", r.err);
  run_free(&r);
}

/* A usage error: exit 2 and a message naming the bad argument. No server needed. */
static void expect_usage(const char *bad, struct run r) {
  cr_assert_eq(r.status, 2, "exit %d for a usage error: %s", r.status, r.err);
  cr_assert(strstr(r.err, bad) != NULL, "the message should name '%s': %s", bad, r.err);
  cr_assert_eq(r.out_len, 0, "nothing on stdout");
  run_free(&r);
}

Test(weir_kinesis_cli, usage_errors_exit_2_naming_the_argument) {
  set_env("http://127.0.0.1:9");
  expect_usage("zero", RUN("create", "s", "--shards", "zero"));
  expect_usage("--shards", RUN("create", "s", "--shards"));
  expect_usage("--bogus", RUN("tail", "s", "--bogus"));
  expect_usage("-q", RUN("describe", "s", "-q"));
  expect_usage("xml", RUN("tail", "s", "--format", "xml"));
  expect_usage("sometime", RUN("tail", "s", "--from", "sometime"));
  expect_usage("at-timestamp:yesterday", RUN("tail", "s", "--from", "at-timestamp:yesterday"));
  expect_usage("-3", RUN("tail", "s", "--max", "-3"));
  expect_usage("-5", RUN("--timeout-ms", "-5", "describe", "s"));
  expect_usage("frob", RUN("frob", "s"));
  expect_usage("COMMAND", RUN("--region", "us-east-1"));
  expect_usage("STREAM", RUN("create"));
  expect_usage("extra", RUN("delete", "s", "extra"));
  expect_usage("bad name!", RUN("describe", "bad name!"));
  expect_usage("--key-from-tab", RUN("put", "s", "--key", "k", "--key-from-tab"));
  expect_usage("--key", RUN("put", "s", "--key", ""));

  /* --help is not an error. */
  {
    struct run r = RUN("tail", "--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--follow") != NULL);
    run_free(&r);
  }
}

Test(weir_kinesis_cli, unknown_stream_exits_1_with_the_service_message) {
  struct run r;

  start_server();
  r = RUN("describe", "no-such-stream");
  cr_assert_eq(r.status, 1, "describe: exit %d: %s", r.status, r.err);
  cr_assert(strstr(r.err, "ResourceNotFoundException") != NULL, "%s", r.err);
  cr_assert(strstr(r.err, "no-such-stream") != NULL, "%s", r.err);
  run_free(&r);

  r = RUN("tail", "no-such-stream");
  cr_assert_eq(r.status, 1, "tail: %s", r.err);
  cr_assert(strstr(r.err, "ResourceNotFoundException") != NULL, "%s", r.err);
  run_free(&r);

  r = RUN_IN("x\n", 2, "put", "no-such-stream");
  cr_assert_eq(r.status, 1, "put: %s", r.err);
  cr_assert(strstr(r.err, "ResourceNotFoundException") != NULL, "%s", r.err);
  run_free(&r);

  r = RUN("delete", "no-such-stream");
  cr_assert_eq(r.status, 1, "delete: %s", r.err);
  run_free(&r);

  /* Verbose mode shows the library's log lines, still without the secret (run_cli checks). */
  r = RUN("-v", "describe", "no-such-stream");
  cr_assert_eq(r.status, 1);
  cr_assert(strstr(r.err, "debug") != NULL || strstr(r.err, "error") != NULL, "%s", r.err);
  run_free(&r);
}

Test(weir_kinesis_cli, unreachable_endpoint_fails_fast_with_exit_1) {
  struct run r;

  set_env(NULL);
  /* Port 9 (discard) on the loopback: nothing listens there in the test environment. */
  r = RUN("--endpoint", "http://127.0.0.1:9", "--timeout-ms", "2000", "describe", "s");
  cr_assert_eq(r.status, 1, "exit %d: %s", r.status, r.err);
  cr_assert(strstr(r.err, "127.0.0.1") != NULL, "%s", r.err);
  run_free(&r);
}
