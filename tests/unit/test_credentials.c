/*
 * test_credentials.c: AWS credential sources and the default chain, profile selection,
 * credentials-vs-config precedence, shared-file parse errors (file:line), region and endpoint
 * resolution, and a check that no secret ever reaches a log line or an error message.
 *
 * Criterion forks one process per test, so setenv() and the log handler are per test. Each
 * test gets a fresh temporary HOME with no AWS_* variables set.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/aws/credentials_int.h"
#include "connectors/aws/sigv4_int.h"

/* Distinctive values, so that a leak of any part of them is easy to find. */
#define SECRET "Zq7/SECRETvalue+Kx9wJalrXUtnFEMIK7MDENGbPx"
#define SECRET2 "Yp2/OTHERsecret+Lm4aBcDeFgHiJkLmNoPqRsTuVw"
#define TOKEN "IQoJb3JpZ2luX2VjTOKENvalue/sess+ion//////////wEaCXVzLWVhc3QtMSJHMEUCIQD=="
#define AKID "AKIAIOSFODNN7EXAMPLE"
#define AKID2 "AKIAI44QH8DHBEXAMPLE"

static char home[PATH_MAX];

static const char *const aws_vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_SECURITY_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_DEFAULT_PROFILE",
                                       "AWS_REGION",
                                       "AWS_DEFAULT_REGION",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_CONFIG_FILE",
                                       "AWS_ENDPOINT_URL",
                                       "AWS_ENDPOINT_URL_KINESIS",
                                       "AWS_ENDPOINT_URL_DYNAMODB",
                                       "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"};

