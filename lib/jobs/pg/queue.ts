// The JobQueue on PostgreSQL (`queue:`, docs/workers.md), hook-server's side: a delivery's job, the
// pushes it supersedes and its pg-boss job commit in one transaction before the 202 (503 when the
// database is away); reads come from the mirror (pg/mirror.ts).
// The whole story: docs/internals.md.
import type PgBoss from 'pg-boss';
import type { Logger } from '../../core/log.ts';
import type { Job } from '../job.ts';
import {
  newJobRecord,
  type EnqueueResult,
  type JobQueue,
  type JobRunner,
  type KillGroup,
  type NewJob,
  type RawDelivery,
} from '../job-queue.ts';
import { connectQueueDatabase, type QueueConnection } from './connect.ts';
import { inTransaction, startError, type QueueDatabase } from '../../db/connect.ts';
import { JobMirror, supersededUnstarted } from './mirror.ts';
import { commitBatches, type BatchOutcome, type Pending } from './enqueue.ts';
import { Reaper } from './reaper.ts';
import { forgetOutput, OutputReceiver } from './output.ts';
import { importJournal } from './import.ts';
import { PgWorker } from './build-worker.ts';
import { Leadership, stillLeads } from './leader.ts';
import { Batcher, type Outcome } from '../../core/batch.ts';
import { Coalescer } from '../../core/coalesce.ts';
import { forgetOldDeliveries } from './records.ts';
import { type Queryable } from '../../db/connect.ts';
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
  /** What it returns settles once the end's messages are sent or given up: the end is marked told then (pg/mirror.ts). */
  onEnd?: (job: Job) => void | Promise<void>;
  /** The local journal's jobs, copied into the database once (pg/import.ts): `source` names the journal. */
  history?: { source: string; jobs: Iterable<Job> };
  /** DATA/jobs: the output of jobs that run on workers is written here as it comes (pg/output.ts). */
  jobsDir?: string;
  now?: () => Date;
  reaperMs?: number;
  /** This hook-server's name among those of one database (the leader's, /healthz). */
  node: string;
}

export class PgJobQueue implements JobQueue {
  private readonly options: PgQueueOptions;
  private readonly conn: QueueConnection;
  private readonly mirror: JobMirror;
  private readonly reaper: Reaper;
  private readonly worker: PgWorker | undefined;
  private readonly output: OutputReceiver | undefined;
  private readonly leadership: Leadership;
  private outputTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private accepting = true;
  /** Whether the term this node leads under is still the database's: one query for the checks that come meanwhile. */
  private readonly leaderCheck = new Coalescer(async () => {
    const term = this.leadership.term;
    return term !== undefined && stillLeads(this.conn.pool, term);
  });
  /** Jobs to commit: those that wait while a transaction commits go in the next one together. */
  private readonly commits = new Batcher<Pending, EnqueueResult>((pending) => this.commitWaiting(pending));

