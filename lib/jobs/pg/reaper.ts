// Finding the jobs of workers that are gone (docs/workers.md): a worker holds a session advisory
// lock on each job it runs and PostgreSQL ends the session of a client that died; a running job
// whose lock is free for some rounds in a row is queued again (or left interrupted).
// The whole story: docs/internals.md.
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import type { Logger } from '../../core/log.ts';
import { bossDb } from './connect.ts';
import { describeDbError, type QueueDatabase } from '../../db/connect.ts';
import { lockRepo, queueName, readRunning, updateJobs, type Row } from './records.ts';
import { LOCKS } from '../../db/locks.ts';

export interface ReaperOptions {
  db: QueueDatabase;
  pool: pg.Pool;
  boss: PgBoss;
  log: Logger;
  /** Default 5 s. */
  everyMs?: number;
  /** Rounds in a row a job's lock must be free (default 3). */
  strikes?: number;
  maxInterruptions?: number;
  now?: () => Date;
}

export class Reaper {
  private readonly options: ReaperOptions;
  /** `id#attempt` → rounds its lock was free. */
  private readonly free = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(options: ReaperOptions) {
    this.options = options;
  }

  start(): void {
    const tick = () => {
      this.round = this.sweep()
        .catch((error) => this.options.log.debug(`reaper: ${describeDbError(error, this.options.db)}`))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.everyMs ?? 5_000);
        });
    };
    this.timer = setTimeout(tick, this.options.everyMs ?? 5_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  /** One round over the running jobs of every worker. */
  async sweep(): Promise<void> {
    const running = await readRunning(this.options.pool);
    const seen = new Set<string>();
    for (const row of running) {
      if (this.stopped) return;
      const key = `${row.job.id}#${row.job.attempts}`;
      seen.add(key);
      await this.check(row, key);
    }
    for (const key of this.free.keys()) if (!seen.has(key)) this.free.delete(key);
  }

  /** Try the job's lock on a session of our own; held, the worker is alive. */
  private async check(row: Row, key: string): Promise<void> {
    const client = await this.options.pool.connect();
    let broken = false;
    try {
      const { rows } = await client.query(`SELECT pg_try_advisory_lock(${LOCKS.job('$1')}) AS got`, [row.job.id]);
      if (!rows[0].got) return void this.free.delete(key);
      try {
        const rounds = (this.free.get(key) ?? 0) + 1;
        this.free.set(key, rounds);
        if (rounds >= (this.options.strikes ?? 3)) await this.interrupt(client, row);
      } finally {
        await client.query(`SELECT pg_advisory_unlock(${LOCKS.job('$1')})`, [row.job.id]);
      }
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async interrupt(client: pg.PoolClient, { job, bossId }: Row): Promise<void> {
    const { boss, log } = this.options;
    const n = job.interruptions + 1;
    const requeue = n <= (this.options.maxInterruptions ?? 5);
    const reason = `worker ${job.worker ?? '?'} stopped answering while it ran`;
    const patch = requeue
      ? {
          state: 'queued' as const,
          started: null,
          finished: null,
          pgid: null,
          reason: `queued again after interruption ${n}: ${reason}`,
        }
      : {
          state: 'interrupted' as const,
          finished: (this.options.now?.() ?? new Date()).toISOString(),
          pgid: null,
          reason,
        };
    await client.query('BEGIN');
    try {
      await lockRepo(client, job.repo);
      const rows = await updateJobs(
        client,
        { id: job.id, attempts: job.attempts, worker: job.worker },
        ['running'],
        patch,
        'interruptions',
      );
      if (rows.length && bossId) {
        if (requeue) await boss.fail(queueName(job.repo), bossId, { reason }, { db: bossDb(client) });
        else await boss.cancel(queueName(job.repo), bossId, { db: bossDb(client) });
      }
      await client.query('COMMIT');
      if (rows.length)
        log.warn(
          requeue
            ? 'job interrupted: its worker is gone; queued again'
            : 'job interrupted: its worker is gone, and it was interrupted too often; left interrupted',
          { job: job.id, repo: job.repo, worker: job.worker },
        );
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
}
