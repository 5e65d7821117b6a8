/*
 * JSON field operators: the in-place scanner on tricky documents, then parse, filter,
 * project/rename and key_by in running jobs with bad records failing or dropped and counted.
 */
#include <criterion/criterion.h>
#include <weir/weir.h>

#include "../support/window_ref.h"
#include "operators/json_int.h"

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
}

/* ---- scanner ------------------------------------------------------------------------------ */

static int find(const char *doc, const char *path, struct weir__json_span *s) {
  struct weir__json_path p;

  cr_assert_eq(weir__json_path_init(&p, path), 0, "path %s", path);
  return weir__json_find((const uint8_t *)doc, strlen(doc), &p, s);
}

static bool valid(const char *doc) {
  return weir__json_validate((const uint8_t *)doc, strlen(doc)) == 0;
}

Test(json_scan, validates_rfc8259_objects) {
  cr_assert(valid("{}"));
  cr_assert(valid(" {\"a\" : [1, -2.5e+3, true, false, null, {\"b\":\"\\u00e9\\n\"}]} \n"));
  cr_assert(valid("{\"a\":0,\"b\":-0.0,\"c\":1E9}"));
  cr_assert(!valid(""));
  cr_assert(!valid("[1]"), "top level must be an object");
  cr_assert(!valid("{\"a\":1,}"));
  cr_assert(!valid("{\"a\":01}"));
  cr_assert(!valid("{\"a\":1."));
  cr_assert(!valid("{\"a\":tru}"));
  cr_assert(!valid("{\"a\":\"x\ty\"}"), "raw control character in a string");
  cr_assert(!valid("{\"a\":\"\\x\"}"));
  cr_assert(!valid("{\"a\":\"\\u12g4\"}"));
  cr_assert(!valid("{\"a\":1} x"));
  cr_assert(!valid("{a:1}"));
  {
    char deep[300];
    int i;

    for (i = 0; i < 100; i++)
      deep[i] = '[';
    memcpy(deep, "{\"a\":", 5);
    deep[100] = '\0';
    cr_assert(!valid(deep), "nesting deeper than the bound");
  }
}

Test(json_scan, finds_nested_fields_and_unescapes) {
  struct weir__json_span s;
  uint8_t buf[64];
  size_t n;
  double d;

  cr_assert_eq(find("{\"a\":{\"b\":{\"c\":42}},\"x\":1}", "a.b.c", &s), 0);
  cr_assert_eq(s.type, WEIR__JSON_NUMBER);
  cr_assert_eq(weir__json_number(s, &d), 0);
  cr_assert_eq(d, 42.0);
  cr_assert_eq(find("{\"a\":{\"b\":1}}", "a.c", &s), WEIR_ENOTFOUND);
  cr_assert_eq(find("{\"a\":[{\"b\":1}]}", "a.b", &s), WEIR_ENOTFOUND, "arrays are not walked");
  cr_assert_eq(find("{\"a\":1,\"a.b\":2}", "b", &s), WEIR_ENOTFOUND);
  cr_assert_eq(find("{\"x\":\"q\\\"uote\",\"k\":\"caf\\u00e9 \\ud83d\\ude00\"}", "k", &s), 0);
  cr_assert(s.escaped);
  cr_assert_eq(weir__json_unescape(s, buf, sizeof(buf), &n), 0);
  cr_assert_eq(n, strlen("caf\xc3\xa9 \xf0\x9f\x98\x80"));
  cr_assert_eq(memcmp(buf, "caf\xc3\xa9 \xf0\x9f\x98\x80", n), 0);
  /* An escaped member name matches its unescaped path component. */
  cr_assert_eq(find("{\"\\u0061\":true}", "a", &s), 0);
  cr_assert_eq(s.type, WEIR__JSON_TRUE);
  cr_assert_eq(find("{\"a\":1", "b", &s), WEIR_EPARSE);
  cr_assert_eq(find("[1,2]", "a", &s), WEIR_EPARSE);
  cr_assert_eq(weir__json_path_init(&(struct weir__json_path){0}, "a..b"), WEIR_EINVAL);
  cr_assert_eq(weir__json_path_init(&(struct weir__json_path){0}, ""), WEIR_EINVAL);
}

