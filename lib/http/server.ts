// HTTP server helpers shared by every listener: listen address parsing, timeouts that defeat
// slow clients, a body reader that stops at a cap, and fixed short JSON answers.
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { UsageError } from '../core/errors.ts';
import { assignRequestId } from './request-id.ts';

export class HttpError extends Error {
  override name = 'HttpError';
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** `HOST:PORT`, `:PORT`, `PORT` or `[::1]:PORT`. */
export function parseListen(text: string, defaultHost = '127.0.0.1'): ListenAddress {
  // The host part, when present, must end in ":" (else "8080" parsed as host "808", port 0).
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d{1,5})$/.exec(text.trim());
  if (!m) throw new UsageError(`Invalid listen address ${JSON.stringify(text)}: use HOST:PORT, e.g. 127.0.0.1:8080.`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`Invalid port ${port} in ${JSON.stringify(text)}.`);
  return { host: m[1] ?? (m[2] || defaultHost), port };
}

export interface ServerOptions {
  host: string;
  port: number;
  /** A Unix socket to listen on instead of host and port (created mode 0600). */
  path?: string;
  /** Time allowed for the request line and headers (slowloris). */
  headersTimeoutMs?: number;
  /** Time allowed for the whole request, body included. */
  requestTimeoutMs?: number;
  /** Keep-alive idle time between requests. */
  idleTimeoutMs?: number;
  maxHeaderSize?: number;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface RunningServer {
  server: http.Server;
  url: string;
  /** Stop accepting, wait up to graceMs for open requests, then cut what is left. */
  close(graceMs?: number): Promise<void>;
}

export async function startHttpServer(handler: Handler, options: ServerOptions): Promise<RunningServer> {
  const server = http.createServer(
    {
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      keepAliveTimeout: options.idleTimeoutMs ?? 5_000,
      maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
    },
    (req, res) => {
      assignRequestId(req, res);
      Promise.resolve(handler(req, res)).catch((error) => {
        const status = error instanceof HttpError ? error.status : 500;
        if (!res.headersSent)
          sendJson(res, status, { error: error instanceof HttpError ? error.message : 'internal error' });
        else res.destroy();
      });
    },
  );
  // `Expect: 100-continue`: the handler runs at once, and `100 Continue` goes out only when it
  // starts reading the body (receiveBody), so a request refused on its headers (too large,
  // unsigned, unknown route) is answered without the client ever sending its body.
  server.on('checkContinue', (req, res) => {
    continuePending.set(req, () => res.writeContinue());
    server.emit('request', req, res);
  });
  // Node checks headersTimeout only every connectionsCheckingInterval (30 s by default).
  (server as unknown as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.min(
    1000,
    options.headersTimeoutMs ?? 1000,
  );
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    const status =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : '400 Bad Request';
    if (socket.writable && !socket.destroyed)
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if (options.path === undefined) server.listen(options.port, options.host, listening);
    else server.listen({ path: options.path, readableAll: false, writableAll: false }, listening);
  });
  const address = server.address();
  const url =
    typeof address === 'string' || address === null
      ? `unix:${options.path}`
      : `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    server,
    url,
    close: (graceMs = 5_000) => closeServer(server, graceMs),
  };
}

function closeServer(server: http.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Requests that asked `Expect: 100-continue` and have not been told to go on yet. */
const continuePending = new WeakMap<IncomingMessage, () => void>();

export interface ReadBodyOptions {
  limit: number;
  timeoutMs?: number;
  /** When given, the connection is closed right after the error answer has been sent. */
  res?: ServerResponse;
}

export interface ReceiveBodyOptions extends ReadBodyOptions {
  /** Sees every chunk as it arrives (e.g. to update an HMAC while reading). */
  onChunk?: (chunk: Buffer) => void;
  /** Past this many bytes the body goes to `spillFile` (mode 0600) instead of memory. */
  spillAt?: number;
  spillFile?: string;
}

/** A received body: in memory (`buffer`) or, past `spillAt`, in `file`. */
export interface ReceivedBody {
  size: number;
  buffer?: Buffer;
  file?: string;
}

/**
 * Receive a request body, but never more than `limit` bytes: a declared Content-Length over the
 * limit is refused before reading, and a body that grows past it is cut off there (413; with
 * `res`, the connection is closed once the answer is out). A body slower than `timeoutMs` → 408.
 * Small bodies stay in memory; with `spillAt`/`spillFile`, larger ones are written to disk so
 * memory stays flat however many large bodies arrive at once (a write that fails there, e.g. a
 * full disk, → 503). `100 Continue` is sent here, after the size check, to a client that asked.
 */
export function receiveBody(
  req: IncomingMessage,
  { limit, timeoutMs = 30_000, res, onChunk, spillAt = Infinity, spillFile }: ReceiveBodyOptions,
): Promise<ReceivedBody> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      stopReading(req, res);
      reject(new HttpError(413, `body too large: declared ${declared} bytes, the cap is ${limit}`));
      return;
    }
    continuePending.get(req)?.();
    continuePending.delete(req);
    let chunks: Buffer[] = [];
    let size = 0;
    let spill: WriteStream | undefined;
    let done = false;
    const timer = setTimeout(
      () => fail(new HttpError(408, `body timeout: not complete after ${timeoutMs} ms`)),
      timeoutMs,
    );
    function cleanup() {
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
    }
    function fail(error: Error) {
      if (done) return;
      cleanup();
      chunks = [];
      stopReading(req, res);
      if (!spill) return reject(error);
      // The part already spooled goes before the answer does.
      spill.destroy();
      rm(spillFile!, { force: true }).finally(() => reject(error));
    }
    function onData(chunk: Buffer) {
      size += chunk.length;
      if (size > limit) return fail(new HttpError(413, `body too large: passed the ${limit}-byte cap while reading`));
      onChunk?.(chunk);
      if (!spill && spillFile && size > spillAt) {
        spill = createWriteStream(spillFile, { mode: 0o600 });
        // The server's disk, not the request: a full disk is a 503 the sender retries, not a 400.
        spill.on('error', (error: NodeJS.ErrnoException) =>
          fail(new HttpError(503, `could not store the body: ${error.code ?? error.message}`)),
        );
        spill.write(Buffer.concat(chunks));
        chunks = [];
      }
      if (!spill) return void chunks.push(chunk);
      if (!spill.write(chunk)) {
        req.pause();
        spill.once('drain', () => {
          if (!done) req.resume();
        });
      }
    }
    req.on('data', onData);
    req.on('end', () => {
      if (done) return;
      if (!spill) {
        cleanup();
        // A body that came in one chunk (most deliveries) is that chunk: the HMAC saw it as it
        // arrived, and it is not copied again.
        return resolve({ size, buffer: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) });
      }
      // Settled once the file is complete: a write that fails while it is flushed still rejects.
      spill.once('finish', () => {
        if (done) return;
        cleanup();
        resolve({ size, file: spillFile });
      });
      spill.end();
    });
    req.on('error', (error) => fail(error));
    req.on('aborted', () => fail(new HttpError(400, 'request aborted')));
  });
}

/** receiveBody, always in memory. */
export async function readBody(req: IncomingMessage, options: ReadBodyOptions): Promise<Buffer> {
  return (await receiveBody(req, options)).buffer!;
}

/** Stop buffering: pause the request and close the connection once the answer is out. */
export function stopReading(req: IncomingMessage, res?: ServerResponse): void {
  req.pause();
  const destroy = () => req.socket.destroy();
  if (res) {
    res.shouldKeepAlive = false;
    res.setHeader('Connection', 'close');
    res.once('finish', () => setTimeout(destroy, 50).unref());
    res.once('close', destroy);
  }
  setTimeout(destroy, 2_000).unref();
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** The path and query of a request exactly as sent (what a signature covers). */
export function pathAndQueryOf(req: IncomingMessage): string {
  return req.url ?? '/';
}
