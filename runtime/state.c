/*
 * state.c: keyed state (value, map, list) held in slab-backed open-addressing hash tables, and
 * its snapshot to / restore from the OperatorSnapshot protobuf. See state_int.h.
 */
#include <inttypes.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log_int.h"
#include "proto/checkpoint.pb-c.h"
#include "state_int.h"

#define NIL UINT32_MAX
#define MAX_STATES 64
/* Slab: blocks of 16 B .. 64 KiB in power-of-two classes, carved from 1 MiB chunks; larger
 * entries get their own malloc (rare, and still charged to the budget). */
#define CHUNK_BYTES ((size_t)1 << 20)
#define SLAB_MIN_SHIFT 4
#define SLAB_MAX_SHIFT 16
#define N_CLASSES (SLAB_MAX_SHIFT - SLAB_MIN_SHIFT + 1)
/* Entry ids are uint32 and NIL is reserved; index slots store id + 1 in their low half. */
#define MAX_ENTRIES ((uint32_t)1 << 30)
#define MAX_INDEX_CAP ((uint32_t)1 << 31)
/* Decoding a blob allocates message structs; a valid blob needs at most this many
 * bytes per blob byte (an empty ValueEntry: 2 wire bytes, ~64 bytes decoded). */
#define DECODE_BYTES_PER_BLOB_BYTE 64

enum entry_type { E_FREE = 0, E_VALUE, E_HEAD, E_ITEM };

/*
 * One entry. Value state: a key and its value (E_VALUE). Map and list state: one E_HEAD per
 * key (mem = the key) chaining its E_ITEMs (map item: mem = map key | value; list item:
 * mem = value). Ids index kstate.ents; links are ids or NIL.
 */
struct entry {
  uint64_t hash; /* value/head: XXH3-64(key); map item: XXH3-64(map key, seed = key hash) */
  uint8_t *mem;  /* slab block: klen key bytes then vlen value bytes; NULL when cap is 0 */
  uint32_t klen;
  uint32_t vlen;
  uint32_t cap;   /* bytes of mem */
  uint32_t kg;    /* key group (items: their head's) */
  uint32_t next;  /* item chain; the free list */
  uint32_t prev;  /* map item chain; list head: last item */
  uint32_t link;  /* head: first item; map item: its head */
  uint32_t count; /* head: number of items */
  uint8_t type;   /* enum entry_type */
};

/*
 * Open addressing, linear probing; cap is a power of two (or 0); the load stays under 0.7.
 * A slot is 0 (empty) or (tag << 32 | (entry id + 1)), where tag is the high half of the
 * entry's 64-bit hash. The tag holds the home position (its low bits), so growing and
 * backward-shift deletion never read entries, and a probe compares tags first: it touches an
 * entry (and its key bytes) only on a tag match, which with 100 K keys is almost always the
 * key sought. Without tags every probed slot cost a cache miss on its entry.
 */
struct index {
  uint64_t *slots;
  uint32_t cap;
  uint32_t len;
};

struct kstate {
  struct weir__keyed_backend *b;
  enum weir__state_kind kind;
  char name[WEIR_STATE_MAX_NAME + 1];
  struct entry *ents;
  uint32_t n_ents; /* high-water mark */
  uint32_t cap_ents;
  uint32_t free_ent;      /* free list head, NIL = none */
  uint64_t keys;          /* E_VALUE + E_HEAD entries */
  struct index keys_idx;  /* values and heads by key */
  struct index items_idx; /* map items by (head, map key) */
};

struct chunk {
  struct chunk *next;
  size_t len; /* keeps the header 16 bytes, so blocks stay 16-aligned */
};

struct weir__keyed_backend {
  int max_par;
  uint32_t kg_mask; /* max_par - 1 when max_par is a power of two (key group = hash & mask,
                       no division per lookup), else 0 */
  uint32_t kg_first, kg_last;
  size_t max_bytes;
  size_t bytes; /* charged so far */
  struct kstate *states[MAX_STATES];
  size_t n_states;
  void *free_blocks[N_CLASSES]; /* per-class free lists, linked through the blocks */
  uint8_t *cur;                 /* unused tail of the newest chunk */
  size_t cur_left;
  struct chunk *chunks;
};

/* ---- errors --------------------------------------------------------------------------------- */

static _Thread_local char last_err[512];

const char *weir__state_last_error(void) {
  return last_err;
}

