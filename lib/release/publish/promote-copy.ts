// release promote's copy of the tarball (docs/environments.md): between folders on one filesystem it
// is hard-linked (it is never written again) and read once to hash it; between other folders the
// kernel copies it while the copy is hashed as it grows (one read); elsewhere it is hashed and then
// uploaded. The copy is fsynced and its sha256 checked against the signed record before it is
// renamed into place.
import { createHash } from 'node:crypto';
import { constants, createReadStream, type Stats } from 'node:fs';
import { copyFile, link, lstat, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../../core/errors.ts';
import { ensureDir, pathExists, syncDir, tempSibling } from '../../core/fs.ts';
import type { Destination, StepHook } from '../dest/destination.ts';
import { tarballsOf, type SourceRelease } from './promote-source.ts';

export interface CopyOptions {
  /** Bytes per read (and per hash update). */
  chunk?: number;
  /**
   * Bytes copied between fdatasyncs that run behind the copy (0: none): the disk writes while the
   * rest is copied, so the fsync before the rename finds little left to write.
   */
  syncEvery?: number;
  /** Bytes written before the first of those fdatasyncs (default: syncEvery). */
  firstSync?: number;
  /** Stops the hashing (an early copy not wanted after all); the copy is removed once the kernel's ends. */
  signal?: AbortSignal;
  /** Where the copy is hashed: on this thread, or a worker's (default: a worker from 32 MiB). */
  hashOn?: 'here' | 'worker';
  /** Called once the kernel's copy is under way (the hashing may not have started yet). */
  onCopying?: () => void;
  /**
   * Link `to` to `from` instead of copying, where it can (default: no): one file on one filesystem,
   * owned by this user with publish's mode 0644 (see linkable); anywhere else it is copied.
   */
  link?: boolean;
}

const DEFAULTS = { chunk: 1024 * 1024, syncEvery: 16 * 1024 * 1024 };
/** The early copy's first fdatasync: after 8 MiB, about 20 ms of this disk's writing. */
const FIRST_SYNC = 8 * 1024 * 1024;

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
  done: Promise<{ sha256: string; size: number; linked: boolean }>;
  /** Stops the copy if it still runs and removes its temp file (after a rename: nothing). */
  discard(): Promise<void>;
}

export async function startEarlyCopy(
  source: Destination,
  target: Destination,
  { app, version, platform, link = false }: { app: string; version: string; platform?: string; link?: boolean },
): Promise<EarlyCopy | undefined> {
  if (!source.local || !target.local || !(await pathExists(target.where))) return undefined;
  const [names, there] = await Promise.all([source.list(), target.list()]);
  const found = tarballsOf(names, app, version);
  const file = platform !== undefined ? found.get(platform) : found.size === 1 ? [...found.values()][0] : undefined;
  if (!file || there.includes(file)) return undefined;
  const temp = tempSibling(path.join(target.where, file), 'upload');
  const stop = new AbortController();
  // The kernel copies on a thread of the pool and a worker hashes: the key's load and the reads
  // that follow on this thread do not hold the copy up, so it needs no head start (it had one, 24
  // MiB, while this thread read and wrote every chunk). But it must have started: the key's load
  // holds this thread ~20 ms while openpgp compiles, and the copy's first steps (stat, open) would
  // wait behind it. Returned once the kernel copies, or the copy failed (the checks then say why).
  let copying = () => {};
  const underway = new Promise<void>((resolve) => (copying = resolve));
  const done = handled(
    copyHashing(path.join(source.where, file), temp, {
      signal: stop.signal,
      firstSync: FIRST_SYNC,
      onCopying: copying,
      link,
    }),
  );
  await Promise.race([underway, done.catch(() => undefined)]);
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

export interface TarballWays {
  /** The tarball is at the target already (a promote run again): it is checked, not written. */
  present: boolean;
  step?: StepHook;
  /** The copy startEarlyCopy began, taken if it is of this file. */
  early?: EarlyCopy;
  /** Link rather than copy where copyHashing can (folder to folder, one filesystem). */
  link?: boolean;
}

/**
 * Copies the source's tarball to the target, hashing the bytes as they are copied (one read): a
 * sha256 other than the signed record's is refused before the copy is renamed into place (a folder)
 * or uploaded (a remote target). Returns its size, and whether it was linked rather than copied.
 */
export async function copyTarball(
  source: Destination,
  target: Destination,
  release: SourceRelease,
  scratch: string,
  { present, step, early, link = false }: TarballWays,
): Promise<{ size: number; linked: boolean }> {
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
    return { size, linked: false };
  }
  await ensureDir(target.where);
  const file = path.join(target.where, release.file);
  const temp = taken?.temp ?? tempSibling(file, 'upload');
  try {
    const { sha256, size, linked } = await (taken?.done ?? copyHashing(from, temp, { link }));
    if (sha256 !== release.sha256) throw refuse(sha256);
    await step?.(`${release.file}:temp`);
    await rename(temp, file);
    await syncDir(target.where);
    await step?.(release.file);
    return { size, linked };
  } finally {
    await rm(temp, { force: true });
  }
}

