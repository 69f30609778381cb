// The build steps (DESIGN §5 build): pull, downloads, install, compile, upload. Each takes the
// job's context, writes its output to the job log, and throws StepFailure to stop the build.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, realpath, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { $ } from 'zx';
import { WorkError } from './errors.ts';
import { atomicWriteFile, ensureDir, tempSibling } from './fsx.ts';
import { runLogged, describeEnd, spawnAs, type OutputLimits, type RunResult } from './build-exec.ts';
import type { JobLogWriter } from './joblog.ts';
import { createLogger, type Logger } from './log.ts';
import type { RepoConfig, ShipkitConfig, Step } from './shipkit-config.ts';

export interface BuildContext {
  config: ShipkitConfig;
  repo: RepoConfig;
  paths: { work: string; logs: string; state: string };
  log: JobLogWriter;
  /** Environment for every command the build runs (secrets already removed). */
  env: NodeJS.ProcessEnv;
  deadline: number;
  timeoutSec: number;
  limits: OutputLimits;
  /** Clone URL: --url, else the config's, else the existing clone's origin. */
  url?: string;
  sha?: string;
  ref?: string;
  /** The commit the pull step checked out. */
  checkedOut?: string;
  runAs?: { user: string; uid: number; gid: number; home: string };
  /** Aborted when the build process is told to stop (SIGTERM/SIGINT). */
  signal?: AbortSignal;
  /** Where the stage libraries are (tests point these elsewhere). */
  stages?: { downloads?: URL; upload?: URL };
}

/** A step that failed; the message is one sentence for the operator. */
export class StepFailure extends WorkError {
  override name = 'StepFailure';
  lastLines: string[];
  timedOut: boolean;
  /** The failed command's exit code, when it exited by itself. */
  commandExit?: number;
  /** The job's exit code when it is not 1 (a release exits with its script's code). */
  exitCode?: number;
  constructor(message: string, { lastLines = [], timedOut = false, commandExit }: { lastLines?: string[]; timedOut?: boolean; commandExit?: number } = {}) {
    super(message);
    this.lastLines = lastLines;
    this.timedOut = timedOut;
    this.commandExit = commandExit;
  }
}

/** What a step did, for its closing log line: `ok`, or `skipped: no package.json`. */
export type StepResult = { skipped?: string; note?: string } | void;

const SHIPKIT_ROOT = path.resolve(import.meta.dirname, '..');
/** Kept by `git clean`: installs and downloads are reused when nothing changed. */
export const KEPT_ON_CLEAN = ['/node_modules/', '/downloads/'];

export const STEP_FUNCTIONS: Record<Step, (ctx: BuildContext) => Promise<StepResult>> = {
  pull: pullStep,
  downloads: downloadsStep,
  install: installStep,
  compile: compileStep,
  upload: uploadStep,
};

// ---------------------------------------------------------------------------------------------
// Running commands

/** Runs a command into the log; throws StepFailure unless it exits 0. */
export async function run(ctx: BuildContext, argv: string[], { cwd = ctx.paths.work, what = argv.join(' '), watch }: { cwd?: string; what?: string; watch?: (line: string) => void } = {}): Promise<RunResult> {
  if (!existsSync(cwd)) throw new StepFailure(`The work folder ${cwd} does not exist yet; run the pull step first (\`build ${ctx.repo.name}\` without --steps).`);
  ctx.log.line(`$ ${redactUrls(what)}`);
  const result = await runLogged(argv, {
    cwd, env: ctx.env, log: ctx.log, deadline: ctx.deadline, timeoutSec: ctx.timeoutSec, limits: ctx.limits, watch, signal: ctx.signal,
    ...(ctx.runAs ? { uid: ctx.runAs.uid, gid: ctx.runAs.gid } : {}),
  });
  if (result.timedOut) {
    throw new StepFailure(`\`${redactUrls(what).slice(0, 80)}\` was killed at the job's time limit (${ctx.timeoutSec} s); raise \`timeout:\` in shipkit.yml if the build needs longer.`, { lastLines: result.lastLines, timedOut: true });
  }
  if (ctx.signal?.aborted) throw new StepFailure(`\`${redactUrls(what).slice(0, 80)}\` was stopped: ${String(ctx.signal.reason)}.`, { lastLines: result.lastLines });
  if (result.exitCode !== 0) {
    throw new StepFailure(`\`${redactUrls(what).slice(0, 80)}\` failed (${describeEnd(result)}).`, { lastLines: result.lastLines, commandExit: result.exitCode ?? undefined });
  }
  return result;
}

