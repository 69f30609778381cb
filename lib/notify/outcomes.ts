// What became of the messages sent about a job (commit statuses, notifications), kept in memory
// for the job page: the newest jobs only, a bounded list each. The log and /metrics keep the rest.

export type DeliveryOutcome = 'sending' | 'delivered' | 'failed';

export interface DeliveryRecord {
  /** What was sent, for people: "commit status shipkit/build: success to github", "slack notification (notify[0])". */
  what: string;
  outcome: DeliveryOutcome;
  attempts: number;
  /** Why it failed or was retried (an HTTP status, a timeout): never a URL or a secret. */
  detail?: string;
  /** ISO time of the last change. */
  at: string;
}

export interface DeliveryOutcomes {
  /** Start or update the record `key` of a job (key: a stable name such as "status:pending"). */
  record(jobId: string, key: string, record: Omit<DeliveryRecord, 'at'>): void;
  /** A job's records, oldest first; empty for a job nothing was sent about. */
  of(jobId: string): DeliveryRecord[];
}

export function createDeliveryOutcomes({
  jobs = 2_000,
  perJob = 20,
}: { jobs?: number; perJob?: number } = {}): DeliveryOutcomes {
  const byJob = new Map<string, Map<string, DeliveryRecord>>();
  return {
    record(jobId, key, record) {
      let list = byJob.get(jobId);
      if (!list) {
        list = new Map();
        byJob.set(jobId, list);
        // Maps keep insertion order: the first key is the oldest job.
        if (byJob.size > jobs) byJob.delete(byJob.keys().next().value!);
      }
      if (!list.has(key) && list.size >= perJob) return;
      list.set(key, { ...record, at: new Date().toISOString() });
    },
    of(jobId) {
      return [...(byJob.get(jobId)?.values() ?? [])];
    },
  };
}
