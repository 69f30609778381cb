// The JobQueue on PostgreSQL (`queue:`, docs/workers.md), hook-server's side: a delivery's job, the
// pushes it supersedes and its pg-boss job commit in one transaction before the 202 (503 when the
// database is away); reads come from the mirror (pg/mirror.ts).
// The whole story: docs/internals.md.
import type { Logger } from '../../core/log.ts';
import type { Job } from '../job.ts';
import {
  newJobRecord,
  type EnqueueResult,
  type JobQueue,
  type JobRunner,
  type KillGroup,
  type NewJob,
} from '../job-queue.ts';
import {
  connectQueueDatabase,
  inTransaction,
  startError,
  type QueueConnection,
  type QueueDatabase,
} from './connect.ts';
import { JobMirror } from './mirror.ts';
import { commitBatch, type BatchOutcome } from './enqueue.ts';
import { Reaper } from './reaper.ts';
import { OutputReceiver } from './output.ts';
import { importJournal } from './import.ts';
import { PgWorker } from './worker.ts';
import { messageOf } from '../../core/errors.ts';

export interface PgQueueOptions {
  db: QueueDatabase;
  /** The configured repos: a pg-boss queue each. */
  repos: string[];
  /** Jobs hook-server runs itself; 0: none, workers run them all. */
  concurrency: number;
  run: JobRunner;
  log: Logger;
  /** This process as a worker, in job records (default `hook-server`). */
  workerName?: string;
  onStart?: (job: Job) => void;
  onEnd?: (job: Job) => void;
  /** The local journal's jobs, copied into the database once (pg/import.ts): `source` names the journal. */
  history?: { source: string; jobs: Iterable<Job> };
  /** DATA/jobs: the output of jobs that run on workers is written here as it comes (pg/output.ts). */
  jobsDir?: string;
  now?: () => Date;
  reaperMs?: number;
}

export class PgJobQueue implements JobQueue {
  private readonly options: PgQueueOptions;
  private readonly conn: QueueConnection;
  private readonly mirror: JobMirror;
  private readonly reaper: Reaper;
  private readonly worker: PgWorker | undefined;
  private readonly output: OutputReceiver | undefined;
  private outputTimer: NodeJS.Timeout | undefined;
  private accepting = true;
  /** Per repo: jobs waiting for the transaction after the one committing now. */
  private readonly waiting = new Map<
    string,
    Array<{ job: Job; resolve: (r: EnqueueResult) => void; reject: (e: unknown) => void }>
  >();

  private constructor(
    options: PgQueueOptions,
    conn: QueueConnection,
    mirror: JobMirror,
    output: OutputReceiver | undefined,
  ) {
    this.options = options;
    this.conn = conn;
    this.mirror = mirror;
    this.output = output;
    this.reaper = new Reaper({ ...conn, log: options.log, everyMs: options.reaperMs, now: options.now });
    this.worker =
      options.concurrency > 0
        ? new PgWorker({
            ...conn,
            name: options.workerName ?? 'hook-server',
            concurrency: options.concurrency,
            repos: options.repos,
            run: options.run,
            log: options.log,
            now: options.now,
          })
        : undefined;
  }

  /** Connected, tables and queues in place, the mirror loaded; a ConfigError naming the database otherwise. */
  static async open(options: PgQueueOptions): Promise<PgJobQueue> {
    const { db, log, jobsDir } = options;
    const conn = await connectQueueDatabase({
      db,
      name: 'shipkit hook-server',
      log,
      repos: options.repos,
      supervise: true,
    });
    const output = jobsDir ? new OutputReceiver({ ...conn, jobsDir, log }) : undefined;
    const onEnd = (job: Job) => {
      output
        ?.ended(job.id)
        .catch((error) => log.warn(`could not write the output of job ${job.id}: ${messageOf(error)}`));
      options.onEnd?.(job);
    };
    const mirror = new JobMirror({
      db,
      pool: conn.pool,
      newClient: conn.newClient,
      log,
      onStart: options.onStart,
      onEnd,
    });
    try {
      if (options.history) await importJournal(conn.pool, { ...options.history, log });
      await mirror.open();
      await output?.open();
    } catch (error) {
      await mirror.close();
      await output?.close();
      await conn.close();
      throw startError(error, db);
    }
    return new PgJobQueue(options, conn, mirror, output);
  }

