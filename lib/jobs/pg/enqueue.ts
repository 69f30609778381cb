// Enqueueing on PostgreSQL with group commit (pg/queue.ts): the deliveries of one repo that arrive
// while its previous transaction commits go in the next one together, under the repo's lock, with
// duplicates dropped and superseded builds cancelled. The batch is one call of
// shipkit.enqueue_batch (pg/records.ts), then pg-boss's cancel and one insert for its jobs.
// The whole story: docs/internals.md.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import type { EnqueueResult, RawDelivery } from '../job-queue.ts';
import type { Job } from '../job.ts';
import { bossDb } from './connect.ts';
import { enqueueBatch, queueName, type DeliveryKey } from './records.ts';

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
  const repo = pending[0].job.repo;
  const queue = queueName(repo);
  const { results, superseded, xid } = await enqueueBatch(
    c,
    repo,
    queue,
    pending.map(({ job, raw }) => ({
      job,
      key: keyOf(job),
      bossId: randomUUID(),
      event: raw?.event ?? '',
      format: raw?.format ?? 'json',
      body: raw?.body ?? Buffer.alloc(0),
    })),
  );
  const cancel = superseded.map((r) => r.bossId).filter((id): id is string => id !== null);
  if (cancel.length) await boss.cancel(queue, cancel, { db: bossDb(c) });
  const queued = results.filter((r) => !r.duplicate && r.row.job.state === 'queued');
  if (queued.length)
    await boss.insert(
      queued.map(({ row }) => ({ id: row.bossId!, name: queue, data: { job: row.job.id } })),
      { db: bossDb(c) },
    );
  const fresh = results.filter((r) => !r.duplicate).map((r) => r.row.job);
  return {
    results: results.map(({ row, duplicate }) => ({ job: row.job, duplicate })),
    superseded: [...superseded.map((r) => r.job), ...fresh.filter((j) => j.state === 'superseded')],
    xid,
  };
}
