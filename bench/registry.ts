// The benches `npm run bench` runs, in order. Each entry is a script under bench/ that prints one
// `BENCH-RESULT {json}` line per goal row (bench/result.ts, reportResult). `args` is the full
// pass, `quick` the short one (`npm run bench -- --quick`). Add your bench here with one entry.
export interface BenchEntry {
  /** Short name, used by `npm run bench -- --only NAME`. */
  name: string;
  /** Path from the checkout's root. */
  script: string;
  args: string[];
  quick: string[];
}

export const BENCHES: BenchEntry[] = [
  { name: 'pipeline', script: 'bench/pipeline.ts', args: ['--runs', '5'], quick: ['--runs', '2'] },
  { name: 'install', script: 'bench/install.ts', args: ['--runs', '21'], quick: ['--runs', '5'] },
  {
    name: 'build',
    script: 'bench/build.ts',
    args: ['--only', 'noop', '--runs', '9'],
    quick: ['--only', 'noop', '--runs', '3'],
  },
  { name: 'fleet', script: 'bench/fleet.ts', args: ['--runs', '9'], quick: ['--runs', '3'] },
  {
    name: 'stages',
    script: 'bench/stages.ts',
    args: ['--only', 'sync', '--runs', '7'],
    quick: ['--only', 'sync', '--runs', '3'],
  },
  { name: 'replay', script: 'bench/replay.ts', args: ['--runs', '5'], quick: ['--runs', '2'] },
  {
    name: 'backup',
    script: 'bench/backup.ts',
    args: ['--runs', '3'],
    quick: ['--runs', '1', '--logs-mb', '128', '--jobs', '2000', '--hosts', '2000'],
  },
  { name: 'ha', script: 'bench/ha.ts', args: ['--rounds', '3'], quick: ['--rounds', '1', '--seconds', '3'] },
  { name: 'ledger', script: 'bench/ledger.ts', args: ['--runs', '9'], quick: ['--runs', '3', '--entries', '2000'] },
  { name: 'fleet-pull', script: 'bench/fleet-pull.ts', args: [], quick: ['--quick'] },
  { name: 'zero-downtime', script: 'bench/zero-downtime-shipped.ts', args: ['--runs', '5'], quick: ['--runs', '2'] },
  {
    name: 'promote',
    script: 'bench/promote.ts',
    args: ['--runs', '11'],
    quick: ['--runs', '3', '--warmup', '1', '--mb', '50'],
  },
  { name: 'gates', script: 'bench/gates.ts', args: ['--runs', '7'], quick: ['--runs', '2'] },
  {
    name: 'hooks',
    script: 'bench/hooks.ts',
    args: ['--rounds', '3', '--duration', '10', '--flood', '0'],
    quick: ['--rounds', '1', '--duration', '5', '--flood', '0'],
  },
];
