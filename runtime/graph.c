/* graph.c: building a job graph (nodes, edges, options) and validating it at start. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_int.h"
#include "log_int.h"

/* Bounds on job options; see weir/job.h. */
#define WEIR_BATCH_RECORDS_MAX 65536
#define WEIR_BATCH_BYTES_MIN (4u << 10)
#define WEIR_BATCH_BYTES_MAX (256u << 20)
#define WEIR_CHAN_CAP_MAX 4096
#define WEIR_TICK_MS_MAX 3600000
#define WEIR_MAX_PARALLELISM_LIMIT 32768
/* Bound on nodes per job: graphs are built by hand or from a file, never from data. */
#define WEIR_MAX_NODES 4096

static const char *const kind_names[] = {"source", "operator", "sink"};

void weir__job_set_error(weir_job *job, const char *fmt, ...) {
  va_list ap;

  /* After start, a task may be writing its failure here: never overwrite that one. */
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  if (job->fail_rc == 0) {
    va_start(ap, fmt);
    vsnprintf(job->err, sizeof(job->err), fmt, ap);
    va_end(ap);
    WEIR_LOG_ERR("job '%s': %s", job->name, job->err);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);

  if (d != NULL)
    memcpy(d, s, n);
  return d;
}

int weir_job_create(weir_job **jobp, const char *name) {
  weir_job *job;

  if (jobp == NULL || name == NULL || name[0] == '\0')
    return WEIR_EINVAL;
  job = calloc(1, sizeof(*job));
  if (job == NULL)
    return WEIR_ENOMEM;
  job->name = dup_str(name);
  if (job->name == NULL) {
    free(job);
    return WEIR_ENOMEM;
  }
  job->batch_records = 512;
  job->batch_bytes = 2u << 20;
  job->chan_cap = 8;
  job->buffer_timeout_ms = 100;
  job->tick_ms = 100;
  job->max_parallelism = WEIR_DEFAULT_MAX_PARALLELISM;
  job->ckpt.timeout_ms = 600000; /* Flink's default checkpoint timeout: 10 minutes */
  job->ckpt.mode = WEIR_EXACTLY_ONCE;
  atomic_init(&job->stopping, false);
  atomic_init(&job->cancelled, false);
  WEIR_ASSERT(pthread_mutex_init(&job->mu, NULL) == 0);
  WEIR_ASSERT(pthread_mutex_init(&job->metrics_mu, NULL) == 0);
  *jobp = job;
  return 0;
}

int weir__job_check_building(weir_job *job) {
  if (job == NULL)
    return WEIR_EINVAL;
  if (job->state != JOB_CREATED) {
    weir__job_set_error(job, "the job has already been started; build it before weir_job_start");
    return WEIR_ESTATE;
  }
  return 0;
}

static struct node *node_at(weir_job *job, int id) {
  if (id < 0 || (size_t)id >= job->n_nodes)
    return NULL;
  return &job->nodes[id];
}

static struct edge *find_edge(weir_job *job, int from, int to) {
  size_t i;

  for (i = 0; i < job->n_edges; i++)
    if (job->edges[i].from == from && job->edges[i].to == to)
      return &job->edges[i];
  return NULL;
}

static int add_edge(weir_job *job, int from, int to, weir_partitioning part) {
  struct node *src = node_at(job, from), *dst = node_at(job, to);

  if (src == NULL || dst == NULL || from == to) {
    weir__job_set_error(job, "connect %d -> %d: no such node pair", from, to);
    return WEIR_EINVAL;
  }
  if (part < WEIR_PART_AUTO || part > WEIR_PART_BROADCAST) {
    weir__job_set_error(job, "connect '%s' -> '%s': unknown partitioning %d", src->name, dst->name,
                        (int)part);
    return WEIR_EINVAL;
  }
  if (src->kind == NODE_SINK) {
    weir__job_set_error(job, "connect '%s' -> '%s': a sink has no output", src->name, dst->name);
    return WEIR_EINVAL;
  }
  if (dst->kind == NODE_SOURCE) {
    weir__job_set_error(job, "connect '%s' -> '%s': a source has no input", src->name, dst->name);
    return WEIR_EINVAL;
  }
  if (find_edge(job, from, to) != NULL) {
    weir__job_set_error(job, "connect '%s' -> '%s': already connected", src->name, dst->name);
    return WEIR_EEXIST;
  }
  if (job->n_edges == job->cap_edges) {
    size_t cap = job->cap_edges ? job->cap_edges * 2 : 8;
    struct edge *e = realloc(job->edges, cap * sizeof(*e));

    if (e == NULL)
      return WEIR_ENOMEM;
    job->edges = e;
    job->cap_edges = cap;
  }
  job->edges[job->n_edges++] = (struct edge){from, to, part, part, false};
  return 0;
}

