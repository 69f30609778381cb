// A release tarball in gzip members and its index (lib/release/publish/pack.ts, lib/release/format/pack-index.ts):
// each member, cut out of the file by the index alone, gunzips into whole tar entries, the ones the
// index names; the whole file is still one archive to GNU tar; and an index that would lead a host
// astray (gaps, overlaps, another tarball, paths out of the release) is refused.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VerificationError } from '../../../../lib/core/errors.ts';
import {
  formatPackIndex,
  indexFileName,
  parsePackIndex,
  type PackIndex,
} from '../../../../lib/release/format/pack-index.ts';
import { packReproducible } from '../../../../lib/release/publish/pack.ts';
import { runCommand, tmpDir } from '../../../_helpers/common.ts';

const root = tmpDir('shipkit-pack-index-');
const LONG = `${'deep/'.repeat(30)}name-longer-than-a-ustar-header-holds.js`;

/** An app under one top folder: small files, two large ones, a path only pax can hold. */
function app(): string {
  const dir = path.join(root, 'src');
  const top = path.join(dir, 'my-app');
  mkdirSync(path.join(top, path.dirname(LONG)), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(path.join(top, `m${i}.js`), randomBytes(3000).toString('hex'));
  writeFileSync(path.join(top, 'big.bin'), randomBytes(200_000));
  writeFileSync(path.join(top, 'big2.bin'), randomBytes(40_000));
  writeFileSync(path.join(top, LONG), 'module.exports = 1;\n');
  return dir;
}

/** The entry names GNU tar lists in `tar` bytes (one member's, gunzipped). */
async function namesIn(bytes: Buffer): Promise<string[]> {
  const file = path.join(root, `member-${Math.random().toString(36).slice(2)}.tar`);
  writeFileSync(file, bytes);
  const r = await runCommand('tar', ['-tf', file]);
  assert.is(r.exitCode, 0, r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean);
}

test('each member gunzips alone into the whole entries the index names; GNU tar reads the file as one archive', async () => {
  const out = path.join(root, 'my-app-gnu-linux-1.0.tar.gz');
  const layout = await packReproducible(app(), out);
  const file = readFileSync(out);
  assert.is(layout.root, 'my-app');
  assert.ok(layout.members.length > 3, `${layout.members.length} members`);
  let at = 0;
  for (const m of layout.members) {
    assert.is(m.at, at, 'members follow one another');
    at += m.bytes;
    const names = (await namesIn(gunzipSync(file.subarray(m.at, m.at + m.bytes)))).map((n) => n.replace(/\/$/, ''));
    assert.equal(names, m.paths);
  }
  assert.is(at, file.length, 'the members cover the file');
  const bigs = layout.members.filter((m) => m.paths.some((p) => p.endsWith('.bin')));
  assert.equal(
    bigs.map((m) => m.paths),
    [['my-app/big.bin'], ['my-app/big2.bin']],
    'a large file has a member of its own',
  );
  assert.ok(
    layout.members.some((m) => m.paths.includes(`my-app/${LONG}`)),
    'the pax-named entry is in a member',
  );
  const all = (await runCommand('tar', ['-tzf', out])).stdout.trim().split('\n');
  assert.equal(
    all.map((n) => n.replace(/\/$/, '')),
    layout.members.flatMap((m) => m.paths),
  );
});

const index = (over: Partial<PackIndex> = {}): PackIndex => ({
  tarball: 'a-linux-1.0.tar.gz',
  size: 300,
  root: '',
  members: [
    { at: 0, bytes: 100, paths: ['lib', 'lib/a.js'] },
    { at: 100, bytes: 200, paths: ['big.bin'] },
  ],
  ...over,
});
const expect = { tarball: 'a-linux-1.0.tar.gz', size: 300 };

test('an index reads back as written, named after its tarball', () => {
  assert.equal(parsePackIndex(formatPackIndex(index()), expect), index());
  assert.is(indexFileName('a-linux-1.0.tar.gz'), 'a-linux-1.0.index');
});

test('an index that would lead a host astray is refused, saying why', () => {
  const refused = (text: string, why: RegExp) => {
    const error = (() => {
      try {
        parsePackIndex(text, expect);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof VerificationError, `refused: ${text}`);
    assert.match((error as Error).message, why);
  };
  const members = index().members;
  refused('{not json', /is not JSON/);
  refused(JSON.stringify({ ...index(), format: 'other 1' }), /is not a "shipkit-pack-index 1" index/);
  refused(formatPackIndex(index({ tarball: 'a-linux-0.9.tar.gz' })), /is for "a-linux-0\.9\.tar\.gz"/);
  refused(formatPackIndex(index({ size: 299 })), /is for 299 bytes, not the 300/);
  refused(
    formatPackIndex(index({ members: [members[0]!, { ...members[1]!, at: 90 }] })),
    /at 90 where one should start at 100/,
  );
  refused(formatPackIndex(index({ members: [members[0]!, { ...members[1]!, at: 110, bytes: 190 }] })), /at 110/);
  refused(formatPackIndex(index({ members: [members[0]!] })), /covers 100 bytes of the 300/);
  refused(formatPackIndex(index({ members: [members[0]!, { ...members[1]!, paths: ['lib/a.js'] }] })), /twice/);
  refused(
    formatPackIndex(index({ members: [members[0]!, { ...members[1]!, paths: ['../escape'] }] })),
    /bad path "\.\.\/escape"/,
  );
  refused(
    formatPackIndex(index({ members: [members[0]!, { ...members[1]!, paths: ['/etc/passwd'] }] })),
    /bad path "\/etc\/passwd": it is an absolute/,
  );
  refused(formatPackIndex(index({ root: 'a/b' })), /bad top-level folder/);
  refused(formatPackIndex(index({ members: [members[0]!, { ...members[1]!, bytes: -200 }] })), /without at, bytes/);
});

test.run();