static int set_err(int rc, const char *fmt, ...) WEIR_PRINTF(2, 3);
static int set_err(int rc, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(last_err, sizeof(last_err), fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- budget and slab ------------------------------------------------------------------------ */

static int charge(struct weir__keyed_backend *b, size_t n) {
  if (n > b->max_bytes - b->bytes)
    return set_err(WEIR_ETOOBIG,
                   "keyed state byte budget of %zu bytes reached (%zu in use, %zu more needed)",
                   b->max_bytes, b->bytes, n);
  b->bytes += n;
  return 0;
}

static void uncharge(struct weir__keyed_backend *b, size_t n) {
  WEIR_ASSERT(b->bytes >= n);
  b->bytes -= n;
}

static unsigned size_class(size_t n) {
  unsigned c = 0;

  while (((size_t)1 << (SLAB_MIN_SHIFT + c)) < n)
    c++;
  return c;
}

static void push_free(struct weir__keyed_backend *b, unsigned c, uint8_t *p) {
  memcpy(p, &b->free_blocks[c], sizeof(void *));
  b->free_blocks[c] = p;
}

/* Moves the current chunk's unused tail into the free lists, largest blocks first. */
static void retire_tail(struct weir__keyed_backend *b) {
  while (b->cur_left >= ((size_t)1 << SLAB_MIN_SHIFT)) {
    unsigned c = N_CLASSES - 1;

    while (((size_t)1 << (SLAB_MIN_SHIFT + c)) > b->cur_left)
      c--;
    push_free(b, c, b->cur);
    b->cur += (size_t)1 << (SLAB_MIN_SHIFT + c);
    b->cur_left -= (size_t)1 << (SLAB_MIN_SHIFT + c);
  }
  b->cur_left = 0;
}

/* Bytes to skip from p so that a block of `size` starts on a multiple of min(size, 64): a
 * block of 64 bytes or more starts on a cache line, so a 64-byte entry (the window operator's
 * usual one) is one cache miss, not two. p is 16-aligned, so the gap is 0, 16, 32 or 48. */
static size_t align_gap(const uint8_t *p, size_t size) {
  size_t a = size < 64 ? size : 64;

  return (size_t)(-(uintptr_t)p & (a - 1));
}

/* Skips `gap` bytes of the current chunk, giving them to the 16- and 32-byte free lists. */
static void carve_gap(struct weir__keyed_backend *b, size_t gap) {
  while (gap > 0) {
    size_t piece = ((uintptr_t)b->cur & 31) != 0 ? 16 : 32;

    push_free(b, size_class(piece), b->cur);
    b->cur += piece;
    b->cur_left -= piece;
    gap -= piece;
  }
}

/* A block of at least `need` bytes; need 0 gives NULL with cap 0. */
static int block_alloc(struct weir__keyed_backend *b, size_t need, uint8_t **mem, uint32_t *cap) {
  size_t size, len, room;
  struct chunk *ch;
  unsigned c;
  int rc;

  if (need == 0) {
    *mem = NULL;
    *cap = 0;
    return 0;
  }
  if (need > ((size_t)1 << SLAB_MAX_SHIFT)) {
    if ((rc = charge(b, need)) != 0)
      return rc;
    if ((*mem = malloc(need)) == NULL) {
      uncharge(b, need);
      return set_err(WEIR_ENOMEM, "keyed state: out of memory for a %zu-byte entry", need);
    }
    *cap = (uint32_t)need;
    return 0;
  }
  c = size_class(need);
  size = (size_t)1 << (SLAB_MIN_SHIFT + c);
  if (b->free_blocks[c] != NULL) {
    *mem = b->free_blocks[c];
    memcpy(&b->free_blocks[c], *mem, sizeof(void *));
    *cap = (uint32_t)size;
    return 0;
  }
  if (b->cur_left < align_gap(b->cur, size) + size) {
    /* A new chunk: 1 MiB, or what is left of the budget when that is less. */
    room = b->max_bytes - b->bytes;
    len = CHUNK_BYTES;
    if (room < sizeof(struct chunk) + len)
      len = room > sizeof(struct chunk) ? (room - sizeof(struct chunk)) & ~(size_t)15 : 0;
    if (len < size + 48) /* room for the alignment gap */
      return set_err(WEIR_ETOOBIG,
                     "keyed state byte budget of %zu bytes reached (%zu in use, %zu more needed)",
                     b->max_bytes, b->bytes, size + sizeof(struct chunk));
    if ((rc = charge(b, sizeof(struct chunk) + len)) != 0)
      return rc;
    if ((ch = malloc(sizeof(struct chunk) + len)) == NULL) {
      uncharge(b, sizeof(struct chunk) + len);
      return set_err(WEIR_ENOMEM, "keyed state: out of memory for a slab chunk");
    }
    retire_tail(b);
    ch->next = b->chunks;
    ch->len = len;
    b->chunks = ch;
    b->cur = (uint8_t *)(ch + 1);
    b->cur_left = len;
  }
  carve_gap(b, align_gap(b->cur, size));
  *mem = b->cur;
  *cap = (uint32_t)size;
  b->cur += size;
  b->cur_left -= size;
  return 0;
}

static void block_free(struct weir__keyed_backend *b, uint8_t *mem, uint32_t cap) {
  if (cap == 0)
    return;
  if (cap > ((uint32_t)1 << SLAB_MAX_SHIFT)) {
    free(mem);
    uncharge(b, cap);
    return;
  }
  push_free(b, size_class(cap), mem);
}

/* ---- entries and indexes -------------------------------------------------------------------- */

static inline uint64_t key_hash(weir_buf key) {
  /* Must stay identical to weir__key_group (job.c): the key group decides which subtask owns
   * the key, in the partitioner and here. */
  return XXH3_64bits(key.ptr != NULL ? key.ptr : (const uint8_t *)"", key.len);
}

static inline uint64_t item_hash(uint64_t key_h, weir_buf map_key) {
  return XXH3_64bits_withSeed(map_key.ptr != NULL ? map_key.ptr : (const uint8_t *)"", map_key.len,
                              key_h);
}

/* The key group uses the hash modulo max parallelism (its low bits when that is a power of
 * two); the table uses the high half, so the two stay independent. */
static inline uint32_t home(uint64_t h, uint32_t cap) {
  return (uint32_t)(h >> 32) & (cap - 1);
}

static inline uint32_t tag_of(uint64_t h) {
  return (uint32_t)(h >> 32);
}

static inline uint64_t slot_make(uint64_t h, uint32_t id) {
  return (uint64_t)tag_of(h) << 32 | (uint64_t)(id + 1);
}

static inline uint32_t slot_id(uint64_t v) { /* v != 0 */
  return (uint32_t)v - 1;
}

static inline uint32_t slot_home(uint64_t v, uint32_t cap) {
  return (uint32_t)(v >> 32) & (cap - 1);
}

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;

  memcpy(&v, p, sizeof(v));
  return v;
}

static inline uint32_t load32(const uint8_t *p) {
  uint32_t v;

  memcpy(&v, p, sizeof(v));
  return v;
}

/* Equal bytes; keys are mostly short, so lengths up to 16 are compared inline with two
 * overlapping loads instead of a call to memcmp. */
static inline bool bytes_eq(const uint8_t *a, weir_buf b) {
  size_t n = b.len;

  if (n >= 8 && n <= 16)
    return load64(a) == load64(b.ptr) && load64(a + n - 8) == load64(b.ptr + n - 8);
  if (n >= 4 && n < 8)
    return load32(a) == load32(b.ptr) && load32(a + n - 4) == load32(b.ptr + n - 4);
  return n == 0 || memcmp(a, b.ptr, n) == 0;
}

static inline const uint8_t *val_ptr(const struct entry *e) {
  return e->mem != NULL ? e->mem + e->klen : (const uint8_t *)"";
}

static inline const uint8_t *key_ptr(const struct entry *e) {
  return e->mem != NULL ? e->mem : (const uint8_t *)"";
}

/* Value or head entry for `key`, or NIL; *slot gets its index slot. */
static uint32_t find_key(const struct kstate *s, uint64_t h, weir_buf key, uint32_t *slot) {
  const struct index *ix = &s->keys_idx;
  uint32_t i, tag = tag_of(h);
  uint64_t v;

  if (ix->cap == 0)
    return NIL;
  for (i = home(h, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
    const struct entry *e;

    if ((v = ix->slots[i]) == 0)
      return NIL;
    if ((uint32_t)(v >> 32) != tag)
      continue;
    e = &s->ents[slot_id(v)];
    if (e->hash == h && e->klen == key.len && bytes_eq(e->mem, key)) {
      *slot = i;
      return slot_id(v);
    }
  }
}

/* Map item of `head` for `mk`, or NIL. */
static uint32_t find_item(const struct kstate *s, uint32_t head, uint64_t h, weir_buf mk,
                          uint32_t *slot) {
  const struct index *ix = &s->items_idx;
  uint32_t i, tag = tag_of(h);
  uint64_t v;

  if (ix->cap == 0)
    return NIL;
  for (i = home(h, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
    const struct entry *e;

    if ((v = ix->slots[i]) == 0)
      return NIL;
    if ((uint32_t)(v >> 32) != tag)
      continue;
    e = &s->ents[slot_id(v)];
    if (e->hash == h && e->link == head && e->klen == mk.len && bytes_eq(e->mem, mk)) {
      *slot = i;
      return slot_id(v);
    }
  }
}

static uint32_t slot_of(const struct kstate *s, const struct index *ix, uint32_t id) {
  uint64_t want = slot_make(s->ents[id].hash, id);
  uint32_t i;

  for (i = home(s->ents[id].hash, ix->cap); ix->slots[i] != want; i = (i + 1) & (ix->cap - 1))
    WEIR_ASSERT(ix->slots[i] != 0);
  return i;
}

/* Puts slot value v (non-zero) at the first empty slot from its home. */
static void index_put(uint64_t *slots, uint32_t cap, uint64_t v) {
  uint32_t i;

  for (i = slot_home(v, cap); slots[i] != 0; i = (i + 1) & (cap - 1))
    ;
  slots[i] = v;
}

/* Makes room for `more` insertions without exceeding the load factor. */
static int index_reserve(struct kstate *s, struct index *ix, uint32_t more) {
  uint64_t want = (uint64_t)ix->len + more;
  uint32_t cap = ix->cap != 0 ? ix->cap : 16, i;
  uint64_t *slots;
  int rc;

  if (want * 10 <= (uint64_t)ix->cap * 7)
    return 0;
  while (want * 10 > (uint64_t)cap * 7) {
    if (cap >= MAX_INDEX_CAP)
      return set_err(WEIR_ETOOBIG, "keyed state '%s': hash table bound reached", s->name);
    cap *= 2;
  }
  if ((rc = charge(s->b, (size_t)cap * sizeof(uint64_t))) != 0)
    return rc;
  if ((slots = calloc(cap, sizeof(uint64_t))) == NULL) {
    uncharge(s->b, (size_t)cap * sizeof(uint64_t));
    return set_err(WEIR_ENOMEM, "keyed state '%s': out of memory growing its table", s->name);
  }
  for (i = 0; i < ix->cap; i++)
    if (ix->slots[i] != 0)
      index_put(slots, cap, ix->slots[i]);
  free(ix->slots);
  uncharge(s->b, (size_t)ix->cap * sizeof(uint64_t));
  ix->slots = slots;
  ix->cap = cap;
  return 0;
}

static void index_insert(struct kstate *s, struct index *ix, uint32_t id) {
  WEIR_ASSERT((uint64_t)(ix->len + 1) * 10 <= (uint64_t)ix->cap * 7);
  index_put(ix->slots, ix->cap, slot_make(s->ents[id].hash, id));
  ix->len++;
}

/* Backward-shift deletion: no tombstones, so probe lengths do not decay under churn. */
static void index_delete(struct index *ix, uint32_t slot) {
  uint32_t mask = ix->cap - 1, i = slot, j = slot, k;

  for (;;) {
    j = (j + 1) & mask;
    if (ix->slots[j] == 0)
      break;
    k = slot_home(ix->slots[j], ix->cap);
    /* The entry at j may stay if its home lies cyclically in (i, j]. */
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    ix->slots[i] = ix->slots[j];
    i = j;
  }
  ix->slots[i] = 0;
  ix->len--;
}

/* Makes sure `more` entries can be taken without growing the array. */
static int ent_reserve(struct kstate *s, uint32_t more) {
  uint32_t on_free = 0, f, cap;
  uint64_t need;
  struct entry *ents;
  int rc;

  for (f = s->free_ent; f != NIL && on_free < more; f = s->ents[f].next)
    on_free++;
  need = (uint64_t)s->n_ents + (more - on_free); /* the rest comes from the high-water mark */
  if (need <= s->cap_ents)
    return 0;
  if (need > MAX_ENTRIES)
    return set_err(WEIR_ETOOBIG, "keyed state '%s': entry bound reached", s->name);
  for (cap = s->cap_ents != 0 ? s->cap_ents : 64; cap < need;)
    cap *= 2;
  if ((rc = charge(s->b, (size_t)(cap - s->cap_ents) * sizeof(struct entry))) != 0)
    return rc;
  if ((ents = realloc(s->ents, (size_t)cap * sizeof(struct entry))) == NULL) {
    uncharge(s->b, (size_t)(cap - s->cap_ents) * sizeof(struct entry));
    return set_err(WEIR_ENOMEM, "keyed state '%s': out of memory growing its entries", s->name);
  }
  s->ents = ents;
  s->cap_ents = cap;
  return 0;
}

static uint32_t ent_take(struct kstate *s) {
  uint32_t id;

  if (s->free_ent != NIL) {
    id = s->free_ent;
    s->free_ent = s->ents[id].next;
  } else {
    WEIR_ASSERT(s->n_ents < s->cap_ents);
    id = s->n_ents++;
  }
  memset(&s->ents[id], 0, sizeof(s->ents[id]));
  s->ents[id].next = s->ents[id].prev = s->ents[id].link = NIL;
  return id;
}

static void ent_release(struct kstate *s, uint32_t id) {
  struct entry *e = &s->ents[id];

  block_free(s->b, e->mem, e->cap);
  e->mem = NULL;
  e->cap = 0;
  e->type = E_FREE;
  e->next = s->free_ent;
  s->free_ent = id;
}

/*
 * Creates an entry holding a|v, indexed in `ix` (NULL: not indexed). All fallible steps come
 * first, so a failure leaves the state unchanged.
 */
static int new_entry(struct kstate *s, struct index *ix, uint8_t type, uint64_t h, uint32_t kg,
                     weir_buf a, weir_buf v, uint32_t *out) {
  uint8_t *mem;
  uint32_t cap, id;
  struct entry *e;
  int rc;

  if (ix != NULL && (rc = index_reserve(s, ix, 1)) != 0)
    return rc;
  if ((rc = ent_reserve(s, 1)) != 0)
    return rc;
  if ((rc = block_alloc(s->b, a.len + v.len, &mem, &cap)) != 0)
    return rc;
  id = ent_take(s);
  e = &s->ents[id];
  e->hash = h;
  e->mem = mem;
  e->cap = cap;
  e->klen = (uint32_t)a.len;
  e->vlen = (uint32_t)v.len;
  e->kg = kg;
  e->type = type;
  if (a.len > 0)
    memcpy(mem, a.ptr, a.len);
  if (v.len > 0)
    memcpy(mem + a.len, v.ptr, v.len);
  if (ix != NULL)
    index_insert(s, ix, id);
  if (type != E_ITEM)
    s->keys++;
  *out = id;
  return 0;
}

/* Replaces an entry's value; `v` may point into the entry's own block. */
static int set_value(struct kstate *s, uint32_t id, weir_buf v) {
  struct entry *e = &s->ents[id];
  uint8_t *mem;
  uint32_t cap;
  int rc;

  if ((size_t)e->klen + v.len <= e->cap) {
    if (v.len > 0)
      memmove(e->mem + e->klen, v.ptr, v.len);
    e->vlen = (uint32_t)v.len;
    return 0;
  }
  if ((rc = block_alloc(s->b, (size_t)e->klen + v.len, &mem, &cap)) != 0)
    return rc;
  e = &s->ents[id];
  if (e->klen > 0)
    memcpy(mem, e->mem, e->klen);
  memcpy(mem + e->klen, v.ptr, v.len); /* v.len > 0 here: a 0-length value always fits */
  block_free(s->b, e->mem, e->cap);
  e->mem = mem;
  e->cap = cap;
  e->vlen = (uint32_t)v.len;
  return 0;
}

/* Unindexes and frees a value or head entry (a head's items must be gone). */
static void drop_key(struct kstate *s, uint32_t id, uint32_t slot) {
  index_delete(&s->keys_idx, slot);
  ent_release(s, id);
  s->keys--;
}

/* ---- argument checks ------------------------------------------------------------------------ */

static int check_buf(weir_buf v, const char *what) {
  if (v.ptr == NULL && v.len > 0)
    return set_err(WEIR_EINVAL, "keyed state: %s has NULL bytes with length %zu", what, v.len);
  return 0;
}

/* Checks that this subtask owns the key group of `key`, whose hash is h (key_hash). */
static int locate_h(const struct kstate *s, weir_buf key, uint64_t h, uint32_t *kg) {
  const struct weir__keyed_backend *b = s->b;
  int rc;

  if ((rc = check_buf(key, "key")) != 0)
    return rc;
  *kg = b->kg_mask != 0 ? (uint32_t)h & b->kg_mask : (uint32_t)(h % (uint64_t)b->max_par);
  if (*kg < b->kg_first || *kg > b->kg_last)
    return set_err(WEIR_EINVAL,
                   "keyed state '%s': key belongs to key group %u, outside this subtask's key "
                   "groups [%u, %u]; is the operator's input partitioned by this key?",
                   s->name, *kg, b->kg_first, b->kg_last);
  return 0;
}

/* Hashes `key` and checks that this subtask owns its key group. */
static int locate(const struct kstate *s, weir_buf key, uint64_t *h, uint32_t *kg) {
  *h = key.ptr != NULL || key.len == 0 ? key_hash(key) : 0; /* a bad key fails in locate_h */
  return locate_h(s, key, *h, kg);
}

static int check_entry_size(const struct kstate *s, size_t a, size_t b2, size_t c) {
  if (a > WEIR_STATE_MAX_ENTRY_BYTES || b2 > WEIR_STATE_MAX_ENTRY_BYTES ||
      c > WEIR_STATE_MAX_ENTRY_BYTES || a + b2 + c > WEIR_STATE_MAX_ENTRY_BYTES)
    return set_err(WEIR_ETOOBIG, "keyed state '%s': entry of %zu bytes exceeds the %u-byte bound",
                   s->name, a + b2 + c, (unsigned)WEIR_STATE_MAX_ENTRY_BYTES);
  return 0;
}

#define AS_STATE(st, k) as_state((const void *)(st), (k))

static struct kstate *as_state(const void *st, enum weir__state_kind kind) {
  struct kstate *s = (struct kstate *)(uintptr_t)st;

  WEIR_ASSERT(s != NULL && s->kind == kind);
  return s;
}

/* ---- value state ---------------------------------------------------------------------------- */

uint64_t weir__state_key_hash(weir_buf key) {
  return key.ptr != NULL || key.len == 0 ? key_hash(key) : 0;
}

int weir__value_state_get_h(weir_value_state *st, weir_buf key, uint64_t h, weir_buf *val) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_VALUE);
  uint32_t kg, id, slot;
  int rc;

  if ((rc = locate_h(s, key, h, &kg)) != 0)
    return rc;
  if ((id = find_key(s, h, key, &slot)) == NIL)
    return WEIR_ENOTFOUND;
  val->ptr = val_ptr(&s->ents[id]);
  val->len = s->ents[id].vlen;
  return 0;
}

int weir_value_state_get(weir_value_state *st, weir_buf key, weir_buf *val) {
  return weir__value_state_get_h(st, key, weir__state_key_hash(key), val);
}

int weir__value_state_put_h(weir_value_state *st, weir_buf key, uint64_t h, weir_buf val) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_VALUE);
  uint32_t kg, id, slot;
  int rc;

  if ((rc = check_buf(val, "value")) != 0 || (rc = check_entry_size(s, key.len, val.len, 0)) ||
      (rc = locate_h(s, key, h, &kg)) != 0)
    return rc;
  if ((id = find_key(s, h, key, &slot)) != NIL)
    return set_value(s, id, val);
  return new_entry(s, &s->keys_idx, E_VALUE, h, kg, key, val, &id);
}

