// One update check, in the contract's order: VERSION (conditional) → VERSION.sig → download →
// verify → extract to a temp folder → move to releases/ → before_symlink hook → stop the app →
// swap `current` → start → health check (roll back on failure) → prune. Everything slow
// happens before the running app is touched; every failure before the stop leaves the app
// and `current` as they were.
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  ConfigError,
  RemoteError,
  ValidationError,
  VerificationError,
  WorkError,
  messageOf,
} from '../../core/errors.ts';
import { atomicWriteFile, ensureDir, pathExists } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { nameProblem } from '../../core/names.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import { readReleaseAppDefaults } from '../deploy-folder/config.ts';
import { DEFAULT_EXTRACT_LIMITS, extractRelease } from './extract.ts';
import { checkReleaseBinding, hostBindingOf } from '../trust/binding.ts';
import { runBeforeSymlinkHook } from './hooks.ts';
import { downloadToFile, fetchSmall, type FetchFn, type MinRate } from '../../http/fetch.ts';
import type { Timeouts } from '../../http/get.ts';
import { verifyDetachedSignature, type TrustedKeys } from '../trust/pgp.ts';
import { checkProvenance } from '../trust/provenance.ts';
import { loadReleaseKeys } from '../trust/release-keys.ts';
import { ensureHostId } from '../deploy-folder/host-id.ts';
import { judgeSeq } from '../trust/seq.ts';
import {
  readState,
  updateState,
  writeState,
  type DeployPaths,
  type LaunchState,
  type StartFailure,
} from '../deploy-folder/state.ts';
import { pruneReleases, readCurrent, removeRelease, swapCurrentSymlink } from '../deploy-folder/switch.ts';
import { rolloutBucket } from '../../release/rollout-bucket.ts';
import {
  MAX_VERSION_FILE_BYTES,
  compareVersions,
  parseVersionFile,
  type VersionInfo,
} from '../../release/version-file.ts';

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

function timeoutsOf(config: LaunchConfig): Timeouts {
  const u = config.updates;
  return {
    connectMs: u.connectTimeoutSec * 1000,
    idleMs: u.idleTimeoutSec * 1000,
    totalMs: u.downloadTimeoutSec * 1000,
  };
}

/** VERSION, signatures and keys are small: a short total deadline, so a drip cannot hold a check. */
function metadataTimeoutsOf(config: LaunchConfig): Timeouts {
  return { ...timeoutsOf(config), totalMs: config.updates.metadataTimeoutSec * 1000 };
}

function minRateOf(config: LaunchConfig): MinRate | undefined {
  const u = config.updates;
  return u.minRate > 0 ? { bytesPerSec: u.minRate, windowMs: u.minRateWindowSec * 1000 } : undefined;
}

function serverOf(config: LaunchConfig): string {
  if (!config.updates.server)
    throw new ConfigError(
      `${config.file}: updates.server is not set; give the update server's URL (launchfit deploy URL).`,
    );
  return config.updates.server;
}

/** The keys a release may be signed with (keyfile or pinned primary, with the server's keys.asc) and the revocations seen. */
export async function loadTrustedKeys(ctx: UpdateContext): Promise<TrustedKeys> {
  return loadReleaseKeys({
    config: ctx.config,
    metaDir: ctx.paths.meta,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
    now: ctx.now?.(),
  });
}

/** What makes a VERSION poll conditional: the last handled VERSION's ETag and Last-Modified. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/**
 * Fetch VERSION (and VERSION.sig) and check it: signature, EXPIRES. Null when unchanged (304).
 * VERSION.sig is required unless updates.allow_unsigned_version; even then, once a signed VERSION
 * has been seen (`signedBefore`), an unsigned one is refused: stripping the signature must not be
 * a way around EXPIRES.
 */
