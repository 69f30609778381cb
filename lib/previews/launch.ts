// A preview running under launchfit (docs/previews.md): each build published as a signed release
// into FOLDER/updates/, launchfit's deploy folder FOLDER/host/ written and listed with the one
// `launchfit host` of DATA/previews (started detached when none runs), which runs every
// preview's launchfit in one process; later builds switched to over the preview's control socket
// without downtime; at teardown taken off the roster, its processes ended and its folder removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { atomicWriteFile, ensureDir, pathExists, readFileTail } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';
import { endProcessGroup, processStartTime, signalGroup, waitForGroupExit } from '../core/process-group.ts';
import { readProcFile } from '../core/procfs.ts';
import { bundledCommandFor } from '../core/script-command.ts';
import { refusedCheck, requestOverSocket } from '../launchfit/control/socket.ts';
import type { InstanceInfo } from '../launchfit/app/runner.ts';
import { isAppOf } from '../launchfit/deploy-folder/app-env.ts';
import { deployPaths } from '../launchfit/deploy-folder/state.ts';
import {
  clearEnded,
  hostPaths,
  listEntries,
  livePid,
  readEnded,
  readEntry,
  removeEntry,
  runningHost,
  validateEntryName,
  writeEntry,
} from '../launchfit/host-roster.ts';
import { initReleaseKeys, KEYS_FILE, PRIMARY_FILE, SIGNING_FILE } from '../release/keys/release-keys.ts';
import { parseVersionFile } from '../release/format/version-file.ts';
import { publishRelease } from '../release/publish/publish.ts';
import { validatePreviewName } from './name.ts';

export { freePort } from './update-files.ts';

/** Launches of a preview on a fresh port, each on another one when the last was taken meanwhile. */
const PORT_TRIES = 3;

/**
 * `launch(port)`; when the port was picked fresh (no launchfit holds it yet) and the launch fails
 * with EADDRINUSE, it was taken between the pick and the bind, by any program: `taken` is told,
 * and the launch tried again on `pick()`'s port, up to PORT_TRIES launches in all. Resolves to the
 * port launched on; any other failure, or the last, is thrown as it came.
 */
export async function onFreshPort(
  port: number,
  opts: {
    fresh: boolean;
    pick: () => Promise<number>;
    launch: (port: number) => Promise<unknown>;
    taken: (port: number, next: number) => Promise<void>;
  },
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      await opts.launch(port);
      return port;
    } catch (error) {
      if (!opts.fresh || attempt >= PORT_TRIES || !/EADDRINUSE/.test(messageOf(error))) throw error;
      const next = await opts.pick();
      await opts.taken(port, next);
      port = next;
    }
  }
}

export interface PreviewKey {
  secretFile: string;
  passphraseFile: string;
  publicFile: string;
}

export interface LaunchSpec {
  /** DATA/previews/SLUG/pr-N. */
  folder: string;
  /** pr-N: the release's name. */
  name: string;
  /** The command that starts the app (run with /bin/sh -c in the release's folder). */
  start: string;
  /** The path that must answer 2xx, such as `/`. */
  health: string;
  /** The app's variables besides PORT (and launchfit's LISTEN_*, LAUNCHFIT_PID, LAUNCHFIT_MARK). */
  env: Record<string, string>;
  port: number;
  user?: string;
  key: PreviewKey;
  /** http://127.0.0.1:P/SLUG/pr-N/updates/ (update-files.ts previewUpdatesUrl). */
  updatesUrl: string;
  log: Logger;
  /**
   * Default true: launchfit binds the port and hands it to the app (LISTEN_FDS, fd 3), for
   * switches without downtime. false: the app binds $PORT itself, and a switch stops the old
   * release before the new one starts.
   */
  handOverSocket?: boolean;
}

