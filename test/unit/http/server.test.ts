// HTTP helpers (lib/http/server.ts) against real sockets on 127.0.0.1: the body cap (declared and
// chunked), body/header timeouts with slow clients, header overflow, errors, parseListen.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../../lib/core/errors.ts';
import {
  HttpError,
  parseListen,
  pathAndQueryOf,
  readBody,
  receiveBody,
  sendJson,
  startHttpServer,
  type Handler,
  type RunningServer,
} from '../../../lib/http/server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LIMIT = 64 * 1024;

// ---- parseListen ----------------------------------------------------------------------------

const listens: Array<[string, string | undefined, { host: string; port: number }]> = [
  ['8080', undefined, { host: '127.0.0.1', port: 8080 }],
  [':8080', undefined, { host: '127.0.0.1', port: 8080 }],
  ['8080', '0.0.0.0', { host: '0.0.0.0', port: 8080 }],
  [':9000', '0.0.0.0', { host: '0.0.0.0', port: 9000 }],
  ['127.0.0.1:9000', undefined, { host: '127.0.0.1', port: 9000 }],
  ['0.0.0.0:0', undefined, { host: '0.0.0.0', port: 0 }],
  ['localhost:65535', undefined, { host: 'localhost', port: 65535 }],
  ['[::1]:8080', undefined, { host: '::1', port: 8080 }],
  ['[::]:80', undefined, { host: '::', port: 80 }],
  ['  example.org:443 ', undefined, { host: 'example.org', port: 443 }],
];

for (const [text, defaultHost, want] of listens) {
  test(`parseListen ${JSON.stringify(text)}${defaultHost ? ` (default ${defaultHost})` : ''}`, () => {
    assert.equal(parseListen(text, defaultHost), want);
  });
}

const badListens: Array<[string, RegExp]> = [
  ['', /Invalid listen address/],
  ['host', /Invalid listen address/],
  ['host:', /Invalid listen address/],
  ['1.2.3.4', /Invalid listen address/],
  ['host:80x', /Invalid listen address/],
  ['host:-1', /Invalid listen address/],
  ['a:b:80', /Invalid listen address/],
  ['::1:80', /Invalid listen address/],
  ['[::1]8080', /Invalid listen address/],
  ['host:123456', /Invalid listen address/],
  ['host:65536', /Invalid port 65536/],
  ['99999', /Invalid port 99999/],
  ['http://host:80', /Invalid listen address/],
];

for (const [text, pattern] of badListens) {
  test(`parseListen refuses ${JSON.stringify(text)}`, () => {
    assert.throws(
      () => parseListen(text),
      (e: unknown) => e instanceof UsageError && pattern.test(e.message),
    );
  });
}

// ---- a raw client, so a test controls every byte and sees exactly what the server sends -----

interface Raw {
  socket: net.Socket;
  data: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
}

function rawClient(url: string): Promise<Raw> {
  const port = Number(new URL(url).port);
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let closed = false;
    socket.setEncoding('latin1');
    socket.on('data', (d) => (data += d));
    socket.on('error', () => {});
    const closedP = new Promise<void>((r) =>
      socket.on('close', () => {
        closed = true;
        r();
      }),
    );
    socket.once('connect', () => resolve({ socket, data: () => data, closed: closedP, isClosed: () => closed }));
    socket.once('error', reject);
  });
}

async function until(probe: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!probe()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - started;
}

async function withServer(
  handler: Handler,
  options: Partial<Parameters<typeof startHttpServer>[1]>,
  fn: (server: RunningServer) => Promise<void>,
) {
  const server = await startHttpServer(handler, { host: '127.0.0.1', port: 0, ...options });
  try {
    await fn(server);
  } finally {
    await server.close(200);
  }
}

/** A server whose handler reads the body with readBody and echoes its size; records what happened. */
function bodyServer(options: { limit?: number; timeoutMs?: number; passRes?: boolean } = {}) {
  const seen: Array<{ error?: string; status?: number; bytesReadAtError?: number; socket: net.Socket }> = [];
  const handler: Handler = async (req: IncomingMessage, res) => {
    const entry: (typeof seen)[number] = { socket: req.socket };
    seen.push(entry);
    try {
      const body = await readBody(req, {
        limit: options.limit ?? LIMIT,
        timeoutMs: options.timeoutMs ?? 10_000,
        res: options.passRes === false ? undefined : res,
      });
      sendJson(res, 200, { size: body.length, sha: body.subarray(0, 16).toString('latin1') });
    } catch (error) {
      entry.error = (error as Error).message;
      entry.status = (error as HttpError).status;
      entry.bytesReadAtError = req.socket.bytesRead;
      throw error;
    }
  };
  return { handler, seen };
}

