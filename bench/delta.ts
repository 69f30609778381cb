// npm run bench:delta [-- --runs 3 --mb 200 --history 3 --only abc]: delta updates (docs/launchfit.md),
// shipkit as shipped. A seeded Node app (bench/delta-app.ts) published as 1.0 after older releases
// to a DEST served by nginx on 127.0.0.1; hosts deployed on 1.0 update to 1.1: (a) one source file
// changed, (b) one dependency bumped, (c) everything changed. Bytes and `launchfit update` wall time
// of the delta update, the full one (`updates.delta: false`) and `rsync -a --link-dest`; publish time.
// In (a) and (b) a third host updates from a DEST where 1.1 has no patch: the files way.
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { appShape, bumpDependency, changeSource, rewriteAll, writeApp, type AppShape } from './delta-app.ts';
import {
  measure,
  startCountingServer,
  startRsyncDaemon,
  type CountingServer,
  type RsyncDaemon,
} from './delta-serve.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'mb', 'seed', 'history', 'only'], boolean: ['keep'] });
const RUNS = Number(args.runs ?? process.env.BENCH_RUNS ?? 3);
const MB = Number(args.mb ?? process.env.BENCH_MB ?? 200);
const SEED = Number(args.seed ?? 1);
const HISTORY = Number(args.history ?? 3); // releases at DEST before 1.1, 1.0 the last
const CASES = [...String(args.only ?? 'abc')].filter((c) => 'abc'.includes(c)) as Case[];
const APP = 'node-app';
type Case = 'a' | 'b' | 'c';
const TITLE: Record<Case, string> = {
  a: 'one source file changed',
  b: 'one dependency bumped',
  c: 'everything changed',
};

const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
for (const name of ['SHIPKIT_REPO', 'SHIPKIT_TAG', 'SHIPKIT_REF', 'SHIPKIT_SHA', 'SHIPKIT_JOB_ID']) delete env[name];
const release = shippedArgv('release');
const launchfit = shippedArgv('launchfit');
const root = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-delta-'));
const www = path.join(root, 'www'); // what nginx serves: one DEST per case and run
const src = path.join(root, 'src'); // the releases' files, what the rsync daemon serves
const keyDir = path.join(root, 'key');
const base = path.join(root, 'dest-base');

/** Dirty pages written out first, so the writeback of one side's work does not land in another's time. */
const settle = () => spawnSync('sync');

