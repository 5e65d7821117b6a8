/*
 * checkpoint.c: the checkpoint coordinator thread, restore validation at start, and the
 * task-side snapshot / restore / notify steps (see checkpoint_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint_int.h"
#include "ckpt_store_int.h"
#include "log_int.h"
#include "proto/checkpoint.pb-c.h"
#include "state_int.h"

/* Completed-checkpoint durations kept for the p50/p99 statistics. */
#define WEIR_CKPT_DURATIONS 1024

/* What the coordinator gathers about one node during a checkpoint. */
struct node_acc {
  uint64_t *sub_bytes; /* per subtask */
  uint64_t keys;
  bool present;
  uint8_t **pos; /* sources: per subtask position bytes (owned) */
  size_t *pos_len;
};

struct weir__coord {
  weir_job *job;
  struct weir__ckpt_store *store;
  pthread_t thread;
  bool thread_started;
  int lock_fd; /* holds the directory lock (lock_dir) */

  /* Restore: the checkpoint restored from, and its parallelism per node (0 = no state). */
  uint64_t restored_id;
  int *restored_par;

  pthread_mutex_t mu; /* guards everything below and the tasks' checkpoint fields */
  pthread_cond_t cond;
  bool closing;
  bool trigger_now;
  bool savepoint;          /* a savepoint is wanted: the next trigger is one */
  uint64_t savepoint_ckpt; /* id of the savepoint in flight, 0 = none */
  uint64_t last_id;        /* newest id begun in the store */
  uint64_t pending;        /* id in flight, 0 = none */
  bool pending_failed;
  /* First store failure of the pending checkpoint: its code and message (the store keeps its
   * message per thread, and puts run on task threads), used as the abort reason. */
  int store_rc;
  char store_err[400];
  bool begun; /* the pending id was recorded in the store (a large blob went there early) */
  /* Small blobs of the pending checkpoint, written by its one synced commit. */
  struct weir__ckpt_put *held;
  size_t n_held;
  size_t cap_held;
  size_t held_bytes;
  int64_t pending_start; /* monotonic ms */
  int64_t pending_wall;  /* wall clock ms */
  int64_t pending_start_us;
  size_t acks;
  int64_t last_end; /* monotonic ms of the last completion or abort */
  int consecutive_failures;
  char fail_msg[512]; /* set: fail the job (outside mu: lock order is job->mu, coord->mu) */
  int fail_rc;
  bool failed_job;
  struct node_acc *acc; /* per node */
  weir_checkpoint_stats stats;
  int64_t durations[WEIR_CKPT_DURATIONS];
  size_t n_durations;
};

static int64_t wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool node_has_operator_state(const struct node *n) {
  return n->op.snapshot != NULL && !n->barrier_hook;
}

static struct node *node_by_uid(weir_job *job, const char *uid) {
  size_t i;

  for (i = 0; i < job->n_nodes; i++)
    if (strcmp(weir__node_uid(&job->nodes[i]), uid) == 0)
      return &job->nodes[i];
  return NULL;
}

/* ---- restore validation ------------------------------------------------------------------ */

static int verify_cb(void *data, int subtask, weir_buf blob) {
  (void)data;
  (void)subtask;
  (void)blob;
  return 0;
}

/* Verifies the frame (length and checksum) of every snapshot blob of checkpoint `meta` that
 * this job will restore, so on-disk damage shows before any task starts. WEIR_EPARSE names
 * id, uid and subtask in weir__ckpt_store_last_error(). */
static int verify_blobs(weir_job *job, struct weir__coord *c,
                        const Weir__Ckpt__CheckpointMetadata *meta) {
  size_t i;
  int rc;

  for (i = 0; i < meta->n_operators; i++)
    if (node_by_uid(job, meta->operators[i]->uid) != NULL &&
        (rc = weir__ckpt_store_foreach_blob(c->store, meta->checkpoint_id, meta->operators[i]->uid,
                                            verify_cb, NULL)) != 0)
      return rc;
  return 0;
}

/* Whether complete checkpoint `id` reads back intact: metadata and blobs. */
static int probe_intact(weir_job *job, struct weir__coord *c, uint64_t id) {
  Weir__Ckpt__CheckpointMetadata *meta = NULL;
  int rc;

  if ((rc = weir__ckpt_store_read_meta(c->store, id, &meta)) == 0)
    rc = verify_blobs(job, c, meta);
  weir__ckpt_meta_free(meta);
  return rc;
}

/*
 * The checkpoint an automatic restore uses: the newest complete one that reads back intact.
 * A damaged newer one is skipped with a warning (as Flink falls back to an older retained
 * checkpoint); only on-disk damage (WEIR_EPARSE) is skipped, other errors fail the start.
 * *id = 0 when the store holds no complete checkpoint.
 */
static int pick_intact(weir_job *job, struct weir__coord *c, const struct weir__ckpt_info *infos,
                       size_t n, uint64_t *id) {
  char first[400] = "";
  uint64_t newest = 0;
  size_t i;
  int rc;

  *id = 0;
  for (i = n; i-- > 0;) {
    if (!infos[i].complete && !infos[i].damaged)
      continue;
    /* A damaged record fails read_meta with WEIR_EPARSE ("checkpoint record is damaged"). */
    rc = probe_intact(job, c, infos[i].id);
    if (rc == 0) {
      if (newest != 0)
        WEIR_LOG_WARN("restore: checkpoint %" PRIu64 " in %s is damaged (%s); falling back to "
                      "checkpoint %" PRIu64 ", the newest intact one",
                      newest, job->ckpt.dir, first, infos[i].id);
      *id = infos[i].id;
      return 0;
    }
    if (rc != WEIR_EPARSE) {
      weir__job_set_error(job, "restore: checkpoint %" PRIu64 " in %s: %s", infos[i].id,
                          job->ckpt.dir, weir__ckpt_store_last_error());
      return rc;
    }
    if (newest == 0) {
      newest = infos[i].id;
      snprintf(first, sizeof(first), "%s", weir__ckpt_store_last_error());
    }
    WEIR_LOG_WARN("restore: skipping damaged checkpoint %" PRIu64 " in %s", infos[i].id,
                  job->ckpt.dir);
  }
  if (newest == 0)
    return 0;
  weir__job_set_error(job,
                      "restore: no intact checkpoint in %s; the newest, %" PRIu64 ": %s; move "
                      "the directory aside to start without state",
                      job->ckpt.dir, newest, first);
  return WEIR_EPARSE;
}

