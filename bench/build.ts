// npm run bench:build — a no-op rebuild (nothing changed since the last successful build),
// from `build` start to exit, against the same steps as a plain shell script:
//   git fetch && git checkout && npm ci && litpro
// shipkit runs under tsx, bundled into one .mjs with plain node, and under Deno.
// The repo is a real bare git repo holding a small npm package (a `file:` dependency, so no
// network) with an lprc.js and a literate project.md. Both sides are warmed up once first.
// Then (bench/build-install.ts) the install step after a lockfile change with the repo's npm
// cache against `build --no-cache`, for real packages served by a local registry.
//   tsx bench/build.ts [--runs N] [--install-runs N] [--latency MS] [--packages N] [--only noop|install]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import minimist from 'minimist';
import { $ } from 'zx';
import { fixtureFiles } from '../test/build-helpers.ts';
import { makeBareRepo, runScript } from '../test/helpers.ts';
import { benchInstall } from './build-install.ts';

const args = minimist(process.argv.slice(2), { string: ['runs', 'install-runs', 'latency', 'packages', 'only'] });
const runs = Number(args.runs ?? 7);
const installOptions = { runs: Number(args['install-runs'] ?? 5), latencyMs: Number(args.latency ?? 0), limit: Number(args.packages ?? 200) };
const ROOT = path.resolve(import.meta.dirname, '..');
$.quiet = true;

const base = mkdtempSync(path.join(os.tmpdir(), 'shipkit-bench-build-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));

if (args.only !== 'install') await benchNoop();
if (args.only !== 'noop') await benchInstall({ base, ...installOptions });

async function benchNoop(): Promise<void> {
  const files = { ...fixtureFiles('npm-app'), ...fixtureFiles('litpro-site') };
  const repo = await makeBareRepo(path.join(base, 'git'), 'site', files);
  const config = path.join(base, 'shipkit.yml');
  await $`printf ${`data: ${base}/data\nrepos:\n  octo/site:\n    url: ${repo.bare}\n    steps: [pull, install, compile]\n`} > ${config}`;

  const env = { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

  async function shipkitOnce(): Promise<number> {
    const t0 = performance.now();
    const r = await runScript('build', ['octo/site', '--config', config], { env: { NO_COLOR: '1' } });
    if (r.exitCode !== 0) throw new Error(`build failed:\n${r.stderr}`);
    return performance.now() - t0;
  }

  // The same build as one bundled file run by plain node (what `npm run bundle` ships), so the
  // runtime's start-up (tsx compiling TypeScript) can be told apart from shipkit's own work.
  // Built by tools/bundle.ts itself, so the bench times the very file that ships (same esbuild
  // options, SHIPKIT_VERSION and SHIPKIT_BUNDLED defined).
  const bundle = path.join(ROOT, 'dist', 'build.mjs');
  await $({ cwd: ROOT })`${path.join(ROOT, 'node_modules/.bin/tsx')} tools/bundle.ts build`;
  async function bundledOnce(): Promise<number> {
    const t0 = performance.now();
    const r = await $({ env: { ...env, NO_COLOR: '1' }, nothrow: true })`node ${bundle} octo/site --config ${config}`;
    if (r.exitCode !== 0) throw new Error(`bundled build failed:\n${r.stderr}`);
    return performance.now() - t0;
  }

  // The same sources under Deno 2.
  async function denoOnce(): Promise<number> {
    const t0 = performance.now();
    const r = await $({ env: { ...env, NO_COLOR: '1' }, nothrow: true })`${path.join(ROOT, 'node_modules/.bin/deno')} run -A --quiet ${path.join(ROOT, 'scripts/build.ts')} octo/site --config ${config}`;
    if (r.exitCode !== 0) throw new Error(`deno build failed:\n${r.stderr}`);
    return performance.now() - t0;
  }

  // The plain script: what an operator would otherwise put in a cron job.
  const plainDir = path.join(base, 'plain');
  await $({ env })`git clone --quiet ${repo.bare} ${plainDir}`;
  const PLAIN = 'set -e; git fetch --quiet origin && git checkout --quiet --detach origin/main && npm ci --silent --no-audit --no-fund && litpro >/dev/null';
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
  await denoOnce();
  await plainOnce();
  const shipkit: number[] = [];
  const bundled: number[] = [];
  const deno: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved, so machine noise hits all sides alike.
    shipkit.push(await shipkitOnce());
    bundled.push(await bundledOnce());
    deno.push(await denoOnce());
    plain.push(await plainOnce());
  }

  // What the time inside shipkit goes to: node + tsx start-up, measured with --help.
  const startup: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await runScript('build', ['--help']);
    startup.push(performance.now() - t0);
  }

  const rows: Array<[string, number[]]> = [
    ['shipkit build (tsx), pull+install+compile', shipkit],
    ['shipkit build (bundled, plain node)', bundled],
    ['shipkit build (deno run)', deno],
    ['plain sh: fetch, checkout, npm ci, litpro', plain],
    ['start-up only: build --help (tsx)', startup],
  ];
  const fmt = (ms: number) => `${ms.toFixed(0)} ms`.padStart(9);
  console.log(`no-op rebuild, ${runs} runs each, interleaved (${os.cpus().length} cores, node ${process.version})`);
  console.log(`${''.padEnd(44)}${['median', 'mean', 'min', 'max'].map((h) => h.padStart(9)).join('')}`);
  for (const [label, samples] of rows) {
    const x = stats(samples);
    console.log(`${label.padEnd(44)}${[x.median, x.mean, x.min, x.max].map(fmt).join('')}`);
  }
  const [s, b, d, p] = [stats(shipkit).median, stats(bundled).median, stats(deno).median, stats(plain).median];
  console.log(`median vs plain sh: tsx ${(s / p).toFixed(2)}x, bundled ${(b / p).toFixed(2)}x, deno ${(d / p).toFixed(2)}x`);
  console.log(`shipkit skips the unchanged npm ci and writes a structured job log; the rest is runtime start-up and git.`);
}
