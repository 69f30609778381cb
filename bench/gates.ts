// npm run bench:gates [-- --runs 7 --hosts 12 --keep]: what a metric gate costs per wave of `release
// rollout APP --env production`, shipkit as shipped (the one file): steps 10, 50, 100 over a light
// fleet, with one gate (for: 0s, a real Prometheus answering) and without any, sides alternated, R
// runs each; medians. Goal: a gate's evaluation adds ≤ 1 s per wave (docs/environments.md "Metric
// gates"). Each run starts from a copy of one DEST holding 1.0 and 1.1 at ROLLOUT 1.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { readGate, type MetricGate } from '../lib/release/gates/metric.ts';
import { waitFor } from '../test/_helpers/common.ts';
import { hostsIn, startLightHosts, startPullFleet } from '../test/fixtures/fleet-pull.ts';
import {
  ERROR_RATIO,
  hasPrometheus,
  PROMETHEUS,
  startCountingApp,
  startPrometheus,
} from '../test/fixtures/prometheus.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'hosts'], boolean: ['keep'] });
const RUNS = Number(args.runs ?? 7);
const HOSTS = Number(args.hosts ?? 12);
const STEPS = [10, 50, 100];
const GOAL_MS = 1_000;
const APP = 'my-app';
const SECRET = 'fleet-bench-secret-0123456789abcdef';
const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
for (const name of ['SHIPKIT_REPO', 'SHIPKIT_TAG', 'SHIPKIT_REF', 'SHIPKIT_SHA', 'SHIPKIT_JOB_ID']) delete env[name];

const release = shippedArgv('release');
const root = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-gates-'));
const key = path.join(root, 'key', 'signing.asc');
const template = path.join(root, 'template');
const secretFile = path.join(root, 'fleet.secret');
// The same hosts in every run, as many in each wave: each wave waits for the same reports.
const hostsOf = STEPS.flatMap((percent, i) =>
  hostsIn('1.1', i ? STEPS[i - 1] : 0, percent, Math.max(1, Math.round(HOSTS / STEPS.length))),
);

interface Run {
  ms: number;
  stdout: string;
  /** Each stdout line with when it came, in ms since the start. */
  lines: Array<{ ms: number; text: string }>;
}

/** Runs argv to its end, timing it and each stdout line as it comes. Throws unless it exits 0. */
function timed(argv: string[]): Promise<Run> {
  const t0 = performance.now();
  const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Run['lines'] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d;
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    for (const text of parts) lines.push({ ms: performance.now() - t0, text });
  });
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, stdout, lines });
      else reject(new Error(`${argv.join(' ')} exited ${code}:\n${stdout}${stderr}`));
    });
  });
}

/**
 * Each wave from its hosts' counts being complete to the next line that is not a gate's (the next
 * step signed, or done): with a gate, its evaluation; without, only the step's end. And with a
 * gate, from those counts to its first reading's line: its query.
 */
function waveTimes(run: Run): { waves: number[]; queries: number[] } {
  const waves: number[] = [];
  const queries: number[] = [];
  for (const [i, percent] of STEPS.entries()) {
    const label = `step ${i + 1}/${STEPS.length} (ROLLOUT ${percent}): `;
    const from = run.lines.findIndex((l) => l.text.startsWith(label) && l.text.endsWith(', pending 0'));
    const to = run.lines.findIndex((l, n) => n > from && !l.text.includes(': gate "'));
    if (from < 0 || to < 0) throw new Error(`no end of wave ${i + 1} in:\n${run.stdout}`);
    waves.push(run.lines[to].ms - run.lines[from].ms);
    if (to > from + 1) queries.push(run.lines[from + 1].ms - run.lines[from].ms);
  }
  return { waves, queries };
}

/** The key, and a DEST with 1.0 (SEQ 1) and 1.1 at ROLLOUT 1 (SEQ 2) that each run copies. */
async function prepare(): Promise<void> {
  writeFileSync(secretFile, `${SECRET}\n`);
  await timed([...release, 'keys', 'init', '--out', path.dirname(key)]);
  for (const version of ['1.0', '1.1']) {
    const src = path.join(root, `src-${version}`);
    mkdirSync(src);
    writeFileSync(path.join(src, 'app.txt'), `version ${version}\n`);
    const publish = ['publish', src, '--name', APP, '--platform', 'gnu-linux', '--version', version];
    const rollout = version === '1.1' ? ['--rollout', '1'] : [];
    await timed([
      ...release,
      ...publish,
      '--key',
      key,
      '--to',
      template,
      '--state',
      path.join(root, 'state'),
      ...rollout,
    ]);
  }
}

/** shipkit.yml with my-app's production at `dest`, reached at `fleetUrl`, with `gates` (YAML) or none. */
function writeConfig(file: string, dest: string, fleetUrl: string, gates: string): void {
  writeFileSync(
    file,
    [
      'fleet:',
      `  ${APP}: { secret: file:${secretFile} }`,
      'apps:',
      `  ${APP}:`,
      `    key: file:${key}`,
      `    fleet_url: ${fleetUrl}`,
      '    environments:',
      '      production:',
      `        to: ${dest}`,
      `        fleet: ${APP}`,
      `        rollout: { steps: [${STEPS.join(', ')}], wait: 30 }`,
      ...(gates ? [`        gates: [${gates}]`] : []),
      '',
    ].join('\n'),
  );
}

