/*
 * ckpt_store.c: the checkpoint store: one LMDB environment per job directory holding pending
 * and complete checkpoints, their snapshot blobs and the "latest complete" pointer. Key layout
 * and the atomicity argument: ckpt_store_int.h and docs/internals/checkpointing.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <xxhash.h>

#include "ckpt_store_int.h"
#include "log_int.h"

enum frame_type { FRAME_PENDING = 1, FRAME_COMPLETE = 2, FRAME_SNAPSHOT = 3 };

#define KEY_VERSION "format_version"
#define KEY_LATEST "latest"
#define BLOB_KEY_MAX (8 + WEIR__CKPT_UID_MAX + 1 + 4)

struct weir__ckpt_store {
  MDB_env *env;
  MDB_dbi meta, ckpts, blobs;
  struct weir__ckpt_store_opts opts;
  /* Serialises every call: write transactions, the env's sync flags they set, and reads. */
  pthread_mutex_t mu;
  pid_t pid;
  dev_t dev;
  ino_t ino;
  char *dir;
  struct weir__ckpt_store *next; /* in open_stores */
};

/* Directories open in this process (LMDB must not open one environment twice per process). */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct weir__ckpt_store *open_stores;

/* ---- errors --------------------------------------------------------------------------------- */

static _Thread_local char last_err[512];

const char *weir__ckpt_store_last_error(void) {
  return last_err;
}

static int fail(int rc, const char *fmt, ...) WEIR_PRINTF(2, 3);
static int fail(int rc, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(last_err, sizeof(last_err), fmt, ap);
  va_end(ap);
  WEIR_LOG_ERR("%s", last_err);
  return rc;
}

static int map_mdb(int mrc) {
  switch (mrc) {
  case MDB_MAP_FULL:
  case MDB_READERS_FULL:
  case MDB_TXN_FULL:
  case MDB_DBS_FULL:
  case MDB_BAD_VALSIZE:
    return WEIR_ETOOBIG;
  case MDB_NOTFOUND:
    return WEIR_ENOTFOUND;
  case MDB_KEYEXIST:
    return WEIR_EEXIST;
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH:
    return WEIR_EPARSE;
  case ENOMEM:
    return WEIR_ENOMEM;
  case EIO:
    return WEIR_EIO;
  default:
    return mrc > 0 ? WEIR_ESYS : WEIR_EIO;
  }
}

/* Logs an LMDB failure of `what` for checkpoint `id` (0: none) and returns its weir code. */
static int lmdb_fail(const struct weir__ckpt_store *s, uint64_t id, const char *what, int mrc) {
  const char *hint = "";

  if (mrc == MDB_MAP_FULL)
    hint = "; the checkpoint store is full: raise its map size (weir_job_set_checkpoint_map_size, "
           "or checkpoint.max_size in a pipeline file) or retain fewer checkpoints";
  else if (mrc == ENOSPC || mrc == EDQUOT)
    hint = "; the file system holding the checkpoint directory is full: free space there (the "
           "latest complete checkpoint is intact)";
  else if (mrc == MDB_READERS_FULL)
    hint = "; raise the store's max readers";
  if (id != 0)
    return fail(map_mdb(mrc), "[ckpt %" PRIu64 "] lmdb %s (%s): %s%s", id, what, s->dir,
                mdb_strerror(mrc), hint);
  return fail(map_mdb(mrc), "[ckpt store] lmdb %s (%s): %s%s", what, s->dir, mdb_strerror(mrc),
              hint);
}

/* ---- encoding ------------------------------------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v) {
  int i;

  for (i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  int i;

  for (i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
  int i;

  for (i = 0; i < 8; i++, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  int i;

  for (i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static void frame_write(uint8_t *dst, enum frame_type type, const uint8_t *p, size_t len) {
  memcpy(dst, "WCKP", 4);
  dst[4] = WEIR__CKPT_FRAME_VERSION;
  dst[5] = (uint8_t)type;
  dst[6] = dst[7] = 0;
  put_le64(dst + 8, len);
  put_le64(dst + 16, XXH3_64bits(len > 0 ? p : (const uint8_t *)"", len));
  if (len > 0)
    memcpy(dst + WEIR__CKPT_FRAME_HEADER, p, len);
}

/* Verifies a frame; on success *type and *payload (borrowed from `v`) are set. On failure
 * `why` says what is wrong. */
static bool frame_read(MDB_val v, int *type, weir_buf *payload, char *why, size_t why_len) {
  const uint8_t *p = v.mv_data;
  uint64_t len;

  if (v.mv_size < WEIR__CKPT_FRAME_HEADER || memcmp(p, "WCKP", 4) != 0) {
    snprintf(why, why_len, "%zu bytes without a valid header (truncated or not written by weir)",
             v.mv_size);
    return false;
  }
  if (p[4] != WEIR__CKPT_FRAME_VERSION) {
    snprintf(why, why_len, "frame format version %u is not supported (this build reads %u)", p[4],
             WEIR__CKPT_FRAME_VERSION);
    return false;
  }
  len = get_le64(p + 8);
  if (len != v.mv_size - WEIR__CKPT_FRAME_HEADER) {
    snprintf(why, why_len, "payload is %zu bytes but its header says %" PRIu64 " (truncated)",
             v.mv_size - WEIR__CKPT_FRAME_HEADER, len);
    return false;
  }
  if (XXH3_64bits(p + WEIR__CKPT_FRAME_HEADER, (size_t)len) != get_le64(p + 16)) {
    snprintf(why, why_len, "checksum mismatch (corrupt)");
    return false;
  }
  if (p[5] < FRAME_PENDING || p[5] > FRAME_SNAPSHOT) {
    snprintf(why, why_len, "unknown frame type %u", p[5]);
    return false;
  }
  *type = p[5];
  payload->ptr = p + WEIR__CKPT_FRAME_HEADER;
  payload->len = (size_t)len;
  return true;
}

