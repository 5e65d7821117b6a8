#!/usr/bin/env node
// A fault-injecting HTTP proxy for weir's tests: sits between a Kinesis client and a real local
// Kinesis server (kinesalite or kinesis-local, started by tests/support/kinesis_server.c) and,
// by rule and with a seed, answers some requests with the failures the real service produces.
//
//   node fault_proxy.js --target http://127.0.0.1:PORT --seed N [--rules JSON]
//
// Listens on 127.0.0.1 on a free port and prints one JSON line {"port":P} on stdout once it
// listens; everything else goes to stderr. Exits on SIGTERM/SIGINT and when its stdin reaches
// end of file (the C harness holds the pipe, so a dead test leaves no proxy behind).
//
// Rules: a JSON array, evaluated in order for every request; the first rule that fires wins.
//   {"op": "PutRecords" | "GetRecords" | ... | "*"   (the operation from X-Amz-Target)
//    "fault": see FAULTS below
//    "rate": 0..1 (default 1)  "after": N (default 0)  "count": N (default unlimited)
//    "delay_ms": N ("slow", default 1000)
//    "fraction": 0..1 ("partial_failure", default 0.5)
//    "error_code": "..." ("partial_failure", default ProvisionedThroughputExceededException)}
// A rule matches a request when its op matches ("expired_iterator" only ever matches GetRecords
// and "partial_failure" only PutRecords). A matching rule counts the request; the first `after`
// matching requests are skipped, then, while fewer than `count` injections were made, one
// number is drawn from the seeded PRNG and the rule fires when it is below `rate`. A rule that
// does not fire passes the request on to the next rule; a request no rule fires for is
// forwarded as it is. All randomness (rates, which PutRecords entries fail) comes from one
// splitmix64 generator seeded with --seed, so the same seed and the same sequence of requests
// give the same injections. The wire shapes (chunk sizes, trickle pieces and pauses) draw from a
// second generator, also seeded with --seed, so they do not change which requests are hit.
//
// Wire shapes are "faults" that forward the request and change only how the real answer is
// written (chunked, trickle, continue, close, eof_body), or write no HTTP at all (garbage). An
// error answer written in a wire shape gets the x-amzn-ErrorType header AWS sends
// ("<__type>:http://internal.amazon.com/coral/...") when the server did not send one.
//
// Control endpoints on the same port (never forwarded):
//   POST /__proxy/rules   body: a rules array; replaces the rules (their counters restart)
//   GET  /__proxy/stats   {"forwarded":{"<op>":n,...},"injected":{"<fault>":n,...},
//                          "connections":n}  (client connections that carried a request)
// See docs/internals/testing.md.
'use strict';

const http = require('http');

const HOST = '127.0.0.1';

const FAULTS = new Set([
  'throttle', // 400 ProvisionedThroughputExceededException, nothing forwarded
  'http_500', // 500 InternalFailure, nothing forwarded
  'http_503', // 503 ServiceUnavailable, nothing forwarded
  'reset', // the client's connection is reset without an answer, nothing forwarded
  'slow', // delay_ms, then forwarded
  'stall', // never answered: the socket is held until the client gives up
  'truncate', // forwarded; the answer keeps its Content-Length but only half its body is sent
  'expired_iterator', // GetRecords: 400 ExpiredIteratorException, nothing forwarded
  'partial_failure', // PutRecords: some entries removed before forwarding, reported as failed
  // Wire shapes: forwarded, the real answer written differently.
  'chunked', // Transfer-Encoding: chunked, the body in several chunks of random sizes
  'trickle', // the whole answer (head included) in writes of 1-7 bytes, paused between them
  'continue', // an interim "HTTP/1.1 100 Continue" first, then the answer
  'close', // the answer with "Connection: close", then the connection is closed
  'eof_body', // no Content-Length, no chunking: the body ends when the connection closes
  'garbage', // a line that is not HTTP, nothing forwarded; the connection stays open
]);

// stdout carries exactly one line (the port); anything else goes to stderr.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
process.stdout.on('error', () => {});

function die(msg) {
  process.stderr.write(`fault_proxy.js: ${msg}\n`);
  process.exit(1);
}

function exitCleanly() {
  process.exit(0);
}
process.on('SIGTERM', exitCleanly);
process.on('SIGINT', exitCleanly);
process.stdin.on('end', exitCleanly);
process.stdin.on('error', exitCleanly);
process.stdin.resume();

// ---- arguments --------------------------------------------------------------------------

