/*
 * test_jobs.c: end-to-end tests of whole weir jobs, through the public API only: generator,
 * push and line sources; map, filter, key_by and custom operators; callback and file sinks.
 *
 * Every test checks exact outputs (each record exactly once, in the promised order, on the
 * promised subtask, with the promised bytes) or the exact failure (code and message).
 *
 * Callbacks run on weir's task threads, where Criterion's asserts must not be used: they report
 * problems with fault(), and the test thread asserts check_faults() after weir_job_wait (or
 * weir_job_destroy) has joined every task thread. No sleep stands in for synchronisation: a
 * test that needs the job to have reached some point polls a counter with a generous timeout
 * (wait_count). The only other sleeps are a deliberately slow sink, the spacing between
 * backpressure samples and the 1 ms step of those polls.
 * Sizes are small because the file also runs under ASan+UBSan and TSan.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <weir/weir.h>

/* Upper bound on any wait for the job to reach a state; only reached when something is broken. */
#define WAIT_MS 20000
/* Per-test timeout in seconds, so that a hang fails one test instead of the whole run. */
#define TEST_TIMEOUT 60
/* Largest parallelism any test uses for a node. */
#define MAX_SUB 4
/*
 * Batches a channel owns beyond its ring (one being filled, one being read): the channel's
 * pool bound (runtime/channel.c, WEIR_CHAN_SPARE_BATCHES). Used to derive in-flight bounds.
 */
#define SPARE_BATCHES 2

#define CHECK(call)                                                                                \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    cr_assert_eq(rc_, 0, "%s -> %s", #call, weir_err_name(rc_));                                   \
  } while (0)

#define ASSERT_CONTAINS(haystack, needle)                                                          \
  cr_assert(strstr((haystack), (needle)) != NULL, "'%s' does not contain '%s'", (haystack),        \
            (needle))

/* Job start and end are logged at INFO; keep the output to warnings and errors. */
static void quiet_logs(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
}

TestSuite(jobs, .init = quiet_logs);

/* ---- faults seen on task threads ---------------------------------------------------------- */

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_faults;
static char first_fault[512];

static void fault(const char *fmt, ...) WEIR_PRINTF(1, 2);

static void fault(const char *fmt, ...) {
  va_list ap;

  pthread_mutex_lock(&fault_mu);
  if (n_faults++ == 0) {
    va_start(ap, fmt);
    vsnprintf(first_fault, sizeof(first_fault), fmt, ap);
    va_end(ap);
  }
  pthread_mutex_unlock(&fault_mu);
}

static void check_faults(void) {
  char msg[sizeof(first_fault)];
  int n;

  pthread_mutex_lock(&fault_mu);
  n = n_faults;
  memcpy(msg, first_fault, sizeof(msg));
  pthread_mutex_unlock(&fault_mu);
  cr_assert_eq(n, 0, "%d fault(s) on task threads; first: %s", n, msg);
}

/* ---- time and waiting --------------------------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

/* Polls until *c >= target. Returns false after timeout_ms. */
static bool wait_count(atomic_ullong *c, unsigned long long target, int64_t timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;

  while (atomic_load(c) < target) {
    if (now_ms() > deadline)
      return false;
    sleep_ms(1);
  }
  return true;
}

/*
 * Stops (or cancels) a job from its own thread once up to two counters reached their targets,
 * while the test thread sits in weir_job_wait. It acts even on timeout so that no test hangs;
 * `reached` says whether the targets were met.
 */
struct stopper {
  weir_job *job;
  atomic_ullong *counter;
  unsigned long long target;
  atomic_ullong *counter2; /* optional */
  unsigned long long target2;
  bool cancel;
  bool reached;
  pthread_t thread;
};

static void *stopper_main(void *arg) {
  struct stopper *s = arg;

  s->reached = wait_count(s->counter, s->target, WAIT_MS) &&
               (s->counter2 == NULL || wait_count(s->counter2, s->target2, WAIT_MS));
  if (s->cancel)
    weir_job_cancel(s->job);
  else
    weir_job_stop(s->job);
  return NULL;
}

/* Starts `job`, has the stopper act on it, and returns weir_job_wait's result. */
static int run_with_stopper(weir_job *job, struct stopper *s) {
  int rc;

  s->job = job;
  CHECK(weir_job_start(job));
  cr_assert_eq(pthread_create(&s->thread, NULL, stopper_main, s), 0);
  rc = weir_job_wait(job);
  cr_assert_eq(pthread_join(s->thread, NULL), 0);
  cr_assert(s->reached, "the job never reached the stop condition (wait returned %s: %s)",
            weir_err_name(rc), weir_job_error(job));
  return rc;
}

/* ---- building blocks ---------------------------------------------------------------------- */

static weir_job *job_new(const char *name) {
  weir_job *job = NULL;

  CHECK(weir_job_create(&job, name));
  return job;
}

/* A generator with the default value function ("<index as 20 digits>" padded with 'x'). */
static weir_generator *gen_new(uint64_t count, uint32_t key_count, uint32_t per_poll) {
  weir_generator_config cfg = {0};
  weir_generator *gen = NULL;

  cfg.count = count;
  cfg.key_count = key_count;
  cfg.records_per_poll = per_poll;
  CHECK(weir_generator_create(&gen, &cfg));
  return gen;
}

static bool buf_eq(weir_buf b, const char *s) {
  size_t n = strlen(s);

  return b.len == n && (n == 0 || memcmp(b.ptr, s, n) == 0);
}

/* Parses "<prefix><decimal>" into its number; -1 when the key has another form. */
static long parse_key(weir_buf key, char prefix) {
  long v = 0;
  size_t i;

  if (key.len < 2 || key.len > 10 || key.ptr[0] != (uint8_t)prefix)
    return -1;
  for (i = 1; i < key.len; i++) {
    if (!isdigit(key.ptr[i]))
      return -1;
    v = v * 10 + (key.ptr[i] - '0');
  }
  return v;
}

/* map: counts the records passing through into the atomic_ullong given as data. */
static int count_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  (void)ctx;
  (void)in;
  (void)out;
  atomic_fetch_add((atomic_ullong *)data, 1);
  return 0;
}

/* ---- collecting sink: how often each offset reached each sink subtask ---------------------- */

struct collect {
  uint64_t n;        /* offsets tracked: 0 .. n-1 */
  atomic_uint *seen; /* delivery count of offset o at subtask s: seen[s * n + o] */
  atomic_ullong total;
  atomic_ullong per_sub[MAX_SUB];
};

static void collect_init(struct collect *c, uint64_t n) {
  uint64_t i;

  memset(c, 0, sizeof(*c));
  c->n = n;
  c->seen = malloc(MAX_SUB * n * sizeof(*c->seen));
  cr_assert_not_null(c->seen);
  for (i = 0; i < MAX_SUB * n; i++)
    atomic_init(&c->seen[i], 0);
}

static void collect_free(struct collect *c) {
  free(c->seen);
  c->seen = NULL;
}

static void collect_record(struct collect *c, int subtask, const weir_record *r) {
  if (subtask < 0 || subtask >= MAX_SUB || r->offset >= c->n) {
    fault("record offset %" PRIu64 " at sink subtask %d is out of range", r->offset, subtask);
    return;
  }
  atomic_fetch_add(&c->seen[(uint64_t)subtask * c->n + r->offset], 1);
  atomic_fetch_add(&c->total, 1);
  atomic_fetch_add(&c->per_sub[subtask], 1);
}

static int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    collect_record(data, subtask, &recs[i]);
  return 0;
}

static unsigned seen_at(struct collect *c, int subtask, uint64_t off) {
  return atomic_load(&c->seen[(uint64_t)subtask * c->n + off]);
}

static unsigned seen_any(struct collect *c, uint64_t off) {
  unsigned sum = 0;
  int s;

  for (s = 0; s < MAX_SUB; s++)
    sum += seen_at(c, s, off);
  return sum;
}

/* ---- lifecycle-counting operator ---------------------------------------------------------- */

/* Node data of a life operator: how many subtasks opened and closed, and records seen. */
struct life {
  atomic_int opens;
  atomic_int closes;
  atomic_ullong records;
};

static int life_open(weir_ctx *ctx, void *data, void **inst) {
  (void)ctx;
  (void)inst;
  atomic_fetch_add(&((struct life *)data)->opens, 1);
  return 0;
}

static void life_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  atomic_fetch_add(&((struct life *)inst)->closes, 1);
}

static int life_pass(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    atomic_fetch_add(&((struct life *)inst)->records, 1); /* counted before it is emitted */
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  }
  return 0;
}

static int life_sink(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  (void)ctx;
  (void)recs;
  atomic_fetch_add(&((struct life *)inst)->records, n);
  return 0;
}

static weir_operator life_op(bool sink) {
  weir_operator op = {0};

  op.open = life_open;
  op.process = sink ? life_sink : life_pass;
  op.close = life_close;
  return op;
}

static void assert_life(struct life *l, int instances, const char *what) {
  cr_assert_eq(atomic_load(&l->opens), instances, "%s: %d opens, expected %d", what,
               atomic_load(&l->opens), instances);
  cr_assert_eq(atomic_load(&l->closes), instances, "%s: %d closes for %d opens", what,
               atomic_load(&l->closes), instances);
}

/* ---- generator -> map -> filter -> callback sink ------------------------------------------ */

#define PIPE_N 3000
#define PIPE_VLEN 32
#define PIPE_KEYS 7
#define PIPE_TS0 1000
#define PIPE_TS_STEP 10

static int upper_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  uint8_t *p = weir_ctx_scratch(ctx, in->value.len);
  size_t i;

  (void)data;
  if (p == NULL) {
    weir_ctx_set_error(ctx, "no scratch memory for %zu bytes", in->value.len);
    return WEIR_ENOMEM;
  }
  for (i = 0; i < in->value.len; i++)
    p[i] = (uint8_t)toupper(in->value.ptr[i]);
  out->value.ptr = p;
  return 0;
}

static int keep_even(void *data, const weir_record *in) {
  (void)data;
  return in->offset % 2 == 0;
}

static int pipeline_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    char want[PIPE_VLEN + 1], key[24];

    snprintf(want, sizeof(want), "%020" PRIu64, r->offset);
    memset(want + 20, 'X', PIPE_VLEN - 20);
    want[PIPE_VLEN] = '\0';
    snprintf(key, sizeof(key), "k%" PRIu64, r->offset % PIPE_KEYS);
    if (!buf_eq(r->value, want))
      fault("offset %" PRIu64 ": value '%.*s', expected '%s'", r->offset, (int)r->value.len,
            (const char *)r->value.ptr, want);
    if (!buf_eq(r->key, key))
      fault("offset %" PRIu64 ": key '%.*s', expected '%s'", r->offset, (int)r->key.len,
            (const char *)r->key.ptr, key);
    if (r->timestamp != PIPE_TS0 + (int64_t)r->offset * PIPE_TS_STEP)
      fault("offset %" PRIu64 ": timestamp %" PRId64, r->offset, r->timestamp);
    collect_record(data, subtask, r);
  }
  return 0;
}

static void run_pipeline(int par) {
  weir_generator_config cfg = {0};
  weir_generator *gen = NULL;
  weir_job *job = job_new("pipeline");
  struct collect c;
  int src, up, even, sink;
  uint64_t o;

  collect_init(&c, PIPE_N);
  cfg.count = PIPE_N;
  cfg.value_len = PIPE_VLEN;
  cfg.key_count = PIPE_KEYS;
  cfg.ts_start = PIPE_TS0;
  cfg.ts_step = PIPE_TS_STEP;
  cfg.records_per_poll = 100;
  CHECK(weir_generator_create(&gen, &cfg));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, par));
  CHECK(weir_job_map(job, src, "upper", upper_map, NULL, &up));
  CHECK(weir_job_set_parallelism(job, up, par));
  CHECK(weir_job_filter(job, up, "even", keep_even, NULL, &even));
  CHECK(weir_job_set_parallelism(job, even, par));
  CHECK(weir_job_add_callback_sink(job, even, "sink", pipeline_sink, &c, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 2));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  for (o = 0; o < PIPE_N; o++)
    cr_assert_eq(seen_any(&c, o), o % 2 == 0 ? 1u : 0u, "offset %" PRIu64 " arrived %u times", o,
                 seen_any(&c, o));
  cr_assert_eq(atomic_load(&c.total), PIPE_N / 2);
  collect_free(&c);
}

