// `npm run bench:preview` (issue 56): a preview per pull request, as shipped (hook-server from the
// one file, bench/shipped.ts, which runs its build and launchfit through itself), with a real
// nginx (test/fixtures/previews/nginx.ts), a bare git repo and signed GitHub pull_request
// deliveries. The app: a small Node server with one dependency (ms), installed by `npm ci` from a
// warm npm cache. Per run (a pull request of its own): opened → 200 through nginx, with the build's
// steps, publish, launchfit's first start and the route read from the logs; a push under a paced
// 50 requests/s (failed requests, time until the new version answers); closed → 404. Then 20
// previews live at once: shipkit's memory per preview (its share of the one `launchfit host`,
// plus the app's wrapper) against the app's.
//   npm run bench:preview [-- --runs N] [--live 20] [--keep]
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import minimist from 'minimist';
import { processMarkOf } from '../lib/launchfit/deploy-folder/app-env.ts';
import { stopPreview } from '../lib/previews/launch.ts';
import { deliverGithub } from '../test/fixtures/hooks/deliveries.ts';
import { ownerPullRequest } from '../test/fixtures/hooks/pull-requests.ts';
import { previewUserEnv } from '../test/fixtures/previews/as-user.ts';
import { getThrough, startPreviewNginx, type PreviewNginx } from '../test/fixtures/previews/nginx.ts';
import {
  freePort,
  makeBareRepo,
  runCommand,
  runScriptsAs,
  startScript,
  tmpDir,
  type Server,
} from '../test/_helpers/common.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { boolean: ['keep'], default: { runs: 5, live: 20 } });
const RUNS = Number(args.runs);
const LIVE = Number(args.live);
const SECRET = `secret-${randomUUID()}`;
const TOKEN = `token-${randomUUID()}`;
const SLUG = 'octo__site';
const DEP = { name: 'ms', version: '2.1.3' };
const RATE = 50;
const GOALS = { totalMs: 15_000, shareMs: 3_000, failed: 0, teardownMs: 2_000, rssMb: 20 };

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SERVER = `// The bench's preview app: serves on every fd launchfit hands it (3… with LISTEN_FDS: the port and
// its private health socket), else on $PORT.
const fs = require('node:fs');
const http = require('node:http');
const ms = require('ms');
const version = fs.readFileSync(__dirname + '/VERSION.txt', 'utf8').trim();
const started = Date.now();
const handler = (req, res) => {
  res.setHeader('X-Up', ms(Date.now() - started));
  res.end(version + '\\n');
};
const fds = Number(process.env.LISTEN_FDS || 0);
const servers = [];
if (fds > 0) for (let i = 0; i < fds; i++) servers.push(http.createServer(handler).listen({ fd: 3 + i }));
else servers.push(http.createServer(handler).listen(Number(process.env.PORT), '127.0.0.1'));
process.on('SIGTERM', () => {
  for (const server of servers) server.close();
  setTimeout(() => process.exit(0), 200).unref();
});
`;
const PACKAGE = `${JSON.stringify({ name: 'site', version: '1.0.0', private: true, dependencies: { [DEP.name]: DEP.version } }, null, 2)}\n`;

interface Rss {
  /** The one launchfit host's RSS, for all the previews. */
  hostMb: number;
  /** The wrapper launchfit runs each app under (a perl child subreaper). */
  wrapperMb: number;
  ownMb: number;
  ownPssMb: number;
  appMb: number;
  hookMb: number;
  bareNodeMb: number;
  allMs: number;
}

interface Run {
  totalMs: number;
  ackMs: number;
  /** The delivery sent → the build job's start mark (the build process started, its config read). */
  toBuildMs: number;
  steps: Record<string, number>;
  /** The build commands' own time (npm ci, the compile command), from the build log. */
  commandsMs: number;
  buildMs: number;
  /** The build's end mark → listed with the launchfit host: publish (pack, sign). */
  publishMs: number;
  /** Listed with the host → it started the app (the install and launchfit's start in the host). */
  launchfitMs: number;
  /** The app started → 200 through nginx: its start, hook-server's health probe, nginx test and reload. */
  appToLiveMs: number;
  shareMs: number;
  push: { sent: number; failed: number; switchMs: number };
  teardownMs: number;
}

