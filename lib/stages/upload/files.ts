// The local side of an upload: which files a source folder holds. Symbolic links are never
// followed out of the folder (a link to /etc/passwd must not end up on a web server).
import { promises as fs, type Dirent } from 'node:fs';
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
  // One entry: its files (a folder's, recursively), or a warning. The entries of a folder are
  // looked at concurrently, and their warnings given in the folder's order.
  type Found = { files: LocalFile[]; warning?: string };
  const visit = async (abs: string, rel: string, entry: Dirent): Promise<Found> => {
    if (entry.isDirectory()) return { files: await walk(abs, rel) };
    if (entry.isFile()) return { files: [{ rel, abs, size: (await fs.stat(abs)).size }] };
    if (!entry.isSymbolicLink()) return { files: [], warning: `skipping ${rel}: not a regular file` };
    const real = await fs.realpath(abs).catch(() => undefined);
    const st = real ? await fs.stat(real).catch(() => undefined) : undefined;
    if (!real || !st) return { files: [], warning: `skipping ${rel}: broken symbolic link` };
    if (!isInside(realRoot, real))
      return {
        files: [],
        warning: `skipping ${rel}: symbolic link to ${real}, outside the source folder (not followed)`,
      };
    if (!st.isFile()) return { files: [], warning: `skipping ${rel}: symbolic link to a folder (not followed)` };
    return { files: [{ rel, abs: real, size: st.size }] };
  };
  const walk = async (dir: string, prefix: string): Promise<LocalFile[]> => {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    const found = await Promise.all(
      entries.map((entry) => visit(path.join(dir, entry.name), prefix ? `${prefix}/${entry.name}` : entry.name, entry)),
    );
    for (const { warning } of found) if (warning) log.warn(warning);
    return found.flatMap((f) => f.files);
  };
  const out = await walk(root, '');
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}
