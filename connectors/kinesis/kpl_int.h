/*
 * kpl_int.h: KPL aggregated records (weir wire format "kpl", version 1; schema in
 * proto/kpl.proto, format notes in ../shared/testdata/kpl/FORMAT.md).
 *
 * Four parts:
 *  - 128-bit hash keys: partition key -> MD5 -> unsigned 128-bit big-endian integer, exact
 *    decimal text both ways (no floating point), and the shard whose hash-key range holds a key;
 *  - the decoder: decides with the KCL's rules (AggregatorUtil.java) whether one Kinesis record
 *    is an aggregate and yields its user records as views, without allocating per record;
 *  - shard-range filtering (FORMAT.md section 7), applied by the decoder when given a range;
 *  - the aggregator: packs user records into one aggregate, the way the KPL (or the
 *    kinesis-aggregation Java RecordAggregator) does, into a caller-provided bounded buffer.
 *
 * Threads: every object here is used by one thread at a time; distinct objects may be used
 * concurrently. The free functions are reentrant.
 */
#ifndef WEIR_KPL_INT_H
#define WEIR_KPL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/common.h"

/* First bytes of every aggregate (KPL kinesis_record.h kMagic, KCL AGGREGATED_RECORD_MAGIC). */
#define WEIR_KPL_MAGIC "\xF3\x89\x9A\xC2"
#define WEIR_KPL_MAGIC_LEN 4
/* The trailer: MD5 of the protobuf body (KCL AggregatorUtil DIGEST_SIZE). */
#define WEIR_KPL_DIGEST_LEN 16
/* Magic plus trailer (KPL kinesis_record.h kFixedOverhead). */
#define WEIR_KPL_OVERHEAD (WEIR_KPL_MAGIC_LEN + WEIR_KPL_DIGEST_LEN)

/* Kinesis PutRecord/PutRecords: a record's data blob plus its partition key may total at most
 * 1 MiB (Kinesis Data Streams API reference, PutRecords; "Quotas and limits"). */
#define WEIR_KPL_KINESIS_RECORD_MAX 1048576
/* Largest record a stream can be configured to accept (DescribeStreamSummary MaxRecordSizeInKiB
 * up to 10240), which is also the KPL's AggregationMaxSize upper bound (configuration.h). */
#define WEIR_KPL_RECORD_MAX_LIMIT 10485760
/* KPL AggregationMaxSize lower bound (configuration.h). */
#define WEIR_KPL_AGG_MIN_SIZE 64
/* Kinesis PartitionKey: 1 to 256 Unicode characters (API reference, PutRecord). */
#define WEIR_KPL_PARTITION_KEY_MAX_CHARS 256
/* Digits of 2^128-1; Kinesis ExplicitHashKey pattern 0|([1-9]\d{0,38}) (API reference). */
#define WEIR_KPL_HASH_KEY_DEC_MAX 39
/* Partition key the KPL gives a Kinesis record holding 2+ user records (kinesis_record.cc). */
#define WEIR_KPL_AGG_PARTITION_KEY "a"
/* Default bound on the entries of each key table the decoder indexes: more than any aggregate
 * that fits in a WEIR_KPL_KINESIS_RECORD_MAX record can hold (each entry takes >= 2 bytes). */
#define WEIR_KPL_DECODER_TABLE_MAX_DEFAULT (1u << 20)

/* ---------------------------------------------------------------------------------------------
 * 128-bit hash keys
 */

/* An unsigned 128-bit integer (hash keys, shard ranges). Plain value. */
struct weir_kpl_u128 {
  uint64_t hi;
  uint64_t lo;
};

/*
 * MD5 state reused across calls so that hashing a partition key allocates nothing. Initialise
 * with weir__kpl_md5_init, release with weir__kpl_md5_cleanup. One thread at a time.
 */
struct weir_kpl_md5 {
  struct evp_md_ctx_st *ctx; /* owned */
  struct evp_md_st *md;      /* owned (fetched once) */
};

/* Returns 0, or WEIR_ENOMEM / WEIR_ESYS (OpenSSL could not provide MD5; logged). */
int weir__kpl_md5_init(struct weir_kpl_md5 *h);
/* Releases what init acquired; safe on a zeroed or already cleaned-up struct. */
void weir__kpl_md5_cleanup(struct weir_kpl_md5 *h);
/* out = MD5(p[0..len)). Returns 0 or WEIR_ESYS (an OpenSSL failure; logged). */
int weir__kpl_md5(struct weir_kpl_md5 *h, const void *p, size_t len,
                  uint8_t out[WEIR_KPL_DIGEST_LEN]);

