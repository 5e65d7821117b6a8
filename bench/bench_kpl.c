/*
 * bench_kpl.c: KPL aggregate decoding (and encoding) throughput.
 *
 * Builds aggregates of 100-byte user records with 36-character partition keys (the KPL's usual
 * UUID keys), at the KPL's default AggregationMaxSize (51200) and at the 1 MiB Kinesis record
 * limit, then measures in the same run:
 *   weir      weir__kpl_decoder_open + next over every user record (MD5 check included),
 *   memcpy    copying the same bytes once (the floor for touching them),
 *   md5       the MD5 trailer check alone (every KCL-compatible decoder must do it),
 *   pbc       protobuf-c unpack + free of the same bodies (no MD5),
 *   pbc+md5   what a decoder built on protobuf-c would cost,
 * printing MB/s of Kinesis record data, user records/s, and ratios to the baselines.
 *
 * Usage: bench_kpl [total MiB per pass, default 64]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/kinesis/kpl_int.h"
#include "proto/kpl.pb-c.h"
#include "weir/record.h"

#define USER_RECORD_BYTES 100
#define PASSES 9

struct corpus {
  uint8_t **agg; /* aggregates (Kinesis record data) */
  size_t *len;
  size_t n;
  size_t bytes;
  size_t records;
};

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

/* Distinct user records cycled through while building (keys repeat only across aggregates). */
#define POOL 8192

/* Fills `total` bytes worth of aggregates of at most max_size; *enc_s is the time spent in the
 * aggregator. Returns 0 or a WEIR_E* code. */
static int build(struct corpus *c, size_t max_size, size_t total, double *enc_s) {
  struct weir_kpl_agg_config cfg = {max_size, 0, WEIR_KPL_AGG_STYLE_KPL};
  struct weir_kpl_aggregator *a = NULL;
  struct weir_kpl_agg_result res;
  static uint8_t data[POOL][USER_RECORD_BYTES];
  static char pk[POOL][40];
  size_t cap = total / (max_size / 2) + 16, i = 0;
  double t0;
  int rc;

  memset(c, 0, sizeof(*c));
  c->agg = calloc(cap, sizeof(*c->agg));
  c->len = calloc(cap, sizeof(*c->len));
  if (c->agg == NULL || c->len == NULL)
    return WEIR_ENOMEM;
  if ((rc = weir__kpl_agg_new(&a, &cfg)) != 0)
    return rc;
  for (size_t k = 0; k < POOL; k++) {
    for (size_t j = 0; j < USER_RECORD_BYTES; j++)
      data[k][j] = (uint8_t)rnd();
    snprintf(pk[k], sizeof(pk[k]), "%08x-%04x-%04x-%04x-%012llx", (unsigned)rnd(),
             (unsigned)rnd() & 0xFFFF, (unsigned)rnd() & 0xFFFF, (unsigned)rnd() & 0xFFFF,
             (unsigned long long)(rnd() & 0xFFFFFFFFFFFFull));
  }
  t0 = now();
  while (c->bytes < total && c->n < cap) {
    weir_buf d = {data[i % POOL], USER_RECORD_BYTES};

    rc = weir__kpl_agg_add(a, weir_buf_str(pk[i % POOL]), NULL, d);
    if (rc == WEIR_EAGAIN) {
      size_t size = weir__kpl_agg_size(a);
      uint8_t *out = malloc(size);

      if (out == NULL || (rc = weir__kpl_agg_finish(a, out, size, &res)) != 0) {
        free(out);
        rc = rc ? rc : WEIR_ENOMEM;
        break;
      }
      c->agg[c->n] = out;
      c->len[c->n++] = res.len;
      c->bytes += res.len;
      c->records += res.count;
      weir__kpl_agg_reset(a);
      continue;
    }
    if (rc != 0)
      break;
    i++;
  }
  *enc_s = now() - t0;
  weir__kpl_agg_free(a);
  return rc;
}

static void corpus_free(struct corpus *c) {
  for (size_t i = 0; i < c->n; i++)
    free(c->agg[i]);
  free(c->agg);
  free(c->len);
}

/* Sink for computed values, so that the compiler keeps the work. */
static volatile uint64_t sink;

static double run_weir(const struct corpus *c, struct weir_kpl_decoder *d, size_t *records) {
  struct weir_kpl_input in;
  struct weir_kpl_user_record r;
  enum weir_kpl_kind kind;
  uint64_t acc = 0;
  double t0 = now();

  memset(&in, 0, sizeof(in));
  in.partition_key = weir_buf_str("a");
  in.sequence_number = weir_buf_str("49545115243490985018280067714973144582180062593244200961");
  *records = 0;
  for (size_t i = 0; i < c->n; i++) {
    in.data.ptr = c->agg[i];
    in.data.len = c->len[i];
    if (weir__kpl_decoder_open(d, &in, NULL, &kind) != 0 || kind != WEIR_KPL_AGGREGATE)
      return -1;
    while (weir__kpl_decoder_next(d, &r) == 0) {
      acc += r.data.len + r.partition_key.len + r.data.ptr[0];
      (*records)++;
    }
  }
  sink = acc;
  return now() - t0;
}

static double run_memcpy(const struct corpus *c, uint8_t *scratch) {
  double t0 = now();

  for (size_t i = 0; i < c->n; i++) {
    memcpy(scratch, c->agg[i], c->len[i]);
    sink += scratch[c->len[i] - 1];
  }
  return now() - t0;
}

