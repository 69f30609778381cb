// The job records of a PostgreSQL `queue:` (docs/workers.md), what the journal is to the local
// queue: shipkit.jobs holds what the pages, /jobs and notifications show, beside pg-boss's queue
// (schema shipkit_boss) that decides who runs what.
// The whole story: docs/internals.md.
import type pg from 'pg';
import type { Job, JobState } from '../job.ts';
import type { Queryable } from '../../db/connect.ts';
import { LOCKS } from '../../db/locks.ts';

/** The pg-boss queue of a repo's jobs (builds and releases alike: one at a time per repo). */
export function queueName(repo: string): string {
  return `shipkit-repo-${repo}`;
}

/** The pg-boss queue of a repo's preview builds on workers (lib/previews/remote-build.ts). */
export function previewBuildsQueue(repo: string): string {
  return `shipkit-preview-${repo}`;
}

/** This transaction holds the repo: see the file's head. */
export async function lockRepo(client: pg.ClientBase, repo: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(${LOCKS.repo('$1')})`, [repo]);
}

export interface Row {
  job: Job;
  bossId: string | null;
}

/** A client in a transaction, or the pool for one statement. */

/** Which jobs a change is for: all the given conditions hold. */
export interface JobWhere {
  id?: string;
  bossId?: string;
  repo?: string;
  kind?: string;
  branch?: string | null;
  worker?: string;
  attempts?: number;
}

function rowOf(r: { seq: string | number; state: string; record: Job; boss_id?: string | null }): Row {
  return {
    job: Object.freeze({ ...r.record, seq: Number(r.seq), state: r.state as JobState }),
    bossId: r.boss_id ?? null,
  };
}

/**
 * Change jobs (`id` one, or those `where` finds) that are in one of `from`; gives the changed
 * rows. `patch` is merged into the record; its `state` becomes the row's.
 */
export async function updateJobs(
  client: Queryable,
  where: JobWhere,
  from: JobState[],
  patch: Partial<Job>,
  bump?: 'attempts' | 'interruptions',
): Promise<Row[]> {
  const conditions = ['state = ANY($2)'];
  const values: unknown[] = [JSON.stringify(patch), from];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    conditions.push(sql.replace('?', `$${values.length}`));
  };
  if (where.id !== undefined) add('id = ?', where.id);
  if (where.bossId !== undefined) add('boss_id = ?', where.bossId);
  if (where.repo !== undefined) add('repo = ?', where.repo);
  if (where.kind !== undefined) add(`record->>'kind' = ?`, where.kind);
  if (where.branch !== undefined) add(`record->>'branch' IS NOT DISTINCT FROM ?`, where.branch);
  if (where.worker !== undefined) add(`record->>'worker' = ?`, where.worker);
  if (where.attempts !== undefined) add(`(record->>'attempts')::int = ?`, where.attempts);
  // A counter goes up by one in the database, whatever the caller's copy said.
  const counted = bump ? ` || jsonb_build_object('${bump}', COALESCE((record->>'${bump}')::int, 0) + 1)` : '';
  const { rows } = await client.query(
    `UPDATE shipkit.jobs SET record = record || $1::jsonb${counted}, state = ` +
      `COALESCE($1::jsonb->>'state', state) WHERE ${conditions.join(' AND ')} RETURNING seq, state, record, boss_id`,
    values,
  );
  return rows.map(rowOf);
}

/** One job's row, or undefined. */
export async function readJob(client: Queryable, id: string): Promise<Row | undefined> {
  const { rows } = await client.query('SELECT seq, state, record, boss_id FROM shipkit.jobs WHERE id = $1', [id]);
  return rows.length ? rowOf(rows[0]) : undefined;
}

export async function readJobs(client: Queryable, ids: string[]): Promise<Job[]> {
  const { rows } = await client.query('SELECT seq, state, record FROM shipkit.jobs WHERE id = ANY($1)', [ids]);
  return rows.map((r) => rowOf(r).job);
}

/** Every queued or running job, and the newest `recent` others: what hook-server keeps in memory. */
export async function readLiveJobs(client: Queryable, recent: number): Promise<Job[]> {
  const { rows } = await client.query(
    `SELECT seq, state, record FROM shipkit.jobs WHERE state IN ('queued', 'running')
     UNION SELECT seq, state, record FROM (SELECT seq, state, record FROM shipkit.jobs WHERE state NOT IN ` +
      `('queued', 'running') ORDER BY seq DESC LIMIT $1) recent`,
    [recent],
  );
  return rows.map((r) => rowOf(r).job);
}

/** Jobs that ended without hook-server telling its listeners (it was down), oldest first. */
export async function readUntold(client: Queryable): Promise<Job[]> {
  const { rows } = await client.query(
    `SELECT seq, state, record FROM shipkit.jobs WHERE NOT told AND state NOT IN ('queued', 'running') ORDER BY seq`,
  );
  return rows.map((r) => rowOf(r).job);
}

/** Mark ends told, fenced: only while `term` is still the leader's (pg/leader.ts); gives how many were marked. */
export async function markTold(client: Queryable, ids: string[], term: number): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE shipkit.jobs SET told = true WHERE id = ANY($1) AND NOT told
       AND EXISTS (SELECT 1 FROM shipkit.leader WHERE id = 1 AND term = $2)`,
    [ids, term],
  );
  return rowCount ?? 0;
}