// --------------------------------------------------------------------------------------------

/** One GET through nginx for pr-N; status 0 for a transport error. */
async function through(nginx: PreviewNginx, pr: number) {
  return getThrough(nginx.port, '/', `pr-${pr}.preview.test`).catch((error) => ({
    status: 0,
    body: String(error),
  }));
}

/** Polls every 20 ms until `ok` holds for an answer; the time it first did (ms since epoch). */
async function until(
  nginx: PreviewNginx,
  pr: number,
  ok: (a: { status: number; body: string }) => boolean,
  timeoutMs = 120_000,
  what = '',
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = { status: -1, body: '' };
  while (Date.now() < deadline) {
    last = await through(nginx, pr);
    if (ok(last)) return Date.now();
    await sleep(20);
  }
  throw new Error(
    `pr-${pr}: ${what} not seen within ${timeoutMs} ms (last: ${last.status} ${last.body.slice(0, 200)})`,
  );
}

/** Hook-server's JSON log lines with `msg` matching and `pr` equal, their times in ms. */
function hookEvents(out: string, pr: number, msg: RegExp): Array<{ time: number; line: Record<string, any> }> {
  const found: Array<{ time: number; line: Record<string, any> }> = [];
  for (const text of out.split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const line = JSON.parse(text);
      if (msg.test(line.msg) && (line.pr === pr || line.preview === `pr-${pr}`))
        found.push({ time: Date.parse(line.time), line });
    } catch {
      /* not a JSON line */
    }
  }
  return found;
}

/**
 * The build log (FOLDER/logs/logs.txt): the job's start and end marks, each step's time (from its
 * `--- step NAME` line to its `--- step NAME ok (…)` line) and the time of the commands the
 * repo's install and compile steps run (each `$ command` line to the next timed line that starts
 * a command or closes the step): npm ci and the compile command, not shipkit's git.
 */
function readBuildLog(file: string) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const steps: Record<string, number> = {};
  let start: number | undefined;
  let end: number | undefined;
  let commandsMs = 0;
  let step: { name: string; at: number } | undefined;
  let command: number | undefined;
  const ofDay = (hms: string) => {
    const [h, m, sec] = hms.split(':').map(Number);
    return ((h * 60 + m) * 60 + sec) * 1000;
  };
  const since = (from: number, to: number) => (to - from + 86_400_000) % 86_400_000;
  for (const line of text.split('\n')) {
    const mark = /^=== shipkit job \S+ (start|end) (\{.*\})$/.exec(line);
    if (mark) {
      const json = JSON.parse(mark[2]);
      if (mark[1] === 'start') start = Date.parse(json.started);
      else end = Date.parse(json.finished);
      continue;
    }
    const timed = /^(\d\d:\d\d:\d\d\.\d{3}) (.*)$/.exec(line);
    if (!timed) continue;
    const at = ofDay(timed[1]);
    const rest = timed[2];
    if (command !== undefined && (rest.startsWith('$ ') || rest.startsWith('--- '))) {
      commandsMs += since(command, at);
      command = undefined;
    }
    const opened = /^--- step (\S+)$/.exec(rest);
    if (opened) step = { name: opened[1], at };
    const closed = /^--- step (\S+) (ok|failed|skipped)/.exec(rest);
    if (closed && step?.name === closed[1]) steps[closed[1]] = since(step.at, at);
    if (rest.startsWith('$ ') && (step?.name === 'install' || step?.name === 'compile')) command = at;
  }
  return { start, end, steps, commandsMs, text };
}

/** When process PID started, ms since the epoch, to /proc's 10 ms (boot time from /proc/uptime, not btime's whole seconds). */
function startedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Date.now() - uptime * 1000 + ticks * 10;
  } catch {
    return undefined;
  }
}

