/*
 * plugin.c: the `plugin` pipeline node type: an operator from a shared library that exports a
 * weir_plugin object (weir/plugin.h). The library is opened with dlopen, its ABI version is
 * checked before anything else is read, and it stays open until the job is destroyed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_int.h"
#include "weir/plugin.h"

/* Keys of one plugin node's `params` map. */
#define PLUGIN_MAX_PARAMS 64

static void lib_close(void *handle) {
  dlclose(handle);
}

struct plugin_data {
  void (*destroy)(void *data);
  void *data;
};

static void plugin_data_free(void *p) {
  struct plugin_data *pd = p;

  if (pd->destroy != NULL)
    pd->destroy(pd->data);
  free(pd);
}

/* Flattens `params` (a map of scalars) into {key, value, ..., NULL}. */
static int flatten_params(weir__cfg *params, const char **flat) {
  size_t n = weir__cfg_len(params), k = 0;

  if (n > PLUGIN_MAX_PARAMS)
    return weir__cfg_error(params, NULL, "more than %d params", PLUGIN_MAX_PARAMS);
  for (size_t i = 0; i < n; i++) {
    weir__cfg *v = weir__cfg_item(params, i);
    const char *key = weir__cfg_key(params, i);

    if (weir__cfg_kind(v) == WEIR__CFG_NULL) {
      flat[k++] = key;
      flat[k++] = "";
      continue;
    }
    if (weir__cfg_scalar(v) == NULL)
      return weir__cfg_error(v, "params are 'name: value' pairs of plain values",
                             "expected a plain value");
    flat[k++] = key;
    flat[k++] = weir__cfg_scalar(v);
  }
  flat[k] = NULL;
  return 0;
}

int weir__pnode_plugin(struct weir__pnode *n) {
  const char *flat[2 * PLUGIN_MAX_PARAMS + 1];
  const char *path, *symbol;
  const weir_plugin *pl;
  struct plugin_data *pd = NULL;
  weir_operator op;
  weir__cfg *params;
  char err[WEIR_PLUGIN_ERR_MAX];
  void *lib, *sym;
  int rc;

  if ((rc = weir__cfg_str(n->cfg, "path", true, NULL, &path)) != 0 ||
      (rc = weir__cfg_str(n->cfg, "symbol", false, WEIR_PLUGIN_DEFAULT_SYMBOL, &symbol)) != 0 ||
      (rc = weir__cfg_map(n->cfg, "params", false, &params)) != 0)
    return rc;
  flat[0] = NULL;
  if (params != NULL && (rc = flatten_params(params, flat)) != 0)
    return rc;
  if ((lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
    const char *why = dlerror();

    return weir__cfg_error(weir__cfg_get(n->cfg, "path"),
                           "give the path of a shared library built as in docs/plugins.md; "
                           "a path without '/' is searched like a system library",
                           "cannot load plugin: %s", why != NULL ? why : "dlopen failed");
  }
  if ((rc = weir__pnode_own(n, lib, lib_close)) != 0)
    return rc;
  dlerror();
  if ((sym = dlsym(lib, symbol)) == NULL)
    return weir__cfg_error(weir__cfg_get(n->cfg, "symbol") != NULL ? weir__cfg_get(n->cfg, "symbol")
                                                                   : weir__cfg_get(n->cfg, "path"),
                           "the plugin must export 'const weir_plugin " WEIR_PLUGIN_DEFAULT_SYMBOL
                           "' (WEIR_PLUGIN_EXPORT), or name its symbol with 'symbol:'",
                           "plugin %s has no symbol '%s'", path, symbol);
  /* abi_version is the first field in every ABI version: read it alone before trusting more. */
  if (*(const uint32_t *)sym != WEIR_PLUGIN_ABI_VERSION)
    return weir__cfg_error(
        weir__cfg_get(n->cfg, "path"), "rebuild the plugin against this weir's <weir/plugin.h>",
        "plugin %s was built for weir plugin ABI version %u, but this weir "
        "supports ABI version %u",
        path, (unsigned)*(const uint32_t *)sym, (unsigned)WEIR_PLUGIN_ABI_VERSION);
  pl = sym;
  if (pl->create == NULL)
    return weir__cfg_error(weir__cfg_get(n->cfg, "path"), "set the create function",
                           "plugin %s has no create function", path);
  if ((pd = calloc(1, sizeof(*pd))) == NULL)
    return WEIR_ENOMEM;
  memset(&op, 0, sizeof(op));
  err[0] = '\0';
  rc = pl->create(n->name, flat, &op, &pd->data, err, sizeof(err));
  if (rc != 0) {
    free(pd);
    err[sizeof(err) - 1] = '\0';
    return weir__cfg_error(params != NULL ? params : n->cfg, NULL, "plugin %s: %s",
                           pl->name != NULL ? pl->name : path, err[0] ? err : weir_strerror(rc));
  }
  pd->destroy = pl->destroy;
  if ((rc = weir__pnode_own(n, pd, plugin_data_free)) != 0)
    return rc;
  if (op.process == NULL)
    return weir__cfg_error(weir__cfg_get(n->cfg, "path"), "set op->process in create",
                           "plugin %s made an operator without process", path);
  if (n->dry_run)
    return 0;
  return weir_job_add_operator(n->job, n->upstream, n->name, &op, pd->data, &n->id);
}
