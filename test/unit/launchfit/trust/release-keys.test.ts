// The keys a host trusts and the revocations it remembers (lib/launchfit/trust/release-keys.ts), with
// keys made by `release keys` (lib/release/keys/release-keys.ts) and served over HTTP on loopback: keys.asc
// is preferred over pubkey.asc; pubkey.asc alone serves a host that never read a keys.asc; a
// revocation is remembered and beats every signature of its subkey (compromised, superseded or
// no reason, whatever the signature's date); a forged revocation (signed by another primary)
// is not counted; an expired subkey is refused; a damaged memory is an error, not amnesia.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as openpgp from 'openpgp';
import { parseLaunchConfigText } from '../../../../lib/launchfit/deploy-folder/config.ts';
import { verifyDetachedSignature } from '../../../../lib/launchfit/trust/pgp.ts';
import { loadReleaseKeys, MEMORY_FILE, verifiedRevocationsIn } from '../../../../lib/launchfit/trust/release-keys.ts';
import { initReleaseKeys, revokeReleaseSubkey, rotateReleaseKeys } from '../../../../lib/release/keys/release-keys.ts';
import { loadSigningKey, signDetached } from '../../../../lib/release/format/signature.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { startUpdateServer, type UpdateServer } from '../../../fixtures/launchfit/update-server.ts';

let root: string;
let server: UpdateServer;
let keys: string;
let first: string;
let second: string;
let third: string;
let primary: string;
const timeouts = { connectMs: 2000, idleMs: 2000, totalMs: 10_000 };
const data = Buffer.from('VERSION text\n');
const signatures: Record<string, Uint8Array> = {};
const copies: Record<string, string> = {};

const tick = () => new Promise((res) => setTimeout(res, 1100)); // OpenPGP times are in seconds
async function rejects(run: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await run();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}
const signWithNewest = async () => signDetached(await loadSigningKey(path.join(keys, 'signing.asc')), { data });
const keysAsc = () => readFileSync(path.join(keys, 'keys.asc'), 'utf8');

test.before(async () => {
  root = tmpDir();
  server = await startUpdateServer(root);
  keys = path.join(tmpDir(), 'keys');
  const made = await initReleaseKeys({ dir: keys, expiresDays: 10 });
  primary = made.primary;
  first = made.subkey!;
  signatures.first = await signWithNewest();
  copies.one = keysAsc();
  await tick();
  second = (await rotateReleaseKeys({ dir: keys })).subkey!;
  signatures.second = await signWithNewest();
  await tick();
  third = (await rotateReleaseKeys({ dir: keys })).subkey!;
  signatures.third = await signWithNewest();
  copies.three = keysAsc();
  await tick(); // revocations dated after every signature
  await revokeReleaseSubkey({ dir: keys, subkey: first, reason: 'superseded' });
  await revokeReleaseSubkey({ dir: keys, subkey: second });
  copies.revoked = keysAsc();
});
test.after(() => server.close());

function hostConfig(gpg: string): { config: ReturnType<typeof parseLaunchConfigText>; metaDir: string } {
  const dir = tmpDir();
  const config = parseLaunchConfigText(
    `updates:\n  server: ${server.url}\n  gpg:\n${gpg}`,
    path.join(dir, 'launchify.yml'),
  );
  return { config, metaDir: path.join(dir, '.launchfit') };
}
const serve = (files: Record<string, string | undefined>) => {
  for (const [name, text] of Object.entries(files)) {
    if (text === undefined) rmSync(path.join(root, name), { force: true });
    else writeFileSync(path.join(root, name), text);
  }
};
const verifyBy = (which: string, trusted: Awaited<ReturnType<typeof loadReleaseKeys>>, now?: Date) =>
  verifyDetachedSignature({ data, signature: signatures[which], trusted, what: 'VERSION', now });

test('release keys: every subkey signs while valid; the newest signs', async () => {
  const host = hostConfig(`    key: "${primary}"\n`);
  serve({ 'keys.asc': copies.three, 'pubkey.asc': undefined });
  const trusted = await loadReleaseKeys({ ...host, timeouts });
  for (const [which, fingerprint] of [
    ['first', first],
    ['second', second],
    ['third', third],
  ]) {
    assert.is((await verifyBy(which, trusted)).signingFingerprint, fingerprint);
  }
});

