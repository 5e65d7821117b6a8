/* ops.c: the Kinesis operations: request bodies out, typed results in. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/kinesis/client_int.h"
#include "runtime/log_int.h"
#include "weir/record.h"

/* ---- small helpers ---------------------------------------------------------------------- */

/* A member that is absent or JSON null (kinesis-local sends null for absent) is "absent". */
static const char *get_str(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);

  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Copies string member `key` into dst (cap bytes). Absent -> "" (or WEIR_EPARSE if required);
 * too long -> WEIR_EPARSE (longer than the service's own limit: not a Kinesis response). */
static int copy_member(char *dst, size_t cap, const json_t *obj, const char *key, bool required) {
  const json_t *v = json_object_get(obj, key);
  size_t n;

  dst[0] = '\0';
  if (!json_is_string(v))
    return required ? WEIR_EPARSE : 0;
  n = json_string_length(v);
  if (n >= cap)
    return WEIR_EPARSE;
  memcpy(dst, json_string_value(v), n + 1);
  return 0;
}

/* Epoch seconds (integer or fraction, any notation) -> milliseconds. */
static int64_t epoch_ms(const json_t *v) {
  double d = json_number_value(v) * 1000.0;

  return (int64_t)(d < 0 ? d - 0.5 : d + 0.5);
}

static bool is_decimal(const char *s, size_t max_digits) {
  size_t n = strlen(s);

  if (n == 0 || n > max_digits || (n > 1 && s[0] == '0'))
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static bool valid_name(const char *s, size_t max) {
  return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

/* Records a client-side failure (bad response, bad argument) as the last error. */
static int local_error(weir_kinesis_client *c, enum weir_kinesis_op op, int rc, const char *what) {
  memset(&c->err, 0, sizeof(c->err));
  snprintf(c->err.code, sizeof(c->err.code), "%s", weir_err_name(rc));
  snprintf(c->err.message, sizeof(c->err.message), "%s", what);
  c->err.cls = WEIR_KINESIS_ERR_FATAL;
  c->err.rc = rc;
  if (rc == WEIR_EPARSE)
    WEIR_LOG_ERR("[kinesis %s] malformed response: %s", weir__kinesis_op_name(op), what);
  return rc;
}

/* Sends the body built in c->body and parses the response as a JSON object into *root (NULL
 * for an empty body, which CreateStream and friends may return). */
static int call_json(weir_kinesis_client *c, enum weir_kinesis_op op, const char *stream,
                     json_t **root) {
  const uint8_t *resp;
  size_t len;
  json_error_t jerr;
  int rc;

  *root = NULL;
  if (c->body.err != 0)
    return local_error(c, op, c->body.err, "request body exceeds the request size bound");
  rc = weir__kinesis_call(c, op, stream, (const uint8_t *)c->body.p, c->body.len, &resp, &len);
  if (rc != 0)
    return rc;
  if (len == 0)
    return 0;
  *root = json_loadb((const char *)resp, len, 0, &jerr);
  if (!json_is_object(*root)) {
    json_decref(*root);
    *root = NULL;
    return local_error(c, op, WEIR_EPARSE, jerr.text);
  }
  return 0;
}

static void begin_stream_body(weir_kinesis_client *c, const char *stream) {
  weir__kjson_reset(&c->body);
  weir__kjson_lit(&c->body, "{\"StreamName\":");
  weir__kjson_cstr(&c->body, stream);
}

/* ---- ListShards --------------------------------------------------------------------------- */

static const char *const filter_names[] = {
    [WEIR_KINESIS_FILTER_AFTER_SHARD_ID] = "AFTER_SHARD_ID",
    [WEIR_KINESIS_FILTER_AT_TRIM_HORIZON] = "AT_TRIM_HORIZON",
    [WEIR_KINESIS_FILTER_FROM_TRIM_HORIZON] = "FROM_TRIM_HORIZON",
    [WEIR_KINESIS_FILTER_AT_LATEST] = "AT_LATEST",
    [WEIR_KINESIS_FILTER_AT_TIMESTAMP] = "AT_TIMESTAMP",
    [WEIR_KINESIS_FILTER_FROM_TIMESTAMP] = "FROM_TIMESTAMP",
};

static int parse_hash_range(const json_t *obj, struct weir_kinesis_hash_range *r) {
  const json_t *hr = json_object_get(obj, "HashKeyRange");
  int rc;

  if (!json_is_object(hr))
    return WEIR_EPARSE;
  if ((rc = copy_member(r->start, sizeof(r->start), hr, "StartingHashKey", true)) != 0)
    return rc;
  return copy_member(r->end, sizeof(r->end), hr, "EndingHashKey", true);
}

static int parse_shard(const json_t *o, struct weir_kinesis_shard *s) {
  const json_t *sr = json_object_get(o, "SequenceNumberRange");
  int rc;

  if (!json_is_object(o) || !json_is_object(sr))
    return WEIR_EPARSE;
  if ((rc = copy_member(s->shard_id, sizeof(s->shard_id), o, "ShardId", true)) != 0 ||
      (rc = copy_member(s->parent_shard_id, sizeof(s->parent_shard_id), o, "ParentShardId",
                        false)) != 0 ||
      (rc = copy_member(s->adjacent_parent_shard_id, sizeof(s->adjacent_parent_shard_id), o,
                        "AdjacentParentShardId", false)) != 0 ||
      (rc = parse_hash_range(o, &s->hash_range)) != 0 ||
      (rc = copy_member(s->starting_seq, sizeof(s->starting_seq), sr, "StartingSequenceNumber",
                        true)) != 0 ||
      (rc = copy_member(s->ending_seq, sizeof(s->ending_seq), sr, "EndingSequenceNumber", false)) !=
          0)
    return rc;
  return 0;
}

/* Appends the shards of a ListShards response `root` (NULL for an empty body) to `out` and
 * copies its NextToken (see weir__kinesis_list_shards). On failure *why says what was wrong. */
static int parse_list_shards(const json_t *root, struct weir_kinesis_shard_list *out,
                             char *next_token, size_t next_token_cap, const char **why) {
  const json_t *shards;
  const char *tok;

  *why = "ListShards response without a valid Shards list";
  if (root == NULL || !json_is_array(shards = json_object_get(root, "Shards")))
    return WEIR_EPARSE;
  if (out->len > out->cap || json_array_size(shards) > out->cap - out->len) {
    *why = "more shards than the list holds";
    return WEIR_ETOOBIG;
  }
  for (size_t i = 0; i < json_array_size(shards); i++) {
    if (parse_shard(json_array_get(shards, i), &out->v[out->len]) != 0)
      return WEIR_EPARSE;
    out->len++;
  }
  tok = get_str(root, "NextToken");
  if (next_token != NULL) {
    if (tok == NULL)
      tok = "";
    if (strlen(tok) >= next_token_cap) {
      *why = "NextToken longer than the caller's buffer";
      return WEIR_ETOOBIG;
    }
    memcpy(next_token, tok, strlen(tok) + 1);
  }
  return 0;
}

int weir__kinesis_parse_list_shards(const uint8_t *body, size_t len,
                                    struct weir_kinesis_shard_list *out, char *next_token,
                                    size_t next_token_cap) {
  json_t *root = json_loadb((const char *)body, len, 0, NULL);
  const char *why;
  int rc;

  if (!json_is_object(root)) {
    json_decref(root);
    return WEIR_EPARSE;
  }
  rc = parse_list_shards(root, out, next_token, next_token_cap, &why);
  json_decref(root);
  return rc;
}

int weir__kinesis_list_shards(weir_kinesis_client *c,
                              const struct weir_kinesis_list_shards_req *req,
                              struct weir_kinesis_shard_list *out, char *next_token,
                              size_t next_token_cap) {
  const enum weir_kinesis_op op = WEIR_KINESIS_OP_LIST_SHARDS;
  struct weir_kjson *b = &c->body;
  json_t *root = NULL;
  const char *why;
  int rc;

  if (req == NULL || out == NULL || (req->next_token == NULL && !valid_name(req->stream, 128)) ||
      req->max_results > WEIR_KINESIS_LIST_SHARDS_MAX_RESULTS ||
      (unsigned)req->filter > WEIR_KINESIS_FILTER_FROM_TIMESTAMP)
    return local_error(c, op, WEIR_EINVAL, "bad ListShards request");
  weir__kjson_reset(b);
  if (req->next_token != NULL) {
    /* With NextToken the service refuses StreamName, ExclusiveStartShardId and ShardFilter. */
    weir__kjson_lit(b, "{\"NextToken\":");
    weir__kjson_cstr(b, req->next_token);
  } else {
    weir__kjson_lit(b, "{\"StreamName\":");
    weir__kjson_cstr(b, req->stream);
    if (req->exclusive_start_shard_id != NULL) {
      weir__kjson_lit(b, ",\"ExclusiveStartShardId\":");
      weir__kjson_cstr(b, req->exclusive_start_shard_id);
    }
    if (req->filter != WEIR_KINESIS_FILTER_NONE) {
      weir__kjson_lit(b, ",\"ShardFilter\":{\"Type\":");
      weir__kjson_cstr(b, filter_names[req->filter]);
      if (req->filter == WEIR_KINESIS_FILTER_AFTER_SHARD_ID) {
        if (req->filter_shard_id == NULL)
          return local_error(c, op, WEIR_EINVAL, "AFTER_SHARD_ID filter without a shard id");
        weir__kjson_lit(b, ",\"ShardId\":");
        weir__kjson_cstr(b, req->filter_shard_id);
      } else if (req->filter == WEIR_KINESIS_FILTER_AT_TIMESTAMP ||
                 req->filter == WEIR_KINESIS_FILTER_FROM_TIMESTAMP) {
        weir__kjson_lit(b, ",\"Timestamp\":");
        weir__kjson_epoch_ms(b, req->filter_timestamp_ms);
      }
      weir__kjson_lit(b, "}");
    }
  }
  if (req->max_results > 0) {
    weir__kjson_lit(b, ",\"MaxResults\":");
    weir__kjson_i64(b, req->max_results);
  }
  weir__kjson_lit(b, "}");
  if ((rc = call_json(c, op, req->stream, &root)) != 0)
    return rc;
  rc = parse_list_shards(root, out, next_token, next_token_cap, &why);
  if (rc != 0)
    rc = local_error(c, op, rc, why);
  json_decref(root);
  return rc;
}

int weir__kinesis_list_all_shards(weir_kinesis_client *c, const char *stream,
                                  const struct weir_kinesis_list_shards_req *filter,
                                  struct weir_kinesis_shard_list *out) {
  struct weir_kinesis_list_shards_req req;
  char *token = NULL, *prev = NULL;
  int rc = WEIR_ENOMEM;

  if (filter != NULL)
    req = *filter;
  else
    memset(&req, 0, sizeof(req));
  req.stream = stream;
  req.next_token = NULL;
  /* Tokens can be up to 1 MiB (model): two heap buffers, not the stack. */
  if ((token = malloc(WEIR_KINESIS_NEXT_TOKEN_MAX + 1)) == NULL ||
      (prev = malloc(WEIR_KINESIS_NEXT_TOKEN_MAX + 1)) == NULL)
    goto done;
  for (;;) {
    rc = weir__kinesis_list_shards(c, &req, out, token, WEIR_KINESIS_NEXT_TOKEN_MAX + 1);
    if (rc != 0 || token[0] == '\0')
      break;
    strcpy(prev, token);
    req.next_token = prev;
  }

done:
  free(token);
  free(prev);
  return rc;
}

/* ---- DescribeStreamSummary ---------------------------------------------------------------- */

static enum weir_kinesis_stream_status parse_status(const char *s) {
  if (s == NULL)
    return WEIR_KINESIS_STATUS_UNKNOWN;
  if (strcmp(s, "ACTIVE") == 0)
    return WEIR_KINESIS_STATUS_ACTIVE;
  if (strcmp(s, "CREATING") == 0)
    return WEIR_KINESIS_STATUS_CREATING;
  if (strcmp(s, "DELETING") == 0)
    return WEIR_KINESIS_STATUS_DELETING;
  if (strcmp(s, "UPDATING") == 0)
    return WEIR_KINESIS_STATUS_UPDATING;
  return WEIR_KINESIS_STATUS_UNKNOWN;
}

int weir__kinesis_describe_stream_summary(weir_kinesis_client *c, const char *stream,
                                          struct weir_kinesis_stream_summary *out) {
  const enum weir_kinesis_op op = WEIR_KINESIS_OP_DESCRIBE_STREAM_SUMMARY;
  json_t *root = NULL, *s, *v;
  const char *str;
  int rc;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX) || out == NULL)
    return local_error(c, op, WEIR_EINVAL, "bad DescribeStreamSummary request");
  begin_stream_body(c, stream);
  weir__kjson_lit(&c->body, "}");
  if ((rc = call_json(c, op, stream, &root)) != 0)
    return rc;
  memset(out, 0, sizeof(*out));
  if (root == NULL || !json_is_object(s = json_object_get(root, "StreamDescriptionSummary")) ||
      copy_member(out->stream_name, sizeof(out->stream_name), s, "StreamName", true) != 0 ||
      copy_member(out->stream_arn, sizeof(out->stream_arn), s, "StreamARN", false) != 0) {
    rc = local_error(c, op, WEIR_EPARSE, "no StreamDescriptionSummary");
    goto done;
  }
  out->status = parse_status(get_str(s, "StreamStatus"));
  v = json_object_get(s, "StreamModeDetails");
  str = json_is_object(v) ? get_str(v, "StreamMode") : NULL;
  out->on_demand = str != NULL && strcmp(str, "ON_DEMAND") == 0;
  out->retention_hours = json_integer_value(json_object_get(s, "RetentionPeriodHours"));
  v = json_object_get(s, "StreamCreationTimestamp");
  out->creation_ms = json_is_number(v) ? epoch_ms(v) : 0;
  out->open_shard_count = json_integer_value(json_object_get(s, "OpenShardCount"));
  v = json_object_get(s, "ConsumerCount");
  out->consumer_count = json_is_integer(v) ? json_integer_value(v) : -1;
  v = json_object_get(s, "MaxRecordSizeInKiB");
  out->max_record_size_kib = json_is_integer(v) ? json_integer_value(v) : 0;
  str = get_str(s, "EncryptionType");
  out->encrypted = str != NULL && strcmp(str, "KMS") == 0;

done:
  json_decref(root);
  return rc;
}

int weir__kinesis_wait_active(weir_kinesis_client *c, const char *stream, int64_t timeout_ms) {
  struct weir_kinesis_stream_summary sum;
  struct timespec t0, t, pause = {0, 50 * 1000000L};
  int rc;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    rc = weir__kinesis_describe_stream_summary(c, stream, &sum);
    if (rc == 0 && sum.status == WEIR_KINESIS_STATUS_ACTIVE)
      return 0;
    if (rc != 0 && rc != WEIR_ENOTFOUND)
      return rc;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
      return WEIR_ETIMEDOUT;
    nanosleep(&pause, NULL);
  }
}

