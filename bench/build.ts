// npm run bench:build — a no-op rebuild (nothing changed since the last successful build),
// from `build` start to exit, against the same steps as a plain shell script:
//   git fetch && git checkout && git clean && (npm ci only when package-lock.json changed) && litpro
// shipkit runs as shipped (the one file, bench/shipped.ts); the sides alternate which goes first.
// The repo is a real bare git repo holding a small npm package (a `file:` dependency, so no
// network) with an lprc.js and a literate project.md. Both sides are warmed up once first.
// Then (bench/build-install.ts) the install step after a lockfile change with the repo's npm
// cache against `build --no-cache`, for real packages served by a local registry.
//   tsx bench/build.ts [--runs N] [--install-runs N] [--latency MS] [--packages N] [--only noop|install|hook]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import minimist from 'minimist';
import { $ } from '../lib/core/shell.ts';
import { fixtureFiles } from '../test/_helpers/build.ts';
import { makeBareRepo } from '../test/_helpers/common.ts';
import { benchHook } from './build-hook.ts';
import { benchInstall } from './build-install.ts';
import { loadAverage, median, reportResult } from './result.ts';
import { shippedArgv } from './shipped.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'install-runs', 'latency', 'packages', 'only'] });
const runs = Number(args.runs ?? 7);
const installOptions = {
  runs: Number(args['install-runs'] ?? 5),
  latencyMs: Number(args.latency ?? 0),
  limit: Number(args.packages ?? 200),
};
const ROOT = path.resolve(import.meta.dirname, '..');
$.quiet = true;

const base = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-build-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));

// `--only hook` (bench/build-hook.ts) runs alone: a push through hook-server against webhook 2.8.
if (args.only === 'hook') await benchHook({ base, runs: Number(args.runs ?? 15) });
else {
  if (args.only !== 'install') await benchNoop();
  if (args.only !== 'noop') await benchInstall({ base, ...installOptions });
}

