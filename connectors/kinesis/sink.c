/*
 * sink.c: the Kinesis sink: buffers records per subtask and writes them with PutRecords, one
 * request in flight per subtask, resending only the entries that failed, keeping per-key order,
 * and draining completely at every checkpoint barrier (at-least-once).
 *
 * Order rule: a request holds at most one entry per partition key, and an entry is only taken
 * when no earlier entry with its key is still pending. Since there is one request in flight and
 * failed entries stay pending in their place, a record is never sent while an earlier record
 * with the same key is unacknowledged or awaiting retry.
 *
 * Memory: each subtask owns a fixed entry array (max_buffered_records) and a fixed byte arena
 * (max_buffered_bytes), allocated in open. A flush always drains the whole buffer, after which
 * both are reset, so nothing is allocated per record and nothing grows.
 *
 * Threads: the shared `struct ksink` is read-only after weir_job_add_kinesis_sink; a
 * `struct ksub` belongs to one subtask thread.
 */
#include <inttypes.h>
#include <openssl/crypto.h>
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

#define DEFAULT_BUFFERED_RECORDS 10000
#define DEFAULT_BUFFERED_BYTES (8u << 20)
#define DEFAULT_LINGER_MS 100
/* Random partition keys: 16 hex digits. */
#define RANDOM_PK_LEN 16
/* Backoff between PutRecords rounds that left entries pending (full jitter, unbounded count). */
#define RETRY_BASE_MS 50
#define RETRY_MAX_MS 2000
/* The key set of one request: a power of two at least twice the request's entry bound. */
#define KEYSET_SLOTS 1024

/* Test hook (sink_int.h): written before jobs start, read by subtask threads. */
static weir__ksink_fault_fn fault_fn;
static void *fault_data;

void weir__kinesis_sink_set_fault(weir__ksink_fault_fn fn, void *data) {
  fault_fn = fn;
  fault_data = data;
}

/* The node's data: the copied configuration, shared read-only by the subtasks. */
struct ksink {
  weir_kinesis_sink_config cfg; /* strings point at the copies below */
  const char *stream;           /* copied, in the same allocation */
  const char *partition_key;    /* copied, in the same allocation; NULL unless FIXED */
  size_t alloc_size;            /* bytes of this allocation, zeroed before it is freed */
};

struct kentry {
  size_t data_off, data_len; /* in the arena */
  size_t key_off, key_len;   /* in the arena */
  bool done;                 /* acknowledged */
  bool in_req;               /* in the request being built or in flight */
};