Test(jobs, pipeline_map_filter_exact_p1, .timeout = TEST_TIMEOUT) {
  run_pipeline(1);
}

Test(jobs, pipeline_map_filter_exact_p3, .timeout = TEST_TIMEOUT) {
  run_pipeline(3);
}

/* ---- chaining: which thread runs which operator ------------------------------------------- */

#define CHAIN_N 2000

struct threads {
  pthread_t src[MAX_SUB], map[MAX_SUB], sink[MAX_SUB];
  bool src_set[MAX_SUB], map_set[MAX_SUB], sink_set[MAX_SUB];
  atomic_ullong received;
};

/* Remembers the calling thread for one subtask of one node; a second thread is a fault. Each
 * slot is only touched by the thread running that subtask (if chaining works as documented). */
static void note_thread(pthread_t *slots, bool *set, const char *what, int sub) {
  if (sub < 0 || sub >= MAX_SUB) {
    fault("%s: subtask %d out of range", what, sub);
    return;
  }
  if (!set[sub]) {
    slots[sub] = pthread_self();
    set[sub] = true;
  } else if (!pthread_equal(slots[sub], pthread_self())) {
    fault("%s subtask %d ran on two threads", what, sub);
  }
}

struct thr_src_inst {
  struct threads *t;
  uint64_t next;
  uint64_t step;
};

static int thr_src_open(weir_ctx *ctx, void *data, void **inst) {
  struct thr_src_inst *si = malloc(sizeof(*si));

  if (si == NULL)
    return WEIR_ENOMEM;
  si->t = data;
  si->next = (uint64_t)weir_ctx_subtask(ctx);
  si->step = (uint64_t)weir_ctx_parallelism(ctx);
  *inst = si;
  return 0;
}

static int thr_src_poll(weir_ctx *ctx, void *inst) {
  struct thr_src_inst *si = inst;
  int k, rc;

  note_thread(si->t->src, si->t->src_set, "source", weir_ctx_subtask(ctx));
  for (k = 0; k < 100; k++) {
    weir_record r = weir_record_init();

    if (si->next >= CHAIN_N)
      return WEIR_EOF;
    r.value = weir_buf_str("v");
    r.offset = si->next;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
    si->next += si->step;
  }
  return 0;
}

static void free_inst(weir_ctx *ctx, void *inst) {
  (void)ctx;
  free(inst);
}

static int thr_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  struct threads *t = data;

  (void)in;
  (void)out;
  note_thread(t->map, t->map_set, "map", weir_ctx_subtask(ctx));
  return 0;
}

static int thr_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct threads *t = data;

  (void)recs;
  note_thread(t->sink, t->sink_set, "sink", subtask);
  atomic_fetch_add(&t->received, n);
  return 0;
}

static void run_thread_job(struct threads *t, int src_par, int op_par, weir_partitioning part) {
  weir_operator op = {0};
  weir_job *job = job_new("threads");
  int src, map, sink, s;

  memset(t, 0, sizeof(*t));
  op.open = thr_src_open;
  op.poll = thr_src_poll;
  op.close = free_inst;
  CHECK(weir_job_add_source(job, "src", &op, t, &src));
  CHECK(weir_job_set_parallelism(job, src, src_par));
  CHECK(weir_job_map(job, src, "map", thr_map, t, &map));
  CHECK(weir_job_set_parallelism(job, map, op_par));
  if (part != WEIR_PART_AUTO)
    CHECK(weir_job_set_partitioning(job, src, map, part));
  CHECK(weir_job_add_callback_sink(job, map, "sink", thr_sink, t, &sink));
  CHECK(weir_job_set_parallelism(job, sink, op_par));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);

  check_faults();
  cr_assert_eq(atomic_load(&t->received), CHAIN_N);
  for (s = 0; s < src_par; s++)
    cr_assert(t->src_set[s], "source subtask %d never polled", s);
  for (s = 0; s < op_par; s++) {
    cr_assert(t->map_set[s] && t->sink_set[s], "subtask %d of map or sink never ran", s);
    /* map -> sink is forward with equal parallelism in every variant: always chained. */
    cr_assert(pthread_equal(t->map[s], t->sink[s]), "map and sink subtask %d on two threads", s);
  }
}

Test(jobs, chaining_forward_equal_parallelism_one_thread, .timeout = TEST_TIMEOUT) {
  struct threads t;
  int s;

  run_thread_job(&t, 2, 2, WEIR_PART_AUTO);
  for (s = 0; s < 2; s++)
    cr_assert(pthread_equal(t.src[s], t.map[s]), "source and map subtask %d on two threads", s);
  cr_assert(!pthread_equal(t.src[0], t.src[1]), "two subtasks share a thread");
}

Test(jobs, chaining_broken_by_rebalance_edge, .timeout = TEST_TIMEOUT) {
  struct threads t;
  int s, m;

  run_thread_job(&t, 2, 2, WEIR_PART_REBALANCE);
  for (s = 0; s < 2; s++)
    for (m = 0; m < 2; m++)
      cr_assert(!pthread_equal(t.src[s], t.map[m]), "source %d and map %d share a thread", s, m);
}

Test(jobs, chaining_broken_by_parallelism_change, .timeout = TEST_TIMEOUT) {
  struct threads t;
  int m;

  run_thread_job(&t, 1, 2, WEIR_PART_AUTO);
  for (m = 0; m < 2; m++)
    cr_assert(!pthread_equal(t.src[0], t.map[m]), "source and map %d share a thread", m);
  cr_assert(!pthread_equal(t.map[0], t.map[1]), "two map subtasks share a thread");
}

/* ---- partitioners ------------------------------------------------------------------------- */

#define HASH_N 4096
#define HASH_KEYS 64

struct keyed {
  char prefix;                 /* keys are "<prefix><offset mod n_keys>" */
  long n_keys;                 /* at most HASH_KEYS */
  bool check_order;            /* offsets per key must strictly increase */
  atomic_int owner[HASH_KEYS]; /* the sink subtask that received the key, -1 = none yet */
  atomic_ullong per_key[HASH_KEYS];
  atomic_ullong next[HASH_KEYS]; /* last offset + 1 per key; 0 = none yet */
  atomic_ullong total;
};

static void keyed_init(struct keyed *k, char prefix, long n_keys, bool check_order) {
  long i;

  memset(k, 0, sizeof(*k));
  k->prefix = prefix;
  k->n_keys = n_keys;
  k->check_order = check_order;
  for (i = 0; i < HASH_KEYS; i++)
    atomic_init(&k->owner[i], -1);
}

static int keyed_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct keyed *k = data;
  size_t i;

  for (i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    long key = parse_key(r->key, k->prefix);
    int owner = -1;
    unsigned long long prev;

    if (key < 0 || key >= k->n_keys || (uint64_t)key != r->offset % (uint64_t)k->n_keys) {
      fault("offset %" PRIu64 " has key '%.*s'", r->offset, (int)r->key.len,
            (const char *)r->key.ptr);
      continue;
    }
    if (!atomic_compare_exchange_strong(&k->owner[key], &owner, subtask) && owner != subtask)
      fault("key %c%ld reached sink subtasks %d and %d", k->prefix, key, owner, subtask);
    prev = atomic_exchange(&k->next[key], r->offset + 1);
    if (k->check_order && prev > r->offset)
      fault("key %c%ld: offset %" PRIu64 " after %llu", k->prefix, key, r->offset, prev - 1);
    atomic_fetch_add(&k->per_key[key], 1);
  }
  atomic_fetch_add(&k->total, n);
  return 0;
}

/* Asserts every key arrived n_records / n_keys times, at one subtask, and every one of the
 * `sink_par` subtasks owns some key. */
static void assert_keyed(struct keyed *k, uint64_t n_records, int sink_par) {
  bool has_key[MAX_SUB] = {false};
  long i;
  int s;

  check_faults();
  cr_assert_eq(atomic_load(&k->total), n_records);
  for (i = 0; i < k->n_keys; i++) {
    int owner = atomic_load(&k->owner[i]);

    cr_assert_eq(atomic_load(&k->per_key[i]), n_records / (uint64_t)k->n_keys,
                 "key %ld arrived %llu times", i, atomic_load(&k->per_key[i]));
    cr_assert(owner >= 0 && owner < sink_par, "key %ld owner %d", i, owner);
    has_key[owner] = true;
  }
  for (s = 0; s < sink_par; s++)
    cr_assert(has_key[s], "sink subtask %d received no key", s);
}

/* key_by: key "u<offset mod n_keys>" (n_keys passed as data), built in scratch memory. */
static int user_key(weir_ctx *ctx, void *data, const weir_record *in, weir_buf *key) {
  long n_keys = *(const long *)data;
  char *p = weir_ctx_scratch(ctx, 24);
  int len;

  if (p == NULL)
    return WEIR_ENOMEM;
  len = snprintf(p, 24, "u%" PRIu64, in->offset % (uint64_t)n_keys);
  key->ptr = (const uint8_t *)p;
  key->len = (size_t)len;
  return 0;
}

Test(jobs, hash_after_key_by_one_subtask_per_key, .timeout = TEST_TIMEOUT) {
  static const long n_keys = HASH_KEYS;
  weir_generator *gen = gen_new(HASH_N, 0, 0);
  weir_job *job = job_new("key-by");
  struct keyed k;
  int src, kb, sink;

  keyed_init(&k, 'u', n_keys, false);
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_key_by(job, src, "by-user", user_key, (void *)&n_keys, &kb));
  CHECK(weir_job_set_parallelism(job, kb, 2));
  /* AUTO after key_by resolves to HASH. */
  CHECK(weir_job_add_callback_sink(job, kb, "sink", keyed_sink, &k, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 3));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_keyed(&k, HASH_N, 3);
}

Test(jobs, hash_set_partitioning_one_subtask_per_key, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(HASH_N, HASH_KEYS, 0);
  weir_job *job = job_new("hash");
  struct keyed k;
  int src, sink;

  keyed_init(&k, 'k', HASH_KEYS, false);
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_callback_sink(job, src, "sink", keyed_sink, &k, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 3));
  CHECK(weir_job_set_partitioning(job, src, sink, WEIR_PART_HASH));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_keyed(&k, HASH_N, 3);
}

/*
 * Order is promised per key and upstream subtask. With two generator subtasks (even and odd
 * offsets) and an even key count, every key's records come from one upstream subtask, so the
 * offsets of each key must arrive strictly increasing.
 */
#define ORDER_KEYS 10

Test(jobs, hash_shuffle_keeps_per_key_order, .timeout = TEST_TIMEOUT) {
  static const long n_keys = ORDER_KEYS;
  weir_generator *gen = gen_new(HASH_N - HASH_N % ORDER_KEYS, 0, 0);
  weir_job *job = job_new("key-order");
  struct keyed k;
  int src, kb, sink;

  keyed_init(&k, 'u', n_keys, true);
  CHECK(weir_job_set_batch_size(job, 32, 64 << 10));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_key_by(job, src, "by-user", user_key, (void *)&n_keys, &kb));
  CHECK(weir_job_set_parallelism(job, kb, 2));
  CHECK(weir_job_add_callback_sink(job, kb, "sink", keyed_sink, &k, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 2));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_keyed(&k, HASH_N - HASH_N % ORDER_KEYS, 2);
}

#define REBAL_N 3001

Test(jobs, rebalance_round_robin_1_to_3, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(REBAL_N, 0, 0);
  weir_job *job = job_new("rebalance");
  unsigned long long lo = ULLONG_MAX, hi = 0;
  struct collect c;
  int src, sink, s;
  uint64_t o;

  collect_init(&c, REBAL_N);
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_add_callback_sink(job, src, "sink", collect_cb, &c, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 3));
  CHECK(weir_job_set_partitioning(job, src, sink, WEIR_PART_REBALANCE));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  for (o = 0; o < REBAL_N; o++)
    cr_assert_eq(seen_any(&c, o), 1, "offset %" PRIu64 " arrived %u times", o, seen_any(&c, o));
  for (s = 0; s < 3; s++) {
    unsigned long long n = atomic_load(&c.per_sub[s]);

    lo = n < lo ? n : lo;
    hi = n > hi ? n : hi;
  }
  cr_assert_eq(atomic_load(&c.per_sub[3]), 0);
  cr_assert(hi - lo <= 1, "subtask counts range from %llu to %llu: not round-robin", lo, hi);
  collect_free(&c);
}

