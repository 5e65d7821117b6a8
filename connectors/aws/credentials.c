/*
 * credentials.c: AWS credential sources (static, environment, shared files), the default
 * chain, and region and endpoint resolution (rules in credentials_int.h).
 *
 * Secrets are copied into the opaque credentials object and nowhere else; messages name
 * sources, files and line numbers, never values. The shared files are read whole into a
 * bounded buffer, scanned in place, zeroed and freed before the resolving call returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../runtime/log_int.h"
#include "credentials_int.h"

#define DESC_MAX (PATH_MAX + WEIR_AWS_PROFILE_MAX + 32)
#define SERVICE_ID_MAX 64
#define ENV_ENDPOINT_PREFIX "AWS_ENDPOINT_URL_"

struct weir_aws_credentials {
  enum weir_aws_cred_source source;
  char akid[WEIR_AWS_ACCESS_KEY_ID_MAX + 1];
  char desc[DESC_MAX];
  /* Secrets: read only through weir__aws_credentials_secrets (the signer); zeroed on free. */
  size_t secret_len;
  size_t token_len;
  char secret[WEIR_AWS_SECRET_MAX + 1];
  char *token; /* NULL when there is none */
};

/* ---------------------------------------------------------------------------------------- */
/* Messages                                                                                   */

static int report(int rc, char *err, size_t err_cap, const char *fmt, ...) WEIR_PRINTF(4, 5);

