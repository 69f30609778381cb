// npm run bench:instructions [-- --targets 200 --skip-fan-out]: the cold-start and fan-out goals
// counted in instructions and page faults, which do not move with the machine's load as wall and
// CPU medians do (3–7 % from pass to pass on a shared 2-core machine). Each case runs once under
// `valgrind --tool=callgrind` (instructions in user space) and once under GNU time (minor page
// faults, the median of three): `node -e 0`, an empty .mjs, the one file's `--version` and
// `hook-server --help` (shipkit as shipped, bench/shipped.ts), and, unless --skip-fan-out,
// server-update's fan-out to N targets (bench/fleet-targets.mjs, answering after 100 ms) against
// the bare `node:net` client (bench/fleet-floor.mjs), the units' code cache warmed first.
// V8 draws its hash seed at random and spends 10–12 M instructions on it (`detail::sprp`), a
// different number each run: that function's count is taken out, and the same run then gives the
// same total to within 0.1 M. The fan-out's count holds on a quiet machine only: under load its
// answers come over more turns of the event loop.
//   tsx bench/instructions.ts [--targets N] [--skip-fan-out] [--node PATH]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { startTargets } from './fleet-targets-start.ts';
import { median, reportResult } from './result.ts';
import { shippedShipkit } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['targets', 'node'], boolean: ['skip-fan-out'] });
const TARGETS = Number(args.targets ?? 200);
if (!Number.isInteger(TARGETS) || TARGETS < 1) {
  console.error('bench:instructions: --targets takes a whole number, 1 or more; nothing was started.');
  process.exit(2);
}
const node = path.resolve(args.node ?? process.execPath);
const missing = [
  ['valgrind', 'valgrind'],
  ['callgrind_annotate', 'valgrind'],
  ['time', 'time'],
]
  .filter(([tool]) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error)
  .map(([tool, pkg]) => `${tool} (apt-get install ${pkg})`);
if (missing.length) {
  console.error(`bench:instructions: cannot run without ${missing.join(', ')}; nothing was started.`);
  process.exit(2);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-instructions-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
// The units' compiled code goes to a folder of the bench's own, warmed before it is counted.
const env = { ...process.env, XDG_CACHE_HOME: path.join(dir, 'cache'), NO_COLOR: '1' };
const empty = path.join(dir, 'empty.mjs');
writeFileSync(empty, '');
const oneFile = shippedShipkit();
if (!oneFile.endsWith('.mjs')) {
  console.error(`bench:instructions counts the one file and its CommonJS entry beside it: ${oneFile} is neither.`);
  process.exit(2);
}
// The npm package's layout, as bench/install.ts gets it from `npm pack` (without npm): its bin
// runs the CommonJS entry beside the one file, and the link's name picks the script.
const pkg = path.join(dir, 'pkg');
mkdirSync(path.join(pkg, 'bin'), { recursive: true });
mkdirSync(path.join(pkg, 'dist'));
mkdirSync(path.join(dir, '.bin'));
copyFileSync(path.join(import.meta.dirname, '..', 'bin', 'shipkit.cjs'), path.join(pkg, 'bin', 'shipkit.cjs'));
copyFileSync(oneFile, path.join(pkg, 'dist', 'shipkit.mjs'));
copyFileSync(path.join(path.dirname(oneFile), 'shipkit.cjs'), path.join(pkg, 'dist', 'shipkit.cjs'));
for (const name of ['shipkit', 'hook-server']) symlinkSync('../pkg/bin/shipkit.cjs', path.join(dir, '.bin', name));

/** Instructions of one run of argv, less V8's random hash-seed search (callgrind). */
function instructions(argv: string[]): number {
  const out = path.join(dir, 'callgrind.out');
  const r = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, ...argv], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const collected = /Collected : (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !collected) throw new Error(`${argv.join(' ')} under callgrind: exit ${r.status}\n${r.stderr}`);
  const annotated = spawnSync('callgrind_annotate', [out], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 }).stdout;
  const seed = /^\s*([\d,]+)\s.*detail::sprp/m.exec(annotated);
  return Number(collected[1]) - (seed ? Number(seed[1].replaceAll(',', '')) : 0);
}

