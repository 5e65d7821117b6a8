/*
 * test_kpl_crosscheck.c: KPL aggregation cross-checked with aws-kinesis-agg, the
 * kinesis-aggregation Node library (connectors/kinesis/kpl.c against an independent
 * implementation).
 *
 *  (a) aws-kinesis-agg aggregates a deterministic set of user records; weir's decoder must give
 *      every user record back exactly (partition key, explicit hash key, data, sub-sequence
 *      number) and in order.
 *  (b) weir's aggregator (KPL and Java styles, several size/count bounds) packs the same set;
 *      aws-kinesis-agg's deaggregate() must give every user record back exactly.
 *  (c) partition keys that JavaScript treats as array indices ("0", "42"): aws-kinesis-agg's
 *      aggregator mislabels them (see aws_agg_index_keys_decoders_agree); weir's decoder and
 *      the library's deaggregator must still read the same bytes the same way.
 *
 * The library runs in `node tests/kinesis-servers/kpl_agg.js encode|decode`, spawned with
 * fork/exec and pipes (JSON lines both ways). The tests are skipped with a message when node
 * or the npm packages (`npm ci` in tests/kinesis-servers) are missing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/kinesis_server.c"
#include "connectors/kinesis/kpl_int.h"

#define NODE_TIMEOUT_MS 120000
/* Synthetic sequence numbers of the outer Kinesis records: prefix + 3-digit index. */
#define SEQ_PREFIX "49545115243490985018280067714973144582180062593244200"

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static weir_buf bufn(const void *p, size_t n) {
  weir_buf b = {(const uint8_t *)p, n};
  return b;
}

static weir_buf bufs(const char *s) {
  return bufn(s, strlen(s));
}

static bool mem_eq(const void *a, size_t alen, const void *b, size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* A growable byte string. */
struct sbuf {
  char *p;
  size_t len, cap;
};

static void sb_add(struct sbuf *s, const void *p, size_t n) {
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n + 1)
      cap *= 2;
    s->p = realloc(s->p, cap);
    cr_assert_not_null(s->p);
    s->cap = cap;
  }
  if (n > 0)
    memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static void sb_free(struct sbuf *s) {
  free(s->p);
  s->p = NULL;
  s->len = s->cap = 0;
}

/* Base64 (standard alphabet, padded) through OpenSSL. Result malloc'd, NUL-terminated. */
static char *b64_encode(const uint8_t *p, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1);

  cr_assert_not_null(out);
  if (n == 0) {
    out[0] = '\0';
    return out;
  }
  cr_assert_gt(EVP_EncodeBlock((unsigned char *)out, p, (int)n), 0);
  return out;
}

/* Decodes NUL-terminated base64 into a malloc'd buffer (never NULL) and its length. */
static uint8_t *b64_decode(const char *s, size_t *len) {
  size_t n = strlen(s), pad = 0;
  uint8_t *out = malloc(n / 4 * 3 + 1);
  int r;

  cr_assert_not_null(out);
  *len = 0;
  if (n == 0)
    return out;
  cr_assert_eq(n % 4, 0, "base64 length %zu", n);
  r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
  cr_assert_geq(r, 0, "bad base64");
  if (s[n - 1] == '=')
    pad++;
  if (s[n - 2] == '=')
    pad++;
  *len = (size_t)r - pad;
  return out;
}