#define BCAST_N 2000

Test(jobs, broadcast_every_subtask_gets_every_record, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(BCAST_N, 0, 0);
  weir_job *job = job_new("broadcast");
  struct collect c;
  int src, sink, s;
  uint64_t o;

  collect_init(&c, BCAST_N);
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_callback_sink(job, src, "sink", collect_cb, &c, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 3));
  CHECK(weir_job_set_partitioning(job, src, sink, WEIR_PART_BROADCAST));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  for (s = 0; s < 3; s++)
    for (o = 0; o < BCAST_N; o++)
      cr_assert_eq(seen_at(&c, s, o), 1, "offset %" PRIu64 " reached subtask %d %u times", o, s,
                   seen_at(&c, s, o));
  cr_assert_eq(atomic_load(&c.total), 3 * BCAST_N);
  collect_free(&c);
}

/* Forward: sink subtask s sees generator subtask s's offsets s, s + P, s + 2P, ... in order. */
#define FWD_N 3000
#define FWD_PAR 3

struct fwd {
  uint64_t next[FWD_PAR]; /* each touched only by its sink subtask's thread */
  atomic_ullong total;
};

static int fwd_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct fwd *f = data;
  size_t i;

  if (subtask < 0 || subtask >= FWD_PAR) {
    fault("forward sink subtask %d", subtask);
    return 0;
  }
  for (i = 0; i < n; i++) {
    if (recs[i].offset != f->next[subtask])
      fault("forward sink %d: offset %" PRIu64 ", expected %" PRIu64, subtask, recs[i].offset,
            f->next[subtask]);
    f->next[subtask] = recs[i].offset + FWD_PAR;
  }
  atomic_fetch_add(&f->total, n);
  return 0;
}

Test(jobs, forward_keeps_per_subtask_order, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(FWD_N, 0, 50);
  weir_job *job = job_new("forward");
  struct fwd a, b;
  int src, sa, sb, s;

  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  for (s = 0; s < FWD_PAR; s++)
    a.next[s] = b.next[s] = (uint64_t)s;
  CHECK(weir_job_set_batch_size(job, 16, 64 << 10));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, FWD_PAR));
  /* Two outputs: neither edge is chained, so both go through forward channels. */
  CHECK(weir_job_add_callback_sink(job, src, "sink-a", fwd_sink, &a, &sa));
  CHECK(weir_job_add_callback_sink(job, src, "sink-b", fwd_sink, &b, &sb));
  CHECK(weir_job_set_parallelism(job, sa, FWD_PAR));
  CHECK(weir_job_set_parallelism(job, sb, FWD_PAR));
  CHECK(weir_job_set_partitioning(job, src, sa, WEIR_PART_FORWARD));
  CHECK(weir_job_set_partitioning(job, src, sb, WEIR_PART_FORWARD));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  cr_assert_eq(atomic_load(&a.total), FWD_N);
  cr_assert_eq(atomic_load(&b.total), FWD_N);
  for (s = 0; s < FWD_PAR; s++) {
    cr_assert_eq(a.next[s], FWD_N + (uint64_t)s, "sink-a subtask %d stopped at %" PRIu64, s,
                 a.next[s]);
    cr_assert_eq(b.next[s], FWD_N + (uint64_t)s, "sink-b subtask %d stopped at %" PRIu64, s,
                 b.next[s]);
  }
}

/*
 * Two inputs into one sink: generator A (parallelism 2, offsets 0..999) by a forward edge and
 * generator B (parallelism 1, offsets 1000..1999) by rebalance. Every record arrives once, and
 * A's subtask s feeds only sink subtask s.
 */
#define UNION_A 1000
#define UNION_N 2000

Test(jobs, union_of_two_sources, .timeout = TEST_TIMEOUT) {
  weir_generator *ga = gen_new(UNION_A, 0, 0), *gb = gen_new(UNION_N, 0, 0);
  weir_job *job = job_new("union");
  struct collect c;
  int a, b, sink, s;
  uint64_t o;

  collect_init(&c, UNION_N);
  CHECK(weir_generator_set_start(gb, UNION_A));
  CHECK(weir_job_add_generator(job, "gen-a", ga, &a));
  CHECK(weir_job_set_parallelism(job, a, 2));
  CHECK(weir_job_add_generator(job, "gen-b", gb, &b));
  CHECK(weir_job_add_callback_sink(job, a, "sink", collect_cb, &c, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 2));
  CHECK(weir_job_connect(job, b, sink, WEIR_PART_AUTO));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(ga);
  weir_generator_destroy(gb);

  check_faults();
  cr_assert_eq(atomic_load(&c.total), UNION_N);
  for (o = 0; o < UNION_N; o++)
    cr_assert_eq(seen_any(&c, o), 1, "offset %" PRIu64 " arrived %u times", o, seen_any(&c, o));
  for (s = 0; s < 2; s++)
    for (o = 0; o < UNION_A; o++)
      cr_assert_eq(seen_at(&c, s, o), o % 2 == (uint64_t)s ? 1u : 0u,
                   "offset %" PRIu64 " of generator A at sink subtask %d", o, s);
  collect_free(&c);
}

/* ---- finish may emit ---------------------------------------------------------------------- */

#define FIN_N 5000
#define FIN_EXTRA 700 /* records each subtask emits from finish: several batches */

struct fin_stats {
  struct life life;
  atomic_ullong summed;
  atomic_int summaries;
  atomic_ullong extra;
};

struct fin_inst {
  struct fin_stats *st;
  uint64_t count;
};

static int fin_open(weir_ctx *ctx, void *data, void **inst) {
  struct fin_inst *fi = calloc(1, sizeof(*fi));

  (void)ctx;
  if (fi == NULL)
    return WEIR_ENOMEM;
  fi->st = data;
  atomic_fetch_add(&fi->st->life.opens, 1);
  *inst = fi;
  return 0;
}

static int fin_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  (void)ctx;
  (void)recs;
  ((struct fin_inst *)inst)->count += n;
  return 0;
}

static int fin_finish(weir_ctx *ctx, void *inst) {
  struct fin_inst *fi = inst;
  weir_record r = weir_record_init();
  char text[32];
  int i, rc;

  snprintf(text, sizeof(text), "%" PRIu64, fi->count);
  r.key = weir_buf_str("summary");
  r.value = weir_buf_str(text);
  if ((rc = weir_emit(ctx, &r)) != 0)
    return rc;
  r.key = weir_buf_str("extra");
  r.value = weir_buf_str("from finish");
  for (i = 0; i < FIN_EXTRA; i++) {
    r.offset = (uint64_t)i;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
  }
  return 0;
}

static void fin_close(weir_ctx *ctx, void *inst) {
  struct fin_inst *fi = inst;

  (void)ctx;
  atomic_fetch_add(&fi->st->life.closes, 1);
  free(fi);
}

static int fin_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct fin_stats *st = data;
  size_t i;

  (void)subtask;
  for (i = 0; i < n; i++) {
    if (buf_eq(recs[i].key, "summary")) {
      char text[32] = {0};

      memcpy(text, recs[i].value.ptr, recs[i].value.len < 31 ? recs[i].value.len : 31);
      atomic_fetch_add(&st->summed, strtoull(text, NULL, 10));
      atomic_fetch_add(&st->summaries, 1);
    } else if (buf_eq(recs[i].key, "extra") && buf_eq(recs[i].value, "from finish")) {
      atomic_fetch_add(&st->extra, 1);
    } else {
      fault("unexpected record at the sink: key '%.*s'", (int)recs[i].key.len,
            (const char *)recs[i].key.ptr);
    }
  }
  return 0;
}

static void run_finish(int par) {
  weir_generator *gen = gen_new(FIN_N, 0, 0);
  weir_job *job = job_new("finish");
  weir_operator op = {0};
  struct fin_stats st;
  int src, fin, sink;

  memset(&st, 0, sizeof(st));
  op.open = fin_open;
  op.process = fin_process;
  op.finish = fin_finish;
  op.close = fin_close;
  CHECK(weir_job_set_batch_size(job, 64, 64 << 10));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, par));
  CHECK(weir_job_add_operator(job, src, "summarize", &op, &st, &fin));
  CHECK(weir_job_set_parallelism(job, fin, par));
  /* Parallelism 1: one chain; otherwise the sink (parallelism 1) is behind a channel. */
  CHECK(weir_job_add_callback_sink(job, fin, "sink", fin_sink, &st, &sink));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  assert_life(&st.life, par, "summarize");
  cr_assert_eq(atomic_load(&st.summaries), par);
  cr_assert_eq(atomic_load(&st.summed), FIN_N);
  cr_assert_eq(atomic_load(&st.extra), (unsigned long long)par * FIN_EXTRA);
}

Test(jobs, finish_emits_reach_chained_sink, .timeout = TEST_TIMEOUT) {
  run_finish(1);
}

Test(jobs, finish_emits_reach_sink_through_channel, .timeout = TEST_TIMEOUT) {
  run_finish(2);
}

/* ---- watermarks --------------------------------------------------------------------------- */

#define WM_N 2000
#define WM_STEP 10     /* event time of record i is i * WM_STEP */
#define WM_PER_POLL 50 /* records per poll, each poll followed by a watermark */

/* What one node saw; touched only by that node's single subtask thread. */
struct wm_view {
  int64_t last_wm;
  int64_t max_ts;
  uint64_t n_wm;
  uint64_t records;
};

struct wm_job {
  struct wm_view op, sink;
};

static int wm_src_open(weir_ctx *ctx, void *data, void **inst) {
  uint64_t *next = calloc(1, sizeof(*next));

  (void)ctx;
  (void)data;
  *inst = next;
  return next != NULL ? 0 : WEIR_ENOMEM;
}

/* Emits WM_PER_POLL records in event-time order, then their watermark, then a stale watermark
 * that must be ignored. */
static int wm_src_poll(weir_ctx *ctx, void *inst) {
  uint64_t *next = inst;
  int64_t ts = 0;
  int k, rc;

  if (*next >= WM_N)
    return WEIR_EOF;
  for (k = 0; k < WM_PER_POLL && *next < WM_N; k++, (*next)++) {
    weir_record r = weir_record_init();

    ts = (int64_t)*next * WM_STEP;
    r.value = weir_buf_str("e");
    r.offset = *next;
    r.timestamp = ts;
    if ((rc = weir_emit(ctx, &r)) != 0)
      return rc;
  }
  if ((rc = weir_emit_watermark(ctx, ts)) != 0)
    return rc;
  return weir_emit_watermark(ctx, ts - 5 * WM_STEP);
}

static void wm_view_record(struct wm_view *v, const char *who, const weir_record *r) {
  if (r->timestamp <= v->last_wm && v->n_wm > 0)
    fault("%s: record at %" PRId64 " after watermark %" PRId64, who, r->timestamp, v->last_wm);
  if (r->timestamp > v->max_ts)
    v->max_ts = r->timestamp;
  v->records++;
}

static void wm_view_watermark(struct wm_view *v, const char *who, int64_t wm) {
  if (v->n_wm > 0 && wm < v->last_wm)
    fault("%s: watermark went back from %" PRId64 " to %" PRId64, who, v->last_wm, wm);
  if (wm > v->max_ts)
    fault("%s: watermark %" PRId64 " overtook records (latest %" PRId64 ")", who, wm, v->max_ts);
  v->last_wm = wm;
  v->n_wm++;
}

static int wm_op_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct wm_job *w = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    wm_view_record(&w->op, "operator", &recs[i]);
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  }
  return 0;
}

static int wm_op_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  (void)ctx;
  wm_view_watermark(&((struct wm_job *)inst)->op, "operator", wm);
  return 0;
}

static int wm_sink_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  size_t i;

  (void)ctx;
  for (i = 0; i < n; i++)
    wm_view_record(&((struct wm_job *)inst)->sink, "sink", &recs[i]);
  return 0;
}

static int wm_sink_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  (void)ctx;
  wm_view_watermark(&((struct wm_job *)inst)->sink, "sink", wm);
  return 0;
}

