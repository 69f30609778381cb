// Each held release's digest book (.launchfit/manifests/NAME.digests): the sha256 each file was
// checked against, with its inode, size, mtime and ctime as lstat gave them before it was read.
// A delta update reuses a file whose four are unchanged without reading it again: any write
// changes its ctime. Links launchfit itself removes (pruning) are carried (docs/launchfit.md).
import type { Stats } from 'node:fs';
import { lstat, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import { mapLimit } from '../../core/pool.ts';
import type { DeployPaths } from './state.ts';

/**
 * A release's path → `INO:SIZE:MTIME_MS:CTIME_MS SHA256`, the times as node gives them (ms with
 * a fraction, to a quarter of a µs): plain stats, as bigint ones cost 1–2 MB more per walk.
 */
export type DigestBook = Map<string, string>;

/** A build's books: the held release's, the new one's, and the held files reused and read. */
export interface Books {
  held: DigestBook;
  made: DigestBook;
  reused: number;
  read: number;
}

export const newBooks = (held: DigestBook): Books => ({ held, made: new Map(), reused: 0, read: 0 });

/** Books above this are not read (2,805 files take 0.3 MB). */
const MAX_BOOK_BYTES = 64 << 20;
/**
 * A file written this recently is not booked: a write in the same clock tick as its lstat could
 * leave its ctime as it was. Files launchfit links or unpacks keep their release's old mtime.
 */
const FRESH_MS = 2000;
const AT_ONCE = 16;

export const bookFile = (paths: DeployPaths, name: string) => path.join(paths.manifests, `${name}.digests`);

const stampOf = (st: Stats) => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

/** Books `rel` as having `sha256`, `st` its lstat taken before its bytes were read. */
export function bookDigest(book: DigestBook, rel: string, st: Stats, sha256: string): void {
  if (st.isFile() && st.mtimeMs < Date.now() - FRESH_MS) book.set(rel, `${stampOf(st)} ${sha256}`);
}

/** Whether the book says `rel`, lstat'ed now as `st`, still holds `sha256`. */
export const bookHas = (book: DigestBook, rel: string, st: Stats, sha256: string) =>
  book.get(rel) === `${stampOf(st)} ${sha256}`;

/** releases/NAME's book; empty when there is none or it cannot be read (then every file is read). */
export async function readBook(paths: DeployPaths, name: string): Promise<DigestBook> {
  try {
    const text = await readFile(bookFile(paths, name), 'utf8');
    if (text.length > MAX_BOOK_BYTES) return new Map();
    const files = (JSON.parse(text) as { files?: unknown }).files;
    if (!files || typeof files !== 'object') return new Map();
    return new Map(Object.entries(files).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return new Map();
  }
}

/** Writes releases/NAME's book (not fsynced: a book lost to a crash only costs a read). */
export async function writeBook(paths: DeployPaths, name: string, book: DigestBook): Promise<void> {
  await ensureDir(paths.manifests, 0o700);
  const text = JSON.stringify({ files: Object.fromEntries(book) });
  await atomicWriteFile(bookFile(paths, name), text, { mode: 0o600, durable: false });
}

export const dropBook = (paths: DeployPaths, name: string) => rm(bookFile(paths, name), { force: true });

/**
 * Runs `remove` (which unlinks files of releases/GONE) and carries the other releases' books
 * over it: removing a hard link changes the ctime of the file every release linked. An entry
 * still true before is rewritten with the ctime after, if inode, size and mtime are unchanged.
 */
export async function carryBooks(paths: DeployPaths, gone: string, names: string[], remove: () => Promise<void>) {
  const books = new Map<string, DigestBook>();
  for (const name of names) if (name !== gone) books.set(name, await readBook(paths, name));
  const still = new Map<string, Array<[rel: string, sha256: string]>>();
  for (const [name, book] of books) {
    const root = path.join(paths.releases, name);
    const ok = await mapLimit([...book], AT_ONCE, async ([rel, line]) => {
      const st = await lstat(path.join(root, rel)).catch(() => undefined);
      const sha256 = line.slice(line.indexOf(' ') + 1);
      return st && bookHas(book, rel, st, sha256) ? ([rel, sha256] as [string, string]) : undefined;
    });
    still.set(
      name,
      ok.filter((e) => e !== undefined),
    );
  }
  await remove();
  for (const [name, entries] of still) {
    const root = path.join(paths.releases, name);
    const book: DigestBook = new Map();
    const before = books.get(name)!;
    if (!before.size) continue;
    await mapLimit(entries, AT_ONCE, async ([rel, sha256]) => {
      const st = await lstat(path.join(root, rel)).catch(() => undefined);
      const was = before.get(rel)!.split(':');
      if (st?.isFile() && `${st.ino}` === was[0] && `${st.size}` === was[1] && `${st.mtimeMs}` === was[2])
        book.set(rel, `${stampOf(st)} ${sha256}`);
    });
    await writeBook(paths, name, book);
  }
}
