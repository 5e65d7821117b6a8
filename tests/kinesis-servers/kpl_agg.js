#!/usr/bin/env node
// KPL aggregation with aws-kinesis-agg (the kinesis-aggregation Node library), for the
// cross-client checks in tests/integration/test_kpl_crosscheck.c.
//
//   node kpl_agg.js encode   stdin:  one JSON line per user record
//                                    {"pk":S, "ehk":S|null (optional), "data_b64":S}
//                            stdout: one JSON line per Kinesis record the library's
//                                    RecordAggregator produced, in order
//                                    {"pk":S, "ehk":S|null, "data_b64":S, "count":N}
//                                    (count: user records aggregated into it)
//
//   node kpl_agg.js decode   stdin:  one JSON line per Kinesis record as GetRecords returns it
//                                    {"pk":S, "ehk":S|null (optional), "seq":S, "data_b64":S}
//                            stdout: one JSON line per user record deaggregate() yields, in order
//                                    {"seq":S, "sub":N|null, "pk":S, "ehk":S|null,
//                                     "data_b64":S, "aggregated":B, "ehk_index_present":B|null}
//                                    (sub and aggregated come from the library: it gives a
//                                    sub-sequence number to user records of an aggregate only;
//                                    ehk_index_present says whether the aggregate's Record had an
//                                    explicit_hash_key_index field, read with the library's own
//                                    protobuf model, because deaggregate() reports table entry 0
//                                    for a Record without one when the table is not empty),
//                                    or {"seq":S, "error":S} when the library reports an error
//                                    for that Kinesis record.
//
// Checksums are verified when decoding. The whole of stdin is read before anything is written.
// Errors outside the library's own reporting go to stderr with exit code 1.
'use strict';

const agg = require('aws-kinesis-agg');
const aggCommon = require('aws-kinesis-agg/lib/common');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function parseLines(text) {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

function orNull(v) {
  return v === undefined || v === null ? null : v;
}

function encode(inputs) {
  const out = [];
  const aggregator = new agg.RecordAggregator();
  const records = inputs.map((u) => {
    const r = { partitionKey: u.pk, data: Buffer.from(u.data_b64, 'base64') };
    if (u.ehk !== undefined && u.ehk !== null) r.explicitHashKey = u.ehk;
    return r;
  });
  aggregator.aggregateRecords(records, true, (err, encoded) => {
    if (err) throw err;
    // RecordAggregator's onReady value: {partitionKey, data, ExplicitHashKey?}.
    const ehk = encoded.ExplicitHashKey !== undefined ? encoded.ExplicitHashKey : encoded.explicitHashKey;
    out.push(JSON.stringify({
      pk: encoded.partitionKey,
      ehk: orNull(ehk),
      data_b64: Buffer.from(encoded.data).toString('base64'),
      // The callback runs before the aggregator clears its pending records.
      count: aggregator.length(),
    }));
  });
  return out;
}

function decode(inputs) {
  const out = [];
  for (const k of inputs) {
    const kinesisRecord = { partitionKey: k.pk, sequenceNumber: k.seq, data: k.data_b64 };
    if (k.ehk !== undefined && k.ehk !== null) kinesisRecord.explicitPartitionKey = k.ehk;
    let failed = false;
    // Which Records carry field 2, when the library takes the blob for an aggregate.
    let present = null;
    const blob = Buffer.from(k.data_b64, 'base64');
    if (blob.length >= 20 && blob.subarray(0, 4).equals(aggCommon.magic)) {
      try {
        const msg = aggCommon.AggregatedRecord.decode(blob.subarray(4, blob.length - 16));
        present = msg.records.map((r) => Object.prototype.hasOwnProperty.call(r, 'explicit_hash_key_index'));
      } catch (e) {
        present = null;
      }
    }
    agg.deaggregate(kinesisRecord, true, (err, u) => {
      if (err) throw err; // the library never passes one here
      out.push(JSON.stringify({
        seq: orNull(u.sequenceNumber),
        sub: orNull(u.subSequenceNumber),
        pk: orNull(u.partitionKey),
        ehk: orNull(u.explicitPartitionKey),
        data_b64: u.data,
        aggregated: u.subSequenceNumber !== undefined,
        ehk_index_present: present !== null && u.subSequenceNumber !== undefined ? present[u.subSequenceNumber] : null,
      }));
    }, (err) => {
      if (err && !failed) {
        failed = true;
        out.push(JSON.stringify({ seq: k.seq, error: String(err && err.message ? err.message : err) }));
      }
    });
  }
  return out;
}

async function main() {
  const mode = process.argv[2];
  if (mode !== 'encode' && mode !== 'decode') throw new Error('usage: node kpl_agg.js encode|decode < json-lines');
  const inputs = parseLines(await readStdin());
  const lines = mode === 'encode' ? encode(inputs) : decode(inputs);
  const text = lines.length > 0 ? lines.join('\n') + '\n' : '';
  process.stdout.write(text, () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`kpl_agg.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
