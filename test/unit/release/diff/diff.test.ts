// releaseDiff (lib/release/diff/diff.ts) on releases published by the library into a temp DEST with a
// gpg-made key: versions named as the ledger spells them or not, the platform when DEST holds
// several, the source from the provenance or (file gone) the ledger, a replaced provenance, and
// a DEST without a ledger. The command's refusals are in test/e2e/release/diff.test.ts.
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { releaseDiff, type DiffOptions } from '../../../../lib/release/diff/diff.ts';
import { publishRelease } from '../../../../lib/release/publish/publish.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { makePublisher } from '../../../fixtures/launchfit/gpg.ts';

let base: string;
let secret: string;
let passFile: string;
let dest: string;
const C1 = '1'.repeat(40);
const C2 = '2'.repeat(40);

async function publish(version: string, files: Record<string, string>, platform = 'gnu-linux', commit = C1) {
  const dir = path.join(base, `src-${version}-${platform}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  await publishRelease({
    dir,
    name: 'my-app',
    platform,
    version,
    key: secret,
    passphraseFile: passFile,
    to: dest,
    log: silentLogger,
    source: { repo: 'octo/site', commit, ref: `refs/tags/v${version}` },
    env: {},
  });
}

const diff = (from: string, to: string, extra: Partial<DiffOptions> = {}) =>
  releaseDiff({ app: 'my-app', from, to, dest, cwd: base, log: silentLogger, ...extra });

test.before(async () => {
  base = tmpDir('shipkit-diff-');
  ({ secret, passFile } = await makePublisher(base, 'pw'));
  dest = path.join(base, 'dest');
  await publish('1.0', { 'a.txt': 'one', 'old.txt': 'old' });
  await publish('1.1', { 'a.txt': 'one, two', 'new.txt': 'new' }, 'gnu-linux', C2);
});

test('a diff from V1 to V2, and back; 1.0.0 names the release published as 1.0', async () => {
  const d = await diff('1.0.0', '1.1');
  assert.equal([d.from.version, d.from.n, d.to.version, d.to.n], ['1.0', 1, '1.1', 2]);
  assert.equal([d.from.commit, d.to.commit, d.from.sourceFrom], [C1, C2, 'provenance']);
  assert.equal(
    [d.files.added.map((f) => f.path), d.files.removed.map((f) => f.path), d.files.changed.map((c) => c.path)],
    [['new.txt'], ['old.txt'], ['a.txt']],
  );
  assert.is(d.files.changed[0].sizeChange, 5);
  assert.equal([d.dependencies, d.dependenciesNote], [null, 'neither release has package-lock.json at its root']);
  assert.equal(d.commits, null, 'base is no checkout of octo/site');
  const back = await diff('1.1', '1.0');
  assert.equal(
    [back.files.added.map((f) => f.path), back.files.removed.map((f) => f.path)],
    [['old.txt'], ['new.txt']],
  );
});

test('the provenance file gone: the source is the ledger entry, and said so', async () => {
  const file = path.join(dest, 'my-app-gnu-linux-1.0.intoto.jsonl');
  const kept = path.join(base, 'kept.intoto.jsonl');
  copyFileSync(file, kept);
  rmSync(file);
  try {
    const d = await diff('1.0', '1.1');
    assert.equal([d.from.sourceFrom, d.from.commit, d.from.repo], ['ledger', C1, 'octo/site']);
    // Another release's provenance in its place: its digest is not the one the ledger records.
    copyFileSync(path.join(dest, 'my-app-gnu-linux-1.1.intoto.jsonl'), file);
    const error = await diff('1.0', '1.1').catch((e) => e);
    assert.match(
      error.message,
      /^ledger entry 1: names my-app-gnu-linux-1\.0\.intoto\.jsonl with sha256 [0-9a-f]{64}, but/,
    );
  } finally {
    copyFileSync(kept, file);
  }
});

test('several platforms of a version: --platform chooses, otherwise they are named', async () => {
  await publish('1.2', { 'a.txt': 'arm' }, 'gnu-linux-arm64');
  await publish('1.3', { 'a.txt': 'x86' }, 'gnu-linux');
  // 1.3 of gnu-linux-arm64 too: DEST now holds 1.3 for both platforms.
  const arm = path.join(base, 'arm-1.3.tar.gz');
  copyFileSync(path.join(dest, 'my-app-gnu-linux-1.3.tar.gz'), arm);
  copyFileSync(arm, path.join(dest, 'my-app-gnu-linux-arm64-1.3.tar.gz'));
  const error = await diff('1.1', '1.3').catch((e) => e);
  assert.match(
    error.message,
    /holds my-app-gnu-linux-1\.3\.tar\.gz and my-app-gnu-linux-arm64-1\.3\.tar\.gz; choose the platform with --platform/,
  );
  const d = await diff('1.1', '1.3', { platform: 'gnu-linux' });
  assert.is(d.to.file, 'my-app-gnu-linux-1.3.tar.gz');
  const gone = await diff('1.1', '1.2', { platform: 'gnu-linux' }).catch((e) => e);
  assert.match(gone.message, /The tarball of my-app 1\.2 \(my-app-gnu-linux-V\.tar\.gz\) is no longer at/);
  rmSync(path.join(dest, 'my-app-gnu-linux-arm64-1.3.tar.gz'));
});

test('a DEST without a ledger has nothing to compare', async () => {
  const empty = path.join(base, 'empty');
  mkdirSync(empty);
  copyFileSync(path.join(dest, 'keys.asc'), path.join(empty, 'keys.asc'));
  const error = await releaseDiff({
    app: 'my-app',
    from: '1.0',
    to: '1.1',
    dest: empty,
    cwd: base,
    log: silentLogger,
  }).catch((e) => e);
  assert.match(error.message, /has no ledger \(ledger\.jsonl\)/);
});

test.run();
