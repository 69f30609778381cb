// The local side of an upload: which files a source folder holds. Symbolic links are never
// followed out of the folder (a link to /etc/passwd must not end up on a web server).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { WorkError } from '../../core/errors.ts';
import type { UploadLog } from './types.ts';

export interface LocalFile {
  /** Path below the source folder with forward slashes: `img/a b.png`. */
  rel: string;
  /** The file to read (the link's target for a symlink that stays inside the folder). */
  abs: string;
  size: number;
}

/** Throws a WorkError unless `dir` is an existing folder. */
export async function checkSourceFolder(dir: string): Promise<void> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st) throw new WorkError(`The source folder ${dir} does not exist; build it first or fix the "from" folder.`);
  if (!st.isDirectory()) throw new WorkError(`The source ${dir} is not a folder.`);
}

/** True when `target` is `root` or below it. Both must be real paths. */
export function isInside(root: string, target: string): boolean {
  return target === root || target.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * Every regular file below `root`, sorted by path. A symlink to a file inside the folder is
 * read through; links that leave the folder, links to folders and special files are skipped
 * with a warning.
 */
export async function listLocalFiles(root: string, log: UploadLog): Promise<LocalFile[]> {
  const realRoot = await fs.realpath(root);
  const out: LocalFile[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const abs = path.join(dir, entry.name);
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        await walk(abs, rel);
      } else if (entry.isFile()) {
        out.push({ rel, abs, size: (await fs.stat(abs)).size });
      } else if (entry.isSymbolicLink()) {
        const real = await fs.realpath(abs).catch(() => undefined);
        const st = real ? await fs.stat(real).catch(() => undefined) : undefined;
        if (!real || !st) log.warn(`skipping ${rel}: broken symbolic link`);
        else if (!isInside(realRoot, real)) log.warn(`skipping ${rel}: symbolic link to ${real}, outside the source folder (not followed)`);
        else if (!st.isFile()) log.warn(`skipping ${rel}: symbolic link to a folder (not followed)`);
        else out.push({ rel, abs: real, size: st.size });
      } else {
        log.warn(`skipping ${rel}: not a regular file`);
      }
    }
  };
  await walk(root, '');
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}
