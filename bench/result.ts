// The one machine-readable line every bench prints per goal row, read by `npm run bench`
// (bench/all.ts) to build its single table. Format (one line on stdout, nothing else on it):
//   BENCH-RESULT {"work":"…","shipkit":N,"peer":N|null,"unit":"ms","ratio":N|null,"goal":"≤ 1.1×","met":true|false|null,"load":"1.2 0.9 0.8","note":"…"}
// See /tmp/bench-format.md (and docs/benchmarks.md) for the contract.
import os from 'node:os';

export interface BenchResult {
  /** What was measured, e.g. "no-op rebuild". */
  work: string;
  /** shipkit's figure (median), in `unit`. */
  shipkit: number;
  /** The peer's figure (median) in `unit`, or null when the goal has no peer (an absolute bound). */
  peer: number | null;
  unit: string;
  /** shipkit / peer, or null when there is no peer. Computed when left out. */
  ratio?: number | null;
  /** The goal in words, e.g. "≤ 1.1×" or "< 1000 ms". */
  goal: string;
  /** Whether the goal was met (null: not decidable from this run). */
  met: boolean | null;
  /** Free text: runs, what the peer is, where the time goes. */
  note?: string;
}

export const RESULT_PREFIX = 'BENCH-RESULT ';

export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
}

/** Prints one result line; the load average is taken now unless given. */
export function reportResult(result: BenchResult & { load?: string }): void {
  const ratio = result.ratio !== undefined ? result.ratio : result.peer ? result.shipkit / result.peer : null;
  const line = {
    ...result,
    ratio: ratio === null ? null : Number(ratio.toFixed(3)),
    load: result.load ?? loadAverage(),
  };
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(line)}\n`);
}

/** Parses result lines out of a bench's stdout. */
export function parseResults(stdout: string): Array<BenchResult & { load: string }> {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith(RESULT_PREFIX))
    .map((l) => JSON.parse(l.slice(RESULT_PREFIX.length)));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
