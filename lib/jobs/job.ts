// A job of the compiling server: its record (the same fields in the local journal and in
// PostgreSQL), its states, and who and what triggered it. See docs/hook-server.md "Jobs".
import type { JobKind } from './job-id.ts';

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'superseded', 'interrupted'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINISHED_STATES: readonly JobState[] = ['succeeded', 'failed', 'superseded', 'interrupted'];

export interface Job {
  id: string;
  /** Order of arrival; queued jobs run in this order. */
  seq: number;
  repo: string;
  kind: JobKind;
  sha: string | null;
  ref: string | null;
  branch: string | null;
  tag: string | null;
  cloneUrl: string | null;
  deliveryId: string | null;
  forge: string | null;
  state: JobState;
  exit: number | null;
  queued: string;
  started: string | null;
  finished: string | null;
  /** Why it ended the way it did (timeout, superseded by, interrupted, ...). */
  reason: string | null;
  attempts: number;
  interruptions: number;
  /** Process group of the running attempt, to clean up after a crash. */
  pgid: number | null;
  /** Always build, never answer "up to date" (a forced push, a replay, a redelivery; lib/pipeline/up-to-date.ts). */
  force?: true;
  /** The build worker that runs (or ran) its last attempt, with a PostgreSQL `queue:` (docs/workers.md); absent in the local journal. */
  worker?: string;
  // Who and what triggered it (CommitMeta, read from the forge's payload by lib/server/forges/);
  // absent in records written before they were kept, and when the payload had none.
  message?: string;
  author?: string;
  pusher?: string;
  commitUrl?: string;
}

export interface CommitMeta {
  /** The head commit's message (or the release's name), first MESSAGE_MAX characters. */
  message?: string;
  /** The commit author's name (or the release's author). */
  author?: string;
  /** Who pushed, or published the release. */
  pusher?: string;
  /** The commit (or release) page on the forge: http(s) only, no credentials. */
  commitUrl?: string;
}

// A build that had nothing to build ends `succeeded` with this reason (no state of its own: the
// HTTP contract's states stay as they are); statuses and notifications say "up to date".
const UP_TO_DATE = 'up-to-date: ';

/** The reason of a job that found its tree already built: `up-to-date: WHAT`. */
export function upToDateReason(what: string): string {
  return `${UP_TO_DATE}${what}`;
}

/** Did this job end without building because its tree was built already? */
export function endedUpToDate(job: { state: string; reason: string | null }): boolean {
  return job.state === 'succeeded' && job.reason?.startsWith(UP_TO_DATE) === true;
}
