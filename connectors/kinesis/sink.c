/*
 * sink.c: the Kinesis sink operator: configuration, per-subtask setup, turning records into
 * buffered entries (serializer, partition key, limits), linger, barriers and metrics. The
 * buffer and the order rule are in sink_batch.c, the requests in flight in sink_send.c,
 * aggregation in sink_agg.c, rate control in sink_rate.c and dead letters in sink_dlq.c (the
 * module map is in sink_int.h).
 *
 * Guarantee: at-least-once. At a barrier (and at the end of input) the subtask sends
 * everything buffered and waits until every entry is acknowledged before the barrier goes on;
 * an error on the way fails the job, so a checkpoint never completes with records unsent.
 *
 * Threads: the shared `struct ksink` is read-only after weir_job_add_kinesis_sink; a
 * `struct ksub` belongs to one subtask thread (see sink_int.h).
 */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/job_int.h"
#include "../../runtime/log_int.h"
#include "../../runtime/task_int.h"
#include "connectors/kinesis/client_int.h"
#include "connectors/kinesis/sink_int.h"
#include "weir/kinesis.h"
#include "weir/record.h"

#define DEFAULT_BUFFERED_RECORDS 10000
#define DEFAULT_BUFFERED_BYTES (8u << 20)
#define DEFAULT_LINGER_MS 100
/* Random partition keys: 16 hex digits. */
#define RANDOM_PK_LEN 16
/* Arena slack above twice the largest record: keys and explicit hash keys. */
#define ARENA_SLACK 4096

int64_t weir__ksink_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool weir__ksink_cancelled(const struct ksub *s) {
  return atomic_load_explicit(&s->ctx->task->job->cancelled, memory_order_relaxed);
}

int weir__ksink_fail(struct ksub *s, int rc, const char *fmt, ...) {
  char msg[512];
  va_list ap;

  if (s->failed)
    return s->fail_rc;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  weir_ctx_set_error(s->ctx, "%s", msg);
  s->failed = true;
  s->fail_rc = rc;
  return rc;
}

static uint64_t xorshift(uint64_t *st) {
  uint64_t x = *st;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *st = x;
}

/*
 * Number of UTF-8 characters in p[0..n), or SIZE_MAX when the bytes are not well-formed UTF-8
 * (overlong forms, surrogates, above U+10FFFF, truncated sequences). Partition keys travel as
 * JSON strings: bytes that are not UTF-8 would reach the service as something else (kinesalite
 * stores U+FFFD for them; the API refuses the request), so such a key is refused here.
 */
static size_t utf8_chars(const uint8_t *p, size_t n) {
  size_t c = 0, i = 0;

  /* ASCII, eight bytes at a time: one character each. */
  for (uint64_t x; i + 8 <= n; i += 8, c += 8) {
    memcpy(&x, p + i, 8);
    if ((x & 0x8080808080808080ull) != 0)
      break;
  }
  for (; i < n; c++) {
    uint8_t b = p[i];
    size_t len;
    uint32_t cp;

    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xC2 && b <= 0xDF)
      len = 2, cp = b & 0x1Fu;
    else if (b >= 0xE0 && b <= 0xEF)
      len = 3, cp = b & 0x0Fu;
    else if (b >= 0xF0 && b <= 0xF4)
      len = 4, cp = b & 0x07u;
    else
      return SIZE_MAX;
    if (n - i < len)
      return SIZE_MAX;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80)
        return SIZE_MAX;
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return SIZE_MAX;
    i += len;
  }
  return c;
}

/* ---- streams -------------------------------------------------------------------------------- */

