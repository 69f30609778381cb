// Who and what triggered a job, as the forge's payload tells it: the commit's message and author,
// who pushed (or published the release), and a link to the commit. Kept in the journal for the
// status page. Every value is the sender's text (attacker-controlled): capped here, escaped
// wherever it is shown (lib/core/escape.ts), never used as a path or command.

export interface CommitMeta {
  /** The head commit's message (or the release's name), first MESSAGE_MAX characters. */
  message?: string;
  /** The commit author's name (or the release's author). */
  author?: string;
  /** Who pushed, or published the release. */
  pusher?: string;
  /** The commit (or release) page on the forge: http(s) only, no credentials. */
  commitUrl?: string;
}

export const MESSAGE_MAX = 2_000;
const NAME_MAX = 200;
const URL_MAX = 2_048;

type Obj = Record<string, unknown>;

const objectAt = (value: unknown): Obj | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : undefined;

/** A string field, without NUL and other C0 controls (tabs and newlines kept), cut to `max`. */
function text(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trim();
  return clean === '' ? undefined : clean.slice(0, max);
}

/** A forge's commit or release page: http(s), no user or password, no whitespace. */
function pageUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > URL_MAX || !/^https?:\/\/[^\s]+$/i.test(value)) return undefined;
  try {
    const url = new URL(value);
    return url.username || url.password ? undefined : url.href;
  } catch {
    return undefined;
  }
}

function firstName(...values: unknown[]): string | undefined {
  for (const value of values) {
    const name = text(value, NAME_MAX);
    if (name) return name;
  }
  return undefined;
}

function compact(meta: CommitMeta): CommitMeta {
  return Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== undefined)) as CommitMeta;
}

/** The commit a push built: `head_commit` (GitHub, Gitea) or the one in `commits` with the pushed sha. */
function headCommit(payload: Obj, sha: string): Obj | undefined {
  const head = objectAt(payload.head_commit);
  if (head) return head;
  const commits = Array.isArray(payload.commits)
    ? payload.commits.map(objectAt).filter((c): c is Obj => c !== undefined)
    : [];
  return commits.find((c) => c.id === sha) ?? commits[commits.length - 1];
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