// ---- readBody ------------------------------------------------------------------------------

test('readBody: bodies up to the limit are read whole (Content-Length and chunked)', async () => {
  const { handler } = bodyServer();
  await withServer(handler, {}, async (server) => {
    for (const size of [0, 1, LIMIT - 1, LIMIT]) {
      const response = await fetch(server.url, { method: 'POST', body: Buffer.alloc(size, 'a') });
      assert.is(response.status, 200, `size ${size}`);
      assert.is((await response.json()).size, size);
    }
    const chunked = await fetch(server.url, {
      method: 'POST',
      duplex: 'half',
      body: new ReadableStream({
        start(c) {
          c.enqueue(new Uint8Array(1000));
          c.enqueue(new Uint8Array(LIMIT - 1000));
          c.close();
        },
      }),
    } as RequestInit);
    assert.is(chunked.status, 200);
    assert.is((await chunked.json()).size, LIMIT);
  });
});

for (const passRes of [true, false]) {
  test(`readBody: a declared Content-Length over the limit gets 413 before any body is sent (res ${passRes ? 'given' : 'not given'})`, async () => {
    const { handler, seen } = bodyServer({ passRes });
    await withServer(handler, {}, async (server) => {
      const client = await rawClient(server.url);
      client.socket.write(
        `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`,
      );
      await until(() => /\r\n\r\n/.test(client.data()), 5_000, 'the 413 answer');
      assert.match(client.data(), /^HTTP\/1\.1 413 /);
      assert.match(client.data(), /body too large/);
      assert.is(seen[0].status, 413);
      // Then the connection is closed (no keep-alive with 100 MB still to come).
      const ms = await until(client.isClosed, 8_000, 'the connection to close');
      assert.ok(ms < 8_000);
      if (passRes) assert.match(client.data(), /[Cc]onnection: close/);
    });
  });
}