/* DescribeStreamSummary: the stream exists, and its per-record limit. */
static int describe(struct ksub *s, struct kstream *st) {
  struct weir_kinesis_stream_summary sum;
  int rc;

  if ((rc = weir__kinesis_describe_stream_summary(s->client, st->name, &sum)) != 0) {
    const struct weir_kinesis_error *err = weir__kinesis_last_error(s->client);

    snprintf(st->bad_msg, sizeof(st->bad_msg), "DescribeStreamSummary of stream %s failed: %s%s%s",
             st->name, err->code[0] ? err->code : weir_err_name(rc), err->message[0] ? ": " : "",
             err->message);
    st->bad_rc = rc;
    return rc;
  }
  /* MaxRecordSizeInKiB when the server reports it (1024..10240), else 1 MiB; never more than a
   * request, nor more than half the arena (so two always fit). */
  st->record_limit = WEIR_KINESIS_SINK_DEFAULT_RECORD_BYTES;
  if (sum.max_record_size_kib > 0 &&
      (uint64_t)sum.max_record_size_kib * 1024 <= WEIR_KINESIS_RECORD_MAX)
    st->record_limit = (size_t)sum.max_record_size_kib * 1024;
  if (st->record_limit > s->cfg->max_request_bytes)
    st->record_limit = s->cfg->max_request_bytes;
  if (s->arena_cap > 0 && st->record_limit > (s->arena_cap - ARENA_SLACK) / 2)
    st->record_limit = (s->arena_cap - ARENA_SLACK) / 2;
  if (st->record_limit > s->max_record_limit)
    s->max_record_limit = st->record_limit;
  return 0;
}

int weir__ksink_stream(struct ksub *s, const char *name, int *index) {
  struct kstream *st;
  size_t len;

  for (size_t i = 0; i < s->n_streams; i++)
    if (strcmp(s->streams[i].name, name) == 0) {
      *index = (int)i;
      return 0;
    }
  len = strlen(name);
  if (len == 0 || len > WEIR_KINESIS_STREAM_NAME_MAX)
    return weir__ksink_fail(s, WEIR_EINVAL,
                            "kinesis sink: the serializer named a stream of %zu characters "
                            "(1..128 allowed)",
                            len);
  if (s->n_streams == WEIR_KINESIS_SINK_MAX_STREAMS)
    return weir__ksink_fail(s, WEIR_ETOOBIG,
                            "kinesis sink: more than %d target streams (stream %s)",
                            WEIR_KINESIS_SINK_MAX_STREAMS, name);
  st = &s->streams[s->n_streams];
  memset(st, 0, sizeof(*st));
  memcpy(st->name, name, len + 1);
  *index = (int)s->n_streams++;
  if (describe(s, st) != 0 && s->cfg->fail_on_error)
    return weir__ksink_fail(s, st->bad_rc, "kinesis sink: %s", st->bad_msg);
  return 0;
}

/* ---- operator callbacks --------------------------------------------------------------------- */

static void metric(struct ksub *s, weir_metric_kind kind, const char *name, const char *help,
                   weir_metric **out) {
  if (weir_ctx_metric(s->ctx, kind, name, help, NULL, out) != 0)
    *out = NULL; /* metrics are best effort: NULL is a no-op */
}

static void metrics_open(struct ksub *s) {
  struct ksink_metrics *m = &s->m;
  const char *other[] = {"code", "other", NULL};
  const weir_metric_kind C = WEIR_METRIC_COUNTER, G = WEIR_METRIC_GAUGE;

  metric(s, C, "weir_kinesis_sink_records_total", "user records acknowledged", &m->records);
  metric(s, C, "weir_kinesis_sink_bytes_total", "user record data bytes acknowledged", &m->bytes);
  metric(s, C, "weir_kinesis_sink_put_records_calls_total", "PutRecords calls made", &m->calls);
  metric(s, C, "weir_kinesis_sink_entries_sent_total",
         "PutRecords entries sent (divide by calls: entries per request)", &m->entries_sent);
  metric(s, C, "weir_kinesis_sink_retries_total", "user records scheduled for another send",
         &m->retries);
  metric(s, C, "weir_kinesis_sink_throttled_total", "entries throttled by the service",
         &m->throttled);
  metric(s, C, "weir_kinesis_sink_dead_letters_total",
         "records given up on (fail_on_error off): dead-lettered or dropped", &m->dead_letters);
  metric(s, G, "weir_kinesis_sink_buffered_records", "records buffered, not yet acknowledged",
         &m->buffered_records);
  metric(s, G, "weir_kinesis_sink_buffered_bytes", "bytes buffered, not yet acknowledged",
         &m->buffered_bytes);
  metric(s, G, "weir_kinesis_sink_requests_in_flight", "PutRecords calls in flight", &m->in_flight);
  metric(s, G, "weir_kinesis_sink_rate_window", "AIMD window: entries allowed in flight",
         &m->window);
  metric(s, C, "weir_kinesis_sink_barrier_flushes_total", "flushes at barriers and end of input",
         &m->flushes);
  metric(s, C, "weir_kinesis_sink_barrier_flush_ms_total", "time spent flushing at barriers",
         &m->flush_ms);
  metric(s, G, "weir_kinesis_sink_barrier_flush_last_ms", "the last barrier flush's time",
         &m->flush_last_ms);
  metric(s, C, "weir_kinesis_sink_aggregates_total", "KPL aggregates sent", &m->aggregates);
  metric(s, C, "weir_kinesis_sink_shard_map_loads_total", "shard maps loaded (aggregation)",
         &m->shard_refreshes);
  if (weir_ctx_metric(s->ctx, C, "weir_kinesis_sink_entries_failed_total",
                      "PutRecords entries the service failed, by error code", other,
                      &m->failed_other) != 0)
    m->failed_other = NULL;
}

