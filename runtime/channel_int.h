/*
 * channel_int.h: bounded, batch-carrying channels between task threads.
 *
 * A gate is the consumer side of one task: it owns a mutex and a condition variable and one
 * channel per upstream producer (Flink's input gate and input channels). Each channel is a
 * bounded ring of messages (a batch, or an in-band control event: watermark, barrier,
 * end-of-input) plus a fixed pool of recycled batches. A producer blocks when the ring is full
 * or no batch is free: that is backpressure, and nothing grows without bound.
 *
 * Threads: exactly one consumer thread per gate (pop, block, release); one or more producer
 * threads per channel (acquire, push). Cancel from any thread. Every field of the gate and its
 * channels is guarded by the gate's mutex; there is no other lock, so no lock order.
 */
#ifndef WEIR_CHANNEL_INT_H
#define WEIR_CHANNEL_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "batch_int.h"

enum weir_msg_kind {
  WEIR_MSG_BATCH = 0, /* batch: records; release it to its channel after use */
  WEIR_MSG_WATERMARK, /* value: event time */
  WEIR_MSG_BARRIER,   /* value: checkpoint id */
  WEIR_MSG_END,       /* end of input on this channel; nothing follows */
  WEIR_MSG_IDLE       /* value: 1 = the producer went idle, 0 = active again (see task.c) */
};

struct weir_msg {
  int kind;
  int64_t value;
  struct weir_batch *batch;
};

struct weir_gate;

struct weir_chan {
  struct weir_gate *gate;
  struct weir_msg *ring;
  size_t ring_cap;
  size_t head;
  size_t len;
  struct weir_batch **free; /* recycled batches, n_free of them */
  size_t n_free;
  size_t n_alloc; /* batches allocated so far, at most pool_cap */
  size_t pool_cap;
  pthread_cond_t not_full; /* producers wait here for ring space or a free batch */
  int producers_waiting;   /* blocked in acquire or push */
  int batch_waiters;       /* of those, blocked in acquire (waiting for a free batch) */
  bool ended;              /* END popped */
  bool blocked;            /* consumer holds this channel back (barrier alignment) */
};

struct weir_gate {
  pthread_mutex_t mu;
  pthread_cond_t cond; /* the consumer waits here */
  bool consumer_waiting;
  bool cancelled;
  struct weir_chan *chans;
  size_t n_chans;
  size_t next; /* round-robin start for the next pop */
  size_t n_ended;
  size_t batch_records;
  size_t batch_bytes;
};

/* Sets up a gate with `n_chans` channels of `ring_cap` messages each. 0 or WEIR_ENOMEM. */
int weir__gate_init(struct weir_gate *g, size_t n_chans, size_t ring_cap, size_t batch_records,
                    size_t batch_bytes);
/* Frees the gate's channels and every batch they own (including ones still queued). */
void weir__gate_destroy(struct weir_gate *g);

/* Producer: an empty batch from the channel's pool; blocks while none is free. NULL when the
 * gate is cancelled (or on ENOMEM while growing the pool: *err says which). */
struct weir_batch *weir__chan_acquire(struct weir_chan *c, int *err);
/* Producer: appends a message, blocking while the ring is full. 0 or WEIR_ECANCELED (a batch
 * in a refused message goes back to the pool). */
int weir__chan_push(struct weir_chan *c, const struct weir_msg *m);
/* Producer: returns an unused batch from acquire to the pool without sending it. */
void weir__chan_release(struct weir_chan *c, struct weir_batch *b);

/* Consumer: pops the next message from any unblocked channel, round-robin. Waits until the
 * monotonic deadline (ms; -1 = no deadline). Returns 0 with *m and *chan_idx set; WEIR_EOF
 * when every channel has ended and nothing is queued; WEIR_ETIMEDOUT; WEIR_ECANCELED. */
int weir__gate_pop(struct weir_gate *g, struct weir_msg *m, size_t *chan_idx, int64_t deadline_ms);
/* Consumer: stops (true) or resumes (false) delivery from one channel. */
void weir__gate_block(struct weir_gate *g, size_t chan_idx, bool blocked);
/* Wakes every waiter on the gate; every later call returns WEIR_ECANCELED/NULL. Any thread. */
void weir__gate_cancel(struct weir_gate *g);

/* Monotonic clock in milliseconds. */
int64_t weir__now_ms(void);

#endif /* WEIR_CHANNEL_INT_H */
