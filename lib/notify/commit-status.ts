// What a commit status says about a job, and the request each forge takes for it
// (docs/hook-server.md, `report:`): GitHub, Gitea/Forgejo and GitLab, each with its path, body and
// authorization.
// The whole story: docs/internals.md.
import type { ReportForge, ResolvedReport } from '../config/report.ts';
import type { NotifyJob } from './message.ts';
import { endedUpToDate } from '../jobs/job.ts';

/** What shipkit means; each forge spells it its own way (FORGE_STATES). */
export type StatusState = 'pending' | 'success' | 'failure' | 'error' | 'cancelled';

// GitHub and Gitea have no "cancelled": a superseded job shows as an error there. GitLab has
// `running` for a job that runs (its `pending` means waiting), `failed` for both kinds of failure.
const FORGE_STATES: Record<ReportForge, Record<StatusState, string>> = {
  github: { pending: 'pending', success: 'success', failure: 'failure', error: 'error', cancelled: 'error' },
  gitea: { pending: 'pending', success: 'success', failure: 'failure', error: 'error', cancelled: 'error' },
  gitlab: { pending: 'running', success: 'success', failure: 'failed', error: 'failed', cancelled: 'canceled' },
};

export const MAX_DESCRIPTION = 140;

export interface StatusJob extends NotifyJob {
  /** Attempts started; 0 = never ran, so no pending status was ever sent for it. */
  attempts: number;
}

export interface CommitStatus {
  state: StatusState;
  /** `shipkit/build` or `shipkit/release`. */
  context: string;
  description: string;
}

export function contextOf(job: Pick<StatusJob, 'kind'>): string {
  return job.kind === 'release' ? 'shipkit/release' : 'shipkit/build';
}

/** The status for a job that just started. */
export function startStatus(job: StatusJob): CommitStatus {
  return { state: 'pending', context: contextOf(job), description: `${job.kind} running` };
}

/**
 * The status for a job that ended, or undefined when none is due: a superseded job that never
 * ran had no pending status, and leaves the commit without one (it was not built). One that ran
 * (then was interrupted and queued again) gets its pending closed.
 */
export function endStatus(job: StatusJob): CommitStatus | undefined {
  const context = contextOf(job);
  const took = durationOf(job);
  const status = (state: StatusState, description: string): CommitStatus => ({
    state,
    context,
    description: cap(description),
  });
  switch (job.state) {
    case 'succeeded':
      if (endedUpToDate(job)) return status('success', `${job.kind} up to date: this tree was built already`);
      return status('success', `${job.kind} succeeded${took}`);
    case 'failed': {
      // The build itself failed (its exit code) or shipkit stopped it (a timeout, too much output, could not start).
      const timeout = /^timed out after (\d+) s$/.exec(job.reason ?? '');
      if (timeout) return status('error', `${job.kind} timed out after ${timeout[1]} s`);
      if (job.reason === null || /^exited with \d+$/.test(job.reason))
        return status('failure', `${job.kind} failed${job.exit !== null ? ` (exit ${job.exit})` : ''}${took}`);
      return status('error', `${job.kind} stopped by shipkit before it finished${took}`);
    }
    case 'interrupted':
      return status('error', `${job.kind} interrupted (hook-server stopped)`);
    case 'superseded':
      return job.attempts > 0 ? status('cancelled', 'superseded by a newer push') : undefined;
    default:
      return undefined;
  }
}

function durationOf(job: StatusJob): string {
  if (!job.started || !job.finished) return '';
  const seconds = Math.max(0, Math.round((Date.parse(job.finished) - Date.parse(job.started)) / 1000));
  return ` in ${seconds} s`;
}

function cap(text: string): string {
  return text.length <= MAX_DESCRIPTION ? text : `${text.slice(0, MAX_DESCRIPTION - 1)}…`;
}

export interface StatusRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
}

/** `state` as `forge` spells it. */
export function forgeState(forge: ReportForge, state: StatusState): string {
  return FORGE_STATES[forge][state];
}

/** The POST that sets `status` on `sha` of `repo` (a validated full name) at the forge of `report`. */
export function statusRequest(
  report: ResolvedReport,
  repo: string,
  sha: string,
  status: CommitStatus,
  targetUrl?: string,
): StatusRequest {
  const state = forgeState(report.forge, status.state);
  const link = targetUrl ? { target_url: targetUrl } : {};
  if (report.forge === 'gitlab') {
    return {
      url: new URL(`${report.api}/projects/${encodeURIComponent(repo)}/statuses/${encodeURIComponent(sha)}`),
      headers: { 'PRIVATE-TOKEN': report.token, 'User-Agent': 'shipkit' },
      body: JSON.stringify({ state, name: status.context, ...link, description: status.description }),
    };
  }
  const [owner, name] = repo.split('/');
  const headers: Record<string, string> =
    report.forge === 'github'
      ? {
          Authorization: `Bearer ${report.token}`,
          Accept: 'application/vnd.github+json',
          'X-GitHub-Api-Version': '2022-11-28',
          'User-Agent': 'shipkit',
        }
      : { Authorization: `token ${report.token}`, Accept: 'application/json', 'User-Agent': 'shipkit' };
  return {
    url: new URL(
      `${report.api}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/statuses/${encodeURIComponent(sha)}`,
    ),
    headers,
    body: JSON.stringify({ state, ...link, description: status.description, context: status.context }),
  };
}

/** What an answer that will not be retried means, for the log and the job page (never the token). */
export function refusalHint(status: number | undefined, repo: string, detail: string): string {
  switch (status) {
    case 401:
      return 'the report_token was refused (401): it is wrong, expired or revoked; make a new one and update report_token';
    case 403:
      return (
        `403: the token may not set statuses on ${repo} (GitHub: "Commit statuses: read and write" ` +
        `or repo:status; Gitea: repository write; GitLab: api scope and at least Developer), or a rate limit was hit`
      );
    case 404:
      return `404: the token cannot see ${repo} or the sha is unknown to the forge (is report_api right, is the commit pushed?)`;
    case 422:
      return `422: the forge refused the status as invalid (an unknown sha, or over 1000 statuses for this sha and context)`;
    case 400:
      return '400: the forge refused the request (GitLab answers this when a status would not change)';
    default:
      return detail;
  }
}
