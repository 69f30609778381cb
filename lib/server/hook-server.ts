// hook-server's wiring: the data folder and its lock, the journal and the queue, the runner, the
// reporters, the routes, the HTTP server, and stopping them in order. A delivery's way from its
// headers to its job is lib/server/delivery.ts (what it means: lib/server/webhooks.ts); the queue
// is lib/jobs/ (LocalJobQueue behind the JobQueue seam), running a job lib/jobs/process/runner.ts;
// the read side (JSON API, /metrics, badges, status page) lib/web/read-routes.ts.
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { resolveSecret } from '../core/secrets.ts';
import { ConfigError, messageOf } from '../core/errors.ts';
import { ensureDir } from '../core/fs.ts';
import { acquireLock, type Lock } from '../core/lock.ts';
import { FollowedSecretFile } from '../core/secrets.ts';
import type { ListedSecret, SecretRef } from '../config/webhook-secret.ts';
import { requestIdOf } from '../http/request-id.ts';
import { sendJson, startHttpServer, type ListenAddress, type RunningServer } from '../http/server.ts';
import { readJobSection } from '../jobs/job-log.ts';
import { JOB_ID_PATTERN } from '../jobs/job-id.ts';
import { openJournal, type Journal } from '../jobs/local/journal.ts';
import { type Job } from '../jobs/job.ts';
import { createPushGuard } from './push-guard.ts';
import { adoptPushFiles, createSharedPushGuard } from './push-guard-db.ts';
import type { JobQueue, JobRunner } from '../jobs/job-queue.ts';
import { createJobQueue } from '../jobs/local/queue.ts';
import { PgJobQueue } from '../jobs/pg/queue.ts';
import { shareEndedSessions, type SharedEndedSessions } from '../web/ended-sessions-db.ts';
import { type Queryable } from '../db/connect.ts';
import { resolveQueue } from '../db/primary.ts';
import { removeJobFiles } from '../jobs/local/recovery.ts';
import { killOrphanGroup, processRunnerFor } from '../jobs/process/runner.ts';
import { clonesWithCredentials } from '../jobs/process/user-dirs.ts';
import { upToDateCheckFor } from '../pipeline/up-to-date.ts';
import { endProcessGroup } from '../core/process-group.ts';
import type { Logger } from '../core/log.ts';
import { hookServerLockFile, repoPaths, type ShipkitConfig } from '../config/shipkit-yml.ts';
import { resolveNotifyTargets, type ResolvedTarget } from '../config/notify.ts';
import { explainUnsetVariable } from '../config/env-file.ts';
import { createNotifier, type Notifier } from '../notify/notifier.ts';
import { createDeliveryOutcomes, type DeliveryOutcomes } from '../notify/outcomes.ts';
import { resolveReports, type ResolvedReport } from '../config/report.ts';
import { createStatusReporter, type StatusReporter } from '../notify/status-reporter.ts';
import { tagCommit } from './tag-commit.ts';
import { createHookMetrics, type HookMetrics } from '../web/hook-metrics.ts';
import { createReadRoutes, type ReadRoutes } from '../web/read-routes.ts';
import { PreviewRunner } from '../previews/runner.ts';
import { SharedPreviews } from '../previews/shared-runner.ts';
import type { WorkerBuilds } from '../previews/remote-build.ts';
import { createPreviewRoutes, type PreviewRoutes } from '../web/previews-routes.ts';
import type { LogSource } from '../web/read-sources.ts';
import { createLogFollow } from '../web/log-follow.ts';
import { countedForge, DeliveryIntake, FORGE_PATHS, refuserFor, type Secrets } from './delivery.ts';
import { createAdmitter, type Admit } from './admit.ts';
import { startDeliveryWorkers, workerCount, type DeliveryWorkers } from './workers.ts';
import { takePeerHeader } from '../http/peer.ts';
import { basePath } from '../jobs/job-url.ts';
import { FleetRoutes } from './fleet-routes.ts';
import { openFleet, type Fleet } from './fleet-registry.ts';
import { AuditTrail } from '../audit/trail.ts';
import { environmentsSource } from './environments-view.ts';
import { approveOnPage } from './page-approval.ts';
import { openUiUsers } from '../web/ui-users.ts';

export const MAX_BODY = 25 * 1024 * 1024;
const BODY_TIMEOUT_MS = 30_000;

export type { Secrets };

