/*
 * test_pipeline_config.c: pipeline files (runtime/pipeline.c) and the configuration tree under
 * them (runtime/yaml_cfg.c): every class of error, each checked for its exact message and its
 * line:column; typed values (durations, sizes, booleans, enums); ${VAR} interpolation and
 * secrets kept out of messages; and that a valid file builds the job it describes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/yaml_cfg_int.h"
#include "weir/checkpoint.h"
#include "weir/pipeline.h"

/* Validates `yaml` and returns the error message ("" when valid), in a static buffer. */
static const char *check(const char *yaml) {
  static char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;
  int rc;

  rc = weir_pipeline_load_string(&p, "p.yaml", yaml, strlen(yaml), WEIR_PIPELINE_VALIDATE_ONLY, err,
                                 sizeof(err));
  if (rc == 0) {
    cr_assert_not_null(p);
    weir_pipeline_destroy(p);
    err[0] = '\0';
  } else {
    cr_assert_null(p);
    cr_assert_neq(err[0], '\0', "an error without a message (rc %d)", rc);
  }
  return err;
}

#define EXPECT_ERR(yaml, msg) cr_assert_str_eq(check(yaml), msg)

static const char minimal[] = "sources:\n"
                              "  - type: generator\n"
                              "sinks:\n"
                              "  - type: stdout\n";

Test(pipeline_config, minimal_file_is_valid) {
  cr_assert_str_eq(check(minimal), "");
}

Test(pipeline_config, unknown_key_suggests_the_closest) {
  EXPECT_ERR("name: j\n"
             "sources:\n"
             "  - type: generator\n"
             "    countt: 10\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:5: sources[0].countt: unknown key (hint: did you mean 'count'? keys "
             "here: type, name, uid, parallelism, count, value_len, keys, ts_start, "
             "ts_step, rate, records_per_poll, start)");
}

Test(pipeline_config, unknown_top_level_key) {
  EXPECT_ERR("name: j\n"
             "paralelism: 2\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:1: paralelism: unknown key (hint: did you mean 'parallelism'? keys here: "
             "name, max_parallelism, parallelism, buffer_timeout, tick_interval, "
             "channel_capacity, batch, checkpoint, sources, operators, sinks)");
}

Test(pipeline_config, wrong_type) {
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "    count: ten\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:12: sources[0].count: expected an integer, got \"ten\" (hint: write a "
             "whole number such as 4)");
  EXPECT_ERR("checkpoint: /tmp/x\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:1:13: checkpoint: expected a map, got \"/tmp/x\" (hint: indent 'key: value' "
             "lines under it)");
  EXPECT_ERR("sources:\n"
             "  type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:3: sources: expected a list, got a map (hint: write one '- item' per line "
             "under it)");
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: file\n"
             "    path: out.txt\n"
             "    append: sometimes\n",
             "p.yaml:6:13: sinks[0].append: expected true or false, got \"sometimes\" (hint: "
             "write true or false)");
}

Test(pipeline_config, missing_required_field) {
  EXPECT_ERR("sources:\n"
             "  - name: gen\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:5: sources[0]: missing required key 'type' (hint: add 'type: <value>')");
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: file\n",
             "p.yaml:4:5: sinks[0]: missing required key 'path' (hint: add 'path: <text>')");
  EXPECT_ERR("checkpoint:\n"
             "  interval: 10s\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:3: checkpoint: missing required key 'dir' (hint: add 'dir: <text>')");
  EXPECT_ERR("name: j\n"
             "sources:\n"
             "  - type: generator\n",
             "p.yaml:1:1: missing required key 'sinks' (hint: add 'sinks: <list>')");
}

Test(pipeline_config, bad_duration) {
  EXPECT_ERR("checkpoint:\n"
             "  dir: /tmp/weir-test-never-created\n"
             "  interval: 10x\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:13: checkpoint.interval: bad duration \"10x\": unknown unit (hint: write a "
             "number and a unit: 250ms, 10s, 5m, 1h, 1m30s)");
  EXPECT_ERR("buffer_timeout: 100\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:1:17: buffer_timeout: bad duration \"100\": missing unit (hint: write a "
             "number and a unit: 250ms, 10s, 5m, 1h, 1m30s)");
  EXPECT_ERR("buffer_timeout: 2h\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:1:17: buffer_timeout: \"2h\" is out of range (hint: allowed 0ms..3600000ms)");
}