export async function fetchVersionInfo(
  ctx: UpdateContext,
  keys: TrustedKeys | (() => Promise<TrustedKeys>),
  since: Validators | undefined,
  signedBefore = false,
): Promise<({ info: VersionInfo; signed: boolean } & Validators) | null> {
  const server = serverOf(ctx.config);
  const timeouts = metadataTimeoutsOf(ctx.config);
  const res = await fetchSmall(new URL('VERSION', server).href, {
    maxBytes: MAX_VERSION_FILE_BYTES,
    etag: since?.etag,
    lastModified: since?.lastModified,
    timeouts,
    fetchImpl: ctx.fetchImpl,
  });
  if (res.status === 'not-modified') {
    if (!since?.etag && !since?.lastModified)
      throw new RemoteError(
        `${server}VERSION answered 304 Not Modified to a request that was not conditional; the update server is misconfigured or hostile. Nothing was installed.`,
      );
    return null;
  }
  if (res.status === 'missing')
    throw new VerificationError(`${server}VERSION does not exist; is updates.server right?`);
  const now = ctx.now?.() ?? new Date();
  const sig = await fetchSmall(new URL('VERSION.sig', server).href, {
    maxBytes: MAX_SIGNATURE_BYTES,
    timeouts,
    fetchImpl: ctx.fetchImpl,
  });
  if (sig.status === 'ok') {
    const trusted = typeof keys === 'function' ? await keys() : keys;
    await verifyDetachedSignature({ data: res.body, signature: sig.body, trusted, what: 'VERSION', now });
  } else if (signedBefore) {
    throw new VerificationError(
      `${server}VERSION.sig is missing, but this host has seen a signed VERSION before; refusing an unsigned one. Publish with \`release publish\` (it signs VERSION).`,
    );
  } else if (!ctx.config.updates.allowUnsignedVersion) {
    throw new VerificationError(
      `${server}VERSION.sig is missing; an unsigned VERSION is refused (publish with \`release publish\`, which signs it, or set updates.allow_unsigned_version: true, which is weaker).`,
    );
  }
  let info: VersionInfo;
  try {
    info = parseVersionFile(res.body.toString('utf8'));
  } catch (error) {
    throw new VerificationError(`The update server's VERSION is invalid: ${messageOf(error)}`, { cause: error });
  }
  if (info.expires && info.expires.getTime() < now.getTime()) {
    throw new VerificationError(
      `VERSION expired on ${info.expires.toISOString()}; the update server is stale or replaying old metadata. Publish again.`,
    );
  }
  return { info, etag: res.etag, lastModified: res.lastModified, signed: sig.status === 'ok' };
}

/** A release downloaded, verified and unpacked under tmp/ (`work`), its folder `root` inside. */
interface Unpacked {
  work: string;
  root: string;
  sha256: string;
  signer: string;
}

/** Download and verify the release VERSION names and unpack it into `work` (under tmp/). */
async function fetchAndUnpack(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  work: string,
): Promise<Unpacked> {
  const { paths, config, log } = ctx;
  const server = serverOf(config);
  const now = ctx.now?.() ?? new Date();
  await ensureDir(paths.downloads, 0o700);
  await ensureDir(paths.tmp, 0o700);
  await ensureDir(paths.releases);
  const tarball = path.join(paths.downloads, info.file);
  const url = new URL(info.file, server).href;
  log.info('downloading release', { url, size: info.size });
  const sigRes = await fetchSmall(`${url}.sig`, {
    maxBytes: MAX_SIGNATURE_BYTES,
    timeouts: metadataTimeoutsOf(config),
    fetchImpl: ctx.fetchImpl,
  });
  if (sigRes.status !== 'ok')
    throw new VerificationError(`${url}.sig is missing; unsigned releases are never installed.`);
  const got = await downloadToFile(url, tarball, {
    maxBytes: config.updates.maxSize,
    expectedSize: info.size,
    timeouts: timeoutsOf(config),
    minRate: minRateOf(config),
    fetchImpl: ctx.fetchImpl,
  });
  try {
    if (info.size !== undefined && got.size !== info.size)
      throw new VerificationError(`${info.file} is ${got.size} bytes but VERSION says SIZE ${info.size}; refusing it.`);
    if (info.sha256 && got.sha256 !== info.sha256)
      throw new VerificationError(
        `${info.file} does not match SHA256 in VERSION; it was changed or damaged. Refusing it.`,
      );
    const verified = await verifyDetachedSignature({
      file: tarball,
      signature: sigRes.body,
      trusted,
      what: info.file,
      now,
    });
    log.info('signature verified', { file: info.file, key: verified.signingFingerprint });
    await checkProvenance({
      updates: config.updates,
      url,
      file: info.file,
      sha256: got.sha256,
      trusted,
      timeouts: metadataTimeoutsOf(config),
      fetchImpl: ctx.fetchImpl,
      log,
      now,
    });
    const root = await extractRelease(tarball, work, {
      ...DEFAULT_EXTRACT_LIMITS,
      maxUnpackedBytes: config.updates.maxUnpackedSize,
      maxRatio: config.updates.maxRatio,
    });
    return { work, root, sha256: got.sha256, signer: verified.primaryFingerprint };
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(tarball, { force: true });
  }
}