int weir__ckpt_frame_decode(const uint8_t *p, size_t len, int *type, weir_buf *payload, char *why,
                            size_t why_len) {
  MDB_val v = {len, (void *)(uintptr_t)p};

  return frame_read(v, type, payload, why, why_len) ? 0 : WEIR_EPARSE;
}

int weir__ckpt_meta_decode(weir_buf payload, uint64_t id, Weir__Ckpt__CheckpointMetadata **meta,
                           char *why, size_t why_len) {
  Weir__Ckpt__CheckpointMetadata *m;

  *meta = NULL;
  m = weir__ckpt__checkpoint_metadata__unpack(NULL, payload.len, payload.ptr);
  if (m == NULL) {
    snprintf(why, why_len, "metadata does not decode (corrupt)");
    return WEIR_EPARSE;
  }
  if (m->format_version != WEIR__CKPT_META_FORMAT_VERSION || m->checkpoint_id != id) {
    snprintf(why, why_len,
             "metadata format version %u (this build reads %u), id %" PRIu64
             ": unsupported or corrupt",
             m->format_version, WEIR__CKPT_META_FORMAT_VERSION, m->checkpoint_id);
    weir__ckpt__checkpoint_metadata__free_unpacked(m, NULL);
    return WEIR_EPARSE;
  }
  *meta = m;
  return 0;
}

/* Blob key: id | uid | 0x00 | subtask; with subtask < 0 only the (id, uid) prefix. */
static size_t blob_key(uint8_t *k, uint64_t id, const char *uid, int subtask) {
  size_t n = strlen(uid);

  put_be64(k, id);
  memcpy(k + 8, uid, n);
  k[8 + n] = 0;
  if (subtask < 0)
    return 8 + n + 1;
  k[8 + n + 1] = (uint8_t)((uint32_t)subtask >> 24);
  k[8 + n + 2] = (uint8_t)((uint32_t)subtask >> 16);
  k[8 + n + 3] = (uint8_t)((uint32_t)subtask >> 8);
  k[8 + n + 4] = (uint8_t)subtask;
  return 8 + n + 5;
}

static int check_uid(uint64_t id, const char *uid) {
  size_t n;

  if (uid == NULL || (n = strlen(uid)) == 0 || n > WEIR__CKPT_UID_MAX)
    return fail(WEIR_EINVAL, "[ckpt %" PRIu64 "] operator uid must be 1..%d bytes", id,
                WEIR__CKPT_UID_MAX);
  return 0;
}

/* ---- transactions --------------------------------------------------------------------------- */

static int lock(struct weir__ckpt_store *s) {
  if (getpid() != s->pid)
    return fail(WEIR_ESTATE,
                "[ckpt store] %s used in a forked child; open the store in the child instead",
                s->dir);
  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  return 0;
}

static void unlock(struct weir__ckpt_store *s) {
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
}

enum sync_mode { SYNC_FULL, SYNC_BLOB };

/*
 * Begins a write transaction. LMDB 0.9 reads the sync flags from the environment at commit;
 * they may be changed between transactions, and the store mutex makes this the only one.
 */
static int wtxn(struct weir__ckpt_store *s, enum sync_mode mode, uint64_t id, MDB_txn **txn) {
  int mrc;

  if (mode == SYNC_FULL) {
    mrc = mdb_env_set_flags(s->env, MDB_NOSYNC | MDB_NOMETASYNC, 0);
  } else if (s->opts.durable_blobs) {
    if ((mrc = mdb_env_set_flags(s->env, MDB_NOSYNC, 0)) == 0)
      mrc = mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1);
  } else {
    mrc = mdb_env_set_flags(s->env, MDB_NOSYNC, 1);
  }
  if (mrc == 0)
    mrc = mdb_txn_begin(s->env, NULL, 0, txn);
  return mrc != 0 ? lmdb_fail(s, id, "begin write transaction", mrc) : 0;
}

static int rtxn(struct weir__ckpt_store *s, uint64_t id, MDB_txn **txn) {
  int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);

  return mrc != 0 ? lmdb_fail(s, id, "begin read transaction", mrc) : 0;
}

static int commit(struct weir__ckpt_store *s, uint64_t id, MDB_txn *txn) {
  int mrc = mdb_txn_commit(txn);

  return mrc != 0 ? lmdb_fail(s, id, "commit", mrc) : 0;
}

static int get_latest(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t *latest) {
  MDB_val k = {sizeof(KEY_LATEST) - 1, (void *)(uintptr_t)KEY_LATEST}, v;
  int mrc = mdb_get(txn, s->meta, &k, &v);

  if (mrc == MDB_NOTFOUND) {
    *latest = 0;
    return 0;
  }
  if (mrc != 0)
    return lmdb_fail(s, 0, "read latest", mrc);
  if (v.mv_size != 8)
    return fail(WEIR_EPARSE, "[ckpt store] %s: latest pointer is %zu bytes, not 8 (corrupt)",
                s->dir, v.mv_size);
  *latest = get_be64(v.mv_data);
  return 0;
}

/* Reads checkpoint record `id`: *type is FRAME_PENDING or FRAME_COMPLETE. WEIR_ENOTFOUND
 * (quietly) when absent. */
