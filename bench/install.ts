// npm run bench:install — cold start of `--help` for each way shipkit is installed, against
// `node -e 0` (Node's own start, the floor): the npm package's bin (`npm pack`, then `npm install
// --prefix` into a temp folder, offline), the one file (`node shipkit.mjs --version`, a small
// script's and hook-server's --help) and Deno on the sources. Each is run --runs times,
// interleaved (so a load change hits all alike); the median and its ratio to its floor are printed
// (goal ≤ 1.05×: the bins against `node -e 0`, the one file against an empty .mjs run by the same
// node, Node's ES module loader being its floor), with the package's and the bundle's sizes, and the mean
// CPU time of each (the steadier figure on a loaded machine), and a BENCH-RESULT row per
// installed-bin and one-file case for `npm run bench`. --node runs every case under that node
// (also first on the PATH, for the installed bin), e.g. a Node 24 next to Node 20.
// --compare FILE times the one-file cases on another shipkit.mjs too (e.g. one built from an older
// commit with `tsx tools/bundle.ts shipkit --outdir DIR`), in the same interleaved runs.
//   tsx bench/install.ts [--runs N] [--node PATH] [--compare FILE]
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import minimist from 'minimist';
import { $ } from '../lib/core/shell.ts';
import { reportResult } from './result.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'node', 'compare'] });
const runs = Number(args.runs ?? 21);
/**
 * The goals (issue of Speed III): the installed bins within 1.05× `node -e 0`, the one file within
 * 1.05× an empty `.mjs` run by the same node (Node's ES module loader is the one file's floor).
 */
const GOAL = 1.05;
const node = path.resolve(args.node ?? process.execPath);
const nodeVersion = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
const ROOT = path.resolve(import.meta.dirname, '..');
const DENO = path.join(ROOT, 'node_modules', '.bin', 'deno');
$.quiet = true;

const base = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-install-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));

const packed = await $({ cwd: ROOT })`npm pack --json --pack-destination ${base}`;
const report = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m)))[0] as {
  filename: string;
  size: number;
  unpackedSize: number;
};
const offline = {
  ...process.env,
  npm_config_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
await $({
  cwd: base,
  env: offline,
})`npm install --prefix ${path.join(base, 'opt')} ${path.join(base, report.filename)}`;
const bin = path.join(base, 'opt', 'node_modules', '.bin');
const bundle = path.join(base, 'opt', 'node_modules', 'shipkit', 'dist', 'shipkit.mjs');

const oneFile = (label: string, file: string) => [
  { name: `${label}: node shipkit.mjs --version`, argv: [node, file, '--version'] },
  { name: `${label}: node shipkit.mjs server-update --help`, argv: [node, file, 'server-update', '--help'] },
  { name: `${label}: node shipkit.mjs hook-server --help`, argv: [node, file, 'hook-server', '--help'] },
  { name: `${label}: node shipkit.mjs launchfit --help`, argv: [node, file, 'launchfit', '--help'] },
];
const empty = path.join(base, 'empty.mjs');
writeFileSync(empty, '');
const cases: Array<{ name: string; argv: string[] }> = [
  { name: 'node -e 0', argv: [node, '-e', '0'] },
  { name: 'node empty.mjs', argv: [node, empty] },
  { name: 'installed bin: hook-server --help', argv: [path.join(bin, 'hook-server'), '--help'] },
  { name: 'installed bin: launchfit --help', argv: [path.join(bin, 'launchfit'), '--help'] },
  { name: 'installed bin: server-update --help', argv: [path.join(bin, 'server-update'), '--help'] },
  { name: 'installed bin: shipkit --version', argv: [path.join(bin, 'shipkit'), '--version'] },
  ...oneFile('one file', bundle),
  ...(args.compare
    ? oneFile(`compared (${path.basename(path.dirname(path.resolve(args.compare)))})`, path.resolve(args.compare))
    : []),
  {
    name: 'deno run scripts/hook-server.ts --help',
    argv: [DENO, 'run', '-A', '--quiet', path.join(ROOT, 'scripts', 'hook-server.ts'), '--help'],
  },
];

/**
 * CPU time (user + system) of this process's ended children, in ms, from /proc/self/stat (Linux;
 * clock ticks of 10 ms, USER_HZ 100): on a loaded machine the steadier measure, since waiting for
 * a core does not count. Undefined elsewhere.
 */
function childrenCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10; // cutime, cstime
  } catch {
    return undefined;
  }
}

