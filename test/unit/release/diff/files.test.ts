// release diff's files (lib/release/diff/files.ts): real tarballs packed as `release publish`
// packs them, read in memory (each file hashed, the root's package-lock.json kept, caps held,
// garbage refused), and two manifests compared: content, mode, type, link target, sizes.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../../lib/core/errors.ts';
import {
  compareManifests,
  DEFAULT_TAR_LIMITS,
  entryPath,
  manifestOfTarball,
  type ReleaseFile,
} from '../../../../lib/release/diff/files.ts';
import { packReproducible } from '../../../../lib/release/publish/pack.ts';
import { tmpDir } from '../../../_helpers/common.ts';

let base: string;
test.before(() => {
  base = tmpDir('shipkit-diff-files-');
});

/** A folder of `files` (a value `-> T` is a symlink to T), packed; the tarball's bytes. */
async function packed(files: Record<string, string>, executable: string[] = []): Promise<Buffer> {
  const dir = path.join(base, `src-${Math.random().toString(36).slice(2, 8)}`);
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    if (text.startsWith('-> ')) symlinkSync(text.slice(3), file);
    else writeFileSync(file, text);
  }
  for (const name of executable) chmodSync(path.join(dir, name), 0o755);
  const out = `${dir}.tar.gz`;
  await packReproducible(dir, out);
  return readFileSync(out);
}

/** The bytes in pieces of 100, as a stream would hand them over. */
function* chunksOf(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += 100) yield bytes.subarray(at, at + 100);
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

test('entryPath: ./ and trailing slashes dropped', () => {
  for (const [raw, want] of [
    ['./a/b/', 'a/b'],
    ['a', 'a'],
    ['././x', 'x'],
    ['./', '.'],
  ])
    assert.is(entryPath(raw), want, raw);
});

test('manifestOfTarball: every entry with its type, mode, size and sha256; the root lock kept', async () => {
  const lock = '{"lockfileVersion":3,"packages":{}}';
  const m = await manifestOfTarball(
    chunksOf(
      await packed({ 'a.txt': 'hello', 'bin/run': '#!/bin/sh\n', link: '-> a.txt', 'package-lock.json': lock }, [
        'bin/run',
      ]),
    ),
    'test.tar.gz',
  );
  const files = Object.fromEntries([...m.files].map(([k, f]) => [k, [f.type, f.mode, f.size, f.sha256, f.target]]));
  assert.equal(files, {
    'a.txt': ['file', '644', 5, sha('hello'), null],
    bin: ['dir', '755', 0, null, null],
    'bin/run': ['file', '755', 10, sha('#!/bin/sh\n'), null],
    link: ['symlink', files.link[1], 0, null, 'a.txt'],
    'package-lock.json': ['file', '644', lock.length, sha(lock), null],
  });
  assert.is(m.packageLock?.toString(), lock);
  assert.is(m.packageLockProblem, undefined);
});

test('manifestOfTarball: a lock only in a subfolder is not the release lock; a lock over the cap is named', async () => {
  const nested = await manifestOfTarball([await packed({ 'sub/package-lock.json': '{}' })], 't');
  assert.is(nested.packageLock, undefined);
  const big = await manifestOfTarball([await packed({ 'package-lock.json': 'x'.repeat(100) })], 't', {
    ...DEFAULT_TAR_LIMITS,
    maxLockBytes: 10,
  });
  assert.is(big.packageLock, undefined);
  assert.match(big.packageLockProblem ?? '', /package-lock\.json is 100 bytes, more than the 10 compared/);
  assert.is(big.files.get('package-lock.json')?.sha256, sha('x'.repeat(100)), 'still hashed');
});

test('manifestOfTarball: more entries or unpacked bytes than allowed stop it with ValidationError', async () => {
  const tarball = await packed({ a: '1', b: '2', c: '3' });
  for (const limits of [
    { ...DEFAULT_TAR_LIMITS, maxEntries: 2 },
    { ...DEFAULT_TAR_LIMITS, maxUnpackedBytes: 2 },
  ]) {
    const error = await manifestOfTarball([tarball], 'big.tar.gz', limits).catch((e) => e);
    assert.instance(error, ValidationError);
    assert.match(error.message, /big\.tar\.gz holds more than/);
  }
});

test('manifestOfTarball: bytes that are not a tar.gz, or one cut short, are refused', async () => {
  const good = await packed({ a: 'x'.repeat(5000) });
  for (const [label, bytes] of [
    ['garbage', Buffer.from('not a tarball at all, not even close'.repeat(20))],
    ['cut short', good.subarray(0, Math.floor(good.length / 2))],
    ['empty', Buffer.alloc(0)],
  ] as const) {
    const error = await manifestOfTarball([bytes], 'x.tar.gz').catch((e) => e);
    assert.instance(error, ValidationError, label);
    assert.match(error.message, /x\.tar\.gz is not a readable tar\.gz/, label);
  }
});

const f = (p: string, extra: Partial<ReleaseFile> = {}): ReleaseFile => ({
  path: p,
  type: 'file',
  mode: '644',
  size: 10,
  sha256: 'a'.repeat(64),
  target: null,
  ...extra,
});
const map = (...files: ReleaseFile[]) => new Map(files.map((x) => [x.path, x]));

test('compareManifests: content, mode, type and link target each count as a change; folders only when changed', () => {
  const before = map(
    f('same'),
    f('content'),
    f('mode'),
    f('type'),
    f('link', { type: 'symlink', size: 0, sha256: null, target: 'a' }),
    f('gone'),
    f('olddir', { type: 'dir', mode: '755', size: 0, sha256: null }),
    f('dir', { type: 'dir', mode: '755', size: 0, sha256: null }),
  );
  const after = map(
    f('same'),
    f('content', { sha256: 'b'.repeat(64), size: 25 }),
    f('mode', { mode: '755' }),
    f('type', { type: 'dir', mode: '755', size: 0, sha256: null }),
    f('link', { type: 'symlink', size: 0, sha256: null, target: 'b' }),
    f('new', { size: 7 }),
    f('newdir', { type: 'dir', mode: '755', size: 0, sha256: null }),
    f('dir', { type: 'dir', mode: '700', size: 0, sha256: null }),
  );
  const d = compareManifests(before, after);
  assert.equal(
    d.added.map((x) => x.path),
    ['new'],
  );
  assert.equal(
    d.removed.map((x) => x.path),
    ['gone'],
  );
  assert.equal(
    d.changed.map((c) => [c.path, c.changes, c.sizeChange]),
    [
      ['content', ['content'], 15],
      ['dir', ['mode'], 0],
      ['link', ['target'], 0],
      ['mode', ['mode'], 0],
      ['type', ['type', 'mode'], -10],
    ],
  );
  assert.equal(d.total, { from: { files: 6, bytes: 50 }, to: { files: 5, bytes: 52 } });
});

test.run();
