// Telling approvers that a release waits for them (docs/environments.md "Approvals"), through the
// top-level notify targets: Slack's {text}, the signed webhook's JSON, a plain-text e-mail. Each
// request is told once: a marker under STATE/told/ is made with O_EXCL before anything is sent, so
// a promote run again (or two at once) while still waiting tells no one twice.
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { showBidiControls } from '../core/escape.ts';
import { validateName } from '../core/names.ts';
import { signRequest } from '../http/signing.ts';
import type { ResolvedTarget } from '../config/notify.ts';
import { sendWithRetries, type RetryPolicy } from './background.ts';
import { postJson, type PostResult } from './deliver.ts';
import { headerText, sendEmail } from './email.ts';
import { DELIVERY_HEADER } from './notifier.ts';

export interface ApprovalRequest {
  app: string;
  version: string;
  env: string;
  sha256: string;
  required: number;
  given: number;
  /** approvers' uids not yet approved */
  waitingFor: string[];
  /** the command an approver runs */
  command: string;
  /** hook-server's public_url, for a link to the status page, if set */
  publicUrl?: string;
}

export interface TellOptions {
  /** The folder that keeps the `told/` markers. */
  stateDir: string;
  /** Per attempt (default 10 s). */
  timeoutMs?: number;
  /** Ends attempts and waits at once. */
  signal?: AbortSignal;
  /** Accepted for the caller's convenience; targets come resolved, so nothing here reads it. */
  env?: NodeJS.ProcessEnv;
}

export interface ApprovalOutcome {
  /** The target's config key (`notify[0]`), never its URL. */
  where: string;
  ok: boolean;
  detail: string;
}

export interface TellResult {
  /** At least one target took the message. */
  told: boolean;
  /** A marker said this request was told before: nothing was sent. */
  already: boolean;
  outcomes: ApprovalOutcome[];
}

/** Three attempts, 250 ms then 500 ms apart; a Retry-After is honoured up to 2 s. */
export const APPROVAL_RETRY: RetryPolicy = { attempts: 3, backoffMs: 250, maxWaitMs: 2_000 };

/** `APP-VERSION-ENV-SHA12`: the marker's name, and (prefixed `approval-`) the webhook's delivery id. */
export function approvalRequestId({ app, version, env, sha256 }: ApprovalRequest): string {
  return `${app}-${version}-${env}-${sha256.slice(0, 12)}`;
}

/**
 * Tells every target once per (app, version, env, sha256): a marker file `told/APP-VERSION-ENV-SHA12` in `stateDir`
 * is created with O_EXCL (flag 'wx') BEFORE sending; if it exists already, nothing is sent and the result says so.
 * Targets' `on:` events are not consulted (an approval request is always sent to the top-level targets).
 * Each target is tried with a bounded retry (3 attempts, short backoff); a failure is returned, never thrown.
 * A request that is not well formed, or a marker that cannot be written, is thrown (before anything is sent).
 */
export async function tellApprovers(
  targets: ResolvedTarget[],
  request: ApprovalRequest,
  opts: TellOptions,
): Promise<TellResult> {
  checkRequest(request);
  if (targets.length === 0) return { told: false, already: false, outcomes: [] };
  if (!(await markTold(opts.stateDir, request))) return { told: false, already: true, outcomes: [] };
  const outcomes = await Promise.all(targets.map((target) => tellOne(target, request, opts)));
  return { told: outcomes.some((o) => o.ok), already: false, outcomes };
}

/** Names that become a file name are plain names; the sha256 is the tarball's, in full. */
function checkRequest(request: ApprovalRequest): void {
  validateName(request.app, 'app name');
  validateName(request.version, 'version');
  validateName(request.env, 'environment name');
  if (!/^[0-9a-f]{64}$/.test(request.sha256))
    throw new ValidationError(
      `Invalid sha256 ${JSON.stringify(String(request.sha256).slice(0, 70))}: use 64 lower-case hex digits.`,
    );
  for (const [what, n] of [
    ['required', request.required],
    ['given', request.given],
  ] as const)
    if (!Number.isSafeInteger(n) || n < 0)
      throw new ValidationError(`Invalid ${what} count ${JSON.stringify(n)}: use a whole number, 0 or more.`);
}