static int get_record(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t id, int *type,
                      weir_buf *payload) {
  uint8_t kb[8];
  MDB_val k = {8, kb}, v;
  char why[200] = "wrong frame type";
  int mrc;

  *type = 0;
  put_be64(kb, id);
  if ((mrc = mdb_get(txn, s->ckpts, &k, &v)) == MDB_NOTFOUND)
    return WEIR_ENOTFOUND;
  if (mrc != 0)
    return lmdb_fail(s, id, "read checkpoint record", mrc);
  if (!frame_read(v, type, payload, why, sizeof(why)) || *type == FRAME_SNAPSHOT)
    return fail(WEIR_EPARSE, "[ckpt %" PRIu64 "] %s: checkpoint record is damaged: %s", id, s->dir,
                why);
  return 0;
}

static int put_record(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t id, enum frame_type type,
                      const uint8_t *p, size_t len) {
  uint8_t kb[8];
  MDB_val k = {8, kb}, v = {WEIR__CKPT_FRAME_HEADER + len, NULL};
  int mrc;

  put_be64(kb, id);
  if ((mrc = mdb_put(txn, s->ckpts, &k, &v, MDB_RESERVE)) != 0)
    return lmdb_fail(s, id, "write checkpoint record", mrc);
  frame_write(v.mv_data, type, p, len);
  return 0;
}

/* Deletes every blob of checkpoint `id`, then its record. */
static int delete_checkpoint(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t id) {
  uint8_t prefix[8];
  MDB_cursor *c = NULL;
  MDB_val k, v;
  int mrc;

  put_be64(prefix, id);
  if ((mrc = mdb_cursor_open(txn, s->blobs, &c)) != 0)
    goto fail;
  for (;;) {
    /* Re-seek after each delete: simple, and a checkpoint has few blobs. */
    k.mv_size = 8;
    k.mv_data = prefix;
    mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && (k.mv_size < 8 || memcmp(k.mv_data, prefix, 8))))
      break;
    if (mrc != 0 || (mrc = mdb_cursor_del(c, 0)) != 0)
      goto fail;
  }
  mdb_cursor_close(c);
  c = NULL;
  k.mv_size = 8;
  k.mv_data = prefix;
  if ((mrc = mdb_del(txn, s->ckpts, &k, NULL)) != 0 && mrc != MDB_NOTFOUND)
    goto fail;
  return 0;

fail:
  if (c != NULL)
    mdb_cursor_close(c);
  return lmdb_fail(s, id, "delete checkpoint", mrc);
}

/* ---- open and close ------------------------------------------------------------------------- */

void weir__ckpt_store_opts_init(struct weir__ckpt_store_opts *o) {
  o->map_size = WEIR__CKPT_DEFAULT_MAP_SIZE;
  o->max_readers = WEIR__CKPT_DEFAULT_MAX_READERS;
  o->retain = WEIR__CKPT_DEFAULT_RETAIN;
  o->durable_blobs = false;
}

/* Creates the databases or checks the store's format version. */
/* True when the main database holds keys other than weir's sub-database names: an LMDB
 * environment some other program wrote, which a new store must not take over. */
static bool foreign_keys(MDB_txn *txn) {
  MDB_cursor *cur = NULL;
  MDB_val k, v;
  MDB_dbi main_db;
  bool foreign = false;
  int mrc;

  if (mdb_dbi_open(txn, NULL, 0, &main_db) != 0 || mdb_cursor_open(txn, main_db, &cur) != 0)
    return true;
  for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !foreign;
       mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    foreign = k.mv_size < 5 || memcmp(k.mv_data, "weir.", 5) != 0;
  mdb_cursor_close(cur);
  return foreign;
}

static int init_layout(struct weir__ckpt_store *s) {
  MDB_val k = {sizeof(KEY_VERSION) - 1, (void *)(uintptr_t)KEY_VERSION}, v;
  MDB_txn *txn = NULL;
  MDB_stat st1, st2, st3;
  uint8_t vb[4];
  uint32_t ver;
  int mrc, rc;

  if ((rc = wtxn(s, SYNC_FULL, 0, &txn)) != 0)
    return rc;
  if ((mrc = mdb_dbi_open(txn, "weir.meta", MDB_CREATE, &s->meta)) != 0 ||
      (mrc = mdb_dbi_open(txn, "weir.checkpoints", MDB_CREATE, &s->ckpts)) != 0 ||
      (mrc = mdb_dbi_open(txn, "weir.blobs", MDB_CREATE, &s->blobs)) != 0) {
    rc = lmdb_fail(s, 0, "open databases", mrc);
    goto fail;
  }
  mrc = mdb_get(txn, s->meta, &k, &v);
  if (mrc == MDB_NOTFOUND) {
    /* A new store, unless something already lives here. */
    if ((mrc = mdb_stat(txn, s->meta, &st1)) != 0 || (mrc = mdb_stat(txn, s->ckpts, &st2)) != 0 ||
        (mrc = mdb_stat(txn, s->blobs, &st3)) != 0) {
      rc = lmdb_fail(s, 0, "stat", mrc);
      goto fail;
    }
    if (st1.ms_entries + st2.ms_entries + st3.ms_entries > 0 || foreign_keys(txn)) {
      rc = fail(WEIR_EPARSE,
                "[ckpt store] %s: holds checkpoint data but no format version: not a weir "
                "checkpoint store, or damaged; move it aside",
                s->dir);
      goto fail;
    }
    vb[0] = (uint8_t)(WEIR__CKPT_STORE_FORMAT_VERSION >> 24);
    vb[1] = (uint8_t)(WEIR__CKPT_STORE_FORMAT_VERSION >> 16);
    vb[2] = (uint8_t)(WEIR__CKPT_STORE_FORMAT_VERSION >> 8);
    vb[3] = (uint8_t)WEIR__CKPT_STORE_FORMAT_VERSION;
    v.mv_size = 4;
    v.mv_data = vb;
    if ((mrc = mdb_put(txn, s->meta, &k, &v, 0)) != 0) {
      rc = lmdb_fail(s, 0, "write format version", mrc);
      goto fail;
    }
  } else if (mrc != 0) {
    rc = lmdb_fail(s, 0, "read format version", mrc);
    goto fail;
  } else {
    const uint8_t *p = v.mv_data;

    if (v.mv_size != 4) {
      rc = fail(WEIR_EPARSE, "[ckpt store] %s: format version key is %zu bytes, not 4 (corrupt)",
                s->dir, v.mv_size);
      goto fail;
    }
    ver = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (ver != WEIR__CKPT_STORE_FORMAT_VERSION) {
      rc = fail(WEIR_EPARSE,
                "[ckpt store] %s: checkpoint store format version %u is not supported (this "
                "build of weir reads version %u); use the weir version that wrote it, or move "
                "the directory aside to start without state",
                s->dir, ver, WEIR__CKPT_STORE_FORMAT_VERSION);
      goto fail;
    }
  }
  return commit(s, 0, txn);

fail:
  mdb_txn_abort(txn);
  return rc;
}

