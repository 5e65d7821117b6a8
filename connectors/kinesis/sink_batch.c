/*
 * sink_batch.c: the Kinesis sink's buffer and request building: a ring of entries over a ring
 * arena, the key set that keeps per-key order, and what happens when a request comes back.
 *
 * Order rule. Keys are (stream, partition key). Building a request walks the buffer oldest
 * first with an empty key set; the first not-yet-acknowledged entry of each key claims the key.
 * Only that entry may be taken (and, with aggregation, the entries of the same key that follow
 * it directly into the same aggregate, see sink_agg.c), and only when it is PENDING and its
 * retry time has passed. An entry that is in flight, waiting for a retry, or simply not taken
 * keeps every later entry of its key out of the request. So a record is never sent while an
 * earlier record with its key is unacknowledged or awaiting retry, however many requests are in
 * flight, and a request never holds two entries of one key (a partial failure of the earlier
 * one could otherwise land the later one first).
 *
 * Memory. The entry ring (max_buffered_records) and the arena (max_buffered_bytes) are
 * allocated in open. Entries are appended at the tail and reclaimed from the head once
 * acknowledged (or dead-lettered); a record's bytes are contiguous in the arena, wrapping to the
 * start when they do not fit before its end, or early when few bytes are live (arena_place).
 * Nothing is allocated per record.
 *
 * Threads: the subtask thread only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../../runtime/log_int.h"
#include "connectors/kinesis/sink_int.h"

/* Backoff of an entry before its next send (full jitter, growing with its attempts, capped). */
#define RETRY_BASE_MS 50
#define RETRY_MAX_MS 2000
/* Longest wait for a finished request before the loop looks at cancellation again. */
#define WAIT_SLICE_MS 50
/* Wait when nothing is in flight and entries wait for their retry time. */
#define RETRY_POLL_MS 10
/* Pending entries one plain request build looks at, at most (in-flight ones are not counted). */
#define WALK_PENDING_MAX (2 * WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS)
/* Entries ahead of the walk whose key-set slot is prefetched. */
#define KEY_PREFETCH 8
/* Arena soft bound (arena_place): the head must be past it for an early wrap. Arenas smaller
 * than 4 times it always wrap at their end. */
#define ARENA_SOFT_BYTES ((size_t)1 << 20)

/* The key-set hash of (stream, partition key): XXH3 (already weir's key-group hash) seeded
 * with the stream, folded to 32 bits. */
static uint32_t key_hash(int stream, const uint8_t *p, size_t n) {
  uint64_t h = XXH3_64bits_withSeed(p, n, (uint64_t)stream * 0x9E3779B97F4A7C15ull);

  return (uint32_t)(h ^ (h >> 32));
}

weir_buf weir__ksink_data(const struct ksub *s, const struct kentry *e) {
  return (weir_buf){s->arena + e->off, e->data_len};
}

weir_buf weir__ksink_key(const struct ksub *s, const struct kentry *e) {
  return (weir_buf){s->arena + e->off + e->data_len, e->key_len};
}

static weir_buf ehk_of(const struct ksub *s, const struct kentry *e) {
  return (weir_buf){s->arena + e->off + e->data_len + e->key_len, e->ehk_len};
}

static size_t entry_bytes(const struct kentry *e) {
  return (size_t)e->data_len + e->key_len + e->ehk_len;
}

int weir__ksink_buf_init(struct ksub *s) {
  size_t slots = 1024, keys;

  s->cap_ents = s->cfg->max_buffered_records;
  /* Distinct keys one build inserts: aggregation walks the whole buffer; a plain build inserts
   * the keys of entries in flight (at most max_in_flight requests) and of at most
   * WALK_PENDING_MAX pending entries, and weir__ksink_buf_push at most one more. A small table
   * stays in cache. */
  keys = s->cap_ents;
  if (!s->cfg->aggregation &&
      s->cfg->max_in_flight * s->cfg->max_request_records + WALK_PENDING_MAX + 1 < keys)
    keys = s->cfg->max_in_flight * s->cfg->max_request_records + WALK_PENDING_MAX + 1;
  while (slots < 2 * keys)
    slots *= 2;
  s->key_slots = slots;
  s->key_gen = 1;
  if ((s->ents = calloc(s->cap_ents, sizeof(*s->ents))) == NULL ||
      (s->keys = calloc(s->key_slots, sizeof(*s->keys))) == NULL ||
      (s->arena = malloc(s->arena_cap)) == NULL)
    return WEIR_ENOMEM;
  return 0;
}

