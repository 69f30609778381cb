// When `launchfit run` checks next: every updates.interval with ±10 % jitter; after checks the
// server did not answer, an exponential wait (full jitter) up to 8 intervals and at most an hour.
// The whole story: docs/internals.md.

import { backoffMs } from '../../core/retry.ts';

/** The cap on the backed-off wait: 8 intervals, but at most an hour unless the interval is longer. */
export function maxBackoffMs(intervalMs: number): number {
  return Math.max(intervalMs, Math.min(intervalMs * 8, 3_600_000));
}

/** The wait before the next check after `failures` failed checks in a row (0: the last one worked). */
export function nextPollDelayMs(intervalMs: number, failures: number, random: () => number = Math.random): number {
  if (failures <= 0) return intervalMs * (0.9 + random() * 0.2);
  return backoffMs(failures + 1, { baseMs: intervalMs, maxMs: maxBackoffMs(intervalMs), jitter: [0.5, 1] }, random);
}