static int check_restore(weir_job *job, struct weir__coord *c, uint64_t id) {
  Weir__Ckpt__CheckpointMetadata *meta = NULL;
  size_t i;
  int rc;

  if ((rc = weir__ckpt_store_read_meta(c->store, id, &meta)) != 0) {
    weir__job_set_error(job, "restore: checkpoint %" PRIu64 " in %s: %s", id, job->ckpt.dir,
                        weir__ckpt_store_last_error());
    return rc;
  }
  if ((int)meta->max_parallelism != job->max_parallelism) {
    weir__job_set_error(job,
                        "restore: checkpoint %" PRIu64 " was taken with max parallelism %u, "
                        "the job has %d; key groups cannot be remapped",
                        id, meta->max_parallelism, job->max_parallelism);
    rc = WEIR_EINVAL;
    goto out;
  }
  for (i = 0; i < meta->n_operators; i++) {
    const Weir__Ckpt__OperatorInfo *oi = meta->operators[i];
    struct node *n = node_by_uid(job, oi->uid);

    if (n == NULL) {
      if (job->ckpt.allow_non_restored) {
        WEIR_LOG_WARN("restore: dropping state of uid '%s' from checkpoint %" PRIu64
                      ": no operator of this job has it",
                      oi->uid, id);
        continue;
      }
      weir__job_set_error(job,
                          "restore: checkpoint %" PRIu64 " has state for uid '%s', which "
                          "no operator of this job has; set allow_non_restored_state to drop it",
                          id, oi->uid);
      rc = WEIR_EINVAL;
      goto out;
    }
    if (node_has_operator_state(n) && (int)oi->parallelism != n->parallelism &&
        !n->op.redistribute_state) {
      weir__job_set_error(job,
                          "restore: operator '%s' keeps operator state with parallelism %u "
                          "in checkpoint %" PRIu64 "; it cannot be restored at parallelism %d",
                          n->name, oi->parallelism, id, n->parallelism);
      rc = WEIR_EINVAL;
      goto out;
    }
    c->restored_par[n - job->nodes] = (int)oi->parallelism;
  }
  if ((rc = verify_blobs(job, c, meta)) != 0) {
    weir__job_set_error(job, "restore: checkpoint %" PRIu64 " in %s: %s", id, job->ckpt.dir,
                        weir__ckpt_store_last_error());
    goto out;
  }
  for (i = 0; i < job->n_nodes; i++) {
    struct node *n = &job->nodes[i];

    if (node_has_operator_state(n) && c->restored_par[i] == 0) {
      weir__job_set_error(job,
                          "restore: operator '%s' (uid '%s') keeps state but checkpoint %" PRIu64
                          " has none for it; was its uid or name changed?",
                          n->name, weir__node_uid(n), id);
      rc = WEIR_EINVAL;
      goto out;
    }
  }
  c->restored_id = id;
  c->stats.restored_id = id;
  WEIR_LOG_INFO("job '%s': restoring from checkpoint %" PRIu64 " in %s", job->name, id,
                job->ckpt.dir);
out:
  weir__ckpt_meta_free(meta);
  return rc;
}

/* One job per checkpoint directory, across processes too: an exclusive lock on a file there,
 * held while the job runs (LMDB itself lets several writers share an environment). */
static int lock_dir(weir_job *job, struct weir__coord *c) {
  char path[4096];

  if ((size_t)snprintf(path, sizeof(path), "%s/weir.lock", job->ckpt.dir) >= sizeof(path))
    return WEIR_ETOOBIG;
  c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (c->lock_fd < 0) {
    weir__job_set_error(job, "checkpoint dir %s: cannot open its lock file: %s", job->ckpt.dir,
                        strerror(errno));
    return WEIR_ESYS;
  }
  if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = "";
    ssize_t got = pread(c->lock_fd, holder, sizeof(holder) - 1, 0);
    long pid = got > 0 ? strtol(holder, NULL, 10) : 0;

    if (pid > 0)
      weir__job_set_error(job,
                          "checkpoint dir %s is in use by another running job (process %ld "
                          "holds %s); give each job its own directory",
                          job->ckpt.dir, pid, path);
    else
      weir__job_set_error(job,
                          "checkpoint dir %s is in use by another running job (it holds %s); "
                          "give each job its own directory",
                          job->ckpt.dir, path);
    return WEIR_EEXIST;
  }
  /* The holder's pid, for the error above (advisory: the flock is what excludes). */
  {
    char me[32];
    int len = snprintf(me, sizeof(me), "%ld\n", (long)getpid());

    if (ftruncate(c->lock_fd, 0) != 0 || pwrite(c->lock_fd, me, (size_t)len, 0) != len)
      WEIR_LOG_WARN("checkpoint dir %s: cannot record this process in %s: %s", job->ckpt.dir, path,
                    strerror(errno));
  }
  return 0;
}

