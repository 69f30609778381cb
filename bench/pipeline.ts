// npm run bench:pipeline [-- --runs 20 --hosts 20 --light 20,200 | --smoke] [--healthy-after S]: push to live. A
// real `git push` into a bare repo whose hook delivers to hook-server; the build pulls, installs
// (npm, skipped when unchanged), compiles (`npm run build`), publishes a signed release and rolls
// it out (canary 1, then 25 %, 100 %) — to real launchfit hosts (zero-downtime app, health over
// /up), and to lightweight signed HTTP hosts that answer after 100 ms (200 launchfit processes are
// too heavy for a 2-core machine). Measured from `git push` starting to every host answering with
// the new version (a launchfit host: and its old app gone; a light host: the update request, not
// a prepare, answered); the stages come from hook-server's job record and the job log's timestamps.
// What shipkit adds = total − the build's own commands (pull, install and compile steps, which
// are git and npm); the waves include the hosts' app start and health probe.
// shipkit runs as shipped: hook-server, the builds it starts and every launchfit are the one file
// (bench/shipped.ts). Ports handed to processes before they bind are chosen outside the kernel's
// ephemeral range (bench/ports.ts); the rest bind port 0. Prints the per-stage table (with the CPU
// the launchfit processes used during each push and in 1 s between pushes), each wave's launchfit
// hosts' own timeline from their output (told, staged release taken, switched, new app serving,
// healthy, the rollout's verdict), then two BENCH-RESULT rows: the share with the launchfit hosts
// (goal < 1000 ms) and its growth from the first to the last light fleet (goal < 500 ms).
// LAUNCHFIT_CPU_PROF=DIR: every launchfit writes a CPU profile into DIR, and DIR/window holds each
// push's span in the profiles' clock.
// p50 and p95 of shipkit's share are printed per fleet. `--smoke` is the regression guard CI runs
// after the suite (.ci/run): 3 pushes to the 20 launchfit hosts only, and exit 1 when their p95 is
// more than twice the p95 docs/benchmarks.md gives (its "push-to-live p95" row): a slower pipeline
// is caught, the goal itself is not timed. `--healthy-after S` sets the release's healthy_after.
import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { askApp } from '../test/fixtures/launchfit/world.ts';
import {
  RELEASE_HEALTHY_AFTER_SEC,
  startPipelineWorld,
  stepTimes,
  timedLines,
  type PipelineWorld,
} from '../test/fixtures/pipeline-world.ts';
import { runScriptsAs, tmpDir } from '../test/_helpers/common.ts';
import { quietPort } from './ports.ts';
import { reportResult } from './result.ts';
import { shippedArgv, shippedShipkit } from './shipped.ts';

console.error(`shipkit as shipped: ${shippedShipkit()}`);
runScriptsAs(shippedArgv);

const args = minimist(process.argv.slice(2), {
  string: ['runs', 'hosts', 'light', 'healthy-after'],
  boolean: ['smoke'],
});
const smoke = args.smoke === true;
const runs = Number(args.runs ?? (smoke ? 3 : 20));
const launchfitHosts = Number(args.hosts ?? 20);
const lightCounts = String(args.light ?? (smoke ? '' : '20,200'))
  .split(',')
  .filter(Boolean)
  .map(Number);
/** What the smoke holds its p95 against: read before anything starts, so a missing figure fails at once. */
const guardMs = smoke ? documentedP95(launchfitHosts) : undefined;
const WAVES = ['25%', '100%'];
/**
 * The release's healthy_after. The smoke once ran in CI beside a loaded machine, where 14 apps
 * starting at once on two cores took over 3 s to accept a connection and the rollout halted: it
 * gives them 8 s unless told (CI, alone after the suite: 3). The hold is taken out of shipkit's share.
 */
