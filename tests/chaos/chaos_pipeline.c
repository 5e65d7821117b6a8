/*
 * chaos_pipeline.c: the chaos test (issue 9; docs/guarantees.md, "Chaos"). The YAML pipeline
 * tests/chaos/chaos.yaml run by this build's `weir` CLI, killed with SIGKILL at random moments
 * and restarted, again and again, while a producer feeds its input and a fault-injecting proxy
 * sits between weir and the server:
 *
 *   producer thread --PutRecords--> kinesalite "chaos-in" (4 shards)           (no faults)
 *   weir run chaos.yaml: Kinesis source (JSON) -> timestamps(ts) -> key_by(k)
 *        -> 2 s event-time tumbling count -> Kinesis sink "chaos-out"          (via the proxy)
 *
 * Each cycle starts weir (parallelism 1, 2, 3 in turn, so restores also rescale), lets it run
 * for a random 0.3..2.5 s (seeded), then kills it with SIGKILL. Meanwhile chaos-in is
 * resharded every --reshard-every seconds (split the widest shard, merge the lowest two, in
 * turn). After the last cycle the
 * producer stops and a final run with STOP_AT_END=true reads to the tip, fires every window and
 * exits. Then both streams are read back:
 *   - the reference: per (key, 2 s window) the number of records in chaos-in;
 *   - the results in chaos-out: {"key":..,"window_start":..,"window_end":..,"count":..}.
 * Asserted (exit 1 otherwise): every (key, window) of the reference has a result whose count is
 * exactly the reference's (counted once: never less = lost, never more = counted twice); no
 * result for a window the input does not have; every run but the killed ones exits 0 (weir
 * survives the faults); a result written more than once (at-least-once output after a kill)
 * appears at most cycles + 1 times. Printed: cycles, restores, records, windows, results,
 * lost, counted twice, duplicates, faults injected by kind.
 *
 * Usage: chaos_pipeline --weir PATH --pipeline chaos.yaml [--cycles N (50)] [--seed N (1)]
 *                       [--rate RECORDS_PER_S (200)] [--keys N (32)]
 *                       [--reshard-every S (10; 0 = none)] [--max-reshards N (40)]
 * Exit 0 = passed, 1 = failed, 2 = usage, 77 = skipped (node or the npm packages missing).
 * ctest runs it as chaos_short; scripts/chaos.sh runs a long form.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weir/weir.h>

#include "../support/fault_proxy.c"
#include "../support/kinesis_producer.c"
#include "../support/kinesis_reshard.c"
#include "../support/kinesis_server.c"
#include "connectors/kinesis/client_int.h"

#define CHAOS_IN "chaos-in"
#define CHAOS_OUT "chaos-out"
#define CHAOS_EXIT_SKIP 77
/* Event time: record i has ts = CHAOS_T0 + i * CHAOS_TS_STEP (ms); windows as in chaos.yaml. */
#define CHAOS_T0 INT64_C(1700000000000)
#define CHAOS_TS_STEP 10
#define CHAOS_WINDOW_MS 2000
#define CHAOS_MAX_KEYS 1024
/* Kill after a random time in [CHAOS_KILL_MIN_MS, CHAOS_KILL_MAX_MS). */
#define CHAOS_KILL_MIN_MS 300
#define CHAOS_KILL_MAX_MS 2500
/* The final run must read everything and exit within this. */
#define CHAOS_FINAL_TIMEOUT_MS 300000

/*
 * Faults, first match wins. throttle, http_500/503, reset, expired_iterator and
 * partial_failure forward nothing; truncate and slow forward the request (a truncated
 * PutRecords answer makes the sink send the entries again: duplicates in the output, allowed
 * by at-least-once). Rates are per request.
 */
