/*
 * kinesis_reshard.c: see kinesis_reshard.h.
 */
#include "kinesis_reshard.h"

#include <stdio.h>
#include <string.h>

__extension__ typedef unsigned __int128 weir_test_u128;

static struct weir_kinesis_shard weir_test_reshard_buf[WEIR_TEST_RESHARD_MAX_SHARDS];

static weir_test_u128 weir_test_dec_to_u128(const char *s) {
  weir_test_u128 v = 0;

  for (; *s >= '0' && *s <= '9'; s++)
    v = v * 10 + (weir_test_u128)(*s - '0');
  return v;
}

static void weir_test_u128_to_dec(weir_test_u128 v, char out[WEIR_KINESIS_HASH_KEY_MAX + 1]) {
  char tmp[WEIR_KINESIS_HASH_KEY_MAX + 1];
  size_t n = 0;

  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

/* Every shard of `stream` into the static buffer; 0 or -1 (message in err). */
static int weir_test_reshard_list(weir_kinesis_client *c, const char *stream,
                                  struct weir_kinesis_shard_list *l, char *err, size_t cap) {
  *l = (struct weir_kinesis_shard_list){weir_test_reshard_buf, 0, WEIR_TEST_RESHARD_MAX_SHARDS};
  if (weir__kinesis_list_all_shards(c, stream, NULL, l) != 0) {
    snprintf(err, cap, "ListShards %s: %s", stream, weir__kinesis_last_error(c)->message);
    return -1;
  }
  return 0;
}

static int weir_test_reshard_wait(weir_kinesis_client *c, const char *stream, char *err,
                                  size_t cap) {
  if (weir__kinesis_wait_active(c, stream, 30000) != 0) {
    snprintf(err, cap, "%s did not become ACTIVE again within 30 s", stream);
    return -1;
  }
  return 0;
}

int weir_test_split_shard(weir_kinesis_client *c, const char *stream, const char *only_or_NULL,
                          char *err, size_t cap) {
  struct weir_kinesis_shard_list l;
  char id[WEIR_KINESIS_SHARD_ID_MAX + 1] = "", mid[WEIR_KINESIS_HASH_KEY_MAX + 1];
  weir_test_u128 best = 0, lo = 0;

  if (weir_test_reshard_list(c, stream, &l, err, cap) != 0)
    return -1;
  for (size_t i = 0; i < l.len; i++) {
    weir_test_u128 a = weir_test_dec_to_u128(l.v[i].hash_range.start);
    weir_test_u128 b = weir_test_dec_to_u128(l.v[i].hash_range.end);

    if (l.v[i].ending_seq[0] == '\0' && b - a >= best &&
        (only_or_NULL == NULL || strcmp(only_or_NULL, l.v[i].shard_id) == 0)) {
      best = b - a;
      lo = a;
      snprintf(id, sizeof(id), "%s", l.v[i].shard_id);
    }
  }
  if (id[0] == '\0' || best <= 1) {
    snprintf(err, cap, "%s: no open shard to split", stream);
    return -1;
  }
  weir_test_u128_to_dec(lo + best / 2 + 1, mid);
  if (weir__kinesis_split_shard(c, stream, id, mid) != 0) {
    snprintf(err, cap, "SplitShard %s at %s: %s", id, mid, weir__kinesis_last_error(c)->message);
    return -1;
  }
  return weir_test_reshard_wait(c, stream, err, cap);
}

int weir_test_merge_lowest(weir_kinesis_client *c, const char *stream, char *err, size_t cap) {
  struct weir_kinesis_shard_list l;
  const struct weir_kinesis_shard *a = NULL, *b = NULL;

  if (weir_test_reshard_list(c, stream, &l, err, cap) != 0)
    return -1;
  for (size_t i = 0; i < l.len; i++)
    if (l.v[i].ending_seq[0] == '\0' && weir_test_dec_to_u128(l.v[i].hash_range.start) == 0)
      a = &l.v[i];
  for (size_t i = 0; a != NULL && i < l.len; i++)
    if (l.v[i].ending_seq[0] == '\0' && weir_test_dec_to_u128(l.v[i].hash_range.start) ==
                                            weir_test_dec_to_u128(a->hash_range.end) + 1)
      b = &l.v[i];
  if (a == NULL || b == NULL) {
    snprintf(err, cap, "%s: no two adjacent open shards from hash key 0", stream);
    return -1;
  }
  if (weir__kinesis_merge_shards(c, stream, a->shard_id, b->shard_id) != 0) {
    snprintf(err, cap, "MergeShards %s + %s: %s", a->shard_id, b->shard_id,
             weir__kinesis_last_error(c)->message);
    return -1;
  }
  return weir_test_reshard_wait(c, stream, err, cap);
}

long weir_test_count_open(weir_kinesis_client *c, const char *stream, char *err, size_t cap) {
  struct weir_kinesis_shard_list l;
  long n = 0;

  if (weir_test_reshard_list(c, stream, &l, err, cap) != 0)
    return -1;
  for (size_t i = 0; i < l.len; i++)
    n += l.v[i].ending_seq[0] == '\0';
  return n;
}