void weir__ksink_buf_free(struct ksub *s) {
  free(s->ents);
  free(s->keys);
  free(s->arena);
  s->ents = NULL;
  s->keys = NULL;
  s->arena = NULL;
}

/*
 * Where a record of len bytes would go in the arena; false when it does not fit now.
 *
 * Live bytes are [h, t) (h: the head entry's offset, t: arena_tail), or [h, end of the last
 * entry before the wrap) and [0, t) once wrapped (t <= h). A record goes at t, or at 0 when it
 * does not fit before the end (the bytes between t and the end stay unused until the head
 * passes). It also wraps early, before the end, when the space before the head holds at least
 * ARENA_SOFT_BYTES and at least what a full entry ring (max_buffered_records) of records of the
 * mean size now buffered would: a steady flow then cycles through a few MiB, pages hot in
 * cache, instead of first-touching all of max_buffered_bytes (a page fault per 4 KiB). Records
 * like those buffered then fill the entry ring before the tail meets the head, so the early
 * wrap does not cut the buffer short; when the bytes bound binds (larger records), that space
 * is more than the arena and it never wraps early. The cost: if the records grow while the
 * head entry stalls just after an early wrap, the buffer takes only about as many bytes as
 * the offset it wrapped at, until the head passes that point.
 */
static bool arena_place(const struct ksub *s, size_t len, size_t *off) {
  size_t h, t = s->arena_tail;

  if (s->n_ents == 0) {
    *off = 0;
    return len <= s->arena_cap;
  }
  h = s->ents[s->head].off;
  if (t > h) {
    bool early = s->arena_cap >= 4 * ARENA_SOFT_BYTES && h >= ARENA_SOFT_BYTES && len <= h &&
                 h / s->cap_ents > s->buf_bytes / s->n_ents;
    if (!early && s->arena_cap - t >= len) {
      *off = t;
      return true;
    }
    *off = 0; /* wrap */
    return len <= h;
  }
  *off = t;
  return h - t >= len;
}

bool weir__ksink_buf_fits(const struct ksub *s, size_t len) {
  size_t off;

  return s->n_ents < s->cap_ents && arena_place(s, len, &off);
}

/* ---- the key sets of plain requests in flight ------------------------------------------------ */

static bool same_key(const struct ksub *s, const struct kentry *a, const struct kentry *b) {
  return a->hash == b->hash && a->stream == b->stream && a->key_len == b->key_len &&
         memcmp(s->arena + a->off + a->data_len, s->arena + b->off + b->data_len, a->key_len) == 0;
}

static uint16_t kset_tag(uint32_t hash) {
  return (uint16_t)((hash >> 16) | 1u);
}

static void kset_add(struct kslot *slot, uint32_t hash) {
  uint16_t tag = kset_tag(hash);

  for (size_t i = hash & (KSINK_KSET_SLOTS - 1);; i = (i + 1) & (KSINK_KSET_SLOTS - 1)) {
    if (slot->kset[i] == tag)
      return;
    if (slot->kset[i] == 0) {
      slot->kset[i] = tag;
      return;
    }
  }
}

/* Whether an entry with e's key is in a plain request in flight. A set answers for almost
 * every entry; a tag match (the same key, or a hash collision) is settled against the
 * request's entries. */
static bool key_in_flight(const struct ksub *s, const struct kentry *e) {
  uint16_t tag = kset_tag(e->hash);

  for (size_t k = 0; k < s->n_slots; k++) {
    const struct kslot *slot = &s->slots[k];

    if (!slot->keys_live)
      continue;
    for (size_t i = e->hash & (KSINK_KSET_SLOTS - 1); slot->kset[i] != 0;
         i = (i + 1) & (KSINK_KSET_SLOTS - 1)) {
      if (slot->kset[i] != tag)
        continue;
      for (size_t j = 0; j < slot->n_members; j++)
        if (same_key(s, &s->ents[slot->members[j]], e))
          return true;
      break;
    }
  }
  return false;
}