static const char chaos_rules[] =
    "[{\"op\":\"GetRecords\",\"fault\":\"throttle\",\"rate\":0.03},"
    "{\"op\":\"GetRecords\",\"fault\":\"expired_iterator\",\"rate\":0.02},"
    "{\"op\":\"GetRecords\",\"fault\":\"slow\",\"rate\":0.02,\"delay_ms\":300},"
    "{\"op\":\"PutRecords\",\"fault\":\"partial_failure\",\"rate\":0.05,\"fraction\":0.3},"
    "{\"op\":\"PutRecords\",\"fault\":\"throttle\",\"rate\":0.02},"
    "{\"op\":\"PutRecords\",\"fault\":\"truncate\",\"rate\":0.01},"
    "{\"op\":\"*\",\"fault\":\"http_500\",\"rate\":0.01},"
    "{\"op\":\"*\",\"fault\":\"http_503\",\"rate\":0.01},"
    "{\"op\":\"*\",\"fault\":\"reset\",\"rate\":0.01}]";
static const char *const chaos_fault_kinds[] = {
    "throttle", "expired_iterator", "slow",     "partial_failure",
    "truncate", "http_500",         "http_503", "reset"};

struct chaos_opts {
  const char *weir;     /* borrowed: argv */
  const char *pipeline; /* borrowed: argv */
  long cycles;
  long rate;
  long keys;
  long reshard_every; /* seconds between reshards of chaos-in; 0 = none */
  long max_reshards;
  uint64_t seed;
};

/* Reshards chaos-in while the cycles run: split the widest shard, merge the lowest two, in
 * turn, every reshard_every seconds, at most max_reshards times. */
struct chaos_resharder {
  const char *endpoint; /* borrowed: the server's */
  const struct chaos_opts *o;
  atomic_bool stop;
  atomic_long splits, merges;
  atomic_int failed; /* 1 after a reshard call failed: err says why */
  char err[512];
};

/* Per (key, window): the reference and what the results said. */
struct chaos_cell {
  long expected;  /* records of the input in this window */
  long results;   /* results written for it */
  long max_count; /* largest count among them */
  long low;       /* results with a count below the reference (a firing before late records) */
};

struct chaos_results {
  struct chaos_cell *cells; /* keys x windows; owned */
  long windows;
  long records;   /* input records read back */
  long out;       /* results read back */
  long phantom;   /* results for a (key, window) the input does not have */
  long malformed; /* results that are not the expected JSON */
  long dup;       /* results equal to an earlier one (same key, window, count) */
  long max_mult;  /* most copies of one result */
};

/* xorshift64*: the kill times, from --seed. */
static uint64_t chaos_rand(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

static void *chaos_reshard(void *arg) {
  struct chaos_resharder *r = arg;
  weir_kinesis_client *c = NULL;
  weir_kinesis_config cfg;

  weir_test_kserver_client_config(&cfg, r->endpoint);
  if (weir_kinesis_client_create(&c, &cfg) != 0) {
    snprintf(r->err, sizeof(r->err), "cannot create a client");
    atomic_store(&r->failed, 1);
    return NULL;
  }
  for (long n = 0; n < r->o->max_reshards && !atomic_load(&r->stop); n++) {
    int64_t until = weir_test_now_ms() + r->o->reshard_every * 1000;

    while (weir_test_now_ms() < until && !atomic_load(&r->stop))
      weir_test_sleep_ms(50);
    if (atomic_load(&r->stop))
      break;
    if (n % 2 == 0 ? weir_test_split_shard(c, CHAOS_IN, NULL, r->err, sizeof(r->err)) != 0
                   : weir_test_merge_lowest(c, CHAOS_IN, r->err, sizeof(r->err)) != 0) {
      atomic_store(&r->failed, 1);
      break;
    }
    atomic_fetch_add(n % 2 == 0 ? &r->splits : &r->merges, 1);
  }
  weir_kinesis_client_destroy(c);
  return NULL;
}

/*
 * Starts `weir run` on the pipeline, its output appended to `log`. Returns the pid, or -1.
 */
static pid_t chaos_spawn(const struct chaos_opts *o, const char *endpoint, const char *dir,
                         const char *log, long parallelism, bool stop_at_end) {
  char par[24];
  pid_t pid;

  snprintf(par, sizeof(par), "%ld", parallelism);
  pid = fork();
  if (pid != 0)
    return pid;
  if (freopen(log, "a", stdout) == NULL || dup2(fileno(stdout), 2) < 0)
    _exit(126);
  setenv("KINESIS_ENDPOINT", endpoint, 1);
  setenv("CHAOS_DIR", dir, 1);
  setenv("PARALLELISM", par, 1);
  setenv("STOP_AT_END", stop_at_end ? "true" : "false", 1);
  setenv("AWS_ACCESS_KEY_ID", WEIR_TEST_ACCESS_KEY_ID, 1);
  setenv("AWS_SECRET_ACCESS_KEY", WEIR_TEST_SECRET_ACCESS_KEY, 1);
  unsetenv("AWS_SESSION_TOKEN");
  unsetenv("AWS_PROFILE");
  execl(o->weir, o->weir, "run", o->pipeline, (char *)NULL);
  _exit(127);
}

/* Appends a line to the log (between runs: no writer is running). */
static void chaos_log_line(const char *log, const char *fmt, long a, long b) {
  FILE *f = fopen(log, "a");

  if (f == NULL)
    return;
  fprintf(f, fmt, a, b);
  fclose(f);
}

/* Prints the last `lines` lines of the log, to show why a run failed. */
static void chaos_dump_log(const char *log, int lines) {
  char cmd[512];

  snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, log);
  if (system(cmd) != 0)
    fprintf(stderr, "(could not show %s)\n", log);
}

