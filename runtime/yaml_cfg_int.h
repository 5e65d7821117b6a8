/*
 * yaml_cfg_int.h: a small configuration tree read from YAML (libyaml), with typed getters that
 * report errors as "FILE:LINE:COL: KEY.PATH: what is wrong (hint: what to do)".
 *
 * A document is parsed once into a tree of maps, sequences and scalars. Every scalar has its
 * ${VAR} and ${VAR:-default} references replaced from the environment at parse time (an unset
 * variable without a default is an error naming it; "$${" is a literal "${"). A value that came
 * from the environment is never echoed in an error message: it may be a secret.
 *
 * Getters mark the keys they read. After a map's owner has read everything it knows,
 * weir__cfg_check_unknown reports the first key nobody asked for, suggesting the closest known
 * key. Only the first error is kept; every getter returns WEIR_EPARSE once it is recorded.
 *
 * Bounds: files up to WEIR__CFG_MAX_BYTES, nesting up to WEIR__CFG_MAX_DEPTH, at most
 * WEIR__CFG_MAX_NODES nodes (aliases are expanded, so "billion laughs" documents stop here).
 *
 * Threads: one document is used by one thread at a time.
 */
#ifndef WEIR_YAML_CFG_INT_H
#define WEIR_YAML_CFG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/common.h"

#define WEIR__CFG_MAX_BYTES (4u << 20)
#define WEIR__CFG_MAX_DEPTH 32
#define WEIR__CFG_MAX_NODES 20000
#define WEIR__CFG_MAX_SCALAR 65536 /* bytes of one scalar after interpolation */
#define WEIR__CFG_ERR_MAX 1024

typedef struct weir__cfg_doc weir__cfg_doc;
typedef struct weir__cfg weir__cfg; /* one node; borrowed from its document */

enum weir__cfg_kind { WEIR__CFG_NULL = 0, WEIR__CFG_SCALAR, WEIR__CFG_MAP, WEIR__CFG_SEQ };

/*
 * Parses `len` bytes of YAML. `file` (copied) names the source in messages. On success *doc
 * holds the tree (free with weir__cfg_doc_free). On failure returns WEIR_EPARSE (syntax error,
 * unset variable, bound exceeded) or WEIR_ENOMEM, and *doc still holds a document whose
 * weir__cfg_doc_error() says what was wrong (NULL only for WEIR_ENOMEM).
 */
int weir__cfg_parse(weir__cfg_doc **doc, const char *file, const char *text, size_t len);
void weir__cfg_doc_free(weir__cfg_doc *doc);
/* The first error ("" if none). Borrowed from the document. */
const char *weir__cfg_doc_error(const weir__cfg_doc *doc);
/* The root node (a map in a valid pipeline file; may be of any kind). */
weir__cfg *weir__cfg_root(weir__cfg_doc *doc);

/* Records an error at `node` (its position and key path) unless one is recorded; returns
 * WEIR_EPARSE. `hint` may be NULL. */
int weir__cfg_error(weir__cfg *node, const char *hint, const char *fmt, ...) WEIR_PRINTF(3, 4);
/* True once any error was recorded. */
bool weir__cfg_failed(const weir__cfg *node);

enum weir__cfg_kind weir__cfg_kind(const weir__cfg *node);
/* "sources[0].count"; "" for the root. Borrowed. */
const char *weir__cfg_path(const weir__cfg *node);
/* True when the scalar took text from the environment: never put it in a message. */
bool weir__cfg_from_env(const weir__cfg *node);
/* A scalar's text (interpolated), or NULL for other kinds. Borrowed. */
const char *weir__cfg_scalar(const weir__cfg *node);
/* Maps and sequences: number of entries. Others: 0. */
size_t weir__cfg_len(const weir__cfg *node);
/* Sequence item i, or map value i (with weir__cfg_key for its key). NULL when out of range. */
weir__cfg *weir__cfg_item(const weir__cfg *node, size_t i);
const char *weir__cfg_key(const weir__cfg *node, size_t i);
/* A map's value for `key` (NULL when absent or when `map` is not a map) and marks it read. */
weir__cfg *weir__cfg_get(weir__cfg *map, const char *key);

/*
 * Typed getters on a map. Each marks `key` as known. When the key is absent (or null):
 * `required` records "missing required key" at the map and returns WEIR_EPARSE; otherwise *out
 * is set to `def` and 0 is returned. A present value of the wrong form records an error at the
 * value, naming the key, with a hint. Once an error is recorded every getter returns WEIR_EPARSE.
 */
int weir__cfg_str(weir__cfg *map, const char *key, bool required, const char *def,
                  const char **out);
int weir__cfg_int(weir__cfg *map, const char *key, bool required, int64_t def, int64_t min,
                  int64_t max, int64_t *out);
int weir__cfg_bool(weir__cfg *map, const char *key, bool required, bool def, bool *out);
/* Sizes: "512", "64KiB", "1 MiB", "2GB" (B, KiB/MiB/GiB = 1024^n, KB/MB/GB = 1000^n). */
int weir__cfg_size(weir__cfg *map, const char *key, bool required, uint64_t def, uint64_t min,
                   uint64_t max, uint64_t *out);
/* Durations in ms: "250ms", "10s", "1m", "2h", "1d"; a bare "0" is zero. */
int weir__cfg_duration(weir__cfg *map, const char *key, bool required, int64_t def, int64_t min,
                       int64_t max, int64_t *out);
/* One of `names` (NULL-terminated); *out is its index. */
int weir__cfg_enum(weir__cfg *map, const char *key, bool required, const char *const *names,
                   int def, int *out);
/* A nested map or sequence (*out = NULL when absent and not required). */
int weir__cfg_map(weir__cfg *map, const char *key, bool required, weir__cfg **out);
int weir__cfg_seq(weir__cfg *map, const char *key, bool required, weir__cfg **out);

/* Marks `key` known without reading it (a key handled elsewhere). */
void weir__cfg_known(weir__cfg *map, const char *key);
/* Reports the first key of `map` that no getter asked for. Returns 0 or WEIR_EPARSE. */
int weir__cfg_check_unknown(weir__cfg *map);

#endif /* WEIR_YAML_CFG_INT_H */