void weir__ksink_buf_push(struct ksub *s, int stream, weir_buf data, weir_buf key, weir_buf ehk,
                          const struct weir_kpl_u128 *hash_key) {
  size_t pos = s->head + s->n_ents, off = 0;
  struct kentry *e;
  uint8_t *p;
  bool ok;

  if (pos >= s->cap_ents)
    pos -= s->cap_ents; /* head < cap_ents and n_ents < cap_ents */
  e = &s->ents[pos];
  ok = arena_place(s, data.len + key.len + ehk.len, &off);
  p = s->arena + off;

  WEIR_ASSERT(ok && s->n_ents < s->cap_ents);
  if (data.len > 0)
    memcpy(p, data.ptr, data.len);
  memcpy(p + data.len, key.ptr, key.len);
  if (ehk.len > 0)
    memcpy(p + data.len + key.len, ehk.ptr, ehk.len);
  e->off = off;
  e->data_len = (uint32_t)data.len;
  e->key_len = (uint16_t)key.len;
  e->ehk_len = (uint8_t)ehk.len;
  e->stream = (uint8_t)stream;
  e->state = KENT_PENDING;
  e->hash = key_hash(stream, key.ptr, key.len);
  e->attempts = 0;
  e->retry_at_ms = 0;
  if (hash_key != NULL)
    e->hash_key = *hash_key;
  s->arena_tail = off + data.len + key.len + ehk.len;
  s->n_ents++;
  s->pending++;
  s->unsent++;
  s->buf_bytes += data.len + key.len + ehk.len;
  if (s->oldest_ms == 0)
    s->oldest_ms = weir__ksink_now_ms();
  if (s->idle) {
    /* The key set still holds the keys of the walk that found nothing (no request came back
     * since, so its entries are all still here): a record of a known key is blocked too. */
    struct kkey *k;

    if (!weir__ksink_key_find(s, (uint32_t)pos, &k) && !key_in_flight(s, e))
      s->idle = false;
  }
}

void weir__ksink_buf_reclaim(struct ksub *s) {
  while (s->n_ents > 0 && s->ents[s->head].state == KENT_DONE) {
    struct kentry *e = &s->ents[s->head];

    s->buf_bytes -= entry_bytes(e);
    e->state = KENT_FREE;
    s->head = s->head + 1 == s->cap_ents ? 0 : s->head + 1;
    s->n_ents--;
    if (s->walk_skip > 0)
      s->walk_skip--;
  }
  if (s->n_ents == 0) {
    s->head = 0;
    s->arena_tail = 0;
    s->walk_skip = 0;
  }
}

/* ---- the key set ---------------------------------------------------------------------------- */

void weir__ksink_keys_clear(struct ksub *s) {
  if (++s->key_gen == 0) {
    memset(s->keys, 0, s->key_slots * sizeof(*s->keys));
    s->key_gen = 1;
  }
}

bool weir__ksink_key_find(struct ksub *s, uint32_t pos, struct kkey **slot_out) {
  const struct kentry *e = &s->ents[pos];
  const uint8_t *k = s->arena + e->off + e->data_len;
  size_t mask = s->key_slots - 1, i = e->hash & mask;

  /* At most key_slots / 2 distinct keys per generation (weir__ksink_buf_init): probing ends. */
  for (;; i = (i + 1) & mask) {
    struct kkey *slot = &s->keys[i];
    const struct kentry *y;

    if (slot->gen != s->key_gen) {
      slot->gen = s->key_gen;
      slot->hash = e->hash;
      slot->ent = pos;
      slot->agg = -1;
      *slot_out = slot;
      return false;
    }
    if (slot->hash != e->hash)
      continue;
    y = &s->ents[slot->ent];
    if (y->stream == e->stream && y->key_len == e->key_len &&
        memcmp(s->arena + y->off + y->data_len, k, e->key_len) == 0) {
      *slot_out = slot;
      return true;
    }
  }
}

bool weir__ksink_sendable(const struct ksub *s, const struct kentry *e, int stream, int64_t now) {
  (void)s;
  return e->state == KENT_PENDING && e->stream == stream && e->retry_at_ms <= now;
}

/* ---- building a plain request --------------------------------------------------------------- */

