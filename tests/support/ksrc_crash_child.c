/*
 * ksrc_crash_child: runs the Kinesis source keyed-count job (tests/support/ksrc_job.h) once
 * against ENDPOINT, reading STREAM from TRIM_HORIZON with checkpoints every 50 ms into DIR; the
 * crash test (tests/integration/test_kinesis_source_crash.c) kills it with SIGKILL.
 * MODE "run" reads until killed; MODE "final" stops once every shard is read to its end
 * (stop_at_end), writes each key's final count to OUT as "FINAL k<i> <n>" lines and the number
 * of user records it read itself to OUT.read.
 * Reads are kept slow (small GetRecords limit, small slices per poll) so that kills land in
 * the middle of batches and of aggregates.
 * Usage: ksrc_crash_child ENDPOINT STREAM DIR OUT MODE PARALLELISM
 * Exit: 0 when the job finished, 1 otherwise.
 */
#include <time.h>

#include "ksrc_job.h"

/* Chained to the source: 1 ms per record, so that a run lasts long enough to be killed in the
 * middle of the aggregates and the snapshots fall between sub-records of one aggregate. */
static int slow(weir_ctx *ctx, void *data, const weir_record *in, weir_record *out) {
  struct timespec ts = {0, 1000000};

  (void)ctx;
  (void)data;
  (void)in;
  (void)out;
  nanosleep(&ts, NULL);
  return 0;
}

int main(int argc, char **argv) {
  weir_kinesis_source_config sc;
  weir_file_sink_config fc = {NULL, false, false};
  weir_file_sink *sink = NULL;
  weir_job *job = NULL;
  const char *streams[1];
  bool final;
  int src, thr, cnt, rc;

  if (argc != 7) {
    fprintf(stderr, "usage: %s ENDPOINT STREAM DIR OUT MODE PARALLELISM\n", argv[0]);
    return 2;
  }
  final = strcmp(argv[5], "final") == 0;
  streams[0] = argv[2];
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
  weir_kinesis_source_config_init(&sc);
  sc.streams = streams;
  sc.n_streams = 1;
  ksrc_client_config(&sc.client, argv[1]);
  sc.initial_position = WEIR_KINESIS_START_TRIM_HORIZON;
  sc.getrecords_max = 25;
  sc.getrecords_interval_ms = 20;
  sc.max_records_per_poll = 7;
  sc.discovery_interval_ms = 1000;
  sc.stop_at_end = final;
  fc.path = argv[4];
  if ((rc = weir_job_create(&job, "ksrc-crash")) != 0 ||
      (rc = weir_job_set_checkpoint_dir(job, argv[3])) != 0 ||
      (rc = weir_job_set_checkpoint_interval(job, 50)) != 0 ||
      (rc = weir_job_add_kinesis_source(job, "kinesis", &sc, &src)) != 0 ||
      (rc = weir_job_set_parallelism(job, src, atoi(argv[6]))) != 0 ||
      (rc = weir_job_map(job, src, "slow", slow, NULL, &thr)) != 0 ||
      (rc = weir_job_set_parallelism(job, thr, atoi(argv[6]))) != 0 ||
      (rc = ksrc_add_count(job, thr, 2, &cnt)) != 0 ||
      (rc = weir_file_sink_create(&sink, &fc)) != 0 ||
      (rc = weir_job_add_file_sink(job, cnt, "out", sink, NULL)) != 0)
    goto done;
  rc = weir_job_run(job);
  if (rc == 0 && final) {
    /* What this run read itself: less than everything when it resumed from a checkpoint. */
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s.read", argv[4]);
    if ((f = fopen(path, "w")) != NULL) {
      fprintf(f, "%lld\n",
              (long long)weir_job_metric_sum(job, "weir_kinesis_source_records_total", NULL));
      fclose(f);
    }
  }
done:
  if (rc != 0)
    fprintf(stderr, "ksrc_crash_child: %s: %s\n", weir_strerror(rc),
            job != NULL ? weir_job_error(job) : "");
  weir_job_destroy(job);
  weir_file_sink_destroy(sink);
  return rc == 0 ? 0 : 1;
}
