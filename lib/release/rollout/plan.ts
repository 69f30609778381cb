// The judgement of one step of `release rollout` (docs/fleet.md), without I/O: which hosts the
// step expects, what their latest reports say (updated, failed, pending, claimed, forged), and
// whether the rollout may go on.
// The whole story: docs/internals.md.
import { ValidationError } from '../../core/errors.ts';
import { HOST_ID_PATTERN, rolloutBucket } from '../format/bucket.ts';
import { parseRolloutPercent } from '../format/version-file.ts';
import { counted } from '../dest/history.ts';

/** One host's latest report, as GET /fleet/APP lists it (unknown keys ignored). */
export interface FleetHost {
  host: string;
  version?: string;
  result?: string;
  reason?: string;
  claimed_bucket?: number;
  seq?: number;
}

/** `--max-failures N` (hosts) or `P%` (of the step's expected hosts). */
export type Allowance = { count: number } | { percent: number };

export interface StepCounts {
  /** The ROLLOUT of this step. */
  percent: number;
  expected: number;
  reported: number;
  updated: number;
  failed: number;
  pending: number;
  /** Hosts not expected here that report this version because they claim a bucket below the step. */
  claimed: number;
  /** Expected hosts whose report names a SEQ above the step's: not counted as an answer. */
  forged: number;
  /** The failed hosts and why (at most 10, for the message). */
  failures: Array<{ host: string; result: string; reason: string }>;
}

export type StepVerdict = { go: true } | { go: false; wait: true } | { go: false; wait: false; reason: string };

const FAILED = new Set(['failed', 'rolled_back', 'skipped']);
const UPDATED = new Set(['updated', 'running']);

/** `--steps 1,10,50,100`: growing percents, the last 100 (every host takes it in the end). */
export function parseSteps(text: string, where = '--steps'): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length > 100) throw new ValidationError(`${where} has ${parts.length} steps; at most 100.`);
  const steps = parts.map((p) => parseRolloutPercent(p, `step in ${where}`));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i] <= steps[i - 1])
      throw new ValidationError(`${where} must grow: ${steps[i]} follows ${steps[i - 1]} (e.g. 1,10,50,100).`);
  }
  if (steps.at(-1) !== 100)
    throw new ValidationError(
      `${where} must end at 100, so that every host takes the release in the end (e.g. ${[...steps, 100].join(',')}).`,
    );
  return steps;
}

/** `--max-failures 3` or `5%`, `--allow-missing 2%` (or a count). */
export function parseAllowance(text: string, where: string): Allowance {
  const value = text.trim();
  if (/^\d{1,9}$/.test(value)) return { count: Number(value) };
  const percent = /^(\d{1,3}(?:\.\d{1,2})?)%$/.exec(value);
  if (percent && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  throw new ValidationError(
    `Invalid ${where} ${JSON.stringify(value.slice(0, 30))}: give a number of hosts (0, 3) or a percent of the step's hosts (5%).`,
  );
}

/** Whether `n` of `of` hosts is more than the allowance (a percent of `of`). */
export function exceeds(n: number, of: number, allowance: Allowance): boolean {
  if ('count' in allowance) return n > allowance.count;
  return of > 0 && (n * 100) / of > allowance.percent;
}

export function describeAllowance(allowance: Allowance): string {
  return 'count' in allowance ? String(allowance.count) : `${allowance.percent}%`;
}

/** The counts of a step at `percent` for `version` from the fleet's latest reports. */
export function countStep(
  hosts: FleetHost[],
  version: string,
  percent: number,
  { bucketOf = (h: string) => rolloutBucket(h, version), stepSeq = Infinity } = {},
): StepCounts {
  const counts: StepCounts = {
    percent,
    expected: 0,
    reported: 0,
    updated: 0,
    failed: 0,
    pending: 0,
    claimed: 0,
    forged: 0,
    failures: [],
  };
  const seen = new Set<string>();
  for (const entry of hosts) {
    // Not a host id hook-server would have kept, or a second entry for one host: not counted.
    if (typeof entry.host !== 'string' || !HOST_ID_PATTERN.test(entry.host) || seen.has(entry.host)) continue;
    seen.add(entry.host);
    const forThis = entry.version === version && typeof entry.result === 'string';
    const bucket = bucketOf(entry.host);
    if (bucket >= percent) {
      const claims = typeof entry.claimed_bucket === 'number' && entry.claimed_bucket < percent;
      if (forThis && claims) counts.claimed++;
      continue;
    }
    counts.expected++;
    if (forThis && typeof entry.seq === 'number' && entry.seq > stepSeq) {
      counts.forged++;
      counts.pending++;
      continue;
    }
    if (!forThis) {
      counts.pending++;
      continue;
    }
    if (UPDATED.has(entry.result!)) {
      counts.reported++;
      counts.updated++;
      continue;
    }
    if (FAILED.has(entry.result!)) {
      counts.reported++;
      counts.failed++;
      if (counts.failures.length < 10)
        counts.failures.push({
          host: entry.host,
          result: entry.result!,
          reason: String(entry.reason ?? '').slice(0, 200),
        });
      continue;
    }
    counts.pending++; // a result this version does not know: not an answer yet
  }
  return counts;
}

/**
 * Go on, wait, or halt: too many failures halt at once; pending hosts are waited for until
 * `waitOver`, then more of them than `allowMissing` halt.
 */
export function judgeStep(
  counts: StepCounts,
  limits: { maxFailures: Allowance; allowMissing: Allowance },
  waitOver: boolean,
): StepVerdict {
  if (exceeds(counts.failed, counts.expected, limits.maxFailures)) {
    const which = counts.failures
      .map((f) => `${f.host.slice(0, 12)} ${f.result}${f.reason ? ` (${f.reason})` : ''}`)
      .join('; ');
    return {
      go: false,
      wait: false,
      reason:
        `${counts.failed} of ${counted(counts.expected, 'host')} failed at ${counts.percent}%, more ` +
        `than --max-failures ${describeAllowance(limits.maxFailures)}: ${which}`,
    };
  }
  if (counts.pending === 0) return { go: true };
  if (!waitOver) return { go: false, wait: true };
  if (exceeds(counts.pending, counts.expected, limits.allowMissing)) {
    return {
      go: false,
      wait: false,
      reason:
        `${counts.pending} of ${counted(counts.expected, 'host')} did not report ${counts.percent}% ` +
        `within --wait, more than --allow-missing ${describeAllowance(limits.allowMissing)}`,
    };
  }
  return { go: true };
}

export function formatCounts(c: StepCounts): string {
  return (
    `expected ${c.expected}, reported ${c.reported}, updated ${c.updated}, failed ${c.failed}, ` +
    `pending ${c.pending}${c.claimed ? `, ${c.claimed} more claim a bucket in this step (not counted as expected)` : ''}${c.forged ? `, ${c.forged} with a SEQ above this step's (not counted)` : ''}`
  );
}
