/*
 * window_int.h: the window operator's internals, shared by its four files:
 *   window.c         the operator: callbacks, window assignment, lateness, sessions, building
 *   window_agg.c     accumulators (built-in and user) and JSON results
 *   window_fire.c    timers: firing and purging due windows, the rebuild after a restore
 *   window_timers.c  the timer index below
 *
 * Window contents live in keyed state (window.c); the timer index only says which keys have a
 * window due at which time. Timers of aligned windows (tumbling, sliding) share a few
 * distinct times, so the index is a sorted array of buckets, one per time, each holding the
 * keys (copied, length-prefixed) registered at it. It is not checkpointed: after a restore it
 * is rebuilt from the restored window state, which is what Flink's timer state would hold.
 *
 * Threads: one per index, and per window operator instance (the operator subtask's thread).
 */
#ifndef WEIR_WINDOW_INT_H
#define WEIR_WINDOW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "json_int.h"
#include "weir/analytics.h"
#include "weir/common.h"
#include "weir/metrics.h"
#include "weir/state.h"

struct weir__bucket {
  int64_t time; /* fire when the clock (watermark or wall clock) reaches it */
  uint8_t *buf; /* keys: uint32 length then bytes, repeated; owned */
  size_t len;
  size_t cap;
};

struct weir__timers {
  struct weir__bucket *b; /* sorted by time, ascending; n of cap used */
  size_t n;
  size_t cap;
  size_t max;                /* bound on distinct times */
  struct weir__bucket *pool; /* recycled buffers */
  size_t n_pool;
  uint64_t n_keys; /* registrations over all buckets */
};

void weir__timers_init(struct weir__timers *t, size_t max_buckets);
void weir__timers_destroy(struct weir__timers *t);
/* Registers `key` (copied) at `time`. 0, WEIR_ETOOBIG (more than max distinct times, or a
 * huge key) or WEIR_ENOMEM. */
int weir__timers_add(struct weir__timers *t, int64_t time, weir_buf key);
/* Takes out the earliest bucket if its time <= limit: true with *out (owned by the caller
 * until weir__timers_recycle), false when none is due. */
bool weir__timers_pop(struct weir__timers *t, int64_t limit, struct weir__bucket *out);
/* Gives a popped bucket's buffer back for reuse. */
void weir__timers_recycle(struct weir__timers *t, struct weir__bucket *b);
/* The earliest registered time, INT64_MAX when none. */
int64_t weir__timers_next(const struct weir__timers *t);

/* ---- the window operator (window.c, window_agg.c, window_fire.c) ------------------------- */

#define WEIR__WIN_STATE_NAME "weir.window.v1" /* the name carries the slot layout version */
#define WEIR__WIN_LATE_METRIC "weir_window_late_records_total"
/* Open windows one key may hold at once (out-of-order records and sliding windows add up). */
#define WEIR__WIN_MAX_SLOTS 1024
/* Sliding windows per record, i.e. the bound on size / slide. */
#define WEIR__WIN_MAX_PER_RECORD 64
#define WEIR__WIN_DEFAULT_MAX_OPEN 65536
/* Room for one result's fixed fields (names, numbers) besides the key and user result. */
#define WEIR__WIN_OUT_FIXED 512
#define WEIR__WIN_USER_RESULT_MAX 4096

/* Slot states. A free slot is a purged window whose bytes stay in the key's entry, so the key's
 * next window can take it over in place (no resize, no second lookup). */
enum { WEIR__SLOT_OPEN = 0, WEIR__SLOT_FIRED = 1, WEIR__SLOT_FREE = 2 };

struct slot_hdr {
  int64_t start;
  int64_t end;
  uint32_t state; /* SLOT_* */
  uint32_t pad;
};

/* The built-in accumulator: every built-in aggregate derives from it. */
struct builtin_acc {
  int64_t count;
  double sum;
  double min;
  double max;
};

struct win_op {
  weir_window_config cfg;
  char *value_field; /* owned copy */
  struct weir__json_path vpath;
  weir_aggregate user; /* valid when has_user */
  char *user_name;     /* owned copy */
  bool has_user;
  bool needs_number; /* sum/min/max/avg read a number from each record */
  size_t acc_size;
  size_t slot_size; /* header + accumulator, 8-aligned */
  int64_t lateness; /* 0 in processing time */
  int64_t span;     /* window length, or the session gap: how long an emptied entry is kept */
};

