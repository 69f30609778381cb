// Reproducible release tarballs: entries sorted byte-wise, fixed mtime, no owners, normalised
// modes, so the same folder gives the same bytes on any machine (node-tar, loaded on use).
import { createWriteStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ValidationError } from '../core/errors.ts';

export const DEFAULT_MTIME = 946_684_800; // 2000-01-01T00:00:00Z

/** Every path under `dir`, sorted byte-wise, folders before their contents. */
export async function listSorted(dir: string, rel = ''): Promise<string[]> {
  const names = (await readdir(path.join(dir, rel))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const out: string[] = [];
  for (const name of names) {
    const relPath = rel ? `${rel}/${name}` : name;
    const st = await lstat(path.join(dir, relPath));
    if (st.isDirectory()) {
      out.push(relPath, ...(await listSorted(dir, relPath)));
    } else if (st.isSymbolicLink()) {
      const target = await readlink(path.join(dir, relPath));
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(relPath), target));
      if (path.isAbsolute(target) || resolved === '..' || resolved.startsWith('../')) {
        throw new ValidationError(
          `${relPath} links to ${target}, outside ${dir}; launchfit would refuse the release. Copy the file in instead.`,
        );
      }
      out.push(relPath);
    } else if (st.isFile()) {
      out.push(relPath);
    } else {
      throw new ValidationError(`${relPath} in ${dir} is not a file, folder or symlink; remove it before publishing.`);
    }
  }
  return out;
}

/** Pack `dir` into `out` so that the same input always gives the same bytes. */
export async function packReproducible(dir: string, out: string, mtimeSec = DEFAULT_MTIME): Promise<void> {
  const tar = await import('tar');
  const entries = await listSorted(dir);
  if (!entries.length) throw new ValidationError(`${dir} is empty; nothing to publish.`);
  const pack = tar.c(
    {
      cwd: dir,
      gzip: { level: 9 },
      portable: true,
      noDirRecurse: true,
      follow: false,
      mtime: new Date(mtimeSec * 1000),
      onWriteEntry: (entry) => {
        // Owner and umask must not leak into the bytes: 755 for folders and executables, else 644.
        const st = (entry as unknown as { stat: { mode: number } }).stat;
        const isDir = (entry as unknown as { type: string }).type === 'Directory';
        st.mode = (st.mode & ~0o7777) | (isDir || st.mode & 0o111 ? 0o755 : 0o644);
      },
    },
    entries,
  );
  await pipeline(pack as unknown as NodeJS.ReadableStream, createWriteStream(out));
}
