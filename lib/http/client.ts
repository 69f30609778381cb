// The fetch of every request shipkit makes itself. Under Node it is a small client on node:http
// and node:https: loading Node's own fetch (undici) cost a command about 10 MB (its JavaScript and
// its WebAssembly parser) and 15–20 ms. It keeps to what shipkit's callers use of a Response
// (status, headers.get, a body read through getReader or cancelled, text, json); under Deno it is
// Deno's fetch. The whole story: docs/internals.md.
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, RequestOptions } from 'node:http';
import { builtinModule } from '../core/builtin.ts';

/** The cause's code when a body ends before its Content-Length (as undici's UND_ERR_RES_CONTENT_LENGTH_MISMATCH). */
export const SHORT_BODY = 'ERR_SHORT_BODY';
const MAX_REDIRECTS = 20;
/** What a body holds ahead of its reader before the socket is paused (pausing per chunk costs a syscall each way). */
const QUEUE_BYTES = 256 * 1024;
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
/** The statuses that redirect (with a Location). */
export const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

const CREDENTIALS = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** `headers` less the credentials (names in any case): what a redirect to another origin is sent, as fetch does. */
export function withoutCredentials<H extends Record<string, string> | undefined>(headers: H): H {
  return (
    headers &&
    (Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIALS.has(name.toLowerCase()))) as H)
  );
}

type Request = (url: URL, options: RequestOptions, answer: (res: IncomingMessage) => void) => ClientRequest;
type Http = { request: Request };

/** node:http or node:https, loaded on the first request to its scheme (a command that asks nothing loads neither). */
async function moduleFor(protocol: string): Promise<Http> {
  const id = protocol === 'https:' ? 'node:https' : 'node:http';
  return builtinModule<Http>(id) ?? ((await import(id)) as Http);
}

/** `fetch`: Node's own fetch is not loaded (above); Deno's is used as it is. */
export const leanFetch: typeof fetch = (input, init) =>
  'Deno' in globalThis ? fetch(input, init) : (nodeFetch(input, init) as unknown as Promise<Response>);

/** The response headers, as fetch's Headers reads them (names in any case; repeated values joined). */
export class LeanHeaders {
  private readonly raw: IncomingHttpHeaders;
  constructor(raw: IncomingHttpHeaders) {
    this.raw = raw;
  }
  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }
}

interface ReadResult {
  done: boolean;
  value?: Uint8Array;
}

/**
 * A response body as fetch's ReadableStream is read: one reader, read() chunk by chunk as they
 * come (up to QUEUE_BYTES held ahead of the reader, then the socket paused), cancel() hangs up.
 * A body cut short of its Content-Length fails with a cause coded SHORT_BODY; an abort, with the
 * signal's reason.
 */
export class LeanBody {
  locked = false;
  private queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private failure: unknown;
  private waiter?: { resolve: (r: ReadResult) => void; reject: (e: unknown) => void };
  private readonly res: IncomingMessage;
  private readonly signal: AbortSignal | undefined;

  constructor(res: IncomingMessage, signal: AbortSignal | undefined) {
    this.res = res;
    this.signal = signal;
    res.on('data', (chunk: Buffer) => {
      if (this.waiter) return this.settle({ done: false, value: chunk });
      this.queue.push(chunk);
      this.queued += chunk.byteLength;
      if (this.queued >= QUEUE_BYTES) res.pause();
    });
    res.on('end', () => {
      this.ended = true;
      this.settle({ done: true });
    });
    // A connection that ends before the body does: as fetch, 'terminated', the cause coded.
    res.on('error', (error) => this.fail(cutShort(res, error)));
    res.on('close', () => this.fail(cutShort(res)));
  }

  getReader() {
    if (this.locked) throw new TypeError('the body is already being read');
    this.locked = true;
    return {
      read: () => this.read(),
      cancel: () => this.cancel(),
      releaseLock: () => {
        this.locked = false;
      },
    };
  }

  cancel(): Promise<void> {
    if (!this.ended && this.failure === undefined) {
      this.ended = true;
      this.queue = [];
      this.res.destroy();
      this.settle({ done: true });
    }
    return Promise.resolve();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const { done, value } = await this.read();
      if (done) return;
      yield value!;
    }
  }

  /** The whole body, in one buffer. */
  async bytes(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Called when the request's signal aborts while the body is read. */
  abort(reason: unknown): void {
    if (this.ended || this.failure !== undefined) return;
    this.res.destroy();
    this.fail(reason, false);
  }

  private read(): Promise<ReadResult> {
    if (this.queue.length) {
      const value = this.queue.shift()!;
      this.queued -= value.byteLength;
      if (this.queued < QUEUE_BYTES && this.res.isPaused()) this.res.resume();
      return Promise.resolve({ done: false, value });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ done: true });
    if (this.waiter) return Promise.reject(new TypeError('one read at a time'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (this.res.isPaused()) this.res.resume();
    });
  }

  private settle(result: ReadResult): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(result);
  }

  private fail(error: unknown, wrap = true): void {
    if (this.failure !== undefined || this.ended) return;
    this.failure = this.signal?.aborted
      ? this.signal.reason
      : wrap
        ? new TypeError('terminated', { cause: error })
        : error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }
}

/** The socket errors (a reset) of answers whose body was being read. */
const brokeOff = new WeakMap<IncomingMessage, Error>();

/** Why a body stopped early: the connection broke (a reset), or it closed short of its Content-Length (SHORT_BODY). */
function cutShort(res: IncomingMessage, error?: Error): Error {
  const broken = brokeOff.get(res);
  if (broken) return broken;
  const declared = res.headers['content-length'];
  if (declared === undefined && error) return error;
  const cut = new Error(
    declared === undefined
      ? 'the connection closed before the body ended'
      : `the body ended before its ${declared} bytes`,
    { cause: error },
  ) as Error & { code: string };
  cut.code = declared === undefined ? 'ECONNRESET' : SHORT_BODY;
  return cut;
}

