// Request signing (lib/http/signing.ts, docs/design.md). The canonical string is checked
// against HMACs computed by the openssl CLI from the contract's text, not against our own code.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $ } from '../../../lib/core/shell.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { startHttpServer } from '../../../lib/http/server.ts';
import {
  canonicalRequest,
  createRequestVerifier,
  hmacSha256Hex,
  loadSecret,
  safeEqual,
  signRequest,
} from '../../../lib/http/signing.ts';
import { tmpDir } from '../../_helpers/common.ts';

$.verbose = false;
$.quiet = true;

const SECRET = 'correct horse battery staple';
const T0 = 1_700_000_000_000; // ms
const NONCE = 'abcdefghijklmnop0123';
const fixedNow = (ms: number) => () => ms;

/** HMAC-SHA256 hex by the openssl CLI: data on stdin, key as given. */
async function opensslHmac(secret: string, data: string): Promise<string> {
  const out = await $({ input: data })`openssl dgst -sha256 -hmac ${secret}`;
  const hex = out.stdout.trim().split(/\s+/).pop()!;
  assert.match(hex, /^[0-9a-f]{64}$/);
  return hex;
}

/** Headers as a Node server sees them: names lowercased. */
function lower(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

function verifierAt(ms: number, secret = SECRET) {
  return createRequestVerifier(secret, { now: fixedNow(ms) });
}

test('signRequest headers match an HMAC computed by openssl over the contract string', async () => {
  const headers = signRequest(SECRET, 'get', '/?repo=site&wait=1', { now: fixedNow(T0 + 999), nonce: NONCE });
  assert.equal(Object.keys(headers).sort(), ['X-Shipkit-Nonce', 'X-Shipkit-Signature', 'X-Shipkit-Timestamp']);
  assert.is(headers['X-Shipkit-Timestamp'], '1700000000');
  assert.is(headers['X-Shipkit-Nonce'], NONCE);
  // METHOD "\n" PATH_AND_QUERY "\n" TIMESTAMP "\n" NONCE, method upper-case, written out by hand.
  const expected = await opensslHmac(SECRET, `GET\n/?repo=site&wait=1\n1700000000\n${NONCE}`);
  assert.is(headers['X-Shipkit-Signature'], `sha256=${expected}`);
});

test('a request with a body signs a fifth line, hex(sha256(body)) (openssl); the verifier checks it', async () => {
  const body = '{"app":"my-app","host":"0123456789abcdef0123456789abcdef","result":"updated"}';
  const headers = signRequest(SECRET, 'post', '/fleet/reports', { now: fixedNow(T0), nonce: NONCE, body });
  const bodyHex = (await $({ input: body })`openssl dgst -sha256`).stdout.trim().split(/\s+/).pop()!;
  const expected = await opensslHmac(SECRET, `POST\n/fleet/reports\n1700000000\n${NONCE}\n${bodyHex}`);
  assert.is(headers['X-Shipkit-Signature'], `sha256=${expected}`);
  assert.equal(verifierAt(T0).verify('POST', '/fleet/reports', lower(headers), { bodySha256: bodyHex }), {
    ok: true,
    secret: 0,
  });
  const other = signRequest(SECRET, 'POST', '/fleet/reports', { now: fixedNow(T0), body });
  assert.equal(
    verifierAt(T0).verify('POST', '/fleet/reports', lower(other), {
      bodySha256: bodyHex.replace(/^./, (c) => (c === '0' ? '1' : '0')),
    }),
    { ok: false, reason: 'wrong signature' },
    'another body',
  );
  const noBody = signRequest(SECRET, 'POST', '/fleet/reports', { now: fixedNow(T0) });
  assert.equal(
    verifierAt(T0).verify('POST', '/fleet/reports', lower(noBody), { bodySha256: bodyHex }),
    { ok: false, reason: 'wrong signature' },
    'signed without the body line',
  );
});

test('a request signed by openssl (the README recipe) verifies', async () => {
  for (const [secret, pathAndQuery] of [
    [SECRET, '/?repo=site'],
    ['s3cr€t with ünïcode and $hell "chars"', '/hook/?repo=octo%2Fsite&wait=1'],
  ]) {
    const ts = String(Math.floor(T0 / 1000));
    const nonce = 'fedcba9876543210fedcba9876543210';
    const hex = await opensslHmac(secret, `GET\n${pathAndQuery}\n${ts}\n${nonce}`);
    const verdict = verifierAt(T0, secret).verify('GET', pathAndQuery, {
      'x-shipkit-timestamp': ts,
      'x-shipkit-nonce': nonce,
      'x-shipkit-signature': `sha256=${hex}`,
    });
    assert.equal(verdict, { ok: true, secret: 0 }, `secret ${JSON.stringify(secret)}`);
  }
});

test('hmacSha256Hex and canonicalRequest agree with openssl', async () => {
  assert.is(canonicalRequest('post', '/status', '1', NONCE), `POST\n/status\n1\n${NONCE}`);
  assert.is(hmacSha256Hex('k', 'data'), await opensslHmac('k', 'data'));
});

test('round trip: signed now, verified now; random nonces are 16+ chars and differ', () => {
  const verifier = verifierAt(T0);
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const headers = signRequest(SECRET, 'GET', '/?repo=site', { now: fixedNow(T0) });
    assert.ok(headers['X-Shipkit-Nonce'].length >= 16);
    seen.add(headers['X-Shipkit-Nonce']);
    assert.equal(verifier.verify('GET', '/?repo=site', lower(headers)), { ok: true, secret: 0 });
  }
  assert.is(seen.size, 20);
});

