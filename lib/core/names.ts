// One rule per kind of name, shared by every script: plain names (app, version, file names),
// repository full names and the folder each maps to, git ref/branch/tag names, commit ids.
// Names that become paths are validated here, before use.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ValidationError } from './errors.ts';

// ASCII only on purpose: look-alike letters (Cyrillic "а", full-width "／") must not pass.
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
export const MAX_NAME_LENGTH = 100;

/** Why `name` is not a safe single path segment, or undefined when it is. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'is empty';
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  if (!SEGMENT.test(name)) return 'may only hold letters, digits, ".", "_" and "-", and must not start with "." or "-"';
  if (name.includes('..')) return 'must not contain ".."';
  return undefined;
}

/** Throws unless `name` is a plain name such as a repo or app name: `site`, `my-app_2.js`. */
export function validateName(name: unknown, what = 'name'): string {
  const problem = nameProblem(name);
  if (problem)
    throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(String(name ?? '')))}: it ${problem}.`);
  return name as string;
}

// A status-page user (`ui_users:`): it is written in cookies, approval file names and `ui:NAME`
// entries, so no dot, no colon, nothing to quote.
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** A status-page user where a list also holds files (`approvals: from: [keys/alice.asc, ui:carol]`). */
export const UI_USER_PREFIX = 'ui:';

/** Why `name` is not a status-page user name, or undefined when it is. */
export function userNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'is empty';
  if (!USER_NAME.test(name))
    return 'is not a user name (1 to 64 letters, digits, "_" and "-", starting with a letter or digit)';
  return undefined;
}

// A repository's full name as the forges spell it: GitHub `owner/name` (names may start with a
// dot: `owner/.github`), GitLab `group/sub/…/project` (subgroups nest 20 deep, so 21 parts),
// Gitea/Gogs `owner/name`, or a plain name. ASCII letters, digits, ".", "_", "-" in each part.
const REPO_PART = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/;
export const MAX_REPO_PARTS = 21;
const MAX_REPO_PART_LENGTH = 255;
const MAX_REPO_NAME_LENGTH = 1024;

/** Why `name` is not a repository full name a forge could send, or undefined when it is. */
export function repoNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'is empty';
  if (name.length > MAX_REPO_NAME_LENGTH) return `is longer than ${MAX_REPO_NAME_LENGTH} characters`;
  const parts = name.split('/');
  if (parts.length > MAX_REPO_PARTS) return `has more than ${MAX_REPO_PARTS} parts`;
  // No forge lets an owner or group name start with "." (a repository's may: `owner/.github`).
  if (parts.length > 0 && parts[0].startsWith('.')) return 'must not start with "."';
  for (const part of parts) {
    if (part === '') return 'has an empty part (a leading, trailing or double "/")';
    if (part.length > MAX_REPO_PART_LENGTH) return `has a part longer than ${MAX_REPO_PART_LENGTH} characters`;
    if (!REPO_PART.test(part))
      return 'may only hold letters, digits, ".", "_", "-" and "/", and no part may start with "-"';
    if (part.includes('..')) return 'must not contain ".."';
    if (part === '.' || part === '.git') return `has a part "${part}"`;
  }
  return undefined;
}

/** Throws unless `fullName` is a repository full name: `octo/site`, `octo/.github`, `group/sub/app`, `site`. */
export function validateFullName(fullName: unknown, what = 'repository'): string {
  const problem = repoNameProblem(fullName);
  if (problem)
    throw new ValidationError(
      `Invalid ${what} ${JSON.stringify(shorten(String(fullName ?? '')))}: it ${problem}; use owner/name or group/subgroup/project.`,
    );
  return fullName as string;
}

const MAX_FOLDER_LENGTH = 200;

/**
 * The one folder name of a repository under DATA/repos, DATA/logs and DATA/state. Injective:
 * two names never share a folder. `octo/site` → `octo__site`, `group/sub/app` →
 * `group__sub__app` (unchanged from earlier versions, so existing clones and logs are kept)
 * whenever that spelling can be read back unambiguously; otherwise (a part with "__", a "_"
 * next to a "/"): `+` and the parts joined by `+`, which no forge name holds.
 * Longer than 200 characters: `++`, a SHA-256 of the name and a readable start.
 */
export function repoFolderName(fullName: string): string {
  validateFullName(fullName);
  const parts = fullName.split('/');
  const readable = !parts.some(
    (part, i) => part.includes('__') || (i > 0 && part.startsWith('_')) || (i < parts.length - 1 && part.endsWith('_')),
  );
  const folder = readable ? parts.join('__') : `+${parts.join('+')}`;
  if (folder.length <= MAX_FOLDER_LENGTH) return folder;
  const digest = createHash('sha256').update(fullName).digest('hex');
  return `++${digest}+${parts.join('+').slice(0, MAX_FOLDER_LENGTH - 67)}`;
}

// Git ref names: the rules of `git check-ref-format` (its manual, rules 1-10), applied to the
// full ref (`refs/heads/main`) or, for a branch or tag, to its short name with --allow-onelevel.
// Non-ASCII (`café`, `日本`), `#`, `@` and `+` are allowed; `-` first is refused (an option).
const MAX_REF_BYTES = 1024;
const MAX_REF_COMPONENT_BYTES = 255;
// Half of a UTF-16 pair: not text, and git would see U+FFFD instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `ref` is not a ref name git would accept, or undefined when it is. `oneLevel` allows `main` as well as `refs/heads/main`. */
export function refNameProblem(ref: unknown, { oneLevel = true } = {}): string | undefined {
  if (typeof ref !== 'string' || ref === '') return 'is empty';
  if (LONE_SURROGATE.test(ref)) return 'is not valid text (a lone UTF-16 surrogate)';
  if (Buffer.byteLength(ref) > MAX_REF_BYTES) return `is longer than ${MAX_REF_BYTES} bytes`;
  // Rule 4, 5 and 10: control characters, space, ~ ^ : ? * [ and backslash.
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(ref))
    return 'must not contain spaces, control characters or any of ~ ^ : ? * [ \\';
  if (ref.includes('..')) return 'must not contain ".."';
  if (ref.includes('@{')) return 'must not contain "@{"';
  if (ref === '@') return 'must not be "@"';
  if (ref.startsWith('-')) return 'must not start with "-"';
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//'))
    return 'must not start or end with "/" or contain "//"';
  if (ref.endsWith('.')) return 'must not end with "."';
  if (!oneLevel && !ref.includes('/')) return 'must be a full ref such as refs/heads/main';
  for (const component of ref.split('/')) {
    if (component.startsWith('.')) return 'must not have a part that starts with "."';
    if (component.endsWith('.lock')) return 'must not have a part that ends with ".lock"';
    if (Buffer.byteLength(component) > MAX_REF_COMPONENT_BYTES)
      return `must not have a part longer than ${MAX_REF_COMPONENT_BYTES} bytes`;
  }
  return undefined;
}

