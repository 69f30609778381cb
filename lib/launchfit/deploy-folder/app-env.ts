// Who the app runs as and what it is told. The app must not be able to steer its host: with
// `app.user` it runs as another Unix user, who cannot reach the control socket (the socket's
// folder is the deploy folder owner's, mode 0700), and its environment does not name the
// deploy folder (no LAUNCHFIT_DIR). launchfit still recognises a process it started, after a
// crash, by a mark derived from the deploy folder's path that does not reveal the path.
import { createHash } from 'node:crypto';
import { ConfigError } from '../../core/errors.ts';
import { findUser } from '../../core/unix-user.ts';

/** The Unix account `app.user` names, as the app is started with it. */
export interface AppAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The variable that marks launchfit's app processes (its value: processMarkOf(dir)). */
export const MARK_VARIABLE = 'LAUNCHFIT_MARK';

/** Variables of launchfit's own environment that the app does not inherit. */
const WITHHELD = new Set(['LAUNCHFIT_DIR']);

/** A stable mark of the deploy folder `dir` (a hash: the app learns nothing from it). */
export function processMarkOf(dir: string): string {
  return createHash('sha256').update(`launchfit app of ${dir}`).digest('hex').slice(0, 32);
}

/**
 * Whether a process environment (the NUL-separated entries of /proc/PID/environ) is that of an
 * app this deploy folder's launchfit started: its mark, or LAUNCHFIT_DIR=dir for an app started
 * by a launchfit from before the mark.
 */
export function isAppOf(environ: string[], dir: string): boolean {
  return environ.includes(`${MARK_VARIABLE}=${processMarkOf(dir)}`) || environ.includes(`LAUNCHFIT_DIR=${dir}`);
}

export interface AppEnvOptions {
  /** launchfit's own environment. */
  inherited: NodeJS.ProcessEnv;
  /** app.env from launchify.yml; wins over what is inherited. */
  env: Record<string, string>;
  /** Set by launchfit last (LISTEN_FDS, …). */
  extra?: Record<string, string | undefined>;
  dir: string;
  account?: AppAccount;
  launchfitPid?: number;
  /** More of launchfit's variables the app does not inherit: its own secrets (secretVariables). */
  withheld?: string[];
}

/**
 * The variables that hold launchfit's own secrets: the `env:NAME` sources of control.secret and
 * updates.report_secret. The app never inherits them (app.env may still set one on purpose).
 */
export function secretVariables(sources: Array<string | undefined>): string[] {
  return sources.flatMap((s) => (s?.startsWith('env:') ? [s.slice(4)] : []));
}

/** The app's environment: launchfit's less LAUNCHFIT_DIR and launchfit's secrets; with app.user, that user's HOME, USER, LOGNAME. */
export function appEnvironment({
  inherited,
  env,
  extra = {},
  dir,
  account,
  launchfitPid = process.pid,
  withheld = [],
}: AppEnvOptions): Record<string, string> {
  const base: Record<string, string> = {};
  const skip = new Set([...WITHHELD, ...withheld]);
  for (const [key, value] of Object.entries(inherited)) if (value !== undefined && !skip.has(key)) base[key] = value;
  const who: Record<string, string> = account ? { HOME: account.home, USER: account.name, LOGNAME: account.name } : {};
  const last: Record<string, string> = {};
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) last[key] = value;
  return { ...base, ...who, ...env, ...last, [MARK_VARIABLE]: processMarkOf(dir), LAUNCHFIT_PID: String(launchfitPid) };
}

/** The uid/gid spawn options for `account` (none without app.user). */
export function spawnIdentity(account: AppAccount | undefined): { uid?: number; gid?: number } {
  return account ? { uid: account.uid, gid: account.gid } : {};
}

/** The account `app.user` names; a ConfigError naming `where` when the machine has none. */
export async function resolveAppUser(name: string, where: string): Promise<AppAccount> {
  const account = await findUser(name);
  if (!account)
    throw new ConfigError(
      `${where}: user ${name} does not exist on this machine; create it (useradd --system ${name}) or remove app.user.`,
    );
  return { name: account.name, uid: account.uid, gid: account.gid, home: account.home };
}

/**
 * Whether this launchfit can start the app as `account`: another user needs root (setuid), and
 * Node (Deno's child_process does not change the user). A ConfigError saying what to do.
 */
export function checkCanRunAs(
  account: AppAccount | undefined,
  { uid = process.geteuid?.(), deno = 'deno' in process.versions } = {},
): void {
  if (!account || account.uid === uid) return;
  if (uid !== 0)
    throw new ConfigError(
      `app.user ${account.name}: starting the app as another user needs launchfit to run as root; run it ` +
        `as root, or as ${account.name}, or remove app.user.`,
    );
  if (deno)
    throw new ConfigError(
      `app.user ${account.name}: Deno cannot start a process as another user; run launchfit with node (or the npm/one-file install).`,
    );
}
