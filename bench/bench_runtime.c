/*
 * bench_runtime: records/s of the weir runtime against bare baselines measured in the same run.
 *
 *   chained   source -> map -> filter -> sink, all in one task (one thread)
 *   one hop   source => map -> filter -> sink: one rebalance channel between two threads
 *   shuffle   source x2 -> key_by x2 => (key hash) => map x2 -> filter x2 -> sink x2
 *
 * Baselines, in the same process and interleaved with the weir runs:
 *   bare loop  the same map and filter functions called per record through function pointers,
 *              the map writing into one reused buffer, no runtime
 *   bare ring  two threads and a bounded ring of batch pointers under a mutex and condition
 *              variables; the producer copies the same records into 512-record batches, the
 *              consumer runs the same map and filter
 *
 * Every run feeds the same 100-byte records (a precomputed pool, cycled) through the same map
 * (an ASCII upper-casing copy) and filter (keeps 3 of 4), and checks that the number of records
 * reaching the sink is exactly what the filter must keep. Exits 1 when a count is wrong or a
 * job fails; a missed target is reported, not an error.
 *
 * Run:  bench_runtime [scale]   (scale multiplies the record counts; at 1 each run takes about
 *                                0.5 s on a 2-core VM: 60 M records for the bare loop, 40 M for
 *                                the bare ring, 20 M for each weir run)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

/* Only to check, from the main thread between start and wait, that each job was planned with
 * the intended number of threads and channels. The measured work uses the public API only. */
#include "runtime/task_int.h"

#define VALUE_LEN 100
#define POOL_RECORDS 1024 /* distinct records, cycled; a power of two */
#define TAG_POS 20        /* value[TAG_POS] = 'a' + index % 4; the filter drops tag 'D' */
#define KEY_POS 12        /* shuffle key: the last 8 digits of the 20-digit pool index */
#define KEY_LEN 8
#define SRC_PER_POLL 256  /* records per source poll, as the built-in generator */
#define BATCH_RECORDS 512 /* weir's default batch size, used by the bare ring too */
#define RING_CAP 8        /* weir's default channel capacity, used by the bare ring too */
#define RING_SPARE 2      /* batches beyond the ring, as weir's channels */
#define REPEATS 3
#define MAX_SUBTASKS 2
/* Records per run at scale 1, chosen so each run takes about 0.5 s on a 2-core VM. */
#define LOOP_RECORDS 60000000.0
#define CHAINED_RECORDS 20000000.0
#define RING_RECORDS 40000000.0
#define HOP_RECORDS 20000000.0
#define SHUFFLE_RECORDS 20000000.0

/* ---- records, map and filter (shared by every run) --------------------------------------- */

static uint8_t pool[POOL_RECORDS * VALUE_LEN];

static const uint8_t *pool_value(uint64_t i) {
  return &pool[(i & (POOL_RECORDS - 1)) * VALUE_LEN];
}

/* Record j: its index as 20 digits, a tag letter ('a' + j % 4), then pseudo-random lowercase
 * letters. */
static void build_pool(void) {
  uint32_t lcg = 12345;
  size_t j, k;

  for (j = 0; j < POOL_RECORDS; j++) {
    uint8_t *v = &pool[j * VALUE_LEN];
    uint64_t x = j;

    for (k = TAG_POS; k-- > 0; x /= 10)
      v[k] = (uint8_t)('0' + x % 10);
    v[TAG_POS] = (uint8_t)('a' + j % 4);
    for (k = TAG_POS + 1; k < VALUE_LEN; k++) {
      lcg = lcg * 1103515245u + 12345u;
      v[k] = (uint8_t)('a' + (lcg >> 16) % 26);
    }
  }
}

/* Records of [0, n) the filter keeps: every index with index % 4 != 3 (POOL_RECORDS % 4 == 0). */
static uint64_t expected_kept(uint64_t n) {
  return n - n / 4;
}

/* The map's work: copies the value into `buf`, upper-casing ASCII letters, and points
 * out->value at the copy. */
static int map_value(const weir_record *in, weir_record *out, uint8_t *buf) {
  const uint8_t *restrict src = in->value.ptr;
  uint8_t *restrict dst = buf;
  size_t i, len = in->value.len;

  /* Locals, so the compiler knows the stores into buf leave *in alone and vectorizes. */
  for (i = 0; i < len; i++) {
    uint8_t c = src[i];

    dst[i] = (uint8_t)(c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c);
  }
  out->value.ptr = buf;
  out->value.len = len;
  return 0;
}

