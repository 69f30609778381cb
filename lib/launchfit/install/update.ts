// One update check, in the contract's order (docs/launchfit.md): VERSION → signature → download →
// verify → extract (fetch-release.ts, staging.ts) → move, hook, stop, swap, start, health check
// (switch-to-release.ts). Everything slow happens before the running app is touched; every failure before
// the stop leaves the app and `current` as they were.
import { VerificationError, messageOf } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { checkReleaseBinding, hostBindingOf } from '../trust/binding.ts';
import { type TrustedKeys } from '../trust/pgp.ts';
import { ensureHostId } from '../deploy-folder/host-id.ts';
import { checkLedger, checkLedgerTail } from '../trust/ledger.ts';
import { judgeSeq, type SeqVerdict } from '../trust/seq.ts';
import {
  readState,
  updateState,
  type DeployPaths,
  type HostBinding,
  type LaunchState,
} from '../deploy-folder/state.ts';
import { readCurrent } from '../deploy-folder/current-link.ts';
import { rolloutBucket } from '../../release/format/bucket.ts';
import { compareVersions, type VersionInfo } from '../../release/format/version-file.ts';
import { type CheckResult, type UpdateContext } from './context.ts';
import { fetchLedger, fetchLedgerTail, fetchVersionInfo, loadTrustedKeys, type Validators } from './fetch-release.ts';
import { stageRelease } from './staging.ts';
import { activateRelease, installRelease } from './switch-to-release.ts';

/** A VERSION fetched because it changed, with what it was fetched under. */
type FetchedVersion = NonNullable<Awaited<ReturnType<typeof fetchVersionInfo>>>;

/** Records the failed check (`status` shows it), then throws `cause`, or the message as a VerificationError. */
type Refuse = (message: string, cause?: unknown) => Promise<never>;

/** The host as the check finds it: its state, the release `current` names and that release's version. */
interface HostNow {
  state: LaunchState;
  current: string | undefined;
  currentVersion: string | undefined;
}

/**
 * One full check. Throws on failures before the switch; the app and `current` are untouched then.
 * `stage`: the fleet master's prepare: the offered release is only staged (stageRelease), nothing
 * of its VERSION recorded, so the check that follows takes it from there.
 */
export async function checkForUpdates(ctx: UpdateContext, { force = false, stage = false } = {}): Promise<CheckResult> {
  const { paths, log } = ctx;
  const state = await readState(paths);
  const current = await readCurrent(paths);
  const host: HostNow = { state, current, currentVersion: current ? state.installed[current]?.version : undefined };
  const refuse: Refuse = async (message, cause) => {
    await recordCheck(paths, false, message, log);
    if (cause !== undefined) throw cause;
    throw new VerificationError(message);
  };
  // The keys (keys.asc) are read only once VERSION has changed: an idle poll stays one 304, and
  // they are fresh for everything they verify.
  let trustedKeys: Promise<TrustedKeys> | undefined;
  const trusted = () => (trustedKeys ??= loadTrustedKeys(ctx));
  let fetched;
  try {
    fetched = await fetchVersionInfo(
      ctx,
      trusted,
      current && !force ? { etag: state.etag, lastModified: state.lastModified } : undefined,
      Boolean(state.signedVersionSeen),
    );
  } catch (error) {
    return refuse(messageOf(error), error);
  }
  if (!fetched) return notModified(ctx, state, current, host.currentVersion, refuse);
  const { binding, seq } = await verifyOffer(ctx, host, fetched, trusted, refuse);
  const verdict = judgeOffer(host, fetched.info, seq, log);
  if (verdict && 'refusal' in verdict) return refuse(verdict.refusal);
  if (verdict) return recordHandled(paths, fetched, verdict.result);
  const { info, etag, lastModified } = fetched;
  const waiting = await rolloutWait(paths, info, { etag, lastModified });
  if (waiting) return waiting;
  let name: string;
  try {
    if (stage)
      return {
        action: 'staged',
        version: info.version,
        release: await stageRelease(ctx, info, await trusted(), fetched.signedBy),
        message: `Staged ${info.file}.`,
      };
    name = await installRelease(ctx, info, await trusted(), fetched.signedBy);
  } catch (error) {
    return refuse(messageOf(error), error);
  }
  await updateState(paths, (s) => {
    s.binding = binding;
  });
  return recordHandled(paths, fetched, await activateRelease(ctx, name, info.version));
}