/** launchfit's pid and its app's (from launchfit.log's `app started: … pid=N`), with their start times. */
/** When the preview was listed with the launchfit host (its roster entry's `since`), and its app's start. */
function launchTimes(folder: string): { launchfitAt?: number; appAt?: number } {
  try {
    const entry = path.join(
      path.dirname(path.dirname(folder)),
      '.launchfit-host',
      'roster',
      `${SLUG}.${path.basename(folder)}.json`,
    );
    const listedAt = JSON.parse(readFileSync(entry, 'utf8')).since as number;
    const app = /app started: .* pid=(\d+)/.exec(readFileSync(path.join(folder, 'launchfit.log'), 'utf8'))?.[1];
    return { launchfitAt: listedAt, appAt: app ? startedAt(Number(app)) : undefined };
  } catch {
    return {};
  }
}

/** The app's start alone: `node server.cjs` on $PORT until it answers 200, median of `runs`. */
async function appStartAlone(dir: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const port = await freePort();
    const t0 = performance.now();
    const child = spawn(process.execPath, ['server.cjs'], { cwd: dir, env: { ...process.env, PORT: String(port) } });
    try {
      for (;;) {
        const status = await new Promise<number>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', () => resolve(0));
        });
        if (status === 200) break;
        if (performance.now() - t0 > 10_000) throw new Error('the app did not answer within 10 s');
        await sleep(5);
      }
      times.push(performance.now() - t0);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  }
  return median(times);
}

/** Every process's parent, from /proc/PID/stat. */
function parents(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      /* gone */
    }
  }
  return children;
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
};

/** VmRSS (or Pss, from smaps_rollup: shared pages split among their users) of a process in kB; 0 when gone. */
function memKb(pid: number, field: 'VmRSS' | 'Pss' = 'VmRSS'): number {
  try {
    const file = field === 'Pss' ? `/proc/${pid}/smaps_rollup` : `/proc/${pid}/status`;
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * pr-N's processes, found by launchfit's mark of its host/ folder: the app's (`node server.cjs`
 * and what it starts) and shipkit's own (the wrapper launchfit runs each app under).
 */
function processesOf(data: string, pr: number, tree: Map<number, number[]>) {
  const mark = `LAUNCHFIT_MARK=${processMarkOf(path.join(data, 'previews', SLUG, `pr-${pr}`, 'host'))}`;
  const own: number[] = [];
  const app: number[] = [];
  const walk = (pid: number) => {
    app.push(pid);
    for (const child of tree.get(pid) ?? []) walk(child);
  };
  for (const pid of readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(mark)) continue;
    } catch {
      continue;
    }
    if (cmdline(pid) === 'node server.cjs') walk(pid);
    else if (!app.includes(pid)) own.push(pid);
  }
  return { own: own.filter((pid) => !app.includes(pid)), app };
}

/** A bare `node` process's RSS after 1 s, in kB: the floor of any process of Node. */
async function bareNodeRssKb(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await sleep(1_000);
  const kb = memKb(child.pid!);
  child.kill('SIGKILL');
  return kb;
}

// --------------------------------------------------------------------------------------------

