// The leader's lease (lib/jobs/pg/leader.ts) on a real PostgreSQL, with short timings: a leader
// that stops renewing while its session stays open is replaced once the lease lapses, its session
// ended and its writes fenced; a handover goes at once; a lease whose pid is a stranger's session
// (after a database failover) is no lease; a lead taken by an older shipkit (no lease) is left to
// the lock, as before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { Leadership, stillLeads, type LeaderOptions } from '../../../../lib/jobs/pg/leader.ts';
import { markTold } from '../../../../lib/jobs/pg/records.ts';
import { ensureSchema } from '../../../../lib/db/schema.ts';
import { silentLogger } from '../../../../lib/core/log.ts';
import { startPostgres, type Postgres } from '../../../fixtures/postgres.ts';
import { waitFor } from '../../../_helpers/common.ts';

let db: Postgres | undefined;
let pool: pg.Pool;

test.before(async () => {
  db = await startPostgres();
  if (!db) return;
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  pool.on('error', () => undefined);
  const client = await pool.connect();
  await ensureSchema(client, 'test');
  client.release();
});

test.after(async () => {
  await pool?.end();
  await db?.stop();
});

function leader(node: string, options: Partial<LeaderOptions> = {}): Leadership {
  return new Leadership({
    newClient: (name) => new pg.Client({ connectionString: db!.url, application_name: name }),
    log: silentLogger,
    node,
    everyMs: 100,
    leaseMs: 1_500,
    ...options,
  });
}

const sessions = async (node: string) =>
  Number(
    await db!.sql(
      `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shipkit hook-server ${node} (leader)'`,
    ),
  );

test('a leader that stops renewing with its session open is replaced when its lease lapses, and fenced', async () => {
  if (!db) return;
  await db.sql(
    `INSERT INTO shipkit.jobs (id, repo, state, record) VALUES ('20261127-000000-aaaaaa', 'octo/a', 'succeeded', '{}')`,
  );
  // `a` renews once a minute: as if hung after taking the lead, its session kept open.
  let clock = 0;
  const a = leader('a', { everyMs: 60_000, now: () => clock });
  const b = leader('b');
  a.start();
  const term = (await waitFor(() => a.term, { what: 'a to lead' }))!;
  const since = Date.now();
  b.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.is(b.term, undefined, 'no takeover while the lease holds');
    const taken = (await waitFor(() => b.term, { what: 'b to take over', timeoutMs: 5_000 }))!;
    const tookMs = Date.now() - since;
    assert.ok(tookMs >= 1_400 && tookMs < 2_500, `took over after ${tookMs} ms`);
    assert.is(taken, term + 1);
    await waitFor(async () => (await sessions('a')) === 0, { what: "a's session ended" });
    assert.is(await db.sql('SELECT node FROM shipkit.leader'), 'b');
    // `a` resumes: its writes under its old term are fenced, and it knows it no longer leads.
    assert.is(await stillLeads(pool, term), false);
    assert.is(await markTold(pool, ['20261127-000000-aaaaaa'], term), 0);
    clock = 2_000;
    assert.is(a.term, undefined, 'its own count of the lease ran out');
    assert.is(await markTold(pool, ['20261127-000000-aaaaaa'], taken), 1, 'the new term writes');
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a handover goes at once; a follower that finds the lock free while a live lease stands leaves it', async () => {
  if (!db) return;
  const a = leader('h1');
  a.start();
  await waitFor(() => a.term, { what: 'h1 to lead' });
  const b = leader('h2', { everyMs: 300 });
  b.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.is(b.term, undefined);
    const handed = Date.now();
    await a.stop();
    await waitFor(() => b.term, { what: 'h2 to lead', timeoutMs: 2_000 });
    assert.ok(Date.now() - handed < 1_000, 'at the next try, not when the lease would lapse');
  } finally {
    await b.stop();
  }
});

test("after a database failover the lease's pid is another program's session: taken at once, that session left alone", async () => {
  if (!db) return;
  // The row as a promoted standby has it: renewed a moment ago by a leader on the old primary,
  // whose pid is, by chance, a live session here of someone else's (the lock is free).
  const stranger = new pg.Client({ connectionString: db.url, application_name: 'psql' });
  await stranger.connect();
  try {
    const pid = (await stranger.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    await db.sql(
      `UPDATE shipkit.leader SET term = term + 1, node = 'gone', since = now(), renewed = now(), pid = ${pid}`,
    );
    const b = leader('p1', { leaseMs: 10_000 });
    const since = Date.now();
    b.start();
    await waitFor(() => b.term, { what: 'p1 to lead', timeoutMs: 2_000 });
    assert.ok(Date.now() - since < 1_000, 'not held back until the lease would lapse');
    assert.is((await stranger.query('SELECT 1 AS one')).rows[0].one, 1, "the stranger's session lives");
    await b.stop();
  } finally {
    await stranger.end().catch(() => undefined);
  }
});

test('a lead taken by an older shipkit (no lease renewed) is left to the lock', async () => {
  if (!db) return;
  const old = new pg.Client({ connectionString: db.url });
  await old.connect();
  try {
    await old.query("SELECT pg_try_advisory_lock(hashtextextended('shipkit leader', 0))");
    await old.query(`UPDATE shipkit.leader SET term = term + 1, node = 'old', since = now() + interval '1 s'`);
    const b = leader('n1');
    b.start();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.is(b.term, undefined, 'no lease to lapse: the old node leads while it holds the lock');
    await old.end();
    await waitFor(() => b.term, { what: 'n1 to lead once the lock is free', timeoutMs: 3_000 });
    await b.stop();
  } finally {
    await old.end().catch(() => undefined);
  }
});

test.run();
