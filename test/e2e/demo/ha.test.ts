// npm run demo -- --nodes 2 (tools/demo-ha.ts) as a child process: two hook-servers on a real
// PostgreSQL behind a real haproxy, every push delivered twice, the leader killed with -9: one job
// per push, the other node leads, exit 0, nothing left behind.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HAPROXY } from '../../fixtures/haproxy.ts';
import { postgresBin } from '../../fixtures/postgres.ts';
import { describeProcesses, processesUsing } from '../../fixtures/processes.ts';
import { ROOT, runCommand } from '../../_helpers/common.ts';

const demo = (...args: string[]) =>
  runCommand(
    process.execPath,
    ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), path.join(ROOT, 'tools/demo.ts'), ...args],
    { timeoutMs: 120_000 },
  );

test('the HA demo: one job per push sent twice, another node leads after kill -9, exit 0, nothing left', async () => {
  if (!postgresBin() || !HAPROXY) return void console.log('skipped: PostgreSQL or haproxy is not installed');
  const r = await demo('--nodes', '2');
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const first = /(node\d) leads \(it alone/.exec(r.stdout)?.[1];
  const next = /(node\d) leads (\d+) ms later/.exec(r.stdout);
  assert.ok(first && next && next[1] !== first, r.stdout);
  assert.ok(Number(next![2]) < 10_000, `another node led within 10 s:\n${r.stdout}`);
  assert.match(r.stdout, '40 jobs in the database for 40 pushes sent 80 times');
  const dir = /everything in (\S+)/.exec(r.stdout)![1];
  assert.not.ok(existsSync(dir), 'the temp folder is gone');
  assert.equal(describeProcesses(processesUsing(dir)), '', 'no process of the demo is left');
});

test('--nodes must be a whole number from 2 to 5', async () => {
  const r = await demo('--nodes', '1');
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /--nodes must be a whole number from 2 to 5/);
});

test.run();