/** sha256 and size of a file, read once (a 1 MiB stream: the upload after it is the slow part). */
export async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: DEFAULTS.chunk })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Copies `from` to the new file `to` (never replaced: EEXIST) and gives the sha256 and size of the
 * bytes at `to`, read once. The kernel copies (fs.copyFile: copy_file_range, or sendfile, on a
 * thread of the pool) while the copy is hashed as it grows: a file's length covers only bytes
 * already written, so what is hashed is what the copy holds. (Read and written here, a chunk at a
 * time, the same 210 MB took 3-4× as long.) A big file is hashed on a worker thread, so that this
 * one loads the key, reads the ledgers and signs meanwhile. The disk writes behind the copy
 * (fdatasync every `syncEvery` bytes), and `to` is fsynced before this returns.
 */
export async function copyHashing(
  from: string,
  to: string,
  options: CopyOptions = {},
): Promise<{ sha256: string; size: number; linked: boolean }> {
  const { chunk, signal, hashOn } = { ...DEFAULTS, ...options };
  const stats = await stat(from).catch(() => undefined);
  const big = (stats?.size ?? 0) >= WORKER_FROM;
  // lstat: link(2) does not follow a symlink, and a link to one would be a symlink at the target.
  const linked =
    options.link === true && linkable(await lstat(from).catch(() => undefined)) && (await linkOrNot(from, to));
  // A link's bytes are the source's, written (and fsynced) when it was published: nothing to
  // write behind. Its mode is the source's, 0644 (linkable), and stays so.
  const syncEvery = linked ? 0 : (options.syncEvery ?? DEFAULTS.syncEvery);
  const firstSync = options.firstSync ?? syncEvery;
  const output = await open(to, linked ? 'r' : 'wx+', 0o644);
  // copyFile truncates the (empty) file it opens and writes it front to back, or clones it on a
  // filesystem that shares blocks copy-on-write (btrfs, XFS); it keeps `from`'s mode, which the
  // chmod below puts back.
  const copy = linked ? Promise.resolve() : handled(copyFile(from, to, constants.COPYFILE_FICLONE));
  options.onCopying?.();
  try {
    const growing = { file: to, copy, chunk, signal, syncEvery, firstSync };
    const worker = (hashOn ?? (big ? 'worker' : 'here')) === 'worker';
    const { sha256, size } = (worker && (await hashInWorker(growing))) || (await hashHere(output, growing));
    await copy;
    if (!linked) await output.chmod(0o644);
    await output.sync();
    return { sha256, size, linked };
  } catch (error) {
    await copy.catch(() => undefined);
    await output.close();
    await rm(to, { force: true });
    throw error;
  } finally {
    await output.close().catch(() => undefined);
  }
}

/**
 * Whether a source may be linked rather than copied: a regular file (not a symlink) of this
 * user's, mode 0644 (as publish writes it). A link shares the source's owner and mode, so anything
 * else (another owner, a private mode) is copied and gets the target's own.
 */
function linkable(stats: Stats | undefined): boolean {
  const uid = process.geteuid?.();
  return !!stats && stats.isFile() && uid !== undefined && stats.uid === uid && (stats.mode & 0o7777) === 0o644;
}

/**
 * Links `to` to `from`: true once linked; false where the filesystem will not (another filesystem,
 * no hard links, too many links) and the caller copies. `to` existing is an error, as for a copy.
 */
async function linkOrNot(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (error) {
    if (NOT_LINKABLE.has((error as NodeJS.ErrnoException).code ?? '')) return false;
    throw error;
  }
}

const NOT_LINKABLE = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EACCES']);

