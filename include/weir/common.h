/*
 * weir/common.h: export macro, error codes, logging and the byte-view type shared by every
 * weir header. Include <weir/weir.h> rather than this file.
 */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEIR_BUILDING) && defined(__GNUC__)
#define WEIR_API __attribute__((visibility("default")))
#else
#define WEIR_API
#endif

#if defined(__GNUC__)
#define WEIR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define WEIR_PRINTF(fmt, args)
#endif

#define WEIR_VERSION_MAJOR 0
#define WEIR_VERSION_MINOR 1
#define WEIR_VERSION_PATCH 0
#define WEIR_VERSION_STRING "0.1.0"

/*
 * The one error table. Every fallible weir function returns 0 or one of these negative codes.
 * X(name, value, message)
 */
#define WEIR_ERRNO_MAP(X)                                                                          \
  X(EINVAL, -1, "invalid argument")                                                                \
  X(ENOMEM, -2, "out of memory")                                                                   \
  X(ETOOBIG, -3, "value exceeds a configured bound")                                               \
  X(EIO, -4, "input/output error")                                                                 \
  X(EOF, -5, "end of input")                                                                       \
  X(EAGAIN, -6, "nothing available now, try again")                                                \
  X(ECANCELED, -7, "operation canceled")                                                           \
  X(ETIMEDOUT, -8, "timed out")                                                                    \
  X(EGRAPH, -9, "invalid job graph")                                                               \
  X(ESTATE, -10, "call not allowed in the object's current state")                                 \
  X(ENOTFOUND, -11, "not found")                                                                   \
  X(EEXIST, -12, "already exists")                                                                 \
  X(ESYS, -13, "system call failed")                                                               \
  X(EPARSE, -14, "malformed input")

typedef enum {
#define WEIR_ERR_ENUM(name, val, msg) WEIR_##name = (val),
  WEIR_ERRNO_MAP(WEIR_ERR_ENUM)
#undef WEIR_ERR_ENUM
      WEIR_ERRNO_MIN = -15
} weir_errno;

/* Human-readable message for a weir error code; never NULL. Any thread. */
WEIR_API const char *weir_strerror(int err);
/* Symbolic name ("WEIR_EINVAL") for an error code; "WEIR_UNKNOWN" if unknown. Any thread. */
WEIR_API const char *weir_err_name(int err);

/*
 * A borrowed view of bytes. Who owns the memory, and for how long it stays valid, is stated by
 * each function that hands one out or takes one.
 */
typedef struct weir_buf {
  const uint8_t *ptr;
  size_t len;
} weir_buf;

/* Log levels, most severe first. */
typedef enum {
  WEIR_LOG_ERROR = 0,
  WEIR_LOG_WARN = 1,
  WEIR_LOG_INFO = 2,
  WEIR_LOG_DEBUG = 3
} weir_log_level;

/*
 * Log handler. `msg` is borrowed for the duration of the call and carries no trailing newline.
 * May be called from any weir thread, concurrently: the handler must be thread-safe.
 */
typedef void (*weir_log_cb)(void *data, weir_log_level level, const char *msg);

/*
 * Installs a process-wide log handler (NULL restores the default, which writes to stderr) and
 * the most verbose level passed to it. Call before starting any job; not thread-safe against
 * running jobs. weir never writes to stdout on its own.
 */
WEIR_API void weir_log_set_handler(weir_log_cb cb, void *data, weir_log_level max_level);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_COMMON_H */
