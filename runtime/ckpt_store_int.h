/*
 * ckpt_store_int.h: the checkpoint store, one LMDB environment in the job directory.
 *
 * A checkpoint's life: begin(N) records N as pending; put() stores each operator subtask's
 * snapshot blob as it arrives (unsynced write transactions); commit(N, metadata) is ONE fully
 * synced transaction that stores N's metadata, marks N complete, moves the "latest complete"
 * pointer to N and applies retention. N is complete exactly when that transaction is durable;
 * a crash at any earlier point leaves the previous latest complete checkpoint in charge, and
 * the leftovers of N are deleted by the next commit. abort(N) deletes N at once.
 *
 * Databases and key layout (all integers big-endian in keys, so LMDB's byte order is numeric
 * order; full description in docs/internals/checkpointing.md):
 *
 *   "weir.meta"         "format_version" -> u32 BE   WEIR__CKPT_STORE_FORMAT_VERSION
 *                       "latest"         -> u64 BE   id of the latest complete checkpoint
 *   "weir.checkpoints"  id (u64 BE)      -> frame(type PENDING, empty payload)
 *                                         | frame(type COMPLETE, CheckpointMetadata protobuf)
 *   "weir.blobs"        id (u64 BE) | uid bytes | 0x00 | subtask (u32 BE)
 *                                        -> frame(type SNAPSHOT, OperatorSnapshot protobuf)
 *
 * Every value is framed (24-byte header, then the payload):
 *   0  magic "WCKP"   4  u8 frame version (1)   5  u8 type   6  u16 0
 *   8  u64 LE payload length   16  u64 LE XXH3-64 of the payload
 * so a truncated or damaged value is detected on read (WEIR_EPARSE naming id, uid, subtask)
 * before anything decodes it.
 *
 * Process rules (LMDB caveats): one store per job directory per process (a second open of the
 * same directory in one process is refused: LMDB's locks would break); open it after any
 * fork, and never use it in a forked child (calls there return WEIR_ESTATE); stale reader
 * slots of dead processes are cleared at open (mdb_reader_check). Files are created 0600, the
 * directory 0700.
 *
 * Threads: every function may be called from any thread; one mutex serialises them (write
 * transactions, the NOSYNC flag they toggle, and short read transactions). Callbacks run
 * under that mutex: they must not call the store.
 *
 * Errors: functions return 0 or a WEIR_E* code; every failure is logged once and its message
 * ("[ckpt 42] ...") is kept for the calling thread: weir__ckpt_store_last_error().
 */
#ifndef WEIR_CKPT_STORE_INT_H
#define WEIR_CKPT_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/checkpoint.pb-c.h"
#include "weir/common.h"

/* Store layout version (key "format_version" in weir.meta). An unknown version is refused. */
#define WEIR__CKPT_STORE_FORMAT_VERSION 1u
/* CheckpointMetadata.format_version written and accepted. */
#define WEIR__CKPT_META_FORMAT_VERSION 1u
/* Value frame version (byte 4 of every frame). */
#define WEIR__CKPT_FRAME_VERSION 1u
#define WEIR__CKPT_FRAME_HEADER 24u

/* Longest operator uid, in bytes (LMDB keys are at most 511 bytes; ours add 13). */
#define WEIR__CKPT_UID_MAX 255
/* Largest blob put() accepts (LMDB holds more; this bounds the single copy a read makes). */
#define WEIR__CKPT_BLOB_MAX ((size_t)2 << 30)

#define WEIR__CKPT_DEFAULT_MAP_SIZE ((size_t)1 << 30) /* 1 GiB of address space, sparse */
#define WEIR__CKPT_DEFAULT_MAX_READERS 126            /* LMDB's default */
#define WEIR__CKPT_DEFAULT_RETAIN 3

struct weir__ckpt_store;

struct weir__ckpt_store_opts {
  size_t map_size;      /* LMDB map size: the store's maximum size in bytes (0 = default) */
  unsigned max_readers; /* LMDB reader slots (0 = default) */
  unsigned retain;      /* complete checkpoints kept, >= 1 (0 = default) */
  /* false (default): blob puts are not synced at all; the commit's sync makes them durable.
   * true: blob puts sync their data pages (MDB_NOMETASYNC), which keeps the environment intact
   * across a power loss even on file systems that reorder writes, at one fsync per put. */
  bool durable_blobs;
};