Test(json_scan, quotes_and_formats_numbers) {
  char buf[64];
  long n = weir__json_quote((const uint8_t *)"a\"b\\c\n\x01", 7, buf, sizeof(buf));

  cr_assert_eq(n, (long)strlen("\"a\\\"b\\\\c\\u000a\\u0001\""));
  cr_assert_eq(memcmp(buf, "\"a\\\"b\\\\c\\u000a\\u0001\"", (size_t)n), 0);
  cr_assert_eq(weir__json_quote((const uint8_t *)"abcdef", 6, buf, 6), WEIR_ETOOBIG);
  weir__json_fmt_number(-12.0, buf, sizeof(buf));
  cr_assert_str_eq(buf, "-12");
  weir__json_fmt_number(0.5, buf, sizeof(buf));
  cr_assert_str_eq(buf, "0.5");
}

/* ---- operators in a job ------------------------------------------------------------------- */

static const char *const docs[] = {
    "{\"user\":{\"id\":\"u1\",\"age\":31},\"event\":\"click\",\"amount\":12.5}",
    "{\"user\":{\"id\":\"u2\",\"age\":17},\"event\":\"view\"}",
    "not json",
    "{\"user\":{\"id\":\"u\\u0033\",\"age\":45},\"event\":\"click\",\"amount\":100}",
    "{\"user\":{\"id\":\"u4\"},\"event\":\"purchase\",\"amount\":\"7\"}",
    "{\"event\":\"click\",\"amount\":3}",
};
#define NDOCS (sizeof(docs) / sizeof(docs[0]))

/* Record i: docs[i], or ((const char *const *)data)[i] when data is set. */
static long gen_doc(void *data, uint64_t i, uint8_t *buf, size_t cap) {
  const char *const *d = data != NULL ? data : docs;

  return snprintf((char *)buf, cap, "%s", d[i]);
}

enum which { PARSE, FILTER, PROJECT, KEY };

struct case_opts {
  enum which op;
  const weir_json_cond *conds;
  size_t n_conds;
  const weir_json_field *fields;
  size_t n_fields;
  const char *key_field;
  weir_bad_record_policy on_bad;
};

static int with_key(void *data, int subtask, const weir_record *recs, size_t n) {
  size_t i;

  (void)subtask;
  for (i = 0; i < n; i++) {
    char line[512];
    int len = snprintf(line, sizeof(line), "%.*s|%.*s", (int)recs[i].key.len,
                       (const char *)recs[i].key.ptr, (int)recs[i].value.len,
                       (const char *)recs[i].value.ptr);

    lines_add(data, line, (size_t)len);
  }
  return 0;
}

/* Runs the docs through one operator; returns the job's result, output and dropped count. */
static int run_case(const struct case_opts *c, struct lines *out, int64_t *dropped) {
  weir_generator_config g = {0};
  weir_generator *gen;
  weir_job *job;
  int src, op = -1, rc;

  quiet();
  g.count = NDOCS;
  g.fn = gen_doc;
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_create(&job, "json"), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  switch (c->op) {
  case PARSE:
    rc = weir_job_json_parse(job, src, "op", c->on_bad, &op);
    break;
  case FILTER:
    rc = weir_job_json_filter(job, src, "op", c->conds, c->n_conds, c->on_bad, &op);
    break;
  case PROJECT:
    rc = weir_job_json_project(job, src, "op", c->fields, c->n_fields, c->on_bad, &op);
    break;
  default:
    rc = weir_job_json_key_by(job, src, "op", c->key_field, c->on_bad, &op);
    break;
  }
  cr_assert_eq(rc, 0, "%s", weir_job_error(job));
  cr_assert_eq(weir_job_add_callback_sink(job, op, "out", with_key, out, NULL), 0);
  rc = weir_job_run(job);
  *dropped = weir_job_metric_sum(job, "weir_bad_records_total", NULL);
  if (rc != 0)
    cr_assert(strstr(weir_job_error(job), "offset 2") != NULL, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  return rc;
}

Test(json_ops, parse_drops_and_counts_or_fails_on_bad_records) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct case_opts c = {PARSE, NULL, 0, NULL, 0, NULL, WEIR_BAD_RECORD_DROP};
  int64_t dropped;

  cr_assert_eq(run_case(&c, &out, &dropped), 0);
  cr_assert_eq(out.n, NDOCS - 1);
  cr_assert_eq(dropped, 1);
  lines_free(&out);
  c.on_bad = WEIR_BAD_RECORD_FAIL;
  cr_assert_eq(run_case(&c, &out, &dropped), WEIR_EPARSE);
  lines_free(&out);
}

