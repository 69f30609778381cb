// hook-server's read side (docs/hook-server.md): the JSON read API (`/jobs`, `/jobs/ID`,
// `/jobs/ID/log`, `/environments`), `/metrics`, badges, and the status page with its job pages,
// login and assets.
// It knows nothing of how jobs run: hook-server hands in the jobs, a log reader and config bits.
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Job } from '../jobs/job.ts';
import { bearerProblem } from '../http/bearer.ts';
import { sendJson } from '../http/server.ts';
import { sendBadge } from './badge.ts';
import { CONTENT_TYPE as METRICS_CONTENT_TYPE } from './metrics.ts';
import { createPageRoutes, type PageRoutes } from './page-routes.ts';
import type { ReadSources, Refuse } from './read-sources.ts';
import { auditQueryOf } from '../audit/query.ts';
import { messageOf, ValidationError } from '../core/errors.ts';

const READ_METHODS = 'GET, HEAD';

/** The job as the read API shows it (docs/hook-server.md: id, repo, kind, sha, ref, state, exit, started, finished). */
export function publicJob(job: Job) {
  return {
    id: job.id,
    repo: job.repo,
    kind: job.kind,
    sha: job.sha,
    ref: job.ref,
    tag: job.tag,
    state: job.state,
    exit: job.exit,
    queued: job.queued,
    started: job.started,
    finished: job.finished,
    reason: job.reason,
    attempts: job.attempts,
    delivery: job.deliveryId,
    message: job.message ?? null,
    author: job.author ?? null,
    pusher: job.pusher ?? null,
    commit_url: job.commitUrl ?? null,
    // The build worker that ran it, with a PostgreSQL queue: (docs/workers.md); absent with the local journal.
    ...(job.worker ? { worker: job.worker } : {}),
    // A forced push, a replay or a redelivery: built even if nothing changed (docs/hook-server.md "Up to date").
    ...(job.force ? { force: true } : {}),
  };
}

/**
 * The read routes as one handler: answers and returns true for its paths, returns false for any
 * other (the webhook intake's), so hook-server tries it first.
 */
export interface ReadRoutes {
  /** A status-page session or the read token: what opens the read API (GET /fleet/APP uses it too). */
  canRead(req: IncomingMessage): boolean;
  /** Answers the request when it is a read route; false when it is not one (a webhook path). */
  handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean>;
}

export class ReadRouter implements ReadRoutes {
  private readonly sources: ReadSources;
  private readonly pages: PageRoutes;

  constructor(sources: ReadSources) {
    this.sources = sources;
    this.pages = createPageRoutes(sources);
  }

  /**
   * A status-page session or the read token: what opens the read API (GET /fleet/APP uses it too).
   * An arrow property: hook-server hands it on alone.
   */
  readonly canRead = (req: IncomingMessage): boolean =>
    Boolean(this.sources.token) && this.apiProblem(req) === undefined;

  /** Answers the request when it is a read route; false when it is not one (a webhook path). */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean> {
    const route = url.pathname;
    if (route === '/jobs' || route.startsWith('/jobs/')) {
      await this.handleApi(req, res, route, url, refuse);
      return true;
    }
    if (route.startsWith('/badge/') && route.endsWith('.svg')) {
      this.handleBadge(req, res, url, refuse);
      return true;
    }
    if (route === '/metrics') {
      sendMetrics(this.sources, req, res, refuse);
      return true;
    }
    if (route === '/audit') {
      await this.handleAudit(req, res, url, refuse);
      return true;
    }
    if (route === '/environments') {
      await this.handleEnvironments(req, res, refuse);
      return true;
    }
    return this.pages.handle(req, res, url, refuse);
  }

  /** Bearer token, or (for GET/HEAD) a status-page session cookie. */
  private apiProblem(req: IncomingMessage): string | undefined {
    if (this.pages.hasSession(req)) return undefined;
    return bearerProblem(req.headers.authorization, this.sources.token!);
  }

  /**
   * With `ui: token`, a private repo's badge answers as a repo that is not configured (unknown,
   * the same bytes) unless the viewer is signed in: a built one must not tell strangers it exists.
   */
  private badgeHidden(req: IncomingMessage, repo: string): boolean {
    const { sources } = this;
    if (sources.ui !== 'token' || !sources.isPrivate?.(repo)) return false;
    if (this.pages.hasSession(req)) return false;
    return !sources.token || bearerProblem(req.headers.authorization, sources.token) !== undefined;
  }

