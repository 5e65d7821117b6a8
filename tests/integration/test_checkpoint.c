/*
 * Checkpoint tests: exactly-once keyed state through SIGKILL crash loops, restore with a
 * different parallelism after a savepoint, and restore mismatches.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/ckpt_job.h"

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
}

static char *temp_dir(void) {
  char tmpl[] = "/tmp/weir-ckpt-XXXXXX";
  char *d = mkdtemp(tmpl);

  cr_assert_not_null(d);
  return strdup(d);
}

/* ---- reading the output ------------------------------------------------------------------- */

struct seen {
  unsigned long finals[KEYS]; /* value of FINAL lines (all must agree) */
  int n_finals[KEYS];
  bool bad_final;
  unsigned char *lines[KEYS]; /* lines[k][m] = 1 if "k<k> <m*EMIT_EVERY>" appeared */
  unsigned long max_m;
};

static void seen_line(struct seen *s, const char *line) {
  unsigned long v;
  int k;

  if (sscanf(line, "FINAL k%d %lu", &k, &v) == 2) {
    cr_assert(k >= 0 && k < KEYS, "bad key in '%s'", line);
    if (s->n_finals[k]++ > 0 && s->finals[k] != v)
      s->bad_final = true;
    s->finals[k] = v;
  } else if (sscanf(line, "k%d %lu", &k, &v) == 2) {
    cr_assert(k >= 0 && k < KEYS && v % EMIT_EVERY == 0 && v / EMIT_EVERY <= s->max_m,
              "unexpected line '%s'", line);
    s->lines[k][v / EMIT_EVERY] = 1;
  } else {
    cr_assert_fail("unparseable output line '%s'", line);
  }
}

static void seen_init(struct seen *s, unsigned long per_key) {
  int k;

  memset(s, 0, sizeof(*s));
  s->max_m = per_key / EMIT_EVERY;
  for (k = 0; k < KEYS; k++)
    s->lines[k] = calloc(s->max_m + 1, 1);
}

static void seen_check(struct seen *s, unsigned long per_key) {
  unsigned long m;
  int k;

  cr_assert(!s->bad_final, "two FINAL lines of one key disagree: state was not exactly once");
  for (k = 0; k < KEYS; k++) {
    cr_assert_gt(s->n_finals[k], 0, "no FINAL line for k%d", k);
    cr_assert_eq(s->finals[k], per_key, "k%d counted %lu, expected exactly %lu", k, s->finals[k],
                 per_key);
    for (m = 1; m <= s->max_m; m++)
      cr_assert(s->lines[k][m], "line 'k%d %lu' never appeared (at-least-once output)", k,
                m * EMIT_EVERY);
    free(s->lines[k]);
  }
}

/* ---- crash loop --------------------------------------------------------------------------- */

/* Runs the job in a fresh process (ckpt_crash_child): TSan cannot start threads in a child
 * forked from a multi-threaded test process. */
static pid_t spawn_child(const char *dir, const char *out, uint64_t records) {
  char n[32];
  pid_t pid;

  snprintf(n, sizeof(n), "%llu", (unsigned long long)records);
  pid = fork();
  if (pid == 0) {
    execl(WEIR_CKPT_CHILD, WEIR_CKPT_CHILD, dir, out, n, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

Test(checkpoint, sigkill_crash_loop_keeps_state_exactly_once, .timeout = 240) {
  const uint64_t records = 200000;
  const unsigned long per_key = records / KEYS;
  char *dir = temp_dir(), out[512], line[128];
  weir_checkpoint_info *infos = NULL;
  struct seen s;
  size_t n = 0;
  int i, status, kills = 0;
  FILE *f;
  pid_t pid;

  snprintf(out, sizeof(out), "%s/out.txt", dir);
  srand((unsigned)time(NULL));
  for (i = 0; i < 25; i++) {
    pid = spawn_child(dir, out, records);
    cr_assert_neq(pid, -1);
    sleep_ms(40 + rand() % 160);
    if (kill(pid, SIGKILL) == 0)
      kills++;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
  }
  cr_assert_geq(kills, 20, "only %d runs were killed", kills);
  /* The last run completes from the latest checkpoint. */
  pid = spawn_child(dir, out, records);
  cr_assert_neq(pid, -1);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "final run failed");

  seen_init(&s, per_key);
  f = fopen(out, "r");
  cr_assert_not_null(f);
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    seen_line(&s, line);
  }
  fclose(f);
  seen_check(&s, per_key);

  quiet();
  cr_assert_eq(weir_checkpoint_list(dir, &infos, &n), 0);
  cr_assert_gt(n, 0, "no complete checkpoint in %s", dir);
  cr_assert_gt(infos[n - 1].id, 5, "only %llu checkpoints over all runs",
               (unsigned long long)infos[n - 1].id);
  free(infos);
  {
    char p[600];
    struct stat st;

    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "checkpoint file mode %o", st.st_mode & 0777);
  }
  free(dir);
}

/* ---- savepoint and rescale ---------------------------------------------------------------- */

struct collect {
  pthread_mutex_t mu;
  struct seen *s;
  unsigned long received;
};