static int ks_open(weir_ctx *ctx, void *data, void **inst) {
  const struct ksink *k = data;
  const weir_kinesis_sink_config *cfg = &k->cfg;
  struct weir_kinesis_retry quick = {3, 100, 1000, 2.0};
  struct ksub *s;
  size_t min_arena;
  int rc, idx;

  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  *inst = s;
  s->sink = k;
  s->cfg = cfg;
  s->ctx = ctx;
  s->dlq_fd = -1;
  s->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)weir_ctx_subtask(ctx) << 32) ^
           (uint64_t)weir__ksink_now_ms();
  if (s->rng == 0)
    s->rng = 1;
  metrics_open(s);
  if ((rc = weir_kinesis_client_create(&s->client, &cfg->client)) != 0)
    return weir__ksink_fail(s, rc, "kinesis sink: cannot make a client for stream %s: %s",
                            cfg->stream, weir_strerror(rc));
  /* Fail fast (a few short retries) on a missing stream or an unreachable endpoint. */
  weir__kinesis_set_retry(s->client, WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY, &quick);
  weir__kinesis_set_retry(s->client, WEIR_KINESIS_OP_LIST_SHARDS, &quick);
  s->arena_cap = cfg->max_buffered_bytes;
  min_arena = 2 * WEIR_KINESIS_SINK_DEFAULT_RECORD_BYTES + ARENA_SLACK;
  if (s->arena_cap < min_arena)
    s->arena_cap = min_arena;
  if ((rc = weir__ksink_stream(s, cfg->stream, &idx)) != 0)
    return rc;
  if (s->streams[0].bad_rc != 0) /* the default stream must exist, whatever fail_on_error */
    return weir__ksink_fail(s, s->streams[0].bad_rc, "kinesis sink: %s", s->streams[0].bad_msg);
  if ((rc = weir__ksink_buf_init(s)) != 0 || (rc = weir__ksink_agg_init(s)) != 0 ||
      (rc = weir__ksink_dlq_open(s)) != 0)
    return rc;
  if ((rc = weir__ksink_slots_start(s)) != 0)
    return weir__ksink_fail(s, rc,
                            "kinesis sink: cannot set up the requests in flight of stream %s: %s",
                            cfg->stream, weir_strerror(rc));
  weir__ksink_rate_init(s);
  return 0;
}

/* Applies the default partition key (pk_mode) when the serializer gave none. */
static weir_buf default_key(struct ksub *s, const weir_record *r, char rnd[RANDOM_PK_LEN + 1]) {
  if (s->cfg->pk_mode == WEIR_KINESIS_PK_FIXED)
    return weir_buf_str(s->cfg->partition_key);
  if (s->cfg->pk_mode == WEIR_KINESIS_PK_RECORD_KEY && r->key.len > 0)
    return r->key;
  {
    /* 16 lowercase hex digits, as "%016" PRIx64 would write (snprintf costs more per record
     * than the rest of buffering it). */
    static const char hex[] = "0123456789abcdef";
    uint64_t v = xorshift(&s->rng);

    for (int i = RANDOM_PK_LEN - 1; i >= 0; i--, v >>= 4)
      rnd[i] = hex[v & 15];
    rnd[RANDOM_PK_LEN] = '\0';
  }
  return (weir_buf){(const uint8_t *)rnd, RANDOM_PK_LEN};
}

