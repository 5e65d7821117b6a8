#!/usr/bin/env node
// Reads every record of a stream with the AWS SDK for JavaScript v3, for the Kinesis sink's
// tests: every shard (open or closed) from TRIM_HORIZON to its current end, shards in ListShards
// order, records in sequence-number order within a shard.
//
//   node sdk_read_all.js ENDPOINT STREAM [--deagg]
//
// stdout: one JSON line per record {"shard":S,"seq":S,"pk":S,"ehk":S|null,"data_b64":S,
// "sub":N|null}; with --deagg, KPL aggregates are de-aggregated with aws-kinesis-agg (one line
// per user record, "sub" its sub-sequence number; "ehk" only when the aggregate's record carries
// one). A last line {"done":true,"records":N,"kinesis_records":M} says the read completed.
// Errors go to stderr with exit code 1.
'use strict';

const http = require('http');
const { KinesisClient, ListShardsCommand, GetShardIteratorCommand, GetRecordsCommand } =
  require('@aws-sdk/client-kinesis');
const { NodeHttpHandler } = require('@smithy/node-http-handler');
const agg = require('aws-kinesis-agg');

async function main() {
  const [endpoint, stream, flag] = process.argv.slice(2);
  if (!endpoint || !stream) throw new Error('usage: node sdk_read_all.js ENDPOINT STREAM [--deagg]');
  const deagg = flag === '--deagg';
  const client = new KinesisClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true }) }),
    maxAttempts: 5,
  });
  const out = [];
  let users = 0;
  let kinesis = 0;
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
  for (const shard of shards) {
    let it = (await client.send(new GetShardIteratorCommand({
      StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON',
    }))).ShardIterator;
    while (it) {
      const r = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
      for (const rec of r.Records) {
        kinesis++;
        const data = Buffer.from(rec.Data);
        if (!deagg) {
          users++;
          out.push(JSON.stringify({ shard: shard.ShardId, seq: rec.SequenceNumber, pk: rec.PartitionKey,
            ehk: null, data_b64: data.toString('base64'), sub: null }));
          continue;
        }
        const kr = { partitionKey: rec.PartitionKey, sequenceNumber: rec.SequenceNumber, data: data.toString('base64') };
        let failed = null;
        agg.deaggregateSync(kr, true, (err, recs) => {
          if (err) { failed = err; return; }
          for (const u of recs) {
            users++;
            out.push(JSON.stringify({ shard: shard.ShardId, seq: u.sequenceNumber, pk: u.partitionKey,
              ehk: u.explicitPartitionKey === undefined ? null : u.explicitPartitionKey,
              data_b64: u.data, sub: u.subSequenceNumber === undefined ? null : u.subSequenceNumber }));
          }
        });
        if (failed) throw new Error(`deaggregate ${rec.SequenceNumber}: ${failed}`);
      }
      if (r.Records.length === 0 || !r.NextShardIterator) break;
      it = r.NextShardIterator;
    }
  }
  out.push(JSON.stringify({ done: true, records: users, kinesis_records: kinesis }));
  process.stdout.write(out.join('\n') + '\n', () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`sdk_read_all.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
