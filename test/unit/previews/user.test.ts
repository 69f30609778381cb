// Who previews run as: previews.user, else a uid of its own each when hook-server is root, else
// hook-server's own user; a missing or uid-0 account is a configuration error saying what to do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_PREVIEW_UIDS,
  checkPreviewRunAs,
  closePreviewFolder,
  openPreviewsFolder,
  pickPreviewUid,
  previewAccount,
  previewRunAsKind,
} from '../../../lib/previews/user.ts';
import { findUser, numericAccount } from '../../../lib/core/unix-user.ts';

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: Error) => e,
  );

test('root without previews.user: a uid of its own each; not root: its own user; previews.user wins', () => {
  assert.is(previewRunAsKind({}, 0), 'own');
  assert.is(previewRunAsKind({}, 1000), 'self');
  assert.is(previewRunAsKind({ user: 'web' }, 0), 'user');
  assert.is(previewRunAsKind({ user: 'web' }, 1000), 'user');
});

test('a user the machine does not have: a ConfigError with the command that makes it', async () => {
  const missing = 'no-such-preview-user-x';
  const error = await errorOf(checkPreviewRunAs({ user: missing }, 'shipkit.yml:7', 0));
  assert.instance(error, ConfigError);
  assert.match(error!.message, /^shipkit\.yml:7: previews\.user no-such-preview-user-x does not exist/);
  assert.match(error!.message, /adduser --system --group --no-create-home no-such-preview-user-x/);
});

test('an account with uid 0 under another name is refused', async () => {
  // Every Linux machine has uid 0; its name is looked up rather than assumed.
  const rootName = (await import('node:fs')).readFileSync('/etc/passwd', 'utf8').split('\n')[0].split(':')[0];
  const error = await errorOf(checkPreviewRunAs({ user: rootName }, 'shipkit.yml:3', 0));
  assert.instance(error, ConfigError);
  assert.match(error!.message, /whose uid is 0/);
});

test('not root and no previews.user: nothing to check, no account', async () => {
  const runAs = await checkPreviewRunAs({}, 'shipkit.yml:3', 1000);
  assert.equal(runAs, { kind: 'self' });
  assert.is(previewAccount(runAs, undefined), undefined);
});

test('previews.user: that account for every preview', async () => {
  const runAs = await checkPreviewRunAs({ user: 'nobody' }, 'shipkit.yml:3', 0);
  assert.is(previewAccount(runAs, undefined)?.name, 'nobody');
  assert.ok(previewAccount(runAs, 5)!.uid > 0);
});

test('another user without root: refused at start, saying how', async () => {
  const error = await errorOf(checkPreviewRunAs({ user: 'nobody' }, 'shipkit.yml:3', 1000));
  assert.instance(error, ConfigError);
  assert.match(error!.message, /needs hook-server to run as root/);
});

test('root: the default range, checked against the accounts and groups the machine has', async () => {
  assert.equal(await checkPreviewRunAs({}, 'shipkit.yml:3', 0), { kind: 'own', uids: DEFAULT_PREVIEW_UIDS });
  // nobody (65534) and its group are in every Debian system's databases.
  const nobody = (await findUser('nobody'))!;
  const error = await errorOf(checkPreviewRunAs({ uids: { from: 65_530, to: 65_545 } }, 'shipkit.yml:9', 0));
  assert.instance(error, ConfigError);
  assert.match(error!.message, `shipkit.yml:9: previews.uids 65530-65545 holds the user nobody (${nobody.uid})`);
});

test('each preview its own uid: the one it holds while free, else the lowest free; none left: said', () => {
  const uids = { from: 100_000, to: 100_002 };
  assert.is(pickPreviewUid(uids, new Set()), 100_000);
  assert.is(pickPreviewUid(uids, new Set([100_000]), 100_002), 100_002, 'kept');
  assert.is(pickPreviewUid(uids, new Set([100_002]), 100_002), 100_000, 'held by another: a free one');
  assert.is(pickPreviewUid(uids, new Set(), 7), 100_000, 'outside the range (changed since): a new one');
  assert.throws(
    () => pickPreviewUid(uids, new Set([100_000, 100_001, 100_002])),
    /every uid of previews.uids 100000-100002/,
  );
  const runAs = { kind: 'own' as const, uids };
  assert.equal(previewAccount(runAs, 100_001), numericAccount(100_001));
  assert.throws(() => previewAccount(runAs, undefined), /not in previews.uids/);
});

test('#UID is an account with no entry: its own number as its group', async () => {
  assert.equal(await findUser('#1879048193'), {
    name: '#1879048193',
    uid: 1_879_048_193,
    gid: 1_879_048_193,
    home: '/nonexistent',
    shell: '/usr/sbin/nologin',
  });
  assert.is(await findUser('#0'), undefined, 'never root');
  assert.is(await findUser('#99999999999'), undefined);
});

test("a preview's folder: root and its own group, 0750 (root only: chown)", async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'skpf-'));
  try {
    const folder = path.join(base, 'pr-4');
    await closePreviewFolder(folder, process.getuid?.() === 0 ? numericAccount(100_004) : undefined);
    const info = statSync(folder);
    if (process.getuid?.() === 0) {
      assert.equal([info.uid, info.gid, info.mode & 0o777], [0, 100_004, 0o750]);
    } else {
      console.log('  (not root: the chown to the preview group is not tried)');
      assert.ok(info.isDirectory());
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a folder above DATA/previews closed to the preview user: named, with the chmod', async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'skpu-'));
  try {
    chmodSync(base, 0o700);
    const previews = path.join(base, 'data', 'previews');
    mkdirSync(path.dirname(previews), { mode: 0o755 });
    mkdirSync(previews, { mode: 0o700 });
    const nobody = { name: 'nobody', uid: 65534, gid: 65534, home: '/', shell: '' };
    const error = await errorOf(openPreviewsFolder(previews, nobody));
    assert.instance(error, ConfigError);
    assert.match(
      error!.message,
      `who cannot pass through ${base} (mode 0700): give others search permission (chmod o+x ${base})`,
    );
    assert.is(statSync(previews).mode & 0o777, 0o700, 'nothing changed');
    chmodSync(base, 0o711);
    await openPreviewsFolder(previews, nobody);
    assert.is(statSync(previews).mode & 0o777, 0o711, 'searchable, not listable');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test.run();
