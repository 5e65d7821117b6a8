/*
 * weir_kinesis.c: weir-kinesis, a small command-line tool for Kinesis Data Streams or a
 * compatible server (kinesalite, kinesis-local): create, delete and describe a stream, put stdin
 * lines as records, and tail a stream from a position (kcat-like). See docs/cli-weir-kinesis.md.
 *
 * It is a thin shell over the library's Kinesis client (connectors/kinesis/client_int.h): no
 * HTTP, signing or credential code of its own. Region, endpoint and credentials are resolved by
 * the library exactly as for a job (options, then AWS_* environment, then the shared files).
 *
 * Exit codes: 0 success, 1 runtime error (service, network, I/O), 2 usage error. Records go to
 * stdout, everything else to stderr. Secrets never pass through this file: the library keeps
 * them inside the client and never logs them, even at debug level (-v).
 *
 * One thread; one client.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "connectors/kinesis/client_int.h"
#include "weir/kinesis.h"
#include "weir/record.h"

/* The name in messages and help: "weir-kinesis", or "weir kinesis" when built into weir. */
#ifndef WEIR_KINESIS_PROG
#define WEIR_KINESIS_PROG "weir-kinesis"
#endif
#define PROG WEIR_KINESIS_PROG

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* PutRecords: at most 5 MiB per request, partition keys included (Kinesis PutRecords API
 * reference; newer streams allow 10 MiB, 5 MiB works everywhere). */
#define PUT_MAX_REQUEST_BYTES (5u << 20)
/* One record: data plus partition key up to 1 MiB (Kinesis PutRecords API reference; kinesalite
 * enforces it on the data). Larger records need a stream with a raised MaxRecordSizeInKiB. */
#define PUT_MAX_RECORD_BYTES (1u << 20)
/* Entries that PutRecords reports as failed are resent this many times, with full jitter. */
#define PUT_ENTRY_RETRIES 10
#define PUT_BACKOFF_BASE_MS 100
#define PUT_BACKOFF_MAX_MS 5000
/* CreateStream --wait: a real stream takes 30-60 s to become ACTIVE. */
#define WAIT_ACTIVE_TIMEOUT_MS 300000
/* CreateStream ShardCount (service-2.json: PositiveIntegerObject, min 1); higher counts need a
 * quota increase on AWS, so this bound only catches typos. */
#define CREATE_MAX_SHARDS 100000
/* GetRecords: 5 calls per second per shard (Kinesis service quota): at most one call per shard
 * every 200 ms. */
#define GET_MIN_INTERVAL_MS 200
/* --follow: an idle shard is polled once a second. */
#define FOLLOW_IDLE_MS 1000
/* ListShards results are read into a list that doubles from this size up to the bound. */
#define SHARD_LIST_INITIAL 256
#define SHARD_LIST_MAX (1u << 17)

/* ---- process state and messages ---------------------------------------------------------- */

struct cli {
  weir_kinesis_config cfg;
  bool verbose;
  const char *cmd; /* the command name, for messages; NULL before it is known */
  weir_kinesis_client *client;
};

/* The library's last error-level log line: shown when making the client fails (credentials,
 * region), where it is the only account of what was wrong. */
static char last_log[1024];

static void log_cb(void *data, weir_log_level level, const char *msg) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  const struct cli *c = data;

  if (c->verbose)
    fprintf(stderr, PROG ": %s: %s\n", names[level], msg);
  if (level == WEIR_LOG_ERROR)
    snprintf(last_log, sizeof(last_log), "%s", msg);
}

static void vmsg(const struct cli *c, const char *fmt, va_list ap) {
  if (c->cmd != NULL)
    fprintf(stderr, PROG " %s: ", c->cmd);
  else
    fputs(PROG ": ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

/* A note on stderr (progress, counts). */
static void note(const struct cli *c, const char *fmt, ...) WEIR_PRINTF(2, 3);
static void note(const struct cli *c, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vmsg(c, fmt, ap);
  va_end(ap);
}

/* A usage error: the message, a pointer to --help, exit code 2. */
static int usage_error(const struct cli *c, const char *fmt, ...) WEIR_PRINTF(2, 3);
static int usage_error(const struct cli *c, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vmsg(c, fmt, ap);
  va_end(ap);
  fprintf(stderr, "Try '" PROG "%s%s --help' for more information.\n", c->cmd ? " " : "",
          c->cmd ? c->cmd : "");
  return EXIT_USAGE;
}

/* A runtime error: the message, exit code 1. */
static int fail(const struct cli *c, const char *fmt, ...) WEIR_PRINTF(2, 3);
static int fail(const struct cli *c, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vmsg(c, fmt, ap);
  va_end(ap);
  return EXIT_RUNTIME;
}

/* A failed client call: what we were doing, then the service's own code and message. */
static int call_failed(const struct cli *c, int rc, const char *what) {
  const struct weir_kinesis_error *e = weir__kinesis_last_error(c->client);
  char detail[96];

  /* "(HTTP 400)", "(HTTP 503, 4 attempts)", "(no response, 4 attempts)" */
  if (e->http_status > 0)
    snprintf(detail, sizeof(detail), "HTTP %ld", e->http_status);
  else
    snprintf(detail, sizeof(detail), "%s", e->attempts > 0 ? "no response" : weir_strerror(rc));
  if (e->attempts > 1)
    snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), ", %d attempts",
             e->attempts);
  return fail(c, "%s: %s%s%s (%s)", what, e->code[0] ? e->code : weir_err_name(rc),
              e->message[0] ? ": " : "", e->message, detail);
}