/** A quick git query (rev-parse, cat-file): trimmed stdout, or undefined when git says no. */
async function gitQuery(ctx: BuildContext, args: string[]): Promise<string | undefined> {
  const result = await $({ cwd: ctx.paths.work, env: ctx.env, quiet: true, nothrow: true, timeout: Math.max(1000, ctx.deadline - Date.now()), spawn: spawnAs(ctx.runAs?.uid, ctx.runAs?.gid) })`git ${args}`;
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}

/** `https://user:token@host/x` → `https://***@host/x` in anything written to the log. */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@');
}

/** A lib/log.ts logger that writes into the job log, for the stage libraries. */
export function stageLogger(log: JobLogWriter): Logger {
  return createLogger({
    json: false,
    color: false,
    stream: { write: (text: string) => { log.line(`| ${text.replace(/\n$/, '')}`); return true; } } as unknown as NodeJS.WritableStream,
  });
}

// ---------------------------------------------------------------------------------------------
// pull

/**
 * Clone on the first run (into a temp folder, renamed into place), then fetch and check out
 * exactly the wanted commit, detached; remove untracked files from the last build; update
 * submodules. A force-pushed branch is fetched with `+` refspecs, so its new head is used.
 */
export async function pullStep(ctx: BuildContext): Promise<StepResult> {
  const work = ctx.paths.work;
  const fresh = !existsSync(path.join(work, '.git'));
  const url = ctx.url ?? ctx.repo.url ?? (fresh ? defaultUrl(ctx.repo.name) : undefined);
  if (fresh) {
    if (!url) throw new StepFailure(`No clone URL for ${ctx.repo.name}: set \`url:\` for it in shipkit.yml.`);
    const entries = await readdir(work).catch(() => undefined);
    if (entries) {
      // A work folder without .git (prepared for a build user, or a clone cut short): clone
      // into it, emptied; its parent may not be ours to write in.
      for (const entry of entries) await rm(path.join(work, entry), { recursive: true, force: true });
      await run(ctx, ['git', 'clone', '--no-checkout', '--', url, work], { cwd: work, what: `git clone --no-checkout ${url}` });
    } else {
      await ensureDir(path.dirname(work));
      const temp = tempSibling(work, 'clone');
      await mkdir(temp, { mode: 0o755 });
      if (ctx.runAs) await chown(temp, ctx.runAs.uid, ctx.runAs.gid);
      try {
        await run(ctx, ['git', 'clone', '--no-checkout', '--', url, temp], { cwd: path.dirname(work), what: `git clone --no-checkout ${url}` });
        await rename(temp, work);
      } catch (error) {
        await rm(temp, { recursive: true, force: true });
        throw error;
      }
    }
  } else {
    // A git killed mid-way (timeout, reboot) leaves its lock; the job lock says no git of ours runs.
    for (const lock of ['index.lock', 'shallow.lock', 'HEAD.lock']) await rm(path.join(work, '.git', lock), { force: true });
    if (url && url !== (await gitQuery(ctx, ['remote', 'get-url', 'origin']))) {
      await run(ctx, ['git', 'remote', 'set-url', 'origin', url], { what: `git remote set-url origin ${url}` });
    }
  }
  await run(ctx, ['git', 'fetch', '--force', '--prune', '--tags', 'origin', '+refs/heads/*:refs/remotes/origin/*']);
  const sha = await resolveTarget(ctx);
  await run(ctx, ['git', 'checkout', '--force', '--detach', sha]);
  await run(ctx, ['git', 'clean', '-ffdx', ...KEPT_ON_CLEAN.flatMap((p) => ['-e', p])]);
  if (existsSync(path.join(work, '.gitmodules'))) {
    await run(ctx, ['git', 'submodule', 'sync', '--recursive']);
    await run(ctx, ['git', 'submodule', 'update', '--init', '--recursive', '--force']);
    await run(ctx, ['git', 'submodule', 'foreach', '--recursive', 'git', 'clean', '-ffdx']);
  }
  ctx.checkedOut = sha;
  return { note: `at ${sha}` };
}

function defaultUrl(name: string): string | undefined {
  return name.includes('/') ? `https://github.com/${name}.git` : undefined;
}