/** A response as fetch gives one, for what shipkit reads of it. */
export class LeanResponse {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly headers: LeanHeaders;
  readonly body: LeanBody | null;
  readonly url: string;
  readonly redirected: boolean;

  constructor(res: IncomingMessage, url: string, redirected: boolean, method: string, signal: AbortSignal | undefined) {
    this.url = url;
    this.redirected = redirected;
    this.status = res.statusCode ?? 0;
    this.statusText = res.statusMessage ?? '';
    this.ok = this.status >= 200 && this.status <= 299;
    this.headers = new LeanHeaders(res.headers);
    const empty = method === 'HEAD' || NULL_BODY.has(this.status);
    this.body = empty ? null : new LeanBody(res, signal);
    if (empty) res.resume();
  }

  async bytes(): Promise<Buffer> {
    return this.body ? this.body.bytes() : Buffer.alloc(0);
  }
  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8');
  }
  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}

interface Sent {
  method: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

/** What a request sends, from fetch's init: method, headers (a record, pairs or a Headers), a string or bytes body. */
function sentOf(init: RequestInit | undefined): Sent {
  const method = (init?.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = {};
  // A record or pairs, as shipkit's callers give them (a Headers object would load undici).
  const given = (init?.headers ?? {}) as Record<string, string> | Array<[string, string]>;
  for (const [name, value] of Array.isArray(given) ? given : Object.entries(given))
    headers[name.toLowerCase()] = String(value);
  const raw = init?.body;
  let body: Buffer | undefined;
  if (typeof raw === 'string') {
    body = Buffer.from(raw, 'utf8');
    headers['content-type'] ??= 'text/plain;charset=UTF-8';
  } else if (raw instanceof Uint8Array) body = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  else if (raw !== undefined && raw !== null) throw new TypeError('leanFetch sends a string or bytes as a body');
  // As fetch sends them where the caller does not (some APIs refuse a request without a User-Agent).
  headers.accept ??= '*/*';
  headers['user-agent'] ??= 'shipkit';
  if (body) headers['content-length'] = String(body.byteLength);
  else if (method === 'POST' || method === 'PUT') headers['content-length'] = '0';
  return { method, headers, body };
}

/** One request, no redirect followed: resolves with the answer's head, rejects as fetch does ('fetch failed'). */
async function once(url: URL, sent: Sent, signal: AbortSignal | undefined, again = false): Promise<IncomingMessage> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TypeError('fetch failed', { cause: new Error(`${url.protocol} URLs are not fetched`) });
  const http = await moduleFor(url.protocol);
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    let answered: IncomingMessage | undefined;
    const req = http.request(url, { method: sent.method, headers: sent.headers }, (res) => {
      signal?.removeEventListener('abort', onAbort);
      resolve((answered = res));
    });
    const onAbort = () => {
      req.destroy();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (error) => {
      // After the head: the socket's own error (a reset), which the body's read fails with.
      if (answered) return brokeOff.set(answered, error);
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) return reject(signal.reason);
      // A GET on a kept-alive socket the server closed as it went out: once more, on a new one.
      const code = (error as { code?: string }).code;
      const idempotent = sent.method === 'GET' || sent.method === 'HEAD';
      if (!again && idempotent && req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE'))
        return resolve(once(url, sent, signal, true));
      reject(new TypeError('fetch failed', { cause: error }));
    });
    req.end(sent.body);
  });
}

/**
 * fetch over node:http(s): redirects followed (up to 20; credentials not sent to another origin),
 * refused ('error') or handed back ('manual'); the body's reading ends with the signal.
 */
async function nodeFetch(input: string | URL | globalThis.Request, init?: RequestInit): Promise<LeanResponse> {
  if (typeof input !== 'string' && !(input instanceof URL))
    throw new TypeError('leanFetch takes a URL (a string or a URL), not a Request');
  const signal = init?.signal ?? undefined;
  let url = new URL(input);
  // As fetch: credentials in a URL are refused, never sent as Basic auth (node:http would).
  if (url.username || url.password) throw new TypeError(`${url.origin}: a URL with credentials is not fetched`);
  let sent = sentOf(init);
  for (let hops = 0; ; hops++) {
    const res = await once(url, sent, signal);
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined || init?.redirect === 'manual') {
      const response = new LeanResponse(res, url.href, hops > 0, sent.method, signal);
      const body = response.body;
      if (body && signal) {
        const onAbort = () => body.abort(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        res.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      return response;
    }
    res.resume();
    if (init?.redirect === 'error')
      throw new TypeError('fetch failed', {
        cause: new Error(`unexpected redirect (${res.statusCode}) to ${location}`),
      });
    if (hops >= MAX_REDIRECTS) throw new TypeError('fetch failed', { cause: new Error('redirect count exceeded') });
    const next = new URL(location, url);
    sent = redirected(sent, res.statusCode!, url, next);
    url = next;
  }
}

/** The next hop's request: a 303 (or a 301/302 after a POST) turns into a GET without a body; credentials stay home. */
function redirected(sent: Sent, status: number, from: URL, to: URL): Sent {
  const headers = to.origin === from.origin ? { ...sent.headers } : withoutCredentials(sent.headers);
  let { method, body } = sent;
  if (status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
    method = 'GET';
    body = undefined;
    for (const name of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location'])
      delete headers[name];
  }
  return { method, headers, body };
}
