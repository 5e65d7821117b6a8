/*
 * sink_agg.c: KPL aggregation in the Kinesis sink. User records are packed into KPL aggregates
 * (kpl.c, KPL style: outer partition key "a", outer explicit hash key = the first user record's
 * hash key) grouped by the shard their effective hash key falls in, so each aggregate lands on
 * the shard a KCL or weir consumer expects for every record in it (a consumer drops an
 * aggregate holding a record outside its shard's range).
 *
 * The shard map of a stream is its open shards from ListShards, sorted by starting hash key. It
 * is loaded when the stream first gets an aggregate and reloaded when a PutRecords result shows
 * an aggregate on another shard than the map said (a split or merge happened).
 *
 * Order: within one request build, each aggregate is one pass over the buffer with a fresh key
 * set. The first pending entry of a key may start that key's run in the aggregate; later entries
 * of the key follow it into the same aggregate as long as none of them is skipped. Entries of a
 * key already in flight (including in an earlier aggregate of this request) stay blocked, so the
 * order rule of sink_batch.c holds for user records.
 *
 * Threads: the subtask thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/log_int.h"
#include "connectors/kinesis/sink_int.h"
#include "weir/record.h"

int weir__ksink_agg_init(struct ksub *s) {
  struct weir_kpl_agg_config c = {0};
  int rc;

  if ((rc = weir__kpl_md5_init(&s->md5)) != 0)
    return rc;
  s->md5_init = true;
  if (!s->cfg->aggregation)
    return 0;
  c.max_size = s->cfg->aggregation_max_bytes > 0 ? s->cfg->aggregation_max_bytes
                                                 : s->streams[0].record_limit;
  if (c.max_size > s->streams[0].record_limit)
    c.max_size = s->streams[0].record_limit;
  c.style = WEIR_KPL_AGG_STYLE_KPL;
  return weir__kpl_agg_new(&s->agg, &c);
}

void weir__ksink_agg_free(struct ksub *s) {
  weir__kpl_agg_free(s->agg);
  s->agg = NULL;
  if (s->md5_init)
    weir__kpl_md5_cleanup(&s->md5);
  s->md5_init = false;
  for (size_t i = 0; i < s->n_streams; i++) {
    free(s->streams[i].ranges);
    free(s->streams[i].shard_ids);
  }
}

int weir__ksink_hash_key(struct ksub *s, weir_buf key, weir_buf ehk, struct weir_kpl_u128 *out) {
  return weir__kpl_effective_hash_key(&s->md5, key, ehk.len > 0 ? &ehk : NULL, out);
}

static int cmp_range(const void *a, const void *b) {
  const struct weir_kinesis_shard *x = a, *y = b;
  struct weir_kpl_hash_range rx, ry;

  weir__kpl_hash_range_parse(x->hash_range.start, x->hash_range.end, &rx);
  weir__kpl_hash_range_parse(y->hash_range.start, y->hash_range.end, &ry);
  return weir__kpl_u128_cmp(rx.start, ry.start);
}

int weir__ksink_shard_map(struct ksub *s, struct kstream *st) {
  struct weir_kinesis_shard_list l = {NULL, 0, 64};
  size_t open = 0;
  int rc;

  /* Grow the (temporary) list until every shard of the stream fits. */
  for (;;) {
    if ((l.v = calloc(l.cap, sizeof(*l.v))) == NULL)
      return WEIR_ENOMEM;
    l.len = 0;
    rc = weir__kinesis_list_all_shards(s->client, st->name, NULL, &l);
    if (rc != WEIR_ETOOBIG || l.cap >= 4 * KSINK_MAX_SHARDS)
      break;
    free(l.v);
    l.cap *= 4;
  }
  if (rc != 0)
    goto out;
  for (size_t i = 0; i < l.len; i++)
    if (l.v[i].ending_seq[0] == '\0')
      l.v[open++] = l.v[i];
  if (open == 0 || open > KSINK_MAX_SHARDS) {
    rc = open == 0 ? WEIR_ENOTFOUND : WEIR_ETOOBIG;
    goto out;
  }
  qsort(l.v, open, sizeof(*l.v), cmp_range);
  free(st->ranges);
  free(st->shard_ids);
  st->n_shards = 0;
  st->ranges = calloc(open, sizeof(*st->ranges));
  st->shard_ids = calloc(open, sizeof(*st->shard_ids));
  if (st->ranges == NULL || st->shard_ids == NULL) {
    rc = WEIR_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < open; i++) {
    if ((rc = weir__kpl_hash_range_parse(l.v[i].hash_range.start, l.v[i].hash_range.end,
                                         &st->ranges[i])) != 0)
      goto out;
    memcpy(st->shard_ids[i], l.v[i].shard_id, sizeof(st->shard_ids[i]));
  }
  st->n_shards = open;
  st->map_stale = false;
  weir_metric_add(s->m.shard_refreshes, 1);
out:
  if (rc != 0)
    WEIR_LOG_WARN("kinesis sink: shard map of stream %s: %s; aggregates wait for it", st->name,
                  weir_strerror(rc));
  free(l.v);
  return rc;
}

size_t weir__ksink_shard_of(const struct kstream *st, struct weir_kpl_u128 k) {
  size_t idx = 0;

  if (st->n_shards == 0 || weir__kpl_shard_find_sorted(st->ranges, st->n_shards, k, &idx) != 0)
    return 0;
  return idx;
}

