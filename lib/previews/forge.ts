// What the forge hears of a preview (docs/previews.md, "What the forge hears"): the commit status
// `shipkit/preview` on the pull request's head, and one comment on it, made once and edited after.
// GitHub (and Enterprise), Gitea/Forgejo, GitLab (merge request notes). Retried on 5xx and network
// errors, never throws; the token goes in headers only, never into a log or an error.
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ReportForge, ResolvedReport } from '../config/report.ts';
import { DEFAULT_RETRY, sendWithRetries, type RetryPolicy } from '../notify/background.ts';
import {
  MAX_DESCRIPTION,
  forgeState,
  refusalHint,
  statusRequest,
  type StatusRequest,
} from '../notify/commit-status.ts';
import { postJson, type PostResult } from '../notify/deliver.ts';
import type { PreviewRecord } from './store.ts';

export const PREVIEW_CONTEXT = 'shipkit/preview';
/** Hidden in the rendered comment; says which comment is shipkit's. */
export const COMMENT_MARKER = '<!-- shipkit-preview -->';
/** Sender text (a title, a branch) is cut to this many characters. */
export const MAX_SENDER_TEXT = 300;
const TIMEOUT_MS = 10_000;

export interface ForgeTarget {
  forge: ReportForge;
  /** The API base, without a trailing slash. */
  api: string;
  token: string;
}

export interface PreviewNotice {
  /** owner/name as in shipkit.yml (GitLab: the project path). */
  repo: string;
  pr: number;
  /** The head SHA the status goes on. */
  sha: string;
  state: 'pending' | 'success' | 'failure';
  /** Cut to MAX_DESCRIPTION. */
  description: string;
  /** http(s) only; anything else is left out. */
  targetUrl?: string;
  /** The comment's whole markdown body. */
  comment: string;
}

export interface TellOptions {
  /** The id of the comment made before (PreviewRecord.commentId). */
  commentId?: string;
  retry?: RetryPolicy;
  signal?: AbortSignal;
  log: Logger;
}

/** Where `repo` reports to (its resolved `report:` settings), or undefined when it reports to no forge. */
export function forgeTargetOf(reports: ReadonlyMap<string, ResolvedReport>, repo: string): ForgeTarget | undefined {
  const report = reports.get(repo);
  if (!report?.token) return undefined;
  return { forge: report.forge, api: report.api.replace(/\/+$/, ''), token: report.token };
}

interface Call {
  target: ForgeTarget;
  notice: PreviewNotice;
  headers: Record<string, string>;
  policy: RetryPolicy;
  stop: AbortSignal;
  log: Logger;
}

/** Sends the status and creates or edits the one comment; never throws: returns what failed. */
export async function tellForge(
  target: ForgeTarget,
  notice: PreviewNotice,
  opts: TellOptions,
): Promise<{ commentId?: string; errors: string[] }> {
  const problem = noticeProblem(target, notice);
  if (problem) return { commentId: opts.commentId, errors: [problem] };
  try {
    const status = { state: notice.state, context: PREVIEW_CONTEXT, description: cut(notice.description) };
    const request = statusRequest(target, notice.repo, notice.sha, status, httpUrl(notice.targetUrl));
    const call: Call = {
      target,
      notice,
      headers: request.headers, // comments take the same authorization
      policy: opts.retry ?? DEFAULT_RETRY,
      stop: opts.signal ?? new AbortController().signal,
      log: opts.log.child({ repo: notice.repo, pr: notice.pr, forge: target.forge }),
    };
    const [statusError, comment] = await Promise.all([setStatus(call, request), putComment(call, opts.commentId)]);
    const errors = [statusError, comment.error].filter((e): e is string => Boolean(e));
    return { commentId: comment.id, errors: errors.map((e) => withoutToken(e, target.token)) };
  } catch (error) {
    const message = withoutToken(messageOf(error), target.token);
    return { commentId: opts.commentId, errors: [`could not tell ${target.forge}: ${message}`] };
  }
}

/** Why the notice cannot become a request (each part goes into a URL path). */
function noticeProblem(target: ForgeTarget, { repo, pr, sha }: PreviewNotice): string | undefined {
  const parts = repo.split('/');
  const shaped = target.forge === 'gitlab' ? parts.length >= 2 : parts.length === 2;
  if (!shaped || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p) || p === '.' || p === '..'))
    return `cannot tell ${target.forge} of ${JSON.stringify(repo.slice(0, 80))}: not a repository name`;
  if (!Number.isSafeInteger(pr) || pr < 1)
    return `cannot tell ${target.forge} of ${repo}: ${pr} is no pull request number`;
  if (!/^[0-9a-f]{7,64}$/i.test(sha))
    return `cannot tell ${target.forge} of ${repo}#${pr}: the head is not a commit SHA`;
  return undefined;
}