int weir_value_state_put(weir_value_state *st, weir_buf key, weir_buf val) {
  return weir__value_state_put_h(st, key, weir__state_key_hash(key), val);
}

int weir__value_state_remove_h(weir_value_state *st, weir_buf key, uint64_t h) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_VALUE);
  uint32_t kg, id, slot;
  int rc;

  if ((rc = locate_h(s, key, h, &kg)) != 0)
    return rc;
  if ((id = find_key(s, h, key, &slot)) == NIL)
    return WEIR_ENOTFOUND;
  drop_key(s, id, slot);
  return 0;
}

int weir_value_state_remove(weir_value_state *st, weir_buf key) {
  return weir__value_state_remove_h(st, key, weir__state_key_hash(key));
}

/*
 * Each stage reads only what the previous one prefetched: the home slot's cache line, then
 * the entry of the first slot from home whose tag matches (stopping at an empty slot or the
 * end of that line), then the entry's key and value bytes. Reads only; a stale hint (the
 * state changed since) costs nothing but the wasted prefetch.
 */
void weir__value_state_prefetch(weir_value_state *st, uint64_t h, int stage) {
  const struct kstate *s = AS_STATE(st, WEIR__STATE_VALUE);
  const struct index *ix = &s->keys_idx;
  uint32_t i, tag = tag_of(h), n;
  uint64_t v;

  if (ix->cap == 0)
    return;
  i = home(h, ix->cap);
  if (stage == 0) {
    __builtin_prefetch(&ix->slots[i], 1, 3);
    return;
  }
  for (n = 0; n < 8 && i + n < ix->cap; n++) { /* one 64-byte line of slots at most */
    if ((v = ix->slots[i + n]) == 0)
      return;
    if ((uint32_t)(v >> 32) != tag)
      continue;
    if (stage == 1) {
      const uint8_t *e = (const uint8_t *)&s->ents[slot_id(v)];

      __builtin_prefetch(e, 1, 3);
      if (((uintptr_t)e & 63) > 64 - offsetof(struct entry, next)) /* hot fields cross a line */
        __builtin_prefetch(e + offsetof(struct entry, next), 1, 3);
    } else if (s->ents[slot_id(v)].mem != NULL) {
      const uint8_t *m = s->ents[slot_id(v)].mem;

      __builtin_prefetch(m, 1, 3);
      if (s->ents[slot_id(v)].cap > 64)
        __builtin_prefetch(m + 64, 1, 3);
    }
    return;
  }
}

