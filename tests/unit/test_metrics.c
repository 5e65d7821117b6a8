/* test_metrics.c: the job metric registry: registration rules, values, rendering, sums, and
 * series registered by operators of a running job. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "weir/weir.h"

static weir_job *new_job(void) {
  weir_job *job = NULL;

  cr_assert_eq(weir_job_create(&job, "metrics"), 0);
  return job;
}

Test(metrics, register_add_set_and_dedup) {
  weir_job *job = new_job();
  const char *labels[] = {"stream", "orders", NULL};
  weir_metric *a = NULL;
  weir_metric *b = NULL;
  weir_metric *g = NULL;

  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "weir_x_total", "X.", labels, &a), 0);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "weir_x_total", "X.", labels, &b), 0);
  cr_assert_eq(a, b, "same name and labels give the same series");
  weir_metric_add(a, 5);
  weir_metric_add(b, 2);
  cr_assert_eq(weir_metric_value(a), 7);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_GAUGE, "weir_fill", NULL, NULL, &g), 0);
  weir_metric_set(g, 42);
  weir_metric_set(g, 17);
  cr_assert_eq(weir_metric_value(g), 17);
  weir_metric_add(NULL, 1); /* no-op */
  cr_assert_eq(weir_metric_value(NULL), 0);
  weir_job_destroy(job);
}

Test(metrics, rejects_bad_names_labels_and_kind_conflicts) {
  weir_job *job = new_job();
  weir_metric *m = NULL;
  const char *bad_label[] = {"9lives", "v", NULL};
  const char *odd[] = {"k", NULL};
  const char *many[] = {"a", "1", "b", "1", "c", "1", "d", "1", "e", "1",
                        "f", "1", "g", "1", "h", "1", "i", "1", NULL};

  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "1abc", NULL, NULL, &m), WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "a-b", NULL, NULL, &m), WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "", NULL, NULL, &m), WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "ok", "two\nlines", NULL, &m),
               WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "ok", NULL, bad_label, &m), WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "ok", NULL, odd, &m), WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "ok", NULL, many, &m), WEIR_EINVAL);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "ok", NULL, NULL, &m), 0);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_GAUGE, "ok", NULL, NULL, &m), WEIR_EINVAL,
               "one name has one kind");
  weir_job_destroy(job);
}

Test(metrics, prometheus_text_groups_by_name_and_escapes) {
  weir_job *job = new_job();
  const char *s1[] = {"shard", "s-1", NULL};
  const char *s2[] = {"shard", "q\"uo\\te\nnl", NULL};
  weir_metric *a = NULL;
  weir_metric *b = NULL;
  weir_metric *c = NULL;
  char *text = NULL;
  size_t len = 0;
  const char *p;

  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "weir_b_total", "B things.", s1, &a), 0);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_GAUGE, "weir_a", NULL, NULL, &c), 0);
  cr_assert_eq(weir_job_metric(job, WEIR_METRIC_COUNTER, "weir_b_total", "B things.", s2, &b), 0);
  weir_metric_add(a, 3);
  weir_metric_add(b, 4);
  weir_metric_set(c, -2);
  cr_assert_eq(weir_job_metrics_text(job, &text, &len), 0);
  cr_assert_eq(len, strlen(text));
  cr_assert_str_eq(text, "# TYPE weir_a gauge\n"
                         "weir_a -2\n"
                         "# HELP weir_b_total B things.\n"
                         "# TYPE weir_b_total counter\n"
                         "weir_b_total{shard=\"s-1\"} 3\n"
                         "weir_b_total{shard=\"q\\\"uo\\\\te\\nnl\"} 4\n");
  p = strstr(text, "# TYPE weir_b_total");
  cr_assert_not_null(p);
  cr_assert_null(strstr(p + 1, "# TYPE weir_b_total"), "one TYPE line per name");
  free(text);
  cr_assert_eq(weir_job_metric_sum(job, "weir_b_total", NULL), 7);
  cr_assert_eq(weir_job_metric_sum(job, "weir_b_total", "shard=\"s-1\""), 3);
  cr_assert_eq(weir_job_metric_sum(job, "weir_b_total", "nomatch"), 0);
  cr_assert_eq(weir_job_metric_sum(job, "weir_none", NULL), 0);
  weir_job_destroy(job);
}

/* An operator that registers a counter in open and counts its records. */
static int count_open(weir_ctx *ctx, void *data, void **inst) {
  const char *labels[] = {"kind", "test", NULL};
  weir_metric *m = NULL;
  int rc;

  (void)data;
  rc = weir_ctx_metric(ctx, WEIR_METRIC_COUNTER, "weir_test_records_total", "Records seen.", labels,
                       &m);
  *inst = m;
  return rc;
}

static int count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  size_t i;

  weir_metric_add(inst, (int64_t)n);
  for (i = 0; i < n; i++)
    if (weir_emit(ctx, &recs[i]) != 0)
      return WEIR_ECANCELED;
  return 0;
}

static int null_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data, (void)subtask, (void)recs, (void)n;
  return 0;
}

Test(metrics, operators_register_per_subtask_series) {
  weir_job *job = new_job();
  weir_generator_config gc = {0};
  weir_generator *gen = NULL;
  weir_operator op = {0};
  int src = -1;
  int mid = -1;
  char *text = NULL;

  gc.count = 10000;
  cr_assert_eq(weir_generator_create(&gen, &gc), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  op.open = count_open;
  op.process = count_process;
  cr_assert_eq(weir_job_add_operator(job, src, "counter", &op, NULL, &mid), 0);
  cr_assert_eq(weir_job_set_parallelism(job, mid, 3), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, mid, "sink", null_sink, NULL, NULL), 0);
  cr_assert_eq(weir_job_run(job), 0, "%s", weir_job_error(job));
  cr_assert_eq(weir_job_metric_sum(job, "weir_test_records_total", NULL), 10000);
  /* The runtime's own series: records out of sources, into sinks. */
  cr_assert_eq(weir_job_metric_sum(job, "weir_source_records_total", "node=\"gen\""), 10000);
  cr_assert_eq(weir_job_metric_sum(job, "weir_sink_records_total", "node=\"sink\""), 10000);
  cr_assert_eq(weir_job_metrics_text(job, &text, NULL), 0);
  cr_assert_not_null(
      strstr(text, "weir_test_records_total{node=\"counter\",subtask=\"2\",kind=\"test\"}"), "%s",
      text);
  free(text);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
}
