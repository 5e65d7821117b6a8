/* test_ckpt_store.c: the LMDB checkpoint store (runtime/ckpt_store.c). Each test works in its
 * own mkdtemp directory; Criterion forks per test, so every environment is opened after the
 * fork, inside the test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt_store_int.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static char root[256];
static char logbuf[8192];

static void capture_log(void *data, weir_log_level level, const char *msg) {
  size_t n = strlen(logbuf);

  (void)data;
  (void)level;
  snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static void setup(void) {
  snprintf(root, sizeof(root), "/tmp/weir-ckpt-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  logbuf[0] = '\0';
  weir_log_set_handler(capture_log, NULL, WEIR_LOG_DEBUG);
}

static void teardown(void) {
  char cmd[300];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", root);
}

TestSuite(ckpt_store, .init = setup, .fini = teardown);

static const char *job_dir(void) {
  static char d[300];

  snprintf(d, sizeof(d), "%s/job", root);
  return d;
}

static struct weir__ckpt_store *open_store(unsigned retain, size_t map_size) {
  struct weir__ckpt_store_opts o;
  struct weir__ckpt_store *s = NULL;
  int rc;

  weir__ckpt_store_opts_init(&o);
  if (retain != 0)
    o.retain = retain;
  if (map_size != 0)
    o.map_size = map_size;
  rc = weir__ckpt_store_open(job_dir(), &o, &s);
  cr_assert_eq(rc, 0, "open: %s (%s)", weir_err_name(rc), weir__ckpt_store_last_error());
  return s;
}

static weir_buf sbuf(const char *s) {
  weir_buf b = {(const uint8_t *)s, strlen(s)};
  return b;
}

/* Begins `id`, stores blobs for uid "op" (2 subtasks) and "src" (1), commits. */
static void full_checkpoint(struct weir__ckpt_store *s, uint64_t id) {
  Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT;
  Weir__Ckpt__OperatorInfo op = WEIR__CKPT__OPERATOR_INFO__INIT, *ops[1] = {&op};
  uint64_t sizes[2];
  char blob[64];
  int i;

  cr_assert_eq(weir__ckpt_store_begin(s, id), 0, "%s", weir__ckpt_store_last_error());
  for (i = 0; i < 2; i++) {
    snprintf(blob, sizeof(blob), "ckpt %llu op subtask %d", (unsigned long long)id, i);
    sizes[i] = strlen(blob);
    cr_assert_eq(weir__ckpt_store_put(s, id, "op", i, sbuf(blob)), 0, "%s",
                 weir__ckpt_store_last_error());
  }
  cr_assert_eq(weir__ckpt_store_put(s, id, "src", 0, sbuf("position")), 0);
  op.uid = "op";
  op.parallelism = 2;
  op.n_subtask_state_bytes = 2;
  op.subtask_state_bytes = sizes;
  op.key_count = 7;
  m.start_time_ms = 1000 * (int64_t)id;
  m.end_time_ms = 1000 * (int64_t)id + 5;
  m.job_name = "test-job";
  m.max_parallelism = 128;
  m.n_operators = 1;
  m.operators = ops;
  cr_assert_eq(weir__ckpt_store_commit(s, id, &m), 0, "%s", weir__ckpt_store_last_error());
}

static void assert_ids(struct weir__ckpt_store *s, const uint64_t *ids, size_t n) {
  struct weir__ckpt_info *l;
  size_t cnt, i;

  cr_assert_eq(weir__ckpt_store_list(s, &l, &cnt), 0);
  cr_assert_eq(cnt, n, "expected %zu checkpoints, found %zu", n, cnt);
  for (i = 0; i < n; i++)
    cr_assert_eq(l[i].id, ids[i], "checkpoint %zu: %llu, expected %llu", i,
                 (unsigned long long)l[i].id, (unsigned long long)ids[i]);
  free(l);
}

