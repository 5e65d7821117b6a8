/*
 * weir.c: the `weir` command: run and validate pipeline files, inspect checkpoint directories,
 * and the Kinesis helpers (`weir kinesis`, the same code as weir-kinesis). See docs/cli.md.
 *
 * Everything but command output (validate's verdict, checkpoint listings) goes to stderr, as
 * text lines ("weir: error: ...") or, with --log-format json, one JSON object per line. Exit
 * codes are in cli_int.h and docs/cli.md.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "weir/checkpoint.h"
#include "weir/pipeline.h"

/* ---- logging ----------------------------------------------------------------------------- */

/* Guards stderr writes so log lines and the status line never interleave. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static enum weir_cli_log_format log_fmt = WEIR_CLI_LOG_TEXT;
static weir_log_level log_max = WEIR_LOG_INFO;
static bool status_shown; /* a status line is on the terminal; guarded by log_mu */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void iso_now(char *buf, size_t cap) {
  struct timespec ts;
  struct tm tm;
  size_t n;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes one line; log_mu held. `fields` (JSON object body) may be NULL. */
static void write_line(weir_log_level level, const char *msg, const char *fields) {
  if (status_shown) {
    fputs("\r\033[K", stderr);
    status_shown = false;
  }
  if (log_fmt == WEIR_CLI_LOG_JSON) {
    char ts[40], *s;
    json_t *o;

    iso_now(ts, sizeof(ts));
    o = json_pack("{s:s, s:s, s:s}", "time", ts, "level", level_names[level], "msg", msg);
    if (o != NULL && fields != NULL && fields[0] != '\0') {
      char obj[1024];
      json_t *extra;

      snprintf(obj, sizeof(obj), "{%s}", fields);
      if ((extra = json_loads(obj, 0, NULL)) != NULL) {
        json_object_update(o, extra);
        json_decref(extra);
      }
    }
    if (o != NULL &&
        (s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))) != NULL) {
      fprintf(stderr, "%s\n", s);
      free(s);
    }
    json_decref(o);
  } else if (level == WEIR_LOG_INFO) {
    fprintf(stderr, "weir: %s\n", msg);
  } else {
    fprintf(stderr, "weir: %s: %s\n", level_names[level], msg);
  }
  fflush(stderr);
}

static void lib_log_cb(void *data, weir_log_level level, const char *msg) {
  (void)data;
  pthread_mutex_lock(&log_mu);
  write_line(level, msg, NULL);
  pthread_mutex_unlock(&log_mu);
}

void weir__cli_log_init(enum weir_cli_log_format fmt, weir_log_level max_level) {
  log_fmt = fmt;
  log_max = max_level;
  weir_log_set_handler(lib_log_cb, NULL, max_level);
}

void weir__cli_log_set_format(enum weir_cli_log_format fmt) {
  log_fmt = fmt;
}

enum weir_cli_log_format weir__cli_log_format(void) {
  return log_fmt;
}

void weir__cli_log(weir_log_level level, const char *fmt, ...) {
  char msg[2048];
  va_list ap;

  if (level > log_max)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&log_mu);
  write_line(level, msg, NULL);
  pthread_mutex_unlock(&log_mu);
}

void weir__cli_status(bool tty, const char *text, const char *fields) {
  pthread_mutex_lock(&log_mu);
  if (tty && log_fmt == WEIR_CLI_LOG_TEXT) {
    fprintf(stderr, "\r\033[K%s", text);
    fflush(stderr);
    status_shown = true;
  } else if (log_max >= WEIR_LOG_INFO) {
    write_line(WEIR_LOG_INFO, log_fmt == WEIR_CLI_LOG_JSON ? "status" : text, fields);
  }
  pthread_mutex_unlock(&log_mu);
}

void weir__cli_status_end(void) {
  pthread_mutex_lock(&log_mu);
  if (status_shown) {
    fputc('\n', stderr);
    status_shown = false;
  }
  pthread_mutex_unlock(&log_mu);
}

/* ---- shared helpers ---------------------------------------------------------------------- */

