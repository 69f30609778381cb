// The status page's Audit page (`GET /audit` in a browser, signed in only): the newest entries of
// the control plane's audit trail, every field from a request or payload escaped and its bidi
// controls shown, newlines and escapes written as \u sequences.
import type { AuditEntry } from '../audit/chain.ts';
import { shownEscaped } from '../core/escape.ts';
import { detailText } from '../audit/show.ts';
import { escapeMarkup } from '../core/escape.ts';
import { layout, text, type Viewer } from './status-page.ts';

export interface AuditPageInput {
  /** Oldest first, as the trail reads them; shown newest first. */
  entries: AuditEntry[];
  viewer: Viewer;
  base?: string;
  /** The `since` asked for, shown back in the form. */
  since?: string;
  /** Why the entries could not be read (a bad `since`, the trail away): shown instead of them. */
  error?: string;
}

/** Text from the trail, control characters as \u escapes, then escaped for the page. */
const shown = (value: string) => text(shownEscaped(value));

function row(e: AuditEntry): string {
  const cells = [
    `<td class="num">${e.n}</td>`,
    `<td><time datetime="${escapeMarkup(e.at)}">${escapeMarkup(e.at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC'))}</time></td>`,
    `<td>${escapeMarkup(e.action)}</td>`,
    `<td>${shown(e.actor)}</td>`,
    `<td>${shown(e.from)}${e.node ? ` <span class="muted">on ${shown(e.node)}</span>` : ''}</td>`,
    `<td>${e.subject === null ? '' : shown(e.subject)}</td>`,
    `<td><code>${shown(detailText(e.detail))}</code></td>`,
  ];
  return `<tr>${cells.join('')}</tr>`;
}

function table(rows: string): string {
  return `<table class="audit"><thead><tr><th>#</th><th>At</th><th>Action</th><th>Who</th><th>From</th><th>Subject</th><th>Detail</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="7" class="muted">Nothing recorded yet.</td></tr>'}
</tbody></table>`;
}

export function renderAuditPage({ entries, viewer, base = '', since = '', error }: AuditPageInput): string {
  const rows = [...entries].reverse().map(row).join('\n');
  const form =
    `<form method="get" action="${base}/audit"><label>Since <input type="text" name="since" ` +
    `value="${escapeMarkup(since)}" placeholder="entry number, 2026-05-01 or 2026-05-01 12:00:00 ` +
    `UTC"></label> <button type="submit">Show</button></form>`;
  return layout(
    'Audit · shipkit',
    `<h2>Audit trail</h2>
<p class="muted">Logins, logouts, replays, rollouts, rollbacks and token changes, newest first. ` +
      `<code>shipkit audit --verify</code> checks the chain.</p>
${form}
${error === undefined ? table(rows) : `<p class="notice error">${text(error)}</p>`}`,
    { viewer, base },
  );
}