static void free_held(struct weir__coord *c) {
  size_t i;

  for (i = 0; i < c->n_held; i++)
    free((void *)c->held[i].blob.ptr);
  c->n_held = 0;
  c->held_bytes = 0;
}

static void coord_free(struct weir__coord *c) {
  size_t i, s;

  if (c == NULL)
    return;
  for (i = 0; c->acc != NULL && i < c->job->n_nodes; i++) {
    for (s = 0; c->acc[i].pos != NULL && s < (size_t)c->job->nodes[i].parallelism; s++)
      free(c->acc[i].pos[s]);
    free(c->acc[i].pos);
    free(c->acc[i].pos_len);
    free(c->acc[i].sub_bytes);
  }
  free(c->acc);
  free_held(c);
  free(c->held);
  free(c->restored_par);
  weir__ckpt_store_close(c->store);
  if (c->lock_fd >= 0)
    close(c->lock_fd); /* releases the directory lock */
  WEIR_ASSERT(pthread_cond_destroy(&c->cond) == 0);
  WEIR_ASSERT(pthread_mutex_destroy(&c->mu) == 0);
  free(c);
}

int weir__coord_open(weir_job *job) {
  struct weir__ckpt_store_opts opts;
  struct weir__ckpt_info *infos = NULL;
  struct weir__coord *c;
  size_t i, n = 0;
  uint64_t id = 0;
  int rc;

  if (job->ckpt.dir == NULL)
    return 0;
  for (i = 0; i < job->n_nodes; i++) {
    if (strlen(weir__node_uid(&job->nodes[i])) > WEIR__CKPT_UID_MAX) {
      weir__job_set_error(job,
                          "graph: the uid of '%s' is longer than %d bytes; set a shorter one "
                          "with weir_job_set_uid",
                          job->nodes[i].name, WEIR__CKPT_UID_MAX);
      return WEIR_EGRAPH;
    }
  }
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return WEIR_ENOMEM;
  c->lock_fd = -1;
  c->job = job;
  WEIR_ASSERT(pthread_mutex_init(&c->mu, NULL) == 0);
  WEIR_ASSERT(pthread_cond_init(&c->cond, NULL) == 0);
  c->restored_par = calloc(job->n_nodes, sizeof(*c->restored_par));
  c->acc = calloc(job->n_nodes, sizeof(*c->acc));
  if (c->restored_par == NULL || c->acc == NULL) {
    rc = WEIR_ENOMEM;
    goto fail;
  }
  for (i = 0; i < job->n_nodes; i++) {
    size_t p = (size_t)job->nodes[i].parallelism;

    c->acc[i].sub_bytes = calloc(p, sizeof(uint64_t));
    c->acc[i].pos = calloc(p, sizeof(uint8_t *));
    c->acc[i].pos_len = calloc(p, sizeof(size_t));
    if (c->acc[i].sub_bytes == NULL || c->acc[i].pos == NULL || c->acc[i].pos_len == NULL) {
      rc = WEIR_ENOMEM;
      goto fail;
    }
  }
  weir__ckpt_store_opts_init(&opts);
  if (job->ckpt.map_size)
    opts.map_size = job->ckpt.map_size;
  if (job->ckpt.retain)
    opts.retain = job->ckpt.retain;
  if ((rc = weir__ckpt_store_open(job->ckpt.dir, &opts, &c->store)) != 0) {
    weir__job_set_error(job, "checkpoint store %s: %s", job->ckpt.dir,
                        weir__ckpt_store_last_error());
    goto fail;
  }
  if ((rc = lock_dir(job, c)) != 0)
    goto fail;
  if (0) {
    weir__job_set_error(job, "checkpoint store %s: %s", job->ckpt.dir,
                        weir__ckpt_store_last_error());
    goto fail;
  }
  /* New ids must exceed every id in the store, complete or pending. */
  if ((rc = weir__ckpt_store_list(c->store, &infos, &n)) != 0) {
    weir__job_set_error(job, "checkpoint store %s: %s", job->ckpt.dir,
                        weir__ckpt_store_last_error());
    goto fail;
  }
  for (i = 0; i < n; i++)
    if (infos[i].id > c->last_id)
      c->last_id = infos[i].id;
  id = job->ckpt.restore_id;
  rc = id == 0 ? pick_intact(job, c, infos, n, &id) : 0;
  free(infos);
  infos = NULL;
  if (rc != 0)
    goto fail;
  if (id != 0 && (rc = check_restore(job, c, id)) != 0)
    goto fail;
  c->last_end = weir__now_ms();
  c->pending_start = c->last_end; /* the first periodic checkpoint comes one interval in */
  /* Published under job->mu: weir_job_checkpoint_stats may run on another thread meanwhile. */
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  job->coord = c;
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  atomic_store(&job->ckpt_completed, c->restored_id);
  return 0;

fail:
  coord_free(c);
  return rc;
}

/* ---- the coordinator thread -------------------------------------------------------------- */

static void reset_acc(struct weir__coord *c) {
  size_t i, s;

  for (i = 0; i < c->job->n_nodes; i++) {
    struct node_acc *a = &c->acc[i];

    a->present = false;
    a->keys = 0;
    for (s = 0; s < (size_t)c->job->nodes[i].parallelism; s++) {
      a->sub_bytes[s] = 0;
      free(a->pos[s]);
      a->pos[s] = NULL;
      a->pos_len[s] = 0;
    }
  }
}

/* Records blobs of one task for the pending checkpoint; coord->mu held. */
static void account(struct weir__coord *c, struct task *t, const struct ckpt_blob *blobs,
                    size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    struct node_acc *a = &c->acc[blobs[i].node];

    a->present = true;
    a->keys += blobs[i].keys;
    a->sub_bytes[t->subtask] = blobs[i].len;
    if (blobs[i].pos != NULL && (a->pos[t->subtask] = malloc(blobs[i].pos_len)) != NULL) {
      memcpy(a->pos[t->subtask], blobs[i].pos, blobs[i].pos_len);
      a->pos_len[t->subtask] = blobs[i].pos_len;
    }
  }
  t->acked = c->pending;
  c->acks++;
  WEIR_ASSERT(pthread_cond_signal(&c->cond) == 0);
}

