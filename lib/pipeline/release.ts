// `release REPO --tag TAG`: check out the tag and run the repo's release script (`release:` in
// shipkit.yml, default release.sh) with SHIPKIT_REPO, SHIPKIT_TAG and SHIPKIT_SHA set. Its
// output goes to the repo's logs.txt like a build's; its exit code is the release's.
import { constants } from 'node:fs';
import { stat } from 'node:fs/promises';
import { canAccess } from '../core/fs.ts';
import { configError } from '../core/yaml-config.ts';
import { run, StepFailure, type BuildContext, type StepResult } from './context.ts';
import { pullStep } from './pull.ts';
import { useRepoNode } from './node-toolchain.ts';
import { runJob, type JobOutcome } from './job.ts';
import type { Logger } from '../core/log.ts';
import { resolveInside } from '../core/names.ts';
import { repoPaths, type RepoConfig, type ShipkitConfig } from '../config/shipkit-yml.ts';

/** The release script's path inside the work folder; a ConfigError when it would leave it. */
function releaseScriptPath(config: ShipkitConfig, repo: RepoConfig, work: string): string {
  try {
    return resolveInside(work, repo.release, 'release script');
  } catch (error) {
    throw configError(
      config.doc,
      [...repo.keyPath, 'release'],
      `must be a path inside the repo such as release.sh or scripts/release.sh, got ${JSON.stringify(repo.release)}.`,
      { cause: error },
    );
  }
}

/** Runs the checked-out release script; a missing or non-executable one fails with a fix. */
async function releaseScriptStep(ctx: BuildContext): Promise<StepResult> {
  await useRepoNode(ctx);
  const relative = ctx.repo.release;
  const script = releaseScriptPath(ctx.config, ctx.repo, ctx.paths.work);
  const tag = ctx.env.SHIPKIT_TAG;
  const info = await stat(script).catch(() => undefined);
  if (!info) {
    throw new StepFailure(
      `The release script ${relative} does not exist at ${tag}; add it to the repo (see ` +
        `templates/release.sh) or set \`release:\` for ${ctx.repo.name} in shipkit.yml.`,
    );
  }
  if (!info.isFile()) throw new StepFailure(`The release script ${relative} is not a file.`);
  if (!(await canAccess(script, constants.X_OK))) {
    throw new StepFailure(
      `The release script ${relative} is not executable; run \`git update-index --chmod=+x ${relative}\`, commit, and tag again.`,
    );
  }
  try {
    await run(ctx, [script], { what: `./${relative}`, cwd: ctx.paths.work });
  } catch (error) {
    if (error instanceof StepFailure && error.commandExit) error.exitCode = error.commandExit;
    throw error;
  }
  return { note: `./${relative} exited 0` };
}

/**
 * Release TAG of `repo` as job `id`: check out the tag and run the release script. A script
 * path outside the repo is a configuration error before any job starts.
 */
export async function runRelease({
  config,
  repo,
  tag,
  id,
  log,
  signal,
  beforeStart,
}: {
  config: ShipkitConfig;
  repo: RepoConfig;
  tag: string;
  id: string;
  log: Logger;
  signal?: AbortSignal;
  /** See JobOptions.beforeStart: the audit of a release typed by hand. */
  beforeStart?: () => Promise<void>;
}): Promise<JobOutcome> {
  releaseScriptPath(config, repo, repoPaths(config, repo.name).work);
  log.info(`release ${repo.name} ${tag}: job ${id}`);
  return runJob({
    config,
    repo,
    kind: 'release',
    id,
    ref: `refs/tags/${tag}`,
    env: { SHIPKIT_TAG: tag },
    log,
    signal,
    beforeStart,
    steps: [
      { name: 'pull', run: pullStep },
      { name: 'release', run: releaseScriptStep },
    ],
  });
}