/* Runs `fn` on the raw LMDB environment of the job directory (the store must be closed). */
static void with_raw_env(void (*fn)(MDB_txn *txn, MDB_dbi meta, MDB_dbi blobs)) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta, blobs;

  cr_assert_eq(mdb_env_create(&env), 0);
  cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
  cr_assert_eq(mdb_env_open(env, job_dir(), 0, 0600), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "weir.meta", 0, &meta), 0);
  cr_assert_eq(mdb_dbi_open(txn, "weir.blobs", 0, &blobs), 0);
  fn(txn, meta, blobs);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

/* ---- basics --------------------------------------------------------------------------------- */

Test(ckpt_store, commit_latest_list_and_read) {
  struct weir__ckpt_store *s = open_store(0, 0);
  Weir__Ckpt__CheckpointMetadata *m;
  struct weir__ckpt_info *l;
  uint64_t latest, ids[] = {1, 2};
  uint8_t *p;
  size_t len, n;

  cr_assert_eq(weir__ckpt_store_latest(s, &latest), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_list(s, &l, &n), 0);
  cr_assert_eq(n, 0);
  full_checkpoint(s, 1);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 1);
  full_checkpoint(s, 2);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 2);
  assert_ids(s, ids, 2);

  cr_assert_eq(weir__ckpt_store_read_meta(s, 2, &m), 0);
  cr_assert_eq(m->format_version, WEIR__CKPT_META_FORMAT_VERSION);
  cr_assert_eq(m->checkpoint_id, 2);
  cr_assert_str_eq(m->job_name, "test-job");
  cr_assert_eq(m->start_time_ms, 2000);
  cr_assert_eq(m->end_time_ms, 2005);
  cr_assert_eq(m->max_parallelism, 128);
  cr_assert_eq(m->n_operators, 1);
  cr_assert_str_eq(m->operators[0]->uid, "op");
  cr_assert_eq(m->operators[0]->n_subtask_state_bytes, 2);
  cr_assert_eq(m->operators[0]->key_count, 7);
  weir__ckpt_meta_free(m);

  cr_assert_eq(weir__ckpt_store_get_blob(s, 2, "op", 1, &p, &len), 0);
  cr_assert_eq(len, strlen("ckpt 2 op subtask 1"));
  cr_assert_eq(memcmp(p, "ckpt 2 op subtask 1", len), 0);
  free(p);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 2, "op", 2, &p, &len), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 2, "o", 0, &p, &len), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_read_meta(s, 9, &m), WEIR_ENOTFOUND);
  weir__ckpt_store_close(s);

  /* Everything survives a reopen. */
  s = open_store(0, 0);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 2);
  assert_ids(s, ids, 2);
  weir__ckpt_store_close(s);
}

struct seen {
  int subtasks[8];
  char blobs[8][64];
  int n;
};

static int collect(void *data, int subtask, weir_buf blob) {
  struct seen *sn = data;

  cr_assert_lt(sn->n, 8);
  cr_assert_lt(blob.len, 64);
  sn->subtasks[sn->n] = subtask;
  memcpy(sn->blobs[sn->n], blob.ptr, blob.len);
  sn->blobs[sn->n][blob.len] = '\0';
  sn->n++;
  return 0;
}

static int stop_at_first(void *data, int subtask, weir_buf blob) {
  (void)data;
  (void)subtask;
  (void)blob;
  return 42;
}

