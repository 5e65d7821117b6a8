/*
 * pipeline_int.h: how pipeline node types plug into the pipeline loader (runtime/pipeline.c).
 *
 * A node type is one build function plus one line in the table in runtime/pipeline_types.c
 * (docs/internals/pipeline.md). The loader reads the keys every node has (type, name, input,
 * parallelism, uid, partition); the build function reads the type's own keys from n->cfg with
 * the weir__cfg_* getters, and, unless n->dry_run, creates its connector or operator, adds it
 * to n->job and stores the node id in n->id. Anything it allocates is handed to the pipeline
 * with weir__pnode_own so it is freed after the job.
 *
 * Threads: build functions run on the loading thread, one at a time.
 */
#ifndef WEIR_PIPELINE_INT_H
#define WEIR_PIPELINE_INT_H

#include <stdbool.h>

#include "weir/job.h"
#include "yaml_cfg_int.h"

enum weir__pnode_kind { WEIR__PNODE_SOURCE = 0, WEIR__PNODE_OPERATOR, WEIR__PNODE_SINK };

struct weir_pipeline;

struct weir__pnode {
  /* ---- in ---- */
  struct weir_pipeline *pipeline; /* borrowed; for weir__pnode_own */
  weir_job *job;                  /* borrowed */
  weir__cfg *cfg;                 /* the node's map; borrowed from the document */
  const char *name;               /* unique node name; borrowed, valid during the call */
  const char *file;               /* the pipeline file, for resolving relative paths; borrowed */
  int upstream;                   /* first input node id; WEIR_NO_INPUT for sources */
  bool dry_run;                   /* validate only: read keys, create nothing, add no node */
  /* ---- out ---- */
  int id;              /* the node added (ignored when dry_run) */
  int max_parallelism; /* the connector's bound (0 = none), e.g. 1 for the line source */
};

/*
 * Reads the type's keys from n->cfg and (unless n->dry_run) adds the node. Returns 0 or a
 * negative code; a configuration problem is recorded with a weir__cfg_* getter or
 * weir__cfg_error (WEIR_EPARSE); other failures may set weir_job_error or be reported with
 * weir__cfg_error on n->cfg.
 */
typedef int (*weir__pnode_build_fn)(struct weir__pnode *n);

struct weir__pnode_type {
  enum weir__pnode_kind kind;
  const char *type; /* the `type:` value */
  weir__pnode_build_fn build;
  const char *summary; /* one line for docs and hints */
};

/* The registry: terminated by an entry with type == NULL (runtime/pipeline_types.c). */
extern const struct weir__pnode_type weir__pipeline_types[];

/* Hands `obj` to the pipeline: free_fn(obj) runs after the job is destroyed, in reverse order
 * of registration. On WEIR_ENOMEM free_fn(obj) has already run. */
int weir__pnode_own(struct weir__pnode *n, void *obj, void (*free_fn)(void *));

/* Build functions of the built-in node types. */
int weir__pnode_generator(struct weir__pnode *n);
int weir__pnode_file_source(struct weir__pnode *n);
int weir__pnode_stdin_source(struct weir__pnode *n);
int weir__pnode_file_sink(struct weir__pnode *n);
int weir__pnode_stdout_sink(struct weir__pnode *n);
int weir__pnode_plugin(struct weir__pnode *n);
/* Analytics operators (runtime/pipeline_analytics.c). */
int weir__pnode_json_parse(struct weir__pnode *n);
int weir__pnode_json_filter(struct weir__pnode *n);
int weir__pnode_json_project(struct weir__pnode *n);
int weir__pnode_key_by(struct weir__pnode *n);
int weir__pnode_timestamps(struct weir__pnode *n);
int weir__pnode_window(struct weir__pnode *n);
/* Kinesis (runtime/pipeline_kinesis_source.c, runtime/pipeline_kinesis.c). */
int weir__pnode_kinesis_source(struct weir__pnode *n);
int weir__pnode_kinesis_sink(struct weir__pnode *n);

struct weir_kinesis_config;
/* Reads the connection keys every Kinesis node has (region, endpoint, access_key_id,
 * secret_access_key, session_token, profile, ca_file, connect_timeout, request_timeout) from
 * map `m` into *out (strings borrowed from the document). Returns 0 or WEIR_EPARSE. */
int weir__pnode_kinesis_client(weir__cfg *m, struct weir_kinesis_config *out);

#endif /* WEIR_PIPELINE_INT_H */