/* Checks a record against its stream; 0 = fine, 1 = given up on (counted), < 0 = error. */
static int check(struct ksub *s, int stream, weir_buf data, weir_buf key, weir_buf ehk) {
  const struct kstream *st = &s->streams[stream];
  const char *kind = NULL;
  struct weir_kpl_u128 v;
  char msg[320];
  int rc;

  if (st->bad_rc != 0) {
    /* bad_msg may be longer than msg: keep its head (a bounded copy, not a format). */
    size_t n = strnlen(st->bad_msg, sizeof(msg) - 1);

    kind = "stream_unavailable";
    memcpy(msg, st->bad_msg, n);
    msg[n] = '\0';
  } else if (data.len + key.len > st->record_limit) {
    kind = "oversized";
    snprintf(msg, sizeof(msg),
             "record of %zu bytes (data %zu + partition key %zu) exceeds the per-record limit of "
             "%zu bytes of stream %s",
             data.len + key.len, data.len, key.len, st->record_limit, st->name);
  } else if (key.len == 0 || key.len > WEIR_KINESIS_PARTITION_KEY_BYTES_MAX ||
             utf8_chars(key.ptr, key.len) > WEIR_KINESIS_PARTITION_KEY_MAX) {
    kind = "invalid_partition_key";
    snprintf(msg, sizeof(msg),
             "partition key of %zu bytes is empty, longer than 256 characters or not UTF-8 "
             "(stream %s)",
             key.len, st->name);
  } else if (ehk.len > 0 && (ehk.len > WEIR_KPL_HASH_KEY_DEC_MAX ||
                             weir__kpl_u128_parse((const char *)ehk.ptr, ehk.len, &v) != 0)) {
    kind = "invalid_explicit_hash_key";
    snprintf(msg, sizeof(msg),
             "explicit hash key '%.*s' is not a decimal number in 0..2^128-1 (stream %s)",
             (int)(ehk.len < 48 ? ehk.len : 48), (const char *)ehk.ptr, st->name);
  }
  if (kind == NULL)
    return 0;
  if ((rc = weir__ksink_refuse(s, stream, key, ehk, data, kind, msg)) != 0)
    return rc;
  return 1;
}

static int ks_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct ksub *s = inst;
  const weir_kinesis_sink_config *cfg = s->cfg;
  int rc;

  s->ctx = ctx;
  if (s->failed)
    return s->fail_rc;
  for (size_t i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    weir_kinesis_sink_out out = {r->value, NULL, {NULL, 0}, {NULL, 0}};
    struct weir_kpl_u128 hk;
    char rnd[RANDOM_PK_LEN + 1];
    int stream = 0;
    size_t len;

    if (cfg->serializer != NULL) {
      if ((rc = cfg->serializer(ctx, cfg->serializer_data, r, &out)) == 1)
        continue;
      if (rc != 0) {
        s->failed = true;
        s->fail_rc = rc < 0 ? rc : WEIR_EINVAL;
        return s->fail_rc;
      }
      if (out.stream != NULL && (rc = weir__ksink_stream(s, out.stream, &stream)) != 0)
        return rc;
    }
    if (out.partition_key.len == 0)
      out.partition_key = default_key(s, r, rnd);
    if ((rc = check(s, stream, out.data, out.partition_key, out.explicit_hash_key)) < 0)
      return rc;
    if (rc == 1)
      continue;
    if (cfg->aggregation &&
        (rc = weir__ksink_hash_key(s, out.partition_key, out.explicit_hash_key, &hk)) != 0)
      return weir__ksink_fail(s, rc, "kinesis sink: hashing a partition key failed");
    len = out.data.len + out.partition_key.len + out.explicit_hash_key.len;
    /* Full: wait until acknowledgements make room (backpressure: upstream waits for this call). */
    if (!weir__ksink_buf_fits(s, len) && (rc = weir__ksink_pump(s, KSINK_SPACE, len, true)) != 0)
      return rc;
    weir__ksink_buf_push(s, stream, out.data, out.partition_key, out.explicit_hash_key,
                         cfg->aggregation ? &hk : NULL);
  }
  return weir__ksink_pump(s, KSINK_POLL, 0, false);
}