static double run_md5(const struct corpus *c, struct weir_kpl_md5 *h) {
  uint8_t md[WEIR_KPL_DIGEST_LEN];
  double t0 = now();

  for (size_t i = 0; i < c->n; i++) {
    if (weir__kpl_md5(h, c->agg[i] + WEIR_KPL_MAGIC_LEN, c->len[i] - WEIR_KPL_OVERHEAD, md) != 0)
      return -1;
    sink += md[0];
  }
  return now() - t0;
}

static double run_pbc(const struct corpus *c, struct weir_kpl_md5 *h, size_t *records) {
  uint8_t md[WEIR_KPL_DIGEST_LEN];
  double t0 = now();

  *records = 0;
  for (size_t i = 0; i < c->n; i++) {
    Weir__Kpl__AggregatedRecord *ar;
    uint64_t acc = 0;

    if (h != NULL &&
        weir__kpl_md5(h, c->agg[i] + WEIR_KPL_MAGIC_LEN, c->len[i] - WEIR_KPL_OVERHEAD, md) != 0)
      return -1;
    ar = weir__kpl__aggregated_record__unpack(NULL, c->len[i] - WEIR_KPL_OVERHEAD,
                                              c->agg[i] + WEIR_KPL_MAGIC_LEN);
    if (ar == NULL)
      return -1;
    for (size_t k = 0; k < ar->n_records; k++)
      acc += ar->records[k]->data.len + ar->records[k]->data.data[0];
    *records += ar->n_records;
    weir__kpl__aggregated_record__free_unpacked(ar, NULL);
    sink += acc;
  }
  return now() - t0;
}

static double best(double a, double b) {
  return a < 0 ? b : (b < a ? b : a);
}

static int bench(size_t max_size, size_t total) {
  struct corpus c;
  struct weir_kpl_decoder *d = NULL;
  struct weir_kpl_md5 h = {NULL, NULL};
  double t_weir = -1, t_memcpy = -1, t_md5 = -1, t_pbc = -1, t_pbc_md5 = -1, enc_s, t;
  size_t recs = 0, pbc_recs = 0;
  uint8_t *scratch = malloc(max_size);
  double mb, mrec;
  int rc = build(&c, max_size, total, &enc_s);

  if (rc != 0 || scratch == NULL || weir__kpl_decoder_new(&d, 0) != 0 ||
      weir__kpl_md5_init(&h) != 0) {
    fprintf(stderr, "bench_kpl: setup failed (%s)\n", weir_strerror(rc ? rc : WEIR_ENOMEM));
    rc = 1;
    goto out;
  }
  for (int pass = 0; pass < PASSES; pass++) {
    if ((t = run_weir(&c, d, &recs)) < 0 || recs != c.records)
      goto broken;
    t_weir = best(t_weir, t);
    t_memcpy = best(t_memcpy, run_memcpy(&c, scratch));
    if ((t = run_md5(&c, &h)) < 0)
      goto broken;
    t_md5 = best(t_md5, t);
    if ((t = run_pbc(&c, NULL, &pbc_recs)) < 0 || pbc_recs != c.records)
      goto broken;
    t_pbc = best(t_pbc, t);
    if ((t = run_pbc(&c, &h, &pbc_recs)) < 0)
      goto broken;
    t_pbc_md5 = best(t_pbc_md5, t);
  }
  mb = (double)c.bytes / 1e6;
  mrec = (double)c.records / 1e6;
  printf("\naggregates of <= %zu bytes: %zu aggregates, %.1f MB, %zu user records of %d bytes "
         "(%.0f per aggregate); best of %d passes\n",
         max_size, c.n, mb, c.records, USER_RECORD_BYTES, (double)c.records / (double)c.n, PASSES);
  printf("  %-26s %10s %14s\n", "", "MB/s", "records/s");
  printf("  %-26s %10.0f %14.0f\n", "weir decode (MD5 + parse)", mb / t_weir, mrec * 1e6 / t_weir);
  printf("  %-26s %10.0f %14s\n", "baseline memcpy", mb / t_memcpy, "-");
  printf("  %-26s %10.0f %14s\n", "baseline MD5 only", mb / t_md5, "-");
  printf("  %-26s %10.0f %14.0f\n", "baseline protobuf-c unpack", mb / t_pbc, mrec * 1e6 / t_pbc);
  printf("  %-26s %10.0f %14.0f\n", "baseline protobuf-c + MD5", mb / t_pbc_md5,
         mrec * 1e6 / t_pbc_md5);
  printf("  %-26s %10.0f %14.0f\n", "weir encode (add+finish)", mb / enc_s, mrec * 1e6 / enc_s);
  printf("  ratios: weir/memcpy %.2f, weir/MD5-only %.2f, weir/protobuf-c %.2f, "
         "weir/(protobuf-c+MD5) %.2f (time ratios inverted: >1 means weir is faster)\n",
         t_memcpy / t_weir, t_md5 / t_weir, t_pbc / t_weir, t_pbc_md5 / t_weir);
  if (t_weir > t_md5)
    printf("  weir parse cost beyond MD5: %.1f ns per user record\n",
           (t_weir - t_md5) * 1e9 / (double)c.records);
  else
    printf("  weir parse cost beyond MD5: within this run's noise\n");
  rc = 0;
  goto out;
broken:
  fprintf(stderr, "bench_kpl: a decoder disagreed with the corpus\n");
  rc = 1;
out:
  weir__kpl_md5_cleanup(&h);
  weir__kpl_decoder_free(d);
  free(scratch);
  corpus_free(&c);
  return rc;
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 64;

  if (mib == 0)
    mib = 64;
  printf("bench_kpl: KPL aggregate decoding, %zu MiB of Kinesis record data per pass\n", mib);
  if (bench(51200, mib << 20) != 0 || bench(WEIR_KPL_KINESIS_RECORD_MAX, mib << 20) != 0)
    return 1;
  return 0;
}
