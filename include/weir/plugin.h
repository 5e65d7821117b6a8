/*
 * weir/plugin.h: the operator plugin ABI. A plugin is a shared library that exports one
 * `weir_plugin` object; a pipeline file names it with an operator of type `plugin`:
 *
 *     operators:
 *       - type: plugin
 *         path: ./libupper.so          # dlopen()ed once per job
 *         symbol: weir_plugin_v1       # the default
 *         params: {suffix: "!"}        # strings, handed to create()
 *
 * weir reads `abi_version` (always the first field, a uint32_t, in every ABI version) before
 * anything else and refuses a plugin whose version differs from WEIR_PLUGIN_ABI_VERSION, with
 * an error naming both versions. The version changes whenever this struct, weir_operator
 * (job.h) or any function a plugin may call changes incompatibly. See docs/plugins.md.
 *
 * A plugin is built without linking libweir: the weir functions it calls (weir_emit, state,
 * metrics) are resolved from the process that loads it (the `weir` binary exports them).
 */
#ifndef WEIR_PLUGIN_H
#define WEIR_PLUGIN_H

#include <stdint.h>

#include "job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define WEIR_PLUGIN_ABI_VERSION 1u

/* The symbol weir looks up when the pipeline file names none. */
#define WEIR_PLUGIN_DEFAULT_SYMBOL "weir_plugin_v1"

/* Marks the plugin object for export from a library built with -fvisibility=hidden. */
#if defined(__GNUC__)
#define WEIR_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define WEIR_PLUGIN_EXPORT
#endif

/* Largest error message a plugin's create may write (bytes, NUL included). */
#define WEIR_PLUGIN_ERR_MAX 512

typedef struct weir_plugin {
  /* WEIR_PLUGIN_ABI_VERSION of the header the plugin was built with. Must stay first. */
  uint32_t abi_version;
  /* Short name for messages ("upper"). Borrowed from the library: static storage. */
  const char *name;
  /*
   * Called once per node while the job is built, on the building thread. `params` is the
   * node's `params` map as a NULL-terminated array of alternating keys and values ({"suffix",
   * "!", NULL}), borrowed for the call (copy what you keep). `node_name` is the node's name.
   * Fill *op (at least `process`) and *data (passed as `data` to op's callbacks, shared by
   * every subtask). Return 0, or a negative WEIR_E* code after writing what was wrong (an
   * unknown or bad parameter, by name) into err (capacity err_cap); weir reports it with the
   * node's position in the pipeline file. Never put secrets in err.
   */
  int (*create)(const char *node_name, const char *const *params, weir_operator *op, void **data,
                char *err, size_t err_cap);
  /* Frees what create made, after the job is destroyed. May be NULL. */
  void (*destroy)(void *data);
} weir_plugin;

#ifdef __cplusplus
}
#endif
#endif /* WEIR_PLUGIN_H */
