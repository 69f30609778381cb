// hook-server on every core (`workers:`): the real script with two delivery worker processes.
// Deliveries are read, verified and parsed in the workers and queued by the primary; every other
// route is passed to the primary; a worker killed with -9 is replaced and no delivery answered
// 2xx is lost; SIGTERM drains the workers; the body cap and signatures hold in the workers; bad
// `workers:` values are refused. Node only: Deno has no node:cluster (it runs one process).
import { randomUUID } from 'node:crypto';
import { appendFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FAKE_BUILD,
  deliverGithub,
  githubSignature,
  post,
  pushPayload,
  readRuns,
  waitForJobState,
  writeConfig,
} from '../../fixtures/hooks/deliveries.ts';
import { runScript, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';
import { deliveryWorkersOf } from '../../fixtures/processes.ts';
import { fromFork, githubPullRequest } from '../../fixtures/hooks/pull-requests.ts';
import { previewUserEnv } from '../../fixtures/previews/as-user.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
const auth = { Authorization: `Bearer ${TOKEN}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A config of `repos` repos with `workers: 2` (and more keys, appended). */
function workersConfig(dir: string, repos: number, extra = 'workers: 2\n'): string {
  const list: Record<string, object> = {};
  for (let i = 0; i < repos; i++) list[`r/repo${i}`] = {};
  const file = writeConfig(dir, { repos: list, concurrency: 4 });
  appendFileSync(file, extra);
  return file;
}

async function start(config: string): Promise<Server> {
  return startScript('hook-server', ['--config', config], { env, timeoutMs: 30_000 });
}

test('workers: 2 — deliveries in the workers, the rest passed to the primary', async () => {
  const dir = tmpDir();
  const config = workersConfig(dir, 10, 'workers: 2\nmax_body: 32768\n');
  const server = await start(config);
  try {
    const workers = deliveryWorkersOf(server.child.pid!);
    assert.is(workers.length, 2, `two worker processes: ${workers.join(', ')}`);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        deliverGithub(
          server.url,
          'push',
          pushPayload(`r/repo${i % 10}`, { sha: `${i + 1}`.padStart(40, 'b') }),
          SECRET,
        ),
      ),
    );
    const jobs = answers.map((a) => {
      assert.is(a.status, 202, JSON.stringify(a.json));
      return a.json.job as string;
    });
    assert.is(new Set(jobs).size, 20);
    // The read API, through a worker to the primary.
    for (const id of jobs.slice(-3)) await waitForJobState(server.url, TOKEN, id, ['succeeded', 'superseded']);
    const health = await fetch(`${server.url}/healthz`);
    assert.is(health.status, 200);
    assert.ok((await health.json()).ok);
    const page = await fetch(`${server.url}/jobs?limit=100`, { headers: auth });
    assert.is(page.status, 200);
    const listed = (await page.json()).jobs.length;
    assert.is(listed, 20);
    // The workers' answers are counted by the primary's /metrics (told every 200 ms).
    const accepted = async () => {
      const metrics = await (await fetch(`${server.url}/metrics`, { headers: auth })).text();
      return [...metrics.matchAll(/^shipkit_deliveries_total\{[^}]*answer="202"[^}]*\} (\d+)/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };
    await waitFor(async () => (await accepted()) === 20, { what: '20 deliveries answered 202 in /metrics' });
    await sleep(500);
    assert.is(await accepted(), 20, 'counted once');

    // Bad input, answered by a worker: nothing queued.
    const body = JSON.stringify(pushPayload('r/repo1', { sha: 'c'.repeat(40) }));
    const unsigned = await post(`${server.url}/hooks/github`, body, {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'push',
      'X-Hub-Signature-256': await githubSignature('another secret', body),
    });
    assert.is(unsigned.status, 401);
    const big = Buffer.alloc(65536, 'x');
    const tooBig = await post(`${server.url}/hooks/github`, big, {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'push',
      'X-Hub-Signature-256': await githubSignature(SECRET, big.toString()),
    });
    assert.is(tooBig.status, 413);
    const unknown = await deliverGithub(server.url, 'push', pushPayload('r/nobody', { sha: 'd'.repeat(40) }), SECRET);
    assert.is(unknown.status, 404);
    const after = (await (await fetch(`${server.url}/jobs?limit=100`, { headers: auth })).json()).jobs.length;
    assert.is(after, 20, 'nothing queued by the refused deliveries');
    assert.equal(
      readdirSync(path.join(dir, 'data', 'tmp')).filter((f) => f.startsWith('body-')),
      [],
    );
    // A client's own peer header is not believed: the login attempt is recorded from its socket.
    const login = await fetch(`${server.url}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Shipkit-Peer': '203.0.113.9' },
      body: 'token=wrong',
      redirect: 'manual',
    });
    assert.ok(login.status >= 300, `login answered ${login.status}`);
    const audit = await (await fetch(`${server.url}/audit`, { headers: auth })).json();
    const failed = audit.entries.filter((e: { action: string }) => e.action === 'login.failed');
    assert.is(failed.length, 1, JSON.stringify(audit.entries));
    assert.is(failed[0].from, '127.0.0.1');
  } finally {
    assert.is(await server.stop(), 0);
  }
  assert.equal(deliveryWorkersOf(server.child.pid!), []);
});

