// Part (z) of `npm run bench:launchfit`: updates under steady load, side by side with pm2.
// The same tiny app (bench/zero-downtime-app.cjs) under autocannon's 50 connections, five
// updates in each mode:
//   launchfit with app.listen and the HTTP probe (new app beside the old one on the same sockets);
//   launchfit without app.listen (stop, swap, start; the same probe);
//   pm2 reload in fork mode, and in cluster mode (wait_ready, SIGINT, kill_timeout).
// Then a bad release (exits at once) in both launchfit modes. Per mode: failed requests, the
// longest gap without a 2xx answer, and the p99 latency during the updates against steady state.
//   BENCH_PARTS=z npm run bench:launchfit   (BENCH_UPDATES=5, BENCH_RATE=0 for unthrottled,
//   BENCH_ZMODES=lnfc to pick modes: l listen, n no listen, f pm2 fork, c pm2 cluster)
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requestOverSocket } from '../lib/launchfit/control/socket.ts';
import { freePort, runScript, tmpDir, waitFor } from '../test/_helpers/common.ts';
import { askApp, makeWorld, startLaunchfit } from '../test/fixtures/launchfit/world.ts';
import { installPm2, usePm2, PM2_VERSION } from './pm2.ts';
import { startLoad, type WindowStats } from './zero-downtime-load.ts';

const APP_FILE = path.join(import.meta.dirname, 'zero-downtime-app.cjs');
const APP = readFileSync(APP_FILE, 'utf8');
const UPDATES = Number(process.env.BENCH_UPDATES ?? 5);
const RATE = Number(process.env.BENCH_RATE ?? 0);
const CONNECTIONS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Updater {
  /** Work before the update that is not part of it (publishing the release, writing the files). */
  prepare(i: number): Promise<void>;
  update(i: number): Promise<void>;
  bad?: { prepare(): Promise<void>; update(): Promise<void> };
}

export interface ModeResult {
  mode: string;
  steady: WindowStats;
  updates: WindowStats[];
  bad?: WindowStats;
  versions: string[];
}

/** Steady load; 4 s of steady state (after 1 s of warm-up), then the updates, about 2 s apart. */
async function underLoad(mode: string, port: number, u: Updater, lastVersion: string): Promise<ModeResult> {
  const load = await startLoad({ port, connections: CONNECTIONS, rate: RATE });
  await sleep(4000);
  const during = async (prepare: () => Promise<void>, update: () => Promise<void>) => {
    // Publishing runs in this process, beside autocannon, and would stall it: not steady state.
    const prepared = load.exclude();
    await prepare();
    await sleep(250);
    prepared();
    await sleep(500);
    const end = load.mark();
    await update();
    // Until the app answers again (after a rollback without app.listen, the old app restarts), and
    // the answers that were in flight.
    await waitFor(() => askApp(port, 1000), { what: `${mode}: the app to answer after an update`, timeoutMs: 30_000 });
    await sleep(250);
    end();
    await sleep(1000);
  };
  for (let i = 1; i <= UPDATES; i++)
    await during(
      () => u.prepare(i),
      () => u.update(i),
    );
  if (u.bad) await during(u.bad.prepare, u.bad.update);
  await sleep(1000);
  const r = await load.stop();
  const last = await askApp(port);
  if (!last?.startsWith(`${lastVersion} `))
    throw new Error(`${mode}: after the updates the app answers ${JSON.stringify(last)}, not version ${lastVersion}`);
  return {
    mode,
    steady: r.steady,
    updates: r.windows.slice(0, UPDATES),
    bad: u.bad ? r.windows[UPDATES] : undefined,
    versions: [...r.bodies].sort(),
  };
}

async function launchfitMode(listen: boolean): Promise<ModeResult> {
  const w = await makeWorld();
  const port = w.appPort;
  const yml = 'app:\n  exec: node server.cjs\n  healthy_after: 5\n  kill_timeout: 5\n  forever: true\n';
  const publish = (version: string, files: Record<string, string> = {}) =>
    w.publish(version, { files: { 'server.cjs': APP, ...files }, yml });
  await publish('1.0');
  const health = `  health:\n    http: http://127.0.0.1:${port}/up\n    interval: 0.1\n    timeout: 1\n`;
  w.writeConfig('', listen ? `  listen: [127.0.0.1:${port}]\n  drain: 5\n${health}` : health);
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  if (deployed.exitCode !== 0) throw new Error(deployed.stderr);
  const lf = await startLaunchfit(w.deploy);
  const ask = async (expect: string) => {
    const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
    const result = answer?.body.result as { action?: string; message?: string } | undefined;
    if (result?.action !== expect)
      throw new Error(`launchfit update: expected ${expect}, got ${JSON.stringify(answer?.body)}`);
  };
  try {
    await waitFor(async () => (await askApp(port))?.startsWith('1.0 '), {
      what: 'the app under launchfit',
      timeoutMs: 30_000,
    });
    return await underLoad(
      listen ? 'launchfit, app.listen' : 'launchfit, no app.listen',
      port,
      {
        prepare: (i) => publish(`1.${i}`),
        update: () => ask('installed'),
        bad: { prepare: () => publish(`1.${UPDATES + 1}`, { crash: '' }), update: () => ask('unhealthy') },
      },
      `1.${UPDATES}`,
    );
  } finally {
    await lf.stop();
    await w.server.close();
  }
}

