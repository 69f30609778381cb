// The deploy folder's layout and its small state file (.launchfit/state.json), written
// atomically. The `current` symlink, not this file, says which release is live: after a crash
// between a swap and a state write the link is the truth.
import type { InstallWay } from '../../release/format/fleet-report.ts';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';

/** The app and platform a host is bound to (lib/launchfit/trust/binding.ts checks releases against it). */
export interface HostBinding {
  prefix: string;
  app?: string;
  platform?: string;
}

export interface DeployPaths {
  dir: string;
  releases: string;
  current: string;
  meta: string;
  tmp: string;
  downloads: string;
  /** The manifest of each release held (install/kept-manifest.ts). */
  manifests: string;
  state: string;
  lock: string;
  socket: string;
  appLog: string;
  pidFile: string;
  /** The second app slot's (app.listen: old and new run side by side during an update). */
  secondPidFile: string;
  /** The running hook's process group (see hooks.ts) and its output. */
  hookFile: string;
  hookLog: string;
}

export function deployPaths(dir: string): DeployPaths {
  const abs = path.resolve(dir);
  const meta = path.join(abs, '.launchfit');
  return {
    dir: abs,
    releases: path.join(abs, 'releases'),
    current: path.join(abs, 'current'),
    meta,
    tmp: path.join(meta, 'tmp'),
    downloads: path.join(meta, 'downloads'),
    manifests: path.join(meta, 'manifests'),
    state: path.join(meta, 'state.json'),
    lock: path.join(meta, 'lock'),
    socket: path.join(meta, 'control.sock'),
    appLog: path.join(meta, 'app.log'),
    pidFile: path.join(meta, 'app.pid'),
    secondPidFile: path.join(meta, 'app-2.pid'),
    hookFile: path.join(meta, 'hook.json'),
    hookLog: path.join(meta, 'hook.log'),
  };
}

/** Where releases/NAME's manifest is kept while the release is (install/kept-manifest.ts). */
export const keptManifestFile = (paths: DeployPaths, name: string) => path.join(paths.manifests, `${name}.manifest`);

export interface InstalledRelease {
  version: string;
  file: string;
  sha256: string;
  installedAt: string;
  /** The primary key that signed the tarball. */
  signer?: string;
  /** The subkey that made the tarball's signature. */
  signingKey?: string;
  /** The folder's digest once installed, hook run (install/reuse-kept-release.ts): going back reuses it only unchanged. */
  tree?: string;
  /** The verification settings it was installed under (install/staging.ts stagingPolicy). */
  policy?: string;
}

/** How an install got its files: `reuse` (the folder kept in releases/), `patch` (rebuilt from a patch), `full` (the tarball). */
export type { InstallWay };

export interface LaunchState {
  /** Highest version ever installed: anything lower is refused (except by rollback). */
  highest?: string;
  /** Versions that failed their health check or were rolled back from. */
  bad: string[];
  /** Release folder names (under releases/) whose install finished, hook included. */
  installed: Record<string, InstalledRelease>;
  /** The release that was current before the last switch. */
  previous?: string;
  /** The highest SEQ of a signed VERSION handled here, and the file it named (see seq.ts). */
  seq?: { seq: number; file: string; at: string };
  /** A verified VERSION.sig has been seen: from then on an unsigned VERSION is refused. */
  signedVersionSeen?: boolean;
  /** The longest verified ledger seen: a shorter or rewritten one is refused (trust/ledger.ts). */
  ledger?: {
    n: number;
    hash: string;
    /** The verified ledger's length: the next check reads from there. */ bytes?: number;
  };
  /** ETag of the last VERSION that was fully handled. */
  etag?: string;
  /** Last-Modified of that VERSION, sent as If-Modified-Since (servers without ETags, e.g. python3 -m http.server). */
  lastModified?: string;
  /** That VERSION's EXPIRES: a 304 after it is a failed check, so a server cannot freeze the host by never changing. */
  versionExpires?: string;
  /** The APP and PLATFORM this folder runs, bound by its first install (see binding.ts). */
  binding?: HostBinding;
  lastCheck?: { at: string; ok: boolean; message: string };
  /** A VERSION whose ROLLOUT this host is not in yet (docs/fleet.md): not acted on, its SEQ not recorded. */
  waiting?: { version: string; seq?: number; rollout: number; bucket: number; at: string };
  /** Set just before a switch, cleared after the health check: a crash in between is rolled back on start. */
  pending?: { from?: string; to: string; at: string };
  /** The last release installed or switched back to, and the way its files came. */
  lastInstall?: { release: string; version: string; way: InstallWay; bytes: number; at: string; from?: string };
  /** Why the last release that failed its health check was rolled back. */
  lastFailure?: StartFailure & { release: string; version: string; at: string };
}

/** Why a start on probation failed: kept in state, shown by `status`, written to the log. */
export interface StartFailure {
  reason: string;
  /** The health probe's last answers or errors, oldest first. */
  probes: string[];
  /** The last lines of the release's output. */
  output: string[];
}

export function emptyState(): LaunchState {
  return { bad: [], installed: {} };
}

export async function readState(paths: DeployPaths): Promise<LaunchState> {
  try {
    const data = JSON.parse(await readFile(paths.state, 'utf8')) as Partial<LaunchState>;
    return { ...emptyState(), ...data, bad: data.bad ?? [], installed: data.installed ?? {} };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw error;
  }
}

export async function writeState(paths: DeployPaths, state: LaunchState): Promise<void> {
  await ensureDir(paths.meta, 0o700);
  await atomicWriteFile(paths.state, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** Read, change and write the state in one step. */
export async function updateState(paths: DeployPaths, change: (state: LaunchState) => void): Promise<LaunchState> {
  const state = await readState(paths);
  change(state);
  await writeState(paths, state);
  return state;
}
