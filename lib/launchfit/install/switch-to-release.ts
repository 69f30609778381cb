// An update's last phase: the release moved into releases/, the before_symlink hook, the app
// stopped, `current` swapped, started on probation, and going back when it does not stay up.
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError, VerificationError, WorkError, messageOf } from '../../core/errors.ts';
import { pathExists } from '../../core/fs.ts';
import { readReleaseAppDefaults } from '../deploy-folder/config.ts';
import { runBeforeSymlinkHook } from './hooks.ts';
import { type TrustedKeys } from '../trust/pgp.ts';
import { readState, updateState, writeState, type LaunchState, type StartFailure } from '../deploy-folder/state.ts';
import { pruneReleases, readCurrent, removeRelease, swapCurrentSymlink } from '../deploy-folder/current-link.ts';
import { compareVersions, type VersionInfo } from '../../release/format/version-file.ts';
import { NO_APP, releaseNameOf, type CheckResult, type UpdateContext } from './context.ts';
import { obtainRelease, type VersionSigner } from './delta.ts';
import { folderTree, keptRelease, manifestTreeDigest } from './reuse-kept-release.ts';
import { keepManifest } from './kept-manifest.ts';
import { writeBook, type DigestBook } from '../deploy-folder/file-digests.ts';
import { takeStaged, dropStaged, stagingPolicy } from './staging.ts';
import type { Unpacked } from './fetch-release.ts';

/**
 * Download, verify and unpack a release (or take the one staged for it) into releases/NAME and
 * run its hook; or, when releases/NAME still holds it unchanged (reuse-kept-release.ts), take it as it is.
 * Returns NAME.
 */
export async function installRelease(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  signedBy?: VersionSigner,
): Promise<string> {
  const { paths, log } = ctx;
  const name = releaseNameOf(info.file);
  if (name !== (await readCurrent(paths)) && (await keptRelease(ctx, info, trusted))) {
    await reuseKeptRelease(ctx, name, info);
    return name;
  }
  const staged = await takeStaged(ctx, info, trusted);
  if (staged) log.info('installing the release staged before', { release: name });
  const unpacked =
    staged ??
    (await obtainRelease(
      ctx,
      info,
      trusted,
      signedBy,
      path.join(paths.tmp, `extract-${randomBytes(4).toString('hex')}`),
    ));
  try {
    const { target, hookRan } = await placeRelease(ctx, name, info, unpacked);
    const tree = await keepReleaseDigests(ctx, name, target, unpacked, hookRan);
    await recordInstall(ctx, name, info, unpacked, tree);
    // Anything else staged is for a VERSION that is no longer the one offered.
    await dropStaged(paths);
    return name;
  } finally {
    await rm(unpacked.work, { recursive: true, force: true });
  }
}

/** releases/NAME still holds the release unchanged: it is installed as it is, nothing downloaded. */
async function reuseKeptRelease(ctx: UpdateContext, name: string, info: VersionInfo): Promise<void> {
  const { paths, log } = ctx;
  log.info('switching to the release kept in releases/ (unchanged since its install); nothing downloaded', {
    release: name,
    way: 'reuse',
    bytes: 0,
  });
  await updateState(paths, (s) => {
    s.lastInstall = { release: name, version: info.version, way: 'reuse', bytes: 0, at: new Date().toISOString() };
  });
  await dropStaged(paths);
}

/**
 * The unpacked release, its launchify.yml checked, moved into releases/NAME and its before_symlink
 * hook run (the folder removed again when the hook fails). Says whether a hook ran.
 */
async function placeRelease(
  ctx: UpdateContext,
  name: string,
  info: VersionInfo,
  unpacked: Unpacked,
): Promise<{ target: string; hookRan: boolean }> {
  const { paths } = ctx;
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
    return { target, hookRan: await runBeforeSymlinkHook(ctx, target, info) };
  } catch (error) {
    await removeRelease(paths, name);
    throw error;
  }
}

/**
 * The release's tree digest, and (with updates.delta on) its manifest and digest book kept for the
 * next patch. Built from the signed manifest and checked against it, its digest is known, unless a
 * hook may have changed the folder since. The manifest kept is the published one when there is
 * one, else the folder's as unpacked.
 */
async function keepReleaseDigests(
  ctx: UpdateContext,
  name: string,
  target: string,
  unpacked: Unpacked,
  hookRan: boolean,
): Promise<string> {
  const { paths, log } = ctx;
  const walkedBook: DigestBook | undefined = ctx.config.updates.delta ? new Map() : undefined;
  const walked = unpacked.manifest && !hookRan ? undefined : await folderTree(target, walkedBook);
  const tree = walked?.digest ?? manifestTreeDigest(unpacked.manifest!);
  const keep = unpacked.manifest ?? walked?.entries;
  if (keep && ctx.config.updates.delta) {
    await keepManifest(paths, name, keep, log);
    await writeBook(paths, name, (walked ? walkedBook : unpacked.book) ?? new Map()).catch((error) =>
      log.warn(`could not keep the digests of releases/${name} (${messageOf(error)}); a later patch reads its files`),
    );
  }
  return tree;
}

/** releases/NAME recorded as installed in state.json (what `status` and a rollback read), and logged. */
async function recordInstall(
  ctx: UpdateContext,
  name: string,
  info: VersionInfo,
  unpacked: Unpacked,
  tree: string,
): Promise<void> {
  const at = new Date().toISOString();
  const way = unpacked.way ?? 'full';
  await updateState(ctx.paths, (s) => {
    s.installed[name] = {
      version: info.version,
      file: info.file,
      sha256: unpacked.sha256,
      installedAt: at,
      signer: unpacked.signer,
      signingKey: unpacked.signingKey,
      tree,
      policy: stagingPolicy(ctx.config),
    };
    s.lastInstall = { release: name, version: info.version, way, bytes: unpacked.bytes, at, from: unpacked.from };
  });
  ctx.log.info(way === 'full' ? 'installed from the full tarball' : `installed, rebuilt from ${unpacked.from}`, {
    release: name,
    way,
    bytes: unpacked.bytes,
  });
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
  const held = state.previous && state.previous !== release ? state.installed[state.previous] : undefined;
  // Never back to a version marked bad (the one a rollback left): this one is started again instead.
  const bad = held && state.bad.some((v) => compareVersions(v, held.version) === 0);
  const to = held && !bad ? state.previous : undefined;
  const what = `release ${release} ${failure.reason}${when ? ` ${when}` : ''}`;
  if (!to || !(await pathExists(path.join(paths.releases, to)))) {
    const none = bad
      ? `the previous release ${state.previous} is marked bad`
      : 'there is no previous release to go back to';
    log.error(`${what}; ${none}, so it is started again`, {
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