size_t weir_value_state_count(const weir_value_state *st) {
  return (size_t)AS_STATE(st, WEIR__STATE_VALUE)->keys;
}

int weir__value_state_get_mut_h(weir_value_state *st, weir_buf key, uint64_t h, uint8_t **ptr,
                                size_t *len) {
  weir_buf v;
  int rc = weir__value_state_get_h(st, key, h, &v);

  if (rc != 0)
    return rc;
  /* The bytes live in the entry's own slab block (a static "" when empty, never written
   * since len is 0 then); snapshots are synchronous, so nothing else reads them meanwhile. */
  *ptr = (uint8_t *)(uintptr_t)v.ptr;
  *len = v.len;
  return 0;
}

int weir__value_state_get_mut(weir_value_state *st, weir_buf key, uint8_t **ptr, size_t *len) {
  return weir__value_state_get_mut_h(st, key, weir__state_key_hash(key), ptr, len);
}

int weir__value_state_foreach(weir_value_state *st, weir__value_state_cb cb, void *data) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_VALUE);
  uint32_t id;
  int rc;

  for (id = 0; id < s->n_ents; id++) {
    const struct entry *e = &s->ents[id];

    if (e->type != E_VALUE)
      continue;
    if ((rc = cb(data, (weir_buf){key_ptr(e), e->klen}, (weir_buf){val_ptr(e), e->vlen})) != 0)
      return rc;
  }
  return 0;
}

/* ---- map state ------------------------------------------------------------------------------ */

static void map_unlink_item(struct kstate *s, uint32_t head, uint32_t id) {
  struct entry *e = &s->ents[id];

  if (e->prev != NIL)
    s->ents[e->prev].next = e->next;
  else
    s->ents[head].link = e->next;
  if (e->next != NIL)
    s->ents[e->next].prev = e->prev;
  s->ents[head].count--;
}

int weir_map_state_get(weir_map_state *st, weir_buf key, weir_buf map_key, weir_buf *val) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_MAP);
  uint32_t kg, head, id, slot;
  uint64_t h;
  int rc;

  if ((rc = locate(s, key, &h, &kg)) != 0 || (rc = check_buf(map_key, "map key")) != 0)
    return rc;
  if ((head = find_key(s, h, key, &slot)) == NIL ||
      (id = find_item(s, head, item_hash(h, map_key), map_key, &slot)) == NIL)
    return WEIR_ENOTFOUND;
  val->ptr = val_ptr(&s->ents[id]);
  val->len = s->ents[id].vlen;
  return 0;
}

/* Inserts a new item under `head` (which exists). */
static int map_add_item(struct kstate *s, uint32_t head, uint64_t ih, weir_buf mk, weir_buf val) {
  uint32_t id, first;
  int rc;

  if ((rc = new_entry(s, &s->items_idx, E_ITEM, ih, s->ents[head].kg, mk, val, &id)) != 0)
    return rc;
  first = s->ents[head].link;
  s->ents[id].link = head;
  s->ents[id].next = first;
  if (first != NIL)
    s->ents[first].prev = id;
  s->ents[head].link = id;
  s->ents[head].count++;
  return 0;
}

int weir_map_state_put(weir_map_state *st, weir_buf key, weir_buf map_key, weir_buf val) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_MAP);
  weir_buf none = {NULL, 0};
  uint32_t kg, head, id, slot, hslot;
  uint64_t h, ih;
  bool created = false;
  int rc;

  if ((rc = check_buf(val, "value")) != 0 || (rc = check_buf(map_key, "map key")) != 0 ||
      (rc = check_entry_size(s, key.len, map_key.len, val.len)) != 0 ||
      (rc = locate(s, key, &h, &kg)) != 0)
    return rc;
  ih = item_hash(h, map_key);
  if ((head = find_key(s, h, key, &hslot)) != NIL &&
      (id = find_item(s, head, ih, map_key, &slot)) != NIL)
    return set_value(s, id, val);
  if (head == NIL) {
    if ((rc = new_entry(s, &s->keys_idx, E_HEAD, h, kg, key, none, &head)) != 0)
      return rc;
    created = true;
  }
  if ((rc = map_add_item(s, head, ih, map_key, val)) != 0 && created)
    drop_key(s, head, slot_of(s, &s->keys_idx, head));
  return rc;
}

int weir_map_state_remove(weir_map_state *st, weir_buf key, weir_buf map_key) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_MAP);
  uint32_t kg, head, id, slot, hslot;
  uint64_t h;
  int rc;

  if ((rc = locate(s, key, &h, &kg)) != 0 || (rc = check_buf(map_key, "map key")) != 0)
    return rc;
  if ((head = find_key(s, h, key, &hslot)) == NIL ||
      (id = find_item(s, head, item_hash(h, map_key), map_key, &slot)) == NIL)
    return WEIR_ENOTFOUND;
  map_unlink_item(s, head, id);
  index_delete(&s->items_idx, slot);
  ent_release(s, id);
  if (s->ents[head].count == 0)
    drop_key(s, head, hslot);
  return 0;
}

