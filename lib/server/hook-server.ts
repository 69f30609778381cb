// The HTTP edge of hook-server: routes, body cap and timeouts, signature check before parsing,
// fixed short answers with a request id (details go to the log), and the wiring of the parts.
// What a delivery means lives in lib/server/webhooks.ts, the queue in lib/jobs/job-queue.ts, running a job in
// lib/jobs/job-process.ts; the read side (JSON API, /metrics, badges, status page) in lib/web/read-routes.ts.
import { execFile } from 'node:child_process';
import { chmod, readdir, readFile, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { $ } from 'zx';
import { resolveSecret } from '../core/secrets.ts';
import { ConfigError, ValidationError } from '../core/errors.ts';
import { ensureDir, pathExists } from '../core/fs.ts';
import { acquireLock } from '../core/lock.ts';
import { requestIdOf } from '../http/request-id.ts';
import { HttpError, receiveBody, sendJson, startHttpServer, stopReading, type ListenAddress, type ReceivedBody, type RunningServer } from '../http/server.ts';
import { readJobLog } from '../jobs/job-log.ts';
import { JOB_ID_PATTERN } from '../jobs/job-id.ts';
import { openJournal, type Job, type Journal } from '../jobs/journal.ts';
import { createPushGuard } from './push-guard.ts';
import type { JobQueue, JobRunner } from '../jobs/job-queue.ts';
import { createJobQueue } from '../jobs/local-queue.ts';
import { removeJobFiles } from '../jobs/job-recovery.ts';
import { createProcessRunner, killOrphanGroup } from '../jobs/job-process.ts';
import { scriptCommandFor } from '../core/script-command.ts';
import type { UnixAccount } from '../core/unix-user.ts';
import { endProcessGroup } from '../core/process-group.ts';
import type { Logger } from '../core/log.ts';
import { repoPaths, type ShipkitConfig } from '../config/shipkit-yml.ts';
import { resolveNotifyTargets, type ResolvedTarget } from '../config/notify.ts';
import { createNotifier } from '../notify/notifier.ts';
import { createDeliveryOutcomes, type DeliveryOutcomes } from '../notify/outcomes.ts';
import { resolveReports, type ResolvedReport } from '../config/report.ts';
import { createStatusReporter } from '../notify/status-reporter.ts';
import { tagCommit } from './tag-commit.ts';
import { createHookMetrics, type HookMetrics } from '../web/hook-metrics.ts';
import { createReadRoutes } from '../web/read-routes.ts';
import type { LogSource } from '../web/read-sources.ts';
import { createLogFollow } from '../web/log-follow.ts';
import {
  bodyFormat, createBodyVerifier, deliveryId, detectForge, eventName, missingSignature, normaliseEvent, parsePayload, verifyGiteaForm, type Forge,
} from './webhooks.ts';

export const MAX_BODY = 25 * 1024 * 1024;
/** Bodies larger than this are spooled to DATA/tmp while they stream in, so a flood stays out of memory. */
const SPILL_AT = 256 * 1024;
const FORGE_PATHS = new Map<string, Forge | 'detect'>([['/hooks/github', 'github'], ['/hooks/gitea', 'gitea'], ['/hooks/gitlab', 'gitlab'], ['/', 'detect']]);

export interface Secrets {
  /** The top-level `secret:`, resolved. */
  fallback?: string;
  /** Per-repo `secret:` values, resolved. */
  repos: Map<string, string>;
}

export interface HookServerOptions {
  config: ShipkitConfig;
  listen: ListenAddress;
  secrets: Secrets;
  token?: string;
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
export async function resolveServerSecrets(config: ShipkitConfig, env: NodeJS.ProcessEnv = process.env): Promise<{ secrets: Secrets; token?: string; notify: Map<string, ResolvedTarget[]>; report: Map<string, ResolvedReport> }> {
  const baseDir = path.dirname(config.file);
  const fallback = config.secret ? await resolveSecret(config.secret, { env, baseDir, where: `${config.file}: secret` }) : undefined;
  const repos = new Map<string, string>();
  for (const repo of config.repos.values()) {
    if (repo.secret) repos.set(repo.name, await resolveSecret(repo.secret, { env, baseDir, where: `${config.file}: repos.${repo.name}.secret` }));
    else if (!fallback) throw new ConfigError(`${config.doc.locate(repo.keyPath)}: repos.${repo.name}: no webhook secret; set secret: at the top level or for this repo (env:NAME or file:PATH).`);
  }
  const token = config.token ? await resolveSecret(config.token, { env, baseDir, where: `${config.file}: token` }) : undefined;
  const lists = new Map([['', config.notify], ...[...config.repos.values()].filter((r) => r.notify).map((r) => [r.name, r.notify!] as const)]);
  const notify = await resolveNotifyTargets(lists, { file: config.file, env });
  const report = await resolveReports(config.doc, config.repos.values(), env);
  return { secrets: { fallback, repos }, token, notify, report };
}

export async function startHookServer(options: HookServerOptions): Promise<HookServer> {
  const { config, log } = options;
  const maxBody = options.maxBody ?? MAX_BODY;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 30_000;
  const dataDir = config.data;
  const jobsDir = path.join(dataDir, 'jobs');
  const tmpDir = path.join(dataDir, 'tmp');
  await ensureDir(dataDir, 0o755);
  await Promise.all([ensureDir(jobsDir, 0o755), ensureDir(tmpDir, 0o700)]);
  // Builds that run as other users must be able to reach their folders under DATA.
  if ([...config.repos.values()].some((r) => r.user)) await Promise.all([dataDir, jobsDir].map((d) => chmod(d, 0o755).catch((error: NodeJS.ErrnoException) => log.warn(`could not open ${d} to build users (chmod 755: ${error.code ?? error.message}); their builds may fail to start`))));

  // One hook-server per data folder: two would interleave one journal. A holder that died
  // (kill -9, power cut) leaves a stale lock, which is taken over.
  await ensureDir(path.join(dataDir, 'journal'), 0o755);
  const lock = await acquireLock(path.join(dataDir, 'journal', 'hook-server.lock'), { what: `The data folder ${dataDir} (another hook-server uses it)` });
  let journal: Journal;
  // Gauges are read at scrape time, once the queue below exists (the server listens after it).
  const metrics = createHookMetrics({ counts: () => queue.counts() });
  try {
    // Bodies spooled by a process that died mid-request: nothing reads them again (up to 25 MB each).
    await Promise.all((await readdir(tmpDir)).map((name) => rm(path.join(tmpDir, name), { recursive: true, force: true })));
    journal = await openJournal(dataDir, {
      onPrune: (ids) => void removeJobFiles(jobsDir, ids),
      onCompactError: (error) => log.warn('could not compact the journal; it stays long and is tried again later', { error: error.message }),
      onSync: metrics.observeFsync,

    });
  } catch (error) {
    await lock.release();
    throw error;
  }
  if (journal.damaged) log.warn('journal had damaged records; they were dropped', { damaged: journal.damaged });
  const commands = options.commands ?? { build: await scriptCommandFor('build', options.env), release: await scriptCommandFor('release', options.env) };
  // A repo cloned with a token or deploy key: its first clone needs them (only `build` gives git
  // them), and its badge tells strangers nothing (lib/web/read-routes.ts).
  const isPrivate = (name: string) => {
    const repo = config.repos.get(name);
    return Boolean(repo?.gitToken || repo?.gitAuth.sshKey);
  };
  const runner = options.runner ?? createProcessRunner({
    dataDir, jobsDir, configFile: config.file, commands, log, env: options.env,
    repoSettings: (name) => config.repos.get(name),
    prepareUserDirs: (job, account, cloneUrl) => prepareUserDirs(config, job, account, isPrivate(job.repo) ? undefined : cloneUrl, log),
  });
  // Commit statuses and notifications go out in the background: never awaited by the queue.
  const deliveries = createDeliveryOutcomes();
  const timing = options.delivery ?? {};
  const notifier = createNotifier({ targets: options.notify ?? new Map(), log, publicUrl: config.publicUrl, onOutcome: metrics.countNotification, outcomes: deliveries, ...timing });
  const statuses = createStatusReporter({
    reports: options.report ?? new Map(), log, publicUrl: config.publicUrl, onOutcome: metrics.countCommitStatus, outcomes: deliveries, timeoutMs: timing.timeoutMs, retry: { attempts: timing.attempts, backoffMs: timing.backoffMs },
    // A release's tag, looked up in its clone; not in a build user's clone (git run by us there would take that user's config).
    commitOf: async (job) => (job.tag && !config.repos.get(job.repo)?.user ? tagCommit(repoPaths(config, job.repo).work, job.tag) : undefined),
  });
  const onEnd = (job: Job) => {
    metrics.countJobEnd(job);
    statuses.jobEnded(job);
    notifier.jobEnded(job, journal.jobs.values());
  };
  const queue = createJobQueue({ journal, concurrency: config.concurrency, run: runner, log, jobsDir, onEnd, onStart: statuses.jobStarted });
  const readRoutes = createReadRoutes({
    ui: config.ui, token: options.token, publicUrl: config.publicUrl,
    jobs: () => journal.jobs.values(), list: (o) => queue.list(o), get: (id) => queue.get(id), isJobId: (id) => JOB_ID_PATTERN.test(id),
    readLog: (job) => jobLog(config, jobsDir, job), branchOf: (name) => config.repos.get(name)?.branch,
    isPrivate, repos: () => [...config.repos.keys()],
    renderMetrics: () => metrics.render(), deliveries,
    followLog: (req, res, job) => follow.handle(req, res, job),
  });
  const guard = createPushGuard({ dataDir, workDir: (name) => repoPaths(config, name).work, env: options.env });
  await queue.recover((job) => killOrphanGroup(job, jobsDir).then(() => undefined));
  const follow = createLogFollow({
    jobsDir, log, logsDirOf: (repo) => repoPaths(config, repo).logs, jobOf: (id) => queue.get(id),
    readSection: (job) => readJobLog(repoPaths(config, job.repo).logs, job.id).catch(() => undefined),
  });
  const allSecrets = [...(options.secrets.fallback ? [options.secrets.fallback] : []), ...options.secrets.repos.values()];
  if (allSecrets.length === 0) log.warn('no webhook secret is configured: every delivery will be refused (set secret: in the config)');

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = requestIdOf(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname;
    const refuse = (status: number, message: string, detail?: string, headers: Record<string, string> = {}) => {
      (status >= 500 ? log.error : log.warn)('request refused', { request: requestId, status, path: route.slice(0, 100), reason: detail ?? message });
      // A body nobody will read is not drained: the connection closes after the answer.
      if (!req.complete) stopReading(req, res);
      sendJson(res, status, { error: message, request: requestId }, headers);
    };

    if (route === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'method not allowed', undefined, { Allow: 'GET, HEAD' });
      return sendJson(res, 200, { ok: true, ...queue.counts() });
    }
    if (await readRoutes.handle(req, res, url, refuse)) return;
    const target = FORGE_PATHS.get(route);
    if (!target) return refuse(404, 'not found');
    res.once('close', () => metrics.countDelivery(target === 'detect' ? detectForge(req.headers) ?? 'unknown' : target, res.statusCode));
    if (req.method !== 'POST') return refuse(405, 'method not allowed', undefined, { Allow: 'POST' });
    const format = bodyFormat(req.headers['content-type']);
    if (!format) return refuse(415, 'unsupported content type', `content type ${String(req.headers['content-type'] ?? 'missing').slice(0, 60)}`);
    const forge = target === 'detect' ? detectForge(req.headers) : target;
    if (!forge) return refuse(400, 'unknown forge', 'no X-GitHub-Event, X-Gitea-Event or X-Gitlab-Event header');
    const event = eventName(forge, req.headers);
    if (!event) return refuse(400, 'missing event header');

    // Nothing to verify: refused before a byte of the body is read (or `100 Continue` sent).
    const unsigned = allSecrets.length > 0 ? missingSignature(forge, req.headers) : undefined;
    if (unsigned) return refuse(401, 'bad signature', unsigned);
    const verifier = createBodyVerifier(allSecrets);
    let received: ReceivedBody;
    try {
      received = await receiveBody(req, { res, limit: maxBody, timeoutMs: bodyTimeoutMs, spillAt: SPILL_AT, spillFile: path.join(tmpDir, `body-${requestId}`), onChunk: (c) => verifier.update(c) });
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      if (status === 503) return refuse(503, 'cannot take deliveries now, retry later', (error as Error).message, { 'Retry-After': '30' });
      return refuse(status, status === 413 ? 'body too large' : status === 408 ? 'body timeout' : 'could not read body', (error as Error).message);
    }
    try {
      const giteaForm = forge === 'gitea' && format === 'form';
      // Only a Gitea form is read before it is verified: what that forge signs is inside it.
      let body = giteaForm ? received.buffer ?? await readFile(received.file!) : undefined;
      const verdict = giteaForm ? verifyGiteaForm(req.headers, body!, allSecrets) : verifier.verify(forge, req.headers);
      if (!verdict.ok) return refuse(401, 'bad signature', verdict.reason);
      body ??= received.buffer ?? await readFile(received.file!);
      const delivery = deliveryId(forge, req.headers, body);
      const rlog = log.child({ request: requestId, forge, event: event.slice(0, 40), delivery });
      let payload: Record<string, unknown>;
      let meaning;
      try {
        payload = parsePayload(body, format);
        meaning = normaliseEvent(forge, event, payload);
      } catch (error) {
        if (error instanceof ValidationError) return refuse(400, 'malformed payload', error.message);
        throw error;
      }
      if (meaning.kind === 'ping') {
        rlog.info('ping', { repo: meaning.repo });
        return sendJson(res, 200, { ok: true, pong: true });
      }
      if (meaning.kind === 'ignored') {
        rlog.info('delivery ignored', { repo: meaning.repo, reason: meaning.reason });
        return sendJson(res, 200, { ok: true, ignored: meaning.reason });
      }
      const repo = config.repos.get(meaning.repo);
      if (!repo) return refuse(404, 'unknown repository', `${meaning.repo} is not in ${config.file}`);
      const expected = options.secrets.repos.get(repo.name) ?? options.secrets.fallback;
      if (verdict.secret !== expected) return refuse(401, 'bad signature', `signed with a secret that is not ${repo.name}'s`);
      if (meaning.kind === 'push' && meaning.branch !== repo.branch) {
        rlog.info('push to another branch ignored', { repo: repo.name, branch: meaning.branch });
        return sendJson(res, 200, { ok: true, ignored: `push to ${meaning.branch} (builds run on ${repo.branch})` });
      }
      // A replayed older push, or another clone URL than the pinned one (lib/server/push-guard.ts).
      const admitted = { repo: repo.name, configuredUrl: repo.url, cloneUrl: meaning.cloneUrl, push: meaning.kind === 'push' ? { branch: meaning.branch, sha: meaning.sha, order: meaning.order } : undefined };
      const admission = await guard.admit(admitted);
      if (admission.verdict === 'refused') return refuse(400, 'clone URL refused', admission.reason);
      if (admission.verdict === 'superseded') {
        rlog.warn('push older than the last one accepted for its branch: not built', { repo: repo.name, sha: admitted.push?.sha, reason: admission.reason });
        return sendJson(res, 200, { ok: true, state: 'superseded' });
      }
      let result;
      try {
        result = meaning.kind === 'push'
          ? await queue.enqueue({ repo: repo.name, kind: 'build', sha: meaning.sha, ref: meaning.ref, branch: meaning.branch, cloneUrl: meaning.cloneUrl, deliveryId: delivery, forge, ...meaning.meta })
          : await queue.enqueue({ repo: repo.name, kind: 'release', tag: meaning.tag, ref: meaning.ref, cloneUrl: meaning.cloneUrl, deliveryId: delivery, forge, ...meaning.meta });
      } catch (error) {
        admission.undo();
        return refuse(503, 'not accepting jobs now, retry later', (error as Error).message);
      }
      await guard.persist(repo.name).catch((error: Error) => rlog.error('could not write the accepted push to DATA/pushes; after a restart a replay of an older one may build', { error: error.message }));
      if (result.duplicate) {
        rlog.info('delivery already queued or running', { job: result.job.id });
        return sendJson(res, 200, { job: result.job.id, duplicate: true, state: result.job.state });
      }
      rlog.info('job queued', { job: result.job.id, repo: repo.name, kind: result.job.kind, sha: result.job.sha ?? undefined, tag: result.job.tag ?? undefined });
      return sendJson(res, 202, { job: result.job.id });
    } finally {
      if (received.file) await rm(received.file, { force: true });
    }
  }

  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const http = await startHttpServer(handle, {
    host: options.listen.host,
    port: options.listen.port,
    headersTimeoutMs,
    // Node's own whole-request cap sits behind our body timeout, which answers 408 first.
    requestTimeoutMs: headersTimeoutMs + bodyTimeoutMs + 5_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 5_000,
  });
  http.server.maxRequestsPerSocket = 1000;
  queue.resume();

  let stopping: Promise<void> | undefined;
  return {
    url: http.url,
    queue,
    journal,
    http,
    metrics,
    deliveries,
    stop() {
      stopping ??= (async () => {
        follow.close();
        const closed = http.close(2_000);
        await queue.stop({ graceMs: options.graceMs ?? 60_000, killGroup: (job) => endProcessGroup(job.pgid, { graceMs: 2_000 }).then(() => undefined) });
        await Promise.all([notifier.stop(), statuses.stop()]);
        await closed;
        await journal.close();
        await lock.release();
      })();
      return stopping;
    },
  };
}

/** The build's own section of DATA/logs/REPO/logs.txt when it wrote one, else what the process printed. */
async function jobLog(config: ShipkitConfig, jobsDir: string, job: Job): Promise<LogSource | undefined> {
  const section = await readJobLog(repoPaths(config, job.repo).logs, job.id).catch(() => undefined);
  if (section !== undefined) return { text: section };
  const file = path.join(jobsDir, job.id, 'output.log');
  try {
    return { file, size: (await stat(file)).size };
  } catch {
    return undefined;
  }
}

// As root, a repo's folders under DATA belong to its build user, so the build (running as that
// user) can write them. DATA/repos itself stays root's: the first clone, which `build` would make
// beside the work tree, is made here instead, into the user's empty work tree, as the user.
async function prepareUserDirs(config: ShipkitConfig, job: Job, account: UnixAccount, cloneUrl: string | undefined, log: Logger): Promise<void> {
  const paths = repoPaths(config, job.repo);
  for (const dir of [paths.work, paths.logs, paths.state]) {
    await ensureDir(path.dirname(dir), 0o755);
    await chmod(path.dirname(dir), 0o755).catch((error: NodeJS.ErrnoException) => log.warn(`could not open ${path.dirname(dir)} to ${account.name} (chmod 755: ${error.code ?? error.message})`, { job: job.id }));
    await ensureDir(dir, 0o755);
    const info = await stat(dir);
    if (info.uid !== account.uid) {
      await $({ quiet: true })`chown -R ${`${account.uid}:${account.gid}`} ${dir}`;
    }
  }
  if (cloneUrl && !(await pathExists(path.join(paths.work, '.git'))) && (await readdir(paths.work)).length === 0) {
    await new Promise<void>((resolve) => {
      execFile('git', ['clone', '--quiet', '--no-checkout', '--', cloneUrl, paths.work], {
        uid: account.uid, gid: account.gid, cwd: paths.work, timeout: 10 * 60_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: account.home, LANG: 'C.UTF-8', GIT_TERMINAL_PROMPT: '0' },
      }, (error, _stdout, stderr) => {
        // The build reports a failed clone itself; leave the folder empty for it.
        if (error) log.warn('first clone as the build user failed', { job: job.id, repo: job.repo, error: String(stderr || error.message).trim().slice(0, 300) });
        resolve();
      });
    });
  }
}
