/*
 * pipeline.c: loads a pipeline file into a job: the job-wide keys and checkpoint settings here,
 * the keys every node has (type, name, input, parallelism, uid, partition), and each node's own
 * keys through its type's build function (pipeline_types.c). See docs/configuration.md for the
 * file format and docs/internals/pipeline.md for the design.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_int.h"
#include "pipeline_int.h"
#include "weir/checkpoint.h"
#include "weir/pipeline.h"

/* Bounds of a pipeline file's graph, far above any hand-written pipeline. */
#define MAX_NODES 1024
#define MAX_INPUTS 64
#define MAX_TYPES 64
#define NAME_MAX_LEN 255

struct owned {
  void *obj;
  void (*free_fn)(void *);
};

struct weir_pipeline {
  weir_job *job;       /* owned */
  char *name;          /* owned */
  char *ckpt_dir;      /* owned; NULL = checkpoints off */
  struct owned *owned; /* owned: freed after the job, last first */
  size_t n_owned, cap_owned;
};

/* One node while loading. */
struct pnode_rec {
  char name[NAME_MAX_LEN + 1];
  int id;
};

struct loader {
  struct weir_pipeline *p;
  weir__cfg *root;
  const char *file;
  bool dry_run;
  int parallelism;         /* the top-level default */
  int max_parallelism;     /* the job's key groups: the bound on every node's parallelism */
  struct pnode_rec *nodes; /* owned; every node built so far */
  size_t n_nodes;
};

int weir__pnode_own(struct weir__pnode *n, void *obj, void (*free_fn)(void *)) {
  struct weir_pipeline *p = n->pipeline;

  if (p->n_owned == p->cap_owned) {
    size_t cap = p->cap_owned ? p->cap_owned * 2 : 16;
    struct owned *o = realloc(p->owned, cap * sizeof(*o));

    if (o == NULL) {
      free_fn(obj);
      return WEIR_ENOMEM;
    }
    p->owned = o;
    p->cap_owned = cap;
  }
  p->owned[p->n_owned].obj = obj;
  p->owned[p->n_owned].free_fn = free_fn;
  p->n_owned++;
  return 0;
}

void weir_pipeline_destroy(weir_pipeline *p) {
  if (p == NULL)
    return;
  weir_job_destroy(p->job);
  while (p->n_owned > 0) {
    p->n_owned--;
    p->owned[p->n_owned].free_fn(p->owned[p->n_owned].obj);
  }
  free(p->owned);
  free(p->name);
  free(p->ckpt_dir);
  free(p);
}

weir_job *weir_pipeline_job(weir_pipeline *p) {
  return p->job;
}

const char *weir_pipeline_name(const weir_pipeline *p) {
  return p->name;
}

const char *weir_pipeline_checkpoint_dir(const weir_pipeline *p) {
  return p->ckpt_dir;
}

/* ---- stand-in nodes for validation ------------------------------------------------------- */

static int stub_poll(weir_ctx *ctx, void *inst) {
  (void)ctx;
  (void)inst;
  return WEIR_EOF;
}

static int stub_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  (void)ctx;
  (void)inst;
  (void)recs;
  (void)n;
  return 0;
}

static int add_stub(struct weir__pnode *n, enum weir__pnode_kind kind) {
  weir_operator op = {0};

  if (kind == WEIR__PNODE_SOURCE) {
    op.poll = stub_poll;
    return weir_job_add_source(n->job, n->name, &op, NULL, &n->id);
  }
  op.process = stub_process;
  if (kind == WEIR__PNODE_OPERATOR)
    return weir_job_add_operator(n->job, n->upstream, n->name, &op, NULL, &n->id);
  return weir_job_add_sink(n->job, n->upstream, n->name, &op, NULL, &n->id);
}

/* ---- job-wide keys ----------------------------------------------------------------------- */

static int job_error(struct loader *l, weir__cfg *at, int rc) {
  if (rc == WEIR_ENOMEM)
    return rc;
  return weir__cfg_error(at, NULL, "%s", weir_job_error(l->p->job));
}

