// The build steps (docs/build.md): pull (lib/pipeline/pull.ts), downloads, install, compile,
// upload, then publish and rollout (lib/pipeline/publish-and-rollout.ts). Each takes the job's context, writes its output to the job log, and throws
// StepFailure to stop the build.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { atomicWriteFile, ensureDir } from '../core/fs.ts';
import { prestartNode, spawnAs } from './exec.ts';
import { run, stageLogger, StepFailure, type BuildContext, type StepResult } from './context.ts';
import { pullStep } from './pull.ts';
import type { AheadContext } from './job.ts';
import { useRepoNode } from './node-toolchain.ts';
import { publishStep, rolloutStep } from './publish-and-rollout.ts';
import { cleanKeptPathsOnce, countCachedPackages, describeCacheUse, prepareNpmCache } from './cache.ts';
import { bundledCommandFor } from '../core/script-command.ts';
import { requirePrograms } from '../core/programs.ts';
import type { Logger } from '../core/log.ts';
import { UsageError } from '../core/errors.ts';
import { STEPS, type RepoConfig, type ShipkitConfig, type Step } from '../config/shipkit-yml.ts';
import type { UploadEntry } from '../stages/upload/index.ts';

const SHIPKIT_ROOT = path.resolve(import.meta.dirname, '../..');

export const STEP_FUNCTIONS: Record<Step, (ctx: BuildContext) => Promise<StepResult>> = {
  pull: pullStep,
  downloads: downloadsStep,
  install: installStep,
  compile: compileStep,
  upload: uploadStep,
  publish: publishStep,
  rollout: rolloutStep,
};

// ---------------------------------------------------------------------------------------------
// downloads and upload: the stage libraries of their own scripts, when this shipkit has them

type StageModule = Record<string, unknown>;

/**
 * The stage library: imported by a literal path (so `npm run bundle` puts it in dist/build.mjs),
 * or from `override` (tests). Undefined when this shipkit does not have it.
 */
async function loadStage(override: URL | undefined, name: 'downloads' | 'upload'): Promise<StageModule | undefined> {
  try {
    if (override) return existsSync(override) ? ((await import(override.href)) as StageModule) : undefined;
    return name === 'downloads' ? await import('../stages/downloads.ts') : await import('../stages/upload/index.ts');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    const text = String((error as Error)?.message ?? error);
    const file = name === 'downloads' ? 'downloads.ts' : 'upload/index.ts';
    if ((code === 'ERR_MODULE_NOT_FOUND' || /module not found|cannot find module/i.test(text)) && text.includes(file))
      return undefined;
    throw error;
  }
}

export async function downloadsStep(ctx: BuildContext): Promise<StepResult> {
  await cleanKeptPathsOnce(ctx);
  const work = ctx.paths.work;
  const sources = ['manifest.txt', 'cloudinary.txt'].filter((f) => existsSync(path.join(work, f)));
  if (!sources.length) return { skipped: 'no manifest.txt or cloudinary.txt' };
  const stage = await loadStage(ctx.stages?.downloads, 'downloads');
  if (typeof stage?.runDownloadsStage !== 'function') {
    const count = (
      await Promise.all(
        sources.map(
          async (f) =>
            (await readFile(path.join(work, f), 'utf8')).split('\n').filter((l) => l.trim() && !l.startsWith('#'))
              .length,
        ),
      )
    ).reduce((a, b) => a + b, 0);
    ctx.log.line(
      `the downloads stage is not available in this shipkit (lib/stages/downloads.ts is missing); nothing ` +
        `was fetched: ${sources.join(' and ')} with ${count} line(s) skipped`,
    );
    return { skipped: 'downloads stage not available' };
  }
  const runDownloads = stage.runDownloadsStage as (options: {
    workDir: string;
    log: Logger;
  }) => Promise<{ fetched?: number; unchanged?: number; failed?: number; skipped?: string }>;
  const summary = await withDeadline(ctx, runDownloads({ workDir: work, log: stageLogger(ctx.log) }), 'downloads');
  if (summary?.failed) throw new StepFailure(`${summary.failed} download(s) failed; see the log for which and why.`);
  return { note: `${summary?.fetched ?? 0} fetched, ${summary?.unchanged ?? 0} unchanged` };
}

