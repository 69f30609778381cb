// @deno
// Trust in a pinned key, against the real `launchfit`. The release key is a
// certify-only primary P with a signing subkey S, made by gpg; hosts pin S. An attacker who
// controls the update server serves their own key A with S's public subkey packet and P's
// binding signature grafted on, and signs a release with A: nothing is installed, neither by a
// running launchfit nor on a first deploy. Text-mode and two-signer signature files that gpgv
// accepts are installed; idle polls ask for VERSION alone and keys.asc (conditionally) only once
// VERSION changed; a keybox as keyfile is a
// clear configuration error. Interop with the gpg CLI: a subkey added with
// `gpg --quick-add-key` signs releases a host pinned to the primary installs, with no change on
// the host; once revoked with `gpg --edit-key` (`key N`, `revkey`), its releases are refused.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { runCommand, runScript, tmpDir, waitFor } from '../../_helpers/common.ts';
import {
  addSigningSubkey,
  exportPublic,
  exportSecret,
  genKey,
  graftSubkey,
  revokeSubkeyWithGpg,
  type TestKey,
} from '../../fixtures/launchfit/gpg.ts';
import {
  askApp,
  currentOf,
  makeWorld,
  startLaunchfit,
  statusOf,
  type Launchfit,
  type World,
} from '../../fixtures/launchfit/world.ts';

const PASS = 'correct horse';
let w: World;
let release: TestKey;
let releaseSecret: string;
let releaseAsc: string;
let pinned: string;
let lf: Launchfit | undefined;

const fresh = (name: string) => {
  const dir = path.join(w.base, name);
  mkdirSync(dir);
  return dir;
};
const leftEmpty = (dir: string) => readdirSync(dir).filter((n) => n !== '.launchfit').length === 0;
const publishAs = (secret: string, version: string, to: string) =>
  publishRelease({
    dir: w.makeApp(version),
    name: 'my-app',
    platform: 'gnu-linux',
    version,
    key: secret,
    passphraseFile: w.passFile,
    to,
    log: silentLogger,
  });
/** Make the update server offer exactly the files in `dir`. */
const serveFolder = (dir: string) => {
  for (const name of readdirSync(w.updates)) rmSync(path.join(w.updates, name), { force: true });
  cpSync(dir, w.updates, { recursive: true });
};
const updateNow = async () =>
  (await requestOverSocket(path.join(pinned, '.launchfit/control.sock'), 'POST', '/update'))!.body;