void weir__ksink_agg_check_shard(struct ksub *s, struct kslot *slot, size_t i) {
  struct kstream *st = &s->streams[slot->stream];
  const struct kentry *e = &s->ents[slot->members[slot->first[i]]];
  size_t want = weir__ksink_shard_of(st, e->hash_key);

  if (st->n_shards > 0 && strcmp(st->shard_ids[want], slot->out->shard_ids[i]) != 0 &&
      !st->map_stale) {
    WEIR_LOG_INFO("kinesis sink: stream %s: a record landed on %s, not %s: reloading the shard map",
                  st->name, slot->out->shard_ids[i], st->shard_ids[want]);
    st->map_stale = true;
  }
}

/* Takes entry pos into the request as member of request entry n. */
static void take(struct ksub *s, struct kslot *slot, uint32_t pos) {
  struct kentry *e = &s->ents[pos];

  e->state = KENT_IN_FLIGHT;
  e->attempts++;
  s->unsent--;
  slot->members[slot->n_members++] = pos;
}

/* Puts everything taken back to PENDING (an aggregate that did not fit the request). */
static void untake(struct ksub *s, struct kslot *slot, size_t from) {
  for (size_t j = from; j < slot->n_members; j++) {
    struct kentry *e = &s->ents[slot->members[j]];

    e->state = KENT_PENDING;
    e->attempts--;
    s->unsent++;
  }
  slot->n_members = from;
}

/* One aggregate (one pass). Returns the members added (0 = nothing left to send). */
static size_t one_aggregate(struct ksub *s, struct kslot *slot, int stream, int64_t now,
                            bool *lone) {
  const struct kstream *st = &s->streams[stream];
  size_t shard = SIZE_MAX, added = 0;

  *lone = false;
  weir__ksink_keys_clear(s);
  weir__kpl_agg_reset(s->agg);
  for (size_t i = 0; i < s->n_ents; i++) {
    uint32_t pos = (uint32_t)((s->head + i) % s->cap_ents);
    struct kentry *e = &s->ents[pos];
    struct kkey *k;
    weir_buf ehk;
    bool seen;
    int rc;

    if (e->state == KENT_DONE || e->stream != stream)
      continue;
    seen = weir__ksink_key_find(s, pos, &k);
    if (seen && k->agg < 0)
      continue; /* blocked */
    if (!weir__ksink_sendable(s, e, stream, now) ||
        (shard != SIZE_MAX && weir__ksink_shard_of(st, e->hash_key) != shard)) {
      k->agg = -1;
      continue;
    }
    ehk = (weir_buf){s->arena + e->off + e->data_len + e->key_len, e->ehk_len};
    rc = weir__kpl_agg_add(s->agg, weir__ksink_key(s, e), e->ehk_len > 0 ? &ehk : NULL,
                           weir__ksink_data(s, e));
    if (rc == WEIR_ETOOBIG && added == 0) {
      /* Too large to aggregate (the framing would push it over the limit): alone, plain. */
      take(s, slot, pos);
      *lone = true;
      return 1;
    }
    if (rc != 0)
      break; /* full (WEIR_EAGAIN): the aggregate is done */
    if (shard == SIZE_MAX)
      shard = weir__ksink_shard_of(st, e->hash_key);
    k->agg = 0;
    take(s, slot, pos);
    added++;
  }
  return added;
}

size_t weir__ksink_build_agg(struct ksub *s, struct kslot *slot, int stream, size_t max_entries,
                             int64_t now) {
  struct kstream *st = &s->streams[stream];
  size_t n = 0, bytes = 0;

  if ((st->map_stale || st->n_shards == 0) && weir__ksink_shard_map(s, st) != 0 &&
      st->n_shards == 0)
    return 0; /* retried on the next pump */
  slot->agg_len = 0;
  while (n < max_entries) {
    size_t from = slot->n_members, added, len;
    struct weir_kpl_agg_result res;
    bool lone;

    if ((added = one_aggregate(s, slot, stream, now, &lone)) == 0)
      break;
    if (lone) {
      const struct kentry *e = &s->ents[slot->members[from]];

      len = e->data_len + e->key_len;
      if (bytes + len > s->cfg->max_request_bytes) {
        untake(s, slot, from);
        break;
      }
      slot->req[n].data = weir__ksink_data(s, e);
      slot->req[n].partition_key = weir__ksink_key(s, e);
      slot->req[n].explicit_hash_key = NULL;
      if (e->ehk_len > 0) {
        memcpy(slot->ehk[n], s->arena + e->off + e->data_len + e->key_len, e->ehk_len);
        slot->ehk[n][e->ehk_len] = '\0';
        slot->req[n].explicit_hash_key = slot->ehk[n];
      }
    } else {
      len = weir__kpl_agg_size(s->agg);
      if (bytes + len + 1 > s->cfg->max_request_bytes ||
          weir__kpl_agg_finish(s->agg, slot->agg_buf + slot->agg_len,
                               s->cfg->max_request_bytes - slot->agg_len, &res) != 0) {
        untake(s, slot, from);
        break;
      }
      slot->req[n].data = (weir_buf){slot->agg_buf + slot->agg_len, res.len};
      if (res.aggregated) {
        slot->req[n].partition_key = weir_buf_str(WEIR_KPL_AGG_PARTITION_KEY);
        weir_metric_add(s->m.aggregates, 1);
      } else {
        /* One user record: sent as itself, with its own key. */
        slot->req[n].partition_key = weir__ksink_key(s, &s->ents[slot->members[from]]);
      }
      memcpy(slot->ehk[n], res.explicit_hash_key, sizeof(slot->ehk[n]));
      slot->req[n].explicit_hash_key = slot->ehk[n][0] != '\0' ? slot->ehk[n] : NULL;
      slot->agg_len += res.len;
      len = res.len + slot->req[n].partition_key.len;
    }
    slot->first[n] = (uint32_t)from;
    slot->count[n] = (uint32_t)(slot->n_members - from);
    bytes += len;
    n++;
  }
  slot->bytes = bytes;
  return n;
}
