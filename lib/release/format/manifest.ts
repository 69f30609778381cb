// A release's manifest (docs/release.md "Delta updates"): one JSON line per entry of the release
// as a host unpacks it ({path, type, mode, size, sha256, target}, sorted byte-wise by path),
// written by the publisher from the folder and checked strictly by the host before it trusts a
// line of it: no `..`, no absolute or duplicate paths, parents that are folders, links inside.
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../../core/errors.ts';
import { withReadBuffer } from '../../core/read-buffer.ts';
import { workSlices } from '../../core/work-slices.ts';

/** A manifest larger than this is refused while it is read (200,000 entries fit). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
export const MAX_MANIFEST_ENTRIES = 200_000;

/** Every path under `dir`, sorted byte-wise, folders before their contents (sync calls in slices, core/work-slices.ts). */
export async function listSorted(dir: string, skip?: (rel: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const pause = workSlices();
  const walk = async (rel: string): Promise<void> => {
    const names = readdirSync(path.join(dir, rel)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      if (skip?.(relPath)) continue;
      const st = lstatSync(path.join(dir, relPath));
      if (st.isDirectory()) {
        out.push(relPath);
        await walk(relPath);
      } else if (st.isSymbolicLink()) {
        const target = readlinkSync(path.join(dir, relPath));
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
        throw new ValidationError(
          `${relPath} in ${dir} is not a file, folder or symlink; remove it before publishing.`,
        );
      }
      await pause();
    }
  };
  await walk('');
  return out;
}

/** The manifest beside a release tarball at DEST: APP-PLATFORM-VERSION.manifest. */
export const manifestFileName = (tarball: string) => `${tarball.slice(0, -'.tar.gz'.length)}.manifest`;

export type ManifestType = 'file' | 'dir' | 'symlink';

export interface ManifestEntry {
  path: string;
  type: ManifestType;
  /** Octal permission bits as text: "644" or "755". */
  mode: string;
  size: number;
  sha256: string | null;
  target: string | null;
}

/**
 * The sha256 and size of a file, read in READ_STEP steps into a reused buffer: memory does not
 * grow with the file, nor with the number of files hashed.
 */
export async function fileDigest(file: string): Promise<{ sha256: string; size: number }> {
  const handle = await open(file, 'r');
  try {
    return await withReadBuffer(async (buffer) => {
      const hash = createHash('sha256');
      let size = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
        if (bytesRead === 0) break;
        hash.update(buffer.subarray(0, bytesRead));
        size += bytesRead;
      }
      return { sha256: hash.digest('hex'), size };
    });
  } finally {
    await handle.close();
  }
}

/** Above this size a file is hashed with the async calls (fileDigest): the event loop is not held for it. */
export const SYNC_DIGEST_MAX = 4 * 1024 * 1024;

/** fileDigest with the sync calls, into `buffer` (for the many small files of a folder walk, workSlices). */
export function fileDigestSync(file: string, buffer: Buffer): { sha256: string; size: number } {
  const fd = openSync(file, 'r');
  try {
    const hash = createHash('sha256');
    let size = 0;
    for (let n; (n = readSync(fd, buffer, 0, buffer.length, size)) > 0; size += n) hash.update(buffer.subarray(0, n));
    return { sha256: hash.digest('hex'), size };
  } finally {
    closeSync(fd);
  }
}

/** The mode the reproducible tarball gives an entry (pack.ts): 755 for folders and executables, else 644. */
const packedMode = (isDir: boolean, mode: number) => (isDir || mode & 0o111 ? '755' : '644');

/**
 * The manifest of `dir` as a host will unpack its tarball: the same entries, sorted byte-wise by
 * path, and, as extraction does, a single top-level folder stripped.
 */
export async function manifestOf(dir: string, skip?: (rel: string) => boolean): Promise<ManifestEntry[]> {
  const names = await listSorted(dir, skip);
  // The sync calls in slices (core/work-slices.ts); a large file with the async ones.
  const pause = workSlices();
  const entries = await withReadBuffer(async (buffer) => {
    const out: ManifestEntry[] = [];
    for (const rel of names) {
      const full = path.join(dir, rel);
      const st = lstatSync(full);
      if (st.isDirectory()) out.push({ path: rel, type: 'dir', mode: '755', size: 0, sha256: null, target: null });
      else if (st.isSymbolicLink())
        out.push({ path: rel, type: 'symlink', mode: '777', size: 0, sha256: null, target: readlinkSync(full) });
      else {
        const { sha256, size } = st.size > SYNC_DIGEST_MAX ? await fileDigest(full) : fileDigestSync(full, buffer);
        out.push({ path: rel, type: 'file', mode: packedMode(false, st.mode), size, sha256, target: null });
      }
      await pause();
    }
    return out;
  });
  // Byte-wise by path, as the manifest is read ("lib", "lib.js", "lib/a.js"): a folder still
  // comes before what it holds, which the tar's folder-first order does not give in this form.
  return stripSingleTop(entries).sort(byPathBytes);
}

/** Entries in a manifest's order: byte-wise by path. */
export const byPathBytes = (a: { path: string }, b: { path: string }) =>
  Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));

/** Extraction strips a lone top-level folder (install/extract.ts); so does the manifest. */
export function stripSingleTop(entries: ManifestEntry[]): ManifestEntry[] {
  const tops = entries.filter((e) => !e.path.includes('/'));
  if (tops.length !== 1 || tops[0].type !== 'dir') return entries;
  const prefix = `${tops[0].path}/`;
  return entries.filter((e) => e !== tops[0]).map((e) => ({ ...e, path: e.path.slice(prefix.length) }));
}

