// The status page's Releases view of one app (docs/fleet.md "Releases"): the verified ledger's
// releases, newest first, with how many hosts run each and verified its digest, who published it
// and when, the rollout steps, halts and rollbacks, and versions hosts run that the ledger does
// not record. Every text from the ledger or a host is escaped, its control characters shown.
import { escapeMarkup } from '../core/escape.ts';
import type { FleetReleases, ReleaseMove, ReleaseView } from '../release/rollout/fleet-view.ts';
import { shownEscaped } from '../core/escape.ts';
import { layout, type Viewer } from './status-page.ts';

// Control characters (ESC, newlines, bidi controls) as \u escapes, as `release history` shows them.
/** Releases a page shows; older ones are on the next pages. */
export const RELEASES_SHOWN = 50;

const shown = (value: string) => `<bdi>${escapeMarkup(shownEscaped(value))}</bdi>`;

function when(value: string): string {
  const at = Date.parse(value);
  if (!Number.isFinite(at)) return shown(value);
  const iso = new Date(at).toISOString();
  return `<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`;
}

function moveText(m: ReleaseMove): string {
  const what =
    m.action === 'rollout'
      ? `ROLLOUT ${m.rollout ?? 100} %`
      : m.action === 'halt'
        ? `halted at ${m.rollout ?? 100} %`
        : `rolled back to it${m.from ? ` from ${shown(m.from)}` : ''}`;
  const note = m.note ? `: ${shown(m.note)}` : '';
  return `<li>#${m.n} ${what}${note} <span class="muted">${when(m.at)} by ${shown(m.by)}</span></li>`;
}

function hostsCell(r: ReleaseView): string {
  if (!r.hosts) return '0';
  const parts = [`${r.verified} verified`];
  if (r.mismatched) parts.push(`<strong class="error">${r.mismatched} another digest</strong>`);
  if (r.unknown) parts.push(`${r.unknown} not said`);
  const failed = (r.results.failed ?? 0) + (r.results.rolled_back ?? 0);
  if (failed) parts.push(`${failed} failed`);
  return `${r.hosts} <span class="muted">(${parts.join(', ')})</span>`;
}

function releaseRow(r: ReleaseView): string {
  const source = [r.source.repo, r.source.ref, r.source.commit?.slice(0, 12)].filter(Boolean).join(' ');
  const flags = [
    r.revoked ? '<strong class="error">key revoked</strong>' : '',
    r.held_by_all
      ? '<span title="every reporting host still holds it: a rollback downloads nothing">held by all</span>'
      : '',
  ]
    .filter(Boolean)
    .join(' · ');
  const moves = r.moves.length ? `<ul class="moves">${r.moves.map(moveText).join('')}</ul>` : '';
  return (
    `<tr><td>${shown(r.version)}</td><td><span class="state ` +
    `state-${escapeMarkup(r.state.replace(' ', '_'))}">${escapeMarkup(r.state)}</span>${flags ? `<br>${flags}` : ''}</td>` +
    `<td>${hostsCell(r)}</td><td>${r.seq ?? ''}</td><td>#${r.n} ${when(r.at)}<br>${shown(r.by)}</td>` +
    `<td>${source ? shown(source) : ''}${moves}</td></tr>`
  );
}

/** Links to newer and older releases when the ledger has more than a page. */
function pager(view: FleetReleases, base: string): string {
  if (view.total <= RELEASES_SHOWN) return '';
  const page = Math.floor(view.offset / RELEASES_SHOWN) + 1;
  const link = (n: number, text: string) =>
    `<a href="${base}/releases/${encodeURIComponent(view.app)}?page=${n}">${text}</a>`;
  const parts = [
    page > 1 ? link(page - 1, 'newer') : '',
    `releases ${view.offset + 1}–${view.offset + view.releases.length} of ${view.total}`,
    view.offset + view.releases.length < view.total ? link(page + 1, 'older') : '',
  ];
  return `<p class="pager">${parts.filter(Boolean).join(' · ')}</p>`;
}

/** The page; `view` as GET /fleet/APP/releases answers it. */
export function renderReleasesPage({
  view,
  viewer,
  base = '',
}: {
  view: FleetReleases;
  viewer: Viewer;
  base?: string;
}): string {
  const { ledger } = view;
  const source = !ledger
    ? '<p class="muted">No ledger is known for this app: set <code>fleet.APP.ledger</code> (or publish it ' +
      'from a repo of this config). Hosts only.</p>'
    : ledger.error
      ? `<p class="notice error">The ledger at ${shown(ledger.from)} does not verify: ${shown(ledger.error)}. Hosts only.</p>`
      : `<p class="muted">Ledger at ${shown(ledger.from)}: ${ledger.entries} entries, signed by a subkey ` +
        `of ${escapeMarkup(ledger.primary ?? '')}.</p>`;
  const rows = view.releases.map(releaseRow).join('\n');
  const table = rows
    ? `<table class="releases"><thead><tr><th>Version</th><th>State</th><th>Hosts</th><th>SEQ</th><th>Published</th><th>Source, rollout</th></tr></thead>\n<tbody>\n${rows}\n</tbody></table>`
    : '<p class="muted">The ledger records no release of this app.</p>';
  const unlisted = view.unlisted.length
    ? `<h3>Running, not in the ledger</h3><table class="fleet"><thead><tr><th>Version</th><th>Hosts</th></tr></thead><tbody>${view.unlisted
        .map((u) => `<tr><td>${shown(u.version)}</td><td>${u.hosts}</td></tr>`)
        .join('')}</tbody></table>`
    : '';
  return layout(
    `Releases of ${escapeMarkup(view.app)} · shipkit`,
    `<h2>Releases of ${shown(view.app)} <span class="muted">(${view.hosts} host${view.hosts === 1 ? '' : 's'} reporting)</span></h2>
${source}
${table}
${unlisted}
${pager(view, base)}
<p><a href="${base}/fleet/${encodeURIComponent(view.app)}/releases">JSON</a> · <a href="${base}/">back</a></p>`,
    { viewer, base },
  );
}
