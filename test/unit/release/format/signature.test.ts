// Signing for `release publish` (lib/release/format/signature.ts) with real openpgp keys: a key unlocked with
// its passphrase file makes detached signatures (of bytes and of a streamed file) that verify, a
// wrong or missing passphrase and a non-key are clear ConfigErrors, and the public certificate
// published is the key's own unless keys.asc of another primary is given (refused).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../../lib/core/errors.ts';
import { loadSigningKey, publicCertificateFor, signDetached } from '../../../../lib/release/format/signature.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const dir = tmpDir('shipkit-sign-');
const openpgp = await import('openpgp');

async function keyFile(name: string, passphrase?: string) {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name }],
    format: 'armored',
    ...(passphrase ? { passphrase } : {}),
  });
  const file = path.join(dir, `${name}.asc`);
  writeFileSync(file, privateKey);
  return { file, publicKey };
}

async function verifies(data: Uint8Array, signature: Uint8Array, armoredKey: string): Promise<boolean> {
  const { signatures } = await openpgp.verify({
    message: await openpgp.createMessage({ binary: data }),
    signature: await openpgp.readSignature({ binarySignature: signature }),
    verificationKeys: await openpgp.readKey({ armoredKey }),
  });
  return signatures[0].verified.then(
    () => true,
    () => false,
  );
}

test('a passphrase-protected key signs bytes and a file; the signatures verify, a changed byte does not', async () => {
  const { file, publicKey } = await keyFile('publisher', 'pw');
  const pass = path.join(dir, 'pass');
  writeFileSync(pass, 'pw\n', { mode: 0o600 });
  const key = await loadSigningKey(file, pass);
  const data = Buffer.from('CURRENT 1.0 web-linux-1.0.tar.gz\n');
  const signature = await signDetached(key, { data });
  assert.ok(await verifies(data, signature, publicKey));
  assert.not.ok(await verifies(Buffer.from('CURRENT 9.9 web-linux-9.9.tar.gz\n'), signature, publicKey));
  const tarball = path.join(dir, 'app.tar.gz');
  writeFileSync(tarball, Buffer.alloc(300_000, 7));
  assert.ok(await verifies(Buffer.alloc(300_000, 7), await signDetached(key, { file: tarball }), publicKey));
});

test('no passphrase file, a wrong one, a missing key or a non-key: ConfigErrors saying what to do', async () => {
  const { file } = await keyFile('locked', 'right');
  const wrong = path.join(dir, 'wrong');
  writeFileSync(wrong, 'wrong\n', { mode: 0o600 });
  const notKey = path.join(dir, 'not-a-key.asc');
  writeFileSync(notKey, 'hello');
  const cases: Array<[() => Promise<unknown>, RegExp]> = [
    [() => loadSigningKey(file), /protected by a passphrase; pass --passphrase-file/],
    [() => loadSigningKey(file, wrong), /does not unlock/],
    [() => loadSigningKey(path.join(dir, 'missing.asc')), /Cannot read the secret key .*ENOENT/],
    [() => loadSigningKey(notKey), /is not an armored OpenPGP secret key; export one with/],
  ];
  for (const [attempt, message] of cases) {
    const error = await attempt().catch((e: unknown) => e);
    assert.instance(error, ConfigError);
    assert.match(String(error), message);
  }
});

test("the certificate published: the key's own public part, or keys.asc of the same primary; another's refused", async () => {
  const own = await keyFile('own');
  const other = await keyFile('other');
  const key = await loadSigningKey(own.file);
  const now = new Date();
  const cert = await publicCertificateFor(key, own.file, undefined, now);
  assert.is((await openpgp.readKey({ armoredKey: cert })).getFingerprint(), key.getFingerprint());
  const foreign = path.join(dir, 'foreign-keys.asc');
  writeFileSync(foreign, other.publicKey);
  const error = await publicCertificateFor(key, own.file, foreign, now).catch((e: unknown) => e);
  assert.instance(error, ConfigError);
  assert.match(String(error), /is the certificate of key .* but the release is signed by key/);
  const secret = path.join(dir, 'secret-as-keys.asc');
  writeFileSync(secret, (await import('node:fs')).readFileSync(own.file));
  assert.match(
    String(await publicCertificateFor(key, own.file, secret, now).catch((e: unknown) => e)),
    /holds a secret key/,
  );
});

test.run();