/* One subtask. */
struct ksub {
  const struct ksink *sink;
  weir_kinesis_client *client;
  struct kentry *ents; /* cap_ents, FIFO in arrival order */
  size_t n_ents, cap_ents;
  size_t first_pending; /* entries before it are all done */
  size_t pending;       /* entries not yet acknowledged */
  uint8_t *arena;
  size_t arena_len, arena_cap;
  size_t record_limit; /* per-record bytes (data + key) the stream accepts */
  int64_t oldest_ms;   /* monotonic time the oldest buffered record arrived; 0 = empty */
  uint64_t rng;
  bool failed; /* a fatal error happened: every later call fails */
  /* Request scratch: entries and results for up to 500 entries, index into ents. */
  struct weir_kinesis_put_entry req[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS];
  struct weir_kinesis_put_result res[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS];
  size_t req_idx[WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS];
  int32_t keyset[KEYSET_SLOTS]; /* entry index + 1, 0 = empty */
  /* Fault injection only (allocated in open when the hook is set): the entries sent. */
  struct weir_kinesis_put_entry *fi_req;
  struct weir_kinesis_put_result *fi_res;
  size_t *fi_map;
  /* Counters (read by tests through the log; metrics come later). */
  uint64_t records_out, bytes_out, put_calls, entries_failed, throttled, retries, dropped;
  bool logged_drop;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool cancelled(const weir_ctx *ctx) {
  return atomic_load_explicit(&ctx->task->job->cancelled, memory_order_relaxed);
}

/* Sleeps ms in short slices; false when the job was cancelled meanwhile. */
static bool nap(const weir_ctx *ctx, int64_t ms) {
  while (ms > 0 && !cancelled(ctx)) {
    int64_t step = ms < 50 ? ms : 50;
    struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
  return !cancelled(ctx);
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Number of UTF-8 characters (non-continuation bytes). */
static size_t utf8_chars(const uint8_t *p, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += (p[i] & 0xC0) != 0x80;
  return c;
}

/* ---- the request key set ---------------------------------------------------------------- */

/* True when a key equal to entry e's is in the set; else inserts e and returns false. */
static bool keyset_test_insert(struct ksub *s, size_t e) {
  const struct kentry *x = &s->ents[e];
  const uint8_t *k = s->arena + x->key_off;
  size_t i = (size_t)fnv1a(k, x->key_len) & (KEYSET_SLOTS - 1);

  for (;; i = (i + 1) & (KEYSET_SLOTS - 1)) {
    int32_t v = s->keyset[i];
    if (v == 0) {
      s->keyset[i] = (int32_t)(e + 1);
      return false;
    }
    const struct kentry *y = &s->ents[v - 1];
    if (y->key_len == x->key_len && memcmp(s->arena + y->key_off, k, x->key_len) == 0)
      return true;
  }
}

/* ---- flushing --------------------------------------------------------------------------- */

/* Builds the next request from the pending entries in order: at most one entry per key, an
 * entry only when no earlier pending entry has its key, within the request bounds. */
static size_t build_request(struct ksub *s) {
  const weir_kinesis_sink_config *cfg = &s->sink->cfg;
  size_t n = 0, bytes = 0, used = 0;

  memset(s->keyset, 0, sizeof(s->keyset));
  for (size_t e = s->first_pending; e < s->n_ents && n < cfg->max_request_records; e++) {
    struct kentry *x = &s->ents[e];
    size_t sz = x->data_len + x->key_len;

    if (x->done)
      continue;
    /* Every pending key seen blocks later entries with that key, taken or not; the set holds
     * at most KEYSET_SLOTS / 2 keys so probing stays short and always ends. */
    if (used == KEYSET_SLOTS / 2)
      break;
    if (keyset_test_insert(s, e))
      continue;
    used++;
    if (bytes + sz > cfg->max_request_bytes) {
      if (n == 0) /* cannot happen: records over the per-record limit never enter */
        WEIR_ASSERT(0 && "entry larger than a request");
      continue; /* its key is now blocked for this request */
    }
    bytes += sz;
    x->in_req = true;
    s->req[n].data = (weir_buf){s->arena + x->data_off, x->data_len};
    s->req[n].partition_key = (weir_buf){s->arena + x->key_off, x->key_len};
    s->req[n].explicit_hash_key = NULL;
    s->req_idx[n] = e;
    n++;
  }
  return n;
}

/* PutRecords of the n built entries into s->res, through the fault hook when it is set. */
static int put(struct ksub *s, const char *stream, size_t n, size_t *failed) {
  size_t m = 0, sent_failed = 0;
  int rc;

  if (s->fi_req == NULL)
    return weir__kinesis_put_records(s->client, stream, s->req, n, s->res, failed);
  *failed = 0;
  for (size_t i = 0; i < n; i++) {
    if (fault_fn(fault_data, s->req[i].partition_key, s->req[i].data)) {
      memset(&s->res[i], 0, sizeof(s->res[i]));
      strcpy(s->res[i].error_code, "ProvisionedThroughputExceededException");
      strcpy(s->res[i].error_message, "injected");
      (*failed)++;
    } else {
      s->fi_req[m] = s->req[i];
      s->fi_map[m++] = i;
    }
  }
  if (m == 0)
    return 0;
  if ((rc = weir__kinesis_put_records(s->client, stream, s->fi_req, m, s->fi_res, &sent_failed)) !=
      0)
    return rc;
  for (size_t j = 0; j < m; j++)
    s->res[s->fi_map[j]] = s->fi_res[j];
  *failed += sent_failed;
  return 0;
}

static int fatal(struct ksub *s, int rc) {
  s->failed = true;
  return rc;
}

/*
 * Sends everything buffered and waits until every entry is acknowledged. Throttling and
 * transient failures (of the call or of single entries) are retried without limit with
 * backoff; a fatal call error fails the subtask. On return 0 the buffer is empty.
 */
static int drain(weir_ctx *ctx, struct ksub *s) {
  const char *stream = s->sink->stream;
  int stalled = 0; /* consecutive rounds in which nothing was acknowledged */

  if (s->failed)
    return WEIR_EIO;
  while (s->pending > 0) {
    size_t n = build_request(s), failed = 0;
    int rc;

    WEIR_ASSERT(n > 0);
    if (cancelled(ctx))
      return fatal(s, WEIR_ECANCELED);
    s->put_calls++;
    rc = put(s, stream, n, &failed);
    if (rc != 0) {
      const struct weir_kinesis_error *err = weir__kinesis_last_error(s->client);

      for (size_t i = 0; i < n; i++)
        s->ents[s->req_idx[i]].in_req = false;
      if (err->cls == WEIR_KINESIS_ERR_FATAL) {
        weir_ctx_set_error(ctx, "kinesis sink: PutRecords to stream %s failed: %s%s%s", stream,
                           err->code[0] ? err->code : weir_err_name(rc),
                           err->message[0] ? ": " : "", err->message);
        return fatal(s, rc);
      }
      if (err->cls == WEIR_KINESIS_ERR_THROTTLING)
        s->throttled++;
      if (stalled == 0)
        WEIR_LOG_WARN("kinesis sink %s[%d]: PutRecords to stream %s: %s (%s); retrying",
                      weir_ctx_name(ctx), weir_ctx_subtask(ctx), stream,
                      err->code[0] ? err->code : weir_err_name(rc), err->message);
    } else {
      for (size_t i = 0; i < n; i++) {
        struct kentry *x = &s->ents[s->req_idx[i]];

        x->in_req = false;
        if (s->res[i].ok) {
          x->done = true;
          s->pending--;
          s->records_out++;
          s->bytes_out += x->data_len;
        } else {
          s->entries_failed++;
          if (strcmp(s->res[i].error_code, "ProvisionedThroughputExceededException") == 0)
            s->throttled++;
        }
      }
      while (s->first_pending < s->n_ents && s->ents[s->first_pending].done)
        s->first_pending++;
      if (failed == 0) {
        stalled = 0;
        continue;
      }
      if (failed < n) /* progress: keep the backoff short */
        stalled = 0;
    }
    /* Failed entries wait before their retry: full jitter, growing while no round makes
     * progress, capped. */
    s->retries++;
    {
      struct weir_kinesis_retry p = {0, RETRY_BASE_MS, RETRY_MAX_MS, 2.0};
      int64_t ms = weir__kinesis_backoff_ms(&p, stalled < 30 ? stalled : 30, &s->rng);
      stalled++;
      if (!nap(ctx, ms))
        return fatal(s, WEIR_ECANCELED);
    }
  }
  s->n_ents = s->first_pending = 0;
  s->arena_len = 0;
  s->oldest_ms = 0;
  return 0;
}

/* ---- operator callbacks ----------------------------------------------------------------- */

static int ks_open(weir_ctx *ctx, void *data, void **inst) {
  const struct ksink *k = data;
  struct weir_kinesis_retry describe = {3, 100, 1000, 2.0};
  struct weir_kinesis_stream_summary sum;
  struct ksub *s;
  size_t min_arena;
  int rc;

  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  *inst = s;
  s->sink = k;
  s->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)weir_ctx_subtask(ctx) << 32) ^ (uint64_t)mono_ms();
  if (s->rng == 0)
    s->rng = 1;
  if ((rc = weir_kinesis_client_create(&s->client, &k->cfg.client)) != 0) {
    weir_ctx_set_error(ctx, "kinesis sink: cannot make a client for stream %s: %s", k->stream,
                       weir_strerror(rc));
    return rc;
  }
  /* Fail fast (a few short retries) on a missing stream or an unreachable endpoint, and learn
   * the stream's per-record limit. */
  weir__kinesis_set_retry(s->client, WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY, &describe);
  if ((rc = weir__kinesis_describe_stream_summary(s->client, k->stream, &sum)) != 0) {
    const struct weir_kinesis_error *err = weir__kinesis_last_error(s->client);
    weir_ctx_set_error(ctx, "kinesis sink: DescribeStreamSummary of stream %s failed: %s%s%s",
                       k->stream, err->code[0] ? err->code : weir_err_name(rc),
                       err->message[0] ? ": " : "", err->message);
    return rc;
  }
  s->record_limit = WEIR_KINESIS_SINK_DEFAULT_RECORD_BYTES;
  if (sum.max_record_size_kib > 0 && (uint64_t)sum.max_record_size_kib * 1024 <= (10u << 20))
    s->record_limit = (size_t)sum.max_record_size_kib * 1024;
  if (s->record_limit > k->cfg.max_request_bytes)
    s->record_limit = k->cfg.max_request_bytes;
  s->cap_ents = k->cfg.max_buffered_records;
  s->arena_cap = k->cfg.max_buffered_bytes;
  min_arena = s->record_limit + RANDOM_PK_LEN + 1024;
  if (s->arena_cap < min_arena)
    s->arena_cap = min_arena;
  if ((s->ents = malloc(s->cap_ents * sizeof(*s->ents))) == NULL ||
      (s->arena = malloc(s->arena_cap)) == NULL)
    return WEIR_ENOMEM;
  if (fault_fn != NULL &&
      ((s->fi_req = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*s->fi_req))) == NULL ||
       (s->fi_res = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*s->fi_res))) == NULL ||
       (s->fi_map = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*s->fi_map))) == NULL))
    return WEIR_ENOMEM;
  return 0;
}

