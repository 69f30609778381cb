// The process runner as the configs use it (processRunnerFor): one wiring for hook-server and
// `shipkit worker`, a job of the config run under its data folder, and an id that is not a job
// id (as a hostile row of the queue database may hold) refused before it becomes a path. The
// runner's processes in depth: test/unit/jobs/local/queue.test.ts and test/e2e/hook-server/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { processRunnerFor } from '../../../../lib/jobs/process/runner.ts';
import { loadShipkitConfig } from '../../../../lib/config/shipkit-yml.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import type { Job } from '../../../../lib/jobs/job.ts';
import { FAKE_BUILD, writeConfig } from '../../../fixtures/hooks/deliveries.ts';
import { ROOT, tmpDir } from '../../../_helpers/common.ts';

const commands = { build: [FAKE_BUILD], release: [FAKE_BUILD] };

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sources(full) : e.name.endsWith('.ts') ? [full] : [];
  });
}

async function world() {
  const dir = tmpDir();
  const config = await loadShipkitConfig(writeConfig(dir, { repos: { 'octo/site': {} } }));
  return { dir, config, run: await processRunnerFor(config, { log: silentLogger, commands }) };
}

const job = (id: string) =>
  ({ id, repo: 'octo/site', kind: 'build', sha: 'a'.repeat(40), ref: 'refs/heads/main', attempts: 1 }) as Job;

test('the job-runner wiring is written once: only lib/jobs/process/runner.ts makes a process runner', () => {
  const makers = sources(path.join(ROOT, 'lib'))
    .filter((file) => /createProcessRunner\(/.test(readFileSync(file, 'utf8')))
    .map((file) => path.relative(ROOT, file));
  assert.equal(makers, ['lib/jobs/process/runner.ts']);
});

test('processRunnerFor runs a job of the config under its data folder', async () => {
  const { dir, config, run } = await world();
  const outcome = await run(job('20260101-000000-aaaaaa'), { onSpawn() {} });
  assert.equal(outcome, { exit: 0, reason: undefined });
  assert.ok(existsSync(path.join(config.data, 'jobs', '20260101-000000-aaaaaa', 'output.log')));
  assert.match(readFileSync(path.join(dir, 'runs.log'), 'utf8'), 'start 20260101-000000-aaaaaa octo/site');
});

test('an id that is not a job id is refused before it becomes a path: nothing written, nothing run', async () => {
  const { dir, config, run } = await world();
  for (const id of ['../../x', '../escaped', '/tmp/abs', 'a/b', '', 'x'.repeat(65)]) {
    let spawned = false;
    const outcome = await run(job(id), {
      onSpawn() {
        spawned = true;
      },
    });
    assert.equal(outcome, { exit: null, reason: 'refused: its id is not a job id' }, id);
    assert.not.ok(spawned, id);
  }
  assert.not.ok(existsSync(path.join(dir, 'x')), 'DATA/jobs/../../x was not made');
  assert.not.ok(existsSync(path.join(config.data, 'escaped')));
  assert.not.ok(existsSync(path.join(dir, 'runs.log')), 'no build ran');
});

test.run();