/* Lines of the log containing `needle`. */
static long chaos_log_count(const char *log, const char *needle) {
  char line[4096];
  long n = 0;
  FILE *f = fopen(log, "r");

  if (f == NULL)
    return 0;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strstr(line, needle) != NULL)
      n++;
  fclose(f);
  return n;
}

typedef int (*chaos_record_fn)(void *arg, const uint8_t *data, size_t len);

/* Reads every record of every shard (open and closed) of `stream` and calls fn on each. */
static int chaos_read_stream(weir_kinesis_client *c, const char *stream, chaos_record_fn fn,
                             void *arg) {
  static struct weir_kinesis_shard shard_buf[WEIR_TEST_RESHARD_MAX_SHARDS];
  struct weir_kinesis_shard_list l = {shard_buf, 0, WEIR_TEST_RESHARD_MAX_SHARDS};
  struct weir_kinesis_records r;
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  int rc;

  if ((rc = weir__kinesis_list_all_shards(c, stream, NULL, &l)) != 0)
    return rc;
  weir__kinesis_records_init(&r);
  for (size_t s = 0; s < l.len && rc == 0; s++) {
    struct weir_kinesis_iterator_req req = {stream, l.v[s].shard_id, WEIR_KINESIS_ITER_TRIM_HORIZON,
                                            NULL, 0};

    if ((rc = weir__kinesis_get_shard_iterator(c, &req, it)) != 0)
      break;
    for (int empty = 0; empty < 2 && rc == 0;) {
      if ((rc = weir__kinesis_get_records(c, it, 10000, &r)) != 0)
        break;
      empty = r.n == 0 && r.millis_behind_latest <= 0 ? empty + 1 : 0;
      for (size_t i = 0; i < r.n && rc == 0; i++)
        rc = fn(arg, r.recs[i].data.ptr, r.recs[i].data.len);
      if (!r.has_next)
        break;
      snprintf(it, sizeof(it), "%s", r.next_iterator);
    }
  }
  weir__kinesis_records_free(&r);
  return rc;
}

/* "k<n>" -> n, or -1. */
static long chaos_key_index(const char *k, long keys) {
  char *end;
  long v;

  if (k == NULL || k[0] != 'k')
    return -1;
  v = strtol(k + 1, &end, 10);
  return *end == '\0' && v >= 0 && v < keys ? v : -1;
}

struct chaos_scan {
  struct chaos_results *res;
  long keys;
  /* The first pass over the input finds the number of windows; the second counts. */
  bool counting;
  /* Distinct results seen: (key, window, count), to count duplicates. */
  struct chaos_seen {
    long key, window, count, n;
  } * seen; /* owned by the caller */
  size_t n_seen, cap_seen;
};

