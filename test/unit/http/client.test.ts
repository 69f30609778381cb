// leanFetch (lib/http/client.ts), fetch on node:http, against real loopback servers: requests
// go and come back as with fetch (method, headers, body, status), redirects are followed, refused
// or handed back as fetch does, aborts and cancels hang up, failures are fetch's TypeErrors, and
// Node's own fetch (undici) is never loaded. What that saves is measured in bench:delta (the
// memory of a `launchfit update`), not asserted here.
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leanFetch, SHORT_BODY } from '../../../lib/http/client.ts';
import { ROOT } from '../../_helpers/common.ts';

const run = promisify(execFile);
const TSX = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const LEAN_FETCH = path.join(ROOT, 'lib/http/client.ts');

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

/** A loopback server whose handler gets each request with its whole body; closed by `close()`. */
async function serve(handler: Handler): Promise<{ url: string; close(): Promise<void>; closed: string[] }> {
  const closed: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => handler(req, body, res));
    res.on('close', () => closed.push(req.url ?? ''));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    closed,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

type Failure = Error & { cause?: { code?: string } };
/** What `p` rejects with; a test failure when it resolves. */
const failure = (p: Promise<unknown>): Promise<Failure> =>
  p.then(
    () => {
      throw new Error('it should have failed');
    },
    (error: Failure) => error,
  );

test('a GET and a POST go and come back as with fetch; a refused connection fails as fetch does', async () => {
  const seen: unknown[] = [];
  const s = await serve((req, body, res) => {
    seen.push([
      req.method,
      req.headers['x-test'],
      req.headers['content-type'],
      req.headers['content-length'],
      body,
      req.headers['user-agent'],
    ]);
    if (req.url === '/json') return res.end(JSON.stringify({ echo: body }));
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'X-Answer': 'yes' }).end(`got ${body.length}`);
  });
  try {
    const get = await leanFetch(`${s.url}/`, { headers: { 'X-Test': 'a' } });
    assert.equal([get.status, get.ok, get.headers.get('x-answer'), await get.text()], [200, true, 'yes', 'got 0']);
    const post = await leanFetch(new URL(`${s.url}/`), { method: 'POST', body: 'héllo', headers: [['x-test', 'b']] });
    assert.equal([post.status, post.statusText, await post.text()], [201, 'Created', 'got 5']);
    const bytes = await leanFetch(`${s.url}/json`, {
      method: 'PUT',
      body: new TextEncoder().encode('{"a":1}'),
      headers: { 'User-Agent': 'mine/1' },
    });
    assert.equal(await bytes.json(), { echo: '{"a":1}' });
  } finally {
    await s.close();
  }
  assert.equal(seen, [
    ['GET', 'a', undefined, undefined, '', 'shipkit'],
    ['POST', 'b', 'text/plain;charset=UTF-8', '6', 'héllo', 'shipkit'],
    ['PUT', undefined, undefined, '7', '{"a":1}', 'mine/1'],
  ]);
  const refused = await failure(leanFetch(`${s.url}/`));
  assert.instance(refused, TypeError, 'as fetch: a TypeError whose cause says why');
  assert.is(refused.message, 'fetch failed');
  assert.is(refused.cause?.code, 'ECONNREFUSED');
});

test('redirects: followed by default (303 → GET, 307 keeps the POST), refused with "error", handed back with "manual"', async () => {
  const seen: string[] = [];
  const other = await serve((req, body, res) => {
    seen.push(`other ${req.method} ${req.url} auth=${req.headers.authorization ?? '-'} ${body}`);
    res.end('there');
  });
  const s = await serve((req, body, res) => {
    seen.push(`${req.method} ${req.url} auth=${req.headers.authorization ?? '-'} ${body}`);
    const to: Record<string, [number, string]> = {
      '/see-other': [303, '/end'],
      '/temporary': [307, '/end'],
      '/away': [302, `${other.url}/far`],
      '/loop': [302, '/loop'],
    };
    const hop = to[req.url ?? ''];
    if (hop) res.writeHead(hop[0], { Location: hop[1] }).end();
    else res.end('here');
  });
  try {
    const a = await leanFetch(`${s.url}/see-other`, { method: 'POST', body: 'x' });
    assert.equal([a.status, a.url, a.redirected, await a.text()], [200, `${s.url}/end`, true, 'here']);
    const b = await leanFetch(`${s.url}/temporary`, { method: 'POST', body: 'y' });
    assert.is(await b.text(), 'here');
    const c = await leanFetch(`${s.url}/away`, { headers: { Authorization: 'Bearer t' } });
    assert.is(await c.text(), 'there');
    const manual = await leanFetch(`${s.url}/away`, { redirect: 'manual' });
    assert.equal([manual.status, manual.headers.get('location')], [302, `${other.url}/far`]);
    await manual.body?.cancel();
    const refused = await failure(leanFetch(`${s.url}/away`, { redirect: 'error' }));
    assert.instance(refused, TypeError);
    assert.match(String(refused.cause), /unexpected redirect \(302\)/);
    const loop = await failure(leanFetch(`${s.url}/loop`));
    assert.match(String(loop.cause), /redirect count exceeded/);
  } finally {
    await s.close();
    await other.close();
  }
  assert.equal(seen.slice(0, 7), [
    'POST /see-other auth=- x',
    'GET /end auth=- ',
    'POST /temporary auth=- y',
    'POST /end auth=- y',
    'GET /away auth=Bearer t ',
    'other GET /far auth=- ',
    'GET /away auth=- ',
  ]);
});

