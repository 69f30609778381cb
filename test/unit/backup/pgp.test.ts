// The OpenPGP of a backup (lib/backup/pgp.ts) with real keys made by openpgp: secrets encrypted to a
// public key come back only with its secret key (unlocked by its passphrase), a signed manifest
// verifies only unchanged and only against its signer; unreadable keys are clear ConfigErrors.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { decrypterFor, encrypterFor, signerFor, verifierFor } from '../../../lib/backup/pgp.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir('shipkit-backup-pgp-');

async function keyPair(name: string, passphrase?: string) {
  const openpgp = await import('openpgp');
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name }],
    format: 'armored',
    ...(passphrase ? { passphrase } : {}),
  });
  const pub = path.join(dir, `${name}.pub.asc`);
  const sec = path.join(dir, `${name}.sec.asc`);
  writeFileSync(pub, publicKey);
  writeFileSync(sec, privateKey);
  return { pub, sec };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  assert.ok(error, 'refused');
  return error!;
}

test('encrypted to a public key, decrypted with its secret key; never in clear', async () => {
  const key = await keyPair('backup');
  const secret = Buffer.from('the-webhook-secret\n');
  const sealed = await (await encrypterFor(key.pub))(secret);
  assert.match(sealed.toString(), /^-----BEGIN PGP MESSAGE-----/);
  assert.not.ok(sealed.includes(secret));
  assert.equal(await (await decrypterFor(key.sec))(sealed.toString()), secret);
});

test('another secret key cannot decrypt it', async () => {
  const [key, other] = [await keyPair('owner'), await keyPair('stranger')];
  const sealed = await (await encrypterFor(key.pub))(Buffer.from('x'));
  await rejection((await decrypterFor(other.sec))(sealed.toString()));
});

test('a passphrase-protected key needs --passphrase-file, and the right passphrase', async () => {
  const key = await keyPair('locked', 'correct horse');
  const sealed = (await (await encrypterFor(key.pub))(Buffer.from('token'))).toString();
  assert.match((await rejection(decrypterFor(key.sec))).message, /protected by a passphrase; pass --passphrase-file/);
  const wrong = path.join(dir, 'wrong-pass');
  writeFileSync(wrong, 'battery staple\n');
  const error = await rejection(decrypterFor(key.sec, wrong));
  assert.instance(error, ConfigError);
  assert.match(error.message, /does not unlock/);
  const right = path.join(dir, 'right-pass');
  writeFileSync(right, 'correct horse\n', { mode: 0o600 });
  assert.is((await (await decrypterFor(key.sec, right))(sealed)).toString(), 'token');
});

test('a signed manifest verifies unchanged, and not when changed or checked against another key', async () => {
  const [signer, other] = [await keyPair('signer'), await keyPair('other')];
  const manifest = Buffer.from('{"format":1,"parts":[]}\n');
  const signature = await (await signerFor(signer.sec))(manifest);
  const verify = await verifierFor(signer.pub);
  await verify(manifest, signature);
  await rejection(verify(Buffer.from('{"format":1,"parts":[{}]}\n'), signature));
  await rejection((await verifierFor(other.pub))(manifest, signature));
});

test('a missing or wrong key file is a ConfigError naming the flag', async () => {
  const notAKey = path.join(dir, 'not-a-key.asc');
  writeFileSync(notAKey, 'hello\n');
  const cases: Array<[() => Promise<unknown>, RegExp]> = [
    [() => encrypterFor(path.join(dir, 'missing.asc')), /Cannot read --encrypt-to .*ENOENT/],
    [() => encrypterFor(notAKey), /--encrypt-to .* is not an armored OpenPGP public key/],
    [() => verifierFor(notAKey), /--key .* is not an armored OpenPGP public key/],
    [() => decrypterFor(notAKey), /--decrypt-key .* is not an armored OpenPGP secret key/],
  ];
  for (const [attempt, message] of cases) {
    const error = await rejection(attempt());
    assert.instance(error, ConfigError);
    assert.match(error.message, message);
  }
});

test.run();
