// npm run bench:promote [-- --runs 5 --mb 200 --files 20 --keep]: `release promote` as shipped (the
// one file) of a release of M MB (F random, incompressible files, published once to DEST A) from A
// to a new folder DEST, against `cp -r` of the same files (tarball, .sig, manifest) to a new folder.
// Sides alternated, R runs each; medians. Goal: ≤ 1.1× cp -r (docs/environments.md: one read of
// the tarball, hashed while copied; no re-pack). shipkit also fsyncs what it writes; cp does not.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'mb', 'files'], boolean: ['keep'] });
const RUNS = Number(args.runs ?? 5);
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

function promoteOnce(run: number): number {
  const production = path.join(root, `production-${run}`);
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
  ]);
  rmSync(production, { recursive: true, force: true });
  return ms;
}

function cpOnce(run: number): number {
  const copy = path.join(root, `cp-${run}`);
  mkdirSync(copy);
  const files = [FILE, `${FILE}.sig`, 'my-app-gnu-linux-1.0.manifest'].map((f) => path.join(staging, f));
  const ms = timed(['cp', '-r', ...files, `${copy}/`]);
  rmSync(copy, { recursive: true, force: true });
  return ms;
}

try {
  prepare();
  const load = loadAverage();
  const shipkit: number[] = [];
  const peer: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    // Alternated, the side that goes first alternating too: neither always finds the cache warmer.
    if (run % 2) peer.push(cpOnce(run));
    shipkit.push(promoteOnce(run));
    if (!(run % 2)) peer.push(cpOnce(run));
  }
  const [s, p] = [median(shipkit), median(peer)];
  process.stderr.write(
    `release promote: ${shipkit.map((x) => x.toFixed(0)).join(' ')} ms; cp -r: ${peer.map((x) => x.toFixed(0)).join(' ')} ms\n` +
      `median ${s.toFixed(0)} ms vs ${p.toFixed(0)} ms: ${(s / p).toFixed(2)}× (goal ≤ ${GOAL}×)\n`,
  );
  reportResult({
    work: `release promote of a ${MB} MB release between two folder DESTs`,
    shipkit: Math.round(s),
    peer: Math.round(p),
    unit: 'ms',
    goal: `≤ ${GOAL}× cp -r`,
    met: s / p <= GOAL,
    load,
    note: `${RUNS} runs each, alternated; peer: cp -r of the tarball, .sig and manifest; shipkit as shipped, fsyncs`,
  });
} finally {
  if (!args.keep) rmSync(root, { recursive: true, force: true });
}
