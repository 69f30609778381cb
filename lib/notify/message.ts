// What a job's end means for notifications, and the bodies sent: Slack's incoming-webhook JSON
// (`text`, also taken by Mattermost and Discord's /slack) and the signed webhook's job JSON.
import { showBidiControls } from '../core/escape.ts';
import { jobPageUrl } from '../jobs/job-url.ts';
import { endedUpToDate } from '../jobs/job.ts';
import type { NotifyEvent } from '../config/notify.ts';

/** What notifications need of a job (lib/jobs/local/journal.ts's Job has these fields). */
export interface NotifyJob {
  id: string;
  seq: number;
  repo: string;
  kind: string;
  branch: string | null;
  sha: string | null;
  ref: string | null;
  tag: string | null;
  state: string;
  exit: number | null;
  reason: string | null;
  started: string | null;
  finished: string | null;
  /** The commit's message and author from the payload (attacker-controlled text; lib/jobs/commit-meta.ts). */
  message?: string;
  author?: string;
}

/**
 * failed → failure; succeeded → success, and recovery too when the previous finished job of the
 * same repo and branch (or of its releases) failed. Superseded and interrupted jobs tell nothing.
 */
export function eventsOf(job: NotifyJob, history: Iterable<NotifyJob>): NotifyEvent[] {
  if (job.state === 'failed') return ['failure'];
  if (job.state !== 'succeeded') return [];
  let previous: NotifyJob | undefined;
  for (const other of history) {
    if (other.seq >= job.seq || other.repo !== job.repo || other.kind !== job.kind || other.branch !== job.branch)
      continue;
    if (other.state !== 'succeeded' && other.state !== 'failed') continue;
    if (!previous || other.seq > previous.seq) previous = other;
  }
  return previous?.state === 'failed' ? ['success', 'recovery'] : ['success'];
}

/** The event a message is about: the most telling one the target asked for. */
export function headlineOf(events: readonly NotifyEvent[], wanted: readonly NotifyEvent[]): NotifyEvent | undefined {
  return (['recovery', 'failure', 'success'] as const).find((e) => events.includes(e) && wanted.includes(e));
}

function durationMs(job: NotifyJob): number | null {
  return job.started && job.finished ? Math.max(0, Date.parse(job.finished) - Date.parse(job.started)) : null;
}

export function jobLink(publicUrl: string | undefined, job: NotifyJob): string | undefined {
  return publicUrl ? jobPageUrl(publicUrl, job.id) : undefined;
}

/** Slack's three control characters; everything else in `text` is shown as written (bidi controls made visible first). */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const WORDS: Record<NotifyEvent, string> = { success: 'succeeded', failure: 'failed', recovery: 'is green again' };

/** What a message says the job did; a build that found its tree built already is "up to date", not "succeeded". */
export function outcomeWords(event: NotifyEvent, job: NotifyJob): string {
  return event === 'success' && endedUpToDate(job) ? 'is up to date (nothing to build)' : WORDS[event];
}
const ICONS: Record<NotifyEvent, string> = {
  success: ':white_check_mark:',
  failure: ':x:',
  recovery: ':white_check_mark:',
};

export function slackBody(event: NotifyEvent, job: NotifyJob, publicUrl?: string): { text: string } {
  const what = job.kind === 'release' ? `release ${job.tag ?? ''}`.trim() : `build of ${job.branch ?? job.ref ?? '?'}`;
  const sha = job.sha ? ` (${job.sha.slice(0, 7)})` : '';
  const ms = durationMs(job);
  const took = ms === null || endedUpToDate(job) ? '' : ` in ${Math.round(ms / 1000)} s`;
  const why =
    event === 'failure' && job.reason
      ? `: ${job.reason}`
      : event === 'failure' && job.exit !== null
        ? `: exit ${job.exit}`
        : '';
  const link = jobLink(publicUrl, job);
  const text = `${ICONS[event]} ${escapeSlack(showBidiControls(`${job.repo} ${what}${sha} ${outcomeWords(event, job)}${took}${why}`))}${link ? ` <${link}|job ${escapeSlack(job.id)}>` : ''}`;
  return { text };
}

export function webhookBody(event: NotifyEvent, job: NotifyJob, publicUrl?: string) {
  return {
    event,
    job: {
      id: job.id,
      repo: job.repo,
      kind: job.kind,
      branch: job.branch,
      sha: job.sha,
      ref: job.ref,
      tag: job.tag,
      state: job.state,
      exit: job.exit,
      reason: job.reason,
      started: job.started,
      finished: job.finished,
      duration_ms: durationMs(job),
      // Added: true when the job found its tree built already and built nothing (reason says by which job).
      up_to_date: endedUpToDate(job),
    },
    url: jobLink(publicUrl, job) ?? null,
  };
}
