/*
 * bench_state.c: keyed-state snapshot/restore and checkpoint-store commit figures.
 *
 *   1. restore time of a 1 M-key value state (issue target: <= 1 s), plus snapshot time;
 *   2. a bare synced LMDB commit (one small put), p50/p99: the baseline;
 *   3. a store checkpoint of small state (begin, 2 blob puts, synced commit), p50/p99 and its
 *      ratio to the baseline (issue target for trigger-to-complete: p50 <= 3x baseline; the
 *      coordinator's own overhead comes on top of this figure).
 *
 * Usage: bench_state [keys] [commits]   (defaults 1000000 and 200). Works in a mkdtemp
 * directory under $TMPDIR (default /tmp), so the sync figures are those of that file system.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/ckpt_store_int.h"
#include "runtime/state_int.h"

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p) {
  qsort(v, n, sizeof(*v), cmp_double);
  return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

static int bench_restore(unsigned keys) {
  struct weir__keyed_backend *a = NULL, *b = NULL;
  struct weir__snapshot_blob blob = {NULL, 0, 0};
  void *st = NULL;
  char k[32], v[32];
  double t0, t_fill, t_snap, t_restore, best = 1e9;
  unsigned i;
  int rc, run;

  if ((rc = weir__keyed_backend_create(128, 0, 127, 0, &a)) != 0 ||
      (rc = weir__keyed_backend_register(a, WEIR__STATE_VALUE, "count", &st)) != 0)
    goto fail;
  t0 = now_s();
  for (i = 0; i < keys; i++) {
    weir_buf key = {(const uint8_t *)k, (size_t)snprintf(k, sizeof(k), "user-%08u", i)};
    weir_buf val = {(const uint8_t *)v, (size_t)snprintf(v, sizeof(v), "%u", i * 31u)};

    if ((rc = weir_value_state_put(st, key, val)) != 0)
      goto fail;
  }
  t_fill = now_s() - t0;
  t0 = now_s();
  if ((rc = weir__keyed_backend_snapshot(a, "count-op", 0, 1, NULL, 0, &blob)) != 0)
    goto fail;
  t_snap = now_s() - t0;
  for (run = 0; run < 3; run++) {
    weir_buf in = {blob.ptr, blob.len};

    if ((rc = weir__keyed_backend_create(128, 0, 127, 0, &b)) != 0)
      goto fail;
    t0 = now_s();
    if ((rc = weir__keyed_backend_restore(b, in, "bench", NULL, NULL, NULL)) != 0)
      goto fail;
    t_restore = now_s() - t0;
    if (t_restore < best)
      best = t_restore;
    if (weir__keyed_backend_key_count(b) != keys) {
      fprintf(stderr, "restored %llu keys, expected %u\n",
              (unsigned long long)weir__keyed_backend_key_count(b), keys);
      rc = WEIR_EINVAL;
      goto fail;
    }
    weir__keyed_backend_destroy(b);
    b = NULL;
  }
  printf("keyed state, %u keys (value state, ~13-byte keys, ~8-byte values):\n", keys);
  printf("  fill        %8.3f s  (%.2f M puts/s), %.1f MiB charged\n", t_fill, keys / t_fill / 1e6,
         weir__keyed_backend_bytes(a) / 1048576.0);
  printf("  snapshot    %8.3f s  blob %.1f MiB\n", t_snap, blob.len / 1048576.0);
  printf("  restore     %8.3f s  (best of 3; target <= 1 s: %s)\n", best,
         best <= 1.0 ? "met" : "MISSED");
  free(blob.ptr);
  weir__keyed_backend_destroy(a);
  return 0;

fail:
  fprintf(stderr, "bench_restore: %s: %s\n", weir_err_name(rc), weir__state_last_error());
  free(blob.ptr);
  weir__keyed_backend_destroy(a);
  weir__keyed_backend_destroy(b);
  return 1;
}

static int bench_bare_commit(const char *dir, int n, double *lat) {
  MDB_env *env = NULL;
  MDB_txn *txn;
  MDB_dbi dbi;
  uint64_t i;
  int mrc;

  if ((mrc = mdb_env_create(&env)) != 0 || (mrc = mdb_env_set_mapsize(env, 64 << 20)) != 0 ||
      (mrc = mdb_env_open(env, dir, 0, 0600)) != 0)
    goto fail;
  for (i = 0; i < (uint64_t)n; i++) {
    char val[64] = "small value";
    MDB_val k = {sizeof(i), &i}, v = {sizeof(val), val};
    double t0 = now_s();

    if ((mrc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
        (mrc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 || (mrc = mdb_put(txn, dbi, &k, &v, 0)) ||
        (mrc = mdb_txn_commit(txn)) != 0)
      goto fail;
    lat[i] = now_s() - t0;
  }
  mdb_env_close(env);
  return 0;

fail:
  fprintf(stderr, "bare commit: %s\n", mdb_strerror(mrc));
  mdb_env_close(env);
  return 1;
}

static int bench_store_checkpoint(const char *dir, int n, double *lat) {
  struct weir__ckpt_store *s = NULL;
  uint8_t blob[2048];
  uint64_t id;
  int rc = 0, t;

  memset(blob, 0xab, sizeof(blob));
  if ((rc = weir__ckpt_store_open(dir, NULL, &s)) != 0)
    goto fail;
  for (id = 1; id <= (uint64_t)n; id++) {
    Weir__Ckpt__CheckpointMetadata m = WEIR__CKPT__CHECKPOINT_METADATA__INIT;
    double t0 = now_s();

    if ((rc = weir__ckpt_store_begin(s, id)) != 0)
      goto fail;
    for (t = 0; t < 2; t++) {
      weir_buf b = {blob, sizeof(blob)};

      if ((rc = weir__ckpt_store_put(s, id, "count-op", t, b)) != 0)
        goto fail;
    }
    m.job_name = "bench";
    m.max_parallelism = 128;
    if ((rc = weir__ckpt_store_commit(s, id, &m)) != 0)
      goto fail;
    lat[id - 1] = now_s() - t0;
  }
  weir__ckpt_store_close(s);
  return 0;

fail:
  fprintf(stderr, "store checkpoint: %s: %s\n", weir_err_name(rc), weir__ckpt_store_last_error());
  weir__ckpt_store_close(s);
  return 1;
}

int main(int argc, char **argv) {
  unsigned keys = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000000;
  int n = argc > 2 ? atoi(argv[2]) : 200;
  const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  char dir[512], bare[600], store[600], cmd[700];
  double *lat_bare, *lat_store, b50, b99, s50, s99;
  int rc = 1;

  if (keys == 0 || n < 2)
    return 2;
  snprintf(dir, sizeof(dir), "%s/weir-bench-XXXXXX", tmp);
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(bare, sizeof(bare), "%s/bare", dir);
  snprintf(store, sizeof(store), "%s/store", dir);
  lat_bare = calloc((size_t)n, sizeof(double));
  lat_store = calloc((size_t)n, sizeof(double));
  if (lat_bare == NULL || lat_store == NULL || mkdir(bare, 0700) != 0)
    goto out;
  if (bench_restore(keys) != 0 || bench_bare_commit(bare, n, lat_bare) != 0 ||
      bench_store_checkpoint(store, n, lat_store) != 0)
    goto out;
  b50 = pct(lat_bare, (size_t)n, 0.50) * 1e3;
  b99 = pct(lat_bare, (size_t)n, 0.99) * 1e3;
  s50 = pct(lat_store, (size_t)n, 0.50) * 1e3;
  s99 = pct(lat_store, (size_t)n, 0.99) * 1e3;
  printf("LMDB, %d commits each, in %s:\n", n, dir);
  printf("  bare synced commit (1 put)               p50 %7.3f ms  p99 %7.3f ms\n", b50, b99);
  printf("  store checkpoint (begin, 2x2 KiB, commit) p50 %7.3f ms  p99 %7.3f ms\n", s50, s99);
  printf("  ratio store/bare p50 %.2fx (target for trigger-to-complete <= 3x: %s)\n", s50 / b50,
         s50 <= 3 * b50 ? "met at store level" : "MISSED at store level");
  rc = 0;

out:
  free(lat_bare);
  free(lat_store);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return rc;
}