test.before(async () => {
  w = await makeWorld();
  release = await genKey(w.g, 'Release <release@example.com>', { usage: 'cert', passphrase: PASS });
  await addSigningSubkey(w.g, release, { passphrase: PASS });
  releaseSecret = await exportSecret(w.g, release.fpr, path.join(w.base, 'release-secret.asc'), PASS);
  releaseAsc = readFileSync(await exportPublic(w.g, release.fpr, path.join(w.base, 'release.asc')), 'utf8');
  await publishAs(releaseSecret, '1.0', w.updates);
  // A host pinned to the subkey S, deployed and running.
  pinned = fresh('pinned');
  writeFileSync(
    path.join(pinned, 'launchify.yml'),
    `app:\n  env:\n    PORT: ${w.appPort}\nupdates:\n  server: ${w.server.url}\n  interval: 3600\n  gpg:\n    key: "${release.subFpr}"\n`,
  );
  const r = await runScript('launchfit', ['deploy', '--dir', pinned]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(pinned);
  await waitFor(async () => (await askApp(w.appPort)) === '1.0', { timeoutMs: 60_000, what: 'the app answering 1.0' });
});
test.after(async () => {
  await lf?.stop();
  await w.server.close();
});

test('`launchfit URL --key SUBKEY` installs the release the subkey signed', async () => {
  const dir = fresh('first-genuine');
  const r = await runScript('launchfit', [w.server.url, '--key', release.subFpr!, '--dir', dir]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(currentOf(dir), 'releases/my-app-gnu-linux-1.0');
  assert.match(r.stderr, new RegExp(`key=${release.subFpr!.toLowerCase()}`), 'the log names the subkey that signed');
});

test("a pinned subkey grafted onto the attacker's key: a running launchfit and a first deploy install nothing", async () => {
  const genuine = tmpDir('shipkit-genuine-');
  cpSync(w.updates, genuine, { recursive: true });
  const attacker = await genKey(w.g, 'Mallory <mallory@example.com>', { passphrase: PASS });
  const attackerSecret = await exportSecret(w.g, attacker.fpr, path.join(w.base, 'mallory-secret.asc'), PASS);
  const attackerAsc = readFileSync(await exportPublic(w.g, attacker.fpr, path.join(w.base, 'mallory.asc')), 'utf8');
  const evil = tmpDir('shipkit-evil-');
  await publishAs(attackerSecret, '2.0', evil); // VERSION, VERSION.sig, tarball and .sig, all by A
  const grafted = await graftSubkey(releaseAsc, attackerAsc, release.subFpr!);
  writeFileSync(path.join(evil, 'keys.asc'), grafted);
  writeFileSync(path.join(evil, 'pubkey.asc'), grafted);
  serveFolder(evil);
  try {
    const pidBefore = (await statusOf(pinned)).app.pid;
    const answer = await updateNow();
    assert.is(answer.ok, false, JSON.stringify(answer));
    assert.match(
      answer.error!,
      new RegExp(`made by key ${attacker.fpr.slice(-16).toLowerCase()}, which is not trusted`),
    );
    assert.is(currentOf(pinned), 'releases/my-app-gnu-linux-1.0');
    assert.equal(readdirSync(path.join(pinned, 'releases')), ['my-app-gnu-linux-1.0']);
    assert.is(await askApp(w.appPort), '1.0');
    const status = await statusOf(pinned);
    assert.is(status.app.pid, pidBefore, 'the running app was not touched');
    assert.is(status.lastCheck.ok, false);

    const dir = fresh('first-grafted');
    const r = await runScript('launchfit', [w.server.url, '--key', release.subFpr!, '--dir', dir]);
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /which is not trusted/);
    assert.not.ok(existsSync(path.join(dir, 'current')));
    assert.ok(leftEmpty(dir), 'nothing installed and launchify.yml taken back');
  } finally {
    serveFolder(genuine);
  }
});

test('text-mode and two-signer signature files that gpgv accepts are installed', async () => {
  const stage = tmpDir('shipkit-stage-');
  cpSync(w.updates, stage, { recursive: true }); // so its SEQ follows the server's
  const { file } = await publishAs(releaseSecret, '1.1', stage);
  const stranger = await genKey(w.g, 'Stranger <stranger@example.com>', { passphrase: PASS });
  const sign = (args: string[], out: string, input: string) =>
    w.g.gpg('--passphrase', PASS, '--yes', ...args, '--output', out, '--detach-sign', input);
  // The tarball (binary, so NUL and CR bytes) signed in text mode; VERSION signed by a stranger and by S.
  await sign(
    ['--local-user', `${release.subFpr}!`, '--textmode'],
    path.join(stage, `${file}.sig`),
    path.join(stage, file),
  );
  await sign(
    ['--local-user', `${stranger.fpr}!`, '--local-user', `${release.subFpr}!`],
    path.join(stage, 'VERSION.sig'),
    path.join(stage, 'VERSION'),
  );
  // gpgv, given the release key only, accepts both (for VERSION.sig it also says it cannot check the stranger).
  const keyring = await exportPublic(w.g, release.fpr, path.join(w.base, 'release.gpg'), false);
  const textMode = await runCommand('gpgv', [
    '--keyring',
    keyring,
    path.join(stage, `${file}.sig`),
    path.join(stage, file),
  ]);
  assert.is(textMode.exitCode, 0, textMode.stderr);
  const twoSigners = await runCommand('gpgv', [
    '--keyring',
    keyring,
    path.join(stage, 'VERSION.sig'),
    path.join(stage, 'VERSION'),
  ]);
  assert.match(twoSigners.stderr, /Good signature from "Release/);
  serveFolder(stage);
  const answer = await updateNow();
  assert.is(answer.ok, true, JSON.stringify(answer));
  assert.is(currentOf(pinned), 'releases/my-app-gnu-linux-1.1');
  assert.is(await askApp(w.appPort), '1.1');
});

test('idle polls are one conditional VERSION request; keys.asc is asked, conditionally, once VERSION changes', async () => {
  await updateNow(); // the key the server has now has been fetched once
  await lf!.stop();
  lf = await startLaunchfit(pinned, { LAUNCHFIT_INTERVAL_MS: '200' });
  let mark = w.server.requests.length;
  const since = () => w.server.requests.slice(mark);
  await waitFor(() => since().filter((q) => q.path === 'VERSION').length >= 4, {
    timeoutMs: 60_000,
    what: 'four idle polls',
  });
  const idle = since();
  assert.ok(idle.filter((q) => q.path === 'VERSION').length >= 4, `polls ran (${idle.length} requests)`);
  assert.equal(
    [...new Set(idle.map((q) => `${q.path} ${q.status}`))],
    ['VERSION 304'],
    'an idle poll asks for VERSION alone, and gets 304',
  );
  mark = w.server.requests.length;
  await publishAs(releaseSecret, '1.1.1', w.updates);
  await waitFor(() => currentOf(pinned) === 'releases/my-app-gnu-linux-1.1.1', {
    timeoutMs: 60_000,
    what: 'the poll installing 1.1.1',
  });
  assert.is(currentOf(pinned), 'releases/my-app-gnu-linux-1.1.1');
  const keys = since().filter((q) => q.path === 'keys.asc');
  assert.ok(keys.length >= 1, 'keys.asc was asked once VERSION changed');
  // Conditional (the copy it holds is named); publishing rewrote the file, so the server may send it again.
  assert.ok(
    keys.every((q) => q.ifNoneMatch),
    `sent with If-None-Match: ${JSON.stringify(keys)}`,
  );
});

test('a GnuPG keybox given as keyfile: exit 2, a clear message, nothing written', async () => {
  const dir = fresh('keybox');
  const r = await runScript('launchfit', [w.server.url, '--keyfile', path.join(w.g.home, 'pubring.kbx'), '--dir', dir]);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    /trusted\.asc is a GnuPG keybox \(pubring\.kbx\), not an exported key; export the signing key with `gpg --armor --export FINGERPRINT > trusted\.asc`/,
  );
  assert.ok(leftEmpty(dir), 'nothing installed and launchify.yml/trusted.asc taken back');
});

test("gpg --quick-add-key: the new subkey's release is installed on a host pinned to the primary; revoked with gpg --edit-key revkey, refused", async () => {
  const host = fresh('primary-pinned');
  writeFileSync(
    path.join(host, 'launchify.yml'),
    `updates:\n  server: ${w.server.url}\n  interval: 3600\n  gpg:\n    key: "${release.fpr}"\n`,
  );
  assert.is((await runScript('launchfit', ['deploy', '--dir', host])).exitCode, 0);
  const yml = readFileSync(path.join(host, 'launchify.yml'), 'utf8');
  const pinnedSubkey = release.subFpr;
  const added = (await addSigningSubkey(w.g, release, { passphrase: PASS, expire: '1y' })).toLowerCase();
  release.subFpr = pinnedSubkey;
  const secret = await exportSecret(w.g, release.fpr, path.join(w.base, 'release-secret-2.asc'), PASS);
  const publishWithGpgKeys = async (version: string, to: string) =>
    publishRelease({
      dir: w.makeApp(version),
      name: 'my-app',
      platform: 'gnu-linux',
      version,
      key: secret,
      passphraseFile: w.passFile,
      to,
      log: silentLogger,
      keys: await exportPublic(w.g, release.fpr, path.join(w.base, 'gpg-keys.asc')),
      delta: false, // the tarball's own signature is what this test follows (a patch is vouched for by VERSION's)
    });
  const stage = tmpDir('shipkit-stage-');
  cpSync(w.updates, stage, { recursive: true }); // so its SEQ follows the server's
  await publishWithGpgKeys('1.2', stage);
  serveFolder(stage);
  const installed = await runScript('launchfit', ['update', '--dir', host]);
  assert.is(installed.exitCode, 0, installed.stderr);
  assert.match(installed.stderr, new RegExp(`signature verified.*key=${added}`));
  assert.is(currentOf(host), 'releases/my-app-gnu-linux-1.2');
  assert.is(readFileSync(path.join(host, 'launchify.yml'), 'utf8'), yml, 'nothing changed on the host');

  const signedBefore = tmpDir('shipkit-stage-');
  cpSync(w.updates, signedBefore, { recursive: true });
  await publishWithGpgKeys('1.3', signedBefore);
  await new Promise((res) => setTimeout(res, 1100)); // the revocation is dated after the signature
  await revokeSubkeyWithGpg(w.g, release.fpr, added, { reason: 1, passphrase: PASS });
  const revokedAsc = readFileSync(await exportPublic(w.g, release.fpr, path.join(w.base, 'gpg-revoked.asc')));
  writeFileSync(path.join(signedBefore, 'keys.asc'), revokedAsc);
  writeFileSync(path.join(signedBefore, 'pubkey.asc'), revokedAsc);
  serveFolder(signedBefore);
  const refused = await runScript('launchfit', ['update', '--dir', host]);
  assert.is(refused.exitCode, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`The key ${added} that signed VERSION was revoked \\(reason: compromised`));
  assert.is(currentOf(host), 'releases/my-app-gnu-linux-1.2');
});

test.run();