static void setup(void) {
  char aws[PATH_MAX + 8];
  snprintf(home, sizeof(home), "/tmp/weir-creds-XXXXXX");
  cr_assert_not_null(mkdtemp(home));
  snprintf(aws, sizeof(aws), "%s/.aws", home);
  cr_assert_eq(mkdir(aws, 0700), 0);
  for (size_t i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
    unsetenv(aws_vars[i]);
  setenv("HOME", home, 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void teardown(void) {
  nftw(home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(credentials, .init = setup, .fini = teardown);

/* Writes <home>/<rel> and returns its path (static buffer per slot). */
static const char *write_file(int slot, const char *rel, const char *text) {
  static char paths[4][PATH_MAX + 64];
  FILE *f;
  snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", home, rel);
  f = fopen(paths[slot], "w");
  cr_assert_not_null(f, "%s", paths[slot]);
  fputs(text, f);
  fclose(f);
  return paths[slot];
}

static void expect_creds(struct weir_aws_credentials *c, const char *akid, const char *secret,
                         const char *token) {
  weir_buf s, t;
  cr_assert_not_null(c);
  cr_expect_str_eq(weir__aws_credentials_access_key_id(c), akid);
  weir__aws_credentials_secrets(c, &s, &t);
  cr_expect(s.len == strlen(secret) && memcmp(s.ptr, secret, s.len) == 0, "secret differs");
  if (token == NULL) {
    cr_expect_eq(t.len, 0);
    cr_expect_not(weir__aws_credentials_has_session_token(c));
  } else {
    cr_expect(t.len == strlen(token) && memcmp(t.ptr, token, t.len) == 0, "token differs");
    cr_expect(weir__aws_credentials_has_session_token(c));
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Static and environment                                                                     */

Test(credentials, static_source) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";
  char big[WEIR_AWS_SECRET_MAX + 2];

  cr_expect_eq(weir__aws_credentials_from_static(&o, &c, err, sizeof(err)), WEIR_ENOTFOUND);
  cr_expect_eq(weir__aws_credentials_from_static(NULL, &c, err, sizeof(err)), WEIR_ENOTFOUND);
  o.access_key_id = AKID;
  cr_expect_eq(weir__aws_credentials_from_static(&o, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_not_null(strstr(err, "secret_access_key"), "%s", err);
  o.secret_access_key = SECRET;
  cr_assert_eq(weir__aws_credentials_from_static(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, NULL);
  cr_expect_eq(weir__aws_credentials_source(c), WEIR_AWS_CRED_STATIC);
  cr_expect_str_eq(weir__aws_credentials_describe(c), "static options");
  weir__aws_credentials_free(c);

  o.session_token = TOKEN;
  cr_assert_eq(weir__aws_credentials_from_static(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, TOKEN);
  weir__aws_credentials_free(c);

  /* A stray newline or an over-long value is refused without echoing it. */
  o.secret_access_key = SECRET "\n";
  cr_expect_eq(weir__aws_credentials_from_static(&o, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_null(c);
  cr_expect_not_null(strstr(err, "secret_access_key contains a space or control"), "%s", err);
  memset(big, 'k', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  o.secret_access_key = big;
  cr_expect_eq(weir__aws_credentials_from_static(&o, &c, err, sizeof(err)), WEIR_ETOOBIG);
  weir__aws_credentials_free(NULL);
}

Test(credentials, env_source) {
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";

  cr_expect_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), WEIR_ENOTFOUND);
  setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1); /* secret alone: ignored (warned) */
  cr_expect_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), WEIR_ENOTFOUND);
  unsetenv("AWS_SECRET_ACCESS_KEY");
  setenv("AWS_ACCESS_KEY_ID", AKID, 1);
  cr_expect_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_not_null(strstr(err, "AWS_SECRET_ACCESS_KEY is not"), "%s", err);
  setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
  cr_assert_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, NULL);
  cr_expect_eq(weir__aws_credentials_source(c), WEIR_AWS_CRED_ENV);
  weir__aws_credentials_free(c);
  setenv("AWS_SESSION_TOKEN", TOKEN, 1);
  cr_assert_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, TOKEN);
  weir__aws_credentials_free(c);
  /* The legacy name still works when the new one is unset. */
  unsetenv("AWS_SESSION_TOKEN");
  setenv("AWS_SECURITY_TOKEN", TOKEN, 1);
  cr_assert_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, TOKEN);
  weir__aws_credentials_free(c);
  /* An empty variable counts as unset. */
  setenv("AWS_ACCESS_KEY_ID", "", 1);
  cr_expect_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), WEIR_ENOTFOUND);
}

/* ---------------------------------------------------------------------------------------- */
/* Shared files                                                                               */

Test(credentials, shared_default_profile_in_home) {
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";

  write_file(0, ".aws/credentials",
             "# comment\n"
             "; another comment\n"
             "\n"
             "[default]\n"
             "aws_access_key_id = " AKID "\n"
             "aws_secret_access_key=" SECRET "\n"
             "\n"
             "[dev]\n"
             "aws_access_key_id = " AKID2 "\n"
             "aws_secret_access_key = " SECRET2 "\n"
             "aws_session_token = " TOKEN "\n");
  cr_assert_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, NULL);
  cr_expect_eq(weir__aws_credentials_source(c), WEIR_AWS_CRED_CREDENTIALS_FILE);
  cr_expect_not_null(strstr(weir__aws_credentials_describe(c), "profile 'default' in "));
  cr_expect_not_null(strstr(weir__aws_credentials_describe(c), "/.aws/credentials"));
  weir__aws_credentials_free(c);

  /* AWS_PROFILE selects another section. */
  setenv("AWS_PROFILE", "dev", 1);
  cr_assert_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID2, SECRET2, TOKEN);
  weir__aws_credentials_free(c);

  /* The options' profile beats AWS_PROFILE. */
  {
    struct weir_aws_options o = {0};
    o.profile = "default";
    cr_assert_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), 0, "%s", err);
    expect_creds(c, AKID, SECRET, NULL);
    weir__aws_credentials_free(c);
    /* A chosen profile that does not exist is an error naming it. */
    o.profile = "nope";
    cr_expect_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), WEIR_ENOTFOUND);
    cr_expect_not_null(strstr(err, "profile 'nope' not found"), "%s", err);
  }
}