/* Frees every item of a map or list head, then the head. */
static void drop_head(struct kstate *s, uint32_t head, uint32_t hslot) {
  uint32_t id = s->ents[head].link, next;

  while (id != NIL) {
    next = s->ents[id].next;
    if (s->kind == WEIR__STATE_MAP)
      index_delete(&s->items_idx, slot_of(s, &s->items_idx, id));
    ent_release(s, id);
    id = next;
  }
  drop_key(s, head, hslot);
}

int weir_map_state_clear(weir_map_state *st, weir_buf key) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_MAP);
  uint32_t kg, head, hslot;
  uint64_t h;
  int rc;

  if ((rc = locate(s, key, &h, &kg)) != 0)
    return rc;
  if ((head = find_key(s, h, key, &hslot)) != NIL)
    drop_head(s, head, hslot);
  return 0;
}

int weir_map_state_foreach(weir_map_state *st, weir_buf key, weir_map_state_cb cb, void *data) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_MAP);
  uint32_t kg, head, hslot, id;
  uint64_t h;
  int rc;

  if ((rc = locate(s, key, &h, &kg)) != 0)
    return rc;
  if ((head = find_key(s, h, key, &hslot)) == NIL)
    return 0;
  for (id = s->ents[head].link; id != NIL; id = s->ents[id].next) {
    const struct entry *e = &s->ents[id];
    weir_buf mk = {key_ptr(e), e->klen}, v = {val_ptr(e), e->vlen};

    if ((rc = cb(data, mk, v)) != 0)
      return rc;
  }
  return 0;
}

/* ---- list state ----------------------------------------------------------------------------- */

static int list_add_item(struct kstate *s, uint32_t head, weir_buf val) {
  weir_buf none = {NULL, 0};
  uint32_t id, last;
  int rc;

  if ((rc = new_entry(s, NULL, E_ITEM, 0, s->ents[head].kg, none, val, &id)) != 0)
    return rc;
  last = s->ents[head].prev;
  if (last != NIL)
    s->ents[last].next = id;
  else
    s->ents[head].link = id;
  s->ents[head].prev = id;
  s->ents[head].count++;
  return 0;
}

int weir_list_state_append(weir_list_state *st, weir_buf key, weir_buf val) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_LIST);
  weir_buf none = {NULL, 0};
  uint32_t kg, head, hslot;
  bool created = false;
  uint64_t h;
  int rc;

  if ((rc = check_buf(val, "value")) != 0 || (rc = check_entry_size(s, key.len, val.len, 0)) ||
      (rc = locate(s, key, &h, &kg)) != 0)
    return rc;
  if ((head = find_key(s, h, key, &hslot)) == NIL) {
    if ((rc = new_entry(s, &s->keys_idx, E_HEAD, h, kg, key, none, &head)) != 0)
      return rc;
    created = true;
  }
  if ((rc = list_add_item(s, head, val)) != 0 && created)
    drop_key(s, head, slot_of(s, &s->keys_idx, head));
  return rc;
}

int weir_list_state_foreach(weir_list_state *st, weir_buf key, weir_list_state_cb cb, void *data) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_LIST);
  uint32_t kg, head, hslot, id;
  uint64_t h;
  int rc;

  if ((rc = locate(s, key, &h, &kg)) != 0)
    return rc;
  if ((head = find_key(s, h, key, &hslot)) == NIL)
    return 0;
  for (id = s->ents[head].link; id != NIL; id = s->ents[id].next) {
    weir_buf v = {val_ptr(&s->ents[id]), s->ents[id].vlen};

    if ((rc = cb(data, v)) != 0)
      return rc;
  }
  return 0;
}

size_t weir_list_state_len(weir_list_state *st, weir_buf key) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_LIST);
  uint32_t kg, head, hslot;
  uint64_t h;

  if (locate(s, key, &h, &kg) != 0 || (head = find_key(s, h, key, &hslot)) == NIL)
    return 0;
  return s->ents[head].count;
}

int weir_list_state_clear(weir_list_state *st, weir_buf key) {
  struct kstate *s = AS_STATE(st, WEIR__STATE_LIST);
  uint32_t kg, head, hslot;
  uint64_t h;
  int rc;

  if ((rc = locate(s, key, &h, &kg)) != 0)
    return rc;
  if ((head = find_key(s, h, key, &hslot)) != NIL)
    drop_head(s, head, hslot);
  return 0;
}

/* ---- backend -------------------------------------------------------------------------------- */

void weir__key_group_range(int subtask, int parallelism, int max_parallelism, uint32_t *first,
                           uint32_t *last) {
  uint64_t p = (uint64_t)parallelism, m = (uint64_t)max_parallelism;

  WEIR_ASSERT(parallelism >= 1 && parallelism <= max_parallelism && subtask >= 0 &&
              subtask < parallelism);
  /* owner(kg) = floor(kg * p / m) = i  <=>  ceil(i * m / p) <= kg < ceil((i + 1) * m / p) */
  *first = (uint32_t)(((uint64_t)subtask * m + p - 1) / p);
  *last = (uint32_t)((((uint64_t)subtask + 1) * m + p - 1) / p - 1);
}

int weir__keyed_backend_create(int max_parallelism, uint32_t kg_first, uint32_t kg_last,
                               size_t max_bytes, struct weir__keyed_backend **out) {
  struct weir__keyed_backend *b;

  if (max_parallelism < 1 || max_parallelism > 32768 || kg_first > kg_last ||
      kg_last >= (uint32_t)max_parallelism || out == NULL)
    return set_err(WEIR_EINVAL, "keyed state: bad key-group range [%u, %u] of %d", kg_first,
                   kg_last, max_parallelism);
  if ((b = calloc(1, sizeof(*b))) == NULL)
    return set_err(WEIR_ENOMEM, "keyed state: out of memory");
  b->max_par = max_parallelism;
  if ((max_parallelism & (max_parallelism - 1)) == 0)
    b->kg_mask = (uint32_t)max_parallelism - 1;
  b->kg_first = kg_first;
  b->kg_last = kg_last;
  b->max_bytes = max_bytes != 0 ? max_bytes : WEIR__STATE_DEFAULT_MAX_BYTES;
  *out = b;
  return 0;
}

void weir__keyed_backend_destroy(struct weir__keyed_backend *b) {
  size_t i;
  uint32_t j;

  if (b == NULL)
    return;
  for (i = 0; i < b->n_states; i++) {
    struct kstate *s = b->states[i];

    for (j = 0; j < s->n_ents; j++) /* big blocks are separate mallocs */
      if (s->ents[j].type != E_FREE && s->ents[j].cap > ((uint32_t)1 << SLAB_MAX_SHIFT))
        free(s->ents[j].mem);
    free(s->ents);
    free(s->keys_idx.slots);
    free(s->items_idx.slots);
    free(s);
  }
  while (b->chunks != NULL) {
    struct chunk *next = b->chunks->next;

    free(b->chunks);
    b->chunks = next;
  }
  free(b);
}

int weir__keyed_backend_register(struct weir__keyed_backend *b, enum weir__state_kind kind,
                                 const char *name, void **state) {
  struct kstate *s;
  size_t i, len;
  int rc;

  if (b == NULL || name == NULL || state == NULL ||
      (kind != WEIR__STATE_VALUE && kind != WEIR__STATE_MAP && kind != WEIR__STATE_LIST))
    return set_err(WEIR_EINVAL, "keyed state: bad registration arguments");
  len = strlen(name);
  if (len == 0 || len > WEIR_STATE_MAX_NAME)
    return set_err(WEIR_EINVAL, "keyed state: name must be 1..%d bytes", WEIR_STATE_MAX_NAME);
  for (i = 0; i < b->n_states; i++) {
    if (strcmp(b->states[i]->name, name) != 0)
      continue;
    if (b->states[i]->kind != kind)
      return set_err(WEIR_EINVAL, "keyed state '%s' exists with another kind (%d, not %d)", name,
                     (int)b->states[i]->kind, (int)kind);
    *state = b->states[i];
    return 0;
  }
  if (b->n_states == MAX_STATES)
    return set_err(WEIR_ETOOBIG, "keyed state: more than %d states in one operator", MAX_STATES);
  if ((rc = charge(b, sizeof(*s))) != 0)
    return rc;
  if ((s = calloc(1, sizeof(*s))) == NULL) {
    uncharge(b, sizeof(*s));
    return set_err(WEIR_ENOMEM, "keyed state: out of memory");
  }
  s->b = b;
  s->kind = kind;
  memcpy(s->name, name, len + 1);
  s->free_ent = NIL;
  b->states[b->n_states++] = s;
  *state = s;
  return 0;
}

