/*
 * source_read.c: the Kinesis source's read path. fetch: pick a due shard (its interval, its
 * budget of 5 GetRecords calls per second, its backoff, its parents finished), renew its
 * iterator when missing or old, GetRecords into the subtask's one recycled batch; a child whose
 * parent another subtask read waits for the checkpoint gate. emit: walk the
 * batch's records, de-aggregate KPL aggregates (dropping whole aggregates outside the shard's
 * hash range, as the KCL does), deserialize, emit, and advance the shard's position record by
 * record. Watermarks: per shard, minimum over non-idle shards.
 *
 * Threads: one subtask's thread (src->mu is taken only through source_shards.c).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../runtime/job_int.h"
#include "../../runtime/log_int.h"
#include "../../runtime/task_int.h"
#include "connectors/kinesis/source_int.h"

int64_t weir__ksrc_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool weir__ksrc_cancelled(const weir_ctx *ctx) {
  return atomic_load_explicit(&ctx->task->job->cancelled, memory_order_relaxed);
}

bool weir__ksrc_checkpointing(const weir_ctx *ctx, bool *periodic) {
  const weir_job *job = ctx->task->job;

  /* Both are set before the job's threads start and not changed while it runs. */
  *periodic = job->coord != NULL && job->ckpt.interval_ms > 0;
  return job->coord != NULL;
}

/* ---- the checkpoint gate ----------------------------------------------------------------- */

/* Shard k waits for a checkpoint that holds the end of its parent g->parent (read by another
 * subtask). Asks for one when nobody has yet for that parent, and again every
 * KSRC_GATE_RETRY_MS in a job without periodic checkpoints (the one asked for may have failed);
 * with periodic ones the next one will do. Never blocks: the subtask goes on polling, so
 * barriers, stop and cancel are seen as usual. */
static void gate_hold(struct ksub *s, weir_ctx *ctx, struct kshard *k, const struct kgate *g,
                      int64_t now) {
  bool ask = g->ask;

  if (!k->gate_held) {
    k->gate_held = true;
    k->gate_since_ms = now;
    k->gate_asked_ms = now;
    weir_metric_set(s->m_gate_waiting, ++s->gate_waiting);
    WEIR_LOG_DEBUG("kinesis source %s[%d]: %s waits for a checkpoint that holds the end of "
                   "parent %s (read by subtask %d)",
                   weir_ctx_name(ctx), s->index, k->meta, g->parent, g->owner);
  } else if (!s->ckpt_periodic && now - k->gate_asked_ms >= KSRC_GATE_RETRY_MS) {
    ask = true;
    k->gate_asked_ms = now;
  }
  /* WEIR_ESTATE when the job is stopping: nothing to wait for then. */
  if (ask)
    (void)weir_job_trigger_checkpoint(ctx->task->job);
}

/* Shard k passed its parents' lineage check and the gate: counts and logs how. */
static void gate_pass(struct ksub *s, weir_ctx *ctx, struct kshard *k, const struct kgate *g,
                      int64_t now) {
  if (k->gate_held) {
    k->gate_held = false;
    weir_metric_set(s->m_gate_waiting, --s->gate_waiting);
    WEIR_LOG_DEBUG("kinesis source %s[%d]: %s starts: checkpoint %llu holds its parents' ends "
                   "(waited %lld ms)",
                   weir_ctx_name(ctx), s->index, k->meta, (unsigned long long)g->completed,
                   (long long)(now - k->gate_since_ms));
  }
  if (g->cross && g->gate) {
    weir_metric_add(s->m_gated, 1);
  } else if (g->cross && !s->logged_ungated) {
    s->logged_ungated = true;
    WEIR_LOG_INFO("kinesis source %s[%d]: %s starts after its parent %s, read by subtask %d, "
                  "without waiting for a checkpoint: the job does not checkpoint, so per-key "
                  "order between the two subtasks holds by timing only (docs/guarantees.md, "
                  "Resharding; logged once)",
                  weir_ctx_name(ctx), s->index, k->meta, g->parent, g->owner);
  }
}

/* ---- fetching ---------------------------------------------------------------------------- */