static int ks_tick(weir_ctx *ctx, void *inst, int64_t now_ms) {
  struct ksub *s = inst;
  int64_t linger = s->cfg->linger_ms;
  bool partial;

  (void)now_ms;
  s->ctx = ctx;
  if (s->failed)
    return s->fail_rc;
  if (s->pending == 0)
    return 0;
  partial = linger >= 0 && s->unsent > 0 && weir__ksink_now_ms() - s->oldest_ms >= linger;
  return weir__ksink_pump(s, KSINK_POLL, 0, partial);
}

/* Sends everything and waits for every acknowledgement (barriers, end of input). */
static int flush_all(struct ksub *s) {
  int64_t t0 = weir__ksink_now_ms(), ms;
  int rc;

  if ((rc = weir__ksink_pump(s, KSINK_DRAIN, 0, true)) != 0 || (rc = weir__ksink_dlq_sync(s)) != 0)
    return rc;
  ms = weir__ksink_now_ms() - t0;
  weir_metric_add(s->m.flushes, 1);
  weir_metric_add(s->m.flush_ms, ms);
  weir_metric_set(s->m.flush_last_ms, ms);
  return 0;
}

static int ks_finish(weir_ctx *ctx, void *inst) {
  struct ksub *s = inst;

  s->ctx = ctx;
  return flush_all(s);
}

/* At a checkpoint barrier: everything before it must be in the stream. An error here fails
 * the job, so the checkpoint is never completed with records unsent. */
static int ks_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  struct ksub *s = inst;
  int rc;

  (void)out;
  s->ctx = ctx;
  if ((rc = flush_all(s)) != 0 && rc != WEIR_ECANCELED)
    WEIR_LOG_ERR("kinesis sink %s[%d]: checkpoint %" PRIu64 " declined: %zu records to stream "
                 "%s not acknowledged",
                 weir_ctx_name(ctx), weir_ctx_subtask(ctx), ckpt_id, s->pending, s->cfg->stream);
  return rc;
}

static void ks_close(weir_ctx *ctx, void *inst) {
  struct ksub *s = inst;

  if (s == NULL)
    return;
  s->ctx = ctx;
  weir__ksink_slots_stop(s);
  if (s->records_out > 0 || s->dead > 0 || s->entries_failed > 0)
    WEIR_LOG_DEBUG("kinesis sink %s[%d]: stream %s: %" PRIu64 " records, %" PRIu64
                   " PutRecords, %" PRIu64 " failed entries, %" PRIu64 " dead letters",
                   weir_ctx_name(ctx), weir_ctx_subtask(ctx), s->cfg->stream, s->records_out,
                   s->put_calls, s->entries_failed, s->dead);
  weir_kinesis_client_destroy(s->client);
  weir__ksink_dlq_close(s);
  weir__ksink_agg_free(s);
  weir__ksink_buf_free(s);
  free(s);
}

/* ---- building --------------------------------------------------------------------------- */

void weir_kinesis_sink_config_init(weir_kinesis_sink_config *cfg) {
  if (cfg == NULL)
    return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->fail_on_error = true;
}

