/*
 * upper.c: an example operator plugin (docs/plugins.md). It upper-cases each record's value
 * and appends an optional suffix:
 *
 *     operators:
 *       - type: plugin
 *         path: ./build/examples/plugins/libweir_upper.so
 *         params: {suffix: "!"}
 *
 * Build: cc -shared -fPIC -fvisibility=hidden upper.c -o libweir_upper.so $(pkg-config --cflags
 * weir) (no -lweir: weir_emit and weir_ctx_scratch come from the weir process that loads it).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/plugin.h>

#define SUFFIX_MAX 64

struct upper {
  char suffix[SUFFIX_MAX + 1];
  size_t suffix_len;
};

static int upper_process(weir_ctx *ctx, void *inst, const weir_record *recs, size_t n) {
  const struct upper *u = inst;

  for (size_t i = 0; i < n; i++) {
    size_t len = recs[i].value.len + u->suffix_len;
    weir_record out = recs[i];
    uint8_t *buf = weir_ctx_scratch(ctx, len > 0 ? len : 1);
    int rc;

    if (buf == NULL)
      return WEIR_ETOOBIG;
    for (size_t j = 0; j < recs[i].value.len; j++)
      buf[j] = (uint8_t)toupper(recs[i].value.ptr[j]);
    memcpy(buf + recs[i].value.len, u->suffix, u->suffix_len);
    out.value.ptr = buf;
    out.value.len = len;
    if ((rc = weir_emit(ctx, &out)) != 0)
      return rc;
  }
  return 0;
}

static int upper_create(const char *node_name, const char *const *params, weir_operator *op,
                        void **data, char *err, size_t err_cap) {
  struct upper *u = calloc(1, sizeof(*u));

  (void)node_name;
  if (u == NULL)
    return WEIR_ENOMEM;
  for (size_t i = 0; params[i] != NULL; i += 2) {
    if (strcmp(params[i], "suffix") == 0 && strlen(params[i + 1]) <= SUFFIX_MAX) {
      snprintf(u->suffix, sizeof(u->suffix), "%s", params[i + 1]);
      u->suffix_len = strlen(u->suffix);
    } else {
      snprintf(err, err_cap, "%s '%s' (params: suffix, up to %d bytes)",
               strcmp(params[i], "suffix") == 0 ? "suffix too long:" : "unknown param", params[i],
               SUFFIX_MAX);
      free(u);
      return WEIR_EINVAL;
    }
  }
  op->process = upper_process;
  *data = u;
  return 0;
}

static void upper_destroy(void *data) {
  free(data);
}

WEIR_PLUGIN_EXPORT const weir_plugin weir_plugin_v1 = {
    .abi_version = WEIR_PLUGIN_ABI_VERSION,
    .name = "upper",
    .create = upper_create,
    .destroy = upper_destroy,
};
