// Signature verification against keys and signatures made by the real gpg CLI: binary and
// armored, a signing subkey, trust by keyfile or by a pinned full fingerprint for a key from the
// server, key IDs that only select, and refusals: other key, other file, truncated, junk,
// expired key, revoked key, SHA-1. A pin trusts what it names (a grafted subkey or primary does
// not lend trust to the attacker's key); text-mode signatures as gpg makes them; signature files
// with several signers; a GnuPG keybox given as keyfile.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseKeyPin } from '../../../../lib/launchfit/deploy-folder/key-pin.ts';
import { readPublicKeys, selectTrustedKeys, verifyDetachedSignature } from '../../../../lib/launchfit/trust/pgp.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import {
  addSigningSubkey,
  detachSign,
  exportPublic,
  genKey,
  graftPrimaryAsSubkey,
  graftSubkey,
  makeGpgHome,
  revokeKey,
  type GpgHome,
  type TestKey,
} from '../../../fixtures/launchfit/gpg.ts';

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

const trustedFrom = async (bytes: Buffer, pin?: string) =>
  selectTrustedKeys({ localKeys: await readPublicKeys(bytes, 'keyfile'), pin: pin ? parseKeyPin(pin) : undefined });
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
  assert.throws(
    () => selectTrustedKeys({ serverKeys, pin: parseKeyPin(key.fpr.slice(-16)) }),
    /pinned full fingerprint/,
  );
  assert.throws(
    () => selectTrustedKeys({ serverKeys, pin: parseKeyPin('0'.repeat(40)) }),
    /does not match the pinned fingerprint/,
  );
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
  assert.throws(
    () => selectTrustedKeys({ localKeys: all, pin: parseKeyPin('deadbeef') }),
    /No key in updates\.gpg\.keyfile matches/,
  );
});

