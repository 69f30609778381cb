// One request id per HTTP request, for every listener (adnanh/webhook's request-id middleware):
// made when the request arrives, sent back as `X-Request-Id`, and put on every log line about
// it, so a client's "request 3f2a9c1e0b4d failed" can be found in the log.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const ids = new WeakMap<IncomingMessage, string>();

// 6 random bytes per id, drawn 256 ids at a time: one call into the CSPRNG per request was a few
// per cent of hook-server's CPU under a burst of deliveries.
const ID_BYTES = 6;
let pool = Buffer.alloc(0);
let used = 0;

function newRequestId(): string {
  if (used + ID_BYTES > pool.length) {
    pool = randomBytes(ID_BYTES * 256);
    used = 0;
  }
  used += ID_BYTES;
  return pool.toString('hex', used - ID_BYTES, used);
}

/** Give the request its id (once) and announce it on the response. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  let id = ids.get(req);
  if (!id) {
    id = newRequestId();
    ids.set(req, id);
  }
  if (!res.headersSent) res.setHeader('X-Request-Id', id);
  return id;
}

/** The id assignRequestId gave this request ('-' for one that did not pass through a listener). */
export function requestIdOf(req: IncomingMessage): string {
  return ids.get(req) ?? '-';
}
