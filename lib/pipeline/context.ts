// What every build step gets (the job's context), how a step fails, and how it runs a command:
// into the job log, as the repo's user, bounded by the job's deadline (lib/pipeline/exec.ts).
import { existsSync } from 'node:fs';
import { WorkError } from '../core/errors.ts';
import {
  captureCommand,
  describeEnd,
  runLogged,
  type OutputLimits,
  type CommandResult,
  type Prestarted,
} from './exec.ts';
import { redactUrls } from '../core/redact.ts';
import type { JobLogWriter } from '../jobs/job-log.ts';
import { createLogger, type Logger } from '../core/log.ts';
import type { RepoConfig, ShipkitConfig } from '../config/shipkit-yml.ts';

/** This job's plan: the paths kept, or why it starts clean (`--no-cache`, `cache: false`). */
export interface CachePlan {
  keep: string[];
  clean?: string;
  /** Set once the clean start's removal has happened in this job. */
  cleaned?: boolean;
}

/** The Node a build runs its commands with (lib/pipeline/node-toolchain.ts chooses it). */
export interface ChosenNode {
  /** `22.9.0` */
  version: string;
  from: string;
  /** Put first on PATH; undefined when shipkit's own Node is already the first `node` there. */
  bin?: string;
  how: 'own' | 'cached' | 'fetched';
}

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
  /** What the publish step left for the rollout step (lib/pipeline/publish-and-rollout.ts). */
  pipeline?: { version: string; sha256: string; unchanged: boolean };
  /** What this job keeps from the last build, or why it starts clean (lib/pipeline/cache.ts). */
  cache?: CachePlan;
  /** The repo's Node once chosen (lib/pipeline/node-toolchain.ts); null: none asked for, shipkit's PATH as it is. */
  node?: ChosenNode | null;
  /** Commands started ahead of their step (lib/pipeline/exec.ts prestartNode), by name; ended with the job. */
  prestarted?: Record<string, Prestarted>;
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
  constructor(
    message: string,
    {
      lastLines = [],
      timedOut = false,
      commandExit,
    }: { lastLines?: string[]; timedOut?: boolean; commandExit?: number } = {},
  ) {
    super(message);
    this.lastLines = lastLines;
    this.timedOut = timedOut;
    this.commandExit = commandExit;
  }
}

/** What a step did, for its closing log line: `ok`, or `skipped: no package.json`. */
export type StepResult = { skipped?: string; note?: string } | void;

/** Runs a command into the log; throws StepFailure unless it exits 0. */
export async function run(
  ctx: BuildContext,
  argv: string[],
  {
    cwd = ctx.paths.work,
    what = argv.join(' '),
    watch,
    prestarted,
  }: { cwd?: string; what?: string; watch?: (line: string) => void; prestarted?: Prestarted } = {},
): Promise<CommandResult> {
  if (!existsSync(cwd))
    throw new StepFailure(
      `The work folder ${cwd} does not exist yet; run the pull step first (\`shipkit build ${ctx.repo.name}\` without --steps).`,
    );
  ctx.log.line(`$ ${redactUrls(what)}`);
  const result = await runLogged(argv, {
    cwd,
    env: ctx.env,
    log: ctx.log,
    deadline: ctx.deadline,
    timeoutSec: ctx.timeoutSec,
    limits: ctx.limits,
    watch,
    signal: ctx.signal,
    prestarted,
    ...(ctx.runAs ? { uid: ctx.runAs.uid, gid: ctx.runAs.gid } : {}),
  });
  if (result.timedOut) {
    throw new StepFailure(
      `\`${redactUrls(what).slice(0, 80)}\` was killed at the job's time limit (${ctx.timeoutSec} s); ` +
        `raise \`timeout:\` in shipkit.yml if the build needs longer.`,
      { lastLines: result.lastLines, timedOut: true },
    );
  }
  if (ctx.signal?.aborted)
    throw new StepFailure(`\`${redactUrls(what).slice(0, 80)}\` was stopped: ${String(ctx.signal.reason)}.`, {
      lastLines: result.lastLines,
    });
  if (result.exitCode !== 0) {
    throw new StepFailure(`\`${redactUrls(what).slice(0, 80)}\` failed (${describeEnd(result)}).`, {
      lastLines: result.lastLines,
      commandExit: result.exitCode ?? undefined,
    });
  }
  return result;
}

/** A quick git query (rev-parse, cat-file): trimmed stdout, or undefined when git says no. */
export async function gitQuery(ctx: BuildContext, args: string[]): Promise<string | undefined> {
  const result = await captureCommand(['git', ...args], {
    cwd: ctx.paths.work,
    env: ctx.env,
    timeoutMs: Math.max(1000, ctx.deadline - Date.now()),
    uid: ctx.runAs?.uid,
    gid: ctx.runAs?.gid,
  });
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}

/** A lib/core/log.ts logger that writes into the job log, for the stage libraries. */
export function stageLogger(log: JobLogWriter): Logger {
  return createLogger({
    json: false,
    color: false,
    stream: {
      write: (text: string) => {
        log.line(`| ${text.replace(/\n$/, '')}`);
        return true;
      },
    } as unknown as NodeJS.WritableStream,
  });
}
