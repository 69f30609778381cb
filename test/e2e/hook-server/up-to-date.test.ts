// @deno
// "Up to date" (docs/hook-server.md): a push whose tree the last whole, successful build built, with
// the same config, env and shipkit, ends `succeeded` without a build process, saying so in the
// journal, logs.txt and the job's log; everything that could build differently builds. The build
// appends a line to a counter file, so "no build ran" is counted, not guessed.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload, waitForJobState } from '../../fixtures/hooks/deliveries.ts';
import { git, makeBareRepo, runScript, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const HOOK_SECRET = `hook-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const FINISHED = ['succeeded', 'failed', 'interrupted', 'superseded'];

/** A site with a submodule, a build (compile: its build.sh) that counts its runs, and hook-server for it. */
async function makeWorld() {
  const base = tmpDir('shipkit-up-to-date-');
  const lib = await makeBareRepo(path.join(base, 'git'), 'lib', { 'lib.txt': 'one\n' });
  const site = await makeBareRepo(path.join(base, 'git'), 'site', {
    // Fails while a file named `fail` is in the tree.
    'build.sh': 'echo run >> "$COUNTER"\ntest ! -f fail\n',
  });
  const work = site.work;
  writeFileSync(path.join(work, '.gitmodules'), `[submodule "lib"]\n\tpath = lib\n\turl = ${lib.bare}\n`);
  await git(work, 'add', '.gitmodules');
  await git(work, 'update-index', '--add', '--cacheinfo', `160000,${lib.first},lib`);
  await git(work, 'commit', '--quiet', '-m', 'add lib');
  // An empty, uninitialised submodule folder: `git add -A` keeps the pointer as the index has it.
  mkdirSync(path.join(work, 'lib'));
  // The build's git (HOME is hook-server's) may clone a submodule from a local path.
  const home = path.join(base, 'home');
  mkdirSync(home);
  writeFileSync(path.join(home, '.gitconfig'), '[protocol "file"]\n\tallow = always\n');
  const counter = path.join(base, 'counter');
  const data = path.join(base, 'data');
  const config = path.join(base, 'shipkit.yml');
  const writeConfig = (more: string[] = []) =>
    writeFileSync(
      config,
      [
        'listen: 127.0.0.1:0',
        `data: ${data}`,
        'secret: env:HOOK_SECRET',
        'token: env:HOOK_TOKEN',
        'repos:',
        '  octo/site:',
        `    url: ${site.bare}`,
        '    steps: [pull, compile]',
        '    compile: sh build.sh',
        '    timeout: 60',
        '    env:',
        `      COUNTER: ${counter}`,
        '      SITE_SECRET: env:SITE_SECRET',
        ...more,
        '',
      ].join('\n'),
    );
  writeConfig();
  const logs = path.join(data, 'logs', 'octo__site', 'logs.txt');
  const builtJson = path.join(data, 'state', 'octo__site', 'built.json');
  let server: Server | undefined;
  const env = (siteSecret: string) => ({ HOOK_SECRET, HOOK_TOKEN: TOKEN, SITE_SECRET: siteSecret, HOME: home });
  const world = {
    base,
    config,
    logs,
    builtJson,
    /** The build's work tree, DATA/repos/octo__site. */
    work: path.join(data, 'repos', 'octo__site'),
    env,
    writeConfig,
    runs: () => (existsSync(counter) ? readFileSync(counter, 'utf8').split('\n').filter(Boolean).length : 0),
    jobDir: (id: string) => path.join(data, 'jobs', id),
    async start(siteSecret = 'one') {
      await server?.stop();
      server = await startScript('hook-server', ['--config', config, '--grace', '0.5'], { env: env(siteSecret) });
      return server;
    },
    stop: () => server?.stop(),
    /** `shipkit build` by hand, with hook-server's variables. */
    cli: (siteSecret = 'one', more: string[] = []) =>
      runScript('build', ['octo/site', '--config', config, ...more], { env: env(siteSecret) }),
    /** Commit `files` (null removes one; none: an empty commit) and push; gives the new sha. */
    async commit(files: Record<string, string | null> = {}) {
      for (const [name, text] of Object.entries(files))
        if (text === null) rmSync(path.join(work, name));
        else writeFileSync(path.join(work, name), text);
      await git(work, 'add', '-A');
      await git(work, 'commit', '--quiet', '--allow-empty', '-m', 'change');
      await git(work, 'push', '--quiet', '--force', 'origin', 'HEAD:refs/heads/main');
      return (await git(work, 'rev-parse', 'HEAD')).stdout.trim();
    },
    /** Deliver a signed push of `sha` and wait for its job to end. */
    async push(
      sha: string,
      { forced = false, delivery = randomUUID() as string }: { forced?: boolean; delivery?: string } = {},
    ) {
      const payload = pushPayload('octo/site', { sha, cloneUrl: site.bare });
      payload.forced = forced;
      const delivered = await deliverGithub(server!.url, 'push', payload, HOOK_SECRET, { delivery });
      assert.is(delivered.status, 202, JSON.stringify(delivered.json));
      // Followed from the moment it is queued: the live log ends with the job, process or not.
      const followed = await fetch(`${server!.url}/jobs/${delivered.json.job}/log?follow=1`, {
        headers: { Authorization: `Bearer ${TOKEN}` },
        signal: AbortSignal.timeout(30_000),
      }).then((res) => res.text());
      assert.match(followed, /event: end/, 'the follow ended');
      return waitForJobState(server!.url, TOKEN, String(delivered.json.job), FINISHED, 60_000);
    },
    /** Point the submodule at a new commit of lib. */
    async bumpLib() {
      const next = await lib.commit({ 'lib.txt': 'two\n' });
      await git(work, 'update-index', '--add', '--cacheinfo', `160000,${next},lib`);
    },
  };
  return world;
}

type World = Awaited<ReturnType<typeof makeWorld>>;
let w: World;

/** Pushes `sha` and checks whether a build ran (`builds`) or the job ended up to date. */
async function expectPush(
  sha: string,
  builds: boolean,
  what: string,
  options: { forced?: boolean; delivery?: string } = {},
) {
  const before = w.runs();
  const job = await w.push(sha, options);
  const log = existsSync(w.logs) ? readFileSync(w.logs, 'utf8') : '';
  if (builds) {
    assert.is(w.runs(), before + 1, `${what}: a build ran\n${JSON.stringify(job)}`);
    assert.not.match(String(job.reason), /^up-to-date/, what);
  } else {
    assert.is(job.state, 'succeeded', `${what}: ${JSON.stringify(job)}\n${log.slice(-2000)}`);
    assert.match(
      job.reason,
      /^up-to-date: tree [0-9a-f]{12} \(commit [0-9a-f]{12}\) was built by job \S+; nothing to build$/,
    );
    assert.is(w.runs(), before, `${what}: no build ran`);
    assert.not.ok(existsSync(w.jobDir(job.id)), `${what}: no DATA/jobs/ID for a job without a process`);
  }
  return job;
}

test('an empty commit after a build is up to date: no process, and the journal, logs.txt and its log say so', async () => {
  w = await makeWorld();
  const server = await w.start();
  const first = await w.commit();
  const built = await expectPush(first, true, 'the first push');
  assert.is(built.state, 'succeeded', JSON.stringify(built));
  assert.is(readFileSync(path.join(w.work, 'lib', 'lib.txt'), 'utf8'), 'one\n', 'the submodule was checked out');
  const record = JSON.parse(readFileSync(w.builtJson, 'utf8'));
  assert.is(record.job, built.id);
  assert.not.match(readFileSync(w.builtJson, 'utf8'), /one/, 'no secret in clear in built.json');

  const same = await w.commit();
  const job = await expectPush(same, false, 'an empty commit');
  assert.is(job.exit, 0);
  assert.match(job.reason, new RegExp(`built by job ${built.id}`));
  const log = readFileSync(w.logs, 'utf8');
  assert.match(log, new RegExp(`=== shipkit job ${job.id} start .*"sha":"${same}"`));
  assert.match(log, new RegExp(`up-to-date: tree [0-9a-f]{12} \\(commit ${same.slice(0, 12)}\\) was built by job`));
  assert.match(log, new RegExp(`=== shipkit job ${job.id} end .*"status":"succeeded","exit":0`));
  const res = await fetch(`${server.url}/jobs/${job.id}/log`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.is(res.status, 200);
  assert.match(await res.text(), /up-to-date: tree/);
  const followed = await fetch(`${server.url}/jobs/${job.id}/log?follow=1`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  assert.match(await followed.text(), /up-to-date: tree[^]*event: end/);
  const page = await fetch(`${server.url}/jobs/${job.id}`, {
    headers: { Authorization: `Bearer ${TOKEN}`, Accept: 'text/html' },
  });
  assert.is(page.status, 200);
});

test("a decision's fetch leaves git's housekeeping to the builds: no gc while it decides", async () => {
  // Every fetch keeps a pack of its own, and a second pack makes a gc due (then in the foreground).
  const settings = { 'fetch.unpackLimit': '1', 'gc.autoPackLimit': '1', 'gc.autoDetach': 'false' };
  for (const [key, value] of Object.entries(settings)) await git(w.work, 'config', key, value);
  const packs = () => readdirSync(path.join(w.work, '.git', 'objects', 'pack')).filter((f) => f.endsWith('.pack'));
  try {
    await git(w.work, 'repack', '-q', '-d');
    assert.is(packs().length, 1);
    await expectPush(await w.commit(), false, 'an empty commit with a gc due');
    assert.is(packs().length, 2, "the decision's fetch kept its pack, and no gc merged the two");
    // The control: git's own fetch here runs the gc, so the count above can tell.
    await w.commit();
    await git(w.work, 'fetch', '--quiet', 'origin');
    assert.is(packs().length, 1, "a plain fetch with these settings runs git's gc");
  } finally {
    for (const key of Object.keys(settings)) await git(w.work, 'config', '--unset', key);
  }
});

test('a changed file, a forced push, a redelivery and a changed submodule pointer build', async () => {
  await expectPush(await w.commit({ 'page.html': '<h1>hi</h1>\n' }), true, 'a changed file');
  await expectPush(await w.commit(), false, 'an empty commit after it');
  const forced = await expectPush(await w.commit(), true, 'a forced push', { forced: true });
  assert.is(forced.force, true);
  const delivery = randomUUID();
  const sha = await w.commit();
  await expectPush(sha, false, 'an empty commit', { delivery });
  const again = await expectPush(sha, true, 'its redelivery, once the first job ended', { delivery });
  assert.is(again.force, true);
  await w.bumpLib();
  await expectPush(await w.commit(), true, 'a changed submodule pointer');
  await expectPush(await w.commit(), false, 'an empty commit after the submodule change');
});

test('after a failed build the same tree as the last success builds; so does a missing or damaged built.json', async () => {
  const failed = await expectPush(await w.commit({ fail: 'yes\n' }), true, 'a failing build');
  assert.is(failed.state, 'failed');
  assert.not.ok(existsSync(w.builtJson), 'a failed build leaves no record');
  await expectPush(await w.commit({ fail: null }), true, 'the tree of the last success, after a failure');
  rmSync(w.builtJson);
  await expectPush(await w.commit(), true, 'built.json removed');
  writeFileSync(w.builtJson, '{"job":');
  await expectPush(await w.commit(), true, 'built.json damaged');
  await expectPush(await w.commit(), false, 'an empty commit once recorded again');
});

test('a changed shipkit.yml or secret builds; skip_unchanged: false always builds', async () => {
  w.writeConfig(['    # a comment counts: the bytes of the file are compared']);
  await expectPush(await w.commit(), true, 'a changed shipkit.yml');
  await expectPush(await w.commit(), false, 'an empty commit after it');
  await w.start('two');
  await expectPush(await w.commit(), true, 'a changed secret value');
  await expectPush(await w.commit(), false, 'an empty commit with the new secret');
  w.writeConfig(['    skip_unchanged: false']);
  await w.start('two');
  await expectPush(await w.commit(), true, 'skip_unchanged: false (and a changed config)');
  await expectPush(await w.commit(), true, 'skip_unchanged: false, nothing changed');
});

test('shipkit build by hand always builds', async () => {
  await w.stop();
  w.writeConfig();
  const before = w.runs();
  for (let i = 0; i < 2; i++) {
    const r = await w.cli('two');
    assert.is(r.exitCode, 0, r.stderr);
  }
  assert.is(w.runs(), before + 2);
  assert.ok(existsSync(w.builtJson), 'a whole build by hand is recorded');
  const some = await w.cli('two', ['--steps', 'pull,compile']);
  assert.is(some.exitCode, 0, some.stderr);
  assert.not.ok(existsSync(w.builtJson), 'a build of chosen --steps clears the record and writes none');
});

test.after(async () => {
  await w?.stop();
});

test.run();
