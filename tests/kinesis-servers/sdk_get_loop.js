#!/usr/bin/env node
// The AWS SDK for JavaScript v3 baseline of bench/bench_kinesis_source.c: drains every shard of
// STREAM from TRIM_HORIZON with a GetRecords loop (Limit LIMIT, all shards concurrently, each
// loop going on until a call returns no records), then prints one JSON line with the records
// and bytes read, wall time and this process's CPU time (from just before the first
// ListShards).
//
//   node sdk_get_loop.js ENDPOINT STREAM LIMIT
//
// The stream must exist and be ACTIVE. HTTP/1.1 keep-alive (kinesalite speaks no HTTP/2).
'use strict';

const http = require('http');
const { KinesisClient, ListShardsCommand, GetShardIteratorCommand, GetRecordsCommand } =
  require('@aws-sdk/client-kinesis');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

async function main() {
  const [endpoint, stream, limitStr] = process.argv.slice(2);
  const limit = Number(limitStr);
  const client = new KinesisClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    requestHandler: new NodeHttpHandler({
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: 16 }),
    }),
    maxAttempts: 5,
  });

  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
  let got = 0;
  let bytes = 0;
  await Promise.all(shards.map(async (shard) => {
    let it = (await client.send(new GetShardIteratorCommand({
      StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON',
    }))).ShardIterator;
    for (;;) {
      const out = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: limit }));
      for (const r of out.Records) bytes += r.Data.length;
      got += out.Records.length;
      if (out.Records.length === 0 || !out.NextShardIterator) return;
      it = out.NextShardIterator;
    }
  }));
  const wall = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({
    wall, cpu: (cpu.user + cpu.system) / 1e6, got, bytes,
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`sdk_get_loop.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
