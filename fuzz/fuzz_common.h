/*
 * fuzz_common.h: shared bits of weir's libFuzzer targets (see docs/internals/testing.md).
 *
 * Each target is one file defining LLVMFuzzerTestOneInput; this header silences weir's logger
 * (parsers log every malformed input, which would drown the fuzzer's output and slow it) and
 * gives a check that aborts, so a broken invariant is reported as a crash.
 */
#ifndef WEIR_FUZZ_COMMON_H
#define WEIR_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "weir/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fuzz_log_drop(void *data, weir_log_level level, const char *msg) {
  (void)data;
  (void)level;
  (void)msg;
}

/* Call from LLVMFuzzerInitialize. */
static inline void fuzz_quiet(void) {
  weir_log_set_handler(fuzz_log_drop, NULL, WEIR_LOG_ERROR);
}

/* An invariant the code under test promises: a failure is a finding. */
#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond);                \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

/* True when [p, p+len) lies inside [base, base+cap). */
static inline int fuzz_within(const void *p, size_t len, const void *base, size_t cap) {
  const uint8_t *q = p, *b = base;
  return len == 0 || (q >= b && q <= b + cap && len <= (size_t)(b + cap - q));
}

#endif /* WEIR_FUZZ_COMMON_H */
