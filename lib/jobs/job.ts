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
