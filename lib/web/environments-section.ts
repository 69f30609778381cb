// The status page's Environments section (docs/hook-server.md): per app of `apps:`, each
// environment's release, its deploy windows now, and the release waiting for its approvals with who
// approved, who is awaited and the command that approves. Names, versions, uids and errors come
// from DESTs and key files: each is escaped and its bidi controls shown (lib/core/escape.ts).
import { escapeMarkup, showBidiControls } from '../core/escape.ts';
import type { EnvironmentsView, EnvironmentView, WaitingRelease } from './read-sources.ts';

/** Who reads the section (status-page.ts's Viewer is one): signed in, and a named user with the session's CSRF token. */
export interface SectionViewer {
  signedIn: boolean;
  user?: { name: string; csrf: string };
}

const shown = (value: string) => `<bdi>${escapeMarkup(showBidiControls(value))}</bdi>`;
const muted = (html: string) => `<span class="muted">${html}</span>`;

/** A time as the rest of the page shows one (`2026-11-24 18:02:11 UTC`). */
function when(iso: string): string {
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return shown(iso);
  const exact = new Date(at).toISOString();
  return `<time datetime="${exact}">${exact.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`;
}

/** VERSION's release: the version, ROLLOUT below 100, SEQ. */
function releaseCell(env: EnvironmentView, signedIn: boolean): string {
  if (env.error)
    return `<span class="state state-failed">cannot be read</span>${signedIn ? `: ${shown(env.error)}` : ''}`;
  const current = env.current;
  if (!current) return muted('nothing published');
  const parts = [`<strong>${shown(current.version)}</strong>`];
  if (current.rollout < 100)
    parts.push(`<span class="state state-running">ROLLOUT ${escapeMarkup(String(current.rollout))} %</span>`);
  if (current.seq !== null) parts.push(muted(`SEQ ${escapeMarkup(String(current.seq))}`));
  return parts.join(' ');
}

function windowCell({ window }: EnvironmentView): string {
  const until = window.until ? ` until ${when(window.until)}` : '';
  if (window.open) return `<span class="state state-succeeded">open</span>${until}`;
  return `<span class="state state-queued">closed</span>: ${shown(window.reason ?? 'closed')}${until}`;
}

/** `shipkit approve …` for this release and environment: what an approver runs with their own key. */
export function approveCommand(app: string, version: string, env: string): string {
  return `shipkit approve ${app} ${version} --env ${env} --key KEY`;
}

/** The waiting release: N of M approvals; for signed-in viewers who approved, who is awaited, what was refused, the command. */
function waitsCell(app: string, env: EnvironmentView, viewer: SectionViewer, base: string): string {
  const signedIn = viewer.signedIn;
  const waits = env.waits;
  if (env.approvals === null) return '';
  if (!waits) return muted('nothing waits');
  const head = `<strong>${shown(waits.version)}</strong> from ${shown(waits.from)}: `;
  if (waits.error)
    return `${head}<span class="state state-failed">approvals not counted</span>${signedIn ? `: ${shown(waits.error)}` : ''}`;
  const count = `${waits.approved.length} of ${waits.required} approvals`;
  const ready = waits.approved.length >= waits.required;
  const lines = [`${head}<span class="state ${ready ? 'state-succeeded' : 'state-queued'}">${count}</span>`];
  if (signedIn) lines.push(...detailLines(app, env.name, waits));
  const button = viewer.user && waits.sha256 && waits.users.includes(viewer.user.name);
  return (
    lines.map((line) => `<div>${line}</div>`).join('') +
    (button ? approveForm(app, env.name, { ...waits, sha256: waits.sha256! }, viewer.user!.csrf, base) : '')
  );
}

/**
 * The Approve button of a status-page user named in `approvals: from:`: the form names the release
 * as shown (hook-server approves only if it still waits) and carries the session's CSRF token.
 */
function approveForm(app: string, env: string, waits: WaitingRelease & { sha256: string }, csrf: string, base: string) {
  const field = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeMarkup(value)}">`;
  return (
    `<form class="approve" method="post" action="${base}/approve">` +
    field('app', app) +
    field('env', env) +
    field('version', waits.version) +
    field('sha256', waits.sha256) +
    field('csrf', csrf) +
    `<button type="submit">Approve ${shown(waits.version)} for ${shown(env)}</button></form>`
  );
}

function detailLines(app: string, env: string, waits: WaitingRelease): string[] {
  const list = (uids: string[]) => uids.map(shown).join(', ');
  return [
    waits.approved.length ? `approved by ${list(waits.approved)}` : '',
    waits.awaited.length ? `awaited: ${list(waits.awaited)}` : '',
    ...waits.refused.map((line) => `refused: ${shown(line)}`),
    waits.approved.length < waits.required
      ? `approve with <code>${shown(approveCommand(app, waits.version, env))}</code>`
      : '',
  ].filter(Boolean);
}

function appTable(app: string, environments: EnvironmentView[], viewer: SectionViewer, base: string): string {
  const signedIn = viewer.signedIn;
  const rows = environments
    .map(
      (env) =>
        `<tr><td>${shown(env.name)}</td><td>${releaseCell(env, signedIn)}</td><td>${windowCell(env)}</td>` +
        `<td class="message">${waitsCell(app, env, viewer, base)}</td></tr>`,
    )
    .join('\n');
  return `<h3>${shown(app)}</h3>
<table class="environments"><thead><tr><th>Environment</th><th>Release</th><th>Window</th><th>Waits for approval</th></tr></thead>
<tbody>
${rows}
</tbody></table>
`;
}

/**
 * The section, or '' without apps. Errors, approvers' uids, refusals and the approve command are
 * for signed-in viewers (with `ui: public` anyone sees the rest); the Approve button for a named
 * user whom `approvals: from:` lists (`ui:NAME`).
 */
export function renderEnvironmentsSection(
  view: EnvironmentsView | undefined,
  viewer: SectionViewer,
  base = '',
): string {
  if (!view?.apps.length) return '';
  const tables = view.apps.map((a) => appTable(a.app, a.environments, viewer, base)).join('');
  return `<h2>Environments</h2>
${tables}<p class="muted">Read from each DEST at ${when(view.read)}.</p>
`;
}