Test(pipeline_config, bad_size) {
  EXPECT_ERR("sources:\n"
             "  - type: file\n"
             "    path: in.txt\n"
             "    max_line_len: 1 MiBs\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:4:19: sources[0].max_line_len: bad size \"1 MiBs\": unknown unit (hint: "
             "write a number and a unit: 512, 64KiB, 1MiB, 2GiB, 10MB)");
  EXPECT_ERR("batch:\n"
             "  bytes: lots\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:10: batch.bytes: bad size \"lots\" (hint: write a number and a unit: 512, "
             "64KiB, 1MiB, 2GiB, 10MB)");
}

Test(pipeline_config, bad_enum) {
  EXPECT_ERR("checkpoint:\n"
             "  dir: /tmp/weir-test-never-created\n"
             "  mode: exactly-once\n"
             "sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:9: checkpoint.mode: bad value \"exactly-once\" (hint: one of: "
             "exactly_once, at_least_once)");
  EXPECT_ERR("sources:\n"
             "  - type: kafka\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:2:11: sources[0].type: bad value \"kafka\" (hint: one of: generator, file, "
             "stdin, kinesis)");
}

Test(pipeline_config, unset_env_var) {
  unsetenv("WEIR_TEST_UNSET_VAR");
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: file\n"
             "    path: \"/tmp/${WEIR_TEST_UNSET_VAR}/out\"\n",
             "p.yaml:5:11: sinks[0].path: environment variable WEIR_TEST_UNSET_VAR is not set "
             "(hint: export it before running, or give a default: ${NAME:-default})");
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "    count: ${BAD-NAME}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:12: sources[0].count: bad environment variable reference (hint: write "
             "${NAME} or ${NAME:-default}; NAME is letters, digits and '_'; $${ is a literal ${)");
}

Test(pipeline_config, yaml_syntax_error) {
  EXPECT_ERR(
      "sources:\n"
      "  - type: generator\n"
      "   count: 3\n"
      "sinks:\n"
      "  - type: stdout\n",
      "p.yaml:3:4: YAML syntax error: did not find expected '-' indicator while parsing a "
      "block collection "
      "(hint: check indentation, colons and quotes near here; indent with spaces, not tabs)");
  EXPECT_ERR("sources: [generator\n",
             "p.yaml:2:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
             "sequence (hint: check indentation, colons and quotes near here; indent with spaces, "
             "not tabs)");
  EXPECT_ERR("", "p.yaml:1:1: the file is empty (hint: see docs/configuration.md for an example)");
}

Test(pipeline_config, env_interpolation_and_defaults) {
  setenv("WEIR_TEST_COUNT", "25", 1);
  unsetenv("WEIR_TEST_UNSET_VAR");
  cr_assert_str_eq(check("sources:\n"
                         "  - type: generator\n"
                         "    count: ${WEIR_TEST_COUNT}\n"
                         "    value_len: ${WEIR_TEST_UNSET_VAR:-40}\n"
                         "sinks:\n"
                         "  - type: stdout\n"),
                   "");
}

Test(pipeline_config, secret_from_env_never_in_message) {
  setenv("WEIR_TEST_SECRET", "hunter2-very-secret", 1);
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "    count: ${WEIR_TEST_SECRET}\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:12: sources[0].count: expected an integer, got a value from the "
             "environment (not shown) (hint: write a whole number such as 4)");
}

Test(pipeline_config, graph_errors_name_the_node) {
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "    name: a\n"
             "  - type: generator\n"
             "    name: a\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:5:11: sources[1].name: duplicate node name \"a\" (hint: every node needs its "
             "own name)");
  EXPECT_ERR("sources:\n"
             "  - type: generator\n"
             "sinks:\n"
             "  - type: stdout\n"
             "    input: nowhere\n",
             "p.yaml:5:12: sinks[0].input: no node called \"nowhere\" before this one (hint: "
             "inputs name a source or an operator listed above this node)");
  EXPECT_ERR("sources:\n"
             "  - type: stdin\n"
             "    parallelism: 2\n"
             "sinks:\n"
             "  - type: stdout\n",
             "p.yaml:3:18: sources[0].parallelism: a stdin source runs with at most 1 subtask "
             "(hint: remove it or lower it)");
}

Test(pipeline_config, plugin_that_cannot_be_loaded) {
  const char *e = check("sources:\n"
                        "  - type: generator\n"
                        "operators:\n"
                        "  - type: plugin\n"
                        "    path: /nonexistent/libnothing.so\n"
                        "sinks:\n"
                        "  - type: stdout\n");

  cr_assert(strncmp(e, "p.yaml:5:11: operators[0].path: cannot load plugin: ", 52) == 0, "%s", e);
}

