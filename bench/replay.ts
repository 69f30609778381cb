// npm run bench:replay [-- --lines 20000 --runs 5]: start-up replay of the append-only logs
// (lib/core/append-log.ts, audit F12):
//  (a) replayLines on N fleet-report lines and on N job-journal lines, in this process;
//  (b) hook-server as shipped (the one file, bench/shipped.ts) from spawn to its `listening on`
//      line, with an N-line DATA/fleet/fleet.log (N hosts of one app), beside an empty data folder.
// Medians of R runs. Goal: start ≤ 1 s with 20,000 lines (absolute, no peer).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import minimist from 'minimist';
import { replayLines } from '../lib/core/append-log.ts';
import { fleetLogFile } from '../lib/fleet/fleet-store.ts';
import { writeConfig } from '../test/fixtures/hooks/deliveries.ts';
import { tmpDir } from '../test/_helpers/common.ts';
import { fleetLog, journalLines } from './control-plane.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['lines', 'runs'] });
const LINES = Number(args.lines ?? 20_000);
const RUNS = Number(args.runs ?? 5);
const GOAL_MS = 1000;
const env = { ...process.env, HOOK_SECRET: 'bench-secret', HOOK_TOKEN: 'bench-token', FLEET_WEB: 'bench-fleet' };

function timeReplay(text: string): number {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const { records } = replayLines(text, (value) => value);
    samples.push(performance.now() - t0);
    if (records.length !== LINES) throw new Error(`replayed ${records.length} of ${LINES} lines`);
  }
  return median(samples);
}

/** ms from spawning hook-server to its `listening on` line; it is stopped after. */
async function timeStart(config: string): Promise<number> {
  const [cmd, ...pre] = shippedArgv('hook-server');
  const t0 = performance.now();
  const child = spawn(cmd, [...pre, '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ms = await new Promise<number>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes('listening on')) resolve(performance.now() - t0);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`hook-server exited ${code} before listening:\n${out}`)));
  });
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
  return ms;
}

/** Median start time over RUNS, each in a fresh data folder holding `fleet` as its fleet.log. */
async function medianStart(fleet: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = tmpDir('shipkit-bench-replay-');
    const config = writeConfig(dir, { repos: { 'octo/site': {} } });
    writeFileSync(config, `${readFileSync(config, 'utf8')}fleet:\n  web:\n    secret: env:FLEET_WEB\n`);
    const file = fleetLogFile(path.join(dir, 'data'));
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, fleet, { mode: 0o600 });
    samples.push(await timeStart(config));
    rmSync(dir, { recursive: true, force: true });
  }
  return median(samples);
}

const fleetText = fleetLog(LINES);
const journalText = journalLines(LINES);
console.log(
  `replay of ${LINES.toLocaleString('en')} lines, node ${process.version}, load ${loadAverage()}; medians of ${RUNS} runs`,
);
const fleetReplay = timeReplay(fleetText);
const journalReplay = timeReplay(journalText);
console.log(`replayLines, fleet.log (${(fleetText.length / 1e6).toFixed(1)} MB): ${fleetReplay.toFixed(0)} ms`);
console.log(`replayLines, job journal (${(journalText.length / 1e6).toFixed(1)} MB): ${journalReplay.toFixed(0)} ms`);

await timeStart(writeConfig(tmpDir('shipkit-bench-replay-'))); // not counted: bundle build, page cache
const empty = await medianStart('');
const full = await medianStart(fleetText);
console.log(`hook-server start, empty fleet.log: ${empty.toFixed(0)} ms`);
console.log(
  `hook-server start, ${LINES.toLocaleString('en')}-line fleet.log: ${full.toFixed(0)} ms (goal ≤ ${GOAL_MS} ms with 20,000 lines)`,
);
const note = `median of ${RUNS} runs; replayLines alone: fleet.log ${fleetReplay.toFixed(0)} ms, job journal ${journalReplay.toFixed(0)} ms; start with an empty fleet.log: ${empty.toFixed(0)} ms`;
reportResult({
  work: `hook-server start, ${LINES.toLocaleString('en')}-line fleet.log`,
  shipkit: Math.round(full),
  peer: null,
  unit: 'ms',
  goal: `≤ ${GOAL_MS} ms`,
  met: LINES >= 20_000 ? full <= GOAL_MS : null,
  note,
});
