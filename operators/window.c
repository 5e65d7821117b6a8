/*
 * window.c: keyed windows and keyed aggregates (weir_job_window).
 *
 * State: one value state "weir.window" maps each key to the array of its open windows
 * ("slots": start, end, state (open, fired, free), accumulator). Being keyed state, it is
 * checkpointed at barriers and restored by key group at any parallelism. The timer index
 * (window_int.h) says which keys have a slot due when; it is rebuilt from the state after a
 * restore, so a restore mid-window resumes exactly where the snapshot was taken.
 *
 * Firing rules (docs/windows-and-time.md): slot [start, end) fires when the clock (watermark,
 * or wall clock in processing time) reaches end - 1; it is then kept until end - 1 + allowed
 * lateness, and records arriving for it meanwhile update it and fire it again at once. A
 * record all of whose windows are past end - 1 + allowed lateness is late.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/state_int.h"
#include "analytics_int.h"
#include "json_int.h"
#include "window_int.h"

static void win_op_free(void *p) {
  struct win_op *o = p;

  if (o == NULL)
    return;
  free(o->value_field);
  free(o->user_name);
  free(o);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;

  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- state of one key --------------------------------------------------------------------- */

/* `h` is always weir__state_key_hash(key): computed once per record (win_process). */
static int load(struct win_inst *w, weir_buf key, uint64_t h, size_t *n) {
  weir_buf v;
  int rc = weir__value_state_get_h(w->st, key, h, &v);

  if (rc == WEIR_ENOTFOUND) {
    *n = 0;
    return 0;
  }
  if (rc != 0)
    return rc;
  if (!n_slots(w->op, v.len, n) || *n > WEIR__WIN_MAX_SLOTS)
    return WEIR_EPARSE; /* state written by another configuration of this operator */
  memcpy(w->slots, v.ptr, v.len);
  return 0;
}

static int store(struct win_inst *w, weir_buf key, uint64_t h, size_t n) {
  if (n == 0) {
    int rc = weir__value_state_remove_h(w->st, key, h);

    return rc == WEIR_ENOTFOUND ? 0 : rc;
  }
  return weir__value_state_put_h(w->st, key, h, (weir_buf){w->slots, n * w->op->slot_size});
}

/* Copies one slot. With the built-in accumulator its size is a constant the compiler inlines
 * (the general size is a call to memcpy, which showed in profiles at one per record). */
static inline void slot_copy(const struct win_op *o, void *dst, const void *src) {
  if (!o->has_user)
    memcpy(dst, src, sizeof(struct slot_hdr) + sizeof(struct builtin_acc));
  else
    memcpy(dst, src, o->slot_size);
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static int win_open(weir_ctx *ctx, void *data, void **inst) {
  const struct win_op *o = data;
  struct win_inst *w = calloc(1, sizeof(*w));
  int rc;

  *inst = NULL;
  if (w == NULL)
    return WEIR_ENOMEM;
  *inst = w;
  w->op = o;
  w->wm = INT64_MIN;
  w->fired_upto = INT64_MIN;
  w->pane_lo = w->pane_hi = 0;
  weir__timers_init(&w->timers, o->cfg.max_open_windows);
  w->slots = malloc((WEIR__WIN_MAX_SLOTS + 1) * o->slot_size); /* + 1: room to insert a session */
  w->user_res = o->has_user ? malloc(WEIR__WIN_USER_RESULT_MAX) : NULL;
  if (w->slots == NULL || (o->has_user && w->user_res == NULL))
    return WEIR_ENOMEM;
  if ((rc = weir_ctx_value_state(ctx, WEIR__WIN_STATE_NAME, &w->st)) != 0)
    return rc;
  w->bad = weir__bad_record_metric(ctx);
  if (weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, WEIR__WIN_LATE_METRIC,
                      "Records that arrived after their windows' allowed lateness", NULL,
                      &w->late) != 0)
    w->late = NULL;
  return 0;
}

