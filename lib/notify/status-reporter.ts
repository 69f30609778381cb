// Commit statuses in the background (docs/hook-server.md, `report:`): pending when a job starts, its end
// when it ends, each with bounded retries (lib/notify/background.ts) and never awaited by the
// queue. The statuses of one job go out in order: the end waits for the pending before it, and
// stops that pending's further retries (a late pending must never overwrite the end). Each
// outcome is logged (never the token), counted and kept for the job page.
import type { Logger } from '../core/log.ts';
import {
  createBackgroundTasks,
  DEFAULT_RETRY,
  sendIfLeading,
  sendWithRetries,
  type BackgroundTasks,
  type LeaderCheck,
  type RetryPolicy,
} from './background.ts';
import {
  endStatus,
  forgeState,
  refusalHint,
  startStatus,
  statusRequest,
  type CommitStatus,
  type StatusJob,
} from './commit-status.ts';
import { postJson, type PostResult } from './deliver.ts';
import { jobLink } from './message.ts';
import type { DeliveryOutcomes } from './outcomes.ts';
import type { ResolvedReport } from '../config/report.ts';

export interface StatusReporterOptions {
  /** Each reporting repo's settings, by full name. */
  reports: Map<string, ResolvedReport>;
  log: Logger;
  /** target_url is the job page under it; without it statuses carry no link. */
  publicUrl?: string;
  outcomes?: DeliveryOutcomes;
  /** Told each status's final outcome (GET /metrics). */
  onOutcome?: (forge: string, outcome: 'delivered' | 'failed') => void;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** The commit of a job that does not carry one (a release names its tag): looked up when its status is due. */
  commitOf?: (job: StatusJob) => Promise<string | undefined>;
  /** With several hook-servers on one database: asked before each attempt (lib/notify/background.ts sendIfLeading). */
  stillLeads?: LeaderCheck;
}

interface JobChain {
  /** The job's statuses so far, one after the other. */
  done: Promise<void>;
  /** Aborted when a later status of the job makes this one's retries pointless. */
  superseded: AbortController;
}

/** What sending one status needs from the reporter that queued it. */
interface StatusSender {
  options: StatusReporterOptions;
  policy: RetryPolicy;
  timeoutMs: number;
  tasks: BackgroundTasks;
}

/** Why a status was not set, as kept for the job page: the refusal's hint, or why retries ended. */
function failureDetail(
  result: PostResult,
  attempts: number,
  repo: string,
  { stopped, superseded }: { stopped: boolean; superseded: boolean },
): string {
  let detail = result.retry
    ? `${result.detail} (${attempts} attempt${attempts === 1 ? '' : 's'})`
    : refusalHint(result.status, repo, result.detail);
  if (result.retry && stopped) detail += '; not tried again: hook-server stopped';
  else if (result.retry && superseded) detail += "; not tried again: the job's end status replaced it";
  return detail;
}

/** Sends one status of `job` with retries, and logs, records and counts how it went. */
async function sendStatus(
  { options, policy, timeoutMs, tasks }: StatusSender,
  report: ResolvedReport,
  job: StatusJob,
  status: CommitStatus,
  phase: 'start' | 'end',
  superseded: AbortSignal,
): Promise<void> {
  const { log, publicUrl, outcomes } = options;
  const sha = job.sha ?? (await options.commitOf?.(job).catch(() => undefined));
  if (!sha) {
    log.info(
      `commit status ${status.state} skipped: the job does not know its commit (a release event names its ` +
        `tag only${phase === 'start' ? ', and the clone does not have it yet' : ''})`,
      { job: job.id, repo: job.repo, kind: job.kind, tag: job.tag ?? undefined },
    );
    return;
  }
  const request = statusRequest(report, job.repo, sha, status, jobLink(publicUrl, job));
  const state = forgeState(report.forge, status.state);
  const key = `status:${status.context}:${phase}`;
  const what = `commit status ${status.context}: ${state} (${report.forge})`;
  const fields = { job: job.id, repo: job.repo, forge: report.forge, context: status.context, state };
  if (tasks.stopped) {
    outcomes?.record(job.id, key, { what, outcome: 'failed', attempts: 0, detail: 'not sent: hook-server stopped' });
    return;
  }
  const { result, attempts } = await sendWithRetries(
    () =>
      sendIfLeading(options.stillLeads, () =>
        postJson(request.url, request.body, request.headers, { timeoutMs, signal: tasks.signal }),
      ),
    policy,
    {
      stop: tasks.signal,
      gate: tasks.gate,
      giveUp: superseded,
      onAttempt: (attempt) => outcomes?.record(job.id, key, { what, outcome: 'sending', attempts: attempt }),
      onRetry: (failed, attempt, waitMs) => {
        log.warn('commit status not set; trying again', {
          ...fields,
          attempt,
          error: failed.detail,
          wait: `${waitMs / 1000} s`,
        });
        outcomes?.record(job.id, key, { what, outcome: 'sending', attempts: attempt, detail: failed.detail });
      },
    },
  );
  if (result.notLeading) {
    log.info('commit status left to the node that leads now', fields);
    outcomes?.record(job.id, key, {
      what,
      outcome: 'failed',
      attempts,
      detail: `${result.detail}; the leader sets it`,
    });
    return;
  }
  if (result.ok) {
    log.info('commit status set', { ...fields, attempt: attempts });
  } else {
    const detail = failureDetail(result, attempts, job.repo, {
      stopped: tasks.stopped,
      superseded: superseded.aborted,
    });
    log.warn('commit status failed', { ...fields, error: detail });
    outcomes?.record(job.id, key, { what, outcome: 'failed', attempts, detail });
    options.onOutcome?.(report.forge, 'failed');
    return;
  }
  outcomes?.record(job.id, key, { what, outcome: 'delivered', attempts });
  options.onOutcome?.(report.forge, 'delivered');
}