Test(pipeline_config, full_file_builds_the_job) {
  char dir[] = "/tmp/weir-pipeline-XXXXXX", yaml[2048], err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;
  int rc;

  cr_assert_not_null(mkdtemp(dir));
  snprintf(yaml, sizeof(yaml),
           "name: full\n"
           "parallelism: 2\n"
           "max_parallelism: 64\n"
           "buffer_timeout: 50ms\n"
           "batch: {records: 128, bytes: 64KiB}\n"
           "checkpoint:\n"
           "  dir: %s/ck\n"
           "  interval: 1m30s\n"
           "  mode: at_least_once\n"
           "  timeout: 2m\n"
           "  retained: 5\n"
           "sources:\n"
           "  - type: generator\n"
           "    name: gen\n"
           "    count: 10\n"
           "    keys: 3\n"
           "sinks:\n"
           "  - type: file\n"
           "    path: %s/out.txt\n"
           "    with_key: yes\n",
           dir, dir);
  rc = weir_pipeline_load_string(&p, "full.yaml", yaml, strlen(yaml), 0, err, sizeof(err));
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_str_eq(weir_pipeline_name(p), "full");
  cr_assert_not_null(weir_pipeline_checkpoint_dir(p));
  cr_assert_eq(weir_job_run(weir_pipeline_job(p)), 0, "%s", weir_job_error(weir_pipeline_job(p)));
  weir_pipeline_destroy(p);

  /* 10 records, keys k0..k2, written as key<TAB>value. */
  char path[512], line[256];
  int lines = 0, k1 = 0;
  FILE *f;

  snprintf(path, sizeof(path), "%s/out.txt", dir);
  cr_assert_not_null(f = fopen(path, "r"));
  while (fgets(line, sizeof(line), f) != NULL) {
    lines++;
    cr_assert(line[0] == 'k' && line[2] == '\t', "%s", line);
    k1 += line[1] == '1';
  }
  fclose(f);
  cr_assert_eq(lines, 10);
  cr_assert_eq(k1, 3); /* indices 1, 4, 7 */
}

Test(pipeline_config, default_job_name_is_the_file_name) {
  char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;

  cr_assert_eq(weir_pipeline_load_string(&p, "dir/clicks.yaml", minimal, strlen(minimal),
                                         WEIR_PIPELINE_VALIDATE_ONLY, err, sizeof(err)),
               0, "%s", err);
  cr_assert_str_eq(weir_pipeline_name(p), "clicks");
  cr_assert_null(weir_pipeline_checkpoint_dir(p));
  weir_pipeline_destroy(p);
}

Test(pipeline_config, validate_creates_nothing) {
  char err[WEIR_PIPELINE_ERR_MAX];
  const char *yaml = "sources:\n"
                     "  - type: generator\n"
                     "sinks:\n"
                     "  - type: file\n"
                     "    path: /tmp/weir-validate-must-not-create.txt\n";
  weir_pipeline *p = NULL;

  unlink("/tmp/weir-validate-must-not-create.txt");
  cr_assert_eq(weir_pipeline_load_string(&p, "p.yaml", yaml, strlen(yaml),
                                         WEIR_PIPELINE_VALIDATE_ONLY, err, sizeof(err)),
               0, "%s", err);
  weir_pipeline_destroy(p);
  cr_assert_eq(access("/tmp/weir-validate-must-not-create.txt", F_OK), -1);
}

Test(pipeline_config, missing_file) {
  char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;

  cr_assert_eq(weir_pipeline_load(&p, "/nonexistent/p.yaml", 0, err, sizeof(err)), WEIR_EIO);
  cr_assert_str_eq(err, "/nonexistent/p.yaml: cannot open: No such file or directory");
}

/* ---- the configuration tree's getters ------------------------------------------------------ */

static weir__cfg_doc *parse(const char *yaml) {
  weir__cfg_doc *doc = NULL;
  int rc = weir__cfg_parse(&doc, "t.yaml", yaml, strlen(yaml));

  cr_assert_eq(rc, 0, "%s", doc != NULL ? weir__cfg_doc_error(doc) : "ENOMEM");
  return doc;
}

