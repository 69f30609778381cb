// release promote's copy of the tarball (docs/environments.md): one read of the source, each chunk
// hashed and then written, reads running ahead of the hash and writes behind it; the copy is fsynced
// and its sha256 checked against the signed record before it is renamed into place.
import { createHash } from 'node:crypto';
import { copyFile, open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../../core/errors.ts';
import { ensureDir, pathExists, syncDir, tempSibling } from '../../core/fs.ts';
import type { Destination, StepHook } from '../dest/destination.ts';
import { tarballsOf, type SourceRelease } from './promote-source.ts';

export interface CopyOptions {
  /** Bytes per read and write; 2 and 4 MiB chunks copied 2-3× slower on the bench's machine. */
  chunk?: number;
  /** Chunks in memory at once (3 at least): the one hashed, the one written, the rest being read. */
  depth?: number;
  /**
   * Bytes written between fdatasyncs that run behind the copy (0: none): the disk writes while the
   * rest is hashed, so the fsync before the rename finds little left to write.
   */
  syncEvery?: number;
  /** Bytes written before the first of those fdatasyncs (default: syncEvery). */
  firstSync?: number;
  /** Called with the bytes written so far each time a write is sent. */
  onWritten?: (bytes: number) => void;
  /** Stops the copy between two chunks (an early copy not wanted after all). */
  signal?: AbortSignal;
}

const DEFAULTS = { chunk: 1024 * 1024, depth: 4, syncEvery: 16 * 1024 * 1024 };
/** The early copy's first fdatasync: after 8 MiB, about 20 ms of this disk's writing. */
const FIRST_SYNC = 8 * 1024 * 1024;
/** What the early copy writes before the promote goes on: 24 MiB, about 25 ms of main thread here. */
const HEAD_START = 24 * 1024 * 1024;

/**
 * The tarball's copy started before the key is loaded and both sides are read under their locks
 * (about 70 ms of a promote): into a temp sibling at the target, from the one tarball at the
 * source named for the app and version. It is taken only if the checks then name the same file
 * and its sha256 is the signed record's; otherwise it is stopped and removed. Nothing is created
 * for it: a target folder that does not exist yet gets no early copy.
 */
export interface EarlyCopy {
  file: string;
  temp: string;
  done: Promise<{ sha256: string; size: number }>;
  /** Stops the copy if it still runs and removes its temp file (after a rename: nothing). */
  discard(): Promise<void>;
}

export async function startEarlyCopy(
  source: Destination,
  target: Destination,
  { app, version, platform }: { app: string; version: string; platform?: string },
): Promise<EarlyCopy | undefined> {
  if (!source.local || !target.local || !(await pathExists(target.where))) return undefined;
  const [names, there] = await Promise.all([source.list(), target.list()]);
  const found = tarballsOf(names, app, version);
  const file = platform !== undefined ? found.get(platform) : found.size === 1 ? [...found.values()][0] : undefined;
  if (!file || there.includes(file)) return undefined;
  const temp = tempSibling(path.join(target.where, file), 'upload');
  const stop = new AbortController();
  // The disk writes back only what is fsynced (the kernel would wait seconds), and the key's first
  // load holds the main thread about 25 ms (openpgp): the copy is given a head start, so that the
  // disk has a queue to work through while the main thread is busy.
  let begun = () => {};
  const begin = new Promise<void>((resolve) => (begun = resolve));
  const copy = { signal: stop.signal, firstSync: FIRST_SYNC, onWritten: (n: number) => n >= HEAD_START && begun() };
  const done = handled(copyHashing(path.join(source.where, file), temp, copy));
  await Promise.race([begin, done.catch(() => undefined)]);
  return {
    file,
    temp,
    done,
    async discard() {
      stop.abort();
      await done.catch(() => undefined);
      await rm(temp, { force: true });
    },
  };
}

/**
 * Copies the source's tarball to the target, hashing the bytes as they are copied (one read): a
 * sha256 other than the signed record's is refused before the copy is renamed into place (a folder)
 * or uploaded (a remote target). Returns its size.
 */
export async function copyTarball(
  source: Destination,
  target: Destination,
  release: SourceRelease,
  scratch: string,
  present: boolean,
  step?: StepHook,
  early?: EarlyCopy,
): Promise<number> {
  const taken = early?.file === release.file && !present && target.local ? early : undefined;
  if (early && !taken) await early.discard();
  const from = await source.localCopy(release.file, scratch);
  if (!from) throw new ValidationError(`${release.file} is not at ${source.where}. Nothing was written.`);
  const refuse = (sha256: string) =>
    new ValidationError(
      `${release.file} at ${source.where} has changed since it was signed: its sha256 is ${sha256}, the signed ` +
        `record says ${release.sha256}. Refusing to promote it (--force does not override this). Nothing was written.`,
    );
  if (present || !target.local) {
    const { sha256, size } = await hashFile(from);
    if (sha256 !== release.sha256) throw refuse(sha256);
    if (!present) await target.put(from, release.file, step);
    return size;
  }
  await ensureDir(target.where);
  const file = path.join(target.where, release.file);
  const temp = taken?.temp ?? tempSibling(file, 'upload');
  try {
    const { sha256, size } = await (taken?.done ?? copyHashing(from, temp));
    if (sha256 !== release.sha256) throw refuse(sha256);
    await step?.(`${release.file}:temp`);
    await rename(temp, file);
    await syncDir(target.where);
    await step?.(release.file);
    return size;
  } finally {
    await rm(temp, { force: true });
  }
}

/** sha256 and size of a file, read once. */
export async function hashFile(file: string, options: CopyOptions = {}): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const input = await open(file, 'r');
  let size = 0;
  try {
    for await (const chunk of readAhead(input, { ...DEFAULTS, ...options })) {
      hash.update(chunk);
      size += chunk.length;
    }
  } finally {
    await input.close();
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Copies `from` to the new file `to` (never replaced: EEXIST) and gives the sha256 and size of the
 * bytes at `to`, read once. The kernel copies (fs.copyFile: copy_file_range, or sendfile, on a
 * thread of the pool) while this thread hashes the copy as it grows: a file's length covers only
 * bytes already written, so what is hashed is what the copy holds. (Read and written here, a
 * chunk at a time, the same 210 MB took 3-4× as long.) The disk writes behind the copy
 * (fdatasync every `syncEvery` bytes), and `to` is fsynced before this returns.
 */
export async function copyHashing(
  from: string,
  to: string,
  options: CopyOptions = {},
): Promise<{ sha256: string; size: number }> {
  const { chunk, syncEvery, firstSync = syncEvery, signal, onWritten } = { ...DEFAULTS, ...options };
  const output = await open(to, 'wx+', 0o644);
  let copied = false;
  let syncing: Promise<unknown> = Promise.resolve();
  // copyFile truncates the (empty) file it opens and writes it front to back; it keeps `from`'s
  // mode, which the chmod below puts back.
  const copy = handled(copyFile(from, to).finally(() => (copied = true)));
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(chunk);
    let [size, synced] = [0, 0];
    for (;;) {
      signal?.throwIfAborted();
      const last = copied;
      const { size: there } = await output.stat();
      while (size < there) {
        const n = (await output.read(buffer, 0, Math.min(chunk, there - size), size)).bytesRead;
        if (!n) break;
        hash.update(buffer.subarray(0, n));
        size += n;
        if (syncEvery && size - synced >= (synced ? syncEvery : firstSync)) {
          synced = size;
          syncing = handled(syncing.then(() => output.datasync()));
        }
        onWritten?.(size);
      }
      if (last) break;
      if (size >= there) await Promise.race([copy.catch(() => undefined), delay(1)]);
    }
    await copy;
    await syncing;
    await output.chmod(0o644);
    await output.sync();
    return { sha256: hash.digest('hex'), size };
  } catch (error) {
    await Promise.allSettled([copy, syncing]);
    await output.close();
    await rm(to, { force: true });
    throw error;
  } finally {
    await output.close().catch(() => undefined);
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The file's bytes in order, a chunk at a time, with `depth - 1` reads under way ahead of the
 * caller. A chunk's buffer is read into again when the second chunk after it is asked for: the
 * caller is done with chunk k (hashed, its write finished) before it asks for chunk k + 2.
 */
async function* readAhead(input: FileHandle, { chunk, depth }: { chunk: number; depth: number }) {
  const buffers = Array.from({ length: Math.max(depth, 3) }, () => Buffer.allocUnsafe(chunk));
  const reads: Promise<number>[] = [];
  const start = (k: number) => (reads[k] = handled(readFull(input, buffers[k % buffers.length], k * chunk)));
  for (let k = 0; k < buffers.length - 1; k++) start(k);
  try {
    for (let k = 0; ; k++) {
      const n = await reads[k];
      if (n) yield buffers[k % buffers.length].subarray(0, n);
      if (n < chunk) return;
      start(k + buffers.length - 1);
    }
  } finally {
    await Promise.allSettled(reads);
  }
}

/** Fills `buffer` from `position` on (a read may return less than asked); less only at the end of the file. */
async function readFull(input: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let n = 0;
  for (let got; n < buffer.length; n += got) {
    got = (await input.read(buffer, n, buffer.length - n, position + n)).bytesRead;
    if (!got) break;
  }
  return n;
}

/** `promise`, its rejection marked as handled: it is awaited later, or given up when another step failed. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
