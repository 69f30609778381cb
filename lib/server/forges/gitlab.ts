// GitLab payloads: `Push Hook`, `Release Hook` and `Merge Request Hook`, and who and what triggered them.
import { validatePayloadSha, validateRefName } from '../../core/names.ts';
import type { CommitMeta } from '../../jobs/job.ts';
import {
  cloneUrlOf,
  compact,
  firstName,
  headCommit,
  MESSAGE_MAX,
  objectAt,
  pageUrl,
  pushOrderOf,
  repoFullName,
  shorten,
  stringField,
  text,
  type Obj,
  type PullRequestAction,
  type WebhookEvent,
} from './payload.ts';
import {
  labelNames,
  loginAt,
  pullRequestEvent,
  requiredCloneUrl,
  requiredObject,
  requiredPageUrl,
  requiredPositiveInteger,
  requiredRef,
  requiredRepoName,
  requiredSha,
  requiredTitle,
  valueAt,
} from './pull-request.ts';

export function normaliseGitlab(event: string, payload: Record<string, unknown>): WebhookEvent {
  if (event === 'Push Hook') {
    const repo = repoFullName(payload.project, 'path_with_namespace');
    const ref = stringField(payload, 'ref');
    if (/^0+$/.test(String(payload.after ?? '')) && payload.checkout_sha == null)
      return { kind: 'ignored', reason: 'ref deleted', repo };
    if (!ref.startsWith('refs/heads/')) return { kind: 'ignored', reason: 'not a branch', repo };
    const branch = validateRefName(ref.slice('refs/heads/'.length), 'branch');
    const sha = validatePayloadSha(payload.checkout_sha ?? payload.after);
    return {
      kind: 'push',
      repo,
      ref,
      branch,
      sha,
      cloneUrl: cloneUrlOf(payload.project, 'git_http_url'),
      order: pushOrderOf(payload),
      meta: gitlabPushMeta(payload, sha),
    };
  }
  if (event === 'Release Hook') {
    const repo = repoFullName(payload.project, 'path_with_namespace');
    if (payload.action !== 'create')
      return {
        kind: 'ignored',
        reason: `release ${shorten(String(payload.action ?? 'event'))} (only created releases run)`,
        repo,
      };
    const tag = validateRefName(payload.tag, 'tag');
    return {
      kind: 'release',
      repo,
      tag,
      ref: `refs/tags/${tag}`,
      cloneUrl: cloneUrlOf(payload.project, 'git_http_url'),
      meta: gitlabReleaseMeta(payload),
    };
  }
  if (event === 'Merge Request Hook') return gitlabMergeRequest(payload);
  if (event === 'Tag Push Hook') return { kind: 'ignored', reason: 'tag push (releases run on release events)' };
  return { kind: 'ignored', reason: `event ${shorten(event)} is not handled` };
}

/** GitLab `Push Hook`. */
export function gitlabPushMeta(payload: Obj, sha: string): CommitMeta {
  const commit = headCommit(payload, sha);
  const author = objectAt(commit?.author);
  return compact({
    message: text(commit?.message, MESSAGE_MAX),
    author: firstName(author?.name),
    pusher: firstName(payload.user_name, payload.user_username),
    commitUrl: pageUrl(commit?.url),
  });
}

/** GitLab `Release Hook`: the release's name, the tagged commit's author, the release page. */
export function gitlabReleaseMeta(payload: Obj): CommitMeta {
  const commit = objectAt(payload.commit);
  const author = objectAt(commit?.author);
  return compact({
    message: text(payload.name, MESSAGE_MAX) ?? text(commit?.message, MESSAGE_MAX),
    author: firstName(author?.name),
    commitUrl: pageUrl(payload.url),
  });
}

const MERGE_ACTIONS = new Map<string, PullRequestAction>([
  ['open', 'opened'],
  ['reopen', 'reopened'],
  ['close', 'closed'],
  ['merge', 'merged'],
]);

/**
 * GitLab's action in GitHub's words. `update` is any edit: new commits when it carries `oldrev`
 * (→ synchronize), a label added when `changes.labels` grew (→ labeled); other edits are ignored.
 */
function mergeAction(payload: Obj): { action: PullRequestAction; label?: string } | { ignored: string } {
  const given = valueAt(payload, 'object_attributes.action');
  const mapped = typeof given === 'string' ? MERGE_ACTIONS.get(given) : undefined;
  if (mapped) return { action: mapped };
  if (given !== 'update')
    return { ignored: `merge request ${shorten(String(given ?? 'event'))} (previews do not act on it)` };
  if (typeof valueAt(payload, 'object_attributes.oldrev') === 'string') return { action: 'synchronize' };
  const before = labelNames(valueAt(payload, 'changes.labels.previous'), 'title');
  const added = labelNames(valueAt(payload, 'changes.labels.current'), 'title').filter((l) => !before.includes(l));
  if (added.length > 0) return { action: 'labeled', label: added[0] };
  return { ignored: 'merge request update without new commits or labels (previews do not act on it)' };
}

/** GitLab's `Merge Request Hook`: the merge request's iid is its number; GitLab sends no author association. */
export function gitlabMergeRequest(payload: Obj): WebhookEvent {
  const repo = repoFullName(payload.project, 'path_with_namespace');
  const meant = mergeAction(payload);
  if ('ignored' in meant) return { kind: 'ignored', reason: meant.ignored, repo };
  const attrs = requiredObject(payload, 'object_attributes');
  const pr = requiredPositiveInteger(payload, 'object_attributes.iid');
  const head = {
    sha: requiredSha(payload, 'object_attributes.last_commit.id'),
    ref: requiredRef(payload, 'object_attributes.source_branch'),
    repo: requiredRepoName(payload, 'object_attributes.source.path_with_namespace'),
    cloneUrl: requiredCloneUrl(payload, 'object_attributes.source.git_http_url'),
  };
  const base = {
    ref: requiredRef(payload, 'object_attributes.target_branch'),
    repo: requiredRepoName(payload, 'object_attributes.target.path_with_namespace'),
  };
  const sourceId = requiredPositiveInteger(payload, 'object_attributes.source_project_id');
  const targetId = requiredPositiveInteger(payload, 'object_attributes.target_project_id');
  // Only an author id is sent: the login is known when the one who acted is the author.
  const actorId = valueAt(payload, 'user.id');
  const authorIsActor = typeof actorId === 'number' && actorId === attrs.author_id;
  const current = labelNames(payload.labels ?? attrs.labels, 'title');
  return pullRequestEvent({
    repo,
    pr,
    action: meant.action,
    head,
    base,
    fromFork: sourceId !== targetId || head.repo !== base.repo,
    author: authorIsActor ? loginAt(payload, 'user.username') : undefined,
    title: requiredTitle(payload, 'object_attributes.title'),
    label: meant.label,
    labels: meant.label && !current.includes(meant.label) ? [...current, meant.label] : current,
    sender: loginAt(payload, 'user.username'),
    url: requiredPageUrl(payload, 'object_attributes.url'),
  });
}
