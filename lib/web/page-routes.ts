// The status page's HTTP side: `GET /`, job pages, `GET|POST /login`, `POST /logout`, `POST /approve`, /assets;
// access per `ui:` (token, public, off), security headers on every page, sessions checked against
// the ended ones.
// The whole story: docs/internals.md.
import { peerAddress } from '../http/peer.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { open } from 'node:fs/promises';
import type { Job } from '../jobs/job.ts';
import { bearerProblem } from '../http/bearer.ts';
import { HttpError, receiveBody } from '../http/server.ts';
import { assetNamed } from './assets.ts';
import { RELEASES_SHOWN, renderReleasesPage } from './releases-page.ts';
import { matchesEtag } from './badge.ts';
import { basePath } from '../jobs/job-url.ts';
import type { ReadSources, Refuse } from './read-sources.ts';
import { openEndedSessions, type EndedSessions } from './ended-sessions.ts';
import { createSessionStreams, type SessionStreams } from './session-streams.ts';
import {
  clearedCookie,
  cookieValue,
  COOKIE_NAME,
  createLoginLimiter,
  createSessionKeys,
  sessionCookie,
  type LoginLimiter,
  type Session,
  type SessionKeys,
} from './session.ts';
import {
  renderJobPage,
  renderLoginPage,
  renderNotice,
  renderStatusPage,
  text,
  LOG_SHOWN_BYTES,
  type Viewer,
} from './status-page.ts';
import { messageOf, ValidationError } from '../core/errors.ts';
import { renderAuditPage } from './audit-page.ts';
import { auditQueryOf } from '../audit/query.ts';
import { sessionActor, type AuditRecord } from '../audit/trail.ts';
import { handleApprove } from './approve-route.ts';

export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/** A login form body is one short token: anything larger is refused before it is parsed. */
const LOGIN_BODY_MAX = 4096;
const READ_METHODS = 'GET, HEAD';
/** Where a login may send the browser back to: the list or a job page, nothing else. */
const SAFE_NEXT = /^\/(?:jobs\/[A-Za-z0-9._-]{1,100}|audit)?$/;

/** Whether the request's Accept prefers text/html to JSON (a browser's navigation does; curl's and fetch's `*\/*` does not). */
export function prefersHtml(accept: string | undefined): boolean {
  let html = 0;
  let json = 0;
  let any = 0;
  for (const part of (accept ?? '').split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!Number.isFinite(q)) continue;
    if (type === 'text/html') html = Math.max(html, q);
    else if (type === 'application/json') json = Math.max(json, q);
    else if (type === '*/*') any = Math.max(any, q);
  }
  return html > json && html > any;
}

export function createPageRoutes(
  sources: ReadSources,
  { limiter = createLoginLimiter(), ended }: { limiter?: LoginLimiter; ended?: EndedSessions } = {},
): PageRoutes {
  const local = ended ?? openEndedSessions({ dataDir: sources.dataDir, log: sources.log, now: sources.now });
  return new PageRoutes(sources, limiter, sources.shareEnded?.(local) ?? local);
}

export class PageRoutes {
  private readonly sources: ReadSources;
  private readonly limiter: LoginLimiter;
  private sessionKeys: { token: string; keys: SessionKeys } | undefined;
  private readonly ended: EndedSessions;
  private readonly streams: SessionStreams;
  /** `public_url:`'s path: the pages' links, redirects and the cookie's Path carry it. */
  private readonly base: string;
  private readonly cookie: { secure: boolean; path: string };

  constructor(sources: ReadSources, limiter: LoginLimiter, ended: EndedSessions) {
    this.sources = sources;
    this.limiter = limiter;
    this.ended = ended;
    this.streams = createSessionStreams({
      isOver: (session) => session.expires <= this.now().getTime() || ended.isEnded(session),
    });
    this.base = basePath(sources.publicUrl);
    this.cookie = { secure: sources.publicUrl?.startsWith('https:') ?? false, path: this.base || '/' };
  }

