/*
 * weir/state.h: keyed state for operators.
 *
 * A stateful operator registers named states in its `open` callback, then reads and writes
 * them per record with the record's key. The runtime snapshots every registered state at each
 * checkpoint barrier and restores it on restart; keys are grouped into key groups
 * (XXH3-64(key) mod max parallelism), so a job restored with a different parallelism hands
 * each key's state to the subtask that now owns its key group.
 *
 * Three kinds:
 *   value state  key -> value
 *   map state    key -> (map key -> value)
 *   list state   key -> list of values (append order)
 *
 * Threads: a state handle belongs to one subtask and may only be used on that subtask's
 * thread, from operator callbacks (open, process, on_tick, on_watermark, finish). Handles stay
 * valid until the operator's `close` returns; never free them.
 *
 * Keys must be keys of the subtask's own key groups, i.e. the key its input was partitioned
 * by (weir_job_key_by); any other key fails with WEIR_EINVAL.
 *
 * Bounds: each subtask's keyed state has a byte budget (entries, their bytes and the hash
 * tables); a write that would exceed it returns WEIR_ETOOBIG and changes nothing. One key plus
 * its value (or map key plus value) may not exceed WEIR_STATE_MAX_ENTRY_BYTES.
 */
#ifndef WEIR_STATE_H
#define WEIR_STATE_H

#include "common.h"
#include "job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest key + value (map: key, map key and value) one state entry may hold. */
#define WEIR_STATE_MAX_ENTRY_BYTES (64u * 1024u * 1024u)
/* Longest state name, in bytes. */
#define WEIR_STATE_MAX_NAME 128

typedef struct weir_value_state weir_value_state;
typedef struct weir_map_state weir_map_state;
typedef struct weir_list_state weir_list_state;

/*
 * Registers (or finds) the named state of this operator subtask and stores its handle in *st.
 * Call from `open`. Registering the same name and kind again returns the same handle; the
 * name is copied. Restored state is visible from the first process/poll call (a restore runs
 * after every operator of the chain has opened). Register the same states on every subtask.
 * Returns 0, WEIR_EINVAL (empty or too long name, or a name registered with another kind),
 * WEIR_ETOOBIG (more than 64 states) or WEIR_ENOMEM.
 */
WEIR_API int weir_ctx_value_state(weir_ctx *ctx, const char *name, weir_value_state **st);
WEIR_API int weir_ctx_map_state(weir_ctx *ctx, const char *name, weir_map_state **st);
WEIR_API int weir_ctx_list_state(weir_ctx *ctx, const char *name, weir_list_state **st);

/* ---- value state ------------------------------------------------------------------------- */

/*
 * Looks up `key`'s value. On success *val is borrowed: valid until the next write (put,
 * remove, or a restore) to `st`. Returns 0, WEIR_ENOTFOUND or WEIR_EINVAL (foreign key).
 */
WEIR_API int weir_value_state_get(weir_value_state *st, weir_buf key, weir_buf *val);

/*
 * Sets `key`'s value. Key and value are copied (`val` may point at memory returned by get).
 * Returns 0, WEIR_EINVAL (foreign key), WEIR_ETOOBIG (byte budget or entry bound reached;
 * nothing changed) or WEIR_ENOMEM.
 */
WEIR_API int weir_value_state_put(weir_value_state *st, weir_buf key, weir_buf val);

/* Removes `key`'s value. Returns 0, WEIR_ENOTFOUND or WEIR_EINVAL. */
WEIR_API int weir_value_state_remove(weir_value_state *st, weir_buf key);

/* Number of keys holding a value. */
WEIR_API size_t weir_value_state_count(const weir_value_state *st);

/* ---- map state --------------------------------------------------------------------------- */

/* Looks up (key, map_key). *val borrowed as for weir_value_state_get. 0, WEIR_ENOTFOUND,
 * WEIR_EINVAL. */
WEIR_API int weir_map_state_get(weir_map_state *st, weir_buf key, weir_buf map_key, weir_buf *val);

/* Sets (key, map_key) -> val; everything copied. 0, WEIR_EINVAL, WEIR_ETOOBIG, WEIR_ENOMEM. */
WEIR_API int weir_map_state_put(weir_map_state *st, weir_buf key, weir_buf map_key, weir_buf val);

/* Removes (key, map_key); the key disappears with its last map entry. 0, WEIR_ENOTFOUND,
 * WEIR_EINVAL. */
WEIR_API int weir_map_state_remove(weir_map_state *st, weir_buf key, weir_buf map_key);

/* Removes every map entry of `key`. 0 (also when it had none) or WEIR_EINVAL. */
WEIR_API int weir_map_state_clear(weir_map_state *st, weir_buf key);

/*
 * Map-entry callback: `map_key` and `val` are borrowed for the call. Return 0 to go on, or any
 * other value to stop; the iterating function then returns that value. The callback must not
 * write to the state being iterated.
 */
typedef int (*weir_map_state_cb)(void *data, weir_buf map_key, weir_buf val);

/* Calls cb for every map entry of `key` (unspecified order). 0 (also when none), WEIR_EINVAL,
 * or the callback's non-zero return. */
WEIR_API int weir_map_state_foreach(weir_map_state *st, weir_buf key, weir_map_state_cb cb,
                                    void *data);

/* ---- list state -------------------------------------------------------------------------- */

/* Appends a copy of `val` to `key`'s list. 0, WEIR_EINVAL, WEIR_ETOOBIG, WEIR_ENOMEM. */
WEIR_API int weir_list_state_append(weir_list_state *st, weir_buf key, weir_buf val);

/* List-element callback: `val` borrowed for the call; non-zero return stops (see map). */
typedef int (*weir_list_state_cb)(void *data, weir_buf val);

/* Calls cb for every element of `key`'s list in append order. 0, WEIR_EINVAL, or the
 * callback's non-zero return. The callback must not write to `st`. */
WEIR_API int weir_list_state_foreach(weir_list_state *st, weir_buf key, weir_list_state_cb cb,
                                     void *data);

/* Number of elements in `key`'s list (0 if none). Foreign keys count as empty. */
WEIR_API size_t weir_list_state_len(weir_list_state *st, weir_buf key);

/* Removes `key`'s whole list. 0 (also when empty) or WEIR_EINVAL. */
WEIR_API int weir_list_state_clear(weir_list_state *st, weir_buf key);

/* ---- built-in keyed aggregates ---------------------------------------------------------- */

/*
 * Keyed running count / sum. Put them after weir_job_key_by (their input must be partitioned by
 * the key they aggregate on). Each record updates its key's aggregate in keyed state (restored
 * exactly once after a failure) and emits an update: same key, timestamp and metadata, value =
 * the new aggregate in decimal. The sum parses each value as a decimal integer (blanks around
 * it allowed); any other value fails the job with WEIR_EPARSE naming the record's offset and
 * metadata. Same rules as weir_job_add_operator.
 */
WEIR_API int weir_job_keyed_count(weir_job *job, int upstream, const char *name, int *id);
WEIR_API int weir_job_keyed_sum(weir_job *job, int upstream, const char *name, int *id);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_STATE_H */
