// Two hook-servers on one PostgreSQL (docs/ha.md): one leads (/healthz says which), and only the
// leader tells a job's end, so each notification is sent once whichever node took the push. SIGTERM
// drains (/healthz 503, the lead handed over at once); kill -9 of the leader lets the other lead
// within 10 s, and a job that ended meanwhile is told once by the new leader.
import { appendFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startReceiver } from '../../fixtures/hooks/receiver.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { startScript, waitFor, type Server } from '../../_helpers/common.ts';
import {
  queueConfig,
  SECRET,
  startWorker,
  TOKEN,
  waitForState,
  worldEnv,
  type Worker,
} from '../../fixtures/workers.ts';

const repos = { 'octo/a': {}, 'octo/b': {}, 'octo/c': {} };
let pg: Postgres | undefined;
let hook: Awaited<ReturnType<typeof startReceiver>>;
let worker: Worker | undefined;
let env: Record<string, string>;

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  env = { ...worldEnv(pg), NOTIFY_SECRET: 'notify-secret-for-ha' };
  hook = await startReceiver();
  worker = await startWorker(queueConfig('worker', repos, { concurrency: 3 }).config, 'w', env);
});

test.after(async () => {
  await worker?.stop();
  await hook?.close();
});

/** A hook-server named `name` with the shared notification target. */
function startNode(name: string, drainSeconds = 0): Promise<Server> {
  const { config } = queueConfig(name, repos, { concurrency: 0 });
  appendFileSync(
    config,
    [
      'notify:',
      `  - webhook: ${hook.base}/hooks/shipkit`,
      '    secret: env:NOTIFY_SECRET',
      '    on: [success, failure]',
      '',
    ].join('\n'),
  );
  return startScript(
    'hook-server',
    [
      '--config',
      config,
      '--listen',
      '127.0.0.1:0',
      '--name',
      name,
      ...(drainSeconds ? ['--drain', String(drainSeconds)] : []),
    ],
    { env },
  );
}

async function health(node: Server): Promise<{ status: number; body: any }> {
  const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.json() };
}

/** The node that leads once one does. */
async function leaderOf(nodes: Server[], timeoutMs = 10_000): Promise<Server> {
  return waitFor(
    async () => {
      const leading = [];
      for (const node of nodes) if ((await health(node)).body.leader) leading.push(node);
      assert.ok(leading.length <= 1, 'never two leaders at once');
      return leading[0];
    },
    { timeoutMs, intervalMs: 100, what: 'a leader' },
  );
}

const toldJobs = (): string[] => hook.received.map((r) => JSON.parse(r.body).job.id as string);

test('one node leads; /healthz names it; each end is told once whichever node took the push', async () => {
  if (!pg) return;
  const a = await startNode('a');
  const b = await startNode('b');
  try {
    const leader = await leaderOf([a, b]);
    for (const node of [a, b]) {
      const { status, body } = await health(node);
      assert.is(status, 200);
      assert.equal([body.ok, body.db, body.node, body.leader], [true, 'ok', node === a ? 'a' : 'b', node === leader]);
    }
    const before = hook.received.length;
    const jobs = [];
    for (const [i, repo] of ['octo/a', 'octo/b', 'octo/c'].entries()) {
      const res = await deliverGithub(
        (i % 2 ? a : b).url,
        'push',
        pushPayload(repo, { sha: `${i + 1}`.repeat(40) }),
        SECRET,
      );
      assert.is(res.status, 202);
      jobs.push(res.json.job);
    }
    for (const id of jobs) await waitForState(a, id, ['succeeded']);
    await waitFor(() => hook.received.length >= before + 3, { what: 'the notifications' });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(toldJobs().slice(before).sort(), [...jobs].sort(), 'each end told once, by the leader alone');
    // Counted where told: summed over the nodes, each job's end is counted once (no double count).
    let counted = 0;
    for (const node of [a, b]) {
      const text = await (await fetch(`${node.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
      for (const m of text.matchAll(/^shipkit_jobs_total\{[^}]*repo="octo\/[abc]"[^}]*\} (\d+)$/gm))
        counted += Number(m[1]);
    }
    assert.is(counted, 3, 'shipkit_jobs_total summed over both nodes');
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('SIGTERM drains: /healthz 503 while it still answers, the lead goes to the other node at once', async () => {
  if (!pg) return;
  const a = await startNode('a2', 3);
  const b = await startNode('b2', 3);
  try {
    const leader = await leaderOf([a, b]);
    const other = leader === a ? b : a;
    const exited = new Promise<number | null>((resolve) => leader.child.once('exit', resolve));
    leader.child.kill('SIGTERM');
    const draining = (await waitFor(
      async () => {
        const h = await health(leader);
        return h.status === 503 && !h.body.leader ? h : undefined;
      },
      { what: 'the drain' },
    ))!;
    assert.equal([draining.body.draining, draining.body.leader], [true, false]);
    assert.is(await leaderOf([other], 5_000), other);
    const res = await deliverGithub(other.url, 'push', pushPayload('octo/a', { sha: 'd'.repeat(40) }), SECRET);
    const before = toldJobs().length;
    await waitForState(other, res.json.job, ['succeeded']);
    await waitFor(() => toldJobs().length > before, { what: "the new leader's notification" });
    assert.equal(
      toldJobs().filter((id) => id === res.json.job),
      [res.json.job],
    );
    assert.is(await exited, 0, leader.output());
    assert.match(leader.output(), 'hands the lead over');
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('kill -9 of the leader: the other node leads within 10 s and tells, once, an end the dead one never told', async () => {
  if (!pg) return;
  const a = await startNode('a3');
  const b = await startNode('b3');
  try {
    const leader = await leaderOf([a, b]);
    const other = leader === a ? b : a;
    await worker!.stop();
    // Taken while the worker is away: the job ends after the leader is gone.
    const res = await deliverGithub(leader.url, 'push', pushPayload('octo/b', { sha: 'e'.repeat(40) }), SECRET);
    assert.is(res.status, 202);
    const killed = Date.now();
    leader.child.kill('SIGKILL');
    await leaderOf([other], 10_000);
    const tookMs = Date.now() - killed;
    console.log(`  the other node led ${tookMs} ms after kill -9 of the leader`);
    assert.ok(tookMs < 10_000);
    worker = await startWorker(queueConfig('worker', repos, { concurrency: 3 }).config, 'w', env);
    await waitForState(other, res.json.job, ['succeeded']);
    await waitFor(() => toldJobs().includes(res.json.job), { what: 'the end told by the new leader' });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.is(toldJobs().filter((id) => id === res.json.job).length, 1, 'told once');
    const { body } = await health(other);
    assert.equal([body.leader, body.node], [true, other === a ? 'a3' : 'b3']);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test.run();
