// hook-server's metrics (docs/hook-server.md, `GET /metrics`): what is counted where, in one place.
import { createRegistry, type Registry } from './metrics.ts';

/** Seconds; a build takes from a second to an hour. */
export const JOB_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
/** Seconds; an fsync on an SSD takes well under a millisecond, on a busy disk up to seconds. */
export const FSYNC_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** What a job end needs to be counted (lib/jobs/local/journal.ts's Job has these fields). */
export interface EndedJob {
  repo: string;
  kind: string;
  state: string;
  started: string | null;
  finished: string | null;
  /** The build worker that ran it, with a PostgreSQL queue: (docs/workers.md). */
  worker?: string;
}

export interface HookMetricsSources {
  /** Queued and running jobs now. */
  counts: () => { queued: number; running: number };
  /** Hosts per app, version and result, from the fleet's latest reports (POST /fleet/reports). */
  fleetHosts?: () => Array<{ app: string; version: string; result: string; hosts: number }>;
}

/** What hook-server counts, and /metrics' text. */
export interface HookMetrics {
  render(): string;
  countDelivery(forge: string, status: number): void;
  /** A delivery accepted with an old secret of a change-over (its sender should move to the new one). */
  countOldSecret(repo: string): void;
  countJobEnd(job: EndedJob): void;
  observeFsync(seconds: number): void;
  countNotification(channel: string, outcome: 'delivered' | 'failed'): void;
  countCommitStatus(forge: string, outcome: 'delivered' | 'failed'): void;
  countFleetReport(app: string, result: string): void;
  countFleetRefusal(reason: string): void;
}

export function createHookMetrics({ counts, fleetHosts = () => [] }: HookMetricsSources): HookMetrics {
  const registry: Registry = createRegistry();
  const deliveries = registry.counter(
    'shipkit_deliveries_total',
    'Webhook deliveries answered, by forge and HTTP status.',
    ['forge', 'answer'],
  );
  const oldSecret = registry.counter(
    'shipkit_webhook_old_secret_total',
    'Deliveries accepted with an old webhook secret of a change-over (secret: list), by repo.',
    ['repo'],
  );
  const jobs = registry.counter('shipkit_jobs_total', 'Jobs that reached a final state, by repo and state.', [
    'repo',
    'state',
  ]);
  const byWorker = registry.counter(
    'shipkit_worker_jobs_total',
    'Jobs that reached a final state on a build worker (PostgreSQL queue:), by worker and state.',
    ['worker', 'state'],
  );
  const duration = registry.histogram(
    'shipkit_job_duration_seconds',
    "Time from a job's start to its end, by repo.",
    JOB_DURATION_BUCKETS,
    ['repo'],
  );
  registry.gauge('shipkit_queue_length', 'Jobs queued and not yet running.', () => counts().queued);
  registry.gauge('shipkit_jobs_running', 'Jobs running now.', () => counts().running);
  const fsync = registry.histogram(
    'shipkit_journal_fsync_seconds',
    'Time an fsync of the job journal took.',
    FSYNC_BUCKETS,
  );
  const notifications = registry.counter(
    'shipkit_notifications_total',
    'Notifications by channel and outcome (delivered, or failed after its retries).',
    ['channel', 'outcome'],
  );
  const statuses = registry.counter(
    'shipkit_commit_statuses_total',
    'Commit statuses sent to forges, by forge and outcome (delivered, or failed after its retries).',
    ['forge', 'outcome'],
  );
  const fleetReports = registry.counter(
    'shipkit_fleet_reports_total',
    'Host reports accepted at POST /fleet/reports, by app and result.',
    ['app', 'result'],
  );
  const fleetRefused = registry.counter(
    'shipkit_fleet_reports_refused_total',
    'Requests to POST /fleet/reports, /fleet/rollouts and /fleet/forget refused, by reason (not counted as reports).',
    ['reason'],
  );
  registry.gaugeSeries(
    'shipkit_fleet_hosts',
    'Hosts by app, the version of their latest report, and its result.',
    ['app', 'version', 'result'],
    () => fleetHosts().map(({ hosts, ...labels }) => ({ labels, value: hosts })),
  );

  return {
    render: () => registry.render(),
    countDelivery(forge: string, status: number) {
      deliveries.inc({ forge, answer: String(status) });
    },
    countOldSecret(repo: string) {
      oldSecret.inc({ repo });
    },
    countJobEnd(job: EndedJob) {
      jobs.inc({ repo: job.repo, state: job.state });
      if (job.worker) byWorker.inc({ worker: job.worker, state: job.state });
      if (job.started && job.finished) {
        const seconds = (Date.parse(job.finished) - Date.parse(job.started)) / 1000;
        if (seconds >= 0) duration.observe(seconds, { repo: job.repo });
      }
    },
    observeFsync(seconds: number) {
      fsync.observe(seconds);
    },
    countNotification(channel: string, outcome: 'delivered' | 'failed') {
      notifications.inc({ channel, outcome });
    },
    countCommitStatus(forge: string, outcome: 'delivered' | 'failed') {
      statuses.inc({ forge, outcome });
    },
    countFleetReport(app: string, result: string) {
      fleetReports.inc({ app, result });
    },
    countFleetRefusal(reason: string) {
      fleetRefused.inc({ reason });
    },
  };
}
