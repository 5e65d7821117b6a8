#!/usr/bin/env node
// The AWS SDK for JavaScript v3 side of bench/bench_kinesis_put_get.c: puts N records of SIZE
// bytes with PutRecords (500 per call, CONCURRENCY calls in flight), then drains every shard
// with GetRecords, and prints one JSON line with wall time and this process's CPU time.
//
//   node sdk_put_get.js ENDPOINT STREAM N SIZE CONCURRENCY
//
// The stream must exist and be ACTIVE. HTTP/1.1 keep-alive (kinesalite speaks no HTTP/2).
'use strict';

const http = require('http');
const { KinesisClient, PutRecordsCommand, ListShardsCommand, GetShardIteratorCommand,
  GetRecordsCommand } = require('@aws-sdk/client-kinesis');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

async function main() {
  const [endpoint, stream, nStr, sizeStr, concStr] = process.argv.slice(2);
  const n = Number(nStr);
  const size = Number(sizeStr);
  const conc = Number(concStr);
  const client = new KinesisClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    requestHandler: new NodeHttpHandler({
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: conc }),
    }),
    maxAttempts: 5,
  });

  const cpu0 = process.cpuUsage();
  let t0 = Date.now();
  let next = 0;
  let failed = 0;
  async function putWorker() {
    for (;;) {
      const first = next;
      if (first >= n) return;
      const count = Math.min(500, n - first);
      next += count;
      let entries = [];
      for (let i = first; i < first + count; i++) {
        const data = Buffer.alloc(size, i & 0xff);
        data.writeUInt32BE(i, 0);
        entries.push({ Data: data, PartitionKey: `pk-${i}` });
      }
      // Resend failed entries until none is left (neither local server fails any).
      while (entries.length > 0) {
        const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
        if (!out.FailedRecordCount) break;
        failed += out.FailedRecordCount;
        entries = entries.filter((_, k) => out.Records[k].ErrorCode);
      }
    }
  }
  await Promise.all(Array.from({ length: conc }, putWorker));
  const putWall = (Date.now() - t0) / 1000;
  const cpu1 = process.cpuUsage(cpu0);

  t0 = Date.now();
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards;
  let got = 0;
  let bytes = 0;
  async function drain(shard) {
    let it = (await client.send(new GetShardIteratorCommand({
      StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON',
    }))).ShardIterator;
    for (;;) {
      const out = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
      for (const r of out.Records) bytes += r.Data.length;
      got += out.Records.length;
      if (out.Records.length === 0 || !out.NextShardIterator) return;
      it = out.NextShardIterator;
    }
  }
  // Shards drained CONCURRENCY at a time.
  const queue = shards.slice();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (queue.length > 0) await drain(queue.shift());
  }));
  const getWall = (Date.now() - t0) / 1000;
  const cpu2 = process.cpuUsage(cpu0);
  const sec = (u) => (u.user + u.system) / 1e6;
  process.stdout.write(JSON.stringify({
    put_wall: putWall, put_cpu: sec(cpu1), get_wall: getWall, get_cpu: sec(cpu2) - sec(cpu1),
    got, bytes, failed,
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`sdk_put_get.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