static size_t filter_count(const weir_json_cond *conds, size_t n, struct lines *out) {
  struct case_opts c = {FILTER, conds, n, NULL, 0, NULL, WEIR_BAD_RECORD_DROP};
  int64_t dropped;

  lines_free(out);
  cr_assert_eq(run_case(&c, out, &dropped), 0);
  cr_assert_eq(dropped, 1, "the non-JSON record");
  return out->n;
}

Test(json_ops, filter_conditions) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_json_cond eq = {"event", WEIR_JSON_EQ, "click"};
  weir_json_cond ne = {"event", WEIR_JSON_NE, "click"};
  weir_json_cond gt = {"user.age", WEIR_JSON_GT, "18"};
  weir_json_cond le = {"amount", WEIR_JSON_LE, "12.5"};
  weir_json_cond ex = {"amount", WEIR_JSON_EXISTS, NULL};
  weir_json_cond mi = {"user", WEIR_JSON_MISSING, NULL};
  weir_json_cond re = {"user.id", WEIR_JSON_REGEX, "^u[34]$"};
  weir_json_cond num_eq = {"amount", WEIR_JSON_EQ, "1e2"};
  weir_json_cond both[2] = {{"event", WEIR_JSON_EQ, "click"}, {"user.age", WEIR_JSON_GE, "45"}};

  cr_assert_eq(filter_count(&eq, 1, &out), 3);
  cr_assert_eq(filter_count(&ne, 1, &out), 2);
  cr_assert_eq(filter_count(&gt, 1, &out), 2);
  cr_assert_eq(filter_count(&le, 1, &out), 2, "12.5 and 3; the string \"7\" is not a number");
  cr_assert_eq(filter_count(&ex, 1, &out), 4);
  cr_assert_eq(filter_count(&mi, 1, &out), 1);
  cr_assert_str_eq(out.v[0], "|{\"event\":\"click\",\"amount\":3}");
  cr_assert_eq(filter_count(&re, 1, &out), 2, "u\\u0033 unescapes to u3");
  cr_assert_eq(filter_count(&num_eq, 1, &out), 1, "numbers compare numerically");
  cr_assert_eq(filter_count(both, 2, &out), 1);
  cr_assert(strstr(out.v[0], "u\\u0033") != NULL, "%s", out.v[0]);
  lines_free(&out);
}

Test(json_ops, filter_refuses_bad_conditions) {
  weir_json_cond bad_re = {"a", WEIR_JSON_REGEX, "("};
  weir_json_cond bad_num = {"a", WEIR_JSON_LT, "ten"};
  weir_job *job;

  quiet();
  cr_assert_eq(weir_job_create(&job, "bad"), 0);
  cr_assert_eq(weir_job_json_filter(job, WEIR_NO_INPUT, "f", &bad_re, 1, 0, NULL), WEIR_EINVAL);
  cr_assert(strstr(weir_job_error(job), "regular expression") != NULL, "%s", weir_job_error(job));
  cr_assert_eq(weir_job_json_filter(job, WEIR_NO_INPUT, "f", &bad_num, 1, 0, NULL), WEIR_EINVAL);
  cr_assert_eq(weir_job_json_filter(job, WEIR_NO_INPUT, "f", &bad_num, 0, 0, NULL), WEIR_EINVAL);
  weir_job_destroy(job);
}

