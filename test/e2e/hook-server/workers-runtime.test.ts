// @deno
// `workers: 2` under each runtime: Node forks two delivery workers; Deno, which has no
// node:cluster, takes deliveries in hook-server's own process and says so at start. Either way a
// signed delivery is answered 202 and its job runs.
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  pushPayload,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { RUNTIME, startScript, tmpDir } from '../../_helpers/common.ts';
import { deliveryWorkersOf } from '../../fixtures/processes.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;

test(`workers: 2 under ${RUNTIME}`, async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  appendFileSync(config, 'workers: 2\n');
  const env = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: FAKE_BUILD };
  const server = await startScript('hook-server', ['--config', config], { env, timeoutMs: 30_000 });
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: 'a'.repeat(40) }), SECRET);
    assert.is(res.status, 202, JSON.stringify(res.json));
    await waitForJobState(server.url, TOKEN, res.json.job, ['succeeded']);
    const workers = deliveryWorkersOf(server.child.pid!);
    if (RUNTIME === 'deno') {
      assert.match(server.output(), /workers: one process under Deno/);
      assert.is(workers.length, 0);
    } else assert.is(workers.length, 2);
  } finally {
    assert.is(await server.stop(), 0, server.output().slice(-2000));
  }
});

test.run();