/* Fills `o` with the defaults. */
void weir__ckpt_store_opts_init(struct weir__ckpt_store_opts *o);

/*
 * Opens (creating if needed) the store in directory `dir` (copied; created 0700 if missing).
 * `opts` is copied; NULL means defaults. *out is transferred: close with
 * weir__ckpt_store_close.
 * Returns 0; WEIR_EINVAL (bad argument); WEIR_EEXIST (already open in this process);
 * WEIR_EPARSE (the store has an unknown format version, or is not a weir store / is corrupt);
 * WEIR_ESYS (mkdir, or LMDB reported an OS error: permissions, disk); WEIR_ENOMEM.
 */
int weir__ckpt_store_open(const char *dir, const struct weir__ckpt_store_opts *opts,
                          struct weir__ckpt_store **out);

/* Closes the environment and frees the store. NULL is a no-op. No call may be running. */
void weir__ckpt_store_close(struct weir__ckpt_store *s);

/*
 * Records checkpoint `id` as pending. Ids are strictly increasing: `id` must exceed every id
 * the store holds (complete or pending). 0 is not a valid id.
 * Returns 0, WEIR_EINVAL (id too small), WEIR_ETOOBIG (map full), WEIR_EIO/WEIR_ESYS.
 */
int weir__ckpt_store_begin(struct weir__ckpt_store *s, uint64_t id);

/*
 * Stores the snapshot blob of (`id`, `uid`, `subtask`). `uid` (1..WEIR__CKPT_UID_MAX bytes)
 * and `blob` are copied; the store frames the blob but does not decode it. Not synced (see
 * opts.durable_blobs): durable once commit(id) returns.
 * Returns 0; WEIR_ENOTFOUND (id not begun); WEIR_ESTATE (id already complete); WEIR_EEXIST
 * (that subtask's blob is already stored); WEIR_EINVAL; WEIR_ETOOBIG (blob over
 * WEIR__CKPT_BLOB_MAX, or the map is full: raise map_size); WEIR_EIO/WEIR_ESYS.
 */
int weir__ckpt_store_put(struct weir__ckpt_store *s, uint64_t id, const char *uid, int subtask,
                         weir_buf blob);

/*
 * Completes pending checkpoint `id` in one synced transaction: stores `meta` (borrowed; packed
 * with format_version and checkpoint_id overridden by the store), marks `id` complete, sets
 * latest = id, then deletes every complete checkpoint beyond the newest `retain` and every
 * pending one older than `id`, with their blobs. When it returns 0, `id` is durable and the
 * caller may deliver notify_checkpoint_complete(id).
 * Returns 0; WEIR_EINVAL (id <= latest, or bad meta); WEIR_ENOTFOUND (id not begun);
 * WEIR_ESTATE (already complete); WEIR_ETOOBIG (map full); WEIR_EIO/WEIR_ESYS. On failure
 * nothing changed (the transaction is aborted).
 */
int weir__ckpt_store_commit(struct weir__ckpt_store *s, uint64_t id,
                            const Weir__Ckpt__CheckpointMetadata *meta);

/* A snapshot blob for weir__ckpt_store_commit_with (all borrowed for the call). */
struct weir__ckpt_put {
  const char *uid;
  int subtask;
  weir_buf blob;
};

/*
 * Like weir__ckpt_store_commit, and also writes `n` blobs in the same synced transaction, so a
 * checkpoint whose blobs are all small costs one transaction. `id` need not have been begun
 * (then it must exceed every id the store holds); if it was, blobs already put stay. Same
 * returns as commit, plus the put errors (WEIR_EEXIST, WEIR_ETOOBIG).
 */
int weir__ckpt_store_commit_with(struct weir__ckpt_store *s, uint64_t id,
                                 const struct weir__ckpt_put *puts, size_t n,
                                 const Weir__Ckpt__CheckpointMetadata *meta);

