// HTTP for the updater: small conditional GETs (VERSION, signatures, keys) and streamed
// downloads to disk that hash while writing, stop at a byte cap, resume with Range/If-Range,
// and give up on a slow connect, an idle body or a total deadline.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { RemoteError, VerificationError } from '../errors.ts';

export interface Timeouts {
  /** Until the response headers arrive. */
  connectMs: number;
  /** Longest pause between two body chunks. */
  idleMs: number;
  /** The whole request, body included. */
  totalMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 15_000, idleMs: 30_000, totalMs: 30 * 60_000 };

export type FetchFn = typeof fetch;

interface Deadline {
  signal: AbortSignal;
  touch(): void;
  headersArrived(): void;
  reason(): string | undefined;
  done(): void;
}

/** One AbortController driven by three timers, remembering which one fired. */
function startDeadline(t: Timeouts): Deadline {
  const controller = new AbortController();
  let why: string | undefined;
  const fire = (reason: string) => () => { why ??= reason; controller.abort(new Error(reason)); };
  const total = setTimeout(fire(`no complete answer within ${t.totalMs / 1000} s`), t.totalMs);
  let phase = setTimeout(fire(`no answer within ${t.connectMs / 1000} s`), t.connectMs);
  return {
    signal: controller.signal,
    headersArrived() { clearTimeout(phase); phase = setTimeout(fire(`the body stalled for ${t.idleMs / 1000} s`), t.idleMs); },
    touch() { clearTimeout(phase); phase = setTimeout(fire(`the body stalled for ${t.idleMs / 1000} s`), t.idleMs); },
    reason: () => why,
    done() { clearTimeout(total); clearTimeout(phase); },
  };
}

function remoteFailure(url: string, deadline: Deadline, error: unknown): RemoteError {
  const reason = deadline.reason() ?? ((error as Error)?.cause as Error)?.message ?? (error as Error)?.message ?? String(error);
  return new RemoteError(`Fetching ${url} failed: ${reason}. Check the update server; the next check retries.`, { cause: error });
}

export type SmallResult =
  | { status: 'ok'; body: Buffer; etag?: string }
  | { status: 'not-modified' }
  | { status: 'missing' };

/**
 * GET a small file (VERSION, a signature, a key), refusing bodies over `maxBytes` while
 * reading. With `etag`, the request is conditional and a 304 costs no body.
 */
export async function fetchSmall(url: string, { maxBytes, etag, timeouts = DEFAULT_TIMEOUTS, fetchImpl = fetch }: { maxBytes: number; etag?: string; timeouts?: Timeouts; fetchImpl?: FetchFn }): Promise<SmallResult> {
  const deadline = startDeadline(timeouts);
  try {
    const headers: Record<string, string> = { 'user-agent': 'shipkit-launchfit' };
    if (etag) headers['if-none-match'] = etag;
    const res = await fetchImpl(url, { headers, signal: deadline.signal, redirect: 'follow' });
    deadline.headersArrived();
    if (res.status === 304) { await res.body?.cancel(); return { status: 'not-modified' }; }
    if (res.status === 404) { await res.body?.cancel(); return { status: 'missing' }; }
    if (!res.ok) { await res.body?.cancel(); throw new RemoteError(`${url} answered ${res.status}; check the update server.`); }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > maxBytes) { await res.body?.cancel(); throw new VerificationError(`${url} is ${declared} bytes, more than the ${maxBytes} allowed; refusing it.`); }
    const chunks: Buffer[] = [];
    let size = 0;
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        deadline.touch();
        size += value.byteLength;
        if (size > maxBytes) {
          await reader.cancel();
          throw new VerificationError(`${url} is more than the ${maxBytes} bytes allowed; refusing it.`);
        }
        chunks.push(Buffer.from(value));
      }
    }
    return { status: 'ok', body: Buffer.concat(chunks), etag: res.headers.get('etag') ?? undefined };
  } catch (error) {
    if (error instanceof VerificationError || error instanceof RemoteError) throw error;
    throw remoteFailure(url, deadline, error);
  } finally {
    deadline.done();
  }
}

export interface DownloadResult {
  size: number;
  sha256: string;
  resumedFrom: number;
}

interface PartMeta { url: string; etag: string }

async function hashFile(file: string, hash: ReturnType<typeof createHash>): Promise<void> {
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
}