async function main() {
  runScriptsAs(shippedArgv);
  const dir = tmpDir('shipkit-bench-preview-');
  // launchfit's control socket is DATA/previews/SLUG/pr-N/host/.launchfit/control.sock (≤ 107 bytes).
  const data = mkdtempSync('/tmp/skp-');
  const npmCache = path.join(dir, 'npm-cache');
  let nginx: PreviewNginx | undefined;
  let server: Server | undefined;
  const cleanup = async () => {
    await server?.stop('SIGTERM').catch(() => undefined);
    const root = path.join(data, 'previews', SLUG);
    for (const name of existsSync(root) ? readdirSync(root) : [])
      await stopPreview(path.join(root, name)).catch((e) => log(`stopPreview ${name}: ${e}`));
    await nginx?.stop().catch(() => undefined);
    if (!args.keep) rmSync(data, { recursive: true, force: true });
    else log(`kept DATA ${data}`);
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    // The app: its lockfile made once, and the npm cache warmed by an `npm ci` of it.
    const warm = path.join(dir, 'warm');
    mkdirSync(warm);
    writeFileSync(path.join(warm, 'package.json'), PACKAGE);
    writeFileSync(path.join(warm, 'server.cjs'), SERVER);
    writeFileSync(path.join(warm, 'VERSION.txt'), 'alone\n');
    const npm = (...a: string[]) =>
      runCommand('npm', [...a, '--cache', npmCache, '--no-audit', '--no-fund'], { cwd: warm, timeoutMs: 120_000 });
    for (const step of [['install', '--package-lock-only'], ['ci']]) {
      const r = await npm(...step);
      if (r.exitCode !== 0) throw new Error(`npm ${step.join(' ')}: ${r.stderr}`);
    }
    const lock = readFileSync(path.join(warm, 'package-lock.json'), 'utf8');
    log(`app start alone (node server.cjs on $PORT until 200), ${Math.max(RUNS, 5)} runs …`);
    const appAloneMs = await appStartAlone(warm, Math.max(RUNS, 5));

    nginx = await startPreviewNginx();
    const repo = await makeBareRepo(dir, 'site', {
      'server.cjs': SERVER,
      'package.json': PACKAGE,
      'package-lock.json': lock,
      'VERSION.txt': 'v0\n',
    });
    const config = path.join(dir, 'shipkit.yml');
    writeFileSync(
      config,
      [
        'listen: 127.0.0.1:0',
        `data: ${data}`,
        'secret: env:HOOK_SECRET',
        'token: env:HOOK_TOKEN',
        'repos:',
        '  octo/site:',
        `    url: file://${repo.bare}`,
        '    steps: [pull, install, compile]',
        '    compile: echo "built $SHIPKIT_PR" > BUILT.txt',
        '    previews:',
        '      domain: preview.test',
        '      nginx:',
        `        dir: ${nginx.domainDir}`,
        `        listen: 127.0.0.1:${nginx.port}`,
        `        test: ${nginx.test}`,
        `        reload: ${nginx.reload}`,
        '      start: node server.cjs',
        '      health: /',
        `      max: ${Math.max(LIVE, 1)}`,
        '',
      ].join('\n'),
    );
    server = await startScript('hook-server', ['--config', config], {
      env: {
        ...(await previewUserEnv([dir, data])),
        HOOK_SECRET: SECRET,
        HOOK_TOKEN: TOKEN,
        LOG_FORMAT: 'json',
        npm_config_cache: npmCache,
      },
    });
    const event = (action: string, pr: number, sha: string) => {
      const payload = ownerPullRequest(action, { pr, sha, cloneUrl: `file://${repo.bare}` });
      return deliverGithub(server!.url, 'pull_request', payload, SECRET);
    };

    const runs: Run[] = [];
    for (let i = 1; i <= RUNS; i++) {
      const pr = i;
      const v1 = `r${i}-a`;
      const v2 = `r${i}-b`;
      const sha1 = await repo.commit({ 'VERSION.txt': `${v1}\n` });
      // 1. opened → 200 through nginx.
      const t0 = Date.now();
      const answer = await event('opened', pr, sha1);
      const ackMs = Date.now() - t0;
      if (answer.status !== 202) throw new Error(`opened: ${answer.status} ${JSON.stringify(answer.json)}`);
      const live = await until(nginx, pr, (a) => a.status === 200 && a.body === `${v1}\n`, 120_000, v1);
      const totalMs = live - t0;
      const folder = path.join(data, 'previews', SLUG, `pr-${pr}`);
      const build = readBuildLog(path.join(folder, 'logs', 'logs.txt'));
      const { launchfitAt, appAt } = launchTimes(folder);
      const run: Run = {
        totalMs,
        ackMs,
        toBuildMs: build.start ? build.start - t0 : NaN,
        steps: build.steps,
        commandsMs: build.commandsMs,
        buildMs: build.start && build.end ? build.end - build.start : NaN,
        publishMs: build.end && launchfitAt ? launchfitAt - build.end : NaN,
        launchfitMs: launchfitAt && appAt ? appAt - launchfitAt : NaN,
        appToLiveMs: appAt ? live - appAt : NaN,
        shareMs: totalMs - build.commandsMs - appAloneMs,
        push: { sent: 0, failed: 0, switchMs: NaN },
        teardownMs: NaN,
      };
      if (i === 1 && process.env.BENCH_PREVIEW_DEBUG) {
        log(`--- build log ---\n${build.text}`);
        log(`--- launchfit.log ---\n${readFileSync(path.join(folder, 'launchfit.log'), 'utf8')}`);
        log(`--- hook-server ---\n${server.output()}`);
      }
      // 3. a push under a paced 50 requests/s.
      const sha2 = await repo.commit({ 'VERSION.txt': `${v2}\n` });
      const load = pacedLoad(nginx, pr, [`${v1}\n`, `${v2}\n`]);
      const p0 = Date.now();
      const pushed = await event('synchronize', pr, sha2);
      if (pushed.status !== 202) throw new Error(`synchronize: ${pushed.status} ${JSON.stringify(pushed.json)}`);
      const switched = await until(nginx, pr, (a) => a.status === 200 && a.body === `${v2}\n`, 120_000, v2);
      await sleep(500);
      run.push = { ...(await load.stop()), switchMs: switched - p0 };
      // 4. closed → 404.
      const c0 = Date.now();
      const closed = await event('closed', pr, sha2);
      if (closed.status !== 202) throw new Error(`closed: ${closed.status} ${JSON.stringify(closed.json)}`);
      run.teardownMs = (await until(nginx, pr, (a) => a.status === 404, 30_000, '404')) - c0;
      runs.push(run);
      log(
        `run ${i}: total ${totalMs} ms: ack ${ackMs}, → build start ${run.toBuildMs}, build ${run.buildMs} ` +
          `(${Object.entries(run.steps)
            .map(([k, v]) => `${k} ${v}`)
            .join(
              ', ',
            )}; commands ${run.commandsMs}), → listed with the launchfit host ${run.publishMs}, → app started ` +
          `${run.launchfitMs}, → 200 through nginx ${run.appToLiveMs}; share ${Math.round(run.shareMs)} ms; push: ` +
          `${run.push.failed} of ${run.push.sent} failed, new version after ${run.push.switchMs} ms; teardown ${run.teardownMs} ms`,
      );
    }

    // 5. LIVE previews at once.
    let rss: Rss | undefined;
    if (LIVE > 0) {
      const sha = await repo.commit({ 'VERSION.txt': 'live\n' });
      const prs = Array.from({ length: LIVE }, (_, k) => 101 + k);
      const l0 = Date.now();
      for (const pr of prs) {
        const a = await event('opened', pr, sha);
        if (a.status !== 202) throw new Error(`opened pr-${pr}: ${a.status} ${JSON.stringify(a.json)}`);
      }
      await Promise.all(prs.map((pr) => until(nginx!, pr, (a) => a.status === 200, 600_000, `pr-${pr} live`)));
      const allMs = Date.now() - l0;
      await sleep(3_000); // past launchfit's probation (healthy_after: 2)
      const tree = parents();
      const sum = (pids: number[], field: 'VmRSS' | 'Pss' = 'VmRSS') =>
        pids.reduce((t, pid) => t + memKb(pid, field), 0);
      const host = JSON.parse(readFileSync(path.join(data, 'previews', '.launchfit-host', 'host.pid'), 'utf8')).pid;
      const [hostKb, hostPssKb] = [memKb(host), memKb(host, 'Pss')];
      const perPreview = prs.map((pr) => {
        const p = processesOf(data, pr, tree);
        return {
          own: hostKb / LIVE + sum(p.own),
          ownPss: hostPssKb / LIVE + sum(p.own, 'Pss'),
          wrapper: sum(p.own),
          app: sum(p.app),
          procs: `shipkit's: ${p.own.map((pid) => cmdline(pid).slice(0, 60)).join(' | ')}; the app's: ${p.app.map(cmdline).join(' | ')}`,
        };
      });
      log(`pr-101's processes: ${perPreview[0].procs}`);
      const mb = (xs: number[]) => median(xs) / 1024;
      rss = {
        hostMb: hostKb / 1024,
        wrapperMb: mb(perPreview.map((p) => p.wrapper)),
        ownMb: mb(perPreview.map((p) => p.own)),
        ownPssMb: mb(perPreview.map((p) => p.ownPss)),
        appMb: mb(perPreview.map((p) => p.app)),
        hookMb: memKb(server.child.pid!) / 1024,
        bareNodeMb: (await bareNodeRssKb()) / 1024,
        allMs,
      };
      log(`${LIVE} live after ${allMs} ms; per preview (median): ${JSON.stringify(rss)}`);
    }

    printTable(runs, appAloneMs, rss);
  } finally {
    await cleanup();
  }
}

