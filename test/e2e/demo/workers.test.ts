// npm run demo -- --workers 2 (tools/demo-workers.ts) as a child process: four real builds on two
// workers through a real PostgreSQL, both workers building, exit 0, nothing left behind.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { postgresBin } from '../../fixtures/postgres.ts';
import { describeProcesses, processesUsing } from '../../fixtures/processes.ts';
import { ROOT, runCommand } from '../../_helpers/common.ts';

test('the workers demo builds four repos on two workers in parallel and exits 0 with nothing left running', async () => {
  if (!postgresBin()) return void console.log('skipped: PostgreSQL is not installed');
  const r = await runCommand(
    process.execPath,
    [
      '--import',
      path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'),
      path.join(ROOT, 'tools/demo.ts'),
      '--workers',
      '2',
    ],
    { timeoutMs: 120_000 },
  );
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const rows = r.stdout.split('\n').filter((l) => /^ {2}demo\/site\d/.test(l));
  assert.is(rows.length, 4, r.stdout);
  assert.ok(
    rows.every((l) => l.endsWith('succeeded')),
    r.stdout,
  );
  for (const worker of ['worker1', 'worker2'])
    assert.ok(
      rows.some((l) => l.includes(` ${worker} `)),
      `${worker} built:\n${r.stdout}`,
    );
  assert.match(r.stdout, /4 builds in [\d.]+ s on 2 workers/);
  const dir = /everything in (\S+)/.exec(r.stdout)![1];
  assert.not.ok(existsSync(dir), 'the temp folder is gone');
  assert.equal(describeProcesses(processesUsing(dir)), '', 'no process of the demo is left');
});

test('--workers must be a whole number from 1 to 8', async () => {
  const r = await runCommand(process.execPath, [
    '--import',
    path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'),
    path.join(ROOT, 'tools/demo.ts'),
    '--workers',
    'lots',
  ]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /--workers must be a whole number from 1 to 8/);
});

test.run();
