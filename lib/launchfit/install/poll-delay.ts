// When `launchfit run` checks next. Normally every updates.interval with ±10 % jitter, so a fleet
// does not hit the update server in step. After checks that failed because the server did not
// answer (or answered an error: a RemoteError), the wait grows exponentially — 1-2, 2-4, 4-8
// intervals (full jitter over the upper half) — up to 8 intervals but not past an hour (unless the
// interval itself is longer), and is back to the interval after the next success. A fleet thus
// never polls a struggling server faster than it normally does, and spreads out as it stays down.
// The current release keeps serving all along: a failed check changes nothing on the host.

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