export interface HookServerOptions {
  config: ShipkitConfig;
  listen: ListenAddress;
  secrets: Secrets;
  token?: string;
  /** `token: file:PATH`, resolved: followed while hook-server runs (`--end-sessions --new-token` rewrites it). */
  tokenFile?: string;
  /** Resolved notification targets: each repo's own list by name, the top level's under `''`. */
  notify?: Map<string, ResolvedTarget[]>;
  /** Resolved commit-status settings of each reporting repo, by name. */
  report?: Map<string, ResolvedReport>;
  log: Logger;
  maxBody?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** How long SIGTERM waits for running jobs before interrupting them. */
  graceMs?: number;
  /**
   * On SIGTERM, how long it goes on answering while /healthz says 503, so that a load balancer
   * sends new deliveries elsewhere before it closes (default 0).
   */
  drainMs?: number;
  /** This hook-server's name among several on one database (default: the host name). */
  name?: string;
  /** Timeout and retries of commit statuses and notifications (default 10 s, 4 attempts, 2 s doubling). */
  delivery?: { timeoutMs?: number; attempts?: number; backoffMs?: number };
  /** Replaces the child-process runner (tests). */
  runner?: JobRunner;
  commands?: { build: string[]; release: string[] };
  env?: NodeJS.ProcessEnv;
}

export interface HookServer {
  url: string;
  queue: JobQueue;
  journal: Journal;
  http: RunningServer;
  metrics: HookMetrics;
  /** What became of the commit statuses and notifications sent about each job (the job page shows them). */
  deliveries: DeliveryOutcomes;
  /** Stop accepting, let running jobs finish (bounded by graceMs), close the journal. */
  stop(): Promise<void>;
}

/** Resolve the webhook secrets, token, notification URLs and report tokens of a config; a repo without any secret is a config error. */
export async function resolveServerSecrets(
  config: ShipkitConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{
  secrets: Secrets;
  token?: string;
  notify: Map<string, ResolvedTarget[]>;
  report: Map<string, ResolvedReport>;
}> {
  const baseDir = path.dirname(config.file);
  // An unset env: variable that the Debian package's hook-server.env sets: said where it is (lib/config/env-file.ts).
  const resolve = (value: string, where: string) =>
    resolveSecret(value, { env, baseDir, where }).catch((error: unknown) => {
      throw explainUnsetVariable(error, value, config.file, env);
    });
  const resolveList = (list: SecretRef[], where: string) =>
    Promise.all(list.map(async ({ ref, until }) => ({ value: await resolve(ref, where), until })));
  const fallback = config.secret ? await resolveList(config.secret, `${config.file}: secret`) : undefined;
  const repos = new Map<string, ListedSecret[]>();
  for (const repo of config.repos.values()) {
    if (repo.secret) repos.set(repo.name, await resolveList(repo.secret, `${config.file}: repos.${repo.name}.secret`));
    else if (!fallback)
      throw new ConfigError(
        `${config.doc.locate(repo.keyPath)}: repos.${repo.name}: no webhook secret; set secret: at the ` +
          `top level or for this repo (env:NAME or file:PATH).`,
      );
  }
  const token = config.token ? await resolve(config.token, `${config.file}: token`) : undefined;
  const lists = new Map([
    ['', config.notify],
    ...[...config.repos.values()].filter((r) => r.notify).map((r) => [r.name, r.notify!] as const),
  ]);
  const notify = await resolveNotifyTargets(lists, { file: config.file, env });
  const report = await resolveReports(config.doc, config.repos.values(), env);
  return { secrets: { fallback, repos }, token, notify, report };
}

export async function startHookServer(options: HookServerOptions): Promise<HookServer> {
  const { config, log } = options;
  const dirs = await prepareDataFolder(config, log);
  const stores = await openStores(options, dirs);
  const { lock, journal, fleet, metrics, out, queue, audit, shared } = stores;
  const previews = await openPreviews(options, stores.shared);
  const { follow, readRoutes, previewRoutes, fleetRoutes, closeSessions } = createReadSide(
    options,
    dirs,
    stores,
    previews,
  );
  const { admit, intake } = await openIntake(options, dirs, stores, previews);
  const node = { name: options.name ?? hostname(), draining: false };
  const handle = router({ log, queue, metrics, readRoutes, previewRoutes, intake, fleetRoutes, node });
  const { http, workers } = await listenOrFork(options, dirs, handle, { admit, metrics, queue, previews });
  queue.resume();
  audit.keepPruned();
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // Draining: /healthz answers 503 and the lead goes to another node; deliveries that still
      // come are taken (a forge need not retry them) until the listener closes.
      node.draining = true;
      await queue.handOver?.();
      if (options.drainMs) await new Promise((resolve) => setTimeout(resolve, options.drainMs));
      // Workers first: what they admit while they finish is queued here.
      await workers?.stop(2_000);
      follow.close();
      closeSessions();
      await previews?.close();
      const closed = http.close(2_000);
      // A registry in the database stops reading before the queue ends the pool it reads through.
      if (shared) await fleet?.close();
      await queue.stop({
        graceMs: options.graceMs ?? 60_000,
        killGroup: (job) => endProcessGroup(job.pgid, { graceMs: 2_000 }).then(() => undefined),
      });
      await Promise.all([out.notifier.stop(), out.statuses.stop()]);
      await closed;
      await Promise.all([journal.close(), shared ? undefined : fleet?.close(), audit.close()]);
      await lock.release();
    })());
  return { url: workers?.url ?? http.url, queue, journal, http, metrics, deliveries: out.deliveries, stop };
}