  /** /jobs, /jobs/ID and /jobs/ID/log: JSON with the read token or a session; a browser gets the job page. */
  private async handleApi(
    req: IncomingMessage,
    res: ServerResponse,
    route: string,
    url: URL,
    refuse: Refuse,
  ): Promise<void> {
    const { sources, pages } = this;
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return refuse(405, 'method not allowed', undefined, { Allow: READ_METHODS });
    const m = /^\/jobs\/([^/]+)(\/log)?$/.exec(route);
    // A browser asking for a job page gets HTML (lib/web/page-routes.ts); curl and fetch, JSON.
    if (m && !m[2] && pages.wantsHtml(req)) return pages.jobPage(req, res, m[1], refuse);
    if (!sources.token) return refuse(404, 'read API is off', 'no token: in the config');
    const unauthorised = this.apiProblem(req);
    if (unauthorised) return refuse(401, 'unauthorized', unauthorised, { 'WWW-Authenticate': 'Bearer' });
    if (route === '/jobs') {
      const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get('limit')) || 100));
      const jobs = sources.list({
        limit,
        repo: url.searchParams.get('repo') ?? undefined,
        state: url.searchParams.get('state') ?? undefined,
      });
      return sendJson(res, 200, { jobs: jobs.map(publicJob) });
    }
    if (!m || !sources.isJobId(m[1])) return refuse(404, 'not found');
    const job = sources.get(m[1]);
    if (!job) return refuse(404, 'no such job');
    if (!m[2]) return sendJson(res, 200, publicJob(job));
    if (url.searchParams.get('follow') === '1' && sources.followLog) return pages.followLog(req, res, job);
    return sendLog(sources, req, res, job, refuse);
  }

  /** /badge/….svg, unless `ui: off`; a hidden repo's badge is an unknown one's. */
  private handleBadge(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): void {
    const { sources } = this;
    if (sources.ui === 'off') refuse(404, 'not found', 'badges are off (ui: off)');
    else if (req.method !== 'GET' && req.method !== 'HEAD')
      refuse(405, 'method not allowed', undefined, { Allow: READ_METHODS });
    else
      sendBadge(req, res, url, {
        jobs: sources.jobs(),
        branchOf: (repo) => (this.badgeHidden(req, repo) ? undefined : sources.branchOf(repo)),
      });
  }

  /** /audit: the audit page for a browser, else JSON with the read token or a session. */
  private async handleAudit(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      refuse(405, 'method not allowed', undefined, { Allow: READ_METHODS });
    else if (this.pages.wantsHtml(req)) await this.pages.auditPage(req, res, url, refuse);
    else if (!this.sources.token) refuse(404, 'read API is off', 'no token: in the config');
    else {
      const unauthorised = this.apiProblem(req);
      if (unauthorised) refuse(401, 'unauthorized', unauthorised, { 'WWW-Authenticate': 'Bearer' });
      else await sendAudit(this.sources, req, res, url, refuse);
    }
  }

  /** /environments: each app's environments as JSON, with the read token or a session; 404 without `apps:`. */
  private async handleEnvironments(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const { sources } = this;
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return refuse(405, 'method not allowed', undefined, { Allow: READ_METHODS });
    if (!sources.environments) return refuse(404, 'not found', 'no apps: in the config');
    if (!sources.token) return refuse(404, 'read API is off', 'no token: in the config');
    const unauthorised = this.apiProblem(req);
    if (unauthorised) return refuse(401, 'unauthorized', unauthorised, { 'WWW-Authenticate': 'Bearer' });
    sendJson(res, 200, await sources.environments());
  }
}

export function createReadRoutes(sources: ReadSources): ReadRoutes {
  return new ReadRouter(sources);
}

/** A job's log as text: a section of the journal, or a stream of its file up to the size read. */
async function sendLog(
  sources: ReadSources,
  req: IncomingMessage,
  res: ServerResponse,
  job: Job,
  refuse: Refuse,
): Promise<void> {
  const source = await sources.readLog(job);
  if (!source) return refuse(404, 'no log for this job yet');
  const headers = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  };
  if ('text' in source) {
    res.writeHead(200, headers);
    return void res.end(req.method === 'HEAD' ? undefined : source.text);
  }
  res.writeHead(200, { ...headers, 'Content-Length': source.size });
  if (req.method === 'HEAD' || source.size === 0) return void res.end();
  const stream = createReadStream(source.file, { start: 0, end: source.size - 1 });
  stream.pipe(res);
  await new Promise<void>((resolve) => {
    stream.on('close', resolve);
    res.on('close', () => {
      stream.destroy();
      resolve();
    });
  });
}

/** GET /audit: `{"entries": [...]}`, or with `format=jsonl` the stored lines (a client can check their chain). */
async function sendAudit(
  sources: ReadSources,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  refuse: Refuse,
): Promise<void> {
  if (!sources.audit) return refuse(404, 'not found');
  let rows;
  try {
    rows = await sources.audit.read(auditQueryOf(url.searchParams));
  } catch (error) {
    if (error instanceof ValidationError) return refuse(400, error.message);
    return refuse(503, 'could not read the audit trail, try again', messageOf(error));
  }
  if (url.searchParams.get('format') !== 'jsonl') return sendJson(res, 200, { entries: rows.map((r) => r.entry) });
  const body = rows.map((r) => `${r.line}\n`).join('');
  res.writeHead(200, {
    'Content-Type': 'application/x-ndjson; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** GET /metrics, with the read token. */
function sendMetrics(sources: ReadSources, req: IncomingMessage, res: ServerResponse, refuse: Refuse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return refuse(405, 'method not allowed', undefined, { Allow: READ_METHODS });
  if (!sources.token) return refuse(404, 'metrics are off', 'no token: in the config');
  const unauthorised = bearerProblem(req.headers.authorization, sources.token);
  if (unauthorised) return refuse(401, 'unauthorized', unauthorised, { 'WWW-Authenticate': 'Bearer' });
  const text = sources.renderMetrics();
  res.writeHead(200, {
    'Content-Type': METRICS_CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}
