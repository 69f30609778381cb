// `release diff`'s dependencies: two package-lock.json files read as one map each (install path →
// version and integrity), lockfileVersion 2/3 from `packages`, version 1 from the nested
// `dependencies` tree, then compared: added, removed, changed.

/** One installed package: where the lock puts it (`node_modules/a/node_modules/b`) and what. */
export interface LockedPackage {
  /** The package's name (`b`, `@scope/b`). */
  name: string;
  /** Its key in a v2/v3 lock, the same path built for a v1 lock. */
  path: string;
  version: string | null;
  integrity: string | null;
}

export interface ChangedPackage {
  name: string;
  path: string;
  from: string | null;
  to: string | null;
  /** The same version with another integrity: a package republished, or a lock edited by hand. */
  integrityChanged: boolean;
}

export interface DependencyDiff {
  added: LockedPackage[];
  removed: LockedPackage[];
  changed: ChangedPackage[];
}

/** Nested v1 `dependencies` deeper than this are not followed (npm never writes near it). */
const MAX_DEPTH = 64;

const textOrNull = (value: unknown) => (typeof value === 'string' ? value : null);

/** The package name at the end of an install path: the part after the last `node_modules/`. */
export function packageNameOf(installPath: string): string {
  const at = installPath.lastIndexOf('node_modules/');
  return at === -1 ? installPath : installPath.slice(at + 'node_modules/'.length);
}

/**
 * The packages a parsed package-lock.json installs, by install path; throws a plain Error (the
 * caller says which file) when it holds neither `packages` nor `dependencies`.
 */
export function lockedPackages(lock: unknown): Map<string, LockedPackage> {
  const root = (lock && typeof lock === 'object' ? lock : {}) as Record<string, unknown>;
  const found = new Map<string, LockedPackage>();
  const packages = root.packages;
  if (packages && typeof packages === 'object' && !Array.isArray(packages)) {
    for (const [key, value] of Object.entries(packages as Record<string, unknown>)) {
      // "" is the project itself; keys without node_modules/ are workspace folders.
      if (!key.includes('node_modules/') || !value || typeof value !== 'object') continue;
      const v = value as Record<string, unknown>;
      const version = textOrNull(v.version) ?? (v.link === true ? `link:${textOrNull(v.resolved) ?? '?'}` : null);
      found.set(key, { name: packageNameOf(key), path: key, version, integrity: textOrNull(v.integrity) });
    }
    return found;
  }
  const dependencies = root.dependencies;
  if (dependencies && typeof dependencies === 'object' && !Array.isArray(dependencies)) {
    addVersion1(dependencies as Record<string, unknown>, 'node_modules/', found, 0);
    return found;
  }
  throw new Error('it has neither "packages" nor "dependencies"');
}

/** A v1 lock's nested tree, flattened to the install paths a v2 lock would name. */
function addVersion1(
  tree: Record<string, unknown>,
  prefix: string,
  found: Map<string, LockedPackage>,
  depth: number,
): void {
  if (depth > MAX_DEPTH) return;
  for (const [name, value] of Object.entries(tree)) {
    if (!value || typeof value !== 'object') continue;
    const v = value as Record<string, unknown>;
    const key = `${prefix}${name}`;
    found.set(key, { name, path: key, version: textOrNull(v.version), integrity: textOrNull(v.integrity) });
    const nested = v.dependencies;
    if (nested && typeof nested === 'object' && !Array.isArray(nested))
      addVersion1(nested as Record<string, unknown>, `${key}/node_modules/`, found, depth + 1);
  }
}

const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** What changed between two locks' packages, each list sorted by install path. */
export function compareDependencies(
  before: Map<string, LockedPackage>,
  after: Map<string, LockedPackage>,
): DependencyDiff {
  const added = [...after.values()].filter((p) => !before.has(p.path));
  const removed = [...before.values()].filter((p) => !after.has(p.path));
  const changed: ChangedPackage[] = [];
  for (const now of after.values()) {
    const was = before.get(now.path);
    if (!was) continue;
    const integrityChanged =
      was.version === now.version && !!was.integrity && !!now.integrity && was.integrity !== now.integrity;
    if (was.version !== now.version || integrityChanged)
      changed.push({ name: now.name, path: now.path, from: was.version, to: now.version, integrityChanged });
  }
  return { added: added.sort(byPath), removed: removed.sort(byPath), changed: changed.sort(byPath) };
}