/* The filter: drops the records whose (upper-cased) tag is 'D', one in four. Records that did
 * not go through the map carry a lowercase tag and all pass, which the count check catches. */
static int keep_record(void *data, const weir_record *in) {
  (void)data;
  return in->value.len > TAG_POS && in->value.ptr[TAG_POS] != 'D';
}

typedef int (*map_value_fn)(const weir_record *in, weir_record *out, uint8_t *buf);

/* Read through volatile so the bare loop makes real indirect calls, as the runtime does. */
static map_value_fn volatile bare_map = map_value;
static weir_filter_fn volatile bare_filter = keep_record;

/* ---- measurement -------------------------------------------------------------------------- */

struct sample {
  double wall_s;
  double cpu_s;
  double rate; /* input records per wall second */
};

struct clock_mark {
  struct timespec wall;
  double cpu_s;
};

static void clock_now(struct clock_mark *m) {
  struct rusage ru;

  clock_gettime(CLOCK_MONOTONIC, &m->wall);
  getrusage(RUSAGE_SELF, &ru);
  m->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static struct sample clock_since(const struct clock_mark *m0, uint64_t n) {
  struct clock_mark m1;
  struct sample s;

  clock_now(&m1);
  s.wall_s = (double)(m1.wall.tv_sec - m0->wall.tv_sec) +
             (double)(m1.wall.tv_nsec - m0->wall.tv_nsec) / 1e9;
  s.cpu_s = m1.cpu_s - m0->cpu_s;
  s.rate = (double)n / s.wall_s;
  return s;
}

/* ---- baseline (a): bare loop -------------------------------------------------------------- */

static int run_bare_loop(uint64_t n, uint64_t *kept, struct sample *s) {
  map_value_fn map = bare_map;
  weir_filter_fn filter = bare_filter;
  weir_record in = weir_record_init(), out = weir_record_init();
  uint8_t buf[VALUE_LEN];
  struct clock_mark m0;
  uint64_t i, count = 0;
  int rc;

  /* Field by field: copying a whole record right after storing parts of it stalls store
   * forwarding, which would slow the baseline down for nothing. */
  in.value.len = VALUE_LEN;
  clock_now(&m0);
  for (i = 0; i < n; i++) {
    in.value.ptr = pool_value(i);
    in.offset = out.offset = i;
    if ((rc = map(&in, &out, buf)) < 0)
      return rc;
    if ((rc = filter(NULL, &out)) < 0)
      return rc;
    count += rc > 0;
  }
  *s = clock_since(&m0, n);
  *kept = count;
  return 0;
}

/* ---- baseline (b): bare batched ring between two threads ---------------------------------- */

struct bare_batch {
  weir_record recs[BATCH_RECORDS];
  size_t len;
  uint8_t arena[BATCH_RECORDS * VALUE_LEN];
};

struct bare_ring {
  pthread_mutex_t mu;
  pthread_cond_t not_empty; /* the consumer waits here */
  pthread_cond_t not_full;  /* the producer waits here, for ring space or a free batch */
  struct bare_batch *ring[RING_CAP];
  size_t head;
  size_t len;
  struct bare_batch *free[RING_CAP + RING_SPARE];
  size_t n_free;
  bool done;
  uint64_t n;    /* records to produce */
  uint64_t kept; /* written by the consumer */
  int err;
};

static struct bare_batch *ring_acquire(struct bare_ring *r) {
  struct bare_batch *b;

  pthread_mutex_lock(&r->mu);
  while (r->n_free == 0)
    pthread_cond_wait(&r->not_full, &r->mu);
  b = r->free[--r->n_free];
  pthread_mutex_unlock(&r->mu);
  return b;
}

static void ring_push(struct bare_ring *r, struct bare_batch *b) {
  pthread_mutex_lock(&r->mu);
  while (r->len == RING_CAP)
    pthread_cond_wait(&r->not_full, &r->mu);
  if (b != NULL)
    r->ring[(r->head + r->len++) % RING_CAP] = b;
  else
    r->done = true;
  pthread_cond_signal(&r->not_empty);
  pthread_mutex_unlock(&r->mu);
}

/* NULL once the producer is done and the ring is drained. */
static struct bare_batch *ring_pop(struct bare_ring *r) {
  struct bare_batch *b = NULL;

  pthread_mutex_lock(&r->mu);
  while (r->len == 0 && !r->done)
    pthread_cond_wait(&r->not_empty, &r->mu);
  if (r->len > 0) {
    b = r->ring[r->head];
    r->head = (r->head + 1) % RING_CAP;
    r->len--;
    pthread_cond_signal(&r->not_full);
  }
  pthread_mutex_unlock(&r->mu);
  return b;
}

static void ring_release(struct bare_ring *r, struct bare_batch *b) {
  pthread_mutex_lock(&r->mu);
  b->len = 0;
  r->free[r->n_free++] = b;
  pthread_cond_signal(&r->not_full);
  pthread_mutex_unlock(&r->mu);
}

static void *ring_producer(void *arg) {
  struct bare_ring *r = arg;
  struct bare_batch *b = NULL;
  uint64_t i;

  for (i = 0; i < r->n; i++) {
    weir_record *rec;
    uint8_t *p;

    if (b == NULL)
      b = ring_acquire(r);
    rec = &b->recs[b->len];
    p = &b->arena[b->len * VALUE_LEN];
    memcpy(p, pool_value(i), VALUE_LEN);
    *rec = weir_record_init();
    rec->value.ptr = p;
    rec->value.len = VALUE_LEN;
    rec->offset = i;
    if (++b->len == BATCH_RECORDS) {
      ring_push(r, b);
      b = NULL;
    }
  }
  if (b != NULL)
    ring_push(r, b);
  ring_push(r, NULL);
  return NULL;
}

static void *ring_consumer(void *arg) {
  struct bare_ring *r = arg;
  map_value_fn map = bare_map;
  weir_filter_fn filter = bare_filter;
  uint8_t buf[VALUE_LEN];
  struct bare_batch *b;
  uint64_t count = 0;
  size_t i;
  int rc, err = 0;

  while ((b = ring_pop(r)) != NULL) {
    for (i = 0; i < b->len && err == 0; i++) {
      weir_record out = b->recs[i];

      if ((rc = map(&b->recs[i], &out, buf)) < 0 || (rc = filter(NULL, &out)) < 0)
        err = rc;
      count += rc > 0;
    }
    ring_release(r, b);
  }
  r->kept = count;
  r->err = err;
  return NULL;
}

static int run_bare_ring(uint64_t n, uint64_t *kept, struct sample *s) {
  struct bare_batch *batches = calloc(RING_CAP + RING_SPARE, sizeof(*batches));
  struct bare_ring *r = calloc(1, sizeof(*r));
  pthread_t prod, cons;
  struct clock_mark m0;
  size_t i;
  int rc = WEIR_ENOMEM;

  if (batches == NULL || r == NULL)
    goto done;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->not_empty, NULL);
  pthread_cond_init(&r->not_full, NULL);
  for (i = 0; i < RING_CAP + RING_SPARE; i++)
    r->free[r->n_free++] = &batches[i];
  r->n = n;
  clock_now(&m0);
  if (pthread_create(&cons, NULL, ring_consumer, r) != 0) {
    rc = WEIR_ESYS;
    goto destroy;
  }
  if (pthread_create(&prod, NULL, ring_producer, r) != 0) {
    ring_push(r, NULL); /* end the consumer */
    pthread_join(cons, NULL);
    rc = WEIR_ESYS;
    goto destroy;
  }
  pthread_join(prod, NULL);
  pthread_join(cons, NULL);
  *s = clock_since(&m0, n);
  *kept = r->kept;
  rc = r->err;

destroy:
  pthread_cond_destroy(&r->not_full);
  pthread_cond_destroy(&r->not_empty);
  pthread_mutex_destroy(&r->mu);
done:
  free(r);
  free(batches);
  return rc;
}

