/*
 * Storage faults of running jobs with checkpoints: the LMDB map filling up, the file system
 * filling up (a small tmpfs), the newest checkpoint damaged on disk, and the directory locked
 * by another process. Each must give a clear error (what, where, what to do), the job must
 * follow the tolerable-failure rule, and the last good checkpoint must stay restorable: a new
 * job restores it and its final counts are exact.
 *
 * The job: a paced generator (keys "k0".."k<KEYS-1>", RECORDS records) -> key_by -> a keyed
 * counter (value state, parallelism 2) whose finish adds each key's final count to a shared
 * table. A run restored from any consistent checkpoint and run to the end of the input sees
 * every key exactly RECORDS / KEYS times.
 *
 * Every test works in its own mkdtemp directory; Criterion forks per test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "runtime/ckpt_store_int.h"

/* Distinct keys: enough that the keyed state outgrows a 1 MiB map. */
#define KEYS 40000
/* Records of every run: each key is seen RECORDS / KEYS times. */
#define RECORDS 120000
/* Generous bound for every polled condition (sanitizer builds are slow). */
#define WAIT_MS 120000
/* Bytes of captured log text kept. */
#define LOG_CAP (256 * 1024)

/* ---- fixture --------------------------------------------------------------------------------- */

static char root[256];
static char mounted[300]; /* a tmpfs mounted in the shared namespace, unmounted at teardown */

/* Everything weir logs, for the assertions on messages. */
static struct {
  pthread_mutex_t mu;
  char text[LOG_CAP];
  size_t len;
} logs = {PTHREAD_MUTEX_INITIALIZER, "", 0};

/* Set when a job of this file failed (weir__job_fail logs "job 'sfault': ..." as an error). */
static atomic_bool job_failed;

static void capture(void *data, weir_log_level level, const char *msg) {
  size_t n = strlen(msg);

  (void)data;
  if (level == WEIR_LOG_ERROR && strncmp(msg, "job 'sfault'", 12) == 0)
    atomic_store(&job_failed, true);
  pthread_mutex_lock(&logs.mu);
  if (logs.len + n + 2 < LOG_CAP) {
    memcpy(logs.text + logs.len, msg, n);
    logs.len += n;
    logs.text[logs.len++] = '\n';
    logs.text[logs.len] = '\0';
  }
  pthread_mutex_unlock(&logs.mu);
}

/* Whether the captured log holds a line containing every one of the strings (NULL-ended). */
static bool logged(const char *first, ...) {
  char line[2048];
  const char *p, *e;
  bool found = false;

  pthread_mutex_lock(&logs.mu);
  for (p = logs.text; *p != '\0' && !found; p = *e != '\0' ? e + 1 : e) {
    va_list ap;
    const char *s;
    size_t n;

    e = strchr(p, '\n');
    if (e == NULL)
      e = p + strlen(p);
    n = (size_t)(e - p) < sizeof(line) - 1 ? (size_t)(e - p) : sizeof(line) - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    found = strstr(line, first) != NULL;
    va_start(ap, first);
    while (found && (s = va_arg(ap, const char *)) != NULL)
      found = strstr(line, s) != NULL;
    va_end(ap);
  }
  pthread_mutex_unlock(&logs.mu);
  return found;
}

