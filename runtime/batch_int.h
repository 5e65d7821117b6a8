/*
 * batch_int.h: a batch of records whose bytes live in the batch's own arena.
 *
 * Batches are allocated once per channel slot (or chain link) and recycled: appending copies a
 * record's value, key and metadata into the arena; resetting makes the batch empty again.
 * The arena is allocated at its full bound up front; the kernel commits only touched pages.
 * A batch is used by one thread at a time; channels hand it between threads.
 */
#ifndef WEIR_BATCH_INT_H
#define WEIR_BATCH_INT_H

#include <stdbool.h>
#include <string.h>

#include "weir/record.h"

struct weir_batch {
  weir_record *recs; /* cap entries */
  size_t len;
  size_t cap;
  uint8_t *arena; /* arena_cap bytes */
  size_t used;
  size_t arena_cap;
};

/* Allocates a batch; NULL on ENOMEM. Free with weir__batch_free. */
struct weir_batch *weir__batch_new(size_t max_records, size_t max_bytes);
void weir__batch_free(struct weir_batch *b);

/* Copies `rec` in. Returns 0; WEIR_EAGAIN when the batch is full (send it and retry on an empty
 * batch); WEIR_ETOOBIG when the record could never fit in an empty batch. */
static inline int weir__batch_append(struct weir_batch *b, const weir_record *rec) {
  size_t need = rec->value.len + rec->key.len + rec->meta.len;
  weir_record *r;
  uint8_t *p;

  /* Each part alone is checked too, so absurd lengths cannot wrap the sum. */
  if (rec->value.len > b->arena_cap || rec->key.len > b->arena_cap || rec->meta.len > b->arena_cap)
    return WEIR_ETOOBIG;
  if (b->len == b->cap || need > b->arena_cap - b->used) {
    if (need > b->arena_cap)
      return WEIR_ETOOBIG;
    return WEIR_EAGAIN;
  }
  r = &b->recs[b->len++];
  p = b->arena + b->used;
  r->timestamp = rec->timestamp;
  r->offset = rec->offset;
  r->value.ptr = p;
  r->value.len = rec->value.len;
  if (rec->value.len)
    memcpy(p, rec->value.ptr, rec->value.len);
  p += rec->value.len;
  r->key.ptr = rec->key.len ? p : NULL;
  r->key.len = rec->key.len;
  if (rec->key.len)
    memcpy(p, rec->key.ptr, rec->key.len);
  p += rec->key.len;
  r->meta.ptr = rec->meta.len ? p : NULL;
  r->meta.len = rec->meta.len;
  if (rec->meta.len)
    memcpy(p, rec->meta.ptr, rec->meta.len);
  b->used += need;
  return 0;
}

/* Appends `rec` by reference: its bytes are not copied and must outlive the batch's use
 * (the caller checks). 0 or WEIR_EAGAIN when the batch has no record slot left. */
static inline int weir__batch_append_ref(struct weir_batch *b, const weir_record *rec) {
  if (b->len == b->cap)
    return WEIR_EAGAIN;
  b->recs[b->len++] = *rec;
  return 0;
}

static inline void weir__batch_reset(struct weir_batch *b) {
  b->len = 0;
  b->used = 0;
}

#endif /* WEIR_BATCH_INT_H */
