/*
 * run.c: `weir run FILE`: loads a pipeline, runs its job, and supervises it: signals (first:
 * stop with savepoint; second: cancel), the status line, and the Prometheus endpoint.
 *
 * Threads: SIGINT and SIGTERM are blocked before any thread starts, so every thread inherits
 * the mask and only the supervisor thread receives them (sigtimedwait). The main thread waits
 * for the job; the supervisor wakes every SUPERVISE_TICK_MS to check signals, print the status
 * and refresh the job-level metrics; libmicrohttpd serves /metrics on its own thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "weir/checkpoint.h"
#include "weir/metrics.h"
#include "weir/pipeline.h"

#define SUPERVISE_TICK_MS 200
/* Status every 2 s on a terminal, every 10 s as a log line otherwise. */
#define STATUS_TTY_MS 2000
#define STATUS_LOG_MS 10000

/* Series read for the status line (registered by the runtime and the connectors). */
#define METRIC_IN "weir_source_records_total"
#define METRIC_OUT "weir_sink_records_total"
#define METRIC_LAG "weir_kinesis_source_millis_behind_latest"
#define METRIC_BACKPRESSURE "weir_backpressure_ratio_percent"

struct run {
  weir_pipeline *p;
  weir_job *job; /* borrowed from p */
  const char *file;
  const char *ckpt_dir;     /* borrowed from p; NULL = checkpoints off */
  atomic_bool done;         /* the job ended: the supervisor exits */
  atomic_bool started;      /* weir_job_start returned 0: checkpoint stats may be read */
  int signals;              /* signals received (supervisor thread only) */
  bool savepoint_requested; /* set by the supervisor, read after join */
  uint64_t failed_before;   /* failed checkpoints when the savepoint was requested */
  int64_t status_ms;        /* 0 = no status */
  bool tty;
  /* Job-level series kept up to date from the checkpoint statistics by the supervisor and the
   * HTTP thread; metrics_mu makes each refresh (read, then add the difference) atomic. */
  pthread_mutex_t metrics_mu;
  weir_metric *m_completed, *m_failed, *m_last_id, *m_last_dur, *m_restored;
};

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void register_metrics(struct run *r) {
  /* Failures leave the series NULL: updates are then no-ops. */
  (void)weir_job_metric(r->job, WEIR_METRIC_COUNTER, "weir_checkpoints_completed_total",
                        "Checkpoints completed by this run.", NULL, &r->m_completed);
  (void)weir_job_metric(r->job, WEIR_METRIC_COUNTER, "weir_checkpoints_failed_total",
                        "Checkpoints aborted (timed out or failed) in this run.", NULL,
                        &r->m_failed);
  (void)weir_job_metric(r->job, WEIR_METRIC_GAUGE, "weir_checkpoint_last_id",
                        "Id of the latest checkpoint completed or restored from.", NULL,
                        &r->m_last_id);
  (void)weir_job_metric(r->job, WEIR_METRIC_GAUGE, "weir_checkpoint_last_duration_ms",
                        "Trigger to completion of the last completed checkpoint.", NULL,
                        &r->m_last_dur);
  (void)weir_job_metric(r->job, WEIR_METRIC_GAUGE, "weir_checkpoint_restored_id",
                        "Checkpoint this run restored from (0 = fresh start).", NULL,
                        &r->m_restored);
}

static void refresh_metrics(struct run *r, weir_checkpoint_stats *st) {
  memset(st, 0, sizeof(*st));
  /* The endpoint serves from before the job starts; its checkpoint statistics are only read
   * once weir_job_start has set them up (reading them during start races with it). */
  if (!atomic_load(&r->started))
    return;
  pthread_mutex_lock(&r->metrics_mu);
  weir_job_checkpoint_stats(r->job, st);
  weir_metric_add(r->m_completed, (int64_t)st->completed - weir_metric_value(r->m_completed));
  weir_metric_add(r->m_failed, (int64_t)st->failed - weir_metric_value(r->m_failed));
  weir_metric_set(r->m_last_id, (int64_t)weir_job_last_checkpoint(r->job));
  weir_metric_set(r->m_last_dur, st->last_duration_us / 1000);
  weir_metric_set(r->m_restored, (int64_t)st->restored_id);
  pthread_mutex_unlock(&r->metrics_mu);
}

