// HTTP for the updater: small conditional GETs (VERSION, signatures, keys) and streamed
// downloads to disk that hash while writing, stop at a byte cap, resume with Range/If-Range,
// and give up on a slow connect, an idle body, a total deadline or a body below a minimum rate. The streaming itself is
// lib/http/download.ts; this module holds the updater's policy: the SIZE cap, the .part file and its
// ETag for resuming, conditional polls, and the updater's error classes and wording.
import { readFile, rm, rename, stat, writeFile } from 'node:fs/promises';
import { RemoteError, VerificationError } from '../../core/errors.ts';
import { getToFile } from '../../http/download.ts';
import { openGet, TransferError, type MinRate, type OpenedGet, type Timeouts } from '../../http/open-get.ts';
import { leanFetch } from '../../http/client.ts';

/** The updater always has a total deadline. */
export const DEFAULT_TIMEOUTS: Required<Timeouts> = { connectMs: 15_000, idleMs: 30_000, totalMs: 30 * 60_000 };

export type { MinRate };

export type FetchFn = typeof fetch;

/** The updater's words for a GET that failed on the way (not a refusal it decided itself). */
function remoteFailure(url: string, timeouts: Timeouts, error: unknown, minRate?: MinRate): RemoteError {
  return new RemoteError(
    `Fetching ${url} failed: ${reasonOf(error, timeouts, minRate)}. Check the update server; the next check retries.`,
    { cause: error },
  );
}

function reasonOf(error: unknown, t: Timeouts, minRate?: MinRate): string {
  if (error instanceof TransferError) {
    if (error.kind === 'connect-timeout') return `no answer within ${t.connectMs / 1000} s`;
    if (error.kind === 'idle-timeout') return `the body stalled for ${t.idleMs / 1000} s`;
    if (error.kind === 'total-timeout') return `no complete answer within ${(t.totalMs ?? 0) / 1000} s`;
    if (error.kind === 'too-slow' && minRate)
      return `the body came slower than ${minRate.bytesPerSec} bytes/s over ${minRate.windowMs / 1000} s (updates.min_rate)`;
    if (error.cause === undefined) return error.message;
    error = error.cause; // the runtime's own words
  }
  return ((error as Error)?.cause as Error)?.message ?? (error as Error)?.message ?? String(error);
}

export type SmallResult =
  | { status: 'ok'; body: Buffer; etag?: string; lastModified?: string; partial?: boolean }
  | { status: 'not-modified' }
  | { status: 'missing' };

export interface FetchSmallOptions {
  maxBytes: number;
  etag?: string;
  lastModified?: string;
  timeouts?: Timeouts;
  fetchImpl?: FetchFn;
  /** Ask for the bytes from this offset on (`Range`): `partial` says whether the server sent only them (206). */
  from?: number;
  /** With `from`: up to this offset, included; then any answer but 206 is refused. */
  to?: number;
}

/**
 * GET a small file (VERSION, a signature, a key), refusing bodies over `maxBytes` while
 * reading. With `etag` (or `lastModified`, for servers without ETags), the request is
 * conditional and a 304 costs no body. A 304 to a request that was not conditional is the
 * caller's to refuse, in its own words (it must not pass for "nothing new" where there is nothing).
 */
export async function fetchSmall(url: string, options: FetchSmallOptions): Promise<SmallResult> {
  const { maxBytes, timeouts = DEFAULT_TIMEOUTS, fetchImpl = leanFetch } = options;
  let get: OpenedGet | undefined;
  try {
    get = await openGet(url, { timeouts, fetch: fetchImpl, headers: smallHeaders(options), redirect: 'follow' });
    const res = get.response;
    const early = answerWithoutBody(url, res, options);
    if (early) {
      await get.cancel();
      if (early instanceof Error) throw early;
      return early;
    }
    return {
      status: 'ok',
      body: await readSmallBody(get, url, maxBytes),
      etag: res.headers.get('etag') ?? undefined,
      lastModified: res.headers.get('last-modified') ?? undefined,
      ...(res.status === 206 ? { partial: true } : {}),
    };
  } catch (error) {
    if (!(error instanceof TransferError) && (error instanceof VerificationError || error instanceof RemoteError))
      throw error;
    throw remoteFailure(url, timeouts, error);
  } finally {
    get?.done();
  }
}

/** fetchSmall's request headers: its Range, and the condition a poll is sent under. */
function smallHeaders({ etag, lastModified, from, to }: FetchSmallOptions): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': 'shipkit-launchfit' };
  if (from !== undefined) headers.range = `bytes=${from}-${to ?? ''}`;
  // With an ETag, If-None-Match alone: a server that also weighs If-Modified-Since (s3rver
  // does, against RFC 9110) answers 304 to a VERSION replaced within the same second.
  if (etag) headers['if-none-match'] = etag;
  else if (lastModified) headers['if-modified-since'] = lastModified;
  return headers;
}

