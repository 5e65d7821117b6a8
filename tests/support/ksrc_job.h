/*
 * ksrc_job.h: test support for the Kinesis source, shared by
 * tests/integration/test_kinesis_source*.c and the crash child (ksrc_crash_child.c):
 *  - writing test records (plain, or KPL aggregates made with weir's own aggregator, grouped by
 *    the shard each key hashes to so that no aggregate is filtered);
 *  - the keyed-count job: kinesis source -> key_by(partition key) -> count (value state) ->
 *    sink; at the end of input every key's final count is emitted as "FINAL k<i> <count>".
 * Record i has partition key "k<i mod KSRC_KEYS>" and data "<i, 8 digits>".
 */
#ifndef WEIR_TEST_KSRC_JOB_H
#define WEIR_TEST_KSRC_JOB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#include "connectors/kinesis/client_int.h"
#include "connectors/kinesis/kpl_int.h"

#define KSRC_KEYS 20
#define KSRC_MAX_SHARDS 64

static inline void ksrc_client_config(weir_kinesis_config *cfg, const char *endpoint) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->region = "us-east-1";
  cfg->endpoint = endpoint;
  cfg->access_key_id = "AKIDEXAMPLE";
  cfg->secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  cfg->connect_timeout_ms = 2000;
  cfg->request_timeout_ms = 20000;
}

/* PutRecords of n entries, resending failed ones. 0 or the client's code. */
static inline int ksrc_put(weir_kinesis_client *c, const char *stream,
                           const struct weir_kinesis_put_entry *e, size_t n) {
  static struct weir_kinesis_put_result res[WEIR_KINESIS_PUT_MAX_RECORDS];
  size_t failed;
  int rc;

  if ((rc = weir__kinesis_put_records(c, stream, e, n, res, &failed)) != 0)
    return rc;
  return failed == 0 ? 0 : WEIR_EIO;
}

/* Writes records [first, first + n) as plain records. */
static inline int ksrc_put_plain(weir_kinesis_client *c, const char *stream, long first, long n) {
  static struct weir_kinesis_put_entry e[WEIR_KINESIS_PUT_MAX_RECORDS];
  static char data[WEIR_KINESIS_PUT_MAX_RECORDS][16], keys[WEIR_KINESIS_PUT_MAX_RECORDS][16];
  size_t m = 0;
  int rc;

  for (long i = first; i < first + n; i++) {
    int dl = snprintf(data[m], sizeof(data[m]), "%08ld", i);
    int kl = snprintf(keys[m], sizeof(keys[m]), "k%ld", i % KSRC_KEYS);

    e[m].data = (weir_buf){(const uint8_t *)data[m], (size_t)dl};
    e[m].partition_key = (weir_buf){(const uint8_t *)keys[m], (size_t)kl};
    e[m].explicit_hash_key = NULL;
    if (++m == WEIR_KINESIS_PUT_MAX_RECORDS || i == first + n - 1) {
      if ((rc = ksrc_put(c, stream, e, m)) != 0)
        return rc;
      m = 0;
    }
  }
  return 0;
}

/*
 * Writes records [first, first + n) as KPL aggregates of up to `per_agg` user records, each
 * aggregate holding only keys of one open shard (as the KPL groups them) and sent with that
 * shard's explicit hash key. Per-key order is kept.
 */
static inline int ksrc_put_aggregated(weir_kinesis_client *c, const char *stream, long first,
                                      long n, uint32_t per_agg) {
  static struct weir_kinesis_shard shards[KSRC_MAX_SHARDS];
  static struct weir_kpl_hash_range ranges[KSRC_MAX_SHARDS];
  static uint8_t out[KSRC_MAX_SHARDS][64 << 10];
  static char ehk[KSRC_MAX_SHARDS][WEIR_KPL_HASH_KEY_DEC_MAX + 1];
  struct weir_kinesis_shard_list l = {shards, 0, KSRC_MAX_SHARDS};
  struct weir_kpl_aggregator *agg[KSRC_MAX_SHARDS] = {0};
  struct weir_kpl_agg_config ac = {0, per_agg, WEIR_KPL_AGG_STYLE_JAVA};
  size_t open_n = 0, idx[KSRC_MAX_SHARDS];
  int rc;

  if ((rc = weir__kinesis_list_all_shards(c, stream, NULL, &l)) != 0)
    return rc;
  for (size_t i = 0; i < l.len; i++) {
    if (shards[i].ending_seq[0] != '\0')
      continue;
    if (weir__kpl_hash_range_parse(shards[i].hash_range.start, shards[i].hash_range.end,
                                   &ranges[open_n]) != 0 ||
        weir__kpl_agg_new(&agg[open_n], &ac) != 0)
      return WEIR_EIO;
    idx[open_n++] = i;
  }
  (void)idx;
  for (long i = first; i <= first + n; i++) {
    char data[16], key[16];
    weir_buf d, k;
    struct weir_kpl_u128 hk;
    size_t s;
    bool last = i == first + n;

    for (size_t j = 0; j < open_n && last; j++) {
      /* Flush what is left in every aggregator. */
      struct weir_kpl_agg_result res;
      struct weir_kinesis_put_entry e;

      if (weir__kpl_agg_count(agg[j]) == 0)
        continue;
      if ((rc = weir__kpl_agg_finish(agg[j], out[j], sizeof(out[j]), &res)) != 0)
        return rc;
      strcpy(ehk[j], res.explicit_hash_key);
      e.data = (weir_buf){out[j], res.len};
      e.partition_key = res.partition_key;
      e.explicit_hash_key = ehk[j];
      if ((rc = ksrc_put(c, stream, &e, 1)) != 0)
        return rc;
      weir__kpl_agg_reset(agg[j]);
    }
    if (last)
      break;
    d = (weir_buf){(const uint8_t *)data, (size_t)snprintf(data, sizeof(data), "%08ld", i)};
    k = (weir_buf){(const uint8_t *)key, (size_t)snprintf(key, sizeof(key), "k%ld", i % KSRC_KEYS)};
    if ((rc = weir__kpl_hash_key(NULL, k, &hk)) != 0 ||
        (rc = weir__kpl_shard_find(ranges, open_n, hk, &s)) != 0)
      return rc;
    rc = weir__kpl_agg_add(agg[s], k, NULL, d);
    if (rc == WEIR_EAGAIN) {
      struct weir_kpl_agg_result res;
      struct weir_kinesis_put_entry e;

      if ((rc = weir__kpl_agg_finish(agg[s], out[s], sizeof(out[s]), &res)) != 0)
        return rc;
      strcpy(ehk[s], res.explicit_hash_key);
      e.data = (weir_buf){out[s], res.len};
      e.partition_key = res.partition_key;
      e.explicit_hash_key = ehk[s];
      if ((rc = ksrc_put(c, stream, &e, 1)) != 0)
        return rc;
      weir__kpl_agg_reset(agg[s]);
      rc = weir__kpl_agg_add(agg[s], k, NULL, d);
    }
    if (rc != 0)
      return rc;
  }
  for (size_t j = 0; j < open_n; j++)
    weir__kpl_agg_free(agg[j]);
  return 0;
}

