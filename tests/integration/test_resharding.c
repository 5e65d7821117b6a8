/*
 * test_resharding.c: resharding under load (issue 9). A producer thread writes numbered records
 * (record i: partition key "k<i mod KSRC_KEYS>", data "<i, 8 digits>", one record per key per
 * PutRecords) without pause while a job reads the stream with the Kinesis source, and the test
 * reshards the stream in the middle:
 *  - kinesalite: SplitShard, then MergeShards, then SplitShard again; source parallelism 2,
 *    checkpoints every 100 ms, a callback sink recording (key, index, shard) per record;
 *  - kinesis-local: UpdateShardCount up (2 -> 4) and down (4 -> 2); children also come from
 *    ChildShards;
 *  - kinesis-local, children from ChildShards only: a merge of shards of two lineages while a
 *    backlog is read (the source used to start the merged child before its second parent was
 *    known: fixed in weir__ksrc_parents_done);
 *  - kinesalite: a backlog behind a split whose parent and children belong to different source
 *    subtasks, read through a slow sink (full channels);
 *  - kinesalite, kill -9: the keyed-count child of the source crash test
 *    (tests/support/ksrc_crash_child.c) is killed with SIGKILL while the stream is being split
 *    and merged, restarted from its checkpoints each time; a last run counts to the end;
 *  - the Kinesis sink writing while its target stream is split and merged, read back with the
 *    AWS SDK (tests/kinesis-servers/sdk_read_all.js).
 * Asserted: nothing lost, no duplicates in an uninterrupted run, per partition key the records
 * come in the order they were written, every record of a shard before any record (of any key)
 * from its descendants, the checkpoint gate (a child whose parent another subtask read starts
 * only after a checkpoint completed after that parent's last record was consumed), exact keyed
 * counts through kill -9. Each test prints its figures.
 * Skipped when `npm ci` has not been run in tests/kinesis-servers.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/kinesis_fixture.h"
#include "../support/kinesis_reshard.c"
#include "../support/kinesis_server.c"
#include "../support/ksrc_job.h"
#include "connectors/kinesis/source_int.h"

static struct weir_test_kserver srv;
static weir_kinesis_client *cli;
static char dir[64];

static void teardown(void) {
  kfx_teardown(&srv, &cli, dir);
}

static void quiet(void) {
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

static void start(const char *which, const char *stream, uint32_t shards) {
  kfx_start(&srv, &cli, which);
  kfx_make_stream(cli, stream, shards);
  kfx_make_dir(dir, sizeof(dir), "weir-reshard");
}

/* ---- shards and hash keys ------------------------------------------------------------------ */

static struct weir_kinesis_shard shard_buf[64];

/* Every shard of `stream` (open and closed), in ListShards order. */
static struct weir_kinesis_shard_list list_shards(weir_kinesis_client *c, const char *stream) {
  struct weir_kinesis_shard_list l = {shard_buf, 0, 64};

  cr_assert_eq(weir__kinesis_list_all_shards(c, stream, NULL, &l), 0, "ListShards: %s",
               weir__kinesis_last_error(c)->message);
  return l;
}

static size_t count_open(const char *stream) {
  char err[512];
  long n = weir_test_count_open(cli, stream, err, sizeof(err));

  cr_assert_geq(n, 0, "%s", err);
  return (size_t)n;
}

/* Splits open shard `only` (NULL: the one with the widest hash-key range) in the middle of its
 * range (tests/support/kinesis_reshard.h). */
static void split_shard(const char *stream, const char *only) {
  char err[512];

  cr_assert_eq(weir_test_split_shard(cli, stream, only, err, sizeof(err)), 0, "%s", err);
}

static void split_widest(const char *stream) {
  split_shard(stream, NULL);
}

/* Merges the two adjacent open shards with the lowest hash keys. */
static void merge_lowest(const char *stream) {
  char err[512];

  cr_assert_eq(weir_test_merge_lowest(cli, stream, err, sizeof(err)), 0, "%s", err);
}

static void update_shard_count(const char *stream, uint32_t target) {
  int rc = weir__kinesis_update_shard_count(cli, stream, target);

  cr_assert_eq(rc, 0, "UpdateShardCount %u: %s", target, weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, stream, 30000), 0);
  cr_assert_eq(count_open(stream), target);
}

/* ---- the producer ---------------------------------------------------------------------------- */

/* Writes records 0, 1, ... in PutRecords of KSRC_KEYS records (one per key: resending a failed
 * entry alone keeps per-key order) until `stop` or `limit`, pausing pause_ms between calls. */
struct producer {
  char endpoint[64];
  const char *stream;
  long limit;
  long pause_ms;
  atomic_bool stop;
  atomic_long written; /* records acknowledged */
  int rc;
  char err[640];
};

