// The status page's Fleet section (docs/fleet.md): per app, the rollout's step and state, hosts per
// version and result, and the latest failures with their reasons. Host ids, versions and reasons
// come from hosts: every one is escaped and its bidi controls shown (lib/core/escape.ts).
import { escapeMarkup, showBidiControls } from '../core/escape.ts';
import type { FleetView } from './read-sources.ts';

/** Failures listed per app; the rest are counted. */
export const FAILURES_SHOWN = 20;

const shown = (value: string) => `<bdi>${escapeMarkup(showBidiControls(value))}</bdi>`;

/** A time as the rest of the page shows one (`2026-11-24 18:02:11 UTC`); a text that is no time, shown as sent. */
function when(value: string | number): string {
  const at = typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(at)) return shown(String(value));
  const iso = new Date(at).toISOString();
  return `<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}</time>`;
}

function rolloutLine(view: FleetView): string {
  const r = view.rollout;
  if (!r) return '<p class="muted">No rollout reported by <code>release rollout</code>.</p>';
  const reason = r.reason ? `: ${shown(r.reason)}` : '';
  return (
    `<p>Rollout of ${shown(r.version)}: step ${r.step} of ${r.steps.length} (${escapeMarkup(String(r.percent))} %), ` +
    `<span class="state state-${escapeMarkup(r.state)}">${escapeMarkup(r.state.replace('_', ' '))}</span>${reason} <span class="muted">(${when(r.at)})</span></p>`
  );
}

function appSection(view: FleetView, showReasons: boolean, base: string): string {
  const tally = view.tally
    .map(
      (t) =>
        `<tr><td>${shown(t.version)}</td><td>${escapeMarkup(t.result.replace('_', ' '))}</td><td>${t.hosts}</td></tr>`,
    )
    .join('\n');
  const liars = view.liars
    ? `<p class="notice">${view.liars} host${view.liars === 1 ? '' : 's'} reported a bucket that is not the one their id gives.</p>`
    : '';
  let failures = '';
  if (view.failures.length && showReasons) {
    const rows = view.failures
      .slice(0, FAILURES_SHOWN)
      .map(
        (f) =>
          `<tr><td><code>${shown(f.host)}</code></td><td>${shown(f.version)}</td><td>${escapeMarkup(f.result.replace('_', ' '))}</td>` +
          `<td class="message">${shown(f.reason)}</td><td>${when(f.at)}</td></tr>`,
      )
      .join('\n');
    const more =
      view.failures.length > FAILURES_SHOWN
        ? `<p class="muted">and ${view.failures.length - FAILURES_SHOWN} more.</p>`
        : '';
    failures = `<table class="fleet-failures"><thead><tr><th>Host</th><th>Version</th><th>Result</th><th>Reason</th><th>Reported</th></tr></thead>\n<tbody>\n${rows}\n</tbody></table>${more}`;
  } else if (view.failures.length) {
    failures = `<p class="muted">${view.failures.length} failure${view.failures.length === 1 ? '' : 's'}; log in to see the reasons.</p>`;
  }
  return (
    `<h3>${shown(view.app)} <span class="muted">(${view.hosts} ` +
    `host${view.hosts === 1 ? '' : 's'})</span> <a class="small" href="${base}/releases/${encodeURIComponent(view.app)}">Releases</a></h3>
${rolloutLine(view)}
${tally ? `<table class="fleet"><thead><tr><th>Version</th><th>Result</th><th>Hosts</th></tr></thead>\n<tbody>\n${tally}\n</tbody></table>` : '<p class="muted">No host has reported yet.</p>'}
${liars}${failures}`
  );
}

/** The section, or '' without apps. `showReasons`: failures' reasons are for signed-in viewers; `base`: the pages' path prefix. */
export function renderFleetSection(fleet: FleetView[] | undefined, showReasons: boolean, base = ''): string {
  if (!fleet?.length) return '';
  return `<h2>Fleet</h2>\n${fleet.map((view) => appSection(view, showReasons, base)).join('\n')}\n`;
}
