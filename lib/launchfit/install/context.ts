// What every phase of an update shares: the context a check runs in (deploy folder, config, the
// app's control), what a check returns, and the name a release gets from its file (docs/launchfit.md).
import { VerificationError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { nameProblem } from '../../core/names.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import { type FetchFn } from '../update-server/requests.ts';
import { type DeployPaths, type StartFailure } from '../deploy-folder/state.ts';

export const MAX_SIGNATURE_BYTES = 64 * 1024;

/** What the updater needs from whoever runs the app (`launchfit run`), or nothing. */
export interface AppControl {
  stop(): Promise<void>;
  /**
   * Start the app in the release `current` points at; with `probation`, resolve false (and stop
   * it) unless it stays up healthy_after seconds and (app.health) answers its health check with
   * a 2xx within them and then every probe for healthy_after more.
   */
  start(probation: boolean): Promise<boolean>;
  /** Why the last start on probation failed. */
  lastFailure?(): StartFailure | undefined;
  /** With app.listen: the new release starts beside the running one, on the same sockets. */
  overlap?: {
    /** Start the app in `current` as a second instance, on probation. */
    startNext(): Promise<boolean>;
    /** The new instance takes over: the old one is stopped (drained). */
    promoteNext(): Promise<void>;
    /** Stop the new instance; the old one keeps serving. */
    dropNext(): Promise<void>;
  };
}

export const NO_APP: AppControl = { stop: async () => {}, start: async () => true };

export interface UpdateContext {
  paths: DeployPaths;
  config: LaunchConfig;
  log: Logger;
  app?: AppControl;
  fetchImpl?: FetchFn;
  now?: () => Date;
  /**
   * Told the check's result once it is known, which may be before the check ends: an overlapping
   * switch is `installed` when the new release is healthy and serving and the old instance has
   * been told to stop, not once it has drained (the fleet master's next wave need not wait).
   */
  verdict?: (result: CheckResult) => void;
}

/** `unhealthy`: the new release did not stay up and launchfit went back; `rolled-back`: by request. */
export type CheckAction =
  'not-modified' | 'up-to-date' | 'installed' | 'skipped-bad' | 'unhealthy' | 'rolled-back' | 'waiting' | 'staged';

export interface CheckResult {
  action: CheckAction;
  version?: string;
  release?: string;
  previous?: string;
  message: string;
  /** rollback under `launchfit run`: from stopping the old app until the one gone back to passed its start check. */
  upAfterMs?: number;
}

/** releases/ folder name for a tarball: the file name without .tar.gz / .tgz. */
export function releaseNameOf(file: string): string {
  const m = /^(.+?)(\.tar\.gz|\.tgz)$/.exec(file);
  if (!m || nameProblem(m[1]))
    throw new VerificationError(
      `The release file ${JSON.stringify(file)} named in VERSION must be a plain NAME.tar.gz file name.`,
    );
  return m[1];
}