/* Independent of kpl.c: MD5 of the partition key, big-endian, as decimal text. */
static void md5_hash_key_dec(const char *pk, char out[WEIR_KPL_HASH_KEY_DEC_MAX + 1]) {
  uint8_t v[16];
  unsigned int mdlen = 0;
  char tmp[WEIR_KPL_HASH_KEY_DEC_MAX + 1];
  size_t n = 0;
  bool zero;

  cr_assert_eq(EVP_Digest(pk, strlen(pk), v, &mdlen, EVP_md5(), NULL), 1);
  cr_assert_eq(mdlen, 16);
  do {
    unsigned rem = 0;
    zero = true;
    for (int i = 0; i < 16; i++) {
      unsigned cur = rem * 256 + v[i];
      v[i] = (uint8_t)(cur / 10);
      rem = cur % 10;
      if (v[i] != 0)
        zero = false;
    }
    tmp[n++] = (char)('0' + rem);
  } while (!zero);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Running kpl_agg.js
 */

static bool node_on_path(void) {
  const char *path = getenv("PATH");
  char buf[PATH_MAX];

  if (path == NULL)
    return false;
  while (*path != '\0') {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    snprintf(buf, sizeof(buf), "%.*s/node", (int)n, n ? path : ".");
    if (access(buf, X_OK) == 0)
      return true;
    path += n;
    if (*path == ':')
      path++;
  }
  return false;
}

static void skip_unless_node_ready(void) {
  const char *dir = weir_test_kserver_dir();
  char probe[PATH_MAX];
  struct stat st;

  if (!node_on_path())
    cr_skip_test("node is not on PATH: the aws-kinesis-agg cross-checks need Node.js");
  snprintf(probe, sizeof(probe), "%s/node_modules/aws-kinesis-agg/package.json", dir);
  if (stat(probe, &st) != 0)
    cr_skip_test("aws-kinesis-agg is not installed: run `npm ci` in %s for the KPL cross-checks",
                 dir);
}

static int64_t now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `node kpl_agg.js <mode>` with `in` on its stdin; returns its stdout (exit status 0). */
static void run_kpl_agg(const char *mode, const struct sbuf *in, struct sbuf *out) {
  const char *dir = weir_test_kserver_dir();
  int in_pipe[2], out_pipe[2], status;
  size_t off = 0;
  int64_t deadline = now_ms() + NODE_TIMEOUT_MS;
  pid_t pid;

  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(pipe(in_pipe), 0);
  cr_assert_eq(pipe(out_pipe), 0);
  pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    close(in_pipe[0]);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(out_pipe[1]);
    if (chdir(dir) != 0)
      _exit(127);
    /* A sanitizer shim preloaded into the tests has no business in node. */
    unsetenv("LD_PRELOAD");
    execlp("node", "node", "kpl_agg.js", mode, (char *)NULL);
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);

  /* Write stdin and read stdout together, so neither side can block the other. */
  for (;;) {
    struct pollfd pfd[2];
    int nfd = 0, left = (int)(deadline - now_ms());
    char chunk[65536];

    if (in_pipe[1] >= 0 && off == in->len) {
      close(in_pipe[1]);
      in_pipe[1] = -1;
    }
    pfd[nfd++] = (struct pollfd){out_pipe[0], POLLIN, 0};
    if (in_pipe[1] >= 0)
      pfd[nfd++] = (struct pollfd){in_pipe[1], POLLOUT, 0};
    if (left <= 0 || poll(pfd, (nfds_t)nfd, left) <= 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      cr_assert_fail("kpl_agg.js %s did not finish within %d ms", mode, NODE_TIMEOUT_MS);
    }
    if (nfd == 2 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in_pipe[1], in->p + off, in->len - off);
      if (w > 0) {
        off += (size_t)w;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        close(in_pipe[1]); /* node went away; its exit status tells why */
        in_pipe[1] = -1;
        off = in->len;
      }
    }
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(out_pipe[0], chunk, sizeof(chunk));
      if (r > 0)
        sb_add(out, chunk, (size_t)r);
      else if (r == 0)
        break;
      else if (errno != EINTR)
        break;
    }
  }
  if (in_pipe[1] >= 0)
    close(in_pipe[1]);
  close(out_pipe[0]);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "kpl_agg.js %s failed (status 0x%x; its stderr is above)", mode, (unsigned)status);
  if (out->p == NULL)
    sb_add(out, "", 0);
}

/* Splits JSON-lines text into parsed objects; *n set. Caller json_decref's each and frees. */
static json_t **parse_lines(const struct sbuf *text, size_t *n) {
  json_t **v = NULL;
  size_t cap = 0;
  char *p = text->p;

  *n = 0;
  while (p != NULL && *p != '\0') {
    char *nl = strchr(p, '\n');
    json_error_t err;
    json_t *j;

    cr_assert_not_null(nl, "unterminated output line");
    *nl = '\0';
    j = json_loads(p, 0, &err);
    cr_assert_not_null(j, "kpl_agg.js printed a line that is not JSON (%s): %.200s", err.text, p);
    cr_assert(json_is_object(j));
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      v = realloc(v, cap * sizeof(*v));
      cr_assert_not_null(v);
    }
    v[(*n)++] = j;
    p = nl + 1;
  }
  return v;
}

static void free_lines(json_t **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    json_decref(v[i]);
  free(v);
}

