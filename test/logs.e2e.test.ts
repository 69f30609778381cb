// @deno
// logs, the real script, on logs written by real builds: last job, --job, --list, --json,
// --follow of a running build, and `logs rotate`.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite } from './build-helpers.ts';
import { runScript, waitFor } from './helpers.ts';
import { readFileSync } from 'node:fs';

test('last job, --job, --list, --json', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull, compile]\ncompile: echo compiled "$SHIPKIT_JOB_ID"');
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
  assert.match(lines[1], new RegExp(`^bad-2\\s+build\\s+failed\\s+1\\s+${site.first.slice(0, 12)}\\s+\\S+Z\\s+[\\d.]+s\\s+compile$`));
  assert.match(lines[2], /^ok-1\s+build\s+succeeded\s+0\s/);

  r = await site.run('logs', ['octo/site', '--list', '--json']);
  const list = JSON.parse(r.stdout);
  assert.equal(list.map((j: { id: string; status: string; exit: number }) => [j.id, j.status, j.exit]), [['bad-2', 'failed', 1], ['ok-1', 'succeeded', 0]]);

  r = await site.run('logs', ['octo/site', '--json', '--job', 'bad-2']);
  const job = JSON.parse(r.stdout);
  assert.is(job.step, 'compile');
  assert.match(job.log, /\| broken/);
});

test('bad input: unknown job, hostile job id, unknown repo, mixed flags', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull]');
  const none = await site.run('logs', ['octo/site']);
  assert.is(none.exitCode, 0);
  assert.match(none.stderr, /No jobs for octo\/site yet/);
  assert.is((await site.run('build', ['octo/site'])).exitCode, 0);
  const cases: Array<[string[], number, RegExp]> = [
    [['octo/site', '--job', 'nope'], 1, /No job nope in the logs of octo\/site/],
    [['octo/site', '--job', '../../etc/passwd'], 2, /Invalid job id/],
    [['other/site'], 2, /Repository other\/site is not in/],
    [['../site'], 2, /Invalid repository name/],
    [['octo/site', '--list', '--follow'], 2, /Use --list on its own/],
    [['octo/site', '--keep', '3'], 2, /--keep belongs to `logs rotate`/],
    [['rotate', '--max-size', 'huge'], 2, /--max-size must be a size/],
    [['rotate', '--keep=-1'], 2, /--keep must be a whole number/],
  ];
  for (const [args, code, message] of cases) {
    const r = await site.run('logs', args);
    assert.is(r.exitCode, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('--follow prints a running build as it goes and exits with its outcome', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull, compile]\ncompile: echo first; sleep 2; echo second');
  const building = site.run('build', ['octo/site', '--job-id', 'live']);
  const logFile = path.join(site.logsDir, 'logs.txt');
  await waitFor(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('| first'), { what: 'the build to start', timeoutMs: 30_000 });
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

test('logs rotate: size cap, kept files, skips a repo whose job is running', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'steps: [pull, compile]\ncompile: seq 1 200');
  for (let i = 0; i < 3; i++) {
    assert.is((await site.run('build', ['octo/site'])).exitCode, 0);
    const r = await site.run('logs', ['rotate', '--max-size', '1k', '--keep', '2']);
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /octo\/site: rotated logs\.txt \(\d+ bytes\) to logs\.1\.txt\.gz/);
  }
  assert.equal(readdirSync(site.logsDir).sort(), ['logs.1.txt.gz', 'logs.2.txt.gz']);
  // Jobs in rotated files are still listed.
  const list = await site.run('logs', ['octo/site', '--list', '--json']);
  assert.is(JSON.parse(list.stdout).length, 2);
  let r = await site.run('logs', ['rotate', 'octo/site', '--json']);
  assert.equal(JSON.parse(r.stdout), [{ repo: 'octo/site', rotated: false, size: 0, removed: [] }]);

  site.writeConfig('steps: [pull, compile]\ncompile: sleep 3');
  const building = site.run('build', ['octo/site']);
  await waitFor(() => existsSync(path.join(site.data, 'state', 'octo__site', 'job.lock')), { what: 'the job lock', timeoutMs: 30_000 });
  r = await site.run('logs', ['rotate', '--force']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /octo\/site: skipped: a job is running/);
  assert.is((await building).exitCode, 0);
});

test('--help', async () => {
  const r = await runScript('logs', ['--help']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /logs REPO \[--config FILE\] \[--job ID\] \[--list\] \[--follow\] \[--json\]/);
  assert.match(r.stdout, /logs rotate \[REPO\]/);
});

test.run();
