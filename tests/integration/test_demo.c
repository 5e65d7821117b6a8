/*
 * test_demo.c: the demo, README's first command (scripts/run.sh), end to end with this build's
 * weir: kinesalite, streams, the sample clickstream, a run killed with SIGKILL, a run resumed
 * from its checkpoint. The window counts it wrote to the results file and to the output stream
 * are checked against counts computed here from the sample file: every (page, 10 s window)
 * present, each with the right count, a window written twice (at-least-once output after the
 * kill) always with the same count.
 *
 * Skipped when `npm ci` has not been run in tests/kinesis-servers. Paths come from the build:
 * WEIR_CLI (the binary) and WEIR_SOURCE_DIR.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef WEIR_CLI
#define WEIR_CLI ""
#endif
#ifndef WEIR_SOURCE_DIR
#define WEIR_SOURCE_DIR ""
#endif

#define SAMPLE "examples/pipelines/clickstream-sample.jsonl"
#define WINDOW_MS 10000
#define MAX_WINDOWS 1024
#define PAGE_MAX 32

struct window {
  int64_t start;
  char page[PAGE_MAX];
  long expected; /* from the sample */
  long seen;     /* results for it */
  long count;    /* the count of the first result */
};

static struct window windows[MAX_WINDOWS];
static size_t n_windows;

static struct window *find(int64_t start, const char *page, bool add) {
  for (size_t i = 0; i < n_windows; i++)
    if (windows[i].start == start && strcmp(windows[i].page, page) == 0)
      return &windows[i];
  if (!add)
    return NULL;
  cr_assert_lt(n_windows, MAX_WINDOWS);
  windows[n_windows].start = start;
  snprintf(windows[n_windows].page, PAGE_MAX, "%s", page);
  return &windows[n_windows++];
}

/* Copies the string value of "name":"..." in `line` into out; false when absent. */
static bool str_field(const char *line, const char *name, char *out, size_t cap) {
  char pat[64];
  const char *p, *e;

  snprintf(pat, sizeof(pat), "\"%s\":\"", name);
  if ((p = strstr(line, pat)) == NULL)
    return false;
  p += strlen(pat);
  if ((e = strchr(p, '"')) == NULL || (size_t)(e - p) >= cap)
    return false;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = '\0';
  return true;
}

/* The integer value of "name":N in `line`; false when absent. */
static bool int_field(const char *line, const char *name, int64_t *out) {
  char pat[64];
  const char *p;

  snprintf(pat, sizeof(pat), "\"%s\":", name);
  if ((p = strstr(line, pat)) == NULL)
    return false;
  return sscanf(p + strlen(pat), "%" SCNd64, out) == 1;
}

/* True when file `path` contains `needle` on some line. */
static bool file_has(const char *path, const char *needle) {
  char line[4096];
  bool found = false;
  FILE *f = fopen(path, "r");

  if (f == NULL)
    return false;
  while (!found && fgets(line, sizeof(line), f) != NULL)
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

/* Prints the file to stderr (the demo's output, when an assertion fails). */
static void dump(const char *path) {
  char line[4096];
  FILE *f = fopen(path, "r");

  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL)
    fputs(line, stderr);
  fclose(f);
}

/* Checks every window result in file `path` against the reference; every window must have one.
 * Returns the number of results that repeat an earlier one (same page and window). */