/* ---- weir: source, map, key, sink ---------------------------------------------------------- */

struct src_inst {
  uint64_t next;  /* next index this subtask emits */
  uint64_t step;  /* the parallelism */
  uint64_t count; /* records in total, over all subtasks */
};

/* Node data of the source: the total record count. Subtask s emits indices s, s + P, ... */
static int src_open(weir_ctx *ctx, void *data, void **inst) {
  struct src_inst *s = malloc(sizeof(*s));

  if (s == NULL)
    return WEIR_ENOMEM;
  s->next = (uint64_t)weir_ctx_subtask(ctx);
  s->step = (uint64_t)weir_ctx_parallelism(ctx);
  s->count = *(const uint64_t *)data;
  *inst = s;
  return 0;
}

static int src_poll(weir_ctx *ctx, void *inst) {
  struct src_inst *s = inst;
  weir_record r = weir_record_init();
  int k, rc;

  for (k = 0; k < SRC_PER_POLL; k++) {
    if (s->next >= s->count)
      return WEIR_EOF;
    r.value.ptr = pool_value(s->next);
    r.value.len = VALUE_LEN;
    r.offset = s->next;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
    s->next += s->step;
  }
  return 0;
}

static void src_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static int bench_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  uint8_t *buf = weir_ctx_scratch(ctx, in->value.len);

  (void)data;
  if (buf == NULL)
    return WEIR_ENOMEM;
  return map_value(in, out, buf);
}

