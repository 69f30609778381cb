// One HTTP GET streamed into a file, the primitive of every streamed download: connect, idle and
// total timeouts; the body hashed while written; a byte cap; Content-Length checked; optional Range
// resume. Retries and redirects are the callers'.
// The whole story: docs/internals.md.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { RemoteError, messageOf } from '../core/errors.ts';
import { gcNudger } from '../core/v8-flags.ts';
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

export interface GetToFileOptions extends GetOptions {
  /**
   * Looks at the response before any of its body is read: true streams the body into the file,
   * false stops there (the body is dropped, the file is not touched). May throw.
   */
  accept?: (response: Response) => boolean | Promise<boolean>;
  /**
   * The file already holds `from` bytes of an earlier try: ask for the rest with Range +
   * If-Range, and on a 206 check Content-Range and append. Any other answer rewrites the file.
   */
  resume?: { from: number; ifRange: string };
  /** Refuse a body (with any resumed prefix) longer than this: by Content-Length, then while reading. */
  maxBytes?: number;
  /** Create the file with 'wx' (fail if it exists) instead of truncating it. */
  exclusive?: boolean;
  /** fsync files of at least this many bytes before returning; never when left out. */
  syncFromBytes?: number;
  /** Told the file's size after each batch is written (about every MiB). */
  onProgress?: (bytes: number) => void;
}

export interface SavedBody {
  /** The file's size, resumed prefix included. */
  size: number;
  /** Of the whole file. */
  sha256: string;
  resumedFrom: number;
}

// Chunks are small (16-64 KiB); writing them in batches of about 1 MiB keeps the disk writes
// few without letting memory grow.
const WRITE_BATCH_BYTES = 1 << 20;

/**
 * One GET of `url` streamed into `file`, hashed on the way. `saved` is undefined when `accept`
 * turned the body down. Throws a TransferError for timeouts, broken connections, a body longer
 * than `maxBytes` or different from its Content-Length; the file is closed but left for the
 * caller to remove or resume.
 */
export async function getToFile(
  url: string,
  file: string,
  options: GetToFileOptions,
): Promise<{ response: Response; saved?: SavedBody }> {
  const resume = options.resume && options.resume.from > 0 ? options.resume : undefined;
  const headers = resume
    ? { ...options.headers, range: `bytes=${resume.from}-`, 'if-range': resume.ifRange }
    : options.headers;
  const get = await openGet(url, { ...options, headers });
  const { response } = get;
  try {
    const offset = resumedFrom(response, resume);
    if (options.accept && !(await options.accept(response))) {
      await get.cancel();
      return { response };
    }
    const declared = checkDeclaredLength(response, offset, options.maxBytes);
    const hash = createHash('sha256');
    if (offset > 0) for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    const size = await writeBody(get, file, offset, hash, options);
    if (declared !== undefined && Number(declared) !== size - offset) {
      throw new TransferError(
        'length-mismatch',
        `the body had ${size - offset} bytes but Content-Length said ${declared}`,
        size,
      );
    }
    return { response, saved: { size, sha256: hash.digest('hex'), resumedFrom: offset } };
  } catch (error) {
    await get.cancel();
    throw error;
  } finally {
    get.done();
  }
}

/** Where the body starts in the file: after the prefix a 206 to our Range request resumes, else at 0. */
function resumedFrom(response: Response, resume: GetToFileOptions['resume']): number {
  if (!resume || response.status !== 206) return 0;
  const range = response.headers.get('content-range') ?? '';
  if (!range.startsWith(`bytes ${resume.from}-`))
    throw new TransferError('bad-range', `answered a Range request with the wrong range (${range})`, 0);
  return resume.from;
}

/**
 * The Content-Length the body is to be held to (none when absent or content-encoded), once the
 * total it declares (with the resumed prefix) is checked against `maxBytes`.
 */
function checkDeclaredLength(response: Response, offset: number, maxBytes: number | undefined): string | undefined {
  const declared = response.headers.get('content-length');
  const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const declaredTotal = offset + Number(declared ?? NaN);
  if (maxBytes !== undefined && declaredTotal > maxBytes) {
    throw new TransferError(
      'declared-too-large',
      `the body is ${declaredTotal} bytes, more than the ${maxBytes} allowed`,
      declaredTotal,
    );
  }
  return declared !== null && !encoded ? declared : undefined;
}

/** The body written to `file` (appended after `offset` bytes, else from scratch) and synced if large; returns the file's size. */
async function writeBody(
  get: OpenedGet,
  file: string,
  offset: number,
  hash: Hash,
  options: GetToFileOptions,
): Promise<number> {
  const handle = await fs.open(file, offset > 0 ? 'a' : options.exclusive ? 'wx' : 'w');
  let size: number;
  try {
    size = await pumpBody(get, handle, offset, hash, options);
    if (options.syncFromBytes !== undefined && size >= options.syncFromBytes) await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
  await handle.close();
  return size;
}

/** The body read to its end, capped at maxBytes, hashed, and written in batches; returns the file's size. */
async function pumpBody(
  get: OpenedGet,
  handle: FileHandle,
  offset: number,
  hash: Hash,
  { maxBytes, onProgress }: GetToFileOptions,
): Promise<number> {
  // One buffer per download, filled and written again and again: no new buffer per batch
  // for the collector to find late (docs/internals.md).
  const batch = Buffer.allocUnsafeSlow(WRITE_BATCH_BYTES);
  let batched = 0;
  const flush = async () => {
    for (let at = 0; at < batched;) at += (await handle.write(batch, at, batched - at)).bytesWritten;
    batched = 0;
  };
  const nudge = gcNudger();
  let size = offset;
  for (;;) {
    const chunk = await get.read();
    if (!chunk) break;
    size += chunk.byteLength;
    nudge(chunk.byteLength);
    if (maxBytes !== undefined && size > maxBytes)
      throw new TransferError('too-large', `the body is more than the ${maxBytes} bytes allowed`, size);
    hash.update(chunk);
    for (let at = 0; at < chunk.byteLength;) {
      const n = Math.min(chunk.byteLength - at, WRITE_BATCH_BYTES - batched);
      batch.set(chunk.subarray(at, at + n), batched);
      batched += n;
      at += n;
      if (batched === WRITE_BATCH_BYTES) {
        await flush();
        onProgress?.(size - (chunk.byteLength - at));
      }
    }
  }
  await flush();
  return size;
}

function codeOf(error: unknown): string | undefined {
  return (error as { cause?: { code?: string } }).cause?.code;
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.message ? `${cause.code} (${cause.message})` : cause.code;
  return cause?.message ?? messageOf(error);
}