/** Throws unless `name` is a branch or tag name (`main`, `release/1.x`, `pkg@1.2.3`, `@scope/pkg@1.2.3`) or a full ref. */
export function validateRefName(name: unknown, what = 'ref'): string {
  const problem = refNameProblem(name);
  if (problem)
    throw new ValidationError(`Invalid ${what} name ${JSON.stringify(shorten(String(name ?? '')))}: it ${problem}.`);
  return name as string;
}

/** A commit id typed by a person: 7 to 64 hexadecimal digits (an abbreviation or a full SHA-1/SHA-256), lower-cased. */
export function validateShaInput(value: unknown, what = 'commit'): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{7,64}$/.test(value))
    throw new ValidationError(
      `Invalid ${what} ${JSON.stringify(shorten(String(value ?? '')))}: use 7 to 64 hexadecimal digits.`,
    );
  return value.toLowerCase();
}

/** A commit id from a forge's payload: a full SHA-1 (40) or SHA-256 (64) in lower-case hex, nothing shorter. */
export function validatePayloadSha(value: unknown, what = 'commit'): string {
  if (typeof value !== 'string' || !/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(value))
    throw new ValidationError(
      `Invalid ${what} ${JSON.stringify(shorten(String(value ?? '')))}: a forge sends a full 40 or 64 digit SHA.`,
    );
  return value;
}

/**
 * Resolve `relative` under `root` and throw unless the result stays strictly inside `root`.
 * Absolute paths, `..` segments and NUL bytes are refused rather than normalised away.
 */
export function resolveInside(root: string, relative: string, what = 'path'): string {
  if (typeof relative !== 'string' || relative === '') throw new ValidationError(`Invalid ${what}: it is empty.`);
  if (relative.includes('\0'))
    throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(relative))}: it contains a NUL byte.`);
  if (path.isAbsolute(relative) || /^[A-Za-z]:/.test(relative)) {
    throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(relative))}: it must be relative.`);
  }
  if (relative.split(/[\\/]/).some((segment) => segment === '..')) {
    throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(relative))}: it must not contain "..".`);
  }
  const base = path.resolve(root);
  const full = path.resolve(base, relative);
  // base may itself end in a separator (the root folder "/").
  if (full === base || !full.startsWith(base.endsWith(path.sep) ? base : base + path.sep)) {
    throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(relative))}: it leaves ${base}.`);
  }
  return full;
}

function shorten(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