static size_t build_plain(struct ksub *s, struct kslot *slot, int stream, size_t max_entries,
                          int64_t now) {
  size_t n = 0, bytes = 0, looked = 0, mask = s->key_slots - 1, i = s->walk_skip;
  uint32_t pos = (uint32_t)(s->head + i < s->cap_ents ? s->head + i : s->head + i - s->cap_ents);
  int64_t next_retry = INT64_MAX;
  /* clean: no entry before i is PENDING (walk_skip may move to i + 1) */
  bool whole = true, clean = !s->cfg->aggregation;

  weir__ksink_keys_clear(s);
  memset(slot->kset, 0, sizeof(slot->kset));
  /* Entries in flight are not walked into the key set: their keys are in their requests' sets
   * (key_in_flight), so a build hashes only the pending entries it looks at. */
  for (; i < s->n_ents && n < max_entries; i++, pos = pos + 1 == s->cap_ents ? 0 : pos + 1) {
    struct kentry *e = &s->ents[pos];
    struct kkey *k;
    bool was_clean;
    size_t sz;

    /* The key set is cold (other threads ran since the last build): fetch the slot of an
     * entry a few places ahead so the misses overlap. */
    if (i + KEY_PREFETCH < s->n_ents) {
      size_t ahead = pos + KEY_PREFETCH;
      uint32_t h = s->ents[ahead < s->cap_ents ? ahead : ahead - s->cap_ents].hash;

      __builtin_prefetch(&s->keys[h & mask]);
      for (size_t j = 0; j < s->n_slots; j++)
        if (s->slots[j].keys_live)
          __builtin_prefetch(&s->slots[j].kset[h & (KSINK_KSET_SLOTS - 1)]);
    }
    if (e->state != KENT_PENDING || e->stream != stream) {
      if (e->state == KENT_PENDING)
        clean = false;
      else if (clean)
        s->walk_skip = i + 1;
      continue;
    }
    was_clean = clean;
    clean = false; /* until this entry is taken */
    /* Bounded walk: the oldest pending entries are always within it (so progress is certain),
     * and with few keys the rest of a long buffer is blocked anyway. */
    if (++looked > WALK_PENDING_MAX) {
      whole = false;
      break;
    }
    if (weir__ksink_key_find(s, pos, &k))
      continue; /* an earlier entry of this key is pending */
    if (key_in_flight(s, e))
      continue; /* an earlier entry of this key is in flight; later ones find k in the set */
    if (e->retry_at_ms > now) {
      if (e->retry_at_ms < next_retry)
        next_retry = e->retry_at_ms;
      continue;
    }
    sz = (size_t)e->data_len + e->key_len;
    if (bytes + sz > s->cfg->max_request_bytes)
      continue; /* its key stays blocked for this request */
    e->state = KENT_IN_FLIGHT;
    e->attempts++;
    s->unsent--;
    slot->req[n].data = weir__ksink_data(s, e);
    slot->req[n].partition_key = weir__ksink_key(s, e);
    slot->req[n].explicit_hash_key = NULL;
    if (e->ehk_len > 0) {
      memcpy(slot->ehk[n], ehk_of(s, e).ptr, e->ehk_len);
      slot->ehk[n][e->ehk_len] = '\0';
      slot->req[n].explicit_hash_key = slot->ehk[n];
    }
    slot->first[n] = (uint32_t)slot->n_members;
    slot->count[n] = 1;
    slot->members[slot->n_members++] = pos;
    kset_add(slot, e->hash);
    bytes += sz;
    n++;
    if (was_clean) {
      s->walk_skip = i + 1;
      clean = true;
    }
  }
  slot->bytes = bytes;
  slot->keys_live = n > 0;
  /* Nothing to send: until a request comes back, a retry time passes or a record with a key
   * not in the set arrives (weir__ksink_buf_push), another walk would find nothing either. */
  if (n == 0 && whole && s->n_streams == 1) {
    s->idle = true;
    s->next_retry_ms = next_retry;
  }
  return n;
}

