// One job (a build or a release) of one repo: take the repo's lock, rotate its log when the cap
// is passed, write the header, run the steps in order until one fails, write the trailer.
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { checkKnownKeys, configError, getKey, valueAt } from '../core/yaml-config.ts';
import { ConfigError, UsageError, WorkError, messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import { lookupUser } from '../core/unix-user.ts';
import { refNameProblem, validateShaInput } from '../core/names.ts';
import { DEFAULT_OUTPUT_LIMITS, discardPrestarted, type OutputLimits, type Prestarted } from './exec.ts';
import { StepFailure, type BuildContext, type StepResult } from './context.ts';
import type { JobKind } from '../jobs/job-id.ts';
import { JobLogWriter, type JobStatus } from '../jobs/job-log.ts';
import { DEFAULT_ROTATION, parseSize, rotateLogs, type RotationPolicy } from '../jobs/log-rotate.ts';
import { acquireLock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import { resolveBuildEnv, secretEnvNames } from '../config/build-env.ts';
import { prepareGitAuth } from './git-auth.ts';
import { planCache } from './cache.ts';
import { withNodeOnPath } from './node-toolchain.ts';
import { prepareGitToken } from './git-token.ts';
import { checkFoldersOwner, pullRemoteUrl } from './pull.ts';
import { forgetBuilt, recordBuilt } from './built-record.ts';
import { repoPaths, type RepoConfig, type ShipkitConfig } from '../config/shipkit-yml.ts';

export interface JobStep {
  name: string;
  run: (ctx: BuildContext) => Promise<StepResult>;
  /** Called once as the job takes its lock, with the build commands' environment: may start work ahead (steps.ts prestartCompile). */
  ahead?: (ctx: AheadContext) => void;
}

/** What a step may start ahead with: the job's folders, user and the build commands' environment. */
export type AheadContext = Pick<BuildContext, 'repo' | 'paths' | 'runAs' | 'env'> & {
  prestarted: Record<string, Prestarted>;
};

export interface JobOptions {
  config: ShipkitConfig;
  repo: RepoConfig;
  kind: JobKind;
  id: string;
  steps: JobStep[];
  sha?: string;
  ref?: string;
  url?: string;
  /** Extra environment for every command (SHIPKIT_TAG for a release). */
  env?: Record<string, string>;
  /** Progress on the terminal (stderr): one line per step. */
  log: Logger;
  signal?: AbortSignal;
  /** How long to wait for another job of the same repo to finish. Default: the job timeout. */
  lockWaitMs?: number;
  /** `build --no-cache`: start clean (lib/pipeline/cache.ts). */
  noCache?: boolean;
  /** Once the job's checks passed and its lock is held, before its log starts: the audit of a job typed by hand. */
  beforeStart?: () => Promise<void>;
  /** The steps are the repo's whole configured list (no `--steps`): a build that succeeds is recorded in built.json (lib/pipeline/built-record.ts). */
  recordBuilt?: boolean;
  /** The job's folders, when not the repo's own (a preview's: lib/previews/build.ts). */
  paths?: BuildContext['paths'];
}

export interface JobOutcome {
  id: string;
  repo: string;
  kind: JobKind;
  status: Exclude<JobStatus, 'running'>;
  exit: number;
  sha?: string;
  ref?: string;
  step?: string;
  error?: string;
  duration_ms: number;
  /** The failing command's last lines, for the terminal. */
  lastLines: string[];
  log: string;
}

export interface LogSettings {
  rotation: RotationPolicy;
  limits: OutputLimits;
}

/** The `logs:` section of shipkit.yml: max_size, keep, max_output. */
export function logSettings(config: ShipkitConfig): LogSettings {
  const doc = config.doc;
  getKey(doc, ['logs'], 'object');
  checkKnownKeys(doc, ['logs'], ['max_size', 'keep', 'max_output']);
  const size = (key: string, fallback: number) => {
    const raw = valueAt(doc.data, ['logs', key]);
    if (raw === undefined || raw === null) return fallback;
    const bytes = parseSize(raw);
    if (bytes === undefined)
      throw configError(
        doc,
        ['logs', key],
        `must be a size such as 10M, 512k or a number of bytes, got ${JSON.stringify(raw)}.`,
      );
    return bytes;
  };
  const keep = getKey(doc, ['logs', 'keep'], 'number') ?? DEFAULT_ROTATION.keep;
  if (!Number.isInteger(keep) || keep < 0)
    throw configError(doc, ['logs', 'keep'], 'must be a whole number (0 or more).');
  const headBytes = size('max_output', DEFAULT_OUTPUT_LIMITS.headBytes);
  return {
    rotation: { maxSize: size('max_size', DEFAULT_ROTATION.maxSize), keep },
    limits: {
      headBytes,
      tailBytes: Math.min(DEFAULT_OUTPUT_LIMITS.tailBytes, Math.max(4096, Math.floor(headBytes / 4))),
    },
  };
}

// Git variables a git hook runs with: they would point the build's git at the hook's repo.
const GIT_HOOK_VARIABLES = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_QUARANTINE_PATH',
  'GIT_PREFIX',
  'GIT_NAMESPACE',
  'GIT_COMMON_DIR',
  'GIT_PUSH_OPTION_COUNT',
];

/** The environment the job's commands see: no hook git variables, no shipkit secrets. */
export function jobEnvironment(
  config: ShipkitConfig,
  base: NodeJS.ProcessEnv,
  extra: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of GIT_HOOK_VARIABLES) delete env[name];
  // hook-server's own secrets: webhook secrets, the read token, notification URLs and signing
  // secrets, commit-status tokens, the fleet secret. A build run by hand with hook-server's environment gets none.
  const repos = [...config.repos.values()];
  const targets = [...config.notify, ...repos.flatMap((r) => r.notify ?? [])];
  const secretRefs = [
    ...(config.secret ?? []).map((s) => s.ref),
    config.token,
    ...repos.flatMap((r) => (r.secret ?? []).map((s) => s.ref)),
    ...targets.flatMap((t) => [t.url, t.secret]),
    ...repos.map((r) => r.report?.token),
    ...repos.map((r) => r.rollout?.secret),
    ...[...(config.fleet?.values() ?? [])].flatMap((f) => f.secrets),
  ];
  for (const ref of secretRefs) if (ref?.startsWith('env:')) delete env[ref.slice(4)];
  // A repo's env: and token: secrets reach its build under the names it gave them, and no other build.
  for (const repo of config.repos.values()) for (const name of secretEnvNames(repo)) delete env[name];
  for (const name of ['SHIPKIT_SECRET', 'SHIPKIT_TOKEN', 'SHIPKIT_WEBHOOK_SECRET']) delete env[name];
  return { ...env, GIT_TERMINAL_PROMPT: '0', CI: 'true', npm_config_update_notifier: 'false', ...extra };
}

