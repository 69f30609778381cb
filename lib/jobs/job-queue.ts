// The job queue: global concurrency, never two jobs of one repo at once, queued pushes to a
// branch superseded by a newer push, a delivery deduped while its job is queued or running.
// Every state change is a journal method (the journal owns the records); a change that cannot
// be written (a full disk) changes nothing, and the queue tries again later. On start, jobs that
// were running when the process died are settled from their status file or marked interrupted
// and queued once more.
// Running an attempt as a child process is lib/jobs/job-process.ts, recovery job-recovery.ts.
import type { Logger } from '../core/log.ts';
import { recoverJobs } from './job-recovery.ts';
import { newJobId, type JobKind } from './job-id.ts';
import type { Job, Journal } from './journal.ts';
import type { CommitMeta } from './commit-meta.ts';

export interface NewJob extends CommitMeta {
  repo: string;
  kind: JobKind;
  sha?: string;
  ref?: string;
  branch?: string;
  tag?: string;
  cloneUrl?: string;
  deliveryId?: string;
  forge?: string;
}

export interface RunOutcome {
  exit: number | null;
  reason?: string;
}

export interface JobHooks {
  /** The attempt's process group, recorded so a crash can be cleaned up after. */
  onSpawn(pgid: number): void;
}

/** Runs one attempt of a job (createProcessRunner in lib/jobs/job-process.ts, or a stand-in in tests) and settles with its outcome. */
export type JobRunner = (job: Job, hooks: JobHooks) => Promise<RunOutcome>;

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

export interface EnqueueResult {
  job: Job;
  duplicate: boolean;
}

const MAX_RETRY_MS = 10_000;