Test(ckpt_store, foreach_blob_by_uid) {
  struct weir__ckpt_store *s = open_store(0, 0);
  struct seen sn = {{0}, {{0}}, 0};
  int i;

  cr_assert_eq(weir__ckpt_store_begin(s, 3), 0);
  /* Out of order, with a uid that is a prefix of another. */
  cr_assert_eq(weir__ckpt_store_put(s, 3, "op", 2, sbuf("two")), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 3, "op", 0, sbuf("zero")), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 3, "opx", 0, sbuf("other")), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 3, "o", 0, sbuf("short")), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 3, "op", 1, sbuf("one")), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 3, "op", 1, sbuf("again")), WEIR_EEXIST);
  cr_assert_eq(weir__ckpt_store_foreach_blob(s, 3, "op", collect, &sn), 0);
  cr_assert_eq(sn.n, 3);
  for (i = 0; i < 3; i++)
    cr_assert_eq(sn.subtasks[i], i);
  cr_assert_str_eq(sn.blobs[0], "zero");
  cr_assert_str_eq(sn.blobs[1], "one");
  cr_assert_str_eq(sn.blobs[2], "two");
  cr_assert_eq(weir__ckpt_store_foreach_blob(s, 3, "op", stop_at_first, NULL), 42);
  sn.n = 0;
  cr_assert_eq(weir__ckpt_store_foreach_blob(s, 3, "none", collect, &sn), 0);
  cr_assert_eq(sn.n, 0);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, permissions_dir_0700_files_0600) {
  struct weir__ckpt_store *s;
  char path[400];
  struct stat st;

  umask(0); /* the store must not rely on the process umask */
  s = open_store(0, 0);
  full_checkpoint(s, 1);
  cr_assert_eq(stat(job_dir(), &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  cr_assert_eq(st.st_mode & 0777, 0700, "dir mode %o", st.st_mode & 0777);
  snprintf(path, sizeof(path), "%s/data.mdb", job_dir());
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "data.mdb mode %o", st.st_mode & 0777);
  snprintf(path, sizeof(path), "%s/lock.mdb", job_dir());
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "lock.mdb mode %o", st.st_mode & 0777);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, abort_deletes_blobs) {
  struct weir__ckpt_store *s = open_store(0, 0);
  Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT;
  uint64_t latest, ids[] = {1};
  uint8_t *p;
  size_t len;

  full_checkpoint(s, 1);
  cr_assert_eq(weir__ckpt_store_begin(s, 2), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 2, "op", 0, sbuf("x")), 0);
  cr_assert_eq(weir__ckpt_store_abort(s, 2), 0);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 2, "op", 0, &p, &len), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_put(s, 2, "op", 1, sbuf("late")), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_commit(s, 2, &m), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_abort(s, 2), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_abort(s, 1), WEIR_ESTATE);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 1);
  assert_ids(s, ids, 1);
  /* Later ids proceed after an abort. */
  full_checkpoint(s, 3);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, retention_keeps_exactly_k) {
  struct weir__ckpt_store *s = open_store(3, 0);
  uint64_t id, ids[] = {8, 9, 10}, ids2[] = {10, 12, 13};
  struct seen sn = {{0}, {{0}}, 0};
  uint8_t *p;
  size_t len;

  for (id = 1; id <= 10; id++)
    full_checkpoint(s, id);
  assert_ids(s, ids, 3);
  for (id = 1; id <= 7; id++) {
    cr_assert_eq(weir__ckpt_store_get_blob(s, id, "op", 0, &p, &len), WEIR_ENOTFOUND);
    cr_assert_eq(weir__ckpt_store_foreach_blob(s, id, "src", collect, &sn), 0);
  }
  cr_assert_eq(sn.n, 0, "blobs of deleted checkpoints remain");
  /* A pending checkpoint older than a newly committed one is garbage. */
  cr_assert_eq(weir__ckpt_store_begin(s, 11), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 11, "op", 0, sbuf("orphan")), 0);
  full_checkpoint(s, 12);
  full_checkpoint(s, 13);
  assert_ids(s, ids2, 3);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 11, "op", 0, &p, &len), WEIR_ENOTFOUND);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, retain_one) {
  struct weir__ckpt_store *s = open_store(1, 0);
  uint64_t ids[] = {5};

  full_checkpoint(s, 4);
  full_checkpoint(s, 5);
  assert_ids(s, ids, 1);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, ids_must_increase) {
  struct weir__ckpt_store *s = open_store(0, 0);
  Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT, *rm;
  struct weir__ckpt_info *l;
  size_t n;

  cr_assert_eq(weir__ckpt_store_begin(s, 0), WEIR_EINVAL);
  full_checkpoint(s, 5);
  cr_assert_eq(weir__ckpt_store_begin(s, 5), WEIR_EINVAL);
  cr_assert_str_eq(weir__ckpt_store_last_error(),
                   "[ckpt 5] checkpoint ids must increase: the store already holds 5 (latest "
                   "complete 5)");
  cr_assert_eq(weir__ckpt_store_begin(s, 3), WEIR_EINVAL);
  cr_assert_eq(weir__ckpt_store_begin(s, 7), 0);
  cr_assert_eq(weir__ckpt_store_begin(s, 6), WEIR_EINVAL, "below a pending id");
  cr_assert_eq(weir__ckpt_store_begin(s, 7), WEIR_EINVAL);
  cr_assert_eq(weir__ckpt_store_commit(s, 5, &m), WEIR_ESTATE);
  cr_assert_eq(weir__ckpt_store_commit(s, 4, &m), WEIR_ENOTFOUND);
  cr_assert_eq(weir__ckpt_store_read_meta(s, 7, &rm), WEIR_ESTATE, "pending has no metadata");
  cr_assert_eq(weir__ckpt_store_list(s, &l, &n), 0);
  cr_assert_eq(n, 2);
  cr_assert(l[0].complete && !l[1].complete);
  free(l);
  cr_assert_eq(weir__ckpt_store_commit(s, 7, &m), 0);
  cr_assert_eq(weir__ckpt_store_commit(s, 7, &m), WEIR_ESTATE);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, second_open_in_process_refused) {
  struct weir__ckpt_store *s = open_store(0, 0), *t = NULL;
  char other[400];

  cr_assert_eq(weir__ckpt_store_open(job_dir(), NULL, &t), WEIR_EEXIST);
  /* The same directory under another name is the same environment. */
  snprintf(other, sizeof(other), "%s/../job", job_dir());
  cr_assert_eq(weir__ckpt_store_open(other, NULL, &t), WEIR_EEXIST);
  weir__ckpt_store_close(s);
  cr_assert_eq(weir__ckpt_store_open(other, NULL, &t), 0);
  weir__ckpt_store_close(t);
}