/* The string member, or NULL when absent or null (anything else fails). */
static const char *jstr_or_null(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);

  if (v == NULL || json_is_null(v))
    return NULL;
  cr_assert(json_is_string(v), "member %s is not a string", key);
  return json_string_value(v);
}

static void append_line(struct sbuf *sb, json_t *obj) {
  char *s = json_dumps(obj, JSON_COMPACT);

  cr_assert_not_null(s);
  sb_add(sb, s, strlen(s));
  sb_add(sb, "\n", 1);
  free(s);
  json_decref(obj);
}

/* ---------------------------------------------------------------------------------------------
 * The user records
 */

struct urec {
  char pk[300];
  bool has_ehk;
  char ehk[WEIR_KPL_HASH_KEY_DEC_MAX + 1];
  uint8_t *data;
  size_t len;
};

#define NREC 640

static uint64_t lcg_state;

static uint32_t lcg(void) {
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(lcg_state >> 33);
}

/* Partition keys reused by many records (UTF-8 included; the 256-character maximum too). */
static const char *const REPEATED_PK[] = {
    "user-\xce\xb1",                              /* user-α */
    "shard-key/\xc3\xbc/\xe2\x82\xac",            /* shard-key/ü/€ */
    "k",                                          /* one byte */
    "\xf0\x9f\x99\x82-emoji",                     /* 🙂-emoji */
    "orders#2024-06 \"quoted\" \\ back\\slash\t", /* JSON escapes */
    "a",                                          /* the KPL's own outer key */
    NULL /* 256-character key, filled in */};
/* Explicit hash keys: both ends of the range and values in between, none an array index. */
static const char *const EHKS[] = {"340282366920938463463374607431768211455", "4294967296",
                                   "170141183460469231731687303715884105728",
                                   "99999999999999999999", "18446744073709551616"};
/* Keys JavaScript treats as array indices (canonical decimal below 2^32-1), plus near misses. */
static const char *const INDEX_PK[] = {"0", "1", "42", "7", "4294967294", "10"};
static const char *const INDEX_EHK[] = {"0", "7", "4294967294", "123456"};

/*
 * Deterministic records. Sizes: 0 (every 10th), 1..64 mostly, some hundreds to 2000 bytes, and
 * four of 300000 bytes so that aws-kinesis-agg (1 MiB per aggregate) needs several aggregates.
 * Data is binary (every byte value) and never starts with the aggregate magic. With
 * `index_keys`, some partition keys and explicit hash keys are array-index strings.
 */
static struct urec *make_records(size_t n, bool index_keys) {
  struct urec *u = calloc(n, sizeof(*u));
  char long_pk[257];

  cr_assert_not_null(u);
  lcg_state = 0x5eed0fc0ffee1234ull;
  for (size_t i = 0; i < 256; i++)
    long_pk[i] = (char)('A' + i % 26);
  long_pk[256] = '\0';
  for (size_t i = 0; i < n; i++) {
    struct urec *r = &u[i];
    uint32_t x = lcg();

    if (index_keys && i % 5 == 2) {
      snprintf(r->pk, sizeof(r->pk), "%s",
               INDEX_PK[(i / 5) % (sizeof(INDEX_PK) / sizeof(*INDEX_PK))]);
    } else if (i % 3 == 0) {
      size_t k = (i / 3) % (sizeof(REPEATED_PK) / sizeof(*REPEATED_PK));
      snprintf(r->pk, sizeof(r->pk), "%s", REPEATED_PK[k] ? REPEATED_PK[k] : long_pk);
    } else {
      snprintf(r->pk, sizeof(r->pk), "pk-%05zu-%08x", i, (unsigned)x);
    }
    if (i % 7 == 3 || i == 1) {
      r->has_ehk = true;
      if (index_keys && i % 2 == 0)
        snprintf(r->ehk, sizeof(r->ehk), "%s",
                 INDEX_EHK[(i / 7) % (sizeof(INDEX_EHK) / sizeof(*INDEX_EHK))]);
      else if (i % 3 == 0)
        snprintf(r->ehk, sizeof(r->ehk), "%s", EHKS[(i / 7) % (sizeof(EHKS) / sizeof(*EHKS))]);
      else /* unique: a 20-digit value */
        snprintf(r->ehk, sizeof(r->ehk), "%u%010u%02u", 1000000000u + (unsigned)(x % 900000000u),
                 (unsigned)(lcg() % 1000000000u), (unsigned)(i % 100));
    }
    if (i % 10 == 0)
      r->len = 0;
    else if (i == 101 || i == 257 || i == 409 || i == 563)
      r->len = 300000;
    else if (x % 8 == 0)
      r->len = 200 + lcg() % 1800;
    else
      r->len = 1 + lcg() % 64;
    r->data = malloc(r->len + 1);
    cr_assert_not_null(r->data);
    for (size_t j = 0; j < r->len; j++)
      r->data[j] = (uint8_t)((j % 256 == (i % 256)) ? j : lcg() >> 7);
    if (r->len >= 4 && memcmp(r->data, WEIR_KPL_MAGIC, 4) == 0)
      r->data[0] ^= 1;
  }
  return u;
}