static void setup(void) {
  snprintf(root, sizeof(root), "/tmp/weir-sfault-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  mounted[0] = '\0';
  weir_log_set_handler(capture, NULL, WEIR_LOG_INFO);
}

static void teardown(void) {
  char cmd[300];

  if (mounted[0] != '\0')
    umount2(mounted, MNT_DETACH);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", root);
}

TestSuite(storage_faults, .init = setup, .fini = teardown, .timeout = 300);

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

#define CHECK(call)                                                                                \
  do {                                                                                             \
    int check_rc_ = (call);                                                                        \
    cr_assert_eq(check_rc_, 0, "%s: %s", #call, weir_err_name(check_rc_));                         \
  } while (0)

static weir_checkpoint_stats stats_of(const weir_job *job) {
  weir_checkpoint_stats st;

  weir_job_checkpoint_stats(job, &st);
  return st;
}

/* ---- the job --------------------------------------------------------------------------------- */

/* Shared by the generator and the counter of the current run. */
static struct {
  atomic_int pace;          /* 1: the generator sleeps 1 ms every 16 records */
  atomic_ullong processed;  /* records counted by this run */
  atomic_uint finals[KEYS]; /* final count per key, added by the subtasks' finish */
  atomic_int n_finished;
} run;

static void run_reset(int pace) {
  int k;

  atomic_store(&run.pace, pace);
  atomic_store(&run.processed, 0);
  atomic_store(&run.n_finished, 0);
  atomic_store(&job_failed, false);
  for (k = 0; k < KEYS; k++)
    atomic_store(&run.finals[k], 0);
}

static long gen_value(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  (void)data;
  if (atomic_load(&run.pace) && index % 16 == 0)
    sleep_ms(1);
  return snprintf((char *)buf, cap, "%" PRIu64, index);
}

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

struct counter {
  weir_value_state *count;
};

static int count_open(weir_ctx *ctx, void *data, void **inst) {
  struct counter *c = calloc(1, sizeof(*c));

  (void)data;
  if (c == NULL)
    return WEIR_ENOMEM;
  *inst = c;
  return weir_ctx_value_state(ctx, "count", &c->count);
}

static int count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct counter *c = inst;
  size_t i;
  int rc;

  (void)ctx;
  for (i = 0; i < n; i++) {
    uint32_t cnt = 0;
    weir_buf v;

    rc = weir_value_state_get(c->count, recs[i].key, &v);
    if (rc == 0)
      memcpy(&cnt, v.ptr, sizeof(cnt));
    else if (rc != WEIR_ENOTFOUND)
      return rc;
    cnt++;
    rc =
        weir_value_state_put(c->count, recs[i].key, (weir_buf){(const uint8_t *)&cnt, sizeof(cnt)});
    if (rc != 0)
      return rc;
  }
  atomic_fetch_add(&run.processed, n);
  return 0;
}

/* Adds the final count of every key this subtask owns to run.finals. */
static int count_finish(weir_ctx *ctx, void *inst) {
  struct counter *c = inst;
  char k[16];
  int i, rc;

  (void)ctx;
  for (i = 0; i < KEYS; i++) {
    weir_buf key = {(const uint8_t *)k, (size_t)snprintf(k, sizeof(k), "k%d", i)}, v;
    uint32_t cnt;

    rc = weir_value_state_get(c->count, key, &v);
    if (rc == WEIR_EINVAL || rc == WEIR_ENOTFOUND)
      continue; /* another subtask's key, or never seen */
    if (rc != 0)
      return rc;
    memcpy(&cnt, v.ptr, sizeof(cnt));
    atomic_fetch_add(&run.finals[i], cnt);
  }
  atomic_fetch_add(&run.n_finished, 1);
  return 0;
}

static void count_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static int drop_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  (void)recs;
  (void)n;
  return 0;
}

struct opts {
  const char *dir;
  size_t map_size;     /* 0 = default */
  int tolerable;       /* tolerable consecutive checkpoint failures */
  int64_t interval_ms; /* 0 = triggered by the test only */
  uint64_t restore_id; /* 0 = latest */
  int pace;
};

struct built {
  weir_job *job;
  weir_generator *gen;
};

static void build(const struct opts *o, struct built *b) {
  weir_generator_config g = {0};
  weir_operator count = {0};
  int src, keyed, cnt;

  memset(b, 0, sizeof(*b));
  run_reset(o->pace);
  g.count = RECORDS;
  g.key_count = KEYS;
  g.fn = gen_value;
  count.open = count_open;
  count.process = count_process;
  count.finish = count_finish;
  count.close = count_close;
  CHECK(weir_generator_create(&b->gen, &g));
  CHECK(weir_job_create(&b->job, "sfault"));
  CHECK(weir_job_set_checkpoint_dir(b->job, o->dir));
  CHECK(weir_job_set_checkpoint_interval(b->job, o->interval_ms));
  CHECK(weir_job_set_tolerable_checkpoint_failures(b->job, o->tolerable));
  if (o->map_size != 0)
    CHECK(weir_job_set_checkpoint_map_size(b->job, o->map_size));
  if (o->restore_id != 0)
    CHECK(weir_job_set_restore_checkpoint(b->job, o->restore_id));
  CHECK(weir_job_add_generator(b->job, "gen", b->gen, &src));
  CHECK(weir_job_key_by(b->job, src, "by-key", key_of, NULL, &keyed));
  CHECK(weir_job_add_operator(b->job, keyed, "count", &count, NULL, &cnt));
  CHECK(weir_job_set_parallelism(b->job, cnt, 2));
  CHECK(weir_job_add_callback_sink(b->job, cnt, "out", drop_cb, NULL, NULL));
}

