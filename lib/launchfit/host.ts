// `launchfit host --dir HOST`: one process that runs launchfit for many deploy folders, such as
// every pull request's preview, so they share one Node process's memory rather than paying one
// each (docs/launchfit.md). A folder listed in HOST/roster/ gets a launcher (its current release
// installed first when it has none); one taken off is stopped with its app; with nothing listed
// for a while the host exits. kill -9 of the host leaves the apps serving: the next one adopts them.
import { createWriteStream, watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkError, messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import { acquireLock } from '../core/lock.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { readCurrent } from './deploy-folder/current-link.ts';
import { deployPaths } from './deploy-folder/state.ts';
import {
  hostPaths,
  parseEntry,
  runningHost,
  validateEntryName,
  writeEnded,
  writePidFile,
  type Ended,
  type RosterEntry,
} from './host-roster.ts';
import { runLauncher, updateOnce } from './launcher.ts';

export interface HostOptions {
  dir: string;
  log: Logger;
  /** Resolves when the host should stop every launcher and their apps (SIGTERM/SIGINT). */
  stopSignal: Promise<void>;
  /** How long the roster may stay empty before the host exits (default: not at all). */
  idleExitMs?: number;
  /** The roster is read on every change seen and at least this often. */
  scanMs?: number;
}

type StopReason = 'removed' | 'replaced' | 'host stopped';

interface Running {
  /** The entry's text when started: another text is another entry. */
  key: string;
  stop(reason: StopReason): void;
  done: Promise<void>;
}

/** Runs the host until its stop signal or until it has been idle; 'busy' when another host runs for HOST. */
export async function runHost(opts: HostOptions): Promise<'ended' | 'busy'> {
  const paths = hostPaths(opts.dir);
  for (const dir of [paths.dir, paths.roster, paths.ended]) await ensureDir(dir, 0o700);
  let lock;
  try {
    lock = await acquireLock(paths.lock, { waitMs: 10_000, what: `The launchfit host of ${paths.dir}` });
  } catch (error) {
    const other = await runningHost(paths.dir);
    if (!other) throw error;
    opts.log.info('another launchfit host runs for this folder', { pid: other });
    return 'busy';
  }
  try {
    await writePidFile(paths.pidFile);
    await new Host(opts).run();
    return 'ended';
  } finally {
    await rm(paths.pidFile, { force: true });
    await lock.release();
  }
}

/** The first install of a folder that has no current release; an error saying why nothing was installed. */
async function installFirst(dir: string, log: Logger): Promise<void> {
  if (await readCurrent(deployPaths(dir))) return;
  const result = await updateOnce(dir, log);
  if (result.action !== 'installed') throw new WorkError(`nothing was installed: ${result.message}`);
}

class Host {
  private readonly paths: ReturnType<typeof hostPaths>;
  private readonly running = new Map<string, Running>();
  /** Entries whose launcher failed, by name → text: started again only once their text changes. */
  private readonly failed = new Map<string, string>();
  /** Invalid entries already logged, by name → text. */
  private readonly refused = new Map<string, string>();
  private wake: () => void = () => {};
  private readonly opts: HostOptions;

  constructor(opts: HostOptions) {
    this.opts = opts;
    this.paths = hostPaths(opts.dir);
  }

  async run(): Promise<void> {
    const { idleExitMs = 0, scanMs = 2_000 } = this.opts;
    let stopped = false;
    void this.opts.stopSignal.then(() => {
      stopped = true;
      this.wake();
    });
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(this.paths.roster, () => this.wake());
    } catch (error) {
      this.opts.log.warn(`cannot watch the roster (${messageOf(error)}); reading it every ${scanMs} ms`);
    }
    this.opts.log.info('launchfit host started', { dir: this.paths.dir });
    let idleSince = Date.now();
    while (!stopped) {
      const listed = await this.scan();
      if (listed || this.running.size) idleSince = Date.now();
      else if (Date.now() - idleSince >= idleExitMs && !(await this.stillNeeded())) break;
      const woken = new Promise<void>((resolve) => (this.wake = resolve));
      await Promise.race([woken, sleep(scanMs)]);
    }
    watcher?.close();
    for (const run of this.running.values()) run.stop('host stopped');
    await Promise.all([...this.running.values()].map((run) => run.done));
    this.opts.log.info(stopped ? 'launchfit host stopped' : 'nothing listed; launchfit host exits');
  }

  /**
   * Before exiting idle: the pid file goes first, then the roster is read once more. A lister
   * writes its entry, then looks for the pid file: it either finds none and starts a host, or
   * its entry is seen here.
   */
  private async stillNeeded(): Promise<boolean> {
    await rm(this.paths.pidFile, { force: true });
    if (!(await this.scan())) return false;
    await writePidFile(this.paths.pidFile);
    return true;
  }

  /** Reads the roster, stops what left it or changed, starts what is new; the number listed. */
  private async scan(): Promise<number> {
    const listed = await this.readRoster();
    for (const [name, run] of this.running) {
      const now = listed.get(name);
      if (now === undefined) run.stop('removed');
      else if (now.key !== run.key) run.stop('replaced');
    }
    for (const [name, { key, entry }] of listed)
      if (!this.running.has(name) && this.failed.get(name) !== key) this.start(name, key, entry);
    for (const name of this.failed.keys()) if (!listed.has(name)) this.failed.delete(name);
    return listed.size;
  }

  private async readRoster(): Promise<Map<string, { key: string; entry: RosterEntry }>> {
    const listed = new Map<string, { key: string; entry: RosterEntry }>();
    for (const file of await readdir(this.paths.roster).catch(() => [] as string[])) {
      if (!file.endsWith('.json')) continue;
      const name = file.slice(0, -'.json'.length);
      const key = await readFile(`${this.paths.roster}/${file}`, 'utf8').catch(() => undefined);
      if (key === undefined) continue;
      try {
        listed.set(validateEntryName(name), { key, entry: parseEntry(key) });
      } catch (error) {
        if (this.refused.get(name) === key) continue;
        this.refused.set(name, key);
        this.opts.log.error(`roster entry ${JSON.stringify(file)} is not used: ${messageOf(error)}`);
      }
    }
    return listed;
  }

  private start(name: string, key: string, entry: RosterEntry): void {
    let resolve!: () => void;
    const stopSignal = new Promise<void>((r) => (resolve = r));
    let reason: StopReason | undefined;
    const run: Running = {
      key,
      stop: (why) => {
        reason ??= why;
        resolve();
      },
      done: Promise.resolve(),
    };
    run.done = this.supervise(name, key, entry, stopSignal, () => reason).finally(() => {
      if (this.running.get(name) === run) this.running.delete(name);
      this.wake(); // a replaced entry starts again at once
    });
    this.running.set(name, run);
    this.opts.log.info('started', { entry: name, dir: entry.dir });
  }

  /** One launcher, its log in the entry's file; its end written to HOST/ended/NAME, unless replaced. */
  private async supervise(
    name: string,
    key: string,
    entry: RosterEntry,
    stopSignal: Promise<void>,
    reason: () => StopReason | undefined,
  ): Promise<void> {
    const stream = createWriteStream(entry.log, { flags: 'a', mode: 0o600 });
    stream.on('error', (error) => this.opts.log.warn(`cannot write ${entry.log}: ${messageOf(error)}`));
    const log = createLogger({ stream, color: false });
    let ended: Ended;
    try {
      await installFirst(entry.dir, log);
      await runLauncher({ dir: entry.dir, log, stopSignal, echo: stream });
      ended = { removed: reason() === 'removed', reason: reason() ?? 'stopped' };
    } catch (error) {
      log.error(`launchfit stopped: ${messageOf(error)}`);
      this.opts.log.error(`${name} stopped: ${messageOf(error)}`);
      if (!reason()) this.failed.set(name, key);
      ended = { removed: reason() === 'removed', reason: messageOf(error) };
    }
    if (reason() !== 'replaced')
      await writeEnded(this.paths.dir, name, ended).catch((e) => this.opts.log.warn(messageOf(e)));
    await new Promise<void>((resolve) => stream.end(resolve));
  }
}