size_t weir__keyed_backend_bytes(const struct weir__keyed_backend *b) {
  return b->bytes;
}

uint64_t weir__keyed_backend_key_count(const struct weir__keyed_backend *b) {
  uint64_t n = 0;
  size_t i;

  for (i = 0; i < b->n_states; i++)
    n += b->states[i]->keys;
  return n;
}

/* ---- bump arena (snapshot encoding and blob decoding) --------------------------------------- */

struct achunk {
  struct achunk *next;
  size_t len;
};

struct arena {
  struct achunk *chunks;
  uint8_t *cur;
  size_t left;
  size_t total;
  size_t limit;
  bool failed;
};

#define ARENA_ALIGN alignof(max_align_t)

static void *arena_alloc(struct arena *a, size_t n) {
  size_t hdr = (sizeof(struct achunk) + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1), len;
  struct achunk *c;
  void *p;

  n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (n == 0)
    n = ARENA_ALIGN;
  if (n > a->left) {
    len = n > CHUNK_BYTES ? n : CHUNK_BYTES;
    if (a->total + len > a->limit || (c = malloc(hdr + len)) == NULL) {
      a->failed = true;
      return NULL;
    }
    a->total += len;
    c->next = a->chunks;
    c->len = len;
    a->chunks = c;
    a->cur = (uint8_t *)c + hdr;
    a->left = len;
  }
  p = a->cur;
  a->cur += n;
  a->left -= n;
  return p;
}

static void arena_free_all(struct arena *a) {
  while (a->chunks != NULL) {
    struct achunk *next = a->chunks->next;

    free(a->chunks);
    a->chunks = next;
  }
}

static void *pb_alloc(void *data, size_t size) {
  return arena_alloc(data, size);
}

static void pb_free(void *data, void *ptr) {
  (void)data;
  (void)ptr; /* released with the arena */
}

/* ---- snapshot ------------------------------------------------------------------------------- */

static ProtobufCBinaryData pb_bytes(const uint8_t *p, size_t len) {
  ProtobufCBinaryData d;

  d.data = (uint8_t *)(uintptr_t)p;
  d.len = len;
  return d;
}

#define ARENA_ARRAY(a, type, n) ((type *)arena_alloc((a), sizeof(type) * ((n) != 0 ? (n) : 1)))

/* Builds one state's entry messages, grouped by key group: per[kg - first] receives the
 * StateEntries for that group (or stays NULL when the state has no key there). */
static int build_state(struct arena *a, const struct kstate *s, uint32_t si, uint32_t first,
                       uint32_t ngroups, Weir__Ckpt__StateEntries **per) {
  uint32_t *start = ARENA_ARRAY(a, uint32_t, ngroups + 1), *pos, g, j;
  void **ptrs;
  uint64_t n = s->keys;

  if (start == NULL || (pos = ARENA_ARRAY(a, uint32_t, ngroups)) == NULL ||
      (ptrs = ARENA_ARRAY(a, void *, n)) == NULL)
    return WEIR_ENOMEM;
  memset(start, 0, sizeof(uint32_t) * (ngroups + 1));
  for (j = 0; j < s->n_ents; j++)
    if (s->ents[j].type == E_VALUE || s->ents[j].type == E_HEAD)
      start[s->ents[j].kg - first + 1]++;
  for (g = 0; g < ngroups; g++) {
    start[g + 1] += start[g];
    pos[g] = start[g];
  }
  for (j = 0; j < s->n_ents; j++) {
    const struct entry *e = &s->ents[j];
    uint32_t it, k;

    if (e->type != E_VALUE && e->type != E_HEAD)
      continue;
    if (s->kind == WEIR__STATE_VALUE) {
      Weir__Ckpt__ValueEntry *m = arena_alloc(a, sizeof(*m));

      if (m == NULL)
        return WEIR_ENOMEM;
      weir__ckpt__value_entry__init(m);
      m->key = pb_bytes(key_ptr(e), e->klen);
      m->value = pb_bytes(val_ptr(e), e->vlen);
      ptrs[pos[e->kg - first]++] = m;
    } else if (s->kind == WEIR__STATE_MAP) {
      Weir__Ckpt__MapEntry *m = arena_alloc(a, sizeof(*m));
      Weir__Ckpt__MapPair *pairs = ARENA_ARRAY(a, Weir__Ckpt__MapPair, e->count);
      Weir__Ckpt__MapPair **pp = ARENA_ARRAY(a, Weir__Ckpt__MapPair *, e->count);

      if (m == NULL || pairs == NULL || pp == NULL)
        return WEIR_ENOMEM;
      weir__ckpt__map_entry__init(m);
      m->key = pb_bytes(key_ptr(e), e->klen);
      for (it = e->link, k = 0; it != NIL; it = s->ents[it].next, k++) {
        weir__ckpt__map_pair__init(&pairs[k]);
        pairs[k].map_key = pb_bytes(key_ptr(&s->ents[it]), s->ents[it].klen);
        pairs[k].value = pb_bytes(val_ptr(&s->ents[it]), s->ents[it].vlen);
        pp[k] = &pairs[k];
      }
      WEIR_ASSERT(k == e->count);
      m->n_pairs = k;
      m->pairs = pp;
      ptrs[pos[e->kg - first]++] = m;
    } else {
      Weir__Ckpt__ListEntry *m = arena_alloc(a, sizeof(*m));
      ProtobufCBinaryData *vals = ARENA_ARRAY(a, ProtobufCBinaryData, e->count);

      if (m == NULL || vals == NULL)
        return WEIR_ENOMEM;
      weir__ckpt__list_entry__init(m);
      m->key = pb_bytes(key_ptr(e), e->klen);
      for (it = e->link, k = 0; it != NIL; it = s->ents[it].next, k++)
        vals[k] = pb_bytes(val_ptr(&s->ents[it]), s->ents[it].vlen);
      WEIR_ASSERT(k == e->count);
      m->n_values = k;
      m->values = vals;
      ptrs[pos[e->kg - first]++] = m;
    }
  }
  for (g = 0; g < ngroups; g++) {
    Weir__Ckpt__StateEntries *se;
    size_t cnt = start[g + 1] - start[g];

    if (cnt == 0)
      continue;
    if ((se = arena_alloc(a, sizeof(*se))) == NULL)
      return WEIR_ENOMEM;
    weir__ckpt__state_entries__init(se);
    se->state = si;
    if (s->kind == WEIR__STATE_VALUE) {
      se->n_values = cnt;
      se->values = (Weir__Ckpt__ValueEntry **)(ptrs + start[g]);
    } else if (s->kind == WEIR__STATE_MAP) {
      se->n_maps = cnt;
      se->maps = (Weir__Ckpt__MapEntry **)(ptrs + start[g]);
    } else {
      se->n_lists = cnt;
      se->lists = (Weir__Ckpt__ListEntry **)(ptrs + start[g]);
    }
    per[g] = se;
  }
  return 0;
}

