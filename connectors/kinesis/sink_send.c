/*
 * sink_send.c: the Kinesis sink's requests in flight. Each subtask owns max_in_flight slots; a
 * slot is one request buffer and one client (its own connection, signer and response buffer).
 * The subtask thread drives them all as one event loop: submitting a slot writes and signs its
 * PutRecords body and sends what the socket takes; weir__ksink_slots_wait polls the sockets of
 * the slots in flight, in the same poll that waits for buffer space, and steps the ready ones
 * until their answers are complete. No thread handoff per request: the sender threads this
 * replaced cost about five context switches per request, the loop about one
 * (docs/internals/kinesis-sink.md, "Threads").
 *
 * The client of a slot makes one attempt per PutRecords (no retries inside): the subtask
 * thread schedules every retry itself, so a throttled request never holds a slot while it
 * sleeps and a cancel is seen quickly. Opening a connection (DNS, TCP, TLS) blocks the
 * subtask thread; a kept connection does not.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
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

/* Marks the slot's request over with result rc (err from the client when rc != 0). */
static void slot_over(struct kslot *slot, int rc) {
  slot->rc = rc;
  if (rc != 0)
    slot->err = *weir__kinesis_last_error(slot->client);
  slot->state = SLOT_DONE;
}

/* Starts PutRecords of the slot's request, through the fault hook when set: entries the hook
 * fails are not sent (their codes are kept for weir__ksink_slot_results). */
static void put_begin(struct kslot *slot, const char *stream) {
  size_t m = 0;
  int rc;

  slot->sent = slot->n;
  slot->answer = NULL;
  slot->answer_len = 0;
  if (slot->fi_req != NULL) {
    for (size_t i = 0; i < slot->n; i++) {
      const char *code = NULL;

      if (faulty(slot->req[i].partition_key, slot->req[i].data, &code)) {
        slot->fi_code[i] = code != NULL ? code : "ProvisionedThroughputExceededException";
      } else {
        slot->fi_code[i] = NULL;
        slot->fi_req[m++] = slot->req[i];
      }
    }
    slot->sent = m;
    if (m == 0) {
      slot_over(slot, 0);
      return;
    }
  }
  rc = weir__kinesis_put_records_begin(slot->client, stream,
                                       slot->fi_req != NULL ? slot->fi_req : slot->req, slot->sent);
  if (rc != 0)
    slot_over(slot, rc);
  else
    slot->state = SLOT_QUEUED;
}

/* Reads what arrived of the slot's answer; DONE once it is complete (the answer is parsed when
 * the slot is handled, into the subtask's one results array, which stays in cache). */
static void put_step(struct kslot *slot) {
  bool done = false;
  int rc = weir__kinesis_call_step(slot->client, &done, &slot->answer, &slot->answer_len);

  if (done)
    slot_over(slot, rc);
}

int weir__ksink_slot_results(struct ksub *s, struct kslot *slot) {
  struct weir_kinesis_put_outcomes *out = s->out, *fo = s->fi_out;
  size_t j = 0, f = 0;
  int rc;

  slot->out = out;
  if (slot->fi_req == NULL)
    return weir__kinesis_put_records_answer(slot->client, slot->answer, slot->answer_len, out,
                                            slot->n);
  if (slot->sent > 0 && (rc = weir__kinesis_put_records_answer(
                             slot->client, slot->answer, slot->answer_len, fo, slot->sent)) != 0)
    return rc;
  out->failed = 0;
  for (size_t i = 0; i < slot->n; i++) {
    struct weir_kinesis_put_result *r;

    if (slot->fi_code[i] != NULL) {
      out->ok[i] = 0;
      r = &out->fail[out->failed++];
      memset(r, 0, sizeof(*r));
      snprintf(r->error_code, sizeof(r->error_code), "%s", slot->fi_code[i]);
      strcpy(r->error_message, "injected");
      continue;
    }
    if ((out->ok[i] = fo->ok[j]) == 0)
      out->fail[out->failed++] = fo->fail[f++];
    else if (out->shard_ids != NULL)
      memcpy(out->shard_ids[i], fo->shard_ids[j], sizeof(out->shard_ids[i]));
    j++;
  }
  return 0;
}

/* A results block for the slots' answers (and its shard ids with aggregation); NULL. */
static struct weir_kinesis_put_outcomes *outcomes_new(bool ids) {
  struct weir_kinesis_put_outcomes *o = calloc(1, sizeof(*o));

  if (o != NULL && ids &&
      (o->shard_ids = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*o->shard_ids))) ==
          NULL) {
    free(o);
    o = NULL;
  }
  return o;
}

static void outcomes_free(struct weir_kinesis_put_outcomes *o) {
  if (o != NULL)
    free(o->shard_ids);
  free(o);
}