static int chaos_on_input(void *arg, const uint8_t *data, size_t len) {
  struct chaos_scan *s = arg;
  json_error_t err;
  json_t *v = json_loadb((const char *)data, len, 0, &err);
  long key = -1, w = -1;

  if (v != NULL) {
    key = chaos_key_index(json_string_value(json_object_get(v, "k")), s->keys);
    w = (long)((json_integer_value(json_object_get(v, "ts")) - CHAOS_T0) / CHAOS_WINDOW_MS);
    json_decref(v);
  }
  if (key < 0 || w < 0) {
    fprintf(stderr, "chaos: unexpected input record: %.*s\n", (int)len, (const char *)data);
    return -1;
  }
  if (!s->counting) {
    if (w + 1 > s->res->windows)
      s->res->windows = w + 1;
    s->res->records++;
    return 0;
  }
  s->res->cells[key * s->res->windows + w].expected++;
  return 0;
}

static int chaos_on_result(void *arg, const uint8_t *data, size_t len) {
  struct chaos_scan *s = arg;
  struct chaos_results *res = s->res;
  json_error_t err;
  json_t *v = json_loadb((const char *)data, len, 0, &err);
  long key = -1, w = -1, count = -1;
  int64_t start = -1, end = -1;
  struct chaos_cell *c;
  size_t i;

  res->out++;
  if (v != NULL) {
    key = chaos_key_index(json_string_value(json_object_get(v, "key")), s->keys);
    start = json_integer_value(json_object_get(v, "window_start"));
    end = json_integer_value(json_object_get(v, "window_end"));
    count = (long)json_integer_value(json_object_get(v, "count"));
    json_decref(v);
  }
  if (key < 0 || start < CHAOS_T0 || (start - CHAOS_T0) % CHAOS_WINDOW_MS != 0 ||
      end != start + CHAOS_WINDOW_MS || count < 1) {
    if (res->malformed++ < 5)
      fprintf(stderr, "chaos: unexpected result: %.*s\n", (int)len, (const char *)data);
    return 0;
  }
  w = (long)((start - CHAOS_T0) / CHAOS_WINDOW_MS);
  if (w >= res->windows || res->cells[key * res->windows + w].expected == 0) {
    if (res->phantom++ < 5)
      fprintf(stderr, "chaos: result for a window without input: %.*s\n", (int)len,
              (const char *)data);
    return 0;
  }
  c = &res->cells[key * res->windows + w];
  c->results++;
  if (count > c->max_count)
    c->max_count = count;
  if (count < c->expected)
    c->low++;
  for (i = 0; i < s->n_seen; i++)
    if (s->seen[i].key == key && s->seen[i].window == w && s->seen[i].count == count)
      break;
  if (i < s->n_seen) {
    res->dup++;
    if (++s->seen[i].n > res->max_mult)
      res->max_mult = s->seen[i].n;
    return 0;
  }
  if (s->n_seen == s->cap_seen) {
    size_t cap = s->cap_seen != 0 ? s->cap_seen * 2 : 1024;
    struct chaos_seen *n = realloc(s->seen, cap * sizeof(*n));

    if (n == NULL)
      return -1;
    s->seen = n;
    s->cap_seen = cap;
  }
  s->seen[s->n_seen++] = (struct chaos_seen){key, w, count, 1};
  if (res->max_mult < 1)
    res->max_mult = 1;
  return 0;
}

