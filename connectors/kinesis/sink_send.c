/*
 * sink_send.c: the Kinesis sink's sender threads. Each subtask owns max_in_flight slots; a slot
 * is one request buffer, one client (its own connection, signer and response buffer) and one
 * thread that sends the slot's request when the subtask thread queues it and hands the result
 * back. Threads rather than curl multi because signing, base64 and JSON work per request then
 * run in parallel, and the client's blocking call stays the one code path for every operation.
 *
 * Signalling: one mutex per subtask (ksub.mu) guards each slot's state and stop flag; a slot's
 * `work` condition wakes its sender, the subtask's `done` condition wakes the subtask thread.
 * No other lock is taken while mu is held. The request and result arrays need no lock: the
 * state change under mu orders the writes of one side before the reads of the other.
 *
 * The client of a slot makes one attempt per PutRecords (no retries inside): the subtask
 * thread schedules every retry itself, so a throttled request never holds a slot while it
 * sleeps and a cancel is seen quickly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/log_int.h"
#include "connectors/kinesis/sink_int.h"

/* Test hooks (sink_int.h): written before jobs start, read by sender threads. */
static weir__ksink_fault_fn fault_fn;
static weir__ksink_fault_code_fn fault_code_fn;
static void *fault_data;

void weir__kinesis_sink_set_fault(weir__ksink_fault_fn fn, void *data) {
  fault_fn = fn;
  fault_code_fn = NULL;
  fault_data = data;
}

void weir__kinesis_sink_set_fault_code(weir__ksink_fault_code_fn fn, void *data) {
  fault_code_fn = fn;
  fault_fn = NULL;
  fault_data = data;
}

static bool faulty(weir_buf key, weir_buf value, const char **code) {
  *code = NULL;
  if (fault_code_fn != NULL)
    return fault_code_fn(fault_data, key, value, code);
  return fault_fn != NULL && fault_fn(fault_data, key, value);
}

/* PutRecords of the slot's request into its results, through the fault hook when set. */
static int put(struct kslot *slot, const char *stream) {
  size_t m = 0, sent_failed = 0;
  int rc;

  if (slot->fi_req == NULL)
    return weir__kinesis_put_records(slot->client, stream, slot->req, slot->n, slot->res,
                                     &slot->failed);
  slot->failed = 0;
  for (size_t i = 0; i < slot->n; i++) {
    const char *code;

    if (faulty(slot->req[i].partition_key, slot->req[i].data, &code)) {
      memset(&slot->res[i], 0, sizeof(slot->res[i]));
      snprintf(slot->res[i].error_code, sizeof(slot->res[i].error_code), "%s",
               code != NULL ? code : "ProvisionedThroughputExceededException");
      strcpy(slot->res[i].error_message, "injected");
      slot->failed++;
    } else {
      slot->fi_req[m] = slot->req[i];
      slot->fi_map[m++] = i;
    }
  }
  if (m == 0)
    return 0;
  if ((rc = weir__kinesis_put_records(slot->client, stream, slot->fi_req, m, slot->fi_res,
                                      &sent_failed)) != 0)
    return rc;
  for (size_t j = 0; j < m; j++)
    slot->res[slot->fi_map[j]] = slot->fi_res[j];
  slot->failed += sent_failed;
  return 0;
}