static void win_close(weir_ctx *ctx, void *inst) {
  struct win_inst *w = inst;

  (void)ctx;
  if (w == NULL)
    return;
  weir__timers_destroy(&w->timers);
  free(w->slots);
  free(w->out);
  free(w->user_res);
  free(w);
}

static int on_late(weir_ctx *ctx, struct win_inst *w, const weir_record *r) {
  weir_record l = *r;

  weir_metric_add(w->late, 1);
  if (w->op->cfg.late != WEIR_LATE_SIDE_OUTPUT)
    return 0;
  l.meta = weir_buf_str(WEIR_LATE_META);
  return weir_emit(ctx, &l);
}

/* Finds or creates the slot [start, end) among the n loaded ones. */
static int get_slot(weir_ctx *ctx, struct win_inst *w, weir_buf key, size_t *n, int64_t start,
                    int64_t end, struct slot_hdr **out) {
  struct slot_hdr *h;
  size_t i;
  int rc;

  struct slot_hdr *free_slot = NULL;

  for (i = 0; i < *n; i++) {
    h = slot_at(w, i);
    if (h->state == WEIR__SLOT_FREE) {
      free_slot = free_slot != NULL ? free_slot : h;
    } else if (h->start == start && h->end == end) {
      *out = h;
      return 0;
    }
  }
  if (free_slot != NULL) {
    h = free_slot;
  } else if (*n == WEIR__WIN_MAX_SLOTS) {
    weir_ctx_set_error(ctx, "a key has more than %d windows open at once", WEIR__WIN_MAX_SLOTS);
    return WEIR_ETOOBIG;
  } else {
    h = slot_at(w, (*n)++);
  }
  memset(h, 0, w->op->slot_size);
  h->start = start;
  h->end = end;
  weir__win_acc_create(w->op, slot_acc(h));
  if (w->op->cfg.kind != WEIR_WINDOW_GLOBAL &&
      (rc = weir__win_add_timer(ctx, w, end - 1, key)) != 0)
    return rc;
  *out = h;
  return 0;
}

/*
 * Prefetching in win_process: stages 1 and 2 (entry, then key and value bytes) pay for
 * themselves when records' state lies all over memory, and only cost (each stage reloads what
 * the one before fetched: about 12 ns per record at 100 K keys) when consecutive records' state
 * bytes follow each other, as when keys come round in the order they were first seen: the
 * hardware prefetcher streams those already. `seq` counts up for each record whose bytes lie
 * at most SEQ_NEAR bytes after the previous record's and down by SEQ_MISS otherwise; at
 * SEQ_ON or more only the index slot (random either way) is prefetched.
 */
#define SEQ_NEAR 256
#define SEQ_MISS 8
#define SEQ_ON 32
#define SEQ_MAX 64

/* The common case: every window of the record exists already; update the accumulators in the
 * state entry itself (one lookup, no copy). Returns 1 when done, 0 to take the general path,
 * 2 when the key has no windows at all, or a negative error. */
