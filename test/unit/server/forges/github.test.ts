// GitHub-shaped payloads (here Gitea's real deliveries): push and release events, and the
// fields that make a delivery refused rather than passed on.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normaliseGithub } from '../../../../lib/server/forges/github.ts';

const payload = (name: string) => JSON.parse(readFileSync(`/work/shared/forge-payloads/${name}`, 'utf8'));

test('a Gitea push is a push of its branch and commit, with its clone URL', () => {
  const event = normaliseGithub('push', payload('gitea-push-event.json'));
  assert.is(event.kind, 'push');
  if (event.kind !== 'push') return;
  assert.is(event.repo, 'example/example');
  assert.is(event.branch, 'master');
  assert.is(event.sha, '67b56589a45103f891bdee7c0546e5d40bc02001');
  assert.is(event.cloneUrl, 'http://localhost:3000/example/example.git');
});

test('a published Gitea release runs; another action is ignored with its reason', () => {
  const published = normaliseGithub('release', payload('gitea-release-event.json'));
  assert.is(published.kind, 'release');
  const edited = normaliseGithub('release', { ...payload('gitea-release-event.json'), action: 'edited' });
  assert.equal(edited.kind === 'ignored' && edited.reason, 'release edited (only published releases run)');
});

test('unsafe fields refuse the delivery: a repo name with .., a branch with .., no sha', () => {
  const push = payload('gitea-push-event.json');
  assert.throws(
    () => normaliseGithub('push', { ...push, repository: { ...push.repository, full_name: '../x' } }),
    /safe owner\/name/,
  );
  assert.throws(() => normaliseGithub('push', { ...push, ref: 'refs/heads/a..b' }), /branch/);
  assert.throws(() => normaliseGithub('push', { ...push, after: 'not-a-sha' }));
});

test.run();