Test(credentials, shared_config_file_profiles) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";

  /* In the config file a profile is "[profile name]"; a bare "[name]" is not a profile. */
  write_file(1, ".aws/config",
             "[default]\n"
             "region = eu-west-1\n"
             "[dev]\n"
             "aws_access_key_id = WRONGKEYID00000000\n"
             "aws_secret_access_key = " SECRET2 "\n"
             "[profile   dev]\n"
             "aws_access_key_id = " AKID2 "\n"
             "aws_secret_access_key = " SECRET2 "\n"
             "s3 =\n"
             "  max_concurrent_requests = 20\n"
             "[sso-session corp]\n"
             "sso_start_url = https://example.awsapps.com/start\n");
  o.profile = "dev";
  cr_assert_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID2, SECRET2, NULL);
  cr_expect_eq(weir__aws_credentials_source(c), WEIR_AWS_CRED_CONFIG_FILE);
  weir__aws_credentials_free(c);
  /* [default] has only a region: no credentials, not an error. */
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_ENOTFOUND);
  cr_expect_null(c);
}

Test(credentials, credentials_file_wins_over_config) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "", region[WEIR_AWS_REGION_MAX + 1];
  enum weir_aws_setting_source src;

  write_file(0, ".aws/credentials",
             "[default]\n"
             "aws_access_key_id = " AKID "\n"
             "aws_secret_access_key = " SECRET "\n"
             "region = us-west-2\n");
  write_file(1, ".aws/config",
             "[default]\n"
             "aws_access_key_id = " AKID2 "\n"
             "aws_secret_access_key = " SECRET2 "\n"
             "aws_session_token = " TOKEN "\n"
             "region = eu-central-1\n"
             "[profile cfgonly]\n"
             "aws_access_key_id = " AKID2 "\n"
             "aws_secret_access_key = " SECRET2 "\n"
             "region = ap-south-1\n");
  cr_assert_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), 0, "%s", err);
  /* Keys from the credentials file, as a set: the config file's token is not mixed in. */
  expect_creds(c, AKID, SECRET, NULL);
  weir__aws_credentials_free(c);
  cr_assert_eq(weir__aws_region_resolve(NULL, region, sizeof(region), &src, err, sizeof(err)), 0);
  cr_expect_str_eq(region, "us-west-2");
  cr_expect_eq(src, WEIR_AWS_FROM_PROFILE);
  /* A profile only in the config file takes its keys and region from there. */
  o.profile = "cfgonly";
  cr_assert_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID2, SECRET2, NULL);
  weir__aws_credentials_free(c);
  cr_assert_eq(weir__aws_region_resolve(&o, region, sizeof(region), NULL, err, sizeof(err)), 0);
  cr_expect_str_eq(region, "ap-south-1");
}

Test(credentials, shared_file_env_and_option_paths) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";
  char alt[PATH_MAX + 8];
  const char *p1, *p2;

  snprintf(alt, sizeof(alt), "%s/alt", home);
  cr_assert_eq(mkdir(alt, 0700), 0);
  write_file(0, ".aws/credentials",
             "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET "\n");
  p1 = write_file(1, "alt/creds",
                  "\xEF\xBB\xBF[default]\r\naws_access_key_id = " AKID2
                  "\r\naws_secret_access_key = " SECRET2 "\r\n");
  p2 = write_file(2, "alt/creds2",
                  "[default]\naws_access_key_id = AKIAOPTIONPATH000000\n"
                  "aws_secret_access_key = " SECRET "\n");
  /* AWS_SHARED_CREDENTIALS_FILE replaces ~/.aws/credentials (CRLF and a BOM are fine). */
  setenv("AWS_SHARED_CREDENTIALS_FILE", p1, 1);
  cr_assert_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID2, SECRET2, NULL);
  weir__aws_credentials_free(c);
  /* The option replaces both. */
  o.credentials_file = p2;
  cr_assert_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, "AKIAOPTIONPATH000000", SECRET, NULL);
  weir__aws_credentials_free(c);
  /* "~/" is the home directory. */
  o.credentials_file = "~/.aws/credentials";
  cr_assert_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID, SECRET, NULL);
  weir__aws_credentials_free(c);
  /* AWS_CONFIG_FILE names the config file; a missing file is simply absent. */
  unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  o.credentials_file = "/nonexistent/weir/credentials";
  setenv("AWS_CONFIG_FILE",
         write_file(3, "alt/config",
                    "[profile x]\naws_access_key_id = " AKID2 "\naws_secret_access_key = " SECRET2
                    "\n"),
         1);
  o.profile = "x";
  cr_assert_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), 0, "%s", err);
  expect_creds(c, AKID2, SECRET2, NULL);
  weir__aws_credentials_free(c);
  /* A directory in place of the file is an I/O error naming it. */
  o.credentials_file = alt;
  cr_expect_eq(weir__aws_credentials_from_shared(&o, &c, err, sizeof(err)), WEIR_EIO);
  cr_expect_not_null(strstr(err, alt), "%s", err);
}

