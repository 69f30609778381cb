// GitHub, Gitea/Forgejo and Gogs payloads (they share GitHub's shape): push, published release and
// pull request events, and who and what triggered them.
import { ValidationError } from '../../core/errors.ts';
import { validatePayloadSha, validateRefName } from '../../core/names.ts';
import type { CommitMeta } from '../../jobs/job.ts';
import {
  cloneUrlOf,
  compact,
  firstName,
  headCommit,
  MESSAGE_MAX,
  objectAt,
  objectField,
  optionalRepo,
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
  associationOf,
  labelNames,
  loginAt,
  LOGIN_MAX,
  oneLine,
  pullRequestEvent,
  requiredCloneUrl,
  requiredObject,
  requiredPageUrl,
  requiredPositiveInteger,
  requiredRef,
  requiredRepoName,
  requiredSha,
  requiredTitle,
} from './pull-request.ts';

export function normaliseGithub(event: string, payload: Record<string, unknown>): WebhookEvent {
  if (event === 'ping') {
    const repo = optionalRepo(payload.repository);
    return { kind: 'ping', repo };
  }
  if (event === 'push') {
    const repo = repoFullName(payload.repository, 'full_name');
    const ref = stringField(payload, 'ref');
    if (payload.deleted === true || /^0+$/.test(String(payload.after ?? '')))
      return { kind: 'ignored', reason: 'ref deleted', repo };
    if (!ref.startsWith('refs/heads/')) {
      return {
        kind: 'ignored',
        reason: ref.startsWith('refs/tags/') ? 'tag push (releases run on release events)' : 'not a branch',
        repo,
      };
    }
    const branch = validateRefName(ref.slice('refs/heads/'.length), 'branch');
    const sha = validatePayloadSha(payload.after);
    return {
      kind: 'push',
      repo,
      ref,
      branch,
      sha,
      cloneUrl: cloneUrlOf(payload.repository, 'clone_url'),
      order: pushOrderOf(payload),
      meta: githubPushMeta(payload, sha),
    };
  }
  if (event === 'release') {
    const repo = repoFullName(payload.repository, 'full_name');
    const action = typeof payload.action === 'string' ? payload.action : '';
    if (action !== 'published')
      return { kind: 'ignored', reason: `release ${action || 'event'} (only published releases run)`, repo };
    const release = objectField(payload, 'release');
    const tag = validateRefName(release.tag_name, 'tag');
    return {
      kind: 'release',
      repo,
      tag,
      ref: `refs/tags/${tag}`,
      cloneUrl: cloneUrlOf(payload.repository, 'clone_url'),
      meta: githubReleaseMeta(payload),
    };
  }
  if (event === 'pull_request') return githubPullRequest(payload);
  return { kind: 'ignored', reason: `event ${shorten(event)} is not handled` };
}

/** GitHub, Gitea/Forgejo and Gogs push payloads. */
export function githubPushMeta(payload: Obj, sha: string): CommitMeta {
  const commit = headCommit(payload, sha);
  const author = objectAt(commit?.author);
  const pusher = objectAt(payload.pusher);
  const sender = objectAt(payload.sender);
  return compact({
    message: text(commit?.message, MESSAGE_MAX),
    author: firstName(author?.name, author?.username),
    pusher: firstName(pusher?.login, pusher?.username, pusher?.name, sender?.login),
    commitUrl: pageUrl(commit?.url),
  });
}

/** GitHub, Gitea/Forgejo and Gogs release payloads. */
export function githubReleaseMeta(payload: Obj): CommitMeta {
  const release = objectAt(payload.release);
  const author = objectAt(release?.author);
  const sender = objectAt(payload.sender);
  return compact({
    message: text(release?.name, MESSAGE_MAX),
    author: firstName(author?.login, author?.username),
    pusher: firstName(sender?.login, sender?.username, author?.login),
    commitUrl: pageUrl(release?.html_url ?? release?.url),
  });
}

/** The actions previews act on; Gitea and Forgejo say `synchronized` and `label_updated`. */
const PULL_ACTIONS = new Map<string, PullRequestAction>([
  ['opened', 'opened'],
  ['synchronize', 'synchronize'],
  ['synchronized', 'synchronize'],
  ['reopened', 'reopened'],
  ['closed', 'closed'],
  ['labeled', 'labeled'],
  ['label_updated', 'labeled'],
]);

/** GitHub's and Gitea/Forgejo's `pull_request` (Gogs sends no head or base and is refused naming them). */
export function githubPullRequest(payload: Obj): WebhookEvent {
  const repo = repoFullName(payload.repository, 'full_name');
  const given = typeof payload.action === 'string' ? payload.action : '';
  const mapped = PULL_ACTIONS.get(given);
  if (!mapped)
    return { kind: 'ignored', reason: `pull request ${shorten(given || 'event')} (previews do not act on it)`, repo };
  const pr = requiredPositiveInteger(payload, 'number');
  const pull = requiredObject(payload, 'pull_request');
  if (pull.number !== undefined && pull.number !== pr)
    throw new ValidationError(`pull_request.number differs from number (${pr})`);
  const absent = ['head', 'base'].filter((side) => !objectAt(pull[side])).map((side) => `pull_request.${side}`);
  if (absent.length > 0)
    throw new ValidationError(
      `payload has no ${absent.join(' and no ')} object: a preview needs the PR's head commit (Gogs sends none)`,
    );
  const head = {
    sha: requiredSha(payload, 'pull_request.head.sha'),
    ref: requiredRef(payload, 'pull_request.head.ref'),
    repo: requiredRepoName(payload, 'pull_request.head.repo.full_name'),
    cloneUrl: requiredCloneUrl(payload, 'pull_request.head.repo.clone_url'),
  };
  const base = {
    ref: requiredRef(payload, 'pull_request.base.ref'),
    repo: requiredRepoName(payload, 'pull_request.base.repo.full_name'),
  };
  const headId = objectAt(objectAt(pull.head)?.repo)?.id;
  const baseId = objectAt(objectAt(pull.base)?.repo)?.id;
  return pullRequestEvent({
    repo,
    pr,
    action: mapped === 'closed' && pull.merged === true ? 'merged' : mapped,
    head,
    base,
    fromFork: head.repo !== base.repo || headId !== baseId,
    author: loginAt(payload, 'pull_request.user.login', 'pull_request.user.username'),
    association: associationOf(pull.author_association),
    title: requiredTitle(payload, 'pull_request.title'),
    label: mapped === 'labeled' ? oneLine(objectAt(payload.label)?.name, LOGIN_MAX) : undefined,
    labels: labelNames(pull.labels, 'name'),
    sender: loginAt(payload, 'sender.login', 'sender.username'),
    url: requiredPageUrl(payload, 'pull_request.html_url'),
  });
}
