/*
 * replay_main.c: a main() for the fuzz targets outside libFuzzer. Runs LLVMFuzzerTestOneInput
 * once on every file given (or every file in a directory given), so the normal, ASan and TSan
 * builds replay the seed corpora (fuzz/corpus/<target>/) as ctest tests with any compiler.
 * A failing input aborts the process, as under the fuzzer.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

/* Larger than any seed; the fuzzers themselves run with -max_len=65536. */
#define REPLAY_MAX (1u << 20)

static int replay_file(const char *path, uint8_t *buf) {
  FILE *f = fopen(path, "rb");
  size_t n;

  if (f == NULL) {
    perror(path);
    return 1;
  }
  n = fread(buf, 1, REPLAY_MAX, f);
  fclose(f);
  /* A private copy of exactly n bytes, so ASan sees reads past the input. */
  uint8_t *copy = malloc(n > 0 ? n : 1);
  if (copy == NULL)
    return 1;
  memcpy(copy, buf, n);
  LLVMFuzzerTestOneInput(copy, n);
  free(copy);
  return 0;
}

int main(int argc, char **argv) {
  uint8_t *buf = malloc(REPLAY_MAX);
  int failed = 0, runs = 0;

  if (buf == NULL)
    return 1;
  LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      char path[4096];
      if (d == NULL) {
        perror(argv[i]);
        failed = 1;
        continue;
      }
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
          continue;
        snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
        failed |= replay_file(path, buf);
        runs++;
      }
      closedir(d);
    } else {
      failed |= replay_file(argv[i], buf);
      runs++;
    }
  }
  free(buf);
  printf("replayed %d input(s)\n", runs);
  return failed || runs == 0;
}