test('bodies: read chunk by chunk, cut short of Content-Length or reset, cancelled (the connection hung up), none for 204 and HEAD', async () => {
  const s = await serve((req, _body, res) => {
    if (req.url === '/reset') {
      res.writeHead(200, { 'Content-Length': '100' }).write('only five');
      setTimeout(() => req.socket.resetAndDestroy(), 50);
    } else if (req.url === '/short') {
      res.writeHead(200, { 'Content-Length': '100' }).write('only ten b');
      setTimeout(() => res.destroy(), 50);
    } else if (req.url === '/endless') {
      res.writeHead(200);
      const more = () => res.write(Buffer.alloc(65_536), (error) => error || setImmediate(more));
      more();
    } else if (req.url === '/none') res.writeHead(204).end();
    else res.writeHead(200, { 'Content-Length': '5' }).end('hello');
  });
  try {
    const short = await leanFetch(`${s.url}/short`);
    const reader = short.body!.getReader();
    assert.is(Buffer.from((await reader.read()).value!).toString(), 'only ten b');
    const cut = await failure(reader.read());
    assert.instance(cut, TypeError);
    assert.is(cut.cause?.code, SHORT_BODY);

    const reset = (await leanFetch(`${s.url}/reset`)).body!.getReader();
    assert.ok((await reset.read()).value);
    const broke = await failure(reset.read());
    assert.equal([broke.message, broke.cause?.code], ['terminated', 'ECONNRESET'], 'a reset is not a short body');

    const endless = await leanFetch(`${s.url}/endless`);
    const r = endless.body!.getReader();
    assert.ok((await r.read()).value!.byteLength > 0);
    await r.cancel();
    assert.equal(await r.read(), { done: true });
    await waitUntil(() => s.closed.includes('/endless'));

    const none = await leanFetch(`${s.url}/none`);
    assert.equal([none.status, none.body, await none.text()], [204, null, '']);
    const head = await leanFetch(`${s.url}/`, { method: 'HEAD' });
    assert.equal([head.status, head.headers.get('content-length'), head.body], [200, '5', null]);
    const ok = await leanFetch(`${s.url}/`);
    const chunks: string[] = [];
    for await (const chunk of ok.body as unknown as AsyncIterable<Uint8Array>)
      chunks.push(Buffer.from(chunk).toString());
    assert.is(chunks.join(''), 'hello');
  } finally {
    await s.close();
  }
});

test('an abort before the answer or while the body is read rejects with the signal reason and hangs up', async () => {
  const s = await serve((req, _body, res) => {
    if (req.url === '/slow') return; // never answers
    res.writeHead(200);
    res.write('first');
  });
  try {
    const early = await failure(leanFetch(`${s.url}/slow`, { signal: AbortSignal.timeout(100) }));
    assert.is(early.name, 'TimeoutError');
    const controller = new AbortController();
    const res = await leanFetch(`${s.url}/drip`, { signal: controller.signal });
    const reader = res.body!.getReader();
    assert.is(Buffer.from((await reader.read()).value!).toString(), 'first');
    const pending = failure(reader.read());
    controller.abort();
    assert.is((await pending).name, 'AbortError');
    await waitUntil(() => s.closed.includes('/drip') && s.closed.includes('/slow'));
    const already = await failure(leanFetch(`${s.url}/`, { signal: AbortSignal.abort() }));
    assert.is(already.name, 'AbortError');
  } finally {
    await s.close();
  }
});

test('Node’s own fetch (undici) is not loaded by leanFetch', async () => {
  // In a process of its own: the unit files share one, where another may have used fetch.
  const s = await serve((_req, _body, res) => res.end('ok'));
  const script = `import { leanFetch } from ${JSON.stringify(LEAN_FETCH)};
    const res = await leanFetch(${JSON.stringify(s.url)});
    console.log(await res.text(), JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))));`;
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', TSX, '--input-type=module', '-e', script]);
    assert.is(stdout.trim(), 'ok []', stderr);
  } finally {
    await s.close();
  }
});

test('a URL of another scheme or with credentials, a Request and a stream body are refused', async () => {
  const scheme = await failure(leanFetch('ftp://127.0.0.1/x'));
  assert.instance(scheme, TypeError);
  assert.match(String(scheme.cause), /ftp: URLs are not fetched/);
  await failure(Promise.resolve().then(() => leanFetch({ url: 'http://127.0.0.1/' } as unknown as Request)));
  const creds = await failure(Promise.resolve().then(() => leanFetch('http://user:secret@127.0.0.1:1/')));
  assert.instance(creds, TypeError);
  assert.not.match(creds.message, /secret/, 'the password is not repeated');
  const body = new ReadableStream() as unknown as BodyInit;
  await failure(Promise.resolve().then(() => leanFetch('http://127.0.0.1:1/', { method: 'POST', body })));
});

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(ok(), 'in time');
}

test.run();