test('receiveBody: onChunk sees every byte; past spillAt the body is on disk (0600), not in memory; a refused body leaves no file', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-spill-'));
  const results: Array<{ size: number; inMemory: boolean; file?: string; seen: number; hash: string }> = [];
  let n = 0;
  const handler: Handler = async (req, res) => {
    let seen = 0;
    const hash = createHash('sha256');
    const spillFile = path.join(dir, `body-${n++}`);
    const got = await receiveBody(req, {
      limit: LIMIT,
      res,
      spillAt: 1024,
      spillFile,
      onChunk: (c) => {
        seen += c.length;
        hash.update(c);
      },
    });
    results.push({ size: got.size, inMemory: Boolean(got.buffer), file: got.file, seen, hash: hash.digest('hex') });
    sendJson(res, 200, { ok: true });
  };
  try {
    await withServer(handler, {}, async (server) => {
      const small = Buffer.alloc(500, 'x');
      const large = Buffer.alloc(LIMIT, 'y');
      assert.is((await fetch(server.url, { method: 'POST', body: small })).status, 200);
      assert.is((await fetch(server.url, { method: 'POST', body: large })).status, 200);
      assert.is(
        (await fetch(server.url, { method: 'POST', body: Buffer.alloc(LIMIT + 1) }).catch(() => ({ status: 413 })))
          .status,
        413,
      );
      assert.equal(
        results.map((r) => [r.size, r.inMemory, r.seen]),
        [
          [500, true, 500],
          [LIMIT, false, LIMIT],
        ],
      );
      assert.is(results[1].hash, createHash('sha256').update(large).digest('hex'));
      assert.ok(readFileSync(results[1].file!).equals(large), 'the spilled file holds the body');
      assert.is(statSync(results[1].file!).mode & 0o777, 0o600);
      assert.equal(readdirSync(dir).sort(), ['body-1'], 'nothing left by the small or the refused body');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readBody: a chunked body growing past the limit gets 413, the connection closes, the rest is never read', async () => {
  const { handler, seen } = bodyServer({ limit: LIMIT });
  await withServer(handler, {}, async (server) => {
    const client = await rawClient(server.url);
    client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(16 * 1024, 'z');
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    let sent = 0;
    const TOTAL = 64 * 1024 * 1024;
    // Keep sending (respecting back-pressure) until the server closes on us or we sent 64 MB.
    while (sent < TOTAL && !client.isClosed() && !client.socket.destroyed) {
      const ok = client.socket.write(frame);
      sent += chunk.length;
      if (!ok) await Promise.race([new Promise((r) => client.socket.once('drain', r)), client.closed, sleep(2_000)]);
      if (client.data().includes('413')) break;
    }
    await until(() => client.data().includes('\r\n\r\n'), 5_000, 'the 413 answer').catch(() => {});
    await until(client.isClosed, 8_000, 'the connection to close');
    assert.match(client.data(), /^HTTP\/1\.1 413 /, `answer: ${JSON.stringify(client.data().slice(0, 100))}`);
    assert.is(seen.length, 1);
    assert.is(seen[0].status, 413);
    // Read up to the limit plus what was in flight; not the tens of MB the client was sending.
    assert.ok(seen[0].bytesReadAtError! < LIMIT + 512 * 1024, `read ${seen[0].bytesReadAtError} bytes before refusing`);
    assert.ok(
      seen[0].socket.bytesRead < 8 * 1024 * 1024,
      `server read ${seen[0].socket.bytesRead} bytes in all (client sent ${sent})`,
    );
    assert.ok(sent < TOTAL, 'the client was stopped before sending everything');
  });
});

test('readBody: memory held stays bounded while a large body is refused', async () => {
  // 20 clients each start a 10 MB chunked upload against a 64 KB cap.
  const { handler, seen } = bodyServer({ limit: LIMIT });
  await withServer(handler, {}, async (server) => {
    global.gc?.();
    const before = process.memoryUsage().rss;
    const clients = await Promise.all(Array.from({ length: 20 }, () => rawClient(server.url)));
    const block = Buffer.alloc(256 * 1024, 'm');
    await Promise.all(
      clients.map(async (client) => {
        client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (let i = 0; i < 40 && !client.isClosed(); i++) {
          if (
            !client.socket.write(`${block.length.toString(16)}\r\n`) ||
            !client.socket.write(block) ||
            !client.socket.write('\r\n')
          ) {
            await Promise.race([new Promise((r) => client.socket.once('drain', r)), client.closed, sleep(1_000)]);
          }
        }
        await until(client.isClosed, 10_000, 'the connection to close');
      }),
    );
    const grown = process.memoryUsage().rss - before;
    assert.is(seen.length, 20);
    assert.ok(seen.every((s) => s.status === 413));
    const totalRead = seen.reduce((sum, s) => sum + s.socket.bytesRead, 0);
    assert.ok(totalRead < 20 * 3 * 1024 * 1024, `server read ${totalRead} bytes for 200 MB offered`);
    // Both processes share this heap: generous, but far below the 200 MB offered.
    assert.ok(grown < 120 * 1024 * 1024, `rss grew by ${Math.round(grown / 1e6)} MB`);
  });
});

test('readBody: a body slower than timeoutMs gets 408 and the connection closes', async () => {
  const { handler, seen } = bodyServer({ timeoutMs: 500 });
  await withServer(handler, {}, async (server) => {
    const client = await rawClient(server.url);
    client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    const ms = await until(() => client.data().includes('\r\n\r\n'), 10_000, 'the 408 answer');
    assert.match(client.data(), /^HTTP\/1\.1 408 /);
    assert.match(client.data(), /body timeout/);
    assert.ok(ms >= 300, `answered after ${ms} ms, before the timeout`);
    assert.is(seen[0].status, 408);
    await until(client.isClosed, 8_000, 'the connection to close');
  });
});

test('readBody: a client that aborts mid-body rejects the read (no hang)', async () => {
  const { handler, seen } = bodyServer({ timeoutMs: 20_000 });
  await withServer(handler, {}, async (server) => {
    const client = await rawClient(server.url);
    client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc');
    await until(() => seen.length === 1, 5_000, 'the request');
    client.socket.destroy();
    await until(() => seen[0].error !== undefined, 5_000, 'readBody to reject');
  });
});

// ---- header limits and timeouts ----------------------------------------------------------------

test('headers over maxHeaderSize → 431 and the connection closes', async () => {
  let handled = 0;
  await withServer(
    (_req, res) => {
      handled++;
      sendJson(res, 200, {});
    },
    { maxHeaderSize: 8 * 1024 },
    async (server) => {
      const client = await rawClient(server.url);
      client.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(12 * 1024)}\r\n\r\n`);
      await until(client.isClosed, 5_000, 'the connection to close');
      assert.match(client.data(), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      assert.is(handled, 0);
      // Just under the limit is fine.
      const ok = await fetch(server.url, { headers: { 'X-Big': 'b'.repeat(6 * 1024) } });
      assert.is(ok.status, 200);
      // A 100 KB query string is refused the same way.
      const long = await rawClient(server.url);
      long.socket.write(`GET /?repo=${'a'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await until(long.isClosed, 5_000, 'the connection to close');
      assert.match(long.data(), /^HTTP\/1\.1 (431|414|400) /);
      assert.is(handled, 1);
    },
  );
});

test('a client trickling its headers is cut off within a few seconds while others are served', async () => {
  let served = 0;
  await withServer(
    (_req, res) => {
      served++;
      sendJson(res, 200, { ok: true });
    },
    { headersTimeoutMs: 1_000, requestTimeoutMs: 30_000 },
    async (server) => {
      const slow = await rawClient(server.url);
      slow.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
      const started = Date.now();
      let lines = 0;
      const trickle = setInterval(() => {
        if (!slow.isClosed()) slow.socket.write(`X-Slow-${lines++}: y\r\n`);
      }, 150);
      try {
        // Meanwhile other clients are answered promptly.
        while (!slow.isClosed() && Date.now() - started < 12_000) {
          const response = await fetch(server.url, { signal: AbortSignal.timeout(5_000) });
          assert.is(response.status, 200);
          await response.arrayBuffer();
          await sleep(100);
        }
      } finally {
        clearInterval(trickle);
      }
      const ms = Date.now() - started;
      assert.ok(slow.isClosed(), 'the trickling client was never cut off');
      assert.ok(ms < 8_000, `cut off after ${ms} ms (headersTimeout 1 s)`);
      assert.ok(served >= 1, `others were served meanwhile: ${served}`);
      assert.ok(lines >= 3, 'the slow client really was sending');
      assert.match(slow.data(), /^(HTTP\/1\.1 408 |$)/, `slow client got ${JSON.stringify(slow.data().slice(0, 40))}`);
    },
  );
});

test('a connection that sends nothing at all is closed too', async () => {
  await withServer(
    (_req, res) => sendJson(res, 200, {}),
    { headersTimeoutMs: 1_000 },
    async (server) => {
      const idle = await rawClient(server.url);
      const ms = await until(idle.isClosed, 10_000, 'the silent connection to close');
      assert.ok(ms < 10_000);
    },
  );
});

test('malformed request line → 400', async () => {
  await withServer(
    (_req, res) => sendJson(res, 200, {}),
    {},
    async (server) => {
      const client = await rawClient(server.url);
      client.socket.write('HELLO THERE\r\n\r\n');
      await until(client.isClosed, 5_000, 'close');
      assert.match(client.data(), /^HTTP\/1\.1 400 Bad Request\r\n/);
    },
  );
});

// ---- handler errors, sendJson, close ----------------------------------------------------------

test('handler errors: HttpError keeps its status and message; anything else is a bare 500', async () => {
  await withServer(
    async (req) => {
      if (req.url === '/teapot') throw new HttpError(418, 'short and stout');
      throw new Error('secret detail /etc/shadow');
    },
    {},
    async (server) => {
      const teapot = await fetch(`${server.url}/teapot`);
      assert.is(teapot.status, 418);
      assert.equal(await teapot.json(), { error: 'short and stout' });
      const boom = await fetch(`${server.url}/boom`);
      assert.is(boom.status, 500);
      const text = await boom.text();
      assert.equal(JSON.parse(text), { error: 'internal error' });
      assert.not.match(text, /secret|shadow/);
    },
  );
});

test('sendJson: JSON, length, no-store, nosniff, extra headers; pathAndQueryOf is the raw target', async () => {
  let seenPath = '';
  await withServer(
    (req, res) => {
      seenPath = pathAndQueryOf(req);
      sendJson(res, 202, { repo: 'söte', state: 'queued' }, { 'X-Request-Id': 'r1' });
    },
    {},
    async (server) => {
      const response = await fetch(`${server.url}/a%2Fb/?repo=octo%2Fsite&wait=1`);
      assert.is(response.status, 202);
      assert.is(response.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.is(response.headers.get('cache-control'), 'no-store');
      assert.is(response.headers.get('x-content-type-options'), 'nosniff');
      assert.is(response.headers.get('x-request-id'), 'r1');
      const text = await response.text();
      assert.is(Number(response.headers.get('content-length')), Buffer.byteLength(text));
      assert.equal(JSON.parse(text), { repo: 'söte', state: 'queued' });
      assert.is(seenPath, '/a%2Fb/?repo=octo%2Fsite&wait=1');
    },
  );
});

test('startHttpServer: url has the real port; a taken port is an error; close() cuts a hanging request after grace', async () => {
  const server = await startHttpServer(() => new Promise(() => {}), { host: '127.0.0.1', port: 0 });
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const port = Number(new URL(server.url).port);
  assert.ok(port > 0);
  try {
    await startHttpServer(() => {}, { host: '127.0.0.1', port });
    assert.unreachable('the port is taken');
  } catch (error) {
    assert.is((error as NodeJS.ErrnoException).code, 'EADDRINUSE');
  }
  const hanging = fetch(server.url).then(
    () => 'answered',
    () => 'cut',
  );
  await sleep(200);
  const started = Date.now();
  await server.close(300);
  assert.ok(Date.now() - started < 5_000, 'close waited too long');
  assert.is(await hanging, 'cut');
});

test.run();
