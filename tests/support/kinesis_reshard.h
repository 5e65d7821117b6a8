/*
 * kinesis_reshard.h: test support: resharding a stream on a local Kinesis server (kinesalite
 * or kinesis-local) through weir's client: split the widest open shard in the middle of its
 * hash-key range, merge the two open shards with the lowest hash keys, count open shards.
 * Each call waits until the stream is ACTIVE again.
 *
 * Include the .c file from a test (#include "../support/kinesis_reshard.c") after
 * connectors/kinesis/client_int.h: it is not part of the library. Not thread-safe (one static
 * shard buffer): call it from one thread.
 */
#ifndef WEIR_TEST_KINESIS_RESHARD_H
#define WEIR_TEST_KINESIS_RESHARD_H

#include <stddef.h>

#include "connectors/kinesis/client_int.h"

/* Shards of one stream the helpers handle (open and closed). */
#define WEIR_TEST_RESHARD_MAX_SHARDS 512

/*
 * Splits the open shard of `stream` with the widest hash-key range (or, when only_or_NULL is
 * given, that shard) in the middle of its range. 0, or -1 with a message in err (cap bytes).
 */
int weir_test_split_shard(weir_kinesis_client *c, const char *stream, const char *only_or_NULL,
                          char *err, size_t cap);

/* Merges the open shard starting at hash key 0 with the open shard adjacent to it. 0, or -1
 * with a message in err. */
int weir_test_merge_lowest(weir_kinesis_client *c, const char *stream, char *err, size_t cap);

/* Open shards of `stream`, or -1 (message in err). */
long weir_test_count_open(weir_kinesis_client *c, const char *stream, char *err, size_t cap);

#endif /* WEIR_TEST_KINESIS_RESHARD_H */