/* Blobs up to this size are held in memory and written by the checkpoint's one synced commit,
 * up to WEIR_CKPT_HOLD_MAX bytes per checkpoint; larger ones go to the store at once. */
#define WEIR_CKPT_HOLD_BLOB_MAX (256u << 10)
#define WEIR_CKPT_HOLD_MAX (16u << 20)

/* Keeps a copy of a small blob for the commit. 0, or WEIR_EAGAIN when it must be put now. */
static int hold_blob(struct weir__coord *c, const char *uid, int subtask, weir_buf b) {
  uint8_t *copy;

  if (b.len > WEIR_CKPT_HOLD_BLOB_MAX || c->held_bytes + b.len > WEIR_CKPT_HOLD_MAX)
    return WEIR_EAGAIN;
  if (c->n_held == c->cap_held) {
    size_t cap = c->cap_held ? c->cap_held * 2 : 16;
    struct weir__ckpt_put *h = realloc(c->held, cap * sizeof(*h));

    if (h == NULL)
      return WEIR_EAGAIN;
    c->held = h;
    c->cap_held = cap;
  }
  if ((copy = malloc(b.len ? b.len : 1)) == NULL)
    return WEIR_EAGAIN;
  memcpy(copy, b.ptr, b.len);
  c->held[c->n_held++] = (struct weir__ckpt_put){uid, subtask, {copy, b.len}};
  c->held_bytes += b.len;
  return 0;
}

/* Keeps the calling thread's last store error as the pending checkpoint's failure reason (the
 * first one wins); coord->mu held. */
static void note_store_error(struct weir__coord *c, int rc) {
  if (c->store_rc != 0)
    return;
  c->store_rc = rc;
  snprintf(c->store_err, sizeof(c->store_err), "%s", weir__ckpt_store_last_error());
}

/* Stores a task's blobs for checkpoint `id`; coord->mu held. */
static int put_blobs(struct weir__coord *c, uint64_t id, const struct task *t,
                     const struct ckpt_blob *blobs, size_t n) {
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    weir_buf b = {blobs[i].ptr, blobs[i].len};
    const char *uid = weir__node_uid(&c->job->nodes[blobs[i].node]);

    if (hold_blob(c, uid, t->subtask, b) == 0)
      continue;
    if (!c->begun && (rc = weir__ckpt_store_begin(c->store, id)) != 0) {
      WEIR_LOG_ERR("[ckpt %" PRIu64 "] begin: %s", id, weir__ckpt_store_last_error());
      note_store_error(c, rc);
      return rc;
    }
    c->begun = true;
    if ((rc = weir__ckpt_store_put(c->store, id, uid, t->subtask, b)) != 0) {
      WEIR_LOG_ERR("[ckpt %" PRIu64 "] storing '%s' subtask %d: %s", id, uid, t->subtask,
                   weir__ckpt_store_last_error());
      note_store_error(c, rc);
      return rc;
    }
  }
  return 0;
}

/* Counts a failed checkpoint against the tolerated consecutive failures; past them the job
 * fails with `rc` (after the coordinator drops its mutex: see fail_msg). */
static void count_failure(struct weir__coord *c, uint64_t id, int rc, const char *why) {
  c->stats.failed++;
  c->last_end = weir__now_ms();
  c->consecutive_failures++;
  if (c->consecutive_failures > c->job->ckpt.tolerable_failures && c->fail_msg[0] == '\0') {
    c->fail_rc = rc;
    snprintf(c->fail_msg, sizeof(c->fail_msg),
             "checkpoint %" PRIu64 " failed (%s) and %d consecutive failures are tolerated; %s", id,
             why, c->job->ckpt.tolerable_failures,
             rc == WEIR_ETIMEDOUT ? "raise the checkpoint timeout or the tolerable failures"
                                  : "fix the cause or raise the tolerable failures");
  }
}

static void trigger(struct weir__coord *c) {
  weir_job *job = c->job;
  uint64_t id = c->last_id + 1;
  size_t i;

  c->last_id = id;
  c->begun = false;
  free_held(c);
  c->pending = id;
  c->pending_failed = false;
  c->store_rc = 0;
  c->store_err[0] = '\0';
  c->pending_start = weir__now_ms();
  c->pending_start_us = mono_us();
  c->pending_wall = wall_ms();
  c->acks = 0;
  reset_acc(c);
  /* Tasks that already ended stand in with their final state. */
  for (i = 0; i < job->n_tasks; i++) {
    struct task *t = job->tasks[i];

    if (t->finished) {
      if (put_blobs(c, id, t, t->finals, t->n_finals) != 0)
        c->pending_failed = true;
      account(c, t, t->finals, t->n_finals);
    }
  }
  if (c->savepoint) {
    c->savepoint = false;
    c->savepoint_ckpt = id;
    atomic_store(&job->savepoint_id, id);
  }
  atomic_store(&job->ckpt_trigger, id);
  WEIR_LOG_DEBUG("[ckpt %" PRIu64 "] triggered%s", id,
                 c->savepoint_ckpt == id ? " (savepoint)" : "");
}

static void fail_pending(struct weir__coord *c, int rc, const char *why) {
  uint64_t id = c->pending;

  WEIR_LOG_WARN("[ckpt %" PRIu64 "] aborted: %s", id, why);
  if (c->begun)
    weir__ckpt_store_abort(c->store, id);
  c->begun = false;
  free_held(c);
  c->pending = 0;
  count_failure(c, id, rc, why);
}

