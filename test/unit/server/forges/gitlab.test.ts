// GitLab's real deliveries: Push Hook and Release Hook, and what is ignored.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normaliseGitlab } from '../../../../lib/server/forges/gitlab.ts';

const payload = (name: string) => JSON.parse(readFileSync(`/work/shared/forge-payloads/${name}`, 'utf8'));

test('a Push Hook is a push of checkout_sha on its branch', () => {
  const event = normaliseGitlab('Push Hook', payload('gitlab-push-event.json'));
  assert.is(event.kind, 'push');
  if (event.kind !== 'push') return;
  assert.is(event.repo, 'mike/diaspora');
  assert.is(event.branch, 'master');
  assert.is(event.sha, 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7');
});

test('a created Release Hook is a release of its tag; a deleted branch and other events are ignored', () => {
  const release = normaliseGitlab('Release Hook', payload('gitlab-release-event.json'));
  assert.equal(release.kind === 'release' && [release.repo, release.tag], [
    'gitlab-org/release-webhook-example',
    'v1.1',
  ]);
  const deleted = normaliseGitlab('Push Hook', {
    ...payload('gitlab-push-event.json'),
    after: '0'.repeat(40),
    checkout_sha: null,
  });
  assert.equal(deleted.kind === 'ignored' && deleted.reason, 'ref deleted');
  const other = normaliseGitlab('Note Hook', {});
  assert.equal(other.kind === 'ignored' && other.reason, 'event Note Hook is not handled');
});

test.run();
