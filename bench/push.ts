// npm run bench:push [-- --hosts 20 --runs 5 --healthy-after S | --smoke]: git push to live,
// shipkit beside `pm2 deploy` and a hand-written rsync script, on the same small Node app (real
// dependencies: debug and semver, from a warm npm cache; bench/zero-downtime-app.cjs serving) and
// the same commit. Hosts are folders on this machine; the peers reach theirs as root@127.0.0.1
// over a loopback sshd (test/_helpers/ssh.ts), shipkit's are launchfit hosts (bench/pipeline.ts's
// world, as shipped: bench/shipped.ts) told over their control listeners: push fan-out, every
// host in one wave, canary 0 (shipkit's defaults for a `rollout:` with a list). Each side's time
// runs from `git push` starting to its tool being done and every host answering the new version;
// during it one client per host sends requests on new connections and counts the failed ones.
// The sides take turns, their order rotated each run; medians of --runs (5) runs after a warm-up.
// The peers are bench/push-sides.ts. `--smoke`: 1 run, 2 hosts (test/e2e/bench/push-smoke.test.ts).
// Everything it starts (sshd, pm2 daemons, apps, launchfit, hook-server) is stopped at the end.
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import minimist from 'minimist';
import { parsePositiveInt } from '../lib/core/cli.ts';
import { startPipelineWorld, stepTimes, timedLines, type PipelineWorld } from '../test/fixtures/pipeline-world.ts';
import { runCommand, runScriptsAs, tmpDir } from '../test/_helpers/common.ts';
import { startSshd } from '../test/_helpers/ssh.ts';
import { startLoad, watchVersion } from './push-load.ts';
import { ecosystemFile, installDependencies, pm2Side, scriptSide, type Side } from './push-sides.ts';
import { installPm2 } from './pm2.ts';
import { quietPort } from './ports.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv, shippedShipkit } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'hosts', 'healthy-after'], boolean: ['smoke'] });
const smoke = args.smoke === true;
/** A flag's whole number, `least` or more; its default when not given. `--runs -1` leaves it empty. */
function wholeFlag(name: string, fallback: number, least: number): number;
function wholeFlag(name: string, fallback: null, least: number): number | null;
function wholeFlag(name: string, fallback: number | null, least: number): number | null {
  const raw: unknown = args[name];
  if (raw === undefined) return fallback;
  try {
    return parsePositiveInt(raw, name, { min: least });
  } catch {
    console.error(`bench:push: --${name} takes a whole number, ${least} or more`);
    return process.exit(2);
  }
}
const runs = wholeFlag('runs', smoke ? 1 : 5, 1);
const hostCount = wholeFlag('hosts', smoke ? 2 : 5, 1);
/**
 * The release's healthy_after, s: unset unless told, so launchfit's default (0 with app.health:
 * the switch at the new app's first 2xx).
 */
const healthyAfterSec = wholeFlag('healthy-after', null, 0);

/** The programs the sides need, found on the PATH, with the Debian package that brings each. */
function missingPeers(): string[] {
  const peers: Array<[string, string]> = [
    ['sshd', 'openssh-server'],
    ['ssh', 'openssh-client'],
    ['ssh-keygen', 'openssh-client'],
    ['rsync', 'rsync'],
    ['git', 'git'],
  ];
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const missing = peers
    .filter(([bin]) => !dirs.some((dir) => existsSync(path.join(dir, bin))))
    .map(([bin, pkg]) => `${bin} (apt-get install ${pkg})`);
  if (process.getuid?.() !== 0) missing.push('root (sshd switches users; run the bench as root)');
  return missing;
}

const missing = missingPeers();
if (missing.length) {
  console.error(`bench:push: cannot run without its peers: ${missing.join(', ')}; nothing was started.`);
  process.exit(2);
}
let pm2Bin: string;
try {
  pm2Bin = await installPm2((l) => console.error(l));
} catch (error) {
  console.error(`bench:push: cannot run without pm2 (npm package pm2): ${(error as Error).message}`);
  process.exit(2);
}
console.error(`shipkit as shipped: ${shippedShipkit()}`);
runScriptsAs(shippedArgv);

