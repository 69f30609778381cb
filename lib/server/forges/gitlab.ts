// GitLab payloads: `Push Hook` and `Release Hook`, and who and what triggered them.
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
  type WebhookEvent,
} from './payload.ts';

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
