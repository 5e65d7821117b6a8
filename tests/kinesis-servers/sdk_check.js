#!/usr/bin/env node
// Cross-client checks with the AWS SDK for JavaScript v3 (tests/integration/test_kinesis_client.c).
//
//   node sdk_check.js put ENDPOINT STREAM N   puts records i = 0..N-1: PartitionKey "sdk-<i>",
//                                             Data = sdkData(i); prints {"put":N}
//   node sdk_check.js get ENDPOINT STREAM     reads every shard from TRIM_HORIZON; prints
//                                             {"records":[{"pk","seq","data"(base64)}...]}
//
// One JSON line on stdout; errors on stderr with exit code 1. HTTP/1.1 (kinesalite has no h2).
'use strict';

const { KinesisClient, PutRecordsCommand, ListShardsCommand, GetShardIteratorCommand,
  GetRecordsCommand } = require('@aws-sdk/client-kinesis');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

// Record i's bytes: all 256 byte values appear across records (NUL, 0xff, quotes included).
function sdkData(i) {
  const b = Buffer.alloc(1 + (i % 40));
  for (let j = 0; j < b.length; j++) b[j] = (i * 53 + j * 11) & 0xff;
  return b;
}

async function main() {
  const [mode, endpoint, stream, nStr] = process.argv.slice(2);
  const client = new KinesisClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    requestHandler: new NodeHttpHandler(),
  });
  if (mode === 'put') {
    const n = Number(nStr);
    const entries = [];
    for (let i = 0; i < n; i++) entries.push({ Data: sdkData(i), PartitionKey: `sdk-${i}` });
    const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
    if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records failed`);
    process.stdout.write(JSON.stringify({ put: n }) + '\n');
  } else if (mode === 'get') {
    const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
    const records = [];
    for (const s of shards) {
      let it = (await client.send(new GetShardIteratorCommand({
        StreamName: stream, ShardId: s.ShardId, ShardIteratorType: 'TRIM_HORIZON',
      }))).ShardIterator;
      for (;;) {
        const out = await client.send(new GetRecordsCommand({ ShardIterator: it }));
        for (const r of out.Records) {
          records.push({ pk: r.PartitionKey, seq: r.SequenceNumber, data: Buffer.from(r.Data).toString('base64') });
        }
        if (out.Records.length === 0 || !out.NextShardIterator) break;
        it = out.NextShardIterator;
      }
    }
    process.stdout.write(JSON.stringify({ records }) + '\n');
  } else {
    throw new Error('usage: node sdk_check.js put|get ENDPOINT STREAM [N]');
  }
}

main().catch((e) => {
  process.stderr.write(`sdk_check.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
