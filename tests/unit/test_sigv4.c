/*
 * test_sigv4.c: SigV4 against every case folder of the AWS test suites in
 * $WEIR_SHARED_DIR/testdata/sigv4 (see README.md and MANIFEST.tsv there), plus the published
 * worked examples, plus unit tests of the signer's bounds and errors.
 *
 * The data is read at test time, never copied here. Each case's request is parsed, each step
 * the case supports is computed and compared byte for byte. Steps the README/MANIFEST mark as
 * defective for a case are skipped one by one (see `notes` below, each with its reason).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "connectors/aws/credentials_int.h"
#include "connectors/aws/sigv4_int.h"

/* The suites' fixed parameters (testdata/sigv4/README.md, "Fixed parameters"). */
#define T_AKID "AKIDEXAMPLE"
#define T_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_REGION "us-east-1"
#define T_SERVICE "service"
#define T_DATE "20150830T123600Z"

/* Case folders per suite, as listed in MANIFEST.tsv (checked against it at run time). */
#define N_CLASSIC 31
#define N_ERRATA 3
#define N_V4 38
#define N_PUBLISHED 2
#define N_MANIFEST_ROWS 112 /* 31 + 3 + 2 + 38 x (header, query) */

enum {
  STEP_CREQ = 1 << 0,
  STEP_STS = 1 << 1,
  STEP_AUTHZ = 1 << 2,
  STEP_SREQ = 1 << 3,
  STEP_ALL = STEP_CREQ | STEP_STS | STEP_AUTHZ | STEP_SREQ
};

/*
 * Steps skipped because the test data says they are wrong for that case. Nothing else is
 * skipped. The `manifest` test checks that every case whose MANIFEST row says
 * sha256(creq) != sts ("NO") is listed here with its .sts step skipped.
 */
static const struct note {
  const char *case_dir;
  unsigned skip;
  const char *why;
} notes[] = {
    {"aws-sig-v4-test-suite/post-x-www-form-urlencoded", STEP_STS | STEP_AUTHZ | STEP_SREQ,
     "README 1 / MANIFEST: UPSTREAM INCONSISTENCY, .sts/.authz/.sreq computed without "
     "content-length; test .req->.creq only"},
    {"aws-sig-v4-test-suite/post-x-www-form-urlencoded-parameters",
     STEP_STS | STEP_AUTHZ | STEP_SREQ,
     "README 1 / MANIFEST: UPSTREAM INCONSISTENCY, .sts/.authz/.sreq computed from a different "
     "request (charset=utf8, no content-length); test .req->.creq only"},
    {"aws-sig-v4-test-suite/get-header-value-multiline", STEP_ALL,
     "README 1 / MANIFEST: the original expectation joins folded lines with ','; AWS SDKs join "
     "them with a space, checked by aws-c-auth-errata/ and aws-signing-test-suite/v4/ "
     "get-header-value-multiline"},
    {"aws-c-auth-errata/get-vanilla-with-session-token", STEP_SREQ,
     "README 2 / MANIFEST: the .sreq Signature= value is bogus; .authz is checked instead"},
};

struct counts {
  int cases;
  int checked; /* steps compared */
  int skipped; /* steps skipped by a note */
};

/* ---------------------------------------------------------------------------------------- */
/* Files and folders                                                                          */

/* snprintf for paths: a truncated path is a test bug, so it fails the test. */
static void pathf(char *out, size_t cap, const char *fmt, ...) WEIR_PRINTF(3, 4);
static void pathf(char *out, size_t cap, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(out, cap, fmt, ap);
  va_end(ap);
  cr_assert(n >= 0 && (size_t)n < cap, "path too long: %s", out);
}

static bool testdata_dir(char *out, size_t cap) {
  const char *shared = getenv("WEIR_SHARED_DIR");
  char here[PATH_MAX];
  struct stat st;

  if (shared != NULL && shared[0] != '\0') {
    pathf(out, cap, "%s/testdata/sigv4", shared);
  } else {
    /* ../shared beside the repository: this file is <repo>/tests/unit/test_sigv4.c. */
    snprintf(here, sizeof(here), "%s", __FILE__);
    pathf(out, cap, "%s/../../../shared/testdata/sigv4", dirname(here));
  }
  return stat(out, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;

  if (f == NULL)
    return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t)n + 1)) != NULL) {
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
      free(buf);
      buf = NULL;
    } else {
      buf[n] = '\0';
      if (len != NULL)
        *len = (size_t)n;
    }
  }
  fclose(f);
  return buf;
}

static bool has_file_with_suffix(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  struct dirent *e;
  bool found = false;
  size_t sl = strlen(suffix);

  if (d == NULL)
    return false;
  while (!found && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    found = n >= sl && strcmp(e->d_name + n - sl, suffix) == 0;
  }
  closedir(d);
  return found;
}

struct dirlist {
  char **v;
  size_t n;
};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every folder under root (recursively) holding a case: a *.creq file or a context.json. */
static void find_cases(const char *root, const char *rel, struct dirlist *out) {
  char path[PATH_MAX];
  DIR *d;
  struct dirent *e;

  pathf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
  if (rel[0] != '\0' &&
      (has_file_with_suffix(path, ".creq") || has_file_with_suffix(path, "context.json"))) {
    out->v = realloc(out->v, (out->n + 1) * sizeof(char *));
    out->v[out->n++] = strdup(rel);
  }
  if ((d = opendir(path)) == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    char sub[PATH_MAX], full[PATH_MAX + 256];
    struct stat st;
    if (e->d_name[0] == '.')
      continue;
    pathf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    pathf(full, sizeof(full), "%s/%s", root, sub);
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode))
      find_cases(root, sub, out);
  }
  closedir(d);
  qsort(out->v, out->n, sizeof(char *), cmp_str);
}