/* Schedules the shard's next attempt after a throttled or failed call (full jitter). */
static void back_off(struct ksub *s, struct kshard *k, int64_t now) {
  const weir_kinesis_backoff *b = &s->src->cfg.getrecords_backoff;
  struct weir_kinesis_retry p = {b->retries, b->base_ms, b->max_ms, b->exp};
  int64_t d = weir__kinesis_backoff_ms(&p, k->backoff_n < 30 ? k->backoff_n : 30, &s->rng);

  k->backoff_n++;
  /* Never sooner than the interval: a backoff of 0 would poll in a tight loop. */
  if (d < s->src->cfg.getrecords_interval_ms)
    d = s->src->cfg.getrecords_interval_ms;
  k->next_fetch_ms = now + d;
}

/* The error of the client's last call as text for the job's error. */
static void set_call_error(weir_ctx *ctx, struct ksub *s, const struct kshard *k, const char *op,
                           int rc) {
  const struct weir_kinesis_error *e = weir__kinesis_last_error(s->client);

  weir_ctx_set_error(ctx, "kinesis source: %s of %s failed: %s%s%s (%s)", op, k->meta, e->code,
                     e->code[0] ? ": " : "", e->message, weir_strerror(rc));
}

/* Gets an iterator from the shard's position. 0, WEIR_EAGAIN (retry later), or fatal. */
static int acquire_iterator(struct ksub *s, weir_ctx *ctx, struct kshard *k, int64_t now) {
  const char *stream = s->src->streams[k->stream];
  struct weir_kinesis_iterator_req req;
  int64_t asked_ms = wall_ms();
  int rc;

  weir__ksrc_iterator_req(k, stream, &req);
  rc = weir__kinesis_get_shard_iterator(s->client, &req, k->iterator);
  if (rc == WEIR_EINVAL && k->pos.kind == KPOS_SEQUENCE) {
    /* The sequence number is no longer in the stream (older than the retention period, or
     * the stream was recreated): what remains starts at TRIM_HORIZON. */
    WEIR_LOG_WARN("kinesis source: %s: position %s is no longer readable (%s); restarting "
                  "from TRIM_HORIZON: records between it and the trim horizon are lost",
                  k->meta, k->pos.seq, weir__kinesis_last_error(s->client)->message);
    memset(&k->pos, 0, sizeof(k->pos));
    k->pos.kind = KPOS_TRIM_HORIZON;
    weir__ksrc_iterator_req(k, stream, &req);
    rc = weir__kinesis_get_shard_iterator(s->client, &req, k->iterator);
  }
  if (rc == WEIR_EAGAIN || rc == WEIR_EIO || rc == WEIR_ETIMEDOUT) {
    /* Throttled or transient after the client's own retries: try again later. */
    back_off(s, k, now);
    return WEIR_EAGAIN;
  }
  if (rc != 0) {
    set_call_error(ctx, s, k, "GetShardIterator", rc);
    return rc;
  }
  /* Nothing read yet from LATEST: remember when, so that a restore does not skip what arrives
   * between the checkpoint and the restart. */
  if (k->pos.kind == KPOS_LATEST) {
    k->pos.kind = KPOS_AT_TIMESTAMP;
    k->pos.ts_ms = asked_ms;
  }
  k->have_iter = true;
  k->iter_ms = now;
  return 0;
}