  /** The session keys of the token now: a new token (a rewritten token file) ends every session. */
  private get keys(): SessionKeys | undefined {
    const token = this.sources.token;
    if (!token) return undefined;
    if (this.sessionKeys?.token !== token) this.sessionKeys = { token, keys: createSessionKeys(token) };
    return this.sessionKeys.keys;
  }

  private now(): Date {
    return (this.sources.now ?? (() => new Date()))();
  }

  hasSession(req: IncomingMessage): boolean {
    return this.sessionOf(req) !== undefined;
  }

  /** The request's session: a cookie signed under this token, not expired, not ended (the MAC is checked first: a forged cookie costs no file access). */
  private sessionOf(req: IncomingMessage): Session | undefined {
    const userOf = (name: string) => this.sources.users?.get(name);
    const session = this.keys?.verify(cookieValue(req.headers.cookie, COOKIE_NAME), this.now(), userOf);
    return session && !this.ended.isEnded(session) ? session : undefined;
  }

  /**
   * An authorised `GET /jobs/ID/log?follow=1` (sources.followLog): a stream opened with a session
   * ends when the session does; one the bearer token opened is no session's and is left alone.
   */
  followLog(req: IncomingMessage, res: ServerResponse, job: Job): Promise<void> | void {
    const token = this.sources.token;
    const session =
      token && bearerProblem(req.headers.authorization, token) === undefined ? undefined : this.sessionOf(req);
    if (session) this.streams.hold(session, res);
    return this.sources.followLog?.(req, res, job);
  }

  wantsHtml(req: IncomingMessage): boolean {
    return prefersHtml(req.headers.accept);
  }

  /** The page routes; false for paths that are not theirs (and for `POST /`, a webhook). */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<boolean> {
    const route = url.pathname;
    if (route === '/' && (req.method === 'GET' || req.method === 'HEAD')) await this.statusPage(req, res, url, refuse);
    else if (route === '/login') await this.login(req, res, refuse);
    else if (route === '/logout') await this.logout(req, res, refuse);
    else if (route === '/approve') await this.approve(req, res, refuse);
    else if (route.startsWith('/releases/') && (req.method === 'GET' || req.method === 'HEAD'))
      await this.releasesPage(req, res, route.slice('/releases/'.length), url, refuse);
    else if (route.startsWith('/assets/')) this.asset(req, res, route.slice('/assets/'.length), refuse);
    else if (route === '/favicon.ico') this.asset(req, res, 'favicon.svg', refuse);
    else return false;
    return true;
  }

  private signedIn(req: IncomingMessage): boolean {
    if (!this.sources.token) return false;
    return this.hasSession(req) || bearerProblem(req.headers.authorization, this.sources.token) === undefined;
  }

  private viewerOf(req: IncomingMessage): Viewer {
    const viewer: Viewer = { signedIn: this.signedIn(req), canSignIn: Boolean(this.sources.token), now: this.now() };
    const session = viewer.signedIn ? this.sessionOf(req) : undefined;
    if (session?.user) viewer.user = { name: session.user, csrf: this.keys!.csrfToken(session) };
    return viewer;
  }

  /** `POST /approve` (lib/web/approve-route.ts), with this page's sessions, forms and answers. */
  private approve(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    return handleApprove(
      {
        sources: this.sources,
        sessionOf: (r) => this.sessionOf(r),
        csrfMatches: (session, given) => this.keys?.csrfMatches(session, given) ?? false,
        crossOrigin,
        readForm: (r, s, f) => this.readLoginForm(r, s, f),
        refusePage: (r, s, f, status, why) =>
          this.pageError(r, s, f, status, why, { title: 'Not approved', html: text(why) }),
        donePage: (r, s, title, html) =>
          this.sendPage(r, s, 200, renderNotice(title, html, { base: this.base, viewer: this.viewerOf(r) })),
        audited: (record) => this.audited(record),
      },
      req,
      res,
      refuse,
    );
  }