static void destroy(struct built *b) {
  weir_job_destroy(b->job);
  weir_generator_destroy(b->gen);
}

/* Every key's final count is exactly RECORDS / KEYS: state restored exactly once. */
static void check_finals_exact(void) {
  int k;

  cr_assert_eq(atomic_load(&run.n_finished), 2, "both counter subtasks must finish");
  for (k = 0; k < KEYS; k++)
    cr_assert_eq(atomic_load(&run.finals[k]), RECORDS / KEYS, "key k%d counted %u times, not %d", k,
                 atomic_load(&run.finals[k]), RECORDS / KEYS);
}

/* Restores checkpoint `want` (found by `restore_id`, 0 = latest) in a new job with a large map,
 * runs it to the end of the input, and checks the counts. */
static void restore_and_check(const char *dir, uint64_t restore_id, uint64_t want) {
  struct opts o = {dir, (size_t)64 << 20, 0, 0, restore_id, 0};
  struct built b;

  build(&o, &b);
  cr_assert_eq(weir_job_run(b.job), 0, "restore run: %s", weir_job_error(b.job));
  cr_assert_eq(stats_of(b.job).restored_id, want, "restored %" PRIu64 ", not %" PRIu64,
               stats_of(b.job).restored_id, want);
  check_finals_exact();
  destroy(&b);
}

/* Whether the current run is still going: it neither failed nor reached its end. */
static bool running(void) {
  return !atomic_load(&job_failed) && atomic_load(&run.n_finished) == 0;
}

/* Polls until the job's stats satisfy `min_completed` and `min_failed`, or it ended. */
static bool wait_stats(weir_job *job, uint64_t min_completed, uint64_t min_failed) {
  int64_t end = now_ms() + WAIT_MS;

  for (;;) {
    weir_checkpoint_stats st = stats_of(job);

    if (st.completed >= min_completed && st.failed >= min_failed)
      return true;
    if (now_ms() > end || !running())
      return false;
    sleep_ms(5);
  }
}

/* ---- LMDB map full ----------------------------------------------------------------------- */

Test(storage_faults, map_full_fails_checkpoints_clearly_and_the_last_good_one_restores) {
  char dir[300];
  struct opts o = {dir, (size_t)1 << 20, 1000000, 20, 0, 1};
  struct built b;
  uint64_t good;
  int rc;

  snprintf(dir, sizeof(dir), "%s/ckpt", root);

  /* Failures tolerated: the job keeps running while its checkpoints fail. */
  build(&o, &b);
  CHECK(weir_job_start(b.job));
  cr_assert(wait_stats(b.job, 1, 2),
            "expected map-full failures; completed %" PRIu64 " failed %" PRIu64 ", processed %llu",
            stats_of(b.job).completed, stats_of(b.job).failed,
            (unsigned long long)atomic_load(&run.processed));
  cr_assert(running(), "the job ended while its checkpoints failed");
  cr_assert(
      logged("MDB_MAP_FULL", dir, "raise its map size", "weir_job_set_checkpoint_map_size", NULL),
      "no clear map-full message in:\n%s", logs.text);
  weir_job_stop(b.job);
  cr_assert_eq(weir_job_wait(b.job), 0, "%s", weir_job_error(b.job));
  destroy(&b);

  /* No failure tolerated: the first one fails the job with the store's reason and code. */
  o.tolerable = 0;
  build(&o, &b);
  rc = weir_job_run(b.job);
  cr_assert_eq(rc, WEIR_ETOOBIG, "run returned %s: %s", weir_err_name(rc), weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), dir) != NULL, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "raise its map size") != NULL, "%s",
            weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "0 consecutive failures are tolerated") != NULL, "%s",
            weir_job_error(b.job));
  cr_assert_lt(atomic_load(&run.processed), RECORDS - 1000, "the run ended before the map filled");
  good = weir_job_last_checkpoint(b.job);
  cr_assert_gt(good, 0);
  cr_log_info("map full: last good checkpoint %" PRIu64 " after %llu records of the second run",
              good, (unsigned long long)atomic_load(&run.processed));
  destroy(&b);

  /* The last good checkpoint restores exactly once, with a raised map size. */
  restore_and_check(dir, 0, good);
}