/** Runs argv to the end; throws with its output unless it exits 0. */
function run(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

const publishArgv = (dir: string, version: string, to: string, delta: boolean) => [
  ...release,
  ...['publish', dir, '--name', APP, '--platform', 'gnu-linux', '--version', version],
  ...['--key', path.join(keyDir, 'signing.asc'), '--to', to, ...(delta ? [] : ['--no-delta'])],
];

interface Setup {
  shape: AppShape;
  largest: number;
  changed: Record<Case, string[]>;
  /** What this build of shipkit has: a MANIFEST in VERSION, `--no-delta`, `updates.delta`. */
  has: { manifest: boolean; noDelta: boolean; deltaKey: boolean; patches: boolean };
  /** Peak memory of an up-to-date `launchfit update` (nothing to install), kB. */
  idleKb: number;
}

/** The key, the app's releases (older ones, 1.0, the three 1.1s), DEST with HISTORY releases. */
function prepare(): Setup {
  run([...release, 'keys', 'init', '--out', keyDir]);
  const shape = appShape(MB, SEED);
  const v10 = path.join(src, '1.0');
  writeApp(v10, shape, SEED);
  const help = run([...release, 'publish', '--help']);
  const noDelta = help.includes('--no-delta');
  // Older releases: 1.0 with another dependency bumped, or another change to the source.
  for (let k = HISTORY - 1; k >= 1; k--) {
    const dir = path.join(root, `old-${k}`);
    cpSync(v10, dir, { recursive: true, preserveTimestamps: true });
    if (k % 2) changeSource(dir, SEED + 100 + k);
    else bumpDependency(dir, shape, SEED + 100 + k);
    run(publishArgv(dir, `0.${10 - k}`, base, true));
    rmSync(dir, { recursive: true, force: true });
  }
  run(publishArgv(v10, '1.0', base, true));
  const changed = {} as Record<Case, string[]>;
  for (const c of CASES) {
    const dir = path.join(src, `1.1${c}`);
    cpSync(v10, dir, { recursive: true, preserveTimestamps: true });
    if (c === 'a') changed.a = changeSource(dir, SEED);
    if (c === 'b') changed.b = bumpDependency(dir, shape, SEED);
    if (c === 'c') {
      rewriteAll(dir, shape, SEED);
      changed.c = [`all ${shape.files.length} files`];
    }
  }
  const manifest = /^MANIFEST /m.test(readFileSync(path.join(base, 'VERSION'), 'utf8'));
  return {
    shape,
    largest: Math.max(...shape.files.map((f) => f.size)),
    changed,
    has: { manifest, noDelta, deltaKey: false, patches: help.includes('--patches N') },
    idleKb: 0,
  };
}

/** `launchfit deploy` of a host on 1.0 from DEST's URL; with `full`, `updates.delta: false`. */
function deployHost(dir: string, url: string, full: boolean, setup: Setup): void {
  mkdirSync(dir);
  run([...launchfit, 'deploy', url, '--dir', dir, '--keyfile', path.join(keyDir, 'keys.asc')]);
  if (full && setup.has.deltaKey) appendFileSync(path.join(dir, 'launchify.yml'), '  delta: false\n');
}

/**
 * Whether this launchfit takes `updates.delta: false` (an up-to-date check on a host of base), and
 * the peak memory of that check: what `launchfit update` needs before it installs anything.
 */
async function probeHost(server: CountingServer): Promise<{ deltaKey: boolean; idleKb: number }> {
  const dir = path.join(root, 'probe');
  mkdirSync(dir);
  run([...launchfit, 'deploy', `${server.url}base/`, '--dir', dir, '--keyfile', path.join(keyDir, 'keys.asc')]);
  const idle = await measure([...launchfit, 'update', '--dir', dir], env, true);
  appendFileSync(path.join(dir, 'launchify.yml'), '  delta: false\n');
  const r = spawnSync(launchfit[0], [...launchfit.slice(1), 'update', '--dir', dir], { env, encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  return { deltaKey: r.status === 0, idleKb: idle.treeKb };
}

interface Sample {
  ms: number;
  /** CPU time (user + system) of the command and its children. */
  cpuMs: number;
  bytes: number;
  way?: string;
  from?: string;
  fetched?: number;
  treeKb: number;
  hwmKb: number;
}

/** One `launchfit update` of `host`: wall time, bytes nginx sent, the way status reports. */
async function updateHost(host: string, server: CountingServer, memory: boolean): Promise<Sample> {
  const mark = await server.mark();
  settle();
  const m = await measure([...launchfit, 'update', '--dir', host], env, memory);
  if (m.code !== 0) throw new Error(`launchfit update --dir ${host} exited ${m.code}:\n${m.out}`);
  const bytes = await server.bytesSince(mark);
  const status = JSON.parse(run([...launchfit, 'status', '--dir', host, '--json']));
  if (status.version !== '1.1') throw new Error(`${host} is on ${status.version} after the update:\n${m.out}`);
  const last = status.lastInstall ?? {};
  return {
    ms: m.ms,
    cpuMs: m.cpuMs,
    bytes,
    way: last.way,
    from: last.from,
    fetched: last.bytes,
    treeKb: m.treeKb,
    hwmKb: m.hwmKb,
  };
}

/** The peer: `rsync -a --link-dest=1.0` of 1.1 from the daemon; bytes from its --stats. */
async function rsyncPeer(peer: string, daemon: RsyncDaemon, c: Case, flags = '-a'): Promise<Sample> {
  cpSync(path.join(src, '1.0'), path.join(peer, '1.0'), { recursive: true, preserveTimestamps: true });
  const argv = ['rsync', flags, '--stats', `--link-dest=${peer}/1.0`, `${daemon.url}1.1${c}/`, `${peer}/1.1/`];
  settle();
  const m = await measure(argv, env);
  if (m.code !== 0) throw new Error(`${argv.join(' ')} exited ${m.code}:\n${m.out}`);
  const received = /Total bytes received: ([\d,]+)/.exec(m.out);
  if (!received) throw new Error(`no "Total bytes received" in rsync --stats:\n${m.out}`);
  sameFiles(path.join(src, `1.1${c}`), path.join(peer, '1.1'));
  rmSync(peer, { recursive: true, force: true });
  return { ms: m.ms, cpuMs: m.cpuMs, bytes: Number(received[1].replace(/,/g, '')), treeKb: m.treeKb, hwmKb: m.hwmKb };
}

/** Throws unless both trees hold the same paths with the same sizes. */
function sameFiles(a: string, b: string): void {
  const list = (dir: string) =>
    (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
      .filter((e) => e.isFile())
      .map((e) => {
        const full = path.join(e.parentPath, e.name);
        return `${path.relative(dir, full)} ${statSync(full).size}`;
      })
      .sort()
      .join('\n');
  if (list(a) !== list(b)) throw new Error(`${b} does not hold the files of ${a}`);
}

interface CaseRuns {
  delta: Sample[];
  full: Sample[];
  /** A host updating from a DEST where 1.1 has no patch (`--patches 0`): the files way. */
  files: Sample[];
  rsync: Sample[];
  rsyncZ?: Sample;
  publishDelta: number[];
  publishPlain: number[];
  /** The publishes' CPU time (user + system), ms. */
  publishDeltaCpu: number[];
  publishPlainCpu: number[];
}

/** Times publishing 1.1 onto `dest` (deltas) and onto a copy of base with --no-delta, alternated. */
async function publishBoth(c: Case, i: number, dest: string, setup: Setup, out: CaseRuns): Promise<void> {
  const plain = path.join(root, `plain-${c}-${i}`);
  cpSync(base, plain, { recursive: true });
  const dir = path.join(src, `1.1${c}`);
  const sides = i % 2 ? (['plain', 'delta'] as const) : (['delta', 'plain'] as const);
  for (const side of sides) {
    settle();
    const m = await measure(
      publishArgv(dir, '1.1', side === 'delta' ? dest : plain, side === 'delta' || !setup.has.noDelta),
      env,
    );
    if (m.code !== 0) throw new Error(`release publish (${side}) exited ${m.code}:\n${m.out}`);
    (side === 'delta' ? out.publishDelta : out.publishPlain).push(m.ms);
    (side === 'delta' ? out.publishDeltaCpu : out.publishPlainCpu).push(m.cpuMs);
  }
  rmSync(plain, { recursive: true, force: true });
}

/** Run i of case c: a DEST copy, two hosts on 1.0, the publishes, then the updates (delta and full alternated), the peer. */
async function caseRun(c: Case, i: number, setup: Setup, server: CountingServer, daemon: RsyncDaemon, out: CaseRuns) {
  const name = `${c}-${i}`;
  const dest = path.join(www, name);
  cpSync(base, dest, { recursive: true });
  const hosts = {
    delta: path.join(root, `host-${name}-delta`),
    full: path.join(root, `host-${name}-full`),
    files: path.join(root, `host-${name}-files`),
  };
  // Which host is made first alternates too: on this disk the host made first updated slower
  // whatever its settings (kept hosts, settings swapped, 4 rounds each way).
  for (const side of i % 2 ? (['full', 'delta'] as const) : (['delta', 'full'] as const))
    deployHost(hosts[side], `${server.url}${name}/`, side === 'full', setup);
  await publishBoth(c, i, dest, setup, out);
  // The same 1.1 with no patch, for a host that holds none: untimed.
  const filesDest = path.join(www, `${name}-files`);
  const filesWay = setup.has.patches && c !== 'c';
  if (filesWay) {
    cpSync(base, filesDest, { recursive: true });
    deployHost(hosts.files, `${server.url}${name}-files/`, false, setup);
    run([...publishArgv(path.join(src, `1.1${c}`), '1.1', filesDest, true), '--patches', '0']);
  }
  // With --keep, the hosts as they were before their update, to profile one again.
  if (args.keep)
    for (const [side, dir] of Object.entries(hosts))
      if (side !== 'files' || filesWay)
        cpSync(dir, path.join(root, `before-${name}-${side}`), { recursive: true, verbatimSymlinks: true });
  // delta and full alternate which goes first; the peer (its bytes are the goal, not its time) goes last.
  for (const side of i % 2 ? (['full', 'delta'] as const) : (['delta', 'full'] as const)) {
    // Memory is sampled on both sides: its /proc reads every 10 ms cost the bench CPU beside the side it watches.
    const sample = await updateHost(hosts[side], server, true);
    sameFiles(path.join(src, `1.1${c}`), path.join(hosts[side], 'current'));
    out[side].push(sample);
  }
  if (filesWay) {
    out.files.push(await updateHost(hosts.files, server, true));
    sameFiles(path.join(src, `1.1${c}`), path.join(hosts.files, 'current'));
  }
  out.rsync.push(await rsyncPeer(path.join(root, `peer-${name}`), daemon, c));
  if (i === 0) out.rsyncZ = await rsyncPeer(path.join(root, `peer-${name}-z`), daemon, c, '-az');
  if (!args.keep) for (const dir of [dest, filesDest]) rmSync(dir, { recursive: true, force: true });
  for (const dir of Object.values(hosts)) rmSync(dir, { recursive: true, force: true });
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1)} MB`;
const num = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (x: number) => `${num(x)} ms`;
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
const ways = (xs: Sample[]) =>
  [...new Set(xs.map((s) => `${s.way ?? '?'}${s.from ? ` from ${s.from}` : ''}`))].join(', ') || '?';

/** The table of one case. */
function printCase(c: Case, r: CaseRuns, setup: Setup): void {
  const row = (what: string, xs: Sample[], extra: string) =>
    console.log(
      `  ${what.padEnd(26)} ${num(median(xs.map((s) => s.bytes))).padStart(13)} B  ${ms(median(xs.map((s) => s.ms))).padStart(10)}  ${ms(median(xs.map((s) => s.cpuMs))).padStart(10)}  ${extra}`,
    );
  console.log(`(${c}) ${TITLE[c]}: ${setup.changed[c].join(', ')}`);
  console.log(
    `  ${'side'.padEnd(26)} ${'bytes sent'.padStart(15)}  ${'time'.padStart(10)}  ${'CPU'.padStart(10)}  way / note`,
  );
  const fetched = (xs: Sample[]) => `launchfit counted ${num(median(xs.map((s) => s.fetched ?? 0)))} B`;
  row('launchfit update (delta)', r.delta, `${ways(r.delta)}; ${fetched(r.delta)}`);
  row('launchfit update (full)', r.full, `${ways(r.full)}; ${fetched(r.full)}`);
  if (r.files.length) row('launchfit update (no patch)', r.files, `${ways(r.files)}; ${fetched(r.files)}`);
  row('rsync -a --link-dest', r.rsync, `rsync -az: ${num(r.rsyncZ?.bytes ?? NaN)} B`);
  const each = (xs: number[]) => xs.map((x) => num(x)).join(' ');
  console.log(
    `  each run, ms: delta ${each(r.delta.map((s) => s.ms))}; full ${each(r.full.map((s) => s.ms))}; publish ${each(r.publishDelta)} / --no-delta ${each(r.publishPlain)}`,
  );
  const peak = Math.max(...[...r.delta, ...r.files].map((s) => s.treeKb));
  const most = (xs: Sample[], kb: (s: Sample) => number) => (xs.length ? mb(Math.max(...xs.map(kb)) * 1024) : 'n/a');
  console.log(
    `  delta update's peak memory: ${mb(peak * 1024)} with children; ${ways(r.delta)} ${most(r.delta, (s) => s.treeKb)} (launchfit's own VmHWM ${most(r.delta, (s) => s.hwmKb)}), no patch ${most(r.files, (s) => s.treeKb)} (VmHWM ${most(r.files, (s) => s.hwmKb)}); the full update (delta off) ${most(r.full, (s) => s.treeKb)}`,
  );
  console.log(
    `  publish 1.1: with deltas ${ms(median(r.publishDelta))} (CPU ${ms(median(r.publishDeltaCpu))}), ${setup.has.noDelta ? '--no-delta' : 'again (no --no-delta in this build)'} ${ms(median(r.publishPlain))} (CPU ${ms(median(r.publishPlainCpu))})`,
  );
}

const NOTE = `median of ${RUNS}, sides alternated, ${MB} MB app, DEST with ${HISTORY} releases before 1.1`;

/** One goal: a summary line and its BENCH-RESULT line. */
const goal = (
  work: string,
  ours: number,
  peer: number | null,
  unit: string,
  goalText: string,
  ok: boolean,
  extra = '',
) => {
  const ratio = peer ? ours / peer : null;
  const shown =
    ratio === null ? '' : unit === 'bytes' && ratio < 0.1 ? ` ${(ratio * 100).toFixed(3)} %` : ` ${ratio.toFixed(3)}×`;
  console.log(
    `  ${work}: ${num(ours)} ${unit}${peer === null ? '' : ` vs ${num(peer)}`} —${shown} (goal ${goalText}): ${met(ok)}${extra}`,
  );
  reportResult({
    work,
    shipkit: Math.round(ours),
    peer: peer === null ? null : Math.round(peer),
    unit,
    goal: goalText,
    met: ok,
    note: NOTE,
  });
};

/** One summary line and one BENCH-RESULT line per goal. */
function goals(results: Partial<Record<Case, CaseRuns>>, setup: Setup): void {
  const med = (xs: Sample[], k: 'bytes' | 'ms' | 'cpuMs') => median(xs.map((s) => s[k]));
  // Wall time is the goal; CPU time (user + system, children included) moves less with the load.
  const cpu = (ours: number, peer: number) => `; CPU ${num(ours)} vs ${num(peer)} ms, ${(ours / peer).toFixed(3)}×`;
  // Each run's delta and full updates ran one after the other on the same DEST: their own ratio
  // moves less with the machine's load over the pass than the two sides' medians do.
  const paired = (r: CaseRuns) => {
    const ratios = r.delta.map((d, i) => d.ms / r.full[i].ms);
    return `; the runs' own ratios ${ratios.map((x) => x.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(3)}×)`;
  };
  console.log('goals:');
  // Each case's goals: the delta side against the full update or rsync, on bytes or wall time,
  // within `factor` of the peer.
  const CASE_GOALS: Array<[Case, string, 'bytes' | 'ms', 'full' | 'rsync', number, string]> = [
    ['a', 'one source file', 'bytes', 'full', 0.005, '≤ 0.5 % of full'],
    ['a', 'one source file', 'ms', 'full', 0.3, '≤ 0.3× full'],
    ['a', 'one source file', 'bytes', 'rsync', 1, '≤ 1.0× rsync'],
    ['b', 'one dependency bumped', 'bytes', 'full', 0.05, '≤ 5 % of full'],
    ['b', 'one dependency bumped', 'bytes', 'rsync', 1, '≤ 1.0× rsync'],
    ['c', 'everything changed', 'ms', 'full', 1.02, '≤ 1.02× full'],
  ];
  for (const [k, what, key, against, factor, goalText] of CASE_GOALS) {
    const r = results[k];
    if (!r) continue;
    const [ours, peer] = [med(r.delta, key), med(r[against], key)];
    const peerName = against === 'full' ? 'full' : 'rsync -a --link-dest';
    const way = against === 'full' ? ` [${ways(r.delta)}]` : '';
    const extra = key === 'ms' ? `${way}${cpu(med(r.delta, 'cpuMs'), med(r.full, 'cpuMs'))}${paired(r)}` : way;
    const work = `(${k}) ${what}: delta ${key === 'ms' ? 'update time' : 'bytes'} vs ${peerName}`;
    goal(work, ours, peer, key, goalText, ours <= factor * peer, extra);
  }
  for (const k of CASES) {
    const r = results[k]!;
    if (!r.files.length) continue;
    const [bytes, time] = [med(r.files, 'bytes'), med(r.files, 'ms')];
    const share = (bytes / med(r.full, 'bytes')) * 100;
    const vsRsync = (bytes / med(r.rsync, 'bytes')).toFixed(3);
    console.log(
      `  (${k}) with no patch [${ways(r.files)}]: ${num(bytes)} B, ${share.toFixed(share < 0.1 ? 3 : 2)} % of full, ${vsRsync}× rsync; ${num(time)} ms, ${(time / med(r.full, 'ms')).toFixed(3)}× full (not a goal: the way of a host that holds no release a patch is from)`,
    );
  }
  for (const k of CASES) {
    const r = results[k]!;
    const [d, p] = [median(r.publishDelta), median(r.publishPlain)];
    const extra = cpu(median(r.publishDeltaCpu), median(r.publishPlainCpu));
    goal(`(${k}) release publish with deltas vs --no-delta`, d, p, 'ms', '≤ 1.5×', d <= 1.5 * p, extra);
  }
  const peakKb = Math.max(...CASES.flatMap((k) => [...results[k]!.delta, ...results[k]!.files].map((s) => s.treeKb)));
  const limit = (2 * setup.largest) / 2 ** 20 + 64;
  goal(
    'host peak memory during the delta updates',
    peakKb / 1024,
    null,
    'MB',
    `≤ ${limit.toFixed(0)} MB (2× the largest file, ${mb(setup.largest)}, + 64 MB)`,
    peakKb / 1024 <= limit,
    `; an up-to-date \`launchfit update\` alone: ${mb(setup.idleKb * 1024)}`,
  );
}

