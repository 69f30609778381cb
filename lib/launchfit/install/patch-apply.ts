// A release rebuilt from a release the host holds and a verified patch (docs/launchfit.md "Delta
// updates"): folders made, unchanged and moved files hard-linked only once their bytes match the
// signed manifest, each group decompressed with its output capped, every file checked, links last.
// Anything that does not match throws: the caller falls back to the full tarball.
import { createHash, type Hash } from 'node:crypto';
import { chmodSync, createReadStream, linkSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { chmod, copyFile, lstat, open, realpath, rm, stat, symlink, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { VerificationError } from '../../core/errors.ts';
import { bookDigest, bookHas, type Books } from '../deploy-folder/file-digests.ts';
import { withReadBuffer } from '../../core/read-buffer.ts';
import { workSlices } from '../../core/work-slices.ts';
import { fileDigest, fileDigestSync, SYNC_DIGEST_MAX, type ManifestEntry } from '../../release/format/manifest.ts';
import { DEFAULT_MTIME } from '../../release/format/pack-index.ts';
import type { PatchFile, PatchHeader } from '../../release/format/patch.ts';
import { zstdDecompress } from '../../core/zstd.ts';
import { checkTree } from './extract.ts';

export interface PatchSource {
  /** The held release the patch is from (releases/NAME). */
  fromRoot: string;
  patchFile: string;
  header: PatchHeader;
  /** Where the first group's bytes start in patchFile. */
  bodyStart: number;
  /** The held release's digest book, and the new release's, filled as its files are checked. */
  books: Books;
}

export const modeOf = (entry: ManifestEntry) => Number.parseInt(entry.mode, 8);

/** The held release's folder, its real path taken once for all its files. */
export interface Held {
  root: string;
  real: string;
  /** Each folder's real path, taken once for the files in it (heldFile). */
  folders: Map<string, string>;
  /** Its digest book (deploy-folder/file-digests.ts) and the one of the release being built. */
  books: Books;
}

/** The held release at `root` with its digest book, for reuseFile, which books what it checks. */
export async function holdRelease(root: string, books: Books): Promise<Held> {
  return { root, real: await realpath(root), folders: new Map(), books };
}

/**
 * The path of `rel` in the held release, a regular file inside it, not reached through a link;
 * with its lstat. The file itself is lstat'ed (a link is refused); its folder's real path, taken
 * once per folder, must be where the folder is in the held release. Sync calls: one file's are
 * a few µs, where each async call is a round trip through libuv's threads (core/work-slices.ts).
 */
function heldFile(held: Held, rel: string): { file: string; st: Stats } {
  const full = path.join(held.root, rel);
  let st: Stats | undefined;
  try {
    st = lstatSync(full);
  } catch {
    // Missing, or a part of its path is not a folder: not a file to reuse either way.
  }
  if (!st?.isFile()) throw new VerificationError(`${rel} in the held release is missing or not a regular file`);
  const folder = path.dirname(rel);
  let real = held.folders.get(folder);
  if (real === undefined) {
    try {
      real = realpathSync(path.join(held.root, folder));
    } catch {
      real = '';
    }
    held.folders.set(folder, real);
  }
  if (real !== path.join(held.real, folder))
    throw new VerificationError(`${rel} in the held release is reached through a link`);
  return { file: full, st };
}

/**
 * Put the held file `from` at `dst` as `entry` says: hard-linked when its mode is the same, else
 * copied; then its bytes at `dst` must be the manifest's: hashed, unless the held release's book
 * gives that digest for the file as it is (the same inode, size, mtime and ctime).
 */
export async function reuseFile(held: Held, from: string, dst: string, entry: ManifestEntry): Promise<void> {
  const { file, st } = heldFile(held, from);
  const changed = () =>
    new VerificationError(
      `${entry.path} in the held release no longer matches its signed digest (changed on this host); it is not reused`,
    );
  if (st.size !== entry.size) throw changed();
  const linked = (st.mode & 0o777) === modeOf(entry);
  held.books.reused++;
  if (!linked) {
    // Another mode: a copy of its own, in the private folder being built.
    await copyFile(file, dst);
    await checkReused(held, dst, entry, changed);
    return settleWritten(dst, entry, held.books);
  }
  linkSync(file, dst);
  // Taken before any read, so a write after it shows in the new book's ctime.
  const now = lstatSync(dst);
  const same = now.ino === st.ino && now.size === st.size && now.mtimeMs === st.mtimeMs;
  if (!same || !bookHas(held.books.held, from, st, entry.sha256!)) await checkReused(held, dst, entry, changed);
  bookDigest(held.books.made, entry.path, now, entry.sha256!);
}

/** `dst`'s bytes hashed: they must be `entry`'s. */
async function checkReused(held: Held, dst: string, entry: ManifestEntry, changed: () => Error): Promise<void> {
  held.books.read++;
  const got =
    entry.size > SYNC_DIGEST_MAX ? await fileDigest(dst) : await withReadBuffer(async (b) => fileDigestSync(dst, b));
  if (got.sha256 !== entry.sha256 || got.size !== entry.size) throw changed();
}

/**
 * Appends at most `limit` bytes of `src` from `start` to `dst` through a reused buffer (lib/core/
 * read-buffer.ts), hashed on the way; returns how many there were (fewer when `src` ends first).
 */
async function copyHashed(src: FileHandle, start: number, limit: number, dst: FileHandle, hash: Hash): Promise<number> {
  return withReadBuffer(async (buffer) => {
    let copied = 0;
    while (copied < limit) {
      const want = Math.min(buffer.length, limit - copied);
      const { bytesRead } = await src.read(buffer, 0, want, start + copied);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      for (let at = 0; at < bytesRead;) at += (await dst.write(buffer, at, bytesRead - at)).bytesWritten;
      copied += bytesRead;
    }
    return copied;
  });
}

/**
 * A file just written and checked against `entry`: its mode set, its mtime the one an unpacked
 * tarball's files have (so a later write by anyone changes it), and booked in `books.made`.
 */
export async function settleWritten(dst: string, entry: ManifestEntry, books: Books): Promise<void> {
  await chmod(dst, modeOf(entry));
  await utimes(dst, DEFAULT_MTIME, DEFAULT_MTIME);
  bookDigest(books.made, entry.path, await lstat(dst), entry.sha256!);
}

/** Bytes [start, start+size) of `src` into `dst` (digest checked against `entry`), then settleWritten. */
async function writeRange(src: FileHandle, start: number, dst: string, entry: ManifestEntry, books: Books) {
  const hash = createHash('sha256');
  const out = await open(dst, 'w', modeOf(entry));
  try {
    await copyHashed(src, start, entry.size, out, hash);
  } finally {
    await out.close();
  }
  if (hash.digest('hex') !== entry.sha256)
    throw new VerificationError(`${entry.path} made from the patch does not match its signed digest`);
  await settleWritten(dst, entry, books);
}

/** The old files a delta group is patched from, each checked against its signed digest, into `dict`. */
async function writeDictionary(held: Held, files: PatchFile[], dict: string): Promise<number> {
  const sink = await open(dict, 'w', 0o600);
  let total = 0;
  try {
    for (const f of files) {
      const { file } = heldFile(held, f.from!);
      const hash = createHash('sha256');
      const src = await open(file, 'r');
      let size: number;
      try {
        // One byte past the signed size is enough to know the file is not that one.
        size = await copyHashed(src, 0, (f.from_size ?? 0) + 1, sink, hash);
      } finally {
        await src.close();
      }
      if (size !== f.from_size || hash.digest('hex') !== f.from_sha256)
        throw new VerificationError(`${f.from} in the held release is not the file the patch was made from`);
      total += size;
    }
  } finally {
    await sink.close();
  }
  return total;
}

/** One group: its bytes decompressed (capped at the files' signed total) and cut into its files. */
async function applyGroup(
  source: PatchSource,
  held: Held,
  group: PatchHeader['groups'][number],
  offset: number,
  work: string,
  root: string,
  byPath: Map<string, ManifestEntry>,
): Promise<void> {
  const out = path.join(work, 'group.out');
  const dict = path.join(work, 'group.dict');
  const total = group.files.reduce((sum, f) => sum + f.size, 0);
  try {
    const dictBytes = group.kind === 'delta' ? await writeDictionary(held, group.files, dict) : 0;
    await zstdDecompress({
      input: createReadStream(source.patchFile, { start: offset, end: offset + group.bytes - 1 }),
      output: out,
      maxBytes: total,
      dict: group.kind === 'delta' ? dict : undefined,
      dictBytes,
    });
    if ((await stat(out)).size !== total)
      throw new VerificationError(`a patch group gives ${(await stat(out)).size} bytes, not the signed ${total}`);
    const made = await open(out, 'r');
    try {
      let at = 0;
      for (const f of group.files) {
        await writeRange(made, at, path.join(root, f.path), byPath.get(f.path)!, held.books);
        at += f.size;
      }
    } finally {
      await made.close();
    }
  } finally {
    await rm(out, { force: true });
    await rm(dict, { force: true });
  }
}

/** The manifest's folders under `root`, with their modes: sync calls, in `pause`'s slices. */
export async function makeFolders(
  manifest: ManifestEntry[],
  root: string,
  pause: () => Promise<void> | undefined,
): Promise<void> {
  for (const e of manifest)
    if (e.type === 'dir') {
      mkdirSync(path.join(root, e.path));
      chmodSync(path.join(root, e.path), modeOf(e));
      await pause();
    }
}

/**
 * Build the release `manifest` describes into `root` from the held release and the patch. Every
 * file is made once and checked; folders first, links last, then every link's target is followed
 * as the kernel would (install/extract.ts). Returns the bytes taken from the patch's groups.
 */
export async function buildFromPatch(
  manifest: ManifestEntry[],
  source: PatchSource,
  work: string,
  root: string,
): Promise<number> {
  const byPath = new Map(manifest.map((e) => [e.path, e]));
  const pause = workSlices();
  await makeFolders(manifest, root, pause);
  const held = await holdRelease(source.fromRoot, source.books);
  // Every file taken from the held release, moved or in place: a few sync calls each (a read
  // only where the held release's book does not vouch for the file), in slices.
  const made = new Set<string>();
  const reuses: Array<[from: string, entry: ManifestEntry]> = [];
  for (const c of source.header.copies) {
    reuses.push([c.from, byPath.get(c.path)!]);
    made.add(c.path);
  }
  for (const g of source.header.groups) for (const f of g.files) made.add(f.path);
  for (const e of manifest) if (e.type === 'file' && !made.has(e.path)) reuses.push([e.path, e]);
  for (const [from, entry] of reuses) {
    await reuseFile(held, from, path.join(root, entry.path), entry);
    await pause();
  }
  let offset = source.bodyStart;
  for (const g of source.header.groups) {
    await applyGroup(source, held, g, offset, work, root, byPath);
    offset += g.bytes;
  }
  for (const e of manifest) if (e.type === 'symlink') await symlink(e.target!, path.join(root, e.path));
  await checkTree(root, root);
  await chmod(root, 0o755);
  return offset - source.bodyStart;
}