/* ---- disk full --------------------------------------------------------------------------- */

/* Mounts a `size`-byte tmpfs at `path`: in a private mount namespace when this process may make
 * one (it vanishes with the process), else in the shared one (unmounted at teardown). Returns
 * false, with `why` set, when neither works (not root, no CAP_SYS_ADMIN, seccomp). */
static bool mount_small_tmpfs(const char *path, size_t size, char *why, size_t why_len) {
  char opt[64];

  snprintf(opt, sizeof(opt), "size=%zu,mode=0700", size);
  if (mkdir(path, 0700) != 0) {
    snprintf(why, why_len, "mkdir %s: %s", path, strerror(errno));
    return false;
  }
  /* unshare fails (EINVAL) in a multi-threaded process, e.g. under TSan. */
  if (unshare(CLONE_NEWNS) == 0 && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
      mount("tmpfs", path, "tmpfs", 0, opt) == 0) {
    snprintf(mounted, sizeof(mounted), "%s", path);
    return true;
  }
  if (mount("tmpfs", path, "tmpfs", 0, opt) == 0) {
    snprintf(mounted, sizeof(mounted), "%s", path);
    return true;
  }
  snprintf(why, why_len, "mount tmpfs on %s: %s (needs root / CAP_SYS_ADMIN)", path,
           strerror(errno));
  return false;
}

/* Fills the file system holding `path` with one file, `path`, to the last page. */
static void fill_fs(const char *path) {
  static char block[64 * 1024];
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ssize_t w;

  cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
  memset(block, 'f', sizeof(block));
  do
    w = write(fd, block, sizeof(block));
  while (w > 0);
  cr_assert_eq(errno, ENOSPC, "filling %s: %s", path, strerror(errno));
  /* Page-sized leftovers too, so no LMDB page fits. */
  while (write(fd, block, 4096) > 0)
    ;
  close(fd);
}

Test(storage_faults, disk_full_fails_checkpoints_clearly_and_recovers_when_space_is_freed) {
  char fs[300], dir[400], filler[400], why[1024];
  struct opts o = {dir, (size_t)64 << 20, 1000000, 20, 0, 1};
  struct built b;
  weir_checkpoint_stats st;
  uint64_t good;

  snprintf(fs, sizeof(fs), "%s/fs", root);
  snprintf(dir, sizeof(dir), "%s/ckpt", fs);
  snprintf(filler, sizeof(filler), "%s/filler", fs);
  if (!mount_small_tmpfs(fs, (size_t)8 << 20, why, sizeof(why)))
    cr_skip_test("disk-full test skipped: cannot mount a small tmpfs: %s", why);

  build(&o, &b);
  CHECK(weir_job_start(b.job));
  cr_assert(wait_stats(b.job, 2, 0), "no checkpoint completed before the disk filled");
  fill_fs(filler);
  st = stats_of(b.job);
  cr_assert(wait_stats(b.job, 0, st.failed + 1), "no checkpoint failed on a full disk");
  cr_assert(running(), "the job ended while its checkpoints failed");
  cr_assert(logged("No space left on device", dir, "free space", NULL),
            "no clear disk-full message in:\n%s", logs.text);

  /* Space comes back: checkpoints complete again, in the same running job. */
  cr_assert_eq(unlink(filler), 0);
  st = stats_of(b.job);
  cr_assert(wait_stats(b.job, st.completed + 1, 0),
            "no checkpoint completed after space was freed");
  weir_job_stop(b.job);
  cr_assert_eq(weir_job_wait(b.job), 0, "%s", weir_job_error(b.job));
  good = weir_job_last_checkpoint(b.job);
  destroy(&b);
  restore_and_check(dir, 0, good);

  /* No failure tolerated: a full disk fails the job with ESYS and the message. */
  o.tolerable = 0;
  build(&o, &b);
  CHECK(weir_job_start(b.job));
  cr_assert(wait_stats(b.job, 1, 0), "no checkpoint completed before the disk filled");
  fill_fs(filler);
  cr_assert_eq(weir_job_wait(b.job), WEIR_ESYS, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "No space left on device") != NULL, "%s",
            weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), dir) != NULL, "%s", weir_job_error(b.job));
  good = weir_job_last_checkpoint(b.job);
  destroy(&b);
  cr_assert_eq(unlink(filler), 0);
  restore_and_check(dir, 0, good);
}

