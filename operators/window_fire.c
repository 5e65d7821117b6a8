/*
 * window_fire.c: the window operator's timers: registering them, firing and purging due
 * windows in the state entry itself, and rebuilding the index after a restore.
 */
#include <string.h>

#include "../runtime/state_int.h"
#include "analytics_int.h"
#include "window_int.h"

/* ---- timers ------------------------------------------------------------------------------- */

int weir__win_add_timer(weir_ctx *ctx, struct win_inst *w, int64_t time, weir_buf key) {
  int rc = weir__timers_add(&w->timers, time, key);

  if (rc == WEIR_ETOOBIG)
    weir_ctx_set_error(ctx,
                       "more than %zu distinct window ends open at once (max_open_windows); "
                       "is the watermark advancing?",
                       w->timers.max);
  return rc;
}

struct rebuild {
  weir_ctx *ctx;
  struct win_inst *w;
};

static int rebuild_cb(void *data, weir_buf key, weir_buf val) {
  struct rebuild *rb = data;
  const struct win_op *o = rb->w->op;
  size_t i, live = 0;
  int64_t dead_at = INT64_MIN;
  int rc;

  if (val.len % o->slot_size != 0)
    return WEIR_EPARSE;
  for (i = 0; i < val.len / o->slot_size; i++) {
    struct slot_hdr h;

    memcpy(&h, val.ptr + i * o->slot_size, sizeof(h));
    if (h.state == WEIR__SLOT_FREE) {
      dead_at = slot_due(o, &h) > dead_at ? slot_due(o, &h) : dead_at;
      continue;
    }
    live++;
    if ((rc = weir__win_add_timer(rb->ctx, rb->w, slot_due(o, &h), key)) != 0)
      return rc;
  }
  /* Only free slots: an entry kept for reuse, with the cleanup timer fire_key set when it
   * became all free (window_int.h, free_until). */
  return live > 0 ? 0 : weir__win_add_timer(rb->ctx, rb->w, free_until(o, dead_at), key);
}

/* After a restore the state holds windows the index does not know: register their timers. */
int weir__win_ensure_rebuilt(weir_ctx *ctx, struct win_inst *w) {
  struct rebuild rb = {ctx, w};
  int rc;

  if (w->rebuilt)
    return 0;
  w->rebuilt = true;
  if (w->op->cfg.kind == WEIR_WINDOW_GLOBAL || weir_value_state_count(w->st) == 0)
    return 0;
  rc = weir__value_state_foreach(w->st, rebuild_cb, &rb);
  if (rc == WEIR_EPARSE)
    weir_ctx_set_error(ctx, "restored window state does not match this window configuration");
  return rc;
}

/*
 * Fires and cleans up the due slots of one key; `limit` is the clock. Works in the state entry
 * itself (one lookup): fired slots are marked, purged ones become free. A key left with only
 * free slots is kept one window length after its newest window was purged (free_until: most
 * keys come back in the next window, which then takes a free slot over in place), with a timer
 * at that time; a visit then that still finds only free slots removes it, so a dead key costs
 * memory for one window length at most. A visit that finds only free slots earlier (a timer
 * of an older slot) leaves the entry alone: its cleanup timer is still pending.
 */