  private sendPage(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    html: string,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, {
      ...PAGE_HEADERS,
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': Buffer.byteLength(html),
      ...headers,
    });
    res.end(req.method === 'HEAD' ? undefined : html);
  }

  /**
   * Whether this viewer is kept from the pages; if so the answer is sent: 404 when pages are off
   * or cannot be reached (no token with ui: token), the login form (401) when a session is needed
   * (`signedInOnly`: also with ui: public).
   */
  private pageRefused(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
    next: string,
    signedInOnly = false,
  ): boolean {
    const { sources, base } = this;
    if (sources.ui === 'off') {
      refuse(404, 'not found', 'the status page is off (ui: off)');
      return true;
    }
    if ((sources.ui === 'public' && !signedInOnly) || this.signedIn(req)) return false;
    if (!sources.token) {
      this.sendPage(
        req,
        res,
        404,
        renderNotice(
          'Status page not set up',
          'The status page needs <code>token:</code> in the config (with <code>ui: token</code>, the default), or <code>ui: public</code>.',
          { base },
        ),
      );
      return true;
    }
    // A cookie that opens nothing (logged out, ended, expired, of an older format or token) is cleared with the form.
    const stale = cookieValue(req.headers.cookie, COOKIE_NAME) !== undefined;
    this.sendPage(
      req,
      res,
      401,
      renderLoginPage({ next, base, users: Boolean(sources.users) }),
      stale ? { 'Set-Cookie': clearedCookie(this.cookie) } : {},
    );
    return true;
  }

  private async statusPage(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<void> {
    if (this.pageRefused(req, res, refuse, '/')) return;
    const page = Number.parseInt(url.searchParams.get('page') ?? '1', 10);
    const repo = url.searchParams.get('repo') || undefined;
    const { sources, base } = this;
    // Awaited before the jobs are read, so they are as fresh as the page: DESTs may take a moment.
    const environments = repo ? undefined : await sources.environments?.();
    const help = { serverUrl: this.serverUrl(req), configFile: sources.configFile };
    this.sendPage(
      req,
      res,
      200,
      renderStatusPage({
        jobs: sources.jobs(),
        repos: sources.repos(),
        repo,
        page: Number.isFinite(page) ? page : 1,
        viewer: this.viewerOf(req),
        base,
        help,
        fleet: sources.fleet?.(),
        previews: sources.previews?.(),
        environments,
      }),
    );
  }

  /** `/releases/APP`: the app's ledger and its hosts (lib/web/releases-page.ts). */
  private async releasesPage(
    req: IncomingMessage,
    res: ServerResponse,
    app: string,
    url: URL,
    refuse: Refuse,
  ): Promise<void> {
    const noApp = () =>
      this.pageError(req, res, refuse, 404, 'not found', {
        title: 'No such app',
        html: `No app of this hook-server's <code>fleet:</code> is named ${text(app.slice(0, 100))}.`,
      });
    // App names are plain (lib/core/names.ts): a path that needs decoding names none.
    if (!/^[A-Za-z0-9._-]+$/.test(app) || !this.sources.releases) return noApp();
    if (this.pageRefused(req, res, refuse, `/releases/${app}`)) return;
    const page = Math.max(1, Number.parseInt(url.searchParams.get('page') ?? '1', 10) || 1);
    const view = this.sources.releases(app, { limit: RELEASES_SHOWN, offset: (page - 1) * RELEASES_SHOWN });
    if (!view) return noApp();
    this.sendPage(req, res, 200, renderReleasesPage({ view: await view, viewer: this.viewerOf(req), base: this.base }));
  }

  /** `GET /audit` in a browser: the audit trail's newest entries, for a signed-in viewer only (ui: public too). */
  async auditPage(req: IncomingMessage, res: ServerResponse, url: URL, refuse: Refuse): Promise<void> {
    const { audit } = this.sources;
    if (!audit) return refuse(404, 'not found');
    if (this.pageRefused(req, res, refuse, '/audit', true)) return;
    const since = url.searchParams.get('since') ?? '';
    const input = { viewer: this.viewerOf(req), base: this.base, since };
    try {
      const entries = (await audit.read(auditQueryOf(url.searchParams))).map((r) => r.entry);
      this.sendPage(req, res, 200, renderAuditPage({ ...input, entries }));
    } catch (error) {
      // The page again with the reason in it, so the viewer can mend the Since box.
      const [status, reason] =
        error instanceof ValidationError ? [400, error.message] : [503, 'Could not read the audit trail, try again.'];
      this.logRefused(req, status, messageOf(error));
      this.sendPage(
        req,
        res,
        status,
        renderAuditPage({ ...input, entries: [], error: reason }),
        status === 503 ? { 'Retry-After': '10' } : {},
      );
    }
  }

  /**
   * A page that cannot be shown: to a browser, a page in the pages' layout that says why, with
   * `status`; to any other client, refuse's JSON error, as the read API answers.
   */
  private pageError(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
    status: number,
    message: string,
    page: { title: string; html: string },
  ): void {
    if (!this.wantsHtml(req)) return refuse(status, message);
    this.logRefused(req, status, message);
    if (!req.complete) req.resume();
    const html = renderNotice(page.title, page.html, { base: this.base, viewer: this.viewerOf(req) });
    this.sendPage(req, res, status, html);
  }

  private logRefused(req: IncomingMessage, status: number, reason: string): void {
    const fields = { status, path: new URL(req.url ?? '/', 'http://localhost').pathname.slice(0, 100), reason };
    if (status >= 500) this.sources.log?.error('page refused', fields);
    else this.sources.log?.warn('page refused', fields);
  }

  /**
   * `record` in the audit trail, on disk before the answer. When it cannot be written: given
   * `refuse`, the action is refused (503) and false returned; otherwise it is logged and goes on.
   */
  private async audited(record: AuditRecord, refuse?: Refuse): Promise<boolean> {
    try {
      await this.sources.audit?.record(record);
      return true;
    } catch (error) {
      this.sources.log?.error(`could not record ${record.action} in the audit trail`, { error: messageOf(error) });
      refuse?.(503, `could not record the ${record.action} in the audit trail, try again`, messageOf(error));
      return !refuse;
    }
  }

  /** Where forges reach this server, for the page's webhook URLs: `public_url:`, else the address this request was sent to. */
  private serverUrl(req: IncomingMessage): string {
    if (this.sources.publicUrl) return this.sources.publicUrl.replace(/\/+$/, '');
    return `http://${req.headers.host ?? 'HOST:PORT'}${this.base}`;
  }

  async jobPage(req: IncomingMessage, res: ServerResponse, id: string, refuse: Refuse): Promise<void> {
    const { sources, base } = this;
    if (!sources.isJobId(id))
      return this.pageError(req, res, refuse, 404, 'not found', {
        title: 'No such job',
        html: 'This is not a job id: a job page is <code>/jobs/ID</code>, with the id the job list shows.',
      });
    if (this.pageRefused(req, res, refuse, `/jobs/${id}`)) return;
    const job = sources.get(id);
    if (!job)
      return this.sendPage(
        req,
        res,
        404,
        renderNotice('No such job', 'There is no job with this id (old jobs are dropped from the journal).', { base }),
      );
    const viewer = this.viewerOf(req);
    const log = viewer.signedIn ? await this.logText(job) : undefined;
    const scripts = assetNamed('log-follow.js') ? ['log-follow.js'] : [];
    this.sendPage(
      req,
      res,
      200,
      renderJobPage({ job, viewer, log, deliveries: sources.deliveries.of(job.id), scripts, base }),
    );
  }

  private async logText(job: Job): Promise<string | undefined> {
    const source = await this.sources.readLog(job).catch(() => undefined);
    if (!source) return undefined;
    if ('text' in source) return source.text;
    // The process's own output: only its end is shown, so a huge file is not read whole.
    const handle = await open(source.file, 'r').catch(() => undefined);
    if (!handle) return undefined;
    try {
      const length = Math.min(source.size, LOG_SHOWN_BYTES + 1);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, source.size - length);
      return buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  }

  private async login(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    const { sources, keys, base } = this;
    if (sources.ui === 'off' || !keys)
      return refuse(
        404,
        'not found',
        sources.ui === 'off' ? 'the status page is off (ui: off)' : 'no token: in the config',
      );
    if (req.method === 'GET' || req.method === 'HEAD')
      return this.sendPage(
        req,
        res,
        200,
        renderLoginPage({
          next: safeNext(new URL(req.url ?? '/', 'http://localhost').searchParams.get('next')),
          base,
          users: Boolean(sources.users),
        }),
      );
    if (req.method !== 'POST') return refuse(405, 'method not allowed', undefined, { Allow: 'GET, HEAD, POST' });
    if (crossOrigin(req)) return refuse(403, 'forbidden', 'login form posted from another origin');
    const client = peerAddress(req);
    if (this.limited(client, refuse)) return;
    if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(String(req.headers['content-type'] ?? '')))
      return refuse(415, 'unsupported content type', 'login needs a form body');
    const form = await this.readLoginForm(req, res, refuse);
    // Asked again once the body is in, with no await until the count is updated: requests sent
    // at once on many connections all pass the first look while their bodies are read.
    if (!form || this.limited(client, refuse)) return;
    const next = safeNext(form.get('next'));
    if (form.has('password')) return this.loginNamed(req, res, refuse, form, next);
    // A name the viewer gives (not checked: everyone shares the one token), for the audit trail.
    const user = form.get('user')?.trim().slice(0, 100);
    const detail = user ? { user } : null;
    if (!keys.tokenMatches(form.get('token') ?? '')) {
      this.limiter.fail(client);
      await this.audited({ action: 'login.failed', actor: 'anonymous', from: client, subject: null, detail });
      return this.sendPage(
        req,
        res,
        401,
        renderLoginPage({ error: 'Wrong token.', next, base, users: Boolean(sources.users) }),
      );
    }
    this.limiter.succeed(client);
    await this.startSession(res, refuse, keys.issue(this.now()), { client, detail, next });
  }

  /**
   * A named user's login (`ui_users:`): name and password checked by the users file, in the same
   * time whether the name exists or not; wrong ones count against the client as wrong tokens do.
   */
  private async loginNamed(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
    form: URLSearchParams,
    next: string,
  ): Promise<void> {
    const { sources, base } = this;
    const client = peerAddress(req);
    const name = (form.get('name') ?? '').trim().slice(0, 64);
    const users = sources.users;
    // Counted as wrong before scrypt runs (a success clears it): guesses sent at once on many
    // connections cannot all pass the limiter while their hashes are computed.
    this.limiter.fail(client);
    const user = users ? await users.login(name, form.get('password') ?? '') : undefined;
    const detail = { user: name, with: 'password' };
    if (!user) {
      await this.audited({ action: 'login.failed', actor: 'anonymous', from: client, subject: null, detail });
      const error = users ? 'Wrong user name or password.' : 'No user can log in with a password here (no ui_users:).';
      return this.sendPage(req, res, 401, renderLoginPage({ error, next, base, users: Boolean(users) }));
    }
    this.limiter.succeed(client);
    await this.startSession(res, refuse, this.keys!.issue(this.now(), user), { client, detail, next });
  }

  /** The login recorded, then the cookie set and the browser sent on to `next`. */
  private async startSession(
    res: ServerResponse,
    refuse: Refuse,
    cookie: string,
    { client, detail, next }: { client: string; detail: Record<string, string> | null; next: string },
  ): Promise<void> {
    const actor = sessionActor(cookie);
    const { base } = this;
    if (!(await this.audited({ action: 'login', actor, from: client, subject: null, detail }, refuse))) return;
    res.writeHead(303, {
      ...PAGE_HEADERS,
      Location: `${base}${next}`,
      'Set-Cookie': sessionCookie(cookie, this.cookie),
      'Content-Length': 0,
    });
    res.end();
  }

  /** Whether `client` is kept waiting after wrong tokens; if so it is answered 429. */
  private limited(client: string, refuse: Refuse): boolean {
    const wait = this.limiter.blockedFor(client);
    if (wait > 0)
      refuse(429, 'too many wrong tokens, wait and try again', `login refused for ${wait} s more`, {
        'Retry-After': String(wait),
      });
    return wait > 0;
  }

  private async readLoginForm(
    req: IncomingMessage,
    res: ServerResponse,
    refuse: Refuse,
  ): Promise<URLSearchParams | undefined> {
    try {
      const body =
        (await receiveBody(req, { res, limit: LOGIN_BODY_MAX, timeoutMs: 10_000 })).buffer ?? Buffer.alloc(0);
      return new URLSearchParams(body.toString('utf8'));
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      return void refuse(status, status === 413 ? 'body too large' : 'could not read body', messageOf(error));
    }
  }

  /**
   * Ends the session on the server (the same cookie, copied, is refused from now on, also after a
   * restart), then clears it in the browser. Only a valid cookie is written down: one that was
   * never issued here needs no ending, and strangers cannot make the file grow.
   */
  private async logout(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<void> {
    if (req.method !== 'POST') return refuse(405, 'method not allowed', undefined, { Allow: 'POST' });
    if (crossOrigin(req)) return refuse(403, 'forbidden', 'logout posted from another origin');
    if (!req.complete) req.resume();
    const session = this.sessionOf(req);
    if (session) {
      // Its streams are cut in the same tick as ended.end below marks it ended (before it
      // writes): one that reconnects is refused.
      this.streams.end(session.id);
      try {
        await this.ended.end(session, this.now());
      } catch (error) {
        // Refused by this process from now on; a restart would forget it, so the viewer is told.
        this.sources.log?.error('could not record a logout; the session is refused until hook-server restarts', {
          error: messageOf(error),
        });
        const message =
          'You are logged out in this browser, but the server could not record it: a copy of this ' +
          "session's cookie would open the page again after hook-server restarts. Ask the operator to run <code>hook-server --end-sessions</code>.";
        return this.sendPage(req, res, 500, renderNotice('Logout not recorded', message, { base: this.base }), {
          'Set-Cookie': clearedCookie(this.cookie),
        });
      }
      const from = peerAddress(req);
      await this.audited({ action: 'logout', actor: sessionActor(session.id), from, subject: null, detail: null });
    }
    res.writeHead(303, {
      ...PAGE_HEADERS,
      Location: `${this.base}/`,
      'Set-Cookie': clearedCookie(this.cookie),
      'Content-Length': 0,
    });
    res.end();
  }

  private asset(req: IncomingMessage, res: ServerResponse, name: string, refuse: Refuse): void {
    if (this.sources.ui === 'off') return refuse(404, 'not found', 'the status page is off (ui: off)');
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return refuse(405, 'method not allowed', undefined, { Allow: READ_METHODS });
    const found = assetNamed(name);
    if (!found) return refuse(404, 'not found');
    const headers = {
      'Content-Type': found.type,
      'Cache-Control': 'no-cache',
      ETag: found.etag,
      'X-Content-Type-Options': 'nosniff',
    };
    if (matchesEtag(req.headers['if-none-match'], found.etag)) {
      res.writeHead(304, headers);
      return void res.end();
    }
    res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(found.body) });
    res.end(req.method === 'HEAD' ? undefined : found.body);
  }
}

function safeNext(value: string | null): string {
  return value && SAFE_NEXT.test(value) ? value : '/';
}

/** A form posted by another site's page (an Origin header naming another host). */
function crossOrigin(req: IncomingMessage): boolean {
  // Browsers say where a request comes from in Sec-Fetch-Site; under `Referrer-Policy:
  // no-referrer` they send `Origin: null` even for the page's own form, so that header decides
  // only for clients that do not send Sec-Fetch-Site.
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
  const origin = req.headers.origin;
  if (!origin || origin === 'null') return origin === 'null';
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}
