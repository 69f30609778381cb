// Who and what triggered a job, read by normaliseEvent from real payloads of every forge
// (@octokit/webhooks-examples, /work/shared/forge-payloads), and what is dropped or cut.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MESSAGE_MAX } from '../../../../lib/server/forges/payload.ts';
import { normaliseEvent, type Forge } from '../../../../lib/server/webhooks.ts';
import { pushPayload, releasePayload } from '../../../fixtures/hooks/deliveries.ts';

const forgePayload = (name: string) => JSON.parse(readFileSync(`/work/shared/forge-payloads/${name}`, 'utf8'));
const metaOf = (forge: Forge, event: string, payload: Record<string, unknown>) => {
  const meaning = normaliseEvent(forge, event, payload);
  if (meaning.kind !== 'push' && meaning.kind !== 'release') throw new Error(`not a job: ${meaning.kind}`);
  return meaning.meta;
};

test('GitHub push and release (octokit examples)', () => {
  const push = pushPayload('octo/site', { sha: '6113728f27ae82c7b1a177c8d03f9e96e0adf246' });
  assert.equal(metaOf('github', 'push', push), {
    message: 'Initial commit',
    author: 'Codertocat',
    pusher: 'Codertocat',
    commitUrl: 'https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246',
  });
  assert.equal(metaOf('github', 'release', releasePayload('octo/site')), {
    author: 'Codertocat',
    pusher: 'Codertocat',
    commitUrl: 'https://github.com/Codertocat/Hello-World/releases/tag/0.0.1',
  });
});

test('Gitea, Gogs and GitLab pushes and releases (their documented payloads)', () => {
  assert.equal(metaOf('gitea', 'push', forgePayload('gitea-push-event.json')), {
    message: 'example',
    author: 'example',
    pusher: 'example',
    commitUrl: 'http://localhost:3000/example/example/commit/67b56589a45103f891bdee7c0546e5d40bc02001',
  });
  // Gogs has no head_commit: the commit in `commits` with the pushed sha.
  const gogs = metaOf('gitea', 'push', forgePayload('gogs-push-event.json'));
  assert.is(gogs.message, 'Add new feature');
  assert.is(gogs.author, 'Unknwon');
  assert.is(gogs.pusher, 'unknwon');
  assert.match(gogs.commitUrl!, /\/commit\/bffeb74224043ba2feb48d137756c8a9331c449a$/);
  const gitlab = metaOf('gitlab', 'Push Hook', forgePayload('gitlab-push-event.json'));
  assert.is(gitlab.message, 'fixed readme');
  assert.is(gitlab.author, 'GitLab dev user');
  assert.is(gitlab.pusher, 'John Smith');
  assert.is(gitlab.commitUrl, 'http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7');
  assert.equal(metaOf('gitea', 'release', forgePayload('gitea-release-event.json')), {
    message: '0.0.0',
    author: 'example',
    pusher: 'example',
    commitUrl: 'http://localhost:3000/example/example/releases/tag/example',
  });
  const glRelease = metaOf('gitlab', 'Release Hook', forgePayload('gitlab-release-event.json'));
  assert.is(glRelease.message, 'v1.1');
  assert.is(glRelease.commitUrl, 'https://example.com/gitlab-org/release-webhook-example/-/releases/v1.1');
});

test('hostile fields: a long message is cut, controls dropped, a bad URL and non-strings left out', () => {
  const push = pushPayload('octo/site');
  push.head_commit = {
    message: `<script>alert(1)</script>\u0000\u202e${'x'.repeat(5000)}`,
    author: { name: { not: 'a string' }, username: '\u001b[31mmallory' },
    url: 'javascript:alert(1)',
  };
  push.pusher = { name: 'p'.repeat(500) };
  const meta = metaOf('github', 'push', push);
  assert.is(meta.message!.length, MESSAGE_MAX);
  assert.ok(
    meta.message!.startsWith('<script>alert(1)</script>\u202e'),
    'markup and bidi kept (escaped where shown), NUL dropped',
  );
  assert.is(meta.author, '[31mmallory');
  assert.is(meta.pusher!.length, 200);
  assert.is(meta.commitUrl, undefined);
  for (const url of [
    'https://user:pw@github.com/x',
    'https://github.com/a b',
    `https://github.com/${'a'.repeat(3000)}`,
  ]) {
    push.head_commit.url = url;
    assert.is(metaOf('github', 'push', push).commitUrl, undefined, url);
  }
  delete push.head_commit;
  delete push.commits;
  assert.equal(metaOf('github', 'push', push), { pusher: 'p'.repeat(200) });
});

test.run();
