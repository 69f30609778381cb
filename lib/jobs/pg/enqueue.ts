// Enqueueing on PostgreSQL with group commit (pg/queue.ts): the deliveries of one repo that arrive
// while its previous transaction commits go in the next one together, under the repo's lock, with
// duplicates dropped and superseded builds cancelled.
// The whole story: docs/internals.md.
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import type { EnqueueResult, RawDelivery } from '../job-queue.ts';
import type { Job } from '../job.ts';
import { bossDb } from './connect.ts';
import {
  deliveryKey,
  findActiveDeliveries,
  findDeliveries,
  insertDeliveries,
  insertJobs,
  lockRepo,
  queueName,
  updateJobs,
  type DeliveryKey,
} from './records.ts';

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
}

/**
 * Which of `jobs` are new and which repeat a delivery already stored (on any hook-server, in
 * shipkit.deliveries), still queued or running from before that table, or earlier in the batch.
 */
async function splitDuplicates(c: pg.ClientBase, jobs: Job[]): Promise<{ fresh: Job[]; duplicateOf: Map<Job, Job> }> {
  const keys = jobs.map(keyOf).filter((k): k is DeliveryKey => k !== undefined);
  const stored = keys.length ? await findDeliveries(c, keys) : new Map<string, Job>();
  const deliveries = jobs.map((j) => j.deliveryId).filter((d): d is string => Boolean(d));
  const active = deliveries.length ? await findActiveDeliveries(c, jobs[0].repo, deliveries) : new Map<string, Job>();
  const fresh: Job[] = [];
  const duplicateOf = new Map<Job, Job>();
  const first = new Map<string, Job>();
  for (const job of jobs) {
    const key = keyOf(job);
    const earlier = key
      ? (stored.get(deliveryKey(key)) ?? active.get(job.deliveryId!) ?? first.get(deliveryKey(key)))
      : undefined;
    if (earlier) duplicateOf.set(job, earlier);
    else {
      if (key) first.set(deliveryKey(key), job);
      fresh.push(job);
    }
  }
  return { fresh, duplicateOf };
}

/** Supersede queued builds of each branch a new push goes to; gives the new records as they are to be stored. */
async function supersede(c: pg.ClientBase, boss: PgBoss, fresh: Job[]): Promise<{ records: Job[]; superseded: Job[] }> {
  const byBranch = new Map<string | null, Job[]>();
  for (const job of fresh)
    if (job.kind === 'build') byBranch.set(job.branch, [...(byBranch.get(job.branch) ?? []), job]);
  const replaced = new Map<string, Job>();
  const superseded: Job[] = [];
  const cancel: string[] = [];
  for (const [branch, list] of byBranch) {
    // Only jobs still queued: one a worker has taken is running and is never superseded.
    const rows = await updateJobs(c, { repo: list[0].repo, kind: 'build', branch }, ['queued'], {
      state: 'superseded',
      finished: list[0].queued,
      reason: `superseded by ${list[0].id}`,
    });
    superseded.push(...rows.map((r) => r.job));
    cancel.push(...rows.map((r) => r.bossId).filter((id): id is string => id !== null));
    for (let i = 0; i < list.length - 1; i++)
      replaced.set(list[i].id, {
        ...list[i],
        state: 'superseded',
        finished: list[i + 1].queued,
        reason: `superseded by ${list[i + 1].id}`,
      });
  }
  if (cancel.length) await boss.cancel(queueName(fresh[0].repo), cancel, { db: bossDb(c) });
  return { records: fresh.map((j) => replaced.get(j.id) ?? j), superseded };
}

/** The batch, in the caller's transaction. */
export async function commitBatch(c: pg.ClientBase, boss: PgBoss, pending: Pending[]): Promise<BatchOutcome> {
  const jobs = pending.map((p) => p.job);
  const repo = jobs[0].repo;
  await lockRepo(c, repo);
  const { fresh, duplicateOf } = await splitDuplicates(c, jobs);
  const { records, superseded } = fresh.length ? await supersede(c, boss, fresh) : { records: [], superseded: [] };
  const rows: Array<{ job: Job; bossId: string | null }> = [];
  for (const job of records) {
    const bossId = job.state === 'queued' ? await boss.send(queueName(repo), { job: job.id }, { db: bossDb(c) }) : null;
    if (job.state === 'queued' && !bossId) throw new Error(`pg-boss took no job for ${repo}: is its queue missing?`);
    rows.push({ job, bossId });
  }
  const stored = rows.length ? await insertJobs(c, rows) : new Map<string, Job>();
  await insertDeliveries(
    c,
    pending.flatMap(({ job, raw }) => {
      const key = keyOf(job);
      return key && stored.has(job.id)
        ? [
            {
              ...key,
              job: job.id,
              repo,
              event: raw?.event ?? '',
              format: raw?.format ?? 'json',
              body: raw?.body ?? Buffer.alloc(0),
            },
          ]
        : [];
    }),
  );
  const results = jobs.map((job) => {
    const earlier = duplicateOf.get(job);
    return earlier
      ? { job: stored.get(earlier.id) ?? earlier, duplicate: true }
      : { job: stored.get(job.id)!, duplicate: false };
  });
  return { results, superseded: [...superseded, ...[...stored.values()].filter((j) => j.state === 'superseded')] };
}