test('refused: another key, another file, truncated, armored junk, junk bytes', async () => {
  const trusted = await trustedFrom(pubAsc);
  const mallory = await genKey(g, 'Mallory <mallory@example.com>');
  const byMallory = await detachSign(g, mallory.fpr, data, { out: path.join(dir, 'm.sig') });
  await rejects(() => verify(byMallory, trusted), /not trusted/);
  const otherFile = path.join(dir, 'other.bin');
  writeFileSync(otherFile, 'other');
  await rejects(
    async () => verify(await detachSign(g, key.fpr, otherFile, { out: path.join(dir, 'o.sig') }), trusted),
    /does not verify/,
  );
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

/** A certify-only release key P with signing subkey S, and an attacker's key A. */
async function releaseKeyAndAttacker() {
  const release = await genKey(g, `Release ${Math.random()} <release@example.com>`, { usage: 'cert' });
  await addSigningSubkey(g, release);
  const attacker = await genKey(g, `Attacker ${Math.random()} <a@example.com>`);
  const releaseAsc = readFileSync(await exportPublic(g, release.fpr, path.join(dir, `${release.fpr}.asc`)), 'utf8');
  const attackerAsc = readFileSync(await exportPublic(g, attacker.fpr, path.join(dir, `${attacker.fpr}.asc`)), 'utf8');
  return { release, attacker, releaseAsc, attackerAsc };
}

const fromServer = async (asc: string, pin: string) =>
  selectTrustedKeys({ serverKeys: await readPublicKeys(asc, 'pubkey.asc'), pin: parseKeyPin(pin) });

test("a pinned subkey grafted onto the attacker's key lends it no trust (file and VERSION data)", async () => {
  const { release, attacker, releaseAsc, attackerAsc } = await releaseKeyAndAttacker();
  const grafted = await graftSubkey(releaseAsc, attackerAsc, release.subFpr!);
  const trusted = await fromServer(grafted, release.subFpr!);
  assert.equal(trusted.fingerprints, [release.subFpr!.toLowerCase()], 'only the pinned subkey is trusted');
  const bad = await detachSign(g, attacker.fpr, data, { out: path.join(dir, 'graft.sig') });
  await rejects(
    () => verify(bad, trusted),
    new RegExp(`made by key ${attacker.fpr.slice(-16).toLowerCase()}, which is not trusted`),
  );
  const version = Buffer.from('CURRENT 9.9 my-app-gnu-linux-9.9.tar.gz\n');
  const versionFile = path.join(dir, 'VERSION-graft');
  writeFileSync(versionFile, version);
  const badVersionSig = readFileSync(await detachSign(g, attacker.fpr, versionFile, { out: `${versionFile}.sig` }));
  await rejects(
    () => verifyDetachedSignature({ data: version, signature: badVersionSig, trusted, what: 'VERSION' }),
    /not trusted/,
  );
  // The genuine key with the same pin: a signature by S is accepted.
  const good = await verify(
    await detachSign(g, release.subFpr!, data, { out: path.join(dir, 'sub-good.sig') }),
    await fromServer(releaseAsc, release.subFpr!),
  );
  assert.is(good.signingFingerprint, release.subFpr!.toLowerCase());
  assert.is(good.primaryFingerprint, release.fpr.toLowerCase());
});

test('a pinned subkey trusts that subkey alone: the primary and other subkeys of the genuine key may not sign', async () => {
  const signer = await genKey(g, 'Both <both@example.com>');
  const first = await addSigningSubkey(g, signer);
  const second = await addSigningSubkey(g, signer);
  const asc = readFileSync(await exportPublic(g, signer.fpr, path.join(dir, 'both.asc')), 'utf8');
  const trusted = await fromServer(asc, first);
  await rejects(
    async () => verify(await detachSign(g, signer.fpr, data, { out: path.join(dir, 'both-primary.sig') }), trusted),
    /not trusted/,
  );
  await rejects(
    async () => verify(await detachSign(g, second, data, { out: path.join(dir, 'both-second.sig') }), trusted),
    /not trusted/,
  );
  assert.is(
    (await verify(await detachSign(g, first, data, { out: path.join(dir, 'both-first.sig') }), trusted))
      .signingFingerprint,
    first.toLowerCase(),
  );
  // A pinned primary trusts it and its valid signing subkeys.
  const whole = await fromServer(asc, signer.fpr);
  await verify(path.join(dir, 'both-primary.sig'), whole);
  await verify(path.join(dir, 'both-second.sig'), whole);
  // The same narrowing for a keyfile with a key ID.
  const local = selectTrustedKeys({
    localKeys: await readPublicKeys(asc, 'keyfile'),
    pin: parseKeyPin(second.slice(-16)),
  });
  await rejects(() => verify(path.join(dir, 'both-first.sig'), local), /not trusted/);
  await verify(path.join(dir, 'both-second.sig'), local);
});

test("a pinned primary copied as a subkey into the attacker's key lends it no trust", async () => {
  const { release, attacker, releaseAsc, attackerAsc } = await releaseKeyAndAttacker();
  const grafted = await graftPrimaryAsSubkey(releaseAsc, attackerAsc);
  const keys = await readPublicKeys(grafted, 'pubkey.asc');
  assert.ok(
    keys[0].getSubkeys().some((k) => k.getFingerprint().toLowerCase() === release.fpr.toLowerCase()),
    'the graft carries the pinned fingerprint',
  );
  // The pin names a subkey of that key now, so only that subkey is trusted, never the attacker's primary.
  const alone = selectTrustedKeys({ serverKeys: keys, pin: parseKeyPin(release.fpr) });
  assert.equal(
    alone.keys.map((k) => k.onlySubkey),
    [release.fpr.toLowerCase()],
  );
  const bad = await detachSign(g, attacker.fpr, data, { out: path.join(dir, 'graft-primary.sig') });
  await rejects(() => verify(bad, alone), /not trusted/);
  // Served next to the genuine key, the attacker's signature is still not trusted.
  const both = selectTrustedKeys({
    serverKeys: [...keys, ...(await readPublicKeys(releaseAsc, 'pubkey.asc'))],
    pin: parseKeyPin(release.fpr),
  });
  await rejects(() => verify(bad, both), /not trusted/);
});

test('text-mode signatures as gpg makes them: CR, NUL and LF bytes, binary data, armored, streamed or in memory', async () => {
  const trusted = await trustedFrom(pubAsc);
  const samples: Record<string, Buffer> = {
    'version.txt': Buffer.from('CURRENT 1.0 my-app-gnu-linux-1.0.tar.gz\r\nSHA256 abc  \n\nSIZE 3'),
    'mixed.bin': Buffer.from([97, 0, 13, 0, 10, 0, 98, 0, 0, 13, 97, 13, 10, 13, 13, 10, 99, 13, 0]),
    'random.bin': randomBytes(400_000),
  };
  for (const [name, bytes] of Object.entries(samples)) {
    const file = path.join(dir, name);
    writeFileSync(file, bytes);
    for (const armor of [false, true]) {
      const sigFile = path.join(dir, `${name}.${armor}.sig`);
      await g.gpg(
        '--yes',
        '--local-user',
        `${key.subFpr}!`,
        '--textmode',
        ...(armor ? ['--armor'] : []),
        '--output',
        sigFile,
        '--detach-sign',
        file,
      );
      await g.gpg('--verify', sigFile, file); // gpg accepts it ...
      const signature = readFileSync(sigFile);
      assert.is(
        (await verify(sigFile, trusted, file)).signingFingerprint,
        key.subFpr!.toLowerCase(),
        `${name} streamed`,
      ); // ... and so does launchfit
      await verifyDetachedSignature({ data: bytes, signature, trusted, what: name });
      const changed = Buffer.from(bytes);
      changed[changed.length >> 1] ^= 0x20;
      await rejects(
        () => verifyDetachedSignature({ data: changed, signature, trusted, what: name }),
        /does not verify/,
      );
    }
  }
});

test('text mode: a line gpg would cut (19994 bytes or more) is refused, a line it signs in full is not', async () => {
  const trusted = await trustedFrom(pubAsc);
  for (const [length, ok] of [
    [19993, true],
    [19994, false],
  ] as const) {
    const file = path.join(dir, `line-${length}.txt`);
    writeFileSync(file, `${'a'.repeat(length)}\nend\n`);
    const sigFile = `${file}.sig`;
    // gpg complains about the long line but still writes a signature that omits the line's tail.
    await g
      .gpg('--yes', '--local-user', `${key.fpr}!`, '--textmode', '--output', sigFile, '--detach-sign', file)
      .catch(() => '');
    if (ok) await verify(sigFile, trusted, file);
    else
      await rejects(
        () => verify(sigFile, trusted, file),
        /longer than 19993 bytes, which a text-mode signature does not cover/,
      );
  }
});

test('a signature file with two signers: accepted when the trusted one verifies, refused when only the untrusted one does', async () => {
  const trusted = await trustedFrom(pubAsc);
  const stranger = await genKey(g, 'Stranger <s@example.com>');
  // gpg -u A -u B makes one signature file with both signatures.
  const both = path.join(dir, 'two.sig');
  await g.gpg(
    '--yes',
    '--local-user',
    `${stranger.fpr}!`,
    '--local-user',
    `${key.subFpr}!`,
    '--output',
    both,
    '--detach-sign',
    data,
  );
  const result = await verify(both, trusted);
  assert.is(result.signingFingerprint, key.subFpr!.toLowerCase());
  const trustedSig = readFileSync(await detachSign(g, key.fpr, data, { out: path.join(dir, 'one-trusted.sig') }));
  const strangerSig = readFileSync(
    await detachSign(g, stranger.fpr, data, { out: path.join(dir, 'one-stranger.sig') }),
  );
  for (const [name, bytes] of [
    ['stranger first', Buffer.concat([strangerSig, trustedSig])],
    ['trusted first', Buffer.concat([trustedSig, strangerSig])],
  ] as const) {
    const r = await verifyDetachedSignature({ file: data, signature: bytes, trusted, what: name });
    assert.is(r.signingFingerprint, key.fpr.toLowerCase(), name);
  }
  // The trusted signer signed something else; only the stranger's signature is valid: refused.
  const otherFile = path.join(dir, 'other-two.bin');
  writeFileSync(otherFile, 'other');
  const trustedOther = readFileSync(
    await detachSign(g, key.fpr, otherFile, { out: path.join(dir, 'trusted-other.sig') }),
  );
  await rejects(
    () =>
      verifyDetachedSignature({
        file: data,
        signature: Buffer.concat([strangerSig, trustedOther]),
        trusted,
        what: 'release.tar.gz',
      }),
    /does not verify/,
  );
  // Only untrusted signers: the message names them.
  await rejects(
    () =>
      verifyDetachedSignature({
        file: data,
        signature: Buffer.concat([strangerSig, strangerSig]),
        trusted,
        what: 'release.tar.gz',
      }),
    /none of them trusted/,
  );
});

test('a GnuPG keybox given as keyfile: a clear configuration error', async () => {
  const kbx = readFileSync(path.join(g.home, 'pubring.kbx'));
  try {
    await readPublicKeys(kbx, '/home/me/.gnupg/pubring.kbx', { local: true });
    assert.unreachable('a keybox was read as a key');
  } catch (error) {
    assert.is((error as Error).name, 'ConfigError');
    assert.match(
      (error as Error).message,
      /pubring\.kbx is a GnuPG keybox \(pubring\.kbx\), not an exported key; export the signing key with `gpg --armor --export FINGERPRINT > trusted\.asc`/,
    );
  }
});

test.run();
