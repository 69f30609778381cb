// Sending in the background with bounded retries, for notifications and commit statuses: never
// awaited by the job queue, a bounded number of attempts with backoff (or a 429's Retry-After), and
// sends in flight given a short time at stop.
// The whole story: docs/internals.md.
import { backoffMs } from '../core/retry.ts';
import { setMaxListeners } from 'node:events';
import { createLimiter } from '../core/pool.ts';
import type { PostResult } from './deliver.ts';

export interface RetryPolicy {
  /** Attempts per message, the first included. */
  attempts: number;
  /** First wait between attempts; it doubles. */
  backoffMs: number;
  /** No wait is longer than this, whatever Retry-After asks for. */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, backoffMs: 2_000, maxWaitMs: 60_000 };

/** Requests open at once per kind of message (notifications, commit statuses); the rest wait their turn. */
export const IN_FLIGHT = 16;

export interface RetryHooks {
  /** Aborted when hook-server stops: no more attempts, waits end at once. */
  stop: AbortSignal;
  /** Aborted when this message no longer matters (a job's end status replaces its pending): no more attempts. */
  giveUp?: AbortSignal;
  /** Before each attempt (1-based). */
  onAttempt?: (attempt: number) => void;
  /** After a failed attempt that will be tried again after `waitMs`. */
  onRetry?: (result: PostResult, attempt: number, waitMs: number) => void;
  /** Runs each attempt when a slot is free (createBackgroundTasks' `gate`); waits between attempts hold no slot. */
  gate?: <R>(attempt: () => Promise<R>) => Promise<R>;
}

export interface RetryOutcome {
  result: PostResult;
  attempts: number;
}

/** The wait before attempt `attempt + 1`: the doubling backoff, or Retry-After when longer; capped. */
export function waitBefore(policy: RetryPolicy, attempt: number, retryAfterMs?: number): number {
  return Math.min(policy.maxWaitMs, Math.max(backoffMs(attempt, { baseMs: policy.backoffMs }), retryAfterMs ?? 0));
}

/** Asked right before each attempt with several hook-servers on one database: does this node still lead? */
export type LeaderCheck = () => Promise<boolean>;

/**
 * `send`, once `stillLeads` says this node leads now (a node paused past the loss of its lead sends
 * nothing: the new leader tells what was not marked told). A check that cannot be made is a
 * failure worth retrying.
 */
export async function sendIfLeading(
  stillLeads: LeaderCheck | undefined,
  send: () => Promise<PostResult>,
): Promise<PostResult> {
  if (!stillLeads) return send();
  let leads: boolean;
  try {
    leads = await stillLeads();
  } catch {
    return {
      ok: false,
      retry: true,
      detail: 'could not ask the queue database whether this node still leads',
      read: 0,
    };
  }
  if (!leads)
    return { ok: false, retry: false, notLeading: true, detail: 'not sent: this node no longer leads', read: 0 };
  return send();
}

/** Call `send` until it succeeds, says a retry cannot help, or the attempts run out. */
export async function sendWithRetries(
  send: (attempt: number) => Promise<PostResult>,
  policy: RetryPolicy,
  hooks: RetryHooks,
): Promise<RetryOutcome> {
  const quit = hooks.giveUp ? AbortSignal.any([hooks.stop, hooks.giveUp]) : hooks.stop;
  for (let attempt = 1; ; attempt++) {
    const result = await (hooks.gate ?? ((run) => run()))(() => {
      hooks.onAttempt?.(attempt);
      return send(attempt);
    });
    if (result.ok || !result.retry || attempt >= policy.attempts || quit.aborted) return { result, attempts: attempt };
    const waitMs = waitBefore(policy, attempt, result.retryAfterMs);
    hooks.onRetry?.(result, attempt, waitMs);
    await sleep(waitMs, quit);
    if (quit.aborted) return { result, attempts: attempt };
  }
}

/** Tasks started and not awaited, and a stop that lets them finish for a while, then cancels. */
/** Sends that run in the background, a bounded number of attempts at once, stopped with a grace. */
export interface BackgroundTasks {
  /** Aborted once stop's grace is over. */
  readonly signal: AbortSignal;
  readonly stopped: boolean;
  /** Pass as RetryHooks.gate: at most `inFlight` attempts open at once. */
  gate<R>(attempt: () => Promise<R>): Promise<R>;
  /** Attempts open now, and waiting for a slot. */
  readonly load: { active: number; waiting: number };
  /** Start `task` now; `onCrash` hears of anything it throws. */
  run(task: () => Promise<void>, onCrash: (error: Error) => void): Promise<void>;
  /** Let tasks in flight finish for up to graceMs, then cancel the rest and wait for them to notice. */
  stop(graceMs?: number): Promise<void>;
}

export function createBackgroundTasks({ inFlight = IN_FLIGHT }: { inFlight?: number } = {}): BackgroundTasks {
  const stopping = new AbortController();
  const slots = createLimiter(inFlight);
  // Every send and wait in flight listens for the stop: dozens when an API hangs, not a leak.
  setMaxListeners(0, stopping.signal);
  const pending = new Set<Promise<void>>();
  return {
    /** Aborted once stop's grace is over. */
    signal: stopping.signal,
    get stopped() {
      return stopping.signal.aborted;
    },
    /** Pass as RetryHooks.gate: at most `inFlight` attempts open at once. */
    gate: <R>(attempt: () => Promise<R>): Promise<R> => slots.run(attempt),
    /** Attempts open now, and waiting for a slot. */
    get load() {
      return { active: slots.active, waiting: slots.waiting };
    },
    /** Start `task` now; `onCrash` hears of anything it throws. */
    run(task: () => Promise<void>, onCrash: (error: Error) => void): Promise<void> {
      const running = task().catch((error) => onCrash(error as Error));
      pending.add(running);
      void running.finally(() => pending.delete(running));
      return running;
    },
    /** Let tasks in flight finish for up to graceMs, then cancel the rest and wait for them to notice. */
    async stop(graceMs = 2_000): Promise<void> {
      const all = Promise.all(pending);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        all,
        new Promise((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      stopping.abort();
      await Promise.all(pending);
    },
  };
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