/* ---- GetShardIterator --------------------------------------------------------------------- */

static const char *const iter_names[] = {
    [WEIR_KINESIS_ITER_TRIM_HORIZON] = "TRIM_HORIZON",
    [WEIR_KINESIS_ITER_LATEST] = "LATEST",
    [WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER] = "AT_SEQUENCE_NUMBER",
    [WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER] = "AFTER_SEQUENCE_NUMBER",
    [WEIR_KINESIS_ITER_AT_TIMESTAMP] = "AT_TIMESTAMP",
};

int weir__kinesis_get_shard_iterator(weir_kinesis_client *c,
                                     const struct weir_kinesis_iterator_req *req,
                                     char out[WEIR_KINESIS_ITERATOR_MAX + 1]) {
  const enum weir_kinesis_op op = WEIR_KINESIS_OP_GET_SHARD_ITERATOR;
  struct weir_kjson *b = &c->body;
  bool by_seq;
  json_t *root = NULL;
  int rc;

  if (req == NULL || out == NULL || !valid_name(req->stream, WEIR_KINESIS_STREAM_NAME_MAX) ||
      !valid_name(req->shard_id, WEIR_KINESIS_SHARD_ID_MAX) ||
      (unsigned)req->type > WEIR_KINESIS_ITER_AT_TIMESTAMP)
    return local_error(c, op, WEIR_EINVAL, "bad GetShardIterator request");
  by_seq = req->type == WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER ||
           req->type == WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER;
  if (by_seq &&
      (req->sequence_number == NULL || !is_decimal(req->sequence_number, WEIR_KINESIS_SEQ_MAX)))
    return local_error(c, op, WEIR_EINVAL, "iterator type needs a decimal sequence number");
  begin_stream_body(c, req->stream);
  weir__kjson_lit(b, ",\"ShardId\":");
  weir__kjson_cstr(b, req->shard_id);
  weir__kjson_lit(b, ",\"ShardIteratorType\":");
  weir__kjson_cstr(b, iter_names[req->type]);
  if (by_seq) {
    weir__kjson_lit(b, ",\"StartingSequenceNumber\":");
    weir__kjson_cstr(b, req->sequence_number);
  } else if (req->type == WEIR_KINESIS_ITER_AT_TIMESTAMP) {
    weir__kjson_lit(b, ",\"Timestamp\":");
    weir__kjson_epoch_ms(b, req->timestamp_ms);
  }
  weir__kjson_lit(b, "}");
  if ((rc = call_json(c, op, req->stream, &root)) != 0)
    return rc;
  if (root == NULL ||
      copy_member(out, WEIR_KINESIS_ITERATOR_MAX + 1, root, "ShardIterator", true) != 0)
    rc = local_error(c, op, WEIR_EPARSE, "no ShardIterator in the response");
  json_decref(root);
  return rc;
}

