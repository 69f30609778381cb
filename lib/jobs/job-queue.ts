// The job queue's seam (docs/workers.md): what hook-server, the status page, /metrics
// and notifications need of a queue, whatever keeps the jobs. The local journal implements it
// today (LocalJobQueue in lib/jobs/local/queue.ts): global concurrency, never two jobs of one repo
// at once, a queued push superseded by a newer one to its branch, a delivery deduped while its
// job is queued or running. A queue acknowledges a job (gives back its id) only once it is durable.
import type { Job } from './job.ts';
import { newJobId, type JobKind } from './job-id.ts';
import type { CommitMeta } from './job.ts';

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
  /** Build even when nothing changed since the last build (Job.force). */
  force?: boolean;
}

/** A delivery as it came, kept with its job by the PostgreSQL queue so an operator can replay it. */
export interface RawDelivery {
  /** The forge's name for the request's event (X-GitHub-Event, X-Gitea-Event, X-Gitlab-Event). */
  event: string;
  format: 'json' | 'form';
  body: Buffer;
}

export interface RunOutcome {
  exit: number | null;
  reason?: string;
}

export interface JobHooks {
  /** The attempt's process group, recorded so a crash can be cleaned up after. */
  onSpawn(pgid: number): void;
}

/** Runs one attempt of a job (createProcessRunner in lib/jobs/process/runner.ts, or a stand-in in tests) and settles with its outcome. */
export type JobRunner = (job: Job, hooks: JobHooks) => Promise<RunOutcome>;

export interface EnqueueResult {
  job: Job;
  duplicate: boolean;
}

/** Stops a job's process group (hook-server: endProcessGroup of its recorded pgid). */
export type KillGroup = (job: Job) => Promise<void>;

export interface JobQueue {
  /**
   * Durable before it resolves: the job is on disk (or in the database) and will run. `raw` is
   * the delivery's body, which the PostgreSQL queue keeps under (forge, delivery id).
   */
  enqueue(input: NewJob, raw?: RawDelivery): Promise<EnqueueResult>;
  /** Settle jobs a previous process left running, then know the queue anew. */
  recover(killGroup: KillGroup): Promise<void>;
  /** Begin running queued jobs. */
  resume(): void;
  get(id: string): Job | undefined;
  /** Newest first. */
  list(options?: { limit?: number; repo?: string; state?: string }): Job[];
  counts(): { queued: number; running: number };
  /** Brings get/list/counts up to date with changes read lazily (several hook-servers): before a page answers. */
  settle?(): Promise<void>;
  /** With several hook-servers on one database: whether this one leads, and whether the database answers (/healthz). */
  health?(): Promise<{ leader: boolean; db: string }>;
  /** Stop leading now, so another hook-server takes over while this one drains (SIGTERM). */
  handOver?(): Promise<void>;
  /** Every job it holds, in no order (the pages' history); absent: the journal's (LocalJobQueue). */
  all?(): Iterable<Job>;
  /**
   * Stop taking and starting jobs; wait for running ones up to `graceMs`. A job still running
   * then is marked interrupted, queued again for the next start, and its process group ended.
   */
  stop(options: { graceMs: number; killGroup: KillGroup }): Promise<void>;
}

/**
 * A new job's record, queued, with only what the payload had (old and new records look alike
 * when it had nothing); both queues write it. `seq` orders jobs (the PostgreSQL queue gets its own
 * from the database and passes 0 here).
 */
export function newJobRecord(input: NewJob, seq: number, at: string): Job {
  return {
    id: newJobId(new Date(at)),
    seq,
    repo: input.repo,
    kind: input.kind,
    sha: input.sha ?? null,
    ref: input.ref ?? null,
    branch: input.branch ?? null,
    tag: input.tag ?? null,
    cloneUrl: input.cloneUrl ?? null,
    deliveryId: input.deliveryId ?? null,
    forge: input.forge ?? null,
    state: 'queued',
    exit: null,
    queued: at,
    started: null,
    finished: null,
    reason: null,
    attempts: 0,
    interruptions: 0,
    pgid: null,
    ...(input.force ? { force: true as const } : {}),
    ...(input.message ? { message: input.message } : {}),
    ...(input.author ? { author: input.author } : {}),
    ...(input.pusher ? { pusher: input.pusher } : {}),
    ...(input.commitUrl ? { commitUrl: input.commitUrl } : {}),
  };
}