  /** Every 2 s: the output of jobs running on workers, in case a notification was missed. */
  private pollOutput(): void {
    const own = this.options.workerName ?? 'hook-server';
    const remote = () =>
      [...this.mirror.jobs.values()].filter((j) => j.state === 'running' && j.worker !== own).map((j) => j.id);
    this.outputTimer = setInterval(() => {
      this.output?.poll(remote()).catch(() => undefined);
    }, 2_000);
    this.outputTimer.unref?.();
  }

  private now(): string {
    return (this.options.now ?? (() => new Date()))().toISOString();
  }

  /**
   * Durable before it resolves: the job commits with the others of its repo that wait meanwhile
   * (group commit, pg/enqueue.ts); with the database away it throws, and nothing is kept.
   */
  enqueue(input: NewJob): Promise<EnqueueResult> {
    if (!this.accepting) return Promise.reject(new Error('the queue is shutting down'));
    const job = newJobRecord(input, 0, this.now());
    return new Promise((resolve, reject) => {
      const waiting = this.waiting.get(job.repo);
      if (waiting) return void waiting.push({ job, resolve, reject });
      this.waiting.set(job.repo, [{ job, resolve, reject }]);
      void this.commitWaiting(job.repo);
    });
  }

  /** Commit a repo's waiting jobs, batch after batch, until none wait. */
  private async commitWaiting(repo: string): Promise<void> {
    for (;;) {
      const batch = this.waiting.get(repo) ?? [];
      if (batch.length === 0) return void this.waiting.delete(repo);
      this.waiting.set(repo, []);
      try {
        const outcome = await inTransaction(this.conn.pool, (c) =>
          commitBatch(
            c,
            this.conn.boss,
            batch.map((w) => w.job),
          ),
        );
        this.told(outcome);
        outcome.results.forEach((result, i) => batch[i].resolve(result));
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
  }

  /** Read-your-writes: GET /jobs/ID right after the 202 finds the job. */
  private told({ results, superseded }: BatchOutcome): void {
    for (const gone of superseded) {
      this.mirror.apply(gone);
      this.options.log.info('job superseded', { job: gone.id, repo: gone.repo, reason: gone.reason ?? undefined });
    }
    for (const { job, duplicate } of results) if (!duplicate) this.mirror.apply(job);
  }

  /**
   * Jobs that ended while hook-server was down are told to its listeners now (commit statuses,
   * notifications), as the local queue tells those it settles; jobs of workers that are gone are
   * the reaper's (resume).
   */
  async recover(): Promise<void> {
    await this.mirror.tellUntold();
  }

  resume(): void {
    this.reaper.start();
    this.worker?.start();
    if (this.output) this.pollOutput();
  }

  get(id: string): Job | undefined {
    return this.mirror.jobs.get(id);
  }

  list(options?: { limit?: number; repo?: string; state?: string }): Job[] {
    return this.mirror.list(options);
  }

  counts(): { queued: number; running: number } {
    return this.mirror.counts();
  }

  /** Every job the mirror holds (the pages' and notifications' history). */
  all(): Iterable<Job> {
    return this.mirror.jobs.values();
  }

  async stop({ graceMs, killGroup }: { graceMs: number; killGroup: KillGroup }): Promise<void> {
    this.accepting = false;
    await this.worker?.stop({ graceMs, killGroup });
    await this.reaper.stop();
    clearInterval(this.outputTimer);
    await this.mirror.close();
    await this.output?.close();
    await this.conn.close();
  }
}