static int update_in_place(weir_ctx *ctx, struct win_inst *w, const weir_record *r, uint64_t kh,
                           const int64_t *starts, size_t n_win, double num) {
  const struct win_op *o = w->op;
  const weir_window_config *c = &o->cfg;
  uint8_t *found[WEIR__WIN_MAX_PER_RECORD];
  bool claim[WEIR__WIN_MAX_PER_RECORD];
  struct slot_hdr hdr;
  uint8_t *p;
  size_t len, n, i, j, next_free = 0;
  int64_t until = INT64_MIN; /* the pending cleanup of an all-free entry, or INT64_MIN */
  bool any_claim = false;
  int rc;

  rc = weir__value_state_get_mut_h(w->st, r->key, kh, &p, &len);
  if (rc == WEIR_ENOTFOUND)
    return 2;
  if (rc != 0 || !n_slots(o, len, &n))
    return 0;
  /* Keys whose state bytes follow each other in memory (win_process, SEQ_*). */
  if ((uintptr_t)p - (uintptr_t)w->last_val <= SEQ_NEAR)
    w->seq += w->seq < SEQ_MAX;
  else
    w->seq = w->seq > SEQ_MISS ? w->seq - SEQ_MISS : 0;
  w->last_val = p;
  /* The entry's bytes follow its key in the state's slab: not aligned, so slots are read and
   * written with memcpy, and worked on in the aligned w->slots[0]. First pass: find each
   * window, or a free slot to take over for it; anything else goes the general way. */
  for (i = 0; i < n_win; i++) {
    int64_t end = starts[i] + c->size_ms;

    found[i] = NULL;
    claim[i] = false;
    for (j = 0; j < n && found[i] == NULL; j++) {
      memcpy(&hdr, p + j * o->slot_size, sizeof(hdr));
      if (hdr.state != WEIR__SLOT_FREE && hdr.start == starts[i])
        found[i] = p + j * o->slot_size;
    }
    if (found[i] == NULL) {
      if (c->time == WEIR_TIME_EVENT && w->wm != INT64_MIN && end - 1 <= w->wm)
        return 0; /* a new window to fire at once */
      for (; next_free < n && found[i] == NULL; next_free++) {
        memcpy(&hdr, p + next_free * o->slot_size, sizeof(hdr));
        if (hdr.state == WEIR__SLOT_FREE)
          found[i] = p + next_free * o->slot_size;
      }
      if (found[i] == NULL)
        return 0; /* the entry must grow */
      claim[i] = any_claim = true;
    } else if (hdr.state == WEIR__SLOT_OPEN && c->time == WEIR_TIME_EVENT && w->wm != INT64_MIN &&
               hdr.end - 1 <= w->wm) {
      return 0; /* an open window to fire at once */
    }
  }
  if (any_claim) {
    /* A key whose slots are all free has a cleanup timer pending (fire_key, free_until): a
     * window due at that very time is visited by it and needs no timer of its own. */
    int64_t dead_at = INT64_MIN;

    for (j = 0; j < n; j++) {
      memcpy(&hdr, p + j * o->slot_size, sizeof(hdr));
      if (hdr.state != WEIR__SLOT_FREE)
        break;
      dead_at = slot_due(o, &hdr) > dead_at ? slot_due(o, &hdr) : dead_at;
    }
    if (j == n && (until = free_until(o, dead_at)) <= w->fired_upto)
      until = INT64_MIN; /* already popped */
  }
  for (i = 0; i < n_win; i++) {
    struct slot_hdr *h = slot_at(w, 0);

    if (!claim[i] && !o->has_user) {
      /* The usual record: a built-in accumulator is updated in the entry itself (a user
       * aggregate gets an aligned copy below). */
      weir__win_builtin_add(found[i] + sizeof(struct slot_hdr), num, !o->needs_number);
      memcpy(&hdr, found[i], sizeof(hdr));
      if (hdr.state == WEIR__SLOT_FIRED) {
        slot_copy(o, h, found[i]);
        if ((rc = weir__win_emit_result(ctx, w, r->key, h, h->end - 1)) != 0)
          return rc;
      }
      continue;
    }
    if (claim[i]) {
      memset(h, 0, o->slot_size);
      h->start = starts[i];
      h->end = starts[i] + c->size_ms;
      h->state = WEIR__SLOT_OPEN;
      weir__win_acc_create(o, slot_acc(h));
      if (h->end - 1 != until && (rc = weir__win_add_timer(ctx, w, h->end - 1, r->key)) != 0)
        return rc;
    } else {
      slot_copy(o, h, found[i]);
    }
    if ((rc = weir__win_acc_add(o, slot_acc(h), r, num)) != 0)
      return rc;
    slot_copy(o, found[i], h);
    /* Allowed lateness: a fired window updated by a late record fires again at once. Emitting
     * does not write the state, so the other found[] stay valid. */
    if (h->state == WEIR__SLOT_FIRED &&
        (rc = weir__win_emit_result(ctx, w, r->key, h, h->end - 1)) != 0)
      return rc;
  }
  return 1;
}

