/*
 * source_shards.c: the Kinesis source's node-wide shard table: discovery (ListShards by
 * subtask 0 only, also fed by GetRecords' ChildShards), deterministic assignment (hash of stream
 * and shard id modulo the parallelism), the pool of restored positions, and lineage (a shard is
 * read only after all its parents are finished, and, when the job checkpoints, after a completed
 * checkpoint holds the end of each parent another subtask read: the checkpoint gate).
 *
 * Threads: every function here takes src->mu for its table work; discovery calls the service
 * without holding it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../runtime/log_int.h"
#include "connectors/kinesis/source_int.h"

/* Index of (stream, shard id) in the table, or -1. Under mu. */
static long table_find(const struct ksrc *src, int stream, const char *shard_id) {
  for (size_t i = 0; i < src->n_shards; i++)
    if (src->shards[i].stream == stream && strcmp(src->shards[i].shard.shard_id, shard_id) == 0)
      return (long)i;
  return -1;
}

/* Index of the restored position of (stream, shard id), or -1. Under mu. */
static long restored_find(const struct ksrc *src, const char *stream, const char *shard_id) {
  for (size_t i = 0; i < src->n_restored; i++)
    if (strcmp(src->restored[i].stream, stream) == 0 &&
        strcmp(src->restored[i].shard_id, shard_id) == 0)
      return (long)i;
  return -1;
}

/* Adds or refreshes one shard; `listed`: it comes from the listing in progress (else from
 * ChildShards). Under mu. 0 or WEIR_ETOOBIG. */
static int table_merge(struct ksrc *src, int stream, const struct weir_kinesis_shard *sh,
                       bool listed, bool *changed) {
  long i = table_find(src, stream, sh->shard_id);
  struct kshard_info *e;
  long r;

  if (i >= 0) {
    /* Ending sequence numbers appear when a shard closes; nothing else changes. */
    if (strcmp(src->shards[i].shard.ending_seq, sh->ending_seq) != 0)
      strcpy(src->shards[i].shard.ending_seq, sh->ending_seq);
    return 0;
  }
  if (src->n_shards == src->max_shards) {
    WEIR_LOG_ERR("kinesis source: stream %s: more than %zu shards to track; shard %s ignored",
                 src->streams[stream], src->max_shards, sh->shard_id);
    return WEIR_ETOOBIG;
  }
  e = &src->shards[src->n_shards++];
  memset(e, 0, sizeof(*e));
  e->stream = stream;
  e->shard = *sh;
  e->hash = weir__ksrc_hash(src->streams[stream], sh->shard_id);
  r = restored_find(src, src->streams[stream], sh->shard_id);
  e->finished = r >= 0 && src->restored[r].pos.kind == KPOS_SHARD_END;
  e->initial = !src->discovered && !src->restored_started;
  /* A complete listing that holds a shard holds its parents unless they expired, so the
   * listing in progress vouches for a listed shard; a shard from ChildShards needs a later one. */
  e->known_at = listed ? src->listing_seq - 1 : src->listing_seq;
  /* Fresh job, first listing, LATEST: closed shards hold nothing newer than "now". */
  if (r < 0 && !src->discovered && !src->restored_started &&
      src->cfg.initial_position == WEIR_KINESIS_START_LATEST && sh->ending_seq[0] != '\0')
    e->finished = true;
  *changed = true;
  return 0;
}

int weir__ksrc_discover(struct ksub *s) {
  struct ksrc *src = s->src;
  bool changed = false;
  uint64_t seq;
  int rc = 0;

  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  seq = ++src->listing_seq;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  for (size_t st = 0; st < src->cfg.n_streams; st++) {
    s->scratch.len = 0;
    rc = weir__kinesis_list_all_shards(s->client, src->streams[st], NULL, &s->scratch);
    if (rc != 0) {
      const struct weir_kinesis_error *e = weir__kinesis_last_error(s->client);

      WEIR_LOG_ERR("kinesis source: ListShards of stream %s failed: %s%s%s (%s)", src->streams[st],
                   e->code, e->code[0] ? ": " : "", e->message, weir_strerror(rc));
      return rc;
    }
    WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
    for (size_t i = 0; i < s->scratch.len && rc == 0; i++)
      rc = table_merge(src, (int)st, &s->scratch.v[i], true, &changed);
    WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
    if (rc != 0)
      return rc;
  }
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (!src->discovered) {
    /* Restored positions of shards that are no longer listed (expired past the retention
     * period, or a stream removed from the configuration) are dropped now. */
    for (size_t i = 0; i < src->n_restored;) {
      const struct krestored *r = &src->restored[i];
      int st = -1;

      for (size_t j = 0; j < src->cfg.n_streams; j++)
        if (strcmp(src->streams[j], r->stream) == 0)
          st = (int)j;
      if (st >= 0 && table_find(src, st, r->shard_id) >= 0) {
        i++;
        continue;
      }
      WEIR_LOG_WARN("kinesis source: restored position of %s/%s dropped: the shard is no longer "
                    "listed (expired, or its stream is not read any more)",
                    r->stream, r->shard_id);
      src->restored[i] = src->restored[--src->n_restored];
    }
    src->discovered = true;
    changed = true;
  }
  src->listed_seq = seq;
  if (changed)
    src->generation++;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  return 0;
}