static int usage_error(const char *cmd, const char *fmt, ...) WEIR_PRINTF(2, 3);
static int usage_error(const char *cmd, const char *fmt, ...) {
  char msg[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  weir__cli_log(WEIR_LOG_ERROR, "%s%s%s (try 'weir %s%s--help')", cmd ? cmd : "", cmd ? ": " : "",
                msg, cmd ? cmd : "", cmd ? " " : "");
  return WEIR_CLI_USAGE;
}

/* getopt_long problem with argv[optind - 1] (opterr is 0; optstrings start with ':'). */
static int bad_option(const char *cmd, int opt, char **argv) {
  const char *arg = argv[optind - 1];

  if (opt == ':')
    return usage_error(cmd, "option '%s' needs a value", arg);
  return usage_error(cmd, "unknown option '%s'", arg);
}

/* ---- validate ---------------------------------------------------------------------------- */

static const char validate_help[] =
    "Usage: weir validate [OPTIONS] FILE...\n"
    "Check pipeline files without running them: YAML syntax, every key and value, environment\n"
    "variables, node types, inputs, and plugins (loaded to check their ABI). Nothing is opened,\n"
    "created or truncated. Prints 'FILE: ok' on stdout for each valid file; errors go to stderr\n"
    "as FILE:LINE:COLUMN: key: message (hint: ...).\n"
    "\n"
    "  -h, --help    this help\n"
    "\n"
    "Exit codes: 0 all valid, 2 usage error, 3 a file is invalid, 1 a file cannot be read.\n";

static int cmd_validate(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int opt, status = WEIR_CLI_OK;

  while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (opt == 'h') {
      fputs(validate_help, stdout);
      return WEIR_CLI_OK;
    }
    return bad_option("validate", opt, argv);
  }
  if (optind >= argc)
    return usage_error("validate", "missing FILE");
  for (int i = optind; i < argc; i++) {
    char err[WEIR_PIPELINE_ERR_MAX];
    weir_pipeline *p;
    int rc = weir_pipeline_load(&p, argv[i], WEIR_PIPELINE_VALIDATE_ONLY, err, sizeof(err));

    if (rc == 0) {
      printf("%s: ok (job '%s')\n", argv[i], weir_pipeline_name(p));
      weir_pipeline_destroy(p);
      continue;
    }
    weir__cli_log(WEIR_LOG_ERROR, "%s", err);
    if (rc == WEIR_EIO || rc == WEIR_ENOMEM)
      status = WEIR_CLI_RUNTIME;
    else if (status == WEIR_CLI_OK)
      status = WEIR_CLI_INVALID;
  }
  fflush(stdout);
  return status;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static const char checkpoints_help[] =
    "Usage: weir checkpoints list DIR\n"
    "       weir checkpoints show DIR [ID]\n"
    "Inspect a checkpoint directory (a pipeline's checkpoint.dir) without running the job.\n"
    "'list' prints the complete checkpoints, oldest first: id, start time (UTC), duration,\n"
    "state size and stateful operators. 'show' describes one checkpoint (default: the latest):\n"
    "operators, state per subtask, source positions.\n"
    "\n"
    "  -h, --help    this help\n"
    "\n"
    "Exit codes: 0 success, 1 no store there or a store error, 2 usage error.\n";

static void format_time(int64_t ms, char *buf, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void format_bytes(uint64_t b, char *buf, size_t cap) {
  if (b < 1024)
    snprintf(buf, cap, "%" PRIu64 " B", b);
  else if (b < (1u << 20))
    snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
  else if (b < (1u << 30))
    snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
  else
    snprintf(buf, cap, "%.1f GiB", (double)b / (1 << 30));
}

static int store_error(const char *dir, int rc) {
  if (rc == WEIR_ENOTFOUND)
    weir__cli_log(WEIR_LOG_ERROR, "checkpoints: no checkpoint store in '%s'", dir);
  else
    weir__cli_log(WEIR_LOG_ERROR, "checkpoints: cannot read '%s': %s", dir, weir_strerror(rc));
  return WEIR_CLI_RUNTIME;
}

static int cmd_checkpoints(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  const char *sub, *dir;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (opt == 'h') {
      fputs(checkpoints_help, stdout);
      return WEIR_CLI_OK;
    }
    return bad_option("checkpoints", opt, argv);
  }
  if (optind >= argc)
    return usage_error("checkpoints", "missing 'list' or 'show'");
  sub = argv[optind++];
  if (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0)
    return usage_error("checkpoints", "unknown subcommand '%s' (list or show)", sub);
  if (optind >= argc)
    return usage_error("checkpoints", "missing DIR");
  dir = argv[optind++];
  if (strcmp(sub, "list") == 0) {
    weir_checkpoint_info *infos = NULL;
    size_t n = 0;

    if (optind < argc)
      return usage_error("checkpoints", "unexpected argument '%s'", argv[optind]);
    if ((rc = weir_checkpoint_list(dir, &infos, &n)) != 0)
      return store_error(dir, rc);
    printf("%-10s %-20s %10s %12s %9s\n", "ID", "STARTED (UTC)", "DURATION", "STATE", "OPERATORS");
    for (size_t i = 0; i < n; i++) {
      char when[32], size[32], dur[32];

      format_time(infos[i].start_ms, when, sizeof(when));
      format_bytes(infos[i].state_bytes, size, sizeof(size));
      snprintf(dur, sizeof(dur), "%" PRId64 " ms", infos[i].end_ms - infos[i].start_ms);
      printf("%-10" PRIu64 " %-20s %10s %12s %9zu\n", infos[i].id, when, dur, size,
             infos[i].operators);
    }
    if (n == 0)
      weir__cli_log(WEIR_LOG_INFO, "no complete checkpoint in '%s'", dir);
    free(infos);
  } else {
    uint64_t id = 0;
    char *text = NULL, *end;

    if (optind < argc) {
      unsigned long long v = strtoull(argv[optind], &end, 10);

      if (*argv[optind] == '\0' || *end != '\0' || argv[optind][0] == '-')
        return usage_error("checkpoints", "ID '%s' is not a checkpoint number", argv[optind]);
      id = v;
      if (++optind < argc)
        return usage_error("checkpoints", "unexpected argument '%s'", argv[optind]);
    }
    if ((rc = weir_checkpoint_describe(dir, id, &text)) != 0) {
      if (rc == WEIR_ENOTFOUND && id != 0) {
        weir__cli_log(WEIR_LOG_ERROR, "checkpoints: no checkpoint %" PRIu64 " in '%s'", id, dir);
        return WEIR_CLI_RUNTIME;
      }
      return store_error(dir, rc);
    }
    fputs(text, stdout);
    free(text);
  }
  fflush(stdout);
  return WEIR_CLI_OK;
}

/* ---- main -------------------------------------------------------------------------------- */

static const char main_help[] =
    "Usage: weir [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "Run stream-processing pipelines described in YAML files.\n"
    "\n"
    "Commands:\n"
    "  run FILE                   run a pipeline until its input ends or a signal stops it\n"
    "  validate FILE...           check pipeline files without running them\n"
    "  checkpoints list|show DIR  inspect a checkpoint directory\n"
    "  kinesis COMMAND            Kinesis helpers: create, delete, describe, put, tail\n"
    "Run 'weir COMMAND --help' for a command's options.\n"
    "\n"
    "Global options:\n"
    "  --log-format text|json   format of the lines on stderr (default text)\n"
    "  -v, --verbose            also show debug messages\n"
    "  -q, --quiet              only warnings and errors\n"
    "  -h, --help               this help\n"
    "  --version                print the version\n"
    "\n"
    "Exit codes: 0 success, 1 runtime error, 2 usage error, 3 invalid pipeline file,\n"
    "4 stopped but the savepoint failed, 130 cancelled by a second signal.\n";

int main(int argc, char **argv) {
  enum { OPT_LOG_FORMAT = 256, OPT_VERSION };
  static const struct option opts[] = {{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, OPT_VERSION},
                                       {NULL, 0, NULL, 0}};
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {{"run", weir__cli_run},
              {"validate", cmd_validate},
              {"checkpoints", cmd_checkpoints},
              {"kinesis", weir__cli_kinesis_main}};
  enum weir_cli_log_format fmt = WEIR_CLI_LOG_TEXT;
  weir_log_level level = WEIR_LOG_INFO;
  int opt;

  opterr = 0;
  weir__cli_log_init(fmt, level);
  while ((opt = getopt_long(argc, argv, "+:vqh", opts, NULL)) != -1) {
    switch (opt) {
    case OPT_LOG_FORMAT:
      if (strcmp(optarg, "text") == 0)
        fmt = WEIR_CLI_LOG_TEXT;
      else if (strcmp(optarg, "json") == 0)
        fmt = WEIR_CLI_LOG_JSON;
      else
        return usage_error(NULL, "--log-format: '%s' is not text or json", optarg);
      break;
    case 'v':
      level = WEIR_LOG_DEBUG;
      break;
    case 'q':
      level = WEIR_LOG_WARN;
      break;
    case 'h':
      fputs(main_help, stdout);
      return WEIR_CLI_OK;
    case OPT_VERSION:
      puts("weir " WEIR_VERSION_STRING);
      return WEIR_CLI_OK;
    default:
      return bad_option(NULL, opt, argv);
    }
  }
  weir__cli_log_init(fmt, level);
  if (optind >= argc)
    return usage_error(NULL, "missing COMMAND (run, validate, checkpoints or kinesis)");
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    if (strcmp(argv[optind], cmds[i].name) != 0)
      continue;
    argc -= optind;
    argv += optind;
    optind = 0; /* glibc: 0 restarts getopt from scratch on the command's arguments */
    return cmds[i].fn(argc, argv);
  }
  return usage_error(NULL, "unknown command '%s' (run, validate, checkpoints or kinesis)",
                     argv[optind]);
}