/*
 * Session windows: the record's window [ts, ts + gap) merges with every session of its key it
 * touches (Flink's TimeWindow.intersects: start <= other end and end >= other start),
 * transitively; the merged session is late when its end - 1 + lateness <= watermark.
 */
static int process_session(weir_ctx *ctx, struct win_inst *w, const weir_record *r, uint64_t kh,
                           int64_t ts, double num) {
  const struct win_op *o = w->op;
  const weir_window_config *c = &o->cfg;
  int64_t s = ts, e = ts > INT64_MAX - c->gap_ms ? INT64_MAX : ts + c->gap_ms;
  bool merged[WEIR__WIN_MAX_SLOTS] = {false}, grew = true, any = false;
  struct slot_hdr *h;
  size_t n, i, kept = 0;
  int rc;

  if ((rc = load(w, r->key, kh, &n)) != 0)
    return rc;
  while (grew) {
    grew = false;
    for (i = 0; i < n; i++) {
      h = slot_at(w, i);
      if (!merged[i] && h->state != WEIR__SLOT_FREE && h->start <= e && s <= h->end) {
        merged[i] = any = grew = true;
        s = h->start < s ? h->start : s;
        e = h->end > e ? h->end : e;
      }
    }
  }
  if (c->time == WEIR_TIME_EVENT && w->wm != INT64_MIN && e - 1 <= INT64_MAX - o->lateness &&
      e - 1 + o->lateness <= w->wm)
    return on_late(ctx, w, r);
  /* The merged session goes first in the working buffer (the old slots are read from a copy
   * further on), then the sessions it did not touch. */
  if (n == WEIR__WIN_MAX_SLOTS && !any) {
    weir_ctx_set_error(ctx, "a key has more than %d windows open at once", WEIR__WIN_MAX_SLOTS);
    return WEIR_ETOOBIG;
  }
  memmove(slot_at(w, 1), slot_at(w, 0), n * o->slot_size);
  h = slot_at(w, 0);
  memset(h, 0, o->slot_size);
  h->start = s;
  h->end = e;
  weir__win_acc_create(o, slot_acc(h));
  kept = 1;
  for (i = 0; i < n; i++) {
    struct slot_hdr *old = slot_at(w, i + 1);

    if (merged[i]) {
      weir__win_acc_merge(o, slot_acc(h), slot_acc(old));
      continue;
    }
    if (old->state == WEIR__SLOT_FREE)
      continue; /* dropped: the rewrite compacts */
    if (kept != i + 1)
      memmove(slot_at(w, kept), old, o->slot_size);
    kept++;
  }
  if ((rc = weir__win_acc_add(o, slot_acc(h), r, num)) != 0)
    return rc;
  /* A new session sets its timer; a merged one has its parts' timers, the earliest of which
   * finds it not due and sets it again (fire_key). */
  if (!any && (rc = weir__win_add_timer(ctx, w, e - 1, r->key)) != 0)
    return rc;
  if (c->time == WEIR_TIME_EVENT && w->wm != INT64_MIN && e - 1 <= w->wm) {
    h->state = WEIR__SLOT_FIRED; /* within allowed lateness: fires at once */
    if ((rc = weir__win_add_timer(ctx, w, slot_due(o, h), r->key)) != 0)
      return rc;
  }
  if ((rc = store(w, r->key, kh, kept)) != 0)
    return rc;
  return h->state == WEIR__SLOT_FIRED ? weir__win_emit_result(ctx, w, r->key, h, h->end - 1) : 0;
}

