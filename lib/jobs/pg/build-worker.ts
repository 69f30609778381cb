// A build worker on a PostgreSQL `queue:` (docs/workers.md): `shipkit worker`, and hook-server
// itself when its concurrency is above 0. It takes the oldest queued job of a repo it may build,
// runs it with hook-server's runner, and writes its end.
// The whole story: docs/internals.md.
import { backoffMs } from '../../core/retry.ts';
import type pg from 'pg';
import type PgBoss from 'pg-boss';
import type { Logger } from '../../core/log.ts';
import { bossDb } from './connect.ts';
import { describeDbError, inTransaction, type QueueDatabase } from '../../db/connect.ts';
import { lockRepo, queueName, repoBusy, updateJobs } from './records.ts';
import { NOTIFY_CHANNEL } from '../../db/migrations.ts';
import type { JobRunner, KillGroup, RunOutcome } from '../job-queue.ts';
import type { Job } from '../job.ts';
import { OutputSender, sendSection } from './output.ts';
import { isStoredJobId } from '../job-id.ts';
import { messageOf } from '../../core/errors.ts';
import { LOCKS } from '../../db/locks.ts';

export interface WorkerOptions {
  db: QueueDatabase;
  pool: pg.Pool;
  boss: PgBoss;
  newClient(applicationName: string): pg.Client;
  /** Shown with each job it runs (`worker` in the record, the pages and /metrics). */
  name: string;
  concurrency: number;
  /** The repos this worker may build; the jobs of others are left to other workers. */
  repos: string[];
  run: JobRunner;
  log: Logger;
  /** Look for work at least this often, besides every notification (default 2 s). */
  pollMs?: number;
  /**
   * Where a job's output file is (DATA/jobs/ID/output.log), for `shipkit worker`: it is sent to
   * hook-server through the database while the job runs (pg/output.ts). hook-server's own worker
   * has the file where its pages read it already.
   */
  outputOf?: (job: Job) => string;
  /**
   * A finished job's section of this machine's logs.txt (its steps, its commands' output), for
   * `shipkit worker`: sent with its output, so hook-server's job page has them (pg/output.ts).
   */
  sectionOf?: (job: Job) => Promise<string | undefined>;
  /** A job handed back more often than this is left `interrupted` (default 5). */
  maxInterruptions?: number;
  now?: () => Date;
}

interface Running {
  job: Job;
  bossId: string;
  done?: Promise<void>;
  handedBack: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class PgWorker {
  private readonly options: WorkerOptions;
  private readonly log: Logger;
  private readonly running = new Map<string, Running>();
  /** The worker's own session: takes, job locks, LISTEN. One statement sequence at a time. */
  private session: pg.Client | undefined;
  private sessionTurn: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private wakeUp: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private failures = 0;
  /** Set once the grace at stop has passed: a job's end that cannot be written is left to the reaper. */
  private handBackDue = false;

  constructor(options: WorkerOptions) {
    this.options = options;
    this.log = options.log.child({ worker: options.name });
  }

  get busy(): number {
    return this.running.size;
  }

  start(): void {
    this.loopDone = this.loop();
  }

  private now(): string {
    return (this.options.now ?? (() => new Date()))().toISOString();
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let took = false;
      try {
        await this.ensureSession();
        took = await this.takeRound();
        if (this.failures) this.log.info(`worker reached ${this.options.db.where} again; taking jobs`);
        this.failures = 0;
      } catch (error) {
        this.failures++;
        const wait = backoffMs(this.failures, { baseMs: 500, maxMs: 10_000 });
        this.log.warn(`worker cannot use ${describeDbError(error, this.options.db)}; trying again in ${wait / 1000} s`);
        this.dropSession();
        await this.idle(wait);
        continue;
      }
      if (!took) await this.idle(this.options.pollMs ?? 2_000);
    }
  }

