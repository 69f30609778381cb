// @deno
// hook-server starting jobs as other Unix users (uid/gid as root, `sudo -n -u` otherwise), and
// the real `build` script on a real bare repo, its install script looking for the secret.
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  fetchJob,
  pushPayload,
  readRuns,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import {
  ROOT,
  makeBareRepo,
  runCommand,
  startScript,
  tmpDir,
  waitFor,
  type Server,
  rootBuildUser,
} from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const fakeEnv = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};

const jobOf = (server: Server, id: string) => fetchJob(server.url, TOKEN, id);
const waitForState = (server: Server, id: string, states: string[], timeoutMs?: number) =>
  waitForJobState(server.url, TOKEN, id, states, timeoutMs);

test('a repo with user: is built as that Unix user; its work tree belongs to it', async () => {
  const as = await rootBuildUser('building as another user needs root (uid/gid on spawn)');
  if (!as) return;
  const { user, uid } = as;
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
    assert.is(
      job.state,
      'succeeded',
      readFileSync(path.join(dir, 'data/jobs', job.id, 'output.log'), 'utf8').slice(-2000),
    );
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

test("the real build as the repo's user: first clone and checkout belong to that user; npm ci works without a home", async () => {
  if (!existsSync(path.join(ROOT, 'scripts/build.ts'))) {
    console.log('skipped: needs scripts/build.ts');
    return;
  }
  const as = await rootBuildUser();
  if (!as) return;
  const { user, uid } = as;
  const dir = tmpDir();
  chmodSync(dir, 0o755);
  // A dependency from a local tarball: `npm ci` puts it through npm's cache, which for a user
  // whose home is /nonexistent must be somewhere else (DATA/state/REPO/npm-cache).
  const tarball = path.join(dir, 'pkgs', 'dep-1.0.0.tgz');
  mkdirSync(path.join(dir, 'pkgs/package'), { recursive: true, mode: 0o755 });
  writeFileSync(path.join(dir, 'pkgs/package/package.json'), JSON.stringify({ name: 'dep', version: '1.0.0' }));
  writeFileSync(path.join(dir, 'pkgs/package/index.js'), 'module.exports = 1;\n');
  assert.is((await runCommand('tar', ['-czf', tarball, '-C', path.join(dir, 'pkgs'), 'package'])).exitCode, 0);
  chmodSync(tarball, 0o644);
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const pkg = { name: 'site', version: '1.0.0', private: true, dependencies: { dep: `file:${tarball}` } };
  const lock = {
    name: 'site',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'site', version: '1.0.0', dependencies: pkg.dependencies },
      'node_modules/dep': { version: '1.0.0', resolved: `file:${tarball}`, integrity },
    },
  };
  const bare = await makeBareRepo(path.join(dir, 'remote'), 'site', {
    'index.html': '<h1>hi</h1>\n',
    'package.json': JSON.stringify(pkg, null, 2),
    'package-lock.json': JSON.stringify(lock, null, 2),
  });
  chmodSync(path.join(dir, 'remote'), 0o755);
  assert.is((await runCommand('chown', ['-R', user, bare.bare])).exitCode, 0);
  const config = writeConfig(dir, {
    repos: { 't/site': { user, url: bare.bare, steps: ['pull', 'install'], timeout: 120 } },
  });
  chmodSync(config, 0o644);
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
  });
  try {
    const res = await deliverGithub(server.url, 'push', pushPayload('t/site', { sha: bare.first }), SECRET);
    const job = await waitForState(server, res.json.job, ['succeeded', 'failed'], 90_000);
    const log = () => readFileSync(path.join(dir, 'data/logs/t__site/logs.txt'), 'utf8').slice(-3000);
    assert.is(
      job.state,
      'succeeded',
      readFileSync(path.join(dir, 'data/jobs', job.id, 'output.log'), 'utf8').slice(-3000) + log(),
    );
    const work = path.join(dir, 'data/repos/t__site');
    for (const f of ['.', '.git', 'index.html']) assert.is(statSync(path.join(work, f)).uid, uid, f);
    assert.is(statSync(path.join(dir, 'data/logs/t__site/logs.txt')).uid, uid, 'the build log is written by the user');
    assert.match(log(), /npm ci/);
    assert.ok(existsSync(path.join(work, 'node_modules/dep/package.json')), 'npm ci installed the dependency');
    const cache = path.join(dir, 'data/state/t__site/npm-cache');
    assert.ok(existsSync(cache), `npm's cache is under the repo's state folder: ${log()}`);
    assert.is(statSync(cache).uid, uid, 'the npm cache belongs to the user');
    assert.ok(readdirSync(cache).length > 0, 'npm used that cache');
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('not root: a repo with user: is started through `sudo -n -H -u USER --` (a recording sudo on PATH)', async () => {
  const as = await rootBuildUser('needs root to start hook-server as an unprivileged user');
  if (!as) return;
  const serverUser = as.user;
  const dir = tmpDir();
  chmodSync(dir, 0o1777);
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  // Records its arguments, then runs what follows `--` (it cannot switch users; the real one would).
  writeFileSync(
    path.join(bin, 'sudo'),
    `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/sudo-argv.txt"\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n`,
    { mode: 0o755 },
  );
  const config = writeConfig(dir, { repos: { 't/viasudo': { user: 'nobody' } } });
  chmodSync(config, 0o644);
  const tsx = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
  const child = spawn(
    'runuser',
    [
      '-u',
      serverUser,
      '--',
      process.execPath,
      '--import',
      tsx,
      path.join(ROOT, 'scripts/hook-server.ts'),
      '--config',
      config,
      '--listen',
      '127.0.0.1:0',
    ],
    {
      env: { ...process.env, ...fakeEnv, PATH: `${bin}:${process.env.PATH}`, HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  try {
    const url = (await waitFor(() => /listening on (http:\/\/\S+)/.exec(out)?.[1], {
      what: `hook-server as ${serverUser} to listen`,
      timeoutMs: 30_000,
    }))!;
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
  const bare = await makeBareRepo(path.join(dir, 'remote'), 'real', {
    'package.json': JSON.stringify(pkg, null, 2),
    'README.md': '# real\n',
  });
  const config = writeConfig(dir, {
    repos: { 't/real': { url: bare.bare, steps: ['pull', 'install'], timeout: 120 } },
  });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], {
    env: { HOOK_SECRET: SECRET, HOOK_TOKEN: TOKEN },
  });
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