/**
 * With one worker (`workers:` absent or 1), this process listens on the address and serves it
 * all. With more, they take the address (lib/server/workers.ts) and this process serves what
 * they pass on over a private socket in DATA/tmp, trusting the client address they name there.
 */
async function listenOrFork(
  options: HookServerOptions,
  dirs: DataDirs,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  { admit, metrics, queue, previews }: { admit: Admit; metrics: HookMetrics; queue: JobQueue; previews?: Previews },
): Promise<{ http: RunningServer; workers?: DeliveryWorkers }> {
  const { config, log } = options;
  const count = workerCount(config.workers);
  if (config.workers !== 1 && count === 1 && 'Deno' in globalThis)
    log.info('workers: one process under Deno (it has no node:cluster)');
  if (count === 1) return { http: await listen(options, handle) };
  const socket = await privateSocketPath(dirs.tmp);
  const http = await listen(
    options,
    (req, res) => {
      takePeerHeader(req);
      return handle(req, res);
    },
    socket,
  );
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
  try {
    const workers = await startDeliveryWorkers({
      count,
      admit,
      countDelivery: metrics.countDelivery,
      countOldSecret: metrics.countOldSecret,
      log,
      init: {
        config: {
          file: config.file,
          repos: new Map(
            [...config.repos].map(([k, r]) => [k, { name: r.name, branch: r.branch, previews: r.previews && {} }]),
          ),
        },
        secrets: options.secrets,
        keepsBody: Boolean(config.queue),
        listen: options.listen,
        primary: socket,
        maxBody: options.maxBody ?? MAX_BODY,
        bodyTimeoutMs,
        headersTimeoutMs,
        requestTimeoutMs: headersTimeoutMs + bodyTimeoutMs + 5_000,
        idleTimeoutMs: options.idleTimeoutMs ?? 5_000,
        tmpDir: dirs.tmp,
        previews: previews !== undefined,
      },
      previews: previews && ((event) => previews.handle(event)),
    });
    return { http, workers };
  } catch (error) {
    await http.close(0);
    throw error;
  }
}

/** The database of `queue:`, which every hook-server of it shares, and whether this node leads. */
interface SharedDatabase {
  db: Queryable;
  /** pg-boss on it: preview builds sent to workers. */
  boss: WorkerBuilds['boss'];
  leads(): boolean;
  stillLeads(): Promise<boolean>;
}

interface Stores {
  lock: Lock;
  journal: Journal;
  fleet: Fleet | undefined;
  metrics: HookMetrics;
  out: Reporters;
  queue: JobQueue;
  /** With `queue:`, the database every node of it shares; the stores kept there are opened on it. */
  shared: SharedDatabase | undefined;
  /** The control plane's actions (lib/audit/): DATA/audit/audit.jsonl, or the database's table with `queue:`. */
  audit: AuditTrail;
}

/** What hook-server tells the world about jobs: delivery outcomes, notifications, commit statuses. */
interface Reporters {
  deliveries: DeliveryOutcomes;
  notifier: Notifier;
  statuses: StatusReporter;
  /** Settles once the end's statuses and notifications are sent or given up. */
  onEnd(job: Job): Promise<void>;
}