Test(yaml_cfg, durations) {
  weir__cfg_doc *doc = parse("a: 250ms\nb: 10s\nc: 1m30s\nd: 2h\ne: 0\nf: 1d\n");
  weir__cfg *r = weir__cfg_root(doc);
  int64_t v;

  cr_assert_eq(weir__cfg_duration(r, "a", true, 0, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 250);
  cr_assert_eq(weir__cfg_duration(r, "b", true, 0, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 10000);
  cr_assert_eq(weir__cfg_duration(r, "c", true, 0, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 90000);
  cr_assert_eq(weir__cfg_duration(r, "d", true, 0, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 7200000);
  cr_assert_eq(weir__cfg_duration(r, "e", true, 5, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 0);
  cr_assert_eq(weir__cfg_duration(r, "f", true, 0, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 86400000);
  cr_assert_eq(weir__cfg_duration(r, "absent", false, 42, 0, INT64_MAX, &v), 0);
  cr_assert_eq(v, 42);
  cr_assert_eq(weir__cfg_check_unknown(r), 0);
  weir__cfg_doc_free(doc);
}

Test(yaml_cfg, sizes_and_bools) {
  weir__cfg_doc *doc = parse("a: 512\nb: 64KiB\nc: 1 MiB\nd: 2GB\ne: off\nf: True\n");
  weir__cfg *r = weir__cfg_root(doc);
  uint64_t v;
  bool b;

  cr_assert_eq(weir__cfg_size(r, "a", true, 0, 0, UINT64_MAX, &v), 0);
  cr_assert_eq(v, 512);
  cr_assert_eq(weir__cfg_size(r, "b", true, 0, 0, UINT64_MAX, &v), 0);
  cr_assert_eq(v, 65536);
  cr_assert_eq(weir__cfg_size(r, "c", true, 0, 0, UINT64_MAX, &v), 0);
  cr_assert_eq(v, 1048576);
  cr_assert_eq(weir__cfg_size(r, "d", true, 0, 0, UINT64_MAX, &v), 0);
  cr_assert_eq(v, 2000000000u);
  cr_assert_eq(weir__cfg_bool(r, "e", true, true, &b), 0);
  cr_assert_eq(b, false);
  cr_assert_eq(weir__cfg_bool(r, "f", true, false, &b), 0);
  cr_assert_eq(b, true);
  weir__cfg_doc_free(doc);
}

Test(yaml_cfg, literal_dollar_brace_and_aliases) {
  weir__cfg_doc *doc = parse("base: &b {x: 1}\nuse: *b\nlit: \"$${HOME}\"\n");
  weir__cfg *r = weir__cfg_root(doc), *use;
  const char *s;
  int64_t x;

  cr_assert_eq(weir__cfg_str(r, "lit", true, NULL, &s), 0);
  cr_assert_str_eq(s, "${HOME}");
  cr_assert_eq(weir__cfg_map(r, "use", true, &use), 0);
  cr_assert_eq(weir__cfg_int(use, "x", true, 0, 0, 10, &x), 0);
  cr_assert_eq(x, 1);
  cr_assert_str_eq(weir__cfg_path(weir__cfg_get(use, "x")), "use.x");
  weir__cfg_doc_free(doc);
}

Test(yaml_cfg, duplicate_key) {
  weir__cfg_doc *doc = NULL;

  cr_assert_eq(weir__cfg_parse(&doc, "t.yaml", "a: 1\nb: 2\na: 3\n", 15), WEIR_EPARSE);
  cr_assert_str_eq(weir__cfg_doc_error(doc),
                   "t.yaml:3:1: a: duplicate key (first at line 1) (hint: remove one of them)");
  weir__cfg_doc_free(doc);
}

Test(yaml_cfg, alias_bomb_is_bounded) {
  /* Each level doubles: 2^20 nodes once expanded. */
  char yaml[4096];
  size_t n = 0;

  n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "l0: &l0 [x, x]\n");
  for (int i = 1; i <= 20; i++)
    n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "l%d: &l%d [*l%d, *l%d]\n", i, i, i - 1,
                          i - 1);
  weir__cfg_doc *doc = NULL;
  cr_assert_eq(weir__cfg_parse(&doc, "t.yaml", yaml, n), WEIR_EPARSE);
  cr_assert_not_null(strstr(weir__cfg_doc_error(doc), "more than 20000 nodes"), "%s",
                     weir__cfg_doc_error(doc));
  weir__cfg_doc_free(doc);
}

Test(yaml_cfg, long_value_is_bounded) {
  size_t len = WEIR__CFG_MAX_SCALAR + 16;
  char *yaml = malloc(len + 8);
  weir__cfg_doc *doc = NULL;

  cr_assert_not_null(yaml);
  memcpy(yaml, "a: ", 3);
  memset(yaml + 3, 'v', len);
  yaml[3 + len] = '\n';
  cr_assert_eq(weir__cfg_parse(&doc, "t.yaml", yaml, len + 4), WEIR_EPARSE);
  cr_assert_str_eq(weir__cfg_doc_error(doc), "t.yaml:1:4: a: value longer than 65536 bytes");
  weir__cfg_doc_free(doc);
  free(yaml);
}
