// File-system helpers for writes that must never be seen half-done.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, mkdir, open, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

/** A sibling temp name: same folder (so rename is atomic), hidden, unique. */
export function tempSibling(file: string, tag = 'tmp'): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

/**
 * `fill` writes a temp sibling of `target`, which is then renamed over it: readers see the old
 * file or the new one, never half of it. The temp file is removed when anything fails. With
 * `durable`, the temp file is fsynced before the rename and the folder after it.
 */
export async function replaceViaTemp(
  target: string,
  fill: (temp: string) => Promise<void>,
  { tag = 'tmp', durable = false }: { tag?: string; durable?: boolean } = {},
): Promise<void> {
  const temp = tempSibling(target, tag);
  try {
    await fill(temp);
    if (durable) {
      const handle = await open(temp, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  if (durable) await syncDir(path.dirname(target));
}

/**
 * Write to a temp file in the same folder, fsync it, then rename over `file`. `durable: false`
 * leaves out the fsyncs, for a file a crash may lose (a cache that is checked when read).
 */
export async function atomicWriteFile(
  file: string,
  data: string | Uint8Array,
  { mode = 0o644, durable = true }: { mode?: number; durable?: boolean } = {},
): Promise<void> {
  await replaceViaTemp(
    file,
    async (temp) => {
      const handle = await open(temp, 'wx', mode);
      try {
        await handle.writeFile(data);
      } finally {
        await handle.close();
      }
    },
    { durable },
  );
}

/** fsync a folder so a rename inside it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    /* some file systems refuse fsync on folders */
  }
}

export async function ensureDir(dir: string, mode?: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
}

/**
 * Whether this process may use `file` as `mode` asks (fs.constants R_OK, W_OK, X_OK), following
 * symbolic links. Deno's fs.access judges a link by its own mode (always rwx) and not by its
 * target, so the target itself is asked: the answer is then the same on Node and Deno.
 */
export async function canAccess(file: string, mode: number): Promise<boolean> {
  try {
    await access(await realpath(file), mode);
    return true;
  } catch {
    return false;
  }
}

/** The last `bytes` bytes of a file (all of it when it is shorter), read without loading the rest. */
export async function readFileTail(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, size - length);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export async function pathExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** A file's digest, hex, read as a stream (memory does not grow with the file). */
export async function hashFile(
  file: string,
  algorithm: 'sha256' | 'sha512' | 'md5',
  encoding: 'hex' | 'base64' = 'hex',
): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest(encoding);
}

export function sha256File(file: string): Promise<string> {
  return hashFile(file, 'sha256');
}
