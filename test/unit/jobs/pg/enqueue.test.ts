// commitBatches (lib/jobs/pg/enqueue.ts) on a real PostgreSQL with pg-boss: pg-boss's jobs are
// inserted before the repo's lock for the jobs expected to be queued, and the batch function
// deletes those that were not and cancels the superseded builds' jobs; a queued job nobody
// expected (a duplicate that was its branch's last push) still gets its pg-boss job.
import { randomUUID } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { resolveQueueUrl } from '../../../../lib/db/connect.ts';
import { connectQueueDatabase, type QueueConnection } from '../../../../lib/jobs/pg/connect.ts';
import { commitBatches, expectedQueued, type Pending } from '../../../../lib/jobs/pg/enqueue.ts';
import { queueName } from '../../../../lib/jobs/pg/records.ts';
import type { Job } from '../../../../lib/jobs/job.ts';
import { newJobRecord } from '../../../../lib/jobs/job-queue.ts';
import { startPostgres, type Postgres } from '../../../fixtures/postgres.ts';

const REPO = 'octo/site';
let n = 0;
function push(branch: string, deliveryId: string = randomUUID()): Pending {
  const job = newJobRecord(
    {
      repo: REPO,
      kind: 'build',
      sha: `${++n}`.padStart(40, '0'),
      ref: `refs/heads/${branch}`,
      branch,
      deliveryId,
      forge: 'github',
    },
    n,
    new Date().toISOString(),
  );
  return { job, raw: { event: 'push', format: 'json', body: Buffer.from(`{"n":${n}}`) } as Pending['raw'] };
}

test('expectedQueued: the last build of each branch and every other queued job', () => {
  const batch = [push('main'), push('dev'), push('main'), push('main')];
  assert.equal(expectedQueued(batch), [1, 3]);
  const release = push('main');
  release.job = { ...release.job, kind: 'release' } as Job;
  assert.equal(expectedQueued([push('main'), release]), [0, 1]);
});

let db: Postgres | undefined;
let conn: QueueConnection | undefined;

test('pg-boss has one job per queued build; the superseded ones none, the one superseded since cancelled', async () => {
  db = await startPostgres();
  if (!db) return;
  conn = await connectQueueDatabase({
    db: await resolveQueueUrl(db.url),
    name: 'enqueue-test',
    log: silentLogger,
    repos: [REPO],
    supervise: false,
  });
  const inTx = async (batches: Pending[][]) => {
    const c = await conn!.pool.connect();
    try {
      await c.query('BEGIN');
      const out = await commitBatches(c, conn!.boss, batches);
      await c.query('COMMIT');
      return out;
    } finally {
      c.release();
    }
  };
  const bossJobs = async () =>
    (
      await conn!.pool.query(
        `SELECT data->>'job' AS job, state FROM shipkit_boss.job WHERE name = $1 ORDER BY data->>'job'`,
        [queueName(REPO)],
      )
    ).rows as Array<{ job: string; state: string }>;

  const first = [push('main'), push('main'), push('dev')];
  const [out1] = await inTx([first]);
  assert.equal(
    out1.results.map((r) => r.job.state),
    ['superseded', 'queued', 'queued'],
  );
  assert.equal(
    (await bossJobs()).map((j) => [j.job, j.state]),
    [
      [first[1].job.id, 'created'],
      [first[2].job.id, 'created'],
    ],
    'no pg-boss job for the push superseded in its batch',
  );

  // A later batch: a new push to main supersedes the queued one, whose pg-boss job is cancelled;
  // its last item repeats the dev delivery, so the dev push before it is the branch's queued one.
  const again = push('dev', first[2].job.deliveryId!);
  const second = [push('main'), push('dev'), again];
  const [out2] = await inTx([second]);
  assert.equal(
    out2.superseded.map((j) => j.id).sort(),
    [first[1].job.id, first[2].job.id].sort(),
    'both queued builds superseded by the new pushes',
  );
  assert.is(out2.results[2].duplicate, true);
  const jobs = await bossJobs();
  const stateOf = (id: string) => jobs.filter((j) => j.job === id).map((j) => j.state);
  assert.equal(stateOf(first[1].job.id), ['cancelled']);
  assert.equal(stateOf(first[2].job.id), ['cancelled']);
  assert.equal(stateOf(second[0].job.id), ['created']);
  assert.equal(stateOf(second[1].job.id), ['created'], 'inserted after the call: the duplicate was expected last');
  assert.equal(stateOf(again.job.id), [], 'none for the duplicate');
  assert.is(jobs.length, 4);
});

test.after(async () => {
  await conn?.close();
  await db?.stop();
});

test.run();