/* ---- crashes -------------------------------------------------------------------------------- */

Test(ckpt_store, sigkill_before_commit_leaves_latest) {
  struct weir__ckpt_store *s = open_store(0, 0);
  uint64_t latest, ids[] = {1, 3};
  int status;
  pid_t pid;

  full_checkpoint(s, 1);
  weir__ckpt_store_close(s); /* LMDB: no environment open across fork */

  pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    struct weir__ckpt_store *c = NULL;
    uint8_t big[100000];

    memset(big, 'x', sizeof(big));
    if (weir__ckpt_store_open(job_dir(), NULL, &c) != 0 || weir__ckpt_store_begin(c, 2) != 0)
      _exit(1);
    for (int i = 0; i < 4; i++) {
      weir_buf b = {big, sizeof(big)};
      if (weir__ckpt_store_put(c, 2, "op", i, b) != 0)
        _exit(2);
    }
    raise(SIGKILL); /* dies with blobs written and no commit */
    _exit(3);
  }
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);

  s = open_store(0, 0);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 1);
  /* The half-written checkpoint is pending; ids keep increasing past it and the next commit
   * collects it. */
  cr_assert_eq(weir__ckpt_store_begin(s, 2), WEIR_EINVAL);
  full_checkpoint(s, 3);
  assert_ids(s, ids, 2);
  weir__ckpt_store_close(s);
}

static int die_inside_read_txn(void *data, int subtask, weir_buf blob) {
  (void)data;
  (void)subtask;
  (void)blob;
  raise(SIGKILL);
  return 0;
}

