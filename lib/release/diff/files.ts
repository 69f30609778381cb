// `release diff`'s files: a release tarball (already verified) streamed through node-tar's Parser
// entry by entry, each file hashed as it goes past and never written to disk; the root's
// package-lock.json kept (capped). Two such manifests compared: added, removed, changed.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { ReadEntry } from 'tar';
import { ValidationError, messageOf } from '../../core/errors.ts';

export type EntryType = 'file' | 'dir' | 'symlink' | 'link' | 'other';

/** One entry of a release: what `release diff` compares. */
export interface ReleaseFile {
  path: string;
  type: EntryType;
  /** Permission bits in octal, e.g. "644". */
  mode: string;
  size: number;
  /** A regular file's sha256; null for the other types. */
  sha256: string | null;
  /** Where a symlink or hard link points. */
  target: string | null;
}

export interface Manifest {
  files: Map<string, ReleaseFile>;
  /** The bytes of package-lock.json at the release's root, when it has one within the cap. */
  packageLock?: Buffer;
  /** Why packageLock is absent although the release has one (too large). */
  packageLockProblem?: string;
}

export interface TarLimits {
  maxEntries: number;
  /** The sum of the entries' sizes. */
  maxUnpackedBytes: number;
  maxLockBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = {
  maxEntries: 1_000_000,
  maxUnpackedBytes: 64 * 1024 ** 3,
  maxLockBytes: 64 * 1024 * 1024,
};

const LOCK_FILE = 'package-lock.json';

const TYPES: Record<string, EntryType> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'dir',
  SymbolicLink: 'symlink',
  Link: 'link',
};

/** `./a/b/` → `a/b`: the forms one path takes in a tarball. */
export function entryPath(raw: string): string {
  let p = raw;
  while (p.startsWith('./')) p = p.slice(2);
  return p.replace(/\/+$/, '') || '.';
}

/**
 * The entries of the tar.gz whose bytes `tarball` yields (a file's read stream, or buffers), files
 * hashed as they stream by. Throws ValidationError (naming `what`) for a tarball that is not a
 * readable tar.gz or goes past `limits`.
 */
export async function manifestOfTarball(
  tarball: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  what: string,
  limits: TarLimits = DEFAULT_TAR_LIMITS,
): Promise<Manifest> {
  const { Parser } = await import('tar');
  const manifest: Manifest = { files: new Map() };
  let unpacked = 0;
  let entries = 0;
  const pending: Array<Promise<void>> = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      unpacked += entry.size ?? 0;
      if (++entries > limits.maxEntries || unpacked > limits.maxUnpackedBytes) {
        entry.resume();
        parser.abort(
          new ValidationError(
            `${what} holds more than ${limits.maxEntries} entries or ${limits.maxUnpackedBytes} bytes unpacked; release diff stops there.`,
          ),
        );
        return;
      }
      const read = readEntry(entry, manifest, limits);
      read.catch(() => {}); // awaited after the parser ends; a failure meanwhile must not go unhandled
      pending.push(read);
    },
  });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
    parser.on('abort', reject);
  });
  let stopped = false;
  done.catch(() => (stopped = true)); // awaited below; an early failure stops the reading
  try {
    for await (const chunk of tarball) {
      if (stopped) break;
      if (!parser.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
        await Promise.race([once(parser, 'drain'), done]);
    }
    parser.end();
    await done;
    await Promise.all(pending);
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(`${what} is not a readable tar.gz (${messageOf(error)}).`, { cause: error });
  }
  return manifest;
}

/** One entry into `manifest`: its facts, and for a file its sha256 (and the root's lock, kept). */
async function readEntry(entry: ReadEntry, manifest: Manifest, limits: TarLimits): Promise<void> {
  const type = TYPES[entry.type] ?? 'other';
  const path = entryPath(entry.path);
  const file: ReleaseFile = {
    path,
    type,
    mode: ((entry.mode ?? 0) & 0o7777).toString(8),
    size: type === 'file' ? (entry.size ?? 0) : 0,
    sha256: null,
    target: type === 'symlink' || type === 'link' ? (entry.linkpath ?? '') : null,
  };
  // A later entry of the same path wins, as it would on extraction.
  manifest.files.set(path, file);
  if (type !== 'file') {
    entry.resume();
    return;
  }
  const hash = createHash('sha256');
  const keepLock = path === LOCK_FILE && file.size <= limits.maxLockBytes;
  const lock: Buffer[] = [];
  entry.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    if (keepLock) lock.push(chunk);
  });
  await once(entry, 'end');
  file.sha256 = hash.digest('hex');
  if (path !== LOCK_FILE) return;
  if (keepLock) {
    manifest.packageLock = Buffer.concat(lock);
    delete manifest.packageLockProblem;
  } else {
    delete manifest.packageLock;
    manifest.packageLockProblem = `its ${LOCK_FILE} is ${file.size} bytes, more than the ${limits.maxLockBytes} compared`;
  }
}

export interface FileChange {
  path: string;
  type: EntryType;
  size: number;
  /** Bytes gained (negative: lost). */
  sizeChange: number;
  /** What differs: the bytes, the permission bits, the kind of entry, a link's target. */
  changes: Array<'content' | 'mode' | 'type' | 'target'>;
  from: ReleaseFile;
  to: ReleaseFile;
}

export interface FilesSummary {
  /** Entries that are not folders. */
  files: number;
  bytes: number;
}

export interface FileDiff {
  added: ReleaseFile[];
  removed: ReleaseFile[];
  changed: FileChange[];
  total: { from: FilesSummary; to: FilesSummary };
}

function summaryOf(files: Map<string, ReleaseFile>): FilesSummary {
  let count = 0;
  let bytes = 0;
  for (const f of files.values())
    if (f.type !== 'dir') {
      count++;
      bytes += f.size;
    }
  return { files: count, bytes };
}

/** What differs between two releases' entries. A folder added or removed is left out (its files say it). */
export function compareManifests(before: Map<string, ReleaseFile>, after: Map<string, ReleaseFile>): FileDiff {
  const added: ReleaseFile[] = [];
  const changed: FileChange[] = [];
  for (const now of after.values()) {
    const was = before.get(now.path);
    if (!was) {
      if (now.type !== 'dir') added.push(now);
      continue;
    }
    const changes: FileChange['changes'] = [];
    if (was.type !== now.type) changes.push('type');
    else if (was.sha256 !== now.sha256) changes.push('content');
    if (was.mode !== now.mode) changes.push('mode');
    if (was.type === now.type && was.target !== now.target) changes.push('target');
    if (changes.length)
      changed.push({
        path: now.path,
        type: now.type,
        size: now.size,
        sizeChange: now.size - was.size,
        changes,
        from: was,
        to: now,
      });
  }
  const removed = [...before.values()].filter((was) => !after.has(was.path) && was.type !== 'dir');
  const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return {
    added: added.sort(byPath),
    removed: removed.sort(byPath),
    changed: changed.sort(byPath),
    total: { from: summaryOf(before), to: summaryOf(after) },
  };
}
