#!/usr/bin/env node
// The AWS SDK for JavaScript v3 side of bench/bench_kinesis_sink.c: puts N records of SIZE bytes
// (partition key "pk-<i>") with PutRecords, 500 per call and CONCURRENCY calls in flight,
// resending only failed entries, and prints one JSON line {"put_wall":s,"put_cpu":s,"failed":n}
// with wall time and this process's CPU time (user + system).
//
//   node sdk_put_loop.js ENDPOINT STREAM N SIZE CONCURRENCY
//
// The stream must exist and be ACTIVE. HTTP/1.1 keep-alive (kinesalite speaks no HTTP/2).
'use strict';

const http = require('http');
const { KinesisClient, PutRecordsCommand } = require('@aws-sdk/client-kinesis');
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
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: conc }) }),
    maxAttempts: 5,
  });
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  let next = 0;
  let failed = 0;
  async function worker() {
    for (;;) {
      const first = next;
      if (first >= n) return;
      const count = Math.min(500, n - first);
      next += count;
      let entries = [];
      for (let i = first; i < first + count; i++) {
        const data = Buffer.alloc(size, 0x78);
        data.write(String(i).padStart(20, '0'), 0, 'latin1');
        entries.push({ Data: data, PartitionKey: `pk-${i}` });
      }
      while (entries.length > 0) {
        const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
        if (!out.FailedRecordCount) break;
        failed += out.FailedRecordCount;
        entries = entries.filter((_, k) => out.Records[k].ErrorCode);
      }
    }
  }
  await Promise.all(Array.from({ length: conc }, worker));
  const wall = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ put_wall: wall, put_cpu: (cpu.user + cpu.system) / 1e6, failed }) + '\n',
    () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`sdk_put_loop.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
