// Two hook-servers' job queues on one PostgreSQL (lib/jobs/pg/mirror.ts): another node's queued and
// superseded jobs are not read when their wake-up comes, only when a page asks (settle), while a
// job that starts is read at once (its output and statuses need it); a build superseded before it
// started is told once, by the node that superseded it. The wait that checks a deferred job was
// not read is a lower bound, not a timing: the prompt path reads within 25 ms.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../lib/core/log.ts';
import { resolveQueueUrl } from '../../../lib/db/connect.ts';
import { PgJobQueue } from '../../../lib/jobs/pg/queue.ts';
import { startPostgres } from '../../fixtures/postgres.ts';
import { waitFor } from '../../_helpers/common.ts';

const push = (sha: string, deliveryId: string) => ({
  repo: 'octo/site',
  kind: 'build' as const,
  sha,
  ref: 'refs/heads/main',
  branch: 'main',
  deliveryId,
});

test("another node's queued and superseded jobs are read on settle; a start at once", async () => {
  const pg = await startPostgres();
  if (!pg) return;
  const told = { a: [] as string[], b: [] as string[] };
  const open = async (node: 'a' | 'b') =>
    PgJobQueue.open({
      onEnd: (job) => void told[node].push(`${job.id} ${job.state}`),
      db: await resolveQueueUrl(pg.url),
      repos: ['octo/site'],
      concurrency: 0,
      run: async () => ({ exit: 0 }),
      log: silentLogger,
      node,
    });
  const a = await open('a');
  const b = await open('b');
  try {
    const first = (await a.enqueue(push('1'.repeat(40), 'd-1'))).job;
    await sleep(500);
    assert.is(b.get(first.id), undefined, 'a queued job of another node is not read before a page asks');
    await b.settle();
    assert.is(b.get(first.id)?.state, 'queued', 'settle reads it');

    const second = (await a.enqueue(push('2'.repeat(40), 'd-2'))).job;
    assert.is(a.get(first.id)?.state, 'superseded', 'the writing node applies its own change');
    await sleep(500);
    assert.is(b.get(first.id)?.state, 'queued', 'the superseded job is not read at once either');
    assert.is(b.get(second.id), undefined);
    await b.settle();
    assert.is(b.get(first.id)?.state, 'superseded');
    assert.is(b.get(second.id)?.state, 'queued');
    assert.equal(b.counts(), a.counts(), 'both nodes count alike once settled');
    assert.equal(told, { a: [`${first.id} superseded`], b: [] }, 'told once, by the node that superseded it');
    assert.is(
      await pg.sql(`SELECT told FROM shipkit.jobs WHERE id = '${first.id}'`),
      't',
      'and marked told in the same batch',
    );

    // A start (what a worker writes): read by the other node without anyone asking.
    await pg.sql(
      `UPDATE shipkit.jobs SET state = 'running', record = record || jsonb_build_object('state', 'running',
         'started', now()::text, 'attempts', 1, 'worker', 'w1') WHERE id = '${second.id}'`,
    );
    await waitFor(() => b.get(second.id)?.state === 'running', { what: 'node b to read the start', timeoutMs: 10_000 });
    await waitFor(() => a.get(second.id)?.state === 'running', { what: 'node a to read the start', timeoutMs: 10_000 });

    // Several pushes later, settled once their wake-ups came: the same list on both nodes.
    for (let i = 0; i < 3; i++) await a.enqueue(push(String(i + 3).repeat(40), `d-${i + 3}`));
    const listed = (q: PgJobQueue) => JSON.stringify(q.list({ limit: 10 }).map((j) => [j.id, j.state]));
    await waitFor(async () => (await b.settle(), listed(b) === listed(a)), { what: "node b's list to be node a's" });
    assert.is(told.b.length, 0, 'node b told none of them');
    assert.is(told.a.length, 3, 'node a told each build it superseded once');
  } finally {
    for (const q of [a, b]) await q.stop({ graceMs: 0, killGroup: async () => {} });
    await pg.stop();
  }
});

test.run();
