// Enqueueing on PostgreSQL with group commit (pg/queue.ts): the deliveries that arrive while the
// previous transaction commits, of every repo, go in the next one together, each repo's under its
// lock, with duplicates dropped and superseded builds cancelled: pg-boss's insert of the jobs
// expected to be queued, one call of shipkit.enqueue_batches (pg/records.ts), the commit.
// The whole story: docs/internals.md.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import type { EnqueueResult, RawDelivery } from '../job-queue.ts';
import type { Job } from '../job.ts';
import { bossDb } from './connect.ts';
import { enqueueBatches, queueName, type BatchStored, type DeliveryKey } from './records.ts';

/** A job to commit, with the delivery it was made of when it came from a forge. */
export interface Pending {
  job: Job;
  raw?: RawDelivery;
}

/** A job's delivery key: its forge and the id that forge gave the delivery. */
const keyOf = (job: Job): DeliveryKey | undefined =>
  job.deliveryId ? { source: job.forge ?? 'unknown', id: job.deliveryId } : undefined;

export interface BatchOutcome {
  /** One per job given, in order. */
  results: EnqueueResult[];
  /** Jobs that were queued before this batch and are superseded now. */
  superseded: Job[];
  /** The transaction's id, which the notifications of these changes name (pg/mirror.ts). */
  xid: string;
}

/**
 * The batch, in the caller's transaction: as commitBatches, for one repo.
 */
export async function commitBatch(c: pg.ClientBase, boss: PgBoss, pending: Pending[]): Promise<BatchOutcome> {
  return (await commitBatches(c, boss, [pending]))[0];
}

/**
 * Several repos' batches in the caller's transaction, one outcome per batch. First pg-boss's jobs
 * for every job expected to be queued (expectedQueued), inserted before any repo's lock is taken;
 * then each batch's records in one statement, the repos taken in name order (each statement locks
 * its repo until the commit, and every hook-server locks in the same order, so two transactions
 * cannot wait on each other), which also deletes the pg-boss jobs of the jobs not queued after all
 * and cancels those of the builds it superseded. Only a queued job that was not expected (a
 * duplicate delivery changed which push of a branch is last) costs a round trip under the locks.
 * So a node holds a repo's lock for its one statement and the commit: a node slowed down between
 * its statements (a busy CPU, a CPU quota) no longer holds every other node up (bench:scale).
 */
export async function commitBatches(c: pg.ClientBase, boss: PgBoss, batches: Pending[][]): Promise<BatchOutcome[]> {
  const order = batches.map((_, i) => i).sort((a, b) => compare(batches[a][0].job.repo, batches[b][0].job.repo));
  const items = batches.map((batch) =>
    batch.map(({ job, raw }) => ({
      job,
      key: keyOf(job),
      bossId: randomUUID(),
      event: raw?.event ?? '',
      format: raw?.format ?? 'json',
      body: raw?.body ?? Buffer.alloc(0),
    })),
  );
  const expected = new Set<string>(batches.flatMap((batch, b) => expectedQueued(batch).map((k) => items[b][k].bossId)));
  const bossJob = (id: string, job: Job) => ({ id, name: queueName(job.repo), data: { job: job.id } });
  const early = items.flat().filter((item) => expected.has(item.bossId));
  if (early.length)
    await boss.insert(
      early.map((item) => bossJob(item.bossId, item.job)),
      { db: bossDb(c) },
    );
  const inOrder = await enqueueBatches(
    c,
    order.map((i) => ({ repo: batches[i][0].job.repo, queue: queueName(batches[i][0].job.repo), items: items[i] })),
  );
  const stored: BatchStored[] = new Array(batches.length);
  order.forEach((i, k) => (stored[i] = inOrder[k]));
  const late = stored.flatMap(({ results }) =>
    results
      .filter((r) => !r.duplicate && r.row.job.state === 'queued' && !expected.has(r.row.bossId!))
      .map((r) => r.row),
  );
  if (late.length)
    await boss.insert(
      late.map((row) => bossJob(row.bossId!, row.job)),
      { db: bossDb(c) },
    );
  return stored.map(({ results, superseded, xid }) => {
    const fresh = results.filter((r) => !r.duplicate).map((r) => r.row.job);
    return {
      results: results.map(({ row, duplicate }) => ({ job: row.job, duplicate })),
      superseded: [...superseded.map((r) => r.job), ...fresh.filter((j) => j.state === 'superseded')],
      xid,
    };
  });
}

/**
 * The jobs of one repo's batch that will be queued unless a delivery turns out to be stored
 * already: the queued ones, of builds only the last of each branch (each supersedes the one
 * before it in the batch). By index in the batch.
 */
export function expectedQueued(batch: Pending[]): number[] {
  const lastOfBranch = new Map<string | undefined, number>();
  batch.forEach(({ job }, k) => job.kind === 'build' && lastOfBranch.set(job.branch ?? undefined, k));
  return batch
    .map(({ job }, k) => ({ job, k }))
    .filter(
      ({ job, k }) =>
        job.state === 'queued' && (job.kind !== 'build' || lastOfBranch.get(job.branch ?? undefined) === k),
    )
    .map(({ k }) => k);
}

/** Names in one order on every machine (not the locale's). */
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
