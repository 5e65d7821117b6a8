/*
 * test_kinesis_source_crash.c: the Kinesis source's headline guarantee: a keyed count fed by
 * the source keeps exactly-once state through repeated kill -9 and restart, with positions
 * restored from the checkpoints (including restarts in the middle of a KPL aggregate and
 * restarts with another source parallelism). The job runs in a child process
 * (tests/support/ksrc_crash_child.c) against kinesalite; skipped when `npm ci` has not been run
 * in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/kinesis_fixture.h"
#include "../support/kinesis_server.c"
#include "../support/ksrc_job.h"

static struct weir_test_kserver srv;
static weir_kinesis_client *cli;
static char dir[64];

static void teardown(void) {
  kfx_teardown(&srv, &cli, dir);
}

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
}

static void start_with_stream(const char *stream, uint32_t shards) {
  kfx_start(&srv, &cli, "kinesalite");
  kfx_make_stream(cli, stream, shards);
}

static pid_t spawn_child(const char *stream, const char *out, const char *mode, int par) {
  char p[16];
  pid_t pid;

  snprintf(p, sizeof(p), "%d", par);
  pid = fork();
  if (pid == 0) {
    execl(WEIR_KSRC_CHILD, WEIR_KSRC_CHILD, srv.endpoint, stream, dir, out, mode, p, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

TestSuite(kinesis_source_crash, .init = quiet, .fini = teardown, .timeout = 280);

/*
 * 5000 user records over 4 shards (1000 in KPL aggregates of 10, 3000 plain, 1000 aggregated),
 * read slowly (25 Kinesis records per GetRecords, 7 user records per poll, 1 ms per record,
 * checkpoints every 50 ms) by a
 * child killed with SIGKILL at a random time 12 times, each run with source parallelism
 * 1, 2 or 3 in turn; a last run reads to the end. Every key's count must be exactly its number
 * of records: a lost record makes it smaller, a record counted twice larger.
 */
Test(kinesis_source_crash, sigkill_loop_keeps_counts_exact) {
  const long plain = 3000, aggregated = 2000, total = plain + aggregated;
  unsigned long counts[KSRC_KEYS] = {0};
  weir_checkpoint_info *infos = NULL;
  size_t n_ckpt = 0;
  char out[128];
  int kills = 0, status, finals;
  pid_t pid;

  start_with_stream("crash", 4);
  cr_assert_eq(ksrc_put_aggregated(cli, "crash", 0, aggregated / 2, 10), 0);
  cr_assert_eq(ksrc_put_plain(cli, "crash", aggregated / 2, plain), 0);
  cr_assert_eq(ksrc_put_aggregated(cli, "crash", aggregated / 2 + plain, aggregated / 2, 10), 0);
  kfx_make_dir(dir, sizeof(dir), "weir-ksrc-crash");
  snprintf(out, sizeof(out), "%s/out.txt", dir);
  srand((unsigned)getpid());
  for (int i = 0; i < 12; i++) {
    pid = spawn_child("crash", out, "run", 1 + i % 3);
    cr_assert_gt(pid, 0);
    sleep_ms(250 + rand() % 500);
    if (kill(pid, SIGKILL) == 0)
      kills++;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "run %d ended by itself (exit %d): it failed", i,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  cr_assert_geq(kills, 10, "only %d runs were killed", kills);
  cr_assert_eq(weir_checkpoint_list(dir, &infos, &n_ckpt), 0);
  cr_assert_geq(n_ckpt, 1, "no checkpoint completed in the killed runs");
  free(infos);

  pid = spawn_child("crash", out, "final", 2);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "final run failed");
  finals = ksrc_read_finals(out, counts);
  {
    char rp[160];
    long long read_last = -1;
    FILE *f;

    snprintf(rp, sizeof(rp), "%s.read", out);
    cr_assert_not_null(f = fopen(rp, "r"));
    cr_assert_eq(fscanf(f, "%lld", &read_last), 1);
    fclose(f);
    /* The last run resumed from a checkpoint: it read only what the killed runs had not
     * checkpointed. */
    cr_assert_lt(read_last, total, "the final run read everything (%lld): nothing was restored",
                 read_last);
  }
  cr_assert_eq(finals, KSRC_KEYS, "%d FINAL lines, expected %d", finals, KSRC_KEYS);
  for (int k = 0; k < KSRC_KEYS; k++)
    cr_assert_eq(counts[k], (unsigned long)(total / KSRC_KEYS),
                 "key k%d counted %lu times, "
                 "written %ld times",
                 k, counts[k], total / KSRC_KEYS);
}
