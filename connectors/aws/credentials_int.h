/*
 * credentials_int.h: AWS credentials, region and endpoint resolution.
 *
 * Credential sources, in the order of the default chain (weir__aws_credentials_resolve):
 *   1. static: the access key id, secret and optional session token given in the options;
 *   2. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN;
 *   3. shared files: the selected profile in the credentials file (AWS_SHARED_CREDENTIALS_FILE,
 *      default ~/.aws/credentials, sections "[name]") and the config file (AWS_CONFIG_FILE,
 *      default ~/.aws/config, sections "[profile name]" except "[default]").
 * The profile is options.profile, else AWS_PROFILE, else "default". As with the AWS CLI, a
 * profile given explicitly in the options skips the environment source. For a setting present
 * in both files (region, endpoint_url) the credentials file wins; the key id, secret and token
 * are taken together from one file (the credentials file first) and never mixed.
 *
 * Region: options.region, else AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region.
 * Endpoint: options.endpoint_url, else AWS_ENDPOINT_URL_<SERVICE> (e.g. AWS_ENDPOINT_URL_KINESIS),
 * else AWS_ENDPOINT_URL, else the profile's endpoint_url, else https://<service>.<region>.
 * amazonaws.com (".com.cn" in cn- regions). AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true disables
 * the environment and profile endpoints (not options.endpoint_url).
 *
 * Not supported yet (reported as an error when a profile needs them, never silently ignored):
 * role_arn (assume role), web identity, SSO; credential_process and instance metadata (IMDS)
 * are not consulted.
 *
 * Secrets: the secret access key and the session token live only inside struct
 * weir_aws_credentials, which is opaque; only the signer (sigv4.c) reads them, through
 * weir__aws_credentials_secrets(). They never appear in a log line or an error message at any
 * level (shared-file errors name file:line, never the line's text), and freeing zeroes them
 * with OPENSSL_cleanse. File buffers that held them are zeroed before they are freed too.
 *
 * Errors: every resolving function returns 0 or a WEIR_E* code; on error it logs the message
 * once at error level and copies it into `err` (NUL-terminated, truncated to err_cap; err may
 * be NULL). A source with nothing to offer returns WEIR_ENOTFOUND without logging an error.
 *
 * Threads: a credentials object is immutable once made: any thread may use it; free it once.
 * The resolving functions read the environment: do not call them concurrently with setenv().
 */
#ifndef WEIR_AWS_CREDENTIALS_INT_H
#define WEIR_AWS_CREDENTIALS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "weir/common.h"

/* IAM: access key ids are 16 to 128 characters (IAM API reference, AccessKey.AccessKeyId). */
#define WEIR_AWS_ACCESS_KEY_ID_MAX 128
/* Secret access keys are 40 characters today; the bound leaves room. */
#define WEIR_AWS_SECRET_MAX 128
/* STS documents no maximum token size ("do not assume one"); observed tokens are under 4 KiB. */
#define WEIR_AWS_SESSION_TOKEN_MAX 16384
/* Region names such as "us-east-1", "ap-southeast-4", "us-gov-west-1"; 64 is ample. */
#define WEIR_AWS_REGION_MAX 64
/* An endpoint URL: scheme, host, port and an optional path. */
#define WEIR_AWS_ENDPOINT_MAX 512
#define WEIR_AWS_PROFILE_MAX 128
/* Shared credentials/config files larger than this are refused (WEIR_ETOOBIG). */
#define WEIR_AWS_SHARED_FILE_MAX (1u << 20)
/* A buffer of this size holds any error message these functions produce. */
#define WEIR_AWS_ERR_MAX 512

/* Where a credentials object came from. */
enum weir_aws_cred_source {
  WEIR_AWS_CRED_STATIC = 1,
  WEIR_AWS_CRED_ENV,
  WEIR_AWS_CRED_CREDENTIALS_FILE,
  WEIR_AWS_CRED_CONFIG_FILE
};

/* Where the region or endpoint came from. */
enum weir_aws_setting_source {
  WEIR_AWS_FROM_DEFAULT = 0, /* endpoint only: built from service and region */
  WEIR_AWS_FROM_OPTIONS,
  WEIR_AWS_FROM_ENV,
  WEIR_AWS_FROM_PROFILE
};

/* Opaque; see the file comment for who may read what. */
struct weir_aws_credentials;

/*
 * What the user configured explicitly. Every field is optional (NULL = not set); strings are
 * borrowed for the duration of the call and copied where kept.
 */
struct weir_aws_options {
  const char *access_key_id;     /* static source: set both this and the secret, or neither */
  const char *secret_access_key; /* static source */
  const char *session_token;     /* static source, optional */
  const char *profile;           /* overrides AWS_PROFILE; skips the environment source */
  const char *credentials_file;  /* overrides AWS_SHARED_CREDENTIALS_FILE */
  const char *config_file;       /* overrides AWS_CONFIG_FILE */
  const char *region;            /* overrides AWS_REGION, AWS_DEFAULT_REGION, the profile */
  const char *endpoint_url;      /* overrides every other endpoint source, e.g. a local server */
};

