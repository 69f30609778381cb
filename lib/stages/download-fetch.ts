// Fetching one URL into a file over HTTP(S) for the downloads stage (lib/stages/downloads.ts): retries
// with backoff (Retry-After honoured) and redirects followed by hand (http/https only, a bounded
// number) around lib/http/download.ts, which streams the body to a temp file while it is hashed, with
// a timeout for the response headers and one for each piece of the body, and checks its length
// against Content-Length.
import { backoffMs } from '../core/retry.ts';
import { promises as fs } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { RemoteError, messageOf } from '../core/errors.ts';
import { getToFile } from '../http/download.ts';
import { redirectTarget, TransferError } from '../http/open-get.ts';
import { REDIRECTS } from '../http/client.ts';
import type { Logger } from '../core/log.ts';
import { redactUrls } from '../core/redact.ts';

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
  log: Pick<Logger, 'warn'>;
}

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
export async function fetchToFile(
  url: string,
  headers: Record<string, string>,
  temp: string,
  options: FetchOptions,
): Promise<FetchedFile> {
  const retries = options.retries ?? 3;
  const baseDelay = options.retryDelayMs ?? 500;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetchOnce(url, headers, temp, options);
    } catch (error) {
      await fs.rm(temp, { force: true });
      // Network trouble arrives as a FetchFailure (from http-get's TransferError); anything
      // else is local (the disk) and waiting will not mend it.
      const retryable = error instanceof FetchFailure && error.retryable;
      if (!retryable || attempt >= retries) {
        const tries = attempt > 0 ? ` (after ${attempt + 1} attempts)` : '';
        throw error instanceof FetchFailure
          ? failure(`${error.message}${tries}`, false, error.cause)
          : failure(`${messageOf(error)}${tries}`, false, error);
      }
      const wait =
        (error as FetchFailure).retryAfterMs ?? backoffMs(attempt + 1, { baseMs: baseDelay, jitter: [0.75, 1.25] });
      options.log.warn(
        `${redactUrls(url)}: ${redactUrls(messageOf(error))}; retrying in ${(wait / 1000).toFixed(1)} s`,
      );
      await sleep(wait);
    }
  }
}

async function fetchOnce(
  url: string,
  conditional: Record<string, string>,
  temp: string,
  options: FetchOptions,
): Promise<FetchedFile> {
  const timeouts = { connectMs: options.connectTimeoutMs ?? 30_000, idleMs: options.idleTimeoutMs ?? 30_000 };
  const maxRedirects = options.maxRedirects ?? 5;
  let current = url;
  for (let redirects = 0; ; redirects++) {
    let got: Awaited<ReturnType<typeof getToFile>>;
    try {
      got = await getToFile(current, temp, {
        timeouts,
        fetch: options.fetch,
        redirect: 'manual',
        // identity: Content-Length must describe the bytes we store.
        headers: { 'accept-encoding': 'identity', 'user-agent': 'shipkit-downloads', ...conditional },
        accept: acceptDownload,
        exclusive: true,
        // Large files are flushed before the rename. For small ones the fsync costs more than
        // the download (a 10,000-file manifest); a file a power cut leaves short or empty does
        // not match the record's size and is fetched again on the next run.
        syncFromBytes: 1024 * 1024,
      });
    } catch (error) {
      if (error instanceof TransferError) throw failure(error.message, true, error.cause);
      throw error;
    }
    const { response, saved } = got;
    if (saved) {
      const etag = response.headers.get('etag') ?? undefined;
      const lastModified = response.headers.get('last-modified') ?? undefined;
      return { notModified: false, size: saved.size, sha256: saved.sha256, etag, lastModified };
    }
    const status = response.status;
    if (status === 304) return { notModified: true, size: 0, sha256: '' };
    const location = response.headers.get('location');
    if (!location) throw failure(`HTTP ${status} redirect without a Location header`, false);
    let nextUrl: URL;
    try {
      nextUrl = new URL(location, current);
    } catch {
      throw failure(`HTTP ${status} redirect to an invalid Location (${JSON.stringify(location.slice(0, 80))})`, false);
    }
    if (nextUrl.protocol !== 'http:' && nextUrl.protocol !== 'https:')
      throw failure(`refusing a redirect to a ${nextUrl.protocol} URL`, false);
    if (redirects >= maxRedirects)
      throw failure(`too many redirects (more than ${maxRedirects}; is it a redirect loop?)`, false);
    // The shared redirect rule (lib/http/download.ts) also refuses an https → http downgrade.
    try {
      current = redirectTarget(current, location, status);
    } catch (error) {
      throw failure(messageOf(error), false);
    }
  }
}

/** Redirects and 304 stop before the body; other answers outside 2xx fail (429 and 5xx retryably). */
function acceptDownload(response: Response): boolean {
  const status = response.status;
  if (REDIRECTS.has(status) || status === 304) return false;
  if (status < 200 || status > 299) {
    const error = failure(`HTTP ${status} ${response.statusText}`.trim(), status >= 500 || status === 429);
    const after = Number(response.headers.get('retry-after'));
    if (Number.isFinite(after) && after > 0) error.retryAfterMs = Math.min(after, 30) * 1000;
    throw error;
  }
  return true;
}
