/*
 * wordcount: a complete weir job using only the public API.
 *
 *   generator (sentences) -> flat_map (split words) -> key_by (word) -> count x2 -> stdout
 *
 * The generator is deterministic, so the counts printed are the same on every run:
 * N sentences drawn round-robin from a small corpus. The count operator is a keyed, stateful
 * operator with two subtasks; key-hash partitioning sends each word to exactly one of them.
 * It prints "word<TAB>count" lines, sorted by nothing in particular, when the input ends.
 *
 * Build against an installed weir:  cc wordcount.c $(pkg-config --cflags --libs weir)
 * Run:  ./wordcount [sentences]      (default 100000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

static const char *const corpus[] = {
    "the quick brown fox jumps over the lazy dog",
    "a stream is a river of records that never ends",
    "the weir holds back the river and lets it through in batches",
    "every record is counted exactly once",
};
#define CORPUS_LEN (sizeof(corpus) / sizeof(corpus[0]))

/* Generator value function: sentence `index` of the corpus. */
static long sentence(void *data, uint64_t index, uint8_t *buf, size_t cap) {
  const char *s = corpus[index % CORPUS_LEN];
  size_t n = strlen(s);

  (void)data;
  if (n > cap)
    return WEIR_ETOOBIG;
  memcpy(buf, s, n);
  return (long)n;
}

/* flat_map: one record per space-separated word. */
static int split(weir_ctx *ctx, void *data, const weir_record *in) {
  const uint8_t *p = in->value.ptr, *end = p + in->value.len;
  int rc;

  (void)data;
  while (p < end) {
    const uint8_t *w = p;
    weir_record out = *in;

    while (p < end && *p != ' ')
      p++;
    if (p > w) {
      out.value.ptr = w;
      out.value.len = (size_t)(p - w);
      if ((rc = weir_emit(ctx, &out)) != 0)
        return rc;
    }
    p++;
  }
  return 0;
}

/* key_by: the word itself is the key. */
static int word_key(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  *key = in->value;
  return 0;
}

/* Keyed count: a small open-addressing table per subtask (words are short and few). */
#define TABLE_SLOTS 1024
#define WORD_MAX 32

struct counts {
  char words[TABLE_SLOTS][WORD_MAX];
  unsigned long n[TABLE_SLOTS];
};

static int count_open(weir_ctx *ctx, void *data, void **inst) {
  (void)ctx;
  (void)data;
  *inst = calloc(1, sizeof(struct counts));
  return *inst != NULL ? 0 : WEIR_ENOMEM;
}

static int count_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct counts *c = inst;
  size_t i;

  for (i = 0; i < n; i++) {
    const weir_buf *k = &recs[i].key;
    unsigned long h = 5381;
    size_t j, slot;

    if (k->len >= WORD_MAX) {
      weir_ctx_set_error(ctx, "word of %zu bytes is longer than %d", k->len, WORD_MAX - 1);
      return WEIR_ETOOBIG;
    }
    for (j = 0; j < k->len; j++)
      h = h * 33 + k->ptr[j];
    for (j = 0; j < TABLE_SLOTS; j++) {
      slot = (h + j) % TABLE_SLOTS;
      if (c->words[slot][0] == '\0') {
        memcpy(c->words[slot], k->ptr, k->len);
        break;
      }
      if (strlen(c->words[slot]) == k->len && memcmp(c->words[slot], k->ptr, k->len) == 0)
        break;
    }
    if (j == TABLE_SLOTS) {
      weir_ctx_set_error(ctx, "more than %d distinct words", TABLE_SLOTS);
      return WEIR_ETOOBIG;
    }
    c->n[slot]++;
  }
  return 0;
}

/* At end of input, emit one "word<TAB>count" record per word. */
static int count_finish(weir_ctx *ctx, void *inst) {
  struct counts *c = inst;
  char line[WORD_MAX + 32];
  size_t slot;
  int rc;

  for (slot = 0; slot < TABLE_SLOTS; slot++) {
    weir_record r = weir_record_init();
    int len;

    if (c->words[slot][0] == '\0')
      continue;
    len = snprintf(line, sizeof(line), "%s\t%lu", c->words[slot], c->n[slot]);
    r.value.ptr = (const uint8_t *)line;
    r.value.len = (size_t)len;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
  }
  return 0;
}

static void count_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

int main(int argc, char **argv) {
  weir_generator_config gcfg = {0};
  weir_file_sink_config scfg = {0};
  weir_operator count_op = {0};
  weir_generator *gen = NULL;
  weir_file_sink *out = NULL;
  weir_job *job = NULL;
  int src, words, keyed, counts, rc;

  gcfg.count = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
  gcfg.fn = sentence;
  count_op.open = count_open;
  count_op.process = count_process;
  count_op.finish = count_finish;
  count_op.close = count_close;

  if ((rc = weir_generator_create(&gen, &gcfg)) != 0 ||
      (rc = weir_file_sink_create(&out, &scfg)) != 0 ||
      (rc = weir_job_create(&job, "wordcount")) != 0)
    goto done;
  if ((rc = weir_job_add_generator(job, "sentences", gen, &src)) != 0 ||
      (rc = weir_job_flat_map(job, src, "split", split, NULL, &words)) != 0 ||
      (rc = weir_job_key_by(job, words, "by-word", word_key, NULL, &keyed)) != 0 ||
      (rc = weir_job_add_operator(job, keyed, "count", &count_op, NULL, &counts)) != 0 ||
      (rc = weir_job_set_parallelism(job, counts, 2)) != 0 ||
      (rc = weir_job_add_file_sink(job, counts, "stdout", out, NULL)) != 0)
    goto done;
  rc = weir_job_run(job);

done:
  if (rc != 0)
    fprintf(stderr, "wordcount: %s: %s\n", weir_strerror(rc), job ? weir_job_error(job) : "");
  weir_job_destroy(job);
  weir_file_sink_destroy(out);
  weir_generator_destroy(gen);
  return rc == 0 ? 0 : 1;
}