const healthyAfterSec = Number(args['healthy-after'] ?? (smoke ? 8 : RELEASE_HEALTHY_AFTER_SEC));
if (!Number.isInteger(healthyAfterSec) || healthyAfterSec < 1) {
  console.error(`bench:pipeline: --healthy-after takes whole seconds, 1 or more (got ${args['healthy-after']})`);
  process.exit(2);
}

type Row = Map<string, number>;
const SHARE = "shipkit's share (total − the build's commands − the hold)";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
/** The nearest-rank percentile: of 20 pushes, p95 is the 19th fastest; of 3, the slowest. */
const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)];

/** The p95 of shipkit's share docs/benchmarks.md gives for `hosts` launchfit hosts (its "push-to-live p95" row), ms. */
function documentedP95(hosts: number): number {
  const file = path.join(import.meta.dirname, '..', 'docs', 'benchmarks.md');
  const row = new RegExp(`^\\| push-to-live p95, shipkit's own share, ${hosts} launchfit hosts \\| ([\\d,]+) ms`, 'm');
  const found = row.exec(readFileSync(file, 'utf8'));
  if (!found) {
    console.error(
      `bench:pipeline --smoke: ${file} has no "push-to-live p95" row for ${hosts} launchfit hosts to hold to`,
    );
    process.exit(2);
  }
  return Number(found[1].replace(/,/g, ''));
}

/** The pid of the app answering on each launchfit host now (`VERSION PID NAME`). */
async function servingPids(w: PipelineWorld): Promise<Map<string, number>> {
  const pids = new Map<string, number>();
  await Promise.all(
    w.hosts.map(async (h) => {
      const pid = Number((await askApp(h.appPort, 5000))?.split(' ')[1]);
      if (pid) pids.set(h.name, pid);
    }),
  );
  return pids;
}

const alive = (pid: number | undefined) => {
  try {
    return pid !== undefined && process.kill(pid, 0);
  } catch {
    return false;
  }
};

/**
 * When every host is live: a light host once it answered the rollout's request; a launchfit
 * host once it answers `version` and the app that served before the push (`before`) has exited,
 * so only the new version can answer there. (The rollout's verdict now comes while the old app
 * still drains, so the job's end no longer implies it; without the second condition the bench
 * would stop the clock before the last wave's old apps were gone.)
 */
async function allLive(w: PipelineWorld, version: string, since: number, before: Map<string, number>): Promise<number> {
  if (w.light) {
    // A light host is live when it has answered the rollout's request (after its delay).
    return Math.max(
      ...w.light.hosts.map(
        (h) => Math.max(...h.hits.filter((x) => x.at >= since && x.path.startsWith('/?')).map((x) => x.at)) + h.delayMs,
      ),
    );
  }
  const live = new Map<string, number>();
  const deadline = Date.now() + 120_000;
  while (live.size < w.hosts.length && Date.now() < deadline) {
    await Promise.all(
      w.hosts
        .filter((h) => !live.has(h.name))
        .map(async (h) => {
          if ((await askApp(h.appPort, 1000))?.split(' ')[0] === version && !alive(before.get(h.name)))
            live.set(h.name, Date.now());
        }),
    );
    await new Promise((r) => setTimeout(r, 20));
  }
  if (live.size < w.hosts.length) throw new Error(`only ${live.size}/${w.hosts.length} hosts answer ${version}`);
  return Math.max(...live.values());
}

/**
 * Each launchfit host's own timeline of the push, from its output's lines (read with their time,
 * test/fixtures/launchfit/world.ts): when its wave started (the job log), when the host was told,
 * when it began the switch, when its new app first answered /up (its health hold starts there),
 * when it gave the verdict and when its old app exited. Medians and maxima per wave, in ms from
 * the wave's start, printed under the table (`--timeline`), so a wait of shipkit's shows where it is.
 */