/** One request with retries; `judge` may say a failed attempt is not to be tried again. */
function send(
  call: Call,
  method: 'POST' | 'PATCH' | 'PUT',
  url: URL,
  body: string,
  what: string,
  judge: (result: PostResult) => PostResult = (result) => result,
) {
  const options = { timeoutMs: TIMEOUT_MS, signal: call.stop, method, keepAnswer: true };
  return sendWithRetries(async () => judge(await postJson(url, body, call.headers, options)), call.policy, {
    stop: call.stop,
    onRetry: (failed, attempt, waitMs) =>
      call.log.warn(`${what} failed; trying again`, { attempt, error: failed.detail, wait: `${waitMs / 1000} s` }),
  });
}

function attemptsNote(result: PostResult, attempts: number): string {
  return result.retry ? ` (${attempts} attempt${attempts === 1 ? '' : 's'})` : '';
}

async function setStatus(call: Call, request: StatusRequest): Promise<string | undefined> {
  const { target, notice, log } = call;
  const state = forgeState(target.forge, notice.state);
  const { result, attempts } = await send(call, 'POST', request.url, request.body, 'preview status');
  // GitLab refuses a status that would not change (pending twice) with a 400 that says so.
  const unchanged = target.forge === 'gitlab' && result.status === 400 && /transition/i.test(result.answer ?? '');
  if (result.ok || unchanged) {
    log.info('preview status set', { state, attempts, unchanged: unchanged || undefined });
    return undefined;
  }
  const why = result.retry ? result.detail : refusalHint(result.status, notice.repo, result.detail);
  log.warn('preview status failed', { state, error: why, attempts });
  return `commit status ${PREVIEW_CONTEXT} (${state}) on ${notice.repo}@${notice.sha.slice(0, 7)}: ${why}${attemptsNote(result, attempts)}`;
}

/** The comment's create URL, and the edit URL and method of comment `id`. */
function commentUrls({ forge, api }: ForgeTarget, repo: string, pr: number, id?: string) {
  if (forge === 'gitlab') {
    const notes = `${api}/projects/${encodeURIComponent(repo)}/merge_requests/${pr}/notes`;
    return { create: new URL(notes), edit: new URL(`${notes}/${id}`), editMethod: 'PUT' as const };
  }
  const [owner, name] = repo.split('/').map(encodeURIComponent);
  const issues = `${api}/repos/${owner}/${name}/issues`;
  return {
    create: new URL(`${issues}/${pr}/comments`),
    edit: new URL(`${issues}/comments/${id}`),
    editMethod: 'PATCH' as const,
  };
}

async function putComment(call: Call, commentId: string | undefined): Promise<{ id?: string; error?: string }> {
  const { target, notice, log } = call;
  const held = commentId && /^[0-9]{1,20}$/.test(commentId) ? commentId : undefined;
  const urls = commentUrls(target, notice.repo, notice.pr, held);
  const body = JSON.stringify({ body: notice.comment });
  const where = `${notice.repo}#${notice.pr}`;
  if (held) {
    const { result, attempts } = await send(call, urls.editMethod, urls.edit, body, 'preview comment edit');
    if (result.ok) {
      log.info('preview comment edited', { comment: held, attempts });
      return { id: held };
    }
    if (result.status !== 404) {
      const why = `${commentHint(result, target.forge)}${attemptsNote(result, attempts)}`;
      log.warn('preview comment not edited', { comment: held, error: why });
      return { id: held, error: `comment ${held} on ${where} not edited: ${why}` };
    }
    log.info('preview comment is gone (404); making a new one', { comment: held });
  }
  const { result, attempts } = await send(call, 'POST', urls.create, body, 'preview comment', onlyIfNotMade);
  const id = result.ok ? idOf(result.answer) : undefined;
  if (!id) {
    const why = result.ok ? `${result.detail}, but without a comment id` : commentHint(result, target.forge);
    log.warn('preview comment not made', { error: why, attempts });
    return { error: `comment on ${where} not made: ${why}${attemptsNote(result, attempts)}` };
  }
  log.info('preview comment made', { comment: id, attempts });
  return { id };
}

/**
 * A create is tried again only when the forge cannot have made the comment (it answered 5xx, or
 * nothing listened): after a timeout or a broken connection it may exist, and a second one must not.
 */
function onlyIfNotMade(result: PostResult): PostResult {
  if (!result.retry || result.status !== undefined) return result;
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/.test(result.detail)) return result;
  return { ...result, retry: false, detail: `${result.detail}; not tried again, the comment may have been made` };
}