static int bench_key(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  (void)ctx;
  (void)data;
  key->ptr = in->value.ptr + KEY_POS;
  key->len = KEY_LEN;
  return 0;
}

/* One counter per sink subtask, each on its own cache line; read after weir_job_wait. */
struct sink_counts {
  struct {
    _Alignas(64) uint64_t n;
  } sub[MAX_SUBTASKS];
};

static int count_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct sink_counts *c = data;

  (void)recs;
  c->sub[subtask].n += n;
  return 0;
}

enum topo { TOPO_CHAINED, TOPO_HOP, TOPO_SHUFFLE };

/* Checks the plan: tasks (threads) and channels the job runs with. Called between start and
 * wait: these fields are written before the task threads start and never after. */
static int check_plan(const weir_job *job, enum topo t) {
  static const size_t want_tasks[] = {1, 2, 4}, want_chans[] = {0, 1, 4};
  size_t i, chans = 0;

  for (i = 0; i < job->n_tasks; i++)
    chans += job->tasks[i]->has_gate ? job->tasks[i]->gate.n_chans : 0;
  if (job->n_tasks != want_tasks[t] || chans != want_chans[t]) {
    fprintf(stderr,
            "bench: job '%s' planned with %zu tasks and %zu channels, expected %zu and %zu\n",
            job->name, job->n_tasks, chans, want_tasks[t], want_chans[t]);
    return WEIR_EGRAPH;
  }
  return 0;
}

static int run_weir(enum topo t, uint64_t n, uint64_t *kept, struct sample *s) {
  static const char *const names[] = {"chained", "one-hop", "shuffle"};
  struct sink_counts counts;
  weir_operator src_op = {0};
  int par = t == TOPO_SHUFFLE ? 2 : 1;
  int src, up, map, filter, sink, i, rc;
  struct clock_mark m0;
  weir_job *job = NULL;

  memset(&counts, 0, sizeof(counts));
  src_op.open = src_open;
  src_op.poll = src_poll;
  src_op.close = src_close;
  if ((rc = weir_job_create(&job, names[t])) != 0 ||
      (rc = weir_job_add_source(job, "source", &src_op, &n, &src)) != 0 ||
      (rc = weir_job_set_parallelism(job, src, par)) != 0)
    goto done;
  up = src;
  if (t == TOPO_SHUFFLE && ((rc = weir_job_key_by(job, src, "key", bench_key, NULL, &up)) != 0 ||
                            (rc = weir_job_set_parallelism(job, up, par)) != 0))
    goto done;
  if ((rc = weir_job_map(job, up, "map", bench_map, NULL, &map)) != 0 ||
      (rc = weir_job_filter(job, map, "filter", keep_record, NULL, &filter)) != 0 ||
      (rc = weir_job_add_callback_sink(job, filter, "count", count_sink, &counts, &sink)) != 0 ||
      (rc = weir_job_set_parallelism(job, map, par)) != 0 ||
      (rc = weir_job_set_parallelism(job, filter, par)) != 0 ||
      (rc = weir_job_set_parallelism(job, sink, par)) != 0)
    goto done;
  if (t == TOPO_HOP && (rc = weir_job_set_partitioning(job, src, map, WEIR_PART_REBALANCE)) != 0)
    goto done;
  if (t == TOPO_SHUFFLE && (rc = weir_job_set_partitioning(job, up, map, WEIR_PART_HASH)) != 0)
    goto done;

  clock_now(&m0);
  if ((rc = weir_job_start(job)) != 0)
    goto done;
  if ((rc = check_plan(job, t)) != 0) {
    weir_job_cancel(job);
    weir_job_wait(job);
    goto done;
  }
  if ((rc = weir_job_wait(job)) != 0)
    goto done;
  *s = clock_since(&m0, n);
  *kept = 0;
  for (i = 0; i < par; i++)
    *kept += counts.sub[i].n;

done:
  if (rc != 0)
    fprintf(stderr, "bench: weir job '%s': %s: %s\n", names[t], weir_strerror(rc),
            job != NULL ? weir_job_error(job) : "");
  weir_job_destroy(job);
  return rc;
}