static int complete(struct weir__coord *c) {
  weir_job *job = c->job;
  Weir__Ckpt__CheckpointMetadata meta = WEIR__CKPT__CHECKPOINT_METADATA__INIT;
  Weir__Ckpt__OperatorInfo *ops = calloc(job->n_nodes, sizeof(*ops));
  Weir__Ckpt__OperatorInfo **opp = calloc(job->n_nodes, sizeof(*opp));
  Weir__Ckpt__SourcePosition *srcs = NULL, **srcp = NULL;
  size_t i, n_src = 0, k = 0;
  uint64_t id = c->pending;
  int rc = WEIR_ENOMEM;

  for (i = 0; i < job->n_nodes; i++)
    if (job->nodes[i].kind == NODE_SOURCE && c->acc[i].present)
      n_src += (size_t)job->nodes[i].parallelism;
  srcs = calloc(n_src + 1, sizeof(*srcs));
  srcp = calloc(n_src + 1, sizeof(*srcp));
  if (ops == NULL || opp == NULL || srcs == NULL || srcp == NULL)
    goto out;
  meta.checkpoint_id = id;
  meta.start_time_ms = c->pending_wall;
  meta.end_time_ms = wall_ms();
  meta.job_name = job->name;
  meta.max_parallelism = (uint32_t)job->max_parallelism;
  for (i = 0; i < job->n_nodes; i++) {
    struct node *nd = &job->nodes[i];
    struct node_acc *a = &c->acc[i];
    int s;

    if (!a->present)
      continue;
    weir__ckpt__operator_info__init(&ops[meta.n_operators]);
    ops[meta.n_operators].uid = (char *)weir__node_uid(nd);
    ops[meta.n_operators].parallelism = (uint32_t)nd->parallelism;
    ops[meta.n_operators].n_subtask_state_bytes = (size_t)nd->parallelism;
    ops[meta.n_operators].subtask_state_bytes = a->sub_bytes;
    ops[meta.n_operators].key_count = a->keys;
    opp[meta.n_operators] = &ops[meta.n_operators];
    meta.n_operators++;
    for (s = 0; nd->kind == NODE_SOURCE && s < nd->parallelism; s++) {
      weir__ckpt__source_position__init(&srcs[k]);
      srcs[k].uid = (char *)weir__node_uid(nd);
      srcs[k].subtask = (uint32_t)s;
      srcs[k].position.data = a->pos[s];
      srcs[k].position.len = a->pos_len[s];
      srcs[k].description = "";
      srcp[k] = &srcs[k];
      k++;
    }
  }
  meta.operators = opp;
  meta.n_sources = k;
  meta.sources = srcp;
  rc = weir__ckpt_store_commit_with(c->store, id, c->held, c->n_held, &meta);
  free_held(c);
  c->begun = false;
  if (rc != 0) {
    WEIR_LOG_ERR("[ckpt %" PRIu64 "] commit: %s", id, weir__ckpt_store_last_error());
    note_store_error(c, rc);
    goto out;
  }
  {
    int64_t d = mono_us() - c->pending_start_us;

    c->stats.completed++;
    c->stats.last_duration_us = d;
    c->durations[c->n_durations++ % WEIR_CKPT_DURATIONS] = d;
  }
  c->pending = 0;
  c->consecutive_failures = 0;
  c->last_end = weir__now_ms();
  atomic_store(&job->ckpt_completed, id);
  WEIR_LOG_DEBUG("[ckpt %" PRIu64 "] complete", id);
out:
  free(ops);
  free(opp);
  free(srcs);
  free(srcp);
  return rc;
}

static void *coord_main(void *arg) {
  struct weir__coord *c = arg;
  weir_job *job = c->job;

  WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
  while (!c->closing) {
    int64_t now = weir__now_ms(), deadline;
    struct timespec ts;

    if (c->fail_msg[0] != '\0' && !c->failed_job) {
      char msg[sizeof(c->fail_msg)];

      c->failed_job = true;
      memcpy(msg, c->fail_msg, sizeof(msg));
      WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
      weir__job_fail(job, c->fail_rc, "%s", msg);
      WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
      continue;
    }

    if (c->pending != 0) {
      bool was_savepoint = c->pending == c->savepoint_ckpt;

      if (c->acks == job->n_tasks) {
        if (c->pending_failed || complete(c) != 0)
          fail_pending(c, c->store_rc != 0 ? c->store_rc : WEIR_EIO,
                       c->store_err[0] != '\0' ? c->store_err
                                               : "a snapshot or the commit could not be stored");
      } else if (now >= c->pending_start + job->ckpt.timeout_ms) {
        fail_pending(c, WEIR_ETIMEDOUT, "timed out");
      } else {
        deadline = c->pending_start + job->ckpt.timeout_ms;
        goto wait;
      }
      /* The sources already stopped at a savepoint's barrier: whether it completed or not,
       * the job now ends (a failed savepoint leaves the previous checkpoint the latest). */
      if (was_savepoint) {
        c->savepoint_ckpt = 0;
        weir_job_stop(job);
      }
      continue;
    } else {
      int64_t next = INT64_MAX;

      if (job->ckpt.interval_ms > 0)
        next = c->last_end + job->ckpt.min_pause_ms;
      if (job->ckpt.interval_ms > 0 && c->pending_start + job->ckpt.interval_ms > next)
        next = c->pending_start + job->ckpt.interval_ms;
      if (c->trigger_now || c->savepoint)
        next = now;
      if (now >= next && !atomic_load(&job->cancelled)) {
        c->trigger_now = false;
        trigger(c);
        continue;
      }
      deadline = next;
    }
  wait:
    if (deadline == INT64_MAX) {
      WEIR_ASSERT(pthread_cond_wait(&c->cond, &c->mu) == 0);
    } else {
      clock_gettime(CLOCK_REALTIME, &ts);
      deadline -= now; /* relative ms, onto the realtime clock the cond uses */
      ts.tv_sec += deadline / 1000;
      ts.tv_nsec += (deadline % 1000) * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&c->cond, &c->mu, &ts);
    }
  }
  WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
  return NULL;
}