static void *producer_main(void *arg) {
  struct producer *p = arg;
  static struct weir_kinesis_put_entry e[KSRC_KEYS];
  static struct weir_kinesis_put_result res[KSRC_KEYS];
  static char data[KSRC_KEYS][16], keys[KSRC_KEYS][16];
  weir_kinesis_config cfg;
  weir_kinesis_client *c = NULL;
  long next = 0;

  ksrc_client_config(&cfg, p->endpoint);
  if ((p->rc = weir_kinesis_client_create(&c, &cfg)) != 0)
    return NULL;
  while (!atomic_load(&p->stop) && next < p->limit) {
    size_t n = 0, failed = 0;

    for (int j = 0; j < KSRC_KEYS; j++) {
      long i = next + j;

      e[j].data = (weir_buf){(const uint8_t *)data[j],
                             (size_t)snprintf(data[j], sizeof(data[j]), "%08ld", i)};
      e[j].partition_key =
          (weir_buf){(const uint8_t *)keys[j],
                     (size_t)snprintf(keys[j], sizeof(keys[j]), "k%ld", i % KSRC_KEYS)};
      e[j].explicit_hash_key = NULL;
    }
    n = KSRC_KEYS;
    for (int attempt = 0; n > 0; attempt++) {
      size_t k = 0;

      if (attempt == 20 ||
          (p->rc = weir__kinesis_put_records(c, p->stream, e, n, res, &failed)) != 0) {
        snprintf(p->err, sizeof(p->err), "PutRecords: %s",
                 attempt == 20 ? "entries keep failing" : weir__kinesis_last_error(c)->message);
        if (p->rc == 0)
          p->rc = WEIR_EIO;
        goto done;
      }
      for (size_t j = 0; j < n; j++)
        if (!res[j].ok)
          e[k++] = e[j];
      n = k;
    }
    next += KSRC_KEYS;
    atomic_store(&p->written, next);
    if (p->pause_ms > 0)
      sleep_ms(p->pause_ms);
  }
done:
  weir_kinesis_client_destroy(c);
  return NULL;
}

static void producer_start(struct producer *p, pthread_t *th, const char *stream, long limit,
                           long pause_ms) {
  memset(p, 0, sizeof(*p));
  snprintf(p->endpoint, sizeof(p->endpoint), "%s", srv.endpoint);
  p->stream = stream;
  p->limit = limit;
  p->pause_ms = pause_ms;
  cr_assert_eq(pthread_create(th, NULL, producer_main, p), 0);
}

/* Waits until the producer has written at least n records (or stopped). */
static void producer_wait(struct producer *p, long n) {
  for (int i = 0; i < 6000 && atomic_load(&p->written) < n && atomic_load(&p->written) < p->limit;
       i++)
    sleep_ms(10);
}

static long producer_finish(struct producer *p, pthread_t th) {
  atomic_store(&p->stop, true);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(p->rc, 0, "producer: %s (%s)", p->err, weir_err_name(p->rc));
  return atomic_load(&p->written);
}

/* ---- what the source emits ----------------------------------------------------------------- */

#define MAX_RECS 40000
#define MAX_SLOTS 64

/* Filled by the callback sink (one subtask: one thread). For each record index: how often it
 * came, its consumption rank, the shard it came from (slot into shard_ids) and the job's latest
 * completed checkpoint when it was consumed. */
struct collect {
  unsigned char seen[MAX_RECS];
  long rank[MAX_RECS];
  int slot[MAX_RECS];
  uint64_t ckpt[MAX_RECS];
  weir_job *job; /* the job being read (weir_job_last_checkpoint) */
  char shard_ids[MAX_SLOTS][WEIR_KINESIS_SHARD_ID_MAX + 1];
  int n_slots;
  long last_per_key[KSRC_KEYS];
  atomic_long total;
  long dups, order_violations, bad;
};

static struct collect col;

static void collect_reset(void) {
  memset(&col, 0, sizeof(col));
  for (int k = 0; k < KSRC_KEYS; k++)
    col.last_per_key[k] = -1;
}

static int slot_of(const weir_buf meta) {
  const uint8_t *slash = memchr(meta.ptr, '/', meta.len);
  size_t off, len;

  if (slash == NULL)
    return -1;
  off = (size_t)(slash - meta.ptr) + 1;
  len = meta.len - off;
  if (len > WEIR_KINESIS_SHARD_ID_MAX)
    return -1;
  for (int i = 0; i < col.n_slots; i++)
    if (strlen(col.shard_ids[i]) == len && memcmp(col.shard_ids[i], meta.ptr + off, len) == 0)
      return i;
  if (col.n_slots == MAX_SLOTS)
    return -1;
  memcpy(col.shard_ids[col.n_slots], meta.ptr + off, len);
  col.shard_ids[col.n_slots][len] = '\0';
  return col.n_slots++;
}

