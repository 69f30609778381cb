// The control protocol's client (lib/http/control-client.ts) against real servers on 127.0.0.1:
// one connection per request, a capped answer, a time limit, an abort, and errno codes kept.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { controlGet } from '../../../lib/http/control-client.ts';
import { freePort } from '../../helpers.ts';

async function serve(handler: http.RequestListener): Promise<{ url: string; connections: () => number; close: () => void }> {
  const server = http.createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections, close: () => { server.closeAllConnections(); server.close(); } };
}

test('answers status and body; each request gets its own short-lived connection; no redirects followed', async () => {
  const s = await serve((req, res) => {
    if (req.url === '/moved') return void res.writeHead(302, { Location: '/elsewhere' }).end();
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ url: req.url, sig: req.headers['x-test'], conn: req.headers.connection }));
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
    const pump = () => { while (res.write(chunk)); };
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
    const aborted = await controlGet(s.url, { headers: {}, timeoutMs: 10_000, signal: stop.signal }).catch((e: Error) => e);
    assert.is((aborted as Error).message, 'stop now');
  } finally {
    s.close();
  }
  const refused = await controlGet(`http://127.0.0.1:${await freePort()}/`, { headers: {}, timeoutMs: 2000 }).catch((e: NodeJS.ErrnoException) => e);
  assert.is((refused as NodeJS.ErrnoException).code, 'ECONNREFUSED');
});

test.run();