async function pm2Mode(bin: string, mode: 'fork' | 'cluster'): Promise<ModeResult> {
  const base = tmpDir('shipkit-bench-pm2-');
  const app = path.join(base, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'server.cjs'), APP);
  const setVersion = async (v: string) => writeFileSync(path.join(app, 'version.txt'), `${v}\n`);
  await setVersion('2.0');
  const port = await freePort();
  const pm2 = usePm2(bin, path.join(base, 'home'));
  try {
    await pm2.start({
      name: 'bench',
      script: path.join(app, 'server.cjs'),
      cwd: app,
      mode,
      env: { PORT: String(port) },
    });
    await waitFor(async () => (await askApp(port))?.startsWith('2.0 '), {
      what: `the app under pm2 (${mode})`,
      timeoutMs: 30_000,
    });
    return await underLoad(
      `pm2 reload, ${mode} mode`,
      port,
      {
        prepare: (i) => setVersion(`2.${i}`),
        update: () => pm2.reload('bench'),
      },
      `2.${UPDATES}`,
    );
  } finally {
    await pm2.kill();
  }
}

const fmt = (ms: number) => `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
const kinds = (s: WindowStats[]) => {
  const all: Record<string, number> = {};
  for (const w of s) for (const [k, n] of Object.entries(w.kinds)) all[k] = (all[k] ?? 0) + n;
  const text = Object.entries(all)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  return text ? ` (${text})` : '';
};

/** The table, one row per mode, plus a row per bad release. */
export function formatZeroDowntime(results: ModeResult[]): string[] {
  const rows = [
    [
      'mode',
      'failed requests',
      'longest gap (median / worst)',
      'gap steady',
      'p99 steady',
      'p99 in updates (median)',
      'ratio',
    ],
  ];
  for (const r of results) {
    const p99 = median(r.updates.map((u) => u.p99Ms));
    const gaps = r.updates.map((u) => u.maxGapMs);
    rows.push([
      r.mode,
      `${r.updates.reduce((n, u) => n + u.failed, 0)}${kinds(r.updates)}`,
      `${fmt(median(gaps))} / ${fmt(Math.max(...gaps))}`,
      fmt(r.steady.maxGapMs),
      fmt(r.steady.p99Ms),
      fmt(p99),
      `${(p99 / r.steady.p99Ms).toFixed(1)}x`,
    ]);
  }
  for (const r of results.filter((x) => x.bad)) {
    rows.push([
      `${r.mode}: bad release`,
      `${r.bad!.failed}${kinds([r.bad!])}`,
      fmt(r.bad!.maxGapMs),
      fmt(r.steady.maxGapMs),
      fmt(r.steady.p99Ms),
      fmt(r.bad!.p99Ms),
      `${(r.bad!.p99Ms / r.steady.p99Ms).toFixed(1)}x`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows
    .map((row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`)
    .flatMap((line, i) => (i === 0 ? [line, `|${widths.map((n) => '-'.repeat(n + 2)).join('|')}|`] : [line]));
}

/** Every mode in turn; pm2 is always killed. */
export async function benchZeroDowntime(
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<string[]> {
  const modes = process.env.BENCH_ZMODES ?? 'lnfc';
  const load = () =>
    os
      .loadavg()
      .map((n) => n.toFixed(1))
      .join(' ');
  const loadBefore = load();
  const results: ModeResult[] = [];
  const bin = /[fc]/.test(modes) ? await installPm2(log) : '';
  for (const [key, run] of [
    ['l', () => launchfitMode(true)],
    ['n', () => launchfitMode(false)],
    ['f', () => pm2Mode(bin, 'fork')],
    ['c', () => pm2Mode(bin, 'cluster')],
  ] as const) {
    if (!modes.includes(key)) continue;
    log(`(z) ${key}...`);
    results.push(await run());
  }
  return [
    `(z) ${UPDATES} updates under load (autocannon, ${CONNECTIONS} connections${RATE ? `, ${RATE} req/s` : ''}), pm2 ${PM2_VERSION}; load average ${loadBefore} before, ${load()} after:`,
    ...formatZeroDowntime(results),
  ];
}