/* -1, 0 or 1 as a <, == or > b. */
int weir__kpl_u128_cmp(struct weir_kpl_u128 a, struct weir_kpl_u128 b);
/* Big-endian 16 bytes (byte 0 most significant) <-> value. */
struct weir_kpl_u128 weir__kpl_u128_from_be(const uint8_t be[16]);
void weir__kpl_u128_to_be(struct weir_kpl_u128 v, uint8_t be[16]);
/*
 * Parses decimal text s[0..len) (borrowed): one or more ASCII digits, leading zeros allowed (as
 * the KCL's BigInteger and the KPL accept them), value at most 2^128-1; no sign, no spaces.
 * Returns 0 or WEIR_EPARSE.
 */
int weir__kpl_u128_parse(const char *s, size_t len, struct weir_kpl_u128 *out);
/* Writes the canonical decimal text of v and a NUL into out; returns its length (1..39). */
size_t weir__kpl_u128_format(struct weir_kpl_u128 v, char out[WEIR_KPL_HASH_KEY_DEC_MAX + 1]);

/*
 * The hash key Kinesis and the KPL derive from a partition key: MD5 of its bytes (UTF-8 as
 * given; not re-encoded) read as a big-endian unsigned 128-bit integer. `h` may be NULL (a
 * one-shot digest that allocates inside OpenSSL: fine off the hot path). Returns 0 or
 * WEIR_ESYS. The _be form writes the 16 digest bytes, the _dec form the decimal text and a NUL
 * (length in *len when len is not NULL).
 */
int weir__kpl_hash_key(struct weir_kpl_md5 *h, weir_buf partition_key, struct weir_kpl_u128 *out);
int weir__kpl_hash_key_be(struct weir_kpl_md5 *h, weir_buf partition_key, uint8_t out[16]);
int weir__kpl_hash_key_dec(struct weir_kpl_md5 *h, weir_buf partition_key,
                           char out[WEIR_KPL_HASH_KEY_DEC_MAX + 1], size_t *len);
/*
 * Effective hash key of a user record (FORMAT.md section 6): the explicit hash key when
 * `explicit_hash_key` is not NULL (decimal text), else the partition key's MD5 hash key.
 * Returns 0, WEIR_EPARSE (explicit hash key not decimal or above 2^128-1) or WEIR_ESYS.
 */
int weir__kpl_effective_hash_key(struct weir_kpl_md5 *h, weir_buf partition_key,
                                 const weir_buf *explicit_hash_key, struct weir_kpl_u128 *out);

/* A shard's hash-key range, both ends inclusive (ListShards HashKeyRange). Plain value. */
struct weir_kpl_hash_range {
  struct weir_kpl_u128 start;
  struct weir_kpl_u128 end;
};

/* Parses ListShards' StartingHashKey / EndingHashKey (NUL-terminated decimal strings, borrowed).
 * Returns 0, or WEIR_EPARSE when either is not decimal in range or start > end. */
int weir__kpl_hash_range_parse(const char *starting_hash_key, const char *ending_hash_key,
                               struct weir_kpl_hash_range *out);
/* True when start <= key <= end. */
bool weir__kpl_hash_range_contains(const struct weir_kpl_hash_range *r, struct weir_kpl_u128 key);
/*
 * Index of the first of `n` ranges (any order; borrowed) that contains `key`, in *index.
 * Returns 0 or WEIR_ENOTFOUND (no range holds it: the shard list has a gap). Linear in n.
 */
int weir__kpl_shard_find(const struct weir_kpl_hash_range *ranges, size_t n,
                         struct weir_kpl_u128 key, size_t *index);
/*
 * Same, by binary search, for ranges sorted by start and not overlapping (the open shards of a
 * stream, sorted once). Returns 0 or WEIR_ENOTFOUND.
 */
int weir__kpl_shard_find_sorted(const struct weir_kpl_hash_range *ranges, size_t n,
                                struct weir_kpl_u128 key, size_t *index);

/* ---------------------------------------------------------------------------------------------
 * Decoder (deaggregation)
 */

/* One Kinesis record as GetRecords/SubscribeToShard delivered it. All views are borrowed. */
struct weir_kpl_input {
  weir_buf data;              /* the Data blob, base64-decoded */
  weir_buf partition_key;     /* PartitionKey */
  weir_buf sequence_number;   /* SequenceNumber (decimal text), copied to every user record */
  weir_buf explicit_hash_key; /* ExplicitHashKey if the caller knows one (GetRecords doesn't) */
  bool has_explicit_hash_key;
};

/* What a Kinesis record turned out to be. */
enum weir_kpl_kind {
  WEIR_KPL_PLAIN = 0,     /* not an aggregate: one user record, the Kinesis record unchanged */
  WEIR_KPL_AGGREGATE = 1, /* an aggregate: its user records, possibly none */
  WEIR_KPL_FILTERED = 2   /* an aggregate dropped whole: a user record's effective hash key lies
                             outside the shard's range (FORMAT.md section 7); no user records */
};