static void dirlist_free(struct dirlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static unsigned skipped_steps(const char *case_dir, const char **why) {
  for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
    if (strcmp(notes[i].case_dir, case_dir) == 0) {
      *why = notes[i].why;
      return notes[i].skip;
    }
  }
  *why = NULL;
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Request files: "METHOD target HTTP/1.1", "Name:value" lines (an indented line continues  */
/* the previous one), then an empty line and the body, if any.                               */

#define MAX_REQ_HEADERS 32

struct parsed {
  char *text;  /* the file */
  char *arena; /* folded header values */
  weir_buf request_line, method, target, path, query, version;
  weir_buf raw_headers; /* the header lines as in the file, without the final newline */
  struct weir_sigv4_header hdrs[MAX_REQ_HEADERS];
  size_t n_hdrs;
  bool has_body;
  weir_buf body;
};

static weir_buf span(const char *p, size_t n) {
  weir_buf b = {(const uint8_t *)p, n};
  return b;
}

static bool parse_request(const char *path, struct parsed *r) {
  size_t len, pos, used = 0;
  char *nl, *sp1, *sp2;

  memset(r, 0, sizeof(*r));
  if ((r->text = read_all(path, &len)) == NULL)
    return false;
  r->arena = malloc(2 * len + 1);
  nl = memchr(r->text, '\n', len);
  r->request_line = span(r->text, nl != NULL ? (size_t)(nl - r->text) : len);
  sp1 = memchr(r->text, ' ', r->request_line.len);
  sp2 = NULL;
  for (char *c = r->text + r->request_line.len; c > r->text; c--)
    if (c[-1] == ' ') {
      sp2 = c - 1;
      break;
    }
  if (sp1 == NULL || sp2 == NULL || sp2 <= sp1)
    return false;
  r->method = span(r->text, (size_t)(sp1 - r->text));
  r->target = span(sp1 + 1, (size_t)(sp2 - sp1 - 1));
  r->version = span(sp2 + 1, r->request_line.len - (size_t)(sp2 + 1 - r->text));
  {
    const char *q = memchr(r->target.ptr, '?', r->target.len);
    r->path = span((const char *)r->target.ptr,
                   q != NULL ? (size_t)(q - (const char *)r->target.ptr) : r->target.len);
    r->query = q != NULL ? span(q + 1, r->target.len - r->path.len - 1) : span("", 0);
  }
  pos = nl != NULL ? (size_t)(nl - r->text) + 1 : len;
  r->raw_headers = span(r->text + pos, 0);
  while (pos < len) {
    char *eol = memchr(r->text + pos, '\n', len - pos);
    size_t ll = eol != NULL ? (size_t)(eol - (r->text + pos)) : len - pos;
    const char *line = r->text + pos;
    if (ll == 0) {
      /* A blank line: the body follows (the suites' files have no trailing newline after it). */
      r->has_body = true;
      r->body = span(r->text + pos + 1, len - pos - 1);
      break;
    }
    if ((line[0] == ' ' || line[0] == '\t') && r->n_hdrs > 0) {
      /* obs-fold: the line break becomes a space (RFC 7230 3.2.4); the signer collapses runs. */
      struct weir_sigv4_header *h = &r->hdrs[r->n_hdrs - 1];
      char *v = r->arena + used;
      memcpy(v, h->value.ptr, h->value.len);
      v[h->value.len] = ' ';
      memcpy(v + h->value.len + 1, line, ll);
      h->value = span(v, h->value.len + 1 + ll);
      used += h->value.len;
    } else {
      const char *colon = memchr(line, ':', ll);
      if (colon == NULL || r->n_hdrs == MAX_REQ_HEADERS)
        return false;
      r->hdrs[r->n_hdrs].name = span(line, (size_t)(colon - line));
      r->hdrs[r->n_hdrs].value = span(colon + 1, ll - (size_t)(colon - line) - 1);
      r->n_hdrs++;
    }
    r->raw_headers.len = (size_t)(line + ll - (const char *)r->raw_headers.ptr);
    pos += ll + 1;
  }
  return true;
}

static void parsed_free(struct parsed *r) {
  free(r->text);
  free(r->arena);
}

static bool has_header(const struct parsed *r, const char *name) {
  for (size_t i = 0; i < r->n_hdrs; i++)
    if (r->hdrs[i].name.len == strlen(name) &&
        strncasecmp((const char *)r->hdrs[i].name.ptr, name, strlen(name)) == 0)
      return true;
  return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Growing string for expected signed requests                                                */

struct sb {
  char *p;
  size_t len;
};

static void sb_put(struct sb *b, const void *p, size_t n) {
  b->p = realloc(b->p, b->len + n + 1);
  if (n > 0)
    memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s) {
  sb_put(b, s, strlen(s));
}

static void sb_buf(struct sb *b, weir_buf v) {
  sb_put(b, v.ptr, v.len);
}

/* ---------------------------------------------------------------------------------------- */
/* Comparison                                                                                 */

static void compare(struct counts *c, const char *case_dir, const char *step, const char *dir,
                    const char *file, const char *got, size_t got_len) {
  char path[PATH_MAX + 256];
  size_t exp_len = 0;
  char *exp;

  pathf(path, sizeof(path), "%s/%s", dir, file);
  exp = read_all(path, &exp_len);
  cr_expect_not_null(exp, "%s: missing %s", case_dir, file);
  if (exp == NULL)
    return;
  c->checked++;
  cr_expect(exp_len == got_len && memcmp(exp, got, got_len) == 0,
            "%s: %s differs from %s\n--- expected (%zu bytes):\n%s\n--- got (%zu bytes):\n%.*s",
            case_dir, step, file, exp_len, exp, got_len, (int)got_len, got);
  free(exp);
}

static struct weir_sigv4_signer *make_signer(const char *akid, const char *secret,
                                             const char *token, const char *region,
                                             const char *service, unsigned flags) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *creds = NULL;
  struct weir_sigv4_signer *s = NULL;
  struct weir_sigv4_config cfg;
  char err[WEIR_AWS_ERR_MAX];

  o.access_key_id = akid;
  o.secret_access_key = secret;
  o.session_token = token;
  cr_assert_eq(weir__aws_credentials_from_static(&o, &creds, err, sizeof(err)), 0, "%s", err);
  cfg.creds = creds;
  cfg.region = region;
  cfg.service = service;
  cfg.flags = flags;
  cr_assert_eq(weir__sigv4_signer_create(&cfg, &s), 0);
  weir__aws_credentials_free(creds); /* the signer copied what it needs */
  return s;
}

static struct weir_sigv4_request make_request(const struct parsed *r, const char *amz_date) {
  struct weir_sigv4_request q;
  memset(&q, 0, sizeof(q));
  q.method = r->method;
  q.path = r->path;
  q.query = r->query;
  q.headers = r->hdrs;
  q.n_headers = r->n_hdrs;
  q.payload = r->body;
  q.amz_date = amz_date;
  return q;
}

/* The session token for a classic-layout case that needs one: the suites' README gives it in
 * prose; the v4 suite's context.json for the same request (same case name) holds it as data. */
static char *token_for(const char *root, const char *name, bool *omit) {
  char path[PATH_MAX + 256];
  json_t *j, *t;
  char *tok = NULL;

  *omit = false;
  pathf(path, sizeof(path), "%s/aws-signing-test-suite/v4/%s/context.json", root, name);
  if ((j = json_load_file(path, 0, NULL)) == NULL)
    return NULL;
  if ((t = json_object_get(json_object_get(j, "credentials"), "token")) != NULL &&
      json_is_string(t))
    tok = strdup(json_string_value(t));
  *omit = json_is_true(json_object_get(j, "omit_session_token"));
  json_decref(j);
  return tok;
}

/* ---------------------------------------------------------------------------------------- */
/* Classic layout: NAME.req, .creq, .sts, .authz, .sreq                                       */

static void run_classic_case(const char *root, const char *case_dir, const char *service,
                             struct counts *c) {
  char dir[PATH_MAX], path[PATH_MAX + 256], name[256];
  char creq[8192], sts[1024], authz[WEIR_SIGV4_AUTHZ_MAX];
  size_t creq_len, sts_len, authz_len;
  const char *why;
  unsigned skip = skipped_steps(case_dir, &why);
  struct weir_sigv4_signer *s;
  struct weir_sigv4_request q;
  struct parsed r;
  bool omit = false, needs_token;
  char *token;
  weir_buf tok;

  pathf(dir, sizeof(dir), "%s/%s", root, case_dir);
  pathf(path, sizeof(path), "%s", case_dir);
  pathf(name, sizeof(name), "%s", basename(path));
  pathf(path, sizeof(path), "%s/%s.req", dir, name);
  cr_assert(parse_request(path, &r), "%s: cannot parse %s", case_dir, path);
  c->cases++;
  for (int i = 0; i < 4; i++)
    if (skip & (1u << i))
      c->skipped++;
  if (skip != 0)
    cr_log_info("%s: skipping steps 0x%x: %s", case_dir, skip, why);

  needs_token = strstr(name, "sts-header") != NULL || strstr(name, "session-token") != NULL;
  token = needs_token ? token_for(root, name, &omit) : NULL;
  if (needs_token && token == NULL) {
    cr_log_warn("%s: no session token (needs aws-signing-test-suite/v4/%s/context.json); "
                "skipped",
                case_dir, name);
    c->skipped += 4;
    parsed_free(&r);
    return;
  }
  s = make_signer(T_AKID, T_SECRET, token, T_REGION, service,
                  omit ? WEIR_SIGV4_OMIT_SESSION_TOKEN : 0);
  q = make_request(&r, T_DATE);

  if (!(skip & STEP_CREQ)) {
    cr_expect_eq(weir__sigv4_canonical_request(s, &q, creq, sizeof(creq), &creq_len), 0, "%s",
                 case_dir);
    pathf(path, sizeof(path), "%s.creq", name);
    compare(c, case_dir, "canonical request", dir, path, creq, creq_len);
  }
  if (!(skip & STEP_STS)) {
    cr_expect_eq(weir__sigv4_string_to_sign(s, &q, sts, sizeof(sts), &sts_len), 0, "%s", case_dir);
    pathf(path, sizeof(path), "%s.sts", name);
    compare(c, case_dir, "string to sign", dir, path, sts, sts_len);
  }
  if ((skip & (STEP_AUTHZ | STEP_SREQ)) != (STEP_AUTHZ | STEP_SREQ))
    cr_expect_eq(weir__sigv4_sign(s, &q, authz, sizeof(authz), &authz_len), 0, "%s", case_dir);
  if (!(skip & STEP_AUTHZ)) {
    pathf(path, sizeof(path), "%s.authz", name);
    compare(c, case_dir, "Authorization", dir, path, authz, authz_len);
  }
  if (!(skip & STEP_SREQ)) {
    /* The request as sent: its own lines, the token header the client adds when the signer
     * holds one the request lacks, then "Authorization: " (classic spelling, with a space). */
    struct sb b = {0};
    sb_buf(&b, r.request_line);
    sb_puts(&b, "\n");
    sb_buf(&b, r.raw_headers);
    tok = weir__sigv4_session_token(s);
    if (tok.len > 0 && !has_header(&r, "x-amz-security-token")) {
      sb_puts(&b, "\nX-Amz-Security-Token:");
      sb_buf(&b, tok);
    }
    sb_puts(&b, "\nAuthorization: ");
    sb_put(&b, authz, authz_len);
    if (r.has_body) {
      sb_puts(&b, "\n\n");
      sb_buf(&b, r.body);
    }
    pathf(path, sizeof(path), "%s.sreq", name);
    compare(c, case_dir, "signed request", dir, path, b.p, b.len);
    free(b.p);
  }
  weir__sigv4_signer_destroy(s);
  free(token);
  parsed_free(&r);
}

static int run_classic_suite(const char *root, const char *suite, struct counts *c) {
  char base[PATH_MAX];
  struct dirlist l = {0};
  size_t n;

  pathf(base, sizeof(base), "%s/%s", root, suite);
  find_cases(base, "", &l);
  for (size_t i = 0; i < l.n; i++) {
    char case_dir[PATH_MAX + 256];
    pathf(case_dir, sizeof(case_dir), "%s/%s", suite, l.v[i]);
    run_classic_case(root, case_dir, T_SERVICE, c);
  }
  n = l.n;
  dirlist_free(&l);
  return (int)n;
}

/* ---------------------------------------------------------------------------------------- */
/* Newer layout: context.json, request.txt, header-* and query-* files                         */

static void run_v4_case(const char *root, const char *case_dir, struct counts *c) {
  char dir[PATH_MAX], amz_date[WEIR_SIGV4_DATE_LEN + 1];
  char buf[16384], sig_out[WEIR_SIGV4_AUTHZ_MAX];
  char presigned[8192];
  size_t len, sig_len, pre_len;
  json_t *ctx, *creds;
  json_error_t jerr;
  struct parsed r;
  struct weir_sigv4_signer *s;
  struct weir_sigv4_request q;
  unsigned flags = 0;
  const char *token;
  struct tm tm;
  char path[PATH_MAX + 256];
  const char *sig;

  pathf(dir, sizeof(dir), "%s/%s", root, case_dir);
  pathf(path, sizeof(path), "%s/context.json", dir);
  ctx = json_load_file(path, 0, &jerr);
  cr_assert_not_null(ctx, "%s: context.json: %s", case_dir, jerr.text);
  pathf(path, sizeof(path), "%s/request.txt", dir);
  cr_assert(parse_request(path, &r), "%s: cannot parse request.txt", case_dir);
  c->cases++;

  creds = json_object_get(ctx, "credentials");
  token = json_string_value(json_object_get(creds, "token"));
  if (json_is_false(json_object_get(ctx, "normalize")))
    flags |= WEIR_SIGV4_NO_NORMALIZE_PATH;
  if (json_is_true(json_object_get(ctx, "sign_body")))
    flags |= WEIR_SIGV4_SIGN_BODY;
  if (json_is_true(json_object_get(ctx, "omit_session_token")))
    flags |= WEIR_SIGV4_OMIT_SESSION_TOKEN;
  memset(&tm, 0, sizeof(tm));
  cr_assert_not_null(
      strptime(json_string_value(json_object_get(ctx, "timestamp")), "%Y-%m-%dT%H:%M:%SZ", &tm),
      "%s: timestamp", case_dir);
  cr_assert_eq(weir__sigv4_format_date((int64_t)timegm(&tm), amz_date), 0);
  s = make_signer(json_string_value(json_object_get(creds, "access_key_id")),
                  json_string_value(json_object_get(creds, "secret_access_key")), token,
                  json_string_value(json_object_get(ctx, "region")),
                  json_string_value(json_object_get(ctx, "service")), flags);
  q = make_request(&r, amz_date);

  /* Header variant. */
  cr_expect_eq(weir__sigv4_canonical_request(s, &q, buf, sizeof(buf), &len), 0, "%s", case_dir);
  compare(c, case_dir, "header canonical request", dir, "header-canonical-request.txt", buf, len);
  cr_expect_eq(weir__sigv4_string_to_sign(s, &q, buf, sizeof(buf), &len), 0, "%s", case_dir);
  compare(c, case_dir, "header string to sign", dir, "header-string-to-sign.txt", buf, len);
  cr_expect_eq(weir__sigv4_sign(s, &q, sig_out, sizeof(sig_out), &sig_len), 0, "%s", case_dir);
  sig = strstr(sig_out, "Signature=");
  cr_assert_not_null(sig, "%s: %s", case_dir, sig_out);
  compare(c, case_dir, "header signature", dir, "header-signature.txt", sig + 10, strlen(sig + 10));
  {
    /* As aws-c-auth writes it: request lines, then the headers the client adds (token, date,
     * content hash), "Authorization:" without a space, an empty line, the body. */
    struct sb b = {0};
    weir_buf tok = weir__sigv4_session_token(s);
    char hash[WEIR_SIGV4_HEX_LEN + 1];
    sb_buf(&b, r.request_line);
    sb_puts(&b, "\n");
    if (r.raw_headers.len > 0) {
      sb_buf(&b, r.raw_headers);
      sb_puts(&b, "\n");
    }
    if (tok.len > 0 && !has_header(&r, "x-amz-security-token")) {
      sb_puts(&b, "X-Amz-Security-Token:");
      sb_buf(&b, tok);
      sb_puts(&b, "\n");
    }
    if (!has_header(&r, "x-amz-date")) {
      sb_puts(&b, "X-Amz-Date:");
      sb_puts(&b, amz_date);
      sb_puts(&b, "\n");
    }
    if (flags & WEIR_SIGV4_SIGN_BODY) {
      cr_assert_eq(weir__sigv4_payload_hash(s, r.body.ptr, r.body.len, hash), 0);
      sb_puts(&b, "x-amz-content-sha256:");
      sb_puts(&b, hash);
      sb_puts(&b, "\n");
    }
    sb_puts(&b, "Authorization:");
    sb_put(&b, sig_out, sig_len);
    sb_puts(&b, "\n\n");
    sb_buf(&b, r.body);
    compare(c, case_dir, "header signed request", dir, "header-signed-request.txt", b.p, b.len);
    free(b.p);
  }

  /* Query (presigned URL) variant. */
  q.expires = (uint32_t)json_integer_value(json_object_get(ctx, "expiration_in_seconds"));
  cr_expect_eq(weir__sigv4_canonical_request(s, &q, buf, sizeof(buf), &len), 0, "%s", case_dir);
  compare(c, case_dir, "query canonical request", dir, "query-canonical-request.txt", buf, len);
  cr_expect_eq(weir__sigv4_string_to_sign(s, &q, buf, sizeof(buf), &len), 0, "%s", case_dir);
  compare(c, case_dir, "query string to sign", dir, "query-string-to-sign.txt", buf, len);
  cr_expect_eq(weir__sigv4_presign(s, &q, presigned, sizeof(presigned), &pre_len), 0, "%s",
               case_dir);
  sig = strstr(presigned, "X-Amz-Signature=");
  cr_assert_not_null(sig, "%s: %s", case_dir, presigned);
  compare(c, case_dir, "query signature", dir, "query-signature.txt", sig + 16, strlen(sig + 16));
  {
    struct sb b = {0};
    sb_buf(&b, r.method);
    sb_puts(&b, " ");
    sb_buf(&b, r.path);
    sb_puts(&b, "?");
    if (r.query.len > 0) {
      sb_buf(&b, r.query);
      sb_puts(&b, "&");
    }
    sb_put(&b, presigned, pre_len);
    sb_puts(&b, " ");
    sb_buf(&b, r.version);
    sb_puts(&b, "\n");
    if (r.raw_headers.len > 0) {
      sb_buf(&b, r.raw_headers);
      sb_puts(&b, "\n");
    }
    sb_puts(&b, "\n");
    sb_buf(&b, r.body);
    compare(c, case_dir, "query signed request", dir, "query-signed-request.txt", b.p, b.len);
    free(b.p);
  }
  weir__sigv4_signer_destroy(s);
  parsed_free(&r);
  json_decref(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* Suites                                                                                     */

static void report_counts(const char *suite, int folders, const struct counts *c) {
  cr_log_info("%s: %d case folders, %d cases run, %d steps compared byte for byte, %d steps "
              "skipped by README/MANIFEST notes",
              suite, folders, c->cases, c->checked, c->skipped);
  fprintf(stderr, "sigv4 %s: %d case folders, %d steps checked, %d skipped by notes\n", suite,
          folders, c->checked, c->skipped);
}

#define REQUIRE_TESTDATA(root)                                                                     \
  do {                                                                                             \
    if (!testdata_dir(root, sizeof(root)))                                                         \
      cr_skip_test("SigV4 test data not found at %s (set WEIR_SHARED_DIR to the shared folder "    \
                   "holding testdata/sigv4)",                                                      \
                   root);                                                                          \
  } while (0)

Test(sigv4_suites, classic) {
  char root[PATH_MAX];
  struct counts c = {0};
  int n;

  REQUIRE_TESTDATA(root);
  n = run_classic_suite(root, "aws-sig-v4-test-suite", &c);
  report_counts("aws-sig-v4-test-suite", n, &c);
  cr_assert_gt(n, 0);
  cr_expect_eq(n, N_CLASSIC, "expected %d case folders (MANIFEST.tsv), found %d", N_CLASSIC, n);
  /* 31 cases x 4 steps, minus 3 + 3 + 4 skipped by notes. */
  cr_expect_eq(c.checked, N_CLASSIC * 4 - 10, "steps checked: %d", c.checked);
}

Test(sigv4_suites, errata) {
  char root[PATH_MAX];
  struct counts c = {0};
  int n;

  REQUIRE_TESTDATA(root);
  n = run_classic_suite(root, "aws-c-auth-errata", &c);
  report_counts("aws-c-auth-errata", n, &c);
  cr_assert_gt(n, 0);
  cr_expect_eq(n, N_ERRATA, "expected %d case folders, found %d", N_ERRATA, n);
  cr_expect_eq(c.checked, N_ERRATA * 4 - 1, "steps checked: %d", c.checked);
}

Test(sigv4_suites, v4) {
  char root[PATH_MAX], base[PATH_MAX + 64];
  struct counts c = {0};
  struct dirlist l = {0};
  int n;

  REQUIRE_TESTDATA(root);
  pathf(base, sizeof(base), "%s/aws-signing-test-suite/v4", root);
  find_cases(base, "", &l);
  for (size_t i = 0; i < l.n; i++) {
    char case_dir[PATH_MAX];
    pathf(case_dir, sizeof(case_dir), "aws-signing-test-suite/v4/%s", l.v[i]);
    run_v4_case(root, case_dir, &c);
  }
  n = (int)l.n;
  dirlist_free(&l);
  report_counts("aws-signing-test-suite/v4", n, &c);
  cr_assert_gt(n, 0);
  cr_expect_eq(n, N_V4, "expected %d case folders, found %d", N_V4, n);
  cr_expect_eq(c.checked, N_V4 * 8, "steps checked: %d", c.checked);
}

/* published-worked-examples/: the IAM ListUsers walkthrough (classic layout, service "iam"),
 * the aws-sdk-go DynamoDB request (inputs in dynamodb-post.inputs.txt, built here by hand),
 * and the published signing keys. */
Test(sigv4_suites, published) {
  char root[PATH_MAX], dir[PATH_MAX + 64], path[PATH_MAX + 128];
  char buf[8192], authz[WEIR_SIGV4_AUTHZ_MAX];
  size_t len;
  struct counts c = {0};
  struct weir_sigv4_signer *s;
  int folders = 0;

  REQUIRE_TESTDATA(root);
  pathf(dir, sizeof(dir), "%s/published-worked-examples/iam-listusers", root);
  if (has_file_with_suffix(dir, ".req")) {
    run_classic_case(root, "published-worked-examples/iam-listusers", "iam", &c);
    folders++;
  }

  pathf(dir, sizeof(dir), "%s/published-worked-examples/aws-sdk-go-dynamodb-json-post", root);
  if (has_file_with_suffix(dir, ".creq")) {
    /* dynamodb-post.inputs.txt: AKID/SECRET/SESSION, us-east-1, dynamodb, epoch 0, the path
     * given raw, body "{}", the headers below (one name given twice in different case). */
    static const char *const h[][2] = {
        {"Host", "dynamodb.us-east-1.amazonaws.com"},
        {"Content-Length", "2"},
        {"Content-Type", "application/x-amz-json-1.0"},
        {"X-Amz-Target", "prefix.Operation"},
        {"X-Amz-Meta-Other-Header", "some-value=!@#$%^&* (+)"},
        {"X-Amz-Meta-Other-Header_With_Underscore", "some-value=!@#$%^&* (+)"},
        {"X-amz-Meta-Other-Header_With_Underscore", "some-value=!@#$%^&* (+)"},
    };
    struct weir_sigv4_header hdrs[7];
    struct weir_sigv4_request q;
    char date[WEIR_SIGV4_DATE_LEN + 1];
    for (int i = 0; i < 7; i++) {
      hdrs[i].name = span(h[i][0], strlen(h[i][0]));
      hdrs[i].value = span(h[i][1], strlen(h[i][1]));
    }
    cr_assert_eq(weir__sigv4_format_date(0, date), 0);
    cr_assert_str_eq(date, "19700101T000000Z");
    memset(&q, 0, sizeof(q));
    q.method = span("POST", 4);
    q.path = span("/bucket/key-._~,!@#$%^&*()", strlen("/bucket/key-._~,!@#$%^&*()"));
    q.headers = hdrs;
    q.n_headers = 7;
    q.payload = span("{}", 2);
    q.amz_date = date;
    s = make_signer("AKID", "SECRET", "SESSION", "us-east-1", "dynamodb", 0);
    cr_expect_eq(weir__sigv4_canonical_request(s, &q, buf, sizeof(buf), &len), 0);
    compare(&c, "dynamodb-post", "canonical request", dir, "dynamodb-post.creq", buf, len);
    cr_expect_eq(weir__sigv4_string_to_sign(s, &q, buf, sizeof(buf), &len), 0);
    compare(&c, "dynamodb-post", "string to sign", dir, "dynamodb-post.sts", buf, len);
    cr_expect_eq(weir__sigv4_sign(s, &q, authz, sizeof(authz), &len), 0);
    compare(&c, "dynamodb-post", "Authorization", dir, "dynamodb-post.authz", authz, len);
    weir__sigv4_signer_destroy(s);
    folders++;
    c.cases++;
  }

  /* signing-keys.tsv: secret, date, region, service, kSigning hex, status. */
  pathf(path, sizeof(path), "%s/published-worked-examples/signing-keys.tsv", root);
  {
    char *tsv = read_all(path, NULL), *save = NULL;
    int keys = 0;
    cr_assert_not_null(tsv, "missing %s", path);
    for (char *line = strtok_r(tsv, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
      char *f[6], *fs = NULL;
      uint8_t key[WEIR_SIGV4_KEY_LEN];
      char hex[2 * WEIR_SIGV4_KEY_LEN + 1];
      int nf = 0;
      if (line[0] == '#')
        continue;
      for (char *t = strtok_r(line, "\t", &fs); t != NULL && nf < 6; t = strtok_r(NULL, "\t", &fs))
        f[nf++] = t;
      cr_assert_geq(nf, 5);
      s = make_signer("AKIDEXAMPLE", f[0], NULL, f[2], f[3], 0);
      cr_assert_eq(weir__sigv4_signing_key(s, f[1], span("", 0), span("", 0), key), 0);
      for (int i = 0; i < WEIR_SIGV4_KEY_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
      cr_expect_str_eq(hex, f[4], "signing key %s/%s/%s", f[1], f[2], f[3]);
      weir__sigv4_signer_destroy(s);
      keys++;
      c.checked++;
    }
    cr_expect_geq(keys, 3, "signing-keys.tsv rows: %d", keys);
    fprintf(stderr, "sigv4 signing-keys.tsv: %d signing keys checked\n", keys);
    free(tsv);
  }
  report_counts("published-worked-examples", folders, &c);
  cr_expect_eq(folders, N_PUBLISHED);
  /* iam: 4 steps; dynamodb: 3 (no .sreq published); 3 signing keys. */
  cr_expect_eq(c.checked, 4 + 3 + 3, "steps checked: %d", c.checked);
}

/* Every folder on disk is in MANIFEST.tsv and every MANIFEST case folder exists; every row
 * whose creq/sts self-check failed upstream is covered by a note that skips its .sts step. */
Test(sigv4_suites, manifest) {
  char root[PATH_MAX], path[PATH_MAX + 64];
  struct dirlist disk = {0}, man = {0};
  char *tsv, *save = NULL;
  int rows = 0;

  REQUIRE_TESTDATA(root);
  pathf(path, sizeof(path), "%s/MANIFEST.tsv", root);
  cr_assert_not_null(tsv = read_all(path, NULL), "missing %s", path);
  for (char *line = strtok_r(tsv, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
    char *f[6] = {0}, *fs = NULL;
    int nf = 0;
    if (line[0] == '#')
      continue;
    for (char *t = strtok_r(line, "\t", &fs); t != NULL && nf < 6; t = strtok_r(NULL, "\t", &fs))
      f[nf++] = t;
    cr_assert_geq(nf, 5, "MANIFEST row %d", rows + 1);
    rows++;
    if (man.n == 0 || strcmp(man.v[man.n - 1], f[0]) != 0) {
      man.v = realloc(man.v, (man.n + 1) * sizeof(char *));
      man.v[man.n++] = strdup(f[0]);
    }
    if (strcmp(f[2], "yes") != 0) {
      const char *why;
      cr_expect(skipped_steps(f[0], &why) & STEP_STS,
                "MANIFEST marks %s inconsistent but no note skips its .sts step", f[0]);
    }
  }
  free(tsv);
  qsort(man.v, man.n, sizeof(char *), cmp_str);
  find_cases(root, "", &disk);
  cr_log_info("MANIFEST: %d rows, %zu case folders; on disk: %zu case folders", rows, man.n,
              disk.n);
  fprintf(stderr, "sigv4 MANIFEST: %d rows, %zu case folders; on disk: %zu\n", rows, man.n, disk.n);
  cr_expect_eq(rows, N_MANIFEST_ROWS);
  cr_expect_eq(man.n, (size_t)(N_CLASSIC + N_ERRATA + N_V4 + N_PUBLISHED));
  cr_expect_eq(disk.n, man.n, "folders on disk %zu vs MANIFEST %zu", disk.n, man.n);
  for (size_t i = 0; i < disk.n && i < man.n; i++)
    cr_expect_str_eq(disk.v[i], man.v[i]);
  for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
    bool listed = false;
    for (size_t j = 0; j < man.n; j++)
      listed = listed || strcmp(man.v[j], notes[i].case_dir) == 0;
    cr_expect(listed, "note for %s names no MANIFEST case", notes[i].case_dir);
  }
  dirlist_free(&disk);
  dirlist_free(&man);
}

/* ---------------------------------------------------------------------------------------- */
/* Unit tests: a Kinesis request, bounds, errors                                              */

static struct weir_sigv4_signer *kinesis_signer(const char *token, unsigned flags) {
  return make_signer(T_AKID, T_SECRET, token, "us-east-1", "kinesis", flags);
}

static const struct weir_sigv4_header kinesis_hdrs[] = {
    {{(const uint8_t *)"Host", 4}, {(const uint8_t *)"kinesis.us-east-1.amazonaws.com", 31}},
    {{(const uint8_t *)"Content-Type", 12}, {(const uint8_t *)"application/x-amz-json-1.1", 26}},
    {{(const uint8_t *)"X-Amz-Target", 12}, {(const uint8_t *)"Kinesis_20131202.PutRecords", 27}},
};

static struct weir_sigv4_request kinesis_request(const char *body, const char *date) {
  struct weir_sigv4_request q;
  memset(&q, 0, sizeof(q));
  q.method = span("POST", 4);
  q.path = span("/", 1);
  q.headers = kinesis_hdrs;
  q.n_headers = 3;
  q.payload = span(body, strlen(body));
  q.amz_date = date;
  return q;
}

Test(sigv4, kinesis_request_shape) {
  struct weir_sigv4_signer *s = kinesis_signer("TOKEN123", 0);
  struct weir_sigv4_request q = kinesis_request("{\"StreamName\":\"s\"}", T_DATE);
  char creq[2048], authz[WEIR_SIGV4_AUTHZ_MAX], authz2[WEIR_SIGV4_AUTHZ_MAX];
  char hash[WEIR_SIGV4_HEX_LEN + 1];
  size_t len;

  cr_assert_eq(weir__sigv4_canonical_request(s, &q, creq, sizeof(creq), &len), 0);
  cr_assert_eq(strlen(creq), len);
  cr_expect(strstr(creq,
                   "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:kinesis.us-"
                   "east-1.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-"
                   "token:TOKEN123\nx-amz-target:Kinesis_20131202.PutRecords\n\n"
                   "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n") == creq,
            "%s", creq);
  cr_assert_eq(weir__sigv4_sign(s, &q, authz, sizeof(authz), &len), 0);
  cr_expect(strncmp(authz,
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/"
                    "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-"
                    "token;x-amz-target, Signature=",
                    strlen("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/"
                           "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-"
                           "security-token;x-amz-target, Signature=")) == 0,
            "%s", authz);
  cr_expect_eq(len, strlen(authz));

  /* A precomputed payload hash signs identically. */
  cr_assert_eq(weir__sigv4_payload_hash(s, q.payload.ptr, q.payload.len, hash), 0);
  q.payload = span(NULL, 0);
  q.payload_hash = span(hash, WEIR_SIGV4_HEX_LEN);
  cr_assert_eq(weir__sigv4_sign(s, &q, authz2, sizeof(authz2), NULL), 0);
  cr_expect_str_eq(authz2, authz);

  cr_expect_eq(weir__sigv4_session_token(s).len, 8);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, omit_token_and_sign_body) {
  struct weir_sigv4_signer *s =
      kinesis_signer("TOKEN123", WEIR_SIGV4_OMIT_SESSION_TOKEN | WEIR_SIGV4_SIGN_BODY);
  struct weir_sigv4_request q = kinesis_request("", T_DATE);
  char creq[2048];

  cr_assert_eq(weir__sigv4_canonical_request(s, &q, creq, sizeof(creq), NULL), 0);
  cr_expect_null(strstr(creq, "x-amz-security-token"), "%s", creq);
  cr_expect_not_null(strstr(creq, "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
                                  "649b934ca495991b7852b855\n"),
                     "%s", creq);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, buffer_bounds) {
  struct weir_sigv4_signer *s = kinesis_signer(NULL, 0);
  struct weir_sigv4_request q = kinesis_request("{}", T_DATE);
  char full[WEIR_SIGV4_AUTHZ_MAX], small[64];
  size_t len = 0, full_len;

  cr_assert_eq(weir__sigv4_sign(s, &q, full, sizeof(full), &full_len), 0);
  cr_expect_eq(weir__sigv4_sign(s, &q, small, sizeof(small), &len), WEIR_ETOOBIG);
  cr_expect_eq(len, 0);
  cr_expect_str_eq(small, "");
  /* Exactly enough (value + NUL) succeeds; one byte less does not. */
  {
    char *exact = malloc(full_len + 1);
    cr_expect_eq(weir__sigv4_sign(s, &q, exact, full_len + 1, &len), 0);
    cr_expect_str_eq(exact, full);
    cr_expect_eq(weir__sigv4_sign(s, &q, exact, full_len, &len), WEIR_ETOOBIG);
    free(exact);
  }
  cr_expect_eq(weir__sigv4_canonical_request(s, &q, small, sizeof(small), &len), WEIR_ETOOBIG);
  cr_expect_eq(weir__sigv4_sign(s, &q, NULL, 0, NULL), WEIR_EINVAL);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, request_errors) {
  struct weir_sigv4_signer *s = kinesis_signer(NULL, 0);
  struct weir_sigv4_request q = kinesis_request("{}", T_DATE);
  struct weir_sigv4_header many[WEIR_SIGV4_MAX_HEADERS + 1];
  struct weir_sigv4_header bad[2];
  char out[WEIR_SIGV4_AUTHZ_MAX];

  /* Bad dates. */
  q.amz_date = "2015-08-30T12:36";
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  q.amz_date = "20150830";
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  q.amz_date = T_DATE;
  /* expires is for presign only, and presign needs it. */
  q.expires = 60;
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  q.expires = WEIR_SIGV4_MAX_EXPIRES + 1;
  cr_expect_eq(weir__sigv4_presign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  q.expires = 0;
  cr_expect_eq(weir__sigv4_presign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  /* Header injection is refused. */
  bad[0] = kinesis_hdrs[0];
  bad[1].name = span("X-Evil", 6);
  bad[1].value = span("a\r\nX-Injected: 1", 16);
  q.headers = bad;
  q.n_headers = 2;
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  bad[1].name = span("Bad Name", 8);
  bad[1].value = span("v", 1);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  /* An X-Amz-Date header that disagrees with amz_date. */
  bad[1].name = span("X-Amz-Date", 10);
  bad[1].value = span("20150830T123601Z", 16);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  bad[1].value = span(" 20150830T123600Z ", 18);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), 0);
  /* Too many headers. */
  for (int i = 0; i <= WEIR_SIGV4_MAX_HEADERS; i++)
    many[i] = kinesis_hdrs[0];
  q.headers = many;
  q.n_headers = WEIR_SIGV4_MAX_HEADERS + 1;
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_ETOOBIG);
  q.n_headers = WEIR_SIGV4_MAX_HEADERS;
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), 0);
  /* Empty method, bad payload hash. */
  q = kinesis_request("{}", T_DATE);
  q.method = span("", 0);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  q = kinesis_request("{}", T_DATE);
  q.payload_hash = span("has space", 9);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, query_and_path_bounds) {
  struct weir_sigv4_signer *s = kinesis_signer(NULL, 0);
  struct weir_sigv4_request q = kinesis_request("", T_DATE);
  char out[WEIR_SIGV4_AUTHZ_MAX];
  char *query = malloc(4 * (WEIR_SIGV4_MAX_QUERY_PARAMS + 1) + 1);
  char *path = malloc(2 * (WEIR_SIGV4_MAX_PATH_SEGMENTS + 1) + 1);
  size_t n = 0;

  for (int i = 0; i <= WEIR_SIGV4_MAX_QUERY_PARAMS; i++)
    n += (size_t)sprintf(query + n, "%sa=%d", i ? "&" : "", i % 10);
  q.query = span(query, n);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_ETOOBIG);
  q.query = span(query, n - 4); /* drop the last parameter */
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), 0);
  q.query = span("", 0);
  n = 0;
  for (int i = 0; i <= WEIR_SIGV4_MAX_PATH_SEGMENTS; i++)
    n += (size_t)sprintf(path + n, "/a");
  q.path = span(path, n);
  cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_ETOOBIG);
  free(query);
  free(path);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, canonical_forms) {
  struct weir_sigv4_signer *s = kinesis_signer(NULL, 0);
  struct weir_sigv4_header h[] = {{span("Host", 4), span("h", 1)}};
  struct weir_sigv4_request q;
  char out[2048];

  memset(&q, 0, sizeof(q));
  q.method = span("GET", 3);
  q.headers = h;
  q.n_headers = 1;
  q.amz_date = T_DATE;
  /* Empty path is "/"; '+' is literal; a bare key gets "="; invalid %-escapes are kept. */
  q.query = span("b=%zz&a+b=1&c&&a=2", 18);
  cr_assert_eq(weir__sigv4_canonical_request(s, &q, out, sizeof(out), NULL), 0);
  cr_expect(strncmp(out, "GET\n/\na=2&a%2Bb=1&b=%25zz&c=\nhost:h\n", 36) == 0, "%s", out);
  /* Path: dot segments and a trailing slash; '%' of an encoded path is encoded again. */
  q.query = span("", 0);
  q.path = span("/a/./b/../c%2F/", 15);
  cr_assert_eq(weir__sigv4_canonical_request(s, &q, out, sizeof(out), NULL), 0);
  cr_expect(strncmp(out, "GET\n/a/c%252F/\n\nhost:h\n", 22) == 0, "%s", out);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, key_cache_and_overrides) {
  struct weir_sigv4_signer *s = kinesis_signer(NULL, 0);
  struct weir_sigv4_request q = kinesis_request("{}", T_DATE);
  uint8_t k1[WEIR_SIGV4_KEY_LEN], k2[WEIR_SIGV4_KEY_LEN], k3[WEIR_SIGV4_KEY_LEN];
  char a1[WEIR_SIGV4_AUTHZ_MAX], a2[WEIR_SIGV4_AUTHZ_MAX];

  /* More distinct scopes than cache slots, then back: the result never depends on the cache. */
  cr_assert_eq(weir__sigv4_signing_key(s, "20150830", span("", 0), span("", 0), k1), 0);
  for (int d = 1; d <= WEIR_SIGV4_KEY_CACHE + 1; d++) {
    char date[9];
    snprintf(date, sizeof(date), "201508%02d", d);
    cr_assert_eq(weir__sigv4_signing_key(s, date, span("", 0), span("", 0), k2), 0);
    cr_expect_neq(memcmp(k1, k2, sizeof(k1)), 0);
  }
  cr_assert_eq(weir__sigv4_signing_key(s, "20150830", span("", 0), span("", 0), k3), 0);
  cr_expect_eq(memcmp(k1, k3, sizeof(k1)), 0);
  cr_assert_eq(weir__sigv4_signing_key(s, "20150830", span("eu-west-1", 9), span("", 0), k2), 0);
  cr_expect_neq(memcmp(k1, k2, sizeof(k1)), 0);

  /* Per-request region override changes scope and signature. */
  cr_assert_eq(weir__sigv4_sign(s, &q, a1, sizeof(a1), NULL), 0);
  q.region = span("eu-west-1", 9);
  cr_assert_eq(weir__sigv4_sign(s, &q, a2, sizeof(a2), NULL), 0);
  cr_expect_not_null(strstr(a2, "/20150830/eu-west-1/kinesis/aws4_request"), "%s", a2);
  cr_expect_str_neq(a1, a2);
  q.region = span("bad/region", 10);
  cr_expect_eq(weir__sigv4_sign(s, &q, a2, sizeof(a2), NULL), WEIR_EINVAL);
  weir__sigv4_signer_destroy(s);
}

