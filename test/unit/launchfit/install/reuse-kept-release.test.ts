// The digest of a kept release folder (lib/launchfit/install/reuse-kept-release.ts): the same tree gives the
// same digest wherever it lies; any change a host could make (content, a file added or removed, a
// mode, a symlink's target, an empty folder) gives another. keptRelease itself runs end to end in
// test/e2e/launchfit/reuse.test.ts.
import { chmodSync, cpSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { folderDigest } from '../../../../lib/launchfit/install/reuse-kept-release.ts';
import { tmpDir } from '../../../_helpers/common.ts';

let base: string;
let n = 0;

function makeTree(): string {
  const dir = path.join(base, `tree-${++n}`);
  mkdirSync(path.join(dir, 'lib/deep'), { recursive: true });
  writeFileSync(path.join(dir, 'server.cjs'), 'console.log(1)\n');
  writeFileSync(path.join(dir, 'lib/deep/data.json'), '{"a":1}\n');
  chmodSync(path.join(dir, 'server.cjs'), 0o644);
  symlinkSync('lib/deep/data.json', path.join(dir, 'data'));
  return dir;
}

test.before(() => {
  base = tmpDir('shipkit-kept-');
});

test('the same tree gives the same digest, in another folder too', async () => {
  const a = makeTree();
  const copy = path.join(base, 'copy');
  cpSync(a, copy, { recursive: true, verbatimSymlinks: true });
  const digest = await folderDigest(a);
  assert.match(digest, /^[0-9a-f]{64}$/);
  assert.is(await folderDigest(a), digest);
  assert.is(await folderDigest(copy), digest);
});

test('every change a host could make gives another digest', async () => {
  const changes: Array<[string, (dir: string) => void]> = [
    ['content', (d) => writeFileSync(path.join(d, 'server.cjs'), 'console.log(2)\n')],
    ['a file added', (d) => writeFileSync(path.join(d, 'lib/extra.js'), '')],
    ['a file removed', (d) => rmSync(path.join(d, 'lib/deep/data.json'))],
    ['a mode', (d) => chmodSync(path.join(d, 'server.cjs'), 0o755)],
    [
      'a symlink retargeted',
      (d) => {
        unlinkSync(path.join(d, 'data'));
        symlinkSync('/etc/passwd', path.join(d, 'data'));
      },
    ],
    ['an empty folder added', (d) => mkdirSync(path.join(d, 'lib/empty'))],
    ['a file renamed', (d) => renameSync(path.join(d, 'server.cjs'), path.join(d, 'server2.cjs'))],
  ];
  const original = await folderDigest(makeTree());
  const seen = new Set([original]);
  for (const [label, change] of changes) {
    const dir = makeTree();
    change(dir);
    const digest = await folderDigest(dir);
    assert.is.not(digest, original, label);
    seen.add(digest);
  }
  assert.is(seen.size, changes.length + 1, 'each change its own digest');
});

test.run();