/** Create the marker; false when it exists already (told before, or being told by another run right now). */
async function markTold(stateDir: string, request: ApprovalRequest): Promise<boolean> {
  const folder = path.join(stateDir, 'told');
  const file = path.join(folder, approvalRequestId(request));
  try {
    await mkdir(folder, { recursive: true });
    const handle = await open(file, 'wx', 0o644);
    try {
      const { app, version, env, sha256 } = request;
      await handle.writeFile(`${JSON.stringify({ app, version, env, sha256, at: new Date().toISOString() })}\n`);
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new WorkError(
      `Could not record that approvers were told (${file}): ${messageOf(error)}. Make ${stateDir} writable and run again.`,
      { cause: error },
    );
  }
}

/** Every attempt at one target; whatever happens becomes its outcome. */
async function tellOne(target: ResolvedTarget, request: ApprovalRequest, opts: TellOptions): Promise<ApprovalOutcome> {
  const send = senderFor(target, request, opts);
  try {
    const { result, attempts } = await sendWithRetries(send, APPROVAL_RETRY, {
      stop: opts.signal ?? new AbortController().signal,
    });
    const tries = attempts > 1 ? ` after ${attempts} attempts` : '';
    return { where: target.where, ok: result.ok, detail: `${result.detail}${tries}` };
  } catch (error) {
    return { where: target.where, ok: false, detail: `not sent: ${messageOf(error)}` };
  }
}

/** One attempt at telling `target`. */
function senderFor(target: ResolvedTarget, request: ApprovalRequest, opts: TellOptions): () => Promise<PostResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const { signal } = opts;
  if (target.email) {
    const message = approvalEmail(request, { to: target.email.to, from: target.email.from });
    return () => sendEmail(target.email!.sendmail, message, { timeoutMs, signal });
  }
  const url = target.url!;
  const body = JSON.stringify(target.channel === 'slack' ? approvalSlackBody(request) : approvalWebhookBody(request));
  const id: Record<string, string> =
    target.channel === 'webhook' ? { [DELIVERY_HEADER]: `approval-${approvalRequestId(request)}` } : {};
  // Signed afresh for each attempt (a new timestamp and nonce); the delivery id stays the same.
  return () =>
    postJson(
      url,
      body,
      { ...id, ...(target.secret ? signRequest(target.secret, 'POST', url.pathname + url.search) : {}) },
      { timeoutMs, signal },
    );
}

/** The status page under public_url. */
function statusPageUrl(publicUrl: string | undefined): string | undefined {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/` : undefined;
}

/** One line of text given to us: no control characters, bidi controls shown. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return showBidiControls(text.replace(/[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]+/g, ' ').trim());
}

/** `my-app 1.4.0 waits for approval into production (0 of 1; waiting for Alice <alice@example.com>)` */
function summaryOf(request: ApprovalRequest): string {
  const { app, version, env, required, given, waitingFor } = request;
  const waiting = waitingFor.length ? `; waiting for ${waitingFor.map(oneLine).join(', ')}` : '';
  return `${app} ${version} waits for approval into ${env} (${given} of ${required}${waiting})`;
}

/** Slack's three control characters, in text Slack did not make. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function approvalSlackBody(request: ApprovalRequest): { text: string } {
  const link = statusPageUrl(request.publicUrl);
  const text = `${escapeSlack(`${summaryOf(request)}: ${oneLine(request.command)}`)}${link ? ` <${link}|status page>` : ''}`;
  return { text };
}

export function approvalWebhookBody(request: ApprovalRequest) {
  const { app, version, env, sha256, required, given, waitingFor, command } = request;
  const url = statusPageUrl(request.publicUrl);
  return {
    event: 'approval.requested',
    app,
    version,
    env,
    sha256,
    required,
    given,
    waiting_for: waitingFor,
    command,
    ...(url ? { url } : {}),
  };
}

/** The whole message, headers and body, as `sendmail -t -oi` reads it. */
export function approvalEmail(
  request: ApprovalRequest,
  { to, from, now = new Date() }: { to: string; from?: string; now?: Date },
): string {
  const { app, version, env, sha256 } = request;
  const link = statusPageUrl(request.publicUrl);
  const headers = [
    `To: ${to}`,
    ...(from ? [`From: ${from}`] : []),
    `Subject: ${headerText(showBidiControls(`[shipkit] ${app} ${version} waits for approval into ${env}`))}`,
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    // RFC 3834: machine-made, so vacation responders stay quiet.
    'Auto-Submitted: auto-generated',
    `${DELIVERY_HEADER}: ${headerText(`approval-${approvalRequestId(request)}`)}`,
  ];
  const body = [
    `${summaryOf(request)}.`,
    '',
    'An approver runs:',
    '',
    `    ${oneLine(request.command)}`,
    '',
    `sha256:  ${sha256}`,
    ...(link ? [`status:  ${link}`] : []),
  ];
  return `${headers.join('\n')}\n\n${body.join('\n')}\n`;
}