const APP_SERVER = `// The bench's app: real dependencies, then bench/zero-downtime-app.cjs.
const debug = require('debug')('site');
const semver = require('semver');
debug('node %s', semver.clean(process.version));
${readFileSync(path.join(import.meta.dirname, 'zero-downtime-app.cjs'), 'utf8')}`;
const PACKAGE_JSON = `${JSON.stringify(
  {
    name: 'site',
    version: '1.0.0',
    private: true,
    dependencies: { debug: '^4.3.0', semver: '^7.5.0' },
    scripts: { build: 'rm -rf dist && cp -R app dist && cp -R node_modules package.json dist/' },
  },
  null,
  2,
)}\n`;

/** npm's own cache folder (root's: ~/.npm unless configured). */
async function npmCache(): Promise<string> {
  const r = await runCommand('npm', ['config', 'get', 'cache']);
  if (r.exitCode !== 0) throw new Error(`npm config get cache failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** package.json, its lockfile and node_modules in `dir`, from the npm cache. */
async function seedApp(dir: string): Promise<void> {
  writeFileSync(path.join(dir, 'package.json'), PACKAGE_JSON);
  await installDependencies(dir);
}

interface Run {
  side: string;
  total: number;
  sent: number;
  failed: number;
  errors: string[];
  stages: Map<string, number>;
  /** From `git push`: every host answered the new version once; every host answers only it; the tool done. */
  ends: { firstNew: number; onlyNew: number; toolDone: number };
}

/** shipkit's stages, from hook-server's job record and the job log's timestamps. */
async function shipkitDeploy(w: PipelineWorld): Promise<{ done: number; marks: Array<[string, number]> }> {
  const pushed = await w.push();
  const job = await w.waitForJob(pushed.job, 300_000);
  const log = await w.jobLog(pushed.job);
  if (job.state !== 'succeeded') throw new Error(`job ${pushed.job} ${job.state}:\n${log}`);
  const header = JSON.parse(/=== shipkit job \S+ start (\{.*\})/.exec(log)![1]) as { started: string };
  const steps = stepTimes(timedLines(log, header.started));
  const marks: Array<[string, number]> = [
    ['pushed', pushed.t0],
    ['build process started', Date.parse(job.started)],
  ];
  for (const name of ['pull', 'install', 'compile', 'publish', 'rollout'])
    if (steps.get(name)) marks.push([name, steps.get(name)!.start]);
  marks.push(['done', Date.parse(job.finished)]);
  return { done: Date.parse(job.finished), marks };
}

/** What each side's marks stand for: a stage runs from its mark to the next one. */
const LABELS: Record<string, string> = {
  'shipkit/pushed': 'git push, hook, 202, queue',
  'shipkit/build process started': 'build start-up',
  'shipkit/pull': 'pull (git)',
  'shipkit/install': 'install (npm ci, skipped: unchanged)',
  'shipkit/compile': 'compile (npm run build)',
  'shipkit/publish': 'publish (signed release)',
  'shipkit/rollout': 'rollout (the hold included)',
  'shipkit/done': 'job end',
  'pm2 deploy/pushed': 'git push',
  'pm2 deploy/deploy': 'pm2 CLI, ssh, git fetch + reset',
  'pm2 deploy/install': 'npm install on the host',
  'pm2 deploy/reload': 'pm2 startOrReload (wait_ready)',
  'pm2 deploy/done': 'ssh and pm2 deploy exit',
  'rsync script/pushed': 'git push',
  'rsync script/deploy': 'script start-up',
  'rsync script/fetch': 'git fetch + reset',
  'rsync script/install': 'npm install (build machine)',
  'rsync script/build': 'npm run build',
  'rsync script/fan-out': 'rsync + ssh restart, all hosts',
  'rsync script/done': 'script exit',
};

/** One side taking version `version`: its time, the failed requests, its stages (ms each). */
async function measure(side: Pick<Side, 'name' | 'ports' | 'deploy'>, work: string, version: string): Promise<Run> {
  const load = startLoad(side.ports, version);
  const seen = watchVersion(side.ports, version);
  const t0 = Date.now();
  const { done, marks } = await side.deploy(work);
  const deadline = Date.now() + 120_000;
  while (seen.seen.size < side.ports.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await seen.stop();
  const counts = await load.stop();
  if (seen.seen.size < side.ports.length)
    throw new Error(`${side.name}: only ${seen.seen.size}/${side.ports.length} hosts answer ${version}`);
  const live = Math.max(done, ...seen.seen.values());
  // From when on a host answers only the new version: its first answer of it, or its last of another.
  const onlyNew = Math.max(...side.ports.map((p) => Math.max(seen.seen.get(p)!, counts.lastOld.get(p) ?? 0)));
  const ends = {
    firstNew: Math.max(...seen.seen.values()) - t0,
    onlyNew: onlyNew - t0,
    toolDone: done - t0,
  };
  const stages = new Map<string, number>();
  // A stage runs from its mark to the next one; marks of several hosts (pm2) give the median host.
  const byName = new Map<string, number[]>();
  for (const [name, at] of marks) byName.set(name, [...(byName.get(name) ?? []), at]);
  const names = [...byName.keys()];
  names.forEach((name, i) => {
    const next = names[i + 1];
    const end = next ? median(byName.get(next)!) : done;
    stages.set(LABELS[`${side.name}/${name}`] ?? name, Math.round(end - median(byName.get(name)!)));
  });
  stages.set('tool done → every host answers it', live - done);
  return { side: side.name, total: live - t0, ...counts, stages, ends };
}

const base = tmpDir('shipkit-bench-push-');
const stops: Array<() => Promise<unknown>> = [];
const stopAll = async () => {
  for (const stop of stops.reverse()) await stop().catch((e) => console.error(`bench:push: stopping: ${e}`));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => void stopAll().then(() => process.exit(130)));
const results: Run[] = [];
try {
  await main();
} catch (error) {
  console.error(`bench:push: ${error instanceof Error ? error.message : error}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
if (!process.exitCode) report();
process.exit();

async function main(): Promise<void> {
  const sshd = await startSshd();
  if (typeof sshd === 'string') throw new Error(`bench:push: cannot start sshd on 127.0.0.1: ${sshd}`);
  stops.push(async () => void sshd.child.kill('SIGTERM'));
  console.error(`sshd on 127.0.0.1:${sshd.port}; ${hostCount} hosts per side, ${runs} run(s); everything in ${base}`);
  const seed = tmpDir('shipkit-bench-push-seed-');
  await seedApp(seed);
  const ports = async () => Promise.all(Array.from({ length: hostCount }, () => quietPort()));
  const pm2Plan = { base: path.join(base, 'pm2'), pm2Bin, sshd, ports: await ports() };
  mkdirSync(path.join(base, 'shipkit'));
  const w = await startPipelineWorld(path.join(base, 'shipkit'), {
    hosts: hostCount,
    canary: 0,
    waves: ['100%'],
    healthyAfterSec,
    port: quietPort,
    app: { 'server.cjs': APP_SERVER },
    rootFiles: {
      'package.json': PACKAGE_JSON,
      'package-lock.json': readFileSync(path.join(seed, 'package-lock.json'), 'utf8'),
      'ecosystem.config.cjs': ecosystemFile(pm2Plan),
      '.gitignore': 'node_modules/\ndist/\n',
    },
    seedFirstRelease: (dir) =>
      cpSync(path.join(seed, 'node_modules'), path.join(dir, 'node_modules'), {
        recursive: true,
        verbatimSymlinks: true,
      }),
    progress: (l) => console.error(`  [shipkit] ${l}`),
  });
  stops.push(() => w.stop());
  const shipkit = {
    name: 'shipkit',
    ports: w.hosts.map((h) => h.appPort),
    deploy: () => shipkitDeploy(w),
  };
  // One npm cache for every side: the peers' npm runs as root with root's cache, and shipkit's
  // builds (as root: no build user, so nothing is handed over) get the same one as theirs.
  const state = path.join(base, 'shipkit', 'data', 'state', 'octo__site');
  mkdirSync(state, { recursive: true });
  symlinkSync(await npmCache(), path.join(state, 'npm-cache'));
  console.error('  warm-up: shipkit (first clone, npm ci)');
  await w.commit({ 'version.txt': 'v0\n' }, 'version v0');
  await shipkitDeploy(w);
  console.error('  warm-up: pm2 deploy setup and first deploy');
  const pm2 = await pm2Side(pm2Plan, w.repo.work);
  stops.push(() => pm2.stop());
  console.error('  warm-up: the rsync script, first deploy');
  const script = await scriptSide({ base: path.join(base, 'script'), sshd, ports: await ports() }, w.repo.work);
  stops.push(() => script.stop());
  const sides = [shipkit, pm2, script];
  for (let i = 1; i <= runs; i++) {
    const version = `v${i}`;
    await w.commit({ 'version.txt': `${version}\n` }, `version ${version}`);
    for (const side of [...sides.slice(i % 3), ...sides.slice(0, i % 3)]) {
      const r = await measure(side, w.repo.work, version);
      console.error(`  run ${i} ${r.side}: ${r.total} ms, ${r.failed}/${r.sent} requests failed`);
      results.push(r);
    }
  }
}

function ratio(a: number, b: number): string {
  return (a / b).toFixed(2);
}

function report(): void {
  const of = (side: string) => results.filter((r) => r.side === side);
  const total = (side: string) => median(of(side).map((r) => r.total));
  console.log(
    `git push → every host answers the new version, ${hostCount} hosts, median of ${runs} run(s); ${os.cpus().length} cores, node ${process.version}, load average ${loadAverage()}`,
  );
  for (const side of ['shipkit', 'pm2 deploy', 'rsync script']) {
    const runsOf = of(side);
    console.log(
      `\n${side}: ${total(side)} ms (${runsOf.map((r) => r.total).join(' ')}); failed requests ${runsOf.map((r) => `${r.failed}/${r.sent}`).join(' ')}`,
    );
    for (const stage of runsOf[0].stages.keys())
      console.log(
        `  ${stage.padEnd(40)} ${String(median(runsOf.map((r) => r.stages.get(stage) ?? 0))).padStart(7)} ms`,
      );
    const end = (key: keyof Run['ends']) => median(runsOf.map((r) => r.ends[key]));
    console.log(
      `  every host: first answer of the new version ${end('firstNew')} ms, only the new version from ${end('onlyNew')} ms, tool done ${end('toolDone')} ms (medians, from git push)`,
    );
    const errors = [...new Set(runsOf.flatMap((r) => r.errors.map((e) => e.replace(/^:\d+ /, ''))))];
    if (errors.length) console.log(`  failures seen: ${errors.join(', ')}`);
  }
  const hold = (healthyAfterSec ?? 0) * 1000;
  console.log(
    hold
      ? `\nshipkit: push fan-out, one wave, canary 0. Its rollout holds for the release's healthy_after (${healthyAfterSec} s: the new app serves beside the old one that long before the old one stops, and the verdict waits for it); without the hold: ${total('shipkit') - hold} ms, ${ratio(total('shipkit') - hold, total('pm2 deploy'))}× pm2 deploy, ${ratio(total('shipkit') - hold, total('rsync script'))}× the rsync script`
      : `\nshipkit: push fan-out, one wave, canary 0, launchfit's default healthy_after (${healthyAfterSec ?? 'unset'}: with app.health the old app is told to stop, and the host's verdict sent, at the new app's first 2xx)`,
  );
  const failed = (side: string) => of(side).reduce((t, r) => t + r.failed, 0);
  const pm2Goal = hostCount >= 20 ? 0.25 : 0.5;
  for (const [peer, goal] of [
    ['pm2 deploy', pm2Goal],
    ['rsync script', 1.0],
  ] as const)
    reportResult({
      work: `git push → live, ${hostCount} hosts, shipkit vs ${peer}`,
      shipkit: total('shipkit'),
      peer: total(peer),
      unit: 'ms',
      goal: `≤ ${goal}×`,
      met: total('shipkit') <= goal * total(peer),
      note: `median of ${runs}; failed requests: shipkit ${failed('shipkit')}, ${peer} ${failed(peer)}`,
    });
  reportResult({
    work: `failed requests during shipkit's deploys, ${hostCount} hosts`,
    shipkit: failed('shipkit'),
    peer: null,
    unit: 'requests',
    goal: '0',
    met: failed('shipkit') === 0,
    note: `over ${runs} run(s), one client per host`,
  });
}
