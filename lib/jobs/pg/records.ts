// The job records of a PostgreSQL `queue:` (docs/workers.md), what the journal is to the local
// queue: shipkit.jobs holds what the pages, /jobs and notifications show, beside pg-boss's queue
// (schema shipkit_boss) that decides who runs what.
// The whole story: docs/internals.md.
import type pg from 'pg';
import type { Job, JobState } from '../job.ts';
import { ConfigError } from '../../core/errors.ts';

export const BOSS_SCHEMA = 'shipkit_boss';
export const NOTIFY_CHANNEL = 'shipkit_jobs';

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS shipkit;
CREATE TABLE IF NOT EXISTS shipkit.jobs (
  id text PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  repo text NOT NULL,
  state text NOT NULL,
  boss_id uuid,
  record jsonb NOT NULL
);
-- told: hook-server has told its listeners (statuses, notifications) of the job's end; one that
-- ended while hook-server was down is told when it starts again.
ALTER TABLE shipkit.jobs ADD COLUMN IF NOT EXISTS told boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS jobs_active ON shipkit.jobs (repo, state) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_untold ON shipkit.jobs (seq) WHERE NOT told;
CREATE INDEX IF NOT EXISTS jobs_seq ON shipkit.jobs (seq);
CREATE INDEX IF NOT EXISTS jobs_boss ON shipkit.jobs (boss_id);
CREATE TABLE IF NOT EXISTS shipkit.job_output (
  job_id text NOT NULL,
  attempt int NOT NULL,
  start_at bigint NOT NULL,
  chunk bytea NOT NULL,
  PRIMARY KEY (job_id, attempt, start_at)
);
-- A job's section of logs.txt (its steps and its commands' output) from the worker that ran it,
-- for hook-server's job page; deleted once hook-server has written it.
CREATE TABLE IF NOT EXISTS shipkit.job_sections (
  job_id text PRIMARY KEY,
  attempt int NOT NULL,
  section bytea NOT NULL
);
-- Each delivery a job was made of, under its forge's delivery id (intake exactly once, docs/ha.md):
-- a retry of the delivery, on whichever hook-server it lands, finds its job here. The body is
-- kept for "shipkit deliveries replay"; rows older than DELIVERY_KEEP_DAYS are deleted.
CREATE TABLE IF NOT EXISTS shipkit.deliveries (
  source text NOT NULL,
  delivery_id text NOT NULL,
  job_id text NOT NULL,
  repo text NOT NULL,
  event text NOT NULL,
  format text NOT NULL,
  received timestamptz NOT NULL DEFAULT now(),
  body bytea NOT NULL,
  PRIMARY KEY (source, delivery_id)
);
-- Bodies compressed with lz4 where PostgreSQL has it (14+): its default, pglz, spent ~0.3 ms per
-- 7 KB push, most of a delivery's cost in the database (bench:ha); else stored as they are.
DO $$ BEGIN
  EXECUTE 'ALTER TABLE shipkit.deliveries ALTER COLUMN body SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
  ALTER TABLE shipkit.deliveries ALTER COLUMN body SET STORAGE EXTERNAL;
