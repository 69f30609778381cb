// hook-server's previews API (docs/previews.md): GET /previews and GET /previews/log with the read
// token or a session, POST /previews/approve|rebuild|rm with the bearer token only. It knows nothing of how previews
// are built: it calls the runner through PreviewControl (lib/previews/control.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerProblem } from '../http/bearer.ts';
import { HttpError, readBody, sendJson } from '../http/server.ts';
import { messageOf, ValidationError, WorkError } from '../core/errors.ts';
import { repoNameProblem } from '../core/names.ts';
import { PreviewNotFound, type PreviewControl } from '../previews/control.ts';
import { parsePreviewRef, type PreviewRecord } from '../previews/store.ts';
import type { Refuse } from './read-sources.ts';

/** A POST body is `{"repo": …, "pr": …}`: this is plenty. */
export const MAX_PREVIEW_BODY_BYTES = 4 * 1024;
const BODY_TIMEOUT_MS = 10_000;
const ACTIONS = ['approve', 'rebuild', 'rm'] as const;
type Action = (typeof ACTIONS)[number];

export interface PreviewRoutesOptions {
  /** The runner; absent when no repo has `previews:`. */
  control?: PreviewControl;
  /** The read token (`token:`), resolved; read on every request, so a getter may follow its file. */
  token?: string;
  /** The read token or a status-page session (ReadRoutes.canRead): what opens GET /previews. */
  canRead(req: IncomingMessage): boolean;
}

export interface PreviewRoutes {
  /** Answers the request when it is a previews route; false when it is not one. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean>;
}

/** A preview as the API shows it: the documented fields first, then reason, job and live_sha. */
export function publicPreview(record: PreviewRecord) {
  return {
    repo: record.repo,
    pr: record.pr,
    name: record.name,
    url: record.url ?? null,
    head: record.head,
    state: record.state,
    since: record.since,
    reason: record.reason ?? null,
    job: record.job ?? null,
    live_sha: record.live?.sha ?? null,
  };
}

/** `{"repo": "octo/site", "pr": 42}` → the pair, or why it is refused (400). */
export function previewTargetOf(body: string): { repo: string; pr: number } | string {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return 'body is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'body must be {"repo": "OWNER/NAME", "pr": N}';
  const { repo, pr } = value as { repo?: unknown; pr?: unknown };
  return previewTarget(repo, pr);
}

/** A repository name and a pull request number, checked; or why not (400). */
export function previewTarget(repo: unknown, pr: unknown): { repo: string; pr: number } | string {
  if (typeof repo !== 'string' || repoNameProblem(repo)) return 'repo must be a repository name, such as octo/site';
  if (typeof pr !== 'number' || !Number.isInteger(pr) || pr < 1 || pr > 999_999_999)
    return 'pr must be a pull request number from 1 to 999999999';
  try {
    return parsePreviewRef(`${repo}#${pr}`);
  } catch {
    return 'repo must be a repository name, such as octo/site';
  }
}

class PreviewRouter implements PreviewRoutes {
  private readonly options: PreviewRoutesOptions;

  constructor(options: PreviewRoutesOptions) {
    this.options = options;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean> {
    const route = url.pathname;
    if (route === '/previews') {
      this.list(req, res, refuse);
      return true;
    }
    if (route === '/previews/log') {
      await this.log(req, res, url, refuse);
      return true;
    }
    const action = /^\/previews\/([a-z]+)$/.exec(route)?.[1] as Action | undefined;
    if (route.startsWith('/previews/')) {
      if (!action || !ACTIONS.includes(action)) refuse(404, 'not found');
      else await this.act(action, req, res, refuse);
      return true;
    }
    return false;
  }

  private list(req: IncomingMessage, res: ServerResponse, refuse: Refuse): void {
    const control = this.readable(req, refuse);
    if (control) sendJson(res, 200, { previews: control.list().map(publicPreview) });
  }

  /** A read (GET or HEAD) with the read token or a session: the control, else undefined once refused. */
  private readable(req: IncomingMessage, refuse: Refuse): PreviewControl | undefined {
    const { control, token } = this.options;
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return void refuse(405, 'method not allowed', undefined, { Allow: 'GET, HEAD' });
    if (!control || !token)
      return void refuse(404, 'previews are off', control ? 'no token: in the config' : undefined);
    if (!this.options.canRead(req))
      return void refuse(401, 'unauthorized', bearerProblem(req.headers.authorization, token), {
        'WWW-Authenticate': 'Bearer',
      });
    return control;
  }

  /** `GET /previews/log?repo=R&pr=N`: the preview's state and the end of its build log, as text. */
  private async log(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<void> {
    const control = this.readable(req, refuse);
    if (!control) return;
    const pr = url.searchParams.get('pr');
    const target = previewTarget(url.searchParams.get('repo'), pr === null || pr === '' ? undefined : Number(pr));
    if (typeof target === 'string') return refuse(400, `${target} (give ?repo=OWNER/NAME&pr=N)`);
    let text: string;
    try {
      text = await control.log(target.repo, target.pr);
    } catch (error) {
      if (error instanceof PreviewNotFound)
        return refuse(404, `no preview of ${target.repo}#${target.pr}`, messageOf(error));
      return refuse(500, `could not read the log of ${target.repo}#${target.pr}`, messageOf(error));
    }
    res.writeHead(200, {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  /** A write: the bearer token only (a session cookie never), a small JSON body, then the runner. */
  private async act(action: Action, req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const { control, token } = this.options;
    if (req.method !== 'POST') return refuse(405, 'method not allowed', undefined, { Allow: 'POST' });
    if (!control || !token) return refuse(404, 'previews are off', control ? 'no token: in the config' : undefined);
    const unauthorised = bearerProblem(req.headers.authorization, token);
    if (unauthorised) return refuse(401, 'unauthorized', unauthorised, { 'WWW-Authenticate': 'Bearer' });
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? ''))
      return refuse(415, 'send Content-Type: application/json');
    let body: Buffer;
    try {
      body = await readBody(req, { res, limit: MAX_PREVIEW_BODY_BYTES, timeoutMs: BODY_TIMEOUT_MS });
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      return refuse(status, status === 413 ? 'body too large' : 'could not read body', messageOf(error));
    }
    const target = previewTargetOf(body.toString('utf8'));
    if (typeof target === 'string') return refuse(400, target);
    const { repo, pr } = target;
    let record: PreviewRecord;
    try {
      if (action === 'approve') record = await control.approve(repo, pr, 'token');
      else if (action === 'rebuild') record = await control.rebuild(repo, pr);
      else record = await control.remove(repo, pr, 'removed by hand (shipkit previews rm)');
    } catch (error) {
      if (error instanceof PreviewNotFound) return refuse(404, `no preview of ${repo}#${pr}`, messageOf(error));
      if (error instanceof ValidationError) return refuse(400, shortMessage(error), messageOf(error));
      if (error instanceof WorkError) return refuse(409, shortMessage(error), messageOf(error));
      return refuse(500, `could not ${action === 'rm' ? 'remove' : action} ${repo}#${pr}`, messageOf(error));
    }
    sendJson(res, 200, publicPreview(record));
  }
}

/** The runner's own sentence, one line and bounded: it says why (torn down, already building). */
function shortMessage(error: Error): string {
  const line = messageOf(error).split('\n')[0];
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

export function createPreviewRoutes(options: PreviewRoutesOptions): PreviewRoutes {
  return new PreviewRouter(options);
}
