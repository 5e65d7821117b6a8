/*
 * source_pos.c: Kinesis source positions: how a position turns into a GetShardIterator request,
 * how positions are written into and read from checkpoints (proto/kinesis_source.proto), and
 * the initial-timestamp parser.
 *
 * Threads: the snapshot and restore functions take the node's mutex; the rest is pure.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/log_int.h"
#include "connectors/kinesis/source_int.h"
#include "proto/kinesis_source.pb-c.h"

uint64_t weir__ksrc_hash(const char *stream, const char *shard_id) {
  uint64_t h = 1469598103934665603ull;

  for (const char *p = stream; *p != '\0'; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h = (h ^ 0) * 1099511628211ull;
  for (const char *p = shard_id; *p != '\0'; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  /* Final mix so that shard ids differing only in the last digit spread over subtasks. */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

/* ---- timestamps -------------------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *p. */
static bool digits(const char **p, int n, int64_t *out) {
  int64_t v = 0;

  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return false;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return true;
}

/* A fraction after '.': up to milliseconds kept, further digits ignored. */
static bool fraction(const char **p, int64_t *ms) {
  int64_t v = 0;
  int n = 0;

  if (!isdigit((unsigned char)**p))
    return false;
  for (; isdigit((unsigned char)**p); (*p)++, n++)
    if (n < 3)
      v = v * 10 + (**p - '0');
  for (; n < 3; n++)
    v *= 10;
  *ms = v;
  return true;
}

int weir__ksrc_parse_timestamp(const char *s, int64_t *ms) {
  const char *p = s;
  int64_t y, mo, d, h, mi, se, frac = 0, off = 0;

  if (s == NULL || *s == '\0')
    return WEIR_EINVAL;
  if (strchr(s, '-') == NULL) {
    /* Epoch seconds with an optional fraction. */
    int64_t sec = 0;

    if (!isdigit((unsigned char)*p))
      return WEIR_EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
      if (sec > (INT64_MAX / 1000 - 10) / 10)
        return WEIR_EINVAL;
      sec = sec * 10 + (*p - '0');
    }
    if (*p == '.' && (p++, !fraction(&p, &frac)))
      return WEIR_EINVAL;
    if (*p != '\0')
      return WEIR_EINVAL;
    *ms = sec * 1000 + frac;
    return 0;
  }
  if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
      !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
    return WEIR_EINVAL;
  p++;
  if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
      !digits(&p, 2, &se))
    return WEIR_EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
    return WEIR_EINVAL;
  if (*p == '.' && (p++, !fraction(&p, &frac)))
    return WEIR_EINVAL;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1;
    int64_t oh, om;

    p++;
    if (!digits(&p, 2, &oh))
      return WEIR_EINVAL;
    if (*p == ':')
      p++;
    if (!digits(&p, 2, &om) || oh > 23 || om > 59)
      return WEIR_EINVAL;
    off = sign * (oh * 3600 + om * 60);
  } else if (*p != '\0') {
    return WEIR_EINVAL;
  }
  if (*p != '\0')
    return WEIR_EINVAL;
  *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) - off) * 1000 + frac;
  return 0;
}

/* ---- iterators --------------------------------------------------------------------------- */

void weir__ksrc_iterator_req(struct kshard *k, const char *stream,
                             struct weir_kinesis_iterator_req *req) {
  memset(req, 0, sizeof(*req));
  req->stream = stream;
  req->shard_id = k->shard_id;
  k->skip_active = false;
  switch (k->pos.kind) {
  case KPOS_LATEST:
    req->type = WEIR_KINESIS_ITER_LATEST;
    break;
  case KPOS_AT_TIMESTAMP:
    req->type = WEIR_KINESIS_ITER_AT_TIMESTAMP;
    req->timestamp_ms = k->pos.ts_ms;
    break;
  case KPOS_SEQUENCE:
    req->sequence_number = k->pos.seq;
    if (k->pos.partial) {
      /* Part of an aggregate was emitted: read it again and skip what was. */
      req->type = WEIR_KINESIS_ITER_AT_SEQUENCE_NUMBER;
      k->skip_active = true;
      k->skip_sub = k->pos.sub;
    } else {
      req->type = WEIR_KINESIS_ITER_AFTER_SEQUENCE_NUMBER;
    }
    break;
  case KPOS_TRIM_HORIZON:
  case KPOS_SHARD_END:
  default:
    req->type = WEIR_KINESIS_ITER_TRIM_HORIZON;
    break;
  }
}

/* ---- snapshots --------------------------------------------------------------------------- */

static void pos_to_proto(const struct kpos *p, const char *stream, const char *shard_id,
                         Weir__Ksrc__ShardPosition *m) {
  weir__ksrc__shard_position__init(m);
  m->stream = (char *)stream;
  m->shard_id = (char *)shard_id;
  m->kind = (Weir__Ksrc__PositionKind)p->kind;
  if (p->kind == KPOS_SEQUENCE) {
    m->sequence_number = (char *)p->seq;
    m->sub_sequence_number = p->sub;
    m->partial = p->partial;
  }
  if (p->kind == KPOS_AT_TIMESTAMP)
    m->timestamp_ms = p->ts_ms;
}

