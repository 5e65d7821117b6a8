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
    {WEIR__PNODE_SOURCE, "kinesis", weir__pnode_kinesis_source, "records of Kinesis streams"},
    {WEIR__PNODE_OPERATOR, "plugin", weir__pnode_plugin, "an operator from a shared library"},
    {WEIR__PNODE_OPERATOR, "json_parse", weir__pnode_json_parse, "keep valid JSON objects"},
    {WEIR__PNODE_OPERATOR, "json_filter", weir__pnode_json_filter,
     "keep records meeting conditions"},
    {WEIR__PNODE_OPERATOR, "json_project", weir__pnode_json_project, "keep and rename fields"},
    {WEIR__PNODE_OPERATOR, "key_by", weir__pnode_key_by, "key records by a JSON field"},
    {WEIR__PNODE_OPERATOR, "timestamps", weir__pnode_timestamps, "event time and watermarks"},
    {WEIR__PNODE_OPERATOR, "window", weir__pnode_window, "keyed windows with aggregates"},
    {WEIR__PNODE_SINK, "file", weir__pnode_file_sink, "one line per record to a file"},
    {WEIR__PNODE_SINK, "stdout", weir__pnode_stdout_sink, "one line per record to stdout"},
    {WEIR__PNODE_SINK, "kinesis", weir__pnode_kinesis_sink, "records to a Kinesis stream"},
    {0, NULL, NULL, NULL}};