static long collect_delay_ms; /* per callback: a slow sink (backpressure) */

static int collect_cb(void *data, int subtask, const weir_record *recs, size_t n) {
  (void)data;
  (void)subtask;
  if (collect_delay_ms > 0)
    sleep_ms(collect_delay_ms);
  for (size_t i = 0; i < n; i++) {
    const weir_record *r = &recs[i];
    char num[9], key[16];
    long idx;
    int slot;

    if (r->value.len != 8) {
      col.bad++;
      continue;
    }
    memcpy(num, r->value.ptr, 8);
    num[8] = '\0';
    idx = strtol(num, NULL, 10);
    snprintf(key, sizeof(key), "k%ld", idx % KSRC_KEYS);
    if (idx < 0 || idx >= MAX_RECS || r->key.len != strlen(key) ||
        memcmp(r->key.ptr, key, r->key.len) != 0 || (slot = slot_of(r->meta)) < 0) {
      col.bad++;
      continue;
    }
    if (col.seen[idx]++)
      col.dups++;
    if (idx <= col.last_per_key[idx % KSRC_KEYS])
      col.order_violations++;
    col.last_per_key[idx % KSRC_KEYS] = idx;
    col.rank[idx] = atomic_fetch_add(&col.total, 1);
    col.slot[idx] = slot;
    col.ckpt[idx] = weir_job_last_checkpoint(col.job);
  }
  return 0;
}

/* Is shard `anc` an ancestor (parent, parent's parent, ...) of shard `id` in list l? */
static bool is_ancestor(const struct weir_kinesis_shard_list *l, const char *anc, const char *id,
                        int depth) {
  for (size_t i = 0; i < l->len && depth < 64; i++) {
    if (strcmp(l->v[i].shard_id, id) != 0)
      continue;
    for (int p = 0; p < 2; p++) {
      const char *pid = p == 0 ? l->v[i].parent_shard_id : l->v[i].adjacent_parent_shard_id;

      if (pid[0] != '\0' && (strcmp(pid, anc) == 0 || is_ancestor(l, anc, pid, depth + 1)))
        return true;
    }
  }
  return false;
}

/* Per shard slot and key (column KSRC_KEYS: any key): first and last consumption rank, and the
 * latest completed checkpoint at the first and last record (-1: none consumed). */
static long first_rank[MAX_SLOTS][KSRC_KEYS + 1], last_rank[MAX_SLOTS][KSRC_KEYS + 1];
static long long first_ckpt[MAX_SLOTS], last_ckpt[MAX_SLOTS];

static void slot_ranks(long produced) {
  for (int s = 0; s < MAX_SLOTS; s++) {
    for (int k = 0; k <= KSRC_KEYS; k++) {
      first_rank[s][k] = -1;
      last_rank[s][k] = -1;
    }
    first_ckpt[s] = last_ckpt[s] = -1;
  }
  for (long i = 0; i < produced && i < MAX_RECS; i++) {
    int s = col.slot[i];

    if (!col.seen[i])
      continue;
    for (int pass = 0; pass < 2; pass++) {
      int k = pass == 0 ? (int)(i % KSRC_KEYS) : KSRC_KEYS;

      if (first_rank[s][k] < 0 || col.rank[i] < first_rank[s][k]) {
        first_rank[s][k] = col.rank[i];
        if (pass == 1)
          first_ckpt[s] = (long long)col.ckpt[i];
      }
      if (col.rank[i] > last_rank[s][k]) {
        last_rank[s][k] = col.rank[i];
        if (pass == 1)
          last_ckpt[s] = (long long)col.ckpt[i];
      }
    }
  }
}

/*
 * Ancestors before descendants: for every pair of shards where one descends from the other
 * (lineage from ListShards, any number of generations) and every key, the first record of the
 * key consumed from the descendant comes after the last one consumed from the ancestor.
 * Returns the number of (ancestor, descendant, key) triples that break it; *pairs counts those
 * with records of the key on both sides (what was actually checked). The same over all keys
 * (every record of the ancestor before any of the descendant's: what the checkpoint gate and
 * one channel per subtask give) is counted in *any_bad, over *any_pairs shard pairs.
 */
