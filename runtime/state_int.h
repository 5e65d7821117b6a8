/*
 * state_int.h: the keyed-state backend behind weir/state.h, one per stateful operator subtask.
 *
 * A backend holds every named state (value, map, list) of one operator subtask for the key
 * groups [kg_first, kg_last] that subtask owns. It turns them into one OperatorSnapshot
 * protobuf blob (proto/checkpoint.proto) at a checkpoint barrier and loads such blobs back on
 * restore, keeping only the key groups it owns, so blobs written at any old parallelism can be
 * fed to every new subtask (that is how keyed state is redistributed on rescale).
 *
 * Storage: per state, an open-addressing hash table (linear probing, backward-shift delete)
 * of 64-bit slots (32-bit hash tag | entry id) over an entry array; key and value bytes live in
 * size-class slab blocks carved from 1 MiB chunks. Freed blocks and entries are reused, so the
 * steady state (puts of keys already seen, or churn) allocates nothing. Every allocation is charged
 * to the backend's byte budget (`max_bytes`); past it writes fail with WEIR_ETOOBIG. Each entry
 * keeps its 64-bit XXH3 hash and key group: snapshots group by key group without rehashing. Key
 * group = XXH3_64bits(key) % max_parallelism, exactly weir__key_group.
 *
 * Threads: a backend and its states are used by one thread at a time (the subtask's thread);
 * nothing here locks. Error details: functions that fail set a message for the calling thread,
 * read with weir__state_last_error(); snapshot and restore failures are also logged.
 */
#ifndef WEIR_STATE_INT_H
#define WEIR_STATE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "weir/state.h"

/* Version written into OperatorSnapshot.format_version; restore accepts only this one. */
#define WEIR__SNAPSHOT_FORMAT_VERSION 1u

/* Default byte budget of one backend (all its states together). */
#define WEIR__STATE_DEFAULT_MAX_BYTES ((size_t)1 << 30)

/* Largest snapshot blob one backend writes or reads (protobuf-c and LMDB handle more; this
 * bounds memory). */
#define WEIR__SNAPSHOT_MAX_BYTES ((size_t)2 << 30)

enum weir__state_kind {
  WEIR__STATE_VALUE = 1, /* = Weir__Ckpt__StateKind values */
  WEIR__STATE_MAP = 2,
  WEIR__STATE_LIST = 3
};

struct weir__keyed_backend;

/*
 * The key-group range [*first, *last] owned by `subtask` of `parallelism` under Flink's
 * assignment (weir__key_group_subtask: owner(kg) = kg * parallelism / max_parallelism).
 * Requires 1 <= parallelism <= max_parallelism and 0 <= subtask < parallelism (asserted); the
 * range is never empty then.
 */
void weir__key_group_range(int subtask, int parallelism, int max_parallelism, uint32_t *first,
                           uint32_t *last);

/*
 * Creates an empty backend for key groups [kg_first, kg_last] of `max_parallelism`
 * (1..32768). `max_bytes` is the byte budget (0 = WEIR__STATE_DEFAULT_MAX_BYTES).
 * *out is transferred: free with weir__keyed_backend_destroy.
 * Returns 0, WEIR_EINVAL (range outside [0, max_parallelism)) or WEIR_ENOMEM.
 */
int weir__keyed_backend_create(int max_parallelism, uint32_t kg_first, uint32_t kg_last,
                               size_t max_bytes, struct weir__keyed_backend **out);

/* Frees the backend, its states and every byte they hold. Handles die with it. NULL: no-op. */
void weir__keyed_backend_destroy(struct weir__keyed_backend *b);

/*
 * Registers the state `name` (copied; 1..WEIR_STATE_MAX_NAME bytes) of `kind`, or finds it if
 * already registered (by the operator, or by a restore that met it first). *state receives a
 * weir_value_state *, weir_map_state * or weir_list_state * according to `kind`; it is
 * borrowed, valid until the backend is destroyed.
 * Returns 0, WEIR_EINVAL (bad name or kind, or `name` exists with another kind),
 * WEIR_ETOOBIG (more than 64 states) or WEIR_ENOMEM.
 */
int weir__keyed_backend_register(struct weir__keyed_backend *b, enum weir__state_kind kind,
                                 const char *name, void **state);

/* Bytes currently charged to the budget, and the number of keys over all states. */
size_t weir__keyed_backend_bytes(const struct weir__keyed_backend *b);
uint64_t weir__keyed_backend_key_count(const struct weir__keyed_backend *b);

/* A snapshot blob: `ptr` is transferred to the caller, free it with free(). */
struct weir__snapshot_blob {
  uint8_t *ptr;
  size_t len;
  uint64_t key_count; /* keyed entries in the blob: for OperatorInfo.key_count */
};