static void *sender_main(void *arg) {
  struct kslot *slot = arg;
  struct ksub *s = slot->sub;

  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  for (;;) {
    while (!slot->stop && slot->state != SLOT_QUEUED)
      WEIR_ASSERT(pthread_cond_wait(&slot->work, &s->mu) == 0);
    if (slot->stop)
      break;
    WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
    slot->rc = put(slot, s->streams[slot->stream].name);
    if (slot->rc != 0)
      slot->err = *weir__kinesis_last_error(slot->client);
    WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
    slot->state = SLOT_DONE;
    WEIR_ASSERT(pthread_cond_signal(&s->done) == 0);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  return NULL;
}

int weir__ksink_senders_start(struct ksub *s) {
  const weir_kinesis_sink_config *cfg = s->cfg;
  struct weir_kinesis_retry once = {0, 50, 1000, 2.0};
  pthread_condattr_t ca;
  int rc;

  WEIR_ASSERT(pthread_condattr_init(&ca) == 0);
  WEIR_ASSERT(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0);
  WEIR_ASSERT(pthread_mutex_init(&s->mu, NULL) == 0);
  WEIR_ASSERT(pthread_cond_init(&s->done, &ca) == 0);
  WEIR_ASSERT(pthread_condattr_destroy(&ca) == 0);
  s->mu_init = true;
  s->n_slots = cfg->max_in_flight;
  if ((s->slots = calloc(s->n_slots, sizeof(*s->slots))) == NULL)
    return WEIR_ENOMEM;
  for (size_t i = 0; i < s->n_slots; i++) {
    s->slots[i].sub = s;
    s->slots[i].index = (int)i;
    WEIR_ASSERT(pthread_cond_init(&s->slots[i].work, NULL) == 0);
  }
  for (size_t i = 0; i < s->n_slots; i++) {
    struct kslot *slot = &s->slots[i];

    if ((slot->members = calloc(s->cap_ents, sizeof(*slot->members))) == NULL)
      return WEIR_ENOMEM;
    if (cfg->aggregation && (slot->agg_buf = malloc(cfg->max_request_bytes)) == NULL)
      return WEIR_ENOMEM;
    if ((fault_fn != NULL || fault_code_fn != NULL) &&
        ((slot->fi_req = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*slot->fi_req))) ==
             NULL ||
         (slot->fi_res = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*slot->fi_res))) ==
             NULL ||
         (slot->fi_map = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*slot->fi_map))) ==
             NULL))
      return WEIR_ENOMEM;
    if ((rc = weir_kinesis_client_create(&slot->client, &cfg->client)) != 0)
      return rc;
    weir__kinesis_set_retry(slot->client, WEIR_KINESIS_OP_PUT_RECORDS, &once);
    slot->client->quiet = true; /* the sink logs what matters, once */
    if ((rc = pthread_create(&slot->thread, NULL, sender_main, slot)) != 0) {
      WEIR_LOG_ERR("kinesis sink: cannot start a sender thread: %s", strerror(rc));
      return WEIR_ESYS;
    }
    slot->started = true;
  }
  return 0;
}

void weir__ksink_senders_stop(struct ksub *s) {
  if (s->slots == NULL)
    return;
  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  for (size_t i = 0; i < s->n_slots; i++) {
    s->slots[i].stop = true;
    if (s->slots[i].started)
      WEIR_ASSERT(pthread_cond_signal(&s->slots[i].work) == 0);
  }
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  for (size_t i = 0; i < s->n_slots; i++) {
    struct kslot *slot = &s->slots[i];

    if (slot->started)
      WEIR_ASSERT(pthread_join(slot->thread, NULL) == 0);
    WEIR_ASSERT(pthread_cond_destroy(&slot->work) == 0);
    weir_kinesis_client_destroy(slot->client);
    free(slot->members);
    free(slot->agg_buf);
    free(slot->fi_req);
    free(slot->fi_res);
    free(slot->fi_map);
  }
  free(s->slots);
  s->slots = NULL;
}

struct kslot *weir__ksink_slot_idle(struct ksub *s) {
  /* Only the subtask thread moves a slot out of IDLE, and busy counts the others: when busy <
   * n_slots some slot is IDLE, and reading its state under mu is exact. */
  struct kslot *found = NULL;

  if (s->busy >= s->n_slots)
    return NULL;
  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  for (size_t i = 0; i < s->n_slots && found == NULL; i++)
    if (s->slots[i].state == SLOT_IDLE)
      found = &s->slots[i];
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  return found;
}

void weir__ksink_slot_submit(struct ksub *s, struct kslot *slot) {
  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  WEIR_ASSERT(slot->state == SLOT_IDLE);
  slot->state = SLOT_QUEUED;
  WEIR_ASSERT(pthread_cond_signal(&slot->work) == 0);
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
}

/* Moves the DONE slots to done[] and back to IDLE; mu held. */
static size_t collect(struct ksub *s, struct kslot **done) {
  size_t n = 0;

  for (size_t i = 0; i < s->n_slots; i++)
    if (s->slots[i].state == SLOT_DONE) {
      s->slots[i].state = SLOT_IDLE;
      done[n++] = &s->slots[i];
    }
  return n;
}

size_t weir__ksink_slots_wait(struct ksub *s, int64_t until_ms, struct kslot **done) {
  size_t n;

  if (s->busy == 0 && until_ms == 0)
    return 0;
  WEIR_ASSERT(pthread_mutex_lock(&s->mu) == 0);
  while ((n = collect(s, done)) == 0 && until_ms > 0) {
    struct timespec ts = {(time_t)(until_ms / 1000), (long)(until_ms % 1000) * 1000000L};
    int rc = pthread_cond_timedwait(&s->done, &s->mu, &ts);

    WEIR_ASSERT(rc == 0 || rc == ETIMEDOUT);
    if (rc == ETIMEDOUT) {
      n = collect(s, done);
      break;
    }
  }
  WEIR_ASSERT(pthread_mutex_unlock(&s->mu) == 0);
  return n;
}
