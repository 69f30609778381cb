// Where a one-shot launchfit command runs. While `launchfit run` is up it holds the deploy
// folder's lock, so deploy, update, rollback and status are asked of it over the control socket
// (it answers with its result, or its error in its category); otherwise they are done here.
import type { Logger } from '../core/log.ts';
import { validateVersion } from '../release/format/version-file.ts';
import { askRunning, requestOverSocket } from './control/socket.ts';
import { rollbackOnce, updateOnce } from './launcher.ts';
import { deployPaths } from './deploy-folder/state.ts';
import { collectStatus, type Status } from './control/status.ts';
import type { CheckResult } from './install/context.ts';

export type ChangeRequest =
  { command: 'update'; force?: boolean } | { command: 'rollback'; to?: string; force?: boolean };
export type OneShotRequest = ChangeRequest | { command: 'status' };

// A running launchfit answers status at once; an update may take as long as a download.
const STATUS_TIMEOUT_MS = 10_000;

/** Ask the running launchfit of DIR to do it over its socket, else do it here. */
export function runHereOrOnRunning(dir: string, request: { command: 'status' }, log: Logger): Promise<Status>;
export function runHereOrOnRunning(dir: string, request: ChangeRequest, log: Logger): Promise<CheckResult>;
export async function runHereOrOnRunning(
  dir: string,
  request: OneShotRequest,
  log: Logger,
): Promise<Status | CheckResult> {
  const paths = deployPaths(dir);
  switch (request.command) {
    case 'status': {
      // Reading the status here is always safe, so a running launchfit that does not answer in
      // time is no error: the files on disk say the same, without the app's live state.
      const live = await requestOverSocket(paths.socket, 'GET', '/status', STATUS_TIMEOUT_MS).catch(() => undefined);
      return live?.body.ok ? (live.body.result as Status) : collectStatus(paths);
    }
    case 'update': {
      const live = await askRunning(paths.socket, 'POST', '/update');
      return live ? (live.result as CheckResult) : updateOnce(dir, log, { force: Boolean(request.force) });
    }
    case 'rollback': {
      if (request.to !== undefined) validateVersion(request.to, '--to version');
      const query = new URLSearchParams();
      if (request.to) query.set('to', request.to);
      if (request.force) query.set('force', '1');
      const live = await askRunning(paths.socket, 'POST', `/rollback${query.toString() ? `?${query}` : ''}`);
      return live
        ? (live.result as CheckResult)
        : rollbackOnce(dir, log, request.to, { force: Boolean(request.force) });
    }
  }
}
