// shipkit's tables in PostgreSQL, as numbered migrations: each runs once, in order, on a database
// whose shipkit.schema_version is below its number (db/schema.ts). Version 9 is the whole schema
// as it stood when migrations were numbered; written idempotently, it also brings a database that
// an earlier shipkit made to that point. A change to the tables is a new entry at the end.
import { LOCKS } from './locks.ts';

/** pg-boss's schema (jobs/pg) and the channel job changes are announced on. */
export const BOSS_SCHEMA = 'shipkit_boss';
export const NOTIFY_CHANNEL = 'shipkit_jobs';

export interface Migration {
  version: number;
  /** What it adds, for the log and the reader. */
  what: string;
  sql: string;
}

// The batch function as it is now: version 9 makes it, and each version that changed it makes it
// again (a database at version 9 runs them all in order, so one text serves).
const ENQUEUE_BATCH = `
-- A batch of one repo's new jobs (pg/enqueue.ts) in one call: under the repo's lock, deliveries
-- already stored (every job with a delivery id stores one) or earlier in the batch are
-- duplicates (each answered with that first job); each branch's first new push supersedes its
-- queued builds, each new push the one before it in the batch; the rest are inserted with their
-- deliveries. Gives a row per job of the batch (n, from 1: the job it is or repeats) and one per
-- build superseded in the table (n NULL), whose pg-boss jobs it cancels. pg-boss's queue must
-- exist: a job inserted without one would be dropped.
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
  PERFORM pg_advisory_xact_lock(${LOCKS.repo('p_repo')});
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
      'reason', 'superseded by ' || (h.head->>'id')), state = 'superseded',
      -- A build that never started has nothing to tell but its count: the writing node counts it.
      told = j.record->>'started' IS NULL AND coalesce((j.record->>'attempts')::int, 0) = 0
    FROM (SELECT DISTINCT ON (bl.branch) bl.branch, bl.head FROM builds bl) h
    WHERE j.repo = p_repo AND j.state = 'queued' AND j.record->>'kind' = 'build'
      AND j.record->>'branch' IS NOT DISTINCT FROM h.branch
      -- Evaluated once, first: a batch without builds reads none of the repo's queued jobs.
      AND EXISTS (SELECT 1 FROM builds)
    RETURNING j.seq, j.state, j.record, j.boss_id
  ),
  stored AS (
    INSERT INTO shipkit.jobs (id, repo, state, boss_id, record, told)
    SELECT r.rec->>'id', r.rec->>'repo', r.rec->>'state', CASE WHEN r.rec->>'state' = 'queued' THEN p_boss[r.i] END, r.rec,
      r.rec->>'state' = 'superseded'
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
  ),
  -- pg-boss's jobs: the caller inserted one for each item it expected to be queued, before this
  -- call, so that the repo's lock is not held across another round trip; those of items that are
  -- not queued after all are deleted, and those of the queued builds superseded here cancelled.
  unneeded AS (
    DELETE FROM ${BOSS_SCHEMA}.job bj
    WHERE bj.name = p_queue AND bj.id = ANY(p_boss)
      AND bj.id NOT IN (SELECT s.boss_id FROM stored s WHERE s.boss_id IS NOT NULL)
  ),
  cancelled AS (
    UPDATE ${BOSS_SCHEMA}.job bj SET completed_on = now(), state = 'cancelled'
    WHERE bj.name = p_queue AND bj.id IN (SELECT g.boss_id FROM gone g WHERE g.boss_id IS NOT NULL)
      AND bj.state < 'completed'
  )
  SELECT j.i, j.stored_seq IS NOT NULL OR j.first IS NOT NULL, COALESCE(j.stored_seq, s.seq),
    COALESCE(j.stored_state, s.state), COALESCE(j.stored_record, s.record), s.boss_id, txid_current()
  FROM judged j LEFT JOIN stored s ON s.id = (SELECT b.rec->>'id' FROM b WHERE b.i = COALESCE(j.first, j.i))
  UNION ALL
  SELECT NULL, NULL, g.seq, g.state, g.record, g.boss_id, txid_current() FROM gone g;
END $fn$;
`;

const SCHEMA_9 = `
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
-- Status-page sessions logged out on any hook-server of this database (lib/web/ended-sessions-db.ts).
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
-- The fleet registry of every hook-server of this database (lib/fleet/fleet-store-db.ts): each
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
-- The push guard of every hook-server of this database (lib/server/push-guard-db.ts): per repo
-- the remote pinned at its first clone and the pushes accepted per branch, newest first; version
-- grows with each write, which is made only over the version the delivery was judged against.
CREATE TABLE IF NOT EXISTS shipkit.pushes (
  repo text PRIMARY KEY,
  remote text,
  branches jsonb NOT NULL,
  version bigint NOT NULL
);
${ENQUEUE_BATCH}-- Several repos' batches in one call (pg/enqueue.ts), each through enqueue_batch in the order
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

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 9,
    what: 'jobs, deliveries, sessions, leader, fleet hosts and rollouts, audit, ledgers, pushes',
    sql: SCHEMA_9,
  },
  {
    version: 10,
    what: "fleet hosts: the nonces of each host's reports signed in its latest second (no replay after a restart)",
    sql: `