// A staged release (the fleet master's prepare, before this host's wave): tmp/staged-NAME, with
// tmp/staged-NAME.json saying what it is. Nothing of it runs and nothing is recorded: a prepare
// repeated for the same release keeps it, the check that switches takes it over instead of
// downloading (takeStaged), staging another release or installing one drops it, and a restart
// clears tmp/.
const STAGED_PREFIX = 'staged-';
const stagedDir = (paths: DeployPaths, name: string) => path.join(paths.tmp, `${STAGED_PREFIX}${name}`);
interface StagedRecord {
  file: string;
  version: string;
  sha256: string;
  signer: string;
  root: string;
  /** The config it was verified under (stagingPolicy): under another, it is verified again. */
  policy?: string;
}

/** What verifying and unpacking a release depends on besides the keys: provenance and limits. */
function stagingPolicy(config: LaunchConfig): string {
  const u = config.updates;
  return JSON.stringify([
    u.provenance,
    u.provenanceSource ?? null,
    u.provenanceBuilder ?? null,
    u.maxSize,
    u.maxUnpackedSize,
    u.maxRatio,
  ]);
}

/**
 * The staged release for exactly this VERSION (file, version, SHA256), verified under the same
 * config and signed by a key that is still trusted and not revoked (a rotation or revocation
 * since the prepare discards it: the release is downloaded and verified again), or undefined.
 */
async function findStaged(ctx: UpdateContext, info: VersionInfo, trusted: TrustedKeys): Promise<Unpacked | undefined> {
  if (!info.sha256) return undefined;
  const work = stagedDir(ctx.paths, releaseNameOf(info.file));
  let record: StagedRecord;
  try {
    record = JSON.parse(await readFile(`${work}.json`, 'utf8')) as StagedRecord;
  } catch {
    return undefined;
  }
  if (record.file !== info.file || record.sha256 !== info.sha256 || compareVersions(record.version, info.version) !== 0)
    return undefined;
  if (record.policy !== stagingPolicy(ctx.config) || !signerStillTrusted(trusted, record.signer)) return undefined;
  const root = path.join(work, record.root);
  if (!(await pathExists(root))) return undefined;
  return { work, root, sha256: record.sha256, signer: record.signer };
}

/** The staged release for this VERSION (findStaged), taken over: its record goes, its folder is the caller's. */
async function takeStaged(ctx: UpdateContext, info: VersionInfo, trusted: TrustedKeys): Promise<Unpacked | undefined> {
  const staged = await findStaged(ctx, info, trusted);
  if (staged) await rm(`${staged.work}.json`, { force: true });
  return staged;
}

/** Remove every staged release but `keep`'s (its folder and record). */
async function dropStaged(paths: DeployPaths, keep?: string): Promise<void> {
  const kept = keep === undefined ? [] : [`${STAGED_PREFIX}${keep}`, `${STAGED_PREFIX}${keep}.json`];
  const names = await readdir(paths.tmp).catch(() => [] as string[]);
  for (const name of names)
    if (name.startsWith(STAGED_PREFIX) && !kept.includes(name))
      await rm(path.join(paths.tmp, name), { recursive: true, force: true });
}

