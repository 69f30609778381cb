// npm run bench [-- --quick] [--only NAME,NAME]: every bench in bench/registry.ts, each in its own
// process, against shipkit as shipped (one bundle built here, handed on in SHIPKIT_BENCH_BUNDLE),
// then ONE table of the BENCH-RESULT lines they printed (bench/result.ts): work, shipkit, peer,
// ratio, goal, met. A bench that fails shows its stderr's tail and a "failed" row.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { BENCHES } from './registry.ts';
import { loadAverage, parseResults, type BenchResult } from './result.ts';
import { ROOT, shippedShipkit } from './shipped.ts';

const args = minimist(process.argv.slice(2), { boolean: ['quick'], string: ['only'] });
const only = args.only ? String(args.only).split(',') : undefined;
const entries = BENCHES.filter((b) => !only || only.includes(b.name));
const TSX = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');

const startLoad = loadAverage();
console.error(`bundling shipkit as shipped (tools/bundle.ts shipkit) …`);
const bundle = shippedShipkit();
type Row = BenchResult & { load: string; bench: string; status?: string };
const rows: Row[] = [];

for (const entry of entries) {
  const argv = [TSX, entry.script, ...(args.quick ? entry.quick : entry.args)];
  console.error(`\n== ${entry.name}: tsx ${argv.slice(1).join(' ')}`);
  const t0 = Date.now();
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { ...process.env, SHIPKIT_BENCH_BUNDLE: bundle },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
    process.stderr.write(d);
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const found = parseResults(stdout);
  console.error(
    `== ${entry.name}: exit ${code}, ${found.length} result(s), ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  if (code !== 0 || !found.length) {
    // Never silent: a bench that failed, or ended without a single result line, is a row of its own.
    const what = code !== 0 ? `FAILED (exit ${code})` : 'NO RESULT (exit 0, no BENCH-RESULT line)';
    console.error(
      `== ${entry.name}: ${what}; the last lines of its stderr:\n${stderr.split('\n').slice(-30).join('\n')}`,
    );
    rows.push({
      bench: entry.name,
      work: `${entry.name}: ${what}`,
      shipkit: NaN,
      peer: null,
      unit: '',
      goal: '',
      met: false,
      load: loadAverage(),
      status: code !== 0 ? 'FAILED' : 'NO RESULT',
    });
  }
  for (const r of found) rows.push({ bench: entry.name, ...r });
}

const num = (x: number | null, unit = '') =>
  x === null || Number.isNaN(x)
    ? '–'
    : `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}${unit ? ` ${unit}` : ''}`;
const table = [
  ['work', 'shipkit', 'peer', 'ratio', 'goal', 'met', 'load'],
  ...rows.map((r) => [
    r.work,
    num(r.shipkit, r.unit),
    num(r.peer, r.peer === null ? '' : r.unit),
    r.ratio == null ? '–' : `${r.ratio.toFixed(2)}×`,
    r.goal,
    r.status ?? (r.met === null ? '?' : r.met ? 'met' : 'NOT met'),
    r.load,
  ]),
];
console.log(
  `\nnpm run bench${args.quick ? ' --quick' : ''}: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, load average ${startLoad} at the start, ${loadAverage()} at the end`,
);
console.log(`shipkit as shipped: ${bundle}`);
console.log(`| ${table[0].join(' | ')} |`);
console.log(`|${table[0].map((_, i) => (i >= 1 && i <= 3 ? '---:' : '---')).join('|')}|`);
for (const row of table.slice(1)) console.log(`| ${row.join(' | ')} |`);
for (const r of rows.filter((x) => x.note)) console.log(`- ${r.work}: ${r.note}`);
const broken = rows.filter((r) => r.status);
if (broken.length) {
  console.log(
    `\n${broken.length} bench(es) gave no figures: ${broken.map((r) => r.work).join('; ')} (their stderr is above, on stderr).`,
  );
  process.exitCode = 1; // goals not met are figures; a bench that gave none is a failure of the run
}
