// @deno
// Keys that rotate and revoke (docs/design.md), against the real `release keys`,
// `release publish` and a running `launchfit run` pinned to the primary's fingerprint: a new
// subkey's release is installed with no change on the host; a revoked subkey's release (signed
// before the revocation) is refused, also when an older keys.asc is replayed; a subkey bound by
// another primary and an expired one (made by gpg) are refused; keys.asc over the cap or gone
// is a clear error while the current release keeps serving, and a ledger the revoked subkey
// signed last is refused. A keyfile host honours the server's revocation too.
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestOverSocket } from '../../../lib/launchfit/control/socket.ts';
import { MAX_KEY_BYTES } from '../../../lib/launchfit/trust/server-key.ts';
import { runScript, tmpDir } from '../../_helpers/common.ts';
import {
  addSigningSubkey,
  detachSign,
  exportPublic,
  exportSecret,
  genKey,
  graftSubkey,
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

let w: World;
let keys: string;
let primary: string;
let host: string;
let lf: Launchfit | undefined;
const subkeys: string[] = [];

const keysCli = async (...args: string[]) => {
  const r = await runScript('release', ['keys', ...args, '--passphrase-file', w.passFile, '--json']);
  assert.is(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout) as {
    primary: string;
    subkey: string;
    subkeys: Array<{ fingerprint: string; revoked: string | null; valid: boolean }>;
  };
};
/** `release publish` with KEYS/signing.asc (keys.asc beside it) into `to`. */
const publish = async (version: string, to: string, key = path.join(keys, 'signing.asc')) => {
  const r = await runScript('release', [
    'publish',
    w.makeApp(version),
    '--name',
    'my-app',
    '--platform',
    'gnu-linux',
    '--version',
    version,
    '--key',
    key,
    '--passphrase-file',
    w.passFile,
    '--to',
    to,
    '--no-delta', // the tarball's own signature is what this file follows (a patch is vouched for by VERSION's)
  ]);
  assert.is(r.exitCode, 0, r.stderr);
};
const serveFolder = (dir: string) => {
  for (const name of readdirSync(w.updates)) rmSync(path.join(w.updates, name), { force: true });
  cpSync(dir, w.updates, { recursive: true });
};
const serveKeys = (text: string | Buffer) => {
  writeFileSync(path.join(w.updates, 'keys.asc'), text);
  writeFileSync(path.join(w.updates, 'pubkey.asc'), text);
};
const updateNow = async () =>
  (await requestOverSocket(path.join(host, '.launchfit/control.sock'), 'POST', '/update'))!.body;

/** A refused check: the message, and the host exactly as it was (same release, same app process, still answering). */
async function expectRefused(pattern: RegExp, serving: string) {
  const before = await statusOf(host);
  const yml = readFileSync(path.join(host, 'launchify.yml'), 'utf8');
  const answer = await updateNow();
  assert.is(answer.ok, false, JSON.stringify(answer));
  assert.match(answer.error!, pattern);
  assert.is(currentOf(host), `releases/my-app-gnu-linux-${serving}`);
  assert.is(await askApp(w.appPort), serving, 'the current release keeps serving');
  const after = await statusOf(host);
  assert.is(after.app.pid, before.app.pid, 'the running app was not touched');
  assert.is(after.lastCheck.ok, false);
  assert.is(readFileSync(path.join(host, 'launchify.yml'), 'utf8'), yml, 'nothing changed on the host');
}

test.before(async () => {
  w = await makeWorld();
  keys = path.join(w.base, 'release-key');
  const made = await keysCli('init', '--out', keys, '--expires', '30', '--uid', 'Release <release@example.com>');
  primary = made.primary;
  subkeys.push(made.subkey);
  await publish('1.0', w.updates);
  host = path.join(w.base, 'host');
  mkdirSync(host);
  writeFileSync(
    path.join(host, 'launchify.yml'),
    `app:\n  env:\n    PORT: ${w.appPort}\nupdates:\n  server: ${w.server.url}\n  interval: 3600\n  gpg:\n    key: "${primary}"\n`,
  );
  const r = await runScript('launchfit', ['deploy', '--dir', host]);
  assert.is(r.exitCode, 0, r.stderr);
  lf = await startLaunchfit(host);
  for (let i = 0; i < 200 && (await askApp(w.appPort)) !== '1.0'; i++) await new Promise((res) => setTimeout(res, 100));
  assert.is(await askApp(w.appPort), '1.0');
});
test.after(async () => {
  await lf?.stop();
  await w.server.close();
});

test('release keys init: a certify-only primary and an expiring signing subkey, as gpg reads them', async () => {
  const listing = await w.g.gpg(
    '--import-options',
    'show-only',
    '--with-colons',
    '--import',
    path.join(keys, 'keys.asc'),
  );
  const pub = listing
    .split('\n')
    .find((l) => l.startsWith('pub:'))!
    .split(':');
  const sub = listing
    .split('\n')
    .find((l) => l.startsWith('sub:'))!
    .split(':');
  assert.is(pub[11], 'cSC', "the primary itself only certifies (capital letters are the whole key's)");
  assert.is(sub[11], 's');
  const days = (Number(sub[6]) - Number(sub[5])) / 86_400;
  assert.is(days, 30, 'the subkey expires after --expires days');
  assert.not.match(readFileSync(path.join(keys, 'keys.asc'), 'utf8'), /PRIVATE/);
  assert.match(readFileSync(path.join(keys, 'primary.asc'), 'utf8'), /PRIVATE KEY/);
  assert.ok(
    w.server.requests.some((q) => q.path === 'keys.asc' && q.status === 200),
    'the host read keys.asc',
  );
});

test('rotate: a release signed by the new subkey is installed; nothing changed on the host', async () => {
  const yml = readFileSync(path.join(host, 'launchify.yml'), 'utf8');
  const rotated = await keysCli('rotate', '--dir', keys);
  subkeys.push(rotated.subkey);
  assert.is.not(rotated.subkey, subkeys[0]);
  await publish('1.1', w.updates);
  const answer = await updateNow();
  assert.is(answer.ok, true, JSON.stringify(answer));
  assert.is(currentOf(host), 'releases/my-app-gnu-linux-1.1');
  assert.is(await askApp(w.appPort), '1.1');
  assert.is(readFileSync(path.join(host, 'launchify.yml'), 'utf8'), yml);
  assert.match(lf!.output(), new RegExp(`signature verified.*key=${rotated.subkey}`));
});

let beforeRevocation: string;
let signedBySecond: string;

test('revoke --reason compromised: a release the subkey signed before its revocation is refused', async () => {
  // Signed by the second subkey now, served only after the revocation.
  signedBySecond = tmpDir('shipkit-stage-');
  cpSync(w.updates, signedBySecond, { recursive: true }); // so its SEQ follows the server's
  await publish('1.2', signedBySecond);
  beforeRevocation = readFileSync(path.join(keys, 'keys.asc'), 'utf8');
  await new Promise((res) => setTimeout(res, 1100)); // the revocation is dated after the signature
  await keysCli('rotate', '--dir', keys);
  const revoked = await keysCli('revoke', subkeys[1], '--dir', keys, '--reason', 'compromised');
  assert.is(revoked.subkeys.find((s) => s.fingerprint === subkeys[1])!.revoked, 'compromised');
  serveFolder(signedBySecond);
  serveKeys(readFileSync(path.join(keys, 'keys.asc')));
  await expectRefused(new RegExp(`The key ${subkeys[1]} that signed .* was revoked \\(reason: compromised`), '1.1');
  const memory = JSON.parse(readFileSync(path.join(host, '.launchfit/keys.json'), 'utf8'));
  assert.is(memory.revoked[subkeys[1]].primary, primary);
});

test('keys.asc replaced by the older copy from before the revocation: still refused', async () => {
  serveFolder(signedBySecond);
  serveKeys(beforeRevocation);
  await expectRefused(new RegExp(`The key ${subkeys[1]} that signed .* was revoked`), '1.1');
});

test('a ledger last signed by the revoked subkey (its 1.2 entry) is refused by release history, with the entry', async () => {
  const before = readFileSync(path.join(signedBySecond, 'ledger.jsonl'));
  const head = before.toString('utf8').trim().split('\n').length;
  const r = await runScript('release', [
    'history',
    'my-app',
    '--from',
    signedBySecond,
    '--keys',
    path.join(keys, 'keys.asc'),
  ]);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`ledger entry ${head}: .* last signed by subkey ${subkeys[1]}, which is revoked`));
  assert.equal(readFileSync(path.join(signedBySecond, 'ledger.jsonl')), before, 'nothing written');
});

