// The control protocol's client (lib/http/control-client.ts) against real servers on 127.0.0.1:
// one connection per request, a capped answer, a time limit, an abort, and errno codes kept.
// Under Node it writes http: requests on a plain socket and reads the answers itself
// (lib/http/http1-response.ts): the bytes sent and the outcome of every answer, well-formed or
// hostile, whole or in pieces, are compared with node:http's own.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addressOf, controlGet, controlGetTo } from '../../../lib/http/control-client.ts';
import { closedPort } from '../../_helpers/common.ts';

async function serve(
  handler: http.RequestListener,
): Promise<{ url: string; connections: () => number; close: () => void }> {
  const server = http.createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

test('answers status and body; each request gets its own short-lived connection; no redirects followed', async () => {
  const s = await serve((req, res) => {
    if (req.url === '/moved') return void res.writeHead(302, { Location: '/elsewhere' }).end();
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ url: req.url, sig: req.headers['x-test'], conn: req.headers.connection }));
  });
  try {
    const a = await controlGet(`${s.url}/?repo=a`, { headers: { 'X-Test': 'yes' }, timeoutMs: 5000 });
    const b = await controlGet(`${s.url}/?repo=b`, { headers: {}, timeoutMs: 5000 });
    assert.is(a.status, 200);
    assert.equal(JSON.parse(a.body), { url: '/?repo=a', sig: 'yes', conn: 'close' });
    assert.is(JSON.parse(b.body).url, '/?repo=b');
    assert.is(s.connections(), 2);
    assert.is((await controlGet(`${s.url}/moved`, { headers: {}, timeoutMs: 5000 })).status, 302);
  } finally {
    s.close();
  }
});

test('an endless answer is cut at maxBody', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(500);
    const chunk = 'x'.repeat(16_384);
    const pump = () => {
      while (res.write(chunk));
    };
    res.on('drain', pump);
    pump();
  });
  try {
    const answer = await controlGet(s.url, { headers: {}, timeoutMs: 5000, maxBody: 100_000 });
    assert.is(answer.status, 500);
    assert.is(answer.body.length, 100_000);
  } finally {
    s.close();
  }
});

test('a server that never answers: TimeoutError; an abort: the abort reason; nobody listening: ECONNREFUSED', async () => {
  const s = await serve(() => {});
  try {
    const t0 = Date.now();
    const timedOut = await controlGet(s.url, { headers: {}, timeoutMs: 300 }).catch((e: Error) => e);
    assert.is((timedOut as Error).name, 'TimeoutError');
    assert.ok(Date.now() - t0 < 3000);
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('stop now')), 100);
    const aborted = await controlGet(s.url, { headers: {}, timeoutMs: 10_000, signal: stop.signal }).catch(
      (e: Error) => e,
    );
    assert.is((aborted as Error).message, 'stop now');
  } finally {
    s.close();
  }
  const refused = await controlGet(`http://127.0.0.1:${await closedPort()}/`, { headers: {}, timeoutMs: 2000 }).catch(
    (e: NodeJS.ErrnoException) => e,
  );
  assert.is((refused as NodeJS.ErrnoException).code, 'ECONNREFUSED');
});

test('a server that drips its answer a byte at a time (slowloris) still ends at timeoutMs', async () => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const drip = `HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(1000)}`;
    let at = 0;
    const timer = setInterval(() => (at < drip.length ? socket.write(drip[at++]) : socket.write('a')), 20);
    socket.on('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const t0 = Date.now();
    const error = await controlGet(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
      headers: {},
      timeoutMs: 400,
    }).catch((e: Error) => e);
    assert.is((error as Error).name, 'TimeoutError');
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
});

// The same GET through node:http (what the control client used before), as the reference.
function viaNodeHttp(
  url: string,
  headers: Record<string, string>,
  maxBody = 65_536,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { ...headers, Connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk.subarray(0, Math.max(0, maxBody - size)));
        size += chunk.length;
        if (size >= maxBody) {
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', reject);
      res.on('close', () => reject(new Error('closed early')));
    });
    req.on('error', reject);
  });
}

