// npm run bench:scale — does a second hook-server add capacity? Each node (the one file, `queue:`
// on one durable PostgreSQL, building nothing) runs in a CPU cgroup of its own capped at --cpu of
// a core (0.1 by default), as small VMs would be; PostgreSQL, haproxy and autocannon run outside
// those cgroups, on what is left of the machine's cores. Signed GitHub pushes through haproxy,
// 1, 2 and 3 nodes, the order reversed every other round; medians of --rounds. Per node count:
// acks/s, p99, the nodes' CPU per ack (their cgroups' usage), PostgreSQL's, and how often the
// kernel throttled the nodes (a node at its cap is what separate machines at full load are).
// Goals (issue 58): 2 nodes ≥ 1.8× one node's acks/s, 3 nodes ≥ 2.5×, and the nodes' CPU per ack
// at 3 nodes ≤ 1.2× at 1.
// Then (bench/scale-hosts.ts) --hosts simulated hosts (100,000) polling every --interval s (60)
// against 3 nodes behind haproxy and a rollout 1,10,50,100 % to all of them (--only capacity|hosts).
//   npm run bench:scale [-- --rounds 3 --seconds 8 --warmup 4 --connections 50 [--fixed] --cpu 0.1 --period-ms 100 --repos 1]
//                       [--hosts 100000 --interval 60 [--seeded]] [--only capacity|hosts] [--statements]
//   HA_CPU_PROF=DIR: each capacity node writes a V8 CPU profile there; count its samples, do not
//   add their times (a sample of a throttled node spans the periods it was held).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import pg from 'pg';
import { startHaproxy } from '../test/fixtures/haproxy.ts';
import { startPostgres } from '../test/fixtures/postgres.ts';
import { worldEnv } from '../test/fixtures/workers.ts';
import { hostsRun } from './scale-hosts.ts';
import {
  cpuSpent,
  ONE_REPO,
  postgresCpu,
  processCpu,
  profileFlags,
  signedLoad,
  startHookNode,
  stopHookNode,
  type HookNode,
} from './ha-load.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedShipkit } from './shipped.ts';

const args = minimist(process.argv.slice(2), {
  string: [
    'rounds',
    'seconds',
    'warmup',
    'connections',
    'cpu',
    'repos',
    'bundle',
    'period-ms',
    'hosts',
    'interval',
    'only',
  ],
  boolean: ['fixed', 'seeded', 'statements'],
});
const ROUNDS = Number(args.rounds ?? 3);
const SECONDS = Number(args.seconds ?? 8);
const WARMUP = Number(args.warmup ?? 4);
// Connections per node, so that each node count is measured at its capacity: every node as busy
// as the one node was (its batches as full), as separate machines each with their share of the
// senders would be. --fixed: CONNECTIONS in all, whatever the node count (the nodes then idle).
const CONNECTIONS = Number(args.connections ?? 50);
const FIXED = Boolean(args.fixed);
const STATEMENTS = Boolean(args.statements);
const connectionsFor = (count: number) => (FIXED ? CONNECTIONS : CONNECTIONS * count);
// 0.1 core: what the rest of 2 cores (PostgreSQL, haproxy, autocannon) can serve for 3 nodes at
// their caps. At 0.25 a node here acks ~1,000/s and 3 nodes were throttled in only 58 % of periods
// (28 Nov): they waited for the machine, and the ratios measured it, not the nodes.
const CPU = Number(args.cpu ?? 0.1);
const REPOS = Array.from({ length: Number(args.repos ?? 1) }, (_, i) => (i ? `octo/site-${i + 1}` : ONE_REPO[0]));
const BUNDLE = path.resolve(args.bundle ?? shippedShipkit());
const COUNTS = [1, 2, 3];
// The second part (bench/scale-hosts.ts): --hosts simulated hosts polling every --interval s.
const HOSTS = Number(args.hosts ?? 100_000);
const INTERVAL = Number(args.interval ?? 60);
const ONLY = args.only as 'capacity' | 'hosts' | undefined;
// The cgroup's period: a node at its quota is stopped for the rest of each period (75 ms of 100 at
// 0.25 core, the kernel's default period), which no small VM does; --period-ms 10 spreads the same
// share finer, nearer a slower CPU.
const PERIOD_US = Number(args['period-ms'] ?? 100) * 1000;

/** A CPU cgroup capped at CPU of a core: v2 (cpu.max) or v1's cpu hierarchy (cfs quota). */
interface CpuGroup {
  add(pid: number): void;
  /** CPU time used by the group's processes, ms. */
  usageMs(): number;
  /** Periods the kernel throttled the group in, and all periods, so far. */
  throttled(): { periods: number; throttled: number };
  remove(): void;
}