const EVENTS: Array<[string, RegExp]> = [
  ['prepare asked', /prepare requested over the control listener/],
  ['staged', /release staged: downloaded/],
  ['told', /update requested over the control listener/],
  ['took staged', /installing the release staged before/],
  ['downloading', /downloading release/],
  ['verified', /signature verified/],
  ['switched', /switched current; starting the new app/],
  ['new app started', /app started/],
  ['new app serving', /^app v\d+ pid \d+ serving fd/],
  ['healthy (hold over)', /the new app is healthy; stopping the old one/],
  ['old app draining', /: draining$/],
];
/** From the job log: when the rollout step had the host's verdict (its `ok URL` line). */
const VERDICT = 'verdict at the rollout';
type Timeline = Map<string, Map<string, number[]>>;

function hostTimelines(
  w: PipelineWorld,
  since: number,
  waveStarts: Array<{ name: string; at: number; size: number }>,
  jobLines: Array<{ at: number; text: string }>,
  into: Timeline,
): void {
  let i = 0;
  for (const { name, at, size } of waveStarts) {
    const wave = into.get(name) ?? new Map<string, number[]>();
    into.set(name, wave);
    for (const host of w.hosts.slice(i, i + size)) {
      const lines = host.lf?.lines().filter((l) => l.at >= since) ?? [];
      for (const [event, re] of EVENTS) {
        const hit = lines.find((l) => re.test(l.text));
        if (hit) wave.set(event, [...(wave.get(event) ?? []), hit.at - at]);
      }
      const verdict = jobLines.find((l) => l.text.startsWith(`rollout:   ok    ${host.control} `));
      if (verdict) wave.set(VERDICT, [...(wave.get(VERDICT) ?? []), verdict.at - at]);
    }
    i += size;
  }
}

/**
 * CPU used so far by each launchfit process, in ms: its own (utime + stime) and its reaped
 * children's (cutime + cstime: the app instances that exited, with their wrappers), from
 * /proc/PID/stat in clock ticks (100 a second on Linux).
 */
function launchfitCpu(w: PipelineWorld): { own: number; children: number } {
  let own = 0;
  let children = 0;
  for (const h of w.hosts) {
    try {
      const stat = readFileSync(`/proc/${h.lf!.child.pid}/stat`, 'latin1');
      const f = stat
        .slice(stat.lastIndexOf(')') + 2)
        .split(' ')
        .map(Number);
      own += (f[11] + f[12]) * 10;
      children += (f[13] + f[14]) * 10;
    } catch {
      /* gone */
    }
  }
  return { own, children };
}

