/*
 * plan.c: turns a validated graph into chains and tasks, and wires the channels.
 *
 * An edge is chained when it is forward, joins equal parallelism, and is the only output of
 * its upstream and the only input of its downstream: then both run in one thread with a link
 * batch between them. Every other edge becomes channels: each downstream task's gate gets one
 * channel per upstream subtask that can send to it (one for forward edges).
 */
#include <stdlib.h>
#include <string.h>

#include "log_int.h"
#include "task_int.h"

static size_t count_edges(const weir_job *job, int node, bool outgoing) {
  size_t i, n = 0;

  for (i = 0; i < job->n_edges; i++)
    n += (outgoing ? job->edges[i].from : job->edges[i].to) == node;
  return n;
}

static void mark_chained(weir_job *job) {
  size_t i;

  for (i = 0; i < job->n_edges; i++) {
    struct edge *e = &job->edges[i];

    e->chained = e->mode == WEIR_PART_FORWARD &&
                 job->nodes[e->from].parallelism == job->nodes[e->to].parallelism &&
                 count_edges(job, e->from, true) == 1 && count_edges(job, e->to, false) == 1;
  }
}

static const struct edge *chained_out(const weir_job *job, int node) {
  size_t i;

  for (i = 0; i < job->n_edges; i++)
    if (job->edges[i].from == node && job->edges[i].chained)
      return &job->edges[i];
  return NULL;
}

static bool is_chain_head(const weir_job *job, int node) {
  size_t i;

  for (i = 0; i < job->n_edges; i++)
    if (job->edges[i].to == node && job->edges[i].chained)
      return false;
  return true;
}

static int build_chains(weir_job *job) {
  size_t i;

  job->chains = calloc(job->n_nodes, sizeof(*job->chains));
  if (job->chains == NULL)
    return WEIR_ENOMEM;
  for (i = 0; i < job->n_nodes; i++) {
    struct chain *c;
    const struct edge *e;
    int n = (int)i;

    if (!is_chain_head(job, n))
      continue;
    c = &job->chains[job->n_chains];
    c->nodes = calloc(job->n_nodes, sizeof(*c->nodes));
    if (c->nodes == NULL)
      return WEIR_ENOMEM;
    c->parallelism = job->nodes[n].parallelism;
    for (;;) {
      job->nodes[n].chain = (int)job->n_chains;
      job->nodes[n].chain_pos = (int)c->len;
      c->nodes[c->len++] = n;
      if ((e = chained_out(job, n)) == NULL)
        break;
      n = e->to;
    }
    job->n_chains++;
  }
  return 0;
}

/* Number of gate channels that edge `e` contributes to one downstream task. */
static int edge_fan_in(const weir_job *job, const struct edge *e) {
  return e->mode == WEIR_PART_FORWARD ? 1 : job->nodes[e->from].parallelism;
}

/* Index of the gate channel, in the task of `e->to` for downstream subtask `down`, that
 * upstream subtask `up` writes to. Channels are ordered by edge, then upstream subtask. */
static size_t gate_index(const weir_job *job, const struct edge *e, int up) {
  size_t i, idx = 0;

  for (i = 0; i < job->n_edges && &job->edges[i] != e; i++)
    if (job->edges[i].to == e->to)
      idx += (size_t)edge_fan_in(job, &job->edges[i]);
  return idx + (e->mode == WEIR_PART_FORWARD ? 0 : (size_t)up);
}

static struct task *new_task(weir_job *job, struct chain *c, int subtask) {
  struct task *t = calloc(1, sizeof(*t));
  int head = c->nodes[0];
  size_t i, n_in = 0;

  if (t == NULL)
    return NULL;
  t->job = job;
  t->chain = c;
  t->subtask = subtask;
  t->pending_since = -1;
  t->in_watermark = INT64_MIN;
  t->ctxs = calloc(c->len, sizeof(*t->ctxs));
  t->in_bytes = calloc(c->len, sizeof(*t->in_bytes));
  if (t->ctxs == NULL || t->in_bytes == NULL)
    goto fail;
  for (i = 0; i < c->len; i++) {
    struct weir_ctx *x = &t->ctxs[i];

    x->task = t;
    x->node = &job->nodes[c->nodes[i]];
    x->pos = i;
    x->inst = x->node->data;
    x->out_wm = INT64_MIN;
    if (i + 1 < c->len) {
      x->link = weir__batch_new(job->batch_records, job->batch_bytes);
      if (x->link == NULL)
        goto fail;
      t->in_bytes[i + 1].lo = x->link->arena;
      t->in_bytes[i + 1].hi = x->link->arena + x->link->arena_cap;
    }
  }
  for (i = 0; i < job->n_edges; i++)
    if (job->edges[i].to == head)
      n_in += (size_t)edge_fan_in(job, &job->edges[i]);
  if (n_in > 0) {
    if (weir__gate_init(&t->gate, n_in, job->chan_cap, job->batch_records, job->batch_bytes) != 0)
      goto fail;
    t->has_gate = true;
    t->inputs = calloc(n_in, sizeof(*t->inputs));
    if (t->inputs == NULL)
      goto fail;
    for (i = 0; i < n_in; i++)
      t->inputs[i].watermark = INT64_MIN;
  }
  return t;

fail:
  weir__task_free(t);
  return NULL;
}

