/*
 * file_sink.c: writes one line per record to a file or stdout. Subtasks share one FILE and
 * write each batch under its lock, so lines never interleave mid-record.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/job_int.h"
#include "../runtime/log_int.h"
#include "weir/connectors.h"

struct weir_file_sink {
  /* Serialises subtasks' batches. flockfile alone would do for glibc, but ThreadSanitizer
   * cannot see the FILE lock around the inline *_unlocked calls; the FILE lock still keeps
   * other writers of the same FILE (the host's printf to stdout) off our lines. */
  pthread_mutex_t mu;
  FILE *f;
  char *path; /* NULL = stdout */
  bool with_key;
};

int weir_file_sink_create(weir_file_sink **sinkp, const weir_file_sink_config *cfg) {
  weir_file_sink *s;
  int fd;

  if (sinkp == NULL || cfg == NULL)
    return WEIR_EINVAL;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  s->with_key = cfg->with_key;
  WEIR_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);
  if (cfg->path == NULL || strcmp(cfg->path, "-") == 0) {
    s->f = stdout;
  } else {
    if ((s->path = strdup(cfg->path)) == NULL)
      goto fail_nomem;
    fd = open(s->path, O_WRONLY | O_CREAT | O_CLOEXEC | (cfg->append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0 || (s->f = fdopen(fd, cfg->append ? "a" : "w")) == NULL) {
      weir__log(WEIR_LOG_ERROR, "file sink: cannot open %s for writing: %s", s->path,
                strerror(errno));
      if (fd >= 0)
        close(fd);
      free(s->path);
      free(s);
      return WEIR_EIO;
    }
  }
  *sinkp = s;
  return 0;

fail_nomem:
  free(s);
  return WEIR_ENOMEM;
}

static int sink_flush(weir_ctx *ctx, weir_file_sink *s) {
  int r;

  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  r = fflush(s->f);
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  if (r != 0) {
    if (ctx != NULL)
      weir_ctx_set_error(ctx, "write %s: %s", s->path ? s->path : "<stdout>", strerror(errno));
    return WEIR_EIO;
  }
  return 0;
}

void weir_file_sink_destroy(weir_file_sink *sink) {
  if (sink == NULL)
    return;
  if (sink->f != stdout) {
    if (sink_flush(NULL, sink) != 0 || fsync(fileno(sink->f)) != 0)
      weir__log(WEIR_LOG_ERROR, "file sink: flushing %s: %s", sink->path, strerror(errno));
    fclose(sink->f);
  } else {
    fflush(stdout);
  }
  WEIR_ASSERT(pthread_mutex_destroy(&sink->mu) == 0);
  free(sink->path);
  free(sink);
}

static int file_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  weir_file_sink *s = inst;
  size_t i;
  int bad;

  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  flockfile(s->f);
  for (i = 0; i < n; i++) {
    if (s->with_key) {
      if (recs[i].key.len > 0)
        fwrite_unlocked(recs[i].key.ptr, 1, recs[i].key.len, s->f);
      putc_unlocked('\t', s->f);
    }
    if (recs[i].value.len > 0)
      fwrite_unlocked(recs[i].value.ptr, 1, recs[i].value.len, s->f);
    putc_unlocked('\n', s->f);
  }
  bad = ferror_unlocked(s->f);
  funlockfile(s->f);
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  if (bad) {
    weir_ctx_set_error(ctx, "write %s failed", s->path ? s->path : "<stdout>");
    return WEIR_EIO;
  }
  return 0;
}

static int file_finish(weir_ctx *ctx, void *inst) {
  return sink_flush(ctx, inst);
}

/* At a checkpoint barrier: everything before it leaves the process (at-least-once output:
 * a crash after the checkpoint cannot lose those lines). No state bytes are written. */
static int file_snapshot(weir_ctx *ctx, void *inst, uint64_t ckpt_id, weir_snapshot *out) {
  (void)ckpt_id;
  (void)out;
  return sink_flush(ctx, inst);
}

int weir_job_add_file_sink(weir_job *job, int upstream, const char *name, weir_file_sink *sink,
                           int *id) {
  weir_operator op = {0};
  int node, rc;

  if (sink == NULL)
    return WEIR_EINVAL;
  op.process = file_process;
  op.finish = file_finish;
  op.snapshot = file_snapshot;
  if ((rc = weir_job_add_sink(job, upstream, name, &op, sink, &node)) != 0)
    return rc;
  job->nodes[node].barrier_hook = true;
  if (id != NULL)
    *id = node;
  return 0;
}