int weir__keyed_backend_snapshot(const struct weir__keyed_backend *b, const char *uid, int subtask,
                                 int parallelism, const uint8_t *operator_bytes,
                                 size_t operator_len, struct weir__snapshot_blob *out) {
  Weir__Ckpt__OperatorSnapshot msg = WEIR__CKPT__OPERATOR_SNAPSHOT__INIT;
  struct arena a = {NULL, NULL, 0, 0, SIZE_MAX, false};
  uint32_t ngroups, g, si, ng = 0;
  Weir__Ckpt__StateEntries **per = NULL; /* [state][group] */
  size_t len;
  uint8_t *buf = NULL;
  int rc;

  if (b == NULL || uid == NULL || out == NULL || parallelism < 1 || parallelism > b->max_par ||
      subtask < 0 || subtask >= parallelism || (operator_bytes == NULL && operator_len > 0)) {
    rc = set_err(WEIR_EINVAL, "snapshot: bad arguments (uid %s, subtask %d/%d)",
                 uid != NULL ? uid : "(null)", subtask, parallelism);
    goto fail;
  }
  ngroups = b->kg_last - b->kg_first + 1;
  msg.format_version = WEIR__SNAPSHOT_FORMAT_VERSION;
  msg.uid = (char *)(uintptr_t)uid;
  msg.subtask = (uint32_t)subtask;
  msg.parallelism = (uint32_t)parallelism;
  msg.max_parallelism = (uint32_t)b->max_par;
  msg.key_group_first = b->kg_first;
  msg.key_group_last = b->kg_last;
  msg.operator_state = pb_bytes(operator_bytes, operator_len);
  msg.key_count = weir__keyed_backend_key_count(b);
  msg.n_states = b->n_states;
  msg.states = ARENA_ARRAY(&a, Weir__Ckpt__StateDescriptor *, b->n_states);
  per = ARENA_ARRAY(&a, Weir__Ckpt__StateEntries *, (size_t)ngroups * b->n_states);
  if (msg.states == NULL || per == NULL)
    goto nomem;
  memset(per, 0, sizeof(*per) * (size_t)ngroups * b->n_states);
  for (si = 0; si < b->n_states; si++) {
    Weir__Ckpt__StateDescriptor *d = arena_alloc(&a, sizeof(*d));

    if (d == NULL)
      goto nomem;
    weir__ckpt__state_descriptor__init(d);
    d->name = (char *)b->states[si]->name;
    d->kind = (Weir__Ckpt__StateKind)b->states[si]->kind;
    msg.states[si] = d;
    if (build_state(&a, b->states[si], si, b->kg_first, ngroups, per + (size_t)si * ngroups))
      goto nomem;
  }
  /* Key groups in ascending order, each with the states that have keys in it. */
  for (g = 0; g < ngroups; g++)
    for (si = 0; si < b->n_states; si++)
      if (per[(size_t)si * ngroups + g] != NULL) {
        ng++;
        break;
      }
  msg.n_key_groups = ng;
  if ((msg.key_groups = ARENA_ARRAY(&a, Weir__Ckpt__KeyGroup *, ng)) == NULL)
    goto nomem;
  ng = 0;
  for (g = 0; g < ngroups; g++) {
    Weir__Ckpt__KeyGroup *kgm = NULL;

    for (si = 0; si < b->n_states; si++) {
      Weir__Ckpt__StateEntries *se = per[(size_t)si * ngroups + g];

      if (se == NULL)
        continue;
      if (kgm == NULL) {
        if ((kgm = arena_alloc(&a, sizeof(*kgm))) == NULL)
          goto nomem;
        weir__ckpt__key_group__init(kgm);
        kgm->states = ARENA_ARRAY(&a, Weir__Ckpt__StateEntries *, b->n_states);
        if (kgm->states == NULL)
          goto nomem;
        kgm->key_group = b->kg_first + g;
        msg.key_groups[ng++] = kgm;
      }
      kgm->states[kgm->n_states++] = se;
    }
  }
  len = weir__ckpt__operator_snapshot__get_packed_size(&msg);
  if (len > WEIR__SNAPSHOT_MAX_BYTES) {
    rc = set_err(WEIR_ETOOBIG, "snapshot of '%s' subtask %d: %zu bytes exceeds the %zu-byte bound",
                 uid, subtask, len, (size_t)WEIR__SNAPSHOT_MAX_BYTES);
    goto fail;
  }
  if ((buf = malloc(len != 0 ? len : 1)) == NULL)
    goto nomem;
  WEIR_ASSERT(weir__ckpt__operator_snapshot__pack(&msg, buf) == len);
  out->ptr = buf;
  out->len = len;
  out->key_count = msg.key_count;
  arena_free_all(&a);
  return 0;

nomem:
  rc = set_err(WEIR_ENOMEM, "snapshot of '%s' subtask %d: out of memory", uid, subtask);
fail:
  WEIR_LOG_ERR("%s", last_err);
  arena_free_all(&a);
  return rc;
}

/* ---- restore -------------------------------------------------------------------------------- */

static weir_buf as_buf(ProtobufCBinaryData d) {
  weir_buf b;

  b.ptr = d.data;
  b.len = d.len;
  return b;
}

/* Inserts restored entries, checking that each key really belongs to key group `kg`. */
static int restore_entries(struct kstate *s, const Weir__Ckpt__StateEntries *se, uint32_t kg,
                           const char *o, uint64_t *restored) {
  weir_buf none = {NULL, 0};
  uint32_t id, slot, head;
  size_t i, j;
  int rc;

  if ((s->kind != WEIR__STATE_VALUE && se->n_values > 0) ||
      (s->kind != WEIR__STATE_MAP && se->n_maps > 0) ||
      (s->kind != WEIR__STATE_LIST && se->n_lists > 0))
    return set_err(WEIR_EPARSE, "%s: state '%s' holds entries of another kind (corrupt)", o,
                   s->name);
  if ((rc = index_reserve(s, &s->keys_idx, (uint32_t)(se->n_values + se->n_maps + se->n_lists))) !=
          0 ||
      (rc = ent_reserve(s, (uint32_t)(se->n_values + se->n_maps + se->n_lists))) != 0)
    return rc;
  for (i = 0; i < se->n_values + se->n_maps + se->n_lists; i++) {
    weir_buf key =
        as_buf(i < se->n_values                ? se->values[i]->key
               : i < se->n_values + se->n_maps ? se->maps[i - se->n_values]->key
                                               : se->lists[i - se->n_values - se->n_maps]->key);
    uint64_t h = key_hash(key);

    if ((uint32_t)(h % (uint64_t)s->b->max_par) != kg)
      return set_err(WEIR_EPARSE,
                     "%s: state '%s' stores a key of key group %u under key group %u (corrupt)", o,
                     s->name, (uint32_t)(h % (uint64_t)s->b->max_par), kg);
    if (find_key(s, h, key, &slot) != NIL)
      return set_err(WEIR_EPARSE,
                     "%s: state '%s' holds a key twice (corrupt, or the same "
                     "snapshot restored twice)",
                     o, s->name);
    if ((rc = check_entry_size(s, key.len, 0, 0)) != 0)
      return rc;
    if (i < se->n_values) {
      weir_buf v = as_buf(se->values[i]->value);

      if ((rc = check_entry_size(s, key.len, v.len, 0)) != 0 ||
          (rc = new_entry(s, &s->keys_idx, E_VALUE, h, kg, key, v, &id)) != 0)
        return rc;
    } else if (i < se->n_values + se->n_maps) {
      const Weir__Ckpt__MapEntry *m = se->maps[i - se->n_values];

      /* The writer drops a map key with its last pair, so an empty one is damage (a lost
       * pairs field), not an empty map: refuse it rather than lose the pairs silently. */
      if (m->n_pairs == 0)
        return set_err(WEIR_EPARSE, "%s: map state '%s' holds a key with no pairs (corrupt)", o,
                       s->name);
      if ((rc = new_entry(s, &s->keys_idx, E_HEAD, h, kg, key, none, &head)) != 0)
        return rc;
      for (j = 0; j < m->n_pairs; j++) {
        weir_buf mk = as_buf(m->pairs[j]->map_key), v = as_buf(m->pairs[j]->value);
        uint64_t ih = item_hash(h, mk);

        if (find_item(s, head, ih, mk, &slot) != NIL)
          return set_err(WEIR_EPARSE, "%s: map state '%s' holds a map key twice (corrupt)", o,
                         s->name);
        if ((rc = check_entry_size(s, key.len, mk.len, v.len)) != 0 ||
            (rc = map_add_item(s, head, ih, mk, v)) != 0)
          return rc;
      }
    } else {
      const Weir__Ckpt__ListEntry *l = se->lists[i - se->n_values - se->n_maps];

      if (l->n_values == 0)
        return set_err(WEIR_EPARSE, "%s: list state '%s' holds a key with no values (corrupt)", o,
                       s->name);
      if ((rc = new_entry(s, &s->keys_idx, E_HEAD, h, kg, key, none, &head)) != 0)
        return rc;
      for (j = 0; j < l->n_values; j++) {
        weir_buf v = as_buf(l->values[j]);

        if ((rc = check_entry_size(s, key.len, v.len, 0)) != 0 ||
            (rc = list_add_item(s, head, v)) != 0)
          return rc;
      }
    }
    (*restored)++;
  }
  return 0;
}

