/* log.c: the pluggable logger. The default handler writes to stderr, never stdout. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log_int.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void default_handler(void *data, weir_log_level level, const char *msg) {
  (void)data;
  fprintf(stderr, "weir %s: %s\n", level_names[level], msg);
}

/* Set before jobs start (documented), read by every thread afterwards. */
static weir_log_cb log_cb = default_handler;
static void *log_data;
static weir_log_level log_max = WEIR_LOG_INFO;

void weir_log_set_handler(weir_log_cb cb, void *data, weir_log_level max_level) {
  log_cb = cb != NULL ? cb : default_handler;
  log_data = data;
  if (max_level < WEIR_LOG_ERROR)
    max_level = WEIR_LOG_ERROR;
  if (max_level > WEIR_LOG_DEBUG)
    max_level = WEIR_LOG_DEBUG;
  log_max = max_level;
}

void weir__log(weir_log_level level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;

  if (level > log_max)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  log_cb(log_data, level, msg);
}

void weir__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "weir: assertion failed: %s (%s:%d)\n", expr, file, line);
  abort();
}
