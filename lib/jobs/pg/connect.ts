// The job queue's connection (`queue:`, docs/workers.md): shipkit's tables brought up to date and
// pg-boss started with a queue per repo, one process at a time; the connection itself (URL,
// messages, keepalives) is db/connect.ts's. pg and pg-boss are loaded only when a queue is used.
// The whole story: docs/internals.md.
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import path from 'node:path';
import type { ShipkitConfig } from '../../config/shipkit-yml.ts';
import { version } from '../../core/cli.ts';
import type { Logger } from '../../core/log.ts';
import {
  commonJsExports,
  describeDbError,
  newPool,
  newSession,
  startError,
  type QueueDatabase,
} from '../../db/connect.ts';
import { resolveQueue } from '../../db/primary.ts';
import { LOCKS } from '../../db/locks.ts';
import { BOSS_SCHEMA } from '../../db/migrations.ts';
import { ensureSchema } from '../../db/schema.ts';
import { previewBuildsQueue, queueName } from './records.ts';

/** pg-boss's `db` option over one checked-out client: its statements join the caller's transaction. */
export function bossDb(client: pg.ClientBase): {
  executeSql(text: string, values: unknown[]): Promise<{ rows: any[] }>;
} {
  return { executeSql: (text, values) => client.query(text, values as unknown[]) };
}

export interface QueueConnection {
  db: QueueDatabase;
  /** Short transactions: enqueue, transitions, the reaper, the mirror's reads. */
  pool: pg.Pool;
  boss: PgBoss;
  /** A session of its own (a worker's job locks, LISTEN), not yet connected. */
  newClient(applicationName: string): pg.Client;
  close(): Promise<void>;
}

/**
 * pg-boss retries a job still active this long after it started (23 h; it allows less than 24): a backstop
 * only, the reaper comes first. A build that runs longer is not run twice: a worker takes no job of
 * a repo whose record is running, and a pg-boss job whose record is no longer queued is cancelled.
 */
const EXPIRE_SECONDS = 23 * 3600;

/**
 * Connect, create shipkit's tables and pg-boss's schema if they are missing, and a queue per repo
 * (`singleton`: one active job per repo). Any failure is a ConfigError naming the database.
 * `supervise`: pg-boss's maintenance (expiry, deletion of old jobs) runs in hook-server only.
 */
export async function connectQueueDatabase({
  db,
  name,
  log,
  repos,
  supervise,
}: {
  db: QueueDatabase;
  name: string;
  log: Logger;
  repos: Iterable<string>;
  supervise: boolean;
}): Promise<QueueConnection> {
  let lastWarning = '';
  const warn = (message: string) => {
    if (message !== lastWarning) log.warn(message);
    lastWarning = message;
  };
  const [pgNs, bossNs] = await Promise.all([import('pg'), import('pg-boss')]);
  const pgModule = commonJsExports<typeof pg>(pgNs, (m) => typeof (m as typeof pg).Pool === 'function');
  const Boss = commonJsExports<typeof PgBoss>(bossNs, (m) => typeof m === 'function');
  const pool = newPool(pgModule, db, name, warn);
  // pg-boss on a pool of ours: its sessions follow a list's writable server as the others do.
  const bossPool = newPool(pgModule, db, `${name} (pg-boss)`, (message) => warn(`pg-boss: ${message}`), 2);
  let boss: PgBoss | undefined;
  try {
    // One process at a time sets up the tables and pg-boss's queues: two nodes started at once on
    // an empty database would otherwise make the same queue's tables together and deadlock.
    const client = await pool.connect();
    try {
      await client.query(`SELECT pg_advisory_lock(${LOCKS.setup})`);
      await ensureSchema(client, version());
      boss = new Boss({
        db: { executeSql: (text: string, values?: unknown[]) => bossPool.query(text, values) },
        schema: BOSS_SCHEMA,
        max: 2,
        supervise,
        schedule: false,
        migrate: true,
      } as PgBoss.ConstructorOptions);
      boss.on('error', (error) => warn(`pg-boss: ${describeDbError(error, db)}`));
      await boss.start();
      for (const repo of repos) {
        await boss.createQueue(queueName(repo), {
          name: queueName(repo),
          policy: 'singleton',
          retryLimit: 1_000_000,
          retryDelay: 0,
          retryBackoff: false,
          expireInSeconds: EXPIRE_SECONDS,
        });
        // Its preview builds (previews.build_on: workers), taken by any worker with the repo.
        await boss.createQueue(previewBuildsQueue(repo), { name: previewBuildsQueue(repo), policy: 'standard' });
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock_all()`).catch(() => undefined);
      client.release();
    }
  } catch (error) {
    await boss?.stop({ graceful: false, close: true, wait: true }).catch(() => undefined);
    await Promise.all([pool.end(), bossPool.end()]).catch(() => undefined);
    throw startError(error, db);
  }
  const started = boss;
  return {
    db,
    pool,
    boss: started,
    newClient: (applicationName) => newSession(pgModule, db, applicationName),
    async close() {
      await started.stop({ graceful: false, close: true, wait: true }).catch(() => undefined);
      await Promise.all([pool.end(), bossPool.end()]).catch(() => undefined);
    },
  };
}

/** The queue database of `config` (which has `queue:`), connected for a one-off command as `name`. */
export async function connectConfigQueue(
  config: Pick<ShipkitConfig, 'file' | 'repos'> & { queue: string | string[] },
  name: string,
  log: Logger,
): Promise<QueueConnection> {
  const db = await resolveQueue(config.queue, {
    baseDir: path.dirname(config.file),
    where: `${config.file}: queue`,
    log,
  });
  return connectQueueDatabase({ db, name, log, repos: config.repos.keys(), supervise: false });
}
