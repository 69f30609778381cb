// A pull (merge) request event as the preview runner takes it: what lib/server/forges/ reads from
// GitHub's, Gitea's and GitLab's payloads. Branch names, title and labels are the sender's text,
// kept as data: never a path, a DNS label or a command (a preview is named `pr-N` by its number).

/** What happened to a pull (merge) request, in GitHub's words (GitLab's and Gitea's mapped to them). */
export type PullRequestAction = 'opened' | 'synchronize' | 'reopened' | 'closed' | 'merged' | 'labeled';

/** GitHub's `author_association`; other forges send none (docs/hook-server.md#pull-request-events). */
export const AUTHOR_ASSOCIATIONS = [
  'OWNER',
  'MEMBER',
  'COLLABORATOR',
  'CONTRIBUTOR',
  'FIRST_TIME_CONTRIBUTOR',
  'FIRST_TIMER',
  'MANNEQUIN',
  'NONE',
] as const;
export type AuthorAssociation = (typeof AUTHOR_ASSOCIATIONS)[number];

/**
 * A pull request event (lib/server/forges/pull-request.ts reads it). Branch names, title and
 * labels are the sender's text, kept as data: never a path, a DNS label or a command (a
 * preview is named `pr-N` by its number).
 */
export interface PullRequestEvent {
  kind: 'pull_request';
  /** The repo the event was delivered for, as in shipkit.yml. */
  repo: string;
  /** The PR's number (GitLab: the merge request's iid), a positive integer. */
  pr: number;
  action: PullRequestAction;
  /** The PR's head: a full commit SHA, its branch (display only), the repo it lives in and that repo's clone URL. */
  head: { sha: string; ref: string; repo: string; cloneUrl: string };
  base: { ref: string; repo: string };
  /** The head lives in another repository than the base. */
  fromFork: boolean;
  /** The PR author's login; absent where the forge does not name it (GitLab, when someone else acted). */
  author?: string;
  /** GitHub only: the author's relation to the base repo; anything unknown is left out. */
  association?: AuthorAssociation;
  title: string;
  /** For `labeled`: the label this event added, where the forge names it (GitHub, GitLab). */
  label?: string;
  /** The labels the PR carries after the event. */
  labels: string[];
  /** Who caused the event (for `labeled`: who set the label). */
  sender?: string;
  /** The PR's web page. */
  url: string;
}