static int wire_outputs(weir_job *job, struct task *t) {
  int tail = t->chain->nodes[t->chain->len - 1];
  size_t i, k = 0;

  t->n_outs = count_edges(job, tail, true);
  if (t->n_outs == 0)
    return 0;
  t->outs = calloc(t->n_outs, sizeof(*t->outs));
  if (t->outs == NULL)
    return WEIR_ENOMEM;
  for (i = 0; i < job->n_edges; i++) {
    const struct edge *e = &job->edges[i];
    struct chain *down;
    struct output *o;
    int d;

    if (e->from != tail)
      continue;
    o = &t->outs[k++];
    down = &job->chains[job->nodes[e->to].chain];
    o->part = e->mode;
    o->n_targets = e->mode == WEIR_PART_FORWARD ? 1 : down->parallelism;
    o->rr = (uint32_t)t->subtask; /* spread rebalance starts across upstream subtasks */
    o->chans = calloc((size_t)o->n_targets, sizeof(*o->chans));
    o->cur = calloc((size_t)o->n_targets, sizeof(*o->cur));
    if (o->chans == NULL || o->cur == NULL)
      return WEIR_ENOMEM;
    for (d = 0; d < o->n_targets; d++) {
      struct task *dt = down->tasks[e->mode == WEIR_PART_FORWARD ? t->subtask : d];

      o->chans[d] = &dt->gate.chans[gate_index(job, e, t->subtask)];
    }
  }
  return 0;
}

static void free_tasks(struct task **tasks, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (tasks[i] != NULL)
      weir__task_free(tasks[i]);
  free(tasks);
}

int weir__plan_build(weir_job *job) {
  struct task **tasks;
  size_t i, k = 0, n = 0;
  int s, rc = 0;

  mark_chained(job);
  if ((rc = build_chains(job)) != 0)
    return rc;
  for (i = 0; i < job->n_chains; i++)
    n += (size_t)job->chains[i].parallelism;
  if ((tasks = calloc(n, sizeof(*tasks))) == NULL)
    return WEIR_ENOMEM;
  for (i = 0; i < job->n_chains && rc == 0; i++) {
    struct chain *c = &job->chains[i];

    c->tasks = &tasks[k];
    for (s = 0; s < c->parallelism && rc == 0; s++)
      if ((tasks[k++] = new_task(job, c, s)) == NULL)
        rc = WEIR_ENOMEM;
  }
  for (i = 0; i < n && rc == 0; i++)
    rc = wire_outputs(job, tasks[i]);
  if (rc != 0) {
    free_tasks(tasks, n);
    return rc;
  }
  /* Publish complete tasks only. A cancel that came before (or during) planning found no
   * gates to wake; apply it now, under the same lock weir__job_cancel_all takes. */
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  job->tasks = tasks;
  job->n_tasks = n;
  if (atomic_load(&job->cancelled))
    for (i = 0; i < n; i++)
      if (tasks[i]->has_gate)
        weir__gate_cancel(&tasks[i]->gate);
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  WEIR_LOG_DEBUG("job '%s': %zu nodes in %zu chains, %zu tasks", job->name, job->n_nodes,
                 job->n_chains, n);
  return 0;
}

void weir__plan_free(weir_job *job) {
  struct task **tasks;
  size_t i, n;

  /* Detach under the lock: weir_job_cancel may be walking the list from another thread. */
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  tasks = job->tasks;
  n = job->n_tasks;
  job->tasks = NULL;
  job->n_tasks = 0;
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  free_tasks(tasks, n);
  for (i = 0; i < job->n_chains; i++)
    free(job->chains[i].nodes);
  free(job->chains);
  job->chains = NULL;
  job->n_chains = 0;
}