/** The offer's binding to this host, its SEQ, and the server's ledger, each checked or refused. */
async function verifyOffer(
  ctx: UpdateContext,
  host: HostNow,
  fetched: FetchedVersion,
  trusted: () => Promise<TrustedKeys>,
  refuse: Refuse,
): Promise<{ binding: HostBinding; seq: SeqVerdict & { ok: true } }> {
  const { info, signed } = fetched;
  let binding;
  try {
    binding = checkReleaseBinding(info, hostBindingOf(ctx.config, host.state, host.current));
  } catch (error) {
    return refuse(messageOf(error), error);
  }
  const seq = judgeSeq(host.state, info, signed);
  if (!seq.ok) return refuse(seq.message);
  const trust = await rememberTrust(ctx, host.state, signed, trusted, fetched.sha256).catch((error) => error as Error);
  if (trust) return refuse(messageOf(trust), trust);
  return { binding, seq };
}

/**
 * What a verified VERSION comes to before anything is downloaded: the version running (up to
 * date), one marked bad (skipped), or a downgrade the publisher did not sign for (refused).
 * Undefined: it is to be installed.
 */
function judgeOffer(
  host: HostNow,
  info: VersionInfo,
  seq: SeqVerdict & { ok: true },
  log: Logger,
): { result: CheckResult } | { refusal: string } | undefined {
  const { state, current, currentVersion } = host;
  if (currentVersion !== undefined && compareVersions(info.version, currentVersion) === 0) {
    return {
      result: { action: 'up-to-date', version: info.version, release: current, message: `${current} is up to date.` },
    };
  }
  // Versions are numbers (1.1.0 is 1.1), so `bad` is searched with compareVersions, not by string.
  if (state.bad.some((v) => compareVersions(v, info.version) === 0)) {
    // The publisher sending hosts back to it (a newer SEQ, a lower version) is told how to override.
    const sentBack =
      seq.downgradeAllowed && currentVersion !== undefined && compareVersions(info.version, currentVersion) < 0;
    const message = sentBack
      ? `The publisher's VERSION (SEQ ${info.seq}) goes back to ${info.version}, which this host marked ` +
        `bad (it failed or was rolled back); staying on ${current}. To take it anyway: \`launchfit rollback --to ${info.version} --force\`.`
      : `Version ${info.version} is marked bad (it failed or was rolled back); waiting for a newer one.`;
    log.warn(message);
    return { result: { action: 'skipped-bad', version: info.version, release: current, message } };
  }
  if (seq.downgradeAllowed && state.highest && compareVersions(info.version, state.highest) < 0) {
    log.warn(
      `VERSION with the newer SEQ ${info.seq} names ${info.version}, lower than ${state.highest}: the publisher rolled back; going back`,
    );
  } else if (state.highest && compareVersions(info.version, state.highest) < 0) {
    return {
      refusal:
        `VERSION offers ${info.version}, lower than ${state.highest} already installed; refusing ` +
        `the downgrade (use \`launchfit rollback\` to go back on purpose).`,
    };
  }
  return undefined;
}

/** A VERSION handled to the end: its SEQ, validators and expiry kept, and the check's outcome. */
async function recordHandled(paths: DeployPaths, fetched: FetchedVersion, result: CheckResult): Promise<CheckResult> {
  const { info, signed, etag, lastModified } = fetched;
  await updateState(paths, (s) => {
    // Handled to the end: from now on this SEQ is the one a VERSION must not go below.
    if (signed && info.seq !== undefined && (!s.seq || info.seq > s.seq.seq))
      s.seq = { seq: info.seq, file: info.file, at: new Date().toISOString() };
    s.etag = etag;
    s.lastModified = lastModified;
    s.versionExpires = info.expires?.toISOString();
    s.lastCheck = { at: new Date().toISOString(), ok: result.action !== 'unhealthy', message: result.message };
    delete s.waiting;
  });
  return result;
}

/**
 * Remembers a signed VERSION seen (an unsigned one is refused from then on), then checks the
 * server's ledger (trust/ledger.ts): it must record this VERSION and extend the one this host
 * saw; once verified its head is remembered, whatever happens to this release.
 */