function signerStillTrusted(trusted: TrustedKeys, signer: string): boolean {
  const revoked = Object.entries(trusted.revoked ?? {}).some(
    ([fingerprint, r]) => fingerprint === signer || r.primary.toLowerCase() === signer,
  );
  return !revoked && trusted.keys.some(({ key }) => key.getFingerprint().toLowerCase() === signer);
}

/**
 * Download, verify and unpack the release into tmp/staged-NAME, ready for installRelease; one
 * staged already for this VERSION is kept as it is. Any other staged release is dropped. Returns NAME.
 */
export async function stageRelease(ctx: UpdateContext, info: VersionInfo, trusted: TrustedKeys): Promise<string> {
  const name = releaseNameOf(info.file);
  const dir = stagedDir(ctx.paths, name);
  await dropStaged(ctx.paths, name);
  if (await findStaged(ctx, info, trusted)) {
    ctx.log.info('release already staged and verified for this VERSION; not downloaded again', { release: name });
    return name;
  }
  await rm(`${dir}.json`, { force: true });
  await rm(dir, { recursive: true, force: true });
  const unpacked = await fetchAndUnpack(ctx, info, trusted, dir);
  const record: StagedRecord = {
    file: info.file,
    version: info.version,
    sha256: unpacked.sha256,
    signer: unpacked.signer,
    root: path.relative(dir, unpacked.root),
    policy: stagingPolicy(ctx.config),
  };
  await atomicWriteFile(`${dir}.json`, JSON.stringify(record), { mode: 0o600 });
  ctx.log.info('release staged: downloaded, verified and unpacked; it is installed when this host is told to update', {
    release: name,
  });
  return name;
}

/**
 * Download, verify and unpack a release (or take the one staged for it) into releases/NAME and
 * run its hook. Returns NAME.
 */
export async function installRelease(ctx: UpdateContext, info: VersionInfo, trusted: TrustedKeys): Promise<string> {
  const { paths, log } = ctx;
  const name = releaseNameOf(info.file);
  const staged = await takeStaged(ctx, info, trusted);
  if (staged) log.info('installing the release staged before', { release: name });
  const unpacked =
    staged ??
    (await fetchAndUnpack(ctx, info, trusted, path.join(paths.tmp, `extract-${randomBytes(4).toString('hex')}`)));
  try {
    try {
      await readReleaseAppDefaults(unpacked.root);
    } catch (error) {
      throw new VerificationError(`The release's own launchify.yml is invalid: ${messageOf(error)}`, { cause: error });
    }
    const target = path.join(paths.releases, name);
    if (name === (await readCurrent(paths)))
      throw new VerificationError(
        `VERSION names ${info.file}, the release that is already current, with another version; refusing it.`,
      );
    await removeRelease(paths, name);
    await rename(unpacked.root, target);
    try {
      await runBeforeSymlinkHook(ctx, target, info);
    } catch (error) {
      await removeRelease(paths, name);
      throw error;
    }
    await updateState(paths, (s) => {
      s.installed[name] = {
        version: info.version,
        file: info.file,
        sha256: unpacked.sha256,
        installedAt: new Date().toISOString(),
        signer: unpacked.signer,
      };
    });
    // Anything else staged is for a VERSION that is no longer the one offered.
    await dropStaged(paths);
    return name;
  } finally {
    await rm(unpacked.work, { recursive: true, force: true });
  }
}

/**
 * Switch to releases/NAME and roll back if it is not healthy within healthy_after. Without
 * app.listen: stop the app, swap `current`, start it. With app.listen: swap `current`, start the
 * new app beside the old one on the same sockets, and stop the old one only once the new one is
 * healthy, so no connection is refused. A crash in between is finished by runLauncher's first start.
 */
