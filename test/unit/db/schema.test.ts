// shipkit's tables brought up to date (lib/db/schema.ts) on a real PostgreSQL: a new database gets
// every migration and the version, a second run changes nothing, a database a newer shipkit wrote
// is refused untouched, and the repo lock the schema's PL/pgSQL takes is the one TypeScript takes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { ConfigError } from '../../../lib/core/errors.ts';
import { LOCKS } from '../../../lib/db/locks.ts';
import { SCHEMA_VERSION, ensureSchema } from '../../../lib/db/schema.ts';
import { lockRepo } from '../../../lib/jobs/pg/records.ts';
import { startPostgres, type Postgres } from '../../fixtures/postgres.ts';

let db: Postgres | undefined;
let pool: pg.Pool;

test.before(async () => {
  db = await startPostgres();
  if (db) {
    pool = new pg.Pool({ connectionString: db.url, max: 3 });
    pool.on('error', () => undefined);
  }
});

test.after(async () => {
  await pool?.end();
  await db?.stop();
});

async function withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await work(client);
  } finally {
    client.release();
  }
}

test('a new database gets every table and the version; a second run changes nothing', async () => {
  if (!db) return;
  await withClient((c) => ensureSchema(c, 'test-1'));
  assert.is(await db.sql('SELECT version FROM shipkit.schema_version'), String(SCHEMA_VERSION));
  const tables = await db.sql(
    "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'shipkit'",
  );
  for (const t of ['jobs', 'deliveries', 'ended_sessions', 'leader', 'fleet_hosts', 'audit', 'ledgers', 'pushes'])
    assert.ok(tables.split(',').includes(t), `shipkit.${t} exists (${tables})`);
  await db.sql(`INSERT INTO shipkit.ended_sessions (id, issued) VALUES ('kept', 1)`);
  await withClient((c) => ensureSchema(c, 'test-2'));
  assert.is(await db.sql(`SELECT count(*) FROM shipkit.ended_sessions WHERE id = 'kept'`), '1');
  assert.is(
    await db.sql('SELECT shipkit FROM shipkit.schema_version'),
    'test-1',
    'an up-to-date database is not rewritten',
  );
});

test('a database a newer shipkit changed is refused, and left as it was', async () => {
  if (!db) return;
  await withClient((c) => ensureSchema(c, 'test'));
  await db.sql(`UPDATE shipkit.schema_version SET version = ${SCHEMA_VERSION + 1}, shipkit = '99.0.0'`);
  try {
    const error = await withClient((c) => ensureSchema(c, 'old')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(error, ConfigError);
    assert.match(String(error), /newer than this shipkit old knows .*upgrade shipkit/);
    assert.is(await db.sql('SELECT version FROM shipkit.schema_version'), String(SCHEMA_VERSION + 1));
  } finally {
    await db.sql(`UPDATE shipkit.schema_version SET version = ${SCHEMA_VERSION}, shipkit = 'test'`);
  }
});

test("the repo lock lockRepo takes is the one enqueue_batch's PL/pgSQL takes (one key, LOCKS.repo)", async () => {
  if (!db) return;
  await withClient((c) => ensureSchema(c, 'test'));
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await lockRepo(holder, 'octo/site');
    const other = await withClient(async (c) => {
      const key = await c.query(`SELECT ${LOCKS.repo('$1')} AS k`, ['octo/site']);
      const body = await c.query(
        "SELECT prosrc FROM pg_proc WHERE proname = 'enqueue_batch' AND pronamespace = 'shipkit'::regnamespace",
      );
      const tried = await c.query(`SELECT pg_try_advisory_xact_lock(${LOCKS.repo('$1')}) AS got`, ['octo/site']);
      const free = await c.query(`SELECT pg_try_advisory_xact_lock(${LOCKS.repo('$1')}) AS got`, ['octo/other']);
      return {
        key: key.rows[0].k,
        body: String(body.rows[0].prosrc),
        tried: tried.rows[0].got,
        free: free.rows[0].got,
      };
    });
    assert.is(other.tried, false, 'the repo is held');
    assert.is(other.free, true, 'another repo is not');
    assert.ok(other.body.includes(LOCKS.repo('p_repo')), 'the function takes the key LOCKS.repo gives');
    assert.ok(other.key !== undefined);
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
});

test.run();