static long check_results(const char *path) {
  char line[4096], page[PAGE_MAX];
  long repeated = 0;
  FILE *f;

  for (size_t i = 0; i < n_windows; i++)
    windows[i].seen = 0;
  cr_assert_not_null(f = fopen(path, "r"), "%s", path);
  while (fgets(line, sizeof(line), f) != NULL) {
    int64_t start, end, count;
    struct window *w;

    cr_assert(str_field(line, "key", page, sizeof(page)) &&
                  int_field(line, "window_start", &start) && int_field(line, "window_end", &end) &&
                  int_field(line, "count", &count),
              "%s: %s", path, line);
    cr_assert_eq(end - start, WINDOW_MS, "%s", line);
    cr_assert_not_null(w = find(start, page, false), "a window not in the sample: %s", line);
    if (w->seen++ == 0)
      w->count = (long)count;
    else
      repeated++;
    cr_assert_eq(count, w->count, "a window written twice with different counts: %s", line);
    cr_assert_eq(count, w->expected, "%s: %s: expected count %ld", path, line, w->expected);
  }
  fclose(f);
  for (size_t i = 0; i < n_windows; i++)
    cr_assert_gt(windows[i].seen, 0, "%s: no result for %s at %" PRId64, path, windows[i].page,
                 windows[i].start);
  return repeated;
}

Test(demo, run_sh_end_to_end, .timeout = 280) {
  char dir[] = "/tmp/weir-demo-test-XXXXXX", path[512], log[512], line[4096], page[PAGE_MAX];
  long total = 0, repeated = 0;
  int status;
  pid_t pid;
  FILE *f;

  cr_assert_str_neq(WEIR_CLI, "", "built without the weir target");
  snprintf(path, sizeof(path), "%s/tests/kinesis-servers/node_modules/kinesalite/package.json",
           WEIR_SOURCE_DIR);
  if (access(path, F_OK) != 0)
    cr_skip_test("kinesalite is not installed: run 'npm ci' in tests/kinesis-servers");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(log, sizeof(log), "%s/demo.log", dir);

  /* bash scripts/run.sh, without install or build, with this build's weir. */
  cr_assert_neq(pid = fork(), -1);
  if (pid == 0) {
    FILE *out = freopen(log, "w", stdout);

    if (out == NULL || dup2(fileno(stdout), 2) < 0 || chdir(WEIR_SOURCE_DIR) != 0)
      _exit(126);
    unsetenv("LD_PRELOAD"); /* the TSan build's Criterion shim is for this process only */
    setenv("WEIR_DEMO_SKIP_INSTALL", "1", 1);
    setenv("WEIR_DEMO_WEIR", WEIR_CLI, 1);
    setenv("WEIR_DEMO_DIR", dir, 1);
    execlp("bash", "bash", "scripts/run.sh", (char *)NULL);
    _exit(127);
  }
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    dump(log);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "run.sh failed (status %d)", status);

  /* It killed run 1 and run 2 restored from a checkpoint. */
  cr_assert(file_has(log, "killed run 1 (SIGKILL)"), "run 1 was not killed: see %s", log);
  snprintf(path, sizeof(path), "%s/run2.err", dir);
  cr_assert(file_has(path, "restored from checkpoint"), "run 2 did not restore");

  /* The reference: clicks per (page, window) in the sample. */
  snprintf(path, sizeof(path), "%s/" SAMPLE, WEIR_SOURCE_DIR);
  cr_assert_not_null(f = fopen(path, "r"));
  while (fgets(line, sizeof(line), f) != NULL) {
    int64_t ts;

    cr_assert(str_field(line, "page", page, sizeof(page)) && int_field(line, "ts", &ts), "%s",
              line);
    find(ts - ts % WINDOW_MS, page, true)->expected++;
    total++;
  }
  fclose(f);
  cr_assert_gt(total, 1000);

  /* The results both runs appended to the file, and those they sent to the output stream. */
  snprintf(path, sizeof(path), "%s/results.jsonl", dir);
  repeated = check_results(path);
  cr_log_info("%zu windows, %ld clicks, %ld results repeated after the kill", n_windows, total,
              repeated);
  snprintf(path, sizeof(path), "%s/output-stream.jsonl", dir);
  check_results(path);

  /* Passed: remove the work directory (kept when an assertion fails, for a look). */
  cr_assert_neq(pid = fork(), -1);
  if (pid == 0) {
    execlp("rm", "rm", "-rf", dir, (char *)NULL);
    _exit(127);
  }
  cr_assert_eq(waitpid(pid, &status, 0), pid);
}