  private constructor(
    options: PgQueueOptions,
    conn: QueueConnection,
    mirror: JobMirror,
    output: OutputReceiver | undefined,
    leadership: Leadership,
  ) {
    this.options = options;
    this.conn = conn;
    this.mirror = mirror;
    this.output = output;
    this.leadership = leadership;
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
    // The leader tells starts and ends (statuses, notifications); a node that starts leading
    // tells first what no leader told.
    const leadership: Leadership = new Leadership({
      newClient: conn.newClient,
      log,
      node: options.node,
      onChange: (term) => {
        if (term !== undefined)
          mirror
            .tellUntold()
            .catch((error) => log.warn(`could not read the job ends no leader told: ${messageOf(error)}`));
      },
      beforeRelease: () => mirror.marked(),
    });
    // Every node writes a finished job's output; the leader deletes its chunks a moment later.
    const output = jobsDir
      ? new OutputReceiver({
          ...conn,
          jobsDir,
          log,
          deletes: () => leadership.term !== undefined,
          deleteAfterMs: 3_000,
        })
      : undefined;
    // A job no worker ever took (superseded or cancelled while queued) has no output to settle:
    // skipping it spared most of the queries a burst of pushes cost (bench:ha, CPU per ack).
    const onSeenEnd = (job: Job) =>
      job.started === null && job.attempts === 0
        ? undefined
        : output
            ?.ended(job.id)
            .catch((error) => log.warn(`could not write the output of job ${job.id}: ${messageOf(error)}`));
    const mirror = new JobMirror({
      db,
      pool: conn.pool,
      newClient: conn.newClient,
      log,
      onStart: options.onStart,
      onEnd: options.onEnd,
      onSeenEnd,
      leading: () => leadership.term,
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
    return new PgJobQueue(options, conn, mirror, output, leadership);
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
   * Durable before it resolves: the job commits with the others that wait meanwhile, of its repo
   * and of the others (group commit, pg/enqueue.ts); with the database away it throws, and
   * nothing is kept.
   */
  enqueue(input: NewJob, raw?: RawDelivery): Promise<EnqueueResult> {
    if (!this.accepting) return Promise.reject(new Error('the queue is shutting down'));
    return this.commits.add({ job: newJobRecord(input, 0, this.now()), raw });
  }

  /**
   * The jobs that waited together, of every repo, in one transaction, one outcome each. When a
   * statement fails in a transaction of several repos, each repo's jobs are tried again in a
   * transaction of their own (it rolled back whole), so one repo's failure is not the others';
   * a database that is away fails them all at once.
   */
  private async commitWaiting(pending: Pending[]): Promise<Array<Outcome<EnqueueResult>>> {
    const byRepo = new Map<string, number[]>();
    pending.forEach(({ job }, i) => byRepo.set(job.repo, [...(byRepo.get(job.repo) ?? []), i]));
    const groups = [...byRepo.values()];
    const outcomes = new Array<Outcome<EnqueueResult>>(pending.length);
    const commit = async (some: number[][]): Promise<unknown> => {
      try {
        const done = await this.commitTogether(some.map((group) => group.map((i) => pending[i])));
        done.forEach((results, g) => results.forEach((value, k) => (outcomes[some[g][k]] = { value })));
        return undefined;
      } catch (error) {
        return error ?? new Error('the transaction rolled back');
      }
    };
    const failed = await commit(groups);
    if (failed !== undefined && groups.length > 1 && statementFailed(failed))
      for (const group of groups) {
        const alone = await commit([group]);
        if (alone !== undefined) for (const i of group) outcomes[i] = { error: alone };
      }
    else if (failed !== undefined) outcomes.fill({ error: failed });
    return outcomes;
  }

  /** Repos' batches in one transaction: each job's result, per batch. */
  private async commitTogether(batches: Pending[][]): Promise<EnqueueResult[][]> {
    const outcomes = await inTransaction(this.conn.pool, async (c) => {
      const done = await commitBatches(c, this.conn.boss, batches);
      // Before the commit, so before its notifications: this node has these rows already.
      for (const outcome of done) this.mirror.wrote(outcome.xid);
      return done;
    });
    for (const outcome of outcomes) this.told(outcome);
    return outcomes.map((o) => o.results);
  }

  /** Read-your-writes: GET /jobs/ID right after the 202 finds the job. */
  private told({ results, superseded }: BatchOutcome): void {
    for (const gone of superseded) {
      this.mirror.apply(gone);
      this.options.log.info('job superseded', { job: gone.id, repo: gone.repo, reason: gone.reason ?? undefined });
      // Its end is told here, by the node whose batch superseded it, and is marked told in that
      // batch: a build that never started has no status or notification due, only its count, and
      // no other node reads it at once (pg/mirror.ts).
      if (supersededUnstarted(gone)) this.tellSuperseded(gone);
    }
    for (const { job, duplicate } of results) if (!duplicate) this.mirror.apply(job);
  }

  private tellSuperseded(job: Job): void {
    try {
      void Promise.resolve(this.options.onEnd?.(job)).catch(() => undefined);
    } catch (error) {
      this.options.log.error('a job listener failed', { job: job.id, error: messageOf(error) });
    }
  }

  /**
   * Jobs that ended while no hook-server led are told by the leader (commit statuses,
   * notifications) when it starts leading (resume); jobs of workers that are gone are the reaper's.
   */
  async recover(): Promise<void> {}

  resume(): void {
    this.leadership.start();
    this.keepDeliveriesBounded();
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

  settle(): Promise<void> {
    return this.mirror.settle();
  }

  /** Every job the mirror holds (the pages' and notifications' history). */
  all(): Iterable<Job> {
    return this.mirror.jobs.values();
  }

  /** Hourly, by the leader: deliveries kept past their days are deleted (pg/records.ts). */
  private keepDeliveriesBounded(): void {
    this.retentionTimer = setInterval(() => {
      if (this.leadership.term === undefined) return;
      forgetOutput(this.conn.pool).catch(() => undefined);
      forgetOldDeliveries(this.conn.pool)
        .then((n) => n && this.options.log.info(`forgot ${n} deliveries kept past their days`))
        .catch((error) => this.options.log.warn(`could not forget old deliveries: ${messageOf(error)}`));
    }, 3_600_000);
    this.retentionTimer.unref?.();
  }

  /** The queue database's pool, for what the hook-servers of one database share besides jobs. */
  get database(): Queryable {
    return this.conn.pool;
  }

  /** pg-boss on the queue database, for the preview builds sent to workers (lib/previews/remote-build.ts). */
  get boss(): PgBoss {
    return this.conn.boss;
  }

  /** Whether this node leads the hook-servers of this database now. */
  leads(): boolean {
    return this.leadership.term !== undefined;
  }

  /**
   * Whether this node still leads, asked of the database (a node paused past the loss of its lead
   * has not noticed yet): right before a notification or commit status is sent.
   */
  stillLeads(): Promise<boolean> {
    return this.leadership.term === undefined ? Promise.resolve(false) : this.leaderCheck.call();
  }

  /** Whether this node leads, and whether the database answers (within 2 s): /healthz. */
  async health(): Promise<{ leader: boolean; db: string }> {
    const leader = this.leads();
    try {
      await withTimeout(this.conn.pool.query('SELECT 1'), 2_000);
      return { leader, db: 'ok' };
    } catch (error) {
      return { leader, db: `unreachable: ${messageOf(error)}` };
    }
  }

  /** Hand the lead over now (SIGTERM): another node tells ends from its next try on. */
  handOver(): Promise<void> {
    return this.leadership.stop();
  }

  async stop({ graceMs, killGroup }: { graceMs: number; killGroup: KillGroup }): Promise<void> {
    this.accepting = false;
    await this.leadership.stop();
    await this.worker?.stop({ graceMs, killGroup });
    await this.reaper.stop();
    clearInterval(this.outputTimer);
    clearInterval(this.retentionTimer);
    await this.mirror.close();
    await this.output?.close();
    await this.conn.close();
  }
}

/**
 * Whether PostgreSQL refused a statement (a SQLSTATE outside connection exceptions, operator
 * intervention and insufficient resources) rather than the connection or the server failing.
 */
function statementFailed(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|53|57)/.test(code);
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
