// A full disk under a real hook-server: DATA on a 1 MB tmpfs (mounted for the test; skipped,
// saying why, where mount is refused), filled with a real file, then real signed deliveries.
// What was answered 202 must run once space is back and survive a restart; nothing may be left
// "running" without a process; a large body that cannot be spooled is a 503 the forge retries.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
  type Delivery,
} from '../../fixtures/hooks/deliveries.ts';
import { mountTinyDisk, skipFullDisk, type TinyDisk } from '../../_helpers/disk.ts';
import { freePort, startScript, tmpDir, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const started: Server[] = [];
// A failed assertion must not leave a server holding the disk (and this process) open.
test.after.each(async () => {
  await Promise.all(started.splice(0).map((server) => server.stop('SIGKILL')));
});

async function setup(
  concurrency: number,
): Promise<{ disk: TinyDisk; dir: string; start: () => Promise<Server> } | string> {
  const disk = mountTinyDisk('1m');
  if (typeof disk === 'string') return disk;
  const dir = tmpDir(); // config, the fake build's records and its hold file: not on the tiny disk
  const repos: Record<string, object> = { 'r/hold': {} };
  for (let i = 0; i < 60; i++) repos[`r/site${i}`] = {};
  const config = writeConfig(dir, { data: disk.dir, repos, concurrency });
  const port = await freePort();
  const start = async () => {
    const server = await startScript('hook-server', ['--config', config, '--listen', `127.0.0.1:${port}`], {
      env,
      timeoutMs: 30_000,
    });
    started.push(server);
    return server;
  };
  return { disk, dir, start };
}

const push = (url: string, repo: string, i: number) =>
  deliverGithub(url, 'push', pushPayload(repo, { sha: (i + 1).toString(16).padStart(40, 'b') }), SECRET);

/** Deliver to r/site0, r/site1, ... until one is refused; the disk is full, so one is. */
async function deliverUntilRefused(
  url: string,
  from = 0,
): Promise<{ accepted: string[]; refused: Delivery; next: number }> {
  const accepted: string[] = [];
  for (let i = from; i < from + 50; i++) {
    const res = await push(url, `r/site${i}`, i);
    if (res.status === 202) accepted.push(res.json.job);
    else return { accepted, refused: res, next: i + 1 };
  }
  throw new Error('50 deliveries accepted on a full 1 MB disk');
}

async function jobStates(url: string, ids: string[]): Promise<string[]> {
  return Promise.all(ids.map(async (id) => (await fetchJob(url, TOKEN, id)).state ?? 'missing'));
}

test('a job answered 202 after a failed journal write on a full disk is not lost on restart', async () => {
  const ctx = await setup(1);
  if (typeof ctx === 'string') return skipFullDisk('hook-server full-disk tests', ctx);
  const { disk, dir, start } = ctx;
  writeFileSync(path.join(dir, 'hold'), '');
  let server = await start();
  const hold = await push(server.url, 'r/hold', 999);
  assert.is(hold.status, 202);
  await waitForJobState(server.url, TOKEN, hold.json.job, ['running']);

  disk.fill();
  const { accepted, refused, next } = await deliverUntilRefused(server.url);
  assert.is(refused.status, 503, JSON.stringify(refused.json));
  assert.match(refused.json.error, /retry later/);
  disk.free();
  const after = await push(server.url, `r/site${next}`, next);
  assert.is(after.status, 202, 'space is back: deliveries are accepted again');
  accepted.push(after.json.job);

  // Every accepted job is still queued behind r/hold: only the journal knows them now.
  server.child.kill('SIGKILL');
  await server.stop();
  server = await start();
  assert.not.match(server.output(), /damaged records/);
  assert.equal(
    await jobStates(server.url, accepted),
    accepted.map(() => 'queued'),
    'every job answered 202 is in the journal after a restart',
  );

  rmSync(path.join(dir, 'hold'));
  for (const id of accepted) await waitForJobState(server.url, TOKEN, id, ['succeeded', 'failed'], 20_000);
  assert.equal(
    await jobStates(server.url, accepted),
    accepted.map(() => 'succeeded'),
  );
  const done = readRuns(dir).done;
  for (const id of accepted) assert.is(done.filter((d) => d === id).length, 1, `job ${id} built once`);
  assert.is(await server.stop(), 0);
});

test('a job that cannot start on a full disk stays queued (no "running" without a process) and runs once space is back', async () => {
  const ctx = await setup(1);
  if (typeof ctx === 'string') return skipFullDisk('hook-server full-disk tests', ctx);
  const { disk, dir, start } = ctx;
  let server = await start();
  // A job built before the disk fills: the journal's last page has room for a few more records.
  const before = await push(server.url, 'r/site0', 0);
  assert.is(before.status, 202);
  await waitForJobState(server.url, TOKEN, before.json.job, ['succeeded']);
  const builtBefore = readRuns(dir).started.length;
  disk.fill();
  const { accepted, refused } = await deliverUntilRefused(server.url, 1);
  assert.is(refused.status, 503);
  assert.ok(accepted.length > 0, "some deliveries were accepted into the journal's last page");
  await sleep(2_500); // a retry to start has come and gone
  const during = await jobStates(server.url, accepted);
  for (const state of during) assert.ok(state === 'queued' || state === 'running', `while full: ${during.join(', ')}`);
  assert.is(readRuns(dir).started.length, builtBefore, 'no build ran without space for its record and output');

  disk.free();
  const after = await push(server.url, 'r/site59', 59);
  assert.is(after.status, 202);
  accepted.push(after.json.job);
  for (const id of accepted) await waitForJobState(server.url, TOKEN, id, ['succeeded', 'failed'], 20_000);
  assert.equal(
    await jobStates(server.url, accepted),
    accepted.map(() => 'succeeded'),
    'every accepted job ran once space was back',
  );
  const runs = readRuns(dir);
  for (const id of accepted) assert.is(runs.done.filter((d) => d === id).length, 1, `job ${id} built once`);
  const listed = (
    await (await fetch(`${server.url}/jobs?limit=1000`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()
  ).jobs as Array<{ state: string }>;
  assert.not.ok(
    listed.some((j) => j.state === 'running' || j.state === 'queued'),
    'nothing left running or queued',
  );
  assert.is(await server.stop(), 0);

  server = await start();
  assert.equal(
    await jobStates(server.url, accepted),
    accepted.map(() => 'succeeded'),
    'and so they read back after a restart',
  );
  assert.is(await server.stop(), 0);
});

test('a genuine delivery too large for memory on a full disk gets 503 (retry), leaves no spool file, and is accepted once space is back', async () => {
  const ctx = await setup(1);
  if (typeof ctx === 'string') return skipFullDisk('hook-server full-disk tests', ctx);
  const { disk, start } = ctx;
  const server = await start();
  disk.fill();
  const payload = { ...pushPayload('r/site0', { sha: 'c'.repeat(40) }), padding: 'p'.repeat(300 * 1024) };
  const delivery = randomUUID();
  const refused = await deliverGithub(server.url, 'push', payload, SECRET, { delivery });
  assert.is(refused.status, 503, JSON.stringify(refused.json));
  assert.match(refused.json.error, /retry later/);
  assert.is(refused.headers.get('retry-after'), '30');
  const tmp = path.join(disk.dir, 'tmp');
  assert.ok(existsSync(tmp));
  assert.equal(readdirSync(tmp), [], 'no spooled body is left behind');
  disk.free();
  const again = await deliverGithub(server.url, 'push', payload, SECRET, { delivery });
  assert.is(again.status, 202, JSON.stringify(again.json));
  await waitForJobState(server.url, TOKEN, again.json.job, ['succeeded']);
  assert.is(await server.stop(), 0);
});

test.run();