test('the newest subkey still signs: release publish after the revocation is installed', async () => {
  await publish('1.3', w.updates);
  const answer = await updateNow();
  assert.is(answer.ok, true, JSON.stringify(answer));
  assert.is(await askApp(w.appPort), '1.3');
});

test('a subkey bound by another primary, grafted into keys.asc, is refused', async () => {
  const stranger = await genKey(w.g, 'Stranger <stranger@example.com>', { usage: 'cert', passphrase: 'correct horse' });
  const strangerSub = await addSigningSubkey(w.g, stranger, { passphrase: 'correct horse' });
  const strangerSecret = await exportSecret(
    w.g,
    stranger.fpr,
    path.join(w.base, 'stranger-secret.asc'),
    'correct horse',
  );
  const strangerAsc = readFileSync(await exportPublic(w.g, stranger.fpr, path.join(w.base, 'stranger.asc')), 'utf8');
  const stage = tmpDir('shipkit-stage-');
  await publish('1.4', stage, strangerSecret);
  const grafted = await graftSubkey(strangerAsc, readFileSync(path.join(keys, 'keys.asc'), 'utf8'), strangerSub);
  const genuine = tmpDir('shipkit-genuine-');
  cpSync(w.updates, genuine, { recursive: true });
  serveFolder(stage);
  serveKeys(grafted);
  try {
    await expectRefused(
      new RegExp(
        `The key ${strangerSub.toLowerCase()} that signed VERSION is expired, revoked or not valid for signing`,
      ),
      '1.3',
    );
  } finally {
    serveFolder(genuine); // the release key's own files again, for the next publish
  }
});