test('nonces stay 32 hex digits and distinct across the blocks of random bytes they are cut from (256 a block)', () => {
  const nonces = Array.from({ length: 1000 }, () => signRequest(SECRET, 'GET', '/?repo=site')['X-Shipkit-Nonce']);
  for (const n of nonces) assert.match(n, /^[0-9a-f]{32}$/);
  assert.is(new Set(nonces).size, 1000);
  // 256 nonces from one block are not a pattern: no two share a 16-hex-digit half.
  assert.is(new Set(nonces.flatMap((n) => [n.slice(0, 16), n.slice(16)])).size, 2000);
});

// [label, how the request was signed, how it is checked, expected reason]
interface Case {
  label: string;
  sign?: { secret?: string; method?: string; path?: string; nowMs?: number; nonce?: string };
  verify?: { method?: string; path?: string; nowMs?: number };
  edit?: (h: Record<string, string | string[] | undefined>) => void;
  reason: string | null;
}

const hex64 = 'a'.repeat(64);
const cases: Case[] = [
  { label: 'correct', reason: null },
  { label: 'timestamp 299 s old', sign: { nowMs: T0 - 299_000 }, reason: null },
  { label: 'timestamp 299 s ahead', sign: { nowMs: T0 + 299_000 }, reason: null },
  { label: 'wrong secret', sign: { secret: 'not the secret' }, reason: 'wrong signature' },
  { label: 'timestamp 10 minutes old', sign: { nowMs: T0 - 600_000 }, reason: 'timestamp outside the allowed window' },
  {
    label: 'timestamp 10 minutes ahead',
    sign: { nowMs: T0 + 600_000 },
    reason: 'timestamp outside the allowed window',
  },
  { label: 'timestamp 301 s old', sign: { nowMs: T0 - 301_000 }, reason: 'timestamp outside the allowed window' },
  { label: 'signed for another repo', sign: { path: '/?repo=other' }, reason: 'wrong signature' },
  { label: 'signed for another path', sign: { path: '/status' }, reason: 'wrong signature' },
  {
    label: 'query with &wait=1 added after signing',
    verify: { path: '/?repo=site&wait=1' },
    reason: 'wrong signature',
  },
  { label: 'signed for another method', sign: { method: 'POST' }, reason: 'wrong signature' },
  {
    label: 'timestamp edited after signing',
    edit: (h) => {
      h['x-shipkit-timestamp'] = String(T0 / 1000 + 1);
    },
    reason: 'wrong signature',
  },
  {
    label: 'nonce edited after signing',
    edit: (h) => {
      h['x-shipkit-nonce'] = 'zzzzzzzzzzzzzzzzzzzz';
    },
    reason: 'wrong signature',
  },
  {
    label: 'no headers at all',
    edit: (h) => {
      for (const k of Object.keys(h)) delete h[k];
    },
    reason: 'missing signature headers',
  },
  {
    label: 'missing timestamp',
    edit: (h) => {
      delete h['x-shipkit-timestamp'];
    },
    reason: 'missing signature headers',
  },
  {
    label: 'missing nonce',
    edit: (h) => {
      delete h['x-shipkit-nonce'];
    },
    reason: 'missing signature headers',
  },
  {
    label: 'missing signature',
    edit: (h) => {
      delete h['x-shipkit-signature'];
    },
    reason: 'missing signature headers',
  },
  {
    label: 'empty signature',
    edit: (h) => {
      h['x-shipkit-signature'] = '';
    },
    reason: 'missing signature headers',
  },
  {
    label: 'duplicated signature header (two values)',
    edit: (h) => {
      h['x-shipkit-signature'] = [String(h['x-shipkit-signature']), `sha256=${hex64}`];
    },
    reason: 'missing signature headers',
  },
  {
    label: 'duplicated timestamp header',
    edit: (h) => {
      h['x-shipkit-timestamp'] = [String(h['x-shipkit-timestamp']), String(h['x-shipkit-timestamp'])];
    },
    reason: 'missing signature headers',
  },
  {
    label: 'duplicates joined by a proxy',
    edit: (h) => {
      h['x-shipkit-signature'] = `${h['x-shipkit-signature']}, sha256=${hex64}`;
    },
    reason: 'malformed signature',
  },
  {
    label: 'timestamp not a number',
    edit: (h) => {
      h['x-shipkit-timestamp'] = 'yesterday';
    },
    reason: 'malformed timestamp',
  },
  {
    label: 'negative timestamp',
    edit: (h) => {
      h['x-shipkit-timestamp'] = '-1700000000';
    },
    reason: 'malformed timestamp',
  },
  {
    label: 'timestamp in exponent form',
    edit: (h) => {
      h['x-shipkit-timestamp'] = '1.7e9';
    },
    reason: 'malformed timestamp',
  },
  { label: 'timestamp in milliseconds (far future)', sign: { nowMs: T0 * 1000 }, reason: 'malformed timestamp' },
  { label: 'short nonce (15 chars)', sign: { nonce: 'a'.repeat(15) }, reason: 'malformed nonce' },
  { label: 'nonce of 16 chars is enough', sign: { nonce: 'a'.repeat(16) }, reason: null },
  { label: 'nonce with a space', sign: { nonce: 'abcdefgh ijklmnop' }, reason: 'malformed nonce' },
  {
    label: 'nonce with a newline (canonical-string injection)',
    sign: { nonce: 'abcdefghijklmnop\nx' },
    reason: 'malformed nonce',
  },
  { label: 'huge nonce', sign: { nonce: 'a'.repeat(129) }, reason: 'malformed nonce' },
  {
    label: 'signature without sha256= prefix',
    edit: (h) => {
      h['x-shipkit-signature'] = String(h['x-shipkit-signature']).slice(7);
    },
    reason: 'malformed signature',
  },
  {
    label: 'sha1= prefix',
    edit: (h) => {
      h['x-shipkit-signature'] = String(h['x-shipkit-signature']).replace('sha256=', 'sha1=');
    },
    reason: 'malformed signature',
  },
  // Strict on purpose: the contract's hex (and openssl's) is lower-case.
  {
    label: 'upper-case hex',
    edit: (h) => {
      h['x-shipkit-signature'] = `sha256=${String(h['x-shipkit-signature']).slice(7).toUpperCase()}`;
    },
    reason: 'malformed signature',
  },
  {
    label: 'truncated hex',
    edit: (h) => {
      h['x-shipkit-signature'] = String(h['x-shipkit-signature']).slice(0, -1);
    },
    reason: 'malformed signature',
  },
  {
    label: 'trailing garbage',
    edit: (h) => {
      h['x-shipkit-signature'] = `${h['x-shipkit-signature']}00`;
    },
    reason: 'malformed signature',
  },
  {
    label: 'all-zero signature',
    edit: (h) => {
      h['x-shipkit-signature'] = `sha256=${'0'.repeat(64)}`;
    },
    reason: 'wrong signature',
  },
];