/* ---- driver ------------------------------------------------------------------------------- */

enum bench_id { B_LOOP, B_CHAINED, B_RING, B_HOP, B_SHUFFLE, N_BENCH };

struct bench {
  const char *name;
  uint64_t n;
  struct sample runs[REPEATS];
  double best;    /* records/s */
  double median;  /* records/s */
  double cpu_rec; /* least CPU seconds per record */
};

static void quiet_log(void *data, weir_log_level level, const char *msg) {
  (void)data;
  fprintf(stderr, "weir %s: %s\n", level == WEIR_LOG_ERROR ? "error" : "warn", msg);
}

static uint64_t record_count(double base, double scale) {
  uint64_t n = (uint64_t)(base * scale);

  return n > 0 ? n : 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

static int run_one(enum bench_id id, struct bench *b, int rep) {
  uint64_t kept = 0, want = expected_kept(b->n);
  struct sample *s = &b->runs[rep];
  int rc;

  switch (id) {
  case B_LOOP:
    rc = run_bare_loop(b->n, &kept, s);
    break;
  case B_RING:
    rc = run_bare_ring(b->n, &kept, s);
    break;
  case B_CHAINED:
    rc = run_weir(TOPO_CHAINED, b->n, &kept, s);
    break;
  case B_HOP:
    rc = run_weir(TOPO_HOP, b->n, &kept, s);
    break;
  default:
    rc = run_weir(TOPO_SHUFFLE, b->n, &kept, s);
    break;
  }
  if (rc != 0) {
    fprintf(stderr, "bench: %s failed: %s\n", b->name, weir_strerror(rc));
    return 1;
  }
  printf("%3d  %-10s %10" PRIu64 " %10" PRIu64 " %7.3f %7.3f %10.2f %10.1f\n", rep + 1, b->name,
         b->n, kept, s->wall_s, s->cpu_s, s->rate / 1e6, s->cpu_s / (double)b->n * 1e9);
  fflush(stdout);
  if (kept != want) {
    fprintf(stderr, "bench: %s: the sink saw %" PRIu64 " records, expected %" PRIu64 "\n", b->name,
            kept, want);
    return 1;
  }
  return 0;
}

static void summarize(struct bench *b) {
  double rates[REPEATS];
  int r;

  b->best = 0;
  b->cpu_rec = b->runs[0].cpu_s / (double)b->n;
  for (r = 0; r < REPEATS; r++) {
    rates[r] = b->runs[r].rate;
    if (rates[r] > b->best)
      b->best = rates[r];
    if (b->runs[r].cpu_s / (double)b->n < b->cpu_rec)
      b->cpu_rec = b->runs[r].cpu_s / (double)b->n;
  }
  qsort(rates, REPEATS, sizeof(rates[0]), cmp_double);
  b->median = rates[REPEATS / 2];
}

/* Prints one row; returns true unless a target is given and missed. */
static bool print_row(const struct bench *w, const struct bench *base, double target) {
  double ratio = w->best / base->best, med_ratio = w->median / base->median;
  double cpu_ratio = base->cpu_rec / w->cpu_rec;
  bool pass = target <= 0 || ratio >= target;
  char tgt[16];

  if (target > 0)
    snprintf(tgt, sizeof(tgt), ">= %.0f%%", target * 100);
  else
    snprintf(tgt, sizeof(tgt), "(info)");
  printf("%-10s %12.2f  %-10s %12.2f %7.1f%% %8.1f%% %8.1f%%  %-7s %s\n", w->name, w->best / 1e6,
         base->name, base->best / 1e6, ratio * 100, med_ratio * 100, cpu_ratio * 100, tgt,
         target > 0 ? (pass ? "PASS" : "MISS") : "-");
  return pass;
}

int main(int argc, char **argv) {
  struct bench b[N_BENCH] = {
      [B_LOOP] = {.name = "bare loop"},  [B_CHAINED] = {.name = "chained"},
      [B_RING] = {.name = "bare ring"},  [B_HOP] = {.name = "one hop"},
      [B_SHUFFLE] = {.name = "shuffle"},
  };
  double scale = 1.0;
  bool all_pass;
  int rep, i;

  if (argc > 1) {
    char *end;

    scale = strtod(argv[1], &end);
    if (*end != '\0' || !(scale > 0) || scale > 1000) {
      fprintf(stderr, "usage: %s [scale]   (scale > 0 multiplies the record counts)\n", argv[0]);
      return 2;
    }
  }
  b[B_LOOP].n = record_count(LOOP_RECORDS, scale);
  b[B_CHAINED].n = record_count(CHAINED_RECORDS, scale);
  b[B_RING].n = record_count(RING_RECORDS, scale);
  b[B_HOP].n = record_count(HOP_RECORDS, scale);
  b[B_SHUFFLE].n = record_count(SHUFFLE_RECORDS, scale);
  weir_log_set_handler(quiet_log, NULL, WEIR_LOG_WARN);
  build_pool();

  printf("weir %s runtime benchmark, %ld CPUs online\n", WEIR_VERSION_STRING,
         sysconf(_SC_NPROCESSORS_ONLN));
  printf(
      "records: %d-byte values cycled from a precomputed pool of %d, emitted by a custom source\n"
      "  (weir_job_add_source, %d records per poll), not the built-in generator\n",
      VALUE_LEN, POOL_RECORDS, SRC_PER_POLL);
  printf(
      "map: upper-casing copy of the value (weir: into weir_ctx_scratch; bare: a reused buffer)\n"
      "filter: keeps 3 of 4; sink: callback sink counting records (count checked every run)\n");
  printf("chained: source -> map -> filter -> sink, all forward: 1 task, no channel\n"
         "one hop: source =rebalance=> map -> filter -> sink: 2 tasks, 1 channel\n"
         "shuffle: source x2 -> key_by x2 =hash=> map x2 -> filter x2 -> sink x2: 4 tasks, "
         "4 channels\n  (key: %d bytes of the value; tasks and channels checked every run)\n",
         KEY_LEN);
  printf("weir: default batch (%d records, 1 MiB) and channel capacity (%d)\n"
         "bare ring: %d-record batches, ring of %d + %d spare batches, one mutex, two condvars\n",
         BATCH_RECORDS, RING_CAP, BATCH_RECORDS, RING_CAP, RING_SPARE);
  printf("records/s = input records / wall time (CLOCK_MONOTONIC, job start to wait); cpu = "
         "getrusage, all threads\n");
  printf(
      "%d repetitions, interleaved; the table reports the best run of each: ratio = best / best\n"
      "  (the target); for the noise: med ratio = median / median, cpu ratio = least baseline\n"
      "  cpu ns/rec / least weir cpu ns/rec\n\n",
      REPEATS);
  printf("%3s  %-10s %10s %10s %7s %7s %10s %10s\n", "rep", "name", "records", "kept", "wall s",
         "cpu s", "Mrecords/s", "cpu ns/rec");
  for (rep = 0; rep < REPEATS; rep++)
    for (i = 0; i < N_BENCH; i++)
      if (run_one((enum bench_id)i, &b[i], rep) != 0)
        return 1;
  for (i = 0; i < N_BENCH; i++)
    summarize(&b[i]);

  printf("\n%-10s %12s  %-10s %12s %8s %9s %9s  %-7s %s\n", "name", "Mrecords/s", "baseline",
         "Mrecords/s", "ratio", "med ratio", "cpu ratio", "target", "result");
  printf("%-10s %12.2f\n", b[B_LOOP].name, b[B_LOOP].best / 1e6);
  printf("%-10s %12.2f\n", b[B_RING].name, b[B_RING].best / 1e6);
  all_pass = print_row(&b[B_CHAINED], &b[B_LOOP], 0.25);
  all_pass &= print_row(&b[B_HOP], &b[B_RING], 0.50);
  print_row(&b[B_SHUFFLE], &b[B_RING], 0);
  printf("\ntargets: %s\n", all_pass ? "all met" : "MISSED");
  return 0;
}
