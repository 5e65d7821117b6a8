/*
 * window_job.h: the windowed job shared by tests/integration/test_windows_restore.c and its
 * crash child (window_crash_child.c): generator (record i: key "k<i mod 20>", event time i ms,
 * value i) -> throttle -> assign_timestamps -> key_by -> tumbling 1 s window with count, sum,
 * min, max, avg -> sink. The expected results are computed with window_ref.h.
 */
#ifndef WEIR_TEST_WINDOW_JOB_H
#define WEIR_TEST_WINDOW_JOB_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <weir/weir.h>

#define WJ_KEYS 20
#define WJ_SIZE 1000

/* Slows each subtask to about 500 records per ms, so runs can be killed mid-window. */
static int wj_throttle(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
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

static int wj_key_of(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->key;
  return 0;
}

static long wj_value(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  (void)data;
  return snprintf((char *)buf, cap, "%" PRIu64, index);
}

struct wj_opts {
  const char *dir;
  const char *out; /* file sink path, or NULL for the callback sink */
  uint64_t records;
  int win_par;
  int64_t interval_ms;
  weir_sink_cb cb;
  void *cb_data;
};

struct wj_built {
  weir_job *job;
  weir_generator *gen;
  weir_file_sink *sink;
};

static int wj_build(const struct wj_opts *o, struct wj_built *b) {
  weir_generator_config g = {0};
  weir_watermark_config wc = {0};
  weir_window_config w = {0};
  int src, thr, ts, keyed, win, rc;

  memset(b, 0, sizeof(*b));
  g.count = o->records;
  g.key_count = WJ_KEYS;
  g.ts_start = 0;
  g.ts_step = 1;
  g.fn = wj_value;
  wc.from = WEIR_TS_FROM_RECORD;
  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = WJ_SIZE;
  w.aggs = WEIR_AGG_COUNT | WEIR_AGG_SUM | WEIR_AGG_MIN | WEIR_AGG_MAX | WEIR_AGG_AVG;
  if ((rc = weir_generator_create(&b->gen, &g)) != 0 ||
      (rc = weir_job_create(&b->job, "window-ckpt")) != 0)
    return rc;
  if ((o->dir != NULL && ((rc = weir_job_set_checkpoint_dir(b->job, o->dir)) != 0 ||
                          (rc = weir_job_set_checkpoint_interval(b->job, o->interval_ms)) != 0)) ||
      (rc = weir_job_add_generator(b->job, "gen", b->gen, &src)) != 0 ||
      (rc = weir_job_map(b->job, src, "throttle", wj_throttle, NULL, &thr)) != 0 ||
      (rc = weir_job_assign_timestamps(b->job, thr, "ts", &wc, &ts)) != 0 ||
      (rc = weir_job_key_by(b->job, ts, "by-key", wj_key_of, NULL, &keyed)) != 0 ||
      (rc = weir_job_window(b->job, keyed, "win", &w, &win)) != 0 ||
      (rc = weir_job_set_parallelism(b->job, win, o->win_par)) != 0)
    return rc;
  if (o->out != NULL) {
    weir_file_sink_config fc = {o->out, true, false};

    if ((rc = weir_file_sink_create(&b->sink, &fc)) != 0)
      return rc;
    return weir_job_add_file_sink(b->job, win, "out", b->sink, NULL);
  }
  return weir_job_add_callback_sink(b->job, win, "out", o->cb, o->cb_data, NULL);
}

static void wj_destroy(struct wj_built *b) {
  weir_job_destroy(b->job);
  weir_file_sink_destroy(b->sink);
  weir_generator_destroy(b->gen);
}

#endif /* WEIR_TEST_WINDOW_JOB_H */
