// Pull request events with `workers: 2`: read, verified and answered in the delivery worker
// processes as in a single one (200 ignored, forged ones 401), nothing queued. Node only: Deno has
// no node:cluster.
import { appendFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { githubPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { deliveryWorkersOf } from '../../fixtures/processes.ts';
import { startScript, tmpDir } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;

test('workers: 2 — signed pull requests are answered ignored in the workers, forged ones refused', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  appendFileSync(config, 'workers: 2\n');
  const server = await startScript('hook-server', ['--config', config], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: 'false' },
    timeoutMs: 30_000,
  });
  try {
    assert.is(deliveryWorkersOf(server.child.pid!).length, 2);
    const payload = githubPullRequest('synchronize', { repo: 'octo/site' });
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => deliverGithub(server.url, 'pull_request', payload, SECRET)),
    );
    for (const answer of answers)
      assert.equal(
        [answer.status, answer.json],
        [200, { ok: true, ignored: 'pull request #2 synchronize: octo/site has no previews:' }],
      );
    const forged = await deliverGithub(server.url, 'pull_request', payload, 'not-the-secret');
    assert.is(forged.status, 401);
    const jobs = await fetch(`${server.url}/jobs`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const json = await jobs.json();
    assert.is((Array.isArray(json) ? json : json.jobs).length, 0);
  } finally {
    assert.is(await server.stop('SIGTERM'), 0);
  }
});

test.run();