/* getopt_long reported a problem with argv[optind - 1] (opterr is 0; optstrings start with ':'). */
static int bad_option(const struct cli *c, int opt, char **argv) {
  const char *arg = argv[optind - 1];

  if (opt == ':')
    return usage_error(c, "option '%s' needs a value", arg);
  if (optopt != 0 && strncmp(arg, "--", 2) != 0)
    return usage_error(c, "unknown option '-%c'", optopt);
  return usage_error(c, "unknown option '%s'", arg);
}

/* ---- argument parsing helpers ------------------------------------------------------------- */

/* A whole decimal number in [min, max]. */
static bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  char *end;
  long long v;

  if (s == NULL || *s == '\0')
    return false;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

/* Stream names: 1..128 of [a-zA-Z0-9_.-] (Kinesis API model). */
static bool valid_stream_name(const char *s) {
  size_t n = strlen(s);

  if (n == 0 || n > WEIR_KINESIS_STREAM_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '.' || ch == '-'))
      return false;
  }
  return true;
}

/* Partition keys: 1..256 Unicode characters (Kinesis API model), counted as UTF-8 lead bytes. */
static bool valid_partition_key(const uint8_t *p, size_t len) {
  size_t chars = 0;

  if (len == 0 || len > WEIR_KINESIS_PARTITION_KEY_BYTES_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    chars += (p[i] & 0xc0) != 0x80;
  return chars <= WEIR_KINESIS_PARTITION_KEY_MAX;
}

/* Takes the one positional STREAM argument left after the options. */
static int take_stream(const struct cli *c, int argc, char **argv, const char **stream) {
  if (optind >= argc)
    return usage_error(c, "missing STREAM");
  if (optind + 1 < argc)
    return usage_error(c, "unexpected argument '%s'", argv[optind + 1]);
  if (!valid_stream_name(argv[optind]))
    return usage_error(c,
                       "bad stream name '%s': 1 to %d characters of a-z, A-Z, 0-9, '_', '.', '-'",
                       argv[optind], WEIR_KINESIS_STREAM_NAME_MAX);
  *stream = argv[optind];
  return EXIT_OK;
}

/*
 * A person waiting at a prompt should hear about a refused connection within seconds: the
 * library's control-plane policies (10 to 50 retries of 1-5 s, after Flink) suit long-running
 * jobs. Data-plane calls (PutRecords, GetRecords, GetShardIterator) keep the library's.
 */
static const struct weir_kinesis_retry control_retry = {3, 200, 2000, 2.0};
static const enum weir_kinesis_op control_ops[] = {
    WEIR_KINESIS_OP_LIST_SHARDS, WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY,
    WEIR_KINESIS_OP_CREATE_STREAM, WEIR_KINESIS_OP_DELETE_STREAM};

static int connect_client(struct cli *c) {
  int rc;

  if (c->cfg.ca_file != NULL && access(c->cfg.ca_file, R_OK) != 0)
    return fail(c, "--ca-file '%s': %s", c->cfg.ca_file, strerror(errno));
  last_log[0] = '\0';
  rc = weir_kinesis_client_create(&c->client, &c->cfg);
  if (rc != 0)
    return fail(c, "cannot set up the Kinesis client: %s",
                last_log[0] ? last_log : weir_strerror(rc));
  for (size_t i = 0; i < sizeof(control_ops) / sizeof(control_ops[0]); i++)
    weir__kinesis_set_retry(c->client, control_ops[i], &control_retry);
  return EXIT_OK;
}

static int64_t mono_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Every shard of `stream` into *out (malloc'd, caller frees), growing the list as needed. */
static int list_shards(struct cli *c, const char *stream, struct weir_kinesis_shard_list *out) {
  size_t cap = SHARD_LIST_INITIAL;
  int rc;

  for (;;) {
    out->v = malloc(cap * sizeof(*out->v));
    if (out->v == NULL)
      return fail(c, "out of memory for %zu shards", cap);
    out->len = 0;
    out->cap = cap;
    rc = weir__kinesis_list_all_shards(c->client, stream, NULL, out);
    if (rc == 0)
      return EXIT_OK;
    free(out->v);
    out->v = NULL;
    if (rc != WEIR_ETOOBIG || cap >= SHARD_LIST_MAX) {
      char what[200];
      snprintf(what, sizeof(what), "listing the shards of stream '%s'", stream);
      return call_failed(c, rc, what);
    }
    cap *= 2;
  }
}

/* ---- create / delete ---------------------------------------------------------------------- */

static const char create_help[] =
    "Usage: " PROG " [GLOBAL OPTIONS] create STREAM [--shards N] [--wait]\n"
    "Creates a provisioned stream.\n"
    "  -n, --shards N  number of shards (default 1)\n"
    "  -w, --wait      wait until the stream is ACTIVE (at most 5 minutes)\n"
    "  -h, --help      this help\n";

static int cmd_create(struct cli *c, int argc, char **argv) {
  static const struct option opts[] = {{"shards", required_argument, NULL, 'n'},
                                       {"wait", no_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *stream = NULL;
  int64_t shards = 1;
  bool wait = false;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":n:wh", opts, NULL)) != -1) {
    switch (opt) {
    case 'n':
      if (!parse_i64(optarg, 1, CREATE_MAX_SHARDS, &shards))
        return usage_error(c, "--shards: '%s' is not a number from 1 to %d", optarg,
                           CREATE_MAX_SHARDS);
      break;
    case 'w':
      wait = true;
      break;
    case 'h':
      fputs(create_help, stdout);
      return EXIT_OK;
    default:
      return bad_option(c, opt, argv);
    }
  }
  if ((rc = take_stream(c, argc, argv, &stream)) != EXIT_OK || (rc = connect_client(c)) != EXIT_OK)
    return rc;
  rc = weir__kinesis_create_stream(c->client, stream, (uint32_t)shards);
  if (rc != 0) {
    char what[200];
    snprintf(what, sizeof(what), "creating stream '%s'", stream);
    return call_failed(c, rc, what);
  }
  note(c, "stream '%s' created with %" PRId64 " shard%s", stream, shards, shards == 1 ? "" : "s");
  if (wait) {
    rc = weir__kinesis_wait_active(c->client, stream, WAIT_ACTIVE_TIMEOUT_MS);
    if (rc == WEIR_ETIMEDOUT)
      return fail(c, "stream '%s' was not ACTIVE after %d s", stream,
                  WAIT_ACTIVE_TIMEOUT_MS / 1000);
    if (rc != 0) {
      char what[200];
      snprintf(what, sizeof(what), "waiting for stream '%s' to become ACTIVE", stream);
      return call_failed(c, rc, what);
    }
    note(c, "stream '%s' is ACTIVE", stream);
  }
  return EXIT_OK;
}

static const char delete_help[] = "Usage: " PROG " [GLOBAL OPTIONS] delete STREAM\n"
                                  "Deletes a stream and its records (the service finishes the "
                                  "deletion in the background).\n"
                                  "  -h, --help  this help\n";

static int cmd_delete(struct cli *c, int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  const char *stream = NULL;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (opt != 'h')
      return bad_option(c, opt, argv);
    fputs(delete_help, stdout);
    return EXIT_OK;
  }
  if ((rc = take_stream(c, argc, argv, &stream)) != EXIT_OK || (rc = connect_client(c)) != EXIT_OK)
    return rc;
  if ((rc = weir__kinesis_delete_stream(c->client, stream)) != 0) {
    char what[200];
    snprintf(what, sizeof(what), "deleting stream '%s'", stream);
    return call_failed(c, rc, what);
  }
  note(c, "stream '%s' is being deleted", stream);
  return EXIT_OK;
}