int weir__ksrc_snapshot(struct ksub *s, weir_snapshot *out) {
  struct ksrc *src = s->src;
  Weir__Ksrc__SourceSnapshot snap = WEIR__KSRC__SOURCE_SNAPSHOT__INIT;
  Weir__Ksrc__ShardPosition *msgs = NULL, **ptrs = NULL;
  struct kpos *unclaimed = NULL;
  size_t n = 0, cap, len;
  uint8_t *buf = NULL;
  int rc = WEIR_ENOMEM;

  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  cap = s->n_shards + src->n_restored + src->n_shards;
  if (cap > 0 &&
      ((msgs = calloc(cap, sizeof(*msgs))) == NULL || (ptrs = calloc(cap, sizeof(*ptrs))) == NULL ||
       (unclaimed = calloc(src->n_shards + 1, sizeof(*unclaimed))) == NULL))
    goto unlock;
  for (size_t i = 0; i < s->n_shards; i++) {
    const struct kshard *k = &s->shards[i];

    pos_to_proto(&k->pos, src->streams[k->stream], k->shard_id, &msgs[n]);
    ptrs[n] = &msgs[n];
    n++;
  }
  /* Restored positions nobody has claimed yet stay in the checkpoint, written by the subtask
   * that will own them, so a checkpoint taken before the first discovery loses none. */
  for (size_t i = 0; i < src->n_restored; i++) {
    const struct krestored *r = &src->restored[i];

    if ((int)(r->hash % (uint64_t)s->parallelism) != s->index)
      continue;
    pos_to_proto(&r->pos, r->stream, r->shard_id, &msgs[n]);
    ptrs[n] = &msgs[n];
    n++;
  }
  /* Shards listed but not claimed yet by this subtask (it claims them at its next poll). */
  for (size_t i = 0; i < src->n_shards; i++) {
    const struct kshard_info *e = &src->shards[i];

    if (e->claimed || (int)(e->hash % (uint64_t)s->parallelism) != s->index ||
        !weir__ksrc_unclaimed_pos(src, e, &unclaimed[i]))
      continue;
    pos_to_proto(&unclaimed[i], src->streams[e->stream], e->shard.shard_id, &msgs[n]);
    ptrs[n] = &msgs[n];
    n++;
  }
  snap.version = WEIR__KSRC_SNAPSHOT_VERSION;
  snap.n_shards = n;
  snap.shards = ptrs;
  snap.started = src->discovered || src->restored_started;
  len = weir__ksrc__source_snapshot__get_packed_size(&snap);
  if ((buf = malloc(len > 0 ? len : 1)) == NULL)
    goto unlock;
  weir__ksrc__source_snapshot__pack(&snap, buf);
  rc = 0;
unlock:
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  if (rc == 0)
    rc = weir_snapshot_write(out, buf, len);
  free(buf);
  free(msgs);
  free(ptrs);
  free(unclaimed);
  return rc;
}

int weir__ksrc_restore(struct ksrc *src, weir_buf state) {
  Weir__Ksrc__SourceSnapshot *snap;
  int rc = 0;

  if (state.len == 0)
    return 0; /* a subtask that takes no part of the old state */
  snap = weir__ksrc__source_snapshot__unpack(NULL, state.len, state.ptr);
  if (snap == NULL) {
    WEIR_LOG_ERR("kinesis source: restore: snapshot of %zu bytes does not parse", state.len);
    return WEIR_EPARSE;
  }
  if (snap->version != WEIR__KSRC_SNAPSHOT_VERSION) {
    WEIR_LOG_ERR("kinesis source: restore: snapshot version %u is not %d (written by another "
                 "weir version?)",
                 snap->version, WEIR__KSRC_SNAPSHOT_VERSION);
    weir__ksrc__source_snapshot__free_unpacked(snap, NULL);
    return WEIR_EPARSE;
  }
  WEIR_ASSERT(pthread_mutex_lock(&src->mu) == 0);
  if (snap->started)
    src->restored_started = true;
  for (size_t i = 0; i < snap->n_shards && rc == 0; i++) {
    const Weir__Ksrc__ShardPosition *m = snap->shards[i];
    int kind = (int)m->kind;
    struct krestored *r;

    if (m->stream == NULL || m->shard_id == NULL || strlen(m->stream) == 0 ||
        strlen(m->stream) > WEIR_KINESIS_STREAM_NAME_MAX || strlen(m->shard_id) == 0 ||
        strlen(m->shard_id) > WEIR_KINESIS_SHARD_ID_MAX || kind < (int)KPOS_LATEST ||
        kind > (int)KPOS_SHARD_END ||
        (kind == (int)KPOS_SEQUENCE &&
         (m->sequence_number == NULL || strlen(m->sequence_number) == 0 ||
          strlen(m->sequence_number) > WEIR_KINESIS_SEQ_MAX))) {
      WEIR_LOG_ERR("kinesis source: restore: invalid shard position %zu", i);
      rc = WEIR_EPARSE;
      break;
    }
    if (src->n_restored == src->max_shards) {
      WEIR_LOG_ERR("kinesis source: restore: more than %zu shard positions", src->max_shards);
      rc = WEIR_ETOOBIG;
      break;
    }
    r = &src->restored[src->n_restored++];
    memset(r, 0, sizeof(*r));
    strcpy(r->stream, m->stream);
    strcpy(r->shard_id, m->shard_id);
    r->hash = weir__ksrc_hash(r->stream, r->shard_id);
    r->pos.kind = (enum kpos_kind)kind;
    if (kind == (int)KPOS_SEQUENCE) {
      strcpy(r->pos.seq, m->sequence_number);
      r->pos.sub = m->sub_sequence_number;
      r->pos.partial = m->partial;
    }
    r->pos.ts_ms = m->timestamp_ms;
  }
  WEIR_ASSERT(pthread_mutex_unlock(&src->mu) == 0);
  weir__ksrc__source_snapshot__free_unpacked(snap, NULL);
  return rc;
}