static void run_watermarks(weir_partitioning src_to_op) {
  weir_operator src_op = {0}, op = {0}, sink_op = {0};
  weir_job *job = job_new("watermarks");
  struct wm_job w;
  int src, mid, sink;

  memset(&w, 0, sizeof(w));
  src_op.open = wm_src_open;
  src_op.poll = wm_src_poll;
  src_op.close = free_inst;
  op.process = wm_op_process;
  op.on_watermark = wm_op_watermark;
  sink_op.process = wm_sink_process;
  sink_op.on_watermark = wm_sink_watermark;
  CHECK(weir_job_add_source(job, "events", &src_op, NULL, &src));
  CHECK(weir_job_add_operator(job, src, "wm-op", &op, &w, &mid));
  if (src_to_op != WEIR_PART_AUTO)
    CHECK(weir_job_set_partitioning(job, src, mid, src_to_op));
  CHECK(weir_job_add_sink(job, mid, "wm-sink", &sink_op, &w, &sink));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);

  check_faults();
  cr_assert_eq(w.op.records, WM_N);
  cr_assert_eq(w.sink.records, WM_N);
  cr_assert_geq(w.op.n_wm, 1);
  cr_assert_geq(w.sink.n_wm, 1);
  cr_assert_eq(w.op.last_wm, (WM_N - 1) * WM_STEP, "operator's last watermark %" PRId64,
               w.op.last_wm);
  cr_assert_eq(w.sink.last_wm, (WM_N - 1) * WM_STEP, "sink's last watermark %" PRId64,
               w.sink.last_wm);
}

Test(jobs, watermarks_non_decreasing_in_chain, .timeout = TEST_TIMEOUT) {
  run_watermarks(WEIR_PART_AUTO);
}

Test(jobs, watermarks_non_decreasing_through_channel, .timeout = TEST_TIMEOUT) {
  run_watermarks(WEIR_PART_REBALANCE);
}

/*
 * Two source subtasks: subtask 0 emits watermark 1000 and then waits until the operator has
 * seen 1000; subtask 1 starts only after that and emits 10, 20, ..., 500, then ends. The
 * operator must see the minimum over its inputs: values of subtask 1 (never more than
 * subtask 1 emitted while it runs), including 500, and 1000 only after subtask 1 ended.
 */
#define WM2_HIGH 1000
#define WM2_STEPS 50
#define WM2_MAX_SEEN 128

struct wm2 {
  atomic_llong latest[2]; /* the latest watermark each source subtask emitted */
  atomic_bool sent_high;  /* subtask 0 emitted WM2_HIGH */
  atomic_bool low_done;   /* subtask 1 emitted all it will */
  atomic_llong op_max;    /* the operator's latest watermark */
  int64_t deadline;       /* sources give up here (set before start) */
  int steps;              /* subtask 1's thread only */
  int64_t seen[WM2_MAX_SEEN];
  size_t n_seen; /* seen[]: the operator's thread only */
};

static int wm2_poll(weir_ctx *ctx, void *inst) {
  struct wm2 *w = inst;
  int rc;

  if (now_ms() > w->deadline) {
    weir_ctx_set_error(ctx, "watermark test stuck (operator at %lld)",
                       (long long)atomic_load(&w->op_max));
    return WEIR_ETIMEDOUT;
  }
  if (weir_ctx_subtask(ctx) == 0) {
    if (!atomic_load(&w->sent_high)) {
      atomic_store(&w->latest[0], WM2_HIGH);
      if ((rc = weir_emit_watermark(ctx, WM2_HIGH)) != 0)
        return rc;
      atomic_store(&w->sent_high, true);
      return 0;
    }
    return atomic_load(&w->op_max) >= WM2_HIGH ? WEIR_EOF : WEIR_EAGAIN;
  }
  if (!atomic_load(&w->sent_high))
    return WEIR_EAGAIN;
  if (w->steps == WM2_STEPS) {
    atomic_store(&w->low_done, true);
    return WEIR_EOF;
  }
  w->steps++;
  atomic_store(&w->latest[1], (long long)w->steps * 10);
  return weir_emit_watermark(ctx, (int64_t)w->steps * 10);
}

static int wm2_on_watermark(weir_ctx *ctx, void *inst, int64_t wm) {
  struct wm2 *w = inst;

  (void)ctx;
  if (w->n_seen > 0 && wm < w->seen[w->n_seen - 1])
    fault("watermark went back from %" PRId64 " to %" PRId64, w->seen[w->n_seen - 1], wm);
  if (wm > atomic_load(&w->latest[0]))
    fault("watermark %" PRId64 " above subtask 1's %lld", wm, atomic_load(&w->latest[0]));
  if (!atomic_load(&w->low_done) && wm > atomic_load(&w->latest[1]))
    fault("watermark %" PRId64 " above running subtask 2's %lld", wm, atomic_load(&w->latest[1]));
  if (w->n_seen < WM2_MAX_SEEN)
    w->seen[w->n_seen++] = wm;
  else
    fault("more than %d watermarks", WM2_MAX_SEEN);
  atomic_store(&w->op_max, wm);
  return 0;
}

static int drop_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  (void)ctx;
  (void)inst;
  (void)recs;
  (void)n;
  return 0;
}

Test(jobs, watermark_is_minimum_of_two_source_subtasks, .timeout = TEST_TIMEOUT) {
  weir_operator src_op = {0}, op = {0}, sink_op = {0};
  weir_job *job = job_new("watermark-min");
  struct wm2 *w = calloc(1, sizeof(*w));
  bool saw_low_end = false;
  size_t i;
  int src, mid, rc;

  cr_assert_not_null(w);
  atomic_init(&w->latest[0], INT64_MIN);
  atomic_init(&w->latest[1], INT64_MIN);
  atomic_init(&w->op_max, INT64_MIN);
  w->deadline = now_ms() + WAIT_MS;
  src_op.poll = wm2_poll;
  op.process = drop_process;
  op.on_watermark = wm2_on_watermark;
  sink_op.process = drop_process;
  CHECK(weir_job_add_source(job, "clocks", &src_op, w, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_operator(job, src, "min-op", &op, w, &mid));
  CHECK(weir_job_add_sink(job, mid, "sink", &sink_op, NULL, NULL));
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);

  check_faults();
  cr_assert_geq(w->n_seen, 2);
  cr_assert_eq(w->seen[w->n_seen - 1], WM2_HIGH, "last watermark %" PRId64, w->seen[w->n_seen - 1]);
  for (i = 0; i + 1 < w->n_seen; i++) {
    cr_assert(w->seen[i] >= 10 && w->seen[i] <= 10 * WM2_STEPS && w->seen[i] % 10 == 0,
              "watermark %" PRId64 " is not one of subtask 2's", w->seen[i]);
    saw_low_end |= w->seen[i] == 10 * WM2_STEPS;
  }
  cr_assert(saw_low_end, "the operator never saw subtask 2's last watermark as the minimum");
  free(w);
}

/* ---- ticks -------------------------------------------------------------------------------- */

struct ticker {
  atomic_ullong ticks;
  int64_t last_now; /* the ticking subtask's thread only */
};

static int tick_cb(weir_ctx *ctx, void *inst, int64_t now) {
  struct ticker *tk = inst;

  (void)ctx;
  if (now < tk->last_now)
    fault("tick time went back from %" PRId64 " to %" PRId64, tk->last_now, now);
  tk->last_now = now;
  atomic_fetch_add(&tk->ticks, 1);
  return 0;
}

static int pass_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  size_t i;
  int rc;

  (void)inst;
  for (i = 0; i < n; i++)
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  return 0;
}

Test(jobs, on_tick_called_in_source_chain_and_input_task, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  weir_job *job = job_new("ticks");
  weir_operator op = {0};
  struct ticker chained, behind;
  struct stopper st = {0};
  struct life sink_life = {0};
  weir_operator sink_op = life_op(true);
  int src, a, b;

  memset(&chained, 0, sizeof(chained));
  memset(&behind, 0, sizeof(behind));
  op.process = pass_process;
  op.on_tick = tick_cb;
  CHECK(weir_job_set_tick_interval(job, 5));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_add_operator(job, src, "tick-chained", &op, &chained, &a));
  CHECK(weir_job_add_operator(job, a, "tick-behind", &op, &behind, &b));
  CHECK(weir_job_set_partitioning(job, a, b, WEIR_PART_REBALANCE));
  CHECK(weir_job_add_sink(job, b, "sink", &sink_op, &sink_life, NULL));
  st.counter = &chained.ticks;
  st.target = 3;
  st.counter2 = &behind.ticks;
  st.target2 = 3;
  CHECK(run_with_stopper(job, &st));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  cr_assert_geq(atomic_load(&chained.ticks), 3);
  cr_assert_geq(atomic_load(&behind.ticks), 3);
  cr_assert_gt(atomic_load(&sink_life.records), 0);
}

/* ---- graceful stop ------------------------------------------------------------------------ */

#define STOP_AFTER 10000

/* Sink with parallelism 1 checking that generator subtask s's offsets (s mod par) arrive as
 * s, s + par, s + 2 par, ... with no gap and no repeat. */
struct prefix {
  uint64_t par;
  uint64_t next[MAX_SUB]; /* the sink's thread only */
  atomic_ullong total;
};

static int prefix_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct prefix *p = data;
  size_t i;

  (void)subtask;
  for (i = 0; i < n; i++) {
    uint64_t s = recs[i].offset % p->par;

    if (recs[i].offset != p->next[s])
      fault("generator subtask %" PRIu64 ": offset %" PRIu64 " where %" PRIu64 " was due", s,
            recs[i].offset, p->next[s]);
    p->next[s] = recs[i].offset + p->par;
  }
  atomic_fetch_add(&p->total, n);
  return 0;
}

static void run_graceful_stop(int par) {
  weir_generator *gen = gen_new(0, 0, 0);
  weir_job *job = job_new("graceful-stop");
  struct stopper st = {0};
  struct prefix p;
  atomic_ullong emitted;
  unsigned long long delivered = 0;
  int src, cnt, sink, s;

  memset(&p, 0, sizeof(p));
  atomic_init(&emitted, 0);
  p.par = (uint64_t)par;
  for (s = 0; s < par; s++)
    p.next[s] = (uint64_t)s;
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, par));
  CHECK(weir_job_map(job, src, "count", count_map, &emitted, &cnt));
  CHECK(weir_job_set_parallelism(job, cnt, par));
  CHECK(weir_job_add_callback_sink(job, cnt, "sink", prefix_sink, &p, &sink));
  st.counter = &p.total;
  st.target = STOP_AFTER;
  CHECK(run_with_stopper(job, &st));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  cr_assert_geq(atomic_load(&p.total), STOP_AFTER);
  /* Everything emitted before the stop reached the sink. */
  cr_assert_eq(atomic_load(&p.total), atomic_load(&emitted), "sink got %llu of %llu records",
               atomic_load(&p.total), atomic_load(&emitted));
  for (s = 0; s < par; s++)
    delivered += (p.next[s] - (uint64_t)s) / p.par;
  cr_assert_eq(delivered, atomic_load(&p.total), "prefixes cover %llu records, sink got %llu",
               delivered, atomic_load(&p.total));
  if (par == 1)
    cr_assert_eq(p.next[0], atomic_load(&p.total), "offsets are not exactly 0..%llu",
                 atomic_load(&p.total) - 1);
}

Test(jobs, graceful_stop_delivers_contiguous_prefix_p1, .timeout = TEST_TIMEOUT) {
  run_graceful_stop(1);
}

Test(jobs, graceful_stop_delivers_contiguous_prefix_p3, .timeout = TEST_TIMEOUT) {
  run_graceful_stop(3);
}

/* ---- cancel and destroy ------------------------------------------------------------------- */

/* generator (unbounded, 2) -> life op (2) -> life sink (1), not chained to the sink. */
static weir_job *life_job(weir_generator *gen, struct life *op_life, struct life *sink_life) {
  weir_operator op = life_op(false), sink_op = life_op(true);
  weir_job *job = job_new("life");
  int src, mid, sink;

  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_operator(job, src, "life-op", &op, op_life, &mid));
  CHECK(weir_job_set_parallelism(job, mid, 2));
  CHECK(weir_job_add_sink(job, mid, "life-sink", &sink_op, sink_life, &sink));
  return job;
}