static int fire_key(weir_ctx *ctx, struct win_inst *w, weir_buf key, uint64_t kh, int64_t limit) {
  const struct win_op *o = w->op;
  struct slot_hdr hdr;
  bool had_live = false;
  size_t i, n, live = 0, len;
  int64_t dead_at = INT64_MIN, until;
  uint8_t *p;
  int rc = weir__value_state_get_mut_h(w->st, key, kh, &p, &len);

  if (rc == WEIR_ENOTFOUND)
    return 0;
  if (rc != 0)
    return rc;
  if (!n_slots(o, len, &n))
    return WEIR_EPARSE;
  for (i = 0; i < n; i++) {
    uint8_t *sp = p + i * o->slot_size;
    bool newly = false;

    memcpy(&hdr, sp, sizeof(hdr));
    if (hdr.state == WEIR__SLOT_FREE) {
      dead_at = slot_due(o, &hdr) > dead_at ? slot_due(o, &hdr) : dead_at;
      continue;
    }
    had_live = true;
    if (hdr.state == WEIR__SLOT_OPEN && hdr.end - 1 <= limit) {
      memcpy(w->slots, sp, o->slot_size); /* aligned copy; emitting writes no state */
      if ((rc = weir__win_emit_result(ctx, w, key, slot_at(w, 0), hdr.end - 1)) != 0)
        return rc;
      hdr.state = WEIR__SLOT_FIRED;
      newly = true;
    }
    if (hdr.state == WEIR__SLOT_FIRED && slot_due(o, &hdr) <= limit) {
      hdr.state = WEIR__SLOT_FREE; /* past its allowed lateness: purge */
      memcpy(sp, &hdr, sizeof(hdr));
      dead_at = slot_due(o, &hdr) > dead_at ? slot_due(o, &hdr) : dead_at;
      continue;
    }
    if (newly)
      memcpy(sp, &hdr, sizeof(hdr));
    /* A fired window waits for its cleanup. A session not due yet grew since its timer was
     * set (timers are set when a session starts, not each time it grows): set it again. */
    if ((newly || (o->cfg.kind == WEIR_WINDOW_SESSION && hdr.state == WEIR__SLOT_OPEN)) &&
        (rc = weir__win_add_timer(ctx, w, slot_due(o, &hdr), key)) != 0)
      return rc;
    live++;
  }
  if (live > 0 || o->cfg.kind == WEIR_WINDOW_GLOBAL)
    return 0;
  if ((until = free_until(o, dead_at)) > limit)
    return had_live ? weir__win_add_timer(ctx, w, until, key) : 0;
  rc = weir__value_state_remove_h(w->st, key, kh);
  return rc == WEIR_ENOTFOUND ? 0 : rc;
}

/*
 * A bucket's keys come in no useful order, so each fire_key would wait for a few cache misses
 * (index slot, entry, window bytes): as in win_process (window.c), the lookups of the keys
 * FIRE_DIST, 2 * FIRE_DIST and 3 * FIRE_DIST ahead are prefetched in stages meanwhile.
 */
#define FIRE_DIST 8
#define FIRE_RING 32 /* > 3 * FIRE_DIST, a power of two */

struct fire_ahead {
  weir_buf key;
  uint64_t h;
};

static int fire_bucket(weir_ctx *ctx, struct win_inst *w, const struct weir__bucket *b,
                       int64_t limit) {
  struct fire_ahead ring[FIRE_RING];
  size_t scan = 0, parsed = 0, k;
  int rc;

  for (k = 0;; k++) {
    uint32_t klen;

    if (scan + sizeof(klen) <= b->len) {
      struct fire_ahead *a = &ring[parsed % FIRE_RING];

      memcpy(&klen, b->buf + scan, sizeof(klen));
      scan += sizeof(klen);
      a->key = (weir_buf){b->buf + scan, klen};
      a->h = weir__state_key_hash(a->key);
      scan += klen;
      weir__value_state_prefetch(w->st, a->h, 0);
      parsed++;
    }
    if (k >= FIRE_DIST && k - FIRE_DIST < parsed)
      weir__value_state_prefetch(w->st, ring[(k - FIRE_DIST) % FIRE_RING].h, 1);
    if (k >= 2 * FIRE_DIST && k - 2 * FIRE_DIST < parsed)
      weir__value_state_prefetch(w->st, ring[(k - 2 * FIRE_DIST) % FIRE_RING].h, 2);
    if (k < 3 * FIRE_DIST)
      continue;
    if (k - 3 * FIRE_DIST >= parsed)
      return 0;
    if ((rc = fire_key(ctx, w, ring[(k - 3 * FIRE_DIST) % FIRE_RING].key,
                       ring[(k - 3 * FIRE_DIST) % FIRE_RING].h, limit)) != 0)
      return rc;
  }
}

int weir__win_fire_until(weir_ctx *ctx, struct win_inst *w, int64_t limit) {
  struct weir__bucket b;
  int rc = 0;

  if (limit > w->fired_upto)
    w->fired_upto = limit;
  while (rc == 0 && weir__timers_pop(&w->timers, limit, &b)) {
    rc = fire_bucket(ctx, w, &b, limit);
    weir__timers_recycle(&w->timers, &b);
  }
  return rc;
}