/* Logs an error once and copies it to the caller's buffer. Never pass a secret to it. */
static int report(int rc, char *err, size_t err_cap, const char *fmt, ...) {
  char msg[WEIR_AWS_ERR_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  WEIR_LOG_ERR("aws: %s", msg);
  if (err != NULL && err_cap > 0)
    snprintf(err, err_cap, "%s", msg);
  return rc;
}

/* "****WXYZ": enough to tell keys apart in a log without printing a whole key id. */
static void mask_key_id(const char *akid, char out[16]) {
  size_t n = strlen(akid);
  if (n >= 12)
    snprintf(out, 16, "****%s", akid + n - 4);
  else
    snprintf(out, 16, "****");
}

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return (v != NULL && v[0] != '\0') ? v : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Credentials objects                                                                        */

struct field {
  const char *ptr; /* NULL or len 0: absent */
  size_t len;
  const char *label; /* e.g. "AWS_SECRET_ACCESS_KEY"; never the value */
  size_t max;
};

static int check_field(const struct field *f, const char *where, char *err, size_t err_cap) {
  if (f->ptr == NULL || f->len == 0)
    return report(WEIR_EINVAL, err, err_cap, "%s: %s is empty", where, f->label);
  if (f->len > f->max)
    return report(WEIR_ETOOBIG, err, err_cap, "%s: %s is longer than %zu characters", where,
                  f->label, f->max);
  for (size_t i = 0; i < f->len; i++) {
    unsigned char c = (unsigned char)f->ptr[i];
    if (c <= 0x20 || c >= 0x7f)
      return report(WEIR_EINVAL, err, err_cap,
                    "%s: %s contains a space or control character (a stray newline or "
                    "trailing blank?)",
                    where, f->label);
  }
  return 0;
}

static int creds_make(enum weir_aws_cred_source source, const char *desc, const struct field *akid,
                      const struct field *secret, const struct field *token,
                      struct weir_aws_credentials **out, char *err, size_t err_cap) {
  struct weir_aws_credentials *c = NULL;
  char masked[16];
  int rc;

  if ((rc = check_field(akid, desc, err, err_cap)) != 0 ||
      (rc = check_field(secret, desc, err, err_cap)) != 0)
    return rc;
  if (token->ptr != NULL && token->len > 0 && (rc = check_field(token, desc, err, err_cap)) != 0)
    return rc;
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return report(WEIR_ENOMEM, err, err_cap, "%s: out of memory", desc);
  c->source = source;
  memcpy(c->akid, akid->ptr, akid->len);
  snprintf(c->desc, sizeof(c->desc), "%s", desc);
  memcpy(c->secret, secret->ptr, secret->len);
  c->secret_len = secret->len;
  if (token->ptr != NULL && token->len > 0) {
    if ((c->token = malloc(token->len + 1)) == NULL) {
      rc = report(WEIR_ENOMEM, err, err_cap, "%s: out of memory", desc);
      goto fail;
    }
    memcpy(c->token, token->ptr, token->len);
    c->token[token->len] = '\0';
    c->token_len = token->len;
  }
  mask_key_id(c->akid, masked);
  WEIR_LOG_DEBUG("aws: credentials from %s (access key id %s, %s)", c->desc, masked,
                 c->token != NULL ? "temporary, with session token" : "long-term");
  *out = c;
  return 0;

fail:
  weir__aws_credentials_free(c);
  return rc;
}

void weir__aws_credentials_free(struct weir_aws_credentials *c) {
  if (c == NULL)
    return;
  if (c->token != NULL) {
    OPENSSL_cleanse(c->token, c->token_len);
    free(c->token);
  }
  OPENSSL_cleanse(c, sizeof(*c));
  free(c);
}

const char *weir__aws_credentials_access_key_id(const struct weir_aws_credentials *c) {
  return c != NULL ? c->akid : "";
}

bool weir__aws_credentials_has_session_token(const struct weir_aws_credentials *c) {
  return c != NULL && c->token_len > 0;
}

enum weir_aws_cred_source weir__aws_credentials_source(const struct weir_aws_credentials *c) {
  return c->source;
}

const char *weir__aws_credentials_describe(const struct weir_aws_credentials *c) {
  return c != NULL ? c->desc : "";
}

void weir__aws_credentials_secrets(const struct weir_aws_credentials *c, weir_buf *secret,
                                   weir_buf *token) {
  secret->ptr = (const uint8_t *)c->secret;
  secret->len = c->secret_len;
  token->ptr = (const uint8_t *)c->token;
  token->len = c->token_len;
}

/* ---------------------------------------------------------------------------------------- */
/* Static and environment sources                                                             */

static struct field str_field(const char *s, const char *label, size_t max) {
  struct field f = {s, s != NULL ? strlen(s) : 0, label, max};
  return f;
}

int weir__aws_credentials_from_static(const struct weir_aws_options *opts,
                                      struct weir_aws_credentials **out, char *err,
                                      size_t err_cap) {
  struct field akid, secret, token;
  bool has_akid, has_secret;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  has_akid = opts != NULL && opts->access_key_id != NULL && opts->access_key_id[0] != '\0';
  has_secret =
      opts != NULL && opts->secret_access_key != NULL && opts->secret_access_key[0] != '\0';
  if (!has_akid && !has_secret) {
    WEIR_LOG_DEBUG("aws: static credentials: none configured");
    return WEIR_ENOTFOUND;
  }
  if (!has_akid || !has_secret)
    return report(WEIR_EINVAL, err, err_cap,
                  "static options: %s is set but %s is not; set both or neither",
                  has_akid ? "access_key_id" : "secret_access_key",
                  has_akid ? "secret_access_key" : "access_key_id");
  akid = str_field(opts->access_key_id, "access_key_id", WEIR_AWS_ACCESS_KEY_ID_MAX);
  secret = str_field(opts->secret_access_key, "secret_access_key", WEIR_AWS_SECRET_MAX);
  token = str_field(opts->session_token, "session_token", WEIR_AWS_SESSION_TOKEN_MAX);
  return creds_make(WEIR_AWS_CRED_STATIC, "static options", &akid, &secret, &token, out, err,
                    err_cap);
}

int weir__aws_credentials_from_env(struct weir_aws_credentials **out, char *err, size_t err_cap) {
  const char *akid_s = env_nonempty("AWS_ACCESS_KEY_ID");
  const char *secret_s = env_nonempty("AWS_SECRET_ACCESS_KEY");
  const char *token_s = env_nonempty("AWS_SESSION_TOKEN");
  const char *token_name = "AWS_SESSION_TOKEN";
  struct field akid, secret, token;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  if (token_s == NULL && (token_s = env_nonempty("AWS_SECURITY_TOKEN")) != NULL)
    token_name = "AWS_SECURITY_TOKEN";
  if (akid_s == NULL) {
    if (secret_s != NULL)
      WEIR_LOG_WARN("aws: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; "
                    "ignoring the environment's credentials");
    WEIR_LOG_DEBUG("aws: environment credentials: AWS_ACCESS_KEY_ID is not set");
    return WEIR_ENOTFOUND;
  }
  if (secret_s == NULL)
    return report(WEIR_EINVAL, err, err_cap,
                  "environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; "
                  "set both or neither");
  akid = str_field(akid_s, "AWS_ACCESS_KEY_ID", WEIR_AWS_ACCESS_KEY_ID_MAX);
  secret = str_field(secret_s, "AWS_SECRET_ACCESS_KEY", WEIR_AWS_SECRET_MAX);
  token = str_field(token_s, token_name, WEIR_AWS_SESSION_TOKEN_MAX);
  return creds_make(WEIR_AWS_CRED_ENV, "environment", &akid, &secret, &token, out, err, err_cap);
}

/* ---------------------------------------------------------------------------------------- */
/* Shared files                                                                               */

enum {
  K_AKID,
  K_SECRET,
  K_TOKEN,
  K_TOKEN_LEGACY,
  K_REGION,
  K_ENDPOINT,
  K_ROLE_ARN,
  K_WEB_IDENTITY,
  K_SSO_START_URL,
  K_SSO_SESSION,
  K_CRED_PROCESS,
  K_COUNT
};

static const char *const key_names[K_COUNT] = {"aws_access_key_id",
                                               "aws_secret_access_key",
                                               "aws_session_token",
                                               "aws_security_token",
                                               "region",
                                               "endpoint_url",
                                               "role_arn",
                                               "web_identity_token_file",
                                               "sso_start_url",
                                               "sso_session",
                                               "credential_process"};

/* A value inside a file buffer; ptr == NULL when unset (an empty value counts as unset). */
struct ini_val {
  const char *ptr;
  size_t len;
  int line;
};

struct shared_file {
  bool is_config; /* sections are "[profile name]" (and "[default]") */
  bool exists;
  bool has_profile; /* a section for the selected profile exists */
  int profile_line;
  char *buf; /* whole file, NUL-terminated; zeroed and freed by shared_release */
  size_t len;
  struct ini_val v[K_COUNT];
  char path[PATH_MAX]; /* "" when there is no home directory to find it in */
};

/* The selected profile as seen in both files, loaded at most once per resolving call. */
struct shared {
  bool loaded;
  bool explicit_profile; /* from the options or AWS_PROFILE: missing is an error */
  char profile[WEIR_AWS_PROFILE_MAX + 1];
  struct shared_file files[2]; /* [0] credentials file, [1] config file: that precedence */
};

static void shared_init(struct shared *sh) {
  memset(sh, 0, sizeof(*sh));
}

static void shared_release(struct shared *sh) {
  for (int i = 0; i < 2; i++) {
    struct shared_file *f = &sh->files[i];
    if (f->buf != NULL) {
      OPENSSL_cleanse(f->buf, f->len);
      free(f->buf);
      f->buf = NULL;
    }
    memset(f->v, 0, sizeof(f->v));
  }
  sh->loaded = false;
}

static const char *home_dir(char *buf, size_t cap) {
  const char *h = env_nonempty("HOME");
  struct passwd pw, *res = NULL;

  if (h != NULL)
    return h;
  if (getpwuid_r(getuid(), &pw, buf, cap, &res) == 0 && res != NULL && res->pw_dir != NULL &&
      res->pw_dir[0] != '\0')
    return res->pw_dir;
  return NULL;
}

/* The file's path: option, else environment variable, else ~/.aws/<name>; "~/" expanded. */
static int file_path(const char *opt, const char *env_name, const char *def_name, char *out,
                     size_t cap, char *err, size_t err_cap) {
  char pwbuf[1024];
  const char *p = (opt != NULL && opt[0] != '\0') ? opt : env_nonempty(env_name);
  const char *home;
  int n;

  out[0] = '\0';
  if (p != NULL && !(p[0] == '~' && (p[1] == '/' || p[1] == '\0'))) {
    n = snprintf(out, cap, "%s", p);
  } else {
    if ((home = home_dir(pwbuf, sizeof(pwbuf))) == NULL) {
      WEIR_LOG_DEBUG("aws: no home directory: not reading ~/.aws/%s", def_name);
      return 0;
    }
    if (p != NULL)
      n = snprintf(out, cap, "%s%s", home, p + 1);
    else
      n = snprintf(out, cap, "%s/.aws/%s", home, def_name);
  }
  if (n < 0 || (size_t)n >= cap) {
    out[0] = '\0';
    return report(WEIR_ETOOBIG, err, err_cap, "the path of the shared %s file is too long",
                  def_name);
  }
  return 0;
}

static int read_file(struct shared_file *f, char *err, size_t err_cap) {
  struct stat st;
  size_t got = 0;
  int fd, rc;

  f->exists = false;
  if (f->path[0] == '\0')
    return 0;
  if ((fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      WEIR_LOG_DEBUG("aws: %s does not exist", f->path);
      return 0;
    }
    return report(WEIR_EIO, err, err_cap, "cannot open %s: %s", f->path, strerror(errno));
  }
  if (fstat(fd, &st) != 0) {
    rc = report(WEIR_EIO, err, err_cap, "cannot stat %s: %s", f->path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = report(WEIR_EIO, err, err_cap, "%s is not a regular file", f->path);
    goto fail;
  }
  if (st.st_size > (off_t)WEIR_AWS_SHARED_FILE_MAX) {
    rc = report(WEIR_ETOOBIG, err, err_cap, "%s is larger than %u bytes", f->path,
                WEIR_AWS_SHARED_FILE_MAX);
    goto fail;
  }
  if ((f->buf = malloc((size_t)st.st_size + 1)) == NULL) {
    rc = report(WEIR_ENOMEM, err, err_cap, "out of memory reading %s", f->path);
    goto fail;
  }
  /* Read what fstat promised; a file growing meanwhile is cut there. */
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, f->buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = report(WEIR_EIO, err, err_cap, "cannot read %s: %s", f->path, strerror(errno));
      goto fail;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  f->buf[got] = '\0';
  f->len = got;
  f->exists = true;
  close(fd);
  return 0;

fail:
  if (f->buf != NULL) {
    OPENSSL_cleanse(f->buf, got);
    free(f->buf);
    f->buf = NULL;
  }
  close(fd);
  return rc;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool span_eq(const char *p, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* Does section [name] hold `profile`? In the config file "[profile x]" names x and "[default]"
 * the default profile; other config sections (sso-session, services) are not profiles. */
static bool section_is_profile(bool is_config, const char *p, size_t n, const char *profile) {
  if (!is_config)
    return span_eq(p, n, profile);
  if (span_eq(p, n, "default"))
    return strcmp(profile, "default") == 0;
  if (n > 7 && memcmp(p, "profile", 7) == 0 && is_space(p[7])) {
    p += 7;
    n -= 7;
    while (n > 0 && is_space(*p)) {
      p++;
      n--;
    }
    return span_eq(p, n, profile);
  }
  return false;
}

/*
 * Scans an INI file as the AWS CLI reads it: "[section]", "key = value" (or "key: value"),
 * full-line comments starting with '#' or ';', and indented lines after a setting, which
 * continue it or form a nested block ("s3 =\n  max_concurrent_requests = 10") and are skipped.
 * Records the selected profile's keys; a later duplicate overrides an earlier one. Errors name
 * file:line and never quote the line: it may hold a secret.
 */
static int ini_scan(struct shared_file *f, const char *profile, char *err, size_t err_cap) {
  const char *p = f->buf, *end = f->buf + f->len;
  bool in_section = false, in_profile = false, have_key = false;
  int line = 0;

  if (f->len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
    p += 3; /* UTF-8 byte order mark */
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *s = p, *e = eol != NULL ? eol : end, *d;
    bool indented;

    p = eol != NULL ? eol + 1 : end;
    line++;
    indented = s < e && (*s == ' ' || *s == '\t');
    while (s < e && is_space(*s))
      s++;
    while (e > s && is_space(e[-1]))
      e--;
    if (s == e || *s == '#' || *s == ';')
      continue;
    if (memchr(s, '\0', (size_t)(e - s)) != NULL)
      return report(WEIR_EPARSE, err, err_cap, "%s:%d: NUL byte in a text file", f->path, line);
    if (indented && have_key)
      continue;
    if (*s == '[') {
      const char *ns = s + 1, *ne = e - 1;
      if (e - s < 2 || *ne != ']')
        return report(WEIR_EPARSE, err, err_cap, "%s:%d: section header is missing its closing ']'",
                      f->path, line);
      while (ns < ne && is_space(*ns))
        ns++;
      while (ne > ns && is_space(ne[-1]))
        ne--;
      if (ns == ne)
        return report(WEIR_EPARSE, err, err_cap, "%s:%d: empty section name", f->path, line);
      in_section = true;
      have_key = false;
      in_profile = section_is_profile(f->is_config, ns, (size_t)(ne - ns), profile);
      if (in_profile && !f->has_profile) {
        f->has_profile = true;
        f->profile_line = line;
      }
      continue;
    }
    for (d = s; d < e && *d != '=' && *d != ':'; d++)
      ;
    if (d == e)
      return report(WEIR_EPARSE, err, err_cap,
                    "%s:%d: expected 'key = value', a [section] header or a comment "
                    "(the line is not shown: it may hold a secret)",
                    f->path, line);
    if (!in_section)
      return report(WEIR_EPARSE, err, err_cap, "%s:%d: setting before the first [section] header",
                    f->path, line);
    {
      const char *ke = d, *vs = d + 1;
      while (ke > s && is_space(ke[-1]))
        ke--;
      while (vs < e && is_space(*vs))
        vs++;
      if (ke == s)
        return report(WEIR_EPARSE, err, err_cap, "%s:%d: setting with an empty name", f->path,
                      line);
      have_key = true;
      if (!in_profile)
        continue;
      for (int k = 0; k < K_COUNT; k++) {
        if (strlen(key_names[k]) == (size_t)(ke - s) &&
            strncasecmp(s, key_names[k], (size_t)(ke - s)) == 0) {
          f->v[k].ptr = vs < e ? vs : NULL;
          f->v[k].len = (size_t)(e - vs);
          f->v[k].line = line;
        }
      }
    }
  }
  return 0;
}

static int shared_load(const struct weir_aws_options *opts, struct shared *sh, char *err,
                       size_t err_cap) {
  const char *prof = NULL;
  size_t n;
  int rc;

  if (sh->loaded)
    return 0;
  memset(sh, 0, sizeof(*sh));
  sh->files[1].is_config = true;
  if (opts != NULL && opts->profile != NULL && opts->profile[0] != '\0')
    prof = opts->profile;
  else
    prof = env_nonempty("AWS_PROFILE");
  sh->explicit_profile = prof != NULL;
  if (prof == NULL)
    prof = "default";
  n = strlen(prof);
  if (n > WEIR_AWS_PROFILE_MAX)
    return report(WEIR_ETOOBIG, err, err_cap, "profile name longer than %d characters",
                  WEIR_AWS_PROFILE_MAX);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)prof[i] < 0x20 || prof[i] == ']' || prof[i] == 0x7f)
      return report(WEIR_EINVAL, err, err_cap,
                    "profile name has a control character or ']'; use the name in [brackets] "
                    "in the shared files");
  memcpy(sh->profile, prof, n + 1);

  if ((rc = file_path(opts != NULL ? opts->credentials_file : NULL, "AWS_SHARED_CREDENTIALS_FILE",
                      "credentials", sh->files[0].path, sizeof(sh->files[0].path), err, err_cap)) !=
          0 ||
      (rc = file_path(opts != NULL ? opts->config_file : NULL, "AWS_CONFIG_FILE", "config",
                      sh->files[1].path, sizeof(sh->files[1].path), err, err_cap)) != 0)
    goto fail;
  for (int i = 0; i < 2; i++) {
    if ((rc = read_file(&sh->files[i], err, err_cap)) != 0)
      goto fail;
    if (sh->files[i].exists && (rc = ini_scan(&sh->files[i], sh->profile, err, err_cap)) != 0)
      goto fail;
  }
  sh->loaded = true;
  return 0;

fail:
  shared_release(sh);
  return rc;
}

static const char *path_or_none(const struct shared_file *f) {
  return f->path[0] != '\0' ? f->path : "(no home directory)";
}

/* The profile's value for key k: credentials file first, then config file. */
static const struct ini_val *shared_get(const struct shared *sh, int k, const char **path) {
  for (int i = 0; i < 2; i++) {
    if (sh->files[i].v[k].ptr != NULL) {
      if (path != NULL)
        *path = sh->files[i].path;
      return &sh->files[i].v[k];
    }
  }
  return NULL;
}

static int shared_creds(const struct weir_aws_options *opts, struct shared *sh,
                        struct weir_aws_credentials **out, char *err, size_t err_cap) {
  static const int unsupported[] = {K_ROLE_ARN, K_WEB_IDENTITY, K_SSO_START_URL, K_SSO_SESSION};
  const struct shared_file *cf = &sh->files[0], *gf = &sh->files[1];
  int rc;

  if ((rc = shared_load(opts, sh, err, err_cap)) != 0)
    return rc;
  /* The AWS CLI gives these providers precedence over keys in the same profile: using the
   * keys instead would sign as a different identity than the user configured. */
  for (size_t u = 0; u < sizeof(unsupported) / sizeof(unsupported[0]); u++) {
    const char *path;
    const struct ini_val *v = shared_get(sh, unsupported[u], &path);
    if (v != NULL)
      return report(WEIR_EINVAL, err, err_cap,
                    "%s:%d: profile '%s' uses %s, which weir does not support yet; give the "
                    "profile aws_access_key_id and aws_secret_access_key, or set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    path, v->line, sh->profile, key_names[unsupported[u]]);
  }
  for (int i = 0; i < 2; i++) {
    const struct shared_file *f = &sh->files[i];
    const struct ini_val *a = &f->v[K_AKID], *s = &f->v[K_SECRET], *t = &f->v[K_TOKEN];
    struct field akid, secret, token;
    char desc[DESC_MAX];
    enum weir_aws_cred_source src =
        i == 0 ? WEIR_AWS_CRED_CREDENTIALS_FILE : WEIR_AWS_CRED_CONFIG_FILE;

    if (a->ptr == NULL && s->ptr == NULL)
      continue;
    if (a->ptr == NULL || s->ptr == NULL)
      return report(WEIR_EINVAL, err, err_cap, "%s:%d: profile '%s' has %s but no %s", f->path,
                    a->ptr != NULL ? a->line : s->line, sh->profile,
                    key_names[a->ptr != NULL ? K_AKID : K_SECRET],
                    key_names[a->ptr != NULL ? K_SECRET : K_AKID]);
    if (t->ptr == NULL)
      t = &f->v[K_TOKEN_LEGACY];
    snprintf(desc, sizeof(desc), "profile '%s' in %s", sh->profile, f->path);
    akid.ptr = a->ptr;
    akid.len = a->len;
    akid.label = "aws_access_key_id";
    akid.max = WEIR_AWS_ACCESS_KEY_ID_MAX;
    secret.ptr = s->ptr;
    secret.len = s->len;
    secret.label = "aws_secret_access_key";
    secret.max = WEIR_AWS_SECRET_MAX;
    token.ptr = t->ptr;
    token.len = t->ptr != NULL ? t->len : 0;
    token.label = "aws_session_token";
    token.max = WEIR_AWS_SESSION_TOKEN_MAX;
    return creds_make(src, desc, &akid, &secret, &token, out, err, err_cap);
  }
  if (shared_get(sh, K_CRED_PROCESS, NULL) != NULL)
    return report(WEIR_EINVAL, err, err_cap,
                  "profile '%s' uses credential_process, which weir does not support yet; give "
                  "it aws_access_key_id and aws_secret_access_key",
                  sh->profile);
  if (!cf->has_profile && !gf->has_profile) {
    if (sh->explicit_profile)
      return report(WEIR_ENOTFOUND, err, err_cap,
                    "profile '%s' not found in %s or %s (in the config file it is written "
                    "[profile %s])",
                    sh->profile, path_or_none(cf), path_or_none(gf), sh->profile);
    WEIR_LOG_DEBUG("aws: shared files: no profile '%s' in %s or %s", sh->profile, path_or_none(cf),
                   path_or_none(gf));
    return WEIR_ENOTFOUND;
  }
  if (sh->explicit_profile)
    return report(WEIR_ENOTFOUND, err, err_cap,
                  "profile '%s' (%s:%d) has no aws_access_key_id and aws_secret_access_key",
                  sh->profile, cf->has_profile ? cf->path : gf->path,
                  cf->has_profile ? cf->profile_line : gf->profile_line);
  WEIR_LOG_DEBUG("aws: shared files: profile '%s' has no keys", sh->profile);
  return WEIR_ENOTFOUND;
}

int weir__aws_credentials_from_shared(const struct weir_aws_options *opts,
                                      struct weir_aws_credentials **out, char *err,
                                      size_t err_cap) {
  struct shared sh;
  int rc;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  shared_init(&sh);
  rc = shared_creds(opts, &sh, out, err, err_cap);
  shared_release(&sh);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The chain                                                                                  */

static int chain(const struct weir_aws_options *opts, struct shared *sh,
                 struct weir_aws_credentials **out, char *err, size_t err_cap) {
  bool profile_opt = opts != NULL && opts->profile != NULL && opts->profile[0] != '\0';
  int rc;

  if ((rc = weir__aws_credentials_from_static(opts, out, err, err_cap)) != WEIR_ENOTFOUND)
    return rc;
  if (profile_opt) {
    WEIR_LOG_DEBUG("aws: environment credentials skipped: profile '%s' chosen explicitly",
                   opts->profile);
  } else if ((rc = weir__aws_credentials_from_env(out, err, err_cap)) != WEIR_ENOTFOUND) {
    return rc;
  }
  if ((rc = shared_creds(opts, sh, out, err, err_cap)) != WEIR_ENOTFOUND)
    return rc;
  if (sh->explicit_profile)
    return rc; /* already reported, naming the profile */
  return report(WEIR_ENOTFOUND, err, err_cap,
                "no AWS credentials found (tried: static options, environment, profile '%s' in "
                "%s and %s); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add "
                "aws_access_key_id and aws_secret_access_key to the profile",
                sh->profile, path_or_none(&sh->files[0]), path_or_none(&sh->files[1]));
}

int weir__aws_credentials_resolve(const struct weir_aws_options *opts,
                                  struct weir_aws_credentials **out, char *err, size_t err_cap) {
  struct shared sh;
  int rc;

  if (out == NULL)
    return WEIR_EINVAL;
  *out = NULL;
  shared_init(&sh);
  rc = chain(opts, &sh, out, err, err_cap);
  shared_release(&sh);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Region and endpoint                                                                        */

static int copy_out(const char *p, size_t n, char *out, size_t cap, const char *what, char *err,
                    size_t err_cap) {
  if (n + 1 > cap)
    return report(WEIR_ETOOBIG, err, err_cap, "%s does not fit a buffer of %zu bytes", what, cap);
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

static int region_with(const struct weir_aws_options *opts, struct shared *sh, char *out,
                       size_t out_cap, enum weir_aws_setting_source *srcp, char *err,
                       size_t err_cap) {
  enum weir_aws_setting_source src = WEIR_AWS_FROM_OPTIONS;
  char where[PATH_MAX + 32];
  const char *r = NULL;
  size_t n = 0;
  int rc;

  if (opts != NULL && opts->region != NULL && opts->region[0] != '\0') {
    r = opts->region;
    snprintf(where, sizeof(where), "region option");
  } else if ((r = env_nonempty("AWS_REGION")) != NULL) {
    src = WEIR_AWS_FROM_ENV;
    snprintf(where, sizeof(where), "AWS_REGION");
  } else if ((r = env_nonempty("AWS_DEFAULT_REGION")) != NULL) {
    src = WEIR_AWS_FROM_ENV;
    snprintf(where, sizeof(where), "AWS_DEFAULT_REGION");
  }
  if (r != NULL) {
    n = strlen(r);
  } else {
    const struct ini_val *v;
    const char *path = NULL;
    if ((rc = shared_load(opts, sh, err, err_cap)) != 0)
      return rc;
    if ((v = shared_get(sh, K_REGION, &path)) == NULL)
      return report(WEIR_ENOTFOUND, err, err_cap,
                    "no AWS region: set the region option, AWS_REGION, or 'region' in profile "
                    "'%s' in %s",
                    sh->profile, path_or_none(&sh->files[1]));
    r = v->ptr;
    n = v->len;
    src = WEIR_AWS_FROM_PROFILE;
    snprintf(where, sizeof(where), "%s:%d", path, v->line);
  }
  if (n > WEIR_AWS_REGION_MAX)
    return report(WEIR_EINVAL, err, err_cap, "%s: region is longer than %d characters", where,
                  WEIR_AWS_REGION_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = r[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return report(WEIR_EINVAL, err, err_cap,
                    "%s: region '%.*s' is not a region name like us-east-1 (lower-case letters, "
                    "digits and '-')",
                    where, (int)n, r);
  }
  if ((rc = copy_out(r, n, out, out_cap, "region", err, err_cap)) != 0)
    return rc;
  if (srcp != NULL)
    *srcp = src;
  WEIR_LOG_DEBUG("aws: region %s from %s", out, where);
  return 0;
}

static bool env_true(const char *name) {
  const char *v = env_nonempty(name);
  return v != NULL && strcasecmp(v, "true") == 0;
}

static int endpoint_with(const struct weir_aws_options *opts, struct shared *sh,
                         const char *service_id, const char *region, char *out, size_t out_cap,
                         enum weir_aws_setting_source *srcp, char *err, size_t err_cap) {
  enum weir_aws_setting_source src = WEIR_AWS_FROM_OPTIONS;
  char env_name[sizeof(ENV_ENDPOINT_PREFIX) + SERVICE_ID_MAX];
  char where[PATH_MAX + 32];
  char buf[WEIR_AWS_ENDPOINT_MAX + 1];
  const char *u = NULL, *host;
  size_t n, sl;
  int rc;

  sl = service_id != NULL ? strlen(service_id) : 0;
  if (sl == 0 || sl > SERVICE_ID_MAX)
    return report(WEIR_EINVAL, err, err_cap, "endpoint: service id is empty or longer than %d",
                  SERVICE_ID_MAX);
  memcpy(env_name, ENV_ENDPOINT_PREFIX, sizeof(ENV_ENDPOINT_PREFIX) - 1);
  for (size_t i = 0; i < sl; i++) {
    char c = service_id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == ' '))
      return report(WEIR_EINVAL, err, err_cap, "endpoint: service id '%s' is not a name",
                    service_id);
    env_name[sizeof(ENV_ENDPOINT_PREFIX) - 1 + i] = (c == '-' || c == ' ')   ? '_'
                                                    : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A')
                                                                             : c;
  }
  env_name[sizeof(ENV_ENDPOINT_PREFIX) - 1 + sl] = '\0';

  if (opts != NULL && opts->endpoint_url != NULL && opts->endpoint_url[0] != '\0') {
    u = opts->endpoint_url;
    n = strlen(u);
    snprintf(where, sizeof(where), "endpoint_url option");
  } else if (env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
    WEIR_LOG_DEBUG("aws: AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is set: default endpoint");
  } else if ((u = env_nonempty(env_name)) != NULL) {
    src = WEIR_AWS_FROM_ENV;
    n = strlen(u);
    snprintf(where, sizeof(where), "%s", env_name);
  } else if ((u = env_nonempty("AWS_ENDPOINT_URL")) != NULL) {
    src = WEIR_AWS_FROM_ENV;
    n = strlen(u);
    snprintf(where, sizeof(where), "AWS_ENDPOINT_URL");
  } else {
    const struct ini_val *v;
    const char *path = NULL;
    if ((rc = shared_load(opts, sh, err, err_cap)) != 0)
      return rc;
    if ((v = shared_get(sh, K_ENDPOINT, &path)) != NULL) {
      u = v->ptr;
      n = v->len;
      src = WEIR_AWS_FROM_PROFILE;
      snprintf(where, sizeof(where), "%s:%d", path, v->line);
    }
  }

  if (u == NULL) {
    size_t rl = region != NULL ? strlen(region) : 0;
    if (rl == 0)
      return report(WEIR_EINVAL, err, err_cap,
                    "endpoint: no endpoint URL configured and no region to build one from");
    n = (size_t)snprintf(buf, sizeof(buf), "https://%s.%s.amazonaws.com%s", service_id, region,
                         strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    for (size_t i = 8; i < n; i++) /* host names are case-insensitive; AWS spells them lower */
      if (buf[i] >= 'A' && buf[i] <= 'Z')
        buf[i] = (char)(buf[i] - 'A' + 'a');
    if (n >= sizeof(buf))
      return report(WEIR_ETOOBIG, err, err_cap, "endpoint: default URL too long");
    src = WEIR_AWS_FROM_DEFAULT;
    u = buf;
    snprintf(where, sizeof(where), "default for region %s", region);
  }
  while (n > 0 && u[n - 1] == '/')
    n--;
  if (n > WEIR_AWS_ENDPOINT_MAX)
    return report(WEIR_ETOOBIG, err, err_cap, "%s: endpoint URL longer than %d characters", where,
                  WEIR_AWS_ENDPOINT_MAX);
  if (n > 7 && strncasecmp(u, "http://", 7) == 0)
    host = u + 7;
  else if (n > 8 && strncasecmp(u, "https://", 8) == 0)
    host = u + 8;
  else
    return report(WEIR_EINVAL, err, err_cap,
                  "%s: endpoint URL must start with http:// or https:// and name a host, e.g. "
                  "http://127.0.0.1:4567",
                  where);
  for (const char *c = host; c < u + n; c++) {
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
      return report(WEIR_EINVAL, err, err_cap,
                    "%s: endpoint URL contains a space or control character", where);
    /* User information ("user:password@host") could leak into logs; AWS never needs it. */
    if (*c == '@')
      return report(WEIR_EINVAL, err, err_cap,
                    "%s: endpoint URL must not contain user information (user@host)", where);
    if (*c == '/' && c == host)
      return report(WEIR_EINVAL, err, err_cap, "%s: endpoint URL has no host", where);
  }
  if ((rc = copy_out(u, n, out, out_cap, "endpoint URL", err, err_cap)) != 0)
    return rc;
  if (srcp != NULL)
    *srcp = src;
  WEIR_LOG_DEBUG("aws: endpoint %s from %s", out, where);
  return 0;
}

int weir__aws_region_resolve(const struct weir_aws_options *opts, char *out, size_t out_cap,
                             enum weir_aws_setting_source *src, char *err, size_t err_cap) {
  struct shared sh;
  int rc;

  if (out == NULL || out_cap == 0)
    return WEIR_EINVAL;
  out[0] = '\0';
  shared_init(&sh);
  rc = region_with(opts, &sh, out, out_cap, src, err, err_cap);
  shared_release(&sh);
  return rc;
}

int weir__aws_endpoint_resolve(const struct weir_aws_options *opts, const char *service_id,
                               const char *region, char *out, size_t out_cap,
                               enum weir_aws_setting_source *src, char *err, size_t err_cap) {
  struct shared sh;
  int rc;

  if (out == NULL || out_cap == 0)
    return WEIR_EINVAL;
  out[0] = '\0';
  shared_init(&sh);
  rc = endpoint_with(opts, &sh, service_id, region, out, out_cap, src, err, err_cap);
  shared_release(&sh);
  return rc;
}

int weir__aws_resolve(const struct weir_aws_options *opts, const char *service_id,
                      struct weir_aws_resolved *out, char *err, size_t err_cap) {
  struct shared sh;
  int rc;

  if (out == NULL)
    return WEIR_EINVAL;
  memset(out, 0, sizeof(*out));
  shared_init(&sh);
  if ((rc = chain(opts, &sh, &out->creds, err, err_cap)) != 0 ||
      (rc = region_with(opts, &sh, out->region, sizeof(out->region), &out->region_source, err,
                        err_cap)) != 0 ||
      (rc = endpoint_with(opts, &sh, service_id, out->region, out->endpoint, sizeof(out->endpoint),
                          &out->endpoint_source, err, err_cap)) != 0)
    goto fail;
  shared_release(&sh);
  return 0;

fail:
  shared_release(&sh);
  weir__aws_resolved_release(out);
  return rc;
}

void weir__aws_resolved_release(struct weir_aws_resolved *r) {
  if (r == NULL)
    return;
  weir__aws_credentials_free(r->creds);
  memset(r, 0, sizeof(*r));
}