int weir__ckpt_store_open(const char *dir, const struct weir__ckpt_store_opts *opts,
                          struct weir__ckpt_store **out) {
  struct weir__ckpt_store *s = NULL, *it;
  bool locked = false;
  struct stat st;
  int mrc, dead = 0, rc;

  last_err[0] = '\0';
  if (dir == NULL || dir[0] == '\0' || strlen(dir) > 4000 || out == NULL)
    return fail(WEIR_EINVAL, "[ckpt store] open: bad arguments");
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return fail(WEIR_ESYS, "[ckpt store] mkdir %s: %s", dir, strerror(errno));
  if (stat(dir, &st) != 0)
    return fail(WEIR_ESYS, "[ckpt store] stat %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return fail(WEIR_EINVAL, "[ckpt store] %s is not a directory", dir);

  WEIR_ASSERT(pthread_mutex_lock(&open_mu) == 0);
  locked = true;
  for (it = open_stores; it != NULL; it = it->next)
    if (it->dev == st.st_dev && it->ino == st.st_ino && it->pid == getpid()) {
      rc = fail(WEIR_EEXIST, "[ckpt store] %s is already open in this process (as %s)", dir,
                it->dir);
      goto fail;
    }
  if ((s = calloc(1, sizeof(*s))) == NULL || (s->dir = strdup(dir)) == NULL) {
    rc = fail(WEIR_ENOMEM, "[ckpt store] open %s: out of memory", dir);
    goto fail;
  }
  if (opts != NULL)
    s->opts = *opts;
  else
    weir__ckpt_store_opts_init(&s->opts);
  if (s->opts.map_size == 0)
    s->opts.map_size = WEIR__CKPT_DEFAULT_MAP_SIZE;
  if (s->opts.max_readers == 0)
    s->opts.max_readers = WEIR__CKPT_DEFAULT_MAX_READERS;
  if (s->opts.retain == 0)
    s->opts.retain = WEIR__CKPT_DEFAULT_RETAIN;
  s->pid = getpid();
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  WEIR_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);

  if ((mrc = mdb_env_create(&s->env)) != 0) {
    s->env = NULL;
    rc = lmdb_fail(s, 0, "env create", mrc);
    goto fail;
  }
  if ((mrc = mdb_env_set_mapsize(s->env, s->opts.map_size)) != 0 ||
      (mrc = mdb_env_set_maxreaders(s->env, s->opts.max_readers)) != 0 ||
      (mrc = mdb_env_set_maxdbs(s->env, 4)) != 0) {
    rc = lmdb_fail(s, 0, "env setup", mrc);
    goto fail;
  }
  /* MDB_NOTLS: read transactions are not tied to threads (the store's mutex orders them). */
  if ((mrc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
    rc = lmdb_fail(s, 0, "env open", mrc);
    goto fail;
  }
  /* Reader slots of processes killed inside a read transaction would pin old pages forever. */
  if ((mrc = mdb_reader_check(s->env, &dead)) != 0) {
    rc = lmdb_fail(s, 0, "reader check", mrc);
    goto fail;
  }
  if (dead > 0)
    WEIR_LOG_INFO("[ckpt store] %s: cleared %d stale reader slot(s) of dead processes", dir, dead);
  if ((rc = init_layout(s)) != 0)
    goto fail;
  s->next = open_stores;
  open_stores = s;
  WEIR_ASSERT(pthread_mutex_unlock(&open_mu) == 0);
  *out = s;
  return 0;

fail:
  if (s != NULL) {
    if (s->env != NULL)
      mdb_env_close(s->env);
    if (s->dir != NULL)
      WEIR_ASSERT(pthread_mutex_destroy(&s->mu) == 0);
    free(s->dir);
    free(s);
  }
  if (locked)
    WEIR_ASSERT(pthread_mutex_unlock(&open_mu) == 0);
  return rc;
}

void weir__ckpt_store_close(struct weir__ckpt_store *s) {
  struct weir__ckpt_store **pp;

  if (s == NULL)
    return;
  WEIR_ASSERT(pthread_mutex_lock(&open_mu) == 0);
  for (pp = &open_stores; *pp != NULL; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  WEIR_ASSERT(pthread_mutex_unlock(&open_mu) == 0);
  /* In a forked child the environment is the parent's: leave its map and locks alone. */
  if (s->pid == getpid())
    mdb_env_close(s->env);
  WEIR_ASSERT(pthread_mutex_destroy(&s->mu) == 0);
  free(s->dir);
  free(s);
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Newest checkpoint id the store holds (complete or pending), 0 if none. */
static int get_newest(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t id, uint64_t *newest) {
  MDB_cursor *c = NULL;
  MDB_val k, v;
  int mrc;

  *newest = 0;
  if ((mrc = mdb_cursor_open(txn, s->ckpts, &c)) != 0)
    return lmdb_fail(s, id, "cursor", mrc);
  mrc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  mdb_cursor_close(c);
  if (mrc == 0 && k.mv_size == 8)
    *newest = get_be64(k.mv_data);
  else if (mrc != 0 && mrc != MDB_NOTFOUND)
    return lmdb_fail(s, id, "find newest checkpoint", mrc);
  return 0;
}

int weir__ckpt_store_begin(struct weir__ckpt_store *s, uint64_t id) {
  MDB_txn *txn = NULL;
  uint64_t latest, newest = 0;
  int rc;

  last_err[0] = '\0';
  if (id == 0)
    return fail(WEIR_EINVAL, "[ckpt 0] checkpoint ids start at 1");
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = wtxn(s, SYNC_BLOB, id, &txn)) != 0)
    goto out;
  if ((rc = get_latest(s, txn, &latest)) != 0 || (rc = get_newest(s, txn, id, &newest)) != 0)
    goto fail;
  if (id <= latest || id <= newest) {
    rc = fail(WEIR_EINVAL,
              "[ckpt %" PRIu64 "] checkpoint ids must increase: the store already holds %" PRIu64
              " (latest complete %" PRIu64 ")",
              id, newest > latest ? newest : latest, latest);
    goto fail;
  }
  if ((rc = put_record(s, txn, id, FRAME_PENDING, NULL, 0)) != 0)
    goto fail;
  rc = commit(s, id, txn);
  goto out;

fail:
  mdb_txn_abort(txn);
out:
  unlock(s);
  return rc;
}

/* Writes one framed snapshot blob inside `txn`. */
static int write_blob(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t id, const char *uid,
                      int subtask, weir_buf blob) {
  uint8_t kb[BLOB_KEY_MAX];
  MDB_val k, v;
  int mrc;

  k.mv_size = blob_key(kb, id, uid, subtask);
  k.mv_data = kb;
  v.mv_size = WEIR__CKPT_FRAME_HEADER + blob.len;
  v.mv_data = NULL;
  if ((mrc = mdb_put(txn, s->blobs, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE)) != 0) {
    if (mrc == MDB_KEYEXIST)
      return fail(WEIR_EEXIST, "[ckpt %" PRIu64 "] snapshot of uid '%s' subtask %d already stored",
                  id, uid, subtask);
    return lmdb_fail(s, id, "write snapshot blob", mrc);
  }
  frame_write(v.mv_data, FRAME_SNAPSHOT, blob.ptr, blob.len);
  return 0;
}

/* Checks put arguments. */
static int check_put(uint64_t id, const char *uid, int subtask, weir_buf blob) {
  int rc;

  if ((rc = check_uid(id, uid)) != 0)
    return rc;
  if (subtask < 0 || (blob.ptr == NULL && blob.len > 0))
    return fail(WEIR_EINVAL, "[ckpt %" PRIu64 "] put uid '%s' subtask %d: bad arguments", id, uid,
                subtask);
  if (blob.len > WEIR__CKPT_BLOB_MAX)
    return fail(WEIR_ETOOBIG,
                "[ckpt %" PRIu64 "] snapshot of uid '%s' subtask %d is %zu bytes, over the "
                "%zu-byte bound",
                id, uid, subtask, blob.len, (size_t)WEIR__CKPT_BLOB_MAX);
  return 0;
}

int weir__ckpt_store_put(struct weir__ckpt_store *s, uint64_t id, const char *uid, int subtask,
                         weir_buf blob) {
  MDB_txn *txn = NULL;
  weir_buf payload;
  int type, rc;

  last_err[0] = '\0';
  if ((rc = check_put(id, uid, subtask, blob)) != 0)
    return rc;
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = wtxn(s, SYNC_BLOB, id, &txn)) != 0)
    goto out;
  if ((rc = get_record(s, txn, id, &type, &payload)) != 0) {
    if (rc == WEIR_ENOTFOUND)
      rc = fail(rc, "[ckpt %" PRIu64 "] put uid '%s' subtask %d: checkpoint not begun (or aborted)",
                id, uid, subtask);
    goto fail;
  }
  if (type != FRAME_PENDING) {
    rc = fail(WEIR_ESTATE,
              "[ckpt %" PRIu64 "] put uid '%s' subtask %d: checkpoint is already complete", id, uid,
              subtask);
    goto fail;
  }
  if ((rc = write_blob(s, txn, id, uid, subtask, blob)) != 0)
    goto fail;
  rc = commit(s, id, txn);
  goto out;