/* Rejects (or drops) a record the stream would refuse. 1 = drop it, 0 = fine, < 0 = error. */
static int check_record(weir_ctx *ctx, struct ksub *s, size_t data_len, const uint8_t *key,
                        size_t key_len) {
  const char *why = NULL;
  char msg[256];

  if (data_len + key_len > s->record_limit) {
    snprintf(msg, sizeof(msg),
             "record of %zu bytes (data %zu + partition key %zu) exceeds the per-record limit of "
             "%zu bytes of stream %s",
             data_len + key_len, data_len, key_len, s->record_limit, s->sink->stream);
    why = msg;
  } else if (key_len > WEIR_KINESIS_PARTITION_KEY_BYTES_MAX ||
             utf8_chars(key, key_len) > WEIR_KINESIS_PARTITION_KEY_MAX) {
    snprintf(msg, sizeof(msg),
             "partition key of %zu bytes is longer than 256 characters (stream %s)", key_len,
             s->sink->stream);
    why = msg;
  }
  if (why == NULL)
    return 0;
  if (s->sink->cfg.fail_on_error) {
    weir_ctx_set_error(ctx, "kinesis sink: %s", why);
    s->failed = true;
    return WEIR_ETOOBIG;
  }
  s->dropped++;
  if (!s->logged_drop) {
    WEIR_LOG_ERR("kinesis sink %s[%d]: dropping: %s (logged once; fail_on_error is off)",
                 weir_ctx_name(ctx), weir_ctx_subtask(ctx), why);
    s->logged_drop = true;
  }
  return 1;
}

