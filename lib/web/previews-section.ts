// The status page's Previews section (docs/previews.md): each pull request's preview with its
// state, head commit, age and URL; the reason it failed or waits for signed-in viewers. Every
// text is escaped and its bidi controls shown (lib/core/escape.ts); a URL is a link only if http(s).
import { escapeMarkup, showBidiControls } from '../core/escape.ts';
import { jobPagePath } from '../jobs/job-url.ts';
import { ageOf } from '../previews/client.ts';
import type { PreviewRecord } from '../previews/store.ts';

/** Torn-down previews listed below the open ones; the rest are counted (`shipkit previews list` has them all). */
export const TORN_DOWN_SHOWN = 10;

const shown = (value: string) => `<bdi>${escapeMarkup(showBidiControls(value))}</bdi>`;

/** The job states' colours (lib/web/assets.ts) for the previews' states. */
const STATE_CLASS: Record<string, string> = {
  live: 'state-succeeded',
  failed: 'state-failed',
  building: 'state-running',
  'waiting for approval': 'state-queued',
  'torn down': 'state-none',
};

/** An http(s) URL as a link, anything else as text. */
function urlCell(url: string | undefined): string {
  if (!url) return '';
  let ok = false;
  try {
    ok = /^https?:$/.test(new URL(url).protocol);
  } catch {
    ok = false;
  }
  return ok ? `<a href="${escapeMarkup(url)}" rel="noreferrer">${shown(url)}</a>` : shown(url);
}

function row(p: PreviewRecord, now: Date, showReasons: boolean, base: string): string {
  const stateClass = STATE_CLASS[p.state] ?? 'state-none';
  const state = `<span class="state ${stateClass}">${escapeMarkup(p.state)}</span>`;
  const at = Date.parse(p.since);
  const since = Number.isFinite(at) ? new Date(at).toISOString() : undefined;
  const age = since
    ? `<time datetime="${since}" title="${since.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}">${escapeMarkup(ageOf(since, now))}</time>`
    : '';
  const reason = showReasons && p.reason ? shown(p.reason) : '';
  return (
    `<tr><td>${shown(p.repo)}#${escapeMarkup(String(p.pr))} <span class="muted">${shown(p.name)}</span></td>` +
    `<td>${p.job ? `<a href="${escapeMarkup(base + jobPagePath(p.job))}">${state}</a>` : state}</td>` +
    `<td><code>${shown(p.head.slice(0, 7))}</code></td><td>${age}</td><td>${urlCell(p.url)}</td>` +
    `<td class="message">${reason}</td></tr>`
  );
}

/**
 * The section, or '' without previews. `showReasons`: why a preview failed or waits is for
 * signed-in viewers; `base`: the pages' path prefix.
 */
export function renderPreviewsSection(
  previews: PreviewRecord[] | undefined,
  now: Date,
  showReasons: boolean,
  base = '',
): string {
  if (!previews?.length) return '';
  const open = previews.filter((p) => p.state !== 'torn down');
  const torn = previews.filter((p) => p.state === 'torn down');
  const rows = [...open, ...torn.slice(0, TORN_DOWN_SHOWN)].map((p) => row(p, now, showReasons, base)).join('\n');
  const more =
    torn.length > TORN_DOWN_SHOWN
      ? `<p class="muted">and ${torn.length - TORN_DOWN_SHOWN} more torn down (<code>shipkit previews list</code>).</p>\n`
      : '';
  return `<h2>Previews</h2>
<table class="previews"><thead><tr><th>Pull request</th><th>State</th><th>Head</th><th>Age</th><th>URL</th><th>Reason</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${more}`;
}