/* ---- GetRecords --------------------------------------------------------------------------- */

int weir__kinesis_get_records(weir_kinesis_client *c, const char *iterator, uint32_t limit,
                              struct weir_kinesis_records *out) {
  const enum weir_kinesis_op op = WEIR_KINESIS_OP_GET_RECORDS;
  const uint8_t *resp;
  size_t len;
  int rc;

  if (!valid_name(iterator, WEIR_KINESIS_ITERATOR_MAX) || out == NULL ||
      limit > WEIR_KINESIS_GET_MAX_RECORDS)
    return local_error(c, op, WEIR_EINVAL, "bad GetRecords request");
  weir__kjson_reset(&c->body);
  weir__kjson_lit(&c->body, "{\"ShardIterator\":");
  weir__kjson_cstr(&c->body, iterator);
  if (limit > 0) {
    weir__kjson_lit(&c->body, ",\"Limit\":");
    weir__kjson_i64(&c->body, limit);
  }
  weir__kjson_lit(&c->body, "}");
  if (c->body.err != 0)
    return local_error(c, op, c->body.err, "request body exceeds the bound");
  if ((rc = weir__kinesis_call(c, op, NULL, (const uint8_t *)c->body.p, c->body.len, &resp,
                               &len)) != 0)
    return rc;
  rc = weir__kinesis_parse_get_records(resp, len, out);
  if (rc != 0)
    return local_error(c, op, rc, rc == WEIR_ENOMEM ? "out of memory" : "bad GetRecords body");
  return 0;
}

