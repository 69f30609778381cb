// Benchmarks for launchfit, each against a peer measured in the same run:
//  (a) installing a 200 MB release from a loopback server with `launchfit deploy`, against
//      `curl -o f && gpgv f.sig f && tar xzf f` on the same files — the ratio;
//  (b) launchfit's peak memory (RSS) during that install, against its RSS at --help;
//  (c) the downtime of an update — the gap between the old app's last answer and the new
//      app's first, polled every 5 ms — against the app's own start time;
//  (d) the cost of an idle check (a conditional GET answered 304), against an unconditional check;
//  (z) updates under steady load, against pm2 reload in fork and cluster mode (bench/zero-downtime.ts).
//   npm run bench:launchfit   (BENCH_MB=50 for a smaller release, BENCH_RUNS=3, BENCH_PARTS=abcdz)
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync, createWriteStream } from 'node:fs';
import path from 'node:path';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { requestOverSocket } from '../lib/launchfit/control/socket.ts';
import { loadLaunchConfig } from '../lib/launchfit/deploy-folder/config.ts';
import { updateOnce } from '../lib/launchfit/launcher.ts';
import { deployPaths } from '../lib/launchfit/deploy-folder/state.ts';
import { checkForUpdates } from '../lib/launchfit/install/update.ts';
import { silentLogger } from '../lib/core/log.ts';
import { freePort, tmpDir } from '../test/_helpers/common.ts';
import { shippedArgv } from './shipped.ts';
import { detachSign, exportPublic, genKey, makeGpgHome } from '../test/fixtures/launchfit/gpg.ts';
import { makeTar } from '../test/fixtures/launchfit/tarball.ts';
import { startUpdateServer } from '../test/fixtures/launchfit/update-server.ts';
import { askApp, makeWorld, startLaunchfit } from '../test/fixtures/launchfit/world.ts';
import { benchZeroDowntime } from './zero-downtime.ts';

const MB = Number(process.env.BENCH_MB ?? 200);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms: number) => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;

/** Run a command; wall time and peak RSS (sampled from /proc every 10 ms). */
function measure(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ ms: number; peakKb: number; code: number | null; out: string }> {
  const t0 = performance.now();
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, NO_COLOR: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let peakKb = 0;
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const sample = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch {
      /* exited */
    }
  }, 10);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearInterval(sample);
      resolve({ ms: performance.now() - t0, peakKb, code, out });
    }),
  );
}

async function benchInstall() {
  const base = tmpDir('shipkit-bench-');
  const g = makeGpgHome();
  const key = await genKey(g, 'Bench <bench@example.com>');
  const keyfile = await exportPublic(g, key.fpr, path.join(base, 'pub.asc'));
  const keyring = await exportPublic(g, key.fpr, path.join(base, 'pub.gpg'), false);
  const updates = path.join(base, 'updates');
  mkdirSync(updates);
  const file = `big-app-gnu-linux-1.0.tar.gz`;
  const tarball = path.join(updates, file);
  // Incompressible content, so the tarball really is MB megabytes (10 MB files).
  process.stderr.write(`making a ${MB} MB release...\n`);
  const entries = Array.from({ length: Math.max(1, Math.round(MB / 10)) }, (_, i) => ({
    path: `big-app/data-${i}.bin`,
    body: randomBytes(Math.min(MB, 10) * 1024 * 1024),
  }));
  await pipeline(
    Readable.from([
      makeTar([{ path: 'big-app/', type: 'dir' }, { path: 'big-app/server.js', body: 'console.log(1)\n' }, ...entries]),
    ]),
    createGzip({ level: 1 }),
    createWriteStream(tarball),
  );
  await detachSign(g, key.fpr, tarball);
  const size = statSync(tarball).size;
  const sha = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  writeFileSync(
    path.join(updates, 'VERSION'),
    `CURRENT 1.0 ${file}\nSHA256 ${sha}\nSIZE ${size}\nAPP big-app\nPLATFORM gnu-linux\n`,
  );
  await detachSign(g, key.fpr, path.join(updates, 'VERSION')); // launchfit requires VERSION.sig
  const server = await startUpdateServer(updates);
  // launchfit as shipped (the one file, bench/shipped.ts), as a server runs it: not under tsx.
  const [cmd, ...pre] = shippedArgv('launchfit');
  const lf: number[] = [];
  const peer: number[] = [];
  let peak = 0;
  for (let i = 0; i < RUNS; i++) {
    const dir = path.join(base, `deploy-${i}`);
    mkdirSync(dir);
    const r = await measure(cmd, [...pre, server.url, '--keyfile', keyfile, '--dir', dir]);
    if (r.code !== 0) throw new Error(`launchfit deploy failed:\n${r.out}`);
    lf.push(r.ms);
    peak = Math.max(peak, r.peakKb);
    rmSync(dir, { recursive: true, force: true });
    const out = path.join(base, `peer-${i}`);
    mkdirSync(out);
    const f = path.join(out, file);
    const script =
      'curl -sf -o "$1" "$2" && curl -sf -o "$1.sig" "$2.sig" && gpgv --keyring "$3" "$1.sig" "$1" 2>/dev/null && tar xzf "$1" -C "$4"';
    const p = await measure('sh', ['-c', script, 'sh', f, `${server.url}${file}`, keyring, out]);
    if (p.code !== 0) throw new Error(`curl && gpgv && tar failed:\n${p.out}`);
    peer.push(p.ms);
    rmSync(out, { recursive: true, force: true });
  }
  const help = await measure(cmd, [...pre, '--help']);
  await server.close();
  return { size, lf: median(lf), peer: median(peer), peakKb: peak, helpKb: help.peakKb, helpMs: help.ms };
}

