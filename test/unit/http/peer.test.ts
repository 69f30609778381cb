// The client's address (lib/http/peer.ts) on real servers: the socket's address unless the private
// socket's server took a worker's x-shipkit-peer header, which is then cut to 64 characters and
// removed from the headers; a public server never takes it; a Unix socket without it is `unknown`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PEER_HEADER, peerAddress, takePeerHeader } from '../../../lib/http/peer.ts';
import { tmpDir } from '../../_helpers/common.ts';

/** A server answering each request with what it made of the peer: `{ peer, header }` after `takePeerHeader` when `trusting`. */
async function serve(
  trusting: boolean,
  at?: string,
): Promise<{ ask: (headers?: Record<string, string>) => Promise<unknown>; close: () => void }> {
  const server = http.createServer((req, res) => {
    if (trusting) takePeerHeader(req);
    res.end(JSON.stringify({ peer: peerAddress(req), header: req.headers[PEER_HEADER] ?? null }));
  });
  await new Promise<void>((resolve) => (at ? server.listen(at, resolve) : server.listen(0, '127.0.0.1', resolve)));
  const where = at ? { socketPath: at } : { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
  const ask = (headers: Record<string, string> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      http
        .get({ ...where, path: '/', headers, agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(JSON.parse(body)));
        })
        .on('error', reject);
    });
  return { ask, close: () => server.close() };
}

test('a public server: the socket address, whatever header the client sends', async () => {
  const s = await serve(false);
  try {
    assert.equal(await s.ask(), { peer: '127.0.0.1', header: null });
    assert.equal(await s.ask({ [PEER_HEADER]: '203.0.113.7' }), { peer: '127.0.0.1', header: '203.0.113.7' });
  } finally {
    s.close();
  }
});

test("the private socket's server: the worker's header names the client, and is taken out of the headers", async () => {
  const s = await serve(true, path.join(tmpDir('shipkit-peer-'), 'primary.sock'));
  try {
    assert.equal(await s.ask({ [PEER_HEADER]: '203.0.113.7' }), { peer: '203.0.113.7', header: null });
    assert.equal(await s.ask({ 'X-Shipkit-Peer': '2001:db8::1' }), { peer: '2001:db8::1', header: null });
    assert.equal(await s.ask({ [PEER_HEADER]: 'x'.repeat(500) }), { peer: 'x'.repeat(64), header: null });
    // Without a header, a Unix socket has no address to give.
    assert.equal(await s.ask(), { peer: 'unknown', header: null });
  } finally {
    s.close();
  }
});

test('taking the header on a TCP server without one keeps the socket address', async () => {
  const s = await serve(true);
  try {
    assert.equal(await s.ask(), { peer: '127.0.0.1', header: null });
  } finally {
    s.close();
  }
});

test.run();