static void free_records(struct urec *u, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(u[i].data);
  free(u);
}

static void make_seq(size_t outer, char out[64]) {
  cr_assert_lt(outer, 1000);
  snprintf(out, 64, SEQ_PREFIX "%03zu", outer);
}

/* ---------------------------------------------------------------------------------------------
 * (a) aws-kinesis-agg encodes, weir decodes
 */

/* Each of aws-kinesis-agg's Kinesis records, decoded by weir, must give u[*next..] in order. */
static size_t weir_decode_agg_output(json_t **lines, size_t nlines, const struct urec *u, size_t n,
                                     bool check_inputs, size_t *outer_count) {
  struct weir_kpl_decoder *d = NULL;
  size_t next = 0;

  cr_assert_eq(weir__kpl_decoder_new(&d, 0), 0);
  for (size_t j = 0; j < nlines; j++) {
    const char *pk = jstr_or_null(lines[j], "pk"), *b64 = jstr_or_null(lines[j], "data_b64");
    const char *ehk = jstr_or_null(lines[j], "ehk");
    json_t *cnt = json_object_get(lines[j], "count");
    char seq[64];
    size_t dlen, first = next;
    uint8_t *data;
    struct weir_kpl_input in;
    struct weir_kpl_user_record ur;
    enum weir_kpl_kind kind;
    int rc;

    cr_assert_not_null(pk);
    cr_assert_not_null(b64);
    data = b64_decode(b64, &dlen);
    cr_assert_leq(dlen + strlen(pk), WEIR_KPL_KINESIS_RECORD_MAX,
                  "aws-kinesis-agg record %zu: %zu bytes exceed the Kinesis limit", j,
                  dlen + strlen(pk));
    make_seq(j, seq);
    memset(&in, 0, sizeof(in));
    in.data = bufn(data, dlen);
    in.partition_key = bufs(pk);
    in.sequence_number = bufs(seq);
    cr_assert_eq(weir__kpl_decoder_open(d, &in, NULL, &kind), 0, "record %zu", j);
    cr_assert_eq(kind, WEIR_KPL_AGGREGATE, "aws-kinesis-agg record %zu not seen as an aggregate",
                 j);
    if (json_is_integer(cnt))
      cr_assert_eq(weir__kpl_decoder_count(d), (size_t)json_integer_value(cnt),
                   "record %zu: weir sees %zu user records, the library packed %lld", j,
                   weir__kpl_decoder_count(d), (long long)json_integer_value(cnt));
    while ((rc = weir__kpl_decoder_next(d, &ur)) == 0) {
      const struct urec *e;

      cr_assert_lt(next, n, "more user records than were aggregated");
      e = &u[next];
      cr_assert(ur.aggregated);
      cr_assert_eq(ur.sub_sequence_number, next - first);
      cr_assert(mem_eq(ur.sequence_number.ptr, ur.sequence_number.len, seq, strlen(seq)));
      if (check_inputs) {
        cr_assert(mem_eq(ur.partition_key.ptr, ur.partition_key.len, e->pk, strlen(e->pk)),
                  "user record %zu: partition key %.*s != %s", next, (int)ur.partition_key.len,
                  (const char *)ur.partition_key.ptr, e->pk);
        cr_assert_eq(ur.has_explicit_hash_key, e->has_ehk, "user record %zu: EHK presence", next);
        if (e->has_ehk)
          cr_assert(
              mem_eq(ur.explicit_hash_key.ptr, ur.explicit_hash_key.len, e->ehk, strlen(e->ehk)),
              "user record %zu: EHK %.*s != %s", next, (int)ur.explicit_hash_key.len,
              (const char *)ur.explicit_hash_key.ptr, e->ehk);
        cr_assert(mem_eq(ur.data.ptr, ur.data.len, e->data, e->len),
                  "user record %zu: data differs (%zu vs %zu bytes)", next, ur.data.len, e->len);
      }
      next++;
    }
    cr_assert_eq(rc, WEIR_EOF, "record %zu: %s", j, weir_err_name(rc));
    /* The library's outer record: the first user record's partition key (and its EHK). */
    if (check_inputs) {
      cr_assert_str_eq(pk, u[first].pk);
      if (ehk != NULL)
        cr_assert(u[first].has_ehk && strcmp(ehk, u[first].ehk) == 0);
    }
    free(data);
  }
  weir__kpl_decoder_free(d);
  *outer_count = nlines;
  return next;
}