  /** Wait `ms`, or less when told of new work. */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
  }

  /** Run `work` on the session when the statements before it are done. */
  private exclusive<T>(work: (session: pg.Client) => Promise<T>): Promise<T> {
    const turn = this.sessionTurn.then(() => {
      if (!this.session) throw new Error('not connected');
      return work(this.session);
    });
    this.sessionTurn = turn.catch(() => undefined);
    return turn;
  }

  private async ensureSession(): Promise<void> {
    if (this.session) return;
    const client = this.options.newClient(`shipkit worker ${this.options.name}`);
    client.on('error', () => {
      if (this.session === client) this.dropSession();
    });
    client.on('notification', () => this.wake());
    await client.connect();
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    this.session = client;
    await this.relock();
  }

  private dropSession(): void {
    const client = this.session;
    this.session = undefined;
    client?.end().catch(() => undefined);
  }

  /** After a reconnect, the locks of jobs still running here, while their records still say so. */
  private async relock(): Promise<void> {
    for (const entry of this.running.values()) {
      const got = await this.exclusive((s) =>
        s.query(`SELECT pg_try_advisory_lock(${LOCKS.job('$1')}) AS got`, [entry.job.id]),
      );
      if (!got.rows[0].got)
        this.log.warn(
          'could not take the lock of a running job again (a reaper holds it now); it may be run again elsewhere',
          { job: entry.job.id },
        );
    }
  }

  /** Take jobs while there are free slots: repos with queued jobs, oldest first. Says whether it took any. */
  private async takeRound(): Promise<boolean> {
    const { concurrency, repos } = this.options;
    if (this.running.size >= concurrency) return false;
    const { rows } = await this.exclusive((s) =>
      s.query(
        `SELECT repo, min(seq) AS first FROM shipkit.jobs WHERE state = 'queued' AND repo = ANY($1) GROUP BY repo ORDER BY first`,
        [repos],
      ),
    );
    let took = false;
    for (const { repo } of rows as Array<{ repo: string }>) {
      if (this.running.size >= concurrency || this.stopping) break;
      if ([...this.running.values()].some((r) => r.job.repo === repo)) continue;
      const taken = await this.exclusive((s) => this.take(s, repo));
      if (taken) {
        this.launch(taken);
        took = true;
      }
    }
    return took;
  }

  /** One repo's next job, in one transaction (see the file's head); undefined when none is free. */
  private async take(session: pg.Client, repo: string): Promise<Running | undefined> {
    await session.query('BEGIN');
    try {
      await lockRepo(session, repo);
      if (await repoBusy(session, repo)) return void (await session.query('COMMIT'));
      const [next] = await this.options.boss.fetch<{ job: string }>(queueName(repo), {
        db: bossDb(session),
        batchSize: 1,
      });
      if (!next) return void (await session.query('COMMIT'));
      const patch = {
        state: 'running' as const,
        started: this.now(),
        finished: null,
        pgid: null,
        reason: null,
        worker: this.options.name,
      };
      const [row] = await updateJobs(session, { bossId: next.id }, ['queued'], patch, 'attempts');
      if (!row) {
        // Its record was superseded meanwhile: pg-boss's job goes too.
        await this.options.boss.cancel(queueName(repo), next.id, { db: bossDb(session) });
        return void (await session.query('COMMIT'));
      }
      if (!isStoredJobId(row.job.id)) return void (await this.refuse(session, repo, row.job, next.id));
      await session.query(`SELECT pg_advisory_lock(${LOCKS.job('$1')})`, [row.job.id]);
      await session.query('COMMIT');
      return { job: row.job, bossId: next.id, handedBack: false };
    } catch (error) {
      await session.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /**
   * A row whose id is not a job id (written into the database by hand, or by someone who should
   * not): its id would become a path (DATA/jobs/ID). Nothing of it runs or is written here; it
   * is failed, in the transaction that took it.
   */
  private async refuse(session: pg.Client, repo: string, job: Job, bossId: string): Promise<void> {
    const reason = 'refused: its id is not a job id';
    await updateJobs(session, { bossId }, ['running'], { state: 'failed', finished: this.now(), reason });
    await this.options.boss.complete(queueName(repo), bossId, {}, { db: bossDb(session) });
    await session.query('COMMIT');
    this.log.error('refused a job whose id is not a job id; nothing of it is run or written', {
      job: JSON.stringify(String(job.id).slice(0, 80)),
      repo: job.repo,
    });
  }

  private launch(entry: Running): void {
    const { job } = entry;
    this.running.set(job.id, entry);
    this.log.info('job started', { job: job.id, repo: job.repo, kind: job.kind, attempt: job.attempts });
    const { outputOf, pool, db } = this.options;
    const output = outputOf ? new OutputSender({ pool, db, log: this.log, job, file: outputOf(job) }) : undefined;
    entry.done = (async () => {
      let outcome: RunOutcome;
      await output?.start();
      try {
        outcome = await this.options.run(job, { onSpawn: (pgid) => this.recordGroup(entry, pgid) });
      } catch (error) {
        outcome = { exit: null, reason: `could not start: ${messageOf(error)}` };
      }
      await output?.finish();
      await this.sendSection(job);
      if (!entry.handedBack) await this.finish(entry, outcome);
      this.running.delete(job.id);
      await this.exclusive((s) => s.query(`SELECT pg_advisory_unlock(${LOCKS.job('$1')})`, [job.id])).catch(
        () => undefined,
      );
      this.wake();
    })();
  }

  /** The job's section of logs.txt to hook-server, before its end is written (a failure only lags its page). */
  private async sendSection(job: Job): Promise<void> {
    const { sectionOf, pool } = this.options;
    if (!sectionOf) return;
    try {
      const text = await sectionOf(job);
      if (text !== undefined) await sendSection(pool, job, text);
    } catch (error) {
      this.log.warn(`could not send the job's log section to hook-server: ${messageOf(error)}`, { job: job.id });
    }
  }

  private recordGroup(entry: Running, pgid: number): void {
    entry.job = { ...entry.job, pgid };
    updateJobs(this.options.pool, this.mine(entry), ['running'], { pgid }).catch((error) =>
      this.log.warn("could not record the job's process group", { job: entry.job.id, error: messageOf(error) }),
    );
  }

  /** The record of this very attempt by this worker (not one the reaper gave to another). */
  private mine(entry: Running) {
    return { id: entry.job.id, worker: this.options.name, attempts: entry.job.attempts };
  }

  /** The job's end, written once the database takes it (tried again with backoff); dropped when the job is no longer this worker's. */
  private async finish(entry: Running, outcome: RunOutcome): Promise<void> {
    const { job, bossId } = entry;
    const state = outcome.exit === 0 ? ('succeeded' as const) : ('failed' as const);
    const patch = { state, exit: outcome.exit, reason: outcome.reason ?? null, finished: this.now(), pgid: null };
    for (let wait = 500; ; wait = Math.min(2 * wait, 10_000)) {
      try {
        const ended = await inTransaction(this.options.pool, async (c) => {
          await lockRepo(c, job.repo);
          const rows = await updateJobs(c, this.mine(entry), ['running'], patch);
          if (rows.length) await this.options.boss.complete(queueName(job.repo), bossId, {}, { db: bossDb(c) });
          return rows.length > 0;
        });
        if (ended)
          this.log.info(`job ${state}`, { job: job.id, repo: job.repo, exit: outcome.exit, reason: outcome.reason });
        else
          this.log.warn(
            'job ended here, but it was given to another worker meanwhile (this one was taken for gone); its end is not recorded',
            { job: job.id, repo: job.repo },
          );
        return;
      } catch (error) {
        if (this.stopping && this.handBackDue)
          return void this.log.error(
            `could not record the job's end (${describeDbError(error, this.options.db)}); the reaper runs it again`,
            { job: job.id },
          );
        this.log.warn(
          `could not record the job's end (${describeDbError(error, this.options.db)}); trying again in ${wait / 1000} s`,
          { job: job.id },
        );
        await sleep(wait);
      }
    }
  }

  /** Stop taking jobs; running ones get `graceMs` to finish, then are handed back (queued again) and their groups ended. */
  async stop({ graceMs, killGroup }: { graceMs: number; killGroup: KillGroup }): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loopDone;
    const all = Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.handBackDue = true;
      for (const entry of this.running.values()) await this.handBack(entry, killGroup);
    }
    await all;
    this.dropSession();
  }

  /** A job still running at shutdown: queued again for another worker (or left interrupted after too many), then its group ended. */
  private async handBack(entry: Running, killGroup: KillGroup): Promise<void> {
    const { job, bossId } = entry;
    entry.handedBack = true;
    const requeue = job.interruptions + 1 <= (this.options.maxInterruptions ?? 5);
    const reason = `worker ${this.options.name} stopped while it ran`;
    try {
      await inTransaction(this.options.pool, async (c) => {
        await lockRepo(c, job.repo);
        const patch = requeue
          ? {
              state: 'queued' as const,
              started: null,
              finished: null,
              pgid: null,
              reason: `queued again after interruption ${job.interruptions + 1}: ${reason}`,
            }
          : { state: 'interrupted' as const, finished: this.now(), pgid: null, reason };
        const rows = await updateJobs(c, this.mine(entry), ['running'], patch, 'interruptions');
        if (rows.length && requeue)
          await this.options.boss.fail(queueName(job.repo), bossId, { reason }, { db: bossDb(c) });
        else if (rows.length) await this.options.boss.cancel(queueName(job.repo), bossId, { db: bossDb(c) });
      });
      this.log.warn(
        requeue
          ? 'job handed back at shutdown; another worker runs it'
          : 'job interrupted at shutdown too often; left interrupted',
        { job: job.id, repo: job.repo },
      );
    } catch (error) {
      this.log.error(
        `could not hand the job back (${describeDbError(error, this.options.db)}); the reaper queues it again once this worker is gone`,
        { job: job.id },
      );
    }
    await killGroup(entry.job);
  }
}
