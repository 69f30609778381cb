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
CREATE OR REPLACE FUNCTION shipkit.jobs_notify() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('${NOTIFY_CHANNEL}', NEW.id); RETURN NEW; END $$;
DROP TRIGGER IF EXISTS jobs_notify ON shipkit.jobs;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE ON shipkit.jobs FOR EACH ROW EXECUTE FUNCTION shipkit.jobs_notify();
`;

/**
 * The version of shipkit's tables this code writes: raised with each change to them. A database
 * a newer shipkit has changed is refused (below), so that an older node behind the same load
 * balancer cannot write rows it does not understand.
 */
export const SCHEMA_VERSION = 5;

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

/** New jobs in one statement; gives them back as stored (with their seq), by id. */
export async function insertJobs(
  client: Queryable,
  rows: Array<{ job: Job; bossId: string | null }>,
): Promise<Map<string, Job>> {
  const values: unknown[] = [];
  const tuples = rows.map(({ job, bossId }) => {
    values.push(job.id, job.repo, job.state, bossId, JSON.stringify(job));
    const n = values.length;
    return `($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
  });
  const { rows: stored } = await client.query(
    `INSERT INTO shipkit.jobs (id, repo, state, boss_id, record) VALUES ${tuples.join(', ')} RETURNING seq, state, record, boss_id`,
    values,
  );
  return new Map(
    stored.map((r) => {
      const { job } = rowOf(r);
      return [job.id, job] as const;
    }),
  );
}

/** The queued or running jobs of `repo` whose delivery is one of `deliveryIds`, by delivery id. */
export async function findActiveDeliveries(
  client: Queryable,
  repo: string,
  deliveryIds: string[],
): Promise<Map<string, Job>> {
  const { rows } = await client.query(
    `SELECT seq, state, record FROM shipkit.jobs WHERE repo = $1 AND state IN ('queued', 'running') AND record->>'deliveryId' = ANY($2)`,
    [repo, deliveryIds],
  );
  return new Map(
    rows.map((r) => {
      const { job } = rowOf(r);
      return [job.deliveryId!, job] as const;
    }),
  );
}

/** How long a delivery's key and body are kept: a forge's retries and an operator's replays come sooner. */
export const DELIVERY_KEEP_DAYS = 14;

/** A delivery's key: the forge it came from and the id that forge gave it. */
export interface DeliveryKey {
  source: string;
  id: string;
}

/** The job of each key already stored, keyed `source id`. */
export async function findDeliveries(client: Queryable, keys: DeliveryKey[]): Promise<Map<string, Job>> {
  const { rows } = await client.query(
    `SELECT d.source, d.delivery_id, j.seq, j.state, j.record FROM shipkit.deliveries d
       JOIN unnest($1::text[], $2::text[]) AS k(source, id) ON d.source = k.source AND d.delivery_id = k.id
       JOIN shipkit.jobs j ON j.id = d.job_id`,
    [keys.map((k) => k.source), keys.map((k) => k.id)],
  );
  return new Map(rows.map((r) => [deliveryKey({ source: r.source, id: r.delivery_id }), rowOf(r).job] as const));
}

export const deliveryKey = (key: DeliveryKey) => `${key.source} ${key.id}`;

/** Keep each delivery under its key; a key stored meanwhile (another repo's, forged) keeps its first job. */
export async function insertDeliveries(
  client: Queryable,
  rows: Array<DeliveryKey & { job: string; repo: string; event: string; format: string; body: Buffer }>,
): Promise<void> {
  if (rows.length === 0) return;
  await client.query(
    `INSERT INTO shipkit.deliveries (source, delivery_id, job_id, repo, event, format, body)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[])
     ON CONFLICT DO NOTHING`,
    [
      rows.map((r) => r.source),
      rows.map((r) => r.id),
      rows.map((r) => r.job),
      rows.map((r) => r.repo),
      rows.map((r) => r.event),
      rows.map((r) => r.format),
      rows.map((r) => r.body),
    ],
  );
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
