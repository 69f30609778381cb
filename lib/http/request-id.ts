// One request id per HTTP request, for every listener (adnanh/webhook's request-id middleware):
// made when the request arrives, sent back as `X-Request-Id`, and put on every log line about
// it, so a client's "request 3f2a9c1e0b4d failed" can be found in the log.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const ids = new WeakMap<IncomingMessage, string>();

/** Give the request its id (once) and announce it on the response. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  let id = ids.get(req);
  if (!id) {
    id = randomBytes(6).toString('hex');
    ids.set(req, id);
  }
  if (!res.headersSent) res.setHeader('X-Request-Id', id);
  return id;
}

/** The id assignRequestId gave this request ('-' for one that did not pass through a listener). */
export function requestIdOf(req: IncomingMessage): string {
  return ids.get(req) ?? '-';
}
