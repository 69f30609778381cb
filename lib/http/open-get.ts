// One HTTP GET sent and its headers awaited, the primitive of every request with a body to stream:
// connect and total timeouts, redirects resolved for the caller (redirectTarget), and the
// TransferError every failure of a transfer is worded as. The body is the caller's (download.ts).
import { RemoteError, messageOf } from '../core/errors.ts';
import { leanFetch, REDIRECTS, SHORT_BODY, withoutCredentials } from './client.ts';

export interface Timeouts {
  /** Until the response headers arrive. */
  connectMs: number;
  /** Longest wait for the next piece of the body. */
  idleMs: number;
  /** The whole request, body included; no limit when left out. */
  totalMs?: number;
}

export type TransferFailure =
  | 'connect-timeout'
  | 'idle-timeout'
  | 'total-timeout'
  | 'connect'
  | 'broken'
  | 'short-body'
  | 'length-mismatch'
  | 'declared-too-large'
  | 'too-large'
  | 'bad-range'
  | 'too-slow'
  | 'bad-redirect';

/**
 * Why one GET failed, by `kind`, so each caller can say it in its own words. `cause` is the
 * runtime's own error when there is one; `bytes` is how much of the body had arrived (with any
 * resumed prefix), or the declared size for 'declared-too-large'.
 */
export class TransferError extends RemoteError {
  override name = 'TransferError';
  kind: TransferFailure;
  bytes: number;
  constructor(kind: TransferFailure, message: string, bytes: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.kind = kind;
    this.bytes = bytes;
  }
}

/** A body slower than `bytesPerSec` on average over any `windowMs` (counted from the headers) fails as 'too-slow'. */
export interface MinRate {
  bytesPerSec: number;
  windowMs: number;
}

export interface GetOptions {
  timeouts: Timeouts;
  fetch?: typeof globalThis.fetch;
  headers?: Record<string, string>;
  /** 'follow' (the default) follows up to MAX_REDIRECTS by hand, refusing https → http. */
  redirect?: RequestRedirect;
  minRate?: MinRate;
}

export const MAX_REDIRECTS = 5;

/**
 * Where a redirect from `from` to `location` leads. Throws a TransferError ('bad-redirect') for a
 * missing or unparsable Location, a scheme other than http/https, and a downgrade from https to
 * http (which would let anyone on the path answer instead of the server the URL named).
 */
export function redirectTarget(from: string, location: string | null, status = 302): string {
  if (!location) throw new TransferError('bad-redirect', `answered ${status} without a Location header`, 0);
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new TransferError(
      'bad-redirect',
      `answered ${status} with an invalid Location (${JSON.stringify(location.slice(0, 80))})`,
      0,
    );
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:')
    throw new TransferError('bad-redirect', `redirected to a ${next.protocol} URL; refusing it`, 0);
  if (new URL(from).protocol === 'https:' && next.protocol === 'http:') {
    throw new TransferError(
      'bad-redirect',
      `redirected from https to plain http (${next.origin}); refusing the downgrade`,
      0,
    );
  }
  next.hash = '';
  return next.href;
}

/** A GET whose headers have arrived. Call `done()` when finished with it, whatever happened. */
export interface OpenedGet {
  response: Response;
  /** The next piece of the body, `undefined` at its end. Throws a TransferError. */
  read(): Promise<Uint8Array | undefined>;
  /** Drops the rest of the body. */
  cancel(): Promise<void>;
  done(): void;
}

/** The TransferError for a timer that fired (`kind`) after `received` bytes, worded from its limit. */
function timeoutError(
  kind: TransferFailure,
  received: number,
  timeouts: Timeouts,
  minRate: MinRate | undefined,
): TransferError {
  const message =
    kind === 'connect-timeout'
      ? `no response within ${timeouts.connectMs / 1000} s`
      : kind === 'idle-timeout'
        ? `no data for ${timeouts.idleMs / 1000} s after ${received} bytes`
        : kind === 'too-slow'
          ? `slower than ${minRate!.bytesPerSec} bytes/s over ${minRate!.windowMs / 1000} s (${received} bytes so far)`
          : `no complete answer within ${timeouts.totalMs! / 1000} s`;
  return new TransferError(kind, message, received);
}

