/*
 * ckpt_job.h: the keyed-count job shared by tests/integration/test_checkpoint.c and its crash
 * child (ckpt_crash_child.c): generator -> throttle -> key_by -> keyed count (value state) ->
 * sink. Every EMIT_EVERY-th count of a key is emitted as "k<i> <count>"; at the end of input
 * each key's final count as "FINAL k<i> <count>".
 */
#ifndef WEIR_TEST_CKPT_JOB_H
#define WEIR_TEST_CKPT_JOB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weir/weir.h>

#define KEYS 20
#define EMIT_EVERY 250

/* ---- the job ------------------------------------------------------------------------------ */

/* Slows the pipeline to at most ~1 record per 2 us per subtask, so runs last long enough to be
 * killed at random points. */
static int throttle(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  static _Thread_local unsigned n;

  (void)ctx;
  (void)data;
  (void)in;
  (void)out;
  if (++n % 500 == 0) {
    struct timespec ts = {0, 1000000};

    nanosleep(&ts, NULL);
  }
  return 0;
}

static int key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

struct counter {
  weir_value_state *count;
};

static int count_open(weir_ctx *ctx, void *data, void **inst) {
  struct counter *c = calloc(1, sizeof(*c));

  (void)data;
  if (c == NULL)
    return WEIR_ENOMEM;
  *inst = c;
  return weir_ctx_value_state(ctx, "count", &c->count);
}

static int emit_line(weir_ctx *ctx, const char *fmt, weir_buf key, unsigned long n) {
  char line[64];
  weir_record r = weir_record_init();
  int len = snprintf(line, sizeof(line), fmt, (int)key.len, (const char *)key.ptr, n);

  r.value.ptr = (const uint8_t *)line;
  r.value.len = (size_t)len;
  return weir_emit(ctx, &r);
}

static int count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct counter *c = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
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
    if (cnt % EMIT_EVERY == 0 && (rc = emit_line(ctx, "%.*s %lu", recs[i].key, cnt)) != 0)
      return rc;
  }
  return 0;
}

/* At end of input, the final count of every key this subtask owns. */
static int count_finish(weir_ctx *ctx, void *inst) {
  struct counter *c = inst;
  char k[16];
  int i, rc;

  for (i = 0; i < KEYS; i++) {
    weir_buf key = {(const uint8_t *)k, (size_t)snprintf(k, sizeof(k), "k%d", i)}, v;
    unsigned long cnt;

    rc = weir_value_state_get(c->count, key, &v);
    if (rc == WEIR_EINVAL || rc == WEIR_ENOTFOUND)
      continue; /* another subtask's key, or never seen */
    if (rc != 0)
      return rc;
    memcpy(&cnt, v.ptr, sizeof(cnt));
    if ((rc = emit_line(ctx, "FINAL %.*s %lu", key, cnt)) != 0)
      return rc;
  }
  return 0;
}

static void count_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

struct job_opts {
  const char *dir;
  const char *out; /* file sink path, or NULL for the callback sink */
  uint64_t records;
  int count_par;
  int64_t interval_ms;
  const char *count_uid;
  weir_sink_cb cb;
  void *cb_data;
};

struct built {
  weir_job *job;
  weir_generator *gen;
  weir_file_sink *sink;
};

static int build(const struct job_opts *o, struct built *b) {
  weir_generator_config g = {0};
  weir_operator count = {0};
  int src, thr, keyed, cnt, rc;

  memset(b, 0, sizeof(*b));
  g.count = o->records;
  g.key_count = KEYS;
  g.value_len = 24;
  count.open = count_open;
  count.process = count_process;
  count.finish = count_finish;
  count.close = count_close;
  if ((rc = weir_generator_create(&b->gen, &g)) != 0 ||
      (rc = weir_job_create(&b->job, "ckpt")) != 0)
    return rc;
  if ((rc = weir_job_set_checkpoint_dir(b->job, o->dir)) != 0 ||
      (rc = weir_job_set_checkpoint_interval(b->job, o->interval_ms)) != 0 ||
      (rc = weir_job_add_generator(b->job, "gen", b->gen, &src)) != 0 ||
      (rc = weir_job_map(b->job, src, "throttle", throttle, NULL, &thr)) != 0 ||
      (rc = weir_job_key_by(b->job, thr, "by-key", key_of, NULL, &keyed)) != 0 ||
      (rc = weir_job_add_operator(b->job, keyed, "count", &count, NULL, &cnt)) != 0 ||
      (rc = weir_job_set_parallelism(b->job, cnt, o->count_par)) != 0)
    return rc;
  if (o->count_uid != NULL && (rc = weir_job_set_uid(b->job, cnt, o->count_uid)) != 0)
    return rc;
  if (o->out != NULL) {
    weir_file_sink_config fc = {o->out, true, false};

    if ((rc = weir_file_sink_create(&b->sink, &fc)) != 0)
      return rc;
    return weir_job_add_file_sink(b->job, cnt, "out", b->sink, NULL);
  }
  return weir_job_add_callback_sink(b->job, cnt, "out", o->cb, o->cb_data, NULL);
}

static void destroy(struct built *b) {
  weir_job_destroy(b->job);
  weir_file_sink_destroy(b->sink);
  weir_generator_destroy(b->gen);
}

#endif /* WEIR_TEST_CKPT_JOB_H */