/**
 * What fetchSmall answers from the headers alone, its body not read: not modified, missing, or
 * the error for a refused answer (a failure, a wrong range, a declared length over `maxBytes`).
 * Undefined: the body is to be read.
 */
function answerWithoutBody(
  url: string,
  res: Response,
  { maxBytes, from, to }: FetchSmallOptions,
): SmallResult | Error | undefined {
  if (res.status === 304) return { status: 'not-modified' };
  if (res.status === 404) return { status: 'missing' };
  if (!res.ok) return new RemoteError(`${url} answered ${res.status}; check the update server.`);
  if (
    res.status === 206 &&
    !res.headers.get('content-range')?.startsWith(`bytes ${from}-${to === undefined ? '' : `${to}/`}`)
  )
    return new RemoteError(`${url} answered 206 for bytes other than those from ${from}; check the update server.`);
  if (to !== undefined && res.status !== 206)
    return new RemoteError(
      `${url} answered ${res.status} to a Range request: the server does not answer Range requests`,
    );
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes)
    return new VerificationError(`${url} is ${declared} bytes, more than the ${maxBytes} allowed; refusing it.`);
  return undefined;
}

/** The body, read to its end; one over `maxBytes` is dropped and refused. */
async function readSmallBody(get: OpenedGet, url: string, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for (let value = await get.read(); value; value = await get.read()) {
    size += value.byteLength;
    if (size > maxBytes) {
      await get.cancel();
      throw new VerificationError(`${url} is more than the ${maxBytes} bytes allowed; refusing it.`);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

export interface DownloadResult {
  size: number;
  sha256: string;
  resumedFrom: number;
}

interface PartMeta {
  url: string;
  etag: string;
}

/**
 * Stream `url` into `dest` (through `dest.part`, renamed when complete), hashing as it goes.
 * Never writes more than `maxBytes`; when `expectedSize` is known a longer body is refused at
 * once. A `.part` left by an interrupted download is resumed with Range + If-Range when the
 * server's ETag still matches. Memory use does not depend on the file's size.
 */
export async function downloadToFile(
  url: string,
  dest: string,
  {
    maxBytes,
    expectedSize,
    timeouts = DEFAULT_TIMEOUTS,
    minRate,
    fetchImpl = leanFetch,
    onProgress,
  }: {
    maxBytes: number;
    expectedSize?: number;
    timeouts?: Timeouts;
    minRate?: MinRate;
    fetchImpl?: FetchFn;
    onProgress?: (bytes: number) => void;
  },
): Promise<DownloadResult> {
  const part = `${dest}.part`;
  const metaFile = `${dest}.part.json`;
  const cap = expectedSize !== undefined ? Math.min(expectedSize, maxBytes) : maxBytes;
  const bySize = expectedSize !== undefined ? ' by SIZE in VERSION' : '';
  let offset = 0;
  let meta: PartMeta | undefined;
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8')) as PartMeta;
    if (meta.url !== url || !meta.etag) meta = undefined;
    else offset = (await stat(part)).size;
    if (offset > cap) {
      offset = 0;
      meta = undefined;
    }
  } catch {
    meta = undefined;
    offset = 0;
  }
  const resume = meta && offset > 0 ? { from: offset, ifRange: meta.etag } : undefined;
  try {
    const { saved } = await getToFile(url, part, {
      timeouts,
      fetch: fetchImpl,
      headers: { 'user-agent': 'shipkit-launchfit' },
      redirect: 'follow',
      minRate,
      resume,
      maxBytes: cap,
      onProgress,
      accept: async (res) => {
        if (res.status !== 200 && !(res.status === 206 && resume)) {
          throw new RemoteError(`${url} answered ${res.status}; check that the release is on the update server.`);
        }
        const etag = res.headers.get('etag');
        if (etag && !etag.startsWith('W/')) await writeFile(metaFile, JSON.stringify({ url, etag } satisfies PartMeta));
        else await rm(metaFile, { force: true });
        return true;
      },
      // No fsync: the file is verified (SIZE, SHA256, signature) before anything uses it, so a
      // torn write after a power cut is refused and fetched again.
    });
    await rename(part, dest);
    await rm(metaFile, { force: true });
    return { size: saved!.size, sha256: saved!.sha256, resumedFrom: saved!.resumedFrom };
  } catch (error) {
    if (error instanceof TransferError && (error.kind === 'declared-too-large' || error.kind === 'too-large')) {
      await rm(part, { force: true });
      await rm(metaFile, { force: true });
      throw new VerificationError(
        error.kind === 'declared-too-large'
          ? `${url} is ${error.bytes} bytes, more than the ${cap} allowed${bySize}; refusing it.`
          : `${url} sent more than the ${cap} bytes allowed${bySize}; refusing it.`,
        { cause: error },
      );
    }
    if (error instanceof TransferError && error.kind === 'bad-range')
      throw new RemoteError(`${url} ${error.message}.`, { cause: error });
    if (!(error instanceof TransferError) && error instanceof RemoteError) throw error;
    throw remoteFailure(url, timeouts, error, minRate);
  }
}
