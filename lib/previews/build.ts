// A preview's build: the repo's own steps up to compile (never upload, publish or rollout), on the
// pull request's head commit, in the preview's own folder, with `previews.env` as its only
// variables. A fork's head is fetched from the fork, without the repo's deploy key or token.
// `build REPO --preview N` runs it (hook-server starts that as a process, as it starts builds).
import path from 'node:path';
import type { RepoConfig, ShipkitConfig, Step } from '../config/shipkit-yml.ts';
import { repoFolderName } from '../core/names.ts';
import { ConfigError } from '../core/errors.ts';
import { previewName } from './name.ts';
import { previewsFolder } from './store.ts';
import { previewRunAsKind } from './user.ts';

/** The steps a preview runs, of those its repo has. */
export const PREVIEW_STEPS: readonly Step[] = ['pull', 'downloads', 'install', 'compile'];

/** DATA/previews/SLUG/pr-N: everything one preview holds (build, releases, launchfit's folder). */
export function previewFolder(data: string, repo: string, pr: number): string {
  return path.join(previewsFolder(data), repoFolderName(repo), previewName(pr));
}

/** The folders of the preview's build job: its work tree, its log, its state (lock, npm cache). */
export function previewBuildPaths(folder: string): { work: string; logs: string; state: string } {
  return { work: path.join(folder, 'src'), logs: path.join(folder, 'logs'), state: path.join(folder, 'state') };
}

export interface PreviewBuildPlan {
  /** The repo as the preview's build sees it: previews.env as its env:, no pipeline after compile. */
  repo: RepoConfig;
  steps: Step[];
  url: string;
  env: Record<string, string>;
}

/**
 * Who the build runs as: `user` (hook-server gives each preview's uid as `#UID`), else
 * previews.user, else this process's user, which must not be root.
 */
export function previewBuildUser(
  previews: NonNullable<RepoConfig['previews']>,
  user: string | undefined,
  uid: number | undefined = process.getuid?.(),
): string | undefined {
  if (user !== undefined) return user;
  if (previewRunAsKind(previews, uid) !== 'own') return previews.user;
  throw new ConfigError(
    "A preview's build never runs as root: give --preview-user (hook-server gives each preview a uid " +
      'of its own, as #UID) or set previews.user.',
  );
}

/**
 * What `build REPO --preview N --url URL` runs. `fromFork` leaves out the repo's deploy key and
 * token: a fork is fetched as anyone may fetch it. `user`: see previewBuildUser.
 */
export function previewBuildPlan(
  config: ShipkitConfig,
  repo: RepoConfig,
  { pr, url, fromFork, user }: { pr: number; url?: string; fromFork: boolean; user?: string },
): PreviewBuildPlan {
  const previews = repo.previews;
  if (!previews)
    throw new ConfigError(`${repo.name} has no previews: block in ${config.doc.file}; add one (docs/previews.md).`);
  const cloneUrl = fromFork ? url : (repo.url ?? url);
  if (!cloneUrl) throw new ConfigError(`No clone URL for the preview of ${repo.name}#${pr}: give --url.`);
  const own: RepoConfig = {
    ...repo,
    url: cloneUrl,
    user: previewBuildUser(previews, user),
    env: previews.env,
    steps: repo.steps.filter((s) => PREVIEW_STEPS.includes(s)),
    upload: [],
    publish: undefined,
    rollout: undefined,
    notify: [],
    report: undefined,
    skipUnchanged: false,
    ...(fromFork ? { gitAuth: { keyPath: repo.gitAuth.keyPath }, gitToken: undefined } : {}),
  };
  return {
    repo: own,
    steps: own.steps,
    url: cloneUrl,
    env: { SHIPKIT_PREVIEW: '1', SHIPKIT_PR: String(pr) },
  };
}
