/*
 * kinesis_producer.h: test support: a paced producer thread writing numbered JSON records to a
 * Kinesis stream through weir's client, for the long-running programs (tests/soak, tests/chaos).
 *
 * Record i is {"k":"k<i mod keys>","i":i} (with ,"ts":<ts0 + i * ts_step> when ts_step > 0),
 * partition key k<i mod keys>. Every 100 ms the thread sends rate / 10 records in one
 * PutRecords and resends the failed entries (and whole failed calls, after 200 ms) until all
 * are taken, in order, so `produced` counts each record once and record i is written before
 * record i + 1 of the same key. A call that fails at the transport level after the server
 * stored the records makes it write them twice: tests that need an exact reference read the
 * stream back.
 *
 * Include the .c file (#include "../support/kinesis_producer.c") with kinesis_server.c: it is not
 * part of the library.
 */
#ifndef WEIR_TEST_KINESIS_PRODUCER_H
#define WEIR_TEST_KINESIS_PRODUCER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "connectors/kinesis/client_int.h"
#include "kinesis_server.h" /* weir_test_kserver_client_config */

struct weir_test_producer {
  /* Set before weir_test_producer_start. */
  const char *endpoint; /* borrowed: a server's or a proxy's */
  const char *stream;   /* borrowed */
  long rate;            /* records per second, >= 1 */
  long keys;            /* >= 1 */
  int64_t ts0, ts_step; /* event time of record i: ts0 + i * ts_step; ts_step 0 = no "ts" */
  /* Read while it runs. */
  atomic_long produced;   /* records acknowledged by the service */
  atomic_long put_errors; /* PutRecords calls that failed after the client's own retries */
  atomic_int rc;          /* 0, or the error that stopped the thread */
  /* Private. */
  atomic_bool stop;
  pthread_t thread;
  bool started;
};

/* Starts the thread. 0, or an errno value. */
int weir_test_producer_start(struct weir_test_producer *p);

/* Stops and joins the thread. Idempotent; a no-op when not started. */
void weir_test_producer_stop(struct weir_test_producer *p);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t weir_test_now_ms(void);

/* Sleeps ms milliseconds (through EINTR). */
void weir_test_sleep_ms(int64_t ms);

#endif /* WEIR_TEST_KINESIS_PRODUCER_H */
