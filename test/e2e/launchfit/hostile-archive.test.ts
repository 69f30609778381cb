// @deno
// Hostile release archives (validly signed: the content is the attack) and failing hooks
// against a running `launchfit run`: refused, and the running app and `current` untouched.
import { copyFileSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $ } from '../../../lib/core/shell.ts';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { tmpDir } from '../../_helpers/common.ts';
import { APP_SOURCE, appYml, askApp, currentOf } from '../../fixtures/launchfit/world.ts';
import { makeBomb, makeTarGz } from '../../fixtures/launchfit/tarball.ts';
import {
  appEntries,
  expectRefused,
  rememberAppPid,
  serveSignedTarball,
  status,
  serveStaged,
  setUp,
  stage11,
  tearDown,
  w,
} from '../../fixtures/launchfit/hostile.ts';

test.before(setUp);
test.after(tearDown);

const hostileTarballs: Array<[string, Buffer, RegExp]> = [
  ['a ../ entry', makeTarGz(appEntries([{ path: 'app/../../evil.txt', body: 'x' }])), /contains "\.\."/],
  ['an absolute path', makeTarGz(appEntries([{ path: '/tmp/evil.txt', body: 'x' }])), /is an absolute path/],
  [
    'a symlink out of the folder',
    makeTarGz(appEntries([{ path: 'app/etc', type: 'symlink', linkpath: '../../../../etc' }])),
    /outside the release/,
  ],
  [
    'a hardlink out of the folder',
    makeTarGz(appEntries([{ path: 'app/passwd', type: 'hardlink', linkpath: '../../etc/passwd' }])),
    /outside the release/,
  ],
  ['a device file', makeTarGz(appEntries([{ path: 'app/null', type: 'chardev' }])), /CharacterDevice entry/],
  ['a decompression bomb', makeBomb(64), /inflates more than 200 times/],
];
for (const [label, tgz, pattern] of hostileTarballs) {
  test(`a signed tarball with ${label}`, async () => {
    await serveSignedTarball(tgz);
    await expectRefused(pattern);
  });
}

/**
 * The test app in `app/` plus the symlinks `links` (path → target), packed by the system tar in
 * the order given (each link before the one it points to, so extraction meets them that way).
 */
async function tarWithLinks(links: Array<[string, string]>): Promise<Buffer> {
  const dir = tmpDir('shipkit-links-');
  const entries = ['app', 'app/server.cjs', 'app/version.txt', 'app/launchify.yml'];
  mkdirSync(path.join(dir, 'app'));
  copyFileSync(APP_SOURCE, path.join(dir, 'app/server.cjs'));
  writeFileSync(path.join(dir, 'app/version.txt'), '1.1\n');
  writeFileSync(path.join(dir, 'app/launchify.yml'), appYml());
  for (const [link, target] of links) {
    const parts = path
      .dirname(link)
      .split('/')
      .filter((p) => p !== '.');
    for (let i = 1; i <= parts.length; i++)
      if (!entries.includes(`app/${parts.slice(0, i).join('/')}`)) entries.push(`app/${parts.slice(0, i).join('/')}`);
    mkdirSync(path.dirname(path.join(dir, 'app', link)), { recursive: true });
    symlinkSync(target, path.join(dir, 'app', link));
    entries.push(`app/${link}`);
  }
  await $({ cwd: dir, quiet: true })`tar -czf app.tar.gz --no-recursion ${entries}`;
  return readFileSync(path.join(dir, 'app.tar.gz'));
}

const DEEP = 'c/'.repeat(20);

test('a symlink chain that reads as inside but resolves outside on disk', async () => {
  // DEEP/l points back to the release root; x = DEEP/l/../../… reads as DEEP's upper part,
  // but on disk each ".." after l climbs from the release root towards /.
  await serveSignedTarball(
    await tarWithLinks([
      [`${DEEP}l`, '../'.repeat(20)],
      ['x', `${DEEP}l/${'../'.repeat(20)}`],
    ]),
  );
  await expectRefused(/"x" links outside the release \(through "(c\/){20}l"\)/);
});

test('a symlink loop and a chain longer than the link limit', async () => {
  await serveSignedTarball(await tarWithLinks([['a', 'a']]));
  await expectRefused(/"a" is a symlink loop or a chain of more than 40 links/);
  const chain: Array<[string, string]> = [];
  for (let i = 0; i < 45; i++) chain.push([`l${i}`, i === 44 ? 'version.txt' : `l${i + 1}`]);
  await serveSignedTarball(await tarWithLinks(chain));
  await expectRefused(/"l0" is a symlink loop or a chain of more than 40 links/);
});

test('a symlink that leaves the release and comes back in (the folder is renamed after the check)', async () => {
  await serveSignedTarball(await tarWithLinks([['back', '../app/version.txt']]));
  await expectRefused(/"back" links outside the release/);
});

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

// Last: it installs 1.1.
test('relative symlinks and chains that stay inside the release are installed', async () => {
  await serveSignedTarball(
    await tarWithLinks([
      ['lib/v.txt', '../version.txt'],
      ['via-chain', `${DEEP}l/version.txt`],
      [`${DEEP}l`, '../'.repeat(20)],
      ['bin/node_modules/.bin/srv', '../../../server.cjs'],
      ['dangling', 'not-yet/there'],
    ]),
  );
  const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
  assert.is(answer!.body.ok, true, JSON.stringify(answer!.body));
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  const current = path.join(w.deploy, 'current');
  assert.is(readFileSync(path.join(current, 'lib/v.txt'), 'utf8'), '1.1\n');
  assert.is(readFileSync(path.join(current, 'via-chain'), 'utf8'), '1.1\n');
  assert.is(
    realpathSync(path.join(current, 'bin/node_modules/.bin/srv')),
    realpathSync(path.join(current, 'server.cjs')),
  );
  assert.is(await askApp(w.appPort), '1.1');
  await rememberAppPid();
  assert.ok((await status()).app.pid > 0);
});

test.run();
