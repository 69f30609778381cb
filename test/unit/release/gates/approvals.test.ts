// @deno
// Approvals given and counted with real OpenPGP keys at a folder DEST: a valid one counts; one for
// another version, environment or sha256, expired, forged, copied under another approver's name,
// by a publisher, or by a key revoked since, is refused with its rule named; bad keys write nothing.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError, messageOf } from '../../../../lib/core/errors.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import {
  approvalFileName,
  checkApprovals,
  giveApproval,
  type ApprovalRule,
} from '../../../../lib/release/gates/approvals.ts';
import { loadSigningKey, signDetached } from '../../../../lib/release/format/signature.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const openpgp = await import('openpgp');
const SHA = 'a'.repeat(64);
const OTHER_SHA = 'b'.repeat(64);
const HOUR = 3_600_000;

interface Person {
  name: string;
  uid: string;
  secret: string;
  public: string;
  fingerprint: string;
  subkeys: string[];
  privateArmored: string;
}

let base: string;
let alice: Person;
let bob: Person;
let mallory: Person;

async function person(name: string): Promise<Person> {
  const uid = `${name[0].toUpperCase()}${name.slice(1)} <${name}@example.com>`;
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: uid.split(' <')[0], email: `${name}@example.com` }],
    format: 'armored',
  });
  mkdirSync(path.join(base, 'keys'), { recursive: true });
  const secret = path.join(base, `${name}-secret.asc`);
  const pub = path.join(base, 'keys', `${name}.asc`);
  writeFileSync(secret, privateKey);
  writeFileSync(pub, publicKey);
  const key = await openpgp.readKey({ armoredKey: publicKey });
  return {
    name,
    uid,
    secret,
    public: pub,
    fingerprint: key.getFingerprint(),
    subkeys: key.getSubkeys().map((s) => s.getFingerprint()),
    privateArmored: privateKey,
  };
}

test.before(async () => {
  base = tmpDir();
  [alice, bob, mallory] = await Promise.all([person('alice'), person('bob'), person('mallory')]);
});

let n = 0;
/** A fresh production DEST and the rule for it: alice and bob, `required`, 24 h. */
function world(required = 1) {
  const where = path.join(base, `dest-${++n}`);
  mkdirSync(where);
  const dest = openDestination(where, silentLogger);
  const rule: ApprovalRule = { required, from: [alice.public, bob.public], expiresMs: 24 * HOUR };
  const release = { app: 'my-app', version: '1.3', sha256: SHA, env: 'production' };
  const give = (who: Person, more: Partial<Parameters<typeof giveApproval>[0]> = {}) =>
    giveApproval({ dest, ...release, key: who.secret, rule, publishers: [], log: silentLogger, ...more });
  const check = (more: Partial<Parameters<typeof checkApprovals>[0]> = {}) =>
    checkApprovals({ dest, ...release, rule, publishers: [], ...more });
  const fileOf = (who: Person, subject: Partial<typeof release> = {}) =>
    path.join(where, approvalFileName({ ...release, ...subject }, who.fingerprint));
  const approvals = () => (existsSync(path.join(where, 'approvals')) ? readdirSync(path.join(where, 'approvals')) : []);
  return { where, dest, rule, release, give, check, fileOf, approvals };
}

/** Copies an approval file and its .sig to another name. */
function copyApproval(from: string, to: string) {
  copyFileSync(from, to);
  copyFileSync(`${from}.sig`, `${to}.sig`);
}

async function refusedWith(run: () => Promise<unknown>, message: RegExp) {
  try {
    await run();
    assert.unreachable('should have been refused');
  } catch (error) {
    assert.instance(error, ValidationError);
    assert.match(messageOf(error), message);
  }
}

test('a valid approval counts: signed JSON at approvals/APP-VERSION-ENV-FPR16.json, bound to the release', async () => {
  const w = world();
  const now = new Date();
  const given = await w.give(alice, { now });
  assert.is(given.approver, alice.fingerprint);
  assert.is(given.uid, alice.uid);
  assert.is(given.expires, new Date(now.getTime() + 24 * HOUR).toISOString());
  assert.equal(w.approvals(), [
    `my-app-1.3-production-${alice.fingerprint.slice(0, 16)}.json`,
    `my-app-1.3-production-${alice.fingerprint.slice(0, 16)}.json.sig`,
  ]);
  const doc = JSON.parse(readFileSync(w.fileOf(alice), 'utf8'));
  assert.equal(
    [doc.type, doc.app, doc.version, doc.sha256, doc.env, doc.approver],
    ['shipkit-approval', 'my-app', '1.3', SHA, 'production', alice.fingerprint],
  );
  assert.match(readFileSync(`${w.fileOf(alice)}.sig`, 'utf8'), /^-----BEGIN PGP SIGNATURE-----/);
  const check = await w.check();
  assert.equal(check.valid, [given]);
  assert.equal([check.refused, check.missing, check.required], [[], [bob.uid], 1]);
});

test("approving again replaces the approver's file; required 2 with one given counts one", async () => {
  const w = world(2);
  await w.give(alice);
  const again = await w.give(alice, { now: new Date(Date.now() + 1000) });
  assert.is(w.approvals().length, 2);
  const check = await w.check({ now: new Date(Date.now() + 2000) });
  assert.equal(
    check.valid.map((a) => a.at),
    [again.at],
  );
  assert.equal([check.required, check.missing], [2, [bob.uid]]);
  await w.give(bob);
  assert.is((await w.check({ now: new Date(Date.now() + 2000) })).valid.length, 2);
});

test('a clock a few seconds behind the signature (whole seconds) still gives and counts', async () => {
  const w = world();
  const now = new Date(Date.now() - 5000);
  await w.give(alice, { now });
  assert.is((await w.check({ now })).valid.length, 1);
});