/** One push of a new app version: the stages in ms. */
async function measurePush(w: PipelineWorld, n: number, timeline?: Timeline): Promise<Row> {
  const version = `v${n}`;
  await w.commit({ 'version.txt': `${version}\n` }, `version ${version}`);
  const before = w.light ? new Map<string, number>() : await servingPids(w);
  const hr0 = process.hrtime.bigint() / 1000n;
  let cpu0 = w.light ? undefined : launchfitCpu(w);
  let idleCpu: number | undefined;
  if (cpu0) {
    // What the hosts use between pushes (the app's health probes every app.health.interval): 1 s of it.
    await new Promise((r) => setTimeout(r, 1000));
    const after = launchfitCpu(w);
    idleCpu = after.own - cpu0.own;
    cpu0 = after;
  }
  const pushed = await w.push();
  const job = await w.waitForJob(pushed.job, 300_000);
  const log = await w.jobLog(pushed.job);
  if (job.state !== 'succeeded') throw new Error(`job ${pushed.job} ${job.state}:\n${log}`);
  const live = await allLive(w, version, pushed.t0, before);
  // With LAUNCHFIT_CPU_PROF=DIR every launchfit writes a CPU profile there (test/fixtures/launchfit/world.ts);
  // each push's window, in the profiles' clock (CLOCK_MONOTONIC, µs), goes to DIR/window.
  if (process.env.LAUNCHFIT_CPU_PROF)
    appendFileSync(`${process.env.LAUNCHFIT_CPU_PROF}/window`, `${n} ${hr0} ${process.hrtime.bigint() / 1000n}\n`);
  const header = JSON.parse(/=== shipkit job \S+ start (\{.*\})/.exec(log)![1]) as { started: string };
  const lines = timedLines(log, header.started);
  const steps = stepTimes(lines);
  const span = (name: string) => {
    const s = steps.get(name);
    return s?.end ? s.end - s.start : 0;
  };
  const row: Row = new Map();
  row.set('git push → build process started (hook, 202, queue)', Date.parse(job.started) - pushed.t0);
  row.set('build start-up to its first line', Date.parse(header.started) - Date.parse(job.started));
  for (const step of ['pull', 'install', 'compile', 'publish'])
    row.set(
      `${step}${step === 'pull' ? ' (git)' : step === 'install' ? ' (npm, skipped: unchanged)' : step === 'compile' ? ' (npm run build)' : ''}`,
      span(step),
    );
  const waves = lines.flatMap((l) => {
    const m = /^rollout: (.+) done in (\d+) ms/.exec(l.text);
    return m ? [[m[1], Number(m[2])] as const] : [];
  });
  for (const [name, ms] of waves) row.set(`rollout ${name}`, ms);
  if (timeline && !w.light) {
    const starts = lines.flatMap((l) => {
      const m = /^rollout: (.+): (\d+) host\(s\)$/.exec(l.text);
      return m ? [{ name: m[1], at: l.at, size: Number(m[2]) }] : [];
    });
    hostTimelines(w, pushed.t0, starts, lines, timeline);
  }
  row.set('rollout step, outside the waves', span('rollout') - waves.reduce((t, [, ms]) => t + ms, 0));
  const known = [...row.values()].reduce((a, b) => a + b, 0);
  row.set('the rest (between steps, job end, hosts seen live)', live - pushed.t0 - known);
  row.set('(in the first row: git push returned, 202 received)', pushed.accepted - pushed.t0);
  row.set(
    "(in the first row: queue, hook-server's queued → started)",
    Date.parse(job.started) - Date.parse(job.queued),
  );
  row.set('total: git push → every host answers the new version', live - pushed.t0);
  const commands = span('pull') + span('install') + span('compile');
  row.set("the build's own commands (pull + install + compile)", commands);
  // With launchfit hosts each wave holds for the release's healthy_after (the new app serves
  // beside the old one that long before the old one stops): the release's own setting, like the
  // build's commands, so it is shown and taken out of shipkit's share.
  const hold = w.light ? 0 : waves.length * healthyAfterSec * 1000;
  row.set(`(in the waves: the release's health hold, healthy_after ${healthyAfterSec} s × ${waves.length})`, hold);
  row.set("total − the build's commands (the hold included)", live - pushed.t0 - commands);
  row.set(SHARE, live - pushed.t0 - commands - hold);
  if (cpu0) {
    const cpu1 = launchfitCpu(w);
    row.set(
      '(CPU of the 20 launchfit processes during the push)'.replace('20', String(w.hosts.length)),
      cpu1.own - cpu0.own,
    );
    row.set('(CPU of the app instances that exited during the push)', cpu1.children - cpu0.children);
    row.set('(CPU of the launchfit processes in 1 s between pushes)', idleCpu!);
  }
  return row;
}

interface Fleet {
  label: string;
  w: PipelineWorld;
  all: Row[];
  timeline: Timeline;
}

async function openFleet(label: string, options: Parameters<typeof startPipelineWorld>[1]): Promise<Fleet> {
  const w = await startPipelineWorld(tmpDir('shipkit-bench-pipeline-'), {
    canary: 1,
    waves: WAVES,
    healthyAfterSec,
    port: quietPort,
    ...options,
    progress: (l) => console.error(`  [${label}] ${l}`),
  });
  try {
    console.error(`  [${label}] warm-up push (first clone, npm install)`);
    await measurePush(w, 0);
  } catch (error) {
    await w.stop();
    throw error;
  }
  return { label, w, all: [], timeline: new Map() };
}

