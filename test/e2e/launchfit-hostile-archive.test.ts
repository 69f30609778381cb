// @deno
// Hostile release archives (validly signed: the content is the attack) and failing hooks
// against a running `launchfit run`: refused, and the running app and `current` untouched.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import { makeBomb, makeTarGz } from '../fixtures/launchfit/tarball.ts';
import { appEntries, expectRefused, serveSignedTarball, serveStaged, setUp, stage11, tearDown, w } from '../fixtures/launchfit/hostile.ts';

test.before(setUp);
test.after(tearDown);

const hostileTarballs: Array<[string, Buffer, RegExp]> = [
  ['a ../ entry', makeTarGz(appEntries([{ path: 'app/../../evil.txt', body: 'x' }])), /contains "\.\."/],
  ['an absolute path', makeTarGz(appEntries([{ path: '/tmp/evil.txt', body: 'x' }])), /is an absolute path/],
  ['a symlink out of the folder', makeTarGz(appEntries([{ path: 'app/etc', type: 'symlink', linkpath: '../../../../etc' }])), /outside the release/],
  ['a hardlink out of the folder', makeTarGz(appEntries([{ path: 'app/passwd', type: 'hardlink', linkpath: '../../etc/passwd' }])), /outside the release/],
  ['a device file', makeTarGz(appEntries([{ path: 'app/null', type: 'chardev' }])), /CharacterDevice entry/],
  ['a decompression bomb', makeBomb(64), /inflates more than 200 times/],
];
for (const [label, tgz, pattern] of hostileTarballs) {
  test(`a signed tarball with ${label}`, async () => {
    await serveSignedTarball(tgz);
    await expectRefused(pattern);
  });
}

test('a failing before_symlink hook aborts the update; the app is untouched', async () => {
  const stage = await stage11();
  serveStaged(stage);
  const yml = readFileSync(path.join(w.deploy, 'launchify.yml'), 'utf8');
  writeFileSync(path.join(w.deploy, 'launchify.yml'), `${yml}hooks:\n  before_symlink: "echo migrating; exit 7"\n`);
  try {
    await expectRefused(/hooks\.before_symlink .* exited with 7; the update was aborted/);
  } finally {
    writeFileSync(path.join(w.deploy, 'launchify.yml'), yml);
  }
});

test('a before_symlink hook that hangs is killed after hooks.timeout; the app is untouched', async () => {
  const stage = await stage11();
  serveStaged(stage);
  const yml = readFileSync(path.join(w.deploy, 'launchify.yml'), 'utf8');
  writeFileSync(path.join(w.deploy, 'launchify.yml'), `${yml}hooks:\n  before_symlink: "sleep 30"\n  timeout: 1\n`);
  try {
    await expectRefused(/hooks\.before_symlink "sleep 30" did not finish within hooks\.timeout \(1 s\) and was killed/);
  } finally {
    writeFileSync(path.join(w.deploy, 'launchify.yml'), yml);
  }
});

test.run();