static long lineage_violations(const char *stream, long produced, long *pairs, long *any_pairs,
                               long *any_bad) {
  struct weir_kinesis_shard_list l = list_shards(cli, stream);
  long bad = 0;

  *pairs = *any_pairs = *any_bad = 0;
  slot_ranks(produced);
  for (int c = 0; c < col.n_slots; c++)
    for (int a = 0; a < col.n_slots; a++) {
      if (a == c || !is_ancestor(&l, col.shard_ids[a], col.shard_ids[c], 0))
        continue;
      for (int k = 0; k <= KSRC_KEYS; k++) {
        if (first_rank[c][k] < 0 || last_rank[a][k] < 0)
          continue;
        if (k == KSRC_KEYS) {
          (*any_pairs)++;
          *any_bad += first_rank[c][k] < last_rank[a][k];
          continue;
        }
        (*pairs)++;
        if (first_rank[c][k] < last_rank[a][k])
          bad++;
      }
    }
  return bad;
}

/*
 * The checkpoint gate, seen from the sink: for every shard whose direct parent belongs to
 * another source subtask (owner = weir__ksrc_hash mod par), the latest completed checkpoint when
 * the child's first record was consumed is newer than when the parent's last record was (the
 * checkpoint that held the parent's end completed in between). Call after lineage_violations.
 * Returns the pairs that break it; *checked counts the pairs with records on both sides and
 * *children the children of such pairs (each passed the gate: weir_kinesis_source_gated_...).
 */
static long gate_violations(const char *stream, int par, long *checked, long *children) {
  struct weir_kinesis_shard_list l = list_shards(cli, stream);
  long bad = 0;

  *checked = *children = 0;
  for (size_t i = 0; i < l.len; i++) {
    const struct weir_kinesis_shard *sh = &l.v[i];
    int c = -1, owner = (int)(weir__ksrc_hash(stream, sh->shard_id) % (uint64_t)par);
    bool counted = false;

    for (int s = 0; s < col.n_slots; s++)
      if (strcmp(col.shard_ids[s], sh->shard_id) == 0)
        c = s;
    if (c < 0 || first_ckpt[c] < 0)
      continue;
    for (int p = 0; p < 2; p++) {
      const char *pid = p == 0 ? sh->parent_shard_id : sh->adjacent_parent_shard_id;
      int a = -1;

      if (pid[0] == '\0' || (int)(weir__ksrc_hash(stream, pid) % (uint64_t)par) == owner)
        continue;
      for (int s = 0; s < col.n_slots; s++)
        if (strcmp(col.shard_ids[s], pid) == 0)
          a = s;
      if (!counted) {
        (*children)++;
        counted = true;
      }
      if (a < 0 || last_ckpt[a] < 0)
        continue;
      (*checked)++;
      if (first_ckpt[c] <= last_ckpt[a]) {
        fprintf(stderr, "gate: %s's first record consumed at checkpoint %lld, %s's last at %lld\n",
                sh->shard_id, first_ckpt[c], pid, last_ckpt[a]);
        bad++;
      }
    }
  }
  return bad;
}

struct runner {
  weir_job *job;
  int rc;
  int par; /* source parallelism */
};

static void *run_thread(void *arg) {
  struct runner *r = arg;

  r->rc = weir_job_run(r->job);
  return NULL;
}

static size_t reader_channel_capacity; /* batches per channel (0: the default, 8) */
static int64_t reader_checkpoint_ms;   /* checkpoint interval (0: 100 ms) */