/** The repo's `user:` as uid/gid, or undefined when the job runs as the current user. */
async function resolveRunAs(repo: RepoConfig, config: ShipkitConfig): Promise<BuildContext['runAs']> {
  if (!repo.user || repo.user === os.userInfo().username) return undefined;
  const where = config.doc.locate([...repo.keyPath, 'user']);
  if (process.getuid?.() !== 0)
    throw new ConfigError(
      `${where}: building ${repo.name} as user ${repo.user} needs shipkit to run as root (it runs as ${os.userInfo().username}).`,
    );
  const account = await lookupUser(repo.user, { where });
  return { user: repo.user, uid: account.uid, gid: account.gid, home: account.home };
}

/** The build user owns its work tree (a tree built as root before is handed over) and npm cache. */
async function prepareForUser(
  paths: { work: string; state: string },
  runAs: NonNullable<BuildContext['runAs']>,
): Promise<void> {
  const cache = path.join(paths.state, 'npm-cache');
  await ensureDir(cache);
  for (const dir of [paths.work, cache]) {
    const info = await stat(dir).catch(() => undefined);
    if (info && info.uid !== runAs.uid) await $({ quiet: true })`chown -R ${`${runAs.uid}:${runAs.gid}`} ${dir}`;
  }
}

/** The repo's job lock: builds, releases and `logs rotate` of one repo never overlap. */
export function jobLockFile(paths: { state: string }): string {
  return path.join(paths.state, 'job.lock');
}