function timeOnce(argv: string[], cpu?: number[]): number {
  const cpu0 = childrenCpuMs();
  const t0 = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: base,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', PATH: `${path.dirname(node)}:${process.env.PATH}` },
  });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status}: ${r.stderr}`);
  const cpu1 = childrenCpuMs();
  if (cpu && cpu0 !== undefined && cpu1 !== undefined) cpu.push(cpu1 - cpu0);
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const times = cases.map(() => [] as number[]);
const cpus = cases.map(() => [] as number[]);
for (const c of cases) timeOnce(c.argv); // warm the file cache (and Deno's compile cache)
// Interleaved, the order reversed every other run, so neither a load change nor a warm cache
// after the case before favours one side.
for (let i = 0; i < runs; i++) {
  const order = cases.map((_, j) => j);
  if (i % 2) order.reverse();
  for (const j of order) times[j].push(timeOnce(cases[j].argv, cpus[j]));
}

const floor = median(times[0]);
/** Each case's floor: an empty .mjs for the one file (and the compared one), node -e 0 for the rest. */
const floorOf = (name: string) => (/^(one file|compared)/.test(name) ? 1 : 0);
console.log(
  `cold start, median of ${runs} runs (Node ${nodeVersion}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})\n`,
);
// CPU: the mean, as each sample is counted in 10 ms ticks (the mean of 21 is good to about 1 ms).
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const cpuFloor = cpus[0].length ? mean(cpus[0]) : undefined;
console.log(
  `| command | median | × node -e 0 | × its floor (goal ≤ ${GOAL}×) | CPU, mean | × its floor's CPU |\n|---|---:|---:|---|---:|---:|`,
);
cases.forEach((c, j) => {
  const f = floorOf(c.name);
  const ratio = median(times[j]) / median(times[f]);
  const cpu = cpuFloor ? `${mean(cpus[j]).toFixed(1)} ms | ${(mean(cpus[j]) / mean(cpus[f])).toFixed(2)}×` : '– | –';
  const goal = /^(installed bin|one file|compared)/.test(c.name);
  const verdict = goal ? `${ratio.toFixed(2)}× ${ratio <= GOAL ? 'met' : 'not met'}` : '';
  console.log(
    `| ${c.name} | ${median(times[j]).toFixed(0)} ms | ${(median(times[j]) / floor).toFixed(2)}× | ${verdict} | ${cpu} |`,
  );
});
// The goal rows for `npm run bench`: the installed bins against node -e 0, the one file against an empty .mjs.
cases.forEach((c, j) => {
  if (!/^(installed bin|one file):/.test(c.name)) return;
  const f = floorOf(c.name);
  const cpu = cpuFloor
    ? `; CPU ${mean(cpus[j]).toFixed(1)} vs ${mean(cpus[f]).toFixed(1)} ms (${(mean(cpus[j]) / mean(cpus[f])).toFixed(2)}×, means)`
    : '';
  reportResult({
    work: `cold start, ${c.name}`,
    shipkit: median(times[j]),
    peer: median(times[f]),
    unit: 'ms',
    goal: `≤ ${GOAL}× ${cases[f].name}`,
    met: median(times[j]) / median(times[f]) <= GOAL,
    note: `peer: ${cases[f].name}; median of ${runs} interleaved${cpu}`,
  });
});
const kb = (n: number) => `${(n / 1024).toFixed(0)} KB`;
console.log(
  `\nnpm package ${report.filename}: ${kb(report.size)} packed, ${kb(report.unpackedSize)} unpacked; dist/shipkit.mjs ${kb(statSync(bundle).size)}`,
);