static void encode_input(const struct urec *u, size_t n, struct sbuf *in) {
  for (size_t i = 0; i < n; i++) {
    char *b64 = b64_encode(u[i].data, u[i].len);
    json_t *o = json_pack("{s:s, s:s}", "pk", u[i].pk, "data_b64", b64);

    cr_assert_not_null(o);
    if (u[i].has_ehk)
      json_object_set_new(o, "ehk", json_string(u[i].ehk));
    append_line(in, o);
    free(b64);
  }
}

Test(kpl_crosscheck, aws_agg_encode_weir_decode, .timeout = 240) {
  struct urec *u;
  struct sbuf in = {0}, out = {0};
  json_t **lines;
  size_t nlines, got, outer = 0;

  skip_unless_node_ready();
  u = make_records(NREC, false);
  encode_input(u, NREC, &in);
  run_kpl_agg("encode", &in, &out);
  lines = parse_lines(&out, &nlines);
  cr_assert_gt(nlines, 1, "expected aws-kinesis-agg to need several aggregates, got %zu", nlines);
  got = weir_decode_agg_output(lines, nlines, u, NREC, true, &outer);
  cr_assert_gt(got, 0);
  cr_assert_eq(got, NREC, "weir decoded %zu user records of %d", got, NREC);
  fprintf(stderr,
          "kpl_crosscheck: aws-kinesis-agg -> weir: %zu user records in %zu aggregates compared\n",
          got, outer);
  free_lines(lines, nlines);
  sb_free(&in);
  sb_free(&out);
  free_records(u, NREC);
}

/* ---------------------------------------------------------------------------------------------
 * (b) weir encodes, aws-kinesis-agg decodes
 */

struct outer_rec {
  char seq[64];
  char pk[300];
  size_t first, count;
  bool aggregated;
};

