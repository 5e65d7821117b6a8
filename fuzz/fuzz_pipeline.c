/*
 * fuzz_pipeline.c: pipeline files (runtime/pipeline.c over runtime/yaml_cfg.c) loaded in
 * validation mode from arbitrary bytes: YAML syntax, aliases, interpolation, every getter.
 * Every outcome must be 0, or an error whose message starts with the file name and a
 * line:column. Inputs naming the `plugin` type are skipped: the fuzzer must not dlopen
 * arbitrary paths.
 */
#include <string.h>

#include "fuzz_common.h"
#include "weir/pipeline.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet();
  setenv("WEIR_FUZZ_VAR", "7", 1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[WEIR_PIPELINE_ERR_MAX];
  weir_pipeline *p = NULL;
  int rc;

  if (memmem(data, size, "plugin", 6) != NULL)
    return 0;
  rc = weir_pipeline_load_string(&p, "f.yaml", (const char *)data, size,
                                 WEIR_PIPELINE_VALIDATE_ONLY, err, sizeof(err));
  if (rc == 0) {
    if (p == NULL)
      abort();
    weir_pipeline_destroy(p);
    return 0;
  }
  if (p != NULL || err[0] == '\0' || strncmp(err, "f.yaml:", 7) != 0)
    abort();
  return 0;
}
