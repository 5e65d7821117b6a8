/*
 * line_source.c: one record per line of a file or stdin, read through a bounded buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runtime/job_int.h"
#include "weir/connectors.h"

#define WEIR_LINE_DEFAULT_MAX (1u << 20)
#define WEIR_LINE_MIN_BUF (64u << 10)
#define WEIR_LINE_PER_POLL 256
/* How long one poll waits for a pipe or terminal to become readable before returning, so the
 * task can flush partial batches and see a stop. */
#define WEIR_LINE_WAIT_MS 10

struct weir_line_source {
  char *path; /* NULL = stdin */
  size_t max_line;
};

struct line_inst {
  const weir_line_source *src;
  int fd;
  uint8_t *buf;
  size_t cap;
  size_t start; /* first unconsumed byte */
  size_t end;   /* end of valid bytes */
  bool eof;
  bool may_block; /* a pipe, socket or terminal: wait with poll(2) before read(2) */
  uint64_t line;  /* lines emitted so far */
};

int weir_line_source_create(weir_line_source **srcp, const weir_line_source_config *cfg) {
  weir_line_source *s;

  if (srcp == NULL || cfg == NULL)
    return WEIR_EINVAL;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  s->max_line = cfg->max_line_len ? cfg->max_line_len : WEIR_LINE_DEFAULT_MAX;
  if (cfg->path != NULL && strcmp(cfg->path, "-") != 0) {
    if ((s->path = strdup(cfg->path)) == NULL) {
      free(s);
      return WEIR_ENOMEM;
    }
  }
  *srcp = s;
  return 0;
}

void weir_line_source_destroy(weir_line_source *src) {
  if (src == NULL)
    return;
  free(src->path);
  free(src);
}

static const char *display_path(const weir_line_source *s) {
  return s->path != NULL ? s->path : "<stdin>";
}

static int line_open(weir_ctx *ctx, void *data, void **inst) {
  const weir_line_source *s = data;
  struct line_inst *li = calloc(1, sizeof(*li));

  if (li == NULL)
    return WEIR_ENOMEM;
  *inst = li;
  li->src = s;
  li->fd = -1;
  /* Room for the longest line plus its newline, or a comfortable read size. */
  li->cap = s->max_line + 2 > WEIR_LINE_MIN_BUF ? s->max_line + 2 : WEIR_LINE_MIN_BUF;
  if ((li->buf = malloc(li->cap)) == NULL)
    return WEIR_ENOMEM;
  {
    struct stat pst;
    /* A FIFO's blocking open waits for a writer, where no stop or cancel can reach it: open it
     * non-blocking and wait in poll(2) instead (Linux reports no hang-up before a writer). */
    int nb = s->path != NULL && stat(s->path, &pst) == 0 && S_ISFIFO(pst.st_mode) ? O_NONBLOCK : 0;

    li->fd = s->path != NULL ? open(s->path, O_RDONLY | O_CLOEXEC | nb) : STDIN_FILENO;
  }
  if (li->fd < 0) {
    weir_ctx_set_error(ctx, "cannot open %s: %s", s->path, strerror(errno));
    return WEIR_EIO;
  }
  {
    struct stat st;

    li->may_block = fstat(li->fd, &st) != 0 || !S_ISREG(st.st_mode);
  }
  return 0;
}

/* Moves unconsumed bytes to the front and reads more. 0; WEIR_EAGAIN when a pipe has nothing
 * to read yet; or WEIR_EIO. */
static int fill(weir_ctx *ctx, struct line_inst *li) {
  ssize_t n;

  if (li->may_block) {
    struct pollfd pfd = {li->fd, POLLIN, 0};
    int r = poll(&pfd, 1, WEIR_LINE_WAIT_MS);

    if (r == 0 || (r < 0 && errno == EINTR))
      return WEIR_EAGAIN;
  }

  if (li->start > 0) {
    memmove(li->buf, li->buf + li->start, li->end - li->start);
    li->end -= li->start;
    li->start = 0;
  }
  do
    n = read(li->fd, li->buf + li->end, li->cap - li->end);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return WEIR_EAGAIN;
  if (n < 0) {
    weir_ctx_set_error(ctx, "read %s after line %" PRIu64 ": %s", display_path(li->src), li->line,
                       strerror(errno));
    return WEIR_EIO;
  }
  if (n == 0)
    li->eof = true;
  li->end += (size_t)n;
  return 0;
}

static int emit_line(weir_ctx *ctx, struct line_inst *li, const uint8_t *p, size_t len) {
  weir_record r = weir_record_init();

  li->line++;
  if (len > 0 && p[len - 1] == '\r')
    len--;
  if (len > li->src->max_line) {
    weir_ctx_set_error(ctx, "%s:%" PRIu64 ": line of %zu bytes exceeds max_line_len %zu",
                       display_path(li->src), li->line, len, li->src->max_line);
    return WEIR_ETOOBIG;
  }
  r.value.ptr = p;
  r.value.len = len;
  r.offset = li->line;
  r.meta = weir_buf_str(display_path(li->src));
  return weir_emit(ctx, &r);
}

static int line_poll(weir_ctx *ctx, void *inst) {
  struct line_inst *li = inst;
  int k, rc;

  for (k = 0; k < WEIR_LINE_PER_POLL; k++) {
    uint8_t *nl = memchr(li->buf + li->start, '\n', li->end - li->start);

    if (nl != NULL) {
      rc = emit_line(ctx, li, li->buf + li->start, (size_t)(nl - (li->buf + li->start)));
      li->start = (size_t)(nl - li->buf) + 1;
      if (rc != 0)
        return rc;
      continue;
    }
    if (li->eof) {
      if (li->end > li->start) { /* a last line without newline */
        rc = emit_line(ctx, li, li->buf + li->start, li->end - li->start);
        li->start = li->end;
        return rc;
      }
      return WEIR_EOF;
    }
    if (li->end - li->start > li->src->max_line + 1) {
      weir_ctx_set_error(ctx, "%s:%" PRIu64 ": line exceeds max_line_len %zu",
                         display_path(li->src), li->line + 1, li->src->max_line);
      return WEIR_ETOOBIG;
    }
    if ((rc = fill(ctx, li)) == WEIR_EAGAIN)
      return k == 0 ? WEIR_EAGAIN : 0;
    if (rc != 0)
      return rc;
  }
  return 0;
}

static void line_close(weir_ctx *ctx, void *inst) {
  struct line_inst *li = inst;

  (void)ctx;
  if (li == NULL)
    return;
  if (li->fd > STDIN_FILENO)
    close(li->fd);
  free(li->buf);
  free(li);
}

int weir_job_add_line_source(weir_job *job, const char *name, weir_line_source *src, int *id) {
  weir_operator op = {0};
  int node, rc;

  if (src == NULL)
    return WEIR_EINVAL;
  op.open = line_open;
  op.poll = line_poll;
  op.close = line_close;
  if ((rc = weir_job_add_source(job, name, &op, src, &node)) != 0)
    return rc;
  job->nodes[node].max_parallelism = 1;
  if (id != NULL)
    *id = node;
  return 0;
}
