// GitHub, Gitea/Forgejo and Gogs payloads (they share GitHub's shape): push and published release
// events, and who and what triggered them.
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
  type WebhookEvent,
} from './payload.ts';

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