static int chaos_parse(int argc, char **argv, struct chaos_opts *o) {
  memset(o, 0, sizeof(*o));
  o->cycles = 50;
  o->rate = 200;
  o->keys = 32;
  o->reshard_every = 10;
  o->max_reshards = 40;
  o->seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *val = argv[i + 1];
    char *end;
    long v;

    if (strcmp(k, "--weir") == 0) {
      o->weir = val;
      continue;
    }
    if (strcmp(k, "--pipeline") == 0) {
      o->pipeline = val;
      continue;
    }
    v = strtol(val, &end, 10);
    if (strcmp(k, "--reshard-every") == 0 && *end == '\0' && v >= 0) {
      o->reshard_every = v;
      continue;
    }
    if (*end != '\0' || v < 1) {
      fprintf(stderr, "%s: %s needs a positive number, not '%s'\n", argv[0], k, val);
      return -1;
    }
    if (strcmp(k, "--cycles") == 0)
      o->cycles = v;
    else if (strcmp(k, "--rate") == 0)
      o->rate = v;
    else if (strcmp(k, "--keys") == 0 && v <= CHAOS_MAX_KEYS)
      o->keys = v;
    else if (strcmp(k, "--seed") == 0)
      o->seed = (uint64_t)v;
    else if (strcmp(k, "--max-reshards") == 0)
      o->max_reshards = v;
    else {
      fprintf(stderr, "%s: unknown or out-of-range option %s\n", argv[0], k);
      return -1;
    }
  }
  if (argc % 2 == 0 || o->weir == NULL || o->pipeline == NULL) {
    fprintf(stderr,
            "usage: %s --weir PATH --pipeline chaos.yaml [--cycles N] [--seed N] "
            "[--rate RECORDS_PER_S] [--keys N] [--reshard-every S (0 = none)] [--max-reshards N]\n",
            argv[0]);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct weir_test_kserver srv = {0};
  struct weir_test_fproxy px = {0};
  struct weir_test_producer prod = {0};
  struct chaos_resharder rs = {0};
  struct chaos_results res = {0};
  struct chaos_scan scan = {0};
  struct chaos_opts o;
  weir_kinesis_client *admin = NULL;
  weir_kinesis_config acfg;
  pthread_t rs_thread;
  bool rs_started = false;
  char why[512], dir[64] = "", log[128], cmd[128];
  long unexpected = 0, lost = 0, twice = 0, missing = 0, low = 0, cycles = 0, restores;
  int64_t t0, final_ms = 0;
  uint64_t rng;
  int rc, exit_code = 1, status = 0;
  pid_t pid;

  srv.stdin_fd = -1;
  px.stdin_fd = -1;
  if (chaos_parse(argc, argv, &o) != 0)
    return 2;
  if (access(o.weir, X_OK) != 0 || access(o.pipeline, R_OK) != 0) {
    fprintf(stderr, "chaos: %s or %s is missing\n", o.weir, o.pipeline);
    return 2;
  }
  rng = o.seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  rc = weir_test_kserver_start(&srv, "kinesalite", why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP) {
    printf("SKIP: %s\n", why);
    return CHAOS_EXIT_SKIP;
  }
  if (rc != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "cannot start kinesalite: %s\n", why);
    goto done;
  }
  rc = weir_test_fproxy_start(&px, srv.endpoint, o.seed, chaos_rules, why, sizeof(why));
  if (rc == WEIR_TEST_KSERVER_SKIP) {
    printf("SKIP: %s\n", why);
    exit_code = CHAOS_EXIT_SKIP;
    goto done;
  }
  if (rc != WEIR_TEST_KSERVER_OK) {
    fprintf(stderr, "cannot start the fault proxy: %s\n", why);
    goto done;
  }
  weir_test_kserver_client_config(&acfg,
                                  srv.endpoint); /* streams are made and read without faults */
  if (weir_kinesis_client_create(&admin, &acfg) != 0 ||
      weir__kinesis_create_stream(admin, CHAOS_IN, 4) != 0 ||
      weir__kinesis_create_stream(admin, CHAOS_OUT, 2) != 0 ||
      weir__kinesis_wait_active(admin, CHAOS_IN, 30000) != 0 ||
      weir__kinesis_wait_active(admin, CHAOS_OUT, 30000) != 0) {
    fprintf(stderr, "cannot create the streams\n");
    goto done;
  }
  strcpy(dir, "/tmp/weir-chaos-XXXXXX");
  if (mkdtemp(dir) == NULL) {
    dir[0] = '\0';
    perror("mkdtemp");
    goto done;
  }
  snprintf(log, sizeof(log), "%s/weir.log", dir);
  prod.endpoint = srv.endpoint; /* the producer bypasses the proxy: the input is exact */
  prod.stream = CHAOS_IN;
  prod.rate = o.rate;
  prod.keys = o.keys;
  prod.ts0 = CHAOS_T0;
  prod.ts_step = CHAOS_TS_STEP;
  if (weir_test_producer_start(&prod) != 0)
    goto done;
  rs.endpoint = srv.endpoint;
  rs.o = &o;
  if (o.reshard_every > 0) {
    if (pthread_create(&rs_thread, NULL, chaos_reshard, &rs) != 0)
      goto done;
    rs_started = true;
  }
  printf("chaos: %ld cycles, %ld records/s over %ld keys, seed %" PRIu64 "; %s 4 shards, "
         "resharded every %ld s (split, merge in turn; at most %ld)\n",
         o.cycles, o.rate, o.keys, o.seed, CHAOS_IN, o.reshard_every, o.max_reshards);
  printf("pipeline: %s (weir run, parallelism 1/2/3 in turn, checkpoints every 200 ms), "
         "weir's Kinesis calls through the fault proxy\n",
         o.pipeline);
  fflush(stdout);

  /* The cycles: start, run a random while, SIGKILL. */
  t0 = weir_test_now_ms();
  for (; cycles < o.cycles; cycles++) {
    long par = 1 + cycles % 3;
    int64_t run_ms =
        CHAOS_KILL_MIN_MS + (int64_t)(chaos_rand(&rng) % (CHAOS_KILL_MAX_MS - CHAOS_KILL_MIN_MS));
    int64_t until;

    chaos_log_line(log, "==== cycle %ld: parallelism %ld ====\n", cycles + 1, par);
    if ((pid = chaos_spawn(&o, px.endpoint, dir, log, par, false)) < 0) {
      perror("fork");
      goto done;
    }
    until = weir_test_now_ms() + run_ms;
    while (weir_test_now_ms() < until) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = 0;
        break;
      }
      weir_test_sleep_ms(20);
    }
    if (pid == 0) { /* it ended by itself: weir must survive the faults */
      unexpected++;
      fprintf(stderr, "chaos: cycle %ld: weir exited by itself (status %d) before the kill\n",
              cycles + 1, status);
      chaos_dump_log(log, 30);
      continue;
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (atomic_load(&prod.rc) != 0) {
      fprintf(stderr, "producer failed: %s\n", weir_strerror(atomic_load(&prod.rc)));
      goto done;
    }
    if ((cycles + 1) % 10 == 0) {
      printf("[%6.1f s] %ld cycles, %ld records produced\n",
             (double)(weir_test_now_ms() - t0) / 1000.0, cycles + 1, atomic_load(&prod.produced));
      fflush(stdout);
    }
  }
  weir_test_producer_stop(&prod);
  if (rs_started) {
    atomic_store(&rs.stop, true);
    pthread_join(rs_thread, NULL);
    rs_started = false;
  }
  if (atomic_load(&rs.failed)) {
    fprintf(stderr, "chaos: resharding failed: %s\n", rs.err);
    goto done;
  }

  /* The final run: reads to the tip, fires every window, exits. */
  chaos_log_line(log, "==== final run: parallelism %ld (%ld) ====\n", 2, 0);
  final_ms = weir_test_now_ms();
  if ((pid = chaos_spawn(&o, px.endpoint, dir, log, 2, true)) < 0) {
    perror("fork");
    goto done;
  }
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (weir_test_now_ms() - final_ms > CHAOS_FINAL_TIMEOUT_MS) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fprintf(stderr, "chaos: the final run did not end within %d s\n",
              CHAOS_FINAL_TIMEOUT_MS / 1000);
      chaos_dump_log(log, 40);
      goto done;
    }
    weir_test_sleep_ms(50);
  }
  final_ms = weir_test_now_ms() - final_ms;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "chaos: the final run failed (status %d)\n", status);
    chaos_dump_log(log, 40);
    goto done;
  }
  restores = chaos_log_count(log, "restored from checkpoint");

  /* The reference from chaos-in, then the results in chaos-out. */
  scan.res = &res;
  scan.keys = o.keys;
  if (chaos_read_stream(admin, CHAOS_IN, chaos_on_input, &scan) != 0 || res.windows == 0) {
    fprintf(stderr, "chaos: cannot read %s back\n", CHAOS_IN);
    goto done;
  }
  if ((res.cells = calloc((size_t)(o.keys * res.windows), sizeof(*res.cells))) == NULL)
    goto done;
  scan.counting = true;
  if (chaos_read_stream(admin, CHAOS_IN, chaos_on_input, &scan) != 0 ||
      chaos_read_stream(admin, CHAOS_OUT, chaos_on_result, &scan) != 0) {
    fprintf(stderr, "chaos: cannot read the streams back\n");
    goto done;
  }
  {
    long windows = 0;

    for (long i = 0; i < o.keys * res.windows; i++) {
      struct chaos_cell *c = &res.cells[i];

      if (c->expected == 0)
        continue;
      windows++;
      low += c->low;
      if (c->results == 0) {
        missing++;
        lost += c->expected;
      } else if (c->max_count < c->expected) {
        lost += c->expected - c->max_count;
      } else if (c->max_count > c->expected) {
        twice += c->max_count - c->expected;
      }
      if ((c->results == 0 || c->max_count != c->expected) && missing + lost + twice < 20)
        fprintf(stderr, "chaos: k%ld window %ld: expected %ld, results %ld, largest count %ld\n",
                i / res.windows, i % res.windows, c->expected, c->results, c->max_count);
    }
    printf("---- chaos result ----\n");
    printf("cycles: %ld killed with SIGKILL, %ld restores from a checkpoint, %ld runs ended by "
           "themselves (must be 0); final run %.1f s; total %.1f s\n",
           cycles, restores, unexpected, (double)final_ms / 1000.0,
           (double)(weir_test_now_ms() - t0) / 1000.0);
    printf("records: produced %ld, in %s %ld, windows (key x 2 s) %ld; reshards of %s: %ld "
           "splits, %ld merges\n",
           atomic_load(&prod.produced), CHAOS_IN, res.records, windows, CHAOS_IN,
           atomic_load(&rs.splits), atomic_load(&rs.merges));
    printf("results: %ld in %s; lost %ld (must be 0: records not counted, %ld windows without "
           "a result), counted twice %ld (must be 0), duplicates %ld (same result written "
           "again after a kill; most copies of one result %ld, bound %ld), results below the "
           "final count %ld (a window fired before a late record), malformed %ld, for windows "
           "without input %ld\n",
           res.out, CHAOS_OUT, lost, missing, twice, res.dup, res.max_mult, cycles + 1, low,
           res.malformed, res.phantom);
  }
  printf("faults injected:");
  for (size_t i = 0; i < sizeof(chaos_fault_kinds) / sizeof(chaos_fault_kinds[0]); i++)
    printf(" %s=%ld", chaos_fault_kinds[i], weir_test_fproxy_injected(&px, chaos_fault_kinds[i]));
  printf("\n");
  if (lost == 0 && twice == 0 && unexpected == 0 && res.malformed == 0 && res.phantom == 0 &&
      res.max_mult <= cycles + 1 && res.records > 0 && cycles == o.cycles) {
    printf("CHAOS OK\n");
    exit_code = 0;
  } else {
    printf("CHAOS FAILED\n");
  }

done:
  weir_test_producer_stop(&prod);
  if (rs_started) {
    atomic_store(&rs.stop, true);
    pthread_join(rs_thread, NULL);
  }
  free(res.cells);
  free(scan.seen);
  weir_kinesis_client_destroy(admin);
  weir_test_fproxy_stop(&px);
  weir_test_kserver_stop(&srv);
  if (dir[0] != '\0' && exit_code != 0)
    fprintf(stderr, "chaos: kept %s (weir.log: every run's output)\n", dir);
  else if (dir[0] != '\0') {
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", dir);
  }
  return exit_code;
}