static void expect_parse_error(const char *text, int line) {
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "", want[PATH_MAX + 32];
  const char *path = write_file(0, ".aws/credentials", text);

  snprintf(want, sizeof(want), "%s:%d: ", path, line);
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_EPARSE, "for %s",
               text);
  cr_expect_null(c);
  cr_expect(strncmp(err, want, strlen(want)) == 0, "error '%s' should start with '%s'", err, want);
  cr_expect_null(strstr(err, SECRET), "the secret leaked into: %s", err);
}

Test(credentials, malformed_files_name_file_and_line) {
  /* A key line without '=' (holding a secret: the message must not quote it). */
  expect_parse_error(
      "[default]\naws_access_key_id = " AKID "\n\naws_secret_access_key " SECRET "\n", 4);
  expect_parse_error("# c\n[default\naws_access_key_id = x\n", 2);
  expect_parse_error("aws_access_key_id = " AKID "\n[default]\n", 1);
  expect_parse_error("[default]\n[ ]\n", 2);
  expect_parse_error("[default]\n = " SECRET "\n", 2);
  /* The config file is checked too, even when the credentials file is fine. */
  {
    struct weir_aws_credentials *c = NULL;
    char err[WEIR_AWS_ERR_MAX] = "", want[PATH_MAX + 32];
    const char *cfg;
    write_file(0, ".aws/credentials",
               "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET "\n");
    cfg = write_file(1, ".aws/config", "[default]\nregion = us-east-1\n\n\noops\n");
    snprintf(want, sizeof(want), "%s:5: ", cfg);
    cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_EPARSE);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "%s", err);
  }
}

Test(credentials, incomplete_and_unsupported_profiles) {
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";
  const char *path;

  path = write_file(0, ".aws/credentials", "[default]\n\naws_access_key_id = " AKID "\n");
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_not_null(strstr(err, path), "%s", err);
  cr_expect_not_null(strstr(err, ":3: profile 'default' has aws_access_key_id but no "
                                 "aws_secret_access_key"),
                     "%s", err);
  write_file(0, ".aws/credentials", "[default]\naws_secret_access_key = " SECRET "\n");
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_null(strstr(err, SECRET), "%s", err);
  /* Empty values count as unset. */
  write_file(0, ".aws/credentials", "[default]\naws_access_key_id =\naws_secret_access_key =   \n");
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_ENOTFOUND);
  /* A role profile would sign as another identity: refused, not ignored. */
  write_file(0, ".aws/credentials",
             "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET "\n");
  write_file(1, ".aws/config", "[default]\nrole_arn = arn:aws:iam::123456789012:role/x\n");
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_not_null(strstr(err, "uses role_arn, which weir does not support yet"), "%s", err);
  write_file(1, ".aws/config", "[profile p]\ncredential_process = /bin/true\n");
  setenv("AWS_PROFILE", "p", 1);
  cr_expect_eq(weir__aws_credentials_from_shared(NULL, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_not_null(strstr(err, "credential_process"), "%s", err);
}

/* ---------------------------------------------------------------------------------------- */
/* The chain                                                                                  */

Test(credentials, chain_order) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *c = NULL;
  char err[WEIR_AWS_ERR_MAX] = "";

  /* Nothing anywhere: ENOTFOUND with a message saying what to do. */
  cr_expect_eq(weir__aws_credentials_resolve(NULL, &c, err, sizeof(err)), WEIR_ENOTFOUND);
  cr_expect_not_null(strstr(err, "no AWS credentials found"), "%s", err);
  cr_expect_not_null(strstr(err, "AWS_ACCESS_KEY_ID"), "%s", err);

  /* Files only. */
  write_file(0, ".aws/credentials",
             "[default]\naws_access_key_id = AKIAFILEFILEFILE0000\naws_secret_access_key = " SECRET
             "\n[named]\naws_access_key_id = AKIANAMEDNAMED000000\naws_secret_access_key = " SECRET
             "\n");
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(weir__aws_credentials_access_key_id(c), "AKIAFILEFILEFILE0000");
  weir__aws_credentials_free(c);

  /* Environment beats files. */
  setenv("AWS_ACCESS_KEY_ID", "AKIAENVENVENVENV0000", 1);
  setenv("AWS_SECRET_ACCESS_KEY", SECRET2, 1);
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(weir__aws_credentials_access_key_id(c), "AKIAENVENVENVENV0000");
  cr_expect_eq(weir__aws_credentials_source(c), WEIR_AWS_CRED_ENV);
  weir__aws_credentials_free(c);

  /* AWS_PROFILE does not skip the environment... */
  setenv("AWS_PROFILE", "named", 1);
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(weir__aws_credentials_access_key_id(c), "AKIAENVENVENVENV0000");
  weir__aws_credentials_free(c);
  /* ...but a profile given in the options does (as the AWS CLI's --profile). */
  o.profile = "named";
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(weir__aws_credentials_access_key_id(c), "AKIANAMEDNAMED000000");
  weir__aws_credentials_free(c);

  /* Static options beat everything. */
  o.access_key_id = "AKIASTATICSTATIC0000";
  o.secret_access_key = SECRET;
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(weir__aws_credentials_access_key_id(c), "AKIASTATICSTATIC0000");
  cr_expect_eq(weir__aws_credentials_source(c), WEIR_AWS_CRED_STATIC);
  weir__aws_credentials_free(c);

  /* An error in an earlier source stops the chain (no silent fall-through). */
  o.access_key_id = NULL;
  o.secret_access_key = NULL;
  o.profile = NULL;
  unsetenv("AWS_SECRET_ACCESS_KEY");
  cr_expect_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_null(c);
  /* An explicit profile that is missing is reported as such. */
  unsetenv("AWS_ACCESS_KEY_ID");
  setenv("AWS_PROFILE", "ghost", 1);
  cr_expect_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), WEIR_ENOTFOUND);
  cr_expect_not_null(strstr(err, "profile 'ghost' not found"), "%s", err);
}

