/*
 * weir/pipeline.h: jobs described by a YAML pipeline file instead of C code.
 *
 * A pipeline file names the job, its parallelism and checkpoint settings, and lists its
 * sources, operators and sinks by type (docs/configuration.md, "Pipeline files"). Loading it
 * builds a ready-to-start weir_job; the pipeline object owns that job and every connector and
 * plugin made for it.
 *
 * Errors are one line: "FILE:LINE:COLUMN: key.path: what is wrong (hint: what to do)". Values
 * taken from the environment (${VAR}) never appear in messages.
 *
 * Threads: load and destroy on one thread; the job is used as any weir_job.
 */
#ifndef WEIR_PIPELINE_H
#define WEIR_PIPELINE_H

#include <stddef.h>

#include "job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_pipeline weir_pipeline;

/* Largest error message a load writes (bytes, NUL included). */
#define WEIR_PIPELINE_ERR_MAX 1024

/* Flags for weir_pipeline_load. */
#define WEIR_PIPELINE_VALIDATE_ONLY 0x1u /* check everything; open, create and truncate nothing */

/*
 * Reads the pipeline file `path` and builds its job. With WEIR_PIPELINE_VALIDATE_ONLY the
 * connectors are not created (no file is opened or truncated, no connection made); plugins
 * are still loaded to check their ABI; the job has stand-in nodes and must not be started.
 * On success *out owns the job (weir_pipeline_job). On failure *out is NULL and, when `err` is
 * not NULL, err (capacity err_cap, at most WEIR_PIPELINE_ERR_MAX is used) holds the message.
 * Returns 0, WEIR_EPARSE (the file is invalid), WEIR_EIO (cannot read it), WEIR_EGRAPH (the
 * graph is invalid) or WEIR_ENOMEM.
 */
WEIR_API int weir_pipeline_load(weir_pipeline **out, const char *path, unsigned flags, char *err,
                                size_t err_cap);

/* As weir_pipeline_load from `len` bytes of YAML; `name` (copied) stands for the file name in
 * messages. */
WEIR_API int weir_pipeline_load_string(weir_pipeline **out, const char *name, const char *text,
                                       size_t len, unsigned flags, char *err, size_t err_cap);

/* The job. Borrowed: valid until weir_pipeline_destroy. Set more options (for instance
 * weir_job_set_restore_checkpoint) before weir_job_start. */
WEIR_API weir_job *weir_pipeline_job(weir_pipeline *p);

/* The job name and the checkpoint directory (NULL when checkpoints are off). Borrowed. */
WEIR_API const char *weir_pipeline_name(const weir_pipeline *p);
WEIR_API const char *weir_pipeline_checkpoint_dir(const weir_pipeline *p);

/* Destroys the job (cancelling it if it runs), then the connectors and plugins. NULL: no-op. */
WEIR_API void weir_pipeline_destroy(weir_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* WEIR_PIPELINE_H */