function cgroupRoot(): { version: 1 | 2; dir: string } | undefined {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return { version: 2, dir: '/sys/fs/cgroup' };
  if (existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')) return { version: 1, dir: '/sys/fs/cgroup/cpu' };
  return undefined;
}

function makeGroup(name: string): CpuGroup {
  const root = cgroupRoot()!;
  const dir = path.join(root.dir, `shipkit-bench-scale-${process.pid}-${name}`);
  mkdirSync(dir);
  const quota = Math.round(CPU * PERIOD_US);
  if (root.version === 2) writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
  else {
    writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
    writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quota));
  }
  const stat = () =>
    Object.fromEntries(
      readFileSync(path.join(dir, 'cpu.stat'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([k, v]) => [k, Number(v)]),
    );
  return {
    add: (pid) => writeFileSync(path.join(dir, 'cgroup.procs'), String(pid)),
    // v1: cpuacct is mounted apart here, so the usage is read from the processes (added before they have children).
    usageMs: () => (root.version === 2 ? stat().usage_usec / 1000 : NaN),
    throttled: () => ({ periods: stat().nr_periods, throttled: stat().nr_throttled }),
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        // a process still in it: left, named
        console.error(`could not remove the cgroup ${dir}`);
      }
    },
  };
}

function nodeCpuMs(nodes: HookNode[]): number {
  return nodes.reduce((sum, n) => sum + processCpuMs(n.child.pid!), 0);
}

/** A process's CPU time (user and system), ms; 0 once it is gone. */
const processCpuMs = (pid: number) => processCpu(pid)?.ms ?? 0;

/**
 * What PostgreSQL's sessions wait for while the load runs: pg_stat_activity sampled every 10 ms,
 * counted by wait event ('running' when a session works, 'idle' when it waits for its client).
 * The nodes' sessions only (application names other than this sampler's).
 */