int weir__ksrc_add_children(struct ksub *s, int stream,
                            const struct weir_kinesis_child_shard *children, size_t n) {
  struct ksrc *src = s->src;
  bool changed = false;
  int rc = 0;

  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  for (size_t i = 0; i < n && rc == 0; i++) {
    struct weir_kinesis_shard sh;

    memset(&sh, 0, sizeof(sh));
    strcpy(sh.shard_id, children[i].shard_id);
    strcpy(sh.parent_shard_id, children[i].parents[0]);
    strcpy(sh.adjacent_parent_shard_id, children[i].parents[1]);
    sh.hash_range = children[i].hash_range;
    rc = table_merge(src, stream, &sh, false, &changed);
  }
  if (changed)
    src->generation++;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  return rc;
}

/* The position a newly claimed shard starts from. Under mu. */
static void initial_pos(struct ksrc *src, const struct kshard_info *e, bool first, struct kpos *p) {
  long r = restored_find(src, src->streams[e->stream], e->shard.shard_id);

  memset(p, 0, sizeof(*p));
  if (r >= 0) {
    *p = src->restored[r].pos;
    src->restored[r] = src->restored[--src->n_restored];
    return;
  }
  if (e->finished) {
    p->kind = KPOS_SHARD_END;
    return;
  }
  if (!first || src->restored_started) {
    p->kind = KPOS_TRIM_HORIZON; /* a shard born while the job runs: read all of it */
    return;
  }
  switch (src->cfg.initial_position) {
  case WEIR_KINESIS_START_TRIM_HORIZON:
    p->kind = KPOS_TRIM_HORIZON;
    break;
  case WEIR_KINESIS_START_AT_TIMESTAMP:
    p->kind = KPOS_AT_TIMESTAMP;
    p->ts_ms = src->initial_ts_ms;
    break;
  case WEIR_KINESIS_START_LATEST:
  default:
    p->kind = KPOS_LATEST;
    break;
  }
}

bool weir__ksrc_unclaimed_pos(const struct ksrc *src, const struct kshard_info *e, struct kpos *p) {
  memset(p, 0, sizeof(*p));
  if (restored_find(src, src->streams[e->stream], e->shard.shard_id) >= 0)
    return false; /* written from the restore pool */
  if (e->finished)
    p->kind = KPOS_SHARD_END;
  else if (!e->initial)
    p->kind = KPOS_TRIM_HORIZON;
  else if (src->cfg.initial_position == WEIR_KINESIS_START_TRIM_HORIZON)
    p->kind = KPOS_TRIM_HORIZON;
  else if (src->cfg.initial_position == WEIR_KINESIS_START_AT_TIMESTAMP) {
    p->kind = KPOS_AT_TIMESTAMP;
    p->ts_ms = src->initial_ts_ms;
  } else {
    p->kind = KPOS_LATEST;
  }
  return true;
}

static void register_metrics(weir_ctx *ctx, struct ksub *s, struct kshard *k) {
  const char *labels[] = {"stream", s->src->streams[k->stream], "shard", k->shard_id, NULL};

  /* A failed registration leaves the pointer NULL: updates become no-ops. */
  (void)weir_ctx_metric(ctx, WEIR_METRIC_GAUGE, "weir_kinesis_source_millis_behind_latest",
                        "MillisBehindLatest of the shard's last GetRecords", labels, &k->m_lag);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_records_total",
                        "User records emitted (after de-aggregation)", labels, &k->m_records);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_bytes_total",
                        "Data bytes of the user records emitted", labels, &k->m_bytes);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_getrecords_total",
                        "GetRecords calls made", labels, &k->m_calls);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_throttles_total",
                        "GetRecords calls refused with ProvisionedThroughputExceeded", labels,
                        &k->m_throttles);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_iterator_renewals_total",
                        "Shard iterators obtained again (expired, or old after backpressure)",
                        labels, &k->m_renewals);
}

