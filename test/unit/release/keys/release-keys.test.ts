// `release keys` (lib/release/keys/release-keys.ts), checked with the real gpg: init makes a certify-only
// primary ([C]) and an expiring signing subkey; primary.asc is locked by the passphrase and
// signing.asc holds no secret of the primary; a signature by signing.asc verifies in gpg against
// keys.asc; rotate adds a subkey and the newest signs; revoke marks one revoked for gpg too.
// Refusals: an existing key folder, a wrong or missing passphrase, an unknown subkey, the
// primary, an unknown reason — each leaves the folder as it was.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as openpgp from 'openpgp';
import {
  initReleaseKeys,
  listReleaseKeys,
  revokeReleaseSubkey,
  rotateReleaseKeys,
} from '../../../../lib/release/keys/release-keys.ts';
import { loadSigningKey, signDetached } from '../../../../lib/release/format/signature.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { makeGpgHome } from '../../../fixtures/launchfit/gpg.ts';

let base: string;
let dir: string;
let pass: string;
let first: string;
let primary: string;

async function rejects(run: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await run();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}
const snapshot = () =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((n) => [n, readFileSync(path.join(dir, n), 'utf8')]),
  );
/** What gpg makes of keys.asc: [type, capabilities, expires (seconds), validity] per key, as --with-colons lists them. */
async function gpgListing(): Promise<string[][]> {
  const g = makeGpgHome();
  const out = await g.gpg('--import-options', 'show-only', '--with-colons', '--import', path.join(dir, 'keys.asc'));
  return out
    .split('\n')
    .filter((l) => /^(pub|sub):/.test(l))
    .map((l) => l.split(':'))
    .map((f) => [f[0], f[11], f[6], f[1]]);
}

test.before(async () => {
  base = tmpDir();
  dir = path.join(base, 'keys');
  pass = path.join(base, 'pass');
  writeFileSync(pass, 'long passphrase\n');
  const made = await initReleaseKeys({
    dir,
    passphraseFile: pass,
    expiresDays: 20,
    userId: 'Release <release@example.com>',
  });
  first = made.subkey!;
  primary = made.primary;
});

test('init: a certify-only primary, a signing subkey that expires, three files', async () => {
  assert.equal(readdirSync(dir).sort(), ['keys.asc', 'primary.asc', 'signing.asc']);
  const [pub, sub] = await gpgListing();
  assert.equal([pub[0], pub[1]], ['pub', 'cSC']);
  assert.equal([sub[0], sub[1]], ['sub', 's']);
  assert.ok(Number(sub[2]) > 0, 'the subkey expires');
  const whole = await openpgp.readPrivateKey({ armoredKey: readFileSync(path.join(dir, 'primary.asc'), 'utf8') });
  assert.not.ok(whole.isDecrypted(), 'primary.asc is locked by the passphrase');
  const signing = await openpgp.readPrivateKey({ armoredKey: readFileSync(path.join(dir, 'signing.asc'), 'utf8') });
  assert.ok((signing.keyPacket as openpgp.SecretKeyPacket).isDummy(), 'signing.asc holds no secret of the primary');
  assert.is(signing.getFingerprint().toLowerCase(), primary);
  assert.not.match(readFileSync(path.join(dir, 'keys.asc'), 'utf8'), /PRIVATE/);
});

test('a signature by signing.asc verifies in gpg against keys.asc', async () => {
  const g = makeGpgHome();
  await g.gpg('--import', path.join(dir, 'keys.asc'));
  const file = path.join(base, 'data');
  writeFileSync(file, 'release bytes\n');
  writeFileSync(`${file}.sig`, await signDetached(await loadSigningKey(path.join(dir, 'signing.asc'), pass), { file }));
  const out = await g.gpg('--status-fd', '1', '--verify', `${file}.sig`, file);
  assert.match(out, new RegExp(`VALIDSIG ${first.toUpperCase()} .* ${primary.toUpperCase()}`));
});

test('loadSigningKey unlocks a key once per key text and passphrase; a wrong or missing passphrase is still refused after', async () => {
  const keyFile = path.join(dir, 'signing.asc');
  const unlocked = await loadSigningKey(keyFile, pass);
  assert.ok(unlocked.isDecrypted());
  assert.ok(
    (await loadSigningKey(keyFile, pass)) === unlocked,
    'the same key text and passphrase reuse the unlocked key',
  );
  const wrong = path.join(base, 'wrong-passphrase');
  writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
  await rejects(() => loadSigningKey(keyFile, wrong), /does not unlock/);
  await rejects(() => loadSigningKey(keyFile), /protected by a passphrase/);
  assert.ok((await loadSigningKey(keyFile, pass)) === unlocked);
});

test('rotate: a second subkey, and publish signs with the newest', async () => {
  await new Promise((res) => setTimeout(res, 1100)); // a later creation time
  const rotated = await rotateReleaseKeys({ dir, passphraseFile: pass });
  assert.is(rotated.subkeys.length, 2);
  assert.ok(rotated.subkeys.every((s) => s.valid));
  const key = await loadSigningKey(path.join(dir, 'signing.asc'), pass);
  assert.is((await key.getSigningKey()).getFingerprint().toLowerCase(), rotated.subkey);
  assert.is((await listReleaseKeys({ dir })).subkeys.length, 2);
});

test('revoke --reason compromised: revoked for gpg too; the other subkey still valid', async () => {
  const result = await revokeReleaseSubkey({
    dir,
    subkey: first.toUpperCase(),
    reason: 'compromised',
    passphraseFile: pass,
  });
  assert.equal(
    result.subkeys.map((s) => [s.fingerprint === first, s.revoked, s.valid]),
    [
      [true, 'compromised', false],
      [false, null, true],
    ],
  );
  const listing = await gpgListing();
  const validity = listing.filter((l) => l[0] === 'sub').map((l) => l[3]);
  assert.is(validity[0], 'r', 'gpg lists the first subkey as revoked');
  assert.is.not(validity[1], 'r');
});

test('refusals leave the folder as it was', async () => {
  const before = snapshot();
  await rejects(
    () => initReleaseKeys({ dir, passphraseFile: pass }),
    /already exists; a release key is never overwritten/,
  );
  await rejects(() => rotateReleaseKeys({ dir }), /protected by a passphrase; pass --passphrase-file/);
  const wrong = path.join(base, 'wrong');
  writeFileSync(wrong, 'not it\n');
  await rejects(() => rotateReleaseKeys({ dir, passphraseFile: wrong }), /passphrase does not unlock/);
  await rejects(
    () => revokeReleaseSubkey({ dir, subkey: 'ab'.repeat(20), passphraseFile: pass }),
    /has no subkey abab.*; its subkeys are/,
  );
  await rejects(() => revokeReleaseSubkey({ dir, subkey: primary, passphraseFile: pass }), /is the primary key/);
  await rejects(
    () => revokeReleaseSubkey({ dir, subkey: first, reason: 'lost' as never, passphraseFile: pass }),
    /use compromised or superseded/,
  );
  await rejects(
    () => revokeReleaseSubkey({ dir, subkey: '1234', passphraseFile: pass }),
    /not a full subkey fingerprint/,
  );
  await rejects(() => initReleaseKeys({ dir: path.join(base, 'other'), expiresDays: 0 }), /--expires 0/);
  await rejects(() => rotateReleaseKeys({ dir: path.join(base, 'nowhere') }), /Cannot read .*primary\.asc/);
  assert.equal(snapshot(), before);
});

test.run();
