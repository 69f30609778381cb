// What the forges' payloads share: the event shipkit makes of a delivery, and readers of payload
// fields that refuse unsafe values. Every value is the sender's text (attacker-controlled): capped
// here, escaped wherever it is shown (lib/core/escape.ts), never used as a path or command.
import { ValidationError, messageOf } from '../../core/errors.ts';
import { validateFullName } from '../../core/names.ts';
import type { CommitMeta } from '../../jobs/job.ts';
import type { PullRequestEvent } from '../../previews/event.ts';
export {
  AUTHOR_ASSOCIATIONS,
  type AuthorAssociation,
  type PullRequestAction,
  type PullRequestEvent,
} from '../../previews/event.ts';

export interface PushOrder {
  pushedAt?: number;
  forced?: boolean;
  before?: string;
}

/** What a delivery means for shipkit. */
export type WebhookEvent =
  | { kind: 'ping'; repo?: string }
  | { kind: 'ignored'; reason: string; repo?: string }
  | {
      kind: 'push';
      repo: string;
      ref: string;
      branch: string;
      sha: string;
      cloneUrl?: string;
      order: PushOrder;
      meta: CommitMeta;
    }
  | { kind: 'release'; repo: string; tag: string; ref: string; sha?: string; cloneUrl?: string; meta: CommitMeta }
  | PullRequestEvent;

export const MESSAGE_MAX = 2_000;
const NAME_MAX = 200;
const URL_MAX = 2_048;

export type Obj = Record<string, unknown>;

export const objectAt = (value: unknown): Obj | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : undefined;

/** A string field, without NUL and other C0 controls (tabs and newlines kept), cut to `max`. */
export function text(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trim();
  return clean === '' ? undefined : clean.slice(0, max);
}

/** A forge's commit or release page: http(s), no user or password, no whitespace. */
export function pageUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > URL_MAX || !/^https?:\/\/[^\s]+$/i.test(value)) return undefined;
  try {
    const url = new URL(value);
    return url.username || url.password ? undefined : url.href;
  } catch {
    return undefined;
  }
}

export function firstName(...values: unknown[]): string | undefined {
  for (const value of values) {
    const name = text(value, NAME_MAX);
    if (name) return name;
  }
  return undefined;
}

export function compact(meta: CommitMeta): CommitMeta {
  return Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== undefined)) as CommitMeta;
}

/** The commit a push built: `head_commit` (GitHub, Gitea) or the one in `commits` with the pushed sha. */
export function headCommit(payload: Obj, sha: string): Obj | undefined {
  const head = objectAt(payload.head_commit);
  if (head) return head;
  const commits = Array.isArray(payload.commits)
    ? payload.commits.map(objectAt).filter((c): c is Obj => c !== undefined)
    : [];
  return commits.find((c) => c.id === sha) ?? commits[commits.length - 1];
}

export function pushOrderOf(payload: Record<string, unknown>): PushOrder {
  const order: PushOrder = {};
  const repository = payload.repository as Record<string, unknown> | undefined;
  // GitHub: seconds in push events (an ISO date in others).
  const pushedAt = repository?.pushed_at;
  if (typeof pushedAt === 'number' && Number.isFinite(pushedAt)) order.pushedAt = pushedAt;
  else if (typeof pushedAt === 'string' && Number.isFinite(Date.parse(pushedAt)))
    order.pushedAt = Date.parse(pushedAt) / 1000;
  if (typeof payload.forced === 'boolean') order.forced = payload.forced;
  if (
    typeof payload.before === 'string' &&
    /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(payload.before) &&
    !/^0+$/.test(payload.before)
  )
    order.before = payload.before;
  return order;
}

export function repoFullName(value: unknown, key: string): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ValidationError('payload has no repository object');
  const name = (value as Record<string, unknown>)[key];
  if (typeof name !== 'string' || name === '') throw new ValidationError(`payload has no repository ${key}`);
  try {
    return validateFullName(name);
  } catch (error) {
    throw new ValidationError(
      `repository name is not a safe owner/name or group/subgroup/project: ${messageOf(error)}`,
      { cause: error },
    );
  }
}

export function optionalRepo(value: unknown): string | undefined {
  try {
    return repoFullName(value, 'full_name');
  } catch {
    return undefined;
  }
}

export function cloneUrlOf(value: unknown, key: string): string | undefined {
  const url = (value as Record<string, unknown>)[key];
  if (typeof url !== 'string' || url.length > 2048) return undefined;
  // Only URLs git would fetch from a forge, or the file:/// path of a bare repository on this
  // machine (hooks/post-receive-webhook sends its own; lib/server/delivery.ts keeps it out of
  // DATA); anything else (ext::, relative paths, options) is dropped.
  if (
    !/^(https?|ssh|git):\/\/[^\s]+$/.test(url) &&
    !/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/.test(url) &&
    !/^file:\/\/\/[^\s]+$/.test(url)
  )
    return undefined;
  // A forge never puts a password or token in a clone URL; one that does must not reach a job's
  // command line (ps), its log or the journal. A user name alone is ssh's (`git@host`).
  if (/^https?:\/\/[^/]*@/i.test(url) || /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(url))
    throw new ValidationError('the clone URL carries credentials; refused so they reach no command line or log');
  return url;
}

export function stringField(payload: Record<string, unknown>, key: string): string {
  const value = payload[key];
  if (typeof value !== 'string' || value === '') throw new ValidationError(`payload has no ${key}`);
  return value;
}

export function objectField(payload: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = payload[key];
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ValidationError(`payload has no ${key} object`);
  return value as Record<string, unknown>;
}

export function shorten(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 37)}...` : clean;
}
