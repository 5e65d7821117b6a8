/*
 * bench_kinesis_parse.c: GetRecords response parsing throughput, in memory.
 *
 * Builds the largest GetRecords responses the service sends: 10000 records of 100 bytes (the
 * record-count limit, ~3 MB) and ~10 MiB of 10 KiB records (the size limit), with realistic
 * sequence numbers, partition keys and timestamps, then measures in the same run:
 *   weir      weir__kinesis_parse_get_records (in-place scan, base64 straight into the arena),
 *   memcpy    copying the response once (the floor for touching it),
 *   jansson   json_loadb + EVP_DecodeBlock per record (a JSON tree, then decoding),
 * printing MB/s of response text and records/s, and the ratios. Target: weir >= 200 MB/s.
 *
 * Then PutRecords responses (the sink parses one per 500 records sent): 500 result entries in
 * AWS's member order (SequenceNumber first), kinesalite's (ShardId first), and kinesis-local's
 * shape (explicit nulls, EncryptionType, 5% failed entries with ErrorCode/ErrorMessage), each
 * parsed by weir__kinesis_parse_put_records and copied by memcpy in the same run: MB/s, ns per
 * entry and weir/memcpy (best of 5 interleaved trials).
 *
 * Usage: bench_kinesis_parse [passes, default 20] [put (only the PutRecords section)]
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/kinesis/client_int.h"

#define RESPONSE_BYTES (10u << 20)

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A response of about RESPONSE_BYTES with records of `size` bytes each. */
static void build(struct weir_kjson *b, size_t size, size_t *n_out) {
  uint8_t *data = malloc(size);
  size_t n = 0;

  weir__kjson_reset(b);
  weir__kjson_lit(b, "{\"Records\":[");
  while (b->len + weir__b64_encoded_len(size) + 200 < RESPONSE_BYTES &&
         n < WEIR_KINESIS_GET_MAX_RECORDS) {
    char seq[80];
    for (size_t j = 0; j < size; j++)
      data[j] = (uint8_t)(n * 7 + j);
    snprintf(seq, sizeof(seq), "49680562552063787311762523139726802935426585458%09zu", n);
    weir__kjson_lit(b, n ? ",{\"SequenceNumber\":" : "{\"SequenceNumber\":");
    weir__kjson_cstr(b, seq);
    weir__kjson_lit(b, ",\"ApproximateArrivalTimestamp\":1.795637799113E9,\"Data\":");
    weir__kjson_b64(b, data, size);
    weir__kjson_lit(b, ",\"PartitionKey\":\"3f2b8c1e-6a4d-4e2f-9b7a-1c5d8e9f0a2b\"}");
    n++;
  }
  weir__kjson_lit(b, "],\"NextShardIterator\":\"AAAAAAAAAAHsW8zCWf9164uy8Epue6WS3w6wmj4a4USt+"
                     "CNvMd6uXQ+HL5vA\",\"MillisBehindLatest\":0}");
  free(data);
  *n_out = n;
}

static double bench_weir(const struct weir_kjson *b, int passes, struct weir_kinesis_records *r) {
  double t0 = now();

  for (int i = 0; i < passes; i++)
    if (weir__kinesis_parse_get_records((const uint8_t *)b->p, b->len, r) != 0) {
      fprintf(stderr, "parse failed\n");
      exit(1);
    }
  return now() - t0;
}

static double bench_memcpy(const struct weir_kjson *b, int passes, uint8_t *dst) {
  double t0 = now();

  for (int i = 0; i < passes; i++) {
    memcpy(dst, b->p, b->len);
    __asm__ __volatile__("" : : "r"(dst) : "memory");
  }
  return now() - t0;
}

static double bench_jansson(const struct weir_kjson *b, int passes, uint8_t *dst) {
  double t0 = now();

  for (int i = 0; i < passes; i++) {
    json_t *root = json_loadb(b->p, b->len, 0, NULL);
    json_t *recs = json_object_get(root, "Records");
    size_t pos = 0;
    for (size_t k = 0; k < json_array_size(recs); k++) {
      json_t *d = json_object_get(json_array_get(recs, k), "Data");
      int n = EVP_DecodeBlock(dst + pos, (const unsigned char *)json_string_value(d),
                              (int)json_string_length(d));
      pos += n > 0 ? (size_t)n : 0;
    }
    json_decref(root);
  }
  return now() - t0;
}

/* PutRecords response shapes. */
#define TRIALS 5
enum put_shape { PUT_AWS, PUT_KINESALITE, PUT_LOCAL };

static void build_put(struct weir_kjson *b, enum put_shape shape) {
  weir__kjson_reset(b);
  weir__kjson_lit(b, shape == PUT_LOCAL ? "{\"FailedRecordCount\":25,\"EncryptionType\":null,"
                                          "\"Records\":["
                                        : "{\"FailedRecordCount\":0,\"Records\":[");
  for (size_t i = 0; i < WEIR_KINESIS_PUT_MAX_RECORDS; i++) {
    char seq[80], shard[32];

    snprintf(seq, sizeof(seq), "49680562552063787311762523139726802935426585458%09zu", i * 37);
    snprintf(shard, sizeof(shard), "shardId-%012zu", i % 4);
    if (i > 0)
      weir__kjson_lit(b, ",");
    if (shape == PUT_AWS) {
      weir__kjson_lit(b, "{\"SequenceNumber\":");
      weir__kjson_cstr(b, seq);
      weir__kjson_lit(b, ",\"ShardId\":");
      weir__kjson_cstr(b, shard);
    } else if (shape == PUT_KINESALITE) {
      weir__kjson_lit(b, "{\"ShardId\":");
      weir__kjson_cstr(b, shard);
      weir__kjson_lit(b, ",\"SequenceNumber\":");
      weir__kjson_cstr(b, seq);
    } else if (i % 20 == 7) {
      weir__kjson_lit(b, "{\"SequenceNumber\":null,\"ShardId\":null,\"ErrorCode\":"
                         "\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate "
                         "exceeded for shard shardId-000000000001 in stream s under account "
                         "000000000000.\"");
    } else {
      weir__kjson_lit(b, "{\"SequenceNumber\":");
      weir__kjson_cstr(b, seq);
      weir__kjson_lit(b, ",\"ShardId\":");
      weir__kjson_cstr(b, shard);
      weir__kjson_lit(b, ",\"ErrorCode\":null,\"ErrorMessage\":null");
    }
    weir__kjson_lit(b, "}");
  }
  weir__kjson_lit(b, "]}");
}