test('kill -9 of a worker: another takes its place, and every 2xx was queued', async () => {
  const dir = tmpDir();
  const config = workersConfig(dir, 30);
  const server = await start(config);
  const pid = server.child.pid!;
  const before = deliveryWorkersOf(pid);
  assert.is(before.length, 2);
  const pending = Array.from({ length: 90 }, (_, i) => ({ i, delivery: `delivery-${i}` }));
  const accepted = new Map<string, string>(); // job → delivery
  let sent = 0;
  let failures = 0;
  const senders = Array.from({ length: 6 }, async () => {
    while (pending.length) {
      const d = pending.shift()!;
      sent++;
      try {
        const payload = pushPayload(`r/repo${d.i % 30}`, { sha: `${d.i + 1}`.padStart(40, 'e') });
        const res = await deliverGithub(server.url, 'push', payload, SECRET, { delivery: d.delivery });
        if (res.status === 202 || (res.status === 200 && res.json.duplicate)) accepted.set(res.json.job, d.delivery);
        else if (res.status >= 500) throw new Error(`${res.status}`);
        else assert.unreachable(`unexpected ${res.status} ${JSON.stringify(res.json)}`);
      } catch (error) {
        if ((error as Error).name === 'Assertion') throw error;
        failures++;
        pending.push(d); // a forge redelivers, with the same delivery id
        await sleep(50);
      }
    }
  });
  while (sent < 30) await sleep(5);
  process.kill(before[0], 'SIGKILL');
  await Promise.all(senders);
  const after = (await waitFor(
    () => {
      const now = deliveryWorkersOf(pid);
      return now.length === 2 && !now.includes(before[0]) ? now : undefined;
    },
    { timeoutMs: 15_000, what: 'a new worker in place of the killed one' },
  ))!;
  assert.ok(after.includes(before[1]), 'the other worker kept running');
  assert.match(server.output(), /a delivery worker died; starting another/);
  const ids = [...accepted.keys()];
  for (const id of ids) await waitForJobState(server.url, TOKEN, id, ['succeeded', 'superseded'], 40_000);
  assert.is(new Set(accepted.values()).size, 90, 'every delivery was in the end accepted');
  const runs = readRuns(dir);
  assert.is(new Set(runs.done).size, runs.done.length, 'no job built twice');
  assert.is(await server.stop(), 0, server.output().slice(-3000));
  console.log(`kill -9 of a worker: ${failures} attempt(s) failed or went unanswered and were sent again`);
});

