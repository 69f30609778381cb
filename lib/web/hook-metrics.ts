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

/** What hook-server was asked and did: deliveries, the jobs they became, the journal's fsyncs. */
function jobInstruments(registry: Registry, counts: HookMetricsSources['counts']) {
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
  return { deliveries, oldSecret, jobs, byWorker, duration, fsync };
}

/** What hook-server told others (notifications, commit statuses) and heard from its fleet. */
function outboundInstruments(registry: Registry, fleetHosts: NonNullable<HookMetricsSources['fleetHosts']>) {
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
  return { notifications, statuses, fleetReports, fleetRefused };
}

/**
 * The metrics, registered in the order /metrics shows them. Its methods are arrow properties:
 * hook-server hands them on alone (`onSync: metrics.observeFsync`).
 */
export class HookServerMetrics implements HookMetrics {
  private readonly registry: Registry = createRegistry();
  private readonly job: ReturnType<typeof jobInstruments>;
  private readonly outbound: ReturnType<typeof outboundInstruments>;

  constructor({ counts, fleetHosts = () => [] }: HookMetricsSources) {
    this.job = jobInstruments(this.registry, counts);
    this.outbound = outboundInstruments(this.registry, fleetHosts);
  }

  readonly render = (): string => this.registry.render();

  readonly countDelivery = (forge: string, status: number): void => {
    this.job.deliveries.inc({ forge, answer: String(status) });
  };

  readonly countOldSecret = (repo: string): void => {
    this.job.oldSecret.inc({ repo });
  };

  readonly countJobEnd = (job: EndedJob): void => {
    this.job.jobs.inc({ repo: job.repo, state: job.state });
    if (job.worker) this.job.byWorker.inc({ worker: job.worker, state: job.state });
    if (job.started && job.finished) {
      const seconds = (Date.parse(job.finished) - Date.parse(job.started)) / 1000;
      if (seconds >= 0) this.job.duration.observe(seconds, { repo: job.repo });
    }
  };

  readonly observeFsync = (seconds: number): void => {
    this.job.fsync.observe(seconds);
  };

  readonly countNotification = (channel: string, outcome: 'delivered' | 'failed'): void => {
    this.outbound.notifications.inc({ channel, outcome });
  };

  readonly countCommitStatus = (forge: string, outcome: 'delivered' | 'failed'): void => {
    this.outbound.statuses.inc({ forge, outcome });
  };

  readonly countFleetReport = (app: string, result: string): void => {
    this.outbound.fleetReports.inc({ app, result });
  };

  readonly countFleetRefusal = (reason: string): void => {
    this.outbound.fleetRefused.inc({ reason });
  };
}

export function createHookMetrics(sources: HookMetricsSources): HookMetrics {
  return new HookServerMetrics(sources);
}
