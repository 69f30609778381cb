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

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8', css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8', mjs: 'text/javascript; charset=utf-8', json: 'application/json',
  map: 'application/json', txt: 'text/plain; charset=utf-8', md: 'text/markdown; charset=utf-8',
  csv: 'text/csv; charset=utf-8', xml: 'application/xml', rss: 'application/rss+xml', atom: 'application/atom+xml',
  svg: 'image/svg+xml', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif',
  webp: 'image/webp', avif: 'image/avif', ico: 'image/x-icon', bmp: 'image/bmp', tif: 'image/tiff', tiff: 'image/tiff',
  woff: 'font/woff', woff2: 'font/woff2', ttf: 'font/ttf', otf: 'font/otf', eot: 'application/vnd.ms-fontobject',
  mp4: 'video/mp4', webm: 'video/webm', ogv: 'video/ogg', mp3: 'audio/mpeg', ogg: 'audio/ogg', wav: 'audio/wav',
  m4a: 'audio/mp4', flac: 'audio/flac', pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip',
  tgz: 'application/gzip', tar: 'application/x-tar', wasm: 'application/wasm', webmanifest: 'application/manifest+json',
  yml: 'application/yaml', yaml: 'application/yaml', sig: 'application/pgp-signature', asc: 'application/pgp-signature',
};

/** Content-Type from the file extension (application/octet-stream when unknown). */
export function contentTypeFor(file: string): string {
  const ext = path.extname(file).slice(1).toLowerCase();
  return TYPES[ext] ?? 'application/octet-stream';
}
