// `npm run bench:zero-downtime`: updates under load, launchfit as shipped (the
// one file) against pm2 cluster reload with 2 instances, the same app (bench/zero-downtime-app.cjs)
// and the same load (bench/zero-downtime-client.cjs, a process of its own: CONNECTIONS loops over
// one keep-alive agent at RATE requests/s). Each round runs both sides, the first side alternating:
//   steady state (4 s after 2 s of warm-up, and 4 s more after the updates); 3 updates, each a
//   window from the update's request until the new version answers and 0.5 s more; launchfit:
//   then kill -9 of `launchfit run` and its restart, a window from the kill until the restarted
//   one is ready and 1 s more.
// Rows (BENCH-RESULT, medians over the rounds): failed requests during the 3 updates (goal 0),
// p99 during the updates / steady p99 (goal ≤ 1.3×; peer: pm2's same ratio), refused connections
// across the kill -9 + restart (goal 0).
// The host and its clients on CPUs of their own, as on separate machines: the side (launchfit or
// pm2, and the apps they run) on the first CPU this bench may use, a one-CPU host; this process
// (the update server, the publishing) and the load generator on the others. Sharing every CPU,
// the generator's own waits for a CPU that the update's work holds were counted as the app's
// latency. `--shared-cpus`: every process on every CPU, as before.
//   npm run bench:zero-downtime [-- --runs N] [--rate R (0: unthrottled)] [--connections C] [--app FILE]
//     [--only launchfit|pm2] (one side: to look at it, not for the goal's ratio) [--client-nice N]
//     [--shared-cpus]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { requestOverSocket } from '../lib/launchfit/control/socket.ts';
import { askApp, killProcessesOf, makeWorld, type World } from '../test/fixtures/launchfit/world.ts';
import { freePort, tmpDir, waitFor } from '../test/_helpers/common.ts';
import { installPm2, usePm2, PM2_VERSION } from './pm2.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const CLIENT = path.join(import.meta.dirname, 'zero-downtime-client.cjs');
const UPDATES = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