/**
 * Fetches `url`; with redirect 'follow', follows up to MAX_REDIRECTS by hand (through
 * redirectTarget), dropping credentials when the origin changes. Throws a TransferError
 * ('bad-redirect') or whatever fetch throws.
 */
async function fetchFollowingRedirects(
  fetchImpl: typeof globalThis.fetch,
  url: string,
  headers: Record<string, string> | undefined,
  redirect: RequestRedirect,
  signal: AbortSignal,
): Promise<Response> {
  let current = url;
  let sent = headers;
  for (let hops = 0; ; hops++) {
    const response = await fetchImpl(current, {
      headers: sent,
      redirect: redirect === 'follow' ? 'manual' : redirect,
      signal,
    });
    if (redirect !== 'follow' || !REDIRECTS.has(response.status)) return response;
    await response.body?.cancel().catch(() => {});
    const next = redirectTarget(current, response.headers.get('location'), response.status);
    // As fetch does when it follows: credentials go to the origin they were meant for only.
    if (new URL(next).origin !== new URL(current).origin) sent = withoutCredentials(sent);
    current = next;
    if (hops >= MAX_REDIRECTS)
      throw new TransferError('bad-redirect', `more than ${MAX_REDIRECTS} redirects (a redirect loop?)`, 0);
  }
}

/** The TransferError for a body read that failed (not by a timer) after `received` bytes. */
function readError(error: unknown, response: Response, received: number): TransferError {
  const code = codeOf(error);
  // leanFetch's code, or undici's where a caller hands in Node's own fetch.
  if (code === SHORT_BODY || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
    return new TransferError(
      'short-body',
      `the body was shorter than its Content-Length (${response.headers.get('content-length')} bytes)`,
      received,
      error,
    );
  }
  return new TransferError(
    'broken',
    `the connection broke after ${received} bytes: ${causeOf(error)}`,
    received,
    error,
  );
}

/** Sends one GET and waits for its headers, under the connect and total timeouts. Throws a TransferError. */
export async function openGet(
  url: string,
  { timeouts, fetch: fetchImpl = leanFetch, headers, redirect = 'follow', minRate }: GetOptions,
): Promise<OpenedGet> {
  const controller = new AbortController();
  let fired: TransferFailure | undefined;
  const fire = (kind: TransferFailure) => () => {
    fired ??= kind;
    controller.abort();
  };
  const total = timeouts.totalMs === undefined ? undefined : setTimeout(fire('total-timeout'), timeouts.totalMs);
  const connect = setTimeout(fire('connect-timeout'), timeouts.connectMs);
  let response: Response;
  try {
    response = await fetchFollowingRedirects(fetchImpl, url, headers, redirect, controller.signal);
  } catch (error) {
    clearTimeout(total);
    if (error instanceof TransferError) throw error;
    throw fired
      ? timeoutError(fired, 0, timeouts, minRate)
      : new TransferError('connect', `could not connect: ${causeOf(error)}`, 0, error);
  } finally {
    clearTimeout(connect);
  }
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let received = 0;
  // The rate is judged per window: a drip that keeps the idle timer happy still fails here.
  let windowStart = 0;
  const rate =
    minRate &&
    setInterval(() => {
      if (received - windowStart < minRate.bytesPerSec * (minRate.windowMs / 1000)) {
        fire('too-slow')();
      }
      windowStart = received;
    }, minRate.windowMs);
  return {
    response,
    async read() {
      if (!response.body) return undefined;
      reader ??= response.body.getReader();
      const idle = setTimeout(fire('idle-timeout'), timeouts.idleMs);
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw fired ? timeoutError(fired, received, timeouts, minRate) : readError(error, response, received);
      } finally {
        clearTimeout(idle);
      }
      if (chunk.done) return undefined;
      received += chunk.value.byteLength;
      return chunk.value;
    },
    async cancel() {
      await (reader ? reader.cancel() : response.body?.cancel())?.catch(() => {});
    },
    done() {
      clearTimeout(total);
      clearInterval(rate);
    },
  };
}

/** The code (ECONNRESET, …) of a failed request's cause. */
export function codeOf(error: unknown): string | undefined {
  return (error as { cause?: { code?: string } }).cause?.code;
}

/** A failed request's cause in words: its code and message. */
export function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.message ? `${cause.code} (${cause.message})` : cause.code;
  return cause?.message ?? messageOf(error);
}
