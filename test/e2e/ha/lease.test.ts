// The leader's lease (docs/ha.md): two hook-servers on one PostgreSQL, the leader paused (SIGSTOP)
// for 15 s with its database session open while it retries a notification. The other node leads
// within 12 s (the lease lapsed; the stale session is ended); resumed (SIGCONT), the old leader sees
// it no longer leads, sends nothing and marks nothing told under its old term.
import { appendFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deliverGithub, pushPayload } from '../../fixtures/hooks/deliveries.ts';
import { startReceiver } from '../../fixtures/hooks/receiver.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';
import { startScript, waitFor, type Server } from '../../_helpers/common.ts';
import { queueConfig, SECRET, startWorker, waitForState, worldEnv, type Worker } from '../../fixtures/workers.ts';

const repos = { 'octo/a': {} };
let pg: Postgres | undefined;
let worker: Worker | undefined;
let env: Record<string, string>;
// Every message is refused (503) until `refusing` is cleared: senders keep retrying.
let refusing = true;
const hook = await startReceiver((_req, res) => {
  res.statusCode = refusing ? 503 : 200;
  res.end(refusing ? 'busy' : 'ok');
});

test.before(async () => {
  pg = await startPostgres();
  if (!pg) return;
  env = { ...worldEnv(pg), NOTIFY_SECRET: 'notify-secret-for-ha' };
  worker = await startWorker(queueConfig('worker', repos, { concurrency: 1 }).config, 'w', env);
});

test.after(async () => {
  await worker?.stop();
  await hook.close();
});

/** A node whose notifications go to /hooks/NAME, so the receiver knows who sent each. */
function startNode(name: string): Promise<Server> {
  const { config } = queueConfig(name, repos, { concurrency: 0 });
  appendFileSync(
    config,
    [
      'notify:',
      `  - webhook: ${hook.base}/hooks/${name}`,
      '    secret: env:NOTIFY_SECRET',
      '    on: [success]',
      '',
    ].join('\n'),
  );
  return startScript('hook-server', ['--config', config, '--listen', '127.0.0.1:0', '--name', name], { env });
}

const health = async (node: Server) =>
  (await (await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(5_000) })).json()) as { leader: boolean };
const sentBy = (name: string, job: string) =>
  hook.received.filter((r) => r.url === `/hooks/${name}` && JSON.parse(r.body).job.id === job);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a leader paused with its session open is replaced within 12 s; resumed, it writes nothing under its old term', async () => {
  if (!pg) return;
  const a = await startNode('a');
  const b = await startNode('b');
  try {
    const leader = (await waitFor(
      async () => ((await health(a)).leader ? a : (await health(b)).leader ? b : undefined),
      {
        what: 'a leader',
      },
    ))!;
    const other = leader === a ? b : a;
    const [name, otherName] = leader === a ? ['a', 'b'] : ['b', 'a'];
    const res = await deliverGithub(other.url, 'push', pushPayload('octo/a', { sha: '1'.repeat(40) }), SECRET);
    assert.is(res.status, 202);
    const job = res.json.job as string;
    await waitForState(other, job, ['succeeded']);
    await waitFor(() => sentBy(name, job).length === 1, { what: "the leader's first attempt (refused)" });

    // Paused in its 2 s backoff; its session (and the advisory lock) stays open.
    leader.child.kill('SIGSTOP');
    const paused = Date.now();
    await waitFor(async () => (await health(other)).leader, {
      what: 'the other node to lead',
      timeoutMs: 12_000,
      intervalMs: 100,
    });
    const tookMs = Date.now() - paused;
    console.log(`  the other node led ${tookMs} ms after SIGSTOP of the leader`);
    assert.ok(tookMs < 12_000, `took ${tookMs} ms`);
    assert.match(other.output(), `takes the lead from ${name}`);
    assert.is(await pg.sql('SELECT node FROM shipkit.leader'), otherName);
    await waitFor(() => sentBy(otherName, job).length >= 1, { what: "the new leader's first attempt" });

    await sleep(Math.max(0, paused + 15_000 - Date.now()));
    leader.child.kill('SIGCONT');
    await waitFor(async () => !(await health(leader)).leader, { what: 'the resumed node to say it does not lead' });
    await waitFor(() => /notification left to the node that leads now/.test(leader.output()), {
      what: 'the resumed node to give its retry up',
    });
    assert.match(leader.output(), `${name} no longer leads`);
    await sleep(1_000);
    assert.is(sentBy(name, job).length, 1, 'nothing sent by the resumed node');
    assert.is(
      await pg.sql(`SELECT told FROM shipkit.jobs WHERE id = '${job}'`),
      'f',
      'its mark under the old term fenced',
    );
    assert.ok((await health(other)).leader, 'the new leader still leads');

    // The new leader's retry gets through: the end is told once, and marked told by it.
    refusing = false;
    await waitFor(async () => (await pg!.sql(`SELECT told FROM shipkit.jobs WHERE id = '${job}'`)) === 't', {
      what: 'the end told by the new leader',
      timeoutMs: 20_000,
    });
    assert.is(sentBy(name, job).length, 1);
    assert.ok(sentBy(otherName, job).length >= 2);
  } finally {
    for (const node of [a, b]) node.child.kill('SIGCONT');
    await a.stop();
    await b.stop();
  }
});

test.run();