-- The nonces of the reports taken for a host signed in the second signed_at (lib/fleet/host-guard.ts):
-- one of them again is a replay, refused by every node, also after a restart.
ALTER TABLE shipkit.fleet_hosts ADD COLUMN IF NOT EXISTS nonces text[] NOT NULL DEFAULT '{}';
`,
  },
  {
    version: 11,
    what: "the leader's lease: when it was last renewed and its session's pid (a hung leader is replaced)",
    sql: `
-- The leader renews renewed every 2 s; a follower takes over a lease not renewed for 10 s, by the
-- database's clock, and ends the session pid names (it holds the lock but hangs; lib/jobs/pg/leader.ts).
ALTER TABLE shipkit.leader ADD COLUMN IF NOT EXISTS renewed timestamptz;
ALTER TABLE shipkit.leader ADD COLUMN IF NOT EXISTS pid int;
`,
  },
  {
    version: 12,
    what: 'the local journals copied in (made until now by the first import itself)',
    sql: `
-- One row per local journal copied into the database once (lib/jobs/pg/import.ts), under the
-- import lock; a database an older shipkit made may already have it.
CREATE TABLE IF NOT EXISTS shipkit.imports (source text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), jobs int NOT NULL);
`,
  },
  {
    version: 13,
    what: 'pull request events for the previews, taken in by the leading hook-server, and each pull request kept',
    sql: `
-- Every hook-server writes the pull request events it takes here; the leader, which alone runs
-- previews, handles them in id order and deletes each (lib/previews/event-table.ts, docs/previews.md).
CREATE TABLE IF NOT EXISTS shipkit.preview_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repo text NOT NULL,
  pr int NOT NULL,
  event jsonb NOT NULL,
  node text NOT NULL,
  received timestamptz NOT NULL DEFAULT now()
);
-- Per pull request: whether it is open and the last event that counted, from which a new leader
-- makes its preview again; and the preview's record as the leader keeps it (GET /previews elsewhere).
CREATE TABLE IF NOT EXISTS shipkit.preview_prs (
  repo text NOT NULL,
  pr int NOT NULL,
  open boolean NOT NULL,
  last_event jsonb,
  record jsonb,
  node text,
  updated timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repo, pr)
);
`,
  },
  {
    version: 14,
    what: 'preview builds handed back by workers: the built tree and the log, until the leader takes them',
    sql: `
-- A worker writes one row per preview build it ran (lib/previews/remote-build.ts); the leading
-- hook-server deletes it as it takes the tree (gzip tar of the work tree without .git) and the log.
CREATE TABLE IF NOT EXISTS shipkit.preview_builds (
  job text PRIMARY KEY,
  ok boolean NOT NULL,
  error text,
  log text NOT NULL,
  worker text NOT NULL,
  tree bytea,
  made timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 15,
    what: "the batch function deletes and cancels the batch's pg-boss jobs itself (no round trip under a repo's lock)",
    sql: ENQUEUE_BATCH,
  },
  {
    version: 16,
    what: "job wake-ups say each job's kind of change; a build superseded before it started is told by its writer",
    sql: `
-- "XID/KINDS ID ID ...": KINDS has a letter per id, q (queued), s (a build superseded before it
-- started, told by the node whose batch superseded it), x (another end without a start: cancelled
-- while queued) or e (any other); lib/jobs/pg/mirror.ts reads q and s later, x too unless it leads.
-- An older node takes XID/KINDS for an xid not its own. The batch function sets told for s.
CREATE OR REPLACE FUNCTION shipkit.jobs_notify_kind(state text, record jsonb, told boolean) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN state = 'queued' THEN 'q'
    WHEN record->>'started' IS NULL AND coalesce((record->>'attempts')::int, 0) = 0 THEN
      CASE WHEN state = 'superseded' AND told THEN 's' ELSE 'x' END
    ELSE 'e' END
$$;
CREATE OR REPLACE FUNCTION shipkit.jobs_notify_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('${NOTIFY_CHANNEL}', txid_current()::text || '/' || string_agg(c.kind, '' ORDER BY c.r) ||
        ' ' || string_agg(c.id, ' ' ORDER BY c.r))
    FROM (SELECT n.id, shipkit.jobs_notify_kind(n.state, n.record, n.told) AS kind, row_number() OVER () AS r
      FROM new_rows n) c GROUP BY (c.r - 1) / 100;
  ELSE
    PERFORM pg_notify('${NOTIFY_CHANNEL}', txid_current()::text || '/' || string_agg(c.kind, '' ORDER BY c.r) ||
        ' ' || string_agg(c.id, ' ' ORDER BY c.r))
    FROM (SELECT n.id, shipkit.jobs_notify_kind(n.state, n.record, n.told) AS kind, row_number() OVER () AS r
      FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE n.state IS DISTINCT FROM o.state OR n.record IS DISTINCT FROM o.record) c GROUP BY (c.r - 1) / 100;
  END IF;
  RETURN NULL;
END $$;
${ENQUEUE_BATCH}`,
  },
];
