/*
 * cli_int.h: what the command-line tools share: the weir-kinesis tool as a function (so that
 * `weir kinesis ...` runs the same code), and weir's logging and exit codes (docs/cli.md).
 */
#ifndef WEIR_CLI_INT_H
#define WEIR_CLI_INT_H

#include <stdbool.h>

#include "weir/common.h"

/* weir-kinesis with its own argv (argv[0] is the program or command name). Sets optind. */
int weir__cli_kinesis_main(int argc, char **argv);

/* Exit codes of `weir` (docs/cli.md). */
enum {
  WEIR_CLI_OK = 0,               /* done: finished, or stopped with a savepoint */
  WEIR_CLI_RUNTIME = 1,          /* the job failed, or I/O, store or server errors */
  WEIR_CLI_USAGE = 2,            /* bad command line */
  WEIR_CLI_INVALID = 3,          /* the pipeline file is invalid */
  WEIR_CLI_SAVEPOINT_FAILED = 4, /* stopped on a signal, but the savepoint failed */
  WEIR_CLI_CANCELED = 130        /* cancelled by a second signal (128 + SIGINT, as shells do) */
};

/* Log line format of every message weir prints on stderr. */
enum weir_cli_log_format { WEIR_CLI_LOG_TEXT = 0, WEIR_CLI_LOG_JSON };

/* Sets the format and verbosity, and installs the handler for the library's log. */
void weir__cli_log_init(enum weir_cli_log_format fmt, weir_log_level max_level);
/* Changes only the format (a command's own --log-format). */
void weir__cli_log_set_format(enum weir_cli_log_format fmt);
enum weir_cli_log_format weir__cli_log_format(void);
/* One message on stderr as a log line ("weir: error: ..." or a JSON object). Any thread. */
void weir__cli_log(weir_log_level level, const char *fmt, ...) WEIR_PRINTF(2, 3);
/*
 * The status line. On a terminal (text format) it is redrawn in place and log lines clear it
 * first; otherwise it is logged as an info line (JSON: `fields` is a JSON object body without
 * braces, added to the line). Any thread.
 */
void weir__cli_status(bool tty, const char *text, const char *fields);
/* Ends a status line on a terminal (a newline) before the final messages. */
void weir__cli_status_end(void);

/* `weir run` (cli/run.c). argv[0] is "run". */
int weir__cli_run(int argc, char **argv);

#endif /* WEIR_CLI_INT_H */
