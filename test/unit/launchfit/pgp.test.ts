// Signature verification against keys and signatures made by the real gpg CLI: binary and
// armored, a signing subkey, trust by keyfile or by a pinned full fingerprint for a key from the
// server, key IDs that only select, and refusals: other key, other file, truncated, junk,
// expired key, revoked key, SHA-1.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseKeyPin, readPublicKeys, selectTrustedKeys, verifyDetachedSignature } from '../../../lib/launchfit/pgp.ts';
import { tmpDir } from '../../helpers.ts';
import { addSigningSubkey, detachSign, exportPublic, genKey, makeGpgHome, revokeKey, type GpgHome, type TestKey } from '../../fixtures/launchfit/gpg.ts';

let g: GpgHome;
let dir: string;
let key: TestKey;
let data: string;
let pubAsc: Buffer;

test.before(async () => {
  g = makeGpgHome();
  dir = tmpDir();
  key = await genKey(g, 'Signer <signer@example.com>');
  await addSigningSubkey(g, key);
  data = path.join(dir, 'release.tar.gz');
  writeFileSync(data, Buffer.alloc(300_000, 7));
  pubAsc = readFileSync(await exportPublic(g, key.fpr, path.join(dir, 'pub.asc')));
});

const trustedFrom = async (bytes: Buffer, pin?: string) => selectTrustedKeys({ localKeys: await readPublicKeys(bytes, 'keyfile'), pin: pin ? parseKeyPin(pin) : undefined });
const verify = async (sigFile: string, trusted: Awaited<ReturnType<typeof trustedFrom>>, file = data) =>
  verifyDetachedSignature({ file, signature: readFileSync(sigFile), trusted, what: 'release.tar.gz' });

test('binary signature by the signing subkey, armored by the primary key, binary keyfile', async () => {
  const trusted = await trustedFrom(pubAsc);
  const bySub = await verify(await detachSign(g, key.subFpr!, data, { out: path.join(dir, 'sub.sig') }), trusted);
  assert.is(bySub.primaryFingerprint, key.fpr.toLowerCase());
  assert.is(bySub.signingFingerprint, key.subFpr!.toLowerCase());
  const armored = await detachSign(g, key.fpr, data, { armor: true, out: path.join(dir, 'primary.asc') });
  assert.match(readFileSync(armored, 'utf8'), /BEGIN PGP SIGNATURE/);
  assert.is((await verify(armored, trusted)).signingFingerprint, key.fpr.toLowerCase());
  const binaryKeyring = readFileSync(await exportPublic(g, key.fpr, path.join(dir, 'pub.gpg'), false));
  await verify(armored, await trustedFrom(binaryKeyring));
});

test('a key fetched from the server is trusted only against the pinned full fingerprint', async () => {
  const serverKeys = await readPublicKeys(pubAsc, 'server');
  assert.is(selectTrustedKeys({ serverKeys, pin: parseKeyPin(key.fpr) }).keys.length, 1);
  assert.throws(() => selectTrustedKeys({ serverKeys }), /pinned full fingerprint/);
  assert.throws(() => selectTrustedKeys({ serverKeys, pin: parseKeyPin(key.fpr.slice(-16)) }), /pinned full fingerprint/);
  assert.throws(() => selectTrustedKeys({ serverKeys, pin: parseKeyPin('0'.repeat(40)) }), /does not match the pinned fingerprint/);
  assert.throws(() => selectTrustedKeys({}), /No trusted signing key/);
});

test('a key ID selects among local keys; no match is an error', async () => {
  const other = await genKey(g, 'Other <other@example.com>');
  const both = Buffer.concat([pubAsc, readFileSync(await exportPublic(g, other.fpr, path.join(dir, 'other.asc')))]);
  const all = await readPublicKeys(both, 'keyfile');
  assert.is(all.length, 2);
  const picked = selectTrustedKeys({ localKeys: all, pin: parseKeyPin(other.fpr.slice(-16)) });
  assert.equal(picked.fingerprints, [other.fpr.toLowerCase()]);
  // A signature by the first key is then refused: the key ID narrowed the trust.
  const sig = await detachSign(g, key.fpr, data, { out: path.join(dir, 'k.sig') });
  await rejects(() => verify(sig, picked), /not trusted/);
  assert.throws(() => selectTrustedKeys({ localKeys: all, pin: parseKeyPin('deadbeef') }), /No key in updates\.gpg\.keyfile matches/);
});