/* ---- PutRecords --------------------------------------------------------------------------- */

/* Writes the PutRecords body of the entries into c->body. */
static int put_records_body(weir_kinesis_client *c, const char *stream,
                            const struct weir_kinesis_put_entry *entries, size_t n) {
  const enum weir_kinesis_op op = WEIR_KINESIS_OP_PUT_RECORDS;
  struct weir_kjson *b = &c->body;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX) || entries == NULL || n == 0 ||
      n > WEIR_KINESIS_PUT_MAX_RECORDS)
    return local_error(c, op, WEIR_EINVAL, "PutRecords takes 1..500 entries");
  begin_stream_body(c, stream);
  weir__kjson_lit(b, ",\"Records\":[");
  for (size_t i = 0; i < n; i++) {
    const struct weir_kinesis_put_entry *e = &entries[i];
    if (e->partition_key.len == 0 || e->partition_key.len > WEIR_KINESIS_PARTITION_KEY_BYTES_MAX ||
        e->data.len > WEIR_KINESIS_RECORD_MAX ||
        (e->explicit_hash_key != NULL &&
         !is_decimal(e->explicit_hash_key, WEIR_KINESIS_HASH_KEY_MAX)))
      return local_error(c, op, WEIR_EINVAL, "bad PutRecords entry");
    /* explicit_hash_key is decimal digits (checked above): nothing in it needs escaping. */
    weir__kjson_put_entry(b, i == 0, e->data, e->partition_key, e->explicit_hash_key);
  }
  weir__kjson_lit(b, "]}");
  if (b->err != 0)
    return local_error(c, op, b->err, "PutRecords body exceeds the request size bound");
  return 0;
}

