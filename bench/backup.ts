// npm run bench:backup [-- --jobs 10000 --hosts 10000 --logs-mb 1024 --runs 3]: `shipkit backup`
// and `shipkit restore` as shipped (the one file) against `tar --zstd` of the same folder (config
// and DATA) and its extraction, sides alternated, on a control plane of N jobs, N fleet hosts and
// M MB of job logs (bench/control-plane.ts). Medians of R runs; time and size.
// Goal: backup ≤ 1.2× tar --zstd's time, restore ≤ 1.2× its extraction.
// Without queue: (no pg_dump on either side: with it both would add the same pg_dump).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import minimist from 'minimist';
import { writeConfig } from '../test/fixtures/hooks/deliveries.ts';
import { tmpDir } from '../test/_helpers/common.ts';
import { seedData } from './control-plane.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['jobs', 'hosts', 'logs-mb', 'runs'] });
const JOBS = Number(args.jobs ?? 10_000);
const HOSTS = Number(args.hosts ?? 10_000);
const LOGS_MB = Number(args['logs-mb'] ?? 1024);
const RUNS = Number(args.runs ?? 3);
const GOAL = 1.2;
const env = { ...process.env, HOOK_SECRET: 'bench-secret', HOOK_TOKEN: 'bench-token' };

const root = tmpDir('shipkit-bench-backup-');
const home = path.join(root, 'home');
mkdirSync(home);
const config = writeConfig(home, { data: path.join(home, 'data'), repos: { 'octo/site': {} } });
console.log(`seeding ${JOBS} jobs, ${HOSTS} fleet hosts, ${LOGS_MB} MB of logs …`);
seedData(path.join(home, 'data'), { jobs: JOBS, hosts: HOSTS, logsMb: LOGS_MB });

function timed(cmd: string, argv: string[]): number {
  const t0 = performance.now();
  const run = spawnSync(cmd, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (run.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited ${run.status}: ${run.stderr}`);
  return ms;
}

function sizeOf(p: string): number {
  const s = statSync(p);
  if (!s.isDirectory()) return s.size;
  return readdirSync(p, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((sum, e) => sum + statSync(path.join(e.parentPath, e.name)).size, 0);
}

const [node, bundle, backupScript] = shippedArgv('backup');
const restoreScript = shippedArgv('restore').at(-1)!;
const ours = { backup: [] as number[], restore: [] as number[], size: 0 };
const peer = { backup: [] as number[], restore: [] as number[], size: 0 };

function runOurs(i: number): void {
  const to = path.join(root, `ours-${i}`);
  ours.backup.push(timed(node, [bundle, backupScript, '--config', config, '--to', to]));
  ours.size = sizeOf(to);
  const target = path.join(root, `ours-restored-${i}`);
  ours.restore.push(timed(node, [bundle, restoreScript, '--from', to, '--to', target]));
  rmSync(to, { recursive: true, force: true });
  rmSync(target, { recursive: true, force: true });
}

function runPeer(i: number): void {
  const file = path.join(root, `peer-${i}.tar.zst`);
  peer.backup.push(timed('tar', ['--zstd', '-cf', file, '-C', home, '.']));
  peer.size = statSync(file).size;
  const target = path.join(root, `peer-restored-${i}`);
  mkdirSync(target);
  peer.restore.push(timed('tar', ['--zstd', '-xf', file, '-C', target]));
  rmSync(file, { force: true });
  rmSync(target, { recursive: true, force: true });
}

console.log(
  `backup and restore: shipkit (${path.basename(bundle)}) vs tar --zstd (${execFileSync('zstd', ['--version']).toString().trim()}), node ${process.version}, load ${loadAverage()}`,
);
runOurs(-1); // not counted: page cache, the bundle's first load
runPeer(-1);
for (let i = 0; i < RUNS; i++) {
  if (i % 2) {
    runPeer(i);
    runOurs(i);
  } else {
    runOurs(i);
    runPeer(i);
  }
}
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const b = { ours: median(ours.backup), peer: median(peer.backup) };
const r = { ours: median(ours.restore), peer: median(peer.restore) };
console.log(
  `backup:  shipkit ${b.ours.toFixed(0)} ms, tar --zstd ${b.peer.toFixed(0)} ms: ${(b.ours / b.peer).toFixed(2)}×`,
);
console.log(
  `restore: shipkit ${r.ours.toFixed(0)} ms, tar --zstd -x ${r.peer.toFixed(0)} ms: ${(r.ours / r.peer).toFixed(2)}×`,
);
console.log(`size:    shipkit ${mb(ours.size)} (a folder, uncompressed), tar --zstd ${mb(peer.size)}`);
const work = `${JOBS} jobs, ${HOSTS} hosts, ${LOGS_MB} MB logs`;
const note = `median of ${RUNS}, sides alternated; sizes: shipkit ${mb(ours.size)} (uncompressed folder), tar --zstd ${mb(peer.size)}`;
reportResult({
  work: `backup (${work})`,
  shipkit: Math.round(b.ours),
  peer: Math.round(b.peer),
  unit: 'ms',
  goal: `≤ ${GOAL}× tar --zstd`,
  met: b.ours <= GOAL * b.peer,
  note,
});
reportResult({
  work: `restore (${work})`,
  shipkit: Math.round(r.ours),
  peer: Math.round(r.peer),
  unit: 'ms',
  goal: `≤ ${GOAL}× tar --zstd -x`,
  met: r.ours <= GOAL * r.peer,
  note,
});
rmSync(root, { recursive: true, force: true });