interface Timed {
  ms: number;
  waves: number[];
  queries: number[];
}

/** One `release rollout --env production` of a fresh copy of the template over HOSTS healthy light hosts; ms. */
async function rolloutOnce(run: number, gates: string): Promise<Timed> {
  const dir = path.join(root, `run-${run}-${gates ? 'gate' : 'none'}`);
  const dest = path.join(dir, 'dest');
  cpSync(template, dest, { recursive: true });
  const config = path.join(dir, 'shipkit.yml');
  const fleet = await startPullFleet(APP, SECRET);
  const roles = Object.fromEntries(hostsOf.map((h) => [h, 'ok' as const]));
  const hosts = startLightHosts(fleet, dest, roles);
  try {
    writeConfig(config, dest, fleet.url, gates);
    const argv = [...release, 'rollout', APP, '--env', 'production', '--config', config, '--poll', '0.2'];
    const result = await timed([...argv, '--state', path.join(dir, 'state')]);
    const stdout = result.stdout;
    // One `passed: gate …` line per step that a gate let through (8710dad added it after each gate's readings).
    const passed = stdout.split('\n').filter((line) => line.includes(': passed: gate "')).length;
    if (!stdout.includes('done: my-app 1.1 is at ROLLOUT 100') || passed !== (gates ? STEPS.length : 0))
      throw new Error(`run ${run}: ${passed} steps passed by a gate, not ${gates ? STEPS.length : 0}:\n${stdout}`);
    return { ms: result.ms, ...waveTimes(result) };
  } finally {
    hosts.stop();
    await fleet.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!hasPrometheus()) {
  process.stderr.write(`bench:gates needs Prometheus at ${PROMETHEUS} (apt-get install prometheus)\n`);
  process.exit(2);
}
const app = await startCountingApp();
const prometheus = await startPrometheus(app.url);
try {
  await prepare();
  const gate: MetricGate = { prometheus: prometheus.url, query: ERROR_RATIO, max: 0.05, forSec: 0, text: ERROR_RATIO };
  // rate() over [5s] needs two scrapes of the app.
  await waitFor(async () => (await readGate(gate)).kind === 'ok', { timeoutMs: 20_000, intervalMs: 200 });
  const gates = `{ prometheus: ${prometheus.url}, query: '${ERROR_RATIO}', max: 0.05, for: 0s }`;
  const load = loadAverage();
  const gated: Timed[] = [];
  const bare: Timed[] = [];
  for (let run = 0; run < RUNS; run++) {
    // Alternated, the side that goes first alternating too.
    if (run % 2) bare.push(await rolloutOnce(run, ''));
    gated.push(await rolloutOnce(run, gates));
    if (!(run % 2)) bare.push(await rolloutOnce(run, ''));
  }
  const [g, b] = [median(gated.map((r) => r.ms)), median(bare.map((r) => r.ms))];
  const perWave = (g - b) / STEPS.length;
  const [gw, bw] = [median(gated.flatMap((r) => r.waves)), median(bare.flatMap((r) => r.waves))];
  const query = median(gated.flatMap((r) => r.queries));
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
  process.stderr.write(
    `${prometheus.version}\n` +
      `release rollout --env, steps ${STEPS.join(', ')}, ${hostsOf.length} light hosts, --poll 0.2, ${RUNS} runs each:\n` +
      `  with a gate (for: 0s): ${list(gated.map((r) => r.ms))} ms; median ${g.toFixed(0)} ms\n` +
      `  without any gate:      ${list(bare.map((r) => r.ms))} ms; median ${b.toFixed(0)} ms\n` +
      `  difference ${(g - b).toFixed(0)} ms: ${perWave.toFixed(0)} ms per wave (goal ≤ ${GOAL_MS} ms per wave; ` +
      `the fleet is read every 200 ms, so whole runs move in steps of about 200 ms)\n` +
      `  each wave, from its hosts' counts to the next step (median of ${gated.length * STEPS.length}): ` +
      `${gw.toFixed(1)} ms with the gate, ${bw.toFixed(1)} ms without (${(gw - bw).toFixed(1)} ms); ` +
      `the gate's query ${query.toFixed(1)} ms\n`,
  );
  reportResult({
    work: `a metric gate's evaluation per wave of release rollout --env (for: 0s, ${STEPS.length} waves)`,
    shipkit: Math.round(perWave),
    peer: null,
    unit: 'ms',
    goal: `≤ ${GOAL_MS} ms per wave`,
    met: perWave <= GOAL_MS,
    load,
    note:
      `${RUNS} runs each, alternated; medians ${g.toFixed(0)} ms with the gate, ${b.toFixed(0)} ms without; ` +
      `each wave ${gw.toFixed(1)} against ${bw.toFixed(1)} ms, the query ${query.toFixed(1)} ms; shipkit as shipped`,
  });
} finally {
  await prometheus.stop();
  app.stop();
  if (!args.keep) rmSync(root, { recursive: true, force: true });
}
