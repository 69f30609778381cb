// @deno
// Reliability: kill -9 hook-server at random moments while 200 signed deliveries stream in,
// restart it each time, and check that every delivery answered 202 was built exactly once (by
// job id) or superseded by a newer push to its branch, and that the journal reads back (through
// the read API of a server started afresh on the same data).
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAKE_BUILD, deliverGithub, pushPayload, readRuns, writeConfig } from '../../fixtures/hooks/deliveries.ts';
import { freePort, startScript, tmpDir, waitFor, type Server } from '../../_helpers/common.ts';

const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const env = {
  HOOK_SECRET: SECRET,
  HOOK_TOKEN: TOKEN,
  SHIPKIT_BUILD_COMMAND: FAKE_BUILD,
  SHIPKIT_RELEASE_COMMAND: FAKE_BUILD,
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('kill -9 during a stream of 200 deliveries: every 202 is built exactly once', async () => {
  const dir = tmpDir();
  const repos: Record<string, object> = {};
  for (let i = 0; i < 100; i++) repos[`r/repo${i}`] = {};
  const config = writeConfig(dir, { repos, concurrency: 4 });
  writeFileSync(path.join(dir, 'sleep'), '0.05');
  const port = await freePort();
  const start = () =>
    startScript('hook-server', ['--config', config, '--listen', `127.0.0.1:${port}`], { env, timeoutMs: 30_000 });
  let server: Server = await start();
  const url = server.url;

  const pending = Array.from({ length: 200 }, (_, i) => ({
    i,
    delivery: `delivery-${i}`,
    repo: `r/repo${i % 100}`,
    sha: (i + 1).toString(16).padStart(40, 'a'),
  }));
  const answered202 = new Map<string, string>(); // job id → delivery
  const answeredDuplicate: string[] = [];
  let sending = true;
  let kills = 0;
  let attempts = 0;
  // Three kills at random points of the stream (by deliveries sent), a few ms after the mark.
  const marks = [20 + Math.random() * 40, 80 + Math.random() * 40, 140 + Math.random() * 40].map(Math.floor);

  const workers = Array.from({ length: 8 }, async () => {
    while (pending.length) {
      const d = pending.shift()!;
      attempts++;
      try {
        const res = await deliverGithub(url, 'push', pushPayload(d.repo, { sha: d.sha }), SECRET, {
          delivery: d.delivery,
        });
        if (res.status === 202) answered202.set(res.json.job, d.delivery);
        else if (res.status === 200 && res.json.duplicate) answeredDuplicate.push(res.json.job);
        else if (res.status >= 500) {
          pending.push(d);
          await sleep(50);
        } else throw new Error(`unexpected ${res.status} ${JSON.stringify(res.json)}`);
      } catch (error) {
        if (String(error).includes('unexpected')) throw error;
        pending.push(d); // no answer: the forge would redeliver, with the same delivery id
        await sleep(100);
      }
      await sleep(10 + Math.random() * 40);
    }
  });
  const killer = (async () => {
    for (const mark of marks) {
      while (sending && attempts < mark) await sleep(5);
      if (!sending) break;
      await sleep(Math.random() * 30);
      server.child.kill('SIGKILL');
      await new Promise((r) => server.child.once('exit', r));
      kills++;
      server = await start();
    }
  })();
  try {
    await Promise.all(workers);
  } finally {
    sending = false;
    await killer;
  }
  assert.is(kills, 3, `killed ${kills} times`);

  // Let the queue drain.
  const auth = { Authorization: `Bearer ${TOKEN}` };
  const jobs = (await waitFor(
    async () => {
      const res = await fetch(`${url}/jobs?limit=1000`, { headers: auth });
      const list = (await res.json()).jobs as Array<{
        id: string;
        state: string;
        attempts: number;
        reason: string | null;
      }>;
      return list.every((j) => j.state !== 'queued' && j.state !== 'running') ? list : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 200, what: 'the queue to drain' },
  ))!;
  assert.is(await server.stop(), 0);

  const states = new Map(jobs.map((j) => [j.id, j.state]));
  const runs = readRuns(dir);
  const doneCount = new Map<string, number>();
  for (const id of runs.done) doneCount.set(id, (doneCount.get(id) ?? 0) + 1);
  for (const [id, count] of doneCount) assert.is(count, 1, `job ${id} built ${count} times`);
  for (const [id, delivery] of answered202) {
    const state = states.get(id);
    assert.ok(state === 'succeeded' || state === 'superseded', `${delivery} → job ${id} ended ${state}`);
    assert.is(doneCount.get(id) ?? 0, state === 'succeeded' ? 1 : 0, `job ${id} (${state})`);
  }
  // The last push to each repo is never superseded, so every repo was built at its newest delivery.
  for (const id of answeredDuplicate) assert.ok(states.has(id));
  // A fresh process knows only what it read back from the journal.
  server = await start();
  const readBack = new Map(
    (
      (await (await fetch(`${server.url}/jobs?limit=1000`, { headers: auth })).json()).jobs as Array<{
        id: string;
        state: string;
      }>
    ).map((j) => [j.id, j.state]),
  );
  assert.is(await server.stop(), 0);
  for (const id of answered202.keys()) assert.ok(readBack.has(id), `journal has ${id}`);
  for (const [id, state] of states) assert.is(readBack.get(id), state, `job ${id} reads back as ${state}`);
  console.log(
    `kills: ${kills}, answered 202: ${answered202.size}, built: ${doneCount.size}, superseded: ${jobs.filter((j) => j.state === 'superseded').length}, run again after a kill: ${jobs.filter((j) => j.attempts > 1).length}, settled from a status file: ${jobs.filter((j) => j.reason?.includes('down')).length}`,
  );
});

test.run();