/* Deletes pending checkpoint `id` and its blobs. 0, WEIR_ENOTFOUND, WEIR_ESTATE (complete). */
int weir__ckpt_store_abort(struct weir__ckpt_store *s, uint64_t id);

/* The latest complete checkpoint id. 0 or WEIR_ENOTFOUND (none yet). */
int weir__ckpt_store_latest(struct weir__ckpt_store *s, uint64_t *id);

struct weir__ckpt_info {
  uint64_t id;
  bool complete;
  bool damaged; /* the record's frame does not verify (complete is then false) */
};

/*
 * Every checkpoint the store holds, ascending by id, damaged records included (flagged, and
 * logged as a warning). *out is transferred (free() it; NULL when *n is 0). Returns 0,
 * WEIR_ENOMEM, WEIR_EIO, WEIR_EPARSE (a key that is not a checkpoint id).
 */
int weir__ckpt_store_list(struct weir__ckpt_store *s, struct weir__ckpt_info **out, size_t *n);

/*
 * Decodes the metadata of complete checkpoint `id`. *meta is transferred: free it with
 * weir__ckpt_meta_free. Returns 0; WEIR_ENOTFOUND; WEIR_ESTATE (pending: no metadata yet);
 * WEIR_EPARSE (corrupt, or an unknown metadata format version).
 */
int weir__ckpt_store_read_meta(struct weir__ckpt_store *s, uint64_t id,
                               Weir__Ckpt__CheckpointMetadata **meta);
void weir__ckpt_meta_free(Weir__Ckpt__CheckpointMetadata *meta);

/*
 * The decoding steps of the reads above, without the store (for tests and fuzzing). Both are
 * pure and reentrant.
 *
 * weir__ckpt_frame_decode verifies one framed value p[0..len) (magic, frame version, length,
 * checksum, type); on 0, *type is the frame type (1 pending, 2 complete, 3 snapshot) and
 * *payload views into p. WEIR_EPARSE otherwise, with `why` (why_len bytes) saying what is wrong.
 *
 * weir__ckpt_meta_decode decodes a COMPLETE frame's payload (borrowed for the call) as the
 * metadata of checkpoint `id`: 0 with *meta transferred (weir__ckpt_meta_free), or WEIR_EPARSE
 * (does not decode, unknown format version, other id) with `why` set.
 */
int weir__ckpt_frame_decode(const uint8_t *p, size_t len, int *type, weir_buf *payload, char *why,
                            size_t why_len);
int weir__ckpt_meta_decode(weir_buf payload, uint64_t id, Weir__Ckpt__CheckpointMetadata **meta,
                           char *why, size_t why_len);

/*
 * Copies out the verified blob of (id, uid, subtask). *ptr is transferred (free()); it may be
 * NULL when *len is 0. Returns 0, WEIR_ENOTFOUND, WEIR_EPARSE (frame damaged: the message
 * names id, uid and subtask), WEIR_ENOMEM.
 */
int weir__ckpt_store_get_blob(struct weir__ckpt_store *s, uint64_t id, const char *uid, int subtask,
                              uint8_t **ptr, size_t *len);

/*
 * Blob callback: `blob` is borrowed from LMDB's map for the call only (copy what you keep).
 * Return 0 to go on; any other value stops the iteration and is returned by it.
 */
typedef int (*weir__ckpt_blob_cb)(void *data, int subtask, weir_buf blob);

/*
 * Calls cb for each stored blob of (`id`, `uid`), ascending by subtask, inside one read
 * transaction (hold it short: decode, then return). Every blob's frame is verified before cb
 * sees it. Returns 0 (also when there are none), WEIR_EPARSE (damaged blob; message names
 * id/uid/subtask), or cb's non-zero return.
 */
int weir__ckpt_store_foreach_blob(struct weir__ckpt_store *s, uint64_t id, const char *uid,
                                  weir__ckpt_blob_cb cb, void *data);

/* The calling thread's last store error message ("" if none). Borrowed until the thread's
 * next store call. */
const char *weir__ckpt_store_last_error(void);

#endif /* WEIR_CKPT_STORE_INT_H */
