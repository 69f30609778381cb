// Names that become paths (repo, app, version, file names) are validated here, before use.
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
  if (problem) throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(String(name ?? '')))}: it ${problem}.`);
  return name as string;
}

/** Throws unless `fullName` is `owner/name` (or a plain name) with each part a valid name. */
export function validateFullName(fullName: unknown, what = 'repository'): string {
  if (typeof fullName !== 'string' || fullName === '') throw new ValidationError(`Invalid ${what} "": it is empty.`);
  const parts = fullName.split('/');
  if (parts.length > 2) throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(fullName))}: use "owner/name".`);
  for (const part of parts) validateName(part, what);
  return fullName;
}

/**
 * Resolve `relative` under `root` and throw unless the result stays strictly inside `root`.
 * Absolute paths, `..` segments and NUL bytes are refused rather than normalised away.
 */
export function resolveInside(root: string, relative: string, what = 'path'): string {
  if (typeof relative !== 'string' || relative === '') throw new ValidationError(`Invalid ${what}: it is empty.`);
  if (relative.includes('\0')) throw new ValidationError(`Invalid ${what} ${JSON.stringify(shorten(relative))}: it contains a NUL byte.`);
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
