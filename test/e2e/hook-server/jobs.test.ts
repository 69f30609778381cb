// @deno
// hook-server running jobs: dedupe, supersede, redelivery, a hanging build, a loud build, a
// build looking for the server's secret, SIGTERM. Build users and the real build script are in
// e2e/hook-server-users.test.ts.
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
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
import { startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

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

function vmHwmKb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('dedupe while queued/running, supersede a queued push, and a redelivery after finishing runs again', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(path.join(dir, 'sleep'), '1');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    const first = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '1'.repeat(40) }), SECRET, {
      delivery: 'D1',
    });
    assert.is(first.status, 202);
    await waitForState(server, first.json.job, ['running']);
    const dup = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '1'.repeat(40) }), SECRET, {
      delivery: 'D1',
    });
    assert.is(dup.status, 200);
    assert.equal(dup.json, { job: first.json.job, duplicate: true, state: 'running' });
    const second = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '2'.repeat(40) }), SECRET, {
      delivery: 'D2',
    });
    const dupQueued = await deliverGithub(
      server.url,
      'push',
      pushPayload('octo/site', { sha: '2'.repeat(40) }),
      SECRET,
      { delivery: 'D2' },
    );
    assert.is(dupQueued.status, 200);
    assert.is(dupQueued.json.state, 'queued');
    const third = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '3'.repeat(40) }), SECRET, {
      delivery: 'D3',
    });
    assert.is(third.status, 202);
    const superseded = await jobOf(server, second.json.job);
    assert.is(superseded.state, 'superseded');
    assert.match(superseded.reason, third.json.job);
    await waitForState(server, third.json.job, ['succeeded']);
    assert.is((await jobOf(server, first.json.job)).state, 'succeeded');
    const runs = readRuns(dir);
    assert.equal(runs.started, [first.json.job, third.json.job], 'the superseded push never ran');
    const again = await deliverGithub(server.url, 'push', pushPayload('octo/site', { sha: '1'.repeat(40) }), SECRET, {
      delivery: 'D1',
    });
    assert.is(again.status, 202);
    assert.is.not(again.json.job, first.json.job);
    await waitForState(server, again.json.job, ['succeeded']);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test('the log says a job is queued before it says it started (each of 8 deliveries, every one started at once)', async () => {
  const dir = tmpDir();
  const repos = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`octo/order${i}`, {}]));
  const config = writeConfig(dir, { repos, concurrency: 8 });
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0'], { env: fakeEnv });
  try {
    const answers = await Promise.all(
      Object.keys(repos).map((repo) => deliverGithub(server.url, 'push', pushPayload(repo), SECRET)),
    );
    const ids = answers.map((a) => {
      assert.is(a.status, 202);
      return a.json.job as string;
    });
    for (const id of ids) await waitForState(server, id, ['succeeded']);
    const lines = server.output().split('\n');
    for (const id of ids) {
      const queued = lines.findIndex((l) => /job queued/.test(l) && l.includes(`job=${id}`));
      const started = lines.findIndex((l) => /job started/.test(l) && l.includes(`job=${id}`));
      assert.ok(queued >= 0 && started >= 0, `both lines for ${id}`);
      assert.ok(queued < started, `job ${id}: queued (line ${queued}) before started (line ${started})`);
    }
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test("a hanging build is killed with its process group at the timeout, the next job runs; 50 MB of output; no secret in a build's environment", async () => {
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
    await waitFor(
      () => {
        try {
          process.kill(sleeper, 0);
          return false;
        } catch {
          return true;
        }
      },
      { what: 'the hanging child to be gone' },
    );

    const memBefore = vmHwmKb(server.child.pid!);
    const loud = await deliverGithub(server.url, 'push', pushPayload('o/loud'), SECRET);
    await waitForState(server, loud.json.job, ['succeeded']);
    // What is kept of it is bounded: its head and tail around a mark.
    const output = path.join(dir, 'data/jobs', loud.json.job, 'output.log');
    assert.ok(statSync(output).size <= 8.1 * 1024 * 1024, `${statSync(output).size} bytes kept`);
    const log = await fetch(`${server.url}/jobs/${loud.json.job}/log`, {
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
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

test('SIGTERM the moment it says it is listening: still a clean stop and exit 0', async () => {
  // The handler must be in place before the "listening" line: a supervisor that signals as soon
  // as it sees it would otherwise kill the server outright (exit by signal, jobs cut short).
  const codes = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const server = await startScript(
        'hook-server',
        ['--config', writeConfig(tmpDir(), { repos: { 'octo/site': {} } }), '--listen', '127.0.0.1:0'],
        { env: fakeEnv },
      );
      return server.stop('SIGTERM');
    }),
  );
  assert.equal(codes, Array(8).fill(0));
});

test('SIGTERM past --grace: the running job is interrupted and runs again on the next start', async () => {
  const dir = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} } });
  writeFileSync(path.join(dir, 'sleep'), '30');
  const server = await startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--grace', '0.5'], {
    env: fakeEnv,
  });
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

test.run();