static int load_job_options(struct loader *l) {
  weir__cfg *root = l->root, *batch = NULL;
  weir_job *job = l->p->job;
  int64_t par, maxpar, buf_ms, tick_ms, cap, recs;
  uint64_t bytes;
  int rc;

  if ((rc = weir__cfg_int(root, "max_parallelism", false, WEIR_DEFAULT_MAX_PARALLELISM, 1, 32768,
                          &maxpar)) != 0 ||
      (rc = weir__cfg_int(root, "parallelism", false, 1, 1, maxpar, &par)) != 0 ||
      (rc = weir__cfg_duration(root, "buffer_timeout", false, 100, 0, 3600000, &buf_ms)) != 0 ||
      (rc = weir__cfg_duration(root, "tick_interval", false, 100, 1, 3600000, &tick_ms)) != 0 ||
      (rc = weir__cfg_int(root, "channel_capacity", false, 8, 1, 4096, &cap)) != 0 ||
      (rc = weir__cfg_map(root, "batch", false, &batch)) != 0 ||
      (rc = weir__cfg_int(batch, "records", false, 512, 1, 65536, &recs)) != 0 ||
      (rc = weir__cfg_size(batch, "bytes", false, 2u << 20, 4096, 256u << 20, &bytes)) != 0 ||
      (rc = weir__cfg_check_unknown(batch)) != 0)
    return rc;
  l->parallelism = (int)par;
  l->max_parallelism = (int)maxpar;
  if ((rc = weir_job_set_max_parallelism(job, (int)maxpar)) != 0 ||
      (rc = weir_job_set_buffer_timeout(job, buf_ms)) != 0 ||
      (rc = weir_job_set_tick_interval(job, tick_ms)) != 0 ||
      (rc = weir_job_set_channel_capacity(job, (size_t)cap)) != 0 ||
      (rc = weir_job_set_batch_size(job, (size_t)recs, (size_t)bytes)) != 0)
    return job_error(l, root, rc);
  return 0;
}

static int load_checkpoint(struct loader *l) {
  static const char *const modes[] = {"exactly_once", "at_least_once", NULL};
  weir__cfg *ck;
  weir_job *job = l->p->job;
  const char *dir;
  int64_t interval, timeout, pause, retained, tolerable;
  uint64_t max_size;
  bool allow;
  int mode, rc;

  if ((rc = weir__cfg_map(l->root, "checkpoint", false, &ck)) != 0 || ck == NULL)
    return rc;
  if ((rc = weir__cfg_str(ck, "dir", true, NULL, &dir)) != 0 ||
      (rc = weir__cfg_duration(ck, "interval", false, 10000, 0, 86400000, &interval)) != 0 ||
      (rc = weir__cfg_enum(ck, "mode", false, modes, 0, &mode)) != 0 ||
      (rc = weir__cfg_duration(ck, "timeout", false, 600000, 10, 86400000, &timeout)) != 0 ||
      (rc = weir__cfg_duration(ck, "min_pause", false, 0, 0, 86400000, &pause)) != 0 ||
      (rc = weir__cfg_int(ck, "retained", false, 3, 1, 1000, &retained)) != 0 ||
      (rc = weir__cfg_int(ck, "tolerable_failures", false, 0, 0, 1000000, &tolerable)) != 0 ||
      (rc = weir__cfg_size(ck, "max_size", false, 1u << 30, 1u << 20, UINT64_MAX / 2, &max_size)) !=
          0 ||
      (rc = weir__cfg_bool(ck, "allow_non_restored_state", false, false, &allow)) != 0 ||
      (rc = weir__cfg_check_unknown(ck)) != 0)
    return rc;
  if (interval > 0 && interval < 10)
    return weir__cfg_error(weir__cfg_get(ck, "interval"), "allowed 0 (off) or 10ms..1d",
                           "interval is out of range");
  if (dir[0] == '\0')
    return weir__cfg_error(weir__cfg_get(ck, "dir"), "name a directory", "empty directory");
  if ((l->p->ckpt_dir = strdup(dir)) == NULL)
    return WEIR_ENOMEM;
  if ((rc = weir_job_set_checkpoint_dir(job, dir)) != 0 ||
      (rc = weir_job_set_checkpoint_interval(job, interval)) != 0 ||
      (rc = weir_job_set_checkpoint_mode(job, (weir_checkpoint_mode)mode)) != 0 ||
      (rc = weir_job_set_checkpoint_timeout(job, timeout)) != 0 ||
      (rc = weir_job_set_checkpoint_min_pause(job, pause)) != 0 ||
      (rc = weir_job_set_checkpoint_retention(job, (unsigned)retained)) != 0 ||
      (rc = weir_job_set_tolerable_checkpoint_failures(job, (int)tolerable)) != 0 ||
      (rc = weir_job_set_checkpoint_map_size(job, (size_t)max_size)) != 0 ||
      (rc = weir_job_set_allow_non_restored_state(job, allow)) != 0)
    return job_error(l, ck, rc);
  return 0;
}

/* ---- nodes ------------------------------------------------------------------------------- */

