// An approval given by a status-page user (POST /approve, docs/environments.md "Approvals"): the
// release the form names must be the one waiting now, as the source's signed ledger records it;
// then hook-server signs it with its ui_key into the target's DEST, where `release promote` counts it.
import path from 'node:path';
import { ValidationError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import { openDestination } from '../release/dest/destination.ts';
import { ledgerActor } from '../release/dest/ledger.ts';
import { versionKey } from '../release/format/version-file.ts';
import { ledgerTrustOf, waitingRelease } from '../release/gates/approval-release.ts';
import { checkApprovals, givePageApproval } from '../release/gates/approvals.ts';
import type { PageApprovalAnswer, PageApprovalRequest } from '../web/read-sources.ts';

export interface PageApprovalOptions {
  config: Pick<ShipkitConfig, 'apps' | 'uiKey' | 'data' | 'file'>;
  log: Logger;
  now?: () => Date;
}

/**
 * What hook-server answers a user's approval with: `approved` (written at the target's DEST), or
 * `refused` with the status the page sends (403: not allowed to; 409: the form is not for the
 * release waiting now; 503: hook-server cannot sign or read). Never throws.
 */
export async function approveOnPage(
  request: PageApprovalRequest,
  { config, log, now = () => new Date() }: PageApprovalOptions,
): Promise<PageApprovalAnswer> {
  const app = config.apps.get(request.app);
  const env = app?.environments.get(request.env);
  const rule = env?.approvals;
  if (!app || !env || !rule?.users?.includes(request.user))
    return { refused: `${request.user} is not one of the approvers of ${request.app} in ${request.env}.`, status: 403 };
  const source = env.from === undefined ? undefined : app.environments.get(env.from);
  if (!source) return { refused: `${env.name} has no source environment (from:).`, status: 409 };
  if (!config.uiKey) return { refused: 'hook-server has no ui_key: to sign approvals with.', status: 503 };
  try {
    const trust = await ledgerTrustOf({
      state: path.join(config.data, 'approvals-state'),
      releaseKey: app.key,
      by: `${config.file}'s apps.${app.name}.key`,
      say: (line) => log.info(line),
    });
    const target = openDestination(env.to, log);
    const names = { app: app.name, sourceName: source.name, targetName: env.name };
    const waiting = await waitingRelease(openDestination(source.to, log), target, { ...trust, ...names });
    const release = 'release' in waiting ? waiting.release : undefined;
    if (!release || versionKey(release.version) !== versionKey(request.version) || release.sha256 !== request.sha256)
      return {
        refused:
          `This form is for ${request.app} ${request.version} (sha256 ${request.sha256.slice(0, 12)}…), but ` +
          `${release ? `${release.version} (sha256 ${release.sha256.slice(0, 12)}…) waits now` : 'nothing waits now'}: ` +
          'reload the page and approve what waits. Nothing was written.',
        status: 409,
      };
    const subject = { app: app.name, version: release.version, sha256: release.sha256, env: env.name };
    const at = now();
    const approval = await givePageApproval({
      dest: target,
      subject,
      user: request.user,
      keyFile: config.uiKey,
      rule,
      publisherUsers: release.publisherUsers,
      by: `status page (${ledgerActor()})`,
      now: at,
      log,
    });
    const { publishers, publisherUsers } = release;
    const check = await checkApprovals({ dest: target, ...subject, rule, publishers, publisherUsers, now: at });
    return { approved: { ...subject, expires: approval.expires, given: check.valid.length, required: check.required } };
  } catch (error) {
    if (error instanceof ValidationError) return { refused: messageOf(error), status: 403 };
    log.error('an approval on the status page failed', { app: request.app, env: request.env, error: messageOf(error) });
    return { refused: `hook-server could not approve: ${messageOf(error)}`, status: 503 };
  }
}
