// One POST to a receiver shipkit does not trust (lib/notify/deliver.ts), against real servers on
// loopback: a 2xx is done, a redirect is not followed, 429/5xx may be retried (with Retry-After),
// a 4xx not, a hang times out, a huge answer is read only so far, and the URL is never in the detail.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_ANSWER_BYTES, postJson, retryAfterOf } from '../../../lib/notify/deliver.ts';

async function serve(handler: http.RequestListener) {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/T/B/secret-token`);
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('200: ok, the body and headers sent as JSON', async () => {
  let got = '';
  let type = '';
  const s = await serve((req, res) => {
    type = String(req.headers['content-type']);
    req.on('data', (d) => (got += d));
    req.on('end', () => res.end('ok'));
  });
  try {
    const r = await postJson(s.url, '{"a":1}', { 'X-Sig': 'v' }, { timeoutMs: 5000 });
    assert.equal([r.ok, r.retry, r.status, r.detail], [true, false, 200, 'answered 200']);
    assert.is(got, '{"a":1}');
    assert.is(type, 'application/json');
  } finally {
    await s.close();
  }
});

test('answers that fail: a redirect is not followed; 429 and 503 may be retried; 400 not', async () => {
  let hits = 0;
  const s = await serve((req, res) => {
    hits++;
    const code = Number(req.headers['x-code']);
    res.writeHead(code, code === 302 ? { Location: 'http://127.0.0.1:1/elsewhere' } : { 'Retry-After': '7' });
    res.end();
  });
  try {
    const at = (code: number) => postJson(s.url, '{}', { 'X-Code': String(code) }, { timeoutMs: 5000 });
    const redirect = await at(302);
    assert.equal([redirect.ok, redirect.retry], [false, false]);
    assert.match(redirect.detail, /redirects are not followed/);
    assert.is(hits, 1, 'the redirect was not followed');
    const limited = await at(429);
    assert.equal([limited.retry, limited.retryAfterMs], [true, 7000]);
    assert.is((await at(503)).retry, true);
    assert.is((await at(400)).retry, false);
  } finally {
    await s.close();
  }
});

test('a receiver that never answers times out; one that is not there cannot be connected to', async () => {
  const s = await serve(() => {});
  try {
    const r = await postJson(s.url, '{}', {}, { timeoutMs: 300 });
    assert.equal([r.ok, r.retry, r.detail], [false, true, 'timed out after 0.3 s']);
  } finally {
    await s.close();
  }
  const gone = await postJson(s.url, '{}', {}, { timeoutMs: 2000 });
  assert.is(gone.retry, true);
  assert.match(gone.detail, /could not connect \(ECONNREFUSED\)/);
  assert.not.match(gone.detail, /secret-token/, 'the URL is a secret');
});

test('a huge answer is read only up to the cap', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    let sent = 0;
    const more = () => {
      while (sent < 50 && res.write(chunk)) sent++;
      if (sent < 50) res.once('drain', more);
      else res.end();
    };
    more();
  });
  try {
    const r = await postJson(s.url, '{}', {}, { timeoutMs: 5000 });
    assert.ok(r.ok);
    assert.ok(r.read <= MAX_ANSWER_BYTES, `${r.read} bytes read`);
  } finally {
    await s.close();
  }
});

test('retryAfterOf: seconds or an HTTP date; nonsense is undefined', () => {
  assert.is(retryAfterOf('120'), 120_000);
  const now = Date.parse('2026-11-24T10:00:00Z');
  assert.is(retryAfterOf('Tue, 24 Nov 2026 10:00:30 GMT', now), 30_000);
  assert.is(retryAfterOf('Tue, 24 Nov 2026 09:00:00 GMT', now), 0);
  assert.is(retryAfterOf(null), undefined);
  assert.is(retryAfterOf('soon'), undefined);
});

test.run();