int weir__coord_start(weir_job *job) {
  struct weir__coord *c = job->coord;

  if (c == NULL)
    return 0;
  if (pthread_create(&c->thread, NULL, coord_main, c) != 0)
    return WEIR_ESYS;
  c->thread_started = true;
  return 0;
}

void weir__coord_close(weir_job *job) {
  struct weir__coord *c = job->coord;
  weir_checkpoint_stats final_stats;

  if (c == NULL)
    return;
  WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
  c->closing = true;
  WEIR_ASSERT(pthread_cond_signal(&c->cond) == 0);
  WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
  if (c->thread_started)
    WEIR_ASSERT(pthread_join(c->thread, NULL) == 0);
  /* Every task ended while a checkpoint was in flight: their final states complete it. */
  if (c->pending != 0 && c->acks == job->n_tasks && !c->pending_failed)
    complete(c);
  if (c->pending != 0 && c->begun) /* cut short by the end of the job: not a failure */
    weir__ckpt_store_abort(c->store, c->pending);
  weir_job_checkpoint_stats(job, &final_stats);
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  job->ckpt_stats = final_stats;
  job->coord = NULL;
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  coord_free(c);
}

/* ---- public controls --------------------------------------------------------------------- */

static int poke(weir_job *job, bool savepoint) {
  struct weir__coord *c;
  int rc = 0;

  if (job == NULL)
    return WEIR_EINVAL;
  if (job->ckpt.dir == NULL)
    return WEIR_EINVAL;
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  c = job->coord;
  if (c == NULL || job->state != JOB_RUNNING) {
    rc = WEIR_ESTATE;
  } else {
    WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
    if (savepoint)
      c->savepoint = c->savepoint || c->savepoint_ckpt == 0; /* one savepoint per job */
    else
      c->trigger_now = true;
    WEIR_ASSERT(pthread_cond_signal(&c->cond) == 0);
    WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  return rc;
}

int weir_job_stop_with_savepoint(weir_job *job) {
  return poke(job, true);
}

int weir_job_trigger_checkpoint(weir_job *job) {
  return poke(job, false);
}

uint64_t weir_job_last_checkpoint(const weir_job *job) {
  return job != NULL ? atomic_load(&((weir_job *)job)->ckpt_completed) : 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return (x > y) - (x < y);
}

void weir_job_checkpoint_stats(const weir_job *cjob, weir_checkpoint_stats *out) {
  weir_job *job = (weir_job *)cjob;
  struct weir__coord *c;

  memset(out, 0, sizeof(*out));
  if (job == NULL)
    return;
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  *out = job->ckpt_stats;
  if ((c = job->coord) != NULL) {
    size_t n;
    int64_t d[WEIR_CKPT_DURATIONS];

    WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
    *out = c->stats;
    n = c->n_durations < WEIR_CKPT_DURATIONS ? c->n_durations : WEIR_CKPT_DURATIONS;
    memcpy(d, c->durations, n * sizeof(*d));
    WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
    if (n > 0) {
      qsort(d, n, sizeof(*d), cmp_i64);
      out->p50_duration_us = d[(n - 1) / 2];
      out->p99_duration_us = d[(n * 99 - 1) / 100];
    }
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
}

/* ---- task side --------------------------------------------------------------------------- */

static int ensure_backend(struct weir_ctx *x) {
  weir_job *job = x->task->job;
  uint32_t first, last;
  int rc;

  if (x->keyed != NULL)
    return 0;
  weir__key_group_range(x->task->subtask, x->node->parallelism, job->max_parallelism, &first,
                        &last);
  rc = weir__keyed_backend_create(job->max_parallelism, first, last, 0, &x->keyed);
  if (rc != 0)
    weir_ctx_set_error(x, "keyed state: %s", weir__state_last_error());
  return rc;
}

static int ctx_state(weir_ctx *x, enum weir__state_kind kind, const char *name, void **st) {
  int rc;

  if (x == NULL || name == NULL || st == NULL)
    return WEIR_EINVAL;
  if ((rc = ensure_backend(x)) != 0)
    return rc;
  if ((rc = weir__keyed_backend_register(x->keyed, kind, name, st)) != 0)
    weir_ctx_set_error(x, "state '%s': %s", name, weir__state_last_error());
  return rc;
}

int weir_ctx_value_state(weir_ctx *ctx, const char *name, weir_value_state **st) {
  return ctx_state(ctx, WEIR__STATE_VALUE, name, (void **)st);
}

int weir_ctx_map_state(weir_ctx *ctx, const char *name, weir_map_state **st) {
  return ctx_state(ctx, WEIR__STATE_MAP, name, (void **)st);
}

int weir_ctx_list_state(weir_ctx *ctx, const char *name, weir_list_state **st) {
  return ctx_state(ctx, WEIR__STATE_LIST, name, (void **)st);
}

static void free_blobs(struct ckpt_blob *b, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    free(b[i].ptr);
    free(b[i].pos);
  }
  free(b);
}

void weir__ckpt_free_finals(struct task *t) {
  free_blobs(t->finals, t->n_finals);
  t->finals = NULL;
  t->n_finals = 0;
}

/* Snapshots every stateful operator of the chain into *out (allocated; *n entries). */
static int snapshot_blobs(struct task *t, uint64_t id, struct ckpt_blob **out, size_t *n) {
  struct ckpt_blob *blobs = calloc(t->chain->len, sizeof(*blobs));
  size_t i, k = 0;
  int rc = 0;

  if (blobs == NULL)
    return WEIR_ENOMEM;
  for (i = 0; i < t->chain->len && rc == 0; i++) {
    struct weir_ctx *x = &t->ctxs[i];
    struct weir_snapshot s = {NULL, 0, 0};
    struct weir__snapshot_blob b = {NULL, 0, 0};

    if (x->node->barrier_hook) {
      if ((rc = x->node->op.snapshot(x, x->inst, id, &s)) < 0)
        break;
      free(s.ptr);
      continue;
    }
    if (x->keyed == NULL && x->node->op.snapshot == NULL)
      continue;
    if (x->node->op.snapshot != NULL && (rc = x->node->op.snapshot(x, x->inst, id, &s)) < 0) {
      if (x->err[0] == '\0') /* keep the operator's own detail */
        weir_ctx_set_error(x, "snapshot for checkpoint %" PRIu64 " failed", id);
      free(s.ptr);
      break;
    }
    if ((rc = ensure_backend(x)) == 0 &&
        (rc = weir__keyed_backend_snapshot(x->keyed, weir__node_uid(x->node), t->subtask,
                                           x->node->parallelism, s.ptr, s.len, &b)) != 0)
      weir_ctx_set_error(x, "snapshot for checkpoint %" PRIu64 ": %s", id,
                         weir__state_last_error());
    if (rc == 0) {
      blobs[k].node = (int)(x->node - t->job->nodes);
      blobs[k].ptr = b.ptr;
      blobs[k].len = b.len;
      blobs[k].keys = b.key_count;
      if (x->node->kind == NODE_SOURCE) {
        blobs[k].pos = s.ptr; /* the source's own state is its position */
        blobs[k].pos_len = s.len;
        s.ptr = NULL;
      }
      k++;
    }
    free(s.ptr);
    if (rc != 0) {
      free_blobs(blobs, k);
      return rc;
    }
  }
  if (rc != 0) {
    free_blobs(blobs, k);
    return rc;
  }
  *out = blobs;
  *n = k;
  return 0;
}

int weir__ckpt_snapshot_chain(struct task *t, uint64_t id) {
  struct weir__coord *c = t->job->coord;
  struct ckpt_blob *blobs = NULL;
  size_t n = 0, i;
  int rc;

  if (c == NULL)
    return 0;
  if ((rc = snapshot_blobs(t, id, &blobs, &n)) != 0) {
    /* A failing snapshot fails the operator, as in Flink's default. */
    for (i = 0; i < t->chain->len; i++)
      if (t->ctxs[i].err[0] != '\0')
        weir__job_fail(t->job, rc, "operator '%s' (subtask %d/%d) failed: %s: %s",
                       t->ctxs[i].node->name, t->subtask + 1, t->ctxs[i].node->parallelism,
                       weir_strerror(rc), t->ctxs[i].err);
    weir__job_fail(t->job, rc, "task '%s' (subtask %d): snapshot %" PRIu64 ": %s",
                   t->ctxs[0].node->name, t->subtask + 1, id, weir_strerror(rc));
    return rc;
  }
  WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
  if (c->pending == id) {
    if (put_blobs(c, id, t, blobs, n) != 0)
      c->pending_failed = true;
    account(c, t, blobs, n);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
  free_blobs(blobs, n);
  return 0;
}

void weir__ckpt_task_finished(struct task *t, bool only_unacked) {
  struct weir__coord *c = t->job->coord;
  struct ckpt_blob *blobs = NULL;
  size_t n = 0;

  uint64_t id;
  bool acked;

  if (c == NULL)
    return;
  /* The checkpoint the final state will first stand in for: the one in flight if this task
   * has not acknowledged it, else the next. */
  WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
  acked = c->pending == 0 || t->acked == c->pending;
  id = acked ? c->last_id + 1 : c->pending;
  WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
  if (only_unacked && acked)
    return;
  if (snapshot_blobs(t, id, &blobs, &n) != 0) {
    weir__job_fail(t->job, WEIR_EIO, "task '%s' (subtask %d): final snapshot failed",
                   t->ctxs[0].node->name, t->subtask + 1);
    return;
  }
  WEIR_ASSERT(pthread_mutex_lock(&c->mu) == 0);
  t->finals = blobs;
  t->n_finals = n;
  t->finished = true;
  /* A checkpoint in flight that this task never saw a barrier for: its final state is what
   * that checkpoint must hold for it (every record it had was before the barrier). */
  if (c->pending != 0 && t->acked != c->pending) {
    if (put_blobs(c, c->pending, t, blobs, n) != 0)
      c->pending_failed = true;
    account(c, t, blobs, n);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&c->mu) == 0);
}

void weir__ckpt_notify(struct task *t) {
  uint64_t done = atomic_load_explicit(&t->job->ckpt_completed, memory_order_acquire);
  size_t i;

  if (done <= t->notified)
    return;
  t->notified = done;
  for (i = 0; i < t->chain->len; i++) {
    struct weir_ctx *x = &t->ctxs[i];

    if (x->node->op.notify_checkpoint_complete != NULL)
      x->node->op.notify_checkpoint_complete(x, x->inst, done);
  }
}

/* Restores one operator from every old subtask whose key groups overlap this subtask's. */
/* Restores one operator: keyed state from every old subtask whose key groups overlap this
 * subtask's; operator state from the same subtask, or, at another parallelism, from each old
 * subtask j with j mod parallelism == this subtask (redistribute_state). */
static int restore_op(struct task *t, struct weir_ctx *x, int old_par) {
  struct weir__coord *c = t->job->coord;
  const char *uid = weir__node_uid(x->node);
  int par = x->node->parallelism;
  uint32_t first, last, of, ol;
  bool parts = false;
  int j, rc = 0;

  weir__key_group_range(t->subtask, par, t->job->max_parallelism, &first, &last);
  if ((rc = ensure_backend(x)) != 0)
    return rc;
  for (j = 0; j < old_par && rc == 0; j++) {
    bool own = old_par == par ? j == t->subtask : j % par == t->subtask;
    uint8_t *blob = NULL, *opstate = NULL;
    size_t len = 0, oplen = 0;
    char origin[320];

    weir__key_group_range(j, old_par, t->job->max_parallelism, &of, &ol);
    if (!own && (of > last || ol < first))
      continue;
    snprintf(origin, sizeof(origin), "checkpoint %" PRIu64 " uid '%s' subtask %d", c->restored_id,
             uid, j);
    if ((rc = weir__ckpt_store_get_blob(c->store, c->restored_id, uid, j, &blob, &len)) != 0) {
      weir_ctx_set_error(x, "restore: %s", weir__ckpt_store_last_error());
      break;
    }
    rc = weir__keyed_backend_restore(x->keyed, (weir_buf){blob, len}, origin, &opstate, &oplen,
                                     NULL);
    if (rc != 0) {
      weir_ctx_set_error(x, "restore: %s", weir__state_last_error());
    } else if (own && x->node->op.restore != NULL) {
      parts = true;
      rc = x->node->op.restore(x, x->inst, (weir_buf){opstate, oplen});
    }
    free(opstate);
    free(blob);
  }
  /* A new subtask beyond the old parallelism still learns that the job was restored. */
  if (rc == 0 && !parts && old_par != par && x->node->op.restore != NULL)
    rc = x->node->op.restore(x, x->inst, (weir_buf){NULL, 0});
  return rc;
}

int weir__ckpt_restore_chain(struct task *t) {
  struct weir__coord *c = t->job->coord;
  size_t i;
  int rc;

  if (c == NULL || c->restored_id == 0)
    return 0;
  for (i = 0; i < t->chain->len; i++) {
    struct weir_ctx *x = &t->ctxs[i];
    int old_par = c->restored_par[x->node - t->job->nodes];

    if (old_par > 0 && (rc = restore_op(t, x, old_par)) != 0) {
      weir__job_fail(t->job, rc, "operator '%s' (subtask %d/%d) failed to restore: %s",
                     x->node->name, t->subtask + 1, x->node->parallelism, x->err);
      return rc;
    }
  }
  t->notified = c->restored_id;
  return 0;
}

/* ---- options ----------------------------------------------------------------------------- */

/* Bound on checkpoint intervals and timeouts: one day. */
#define WEIR_CKPT_MS_MAX 86400000

int weir_job_set_checkpoint_dir(weir_job *job, const char *dir) {
  char *copy;
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (dir == NULL || dir[0] == '\0')
    return weir__job_range_error(job, "checkpoint dir", "a non-empty path");
  if ((copy = strdup(dir)) == NULL)
    return WEIR_ENOMEM;
  free(job->ckpt.dir);
  job->ckpt.dir = copy;
  return 0;
}

int weir_job_set_checkpoint_interval(weir_job *job, int64_t ms) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (ms != 0 && (ms < 10 || ms > WEIR_CKPT_MS_MAX))
    return weir__job_range_error(job, "checkpoint interval", "0 (off) or 10..86400000 ms");
  job->ckpt.interval_ms = ms;
  return 0;
}

