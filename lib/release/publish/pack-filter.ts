// What `release publish DIR` leaves out of the tarball (docs/release.md "What is packed"): .git
// by default, plus each `--exclude PATTERN`; `--include PATTERN` puts back what a pattern left out.
// A pattern without "/" matches an entry's name at any depth, one with "/" its path from DIR;
// `*` and `?` stay within a name, `**` crosses folders. A folder left out takes its contents along.
import { UsageError } from '../../core/errors.ts';

/** Left out unless `--include` names it: a repository's history is never part of a release. */
export const DEFAULT_EXCLUDE = ['.git'];

export interface PackSelection {
  exclude?: string[];
  include?: string[];
}

export interface PackFilter {
  /** Whether the entry at `rel` (its path from DIR, "/"-separated) is left out. */
  skip(rel: string): boolean;
  /** The top-most entries left out so far, sorted: a folder stands for its contents. */
  leftOut(): string[];
}

/** A glob as a regular expression over a name (no "/") or a path from DIR. */
function patternRegex(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Throws UsageError for a pattern that could never name an entry of DIR. */
export function checkPattern(pattern: string, flag: string): string {
  const trimmed = pattern.replace(/^\.\/|\/+$/g, '');
  if (!trimmed || trimmed.startsWith('/') || trimmed.split('/').includes('..'))
    throw new UsageError(
      `${flag} ${JSON.stringify(pattern)} names nothing inside DIR; give a name such as node_modules or ` +
        `*.map, or a path from DIR such as build/cache.`,
    );
  return trimmed;
}

/** Whether `pattern` names the entry at `rel`: by its name at any depth, or by its path with a "/". */
function matches(regex: RegExp, byPath: boolean, rel: string): boolean {
  return byPath ? regex.test(rel) : regex.test(rel.slice(rel.lastIndexOf('/') + 1));
}

/** The filter of `selection`: DEFAULT_EXCLUDE and `exclude` left out, unless `include` names the entry. */
export function packFilter(selection: PackSelection = {}): PackFilter {
  const compile = (patterns: string[], flag: string) =>
    patterns.map((p) => {
      const pattern = checkPattern(p, flag);
      return { regex: patternRegex(pattern), byPath: pattern.includes('/') };
    });
  const exclude = compile([...DEFAULT_EXCLUDE, ...(selection.exclude ?? [])], '--exclude');
  const include = compile(selection.include ?? [], '--include');
  const left = new Set<string>();
  return {
    skip(rel) {
      if (!exclude.some((p) => matches(p.regex, p.byPath, rel))) return false;
      if (include.some((p) => matches(p.regex, p.byPath, rel))) return false;
      left.add(rel);
      return true;
    },
    leftOut: () => [...left].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
  };
}