/* ---------------------------------------------------------------------------------------- */
/* Region and endpoint                                                                        */

Test(credentials, region_resolution) {
  struct weir_aws_options o = {0};
  char r[WEIR_AWS_REGION_MAX + 1], err[WEIR_AWS_ERR_MAX] = "", tiny[4];
  enum weir_aws_setting_source src;

  cr_expect_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), WEIR_ENOTFOUND);
  cr_expect_not_null(strstr(err, "no AWS region"), "%s", err);
  write_file(1, ".aws/config", "[default]\nregion = ca-central-1\n[profile p]\nregion=sa-east-1\n");
  cr_assert_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(r, "ca-central-1");
  cr_expect_eq(src, WEIR_AWS_FROM_PROFILE);
  setenv("AWS_PROFILE", "p", 1);
  cr_assert_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), 0, "%s", err);
  cr_expect_str_eq(r, "sa-east-1");
  setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
  cr_assert_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), 0);
  cr_expect_str_eq(r, "eu-west-3");
  cr_expect_eq(src, WEIR_AWS_FROM_ENV);
  setenv("AWS_REGION", "eu-north-1", 1);
  cr_assert_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), 0);
  cr_expect_str_eq(r, "eu-north-1");
  o.region = "us-gov-west-1";
  cr_assert_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), 0);
  cr_expect_str_eq(r, "us-gov-west-1");
  cr_expect_eq(src, WEIR_AWS_FROM_OPTIONS);
  cr_expect_eq(weir__aws_region_resolve(&o, tiny, sizeof(tiny), &src, err, sizeof(err)),
               WEIR_ETOOBIG);
  o.region = "US East";
  cr_expect_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), WEIR_EINVAL);
  cr_expect_not_null(strstr(err, "region option: region 'US East' is not a region name"), "%s",
                     err);
  /* A malformed file is reported when the region has to come from it. */
  o.region = NULL;
  unsetenv("AWS_REGION");
  unsetenv("AWS_DEFAULT_REGION");
  write_file(1, ".aws/config", "[profile p]\nregion\n");
  cr_expect_eq(weir__aws_region_resolve(&o, r, sizeof(r), &src, err, sizeof(err)), WEIR_EPARSE);
  cr_expect_not_null(strstr(err, "config:2: "), "%s", err);
}

