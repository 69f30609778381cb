// Field readers for pull (merge) request payloads of every forge: each required field is found by
// its dotted path or the delivery is refused naming that path. Names, branches and titles are
// the sender's text: controls removed, capped, kept as data (docs/hook-server.md#pull-request-events).
import { ValidationError, messageOf } from '../../core/errors.ts';
import { validateFullName, validatePayloadSha } from '../../core/names.ts';
import {
  AUTHOR_ASSOCIATIONS,
  cloneUrlOf,
  objectAt,
  pageUrl,
  text,
  type AuthorAssociation,
  type Obj,
  type PullRequestEvent,
} from './payload.ts';

/** A branch name is shown, never used: long enough for any git ref, short enough for a page. */
export const REF_MAX = 1_000;
export const TITLE_MAX = 1_000;
export const LOGIN_MAX = 200;
const LABELS_MAX = 100;

/** The value at a dotted path (`pull_request.head.sha`), or undefined where a step is not an object. */
export function valueAt(payload: Obj, path: string): unknown {
  let value: unknown = payload;
  for (const key of path.split('.')) {
    const obj = objectAt(value);
    if (!obj || !Object.hasOwn(obj, key)) return undefined;
    value = obj[key];
  }
  return value;
}

export function requiredObject(payload: Obj, path: string): Obj {
  const found = objectAt(valueAt(payload, path));
  if (!found) throw new ValidationError(`payload has no ${path} object`);
  return found;
}

/** A PR number (`#42`, `!42`) or a project id: a positive safe integer, not a string or a fraction. */
export function requiredPositiveInteger(payload: Obj, path: string): number {
  const value = valueAt(payload, path);
  if (value === undefined || value === null) throw new ValidationError(`payload has no ${path}`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    throw new ValidationError(`${path} is not a positive integer: ${JSON.stringify(String(value).slice(0, 40))}`);
  return value;
}

/** One line of the sender's text: every control character (C0, DEL, C1, so ESC and newlines) removed, cut to `max`. */
export function oneLine(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\x00-\x1f\x7f-\x9f]/g, '').trim();
  return clean === '' ? undefined : clean.slice(0, max);
}

/** A branch name, kept as data (never checked out by name, never a path). */
export function requiredRef(payload: Obj, path: string): string {
  const ref = oneLine(valueAt(payload, path), REF_MAX);
  if (ref === undefined) throw new ValidationError(`payload has no ${path}`);
  return ref;
}

/** A title may be empty; a missing one is refused. Newlines and tabs kept, other controls removed. */
export function requiredTitle(payload: Obj, path: string): string {
  const value = valueAt(payload, path);
  if (typeof value !== 'string') throw new ValidationError(`payload has no ${path}`);
  return text(value, TITLE_MAX) ?? '';
}

export function requiredSha(payload: Obj, path: string): string {
  const value = valueAt(payload, path);
  if (value === undefined || value === null || value === '') throw new ValidationError(`payload has no ${path}`);
  return validatePayloadSha(value, path);
}

export function requiredRepoName(payload: Obj, path: string): string {
  const value = valueAt(payload, path);
  if (typeof value !== 'string' || value === '') throw new ValidationError(`payload has no ${path}`);
  try {
    return validateFullName(value);
  } catch (error) {
    throw new ValidationError(`${path} is not a safe owner/name or group/subgroup/project: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

/** A clone URL git may fetch from, without credentials (cloneUrlOf's rule). */
export function requiredCloneUrl(payload: Obj, path: string): string {
  const at = path.lastIndexOf('.');
  const url = cloneUrlOf(requiredObject(payload, path.slice(0, at)), path.slice(at + 1));
  if (url === undefined) throw new ValidationError(`payload has no usable ${path}`);
  return url;
}

export function requiredPageUrl(payload: Obj, path: string): string {
  const url = pageUrl(valueAt(payload, path));
  if (url === undefined) throw new ValidationError(`payload has no http(s) ${path}`);
  return url;
}

export function loginAt(payload: Obj, ...paths: string[]): string | undefined {
  for (const path of paths) {
    const login = oneLine(valueAt(payload, path), LOGIN_MAX);
    if (login) return login;
  }
  return undefined;
}

export function associationOf(value: unknown): AuthorAssociation | undefined {
  return AUTHOR_ASSOCIATIONS.find((known) => known === value);
}

/** The names (`key` of each object) of a label list; anything else in it is skipped. */
export function labelNames(value: unknown, key: 'name' | 'title'): string[] {
  if (!Array.isArray(value)) return [];
  const names = value.map((label) => oneLine(objectAt(label)?.[key], LOGIN_MAX)).filter((n) => n !== undefined);
  return [...new Set(names)].slice(0, LABELS_MAX);
}

/** The event without the optional fields a forge did not send (so `'author' in event` means it was sent). */
export function pullRequestEvent(fields: Omit<PullRequestEvent, 'kind'>): PullRequestEvent {
  const defined = Object.entries(fields).filter(([, value]) => value !== undefined);
  return { kind: 'pull_request', ...Object.fromEntries(defined) } as PullRequestEvent;
}
