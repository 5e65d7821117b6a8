/*
 * sink_dlq.c: records the Kinesis sink gives up on (fail_on_error = false): oversized records,
 * invalid keys, unusable target streams, and per-record errors the service will not take on
 * retry. Each is counted (weir_kinesis_sink_dead_letters_total), logged once per kind, and
 * appended to the dead-letter file when one is configured.
 *
 * Dead-letter format (version 1): one JSON object per line,
 *   {"v":1,"time_ms":<ms since the epoch>,"stream":"<target stream>","partition_key":"<key>",
 *    "explicit_hash_key":"<decimal>"|null,"data_b64":"<base64 of the data>",
 *    "error":"<kind or service error code>","message":"<what happened>"}
 * Strings are JSON-escaped (partition keys are UTF-8; invalid bytes are escaped as \u00XX).
 * Each line is written with one write() to a file opened with O_APPEND, so lines of subtasks
 * sharing the file do not interleave. The file is fsynced at every checkpoint barrier.
 *
 * Threads: the subtask thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../runtime/log_int.h"
#include "connectors/kinesis/sink_int.h"

/* Room for everything in a line but the base64 data and the partition key: the message (at most
 * 512 bytes, each escaped to at most 6), the kind (63 bytes, likewise), the stream name (128
 * plain characters), the explicit hash key (39 digits) and the fixed text, with a margin. */
#define LINE_FIXED 8192