test('SIGTERM drains the workers: deliveries answered 202 are in the journal', async () => {
  const dir = tmpDir();
  const config = workersConfig(dir, 20);
  let server = await start(config);
  const accepted: string[] = [];
  let stopped = false;
  let n = 0;
  const senders = Array.from({ length: 4 }, async () => {
    while (!stopped) {
      const i = n++;
      try {
        const payload = pushPayload(`r/repo${i % 20}`, { sha: `${i + 1}`.padStart(40, 'f') });
        const res = await deliverGithub(server.url, 'push', payload, SECRET);
        if (res.status === 202) accepted.push(res.json.job);
      } catch {
        // Refused once the listener closed.
      }
    }
  });
  while (accepted.length < 15) await sleep(5);
  const pid = server.child.pid!;
  const code = await server.stop('SIGTERM');
  stopped = true;
  await Promise.all(senders);
  assert.is(code, 0, server.output().slice(-2000));
  assert.equal(deliveryWorkersOf(pid), []);
  server = await start(config);
  try {
    const list = (await (await fetch(`${server.url}/jobs?limit=1000`, { headers: auth })).json()).jobs as Array<{
      id: string;
    }>;
    const known = new Set(list.map((j) => j.id));
    for (const id of accepted) assert.ok(known.has(id), `journal has ${id}`);
  } finally {
    await server.stop();
  }
});

test("workers: 2 with previews: a pull request taken by a worker reaches the primary's preview runner", async () => {
  const dir = tmpDir();
  const routes = tmpDir();
  const config = writeConfig(dir, { repos: { 'octo/site': {} }, concurrency: 1 });
  appendFileSync(
    config,
    [
      '    previews:',
      '      domain: preview.test',
      '      nginx:',
      `        dir: ${routes}`,
      '        test: /bin/true',
      '        reload: /bin/true',
      '      start: node server.cjs',
      'workers: 2',
      '',
    ].join('\n'),
  );
  const server = await startScript('hook-server', ['--config', config], {
    env: { ...env, ...(await previewUserEnv([dir])) },
    timeoutMs: 30_000,
  });
  try {
    assert.is(deliveryWorkersOf(server.child.pid!).length, 2);
    // A fork's pull request waits for an approval: the runner answers without building anything.
    const payload = fromFork(githubPullRequest('opened', { repo: 'octo/site' }), 'mallory/site');
    const answers = await Promise.all(
      [1, 2, 3, 4].map((n) =>
        deliverGithub(
          server.url,
          'pull_request',
          { ...payload, number: n, pull_request: { ...payload.pull_request, number: n } },
          SECRET,
        ),
      ),
    );
    for (const answer of answers) {
      assert.is(answer.status, 202, JSON.stringify(answer.json));
      assert.equal(
        [answer.json.state, answer.json.preview.startsWith('pr-')],
        ['waiting for approval', true],
        JSON.stringify(answer.json),
      );
    }
    const listed = await (await fetch(`${server.url}/previews`, { headers: auth })).json();
    assert.equal(
      listed.previews.map((p: any) => [p.name, p.state]).sort(),
      [1, 2, 3, 4].map((n) => [`pr-${n}`, 'waiting for approval']),
      'the primary has each preview',
    );
  } finally {
    assert.is(await server.stop(), 0, server.output());
  }
});

test('bad workers: values are refused with exit 2, naming the key', async () => {
  for (const value of ['0', '65', 'two', '1.5', '[2]']) {
    const dir = tmpDir();
    const config = workersConfig(dir, 1, `workers: ${value}\n`);
    const r = await runScript('hook-server', ['--config', config], { env, timeoutMs: 20_000 });
    assert.is(r.exitCode, 2, `workers: ${value}: ${r.stderr}`);
    assert.match(r.stderr, /workers/);
    assert.match(r.stderr, /auto \(one per core\) or a whole number from 1 to 64/);
  }
});

test.run();
