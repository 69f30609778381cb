// The files way's cost estimate (lib/launchfit/install/fetch-missing-files.ts changedShare), read from two
// manifests' bytes before either is parsed: the share of the new release's file bytes the kept
// manifest has no file for, by digest and size, so a moved file costs nothing and folders and
// links count for nothing. End to end (a release all changed goes to the tarball): bench:delta (c).
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { changedShare } from '../../../../lib/launchfit/install/fetch-missing-files.ts';
import { formatManifest, type ManifestEntry } from '../../../../lib/release/format/manifest.ts';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const file = (p: string, text: string, size: number): ManifestEntry => ({
  path: p,
  type: 'file',
  mode: '644',
  size,
  sha256: sha(text),
  target: null,
});
const manifest = (entries: ManifestEntry[]) => Buffer.from(formatManifest(entries));
const dir: ManifestEntry = { path: 'lib', type: 'dir', mode: '755', size: 0, sha256: null, target: null };
const link: ManifestEntry = {
  path: 'lib/first.js',
  type: 'symlink',
  mode: '777',
  size: 0,
  sha256: null,
  target: 'a.js',
};

test('the share of bytes with no file of the same digest and size in the kept manifest', () => {
  const kept = manifest([dir, file('lib/a.js', 'a', 300), file('lib/b.js', 'b', 100), link]);
  // a.js moved (same bytes, another path), b.js changed, c.js added.
  const next = manifest([dir, file('lib/b.js', 'b2', 100), file('lib/moved.js', 'a', 300), file('lib/c.js', 'c', 600)]);
  assert.is(changedShare(next, kept), 0.7);
  assert.is(changedShare(kept, kept), 0);
  assert.is(changedShare(next, Buffer.from('')), 1, 'nothing kept: all of it');
  assert.is(changedShare(manifest([dir, link]), kept), 0, 'no file bytes: nothing to fetch');
});

test('the same digest with another size is another file', () => {
  const kept = manifest([file('x', 'x', 10)]);
  assert.is(changedShare(manifest([file('x', 'x', 11)]), kept), 1);
});

test.run();
