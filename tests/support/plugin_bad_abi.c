/*
 * plugin_bad_abi.c: a plugin that claims the next plugin ABI version, for the CLI test's
 * "refused with a clear error" case. Only its first field is ever read.
 */
#include "weir/plugin.h"

WEIR_PLUGIN_EXPORT const weir_plugin weir_plugin_v1 = {
    .abi_version = WEIR_PLUGIN_ABI_VERSION + 1,
    .name = "from-the-future",
};