static void weir_encode_aws_decode(enum weir_kpl_agg_style style, size_t max_size,
                                   uint32_t max_count, bool index_keys, size_t *compared,
                                   size_t *outers, size_t *plain, size_t *lib_ehk_bug) {
  struct weir_kpl_agg_config cfg = {max_size, max_count, style};
  struct weir_kpl_aggregator *a = NULL;
  struct weir_kpl_agg_result res;
  struct urec *u = make_records(NREC, index_keys);
  struct outer_rec *o = calloc(NREC, sizeof(*o));
  size_t cap = max_size ? max_size : WEIR_KPL_KINESIS_RECORD_MAX, no = 0, oi = 0, i = 0, k = 0;
  uint8_t *buf = malloc(cap);
  struct sbuf in = {0}, out = {0};
  json_t **lines;
  size_t nlines;
  const char *style_name = style == WEIR_KPL_AGG_STYLE_KPL ? "KPL" : "Java";

  cr_assert_not_null(o);
  cr_assert_not_null(buf);
  cr_assert_eq(weir__kpl_agg_new(&a, &cfg), 0);
  while (i < NREC || weir__kpl_agg_count(a) > 0) {
    int rc = WEIR_EAGAIN;

    if (i < NREC) {
      weir_buf e = bufs(u[i].ehk);
      rc = weir__kpl_agg_add(a, bufs(u[i].pk), u[i].has_ehk ? &e : NULL, bufn(u[i].data, u[i].len));
      cr_assert(rc == 0 || rc == WEIR_EAGAIN, "add %zu: %s", i, weir_err_name(rc));
      if (rc == 0)
        i++;
    }
    if (rc == WEIR_EAGAIN) { /* full, or the end: one outer Kinesis record */
      char *b64;
      json_t *line;

      cr_assert_eq(weir__kpl_agg_finish(a, buf, cap, &res), 0);
      cr_assert_lt(no, NREC);
      make_seq(no, o[no].seq);
      snprintf(o[no].pk, sizeof(o[no].pk), "%.*s", (int)res.partition_key.len,
               (const char *)res.partition_key.ptr);
      o[no].count = res.count;
      o[no].first = no ? o[no - 1].first + o[no - 1].count : 0;
      o[no].aggregated = res.aggregated;
      cr_assert_leq(res.len + res.partition_key.len, cap);
      if (!res.aggregated)
        (*plain)++;
      /* What a GetRecords consumer sees: no ExplicitHashKey. */
      b64 = b64_encode(buf, res.len);
      line = json_pack("{s:s, s:s, s:s}", "pk", o[no].pk, "seq", o[no].seq, "data_b64", b64);
      append_line(&in, line);
      free(b64);
      no++;
      weir__kpl_agg_reset(a);
    }
  }
  cr_assert_eq(o[no - 1].first + o[no - 1].count, NREC);

  run_kpl_agg("decode", &in, &out);
  lines = parse_lines(&out, &nlines);
  for (size_t j = 0; j < nlines; j++) {
    json_t *l = lines[j], *sub = json_object_get(l, "sub"), *agg = json_object_get(l, "aggregated");
    json_t *present = json_object_get(l, "ehk_index_present");
    const char *err = jstr_or_null(l, "error"), *seq = jstr_or_null(l, "seq");
    const char *pk = jstr_or_null(l, "pk"), *ehk = jstr_or_null(l, "ehk");
    const char *b64 = jstr_or_null(l, "data_b64");
    const struct urec *e;
    const struct outer_rec *r;
    uint8_t *data;
    size_t dlen;

    cr_assert_null(err, "%s style: aws-kinesis-agg rejected record %s: %s", style_name,
                   seq ? seq : "?", err);
    cr_assert_lt(k, NREC, "%s style: more user records than were aggregated", style_name);
    e = &u[k];
    while (k >= o[oi].first + o[oi].count) /* advance to the outer record holding k */
      oi++;
    cr_assert_lt(oi, no);
    r = &o[oi];
    cr_assert_not_null(seq);
    cr_assert_str_eq(seq, r->seq, "%s style: user record %zu in the wrong Kinesis record",
                     style_name, k);
    cr_assert(json_is_boolean(agg));
    cr_assert_eq(json_is_true(agg), r->aggregated, "%s style: user record %zu aggregated=%d",
                 style_name, k, json_is_true(agg));
    if (r->aggregated) {
      cr_assert(json_is_integer(sub));
      cr_assert_eq((size_t)json_integer_value(sub), k - r->first,
                   "%s style: user record %zu sub-sequence %lld", style_name, k,
                   (long long)json_integer_value(sub));
    } else {
      cr_assert(sub == NULL || json_is_null(sub));
    }
    cr_assert_not_null(pk);
    cr_assert_str_eq(pk, e->pk, "%s style: user record %zu partition key", style_name, k);
    cr_assert_not_null(b64);
    data = b64_decode(b64, &dlen);
    cr_assert(mem_eq(data, dlen, e->data, e->len), "%s style: user record %zu data (%zu vs %zu)",
              style_name, k, dlen, e->len);
    free(data);

    if (!r->aggregated) {
      /* A lone record went out as plain data; GetRecords carries no hash key. */
      cr_assert_null(ehk);
    } else if (style == WEIR_KPL_AGG_STYLE_JAVA) {
      char want[WEIR_KPL_HASH_KEY_DEC_MAX + 1];

      if (e->has_ehk)
        snprintf(want, sizeof(want), "%s", e->ehk);
      else
        md5_hash_key_dec(e->pk, want);
      cr_assert(json_is_true(present), "Java style: user record %zu has no EHK index", k);
      cr_assert_not_null(ehk);
      cr_assert_str_eq(ehk, want, "Java style: user record %zu EHK", k);
    } else if (e->has_ehk) {
      cr_assert(json_is_true(present), "KPL style: user record %zu lost its EHK index", k);
      cr_assert_not_null(ehk);
      cr_assert_str_eq(ehk, e->ehk, "KPL style: user record %zu EHK", k);
    } else {
      /* The KPL stores no EHK for this record. aws-kinesis-agg's deaggregate() then reports the
       * table's entry 0 (protobufjs' default index) when the table is not empty: tolerate
       * exactly that, i.e. the first EHK given in this aggregate. */
      cr_assert(json_is_false(present), "KPL style: user record %zu got an EHK index", k);
      if (ehk != NULL) {
        const char *first = NULL;

        for (size_t q = r->first; q < r->first + r->count && first == NULL; q++)
          if (u[q].has_ehk)
            first = u[q].ehk;
        cr_assert_not_null(first, "KPL style: user record %zu: EHK %s from an empty table", k, ehk);
        cr_assert_str_eq(ehk, first, "KPL style: user record %zu: EHK %s", k, ehk);
        (*lib_ehk_bug)++;
      }
    }
    k++;
  }
  cr_assert_eq(k, NREC, "%s style: aws-kinesis-agg gave %zu user records of %d", style_name, k,
               NREC);
  *compared += k;
  *outers += no;
  free_lines(lines, nlines);
  sb_free(&in);
  sb_free(&out);
  weir__kpl_agg_free(a);
  free(buf);
  free(o);
  free_records(u, NREC);
}

