// What a repo's builds keep from one build to the next (docs/build.md, `cache:`): node_modules,
// downloads and the repo's `cache:` paths survive the pull step's `git clean`, and npm's cache
// (DATA/state/REPO/npm-cache) is shared by the repo's builds. `build --no-cache` and `cache: false`
// start clean: those paths removed, a fresh npm cache for the run, removed after.
import { existsSync } from 'node:fs';
import { chown, lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ensureDir } from '../core/fs.ts';
import { formatBytes } from '../core/log.ts';
import { run, type BuildContext, type CachePlan } from './context.ts';
import { ALWAYS_KEPT, type RepoCache } from '../config/cache.ts';

/** The job's plan from the repo's `cache:` and `build --no-cache`. */
export function planCache(cache: RepoCache, { noCache = false } = {}): CachePlan {
  if (noCache) return { keep: [], clean: '--no-cache' };
  if (cache === false) return { keep: [], clean: 'cache: false' };
  return { keep: keptPaths(cache) };
}

/** Every path a normal build keeps (what a clean start removes): the defaults, then `cache:`. */
export function keptPaths(cache: RepoCache): string[] {
  const configured = cache === false ? [] : cache;
  return [...ALWAYS_KEPT, ...configured.filter((p) => !(ALWAYS_KEPT as readonly string[]).includes(p))];
}

/**
 * A `git clean -e` pattern that matches exactly `relPath` from the top of the work tree:
 * anchored with `/`, and every character gitignore treats specially escaped.
 */
export function cleanExcludePattern(relPath: string): string {
  return `/${relPath.replace(/[\\*?[\]!#]/g, (c) => `\\${c}`).replace(/ $/, '\\ ')}`;
}

/** `git clean` arguments that keep the plan's paths. */
export function cleanExcludes(plan: CachePlan | undefined): string[] {
  const keep = plan ? plan.keep : [...ALWAYS_KEPT];
  return keep.flatMap((p) => ['-e', cleanExcludePattern(p)]);
}

/**
 * After the pull step's `git clean`: a clean start says what it removed; a normal build names
 * the `cache:` paths it kept, with their size.
 */
export async function logAfterClean(ctx: BuildContext): Promise<void> {
  const plan = ctx.cache;
  if (plan?.clean) {
    plan.cleaned = true;
    ctx.log.line(
      `cache: clean build (${plan.clean}): ${describeList(keptPaths(ctx.repo.cache))} removed with the other untracked files`,
    );
    return;
  }
  const configured = ctx.repo.cache === false ? [] : ctx.repo.cache;
  if (!configured.length) return;
  const parts: string[] = [];
  for (const rel of configured) {
    const size = await sizeOf(path.join(ctx.paths.work, rel));
    parts.push(size === undefined ? `${rel} (not there yet)` : `${rel} (${formatBytes(size)})`);
  }
  ctx.log.line(`cache: kept ${parts.join(', ')}`);
}

/**
 * A clean start in a job without the pull step (`--steps install`): the kept paths are removed
 * before the first step that would reuse them, by git, which never follows a symlink out.
 */
export async function cleanKeptPathsOnce(ctx: BuildContext): Promise<void> {
  const plan = ctx.cache;
  if (!plan?.clean || plan.cleaned) return;
  plan.cleaned = true;
  if (!existsSync(path.join(ctx.paths.work, '.git'))) return;
  const paths = keptPaths(ctx.repo.cache);
  await run(ctx, ['git', 'clean', '-ffdx', '--', ...paths.map((p) => `:(literal)${p}`)]);
  ctx.log.line(`cache: clean build (${plan.clean}): ${describeList(paths)} removed`);
}

function describeList(paths: string[]): string {
  return paths.length > 1 ? `${paths.slice(0, -1).join(', ')} and ${paths[paths.length - 1]}` : paths.join('');
}

// ---------------------------------------------------------------------------------------------
// npm's cache

export interface NpmCache {
  /** The environment for npm, naming the cache. */
  env: NodeJS.ProcessEnv;
  dir: string;
  /** A fresh, empty cache for a clean build (removed by `release`). */
  fresh: boolean;
  release: () => Promise<void>;
}

const CLEAN_CACHE_PREFIX = 'npm-cache-clean-';

/**
 * The npm cache for the install: the one the environment names, else the repo's own
 * DATA/state/REPO/npm-cache (a `user:` build gets it from lib/pipeline/job.ts, made and owned by
 * that user), shared by all its builds. A clean build gets a fresh one beside it, removed after.
 */