for (const c of cases) {
  test(`verify: ${c.label} → ${c.reason ?? 'ok'}`, () => {
    const s = c.sign ?? {};
    const headers: Record<string, string | string[] | undefined> = lower(
      signRequest(s.secret ?? SECRET, s.method ?? 'GET', s.path ?? '/?repo=site', {
        now: fixedNow(s.nowMs ?? T0),
        nonce: s.nonce ?? NONCE,
      }),
    );
    c.edit?.(headers);
    const v = c.verify ?? {};
    const verdict = verifierAt(v.nowMs ?? T0).verify(v.method ?? 'GET', v.path ?? '/?repo=site', headers);
    assert.equal(verdict, c.reason === null ? { ok: true, secret: 0 } : { ok: false, reason: c.reason });
  });
}

test('replayed nonce is refused, also with a fresh timestamp; other nonces still pass', () => {
  let now = T0;
  const verifier = createRequestVerifier(SECRET, { now: () => now });
  const first = lower(signRequest(SECRET, 'GET', '/?repo=site', { now: () => now, nonce: NONCE }));
  assert.equal(verifier.verify('GET', '/?repo=site', first), { ok: true, secret: 0 });
  assert.equal(verifier.verify('GET', '/?repo=site', first), { ok: false, reason: 'replayed nonce' });
  now += 60_000;
  const sameNonceLater = lower(signRequest(SECRET, 'GET', '/?repo=site', { now: () => now, nonce: NONCE }));
  assert.equal(verifier.verify('GET', '/?repo=site', sameNonceLater), { ok: false, reason: 'replayed nonce' });
  const other = lower(signRequest(SECRET, 'GET', '/?repo=site', { now: () => now, nonce: 'another-nonce-000001' }));
  assert.equal(verifier.verify('GET', '/?repo=site', other), { ok: true, secret: 0 });
  // Once the window has passed the old request is refused for its timestamp, not accepted.
  now += 400_000;
  assert.equal(verifier.verify('GET', '/?repo=site', first), {
    ok: false,
    reason: 'timestamp outside the allowed window',
  });
});

