// The fleet report, one definition for the host that sends it (launchfit), hook-server that keeps
// it and `release rollout` that counts it: its body, limits and checks, which report a host's
// entry keeps, each host's own credential, the rollout states, and which hosts an operator asks
// hook-server to forget (`shipkit fleet forget`, POST /fleet/forget; docs/fleet.md).
import { ValidationError } from '../../core/errors.ts';
import { nameProblem } from '../../core/names.ts';
import { hmacSha256Hex } from '../../http/signing.ts';
import { HOST_ID_PATTERN, rolloutBucket } from './bucket.ts';
import { MAX_SEQ } from './version-file.ts';

export const REPORT_RESULTS = ['running', 'updated', 'rolled_back', 'failed', 'skipped'] as const;
export type ReportResult = (typeof REPORT_RESULTS)[number];
/** How a host's files for a release came (docs/launchfit.md "Delta updates"); '' when it says nothing. */
export const INSTALL_WAYS = ['reuse', 'patch', 'files', 'full'] as const;
export type InstallWay = (typeof INSTALL_WAYS)[number];
export const MAX_REPORT_BYTES = 4096;
export const MAX_REASON_CHARS = 500;

/** What a host says after an update (and once at start). */
export interface Report {
  app: string;
  host: string;
  version: string;
  previous?: string;
  seq?: number;
  /** The sha256 of the release tarball the host verified and runs ('' when it runs none it verified). */
  sha256?: string;
  result: ReportResult;
  reason?: string;
  seconds?: number;
  /** How the release's files came, and the bytes fetched for them (an update's report). */
  way?: InstallWay;
  bytes?: number;
}

/** The JSON body a host sends: bucket computed here (as rolloutBucket returns it), reason cut to fit 4096 bytes. */
export function reportBody(r: Report): string {
  const body = {
    app: r.app,
    host: r.host,
    version: r.version,
    previous: r.previous ?? '',
    seq: r.seq ?? 0,
    sha256: r.sha256 ?? '',
    bucket: rolloutBucket(r.host, r.version), // full precision: hook-server compares it with its own
    result: r.result,
    reason: (r.reason ?? '').slice(0, MAX_REASON_CHARS),
    seconds: Math.round((r.seconds ?? 0) * 10) / 10,
    way: r.way ?? '',
    bytes: r.bytes ?? 0,
  };
  let text = JSON.stringify(body);
  // Multi-byte reasons could still pass the cap: shorten until the body fits.
  while (Buffer.byteLength(text) > MAX_REPORT_BYTES && body.reason.length > 0) {
    body.reason = body.reason.slice(0, Math.max(0, body.reason.length - 50));
    text = JSON.stringify(body);
  }
  if (Buffer.byteLength(text) > MAX_REPORT_BYTES)
    throw new ValidationError(`A report is over ${MAX_REPORT_BYTES} bytes even without a reason.`);
  return text;
}

/**
 * A host's own report credential: derived from the app's fleet secret and the host id, so
 * hook-server stores none, and a host that holds it can sign for itself and no other host.
 * Handed to the host in the answer to its first report (its enrolment).
 */
export function hostCredential(appSecret: string, host: string): string {
  return hmacSha256Hex(appSecret, `shipkit fleet host ${host}`);
}

export interface HostEntry {
  host: string;
  version: string;
  previous: string;
  seq: number;
  /** The sha256 of the release the host verified ('' unknown; absent in reports of older hosts). */
  sha256?: string;
  /** Computed by rolloutBucket(host, version), never taken from the report. */
  bucket: number;
  /** What the host said its bucket was (a lying host is stored with both). */
  claimed_bucket: number | null;
  result: ReportResult;
  reason: string;
  seconds: number | null;
  /** How the release's files came ('' not said) and the bytes fetched (absent from older hosts). */
  way?: InstallWay | '';
  bytes?: number | null;
  /** When hook-server accepted it (ms since the epoch). */
  at: number;
  /** The latest signature time (seconds) of the reports taken for this host: an older one is a replay. */
  signed_at?: number;
  /** The nonces of the reports taken for this host signed in that second: one of them again is a replay. */
  nonces?: string[];
  /** Signed with the host's own credential: it replaces one signed with the app's secret, whatever the SEQ. */
  enrolled?: boolean;
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

/**
 * A parsed report body checked against the contract; unknown keys are ignored. `maxSeq`, when
 * known, is the highest SEQ the app's publisher has signed: a report above it is forged.
 * Throws ValidationError.
 */
export function checkReport(body: unknown, at: number, maxSeq = Infinity): { app: string } & HostEntry {
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
  if (((r.seq as number | undefined) ?? 0) > MAX_SEQ)
    bad(`seq ${r.seq as number} is above the largest SEQ a VERSION can carry (${MAX_SEQ})`);
  if (((r.seq as number | undefined) ?? 0) > maxSeq)
    bad(`seq ${r.seq as number} is above the highest SEQ published for ${r.app as string} (${maxSeq})`);
  const sha256 = r.sha256 ?? '';
  if (typeof sha256 !== 'string' || !/^([0-9a-f]{64})?$/.test(sha256))
    bad('sha256 must be 64 lowercase hex characters (or empty)');
  if (!REPORT_RESULTS.includes(r.result as ReportResult)) bad(`result must be one of ${REPORT_RESULTS.join(', ')}`);
  const reason = r.reason ?? '';
  if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS)
    bad(`reason must be a string of at most ${MAX_REASON_CHARS} characters`);
  const claimed = optionalNumber(r.bucket, 'bucket');
  const way = r.way ?? '';
  if (way !== '' && !INSTALL_WAYS.includes(way as InstallWay)) bad(`way must be one of ${INSTALL_WAYS.join(', ')}`);
  return {
    app: r.app as string,
    host: r.host,
    version: r.version,
    previous,
    seq: (r.seq as number | undefined) ?? 0,
    sha256,
    bucket: rolloutBucket(r.host, r.version),
    claimed_bucket: claimed,
    result: r.result as ReportResult,
    reason,
    seconds: optionalNumber(r.seconds, 'seconds'),
    way: way as InstallWay | '',
    bytes: optionalNumber(r.bytes, 'bytes'),
    at,
  };
}

