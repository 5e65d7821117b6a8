/*
 * source.c: the Kinesis source operator: configuration copying and checks, and the subtask
 * lifecycle. open makes the subtask's client, batch and decoder; the first poll waits until
 * every subtask has passed restore (so restored positions of every old subtask are in the
 * node's pool), subtask 0 lists shards, each subtask claims the shards it owns, and then polls
 * fetch one shard's batch at a time and emit it in slices of max_records_per_poll. snapshot
 * writes the shards' positions (source_pos.c) and notes which shard ends it holds; restore feeds
 * the pool; notify_checkpoint_complete opens the checkpoint gate (source_shards.c).
 *
 * Threads: `struct ksrc` is shared (see source_int.h); a `struct ksub` is one subtask's.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/job_int.h"
#include "../../runtime/log_int.h"
#include "connectors/kinesis/source_int.h"

/* ---- subtask lifecycle ------------------------------------------------------------------- */

static void set_retry(weir_kinesis_client *c, enum weir_kinesis_op op,
                      const weir_kinesis_backoff *b) {
  struct weir_kinesis_retry r = {b->retries, b->base_ms, b->max_ms, b->exp};

  weir__kinesis_set_retry(c, op, &r);
}

static int make_client(weir_ctx *ctx, struct ksub *s) {
  const weir_kinesis_source_config *cfg = &s->src->cfg;
  weir_kinesis_config cc = cfg->client;
  struct weir_kinesis_retry none = {0, 0, 0, 1.0};
  int rc;

  switch (cfg->credentials) {
  case WEIR_KINESIS_CREDS_ENV_VAR:
    cc.access_key_id = getenv("AWS_ACCESS_KEY_ID");
    cc.secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
    cc.session_token = getenv("AWS_SESSION_TOKEN");
    if (cc.access_key_id == NULL || cc.secret_access_key == NULL) {
      weir_ctx_set_error(ctx, "kinesis source: credentials provider ENV_VAR: "
                              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
      return WEIR_ENOTFOUND;
    }
    break;
  case WEIR_KINESIS_CREDS_PROFILE:
    /* A profile named explicitly makes the client skip environment credentials. */
    cc.access_key_id = cc.secret_access_key = cc.session_token = NULL;
    if (cc.profile == NULL || cc.profile[0] == '\0')
      cc.profile = getenv("AWS_PROFILE");
    if (cc.profile == NULL || cc.profile[0] == '\0')
      cc.profile = "default";
    break;
  case WEIR_KINESIS_CREDS_BASIC:
  case WEIR_KINESIS_CREDS_AUTO:
  default:
    break;
  }
  if ((rc = weir_kinesis_client_create(&s->client, &cc)) != 0) {
    weir_ctx_set_error(ctx,
                       "kinesis source: cannot make a client for stream %s (region, "
                       "endpoint or credentials; see the log)",
                       s->src->streams[0]);
    return rc;
  }
  /* GetRecords is retried here, per shard, so one throttled shard does not hold the others.
   * The client logs its final errors at debug level: the source counts throttles, warns on
   * the retries it makes, and a fatal error reaches the log once, as the job's failure. */
  weir__kinesis_set_retry(s->client, WEIR_KINESIS_OP_GET_RECORDS, &none);
  s->client->quiet = true;
  set_retry(s->client, WEIR_KINESIS_OP_GET_SHARD_ITERATOR, &cfg->getiterator_backoff);
  set_retry(s->client, WEIR_KINESIS_OP_LIST_SHARDS, &cfg->listshards_backoff);
  return 0;
}

static int ksrc_open(weir_ctx *ctx, void *data, void **inst) {
  struct ksrc *src = data;
  struct ksub *s;
  bool gate;
  int rc;

  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  *inst = s;
  s->src = src;
  s->index = weir_ctx_subtask(ctx);
  s->parallelism = weir_ctx_parallelism(ctx);
  s->cur = -1;
  s->skip_upto = -1;
  s->last_watermark = WEIR_NO_TIMESTAMP;
  s->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)s->index << 17) ^ (uint64_t)time(NULL);
  weir__kinesis_records_init(&s->batch);
  if ((s->shards = calloc(src->max_shards, sizeof(*s->shards))) == NULL)
    return WEIR_ENOMEM;
  if (s->index == 0) {
    if ((s->scratch.v = calloc(src->max_shards, sizeof(*s->scratch.v))) == NULL)
      return WEIR_ENOMEM;
    s->scratch.cap = src->max_shards;
  }
  if ((rc = weir__kpl_decoder_new(&s->dec, 0)) != 0)
    return rc;
  gate = weir__ksrc_checkpointing(ctx, &s->ckpt_periodic);
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  src->parallelism = s->parallelism;
  src->gate = gate;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_rejected_total",
                        "User records the deserializer rejected", NULL, &s->m_rejected);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_filtered_total",
                        "KPL aggregates dropped whole: a user record outside the shard's "
                        "hash-key range (after resharding)",
                        NULL, &s->m_filtered);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_GAUGE, "weir_kinesis_source_gate_waiting",
                        "Child shards waiting for a checkpoint that holds the end of a parent "
                        "another subtask read (the checkpoint gate)",
                        NULL, &s->m_gate_waiting);
  (void)weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_kinesis_source_gated_children_total",
                        "Child shards that started only once a completed checkpoint held the "
                        "end of a parent another subtask read",
                        NULL, &s->m_gated);
  return make_client(ctx, s);
}

