// Fetching one URL into a file over HTTP(S) for the downloads stage (lib/downloads.ts): retries
// with backoff (Retry-After honoured), a timeout for the response headers and one for each
// piece of the body, redirects followed by hand (http/https only, a bounded number), the body
// streamed to a temp file while it is hashed, and its length checked against Content-Length.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { RemoteError, messageOf } from './errors.ts';
import { redactUrl } from './manifest.ts';

export interface FetchOptions {
  /** Attempts after the first, on network errors, timeouts, 429 and 5xx. */
  retries?: number;
  /** First backoff delay; it doubles on each retry (with jitter). */
  retryDelayMs?: number;
  /** Longest wait for the response headers. */
  connectTimeoutMs?: number;
  /** Longest wait for the next piece of the body. */
  idleTimeoutMs?: number;
  maxRedirects?: number;
  fetch?: typeof globalThis.fetch;
  /** Told about each retry. */
  log: { warn(msg: string, fields?: Record<string, unknown>): void };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** What one fetch left in its file. `notModified`: a conditional request was answered 304 (no file). */
export interface FetchedFile {
  notModified: boolean;
  size: number;
  sha256: string;
  etag?: string;
  lastModified?: string;
}

class FetchFailure extends RemoteError {
  retryable = false;
  retryAfterMs?: number;
}

function failure(message: string, retryable: boolean, cause?: unknown): FetchFailure {
  const error = new FetchFailure(message, cause === undefined ? undefined : { cause });
  error.retryable = retryable;
  return error;
}

/**
 * GET `url` into `temp` (created; removed again on failure), hashing it on the way. Network
 * errors, timeouts, 429 and 5xx are retried with backoff; anything else throws at once.
 */
export async function fetchToFile(url: string, headers: Record<string, string>, temp: string, options: FetchOptions): Promise<FetchedFile> {
  const retries = options.retries ?? 3;
  const baseDelay = options.retryDelayMs ?? 500;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetchOnce(url, headers, temp, options);
    } catch (error) {
      await fs.rm(temp, { force: true });
      const retryable = error instanceof FetchFailure ? error.retryable : true;
      if (!retryable || attempt >= retries) {
        const tries = attempt > 0 ? ` (after ${attempt + 1} attempts)` : '';
        throw error instanceof FetchFailure ? failure(`${error.message}${tries}`, false, error.cause) : failure(`${messageOf(error)}${tries}`, false, error);
      }
      const wait = (error as FetchFailure).retryAfterMs ?? baseDelay * 2 ** attempt * (0.75 + Math.random() / 2);
      options.log.warn(`${redactUrl(url)}: ${messageOf(error)}; retrying in ${(wait / 1000).toFixed(1)} s`);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

async function fetchOnce(url: string, conditional: Record<string, string>, temp: string, options: FetchOptions): Promise<FetchedFile> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const connectMs = options.connectTimeoutMs ?? 30_000;
  const idleMs = options.idleTimeoutMs ?? 30_000;
  const maxRedirects = options.maxRedirects ?? 5;
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const controller = new AbortController();
    let timer = setTimeout(() => controller.abort(), connectMs);
    let response: Response;
    try {
      response = await fetchImpl(current, {
        redirect: 'manual',
        signal: controller.signal,
        // identity: Content-Length must describe the bytes we store.
        headers: { 'accept-encoding': 'identity', 'user-agent': 'shipkit-downloads', ...conditional },
      });
    } catch (error) {
      clearTimeout(timer);
      if (controller.signal.aborted) throw failure(`no response within ${connectMs / 1000} s`, true);
      throw failure(`could not connect: ${causeOf(error)}`, true, error);
    }
    clearTimeout(timer);
    const status = response.status;
    if (REDIRECTS.has(status)) {
      await response.body?.cancel().catch(() => {});
      const location = response.headers.get('location');
      if (!location) throw failure(`HTTP ${status} redirect without a Location header`, false);
      const nextUrl = new URL(location, current);
      if (nextUrl.protocol !== 'http:' && nextUrl.protocol !== 'https:') throw failure(`refusing a redirect to a ${nextUrl.protocol} URL`, false);
      if (redirects >= maxRedirects) throw failure(`too many redirects (more than ${maxRedirects}; is it a redirect loop?)`, false);
      nextUrl.hash = '';
      current = nextUrl.href;
      continue;
    }
    if (status === 304) {
      await response.body?.cancel().catch(() => {});
      return { notModified: true, size: 0, sha256: '' };
    }
    if (status < 200 || status > 299) {
      await response.body?.cancel().catch(() => {});
      const error = failure(`HTTP ${status} ${response.statusText}`.trim(), status >= 500 || status === 429);
      const after = Number(response.headers.get('retry-after'));
      if (Number.isFinite(after) && after > 0) error.retryAfterMs = Math.min(after, 30) * 1000;
      throw error;
    }
    const declared = response.headers.get('content-length');
    const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity';
    const hash = createHash('sha256');
    let size = 0;
    const handle = await fs.open(temp, 'wx');
    try {
      const reader = response.body!.getReader();
      for (;;) {
        timer = setTimeout(() => controller.abort(), idleMs);
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (controller.signal.aborted) throw failure(`no data for ${idleMs / 1000} s after ${size} bytes`, true);
          if (codeOf(error) === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') throw failure(`the body was shorter than its Content-Length (${declared} bytes)`, true, error);
          throw failure(`the connection broke after ${size} bytes: ${causeOf(error)}`, true, error);
        } finally {
          clearTimeout(timer);
        }
        if (chunk.done) break;
        hash.update(chunk.value);
        size += chunk.value.length;
        await handle.write(chunk.value);
      }
      // Large files are flushed before the rename. For small ones the fsync costs more than
      // the download (a 10,000-file manifest); a file a power cut leaves short or empty does
      // not match the record's size and is fetched again on the next run.
      if (size >= 1024 * 1024) await handle.sync();
    } finally {
      await handle.close();
    }
    if (declared !== null && !encoded && Number(declared) !== size) {
      throw failure(`the body had ${size} bytes but Content-Length said ${declared}`, true);
    }
    const etag = response.headers.get('etag') ?? undefined;
    const lastModified = response.headers.get('last-modified') ?? undefined;
    return { notModified: false, size, sha256: hash.digest('hex'), etag, lastModified };
  }
}

function codeOf(error: unknown): string | undefined {
  return (error as { cause?: { code?: string } }).cause?.code;
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.message ? `${cause.code} (${cause.message})` : cause.code;
  return cause?.message ?? messageOf(error);
}