/*
 * One user record. Every view points into the input given to weir__kpl_decoder_open (data,
 * table entries, or the input's own views) and stays valid while those bytes do; nothing is
 * copied or allocated.
 */
struct weir_kpl_user_record {
  weir_buf data;
  weir_buf partition_key;
  weir_buf explicit_hash_key; /* {NULL, 0} when absent */
  bool has_explicit_hash_key;
  bool aggregated;                  /* false for a plain record */
  weir_buf sequence_number;         /* the Kinesis record's (shared by its user records) */
  uint64_t sub_sequence_number;     /* position in the aggregate; 0 for a plain record */
  uint64_t partition_key_index;     /* table indices (0 for a plain record), for diagnostics */
  uint64_t explicit_hash_key_index; /* meaningful only when has_explicit_hash_key */
};

struct weir_kpl_decoder;

/*
 * Creates a decoder. `max_table_entries` bounds each key table it indexes (0 means
 * WEIR_KPL_DECODER_TABLE_MAX_DEFAULT); the index grows on demand up to it and is kept for the
 * next record, so steady-state decoding allocates nothing. Returns 0 with *out set (free with
 * weir__kpl_decoder_free), WEIR_EINVAL or WEIR_ENOMEM.
 */
int weir__kpl_decoder_new(struct weir_kpl_decoder **out, size_t max_table_entries);
void weir__kpl_decoder_free(struct weir_kpl_decoder *d);

/*
 * Looks at one Kinesis record and prepares to iterate its user records with
 * weir__kpl_decoder_next. `in` is copied, the bytes it views are borrowed: they must stay
 * unchanged until the iteration ends (next open, or free). `range` (borrowed for the call; NULL
 * means the whole hash-key space, i.e. no filtering) is the hash-key range of the shard the
 * record was read from.
 *
 * The record is an aggregate when it has the magic, more than 16 bytes follow it, the MD5
 * trailer matches and the body parses as a proto2 AggregatedRecord; otherwise it is PLAIN.
 * The body is read the way the Java protobuf runtime the KCL uses reads it: fields in any order,
 * unknown fields (including groups) skipped, a known field number with another wire type
 * treated as unknown, required fields enforced (Record.partition_key_index, Record.data,
 * Tag.key), truncation rejected.
 *
 * Table explicit hash keys are read as the KCL's BigInteger reads them: a signed decimal; a
 * negative value or one above 2^128-1 lies outside every shard, so such an aggregate is
 * FILTERED even without a range, as the KCL (whose default range is 0..2^128-1) drops it.
 * Known difference: a table partition key that is not valid UTF-8 is hashed as its raw bytes;
 * the KCL hashes Java's re-encoding of it (invalid sequences become U+FFFD), so with a range
 * such a record could be filtered differently. Writers of this format never emit one.
 *
 * Returns:
 *  0            *kind set; weir__kpl_decoder_count() user records follow.
 *  WEIR_EPARSE  a well-formed aggregate whose records do not make sense (a table index out of
 *               range, an explicit hash key that is not a decimal number): the KCL delivers
 *               the user records before the bad one, loses the rest and does not deliver the
 *               Kinesis record; here *kind is WEIR_KPL_AGGREGATE, next() yields that prefix and
 *               then returns WEIR_EPARSE. Logged with the sequence number.
 *  WEIR_ETOOBIG a key table has more entries than max_table_entries; nothing is delivered.
 *  WEIR_EINVAL  NULL argument (or data longer than 4 GiB). WEIR_ESYS: MD5 unavailable.
 */
int weir__kpl_decoder_open(struct weir_kpl_decoder *d, const struct weir_kpl_input *in,
                           const struct weir_kpl_hash_range *range, enum weir_kpl_kind *kind);
/* User records the current record yields (after open; 1 for PLAIN, 0 for FILTERED). */
size_t weir__kpl_decoder_count(const struct weir_kpl_decoder *d);
/* Entries in the current aggregate's key tables (0 and 0 unless it is an aggregate). */
void weir__kpl_decoder_tables(const struct weir_kpl_decoder *d, size_t *partition_keys,
                              size_t *explicit_hash_keys);
/*
 * Fills *out with the next user record, in order. Returns 0, WEIR_EOF after the last one,
 * WEIR_EPARSE after the valid prefix of a malformed aggregate (see open), or WEIR_ESTATE when
 * no record is open.
 */
int weir__kpl_decoder_next(struct weir_kpl_decoder *d, struct weir_kpl_user_record *out);