int weir__keyed_backend_restore(struct weir__keyed_backend *b, weir_buf blob, const char *origin,
                                uint8_t **operator_state, size_t *operator_len,
                                struct weir__snapshot_header *hdr) {
  const char *o = origin != NULL ? origin : "snapshot";
  struct arena a = {NULL, NULL, 0, 0, 0, false};
  ProtobufCAllocator alloc = {pb_alloc, pb_free, &a};
  Weir__Ckpt__OperatorSnapshot *msg;
  struct kstate *map[MAX_STATES];
  uint64_t mine[MAX_STATES] = {0};
  uint32_t first, last;
  uint64_t restored = 0, all = 0;
  uint8_t *ops = NULL;
  size_t i, j;
  int rc;

  if (b == NULL || (blob.ptr == NULL && blob.len > 0)) {
    rc = set_err(WEIR_EINVAL, "%s: bad restore arguments", o);
    goto fail;
  }
  if (blob.len > WEIR__SNAPSHOT_MAX_BYTES) {
    rc = set_err(WEIR_ETOOBIG, "%s: blob of %zu bytes exceeds the %zu-byte bound", o, blob.len,
                 (size_t)WEIR__SNAPSHOT_MAX_BYTES);
    goto fail;
  }
  a.limit = blob.len * DECODE_BYTES_PER_BLOB_BYTE + CHUNK_BYTES;
  msg = weir__ckpt__operator_snapshot__unpack(&alloc, blob.len, blob.ptr);
  if (msg == NULL) {
    rc = set_err(a.failed ? WEIR_ENOMEM : WEIR_EPARSE,
                 "%s: snapshot blob of %zu bytes does not decode as an OperatorSnapshot (%s)", o,
                 blob.len, a.failed ? "out of memory" : "truncated or corrupt");
    goto fail;
  }
  if (msg->format_version != WEIR__SNAPSHOT_FORMAT_VERSION) {
    rc = set_err(WEIR_EPARSE,
                 "%s: snapshot format version %u is not supported (this build reads version %u)", o,
                 msg->format_version, WEIR__SNAPSHOT_FORMAT_VERSION);
    goto fail;
  }
  if (msg->max_parallelism != (uint32_t)b->max_par) {
    rc = set_err(WEIR_EINVAL,
                 "%s: written with max parallelism %u, restoring with %d; max parallelism "
                 "must not change across restarts (it fixes the key groups)",
                 o, msg->max_parallelism, b->max_par);
    goto fail;
  }
  if (msg->parallelism < 1 || msg->parallelism > msg->max_parallelism ||
      msg->subtask >= msg->parallelism || msg->n_states > MAX_STATES) {
    rc = set_err(WEIR_EPARSE, "%s: inconsistent header (subtask %u of %u, %zu states)", o,
                 msg->subtask, msg->parallelism, msg->n_states);
    goto fail;
  }
  weir__key_group_range((int)msg->subtask, (int)msg->parallelism, b->max_par, &first, &last);
  if (msg->key_group_first != first || msg->key_group_last != last) {
    rc = set_err(WEIR_EPARSE, "%s: key-group range [%u, %u] does not match subtask %u of %u", o,
                 msg->key_group_first, msg->key_group_last, msg->subtask, msg->parallelism);
    goto fail;
  }
  for (i = 0; i < msg->n_states; i++) {
    const Weir__Ckpt__StateDescriptor *d = msg->states[i];
    void *st;

    if (d->kind < 1 || d->kind > 3 || d->name == NULL || d->name[0] == '\0') {
      rc = set_err(WEIR_EPARSE, "%s: state %zu has an unknown kind %d or no name", o, i,
                   (int)d->kind);
      goto fail;
    }
    if ((rc = weir__keyed_backend_register(b, (enum weir__state_kind)d->kind, d->name, &st)) != 0)
      goto fail_ctx;
    map[i] = st;
  }
  /* Pass 1 validates the structure and counts entries; nothing is inserted yet. */
  for (i = 0; i < msg->n_key_groups; i++) {
    const Weir__Ckpt__KeyGroup *kg = msg->key_groups[i];

    if (kg->key_group < first || kg->key_group > last) {
      rc = set_err(WEIR_EPARSE, "%s: key group %u outside the blob's range [%u, %u] (corrupt)", o,
                   kg->key_group, first, last);
      goto fail;
    }
    for (j = 0; j < kg->n_states; j++) {
      const Weir__Ckpt__StateEntries *se = kg->states[j];

      if (se->state >= msg->n_states) {
        rc = set_err(WEIR_EPARSE, "%s: key group %u refers to state %u of %zu (corrupt)", o,
                     kg->key_group, se->state, msg->n_states);
        goto fail;
      }
      all += se->n_values + se->n_maps + se->n_lists;
      if (kg->key_group >= b->kg_first && kg->key_group <= b->kg_last)
        mine[se->state] += se->n_values + se->n_maps + se->n_lists;
    }
  }
  /* key_count is the last field written: a blob cut at a field boundary, which protobuf alone
   * cannot notice, loses it or entries before it. */
  if (msg->key_count != all) {
    rc = set_err(WEIR_EPARSE,
                 "%s: holds %" PRIu64 " keyed entries but its trailer says %" PRIu64
                 " (truncated or corrupt)",
                 o, all, msg->key_count);
    goto fail;
  }
  /* Size each table once for what is coming: no rehashing while inserting. */
  for (i = 0; i < msg->n_states; i++) {
    if (mine[i] > MAX_ENTRIES) {
      rc = set_err(WEIR_ETOOBIG, "%s: %" PRIu64 " keys exceed the entry bound", o, mine[i]);
      goto fail;
    }
    if ((rc = index_reserve(map[i], &map[i]->keys_idx, (uint32_t)mine[i])) != 0 ||
        (rc = ent_reserve(map[i], (uint32_t)mine[i])) != 0)
      goto fail_ctx;
  }
  /* Pass 2 inserts the entries of the key groups this backend owns. */
  for (i = 0; i < msg->n_key_groups; i++) {
    const Weir__Ckpt__KeyGroup *kg = msg->key_groups[i];

    if (kg->key_group < b->kg_first || kg->key_group > b->kg_last)
      continue;
    for (j = 0; j < kg->n_states; j++)
      if ((rc = restore_entries(map[kg->states[j]->state], kg->states[j], kg->key_group, o,
                                &restored)) != 0)
        goto fail_ctx;
  }
  if (operator_state != NULL) {
    if (msg->operator_state.len > 0) {
      if ((ops = malloc(msg->operator_state.len)) == NULL) {
        rc = set_err(WEIR_ENOMEM, "%s: out of memory", o);
        goto fail;
      }
      memcpy(ops, msg->operator_state.data, msg->operator_state.len);
    }
    *operator_state = ops;
    *operator_len = msg->operator_state.len;
  }
  if (hdr != NULL) {
    hdr->subtask = msg->subtask;
    hdr->parallelism = msg->parallelism;
    hdr->max_parallelism = msg->max_parallelism;
    hdr->kg_first = first;
    hdr->kg_last = last;
    hdr->key_count = restored;
    hdr->key_count_all = all;
  }
  arena_free_all(&a);
  return 0;

fail_ctx:
  /* A budget or kind error from a helper: prefix the blob's name. */
  if (strncmp(last_err, o, strlen(o)) != 0 && strlen(o) + 2 < sizeof(last_err)) {
    size_t ol = strlen(o), keep = strlen(last_err);

    if (keep > sizeof(last_err) - 1 - ol - 2)
      keep = sizeof(last_err) - 1 - ol - 2;
    memmove(last_err + ol + 2, last_err, keep);
    memcpy(last_err, o, ol);
    last_err[ol] = ':';
    last_err[ol + 1] = ' ';
    last_err[ol + 2 + keep] = '\0';
  }
fail:
  WEIR_LOG_ERR("restore: %s", last_err);
  arena_free_all(&a);
  return rc;
}
