// The local side of an upload (lib/stages/upload/files.ts): every regular file of the folder with
// its size, sorted; links inside it read through, links out of it, to folders, broken ones and
// special files skipped with a warning; the source folder checked first.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkError } from '../../../../lib/core/errors.ts';
import { checkSourceFolder, isInside, listLocalFiles } from '../../../../lib/stages/upload/files.ts';
import { runCommand, tmpDir } from '../../../_helpers/common.ts';

function collector() {
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (m: string) => void warnings.push(m) };
  return { log, warnings };
}

test('files sorted with sizes; a link inside is read through; hostile links and a FIFO skipped with a warning', async () => {
  const root = tmpDir('shipkit-files-');
  const site = path.join(root, 'site');
  mkdirSync(path.join(site, 'img'), { recursive: true });
  writeFileSync(path.join(site, 'index.html'), '<h1>hi</h1>');
  writeFileSync(path.join(site, 'img', 'a b.png'), 'png');
  symlinkSync('index.html', path.join(site, 'home.html'));
  symlinkSync('/etc/passwd', path.join(site, 'passwd'));
  symlinkSync('img', path.join(site, 'images'));
  symlinkSync('missing', path.join(site, 'broken'));
  await runCommand('mkfifo', [path.join(site, 'pipe')]);
  const { log, warnings } = collector();
  const files = await listLocalFiles(site, log);
  assert.equal(
    files.map((f) => [f.rel, f.size]),
    [
      ['home.html', 11],
      ['img/a b.png', 3],
      ['index.html', 11],
    ],
  );
  assert.is(files[0].abs, path.join(site, 'index.html'), 'read through the link');
  assert.equal(warnings.sort(), [
    'skipping broken: broken symbolic link',
    'skipping images: symbolic link to a folder (not followed)',
    'skipping passwd: symbolic link to /etc/passwd, outside the source folder (not followed)',
    'skipping pipe: not a regular file',
  ]);
});

test('isInside: the root itself and below, never a sibling with the same prefix', () => {
  assert.ok(isInside('/srv/site', '/srv/site'));
  assert.ok(isInside('/srv/site', '/srv/site/a/b'));
  assert.not.ok(isInside('/srv/site', '/srv/site2/a'));
  assert.not.ok(isInside('/srv/site', '/srv'));
  assert.ok(isInside('/', '/etc'));
});

test('checkSourceFolder: missing or a file is a WorkError saying what to do', async () => {
  const root = tmpDir('shipkit-files-');
  writeFileSync(path.join(root, 'file'), 'x');
  await checkSourceFolder(root);
  for (const [dir, message] of [
    [path.join(root, 'missing'), /does not exist; build it first/],
    [path.join(root, 'file'), /is not a folder/],
  ] as const) {
    const error = await checkSourceFolder(dir).catch((e: unknown) => e);
    assert.instance(error, WorkError);
    assert.match(String(error), message);
  }
});

test.run();