/* One GetRecords for shard i. 0 with s->cur set, WEIR_EAGAIN (nothing this time), or fatal. */
static int fetch_shard(struct ksub *s, weir_ctx *ctx, size_t i, int64_t now) {
  const weir_kinesis_source_config *cfg = &s->src->cfg;
  struct kshard *k = &s->shards[i];
  const struct weir_kinesis_error *e;
  int rc;

  if (k->have_iter && now - k->iter_ms > KSRC_ITERATOR_RENEW_MS) {
    /* Held back so long (backpressure) that the iterator may have expired. */
    k->have_iter = false;
    weir_metric_add(k->m_renewals, 1);
  }
  if (!k->have_iter && (rc = acquire_iterator(s, ctx, k, now)) != 0)
    return rc;
  k->calls[k->call_i] = now;
  k->call_i = (k->call_i + 1) % WEIR_KINESIS_SOURCE_CALLS_PER_SECOND;
  weir_metric_add(k->m_calls, 1);
  rc = weir__kinesis_get_records(s->client, k->iterator, cfg->getrecords_max, &s->batch);
  if (rc != 0) {
    e = weir__kinesis_last_error(s->client);
    if (strcmp(e->code, "ExpiredIteratorException") == 0) {
      k->have_iter = false;
      weir_metric_add(k->m_renewals, 1);
      k->next_fetch_ms = now;
      return WEIR_EAGAIN;
    }
    if (e->cls == WEIR_KINESIS_ERR_THROTTLING) {
      weir_metric_add(k->m_throttles, 1);
      back_off(s, k, now);
      return WEIR_EAGAIN;
    }
    if ((e->cls == WEIR_KINESIS_ERR_TRANSIENT || rc == WEIR_ETIMEDOUT || rc == WEIR_EIO) &&
        k->errors_n++ < cfg->getrecords_backoff.retries) {
      WEIR_LOG_WARN("kinesis source: GetRecords of %s: %s%s%s; retrying", k->meta, e->code,
                    e->code[0] ? ": " : "", e->message);
      /* The connection may be half-read: a fresh iterator is safer than a reused one. */
      k->have_iter = false;
      back_off(s, k, now);
      return WEIR_EAGAIN;
    }
    set_call_error(ctx, s, k, "GetRecords", rc);
    return rc;
  }
  k->backoff_n = 0;
  k->errors_n = 0;
  k->have_iter = s->batch.has_next;
  if (s->batch.has_next)
    strcpy(k->iterator, s->batch.next_iterator);
  k->iter_ms = now;
  weir_metric_set(k->m_lag, s->batch.millis_behind_latest < 0 ? 0 : s->batch.millis_behind_latest);
  k->caught_up = s->batch.n == 0 && s->batch.millis_behind_latest <= 0;
  if (s->batch.n > 0)
    k->active_ms = now;
  /* A full batch means more is waiting: go again as soon as the budget allows. */
  k->next_fetch_ms = s->batch.n >= cfg->getrecords_max ? now : now + cfg->getrecords_interval_ms;
  {
    /* The byte budget: B bytes just read use B / 2 MiB seconds of this shard's quota. */
    uint64_t bytes = 0;
    int64_t quota_ms;

    for (size_t r = 0; r < s->batch.n; r++)
      bytes += s->batch.recs[r].data.len;
    quota_ms = (int64_t)(bytes * 1000u / WEIR_KINESIS_SOURCE_BYTES_PER_SECOND);
    if (now + quota_ms > k->next_fetch_ms)
      k->next_fetch_ms = now + quota_ms;
  }
  if (s->batch.n_children > 0 &&
      (rc = weir__ksrc_add_children(s, k->stream, s->batch.children, s->batch.n_children)) != 0)
    WEIR_LOG_WARN("kinesis source: %s: child shards not recorded (%s); the next listing will "
                  "find them",
                  k->meta, weir_strerror(rc));
  s->cur = (long)i;
  s->cur_rec = 0;
  s->in_record = false;
  return 0;
}

int weir__ksrc_fetch(struct ksub *s, weir_ctx *ctx, int64_t *wait_ms) {
  int64_t now = weir__ksrc_now_ms(), wait = KSRC_NAP_MAX_MS;
  size_t n = s->n_shards;

  for (size_t j = 0; j < n; j++) {
    size_t i = (s->rr + j) % n;
    struct kshard *k = &s->shards[i];
    int64_t oldest;
    int rc;

    if (k->state == KS_FINISHED || (s->src->cfg.stop_at_end && k->caught_up))
      continue;
    if (k->state == KS_WAITING) {
      struct kgate g;

      if (!weir__ksrc_parents_done(s, k, &g)) {
        if (g.held)
          gate_hold(s, ctx, k, &g, now);
        continue;
      }
      gate_pass(s, ctx, k, &g, now);
      k->state = KS_READING;
      k->active_ms = now;
    }
    if (now < k->next_fetch_ms) {
      if (k->next_fetch_ms - now < wait)
        wait = k->next_fetch_ms - now;
      continue;
    }
    /* The per-shard budget: the call WEIR_KINESIS_SOURCE_CALLS_PER_SECOND ago is 1 s old. */
    oldest = k->calls[k->call_i];
    if (oldest != 0 && now - oldest < 1000) {
      if (1000 - (now - oldest) < wait)
        wait = 1000 - (now - oldest);
      continue;
    }
    s->rr = i + 1;
    rc = fetch_shard(s, ctx, i, now);
    if (rc != WEIR_EAGAIN)
      return rc;
    wait = 0; /* time passed in the call: look again */
  }
  *wait_ms = wait;
  return WEIR_EAGAIN;
}