/* Source (parallelism `par`, TRIM_HORIZON) -> callback sink, checkpoints every 100 ms. */
static void start_reader(struct runner *run, pthread_t *th, const char *const *streams, int par,
                         int getrecords_max, int64_t discovery_ms) {
  weir_kinesis_source_config sc;
  int src;

  weir_kinesis_source_config_init(&sc);
  sc.streams = streams;
  sc.n_streams = 1;
  ksrc_client_config(&sc.client, srv.endpoint);
  sc.initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
  sc.discovery_interval_ms = discovery_ms;
  sc.getrecords_interval_ms = 50;
  sc.getrecords_max = getrecords_max;
  memset(run, 0, sizeof(*run));
  run->par = par;
  cr_assert_eq(weir_job_create(&run->job, "reshard"), 0);
  col.job = run->job;
  cr_assert_eq(weir_job_set_checkpoint_dir(run->job, dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(
                   run->job, reader_checkpoint_ms > 0 ? reader_checkpoint_ms : 100),
               0);
  if (reader_channel_capacity > 0)
    cr_assert_eq(weir_job_set_channel_capacity(run->job, reader_channel_capacity), 0);
  cr_assert_eq(weir_job_add_kinesis_source(run->job, "kinesis", &sc, &src), 0);
  cr_assert_eq(weir_job_set_parallelism(run->job, src, par), 0);
  cr_assert_eq(weir_job_add_callback_sink(run->job, src, "out", collect_cb, NULL, NULL), 0);
  cr_assert_eq(pthread_create(th, NULL, run_thread, run), 0);
}

/* Waits for `produced` records (bounded), lets duplicates show, stops the job and checks. */
static void finish_reader(struct runner *run, pthread_t th, const char *stream, long produced,
                          int reshards, const char *label) {
  long lost = 0, pairs = 0, any_pairs, any_bad, gate_checked, gate_children, gate_bad, lineage;
  int64_t gated;
  uint64_t ckpts;

  for (int i = 0; i < 6000 && atomic_load(&col.total) < produced; i++)
    sleep_ms(10);
  sleep_ms(300); /* a duplicate would arrive now */
  weir_job_stop(run->job);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(run->rc, 0, "job: %s", weir_job_error(run->job));
  ckpts = weir_job_last_checkpoint(run->job);
  for (long i = 0; i < produced; i++)
    lost += col.seen[i] == 0;
  lineage = lineage_violations(stream, produced, &pairs, &any_pairs, &any_bad);
  gate_bad = gate_violations(stream, run->par, &gate_checked, &gate_children);
  gated = weir_job_metric_sum(run->job, "weir_kinesis_source_gated_children_total", NULL);
  fprintf(stderr,
          "[resharding %s] records %ld, consumed %ld, reshards %d, shards %d, lost %ld, "
          "duplicates %ld, per-key order violations %ld, ancestor/descendant key pairs %ld "
          "(violations %ld), shard pairs %ld (any-key violations %ld), cross-subtask "
          "parent/child pairs %ld (gate violations %ld), gated children %lld, checkpoints %llu\n",
          label, produced, atomic_load(&col.total), reshards, col.n_slots, lost, col.dups,
          col.order_violations, pairs, lineage, any_pairs, any_bad, gate_checked, gate_bad,
          (long long)gated, (unsigned long long)ckpts);
  cr_assert_eq(col.bad, 0, "%ld malformed records", col.bad);
  cr_assert_eq(lost, 0, "%ld records lost", lost);
  cr_assert_eq(col.dups, 0, "%ld duplicates", col.dups);
  cr_assert_eq(col.order_violations, 0, "%ld per-key order violations", col.order_violations);
  cr_assert_eq(lineage, 0, "%ld child-before-parent records (per key)", lineage);
  cr_assert_eq(any_bad, 0, "%ld shard pairs with a descendant record before an ancestor's",
               any_bad);
  cr_assert_eq(gate_bad, 0, "%ld children read before a checkpoint held their parent's end",
               gate_bad);
  /* Every child with records and a parent of another subtask went through the gate. */
  cr_assert_geq(gated, gate_children, "%lld children passed the gate, %ld expected",
                (long long)gated, gate_children);
  cr_assert_eq(atomic_load(&col.total), produced);
  cr_assert_gt(pairs, 0, "no key was read from both a shard and its descendant");
  cr_assert_geq(ckpts, 1, "no checkpoint completed during the run");
  weir_job_destroy(run->job);
}

TestSuite(resharding, .init = quiet, .fini = teardown, .timeout = 200);

/* kinesalite: split, merge, split while the producer writes and the source (parallelism 2)
 * reads. */
Test(resharding, split_merge_split_under_load) {
  const char *streams[] = {"s"};
  struct producer p;
  struct runner run;
  pthread_t pth, jth;
  long produced;

  start("kinesalite", "s", 2);
  collect_reset();
  producer_start(&p, &pth, "s", MAX_RECS, 4);
  producer_wait(&p, 1000);
  start_reader(&run, &jth, streams, 2, 100, 300);
  producer_wait(&p, 3000);
  split_widest("s"); /* 3 open shards */
  producer_wait(&p, 5000);
  merge_lowest("s"); /* 2 */
  producer_wait(&p, 7000);
  split_widest("s"); /* 3 */
  producer_wait(&p, 9000);
  produced = producer_finish(&p, pth);
  cr_assert_eq(count_open("s"), 3);
  finish_reader(&run, jth, "s", produced, 3, "kinesalite split/merge/split");
}

/* kinesis-local: UpdateShardCount 2 -> 4 -> 2 while the producer writes; kinesis-local is slow,
 * so fewer records. */
Test(resharding, update_shard_count_up_and_down_under_load) {
  const char *streams[] = {"s"};
  struct producer p;
  struct runner run;
  pthread_t pth, jth;
  long produced;

  start("kinesis-local", "s", 2);
  collect_reset();
  producer_start(&p, &pth, "s", MAX_RECS, 10);
  producer_wait(&p, 300);
  start_reader(&run, &jth, streams, 2, 100, 300);
  producer_wait(&p, 800);
  update_shard_count("s", 4);
  producer_wait(&p, 1600);
  update_shard_count("s", 2);
  producer_wait(&p, 2400);
  produced = producer_finish(&p, pth);
  finish_reader(&run, jth, "s", produced, 2, "kinesis-local UpdateShardCount 2->4->2");
}

/*
 * The checkpoint gate. A backlog behind a split, read by two subtasks through a slow sink (40 ms
 * per batch) behind long channels (64 batches): on stream "x" the parent (shardId-000000000000)
 * and shard 1 hash to subtask 1 and both children to subtask 0, so the parent's last records and
 * its children's first ones travel through different channels, and when the parent ends its
 * channel still holds many batches the sink has not taken. Periodic checkpoints are 10 s apart,
 * so no barrier alignment happens to hold the children's channel back meanwhile (with barriers
 * every 100 ms, alignment alone often hides the race): each child must wait for a checkpoint
 * that holds the parent's end, which the gate asks for. Asserted besides the usual: no child
 * record before a parent record (any key), the checkpoint seen by the sink at a child's first
 * record newer than at the parent's last, both children counted in
 * weir_kinesis_source_gated_children_total. With the gate disabled (mutation), this test fails
 * (children consumed in the parent's checkpoint epoch; per-key violations in most runs).
 */
Test(resharding, cross_subtask_child_after_backlog) {
  const char *streams[] = {"x"};
  struct runner run;
  pthread_t jth;

  start("kinesalite", "x", 2);
  collect_reset();
  cr_assert_eq(ksrc_put_plain(cli, "x", 0, 16000), 0);
  split_shard("x", "shardId-000000000000");
  cr_assert_eq(ksrc_put_plain(cli, "x", 16000, 4000), 0);
  collect_delay_ms = 40;
  reader_channel_capacity = 64;
  reader_checkpoint_ms = 10000;
  start_reader(&run, &jth, streams, 2, 10000, 300);
  finish_reader(&run, jth, "x", 20000, 1, "backlog, split, slow sink");
}

/*
 * A merge of two shards whose parents are different shards, learnt from ChildShards only
 * (discovery at start only, as between two listings of the default 10 s interval): when the
 * first parent of the merged child ends, its other parent may not be known yet (its own parent
 * is still being read). The child must still wait for it. Stream "m": shard 0 split unevenly
 * into 1 (2 of the 20 keys) and 2 (18 keys) before the job starts; while shard 2's backlog is
 * read slowly, 1 is split into 3 and 4, 2 into 5 and 6, and 4 merged with 5 into 7.
 */
Test(resharding, merge_across_lineages_learnt_from_child_shards) {
  const char *streams[] = {"m"};
  struct weir_kpl_u128 h[KSRC_KEYS], lo2 = {0, 0};
  char key[8], at[WEIR_KINESIS_HASH_KEY_MAX + 1];
  struct runner run;
  pthread_t jth;
  int rc;

  start("kinesis-local", "m", 1);
  for (int k = 0; k < KSRC_KEYS; k++) {
    snprintf(key, sizeof(key), "k%d", k);
    cr_assert_eq(weir__kpl_hash_key(NULL, weir_buf_str(key), &h[k]), 0);
  }
  /* The split point: just above the second smallest key hash. */
  for (int pass = 0; pass < 2; pass++) {
    struct weir_kpl_u128 min = {UINT64_MAX, UINT64_MAX};

    for (int k = 0; k < KSRC_KEYS; k++)
      if ((pass == 0 || weir__kpl_u128_cmp(h[k], lo2) > 0) && weir__kpl_u128_cmp(h[k], min) < 0)
        min = h[k];
    lo2 = min;
  }
  lo2.lo++;
  if (lo2.lo == 0)
    lo2.hi++;
  weir__kpl_u128_format(lo2, at);
  rc = weir__kinesis_split_shard(cli, "m", "shardId-000000000000", at);
  cr_assert_eq(rc, 0, "SplitShard: %s", weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, "m", 30000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "m", 0, 1000), 0);
  collect_reset();
  start_reader(&run, &jth, streams, 1, 40, -1);
  for (int i = 0; i < 3000 && atomic_load(&col.total) == 0; i++)
    sleep_ms(10);
  split_shard("m", "shardId-000000000001"); /* 3, 4 */
  split_shard("m", "shardId-000000000002"); /* 5, 6 */
  rc = weir__kinesis_merge_shards(cli, "m", "shardId-000000000004", "shardId-000000000005");
  cr_assert_eq(rc, 0, "MergeShards: %s", weir__kinesis_last_error(cli)->message);
  cr_assert_eq(weir__kinesis_wait_active(cli, "m", 30000), 0);
  cr_assert_eq(ksrc_put_plain(cli, "m", 1000, 400), 0);
  cr_assert_lt(atomic_load(&col.total), 1000, "the backlog was read before the merge");
  finish_reader(&run, jth, "m", 1400, 4, "kinesis-local merge across lineages, ChildShards only");
}