static int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  struct collect *c = data;
  char line[128];
  size_t i;

  (void)subtask;
  pthread_mutex_lock(&c->mu);
  for (i = 0; i < n; i++) {
    snprintf(line, sizeof(line), "%.*s", (int)recs[i].value.len, (const char *)recs[i].value.ptr);
    seen_line(c->s, line);
  }
  __atomic_add_fetch(&c->received, n, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

Test(checkpoint, savepoint_then_restore_with_other_parallelism, .timeout = 120) {
  const uint64_t records = 100000;
  const unsigned long per_key = records / KEYS;
  char *dir = temp_dir();
  struct seen s;
  struct collect c = {PTHREAD_MUTEX_INITIALIZER, &s, 0};
  struct job_opts o = {dir, NULL, records, 2, 0, NULL, collect_cb, &c};
  weir_checkpoint_stats st;
  struct built b;
  uint64_t sp;
  char *text = NULL;

  quiet();
  seen_init(&s, per_key);
  /* Run 1: parallelism 2, stopped with a savepoint part-way. */
  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_start(b.job), 0);
  while (__atomic_load_n(&c.received, __ATOMIC_SEQ_CST) < 10)
    sleep_ms(5);
  cr_assert_eq(weir_job_stop_with_savepoint(b.job), 0);
  cr_assert_eq(weir_job_wait(b.job), 0, "%s", weir_job_error(b.job));
  sp = weir_job_last_checkpoint(b.job);
  cr_assert_gt(sp, 0, "no savepoint was taken");
  destroy(&b);
  for (int k = 0; k < KEYS; k++)
    cr_assert_eq(s.n_finals[k], 0, "run 1 must stop before its input ends");

  cr_assert_eq(weir_checkpoint_describe(dir, sp, &text), 0);
  cr_assert(strstr(text, "operator count: parallelism 2") != NULL, "%s", text);
  cr_assert(strstr(text, "source gen subtask 0 position") != NULL, "%s", text);
  free(text);

  /* Run 2: parallelism 3 restores the keyed counts and finishes them. */
  o.count_par = 3;
  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_run(b.job), 0, "%s", weir_job_error(b.job));
  weir_job_checkpoint_stats(b.job, &st);
  cr_assert_eq(st.restored_id, sp);
  destroy(&b);
  seen_check(&s, per_key);
  free(dir);
}

/* ---- restore mismatches ------------------------------------------------------------------- */

static int drop_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  (void)recs;
  (void)n;
  return 0;
}

static char *dir_with_a_checkpoint(void) {
  char *dir = temp_dir();
  /* Unbounded, so the savepoint cannot race with the end of the input. */
  struct job_opts o = {dir, NULL, 0, 1, 0, NULL, drop_cb, NULL};
  struct built b;

  quiet();
  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_start(b.job), 0);
  cr_assert_eq(weir_job_stop_with_savepoint(b.job), 0);
  cr_assert_eq(weir_job_wait(b.job), 0);
  cr_assert_gt(weir_job_last_checkpoint(b.job), 0);
  destroy(&b);
  return dir;
}

Test(checkpoint, restore_refuses_state_of_an_unknown_uid) {
  char *dir = dir_with_a_checkpoint();
  struct job_opts o = {dir, NULL, 2000, 1, 0, "renamed-count", drop_cb, NULL};
  struct built b;

  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_start(b.job), WEIR_EINVAL);
  cr_assert(strstr(weir_job_error(b.job), "uid 'count'") != NULL, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "allow_non_restored_state") != NULL);
  destroy(&b);

  /* Allowed on purpose: the old state is dropped and the job runs. */
  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_set_allow_non_restored_state(b.job, true), 0);
  cr_assert_eq(weir_job_run(b.job), 0, "%s", weir_job_error(b.job));
  destroy(&b);
  free(dir);
}

Test(checkpoint, restore_refuses_a_changed_max_parallelism) {
  char *dir = dir_with_a_checkpoint();
  struct job_opts o = {dir, NULL, 2000, 1, 0, NULL, drop_cb, NULL};
  struct built b;

  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_set_max_parallelism(b.job, 64), 0);
  cr_assert_eq(weir_job_start(b.job), WEIR_EINVAL);
  cr_assert(strstr(weir_job_error(b.job), "max parallelism 128") != NULL, "%s",
            weir_job_error(b.job));
  destroy(&b);
  free(dir);
}

Test(checkpoint, restore_refuses_a_missing_checkpoint_id) {
  char *dir = dir_with_a_checkpoint();
  struct job_opts o = {dir, NULL, 2000, 1, 0, NULL, drop_cb, NULL};
  struct built b;

  cr_assert_eq(build(&o, &b), 0);
  cr_assert_eq(weir_job_set_restore_checkpoint(b.job, 999), 0);
  cr_assert_eq(weir_job_start(b.job), WEIR_ENOTFOUND);
  cr_assert(strstr(weir_job_error(b.job), "checkpoint 999") != NULL, "%s", weir_job_error(b.job));
  destroy(&b);
  free(dir);
}

/* A checkpoint directory serves one running job, across processes too. */
Test(checkpoint, a_directory_in_use_by_another_process_is_refused, .timeout = 60) {
  char *dir = temp_dir(), out[512];
  struct job_opts o = {NULL, NULL, 1000, 1, 0, NULL, drop_cb, NULL};
  struct built b;
  int status, rc = 0, tries;
  pid_t pid;

  snprintf(out, sizeof(out), "%s/out.txt", dir);
  pid = spawn_child(dir, out, 100000000); /* runs for minutes unless killed */
  cr_assert_neq(pid, -1);
  quiet();
  o.dir = dir;
  /* The child holds the lock once its first checkpoint flushed output into `out`. */
  for (tries = 0; tries < 1000; tries++) {
    struct stat st;

    if (stat(out, &st) == 0 && st.st_size > 0)
      break;
    sleep_ms(10);
  }
  cr_assert_lt(tries, 1000, "the child job never produced output");
  cr_assert_eq(build(&o, &b), 0);
  rc = weir_job_start(b.job);
  if (rc == WEIR_EEXIST)
    cr_assert(strstr(weir_job_error(b.job), "in use by another running job") != NULL, "%s",
              weir_job_error(b.job));
  destroy(&b);
  kill(pid, SIGKILL);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert_eq(rc, WEIR_EEXIST, "a second job started on a directory in use");
  free(dir);
}
