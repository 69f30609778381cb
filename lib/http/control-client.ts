// The client side of the control protocol (control-request.ts is the listener's): one GET over one
// short-lived connection for a small answer, without per-origin pools or node:http's streams, since
// a fleet fan-out talks to hundreds of origins once each.
// The whole story: docs/internals.md.
import net from 'node:net';
import { Http1Response } from './http1-response.ts';
import { readAtMost } from './read-at-most.ts';
import { leanFetch } from './client.ts';

export interface ControlAnswer {
  status: number;
  /** At most `maxBody` bytes of the answer, as UTF-8. */
  body: string;
}

export interface ControlGetOptions {
  headers: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Bytes of the answer kept; the rest is not read. Default 64 KiB. */
  maxBody?: number;
}

/** Thrown when no answer came within timeoutMs (name `TimeoutError`, like AbortSignal.timeout's). */
export class ControlTimeoutError extends Error {
  override name = 'TimeoutError';
}

const isDeno = 'Deno' in globalThis;

export function controlGet(url: string, options: ControlGetOptions): Promise<ControlAnswer> {
  if (isDeno) return getWithFetch(url, options);
  if (!url.startsWith('http:')) return getWithNodeHttps(url, options);
  const target = new URL(url);
  return getOverSocket(addressOf(target, target.pathname + target.search), options);
}

/** Where a request goes, as a URL gives it: its origin's parts and the path and query sent. */
export interface ControlAddress {
  protocol: string;
  /** As URL gives it (an IPv6 address in brackets). */
  hostname: string;
  port: number;
  /** The Host header: hostname, and the port unless it is the scheme's own. */
  host: string;
  pathAndQuery: string;
}

/** The address of `url` (a URL), with `pathAndQuery` as sent. */
export function addressOf(url: URL, pathAndQuery: string): ControlAddress {
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  return { protocol: url.protocol, hostname: url.hostname, port, host: url.host, pathAndQuery };
}

/**
 * controlGet for a caller that holds the address already: a fan-out parses each target's URL once,
 * when it reads its list, not once per request. `to.pathAndQuery` is sent as it is, so it must be
 * as a URL would give it back (what the caller signs is what is sent).
 */
export function controlGetTo(to: ControlAddress, options: ControlGetOptions): Promise<ControlAnswer> {
  if (isDeno || to.protocol !== 'http:') return controlGet(`${to.protocol}//${to.host}${to.pathAndQuery}`, options);
  return getOverSocket(to, options);
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The request node:http would send for http.get(url, {headers: {...headers, Connection: 'close'}}),
 * byte for byte: a Connection header given keeps its place and says close, else it comes last.
 */
function requestHead(pathAndQuery: string, host: string, headers: Record<string, string>): string {
  let head = `GET ${pathAndQuery} HTTP/1.1\r\n`;
  let hasHost = false;
  let hasConnection = false;
  for (const name of Object.keys(headers)) {
    let value = headers[name];
    if (name === 'Connection') {
      value = 'close';
      hasConnection = true;
    }
    if (!HEADER_NAME.test(name))
      throw Object.assign(new TypeError(`Header name must be a valid HTTP token ["${name}"]`), {
        code: 'ERR_INVALID_HTTP_TOKEN',
      });
    if (BAD_HEADER_VALUE.test(value))
      throw Object.assign(new TypeError(`Invalid character in header content ["${name}"]`), {
        code: 'ERR_INVALID_CHAR',
      });
    if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
    head += `${name}: ${value}\r\n`;
  }
  if (!hasConnection) head += 'Connection: close\r\n';
  if (!hasHost) head += `Host: ${host}\r\n`;
  return `${head}\r\n`;
}

const readBuffer = Buffer.allocUnsafe(65_536);

function getOverSocket(
  target: ControlAddress,
  { headers, timeoutMs, signal, maxBody = 65_536 }: ControlGetOptions,
): Promise<ControlAnswer> {
  const abortReason = () =>
    signal!.reason instanceof Error ? signal!.reason : new DOMException('aborted', 'AbortError');
  return new Promise((resolve, reject) => {
    const head = requestHead(target.pathAndQuery, target.host, headers);
    if (signal?.aborted) return reject(abortReason());
    const answer = new Http1Response(maxBody);
    let settled = false;
    const finish = (error: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve({ status: answer.status, body: answer.body });
    };
    const onAbort = () => finish(abortReason());
    const onRead = (length: number, buffer: Uint8Array): boolean => {
      try {
        if (answer.push(buffer as Buffer, length)) finish(undefined);
      } catch (error) {
        finish(error as Error);
      }
      return true;
    };
    // Answers are read into one buffer shared by every socket (onread: no Buffer and no 'data'
    // event per read); Http1Response takes each read as one latin1 string. No noDelay: the request
    // goes in one write, which Nagle's algorithm never holds back, and the option is a syscall.
    const socket = net.connect({
      host: target.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: target.port,
      onread: { buffer: readBuffer, callback: onRead },
    });
    const timer = setTimeout(() => finish(new ControlTimeoutError(`no answer within ${timeoutMs / 1000}s`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('end', () => {
      try {
        answer.end();
        finish(undefined);
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
    socket.write(head, 'latin1');
  });
}

async function getWithNodeHttps(
  url: string,
  { headers, timeoutMs, signal, maxBody = 65_536 }: ControlGetOptions,
): Promise<ControlAnswer> {
  const https = (await import('node:https')).default;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, answer?: ControlAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(answer!);
    };
    const req = https.get(url, { headers: { ...headers, Connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () =>
        finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk.subarray(0, Math.max(0, maxBody - size)));
        size += chunk.length;
        if (size >= maxBody) {
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', (error) => finish(error));
      res.on('close', () => finish(new Error('the connection closed before the answer was complete')));
    });
    const timer = setTimeout(() => {
      finish(new ControlTimeoutError(`no answer within ${timeoutMs / 1000}s`));
      req.destroy();
    }, timeoutMs);
    const onAbort = () => {
      finish(signal!.reason instanceof Error ? signal!.reason : new DOMException('aborted', 'AbortError'));
      req.destroy();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (error) => finish(error));
  });
}

async function getWithFetch(
  url: string,
  { headers, timeoutMs, signal, maxBody = 65_536 }: ControlGetOptions,
): Promise<ControlAnswer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const response = await leanFetch(url, {
    headers,
    redirect: 'manual',
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  return { status: response.status, body: (await readAtMost(response.body, maxBody)).toString('utf8') };
}
