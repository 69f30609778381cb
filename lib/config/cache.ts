// A repo's `cache:` as shipkit.yml gives it (docs/hook-server.md): the paths a build keeps, checked to stay
// inside the repo, or false. What the build does with them is lib/pipeline/cache.ts.
import { configError, valueAt, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';

/** Kept by `git clean` in every build that is not a clean one: installs and downloads are reused. */
export const ALWAYS_KEPT = ['node_modules', 'downloads'] as const;

/** A repo's `cache:`: the extra paths it keeps, or false to start clean every time. */
export type RepoCache = string[] | false;

/**
 * Why `raw` cannot be a `cache:` path, or undefined. A path is relative, inside the repo, not in
 * .git, and names one file or folder (no glob: `*` is a character like any other).
 */
export function cachePathProblem(raw: string): string | undefined {
  if (!raw.trim()) return 'is empty';
  if (/[\0-\x1f\x7f]/.test(raw)) return 'holds a control character';
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw) || raw.startsWith('~'))
    return 'is not relative (give a path inside the repo, such as .cache)';
  if (raw.includes('\\')) return 'holds a backslash (use / between folders)';
  const segments = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) return 'has a .. segment (a cache path stays inside the repo)';
  if (!segments.length) return 'names the repo itself (give a folder inside it, such as .cache)';
  if (segments.some((s) => s.toLowerCase() === '.git')) return 'is inside .git, which git manages';
  return undefined;
}

/** `./a//b/` → `a/b`: the one spelling of a checked path. */
export function normaliseCachePath(raw: string): string {
  return raw
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

/** The repo's `cache:` key: a list of paths, or false (`true` and absent mean the defaults). */
export function parseCacheConfig(doc: ConfigDoc, repoKeyPath: KeyPath): RepoCache {
  const keyPath = [...repoKeyPath, 'cache'];
  const value = valueAt(doc.data, keyPath);
  if (value === undefined || value === null || value === true) return [];
  if (value === false) return false;
  if (!Array.isArray(value))
    throw configError(
      doc,
      keyPath,
      'must be a list of paths inside the repo, such as [.cache], or false to start every build clean.',
    );
  const paths: string[] = [];
  value.forEach((entry, i) => {
    if (typeof entry !== 'string')
      throw configError(doc, [...keyPath, i], 'must be a path inside the repo, such as .cache.');
    const problem = cachePathProblem(entry);
    if (problem) throw configError(doc, [...keyPath, i], `${JSON.stringify(entry.slice(0, 80))} ${problem}.`);
    const normal = normaliseCachePath(entry);
    if (!paths.includes(normal)) paths.push(normal);
  });
  return paths;
}