function commentHint(result: PostResult, forge: ReportForge): string {
  switch (result.status) {
    case 401:
      return 'the report_token was refused (401): it is wrong, expired or revoked';
    case 403:
      return `403: the token may not comment here (${forge === 'github' ? 'GitHub: "Pull requests" or "Issues": read and write' : forge === 'gitea' ? 'Gitea: issue write' : 'GitLab: api scope'}), or a rate limit was hit`;
    case 404:
      return '404: the token cannot see the repository or the pull request';
    default:
      return result.detail;
  }
}

/** The id of a created comment: GitHub, Gitea and GitLab all answer `{"id": 123, …}`. */
function idOf(answer: string | undefined): string | undefined {
  try {
    const id = (JSON.parse(answer ?? '') as { id?: unknown }).id;
    if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return String(id);
    if (typeof id === 'string' && /^[0-9]{1,20}$/.test(id)) return id;
  } catch {
    // not JSON: no id
  }
  return undefined;
}

function httpUrl(text: string | undefined): string | undefined {
  if (!text) return undefined;
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function cut(text: string, max = MAX_DESCRIPTION): string {
  const chars = Array.from(text.replace(/\s+/g, ' ').trim());
  return chars.length <= max ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

function withoutToken(text: string, token: string): string {
  return token.length >= 4 ? text.split(token).join('***') : text;
}

// ---- the comment ---------------------------------------------------------------------------

// Controls, format characters (bidi, zero-width) and line/paragraph separators; ZWJ stays (emoji).
const INVISIBLE = /[\p{Cc}\p{Zl}\p{Zp}]|(?!\u200d)\p{Cf}/gu;
const MARKDOWN = /[\\`*_[\]()!|~$]/g;

/**
 * Sender text (a title, a branch) as inert inline markdown: one line, at most MAX_SENDER_TEXT
 * characters, no HTML, links, code, emphasis, mentions or issue references.
 */
export function inertMarkdown(text: string): string {
  const chars = Array.from(text.replace(INVISIBLE, ' ').replace(/\s+/g, ' ').trim());
  const short = chars.length <= MAX_SENDER_TEXT ? chars.join('') : `${chars.slice(0, MAX_SENDER_TEXT - 1).join('')}…`;
  return short
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(MARKDOWN, (c) => `\\${c}`)
    .replace(/[@#]/g, (c) => `${c}&#8203;`); // a zero-width space: no mention, no cross-reference
}

function link(url: string | undefined, text: string): string | undefined {
  const href = httpUrl(url);
  return href ? `[${text}](<${href}>)` : undefined;
}

function stateLine(r: PreviewRecord, sha: string, opts: { approveCommand?: string; logUrl?: string }): string {
  const reason = r.reason ? `: ${inertMarkdown(r.reason.replace(/\.\s*$/, ''))}` : '';
  const url = httpUrl(r.url);
  switch (r.state) {
    case 'live':
      return `is live at ${url ?? 'its address'} (\`${shortSha(r.live?.sha ?? r.head)}\`).`;
    case 'building': {
      const still = r.live && url ? ` \`${shortSha(r.live.sha)}\` still serves at ${url}.` : '';
      return `is building \`${sha}\`.${still}`;
    }
    case 'waiting for approval': {
      const command = (opts.approveCommand ?? `shipkit previews approve ${r.repo}#${r.pr}`).replace(/[`\p{Cc}]/gu, '');
      return (
        `waits for approval before \`${sha}\` is built${reason}.\n\n` +
        `To build it, run \`${command}\` on the preview machine, or add the label \`preview\`.`
      );
    }
    case 'failed': {
      const log = link(opts.logUrl, 'the build log');
      return `failed at \`${sha}\`${reason}.${log ? ` See ${log}.` : ''}`;
    }
    case 'torn down':
      return `was torn down${reason}.`;
    default:
      return `is ${inertMarkdown(String(r.state))}.`;
  }
}

function shortSha(sha: string): string {
  return /^[0-9a-f]{7,64}$/i.test(sha) ? sha.slice(0, 7).toLowerCase() : 'unknown';
}

/** The comment's whole markdown body for a preview record. */
export function previewComment(r: PreviewRecord, opts: { approveCommand?: string; logUrl?: string } = {}): string {
  const sha = shortSha(r.head);
  const branch = r.headRef
    ? ` of ${r.fromFork && r.headRepo ? `${inertMarkdown(r.headRepo)}:` : ''}${inertMarkdown(r.headRef)}`
    : '';
  const title = r.title ? `: ${inertMarkdown(r.title)}` : '';
  return [
    COMMENT_MARKER,
    `**Preview \`pr-${r.pr}\`** ${stateLine(r, sha, opts)}`,
    '',
    `<sub>Head \`${sha}\`${branch}${title}. shipkit edits this comment as the preview changes.</sub>`,
    '',
  ].join('\n');
}