/* ---- describe ----------------------------------------------------------------------------- */

static const char describe_help[] =
    "Usage: " PROG " [GLOBAL OPTIONS] describe STREAM\n"
    "Prints the stream's summary and every shard (open and closed) with its hash key range,\n"
    "sequence number range and parents.\n"
    "  -h, --help  this help\n";

static const char *status_name(enum weir_kinesis_stream_status s) {
  switch (s) {
  case WEIR_KINESIS_STATUS_CREATING:
    return "CREATING";
  case WEIR_KINESIS_STATUS_DELETING:
    return "DELETING";
  case WEIR_KINESIS_STATUS_ACTIVE:
    return "ACTIVE";
  case WEIR_KINESIS_STATUS_UPDATING:
    return "UPDATING";
  default:
    return "UNKNOWN";
  }
}

/* Epoch milliseconds as UTC ISO 8601 ("2024-05-01T12:00:00.123Z"). */
static void format_ms(int64_t ms, char *out, size_t cap) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  char buf[32];

  if (gmtime_r(&secs, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
    snprintf(out, cap, "%" PRId64 " ms", ms);
    return;
  }
  snprintf(out, cap, "%s.%03dZ", buf, (int)(ms % 1000));
}

static int cmd_describe(struct cli *c, int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  struct weir_kinesis_stream_summary sum;
  struct weir_kinesis_shard_list l = {NULL, 0, 0};
  const char *stream = NULL;
  char created[64];
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (opt != 'h')
      return bad_option(c, opt, argv);
    fputs(describe_help, stdout);
    return EXIT_OK;
  }
  if ((rc = take_stream(c, argc, argv, &stream)) != EXIT_OK || (rc = connect_client(c)) != EXIT_OK)
    return rc;
  if ((rc = weir__kinesis_describe_stream_summary(c->client, stream, &sum)) != 0) {
    char what[200];
    snprintf(what, sizeof(what), "describing stream '%s'", stream);
    return call_failed(c, rc, what);
  }
  if ((rc = list_shards(c, stream, &l)) != EXIT_OK)
    return rc;
  format_ms(sum.creation_ms, created, sizeof(created));
  printf("stream:       %s\n", sum.stream_name);
  printf("arn:          %s\n", sum.stream_arn);
  printf("status:       %s\n", status_name(sum.status));
  printf("mode:         %s\n", sum.on_demand ? "ON_DEMAND" : "PROVISIONED");
  printf("retention:    %" PRId64 " h\n", sum.retention_hours);
  printf("created:      %s\n", created);
  printf("open shards:  %" PRId64 "\n", sum.open_shard_count);
  if (sum.consumer_count >= 0)
    printf("consumers:    %" PRId64 "\n", sum.consumer_count);
  if (sum.max_record_size_kib > 0)
    printf("max record:   %" PRId64 " KiB\n", sum.max_record_size_kib);
  printf("encryption:   %s\n", sum.encrypted ? "KMS" : "NONE");
  printf("shards:       %zu\n", l.len);
  for (size_t i = 0; i < l.len; i++) {
    const struct weir_kinesis_shard *s = &l.v[i];
    printf("  %s %s\n    hash keys   %s..%s\n    sequence    %s..%s\n", s->shard_id,
           s->ending_seq[0] ? "CLOSED" : "OPEN", s->hash_range.start, s->hash_range.end,
           s->starting_seq, s->ending_seq[0] ? s->ending_seq : "(open)");
    if (s->parent_shard_id[0] != '\0')
      printf("    parents     %s%s%s\n", s->parent_shard_id,
             s->adjacent_parent_shard_id[0] ? " " : "", s->adjacent_parent_shard_id);
  }
  free(l.v);
  if (fflush(stdout) != 0 || ferror(stdout))
    return fail(c, "writing to stdout: %s", strerror(errno));
  return EXIT_OK;
}

