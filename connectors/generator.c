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
/* Width of the decimal index that starts every default value. */
#define WEIR_GEN_INDEX_DIGITS 20

struct weir_generator {
  weir_generator_config cfg;
  uint64_t start;
};

struct gen_inst {
  const weir_generator *gen;
  uint64_t next; /* next index this subtask emits */
  uint64_t step; /* the parallelism */
  uint8_t value[WEIR_GEN_VALUE_MAX];
  char key[24];
};

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
  struct gen_inst *gi = malloc(sizeof(*gi));

  if (gi == NULL)
    return WEIR_ENOMEM;
  gi->gen = g;
  gi->step = (uint64_t)weir_ctx_parallelism(ctx);
  gi->next = first_owned(g->start, (uint64_t)weir_ctx_subtask(ctx), gi->step);
  *inst = gi;
  return 0;
}

static void write_index(uint8_t *p, uint64_t v) {
  int i;

  for (i = WEIR_GEN_INDEX_DIGITS - 1; i >= 0; i--) {
    p[i] = (uint8_t)('0' + v % 10);
    v /= 10;
  }
}

static int gen_poll(weir_ctx *ctx, void *inst) {
  struct gen_inst *gi = inst;
  const weir_generator_config *cfg = &gi->gen->cfg;
  uint32_t k;
  int rc;

  for (k = 0; k < cfg->records_per_poll; k++) {
    weir_record r = weir_record_init();
    uint64_t i = gi->next;

    if (cfg->count != 0 && i >= cfg->count)
      return WEIR_EOF;
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
      write_index(gi->value, i);
      memset(gi->value + WEIR_GEN_INDEX_DIGITS, 'x', cfg->value_len - WEIR_GEN_INDEX_DIGITS);
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
    gi->next += gi->step;
  }
  return 0;
}

static int gen_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  const struct gen_inst *gi = inst;
  uint8_t b[8];
  int i;

  (void)ctx;
  (void)ckpt_id;
  for (i = 0; i < 8; i++)
    b[i] = (uint8_t)(gi->next >> (8 * i));
  return weir_snapshot_write(out, b, sizeof(b));
}

static int gen_restore(weir_ctx *ctx, void *inst, weir_buf state) {
  struct gen_inst *gi = inst;
  uint64_t next = 0;
  int i;

  if (state.len != 8) {
    weir_ctx_set_error(ctx, "generator snapshot is %zu bytes, expected 8", state.len);
    return WEIR_EPARSE;
  }
  for (i = 0; i < 8; i++)
    next |= (uint64_t)state.ptr[i] << (8 * i);
  gi->next = first_owned(next, (uint64_t)weir_ctx_subtask(ctx), gi->step);
  return 0;
}

static void gen_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
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
  return weir_job_add_source(job, name, &op, gen, id);
}