/**
 * Stream `url` into `dest` (through `dest.part`, renamed when complete), hashing as it goes.
 * Never writes more than `maxBytes`; when `expectedSize` is known a longer body is refused at
 * once. A `.part` left by an interrupted download is resumed with Range + If-Range when the
 * server's ETag still matches. Memory use does not depend on the file's size.
 */
export async function downloadToFile(url: string, dest: string, { maxBytes, expectedSize, timeouts = DEFAULT_TIMEOUTS, fetchImpl = fetch, onProgress }: { maxBytes: number; expectedSize?: number; timeouts?: Timeouts; fetchImpl?: FetchFn; onProgress?: (bytes: number) => void }): Promise<DownloadResult> {
  const part = `${dest}.part`;
  const metaFile = `${dest}.part.json`;
  const cap = expectedSize !== undefined ? Math.min(expectedSize, maxBytes) : maxBytes;
  let offset = 0;
  let meta: PartMeta | undefined;
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8')) as PartMeta;
    if (meta.url !== url || !meta.etag) meta = undefined;
    else offset = (await stat(part)).size;
    if (offset > cap) { offset = 0; meta = undefined; }
  } catch {
    meta = undefined;
    offset = 0;
  }
  const deadline = startDeadline(timeouts);
  const hash = createHash('sha256');
  let file: Awaited<ReturnType<typeof open>> | undefined;
  try {
    const headers: Record<string, string> = { 'user-agent': 'shipkit-launchfit' };
    if (meta && offset > 0) { headers.range = `bytes=${offset}-`; headers['if-range'] = meta.etag; }
    const res = await fetchImpl(url, { headers, signal: deadline.signal, redirect: 'follow' });
    deadline.headersArrived();
    if (res.status === 206 && offset > 0) {
      const range = res.headers.get('content-range') ?? '';
      if (!range.startsWith(`bytes ${offset}-`)) { await res.body?.cancel(); throw new RemoteError(`${url} answered a Range request with the wrong range (${range}).`); }
      await hashFile(part, hash);
      file = await open(part, 'a');
    } else if (res.status === 200) {
      offset = 0;
      file = await open(part, 'w');
    } else {
      await res.body?.cancel();
      throw new RemoteError(`${url} answered ${res.status}; check that the release is on the update server.`);
    }
    const etag = res.headers.get('etag');
    if (etag && !etag.startsWith('W/')) await writeFile(metaFile, JSON.stringify({ url, etag } satisfies PartMeta));
    else await rm(metaFile, { force: true });
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (offset + declared > cap) {
      await res.body?.cancel();
      throw new VerificationError(`${url} is ${offset + declared} bytes, more than the ${cap} allowed${expectedSize !== undefined ? ' by SIZE in VERSION' : ''}; refusing it.`);
    }
    let size = offset;
    if (res.body) {
      const reader = res.body.getReader();
      // Chunks are small (16-64 KiB); writing them in batches of about 1 MiB keeps the disk
      // writes few without letting memory grow.
      let batch: Uint8Array[] = [];
      let batched = 0;
      const flush = async () => {
        if (!batched) return;
        await file!.write(batch.length === 1 ? batch[0] : Buffer.concat(batch, batched));
        batch = [];
        batched = 0;
      };
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        deadline.touch();
        size += value.byteLength;
        if (size > cap) {
          await reader.cancel();
          throw new VerificationError(`${url} sent more than the ${cap} bytes allowed${expectedSize !== undefined ? ' by SIZE in VERSION' : ''}; refusing it.`);
        }
        hash.update(value);
        batch.push(value);
        batched += value.byteLength;
        if (batched >= 1 << 20) {
          await flush();
          onProgress?.(size);
        }
      }
      await flush();
    }
    // No fsync: the file is verified (SIZE, SHA256, signature) before anything uses it, so a
    // torn write after a power cut is refused and fetched again.
    await file.close();
    file = undefined;
    await rename(part, dest);
    await rm(metaFile, { force: true });
    return { size, sha256: hash.digest('hex'), resumedFrom: offset };
  } catch (error) {
    await file?.close().catch(() => {});
    if (error instanceof VerificationError) {
      await rm(part, { force: true });
      await rm(metaFile, { force: true });
      throw error;
    }
    if (error instanceof RemoteError) throw error;
    throw remoteFailure(url, deadline, error);
  } finally {
    deadline.done();
  }
}