/* ---- put ---------------------------------------------------------------------------------- */

static const char put_help[] =
    "Usage: " PROG " [GLOBAL OPTIONS] put STREAM [--key K | --key-from-tab]\n"
    "Puts one record per stdin line (the newline is not part of the record; empty lines are\n"
    "empty records). Records are sent with PutRecords in batches of up to 500 records or 5 MiB;\n"
    "entries the service rejects (throttling, internal failure) are resent, up to 10 times.\n"
    "Counts are reported on stderr.\n"
    "  -k, --key K           partition key of every record\n"
    "  -t, --key-from-tab    'KEY<TAB>DATA' lines: the text before the first tab is the key,\n"
    "                        the rest the data; lines without a tab get the line number as key\n"
    "                        (default: the line number is the key of every record)\n"
    "  -h, --help            this help\n";

struct putter {
  struct cli *cli;
  const char *stream;
  uint8_t *arena; /* data and keys of the batch, PUT_MAX_REQUEST_BYTES */
  size_t arena_len;
  struct weir_kinesis_put_entry *entries; /* WEIR_KINESIS_PUT_MAX_RECORDS */
  struct weir_kinesis_put_result *results;
  size_t n;
  uint64_t rng;
  /* Totals for the report. */
  uint64_t records, bytes, calls, resent;
};

/* Sends the batch; resends failed entries until none is left or the retries are spent. */
static int put_flush(struct putter *p) {
  struct weir_kinesis_retry backoff = {PUT_ENTRY_RETRIES, PUT_BACKOFF_BASE_MS, PUT_BACKOFF_MAX_MS,
                                       2.0};
  size_t failed = 0;
  int rc;

  for (int attempt = 0; p->n > 0; attempt++) {
    size_t kept = 0;
    rc =
        weir__kinesis_put_records(p->cli->client, p->stream, p->entries, p->n, p->results, &failed);
    p->calls++;
    if (rc != 0) {
      char what[200];
      snprintf(what, sizeof(what),
               "putting %zu records to stream '%s' (%" PRIu64 " put before this call)", p->n,
               p->stream, p->records);
      return call_failed(p->cli, rc, what);
    }
    p->records += p->n - failed;
    for (size_t i = 0; i < p->n; i++) {
      if (p->results[i].ok)
        p->bytes += p->entries[i].data.len;
      else
        p->entries[kept++] = p->entries[i];
    }
    if (kept == 0)
      break;
    if (attempt >= PUT_ENTRY_RETRIES) {
      const struct weir_kinesis_put_result *r = NULL;
      for (size_t i = 0; i < p->n && r == NULL; i++)
        if (!p->results[i].ok)
          r = &p->results[i];
      return fail(p->cli,
                  "%zu records to stream '%s' still failed after %d retries (%" PRIu64
                  " put): %s: %s",
                  kept, p->stream, PUT_ENTRY_RETRIES, p->records, r->error_code, r->error_message);
    }
    p->resent += kept;
    p->n = kept;
    sleep_ms(weir__kinesis_backoff_ms(&backoff, attempt, &p->rng));
  }
  p->n = 0;
  p->arena_len = 0;
  return EXIT_OK;
}

/* Adds one record (copies key and data into the batch), sending the batch first when full. */
static int put_add(struct putter *p, const uint8_t *key, size_t key_len, const uint8_t *data,
                   size_t len) {
  int rc;

  if (p->n == WEIR_KINESIS_PUT_MAX_RECORDS ||
      p->arena_len + key_len + len > PUT_MAX_REQUEST_BYTES) {
    if ((rc = put_flush(p)) != EXIT_OK)
      return rc;
  }
  memcpy(p->arena + p->arena_len, key, key_len);
  if (len > 0)
    memcpy(p->arena + p->arena_len + key_len, data, len);
  p->entries[p->n].partition_key = (weir_buf){p->arena + p->arena_len, key_len};
  p->entries[p->n].data = (weir_buf){p->arena + p->arena_len + key_len, len};
  p->entries[p->n].explicit_hash_key = NULL;
  p->arena_len += key_len + len;
  p->n++;
  return EXIT_OK;
}

/* Reads one line without its '\n' into buf (cap bytes). Returns its length, -1 at end of
 * input, -2 when the line is longer than cap (the rest is not read). */
static long read_line(FILE *f, uint8_t *buf, size_t cap) {
  size_t len = 0;
  int ch;

  while ((ch = getc_unlocked(f)) != EOF) {
    if (ch == '\n')
      return (long)len;
    if (len == cap)
      return -2;
    buf[len++] = (uint8_t)ch;
  }
  return len > 0 ? (long)len : -1;
}