/** A server that answers each connection's request with `raw` (whole, or `piece` bytes at a time), then `after`. */
async function rawServer(): Promise<{
  port: number;
  serve: (raw: string, piece: number, after: 'end' | 'stay') => void;
  requests: string[];
  close: () => void;
}> {
  let current: { raw: string; piece: number; after: 'end' | 'stay' } = { raw: '', piece: 0, after: 'end' };
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const { raw, piece, after } = current;
    let got = '';
    socket.on('data', async (d) => {
      got += d.toString('latin1');
      if (!got.endsWith('\r\n\r\n')) return;
      requests.push(got);
      const bytes = Buffer.from(raw, 'latin1');
      for (let at = 0; at < bytes.length && !socket.destroyed; at += piece || bytes.length) {
        socket.write(bytes.subarray(at, at + (piece || bytes.length)));
        if (piece) await new Promise((r) => setTimeout(r, 2));
      }
      if (after === 'end' && !socket.destroyed) socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    serve: (raw, piece, after) => {
      current = { raw, piece, after };
    },
    requests,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const outcome = (p: Promise<{ status: number; body: string }>) =>
  p.then(
    (a) => `${a.status} ${JSON.stringify(a.body)}`,
    (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNRESET'
        ? `ECONNRESET ${e.message}`
        : e.code?.startsWith('HPE_')
          ? `parse error ${e.code}`
          : `${e.name} ${e.code} ${e.message}`,
  );

const answers: Record<string, [string, 'end' | 'stay']> = {
  'Content-Length': [
    'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{"state":"queued"}',
    'end',
  ],
  'Content-Length, connection left open': ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', 'stay'],
  'chunked, with an extension and trailers': [
    'HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{"err\r\n10\r\nor":"disk full"}\r\n0\r\nX-T: 1\r\n\r\n',
    'end',
  ],
  'chunked, left open after the last chunk': [
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
    'stay',
  ],
  'body to the end of the connection, HTTP/1.0': ['HTTP/1.0 503 Service Unavailable\r\n\r\n{"error":"x"}', 'end'],
  'no reason phrase, a UTF-8 body': ['HTTP/1.1 500\r\nContent-Length: 7\r\n\r\n\xc3\xa9t\xc3\xa9!!', 'end'],
  'bytes after the answer': ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiTHERE', 'end'],
  '100 Continue first': ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', 'end'],
  '204 and 304 have no body': ['HTTP/1.1 204 No Content\r\n\r\n', 'stay'],
  '304 with a Content-Length': ['HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n', 'stay'],
  'Transfer-Encoding that is not chunked': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello', 'end'],
  'closed before answering': ['', 'end'],
  'closed inside the head': ['HTTP/1.1 200 OK\r\nContent-Le', 'end'],
  'closed inside a Content-Length body': ['HTTP/1.1 500 OK\r\nContent-Length: 100\r\n\r\n{"error":', 'end'],
  'closed inside a chunked body': ['HTTP/1.1 500 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n', 'end'],
  'not HTTP': ['SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n', 'end'],
  'not HTTP, connection left open': ['SSH-2.0-OpenSSH_9.2\r\n', 'stay'],
  'lower-case HTTP': ['http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', 'end'],
  'bare LF line ends': ['HTTP/1.1 200 OK\nContent-Length: 2\n\nhi', 'end'],
  'bad status code': ['HTTP/1.1 2x0 OK\r\n\r\n', 'end'],
  'four-digit status': ['HTTP/1.1 1000 OK\r\n\r\n', 'end'],
  'bad Content-Length': ['HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n', 'end'],
  'two Content-Lengths': ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nhi', 'end'],
  'Content-Length with Transfer-Encoding': [
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
    'end',
  ],
  'a space in a header name': ['HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n', 'end'],
  'a header line without a colon': ['HTTP/1.1 200 OK\r\nBadHeader\r\n\r\n', 'end'],
  'a folded header line': ['HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nhi', 'end'],
  'a bad chunk size': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n', 'end'],
  'endless trailers': [
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n${'X-T: 1\r\n'.repeat(4000)}\r\n`,
    'end',
  ],
  'a chunk extension over 16 KiB': [
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=${'a'.repeat(20_000)}\r\nhi\r\n0\r\n\r\n`,
    'end',
  ],
  'a chunk size past 2^53': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nhi', 'end'],
  'a chunk size of 16 hex digits': [
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000002\r\nhi\r\n0\r\n\r\n',
    'end',
  ],
  'a long trailer line': [
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: ${'a'.repeat(1500)}\r\n\r\n`,
    'end',
  ],
  'a long chunk extension': [
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=${'a'.repeat(1500)}\r\nhi\r\n0\r\n\r\n`,
    'end',
  ],
  'a trailer line over 16 KiB': [
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: ${'a'.repeat(20_000)}\r\n\r\n`,
    'end',
  ],
  'a head over 16 KiB': [`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, 'end'],
};

test('every answer, whole or a few bytes at a time, ends as it does with node:http', async () => {
  const s = await rawServer();
  try {
    const url = `http://127.0.0.1:${s.port}/?repo=site`;
    for (const [label, [raw, after]] of Object.entries(answers)) {
      for (const piece of raw.length > 2000 ? [0] : [0, 3]) {
        s.serve(raw, piece, after);
        const want = await outcome(viaNodeHttp(url, {}));
        const got = await outcome(controlGet(url, { headers: {}, timeoutMs: 5000 }));
        assert.is(got, want, `${label}${piece ? ', in 3-byte pieces' : ''}`);
      }
    }
    // And the cut at maxBody counts the body's bytes, not the chunked framing.
    s.serve(
      `HTTP/1.1 500 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'a\r\n0123456789\r\n'.repeat(50)}0\r\n\r\n`,
      0,
      'end',
    );
    assert.is(
      await outcome(controlGet(url, { headers: {}, timeoutMs: 5000, maxBody: 25 })),
      `500 "${'0123456789'.repeat(2)}01234"`,
    );
    assert.is(await outcome(viaNodeHttp(url, {}, 25)), `500 "${'0123456789'.repeat(2)}01234"`);
  } finally {
    s.close();
  }
});

test('the request is the bytes node:http sends: path and query as given, headers in order, Connection: close, Host', async () => {
  const s = await rawServer();
  try {
    s.serve('HTTP/1.1 204 No Content\r\n\r\n', 0, 'end');
    const headers = {
      'User-Agent': 'shipkit-server-update',
      Accept: 'application/json',
      'X-Shipkit-Signature': 'sha256=00ff',
    };
    for (const url of [`http://127.0.0.1:${s.port}/hook/?repo=my%20site&wait=1`, `http://localhost:${s.port}/`]) {
      await viaNodeHttp(url, headers);
      await controlGet(url, { headers, timeoutMs: 5000 });
      // The same, from an address parsed before (as a fan-out's list is).
      const parsed = new URL(url);
      await controlGetTo(addressOf(parsed, parsed.pathname + parsed.search), { headers, timeoutMs: 5000 });
      assert.is(s.requests.length % 3, 0);
      const [reference, ours, fromAddress] = s.requests.slice(-3);
      assert.is(ours, reference);
      assert.is(fromAddress, reference);
      assert.ok(
        ours.startsWith(`GET /${url.split('/').slice(3).join('/')} HTTP/1.1\r\nUser-Agent: shipkit-server-update\r\n`),
        ours,
      );
    }
    const refused = await controlGet(`http://127.0.0.1:${s.port}/`, {
      headers: { 'X-Bad': 'a\r\nInjected: 1' },
      timeoutMs: 5000,
    }).catch((e: NodeJS.ErrnoException) => e);
    assert.is((refused as NodeJS.ErrnoException).code, 'ERR_INVALID_CHAR');
  } finally {
    s.close();
  }
});

test.run();