fail:
  mdb_txn_abort(txn);
out:
  unlock(s);
  return rc;
}

/* Ids of every record to delete when `id` completes: complete ones beyond the newest `retain`
 * (id itself included in the count) and pending ones older than id. */
static int retention(struct weir__ckpt_store *s, MDB_txn *txn, uint64_t id) {
  MDB_cursor *c = NULL;
  MDB_stat st;
  MDB_val k, v;
  uint64_t *doomed = NULL, n_complete = 0, drop_complete, cid;
  size_t n = 0, i;
  weir_buf payload;
  char why[200];
  int type, mrc, rc = 0;

  if ((mrc = mdb_stat(txn, s->ckpts, &st)) != 0 || (mrc = mdb_cursor_open(txn, s->ckpts, &c)))
    goto lmdb;
  if ((doomed = malloc(sizeof(*doomed) * (st.ms_entries + 1))) == NULL) {
    rc = fail(WEIR_ENOMEM, "[ckpt %" PRIu64 "] retention: out of memory", id);
    goto out;
  }
  /* Pass 1 counts complete checkpoints; pass 2 picks the oldest surplus ones. */
  for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
       mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    if (frame_read(v, &type, &payload, why, sizeof(why)) && type == FRAME_COMPLETE)
      n_complete++;
  if (mrc != MDB_NOTFOUND)
    goto lmdb;
  drop_complete = n_complete > s->opts.retain ? n_complete - s->opts.retain : 0;
  for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
       mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 8 || (cid = get_be64(k.mv_data)) == id)
      continue;
    if (!frame_read(v, &type, &payload, why, sizeof(why)))
      type = FRAME_PENDING; /* a damaged record is garbage: collect it like a pending one */
    if (type == FRAME_COMPLETE && drop_complete > 0) {
      drop_complete--;
      doomed[n++] = cid;
    } else if (type != FRAME_COMPLETE && cid < id) {
      doomed[n++] = cid;
    }
  }
  if (mrc != MDB_NOTFOUND)
    goto lmdb;
  mdb_cursor_close(c);
  c = NULL;
  for (i = 0; i < n && rc == 0; i++)
    rc = delete_checkpoint(s, txn, doomed[i]);
  if (n > 0 && rc == 0)
    WEIR_LOG_DEBUG("[ckpt %" PRIu64 "] retention deleted %zu checkpoint(s)", id, n);
  goto out;

