// The Node a repo's build runs with (docs/build.md): `node:`, else the repo's .nvmrc,
// .node-version or engines.node, else shipkit's own; a matching Node is used as it is, found in
// DATA/toolchains/, or fetched once from the npm registry and renamed into place under a lock.
// The whole story: docs/internals.md.
import { constants } from 'node:fs';
import { chmod, lstat, mkdtemp, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { $ } from '../core/shell.ts';
import { messageOf, VerificationError } from '../core/errors.ts';
import { canAccess, ensureDir, tempSibling } from '../core/fs.ts';
import { acquireLock } from '../core/lock.ts';
import { StepFailure, type BuildContext, type ChosenNode } from './context.ts';
import { listNodeVersions, nodePackageName, packNodeRelease, type NpmOptions } from './node-registry.ts';
import {
  highestSatisfying,
  highestVersion,
  parseNodeRequest,
  parseVersion,
  type NodeRequest,
} from '../config/node-version.ts';

export interface WantedNode {
  request: NodeRequest;
  /** Where the request came from, for the log: `shipkit.yml`, `.nvmrc`, … */
  from: string;
}

export interface ToolchainDirs {
  /** DATA/toolchains: shared by every repo's builds. */
  shared: string;
  /** DATA/state/REPO/toolchains: used by a build user that cannot write the shared folder. */
  private: string;
}

const MAX_VERSION_FILE_BYTES = 64 * 1024;
const VERSION_FILES = ['.nvmrc', '.node-version'];

/** DATA/toolchains and the repo's private fallback. */
export function toolchainDirs(data: string, state: string): ToolchainDirs {
  return { shared: path.join(data, 'toolchains'), private: path.join(state, 'toolchains') };
}

/** `node-22.9.0-linux-x64`: the folder of one version. */
export function toolchainFolderName(version: string, arch: string = process.arch): string {
  return `node-${version}-linux-${arch}`;
}

/**
 * A file of the checked-out repo, as text; undefined when absent. A link, a folder or a file
 * bigger than `maxBytes` fails the step: shipkit (maybe root) must not read outside the repo.
 */
async function readRepoFile(
  work: string,
  name: string,
  maxBytes = MAX_VERSION_FILE_BYTES,
): Promise<string | undefined> {
  const file = path.join(work, name);
  const info = await lstat(file).catch(() => undefined);
  if (!info) return undefined;
  if (!info.isFile())
    throw new StepFailure(
      `The repo's ${name} is ${info.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; shipkit ` +
        `reads the Node version only from a plain file. Make it a file, or set node: for the repo in shipkit.yml.`,
    );
  if (info.size > maxBytes)
    throw new StepFailure(`The repo's ${name} is larger than ${maxBytes} bytes; is it the right file?`);
  return readFile(file, 'utf8');
}

/** The first line of a version file that is neither blank nor a `#` comment. */
function firstVersionLine(text: string): string {
  return (
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .find((l) => l && !l.startsWith('#')) ?? ''
  );
}

/**
 * What the repo asks for: shipkit.yml's `node:` (checked when the config was loaded), else the
 * first of `.nvmrc`, `.node-version`, `engines.node` in the work folder; undefined when none.
 * A file that holds no version fails the step, naming the file.
 */
export async function findWantedNode(
  configured: NodeRequest | undefined,
  work: string,
): Promise<WantedNode | undefined> {
  if (configured) return { request: configured, from: 'shipkit.yml' };
  for (const name of VERSION_FILES) {
    const text = await readRepoFile(work, name);
    if (text === undefined) continue;
    return { request: parseOrFail(firstVersionLine(text), name), from: name };
  }
  const pkgText = await readRepoFile(work, 'package.json', 4 * 1024 * 1024);
  if (pkgText === undefined) return undefined;
  let engines: unknown;
  try {
    engines = (JSON.parse(pkgText) as { engines?: { node?: unknown } })?.engines?.node;
  } catch {
    return undefined; // npm says what is wrong with it, in the install step.
  }
  if (engines === undefined) return undefined;
  if (typeof engines !== 'string')
    throw new StepFailure(
      'The repo\'s package.json has an engines.node that is not a string; give a range such as ">=20" or ' +
        'set node: for the repo in shipkit.yml.',
    );
  return { request: parseOrFail(engines, 'package.json engines.node'), from: 'package.json engines.node' };
}

function parseOrFail(text: string, from: string): NodeRequest {
  const parsed = parseNodeRequest(text);
  if ('problem' in parsed)
    throw new StepFailure(
      `The repo's ${from} ${parsed.problem}; fix it, or set node: for the repo in shipkit.yml. Nothing was run.`,
    );
  return parsed;
}

/** shipkit's own Node, unless it runs on Deno (whose process.version is not a Node binary). */
function ownNodeVersion(): string | undefined {
  return 'Deno' in globalThis ? undefined : process.version.replace(/^v/, '');
}

/** A folder only root or this process's user can have written (it will run as a build's node). */
async function trustedFolder(dir: string): Promise<boolean> {
  const me = process.getuid?.();
  for (const p of [dir, path.join(dir, 'bin'), path.join(dir, 'bin', 'node')]) {
    const info = await lstat(p).catch(() => undefined);
    if (!info || info.isSymbolicLink() || (info.mode & 0o022) !== 0) return false;
    if (me !== undefined && info.uid !== 0 && info.uid !== me) return false;
  }
  return true;
}

/** The highest version in `root` that satisfies the request and can be trusted, with its folder. */
async function findCached(
  roots: string[],
  request: NodeRequest,
): Promise<{ version: string; dir: string } | undefined> {
  const suffix = `-linux-${process.arch}`;
  let best: { version: string; dir: string } | undefined;
  for (const root of roots) {
    const names = await readdir(root).catch(() => [] as string[]);
    const found = new Map<string, string>();
    for (const name of names) {
      if (!name.startsWith('node-') || !name.endsWith(suffix)) continue;
      const version = name.slice('node-'.length, -suffix.length);
      if (parseVersion(version)) found.set(version, path.join(root, name));
    }
    const version = highestSatisfying(found.keys(), request);
    if (!version || !(await trustedFolder(found.get(version)!))) continue;
    if (!best || highestSatisfying([best.version, version], request) === version)
      best = { version, dir: found.get(version)! };
  }
  return best;
}

/** The shared folder when this process may write it, else the private one. */
async function writableRoot(dirs: ToolchainDirs): Promise<string> {
  // DATA/toolchains may be a link to a folder this user cannot write (canAccess follows it).
  if (
    await ensureDir(dirs.shared, 0o755).then(
      () => canAccess(dirs.shared, constants.W_OK),
      () => false,
    )
  )
    return dirs.shared;
  await ensureDir(dirs.private, 0o755);
  return dirs.private;
}

export interface ProvideOptions {
  dirs: ToolchainDirs;
  env: NodeJS.ProcessEnv;
  /** Epoch ms when the job's time is up (the lock wait and the download end by then). */
  deadline: number;
  log: (line: string) => void;
  /** Tests: a registry other than npm's configured one. */
  registry?: string;
  /** The build was told to stop: npm is stopped too. */
  signal?: AbortSignal;
  /** Tests: pretend shipkit runs on this Node version (undefined: never use its own). */
  ownVersion?: string | null;
}

/**
 * The Node for `wanted`: shipkit's own when it satisfies the request, else a cached one, else one
 * fetched from the registry. Throws StepFailure (no such version, download or check failed).
 */
export async function provideNode(wanted: WantedNode, options: ProvideOptions): Promise<ChosenNode> {
  const { request, from } = wanted;
  const own = options.ownVersion === undefined ? ownNodeVersion() : (options.ownVersion ?? undefined);
  if (own && highestSatisfying([own], request)) return { version: own, from, how: 'own' };
  const cached = await findCached([options.dirs.shared, options.dirs.private], request);
  if (cached) return { version: cached.version, from, bin: path.join(cached.dir, 'bin'), how: 'cached' };
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-node-'));
  try {
    return await fetchNode(
      wanted,
      { env: options.env, scratch, registry: options.registry, deadline: options.deadline, signal: options.signal },
      options,
    );
  } finally {
    await rm(scratch, { recursive: true, force: true, maxRetries: 3 });
  }
}

async function fetchNode({ request, from }: WantedNode, npm: NpmOptions, options: ProvideOptions): Promise<ChosenNode> {
  let name: string;
  let version: string;
  try {
    name = nodePackageName();
    const versions = await listNodeVersions(name, npm);
    const found = highestSatisfying(versions, request);
    if (!found) {
      const newest = highestVersion(versions);
      throw new StepFailure(
        `Node ${request.text} (from ${from}) cannot be had from the npm registry ` +
          `(${name}@${request.text}: no such version)${newest ? `; the newest is ${newest}` : ''}. Change ` +
          `${from === 'shipkit.yml' ? 'node: in shipkit.yml' : `the repo's ${from}`}.`,
      );
    }
    version = found;
  } catch (error) {
    if (error instanceof StepFailure) throw error;
    throw new StepFailure(`Node ${request.text} (from ${from}) could not be looked up: ${messageOf(error)}`);
  }
  const root = await writableRoot(options.dirs);
  const dir = path.join(root, toolchainFolderName(version));
  const lock = await acquireLock(path.join(root, `.${path.basename(dir)}.lock`), {
    waitMs: Math.max(0, options.deadline - Date.now()),
    what: `the Node ${version} download (another build is fetching it)`,
  }).catch((error) => {
    throw new StepFailure(messageOf(error));
  });
  try {
    // Another build fetched it while this one waited for the lock.
    if (await trustedFolder(dir)) return { version, from, bin: path.join(dir, 'bin'), how: 'cached' };
    if (await lstat(dir).catch(() => undefined)) {
      throw new StepFailure(
        `${dir} is there but is not used: it (or its bin/node) belongs to another user or is writable by ` +
          `others. Remove it (rm -rf) and build again.`,
      );
    }
    await removeLeftovers(root, path.basename(dir));
    options.log(`fetching Node ${version} (${name}) with npm into ${root}`);
    const packed = await packNodeRelease(name, version, npm);
    options.log(
      `fetched ${path.basename(packed.tarball)}; its sha512 matches the registry's integrity (${packed.integrity.slice(0, 24)}…)`,
    );
    await installTarball(packed.tarball, version, dir);
    return { version, from, bin: path.join(dir, 'bin'), how: 'fetched' };
  } catch (error) {
    if (error instanceof StepFailure) throw error;
    throw new StepFailure(`Node ${version} (from ${from}) could not be installed: ${messageOf(error)}`);
  } finally {
    await lock.release();
  }
}

/** Temp folders of this version that a build killed while unpacking left; the caller holds its lock. */
async function removeLeftovers(root: string, folder: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (name.startsWith(`.${folder}.unpack-`))
      await rm(path.join(root, name), { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Unpack into a temp folder beside `dir`, check `bin/node --version`, rename into place. */
async function installTarball(tarball: string, version: string, dir: string): Promise<void> {
  const temp = tempSibling(dir, 'unpack');
  try {
    await ensureDir(temp, 0o755);
    await unpackNodePackage(tarball, temp);
    const node = path.join(temp, 'bin', 'node');
    const answer = await $({ quiet: true, nothrow: true, timeout: 30_000 })`${node} --version`;
    if (answer.stdout.trim() !== `v${version}`) {
      throw new VerificationError(
        `its bin/node does not run here (it said ${JSON.stringify((answer.stdout + answer.stderr).trim().slice(0, 120))}, exit ${answer.exitCode})`,
      );
    }
    await chmod(temp, 0o755);
    await rename(temp, dir);
  } finally {
    await rm(temp, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** The package's files (under `package/`) into `into`: plain files and folders only, no set-id bits. */
async function unpackNodePackage(tarball: string, into: string): Promise<void> {
  const tar = await import('tar');
  let problem: string | undefined;
  await tar.x({
    file: tarball,
    cwd: into,
    strip: 1,
    strict: true,
    preserveOwner: false,
    filter: (p: string, entry: unknown) => {
      const e = entry as { type?: string; mode?: number };
      if (e.type !== 'File' && e.type !== 'OldFile' && e.type !== 'Directory') {
        problem ??= `${JSON.stringify(p)} is a ${e.type} entry`;
        return false;
      }
      if (typeof e.mode === 'number') e.mode &= 0o755;
      return true;
    },
  });
  if (problem) throw new VerificationError(`the package holds something other than files and folders (${problem})`);
  const info = await stat(path.join(into, 'bin', 'node')).catch(() => undefined);
  if (!info?.isFile()) throw new VerificationError('the package has no bin/node');
}

/**
 * For a build step: choose the repo's Node (once per job), fetch it when needed, and record it on
 * the context; lib/pipeline/job.ts puts its bin folder first on PATH for the build's commands.
 */
export async function useRepoNode(ctx: BuildContext): Promise<void> {
  if (ctx.node !== undefined) return;
  const wanted = await findWantedNode(ctx.repo.node, ctx.paths.work);
  if (!wanted) {
    ctx.node = null;
    return;
  }
  const chosen = await provideNode(wanted, {
    dirs: toolchainDirs(ctx.config.data, ctx.paths.state),
    env: ctx.env,
    deadline: ctx.deadline,
    signal: ctx.signal,
    log: (line) => ctx.log.line(line),
  });
  // shipkit's own Node: first on PATH already, or put there.
  if (chosen.how === 'own' && !(await ownNodeIsFirst(ctx.env.PATH))) chosen.bin = path.dirname(process.execPath);
  ctx.node = chosen;
  const how =
    chosen.how === 'own'
      ? ', the Node shipkit runs on'
      : chosen.how === 'cached'
        ? ` (cached in ${path.dirname(chosen.bin!)})`
        : ` (fetched into ${path.dirname(chosen.bin!)})`;
  ctx.log.line(`node: v${chosen.version} from ${chosen.from} (${wanted.request.text})${how}`);
  ctx.env = withNodeOnPath(ctx.env, chosen);
}

async function ownNodeIsFirst(searchPath: string | undefined): Promise<boolean> {
  for (const dir of (searchPath ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'node');
    const found = await realpath(candidate).catch(() => undefined);
    if (!found) continue;
    return found === (await realpath(process.execPath).catch(() => process.execPath));
  }
  return false;
}

/** The environment with the chosen Node's bin folder first on PATH (unchanged without one). */
export function withNodeOnPath(env: NodeJS.ProcessEnv, chosen: ChosenNode | null | undefined): NodeJS.ProcessEnv {
  if (!chosen?.bin) return env;
  const rest = (env.PATH ?? '').split(path.delimiter).filter((p) => p && p !== chosen.bin);
  return { ...env, PATH: [chosen.bin, ...rest].join(path.delimiter) };
}
