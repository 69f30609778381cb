// The one job id of the compiling server: hook-server's journal and a `build`/`release` run by
// hand both name their jobs with newJobId, so an id in logs.txt, in the journal and in
// `GET /jobs/ID` is the same string in the same format.
import { randomBytes } from 'node:crypto';
import { UsageError } from '../core/errors.ts';

export type JobKind = 'build' | 'release';

/** What newJobId makes: `20261121-133000-a1b2c3` (UTC time, then a 24-bit counter from a random start). */
export const JOB_ID_PATTERN = /^\d{8}-\d{6}-[0-9a-f]{6}$/;

// Reading accepts more than newJobId makes, so an upgrade loses nothing: logs.txt files hold ids
// of the older hand-run format (`20261121T133000Z-3fa9c1`) and ids given with `--job-id`
// (letters, digits, `_`, `-`). The set stays path-safe: no `/`, no `.`, no spaces.
/** The stored-id rule without anchors, for parsers that embed it in a longer line. */
export const STORED_JOB_ID_SOURCE = '[A-Za-z0-9_-]{1,64}';

/** Any id a job may carry on disk (the generated format, older ones, `--job-id` ones). */
export const STORED_JOB_ID_PATTERN = new RegExp(`^${STORED_JOB_ID_SOURCE}$`);

// The 6 hex digits count on from a random start (node:crypto) instead of being drawn anew for
// each id: 24 random bits per id collide within one second once in a while under a burst of
// deliveries (500 ids: about 1 in 130), and a colliding id would overwrite another job's record.
// Counting makes the ids of one process distinct; another process starts elsewhere at random.
let sequence = randomBytes(3).readUIntBE(0, 3);

/** A sortable, unique job id: `20261121-133000-a1b2c3`. */
export function newJobId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  sequence = (sequence + 1) % 0x1000000;
  return `${stamp}-${sequence.toString(16).padStart(6, '0')}`;
}

export function isStoredJobId(id: unknown): id is string {
  return typeof id === 'string' && STORED_JOB_ID_PATTERN.test(id);
}

/** A job id from the command line (`--job-id`, `logs --job`); any stored form is accepted. */
export function validateJobId(id: unknown): string {
  if (!isStoredJobId(id)) {
    throw new UsageError(
      `Invalid job id ${JSON.stringify(String(id).slice(0, 70))}: use 1-64 letters, digits, "_" or "-" ` +
        `(ids look like 20261121-133000-a1b2c3).`,
    );
  }
  return id;
}