/**
 * The commit-status side of hook-server: `jobStarted` and `jobEnded` queue a job's statuses in
 * order and return at once; `stop` lets those in flight finish for a while.
 */
/** Commit statuses sent in the background: pending at a job's start, the final one at its end. */
export interface StatusReporter {
  /** A job went running: pending. Returns at once, with what settles once it is set or given up. */
  jobStarted(job: StatusJob): Promise<void>;
  /** A job ended: its final status, if one is due. Returns at once, with what settles once it is set or given up. */
  jobEnded(job: StatusJob): Promise<void>;
  /** Let statuses in flight finish for up to graceMs, then cancel the rest. */
  stop(graceMs?: number): Promise<void>;
}

export function createStatusReporter(options: StatusReporterOptions): StatusReporter {
  const { reports, log } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const {
    attempts = DEFAULT_RETRY.attempts,
    backoffMs = DEFAULT_RETRY.backoffMs,
    maxWaitMs = DEFAULT_RETRY.maxWaitMs,
  } = options.retry ?? {};
  const policy: RetryPolicy = { attempts, backoffMs, maxWaitMs };
  const tasks = createBackgroundTasks();
  const chains = new Map<string, JobChain>();
  const sender: StatusSender = { options, policy, timeoutMs, tasks };

  /** Queue `status` after the job's earlier ones; an end status stops the retries of those. Settles once it is set or given up. */
  function enqueue(job: StatusJob, status: CommitStatus, phase: 'start' | 'end'): Promise<void> {
    const report = reports.get(job.repo);
    if (!report || tasks.stopped) return Promise.resolve();
    const before = chains.get(job.id);
    if (phase === 'end') before?.superseded.abort();
    const superseded = new AbortController();
    const entry: JobChain = {
      done: (before?.done.catch(() => {}) ?? Promise.resolve()).then(() =>
        sendStatus(sender, report, job, status, phase, superseded.signal),
      ),
      superseded,
    };
    chains.set(job.id, entry);
    const settled = tasks.run(
      () => entry.done,
      (error) => log.error('commit status crashed', { job: job.id, error: error.message }),
    );
    void entry.done
      .catch(() => {})
      .finally(() => {
        if (chains.get(job.id) === entry) chains.delete(job.id);
      });
    return settled;
  }

  return {
    /** A job went running: pending. Returns at once. */
    jobStarted(job: StatusJob): Promise<void> {
      return enqueue(job, startStatus(job), 'start');
    },
    /** A job ended: its final status, if one is due (lib/notify/commit-status.ts endStatus). Returns at once. */
    jobEnded(job: StatusJob): Promise<void> {
      const status = endStatus(job);
      return status ? enqueue(job, status, 'end') : Promise.resolve();
    },
    /** Let statuses in flight finish for up to graceMs, then cancel the rest. */
    stop: (graceMs = 2_000) => tasks.stop(graceMs),
  };
}
