// With `queue:`, a backup's database part (docs/backup.md): shipkit's two schemas (its job
// records and pg-boss's queue) dumped by pg_dump in one repeatable-read snapshot, and put back
// by pg_restore in one transaction. The password goes to them in PGPASSWORD, never on a command
// line; every message names the database without it.
import { $ } from '../core/shell.ts';
import { ConfigError, WorkError } from '../core/errors.ts';
import { findOnPath } from '../core/programs.ts';
import { BOSS_SCHEMA } from '../db/migrations.ts';
import { redactPassword, type QueueDatabase } from '../db/connect.ts';
import { resolveQueue } from '../db/primary.ts';

/** The schemas a backup holds: shipkit's records and pg-boss's queue. */
export const SCHEMAS = ['shipkit', BOSS_SCHEMA] as const;

/** `queue:` resolved as on the machine that runs this (env:/file: read here). */
export function queueDatabase(queue: string | string[], baseDir: string): Promise<QueueDatabase> {
  return resolveQueue(queue, { baseDir, where: 'queue' });
}

type Tool = 'pg_dump' | 'pg_restore' | 'psql';

/** The full path of a PostgreSQL client program; a ConfigError (exit 2) saying how to get it. */
export function program(name: Tool): string {
  const found = findOnPath(name);
  if (!found)
    throw new ConfigError(
      `With queue: the backup's database part needs ${name}, which is not on the PATH. Install it ` +
        `(Debian: apt-get install postgresql-client), or pass --no-database to leave the database out.`,
    );
  return found;
}

/** The URL without its password, and the environment that carries it. */
function connection(db: QueueDatabase): { url: string; env: NodeJS.ProcessEnv } {
  const url = new URL(db.url);
  url.password = '';
  return { url: url.toString(), env: { ...process.env, PGPASSWORD: db.password, PGCONNECT_TIMEOUT: '10' } };
}

/** pg_dump of shipkit's schemas into `file` (custom format). */
export async function dumpDatabase(db: QueueDatabase, file: string): Promise<void> {
  const pgDump = program('pg_dump');
  const { url, env } = connection(db);
  const schemas = SCHEMAS.flatMap((s) => ['--schema', s]);
  const run = await $({
    env,
    quiet: true,
    nothrow: true,
  })`${pgDump} --format=custom --no-owner --no-privileges ${schemas} --file ${file} --dbname ${url}`;
  if (run.exitCode !== 0)
    throw new WorkError(`pg_dump of ${db.where} failed: ${redactPassword(run.stderr.trim(), db)}`);
}

/** How many shipkit jobs the database holds (0 when it has no shipkit schema yet). */
export async function jobsIn(db: QueueDatabase): Promise<number> {
  const psql = program('psql');
  const { url, env } = connection(db);
  const query = async (sql: string) => {
    const run = await $({ env, quiet: true, nothrow: true })`${psql} -X -At -v ON_ERROR_STOP=1 -c ${sql} ${url}`;
    if (run.exitCode !== 0) throw new WorkError(`Cannot read ${db.where}: ${redactPassword(run.stderr.trim(), db)}`);
    return run.stdout.trim();
  };
  if ((await query(`SELECT to_regclass('shipkit.jobs') IS NOT NULL`)) !== 't') return 0;
  return Number(await query('SELECT count(*) FROM shipkit.jobs'));
}

/** pg_restore of a dump made by dumpDatabase: shipkit's schemas replaced, in one transaction. */
export async function restoreDatabase(db: QueueDatabase, file: string): Promise<void> {
  const pgRestore = program('pg_restore');
  const { url, env } = connection(db);
  const run = await $({
    env,
    quiet: true,
    nothrow: true,
  })`${pgRestore} --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error --dbname ${url} ${file}`;
  if (run.exitCode !== 0)
    throw new WorkError(
      `pg_restore into ${db.where} failed, nothing there changed: ${redactPassword(run.stderr.trim(), db)}`,
    );
}