/** The push guard, the admission of a verified delivery into the queue, and the intake in front of it. */
async function openIntake(
  options: HookServerOptions,
  dirs: DataDirs,
  { queue, metrics, shared }: Stores,
  previews?: Previews,
): Promise<{ admit: Admit; intake: DeliveryIntake }> {
  const { config, log } = options;
  const workDir = (name: string) => repoPaths(config, name).work;
  // With `queue:` every node judges a replayed push against what any node accepted (docs/ha.md).
  if (shared) await adoptPushFiles(shared.db, dirs.data, [...config.repos.keys()], log);
  const guard = shared
    ? createSharedPushGuard({ db: shared.db, workDir, env: options.env })
    : createPushGuard({ dataDir: dirs.data, workDir, env: options.env });
  await queue.recover((job) => killOrphanGroup(job, dirs.jobs).then(() => undefined));
  const admit = createAdmitter({ config, queue, guard, log });
  const intake = new DeliveryIntake({
    config,
    secrets: options.secrets,
    admit,
    keepsBody: shared !== undefined,
    log,
    tmpDir: dirs.tmp,
    maxBody: options.maxBody ?? MAX_BODY,
    bodyTimeoutMs: options.bodyTimeoutMs ?? BODY_TIMEOUT_MS,
    onOldSecret: metrics.countOldSecret,
    previews: previews && ((event) => previews.handle(event)),
  });
  return { admit, intake };
}

/** This machine's preview runner, or with `queue:` the previews the leading node runs. */
type Previews = PreviewRunner | SharedPreviews;

/**
 * The preview runner, when a repo has `previews:` (docs/previews.md); its sweep runs before the
 * first delivery. With `queue:`, the runner runs on the node that leads only (lib/previews/shared-runner.ts).
 */
async function openPreviews(options: HookServerOptions, shared?: SharedDatabase): Promise<Previews | undefined> {
  const { config, log } = options;
  if (![...config.repos.values()].some((r) => r.previews)) return undefined;
  const newRunner = () =>
    new PreviewRunner({
      config,
      log: log.child({ part: 'previews' }),
      env: options.env,
      reports: options.report,
      // Tests look sooner than every minute.
      sweepMs: Number((options.env ?? process.env).SHIPKIT_PREVIEWS_SWEEP_MS) || undefined,
      workers: shared && { boss: shared.boss, db: shared.db },
    });
  if (shared) {
    const previews = new SharedPreviews({
      ...shared,
      node: options.name ?? hostname(),
      data: config.data,
      newRunner,
      log: log.child({ part: 'previews' }),
    });
    previews.start();
    return previews;
  }
  const runner = newRunner();
  await runner.start();
  return runner;
}

/** The data folder's lock, the job journal, the fleet store and the queue; what opened is closed again if a later one fails. */
async function openStores(options: HookServerOptions, dirs: DataDirs): Promise<Stores> {
  const { config, log } = options;
  // One hook-server per data folder: two would interleave one journal. A holder that died
  // (kill -9, power cut) leaves a stale lock, which is taken over.
  const lock = await acquireLock(hookServerLockFile(dirs.data), {
    what: `The data folder ${dirs.data} (another hook-server uses it)`,
  });
  // Gauges are read at scrape time, once the queue below exists (the server listens after it).
  const metrics = createHookMetrics({ counts: () => queue.counts(), fleetHosts: () => fleet?.tally() ?? [] });
  const journal = await openJobJournal(dirs, metrics, log).catch(async (error) => {
    await lock.release();
    throw error;
  });
  // A push that changes nothing a build would see ends without a process (docs/hook-server.md).
  const runner = options.runner ?? (await processRunnerFor(config, { ...options, upToDate: upToDateCheckFor(config) }));
  // With `queue:`, each message is sent only while this node still leads (asked of the database).
  const stillLeads = () => shared?.stillLeads() ?? Promise.resolve(true);
  const out = createReporters(options, metrics, () => queue.all?.() ?? journal.jobs.values(), stillLeads);
  const { queue, shared } = await openQueue(options, { journal, run: runner, jobsDir: dirs.jobs, out }).catch(
    async (error) => {
      await journal.close();
      await lock.release();
      throw error;
    },
  );
  const closeAll = async (error: unknown, opened?: Fleet): Promise<never> => {
    await queue.stop({ graceMs: 0, killGroup: async () => {} });
    await Promise.all([journal.close(), opened?.close()]);
    await lock.release();
    throw error;
  };
  // With `queue:` the fleet registry is the database's, shared by every hook-server of it.
  const fleet = await openFleet(options, dirs.data, log, shared).catch((error) => closeAll(error));
  const node = options.name ?? hostname();
  const audit = await AuditTrail.open(config, `${node} (audit)`, { log, node, env: options.env }).catch((error) =>
    closeAll(error, fleet),
  );
  return { lock, journal, fleet, metrics, out, queue, shared, audit };
}

