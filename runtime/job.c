/* job.c: a job's lifecycle: start (validate, plan, spawn), wait, stop, cancel, destroy. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "checkpoint_int.h"
#include "log_int.h"
#include "task_int.h"

uint32_t weir__key_group(weir_buf key, int max_parallelism) {
  /* XXH3 is stable across xxHash releases from 0.8 on: key groups, and therefore which subtask
   * owns which key's state, must not change between weir versions. */
  uint64_t h = XXH3_64bits(key.ptr != NULL ? key.ptr : (const uint8_t *)"", key.len);

  return (uint32_t)(h % (uint64_t)max_parallelism);
}

void weir__job_fail(weir_job *job, int rc, const char *fmt, ...) {
  bool first;
  va_list ap;

  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  first = job->fail_rc == 0;
  if (first) {
    job->fail_rc = rc;
    va_start(ap, fmt);
    vsnprintf(job->err, sizeof(job->err), fmt, ap);
    va_end(ap);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  if (first) {
    WEIR_LOG_ERR("job '%s': %s", job->name, job->err);
    weir__job_cancel_all(job);
  }
}

void weir__job_cancel_all(weir_job *job) {
  size_t i;

  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  atomic_store(&job->cancelled, true);
  for (i = 0; i < job->n_tasks; i++)
    if (job->tasks[i] != NULL && job->tasks[i]->has_gate)
      weir__gate_cancel(&job->tasks[i]->gate);
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
}

int weir_job_start(weir_job *job) {
  size_t i;
  int rc;

  if (job == NULL)
    return WEIR_EINVAL;
  if (job->state != JOB_CREATED) {
    weir__job_set_error(job, "start: the job was already started");
    return WEIR_ESTATE;
  }
  if ((rc = weir__graph_validate(job)) != 0)
    return rc;
  if ((rc = weir__coord_open(job)) != 0)
    return rc;
  if ((rc = weir__plan_build(job)) != 0) {
    weir__job_set_error(job, "start: %s while planning tasks", weir_strerror(rc));
    weir__plan_free(job);
    weir__coord_close(job);
    return rc;
  }
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  job->state = JOB_RUNNING;
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  for (i = 0; i < job->n_tasks; i++) {
    struct task *t = job->tasks[i];

    if (pthread_create(&t->thread, NULL, weir__task_main, t) != 0) {
      /* Fail, cancel and join what started: the caller gets the error now, not at wait. */
      weir__job_fail(job, WEIR_ESYS, "start: cannot create thread %zu of %zu", i + 1, job->n_tasks);
      weir_job_wait(job);
      return WEIR_ESYS;
    }
    t->started = true;
  }
  if (weir__coord_start(job) != 0) {
    weir__job_fail(job, WEIR_ESYS, "start: cannot create the checkpoint coordinator thread");
    weir_job_wait(job);
    return WEIR_ESYS;
  }
  WEIR_LOG_INFO("job '%s' started: %zu tasks", job->name, job->n_tasks);
  return 0;
}

int weir_job_wait(weir_job *job) {
  size_t i;
  int rc;

  if (job == NULL)
    return WEIR_EINVAL;
  if (job->state != JOB_RUNNING)
    return job->state == JOB_JOINED ? job->fail_rc : WEIR_ESTATE;
  for (i = 0; i < job->n_tasks; i++)
    if (job->tasks[i]->started)
      WEIR_ASSERT(pthread_join(job->tasks[i]->thread, NULL) == 0);
  weir__coord_close(job);
  WEIR_ASSERT(pthread_mutex_lock(&job->mu) == 0);
  job->state = JOB_JOINED;
  WEIR_ASSERT(pthread_mutex_unlock(&job->mu) == 0);
  rc = job->fail_rc;
  if (rc == 0 && atomic_load(&job->cancelled))
    rc = job->fail_rc = WEIR_ECANCELED;
  /* Threads are joined: every batch is back in a channel, so gates can go. */
  weir__plan_free(job);
  WEIR_LOG_INFO("job '%s' ended: %s", job->name, rc == 0 ? "finished" : weir_strerror(rc));
  return rc;
}

int weir_job_run(weir_job *job) {
  int rc = weir_job_start(job);

  return rc != 0 ? rc : weir_job_wait(job);
}

void weir_job_stop(weir_job *job) {
  if (job != NULL)
    atomic_store(&job->stopping, true);
}

void weir_job_cancel(weir_job *job) {
  /* Safe against a concurrent weir_job_wait: the task list is detached under job->mu before
   * it is freed. */
  if (job != NULL)
    weir__job_cancel_all(job);
}

const char *weir_job_error(const weir_job *job) {
  return job != NULL ? job->err : "";
}

void weir_job_destroy(weir_job *job) {
  size_t i;

  if (job == NULL)
    return;
  if (job->state == JOB_RUNNING) {
    weir__job_cancel_all(job);
    weir_job_wait(job);
  }
  weir__plan_free(job);
  for (i = 0; i < job->n_nodes; i++) {
    free(job->nodes[i].name);
    free(job->nodes[i].uid);
    if (job->nodes[i].owned_free != NULL)
      job->nodes[i].owned_free(job->nodes[i].owned_data);
    else
      free(job->nodes[i].owned_data);
  }
  free(job->nodes);
  free(job->edges);
  free(job->ckpt.dir);
  WEIR_ASSERT(pthread_mutex_destroy(&job->mu) == 0);
  weir__metrics_free(job);
  WEIR_ASSERT(pthread_mutex_destroy(&job->metrics_mu) == 0);
  free(job->name);
  free(job);
}