function argOf(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const RUNS = argOf('runs', 5);
const RATE = argOf('rate', 1000);
const CONNECTIONS = argOf('connections', 200);
/** p99 during the updates over steady p99 (the goal: 5 rounds, 200 connections; it was 2×). */
const GOAL = 1.3;
/** `--app FILE`: another app to update (e.g. one that drains differently); the app of both sides. */
const APP_FILE = process.argv.includes('--app')
  ? path.resolve(process.argv[process.argv.indexOf('--app') + 1])
  : path.join(import.meta.dirname, 'zero-downtime-app.cjs');
const APP = readFileSync(APP_FILE, 'utf8');
/**
 * `--client-nice N` (e.g. -10): the load generator raised above both sides, so that what it
 * measures leaves out its own waits for a CPU that the update's work holds (clients elsewhere).
 */
const CLIENT_NICE = process.argv.includes('--client-nice')
  ? process.argv[process.argv.indexOf('--client-nice') + 1]
  : undefined;
if (CLIENT_NICE !== undefined && !/^-?\d+$/.test(CLIENT_NICE))
  throw new Error(`--client-nice takes a nice value, -20 to 19, not ${JSON.stringify(CLIENT_NICE)}`);
/**
 * The command every process of a side's host starts under (`taskset -c FIRST`, the first CPU this
 * process may run on), after this process moved itself (and so the load generator it starts) to
 * the others; [] with --shared-cpus; and the placement as the result row says it. The CPUs are
 * read from /proc/self/status, not counted from 0: a container may be given any of the machine's.
 */
const { host: HOST, placement: PLACEMENT } = pinHost();

function pinHost(): { host: string[]; placement: string } {
  if (process.argv.includes('--shared-cpus'))
    return { host: [], placement: 'every process on every CPU (--shared-cpus)' };
  const listed = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1] ?? '';
  const cpus = listed.split(',').flatMap((range) => {
    const [from, to = from] = range.split('-').map(Number);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
  if (cpus.length < 2)
    throw new Error(
      `the host and its clients need a CPU each; this process may use ${listed || 'one'}: use --shared-cpus`,
    );
  const clients = cpus.slice(1).join(',');
  const moved = spawnSync('taskset', ['-a', '-p', '-c', clients, String(process.pid)], { encoding: 'utf8' });
  if (moved.error || moved.status !== 0)
    throw new Error(
      `taskset (util-linux) could not pin this process: ${moved.error?.message ?? moved.stderr.trim()}; install util-linux or use --shared-cpus`,
    );
  return {
    host: ['taskset', '-c', String(cpus[0])],
    placement: `each side's host on CPU ${cpus[0]}, this process and the generator on CPU ${clients}`,
  };
}
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
if (ONLY !== undefined && ONLY !== 'launchfit' && ONLY !== 'pm2') throw new Error('--only takes launchfit or pm2');

interface Window {
  from: number;
  to: number;
}
interface Stats {
  requests: number;
  failed: number;
  refused: number;
  kinds: Record<string, number>;
  p99Ms: number;
}
interface SideRun {
  steady: Stats;
  updates: Stats;
  restart?: Stats;
}

/** The load generator in its own process; stop() returns every request it made. */
async function startClient(port: number): Promise<{ stop(): Promise<{ kinds: string[]; rec: number[] }> }> {
  const out = path.join(tmpDir('shipkit-bench-zd-client-'), 'requests.json');
  // --client-nice N: the load generator in a session of its own at nice N (and its autogroup's).
  const nice = CLIENT_NICE;
  const argv = [process.execPath, CLIENT, String(port), String(CONNECTIONS), String(RATE), out];
  const child = nice
    ? spawn('nice', ['-n', nice, ...argv], { stdio: ['pipe', 'pipe', 'inherit'], detached: true })
    : spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  if (nice) {
    try {
      writeFileSync(`/proc/${child.pid}/autogroup`, nice);
    } catch (error) {
      child.kill();
      throw new Error(
        `--client-nice ${nice}: could not set the generator's autogroup (root needed to raise): ${error}`,
      );
    }
  }
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the load generator exited ${code}`)));
  });
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.write('stop\n');
      await exited;
      return JSON.parse(readFileSync(out, 'utf8'));
    },
  };
}

/** Requests that started inside any of the windows. */
function statsOf(data: { kinds: string[]; rec: number[] }, windows: Window[]): Stats {
  const lat: number[] = [];
  const kinds: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < data.rec.length; i += 3) {
    const t = data.rec[i];
    if (!windows.some((w) => t >= w.from && t < w.to)) continue;
    lat.push(data.rec[i + 1]);
    const kind = data.kinds[data.rec[i + 2]];
    if (kind !== 'ok') {
      failed++;
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
  }
  lat.sort((a, b) => a - b);
  return {
    requests: lat.length,
    failed,
    refused: kinds.ECONNREFUSED ?? 0,
    kinds,
    p99Ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] ?? NaN,
  };
}

interface Side {
  name: string;
  port: number;
  /** Before the load: the first version serving. */
  setUp(): Promise<void>;
  /** Work that is not the update (publishing), then the update itself. */
  prepare(i: number): Promise<void>;
  update(i: number): Promise<void>;
  version(i: number): string;
  restart?(): Promise<void>;
  tearDown(): Promise<void>;
  /** What the side logged (launchfit's JSON lines), for BENCH_ZD_TRACE. */
  output?(): string;
}

/** Steady state, the updates and (launchfit) the restart, under one load generator. */
async function runSide(side: Side): Promise<SideRun> {
  await side.setUp();
  const client = await startClient(side.port);
  try {
    await sleep(2000);
    const steady = [{ from: Date.now(), to: 0 }];
    await sleep(4000);
    steady[0].to = Date.now();
    const updates: Window[] = [];
    for (let i = 1; i <= UPDATES; i++) {
      await side.prepare(i);
      await sleep(1000);
      const w = { from: Date.now(), to: 0 };
      await side.update(i);
      await waitFor(async () => (await askApp(side.port, 1000))?.startsWith(`${side.version(i)} `), {
        what: `${side.name}: version ${side.version(i)}`,
        timeoutMs: 30_000,
      });
      await sleep(500);
      w.to = Date.now();
      updates.push(w);
    }
    // Steady state once more, after the updates: the first window follows the start closely.
    await sleep(1000);
    const after = { from: Date.now(), to: 0 };
    await sleep(4000);
    after.to = Date.now();
    steady.push(after);
    let restart: Window | undefined;
    if (side.restart) {
      await sleep(1000);
      restart = { from: Date.now(), to: 0 };
      await side.restart();
      await sleep(1000);
      restart.to = Date.now();
    }
    await sleep(500);
    const data = await client.stop();
    // BENCH_ZD_TRACE=DIR: every request, the windows and launchfit's log, to see where slow answers fall.
    if (process.env.BENCH_ZD_TRACE) {
      mkdirSync(process.env.BENCH_ZD_TRACE, { recursive: true });
      writeFileSync(
        path.join(process.env.BENCH_ZD_TRACE, `${side.name}-${Date.now()}.json`),
        JSON.stringify({ steady, updates, restart, data, log: side.output?.() }),
      );
    }
    return {
      steady: statsOf(data, steady),
      updates: statsOf(data, updates),
      restart: restart && statsOf(data, [restart]),
    };
  } finally {
    await side.tearDown();
  }
}

/**
 * `launchfit run` from the one file; resolves once it says it is ready. In a session of its own,
 * as a service manager starts it (and as pm2 runs its daemon): where the kernel shares CPU out
 * by session (autogroup), launchfit's work then weighs against the app's, not against the load
 * generator's, which this process's session holds.
 */
async function startShipped(deploy: string, logged: string[] = []): Promise<ChildProcess> {
  const [cmd, ...args] = [...HOST, ...shippedArgv('launchfit')];
  const child = spawn(cmd, [...args, 'run', '--dir', deploy], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => {
    out = (out + d).slice(-20_000);
    if (process.env.BENCH_ZD_TRACE) logged.push(`@${Date.now()} ${String(d)}`);
  });
  await waitFor(() => out.includes('launchfit ready') || child.exitCode !== null, {
    what: `launchfit run:\n${out}`,
    timeoutMs: 60_000,
  });
  if (child.exitCode !== null) throw new Error(`launchfit run exited ${child.exitCode}:\n${out}`);
  return child;
}

async function runShipped(args: string[]): Promise<void> {
  const [cmd, ...pre] = [...HOST, ...shippedArgv('launchfit')];
  const child = spawn(cmd, [...pre, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`launchfit ${args.join(' ')} exited ${code}:\n${err}`);
}

function launchfitSide(): Side {
  let w: World;
  let lf: ChildProcess | undefined;
  const logged: string[] = [];
  const yml = 'app:\n  exec: node server.cjs\n  healthy_after: 2\n  kill_timeout: 5\n  forever: true\n';
  const publish = (v: string) => w.publish(v, { files: { 'server.cjs': APP }, yml });
  const side: Side = {
    name: 'launchfit',
    port: 0,
    async setUp() {
      w = await makeWorld();
      side.port = w.appPort;
      await publish('1.0');
      w.writeConfig(
        '',
        `  listen: [127.0.0.1:${w.appPort}]\n  drain: 5\n  health:\n    http: http://127.0.0.1:${w.appPort}/up\n    interval: 0.2\n    timeout: 1\n`,
      );
      await runShipped(['deploy', '--dir', w.deploy]);
      lf = await startShipped(w.deploy, logged);
      await waitFor(async () => (await askApp(w.appPort))?.startsWith('1.0 '), {
        what: 'launchfit: 1.0',
        timeoutMs: 30_000,
      });
    },
    prepare: (i) => publish(`1.${i}`),
    async update() {
      const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
      const action = (answer?.body.result as { action?: string } | undefined)?.action;
      if (action !== 'installed') throw new Error(`launchfit update: ${JSON.stringify(answer?.body)}`);
    },
    version: (i) => `1.${i}`,
    output: () => logged.join(''),
    async restart() {
      const exited = new Promise((r) => lf!.once('exit', r));
      lf!.kill('SIGKILL');
      await exited;
      lf = await startShipped(w.deploy, logged);
    },
    async tearDown() {
      if (lf && lf.exitCode === null && lf.signalCode === null) {
        const exited = new Promise((r) => lf!.once('exit', r));
        lf.kill('SIGTERM');
        await Promise.race([exited, sleep(20_000)]);
      }
      killProcessesOf(w.deploy);
      await w.server.close();
    },
  };
  return side;
}