static void ksrc_close(weir_ctx *ctx, void *inst) {
  struct ksub *s = inst;

  (void)ctx;
  if (s == NULL)
    return;
  weir_kinesis_client_destroy(s->client);
  weir__kinesis_records_free(&s->batch);
  weir__kpl_decoder_free(s->dec);
  free(s->shards);
  free(s->scratch.v);
  free(s);
}

static void nap_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

  if (ms > 0)
    nanosleep(&ts, NULL);
}

/* The restore barrier and the first listing. 0 once reading may start, else WEIR_EAGAIN. */
static int start(struct ksub *s, weir_ctx *ctx) {
  struct ksrc *src = s->src;
  bool all, discovered;
  int rc;

  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (!s->counted) {
    src->ready++;
    s->counted = true;
  }
  all = src->ready >= src->parallelism;
  discovered = src->discovered;
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  if (!all)
    return WEIR_EAGAIN;
  if (s->index == 0 && !discovered) {
    if ((rc = weir__ksrc_discover(s)) != 0) {
      weir_ctx_set_error(ctx, "kinesis source: cannot list the shards of stream(s) %s%s: %s",
                         src->streams[0], src->cfg.n_streams > 1 ? ", ..." : "",
                         weir__kinesis_last_error(s->client)->message);
      return rc;
    }
    s->next_discovery_ms = weir__ksrc_now_ms() + src->cfg.discovery_interval_ms;
  } else if (!discovered) {
    return WEIR_EAGAIN;
  }
  s->started = true;
  return 0;
}

/* True when a bounded (stop_at_end) subtask has nothing left to read. */
static bool at_end(struct ksub *s) {
  bool pending;

  WEIR_ASSERT(pthread_mutex_lock(&s->src->mu) == 0);
  pending = s->index == 0 && s->src->discover_now;
  WEIR_ASSERT(pthread_mutex_unlock(&s->src->mu) == 0);
  if (pending || s->cur >= 0)
    return false;
  for (size_t i = 0; i < s->n_shards; i++)
    if (s->shards[i].state != KS_FINISHED && !s->shards[i].caught_up)
      return false;
  return true;
}

static int ksrc_poll(weir_ctx *ctx, void *inst) {
  struct ksub *s = inst;
  struct ksrc *src = s->src;
  int64_t now, wait = 0;
  size_t emitted = 0;
  int rc;

  if (!s->started && (rc = start(s, ctx)) != 0)
    return rc;
  now = weir__ksrc_now_ms();
  if (s->index == 0) {
    bool now_please;

    WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
    now_please = src->discover_now;
    src->discover_now = false;
    WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
    if (now_please || (src->cfg.discovery_interval_ms >= 0 && now >= s->next_discovery_ms)) {
      /* Later listings may fail: the shards already known are read meanwhile. */
      if (weir__ksrc_discover(s) != 0)
        WEIR_LOG_WARN("kinesis source: shard discovery failed; trying again in %lld ms",
                      (long long)src->cfg.discovery_interval_ms);
      s->next_discovery_ms =
          now + (src->cfg.discovery_interval_ms >= 0 ? src->cfg.discovery_interval_ms : 0);
      if (src->cfg.discovery_interval_ms < 0)
        s->next_discovery_ms = INT64_MAX;
    }
  }
  if ((rc = weir__ksrc_sync(s, ctx)) != 0) {
    weir_ctx_set_error(ctx, "kinesis source: more than %zu shards", src->max_shards);
    return rc;
  }
  if (s->cur < 0) {
    rc = weir__ksrc_fetch(s, ctx, &wait);
    if (rc == WEIR_EAGAIN) {
      if ((rc = weir__ksrc_watermark(s, ctx, now)) != 0)
        return rc;
      if (src->cfg.stop_at_end && at_end(s)) {
        if (s->index == 0) {
          WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
          src->lister_ended = true;
          WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
        }
        return WEIR_EOF;
      }
      nap_ms(wait < KSRC_NAP_MAX_MS ? wait : KSRC_NAP_MAX_MS);
      return WEIR_EAGAIN;
    }
    if (rc != 0)
      return rc;
  }
  if ((rc = weir__ksrc_emit(s, ctx, src->cfg.max_records_per_poll, &emitted)) != 0)
    return rc;
  return weir__ksrc_watermark(s, ctx, now);
}