/* ---- the newest checkpoint damaged on disk ----------------------------------------------- */

/* Opens the store's LMDB environment directly and flips the last byte of a value: in
 * "weir.blobs" the blob of (id, uid, subtask), or with uid NULL in "weir.checkpoints" the
 * record of checkpoint id. Its frame checksum no longer matches. */
static void corrupt(const char *dir, uint64_t id, const char *uid, uint32_t subtask) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k, v;
  uint8_t key[300], *copy;
  size_t ul = uid != NULL ? strlen(uid) : 0;
  int i;

  for (i = 0; i < 8; i++)
    key[i] = (uint8_t)(id >> (56 - 8 * i));
  k.mv_size = 8;
  if (uid != NULL) {
    memcpy(key + 8, uid, ul);
    key[8 + ul] = 0;
    for (i = 0; i < 4; i++)
      key[9 + ul + i] = (uint8_t)(subtask >> (24 - 8 * i));
    k.mv_size = 13 + ul;
  }
  k.mv_data = key;
  cr_assert_eq(mdb_env_create(&env), 0);
  cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
  cr_assert_eq(mdb_env_set_mapsize(env, WEIR__CKPT_DEFAULT_MAP_SIZE), 0);
  cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, uid != NULL ? "weir.blobs" : "weir.checkpoints", 0, &dbi), 0);
  cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0, "no value for checkpoint %" PRIu64, id);
  cr_assert_gt(v.mv_size, WEIR__CKPT_FRAME_HEADER);
  copy = malloc(v.mv_size);
  cr_assert_not_null(copy);
  memcpy(copy, v.mv_data, v.mv_size);
  copy[v.mv_size - 1] ^= 0x5a;
  v.mv_data = copy;
  cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  free(copy);
}

/* Runs the paced job until two checkpoints completed, then stops it with a savepoint: the
 * directory holds ids[0] < ids[1] < ids[2] (the savepoint, the newest). */
static void three_checkpoints(const char *dir, uint64_t ids[3]) {
  struct opts o = {dir, 0, 0, 0, 0, 1};
  weir_checkpoint_info *infos = NULL;
  struct built b;
  size_t n = 0;

  build(&o, &b);
  CHECK(weir_job_start(b.job));
  while (atomic_load(&run.processed) < 100)
    sleep_ms(2);
  CHECK(weir_job_trigger_checkpoint(b.job));
  cr_assert(wait_stats(b.job, 1, 0));
  CHECK(weir_job_trigger_checkpoint(b.job));
  cr_assert(wait_stats(b.job, 2, 0));
  CHECK(weir_job_stop_with_savepoint(b.job));
  cr_assert_eq(weir_job_wait(b.job), 0, "%s", weir_job_error(b.job));
  cr_assert_lt(atomic_load(&run.processed), RECORDS, "the input ended before the savepoint");
  destroy(&b);
  CHECK(weir_checkpoint_list(dir, &infos, &n));
  cr_assert_eq(n, 3);
  ids[0] = infos[0].id;
  ids[1] = infos[1].id;
  ids[2] = infos[2].id;
  free(infos);
}

Test(storage_faults, damaged_newest_blob_is_named_and_restore_falls_back_to_the_previous) {
  char dir[300], want[512];
  uint64_t ids[3];
  struct opts o = {dir, 0, 0, 0, 0, 0};
  struct built b;
  int rc;

  snprintf(dir, sizeof(dir), "%s/ckpt", root);
  three_checkpoints(dir, ids);
  corrupt(dir, ids[2], "count", 1);

  /* Asked for by id: refused at start, naming checkpoint, uid, subtask and the damage. */
  o.restore_id = ids[2];
  build(&o, &b);
  rc = weir_job_start(b.job);
  cr_assert_eq(rc, WEIR_EPARSE, "start returned %s: %s", weir_err_name(rc), weir_job_error(b.job));
  snprintf(want, sizeof(want), "[ckpt %" PRIu64 "] snapshot of uid 'count' subtask 1", ids[2]);
  cr_assert(strstr(weir_job_error(b.job), want) != NULL, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "checksum mismatch") != NULL, "%s",
            weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), dir) != NULL, "%s", weir_job_error(b.job));
  destroy(&b);

  /* The previous checkpoint, asked for by id, restores exactly. */
  restore_and_check(dir, ids[1], ids[1]);

  /* An automatic restore skips the damaged newest one with a warning naming it. */
  restore_and_check(dir, 0, ids[1]);
  snprintf(want, sizeof(want), "checkpoint %" PRIu64 " in %s is damaged", ids[2], dir);
  cr_assert(logged(want, "falling back to checkpoint", "subtask 1", NULL), "no warning in:\n%s",
            logs.text);
}

