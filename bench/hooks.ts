// Benchmark of hook-server against Debian's `webhook` (adnanh/webhook 2.8), in the same run:
//   throughput: signed GitHub push deliveries with autocannon (keep-alive, N connections)
//               against hook-server (journal fsynced before every 202, job runs /bin/true) and
//               webhook (same HMAC rule, runs /bin/true); req/s, p99 latency and the ratio.
//   flood:      50 clients each send a 25 MB body with a bad signature at the same time; the
//               peak resident memory (VmHWM) of each server, and what each client was answered.
//   npm run bench:hooks [-- --connections 50 --duration 10 --rounds 3 --flood 50 --flood-mb 25 --cpu-prof DIR] [--bundle FILE]
//       [--workers N|auto (hook-server's workers:)] [--hog N (N × `yes` beside both sides under load)]
//       [--one-session]
// Each server, and the hogs together, run in a session of their own (setsid), as a service
// manager runs daemons: where the kernel shares CPU out by session (autogroup) or by service
// (systemd's cgroups), a server's share then does not depend on how many threads it runs.
// --one-session keeps them all in the bench's session, where CPU goes out by thread: hook-server's
// one thread against webhook's several (Go), the hogs and autocannon (the setup to 26 Nov).
// hook-server runs as shipped: the one file dist/shipkit.mjs (`npm run bundle` first; built here
// when missing) under plain node. Each round loads both servers, the side that goes first
// alternating; the table gives medians over the rounds and the ratios against the goal
// (throughput ≥ 1.2× webhook, p99 ≤ 1.0×). --cpu-prof DIR starts hook-server with
// `node --cpu-prof --cpu-prof-dir DIR` (one profile per round, written when it stops). --bundle
// FILE runs another one file (one built from an older commit, to compare). Besides req/s (which
// a loaded machine moves a lot), each server's CPU per 1,000 acknowledged deliveries is measured
// from /proc: the server and every process under it (hook-server's job-starting helper and the
// jobs it reaped; webhook's reaped /bin/true), which the load average moves much less.
// Prints BENCH-RESULT rows (bench/result.ts) for `npm run bench`.
// webhook is skipped (with a note) when it is not installed: apt-get install webhook.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { accepting } from './ports.ts';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { sign } from '@octokit/webhooks-methods';
import { reportResult } from './result.ts';
import { shippedShipkit } from './shipped.ts';
import { writeHooksFile } from './webhook-peer.ts';

const args = minimist(process.argv.slice(2), {
  string: ['connections', 'duration', 'flood', 'flood-mb', 'rounds', 'cpu-prof', 'bundle', 'workers', 'hog'],
  boolean: ['one-session'],
});
/** Servers and hogs in sessions of their own (false: all in the bench's session). */
const SESSIONS = !args['one-session'];
/** hook-server's `workers:` (absent: the config has none, one process). */
const WORKERS = args.workers === undefined ? undefined : String(args.workers);
/** CPU hogs (`yes >/dev/null`) running beside both sides while they are loaded. */
const HOG = Number(args.hog ?? 0);
const ROUNDS = Number(args.rounds ?? 3);
const CONNECTIONS = Number(args.connections ?? 50);
const DURATION = Number(args.duration ?? 10);
const FLOOD = Number(args.flood ?? 50);
const FLOOD_MB = Number(args['flood-mb'] ?? 25);
const ROOT = path.resolve(import.meta.dirname, '..');
// The one file as shipped: --bundle FILE, else `npm run bench`'s (SHIPKIT_BENCH_BUNDLE), else a private build.
const BUNDLE = path.resolve(args.bundle ?? shippedShipkit());
if (!existsSync(BUNDLE)) throw new Error(`no such file: ${BUNDLE}`);
const SECRET = randomUUID();
const work = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-hooks-'));
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

const examples = JSON.parse(
  readFileSync(path.join(ROOT, 'node_modules/@octokit/webhooks-examples/api.github.com/index.json'), 'utf8'),
) as Array<{ name: string; examples: any[] }>;
const push = structuredClone(
  examples.find((e) => e.name === 'push')!.examples.find((e) => String(e.ref).startsWith('refs/heads/')),
);
push.ref = 'refs/heads/main';
push.repository.full_name = 'bench/site';
const BODY = JSON.stringify(push);
const SIGNATURE = await sign(SECRET, BODY);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited:\n${output()}`);
    if (await accepting(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not listen on ${port}:\n${output()}`);
}