static int process_one(weir_ctx *ctx, struct win_inst *w, const weir_record *r, uint64_t kh) {
  const struct win_op *o = w->op;
  const weir_window_config *c = &o->cfg;
  struct slot_hdr *h, *refire[WEIR__WIN_MAX_PER_RECORD];
  int64_t starts[WEIR__WIN_MAX_PER_RECORD];
  size_t n, n_refire = 0, n_win = 0, i;
  int64_t ts, start, first, step;
  int rc;
  double num = 0.0;

  if (c->time == WEIR_TIME_PROCESSING) {
    ts = wall_ms();
  } else if ((ts = r->timestamp) == WEIR_NO_TIMESTAMP && c->kind != WEIR_WINDOW_GLOBAL) {
    return weir__bad_record(ctx, c->on_bad, w->bad, r,
                            "record without event time (add weir_job_assign_timestamps)");
  }
  if (o->needs_number && weir__win_read_number(o, r, &num) != 0)
    return weir__bad_record(ctx, c->on_bad, w->bad, r, "no numeric value to aggregate");
  if (c->kind == WEIR_WINDOW_GLOBAL) {
    if ((rc = load(w, r->key, kh, &n)) != 0 ||
        (rc = get_slot(ctx, w, r->key, &n, INT64_MIN, INT64_MAX, &h)) != 0 ||
        (rc = weir__win_acc_add(o, slot_acc(h), r, num)) != 0 ||
        (rc = store(w, r->key, kh, n)) != 0)
      return rc;
    return weir__win_emit_result(ctx, w, r->key, h, ts);
  }
  if (c->kind == WEIR_WINDOW_SESSION)
    return process_session(ctx, w, r, kh, ts, num);
  /* The windows containing ts, newest first: starts first, first - slide, ... > ts - size;
   * those past their allowed lateness are gone. */
  step = c->kind == WEIR_WINDOW_SLIDING ? c->slide_ms : c->size_ms;
  if (ts < w->pane_lo || ts >= w->pane_hi) {
    w->pane_lo = floor_div(ts, step) * step;
    w->pane_hi = w->pane_lo > INT64_MAX - step ? INT64_MAX : w->pane_lo + step;
  }
  first = w->pane_lo;
  for (start = first; start > ts - c->size_ms; start -= step) {
    int64_t end = start + c->size_ms;

    if (c->time == WEIR_TIME_EVENT && w->wm != INT64_MIN && end - 1 <= INT64_MAX - o->lateness &&
        end - 1 + o->lateness <= w->wm)
      continue;
    starts[n_win++] = start;
  }
  if (n_win == 0)
    return on_late(ctx, w, r);
  rc = update_in_place(ctx, w, r, kh, starts, n_win, num);
  if (rc < 0 || rc == 1)
    return rc < 0 ? rc : 0;
  if (rc == 2) {
    n = 0;
  } else if ((rc = load(w, r->key, kh, &n)) != 0) {
    if (rc == WEIR_EINVAL)
      weir_ctx_set_error(ctx, "a record's key belongs to another subtask: put weir_job_key_by "
                              "(or weir_job_json_key_by) right before the window");
    return rc;
  }
  for (i = 0; i < n_win; i++) {
    int64_t end = starts[i] + c->size_ms;

    if ((rc = get_slot(ctx, w, r->key, &n, starts[i], end, &h)) != 0 ||
        (rc = weir__win_acc_add(o, slot_acc(h), r, num)) != 0)
      return rc;
    if (h->state == WEIR__SLOT_OPEN && c->time == WEIR_TIME_EVENT && w->wm != INT64_MIN &&
        end - 1 <= w->wm) {
      /* Behind the watermark but within allowed lateness: fires at once, then waits for its
       * cleanup like any fired window. */
      h->state = WEIR__SLOT_FIRED;
      if ((rc = weir__win_add_timer(ctx, w, slot_due(o, h), r->key)) != 0)
        return rc;
    }
    if (h->state == WEIR__SLOT_FIRED)
      refire[n_refire++] = h;
  }
  if ((rc = store(w, r->key, kh, n)) != 0)
    return rc;
  /* Allowed lateness: a fired window updated by a late record fires again at once. */
  for (i = 0; i < n_refire; i++)
    if ((rc = weir__win_emit_result(ctx, w, r->key, refire[i], refire[i]->end - 1)) != 0)
      return rc;
  return 0;
}