async function benchNoop(): Promise<void> {
  const files = { ...fixtureFiles('npm-app'), ...fixtureFiles('litpro-site') };
  const repo = await makeBareRepo(path.join(base, 'git'), 'site', files);
  const config = path.join(base, 'shipkit.yml');
  await $`printf ${`data: ${base}/data\nrepos:\n  octo/site:\n    url: ${repo.bare}\n    steps: [pull, install, compile]\n`} > ${config}`;

  const env = {
    ...process.env,
    PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`,
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };

  const shipped = shippedArgv('build');
  const phases: Array<Record<string, number>> = [];
  async function shipkitOnce(): Promise<number> {
    const [t0, wall0] = [performance.now(), Date.now()];
    const r = await $({ env: { ...env, NO_COLOR: '1' }, nothrow: true })`${shipped} octo/site --config ${config}`;
    if (r.exitCode !== 0) throw new Error(`build failed:\n${r.stderr}`);
    const ms = performance.now() - t0;
    phases.push(jobPhases(path.join(base, 'data/logs/octo__site/logs.txt'), wall0, wall0 + ms));
    return ms;
  }

  // The plain script: what an operator would otherwise put in a cron job.
  const plainDir = path.join(base, 'plain');
  await $({ env })`git clone --quiet ${repo.bare} ${plainDir}`;
  // npm ci only when the lockfile differs from the one of the last install, as shipkit's install
  // step does (it also keys on the node version; the peer's cmp is cheaper than that). The last
  // build's output and other untracked files are removed, node_modules kept, as shipkit's pull
  // step does, so that litpro writes the same files on both sides.
  const PLAIN =
    'set -e; git fetch --quiet origin && git checkout --quiet --detach origin/main && git clean --quiet -ffdx -e /node_modules -e /downloads && if ! cmp -s package-lock.json node_modules/.installed-lock; then npm ci --silent --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock; fi && litpro >/dev/null';
  async function plainOnce(): Promise<number> {
    const t0 = performance.now();
    await $({ cwd: plainDir, env })`sh -c ${PLAIN}`;
    return performance.now() - t0;
  }

  function stats(samples: number[]) {
    const sorted = [...samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    return { median, mean, min: sorted[0], max: sorted[sorted.length - 1] };
  }

  // Warm-up: the first build clones and installs; the plain side installs once too.
  await shipkitOnce();
  await plainOnce();
  const shipkit: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, the order alternated, so machine noise hits both sides alike.
    if (i % 2) {
      plain.push(await plainOnce());
      shipkit.push(await shipkitOnce());
    } else {
      shipkit.push(await shipkitOnce());
      plain.push(await plainOnce());
    }
  }

  // What the time inside shipkit goes to: node start-up and the one file, measured with --help,
  // and node -e 0.
  const startup: number[] = [];
  const nodeOnly: number[] = [];
  for (let i = 0; i < 5; i++) {
    let t0 = performance.now();
    await $`${shipped} --help`;
    startup.push(performance.now() - t0);
    t0 = performance.now();
    await $`node -e 0`;
    nodeOnly.push(performance.now() - t0);
  }

  const rows: Array<[string, number[]]> = [
    ['shipkit build (one file), pull+install+compile', shipkit],
    ['plain sh: fetch, checkout, clean, npm ci if changed, litpro', plain],
    ['start-up only: shipkit build --help', startup],
    ['node -e 0', nodeOnly],
  ];
  const fmt = (ms: number) => `${ms.toFixed(0)} ms`.padStart(9);
  console.log(
    `no-op rebuild, ${runs} runs each, interleaved, order alternated (${os.cpus().length} cores, node ${process.version}, load ${loadAverage()})`,
  );
  console.log(`${''.padEnd(54)}${['median', 'mean', 'min', 'max'].map((h) => h.padStart(9)).join('')}`);
  for (const [label, samples] of rows) {
    const x = stats(samples);
    console.log(`${label.padEnd(54)}${[x.median, x.mean, x.min, x.max].map(fmt).join('')}`);
  }
  const phase = (name: string) => `${name} ${median(phases.map((x) => x[name])).toFixed(0)} ms`;
  console.log(
    `where shipkit's time goes (medians, from its job log): ${['before the job', 'job to git fetch', 'pull', 'install', 'litpro', 'after the job'].map(phase).join(', ')}`,
  );
  const [s, p] = [median(shipkit), median(plain)];
  reportResult({
    work: 'no-op rebuild (nothing changed)',
    shipkit: s,
    peer: p,
    unit: 'ms',
    goal: '≤ 1.1×',
    met: s / p <= 1.1,
    note: `median of ${runs} interleaved; peer: sh doing git fetch + checkout + clean, npm ci only when package-lock.json changed, litpro; shipkit's --help start-up ${median(startup).toFixed(0)} ms, node -e 0 ${median(nodeOnly).toFixed(0)} ms`,
  });
}

/**
 * The phases of the last job in logs.txt, from its timestamps (ms): process start to the job's
 * header, header to `$ git fetch`, the pull step, install, `$ litpro` to the step's end, and the
 * job's end to the process's exit.
 */
function jobPhases(log: string, start: number, exit: number): Record<string, number> {
  const text = readFileSync(log, 'utf8');
  const job = text.slice(text.lastIndexOf('=== shipkit job ', text.lastIndexOf(' start {"id"')));
  // The log's times of day are local, as lib/jobs/job-log.ts writes them.
  const at = (pattern: RegExp) => {
    const time = new RegExp(`^(\\d\\d):(\\d\\d):(\\d\\d)\\.(\\d{3}) ${pattern.source}`, 'm').exec(job);
    return time ? new Date(start).setHours(Number(time[1]), Number(time[2]), Number(time[3]), Number(time[4])) : NaN;
  };
  const started = Date.parse(/"started":"([^"]+)"/.exec(job)?.[1] ?? '');
  const ended = Date.parse(/"finished":"([^"]+)"/.exec(job)?.[1] ?? '');
  const install = at(/--- step install$/);
  return {
    'before the job': started - start,
    'job to git fetch': at(/\$ git fetch/) - started,
    pull: install - at(/--- step pull$/),
    install: at(/--- step compile$/) - install,
    litpro: at(/--- step compile ok/) - at(/\$ litpro$/),
    'after the job': exit - ended,
  };
}