END $$;
CREATE INDEX IF NOT EXISTS deliveries_job ON shipkit.deliveries (job_id);
CREATE INDEX IF NOT EXISTS deliveries_received ON shipkit.deliveries (received);
-- Status-page sessions logged out on any hook-server of this database (lib/server/shared-sessions.ts).
CREATE TABLE IF NOT EXISTS shipkit.ended_sessions (
  seq bigint GENERATED ALWAYS AS IDENTITY,
  id text PRIMARY KEY,
  issued bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS ended_sessions_seq ON shipkit.ended_sessions (seq);
-- The leader among the hook-servers of this database and its fencing term (pg/leader.ts).
CREATE TABLE IF NOT EXISTS shipkit.leader (
  id int PRIMARY KEY CHECK (id = 1),
  term bigint NOT NULL,
  node text NOT NULL,
  since timestamptz NOT NULL
);
-- The fleet registry of every hook-server of this database (lib/server/shared-fleet.ts): each
-- host's latest report (entry NULL once forgotten, until the leader drops the row a day later)
-- and each app's rollout. change grows with every write, so a node reads what changed since.
CREATE SEQUENCE IF NOT EXISTS shipkit.fleet_change;
CREATE TABLE IF NOT EXISTS shipkit.fleet_hosts (
  app text NOT NULL,
  host text NOT NULL,
  seq bigint NOT NULL,
  at bigint NOT NULL,
  signed_at bigint,
  enrolled boolean NOT NULL DEFAULT false,
  entry jsonb,
  change bigint NOT NULL DEFAULT nextval('shipkit.fleet_change'),
  changed timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app, host)
);
CREATE INDEX IF NOT EXISTS fleet_hosts_change ON shipkit.fleet_hosts (change);
CREATE TABLE IF NOT EXISTS shipkit.fleet_rollouts (
  app text PRIMARY KEY,
  record jsonb NOT NULL,
  change bigint NOT NULL DEFAULT nextval('shipkit.fleet_change')
);
-- The audit trail of every hook-server of this database (lib/audit/pg-store.ts): one row per
-- line of the hash chain, n assigned under an advisory lock inside the appending transaction.
CREATE TABLE IF NOT EXISTS shipkit.audit (
  n bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  line text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON shipkit.audit (at);
-- Each fleet app's release ledger as a hook-server that can read its DEST last verified it
-- (lib/server/ledger-source.ts): what every other node shows, verified again, when DEST is not
-- on its disk or cannot be reached.
CREATE TABLE IF NOT EXISTS shipkit.ledgers (
  app text PRIMARY KEY,
  dest text NOT NULL,
  sha256 text NOT NULL,
  ledger bytea NOT NULL,
  sig bytea NOT NULL,
  keys text,
  stored timestamptz NOT NULL DEFAULT now()
);
-- The push guard of every hook-server of this database (lib/server/shared-pushes.ts): per repo
-- the remote pinned at its first clone and the pushes accepted per branch, newest first; version
-- grows with each write, which is made only over the version the delivery was judged against.
CREATE TABLE IF NOT EXISTS shipkit.pushes (
  repo text PRIMARY KEY,
  remote text,
  branches jsonb NOT NULL,
  version bigint NOT NULL
);
-- A batch of one repo's new jobs (pg/enqueue.ts) in one call: under the repo's lock, deliveries
-- already stored (every job with a delivery id stores one) or earlier in the batch are
-- duplicates (each answered with that first job); each branch's first new push supersedes its
-- queued builds, each new push the one before it in the batch; the rest are inserted with their
-- deliveries. Gives a row per job of the batch (n, from 1: the job it is or repeats) and one per
-- build superseded in the table (n NULL), whose pg-boss jobs the caller cancels. pg-boss's queue
-- must exist: its jobs are inserted next, by the caller, and one without a queue would be dropped.
-- Each row also carries the transaction's id, which the notifications of its changes name: the
-- node that wrote them has the rows already and reads none of them back (pg/mirror.ts).
-- No bitmap scans: every job passes through 'queued' and leaves it, so jobs_active keeps an entry
-- for each until a vacuum; a plain index scan marks the dead ones as it passes and skips them after,
-- where a bitmap scan (which the planner picks once the table has grown) visits each one's heap
-- page at every lookup: with two nodes after 10 s of load, 580 pages per delivery, 16 ms a batch.
DROP FUNCTION IF EXISTS shipkit.enqueue_batch(text, text, jsonb, text[], uuid[], text[], text[], bytea[]);
CREATE FUNCTION shipkit.enqueue_batch(p_repo text, p_queue text, p_jobs jsonb, p_sources text[],
  p_boss uuid[], p_events text[], p_formats text[], p_bodies bytea[])
RETURNS TABLE (n int, duplicate boolean, seq bigint, state text, record jsonb, boss_id uuid, xid bigint)
LANGUAGE plpgsql SET enable_bitmapscan = off AS $fn$
#variable_conflict use_column
BEGIN
  -- A statement of its own, before any read: the reads below see every batch committed before.
  PERFORM pg_advisory_xact_lock(hashtextextended('shipkit repo ' || p_repo, 0));
  IF NOT EXISTS (SELECT 1 FROM ${BOSS_SCHEMA}.queue q WHERE q.name = p_queue) THEN
    RAISE EXCEPTION 'pg-boss took no job for %: is its queue missing?', p_repo;
  END IF;
  RETURN QUERY
  WITH b AS (
    SELECT t.i::int AS i, t.rec, p_sources[t.i] AS src, t.rec->>'deliveryId' AS did
    FROM jsonb_array_elements(p_jobs) WITH ORDINALITY AS t(rec, i)
  ),
  found AS (
    SELECT b.i, s.seq, s.state, s.record
    FROM b
    -- LIMIT keeps this a keyed lookup per delivery: flattened into a join, on a young table
    -- whose statistics say it is empty, it became a scan of every delivery and job per batch.
    -- (A second look, through the repo's queued and running jobs' records, read each of them per
    -- delivery: with 10,000 releases queued, 2 ms a delivery. The stored deliveries answer alone.)
    LEFT JOIN LATERAL (SELECT j.seq, j.state, j.record FROM shipkit.deliveries d JOIN shipkit.jobs j ON j.id = d.job_id
      WHERE d.source = b.src AND d.delivery_id = b.did LIMIT 1) s ON true
    WHERE b.src IS NOT NULL
  ),
  firsts AS (
    SELECT DISTINCT ON (b.src, b.did) b.i, b.src, b.did FROM b WHERE b.src IS NOT NULL ORDER BY b.src, b.did, b.i
  ),
  judged AS (
    SELECT b.i, b.rec, f.seq AS stored_seq, f.state AS stored_state, f.record AS stored_record,
      CASE WHEN f.seq IS NULL AND fi.i <> b.i THEN fi.i END AS first
    FROM b LEFT JOIN found f ON f.i = b.i LEFT JOIN firsts fi ON fi.src = b.src AND fi.did = b.did
  ),
  fresh AS (SELECT j.i, j.rec FROM judged j WHERE j.stored_seq IS NULL AND j.first IS NULL),
  builds AS (
    SELECT f.i, f.rec->>'branch' AS branch, lead(f.rec) OVER w AS next, first_value(f.rec) OVER w AS head
    FROM fresh f WHERE f.rec->>'kind' = 'build'
    WINDOW w AS (PARTITION BY f.rec->>'branch' ORDER BY f.i)
  ),
  gone AS (
    UPDATE shipkit.jobs j
    SET record = j.record || jsonb_build_object('state', 'superseded', 'finished', h.head->'queued',
      'reason', 'superseded by ' || (h.head->>'id')), state = 'superseded'
    FROM (SELECT DISTINCT ON (bl.branch) bl.branch, bl.head FROM builds bl) h
    WHERE j.repo = p_repo AND j.state = 'queued' AND j.record->>'kind' = 'build'
      AND j.record->>'branch' IS NOT DISTINCT FROM h.branch
      -- Evaluated once, first: a batch without builds reads none of the repo's queued jobs.
      AND EXISTS (SELECT 1 FROM builds)
    RETURNING j.seq, j.state, j.record, j.boss_id
  ),
  stored AS (
    INSERT INTO shipkit.jobs (id, repo, state, boss_id, record)
    SELECT r.rec->>'id', r.rec->>'repo', r.rec->>'state', CASE WHEN r.rec->>'state' = 'queued' THEN p_boss[r.i] END, r.rec
    FROM (
      SELECT f.i, CASE WHEN bl.next IS NULL THEN f.rec ELSE f.rec || jsonb_build_object('state', 'superseded',
        'finished', bl.next->'queued', 'reason', 'superseded by ' || (bl.next->>'id')) END AS rec
      FROM fresh f LEFT JOIN builds bl ON bl.i = f.i
    ) r
    ORDER BY r.i
    RETURNING id, seq, state, record, boss_id
  ),
  kept AS (
    INSERT INTO shipkit.deliveries (source, delivery_id, job_id, repo, event, format, body)
    SELECT b.src, b.did, b.rec->>'id', p_repo, p_events[b.i], p_formats[b.i], p_bodies[b.i]
    FROM b JOIN fresh f ON f.i = b.i WHERE b.src IS NOT NULL
    ON CONFLICT DO NOTHING
  )
  SELECT j.i, j.stored_seq IS NOT NULL OR j.first IS NOT NULL, COALESCE(j.stored_seq, s.seq),
    COALESCE(j.stored_state, s.state), COALESCE(j.stored_record, s.record), s.boss_id, txid_current()
  FROM judged j LEFT JOIN stored s ON s.id = (SELECT b.rec->>'id' FROM b WHERE b.i = COALESCE(j.first, j.i))
  UNION ALL
  SELECT NULL, NULL, g.seq, g.state, g.record, g.boss_id, txid_current() FROM gone g;
END $fn$;
-- Several repos' batches in one call (pg/enqueue.ts), each through enqueue_batch in the order
-- given (the caller's: by name, so that every hook-server takes the repos' locks in one order).
-- Batch k's items are p_jobs->(k-1) and the slices from p_starts[k] of the other arrays; each
-- row says which batch (b, from 1) it belongs to. The bodies come as one binary value and their
-- lengths: a bytea[] travels as a text literal, each body in hex (twice its bytes) that the server
-- then parses character by character, most of a batch's bytes and of its parsing.
DROP FUNCTION IF EXISTS shipkit.enqueue_batches(text[], text[], int[], jsonb, text[], uuid[], text[], text[], bytea[]);
DROP FUNCTION IF EXISTS shipkit.enqueue_batches(text[], text[], int[], jsonb, text[], uuid[], text[], text[], bytea, int[]);
CREATE FUNCTION shipkit.enqueue_batches(p_repos text[], p_queues text[], p_starts int[], p_jobs jsonb,
  p_sources text[], p_boss uuid[], p_events text[], p_formats text[], p_body_bytes bytea, p_body_lengths int[])
RETURNS TABLE (b int, n int, duplicate boolean, seq bigint, state text, record jsonb, boss_id uuid, xid bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  k int;
  lo int;
  hi int;
  bodies bytea[];
BEGIN
  SELECT coalesce(array_agg(substring(p_body_bytes FROM o.start::int FOR o.len) ORDER BY o.i), '{}') INTO bodies
  FROM (SELECT t.i, t.len, sum(t.len) OVER (ORDER BY t.i) - t.len + 1 AS start
    FROM unnest(p_body_lengths) WITH ORDINALITY AS t(len, i)) o;
  FOR k IN 1..coalesce(array_length(p_repos, 1), 0) LOOP
    lo := p_starts[k];
    hi := coalesce(p_starts[k + 1], coalesce(array_length(p_boss, 1), 0) + 1) - 1;
    RETURN QUERY SELECT k, e.n, e.duplicate, e.seq, e.state, e.record, e.boss_id, e.xid
      FROM shipkit.enqueue_batch(p_repos[k], p_queues[k], p_jobs->(k - 1), p_sources[lo:hi], p_boss[lo:hi],
        p_events[lo:hi], p_formats[lo:hi], bodies[lo:hi]) e;
  END LOOP;
END $fn$;
-- A wake-up per statement that changed jobs (not per row): "XID ID ID ...", the writing
-- transaction's id and up to 100 job ids (a payload stays under PostgreSQL's 8000 bytes). An
-- update that changed neither state nor record (the leader marking ends told) wakes nobody.
CREATE OR REPLACE FUNCTION shipkit.jobs_notify_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('${NOTIFY_CHANNEL}', txid_current()::text || ' ' || string_agg(c.id, ' '))
    FROM (SELECT n.id, (row_number() OVER ()) / 100 AS g FROM new_rows n) c GROUP BY c.g;
  ELSE
    PERFORM pg_notify('${NOTIFY_CHANNEL}', txid_current()::text || ' ' || string_agg(c.id, ' '))
    FROM (SELECT n.id, (row_number() OVER ()) / 100 AS g FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE n.state IS DISTINCT FROM o.state OR n.record IS DISTINCT FROM o.record) c GROUP BY c.g;
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_notify ON shipkit.jobs;
DROP FUNCTION IF EXISTS shipkit.jobs_notify();
DROP TRIGGER IF EXISTS jobs_notify_insert ON shipkit.jobs;
CREATE TRIGGER jobs_notify_insert AFTER INSERT ON shipkit.jobs REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION shipkit.jobs_notify_ids();
DROP TRIGGER IF EXISTS jobs_notify_update ON shipkit.jobs;
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON shipkit.jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION shipkit.jobs_notify_ids();
`;

/**
 * The version of shipkit's tables this code writes: raised with each change to them. A database
 * a newer shipkit has changed is refused (below), so that an older node behind the same load
 * balancer cannot write rows it does not understand.
 */
export const SCHEMA_VERSION = 9;

const VERSION_SQL = `
CREATE SCHEMA IF NOT EXISTS shipkit;
CREATE TABLE IF NOT EXISTS shipkit.schema_version (
  id int PRIMARY KEY CHECK (id = 1),
  version int NOT NULL,
  shipkit text NOT NULL
);
`;

/** Create (or keep) shipkit's tables, one process at a time (PostgreSQL 13+); refuse a newer schema, changing nothing. */
export async function ensureSchema(client: pg.ClientBase, shipkit = 'unknown'): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('shipkit schema', 0))`);
    await client.query(VERSION_SQL);
    const { rows } = await client.query('SELECT version, shipkit FROM shipkit.schema_version WHERE id = 1');
    if (rows.length && Number(rows[0].version) > SCHEMA_VERSION)
      throw new ConfigError(
        `the queue database's tables are version ${rows[0].version} (written by shipkit ${rows[0].shipkit}), newer than this shipkit ${shipkit} knows (${SCHEMA_VERSION}): upgrade shipkit on this machine; nothing in the database was changed`,
      );
    await client.query(SCHEMA_SQL);
    await client.query(
      `INSERT INTO shipkit.schema_version (id, version, shipkit) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET version = $1, shipkit = $2 WHERE shipkit.schema_version.version < $1`,
      [SCHEMA_VERSION, shipkit],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The pg-boss queue of a repo's jobs (builds and releases alike: one at a time per repo). */
export function queueName(repo: string): string {
  return `shipkit-repo-${repo}`;
}

/** This transaction holds the repo: see the file's head. */
export async function lockRepo(client: pg.ClientBase, repo: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`shipkit repo ${repo}`]);
}

/** The key of the session lock a worker holds while it runs a job (the reaper's sign of life). */
export const JOB_LOCK_SQL = `hashtextextended('shipkit job ' || $1, 0)`;

export interface Row {
  job: Job;
  bossId: string | null;
}

/** A client in a transaction, or the pool for one statement. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

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
    `UPDATE shipkit.jobs SET record = record || $1::jsonb${counted}, state = COALESCE($1::jsonb->>'state', state) WHERE ${conditions.join(' AND ')} RETURNING seq, state, record, boss_id`,
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
     UNION SELECT seq, state, record FROM (SELECT seq, state, record FROM shipkit.jobs WHERE state NOT IN ('queued', 'running') ORDER BY seq DESC LIMIT $1) recent`,
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
    `SELECT b, n, duplicate, seq, state, record, boss_id, xid FROM shipkit.enqueue_batches($1, $2, $3::int[], $4::jsonb, $5::text[], $6::uuid[], $7::text[], $8::text[], $9::bytea, $10::int[])`,
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
