// The status page's HTML (docs/hook-server.md): the job list with each repo's last
// states, a job page, the login form. Pure functions of what they are handed; no script needed.
// Every string that came from a payload or a log (commit message, author, branch, output) goes
// through `text`/`plain`: escaped, and its bidi controls shown as visible escapes, so neither
// markup nor a right-to-left override can change what the page says around it.
import { endedUpToDate, type Job } from '../jobs/job.ts';
import type { DeliveryRecord } from '../notify/outcomes.ts';
import { BIDI_CONTROLS, bidiName, escapeMarkup, showBidiControls } from '../core/escape.ts';
import { jobPagePath } from '../jobs/job-url.ts';
import { parseLogSteps, stepsFailingFirst, type LogStep } from './job-steps.ts';
import { renderFleetSection } from './fleet-section.ts';
import { renderPreviewsSection } from './previews-section.ts';
import { renderEnvironmentsSection } from './environments-section.ts';
import type { PreviewRecord } from '../previews/store.ts';
import type { EnvironmentsView, FleetView } from './read-sources.ts';
import { renderFirstSteps, renderStateLegend, renderStateNote, type PageHelpInput } from './page-help.ts';

export const PAGE_SIZE = 50;
/** The job page shows at most this much of a log (its end); `/jobs/ID/log` has all of it. */
export const LOG_SHOWN_BYTES = 512 * 1024;

/** Escaped, bidi controls made visible: for places where no element may go (title, attributes). */
export function plain(value: string): string {
  return escapeMarkup(showBidiControls(value));
}

/** Escaped, bidi controls made visible and marked, the whole isolated from its neighbours. */
export function text(value: string): string {
  return `<bdi>${escapeCode(value)}</bdi>`;
}

/** Like `text` without the isolate: for `<pre>` blocks. */
function escapeCode(value: string): string {
  return escapeMarkup(value).replace(BIDI_CONTROLS, (c) => `<span class="ctl">&lt;${bidiName(c)}&gt;</span>`);
}

export interface Viewer {
  /** Signed in (session cookie or bearer token): logs are shown. */
  signedIn: boolean;
  /** A token is configured, so signing in is possible. */
  canSignIn: boolean;
  now: Date;
  /** A named user's session (`ui_users:`): the user, and the session's CSRF token for the forms that change something. */
  user?: { name: string; csrf: string };
}

const STATE_MARK: Record<string, string> = {
  succeeded: '✓',
  failed: '✗',
  running: '●',
  queued: '○',
  superseded: '–',
  interrupted: '!',
};

function stateLabel(state: string): string {
  return `<span class="state state-${escapeMarkup(state)}">${STATE_MARK[state] ?? ''} ${escapeMarkup(state)}</span>`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 1) return '<1 s';
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function time(iso: string | null): string {
  if (!iso) return '<span class="muted">–</span>';
  const shown = iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
  return `<time datetime="${escapeMarkup(iso)}">${escapeMarkup(shown)}</time>`;
}

function durationOf(job: Job, now: Date): string {
  if (!job.started) return '<span class="muted">–</span>';
  const end = job.finished ? Date.parse(job.finished) : now.getTime();
  const shown = formatDuration(end - Date.parse(job.started));
  return job.finished ? shown : `${shown} so far`;
}

