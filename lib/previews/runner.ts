// hook-server's preview runner (docs/previews.md): a pull request event becomes a preview record,
// then, one change at a time per pull request, a build of its head (`build REPO --preview N`),
// a release run under launchfit on a port of its own, and a route in the user's nginx; closing,
// `ttl`, `max` and `shipkit previews rm` tear it down. Untrusted heads wait for an approval bound
// to their SHA. A sweep at start and every minute removes what no open preview owns.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { RepoConfig, ShipkitConfig } from '../config/shipkit-yml.ts';
import { resolveBuildEnv } from '../config/build-env.ts';
import type { ResolvedReport } from '../config/report.ts';
import { readFileTail } from '../core/fs.ts';
import { repoFolderName } from '../core/names.ts';
import { ValidationError, WorkError, messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { newJobId } from '../jobs/job-id.ts';
import type { PullRequestEvent } from './event.ts';
import { previewBuildPaths, previewFolder } from './build.ts';
import { runPreviewBuild, type PreviewBuildResult } from './build-process.ts';
import { receiveWorkerBuild, WORKER_WAIT_S, type WorkerBuilds } from './remote-build.ts';
import { PreviewNotFound, type PreviewControl } from './control.ts';
import {
  createPreviewDatabase,
  dropPreviewDatabase,
  listPreviewDatabases,
  prOfPreviewDatabase,
  previewDatabaseName,
  previewDatabaseUrl,
  resolvePreviewDatabaseServer,
} from './database.ts';
import { forgeTargetOf, previewComment, tellForge } from './forge.ts';
import {
  ensurePreviewKey,
  freePort,
  launchOrUpdate,
  onFreshPort,
  publishBuild,
  repointPreview,
  runningLaunchfit,
  stopPreview,
  type PreviewKey,
} from './launch.ts';
import { limitsDirsOf, oomKills, prepareLimits, removeLimits } from './limits.ts';
import { previewName } from './name.ts';
import { listRoutes, removeRoute, writeRoute } from './nginx.ts';
import {
  checkPreviewRunAs,
  closePreviewFolder,
  openPreviewsFolder,
  pickPreviewUid,
  previewAccount,
  type PreviewRunAs,
} from './user.ts';
import { numericAccount, type UnixAccount } from '../core/unix-user.ts';
import { PreviewStore, previewsFolder, recordKey, type PreviewRecord, type PreviewState } from './store.ts';
import { startUpdateFiles, type UpdateFiles } from './update-files.ts';

/** Who may have a preview built without an approval, besides `previews.trusted`. */
const TRUSTED_ASSOCIATIONS = new Set(['OWNER', 'MEMBER', 'COLLABORATOR']);
const APPROVAL_LABEL = 'preview';
const SWEEP_MS = 60_000;
/** sockaddr_un's sun_path, less its NUL. */
const MAX_SOCKET_PATH = 107;

export interface PreviewRunnerOptions {
  config: ShipkitConfig;
  log: Logger;
  /** Preview builds at once (default 1: a preview machine also serves). */
  builds?: number;
  /** The environment hook-server started with (the previews' `env:NAME` secrets are read from it). */
  env?: NodeJS.ProcessEnv;
  /** How often the sweep runs (default a minute). */
  sweepMs?: number;
  /** Each repo's commit-status settings, resolved (hook-server's `report`): where the forge is told. */
  reports?: ReadonlyMap<string, ResolvedReport>;
  /** With queue:, where `previews.build_on: workers` sends its builds (remote-build.ts). */
  workers?: WorkerBuilds;
}

/** What hook-server answers a pull request event with. */
export interface PreviewAnswer {
  name: string;
  state: PreviewState | 'ignored';
  reason?: string;
}

export class PreviewRunner implements PreviewControl {
  private readonly options: PreviewRunnerOptions;
  private readonly store: PreviewStore;
  /** The last change queued per pull request: each waits for the one before. */
  private readonly chains = new Map<string, Promise<void>>();
  /** One `max` decision at a time per repo: two made at once would each push out a preview the other keeps. */
  private readonly roomChains = new Map<string, Promise<unknown>>();
  private readonly buildSlots: Array<() => void> = [];
  private buildsRunning = 0;
  private key?: PreviewKey;
  private files?: UpdateFiles;
  private timer?: NodeJS.Timeout;
  private closed = false;
  /** How each repo's previews run (user.ts), checked at start. */
  private readonly runAs = new Map<string, PreviewRunAs>();

  constructor(options: PreviewRunnerOptions) {
    this.options = options;
    this.store = new PreviewStore(options.config.data);
  }

  /** Reads the records, starts the update-file server, sweeps, and sweeps again every minute. */
  async start(): Promise<void> {
    for (const repo of this.options.config.repos.values()) {
      const p = repo.previews;
      if (p) this.runAs.set(repo.name, await checkPreviewRunAs(p, this.options.config.doc.locate(p.keyPath)));
    }
    await this.store.load();
    const dir = previewsFolder(this.options.config.data);
    this.key = await ensurePreviewKey(dir);
    for (const runAs of this.runAs.values()) {
      if (runAs.kind === 'user') await openPreviewsFolder(dir, runAs.account);
      if (runAs.kind === 'own') await openPreviewsFolder(dir, numericAccount(runAs.uids.from));
    }
    this.files = await startUpdateFiles(dir, { log: this.options.log });
    if (this.files.movedFrom !== undefined) await this.repointAll();
    await this.sweep();
    const every = this.options.sweepMs ?? SWEEP_MS;
    this.timer = setInterval(() => void this.sweep().catch((e) => this.warn('sweep failed', e)), every);
    this.timer.unref();
  }

  /** The update-file server moved to another port: every open preview's launchfit is told the new address. */
  private async repointAll(): Promise<void> {
    for (const r of this.store.open()) {
      const folder = previewFolder(this.options.config.data, r.repo, r.pr);
      await repointPreview(folder, this.files!.urlFor(repoFolderName(r.repo), r.name)).catch((error) =>
        this.warn(`preview ${r.repo}#${r.pr} not repointed`, error),
      );
    }
  }

  /** Stops the sweeps and the update-file server; the previews themselves keep running. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.chains.values()]);
    await this.files?.close();
  }

  list(): PreviewRecord[] {
    return this.store.list();
  }

  /** A pull request event, checked and signed: what it does is queued; the answer is immediate. */
  async handle(event: PullRequestEvent): Promise<PreviewAnswer> {
    const repo = this.repoOf(event.repo);
    const name = previewName(event.pr);
    const known = this.store.get(event.repo, event.pr);
    if (event.action === 'closed' || event.action === 'merged') {
      if (!known || known.state === 'torn down')
        return { name, state: 'ignored', reason: `no preview of ${event.repo}#${event.pr} is open` };
      this.queue(known, () => this.tearDown(event.repo, event.pr, `the pull request was ${event.action}`));
      return { name, state: 'torn down' };
    }
    if (event.action === 'labeled') return this.labeled(event, repo, known);
    const record = await this.takeEvent(event, known);
    return this.decide(record, repo);
  }

  async approve(repo: string, pr: number, by: string): Promise<PreviewRecord> {
    const record = this.known(repo, pr);
    const approved = { ...record, approved: { sha: record.head, by } };
    await this.store.put(approved);
    this.info('preview approved', approved, { by, sha: record.head });
    await this.decide(approved, this.repoOf(repo));
    return this.store.get(repo, pr)!;
  }

  async rebuild(repo: string, pr: number): Promise<PreviewRecord> {
    const record = this.known(repo, pr);
    if (record.state === 'torn down')
      throw new ValidationError(`${repo}#${pr} was torn down; push to the pull request or reopen it.`);
    await this.decide(record, this.repoOf(repo));
    return this.store.get(repo, pr)!;
  }

  async remove(repo: string, pr: number, why: string): Promise<PreviewRecord> {
    const record = this.known(repo, pr);
    await this.queue(record, () => this.tearDown(repo, pr, why));
    return this.store.get(repo, pr)!;
  }

  async log(repo: string, pr: number): Promise<string> {
    const record = this.known(repo, pr);
    const file = path.join(previewBuildPaths(previewFolder(this.options.config.data, repo, pr)).logs, 'logs.txt');
    const tail = await readFileTail(file, LOG_TAIL_BYTES).catch(() => undefined);
    const cut = tail && tail.length === LOG_TAIL_BYTES ? '(the first part is cut)\n' : '';
    return (
      `${repo}#${pr} (${record.name}) at ${record.head}: ${record.state}${record.reason ? `: ${record.reason}` : ''}\n\n` +
      (tail ? `${cut}${tail.toString('utf8')}` : '(no build log)\n')
    );
  }

  /** Waits until every change queued so far has been made (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.chains.size > 0) await Promise.allSettled([...this.chains.values()]);
  }

  // ---------------------------------------------------------------------------------------------

  private repoOf(name: string): RepoConfig & { previews: NonNullable<RepoConfig['previews']> } {
    const repo = this.options.config.repos.get(name);
    if (!repo?.previews) throw new PreviewNotFound(`${name} has no previews: in ${this.options.config.doc.file}.`);
    return repo as RepoConfig & { previews: NonNullable<RepoConfig['previews']> };
  }

  private known(repo: string, pr: number): PreviewRecord {
    const record = this.store.get(repo, pr);
    if (!record) throw new PreviewNotFound(`No preview of ${repo}#${pr} is known.`);
    return record;
  }

  /** The record after an opened, reopened or pushed event: a newer head replaces the approval's SHA. */
  private async takeEvent(event: PullRequestEvent, known: PreviewRecord | undefined): Promise<PreviewRecord> {
    const now = new Date().toISOString();
    const record: PreviewRecord = {
      ...known,
      repo: event.repo,
      pr: event.pr,
      name: previewName(event.pr),
      head: event.head.sha,
      headRef: event.head.ref,
      headRepo: event.head.repo,
      cloneUrl: event.head.cloneUrl,
      fromFork: event.fromFork,
      author: event.author,
      association: event.association,
      title: event.title,
      prUrl: event.url,
      state: known?.state ?? 'building',
      since: known?.since ?? now,
      pushed: now,
    };
    if (known?.state === 'torn down') delete record.live;
    await this.store.put(record);
    return record;
  }

  /** `preview` set by a trusted user approves the head; other labels change nothing. */
  private async labeled(event: PullRequestEvent, repo: RepoConfig, known?: PreviewRecord): Promise<PreviewAnswer> {
    const name = previewName(event.pr);
    if (event.label !== APPROVAL_LABEL && !(event.label === undefined && event.labels.includes(APPROVAL_LABEL)))
      return { name, state: 'ignored', reason: 'a label other than preview' };
    if (!event.sender || !this.trustedLogin(repo, event.sender, event.sender === event.author ? event : undefined))
      return { name, state: 'ignored', reason: `the label ${APPROVAL_LABEL} was set by someone not trusted` };
    const record = await this.takeEvent(event, known);
    await this.store.put({ ...record, approved: { sha: record.head, by: event.sender } });
    return this.decide(this.store.get(event.repo, event.pr)!, repo);
  }

  /**
   * Who may approve with the label: a login in `previews.trusted`, anyone but the author (the
   * forges let only those with triage or write access label a pull request), or the author
   * when an owner, member or collaborator.
   */
  private trustedLogin(repo: RepoConfig, login: string, event?: PullRequestEvent): boolean {
    if (repo.previews?.trusted.includes(login)) return true;
    if (!event) return true;
    return event.association !== undefined && TRUSTED_ASSOCIATIONS.has(event.association);
  }

  /**
   * Built without an approval: a branch of the repo itself by an owner, member or collaborator
   * (or, where the forge does not say, by anyone who could push it there), or a login in
   * `previews.trusted`. A fork always waits, unless its author is listed.
   */
  private trusted(record: PreviewRecord, repo: RepoConfig): boolean {
    if (record.author && repo.previews?.trusted.includes(record.author)) return true;
    if (record.fromFork) return false;
    return record.association === undefined || TRUSTED_ASSOCIATIONS.has(record.association);
  }

  /** Build now (queued), or wait for an approval of this head. */
  private async decide(record: PreviewRecord, repo: RepoConfig): Promise<PreviewAnswer> {
    if (!this.trusted(record, repo) && record.approved?.sha !== record.head) {
      const reason =
        `waiting for approval of ${record.head.slice(0, 7)}: run \`shipkit previews approve ${record.repo}#${record.pr}\`` +
        ` or set the label ${APPROVAL_LABEL}`;
      await this.setState(record, 'waiting for approval', reason);
      return { name: record.name, state: 'waiting for approval', reason };
    }
    await this.setState(record, 'building', `building ${record.head.slice(0, 7)}`);
    void this.queue(record, () => this.buildAndRun(record.repo, record.pr, record.head));
    return { name: record.name, state: 'building' };
  }

  /** Runs `work` after the changes already queued for this pull request. */
  private queue(record: PreviewRecord, work: () => Promise<void>): Promise<void> {
    const key = recordKey(record.repo, record.pr);
    const before = this.chains.get(key) ?? Promise.resolve();
    const next = before
      .then(work)
      .catch((error) => this.warn(`preview ${key} failed`, error))
      .finally(() => {
        if (this.chains.get(key) === next) this.chains.delete(key);
      });
    this.chains.set(key, next);
    return next;
  }

  /** The head built, published, run and routed; a newer head that came meanwhile wins. */
  private async buildAndRun(repoName: string, pr: number, sha: string): Promise<void> {
    const current = () => this.store.get(repoName, pr);
    const still = () => current()?.head === sha && current()?.state === 'building';
    if (!still()) return; // a newer push, or torn down
    const repo = this.repoOf(repoName);
    if (!(await this.makeRoom(repo, pr))) return;
    const job = newJobId();
    // The uid is chosen and stored in one step: two previews started together never share one.
    await this.store.put({ ...current()!, job, uid: this.uidFor(current()!) });
    await closePreviewFolder(previewFolder(this.options.config.data, repoName, pr), this.accountOf(current()!));
    // Torn down (pushed out by max, closed) while it waited for the slot: not built at all.
    const built = await this.withBuildSlot(async () => (still() ? this.runBuild(current()!, job) : undefined));
    if (!built || !still()) return this.leftBehind(repoName, pr);
    if (!built.ok) return this.failed(current()!, `the build of ${sha.slice(0, 7)} failed: ${built.error}`);
    try {
      await this.launch(current()!, repo, sha);
    } catch (error) {
      await this.failed(current()!, messageOf(error));
    }
  }

  /** The account a preview runs as (user.ts): undefined = hook-server's own. */
  private accountOf(record: PreviewRecord): UnixAccount | undefined {
    return previewAccount(this.runAs.get(record.repo) ?? { kind: 'self' }, record.uid);
  }

  /** With a uid of its own per preview: the one it holds if no other open preview does, else a free one. */
  private uidFor(record: PreviewRecord): number | undefined {
    const runAs = this.runAs.get(record.repo);
    if (runAs?.kind !== 'own') return undefined;
    const key = recordKey(record.repo, record.pr);
    const taken = new Set<number>();
    for (const r of this.store.open()) if (r.uid !== undefined && recordKey(r.repo, r.pr) !== key) taken.add(r.uid);
    return pickPreviewUid(runAs.uids, taken, record.uid);
  }

  /** A build whose preview was torn down meanwhile (by another pull request's `max`) leaves no folder. */
  private async leftBehind(repoName: string, pr: number): Promise<void> {
    if (this.store.get(repoName, pr)?.state === 'torn down')
      await stopPreview(previewFolder(this.options.config.data, repoName, pr));
  }

  private async launch(record: PreviewRecord, repo: RepoConfig & { previews: object }, sha: string): Promise<void> {
    const previews = repo.previews!;
    const folder = previewFolder(this.options.config.data, record.repo, record.pr);
    const socket = path.join(folder, 'host', '.launchfit', 'control.sock');
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH)
      throw new WorkError(
        `launchfit's control socket ${socket} would be longer than a Unix socket path may be ` +
          `(${MAX_SOCKET_PATH} bytes): give shipkit.yml a shorter data: folder.`,
      );
    // Not live yet but its launchfit runs (hook-server killed between the first start and the
    // route): that launchfit holds the port it was first given, which the record keeps.
    const held = record.port !== undefined && (await runningLaunchfit(folder)) ? record.port : undefined;
    const fresh = record.live?.port === undefined && held === undefined;
    let port = record.live?.port ?? held ?? (await freePort());
    const keepPort = async (kept: number) => {
      if (this.store.get(record.repo, record.pr)?.port !== kept)
        await this.store.put({ ...this.store.get(record.repo, record.pr)!, port: kept });
    };
    await keepPort(port);
    const url = previewUrl(this.options.config, previews, record.name);
    const env = await this.appEnv(repo, record, url);
    const account = this.accountOf(record);
    const limited = await prepareLimits(limitsUnit(record), previews.limits, previews.start, { owner: account });
    const spec = {
      folder,
      name: record.name,
      start: limited?.command ?? previews.start,
      health: previews.health,
      handOverSocket: previews.binds === 'launchfit',
      env,
      port,
      user: account?.name,
      key: this.key!,
      updatesUrl: this.files!.urlFor(repoFolderName(record.repo), record.name),
      log: this.options.log,
    };
    await publishBuild(spec, path.join(folder, 'src'), sha);
    port = await onFreshPort(port, {
      fresh,
      pick: freePort,
      launch: (on) => launchOrUpdate({ ...spec, port: on }, {}),
      taken: async (was, next) => {
        this.options.log.warn('the port picked for the preview was taken before launchfit bound it; picking another', {
          preview: record.name,
          port: was,
          next,
        });
        await keepPort(next);
      },
    });
    // Torn down meanwhile (pushed out by another pull request's max, closed): no route, nothing left running.
    if (this.store.get(record.repo, record.pr)?.state === 'torn down') return this.leftBehind(record.repo, record.pr);
    if (!record.live)
      await writeRoute({
        ...previews.nginx,
        name: record.name,
        upstreamPort: port,
        domain: previews.domain,
        path: previews.path,
        listen: previews.nginx.listen,
        usersFile: previews.auth?.usersFile,
      });
    const now = this.store.get(record.repo, record.pr)!;
    const live = { ...now, live: { sha, port }, url };
    this.info('preview live', live, { url, sha });
    // A newer push came while this head started: its build is queued behind this one and needs the
    // record still building (buildAndRun's check), so this head serves meanwhile without saying live.
    if (now.head !== sha && now.state === 'building') return this.store.put(live);
    await this.setState(live, 'live', `serving ${sha.slice(0, 7)}`);
  }

  /** The app's variables: previews.env resolved, and the preview's own. Never the repo's env:. */
  private async appEnv(repo: RepoConfig, record: PreviewRecord, url: string): Promise<Record<string, string>> {
    const resolved = await resolveBuildEnv(this.options.config.doc, repo.previews!.env, this.options.env);
    const database = await this.ensureDatabase(repo, record);
    return {
      ...resolved.vars,
      ...database,
      SHIPKIT_PREVIEW: '1',
      SHIPKIT_PR: String(record.pr),
      SHIPKIT_PREVIEW_URL: url,
    };
  }

  /** With `database:`, the preview's own database, made when missing (a push keeps it): its DATABASE_URL. */
  private async ensureDatabase(repo: RepoConfig, record: PreviewRecord): Promise<Record<string, string>> {
    const wanted = repo.previews!.database;
    if (!wanted) return {};
    const server = await this.databaseServer(repo);
    const name = previewDatabaseName(repoFolderName(record.repo), record.pr);
    if ((await createPreviewDatabase(server, name, wanted.template)) === 'created')
      this.info('preview database created', record, { database: name, template: wanted.template });
    return { DATABASE_URL: previewDatabaseUrl(server.url, name) };
  }

  /** The preview's database goes with it; one that cannot be dropped now is left to the sweep. */
  private async dropDatabase(repo: RepoConfig | undefined, record: PreviewRecord): Promise<void> {
    if (!repo?.previews?.database) return;
    const name = previewDatabaseName(repoFolderName(record.repo), record.pr);
    try {
      if (await dropPreviewDatabase(await this.databaseServer(repo), name))
        this.info('preview database dropped', record, { database: name });
    } catch (error) {
      this.options.log.warn('preview database not dropped; the sweep tries again', {
        repo: record.repo,
        pr: record.pr,
        error: messageOf(error),
      });
    }
  }

  private databaseServer(repo: RepoConfig) {
    return resolvePreviewDatabaseServer(this.options.config.doc, repo.previews!, this.options.env);
  }

  /** `build REPO --preview N` as a process of its own; its log is the preview's. */
  private async runBuild(record: PreviewRecord, job: string): Promise<PreviewBuildResult> {
    const run = {
      configFile: this.options.config.doc.file,
      repo: record.repo,
      pr: record.pr,
      sha: record.head,
      url: record.cloneUrl,
      fromFork: record.fromFork,
      job,
      user: this.accountOf(record)?.name,
      env: this.options.env,
    };
    const repo = this.repoOf(record.repo);
    if (repo.previews?.buildOn !== 'workers') return runPreviewBuild(run);
    if (!this.options.workers)
      return { ok: false, error: 'previews.build_on: workers needs hook-server to run with queue:' };
    return receiveWorkerBuild(this.options.workers, run, {
      folder: previewFolder(this.options.config.data, record.repo, record.pr),
      account: this.accountOf(record),
      timeoutMs: (repo.timeout + WORKER_WAIT_S) * 1000,
      stopped: () => this.closed,
      log: this.options.log,
    });
  }

  private async withBuildSlot<T>(work: () => Promise<T>): Promise<T> {
    const limit = this.options.builds ?? 1;
    if (this.buildsRunning >= limit) await new Promise<void>((resolve) => this.buildSlots.push(resolve));
    this.buildsRunning++;
    try {
      return await work();
    } finally {
      this.buildsRunning--;
      this.buildSlots.shift()?.();
    }
  }

  /**
   * With more than `max` previews of the repo live, building or failed, those idle longest go (the
   * pushes longest ago), this one included: false when it is one of them. One repo at a time.
   */
  private makeRoom(repo: RepoConfig, pr: number): Promise<boolean> {
    const before = this.roomChains.get(repo.name) ?? Promise.resolve();
    const decided = before.then(async () => {
      const me = this.store.get(repo.name, pr);
      if (!me || me.state === 'torn down') return false;
      const max = repo.previews!.max;
      const open = this.store
        .open(repo.name)
        .filter((r) => r.pr === pr || r.state === 'live' || r.state === 'building' || r.state === 'failed')
        .sort((a, b) => a.pushed.localeCompare(b.pushed) || a.pr - b.pr);
      const why = `pushed out by max: ${max} (the preview idle longest goes first)`;
      const excess = open.slice(0, Math.max(0, open.length - max));
      for (const old of excess) if (old.pr !== pr) await this.tearDown(old.repo, old.pr, why);
      if (!excess.some((r) => r.pr === pr)) return true;
      await this.tearDown(repo.name, pr, why);
      return false;
    });
    this.roomChains.set(
      repo.name,
      decided.catch(() => undefined),
    );
    return decided;
  }

  private async failed(record: PreviewRecord, reason: string): Promise<void> {
    if (!record.live) {
      await stopPreview(previewFolder(this.options.config.data, record.repo, record.pr), { keep: ['logs'] });
    }
    await this.setState(record, 'failed', reason);
    this.options.log.warn('preview failed', { repo: record.repo, pr: record.pr, reason });
  }

  /** Process, route and folder gone; the record kept as torn down, with why. */
  private async tearDown(repoName: string, pr: number, why: string): Promise<void> {
    const record = this.store.get(repoName, pr);
    if (!record || record.state === 'torn down') return;
    const repo = this.options.config.repos.get(repoName);
    if (repo?.previews) await removeRoute({ ...repo.previews.nginx, name: record.name });
    await stopPreview(previewFolder(this.options.config.data, repoName, pr));
    for (const left of await removeLimits(limitsUnit(record))) this.options.log.warn('cgroup not removed', { left });
    await this.dropDatabase(repo, record);
    const { live: _gone, ...rest } = record;
    await this.setState(rest as PreviewRecord, 'torn down', why);
    this.info('preview torn down', record, { reason: why });
  }

  private async setState(record: PreviewRecord, state: PreviewState, reason: string): Promise<void> {
    const changed = { ...record, state, reason, since: new Date().toISOString() };
    await this.store.put(changed);
    void this.tellForge(changed);
  }

  /** The status and the one comment; failures are logged and retried there, never fatal. */
  private async tellForge(record: PreviewRecord): Promise<void> {
    const target = forgeTargetOf(this.options.reports ?? new Map(), record.repo);
    if (!target) return;
    const state = record.state === 'live' ? 'success' : record.state === 'failed' ? 'failure' : 'pending';
    const logUrl = previewLogUrl(this.options.config.publicUrl, record.repo, record.pr);
    const told = await tellForge(
      target,
      {
        repo: record.repo,
        pr: record.pr,
        sha: record.head,
        state,
        description: record.reason ?? record.state,
        targetUrl: record.state === 'live' ? record.url : record.state === 'failed' ? logUrl : undefined,
        comment: previewComment(record, { logUrl }),
      },
      { commentId: record.commentId, log: this.options.log },
    );
    for (const error of told.errors) this.options.log.warn('forge not told', { repo: record.repo, error });
    const now = this.store.get(record.repo, record.pr);
    if (told.commentId && now && now.commentId !== told.commentId)
      await this.store.put({ ...now, commentId: told.commentId });
  }

  /**
   * What no open preview owns goes: nginx files, folders (with any launchfit in them). A preview
   * whose build was cut short (hook-server killed) is built again; one idle past `ttl` goes.
   */
  private async sweep(): Promise<void> {
    if (this.closed) return;
    const now = Date.now();
    for (const record of this.store.open()) {
      const repo = this.options.config.repos.get(record.repo);
      if (!repo?.previews) {
        await this.queue(record, () => this.tearDown(record.repo, record.pr, 'its repo has no previews: any more'));
        continue;
      }
      if (now - Date.parse(record.pushed) > repo.previews.ttlMs) {
        await this.queue(record, () => this.tearDown(record.repo, record.pr, 'idle past ttl'));
        continue;
      }
      const folder = previewFolder(this.options.config.data, record.repo, record.pr);
      if (record.state === 'building' && !this.chains.has(recordKey(record.repo, record.pr)))
        void this.queue(record, () => this.buildAndRun(record.repo, record.pr, record.head));
      else if (record.state === 'live' && !(await runningLaunchfit(folder)))
        await this.decide(record, repo); // its launchfit is gone: run it again
      else if (record.state === 'live') await this.checkMemory(record, repo);
    }
    await this.sweepRoutes();
    await this.sweepFolders();
    await this.sweepDatabases();
  }

  /** A preview the kernel killed for its memory since the last look is failed, and says so. */
  private async checkMemory(record: PreviewRecord, repo: RepoConfig): Promise<void> {
    const limit = repo.previews?.limits.memoryBytes;
    if (!limit) return;
    const kills = await oomKills({ dirs: limitsDirsOf(limitsUnit(record)) });
    if (kills <= (record.oomKills ?? 0)) return;
    const reason = `killed over its memory limit (${Math.round(limit / 2 ** 20)} MB), ${kills} time(s); raise limits.memory or fix the app`;
    await this.setState({ ...record, oomKills: kills }, 'failed', reason);
  }

  private async sweepRoutes(): Promise<void> {
    const byDir = new Map<string, { repo: RepoConfig; owners: Set<string> }>();
    for (const repo of this.options.config.repos.values()) {
      if (!repo.previews) continue;
      const entry = byDir.get(repo.previews.nginx.dir) ?? { repo, owners: new Set<string>() };
      // A first launch writes its route before it is marked live: a change in flight owns it too.
      for (const r of this.store.open(repo.name))
        if (r.live || this.chains.has(recordKey(r.repo, r.pr))) entry.owners.add(r.name);
      byDir.set(repo.previews.nginx.dir, entry);
    }
    for (const [dir, { repo, owners }] of byDir)
      for (const name of await listRoutes(dir))
        if (!owners.has(name)) {
          this.options.log.info('preview route removed: no open preview owns it', { dir, name });
          await removeRoute({ ...repo.previews!.nginx, name });
        }
  }

  private async sweepFolders(): Promise<void> {
    const root = previewsFolder(this.options.config.data);
    const owned = new Set(this.store.open().map((r) => previewFolder(this.options.config.data, r.repo, r.pr)));
    for (const slug of await readdir(root, { withFileTypes: true }).catch(() => [])) {
      if (!slug.isDirectory() || slug.name === 'key') continue;
      for (const entry of await readdir(path.join(root, slug.name)).catch(() => [])) {
        const folder = path.join(root, slug.name, entry);
        if (!/^pr-[1-9][0-9]{0,8}$/.test(entry) || owned.has(folder)) continue;
        const busy = [...this.chains.keys()].some((k) => folder === this.folderOfKey(k));
        if (busy) continue;
        this.options.log.info('preview folder removed: no open preview owns it', { folder });
        await stopPreview(folder);
      }
    }
  }

  /** Each repo's preview databases that no open preview owns; a server out of reach is told, not fatal. */
  private async sweepDatabases(): Promise<void> {
    // With queue:, a node hands its previews to the leading one by marking them torn down here
    // (shared-runner.ts): their databases are the leader's now, and only a teardown drops one.
    if (this.options.config.queue !== undefined) return;
    for (const repo of this.options.config.repos.values()) {
      if (!repo.previews?.database) continue;
      try {
        const server = await this.databaseServer(repo);
        for (const database of await listPreviewDatabases(server)) {
          const pr = prOfPreviewDatabase(repoFolderName(repo.name), database);
          // Read after the list: a record is stored before its database is made.
          const owner = pr === undefined ? undefined : this.store.get(repo.name, pr);
          if (pr === undefined || (owner && owner.state !== 'torn down') || this.chains.has(recordKey(repo.name, pr)))
            continue;
          this.options.log.info('preview database dropped: no open preview owns it', { repo: repo.name, database });
          await dropPreviewDatabase(server, database);
        }
      } catch (error) {
        this.options.log.warn('preview databases not swept', { repo: repo.name, error: messageOf(error) });
      }
    }
  }

  private folderOfKey(key: string): string {
    const at = key.lastIndexOf('#');
    return previewFolder(this.options.config.data, key.slice(0, at), Number(key.slice(at + 1)));
  }

  private info(message: string, record: PreviewRecord, fields: Record<string, unknown>): void {
    this.options.log.info(message, { repo: record.repo, pr: record.pr, ...fields });
  }

  private warn(message: string, error: unknown): void {
    this.options.log.warn(message, { error: messageOf(error) });
    if (!(error instanceof WorkError) && !(error instanceof ValidationError) && error instanceof Error)
      this.options.log.warn(error.stack ?? '');
  }
}