export async function activateRelease(ctx: UpdateContext, name: string, version: string): Promise<CheckResult> {
  const { paths, log } = ctx;
  const app = ctx.app ?? NO_APP;
  const from = await readCurrent(paths);
  await updateState(paths, (s) => {
    s.pending = { from, to: name, at: new Date().toISOString() };
  });
  const t0 = Date.now();
  let healthy: boolean;
  if (app.overlap && from) {
    await swapCurrentSymlink(paths, name);
    log.info('switched current; starting the new app beside the old one', { release: name, from });
    healthy = await app.overlap.startNext();
    if (healthy) {
      log.info('the new app is healthy; stopping the old one', { release: name, healthyMs: Date.now() - t0 });
      const promoted = app.overlap.promoteNext();
      ctx.verdict?.(installedResult(name, version, from));
      await promoted;
    } else {
      await app.overlap.dropNext();
    }
  } else {
    await app.stop();
    const stoppedMs = Date.now() - t0;
    await swapCurrentSymlink(paths, name);
    log.info('switched current', { release: name, from, stoppedMs, switchedMs: Date.now() - t0 });
    healthy = await app.start(true);
  }
  const state = await readState(paths);
  state.pending = undefined;
  if (healthy) {
    if (from && from !== name) state.previous = from;
    if (!state.highest || compareVersions(version, state.highest) > 0) state.highest = version;
    await pruneReleases(paths, state, Math.max(ctx.config.updates.keep, 2));
    await writeState(paths, state);
    return installedResult(name, version, from);
  }
  const failure = app.lastFailure?.() ?? {
    reason: `did not stay up for ${ctx.config.app.healthyAfterSec} s`,
    probes: [],
    output: [],
  };
  log.error(`the new release ${name} ${failure.reason}; rolling back`, {
    release: name,
    probes: failure.probes,
    output: failure.output,
  });
  // Without app.listen the old app was stopped for the switch; with it, the old app kept serving,
  // unless it had already exited or given up before the update: either way it starts again
  // (a no-op for an app that runs).
  await abandonRelease(ctx, state, { release: name, version, failure }, from);
  return {
    action: 'unhealthy',
    version,
    release: from,
    message: `Release ${name} ${failure.reason}; marked bad and went back to ${from ?? 'nothing'}.`,
  };
}

function installedResult(name: string, version: string, from: string | undefined): CheckResult {
  return {
    action: 'installed',
    version,
    release: name,
    previous: from,
    message: `Installed ${name}${from ? ` (was ${from})` : ''}.`,
  };
}

/**
 * The serving release failed app.health.failures probes in a row: a crash. It is restarted on
 * probation; if it is not healthy again, launchfit goes back as a failed update does (docs/launchfit.md):
 * `current` to the previous release, this version marked bad and its folder removed, the
 * previous release started. Once: the release gone back to has no previous one, so if it fails
 * too it is only restarted. Nothing happens if an update or rollback moved `current` meanwhile.
 */
export async function restartUnhealthy(ctx: UpdateContext, release: string | undefined): Promise<void> {
  const { log } = ctx;
  const app = ctx.app ?? NO_APP;
  if (!release || release !== (await readCurrent(ctx.paths))) return;
  await app.stop();
  if (await app.start(true)) {
    log.info('the app is healthy again after its restart', { release });
    return;
  }
  const failure = app.lastFailure?.() ?? {
    reason: `did not stay up for ${ctx.config.app.healthyAfterSec} s`,
    probes: [],
    output: [],
  };
  await goBackFrom(ctx, release, failure, 'after a restart for failed health checks');
}

/**
 * The serving release, newly switched to, kept exiting (app/runner.ts CRASHES_TO_GO_BACK exits
 * before a run lasted app.stable_after): it is stopped and launchfit goes back as restartUnhealthy
 * does. Nothing happens if an update or rollback moved `current` meanwhile.
 */
export async function goBackFromCrashLoop(
  ctx: UpdateContext,
  release: string | undefined,
  failure: StartFailure,
): Promise<void> {
  if (!release || release !== (await readCurrent(ctx.paths))) return;
  await (ctx.app ?? NO_APP).stop();
  await goBackFrom(ctx, release, failure, '');
}