test('a forged request does not burn the nonce of the genuine one', () => {
  const verifier = verifierAt(T0);
  const forged = lower(signRequest('wrong secret', 'GET', '/?repo=site', { now: fixedNow(T0), nonce: NONCE }));
  assert.equal(verifier.verify('GET', '/?repo=site', forged), { ok: false, reason: 'wrong signature' });
  const genuine = lower(signRequest(SECRET, 'GET', '/?repo=site', { now: fixedNow(T0), nonce: NONCE }));
  assert.equal(verifier.verify('GET', '/?repo=site', genuine), { ok: true, secret: 0 });
});

test('windowSec option narrows the window', () => {
  const verifier = createRequestVerifier(SECRET, { now: fixedNow(T0), windowSec: 5 });
  const old = lower(signRequest(SECRET, 'GET', '/', { now: fixedNow(T0 - 10_000), nonce: NONCE }));
  assert.equal(verifier.verify('GET', '/', old), { ok: false, reason: 'timestamp outside the allowed window' });
});

const equalCases: Array<[string, string, boolean]> = [
  ['abc', 'abc', true],
  ['', '', true],
  ['abc', 'abd', false],
  ['abc', 'ab', false],
  ['ab', 'abc', false],
  ['', 'a', false],
  ['é', 'e\u0301', false],
  [hex64, hex64, true],
  [hex64, hex64.toUpperCase(), false],
];

