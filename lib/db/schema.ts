// Bringing a database to the tables this shipkit writes (db/migrations.ts), one process at a
// time, and refusing one that a newer shipkit has changed, so that an older node behind the same
// load balancer cannot write rows it does not understand.
import type pg from 'pg';
import { ConfigError } from '../core/errors.ts';
import { LOCKS } from './locks.ts';
import { MIGRATIONS } from './migrations.ts';

/**
 * The version of shipkit's tables this code writes: raised with each change to them. A database
 * a newer shipkit has changed is refused (below), so that an older node behind the same load
 * balancer cannot write rows it does not understand.
 */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

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
    await client.query(`SELECT pg_advisory_xact_lock(${LOCKS.schema})`);
    await client.query(VERSION_SQL);
    const { rows } = await client.query('SELECT version, shipkit FROM shipkit.schema_version WHERE id = 1');
    if (rows.length && Number(rows[0].version) > SCHEMA_VERSION)
      throw new ConfigError(
        `the queue database's tables are version ${rows[0].version} (written by shipkit ` +
          `${rows[0].shipkit}), newer than this shipkit ${shipkit} knows (${SCHEMA_VERSION}): upgrade shipkit on ` +
          `this machine; nothing in the database was changed`,
      );
    const at = rows.length ? Number(rows[0].version) : 0;
    for (const m of MIGRATIONS) if (m.version > at) await client.query(m.sql);
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
