// bench:scale's second part: HOSTS simulated hosts (test/fixtures/fleet-sim: a few processes,
// keep-alive, each host polling VERSION at Debian's nginx every --interval s ± 20 % and reporting
// signed with its own credential) against 3 hook-servers of the one file behind haproxy on one
// PostgreSQL; `release rollout --steps 1,10,50,100` to every host. Prints the p99 of reports and
// polls, errors, each node's peak RSS, the status page's time on every node, and the exact counts.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startHaproxy } from '../test/fixtures/haproxy.ts';
import { hostIdOf, startFleetSim } from '../test/fixtures/fleet-sim/index.ts';
import { startUpdateNginx } from '../test/fixtures/fleet-sim/nginx.ts';
import { makePublisher } from '../test/fixtures/launchfit/gpg.ts';
import { TOKEN } from '../test/fixtures/workers.ts';
import { tmpDir, waitFor } from '../test/_helpers/common.ts';
import { cpuSpent, postgresCpu, processCpu, startHookNode, stopHookNode, type HookNode } from './ha-load.ts';
import { forgedReports, reportForged } from './scale-forged.ts';
import { seedFleet } from './scale-seed.ts';
import { loadAverage, reportResult } from './result.ts';

const APP = 'my-app';
const SECRET = 'fleet-scale-secret-0123456789abcdef';

export interface HostsRun {
  bundle: string;
  env: NodeJS.ProcessEnv;
  hosts: number;
  intervalSec: number;
  nodes: number;
  /** PostgreSQL's data folder (its processes' CPU time is read from /proc). */
  pgData: string;
  /** The fleet written into the database enrolled (scale-seed.ts) instead of every host announcing itself in the first interval. */
  seeded?: boolean;
}

const p99 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] : NaN;
};

function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}

/** CPU time so far (ms) of the nodes, PostgreSQL and the simulator, and the machine's busy and all jiffies. */
interface CpuReading {
  nodes: number;
  pg: Map<number, number>;
  sim: number;
  busy: number;
  all: number;
}

function readCpu(nodes: HookNode[], pgData: string, simPids: number[]): CpuReading {
  const ms = (pids: number[]) => pids.reduce((sum, pid) => sum + (processCpu(pid)?.ms ?? 0), 0);
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  const idle = ticks[3] + ticks[4];
  const all = ticks.reduce((a, b) => a + b, 0);
  return {
    nodes: ms(nodes.map((n) => n.child.pid!)),
    pg: postgresCpu(pgData),
    sim: ms(simPids),
    busy: all - idle,
    all,
  };
}

/** What a phase cost: CPU ms per report of the nodes and of PostgreSQL, the simulator's, the machine's busy share. */
function phaseCost(a: CpuReading, b: CpuReading, reports: number): string {
  const per = (ms: number) => (reports ? (ms / reports).toFixed(3) : '-');
  const busy = (100 * (b.busy - a.busy)) / (b.all - a.all);
  return (
    `${reports} reports: nodes ${per(b.nodes - a.nodes)} ms CPU per report, PostgreSQL ${per(cpuSpent(a.pg, b.pg))}, ` +
    `simulator ${(b.sim - a.sim).toFixed(0)} ms in all; the machine ${busy.toFixed(0)} % busy (of ${os.cpus().length} cores)`
  );
}

/** One release of APP published to `dest` (a few KB), signed; `--rollout` as given. */
async function publisherOf(base: string, bundle: string, dest: string) {
  const pub = await makePublisher(base, 'scale pass');
  return {
    signing: ['--key', pub.secret, '--passphrase-file', pub.passFile],
    async publish(version: string, extra: string[] = []) {
      const src = path.join(base, `src-${version}`);
      mkdirSync(src, { recursive: true });
      writeFileSync(path.join(src, 'app.txt'), `version ${version}\n`);
      const argv = ['release', 'publish', src, '--name', APP, '--platform', 'gnu-linux', '--version', version];
      const code = await run(bundle, [...argv, ...this.signing, '--to', dest, ...extra]);
      if (code.exit !== 0) throw new Error(`release publish ${version}: ${code.out}`);
    },
  };
}

function run(bundle: string, argv: string[], onOut?: (text: string) => void): Promise<{ exit: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundle, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer) => {
      out += d;
      onOut?.(String(d));
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('exit', (code) => resolve({ exit: code ?? 1, out }));
  });
}

