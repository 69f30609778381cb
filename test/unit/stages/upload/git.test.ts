// How a refused git push is explained (lib/stages/upload/git.ts remoteFailure): the advice comes
// from git's own words, never from the object ids and paths it quotes back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { remoteFailure } from '../../../../lib/stages/upload/git.ts';

const declined = (sha: string, remote: string) =>
  [
    'remote: deploys are frozen until Monday',
    `To ${remote}`,
    ` ! [remote rejected] ${sha} -> gh-pages (pre-receive hook declined)`,
    `error: failed to push some refs to '${remote}'`,
  ].join('\n');

test('a hook that declines is explained as a refusal, even when the commit id or path holds 403', () => {
  for (const [sha, remote] of [
    ['c0ffee403a1b2c3d4e5f60718293a4b5c6d7e8f9', '/tmp/site.git'],
    ['0123456789abcdef0123456789abcdef01234567', '/tmp/shipkit-remote-x403yz/frozen.git'],
  ]) {
    const error = remoteFailure('refused the push to gh-pages', declined(sha, remote));
    assert.match(error.message, /deploys are frozen until Monday/);
    assert.match(error.message, /\(hook or branch protection\)\.$/);
    assert.not.match(error.message, /credentials/);
  }
});

test('an HTTP 403 and a refused ssh key ask for credentials', () => {
  for (const stderr of [
    "fatal: unable to access 'https://example.com/a.git/': The requested URL returned error: 403",
    'git@example.com: Permission denied (publickey).\nfatal: Could not read from remote repository.',
  ]) {
    assert.match(remoteFailure('could not read x', stderr).message, /Check the credentials/);
  }
});

test('a moved branch and an unreachable remote get their own advice; anything else gets none', () => {
  assert.match(remoteFailure('x', ' ! [rejected] abc -> gh-pages (fetch first)').message, /run the upload again\.$/);
  assert.match(
    remoteFailure('x', "fatal: '/nope.git' does not appear to be a git repository").message,
    /Check the remote URL/,
  );
  assert.is(remoteFailure('x', 'fatal: something new').message, 'x: fatal: something new.');
});

test.run();