/* Everything a service client needs, resolved once. */
struct weir_aws_resolved {
  struct weir_aws_credentials *creds; /* owned; freed by weir__aws_resolved_release */
  char region[WEIR_AWS_REGION_MAX + 1];
  char endpoint[WEIR_AWS_ENDPOINT_MAX + 1];
  enum weir_aws_setting_source region_source;
  enum weir_aws_setting_source endpoint_source;
};

/*
 * Static source: credentials from the options' access_key_id/secret_access_key/session_token.
 * WEIR_ENOTFOUND when neither key field is set; WEIR_EINVAL when only one is, or a value is
 * empty or holds a space or control character; WEIR_ETOOBIG past the bounds above; WEIR_ENOMEM.
 * On success *out is owned by the caller (weir__aws_credentials_free).
 */
int weir__aws_credentials_from_static(const struct weir_aws_options *opts,
                                      struct weir_aws_credentials **out, char *err, size_t err_cap);

/*
 * Environment source: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or the
 * legacy AWS_SECURITY_TOKEN). WEIR_ENOTFOUND when AWS_ACCESS_KEY_ID is unset or empty;
 * WEIR_EINVAL when the secret is missing. Errors otherwise as for the static source.
 */
int weir__aws_credentials_from_env(struct weir_aws_credentials **out, char *err, size_t err_cap);

/*
 * Shared-files source for the selected profile (see the file comment). WEIR_ENOTFOUND when
 * the profile is "default" (not chosen explicitly) and neither file has keys for it;
 * WEIR_ENOTFOUND with an error when an explicitly chosen profile is in neither file;
 * WEIR_EPARSE for a malformed file (the message names file:line); WEIR_EINVAL for a profile
 * with a key id but no secret (or the reverse) or one that needs an unsupported provider
 * (role_arn, web identity, SSO); WEIR_EIO when a file exists but cannot be read;
 * WEIR_ETOOBIG for a file over WEIR_AWS_SHARED_FILE_MAX.
 */
int weir__aws_credentials_from_shared(const struct weir_aws_options *opts,
                                      struct weir_aws_credentials **out, char *err, size_t err_cap);

/*
 * The default chain: static, environment (skipped when opts->profile is set), shared files.
 * The first source that has credentials wins; an error in a source stops the chain. When none
 * has any: WEIR_ENOTFOUND and a message saying what was tried and how to fix it.
 * `opts` may be NULL (nothing configured).
 */
int weir__aws_credentials_resolve(const struct weir_aws_options *opts,
                                  struct weir_aws_credentials **out, char *err, size_t err_cap);

/* Zeroes the secrets and frees. NULL is a no-op. */
void weir__aws_credentials_free(struct weir_aws_credentials *c);

/* The access key id (not a secret: it is sent in every Authorization header). Borrowed, valid
 * until the credentials are freed. */
const char *weir__aws_credentials_access_key_id(const struct weir_aws_credentials *c);
/* True when the credentials carry a session token (temporary credentials). */
bool weir__aws_credentials_has_session_token(const struct weir_aws_credentials *c);
enum weir_aws_cred_source weir__aws_credentials_source(const struct weir_aws_credentials *c);
/* Where the credentials came from, for log lines: "environment", "static options",
 * "profile 'dev' in /home/u/.aws/credentials". Never contains a secret. Borrowed. */
const char *weir__aws_credentials_describe(const struct weir_aws_credentials *c);

/*
 * For the signer (sigv4.c) only: borrowed views of the secret access key and the session
 * token (token->len == 0 when there is none), valid until the credentials are freed. Nothing
 * else may call this; nothing may log what it returns.
 */
void weir__aws_credentials_secrets(const struct weir_aws_credentials *c, weir_buf *secret,
                                   weir_buf *token);

/*
 * Region: options, AWS_REGION, AWS_DEFAULT_REGION, then the profile's region. Writes it to
 * out (NUL-terminated). WEIR_ENOTFOUND (with a message) when none is set; WEIR_EINVAL when
 * the value is not a region name ([a-z0-9-]); WEIR_ETOOBIG when out is too small; shared-file
 * errors as for weir__aws_credentials_from_shared. `src` may be NULL.
 */
int weir__aws_region_resolve(const struct weir_aws_options *opts, char *out, size_t out_cap,
                             enum weir_aws_setting_source *src, char *err, size_t err_cap);

/*
 * Endpoint URL for `service_id` (e.g. "kinesis": it names AWS_ENDPOINT_URL_KINESIS and the
 * default host) in `region`. Writes it to out (NUL-terminated, no trailing '/'). WEIR_EINVAL
 * when a configured URL is not http:// or https:// or holds whitespace; WEIR_ETOOBIG when out
 * is too small or the URL exceeds WEIR_AWS_ENDPOINT_MAX. `src` may be NULL.
 */
int weir__aws_endpoint_resolve(const struct weir_aws_options *opts, const char *service_id,
                               const char *region, char *out, size_t out_cap,
                               enum weir_aws_setting_source *src, char *err, size_t err_cap);

/*
 * All three at once (the shared files are read at most once). On success the caller owns
 * out->creds and releases it with weir__aws_resolved_release; on failure *out holds nothing.
 */
int weir__aws_resolve(const struct weir_aws_options *opts, const char *service_id,
                      struct weir_aws_resolved *out, char *err, size_t err_cap);
void weir__aws_resolved_release(struct weir_aws_resolved *r);

#endif /* WEIR_AWS_CREDENTIALS_INT_H */