struct win_inst {
  const struct win_op *op;
  weir_value_state *st;
  struct weir__timers timers;
  weir_metric *late;
  weir_metric *bad;
  int64_t wm;         /* event time: the input watermark; INT64_MIN = none yet */
  int64_t fired_upto; /* largest limit fire_until ran with: timers later than it are pending */
  int64_t pane_lo;    /* [pane_lo, pane_hi): the timestamps whose newest window starts at pane_lo */
  int64_t pane_hi;    /* (records come mostly in order: no division per record); empty at first */
  const uint8_t *last_val; /* the state bytes the previous record updated in place */
  int seq;                 /* how sequential those bytes have been of late (win_process) */
  bool rebuilt;
  uint8_t *slots; /* one key's slots while worked on: (WEIR__WIN_MAX_SLOTS + 1) * slot_size bytes */
  char se[80];    /* `,"window_start":S,"window_end":E` of se_start, se_end (the results of */
  size_t se_len;  /* one firing share them: formatted once); se_len 0 = none yet */
  int64_t se_start;
  int64_t se_end;
  char *out; /* one result */
  size_t out_cap;
  char *user_res; /* WEIR__WIN_USER_RESULT_MAX bytes */
};

static inline struct slot_hdr *slot_at(const struct win_inst *w, size_t i) {
  return (struct slot_hdr *)(void *)(w->slots + i * w->op->slot_size);
}

static inline void *slot_acc(struct slot_hdr *h) {
  return (uint8_t *)h + sizeof(*h);
}

/* A slot of the built-in accumulator: a constant the compiler divides by without a division
 * instruction (n_slots below runs once per record and per firing). */
#define WEIR__WIN_BUILTIN_SLOT (sizeof(struct slot_hdr) + sizeof(struct builtin_acc))

/* The number of slots in `len` state bytes into *n; false when `len` is not a whole number of
 * slots (state written by another configuration). */
static inline bool n_slots(const struct win_op *o, size_t len, size_t *n) {
  size_t size = o->has_user ? o->slot_size : WEIR__WIN_BUILTIN_SLOT;

  *n = len / size;
  return len % size == 0;
}

/* When a slot next needs attention: its firing, or (fired) its cleanup. */
static inline int64_t slot_due(const struct win_op *o, const struct slot_hdr *h) {
  if (h->state == WEIR__SLOT_OPEN)
    return h->end - 1;
  return h->end - 1 > INT64_MAX - o->lateness ? INT64_MAX : h->end - 1 + o->lateness;
}

/* When an entry whose slots are all free may be removed: one window length (or session gap)
 * after the newest of them was purged (`dead_at`: the largest slot_due of its free slots). An
 * entry that becomes all free registers a timer at this time; a record that takes one of its
 * free slots over for a window due at exactly this time needs no timer of its own. */
static inline int64_t free_until(const struct win_op *o, int64_t dead_at) {
  return dead_at > INT64_MAX - o->span ? INT64_MAX : dead_at + o->span;
}

/* Adds `num` to a built-in accumulator at `acc` (any alignment). Inline: the window operator
 * calls it once per record. Each field is loaded and stored on its own: copying the whole
 * struct in and out made the compiler store fields one by one and then reload them as 16-byte
 * pairs, a store-forwarding stall on every record. With `count_only` (no aggregate reads a
 * number, so `num` is always 0) sum, min and max stay 0 whatever is added, and are left alone. */
static inline void weir__win_builtin_add(void *acc, double num, bool count_only) {
  uint8_t *p = acc;
  int64_t count;
  double v;

  memcpy(&count, p + offsetof(struct builtin_acc, count), sizeof(count));
  if (!count_only) {
    memcpy(&v, p + offsetof(struct builtin_acc, min), sizeof(v));
    if (count == 0 || num < v)
      memcpy(p + offsetof(struct builtin_acc, min), &num, sizeof(num));
    memcpy(&v, p + offsetof(struct builtin_acc, max), sizeof(v));
    if (count == 0 || num > v)
      memcpy(p + offsetof(struct builtin_acc, max), &num, sizeof(num));
    memcpy(&v, p + offsetof(struct builtin_acc, sum), sizeof(v));
    v += num;
    memcpy(p + offsetof(struct builtin_acc, sum), &v, sizeof(v));
  }
  count++;
  memcpy(p + offsetof(struct builtin_acc, count), &count, sizeof(count));
}

/* window_agg.c: accumulators and results. */
void weir__win_acc_create(const struct win_op *o, void *acc);
void weir__win_acc_merge(const struct win_op *o, void *dst, const void *src);
int weir__win_acc_add(const struct win_op *o, void *acc, const weir_record *r, double num);
/* The number sum/min/max/avg read from `r`. 0 or WEIR_EPARSE. */
int weir__win_read_number(const struct win_op *o, const weir_record *r, double *out);
/* Emits one result for slot `h` of `key` (the slot must be aligned: in w->slots). */
int weir__win_emit_result(weir_ctx *ctx, struct win_inst *w, weir_buf key, struct slot_hdr *h,
                          int64_t ts);

/* window_fire.c: timers, firing, and the rebuild after a restore. */
int weir__win_add_timer(weir_ctx *ctx, struct win_inst *w, int64_t time, weir_buf key);
int weir__win_ensure_rebuilt(weir_ctx *ctx, struct win_inst *w);
/* Fires every key with a timer <= limit. */
int weir__win_fire_until(weir_ctx *ctx, struct win_inst *w, int64_t limit);

#endif /* WEIR_WINDOW_INT_H */