Test(storage_faults, damaged_newest_record_falls_back_and_all_damaged_is_an_error) {
  char dir[300], want[512];
  uint64_t ids[3];
  struct opts o = {dir, 0, 0, 0, 0, 0};
  struct built b;
  int rc;

  snprintf(dir, sizeof(dir), "%s/ckpt", root);
  three_checkpoints(dir, ids);
  corrupt(dir, ids[2], NULL, 0); /* the checkpoint record (metadata) of the newest */
  corrupt(dir, ids[1], "count", 0);

  /* ids[2]'s record and ids[1]'s blob are damaged: the restore goes back to ids[0]. */
  restore_and_check(dir, 0, ids[0]);
  snprintf(want, sizeof(want), "[ckpt %" PRIu64 "] %s: checkpoint record is damaged", ids[2], dir);
  cr_assert(logged(want, NULL), "no warning in:\n%s", logs.text);

  /* Every checkpoint damaged: an error naming the newest, never a silent fresh start. */
  corrupt(dir, ids[0], "count", 0);
  build(&o, &b);
  rc = weir_job_start(b.job);
  cr_assert_eq(rc, WEIR_EPARSE, "start returned %s: %s", weir_err_name(rc), weir_job_error(b.job));
  snprintf(want, sizeof(want), "no intact checkpoint in %s; the newest, %" PRIu64, dir, ids[2]);
  cr_assert(strstr(weir_job_error(b.job), want) != NULL, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "move the directory aside") != NULL, "%s",
            weir_job_error(b.job));
  destroy(&b);
}

/* ---- the directory locked by another process --------------------------------------------- */

Test(storage_faults, a_directory_locked_by_another_process_names_dir_and_holder) {
  char dir[300], out[400], want[64];
  struct opts o = {dir, 0, 0, 0, 0, 0};
  struct built b;
  struct stat st;
  int status, rc, tries;
  pid_t pid;

  snprintf(dir, sizeof(dir), "%s/ckpt", root);
  snprintf(out, sizeof(out), "%s/out.txt", root);
  /* ckpt_crash_child runs the ckpt_job.h job on `dir` for minutes unless killed; TSan cannot
   * start threads in a child forked from a multi-threaded test, hence exec. */
  pid = fork();
  if (pid == 0) {
    execl(WEIR_CKPT_CHILD, WEIR_CKPT_CHILD, dir, out, "100000000", (char *)NULL);
    _exit(127);
  }
  cr_assert_neq(pid, -1);
  /* The child holds the lock once its first checkpoint flushed output into `out`. */
  for (tries = 0; tries < 6000 && !(stat(out, &st) == 0 && st.st_size > 0); tries++)
    sleep_ms(10);
  build(&o, &b);
  rc = tries < 6000 ? weir_job_start(b.job) : WEIR_ETIMEDOUT;
  kill(pid, SIGKILL);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert_eq(rc, WEIR_EEXIST, "start returned %s: %s", weir_err_name(rc), weir_job_error(b.job));
  snprintf(want, sizeof(want), "process %ld holds", (long)pid);
  cr_assert(strstr(weir_job_error(b.job), dir) != NULL, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), want) != NULL, "%s", weir_job_error(b.job));
  cr_assert(strstr(weir_job_error(b.job), "give each job its own directory") != NULL, "%s",
            weir_job_error(b.job));
  destroy(&b);

  /* The holder is gone (its flock died with it): the directory is usable again. */
  build(&o, &b);
  CHECK(weir_job_start(b.job));
  weir_job_stop(b.job);
  cr_assert_eq(weir_job_wait(b.job), 0, "%s", weir_job_error(b.job));
  destroy(&b);
}