/* ---- the keyed-count job ------------------------------------------------------------------ */

static inline int ksrc_key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

struct ksrc_counter {
  weir_value_state *count;
};

static inline int ksrc_count_open(weir_ctx *ctx, void *data, void **inst) {
  struct ksrc_counter *c = calloc(1, sizeof(*c));

  (void)data;
  if (c == NULL)
    return WEIR_ENOMEM;
  *inst = c;
  return weir_ctx_value_state(ctx, "count", &c->count);
}

static inline int ksrc_count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct ksrc_counter *c = inst;
  int rc;

  (void)ctx;
  for (size_t i = 0; i < n; i++) {
    weir_buf v;
    unsigned long cnt = 0;

    rc = weir_value_state_get(c->count, recs[i].key, &v);
    if (rc == 0)
      memcpy(&cnt, v.ptr, sizeof(cnt));
    else if (rc != WEIR_ENOTFOUND)
      return rc;
    cnt++;
    if ((rc = weir_value_state_put(c->count, recs[i].key,
                                   (weir_buf){(const uint8_t *)&cnt, sizeof(cnt)})) != 0)
      return rc;
  }
  return 0;
}

static inline int ksrc_count_finish(weir_ctx *ctx, void *inst) {
  struct ksrc_counter *c = inst;
  char k[16], line[64];
  int rc;

  for (int i = 0; i < KSRC_KEYS; i++) {
    weir_buf key = {(const uint8_t *)k, (size_t)snprintf(k, sizeof(k), "k%d", i)}, v;
    weir_record r = weir_record_init();
    unsigned long cnt;

    rc = weir_value_state_get(c->count, key, &v);
    if (rc == WEIR_EINVAL || rc == WEIR_ENOTFOUND)
      continue; /* another subtask's key, or never seen */
    if (rc != 0)
      return rc;
    memcpy(&cnt, v.ptr, sizeof(cnt));
    r.value.ptr = (const uint8_t *)line;
    r.value.len = (size_t)snprintf(line, sizeof(line), "FINAL k%d %lu", i, cnt);
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
  }
  return 0;
}

static inline void ksrc_count_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

/* Adds key_by + count after `upstream`; *out is the count node. */
static inline int ksrc_add_count(weir_job *job, int upstream, int par, int *out) {
  weir_operator count = {0};
  int keyed, rc;

  count.open = ksrc_count_open;
  count.process = ksrc_count_process;
  count.finish = ksrc_count_finish;
  count.close = ksrc_count_close;
  if ((rc = weir_job_key_by(job, upstream, "by-key", ksrc_key_of, NULL, &keyed)) != 0 ||
      (rc = weir_job_add_operator(job, keyed, "count", &count, NULL, out)) != 0)
    return rc;
  return weir_job_set_parallelism(job, *out, par);
}

/* Parses "FINAL k<i> <n>" lines of `path` into counts[KSRC_KEYS] (the last line per key wins);
 * returns the number of FINAL lines, -1 when the file cannot be read. */
static inline int ksrc_read_finals(const char *path, unsigned long counts[KSRC_KEYS]) {
  char line[128];
  int n = 0;
  FILE *f = fopen(path, "r");

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    int k;
    unsigned long c;

    if (sscanf(line, "FINAL k%d %lu", &k, &c) == 2 && k >= 0 && k < KSRC_KEYS) {
      counts[k] = c;
      n++;
    }
  }
  fclose(f);
  return n;
}

#endif /* WEIR_TEST_KSRC_JOB_H */