/* One series name summed (counters over subtasks) and maximised (gauges such as lag). */
struct series_arg {
  const char *name;
  int64_t sum, max;
  bool found;
};

static int series_cb(void *arg, const weir_metric_info *m) {
  struct series_arg *a = arg;

  for (; a->name != NULL; a++) {
    if (strcmp(m->name, a->name) != 0)
      continue;
    if (!a->found || m->value > a->max)
      a->max = m->value;
    a->sum += m->value;
    a->found = true;
  }
  return 0;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls) {
  static const char not_found[] = "not found: try /metrics\n";
  struct run *r = cls;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  weir_checkpoint_stats st;
  char *text = NULL;
  size_t len = 0;

  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return MHD_NO;
  if (strcmp(url, "/metrics") != 0) {
    resp = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
      return MHD_NO;
    ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, resp);
    MHD_destroy_response(resp);
    return ret;
  }
  refresh_metrics(r, &st);
  if (weir_job_metrics_text(r->job, &text, &len) != 0)
    return MHD_NO;
  resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static int start_http(struct run *r, const char *bind_addr, int port, struct MHD_Daemon **out) {
  struct sockaddr_in sin;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *info;

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1) {
    weir__cli_log(WEIR_LOG_ERROR, "run: --metrics-bind: '%s' is not an IPv4 address", bind_addr);
    return WEIR_CLI_USAGE;
  }
  d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, serve, r,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_CONNECTION_LIMIT,
                       (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (d == NULL) {
    weir__cli_log(WEIR_LOG_ERROR,
                  "run: cannot serve metrics on %s:%d (port in use, or not allowed); choose "
                  "another --metrics-port",
                  bind_addr, port);
    return WEIR_CLI_RUNTIME;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  weir__cli_log(WEIR_LOG_INFO, "metrics on http://%s:%u/metrics", bind_addr,
                info != NULL ? (unsigned)info->port : (unsigned)port);
  *out = d;
  return 0;
}

/* ---- status ------------------------------------------------------------------------------ */

struct rates {
  int64_t at_ms, in, out;
};

/* Appends to a bounded string. */
static void add(char *buf, size_t cap, const char *fmt, ...) WEIR_PRINTF(3, 4);
static void add(char *buf, size_t cap, const char *fmt, ...) {
  size_t n = strlen(buf);
  va_list ap;

  if (n + 1 >= cap)
    return;
  va_start(ap, fmt);
  vsnprintf(buf + n, cap - n, fmt, ap);
  va_end(ap);
}

static void print_status(struct run *r, struct rates *prev) {
  enum { IN, OUT, LAG, BP };
  struct series_arg s[] = {{METRIC_IN, 0, 0, false},
                           {METRIC_OUT, 0, 0, false},
                           {METRIC_LAG, 0, 0, false},
                           {METRIC_BACKPRESSURE, 0, 0, false},
                           {NULL, 0, 0, false}};
  weir_checkpoint_stats st;
  int64_t now = mono_ms();
  double secs = (double)(now - prev->at_ms) / 1000.0;
  char text[512] = "", fields[512] = "";
  uint64_t last = weir_job_last_checkpoint(r->job);
  double dur_ms;

  refresh_metrics(r, &st);
  dur_ms = (double)st.last_duration_us / 1000.0;
  weir_job_metrics_foreach(r->job, series_cb, s);
  if (s[IN].found || s[OUT].found) {
    double in_rate = secs > 0 ? (double)(s[IN].sum - prev->in) / secs : 0;
    double out_rate = secs > 0 ? (double)(s[OUT].sum - prev->out) / secs : 0;

    add(text, sizeof(text), "in %.0f/s out %.0f/s (total %" PRId64 "/%" PRId64 ")", in_rate,
        out_rate, s[IN].sum, s[OUT].sum);
    add(fields, sizeof(fields),
        "\"records_in_per_s\":%.1f,\"records_out_per_s\":%.1f,\"records_in\":%" PRId64
        ",\"records_out\":%" PRId64 ",",
        in_rate, out_rate, s[IN].sum, s[OUT].sum);
  } else {
    add(text, sizeof(text), "records n/a");
  }
  if (r->ckpt_dir == NULL)
    add(text, sizeof(text), " | checkpoints off");
  else if (last == 0)
    add(text, sizeof(text), " | no checkpoint yet");
  else
    add(text, sizeof(text), " | checkpoint %" PRIu64 " (%.0f ms)", last, dur_ms);
  if (st.failed > 0)
    add(text, sizeof(text), " | %" PRIu64 " failed", st.failed);
  add(fields, sizeof(fields),
      "\"checkpoint_id\":%" PRIu64
      ",\"checkpoint_duration_ms\":%.1f,\"checkpoints_failed\":%" PRIu64,
      last, dur_ms, st.failed);
  if (s[LAG].found) {
    add(text, sizeof(text), " | lag %" PRId64 " ms", s[LAG].max);
    add(fields, sizeof(fields), ",\"lag_ms\":%" PRId64, s[LAG].max);
  }
  if (s[BP].found) {
    add(text, sizeof(text), " | backpressure %" PRId64 "%%", s[BP].max);
    add(fields, sizeof(fields), ",\"backpressure_percent\":%" PRId64, s[BP].max);
  }
  weir__cli_status(r->tty, text, fields);
  prev->at_ms = now;
  prev->in = s[IN].sum;
  prev->out = s[OUT].sum;
}

/* ---- supervisor -------------------------------------------------------------------------- */

static void on_signal(struct run *r, int sig) {
  weir_checkpoint_stats st;

  r->signals++;
  if (r->signals > 1) {
    weir__cli_log(WEIR_LOG_WARN, "%s again: cancelling now (records in flight are dropped)",
                  strsignal(sig));
    weir_job_cancel(r->job);
    return;
  }
  if (r->ckpt_dir == NULL) {
    weir__cli_log(WEIR_LOG_INFO,
                  "%s: stopping (no checkpoint dir, so no savepoint); signal again to cancel",
                  strsignal(sig));
    weir_job_stop(r->job);
    return;
  }
  weir_job_checkpoint_stats(r->job, &st);
  r->failed_before = st.failed;
  weir__cli_log(WEIR_LOG_INFO, "%s: stopping with a savepoint; signal again to cancel",
                strsignal(sig));
  if (weir_job_stop_with_savepoint(r->job) == 0) {
    r->savepoint_requested = true;
  } else {
    weir__cli_log(WEIR_LOG_WARN, "savepoint not possible now; stopping without one");
    weir_job_stop(r->job);
  }
}

static void *supervise(void *arg) {
  struct run *r = arg;
  struct rates prev = {mono_ms(), 0, 0};
  int64_t next_status = mono_ms() + r->status_ms;
  sigset_t set;
  struct timespec tick = {0, SUPERVISE_TICK_MS * 1000000L};

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  while (!atomic_load(&r->done)) {
    int sig = sigtimedwait(&set, NULL, &tick);

    if (sig == SIGINT || sig == SIGTERM)
      on_signal(r, sig);
    if (r->status_ms > 0 && mono_ms() >= next_status && !atomic_load(&r->done)) {
      print_status(r, &prev);
      next_status = mono_ms() + r->status_ms;
    }
  }
  return NULL;
}

/* ---- the command ------------------------------------------------------------------------- */

static const char run_help[] =
    "Usage: weir run [OPTIONS] FILE\n"
    "Run the pipeline in FILE until its sources end, or until SIGINT/SIGTERM: the first signal\n"
    "stops the job with a savepoint (when the pipeline has a checkpoint dir), the second\n"
    "cancels it at once. A pipeline with a checkpoint dir resumes from its latest checkpoint.\n"
    "\n"
    "  --from-checkpoint ID   restore from checkpoint ID instead of the latest\n"
    "  --metrics-port N       serve Prometheus metrics on http://ADDR:N/metrics (0 = any port)\n"
    "  --metrics-bind ADDR    IPv4 address for the metrics server (default 127.0.0.1)\n"
    "  --status-interval MS   status line period in ms (default 2000 on a terminal, 10000\n"
    "                         as log lines otherwise; 0 = no status)\n"
    "  --log-format text|json format of the lines on stderr (default text)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit codes: 0 finished or stopped with a savepoint, 1 the job failed, 2 usage error,\n"
    "3 invalid pipeline file, 4 stopped but the savepoint failed, 130 cancelled.\n";

static bool parse_num(const char *s, long long min, long long max, long long *out) {
  char *end;
  long long v;

  errno = 0;
  v = strtoll(s, &end, 10);
  if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
    return false;
  *out = v;
  return true;
}

static int usage(const char *fmt, const char *arg) {
  char msg[512];

  snprintf(msg, sizeof(msg), fmt, arg);
  weir__cli_log(WEIR_LOG_ERROR, "run: %s (try 'weir run --help')", msg);
  return WEIR_CLI_USAGE;
}

int weir__cli_run(int argc, char **argv) {
  enum { OPT_FROM = 256, OPT_PORT, OPT_BIND, OPT_STATUS, OPT_LOG_FORMAT };
  static const struct option opts[] = {{"from-checkpoint", required_argument, NULL, OPT_FROM},
                                       {"metrics-port", required_argument, NULL, OPT_PORT},
                                       {"metrics-bind", required_argument, NULL, OPT_BIND},
                                       {"status-interval", required_argument, NULL, OPT_STATUS},
                                       {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  struct run r;
  struct MHD_Daemon *http = NULL;
  char err[WEIR_PIPELINE_ERR_MAX];
  const char *bind_addr = "127.0.0.1";
  long long from = -1, port = -1, status_ms = -1, v;
  sigset_t set;
  pthread_t sup;
  bool sup_started = false;
  weir_checkpoint_stats st;
  int opt, rc, status = WEIR_CLI_RUNTIME;

  memset(&r, 0, sizeof(r));
  while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (opt) {
    case OPT_FROM:
      if (!parse_num(optarg, 1, INT64_MAX, &from))
        return usage("--from-checkpoint: '%s' is not a checkpoint id", optarg);
      break;
    case OPT_PORT:
      if (!parse_num(optarg, 0, 65535, &port))
        return usage("--metrics-port: '%s' is not a port number (0..65535)", optarg);
      break;
    case OPT_BIND:
      bind_addr = optarg;
      break;
    case OPT_STATUS:
      if (!parse_num(optarg, 0, 3600000, &v))
        return usage("--status-interval: '%s' is not a number of ms (0..3600000)", optarg);
      status_ms = v;
      break;
    case OPT_LOG_FORMAT:
      if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
        return usage("--log-format: '%s' is not text or json", optarg);
      weir__cli_log_set_format(strcmp(optarg, "json") == 0 ? WEIR_CLI_LOG_JSON : WEIR_CLI_LOG_TEXT);
      break;
    case 'h':
      fputs(run_help, stdout);
      return WEIR_CLI_OK;
    case ':':
      return usage("option '%s' needs a value", argv[optind - 1]);
    default:
      return usage("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc)
    return usage("%s", "missing FILE");
  if (optind + 1 < argc)
    return usage("unexpected argument '%s'", argv[optind + 1]);
  r.file = argv[optind];
  pthread_mutex_init(&r.metrics_mu, NULL);
  r.tty = isatty(STDERR_FILENO) == 1;
  r.status_ms = status_ms >= 0 ? status_ms : r.tty ? STATUS_TTY_MS : STATUS_LOG_MS;

  /* Before any thread exists: every thread inherits the mask; the supervisor takes them. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  if ((rc = weir_pipeline_load(&r.p, r.file, 0, err, sizeof(err))) != 0) {
    weir__cli_log(WEIR_LOG_ERROR, "%s", err);
    status = rc == WEIR_EPARSE || rc == WEIR_EGRAPH ? WEIR_CLI_INVALID : WEIR_CLI_RUNTIME;
    goto done;
  }
  r.job = weir_pipeline_job(r.p);
  r.ckpt_dir = weir_pipeline_checkpoint_dir(r.p);
  if (from > 0) {
    if (r.ckpt_dir == NULL) {
      status = usage("--from-checkpoint: %s has no checkpoint dir", r.file);
      goto done;
    }
    weir_job_set_restore_checkpoint(r.job, (uint64_t)from);
  }
  register_metrics(&r);
  if (port >= 0 && (status = start_http(&r, bind_addr, (int)port, &http)) != 0)
    goto done;
  status = WEIR_CLI_RUNTIME;
  if ((rc = weir_job_start(r.job)) != 0) {
    weir__cli_log(WEIR_LOG_ERROR, "%s: cannot start job '%s': %s", r.file, weir_pipeline_name(r.p),
                  weir_job_error(r.job));
    status = rc == WEIR_EGRAPH ? WEIR_CLI_INVALID : WEIR_CLI_RUNTIME;
    goto done;
  }
  atomic_store(&r.started, true);
  weir_job_checkpoint_stats(r.job, &st);
  if (st.restored_id != 0)
    weir__cli_log(WEIR_LOG_INFO, "job '%s' started, restored from checkpoint %" PRIu64 " in %s",
                  weir_pipeline_name(r.p), st.restored_id, r.ckpt_dir);
  else
    weir__cli_log(WEIR_LOG_INFO, "job '%s' started%s", weir_pipeline_name(r.p),
                  r.ckpt_dir != NULL ? " (no checkpoint to restore: fresh start)" : "");
  if (pthread_create(&sup, NULL, supervise, &r) == 0)
    sup_started = true;
  else
    weir__cli_log(WEIR_LOG_WARN, "no supervisor thread: signals and status are off");

  rc = weir_job_wait(r.job);
  atomic_store(&r.done, true);
  if (sup_started)
    pthread_join(sup, NULL);
  weir__cli_status_end();
  weir_job_checkpoint_stats(r.job, &st);
  if (rc == WEIR_ECANCELED) {
    weir__cli_log(WEIR_LOG_WARN, "job '%s' cancelled", weir_pipeline_name(r.p));
    status = WEIR_CLI_CANCELED;
  } else if (rc != 0) {
    weir__cli_log(WEIR_LOG_ERROR, "job '%s' failed: %s", weir_pipeline_name(r.p),
                  weir_job_error(r.job));
    status = WEIR_CLI_RUNTIME;
  } else if (r.savepoint_requested && st.failed == r.failed_before &&
             weir_job_last_checkpoint(r.job) != 0) {
    weir__cli_log(WEIR_LOG_INFO,
                  "job '%s' stopped with savepoint %" PRIu64 " in %s; run it again to resume",
                  weir_pipeline_name(r.p), weir_job_last_checkpoint(r.job), r.ckpt_dir);
    status = WEIR_CLI_OK;
  } else if (r.savepoint_requested) {
    weir__cli_log(WEIR_LOG_ERROR,
                  "job '%s' stopped, but the savepoint failed; a new run resumes from "
                  "checkpoint %" PRIu64 " (0 = none)",
                  weir_pipeline_name(r.p), weir_job_last_checkpoint(r.job));
    status = WEIR_CLI_SAVEPOINT_FAILED;
  } else {
    weir__cli_log(WEIR_LOG_INFO, "job '%s' %s", weir_pipeline_name(r.p),
                  r.signals > 0 ? "stopped" : "finished");
    status = WEIR_CLI_OK;
  }
done:
  if (http != NULL)
    MHD_stop_daemon(http);
  weir_pipeline_destroy(r.p);
  pthread_mutex_destroy(&r.metrics_mu);
  return status;
}