/* Adds a node of `kind`; on success its id is job->n_nodes - 1. */
static int add_node(weir_job *job, enum node_kind kind, int upstream, const char *name,
                    const weir_operator *op, void *data, int *id) {
  struct node *n;
  size_t i;
  int rc;

  if ((rc = weir__job_check_building(job)) != 0)
    return rc;
  if (name == NULL || name[0] == '\0' || op == NULL) {
    weir__job_set_error(job, "add %s: a name and an operator are required", kind_names[kind]);
    return WEIR_EINVAL;
  }
  if (kind == NODE_SOURCE ? op->poll == NULL : op->process == NULL) {
    weir__job_set_error(job, "add %s '%s': the operator lacks its %s callback", kind_names[kind],
                        name, kind == NODE_SOURCE ? "poll" : "process");
    return WEIR_EINVAL;
  }
  if (upstream != WEIR_NO_INPUT && node_at(job, upstream) == NULL) {
    weir__job_set_error(job, "add %s '%s': upstream %d is not a node of this job", kind_names[kind],
                        name, upstream);
    return WEIR_EINVAL;
  }
  for (i = 0; i < job->n_nodes; i++) {
    if (strcmp(job->nodes[i].name, name) == 0) {
      weir__job_set_error(job, "add %s '%s': a node with this name exists", kind_names[kind], name);
      return WEIR_EEXIST;
    }
  }
  if (job->n_nodes == WEIR_MAX_NODES) {
    weir__job_set_error(job, "add %s '%s': more than %d nodes", kind_names[kind], name,
                        WEIR_MAX_NODES);
    return WEIR_ETOOBIG;
  }
  if (job->n_nodes == job->cap_nodes) {
    size_t cap = job->cap_nodes ? job->cap_nodes * 2 : 8;
    struct node *nn = realloc(job->nodes, cap * sizeof(*nn));

    if (nn == NULL)
      return WEIR_ENOMEM;
    job->nodes = nn;
    job->cap_nodes = cap;
  }
  n = &job->nodes[job->n_nodes];
  memset(n, 0, sizeof(*n));
  n->name = dup_str(name);
  if (n->name == NULL)
    return WEIR_ENOMEM;
  n->kind = kind;
  n->op = *op;
  n->data = data;
  n->parallelism = 1;
  job->n_nodes++;
  if (upstream != WEIR_NO_INPUT) {
    rc = add_edge(job, upstream, (int)job->n_nodes - 1, WEIR_PART_AUTO);
    if (rc != 0) {
      job->n_nodes--;
      free(n->name);
      return rc;
    }
  }
  if (id != NULL)
    *id = (int)job->n_nodes - 1;
  return 0;
}

int weir_job_add_source(weir_job *job, const char *name, const weir_operator *op, void *data,
                        int *id) {
  return add_node(job, NODE_SOURCE, WEIR_NO_INPUT, name, op, data, id);
}

int weir_job_add_operator(weir_job *job, int upstream, const char *name, const weir_operator *op,
                          void *data, int *id) {
  return add_node(job, NODE_OPERATOR, upstream, name, op, data, id);
}

int weir_job_add_sink(weir_job *job, int upstream, const char *name, const weir_operator *op,
                      void *data, int *id) {
  return add_node(job, NODE_SINK, upstream, name, op, data, id);
}

int weir_job_connect(weir_job *job, int from, int to, weir_partitioning part) {
  int rc = weir__job_check_building(job);

  return rc != 0 ? rc : add_edge(job, from, to, part);
}