/*
 * With many keys the state no longer fits in cache and each record's lookup costs a few cache
 * misses (index slot, entry, key and value bytes), one after the other. So each key is hashed
 * once (the hash serves every state call on that record) and its lookup is prefetched in
 * stages while earlier records are processed: record i + 3D has its slot prefetched, i + 2D
 * its entry, i + D its bytes, and record i is processed; D records of work hide each miss.
 * Processing order and results are unchanged (prefetches are hints: a write in between makes
 * one useless, never wrong).
 */
#define PREFETCH_DIST 8
#define PREFETCH_RING 32 /* > 3 * PREFETCH_DIST, a power of two */

static int win_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct win_inst *w = inst;
  uint64_t kh[PREFETCH_RING];
  size_t i, ahead = 3 * PREFETCH_DIST;
  int rc;

  if ((rc = weir__win_ensure_rebuilt(ctx, w)) != 0)
    return rc;
  for (i = 0; i < n + ahead; i++) {
    if (i < n) {
      kh[i % PREFETCH_RING] = weir__state_key_hash(recs[i].key);
      weir__value_state_prefetch(w->st, kh[i % PREFETCH_RING], 0);
    }
    if (w->seq < SEQ_ON && i >= PREFETCH_DIST && i - PREFETCH_DIST < n)
      weir__value_state_prefetch(w->st, kh[(i - PREFETCH_DIST) % PREFETCH_RING], 1);
    if (w->seq < SEQ_ON && i >= 2 * PREFETCH_DIST && i - 2 * PREFETCH_DIST < n)
      weir__value_state_prefetch(w->st, kh[(i - 2 * PREFETCH_DIST) % PREFETCH_RING], 2);
    if (i >= ahead &&
        (rc = process_one(ctx, w, &recs[i - ahead], kh[(i - ahead) % PREFETCH_RING])) != 0)
      return rc;
  }
  return 0;
}

static int win_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  struct win_inst *w = inst;
  int rc;

  if (w->op->cfg.time != WEIR_TIME_EVENT || wm <= w->wm)
    return 0;
  w->wm = wm;
  if ((rc = weir__win_ensure_rebuilt(ctx, w)) != 0)
    return rc;
  return weir__win_fire_until(ctx, w, wm);
}

static int win_tick(weir_ctx *ctx, void *inst, int64_t now_ms) {
  struct win_inst *w = inst;
  int rc;

  (void)now_ms; /* monotonic; processing-time windows use the wall clock */
  if (w->op->cfg.time != WEIR_TIME_PROCESSING)
    return 0;
  if ((rc = weir__win_ensure_rebuilt(ctx, w)) != 0)
    return rc;
  return weir__win_fire_until(ctx, w, wall_ms());
}

/* End of input: every window is complete (Flink's final MAX watermark). */
static int win_finish(weir_ctx *ctx, void *inst) {
  struct win_inst *w = inst;
  int rc;

  if ((rc = weir__win_ensure_rebuilt(ctx, w)) != 0)
    return rc;
  return weir__win_fire_until(ctx, w, INT64_MAX);
}

/* ---- building ----------------------------------------------------------------------------- */

static int config_error(weir_job *job, const char *name, const char *what) {
  weir__job_set_error(job, "window '%s': %s", name != NULL ? name : "", what);
  return WEIR_EINVAL;
}