for (const [a, b, want] of equalCases) {
  test(`safeEqual(${JSON.stringify(a.slice(0, 8))}, ${JSON.stringify(b.slice(0, 8))}) → ${want}`, () => {
    assert.is(safeEqual(a, b), want);
  });
}

test('through real HTTP: Node header casing, replay, duplicate headers on the wire', async () => {
  const verifier = createRequestVerifier(SECRET);
  const server = await startHttpServer(
    (req, res) => {
      const verdict = verifier.verify(req.method ?? '', req.url ?? '', req.headers);
      res.writeHead(verdict.ok ? 200 : 401, { 'Content-Type': 'text/plain' });
      res.end(verdict.ok ? 'ok' : verdict.reason);
    },
    { host: '127.0.0.1', port: 0 },
  );
  try {
    const headers = signRequest(SECRET, 'GET', '/?repo=site');
    const first = await fetch(`${server.url}/?repo=site`, { headers });
    assert.is(first.status, 200, await first.text());
    const replay = await fetch(`${server.url}/?repo=site`, { headers });
    assert.is(replay.status, 401);
    assert.is(await replay.text(), 'replayed nonce');
    const unsigned = await fetch(`${server.url}/?repo=site`);
    assert.is(unsigned.status, 401);
    assert.is(await unsigned.text(), 'missing signature headers');

    // Two X-Shipkit-Signature lines on the wire (one valid): must not pass.
    const h = signRequest(SECRET, 'GET', '/?repo=site');
    const raw = await rawRequest(server.url, [
      'GET /?repo=site HTTP/1.1',
      'Host: x',
      'Connection: close',
      `X-Shipkit-Timestamp: ${h['X-Shipkit-Timestamp']}`,
      `X-Shipkit-Nonce: ${h['X-Shipkit-Nonce']}`,
      `X-Shipkit-Signature: sha256=${hex64}`,
      `X-Shipkit-Signature: ${h['X-Shipkit-Signature']}`,
    ]);
    assert.match(raw, /^HTTP\/1\.1 401/);
  } finally {
    await server.close(100);
  }
});

function rawRequest(url: string, lines: string[]): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

test('loadSecret: file (first line, trimmed) wins over env; errors are ConfigErrors', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'secret');
  writeFileSync(file, '  s3cret \nsecond line\n');
  assert.is(await loadSecret({ secretFile: file, env: { SHIPKIT_SECRET: 'from-env' } }), 's3cret');
  assert.is(await loadSecret({ env: { SHIPKIT_SECRET: 'from-env' } }), 'from-env');
  assert.is(await loadSecret({ env: {} }), undefined);
  assert.is(await loadSecret({ env: { SHIPKIT_SECRET: '' } }), undefined);
  assert.is(await loadSecret({ env: { OTHER: 'x' }, envName: 'OTHER' }), 'x');
  const empty = path.join(dir, 'empty');
  writeFileSync(empty, '\n\n');
  for (const [secretFile, pattern] of [
    [empty, /secret file .*empty is empty/],
    [path.join(dir, 'missing'), /Cannot read the secret file .*missing \(ENOENT\)/],
  ] as const) {
    try {
      await loadSecret({ secretFile, env: { SHIPKIT_SECRET: 'from-env' } });
      assert.unreachable('should throw');
    } catch (error) {
      assert.instance(error, ConfigError);
      assert.match((error as Error).message, pattern);
    }
  }
});

test.run();