struct wconf {
  enum weir_kpl_agg_style style;
  size_t max_size;
  uint32_t max_count;
};

/* Default bounds (1 MiB), a bound that puts each 300000-byte record nearly alone, a count bound,
 * and (KPL style) one record per container, which the KPL sends as plain data. */
static const struct wconf WCONFS[] = {{WEIR_KPL_AGG_STYLE_KPL, 0, 0},
                                      {WEIR_KPL_AGG_STYLE_KPL, 320000, 9},
                                      {WEIR_KPL_AGG_STYLE_KPL, 0, 1},
                                      {WEIR_KPL_AGG_STYLE_JAVA, 0, 0},
                                      {WEIR_KPL_AGG_STYLE_JAVA, 320000, 5}};

static void weir_to_aws(bool index_keys) {
  size_t compared = 0, outers = 0, plain = 0, bug = 0;

  skip_unless_node_ready();
  for (size_t c = 0; c < sizeof(WCONFS) / sizeof(*WCONFS); c++)
    weir_encode_aws_decode(WCONFS[c].style, WCONFS[c].max_size, WCONFS[c].max_count, index_keys,
                           &compared, &outers, &plain, &bug);
  cr_assert_gt(compared, 0);
  cr_assert_eq(compared, NREC * (sizeof(WCONFS) / sizeof(*WCONFS)));
  cr_assert_gt(plain, 0, "no configuration produced a plain (single-record) Kinesis record");
  cr_assert_gt(outers, plain, "no configuration produced an aggregate");
  fprintf(stderr,
          "kpl_crosscheck: weir -> aws-kinesis-agg%s: %zu user records in %zu Kinesis records (%zu "
          "plain) "
          "compared over %zu configurations\n",
          index_keys ? " (array-index keys)" : "", compared, outers, plain,
          sizeof(WCONFS) / sizeof(*WCONFS));
  if (bug > 0)
    fprintf(stderr,
            "kpl_crosscheck: note: aws-kinesis-agg deaggregate() reported table entry 0 as the "
            "explicit hash key of "
            "%zu user records that have none (a library bug, tolerated)\n",
            bug);
}

Test(kpl_crosscheck, weir_encode_aws_agg_decode, .timeout = 240) {
  weir_to_aws(false);
}

/* weir's tables are arrays, so keys like "0" or "42" must come back as they went in. */
Test(kpl_crosscheck, weir_encode_aws_agg_decode_index_keys, .timeout = 240) {
  weir_to_aws(true);
}

/* ---------------------------------------------------------------------------------------------
 * (c) keys that are array indices in JavaScript
 */

/*
 * aws-kinesis-agg builds its key tables with Object.keys() of a plain object, which lists
 * array-index keys ("0", "42", ...) first and in numeric order, while the Records keep the
 * insertion-order indices: such partition keys (and explicit hash keys) come out attached to
 * the wrong user records. Whatever the library wrote, weir's decoder and the library's own
 * deaggregator must read the same user records from the same bytes; the records that differ
 * from what was given are counted and reported.
 */