/** The commit to build: --sha, else the head of --ref, else the head of the configured branch. */
async function resolveTarget(ctx: BuildContext): Promise<string> {
  if (ctx.sha) {
    let full = await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${ctx.sha}^{commit}`]);
    if (!full && /^[0-9a-f]{40}([0-9a-f]{24})?$/i.test(ctx.sha)) {
      // Not reachable from any branch (a force push dropped it?): servers may still serve it by id.
      await runLogged(['git', 'fetch', '--quiet', 'origin', ctx.sha], { cwd: ctx.paths.work, env: ctx.env, log: ctx.log, deadline: ctx.deadline, timeoutSec: ctx.timeoutSec, limits: ctx.limits, uid: ctx.runAs?.uid, gid: ctx.runAs?.gid, signal: ctx.signal });
      full = await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${ctx.sha}^{commit}`]);
    }
    if (!full) throw new StepFailure(`Commit ${ctx.sha} does not exist in ${ctx.repo.name}'s remote; check the SHA (was it force-pushed away?).`);
    return full;
  }
  const ref = ctx.ref ?? ctx.repo.branch;
  const candidates = ref.startsWith('refs/heads/') ? [`refs/remotes/origin/${ref.slice(11)}`]
    : ref.startsWith('refs/tags/') ? [ref]
      : [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`];
  for (const candidate of candidates) {
    const full = await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`]);
    if (full) return full;
  }
  throw new StepFailure(`${ref} does not exist in ${ctx.repo.name}'s remote; check the branch or tag name.`);
}

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
    return name === 'downloads' ? await import('./downloads.ts') : await import('./upload/index.ts');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    const text = String((error as Error)?.message ?? error);
    const file = name === 'downloads' ? 'downloads.ts' : 'upload/index.ts';
    if ((code === 'ERR_MODULE_NOT_FOUND' || /module not found|cannot find module/i.test(text)) && text.includes(file)) return undefined;
    throw error;
  }
}

export async function downloadsStep(ctx: BuildContext): Promise<StepResult> {
  const work = ctx.paths.work;
  const sources = ['manifest.txt', 'cloudinary.txt'].filter((f) => existsSync(path.join(work, f)));
  if (!sources.length) return { skipped: 'no manifest.txt or cloudinary.txt' };
  const stage = await loadStage(ctx.stages?.downloads, 'downloads');
  if (typeof stage?.runDownloadsStage !== 'function') {
    const count = (await Promise.all(sources.map(async (f) => (await readFile(path.join(work, f), 'utf8')).split('\n').filter((l) => l.trim() && !l.startsWith('#')).length))).reduce((a, b) => a + b, 0);
    ctx.log.line(`the downloads stage is not available in this shipkit (lib/downloads.ts is missing); nothing was fetched: ${sources.join(' and ')} with ${count} line(s) skipped`);
    return { skipped: 'downloads stage not available' };
  }
  const runDownloads = stage.runDownloadsStage as (options: { workDir: string; log: Logger }) => Promise<{ fetched?: number; unchanged?: number; failed?: number; skipped?: string }>;
  const summary = await withDeadline(ctx, runDownloads({ workDir: work, log: stageLogger(ctx.log) }), 'downloads');
  if (summary?.failed) throw new StepFailure(`${summary.failed} download(s) failed; see the log for which and why.`);
  return { note: `${summary?.fetched ?? 0} fetched, ${summary?.unchanged ?? 0} unchanged` };
}

export async function uploadStep(ctx: BuildContext): Promise<StepResult> {
  const entries = ctx.repo.upload;
  if (!entries.length) return { skipped: 'no upload: targets for this repo in shipkit.yml' };
  const stage = await loadStage(ctx.stages?.upload, 'upload');
  if (typeof stage?.runUploadStage !== 'function') {
    const targets = entries.map((e) => Object.keys(e.raw).filter((k) => k !== 'from').join('+') || '?');
    ctx.log.line(`the upload stage is not available in this shipkit (lib/upload/index.ts is missing); nothing was uploaded: skipped ${entries.length} target(s): ${targets.join(', ')}`);
    return { skipped: 'upload stage not available' };
  }
  const runUpload = stage.runUploadStage as (options: { workDir: string; entries: typeof entries; doc: ShipkitConfig['doc']; configFile: string; sourceSha?: string; log: Logger }) => Promise<unknown>;
  await withDeadline(ctx, runUpload({ workDir: ctx.paths.work, entries, doc: ctx.config.doc, configFile: ctx.config.file, sourceSha: ctx.checkedOut ?? ctx.sha, log: stageLogger(ctx.log) }), 'upload');
  return { note: `${entries.length} target(s)` };
}

/** In-process stages cannot be killed like a process tree; the job still ends at its deadline. */
async function withDeadline<T>(ctx: BuildContext, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ctx.log.line(`!!! time limit reached: the job's timeout is ${ctx.timeoutSec} s; abandoning the ${what} stage`);
      reject(new StepFailure(`The ${what} stage was stopped at the job's time limit (${ctx.timeoutSec} s).`, { timedOut: true }));
    }, Math.max(0, ctx.deadline - Date.now()));
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