test('an expired subkey (made by gpg in the past) is refused', async () => {
  // The primary of a gpg key, on a host of its own: a subkey that expired in 2020 signs a release.
  const old = await genKey(w.g, 'Old <old@example.com>', {
    usage: 'cert',
    expire: 'never',
    fakeTime: '20200101T000000',
  });
  const expired = await addSigningSubkey(w.g, old, { expire: '1d', fakeTime: '20200101T000000' });
  const stage = tmpDir('shipkit-stage-');
  copyFileSync(path.join(w.updates, 'VERSION'), path.join(stage, 'VERSION'));
  await detachSign(w.g, expired, path.join(stage, 'VERSION'), { fakeTime: '20200101T120000' });
  const oldKeys = readFileSync(await exportPublic(w.g, old.fpr, path.join(w.base, 'old.asc')));
  const dir = path.join(w.base, 'expired-host');
  mkdirSync(dir);
  writeFileSync(path.join(stage, 'keys.asc'), oldKeys);
  const server = tmpDir('shipkit-expired-');
  cpSync(stage, server, { recursive: true });
  const genuine = tmpDir('shipkit-genuine-');
  cpSync(w.updates, genuine, { recursive: true });
  serveFolder(server);
  try {
    const r = await runScript('launchfit', [w.server.url, '--key', old.fpr, '--dir', dir]);
    assert.is(r.exitCode, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`The key ${expired.toLowerCase()} that signed VERSION is expired, revoked or not valid for signing`),
    );
    assert.equal(
      readdirSync(dir).filter((n) => n !== '.launchfit'),
      [],
      'nothing installed',
    );
  } finally {
    serveFolder(genuine); // the release key's own files again, for the next publish
  }
});

test('keys.asc larger than the cap: a clear error, the current release keeps serving', async () => {
  await publish('1.5', w.updates);
  writeFileSync(path.join(w.updates, 'keys.asc'), Buffer.alloc(MAX_KEY_BYTES + 1, 'a'));
  await expectRefused(
    new RegExp(`keys\\.asc is (${MAX_KEY_BYTES + 1} bytes, )?more than the ${MAX_KEY_BYTES} (bytes )?allowed`),
    '1.3',
  );
});

test('keys.asc gone once the host has read one: a clear error (pubkey.asc is not enough), the current release keeps serving', async () => {
  rmSync(path.join(w.updates, 'keys.asc'));
  assert.ok(readdirSync(w.updates).includes('pubkey.asc'));
  await expectRefused(/keys\.asc is missing, but this host has read it before/, '1.3');
  copyFileSync(path.join(keys, 'keys.asc'), path.join(w.updates, 'keys.asc'));
  const answer = await updateNow();
  assert.is(answer.ok, true, JSON.stringify(answer));
  assert.is(await askApp(w.appPort), '1.5');
});

test("keyfile mode: a revocation in the server's keys.asc, signed by the keyfile's primary, is honoured", async () => {
  // A host that trusts an old copy of the public key (from before the revocation) as its keyfile.
  const dir = path.join(w.base, 'keyfile-host');
  mkdirSync(dir);
  const keyfile = path.join(w.base, 'old-keys.asc');
  writeFileSync(keyfile, beforeRevocation);
  serveFolder(signedBySecond);
  serveKeys(readFileSync(path.join(keys, 'keys.asc')));
  const r = await runScript('launchfit', [w.server.url, '--keyfile', keyfile, '--dir', dir]);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`The key ${subkeys[1]} that signed .* was revoked \\(reason: compromised`));
  // Without the server's keys.asc the old keyfile alone would have trusted that subkey.
  rmSync(path.join(w.updates, 'keys.asc'));
  rmSync(path.join(w.updates, 'pubkey.asc'));
  const alone = path.join(w.base, 'keyfile-alone');
  mkdirSync(alone);
  const r2 = await runScript('launchfit', [w.server.url, '--keyfile', keyfile, '--dir', alone]);
  assert.is(r2.exitCode, 0, r2.stderr);
  assert.is(currentOf(alone), 'releases/my-app-gnu-linux-1.2');
});

test.run();
