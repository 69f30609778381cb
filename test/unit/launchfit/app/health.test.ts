// waitUntilHealthy against a real HTTP server on loopback: healthy only after a 2xx and then
// `holdMs` of 2xx answers; a failed probe after the first 2xx, an exit, or no 2xx by the
// deadline is not, and says which.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createProber,
  probeHealth,
  waitUntilHealthy,
  type HealthWaitOptions,
} from '../../../../lib/launchfit/app/health.ts';

/** A server whose answer to each GET is decided by `status(n)` (n: the request's number, from 0). */
async function serve(status: (n: number) => number): Promise<{ url: string; close(): Promise<void> }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    res.statusCode = status(n++);
    res.end('answer\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/up`, close: () => new Promise((r) => server.close(() => r())) };
}

const never = new Promise<void>(() => {});

function options(url: string, more: Partial<HealthWaitOptions> = {}): HealthWaitOptions {
  return {
    probe: (timeoutMs) => probeHealth({ url, timeoutMs }),
    timeoutMs: 1000,
    intervalMs: 50,
    deadlineMs: 3000,
    holdMs: 600,
    exited: never,
    ...more,
  };
}

test('healthy once every probe answered 2xx for holdMs after the first one', async () => {
  const s = await serve((n) => (n < 2 ? 503 : 200));
  try {
    const t0 = Date.now();
    const wait = await waitUntilHealthy(options(s.url));
    assert.is(wait.healthy, true, JSON.stringify(wait));
    assert.ok(wait.passedAfterMs !== undefined);
    assert.ok(Date.now() - t0 >= wait.passedAfterMs! + 600, 'waited the hold after the first 2xx');
    assert.ok(wait.answers.at(-1)!.ok);
  } finally {
    await s.close();
  }
});

test('a failed probe after the first 2xx ends it at once: failed, with that answer last', async () => {
  const s = await serve((n) => (n === 0 ? 200 : 503));
  try {
    const wait = await waitUntilHealthy(options(s.url, { holdMs: 60_000 }));
    assert.is(wait.healthy, false);
    assert.is(wait.reason, 'failed');
    assert.ok(wait.passedAfterMs !== undefined);
    assert.is(wait.answers.at(-1)!.status, 503);
  } finally {
    await s.close();
  }
});

test('an exit after the first 2xx: exited, and it had passed', async () => {
  const s = await serve(() => 200);
  try {
    let exit!: () => void;
    const exited = new Promise<void>((r) => {
      exit = r;
    });
    setTimeout(() => exit(), 300);
    const wait = await waitUntilHealthy(options(s.url, { holdMs: 60_000, exited }));
    assert.is(wait.healthy, false);
    assert.is(wait.reason, 'exited');
    assert.ok(wait.passedAfterMs !== undefined);
  } finally {
    await s.close();
  }
});

test('no 2xx by the deadline: timeout, never passed', async () => {
  const s = await serve(() => 500);
  try {
    const wait = await waitUntilHealthy(options(s.url, { deadlineMs: 400 }));
    assert.is(wait.healthy, false);
    assert.is(wait.reason, 'timeout');
    assert.is(wait.passedAfterMs, undefined);
    assert.ok(wait.answers.length >= 2);
  } finally {
    await s.close();
  }
});

/**
 * A raw HTTP server that keeps connections open and counts them; `drop(n)` says whether the
 * n-th request (from 0) of a connection is dropped unanswered, the connection closed: what an app
 * closing an idle kept-alive connection just as a probe is sent looks like to the prober.
 */
async function keepAliveServer(drop: (n: number) => boolean = () => false) {
  const connections: net.Socket[] = [];
  const closed: net.Socket[] = [];
  const server = net.createServer((socket) => {
    connections.push(socket);
    socket.on('close', () => closed.push(socket));
    let n = 0;
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d;
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        if (drop(n++)) {
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/up`,
    connections,
    closed,
    close: () =>
      new Promise<void>((r) => {
        for (const c of connections) c.destroy();
        server.close(() => r());
      }),
  };
}

test('a prober sends its probes over one kept-alive connection, and close() closes it', async () => {
  const s = await keepAliveServer();
  const prober = createProber({ url: s.url });
  try {
    for (let i = 0; i < 5; i++) assert.ok((await prober.probe(2000)).ok, `probe ${i}`);
    assert.is(s.connections.length, 1, 'five probes, one connection');
    prober.close();
    for (let i = 0; i < 100 && !s.closed.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(
      s.closed.length,
      1,
      'the kept connection is closed by close(), so an app that drains need not wait for it',
    );
  } finally {
    prober.close();
    await s.close();
  }
});

test('a kept connection the app closed before answering: the probe is sent again on a new one, not counted as a failure', async () => {
  const s = await keepAliveServer((n) => n === 1);
  const prober = createProber({ url: s.url });
  try {
    assert.ok((await prober.probe(2000)).ok);
    const second = await prober.probe(2000);
    assert.ok(second.ok, JSON.stringify(second));
    assert.is(s.connections.length, 2);
  } finally {
    prober.close();
    await s.close();
  }
});

test('a new connection that is dropped is a failed probe (no second try)', async () => {
  const s = await keepAliveServer(() => true);
  const prober = createProber({ url: s.url });
  try {
    const answer = await prober.probe(2000);
    assert.is(answer.ok, false);
    assert.is(s.connections.length, 1);
  } finally {
    prober.close();
    await s.close();
  }
});

test.run();