Test(credentials, endpoint_resolution) {
  struct weir_aws_options o = {0};
  char e[WEIR_AWS_ENDPOINT_MAX + 1], err[WEIR_AWS_ERR_MAX] = "";
  enum weir_aws_setting_source src;

  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0, "%s", err);
  cr_expect_str_eq(e, "https://kinesis.us-east-1.amazonaws.com");
  cr_expect_eq(src, WEIR_AWS_FROM_DEFAULT);
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "cn-north-1", e, sizeof(e), &src, err, sizeof(err)),
      0);
  cr_expect_str_eq(e, "https://kinesis.cn-north-1.amazonaws.com.cn");
  cr_expect_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", NULL, e, sizeof(e), &src, err, sizeof(err)),
      WEIR_EINVAL);

  write_file(1, ".aws/config", "[default]\nendpoint_url = http://localhost:4566/\n");
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0, "%s", err);
  cr_expect_str_eq(e, "http://localhost:4566");
  cr_expect_eq(src, WEIR_AWS_FROM_PROFILE);
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", 1);
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0);
  cr_expect_str_eq(e, "http://127.0.0.1:9000");
  cr_expect_eq(src, WEIR_AWS_FROM_ENV);
  setenv("AWS_ENDPOINT_URL_KINESIS", "https://127.0.0.1:4567/", 1);
  setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000", 1);
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0);
  cr_expect_str_eq(e, "https://127.0.0.1:4567");
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "dynamodb", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0);
  cr_expect_str_eq(e, "http://127.0.0.1:8000");
  /* AWS_IGNORE_CONFIGURED_ENDPOINT_URLS drops environment and profile endpoints. */
  setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0);
  cr_expect_str_eq(e, "https://kinesis.us-east-1.amazonaws.com");
  /* ...but not the explicit option, which beats everything. */
  o.endpoint_url = "http://127.0.0.1:4568";
  cr_assert_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      0);
  cr_expect_str_eq(e, "http://127.0.0.1:4568");
  cr_expect_eq(src, WEIR_AWS_FROM_OPTIONS);
  /* Malformed URLs. */
  o.endpoint_url = "127.0.0.1:4567";
  cr_expect_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      WEIR_EINVAL);
  cr_expect_not_null(strstr(err, "http:// or https://"), "%s", err);
  o.endpoint_url = "http://user:" SECRET "@127.0.0.1";
  cr_expect_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      WEIR_EINVAL);
  cr_expect_null(strstr(err, SECRET), "%s", err);
  o.endpoint_url = "http://a b";
  cr_expect_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      WEIR_EINVAL);
  o.endpoint_url = "http:///path";
  cr_expect_eq(
      weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      WEIR_EINVAL);
  cr_expect_eq(
      weir__aws_endpoint_resolve(&o, "", "us-east-1", e, sizeof(e), &src, err, sizeof(err)),
      WEIR_EINVAL);
}