/* A PutRecords answer without one result per entry. */
static int put_records_bad_answer(weir_kinesis_client *c) {
  return local_error(c, WEIR_KINESIS_OP_PUT_RECORDS, WEIR_EPARSE,
                     "PutRecords response without one result per entry");
}

int weir__kinesis_put_records_answer(weir_kinesis_client *c, const uint8_t *resp, size_t len,
                                     struct weir_kinesis_put_outcomes *out, size_t n) {
  if (weir__kinesis_parse_put_outcomes(resp, len, out, n) != 0)
    return put_records_bad_answer(c);
  return 0;
}

int weir__kinesis_put_records(weir_kinesis_client *c, const char *stream,
                              const struct weir_kinesis_put_entry *entries, size_t n,
                              struct weir_kinesis_put_result *results, size_t *failed) {
  const uint8_t *resp;
  size_t len;
  int rc;

  if (results == NULL)
    return local_error(c, WEIR_KINESIS_OP_PUT_RECORDS, WEIR_EINVAL, "PutRecords without results");
  if ((rc = put_records_body(c, stream, entries, n)) != 0 ||
      (rc = weir__kinesis_call(c, WEIR_KINESIS_OP_PUT_RECORDS, stream, (const uint8_t *)c->body.p,
                               c->body.len, &resp, &len)) != 0)
    return rc;
  if (weir__kinesis_parse_put_records(resp, len, results, n, failed) != 0)
    return put_records_bad_answer(c);
  return 0;
}