function sampleWaits(url: string): { stop(): Promise<Map<string, number>> } {
  const counts = new Map<string, number>();
  const client = new pg.Client({ connectionString: url, application_name: 'bench-scale-sampler' });
  let running = true;
  const done = (async () => {
    await client.connect();
    while (running) {
      const { rows } = await client.query(
        `SELECT state, wait_event_type, wait_event FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> 'bench-scale-sampler'`,
      );
      for (const r of rows) {
        const key =
          r.state === 'active' ? (r.wait_event ? `${r.wait_event_type}:${r.wait_event}` : 'running') : r.state;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await client.end();
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return counts;
    },
  };
}

/**
 * The machine's own slowdown: a fixed unit of work like a delivery's (an HMAC of 8 KB and a JSON
 * round trip of it), done over and over by a process in a CPU cgroup of its own as capped as a
 * node. Its CPU per unit grows when the rest of the machine is busier (two vCPUs share caches and
 * cycles), which separate machines would not do: the nodes' CPU per ack is read beside it.
 */
const CANARY = `
const { createHmac } = require('node:crypto');
const body = JSON.stringify({ commits: Array.from({ length: 40 }, (_, i) => ({ id: String(i).repeat(40), message: 'x'.repeat(120) })) });
let units = 0;
setInterval(() => process.stdout.write(units + '\\n'), 50);
(function work() {
  for (let i = 0; i < 20; i++) { createHmac('sha256', 'k').update(JSON.stringify(JSON.parse(body))).digest('hex'); units++; }
  setImmediate(work);
})();`;

interface Canary {
  /** Units done and the process's CPU ms so far. */
  read(): { units: number; cpuMs: number };
  /** Killed, and gone once it resolves (its cgroup can then be removed). */
  stop(): Promise<void>;
}

function startCanary(group: CpuGroup): Canary {
  const child = spawn(process.execPath, ['-e', CANARY], { stdio: ['ignore', 'pipe', 'inherit'] });
  group.add(child.pid!);
  let units = 0;
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    const last = text.trim().split('\n').pop();
    if (last) units = Number(last);
  });
  return {
    read: () => ({ units, cpuMs: processCpuMs(child.pid!) }),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

/**
 * pg_stat_statements from now on: `print` shows the statements called most, per ack, with their
 * summed time (waits for locks included), and ends.
 */
async function statementCalls(url: string): Promise<{ print(label: string, acked: number): Promise<void> }> {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-scale-sampler' });
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await client.query('SELECT pg_stat_statements_reset()');
  return {
    async print(label, acked) {
      const { rows } = await client.query(
        `SELECT calls, total_exec_time AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 80) AS query
         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_%' ORDER BY calls DESC LIMIT 14`,
      );
      await client.end();
      console.log(`statements of ${label}, ${acked} acked: calls per ack, ms in all, the statement`);
      for (const row of rows)
        console.log(`  ${(row.calls / acked).toFixed(3)}  ${Number(row.ms).toFixed(0).padStart(6)}  ${row.query}`);
    },
  };
}

interface Round {
  waits: Map<string, number>;
  rps: number;
  p99: number;
  non2xx: number;
  nodeMs: number;
  pgMs: number;
  throttledShare: number;
  /** The canary's CPU ms per unit of work over the same seconds (startCanary). */
  canaryMs: number;
}

async function round(count: number, pgData: string, pgUrl: string, env: NodeJS.ProcessEnv): Promise<Round> {
  const nodes: HookNode[] = [];
  const groups: CpuGroup[] = [];
  let canaryGroup: CpuGroup | undefined;
  let canary: Canary | undefined;
  try {
    for (let i = 1; i <= count; i++) {
      const node = await startHookNode(`n${i}`, { bundle: BUNDLE, env, repos: REPOS, nodeFlags: profileFlags() });
      nodes.push(node);
      const group = makeGroup(`n${i}`);
      groups.push(group);
      group.add(node.child.pid!);
    }
    canary = startCanary((canaryGroup = makeGroup('canary')));
    const haproxy = (await startHaproxy(nodes))!;
    try {
      const url = `${haproxy.url}/hooks/github`;
      const connections = connectionsFor(count);
      if (WARMUP) await signedLoad(url, { repos: REPOS, seconds: WARMUP, connections });
      const [node0, pg0, th0, c0] = [
        nodeCpuMs(nodes),
        postgresCpu(pgData),
        groups.map((g) => g.throttled()),
        canary.read(),
      ];
      const calls = STATEMENTS ? await statementCalls(pgUrl) : undefined;
      const sampler = sampleWaits(pgUrl);
      const r = await signedLoad(url, { repos: REPOS, seconds: SECONDS, connections });
      const waits = await sampler.stop();
      await calls?.print(`${count} node(s)`, r.acked);
      const [node1, pg1, th1, c1] = [
        nodeCpuMs(nodes),
        postgresCpu(pgData),
        groups.map((g) => g.throttled()),
        canary.read(),
      ];
      const periods = th1.reduce((s, t, i) => s + t.periods - th0[i].periods, 0);
      const throttled = th1.reduce((s, t, i) => s + t.throttled - th0[i].throttled, 0);
      return {
        waits,
        rps: r.rps,
        p99: r.p99,
        non2xx: r.non2xx,
        nodeMs: (node1 - node0) / r.acked,
        pgMs: cpuSpent(pg0, pg1) / r.acked,
        throttledShare: periods ? throttled / periods : 0,
        canaryMs: (c1.cpuMs - c0.cpuMs) / Math.max(1, c1.units - c0.units),
      };
    } finally {
      await haproxy.stop();
    }
  } finally {
    for (const node of nodes) await stopHookNode(node);
    await canary?.stop();
    for (const group of [...groups, ...(canaryGroup ? [canaryGroup] : [])]) group.remove();
  }
}

/** The wait events as shares of the samples, largest first. */
function describeWaits(waits: Map<string, number>): string {
  const all = [...waits.values()].reduce((a, b) => a + b, 0) || 1;
  return [...waits]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([k, n]) => `${k} ${((100 * n) / all).toFixed(0)} %`)
    .join(', ');
}

function printTable(runs: Map<number, Round[]>): void {
  const med = (count: number, key: Exclude<keyof Round, 'waits'>) => median(runs.get(count)!.map((r) => r[key]));
  console.log(
    `\nbench:scale — each node capped at ${CPU} of a core (cgroup, period ${PERIOD_US / 1000} ms), PostgreSQL, haproxy and autocannon ` +
      `outside; ${FIXED ? `${CONNECTIONS} connections in all` : `${CONNECTIONS} connections per node`}, ${SECONDS} s after ${WARMUP} s not counted, ${REPOS.length} repo(s), ` +
      `medians of ${ROUNDS} (load ${loadAverage()}, ${os.cpus().length} cores)`,
  );
  console.log(
    "| nodes | acked/s | × 1 node | p99 ms | nodes' CPU ms per ack | × 1 node | PostgreSQL CPU ms per ack | periods throttled | non-2xx | canary's CPU per unit × 1 node |",
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const count of COUNTS)
    console.log(
      `| ${count} | ${med(count, 'rps').toFixed(0)} | ${(med(count, 'rps') / med(1, 'rps')).toFixed(2)}× | ${med(count, 'p99')} | ` +
        `${med(count, 'nodeMs').toFixed(3)} | ${(med(count, 'nodeMs') / med(1, 'nodeMs')).toFixed(2)}× | ` +
        `${med(count, 'pgMs').toFixed(3)} | ${(100 * med(count, 'throttledShare')).toFixed(0)} % | ` +
        `${runs.get(count)!.reduce((s, r) => s + r.non2xx, 0)} | ${(med(count, 'canaryMs') / med(1, 'canaryMs')).toFixed(2)}× |`,
    );
  // What separate machines would not share: the same work's CPU grows with the rest of this one.
  const slower = med(3, 'canaryMs') / med(1, 'canaryMs');
  console.log(
    `the canary (a delivery's HMAC and JSON in a cgroup like a node's) took ${slower.toFixed(2)}× the CPU per unit ` +
      `beside 3 nodes as beside 1: the nodes' CPU per ack at 3 over 1 is ` +
      `${(med(3, 'nodeMs') / med(1, 'nodeMs') / slower).toFixed(2)}× once that is taken out`,
  );
  if (med(3, 'throttledShare') < 0.9)
    console.log(
      `note: at 3 nodes the nodes were throttled in only ${(100 * med(3, 'throttledShare')).toFixed(0)} % of periods: ` +
        'they waited for PostgreSQL, haproxy or autocannon, so these ratios measure this machine more than the ' +
        'nodes; run with a lower --cpu.',
    );
  const ratio = (count: number) => med(count, 'rps') / med(1, 'rps');
  const note = `each node ${CPU} core (cgroup, period ${PERIOD_US / 1000} ms); ${FIXED ? CONNECTIONS : `${CONNECTIONS} per node`} connections; medians of ${ROUNDS}; ${REPOS.length} repo(s)`;
  for (const [count, goal] of [
    [2, 1.8],
    [3, 2.5],
  ] as const)
    reportResult({
      work: `deliveries acked/s, ${count} nodes vs 1 node, each node in a CPU cgroup`,
      shipkit: Math.round(med(count, 'rps')),
      peer: Math.round(med(1, 'rps')),
      unit: 'req/s',
      ratio: ratio(count),
      goal: `≥ ${goal}×`,
      met: ratio(count) >= goal,
      note,
    });
  const cpuRatio = med(3, 'nodeMs') / med(1, 'nodeMs');
  reportResult({
    work: "nodes' CPU per ack, 3 nodes vs 1 node",
    shipkit: Number(med(3, 'nodeMs').toFixed(3)),
    peer: Number(med(1, 'nodeMs').toFixed(3)),
    unit: 'ms',
    ratio: cpuRatio,
    goal: '≤ 1.2×',
    met: cpuRatio <= 1.2,
    note: `PostgreSQL's per ack: ${med(1, 'pgMs').toFixed(3)} ms at 1 node, ${med(3, 'pgMs').toFixed(3)} at 3`,
  });
}

/** The 1/2/3-node table, each node in its CPU cgroup. */
async function capacity(pg: { dir: string; url: string }, env: NodeJS.ProcessEnv): Promise<void> {
  const runs = new Map<number, Round[]>(COUNTS.map((c) => [c, []]));
  for (let r = 0; r < ROUNDS; r++)
    for (const count of r % 2 ? [...COUNTS].reverse() : COUNTS) {
      const result = await round(count, path.join(pg.dir, 'data'), pg.url, env);
      runs.get(count)!.push(result);
      console.error(
        `round ${r + 1}, ${count} node(s): ${result.rps.toFixed(0)}/s, p99 ${result.p99} ms, nodes ${result.nodeMs.toFixed(3)} ms/ack, ` +
          `PostgreSQL ${result.pgMs.toFixed(3)} ms/ack, throttled ${(100 * result.throttledShare).toFixed(0)} % of periods, ` +
          `canary ${(1000 * result.canaryMs).toFixed(1)} µs/unit; ` +
          `the nodes' sessions: ${describeWaits(result.waits)}`,
      );
    }
  printTable(runs);
}

async function main(): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v haproxy']).status !== 0) {
    console.log('skipped: bench:scale needs haproxy (apt-get install haproxy)');
    return;
  }
  if (!cgroupRoot() || process.getuid?.() !== 0) {
    console.log('skipped: bench:scale needs root and the cgroup filesystem (v2, or v1 with the cpu controller)');
    return;
  }
  // --statements: pg_stat_statements on, and each round prints its statements' calls per ack.
  const statements = '-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all';
  const pg = await startPostgres({ durable: true, settings: STATEMENTS ? statements : '' });
  if (!pg) return;
  try {
    const env = { ...process.env, ...worldEnv(pg), SHIPKIT_BUILD_COMMAND: '/bin/true', LOG_FORMAT: 'json' };
    if (ONLY !== 'hosts') await capacity(pg, env);
    if (ONLY !== 'capacity' && HOSTS > 0)
      await hostsRun({
        bundle: BUNDLE,
        env,
        hosts: HOSTS,
        intervalSec: INTERVAL,
        nodes: 3,
        pgData: path.join(pg.dir, 'data'),
        seeded: Boolean(args.seeded),
      });
  } finally {
    await pg.stop();
  }
}

await main();
