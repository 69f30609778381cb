// npm run bench:promote [-- --runs 5 --warmup 2 --mb 200 --files 20 --keep]: `release promote` as shipped (the
// one file) of an M MB release (F random files, published once to DEST A) from A to a new folder DEST,
// by default (one filesystem: the tarball hard-linked) and with --copy (copied, as to another one),
// against `cp -r` of the same files (tarball, .sig, manifest), alone and then with `sync` of the copies
// and their folder (fsync, as shipkit's writes are durable), and the runtime's floor: a bare Node
// copy with the one sha256 read (bench/promote-floor.mjs). Sides alternated, R runs; medians, and
// the median of each run's ratio.
// Every copy stays until the end: this disk (ext4, discard, virtual) writes into just-freed blocks
// 3-6× faster, so removing one side's copies before the next made every other run fast; and the
// first rounds, on the blocks the publish freed, are a warm-up not counted (W rounds).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'mb', 'files', 'warmup'], boolean: ['keep'] });
const RUNS = Number(args.runs ?? 5);
const WARMUP = Number(args.warmup ?? 2);
const MB = Number(args.mb ?? 200);
const FILES = Number(args.files ?? 20);
const GOAL = 1.1;
const env: NodeJS.ProcessEnv = { ...process.env };
for (const name of ['SHIPKIT_REPO', 'SHIPKIT_TAG', 'SHIPKIT_REF', 'SHIPKIT_SHA', 'SHIPKIT_JOB_ID']) delete env[name];

const release = shippedArgv('release');
const root = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-promote-'));
const keyDir = path.join(root, 'key');
const appDir = path.join(root, 'app');
const staging = path.join(root, 'staging');
const state = path.join(root, 'state');
const FILE = 'my-app-gnu-linux-1.0.tar.gz';

/** Runs argv, stdout to /dev/null; its wall time in ms. Throws unless it exits 0. */
function timed(argv: string[]): number {
  const t0 = performance.now();
  const run = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (run.status !== 0) throw new Error(`${argv.join(' ')} exited ${run.status}: ${run.stderr}`);
  return ms;
}

/** The key, the app's random files (generated once), and the release published to staging. */
function prepare(): void {
  timed([...release, 'keys', 'init', '--out', keyDir]);
  mkdirSync(appDir);
  const size = Math.ceil((MB * 1024 * 1024) / FILES);
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(appDir, `blob-${i}.bin`), randomBytes(size));
  const key = ['--key', path.join(keyDir, 'signing.asc')];
  const publish = ['publish', appDir, '--name', 'my-app', '--platform', 'gnu-linux', '--version', '1.0'];
  const ms = timed([...release, ...publish, ...key, '--to', staging, '--state', state]);
  const bytes = statSync(path.join(staging, FILE)).size;
  process.stderr.write(`published ${FILE} (${(bytes / 1e6).toFixed(0)} MB) to staging in ${ms.toFixed(0)} ms\n`);
}

/** The time of the last promote's end: a second one in the same second waits for the next (ETags). */
let lastPromote = 0;

/** One promote to a new folder: by default (the tarball linked, one filesystem), or with --copy. */
async function promoteOnce(run: number, copy: boolean): Promise<number> {
  await sleep(Math.max(0, lastPromote + 1100 - performance.now()));
  const production = path.join(root, `production-${copy ? 'copy-' : ''}${run}`);
  mkdirSync(production);
  const ms = timed([
    ...release,
    'promote',
    'my-app',
    '1.0',
    '--from',
    staging,
    '--to',
    production,
    '--from-env',
    'staging',
    '--to-env',
    'production',
    '--key',
    path.join(keyDir, 'signing.asc'),
    '--state',
    state,
    ...(copy ? ['--copy'] : []),
  ]);
  lastPromote = performance.now();
  const linked = statSync(path.join(production, FILE)).ino === statSync(path.join(staging, FILE)).ino;
  if (linked === copy) throw new Error(`promote${copy ? ' --copy' : ''} ${linked ? 'linked' : 'copied'} the tarball`);
  return ms;
}

const NAMES = [FILE, `${FILE}.sig`, 'my-app-gnu-linux-1.0.manifest'];

/** The runtime's floor: node + bench/promote-floor.mjs copying the three files, hashing, fsyncing. */
function floorOnce(run: number): number {
  const copy = path.join(root, `floor-${run}`);
  mkdirSync(copy);
  const ms = timed([process.execPath, path.join(import.meta.dirname, 'promote-floor.mjs'), staging, copy, ...NAMES]);
  return ms;
}

