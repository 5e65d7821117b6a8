/*
 * checkpoint_int.h: the checkpoint coordinator and the task side of checkpoints.
 *
 * The coordinator (one thread per job with a checkpoint directory) triggers checkpoint N by
 * recording it as pending in the store and publishing N in job->ckpt_trigger; source tasks see
 * it between polls, snapshot their chain and emit barrier N; other tasks snapshot when barrier N
 * is aligned (task.c). Each task stores its blobs in the store itself and acknowledges; when
 * every task has, the coordinator commits N in one synced transaction and publishes
 * job->ckpt_completed, and tasks deliver notify_checkpoint_complete in their loops.
 *
 * Lock order: job->mu, then coord->mu, then a gate mutex. Tasks take coord->mu only to ack.
 */
#ifndef WEIR_CHECKPOINT_INT_H
#define WEIR_CHECKPOINT_INT_H

#include "task_int.h"

/* At start, before tasks exist: opens the store, picks and validates the checkpoint to restore
 * from (uids, max parallelism, rescaling limits). 0, or an error with weir_job_error set. */
int weir__coord_open(weir_job *job);
/* After task threads started: starts the coordinator thread. */
int weir__coord_start(weir_job *job);
/* After every task thread joined: stops the coordinator and closes the store. */
void weir__coord_close(weir_job *job);

/* Task side; called on the task's own thread. */
/* Restores every operator of the chain from the restored checkpoint (after open). */
int weir__ckpt_restore_chain(struct task *t);
/* Snapshots every stateful operator of the chain for checkpoint `id`, stores and acks. */
int weir__ckpt_snapshot_chain(struct task *t, uint64_t id);
/* The task ended normally: keep its final state for checkpoints triggered from now on.
 * only_unacked: only if a checkpoint is in flight that this task has not acknowledged (a task
 * ending at a savepoint that never saw its barrier). */
void weir__ckpt_task_finished(struct task *t, bool only_unacked);
/* Delivers notify_checkpoint_complete when a newer checkpoint completed. */
void weir__ckpt_notify(struct task *t);
/* Frees a task's final blobs. */
void weir__ckpt_free_finals(struct task *t);

#endif /* WEIR_CHECKPOINT_INT_H */
