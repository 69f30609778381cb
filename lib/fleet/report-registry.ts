// The fleet registry's rules (issue 23, DESIGN §8), kept apart from HTTP and storage so the
// hook-server edge, its store and tests share one definition: what a host report must hold, and
// which report a host's entry keeps (its latest: higher seq wins; same seq, the later arrival).
// Also what a rollout state posted by `release rollout` (POST /fleet/rollouts) must hold.
import { ValidationError } from '../core/errors.ts';
import { nameProblem } from '../core/names.ts';
import { HOST_ID_PATTERN, rolloutBucket } from '../release/rollout-bucket.ts';

export const REPORT_RESULTS = ['running', 'updated', 'rolled_back', 'failed', 'skipped'] as const;
export type ReportResult = (typeof REPORT_RESULTS)[number];
export const MAX_REPORT_BYTES = 4096;
export const MAX_REASON_CHARS = 500;

export interface HostEntry {
  host: string;
  version: string;
  previous: string;
  seq: number;
  /** Computed by rolloutBucket(host, version), never taken from the report. */
  bucket: number;
  /** What the host said its bucket was (a lying host is stored with both). */
  claimed_bucket: number | null;
  result: ReportResult;
  reason: string;
  seconds: number | null;
  /** When hook-server accepted it (ms since the epoch). */
  at: number;
}

const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;

function bad(message: string): never {
  throw new ValidationError(`report ${message}`);
}

function optionalNumber(value: unknown, key: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) bad(`${key} must be a number >= 0`);
  return value;
}

/** A parsed report body checked against the contract; unknown keys are ignored. Throws ValidationError. */
export function checkReport(body: unknown, at: number): { app: string } & HostEntry {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('must be a JSON object');
  const r = body as Record<string, unknown>;
  const problem = nameProblem(r.app);
  if (problem) bad(`app is not a valid name: it ${problem}`);
  if (typeof r.host !== 'string' || !HOST_ID_PATTERN.test(r.host)) bad('host must be 32 lowercase hex characters');
  if (typeof r.version !== 'string' || !VERSION_PATTERN.test(r.version)) bad('version is missing or malformed');
  const previous = r.previous ?? '';
  if (typeof previous !== 'string' || (previous !== '' && !VERSION_PATTERN.test(previous)))
    bad('previous is malformed');
  if (!Number.isSafeInteger(r.seq ?? 0) || ((r.seq as number | undefined) ?? 0) < 0)
    bad('seq must be a whole number >= 0');
  if (!REPORT_RESULTS.includes(r.result as ReportResult)) bad(`result must be one of ${REPORT_RESULTS.join(', ')}`);
  const reason = r.reason ?? '';
  if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS)
    bad(`reason must be a string of at most ${MAX_REASON_CHARS} characters`);
  const claimed = optionalNumber(r.bucket, 'bucket');
  return {
    app: r.app as string,
    host: r.host,
    version: r.version,
    previous,
    seq: (r.seq as number | undefined) ?? 0,
    bucket: rolloutBucket(r.host, r.version),
    claimed_bucket: claimed,
    result: r.result as ReportResult,
    reason,
    seconds: optionalNumber(r.seconds, 'seconds'),
    at,
  };
}

/** Whether `next` replaces `current` as the host's latest report. */
export function supersedes(next: HostEntry, current: HostEntry | undefined): boolean {
  if (!current) return true;
  return next.seq !== current.seq ? next.seq > current.seq : next.at >= current.at;
}

export const ROLLOUT_STATES = ['running', 'waiting', 'halted', 'done', 'rolled_back'] as const;
const MAX_STEPS = 20;

/** The rollout state `release rollout` posts to hook-server (kept per app, the latest one). */
export interface RolloutRecord {
  version: string;
  seq: number;
  /** 1-based index of the step in `steps`. */
  step: number;
  percent: number;
  steps: number[];
  state: (typeof ROLLOUT_STATES)[number];
  reason: string;
  /** As the publisher sent it (ISO time), shown as given. */
  at: string;
  /** When hook-server accepted it (ms since the epoch). */
  received: number;
}

const isPercent = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= 100;

/** A parsed POST /fleet/rollouts body checked against the contract; unknown keys are ignored. Throws ValidationError. */
export function checkRollout(body: unknown, received: number): { app: string } & RolloutRecord {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ValidationError('rollout must be a JSON object');
  const r = body as Record<string, unknown>;
  const wrong = (message: string): never => {
    throw new ValidationError(`rollout ${message}`);
  };
  const problem = nameProblem(r.app);
  if (problem) wrong(`app is not a valid name: it ${problem}`);
  if (typeof r.version !== 'string' || !VERSION_PATTERN.test(r.version)) wrong('version is missing or malformed');
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 0) wrong('seq must be a whole number >= 0');
  if (!Array.isArray(r.steps) || r.steps.length === 0 || r.steps.length > MAX_STEPS || !r.steps.every(isPercent))
    wrong(`steps must be 1 to ${MAX_STEPS} percents, each above 0 and at most 100`);
  const steps = r.steps as number[];
  if (!Number.isSafeInteger(r.step) || (r.step as number) < 1 || (r.step as number) > steps.length)
    wrong('step must be the number of a step in steps');
  if (!isPercent(r.percent)) wrong('percent must be above 0 and at most 100');
  if (!ROLLOUT_STATES.includes(r.state as RolloutRecord['state']))
    wrong(`state must be one of ${ROLLOUT_STATES.join(', ')}`);
  const reason = r.reason ?? '';
  if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS)
    wrong(`reason must be a string of at most ${MAX_REASON_CHARS} characters`);
  const at = r.at ?? '';
  if (typeof at !== 'string' || at.length > 40) wrong('at must be a time of at most 40 characters');
  return {
    app: r.app as string,
    version: r.version as string,
    seq: r.seq as number,
    step: r.step as number,
    percent: r.percent as number,
    steps,
    state: r.state as RolloutRecord['state'],
    reason: reason as string,
    at: at as string,
    received,
  };
}
