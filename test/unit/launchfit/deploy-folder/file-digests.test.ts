// The digest book (lib/launchfit/deploy-folder/file-digests.ts) on real files: a file is booked
// only once its mtime is old, any write shows (a write with the mtime put back, by the ctime), a
// book that cannot be read is empty, and removing a shared hard link carries the other books.
import { lstatSync, mkdirSync, statSync, unlinkSync, utimesSync, writeFileSync, linkSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  bookDigest,
  bookFile,
  bookHas,
  carryBooks,
  readBook,
  writeBook,
  type DigestBook,
} from '../../../../lib/launchfit/deploy-folder/file-digests.ts';
import { deployPaths } from '../../../../lib/launchfit/deploy-folder/state.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const OLD = new Date('2000-01-01T00:00:00Z');
const SHA = 'a'.repeat(64);
const st = (file: string) => lstat(file);

/** A deploy folder with releases/NAME/f.txt for each name, written with an old mtime. */
function deployFolder(names: string[]) {
  const paths = deployPaths(tmpDir('shipkit-book-'));
  for (const name of names) {
    mkdirSync(path.join(paths.releases, name), { recursive: true });
    writeFileSync(path.join(paths.releases, name, 'f.txt'), `${name}\n`);
    utimesSync(path.join(paths.releases, name, 'f.txt'), OLD, OLD);
  }
  return paths;
}

test('a file is booked once its mtime is old; a write, even with the mtime put back, unbooks it', async () => {
  const paths = deployFolder(['r1']);
  const file = path.join(paths.releases, 'r1/f.txt');
  const book: DigestBook = new Map();
  writeFileSync(`${file}.new`, 'just written\n');
  bookDigest(book, 'f.txt.new', await st(`${file}.new`), SHA);
  assert.is(book.size, 0, 'a file written now is not booked');
  bookDigest(book, 'f.txt', await st(file), SHA);
  assert.ok(bookHas(book, 'f.txt', await st(file), SHA));
  assert.not.ok(bookHas(book, 'f.txt', await st(file), 'b'.repeat(64)), 'another digest');
  const before = statSync(file);
  await new Promise((r) => setTimeout(r, 20));
  writeFileSync(file, 'r2\n'); // the same size
  utimesSync(file, before.atime, before.mtime);
  assert.is(lstatSync(file).mtimeMs, before.mtimeMs);
  assert.not.ok(bookHas(book, 'f.txt', await st(file), SHA), 'the ctime moved');
});

test('a book that is missing, not JSON or of another shape reads as empty; one written reads back', async () => {
  const paths = deployFolder(['r1']);
  assert.is((await readBook(paths, 'r1')).size, 0);
  mkdirSync(paths.manifests, { recursive: true });
  for (const text of ['{not json', '[1,2]', '{"files":3}']) {
    writeFileSync(bookFile(paths, 'r1'), text);
    assert.is((await readBook(paths, 'r1')).size, 0, text);
  }
  writeFileSync(bookFile(paths, 'r1'), JSON.stringify({ files: { 'f.txt': 'x y', other: 7 } }));
  assert.equal([...(await readBook(paths, 'r1'))], [['f.txt', 'x y']], 'an entry that is not a string is left out');
  const book: DigestBook = new Map([['f.txt', '1:2:3:4 ' + SHA]]);
  await writeBook(paths, 'r1', book);
  assert.equal(await readBook(paths, 'r1'), book);
  assert.is(statSync(bookFile(paths, 'r1')).mode & 0o777, 0o600);
});

test('removing a release carries the books of those that shared its files; an entry already untrue is dropped', async () => {
  const paths = deployFolder(['r1', 'r3']);
  // r2 links r1's file (as a delta update does); r3's file is its own.
  mkdirSync(path.join(paths.releases, 'r2'));
  linkSync(path.join(paths.releases, 'r1/f.txt'), path.join(paths.releases, 'r2/f.txt'));
  const shared = path.join(paths.releases, 'r2/f.txt');
  const own = path.join(paths.releases, 'r3/f.txt');
  for (const [name, file] of [
    ['r2', shared],
    ['r3', own],
  ] as const) {
    const book: DigestBook = new Map();
    bookDigest(book, 'f.txt', await st(file), SHA);
    await writeBook(paths, name, book);
  }
  // r3's file changes before the removal (its mtime put back): that entry must not be carried.
  const before = statSync(own);
  await new Promise((r) => setTimeout(r, 20));
  writeFileSync(own, 'r9\n');
  utimesSync(own, before.atime, before.mtime);
  await new Promise((r) => setTimeout(r, 20));
  await carryBooks(paths, 'r1', ['r2', 'r3'], async () => unlinkSync(path.join(paths.releases, 'r1/f.txt')));
  const r2 = await readBook(paths, 'r2');
  assert.ok(bookHas(r2, 'f.txt', await st(shared), SHA), "r2's entry holds with the ctime the unlink gave");
  assert.is((await readBook(paths, 'r3')).size, 0, "r3's changed file is no longer booked");
});

test.run();