// Server output goes to a file: reading it through a pipe would load the process that also
// runs autocannon, and measure the harness instead of the server.
function start(
  cmd: string,
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; output: () => string } {
  const logFile = path.join(work, `${path.basename(cmd)}-${children.length}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawn(cmd, argv, {
    cwd: work,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', fd, fd],
    detached: SESSIONS,
  });
  closeSync(fd);
  children.push(child);
  return { child, output: () => readFileSync(logFile, 'utf8').slice(-5_000) };
}

async function startHookServer(port: number) {
  // A fresh data folder each round: every round starts from an empty journal.
  const data = path.join(work, `hook-data-${children.length}`);
  const config = path.join(work, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `data: ${data}`,
      'secret: env:BENCH_SECRET',
      'concurrency: 1',
      ...(WORKERS ? [`workers: ${WORKERS}`] : []),
      'repos:',
      '  bench/site:',
      '    branch: main',
      '',
    ].join('\n'),
  );
  const prof = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(args['cpu-prof'])] : [];
  const server = start(process.execPath, [...prof, BUNDLE, 'hook-server', '--config', config], {
    BENCH_SECRET: SECRET,
    SHIPKIT_BUILD_COMMAND: '/bin/true',
    SHIPKIT_RELEASE_COMMAND: '/bin/true',
    LOG_FORMAT: 'json',
  });
  await waitForPort(port, server.child, server.output);
  return { ...server, url: `http://127.0.0.1:${port}/hooks/github` };
}

async function startWebhook(port: number) {
  const hooks = writeHooksFile(work, SECRET);
  const server = start('webhook', ['-hooks', hooks, '-ip', '127.0.0.1', '-port', String(port)]);
  await waitForPort(port, server.child, server.output);
  return { ...server, url: `http://127.0.0.1:${port}/hooks/site` };
}

interface Load {
  rps: number;
  p99: number;
  p50: number;
  non2xx: number;
  errors: number;
  total: number;
  cpuPerK?: number;
}

const TICK_MS = 1000 / (Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100);

/** CPU ms used so far by `pid` and every process under it (their own, and that of the children they reaped). */
function treeCpuMs(pid: number): number {
  return [...cpuByRole(pid).values()].reduce((a, b) => a + b, 0);
}

/**
 * The same, by role: the server's own process, its delivery workers (started with
 * SHIPKIT_DELIVERY_WORKER=1), and the rest under it (hook-server's job-starting helper and its
 * jobs; webhook's /bin/true).
 */
function cpuByRole(pid: number): Map<string, number> {
  const roles = new Map<string, number>();
  const visit = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
      const worker = p !== pid && readFileSync(`/proc/${p}/environ`, 'latin1').includes('SHIPKIT_DELIVERY_WORKER=1');
      const role = p === pid ? 'server' : worker ? 'workers' : 'helper and jobs';
      roles.set(role, (roles.get(role) ?? 0) + ticks * TICK_MS);
      for (const task of readdirSync(`/proc/${p}/task`)) {
        for (const child of readFileSync(`/proc/${p}/task/${task}/children`, 'latin1').split(' ').filter(Boolean))
          visit(Number(child));
      }
    } catch {
      /* gone meanwhile */
    }
  };
  visit(pid);
  return roles;
}

async function load(url: string): Promise<Load> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: any };
  const result = await new Promise<any>((resolve, reject) => {
    autocannon(
      {
        // A fresh connection every 500 requests, on both sides: hook-server closes a keep-alive
        // connection after 1,000 requests (maxRequestsPerSocket), and autocannon, which does not
        // reconnect on its own, then got Node's quick 503s, which counted as throughput.
        url,
        method: 'POST',
        connections: CONNECTIONS,
        duration: DURATION,
        body: BODY,
        reconnectRate: 500,
        headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': SIGNATURE },
        // A fresh delivery id each time, as a forge sends (hook-server would dedupe repeats).
        requests: [
          { setupRequest: (req: any) => ({ ...req, headers: { ...req.headers, 'x-github-delivery': randomUUID() } }) },
        ],
      },
      (error: Error | null, res: any) => (error ? reject(error) : resolve(res)),
    );
  });
  // Deliveries acknowledged (2xx) per second: an answer that refused one is not throughput.
  return {
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    total: result['2xx'],
  };
}

/** The peak resident memory (VmHWM) of `pid` plus that of every process under it (delivery workers), MB. */
function peakRssMb(pid: number): number {
  let kb = 0;
  const visit = (p: number) => {
    try {
      kb += Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]);
      for (const task of readdirSync(`/proc/${p}/task`))
        for (const child of readFileSync(`/proc/${p}/task/${task}/children`, 'latin1').split(' ').filter(Boolean))
          visit(Number(child));
    } catch {
      /* gone meanwhile */
    }
  };
  visit(pid);
  return kb / 1024;
}

