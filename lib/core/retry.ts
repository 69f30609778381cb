// The one backoff: the wait before a retry doubles from a base up to a cap, spread by jitter so
// that many clients failing together do not come back together. Every retry loop uses it.

export interface Backoff {
  /** The wait before the first retry. */
  baseMs: number;
  /** No wait is longer than this (before jitter). */
  maxMs?: number;
  /** The wait is multiplied by a random factor in [low, high] (default: none). */
  jitter?: readonly [number, number];
}

/** The wait before retry number `n` (1 = the first retry): baseMs·2^(n−1), capped at maxMs, then jittered. */
export function backoffMs(n: number, { baseMs, maxMs = Infinity, jitter }: Backoff, random = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(n - 1, 0), 30));
  if (!jitter) return raw;
  const [low, high] = jitter;
  return raw * (low + random() * (high - low));
}