Test(json_ops, project_and_rename) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  weir_json_field f[] = {{"user.id", "uid"}, {"amount", NULL}, {"event", "e"}};
  struct case_opts c = {PROJECT, NULL, 0, f, 3, NULL, WEIR_BAD_RECORD_DROP};
  int64_t dropped;

  cr_assert_eq(run_case(&c, &out, &dropped), 0);
  cr_assert_eq(dropped, 1);
  cr_assert_eq(out.n, NDOCS - 1);
  cr_assert_str_eq(out.v[0], "|{\"uid\":\"u1\",\"amount\":12.5,\"e\":\"click\"}");
  cr_assert_str_eq(out.v[1], "|{\"uid\":\"u2\",\"e\":\"view\"}");
  cr_assert_str_eq(out.v[2], "|{\"uid\":\"u\\u0033\",\"amount\":100,\"e\":\"click\"}");
  cr_assert_str_eq(out.v[3], "|{\"uid\":\"u4\",\"amount\":\"7\",\"e\":\"purchase\"}");
  cr_assert_str_eq(out.v[4], "|{\"amount\":3,\"e\":\"click\"}");
  lines_free(&out);
}

Test(json_ops, key_by_a_field) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  struct case_opts c = {KEY, NULL, 0, NULL, 0, "user.id", WEIR_BAD_RECORD_DROP};
  int64_t dropped;

  cr_assert_eq(run_case(&c, &out, &dropped), 0);
  cr_assert_eq(dropped, 2, "the non-JSON record and the one without user.id");
  cr_assert_eq(out.n, 4);
  lines_sort(&out);
  cr_assert(strncmp(out.v[0], "u1|", 3) == 0, "%s", out.v[0]);
  cr_assert(strncmp(out.v[1], "u2|", 3) == 0, "%s", out.v[1]);
  cr_assert(strncmp(out.v[2], "u3|", 3) == 0, "escaped key unescaped: %s", out.v[2]);
  cr_assert(strncmp(out.v[3], "u4|", 3) == 0, "%s", out.v[3]);
  lines_free(&out);
}

/* Filter -> key from a field -> event time from a field -> tumbling count, as JSON. */
Test(json_ops, pipeline_into_a_window) {
  struct lines out = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};
  static const char *const ev[] = {
      "{\"u\":\"a\",\"t\":1000,\"e\":\"click\"}", "{\"u\":\"b\",\"t\":1500,\"e\":\"view\"}",
      "{\"u\":\"a\",\"t\":1999,\"e\":\"click\"}", "{\"u\":\"b\",\"t\":2100,\"e\":\"click\"}",
      "{\"u\":\"a\",\"t\":2200,\"e\":\"click\"}",
  };
  weir_generator_config g = {0};
  weir_json_cond cond = {"e", WEIR_JSON_EQ, "click"};
  weir_watermark_config wc = {0};
  weir_window_config w = {0};
  weir_generator *gen;
  weir_job *job;
  int src, f, ts, key, win;

  quiet();
  g.count = 5;
  g.fn = gen_doc;
  g.fn_data = (void *)ev;
  wc.from = WEIR_TS_FROM_JSON_FIELD;
  wc.json_field = "t";
  w.kind = WEIR_WINDOW_TUMBLING;
  w.size_ms = 1000;
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_create(&job, "pipe"), 0);
  cr_assert_eq(weir_job_add_generator(job, "gen", gen, &src), 0);
  cr_assert_eq(weir_job_json_filter(job, src, "clicks", &cond, 1, WEIR_BAD_RECORD_FAIL, &f), 0);
  cr_assert_eq(weir_job_assign_timestamps(job, f, "ts", &wc, &ts), 0);
  cr_assert_eq(weir_job_json_key_by(job, ts, "user", "u", WEIR_BAD_RECORD_FAIL, &key), 0);
  cr_assert_eq(weir_job_window(job, key, "count", &w, &win), 0);
  cr_assert_eq(weir_job_add_callback_sink(job, win, "out", collect_cb, &out, NULL), 0);
  cr_assert_eq(weir_job_run(job), 0, "%s", weir_job_error(job));
  lines_sort(&out);
  cr_assert_eq(out.n, 3);
  cr_assert_str_eq(out.v[0],
                   "{\"key\":\"a\",\"window_start\":1000,\"window_end\":2000,\"count\":2}");
  cr_assert_str_eq(out.v[1],
                   "{\"key\":\"a\",\"window_start\":2000,\"window_end\":3000,\"count\":1}");
  cr_assert_str_eq(out.v[2],
                   "{\"key\":\"b\",\"window_start\":2000,\"window_end\":3000,\"count\":1}");
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  lines_free(&out);
}
