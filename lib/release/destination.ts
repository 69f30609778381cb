// Where releases are published (`--to`): a local folder, s3://bucket/prefix or user@host:path,
// read back and written the same way. `put` places one staged file, atomically for a reader
// (temp + rename in a folder; one PUT on S3; rsync --delay-updates), so files go up one at a
// time in the order given. `step` is called between the writes (after a temp file is written,
// after each file is in place): `release rollback` names those points so a test can kill it there.
import { copyFile, mkdtemp, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureDir, pathExists, syncDir, tempSibling } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';

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
  /** Place `from` (a local file) as `name`; `step` sees `NAME:temp` before the rename and `NAME` after. */
  put(from: string, name: string, step?: StepHook): Promise<void>;
}

export function isRemoteDestination(to: string): boolean {
  return /^s3:\/\//.test(to) || /^rsync:\/\//.test(to) || /^[^/\s:]+@[^/\s:]+:/.test(to);
}

export function openDestination(to: string, log: Logger): Destination {
  return isRemoteDestination(to) ? remoteDestination(to, log) : folderDestination(path.resolve(to));
}

function folderDestination(dest: string): Destination {
  const missing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : Promise.reject(error);
  return {
    where: dest,
    local: true,
    list: () => readdir(dest).catch((error) => ((error as NodeJS.ErrnoException).code === 'ENOENT' ? [] : Promise.reject(error))),
    read: (name) => readFile(path.join(dest, name)).catch(missing),
    localCopy: async (name) => ((await pathExists(path.join(dest, name))) ? path.join(dest, name) : undefined),
    async put(from, name, step) {
      await ensureDir(dest);
      const target = path.join(dest, name);
      const temp = tempSibling(target, 'upload');
      try {
        await copyFile(from, temp);
        const handle = await open(temp, 'r');
        try { await handle.sync(); } finally { await handle.close(); }
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
  const readBack = () => import('../stages/upload/read-back.ts');
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
      return (await (await readBack()).downloadTargetFile(to, name, file)) ? file : undefined;
    },
    async put(from, name, step) {
      const { uploadFiles } = await import('../stages/upload/index.ts');
      const stage = await mkdtemp(path.join(os.tmpdir(), 'shipkit-put-'));
      try {
        await copyFile(from, path.join(stage, name));
        await uploadFiles({ from: stage, to, files: [name], log });
      } finally {
        await rm(stage, { recursive: true, force: true });
      }
      await step?.(name);
    },
  };
}