/** The repo's job lock, waiting up to `waitMs` for another job of the repo to finish. */
async function takeJobLock(
  paths: { state: string },
  repo: RepoConfig,
  { waitMs, log }: { waitMs: number; log: Logger },
) {
  const lockFile = jobLockFile(paths);
  const what = `${repo.name} (another build or release is running)`;
  try {
    return await acquireLock(lockFile, { what });
  } catch (error) {
    if (!(error instanceof WorkError) || waitMs <= 0) throw error;
    log.info(`waiting up to ${Math.round(waitMs / 1000)} s: ${messageOf(error)}`);
    return await acquireLock(lockFile, { waitMs, what });
  }
}

export async function runJob(options: JobOptions): Promise<JobOutcome> {
  const { config, repo, kind, id, log } = options;
  const paths = options.paths ?? repoPaths(config, repo.name);
  const settings = logSettings(config);
  const runAs = await resolveRunAs(repo, config);
  // A build user's folders are handed over to it (prepareForUser); without one, another user's are not ours to write.
  if (!runAs) await checkFoldersOwner([paths.work, paths.state, paths.logs], { repo: repo.name, kind });
  const buildEnv = await resolveBuildEnv(config.doc, repo.env);
  const remoteUrl = await pullRemoteUrl(repo, paths.work, options.url);
  const pullEnv = await prepareGitAuth(config.doc, repo.gitAuth, { url: remoteUrl, runAs });
  const gitToken = await prepareGitToken(config.doc, repo.gitToken, { url: remoteUrl });
  await ensureDir(paths.state);
  await ensureDir(paths.logs);
  const lock = await takeJobLock(paths, repo, { waitMs: options.lockWaitMs ?? repo.timeout * 1000, log });
  await options.beforeStart?.().catch(async (error) => {
    await lock.release();
    throw error;
  });
  const baseEnv = baseEnvironment(options, paths, runAs);
  const cache = planCache(repo.cache, { noCache: options.noCache });
  const prestarted: Record<string, Prestarted> = {};
  try {
    // Whatever this job does changes the work folder: the record of the last build goes first.
    await forgetBuilt(paths);
    // Under the lock: what a step starts ahead starts while the rest gets ready.
    // The build commands' environment, with the repo's Node on PATH once it is chosen.
    const commandEnv = (node: BuildContext['node']) => withNodeOnPath({ ...baseEnv, ...buildEnv.vars }, node);
    for (const step of options.steps) step.ahead?.({ repo, paths, runAs, prestarted, env: commandEnv(undefined) });
    if (runAs) await prepareForUser(paths, runAs);
    const rotation = await rotateLogs(paths.logs, settings.rotation);
    if (rotation.rotated) log.info(`rotated ${path.join(paths.logs, 'logs.txt')} (${rotation.size} bytes)`);
    const writer = await JobLogWriter.start(
      paths.logs,
      { id, repo: repo.name, kind, sha: options.sha, ref: options.ref },
      { secrets: [...buildEnv.secrets, ...(gitToken?.secrets ?? [])] },
    );
    const ctx: BuildContext = {
      config,
      repo,
      paths,
      log: writer,
      env: { ...baseEnv },
      deadline: Date.now() + repo.timeout * 1000,
      timeoutSec: repo.timeout,
      limits: settings.limits,
      url: options.url,
      sha: options.sha,
      ref: options.ref,
      runAs,
      signal: options.signal,
      cache,
      prestarted,
    };
    // The repo's env: is for the build's own commands, not for fetching its code.
    // So are the repo's Node (first on PATH once a step has chosen it) and its env:.
    const envFor = (step: JobStep) =>
      step.name === 'pull' ? { ...baseEnv, ...pullEnv, ...gitToken?.env } : commandEnv(ctx.node);
    const failed = await runSteps(options, ctx, writer, envFor);
    // Its git runs without the repo's env: (a GIT_* there is for the build's commands, not shipkit's).
    if (!failed && options.recordBuilt && kind === 'build')
      await recordBuild({ ...ctx, env: { ...baseEnv } }, options, buildEnv.vars, writer);
    return outcomeOf(options, ctx, writer, failed);
  } finally {
    for (const started of Object.values(prestarted)) discardPrestarted(started);
    await lock.release();
  }
}

