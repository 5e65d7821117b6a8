/*
 * ksink_crash_child: the Kinesis sink's crash test child (tests/integration/test_kinesis_sink_e2e.c
 * kills it with SIGKILL and starts it again). Runs generator -> Kinesis sink with checkpoints
 * every 100 ms into DIR; a restart resumes from the last completed checkpoint.
 * Records: value "<index, 20 digits>" padded to 40 bytes, partition key "k<index mod KEYS>".
 * Usage: ksink_crash_child ENDPOINT STREAM DIR RECORDS KEYS     Exit: 0 when the job finished.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

int main(int argc, char **argv) {
  weir_generator_config g = {0};
  weir_kinesis_sink_config k;
  weir_generator *gen = NULL;
  weir_job *job = NULL;
  int src, rc;

  if (argc != 6) {
    fprintf(stderr, "usage: %s ENDPOINT STREAM DIR RECORDS KEYS\n", argv[0]);
    return 2;
  }
  weir_log_set_handler(NULL, NULL, WEIR_LOG_ERROR);
  g.count = strtoull(argv[4], NULL, 10);
  g.key_count = (uint32_t)strtoul(argv[5], NULL, 10);
  g.value_len = 40;
  g.records_per_poll = 32;
  weir_kinesis_sink_config_init(&k);
  k.stream = argv[2];
  k.client.region = "us-east-1";
  k.client.endpoint = argv[1];
  k.client.access_key_id = "AKIDEXAMPLE";
  k.client.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  k.max_buffered_records = 2000;
  k.linger_ms = 20;
  if ((rc = weir_generator_create(&gen, &g)) == 0 &&
      (rc = weir_job_create(&job, "ksink-crash")) == 0 &&
      (rc = weir_job_add_generator(job, "gen", gen, &src)) == 0 &&
      (rc = weir_job_add_kinesis_sink(job, src, "kinesis", &k, NULL)) == 0 &&
      (rc = weir_job_set_checkpoint_dir(job, argv[3])) == 0 &&
      (rc = weir_job_set_checkpoint_interval(job, 100)) == 0)
    rc = weir_job_run(job);
  if (rc != 0)
    fprintf(stderr, "ksink_crash_child: %s: %s\n", weir_strerror(rc),
            job != NULL ? weir_job_error(job) : "");
  weir_job_destroy(job);
  weir_generator_destroy(gen);
  return rc == 0 ? 0 : 1;
}