int weir_job_set_partitioning(weir_job *job, int from, int to, weir_partitioning part) {
  struct edge *e;
  int rc;

  if ((rc = weir__job_check_building(job)) != 0)
    return rc;
  if (part < WEIR_PART_AUTO || part > WEIR_PART_BROADCAST) {
    weir__job_set_error(job, "set partitioning %d -> %d: unknown partitioning %d", from, to,
                        (int)part);
    return WEIR_EINVAL;
  }
  e = find_edge(job, from, to);
  if (e == NULL) {
    weir__job_set_error(job, "set partitioning: no edge %d -> %d", from, to);
    return WEIR_ENOTFOUND;
  }
  e->part = part;
  return 0;
}

int weir_job_set_parallelism(weir_job *job, int id, int parallelism) {
  struct node *n;
  int rc;

  if ((rc = weir__job_check_building(job)) != 0)
    return rc;
  if ((n = node_at(job, id)) == NULL) {
    weir__job_set_error(job, "set parallelism: node %d does not exist", id);
    return WEIR_EINVAL;
  }
  /* Range is checked at start, where max parallelism is final; here only the sign. */
  if (parallelism < 1) {
    weir__job_set_error(job, "'%s': parallelism %d is not >= 1", n->name, parallelism);
    return WEIR_EINVAL;
  }
  n->parallelism = parallelism;
  return 0;
}

int weir_job_set_uid(weir_job *job, int id, const char *uid) {
  struct node *n;
  char *copy;
  int rc;

  if ((rc = weir__job_check_building(job)) != 0)
    return rc;
  if ((n = node_at(job, id)) == NULL || uid == NULL || uid[0] == '\0') {
    weir__job_set_error(job, "set uid: node %d does not exist or the uid is empty", id);
    return WEIR_EINVAL;
  }
  if ((copy = dup_str(uid)) == NULL)
    return WEIR_ENOMEM;
  free(n->uid);
  n->uid = copy;
  return 0;
}

int weir__job_range_error(weir_job *job, const char *what, const char *range) {
  weir__job_set_error(job, "%s out of range: allowed %s", what, range);
  return WEIR_EINVAL;
}

int weir_job_set_batch_size(weir_job *job, size_t max_records, size_t max_bytes) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (max_records < 1 || max_records > WEIR_BATCH_RECORDS_MAX || max_bytes < WEIR_BATCH_BYTES_MIN ||
      max_bytes > WEIR_BATCH_BYTES_MAX)
    return weir__job_range_error(job, "batch size", "records 1..65536, bytes 4096..268435456");
  job->batch_records = max_records;
  job->batch_bytes = max_bytes;
  return 0;
}

int weir_job_set_channel_capacity(weir_job *job, size_t batches) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (batches < 1 || batches > WEIR_CHAN_CAP_MAX)
    return weir__job_range_error(job, "channel capacity", "1..4096 batches");
  job->chan_cap = batches;
  return 0;
}

int weir_job_set_buffer_timeout(weir_job *job, int64_t ms) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (ms < 0 || ms > WEIR_TICK_MS_MAX)
    return weir__job_range_error(job, "buffer timeout", "0..3600000 ms");
  job->buffer_timeout_ms = ms;
  return 0;
}

int weir_job_set_tick_interval(weir_job *job, int64_t ms) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (ms < 1 || ms > WEIR_TICK_MS_MAX)
    return weir__job_range_error(job, "tick interval", "1..3600000 ms");
  job->tick_ms = ms;
  return 0;
}

int weir_job_set_max_parallelism(weir_job *job, int max_parallelism) {
  int rc = weir__job_check_building(job);

  if (rc != 0)
    return rc;
  if (max_parallelism < 1 || max_parallelism > WEIR_MAX_PARALLELISM_LIMIT)
    return weir__job_range_error(job, "max parallelism", "1..32768");
  job->max_parallelism = max_parallelism;
  return 0;
}