/** The environment every step starts from: hook-server's own secrets out, the job's variables in. */
function baseEnvironment(
  options: JobOptions,
  paths: BuildContext['paths'],
  runAs: BuildContext['runAs'],
): NodeJS.ProcessEnv {
  return jobEnvironment(options.config, process.env, {
    SHIPKIT_REPO: options.repo.name,
    SHIPKIT_JOB_ID: options.id,
    ...(options.ref ? { SHIPKIT_REF: options.ref } : {}),
    ...(options.sha ? { SHIPKIT_SHA: options.sha } : {}),
    ...(options.env ?? {}),
    ...(runAs
      ? {
          npm_config_cache: path.join(paths.state, 'npm-cache'),
          HOME: runAs.home,
          USER: runAs.user,
          LOGNAME: runAs.user,
        }
      : {}),
  });
}

/** built.json for the next push (lib/pipeline/up-to-date.ts); a failure to write it only means that push builds. */
async function recordBuild(
  ctx: BuildContext,
  options: JobOptions,
  vars: Record<string, string>,
  writer: JobLogWriter,
): Promise<void> {
  try {
    const record = await recordBuilt(ctx, { job: options.id, vars });
    writer.line(`recorded: tree ${record.tree} of ${record.sha} is built (a push of the same tree needs no build)`);
  } catch (error) {
    writer.line(`could not record this build (${messageOf(error)}); the next push builds again`);
  }
}

interface StepFailed {
  step: string;
  error: string;
  lastLines: string[];
  exit?: number;
}

/** The steps in order, each logged with its time; the first that fails (or a stop) ends the run. */
async function runSteps(
  options: JobOptions,
  ctx: BuildContext,
  writer: JobLogWriter,
  envFor: (step: JobStep) => NodeJS.ProcessEnv,
): Promise<StepFailed | undefined> {
  const { log } = options;
  for (const step of options.steps) {
    if (options.signal?.aborted) {
      const error = `stopped before ${step.name}: ${String(options.signal.reason)}`;
      writer.line(`!!! ${error}`);
      return { step: step.name, error, lastLines: [] };
    }
    const t0 = Date.now();
    writer.line(`--- step ${step.name}`);
    try {
      ctx.env = envFor(step);
      // Steps that set the commit (pull) make it visible to the next ones.
      if (ctx.checkedOut) ctx.env.SHIPKIT_SHA = ctx.checkedOut;
      const result = await step.run(ctx);
      if (ctx.checkedOut) ctx.env.SHIPKIT_SHA = ctx.checkedOut;
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      if (result?.skipped) {
        writer.line(`--- step ${step.name} skipped: ${result.skipped}`);
        log.info(`${step.name}: skipped (${result.skipped})`);
      } else {
        writer.line(`--- step ${step.name} ok (${secs} s)${result?.note ? `: ${result.note}` : ''}`);
        log.info(`${step.name}: ok in ${secs} s${result?.note ? ` (${result.note})` : ''}`);
      }
    } catch (error) {
      const message = messageOf(error);
      if (!(error instanceof StepFailure) && process.env.SHIPKIT_DEBUG && error instanceof Error)
        writer.line(String(error.stack));
      writer.line(`!!! step ${step.name} failed after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${message}`);
      return {
        step: step.name,
        error: message,
        lastLines: error instanceof StepFailure ? error.lastLines : [],
        exit: error instanceof StepFailure ? error.exitCode : undefined,
      };
    }
  }
  return undefined;
}

/** The job log's trailer written, and the outcome the caller prints. */
function outcomeOf(
  options: JobOptions,
  ctx: BuildContext,
  writer: JobLogWriter,
  failed: StepFailed | undefined,
): JobOutcome {
  const trailer = writer.finish({
    status: failed ? 'failed' : 'succeeded',
    exit: failed ? (failed.exit ?? 1) : 0,
    ...((ctx.checkedOut ?? options.sha) ? { sha: ctx.checkedOut ?? options.sha } : {}),
    ...(failed ? { step: failed.step, error: failed.error } : {}),
  });
  return {
    id: options.id,
    repo: options.repo.name,
    kind: options.kind,
    status: trailer.status,
    exit: trailer.exit,
    sha: trailer.sha,
    ref: options.ref,
    step: trailer.step,
    error: trailer.error,
    duration_ms: trailer.duration_ms,
    lastLines: failed?.lastLines ?? [],
    log: writer.file,
  };
}