Test(jobs, cancel_returns_ecanceled_and_closes_everything, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  struct life op_life = {0}, sink_life = {0};
  weir_job *job = life_job(gen, &op_life, &sink_life);
  struct stopper st = {0};
  int rc;

  st.counter = &sink_life.records;
  st.target = 1000;
  st.cancel = true;
  rc = run_with_stopper(job, &st);
  cr_assert_eq(rc, WEIR_ECANCELED, "wait returned %s: %s", weir_err_name(rc), weir_job_error(job));
  /* A second wait reports the same outcome. */
  cr_assert_eq(weir_job_wait(job), WEIR_ECANCELED);
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_life(&op_life, 2, "life-op");
  assert_life(&sink_life, 1, "life-sink");
  cr_assert_geq(atomic_load(&sink_life.records), 1000);
}

Test(jobs, cancel_before_start_ends_at_once, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  struct life op_life = {0}, sink_life = {0};
  weir_job *job = life_job(gen, &op_life, &sink_life);
  int rc;

  weir_job_cancel(job);
  rc = weir_job_start(job);
  if (rc == 0)
    rc = weir_job_wait(job);
  cr_assert_eq(rc, WEIR_ECANCELED, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert_eq(atomic_load(&op_life.closes), atomic_load(&op_life.opens));
  cr_assert_eq(atomic_load(&sink_life.closes), atomic_load(&sink_life.opens));
}

Test(jobs, stop_before_start_finishes, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  struct life op_life = {0}, sink_life = {0};
  weir_job *job = life_job(gen, &op_life, &sink_life);
  int rc;

  weir_job_stop(job);
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_life(&op_life, 2, "life-op");
  assert_life(&sink_life, 1, "life-sink");
  cr_assert_eq(atomic_load(&sink_life.records), atomic_load(&op_life.records));
}

Test(jobs, destroy_running_job, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  struct life op_life = {0}, sink_life = {0};
  weir_job *job = life_job(gen, &op_life, &sink_life);

  CHECK(weir_job_start(job));
  cr_assert(wait_count(&sink_life.records, 1000, WAIT_MS), "the job never got going: %s",
            weir_job_error(job));
  weir_job_destroy(job); /* cancels and joins; ASan's leak check covers the rest */
  weir_generator_destroy(gen);
  assert_life(&op_life, 2, "life-op");
  assert_life(&sink_life, 1, "life-sink");
}

/* ---- failures ----------------------------------------------------------------------------- */

#define BOOM_AFTER 1000

struct boom_inst {
  struct life *life;
  int count;
};

static int boom_open(weir_ctx *ctx, void *data, void **inst) {
  struct boom_inst *bi = calloc(1, sizeof(*bi));

  (void)ctx;
  if (bi == NULL)
    return WEIR_ENOMEM;
  bi->life = data;
  atomic_fetch_add(&bi->life->opens, 1);
  *inst = bi;
  return 0;
}

static int boom_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct boom_inst *bi = inst;
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    if (bi->count == BOOM_AFTER) {
      weir_ctx_set_error(ctx, "boom at %d", bi->count);
      return WEIR_EIO;
    }
    bi->count++;
    if ((rc = weir_emit(ctx, &recs[i])) != 0)
      return rc;
  }
  return 0;
}

static void boom_close(weir_ctx *ctx, void *inst) {
  struct boom_inst *bi = inst;

  (void)ctx;
  atomic_fetch_add(&bi->life->closes, 1);
  free(bi);
}

Test(jobs, operator_error_fails_job_and_closes_all, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  weir_job *job = job_new("failing");
  weir_operator op = {0}, sink_op = life_op(true);
  struct life boom_life = {0}, sink_life = {0};
  const char *err;
  int src, mid, rc;

  op.open = boom_open;
  op.process = boom_process;
  op.close = boom_close;
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_operator(job, src, "exploder", &op, &boom_life, &mid));
  CHECK(weir_job_set_parallelism(job, mid, 2));
  CHECK(weir_job_add_sink(job, mid, "sink", &sink_op, &sink_life, NULL));
  rc = weir_job_run(job);
  err = weir_job_error(job);
  cr_assert_eq(rc, WEIR_EIO, "wait returned %s: %s", weir_err_name(rc), err);
  ASSERT_CONTAINS(err, "exploder");
  ASSERT_CONTAINS(err, "subtask");
  ASSERT_CONTAINS(err, "boom at 1000");
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_life(&boom_life, 2, "exploder");
  assert_life(&sink_life, 1, "sink");
}

/* An operator whose open fails on its second subtask: the job fails naming it, and every
 * subtask that was opened (the failing one included, as documented) is closed. */
static int open_fail_open(weir_ctx *ctx, void *data, void **inst) {
  (void)inst;
  atomic_fetch_add(&((struct life *)data)->opens, 1);
  if (weir_ctx_subtask(ctx) == 1) {
    weir_ctx_set_error(ctx, "no resource for subtask %d", weir_ctx_subtask(ctx));
    return WEIR_EIO;
  }
  return 0;
}

Test(jobs, open_failure_fails_job_and_closes_opened, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, 0);
  weir_job *job = job_new("open-fails");
  weir_operator op = life_op(false), sink_op = life_op(true);
  struct life op_life = {0}, sink_life = {0};
  const char *err;
  int src, mid, rc;

  op.open = open_fail_open;
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_operator(job, src, "fragile", &op, &op_life, &mid));
  CHECK(weir_job_set_parallelism(job, mid, 2));
  CHECK(weir_job_add_sink(job, mid, "sink", &sink_op, &sink_life, NULL));
  rc = weir_job_run(job);
  err = weir_job_error(job);
  cr_assert_eq(rc, WEIR_EIO, "%s: %s", weir_err_name(rc), err);
  ASSERT_CONTAINS(err, "'fragile'");
  ASSERT_CONTAINS(err, "subtask 2/2");
  ASSERT_CONTAINS(err, "no resource for subtask 1");
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_life(&op_life, 2, "fragile");
  cr_assert_eq(atomic_load(&sink_life.closes), atomic_load(&sink_life.opens));
}

/*
 * generator (unbounded) -> count (chained) -> [channel of capacity 1] -> stuck sink.
 * The sink holds its first batch until the upstream is provably blocked: with B records per
 * batch, the channel's pool is 1 + SPARE_BATCHES batches, so once count has seen that many
 * batches plus one record, the upstream is waiting for room. Then the sink fails.
 */
#define STUCK_BATCH 64

struct stuck {
  struct life up;   /* the counting operator chained to the generator */
  struct life life; /* the stuck sink */
  bool reached;     /* the sink's thread only */
  bool called;
};

static int stuck_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  struct stuck *s = inst;
  unsigned long long blocked_at = (1 + SPARE_BATCHES) * STUCK_BATCH + 1;

  (void)recs;
  (void)n;
  if (!s->called) {
    s->called = true;
    s->reached = wait_count(&s->up.records, blocked_at, WAIT_MS);
  }
  weir_ctx_set_error(ctx, "boom with upstream blocked");
  return WEIR_EIO;
}

static int stuck_open(weir_ctx *ctx, void *data, void **inst) {
  (void)ctx;
  (void)inst;
  atomic_fetch_add(&((struct stuck *)data)->life.opens, 1);
  return 0;
}

static void stuck_close(weir_ctx *ctx, void *inst) {
  (void)ctx;
  atomic_fetch_add(&((struct stuck *)inst)->life.closes, 1);
}

Test(jobs, downstream_error_while_upstream_blocked, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, STUCK_BATCH);
  weir_job *job = job_new("stuck");
  weir_operator op = {0}, count_op = life_op(false);
  struct stuck s;
  const char *err;
  int src, cnt, sink, rc;

  memset(&s, 0, sizeof(s));
  op.open = stuck_open;
  op.process = stuck_process;
  op.close = stuck_close;
  CHECK(weir_job_set_channel_capacity(job, 1));
  CHECK(weir_job_set_batch_size(job, STUCK_BATCH, 64 << 10));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_add_operator(job, src, "count", &count_op, &s.up, &cnt));
  CHECK(weir_job_add_sink(job, cnt, "stuck-sink", &op, &s, &sink));
  CHECK(weir_job_set_partitioning(job, cnt, sink, WEIR_PART_REBALANCE));
  rc = weir_job_run(job);
  err = weir_job_error(job);
  cr_assert_eq(rc, WEIR_EIO, "wait returned %s: %s", weir_err_name(rc), err);
  ASSERT_CONTAINS(err, "stuck-sink");
  ASSERT_CONTAINS(err, "subtask");
  ASSERT_CONTAINS(err, "boom");
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert(s.reached, "upstream never filled the channel (%llu records)",
            atomic_load(&s.up.records));
  /* The blocked upstream did not get any further: pool plus one poll at most. */
  cr_assert_leq(atomic_load(&s.up.records), (1 + SPARE_BATCHES) * STUCK_BATCH + STUCK_BATCH);
  assert_life(&s.up, 1, "count");
  assert_life(&s.life, 1, "stuck-sink");
}

/* ---- backpressure ------------------------------------------------------------------------- */

#define BP_CAP 2
#define BP_BATCH 64
#define BP_PER_POLL 64
/* Records count has seen but the sink has not finished: every batch of the channel's pool
 * (ring plus spares: one being filled, one being read), plus one poll in the chain. */
#define BP_BOUND ((BP_CAP + SPARE_BATCHES) * BP_BATCH + BP_PER_POLL)
#define BP_SAMPLES 50

static int slow_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)subtask;
  (void)recs;
  sleep_ms(1);
  atomic_fetch_add((atomic_ullong *)data, n);
  return 0;
}

Test(jobs, backpressure_bounds_in_flight_records, .timeout = TEST_TIMEOUT) {
  weir_generator *gen = gen_new(0, 0, BP_PER_POLL);
  weir_job *job = job_new("backpressure");
  atomic_ullong emitted, received;
  long long max_lag = 0;
  int src, cnt, sink, i, rc;

  atomic_init(&emitted, 0);
  atomic_init(&received, 0);
  CHECK(weir_job_set_channel_capacity(job, BP_CAP));
  CHECK(weir_job_set_batch_size(job, BP_BATCH, 64 * 1024));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_map(job, src, "count", count_map, &emitted, &cnt));
  CHECK(weir_job_add_callback_sink(job, cnt, "slow-sink", slow_sink, &received, &sink));
  CHECK(weir_job_set_partitioning(job, cnt, sink, WEIR_PART_REBALANCE));
  CHECK(weir_job_start(job));
  cr_assert(wait_count(&received, 4 * BP_BATCH, WAIT_MS), "the sink never received records");
  for (i = 0; i < BP_SAMPLES; i++) {
    /* emitted first: received only grows, so the difference never overstates the lag. */
    long long e = (long long)atomic_load(&emitted);
    long long r = (long long)atomic_load(&received);

    if (e - r > max_lag)
      max_lag = e - r;
    sleep_ms(2); /* spacing between samples, not synchronisation */
  }
  weir_job_stop(job);
  rc = weir_job_wait(job);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  cr_assert_leq(max_lag, BP_BOUND, "%lld records in flight, bound %d", max_lag, BP_BOUND);
  cr_assert_eq(atomic_load(&emitted), atomic_load(&received));
}

/* ---- buffer timeout ----------------------------------------------------------------------- */

/*
 * A source emits FLUSH_N records, then keeps its task busy (polls returning 0 without
 * emitting) until the sink has them all. The records sit in partial batches (far below the
 * batch size) in the source task and in a middle operator's task: only the buffer timeout (in
 * the busy source) and the idle flush (in the operator) can send them.
 */
#define FLUSH_N 5

struct trickle {
  atomic_ullong received;
  uint64_t emitted; /* the source's thread only */
  int64_t deadline;
};

static int trickle_poll(weir_ctx *ctx, void *inst) {
  struct trickle *tr = inst;
  weir_record r = weir_record_init();

  if (tr->emitted < FLUSH_N) {
    r.value = weir_buf_str("drip");
    r.offset = tr->emitted++;
    return weir_emit(ctx, &r);
  }
  if (atomic_load(&tr->received) >= FLUSH_N)
    return WEIR_EOF;
  if (now_ms() > tr->deadline) {
    weir_ctx_set_error(ctx, "the sink got %llu of %d records", atomic_load(&tr->received), FLUSH_N);
    return WEIR_ETIMEDOUT;
  }
  return 0; /* busy: no WEIR_EAGAIN, so nothing but the buffer timeout flushes */
}