async function pushOnce(fleet: Fleet, i: number): Promise<void> {
  fleet.all.push(await measurePush(fleet.w, i, fleet.timeline));
  console.error(
    `  [${fleet.label}] push ${i}: ${fleet.all.at(-1)!.get('total: git push → every host answers the new version')} ms`,
  );
}

function summary(fleet: Fleet): { label: string; rows: Row; shares: number[] } {
  const rows: Row = new Map();
  for (const key of fleet.all[0].keys()) rows.set(key, median(fleet.all.map((r) => r.get(key) ?? 0)));
  return { label: fleet.label, rows, shares: fleet.all.map((r) => r.get(SHARE)!) };
}

const load = os
  .loadavg()
  .map((x) => x.toFixed(1))
  .join(' ');
const results: Array<{ label: string; rows: Row; shares: number[] }> = [];
let launchfitTimeline: Timeline = new Map();
if (launchfitHosts) {
  const fleet = await openFleet(`${launchfitHosts} launchfit`, { hosts: launchfitHosts });
  try {
    for (let i = 1; i <= runs; i++) await pushOnce(fleet, i);
    results.push(summary(fleet));
    launchfitTimeline = fleet.timeline;
  } finally {
    await fleet.w.stop();
  }
}
// The light fleets run side by side and take turns, the order reversed every push, so the growth
// from the first to the last compares pushes made under the same load.
const light: Fleet[] = [];
try {
  for (const n of lightCounts) light.push(await openFleet(`${n} light`, { lightHosts: n, lightDelayMs: 100 }));
  for (let i = 1; i <= runs; i++) for (const fleet of i % 2 ? light : [...light].reverse()) await pushOnce(fleet, i);
  results.push(...light.map(summary));
} finally {
  for (const fleet of light) await fleet.w.stop();
}

const keys = [...new Set(results.flatMap((r) => [...r.rows.keys()]))];
const width = Math.max(...keys.map((k) => k.length));
console.log(
  `push to live, median of ${runs} pushes per fleet (after a warm-up push); canary 1, waves ${WAVES.join(', ')}`,
);
console.log(
  `${os.cpus().length} cores, node ${process.version}, load average ${load} at the start, ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')} at the end`,
);
console.log(`${'ms'.padEnd(width)}  ${results.map((r) => r.label.padStart(12)).join('')}`);
for (const key of keys)
  console.log(`${key.padEnd(width)}  ${results.map((r) => String(r.rows.get(key) ?? '-').padStart(12)).join('')}`);
if (launchfitTimeline.size) {
  console.log(
    `\nlaunchfit hosts' own timeline, ms from their wave's start (median / max over the hosts of the wave and the ${runs} pushes; from each host's output)`,
  );
  for (const [wave, events] of launchfitTimeline) {
    console.log(`  ${wave}`);
    for (const event of [...EVENTS.map(([e]) => e), VERDICT]) {
      const xs = events.get(event);
      if (xs?.length)
        console.log(
          `    ${event.padEnd(22)} ${String(median(xs)).padStart(6)} / ${String(Math.max(...xs)).padStart(6)}  (${xs.length})`,
        );
    }
  }
}
console.log(`\nshipkit's share over the pushes (${SHARE}), ms:`);
for (const r of results)
  console.log(
    `  ${r.label.padEnd(12)} p50 ${String(percentile(r.shares, 50)).padStart(6)}  p95 ${String(percentile(r.shares, 95)).padStart(6)}  (${r.shares.length} pushes: ${r.shares.join(' ')})`,
  );