function firstLine(message: string | undefined, max = 120): string {
  if (!message) return '';
  const line = message.split('\n', 1)[0];
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

const what = (job: Job) => (job.kind === 'release' ? (job.tag ?? job.ref ?? '') : (job.branch ?? job.ref ?? ''));

function trigger(job: Job): string {
  const by = job.pusher ? ` by ${text(job.pusher)}` : '';
  const via = job.forge ? ` <span class="muted">(${escapeMarkup(job.forge)})</span>` : '';
  return `${job.kind === 'release' ? 'release' : 'push'}${by}${via}`;
}

/** The commit, linked to the forge when the delivery said where: 10 characters in lists, whole on the job page. */
function shortSha(job: Job, length = 10): string {
  if (!job.sha) return '';
  const sha = `<span class="sha">${escapeMarkup(job.sha.slice(0, length))}</span>`;
  return job.commitUrl ? `<a href="${plain(job.commitUrl)}" rel="noopener noreferrer nofollow">${sha}</a>` : sha;
}

/** A page of the status site: header (with log in/out), `body` in main; `title` is markup. */
export function layout(
  title: string,
  body: string,
  { viewer, base = '', scripts = [] }: { viewer?: Viewer; base?: string; scripts?: string[] } = {},
): string {
  const account = viewer?.signedIn
    ? `<nav>${viewer.user ? `<span class="muted">${escapeMarkup(viewer.user.name)}</span> ` : ''}<a href="${base}/audit">Audit</a></nav>` +
      `<form method="post" action="${base}/logout"><button type="submit">Log out</button></form>`
    : viewer?.canSignIn
      ? `<nav><a href="${base}/login">Log in</a></nav>`
      : '';
  return (
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="icon" href="${base}/assets/favicon.svg"><link rel="stylesheet" ` +
    `href="${base}/assets/shipkit.css">${scripts.map((s) => `<script src="${base}/assets/${escapeMarkup(s)}" defer></script>`).join('')}</head>
<body><header><h1><a href="${base}/">shipkit</a></h1>${account}</header>
<main>
${body}
</main></body></html>
`
  );
}

/**
 * `base`, in every input below: the path the pages are served under behind a proxy
 * (lib/jobs/job-url.ts basePath: '' or `/ci`, plain segments); every link, form and asset starts with it.
 */
export interface StatusPageInput {
  /** Every job (any order). */
  jobs: Iterable<Job>;
  /** Configured repos. */
  repos: string[];
  /** Only this repo's jobs in the list. */
  repo?: string;
  /** 1-based. */
  page: number;
  pageSize?: number;
  viewer: Viewer;
  base?: string;
  /** For a signed-in viewer of an instance without repos or jobs: what to do next (lib/web/page-help.ts). */
  help?: PageHelpInput;
  /** The apps hosts report to (lib/web/fleet-section.ts). */
  fleet?: FleetView[];
  /** The previews of pull requests, newest change first (lib/web/previews-section.ts); with `repo`, that repo's. */
  previews?: PreviewRecord[];
  /** Each app's environments (lib/web/environments-section.ts); shown in the list of all repos. */
  environments?: EnvironmentsView;
}

/** One row per repo (its last jobs), by name. */
function repoRowsOf(states: ReturnType<typeof lastStates>, base: string): string {
  return [...states]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, last]) => {
      const link = `<a href="${pageLink(base, { repo: name, page: 1 })}">${text(name)}</a>`;
      if (last.length === 0)
        return `<tr><td>${link}</td><td></td><td><span class="state state-none">no jobs yet</span></td><td></td></tr>`;
      return last
        .map(
          (job, i) =>
            `<tr><td>${i === 0 ? link : ''}</td><td>${job.kind === 'release' ? 'release ' : ''}${text(what(job))}</td>` +
            `<td><a href="${base}${jobPagePath(job.id)}">${stateLabel(job.state)}</a></td><td>${time(job.finished ?? job.started ?? job.queued)}</td></tr>`,
        )
        .join('\n');
    })
    .join('\n');
}

/** Each repo's newest job per branch (builds) and its newest release: superseded jobs say nothing. */
export function lastStates(jobs: Iterable<Job>, repos: string[]): Map<string, Job[]> {
  const newest = new Map<string, Job>();
  for (const job of jobs) {
    if (job.state === 'superseded') continue;
    const key = `${job.repo}\0${job.kind}\0${job.kind === 'build' ? (job.branch ?? '') : ''}`;
    const seen = newest.get(key);
    if (!seen || job.seq > seen.seq) newest.set(key, job);
  }
  const byRepo = new Map<string, Job[]>(repos.map((r) => [r, []]));
  for (const job of newest.values()) byRepo.get(job.repo)?.push(job);
  for (const list of byRepo.values())
    list.sort((a, b) => (a.kind === b.kind ? what(a).localeCompare(what(b)) : a.kind === 'build' ? -1 : 1));
  return byRepo;
}

function pageLink(base: string, params: { repo?: string; page: number }): string {
  const query = new URLSearchParams();
  if (params.repo) query.set('repo', params.repo);
  if (params.page > 1) query.set('page', String(params.page));
  const q = query.toString();
  return escapeMarkup(q ? `${base}/?${q}` : `${base}/`);
}

export function renderStatusPage({
  jobs,
  repos,
  repo,
  page,
  pageSize = PAGE_SIZE,
  viewer,
  base = '',
  help,
  fleet,
  previews,
  environments,
}: StatusPageInput): string {
  const all = [...jobs];
  const states = lastStates(all, repos);
  const repoRows = repoRowsOf(states, base);

  const listed = all.filter((j) => !repo || j.repo === repo).sort((a, b) => b.seq - a.seq);
  const pages = Math.max(1, Math.ceil(listed.length / pageSize));
  const current = Math.min(Math.max(1, page), pages);
  const rows = listed
    .slice((current - 1) * pageSize, current * pageSize)
    .map(
      (job) =>
        `<tr class="job">` +
        `<td><a href="${base}${jobPagePath(job.id)}">${stateLabel(job.state)}</a>${endedUpToDate(job) ? ' <span class="muted">up to date</span>' : ''}</td>` +
        `<td>${text(job.repo)}</td><td>${job.kind === 'release' ? 'tag ' : ''}${text(what(job))}</td><td>${shortSha(job)}</td>` +
        `<td class="message">${text(firstLine(job.message))}</td><td>${job.author ? text(job.author) : ''}</td><td>${trigger(job)}</td>` +
        `<td>${time(job.queued)}</td><td>${time(job.started)}</td><td>${durationOf(job, viewer.now)}</td></tr>`,
    )
    .join('\n');
  const pager = [
    current > 1 ? `<a rel="prev" href="${pageLink(base, { repo, page: current - 1 })}">← newer</a>` : '',
    `<span class="muted">page ${current} of ${pages} (${listed.length} jobs)</span>`,
    current < pages ? `<a rel="next" href="${pageLink(base, { repo, page: current + 1 })}">older →</a>` : '',
  ].join(' ');
  const options = repos
    .slice()
    .sort()
    .map((r) => `<option value="${plain(r)}"${r === repo ? ' selected' : ''}>${plain(r)}</option>`)
    .join('');
  const filter =
    `<form method="get" action="${base}/"><label>Repository <select name="repo"><option ` +
    `value="">all</option>${options}</select></label> <button type="submit">Show</button></form>`;

  const firstSteps = help && viewer.signedIn ? renderFirstSteps(help, { repos: repos.length, jobs: all.length }) : '';
  return layout(
    repo ? `${plain(repo)} · shipkit` : 'shipkit',
    `${firstSteps}<h2>Repositories</h2>
<table class="repos"><thead><tr><th>Repository</th><th>Branch</th><th>Last job</th><th>Finished (or started)</th></tr></thead>
<tbody>
${repoRows || `<tr><td colspan="4" class="muted">No repositories in the config${firstSteps ? ' yet: see Getting started above' : ''}.</td></tr>`}
</tbody></table>
${repo ? '' : renderFleetSection(fleet, viewer.signedIn, base)}${repo ? '' : renderEnvironmentsSection(environments, viewer, base)}${renderPreviewsSection(
      repo ? previews?.filter((p) => p.repo === repo) : previews,
      viewer.now,
      viewer.signedIn,
      base,
    )}<h2>Recent ` +
      `jobs${repo ? ` of ${text(repo)} <a href="${base}/">(all)</a>` : ''}</h2>
${filter}
<table class="jobs"><thead><tr><th>State</th><th>Repository</th><th>Branch</th><th>Commit</th><th>Message</th><th>Author</th><th>Trigger</th><th>Queued</th><th>Started</th><th>Duration</th></tr></thead>
<tbody>
${rows || `<tr><td colspan="10" class="muted">No jobs${firstSteps ? ' yet: see Getting started above' : ''}.</td></tr>`}
</tbody></table>
<nav class="pager">${pager}</nav>
${renderStateLegend(stateLabel)}`,
    { viewer, base },
  );
}

export interface JobPageInput {
  job: Job;
  viewer: Viewer;
  /** The job's log text, when the viewer may see it and it has one. */
  log?: string;
  deliveries: DeliveryRecord[];
  /** Scripts served under /assets/ that enhance the page (the live log). */
  scripts?: string[];
  base?: string;
}

function field(name: string, value: string): string {
  return value ? `<dt>${name}</dt><dd>${value}</dd>` : '';
}

function stepRows(steps: LogStep[]): string {
  if (steps.length === 0) return '<p class="muted">No steps in the log.</p>';
  const rows = stepsFailingFirst(steps)
    .map(
      (s) =>
        `<tr class="step step-${s.outcome}${s.outcome === 'failed' || s.outcome === 'unfinished' ? ' failing-step' : ''}">` +
        `<td><a href="#step-${plain(s.name)}">${text(s.name)}</a></td><td class="step-${s.outcome}">${s.outcome}</td>` +
        `<td>${s.seconds === undefined ? '' : `${s.seconds.toFixed(1)} s`}</td><td>${s.detail ? text(s.detail) : ''}</td></tr>`,
    )
    .join('\n');
  return `<table class="steps"><thead><tr><th>Step</th><th>Outcome</th><th>Time</th><th>Detail</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function logSections(before: string[], steps: LogStep[], after: string[]): string {
  const pre = (lines: string[]) => `<pre>${escapeCode(lines.join('\n'))}</pre>`;
  const blocks = steps.map((s) => {
    const failing = s.outcome === 'failed' || s.outcome === 'unfinished';
    return `<details id="step-${plain(s.name)}"${failing ? ' class="failing-step" open' : ''}><summary>${text(s.name)} — <span class="step-${s.outcome}">${s.outcome}</span></summary>${pre(s.lines)}</details>`;
  });
  return [before.length ? pre(before) : '', ...blocks, after.length ? pre(after) : ''].join('\n');
}

export function renderJobPage({ job, viewer, log, deliveries, scripts = [], base = '' }: JobPageInput): string {
  const jobPath = `${base}${jobPagePath(job.id)}`;
  const active = job.state === 'running' || job.state === 'queued';
  let shown = log;
  let cut = '';
  if (log !== undefined && Buffer.byteLength(log) > LOG_SHOWN_BYTES) {
    shown = Buffer.from(log)
      .subarray(-LOG_SHOWN_BYTES)
      .toString('utf8')
      .replace(/^[^\n]*\n/, '');
    cut = `<p class="notice">The start of this log is left out here; <a href="${jobPath}/log">the whole log</a> as text.</p>`;
  }
  const parsed = shown === undefined ? undefined : parseLogSteps(shown, { running: active });
  const failed = parsed?.steps.find((s) => s.outcome === 'failed');
  const summary = failed
    ? `<p class="notice error">Failed at step <strong>${text(failed.name)}</strong>${failed.seconds === undefined ? '' : ` after ${failed.seconds.toFixed(1)} s`}${failed.detail ? `: ${text(failed.detail)}` : ''}</p>`
    : job.state === 'failed' && job.reason
      ? `<p class="notice error">${text(job.reason)}</p>`
      : '';
  const title = `${escapeMarkup(job.state)} · ${plain(job.repo)} · ${plain(firstLine(job.message, 80) || what(job))} · shipkit`;

  const fields = [
    field('Repository', `<a href="${pageLink(base, { repo: job.repo, page: 1 })}">${text(job.repo)}</a>`),
    field('Kind', escapeMarkup(job.kind)),
    field(job.kind === 'release' ? 'Tag' : 'Branch', text(what(job))),
    field('Commit', job.sha ? shortSha(job, job.sha.length) : ''),
    field('Message', job.message ? `<pre class="commit-message">${escapeCode(job.message)}</pre>` : ''),
    field('Author', job.author ? text(job.author) : ''),
    field('Trigger', trigger(job)),
    field('Webhook delivery', job.deliveryId ? text(job.deliveryId) : ''),
    field('Queued', time(job.queued)),
    field('Started', time(job.started)),
    field('Finished', time(job.finished)),
    field('Duration', durationOf(job, viewer.now)),
    field('Exit', job.exit === null ? '' : String(job.exit)),
    field('Reason', job.reason ? text(job.reason) : ''),
    field('Attempts', String(job.attempts)),
    // With a PostgreSQL queue: (docs/workers.md), the build worker that ran it.
    field('Worker', job.worker ? text(job.worker) : ''),
  ].join('');

  const deliveryRows = deliveries
    .map(
      (d) =>
        `<tr class="delivery delivery-${escapeMarkup(d.outcome)}"><td>${text(d.what)}</td><td>${escapeMarkup(d.outcome)}</td><td>${d.attempts}</td><td>${d.detail ? text(d.detail) : ''}</td><td>${time(d.at)}</td></tr>`,
    )
    .join('\n');
  const deliveriesHtml = deliveries.length
    ? `<table class="deliveries"><thead><tr><th>What</th><th>Outcome</th><th>Attempts</th><th>Detail</th><th>When</th></tr></thead><tbody>\n${deliveryRows}\n</tbody></table>`
    : '<p class="muted">None were sent about this job: the repository has no <code>report:</code> (commit ' +
      'statuses on the forge) and no <code>notify:</code> in the config, or they are older than this server remembers.</p>';

  let logHtml: string;
  const followPath = `${jobPath}/log?follow=1`;
  if (!viewer.signedIn) {
    logHtml =
      `<p class="notice">Logs are shown to signed-in users ` +
      `only.${viewer.canSignIn ? ` <a href="${base}/login?next=${encodeURIComponent(jobPagePath(job.id))}">Log in</a>` : ''}</p>`;
  } else if (active) {
    logHtml = `<p>This job is ${escapeMarkup(job.state)}: <a href="${jobPath}">reload</a> to see more of its log.</p>
<div id="log" data-follow="${escapeMarkup(followPath)}"><pre>${escapeCode(shown ?? '')}</pre></div>`;
  } else if (parsed) {
    logHtml = `${cut}${logSections(parsed.before, parsed.steps, parsed.after)}<p><a href="${jobPath}/log">Log as plain text</a></p>`;
  } else {
    logHtml = '<p class="muted">No log for this job.</p>';
  }

  return layout(
    title,
    `<h2>Job <code>${escapeMarkup(job.id)}</code> ${stateLabel(job.state)}</h2>
${summary}${renderStateNote(job.state)}
<dl class="fields">${fields}</dl>
${parsed && viewer.signedIn ? `<h2>Steps</h2>\n${stepRows(parsed.steps)}` : ''}
<h2>Commit statuses and notifications</h2>
${deliveriesHtml}
<h2>Log</h2>
${logHtml}`,
    { viewer, base, scripts: active && viewer.signedIn ? scripts : [] },
  );
}

/** `next`: the route to go back to after login (`/` or `/jobs/ID`, without `base`). */
export function renderLoginPage({
  error,
  next = '/',
  base = '',
  users = false,
}: { error?: string; next?: string; base?: string; users?: boolean } = {}): string {
  // With named users (ui_users:), their form first: only a named user can approve a release.
  const named = users
    ? `<form class="login" method="post" action="${base}/login">
<label for="name">User name</label>
<input type="text" id="name" name="name" autocomplete="username" maxlength="64" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="${escapeMarkup(next)}">
<button type="submit">Log in</button>
</form>
<p class="muted">Or with the read token:</p>
`
    : '';
  return layout(
    'Log in · shipkit',
    `<h2>Log in</h2>
${error ? `<p class="notice error">${escapeMarkup(error)}</p>` : ''}
${named}<form class="login" method="post" action="${base}/login">
<label for="token">Read token: the value of <code>token:</code> in hook-server's config (not the webhook ` +
      `secret). Started without a config, hook-server printed it once and keeps it in <code>.shipkit/token</code>.</label>
<input type="password" id="token" name="token" autocomplete="current-password" required>
<label for="user">Your name (optional): the audit trail writes it beside this session.</label>
<input type="text" id="user" name="user" autocomplete="username" maxlength="100">
<input type="hidden" name="next" value="${escapeMarkup(next)}">
<button type="submit">Log in</button>
</form>`,
    { base },
  );
}

/** A page that says one thing (`message` is markup); with `viewer`, its header as every page's. */
export function renderNotice(
  title: string,
  message: string,
  { base = '', viewer }: { base?: string; viewer?: Viewer } = {},
): string {
  return layout(
    `${escapeMarkup(title)} · shipkit`,
    `<h2>${escapeMarkup(title)}</h2>\n<p class="notice">${message}</p>`,
    { base, viewer },
  );
}