int weir_job_set_checkpoint_timeout(weir_job *job, int64_t ms) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (ms < 10 || ms > WEIR_CKPT_MS_MAX)
    return weir__job_range_error(job, "checkpoint timeout", "10..86400000 ms");
  job->ckpt.timeout_ms = ms;
  return 0;
}

int weir_job_set_checkpoint_min_pause(weir_job *job, int64_t ms) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (ms < 0 || ms > WEIR_CKPT_MS_MAX)
    return weir__job_range_error(job, "checkpoint min pause", "0..86400000 ms");
  job->ckpt.min_pause_ms = ms;
  return 0;
}

int weir_job_set_checkpoint_mode(weir_job *job, weir_checkpoint_mode mode) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (mode != WEIR_EXACTLY_ONCE && mode != WEIR_AT_LEAST_ONCE)
    return weir__job_range_error(job, "checkpoint mode", "WEIR_EXACTLY_ONCE, WEIR_AT_LEAST_ONCE");
  job->ckpt.mode = mode;
  return 0;
}

int weir_job_set_tolerable_checkpoint_failures(weir_job *job, int n) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (n < 0 || n > 1000000)
    return weir__job_range_error(job, "tolerable checkpoint failures", "0..1000000");
  job->ckpt.tolerable_failures = n;
  return 0;
}

int weir_job_set_checkpoint_retention(weir_job *job, unsigned k) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (k < 1 || k > 1000)
    return weir__job_range_error(job, "checkpoint retention", "1..1000");
  job->ckpt.retain = k;
  return 0;
}

int weir_job_set_checkpoint_map_size(weir_job *job, size_t bytes) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (bytes < ((size_t)1 << 20))
    return weir__job_range_error(job, "checkpoint map size", ">= 1 MiB");
  job->ckpt.map_size = bytes;
  return 0;
}

int weir_job_set_restore_checkpoint(weir_job *job, uint64_t id) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  job->ckpt.restore_id = id;
  return 0;
}

int weir_job_set_allow_non_restored_state(weir_job *job, bool allow) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  job->ckpt.allow_non_restored = allow;
  return 0;
}