/** One entry's line, without its newline: the keys in a fixed order (a folder's digest uses it too). */
export const manifestLine = (e: ManifestEntry): string =>
  JSON.stringify({ path: e.path, type: e.type, mode: e.mode, size: e.size, sha256: e.sha256, target: e.target });

/** The manifest's bytes: one JSON line per entry, keys in a fixed order. */
export function formatManifest(entries: ManifestEntry[]): string {
  return entries.map((e) => `${manifestLine(e)}\n`).join('');
}

/** Why `p` may not name an entry of a release, or undefined. */
export function manifestPathProblem(p: unknown): string | undefined {
  if (typeof p !== 'string' || p === '') return 'is not a non-empty text';
  if (p.length > 4096) return 'is longer than 4096 characters';
  if (p.includes('\0') || p.includes('\\')) return 'contains a NUL byte or a backslash';
  if (p.startsWith('/')) return 'is an absolute path';
  if (p.split('/').some((part) => part === '' || part === '.' || part === '..'))
    return 'has an empty, "." or ".." part';
  return undefined;
}

/** Why a symlink at `p` pointing at `target` would leave the release (by its text), or undefined. */
export function linkTargetProblem(p: string, target: unknown): string | undefined {
  if (typeof target !== 'string' || target === '' || target.includes('\0')) return 'has no valid target';
  if (target.startsWith('/')) return `links to the absolute path ${JSON.stringify(target)}`;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(p), target));
  if (resolved === '..' || resolved.startsWith('../')) return `links to ${JSON.stringify(target)}, outside the release`;
  return undefined;
}

const HEX64 = /^[0-9a-f]{64}$/;
const KEYS = 'mode,path,sha256,size,target,type';

/** One line checked: the fields, their types, the path and, for a link, its target. */
function checkEntry(value: unknown, where: string): ManifestEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ValidationError(`${where} is not a JSON object.`);
  const e = value as Record<string, unknown>;
  if (Object.keys(e).sort().join(',') !== KEYS) throw new ValidationError(`${where} must have exactly ${KEYS}.`);
  const pathProblem = manifestPathProblem(e.path);
  if (pathProblem) throw new ValidationError(`${where}: the path ${JSON.stringify(e.path)} ${pathProblem}.`);
  const p = e.path as string;
  const bad = (why: string) => new ValidationError(`${where} (${JSON.stringify(p)}): ${why}.`);
  if (e.type !== 'file' && e.type !== 'dir' && e.type !== 'symlink') throw bad('type must be file, dir or symlink');
  if (typeof e.mode !== 'string' || !/^[0-7]{3}$/.test(e.mode)) throw bad('mode must be three octal digits');
  if (e.type !== 'symlink' && (Number.parseInt(e.mode, 8) & ~0o755) !== 0)
    throw bad(`mode ${e.mode} gives write to others or more than 755`);
  if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) throw bad('size must be a whole number of bytes');
  if (e.type === 'file') {
    if (typeof e.sha256 !== 'string' || !HEX64.test(e.sha256)) throw bad('a file needs a sha256 of 64 hex digits');
    if (e.target !== null) throw bad('a file has no target');
  } else {
    if (e.sha256 !== null || e.size !== 0) throw bad(`a ${e.type} has no sha256 and size 0`);
    if (e.type === 'dir' && e.target !== null) throw bad('a folder has no target');
    if (e.type === 'symlink') {
      const linkProblem = linkTargetProblem(p, e.target);
      if (linkProblem) throw bad(linkProblem);
    }
  }
  return e as unknown as ManifestEntry;
}

/**
 * Parse and check a manifest: every line an entry, paths strictly increasing byte-wise (so none
 * twice), each parent listed before as a folder, totals within `maxTotalBytes`.
 */
export function parseManifest(text: string | Buffer, maxTotalBytes = Number.MAX_SAFE_INTEGER): ManifestEntry[] {
  const body = typeof text === 'string' ? text : text.toString('utf8');
  if (Buffer.byteLength(body) > MAX_MANIFEST_BYTES)
    throw new ValidationError(`The manifest is larger than ${MAX_MANIFEST_BYTES} bytes.`);
  if (body !== '' && !body.endsWith('\n')) throw new ValidationError('The manifest does not end with a newline.');
  const lines = body === '' ? [] : body.slice(0, -1).split('\n');
  if (lines.length > MAX_MANIFEST_ENTRIES)
    throw new ValidationError(`The manifest lists more than ${MAX_MANIFEST_ENTRIES} entries.`);
  const types = new Map<string, ManifestType>();
  const entries: ManifestEntry[] = [];
  let previous: Buffer | undefined;
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    const where = `manifest line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(lines[i]);
    } catch {
      throw new ValidationError(`${where} is not JSON.`);
    }
    const entry = checkEntry(value, where);
    const key = Buffer.from(entry.path);
    if (previous && Buffer.compare(previous, key) >= 0)
      throw new ValidationError(
        `${where}: ${JSON.stringify(entry.path)} is out of order or listed twice (paths must be sorted byte-wise, each once).`,
      );
    previous = key;
    const slash = entry.path.lastIndexOf('/');
    if (slash > 0 && types.get(entry.path.slice(0, slash)) !== 'dir')
      throw new ValidationError(
        `${where}: the parent of ${JSON.stringify(entry.path)} is not a folder listed before it.`,
      );
    types.set(entry.path, entry.type);
    total += entry.size;
    if (total > maxTotalBytes)
      throw new ValidationError(`The manifest's files add up to more than ${maxTotalBytes} bytes.`);
    entries.push(entry);
  }
  if (!entries.length) throw new ValidationError('The manifest lists no entries.');
  return entries;
}

/** The sha256 of the manifest's bytes, as VERSION's MANIFEST line gives it. */
export const manifestSha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');