export async function uploadStep(ctx: BuildContext): Promise<StepResult> {
  const entries = ctx.repo.upload;
  if (!entries.length) return { skipped: 'no upload: targets for this repo in shipkit.yml' };
  const stage = await loadStage(ctx.stages?.upload, 'upload');
  if (typeof stage?.runUploadStage !== 'function') {
    const targets = entries.map(
      (e) =>
        Object.keys(e.raw)
          .filter((k) => k !== 'from')
          .join('+') || '?',
    );
    ctx.log.line(
      `the upload stage is not available in this shipkit (lib/stages/upload/index.ts is missing); nothing ` +
        `was uploaded: skipped ${entries.length} target(s): ${targets.join(', ')}`,
    );
    return { skipped: 'upload stage not available' };
  }
  const runUpload = stage.runUploadStage as (options: {
    workDir: string;
    entries: typeof entries;
    doc: ShipkitConfig['doc'];
    configFile: string;
    sourceSha?: string;
    log: Logger;
  }) => Promise<unknown>;
  await withDeadline(
    ctx,
    runUpload({
      workDir: ctx.paths.work,
      entries,
      doc: ctx.config.doc,
      configFile: ctx.config.file,
      sourceSha: ctx.checkedOut ?? ctx.sha,
      log: stageLogger(ctx.log),
    }),
    'upload',
  );
  return { note: `${entries.length} target(s)` };
}

/**
 * Checks the repo's `upload:` entries with the upload stage's own rules before the job starts,
 * so a wrong key or type is a configuration error (exit 2, FILE:LINE) and not a failed build.
 */
export async function checkUploadConfig(config: ShipkitConfig, repo: RepoConfig, workDir: string): Promise<void> {
  if (!repo.upload.length) return;
  const stage = await loadStage(undefined, 'upload');
  if (typeof stage?.planUpload !== 'function') return;
  const plan = stage.planUpload as (
    entry: UploadEntry,
    context: { workDir: string; doc: ShipkitConfig['doc']; configFile: string },
  ) => unknown;
  for (const entry of repo.upload) plan(entry, { workDir, doc: config.doc, configFile: config.file });
}

