// The status page's static files, as strings in the code (no files read from disk: the one-file
// bundle and the .deb carry them with the code). Served at `/assets/NAME` with a strong ETag.
import { entityTag } from './badge.ts';

export interface Asset {
  type: string;
  body: string;
  etag: string;
}

const CSS = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --run: #9a6700; --muted: #6e7781; --line: #d0d7de; --hi: #fff8c5; }
@media (prefers-color-scheme: dark) { :root { --ok: #3fb950; --bad: #f85149; --run: #d29922; --muted: #8b949e; --line: #30363d; --hi: #3b2e00; } }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 84rem; padding: 1rem; }
header { display: flex; gap: 1rem; align-items: baseline; border-bottom: 1px solid var(--line); margin-bottom: 1rem; }
header h1 { font-size: 1.2rem; margin: 0.3rem 0; }
header form, header nav { margin-left: auto; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 0.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); }
code, pre, .sha { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { overflow-x: auto; padding: 0.5rem; border: 1px solid var(--line); white-space: pre-wrap; word-break: break-all; margin: 0.3rem 0; }
.state { font-weight: 600; white-space: nowrap; }
.state-succeeded, .step-ok { color: var(--ok); }
.state-failed, .step-failed, .step-unfinished { color: var(--bad); }
.state-running, .state-queued, .step-running { color: var(--run); }
.state-superseded, .state-interrupted, .state-none, .step-skipped, .muted { color: var(--muted); }
tr.failing-step, details.failing-step > summary { background: var(--hi); }
.ctl { color: var(--bad); font-family: ui-monospace, monospace; }
.pager { display: flex; gap: 1rem; margin: 0.8rem 0; }
.message { max-width: 32rem; overflow: hidden; text-overflow: ellipsis; }
.notice { padding: 0.6rem; border: 1px solid var(--line); }
.error { color: var(--bad); }
form.login { max-width: 24rem; display: grid; gap: 0.5rem; }
input[type=password] { font: inherit; padding: 0.3rem; }
button { font: inherit; padding: 0.2rem 0.8rem; cursor: pointer; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; }
details > summary { cursor: pointer; padding: 0.2rem 0; }
.first-steps { padding: 0.2rem 1rem 0.6rem; }
.first-steps h2 { margin-top: 0.6rem; }
h3 { font-size: 0.95rem; margin: 1rem 0 0.3rem; }
.first-steps li { margin: 0.4rem 0; }
details.legend { margin: 0.8rem 0; }
details.legend dl { margin: 0.5rem 0; }
`.trimStart();

const assets = new Map<string, Asset>();

/** Add a file under `/assets/NAME` (the status page's script is added by lib/web/log-follow.ts). */
export function registerAsset(name: string, type: string, body: string): void {
  assets.set(name, { type, body, etag: entityTag(body) });
}

export function assetNamed(name: string): Asset | undefined {
  return assets.get(name);
}

registerAsset('shipkit.css', 'text/css; charset=utf-8', CSS);
// Asked for by every browser at /favicon.ico too: served, so it is not a 404 in the log each time.
registerAsset(
  'favicon.svg',
  'image/svg+xml',
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" ' +
    'fill="#1a7f37"/><path d="M4 8.5l2.5 2.5L12 5" stroke="#fff" stroke-width="2" fill="none"/></svg>\n',
);