/* The stream of the oldest entry that could be sent now; -1 when none. */
static int next_stream(const struct ksub *s, int64_t now) {
  size_t pos = s->head;

  /* One stream, plain requests: the build finds what can be sent (or marks the sink idle) in
   * its own walk. */
  if (s->n_streams == 1 && !s->cfg->aggregation)
    return 0;
  for (size_t i = 0; i < s->n_ents; i++, pos = pos + 1 == s->cap_ents ? 0 : pos + 1) {
    const struct kentry *e = &s->ents[pos];

    if (e->state == KENT_PENDING && e->retry_at_ms <= now)
      return e->stream;
  }
  return -1;
}

/* ---- results -------------------------------------------------------------------------------- */

static void retry_later(struct ksub *s, struct kentry *e, int64_t now) {
  struct weir_kinesis_retry p = {0, RETRY_BASE_MS, RETRY_MAX_MS, 2.0};
  int n = e->attempts > 0 ? (int)e->attempts - 1 : 0;

  e->state = KENT_PENDING;
  s->walk_skip = 0;
  e->retry_at_ms = now + weir__kinesis_backoff_ms(&p, n < 30 ? n : 30, &s->rng);
  s->unsent++;
  weir_metric_add(s->m.retries, 1);
}

/* Counts into *bytes; the caller adds the metrics once per request (two atomic adds per
 * record cost more than the rest of acknowledging it). */
static void acked(struct ksub *s, struct kentry *e, int64_t *bytes) {
  e->state = KENT_DONE;
  s->pending--;
  s->records_out++;
  *bytes += e->data_len;
}

/* Acts on a finished request. Returns 0 or the error that failed the subtask. */
static int handle(struct ksub *s, struct kslot *slot) {
  const char *stream = s->streams[slot->stream].name;
  int64_t now = weir__ksink_now_ms();
  size_t throttled = 0;
  int64_t ok_records = 0, ok_bytes = 0;
  int rc = 0;

  s->idle = false;
  slot->keys_live = false;
  s->busy--;
  s->in_flight_entries -= slot->n;
  s->put_calls++;
  weir_metric_add(s->m.calls, 1);
  weir_metric_add(s->m.entries_sent, (int64_t)slot->n);
  if (slot->rc == 0 && (slot->rc = weir__ksink_slot_results(s, slot)) != 0)
    slot->err = *weir__kinesis_last_error(slot->client);
  if (slot->rc != 0) {
    const struct weir_kinesis_error *err = &slot->err;

    if (err->cls == WEIR_KINESIS_ERR_FATAL)
      rc = weir__ksink_fail(s, slot->rc, "kinesis sink: PutRecords to stream %s failed: %s%s%s",
                            stream, err->code[0] ? err->code : weir_err_name(slot->rc),
                            err->message[0] ? ": " : "", err->message);
    else if ((s->logged_kinds & 1u) == 0) {
      WEIR_LOG_WARN("kinesis sink %s[%d]: PutRecords to stream %s: %s (%s); retrying (logged "
                    "once)",
                    weir_ctx_name(s->ctx), weir_ctx_subtask(s->ctx), stream, err->code,
                    err->message);
      s->logged_kinds |= 1u;
    }
    if (err->cls == WEIR_KINESIS_ERR_THROTTLING) {
      throttled = slot->n;
      weir_metric_add(s->m.throttled, (int64_t)slot->n);
    }
    for (size_t j = 0; j < slot->n_members; j++)
      retry_later(s, &s->ents[slot->members[j]], now);
  } else {
    const struct weir_kinesis_put_outcomes *out = slot->out;
    size_t f = 0;

    for (size_t i = 0; i < slot->n; i++) {
      const struct weir_kinesis_put_result *r;
      enum weir_kinesis_err_class cls;

      if (out->ok[i]) {
        for (uint32_t j = 0; j < slot->count[i]; j++)
          acked(s, &s->ents[slot->members[slot->first[i] + j]], &ok_bytes);
        ok_records += slot->count[i];
        if (s->cfg->aggregation)
          weir__ksink_agg_check_shard(s, slot, i);
        continue;
      }
      r = &out->fail[f++];
      s->entries_failed++;
      weir_metric_add(weir__ksink_failed_metric(s, r->error_code), 1);
      cls = weir__kinesis_classify(200, r->error_code);
      if (cls == WEIR_KINESIS_ERR_THROTTLING || cls == WEIR_KINESIS_ERR_TRANSIENT) {
        if (cls == WEIR_KINESIS_ERR_THROTTLING) {
          throttled++;
          weir_metric_add(s->m.throttled, 1);
        }
        for (uint32_t j = 0; j < slot->count[i]; j++)
          retry_later(s, &s->ents[slot->members[slot->first[i] + j]], now);
        continue;
      }
      /* The service will not take it on retry: the job fails, or it becomes a dead letter. */
      for (uint32_t j = 0; j < slot->count[i] && rc == 0; j++) {
        struct kentry *e = &s->ents[slot->members[slot->first[i] + j]];
        char msg[512];

        snprintf(msg, sizeof(msg), "stream %s refused a record (partition key '%.*s'): %s: %s",
                 stream, (int)(e->key_len < 64 ? e->key_len : 64), weir__ksink_key(s, e).ptr,
                 r->error_code, r->error_message);
        rc = weir__ksink_refuse(s, slot->stream, weir__ksink_key(s, e), ehk_of(s, e),
                                weir__ksink_data(s, e), r->error_code, msg);
        e->state = KENT_DONE;
        s->pending--;
      }
    }
  }
  weir_metric_add(s->m.records, ok_records);
  weir_metric_add(s->m.bytes, ok_bytes);
  if (s->cfg->rate_mode == WEIR_KINESIS_RATE_AIMD)
    weir__ksink_rate_result(s, slot->n, throttled);
  slot->n = slot->n_members = 0;
  weir__ksink_buf_reclaim(s);
  return rc;
}