/**
 * `--ref`/`--tag`: `refs/heads/main`, `main`, `v1.2.0`, `pkg@1.2.3`: the ref rule hook-server
 * applies too (lib/core/names.ts), so every ref it answers 202 for builds.
 */
export function validateRef(ref: string, flag = 'ref'): string {
  const problem = refNameProblem(ref);
  if (problem)
    throw new UsageError(
      `Invalid --${flag} ${JSON.stringify(ref.slice(0, 70))}: it ${problem}; use a branch or tag name ` +
        `such as main, refs/heads/main or v1.2.0.`,
    );
  return ref;
}

/** `--sha`: 7 to 64 hex digits (a person may abbreviate), lower-cased; the rule lives in lib/core/names.ts. */
export function validateSha(sha: string): string {
  try {
    return validateShaInput(sha, '--sha');
  } catch (error) {
    throw new UsageError(messageOf(error), { cause: error });
  }
}

/** The lines a terminal user sees when a job failed. */
function describeFailure(outcome: JobOutcome): string {
  return (
    `${outcome.kind} of ${outcome.repo} failed at step ${outcome.step}: ${outcome.error} Log: ` +
    `\`shipkit logs ${outcome.repo} --job ${outcome.id}\`.`
  );
}

/** The job's result on `stdout` (a line, or JSON), its last lines and failure on the log; returns the exit code. */
export function report(
  outcome: JobOutcome,
  { json = false, log, stdout }: { json?: boolean; log: Logger; stdout: NodeJS.WritableStream },
): number {
  const { lastLines, ...result } = outcome;
  if (json) stdout.write(`${JSON.stringify(result)}\n`);
  else
    stdout.write(
      `${outcome.kind} ${outcome.repo} ${outcome.status} (job ` +
        `${outcome.id}${outcome.sha ? `, ${outcome.sha.slice(0, 12)}` : ''}, ${(outcome.duration_ms / 1000).toFixed(1)} s)\n`,
    );
  if (outcome.status !== 'succeeded') {
    for (const line of lastLines.slice(-10)) log.info(`  | ${line}`);
    log.error(describeFailure(outcome));
  }
  return outcome.exit;
}

export interface RepoRotation {
  repo: string;
  rotated: boolean;
  size: number;
  removed: string[];
  skipped?: string;
}

/**
 * `logs rotate`: rotate each repo's logs.txt past `maxSize`, holding the repo's job lock so a
 * running job's log is never moved under it (that repo is skipped; its next build rotates).
 */
export async function rotateRepoLogs(
  config: ShipkitConfig,
  repos: RepoConfig[],
  policy: { maxSize: number; keep: number },
  { force = false, log }: { force?: boolean; log: Logger },
): Promise<{ results: RepoRotation[]; failures: number }> {
  const results: RepoRotation[] = [];
  let failures = 0;
  for (const repo of repos) {
    const paths = repoPaths(config, repo.name);
    if (!existsSync(paths.logs)) {
      results.push({ repo: repo.name, rotated: false, size: 0, removed: [], skipped: 'no logs yet' });
      continue;
    }
    let lock;
    try {
      lock = existsSync(paths.state) ? await acquireLock(jobLockFile(paths), { what: repo.name }) : undefined;
    } catch (error) {
      results.push({
        repo: repo.name,
        rotated: false,
        size: 0,
        removed: [],
        skipped: `a job is running (${messageOf(error)})`,
      });
      continue;
    }
    try {
      results.push({ repo: repo.name, ...(await rotateLogs(paths.logs, policy, { force })) });
    } catch (error) {
      failures++;
      log.error(`${repo.name}: rotation failed: ${messageOf(error)}`);
    } finally {
      await lock?.release();
    }
  }
  return { results, failures };
}