test("revoked superseded or without a reason: refused whatever the signature's date; remembered against an older keys.asc", async () => {
  const host = hostConfig(`    key: "${primary}"\n`);
  serve({ 'keys.asc': copies.revoked });
  let trusted = await loadReleaseKeys({ ...host, timeouts });
  await rejects(() => verifyBy('first', trusted), /was revoked \(reason: superseded/);
  await rejects(() => verifyBy('second', trusted), /was revoked \(reason: unspecified/);
  assert.is((await verifyBy('third', trusted)).signingFingerprint, third);
  const memory = JSON.parse(readFileSync(path.join(host.metaDir, MEMORY_FILE), 'utf8'));
  assert.equal(Object.keys(memory.revoked).sort(), [first, second].sort());
  assert.is(memory.keysAscSeen, true);
  serve({ 'keys.asc': copies.three }); // replayed: from before the revocations
  trusted = await loadReleaseKeys({ ...host, timeouts });
  await rejects(() => verifyBy('second', trusted), /was revoked/);
  await rejects(() => verifyBy('first', trusted), /was revoked/);
  assert.is((await verifyBy('third', trusted)).signingFingerprint, third);
});

test('pubkey.asc serves a host that never read keys.asc; once it has, keys.asc gone is an error', async () => {
  const host = hostConfig(`    key: "${primary}"\n`);
  serve({ 'keys.asc': undefined, 'pubkey.asc': copies.three });
  const trusted = await loadReleaseKeys({ ...host, timeouts });
  assert.is((await verifyBy('second', trusted)).signingFingerprint, second);
  serve({ 'keys.asc': copies.three });
  await loadReleaseKeys({ ...host, timeouts });
  serve({ 'keys.asc': undefined });
  await rejects(() => loadReleaseKeys({ ...host, timeouts }), /keys\.asc is missing, but this host has read it before/);
  serve({ 'pubkey.asc': undefined });
  const never = hostConfig(`    key: "${primary}"\n`);
  await rejects(
    () => loadReleaseKeys({ ...never, timeouts }),
    /Neither .*keys\.asc nor .*pubkey\.asc is on the update server/,
  );
});

test("keyfile: the server's keys.asc adds the revocations and subkeys the keyfile's primary signed", async () => {
  const dir = tmpDir();
  writeFileSync(path.join(dir, 'trusted.asc'), copies.one); // knows the first subkey only
  const host = hostConfig(`    keyfile: ${path.join(dir, 'trusted.asc')}\n`);
  serve({ 'keys.asc': undefined, 'pubkey.asc': undefined });
  let trusted = await loadReleaseKeys({ ...host, timeouts });
  assert.is((await verifyBy('first', trusted)).signingFingerprint, first, 'no keys.asc: the keyfile alone');
  await rejects(() => verifyBy('third', trusted), /not trusted|not valid/);
  serve({ 'keys.asc': copies.revoked });
  trusted = await loadReleaseKeys({ ...host, timeouts });
  await rejects(() => verifyBy('first', trusted), /was revoked \(reason: superseded/);
  assert.is(
    (await verifyBy('third', trusted)).signingFingerprint,
    third,
    'the rotated subkey, bound by the same primary',
  );
});

test('a revocation signed by another primary is not counted', async () => {
  const other = path.join(tmpDir(), 'other');
  await initReleaseKeys({ dir: other });
  const otherKey = await openpgp.readPrivateKey({ armoredKey: readFileSync(path.join(other, 'primary.asc'), 'utf8') });
  const ours = await openpgp.readKey({ armoredKey: copies.three });
  const target = ours.getSubkeys().find((s) => s.getFingerprint().toLowerCase() === third)!;
  const forged = await target.revoke(otherKey.keyPacket as never, {
    flag: openpgp.enums.reasonForRevocation.keyCompromised,
    string: '',
  });
  target.revocationSignatures.push(...forged.revocationSignatures);
  assert.equal(await verifiedRevocationsIn(ours, new Date()), {});
  const host = hostConfig(`    key: "${primary}"\n`);
  serve({ 'keys.asc': ours.armor() });
  const trusted = await loadReleaseKeys({ ...host, timeouts });
  assert.is((await verifyBy('third', trusted)).signingFingerprint, third);
});

test('an expired subkey is refused', async () => {
  const host = hostConfig(`    key: "${primary}"\n`);
  serve({ 'keys.asc': copies.three });
  const later = new Date(Date.now() + 11 * 86_400_000);
  const trusted = await loadReleaseKeys({ ...host, timeouts, now: later });
  await rejects(() => verifyBy('first', trusted, later), /expired, revoked or not valid for signing/);
  assert.is(
    (await verifyBy('third', trusted, later)).signingFingerprint,
    third,
    'the later subkeys expire later (365 days)',
  );
});

test('a damaged memory of revocations is an error, not a fresh start', async () => {
  const host = hostConfig(`    key: "${primary}"\n`);
  mkdirSync(host.metaDir, { recursive: true });
  writeFileSync(path.join(host.metaDir, MEMORY_FILE), '{"revoked": ');
  serve({ 'keys.asc': copies.three });
  await rejects(
    () => loadReleaseKeys({ ...host, timeouts }),
    /keys\.json \(the revocations this host has seen\) is unreadable/,
  );
  assert.is(readFileSync(path.join(host.metaDir, MEMORY_FILE), 'utf8'), '{"revoked": ', 'left as it was');
});

test.run();
