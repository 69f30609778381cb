// The JobQueue on PostgreSQL (DESIGN §8 `queue:`), hook-server's side: a delivery's job, the
// queued pushes it supersedes and its pg-boss job commit in one transaction before enqueue
// resolves (so a 202 is only given for a committed job; with the database away enqueue throws
// and the delivery is answered 503). get/list/counts read the mirror (pg-mirror.ts). resume()
// starts the reaper and, with concurrency above 0, a worker inside hook-server (pg-worker.ts);
// `concurrency: 0` leaves every build to `shipkit worker`s. Records: pg-records.ts.
import type { Logger } from '../core/log.ts';
import { newJobId } from './job-id.ts';
import type { Job } from './journal.ts';
import type { EnqueueResult, JobQueue, JobRunner, KillGroup, NewJob } from './job-queue.ts';
import { bossDb, connectQueueDatabase, inTransaction, startError, type QueueConnection, type QueueDatabase } from './pg-connect.ts';
import { JobMirror } from './pg-mirror.ts';
import { findActiveDelivery, insertJob, lockRepo, queueName, updateJobs } from './pg-records.ts';
import { Reaper } from './pg-reaper.ts';
import { OutputReceiver } from './pg-output.ts';
import { PgWorker } from './pg-worker.ts';

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
  /** DATA/jobs: the output of jobs that run on workers is written here as it comes (pg-output.ts). */
  jobsDir?: string;
  now?: () => Date;
  reaperMs?: number;
}

/** A new job's record (as the local queue writes it; seq comes from the database). */
function newRecord(input: NewJob, at: string): Job {
  return {
    id: newJobId(new Date(at)), seq: 0, repo: input.repo, kind: input.kind,
    sha: input.sha ?? null, ref: input.ref ?? null, branch: input.branch ?? null, tag: input.tag ?? null,
    cloneUrl: input.cloneUrl ?? null, deliveryId: input.deliveryId ?? null, forge: input.forge ?? null,
    state: 'queued', exit: null, queued: at, started: null, finished: null, reason: null,
    attempts: 0, interruptions: 0, pgid: null,
    ...(input.message ? { message: input.message } : {}), ...(input.author ? { author: input.author } : {}),
    ...(input.pusher ? { pusher: input.pusher } : {}), ...(input.commitUrl ? { commitUrl: input.commitUrl } : {}),
  };
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

  private constructor(options: PgQueueOptions, conn: QueueConnection, mirror: JobMirror, output: OutputReceiver | undefined) {
    this.options = options;
    this.conn = conn;
    this.mirror = mirror;
    this.output = output;
    this.reaper = new Reaper({ ...conn, log: options.log, everyMs: options.reaperMs, now: options.now });
    this.worker = options.concurrency > 0
      ? new PgWorker({ ...conn, name: options.workerName ?? 'hook-server', concurrency: options.concurrency, repos: options.repos, run: options.run, log: options.log, now: options.now })
      : undefined;
  }

  /** Connected, tables and queues in place, the mirror loaded; a ConfigError naming the database otherwise. */
  static async open(options: PgQueueOptions): Promise<PgJobQueue> {
    const { db, log, jobsDir } = options;
    const conn = await connectQueueDatabase({ db, name: 'shipkit hook-server', log, repos: options.repos, supervise: true });
    const output = jobsDir ? new OutputReceiver({ ...conn, jobsDir, log }) : undefined;
    const onEnd = (job: Job) => {
      output?.ended(job.id).catch((error) => log.warn(`could not write the output of job ${job.id}: ${(error as Error).message}`));
      options.onEnd?.(job);
    };
    const mirror = new JobMirror({ db, pool: conn.pool, newClient: conn.newClient, log, onStart: options.onStart, onEnd });
    try {
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
    const remote = () => [...this.mirror.jobs.values()].filter((j) => j.state === 'running' && j.worker !== own).map((j) => j.id);
    this.outputTimer = setInterval(() => {
      this.output?.poll(remote()).catch(() => undefined);
    }, 2_000);
    this.outputTimer.unref?.();
  }

  private now(): string {
    return (this.options.now ?? (() => new Date()))().toISOString();
  }

  async enqueue(input: NewJob): Promise<EnqueueResult> {
    if (!this.accepting) throw new Error('the queue is shutting down');
    const job = newRecord(input, this.now());
    const { boss, pool } = this.conn;
    const result = await inTransaction(pool, async (c) => {
      await lockRepo(c, job.repo);
      const existing = input.deliveryId ? await findActiveDelivery(c, job.repo, input.deliveryId) : undefined;
      if (existing) return { job: existing, duplicate: true, superseded: [] as Job[] };
      // Only jobs still queued: one a worker has taken is running and is never superseded.
      const superseded = job.kind === 'build'
        ? await updateJobs(c, { repo: job.repo, kind: 'build', branch: job.branch }, ['queued'], { state: 'superseded', finished: job.queued, reason: `superseded by ${job.id}` })
        : [];
      const cancel = superseded.map((r) => r.bossId).filter((id): id is string => id !== null);
      if (cancel.length) await boss.cancel(queueName(job.repo), cancel, { db: bossDb(c) });
      const bossId = await boss.send(queueName(job.repo), { job: job.id }, { db: bossDb(c) });
      if (!bossId) throw new Error(`pg-boss took no job for ${job.repo}: is its queue missing?`);
      return { job: await insertJob(c, job, bossId), duplicate: false, superseded: superseded.map((r) => r.job) };
    });
    // Read-your-writes: GET /jobs/ID right after the 202 finds the job.
    for (const gone of result.superseded) {
      this.mirror.apply(gone);
      this.options.log.info('job superseded', { job: gone.id, by: result.job.id, repo: gone.repo });
    }
    if (!result.duplicate) this.mirror.apply(result.job);
    return { job: result.job, duplicate: result.duplicate };
  }

  /** Jobs of workers that are gone are the reaper's (resume); nothing to settle at start. */
  async recover(): Promise<void> {}

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
