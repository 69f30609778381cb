// @deno
// build's limits: the job timeout kills the process tree, SIGTERM stops a build cleanly, 50 MB
// of output keeps the log bounded, the log rotates itself, and `user:` runs commands as that user.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeSite } from '../../_helpers/build.ts';
import { $ } from '../../../lib/core/shell.ts';
import { scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';

test('a hanging step is killed at the timeout with its process tree; the log says so', async () => {
  const site = await makeSite({ 'README.md': 'x\n' }, 'compile: echo start; sleep 600 & sleep 600\ntimeout: 3');
  const t0 = Date.now();
  const r = await site.run('build', ['octo/site', '--job-id', 'hang']);
  assert.is(r.exitCode, 1);
  assert.ok(Date.now() - t0 < 45_000, `took ${Date.now() - t0} ms`);
  assert.match(r.stderr, /failed at step compile: .* was killed at the job's time limit \(3 s\)/);
  const log = site.logText();
  assert.match(log, /!!! time limit reached: the job's timeout is 3 s; stopping process group \d+/);
  assert.match(log, /=== shipkit job hang end \{.*"status":"failed".*"step":"compile"/);
});

test("SIGTERM to build stops the running command's tree and still writes the trailer", async () => {
  const site = await makeSite(
    { 'README.md': 'x\n' },
    'steps: [pull, compile]\ncompile: sleep 600 & echo $! > sleeper.pid; echo started; wait',
  );
  const [cmd, ...pre] = scriptCommand('build');
  const child = spawn(cmd, [...pre, 'octo/site', '--config', site.config, '--job-id', 'stopped'], {
    stdio: 'ignore',
    env: { ...process.env, NO_COLOR: '1' },
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const logFile = path.join(site.logsDir, 'logs.txt');
  await waitFor(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('| started'), {
    what: 'the compile step',
    timeoutMs: 30_000,
  });
  const sleeper = Number(readFileSync(path.join(site.repoDir, 'sleeper.pid'), 'utf8'));
  child.kill('SIGTERM');
  assert.is(await exited, 1);
  await waitFor(
    () => {
      try {
        process.kill(sleeper, 0);
        return false;
      } catch {
        return true;
      }
    },
    { what: 'the sleeper to die', timeoutMs: 10_000 },
  );
  assert.match(
    site.logText(),
    /=== shipkit job stopped end \{.*"status":"failed".*"step":"compile","error":".*was stopped: the job received SIGTERM/,
  );
});

test('a step printing 50 MB: the log stays bounded and the build is not slowed', async () => {
  const site = await makeSite(
    { 'README.md': 'x\n' },
    'compile: yes "a line of very chatty build output" | head -c 52428800; echo; echo finished',
  );
  const t0 = Date.now();
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(Date.now() - t0 < 45_000, `took ${Date.now() - t0} ms`);
  const size = statSync(path.join(site.logsDir, 'logs.txt')).size;
  assert.ok(size < 3 * 1024 * 1024, `logs.txt is ${size} bytes`);
  assert.match(site.logText(), /--- [\d.]+ MB of output left out here/);
  assert.match(site.logText(), /\| finished\n/);
});

test('the build rotates logs.txt by itself once the size cap is passed', async () => {
  const site = await makeSite(
    { 'README.md': 'x\n' },
    'steps: [pull, compile]\ncompile: seq 1 300',
    'logs:\n  max_size: 4k\n  keep: 2',
  );
  for (let i = 0; i < 4; i++) assert.is((await site.run('build', ['octo/site'])).exitCode, 0);
  const files = readdirSync(site.logsDir).sort();
  assert.equal(files, ['logs.1.txt.gz', 'logs.2.txt.gz', 'logs.txt']);
  assert.ok(statSync(path.join(site.logsDir, 'logs.txt')).size < 20_000);
});

test('a second job of the same repo waits for the first; jobs never interleave in the log', async () => {
  // The first job holds until the second has said it is waiting (a fixed sleep lost the race on a
  // loaded machine, where starting the second build took longer than the sleep).
  const go = path.join(tmpDir(), 'go');
  const site = await makeSite(
    { 'README.md': 'x\n' },
    `steps: [pull, compile]\ncompile: echo "$SHIPKIT_JOB_ID begins"; if [ "$SHIPKIT_JOB_ID" = first ]; then n=0; while [ ! -e ${go} ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done; fi; echo "$SHIPKIT_JOB_ID ends"`,
  );
  const first = site.run('build', ['octo/site', '--job-id', 'first']);
  await waitFor(() => existsSync(path.join(site.data, 'state', 'octo__site', 'job.lock')), {
    what: 'the first job',
    timeoutMs: 30_000,
  });
  const [cmd, ...pre] = scriptCommand('build');
  const child = spawn(cmd, [...pre, 'octo/site', '--config', site.config, '--job-id', 'second'], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  await waitFor(() => /waiting up to 120 s/.test(stderr), { what: 'the second job waiting', timeoutMs: 60_000 });
  writeFileSync(go, '');
  assert.is(await exit, 0, stderr);
  assert.match(
    stderr,
    /waiting up to 120 s: octo\/site \(another build or release is running\) is locked by process \d+/,
  );
  assert.is((await first).exitCode, 0);
  const marks = site
    .logText()
    .split('\n')
    .filter((l) => /^=== shipkit job|\| \w+ (begins|ends)$/.test(l))
    .map((l) => l.replace(/^\S+ \| /, '').replace(/ \{.*/, ''));
  assert.equal(marks, [
    '=== shipkit job first start',
    'first begins',
    'first ends',
    '=== shipkit job first end',
    '=== shipkit job second start',
    'second begins',
    'second ends',
    '=== shipkit job second end',
  ]);
});

test('user: every command runs as that user (when run as root)', async () => {
  if (process.getuid?.() !== 0) {
    console.log('  (not root: user: is checked for its error only)');
    const site = await makeSite({ 'README.md': 'x\n' }, 'user: nobody');
    const r = await site.run('build', ['octo/site']);
    assert.is(r.exitCode, 2);
    assert.match(r.stderr, /needs shipkit to run as root/);
    return;
  }
  const site = await makeSite(
    { 'README.md': 'x\n' },
    'user: nobody\nsteps: [pull, compile]\ncompile: mkdir -p out && id -un > out/who.txt',
  );
  chmodSync(site.base, 0o755);
  // git refuses a repository owned by someone else (safe.directory): the served repo is nobody's.
  await $`chown -R 65534:65534 ${site.bare}`;
  const r = await site.run('build', ['octo/site']);
  assert.is(r.exitCode, 0, `${r.stderr}\n${existsSync(site.logsDir) ? site.logText() : ''}`);
  assert.is(readFileSync(path.join(site.repoDir, 'out', 'who.txt'), 'utf8').trim(), 'nobody');
  assert.is(statSync(path.join(site.repoDir, '.git')).uid, 65534);
  site.writeConfig('user: no-such-user-here');
  const bad = await site.run('build', ['octo/site']);
  assert.is(bad.exitCode, 2);
  assert.match(bad.stderr, /shipkit\.yml:\d+: user no-such-user-here does not exist on this machine/);
});

test.run();
