// The status page's words for someone who has not read the README: on an instance with no
// repositories or no jobs yet, what to do next (a repo in the config; a forge webhook at this
// server's address, or hooks/post-receive-webhook on one's own git server), and what the job
// states mean. Pure functions of what they are handed; every value shown is escaped.
import { escapeMarkup } from '../core/escape.ts';

export interface PageHelpInput {
  /** Where forges reach this server: `public_url:`, else the address the browser used (with the pages' base). */
  serverUrl: string;
  /** The config hook-server runs with, when known. */
  configFile?: string;
}

const code = (value: string) => `<code>${escapeMarkup(value)}</code>`;

/** Words on a state, in the order a job goes through them. */
export const STATE_MEANINGS: ReadonlyArray<[string, string]> = [
  ['queued', 'waiting for a free build slot (concurrency:) or for the previous job of the same repository'],
  ['running', 'building now; the job page follows its log live'],
  ['succeeded', 'every step passed'],
  [
    'failed',
    'a step failed (for a release: release.sh), or the time limit was reached; the job page names the step and shows its log',
  ],
  ['superseded', 'a newer push to the same branch arrived before this one started, so only the newer one is built'],
  [
    'interrupted',
    'hook-server (or its machine) stopped while it ran, more often than it retries a job; deliver the webhook again, or push, to run it',
  ],
];

/** Whether a browser's address for this server is one a forge elsewhere cannot reach. */
function isLoopback(serverUrl: string): boolean {
  try {
    const host = new URL(serverUrl).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
  } catch {
    return false;
  }
}

/** "Add a repository": the config has none. */
function addRepository({ configFile }: PageHelpInput): string {
  const where = configFile
    ? ` ${code(configFile)}`
    : ' (the file given with --config, else ./shipkit.yml, ./.shipkit/shipkit.yml or /etc/shipkit/shipkit.yml)';
  return `<h3>1. Add a repository</h3>
<p>shipkit builds the repositories listed under ${code('repos:')} in its config${where}. Add yours, then restart hook-server:</p>
<pre>repos:
  OWNER/NAME:                                  # the forge's name for it
    url: https://github.com/OWNER/NAME.git     # where builds clone from
    branch: main                               # pushes to other branches are not built</pre>`;
}

/** "Send a push": how a job reaches this server. */
function sendPush({ serverUrl }: PageHelpInput, step: string): string {
  const base = serverUrl.replace(/\/+$/, '');
  const reach = isLoopback(base)
    ? `<p>This page was opened at ${code(base)}, which a forge on another machine cannot reach: put ` +
      `hook-server behind a reverse proxy (${code('templates/nginx-hook-server.conf')}) and set ` +
      `${code('public_url:')} in the config to the address forges use.</p>`
    : `<p>If forges reach this server at another address than ${code(base)} (a proxy), set ${code('public_url:')} in the config to it.</p>`;
  return (
    `<h3>${step}Send a push</h3>
<p>A job starts when a push (or a published release) reaches this server. Either:</p>
<ul>
<li><strong>From a forge</strong>: in the repository's settings, add a webhook with payload URL ` +
    `${code(`${base}/hooks/github`)} (or ${code(`${base}/hooks/gitea`)} for Gitea, Forgejo and Gogs, ` +
    `${code(`${base}/hooks/gitlab`)} for GitLab), content type ${code('application/json')}, the secret that ` +
    `is ${code('secret:')} in the config (GitLab: as its secret token), and push and release events. The ` +
    `forge's delivery log shows ${code('202')} when a job was queued.</li>
<li><strong>From your own git server</strong>: copy shipkit's ${code('hooks/post-receive-webhook')} to ` +
    `the bare repository's ${code('hooks/post-receive')}, make it executable, and set ` +
    `${code(`git config shipkit.webhook ${base}/hooks/gitea`)}, ${code('git config shipkit.secretFile FILE')} ` +
    `(a file holding the secret) and ${code('git config shipkit.repo OWNER/NAME')}. Each ${code('git push')} ` +
    `then queues a job and prints hook-server's answer.</li>
</ul>
${reach}`
  );
}

/** What to do next on an instance without repositories or without jobs; '' once it has both. */
export function renderFirstSteps(input: PageHelpInput, { repos, jobs }: { repos: number; jobs: number }): string {
  if (repos > 0 && jobs > 0) return '';
  const parts = repos === 0 ? [addRepository(input), sendPush(input, '2. ')] : [sendPush(input, '')];
  const lead =
    repos === 0 ? 'No repositories are configured yet.' : 'No jobs yet: nothing has been pushed to this server.';
  return `<section class="first-steps notice"><h2>Getting started</h2>
<p>${lead} The status page fills in as jobs run.</p>
${parts.join('\n')}
</section>`;
}

/** On a job page: what its state means and, for one that ended without success, how to run it again. */
export function renderStateNote(state: string): string {
  const meaning = STATE_MEANINGS.find(([s]) => s === state)?.[1];
  if (!meaning) return '';
  const again = ['failed', 'interrupted', 'superseded'].includes(state)
    ? " To run it again, redeliver its webhook (the forge lists deliveries in the webhook's settings) or push again."
    : '';
  return `<p class="muted">${escapeMarkup(state[0].toUpperCase() + state.slice(1))}: ${escapeMarkup(meaning)}.${again}</p>`;
}

/** The states in words, under the job list. */
export function renderStateLegend(mark: (state: string) => string): string {
  const items = STATE_MEANINGS.map(
    ([state, meaning]) => `<dt>${mark(state)}</dt><dd>${escapeMarkup(meaning)}</dd>`,
  ).join('');
  return (
    `<details class="legend"><summary>What the states and columns mean</summary>
<dl class="fields">${items}</dl>
<p class="muted">Repositories: the last job of each branch (and the last release) and when it finished, ` +
    `or started if it still runs. Recent jobs: every job, newest first; Commit, Message and Author are the ` +
    `pushed commit's, Trigger says what started it (a push or a release, who pushed, from which forge); ` +
    `Queued is when the webhook arrived, Started when the build began.</p>
</details>`
  );
}