/** A write failed because the disk (or the user's quota) is full: it can succeed later. */
export function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function createJobQueue(options: QueueOptions) {
  const { journal, run, log, jobsDir } = options;
  const now = () => (options.now ?? (() => new Date()))().toISOString();
  const retryMs = options.retryMs ?? 2_000;
  const concurrency = options.concurrency;
  const running = new Map<string, Promise<void>>(); // job id → its run (from the moment it is picked)
  const busyRepos = new Set<string>();
  // New jobs whose record is not on disk yet: not to be started, superseded or acknowledged.
  const unwritten = new Map<string, { job: Job; written: Promise<unknown> }>();
  const superseding = new Set<string>(); // queued jobs a pending write is about to supersede
  let accepting = true;
  let paused = true;
  let retryTimer: NodeJS.Timeout | undefined;
  let seq = journal.lastSeq;
  // Ids of queued and running jobs, so that a request does not walk the whole (finished) history.
  const active = new Set<string>();
  const activeJobs = () => [...active].map((id) => journal.jobs.get(id)).filter((j): j is Job => j !== undefined);
  function refreshActive() {
    active.clear();
    for (const job of journal.jobs.values()) if (job.state === 'queued' || job.state === 'running') active.add(job.id);
  }
  refreshActive();

  async function enqueue(input: NewJob): Promise<EnqueueResult> {
    if (!accepting) throw new Error('the queue is shutting down');
    if (input.deliveryId) {
      const first = [...unwritten.values()].find((u) => u.job.deliveryId === input.deliveryId);
      if (first) {
        // "Already queued" is an acknowledgement too: give it only once the first copy is on
        // disk. Had that write failed (its own caller answers that), the delivery is taken afresh.
        await first.written.catch(() => undefined);
        return enqueue(input);
      }
      const existing = activeJobs().find((j) => j.deliveryId === input.deliveryId);
      if (existing) return { job: existing, duplicate: true };
    }
    const at = now();
    const job: Job = {
      id: newJobId(new Date(at)), seq: ++seq, repo: input.repo, kind: input.kind,
      sha: input.sha ?? null, ref: input.ref ?? null, branch: input.branch ?? null, tag: input.tag ?? null,
      cloneUrl: input.cloneUrl ?? null, deliveryId: input.deliveryId ?? null, forge: input.forge ?? null,
      state: 'queued', exit: null, queued: at, started: null, finished: null, reason: null,
      attempts: 0, interruptions: 0, pgid: null,
      // Only what the payload had: old and new records look alike when it had nothing.
      ...(input.message ? { message: input.message } : {}), ...(input.author ? { author: input.author } : {}),
      ...(input.pusher ? { pusher: input.pusher } : {}), ...(input.commitUrl ? { commitUrl: input.commitUrl } : {}),
    };
    // A job already picked to run (its "running" record may be in flight) is never superseded.
    const supersedes = job.kind !== 'build' ? [] : activeJobs()
      .filter((o) => o.state === 'queued' && o.kind === 'build' && o.repo === job.repo && o.branch === job.branch && !running.has(o.id) && !superseding.has(o.id))
      .map((o) => o.id);
    for (const id of supersedes) superseding.add(id);
    const written = journal.add(job, supersedes);
    unwritten.set(job.id, { job, written });
    try {
      await written;
    } finally {
      unwritten.delete(job.id);
      for (const id of supersedes) superseding.delete(id);
    }
    active.add(job.id);
    for (const id of supersedes) {
      active.delete(id);
      log.info('job superseded', { job: id, by: job.id, repo: job.repo });
      tellEnd(id);
    }
    schedule();
    return { job: journal.jobs.get(job.id)!, duplicate: false };
  }

  function schedule(): void {
    if (paused) return;
    const queued = activeJobs()
      .filter((j) => j.state === 'queued' && !running.has(j.id) && !superseding.has(j.id))
      .sort((a, b) => a.seq - b.seq);
    for (const job of queued) {
      if (running.size >= concurrency) break;
      if (busyRepos.has(job.repo)) continue;
      start(job.id, job.repo);
    }
  }

  /** Try the queue again after a while: it could not go on for lack of space. */
  function retryLater(): void {
    if (retryTimer || paused) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      schedule();
    }, retryMs);
    retryTimer.unref?.();
  }

  function start(id: string, repo: string): void {
    busyRepos.add(repo);
    let next: 'schedule' | 'later' = 'schedule';
    const done = (async () => {
      try {
        next = await runAttempt(id);
      } catch (error) {
        log.error('job bookkeeping failed', { job: id, error: (error as Error).message });
      } finally {
        running.delete(id);
        busyRepos.delete(repo);
        if (next === 'later') retryLater();
        else schedule();
      }
    })();
    running.set(id, done);
  }

  /** One attempt: its "running" record, the process, its end. Says when to look at the queue again. */
  async function runAttempt(id: string): Promise<'schedule' | 'later'> {
    let job: Job;
    try {
      // On disk before the process exists: a crash from here on is seen on restart. Could it not
      // be written, nothing changed: the job is still queued, and starts once there is space.
      job = await journal.markRunning(id, now());
    } catch (error) {
      log.warn(`job could not start: its "running" record could not be written; it stays queued and is tried again in ${retryMs / 1000} s`, { job: id, error: (error as Error).message });
      return 'later';
    }
    log.info('job started', { job: id, repo: job.repo, kind: job.kind, attempt: job.attempts });
    tell(options.onStart, job, 'a job-start listener failed');
    let outcome: RunOutcome;
    try {
      outcome = await run(job, {
        onSpawn(pgid) {
          journal.recordGroup(id, pgid).catch((error) => {
            log.error('could not journal the job\'s process group: were hook-server to crash now, the job would not be ended on restart', { job: id, pgid, error: (error as Error).message });
          });
        },
      });
    } catch (error) {
      if (isNoSpace(error)) {
        if (await persist(() => journal.requeue(id, 'no space on the disk to start it; queued again'), 'the requeue', id)) {
          log.warn(`job could not start for lack of disk space; it stays queued and is tried again in ${retryMs / 1000} s`, { job: id, error: (error as Error).message });
        }
        return 'later';
      }
      outcome = { exit: null, reason: `could not start: ${(error as Error).message}` };
    }
    if (journal.jobs.get(id)?.state !== 'running') return 'schedule'; // settled elsewhere (shutdown)
    const end = { state: outcome.exit === 0 ? 'succeeded' as const : 'failed' as const, exit: outcome.exit, reason: outcome.reason ?? null };
    if (await persist(() => journal.finish(id, { ...end, at: now() }), 'its end', id)) {
      active.delete(id);
      log.info(`job ${end.state}`, { job: id, repo: job.repo, exit: end.exit, reason: end.reason ?? undefined });
      tellEnd(id);
    }
    return 'schedule';
  }

  function tellEnd(id: string): void {
    const job = journal.jobs.get(id);
    if (job) tell(options.onEnd, job, 'a job-end listener failed');
  }

  function tell(listener: ((job: Job) => void) | undefined, job: Job, failed: string): void {
    if (!listener) return;
    try {
      listener(job);
    } catch (error) {
      log.error(failed, { job: job.id, error: (error as Error).message });
    }
  }

  /**
   * A record that must reach the journal (a job's end) is retried until it does, its repo kept
   * busy meanwhile; when shutting down it is left to the next start, which settles a job still
   * marked running from its status file.
   */
  async function persist(write: () => Promise<unknown>, what: string, id: string): Promise<boolean> {
    for (let wait = retryMs; ; wait = Math.min(2 * wait, MAX_RETRY_MS)) {
      try {
        await write();
        return true;
      } catch (error) {
        if (!accepting) {
          log.error(`could not journal ${what}; the next start settles the job`, { job: id, error: (error as Error).message });
          return false;
        }
        log.warn(`could not journal ${what}; trying again in ${wait / 1000} s`, { job: id, error: (error as Error).message });
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  return {
    enqueue,
    /**
     * Settle jobs left `running` by a previous process (see recoverJobs), then know the queue
     * anew.
     */
    async recover(killGroup: (job: Job) => Promise<void>): Promise<void> {
      const wasRunning = [...journal.jobs.values()].filter((j) => j.state === 'running').map((j) => j.id);
      await recoverJobs({ journal, jobsDir, log, killGroup, maxInterruptions: options.maxInterruptions ?? 5 });
      refreshActive();
      // A job that ended while the server was down (or is given up on) ends now for the listeners:
      // its commit status would stay pending otherwise. One queued again ends later.
      for (const id of wasRunning) if (!active.has(id)) tellEnd(id);
    },
    /** Begin running queued jobs. */
    resume() {
      paused = false;
      schedule();
    },
    get(id: string): Job | undefined {
      return journal.jobs.get(id);
    },
    /** Newest first. */
    list({ limit = 100, repo, state }: { limit?: number; repo?: string; state?: string } = {}): Job[] {
      return [...journal.jobs.values()]
        .filter((j) => (!repo || j.repo === repo) && (!state || j.state === state))
        .sort((a, b) => b.seq - a.seq)
        .slice(0, limit);
    },
    counts() {
      let queued = 0;
      for (const job of activeJobs()) if (job.state === 'queued') queued++;
      return { queued, running: running.size };
    },
    /**
     * Stop taking and starting jobs; wait for running ones up to `graceMs`. A job still running
     * then is marked interrupted, queued again for the next start, and its process group ended.
     */
    async stop({ graceMs, killGroup }: { graceMs: number; killGroup: (job: Job) => Promise<void> }): Promise<void> {
      accepting = false;
      paused = true;
      clearTimeout(retryTimer);
      const all = Promise.all(running.values());
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), graceMs); });
      const outcome = await Promise.race([all.then(() => 'done' as const), late]);
      clearTimeout(timer);
      if (outcome === 'late') {
        for (const id of running.keys()) {
          const job = journal.jobs.get(id);
          if (job?.state !== 'running') continue;
          try {
            await journal.interrupt(id, { reason: 'hook-server stopped while it ran', requeue: true, at: now() });
            log.warn('job interrupted by shutdown; it runs again on the next start', { job: id, repo: job.repo });
          } catch (error) {
            log.error('could not journal the interruption; the next start finds the job running and runs it again', { job: id, error: (error as Error).message });
          }
          await killGroup(job);
        }
        await all;
      }
    },
  };
}

export type JobQueue = ReturnType<typeof createJobQueue>;
