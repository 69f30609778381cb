// The local job queue: jobs kept in the journal on this machine (the zero-setup default). Every
// state change is a journal method; a change that cannot be written changes nothing; on start,
// running jobs are settled from their status file.
// The whole story: docs/internals.md.
import type { Logger } from '../../core/log.ts';
import { recoverJobs } from './recovery.ts';
import type { Journal } from './journal.ts';
import type { Job } from '../job.ts';
import {
  newJobRecord,
  type EnqueueResult,
  type JobQueue,
  type JobRunner,
  type KillGroup,
  type NewJob,
  type RunOutcome,
} from '../job-queue.ts';
import { messageOf } from '../../core/errors.ts';

export interface QueueOptions {
  journal: Journal;
  concurrency: number;
  run: JobRunner;
  log: Logger;
  now?: () => Date;
  /** A job interrupted this many times is left `interrupted` instead of queued again. */
  maxInterruptions?: number;
  /** Where attempt status files live (`DIR/ID/status-N`), read on recovery. */
  jobsDir: string;
  /**
   * How long a job that could not start for lack of disk space waits before it is tried again
   * (any other event, such as a new delivery or a job ending, tries sooner). Journal writes that
   * must happen (a job's end) are retried from this delay, doubling up to 10 s.
   */
  retryMs?: number;
  /** Told of each job that ended (succeeded, failed, superseded; on recovery also interrupted) once its record is on disk; must not throw or wait. */
  onEnd?: (job: Job) => void;
  /** Told of each attempt that went running, once its record is on disk (before the process starts); must not throw or wait. */
  onStart?: (job: Job) => void;
}

const MAX_RETRY_MS = 10_000;