async function main(): Promise<void> {
  console.log(
    `delta: shipkit (${path.basename(release[1] ?? release[0])}), node ${process.version}, load ${loadAverage()}`,
  );
  const t0 = performance.now();
  const setup = prepare();
  const files = setup.shape.files.length;
  const tarball = statSync(path.join(base, `${APP}-gnu-linux-1.0.tar.gz`)).size;
  console.log(
    `app: ${files} files, ${mb(setup.shape.files.reduce((n, f) => n + f.size, 0))}, largest file ${mb(setup.largest)}; 1.0's tarball ${mb(tarball)}; ready in ${ms(performance.now() - t0)}`,
  );
  mkdirSync(www);
  cpSync(base, path.join(www, 'base'), { recursive: true });
  const server = await startCountingServer(www);
  const daemon = await startRsyncDaemon(src, root);
  const probe = await probeHost(server);
  setup.has.deltaKey = probe.deltaKey;
  setup.idleKb = probe.idleKb;
  console.log(
    `update server: ${server.what}; this build: MANIFEST in VERSION ${setup.has.manifest ? 'yes' : 'no'}, --no-delta ${setup.has.noDelta ? 'yes' : 'no'}, updates.delta ${setup.has.deltaKey ? 'yes' : 'no'}`,
  );
  if (!setup.has.manifest)
    console.log(
      'WARNING: `release publish` (without --no-delta) wrote no MANIFEST line in VERSION: this build makes no delta files, so every "delta" figure below is a full download',
    );
  const results: Partial<Record<Case, CaseRuns>> = {};
  try {
    for (const c of CASES)
      results[c] = {
        delta: [],
        full: [],
        files: [],
        rsync: [],
        publishDelta: [],
        publishPlain: [],
        publishDeltaCpu: [],
        publishPlainCpu: [],
      };
    for (let i = 0; i < RUNS; i++)
      for (const c of CASES) {
        await caseRun(c, i, setup, server, daemon, results[c]!);
        process.stderr.write(`run ${i + 1}/${RUNS} (${c}) done, load ${loadAverage()}\n`);
      }
    console.log(
      `${RUNS} runs, medians; update time is \`launchfit update\`'s wall time (download → verified → switched; no app running)`,
    );
    for (const c of CASES) printCase(c, results[c]!, setup);
    goals(results, setup);
    console.log(`load ${loadAverage()}`);
  } finally {
    await server.stop();
    await daemon.stop();
  }
}

try {
  await main();
} finally {
  if (!args.keep) rmSync(root, { recursive: true, force: true });
  else console.log(`kept ${root}`);
}
process.exit(0);