lmdb:
  rc = lmdb_fail(s, id, "retention", mrc);
out:
  if (c != NULL)
    mdb_cursor_close(c);
  free(doomed);
  return rc;
}

static int commit_blobs(struct weir__ckpt_store *s, uint64_t id, const struct weir__ckpt_put *puts,
                        size_t n, bool implicit_begin, const Weir__Ckpt__CheckpointMetadata *meta);

int weir__ckpt_store_commit(struct weir__ckpt_store *s, uint64_t id,
                            const Weir__Ckpt__CheckpointMetadata *meta) {
  return commit_blobs(s, id, NULL, 0, false, meta);
}

int weir__ckpt_store_commit_with(struct weir__ckpt_store *s, uint64_t id,
                                 const struct weir__ckpt_put *puts, size_t n,
                                 const Weir__Ckpt__CheckpointMetadata *meta) {
  return commit_blobs(s, id, puts, n, true, meta);
}

static int commit_blobs(struct weir__ckpt_store *s, uint64_t id, const struct weir__ckpt_put *puts,
                        size_t n, bool implicit_begin, const Weir__Ckpt__CheckpointMetadata *meta) {
  Weir__Ckpt__CheckpointMetadata m;
  uint8_t kb[8], *packed = NULL;
  MDB_val k = {sizeof(KEY_LATEST) - 1, (void *)(uintptr_t)KEY_LATEST}, v = {8, kb};
  MDB_txn *txn = NULL;
  uint64_t latest;
  weir_buf payload;
  size_t len;
  int type, mrc, rc;

  last_err[0] = '\0';
  if (meta == NULL || id == 0 || (puts == NULL && n > 0))
    return fail(WEIR_EINVAL, "[ckpt %" PRIu64 "] commit: bad arguments", id);
  for (size_t i = 0; i < n; i++)
    if ((rc = check_put(id, puts[i].uid, puts[i].subtask, puts[i].blob)) != 0)
      return rc;
  m = *meta;
  m.format_version = WEIR__CKPT_META_FORMAT_VERSION;
  m.checkpoint_id = id;
  len = weir__ckpt__checkpoint_metadata__get_packed_size(&m);
  if ((packed = malloc(len != 0 ? len : 1)) == NULL)
    return fail(WEIR_ENOMEM, "[ckpt %" PRIu64 "] commit: out of memory", id);
  WEIR_ASSERT(weir__ckpt__checkpoint_metadata__pack(&m, packed) == len);
  if ((rc = lock(s)) != 0)
    goto out_free;
  if ((rc = wtxn(s, SYNC_FULL, id, &txn)) != 0)
    goto out;
  rc = get_record(s, txn, id, &type, &payload);
  if (rc == WEIR_ENOTFOUND && implicit_begin) {
    /* Never begun: everything goes in this one transaction; the id must still be new. */
    uint64_t newest;

    if ((rc = get_newest(s, txn, id, &newest)) != 0)
      goto fail;
    if (id <= newest) {
      rc = fail(WEIR_EINVAL,
                "[ckpt %" PRIu64 "] commit: ids must increase, the store holds %" PRIu64, id,
                newest);
      goto fail;
    }
    type = FRAME_PENDING;
  } else if (rc != 0) {
    if (rc == WEIR_ENOTFOUND)
      rc = fail(rc, "[ckpt %" PRIu64 "] commit: checkpoint not begun (or aborted)", id);
    goto fail;
  }
  if (type != FRAME_PENDING) {
    rc = fail(WEIR_ESTATE, "[ckpt %" PRIu64 "] commit: already complete", id);
    goto fail;
  }
  if ((rc = get_latest(s, txn, &latest)) != 0)
    goto fail;
  for (size_t i = 0; i < n; i++)
    if ((rc = write_blob(s, txn, id, puts[i].uid, puts[i].subtask, puts[i].blob)) != 0)
      goto fail;
  if (id <= latest) {
    rc = fail(WEIR_EINVAL,
              "[ckpt %" PRIu64 "] commit: ids must increase, latest complete is %" PRIu64, id,
              latest);
    goto fail;
  }
  if ((rc = put_record(s, txn, id, FRAME_COMPLETE, packed, len)) != 0)
    goto fail;
  put_be64(kb, id);
  if ((mrc = mdb_put(txn, s->meta, &k, &v, 0)) != 0) {
    rc = lmdb_fail(s, id, "write latest pointer", mrc);
    goto fail;
  }
  if ((rc = retention(s, txn, id)) != 0)
    goto fail;
  /* The one synced commit: LMDB syncs the data pages (this transaction's and the unsynced
   * blob transactions' before it), then writes and syncs the meta page that makes them live. */
  rc = commit(s, id, txn);
  goto out;

fail:
  mdb_txn_abort(txn);
out:
  unlock(s);
out_free:
  free(packed);
  return rc;
}