static int trickle_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)subtask;
  (void)recs;
  atomic_fetch_add(&((struct trickle *)data)->received, n);
  return 0;
}

Test(jobs, partial_batches_flushed_by_buffer_timeout, .timeout = TEST_TIMEOUT) {
  weir_operator src_op = {0}, op = {0};
  weir_job *job = job_new("trickle");
  struct trickle tr;
  int src, mid, sink, rc;

  memset(&tr, 0, sizeof(tr));
  tr.deadline = now_ms() + WAIT_MS;
  src_op.poll = trickle_poll;
  op.process = pass_process;
  CHECK(weir_job_set_buffer_timeout(job, 5));
  CHECK(weir_job_add_source(job, "trickle", &src_op, &tr, &src));
  CHECK(weir_job_add_operator(job, src, "pass", &op, NULL, &mid));
  CHECK(weir_job_set_partitioning(job, src, mid, WEIR_PART_REBALANCE));
  CHECK(weir_job_add_callback_sink(job, mid, "sink", trickle_sink, &tr, &sink));
  CHECK(weir_job_set_partitioning(job, mid, sink, WEIR_PART_REBALANCE));
  rc = weir_job_run(job);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  cr_assert_eq(atomic_load(&tr.received), FLUSH_N);
}

/* ---- record too big ----------------------------------------------------------------------- */

#define BIG_BATCH_BYTES 4096
static const uint8_t huge_value[2 * BIG_BATCH_BYTES];

static int huge_map(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  (void)ctx;
  (void)data;
  if (in->offset == 5) {
    out->value.ptr = huge_value;
    out->value.len = sizeof(huge_value);
  }
  return 0;
}

static void run_too_big(weir_partitioning map_to_sink) {
  weir_generator *gen = gen_new(100, 0, 0);
  weir_job *job = job_new("too-big");
  struct life sink_life = {0};
  weir_operator sink_op = life_op(true);
  const char *err;
  int src, map, sink, rc;

  CHECK(weir_job_set_batch_size(job, 64, BIG_BATCH_BYTES));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_map(job, src, "huge", huge_map, NULL, &map));
  CHECK(weir_job_add_sink(job, map, "sink", &sink_op, &sink_life, &sink));
  if (map_to_sink != WEIR_PART_AUTO)
    CHECK(weir_job_set_partitioning(job, map, sink, map_to_sink));
  rc = weir_job_run(job);
  err = weir_job_error(job);
  cr_assert_eq(rc, WEIR_ETOOBIG, "wait returned %s: %s", weir_err_name(rc), err);
  ASSERT_CONTAINS(err, "'huge'");
  ASSERT_CONTAINS(err, "8192");
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  assert_life(&sink_life, 1, "sink");
}

Test(jobs, record_too_big_for_chained_link, .timeout = TEST_TIMEOUT) {
  run_too_big(WEIR_PART_AUTO);
}

Test(jobs, record_too_big_for_channel, .timeout = TEST_TIMEOUT) {
  run_too_big(WEIR_PART_REBALANCE);
}

/* ---- files: line source and file sink ----------------------------------------------------- */

struct tmp {
  char dir[64];
  char paths[4][128];
  int n;
};

static void tmp_init(struct tmp *t) {
  memset(t, 0, sizeof(*t));
  snprintf(t->dir, sizeof(t->dir), "/tmp/weir-test-jobs-XXXXXX");
  cr_assert_not_null(mkdtemp(t->dir));
}

/* A path inside the temp dir, removed by tmp_cleanup. */
static const char *tmp_path(struct tmp *t, const char *name) {
  char dir[sizeof(t->dir)];

  cr_assert_lt(t->n, 4);
  memcpy(dir, t->dir, sizeof(dir)); /* snprintf may not read from the object it writes */
  snprintf(t->paths[t->n], sizeof(t->paths[0]), "%s/%s", dir, name);
  return t->paths[t->n++];
}

static void tmp_cleanup(struct tmp *t) {
  int i;

  for (i = 0; i < t->n; i++)
    unlink(t->paths[i]);
  rmdir(t->dir);
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");

  cr_assert_not_null(f, "cannot create %s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  size_t cap = 1 << 16, n = 0, got;
  char *buf = malloc(cap + 1);

  cr_assert_not_null(f, "cannot open %s", path);
  cr_assert_not_null(buf);
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
      cr_assert_not_null(buf);
    }
  }
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
}

#define LINES_GEN 5000 /* generated lines between the special ones: > 64 KiB in total */

/* The expected value of 1-based line `no` of the round-trip input (see lines_input). */
static void line_expected(uint64_t no, char *buf, size_t cap) {
  if (no == 1)
    snprintf(buf, cap, "alpha");
  else if (no == 2)
    snprintf(buf, cap, "%s", "");
  else if (no == 3)
    snprintf(buf, cap, "crlf line");
  else if (no <= 3 + LINES_GEN)
    snprintf(buf, cap, "line %05" PRIu64 " of the round trip", no);
  else
    snprintf(buf, cap, "last line without newline");
}

struct line_check {
  const char *path;
  uint64_t next; /* the sink's thread only */
};

static int line_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct line_check *lc = data;
  size_t i;

  (void)subtask;
  for (i = 0; i < n; i++) {
    char want[64];

    lc->next++;
    line_expected(lc->next, want, sizeof(want));
    if (recs[i].offset != lc->next)
      fault("line offset %" PRIu64 ", expected %" PRIu64, recs[i].offset, lc->next);
    if (!buf_eq(recs[i].value, want))
      fault("line %" PRIu64 ": '%.*s', expected '%s'", lc->next, (int)recs[i].value.len,
            (const char *)recs[i].value.ptr, want);
    if (!buf_eq(recs[i].meta, lc->path))
      fault("line %" PRIu64 ": meta '%.*s'", lc->next, (int)recs[i].meta.len,
            (const char *)recs[i].meta.ptr);
  }
  return 0;
}

Test(jobs, line_source_file_sink_round_trip, .timeout = TEST_TIMEOUT) {
  size_t cap = 64 + (LINES_GEN + 10) * 64, in_len = 0, want_len = 0, out_len;
  char *in = malloc(cap), *want = malloc(cap), *out;
  weir_line_source_config lcfg = {0};
  weir_file_sink_config fcfg = {0};
  weir_line_source *ls = NULL;
  weir_file_sink *fs = NULL;
  weir_job *job = job_new("round-trip");
  struct line_check lc = {0};
  const char *in_path, *out_path;
  struct tmp t;
  uint64_t no;
  int src, rc;

  cr_assert(in != NULL && want != NULL);
  tmp_init(&t);
  in_path = tmp_path(&t, "in.txt");
  out_path = tmp_path(&t, "out.txt");
  in_len += (size_t)snprintf(in + in_len, cap - in_len, "alpha\n\ncrlf line\r\n");
  for (no = 4; no <= 3 + LINES_GEN; no++) {
    char line[64];

    line_expected(no, line, sizeof(line));
    in_len += (size_t)snprintf(in + in_len, cap - in_len, "%s\n", line);
  }
  in_len += (size_t)snprintf(in + in_len, cap - in_len, "last line without newline");
  for (no = 1; no <= 4 + LINES_GEN; no++) {
    char line[64];

    line_expected(no, line, sizeof(line));
    want_len += (size_t)snprintf(want + want_len, cap - want_len, "%s\n", line);
  }
  write_file(in_path, in, in_len);

  lcfg.path = in_path;
  fcfg.path = out_path;
  lc.path = in_path;
  CHECK(weir_line_source_create(&ls, &lcfg));
  CHECK(weir_file_sink_create(&fs, &fcfg));
  CHECK(weir_job_add_line_source(job, "lines", ls, &src));
  CHECK(weir_job_add_file_sink(job, src, "file", fs, NULL));
  CHECK(weir_job_add_callback_sink(job, src, "check", line_sink, &lc, NULL));
  rc = weir_job_run(job);
  weir_job_destroy(job);
  weir_file_sink_destroy(fs);
  weir_line_source_destroy(ls);
  out = read_file(out_path, &out_len);
  tmp_cleanup(&t);

  cr_assert_eq(rc, 0, "%s", weir_err_name(rc));
  check_faults();
  cr_assert_eq(lc.next, 4 + LINES_GEN, "the sink saw %" PRIu64 " lines", lc.next);
  cr_assert_eq(out_len, want_len, "output is %zu bytes, expected %zu", out_len, want_len);
  cr_assert(memcmp(out, want, want_len) == 0, "output differs from the input lines");
  free(in);
  free(want);
  free(out);
}

/* Runs line source (max_line_len 16) -> callback sink over `content`; returns the job's result
 * and copies its error message into err. */
static int run_long_line(const char *content, size_t len, char *err, size_t err_cap, char *path_out,
                         size_t path_cap) {
  weir_line_source_config lcfg = {0};
  weir_line_source *ls = NULL;
  weir_job *job = job_new("long-line");
  struct collect c;
  struct tmp t;
  const char *path;
  int src, rc;

  collect_init(&c, 16);
  tmp_init(&t);
  path = tmp_path(&t, "long.txt");
  snprintf(path_out, path_cap, "%s", path);
  write_file(path, content, len);
  lcfg.path = path;
  lcfg.max_line_len = 16;
  CHECK(weir_line_source_create(&ls, &lcfg));
  CHECK(weir_job_add_line_source(job, "lines", ls, &src));
  CHECK(weir_job_add_callback_sink(job, src, "sink", collect_cb, &c, NULL));
  rc = weir_job_run(job);
  snprintf(err, err_cap, "%s", weir_job_error(job));
  weir_job_destroy(job);
  weir_line_source_destroy(ls);
  tmp_cleanup(&t);
  collect_free(&c);
  return rc;
}

Test(jobs, line_longer_than_max_fails_with_path_and_line, .timeout = TEST_TIMEOUT) {
  static const char content[] = "short\nok\nthis line is longer than sixteen bytes\nafter\n";
  char err[1024], path[128], where[160];
  int rc;

  rc = run_long_line(content, sizeof(content) - 1, err, sizeof(err), path, sizeof(path));
  cr_assert_eq(rc, WEIR_ETOOBIG, "%s: %s", weir_err_name(rc), err);
  snprintf(where, sizeof(where), "%s:3", path);
  ASSERT_CONTAINS(err, where);
  ASSERT_CONTAINS(err, "'lines'");
}

Test(jobs, line_longer_than_read_buffer_fails_with_path_and_line, .timeout = TEST_TIMEOUT) {
  size_t long_len = 200000, len = 0;
  char *content = malloc(long_len + 32);
  char err[1024], path[128], where[160];
  int rc;

  cr_assert_not_null(content);
  len += (size_t)sprintf(content, "short\nok\n");
  memset(content + len, 'a', long_len);
  len += long_len;
  len += (size_t)sprintf(content + len, "\nafter\n");
  rc = run_long_line(content, len, err, sizeof(err), path, sizeof(path));
  free(content);
  cr_assert_eq(rc, WEIR_ETOOBIG, "%s: %s", weir_err_name(rc), err);
  snprintf(where, sizeof(where), "%s:3", path);
  ASSERT_CONTAINS(err, where);
}

Test(jobs, missing_input_file_fails_with_path, .timeout = TEST_TIMEOUT) {
  weir_line_source_config lcfg = {0};
  weir_line_source *ls = NULL;
  weir_job *job = job_new("missing");
  struct life sink_life = {0};
  weir_operator sink_op = life_op(true);
  char path[128];
  struct tmp t;
  int src, rc;

  tmp_init(&t);
  snprintf(path, sizeof(path), "%s/does-not-exist.txt", t.dir);
  lcfg.path = path;
  CHECK(weir_line_source_create(&ls, &lcfg));
  CHECK(weir_job_add_line_source(job, "lines", ls, &src));
  CHECK(weir_job_add_sink(job, src, "sink", &sink_op, &sink_life, NULL));
  rc = weir_job_run(job);
  tmp_cleanup(&t);
  cr_assert_eq(rc, WEIR_EIO, "%s: %s", weir_err_name(rc), weir_job_error(job));
  ASSERT_CONTAINS(weir_job_error(job), path);
  weir_job_destroy(job);
  weir_line_source_destroy(ls);
  /* The sink is chained behind the source: it may never have been opened, but if it was, it
   * was closed too. */
  cr_assert_eq(atomic_load(&sink_life.closes), atomic_load(&sink_life.opens));
  cr_assert_eq(atomic_load(&sink_life.records), 0);
}

