// `POST /approve`: the Approve button of the Environments section. Only a named user's session
// (ui_users:) may press it, from this site (Sec-Fetch-Site / Origin) and with the session's CSRF
// token; hook-server (sources.approve) then checks the release named is the one waiting, and signs.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { nameProblem, userNameProblem } from '../core/names.ts';
import { escapeMarkup } from '../core/escape.ts';
import { peerAddress } from '../http/peer.ts';
import type { AuditRecord } from '../audit/trail.ts';
import { sessionActor } from '../audit/trail.ts';
import type { PageApprovalRequest, ReadSources, Refuse } from './read-sources.ts';
import type { Session } from './session.ts';

/** What the route needs of the page routes: the session, its CSRF check, the form and the answers. */
export interface ApproveContext {
  sources: Pick<ReadSources, 'approve' | 'log'>;
  sessionOf(req: IncomingMessage): Session | undefined;
  csrfMatches(session: Session, given: string): boolean;
  crossOrigin(req: IncomingMessage): boolean;
  readForm(req: IncomingMessage, res: ServerResponse, refuse: Refuse): Promise<URLSearchParams | undefined>;
  /** A refusal: a page in the pages' layout to a browser, JSON to other clients. */
  refusePage(req: IncomingMessage, res: ServerResponse, refuse: Refuse, status: number, why: string): void;
  donePage(req: IncomingMessage, res: ServerResponse, title: string, html: string): void;
  audited(record: AuditRecord): Promise<boolean>;
}

/** The form's release, or why it is not one (names as elsewhere, a sha256 of 64 hex digits). */
export function approvalFormProblem(form: URLSearchParams): string | undefined {
  for (const field of ['app', 'env', 'version'])
    if (nameProblem(form.get(field) ?? '')) return `the form's ${field} is not a name`;
  if (!/^[0-9a-f]{64}$/.test(form.get('sha256') ?? '')) return "the form's sha256 is not 64 hex digits";
  return undefined;
}

export async function handleApprove(
  ctx: ApproveContext,
  req: IncomingMessage,
  res: ServerResponse,
  refuse: Refuse,
): Promise<void> {
  const { approve } = ctx.sources;
  if (!approve) return refuse(404, 'not found', 'no ui_users: in the config');
  if (req.method !== 'POST') return refuse(405, 'method not allowed', undefined, { Allow: 'POST' });
  // Refused before the body is read or anything looked up: another site's page posted it.
  if (ctx.crossOrigin(req)) return refuse(403, 'forbidden', 'approval posted from another origin');
  const session = ctx.sessionOf(req);
  if (!session?.user || userNameProblem(session.user)) {
    if (!req.complete) req.resume();
    return ctx.refusePage(req, res, refuse, 403, 'Only a user logged in with a name and password can approve.');
  }
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(String(req.headers['content-type'] ?? '')))
    return refuse(415, 'unsupported content type', 'an approval needs a form body');
  const form = await ctx.readForm(req, res, refuse);
  if (!form) return;
  if (!ctx.csrfMatches(session, form.get('csrf') ?? ''))
    return ctx.refusePage(req, res, refuse, 403, 'This form is not from your session: reload the page and try again.');
  const problem = approvalFormProblem(form);
  if (problem) return ctx.refusePage(req, res, refuse, 400, `Not an approval: ${problem}.`);
  const request: PageApprovalRequest = {
    app: form.get('app')!,
    env: form.get('env')!,
    version: form.get('version')!,
    sha256: form.get('sha256')!,
    user: session.user,
  };
  const answer = await approve(request);
  if ('refused' in answer) {
    ctx.sources.log?.warn('approval refused', {
      user: request.user,
      app: request.app,
      env: request.env,
      status: answer.status,
    });
    return ctx.refusePage(req, res, refuse, answer.status, answer.refused);
  }
  const { approved } = answer;
  await ctx.audited({
    action: 'release.approve',
    actor: sessionActor(session.id),
    from: peerAddress(req),
    subject: approved.app,
    detail: {
      version: approved.version,
      sha256: approved.sha256,
      env: approved.env,
      user: request.user,
      via: 'status-page',
    },
  });
  ctx.donePage(
    req,
    res,
    'Approved',
    `${escapeMarkup(request.user)} approved ${escapeMarkup(approved.app)} ${escapeMarkup(approved.version)} ` +
      `(sha256 <code>${approved.sha256}</code>) for ${escapeMarkup(approved.env)} until ` +
      `${escapeMarkup(approved.expires)}: ${approved.given} of ${approved.required} approvals.`,
  );
}
