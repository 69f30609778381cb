// Notifications after a job ends, in the background (lib/notify/background.ts): never awaited by
// the queue, so a slow or hostile receiver cannot delay or fail a job. Each target gets bounded
// attempts with a doubling backoff; the outcome is logged (naming the config key, never the URL),
// counted, and kept for the job page.
import type { Logger } from '../core/log.ts';
import { signRequest } from '../http/signing.ts';
import {
  createBackgroundTasks,
  DEFAULT_RETRY,
  sendIfLeading,
  sendWithRetries,
  type LeaderCheck,
  type RetryPolicy,
} from './background.ts';
import type { ResolvedTarget } from '../config/notify.ts';
import { postJson, type PostResult } from './deliver.ts';
import { emailMessage, sendEmail } from './email.ts';
import { eventsOf, headlineOf, slackBody, webhookBody, type NotifyJob } from './message.ts';
import type { DeliveryOutcomes } from './outcomes.ts';

export interface NotifierOptions {
  /** A repo's own list, else the top level's (key `''`). */
  targets: Map<string, ResolvedTarget[]>;
  log: Logger;
  publicUrl?: string;
  /** Told each delivery's final outcome (GET /metrics). */
  onOutcome?: (channel: string, outcome: 'delivered' | 'failed') => void;
  /** Where the job page finds what became of each notification. */
  outcomes?: DeliveryOutcomes;
  timeoutMs?: number;
  attempts?: number;
  /** First wait between attempts; it doubles. */
  backoffMs?: number;
  /** With several hook-servers on one database: asked before each attempt (lib/notify/background.ts sendIfLeading). */
  stillLeads?: LeaderCheck;
}

/** The header that names a notification, the same on each attempt and from each node: `JOBID-EVENT`. */
export const DELIVERY_HEADER = 'X-Shipkit-Delivery';

/** Notifications sent in the background when a job ends. */
export interface Notifier {
  /** Start the notifications a job's end calls for; returns at once, with what settles once each was delivered or given up. */
  jobEnded(job: NotifyJob, history: Iterable<NotifyJob>): Promise<void>;
  /** Let deliveries in flight finish for up to graceMs, then cancel the rest. */
  stop(graceMs?: number): Promise<void>;
}

/** The event a target is told of (a job's headline), one per target and job end. */
type NotifyEvent = NonNullable<ReturnType<typeof headlineOf>>;

/** What becomes of one notification: the job page's key and line, and the log's fields. */
interface Delivery {
  key: string;
  what: string;
  fields: Record<string, string>;
}

export class BackgroundNotifier implements Notifier {
  private readonly options: NotifierOptions;
  private readonly timeoutMs: number;
  private readonly policy: RetryPolicy;
  private readonly tasks = createBackgroundTasks();

  constructor(options: NotifierOptions) {
    this.options = options;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.policy = {
      ...DEFAULT_RETRY,
      attempts: options.attempts ?? DEFAULT_RETRY.attempts,
      backoffMs: options.backoffMs ?? DEFAULT_RETRY.backoffMs,
    };
  }

  /** Start the notifications a job's end calls for; returns at once. */
  jobEnded(job: NotifyJob, history: Iterable<NotifyJob>): Promise<void> {
    if (this.tasks.stopped) return Promise.resolve();
    const events = eventsOf(job, history);
    const sends = this.targetsOf(job.repo).map((target) => {
      const event = headlineOf(events, target.on);
      if (!event) return undefined;
      return this.tasks.run(
        () => this.deliver(target, job, event),
        (error) =>
          this.options.log.error('notification crashed', { job: job.id, target: target.where, error: error.message }),
      );
    });
    return Promise.all(sends).then(() => undefined);
  }

  /** Let deliveries in flight finish for up to graceMs, then cancel the rest. */
  stop(graceMs = 2_000): Promise<void> {
    return this.tasks.stop(graceMs);
  }

  private targetsOf(repo: string): ResolvedTarget[] {
    const { targets } = this.options;
    return targets.get(repo) ?? targets.get('') ?? [];
  }

  /** Every attempt at one notification, then its outcome logged, kept and counted. */
  private async deliver(target: ResolvedTarget, job: NotifyJob, event: NotifyEvent): Promise<void> {
    const { log, outcomes } = this.options;
    const send = this.sender(target, job, event);
    const delivery: Delivery = {
      key: `notify:${target.where}`,
      what: `${target.channel} notification (${target.where}): ${event}`,
      fields: { job: job.id, repo: job.repo, event, channel: target.channel, target: target.where },
    };
    const { key, what, fields } = delivery;
    const { result, attempts } = await sendWithRetries(
      () => sendIfLeading(this.options.stillLeads, send),
      this.policy,
      {
        stop: this.tasks.signal,
        gate: this.tasks.gate,
        onAttempt: (attempt) => outcomes?.record(job.id, key, { what, outcome: 'sending', attempts: attempt }),
        onRetry: (failed, attempt) => {
          log.warn('notification not delivered; trying again', { ...fields, attempt, error: failed.detail });
          outcomes?.record(job.id, key, { what, outcome: 'sending', attempts: attempt, detail: failed.detail });
        },
      },
    );
    this.settle(target, job, delivery, result, attempts);
  }

  /** The last attempt's outcome: left to the leader, delivered, or failed. */
  private settle(
    target: ResolvedTarget,
    job: NotifyJob,
    delivery: Delivery,
    result: PostResult,
    attempts: number,
  ): void {
    const { log, outcomes } = this.options;
    const { key, what, fields } = delivery;
    if (result.notLeading) {
      log.info('notification left to the node that leads now', fields);
      outcomes?.record(job.id, key, {
        what,
        outcome: 'failed',
        attempts,
        detail: `${result.detail}; the leader sends it`,
      });
      return;
    }
    if (result.ok) log.info('notification delivered', { ...fields, attempt: attempts });
    else log.warn('notification failed', { ...fields, error: result.detail });
    outcomes?.record(job.id, key, {
      what,
      outcome: result.ok ? 'delivered' : 'failed',
      attempts,
      detail: result.ok ? undefined : result.detail,
    });
    this.options.onOutcome?.(target.channel, result.ok ? 'delivered' : 'failed');
  }

  /** One attempt at delivering `event` to `target`. */
  private sender(target: ResolvedTarget, job: NotifyJob, event: NotifyEvent): () => Promise<PostResult> {
    const { publicUrl } = this.options;
    const timeoutMs = this.timeoutMs;
    const signal = this.tasks.signal;
    if (target.email) {
      const message = emailMessage({ to: target.email.to, from: target.email.from, event, job, publicUrl });
      return () => sendEmail(target.email!.sendmail, message, { timeoutMs, signal });
    }
    const url = target.url!;
    const body = JSON.stringify(
      target.channel === 'slack' ? slackBody(event, job, publicUrl) : webhookBody(event, job, publicUrl),
    );
    // Signed afresh for each attempt: a new timestamp and nonce, as a receiver's replay check wants;
    // the delivery id stays, so a receiver can drop a message it already has (sent again by a retry
    // or by the next leader: at least once).
    const id: Record<string, string> = target.channel === 'webhook' ? { [DELIVERY_HEADER]: `${job.id}-${event}` } : {};
    return () =>
      postJson(
        url,
        body,
        { ...id, ...(target.secret ? signRequest(target.secret, 'POST', url.pathname + url.search) : {}) },
        { timeoutMs, signal },
      );
  }
}

export function createNotifier(options: NotifierOptions): Notifier {
  return new BackgroundNotifier(options);
}