/**
 * Whether `next` replaces `current` as the host's latest report: one signed with the host's own
 * credential replaces one signed with the app's secret whatever the SEQ (and never the reverse);
 * else a higher SEQ, or the same SEQ accepted later.
 */
export function supersedes(next: HostEntry, current: HostEntry | undefined): boolean {
  if (!current) return true;
  if (Boolean(next.enrolled) !== Boolean(current.enrolled)) return next.enrolled === true;
  return next.seq !== current.seq ? next.seq > current.seq : next.at >= current.at;
}

/** A rollout's states: the first two while it runs, the last three its ends (`release rollout`'s exit). */
export const ROLLOUT_STATES = ['running', 'waiting', 'halted', 'done', 'rolled_back'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
const MAX_STEPS = 20;

/** The rollout state `release rollout` posts to hook-server (kept per app, the latest one). */
export interface RolloutRecord {
  version: string;
  seq: number;
  /** 1-based index of the step in `steps`. */
  step: number;
  percent: number;
  steps: number[];
  state: RolloutState;
  reason: string;
  /** As the publisher sent it (ISO time), shown as given. */
  at: string;
  /** How the release's files came ('' not said) and the bytes fetched (absent from older hosts). */
  way?: InstallWay | '';
  bytes?: number | null;
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

/** Host ids one POST /fleet/forget may name; `shipkit fleet forget` sends more as several. */
export const MAX_FORGET_HOSTS = 1000;
/** A POST /fleet/forget body's cap: MAX_FORGET_HOSTS ids of 35 bytes each, and room around them. */
export const MAX_FORGET_BYTES = 64 * 1024;
export const MAX_SILENT_DAYS = 36_500;

/** What POST /fleet/forget asks: these hosts, or every host silent for this many days. */
export type ForgetRequest = { app: string; hosts: string[] } | { app: string; silentForDays: number };

/** A parsed POST /fleet/forget body checked: `{app, hosts: [ids]}` or `{app, silent_for_days: N}`. Throws ValidationError. */
export function checkForget(body: unknown): ForgetRequest {
  const wrong = (message: string): never => {
    throw new ValidationError(`forget ${message}`);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) wrong('must be a JSON object');
  const r = body as Record<string, unknown>;
  const problem = nameProblem(r.app);
  if (problem) wrong(`app is not a valid name: it ${problem}`);
  const app = r.app as string;
  if ((r.hosts === undefined) === (r.silent_for_days === undefined))
    wrong('must name either hosts (a list of host ids) or silent_for_days (a number of days), not both');
  if (r.hosts !== undefined) {
    const hosts = r.hosts;
    if (!Array.isArray(hosts) || hosts.length === 0 || hosts.length > MAX_FORGET_HOSTS)
      wrong(`hosts must be a list of 1 to ${MAX_FORGET_HOSTS} host ids`);
    const bad = (hosts as unknown[]).find((h) => typeof h !== 'string' || !HOST_ID_PATTERN.test(h));
    if (bad !== undefined)
      wrong(`hosts: ${JSON.stringify(String(bad).slice(0, 40))} is not a host id (32 lowercase hex characters)`);
    return { app, hosts: hosts as string[] };
  }
  const days = r.silent_for_days;
  if (!Number.isSafeInteger(days) || (days as number) < 1 || (days as number) > MAX_SILENT_DAYS)
    wrong(`silent_for_days must be a whole number of days from 1 to ${MAX_SILENT_DAYS}`);
  return { app, silentForDays: days as number };
}

/** What GET /fleet/APP/releases says of each version its hosts run (counts only: the ledger is read at DEST). */
export interface VersionOnHosts {
  version: string;
  hosts: number;
  verified: number;
  mismatched: number;
  held_by_all: boolean;
}
