// Enqueueing on PostgreSQL with group commit (pg/queue.ts): the deliveries that arrive while the
// previous transaction commits, of every repo, go in the next one together, each repo's under its
// lock, with duplicates dropped and superseded builds cancelled. The transaction is one call of
// shipkit.enqueue_batches (pg/records.ts), pg-boss's cancel per repo and one insert for its jobs.
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
 * The batch, in the caller's transaction: its records in one statement (the lock, duplicates
 * by delivery across every hook-server, supersede, the inserts), then the superseded builds'
 * pg-boss jobs cancelled and the new queued jobs' inserted, each in one call.
 */
export async function commitBatch(c: pg.ClientBase, boss: PgBoss, pending: Pending[]): Promise<BatchOutcome> {
  return (await commitBatches(c, boss, [pending]))[0];
}

/**
 * Several repos' batches in the caller's transaction, one outcome per batch: each batch's
 * records in one statement, the repos taken in name order (each statement locks its repo until
 * the commit, and every hook-server locks in the same order, so two transactions cannot wait on
 * each other); then each repo's superseded builds cancelled in pg-boss, and every new queued job
 * inserted in one call. Deliveries spread over many repos commit together, as one repo's do.
 */
export async function commitBatches(c: pg.ClientBase, boss: PgBoss, batches: Pending[][]): Promise<BatchOutcome[]> {
  const order = batches.map((_, i) => i).sort((a, b) => compare(batches[a][0].job.repo, batches[b][0].job.repo));
  const inOrder = await enqueueBatches(
    c,
    order.map((i) => ({
      repo: batches[i][0].job.repo,
      queue: queueName(batches[i][0].job.repo),
      items: batches[i].map(({ job, raw }) => ({
        job,
        key: keyOf(job),
        bossId: randomUUID(),
        event: raw?.event ?? '',
        format: raw?.format ?? 'json',
        body: raw?.body ?? Buffer.alloc(0),
      })),
    })),
  );
  const stored: BatchStored[] = new Array(batches.length);
  order.forEach((i, k) => (stored[i] = inOrder[k]));
  for (const i of order) {
    const cancel = stored[i].superseded.map((r) => r.bossId).filter((id): id is string => id !== null);
    if (cancel.length) await boss.cancel(queueName(batches[i][0].job.repo), cancel, { db: bossDb(c) });
  }
  const queued = stored.flatMap(({ results }) =>
    results.filter((r) => !r.duplicate && r.row.job.state === 'queued').map(({ row }) => row),
  );
  if (queued.length)
    await boss.insert(
      queued.map((row) => ({ id: row.bossId!, name: queueName(row.job.repo), data: { job: row.job.id } })),
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

/** Names in one order on every machine (not the locale's). */
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