Test(credentials, resolve_all) {
  struct weir_aws_options o = {0};
  struct weir_aws_resolved r;
  char err[WEIR_AWS_ERR_MAX] = "";

  write_file(0, ".aws/credentials",
             "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET
             "\naws_session_token = " TOKEN "\n");
  write_file(1, ".aws/config", "[default]\nregion = eu-west-1\n");
  setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:4567", 1);
  cr_assert_eq(weir__aws_resolve(&o, "kinesis", &r, err, sizeof(err)), 0, "%s", err);
  expect_creds(r.creds, AKID, SECRET, TOKEN);
  cr_expect_str_eq(r.region, "eu-west-1");
  cr_expect_eq(r.region_source, WEIR_AWS_FROM_PROFILE);
  cr_expect_str_eq(r.endpoint, "http://127.0.0.1:4567");
  cr_expect_eq(r.endpoint_source, WEIR_AWS_FROM_ENV);
  weir__aws_resolved_release(&r);
  cr_expect_null(r.creds);
  /* Failure leaves nothing to release. */
  write_file(1, ".aws/config", "[default]\n");
  cr_expect_eq(weir__aws_resolve(&o, "kinesis", &r, err, sizeof(err)), WEIR_ENOTFOUND);
  cr_expect_null(r.creds);
  weir__aws_resolved_release(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* No secret in any log line or error message                                                 */

struct capture {
  char *all; /* every message, newline-separated */
  size_t len;
  int lines;
};

static struct capture cap;

static void capture_cb(void *data, weir_log_level level, const char *msg) {
  size_t n = strlen(msg);
  (void)data;
  (void)level;
  cap.all = realloc(cap.all, cap.len + n + 2);
  memcpy(cap.all + cap.len, msg, n);
  cap.len += n;
  cap.all[cap.len++] = '\n';
  cap.all[cap.len] = '\0';
  cap.lines++;
}

/* Fails if any 8-character window of `secret` occurs in `text`. */
static void expect_no_part_of(const char *text, const char *secret, const char *what) {
  size_t n = strlen(secret);
  for (size_t i = 0; i + 8 <= n; i++) {
    char win[9];
    memcpy(win, secret + i, 8);
    win[8] = '\0';
    cr_expect_null(strstr(text, win), "%s: '%s' (part of a secret) appears in:\n%s", what, win,
                   text);
  }
}

static void check_err(const char *err) {
  expect_no_part_of(err, SECRET, "error message");
  expect_no_part_of(err, SECRET2, "error message");
  expect_no_part_of(err, TOKEN, "error message");
}

Test(credentials, secrets_never_logged) {
  struct weir_aws_options o = {0};
  struct weir_aws_credentials *c = NULL;
  struct weir_aws_resolved r;
  struct weir_sigv4_signer *s = NULL;
  struct weir_sigv4_config cfg;
  char err[WEIR_AWS_ERR_MAX], out[8192], region[WEIR_AWS_REGION_MAX + 1];
  char endpoint[WEIR_AWS_ENDPOINT_MAX + 1];
  int rc;

  weir_log_set_handler(capture_cb, NULL, WEIR_LOG_DEBUG);

  /* Every source, successful. */
  o.access_key_id = AKID;
  o.secret_access_key = SECRET;
  o.session_token = TOKEN;
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0);
  weir__aws_credentials_free(c);
  memset(&o, 0, sizeof(o));
  setenv("AWS_ACCESS_KEY_ID", AKID, 1);
  setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
  setenv("AWS_SESSION_TOKEN", TOKEN, 1);
  cr_assert_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), 0);
  weir__aws_credentials_free(c);
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_SESSION_TOKEN");
  write_file(0, ".aws/credentials",
             "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET
             "\naws_session_token = " TOKEN "\n");
  write_file(
      1, ".aws/config",
      "[default]\nregion = us-east-1\n[profile c]\nregion = us-west-1\naws_access_key_id = " AKID2
      "\naws_secret_access_key = " SECRET2 "\n");
  cr_assert_eq(weir__aws_resolve(&o, "kinesis", &r, err, sizeof(err)), 0);
  weir__aws_resolved_release(&r);
  o.profile = "c";
  cr_assert_eq(weir__aws_resolve(&o, "kinesis", &r, err, sizeof(err)), 0);

  /* Signing, both modes, and the signer's error paths. */
  cfg.creds = r.creds;
  cfg.region = "us-east-1";
  cfg.service = "kinesis";
  cfg.flags = 0;
  cr_assert_eq(weir__sigv4_signer_create(&cfg, &s), 0);
  {
    struct weir_sigv4_header h[2] = {{{(const uint8_t *)"Host", 4}, {(const uint8_t *)"h", 1}},
                                     {{(const uint8_t *)"X-Amz-Security-Token", 20},
                                      {(const uint8_t *)TOKEN "\r\n", sizeof(TOKEN) + 1}}};
    struct weir_sigv4_request q;
    memset(&q, 0, sizeof(q));
    q.method.ptr = (const uint8_t *)"POST";
    q.method.len = 4;
    q.headers = h;
    q.n_headers = 1;
    q.amz_date = "20150830T123600Z";
    cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), 0);
    cr_expect_eq(weir__sigv4_sign(s, &q, out, 16, NULL), WEIR_ETOOBIG);
    q.expires = 60;
    cr_expect_eq(weir__sigv4_presign(s, &q, out, sizeof(out), NULL), 0);
    cr_expect_eq(weir__sigv4_presign(s, &q, out, 40, NULL), WEIR_ETOOBIG);
    q.expires = 0;
    q.n_headers = 2; /* a token value with CR LF: refused, value not logged */
    cr_expect_eq(weir__sigv4_sign(s, &q, out, sizeof(out), NULL), WEIR_EINVAL);
  }
  weir__sigv4_signer_destroy(s);
  weir__aws_resolved_release(&r);
  o.profile = NULL;

  /* Every error path, with the secrets placed where a careless message would echo them. */
  memset(err, 0, sizeof(err));
  o.access_key_id = SECRET; /* swapped fields */
  o.secret_access_key = AKID " " SECRET;
  rc = weir__aws_credentials_resolve(&o, &c, err, sizeof(err));
  cr_expect_eq(rc, WEIR_EINVAL);
  check_err(err);
  o.access_key_id = AKID;
  o.secret_access_key = SECRET;
  o.session_token = TOKEN "\n";
  cr_expect_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), WEIR_EINVAL);
  check_err(err);
  o.access_key_id = NULL;
  cr_expect_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), WEIR_EINVAL);
  check_err(err);
  memset(&o, 0, sizeof(o));
  setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
  setenv("AWS_SESSION_TOKEN", TOKEN, 1);
  cr_expect_eq(weir__aws_credentials_from_env(&c, err, sizeof(err)), WEIR_ENOTFOUND);
  setenv("AWS_ACCESS_KEY_ID", AKID, 1);
  setenv("AWS_SECRET_ACCESS_KEY", SECRET " trailing", 1);
  cr_expect_eq(weir__aws_credentials_resolve(&o, &c, err, sizeof(err)), WEIR_EINVAL);
  check_err(err);
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_SESSION_TOKEN");
  static const char *const bad_files[] = {
      "[default]\naws_secret_access_key " SECRET "\n",
      "[default]\naws_session_token " TOKEN "\n",
      SECRET "\n",
      "[" SECRET "\n",
      "aws_secret_access_key = " SECRET "\n[default]\n",
      "[default]\naws_secret_access_key = " SECRET "\n",
      "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET " x\n",
      "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET
      "\naws_session_token = " TOKEN " \x01\n",
      "[default]\naws_access_key_id = " AKID "\naws_secret_access_key = " SECRET
      "\nrole_arn = arn:aws:iam::1:role/" SECRET2 "\n",
  };
  for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
    write_file(0, ".aws/credentials", bad_files[i]);
    memset(err, 0, sizeof(err));
    rc = weir__aws_credentials_resolve(&o, &c, err, sizeof(err));
    cr_expect_neq(rc, 0, "bad file %zu accepted", i);
    cr_expect_neq(err[0], '\0', "bad file %zu: no message", i);
    check_err(err);
    rc = weir__aws_region_resolve(&o, region, sizeof(region), NULL, err, sizeof(err));
    check_err(err);
    rc = weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", endpoint, sizeof(endpoint), NULL,
                                    err, sizeof(err));
    check_err(err);
  }
  o.endpoint_url = "https://x:" SECRET "@kinesis.example";
  cr_expect_eq(weir__aws_endpoint_resolve(&o, "kinesis", "us-east-1", endpoint, sizeof(endpoint),
                                          NULL, err, sizeof(err)),
               WEIR_EINVAL);
  check_err(err);

  cr_expect_gt(cap.lines, 20, "expected many debug and error lines, got %d", cap.lines);
  cr_assert_not_null(cap.all);
  expect_no_part_of(cap.all, SECRET, "log");
  expect_no_part_of(cap.all, SECRET2, "log");
  expect_no_part_of(cap.all, TOKEN, "log");
  /* Sanity: the log did see the non-secret context. */
  cr_expect_not_null(strstr(cap.all, "credentials from environment"), "%s", cap.all);
  cr_expect_not_null(strstr(cap.all, ":2: "), "%s", cap.all);
  free(cap.all);
  weir_log_set_handler(NULL, NULL, WEIR_LOG_INFO);
}