Test(kpl_crosscheck, aws_agg_index_keys_decoders_agree, .timeout = 240) {
  struct urec *u;
  struct sbuf in = {0}, out = {0}, din = {0}, dout = {0};
  json_t **lines, **dlines;
  size_t nlines, ndlines, k = 0, differ = 0;
  struct weir_kpl_decoder *d = NULL;

  skip_unless_node_ready();
  u = make_records(NREC, true);
  for (size_t i = 0; i < NREC; i++)
    u[i].has_ehk = false; /* deaggregate() misreports absent EHKs (see weir_encode_aws_decode) */
  encode_input(u, NREC, &in);
  run_kpl_agg("encode", &in, &out);
  lines = parse_lines(&out, &nlines);
  cr_assert_gt(nlines, 0);
  for (size_t j = 0; j < nlines; j++) {
    char seq[64];

    make_seq(j, seq);
    append_line(&din, json_pack("{s:s, s:s, s:s}", "pk", jstr_or_null(lines[j], "pk"), "seq", seq,
                                "data_b64", jstr_or_null(lines[j], "data_b64")));
  }
  run_kpl_agg("decode", &din, &dout);
  dlines = parse_lines(&dout, &ndlines);
  cr_assert_eq(ndlines, NREC);

  cr_assert_eq(weir__kpl_decoder_new(&d, 0), 0);
  for (size_t j = 0; j < nlines; j++) {
    const char *b64 = jstr_or_null(lines[j], "data_b64");
    char seq[64];
    size_t dlen;
    uint8_t *data = b64_decode(b64, &dlen);
    struct weir_kpl_input kin;
    struct weir_kpl_user_record ur;
    enum weir_kpl_kind kind;
    int rc;

    make_seq(j, seq);
    memset(&kin, 0, sizeof(kin));
    kin.data = bufn(data, dlen);
    kin.partition_key = bufs(jstr_or_null(lines[j], "pk"));
    kin.sequence_number = bufs(seq);
    cr_assert_eq(weir__kpl_decoder_open(d, &kin, NULL, &kind), 0);
    cr_assert_eq(kind, WEIR_KPL_AGGREGATE);
    while ((rc = weir__kpl_decoder_next(d, &ur)) == 0) {
      json_t *l;
      const char *pk, *ehk, *lb64, *lseq;
      uint8_t *ldata;
      size_t llen;

      cr_assert_lt(k, ndlines);
      l = dlines[k];
      cr_assert_null(jstr_or_null(l, "error"));
      pk = jstr_or_null(l, "pk");
      ehk = jstr_or_null(l, "ehk");
      lb64 = jstr_or_null(l, "data_b64");
      lseq = jstr_or_null(l, "seq");
      cr_assert_not_null(pk);
      cr_assert_not_null(lseq);
      cr_assert_str_eq(lseq, seq);
      cr_assert_eq(json_integer_value(json_object_get(l, "sub")),
                   (json_int_t)ur.sub_sequence_number);
      cr_assert(mem_eq(ur.partition_key.ptr, ur.partition_key.len, pk, strlen(pk)),
                "user record %zu: weir %.*s, aws-kinesis-agg %s", k, (int)ur.partition_key.len,
                (const char *)ur.partition_key.ptr, pk);
      cr_assert_eq(ur.has_explicit_hash_key, ehk != NULL);
      ldata = b64_decode(lb64, &llen);
      cr_assert(mem_eq(ur.data.ptr, ur.data.len, ldata, llen));
      cr_assert(mem_eq(ur.data.ptr, ur.data.len, u[k].data, u[k].len), "user record %zu data", k);
      free(ldata);
      if (strcmp(pk, u[k].pk) != 0)
        differ++;
      k++;
    }
    cr_assert_eq(rc, WEIR_EOF);
    free(data);
  }
  cr_assert_gt(k, 0);
  cr_assert_eq(k, NREC);
  fprintf(
      stderr,
      "kpl_crosscheck: aws-kinesis-agg -> weir and aws-kinesis-agg: %zu user records read alike\n",
      k);
  if (differ > 0)
    fprintf(stderr,
            "kpl_crosscheck: note: aws-kinesis-agg's aggregator attached the wrong partition key "
            "to %zu of %zu "
            "user records (array-index keys reordered by Object.keys: a library bug)\n",
            differ, k);
  weir__kpl_decoder_free(d);
  free_lines(lines, nlines);
  free_lines(dlines, ndlines);
  sb_free(&in);
  sb_free(&out);
  sb_free(&din);
  sb_free(&dout);
  free_records(u, NREC);
}