int weir__ckpt_store_abort(struct weir__ckpt_store *s, uint64_t id) {
  MDB_txn *txn = NULL;
  weir_buf payload;
  int type, rc;

  last_err[0] = '\0';
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = wtxn(s, SYNC_BLOB, id, &txn)) != 0)
    goto out;
  if ((rc = get_record(s, txn, id, &type, &payload)) != 0) {
    if (rc == WEIR_ENOTFOUND)
      snprintf(last_err, sizeof(last_err), "[ckpt %" PRIu64 "] abort: no such checkpoint", id);
    goto fail;
  }
  if (type != FRAME_PENDING) {
    rc = fail(WEIR_ESTATE, "[ckpt %" PRIu64 "] abort: checkpoint is complete", id);
    goto fail;
  }
  if ((rc = delete_checkpoint(s, txn, id)) != 0)
    goto fail;
  rc = commit(s, id, txn);
  goto out;

fail:
  mdb_txn_abort(txn);
out:
  unlock(s);
  return rc;
}

/* ---- reading -------------------------------------------------------------------------------- */

int weir__ckpt_store_latest(struct weir__ckpt_store *s, uint64_t *id) {
  MDB_txn *txn = NULL;
  int rc;

  last_err[0] = '\0';
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = rtxn(s, 0, &txn)) == 0) {
    rc = get_latest(s, txn, id);
    mdb_txn_abort(txn);
    if (rc == 0 && *id == 0)
      rc = WEIR_ENOTFOUND;
  }
  unlock(s);
  return rc;
}

int weir__ckpt_store_list(struct weir__ckpt_store *s, struct weir__ckpt_info **out, size_t *n) {
  struct weir__ckpt_info *arr = NULL;
  MDB_cursor *c = NULL;
  MDB_txn *txn = NULL;
  MDB_stat st;
  MDB_val k, v;
  weir_buf payload;
  char why[200];
  size_t cnt = 0;
  int type, mrc, rc;

  last_err[0] = '\0';
  *out = NULL;
  *n = 0;
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = rtxn(s, 0, &txn)) != 0)
    goto out;
  if ((mrc = mdb_stat(txn, s->ckpts, &st)) != 0 || (mrc = mdb_cursor_open(txn, s->ckpts, &c))) {
    rc = lmdb_fail(s, 0, "list", mrc);
    goto out;
  }
  if (st.ms_entries > 0 && (arr = calloc(st.ms_entries, sizeof(*arr))) == NULL) {
    rc = fail(WEIR_ENOMEM, "[ckpt store] list: out of memory");
    goto out;
  }
  for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0 && cnt < st.ms_entries;
       mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 8) {
      rc = fail(WEIR_EPARSE, "[ckpt store] %s: a checkpoint record is damaged: bad key", s->dir);
      goto out;
    }
    arr[cnt].id = get_be64(k.mv_data);
    /* A record whose frame is damaged is listed as such: restore skips it, retention
     * collects it, and the ids of new checkpoints still go beyond it. */
    arr[cnt].damaged = !frame_read(v, &type, &payload, why, sizeof(why));
    if (arr[cnt].damaged)
      WEIR_LOG_WARN("[ckpt %" PRIu64 "] %s: checkpoint record is damaged: %s", arr[cnt].id, s->dir,
                    why);
    arr[cnt].complete = !arr[cnt].damaged && type == FRAME_COMPLETE;
    cnt++;
  }
  if (mrc != 0 && mrc != MDB_NOTFOUND) {
    rc = lmdb_fail(s, 0, "list", mrc);
    goto out;
  }
  *out = arr;
  *n = cnt;
  arr = NULL;

out:
  if (c != NULL)
    mdb_cursor_close(c);
  if (txn != NULL)
    mdb_txn_abort(txn);
  unlock(s);
  free(arr);
  return rc;
}