/* ---- kill -9 in the middle of the resharding ---------------------------------------------- */

static pid_t spawn_child(const char *stream, const char *out, const char *mode, int par) {
  char ps[16];
  pid_t pid;

  snprintf(ps, sizeof(ps), "%d", par);
  pid = fork();
  if (pid == 0) {
    execl(WEIR_KSRC_CHILD, WEIR_KSRC_CHILD, srv.endpoint, stream, dir, out, mode, ps, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/*
 * The keyed-count child (source parallelism 1 or 2 in turn, checkpoints every 50 ms) is killed
 * with SIGKILL 6 times while the producer writes 6000 records; during the first three runs the
 * stream is split, merged and split again. A last run reads to the end: every key's count must
 * be exactly what was written.
 */
Test(resharding, kill9_during_resharding_keeps_counts_exact) {
  const long total = 6000;
  unsigned long counts[KSRC_KEYS] = {0};
  struct producer p;
  pthread_t pth;
  char out[128];
  int kills = 0, reshards = 0, status, finals;
  long long read_last = -1;
  long mismatched = 0, counted = 0;
  pid_t pid;

  start("kinesalite", "c", 2);
  snprintf(out, sizeof(out), "%s/out.txt", dir);
  srand((unsigned)getpid());
  producer_start(&p, &pth, "c", total, 8);
  for (int i = 0; i < 6; i++) {
    pid = spawn_child("c", out, "run", 1 + i % 2);
    cr_assert_gt(pid, 0);
    sleep_ms(200 + rand() % 300);
    if (i < 3) {
      /* Reshard while this run reads; kill it soon after. */
      if (i == 1)
        merge_lowest("c");
      else
        split_widest("c");
      reshards++;
      sleep_ms(50 + rand() % 250);
    } else {
      sleep_ms(rand() % 400);
    }
    if (kill(pid, SIGKILL) == 0)
      kills++;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "run %d ended by itself (exit %d): it failed", i,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  producer_wait(&p, total);
  cr_assert_eq(producer_finish(&p, pth), total);

  pid = spawn_child("c", out, "final", 2);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "final run failed");
  finals = ksrc_read_finals(out, counts);
  {
    char rp[160];
    FILE *f;

    snprintf(rp, sizeof(rp), "%s.read", out);
    cr_assert_not_null(f = fopen(rp, "r"));
    cr_assert_eq(fscanf(f, "%lld", &read_last), 1);
    fclose(f);
  }
  for (int k = 0; k < KSRC_KEYS; k++) {
    counted += (long)counts[k];
    mismatched += counts[k] != (unsigned long)(total / KSRC_KEYS);
  }
  fprintf(stderr,
          "[resharding kill -9] records %ld, reshards %d, kills %d, open shards %zu, final run "
          "read %lld, counted %ld, lost %ld, counted twice %ld, keys off %ld\n",
          total, reshards, kills, count_open("c"), read_last, counted,
          counted < total ? total - counted : 0L, counted > total ? counted - total : 0L,
          mismatched);
  cr_assert_geq(kills, 5, "only %d runs were killed", kills);
  cr_assert_lt(read_last, total, "the final run read everything (%lld): nothing was restored",
               read_last);
  cr_assert_eq(finals, KSRC_KEYS, "%d FINAL lines, expected %d", finals, KSRC_KEYS);
  for (int k = 0; k < KSRC_KEYS; k++)
    cr_assert_eq(counts[k], (unsigned long)(total / KSRC_KEYS), "key k%d counted %lu times", k,
                 counts[k]);
}

/* ---- the sink writing while its target stream is resharded ------------------------------- */

#define SINK_N 12000

/* Paces the generator: about 4000 records/s, so the resharding happens mid-run. */
static int pace(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  (void)ctx;
  (void)data;
  (void)out;
  if (in->offset % 4 == 0)
    sleep_ms(1);
  return 0;
}

/* Reads the stream back with sdk_read_all.js (shards in ListShards order: parents first) and
 * checks records "<index, 20 digits>" with keys "k<index mod KSRC_KEYS>". */
static void sdk_check(const char *stream, long n, long *read, long *dups, long *order_bad) {
  static unsigned char seen[SINK_N];
  long last[KSRC_KEYS];
  char cmd[1024], *line = NULL;
  size_t line_cap = 0;
  bool done = false;
  FILE *f;

  memset(seen, 0, sizeof(seen));
  for (int k = 0; k < KSRC_KEYS; k++)
    last[k] = -1;
  *read = *dups = *order_bad = 0;
  snprintf(cmd, sizeof(cmd),
           "cd '%s' && env -u LD_PRELOAD NODE_NO_WARNINGS=1 node sdk_read_all.js '%s' '%s'",
           weir_test_kserver_dir(), srv.endpoint, stream);
  cr_assert_not_null(f = popen(cmd, "r"));
  while (getline(&line, &line_cap, f) > 0) {
    json_t *o = json_loads(line, 0, NULL);
    const char *b64, *pk;
    unsigned char tmp[128];
    char num[21], want[16];
    long idx;
    int len;

    cr_assert_not_null(o, "bad line from sdk_read_all.js: %s", line);
    if (json_is_true(json_object_get(o, "done"))) {
      done = true;
      json_decref(o);
      continue;
    }
    b64 = json_string_value(json_object_get(o, "data_b64"));
    pk = json_string_value(json_object_get(o, "pk"));
    cr_assert(b64 != NULL && pk != NULL && strlen(b64) < 100, "bad record: %s", line);
    len = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)strlen(b64));
    cr_assert_geq(len, 20, "record too short: %s", line);
    memcpy(num, tmp, 20);
    num[20] = '\0';
    idx = strtol(num, NULL, 10);
    cr_assert(idx >= 0 && idx < n, "unexpected index %ld", idx);
    snprintf(want, sizeof(want), "k%ld", idx % KSRC_KEYS);
    cr_assert_str_eq(pk, want, "record %ld has key %s", idx, pk);
    if (seen[idx]++)
      (*dups)++;
    if (idx <= last[idx % KSRC_KEYS])
      (*order_bad)++;
    last[idx % KSRC_KEYS] = idx;
    (*read)++;
    json_decref(o);
  }
  free(line);
  cr_assert_eq(pclose(f), 0, "sdk_read_all.js failed");
  cr_assert(done, "sdk_read_all.js did not finish");
  for (long i = 0; i < n; i++)
    cr_assert(seen[i], "record %ld is missing", i);
}

/* A generator -> Kinesis sink job (checkpoints every 100 ms) writes 12000 records while the
 * target stream is split, merged and split again; the SDK reads every record back, per key in
 * order. */
Test(resharding, sink_writes_through_split_and_merge) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen;
  struct runner run = {0};
  pthread_t th;
  long read, dups, order_bad;
  int src, paced, reshards = 0;
  const long at[] = {2000, 5000, 8000};

  start("kinesalite", "out", 2);
  g.count = SINK_N;
  g.key_count = KSRC_KEYS;
  g.value_len = 24;
  g.records_per_poll = 64;
  cr_assert_eq(weir_job_create(&run.job, "ksink-reshard"), 0);
  cr_assert_eq(weir_generator_create(&gen, &g), 0);
  cr_assert_eq(weir_job_add_generator(run.job, "gen", gen, &src), 0);
  cr_assert_eq(weir_job_map(run.job, src, "pace", pace, NULL, &paced), 0);
  weir_kinesis_sink_config_init(&k);
  k.stream = "out";
  ksrc_client_config(&k.client, srv.endpoint);
  k.max_in_flight = 4;
  k.linger_ms = 20;
  cr_assert_eq(weir_job_add_kinesis_sink(run.job, paced, "kinesis", &k, NULL), 0);
  cr_assert_eq(weir_job_set_checkpoint_dir(run.job, dir), 0);
  cr_assert_eq(weir_job_set_checkpoint_interval(run.job, 100), 0);
  cr_assert_eq(pthread_create(&th, NULL, run_thread, &run), 0);
  for (int r = 0; r < 3; r++) {
    for (int i = 0;
         i < 6000 && weir_job_metric_sum(run.job, "weir_kinesis_sink_records_total", NULL) < at[r];
         i++)
      sleep_ms(5);
    /* Only a reshard that happens while records still flow counts. */
    cr_assert_lt(weir_job_metric_sum(run.job, "weir_kinesis_sink_records_total", NULL), SINK_N,
                 "the job ended before reshard %d", r + 1);
    if (r == 1)
      merge_lowest("out");
    else
      split_widest("out");
    reshards++;
  }
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(run.rc, 0, "job: %s", weir_job_error(run.job));
  cr_assert_eq(weir_job_metric_sum(run.job, "weir_kinesis_sink_records_total", NULL), SINK_N);
  weir_job_destroy(run.job);
  weir_generator_destroy(gen);

  sdk_check("out", SINK_N, &read, &dups, &order_bad);
  fprintf(stderr,
          "[resharding sink] records %d, reshards %d, read back %ld, lost 0, duplicates %ld, "
          "per-key order violations %ld\n",
          SINK_N, reshards, read, dups, order_bad);
  cr_assert_eq(dups, 0, "%ld duplicates in an uninterrupted run", dups);
  cr_assert_eq(order_bad, 0, "%ld per-key order violations", order_bad);
  cr_assert_eq(read, SINK_N);
}
