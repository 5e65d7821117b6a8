/*
 * generator.c: the deterministic generator source. Record i is a pure function of i, so a job
 * restored from a snapshot (the next index) replays exactly what followed it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/job_int.h"
#include "weir/connectors.h"

/* Largest value a generator record may have (the value buffer of each subtask). */
#define WEIR_GEN_VALUE_MAX (64u << 10)
#define WEIR_GEN_DEFAULT_VALUE_LEN 100
#define WEIR_GEN_DEFAULT_PER_POLL 256
/* Splits one subtask may hold: the largest max parallelism (one split per old subtask). */
#define WEIR_MAX_PARALLELISM_BOUND 32768
/* Width of the decimal index that starts every default value. */
#define WEIR_GEN_INDEX_DIGITS 20

struct weir_generator {
  weir_generator_config cfg;
  uint64_t start;
};

/* A split: the indices next, next + stride, next + 2 * stride, ... Parallelism P starts with
 * one split per subtask (stride P); a restore at another parallelism deals old splits out. */
struct split {
  uint64_t stride;
  uint64_t next;
};

struct gen_inst {
  const weir_generator *gen;
  struct split *splits; /* n_splits, at most max_splits */
  size_t n_splits;
  size_t max_splits;
  bool restored;                     /* a restore replaced the initial split */
  uint8_t value[WEIR_GEN_VALUE_MAX]; /* default values: the index digits, then 'x' filler */
  uint64_t value_index;              /* the index value[] holds; UINT64_MAX = none yet */
  char key[24];
};

/* Snapshot format: version byte, u32 count, then count x (u64 stride, u64 next), little
 * endian. */
#define WEIR_GEN_STATE_VERSION 1

int weir_generator_create(weir_generator **genp, const weir_generator_config *cfg) {
  weir_generator *g;

  if (genp == NULL || cfg == NULL || cfg->value_len > WEIR_GEN_VALUE_MAX)
    return WEIR_EINVAL;
  if (cfg->fn == NULL && cfg->value_len != 0 && cfg->value_len < WEIR_GEN_INDEX_DIGITS)
    return WEIR_EINVAL; /* the default value needs room for the index */
  if ((g = calloc(1, sizeof(*g))) == NULL)
    return WEIR_ENOMEM;
  g->cfg = *cfg;
  if (g->cfg.value_len == 0)
    g->cfg.value_len = WEIR_GEN_DEFAULT_VALUE_LEN;
  if (g->cfg.records_per_poll == 0)
    g->cfg.records_per_poll = WEIR_GEN_DEFAULT_PER_POLL;
  *genp = g;
  return 0;
}

void weir_generator_destroy(weir_generator *gen) {
  free(gen);
}

int weir_generator_set_start(weir_generator *gen, uint64_t offset) {
  if (gen == NULL)
    return WEIR_EINVAL;
  gen->start = offset;
  return 0;
}

/* First index >= from that subtask `sub` of `par` owns. */
static uint64_t first_owned(uint64_t from, uint64_t sub, uint64_t par) {
  uint64_t r = from % par;

  return from - r + sub + (r > sub ? par : 0);
}

static int gen_open(weir_ctx *ctx, void *data, void **inst) {
  const weir_generator *g = data;
  struct gen_inst *gi = calloc(1, sizeof(*gi));
  uint64_t par = (uint64_t)weir_ctx_parallelism(ctx);

  if (gi == NULL)
    return WEIR_ENOMEM;
  *inst = gi;
  gi->gen = g;
  /* A restore may deal this subtask up to max-parallelism splits. */
  gi->max_splits = WEIR_MAX_PARALLELISM_BOUND;
  if ((gi->splits = calloc(1, sizeof(*gi->splits))) == NULL)
    return WEIR_ENOMEM;
  gi->splits[0].stride = par;
  gi->splits[0].next = first_owned(g->start, (uint64_t)weir_ctx_subtask(ctx), par);
  gi->n_splits = 1;
  gi->value_index = UINT64_MAX;
  if (g->cfg.fn == NULL)
    memset(gi->value + WEIR_GEN_INDEX_DIGITS, 'x', g->cfg.value_len - WEIR_GEN_INDEX_DIGITS);
  return 0;
}

static void write_index(uint8_t *p, uint64_t v) {
  int i;

  for (i = WEIR_GEN_INDEX_DIGITS - 1; i >= 0; i--) {
    p[i] = (uint8_t)('0' + v % 10);
    v /= 10;
  }
}

/* The default value of index i in gi->value: the filler was written at open, and the digits of
 * the next index in a split of stride 1 are an increment of the last ones (twenty divisions
 * per record were a visible share of a generator -> sink job). */
static void default_value(struct gen_inst *gi, uint64_t i) {
  if (gi->value_index != UINT64_MAX && i == gi->value_index + 1) {
    int d = WEIR_GEN_INDEX_DIGITS - 1;

    while (d >= 0 && gi->value[d] == '9')
      gi->value[d--] = '0';
    if (d >= 0)
      gi->value[d]++;
    else
      write_index(gi->value, i); /* wrapped past twenty digits: cannot happen for a uint64 */
  } else {
    write_index(gi->value, i);
  }
  gi->value_index = i;
}