int weir__ksink_slots_start(struct ksub *s) {
  const weir_kinesis_sink_config *cfg = s->cfg;
  struct weir_kinesis_retry once = {0, 50, 1000, 2.0};
  int rc;

  s->n_slots = cfg->max_in_flight;
  if ((s->slots = calloc(s->n_slots, sizeof(*s->slots))) == NULL ||
      (s->out = outcomes_new(cfg->aggregation)) == NULL ||
      ((fault_fn != NULL || fault_code_fn != NULL) &&
       (s->fi_out = outcomes_new(cfg->aggregation)) == NULL))
    return WEIR_ENOMEM;
  for (size_t i = 0; i < s->n_slots; i++) {
    struct kslot *slot = &s->slots[i];

    if ((slot->members = calloc(s->cap_ents, sizeof(*slot->members))) == NULL)
      return WEIR_ENOMEM;
    if (cfg->aggregation && (slot->agg_buf = malloc(cfg->max_request_bytes)) == NULL)
      return WEIR_ENOMEM;
    if ((fault_fn != NULL || fault_code_fn != NULL) &&
        ((slot->fi_req = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*slot->fi_req))) ==
             NULL ||
         (slot->fi_code = calloc(WEIR_KINESIS_SINK_MAX_REQUEST_RECORDS, sizeof(*slot->fi_code))) ==
             NULL))
      return WEIR_ENOMEM;
    if ((rc = weir_kinesis_client_create(&slot->client, &cfg->client)) != 0)
      return rc;
    weir__kinesis_set_retry(slot->client, WEIR_KINESIS_OP_PUT_RECORDS, &once);
    slot->client->quiet = true; /* the sink logs what matters, once */
  }
  return 0;
}

void weir__ksink_slots_stop(struct ksub *s) {
  outcomes_free(s->out);
  outcomes_free(s->fi_out);
  s->out = s->fi_out = NULL;
  if (s->slots == NULL)
    return;
  for (size_t i = 0; i < s->n_slots; i++) {
    struct kslot *slot = &s->slots[i];

    if (slot->client != NULL && slot->state == SLOT_QUEUED)
      weir__kinesis_call_abort(slot->client); /* cancelled or failed: its records stay unacked */
    weir_kinesis_client_destroy(slot->client);
    free(slot->members);
    free(slot->agg_buf);
    free(slot->fi_req);
    free(slot->fi_code);
  }
  free(s->slots);
  s->slots = NULL;
}

struct kslot *weir__ksink_slot_idle(struct ksub *s) {
  if (s->busy >= s->n_slots)
    return NULL;
  for (size_t i = 0; i < s->n_slots; i++)
    if (s->slots[i].state == SLOT_IDLE)
      return &s->slots[i];
  return NULL;
}

void weir__ksink_slot_submit(struct ksub *s, struct kslot *slot) {
  WEIR_ASSERT(slot->state == SLOT_IDLE);
  put_begin(slot, s->streams[slot->stream].name);
}

/* Moves the DONE slots to done[] and back to IDLE. */
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
  struct pollfd pfd[WEIR_KINESIS_SINK_MAX_IN_FLIGHT];
  struct kslot *of[WEIR_KINESIS_SINK_MAX_IN_FLIGHT];

  if (s->busy == 0 && until_ms == 0)
    return 0;
  for (;;) {
    int64_t now, wait = 0;
    size_t k = 0, n;
    int r;

    if ((n = collect(s, done)) > 0)
      return n;
    now = weir__ksink_now_ms();
    if (until_ms > now)
      wait = until_ms - now;
    for (size_t i = 0; i < s->n_slots; i++) {
      struct kslot *slot = &s->slots[i];
      int64_t left;

      if (slot->state != SLOT_QUEUED)
        continue;
      left = weir__kinesis_call_deadline(slot->client) - now;
      if (left < wait)
        wait = left > 0 ? left : 0;
      pfd[k] = (struct pollfd){weir__kinesis_call_socket(slot->client),
                               weir__kinesis_call_events(slot->client), 0};
      of[k++] = slot;
    }
    /* A poll that fails (EINTR) counts as a timeout: the loop looks again. */
    r = k > 0 || wait > 0 ? poll(pfd, k, (int)(wait < INT_MAX ? wait : INT_MAX)) : 0;
    now = weir__ksink_now_ms();
    for (size_t j = 0; j < k; j++)
      if ((r > 0 && pfd[j].revents != 0) || weir__kinesis_call_deadline(of[j]->client) <= now)
        put_step(of[j]);
    if ((n = collect(s, done)) > 0 || until_ms <= now)
      return n;
  }
}
