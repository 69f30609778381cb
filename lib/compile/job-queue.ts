// The job queue: global concurrency, never two jobs of one repo at once, queued pushes to a
// branch superseded by a newer push, a delivery deduped while its job is queued or running.
// Every state change goes through the journal; on start, jobs that were running when the
// process died are settled from their status file or marked interrupted and queued once more.
// Running an attempt as a child process is lib/compile/job-process.ts.
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/log.ts';
import { newJobId, type Job, type JobKind, type Journal } from './journal.ts';

export interface NewJob {
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

/** Runs one attempt of a job (createProcessRunner in lib/compile/job-process.ts, or a stand-in in tests) and settles with its outcome. */
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
}

export interface EnqueueResult {
  job: Job;
  duplicate: boolean;
}

export function createJobQueue(options: QueueOptions) {
  const { journal, run, log, jobsDir } = options;
  const now = options.now ?? (() => new Date());
  const maxInterruptions = options.maxInterruptions ?? 5;
  const concurrency = options.concurrency;
  const running = new Map<string, Promise<void>>(); // job id → its run
  const busyRepos = new Set<string>();
  const notDurable = new Set<string>(); // accepted, fsync pending: not to be started yet
  const writes = new Map<string, Promise<void>>(); // the pending journal write of each of those
  let accepting = true;
  let paused = true;
  let seq = journal.lastSeq;
  // Queued and running jobs, so that a request does not walk the whole (finished) history.
  const active = new Map<string, Job>();
  function refreshActive() {
    active.clear();
    for (const job of journal.jobs.values()) if (job.state === 'queued' || job.state === 'running') active.set(job.id, job);
  }
  refreshActive();

  function activeByDelivery(deliveryId: string): Job | undefined {
    for (const job of active.values()) if (job.deliveryId === deliveryId) return job;
    return undefined;
  }

  async function enqueue(input: NewJob): Promise<EnqueueResult> {
    if (!accepting) throw new Error('the queue is shutting down');
    if (input.deliveryId) {
      const existing = activeByDelivery(input.deliveryId);
      if (existing) {
        // "Already queued" is an acknowledgement too: give it only once the first copy is on
        // disk. Had that write failed, the delivery is taken afresh.
        await writes.get(existing.id)?.catch(() => {});
        return active.has(existing.id) ? { job: existing, duplicate: true } : enqueue(input);
      }
    }
    const at = now().toISOString();
    const job: Job = {
      id: newJobId(now()), seq: ++seq, repo: input.repo, kind: input.kind,
      sha: input.sha ?? null, ref: input.ref ?? null, branch: input.branch ?? null, tag: input.tag ?? null,
      cloneUrl: input.cloneUrl ?? null, deliveryId: input.deliveryId ?? null, forge: input.forge ?? null,
      state: 'queued', exit: null, queued: at, started: null, finished: null, reason: null,
      attempts: 0, interruptions: 0, pgid: null,
    };
    const superseded: Job[] = [];
    if (job.kind === 'build') {
      for (const other of active.values()) {
        if (other.state === 'queued' && other.kind === 'build' && other.repo === job.repo && other.branch === job.branch && !notDurable.has(other.id)) {
          other.state = 'superseded';
          other.finished = at;
          other.reason = `superseded by ${job.id}`;
          superseded.push(other);
        }
      }
    }
    notDurable.add(job.id);
    active.set(job.id, job);
    for (const other of superseded) active.delete(other.id);
    const written = journal.write([...superseded, job]);
    writes.set(job.id, written);
    try {
      await written;
    } catch (error) {
      journal.jobs.delete(job.id);
      active.delete(job.id);
      for (const other of superseded) {
        Object.assign(other, { state: 'queued', finished: null, reason: null });
        active.set(other.id, other);
      }
      throw error;
    } finally {
      notDurable.delete(job.id);
      writes.delete(job.id);
    }
    for (const other of superseded) log.info('job superseded', { job: other.id, by: job.id, repo: job.repo });
    schedule();
    return { job, duplicate: false };
  }

  function schedule(): void {
    if (paused) return;
    const queued = [...active.values()]
      .filter((j) => j.state === 'queued' && !notDurable.has(j.id))
      .sort((a, b) => a.seq - b.seq);
    for (const job of queued) {
      if (running.size >= concurrency) break;
      if (busyRepos.has(job.repo)) continue;
      start(job);
    }
  }

  function start(job: Job): void {
    busyRepos.add(job.repo);
    job.state = 'running';
    job.started = now().toISOString();
    job.attempts += 1;
    job.pgid = null;
    const done = (async () => {
      try {
        // On disk before the process exists: a crash from here on is seen on restart.
        await journal.write([job]);
        log.info('job started', { job: job.id, repo: job.repo, kind: job.kind, attempt: job.attempts });
        let outcome: RunOutcome;
        try {
          outcome = await run(job, {
            onSpawn(pgid) {
              job.pgid = pgid;
              journal.write([job]).catch(() => {});
            },
          });
        } catch (error) {
          outcome = { exit: null, reason: `could not start: ${(error as Error).message}` };
        }
        if (job.state !== 'running') return; // settled elsewhere (shutdown)
        job.state = outcome.exit === 0 ? 'succeeded' : 'failed';
        job.exit = outcome.exit;
        job.reason = outcome.reason ?? null;
        job.finished = now().toISOString();
        job.pgid = null;
        active.delete(job.id);
        await journal.write([job]);
        log.info(`job ${job.state}`, { job: job.id, repo: job.repo, exit: job.exit, reason: job.reason ?? undefined });
      } catch (error) {
        log.error('job bookkeeping failed', { job: job.id, error: (error as Error).message });
      } finally {
        running.delete(job.id);
        busyRepos.delete(job.repo);
        schedule();
      }
    })();
    running.set(job.id, done);
  }

  /**
   * Settle jobs left `running` by a previous process: a status file says how it ended; without
   * one the attempt was cut short, so its process group is ended and the job queued once more.
   */
  async function recover(killGroup: (job: Job) => Promise<void>): Promise<void> {
    const changed: Job[] = [];
    for (const job of journal.jobs.values()) {
      if (job.state !== 'running') continue;
      const statusFile = path.join(jobsDir, job.id, `status-${job.attempts}`);
      const status = await readStatus(statusFile);
      if (status) {
        job.state = status.code === 0 ? 'succeeded' : 'failed';
        job.exit = status.code;
        job.finished = status.time;
        job.reason = 'finished while hook-server was down';
        job.pgid = null;
        changed.push({ ...job });
        log.info(`job ${job.state} while the server was down`, { job: job.id, repo: job.repo, exit: job.exit });
        continue;
      }
      await killGroup(job);
      job.interruptions += 1;
      job.state = 'interrupted';
      job.finished = now().toISOString();
      job.reason = 'hook-server stopped while it ran';
      job.pgid = null;
      changed.push({ ...job });
      if (job.interruptions <= maxInterruptions) {
        job.state = 'queued';
        job.finished = null;
        job.reason = `queued again after interruption ${job.interruptions}`;
        changed.push({ ...job });
        log.warn('job was interrupted; queued once more', { job: job.id, repo: job.repo });
      } else {
        log.warn('job was interrupted too often; left interrupted', { job: job.id, repo: job.repo });
      }
    }
    // Snapshots in order, then the live objects back in the map.
    if (changed.length) {
      const live = changed.map((c) => journal.jobs.get(c.id)!);
      await journal.write(changed);
      for (const job of live) journal.jobs.set(job.id, job);
    }
    refreshActive();
  }

  return {
    enqueue,
    recover,
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
      for (const job of active.values()) if (job.state === 'queued') queued++;
      return { queued, running: running.size };
    },
    /**
     * Stop taking and starting jobs; wait for running ones up to `graceMs`. A job still running
     * then is marked interrupted, queued again for the next start, and its process group ended.
     */
    async stop({ graceMs, killGroup }: { graceMs: number; killGroup: (job: Job) => Promise<void> }): Promise<void> {
      accepting = false;
      paused = true;
      const all = Promise.all(running.values());
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), graceMs); });
      const outcome = await Promise.race([all.then(() => 'done' as const), late]);
      clearTimeout(timer);
      if (outcome === 'late') {
        const jobs = [...running.keys()].map((id) => journal.jobs.get(id)).filter((j): j is Job => Boolean(j));
        for (const job of jobs) {
          const target: Job = { ...job };
          job.interruptions += 1;
          const interrupted: Job = { ...job, state: 'interrupted', finished: now().toISOString(), reason: 'hook-server stopped while it ran', pgid: null };
          Object.assign(job, { state: 'queued', started: null, reason: `queued again after interruption ${job.interruptions}`, pgid: null });
          await journal.write([interrupted, { ...job }]).catch(() => {});
          journal.jobs.set(job.id, job);
          log.warn('job interrupted by shutdown; it runs again on the next start', { job: job.id, repo: job.repo });
          await killGroup(target);
        }
        await all;
      }
    },
  };
}

export type JobQueue = ReturnType<typeof createJobQueue>;

async function readStatus(file: string): Promise<{ code: number; time: string } | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    const code = Number(text.trim());
    if (!Number.isInteger(code)) return undefined;
    return { code, time: info.mtime.toISOString() };
  } catch {
    return undefined;
  }
}

/** Remove what a job left under the jobs folder (its output and status files). */
export async function removeJobFiles(jobsDir: string, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => rm(path.join(jobsDir, id), { recursive: true, force: true })));
}