test('an approval for another version, environment or sha256 is refused, naming the field', async () => {
  const w = world();
  await w.give(alice, { version: '1.2' });
  copyApproval(w.fileOf(alice, { version: '1.2' }), w.fileOf(alice));
  let check = await w.check();
  assert.equal(check.valid, []);
  assert.equal(check.refused, ["alice's approval is for version 1.2, not 1.3; it does not count."]);
  assert.equal(check.missing, [alice.uid, bob.uid]);

  await w.give(alice, { env: 'staging' });
  copyApproval(w.fileOf(alice, { env: 'staging' }), w.fileOf(alice));
  check = await w.check();
  assert.equal(check.refused, ["alice's approval is for env staging, not production; it does not count."]);

  await w.give(alice, { sha256: OTHER_SHA });
  check = await w.check();
  assert.equal(check.valid, []);
  assert.match(check.refused[0], new RegExp(`is for sha256 ${OTHER_SHA}, not ${SHA}`));
  assert.is((await w.check({ sha256: OTHER_SHA })).valid.length, 1);
});

test('an expired approval is refused; a rule shortened since bounds an approval given under a longer one', async () => {
  const w = world();
  const given = await w.give(alice);
  assert.is((await w.check({ now: new Date(Date.parse(given.expires) - 1000) })).valid.length, 1);
  const late = await w.check({ now: new Date(Date.parse(given.expires) + 1) });
  assert.equal(late.refused, [`alice's approval expired at ${given.expires}.`]);
  const shorter = await w.check({ rule: { ...w.rule, expiresMs: HOUR }, now: new Date(Date.now() + 2 * HOUR) });
  assert.match(shorter.refused[0], /alice's approval expired at/);
});

test("a forged approval (signed by a key not in from) and one copied under another approver's name are refused", async () => {
  const w = world();
  const forged = {
    type: 'shipkit-approval',
    ...w.release,
    approver: alice.fingerprint,
    uid: alice.uid,
    by: 'mallory@host',
    at: new Date().toISOString(),
    expires: new Date(Date.now() + HOUR).toISOString(),
  };
  const json = Buffer.from(`${JSON.stringify(forged)}\n`);
  const sig = await signDetached(await loadSigningKey(mallory.secret), { data: json });
  mkdirSync(path.dirname(w.fileOf(alice)), { recursive: true });
  writeFileSync(w.fileOf(alice), json);
  writeFileSync(`${w.fileOf(alice)}.sig`, openpgp.armor(openpgp.enums.armor.signature, sig));
  let check = await w.check();
  assert.equal(check.valid, []);
  assert.match(check.refused[0], /^alice's approval is not signed by alice's key .*forged, or copied/);

  await w.give(alice);
  copyApproval(w.fileOf(alice), w.fileOf(bob));
  check = await w.check();
  assert.equal(
    check.valid.map((a) => a.approver),
    [alice.fingerprint],
  );
  assert.match(check.refused[0], /^bob's approval is not signed by bob's key/);
  assert.equal(check.missing, [bob.uid]);
});

test("the publisher's key may not approve, primary or subkey; an approval by a publisher does not count", async () => {
  const w = world();
  for (const publishers of [[alice.fingerprint.toUpperCase()], [alice.subkeys[0]]])
    await refusedWith(
      () => w.give(alice, { publishers }),
      /alice \(Alice <alice@example.com>\) published or promoted this version: an approval must come from someone else/,
    );
  assert.equal(w.approvals(), []);
  await w.give(alice);
  const check = await w.check({ publishers: [alice.fingerprint] });
  assert.equal(check.refused, ['alice published or promoted this version: an approval must come from someone else.']);
});

test('a key not in from cannot approve; a revoked key cannot approve, and one revoked since does not count', async () => {
  const w = world();
  await refusedWith(() => w.give(mallory), /is not one of the approvers \(alice, bob\)/);
  assert.equal(w.approvals(), []);

  await w.give(alice);
  const original = readFileSync(alice.public, 'utf8');
  const privateKey = await openpgp.readPrivateKey({ armoredKey: alice.privateArmored });
  const { publicKey: revoked } = await openpgp.revokeKey({ key: privateKey, format: 'armored' });
  try {
    writeFileSync(alice.public, revoked);
    const check = await w.check();
    assert.equal(check.valid, []);
    assert.match(check.refused[0], /^alice's key is revoked in .*alice\.asc: its approval does not count/);
    const fresh = world();
    await refusedWith(() => fresh.give(alice), /alice's key is revoked .*a revoked key cannot approve/);
    assert.equal(fresh.approvals(), []);
  } finally {
    writeFileSync(alice.public, original);
  }
});

test('oversized files and bad names are refused; a key named twice in from counts once', async () => {
  const w = world();
  await w.give(alice);
  writeFileSync(w.fileOf(alice), Buffer.alloc(64 * 1024 + 1, 0x20));
  assert.match((await w.check()).refused[0], /is over 64 KB: not an approval/);
  await refusedWith(() => w.give(alice, { app: '../etc' }), /Invalid app name/);
  await refusedWith(() => w.give(alice, { env: 'prod/x' }), /Invalid environment name/);
  await refusedWith(() => w.give(alice, { sha256: 'abc' }), /Invalid sha256/);
  await refusedWith(() => w.check({ version: '1.3/..' }), /Invalid VERSION/);
  const twice = world(2);
  await twice.give(alice, { rule: { ...twice.rule, from: [alice.public, alice.public] } });
  const check = await twice.check({ rule: { ...twice.rule, from: [alice.public, alice.public] } });
  assert.equal([check.valid.length, check.missing], [1, []]);
});

test.run();