static int check_config(weir_job *job, const char *name, const weir_window_config *c) {
  if (c->kind < WEIR_WINDOW_TUMBLING || c->kind > WEIR_WINDOW_SESSION)
    return config_error(job, name, "unknown window kind");
  if (c->time != WEIR_TIME_EVENT && c->time != WEIR_TIME_PROCESSING)
    return config_error(job, name, "unknown time mode");
  if ((c->kind == WEIR_WINDOW_TUMBLING || c->kind == WEIR_WINDOW_SLIDING) && c->size_ms <= 0)
    return config_error(job, name, "size_ms must be > 0");
  if (c->kind == WEIR_WINDOW_SLIDING &&
      (c->slide_ms <= 0 || c->slide_ms > c->size_ms ||
       c->size_ms / c->slide_ms + (c->size_ms % c->slide_ms != 0) > WEIR__WIN_MAX_PER_RECORD))
    return config_error(job, name, "slide_ms must be in (0, size_ms] and size/slide <= 64");
  if (c->kind == WEIR_WINDOW_SESSION && c->gap_ms <= 0)
    return config_error(job, name, "gap_ms must be > 0");
  if (c->kind == WEIR_WINDOW_SESSION && c->user != NULL && c->user->merge == NULL)
    return config_error(job, name, "session windows need the user aggregate's merge");
  if (c->allowed_lateness_ms < 0)
    return config_error(job, name, "allowed_lateness_ms must be >= 0");
  if (c->late != WEIR_LATE_DROP && c->late != WEIR_LATE_SIDE_OUTPUT)
    return config_error(job, name, "unknown late policy");
  if (c->user != NULL &&
      (c->user->acc_size == 0 || c->user->acc_size > WEIR_AGG_MAX_ACC || c->user->create == NULL ||
       c->user->add == NULL || c->user->result == NULL || c->user->name == NULL ||
       c->user->name[0] == '\0'))
    return config_error(job, name,
                        "user aggregate needs acc_size in 1..1024, create, add, result and name");
  if (c->user == NULL && (c->aggs & ~(unsigned)0x1f) != 0)
    return config_error(job, name, "unknown WEIR_AGG_* bits");
  return 0;
}

int weir_job_window(weir_job *job, int upstream, const char *name, const weir_window_config *cfg,
                    int *id) {
  weir_operator op = {0};
  struct win_op *o;
  int rc;

  if (job == NULL || cfg == NULL)
    return WEIR_EINVAL;
  if ((rc = check_config(job, name, cfg)) != 0)
    return rc;
  if ((o = calloc(1, sizeof(*o))) == NULL)
    return WEIR_ENOMEM;
  o->cfg = *cfg;
  o->cfg.value_field = NULL;
  o->cfg.user = NULL;
  if (o->cfg.max_open_windows == 0)
    o->cfg.max_open_windows = WEIR__WIN_DEFAULT_MAX_OPEN;
  if (cfg->user != NULL) {
    o->has_user = true;
    o->user = *cfg->user;
    if ((o->user_name = strdup(cfg->user->name)) == NULL)
      goto nomem;
    o->user.name = o->user_name;
    o->acc_size = cfg->user->acc_size;
  } else {
    if (o->cfg.aggs == 0)
      o->cfg.aggs = WEIR_AGG_COUNT;
    o->acc_size = sizeof(struct builtin_acc);
    o->needs_number = (o->cfg.aggs & ~WEIR_AGG_COUNT) != 0;
  }
  if (cfg->value_field != NULL) {
    if (weir__json_path_init(&o->vpath, cfg->value_field) != 0) {
      win_op_free(o);
      return config_error(job, name, "bad value_field path");
    }
    if ((o->value_field = strdup(cfg->value_field)) == NULL)
      goto nomem;
    o->cfg.value_field = o->value_field;
  }
  _Static_assert(sizeof(struct builtin_acc) % 8 == 0, "n_slots assumes WEIR__WIN_BUILTIN_SLOT");
  o->slot_size = sizeof(struct slot_hdr) + ((o->acc_size + 7) & ~(size_t)7);
  o->lateness = cfg->time == WEIR_TIME_EVENT ? cfg->allowed_lateness_ms : 0;
  o->span = cfg->kind == WEIR_WINDOW_SESSION ? cfg->gap_ms : cfg->size_ms;
  op.open = win_open;
  op.process = win_process;
  op.on_watermark = win_watermark;
  op.on_tick = win_tick;
  op.finish = win_finish;
  op.close = win_close;
  return weir__add_owned_operator(job, upstream, name, &op, o, win_op_free, false, false, id);
nomem:
  win_op_free(o);
  return WEIR_ENOMEM;
}
