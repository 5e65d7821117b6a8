/* batch.c: allocation of record batches (appending is inline in batch_int.h). */
#include <stdlib.h>
#include <string.h>

#include "batch_int.h"

struct weir_batch *weir__batch_new(size_t max_records, size_t max_bytes) {
  struct weir_batch *b = calloc(1, sizeof(*b));

  if (b == NULL)
    return NULL;
  b->recs = malloc(max_records * sizeof(*b->recs));
  b->arena = malloc(max_bytes);
  if (b->recs == NULL || b->arena == NULL) {
    weir__batch_free(b);
    return NULL;
  }
  b->cap = max_records;
  b->arena_cap = max_bytes;
  return b;
}

void weir__batch_free(struct weir_batch *b) {
  if (b == NULL)
    return;
  free(b->recs);
  free(b->arena);
  free(b);
}