export async function prepareNpmCache(ctx: BuildContext): Promise<NpmCache> {
  // A clean build's cache left by a build that was killed: the job lock says none is in use.
  for (const entry of await readdir(ctx.paths.state).catch(() => [] as string[])) {
    if (entry.startsWith(CLEAN_CACHE_PREFIX))
      await rm(path.join(ctx.paths.state, entry), { recursive: true, force: true });
  }
  if (ctx.cache?.clean) {
    await ensureDir(ctx.paths.state);
    const dir = await mkdtemp(path.join(ctx.paths.state, CLEAN_CACHE_PREFIX));
    if (ctx.runAs) await chown(dir, ctx.runAs.uid, ctx.runAs.gid);
    const env: NodeJS.ProcessEnv = { ...ctx.env, npm_config_cache: dir };
    delete env.NPM_CONFIG_CACHE;
    return { env, dir, fresh: true, release: () => rm(dir, { recursive: true, force: true }) };
  }
  const named = ctx.env.npm_config_cache || ctx.env.NPM_CONFIG_CACHE;
  if (named) return { env: ctx.env, dir: named, fresh: false, release: async () => {} };
  const dir = path.join(ctx.paths.state, 'npm-cache');
  await ensureDir(dir);
  return { env: { ...ctx.env, npm_config_cache: dir }, dir, fresh: false, release: async () => {} };
}

interface LockEntry {
  integrity?: string;
  resolved?: string;
  link?: boolean;
  dependencies?: Record<string, LockEntry>;
}

/**
 * The integrity strings of the packages a lockfile has npm fetch from a registry: entries with
 * an integrity that are not links, `file:` or git dependencies (which npm's cache does not hold).
 */
export function registryIntegrities(lock: {
  packages?: Record<string, LockEntry>;
  dependencies?: Record<string, LockEntry>;
}): string[] {
  const fetched = (e: LockEntry) =>
    !e.link && typeof e.integrity === 'string' && (e.resolved === undefined || /^https?:\/\//.test(e.resolved));
  if (lock.packages)
    return Object.entries(lock.packages)
      .filter(([key, e]) => key !== '' && fetched(e))
      .map(([, e]) => e.integrity as string);
  const out: string[] = [];
  const walk = (deps: Record<string, LockEntry> | undefined) => {
    for (const e of Object.values(deps ?? {})) {
      if (fetched(e)) out.push(e.integrity as string);
      walk(e.dependencies);
    }
  };
  walk(lock.dependencies);
  return out;
}

/** Where npm's cache (cacache) keeps the tarball with this integrity, one path per hash listed. */
export function cacheContentPaths(cacheDir: string, integrity: string): string[] {
  return integrity
    .trim()
    .split(/\s+/)
    .flatMap((hash) => {
      const match = /^(sha\d+)-([A-Za-z0-9+/=]+)$/.exec(hash);
      if (!match) return [];
      const hex = Buffer.from(match[2], 'base64').toString('hex');
      return hex.length > 4
        ? [path.join(cacheDir, '_cacache', 'content-v2', match[1], hex.slice(0, 2), hex.slice(2, 4), hex.slice(4))]
        : [];
    });
}

export interface CacheUse {
  total: number;
  cached: number;
}

/**
 * How many of the lockfile's registry packages the npm cache holds right now. Asked before
 * `npm ci --prefer-offline`: those are the tarballs npm takes from the cache instead of the network.
 */
export async function countCachedPackages(lockfile: string, cacheDir: string): Promise<CacheUse | undefined> {
  let lock;
  try {
    lock = JSON.parse(await readFile(lockfile, 'utf8'));
  } catch {
    return undefined;
  }
  const integrities = registryIntegrities(lock ?? {});
  return {
    total: integrities.length,
    cached: integrities.filter((i) => cacheContentPaths(cacheDir, i).some((p) => existsSync(p))).length,
  };
}

/** `cache hit: 12 of 12 packages from the npm cache`, `cache miss: …`, or why it was not counted. */
export function describeCacheUse(use: CacheUse | undefined, { fresh = false } = {}): string {
  if (fresh) return 'clean: a fresh npm cache, every package fetched';
  if (!use) return 'npm cache use not counted (no lockfile)';
  if (!use.total) return 'no registry packages in the lockfile';
  const fetched = use.total - use.cached;
  const counts = `${use.cached} of ${use.total} packages from the npm cache${fetched ? `, ${fetched} fetched` : ''}`;
  if (use.cached === use.total) return `cache hit: ${counts}`;
  if (use.cached === 0) return `cache miss: ${counts}`;
  return `partial cache hit: ${counts}`;
}

// ---------------------------------------------------------------------------------------------
// sizes for the log

const MAX_ENTRIES = 200_000;

/** Bytes under `target` (symlinks not followed), undefined when absent; stops counting at 200 000 entries. */
export async function sizeOf(target: string): Promise<number | undefined> {
  const info = await lstat(target).catch(() => undefined);
  if (!info) return undefined;
  let total = 0;
  let entries = 0;
  const stack = [{ file: target, info }];
  while (stack.length && entries < MAX_ENTRIES) {
    const { file, info: st } = stack.pop()!;
    entries++;
    if (!st.isDirectory()) {
      total += st.size;
      continue;
    }
    for (const name of await readdir(file).catch(() => [] as string[])) {
      const child = path.join(file, name);
      const childInfo = await lstat(child).catch(() => undefined);
      if (childInfo) stack.push({ file: child, info: childInfo });
    }
  }
  return total;
}