static void bench_put(int passes) {
  static const char *const names[] = {"AWS order (SequenceNumber first)",
                                      "kinesalite order (ShardId first)",
                                      "kinesis-local (nulls, 5% failed)"};
  static struct weir_kinesis_put_result res[WEIR_KINESIS_PUT_MAX_RECORDS];
  const size_t n = WEIR_KINESIS_PUT_MAX_RECORDS;
  int reps = passes * 200; /* one response is ~55 KB: repeat to get a measurable time */
  struct weir_kjson b;
  uint8_t *dst = malloc(1u << 20);

  if (dst == NULL)
    exit(2);
  weir__kjson_init(&b, 1u << 20);
  printf("\nPutRecords response parsing, %d passes over one %zu-entry response in memory\n", reps,
         n);
  for (int s = PUT_AWS; s <= PUT_LOCAL; s++) {
    double t0, tw, tm, mb;
    size_t failed = 0;

    build_put(&b, (enum put_shape)s);
    if (b.err != 0 ||
        weir__kinesis_parse_put_records((const uint8_t *)b.p, b.len, res, n, &failed) != 0 ||
        failed != (s == PUT_LOCAL ? 25u : 0u)) {
      fprintf(stderr, "PutRecords parse failed (%s)\n", names[s]);
      exit(1);
    }
    mb = (double)b.len * reps / 1e6;
    /* The best of TRIALS interleaved trials of reps / TRIALS each: the machine is shared. */
    tw = tm = 1e9;
    for (int k = 0; k < TRIALS; k++) {
      t0 = now();
      for (int i = 0; i < reps / TRIALS; i++) {
        if (weir__kinesis_parse_put_records((const uint8_t *)b.p, b.len, res, n, &failed) != 0)
          exit(1);
        __asm__ __volatile__("" : : "r"(res) : "memory");
      }
      if (now() - t0 < tw)
        tw = now() - t0;
      t0 = now();
      for (int i = 0; i < reps / TRIALS; i++) {
        memcpy(dst, b.p, b.len);
        __asm__ __volatile__("" : : "r"(dst) : "memory");
      }
      if (now() - t0 < tm)
        tm = now() - t0;
    }
    tw *= TRIALS;
    tm *= TRIALS;
    printf("  %s, %.1f KB\n", names[s], (double)b.len / 1e3);
    printf("    weir    %8.0f MB/s  %7.1f ns/entry\n", mb / tw, tw * 1e9 / ((double)n * reps));
    printf("    memcpy  %8.0f MB/s  %7.1f ns/entry\n", mb / tm, tm * 1e9 / ((double)n * reps));
    printf("    weir/memcpy %.3f\n", tm / tw);
  }
  weir__kjson_free(&b);
  free(dst);
}

int main(int argc, char **argv) {
  int passes = argc > 1 ? atoi(argv[1]) : 20;
  const size_t sizes[] = {100, 10240};
  struct weir_kjson b;
  struct weir_kinesis_records r;
  uint8_t *dst = malloc(RESPONSE_BYTES + 64);

  if (passes <= 0 || dst == NULL)
    return 2;
  if (argc > 2 && strcmp(argv[2], "put") == 0) {
    bench_put(passes);
    free(dst);
    return 0;
  }
  weir__kjson_init(&b, RESPONSE_BYTES + 4096);
  weir__kinesis_records_init(&r);
  printf("GetRecords response parsing, %d passes over one response held in memory\n", passes);
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    size_t n;
    double tw, tm, tj, mb;
    build(&b, sizes[s], &n);
    mb = (double)b.len * passes / 1e6;
    bench_weir(&b, 1, &r); /* warm the arena */
    tw = bench_weir(&b, passes, &r);
    tm = bench_memcpy(&b, passes, dst);
    tj = bench_jansson(&b, passes, dst);
    printf("\n%zu records of %zu B (%.1f MB response)\n", n, sizes[s], (double)b.len / 1e6);
    printf("  weir     %8.0f MB/s  %10.0f records/s\n", mb / tw, (double)n * passes / tw);
    printf("  memcpy   %8.0f MB/s\n", mb / tm);
    printf("  jansson  %8.0f MB/s  %10.0f records/s\n", mb / tj, (double)n * passes / tj);
    printf("  weir/jansson speed %.2fx, weir/memcpy %.3f; target >= 200 MB/s: %s\n", tj / tw,
           tm / tw, mb / tw >= 200 ? "met" : "NOT met");
  }
  weir__kinesis_records_free(&r);
  weir__kjson_free(&b);
  free(dst);
  bench_put(passes);
  return 0;
}
