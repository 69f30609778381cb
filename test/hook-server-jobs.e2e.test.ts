// @deno
// hook-server running jobs: dedupe, supersede, redelivery, a hanging build, a loud build, a
// build looking for the server's secret, SIGTERM, building as another Unix user, and the real
// `build` script on a real bare repo.
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAKE_BUILD, deliverGithub, pushPayload, readRuns, writeConfig } from './fixtures/hooks/deliveries.ts';
import { ROOT, makeBareRepo, runCommand, startScript, tmpDir, waitFor, type Server } from './helpers.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const fakeEnv = { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN, SHIPKIT_BUILD_COMMAND: FAKE_BUILD, SHIPKIT_RELEASE_COMMAND: FAKE_BUILD };

async function jobOf(server: Server, id: string) {
  const res = await fetch(`${server.url}/jobs/${id}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return res.json() as Promise<any>;
}

function waitForState(server: Server, id: string, states: string[], timeoutMs = 30_000) {
  return waitFor(async () => {
    const job = await jobOf(server, id);
    return states.includes(job?.state) ? job : undefined;
  }, { what: `job ${id} to reach ${states.join('/')}`, timeoutMs });
}

function vmHwmKb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('dedupe while queued/running, supersede a queued push, and a redelivery after finishing runs again', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(path.join(dir, 'sleep'), '1');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    const first = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '1'.repeat(40) }), SECRET, { delivery: 'D1' });
    assert.is(first.status, 202);
    await waitForState(server, first.json.job, ['running']);
    const dup = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '1'.repeat(40) }), SECRET, { delivery: 'D1' });
    assert.is(dup.status, 200);
    assert.equal(dup.json, { job: first.json.job, duplicate: true, state: 'running' });
    const second = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '2'.repeat(40) }), SECRET, { delivery: 'D2' });
    const dupQueued = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '2'.repeat(40) }), SECRET, { delivery: 'D2' });
    assert.is(dupQueued.status, 200);
    assert.is(dupQueued.json.state, 'queued');
    const third = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '3'.repeat(40) }), SECRET, { delivery: 'D3' });
    assert.is(third.status, 202);
    const superseded = await jobOf(server, second.json.job);
    assert.is(superseded.state, 'superseded');
    assert.match(superseded.reason, third.json.job);
    await waitForState(server, third.json.job, ['succeeded']);
    assert.is((await jobOf(server, first.json.job)).state, 'succeeded');
    const runs = readRuns(dir);
    assert.equal(runs.started, [first.json.job, third.json.job], 'the superseded push never ran');
    const again = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '1'.repeat(40) }), SECRET, { delivery: 'D1' });
    assert.is(again.status, 202);
    assert.is.not(again.json.job, first.json.job);
    await waitForState(server, again.json.job, ['succeeded']);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('a hanging build is killed with its process group at the timeout, the next job runs; 50 MB of output; no secret in a build\'s environment', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'o/hang': { timeout: 1 }, 'o/site': {}, 'o/loud': {}, 'o/envgrep': {} } });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    const hang = await deliverGithub(server.url, 'push', pushPayload('o/hang'), SECRET);
    const next = await deliverGithub(server.url, 'push', pushPayload('o/site'), SECRET);
    const hung = await waitForState(server, hang.json.job, ['failed']);
    assert.match(hung.reason, /timed out after 1 s/);
    await waitForState(server, next.json.job, ['succeeded']);
    const sleeper = Number(readFileSync(path.join(dir, `hang-pid-${hang.json.job}`), 'utf8'));
    await waitFor(() => { try { process.kill(sleeper, 0); return false; } catch { return true; } }, { what: 'the hanging child to be gone' });

    const memBefore = vmHwmKb(server.child.pid!);
    const loud = await deliverGithub(server.url, 'push', pushPayload('o/loud'), SECRET);
    await waitForState(server, loud.json.job, ['succeeded']);
    // What is kept of it is bounded: its head and tail around a mark.
    const output = path.join(dir, 'data/jobs', loud.json.job, 'output.log');
    assert.ok(statSync(output).size <= 8.1 * 1024 * 1024, `${statSync(output).size} bytes kept`);
    const log = await fetch(`${server.url}/jobs/${loud.json.job}/log`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.is(log.status, 200);
    const text = await log.text();
    assert.match(text, /bytes of output cut by hook-server/);
    assert.match(text, /^# .* job \S+ attempt 1:/);
    assert.match(text.slice(-100), /^x+$/);
    const grown = (vmHwmKb(server.child.pid!) - memBefore) / 1024;
    assert.ok(grown < 40, `server peak memory grew by ${grown.toFixed(0)} MB`);

    const grep = await deliverGithub(server.url, 'push', pushPayload('o/envgrep'), SECRET);
    await waitForState(server, grep.json.job, ['succeeded']);
    const env = readFileSync(path.join(dir, `env-${grep.json.job}.txt`), 'utf8');
    assert.not.ok(env.includes(SECRET), 'the webhook secret is not in the build environment');
    assert.not.ok(env.includes(TOKEN), 'nor the token');
    assert.not.match(env, /HOOK_SECRET|SHIPKIT_BUILD_COMMAND/);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('SIGTERM: stops accepting, lets the running job finish, exits 0; the journal reads back', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(path.join(dir, 'sleep'), '1.5');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  const res = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
  await waitForState(server, res.json.job, ['running']);
  assert.is(await server.stop('SIGTERM'), 0);
  assert.ok(readRuns(dir).done.includes(res.json.job), 'the running job finished before exit');
  assert.match(server.output(), /SIGTERM/);
  const again = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    assert.is((await jobOf(again, res.json.job)).state, 'succeeded');
  } finally {
    assert.is(await again.stop(), 0);
  }
});

test('SIGTERM past --grace: the running job is interrupted and runs again on the next start', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(path.join(dir, 'sleep'), '30');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--grace', '0.5'], { env: fakeEnv });
  const res = await deliverGithub(server.url, 'push', pushPayload('octo/site'), SECRET);
  await waitForState(server, res.json.job, ['running']);
  assert.is(await server.stop('SIGTERM'), 0);
  assert.not.ok(readRuns(dir).done.includes(res.json.job));
  writeFileSync(path.join(dir, 'sleep'), '0');
  const again = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    const job = await waitForState(again, res.json.job, ['succeeded']);
    assert.is(job.attempts, 2);
    assert.equal(readRuns(dir).done, [res.json.job]);
  } finally {
    assert.is(await again.stop(), 0);
  }
});

test('a repo with user: is built as that Unix user; its work tree belongs to it', async () => {
  if (process.getuid?.() !== 0) {
    console.log('skipped: building as another user needs root (uid/gid on spawn)');
    return;
  }
  const user = 'shipkithook';
  if ((await runCommand('id', ['-u', user])).exitCode !== 0) {
    const made = await runCommand('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', user]);
    assert.is(made.exitCode, 0, made.stderr);
  }
  const uid = Number((await runCommand('id', ['-u', user])).stdout.trim());
  const dir = tmpDir();
  chmodSync(dir, 0o1777); // the fake build, running as the user, records its runs here
  const bare = await makeBareRepo(path.join(dir, 'remote'), 'owned');
  chmodSync(path.join(dir, 'remote'), 0o755);
  // git refuses to read a repository owned by someone else ("dubious ownership"); a forge's repo
  // is not owned by root either.
  assert.is((await runCommand('chown', ['-R', user, bare.bare])).exitCode, 0);
  const config = writeConfig(dir, { repos: { 't/owned': { user, url: `file://${bare.bare}` } } });
  chmodSync(config, 0o644);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('t/owned', { sha: bare.first }), SECRET);
    assert.is(res.status, 202);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed']);
    assert.is(job.state, 'succeeded', readFileSync(path.join(dir, 'data/jobs', job.id, 'output.log'), 'utf8').slice(-2000));
    assert.ok(readRuns(dir).lines.includes(`start ${job.id} t/owned ${uid}`), 'the build ran as the user');
    const work = path.join(dir, 'data/repos/t__owned');
    assert.is(statSync(work).uid, uid);
    assert.is(statSync(path.join(work, 'built.txt')).uid, uid);
    assert.ok(existsSync(path.join(work, '.git')), server.output());
    assert.is(statSync(path.join(work, '.git')).uid, uid, 'the first clone was made as the user');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('the real build as the repo\'s user: first clone and checkout belong to that user', async () => {
  if (process.getuid?.() !== 0 || !existsSync(path.join(ROOT, 'scripts/build.ts'))) {
    console.log('skipped: needs root and scripts/build.ts');
    return;
  }
  const user = 'shipkithook';
  if ((await runCommand('id', ['-u', user])).exitCode !== 0) {
    assert.is((await runCommand('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', user])).exitCode, 0);
  }
  const uid = Number((await runCommand('id', ['-u', user])).stdout.trim());
  const dir = tmpDir();
  chmodSync(dir, 0o755);
  const bare = await makeBareRepo(path.join(dir, 'remote'), 'site', { 'index.html': '<h1>hi</h1>\n' });
  chmodSync(path.join(dir, 'remote'), 0o755);
  assert.is((await runCommand('chown', ['-R', user, bare.bare])).exitCode, 0);
  const config = writeConfig(dir, { repos: { 't/site': { user, url: bare.bare, steps: ['pull'] } } });
  chmodSync(config, 0o644);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN } });
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('t/site', { sha: bare.first }), SECRET);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed'], 60_000);
    assert.is(job.state, 'succeeded', readFileSync(path.join(dir, 'data/jobs', job.id, 'output.log'), 'utf8').slice(-3000));
    const work = path.join(dir, 'data/repos/t__site');
    for (const f of ['.', '.git', 'index.html']) assert.is(statSync(path.join(work, f)).uid, uid, f);
    assert.is(statSync(path.join(dir, 'data/logs/t__site/logs.txt')).uid, uid, 'the build log is written by the user');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('not root: a repo with user: is started through `sudo -n -H -u USER --` (a recording sudo on PATH)', async () => {
  if (process.getuid?.() !== 0) {
    console.log('skipped: needs root to start hook-server as an unprivileged user');
    return;
  }
  const serverUser = 'shipkithook';
  if ((await runCommand('id', ['-u', serverUser])).exitCode !== 0) {
    assert.is((await runCommand('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', serverUser])).exitCode, 0);
  }
  const dir = tmpDir();
  chmodSync(dir, 0o1777);
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  // Records its arguments, then runs what follows `--` (it cannot switch users; the real one would).
  writeFileSync(path.join(bin, 'sudo'), `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/sudo-argv.txt"\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n`, { mode: 0o755 });
  const config = writeConfig(dir, { repos: { 't/viasudo': { user: 'nobody' } } });
  chmodSync(config, 0o644);
  const tsx = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
  const child = spawn('runuser', ['-u', serverUser, '--', process.execPath, '--import', tsx, path.join(ROOT, 'scripts/hook-server.ts'), '--config', config, '--listen', '127.0.0.1:0'], {
    env: { ...process.env, ...fakeEnv, PATH: `${bin}:${process.env.PATH}`, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  try {
    const url = (await waitFor(() => /listening on (http:\/\/\S+)/.exec(out)?.[1], { what: `hook-server as ${serverUser} to listen`, timeoutMs: 30_000 }))!;
    const server = { url } as Server;
    const res = await deliverGithub(url, 'push', pushPayload('t/viasudo'), SECRET);
    assert.is(res.status, 202, out);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed']);
    assert.is(job.state, 'succeeded', out);
    const argv = readFileSync(path.join(dir, 'sudo-argv.txt'), 'utf8').trim().split('\n');
    assert.equal(argv.slice(0, 6), ['-n', '-H', '-u', 'nobody', '--', FAKE_BUILD]);
    assert.equal(argv.slice(6, 9), ['t/viasudo', '--config', config]);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});

test('the real build script on a real bare repo: pull + install, and the install script finds no secret', async () => {
  if (!existsSync(path.join(ROOT, 'scripts/build.ts'))) {
    console.log('skipped: scripts/build.ts is not there yet');
    return;
  }
  const dir = tmpDir();
  const pkg = { name: 'envgrep', version: '1.0.0', private: true, scripts: { install: 'env > env-dump.txt' } };
  const bare = await makeBareRepo(path.join(dir, 'remote'), 'real', { 'package.json': JSON.stringify(pkg, null, 2), 'README.md': '# real\n' });
  const config = writeConfig(dir, { repos: { 't/real': { url: bare.bare, steps: ['pull', 'install'], timeout: 120 } } });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN } });
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('t/real', { sha: bare.first }), SECRET);
    assert.is(res.status, 202);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed'], 90_000);
    const out = readFileSync(path.join(dir, 'data/jobs', job.id, 'output.log'), 'utf8');
    assert.is(job.state, 'succeeded', out.slice(-3000));
    const work = path.join(dir, 'data/repos/t__real');
    assert.is((await runCommand('git', ['-C', work, 'rev-parse', 'HEAD'])).stdout.trim(), bare.first);
    const env = readFileSync(path.join(work, 'env-dump.txt'), 'utf8');
    assert.not.ok(env.includes(SECRET), 'the install script cannot see the webhook secret');
    assert.not.ok(env.includes(TOKEN));
    const log = await fetch(`${server.url}/jobs/${job.id}/log`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.is(log.status, 200);
    assert.match(await log.text(), /install/);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test.run();
