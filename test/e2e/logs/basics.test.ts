// @deno
// logs, the real script, on logs written by real builds: last job, --job, --list, --json,
// --follow of a running build. (Bad input and `logs rotate`: e2e/logs-rotate.test.ts.)
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite } from '../../_helpers/build.ts';
import { runScript, waitFor } from '../../_helpers/common.ts';

test('last job, --job, --list, --json', async () => {
  const site = await makeSite(
    { 'README.md': 'x\n' },
    'steps: [pull, compile]\ncompile: echo compiled "$SHIPKIT_JOB_ID"',
  );
  assert.is((await site.run('build', ['octo/site', '--job-id', 'ok-1'])).exitCode, 0);
  site.writeConfig('steps: [pull, compile]\ncompile: echo broken; exit 7');
  assert.is((await site.run('build', ['octo/site', '--job-id', 'bad-2'])).exitCode, 1);

  let r = await site.run('logs', ['octo/site']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^=== shipkit job bad-2 start /);
  assert.match(r.stdout, /\| broken/);
  assert.not.match(r.stdout, /ok-1/);

  r = await site.run('logs', ['site', '--job', 'ok-1']);
  assert.match(r.stdout, /\| compiled ok-1\n/);
  assert.match(r.stdout, /=== shipkit job ok-1 end .*"status":"succeeded"/);

  r = await site.run('logs', ['octo/site', '--list']);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^JOB\s+KIND\s+STATUS\s+EXIT\s+SHA\s+STARTED\s+TIME\s+FAILED STEP$/);
  assert.match(
    lines[1],
    new RegExp(`^bad-2\\s+build\\s+failed\\s+1\\s+${site.first.slice(0, 12)}\\s+\\S+Z\\s+[\\d.]+s\\s+compile$`),
  );
  assert.match(lines[2], /^ok-1\s+build\s+succeeded\s+0\s/);

  r = await site.run('logs', ['octo/site', '--list', '--json']);
  const list = JSON.parse(r.stdout);
  assert.equal(
    list.map((j: { id: string; status: string; exit: number }) => [j.id, j.status, j.exit]),
    [
      ['bad-2', 'failed', 1],
      ['ok-1', 'succeeded', 0],
    ],
  );

  r = await site.run('logs', ['octo/site', '--json', '--job', 'bad-2']);
  const job = JSON.parse(r.stdout);
  assert.is(job.step, 'compile');
  assert.match(job.log, /\| broken/);
});

test('--follow prints a running build as it goes and exits with its outcome', async () => {
  const site = await makeSite(
    { 'README.md': 'x\n' },
    'steps: [pull, compile]\ncompile: echo first; sleep 2; echo second',
  );
  const building = site.run('build', ['octo/site', '--job-id', 'live']);
  const logFile = path.join(site.logsDir, 'logs.txt');
  await waitFor(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('| first'), {
    what: 'the build to start',
    timeoutMs: 30_000,
  });
  const followed = await site.run('logs', ['octo/site', '--follow']);
  assert.is(followed.exitCode, 0, followed.stderr);
  assert.match(followed.stdout, /^=== shipkit job live start/);
  assert.match(followed.stdout, /\| first\n[\s\S]*\| second\n[\s\S]*=== shipkit job live end .*"status":"succeeded"/);
  assert.is((await building).exitCode, 0);
  // Following a finished failed job prints it and exits 1.
  site.writeConfig('steps: [pull, compile]\ncompile: exit 4');
  await site.run('build', ['octo/site', '--job-id', 'dead']);
  const after = await site.run('logs', ['octo/site', '--follow']);
  assert.is(after.exitCode, 1);
  assert.match(after.stdout, /=== shipkit job dead end/);
});

test('--help', async () => {
  const r = await runScript('logs', ['--help']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /logs REPO \[--config FILE\] \[--job ID\] \[--list\] \[--follow\] \[--json\]/);
  assert.match(r.stdout, /logs rotate \[REPO\]/);
});

test.run();