/** GETs through nginx at RATE per second, paced (not waiting for answers); stop() counts them. */
function pacedLoad(nginx: PreviewNginx, pr: number, good: string[]) {
  let sent = 0;
  let failed = 0;
  const pending: Array<Promise<void>> = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    sent++;
    const at = Date.now() - t0;
    pending.push(
      through(nginx, pr).then((a) => {
        if (a.status !== 200 || !good.includes(a.body)) {
          failed++;
          if (failed <= 3) log(`  failed request (sent ${at} ms into the load): ${a.status} ${a.body.slice(0, 120)}`);
        }
      }),
    );
  }, 1000 / RATE);
  return {
    stop: async () => {
      clearInterval(timer);
      await Promise.all(pending);
      return { sent, failed };
    },
  };
}

function printTable(runs: Run[], appAloneMs: number, rss: Rss | undefined) {
  const m = (f: (r: Run) => number | undefined) => {
    const xs = runs.map(f).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return xs.length ? median(xs) : NaN;
  };
  const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x).toLocaleString('en-US')} ms` : '–');
  const rows: Array<[string, string, string, boolean | null]> = [];
  const total = m((r) => r.totalMs);
  const share = m((r) => r.shareMs);
  const failed = Math.max(...runs.map((r) => r.push.failed));
  const teardown = m((r) => r.teardownMs);
  rows.push(['PR opened → 200 through nginx', ms(total), '≤ 15,000 ms', total <= GOALS.totalMs]);
  rows.push(["shipkit's share (total − build commands − app start)", ms(share), '≤ 3,000 ms', share <= GOALS.shareMs]);
  rows.push(['  webhook answered (202)', ms(m((r) => r.ackMs)), '–', null]);
  rows.push(['  delivery → build job started (build process start-up)', ms(m((r) => r.toBuildMs)), '–', null]);
  rows.push(['  build job (start → end mark)', ms(m((r) => r.buildMs)), '–', null]);
  for (const step of Object.keys(runs[0]?.steps ?? {}))
    rows.push([`    step ${step}`, ms(m((r) => r.steps[step])), '–', null]);
  rows.push(['    of which build commands (npm ci, compile)', ms(m((r) => r.commandsMs)), '–', null]);
  rows.push(['  build end → listed with the launchfit host (publish, sign)', ms(m((r) => r.publishMs)), '–', null]);
  rows.push(['  listed → app started (install, launchfit start in the host)', ms(m((r) => r.launchfitMs)), '–', null]);
  rows.push([
    '  app started → 200 through nginx (health, nginx test + reload)',
    ms(m((r) => r.appToLiveMs)),
    '–',
    null,
  ]);
  rows.push(["    the app's own start (alone: node server.cjs → 200)", ms(appAloneMs), '–', null]);
  const sent = runs.reduce((s, r) => s + r.push.sent, 0);
  const allFailed = runs.reduce((s, r) => s + r.push.failed, 0);
  rows.push([
    `push: failed requests at ${RATE}/s (max of runs; ${allFailed} of ${sent} in all)`,
    String(failed),
    '0',
    failed === 0,
  ]);
  rows.push(['push → new version answers', ms(m((r) => r.push.switchMs)), '–', null]);
  rows.push(['closed → 404 through nginx', ms(teardown), '≤ 2,000 ms', teardown <= GOALS.teardownMs]);
  if (rss) {
    rows.push([`${LIVE} previews opened → all answer 200`, ms(rss.allMs), '–', null]);
    rows.push([
      "shipkit's RSS per preview (a share of the launchfit host + the app's wrapper)",
      `${rss.ownMb.toFixed(1)} MB`,
      "≤ 20 MB beyond the app's",
      rss.ownMb <= GOALS.rssMb,
    ]);
    rows.push([`  the launchfit host's RSS (one, for all ${LIVE})`, `${rss.hostMb.toFixed(1)} MB`, '–', null]);
    rows.push(["  the app's wrapper's RSS (one per preview)", `${rss.wrapperMb.toFixed(1)} MB`, '–', null]);
    rows.push(["  shipkit's processes' PSS (shared pages split)", `${rss.ownPssMb.toFixed(1)} MB`, '–', null]);
    rows.push(["  the app's RSS (node server.cjs)", `${rss.appMb.toFixed(1)} MB`, '–', null]);
    rows.push(['  a bare `node -e` process, for scale', `${rss.bareNodeMb.toFixed(1)} MB`, '–', null]);
    rows.push([`  hook-server's RSS (one, for all ${LIVE})`, `${rss.hookMb.toFixed(1)} MB`, '–', null]);
  }
  const met = (x: boolean | null) => (x === null ? '' : x ? 'met' : 'MISSED');
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => String(r[c]).length), 8));
  console.log(`\nbench:preview — ${runs.length} runs, medians; load ${loadAverage()}`);
  console.log(
    `| ${'measure'.padEnd(widths[0])} | ${'median'.padStart(widths[1])} | ${'goal'.padEnd(widths[2])} | met? |`,
  );
  console.log(`|${'-'.repeat(widths[0] + 2)}|${'-'.repeat(widths[1] + 2)}:|${'-'.repeat(widths[2] + 2)}|------|`);
  for (const [a, b, c, d] of rows)
    console.log(`| ${a.padEnd(widths[0])} | ${b.padStart(widths[1])} | ${c.padEnd(widths[2])} | ${met(d)} |`);
  const note = `median of ${runs.length} runs`;
  reportResult({
    work: 'preview: PR opened → 200 through nginx',
    shipkit: total,
    peer: null,
    unit: 'ms',
    goal: '≤ 15,000 ms',
    met: total <= GOALS.totalMs,
    note,
  });
  reportResult({
    work: "preview: shipkit's share",
    shipkit: share,
    peer: null,
    unit: 'ms',
    goal: '≤ 3,000 ms',
    met: share <= GOALS.shareMs,
    note,
  });
  reportResult({
    work: 'preview: failed requests during a push',
    shipkit: failed,
    peer: null,
    unit: 'requests',
    goal: '0',
    met: failed === 0,
    note: `${RATE}/s`,
  });
  reportResult({
    work: 'preview: closed → 404',
    shipkit: teardown,
    peer: null,
    unit: 'ms',
    goal: '≤ 2,000 ms',
    met: teardown <= GOALS.teardownMs,
    note,
  });
  if (rss)
    reportResult({
      work: "preview: shipkit's RSS per preview",
      shipkit: rss.ownMb,
      peer: null,
      unit: 'MB',
      goal: '≤ 20 MB',
      met: rss.ownMb <= GOALS.rssMb,
      note: `${LIVE} live; one launchfit host ${rss.hostMb.toFixed(1)} MB, a wrapper ${rss.wrapperMb.toFixed(1)} MB`,
    });
  const missed = rows.filter((r) => r[3] === false).map((r) => r[0].trim());
  console.log(missed.length ? `MISSED: ${missed.join('; ')}` : 'all goals met');
}

await main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