/** In-process stages cannot be killed like a process tree; the job still ends at its deadline. */
async function withDeadline<T>(ctx: BuildContext, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        ctx.log.line(`!!! time limit reached: the job's timeout is ${ctx.timeoutSec} s; abandoning the ${what} stage`);
        reject(
          new StepFailure(`The ${what} stage was stopped at the job's time limit (${ctx.timeoutSec} s).`, {
            timedOut: true,
          }),
        );
      },
      Math.max(0, ctx.deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([work, limit]);
  } catch (error) {
    if (error instanceof StepFailure) throw error;
    throw new StepFailure(`The ${what} stage failed: ${(error as Error)?.message ?? error}`);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// install

interface InstallRecord {
  key: string;
  lockfile: string;
  node: string;
  sha?: string;
  at: string;
}

/**
 * `npm ci` with a lockfile, else `npm install`; skipped without package.json, and skipped when
 * the lockfile (or package.json) and the node version are the same as at the last good install
 * (never in a clean build). npm prefers its cache (lib/pipeline/cache.ts); the closing line
 * says how long npm took and how many packages came from the cache.
 */
export async function installStep(ctx: BuildContext): Promise<StepResult> {
  await cleanKeptPathsOnce(ctx);
  await useRepoNode(ctx);
  const work = ctx.paths.work;
  if (!existsSync(path.join(work, 'package.json'))) return { skipped: 'no package.json' };
  const lockfile = ['package-lock.json', 'npm-shrinkwrap.json'].find((f) => existsSync(path.join(work, f)));
  const node = await nodeVersion(ctx);
  const hashed = lockfile ?? 'package.json';
  const key = createHash('sha256')
    .update(await readFile(path.join(work, hashed)))
    .update(`\0${node}`)
    .digest('hex');
  const recordFile = path.join(ctx.paths.state, 'install.json');
  const record = await readJson<InstallRecord>(recordFile);
  if (
    !ctx.cache?.clean &&
    record?.key === key &&
    (existsSync(path.join(work, 'node_modules')) || (await declaresNoDependencies(work, lockfile)))
  ) {
    return { skipped: `${hashed} and node ${node} unchanged since the install of ${record.at}, node_modules kept` };
  }
  await rm(recordFile, { force: true });
  // A clean build without a lockfile: npm install would otherwise update the node_modules it finds.
  if (ctx.cache?.clean) await rm(path.join(work, 'node_modules'), { recursive: true, force: true });
  requirePrograms(['npm'], ctx.env.PATH);
  const npm = await prepareNpmCache(ctx);
  const npmFlags = ['--no-audit', '--no-fund', '--no-update-notifier', ...(npm.fresh ? [] : ['--prefer-offline'])];
  const command = lockfile ? 'npm ci' : 'npm install';
  const before = lockfile ? await countCachedPackages(path.join(work, lockfile), npm.dir) : undefined;
  const t0 = Date.now();
  try {
    await run({ ...ctx, env: npm.env }, ['npm', lockfile ? 'ci' : 'install', ...npmFlags]);
  } finally {
    await npm.release();
  }
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  await ensureDir(ctx.paths.state);
  await atomicWriteFile(
    recordFile,
    `${JSON.stringify({ key, lockfile: hashed, node, sha: ctx.checkedOut, at: new Date().toISOString() } satisfies InstallRecord, null, 2)}\n`,
  );
  return { note: `${command} ${secs} s, ${describeCacheUse(before, { fresh: npm.fresh })}` };
}

const DEPENDENCY_FIELDS = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'];

/**
 * A package that needs nothing installed: npm makes no node_modules for it, so the missing
 * folder must not count as a lost install. True when package.json names no dependency of any
 * kind and the lockfile, if any, holds no package but the root.
 */
async function declaresNoDependencies(work: string, lockfile: string | undefined): Promise<boolean> {
  const pkg = await readJson<Record<string, unknown>>(path.join(work, 'package.json'));
  if (!pkg || DEPENDENCY_FIELDS.some((field) => Object.keys((pkg[field] as object | undefined) ?? {}).length))
    return false;
  if (pkg.workspaces) return false;
  if (!lockfile) return true;
  const lock = await readJson<{ packages?: Record<string, unknown>; dependencies?: Record<string, unknown> }>(
    path.join(work, lockfile),
  );
  if (!lock) return false;
  return Object.keys(lock.packages ?? {}).every((key) => key === '') && !Object.keys(lock.dependencies ?? {}).length;
}

/** The version of the `node` that npm will run: ours when PATH leads to it, else asked. */
async function nodeVersion(ctx: BuildContext): Promise<string> {
  for (const dir of (ctx.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'node');
    if (!existsSync(candidate)) continue;
    const [found, ours] = await Promise.all([
      realpath(candidate).catch(() => ''),
      realpath(process.execPath).catch(() => ''),
    ]);
    if (found && found === ours && !('Deno' in globalThis)) return process.version;
    break;
  }
  const asked = await $({
    cwd: ctx.paths.work,
    env: ctx.env,
    quiet: true,
    nothrow: true,
    spawn: spawnAs(ctx.runAs?.uid, ctx.runAs?.gid),
  })`node --version`;
  return asked.stdout.trim() || 'unknown';
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// compile

/**
 * `compile:` from the config (run with `sh -c`: it is the operator's own command line), else
 * litpro when lprc.js exists, else `npm run build` when package.json defines it, else skipped.
 */
export async function compileStep(outer: BuildContext): Promise<StepResult> {
  await useRepoNode(outer);
  // npm run by the compile (`npm run build`, an npx in compile:) uses the cache the install uses
  // (the repo's own, or a fresh one for a clean build), never the build user's shared ~/.npm:
  // one repo cannot poison another's cache.
  const npm = await prepareNpmCache(outer);
  try {
    return await compileWith({ ...outer, env: npm.env });
  } finally {
    await npm.release();
  }
}

async function compileWith(ctx: BuildContext): Promise<StepResult> {
  const work = ctx.paths.work;
  const configured = ctx.repo.compile?.trim();
  if (configured === 'litpro' || (!configured && existsSync(path.join(work, 'lprc.js')))) return runLitpro(ctx);
  if (configured) {
    await run(ctx, ['sh', '-c', configured], { what: configured });
    return { note: configured };
  }
  const pkg = await readJson<{ scripts?: Record<string, unknown> }>(path.join(work, 'package.json'));
  if (typeof pkg?.scripts?.build === 'string') {
    requirePrograms(['npm'], ctx.env.PATH);
    await run(ctx, ['npm', 'run', 'build']);
    return { note: 'npm run build' };
  }
  return { skipped: 'no compile: in shipkit.yml, no lprc.js, no "build" script in package.json' };
}

/**
 * The repo's own litpro (a devDependency) if installed, else the one shipped with shipkit: inside
 * the one-file bundle, else in shipkit's node_modules, else `litpro` on the PATH.
 */
function litproCommand(work: string): string[] {
  const own = path.join(work, 'node_modules/.bin/litpro');
  if (existsSync(own)) return [own];
  const bundled = bundledCommandFor('litpro');
  if (bundled) return bundled;
  const shipped = path.join(SHIPKIT_ROOT, 'node_modules/.bin/litpro');
  return [existsSync(shipped) ? shipped : 'litpro'];
}

/**
 * Starts the compile step's litpro ahead, while the pull step's git runs (lib/pipeline/exec.ts
 * prestartNode), when the tree as the last build left it says the compile will be the bundled
 * litpro: lprc.js there, no `compile:` but litpro, no litpro of the repo's own. `ctx.env` is the
 * environment the build's own commands get. Whatever the pull and install steps change, the
 * compile step runs exactly what it would have; a node started for something else is ended.
 */
export function prestartCompile(ctx: AheadContext): void {
  const work = ctx.paths.work;
  const configured = ctx.repo.compile?.trim();
  if ((configured && configured !== 'litpro') || !existsSync(path.join(work, 'lprc.js'))) return;
  // The npm cache the install step picks is one of the variables handed over with the go (exec.ts
  // PRESTART_LATE), so the environment as it is now is the one to start with.
  const prestarted = prestartNode(litproCommand(work), {
    cwd: work,
    env: ctx.env,
    ...(ctx.runAs ? { uid: ctx.runAs.uid, gid: ctx.runAs.gid } : {}),
  });
  if (prestarted) ctx.prestarted.litpro = prestarted;
}

/** What a step starts ahead, as its job takes its lock (runJob's JobStep.ahead). */
export const STEP_AHEAD: Partial<Record<Step, (ctx: AheadContext) => void>> = { compile: prestartCompile };

// litpro exits 0 even when a document fails; its report says so in these lines.
const LITPRO_FAILURE = /^(## !! STILL WAITING|NOT SAVED:|error:)/;

async function runLitpro(ctx: BuildContext): Promise<StepResult> {
  const problems: string[] = [];
  const prestarted = ctx.prestarted?.litpro;
  if (ctx.prestarted) delete ctx.prestarted.litpro;
  await run(ctx, litproCommand(ctx.paths.work), {
    what: 'litpro',
    prestarted,
    watch: (line) => {
      if (LITPRO_FAILURE.test(line) && problems.length < 5) problems.push(line);
    },
  });
  if (problems.length)
    throw new StepFailure(`litpro reported problems (${problems.join('; ').slice(0, 200)}); see the log.`, {
      lastLines: problems,
    });
  return { note: 'litpro' };
}

/** `--steps a,b` → those steps, always in pipeline order; unknown ones are a usage error. */
export function parseSteps(value: string | undefined, configured: Step[]): Step[] {
  if (value === undefined) return configured;
  const wanted = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!wanted.length) throw new UsageError('Option --steps needs a list such as install,compile.');
  for (const step of wanted) {
    if (!(STEPS as readonly string[]).includes(step))
      throw new UsageError(
        `Unknown step ${JSON.stringify(step.slice(0, 40))} in --steps; steps are ${STEPS.join(', ')}.`,
      );
  }
  // Always in pipeline order: compile before upload, whatever order they were typed in.
  return STEPS.filter((step) => wanted.includes(step));
}
