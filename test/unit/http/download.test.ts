// The shared streaming GET (lib/http/download.ts) with a fetch handed in: the paths the end-to-end
// tests of its callers do not reach (a lying Content-Length, a wrong Content-Range, a stalled
// body under the total deadline) and the contract both callers rely on.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { getToFile } from '../../../lib/http/download.ts';
import { TransferError, type TransferFailure } from '../../../lib/http/open-get.ts';
import { tmpDir } from '../../_helpers/common.ts';

const quick = { connectMs: 500, idleMs: 300 };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function answering(make: (headers: Headers) => Response): typeof fetch {
  return (async (_url: string | URL | Request, init?: RequestInit) => make(new Headers(init?.headers))) as typeof fetch;
}

async function failsWith(kind: TransferFailure, run: () => Promise<unknown>): Promise<TransferError> {
  try {
    await run();
  } catch (error) {
    assert.instance(error, TransferError);
    assert.is((error as TransferError).kind, kind);
    return error as TransferError;
  }
  throw new Error(`expected a ${kind} TransferError`);
}

test('streams the body into the file and hashes it; accept=false leaves the file alone', async () => {
  const file = path.join(tmpDir(), 'f');
  const body = Buffer.from('hello, world');
  const got = await getToFile('http://x/f', file, {
    timeouts: quick,
    fetch: answering(() => new Response(body, { headers: { 'content-length': String(body.length) } })),
  });
  assert.equal(got.saved, { size: body.length, sha256: sha(body), resumedFrom: 0 });
  assert.ok(readFileSync(file).equals(body));
  const skipped = await getToFile('http://x/g', path.join(path.dirname(file), 'g'), {
    timeouts: quick,
    accept: () => false,
    fetch: answering(() => new Response(null, { status: 304 })),
  });
  assert.is(skipped.saved, undefined);
  assert.is(skipped.response.status, 304);
  assert.not.ok(existsSync(path.join(path.dirname(file), 'g')));
});

test('a body shorter than its Content-Length is refused', async () => {
  const error = await failsWith('length-mismatch', () =>
    getToFile('http://x/f', path.join(tmpDir(), 'f'), {
      timeouts: quick,
      fetch: answering(() => new Response('short', { headers: { 'content-length': '100' } })),
    }),
  );
  assert.is(error.message, 'the body had 5 bytes but Content-Length said 100');
});

test('byte cap: by Content-Length before reading, and while reading', async () => {
  await failsWith('declared-too-large', () =>
    getToFile('http://x/f', path.join(tmpDir(), 'f'), {
      timeouts: quick,
      maxBytes: 4,
      fetch: answering(() => new Response('12345', { headers: { 'content-length': '5' } })),
    }),
  );
  const error = await failsWith('too-large', () =>
    getToFile('http://x/f', path.join(tmpDir(), 'f'), {
      timeouts: quick,
      maxBytes: 4,
      fetch: answering(() => new Response('12345')),
    }),
  );
  assert.is(error.bytes, 5);
});

test('resume: Range + If-Range sent, a 206 appended and the whole file hashed; a wrong Content-Range refused', async () => {
  const file = path.join(tmpDir(), 'f');
  writeFileSync(file, 'hello, ');
  let sent: Headers | undefined;
  const got = await getToFile('http://x/f', file, {
    timeouts: quick,
    resume: { from: 7, ifRange: '"e1"' },
    fetch: answering((headers) => {
      sent = headers;
      return new Response('world', {
        status: 206,
        headers: { 'content-range': 'bytes 7-11/12', 'content-length': '5' },
      });
    }),
  });
  assert.is(sent!.get('range'), 'bytes=7-');
  assert.is(sent!.get('if-range'), '"e1"');
  assert.equal(got.saved, { size: 12, sha256: sha(Buffer.from('hello, world')), resumedFrom: 7 });
  assert.is(readFileSync(file, 'utf8'), 'hello, world');
  await failsWith('bad-range', () =>
    getToFile('http://x/f', file, {
      timeouts: quick,
      resume: { from: 12, ifRange: '"e1"' },
      fetch: answering(() => new Response('x', { status: 206, headers: { 'content-range': 'bytes 0-0/13' } })),
    }),
  );
});

test('a stalled body hits the idle timeout, and the total deadline caps a slow one', async () => {
  const stalled = (signal?: AbortSignal | null) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(4));
        signal?.addEventListener('abort', () => c.error(new Error('aborted')));
      },
    });
  const fetchStalled = (async (_url: string | URL | Request, init?: RequestInit) =>
    new Response(stalled(init?.signal))) as typeof fetch;
  const idle = await failsWith('idle-timeout', () =>
    getToFile('http://x/f', path.join(tmpDir(), 'f'), { timeouts: quick, fetch: fetchStalled }),
  );
  assert.is(idle.message, 'no data for 0.3 s after 4 bytes');
  await failsWith('total-timeout', () =>
    getToFile('http://x/f', path.join(tmpDir(), 'f'), {
      timeouts: { connectMs: 500, idleMs: 1000, totalMs: 200 },
      fetch: fetchStalled,
    }),
  );
});

test('minRate: a drip that keeps the idle timer happy fails as too-slow after its window', async () => {
  let timer: NodeJS.Timeout | undefined;
  const dripping = (signal?: AbortSignal | null) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        timer = setInterval(() => c.enqueue(new Uint8Array(1)), 20);
        signal?.addEventListener('abort', () => {
          clearInterval(timer);
          c.error(new Error('aborted'));
        });
      },
    });
  const fetchDrip = (async (_url: string | URL | Request, init?: RequestInit) =>
    new Response(dripping(init?.signal))) as typeof fetch;
  const t0 = Date.now();
  try {
    const error = await failsWith('too-slow', () =>
      getToFile('http://x/f', path.join(tmpDir(), 'f'), {
        timeouts: { connectMs: 500, idleMs: 1000 },
        minRate: { bytesPerSec: 1000, windowMs: 300 },
        fetch: fetchDrip,
      }),
    );
    assert.match(error.message, /^slower than 1000 bytes\/s over 0\.3 s \(\d+ bytes so far\)$/);
    assert.ok(Date.now() - t0 < 1000, 'failed at the end of the first window');
  } finally {
    clearInterval(timer);
  }
});

test.run();
