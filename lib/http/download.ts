// One HTTP GET streamed into a file, the primitive of every streamed download: the body hashed
// while written, a byte cap, Content-Length checked, optional Range resume (open-get.ts sends the
// request). Retries and redirects are the callers'.
// The whole story: docs/internals.md.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { gcNudger } from '../core/v8-flags.ts';
import { TransferError, openGet, type GetOptions, type OpenedGet } from './open-get.ts';

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