int weir__kinesis_put_records_begin(weir_kinesis_client *c, const char *stream,
                                    const struct weir_kinesis_put_entry *entries, size_t n) {
  int rc;

  if ((rc = put_records_body(c, stream, entries, n)) != 0)
    return rc;
  return weir__kinesis_call_begin(c, WEIR_KINESIS_OP_PUT_RECORDS, stream,
                                  (const uint8_t *)c->body.p, c->body.len);
}

/* ---- control plane ------------------------------------------------------------------------ */

int weir__kinesis_create_stream(weir_kinesis_client *c, const char *stream, uint32_t shards) {
  json_t *root = NULL;
  int rc;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX) || shards == 0)
    return local_error(c, WEIR_KINESIS_OP_CREATE_STREAM, WEIR_EINVAL, "bad CreateStream request");
  begin_stream_body(c, stream);
  weir__kjson_lit(&c->body, ",\"ShardCount\":");
  weir__kjson_i64(&c->body, shards);
  weir__kjson_lit(&c->body, "}");
  rc = call_json(c, WEIR_KINESIS_OP_CREATE_STREAM, stream, &root);
  json_decref(root);
  return rc;
}

int weir__kinesis_delete_stream(weir_kinesis_client *c, const char *stream) {
  json_t *root = NULL;
  int rc;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX))
    return local_error(c, WEIR_KINESIS_OP_DELETE_STREAM, WEIR_EINVAL, "bad DeleteStream request");
  begin_stream_body(c, stream);
  weir__kjson_lit(&c->body, "}");
  rc = call_json(c, WEIR_KINESIS_OP_DELETE_STREAM, stream, &root);
  json_decref(root);
  return rc;
}