const share = (label: string) => results.find((r) => r.label === label)?.rows.get(SHARE);
const spread = (label: string) => {
  const xs = results.find((r) => r.label === label)?.shares ?? [];
  return xs.length ? `${Math.min(...xs)}–${Math.max(...xs)} ms` : '-';
};
const stages = (label: string) => {
  const r = results.find((x) => x.label === label)!.rows;
  return [
    'git push → build process started (hook, 202, queue)',
    'build start-up to its first line',
    'publish',
    ...[...r.keys()].filter((k) => k.startsWith('rollout ')),
  ]
    .map((k) => `${k.replace(/ \(.*\)$/, '')} ${r.get(k)}`)
    .join(', ');
};
if (launchfitHosts) {
  const shares = results.find((r) => r.label === `${launchfitHosts} launchfit`)!.shares;
  const p95 = percentile(shares, 95);
  if (guardMs !== undefined) {
    // The smoke: one line that says whether the pipeline got slower, and an exit code to act on.
    const ok = p95 <= 2 * guardMs;
    console.log(
      `bench:pipeline --smoke: p95 of shipkit's share over ${shares.length} pushes ${p95} ms; docs/benchmarks.md gives ${guardMs} ms, so the guard is ${2 * guardMs} ms: ${ok ? 'ok' : 'SLOWER than twice the documented figure'}`,
    );
    process.exit(ok ? 0 : 1);
  }
  reportResult({
    work: `push-to-live p95, shipkit's own share, ${launchfitHosts} launchfit hosts`,
    shipkit: p95,
    peer: null,
    unit: 'ms',
    goal: 'printed; --smoke fails past 2× this',
    met: null,
    note: `p95 (nearest rank) of ${shares.length} pushes, p50 ${percentile(shares, 50)} ms; \`npm run bench:pipeline -- --smoke\` fails when 3 pushes' p95 is more than twice the figure in docs/benchmarks.md`,
  });
  const ms = share(`${launchfitHosts} launchfit`)!;
  reportResult({
    work: `push-to-live, shipkit's own share, ${launchfitHosts} launchfit hosts`,
    shipkit: ms,
    peer: null,
    unit: 'ms',
    goal: '< 1000 ms',
    met: ms < 1000,
    note: `median of ${runs} pushes (${spread(`${launchfitHosts} launchfit`)}); total − pull, install, compile − the release's health hold (healthy_after ${healthyAfterSec} s per wave); ms per stage: ${stages(`${launchfitHosts} launchfit`)}`,
  });
}
const rolloutMs = (label: string) => {
  const r = results.find((x) => x.label === label)!.rows;
  return [...r.keys()].filter((k) => k.startsWith('rollout ')).reduce((t, k) => t + r.get(k)!, 0);
};
const [small, large] = lightCounts;
if (large !== undefined && share(`${small} light`) !== undefined) {
  // The growth push by push (pushes i of both fleets were made one after the other), then its median.
  const [a, b] = [
    results.find((r) => r.label === `${small} light`)!.shares,
    results.find((r) => r.label === `${large} light`)!.shares,
  ];
  const growth = median(b.map((x, i) => x - a[i]));
  console.log(
    `shipkit's share grows by ${growth} ms from ${small} to ${large} light hosts (goal < 500 ms); ${launchfitHosts} launchfit hosts: ${share(`${launchfitHosts} launchfit`) ?? '-'} ms (goal < 1000 ms)`,
  );
  reportResult({
    work: `growth of that share, ${small} → ${large} hosts`,
    shipkit: growth,
    peer: null,
    unit: 'ms',
    goal: '< 500 ms',
    met: growth < 500,
    note: `median of ${runs} pairs of pushes, the two fleets taking turns: ${share(`${small} light`)} ms (${spread(`${small} light`)}) at ${small}, ${share(`${large} light`)} ms (${spread(`${large} light`)}) at ${large} light hosts answering after 100 ms; of it the rollout step (the only stage that depends on the hosts): ${rolloutMs(`${small} light`)} → ${rolloutMs(`${large} light`)} ms`,
  });
}
process.exit(0);