int weir__ksink_dlq_open(struct ksub *s) {
  s->dlq_fd = -1;
  if (s->cfg->dead_letter_path == NULL)
    return 0;
  if ((s->dlq_fd =
           open(s->cfg->dead_letter_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
    return weir__ksink_fail(s, WEIR_EIO, "kinesis sink: cannot open dead-letter file %s: %s",
                            s->cfg->dead_letter_path, strerror(errno));
  }
  return 0;
}

void weir__ksink_dlq_close(struct ksub *s) {
  if (s->dlq_fd >= 0)
    close(s->dlq_fd);
  s->dlq_fd = -1;
  free(s->dlq_line);
  s->dlq_line = NULL;
}

int weir__ksink_dlq_sync(struct ksub *s) {
  if (s->dlq_fd >= 0 && fdatasync(s->dlq_fd) != 0)
    return weir__ksink_fail(s, WEIR_EIO, "kinesis sink: fsync of dead-letter file %s: %s",
                            s->cfg->dead_letter_path, strerror(errno));
  return 0;
}

/* Appends JSON string text (quoted, escaped) of p[0..n) at *pos, bounded by end. */
static void json_str(char **pos, const char *end, const uint8_t *p, size_t n) {
  char *d = *pos;

  *d++ = '"';
  for (size_t i = 0; i < n && d + 8 < end; i++) {
    uint8_t c = p[i];

    if (c == '"' || c == '\\') {
      *d++ = '\\';
      *d++ = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      d += snprintf(d, (size_t)(end - d), "\\u%04x", c);
    } else {
      *d++ = (char)c; /* UTF-8 passes through */
    }
  }
  *d++ = '"';
  *pos = d;
}

static int write_line(struct ksub *s, int stream, weir_buf key, weir_buf ehk, weir_buf data,
                      const char *kind, const char *message) {
  struct timespec now;
  char *d, *end;
  size_t need = (data.len + 2) / 3 * 4 + 6 * key.len + LINE_FIXED;

  if (s->dlq_line == NULL || s->dlq_cap < need) {
    /* Sized once for the largest record a stream of this subtask takes. */
    size_t cap =
        (s->max_record_limit + 2) / 3 * 4 + 6 * WEIR_KINESIS_PARTITION_KEY_BYTES_MAX + LINE_FIXED;
    free(s->dlq_line);
    s->dlq_cap = cap > need ? cap : need;
    if ((s->dlq_line = malloc(s->dlq_cap)) == NULL)
      return weir__ksink_fail(s, WEIR_ENOMEM, "kinesis sink: no memory for a dead letter");
  }
  d = s->dlq_line;
  end = s->dlq_line + s->dlq_cap;
  clock_gettime(CLOCK_REALTIME, &now);
  d += snprintf(d, 256, "{\"v\":1,\"time_ms\":%" PRId64 ",\"stream\":",
                (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
  json_str(&d, end, (const uint8_t *)s->streams[stream].name, strlen(s->streams[stream].name));
  d += snprintf(d, 32, ",\"partition_key\":");
  json_str(&d, end, key.ptr, key.len);
  d += snprintf(d, 32, ",\"explicit_hash_key\":");
  if (ehk.len > 0)
    json_str(&d, end, ehk.ptr, ehk.len);
  else
    d += snprintf(d, 8, "null");
  d += snprintf(d, 32, ",\"data_b64\":\"");
  if (data.len > 0)
    d += EVP_EncodeBlock((unsigned char *)d, data.ptr, (int)data.len);
  d += snprintf(d, 32, "\",\"error\":");
  json_str(&d, end, (const uint8_t *)kind, strlen(kind));
  d += snprintf(d, 32, ",\"message\":");
  json_str(&d, end, (const uint8_t *)message, strnlen(message, 512));
  *d++ = '}';
  *d++ = '\n';
  for (size_t len = (size_t)(d - s->dlq_line);;) {
    ssize_t w = write(s->dlq_fd, s->dlq_line, len);

    if (w == (ssize_t)len)
      return 0;
    if (w < 0 && errno == EINTR)
      continue;
    return weir__ksink_fail(s, WEIR_EIO, "kinesis sink: writing dead-letter file %s: %s",
                            s->cfg->dead_letter_path, w < 0 ? strerror(errno) : "short write");
  }
}

int weir__ksink_refuse(struct ksub *s, int stream, weir_buf key, weir_buf ehk, weir_buf data,
                       const char *kind, const char *message) {
  size_t i;

  if (s->cfg->fail_on_error) {
    int rc = strcmp(kind, "oversized") == 0            ? WEIR_ETOOBIG
             : strncmp(kind, "invalid_", 8) == 0       ? WEIR_EINVAL
             : strcmp(kind, "stream_unavailable") == 0 ? WEIR_ENOTFOUND
                                                       : WEIR_EIO;
    return weir__ksink_fail(s, rc, "kinesis sink: %s", message);
  }
  s->dead++;
  weir_metric_add(s->m.dead_letters, 1);
  /* Logged once per kind (the first KSINK_MAX_ERROR_CODES kinds; later kinds share one). */
  for (i = 0; i < KSINK_MAX_ERROR_CODES && s->logged_codes[i][0] != '\0'; i++)
    if (strcmp(s->logged_codes[i], kind) == 0)
      break;
  if (i < KSINK_MAX_ERROR_CODES && s->logged_codes[i][0] == '\0') {
    snprintf(s->logged_codes[i], sizeof(s->logged_codes[i]), "%s", kind);
    WEIR_LOG_ERR("kinesis sink %s[%d]: %s (%s; fail_on_error is off: %s; logged once per kind)",
                 weir_ctx_name(s->ctx), weir_ctx_subtask(s->ctx), message, kind,
                 s->dlq_fd >= 0 ? "written to the dead-letter file" : "dropped");
  }
  if (s->dlq_fd < 0)
    return 0;
  return write_line(s, stream, key, ehk, data, kind, message);
}

weir_metric *weir__ksink_failed_metric(struct ksub *s, const char *code) {
  size_t i;

  for (i = 0; i < KSINK_MAX_ERROR_CODES && s->m.codes[i][0] != '\0'; i++)
    if (strcmp(s->m.codes[i], code) == 0)
      return s->m.failed[i];
  if (i == KSINK_MAX_ERROR_CODES)
    return s->m.failed_other;
  {
    const char *labels[] = {"code", code, NULL};

    snprintf(s->m.codes[i], sizeof(s->m.codes[i]), "%s", code[0] ? code : "unknown");
    labels[1] = s->m.codes[i];
    if (weir_ctx_metric(s->ctx, WEIR_METRIC_COUNTER, "weir_kinesis_sink_entries_failed_total",
                        "PutRecords entries the service failed, by error code", labels,
                        &s->m.failed[i]) != 0)
      s->m.failed[i] = NULL;
  }
  return s->m.failed[i];
}