/*
 * A process killed inside a read transaction leaves its reader slot behind. LMDB resets the
 * reader table when the first process opens the environment, so the slot only matters (and
 * mdb_reader_check only has work) while another process keeps the environment open: child A
 * holds it, child B dies in a read transaction, then the parent opens and must clear B's slot.
 */
Test(ckpt_store, sigkill_inside_read_txn_reader_check_at_open) {
  struct weir__ckpt_store *s = open_store(0, 0);
  int ready[2], hold[2], status;
  pid_t holder, victim;
  uint64_t latest;
  char c;

  full_checkpoint(s, 1);
  weir__ckpt_store_close(s);
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(hold), 0);
  holder = fork();
  cr_assert_neq(holder, -1);
  if (holder == 0) {
    struct weir__ckpt_store *h = NULL;

    close(ready[0]);
    close(hold[1]);
    if (weir__ckpt_store_open(job_dir(), NULL, &h) != 0)
      _exit(1);
    if (write(ready[1], "r", 1) != 1)
      _exit(2);
    while (read(hold[0], &c, 1) > 0) /* until the parent closes its end */
      ;
    weir__ckpt_store_close(h);
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  cr_assert_eq(read(ready[0], &c, 1), 1, "holder did not open the store");

  victim = fork();
  cr_assert_neq(victim, -1);
  if (victim == 0) {
    struct weir__ckpt_store *v = NULL;

    if (weir__ckpt_store_open(job_dir(), NULL, &v) != 0)
      _exit(1);
    weir__ckpt_store_foreach_blob(v, 1, "op", die_inside_read_txn, NULL);
    _exit(2);
  }
  cr_assert_eq(waitpid(victim, &status, 0), victim);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);

  logbuf[0] = '\0';
  s = open_store(0, 0);
  cr_assert(strstr(logbuf, "cleared 1 stale reader slot") != NULL, "log: %s", logbuf);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 1);
  full_checkpoint(s, 2);
  weir__ckpt_store_close(s);
  close(hold[1]);
  cr_assert_eq(waitpid(holder, &status, 0), holder);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "holder status %d", status);
  close(ready[0]);
}

Test(ckpt_store, use_in_forked_child_refused) {
  struct weir__ckpt_store *s = open_store(0, 0);
  int status;
  pid_t pid;

  full_checkpoint(s, 1);
  pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    uint64_t latest;
    int rc = weir__ckpt_store_latest(s, &latest);

    weir__ckpt_store_close(s); /* must not touch the parent's environment */
    _exit(rc == WEIR_ESTATE ? 0 : 1);
  }
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  full_checkpoint(s, 2); /* the parent's environment is intact */
  weir__ckpt_store_close(s);
}

/* ---- formats -------------------------------------------------------------------------------- */

static void set_version_99(MDB_txn *txn, MDB_dbi meta, MDB_dbi blobs) {
  uint8_t v99[4] = {0, 0, 0, 99};
  MDB_val k = {14, "format_version"}, v = {4, v99};

  (void)blobs;
  cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
}

Test(ckpt_store, unknown_store_version_is_clear_error) {
  struct weir__ckpt_store *s = open_store(0, 0);

  full_checkpoint(s, 1);
  weir__ckpt_store_close(s);
  with_raw_env(set_version_99);
  s = NULL;
  cr_assert_eq(weir__ckpt_store_open(job_dir(), NULL, &s), WEIR_EPARSE);
  cr_assert_null(s);
  cr_assert(strstr(weir__ckpt_store_last_error(), "format version 99 is not supported") != NULL,
            "%s", weir__ckpt_store_last_error());
  cr_assert(strstr(weir__ckpt_store_last_error(), job_dir()) != NULL);
}

/* Finds the blob of (1, "op", 1) and lets `edit` rewrite it. */
static void (*blob_edit)(MDB_val *v, uint8_t *buf);

