// npm run bench:fleet [-- --runs 9 --targets 200,1000 --delay 100]: the fan-out of
// `server-update` (shipkit as shipped: the one file, bench/shipped.ts) to N targets on loopback
// that each answer after 100 ms, against the peer `curl -Z --parallel-immediate --parallel-max N
// -K LIST` sending the same N requests. Wall time and CPU (user + system of the client process
// and its children, from getrusage) of each side; the two sides alternate which goes first, run
// after run. The targets live in their own process (bench/fleet-targets.ts), so the clients are
// measured alone. One BENCH-RESULT row per count and measure (goal: ≤ 1.2× wall, ≤ 3× CPU).
// `node -e 0` is timed the same way, as the floor any Node client starts from, and so is the
// breakdown, in the same alternation: shipkit's `server-update --help` (the one file's entry, which
// answers it alone), `--dry-run` (the entry, the server-update unit and the list, nothing sent)
// and bench/fleet-floor.mjs, a bare `node:net` client sending the same signed requests (what Node
// itself needs for N connections: server-update cannot go below it).
//   --cpu-prof DIR   also writes a CPU profile of one shipkit run per count into DIR
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { loadAverage, median, reportResult } from './result.ts';
import { startTargets } from './fleet-targets-start.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'targets', 'delay', 'cpu-prof'] });
const RUNS = Number(args.runs ?? 9);
const COUNTS = String(args.targets ?? '200,1000')
  .split(',')
  .map(Number);
const DELAY_MS = Number(args.delay ?? 100);
const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-fleet-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const secretFile = path.join(dir, 'secret');
writeFileSync(secretFile, 'bench-secret-0123456789\n', { mode: 0o600 });

interface Sample {
  wall: number;
  cpu: number;
}

/** Runs argv to its end; wall from spawn to exit, CPU from bash's `times` of its children. */
function timed(argv: string[]): Promise<Sample> {
  // bash runs the client as its only child and prints the children's user and system time.
  const script = `"$@" >/dev/null 2>"${dir}/stderr" || { echo "exit $?" >&2; cat "${dir}/stderr" >&2; exit 1; }; times`;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('bash', ['-c', script, 'bash', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const wall = performance.now() - t0;
      if (code !== 0) return reject(new Error(`${argv.join(' ')} failed:\n${err}`));
      // `times`: line 1 the shell's own, line 2 its children's: "0m0.034s 0m0.012s".
      const children = out
        .trim()
        .split('\n')
        .pop()!
        .match(/(\d+)m([\d.]+)s/g)!
        .map((t) => {
          const [, m, s] = /(\d+)m([\d.]+)s/.exec(t)!;
          return Number(m) * 60_000 + Number(s) * 1000;
        });
      resolve({ wall, cpu: children[0] + children[1] });
    });
  });
}

const med = (xs: Sample[]): Sample => ({ wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) });
const floor: Sample[] = [];
for (let i = 0; i < RUNS; i++) floor.push(await timed([process.execPath, '-e', '0']));
const nodeFloor = med(floor);
console.log(
  `fan-out, ${os.cpus().length} cores, node ${process.version}, load ${loadAverage()}; medians of ${RUNS} alternated runs; node -e 0: ${nodeFloor.wall.toFixed(0)} ms wall, ${nodeFloor.cpu.toFixed(0)} ms CPU`,
);
console.log(`targets  ${'client'.padEnd(38)} ${'wall ms'.padStart(7)}  ${'cpu ms'.padStart(6)}`);

for (const count of COUNTS) {
  const targets = await startTargets(count, DELAY_MS);
  try {
    const list = path.join(dir, `list-${count}.txt`);
    writeFileSync(list, `${targets.urls.join('\n')}\n`);
    const curlConfig = path.join(dir, `curl-${count}.txt`);
    writeFileSync(curlConfig, targets.urls.map((u) => `url = "${u}/?repo=site"\noutput = "/dev/null"\n`).join(''));
    const curlArgv = ['curl', '-s', '-Z', '--parallel-immediate', '--parallel-max', String(count), '-K', curlConfig];
    const shipkitArgv = [
      ...shippedArgv('server-update'),
      'site',
      '--list',
      list,
      '--secret-file',
      secretFile,
      '--concurrency',
      String(count),
    ];
    const sides = {
      curl: curlArgv,
      shipkit: shipkitArgv,
      help: [...shippedArgv('server-update'), '--help'],
      dryRun: [...shipkitArgv, '--dry-run'],
      bareNode: [process.execPath, path.join(import.meta.dirname, 'fleet-floor.mjs'), list, secretFile],
    };
    const names = Object.keys(sides) as Array<keyof typeof sides>;
    // One of each first, not counted: page cache, the targets' first accept.
    for (const name of names) await timed(sides[name]);
    const runs = Object.fromEntries(names.map((name) => [name, [] as Sample[]])) as Record<
      keyof typeof sides,
      Sample[]
    >;
    for (let i = 0; i < RUNS; i++) {
      // Each side goes first in turn, and the order flips every other pass.
      const order = names.map((_, k) => names[(k + i) % names.length]);
      for (const name of i % 2 ? order.reverse() : order) runs[name].push(await timed(sides[name]));
    }
    if (args['cpu-prof'])
      await timed([
        shipkitArgv[0],
        '--cpu-prof',
        '--cpu-prof-dir',
        path.resolve(String(args['cpu-prof'])),
        ...shipkitArgv.slice(1),
      ]);
    const curl = med(runs.curl);
    const shipkit = med(runs.shipkit);
    const bareNode = med(runs.bareNode);
    const row = (label: string, x: Sample, ratios = false) =>
      console.log(
        `${String(count).padStart(7)}  ${label.padEnd(38)} ${x.wall.toFixed(0).padStart(7)}  ${x.cpu.toFixed(0).padStart(6)}${ratios ? `   ${(x.wall / curl.wall).toFixed(2)}× wall, ${(x.cpu / curl.cpu).toFixed(2)}× CPU` : ''}`,
      );
    row(`curl -Z --parallel-max ${count}`, curl);
    row(`shipkit server-update --concurrency ${count}`, shipkit, true);
    row("  its --help (the one file's entry)", med(runs.help));
    row('  its --dry-run (+ unit, list; no sends)', med(runs.dryRun));
    row(`bare node:net client, ${count} requests`, bareNode, true);
    const note = `median of ${RUNS} alternated runs; ${count} targets answering after ${DELAY_MS} ms; node -e 0 alone: ${nodeFloor.wall.toFixed(0)} ms wall, ${nodeFloor.cpu.toFixed(0)} ms CPU; a bare node:net client (bench/fleet-floor.mjs) sending the same requests: ${bareNode.wall.toFixed(0)} ms wall, ${bareNode.cpu.toFixed(0)} ms CPU (${(bareNode.cpu / curl.cpu).toFixed(2)}× curl's CPU)`;
    reportResult({
      work: `fan-out to ${count} targets, wall`,
      shipkit: Math.round(shipkit.wall),
      peer: Math.round(curl.wall),
      unit: 'ms',
      goal: '≤ 1.2×',
      met: shipkit.wall / curl.wall <= 1.2,
      note,
    });
    reportResult({
      work: `fan-out to ${count} targets, CPU`,
      shipkit: Math.round(shipkit.cpu),
      peer: Math.round(curl.cpu),
      unit: 'ms',
      goal: '≤ 3×',
      met: shipkit.cpu / curl.cpu <= 3,
      note,
    });
  } finally {
    targets.stop();
  }
}
