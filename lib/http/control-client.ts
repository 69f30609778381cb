// The client side of the control protocol (control-request.ts is the listener's side): one GET,
// one short-lived connection, a small answer. A fleet fan-out talks to hundreds of origins once
// each, so per-origin connection pools (what `fetch` builds in Node) are pure cost: under Node
// this uses node:http with no agent; under Deno, whose node:http is itself built on fetch, fetch.
import http from 'node:http';
import https from 'node:https';

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
  return isDeno ? getWithFetch(url, options) : getWithNodeHttp(url, options);
}

function getWithNodeHttp(url: string, { headers, timeoutMs, signal, maxBody = 65_536 }: ControlGetOptions): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    let settled = false;
    const finish = (error: Error | undefined, answer?: ControlAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(answer!);
    };
    const req = client.get(url, { headers: { ...headers, Connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
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

async function getWithFetch(url: string, { headers, timeoutMs, signal, maxBody = 65_536 }: ControlGetOptions): Promise<ControlAnswer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const response = await fetch(url, { headers, redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  if (!response.body) return { status: response.status, body: '' };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size >= maxBody) {
      await reader.cancel();
      break;
    }
  }
  return { status: response.status, body: Buffer.concat(chunks).subarray(0, maxBody).toString('utf8') };
}