/* ---- emitting ---------------------------------------------------------------------------- */

/* Is p[0..n) valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF)? */
static bool utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;

  while (i < n) {
    uint8_t c = p[i];
    size_t len;
    uint32_t cp;

    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t j = 1; j < len; j++) {
      if ((p[i + j] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i + j] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

/* Turns one user record into *out: 0 emit, 1 drop, < 0 rejected. */
static int deserialize(struct ksub *s, weir_ctx *ctx, const struct kshard *k,
                       const struct weir_kinesis_record *r, const struct weir_kpl_user_record *u,
                       weir_record *out) {
  const weir_kinesis_source_config *cfg = &s->src->cfg;

  *out = weir_record_init();
  out->value = u->data;
  out->key = u->partition_key;
  out->timestamp = r->arrival_ms;
  out->meta = (weir_buf){(const uint8_t *)k->meta, k->meta_len};
  out->offset = u->sub_sequence_number;
  if (cfg->deserialize_cb != NULL) {
    weir_kinesis_source_record in = {
        u->data,       u->partition_key, r->sequence_number,         u->sub_sequence_number,
        u->aggregated, r->arrival_ms,    s->src->streams[k->stream], k->shard_id};

    return cfg->deserialize_cb(cfg->deserialize_data, ctx, &in, out);
  }
  switch (cfg->deserializer) {
  case WEIR_KINESIS_DESER_UTF8:
    return utf8_valid(u->data.ptr, u->data.len) ? 0 : WEIR_EPARSE;
  case WEIR_KINESIS_DESER_JSON: {
    /* jansson builds the value to validate it: this deserializer allocates per record. */
    json_t *v = json_loadb((const char *)u->data.ptr, u->data.len, JSON_DECODE_ANY, NULL);

    if (v == NULL)
      return WEIR_EPARSE;
    json_decref(v);
    return 0;
  }
  case WEIR_KINESIS_DESER_RAW:
  default:
    return 0;
  }
}

/* A record the deserializer rejected: counted; fails the job or is skipped. */
static int rejected(struct ksub *s, weir_ctx *ctx, const struct kshard *k, const char *seq,
                    uint64_t sub, int rc) {
  s->rejected++;
  weir_metric_add(s->m_rejected, 1);
  if (s->src->cfg.fail_on_deserialize_error) {
    weir_ctx_set_error(ctx,
                       "kinesis source: %s: record %s/%" PRIu64 " rejected by the "
                       "deserializer (%s)",
                       k->meta, seq, sub, weir_strerror(rc));
    return rc;
  }
  if (!s->logged_reject) {
    WEIR_LOG_WARN("kinesis source: %s: record %s/%" PRIu64 " rejected by the deserializer "
                  "(%s); skipping rejected records (counted in "
                  "weir_kinesis_source_rejected_total; logged once)",
                  k->meta, seq, sub, weir_strerror(rc));
    s->logged_reject = true;
  }
  return 0;
}

/* The current batch is done: a closed shard read to its end is finished. */
static void batch_done(struct ksub *s, struct kshard *k) {
  if (!s->batch.has_next) {
    k->state = KS_FINISHED;
    memset(&k->pos, 0, sizeof(k->pos));
    k->pos.kind = KPOS_SHARD_END;
    weir__ksrc_mark_finished(s, k, s->batch.n_children == 0);
    WEIR_LOG_DEBUG("kinesis source: %s read to its end", k->meta);
  }
  s->cur = -1;
}

int weir__ksrc_emit(struct ksub *s, weir_ctx *ctx, size_t budget, size_t *emitted) {
  struct kshard *k = &s->shards[s->cur];
  struct weir_kinesis_records *b = &s->batch;
  uint64_t bytes = 0;
  size_t n = 0;
  int rc = 0;

  while (n < budget) {
    const struct weir_kinesis_record *r;
    struct weir_kpl_user_record u;
    weir_record out;

    if (s->cur_rec == b->n) {
      batch_done(s, k);
      break;
    }
    r = &b->recs[s->cur_rec];
    if (!s->in_record) {
      struct weir_kpl_input in;
      enum weir_kpl_kind kind = WEIR_KPL_PLAIN;
      size_t seq_len = strlen(r->sequence_number);

      memset(&in, 0, sizeof(in));
      in.data = r->data;
      in.partition_key = r->partition_key;
      in.sequence_number = (weir_buf){(const uint8_t *)r->sequence_number, seq_len};
      int orc = weir__kpl_decoder_open(s->dec, &in, k->has_range ? &k->range : NULL, &kind);

      s->skip_upto = -1;
      if (k->skip_active) {
        /* Resuming inside an aggregate: skip the sub-records emitted before the restart. */
        if (strcmp(r->sequence_number, k->pos.seq) == 0)
          s->skip_upto = (int64_t)k->skip_sub;
        k->skip_active = false;
      }
      /* The position moves to this record now: everything before it is consumed. */
      k->pos.kind = KPOS_SEQUENCE;
      memcpy(k->pos.seq, r->sequence_number, seq_len + 1);
      k->pos.sub = 0;
      k->pos.partial = false;
      if ((orc != 0 && orc != WEIR_EPARSE) || kind == WEIR_KPL_FILTERED) {
        if (orc != 0)
          WEIR_LOG_WARN("kinesis source: %s: record %s not delivered: %s", k->meta,
                        r->sequence_number, weir_strerror(orc));
        else
          weir_metric_add(s->m_filtered, 1);
        s->cur_rec++;
        continue;
      }
      s->in_record = true;
    }
    if (weir__kpl_decoder_next(s->dec, &u) != 0) {
      /* WEIR_EOF, or the rest of a malformed aggregate (logged by the decoder). */
      k->pos.partial = false;
      s->in_record = false;
      s->cur_rec++;
      continue;
    }
    if (s->skip_upto >= 0 && u.sub_sequence_number <= (uint64_t)s->skip_upto)
      continue;
    k->pos.sub = u.sub_sequence_number;
    k->pos.partial = u.sub_sequence_number + 1 < weir__kpl_decoder_count(s->dec);
    rc = deserialize(s, ctx, k, r, &u, &out);
    if (rc < 0) {
      if ((rc = rejected(s, ctx, k, r->sequence_number, u.sub_sequence_number, rc)) != 0)
        break;
      continue;
    }
    if (rc > 0) {
      rc = 0;
      continue;
    }
    if ((rc = weir_emit(ctx, &out)) != 0)
      break;
    if (out.timestamp != WEIR_NO_TIMESTAMP && out.timestamp > k->watermark)
      k->watermark = out.timestamp;
    bytes += u.data.len;
    n++;
    s->idle_out = false; /* weir_emit made the output active again */
  }
  weir_metric_add(k->m_records, (int64_t)n);
  weir_metric_add(k->m_bytes, (int64_t)bytes);
  *emitted = n;
  return rc < 0 ? rc : 0;
}

int weir__ksrc_watermark(struct ksub *s, weir_ctx *ctx, int64_t now_ms) {
  int64_t idle = s->src->cfg.idle_timeout_ms, wm = INT64_MAX, idle_max = WEIR_NO_TIMESTAMP;
  bool any = false;

  for (size_t i = 0; i < s->n_shards; i++) {
    const struct kshard *k = &s->shards[i];

    if (k->state != KS_READING)
      continue;
    if (idle > 0 && now_ms - k->active_ms > idle) {
      if (k->watermark > idle_max)
        idle_max = k->watermark;
      continue;
    }
    if (k->watermark == WEIR_NO_TIMESTAMP)
      return 0; /* an active shard with nothing emitted yet holds the watermark */
    if (k->watermark < wm)
      wm = k->watermark;
    any = true;
  }
  /* Every reading shard idle, or none reading (no shard assigned, all finished or waiting for
   * parents): everything emitted so far is complete, and the subtask's output is idle
   * (downstream leaves it out of its minimum until the next record or watermark). */
  if (!any) {
    int rc = 0;

    if (s->idle_out)
      return 0;
    if (idle_max != WEIR_NO_TIMESTAMP && idle_max > s->last_watermark) {
      s->last_watermark = idle_max;
      rc = weir_emit_watermark(ctx, idle_max);
    }
    if (rc == 0 && (rc = weir_emit_idle(ctx, true)) == 0)
      s->idle_out = true;
    return rc;
  }
  if (wm <= s->last_watermark)
    return 0;
  s->last_watermark = wm;
  s->idle_out = false; /* a watermark makes the output active again */
  return weir_emit_watermark(ctx, wm);
}