/** What answers reads: the status pages and API, live log follows, and the fleet's routes. */
function createReadSide(options: HookServerOptions, dirs: DataDirs, stores: Stores, previews?: Previews) {
  const { config, log } = options;
  const { journal, fleet, metrics, out, queue, audit } = stores;
  const db = stores.shared?.db;
  const follow = createLogFollow({
    jobsDir: dirs.jobs,
    log,
    logsDirOf: (repo) => repoPaths(config, repo).logs,
    jobOf: (id) => queue.get(id),
    readSection: (job) => readJobSection(repoPaths(config, job.repo).logs, dirs.jobs, job.id),
  });
  let shared: SharedEndedSessions | undefined;
  const followed =
    options.token && options.tokenFile ? new FollowedSecretFile(options.tokenFile, options.token) : undefined;
  const environments = config.apps.size
    ? environmentsSource({ apps: config.apps, log: log.child({ part: 'environments' }) })
    : undefined;
  const users = config.uiUsers ? openUiUsers(config.uiUsers, { log }) : undefined;
  const readRoutes = createReadRoutes({
    ui: config.ui,
    get token() {
      return followed ? followed.current() : options.token;
    },
    publicUrl: config.publicUrl,
    configFile: config.file,
    dataDir: dirs.data,
    log,
    jobs: () => queue.all?.() ?? journal.jobs.values(),
    list: (o) => queue.list(o),
    get: (id) => queue.get(id),
    isJobId: (id) => JOB_ID_PATTERN.test(id),
    readLog: (job) => jobLog(config, dirs.jobs, job),
    branchOf: (name) => config.repos.get(name)?.branch,
    isPrivate: privateRepos(config),
    repos: () => [...config.repos.keys()],
    renderMetrics: () => metrics.render(),
    deliveries: out.deliveries,
    followLog: (req, res, job) => follow.handle(req, res, job),
    fleet: fleet?.views,
    audit,
    releases: fleet && ((app, page) => (fleet.secrets.has(app) ? fleet.releases(app, page) : undefined)),
    shareEnded: db && ((local) => (shared = shareEndedSessions(local, db, { log }))),
    previews: previews && (() => previews.list()),
    environments: environments && (() => environments.read()),
    users,
    approve: users && ((request) => approveOnPage(request, { config, log: log.child({ part: 'approvals' }) })),
  });
  const previewRoutes = createPreviewRoutes({
    control: previews,
    get token() {
      return followed ? followed.current() : options.token;
    },
    canRead: readRoutes.canRead,
  });
  const fleetRoutes =
    fleet &&
    new FleetRoutes({
      ...fleet,
      base: basePath(config.publicUrl),
      log,
      canRead: readRoutes.canRead,
      onReport: metrics.countFleetReport,
      onRefused: metrics.countFleetRefusal,
      record: (entry) => audit.record(entry),
    });
  return { follow, readRoutes, previewRoutes, fleetRoutes, closeSessions: () => shared?.close() };
}

interface DataDirs {
  data: string;
  jobs: string;
  tmp: string;
}

/** DATA, DATA/jobs, DATA/tmp and DATA/journal, opened to build users when a repo has one. */
async function prepareDataFolder(config: ShipkitConfig, log: Logger): Promise<DataDirs> {
  const dirs = { data: config.data, jobs: path.join(config.data, 'jobs'), tmp: path.join(config.data, 'tmp') };
  await ensureDir(dirs.data, 0o755);
  await Promise.all([
    ensureDir(dirs.jobs, 0o755),
    ensureDir(dirs.tmp, 0o700),
    ensureDir(path.join(dirs.data, 'journal'), 0o755),
  ]);
  // Builds that run as other users must be able to reach their folders under DATA.
  if ([...config.repos.values()].some((r) => r.user)) {
    await Promise.all(
      [dirs.data, dirs.jobs].map((d) =>
        chmod(d, 0o755).catch((error: NodeJS.ErrnoException) =>
          log.warn(
            `could not open ${d} to build users (chmod 755: ${error.code ?? error.message}); their builds may fail to start`,
          ),
        ),
      ),
    );
  }
  return dirs;
}