/** A write failed because the disk (or the user's quota) is full: it can succeed later. */
export function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export class LocalJobQueue implements JobQueue {
  private readonly journal: Journal;
  private readonly log: Logger;
  private readonly retryMs: number;
  /** Job id → its run, from the moment it is picked. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly busyRepos = new Set<string>();
  /** New jobs whose record is not on disk yet: not to be started, superseded or acknowledged. */
  private readonly unwritten = new Map<string, { job: Job; written: Promise<unknown> }>();
  /** Queued jobs a pending write is about to supersede. */
  private readonly superseding = new Set<string>();
  /** Ids of queued and running jobs, so that a request does not walk the whole (finished) history. */
  private readonly active = new Set<string>();
  /** Delivery ids of the jobs in the journal and taken since: a redelivery of a finished one is forced. */
  private readonly deliveries = new Set<string>();
  private accepting = true;
  private paused = true;
  private retryTimer: NodeJS.Timeout | undefined;
  private seq: number;
  private readonly options: QueueOptions;

  constructor(options: QueueOptions) {
    this.options = options;
    this.journal = options.journal;
    this.log = options.log;
    this.retryMs = options.retryMs ?? 2_000;
    this.seq = options.journal.lastSeq;
    this.refreshActive();
  }

  private now(): string {
    return (this.options.now ?? (() => new Date()))().toISOString();
  }

  private activeJobs(): Job[] {
    return [...this.active].map((id) => this.journal.jobs.get(id)).filter((j): j is Job => j !== undefined);
  }

  private refreshActive(): void {
    this.active.clear();
    for (const job of this.journal.jobs.values()) {
      if (job.state === 'queued' || job.state === 'running') this.active.add(job.id);
      if (job.deliveryId) this.deliveries.add(job.deliveryId);
    }
  }

  async enqueue(input: NewJob): Promise<EnqueueResult> {
    if (!this.accepting) throw new Error('the queue is shutting down');
    if (input.deliveryId) {
      const first = [...this.unwritten.values()].find((u) => u.job.deliveryId === input.deliveryId);
      if (first) {
        // "Already queued" is an acknowledgement too: give it only once the first copy is on
        // disk. Had that write failed (its own caller answers that), the delivery is taken afresh.
        await first.written.catch(() => undefined);
        return this.enqueue(input);
      }
      const existing = this.activeJobs().find((j) => j.deliveryId === input.deliveryId);
      if (existing) return { job: existing, duplicate: true };
      // A redelivery of a finished delivery runs again: that is how a person retries.
      if (this.deliveries.has(input.deliveryId)) input = { ...input, force: true };
    }
    const job = newJobRecord(input, ++this.seq, this.now());
    const supersedes = this.supersededBy(job);
    await this.write(job, supersedes);
    this.active.add(job.id);
    if (job.deliveryId) this.deliveries.add(job.deliveryId);
    for (const id of supersedes) {
      this.active.delete(id);
      this.log.info('job superseded', { job: id, by: job.id, repo: job.repo });
      this.tellEnd(id);
    }
    this.schedule();
    return { job: this.journal.jobs.get(job.id)!, duplicate: false };
  }

  /** Queued builds of the same branch that `job` replaces; a job already picked to run (its "running" record may be in flight) never is. */
  private supersededBy(job: Job): string[] {
    if (job.kind !== 'build') return [];
    return this.activeJobs()
      .filter(
        (o) =>
          o.state === 'queued' &&
          o.kind === 'build' &&
          o.repo === job.repo &&
          o.branch === job.branch &&
          !this.running.has(o.id) &&
          !this.superseding.has(o.id),
      )
      .map((o) => o.id);
  }

  /** The new record and the supersedes in one journal write, the jobs held back meanwhile. */
  private async write(job: Job, supersedes: string[]): Promise<void> {
    for (const id of supersedes) this.superseding.add(id);
    const written = this.journal.add(job, supersedes);
    this.unwritten.set(job.id, { job, written });
    try {
      await written;
    } finally {
      this.unwritten.delete(job.id);
      for (const id of supersedes) this.superseding.delete(id);
    }
  }

  private schedule(): void {
    if (this.paused) return;
    const queued = this.activeJobs()
      .filter((j) => j.state === 'queued' && !this.running.has(j.id) && !this.superseding.has(j.id))
      .sort((a, b) => a.seq - b.seq);
    for (const job of queued) {
      if (this.running.size >= this.options.concurrency) break;
      if (this.busyRepos.has(job.repo)) continue;
      this.start(job.id, job.repo);
    }
  }

  /** Try the queue again after a while: it could not go on for lack of space. */
  private retryLater(): void {
    if (this.retryTimer || this.paused) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule();
    }, this.retryMs);
    this.retryTimer.unref?.();
  }

  private start(id: string, repo: string): void {
    this.busyRepos.add(repo);
    let next: 'schedule' | 'later' = 'schedule';
    const done = (async () => {
      try {
        next = await this.runAttempt(id);
      } catch (error) {
        this.log.error('job bookkeeping failed', { job: id, error: messageOf(error) });
      } finally {
        this.running.delete(id);
        this.busyRepos.delete(repo);
        if (next === 'later') this.retryLater();
        else this.schedule();
      }
    })();
    this.running.set(id, done);
  }

  /** One attempt: its "running" record, the process, its end. Says when to look at the queue again. */
  private async runAttempt(id: string): Promise<'schedule' | 'later'> {
    let job: Job;
    try {
      // On disk before the process exists: a crash from here on is seen on restart. Could it not
      // be written, nothing changed: the job is still queued, and starts once there is space.
      job = await this.journal.markRunning(id, this.now());
    } catch (error) {
      this.log.warn(
        `job could not start: its "running" record could not be written; it stays queued and is tried again in ${this.retryMs / 1000} s`,
        { job: id, error: messageOf(error) },
      );
      return 'later';
    }
    this.log.info('job started', { job: id, repo: job.repo, kind: job.kind, attempt: job.attempts });
    this.tell(this.options.onStart, job, 'a job-start listener failed');
    const outcome = await this.runProcess(job);
    if (outcome === 'later') return 'later';
    if (this.journal.jobs.get(id)?.state !== 'running') return 'schedule'; // settled elsewhere (shutdown)
    await this.finish(job, outcome);
    return 'schedule';
  }

  /** The attempt's process and its outcome; 'later' when it could not start for lack of space (requeued). */
  private async runProcess(job: Job): Promise<RunOutcome | 'later'> {
    const id = job.id;
    try {
      return await this.options.run(job, {
        onSpawn: (pgid) => {
          this.journal.recordGroup(id, pgid).catch((error) => {
            this.log.error(
              "could not journal the job's process group: were hook-server to crash now, the job would not be ended on restart",
              { job: id, pgid, error: messageOf(error) },
            );
          });
        },
      });
    } catch (error) {
      if (!isNoSpace(error)) return { exit: null, reason: `could not start: ${messageOf(error)}` };
      if (
        await this.persist(
          () => this.journal.requeue(id, 'no space on the disk to start it; queued again'),
          'the requeue',
          id,
        )
      ) {
        this.log.warn(
          `job could not start for lack of disk space; it stays queued and is tried again in ${this.retryMs / 1000} s`,
          { job: id, error: messageOf(error) },
        );
      }
      return 'later';
    }
  }

  private async finish(job: Job, outcome: RunOutcome): Promise<void> {
    const end = {
      state: outcome.exit === 0 ? ('succeeded' as const) : ('failed' as const),
      exit: outcome.exit,
      reason: outcome.reason ?? null,
    };
    if (await this.persist(() => this.journal.finish(job.id, { ...end, at: this.now() }), 'its end', job.id)) {
      this.active.delete(job.id);
      this.log.info(`job ${end.state}`, {
        job: job.id,
        repo: job.repo,
        exit: end.exit,
        reason: end.reason ?? undefined,
      });
      this.tellEnd(job.id);
    }
  }

  private tellEnd(id: string): void {
    const job = this.journal.jobs.get(id);
    if (job) this.tell(this.options.onEnd, job, 'a job-end listener failed');
  }

  private tell(listener: ((job: Job) => void) | undefined, job: Job, failed: string): void {
    if (!listener) return;
    try {
      listener(job);
    } catch (error) {
      this.log.error(failed, { job: job.id, error: messageOf(error) });
    }
  }

  /**
   * A record that must reach the journal (a job's end) is retried until it does, its repo kept
   * busy meanwhile; when shutting down it is left to the next start, which settles a job still
   * marked running from its status file.
   */
  private async persist(write: () => Promise<unknown>, what: string, id: string): Promise<boolean> {
    for (let wait = this.retryMs; ; wait = Math.min(2 * wait, MAX_RETRY_MS)) {
      try {
        await write();
        return true;
      } catch (error) {
        if (!this.accepting) {
          this.log.error(`could not journal ${what}; the next start settles the job`, {
            job: id,
            error: messageOf(error),
          });
          return false;
        }
        this.log.warn(`could not journal ${what}; trying again in ${wait / 1000} s`, {
          job: id,
          error: messageOf(error),
        });
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  async recover(killGroup: KillGroup): Promise<void> {
    const wasRunning = [...this.journal.jobs.values()].filter((j) => j.state === 'running').map((j) => j.id);
    await recoverJobs({
      journal: this.journal,
      jobsDir: this.options.jobsDir,
      log: this.log,
      killGroup,
      maxInterruptions: this.options.maxInterruptions ?? 5,
    });
    this.refreshActive();
    // A job that ended while the server was down (or is given up on) ends now for the listeners:
    // its commit status would stay pending otherwise. One queued again ends later.
    for (const id of wasRunning) if (!this.active.has(id)) this.tellEnd(id);
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  get(id: string): Job | undefined {
    return this.journal.jobs.get(id);
  }

  list({ limit = 100, repo, state }: { limit?: number; repo?: string; state?: string } = {}): Job[] {
    return [...this.journal.jobs.values()]
      .filter((j) => (!repo || j.repo === repo) && (!state || j.state === state))
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit);
  }

  counts(): { queued: number; running: number } {
    let queued = 0;
    for (const job of this.activeJobs()) if (job.state === 'queued') queued++;
    return { queued, running: this.running.size };
  }

  async stop({ graceMs, killGroup }: { graceMs: number; killGroup: KillGroup }): Promise<void> {
    this.accepting = false;
    this.paused = true;
    clearTimeout(this.retryTimer);
    const all = Promise.all(this.running.values());
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), late]);
    clearTimeout(timer);
    if (outcome === 'done') return;
    for (const id of this.running.keys()) await this.interrupt(id, killGroup);
    await all;
  }

  /** A job still running at shutdown: journaled interrupted and queued again, its group ended. */
  private async interrupt(id: string, killGroup: KillGroup): Promise<void> {
    const job = this.journal.jobs.get(id);
    if (job?.state !== 'running') return;
    try {
      await this.journal.interrupt(id, { reason: 'hook-server stopped while it ran', requeue: true, at: this.now() });
      this.log.warn('job interrupted by shutdown; it runs again on the next start', { job: id, repo: job.repo });
    } catch (error) {
      this.log.error('could not journal the interruption; the next start finds the job running and runs it again', {
        job: id,
        error: messageOf(error),
      });
    }
    await killGroup(job);
  }
}

export function createJobQueue(options: QueueOptions): JobQueue {
  return new LocalJobQueue(options);
}