static int gen_poll(weir_ctx *ctx, void *inst) {
  struct gen_inst *gi = inst;
  const weir_generator_config *cfg = &gi->gen->cfg;
  uint32_t k;
  int rc;

  for (k = 0; k < cfg->records_per_poll; k++) {
    weir_record r = weir_record_init();
    struct split *sp = NULL;
    uint64_t i;
    size_t j;

    /* The split with the lowest next index: emission stays in index order. */
    for (j = 0; j < gi->n_splits; j++)
      if (sp == NULL || gi->splits[j].next < sp->next)
        sp = &gi->splits[j];
    if (sp == NULL || (cfg->count != 0 && sp->next >= cfg->count))
      return WEIR_EOF;
    i = sp->next;
    if (cfg->fn != NULL) {
      long n = cfg->fn(cfg->fn_data, i, gi->value, sizeof(gi->value));

      if (n < 0) {
        weir_ctx_set_error(ctx, "value function failed at index %" PRIu64, i);
        return (int)n;
      }
      if ((size_t)n > sizeof(gi->value)) {
        weir_ctx_set_error(ctx,
                           "value function returned %ld bytes at index %" PRIu64
                           ", more than its buffer of %zu",
                           n, i, sizeof(gi->value));
        return WEIR_ETOOBIG;
      }
      r.value.len = (size_t)n;
    } else {
      default_value(gi, i);
      r.value.len = cfg->value_len;
    }
    r.value.ptr = gi->value;
    if (cfg->key_count != 0) {
      int n = snprintf(gi->key, sizeof(gi->key), "k%" PRIu64, i % cfg->key_count);

      r.key.ptr = (const uint8_t *)gi->key;
      r.key.len = (size_t)n;
    }
    if (cfg->ts_step != 0)
      r.timestamp = cfg->ts_start + (int64_t)i * cfg->ts_step;
    r.offset = i;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
    sp->next += sp->stride;
  }
  return 0;
}

static void put_u64(uint8_t *p, uint64_t v) {
  int i;

  for (i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  int i;

  for (i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static int gen_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  const struct gen_inst *gi = inst;
  uint8_t b[16];
  size_t j;
  int rc;

  (void)ctx;
  (void)ckpt_id;
  b[0] = WEIR_GEN_STATE_VERSION;
  b[1] = (uint8_t)gi->n_splits;
  b[2] = (uint8_t)(gi->n_splits >> 8);
  b[3] = (uint8_t)(gi->n_splits >> 16);
  b[4] = (uint8_t)(gi->n_splits >> 24);
  if ((rc = weir_snapshot_write(out, b, 5)) != 0)
    return rc;
  for (j = 0; j < gi->n_splits; j++) {
    put_u64(b, gi->splits[j].stride);
    put_u64(b + 8, gi->splits[j].next);
    if ((rc = weir_snapshot_write(out, b, 16)) != 0)
      return rc;
  }
  return 0;
}

/* Called once per part this subtask takes (see weir_operator.redistribute_state). */
static int gen_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  struct gen_inst *gi = inst;
  struct split *grown;
  uint32_t n;
  size_t j;

  if (!gi->restored) {
    gi->restored = true;
    gi->n_splits = 0;
  }
  if (state.len == 0)
    return 0; /* no part for this subtask: it emits nothing */
  if (state.len < 5 || state.ptr[0] != WEIR_GEN_STATE_VERSION) {
    weir_ctx_set_error(ctx, "generator snapshot: unknown format (%zu bytes, version %u)", state.len,
                       state.len ? state.ptr[0] : 0);
    return WEIR_EPARSE;
  }
  n = (uint32_t)state.ptr[1] | (uint32_t)state.ptr[2] << 8 | (uint32_t)state.ptr[3] << 16 |
      (uint32_t)state.ptr[4] << 24;
  if (state.len != 5 + (size_t)n * 16 || gi->n_splits + n > gi->max_splits) {
    weir_ctx_set_error(ctx, "generator snapshot: %u splits in %zu bytes (truncated or corrupt)", n,
                       state.len);
    return WEIR_EPARSE;
  }
  if ((grown = realloc(gi->splits, (gi->n_splits + n + 1) * sizeof(*grown))) == NULL)
    return WEIR_ENOMEM;
  gi->splits = grown;
  for (j = 0; j < n; j++) {
    struct split *sp = &gi->splits[gi->n_splits++];

    sp->stride = get_u64(state.ptr + 5 + 16 * j);
    sp->next = get_u64(state.ptr + 5 + 16 * j + 8);
    if (sp->stride == 0) {
      weir_ctx_set_error(ctx, "generator snapshot: split with stride 0");
      return WEIR_EPARSE;
    }
  }
  return 0;
}

static void gen_close(weir_ctx *ctx, void *inst) {
  struct gen_inst *gi = inst;

  (void)ctx;
  if (gi != NULL)
    free(gi->splits);
  free(gi);
}

int weir_job_add_generator(weir_job *job, const char *name, weir_generator *gen, int *id) {
  weir_operator op = {0};

  if (gen == NULL)
    return WEIR_EINVAL;
  op.open = gen_open;
  op.poll = gen_poll;
  op.snapshot = gen_snapshot;
  op.restore = gen_restore;
  op.close = gen_close;
  op.redistribute_state = true;
  return weir_job_add_source(job, name, &op, gen, id);
}