static int validate(const weir_kinesis_sink_config *c) {
  size_t n;

  if (c->stream == NULL || (n = strlen(c->stream)) == 0 || n > WEIR_KINESIS_STREAM_NAME_MAX)
    return WEIR_EINVAL;
  if (c->pk_mode != WEIR_KINESIS_PK_RECORD_KEY && c->pk_mode != WEIR_KINESIS_PK_FIXED &&
      c->pk_mode != WEIR_KINESIS_PK_RANDOM)
    return WEIR_EINVAL;
  if (c->pk_mode == WEIR_KINESIS_PK_FIXED &&
      (c->partition_key == NULL || (n = strlen(c->partition_key)) == 0 ||
       n > WEIR_KINESIS_PARTITION_KEY_BYTES_MAX ||
       utf8_chars((const uint8_t *)c->partition_key, n) > WEIR_KINESIS_PARTITION_KEY_MAX))
    return WEIR_EINVAL;
  if (c->max_in_flight > WEIR_KINESIS_SINK_MAX_IN_FLIGHT ||
      (c->aggregation_max_bytes != 0 && (c->aggregation_max_bytes < WEIR_KPL_AGG_MIN_SIZE ||
                                         c->aggregation_max_bytes > WEIR_KPL_RECORD_MAX_LIMIT)) ||
      (c->rate_mode != WEIR_KINESIS_RATE_AIMD && c->rate_mode != WEIR_KINESIS_RATE_NONE) ||
      (c->dead_letter_path != NULL && c->dead_letter_path[0] == '\0'))
    return WEIR_EINVAL;
  if (c->max_request_records > WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS ||
      c->max_request_bytes > WEIR_KINESIS_SINK_MAX_REQUEST_BYTES ||
      (c->max_request_bytes != 0 && c->max_request_bytes < (64u << 10)) || c->linger_ms < -1 ||
      c->linger_ms > 3600000 || c->max_buffered_records > ((size_t)1 << 30) ||
      c->max_buffered_bytes > ((size_t)1 << 34))
    return WEIR_EINVAL;
  return 0;
}

/* Frees a sink's node data: one block holding the config and its strings, secrets included. */
static void ksink_free(void *data) {
  struct ksink *k = data;

  if (k == NULL)
    return;
  OPENSSL_cleanse(k, k->alloc_size);
  free(k);
}

int weir_job_add_kinesis_sink(weir_job *job, int upstream, const char *name,
                              const weir_kinesis_sink_config *cfg, int *id) {
  weir_operator op = {0};
  struct ksink *k;
  size_t total;
  char *pos;
  int node, rc;

  if (job == NULL || cfg == NULL || (rc = validate(cfg)) != 0)
    return WEIR_EINVAL;
  /* One block: the job releases owned_data with free(). */
  total = sizeof(*k) + weir__kinesis_str_size(cfg->stream) +
          weir__kinesis_str_size(cfg->partition_key) +
          weir__kinesis_str_size(cfg->dead_letter_path) +
          weir__kinesis_config_strings_size(&cfg->client);
  if ((k = calloc(1, total)) == NULL)
    return WEIR_ENOMEM;
  pos = (char *)(k + 1);
  k->cfg = *cfg;
  k->cfg.stream = weir__kinesis_str_put(&pos, cfg->stream);
  k->cfg.partition_key = weir__kinesis_str_put(&pos, cfg->partition_key);
  k->cfg.dead_letter_path = weir__kinesis_str_put(&pos, cfg->dead_letter_path);
  weir__kinesis_config_put_strings(&k->cfg.client, &cfg->client, &pos);
  if (k->cfg.max_buffered_records == 0)
    k->cfg.max_buffered_records = DEFAULT_BUFFERED_RECORDS;
  if (k->cfg.max_buffered_bytes == 0)
    k->cfg.max_buffered_bytes = DEFAULT_BUFFERED_BYTES;
  if (k->cfg.max_request_records == 0)
    k->cfg.max_request_records = WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS;
  if (k->cfg.max_request_bytes == 0)
    k->cfg.max_request_bytes = WEIR_KINESIS_SINK_DEFAULT_REQUEST_BYTES;
  if (k->cfg.max_in_flight == 0)
    k->cfg.max_in_flight = WEIR_KINESIS_SINK_DEFAULT_IN_FLIGHT;
  if (k->cfg.linger_ms == 0)
    k->cfg.linger_ms = DEFAULT_LINGER_MS;

  op.open = ks_open;
  op.process = ks_process;
  op.on_tick = ks_tick;
  op.finish = ks_finish;
  op.snapshot = ks_snapshot;
  op.close = ks_close;
  if ((rc = weir_job_add_sink(job, upstream, name, &op, k, &node)) != 0) {
    free(k);
    return rc;
  }
  /* Released with the job by ksink_free, which zeroes the copied secrets first. */
  k->alloc_size = total;
  job->nodes[node].owned_data = k;
  job->nodes[node].owned_free = ksink_free;
  job->nodes[node].barrier_hook = true;
  if (id != NULL)
    *id = node;
  return 0;
}