int weir__ckpt_store_read_meta(struct weir__ckpt_store *s, uint64_t id,
                               Weir__Ckpt__CheckpointMetadata **meta) {
  MDB_txn *txn = NULL;
  weir_buf payload;
  char why[200];
  int type, rc;

  last_err[0] = '\0';
  *meta = NULL;
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = rtxn(s, id, &txn)) != 0)
    goto out;
  if ((rc = get_record(s, txn, id, &type, &payload)) != 0) {
    if (rc == WEIR_ENOTFOUND)
      snprintf(last_err, sizeof(last_err), "[ckpt %" PRIu64 "] no such checkpoint", id);
    goto out;
  }
  if (type != FRAME_COMPLETE) {
    rc = fail(WEIR_ESTATE, "[ckpt %" PRIu64 "] is not complete: it has no metadata", id);
    goto out;
  }
  /* Decoded while the read transaction lives: protobuf-c copies what it keeps. */
  if ((rc = weir__ckpt_meta_decode(payload, id, meta, why, sizeof(why))) != 0) {
    rc = fail(rc, "[ckpt %" PRIu64 "] %s: %s", id, s->dir, why);
    goto out;
  }

out:
  if (txn != NULL)
    mdb_txn_abort(txn);
  unlock(s);
  return rc;
}

void weir__ckpt_meta_free(Weir__Ckpt__CheckpointMetadata *meta) {
  if (meta != NULL)
    weir__ckpt__checkpoint_metadata__free_unpacked(meta, NULL);
}

/* Verifies a blob value read under (id, uid, subtask). */
static int check_blob(uint64_t id, const char *uid, int subtask, MDB_val v, weir_buf *payload) {
  char why[200] = "wrong frame type";
  int type = 0;

  if (!frame_read(v, &type, payload, why, sizeof(why)) || type != FRAME_SNAPSHOT)
    return fail(WEIR_EPARSE,
                "[ckpt %" PRIu64 "] snapshot of uid '%s' subtask %d is damaged: %s; restore from "
                "an older checkpoint (by id) or move the job directory aside",
                id, uid, subtask, why);
  return 0;
}

int weir__ckpt_store_get_blob(struct weir__ckpt_store *s, uint64_t id, const char *uid, int subtask,
                              uint8_t **ptr, size_t *len) {
  uint8_t kb[BLOB_KEY_MAX], *copy = NULL;
  MDB_val k, v;
  MDB_txn *txn = NULL;
  weir_buf payload;
  int mrc, rc;

  last_err[0] = '\0';
  *ptr = NULL;
  *len = 0;
  if ((rc = check_uid(id, uid)) != 0)
    return rc;
  if (subtask < 0)
    return fail(WEIR_EINVAL, "[ckpt %" PRIu64 "] get_blob: negative subtask", id);
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = rtxn(s, id, &txn)) != 0)
    goto out;
  k.mv_size = blob_key(kb, id, uid, subtask);
  k.mv_data = kb;
  if ((mrc = mdb_get(txn, s->blobs, &k, &v)) != 0) {
    if (mrc == MDB_NOTFOUND) {
      rc = WEIR_ENOTFOUND;
      snprintf(last_err, sizeof(last_err), "[ckpt %" PRIu64 "] no snapshot of uid '%s' subtask %d",
               id, uid, subtask);
    } else {
      rc = lmdb_fail(s, id, "read snapshot blob", mrc);
    }
    goto out;
  }
  if ((rc = check_blob(id, uid, subtask, v, &payload)) != 0)
    goto out;
  if (payload.len > 0) {
    if ((copy = malloc(payload.len)) == NULL) {
      rc = fail(WEIR_ENOMEM, "[ckpt %" PRIu64 "] out of memory reading a %zu-byte blob", id,
                payload.len);
      goto out;
    }
    memcpy(copy, payload.ptr, payload.len);
  }
  *ptr = copy;
  *len = payload.len;

out:
  if (txn != NULL)
    mdb_txn_abort(txn);
  unlock(s);
  return rc;
}

int weir__ckpt_store_foreach_blob(struct weir__ckpt_store *s, uint64_t id, const char *uid,
                                  weir__ckpt_blob_cb cb, void *data) {
  uint8_t kb[BLOB_KEY_MAX];
  MDB_cursor *c = NULL;
  MDB_txn *txn = NULL;
  MDB_val k, v;
  weir_buf payload;
  size_t plen;
  int mrc, rc, subtask;

  last_err[0] = '\0';
  if ((rc = check_uid(id, uid)) != 0)
    return rc;
  if ((rc = lock(s)) != 0)
    return rc;
  if ((rc = rtxn(s, id, &txn)) != 0)
    goto out;
  if ((mrc = mdb_cursor_open(txn, s->blobs, &c)) != 0) {
    rc = lmdb_fail(s, id, "cursor", mrc);
    goto out;
  }
  plen = blob_key(kb, id, uid, -1);
  k.mv_size = plen;
  k.mv_data = kb;
  for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); mrc == 0;
       mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    const uint8_t *p = k.mv_data;

    if (k.mv_size != plen + 4 || memcmp(p, kb, plen) != 0)
      break;
    subtask = (int)((uint32_t)p[plen] << 24 | (uint32_t)p[plen + 1] << 16 |
                    (uint32_t)p[plen + 2] << 8 | p[plen + 3]);
    if ((rc = check_blob(id, uid, subtask, v, &payload)) != 0 ||
        (rc = cb(data, subtask, payload)) != 0)
      goto out;
  }
  if (mrc != 0 && mrc != MDB_NOTFOUND)
    rc = lmdb_fail(s, id, "iterate snapshot blobs", mrc);

out:
  if (c != NULL)
    mdb_cursor_close(c);
  if (txn != NULL)
    mdb_txn_abort(txn);
  unlock(s);
  return rc;
}