/** HOG processes that use a core each, until stopped. */
function startHogs(): () => void {
  if (SESSIONS && HOG) {
    // One session for all of them, as one command (`stress-ng --cpu 2`) would have.
    const group = spawn('sh', ['-c', `${'yes >/dev/null & '.repeat(HOG)}wait`], { stdio: 'ignore', detached: true });
    return () => process.kill(-group.pid!, 'SIGKILL');
  }
  const hogs = Array.from({ length: HOG }, () => spawn('yes', [], { stdio: ['ignore', 'ignore', 'ignore'] }));
  return () => {
    for (const hog of hogs) hog.kill('SIGKILL');
  };
}

/** FLOOD clients at once, each POSTing FLOOD_MB of JSON-ish bytes with a wrong signature. */
async function flood(url: string): Promise<Record<string, number>> {
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  const target = new URL(url);
  const outcomes = await Promise.all(
    Array.from(
      { length: FLOOD },
      () =>
        new Promise<string>((resolve) => {
          const req = http.request(
            {
              host: target.hostname,
              port: target.port,
              path: target.pathname,
              method: 'POST',
              headers: {
                'Content-Type': 'application/json',
                'X-GitHub-Event': 'push',
                'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}`,
                'Content-Length': FLOOD_MB * 1024 * 1024,
              },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve(String(res.statusCode)));
            },
          );
          req.on('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? 'error'));
          let sent = 0;
          const pump = () => {
            while (sent < FLOOD_MB) {
              sent++;
              if (!req.write(chunk)) return void req.once('drain', pump);
            }
            req.end();
          };
          pump();
        }),
    ),
  );
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}

const haveWebhook = spawnSync('webhook', ['-version']).status === 0;
if (!haveWebhook) console.log('webhook is not installed (apt-get install webhook): only hook-server is measured.');
type Name = 'hook-server' | 'webhook';
const runs: Record<Name, Array<{ load: Load; idleMb: number; floodMb?: number; flood?: Record<string, number> }>> = {
  'hook-server': [],
  webhook: [],
};

async function measure(name: Name, round: number): Promise<void> {
  const port = await freePort();
  const server = name === 'hook-server' ? await startHookServer(port) : await startWebhook(port);
  // Warm up (JIT, first fsyncs), then measure.
  const check = await fetch(server.url, {
    method: 'POST',
    body: BODY,
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-hub-signature-256': SIGNATURE,
      'x-github-delivery': randomUUID(),
    },
  });
  if (check.status >= 300) throw new Error(`${name} refused a signed delivery: ${check.status} ${await check.text()}`);
  process.stderr.write(`round ${round + 1}/${ROUNDS}, ${name}: ${CONNECTIONS} connections for ${DURATION} s...\n`);
  const stopHogs = startHogs();
  const rolesBefore = cpuByRole(server.child.pid!);
  const cpuBefore = treeCpuMs(server.child.pid!);
  const measured = await load(server.url).finally(stopHogs);
  measured.cpuPerK = (treeCpuMs(server.child.pid!) - cpuBefore) / (measured.total / 1000);
  const split = [...cpuByRole(server.child.pid!)].map(
    ([role, ms]) => `${role} ${Math.round((ms - (rolesBefore.get(role) ?? 0)) / (measured.total / 1000))}`,
  );
  process.stderr.write(`  CPU ms per 1,000 deliveries by process: ${split.join(', ')}\n`);
  const idleMb = peakRssMb(server.child.pid!);
  process.stderr.write(
    `  ${Math.round(measured.rps)} req/s, p99 ${measured.p99} ms, ${Math.round(measured.cpuPerK)} ms CPU per 1,000 deliveries\n`,
  );
  const run: (typeof runs)[Name][number] = { load: measured, idleMb };
  // The flood once per server, in the last round (it leaves the server's peak memory behind).
  if (round === ROUNDS - 1 && FLOOD > 0) {
    process.stderr.write(`${name}: ${FLOOD} clients × ${FLOOD_MB} MB with a bad signature...\n`);
    run.flood = await flood(server.url);
    run.floodMb = peakRssMb(server.child.pid!);
  }
  runs[name].push(run);
  server.child.kill('SIGTERM');
  await new Promise((r) => server.child.once('exit', r));
}