static int ks_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct ksub *s = inst;
  const weir_kinesis_sink_config *cfg = &s->sink->cfg;
  int rc;

  if (s->failed)
    return WEIR_EIO;
  for (size_t i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    const uint8_t *key;
    size_t key_len;
    char rnd[RANDOM_PK_LEN + 1];
    struct kentry *x;

    if (cfg->pk_mode == WEIR_KINESIS_PK_FIXED) {
      key = (const uint8_t *)s->sink->partition_key;
      key_len = strlen(s->sink->partition_key);
    } else if (cfg->pk_mode == WEIR_KINESIS_PK_RECORD_KEY && r->key.len > 0) {
      key = r->key.ptr;
      key_len = r->key.len;
    } else {
      snprintf(rnd, sizeof(rnd), "%016" PRIx64, xorshift(&s->rng));
      key = (const uint8_t *)rnd;
      key_len = RANDOM_PK_LEN;
    }
    if ((rc = check_record(ctx, s, r->value.len, key, key_len)) < 0)
      return rc;
    if (rc == 1)
      continue;
    /* Full: send everything first (backpressure: upstream waits for this call). */
    if (s->n_ents == s->cap_ents || s->arena_cap - s->arena_len < r->value.len + key_len)
      if ((rc = drain(ctx, s)) != 0)
        return rc;
    x = &s->ents[s->n_ents++];
    x->done = x->in_req = false;
    x->data_off = s->arena_len;
    x->data_len = r->value.len;
    if (r->value.len > 0)
      memcpy(s->arena + s->arena_len, r->value.ptr, r->value.len);
    s->arena_len += r->value.len;
    x->key_off = s->arena_len;
    x->key_len = key_len;
    memcpy(s->arena + s->arena_len, key, key_len);
    s->arena_len += key_len;
    s->pending++;
    if (s->oldest_ms == 0)
      s->oldest_ms = mono_ms();
  }
  return 0;
}

