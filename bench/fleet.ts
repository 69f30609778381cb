// npm run bench:fleet — server-update against 200 simulated slaves on loopback, each answering
// after 100 ms, against the ideal ceil(200 / concurrency) × 100 ms and against the original
// design's serial curl loop; then the cold start of `server-update --help` three ways against
// `node -e 0`. Prints medians and ratios. Not part of CI.
// BASELINE=path/to/other/server-update.mjs also times that bundle in the curl comparison, run for
// run alongside this one (A/B of a change on the same noisy machine).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { $ } from 'zx';

const ROOT = path.resolve(import.meta.dirname, '..');
const SLAVES = Number(process.env.SLAVES ?? 200);
const DELAY_MS = 100;
const RUNS = Number(process.env.RUNS ?? 5);
const dir = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-fleet-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
$.verbose = false;
$.quiet = true;

const servers = await Promise.all(Array.from({ length: SLAVES }, () => new Promise<http.Server>((resolve) => {
  const server = http.createServer((_req, res) => setTimeout(() => res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"state":"queued"}'), DELAY_MS));
  server.listen(0, '127.0.0.1', () => resolve(server));
})));
const targets = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
const listFile = path.join(dir, 'slavelist.txt');
writeFileSync(listFile, `${targets.join('\n')}\n`);
writeFileSync(path.join(dir, 'secret'), 'bench-secret-0123456789\n');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(fn: () => Promise<unknown>, runs = RUNS): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

// The servers live in this process; the clients are child processes so both sides get a core.
const bundle = path.join(ROOT, 'dist', 'server-update.mjs');
if (!existsSync(bundle)) await $({ cwd: ROOT })`npx tsx tools/bundle.ts server-update`;
console.log(`server-update → ${SLAVES} slaves answering after ${DELAY_MS} ms (median of ${RUNS}; bundle, so start-up is ~50 ms of it)\n`);
const startup = await time(() => $`node ${bundle} --help`);
console.log(`start-up of the bundle alone (--help): ${startup.toFixed(0)} ms\n`);
console.log('concurrency  shipkit ms  minus start-up  ideal ms  ratio (minus start-up)');
for (const concurrency of [32, 100, 200]) {
  const ideal = Math.ceil(SLAVES / concurrency) * DELAY_MS;
  const ms = await time(() => $`node ${bundle} site --list ${listFile} --secret-file ${path.join(dir, 'secret')} --concurrency ${concurrency}`);
  console.log(`${String(concurrency).padStart(11)}  ${ms.toFixed(0).padStart(10)}  ${(ms - startup).toFixed(0).padStart(14)}  ${String(ideal).padStart(8)}  ${(ms / ideal).toFixed(2)} (${((ms - startup) / ideal).toFixed(2)})`);
}
const curlLoop = `while read -r t; do curl -s -o /dev/null "$t/?repo=site"; done < ${listFile}`;
const serial = await time(() => $`bash -c ${curlLoop}`, 1);
const default32 = await time(() => $`node ${bundle} site --list ${listFile} --secret-file ${path.join(dir, 'secret')}`);
console.log(`\nserial curl loop (the original design): ${serial.toFixed(0)} ms; server-update (default --concurrency 32): ${default32.toFixed(0)} ms; ${(serial / default32).toFixed(1)}× faster\n`);
for (const s of servers) s.close();

// Fan-out against `curl --parallel` (the peer), 200 and 1,000 targets, everything in flight at
// once: wall time and CPU (user + system of the client process, from bash's `time`).
async function timed(command: string): Promise<{ wall: number; cpu: number }> {
  const out = await $`bash -c ${`TIMEFORMAT='%R %U %S'; time { ${command} >/dev/null 2>&1; }`}`;
  const [wall, user, sys] = out.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { wall: wall * 1000, cpu: (user + sys) * 1000 };
}
const baseline = process.env.BASELINE ? path.resolve(process.env.BASELINE) : undefined;
const floor: Array<{ wall: number; cpu: number }> = [];
for (let i = 0; i < RUNS; i++) floor.push(await timed('node -e 0'));
console.log('targets  client                              wall ms  cpu ms   (medians of', RUNS, 'runs)');
console.log(`      -  node -e 0 (Node's start-up alone)   ${median(floor.map((x) => x.wall)).toFixed(0).padStart(7)}  ${median(floor.map((x) => x.cpu)).toFixed(0).padStart(6)}`);
for (const count of [200, 1000]) {
  const fleet = await Promise.all(Array.from({ length: count }, () => new Promise<http.Server>((resolve) => {
    const server = http.createServer((_req, res) => setTimeout(() => res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"state":"queued"}'), DELAY_MS));
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const urls = fleet.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
  const list = path.join(dir, `list-${count}.txt`);
  writeFileSync(list, `${urls.join('\n')}\n`);
  const curlConfig = path.join(dir, `curl-${count}.txt`);
  writeFileSync(curlConfig, urls.map((u) => `url = "${u}/?repo=site"\noutput = "/dev/null"\n`).join(''));
  const runs = { curl: [] as Array<{ wall: number; cpu: number }>, shipkit: [] as Array<{ wall: number; cpu: number }>, baseline: [] as Array<{ wall: number; cpu: number }> };
  for (let i = 0; i < RUNS; i++) {
    runs.curl.push(await timed(`curl -s --parallel --parallel-immediate --parallel-max ${count} -K ${curlConfig}`));
    runs.shipkit.push(await timed(`node ${bundle} site --list ${list} --secret-file ${path.join(dir, 'secret')} --concurrency ${count}`));
    if (baseline) runs.baseline.push(await timed(`node ${baseline} site --list ${list} --secret-file ${path.join(dir, 'secret')} --concurrency ${count}`));
  }
  const med = (xs: Array<{ wall: number; cpu: number }>) => ({ wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) });
  const curl = med(runs.curl);
  const shipkit = med(runs.shipkit);
  console.log(`${String(count).padStart(7)}  curl --parallel --parallel-max ${String(count).padEnd(5)} ${curl.wall.toFixed(0).padStart(7)}  ${curl.cpu.toFixed(0).padStart(6)}`);
  console.log(`${String(count).padStart(7)}  server-update --concurrency ${String(count).padEnd(5)}   ${shipkit.wall.toFixed(0).padStart(7)}  ${shipkit.cpu.toFixed(0).padStart(6)}   ${(shipkit.wall / curl.wall).toFixed(2)}× wall, ${(shipkit.cpu / curl.cpu).toFixed(2)}× cpu`);
  if (baseline) {
    const base = med(runs.baseline);
    console.log(`${String(count).padStart(7)}  BASELINE ${path.basename(baseline).padEnd(26)} ${base.wall.toFixed(0).padStart(7)}  ${base.cpu.toFixed(0).padStart(6)}   ${(base.wall / curl.wall).toFixed(2)}× wall, ${(base.cpu / curl.cpu).toFixed(2)}× cpu`);
  }
  for (const s of fleet) s.close();
}
console.log('');

// Cold start of --help.
const tsxLoader = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const deno = path.join(ROOT, 'node_modules/.bin/deno');
const script = path.join(ROOT, 'scripts/server-update.ts');
const cold = (cmd: string, args: string[]) => time(async () => {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
}, 9);
const base = await cold(process.execPath, ['-e', '0']);
const rows: Array<[string, number]> = [
  ['node -e 0', base],
  ['node dist/server-update.mjs --help', await cold(process.execPath, [bundle, '--help'])],
  ['node --import tsx scripts/server-update.ts --help', await cold(process.execPath, ['--import', tsxLoader, script, '--help'])],
  ['deno run -A scripts/server-update.ts --help', await cold(deno, ['run', '-A', '--quiet', script, '--help'])],
];
console.log('cold start (median of 9)                            ms   × node -e 0');
for (const [label, ms] of rows) console.log(`${label.padEnd(50)} ${ms.toFixed(0).padStart(4)}   ${(ms / base).toFixed(2)}`);