static int ksrc_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  (void)ctx;
  /* Before the snapshot is written: checkpoint ckpt_id cannot complete before this returns. */
  weir__ksrc_note_ends(inst, ckpt_id);
  return weir__ksrc_snapshot(inst, out);
}

static void ksrc_notify(weir_ctx *ctx, void *inst, uint64_t ckpt_id) {
  struct ksub *s = inst;

  (void)ctx;
  weir__ksrc_checkpoint_done(s->src, ckpt_id);
}

static int ksrc_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  struct ksub *s = inst;
  int rc = weir__ksrc_restore(s->src, state);

  if (rc != 0)
    weir_ctx_set_error(ctx, "kinesis source: the checkpoint's source state cannot be read (%s)",
                       weir_strerror(rc));
  return rc;
}

/* ---- building ---------------------------------------------------------------------------- */

void weir_kinesis_source_config_init(weir_kinesis_source_config *cfg) {
  if (cfg != NULL)
    memset(cfg, 0, sizeof(*cfg));
}

static bool backoff_ok(const weir_kinesis_backoff *b) {
  return b->retries >= 0 && b->retries <= 1000 && b->base_ms >= 0 && b->max_ms >= 0 &&
         b->max_ms <= 3600000 && b->base_ms <= b->max_ms && (b->exp == 0 || b->exp >= 1.0);
}

static void backoff_default(weir_kinesis_backoff *b, int retries, int64_t base, int64_t max,
                            double exp) {
  if (b->retries == 0 && b->base_ms == 0 && b->max_ms == 0 && b->exp == 0) {
    b->retries = retries;
    b->base_ms = base;
    b->max_ms = max;
    b->exp = exp;
  } else if (b->exp == 0) {
    b->exp = 1.0;
  }
}

static int validate(const weir_kinesis_source_config *c, int64_t *ts_ms) {
  if (c->streams == NULL || c->n_streams == 0 || c->n_streams > WEIR_KINESIS_SOURCE_MAX_STREAMS)
    return WEIR_EINVAL;
  for (size_t i = 0; i < c->n_streams; i++) {
    size_t n;

    if (c->streams[i] == NULL || (n = strlen(c->streams[i])) == 0 ||
        n > WEIR_KINESIS_STREAM_NAME_MAX)
      return WEIR_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(c->streams[i], c->streams[j]) == 0)
        return WEIR_EINVAL;
  }
  if (c->initial_position < WEIR_KINESIS_START_LATEST ||
      c->initial_position > WEIR_KINESIS_START_AT_TIMESTAMP ||
      c->credentials < WEIR_KINESIS_CREDS_AUTO || c->credentials > WEIR_KINESIS_CREDS_PROFILE ||
      c->deserializer < WEIR_KINESIS_DESER_RAW || c->deserializer > WEIR_KINESIS_DESER_JSON)
    return WEIR_EINVAL;
  if (c->credentials == WEIR_KINESIS_CREDS_BASIC &&
      (c->client.access_key_id == NULL || c->client.secret_access_key == NULL))
    return WEIR_EINVAL;
  *ts_ms = 0;
  if (c->initial_position == WEIR_KINESIS_START_AT_TIMESTAMP &&
      weir__ksrc_parse_timestamp(c->initial_timestamp, ts_ms) != 0)
    return WEIR_EINVAL;
  if (c->getrecords_max > WEIR_KINESIS_GET_MAX_RECORDS || c->discovery_interval_ms < -1 ||
      c->discovery_interval_ms > 86400000 || c->getrecords_interval_ms < 0 ||
      c->getrecords_interval_ms > 3600000 || c->idle_timeout_ms < 0 ||
      c->max_records_per_poll > 65536 || !backoff_ok(&c->getrecords_backoff) ||
      !backoff_ok(&c->getiterator_backoff) || !backoff_ok(&c->listshards_backoff))
    return WEIR_EINVAL;
  return 0;
}

