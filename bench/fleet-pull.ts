// npm run bench:fleet-pull — pull rollout at fleet scale (docs/design.md), shipkit as shipped
// (the one file, bench/shipped.ts: `release publish`, `release rollout`, `hook-server`), Debian's nginx as the
// update server and the fleet simulator (test/fixtures/fleet-sim: HOSTS light hosts in a few
// processes, each polling VERSION with If-None-Match, bucketing with rolloutBucket, downloading the
// tarball and reporting signed to hook-server). Four rows, each against an absolute goal:
//   1. idle: bytes per poll at the update server (both ways) and requests/s, HOSTS at --interval
//      (60 s) ± 20% jitter, measured from nginx's access log over one interval after the first
//      round (goal: every poll 304, < 1 KB per poll);
//   2. `release rollout --steps 1,10,100 --wait 5`: from its start to 99% of hosts on the new
//      version, against 3 poll intervals after the last step was signed; the poll interval is
//      scaled down to --rollout-interval (3 s) so a step's hosts can report within --wait 5;
//   3. reports/s hook-server accepts (closed load; goal ≥ 2,000/s) and the p99 of an open load of
//      2,000 reports/s (goal < 50 ms), the load from bench/fleet-pull-load.ts in its own process;
//   4. a bad release (every host that installs it fails) rolled out the same way with
//      --max-failures 0 --rollback: halted at step 1, hosts touched (goal ≤ 1%).
// Flags: --hosts N (10000) --interval S (60) --rollout-interval S (3) --report-seconds S (10)
//        --concurrency N (64) --quick (2,000 hosts, a 10 s idle interval, 5 s of reports).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { $ } from '../lib/core/shell.ts';
import { startFleetSim, type FleetSim } from '../test/fixtures/fleet-sim/index.ts';
import { startUpdateNginx, type UpdateNginx } from '../test/fixtures/fleet-sim/nginx.ts';
import { makePublisher, type Publisher } from '../test/fixtures/launchfit/gpg.ts';
import { freePort, tmpDir, waitFor } from '../test/_helpers/common.ts';
import { reportResult } from './result.ts';
import { shippedShipkit } from './shipped.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
// The one file as shipped: `npm run bench`'s (SHIPKIT_BENCH_BUNDLE), else a private build of this tree.
const BUNDLE = shippedShipkit();
const args = minimist(process.argv.slice(2), { boolean: ['quick'] });
const HOSTS = Number(args.hosts ?? (args.quick ? 2000 : 10_000));
const INTERVAL = Number(args.interval ?? (args.quick ? 10 : 60));
const ROLLOUT_INTERVAL = Number(args['rollout-interval'] ?? 3);
const REPORT_SECONDS = Number(args['report-seconds'] ?? (args.quick ? 5 : 10));
const CONCURRENCY = Number(args.concurrency ?? 64);
const APP = 'my-app';
const SECRET = 'fleet-bench-secret-0123456789abcdef';
$.verbose = false;
$.quiet = true;

const base = tmpDir('shipkit-bench-fleet-pull-');
const dest = path.join(base, 'updates');
const secretFile = path.join(base, 'fleet.secret');
writeFileSync(secretFile, `${SECRET}\n`);
const shipkit = (...argv: string[]) => $({ cwd: base, nothrow: true })`${process.execPath} ${BUNDLE} ${argv}`;