int weir__ksrc_sync(struct ksub *s, weir_ctx *ctx) {
  struct ksrc *src = s->src;
  size_t first_new = s->n_shards;
  int rc = 0;

  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (src->generation == s->seen_generation) {
    WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
    return 0;
  }
  s->seen_generation = src->generation;
  for (size_t i = 0; i < src->n_shards; i++) {
    struct kshard_info *e = &src->shards[i];
    struct kshard *k;
    int kpl;

    if (e->claimed || (int)(e->hash % (uint64_t)s->parallelism) != s->index)
      continue;
    if (s->n_shards == src->max_shards) {
      rc = WEIR_ETOOBIG;
      break;
    }
    k = &s->shards[s->n_shards++];
    memset(k, 0, sizeof(*k));
    k->ti = i;
    e->claimed = true;
    k->stream = e->stream;
    strcpy(k->shard_id, e->shard.shard_id);
    strcpy(k->parents[0], e->shard.parent_shard_id);
    strcpy(k->parents[1], e->shard.adjacent_parent_shard_id);
    kpl = weir__kpl_hash_range_parse(e->shard.hash_range.start, e->shard.hash_range.end, &k->range);
    k->has_range = kpl == 0;
    /* Shards present at the job's very first listing take the initial position. */
    initial_pos(src, e, e->initial, &k->pos);
    if (k->pos.kind == KPOS_SHARD_END) {
      k->state = KS_FINISHED;
      e->finished = true;
    } else {
      k->state = KS_WAITING;
    }
    k->watermark = WEIR_NO_TIMESTAMP;
    k->active_ms = weir__ksrc_now_ms();
    k->meta_len =
        (size_t)snprintf(k->meta, sizeof(k->meta), "%s/%s", src->streams[k->stream], k->shard_id);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  for (size_t i = first_new; i < s->n_shards; i++) {
    register_metrics(ctx, s, &s->shards[i]);
    WEIR_LOG_DEBUG("kinesis source %s[%d]: reading %s (position kind %d)", weir_ctx_name(ctx),
                   s->index, s->shards[i].meta, (int)s->shards[i].pos.kind);
  }
  return rc;
}

void weir__ksrc_mark_finished(struct ksub *s, const struct kshard *k, bool rediscover) {
  struct ksrc *src = s->src;

  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  src->shards[k->ti].finished = true;
  src->shards[k->ti].read_end = true;
  s->ends_unsnapshotted++;
  src->generation++;
  if (rediscover)
    src->discover_now = true; /* its children may not be listed yet */
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
}

/* The checkpoint gate for parent e of a shard of subtask s, whose parents are all finished.
 * Under mu. */
static void gate_check(struct ksub *s, struct kshard_info *e, struct kgate *g) {
  struct ksrc *src = s->src;
  int owner = (int)(e->hash % (uint64_t)src->parallelism);

  /* Read by this subtask: its records went out before any of the child's, through the same
   * channels, so they arrive first (order by construction). */
  if (!e->read_end || owner == s->index)
    return;
  g->cross = true;
  g->owner = owner;
  strcpy(g->parent, e->shard.shard_id);
  /* Without checkpoints there is no barrier to wait for: the child starts now (order by timing,
   * docs/guarantees.md). With them, the end must be in a completed checkpoint: its barrier
   * followed the parent's last records into every channel, and every task took it from each of
   * its inputs before the checkpoint completed, so those records were processed everywhere
   * before any of the child's is read. Each later snapshot of the parent's subtask holds the end
   * too, so any completed id >= end_ckpt will do (a checkpoint that failed is made up by the
   * next). */
  if (!src->gate || (e->end_ckpt != 0 && e->end_ckpt <= src->completed))
    return;
  g->held = true;
  if (e->end_ckpt == 0 && !e->end_asked) {
    e->end_asked = true;
    g->ask = true;
  }
}

bool weir__ksrc_parents_done(struct ksub *s, const struct kshard *k, struct kgate *g) {
  struct ksrc *src = s->src;
  long pi[2] = {-1, -1};
  bool done = true;

  memset(g, 0, sizeof(*g));
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  for (int p = 0; p < 2 && done; p++) {
    long i, self;

    if (k->parents[p][0] == '\0')
      continue;
    i = table_find(src, k->stream, k->parents[p]);
    if (i >= 0) {
      done = src->shards[i].finished;
      pi[p] = i;
      continue;
    }
    /* Not in the table. A parent no longer listed has expired (nothing of it can be read any
     * more), but a child learnt from ChildShards may name a parent that is not known yet: the
     * other parent of a merge, itself a child of a shard still being read. Only a complete
     * listing that holds the child (or started after the child entered the table) and not the
     * parent proves it expired; until then the child waits and a listing is asked for (unless
     * subtask 0 ended: a bounded read does not wait for a listing that will not come). */
    self = table_find(src, k->stream, k->shard_id);
    if (!src->lister_ended && (self < 0 || src->listed_seq <= src->shards[self].known_at)) {
      done = false;
      src->discover_now = true;
    }
  }
  if (done) {
    g->gate = src->gate;
    g->completed = src->completed;
    for (int p = 0; p < 2; p++)
      if (pi[p] >= 0)
        gate_check(s, &src->shards[pi[p]], g);
    done = !g->held;
  }
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  return done;
}

void weir__ksrc_note_ends(struct ksub *s, uint64_t ckpt_id) {
  struct ksrc *src = s->src;

  if (s->ends_unsnapshotted == 0)
    return;
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  for (size_t i = 0; i < s->n_shards; i++) {
    struct kshard_info *e = &src->shards[s->shards[i].ti];

    if (s->shards[i].state == KS_FINISHED && e->read_end && e->end_ckpt == 0)
      e->end_ckpt = ckpt_id;
  }
  s->ends_unsnapshotted = 0;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
}

void weir__ksrc_checkpoint_done(struct ksrc *src, uint64_t ckpt_id) {
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (ckpt_id > src->completed)
    src->completed = ckpt_id;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
}