async function openJobJournal(dirs: DataDirs, metrics: HookMetrics, log: Logger): Promise<Journal> {
  // Bodies spooled by a process that died mid-request: nothing reads them again (up to 25 MB each).
  await Promise.all(
    (await readdir(dirs.tmp)).map((name) => rm(path.join(dirs.tmp, name), { recursive: true, force: true })),
  );
  const journal = await openJournal(dirs.data, {
    onPrune: (ids) => void removeJobFiles(dirs.jobs, ids),
    onCompactError: (error) =>
      log.warn('could not compact the journal; it stays long and is tried again later', { error: error.message }),
    onSync: metrics.observeFsync,
  });
  if (journal.damaged) log.warn('journal had damaged records; they were dropped', { damaged: journal.damaged });
  return journal;
}

/**
 * A repo cloned with a token or deploy key: its first clone needs them (only `build` gives git
 * them), and its badge tells strangers nothing (lib/web/read-routes.ts).
 */
function privateRepos(config: ShipkitConfig): (name: string) => boolean {
  return (name) => clonesWithCredentials(config.repos.get(name));
}

/** The local journal's queue, or with `queue:` the PostgreSQL one (lib/jobs/pg/queue.ts, docs/workers.md). */
async function openQueue(
  options: HookServerOptions,
  { journal, run, jobsDir, out }: { journal: Journal; run: JobRunner; jobsDir: string; out: Reporters },
): Promise<{ queue: JobQueue; shared?: SharedDatabase }> {
  const { config, log } = options;
  const listeners = { onEnd: out.onEnd, onStart: out.statuses.jobStarted };
  if (!config.queue)
    return { queue: createJobQueue({ journal, concurrency: config.concurrency, run, log, jobsDir, ...listeners }) };
  const db = await resolveQueue(config.queue, {
    log,
    env: options.env ?? process.env,
    baseDir: path.dirname(config.file),
    where: `${config.file}: queue`,
  });
  const queue = await PgJobQueue.open({
    db,
    repos: [...config.repos.keys()],
    concurrency: config.concurrency,
    run,
    log,
    ...listeners,
    jobsDir,
    node: options.name ?? hostname(),
    history: { source: `${hostname()}:${journal.file}`, jobs: journal.jobs.values() },
    workerName: `${hostname()} (hook-server)`,
  });
  log.info(`jobs are kept in the queue database at ${db.where}`, {
    builds: config.concurrency > 0 ? `${config.concurrency} at once here, and on workers` : 'on workers only',
  });
  return {
    queue,
    shared: {
      db: queue.database,
      boss: queue.boss,
      leads: () => queue.leads(),
      stillLeads: () => queue.stillLeads(),
    },
  };
}

/** Commit statuses and notifications: sent in the background, never awaited by the queue. */
function createReporters(
  options: HookServerOptions,
  metrics: HookMetrics,
  history: () => Iterable<Job>,
  stillLeads: () => Promise<boolean>,
): Reporters {
  const { config, log } = options;
  const deliveries = createDeliveryOutcomes();
  const timing = options.delivery ?? {};
  const notifier = createNotifier({
    targets: options.notify ?? new Map(),
    log,
    publicUrl: config.publicUrl,
    onOutcome: metrics.countNotification,
    outcomes: deliveries,
    stillLeads,
    ...timing,
  });
  const statuses = createStatusReporter({
    reports: options.report ?? new Map(),
    log,
    publicUrl: config.publicUrl,
    onOutcome: metrics.countCommitStatus,
    outcomes: deliveries,
    timeoutMs: timing.timeoutMs,
    retry: { attempts: timing.attempts, backoffMs: timing.backoffMs },
    stillLeads,
    // A release's tag, looked up in its clone; not in a build user's clone (git run by us there would take that user's config).
    commitOf: async (job) =>
      job.tag && !config.repos.get(job.repo)?.user ? tagCommit(repoPaths(config, job.repo).work, job.tag) : undefined,
  });
  const onEnd = (job: Job) => {
    metrics.countJobEnd(job);
    return Promise.all([statuses.jobEnded(job), notifier.jobEnded(job, history())]).then(() => undefined);
  };
  return { deliveries, notifier, statuses, onEnd };
}