const PLATFORM = 'gnu-linux';
const hostOf = (folder: string) => path.join(path.resolve(folder), 'host');
const pidFileOf = (folder: string) => path.join(folder, 'launchfit.pid');
const logFileOf = (folder: string) => path.join(folder, 'launchfit.log');
const socketOf = (folder: string) => deployPaths(hostOf(folder)).socket;
const appLogOf = (folder: string) => deployPaths(hostOf(folder)).appLog;

/** `run(key)`, or the same call still in flight for `key`: two callers at once share one. */
function joinInFlight<T>(inFlight: Map<string, Promise<T>>, key: string, run: (key: string) => Promise<T>): Promise<T> {
  let pending = inFlight.get(key);
  if (!pending) {
    pending = run(key).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

const keyGenerations = new Map<string, Promise<PreviewKey>>();

/**
 * The previews' signing key in DATA/previews/key/ (a `release keys` folder: signing.asc, keys.asc,
 * and a random passphrase, 0600), made the first time and reused after.
 */
export function ensurePreviewKey(previewsDir: string): Promise<PreviewKey> {
  return joinInFlight(keyGenerations, path.join(path.resolve(previewsDir), 'key'), makePreviewKey);
}

async function makePreviewKey(dir: string): Promise<PreviewKey> {
  const key = {
    secretFile: path.join(dir, SIGNING_FILE),
    passphraseFile: path.join(dir, 'passphrase'),
    publicFile: path.join(dir, KEYS_FILE),
  };
  // primary.asc is written last: with it, the folder is whole.
  if ((await pathExists(path.join(dir, PRIMARY_FILE))) && (await pathExists(key.passphraseFile))) return key;
  await ensureDir(dir, 0o700);
  for (const name of [PRIMARY_FILE, SIGNING_FILE, KEYS_FILE]) await rm(path.join(dir, name), { force: true });
  await atomicWriteFile(key.passphraseFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  await initReleaseKeys({
    dir,
    passphraseFile: key.passphraseFile,
    userId: 'shipkit previews',
    expiresDays: 3650,
  });
  return key;
}

/** The version of a build: 1.SECONDS.SHA7, SECONDS above the last one published at `updates`. */
async function nextVersion(updates: string, sha: string, now = Date.now()): Promise<string> {
  let last = 0;
  try {
    const published = parseVersionFile(await readFile(path.join(updates, 'VERSION'), 'utf8'));
    last = Number(/^1\.(\d+)\./.exec(published.version)?.[1] ?? 0);
  } catch {
    /* nothing published yet */
  }
  return `1.${Math.max(Math.floor(now / 1000), last + 1)}.${sha.slice(0, 7).toLowerCase()}`;
}

/** Publishes the folder `built` (the build of commit `sha`) as the preview's next release in FOLDER/updates/. */
export async function publishBuild(spec: LaunchSpec, built: string, sha: string): Promise<{ version: string }> {
  if (!/^[0-9a-f]{7,64}$/i.test(sha)) throw new ValidationError(`Invalid commit ${JSON.stringify(sha.slice(0, 70))}.`);
  const to = path.join(spec.folder, 'updates');
  await ensureDir(to);
  const version = await nextVersion(to, sha);
  await publishRelease({
    dir: built,
    name: validatePreviewName(spec.name),
    platform: PLATFORM,
    version,
    key: spec.key.secretFile,
    passphraseFile: spec.key.passphraseFile,
    to,
    keep: 2,
    expiresDays: 0, // a preview may stay idle for months; its server is on loopback
    delta: false, // over loopback a whole tarball costs less than making patches
    source: { commit: sha },
    env: {},
    log: spec.log,
  });
  return { version };
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const q = (value: string) => JSON.stringify(value);

/** FOLDER/host/launchify.yml for `spec`. */
export function launchifyYml(spec: LaunchSpec): string {
  validatePreviewName(spec.name);
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535)
    throw new ValidationError(`Invalid port ${spec.port} for ${spec.name}.`);
  if (!spec.health.startsWith('/')) throw new ValidationError(`The health path ${q(spec.health)} must start with /.`);
  if (!spec.start.trim()) throw new ValidationError(`${spec.name} has no start command.`);
  const env = { ...spec.env, PORT: String(spec.port) };
  for (const name of Object.keys(env))
    if (!ENV_NAME.test(name)) throw new ValidationError(`Invalid variable name ${q(name.slice(0, 60))}.`);
  const lines = [
    '# written by shipkit for a pull request preview (lib/previews/launch.ts); rewritten at each launch',
    'app:',
    `  exec: ${q(spec.start)}`,
    '  forever: true',
    // A hold, unlike launchfit's default: a build that dies right after its first 2xx fails its
    // push (status and state say so) instead of going live and then back (docs/previews.md).
    '  healthy_after: 2',
    // A build may take a while to listen (a framework's first compile): a push waits for it.
    '  start_timeout: 60',
    '  kill_timeout: 5',
    '  drain: 5',
    ...(spec.user ? [`  user: ${q(spec.user)}`] : []),
    '  env:',
    ...Object.entries(env).map(([k, v]) => `    ${k}: ${q(v)}`),
    ...(spec.handOverSocket === false ? [] : [`  listen: [${q(`127.0.0.1:${spec.port}`)}]`]),
    '  health:',
    `    http: ${q(`http://127.0.0.1:${spec.port}${spec.health}`)}`,
    'updates:',
    `  server: ${q(spec.updatesUrl)}`,
    '  interval: 86400',
    '  keep: 2',
    `  app: ${q(spec.name)}`,
    `  platform: ${PLATFORM}`,
    '  gpg:',
    `    keyfile: ${q(path.resolve(spec.key.publicFile))}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The command that runs launchfit: through the bundle shipkit runs from, else the checkout's
 * scripts/launchfit.ts under Node (never Deno: `app.listen` needs Node to pass sockets).
 */
export function launchfitCommand(): string[] {
  const bundled = bundledCommandFor('launchfit');
  if (bundled) return bundled;
  const root = path.resolve(import.meta.dirname, '../..');
  const node = 'Deno' in globalThis ? 'node' : process.execPath;
  return [
    node,
    '--import',
    path.join(root, 'node_modules/tsx/dist/loader.mjs'),
    path.join(root, 'scripts/launchfit.ts'),
  ];
}

/** launchfit's environment, which its app inherits: PATH, HOME, LANG and TZ, none of hook-server's secrets. */
export function launchfitEnvironment(from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = { PATH: from.PATH || '/usr/local/bin:/usr/bin:/bin' };
  for (const name of ['HOME', 'LANG', 'TZ']) if (from[name]) env[name] = from[name]!;
  return env;
}

/** The last `lines` lines of `file` ('' when it cannot be read). */
async function lastLines(file: string, lines = 15): Promise<string> {
  const tail = await readFileTail(file, 16 * 1024).catch(() => Buffer.alloc(0));
  return tail.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** What a failure message carries: launchfit's log and the app's output, their last lines. */
async function logsOf(folder: string): Promise<string> {
  const [own, app] = await Promise.all([lastLines(logFileOf(folder)), lastLines(appLogOf(folder))]);
  return `\n--- launchfit (${logFileOf(folder)}) ---\n${own || '(empty)'}\n--- the app (${appLogOf(folder)}) ---\n${app || '(empty)'}`;
}

const hostDirOf = (folder: string) => path.join(path.dirname(path.dirname(path.resolve(folder))), '.launchfit-host');

/** The preview's name in the host's roster: REPO.pr-N, or a digest of its folder when that is no name. */
function entryNameOf(folder: string): string {
  const full = path.resolve(folder);
  const name = `${path.basename(path.dirname(full))}.${path.basename(full)}`;
  try {
    return validateEntryName(name);
  } catch {
    return createHash('sha256').update(full).digest('hex').slice(0, 32);
  }
}

const hostStarts = new Map<string, Promise<number>>();

/**
 * The running `launchfit host` of the previews (DATA/previews/.launchfit-host): started detached
 * (its own session, output to host.log) when none runs. Its pid.
 */
const ensureHost = (hostDir: string): Promise<number> => joinInFlight(hostStarts, hostDir, startHost);

async function startHost(hostDir: string): Promise<number> {
  const running = await runningHost(hostDir);
  if (running) return running;
  const paths = hostPaths(hostDir);
  await ensureDir(paths.dir, 0o700);
  const [cmd, ...pre] = launchfitCommand();
  const fd = openSync(paths.log, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(cmd, [...pre, 'host', '--dir', paths.dir], {
      cwd: paths.dir,
      env: launchfitEnvironment(),
      detached: true,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ?? `exit ${code}`));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  child.unref();
  // Another host may be leaving (it gives up the lock once it has looked at the roster again).
  for (const until = Date.now() + 15_000; Date.now() < until; await sleep(20)) {
    const pid = await runningHost(hostDir);
    if (pid) return pid;
    if (exited) break;
  }
  throw new WorkError(`launchfit host did not start (${exited ?? 'no pid file'}):\n${await lastLines(paths.log)}`);
}

/** Lists the preview with the host, which starts its launcher; the host's pid. */
async function enlist(folder: string): Promise<number> {
  const hostDir = hostDirOf(folder);
  await writeEntry(hostDir, entryNameOf(folder), { dir: hostOf(folder), log: logFileOf(folder), since: Date.now() });
  return ensureHost(hostDir);
}

/** Why the preview's launcher is not running (its ended mark, or the host gone); undefined while it runs. */
async function whyNotRunning(folder: string): Promise<string | undefined> {
  const hostDir = hostDirOf(folder);
  const ended = await readEnded(hostDir, entryNameOf(folder));
  if (ended) return ended.reason;
  if (!(await runningHost(hostDir))) return 'the launchfit host is not running';
  return undefined;
}

/** A preview launched before previews shared one host: its own `launchfit run`, from its pid file. */
const legacyLaunchfit = (folder: string) => livePid(pidFileOf(folder));

/** The launchfit that runs this preview: the host, while it lists the preview; or the preview's own from before. */
export async function runningLaunchfit(folder: string): Promise<{ pid: number } | undefined> {
  const legacy = await legacyLaunchfit(folder);
  if (legacy) return { pid: legacy };
  const hostDir = hostDirOf(folder);
  const name = entryNameOf(folder);
  const pid = await runningHost(hostDir);
  if (!pid || (await readEnded(hostDir, name)) || !(await readEntry(hostDir, name).catch(() => undefined)))
    return undefined;
  return { pid };
}

/** One GET of the health URL: its status, or the error's words. */
function probe(url: string, timeoutMs = 2_000): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/**
 * Until the app answers its health path 2xx and its launcher its control socket; a WorkError when
 * the launcher stops (the host says why) or `deadline` passes.
 */
async function waitHealthy(spec: LaunchSpec, deadline: number): Promise<void> {
  const url = `http://127.0.0.1:${spec.port}${spec.health}`;
  let last: number | string = 'not asked yet';
  const pids = new Set<number>();
  let answeringBadSince: number | undefined;
  while (Date.now() < deadline) {
    const stopped = await whyNotRunning(spec.folder);
    if (stopped) throw new WorkError(`launchfit for ${spec.name} stopped: ${stopped}${await logsOf(spec.folder)}`);
    last = await probe(url, Math.max(200, Math.min(2_000, deadline - Date.now())));
    const status = await launchfitStatus(spec.folder, 2_000);
    if (typeof last === 'number' && last >= 200 && last < 300 && status?.version) return;
    // An HTTP answer other than 2xx means the app is up, and says no (a refused or silent port: still starting).
    answeringBadSince = typeof last === 'number' && last >= 300 ? (answeringBadSince ?? Date.now()) : undefined;
    for (const pid of await instancePids(spec.folder)) pids.add(pid);
    const gaveUp =
      answeringBadSince !== undefined && Date.now() - answeringBadSince >= ANSWERING_BAD_MS
        ? `it answered ${last} for ${ANSWERING_BAD_MS / 1000} s`
        : givenUp(status?.app, pids.size - 1);
    if (gaveUp)
      throw new WorkError(
        `${spec.name} did not answer GET ${url} with a 2xx (its last answer: ${last}): ${gaveUp}.${await logsOf(spec.folder)}`,
      );
    await sleep(100);
  }
  throw new WorkError(
    `${spec.name} did not answer GET ${url} with a 2xx in time (its last answer: ${last}).${await logsOf(spec.folder)}`,
  );
}

/**
 * The instances launchfit started for the app, by their pid files (the control socket answers only
 * once the first start is over, which a crashing app puts off with every restart).
 */
async function instancePids(folder: string): Promise<number[]> {
  const { pidFile, secondPidFile } = deployPaths(hostOf(folder));
  const pids: number[] = [];
  for (const file of [pidFile, secondPidFile]) {
    try {
      const pgid = Number((JSON.parse(await readFile(file, 'utf8')) as { pgid?: unknown }).pgid);
      if (Number.isInteger(pgid) && pgid > 1) pids.push(pgid);
    } catch {
      // none yet, or being written
    }
  }
  return pids;
}

/** How long an app may answer its health path with something other than 2xx before a first start fails. */
const ANSWERING_BAD_MS = 20_000;

/** Restarts of a first start past which waiting longer cannot help. */
const RESTARTS_TO_GIVE_UP = 2;

/**
 * Why waiting for this app is pointless: it stopped for good, or it was started again `restarts`
 * times (a crash, or failed health checks) while we waited; undefined while it may yet come up.
 */
function givenUp(app: InstanceInfo | undefined, restarts: number): string | undefined {
  if (!app) return undefined;
  const exit = app.lastExit ? ` (its last exit: ${app.lastExit.signal ?? `code ${app.lastExit.code}`})` : '';
  if (app.state === 'failed' || app.state === 'exited') return `launchfit gave up: the app ${app.state}${exit}`;
  if (restarts >= RESTARTS_TO_GIVE_UP) return `launchfit started the app ${restarts + 1} times${exit}`;
  return undefined;
}

/**
 * First time (or after launchfit stopped): deploy and start `launchfit run` detached; later: ask
 * the running launchfit to update, which switches without downtime. Resolves once the new release
 * answers its health path 2xx on 127.0.0.1:PORT; else a WorkError with launchfit's own words and
 * the last lines of the logs (a first launch that fails is stopped, its folder kept; an update
 * that fails leaves the previous release serving).
 */
export async function launchOrUpdate(
  spec: LaunchSpec,
  { timeoutMs = 120_000 }: { timeoutMs?: number } = {},
): Promise<{ pid: number; switched: boolean }> {
  const host = hostOf(spec.folder);
  await ensureDir(host);
  // It holds the app's secrets (previews.env, DATABASE_URL): launchfit's (root's) to read only.
  await atomicWriteFile(path.join(host, 'launchify.yml'), launchifyYml(spec), { mode: 0o600 });
  const running = await runningLaunchfit(spec.folder);
  if (running) {
    const switched = await askUpdate(spec, timeoutMs);
    if (switched !== undefined) return { pid: running.pid, switched };
    spec.log.warn('launchfit runs but does not answer on its control socket; starting it again', { pid: running.pid });
    await stopLaunchfit(spec.folder, 5_000);
  }
  const pid = await firstLaunch(spec, timeoutMs);
  // A host started again adopts the app it finds serving, which may be an older build.
  if ((await servingVersion(spec.folder)) !== (await publishedVersion(spec.folder))) await askUpdate(spec, timeoutMs);
  return { pid, switched: true };
}

/** The version launchfit of `folder` runs now, from its status; undefined when it does not answer. */
async function servingVersion(folder: string, timeoutMs = 10_000): Promise<string | undefined> {
  return (await launchfitStatus(folder, timeoutMs))?.version;
}

/** launchfit's status of `folder` (GET /status on its control socket); undefined when it does not answer. */
async function launchfitStatus(
  folder: string,
  timeoutMs: number,
): Promise<{ version?: string; app?: InstanceInfo } | undefined> {
  const answer = await requestOverSocket(socketOf(folder), 'GET', '/status', timeoutMs).catch(() => undefined);
  return answer?.body.result as { version?: string; app?: InstanceInfo } | undefined;
}

/** The version FOLDER/updates/ offers. */
async function publishedVersion(folder: string): Promise<string | undefined> {
  const text = await readFile(path.join(folder, 'updates', 'VERSION'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseVersionFile(text).version;
}

/**
 * POST /update to the running launchfit: whether another release serves now; undefined when
 * nobody answers. A check launchfit ran meanwhile may have switched already (this one then finds
 * it up to date), so what counts is that the published version serves afterwards.
 */
async function askUpdate(spec: LaunchSpec, timeoutMs: number): Promise<boolean | undefined> {
  const before = await servingVersion(spec.folder);
  const answer = await requestOverSocket(socketOf(spec.folder), 'POST', '/update', timeoutMs).catch((error) => {
    throw new WorkError(`launchfit of ${spec.name} did not answer the update: ${messageOf(error)}`);
  });
  if (!answer) return undefined;
  if (!answer.body.ok)
    throw new WorkError(`launchfit could not update ${spec.name}: ${answer.body.error}${await logsOf(spec.folder)}`);
  const refused = refusedCheck(answer.body.result);
  if (refused) throw new WorkError(`launchfit did not switch ${spec.name}: ${refused}${await logsOf(spec.folder)}`);
  const { action, message } = (answer.body.result ?? {}) as { action?: string; message?: string };
  spec.log.info(`launchfit: ${message ?? action}`, { preview: spec.name });
  const [now, published] = [await servingVersion(spec.folder), await publishedVersion(spec.folder)];
  if (published !== undefined && now !== published)
    throw new WorkError(
      `launchfit of ${spec.name} runs ${now ?? 'nothing'}, not the published ${published}: ${message ?? action}${await logsOf(spec.folder)}`,
    );
  return action === 'installed' || now !== before;
}

/** Lists the preview with the host, which installs the published build and starts it; the host's pid. */
async function firstLaunch(spec: LaunchSpec, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const pid = await enlist(spec.folder);
  spec.log.info('listed with the launchfit host', { preview: spec.name, pid, port: spec.port });
  try {
    await waitHealthy(spec, deadline);
  } catch (error) {
    await stopLaunchfit(spec.folder, 5_000);
    throw error;
  }
  return pid;
}

/**
 * Points the preview at the update server's new URL (when its port moved). Its launcher reads
 * launchify.yml again before each check, so nothing restarts; a preview still run by its own
 * launchfit (from before previews shared a host) is handed to the host, which adopts the app
 * and its sockets (docs/launchfit.md): no downtime either way.
 */
export async function repointPreview(folder: string, url: string): Promise<{ pid?: number }> {
  const file = path.join(hostOf(folder), 'launchify.yml');
  const text = await readFile(file, 'utf8');
  if (!/^ {2}server: .*$/m.test(text)) throw new WorkError(`${file} has no updates.server line to change.`);
  await atomicWriteFile(file, text.replace(/^ {2}server: .*$/m, `  server: ${q(url)}`), { mode: 0o600 });
  const legacy = await legacyLaunchfit(folder);
  if (!legacy) return (await runningLaunchfit(folder)) ?? {};
  process.kill(legacy, 'SIGKILL'); // launchfit alone: its app, in sessions of its own, stays up
  await waitForExit(legacy, 5_000);
  await rm(pidFileOf(folder), { force: true });
  const pid = await enlist(folder);
  for (let until = Date.now() + 30_000; Date.now() < until; await sleep(100))
    if (await requestOverSocket(socketOf(folder), 'GET', '/status', 2_000).catch(() => undefined)) return { pid };
  throw new WorkError(`launchfit of ${folder} did not come back after its restart.${await logsOf(folder)}`);
}

async function waitForExit(pid: number, ms: number): Promise<void> {
  for (const until = Date.now() + ms; Date.now() < until; await sleep(25)) {
    const start = processStartTime(pid);
    if (start === null) return;
    const stat = readProcFile(`/proc/${pid}/stat`);
    if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) return;
  }
}

/** The processes of `folder`'s preview: its launchfit by command line, its app by launchfit's mark. */
async function previewProcesses(folder: string): Promise<{ launchfits: number[]; apps: number[] }> {
  const host = hostOf(folder);
  const launchfits: number[] = [];
  const apps: number[] = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    try {
      const argv = readProcFile(`/proc/${pid}/cmdline`).split('\0');
      const at = argv.indexOf('--dir');
      if (at > 0 && argv[at + 1] === host && argv.includes('run')) launchfits.push(Number(pid));
      else if (isAppOf(readProcFile(`/proc/${pid}/environ`).split('\0'), host)) apps.push(Number(pid));
    } catch {
      /* gone, or another user's */
    }
  }
  return { launchfits, apps };
}

const killPid = (pid: number) => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
};

const groupOf = (pid: number): number | undefined => {
  try {
    const stat = readProcFile(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
};

/**
 * Takes the preview off the host's roster (its launcher stops the app: SIGTERM, SIGKILL after
 * its kill_timeout) and waits up to `graceMs` for that; then SIGKILL to whatever is left: a
 * launchfit of its own from before, the app's processes by launchfit's mark.
 */
async function stopLaunchfit(folder: string, graceMs: number): Promise<void> {
  const hostDir = hostDirOf(folder);
  const name = entryNameOf(folder);
  const listed = (await readEntry(hostDir, name).catch(() => undefined)) && !(await readEnded(hostDir, name));
  await removeEntry(hostDir, name);
  if (listed)
    for (const until = Date.now() + graceMs; Date.now() < until; await sleep(50))
      if (!(await runningHost(hostDir)) || (await readEnded(hostDir, name))) break;
  const legacy = await legacyLaunchfit(folder);
  const found = await previewProcesses(folder);
  const launchfits = new Set([...(legacy ? [legacy] : []), ...found.launchfits]);
  await Promise.all([...launchfits].map((pid) => endProcessGroup(groupOf(pid) ?? pid, { graceMs })));
  const { apps } = await previewProcesses(folder);
  const groups = new Set(apps.map((pid) => groupOf(pid) ?? pid));
  for (const pgid of groups) signalGroup(pgid, 'SIGKILL');
  for (const pid of apps) killPid(pid);
  await Promise.all([...groups].map((pgid) => waitForGroupExit(pgid, 5_000)));
  await rm(pidFileOf(folder), { force: true });
  await clearEnded(hostDir, name);
  // The last preview gone, the host exits: wait for that, so nothing outlives the teardown.
  if (!(await listEntries(hostDir)).length)
    for (const until = Date.now() + 3_000; Date.now() < until && (await runningHost(hostDir));) await sleep(25);
}

/**
 * Stops launchfit and the app (SIGTERM, then SIGKILL after `graceMs`), then removes FOLDER, or
 * all of it but the entries named in `keep` (such as `logs`). Idempotent.
 */
export async function stopPreview(
  folder: string,
  { graceMs = 10_000, keep = [] }: { graceMs?: number; keep?: string[] } = {},
): Promise<void> {
  if (!(await pathExists(folder))) return;
  await stopLaunchfit(folder, graceMs);
  // The shared host may still be writing the preview's last state as it lets it go (seen under a
  // load of 10: ENOTEMPTY on host/.launchfit): the removal is tried again a moment later.
  const remove = (target: string) => rm(target, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  if (!keep.length) return void (await remove(folder));
  for (const name of await readdir(folder)) if (!keep.includes(name)) await remove(path.join(folder, name));
}
