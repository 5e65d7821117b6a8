/*
 * window_crash_child: runs the window test job once (tests/support/window_job.h) with
 * checkpoints every 50 ms into DIR, appending its results to OUT; the restore test kills it.
 * Usage: window_crash_child DIR OUT RECORDS     Exit: 0 when the job finished, 1 otherwise.
 */
#include "window_job.h"

int main(int argc, char **argv) {
  struct wj_opts o = {NULL, NULL, 0, 2, 50, NULL, NULL};
  struct wj_built b;
  int rc;

  if (argc != 4) {
    fprintf(stderr, "usage: %s DIR OUT RECORDS\n", argv[0]);
    return 2;
  }
  o.dir = argv[1];
  o.out = argv[2];
  o.records = strtoull(argv[3], NULL, 10);
  weir_log_set_handler(NULL, NULL, WEIR_LOG_WARN);
  if ((rc = wj_build(&o, &b)) == 0)
    rc = weir_job_run(b.job);
  if (rc != 0)
    fprintf(stderr, "window_crash_child: %s: %s\n", weir_strerror(rc),
            b.job != NULL ? weir_job_error(b.job) : "");
  wj_destroy(&b);
  return rc == 0 ? 0 : 1;
}