/** cp -r of the three files to a new folder, then `sync` (fsync) of the copies and the folder: both times. */
function cpOnce(run: number): { cp: number; synced: number } {
  const copy = path.join(root, `cp-${run}`);
  mkdirSync(copy);
  const cp = timed(['cp', '-r', ...NAMES.map((f) => path.join(staging, f)), `${copy}/`]);
  const sync = timed(['sync', ...NAMES.map((f) => path.join(copy, f)), copy]);
  return { cp, synced: cp + sync };
}

const shown = (xs: number[]) => `${xs.map((x) => x.toFixed(0)).join(' ')} ms, median ${median(xs).toFixed(0)}`;

try {
  prepare();
  const load = loadAverage();
  const [shipkit, copying, floor, cp, synced, bare]: number[][] = [[], [], [], [], [], []];
  for (let run = 0; run < WARMUP + RUNS; run++) {
    if (run === WARMUP && WARMUP > 0) {
      // The warm-up's copies took the blocks the publish freed (the disk's fast ones, see the
      // header): every run counted meets the disk as it is from then on.
      process.stderr.write(
        `warm-up, ${WARMUP} rounds not counted: promote ${shown(shipkit)}; --copy ${shown(copying)}; ` +
          `floor ${shown(bare)}; cp -r ${shown(cp)}\n`,
      );
      for (const xs of [shipkit, copying, floor, cp, synced, bare]) xs.length = 0;
    }
    // Alternated, the side that goes first alternating too: neither always finds the cache warmer.
    const copied = () => {
      const c = cpOnce(run);
      cp.push(c.cp);
      synced.push(c.synced);
    };
    if (run % 2) copied();
    if (run % 2) bare.push(floorOnce(run));
    if (run % 2) copying.push(await promoteOnce(run, true));
    shipkit.push(await promoteOnce(run, false));
    if (!(run % 2)) copying.push(await promoteOnce(run, true));
    if (!(run % 2)) bare.push(floorOnce(run));
    if (!(run % 2)) copied();
    floor.push(timed([...release, '--help']));
  }
  process.stderr.write(
    `release promote (the tarball hard-linked): ${shown(shipkit)}\nrelease promote --copy: ${shown(copying)}\n` +
      `runtime's floor (release --help): ${shown(floor)}\n` +
      `cp -r: ${shown(cp)}\ncp -r + sync (fsync of the copies): ${shown(synced)}\n` +
      `bare Node copy with the one sha256 read, fsynced (promote-floor.mjs): ${shown(bare)}\n`,
  );
  // This disk has two speeds (see the header), and a pass mixes them differently for each side:
  // the ratio of the runs made one after the other (the same run) is steadier than the ratio of
  // medians, and is the one judged against the goal; both are printed.
  const peers = [
    ['cp -r', cp],
    ['cp -r + sync', synced],
    ['the bare Node copy with one sha256 read (the runtime floor)', bare],
  ] as const;
  for (const [side, mine, how] of [
    ['promote', shipkit, 'linked: the DESTs share a filesystem (the default)'],
    ['promote --copy', copying, 'copied (--copy)'],
  ] as const)
    for (const [peer, xs] of peers) {
      const s = median(mine);
      const p = median(xs);
      const paired = median(mine.map((x, i) => x / xs[i]));
      process.stderr.write(
        `${side} vs ${peer}: ${paired.toFixed(2)}× run by run (median of ${RUNS} ratios), ` +
          `${(s / p).toFixed(2)}× of medians (goal ≤ ${GOAL}×)\n`,
      );
      reportResult({
        work: `release ${side} of a ${MB} MB release between two folder DESTs, vs ${peer}`,
        shipkit: Math.round(s),
        peer: Math.round(p),
        unit: 'ms',
        goal: `≤ ${GOAL}× ${peer}`,
        ratio: paired,
        met: paired <= GOAL,
        load,
        note:
          `${RUNS} runs each, alternated; ratio: median of the runs' ratios (${(s / p).toFixed(2)}× of medians); ` +
          `the tarball ${how}; peer: ${peer} of the tarball, .sig and manifest; shipkit as shipped, fsyncs; ` +
          `runtime's floor (release --help) ${median(floor).toFixed(0)} ms`,
      });
    }
} finally {
  if (!args.keep) rmSync(root, { recursive: true, force: true });
}