#define KEYED_N 100
#define KEYED_KEYS 5

Test(jobs, file_sink_with_key_writes_key_tab_value, .timeout = TEST_TIMEOUT) {
  weir_generator_config gcfg = {0};
  weir_file_sink_config fcfg = {0};
  weir_generator *gen = NULL;
  weir_file_sink *fs = NULL;
  weir_job *job = job_new("with-key");
  char want[KEYED_N * 40];
  size_t want_len = 0, out_len;
  const char *out_path;
  struct tmp t;
  char *out;
  int src, i;

  tmp_init(&t);
  out_path = tmp_path(&t, "keyed.txt");
  gcfg.count = KEYED_N;
  gcfg.key_count = KEYED_KEYS;
  gcfg.value_len = 20;
  CHECK(weir_generator_create(&gen, &gcfg));
  fcfg.path = out_path;
  fcfg.with_key = true;
  CHECK(weir_file_sink_create(&fs, &fcfg));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_add_file_sink(job, src, "file", fs, NULL));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_file_sink_destroy(fs);
  weir_generator_destroy(gen);
  out = read_file(out_path, &out_len);
  tmp_cleanup(&t);

  for (i = 0; i < KEYED_N; i++)
    want_len += (size_t)snprintf(want + want_len, sizeof(want) - want_len, "k%d\t%020d\n",
                                 i % KEYED_KEYS, i);
  cr_assert_eq(out_len, want_len, "output is %zu bytes, expected %zu", out_len, want_len);
  cr_assert(memcmp(out, want, want_len) == 0, "output:\n%s\nexpected:\n%s", out, want);
  free(out);
}

/* ---- line source on a FIFO ---------------------------------------------------------------- */

/* Sink checking lines against an expected list, in order, with 1-based line offsets. */
struct expect_lines {
  const char *const *lines;
  size_t n;
  uint64_t next; /* the sink's thread only */
  atomic_ullong received;
};

static int expect_lines_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct expect_lines *e = data;
  size_t i;

  (void)subtask;
  for (i = 0; i < n; i++, e->next++) {
    if (e->next >= e->n)
      fault("extra line '%.*s'", (int)recs[i].value.len, (const char *)recs[i].value.ptr);
    else if (!buf_eq(recs[i].value, e->lines[e->next]) || recs[i].offset != e->next + 1)
      fault("line %" PRIu64 ": '%.*s' at offset %" PRIu64 ", expected '%s'", e->next + 1,
            (int)recs[i].value.len, (const char *)recs[i].value.ptr, recs[i].offset,
            e->lines[e->next]);
    atomic_fetch_add(&e->received, 1);
  }
  return 0;
}

/*
 * Writes to a FIFO: `first`, then (once the sink has `wait_for` lines, so the source has read
 * `first` and is waiting for more) `second`; then closes, or keeps the FIFO open until
 * `release` is set.
 */
struct fifo_writer {
  const char *path;
  const char *first;
  const char *second; /* may be NULL */
  atomic_ullong *received;
  unsigned long long wait_for;
  atomic_bool *release; /* NULL = close at once */
  bool ok;
  pthread_t thread;
};

static bool write_all(int fd, const char *s) {
  size_t len = strlen(s);

  while (len > 0) {
    ssize_t n = write(fd, s, len);

    if (n <= 0)
      return false;
    s += n;
    len -= (size_t)n;
  }
  return true;
}

static void *fifo_main(void *arg) {
  struct fifo_writer *w = arg;
  int fd = open(w->path, O_WRONLY); /* waits for the line source to open it */

  if (fd < 0)
    return NULL;
  w->ok = write_all(fd, w->first) && wait_count(w->received, w->wait_for, WAIT_MS) &&
          (w->second == NULL || write_all(fd, w->second));
  if (w->release != NULL) {
    int64_t deadline = now_ms() + WAIT_MS;

    while (!atomic_load(w->release) && now_ms() < deadline)
      sleep_ms(1);
  }
  close(fd);
  return NULL;
}

/* Line source on a FIFO -> expect_lines sink; the writer thread feeds it. */
static int run_fifo_job(struct fifo_writer *w, struct expect_lines *e, bool stop_when_fed) {
  weir_line_source_config lcfg = {0};
  weir_line_source *ls = NULL;
  weir_job *job = job_new("fifo");
  int src, rc;

  signal(SIGPIPE, SIG_IGN); /* a failing job must not kill the writer with SIGPIPE */
  lcfg.path = w->path;
  CHECK(weir_line_source_create(&ls, &lcfg));
  CHECK(weir_job_add_line_source(job, "lines", ls, &src));
  CHECK(weir_job_add_callback_sink(job, src, "sink", expect_lines_sink, e, NULL));
  w->received = &e->received;
  CHECK(weir_job_start(job));
  cr_assert_eq(pthread_create(&w->thread, NULL, fifo_main, w), 0);
  if (stop_when_fed) {
    cr_assert(wait_count(&e->received, e->n, WAIT_MS), "the sink got %llu of %zu lines",
              atomic_load(&e->received), e->n);
    weir_job_stop(job); /* the writer still holds the FIFO open and writes nothing */
  }
  rc = weir_job_wait(job);
  if (w->release != NULL)
    atomic_store(w->release, true);
  cr_assert_eq(pthread_join(w->thread, NULL), 0);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_line_source_destroy(ls);
  return rc;
}

Test(jobs, line_source_fifo_joins_lines_split_across_writes, .timeout = TEST_TIMEOUT) {
  static const char *const lines[] = {"one", "two", "three", "four"};
  struct expect_lines e = {lines, 4, 0, 0};
  struct fifo_writer w = {0};
  struct tmp t;

  tmp_init(&t);
  w.path = tmp_path(&t, "fifo");
  cr_assert_eq(mkfifo(w.path, 0600), 0);
  w.first = "one\ntwo\nthr";
  w.second = "ee\r\nfour"; /* the last line has no newline: it ends when the writer closes */
  w.wait_for = 2;
  run_fifo_job(&w, &e, false);
  tmp_cleanup(&t);
  check_faults();
  cr_assert(w.ok, "the writer failed");
  cr_assert_eq(atomic_load(&e.received), 4);
}

Test(jobs, line_source_fifo_stops_while_writer_idle, .timeout = TEST_TIMEOUT) {
  static const char *const lines[] = {"a", "b", "c"};
  struct expect_lines e = {lines, 3, 0, 0};
  struct fifo_writer w = {0};
  atomic_bool release;
  struct tmp t;

  atomic_init(&release, false);
  tmp_init(&t);
  w.path = tmp_path(&t, "fifo");
  cr_assert_eq(mkfifo(w.path, 0600), 0);
  w.first = "a\nb\nc\n";
  w.wait_for = 0;
  w.release = &release;
  run_fifo_job(&w, &e, true);
  tmp_cleanup(&t);
  check_faults();
  cr_assert(w.ok, "the writer failed");
  cr_assert_eq(atomic_load(&e.received), 3);
}

/*
 * A FIFO no writer has opened must not hang the job: the line source opens it non-blocking
 * and waits in poll(2), where cancel reaches it.
 */
Test(jobs, line_source_fifo_without_writer_can_be_cancelled, .timeout = TEST_TIMEOUT) {
  weir_line_source_config lcfg = {0};
  weir_line_source *ls = NULL;
  weir_job *job = job_new("fifo-no-writer");
  struct life sink_life = {0};
  weir_operator sink_op = life_op(true);
  struct tmp t;
  int src, rc;

  tmp_init(&t);
  lcfg.path = tmp_path(&t, "fifo");
  cr_assert_eq(mkfifo(lcfg.path, 0600), 0);
  CHECK(weir_line_source_create(&ls, &lcfg));
  CHECK(weir_job_add_line_source(job, "lines", ls, &src));
  CHECK(weir_job_add_sink(job, src, "sink", &sink_op, &sink_life, NULL));
  CHECK(weir_job_start(job));
  weir_job_cancel(job);
  rc = weir_job_wait(job);
  tmp_cleanup(&t);
  cr_assert_eq(rc, WEIR_ECANCELED, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_line_source_destroy(ls);
}

/* ---- file sink shared by two subtasks ----------------------------------------------------- */

#define SHARED_N 5000
#define SHARED_VLEN 32

/*
 * Two sink subtasks share one file: every line is whole. (Also a TSan check: the sink's
 * batches are serialised by a pthread mutex TSan can see, not only by the FILE lock.)
 */
Test(jobs, file_sink_shared_by_two_subtasks_writes_whole_lines, .timeout = TEST_TIMEOUT) {
  weir_generator_config gcfg = {0};
  weir_file_sink_config fcfg = {0};
  weir_generator *gen = NULL;
  weir_file_sink *fs = NULL;
  weir_job *job = job_new("shared-file");
  unsigned char *seen = calloc(SHARED_N, 1);
  size_t out_len, lines = 0;
  const char *out_path;
  char *out, *p, *nl;
  struct tmp t;
  int src, sink;

  cr_assert_not_null(seen);
  tmp_init(&t);
  out_path = tmp_path(&t, "shared.txt");
  gcfg.count = SHARED_N;
  gcfg.value_len = SHARED_VLEN;
  CHECK(weir_generator_create(&gen, &gcfg));
  fcfg.path = out_path;
  CHECK(weir_file_sink_create(&fs, &fcfg));
  CHECK(weir_job_set_batch_size(job, 64, 64 << 10));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, 2));
  CHECK(weir_job_add_file_sink(job, src, "file", fs, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 2));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_file_sink_destroy(fs);
  weir_generator_destroy(gen);
  out = read_file(out_path, &out_len);
  tmp_cleanup(&t);

  for (p = out; p < out + out_len; p = nl + 1) {
    char want[SHARED_VLEN + 1];
    unsigned long long idx;

    nl = memchr(p, '\n', (size_t)(out + out_len - p));
    cr_assert_not_null(nl, "the file does not end with a newline");
    cr_assert_eq(nl - p, SHARED_VLEN, "line %zu is %td bytes", lines + 1, nl - p);
    idx = strtoull(p, NULL, 10);
    cr_assert_lt(idx, SHARED_N);
    snprintf(want, sizeof(want), "%020llu", idx);
    memset(want + 20, 'x', SHARED_VLEN - 20);
    cr_assert(memcmp(p, want, SHARED_VLEN) == 0, "line %zu is torn: %.*s", lines + 1, SHARED_VLEN,
              p);
    cr_assert_eq(seen[idx], 0, "index %llu written twice", idx);
    seen[idx] = 1;
    lines++;
  }
  cr_assert_eq(lines, SHARED_N);
  free(out);
  free(seen);
}

/* ---- push source -------------------------------------------------------------------------- */

#define PUSH_N 100000
#define PUSH_CHUNK 1000
#define PUSH_VALUE_MAX 24

/* Records base .. base + n - 1 with value "v<offset>"; values[i] backs recs[i]. */
static void push_records(char (*values)[PUSH_VALUE_MAX], weir_record *recs, uint64_t base,
                         size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    recs[i] = weir_record_init();
    snprintf(values[i], PUSH_VALUE_MAX, "v%" PRIu64, base + i);
    recs[i].value = weir_buf_str(values[i]);
    recs[i].offset = base + i;
  }
}

struct push_host {
  weir_push_source *src;
  uint64_t n;               /* records to push: 0 = until a push fails or stop_called */
  atomic_ullong *received;  /* the sink's count */
  atomic_bool *stop_called; /* optional: no new push once set */
  atomic_ullong accepted;   /* records of the pushes that returned 0 */
  int push_rc;              /* the first non-zero push result */
  int close_rc;
  long long max_lag; /* pushed minus received right after a push returned */
  pthread_t thread;
};

