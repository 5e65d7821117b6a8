/*
 * weir/kinesis.h: connecting to Amazon Kinesis Data Streams (or a compatible server).
 *
 * A weir_kinesis_config says where and as whom: region, endpoint, credentials, TLS and
 * timeouts. Every field is optional: unset fields come from the environment and the shared AWS
 * files the way the AWS CLI reads them (AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_KINESIS
 * / AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE,
 * ~/.aws/credentials and ~/.aws/config). Stream names are given per source or sink.
 *
 * Secrets given here are copied into the client, used only to sign requests, never logged, and
 * zeroed when the client is destroyed.
 */
#ifndef WEIR_KINESIS_H
#define WEIR_KINESIS_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_kinesis_config {
  const char *region;            /* e.g. "eu-west-1"; NULL = environment, then profile */
  const char *endpoint;          /* e.g. "http://127.0.0.1:4567"; NULL = environment, profile,
                                    then https://kinesis.<region>.amazonaws.com */
  const char *access_key_id;     /* static credentials: set both this and the secret, or neither
                                    (NULL = environment, then shared files) */
  const char *secret_access_key; /* static credentials */
  const char *session_token;     /* static temporary credentials; optional */
  const char *profile;           /* shared-file profile; NULL = AWS_PROFILE, else "default" */
  const char *ca_file;           /* PEM file of CAs to trust instead of the system's; NULL =
                                    system store. TLS verification cannot be turned off. */
  int64_t connect_timeout_ms;    /* 0 = 10000 */
  int64_t request_timeout_ms;    /* whole request, response included; 0 = 30000 */
} weir_kinesis_config;

/* A connection to the service: credentials, signer, HTTP connection, buffers. One thread at a
 * time; make one per thread. */
typedef struct weir_kinesis_client weir_kinesis_client;

/*
 * Resolves region, endpoint and credentials and makes a client. `cfg` and its strings are
 * copied (may be freed after the call); NULL = all defaults. Returns 0, WEIR_EINVAL (bad
 * value), WEIR_ENOTFOUND (no credentials or no region found: the logged message says what was
 * tried), WEIR_EPARSE (a malformed shared file), WEIR_ENOMEM or WEIR_EIO. On success *out is
 * owned by the caller: weir_kinesis_client_destroy. Any thread.
 */
WEIR_API int weir_kinesis_client_create(weir_kinesis_client **out, const weir_kinesis_config *cfg);

/* Closes the connection, zeroes the secrets and frees. NULL is a no-op. */
WEIR_API void weir_kinesis_client_destroy(weir_kinesis_client *client);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_KINESIS_H */