Test(sigv4, format_date) {
  char d[WEIR_SIGV4_DATE_LEN + 1];
  cr_assert_eq(weir__sigv4_format_date(1440938160, d), 0);
  cr_expect_str_eq(d, T_DATE);
  cr_expect_eq(weir__sigv4_format_date(-1, d), WEIR_EINVAL);
  cr_expect_eq(weir__sigv4_format_date(INT64_C(253402300800), d), WEIR_EINVAL);
  cr_expect_eq(weir__sigv4_format_date(INT64_C(253402300799), d), 0);
  cr_expect_str_eq(d, "99991231T235959Z");
}

Test(sigv4, signer_create_errors) {
  struct weir_sigv4_signer *s = NULL;
  struct weir_sigv4_config cfg = {0};
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *creds = NULL;
  char longname[WEIR_SIGV4_MAX_NAME + 2];

  cr_expect_eq(weir__sigv4_signer_create(&cfg, &s), WEIR_EINVAL);
  cr_expect_null(s);
  cr_expect_eq(weir__sigv4_signer_create(NULL, &s), WEIR_EINVAL);
  cr_expect_eq(weir__sigv4_signer_create(&cfg, NULL), WEIR_EINVAL);
  o.access_key_id = T_AKID;
  o.secret_access_key = T_SECRET;
  cr_assert_eq(weir__aws_credentials_from_static(&o, &creds, NULL, 0), 0);
  cfg.creds = creds;
  cfg.service = "kinesis";
  cfg.region = "";
  cr_expect_eq(weir__sigv4_signer_create(&cfg, &s), WEIR_EINVAL);
  cfg.region = "us east";
  cr_expect_eq(weir__sigv4_signer_create(&cfg, &s), WEIR_EINVAL);
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  cfg.region = longname;
  cr_expect_eq(weir__sigv4_signer_create(&cfg, &s), WEIR_ETOOBIG);
  cfg.region = "us-east-1";
  cr_expect_eq(weir__sigv4_signer_create(&cfg, &s), 0);
  weir__sigv4_signer_destroy(s);
  weir__sigv4_signer_destroy(NULL);
  weir__aws_credentials_free(creds);
}