/** Every node's status page, timed (ms), with the read token. */
async function statusPages(nodes: HookNode[]): Promise<number[]> {
  return Promise.all(
    nodes.map(async (n) => {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${n.port}/`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      await res.text();
      return res.ok ? performance.now() - t0 : NaN;
    }),
  );
}

export async function hostsRun(opts: HostsRun): Promise<void> {
  const { bundle, env, hosts, intervalSec, nodes: count, pgData, seeded = false } = opts;
  const base = tmpDir('shipkit-bench-scale-hosts-');
  const dest = path.join(base, 'updates');
  mkdirSync(dest);
  const secretFile = path.join(base, 'fleet.secret');
  writeFileSync(secretFile, `${SECRET}\n`);
  const fleet = `fleet:\n  ${APP}:\n    secret: file:${secretFile}\n    max_hosts: ${hosts + 1000}\n`;
  const pub = await publisherOf(base, bundle, dest);
  await pub.publish('1.0.0');
  const nginx = await startUpdateNginx(dest);
  const nodes: HookNode[] = [];
  for (let i = 1; i <= count; i++) {
    const logFile = path.join(base, `h${i}.log`);
    nodes.push(await startHookNode(`h${i}`, { bundle, env, extraConfig: fleet, logFile }));
  }
  console.error(`the nodes' logs: ${base}/h*.log`);
  const haproxy = (await startHaproxy(nodes))!;
  const idleRss = nodes.map((n) => rssMb(n.child.pid!));
  const seed = Math.random().toString(36).slice(2);
  if (seeded) {
    const ids = Array.from({ length: hosts }, (_, i) => hostIdOf(seed, i));
    await seedFleet(env.SHIPKIT_QUEUE_URL!, { app: APP, ids, version: '1.0.0', seq: 1 });
    for (const n of nodes)
      await waitFor(async () => (await fleetCounts(`http://127.0.0.1:${n.port}`, secretFile)).total === hosts, {
        timeoutMs: 60_000,
        what: `${n.name} to read the ${hosts} hosts`,
      });
  }
  const sim = startFleetSim({
    seed,
    url: `${nginx.url}/`,
    app: APP,
    hosts,
    processes: 4,
    intervalMs: intervalSec * 1000,
    running: '1.0.0',
    seq: 1,
    announce: !seeded,
    report: { url: `${haproxy.url}/fleet/reports`, secret: SECRET },
  });
  const peakRss = nodes.map(() => 0);
  const pages: number[][] = nodes.map(() => []);
  const sampler = setInterval(
    () => nodes.forEach((n, i) => (peakRss[i] = Math.max(peakRss[i], rssMb(n.child.pid!)))),
    2000,
  );
  try {
    console.error(`${hosts} hosts ${seeded ? 'enrolled, polling' : 'announcing'} over one ${intervalSec} s interval …`);
    const cpu0 = readCpu(nodes, pgData, sim.pids);
    await new Promise((r) => setTimeout(r, intervalSec * 1000 + 5000));
    const announced = await sim.fresh();
    const cpu1 = readCpu(nodes, pgData, sim.pids);
    const heldRss = nodes.map((n) => rssMb(n.child.pid!));
    const perHost = heldRss.map((mb, i) => ((mb - idleRss[i]) * 1024 * 1024) / hosts);
    console.error(
      `announced: ${announced.reports} reports, ${announced.reportErrors} errors; polls ${announced.polls}; ` +
        `${phaseCost(cpu0, cpu1, announced.reports)}; RSS per node ${idleRss.map((m) => m.toFixed(0)).join(' / ')} MB ` +
        `idle → ${heldRss.map((m) => m.toFixed(0)).join(' / ')} MB holding the hosts (${perHost.map((b) => b.toFixed(0)).join(' / ')} bytes per host)`,
    );
    const pageTimer = setInterval(
      () => void statusPages(nodes).then((ms) => ms.forEach((t, i) => pages[i].push(t))),
      10_000,
    );
    await pub.publish('1.1.0', ['--rollout', '1']);
    const t0 = Date.now();
    const rolled = await run(
      bundle,
      [
        'release',
        'rollout',
        APP,
        '--to',
        dest,
        '--fleet',
        haproxy.url,
        '--fleet-secret',
        `file:${secretFile}`,
        ...pub.signing,
        '--steps',
        '1,10,50,100',
        '--wait',
        String(intervalSec * 4),
        '--poll',
        '5',
      ],
      (text) => process.stderr.write(text.replace(/^/gm, '  | ')),
    );
    const rolloutMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, intervalSec * 1000 * 1.3));
    clearInterval(pageTimer);
    const end = await sim.fresh();
    console.error(
      `rollout and after: ${phaseCost(cpu1, readCpu(nodes, pgData, sim.pids), end.reports - announced.reports)}; ` +
        `p99 of reports ${p99(end.reportMs).toFixed(1)} ms, polls ${p99(end.pollMs).toFixed(1)} ms ` +
        `(announcing: ${p99(announced.reportMs).toFixed(1)} / ${p99(announced.pollMs).toFixed(1)} ms)`,
    );
    // The figures below are of the whole run: the announcing interval's latencies with the rest.
    end.reportMs = end.reportMs.concat(announced.reportMs);
    end.pollMs = end.pollMs.concat(announced.pollMs);
    const counts = await fleetCounts(haproxy.url, secretFile);
    report({ hosts, rolled, rolloutMs, end, counts, peakRss, pages });
    await sim.stop();
    const forged = await forgedReports(haproxy.url, nodes, {
      app: APP,
      ids: sim.ids,
      secret: SECRET,
      version: '1.1.0',
    });
    reportForged(forged, hosts, counts, await fleetCounts(haproxy.url, secretFile));
  } finally {
    clearInterval(sampler);
    await sim.stop();
    await haproxy.stop();
    for (const n of nodes) await stopHookNode(n);
    await nginx.stop();
  }
}

/** GET /fleet/APP?step=100&version=1.1.0 through haproxy: hook-server's own count of the hosts. */
async function fleetCounts(url: string, secretFile: string): Promise<Record<string, number>> {
  const { signRequest } = await import('../lib/http/signing.ts');
  const route = `/fleet/${APP}?step=100&version=1.1.0`;
  const secret = readFileSync(secretFile, 'utf8').trim();
  const res = await fetch(`${url}${route}`, { headers: signRequest(secret, 'GET', route) });
  const body = (await res.json()) as { total: number; counts: Record<string, number> };
  return { total: body.total, ...body.counts };
}

function report(r: {
  hosts: number;
  rolled: { exit: number; out: string };
  rolloutMs: number;
  end: Awaited<ReturnType<ReturnType<typeof startFleetSim>['fresh']>>;
  counts: Record<string, number>;
  peakRss: number[];
  pages: number[][];
}): void {
  const on = r.end.versions['1.1.0'] ?? 0;
  const [reportP99, pollP99] = [p99(r.end.reportMs), p99(r.end.pollMs)];
  const errors = r.end.reportErrors + r.end.pollErrors;
  const pageMax = r.pages.map((ms) => Math.max(...ms.filter(Number.isFinite)));
  console.log(
    `\n${r.hosts} hosts, 3 nodes behind haproxy on one PostgreSQL (load ${loadAverage()}): rollout 1,10,50,100 ` +
      `exit ${r.rolled.exit} in ${r.rolloutMs} ms; on 1.1.0: ${on} (sim), hook-server counts updated ${r.counts.updated} ` +
      `of ${r.counts.total}; reports ${r.end.reports} p99 ${reportP99.toFixed(1)} ms; polls ${r.end.polls} p99 ` +
      `${pollP99.toFixed(1)} ms; errors ${errors} (reports ${r.end.reportErrors}, polls ${r.end.pollErrors}); ` +
      `peak RSS per node ${r.peakRss.map((m) => m.toFixed(0)).join(' / ')} MB; status page max per node ` +
      `${pageMax.map((m) => m.toFixed(0)).join(' / ')} ms`,
  );
  const row = (work: string, shipkit: number, unit: string, goal: string, met: boolean) =>
    reportResult({
      work,
      shipkit: Number(shipkit.toFixed(1)),
      peer: null,
      unit,
      goal,
      met,
      note: `${r.hosts} hosts, 3 nodes`,
    });
  row(
    'hosts on the new release after rollout 1,10,50,100',
    on,
    'hosts',
    `= ${r.hosts}`,
    on === r.hosts && r.rolled.exit === 0,
  );
  row('p99 of reports', reportP99, 'ms', '< 200 ms', reportP99 < 200);
  row('p99 of polls', pollP99, 'ms', '< 200 ms', pollP99 < 200);
  row('errors (reports and polls)', errors, 'requests', '0', errors === 0);
  row("every node's peak RSS", Math.max(...r.peakRss), 'MB', '≤ 300 MB', Math.max(...r.peakRss) <= 300);
  row('status page, slowest on any node', Math.max(...pageMax), 'ms', '< 300 ms', Math.max(...pageMax) < 300);
}
