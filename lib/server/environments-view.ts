// Each app of `apps:` as GET /environments and the status page's Environments section show it: per
// environment the release in its DEST's VERSION, its deploy windows now, and the source's current
// release when it waits for this environment's approvals. A DEST that cannot be read (or answers too
// slowly) is its row's error, never the page's; the view is kept for ttlMs, so DESTs on S3 or over
// ssh are not read on every page load.
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { AppConfig, EnvironmentConfig } from '../config/environments.ts';
import { openDestination, type Destination } from '../release/dest/destination.ts';
import { parseVersionFile, versionKey, type VersionInfo } from '../release/format/version-file.ts';
import { checkApprovals } from '../release/gates/approvals.ts';
import { windowVerdict } from '../release/gates/windows.ts';
import type { EnvironmentsView, EnvironmentView, WaitingRelease } from '../web/read-sources.ts';

/** A view is read again once it is this old. */
export const ENVIRONMENTS_TTL_MS = 5_000;
/** One DEST's VERSION, or its approvals, given up after this long. */
export const DEST_TIMEOUT_MS = 5_000;

export interface EnvironmentsOptions {
  apps: Map<string, AppConfig>;
  log: Logger;
  /** How long one DEST may take (default DEST_TIMEOUT_MS). */
  timeoutMs?: number;
  now?: () => Date;
}

export interface EnvironmentsSource {
  /** The view, read again when older than ttlMs; one read at a time. Never throws. */
  read(): Promise<EnvironmentsView>;
}

/** What one DEST holds now: its VERSION (undefined: none there), or why it could not be read. */
type ReleaseAt = { dest: Destination; info?: VersionInfo } | { error: string };

export function environmentsSource(opts: EnvironmentsOptions & { ttlMs?: number }): EnvironmentsSource {
  const now = opts.now ?? (() => new Date());
  let last: { view: EnvironmentsView; at: number } | undefined;
  let reading: Promise<EnvironmentsView> | undefined;
  return {
    read() {
      if (last && now().getTime() - last.at < (opts.ttlMs ?? ENVIRONMENTS_TTL_MS)) return Promise.resolve(last.view);
      reading ??= readEnvironments(opts)
        .then((view) => {
          last = { view, at: now().getTime() };
          return view;
        })
        .finally(() => (reading = undefined));
      return reading;
    },
  };
}

/** The view now, every DEST read once (an environment's source is another's DEST). Never throws. */
export async function readEnvironments(opts: EnvironmentsOptions): Promise<EnvironmentsView> {
  const at = (opts.now ?? (() => new Date()))();
  const timeoutMs = opts.timeoutMs ?? DEST_TIMEOUT_MS;
  const releases = new Map<string, Promise<ReleaseAt>>();
  const releaseAt = (to: string) => {
    let release = releases.get(to);
    if (!release) releases.set(to, (release = readRelease(to, opts.log, timeoutMs)));
    return release;
  };
  const apps = await Promise.all(
    [...opts.apps.values()].map(async (app) => ({
      app: app.name,
      environments: await Promise.all(
        [...app.environments.values()].map((env) => environmentView(app, env, { releaseAt, at, timeoutMs })),
      ),
    })),
  );
  return { read: at.toISOString(), apps };
}

interface Reading {
  releaseAt(to: string): Promise<ReleaseAt>;
  at: Date;
  timeoutMs: number;
}

async function environmentView(app: AppConfig, env: EnvironmentConfig, reading: Reading): Promise<EnvironmentView> {
  const here = await reading.releaseAt(env.to);
  const info = 'dest' in here ? here.info : undefined;
  const verdict = windowVerdict(env.windows, reading.at);
  const until = verdict.open ? verdict.closesAt : verdict.opensAt;
  const source = env.from === undefined ? undefined : app.environments.get(env.from);
  let waits: WaitingRelease | null = null;
  if ('dest' in here && env.approvals && source) {
    const atSource = await reading.releaseAt(source.to);
    waits = await waitingRelease(app, env, { ...here, from: source.name, source: atSource }, reading);
  }
  return {
    name: env.name,
    to: env.to,
    from: env.from ?? null,
    current: info ? { version: info.version, rollout: info.rollout ?? 100, seq: info.seq ?? null } : null,
    error: 'error' in here ? here.error : null,
    window: { open: verdict.open, reason: verdict.open ? null : verdict.reason, until: until?.toISOString() ?? null },
    approvals: env.approvals?.required ?? null,
    waits,
  };
}

/** The source's current release with its approvals counted at this DEST, when it is not this DEST's current one. */
async function waitingRelease(
  app: AppConfig,
  env: EnvironmentConfig,
  { dest, info, from, source }: { dest: Destination; info?: VersionInfo; from: string; source: ReleaseAt },
  reading: Reading,
): Promise<WaitingRelease | null> {
  const release = 'dest' in source ? source.info : undefined;
  const rule = env.approvals!;
  if (!release || (release.app ?? app.name) !== app.name || (info && sameRelease(info, release))) return null;
  const waiting: WaitingRelease = {
    version: release.version,
    sha256: release.sha256 ?? null,
    from,
    required: rule.required,
    approved: [],
    awaited: [],
    refused: [],
    users: rule.users ?? [],
    error: null,
  };
  if (!release.sha256)
    return { ...waiting, error: `${from}'s VERSION has no SHA256 line, which approvals are bound to.` };
  try {
    const check = await within(
      checkApprovals({
        dest,
        app: app.name,
        version: release.version,
        sha256: release.sha256,
        env: env.name,
        rule,
        // Who published it is in the source's ledger; `shipkit promote` holds approvals to that rule.
        publishers: [],
        now: reading.at,
      }),
      reading.timeoutMs,
      `the approvals at ${dest.where}`,
    );
    return { ...waiting, approved: check.valid.map((a) => a.uid), awaited: check.missing, refused: check.refused };
  } catch (error) {
    return { ...waiting, error: messageOf(error) };
  }
}

/** The same version (1.4 is 1.4.0) and, where both say, the same tarball. */
function sameRelease(a: VersionInfo, b: VersionInfo): boolean {
  return versionKey(a.version) === versionKey(b.version) && (!a.sha256 || !b.sha256 || a.sha256 === b.sha256);
}

async function readRelease(to: string, log: Logger, timeoutMs: number): Promise<ReleaseAt> {
  try {
    const dest = openDestination(to, log);
    const bytes = await within(dest.read('VERSION'), timeoutMs, `VERSION at ${to}`);
    return { dest, info: bytes ? parseVersionFile(bytes.toString('utf8')) : undefined };
  } catch (error) {
    log.debug('an environment DEST could not be read', { to, error: messageOf(error) });
    return { error: messageOf(error) };
  }
}

/** `work`, or an error naming `what` when it takes longer than `ms`. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer for ${what} within ${ms / 1000} s`)), ms);
    (timer as { unref?: () => void }).unref?.();
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