async function benchDowntime() {
  const w = await makeWorld();
  await w.publish('1.0', { yml: 'app:\n  exec: node server.cjs\n  healthy_after: 1\n' });
  w.writeConfig();
  const [lf, ...lfArgs] = shippedArgv('launchfit');
  const deploy = await measure(lf, [...lfArgs, 'deploy', '--dir', w.deploy]);
  if (deploy.code !== 0) throw new Error(deploy.out);
  const run = await startLaunchfit(w.deploy);
  const gaps: number[] = [];
  try {
    while ((await askApp(w.appPort)) !== '1.0') await new Promise((r) => setTimeout(r, 20));
    for (let i = 1; i <= RUNS; i++) {
      const version = `1.${i}`;
      const old = `1.${i - 1}`;
      await w.publish(version, { yml: 'app:\n  exec: node server.cjs\n  healthy_after: 1\n' });
      let lastOld = 0;
      let firstNew = 0;
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const v = await askApp(w.appPort, 1000);
          const t = performance.now();
          if (v === old) lastOld = t;
          if (v === version && !firstNew) {
            firstNew = t;
            polling = false;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const answer = await requestOverSocket(path.join(w.deploy, '.launchfit/control.sock'), 'POST', '/update');
      if (!answer?.body.ok) throw new Error(JSON.stringify(answer?.body));
      await poller;
      gaps.push(firstNew - lastOld);
    }
  } finally {
    await run.stop();
  }
  // The app's own start time: spawn to first answer, same app, same poll.
  const starts: number[] = [];
  const appDir = w.makeApp('9.9');
  const port = await freePort();
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['server.cjs'], {
      cwd: appDir,
      env: { ...process.env, PORT: String(port) },
      stdio: 'ignore',
    });
    while ((await askApp(port, 1000)) !== '9.9') await new Promise((r) => setTimeout(r, 5));
    starts.push(performance.now() - t0);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
  }
  await w.server.close();
  return { gap: median(gaps), start: median(starts) };
}

/** An idle check (VERSION unchanged → 304, nothing else fetched) against a full one. */
async function benchIdlePoll() {
  const w = await makeWorld();
  await w.publish('1.0');
  w.writeConfig();
  const paths = deployPaths(w.deploy);
  await updateOnce(w.deploy, silentLogger);
  const config = await loadLaunchConfig(w.deploy);
  const ctx = { paths, config, log: silentLogger };
  const N = 100;
  const time = async (force: boolean) => {
    const from = w.server.requests.length;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await checkForUpdates(ctx, { force });
    const ms = (performance.now() - t0) / N;
    const requests = w.server.requests.slice(from);
    return { ms, perCheck: requests.length / N, all304: requests.every((r) => r.status === 304) };
  };
  await time(false);
  const idle = await time(false);
  const full = await time(true);
  await w.server.close();
  return { idle: idle.ms, full: full.ms, all304: idle.all304 && idle.perCheck === 1, fullRequests: full.perCheck };
}

const PARTS = process.env.BENCH_PARTS ?? 'abcdz';
const lines = [`launchfit benchmarks (${RUNS} runs each, medians; ${new Date().toISOString()})`];
if (/[ab]/.test(PARTS)) {
  const install = await benchInstall();
  lines.push(
    `(a) install of a ${(install.size / 1024 / 1024).toFixed(0)} MB release from loopback: launchfit deploy ${fmt(install.lf)} vs curl && gpgv && tar xzf ${fmt(install.peer)} — ratio ${(install.lf / install.peer).toFixed(2)}x`,
    `(b) launchfit peak RSS during that install: ${(install.peakKb / 1024).toFixed(0)} MB (launchfit --help: ${(install.helpKb / 1024).toFixed(0)} MB, ${fmt(install.helpMs)}) — the release is ${(install.size / 1024 / 1024).toFixed(0)} MB`,
  );
}
if (PARTS.includes('c')) {
  const down = await benchDowntime();
  lines.push(
    `(c) update downtime (old app's last answer → new app's first, polled every 5 ms): ${fmt(down.gap)} vs the app's own start time ${fmt(down.start)}`,
  );
}
if (PARTS.includes('d')) {
  const poll = await benchIdlePoll();
  lines.push(
    `(d) idle check (one conditional GET of VERSION → 304${poll.all304 ? '' : ', NOT all 304!'}): ${fmt(poll.idle)} vs an unconditional check (${poll.fullRequests} GETs, OpenPGP verification of VERSION) ${fmt(poll.full)}`,
  );
}
if (PARTS.includes('z')) lines.push(...(await benchZeroDowntime()));
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);