static void ksrc_free(void *data) {
  struct ksrc *k = data;

  if (k == NULL)
    return;
  pthread_mutex_destroy(&k->mu);
  free(k->shards);
  free(k->restored);
  OPENSSL_cleanse(k, k->alloc_size);
  free(k);
}

int weir_job_add_kinesis_source(weir_job *job, const char *name,
                                const weir_kinesis_source_config *cfg, int *id) {
  weir_operator op = {0};
  struct ksrc *k;
  const weir_kinesis_config *cc;
  int64_t ts_ms;
  size_t total;
  char *pos;
  int node, rc;

  if (job == NULL || cfg == NULL || validate(cfg, &ts_ms) != 0)
    return WEIR_EINVAL;
  cc = &cfg->client;
  total = sizeof(*k) + weir__kinesis_config_strings_size(cc) +
          weir__kinesis_str_size(cfg->initial_timestamp);
  for (size_t i = 0; i < cfg->n_streams; i++)
    total += weir__kinesis_str_size(cfg->streams[i]);
  if ((k = calloc(1, total)) == NULL)
    return WEIR_ENOMEM;
  k->alloc_size = total;
  k->max_shards = WEIR_KINESIS_SOURCE_MAX_SHARDS;
  if ((k->shards = calloc(k->max_shards, sizeof(*k->shards))) == NULL ||
      (k->restored = calloc(k->max_shards, sizeof(*k->restored))) == NULL) {
    free(k->shards);
    free(k);
    return WEIR_ENOMEM;
  }
  WEIR_ASSERT(pthread_mutex_init(&k->mu, NULL) == 0);
  pos = (char *)(k + 1);
  k->cfg = *cfg;
  for (size_t i = 0; i < cfg->n_streams; i++)
    k->streams[i] = weir__kinesis_str_put(&pos, cfg->streams[i]);
  k->cfg.streams = k->streams;
  weir__kinesis_config_put_strings(&k->cfg.client, cc, &pos);
  k->cfg.initial_timestamp = weir__kinesis_str_put(&pos, cfg->initial_timestamp);
  k->initial_ts_ms = ts_ms;
  if (k->cfg.discovery_interval_ms == 0)
    k->cfg.discovery_interval_ms = KSRC_DEFAULT_DISCOVERY_MS;
  if (k->cfg.getrecords_max == 0)
    k->cfg.getrecords_max = WEIR_KINESIS_GET_MAX_RECORDS;
  if (k->cfg.getrecords_interval_ms == 0)
    k->cfg.getrecords_interval_ms = KSRC_DEFAULT_INTERVAL_MS;
  if (k->cfg.max_records_per_poll == 0)
    k->cfg.max_records_per_poll = KSRC_DEFAULT_PER_POLL;
  backoff_default(&k->cfg.getrecords_backoff, WEIR_KINESIS_GETRECORDS_RETRIES,
                  WEIR_KINESIS_GETRECORDS_BACKOFF_BASE_MS, WEIR_KINESIS_GETRECORDS_BACKOFF_MAX_MS,
                  WEIR_KINESIS_GETRECORDS_BACKOFF_EXP);
  backoff_default(&k->cfg.getiterator_backoff, WEIR_KINESIS_GETITERATOR_RETRIES,
                  WEIR_KINESIS_GETITERATOR_BACKOFF_BASE_MS, WEIR_KINESIS_GETITERATOR_BACKOFF_MAX_MS,
                  WEIR_KINESIS_GETITERATOR_BACKOFF_EXP);
  backoff_default(&k->cfg.listshards_backoff, WEIR_KINESIS_LIST_SHARDS_RETRIES,
                  WEIR_KINESIS_LIST_SHARDS_BACKOFF_BASE_MS, WEIR_KINESIS_LIST_SHARDS_BACKOFF_MAX_MS,
                  WEIR_KINESIS_LIST_SHARDS_BACKOFF_EXP);

  op.open = ksrc_open;
  op.poll = ksrc_poll;
  op.snapshot = ksrc_snapshot;
  op.restore = ksrc_restore;
  op.notify_checkpoint_complete = ksrc_notify;
  op.close = ksrc_close;
  op.redistribute_state = true;
  if ((rc = weir_job_add_source(job, name, &op, k, &node)) != 0) {
    ksrc_free(k);
    return rc;
  }
  /* Released with the job by ksrc_free, which zeroes the copied secrets first. */
  job->nodes[node].owned_data = k;
  job->nodes[node].owned_free = ksrc_free;
  if (id != NULL)
    *id = node;
  return 0;
}