function parseArgs(argv) {
  const out = { target: null, seed: 0n, rules: [] };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--target' && v !== undefined) {
      out.target = new URL(v);
      i++;
    } else if (a === '--seed' && v !== undefined) {
      if (!/^[0-9]+$/.test(v)) die(`--seed wants a decimal number, got ${v}`);
      out.seed = BigInt(v) & 0xffffffffffffffffn;
      i++;
    } else if (a === '--rules' && v !== undefined) {
      let parsed;
      try {
        parsed = JSON.parse(v);
      } catch (e) {
        die(`--rules: ${e.message}`);
      }
      const err = validateRules(parsed);
      if (err) die(`--rules: ${err}`);
      out.rules = parsed;
      i++;
    } else {
      die('usage: node fault_proxy.js --target http://127.0.0.1:PORT --seed N [--rules JSON]');
    }
  }
  if (!out.target) die('--target is required');
  if (out.target.protocol !== 'http:') die('--target must be a plain http:// endpoint');
  return out;
}

function isNum(x, lo, hi) {
  return typeof x === 'number' && Number.isFinite(x) && x >= lo && x <= hi;
}

// Returns an error string, or null when `rules` is a valid rules array.
function validateRules(rules) {
  if (!Array.isArray(rules)) return 'rules must be a JSON array';
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i];
    const at = `rule ${i}`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return `${at}: not an object`;
    for (const k of Object.keys(r)) {
      if (!['op', 'fault', 'rate', 'after', 'count', 'delay_ms', 'fraction', 'error_code']
        .includes(k)) return `${at}: unknown key "${k}"`;
    }
    if (typeof r.op !== 'string' || r.op === '') return `${at}: "op" must be a non-empty string`;
    if (!FAULTS.has(r.fault)) return `${at}: unknown fault "${r.fault}"`;
    if (r.rate !== undefined && !isNum(r.rate, 0, 1)) return `${at}: "rate" must be in 0..1`;
    if (r.after !== undefined && !(Number.isInteger(r.after) && r.after >= 0))
      return `${at}: "after" must be an integer >= 0`;
    if (r.count !== undefined && !(Number.isInteger(r.count) && r.count >= 0))
      return `${at}: "count" must be an integer >= 0`;
    if (r.delay_ms !== undefined && !isNum(r.delay_ms, 0, 600000))
      return `${at}: "delay_ms" must be in 0..600000`;
    if (r.fraction !== undefined && !isNum(r.fraction, 0, 1))
      return `${at}: "fraction" must be in 0..1`;
    if (r.error_code !== undefined && (typeof r.error_code !== 'string' || r.error_code === ''))
      return `${at}: "error_code" must be a non-empty string`;
  }
  return null;
}

const args = parseArgs(process.argv);

// ---- deterministic randomness -------------------------------------------------------------