/*
 * Serialises every state of the backend plus the opaque operator bytes into one
 * OperatorSnapshot (format version WEIR__SNAPSHOT_FORMAT_VERSION). `uid` is copied into the
 * blob; `operator_bytes` (may be NULL when operator_len is 0) is copied. The backend is not
 * changed; the cost is one pass over the entries plus the encoding (synchronous snapshot).
 * Returns 0, WEIR_EINVAL, WEIR_ETOOBIG (blob over WEIR__SNAPSHOT_MAX_BYTES) or WEIR_ENOMEM;
 * on failure *out is untouched.
 */
int weir__keyed_backend_snapshot(const struct weir__keyed_backend *b, const char *uid, int subtask,
                                 int parallelism, const uint8_t *operator_bytes,
                                 size_t operator_len, struct weir__snapshot_blob *out);

/* What a restore learned from the blob's header. */
struct weir__snapshot_header {
  uint32_t subtask, parallelism, max_parallelism, kg_first, kg_last;
  uint64_t key_count;     /* entries restored into this backend from the blob */
  uint64_t key_count_all; /* entries in the blob */
};

/*
 * Loads the keyed entries of `blob` (borrowed for the call) whose key group lies in this
 * backend's range, from a snapshot written at any parallelism; entries of other key groups are
 * skipped. Call once per old subtask blob whose range overlaps ours (or simply for all of
 * them). States are matched by name; a state not registered yet is registered (so registering
 * it later finds its restored content).
 *
 * `origin` (borrowed, may be NULL) names the blob in error messages, e.g. "checkpoint 7 uid
 * 'count' subtask 1". If `operator_state` is non-NULL it receives a malloc'd copy of the
 * blob's opaque operator bytes (transferred: free(); NULL with len 0 when empty). `hdr` may be
 * NULL.
 *
 * Returns 0; WEIR_EPARSE for a blob that does not decode, has an unknown format version, or is
 * inconsistent (a key stored under the wrong key group, a duplicate key, a bad state index);
 * WEIR_EINVAL when its max parallelism differs from the backend's or a state name exists with
 * another kind; WEIR_ETOOBIG (budget) or WEIR_ENOMEM. On failure the backend holds an
 * unspecified subset of the blob: destroy it.
 */
int weir__keyed_backend_restore(struct weir__keyed_backend *b, weir_buf blob, const char *origin,
                                uint8_t **operator_state, size_t *operator_len,
                                struct weir__snapshot_header *hdr);

/*
 * Calls cb for every (key, value) of a value state, in unspecified order; both borrowed for
 * the call. The callback must not write to `st`. Returns 0 or the callback's non-zero return.
 * For operators that rebuild an in-memory index after a restore (window timers,
 * operators/window.c): the public API has no walk over keys on purpose.
 */
/*
 * As weir_value_state_get, but the value may be changed in place (same length) through *ptr
 * until the next write to `st`: the window operator updates accumulators without a second
 * lookup and copy. Returns 0, WEIR_ENOTFOUND or WEIR_EINVAL.
 */
int weir__value_state_get_mut(weir_value_state *st, weir_buf key, uint8_t **ptr, size_t *len);

/*
 * Hot-path variants for an operator that touches the state once or more per record: the key's
 * hash is computed once (weir__state_key_hash, the XXH3-64 the key group derives from) and
 * passed to every call on that key, and a batch of keys can be prefetched before it is
 * processed. `h` must be weir__state_key_hash(key) (a wrong hash finds nothing and inserts
 * duplicates: not checked). Same results and return codes as the calls without _h.
 */
uint64_t weir__state_key_hash(weir_buf key);
int weir__value_state_get_h(weir_value_state *st, weir_buf key, uint64_t h, weir_buf *val);
int weir__value_state_get_mut_h(weir_value_state *st, weir_buf key, uint64_t h, uint8_t **ptr,
                                size_t *len);
int weir__value_state_put_h(weir_value_state *st, weir_buf key, uint64_t h, weir_buf val);
int weir__value_state_remove_h(weir_value_state *st, weir_buf key, uint64_t h);

/*
 * Prefetch hint for the key of hash `h`, in three stages run over a group of keys one after
 * the other (all keys stage 0, then all stage 1, then all stage 2), so the group's cache
 * misses overlap instead of following each other: 0 = its index slot, 1 = its entry, 2 = its
 * key and value bytes. Each stage reads only what the previous one fetched. Changes nothing;
 * a hint made stale by writes in between is harmless.
 */
void weir__value_state_prefetch(weir_value_state *st, uint64_t h, int stage);

typedef int (*weir__value_state_cb)(void *data, weir_buf key, weir_buf val);
int weir__value_state_foreach(weir_value_state *st, weir__value_state_cb cb, void *data);

/* The calling thread's last state error message ("" if none). Borrowed until the thread's next
 * state call. */
const char *weir__state_last_error(void);

#endif /* WEIR_STATE_INT_H */
