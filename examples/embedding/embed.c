/*
 * embed.c: weir inside a host program (docs/embedding.md).
 *
 * The host runs a job on a thread of its own, pushes records into it from its main thread
 * through a push source, and receives the results through a callback sink:
 *
 *   push source -> map (value to upper case) -> callback sink (counts and prints a few)
 *
 * Build against an installed weir:  cc embed.c $(pkg-config --cflags --libs weir) -lpthread
 * Run:  ./embed [records]      (default 100000)
 */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

/* map: the value in upper case, written into the subtask's scratch memory. */
static int to_upper(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  uint8_t *buf = weir_ctx_scratch(ctx, in->value.len + 1);

  (void)data;
  if (buf == NULL)
    return WEIR_ETOOBIG;
  for (size_t i = 0; i < in->value.len; i++)
    buf[i] = (uint8_t)toupper(in->value.ptr[i]);
  out->value.ptr = buf;
  return 0;
}

/* The results, as the host sees them. The sink runs on a job thread: use atomics or a lock. */
struct results {
  atomic_ulong received;
};

static int on_results(void *data, int subtask, const weir_record *recs, size_t n) {
  struct results *res = data;
  unsigned long before = atomic_fetch_add(&res->received, n);

  (void)subtask;
  for (size_t i = 0; i < n && before + i < 3; i++)
    printf("result %lu: %.*s\n", before + i, (int)recs[i].value.len,
           (const char *)recs[i].value.ptr);
  return 0;
}

/* The job's own thread: runs it until the push source is closed and everything is processed. */
static void *job_thread(void *arg) {
  weir_job *job = arg;
  intptr_t rc = weir_job_run(job);

  return (void *)rc;
}

int main(int argc, char **argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  struct results res = {0};
  weir_push_source *src = NULL;
  weir_job *job = NULL;
  pthread_t thread;
  void *ret;
  int src_id, map_id, rc;

  if ((rc = weir_job_create(&job, "embedded")) != 0 ||
      (rc = weir_push_source_create(&src, 0)) != 0 ||
      (rc = weir_job_add_push_source(job, "input", src, &src_id)) != 0 ||
      (rc = weir_job_map(job, src_id, "upper", to_upper, NULL, &map_id)) != 0 ||
      (rc = weir_job_add_callback_sink(job, map_id, "results", on_results, &res, NULL)) != 0) {
    fprintf(stderr, "embed: building the job: %s %s\n", weir_strerror(rc),
            job != NULL ? weir_job_error(job) : "");
    goto done;
  }
  if (pthread_create(&thread, NULL, job_thread, job) != 0) {
    fprintf(stderr, "embed: cannot start the job thread\n");
    rc = WEIR_ESYS;
    goto done;
  }

  /* The host's own work: push records as they come (blocks while the job is behind). */
  for (unsigned long i = 0; i < n; i++) {
    char value[64];
    weir_record rec = weir_record_init();

    rec.value.ptr = (const uint8_t *)value;
    rec.value.len = (size_t)snprintf(value, sizeof(value), "event number %lu", i);
    if ((rc = weir_push_source_push(src, &rec, 1)) != 0) {
      fprintf(stderr, "embed: push: %s\n", weir_strerror(rc));
      break;
    }
  }
  weir_push_source_close(src); /* the input ends: the job finishes and its thread returns */
  pthread_join(thread, &ret);
  if (rc == 0)
    rc = (int)(intptr_t)ret;
  if (rc != 0)
    fprintf(stderr, "embed: job: %s %s\n", weir_strerror(rc), weir_job_error(job));
  else
    printf("pushed %lu records, received %lu results\n", n, atomic_load(&res.received));
done:
  weir_job_destroy(job);
  weir_push_source_destroy(src);
  return rc == 0 && atomic_load(&res.received) == n ? 0 : 1;
}
