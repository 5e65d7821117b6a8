#!/usr/bin/env node
// Starts one local Kinesis-compatible server for weir's integration tests.
//
//   node start.js kinesalite        -> {"server":"kinesalite","port":P}
//   node start.js kinesis-local     -> {"server":"kinesis-local","port":P,"tlsPort":T}
//
// The server listens on 127.0.0.1 only, on free ports picked by the kernel. Once it answers
// a request, one JSON line is printed on stdout; everything else goes to stderr. The process
// exits on SIGTERM/SIGINT, and also when its stdin reaches end of file, so a test process that
// dies without cleaning up does not leave a server behind (the harness keeps a pipe open).
//
// Facts this relies on (see shared/notes/local-kinesis-servers.md): neither server has a
// bind-address option, so net.Server.prototype.listen is wrapped to force the host;
// kinesis-local is configured by environment only and its TLS port cannot be disabled.
'use strict';

const http = require('http');
const net = require('net');
const path = require('path');
const tls = require('tls');

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30000; // kinesis-local takes ~1-3 s to start on a 2-core machine
const PROBE_TIMEOUT_MS = 2000;

// kinesis-local (a cats-effect IOApp) replaces process.exit with a graceful shutdown that can
// wait 30 s: keep the real one.
const realExit = process.exit.bind(process);

// stdout carries exactly one line, the ports. Anything a server prints goes to stderr: the
// harness stops reading stdout after that line, and a write to a closed pipe would kill node.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
process.stdout.on('error', () => {});

function die(msg) {
  process.stderr.write(`start.js: ${msg}\n`);
  realExit(1);
}

// Every listen() in this process binds 127.0.0.1, whatever the server asked for.
const origListen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length > 0 && typeof args[0] === 'object' && args[0] !== null) {
    args[0] = Object.assign({}, args[0], { host: HOST });
  } else if (args.length > 0 && (typeof args[0] === 'number' || typeof args[0] === 'string')) {
    if (typeof args[1] === 'string') args[1] = HOST;
    else args.splice(1, 0, HOST);
  }
  return origListen.apply(this, args);
};

function exitCleanly(why) {
  if (process.env.WEIR_START_DEBUG) process.stderr.write(`start.js: exiting (${why})\n`);
  realExit(0);
}
process.on('SIGTERM', () => exitCleanly('SIGTERM'));
process.on('SIGINT', () => exitCleanly('SIGINT'));
process.stdin.on('end', () => exitCleanly('stdin closed'));
process.stdin.on('error', () => exitCleanly('stdin error'));
process.stdin.resume();

// One HTTP request with a timeout; resolves with the status code.
function probe(port, method, urlPath, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: HOST, port, method, path: urlPath, headers, timeout: PROBE_TIMEOUT_MS, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// A well-formed (unverified) SigV4 header: both servers only check that one is present.
const AUTH_HEADERS = {
  'Content-Type': 'application/x-amz-json-1.1',
  'X-Amz-Target': 'Kinesis_20131202.ListStreams',
  'X-Amz-Date': '20200101T000000Z',
  Authorization:
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20200101/us-east-1/kinesis/aws4_request, ' +
    'SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=' + '0'.repeat(64),
};

async function waitUntil(fn) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (e) {
      // not up yet
    }
    if (Date.now() > deadline) die('server did not become ready in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tlsHandshakes(port) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: HOST, port, rejectUnauthorized: false, timeout: PROBE_TIMEOUT_MS });
    s.on('secureConnect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(false));
  });
}

async function startKinesalite() {
  const kinesalite = require('kinesalite');
  const server = kinesalite({
    createStreamMs: 50,
    deleteStreamMs: 50,
    updateStreamMs: 50,
    shardLimit: 50, // the default of 10 is too low for split/merge tests
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const port = server.address().port;
  // GET / answers 403 on kinesalite: probe with a real operation.
  await waitUntil(async () => (await probe(port, 'POST', '/', AUTH_HEADERS, '{}')) === 200);
  return { server: 'kinesalite', port };
}

async function startKinesisLocal() {
  const pkgDir = path.dirname(require.resolve('kinesis-local/package.json'));
  Object.assign(process.env, {
    KINESIS_MOCK_PLAIN_PORT: '0',
    KINESIS_MOCK_TLS_PORT: '0',
    KINESIS_MOCK_CERT_PATH: path.join(pkgDir, 'server.json'),
    LOAD_DATA_IF_EXISTS: 'false',
    SHOULD_PERSIST_DATA: 'false',
    LOG_LEVEL: process.env.LOG_LEVEL || 'WARN',
    CREATE_STREAM_DURATION: '50ms',
    DELETE_STREAM_DURATION: '50ms',
    SPLIT_SHARD_DURATION: '50ms',
    MERGE_SHARDS_DURATION: '50ms',
    UPDATE_SHARD_COUNT_DURATION: '50ms',
    REGISTER_STREAM_CONSUMER_DURATION: '50ms',
    DEREGISTER_STREAM_CONSUMER_DURATION: '50ms',
  });
  // Port 0 for both listeners: record what they get, then tell plain from TLS by probing.
  const ports = [];
  const wrapped = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    this.once('listening', () => ports.push(this.address().port));
    return wrapped.apply(this, args);
  };
  require(path.join(pkgDir, 'main.js'));
  await waitUntil(async () => ports.length >= 2);
  let plain = -1;
  let secure = -1;
  await waitUntil(async () => {
    for (const p of ports) {
      if (plain < 0) {
        try {
          if ((await probe(p, 'GET', '/healthcheck', {})) === 200) plain = p;
        } catch (e) {
          // the TLS port drops a plain request
        }
      }
    }
    for (const p of ports) {
      if (p !== plain && secure < 0 && (await tlsHandshakes(p))) secure = p;
    }
    return plain > 0 && secure > 0;
  });
  return { server: 'kinesis-local', port: plain, tlsPort: secure };
}

async function main() {
  const which = process.argv[2];
  let info;
  if (which === 'kinesalite') info = await startKinesalite();
  else if (which === 'kinesis-local') info = await startKinesisLocal();
  else die('usage: node start.js kinesalite|kinesis-local');
  writeResult(JSON.stringify(info) + '\n');
}

main().catch((e) => die(e && e.stack ? e.stack : String(e)));