/** Files from 32 MiB on are hashed on a worker thread (its start, ~15 ms of the other core, pays for itself). */
const WORKER_FROM = 32 * 1024 * 1024;

/** A file being copied into (`copy` settles when the copy ends), to hash as it grows. */
interface Growing {
  file: string;
  copy: Promise<unknown>;
  chunk: number;
  signal?: AbortSignal;
  /** fdatasync of the copy every this many bytes hashed (0: none), the first after `firstSync`. */
  syncEvery: number;
  firstSync: number;
}

/** Hashes the growing file on this thread: a chunk, as soon as the copy holds it. */
async function hashHere(
  output: FileHandle,
  { copy, chunk, signal, syncEvery, firstSync }: Growing,
): Promise<{ sha256: string; size: number }> {
  let copied = false;
  void copy.then(
    () => (copied = true),
    () => (copied = true),
  );
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(chunk);
  let [size, synced] = [0, 0];
  let syncing: Promise<unknown> = Promise.resolve();
  try {
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
      }
      if (last) break;
      if (size >= there) await Promise.race([copy.catch(() => undefined), delay(1)]);
    }
    await copy;
    await syncing;
  } finally {
    await syncing.catch(() => undefined);
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * The worker's code (CommonJS, evaluated): hashHere's loop with blocking reads on its own thread,
 * and the fdatasyncs behind the copy sent from there too, so that they keep the disk busy while
 * the main thread is held (openpgp loading the key holds it ~40 ms). `state[0]` is 0 while the
 * copy runs, 1 once it ended, 2 to stop.
 */
const HASHER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { file, chunk, shared, syncEvery, firstSync } = workerData;
const state = new Int32Array(shared);
const hash = createHash('sha256');
const buffer = Buffer.allocUnsafe(chunk);
const datasync = (fd) => new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
const turn = () => new Promise((resolve) => setImmediate(resolve));
const fd = fs.openSync(file, 'r+');
(async () => {
  let [size, synced, syncing] = [0, 0, Promise.resolve()];
  try {
    for (;;) {
      const copying = Atomics.load(state, 0);
      if (copying === 2) break;
      const there = fs.fstatSync(fd).size;
      while (size < there) {
        const n = fs.readSync(fd, buffer, 0, Math.min(chunk, there - size), size);
        if (!n) break;
        hash.update(buffer.subarray(0, n));
        size += n;
        if (syncEvery && size - synced >= (synced ? syncEvery : firstSync)) {
          synced = size;
          syncing = syncing.then(() => datasync(fd));
        }
        await turn(); // a finished fdatasync's callback runs, and the next one goes
      }
      if (copying === 1) break;
      if (size >= there) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await syncing;
  } finally {
    await syncing.catch(() => {});
    fs.closeSync(fd);
  }
  parentPort.postMessage({ sha256: hash.digest('hex'), size });
})().catch((error) => parentPort.postMessage({ error: String(error && error.message || error) }));
`;

/**
 * Hashes the growing file on a worker thread; undefined when no worker could start or it failed
 * (a runtime without them), and the caller hashes it itself.
 */
async function hashInWorker({
  file,
  copy,
  chunk,
  signal,
  syncEvery,
  firstSync,
}: Growing): Promise<{ sha256: string; size: number } | undefined> {
  const shared = new SharedArrayBuffer(4);
  const state = new Int32Array(shared);
  const tell = (value: number) => Atomics.store(state, 0, value);
  let worker: import('node:worker_threads').Worker;
  try {
    const { Worker } = await import('node:worker_threads');
    worker = new Worker(HASHER, { eval: true, workerData: { file, chunk, shared, syncEvery, firstSync } });
  } catch {
    return undefined;
  }
  const stop = () => tell(2);
  signal?.addEventListener('abort', stop, { once: true });
  void copy.then(
    () => tell(1),
    () => tell(2),
  );
  try {
    const result = await new Promise<{ sha256: string; size: number } | undefined>((resolve) => {
      worker.on('message', (message: { size: number; sha256: string } | { error: string }) =>
        resolve('error' in message ? undefined : message),
      );
      worker.on('error', () => resolve(undefined));
      worker.on('exit', () => resolve(undefined));
    });
    signal?.throwIfAborted();
    await copy;
    return result;
  } finally {
    signal?.removeEventListener('abort', stop);
    stop();
    await worker.terminate();
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `promise`, its rejection marked as handled: it is awaited later, or given up when another step failed. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