static int ks_tick(weir_ctx *ctx, void *inst, int64_t now_ms) {
  struct ksub *s = inst;
  int64_t linger = s->sink->cfg.linger_ms;

  (void)now_ms;
  if (s->failed)
    return WEIR_EIO;
  if (linger < 0 || s->pending == 0 || mono_ms() - s->oldest_ms < linger)
    return 0;
  return drain(ctx, s);
}

static int ks_finish(weir_ctx *ctx, void *inst) {
  return drain(ctx, inst);
}

/* At a checkpoint barrier: everything before it must be in the stream. An error here fails
 * the job, so the checkpoint is never completed with records unsent. */
static int ks_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  struct ksub *s = inst;
  int rc;

  (void)out;
  if ((rc = drain(ctx, s)) != 0 && rc != WEIR_ECANCELED)
    WEIR_LOG_ERR("kinesis sink %s[%d]: checkpoint %" PRIu64 " declined: %zu records to stream "
                 "%s not acknowledged",
                 weir_ctx_name(ctx), weir_ctx_subtask(ctx), ckpt_id, s->pending, s->sink->stream);
  return rc;
}

static void ks_close(weir_ctx *ctx, void *inst) {
  struct ksub *s = inst;

  if (s == NULL)
    return;
  if (s->records_out > 0 || s->dropped > 0 || s->entries_failed > 0)
    WEIR_LOG_DEBUG("kinesis sink %s[%d]: stream %s: %" PRIu64 " records, %" PRIu64
                   " bytes, %" PRIu64 " PutRecords, %" PRIu64 " failed entries (%" PRIu64
                   " throttled), %" PRIu64 " retry rounds, %" PRIu64 " dropped",
                   weir_ctx_name(ctx), weir_ctx_subtask(ctx), s->sink->stream, s->records_out,
                   s->bytes_out, s->put_calls, s->entries_failed, s->throttled, s->retries,
                   s->dropped);
  weir_kinesis_client_destroy(s->client);
  free(s->ents);
  free(s->arena);
  free(s->fi_req);
  free(s->fi_res);
  free(s->fi_map);
  free(s);
}

/* ---- building --------------------------------------------------------------------------- */

/* Copies src to *pos (advancing it); NULL stays NULL. */
static char *put_str(char **pos, const char *src) {
  char *d = *pos;
  size_t n;

  if (src == NULL)
    return NULL;
  n = strlen(src) + 1;
  memcpy(d, src, n);
  *pos += n;
  return d;
}

static size_t str_size(const char *s) {
  return s == NULL ? 0 : strlen(s) + 1;
}

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
  total = sizeof(*k) + str_size(cfg->stream) + str_size(cfg->partition_key) +
          str_size(cfg->client.region) + str_size(cfg->client.endpoint) +
          str_size(cfg->client.access_key_id) + str_size(cfg->client.secret_access_key) +
          str_size(cfg->client.session_token) + str_size(cfg->client.profile) +
          str_size(cfg->client.ca_file);
  if ((k = calloc(1, total)) == NULL)
    return WEIR_ENOMEM;
  pos = (char *)(k + 1);
  k->cfg = *cfg;
  k->stream = put_str(&pos, cfg->stream);
  k->partition_key = put_str(&pos, cfg->partition_key);
  k->cfg.stream = k->stream;
  k->cfg.partition_key = k->partition_key;
  k->cfg.client.region = put_str(&pos, cfg->client.region);
  k->cfg.client.endpoint = put_str(&pos, cfg->client.endpoint);
  k->cfg.client.access_key_id = put_str(&pos, cfg->client.access_key_id);
  k->cfg.client.secret_access_key = put_str(&pos, cfg->client.secret_access_key);
  k->cfg.client.session_token = put_str(&pos, cfg->client.session_token);
  k->cfg.client.profile = put_str(&pos, cfg->client.profile);
  k->cfg.client.ca_file = put_str(&pos, cfg->client.ca_file);
  if (k->cfg.max_buffered_records == 0)
    k->cfg.max_buffered_records = DEFAULT_BUFFERED_RECORDS;
  if (k->cfg.max_buffered_bytes == 0)
    k->cfg.max_buffered_bytes = DEFAULT_BUFFERED_BYTES;
  if (k->cfg.max_request_records == 0)
    k->cfg.max_request_records = WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS;
  if (k->cfg.max_request_bytes == 0)
    k->cfg.max_request_bytes = WEIR_KINESIS_SINK_DEFAULT_REQUEST_BYTES;
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
