// The address a request came from. A delivery worker (lib/server/delivery-worker.ts) passes the
// requests it does not serve itself to hook-server's primary process over a private Unix socket,
// naming the client in a header that only that socket's server trusts.
import type { IncomingMessage } from 'node:http';

/** Set by a delivery worker on what it passes on; a client's own is overwritten, never trusted. */
export const PEER_HEADER = 'x-shipkit-peer';

const peers = new WeakMap<IncomingMessage, string>();

/** The client's address: the one the worker named, else the socket's. */
export function peerAddress(req: IncomingMessage): string {
  return peers.get(req) ?? req.socket.remoteAddress ?? 'unknown';
}

/** For the private socket's server only: takes the worker's PEER_HEADER as the client's address. */
export function takePeerHeader(req: IncomingMessage): void {
  const named = req.headers[PEER_HEADER];
  if (typeof named === 'string') peers.set(req, named.slice(0, 64));
  delete req.headers[PEER_HEADER];
}
