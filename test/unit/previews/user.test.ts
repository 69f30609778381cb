// Who previews run as: previews.user, else shipkit-preview when hook-server is root, else
// hook-server's own user; a missing or uid-0 account is a configuration error saying what to do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_PREVIEW_USER, checkPreviewUser, openPreviewsFolder, previewUser } from '../../../lib/previews/user.ts';

test('root without previews.user: the dedicated user; not root: its own; previews.user wins', () => {
  assert.is(previewUser({}, 0), DEFAULT_PREVIEW_USER);
  assert.is(previewUser({}, 1000), undefined);
  assert.is(previewUser({ user: 'web' }, 0), 'web');
  assert.is(previewUser({ user: 'web' }, 1000), 'web');
});

test('a user the machine does not have: a ConfigError with the command that makes it', async () => {
  const missing = 'no-such-preview-user-x';
  const error = await checkPreviewUser({ user: missing }, 'shipkit.yml:7', 0).catch((e) => e);
  assert.instance(error, ConfigError);
  assert.match(error.message, /^shipkit\.yml:7: previews\.user no-such-preview-user-x does not exist/);
  assert.match(error.message, /adduser --system --group --no-create-home no-such-preview-user-x/);
});

test('an account with uid 0 under another name is refused', async () => {
  // Every Linux machine has uid 0; its name is looked up rather than assumed.
  const rootName = (await import('node:fs')).readFileSync('/etc/passwd', 'utf8').split('\n')[0].split(':')[0];
  const error = await checkPreviewUser({ user: rootName }, 'shipkit.yml:3', 0).catch((e) => e);
  assert.instance(error, ConfigError);
  assert.match(error.message, /whose uid is 0/);
});

test('not root and no previews.user: nothing to check', async () => {
  assert.is(await checkPreviewUser({}, 'shipkit.yml:3', 1000), undefined);
});

test('an existing unprivileged account is returned', async () => {
  const account = await checkPreviewUser({ user: 'nobody' }, 'shipkit.yml:3', 0);
  assert.is(account?.name, 'nobody');
  assert.ok(account!.uid > 0);
});

test('another user without root: refused at start, saying how', async () => {
  const error = await checkPreviewUser({ user: 'nobody' }, 'shipkit.yml:3', 1000).catch((e) => e);
  assert.instance(error, ConfigError);
  assert.match(error.message, /needs hook-server to run as root/);
});

test('a folder above DATA/previews closed to the preview user: named, with the chmod', async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'skpu-'));
  try {
    chmodSync(base, 0o700);
    const previews = path.join(base, 'data', 'previews');
    mkdirSync(path.dirname(previews), { mode: 0o755 });
    mkdirSync(previews, { mode: 0o700 });
    const nobody = { name: 'nobody', uid: 65534, gid: 65534, home: '/', shell: '' };
    const error = await openPreviewsFolder(previews, nobody).catch((e) => e);
    assert.instance(error, ConfigError);
    assert.match(
      error.message,
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