/** The end of a build log `GET /previews/log` shows. */
const LOG_TAIL_BYTES = 256 * 1024;

/** `GET /previews/log?repo=R&pr=N` under public_url (none without it: the forge needs an address it can link to). */
export function previewLogUrl(publicUrl: string | undefined, repo: string, pr: number): string | undefined {
  if (!publicUrl) return undefined;
  const url = new URL('previews/log', publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`);
  url.searchParams.set('repo', repo);
  url.searchParams.set('pr', String(pr));
  return url.href;
}

/** The name of a preview's cgroups (or systemd scope): its repo's folder name and pr-N. */
const limitsUnit = (record: Pick<PreviewRecord, 'repo' | 'name'>) => `${repoFolderName(record.repo)}-${record.name}`;

/** pr-N.DOMAIN (http, or https when nginx listens on 443), or PUBLIC_URL's origin + /PATH/pr-N/. */
export function previewUrl(config: ShipkitConfig, previews: NonNullable<RepoConfig['previews']>, name: string): string {
  if (previews.domain) {
    const port = previews.nginx.listen.split(':').pop()!;
    const scheme = port === '443' ? 'https' : 'http';
    const shown = port === '80' || port === '443' ? '' : `:${port}`;
    return `${scheme}://${name}.${previews.domain}${shown}/`;
  }
  const origin = config.publicUrl ? new URL(config.publicUrl).origin : '';
  return `${origin}${previews.path}${name}/`;
}
