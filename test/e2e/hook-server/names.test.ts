// @deno
// Names end to end: hook-server as a child process running the real `build`
// and `release` scripts against real git repos. Every name a forge sends and hook-server
// answers 202 for — a GitLab subgroup project, GitHub's `owner/.github`, a branch with `#`, `@`
// and non-ASCII, a monorepo tag `@scope/pkg@1.2.3` — builds or releases; none exits 2.
import { randomUUID } from 'node:crypto';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, post, releasePayload, waitForJobState, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { git, makeBareRepo, startScript, tmpDir } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const BRANCH = 'feature#1@日本';
const TAG = '@scope/pkg@1.2.3';

test('a GitLab subgroup project on a #/@/non-ASCII branch builds; owner/.github releases a monorepo tag', async () => {
  const dir = tmpDir();
  const repo = await makeBareRepo(
    path.join(dir, 'git'),
    'app',
    {
      'README.md': '# app\n',
      'release.sh': '#!/bin/sh\nprintf "%s %s\\n" "$SHIPKIT_REPO" "$SHIPKIT_TAG" > released.txt\n',
    },
    BRANCH,
  );
  chmodSync(path.join(repo.work, 'release.sh'), 0o755);
  const head = await repo.commit({ 'x.txt': 'x\n' }, 'executable release.sh');
  await git(repo.work, 'tag', TAG);
  await git(repo.work, 'push', '--quiet', 'origin', `refs/tags/${TAG}`);
  const config = writeConfig(dir, {
    repos: {
      'group/sub/app': { branch: JSON.stringify(BRANCH), url: repo.bare, steps: ['pull'] },
      'owner/.github': { url: repo.bare, steps: ['pull'] },
    },
  });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
  });
  try {
    const project = {
      path_with_namespace: 'group/sub/app',
      git_http_url: 'https://gitlab.example.com/group/sub/app.git',
    };
    const push = await post(
      `${server.url}/hooks/gitlab`,
      JSON.stringify({
        object_kind: 'push',
        ref: `refs/heads/${BRANCH}`,
        before: '0'.repeat(40),
        after: head,
        checkout_sha: head,
        project,
      }),
      {
        'Content-Type': 'application/json',
        'X-Gitlab-Event': 'Push Hook',
        'X-Gitlab-Token': SECRET,
        'X-Gitlab-Event-UUID': randomUUID(),
      },
    );
    assert.is(push.status, 202, JSON.stringify(push.json));
    const built = await waitForJobState(server.url, TOKEN, push.json.job, ['succeeded', 'failed']);
    assert.is(built.state, 'succeeded', `build exit ${built.exit}: ${built.reason}`);
    assert.is(built.sha, head);
    assert.is((await git(path.join(dir, 'data/repos/group__sub__app'), 'rev-parse', 'HEAD')).stdout.trim(), head);

    const release = await deliverGithub(server.url, 'release', releasePayload('owner/.github', { tag: TAG }), SECRET);
    assert.is(release.status, 202, JSON.stringify(release.json));
    const released = await waitForJobState(server.url, TOKEN, release.json.job, ['succeeded', 'failed']);
    assert.is(released.state, 'succeeded', `release exit ${released.exit}: ${released.reason}`);
    assert.is(readFileSync(path.join(dir, 'data/repos/owner__.github/released.txt'), 'utf8'), `owner/.github ${TAG}\n`);
  } finally {
    assert.is(await server.stop('SIGTERM'), 0);
  }
});

test.run();
