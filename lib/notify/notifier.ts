// Notifications after a job ends, in the background: never awaited by the queue, so a slow or
// hostile receiver cannot delay or fail a job. Each target gets bounded attempts with a doubling
// backoff; the outcome is logged (naming the config key, never the URL) and counted.
import type { Logger } from '../core/log.ts';
import { signRequest } from '../http/signing.ts';
import type { ResolvedTarget } from './config.ts';
import { postNotification } from './deliver.ts';
import { eventsOf, headlineOf, slackBody, webhookBody, type NotifyJob } from './message.ts';

export interface NotifierOptions {
  /** A repo's own list, else the top level's (key `''`). */
  targets: Map<string, ResolvedTarget[]>;
  log: Logger;
  publicUrl?: string;
  /** Told each delivery's final outcome (GET /metrics). */
  onOutcome?: (channel: string, outcome: 'delivered' | 'failed') => void;
  timeoutMs?: number;
  attempts?: number;
  /** First wait between attempts; it doubles. */
  backoffMs?: number;
}

export function createNotifier(options: NotifierOptions) {
  const { targets, log, publicUrl } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const attempts = options.attempts ?? 4;
  const backoffMs = options.backoffMs ?? 2_000;
  const stopping = new AbortController();
  const pending = new Set<Promise<void>>();

  function targetsOf(repo: string): ResolvedTarget[] {
    return targets.get(repo) ?? targets.get('') ?? [];
  }

  async function deliver(target: ResolvedTarget, job: NotifyJob, event: NonNullable<ReturnType<typeof headlineOf>>): Promise<void> {
    const body = JSON.stringify(target.channel === 'slack' ? slackBody(event, job, publicUrl) : webhookBody(event, job, publicUrl));
    const fields = { job: job.id, repo: job.repo, event, channel: target.channel, target: target.where };
    let detail = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      // Signed afresh for each attempt: a new timestamp and nonce, as a receiver's replay check wants.
      const headers = target.secret ? signRequest(target.secret, 'POST', target.url.pathname + target.url.search) : {};
      const result = await postNotification(target.url, body, headers, { timeoutMs, signal: stopping.signal });
      if (result.ok) {
        log.info('notification delivered', { ...fields, attempt });
        options.onOutcome?.(target.channel, 'delivered');
        return;
      }
      detail = result.detail;
      if (!result.retry || attempt === attempts || stopping.signal.aborted) break;
      log.warn('notification not delivered; trying again', { ...fields, attempt, error: detail });
      await sleep(backoffMs * 2 ** (attempt - 1), stopping.signal);
    }
    log.warn('notification failed', { ...fields, error: detail });
    options.onOutcome?.(target.channel, 'failed');
  }

  return {
    /** Start the notifications a job's end calls for; returns at once. */
    jobEnded(job: NotifyJob, history: Iterable<NotifyJob>): void {
      if (stopping.signal.aborted) return;
      const list = targetsOf(job.repo);
      if (list.length === 0) return;
      const events = eventsOf(job, history);
      for (const target of list) {
        const event = headlineOf(events, target.on);
        if (!event) continue;
        const run = deliver(target, job, event).catch((error) => log.error('notification crashed', { job: job.id, target: target.where, error: (error as Error).message }));
        pending.add(run);
        void run.finally(() => pending.delete(run));
      }
    },
    /** Let deliveries in flight finish for up to graceMs, then cancel the rest. */
    async stop(graceMs = 2_000): Promise<void> {
      const all = Promise.all(pending);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((resolve) => { timer = setTimeout(resolve, graceMs); })]);
      clearTimeout(timer);
      stopping.abort();
      await all;
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
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

export type Notifier = ReturnType<typeof createNotifier>;
