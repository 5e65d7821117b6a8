/*
 * pipeline_types.c: the registry of pipeline node types: one line per `type:` a pipeline file
 * may use. To add one, write its build function (see pipeline_int.h), declare it in
 * pipeline_int.h and add a line here (docs/internals/pipeline.md).
 */
#include "pipeline_int.h"

const struct weir__pnode_type weir__pipeline_types[] = {
    {WEIR__PNODE_SOURCE, "generator", weir__pnode_generator, "deterministic test records"},
    {WEIR__PNODE_SOURCE, "file", weir__pnode_file_source, "one record per line of a file"},
    {WEIR__PNODE_SOURCE, "stdin", weir__pnode_stdin_source, "one record per line of stdin"},
    {WEIR__PNODE_OPERATOR, "plugin", weir__pnode_plugin, "an operator from a shared library"},
    {WEIR__PNODE_SINK, "file", weir__pnode_file_sink, "one line per record to a file"},
    {WEIR__PNODE_SINK, "stdout", weir__pnode_stdout_sink, "one line per record to stdout"},
    {0, NULL, NULL, NULL}};