static const char *const kind_section[] = {"sources", "operators", "sinks"};
static const char *const kind_names[] = {"source", "operator", "sink"};

static int find_node(const struct loader *l, const char *name) {
  for (size_t i = 0; i < l->n_nodes; i++)
    if (strcmp(l->nodes[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Resolves one `input` entry (a scalar naming an earlier node) to a node id. */
static int input_id(struct loader *l, weir__cfg *v, int *id) {
  const char *s = weir__cfg_scalar(v);
  int i;

  if (s == NULL)
    return weir__cfg_error(v, "write a node name, or a list of names", "expected a node name");
  if ((i = find_node(l, s)) < 0)
    return weir__cfg_error(v, "inputs name a source or an operator listed above this node",
                           "no node called \"%s\" before this one",
                           weir__cfg_from_env(v) ? "(from the environment)" : s);
  if (l->nodes[i].id < 0)
    return weir__cfg_error(v, "a sink has no output", "\"%s\" is a sink",
                           weir__cfg_from_env(v) ? "(from the environment)" : s);
  *id = l->nodes[i].id;
  return 0;
}

/* The node's inputs: its `input` key, or by default the previous operator (or every source). */
static int node_inputs(struct loader *l, weir__cfg *cfg, enum weir__pnode_kind kind, int prev_op,
                       size_t n_sources, int *ins, size_t *n_ins) {
  weir__cfg *v;
  int rc;

  *n_ins = 0;
  if (kind == WEIR__PNODE_SOURCE)
    return 0;
  v = weir__cfg_get(cfg, "input");
  if (v == NULL || weir__cfg_kind(v) == WEIR__CFG_NULL) {
    if (prev_op >= 0) {
      ins[(*n_ins)++] = prev_op;
      return 0;
    }
    for (size_t i = 0; i < n_sources && i < MAX_INPUTS; i++)
      ins[(*n_ins)++] = l->nodes[i].id;
    return 0;
  }
  if (weir__cfg_kind(v) == WEIR__CFG_SEQ) {
    if (weir__cfg_len(v) == 0 || weir__cfg_len(v) > MAX_INPUTS)
      return weir__cfg_error(v, "list 1 to 64 node names", "bad number of inputs");
    for (size_t i = 0; i < weir__cfg_len(v); i++) {
      if ((rc = input_id(l, weir__cfg_item(v, i), &ins[i])) != 0)
        return rc;
      for (size_t j = 0; j < i; j++)
        if (ins[j] == ins[i])
          return weir__cfg_error(weir__cfg_item(v, i), "list each input once", "repeated input");
      *n_ins = i + 1;
    }
    return 0;
  }
  if ((rc = input_id(l, v, &ins[0])) != 0)
    return rc;
  *n_ins = 1;
  return 0;
}

static const struct weir__pnode_type *find_type(weir__cfg *cfg, enum weir__pnode_kind kind,
                                                int *rc) {
  const char *names[MAX_TYPES + 1];
  const struct weir__pnode_type *types[MAX_TYPES];
  size_t n = 0;
  int idx;

  for (size_t i = 0; weir__pipeline_types[i].type != NULL && n < MAX_TYPES; i++) {
    if (weir__pipeline_types[i].kind != kind)
      continue;
    types[n] = &weir__pipeline_types[i];
    names[n++] = weir__pipeline_types[i].type;
  }
  names[n] = NULL;
  if ((*rc = weir__cfg_enum(cfg, "type", true, names, 0, &idx)) != 0)
    return NULL;
  return types[idx];
}

static int build_node(struct loader *l, weir__cfg *cfg, enum weir__pnode_kind kind, int prev_op,
                      size_t n_sources, int *out_id) {
  static const char *const parts[] = {"auto", "forward", "rebalance", "hash", "broadcast", NULL};
  const struct weir__pnode_type *type;
  struct weir__pnode n = {0};
  struct pnode_rec *rec;
  weir__cfg *par_cfg;
  int ins[MAX_INPUTS], part = 0, rc;
  size_t n_ins;
  const char *name, *uid;
  char def_name[NAME_MAX_LEN + 1];
  int64_t par;

  if (weir__cfg_kind(cfg) != WEIR__CFG_MAP)
    return weir__cfg_error(cfg, "each entry is a map with at least 'type: ...'", "expected a map");
  if ((type = find_type(cfg, kind, &rc)) == NULL)
    return rc;
  /* Default name: the type, then type-2, type-3... */
  snprintf(def_name, sizeof(def_name), "%s", type->type);
  for (int k = 2; find_node(l, def_name) >= 0; k++)
    snprintf(def_name, sizeof(def_name), "%s-%d", type->type, k);
  if ((rc = weir__cfg_str(cfg, "name", false, def_name, &name)) != 0 ||
      (rc = weir__cfg_str(cfg, "uid", false, NULL, &uid)) != 0 ||
      (kind != WEIR__PNODE_SOURCE &&
       (rc = weir__cfg_enum(cfg, "partition", false, parts, 0, &part)) != 0) ||
      (rc = weir__cfg_int(cfg, "parallelism", false, l->parallelism, 1, l->max_parallelism,
                          &par)) != 0)
    return rc;
  if (name[0] == '\0' || strlen(name) > NAME_MAX_LEN)
    return weir__cfg_error(weir__cfg_get(cfg, "name"), "use 1 to 255 characters", "bad node name");
  if (find_node(l, name) >= 0)
    return weir__cfg_error(
        weir__cfg_get(cfg, "name"), "every node needs its own name", "duplicate node name \"%s\"",
        weir__cfg_from_env(weir__cfg_get(cfg, "name")) ? "(from the environment)" : name);
  if ((rc = node_inputs(l, cfg, kind, prev_op, n_sources, ins, &n_ins)) != 0)
    return rc;

  n.pipeline = l->p;
  n.job = l->p->job;
  n.cfg = cfg;
  n.name = name;
  n.file = l->file;
  n.upstream = n_ins > 0 ? ins[0] : WEIR_NO_INPUT;
  n.dry_run = l->dry_run;
  n.id = -1;
  if ((rc = type->build(&n)) != 0) {
    if (!weir__cfg_failed(cfg))
      weir__cfg_error(cfg, NULL, "%s: %s", type->type,
                      weir_job_error(l->p->job)[0] ? weir_job_error(l->p->job) : weir_strerror(rc));
    return rc == WEIR_ENOMEM ? rc : WEIR_EPARSE;
  }
  if (l->dry_run && (rc = add_stub(&n, kind)) != 0)
    return job_error(l, cfg, rc);
  if ((rc = weir__cfg_check_unknown(cfg)) != 0)
    return rc;

  for (size_t i = 1; i < n_ins; i++)
    if ((rc = weir_job_connect(n.job, ins[i], n.id, (weir_partitioning)part)) != 0)
      return job_error(l, cfg, rc);
  if (n_ins > 0 && part != 0 &&
      (rc = weir_job_set_partitioning(n.job, ins[0], n.id, (weir_partitioning)part)) != 0)
    return job_error(l, cfg, rc);
  par_cfg = weir__cfg_get(cfg, "parallelism");
  if (n.max_parallelism > 0 && par > n.max_parallelism) {
    if (par_cfg != NULL)
      return weir__cfg_error(par_cfg, "remove it or lower it", "a %s %s runs with at most %d %s",
                             type->type, kind_names[kind], n.max_parallelism,
                             n.max_parallelism == 1 ? "subtask" : "subtasks");
    par = n.max_parallelism;
  }
  if ((rc = weir_job_set_parallelism(n.job, n.id, (int)par)) != 0 ||
      (uid != NULL && (rc = weir_job_set_uid(n.job, n.id, uid)) != 0))
    return job_error(l, cfg, rc);

  rec = &l->nodes[l->n_nodes++];
  snprintf(rec->name, sizeof(rec->name), "%s", name);
  rec->id = kind == WEIR__PNODE_SINK ? -1 : n.id;
  *out_id = n.id;
  return 0;
}

static int load_nodes(struct loader *l) {
  weir__cfg *sec[3];
  size_t total = 0, n_sources;
  int prev_op = -1, id = -1, rc;

  for (int k = 0; k < 3; k++) {
    if ((rc = weir__cfg_seq(l->root, kind_section[k], k != WEIR__PNODE_OPERATOR, &sec[k])) != 0)
      return rc;
    if (sec[k] != NULL && weir__cfg_len(sec[k]) == 0 && k != WEIR__PNODE_OPERATOR)
      return weir__cfg_error(sec[k], "list at least one", "empty list");
    total += sec[k] != NULL ? weir__cfg_len(sec[k]) : 0;
  }
  if (total > MAX_NODES)
    return weir__cfg_error(l->root, NULL, "more than %d nodes", MAX_NODES);
  if ((l->nodes = calloc(total, sizeof(*l->nodes))) == NULL)
    return WEIR_ENOMEM;
  n_sources = weir__cfg_len(sec[0]);
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; sec[k] != NULL && i < weir__cfg_len(sec[k]); i++) {
      rc = build_node(l, weir__cfg_item(sec[k], i), (enum weir__pnode_kind)k, prev_op, n_sources,
                      &id);
      if (rc != 0)
        return rc;
      if (k == WEIR__PNODE_OPERATOR)
        prev_op = id;
    }
  }
  return 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

/* The file name without directory and extension: the default job name. */
static void default_name(const char *file, char *out, size_t cap) {
  const char *base = strrchr(file, '/');
  const char *dot;
  size_t n;

  base = base != NULL ? base + 1 : file;
  dot = strrchr(base, '.');
  n = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
  snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), base);
  if (out[0] == '\0')
    snprintf(out, cap, "weir");
}

int weir_pipeline_load_string(weir_pipeline **out, const char *file, const char *text, size_t len,
                              unsigned flags, char *err, size_t err_cap) {
  struct loader l = {0};
  weir__cfg_doc *doc = NULL;
  const char *name;
  char def[NAME_MAX_LEN + 1];
  int rc;

  *out = NULL;
  if (err != NULL && err_cap > 0)
    err[0] = '\0';
  if (file == NULL)
    file = "<string>";
  l.file = file;
  l.dry_run = (flags & WEIR_PIPELINE_VALIDATE_ONLY) != 0;
  if ((l.p = calloc(1, sizeof(*l.p))) == NULL)
    return WEIR_ENOMEM;
  if ((rc = weir__cfg_parse(&doc, file, text, len)) != 0)
    goto fail;
  l.root = weir__cfg_root(doc);
  if (weir__cfg_kind(l.root) != WEIR__CFG_MAP) {
    rc = weir__cfg_error(l.root, "start with 'name: my-job' and a 'sources:' list",
                         "expected a map of keys at the top of the file");
    goto fail;
  }
  default_name(file, def, sizeof(def));
  if ((rc = weir__cfg_str(l.root, "name", false, def, &name)) != 0)
    goto fail;
  if ((l.p->name = strdup(name)) == NULL) {
    rc = WEIR_ENOMEM;
    goto fail;
  }
  if ((rc = weir_job_create(&l.p->job, name)) != 0) {
    if (rc != WEIR_ENOMEM)
      rc = weir__cfg_error(weir__cfg_get(l.root, "name"), "use a non-empty name", "bad job name");
    goto fail;
  }
  if ((rc = load_job_options(&l)) != 0 || (rc = load_checkpoint(&l)) != 0 ||
      (rc = load_nodes(&l)) != 0 || (rc = weir__cfg_check_unknown(l.root)) != 0)
    goto fail;
  if (l.dry_run && (rc = weir__graph_validate(l.p->job)) != 0) {
    if (err != NULL && err_cap > 0)
      snprintf(err, err_cap, "%s: %s", file, weir_job_error(l.p->job));
    goto fail_quiet;
  }
  free(l.nodes);
  weir__cfg_doc_free(doc);
  *out = l.p;
  return 0;
fail:
  if (err != NULL && err_cap > 0)
    snprintf(err, err_cap, "%s",
             doc != NULL && weir__cfg_doc_error(doc)[0] ? weir__cfg_doc_error(doc)
                                                        : weir_strerror(rc));
fail_quiet:
  free(l.nodes);
  weir__cfg_doc_free(doc);
  weir_pipeline_destroy(l.p);
  return rc;
}

int weir_pipeline_load(weir_pipeline **out, const char *path, unsigned flags, char *err,
                       size_t err_cap) {
  FILE *f = NULL;
  char *text = NULL;
  size_t len = 0;
  int rc = WEIR_EIO;

  *out = NULL;
  if (path == NULL)
    return WEIR_EINVAL;
  if ((f = fopen(path, "rb")) == NULL) {
    if (err != NULL && err_cap > 0)
      snprintf(err, err_cap, "%s: cannot open: %s", path, strerror(errno));
    return WEIR_EIO;
  }
  if ((text = malloc(WEIR__CFG_MAX_BYTES + 1)) == NULL) {
    rc = WEIR_ENOMEM;
    goto done;
  }
  len = fread(text, 1, WEIR__CFG_MAX_BYTES + 1, f);
  if (ferror(f)) {
    if (err != NULL && err_cap > 0)
      snprintf(err, err_cap, "%s: cannot read: %s", path, strerror(errno));
    goto done;
  }
  /* A file longer than the bound is reported by the parser (len > WEIR__CFG_MAX_BYTES). */
  rc = weir_pipeline_load_string(out, path, text, len, flags, err, err_cap);
done:
  free(text);
  fclose(f);
  return rc;
}
