/* log_int.h: internal logging. Messages go to the handler set by weir_log_set_handler. */
#ifndef WEIR_LOG_INT_H
#define WEIR_LOG_INT_H

#include "weir/common.h"

/* Formats and hands one message to the log handler. Any thread. */
void weir__log(weir_log_level level, const char *fmt, ...) WEIR_PRINTF(2, 3);

#define WEIR_LOG_ERR(...) weir__log(WEIR_LOG_ERROR, __VA_ARGS__)
#define WEIR_LOG_WARN(...) weir__log(WEIR_LOG_WARN, __VA_ARGS__)
#define WEIR_LOG_INFO(...) weir__log(WEIR_LOG_INFO, __VA_ARGS__)
#define WEIR_LOG_DEBUG(...) weir__log(WEIR_LOG_DEBUG, __VA_ARGS__)

/* Aborts with file:line when an invariant is broken (never for I/O or resource errors). */
#define WEIR_ASSERT(cond)                                                                          \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      weir__assert_fail(#cond, __FILE__, __LINE__);                                                \
  } while (0)

void weir__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif /* WEIR_LOG_INT_H */
