/*
 * job_int.h: the job's internal structures, shared by graph.c (building and validation),
 * plan.c (chaining and wiring tasks), task.c (the task thread) and job.c (lifecycle).
 *
 * Ownership: the job owns its nodes, edges, tasks and gates; tasks borrow the nodes and gates.
 * Threads: nodes and edges are written only before start; afterwards they are read-only and
 * shared by every task thread. The failure fields are guarded by `mu`.
 */
#ifndef WEIR_JOB_INT_H
#define WEIR_JOB_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "channel_int.h"
#include "weir/checkpoint.h"
#include "weir/job.h"

enum node_kind { NODE_SOURCE, NODE_OPERATOR, NODE_SINK };

struct node {
  char *name;
  char *uid;
  enum node_kind kind;
  weir_operator op;
  void *data;                           /* borrowed from the user, or owned_data */
  void *owned_data;                     /* freed with the job (convenience operators' wrappers) */
  void (*owned_free)(void *owned_data); /* how to free it; NULL = free() */
  int parallelism;
  int max_parallelism; /* the connector's own bound (line source: 1), 0 = none */
  bool key_by;         /* AUTO edges leaving it resolve to HASH */
  bool barrier_hook;   /* op.snapshot only flushes at barriers and writes no state (sinks) */
  /* A watermark generator (operators/event_time.c): it emits its own watermarks and idle
   * status (weir_emit_watermark, weir_emit_idle), so watermarks and status from its inputs
   * stop at it (Flink's timestamp assigner drops upstream watermarks the same way). */
  bool wm_generator;
  /* Filled by planning: */
  int chain;     /* index of its chain */
  int chain_pos; /* position inside the chain */
};

struct edge {
  int from;
  int to;
  weir_partitioning part; /* as set by the user */
  weir_partitioning mode; /* resolved at validation: never AUTO */
  bool chained;
};

struct chain {
  int *nodes; /* node ids, head first */
  size_t len;
  int parallelism;
  struct task **tasks; /* one per subtask */
};

/* Checkpoint options (weir/checkpoint.h). dir == NULL: checkpointing off. */
struct ckpt_config {
  char *dir;
  int64_t interval_ms;
  int64_t timeout_ms;
  int64_t min_pause_ms;
  weir_checkpoint_mode mode;
  int tolerable_failures;
  unsigned retain;
  size_t map_size;
  uint64_t restore_id;
  bool allow_non_restored;
};

struct weir__coord; /* checkpoint_int.h */

struct weir_job {
  char *name;
  struct node *nodes;
  size_t n_nodes;
  size_t cap_nodes;
  struct edge *edges;
  size_t n_edges;
  size_t cap_edges;

  /* Options. */
  size_t batch_records;
  size_t batch_bytes;
  size_t chan_cap;
  int64_t buffer_timeout_ms;
  int64_t tick_ms;
  int max_parallelism;

  /* Plan, built at start. */
  struct chain *chains;
  size_t n_chains;
  struct task **tasks;
  size_t n_tasks;

  struct ckpt_config ckpt;
  struct weir__coord *coord;        /* NULL unless checkpointing; created at start */
  weir_checkpoint_stats ckpt_stats; /* the coordinator's, kept when it closes (under mu) */
  /* Read by task threads in their loops; written by the coordinator. */
  _Atomic uint64_t ckpt_trigger;   /* newest barrier id sources must emit */
  _Atomic uint64_t ckpt_completed; /* newest complete checkpoint: deliver notify up to it */
  _Atomic uint64_t savepoint_id;   /* sources stop after emitting this barrier (0 = none) */
  atomic_bool suspending;          /* stopped at a savepoint: tasks end without finish callbacks */

  enum { JOB_CREATED, JOB_RUNNING, JOB_JOINED } state;
  atomic_bool stopping;
  atomic_bool cancelled;
  /* Guards fail_rc, err (after start) and the tasks pointer against weir_job_cancel.
   * Lock order: job->mu before any gate mutex; never the reverse. */
  pthread_mutex_t mu;
  int fail_rc;    /* first failure */
  char err[1024]; /* graph error or first failure message */

  /* Metric series (metrics.c): appended under metrics_mu, freed at destroy. metrics_mu is a
   * leaf lock: nothing else is taken while it is held. */
  pthread_mutex_t metrics_mu;
  struct weir_metric *metrics_head;
  struct weir_metric *metrics_tail;
  uint64_t metrics_seq;
};

/* graph.c */
/* 0 while the job may still be built; WEIR_ESTATE (with a message) after start. */
int weir__job_check_building(weir_job *job);
/* Sets "<what> out of range: allowed <range>" and returns WEIR_EINVAL. */
int weir__job_range_error(weir_job *job, const char *what, const char *range);
/* The node's uid: the one set with weir_job_set_uid, else its name (names are unique). */
const char *weir__node_uid(const struct node *n);
int weir__graph_validate(weir_job *job);
/* Sets job->err (and logs it). */
void weir__job_set_error(weir_job *job, const char *fmt, ...) WEIR_PRINTF(2, 3);

/* plan.c: builds chains, tasks, gates and outputs. 0, WEIR_ENOMEM. */
int weir__plan_build(weir_job *job);
void weir__plan_free(weir_job *job);

/* job.c: records the first failure and cancels every task. Any thread. */
void weir__job_fail(weir_job *job, int rc, const char *fmt, ...) WEIR_PRINTF(3, 4);
void weir__job_cancel_all(weir_job *job);

/* metrics.c: frees every series (destroy). */
void weir__metrics_free(weir_job *job);

/* key groups (Flink's scheme): the key's group, and the subtask owning a group. */
uint32_t weir__key_group(weir_buf key, int max_parallelism);
static inline int weir__key_group_subtask(uint32_t kg, int max_parallelism, int parallelism) {
  return (int)(((uint64_t)kg * (uint64_t)parallelism) / (uint64_t)max_parallelism);
}

#endif /* WEIR_JOB_INT_H */