/** `release` failed after its switch: back to the previous release, or, without one, started again. */
async function goBackFrom(ctx: UpdateContext, release: string, failure: StartFailure, when: string): Promise<void> {
  const { paths, log } = ctx;
  const state = await readState(paths);
  const to =
    state.previous && state.previous !== release && state.installed[state.previous] ? state.previous : undefined;
  const what = `release ${release} ${failure.reason}${when ? ` ${when}` : ''}`;
  if (!to || !(await pathExists(path.join(paths.releases, to)))) {
    log.error(`${what}; there is no previous release to go back to, so it is started again`, {
      release,
      probes: failure.probes,
      output: failure.output,
    });
    await (ctx.app ?? NO_APP).start(false);
    return;
  }
  const version = state.installed[release]?.version ?? '';
  log.error(`${what}; marking it bad and going back to ${to}`, {
    release,
    probes: failure.probes,
    output: failure.output,
  });
  state.previous = undefined;
  await abandonRelease(ctx, state, { release, version, failure }, to);
}

/**
 * A release that failed where it ran: its version marked bad, `current` back to `to` (when there
 * is one) and the app started there, its record and its folder removed, the failure kept for
 * `status`. The failed install and the failed restart after the switch both end this way.
 */
async function abandonRelease(
  ctx: UpdateContext,
  state: LaunchState,
  failed: { release: string; version: string; failure: StartFailure },
  to: string | undefined,
): Promise<void> {
  const { release, version, failure } = failed;
  if (version && !state.bad.some((v) => compareVersions(v, version) === 0)) state.bad.push(version);
  if (to) await swapCurrentSymlink(ctx.paths, to);
  delete state.installed[release];
  state.lastFailure = { release, version, at: new Date().toISOString(), ...failure };
  await writeState(ctx.paths, state);
  if (to) await (ctx.app ?? NO_APP).start(false);
  await removeRelease(ctx.paths, release);
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
  const currentVersion = current ? state.installed[current]?.version : undefined;
  const refuse = async (message: string, cause?: unknown): Promise<never> => {
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
  if (!fetched) return notModified(ctx, state, current, currentVersion, refuse);
  const { info, etag, lastModified, signed } = fetched;
  let binding;
  try {
    binding = checkReleaseBinding(info, hostBindingOf(ctx.config, state, current));
  } catch (error) {
    return refuse(messageOf(error), error);
  }
  const seq = judgeSeq(state, info, signed);
  if (!seq.ok) return refuse(seq.message);
  if (signed && !state.signedVersionSeen)
    await updateState(paths, (s) => {
      s.signedVersionSeen = true;
    });
  const done = async (result: CheckResult) => {
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
  };
  if (currentVersion !== undefined && compareVersions(info.version, currentVersion) === 0) {
    return done({
      action: 'up-to-date',
      version: info.version,
      release: current,
      message: `${current} is up to date.`,
    });
  }
  // Versions are numbers (1.1.0 is 1.1), so `bad` is searched with compareVersions, not by string.
  if (state.bad.some((v) => compareVersions(v, info.version) === 0)) {
    // The publisher sending hosts back to it (a newer SEQ, a lower version) is told how to override.
    const sentBack =
      seq.downgradeAllowed && currentVersion !== undefined && compareVersions(info.version, currentVersion) < 0;
    const message = sentBack
      ? `The publisher's VERSION (SEQ ${info.seq}) goes back to ${info.version}, which this host marked bad (it failed or was rolled back); staying on ${current}. To take it anyway: \`launchfit rollback --to ${info.version} --force\`.`
      : `Version ${info.version} is marked bad (it failed or was rolled back); waiting for a newer one.`;
    log.warn(message);
    return done({ action: 'skipped-bad', version: info.version, release: current, message });
  }
  if (seq.downgradeAllowed && state.highest && compareVersions(info.version, state.highest) < 0) {
    log.warn(
      `VERSION with the newer SEQ ${info.seq} names ${info.version}, lower than ${state.highest}: the publisher rolled back; going back`,
    );
  } else if (state.highest && compareVersions(info.version, state.highest) < 0) {
    return refuse(
      `VERSION offers ${info.version}, lower than ${state.highest} already installed; refusing the downgrade (use \`launchfit rollback\` to go back on purpose).`,
    );
  }
  const waiting = await rolloutWait(paths, info, { etag, lastModified });
  if (waiting) return waiting;
  let name: string;
  try {
    if (stage)
      return {
        action: 'staged',
        version: info.version,
        release: await stageRelease(ctx, info, await trusted()),
        message: `Staged ${info.file}.`,
      };
    name = await installRelease(ctx, info, await trusted());
  } catch (error) {
    return refuse(messageOf(error), error);
  }
  await updateState(paths, (s) => {
    s.binding = binding;
  });
  return done(await activateRelease(ctx, name, info.version));
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
      `The update server answers 304 Not Modified, but the VERSION it stands for expired on ${expires.toISOString()}; the server is frozen or replaying. Publish again (or check the server).`,
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
  const message = `waiting: this host's bucket ${shown} is not below ROLLOUT ${info.rollout} for ${info.version}; keeping the current release`;
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

/**
 * Go back to the previous release (or the installed one with `version`); the one left is marked
 * bad, and the one gone back to is not (the operator chose it, even if it had failed before).
 */
export async function rollbackRelease(
  ctx: UpdateContext,
  { version }: { version?: string } = {},
): Promise<CheckResult> {
  const { paths } = ctx;
  const app = ctx.app ?? NO_APP;
  const state = await readState(paths);
  const current = await readCurrent(paths);
  let target: string | undefined;
  if (version) {
    target = Object.entries(state.installed).find(
      ([n, r]) => compareVersions(r.version, version) === 0 && n !== current,
    )?.[0];
    if (!target)
      throw new ValidationError(
        `Version ${version} is not installed here (or is current); see \`launchfit status\` for the installed releases.`,
      );
  } else {
    target = state.previous && state.previous !== current ? state.previous : undefined;
    if (!target) throw new WorkError('There is no previous release to roll back to.');
  }
  if (!(await pathExists(path.join(paths.releases, target))))
    throw new WorkError(`releases/${target} is gone; cannot roll back to it.`);
  const t0 = Date.now();
  await app.stop();
  await swapCurrentSymlink(paths, target);
  await updateState(paths, (s) => {
    const left = current ? s.installed[current]?.version : undefined;
    const chosen = s.installed[target]?.version;
    if (chosen !== undefined) s.bad = s.bad.filter((v) => compareVersions(v, chosen) !== 0);
    if (left && !s.bad.includes(left)) s.bad.push(left);
    s.previous = current;
    s.pending = undefined;
  });
  const targetVersion = state.installed[target]?.version;
  const done = `Rolled back to ${target}${current ? ` from ${current} (now marked bad)` : ''}`;
  if (!ctx.app)
    return {
      action: 'rolled-back',
      version: targetVersion,
      release: target,
      previous: current,
      message: `${done}; the app starts there with \`launchfit run\`.`,
    };
  // As an update does: the command returns once the app gone back to is up again (its health
  // check answered with a 2xx, or without app.health it stayed up for healthy_after), not the
  // moment it was started. The app's own config (the release's launchify.yml) decides which.
  const healthy = await app.start(true);
  const upAfterMs = Date.now() - t0;
  if (!healthy) {
    const failure = app.lastFailure?.() ?? {
      reason: `did not stay up for ${ctx.config.app.healthyAfterSec} s`,
      probes: [],
      output: [],
    };
    await updateState(paths, (s) => {
      s.lastFailure = { release: target, version: targetVersion ?? '', at: new Date().toISOString(), ...failure };
    });
    ctx.log.error(`${done}, but it ${failure.reason}`, {
      release: target,
      probes: failure.probes,
      output: failure.output,
    });
    throw new WorkError(
      `${done}, but it ${failure.reason}; \`launchfit status\` shows its last output. Roll back --to another version, or publish a fix.`,
    );
  }
  ctx.log.info('rolled back; the app is up again', { release: target, from: current, upAfterMs });
  return {
    action: 'rolled-back',
    version: targetVersion,
    release: target,
    previous: current,
    upAfterMs,
    message: `${done}; the app was up again ${(upAfterMs / 1000).toFixed(1)} s after the old one was told to stop.`,
  };
}