/* ---------------------------------------------------------------------------------------------
 * Aggregator (encoder)
 */

/* Whose conventions the aggregator follows for the outer Kinesis record. */
enum weir_kpl_agg_style {
  /*
   * The KPL's (kinesis_record.cc): the outer partition key is "a" and the outer explicit hash
   * key is the first user record's hash key, so the aggregate lands on that record's shard; the
   * explicit-hash-key table holds only keys the user gave; a container with one user record is
   * sent as that record's plain data with its own partition key.
   */
  WEIR_KPL_AGG_STYLE_KPL = 0,
  /*
   * kinesis-aggregation's Java RecordAggregator: always an aggregate; the outer partition key
   * is the first user record's; a user record without an explicit hash key gets its computed
   * hash key stored in the table.
   */
  WEIR_KPL_AGG_STYLE_JAVA = 1
};

struct weir_kpl_agg_config {
  /* Bound on the Kinesis record produced, counted as Kinesis counts it: data plus outer
   * partition key. 0 means WEIR_KPL_KINESIS_RECORD_MAX; allowed WEIR_KPL_AGG_MIN_SIZE ..
   * WEIR_KPL_RECORD_MAX_LIMIT (set it from MaxRecordSizeInKiB for larger-record streams). */
  size_t max_size;
  /* Most user records per aggregate; 0 means no bound beyond max_size (the KPL's
   * AggregationMaxCount default is 4294967295). */
  uint32_t max_count;
  enum weir_kpl_agg_style style;
};

/* The outer Kinesis record weir__kpl_agg_finish produced. */
struct weir_kpl_agg_result {
  size_t len;             /* bytes written to the caller's buffer: the record's Data */
  size_t count;           /* user records in it */
  bool aggregated;        /* false when a single user record went out as plain data */
  weir_buf partition_key; /* PartitionKey; borrowed from the aggregator (or static) until its
                             next add, reset or free */
  char explicit_hash_key[WEIR_KPL_HASH_KEY_DEC_MAX + 1]; /* ExplicitHashKey, NUL-terminated */
};

struct weir_kpl_aggregator;

/*
 * Creates an aggregator (cfg is copied; NULL means all defaults). Its buffers are reserved at
 * their bound up front (pages are committed as they are touched) and its key index grows up to
 * the bound implied by max_size, all reused after reset. Returns 0 with *out set (free with
 * weir__kpl_agg_free), WEIR_EINVAL (bad config) or WEIR_ENOMEM.
 */
int weir__kpl_agg_new(struct weir_kpl_aggregator **out, const struct weir_kpl_agg_config *cfg);
void weir__kpl_agg_free(struct weir_kpl_aggregator *a);

/*
 * Appends one user record; its bytes are copied (all arguments borrowed for the call).
 * `explicit_hash_key` is NULL when the record has none, else decimal text (see
 * weir__kpl_u128_parse), stored as given. Duplicate keys share one table entry.
 * Returns:
 *  0            added.
 *  WEIR_EAGAIN  it would push the aggregate past max_size or max_count: finish and reset, then
 *               add it again. The aggregator is unchanged.
 *  WEIR_ETOOBIG it cannot fit even in an empty aggregate. Unchanged.
 *  WEIR_EINVAL  empty partition key or longer than 256 characters, or a bad explicit hash key.
 *  WEIR_ESTATE  finished and not reset yet. WEIR_ENOMEM: the key index could not grow.
 */
int weir__kpl_agg_add(struct weir_kpl_aggregator *a, weir_buf partition_key,
                      const weir_buf *explicit_hash_key, weir_buf data);
/* User records added since the last reset. */
size_t weir__kpl_agg_count(const struct weir_kpl_aggregator *a);
/* Exact length of the Data weir__kpl_agg_finish would write now (0 when empty). */
size_t weir__kpl_agg_size(const struct weir_kpl_aggregator *a);
/*
 * Writes the outer record's Data (magic, protobuf, MD5; or a lone record's plain data in the
 * KPL style) into out[0..cap) (borrowed) and describes the record in *res. The aggregator keeps
 * its contents (finish may be repeated) and refuses adds until weir__kpl_agg_reset. Returns 0,
 * WEIR_ESTATE (nothing added), WEIR_ETOOBIG (cap < weir__kpl_agg_size(); nothing written) or
 * WEIR_ESYS (MD5 failed).
 */
int weir__kpl_agg_finish(struct weir_kpl_aggregator *a, uint8_t *out, size_t cap,
                         struct weir_kpl_agg_result *res);
/* Empties the aggregator for the next aggregate, keeping its memory. */
void weir__kpl_agg_reset(struct weir_kpl_aggregator *a);

#endif /* WEIR_KPL_INT_H */