interface Routes {
  log: Logger;
  queue: JobQueue;
  metrics: HookMetrics;
  readRoutes: ReadRoutes;
  previewRoutes: PreviewRoutes;
  intake: DeliveryIntake;
  fleetRoutes?: FleetRoutes;
  /** This node's name, and whether it drains (SIGTERM). */
  node: { name: string; draining: boolean };
}

/** `/healthz`, the read side (lib/web/), and the forges' paths (lib/server/delivery.ts); 404 for the rest. */
function router({ log, queue, metrics, readRoutes, previewRoutes, intake, fleetRoutes, node }: Routes) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = requestIdOf(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname;
    const refuse = refuserFor(log, req, res, requestId, route);
    if (route === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return refuse(405, 'method not allowed', undefined, { Allow: 'GET, HEAD' });
      return healthz(res, queue, node);
    }
    // Other nodes' queued and superseded jobs are read when a page or the API asks (pg/mirror.ts);
    // the hosts' fleet routes read none.
    if ((req.method === 'GET' || req.method === 'HEAD') && !route.startsWith('/fleet/')) await settled(queue, log);
    if (await readRoutes.handle(req, res, url, refuse)) return;
    if (await previewRoutes.handle(req, res, url, refuse)) return;
    if (fleetRoutes && (await fleetRoutes.handle(req, res, url, refuse))) return;
    const target = FORGE_PATHS.get(route);
    if (!target) return refuse(404, 'not found');
    res.once('close', () => metrics.countDelivery(countedForge(req, target), res.statusCode));
    return intake.handleDelivery(req, res, target, requestId, refuse);
  };
}

/** The queue's copy brought up to date; with the database away, the page shows what it knew. */
async function settled(queue: JobQueue, log: Logger): Promise<void> {
  try {
    await queue.settle?.();
  } catch (error) {
    log.warn(`could not read the latest job changes; answering from what this node knew: ${messageOf(error)}`);
  }
}

/**
 * For a load balancer: 200 while this node takes deliveries; 503 with Retry-After while it drains
 * or cannot reach the queue database. Without `queue:` the node is alone and leads itself.
 */
async function healthz(res: ServerResponse, queue: JobQueue, node: Routes['node']): Promise<void> {
  const { leader, db } = queue.health ? await queue.health() : { leader: !node.draining, db: 'none' };
  const ok = !node.draining && (db === 'ok' || db === 'none');
  const body = {
    ok,
    node: node.name,
    leader,
    db: db.startsWith('unreachable') ? 'unreachable' : db,
    ...(node.draining ? { draining: true } : {}),
    ...queue.counts(),
  };
  sendJson(res, ok ? 200 : 503, body, ok ? {} : { 'Retry-After': '5' });
}

/**
 * DATA/tmp/primary.sock, left over from a process killed before, removed; where that path is too
 * long for a Unix socket (108 bytes with its NUL), a new 0700 folder in the system's temp folder.
 */
async function privateSocketPath(tmp: string): Promise<string> {
  let socket = path.join(tmp, 'primary.sock');
  if (Buffer.byteLength(socket) > 100)
    socket = path.join(await mkdtemp(path.join(tmpdir(), 'shipkit-')), 'primary.sock');
  await rm(socket, { force: true });
  return socket;
}

function listen(
  options: HookServerOptions,
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  socketPath?: string,
): Promise<RunningServer> {
  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  return startHttpServer(handle, {
    host: options.listen.host,
    port: options.listen.port,
    path: socketPath,
    headersTimeoutMs,
    // Node's own whole-request cap sits behind our body timeout, which answers 408 first.
    requestTimeoutMs: headersTimeoutMs + (options.bodyTimeoutMs ?? BODY_TIMEOUT_MS) + 5_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 5_000,
  }).then((http) => {
    http.server.maxRequestsPerSocket = 1000;
    return http;
  });
}

/** The build's own section (DATA/logs/REPO/logs.txt, or the copy a worker sent), else what the process printed. */
async function jobLog(config: ShipkitConfig, jobsDir: string, job: Job): Promise<LogSource | undefined> {
  const section = await readJobSection(repoPaths(config, job.repo).logs, jobsDir, job.id);
  if (section !== undefined) return { text: section };
  const file = path.join(jobsDir, job.id, 'output.log');
  try {
    return { file, size: (await stat(file)).size };
  } catch {
    return undefined;
  }
}