static void edit_blob(MDB_txn *txn, MDB_dbi meta, MDB_dbi blobs) {
  uint8_t kb[64] = {0, 0, 0, 0, 0, 0, 0, 1, 'o', 'p', 0, 0, 0, 0, 1}, buf[256];
  MDB_val k = {15, kb}, v;

  (void)meta;
  cr_assert_eq(mdb_get(txn, blobs, &k, &v), 0);
  cr_assert_lt(v.mv_size, sizeof(buf));
  memcpy(buf, v.mv_data, v.mv_size);
  blob_edit(&v, buf);
  v.mv_data = buf;
  cr_assert_eq(mdb_put(txn, blobs, &k, &v, 0), 0);
}

static void truncate_5(MDB_val *v, uint8_t *buf) {
  (void)buf;
  v->mv_size -= 5;
}

static void flip_byte(MDB_val *v, uint8_t *buf) {
  buf[v->mv_size - 3] ^= 0x40;
}

static void header_only(MDB_val *v, uint8_t *buf) {
  (void)buf;
  v->mv_size = 10;
}

static void frame_version_7(MDB_val *v, uint8_t *buf) {
  (void)v;
  buf[4] = 7;
}

static void check_damaged(void (*edit)(MDB_val *, uint8_t *), const char *why) {
  struct weir__ckpt_store *s = open_store(0, 0);
  struct seen sn = {{0}, {{0}}, 0};
  const char *e;
  uint8_t *p;
  size_t len;

  full_checkpoint(s, 1);
  weir__ckpt_store_close(s);
  blob_edit = edit;
  with_raw_env(edit_blob);
  s = open_store(0, 0);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 1, "op", 1, &p, &len), WEIR_EPARSE);
  e = weir__ckpt_store_last_error();
  cr_assert(strstr(e, "[ckpt 1] snapshot of uid 'op' subtask 1 is damaged") != NULL, "%s", e);
  cr_assert(strstr(e, why) != NULL, "'%s' lacks '%s'", e, why);
  cr_assert(strstr(logbuf, e) != NULL, "error not logged");
  /* Iteration stops at the damaged blob, after delivering the good one before it. */
  cr_assert_eq(weir__ckpt_store_foreach_blob(s, 1, "op", collect, &sn), WEIR_EPARSE);
  cr_assert_eq(sn.n, 1);
  /* Other blobs stay readable. */
  cr_assert_eq(weir__ckpt_store_get_blob(s, 1, "op", 0, &p, &len), 0);
  free(p);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, truncated_blob_is_clear_error) {
  check_damaged(truncate_5, "truncated");
}

Test(ckpt_store, corrupt_blob_is_clear_error) {
  check_damaged(flip_byte, "checksum mismatch");
}

Test(ckpt_store, headerless_blob_is_clear_error) {
  check_damaged(header_only, "without a valid header");
}

Test(ckpt_store, foreign_frame_version_is_clear_error) {
  check_damaged(frame_version_7, "frame format version 7 is not supported");
}

/* ---- bounds --------------------------------------------------------------------------------- */

Test(ckpt_store, map_full_is_etoobig_and_store_stays_usable) {
  struct weir__ckpt_store *s = open_store(0, 1 << 20);
  static uint8_t big[2 << 20];
  weir_buf b = {big, sizeof(big)};
  uint64_t latest;

  full_checkpoint(s, 1);
  cr_assert_eq(weir__ckpt_store_begin(s, 2), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 2, "op", 0, b), WEIR_ETOOBIG);
  cr_assert(strstr(weir__ckpt_store_last_error(), "MDB_MAP_FULL") != NULL, "%s",
            weir__ckpt_store_last_error());
  cr_assert(strstr(weir__ckpt_store_last_error(), "raise its map size") != NULL);
  cr_assert(strstr(weir__ckpt_store_last_error(), "[ckpt 2]") != NULL);
  /* The failed put changed nothing; smaller blobs still fit and commit. */
  cr_assert_eq(weir__ckpt_store_abort(s, 2), 0);
  full_checkpoint(s, 3);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 3);
  weir__ckpt_store_close(s);
}