test('refused: another key, another file, truncated, armored junk, junk bytes', async () => {
  const trusted = await trustedFrom(pubAsc);
  const mallory = await genKey(g, 'Mallory <mallory@example.com>');
  const byMallory = await detachSign(g, mallory.fpr, data, { out: path.join(dir, 'm.sig') });
  await rejects(() => verify(byMallory, trusted), /not trusted/);
  const otherFile = path.join(dir, 'other.bin');
  writeFileSync(otherFile, 'other');
  await rejects(async () => verify(await detachSign(g, key.fpr, otherFile, { out: path.join(dir, 'o.sig') }), trusted), /does not verify/);
  const good = readFileSync(await detachSign(g, key.fpr, data, { out: path.join(dir, 'g.sig') }));
  writeFileSync(path.join(dir, 't.sig'), good.subarray(0, good.length - 10));
  await rejects(() => verify(path.join(dir, 't.sig'), trusted), /not a valid OpenPGP signature|does not verify/);
  writeFileSync(path.join(dir, 'j.sig'), '-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n');
  await rejects(() => verify(path.join(dir, 'j.sig'), trusted), /not a valid OpenPGP signature/);
  writeFileSync(path.join(dir, 'z.sig'), Buffer.from('definitely not a signature'));
  await rejects(() => verify(path.join(dir, 'z.sig'), trusted), /not a valid OpenPGP signature/);
  const changed = path.join(dir, 'changed.bin');
  const bytes = readFileSync(data);
  bytes[1000] ^= 1;
  writeFileSync(changed, bytes);
  await rejects(() => verify(path.join(dir, 'g.sig'), trusted, changed), /does not verify/);
});

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a rejection matching ${pattern}`);
}

test('refused: a key that has expired (the signature was made while it was valid)', async () => {
  const old = await genKey(g, 'Old <old@example.com>', { fakeTime: '20200101T000000', expire: '1d' });
  const sig = await detachSign(g, old.fpr, data, { fakeTime: '20200101T010000', out: path.join(dir, 'old.sig') });
  const trusted = await trustedFrom(readFileSync(await exportPublic(g, old.fpr, path.join(dir, 'old.asc'))));
  await rejects(() => verify(sig, trusted), /expired, revoked or not valid for signing/);
});

test('refused: a revoked key', async () => {
  const rev = await genKey(g, 'Revoked <rev@example.com>');
  const sig = await detachSign(g, rev.fpr, data, { out: path.join(dir, 'rev.sig') });
  await verify(sig, await trustedFrom(readFileSync(await exportPublic(g, rev.fpr, path.join(dir, 'rev-before.asc')))));
  await revokeKey(g, rev.fpr);
  const trusted = await trustedFrom(readFileSync(await exportPublic(g, rev.fpr, path.join(dir, 'rev.asc'))));
  await rejects(() => verify(sig, trusted), /revoked/);
});

test('refused: a SHA-1 signature', async () => {
  const rsa = await genKey(g, 'Rsa <rsa@example.com>', { algo: 'rsa2048' });
  const sig = await detachSign(g, rsa.fpr, data, { digest: 'SHA1', out: path.join(dir, 'sha1.sig') });
  const trusted = await trustedFrom(readFileSync(await exportPublic(g, rsa.fpr, path.join(dir, 'rsa.asc'))));
  await rejects(() => verify(sig, trusted), /broken hash sha1/);
  // The same key with SHA-256 is fine.
  await verify(await detachSign(g, rsa.fpr, data, { digest: 'SHA256', out: path.join(dir, 'sha256.sig') }), trusted);
});

test.run();
