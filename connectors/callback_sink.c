/* callback_sink.c: hands every batch to a host callback on the sink's subtask threads. */
#include <stdlib.h>

#include "../runtime/job_int.h"
#include "weir/connectors.h"

struct cb_sink {
  weir_sink_cb cb;
  void *data; /* the host's, borrowed */
};

static int cb_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct cb_sink *s = inst;

  return s->cb(s->data, weir_ctx_subtask(ctx), recs, n);
}

int weir_job_add_callback_sink(weir_job *job, int upstream, const char *name, weir_sink_cb cb,
                               void *data, int *id) {
  weir_operator op = {0};
  struct cb_sink *s;
  int node, rc;

  if (job == NULL || cb == NULL)
    return WEIR_EINVAL;
  if ((s = malloc(sizeof(*s))) == NULL)
    return WEIR_ENOMEM;
  s->cb = cb;
  s->data = data;
  op.process = cb_process;
  if ((rc = weir_job_add_sink(job, upstream, name, &op, s, &node)) != 0) {
    free(s);
    return rc;
  }
  job->nodes[node].owned_data = s;
  if (id != NULL)
    *id = node;
  return 0;
}