/** Minor page faults of argv, the median of three runs (GNU time). */
function faults(argv: string[]): number {
  const runs = [0, 1, 2].map(() => {
    const r = spawnSync('time', ['-f', '%R', ...argv], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return Number(r.stderr.trim().split('\n').pop());
  });
  return median(runs);
}

interface Row {
  name: string;
  argv: string[];
  floor?: string;
  goal?: number;
}
const rows: Row[] = [
  { name: 'node -e 0', argv: [node, '-e', '0'] },
  { name: 'node empty.mjs', argv: [node, empty] },
  // Run by node, as the bins' `#!/usr/bin/env node` does (env's own exec is not counted).
  {
    name: 'installed bin: shipkit --version',
    argv: [node, path.join(dir, '.bin', 'shipkit'), '--version'],
    floor: 'node -e 0',
    goal: 1.05,
  },
  {
    name: 'installed bin: hook-server --help',
    argv: [node, path.join(dir, '.bin', 'hook-server'), '--help'],
    floor: 'node -e 0',
    goal: 1.05,
  },
  { name: 'one file: --version', argv: [node, oneFile, '--version'], floor: 'node empty.mjs', goal: 1.05 },
  {
    name: 'one file: hook-server --help',
    argv: [node, oneFile, 'hook-server', '--help'],
    floor: 'node empty.mjs',
    goal: 1.05,
  },
];

let stopTargets = () => {};
if (!args['skip-fan-out']) {
  const targets = await startTargets(TARGETS, 100);
  stopTargets = targets.stop;
  process.on('exit', stopTargets);
  const list = path.join(dir, 'list.txt');
  writeFileSync(list, targets.urls.map((url) => `${url}\n`).join(''));
  const secret = path.join(dir, 'secret');
  writeFileSync(secret, 'bench-secret-0123456789\n', { mode: 0o600 });
  const shipkit = [node, oneFile, 'server-update', 'site', '--list', list, '--secret-file', secret];
  const fanOut = [...shipkit, '--concurrency', String(TARGETS)];
  // The first start writes the unit's compiled code (again as it ends): warmed before counting.
  if (spawnSync(fanOut[0], fanOut.slice(1), { env, stdio: 'ignore' }).status !== 0)
    throw new Error('server-update failed to reach the targets');
  const floorName = `bare node:net client, ${TARGETS} requests`;
  rows.push(
    { name: floorName, argv: [node, path.join(import.meta.dirname, 'fleet-floor.mjs'), list, secret] },
    { name: `server-update, ${TARGETS} requests`, argv: fanOut, floor: floorName, goal: 1.1 },
  );
}

const measured = rows.map((row) => ({ ...row, instructions: instructions(row.argv), faults: faults(row.argv) }));
stopTargets();
const byName = new Map(measured.map((m) => [m.name, m]));
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(`instructions (callgrind, less the hash-seed search) and minor page faults, node ${version}\n`);
console.log('| run | instructions | × its floor | page faults | over its floor |\n|---|---:|---:|---:|---:|');
for (const m of measured) {
  const floor = m.floor ? byName.get(m.floor)! : undefined;
  const ratio = floor ? `${(m.instructions / floor.instructions).toFixed(3)}×` : '';
  const over = floor ? `+${m.faults - floor.faults}` : '';
  console.log(`| ${m.name} | ${(m.instructions / 1e6).toFixed(1)} M | ${ratio} | ${m.faults} | ${over} |`);
}
for (const m of measured) {
  const floor = m.floor ? byName.get(m.floor)! : undefined;
  if (floor && m.goal)
    reportResult({
      work: `${m.name}, instructions`,
      shipkit: Math.round(m.instructions / 1e5) / 10,
      peer: Math.round(floor.instructions / 1e5) / 10,
      unit: 'M instructions',
      goal: `≤ ${m.goal}× ${floor.name}`,
      met: m.instructions / floor.instructions <= m.goal,
      note: `callgrind, less V8's random hash-seed search; page faults ${m.faults} against ${floor.faults}`,
    });
}