/* ---- the loop ------------------------------------------------------------------------------- */

/* Sends requests while slots, the rate window and the buffer allow. */
static void send_ready(struct ksub *s, bool partial) {
  const weir_kinesis_sink_config *cfg = s->cfg;

  while (s->unsent > 0) {
    int64_t now = weir__ksink_now_ms();
    struct kslot *slot;
    size_t allow, n;
    int stream;

    /* Without `partial`, wait for a full request's worth: fewer, fuller requests. */
    if (!partial && s->unsent < cfg->max_request_records)
      break;
    if (s->idle && now < s->next_retry_ms)
      break; /* the last walk found nothing and nothing changed since */
    if ((slot = weir__ksink_slot_idle(s)) == NULL || (allow = weir__ksink_rate_allow(s)) == 0 ||
        (stream = next_stream(s, now)) < 0)
      break;
    slot->stream = stream;
    slot->n_members = 0;
    n = cfg->aggregation && s->streams[stream].bad_rc == 0
            ? weir__ksink_build_agg(s, slot, stream, allow, now)
            : build_plain(s, slot, stream, allow, now);
    if (n == 0)
      break;
    slot->n = n;
    s->busy++;
    s->in_flight_entries += n;
    weir__ksink_slot_submit(s, slot);
  }
  if (s->unsent == 0)
    s->oldest_ms = 0;
}

static void gauges(struct ksub *s) {
  weir_metric_set(s->m.buffered_records, (int64_t)s->pending);
  weir_metric_set(s->m.buffered_bytes, (int64_t)s->buf_bytes);
  weir_metric_set(s->m.in_flight, (int64_t)s->busy);
  weir_metric_set(s->m.window, (int64_t)s->window);
}

int weir__ksink_pump(struct ksub *s, enum ksink_goal goal, size_t len, bool partial) {
  struct kslot *done[WEIR_KINESIS_SINK_MAX_IN_FLIGHT];
  int64_t wait_ms = 0;
  int rc;

  for (;;) {
    size_t n;

    if (s->failed)
      return s->fail_rc;
    if (weir__ksink_cancelled(s))
      return WEIR_ECANCELED;
    n = weir__ksink_slots_wait(s, wait_ms > 0 ? weir__ksink_now_ms() + wait_ms : 0, done);
    for (size_t i = 0; i < n; i++)
      if ((rc = handle(s, done[i])) != 0)
        return rc;
    send_ready(s, partial || goal != KSINK_POLL);
    gauges(s);
    if (goal == KSINK_POLL || (goal == KSINK_SPACE && weir__ksink_buf_fits(s, len)) ||
        (goal == KSINK_DRAIN && s->pending == 0))
      return 0;
    wait_ms = s->busy > 0 ? WAIT_SLICE_MS : RETRY_POLL_MS;
  }
}