int weir__kinesis_split_shard(weir_kinesis_client *c, const char *stream, const char *shard_id,
                              const char *new_starting_hash_key) {
  json_t *root = NULL;
  int rc;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX) ||
      !valid_name(shard_id, WEIR_KINESIS_SHARD_ID_MAX) || new_starting_hash_key == NULL ||
      !is_decimal(new_starting_hash_key, WEIR_KINESIS_HASH_KEY_MAX))
    return local_error(c, WEIR_KINESIS_OP_SPLIT_SHARD, WEIR_EINVAL, "bad SplitShard request");
  begin_stream_body(c, stream);
  weir__kjson_lit(&c->body, ",\"ShardToSplit\":");
  weir__kjson_cstr(&c->body, shard_id);
  weir__kjson_lit(&c->body, ",\"NewStartingHashKey\":");
  weir__kjson_cstr(&c->body, new_starting_hash_key);
  weir__kjson_lit(&c->body, "}");
  rc = call_json(c, WEIR_KINESIS_OP_SPLIT_SHARD, stream, &root);
  json_decref(root);
  return rc;
}

int weir__kinesis_merge_shards(weir_kinesis_client *c, const char *stream, const char *shard_id,
                               const char *adjacent_shard_id) {
  json_t *root = NULL;
  int rc;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX) ||
      !valid_name(shard_id, WEIR_KINESIS_SHARD_ID_MAX) ||
      !valid_name(adjacent_shard_id, WEIR_KINESIS_SHARD_ID_MAX))
    return local_error(c, WEIR_KINESIS_OP_MERGE_SHARDS, WEIR_EINVAL, "bad MergeShards request");
  begin_stream_body(c, stream);
  weir__kjson_lit(&c->body, ",\"ShardToMerge\":");
  weir__kjson_cstr(&c->body, shard_id);
  weir__kjson_lit(&c->body, ",\"AdjacentShardToMerge\":");
  weir__kjson_cstr(&c->body, adjacent_shard_id);
  weir__kjson_lit(&c->body, "}");
  rc = call_json(c, WEIR_KINESIS_OP_MERGE_SHARDS, stream, &root);
  json_decref(root);
  return rc;
}

int weir__kinesis_update_shard_count(weir_kinesis_client *c, const char *stream, uint32_t target) {
  json_t *root = NULL;
  int rc;

  if (!valid_name(stream, WEIR_KINESIS_STREAM_NAME_MAX) || target == 0 ||
      target > WEIR_KINESIS_SHARDS_MAX)
    return local_error(c, WEIR_KINESIS_OP_UPDATE_SHARD_COUNT, WEIR_EINVAL,
                       "bad UpdateShardCount request");
  begin_stream_body(c, stream);
  weir__kjson_lit(&c->body, ",\"TargetShardCount\":");
  weir__kjson_i64(&c->body, target);
  weir__kjson_lit(&c->body, ",\"ScalingType\":\"UNIFORM_SCALING\"}");
  rc = call_json(c, WEIR_KINESIS_OP_UPDATE_SHARD_COUNT, stream, &root);
  json_decref(root);
  return rc;
}
