#!/usr/bin/env node
// A counting HTTP CONNECT proxy for weir's tests: what a client configured with http_proxy /
// HTTPS_PROXY meets in a corporate network, reduced to tunnels.
//
//   node connect_proxy.js
//
// Listens on 127.0.0.1 on a free port and prints one JSON line {"port":P} on stdout once it
// listens; everything else goes to stderr. Exits on SIGTERM/SIGINT and when its stdin reaches
// end of file (the C test holds the pipe, so a dead test leaves no proxy behind).
//
// `CONNECT host:port HTTP/1.1` opens a TCP connection to 127.0.0.1:port, whatever the host name
// (so a test may use a certificate's name, e.g. "Unknown", that resolves nowhere; and the proxy
// never reaches beyond the machine), answers "HTTP/1.1 200 Connection established" and relays
// bytes both ways until either side closes. It never looks inside a tunnel (TLS passes through).
// Any other request is not proxied: GET /__proxy/stats answers
//   {"tunnels":n,"targets":{"<host:port>":n,...},"bytes_up":n,"bytes_down":n,"refused":n}
// (tunnels made, by the authority the client asked for; bytes relayed client -> target and
// back; CONNECTs refused for a bad authority or a target that did not answer), and every other
// request 405, counted in "refused" too.
'use strict';

const http = require('http');
const net = require('net');

const HOST = '127.0.0.1';

const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
process.stdout.on('error', () => {});

function exitCleanly() {
  process.exit(0);
}
process.on('SIGTERM', exitCleanly);
process.on('SIGINT', exitCleanly);
process.stdin.on('end', exitCleanly);
process.stdin.on('error', exitCleanly);
process.stdin.resume();

if (process.argv.length > 2) {
  process.stderr.write('usage: node connect_proxy.js\n');
  process.exit(1);
}

const stats = { tunnels: 0, targets: {}, bytes_up: 0, bytes_down: 0, refused: 0 };

function refuse(sock, status, why) {
  stats.refused++;
  process.stderr.write(`connect_proxy.js: refused: ${why}\n`);
  sock.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Length: 0\r\n` +
    'Connection: close\r\n\r\n');
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/__proxy/stats') {
    const body = Buffer.from(JSON.stringify(stats));
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  stats.refused++;
  res.writeHead(405, { 'Content-Length': 0, Connection: 'close' });
  res.end();
});

server.on('connect', (req, client, head) => {
  const m = /^([^:\s]+|\[[0-9a-fA-F:.]+\]):([0-9]{1,5})$/.exec(req.url);
  const port = m ? Number(m[2]) : 0;
  if (port < 1 || port > 65535) {
    refuse(client, 400, `bad CONNECT authority "${req.url}"`);
    return;
  }
  const up = net.connect({ host: HOST, port });
  let open = false;
  up.on('connect', () => {
    open = true;
    stats.tunnels++;
    stats.targets[req.url] = (stats.targets[req.url] || 0) + 1;
    client.write('HTTP/1.1 200 Connection established\r\n\r\n');
    if (head && head.length > 0) {
      stats.bytes_up += head.length;
      up.write(head);
    }
    client.on('data', (c) => {
      stats.bytes_up += c.length;
    });
    up.on('data', (c) => {
      stats.bytes_down += c.length;
    });
    client.pipe(up);
    up.pipe(client);
  });
  up.on('error', (e) => {
    if (!open) refuse(client, 502, `${req.url}: ${e.message}`);
    else client.destroy();
  });
  client.on('error', () => up.destroy());
  client.on('close', () => up.destroy());
  up.on('close', () => client.destroy());
});
server.on('clientError', (err, sock) => sock.destroy());

server.listen(0, HOST, () => {
  writeResult(JSON.stringify({ port: server.address().port }) + '\n');
});
server.on('error', (e) => {
  process.stderr.write(`connect_proxy.js: ${e.message}\n`);
  process.exit(1);
});