// splitmix64 (Steele, Lea, Flood 2014): one state word, every seed (0 included) is fine.
let rngState = args.seed;
function nextU64() {
  rngState = (rngState + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = rngState;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return z ^ (z >> 31n);
}
// Uniform in [0, 1) with 53 bits.
function nextUnit() {
  return Number(nextU64() >> 11n) / 9007199254740992;
}

// The wire shapes' generator (chunk cuts, trickle pieces): its own stream, same seed.
let shapeState = (args.seed ^ 0x5851f42d4c957f2dn) & 0xffffffffffffffffn;
function shapeU64() {
  shapeState = (shapeState + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = shapeState;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return z ^ (z >> 31n);
}
// Uniform integer in [lo, hi].
function shapeInt(lo, hi) {
  return lo + Number(shapeU64() % BigInt(hi - lo + 1));
}

// ---- rules and stats -------------------------------------------------------------------------

let rules = [];
function setRules(list) {
  rules = list.map((r) => ({ spec: r, seen: 0, injected: 0 }));
}
setRules(args.rules);

const stats = { forwarded: {}, injected: {}, connections: 0 };
function bump(obj, key) {
  obj[key] = (obj[key] || 0) + 1;
}

// The rule that fires for a request of operation `op`, or null.
function pick(op) {
  for (const r of rules) {
    const s = r.spec;
    if (s.op !== '*' && s.op !== op) continue;
    if (s.fault === 'expired_iterator' && op !== 'GetRecords') continue;
    if (s.fault === 'partial_failure' && op !== 'PutRecords') continue;
    r.seen++;
    if (r.seen <= (s.after || 0)) continue;
    if (s.count !== undefined && r.injected >= s.count) continue;
    const rate = s.rate === undefined ? 1 : s.rate;
    if (nextUnit() >= rate) continue;
    r.injected++;
    return s;
  }
  return null;
}

// ---- answers --------------------------------------------------------------------------------

let requestSerial = 0;
function requestId() {
  requestSerial++;
  return `00000000-0000-4000-8000-${requestSerial.toString(16).padStart(12, '0')}`;
}

// An error answer in the shape Kinesis uses for the JSON 1.1 protocol.
function sendError(res, status, type, message) {
  const body = Buffer.from(JSON.stringify({ __type: type, message }));
  res.writeHead(status, {
    'Content-Type': 'application/x-amz-json-1.1',
    'Content-Length': body.length,
    'x-amzn-RequestId': requestId(),
  });
  res.end(body);
}

function sendJson(res, status, obj) {
  const body = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
}

// Forwards one request (body already read) to the target; calls done(err, status, headers, body).
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function forward(req, body, op, done) {
  bump(stats.forwarded, op);
  const headers = Object.assign({}, req.headers);
  headers.host = args.target.host;
  headers['content-length'] = String(body.length);
  delete headers.connection;
  delete headers['keep-alive'];
  delete headers.expect;
  const up = http.request(
    {
      host: args.target.hostname,
      port: args.target.port,
      method: req.method,
      path: req.url,
      headers,
      agent,
    },
    (ures) => {
      const chunks = [];
      ures.on('data', (c) => chunks.push(c));
      ures.on('end', () => done(null, ures.statusCode, ures.headers, Buffer.concat(chunks)));
      ures.on('error', (e) => done(e));
    });
  up.on('error', (e) => done(e));
  up.end(body);
}

// Copies an upstream answer's headers, without the hop-by-hop ones.
function answerHeaders(headers, len) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) {
    if (['connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(k)) continue;
    h[k] = v;
  }
  h['content-length'] = String(len);
  return h;
}

function relay(res, req, body, op) {
  forward(req, body, op, (err, status, headers, rbody) => {
    if (err) {
      process.stderr.write(`fault_proxy.js: ${op}: target: ${err.message}\n`);
      res.socket && res.socket.destroy();
      return;
    }
    res.writeHead(status, answerHeaders(headers, rbody.length));
    res.end(rbody);
  });
}

function resetSocket(sock) {
  if (!sock) return;
  if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
  else sock.destroy();
}

// PutRecords with some entries failed: the chosen entries are removed from the request, so the
// server never stores them, and failure entries are spliced into its answer at their positions.
function partialFailure(rule, req, res, body, op) {
  let reqObj;
  try {
    reqObj = JSON.parse(body.toString('utf8'));
  } catch (e) {
    relay(res, req, body, op);
    return;
  }
  const recs = Array.isArray(reqObj.Records) ? reqObj.Records : [];
  const n = recs.length;
  if (n === 0) {
    // Nothing to fail: let the server judge the request.
    relay(res, req, body, op);
    return;
  }
  const fraction = rule.fraction === undefined ? 0.5 : rule.fraction;
  let k = Math.round(fraction * n);
  if (fraction > 0 && k === 0) k = 1;
  // Fisher-Yates prefix: the first k of a seeded permutation are the failed positions.
  const idx = recs.map((_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Number(nextU64() % BigInt(n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const failed = new Set(idx.slice(0, k));
  bump(stats.injected, 'partial_failure');
  const code = rule.error_code || 'ProvisionedThroughputExceededException';
  const failEntry = () => ({
    ErrorCode: code,
    ErrorMessage: code === 'InternalFailure'
      ? 'Internal service failure.'
      : 'Rate exceeded for shard shardId-000000000000 in stream ' +
        `${reqObj.StreamName || ''} under account 000000000000.`,
  });
  const splice = (okEntries) => {
    const out = [];
    let next = 0;
    for (let i = 0; i < n; i++) out.push(failed.has(i) ? failEntry() : okEntries[next++]);
    return out;
  };
  if (k === n) {
    // Nothing left to send: answer as the service would when every entry failed.
    const rbody = Buffer.from(JSON.stringify({ FailedRecordCount: n, Records: splice([]) }));
    res.writeHead(200, {
      'Content-Type': 'application/x-amz-json-1.1',
      'Content-Length': rbody.length,
      'x-amzn-RequestId': requestId(),
    });
    res.end(rbody);
    return;
  }
  reqObj.Records = recs.filter((_, i) => !failed.has(i));
  const nbody = Buffer.from(JSON.stringify(reqObj));
  forward(req, nbody, op, (err, status, headers, rbody) => {
    if (err) {
      res.socket && res.socket.destroy();
      return;
    }
    let out = rbody;
    if (status === 200) {
      try {
        const r = JSON.parse(rbody.toString('utf8'));
        if (Array.isArray(r.Records) && r.Records.length === n - k) {
          r.Records = splice(r.Records);
          r.FailedRecordCount = (r.FailedRecordCount || 0) + k;
          out = Buffer.from(JSON.stringify(r));
        }
      } catch (e) {
        // not JSON: pass it on untouched
      }
    }
    res.writeHead(status, answerHeaders(headers, out.length));
    res.end(out);
  });
}

// ---- wire shapes ------------------------------------------------------------------------------

const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazonaws.kinesis.v20131202/';

// An answer's headers for a wire shape: answerHeaders without Content-Length (the shape decides
// how the body is delimited), plus x-amzn-ErrorType on an error answer that lacks it, as AWS
// sends it (weir reads the header before the body's __type).
function shapeHeaders(status, headers, body) {
  const h = answerHeaders(headers, body.length);
  delete h['content-length'];
  if (status >= 400 && h['x-amzn-errortype'] === undefined) {
    try {
      const t = JSON.parse(body.toString('utf8')).__type;
      if (typeof t === 'string' && t !== '') h['x-amzn-errortype'] = t + ERROR_TYPE_SUFFIX;
    } catch (e) {
      // not JSON: no header
    }
  }
  return h;
}

// trickle: while t.active, what Node writes on `sock` goes out in writes of 1-7 bytes (Nagle
// off, so each is its own segment). The first TRICKLE_SLOW_BYTES bytes of an answer (its head
// and the start of its body) are 1-3 ms apart, so the client reads them in separate pieces;
// after that a pause comes every TRICKLE_PAUSE_EVERY writes (a 100 KB answer takes a second or
// two). Installed once per socket; writes pass straight through while inactive.
const TRICKLE_SLOW_BYTES = 512;
const TRICKLE_PAUSE_EVERY = 64;
function trickler(sock) {
  if (sock.weirTrickle) return sock.weirTrickle;
  const t = { active: false, queue: [], pumping: false, sent: 0, pieces: 0 };
  const origWrite = sock.write;
  const pump = () => {
    const item = t.queue[0];
    if (item === undefined || sock.destroyed) {
      t.queue = [];
      t.pumping = false;
      return;
    }
    const piece = item.buf.subarray(item.off, item.off + shapeInt(1, 7));
    item.off += piece.length;
    const last = item.off >= item.buf.length;
    if (last) t.queue.shift();
    origWrite.call(sock, piece, last ? item.cb : undefined);
    t.sent += piece.length;
    t.pieces++;
    if (t.sent <= TRICKLE_SLOW_BYTES || t.pieces % TRICKLE_PAUSE_EVERY === 0)
      setTimeout(pump, shapeInt(1, 3));
    else setImmediate(pump);
  };
  sock.setNoDelay(true);
  sock.write = function write(data, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (!t.active && t.queue.length === 0) return origWrite.call(sock, data, encoding, cb);
    const buf = typeof data === 'string'
      ? Buffer.from(data, encoding || 'utf8') : Buffer.from(data);
    t.queue.push({ buf, off: 0, cb });
    if (!t.pumping) {
      t.pumping = true;
      setImmediate(pump);
    }
    return true;
  };
  sock.weirTrickle = t;
  return t;
}

// Forwards the request and writes the real answer in wire shape `shape`.
function shaped(shape, req, res, body, op) {
  if (shape === 'continue') res.writeContinue();
  forward(req, body, op, (err, status, headers, rbody) => {
    if (err) {
      process.stderr.write(`fault_proxy.js: ${op}: target: ${err.message}\n`);
      resetSocket(req.socket);
      return;
    }
    const h = shapeHeaders(status, headers, rbody);
    if (shape === 'chunked') {
      // Without Content-Length Node frames each write as one chunk: 3 to 6 chunks of random
      // sizes (fewer for a body of fewer bytes), then the last, empty chunk.
      const n = Math.min(rbody.length, shapeInt(3, 6));
      let off = 0;
      res.writeHead(status, h);
      for (let i = 0; i < n; i++) {
        const left = rbody.length - off;
        const k = i === n - 1 ? left : shapeInt(1, left - (n - 1 - i));
        res.write(rbody.subarray(off, off + k));
        off += k;
      }
      res.end();
    } else if (shape === 'eof_body') {
      // Written by hand: Node would add a length or chunk it. No Connection header either;
      // the end of the connection is the only end of the body.
      let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] || 'Unknown'}\r\n`;
      for (const [k, v] of Object.entries(h)) {
        for (const x of [].concat(v)) head += `${k}: ${x}\r\n`;
      }
      req.socket.write(Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), rbody]));
      req.socket.destroySoon(); // FIN once written; nothing more is read from this client
    } else {
      h['content-length'] = String(rbody.length);
      if (shape === 'close') h.connection = 'close'; // Node closes the socket after it
      if (shape === 'trickle') {
        const t = trickler(req.socket);
        t.active = true;
        t.sent = 0;
        t.pieces = 0;
        res.on('finish', () => {
          t.active = false;
        });
      }
      res.writeHead(status, h);
      res.end(rbody);
    }
  });
}

function inject(rule, req, res, body, op) {
  // partial_failure counts itself: only when it actually fails entries.
  if (rule.fault !== 'partial_failure') bump(stats.injected, rule.fault);
  switch (rule.fault) {
    case 'throttle':
      sendError(res, 400, 'ProvisionedThroughputExceededException',
        'Rate exceeded for shard shardId-000000000000 in stream under account 000000000000.');
      return;
    case 'http_500':
      sendError(res, 500, 'InternalFailure', 'Internal service failure.');
      return;
    case 'http_503':
      sendError(res, 503, 'ServiceUnavailable', 'Service Unavailable');
      return;
    case 'expired_iterator': {
      const now = Date.now();
      sendError(res, 400, 'ExpiredIteratorException',
        `Iterator expired. The iterator was created at time ${new Date(now - 600000).toUTCString()}` +
        ` while right now it is ${new Date(now).toUTCString()} which is further in the future` +
        ' than the tolerated delay of 300000 milliseconds.');
      return;
    }
    case 'reset':
      resetSocket(req.socket);
      return;
    case 'stall':
      // Hold the socket: no answer, no close. The client's timeout ends it.
      stalled.add(req.socket);
      req.socket.once('close', () => stalled.delete(req.socket));
      return;
    case 'slow':
      setTimeout(() => relay(res, req, body, op),
        rule.delay_ms === undefined ? 1000 : rule.delay_ms);
      return;
    case 'truncate':
      forward(req, body, op, (err, status, headers, rbody) => {
        if (err) {
          resetSocket(req.socket);
          return;
        }
        res.writeHead(status, answerHeaders(headers, rbody.length));
        res.write(rbody.subarray(0, Math.floor(rbody.length / 2)), () => {
          // Close the connection before the promised length arrives.
          req.socket.destroy();
        });
      });
      return;
    case 'partial_failure':
      partialFailure(rule, req, res, body, op);
      return;
    case 'chunked':
    case 'trickle':
    case 'continue':
    case 'close':
    case 'eof_body':
      shaped(rule.fault, req, res, body, op);
      return;
    case 'garbage':
      // What a client gets on a port that is not HTTP (here an SSH server's greeting). The
      // connection stays open: a client waiting for the rest would wait until its timeout.
      req.socket.write('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
      return;
    default:
      sendError(res, 500, 'InternalFailure', `fault_proxy.js: unknown fault ${rule.fault}`);
  }
}

const stalled = new Set();

// ---- the server -----------------------------------------------------------------------------

function control(req, res, body) {
  if (req.method === 'GET' && req.url === '/__proxy/stats') {
    sendJson(res, 200, stats);
  } else if (req.method === 'POST' && req.url === '/__proxy/rules') {
    let parsed;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (e) {
      sendJson(res, 400, { error: `rules: ${e.message}` });
      return;
    }
    const err = validateRules(parsed);
    if (err) {
      sendJson(res, 400, { error: err });
      return;
    }
    setRules(parsed);
    sendJson(res, 200, { ok: true, rules: parsed.length });
  } else {
    sendJson(res, 404, { error: `no control endpoint ${req.method} ${req.url}` });
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.url.startsWith('/__proxy/')) {
      control(req, res, body);
      return;
    }
    if (!req.socket.weirCounted) {
      req.socket.weirCounted = true;
      stats.connections++;
    }
    const target = String(req.headers['x-amz-target'] || '');
    const op = target.includes('.') ? target.slice(target.lastIndexOf('.') + 1) : target || '-';
    const rule = pick(op);
    if (rule) inject(rule, req, res, body, op);
    else relay(res, req, body, op);
  });
});
// A stalled request must stay stalled until the client gives up, whatever Node's defaults.
server.requestTimeout = 0;
server.headersTimeout = 0;
server.keepAliveTimeout = 5000;
server.on('clientError', (err, sock) => sock.destroy());

server.listen(0, HOST, () => {
  writeResult(JSON.stringify({ port: server.address().port }) + '\n');
});
server.on('error', (e) => die(e.message));
