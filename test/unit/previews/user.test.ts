// Who previews run as: previews.user, else shipkit-preview when hook-server is root, else
// hook-server's own user; a missing or uid-0 account is a configuration error saying what to do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { DEFAULT_PREVIEW_USER, checkPreviewUser, previewUser } from '../../../lib/previews/user.ts';

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
  const error = await checkPreviewUser({ user: rootName }, 'shipkit.yml:3', 1000).catch((e) => e);
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

test.run();