/* Host thread: pushes offsets 0, 1, ... in chunks of PUSH_CHUNK, then closes the source. */
static void *push_main(void *arg) {
  struct push_host *h = arg;
  static char values[PUSH_CHUNK][PUSH_VALUE_MAX];
  static weir_record recs[PUSH_CHUNK];
  uint64_t base;

  for (base = 0; (h->n == 0 || base < h->n) && h->push_rc == 0; base += PUSH_CHUNK) {
    if (h->stop_called != NULL && atomic_load(h->stop_called))
      break;
    size_t n = h->n != 0 && h->n - base < PUSH_CHUNK ? (size_t)(h->n - base) : PUSH_CHUNK;
    long long lag;

    push_records(values, recs, base, n);
    h->push_rc = weir_push_source_push(h->src, recs, n);
    if (h->push_rc != 0)
      break;
    atomic_store(&h->accepted, base + n);
    lag = (long long)(base + n) - (long long)atomic_load(h->received);
    if (lag > h->max_lag)
      h->max_lag = lag;
  }
  h->close_rc = weir_push_source_close(h->src);
  return NULL;
}

struct push_check {
  uint64_t next; /* the sink's thread only */
  atomic_ullong received;
  atomic_bool hold; /* while set, the sink's calls wait (see push_blocked_host_released) */
  atomic_ullong calls;
};

/* Checks records arrive as offsets 0, 1, 2, ... with value "v<offset>". */
static int push_sink(void *data, int subtask, const weir_record *recs, size_t n) {
  struct push_check *pc = data;
  int64_t deadline = now_ms() + WAIT_MS;
  size_t i;

  (void)subtask;
  atomic_fetch_add(&pc->calls, 1);
  while (atomic_load(&pc->hold) && now_ms() < deadline)
    sleep_ms(1);
  for (i = 0; i < n; i++) {
    char want[PUSH_VALUE_MAX];

    snprintf(want, sizeof(want), "v%" PRIu64, pc->next);
    if (recs[i].offset != pc->next || !buf_eq(recs[i].value, want))
      fault("push sink: offset %" PRIu64 " '%.*s', expected %s", recs[i].offset,
            (int)recs[i].value.len, (const char *)recs[i].value.ptr, want);
    pc->next = recs[i].offset + 1;
    atomic_fetch_add(&pc->received, 1);
  }
  return 0;
}

/* push source (capacity; batch_records, 0 = default) -> callback sink, chained. */
static weir_job *push_job(size_t capacity, size_t batch_records, weir_push_source **ps,
                          struct push_check *pc) {
  weir_job *job = job_new("push");
  int src;

  memset(pc, 0, sizeof(*pc));
  CHECK(weir_push_source_create(ps, capacity));
  if (batch_records != 0)
    CHECK(weir_job_set_batch_size(job, batch_records, 4096)); /* before adding the source */
  CHECK(weir_job_add_push_source(job, "push", *ps, &src));
  CHECK(weir_job_add_callback_sink(job, src, "sink", push_sink, pc, NULL));
  return job;
}

/* Runs a push job to completion with a host thread pushing n records. */
static void run_push(size_t capacity, size_t batch_records, uint64_t n, struct push_host *h) {
  weir_push_source *ps = NULL;
  struct push_check pc;
  weir_job *job = push_job(capacity, batch_records, &ps, &pc);
  weir_record r = weir_record_init();
  int rc;

  memset(h, 0, sizeof(*h));
  h->src = ps;
  h->n = n;
  h->received = &pc.received;
  CHECK(weir_job_start(job));
  cr_assert_eq(pthread_create(&h->thread, NULL, push_main, h), 0);
  cr_assert_eq(pthread_join(h->thread, NULL), 0);
  r.value = weir_buf_str("late");
  cr_assert_eq(weir_push_source_push(ps, &r, 1), WEIR_ESTATE, "push after close");
  rc = weir_job_wait(job);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_push_source_destroy(ps);

  check_faults();
  cr_assert_eq(h->push_rc, 0, "push: %s", weir_err_name(h->push_rc));
  cr_assert_eq(h->close_rc, 0, "close: %s", weir_err_name(h->close_rc));
  cr_assert_eq(atomic_load(&h->accepted), n);
  cr_assert_eq(atomic_load(&pc.received), n);
  cr_assert_eq(pc.next, n);
}

Test(jobs, push_source_delivers_all_in_order, .timeout = TEST_TIMEOUT) {
  struct push_host h;

  run_push(0, 0, PUSH_N, &h);
}

/*
 * One batch of capacity and 16-record batches: a push of PUSH_CHUNK records cannot fit, so it
 * must wait for the sink. When it returns, at most the source's pool (capacity + spares) and
 * one chain link of records are still unprocessed.
 */
#define TINY_BATCH 16
#define TINY_N 20000

Test(jobs, push_source_tiny_capacity_blocks_but_completes, .timeout = TEST_TIMEOUT) {
  struct push_host h;
  long long bound = (1 + SPARE_BATCHES + 1) * TINY_BATCH;

  run_push(1, TINY_BATCH, TINY_N, &h);
  cr_assert_lt(bound, PUSH_CHUNK);
  cr_assert_leq(h.max_lag, bound, "a push returned with %lld records unprocessed (bound %lld)",
                h.max_lag, bound);
}

#define EARLY_N 10

Test(jobs, push_before_start_is_queued, .timeout = TEST_TIMEOUT) {
  static char values[EARLY_N][PUSH_VALUE_MAX];
  weir_record recs[EARLY_N];
  weir_push_source *ps = NULL;
  struct push_check pc;
  weir_job *job;
  int rc;

  push_records(values, recs, 0, EARLY_N);
  CHECK(weir_push_source_create(&ps, 0));
  cr_assert_eq(weir_push_source_push(ps, recs, EARLY_N), WEIR_ESTATE, "push before add");
  weir_push_source_destroy(ps);

  job = push_job(0, 0, &ps, &pc);
  CHECK(weir_push_source_push(ps, recs, EARLY_N)); /* added, not started: queued */
  CHECK(weir_job_start(job));
  CHECK(weir_push_source_close(ps));
  rc = weir_job_wait(job);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_push_source_destroy(ps);
  check_faults();
  cr_assert_eq(atomic_load(&pc.received), EARLY_N);
}

/*
 * Graceful stop while the host pushes: every record of a push that returned 0 is delivered,
 * and the ended source refuses pushes with WEIR_ESTATE. The host starts no new push once
 * weir_job_stop was called (see push_source_stop_refuses_pushes for why); the push in flight
 * then, typically blocked on the full queue, completes or is refused.
 */
Test(jobs, push_source_stop_delivers_every_accepted_record, .timeout = TEST_TIMEOUT) {
  weir_push_source *ps = NULL;
  struct push_check pc;
  weir_job *job = push_job(1, TINY_BATCH, &ps, &pc);
  weir_record r = weir_record_init();
  atomic_bool stop_called;
  struct push_host h;
  int rc;

  memset(&h, 0, sizeof(h));
  atomic_init(&stop_called, false);
  h.src = ps;
  h.received = &pc.received;
  h.stop_called = &stop_called;
  CHECK(weir_job_start(job));
  cr_assert_eq(pthread_create(&h.thread, NULL, push_main, &h), 0);
  cr_assert(wait_count(&pc.received, 4 * PUSH_CHUNK, WAIT_MS), "the sink never got going");
  weir_job_stop(job);
  atomic_store(&stop_called, true);
  rc = weir_job_wait(job);
  cr_assert_eq(pthread_join(h.thread, NULL), 0);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  r.value = weir_buf_str("late");
  cr_assert_eq(weir_push_source_push(ps, &r, 1), WEIR_ESTATE, "push after the source ended");
  weir_job_destroy(job);
  weir_push_source_destroy(ps);

  check_faults();
  cr_assert(h.push_rc == 0 || h.push_rc == WEIR_ESTATE, "push: %s", weir_err_name(h.push_rc));
  cr_assert_geq(atomic_load(&h.accepted), 4 * PUSH_CHUNK);
  cr_assert_eq(atomic_load(&pc.received), atomic_load(&h.accepted),
               "sink got %llu of %llu accepted", atomic_load(&pc.received),
               atomic_load(&h.accepted));
}

/*
 * A graceful stop ends a push source even while the host keeps pushing: at most the pushes the
 * source could take before it saw the stop (one poll) plus the one in flight are accepted. The
 * bound below is generous (16 chunks) because that first part depends on the machine.
 */
Test(jobs, push_source_stop_refuses_pushes, .timeout = TEST_TIMEOUT) {
  weir_push_source *ps = NULL;
  struct push_check pc;
  weir_job *job = push_job(1, TINY_BATCH, &ps, &pc);
  unsigned long long at_stop;
  struct push_host h;
  int rc;

  memset(&h, 0, sizeof(h));
  h.src = ps;
  h.received = &pc.received;
  CHECK(weir_job_start(job));
  cr_assert_eq(pthread_create(&h.thread, NULL, push_main, &h), 0);
  cr_assert(wait_count(&pc.received, 4 * PUSH_CHUNK, WAIT_MS), "the sink never got going");
  at_stop = atomic_load(&h.accepted);
  weir_job_stop(job);
  rc = weir_job_wait(job);
  cr_assert_eq(pthread_join(h.thread, NULL), 0);
  cr_assert_eq(rc, 0, "%s: %s", weir_err_name(rc), weir_job_error(job));
  weir_job_destroy(job);
  weir_push_source_destroy(ps);
  check_faults();
  cr_assert_eq(h.push_rc, WEIR_ESTATE);
  cr_assert_leq(atomic_load(&h.accepted) - at_stop, 16 * PUSH_CHUNK,
                "%llu records accepted after weir_job_stop", atomic_load(&h.accepted) - at_stop);
}

/* A host blocked on a full push source is released with WEIR_ECANCELED when the job is
 * cancelled: the sink holds its first batch, so a push of PUSH_CHUNK records cannot finish. */
Test(jobs, push_blocked_host_released_by_cancel, .timeout = TEST_TIMEOUT) {
  weir_push_source *ps = NULL;
  struct push_check pc;
  weir_job *job = push_job(1, TINY_BATCH, &ps, &pc);
  struct push_host h;
  weir_record r = weir_record_init();
  int rc;

  memset(&h, 0, sizeof(h));
  h.src = ps;
  h.n = PUSH_CHUNK;
  h.received = &pc.received;
  atomic_store(&pc.hold, true);
  CHECK(weir_job_start(job));
  cr_assert_eq(pthread_create(&h.thread, NULL, push_main, &h), 0);
  cr_assert(wait_count(&pc.calls, 1, WAIT_MS), "the sink was never called");
  weir_job_cancel(job);
  atomic_store(&pc.hold, false);
  cr_assert_eq(pthread_join(h.thread, NULL), 0);
  rc = weir_job_wait(job);
  cr_assert_eq(rc, WEIR_ECANCELED, "%s: %s", weir_err_name(rc), weir_job_error(job));
  cr_assert_eq(h.push_rc, WEIR_ECANCELED, "blocked push returned %s", weir_err_name(h.push_rc));
  r.value = weir_buf_str("late");
  cr_assert_neq(weir_push_source_push(ps, &r, 1), 0, "push into a cancelled job");
  weir_job_destroy(job);
  weir_push_source_destroy(ps);
  check_faults();
  cr_assert_lt(atomic_load(&pc.received), PUSH_CHUNK);
}

/* ---- generator resume --------------------------------------------------------------------- */

#define RESUME_N 1000
#define RESUME_AT 500

static void run_resume(int par) {
  weir_generator *gen = gen_new(RESUME_N, 0, 0);
  weir_job *job = job_new("resume");
  struct collect c;
  int src, sink;
  uint64_t o;

  collect_init(&c, RESUME_N);
  CHECK(weir_generator_set_start(gen, RESUME_AT));
  CHECK(weir_job_add_generator(job, "gen", gen, &src));
  CHECK(weir_job_set_parallelism(job, src, par));
  CHECK(weir_job_add_callback_sink(job, src, "sink", collect_cb, &c, &sink));
  CHECK(weir_job_set_parallelism(job, sink, 2));
  CHECK(weir_job_run(job));
  weir_job_destroy(job);
  weir_generator_destroy(gen);

  check_faults();
  for (o = 0; o < RESUME_N; o++)
    cr_assert_eq(seen_any(&c, o), o >= RESUME_AT ? 1u : 0u, "offset %" PRIu64 " arrived %u times",
                 o, seen_any(&c, o));
  cr_assert_eq(atomic_load(&c.total), RESUME_N - RESUME_AT);
  collect_free(&c);
}

Test(jobs, generator_set_start_resumes_p1, .timeout = TEST_TIMEOUT) {
  run_resume(1);
}

Test(jobs, generator_set_start_resumes_p3, .timeout = TEST_TIMEOUT) {
  run_resume(3);
}
