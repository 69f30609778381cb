// @deno
// Approvals by status-page users (`ui:NAME` in approvals: from:), signed with hook-server's ui_key
// and kept beside the keys' ones at a folder DEST: one counts like a key's; it is refused for a user
// not in from:, for the version's publisher (by account name), when copied under another user's
// name, when signed by another key, and when hook-server's key is not the one approvals: names.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, ValidationError, messageOf } from '../../../../lib/core/errors.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import {
  approvalFileName,
  checkApprovals,
  giveApproval,
  givePageApproval,
  type ApprovalRule,
} from '../../../../lib/release/gates/approvals.ts';
import { publisherUsersOf } from '../../../../lib/release/gates/approval-release.ts';
import type { LedgerEntry } from '../../../../lib/release/format/ledger.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const openpgp = await import('openpgp');
const SHA = 'c'.repeat(64);
const HOUR = 3_600_000;
let base: string;
const keys: Record<string, { secret: string; public: string }> = {};

async function keyPair(name: string) {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name, email: `${name}@example.com` }],
    format: 'armored',
  });
  keys[name] = { secret: path.join(base, `${name}-secret.asc`), public: path.join(base, `${name}.asc`) };
  writeFileSync(keys[name].secret, privateKey);
  writeFileSync(keys[name].public, publicKey);
}

test.before(async () => {
  base = tmpDir();
  await Promise.all(['alice', 'hook-server', 'other-server'].map(keyPair));
});

let n = 0;
function world() {
  const where = path.join(base, `dest-${++n}`);
  mkdirSync(where);
  const dest = openDestination(where, silentLogger);
  const rule: ApprovalRule = {
    required: 2,
    from: [keys.alice.public],
    users: ['carol', 'dave'],
    uiKey: keys['hook-server'].public,
    expiresMs: 24 * HOUR,
  };
  const subject = { app: 'my-app', version: '1.4.0', sha256: SHA, env: 'production' };
  const give = (user: string, more: Partial<Parameters<typeof givePageApproval>[0]> = {}) =>
    givePageApproval({
      dest,
      subject,
      user,
      keyFile: keys['hook-server'].secret,
      rule,
      publisherUsers: [],
      by: 'status page (hook-server@ci)',
      log: silentLogger,
      ...more,
    });
  const check = (more: Partial<Parameters<typeof checkApprovals>[0]> = {}) =>
    checkApprovals({ dest, ...subject, rule, publishers: [], ...more });
  const fileOf = (user: string) => path.join(where, approvalFileName(subject, `ui:${user}`));
  return { where, dest, rule, subject, give, check, fileOf };
}

async function refusedWith(run: () => Promise<unknown>, kind: typeof ValidationError, message: RegExp) {
  try {
    await run();
    assert.unreachable('should have been refused');
  } catch (error) {
    assert.instance(error, kind);
    assert.match(messageOf(error), message);
  }
}

test("a status-page user's approval counts beside a key's: approvals/APP-VERSION-ENV-ui-NAME.json, signed by ui_key", async () => {
  const w = world();
  const given = await w.give('carol');
  assert.equal(
    [given.approver, given.uid, given.by],
    ['ui:carol', 'carol (status page)', 'status page (hook-server@ci)'],
  );
  const doc = JSON.parse(readFileSync(w.fileOf('carol'), 'utf8'));
  assert.equal(
    [doc.approver, doc.app, doc.version, doc.sha256, doc.env],
    ['ui:carol', 'my-app', '1.4.0', SHA, 'production'],
  );
  assert.match(w.fileOf('carol'), /approvals\/my-app-1\.4\.0-production-ui-carol\.json$/);
  let check = await w.check();
  assert.equal(
    [check.valid.map((a) => a.approver), check.missing],
    [['ui:carol'], ['alice <alice@example.com>', 'dave (status page)']],
  );
  await giveApproval({
    dest: w.dest,
    ...w.subject,
    key: keys.alice.secret,
    rule: w.rule,
    publishers: [],
    log: silentLogger,
  });
  check = await w.check();
  assert.is(check.valid.length, 2, 'a key and a user: 2 of 2');
});

test('refused, nothing written: a user not in from:, the publisher by account name, a ui_key that is not the one named', async () => {
  const w = world();
  await refusedWith(() => w.give('mallory'), ValidationError, /mallory is not one of production's approvers/);
  await refusedWith(
    () => w.give('carol', { publisherUsers: ['carol'] }),
    ValidationError,
    /carol published or promoted my-app 1\.4\.0/,
  );
  await refusedWith(
    () => w.give('carol', { keyFile: keys['other-server'].secret }),
    ConfigError,
    /hook-server's ui_key .* is not the key production's approvals: ui_key: holds/,
  );
  assert.is((await w.check()).valid.length, 0);
});

test("a user's approval does not count for the publisher, copied under another user's name, or signed by another key", async () => {
  const w = world();
  await w.give('carol');
  const check = await w.check({ publisherUsers: ['carol'] });
  assert.equal([check.valid, check.missing], [[], ['alice <alice@example.com>', 'dave (status page)']]);
  assert.match(check.refused[0], /ui:carol published or promoted this version/);
  copyFileSync(w.fileOf('carol'), w.fileOf('dave'));
  copyFileSync(`${w.fileOf('carol')}.sig`, `${w.fileOf('dave')}.sig`);
  const copied = await w.check();
  assert.equal(
    copied.valid.map((a) => a.approver),
    ['ui:carol'],
  );
  assert.match(copied.refused.join('\n'), /ui:dave's approval names approver ui:carol/);
  // Signed by a key that is not ui_key: forged (alice's own key does not make a user's approval).
  const other = world();
  await other.give('carol', {
    rule: { ...other.rule, uiKey: keys['other-server'].public },
    keyFile: keys['other-server'].secret,
  });
  const forged = await other.check();
  assert.equal(forged.valid, []);
  assert.match(forged.refused[0], /ui:carol's approval is not signed by ui:carol's key/);
});

test('publisherUsersOf: the account of by: NAME@HOST of the version publish and promote entries; a job names nobody', () => {
  const entry = (action: string, version: string, by: string) =>
    ({ action, app: 'my-app', version, by }) as LedgerEntry;
  const entries = [
    entry('publish', '1.4.0', 'carol@build-host'),
    entry('promote', '1.4', 'dave@ops'),
    entry('publish', '1.4.0', 'job 20261128-000001-abcd'),
    entry('rollout', '1.4.0', 'erin@ops'),
    entry('publish', '1.3.0', 'frank@ops'),
  ];
  assert.equal(publisherUsersOf(entries, 'my-app', '1.4.0'), ['carol', 'dave']);
});

test.run();