async function rememberTrust(
  ctx: UpdateContext,
  state: LaunchState,
  signed: boolean,
  trusted: () => Promise<TrustedKeys>,
  versionSha256: string,
): Promise<undefined> {
  if (signed && !state.signedVersionSeen)
    await updateState(ctx.paths, (s) => {
      s.signedVersionSeen = true;
    });
  // Only the lines appended since the last check when they vouch for themselves; else all of it.
  const seen = state.ledger;
  const tail = seen?.bytes ? await fetchLedgerTail(ctx, { ...seen, bytes: seen.bytes }) : undefined;
  const fromTail = tail && (await checkLedgerTail({ tail, trusted, versionSha256, now: ctx.now?.() }));
  const head =
    fromTail ??
    (await checkLedger({
      fetched: await fetchLedger(ctx),
      trusted,
      seen,
      versionSha256,
      now: ctx.now?.(),
    }));
  if (fromTail) ctx.log.debug('ledger: read only the entries appended since the last check', { to: fromTail.n });
  // A host that kept no length yet (an older launchfit) keeps it now, so its next check reads the tail.
  if (head && (head.n > (seen?.n ?? 0) || seen?.bytes === undefined))
    await updateState(ctx.paths, (s) => {
      s.ledger = head;
    });
  return undefined;
}

/** A 304: it vouches for the VERSION held, and no longer than that VERSION is valid. */
async function notModified(
  ctx: UpdateContext,
  state: LaunchState,
  current: string | undefined,
  currentVersion: string | undefined,
  refuse: (message: string) => Promise<never>,
): Promise<CheckResult> {
  const expires = state.versionExpires ? new Date(state.versionExpires) : undefined;
  if (expires && expires.getTime() < (ctx.now?.() ?? new Date()).getTime()) {
    return refuse(
      `The update server answers 304 Not Modified, but the VERSION it stands for expired on ` +
        `${expires.toISOString()}; the server is frozen or replaying. Publish again (or check the server).`,
    );
  }
  await recordCheck(
    ctx.paths,
    true,
    state.waiting
      ? `VERSION not modified; still waiting: this host's bucket ${state.waiting.bucket} is not below ROLLOUT ${state.waiting.rollout}`
      : 'VERSION not modified',
    ctx.log,
  );
  return {
    action: 'not-modified',
    version: currentVersion,
    release: current,
    message: 'VERSION not modified since the last check.',
  };
}

/**
 * ROLLOUT P (docs/fleet.md): a host whose bucket for this version is not below P keeps its release
 * and polls on. Its SEQ is not recorded (the next, higher SEQ must still be taken); the ETag is,
 * so waiting polls stay 304 until the publisher signs a new VERSION (a raised ROLLOUT).
 */
async function rolloutWait(paths: DeployPaths, info: VersionInfo, since: Validators): Promise<CheckResult | undefined> {
  if (info.rollout === undefined || info.rollout >= 100) return undefined;
  const bucket = rolloutBucket(await ensureHostId(paths), info.version);
  if (bucket < info.rollout) return undefined;
  const shown = Math.floor(bucket * 10000) / 10000;
  const message =
    `waiting: this host's bucket ${shown} is not below ROLLOUT ${info.rollout} for ` +
    `${info.version}; keeping the current release`;
  await updateState(paths, (s) => {
    s.etag = since.etag;
    s.lastModified = since.lastModified;
    s.versionExpires = info.expires?.toISOString();
    s.waiting = {
      version: info.version,
      seq: info.seq,
      rollout: info.rollout!,
      bucket: shown,
      at: new Date().toISOString(),
    };
    s.lastCheck = { at: s.waiting.at, ok: true, message };
  });
  return { action: 'waiting', version: info.version, message };
}

/** `status` shows the last check; a failure to record it (a full disk) must not hide the check's own error, so it is logged. */
async function recordCheck(paths: DeployPaths, ok: boolean, message: string, log: Logger): Promise<void> {
  await updateState(paths, (s) => {
    s.lastCheck = { at: new Date().toISOString(), ok, message };
  }).catch((error) => log.warn(`could not record the last check in the state file: ${messageOf(error)}`));
}