/** The running jobs of every worker, with their pg-boss ids (the reaper's round). */
export async function readRunning(client: Queryable): Promise<Row[]> {
  const { rows } = await client.query(`SELECT seq, state, record, boss_id FROM shipkit.jobs WHERE state = 'running'`);
  return rows.map(rowOf);
}

/** A job of a batch for enqueueBatches: its delivery's key and body when it has one, its pg-boss id if it stays queued. */
export interface BatchItem {
  job: Job;
  key?: DeliveryKey;
  bossId: string;
  event: string;
  format: string;
  body: Buffer;
}

/** What one repo's batch stored: per item its row and whether it repeats an earlier job; the builds it superseded. */
export interface BatchStored {
  results: Array<{ row: Row; duplicate: boolean }>;
  superseded: Row[];
  /** The transaction's id, which the notifications of these changes name (pg/mirror.ts). */
  xid: string;
}

/**
 * Repos' batches in one statement (shipkit.enqueue_batches, in the caller's transaction), in the
 * order given: for each item, in order, the job stored for it or the earlier job it repeats; and
 * the queued builds it superseded in the table, with their pg-boss ids.
 */
export async function enqueueBatches(
  client: Queryable,
  batches: Array<{ repo: string; queue: string; items: BatchItem[] }>,
): Promise<BatchStored[]> {
  const items = batches.flatMap((b) => b.items);
  // Where each batch's items start in the flat arrays (from 1, as PostgreSQL counts).
  let next = 1;
  const starts = batches.map((b) => ((next += b.items.length), next - b.items.length));
  const { rows } = await client.query(
    `SELECT b, n, duplicate, seq, state, record, boss_id, xid FROM shipkit.enqueue_batches($1, $2, ` +
      `$3::int[], $4::jsonb, $5::text[], $6::uuid[], $7::text[], $8::text[], $9::bytea, $10::int[])`,
    [
      batches.map((b) => b.repo),
      batches.map((b) => b.queue),
      starts,
      JSON.stringify(batches.map((b) => b.items.map((i) => i.job))),
      items.map((i) => i.key?.source ?? null),
      items.map((i) => i.bossId),
      items.map((i) => i.event),
      items.map((i) => i.format),
      // One binary value (a Buffer goes as bytes) and the lengths to cut it at: see the SQL.
      Buffer.concat(items.map((i) => i.body)),
      items.map((i) => i.body.length),
    ],
  );
  const stored: BatchStored[] = batches.map((b) => ({ results: new Array(b.items.length), superseded: [], xid: '' }));
  for (const r of rows) {
    const batch = stored[r.b - 1];
    batch.xid = String(r.xid);
    if (r.n === null) batch.superseded.push(rowOf(r));
    else batch.results[r.n - 1] = { row: rowOf(r), duplicate: r.duplicate };
  }
  return stored;
}

/** How long a delivery's key and body are kept: a forge's retries and an operator's replays come sooner. */
export const DELIVERY_KEEP_DAYS = 14;

/** A delivery's key: the forge it came from and the id that forge gave it. */
export interface DeliveryKey {
  source: string;
  id: string;
}

/** Forget deliveries older than DELIVERY_KEEP_DAYS; gives how many. */
export async function forgetOldDeliveries(client: Queryable): Promise<number> {
  const { rowCount } = await client.query(
    `DELETE FROM shipkit.deliveries WHERE received < now() - make_interval(days => $1)`,
    [DELIVERY_KEEP_DAYS],
  );
  return rowCount ?? 0;
}

export async function repoBusy(client: Queryable, repo: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT 1 FROM shipkit.jobs WHERE repo = $1 AND state = 'running' LIMIT 1`, [
    repo,
  ]);
  return rows.length > 0;
}