static int cmd_put(struct cli *c, int argc, char **argv) {
  static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                       {"key-from-tab", no_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  struct putter p;
  const char *stream = NULL, *fixed_key = NULL;
  bool from_tab = false;
  uint8_t *line = NULL;
  uint64_t lineno = 0;
  int opt, rc;

  while ((opt = getopt_long(argc, argv, ":k:th", opts, NULL)) != -1) {
    switch (opt) {
    case 'k':
      fixed_key = optarg;
      if (!valid_partition_key((const uint8_t *)optarg, strlen(optarg)))
        return usage_error(c, "--key: a partition key has 1 to %d characters",
                           WEIR_KINESIS_PARTITION_KEY_MAX);
      break;
    case 't':
      from_tab = true;
      break;
    case 'h':
      fputs(put_help, stdout);
      return EXIT_OK;
    default:
      return bad_option(c, opt, argv);
    }
  }
  if (fixed_key != NULL && from_tab)
    return usage_error(c, "--key and --key-from-tab cannot be used together");
  if ((rc = take_stream(c, argc, argv, &stream)) != EXIT_OK || (rc = connect_client(c)) != EXIT_OK)
    return rc;

  memset(&p, 0, sizeof(p));
  p.cli = c;
  p.stream = stream;
  p.rng = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull | 1;
  p.arena = malloc(PUT_MAX_REQUEST_BYTES);
  p.entries = calloc(WEIR_KINESIS_PUT_MAX_RECORDS, sizeof(*p.entries));
  p.results = calloc(WEIR_KINESIS_PUT_MAX_RECORDS, sizeof(*p.results));
  line = malloc(PUT_MAX_RECORD_BYTES + 1);
  if (p.arena == NULL || p.entries == NULL || p.results == NULL || line == NULL) {
    rc = fail(c, "out of memory");
    goto done;
  }

  for (;;) {
    const uint8_t *key, *data;
    size_t key_len, len;
    char counter[24];
    long n = read_line(stdin, line, PUT_MAX_RECORD_BYTES + 1);

    if (n == -1)
      break;
    lineno++;
    if (n == -2) {
      rc = fail(c,
                "stdin line %" PRIu64 ": longer than %u bytes, the Kinesis record limit (%" PRIu64
                " records put)",
                lineno, PUT_MAX_RECORD_BYTES, p.records);
      goto done;
    }
    data = line;
    len = (size_t)n;
    snprintf(counter, sizeof(counter), "%" PRIu64, lineno);
    key = (const uint8_t *)counter;
    key_len = strlen(counter);
    if (fixed_key != NULL) {
      key = (const uint8_t *)fixed_key;
      key_len = strlen(fixed_key);
    } else if (from_tab) {
      const uint8_t *tab = memchr(line, '\t', len);
      if (tab != NULL) {
        key = line;
        key_len = (size_t)(tab - line);
        data = tab + 1;
        len -= key_len + 1;
        if (!valid_partition_key(key, key_len)) {
          rc = fail(c,
                    "stdin line %" PRIu64 ": the key before the tab must have 1 to %d characters "
                    "(%" PRIu64 " records put)",
                    lineno, WEIR_KINESIS_PARTITION_KEY_MAX, p.records);
          goto done;
        }
      }
    }
    if (key_len + len > PUT_MAX_RECORD_BYTES) {
      rc = fail(c,
                "stdin line %" PRIu64 ": key and data exceed %u bytes, the Kinesis record limit "
                "(%" PRIu64 " records put)",
                lineno, PUT_MAX_RECORD_BYTES, p.records);
      goto done;
    }
    if ((rc = put_add(&p, key, key_len, data, len)) != EXIT_OK)
      goto done;
  }
  if (ferror(stdin)) {
    rc = fail(c, "reading stdin after line %" PRIu64 ": %s (%" PRIu64 " records put)", lineno,
              strerror(errno), p.records);
    goto done;
  }
  if ((rc = put_flush(&p)) != EXIT_OK)
    goto done;
  note(c,
       "%" PRIu64 " record%s (%" PRIu64 " bytes) put to stream '%s' in %" PRIu64
       " PutRecords call%s; %" PRIu64 " entries resent",
       p.records, p.records == 1 ? "" : "s", p.bytes, stream, p.calls, p.calls == 1 ? "" : "s",
       p.resent);
  rc = EXIT_OK;

done:
  free(line);
  free(p.arena);
  free(p.entries);
  free(p.results);
  return rc;
}

/* ---- tail --------------------------------------------------------------------------------- */

static const char tail_help[] =
    "Usage: " PROG " [GLOBAL OPTIONS] tail STREAM [--from POS] [--follow] [--max N]\n"
    "                                [--format raw|json]\n"
    "Reads every shard of the stream (a child shard after its parents) and prints its records.\n"
    "Without --follow it stops once every shard is caught up.\n"
    "  -f, --from POS     where to start: trim-horizon (default), latest, at-timestamp:MS\n"
    "                     (epoch milliseconds), or at-sequence:SHARD:SEQ (that shard only)\n"
    "  -F, --follow       keep reading new records until interrupted (or --max)\n"
    "  -m, --max N        stop after N records\n"
    "  -o, --format FMT   raw: the record's data and a newline (default);\n"
    "                     json: {\"shard\",\"seq\",\"pk\",\"ts\",\"data_b64\"} per line\n"
    "  -h, --help         this help\n";

enum shard_state { SHARD_WAITING = 0, SHARD_READING, SHARD_DONE };

struct tshard {
  struct weir_kinesis_shard s;
  enum shard_state state;
  bool caught_up;
  int64_t due_ms; /* monotonic time of the next allowed GetRecords */
  char it[WEIR_KINESIS_ITERATOR_MAX + 1];
  char last_seq[WEIR_KINESIS_SEQ_MAX + 1]; /* "" before the first record */
};

struct tailer {
  struct cli *cli;
  const char *stream;
  struct weir_kinesis_iterator_req from; /* type, timestamp, sequence; stream/shard per use */
  const char *only_shard;                /* at-sequence: the one shard read */
  bool follow, json;
  uint64_t max, printed;
  struct tshard *v;
  size_t len, cap;
  struct weir_kinesis_records recs;
  char *b64; /* json: base64 of one record, WEIR_KINESIS_RECORD_MAX encoded */
};

static struct tshard *find_tshard(struct tailer *t, const char *id) {
  for (size_t i = 0; i < t->len; i++)
    if (strcmp(t->v[i].s.shard_id, id) == 0)
      return &t->v[i];
  return NULL;
}

/* Lists the shards and adds those not seen before (all of them on the first call). */
static int tail_refresh_shards(struct tailer *t) {
  struct weir_kinesis_shard_list l;
  int rc;

  if ((rc = list_shards(t->cli, t->stream, &l)) != EXIT_OK)
    return rc;
  for (size_t i = 0; i < l.len; i++) {
    struct tshard *ts;
    if (find_tshard(t, l.v[i].shard_id) != NULL)
      continue;
    if (t->len == t->cap) {
      size_t cap = t->cap ? t->cap * 2 : l.len;
      struct tshard *v = realloc(t->v, cap * sizeof(*v));
      if (v == NULL) {
        free(l.v);
        return fail(t->cli, "out of memory for %zu shards", cap);
      }
      t->v = v;
      t->cap = cap;
    }
    ts = &t->v[t->len++];
    memset(ts, 0, sizeof(*ts));
    ts->s = l.v[i];
    /* LATEST on a closed shard would never yield anything. */
    if (t->only_shard != NULL ? strcmp(ts->s.shard_id, t->only_shard) != 0
                              : t->from.type == WEIR_KINESIS_ITER_LATEST && ts->s.ending_seq[0])
      ts->state = SHARD_DONE;
  }
  free(l.v);
  return EXIT_OK;
}

/* A shard is read once its parents are read to their end (or no longer listed: expired). */
static bool parents_done(struct tailer *t, const struct tshard *ts) {
  const char *parents[2] = {ts->s.parent_shard_id, ts->s.adjacent_parent_shard_id};

  if (t->only_shard != NULL)
    return true;
  for (int i = 0; i < 2; i++) {
    const struct tshard *p = parents[i][0] ? find_tshard(t, parents[i]) : NULL;
    if (p != NULL && p->state != SHARD_DONE)
      return false;
  }
  return true;
}

/* Gets an iterator for ts: after its last record when there is one, else at --from. */
static int tail_iterator(struct tailer *t, struct tshard *ts) {
  struct weir_kinesis_iterator_req req = t->from;
  int rc;

  req.stream = t->stream;
  req.shard_id = ts->s.shard_id;
  if (ts->last_seq[0] != '\0') {
    req.type = WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER;
    req.sequence_number = ts->last_seq;
  }
  if ((rc = weir__kinesis_get_shard_iterator(t->cli->client, &req, ts->it)) != 0) {
    char what[300];
    snprintf(what, sizeof(what), "getting an iterator for shard %s of stream '%s'", ts->s.shard_id,
             t->stream);
    return call_failed(t->cli, rc, what);
  }
  ts->state = SHARD_READING;
  return EXIT_OK;
}

static int print_record(struct tailer *t, const struct tshard *ts,
                        const struct weir_kinesis_record *r) {
  if (!t->json) {
    fwrite(r->data.ptr, 1, r->data.len, stdout);
    putchar('\n');
  } else {
    json_t *o = json_object();
    json_t *pk = json_stringn((const char *)r->partition_key.ptr, r->partition_key.len);
    size_t n = weir__b64_encoded_len(r->data.len);
    weir__b64_encode(r->data.ptr, r->data.len, t->b64);
    /* Partition keys are Unicode on the service; null if a server sent something else. */
    json_object_set_new(o, "shard", json_string(ts->s.shard_id));
    json_object_set_new(o, "seq", json_string(r->sequence_number));
    json_object_set_new(o, "pk", pk != NULL ? pk : json_null());
    json_object_set_new(
        o, "ts", r->arrival_ms == WEIR_NO_TIMESTAMP ? json_null() : json_integer(r->arrival_ms));
    json_object_set_new(o, "data_b64", json_stringn(t->b64, n));
    if (json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0) {
      json_decref(o);
      return fail(t->cli, "writing a JSON record to stdout failed");
    }
    json_decref(o);
    putchar('\n');
  }
  return EXIT_OK;
}

/* One GetRecords on ts; prints what it returns. */
static int tail_read(struct tailer *t, struct tshard *ts, bool *got_records) {
  int rc = weir__kinesis_get_records(t->cli->client, ts->it, 0, &t->recs);

  if (rc != 0 &&
      strcmp(weir__kinesis_last_error(t->cli->client)->code, "ExpiredIteratorException") == 0) {
    /* Iterators expire after 5 minutes: get a fresh one after the last record printed. */
    if ((rc = tail_iterator(t, ts)) != EXIT_OK)
      return rc;
    rc = weir__kinesis_get_records(t->cli->client, ts->it, 0, &t->recs);
  }
  if (rc != 0) {
    char what[300];
    snprintf(what, sizeof(what), "reading shard %s of stream '%s'", ts->s.shard_id, t->stream);
    return call_failed(t->cli, rc, what);
  }
  *got_records = t->recs.n > 0;
  for (size_t i = 0; i < t->recs.n && t->printed < t->max; i++) {
    const struct weir_kinesis_record *r = &t->recs.recs[i];
    if ((rc = print_record(t, ts, r)) != EXIT_OK)
      return rc;
    snprintf(ts->last_seq, sizeof(ts->last_seq), "%s", r->sequence_number);
    t->printed++;
  }
  if (fflush(stdout) != 0 || ferror(stdout))
    return fail(t->cli, "writing to stdout: %s", strerror(errno));
  if (!t->recs.has_next) {
    ts->state = SHARD_DONE;
  } else {
    snprintf(ts->it, sizeof(ts->it), "%s", t->recs.next_iterator);
    /* Caught up: nothing returned and nothing behind (kinesalite always says 0 behind). A
     * closed shard is read until it has no next iterator: its children wait for that. */
    ts->caught_up =
        t->recs.n == 0 && t->recs.millis_behind_latest <= 0 && ts->s.ending_seq[0] == '\0';
  }
  return EXIT_OK;
}

static int tail_loop(struct tailer *t) {
  int rc;

  while (t->printed < t->max) {
    bool pending = false, reshard = false;
    int64_t now = mono_ms(), next_due = INT64_MAX;

    for (size_t i = 0; i < t->len && t->printed < t->max; i++) {
      struct tshard *ts = &t->v[i];
      bool got = false;
      if (ts->state == SHARD_WAITING && parents_done(t, ts) &&
          (rc = tail_iterator(t, ts)) != EXIT_OK)
        return rc;
      if (ts->state == SHARD_WAITING)
        pending = true;
      if (ts->state != SHARD_READING || (!t->follow && ts->caught_up))
        continue;
      pending = true;
      if (ts->due_ms > now) {
        next_due = ts->due_ms < next_due ? ts->due_ms : next_due;
        continue;
      }
      if ((rc = tail_read(t, ts, &got)) != EXIT_OK)
        return rc;
      now = mono_ms();
      ts->due_ms = now + (t->follow && !got ? FOLLOW_IDLE_MS : GET_MIN_INTERVAL_MS);
      if (ts->state == SHARD_DONE)
        reshard = true;
      next_due = ts->due_ms < next_due ? ts->due_ms : next_due;
    }
    /* A shard read to its end was split or merged: its children may be new. */
    if (reshard && t->follow && t->only_shard == NULL && (rc = tail_refresh_shards(t)) != EXIT_OK)
      return rc;
    if (!pending && !reshard)
      break;
    if (t->follow && !pending)
      next_due = mono_ms() + FOLLOW_IDLE_MS; /* every shard closed: wait for new ones */
    now = mono_ms();
    if (next_due != INT64_MAX && next_due > now)
      sleep_ms(next_due - now);
  }
  return EXIT_OK;
}

/* Parses --from: trim-horizon, latest, at-timestamp:MS, at-sequence:SHARD:SEQ. */
static int parse_from(struct tailer *t, char *arg) {
  int64_t ms;

  if (strcmp(arg, "trim-horizon") == 0) {
    t->from.type = WEIR_KINESIS_ITER_TRIM_HORIZON;
  } else if (strcmp(arg, "latest") == 0) {
    t->from.type = WEIR_KINESIS_ITER_LATEST;
  } else if (strncmp(arg, "at-timestamp:", 13) == 0) {
    if (!parse_i64(arg + 13, 0, INT64_MAX / 2, &ms))
      return usage_error(t->cli, "--from '%s': at-timestamp needs epoch milliseconds", arg);
    t->from.type = WEIR_KINESIS_ITER_AT_TIMESTAMP;
    t->from.timestamp_ms = ms;
  } else if (strncmp(arg, "at-sequence:", 12) == 0) {
    char *shard = arg + 12, *seq = strrchr(shard, ':');
    size_t digits;
    if (seq == NULL || seq == shard || seq[1] == '\0')
      return usage_error(t->cli, "--from '%s': use at-sequence:SHARD:SEQ", arg);
    digits = strspn(seq + 1, "0123456789");
    if (seq[1 + digits] != '\0' || digits > WEIR_KINESIS_SEQ_MAX)
      return usage_error(t->cli, "--from '%s': the sequence number must be decimal digits", arg);
    *seq = '\0';
    t->only_shard = shard;
    t->from.type = WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER;
    t->from.sequence_number = seq + 1;
  } else {
    return usage_error(t->cli,
                       "--from '%s': use trim-horizon, latest, at-timestamp:MS or "
                       "at-sequence:SHARD:SEQ",
                       arg);
  }
  return EXIT_OK;
}

static int cmd_tail(struct cli *c, int argc, char **argv) {
  static const struct option opts[] = {
      {"from", required_argument, NULL, 'f'}, {"follow", no_argument, NULL, 'F'},
      {"max", required_argument, NULL, 'm'},  {"format", required_argument, NULL, 'o'},
      {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
  struct tailer t;
  int64_t max;
  int opt, rc;

  memset(&t, 0, sizeof(t));
  t.cli = c;
  t.max = UINT64_MAX;
  t.from.type = WEIR_KINESIS_ITER_TRIM_HORIZON;
  while ((opt = getopt_long(argc, argv, ":f:Fm:o:h", opts, NULL)) != -1) {
    switch (opt) {
    case 'f':
      if ((rc = parse_from(&t, optarg)) != EXIT_OK)
        return rc;
      break;
    case 'F':
      t.follow = true;
      break;
    case 'm':
      if (!parse_i64(optarg, 1, INT64_MAX, &max))
        return usage_error(c, "--max: '%s' is not a positive number", optarg);
      t.max = (uint64_t)max;
      break;
    case 'o':
      if (strcmp(optarg, "raw") != 0 && strcmp(optarg, "json") != 0)
        return usage_error(c, "--format: '%s' is neither raw nor json", optarg);
      t.json = strcmp(optarg, "json") == 0;
      break;
    case 'h':
      fputs(tail_help, stdout);
      return EXIT_OK;
    default:
      return bad_option(c, opt, argv);
    }
  }
  if ((rc = take_stream(c, argc, argv, &t.stream)) != EXIT_OK ||
      (rc = connect_client(c)) != EXIT_OK)
    return rc;
  weir__kinesis_records_init(&t.recs);
  if (t.json && (t.b64 = malloc(weir__b64_encoded_len(WEIR_KINESIS_RECORD_MAX))) == NULL) {
    rc = fail(c, "out of memory");
    goto done;
  }
  if ((rc = tail_refresh_shards(&t)) != EXIT_OK)
    goto done;
  if (t.only_shard != NULL && find_tshard(&t, t.only_shard) == NULL) {
    rc = fail(c, "--from: stream '%s' has no shard '%s'", t.stream, t.only_shard);
    goto done;
  }
  rc = tail_loop(&t);

done:
  weir__kinesis_records_free(&t.recs);
  free(t.v);
  free(t.b64);
  return rc;
}

/* ---- main --------------------------------------------------------------------------------- */

static const char main_help[] =
    "Usage: " PROG " [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "A small tool for Amazon Kinesis Data Streams and compatible servers.\n"
    "\n"
    "Commands:\n"
    "  create STREAM [--shards N] [--wait]     create a stream\n"
    "  delete STREAM                           delete a stream\n"
    "  describe STREAM                         summary and shards\n"
    "  put STREAM [--key K | --key-from-tab]   one record per stdin line\n"
    "  tail STREAM [--from POS] [--follow] [--max N] [--format raw|json]\n"
    "                                          print records\n"
    "Run '" PROG " COMMAND --help' for a command's options.\n"
    "\n"
    "Global options (unset ones come from AWS_REGION, AWS_ENDPOINT_URL_KINESIS, AWS_PROFILE,\n"
    "the AWS_* credential variables and ~/.aws, as with the AWS CLI):\n"
    "  --endpoint URL     e.g. http://127.0.0.1:4567\n"
    "  --region R         e.g. eu-west-1\n"
    "  --profile P        shared-file profile (skips the credential environment variables)\n"
    "  --ca-file F        PEM file of CAs to trust instead of the system's\n"
    "  --timeout-ms N     timeout of each request (default 30000)\n"
    "  -v, --verbose      show the library's log (never secrets)\n"
    "  -h, --help         this help\n"
    "  --version          print the version\n"
    "\n"
    "Exit codes: 0 success, 1 runtime error, 2 usage error.\n";

int weir__cli_kinesis_main(int argc, char **argv) {
  enum { OPT_ENDPOINT = 256, OPT_REGION, OPT_PROFILE, OPT_CA_FILE, OPT_TIMEOUT, OPT_VERSION };
  static const struct option opts[] = {{"endpoint", required_argument, NULL, OPT_ENDPOINT},
                                       {"region", required_argument, NULL, OPT_REGION},
                                       {"profile", required_argument, NULL, OPT_PROFILE},
                                       {"ca-file", required_argument, NULL, OPT_CA_FILE},
                                       {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, OPT_VERSION},
                                       {NULL, 0, NULL, 0}};
  static const struct {
    const char *name;
    int (*fn)(struct cli *, int, char **);
  } cmds[] = {{"create", cmd_create},
              {"delete", cmd_delete},
              {"describe", cmd_describe},
              {"put", cmd_put},
              {"tail", cmd_tail}};
  struct cli c;
  int64_t timeout;
  int opt, rc;

  memset(&c, 0, sizeof(c));
  opterr = 0;
  /* '+': stop at the command; its options are parsed by the command. */
  while ((opt = getopt_long(argc, argv, "+:vh", opts, NULL)) != -1) {
    switch (opt) {
    case OPT_ENDPOINT:
      c.cfg.endpoint = optarg;
      break;
    case OPT_REGION:
      c.cfg.region = optarg;
      break;
    case OPT_PROFILE:
      c.cfg.profile = optarg;
      break;
    case OPT_CA_FILE:
      c.cfg.ca_file = optarg;
      break;
    case OPT_TIMEOUT:
      if (!parse_i64(optarg, 1, 24 * 3600 * 1000, &timeout))
        return usage_error(&c, "--timeout-ms: '%s' is not a number of milliseconds from 1 to %d",
                           optarg, 24 * 3600 * 1000);
      c.cfg.request_timeout_ms = timeout;
      c.cfg.connect_timeout_ms = timeout < 10000 ? timeout : 10000;
      break;
    case 'v':
      c.verbose = true;
      break;
    case 'h':
      fputs(main_help, stdout);
      return EXIT_OK;
    case OPT_VERSION:
      puts(PROG " " WEIR_VERSION_STRING);
      return EXIT_OK;
    default:
      return bad_option(&c, opt, argv);
    }
  }
  if (optind >= argc)
    return usage_error(&c, "missing COMMAND (create, delete, describe, put or tail)");
  weir_log_set_handler(log_cb, &c, c.verbose ? WEIR_LOG_DEBUG : WEIR_LOG_ERROR);
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    if (strcmp(argv[optind], cmds[i].name) != 0)
      continue;
    c.cmd = cmds[i].name;
    argc -= optind;
    argv += optind;
    optind = 0; /* glibc: 0 restarts getopt from scratch on the command's arguments */
    rc = cmds[i].fn(&c, argc, argv);
    weir_kinesis_client_destroy(c.client);
    return rc;
  }
  return usage_error(&c, "unknown command '%s' (create, delete, describe, put or tail)",
                     argv[optind]);
}
