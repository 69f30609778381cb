// Where releases are published (`--to`): a folder, s3://bucket/prefix or user@host:path, read back
// and written the same way, one file at a time and atomically for a reader; a file is never
// replaced within the second it was last written (mtime+size ETags).
// The whole story: docs/internals.md.
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureDir, pathExists, syncDir, tempSibling } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { UsageError } from '../../core/errors.ts';
import { setTimeout as sleep } from 'node:timers/promises';

export type StepHook = (step: string) => Promise<void>;

export interface Destination {
  /** As the operator wrote it (a folder: its absolute path). */
  where: string;
  local: boolean;
  /** The files directly in the destination. */
  list(): Promise<string[]>;
  /** A small file's bytes (VERSION, VERSION.sig), or undefined when there is none. */
  read(name: string): Promise<Buffer | undefined>;
  /** A file as a local path to read (a download into `scratch` when remote), or undefined. */
  localCopy(name: string, scratch: string): Promise<string | undefined>;
  /**
   * Place `from` (a local file's path, or the bytes themselves) as `name`; `step` sees
   * `NAME:temp` before the rename and `NAME` after. `sizeChanged`: the caller knows the file's
   * size differs from the one it replaces and from every earlier one written in the same second,
   * so the mtime+size ETag changes without waiting for the next second (placeVersionPair's last step).
   */
  put(from: string | Uint8Array, name: string, step?: StepHook, options?: PutOptions): Promise<void>;
}

export interface PutOptions {
  sizeChanged?: boolean;
  /** Readers fetch this file without If-None-Match (ledger.head.sig): no wait for the next second. */
  unconditional?: boolean;
  /**
   * Into a folder: the file is written and fsynced beside its name at once, and renamed into place
   * only when this settles; a rejection removes it and is thrown. (Elsewhere the upload waits for it.)
   */
  after?: Promise<unknown>;
}

/** Wait until the clock is in a later whole second than `mtimeMs`. */
export async function waitForNextSecond(mtimeMs: number | undefined, now: () => number = Date.now): Promise<void> {
  if (mtimeMs === undefined) return;
  const next = (Math.floor(mtimeMs / 1000) + 1) * 1000;
  while (now() < next) await sleep(next - now() + 5);
}

const lastRemotePut = new Map<string, number>();

/**
 * A URL such as http://host/updates/ is where launchfit reads, not a DEST: written as a path it
 * would make a folder named `http:`. Refused (UsageError, exit 2) before anything is written.
 */
export function refuseUrlDestination(to: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(to)?.[1]?.toLowerCase();
  if (!scheme || scheme === 's3' || scheme === 'rsync') return;
  throw new UsageError(
    `${to} is a URL, not a DEST: DEST is a folder, user@host:path or s3://bucket/prefix, where the files ` +
      `are written. ${scheme === 'http' || scheme === 'https' ? 'http(s) URLs are what launchfit reads from: publish to the folder (or bucket) that server serves and give launchfit the URL.' : 'Give the folder, user@host:path or s3:// address instead.'} Nothing was written.`,
  );
}

export function isRemoteDestination(to: string): boolean {
  return /^s3:\/\//.test(to) || /^rsync:\/\//.test(to) || /^[^/\s:]+@[^/\s:]+:/.test(to);
}

export function openDestination(to: string, log: Logger): Destination {
  refuseUrlDestination(to);
  return isRemoteDestination(to) ? remoteDestination(to, log) : folderDestination(path.resolve(to));
}

function folderDestination(dest: string): Destination {
  const missing = (error: unknown) =>
    (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : Promise.reject(error);
  // Made by the first put (a promote or a publish puts a dozen files, each a round trip less).
  let made: Promise<void> | undefined;
  return {
    where: dest,
    local: true,
    list: () =>
      readdir(dest).catch((error) => ((error as NodeJS.ErrnoException).code === 'ENOENT' ? [] : Promise.reject(error))),
    read: (name) => readFile(path.join(dest, name)).catch(missing),
    localCopy: async (name) => ((await pathExists(path.join(dest, name))) ? path.join(dest, name) : undefined),
    async put(from, name, step, options) {
      made ??= ensureDir(dest).catch((error) => {
        made = undefined;
        throw error;
      });
      await made;
      const target = path.join(dest, name);
      const temp = tempSibling(target, 'upload');
      if (!options?.sizeChanged && !options?.unconditional)
        await waitForNextSecond((await stat(target).catch(() => undefined))?.mtimeMs);
      try {
        // Bytes are written by the handle that fsyncs them: no file of their own to copy from.
        if (typeof from === 'string') await copyFile(from, temp);
        const handle = await open(temp, typeof from === 'string' ? 'r' : 'wx', 0o644);
        try {
          if (typeof from !== 'string') await handle.writeFile(from);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await options?.after;
        await step?.(`${name}:temp`);
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      await syncDir(dest);
      await step?.(name);
    },
  };
}

function remoteDestination(to: string, log: Logger): Destination {
  const readBack = () => import('../../stages/upload/read-back.ts');
  return {
    where: to,
    local: false,
    list: async () => (await readBack()).listTargetFiles(to),
    async read(name) {
      const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-read-'));
      try {
        const file = path.join(scratch, 'file');
        return (await (await readBack()).downloadTargetFile(to, name, file)) ? await readFile(file) : undefined;
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    },
    async localCopy(name, scratch) {
      const file = path.join(scratch, name);
      // A name under a folder (approvals/…): rsync and S3 write into the folder, not make it.
      await mkdir(path.dirname(file), { recursive: true });
      return (await (await readBack()).downloadTargetFile(to, name, file)) ? file : undefined;
    },
    async put(from, name, step, options) {
      const { uploadFiles } = await import('../../stages/upload/index.ts');
      const stage = await mkdtemp(path.join(os.tmpdir(), 'shipkit-put-'));
      const key = `${to}\n${name}`;
      await options?.after;
      if (!to.startsWith('s3://') && !options?.sizeChanged && !options?.unconditional)
        await waitForNextSecond(lastRemotePut.get(key));
      try {
        if (typeof from === 'string') await copyFile(from, path.join(stage, name));
        else await writeFile(path.join(stage, name), from);
        await uploadFiles({ from: stage, to, files: [name], log });
        lastRemotePut.set(key, Date.now());
      } finally {
        await rm(stage, { recursive: true, force: true });
      }
      await step?.(name);
    },
  };
}