const pub: Publisher = await makePublisher(base, 'bench pass');
const signing = ['--key', pub.secret, '--passphrase-file', pub.passFile];
async function publish(version: string, extra: string[] = []): Promise<void> {
  const src = path.join(base, `src-${version}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(path.join(src, 'app.txt'), `version ${version}\n${'x'.repeat(4096)}\n`);
  const r = await shipkit(
    'release',
    'publish',
    src,
    '--name',
    APP,
    '--platform',
    'gnu-linux',
    '--version',
    version,
    ...signing,
    '--to',
    dest,
    ...extra,
  );
  if (r.exitCode !== 0) throw new Error(`release publish ${version} exited ${r.exitCode}: ${r.stderr}`);
}

async function startHookServer(): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const config = path.join(base, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `data: ${path.join(base, 'data')}`,
      'secret: env:BENCH_SECRET',
      'concurrency: 1',
      'repos:',
      '  bench/site:',
      '    branch: main',
      'fleet:',
      `  ${APP}:`,
      `    secret: file:${secretFile}`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [BUNDLE, 'hook-server', '--config', config], {
    cwd: base,
    env: { ...process.env, BENCH_SECRET: 'bench-hook-secret-0123456789' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`hook-server exited: ${err}`);
      return fetch(`${url}/metrics`).then(
        () => true,
        () => false,
      );
    },
    { timeoutMs: 20_000, what: 'hook-server' },
  );
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  process.on('exit', stop);
  return { url, stop };
}

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function idle(nginx: UpdateNginx, hook: string): Promise<void> {
  const sim = startFleetSim({
    url: nginx.url,
    app: APP,
    hosts: HOSTS,
    intervalMs: INTERVAL * 1000,
    running: '1.0',
    seq: 1,
    announce: true,
    report: { url: `${hook}/fleet/reports`, secret: SECRET },
    seed: 'bench',
  });
  const from = Date.now() + INTERVAL * 1200; // every host has made its first (unconditional) poll
  const to = from + INTERVAL * 1000;
  console.log(
    `idle: ${HOSTS} hosts polling every ${INTERVAL} s ± 20%; measuring ${new Date(from).toISOString()} → ${new Date(to).toISOString()}`,
  );
  await new Promise((resolve) => setTimeout(resolve, to - Date.now() + 1000));
  const s = await sim.stop();
  const polls = nginx.requests().filter((r) => r.at >= from && r.at < to);
  const versionPolls = polls.filter((r) => r.path === '/VERSION');
  const not304 = versionPolls.filter((r) => r.status !== 304).length;
  const bytes = polls.reduce((n, r) => n + r.sent + r.received, 0);
  const perPoll = bytes / Math.max(1, polls.length);
  const seconds = (to - from) / 1000;
  console.log(
    `  ${polls.length} requests (${versionPolls.length} VERSION polls, ${not304} not 304) in ${seconds} s: ${(polls.length / seconds).toFixed(0)} req/s, ${(bytes / seconds / 1024).toFixed(1)} KiB/s both ways, ${perPoll.toFixed(0)} B per poll; running reports accepted ${s.reports}, failed ${s.reportErrors}`,
  );
  reportResult({
    work: `fleet-pull: idle poll cost at the update server (${HOSTS} hosts, ${INTERVAL} s)`,
    shipkit: Number(perPoll.toFixed(0)),
    peer: null,
    unit: 'bytes/poll',
    goal: 'all 304, < 1024 B/poll',
    met: not304 === 0 && perPoll < 1024,
    note: `${(polls.length / seconds).toFixed(0)} req/s, ${(bytes / seconds / 1024).toFixed(1)} KiB/s; ${not304} of ${versionPolls.length} polls not 304`,
  });
}

async function rollout(
  hook: string,
  sim: FleetSim,
  version: string,
  extra: string[],
): Promise<{ exitCode: number | null; stdout: string; started: number; lastStep: number; reached?: number }> {
  await publish(version, ['--rollout', '1']);
  const started = Date.now();
  let lastStep = 0;
  let reached: number | undefined;
  const watch = setInterval(() => {
    const s = sim.stats();
    if (reached === undefined && (s.versions[version] ?? 0) >= HOSTS * 0.99) reached = Date.now();
  }, 50);
  const child = $({
    cwd: base,
    nothrow: true,
  })`${process.execPath} ${BUNDLE} release rollout ${APP} --to ${dest} --fleet ${hook} --fleet-secret ${`file:${secretFile}`} ${signing} --steps 1,10,100 --wait 5 --poll 0.5 ${extra}`;
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d;
    if (lastStep === 0 && /step 3\/3 \(ROLLOUT 100\): signed/.test(stdout)) lastStep = Date.now();
  });
  const r = await child;
  if (r.exitCode === 0 && reached === undefined)
    await waitFor(() => reached !== undefined, {
      timeoutMs: ROLLOUT_INTERVAL * 10_000,
      what: `99% of hosts on ${version}`,
    }).catch(() => undefined);
  clearInterval(watch);
  console.log(stdout.replace(/^/gm, '  | '));
  return { exitCode: r.exitCode, stdout: r.stdout, started, lastStep, reached };
}

async function rollouts(nginx: UpdateNginx, hook: string): Promise<void> {
  const sim = startFleetSim({
    url: nginx.url,
    app: APP,
    hosts: HOSTS,
    intervalMs: ROLLOUT_INTERVAL * 1000,
    running: '1.0',
    seq: 1,
    announce: true,
    bad: ['1.2'],
    report: { url: `${hook}/fleet/reports`, secret: SECRET },
    seed: 'bench',
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, ROLLOUT_INTERVAL * 1500)); // every host polled once and said it runs
    console.log(
      `rollout: ${HOSTS} hosts polling every ${ROLLOUT_INTERVAL} s ± 20% (scaled down from ${INTERVAL} s so a step's hosts report within --wait 5)`,
    );
    const good = await rollout(hook, sim, '1.1', []);
    const after = good.reached && good.lastStep ? (good.reached - good.lastStep) / 1000 : NaN;
    const total = good.reached ? (good.reached - good.started) / 1000 : NaN;
    console.log(
      `  exit ${good.exitCode}; 99% on 1.1 ${total.toFixed(1)} s after the start, ${after.toFixed(1)} s after the last step was signed (3 intervals = ${3 * ROLLOUT_INTERVAL} s)`,
    );
    reportResult({
      work: `fleet-pull: rollout 1,10,100 to 99% of ${HOSTS} hosts (poll ${ROLLOUT_INTERVAL} s)`,
      shipkit: Number(total.toFixed(1)),
      peer: null,
      unit: 's',
      goal: `99% within 3 polls (${3 * ROLLOUT_INTERVAL} s) of the last step`,
      met: good.exitCode === 0 ? after <= 3 * ROLLOUT_INTERVAL : false,
      note: `exit ${good.exitCode}; ${after.toFixed(1)} s after the last step; --wait 5`,
    });

    const before = sim.stats().results.rolled_back ?? 0;
    const bad = await rollout(hook, sim, '1.2', ['--max-failures', '0', '--rollback']);
    await new Promise((resolve) => setTimeout(resolve, ROLLOUT_INTERVAL * 1500)); // the rollback VERSION reaches everyone
    const touched = nginx.requests().filter((r) => r.path === `/${APP}-gnu-linux-1.2.tar.gz`).length;
    const s = await sim.fresh();
    const halted = bad.exitCode === 1 && /step 1\/3 \(ROLLOUT 1\): halted/.test(bad.stdout);
    console.log(
      `  bad release: exit ${bad.exitCode}, ${halted ? 'halted at step 1' : 'NOT halted at step 1'}; ${touched} hosts downloaded 1.2 (${((touched / HOSTS) * 100).toFixed(2)}%), ${(s.results.rolled_back ?? 0) - before} reported rolled_back; versions now ${JSON.stringify(s.versions)}`,
    );
    reportResult({
      work: `fleet-pull: bad release halted at step 1 (${HOSTS} hosts)`,
      shipkit: Number(((touched / HOSTS) * 100).toFixed(2)),
      peer: null,
      unit: '% hosts touched',
      goal: 'halt at step 1, ≤ 1%',
      met: halted && touched <= HOSTS * 0.01,
      note: `${touched} hosts; exit ${bad.exitCode}`,
    });
  } finally {
    await sim.stop();
  }
}