/* Kahn's algorithm; on a cycle names one node on it. */
static int check_acyclic(weir_job *job) {
  size_t *indeg = calloc(job->n_nodes, sizeof(*indeg));
  int *queue = calloc(job->n_nodes, sizeof(*queue));
  size_t i, head = 0, tail = 0;
  int rc = 0;

  if (indeg == NULL || queue == NULL) {
    rc = WEIR_ENOMEM;
    goto out;
  }
  for (i = 0; i < job->n_edges; i++)
    indeg[job->edges[i].to]++;
  for (i = 0; i < job->n_nodes; i++)
    if (indeg[i] == 0)
      queue[tail++] = (int)i;
  while (head < tail) {
    int n = queue[head++];

    for (i = 0; i < job->n_edges; i++)
      if (job->edges[i].from == n && --indeg[job->edges[i].to] == 0)
        queue[tail++] = job->edges[i].to;
  }
  if (tail < job->n_nodes) {
    /* Every node left has an in-edge from another node left: walking such edges backwards
     * n_nodes times from any of them must end on a cycle. Name that node. */
    int n = -1;

    for (i = 0; i < job->n_nodes && n < 0; i++)
      if (indeg[i] > 0)
        n = (int)i;
    for (size_t step = 0; step < job->n_nodes; step++) {
      for (i = 0; i < job->n_edges; i++) {
        if (job->edges[i].to == n && indeg[job->edges[i].from] > 0) {
          n = job->edges[i].from;
          break;
        }
      }
    }
    weir__job_set_error(job, "graph: cycle through '%s'; a job graph must be acyclic",
                        job->nodes[n].name);
    rc = WEIR_EGRAPH;
  }
out:
  free(indeg);
  free(queue);
  return rc;
}

const char *weir__node_uid(const struct node *n) {
  return n->uid != NULL ? n->uid : n->name;
}

int weir__graph_validate(weir_job *job) {
  size_t i, j, n_sources = 0;
  int rc;

  if (job->n_nodes == 0) {
    weir__job_set_error(job, "graph: the job has no nodes; add a source");
    return WEIR_EGRAPH;
  }
  for (i = 0; i < job->n_nodes; i++) {
    struct node *n = &job->nodes[i];
    size_t ins = 0, outs = 0;

    for (j = 0; j < job->n_edges; j++) {
      ins += job->edges[j].to == (int)i;
      outs += job->edges[j].from == (int)i;
    }
    n_sources += n->kind == NODE_SOURCE;
    if (n->kind != NODE_SOURCE && ins == 0) {
      weir__job_set_error(job, "graph: %s '%s' has no input; connect it with weir_job_connect",
                          kind_names[n->kind], n->name);
      return WEIR_EGRAPH;
    }
    if (n->kind != NODE_SINK && outs == 0) {
      weir__job_set_error(job, "graph: the output of %s '%s' is not connected; add a sink",
                          kind_names[n->kind], n->name);
      return WEIR_EGRAPH;
    }
    if (n->parallelism > job->max_parallelism) {
      weir__job_set_error(job, "graph: '%s' has parallelism %d, above max parallelism %d", n->name,
                          n->parallelism, job->max_parallelism);
      return WEIR_EGRAPH;
    }
    if (n->max_parallelism > 0 && n->parallelism > n->max_parallelism) {
      weir__job_set_error(job, "graph: '%s' supports parallelism up to %d, not %d", n->name,
                          n->max_parallelism, n->parallelism);
      return WEIR_EGRAPH;
    }
    for (j = 0; j < i; j++) {
      if (strcmp(weir__node_uid(&job->nodes[j]), weir__node_uid(n)) == 0) {
        weir__job_set_error(job, "graph: '%s' and '%s' share uid '%s'; uids must be unique",
                            job->nodes[j].name, n->name, weir__node_uid(n));
        return WEIR_EGRAPH;
      }
    }
  }
  if (n_sources == 0) {
    weir__job_set_error(job, "graph: the job has no source");
    return WEIR_EGRAPH;
  }
  if ((rc = check_acyclic(job)) != 0)
    return rc;
  for (i = 0; i < job->n_edges; i++) {
    struct edge *e = &job->edges[i];
    struct node *a = &job->nodes[e->from], *b = &job->nodes[e->to];

    e->mode = e->part;
    if (e->mode == WEIR_PART_AUTO) {
      if (a->key_by)
        e->mode = WEIR_PART_HASH;
      else
        e->mode = a->parallelism == b->parallelism ? WEIR_PART_FORWARD : WEIR_PART_REBALANCE;
    }
    if (e->mode == WEIR_PART_FORWARD && a->parallelism != b->parallelism) {
      weir__job_set_error(job,
                          "graph: forward edge '%s' -> '%s' joins parallelism %d to %d; "
                          "use rebalance or hash partitioning",
                          a->name, b->name, a->parallelism, b->parallelism);
      return WEIR_EGRAPH;
    }
  }
  return 0;
}