function pm2Side(bin: string): Side {
  const base = tmpDir('shipkit-bench-pm2-');
  const app = path.join(base, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'server.cjs'), APP);
  const pm2 = usePm2(bin, path.join(base, 'home'), HOST);
  const side: Side = {
    name: 'pm2',
    port: 0,
    async setUp() {
      writeFileSync(path.join(app, 'version.txt'), '2.0\n');
      side.port = await freePort();
      await pm2.start({
        name: 'bench',
        script: path.join(app, 'server.cjs'),
        cwd: app,
        mode: 'cluster',
        instances: 2,
        env: { PORT: String(side.port) },
      });
      await waitFor(async () => (await askApp(side.port))?.startsWith('2.0 '), { what: 'pm2: 2.0', timeoutMs: 30_000 });
    },
    prepare: async (i) => writeFileSync(path.join(app, 'version.txt'), `2.${i}\n`),
    update: () => pm2.reload('bench'),
    version: (i) => `2.${i}`,
    tearDown: () => pm2.kill(),
  };
  return side;
}

const fmt = (s: Stats) =>
  `${s.requests} requests, ${s.failed} failed${
    s.failed
      ? ` (${Object.entries(s.kinds)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ')})`
      : ''
  }, p99 ${s.p99Ms.toFixed(1)} ms`;

async function main(): Promise<void> {
  const bin = await installPm2(log);
  shippedArgv('launchfit'); // build the one file before the first round
  const load: string[] = [loadAverage()];
  const lf: SideRun[] = [];
  const pm: SideRun[] = [];
  for (let r = 0; r < RUNS; r++) {
    const order = (r % 2 === 0 ? ['launchfit', 'pm2'] : ['pm2', 'launchfit']).filter((n) => !ONLY || n === ONLY);
    for (const name of order) {
      const run = await runSide(name === 'launchfit' ? launchfitSide() : pm2Side(bin));
      (name === 'launchfit' ? lf : pm).push(run);
      log(
        `round ${r + 1} ${name}: steady ${fmt(run.steady)}; ${UPDATES} updates ${fmt(run.updates)}${run.restart ? `; kill -9 + restart ${fmt(run.restart)}` : ''}; load ${loadAverage()}`,
      );
    }
    load.push(loadAverage());
  }
  const ratio = (x: SideRun) => x.updates.p99Ms / x.steady.p99Ms;
  const note = `median of ${RUNS} rounds, sides alternated;${process.argv.includes('--app') ? ` app ${APP_FILE};` : ''} ${CONNECTIONS} loops over one keep-alive agent at ${RATE || 'unthrottled'} req/s from a process of its own${CLIENT_NICE ? ` at nice ${CLIENT_NICE}` : ''}; ${PLACEMENT}; launchfit as shipped (one file, app.listen + health, healthy_after 2), pm2 ${PM2_VERSION} cluster mode 2 instances (wait_ready); load during the run ${load.join(' | ')}`;
  const failedLf = median(lf.map((x) => x.updates.failed));
  const failedPm = median(pm.map((x) => x.updates.failed));
  reportResult({
    work: `zero-downtime: failed requests during ${UPDATES} updates`,
    shipkit: failedLf,
    peer: failedPm,
    unit: 'requests',
    ratio: null,
    goal: '0',
    met: failedLf === 0,
    note,
  });
  const rLf = median(lf.map(ratio));
  const rPm = median(pm.map(ratio));
  reportResult({
    work: 'zero-downtime: p99 during updates / steady p99',
    shipkit: Number(rLf.toFixed(2)),
    peer: Number(rPm.toFixed(2)),
    unit: '× steady p99',
    goal: `≤ ${GOAL}× steady (pm2 cluster reload for reference)`,
    met: rLf <= GOAL,
    note: `launchfit p99 steady ${median(lf.map((x) => x.steady.p99Ms)).toFixed(1)} ms / updates ${median(lf.map((x) => x.updates.p99Ms)).toFixed(1)} ms; pm2 ${median(pm.map((x) => x.steady.p99Ms)).toFixed(1)} / ${median(pm.map((x) => x.updates.p99Ms)).toFixed(1)} ms; ${note}`,
  });
  const refused = median(lf.map((x) => x.restart!.refused));
  reportResult({
    work: 'zero-downtime: refused connections across launchfit kill -9 + restart',
    shipkit: refused,
    peer: null,
    unit: 'connections',
    goal: '0',
    met: refused === 0,
    note: `failed requests in that window (median): ${median(lf.map((x) => x.restart!.failed))}; ${note}`,
  });
}

await main();