type LoadRun = {
  accepted: number;
  answers: Record<string, number>;
  errors: number;
  rate: number;
  p50: number;
  p99: number;
};

/** One pass of bench/fleet-pull-load.ts in its own process: closed (as fast as answered) or open at `rate`/s. */
async function loadRun(hook: string, rate: number): Promise<LoadRun> {
  const r = await $({
    cwd: ROOT,
  })`${process.execPath} --import tsx ${path.join(ROOT, 'bench/fleet-pull-load.ts')} ${hook} ${APP} ${secretFile} ${REPORT_SECONDS} ${CONCURRENCY} ${HOSTS} ${rate}`;
  const run = JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadRun;
  const how = rate ? `open load of ${rate}/s` : `${CONCURRENCY} clients as fast as answered`;
  console.log(
    `reports, ${how}: ${run.accepted} accepted in ${REPORT_SECONDS} s: ${run.rate.toFixed(0)}/s, p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms; answers ${JSON.stringify(run.answers)}, errors ${run.errors}`,
  );
  return run;
}

/**
 * Row 3: the most reports a second hook-server takes (closed load), and the p99 of an open load at
 * the goal's 2,000 reports a second (latency from when each was due), passes alternated.
 */
async function reports(hook: string): Promise<void> {
  const closed: LoadRun[] = [];
  const open: LoadRun[] = [];
  for (let i = 0; i < (args.quick ? 1 : 3); i++) {
    closed.push(await loadRun(hook, 0));
    open.push(await loadRun(hook, 2000));
  }
  const clean = [...closed, ...open].every(
    (r) => r.errors === 0 && r.accepted === Object.values(r.answers).reduce((a, b) => a + b, 0),
  );
  const rate = median(closed.map((r) => r.rate));
  const p99 = median(open.map((r) => r.p99));
  reportResult({
    work: 'fleet-pull: signed reports hook-server accepts',
    shipkit: Number(rate.toFixed(0)),
    peer: null,
    unit: 'reports/s',
    goal: '≥ 2000/s',
    met: clean && rate >= 2000,
    note: `median of ${closed.length}; ${CONCURRENCY} clients in their own process${clean ? '' : '; some refused or failed'}`,
  });
  reportResult({
    work: 'fleet-pull: report p99 at 2,000 reports/s',
    shipkit: Number(p99.toFixed(1)),
    peer: null,
    unit: 'ms',
    goal: '< 50 ms',
    met: clean && p99 < 50,
    note: `median of ${open.length} open-load runs (from when each was due); closed load p99 ${median(closed.map((r) => r.p99)).toFixed(1)} ms`,
  });
}

console.log(
  `machine: ${os.cpus().length} cores, load average ${load()}, node ${process.version}; shipkit: node ${path.relative(ROOT, BUNDLE)}`,
);
await publish('1.0');
const nginx = await startUpdateNginx(dest);
const hook = await startHookServer();
try {
  if (!args.only || args.only === 'idle') await idle(nginx, hook.url);
  if (!args.only || args.only === 'rollout') await rollouts(nginx, hook.url);
  if (!args.only || args.only === 'reports') await reports(hook.url);
} finally {
  hook.stop();
  await nginx.stop();
}
console.log(`load average at the end: ${load()}`);