for (let round = 0; round < ROUNDS; round++) {
  const order: Name[] = haveWebhook
    ? round % 2 === 0
      ? ['hook-server', 'webhook']
      : ['webhook', 'hook-server']
    : ['hook-server'];
  for (const name of order) await measure(name, round);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (n: number, digits = 0) => n.toFixed(digits);
console.log(
  `\nSigned push deliveries, ${CONNECTIONS} connections, ${DURATION} s (autocannon), ${ROUNDS} rounds, sides alternated; then ${FLOOD} × ${FLOOD_MB} MB bad-signature bodies at once.`,
);
console.log(
  `machine: ${os.cpus().length} cores, load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(
      ' ',
    )}, node ${process.version}; hook-server: node ${path.relative(ROOT, BUNDLE)}, workers: ${WORKERS ?? '(none: one process)'}; CPU hogs beside each side under load: ${HOG ? `${HOG} × yes >/dev/null` : 'none'}; ${SESSIONS ? 'servers and hogs each in a session of their own' : "all in the bench's session (--one-session)"}\n`,
);
console.log(
  '| server | req/s (median; each round) | p50 ms | p99 ms (median; each round) | CPU ms per 1,000 deliveries (median) | non-2xx | errors | peak RSS after load (MB) | peak RSS after flood (MB) | flood answers |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
const summary = (name: Name) => {
  const list = runs[name];
  const last = list[list.length - 1];
  return {
    rps: median(list.map((r) => r.load.rps)),
    p50: median(list.map((r) => r.load.p50)),
    p99: median(list.map((r) => r.load.p99)),
    cpu: median(list.map((r) => r.load.cpuPerK ?? 0)),
    refused: list.reduce((n, r) => n + r.load.non2xx + r.load.errors, 0),
    row: `| ${name} | ${fmt(median(list.map((r) => r.load.rps)))} (${list.map((r) => fmt(r.load.rps)).join(', ')}) | ${fmt(median(list.map((r) => r.load.p50)))} | ${fmt(median(list.map((r) => r.load.p99)))} (${list.map((r) => fmt(r.load.p99)).join(', ')}) | ${fmt(median(list.map((r) => r.load.cpuPerK ?? 0)))} | ${list.reduce((n, r) => n + r.load.non2xx, 0)} | ${list.reduce((n, r) => n + r.load.errors, 0)} | ${fmt(median(list.map((r) => r.idleMb)))} | ${last?.floodMb === undefined ? '-' : fmt(last.floodMb)} | ${
      last?.flood
        ? Object.entries(last.flood)
            .map(([k, v]) => `${k}×${v}`)
            .join(' ')
        : '-'
    } |`,
  };
};
const ours = summary('hook-server');
console.log(ours.row);
if (haveWebhook) {
  const theirs = summary('webhook');
  console.log(theirs.row);
  const rate = ours.rps / theirs.rps;
  const p99 = ours.p99 / Math.max(1, theirs.p99);
  console.log(
    `\nthroughput hook-server / webhook (medians): ${rate.toFixed(2)}× (goal ≥ 1.2×: ${rate >= 1.2 ? 'met' : 'not met'})`,
  );
  console.log(`p99 hook-server / webhook (medians): ${p99.toFixed(2)}× (goal ≤ 1.0×: ${p99 <= 1 ? 'met' : 'not met'})`);
  console.log(`CPU per delivery hook-server / webhook (medians): ${(ours.cpu / theirs.cpu).toFixed(2)}×`);
  const note = `medians of ${ROUNDS} interleaved rounds × ${DURATION} s, ${CONNECTIONS} connections (autocannon in the bench's own process, a new connection every 500 requests)${HOG ? `; ${HOG} CPU hogs beside` : ''}; ${SESSIONS ? 'servers and hogs each in a session of their own' : 'all in one session'}; 2xx only; non-2xx or errors ${ours.refused} vs ${theirs.refused}; CPU per 1,000 deliveries ${fmt(ours.cpu)} vs ${fmt(theirs.cpu)} ms`;
  // A side that refused deliveries has not met a throughput goal, whatever its rate.
  reportResult({
    work: `signed deliveries acked/s, ${CONNECTIONS} conns`,
    shipkit: Math.round(ours.rps),
    peer: Math.round(theirs.rps),
    unit: 'req/s',
    goal: '≥ 1.2×',
    met: rate >= 1.2 && ours.refused === 0,
    note,
  });
  reportResult({
    work: `signed deliveries p99, ${CONNECTIONS} conns`,
    shipkit: ours.p99,
    peer: theirs.p99,
    unit: 'ms',
    ratio: p99,
    goal: '≤ 1.0×',
    met: p99 <= 1,
    note,
  });
  const ourFlood = runs['hook-server'].at(-1)?.floodMb;
  const theirFlood = runs.webhook.at(-1)?.floodMb;
  if (ourFlood !== undefined && theirFlood !== undefined)
    console.log(`flood peak memory hook-server / webhook: ${(ourFlood / theirFlood).toFixed(3)}×`);
}
process.exit(0);