interface InstallRecord { key: string; lockfile: string; node: string; sha?: string; at: string }

/**
 * `npm ci` with a lockfile, else `npm install`; skipped without package.json, and skipped when
 * the lockfile (or package.json) and the node version are the same as at the last good install.
 */
export async function installStep(ctx: BuildContext): Promise<StepResult> {
  const work = ctx.paths.work;
  if (!existsSync(path.join(work, 'package.json'))) return { skipped: 'no package.json' };
  const lockfile = ['package-lock.json', 'npm-shrinkwrap.json'].find((f) => existsSync(path.join(work, f)));
  const node = await nodeVersion(ctx);
  const hashed = lockfile ?? 'package.json';
  const key = createHash('sha256').update(await readFile(path.join(work, hashed))).update(`\0${node}`).digest('hex');
  const recordFile = path.join(ctx.paths.state, 'install.json');
  const record = await readJson<InstallRecord>(recordFile);
  if (record?.key === key && existsSync(path.join(work, 'node_modules'))) {
    return { skipped: `${hashed} and node ${node} unchanged since the install of ${record.at}` };
  }
  await rm(recordFile, { force: true });
  const npmFlags = ['--no-audit', '--no-fund', '--no-update-notifier'];
  if (lockfile) await run(ctx, ['npm', 'ci', ...npmFlags]);
  else await run(ctx, ['npm', 'install', ...npmFlags]);
  await ensureDir(ctx.paths.state);
  await atomicWriteFile(recordFile, `${JSON.stringify({ key, lockfile: hashed, node, sha: ctx.checkedOut, at: new Date().toISOString() } satisfies InstallRecord, null, 2)}\n`);
  return { note: lockfile ? 'npm ci' : 'npm install' };
}

/** The version of the `node` that npm will run: ours when PATH leads to it, else asked. */
async function nodeVersion(ctx: BuildContext): Promise<string> {
  for (const dir of (ctx.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'node');
    if (!existsSync(candidate)) continue;
    const [found, ours] = await Promise.all([realpath(candidate).catch(() => ''), realpath(process.execPath).catch(() => '')]);
    if (found && found === ours && !('Deno' in globalThis)) return process.version;
    break;
  }
  const asked = await $({ cwd: ctx.paths.work, env: ctx.env, quiet: true, nothrow: true, spawn: spawnAs(ctx.runAs?.uid, ctx.runAs?.gid) })`node --version`;
  return asked.stdout.trim() || 'unknown';
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try { return JSON.parse(await readFile(file, 'utf8')) as T; } catch { return undefined; }
}

// ---------------------------------------------------------------------------------------------
// compile

/**
 * `compile:` from the config (run with `sh -c`: it is the operator's own command line), else
 * litpro when lprc.js exists, else `npm run build` when package.json defines it, else skipped.
 */
export async function compileStep(ctx: BuildContext): Promise<StepResult> {
  const work = ctx.paths.work;
  const configured = ctx.repo.compile?.trim();
  if (configured === 'litpro' || (!configured && existsSync(path.join(work, 'lprc.js')))) return runLitpro(ctx);
  if (configured) {
    await run(ctx, ['sh', '-c', configured], { what: configured });
    return { note: configured };
  }
  const pkg = await readJson<{ scripts?: Record<string, unknown> }>(path.join(work, 'package.json'));
  if (typeof pkg?.scripts?.build === 'string') {
    await run(ctx, ['npm', 'run', 'build']);
    return { note: 'npm run build' };
  }
  return { skipped: 'no compile: in shipkit.yml, no lprc.js, no "build" script in package.json' };
}

/** The repo's own litpro (a devDependency) if installed, else the one shipped with shipkit. */
export function findLitpro(work: string): string {
  for (const candidate of [path.join(work, 'node_modules/.bin/litpro'), path.join(SHIPKIT_ROOT, 'node_modules/.bin/litpro')]) {
    if (existsSync(candidate)) return candidate;
  }
  return 'litpro';
}

// litpro exits 0 even when a document fails; its report says so in these lines.
const LITPRO_FAILURE = /^(## !! STILL WAITING|NOT SAVED:|error:)/;

async function runLitpro(ctx: BuildContext): Promise<StepResult> {
  const litpro = findLitpro(ctx.paths.work);
  const problems: string[] = [];
  await run(ctx, [litpro], { what: 'litpro', watch: (line) => { if (LITPRO_FAILURE.test(line) && problems.length < 5) problems.push(line); } });
  if (problems.length) throw new StepFailure(`litpro reported problems (${problems.join('; ').slice(0, 200)}); see the log.`, { lastLines: problems });
  return { note: 'litpro' };
}
