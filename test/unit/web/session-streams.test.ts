// Streams held for a session, over real HTTP on loopback: `end` cuts that session's streams at
// once and no other's; a session found over (expired, ended elsewhere) at a check is cut within
// `checkMs`; a stream the client closed is let go.
import http, { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createSessionStreams } from '../../../lib/web/session-streams.ts';
import type { Session } from '../../../lib/web/session.ts';
import { waitFor } from '../../_helpers/common.ts';

const session = (id: string): Session => ({ id: id.padEnd(22, 'x'), issued: 1, expires: Date.now() + 60_000 });

/** A server whose every request is held for the session named in its path; the client side of each stream. */
async function world(isOver: (s: Session) => boolean, checkMs: number) {
  const streams = createSessionStreams({ isOver, checkMs });
  const server = createServer((req, res: ServerResponse) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write(': open\n\n');
    streams.hold(session(req.url!.slice(1)), res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const open = (id: string) =>
    new Promise<{ closed: () => boolean; close: () => void; ended: Promise<number> }>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/${id}` }, (res) => {
        let closed = false;
        // Resolves with when it closed.
        const ended = new Promise<number>((done) =>
          res.on('close', () => {
            closed = true;
            done(Date.now());
          }),
        );
        res.once('data', () => resolve({ closed: () => closed, close: () => req.destroy(), ended }));
      });
    });
  return { streams, open, close: () => server.close() };
}

test("end(id) cuts that session's streams at once, not another's", async () => {
  const w = await world(() => false, 60_000);
  try {
    const [a1, a2, b] = [await w.open('a'), await w.open('a'), await w.open('b')];
    assert.is(w.streams.size(), 3);
    const t0 = Date.now();
    w.streams.end(session('a').id);
    assert.ok((await a1.ended) - t0 < 500);
    await a2.ended;
    await new Promise((r) => setTimeout(r, 100));
    assert.not.ok(b.closed(), "another session's stream stays");
    assert.is(w.streams.size(), 1);
    b.close();
    await b.ended;
    await waitFor(() => w.streams.size() === 0, { what: 'the closed stream let go' });
  } finally {
    w.close();
  }
});

test('a session found over at a check is cut within checkMs; the others stay', async () => {
  const over = new Set<string>();
  const w = await world((s) => over.has(s.id), 100);
  try {
    const [a, b] = [await w.open('a'), await w.open('b')];
    const t0 = Date.now();
    over.add(session('a').id);
    assert.ok((await a.ended) - t0 < 1_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.not.ok(b.closed());
    assert.is(w.streams.size(), 1);
    b.close();
  } finally {
    w.close();
  }
});

test.run();
