/*
 * task_int.h: one task = one thread running one subtask of a chain of operators.
 *
 * The chain head reads from the task's gate (or polls, for a source); each operator emits into
 * a link batch that feeds the next operator directly (no queue, same thread); the chain tail
 * emits through outputs, one per outgoing edge, into channels of downstream tasks.
 * Threads: a task's fields are touched only by its own thread after start, except `gate`,
 * whose producers are upstream threads (see channel_int.h).
 */
#ifndef WEIR_TASK_INT_H
#define WEIR_TASK_INT_H

#include "job_int.h"

struct weir_snapshot {
  uint8_t *ptr;
  size_t len;
  size_t cap;
};

struct weir_ctx {
  struct task *task;
  struct node *node;
  size_t pos; /* position in the chain */
  void *inst;
  bool opened;
  struct weir_batch *link;           /* output to the next chained operator; NULL at the tail */
  struct weir__keyed_backend *keyed; /* keyed state, created on first use or restore */
  uint8_t *scratch;
  size_t scratch_cap;
  /* Sources and watermark generators only: the newest watermark this operator emitted
   * (INT64_MIN = none) and whether it declared itself idle (weir_emit_idle). */
  int64_t out_wm;
  bool idle;
  /* Runtime metrics: sources count records emitted (weir_source_records_total, published
   * after every poll), sinks count records received (weir_sink_records_total). */
  struct weir_metric *m_records;
  uint64_t emitted;
  uint64_t emitted_published;
  char err[512];
};

/* One outgoing edge of the chain tail. */
struct output {
  weir_partitioning part;
  int n_targets;
  struct weir_chan **chans; /* target channel per downstream subtask (1 for forward) */
  struct weir_batch **cur;  /* batch being filled per target, or NULL */
  uint32_t rr;              /* next rebalance target */
};

/* What the task knows of one input channel. */
struct input {
  int64_t watermark;
  uint64_t barrier; /* last barrier id seen on it */
  bool idle;        /* its producer said it is idle: left out of the watermark minimum */
};

/* Bytes that stay valid while an operator of the chain runs (see weir_emit). */
struct byte_range {
  const uint8_t *lo;
  const uint8_t *hi;
};

struct task {
  weir_job *job;
  struct chain *chain;
  int subtask;
  struct weir_ctx *ctxs; /* chain->len */
  /* in_bytes[0]: the input batch's arena while it is processed (empty for sources);
   * in_bytes[k], k >= 1: link k-1's arena. While operator i runs, in_bytes[0..i] stay valid. */
  struct byte_range *in_bytes;
  struct weir_gate gate; /* inputs; n_chans 0 for sources */
  bool has_gate;
  struct input *inputs; /* gate.n_chans */
  int64_t in_watermark; /* min over live, active inputs */
  bool idle_out;        /* this task told its outputs it is idle (WEIR_MSG_IDLE 1) */
  uint64_t aligning;    /* barrier id being aligned, 0 = none */
  size_t n_aligned;
  struct output *outs;
  size_t n_outs;
  int64_t pending_since; /* when the oldest unsent output record was emitted; -1 = none */
  int64_t next_tick;
  uint64_t barrier_sent; /* sources: newest barrier emitted */
  uint64_t notified;     /* newest checkpoint notify_checkpoint_complete was delivered for */
  /* Checkpoint bookkeeping, guarded by the coordinator's mutex: */
  uint64_t acked;           /* newest checkpoint this task acknowledged */
  bool finished;            /* ended normally: `finals` stand for its state from now on */
  struct ckpt_blob *finals; /* final snapshots, n_finals of them */
  size_t n_finals;
  pthread_t thread;
  bool started;
};

/* A snapshot blob of one stateful operator of a task (owned; free ptr and pos). */
struct ckpt_blob {
  int node;
  uint8_t *ptr;
  size_t len;
  uint64_t keys;
  uint8_t *pos; /* sources: the operator state bytes, as the position (may be NULL) */
  size_t pos_len;
};

/* Sends a control message after flushing partial output batches (task.c). */
int weir__task_broadcast(struct task *t, int kind, int64_t value);

/* Thread entry. */
void *weir__task_main(void *arg);
/* Frees what the task owns (after its thread is joined, or when it never started). */
void weir__task_free(struct task *t);

#endif /* WEIR_TASK_INT_H */
