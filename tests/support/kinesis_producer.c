/*
 * kinesis_producer.c: see kinesis_producer.h.
 */
#include "kinesis_producer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#define WEIR_TEST_PRODUCER_TICK_MS 100

int64_t weir_test_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void weir_test_sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void *weir_test_produce(void *arg) {
  struct weir_test_producer *p = arg;
  /* One producer per process: the buffers are static to keep the thread's stack small. */
  static struct weir_kinesis_put_entry e[WEIR_KINESIS_PUT_MAX_RECORDS];
  static struct weir_kinesis_put_result res[WEIR_KINESIS_PUT_MAX_RECORDS];
  static char data[WEIR_KINESIS_PUT_MAX_RECORDS][80], keys[WEIR_KINESIS_PUT_MAX_RECORDS][24];
  weir_kinesis_client *c = NULL;
  weir_kinesis_config cfg;
  long per_tick = p->rate * WEIR_TEST_PRODUCER_TICK_MS / 1000, next = 0;
  int64_t t = weir_test_now_ms();
  int rc;

  if (per_tick < 1)
    per_tick = 1;
  if (per_tick > WEIR_KINESIS_PUT_MAX_RECORDS)
    per_tick = WEIR_KINESIS_PUT_MAX_RECORDS;
  weir_test_kserver_client_config(&cfg, p->endpoint);
  if ((rc = weir_kinesis_client_create(&c, &cfg)) != 0) {
    atomic_store(&p->rc, rc);
    return NULL;
  }
  while (!atomic_load(&p->stop)) {
    size_t n = 0;

    for (long j = 0; j < per_tick; j++, next++) {
      int dl = p->ts_step > 0 ? snprintf(data[n], sizeof(data[n]),
                                         "{\"k\":\"k%ld\",\"i\":%ld,\"ts\":%" PRId64 "}",
                                         next % p->keys, next, p->ts0 + (int64_t)next * p->ts_step)
                              : snprintf(data[n], sizeof(data[n]), "{\"k\":\"k%ld\",\"i\":%ld}",
                                         next % p->keys, next);
      int kl = snprintf(keys[n], sizeof(keys[n]), "k%ld", next % p->keys);

      e[n].data = (weir_buf){(const uint8_t *)data[n], (size_t)dl};
      e[n].partition_key = (weir_buf){(const uint8_t *)keys[n], (size_t)kl};
      e[n].explicit_hash_key = NULL;
      n++;
    }
    while (n > 0 && !atomic_load(&p->stop)) {
      size_t failed = 0, m = 0;

      if (weir__kinesis_put_records(c, p->stream, e, n, res, &failed) != 0) {
        atomic_fetch_add(&p->put_errors, 1); /* the client's retries are spent: all again */
        weir_test_sleep_ms(200);
        continue;
      }
      for (size_t i = 0; i < n; i++)
        if (!res[i].ok)
          e[m++] = e[i]; /* keep order: the data and key buffers stay where they are */
      atomic_fetch_add(&p->produced, (long)(n - m));
      n = m;
    }
    t += WEIR_TEST_PRODUCER_TICK_MS;
    if (t > weir_test_now_ms())
      weir_test_sleep_ms(t - weir_test_now_ms());
    else
      t = weir_test_now_ms(); /* behind (faults, a slow server): do not burst to catch up */
  }
  weir_kinesis_client_destroy(c);
  return NULL;
}

int weir_test_producer_start(struct weir_test_producer *p) {
  int rc;

  atomic_store(&p->stop, false);
  if ((rc = pthread_create(&p->thread, NULL, weir_test_produce, p)) != 0)
    return rc;
  p->started = true;
  return 0;
}

void weir_test_producer_stop(struct weir_test_producer *p) {
  if (!p->started)
    return;
  atomic_store(&p->stop, true);
  pthread_join(p->thread, NULL);
  p->started = false;
}