Test(ckpt_store, bad_arguments) {
  struct weir__ckpt_store *s = open_store(0, 0);
  char uid[300];

  memset(uid, 'u', sizeof(uid) - 1);
  uid[sizeof(uid) - 1] = '\0';
  cr_assert_eq(weir__ckpt_store_begin(s, 1), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 1, uid, 0, sbuf("x")), WEIR_EINVAL);
  cr_assert_eq(weir__ckpt_store_put(s, 1, "", 0, sbuf("x")), WEIR_EINVAL);
  cr_assert_eq(weir__ckpt_store_put(s, 1, "op", -1, sbuf("x")), WEIR_EINVAL);
  cr_assert_eq(weir__ckpt_store_commit(s, 1, NULL), WEIR_EINVAL);
  weir__ckpt_store_close(s);
  cr_assert_eq(weir__ckpt_store_open("", NULL, &s), WEIR_EINVAL);
}

/* commit_with: blobs written by the commit itself, with or without an earlier begin. */
Test(ckpt_store, commit_with_writes_held_blobs_in_one_transaction) {
  struct weir__ckpt_store *s = open_store(0, 0);
  Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT;
  struct weir__ckpt_put puts[2] = {{"op", 0, {(const uint8_t *)"zero", 4}},
                                   {"op", 1, {(const uint8_t *)"one", 3}}};
  uint64_t latest;
  uint8_t *p;
  size_t len;

  m.job_name = "test-job";
  m.max_parallelism = 128;
  /* Never begun: the commit records checkpoint 1 and its blobs at once. */
  cr_assert_eq(weir__ckpt_store_commit_with(s, 1, puts, 2, &m), 0, "%s",
               weir__ckpt_store_last_error());
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 1);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 1, "op", 1, &p, &len), 0);
  cr_assert_eq(len, 3);
  cr_assert_eq(memcmp(p, "one", 3), 0);
  free(p);
  /* A complete id cannot be committed again. */
  cr_assert_eq(weir__ckpt_store_commit_with(s, 1, puts, 2, &m), WEIR_ESTATE);
  /* Begun, one blob put early, the other held: both are there after the commit. */
  cr_assert_eq(weir__ckpt_store_begin(s, 2), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 2, "op", 0, puts[0].blob), 0);
  cr_assert_eq(weir__ckpt_store_commit_with(s, 2, &puts[1], 1, &m), 0, "%s",
               weir__ckpt_store_last_error());
  cr_assert_eq(weir__ckpt_store_get_blob(s, 2, "op", 0, &p, &len), 0);
  cr_assert_eq(len, 4);
  free(p);
  cr_assert_eq(weir__ckpt_store_get_blob(s, 2, "op", 1, &p, &len), 0);
  cr_assert_eq(len, 3);
  free(p);
  /* A blob put early and held again is refused, and nothing of checkpoint 3 is left. */
  cr_assert_eq(weir__ckpt_store_begin(s, 3), 0);
  cr_assert_eq(weir__ckpt_store_put(s, 3, "op", 0, puts[0].blob), 0);
  cr_assert_eq(weir__ckpt_store_commit_with(s, 3, puts, 2, &m), WEIR_EEXIST);
  cr_assert_eq(weir__ckpt_store_latest(s, &latest), 0);
  cr_assert_eq(latest, 2);
  /* Without a begin, the id must exceed every id held, pending ones included. */
  cr_assert_eq(weir__ckpt_store_begin(s, 5), 0);
  cr_assert_eq(weir__ckpt_store_commit_with(s, 4, &puts[1], 1, &m), WEIR_EINVAL);
  weir__ckpt_store_close(s);
}
