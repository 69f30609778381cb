// A release prepared ahead (`GET /prepare`, `launchfit update --stage`): kept verified in tmp/ so
// the switch that follows does not download it again; dropped when it is no longer wanted.
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, pathExists } from '../../core/fs.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import { type TrustedKeys } from '../trust/pgp.ts';
import { type DeployPaths } from '../deploy-folder/state.ts';
import { compareVersions, type VersionInfo } from '../../release/format/version-file.ts';
import { releaseNameOf, type UpdateContext } from './context.ts';
import { obtainRelease, type VersionSigner } from './delta.ts';
import { type Unpacked } from './fetch-release.ts';

// A staged release (the fleet master's prepare, before this host's wave): tmp/staged-NAME, with
// tmp/staged-NAME.json saying what it is. Nothing of it runs and nothing is recorded: a prepare
// repeated for the same release keeps it, the check that switches takes it over instead of
// downloading (takeStaged), staging another release or installing one drops it, and a restart
// clears tmp/.
const STAGED_PREFIX = 'staged-';
const stagedDir = (paths: DeployPaths, name: string) => path.join(paths.tmp, `${STAGED_PREFIX}${name}`);
interface StagedRecord {
  file: string;
  version: string;
  sha256: string;
  signer: string;
  signingKey?: string;
  /** Bytes downloaded when it was staged, and how (`patch`, `reuse`, `full`). */
  bytes?: number;
  way?: Unpacked['way'];
  from?: string;
  root: string;
  /** The config it was verified under (stagingPolicy): under another, it is verified again. */
  policy?: string;
}

/** What verifying and unpacking a release depends on besides the keys: provenance and limits (also reuse-kept-release.ts's). */
export function stagingPolicy(config: LaunchConfig): string {
  const u = config.updates;
  return JSON.stringify([
    u.provenance,
    u.provenanceSource ?? null,
    u.provenanceBuilder ?? null,
    u.maxSize,
    u.maxUnpackedSize,
    u.maxRatio,
  ]);
}

/**
 * The staged release for exactly this VERSION (file, version, SHA256), verified under the same
 * config and signed by a key that is still trusted and not revoked (a rotation or revocation
 * since the prepare discards it: the release is downloaded and verified again), or undefined.
 */
async function findStaged(ctx: UpdateContext, info: VersionInfo, trusted: TrustedKeys): Promise<Unpacked | undefined> {
  if (!info.sha256) return undefined;
  const work = stagedDir(ctx.paths, releaseNameOf(info.file));
  let record: StagedRecord;
  try {
    record = JSON.parse(await readFile(`${work}.json`, 'utf8')) as StagedRecord;
  } catch {
    return undefined;
  }
  if (record.file !== info.file || record.sha256 !== info.sha256 || compareVersions(record.version, info.version) !== 0)
    return undefined;
  if (record.policy !== stagingPolicy(ctx.config) || !signerStillTrusted(trusted, record.signer)) return undefined;
  const root = path.join(work, record.root);
  if (!(await pathExists(root))) return undefined;
  return {
    work,
    root,
    sha256: record.sha256,
    signer: record.signer,
    signingKey: record.signingKey,
    bytes: record.bytes ?? info.size ?? 0,
    way: record.way,
    from: record.from,
  };
}

/** The staged release for this VERSION (findStaged), taken over: its record goes, its folder is the caller's. */
export async function takeStaged(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
): Promise<Unpacked | undefined> {
  const staged = await findStaged(ctx, info, trusted);
  if (staged) await rm(`${staged.work}.json`, { force: true });
  return staged;
}

/** Remove every staged release but `keep`'s (its folder and record). */
export async function dropStaged(paths: DeployPaths, keep?: string): Promise<void> {
  const kept = keep === undefined ? [] : [`${STAGED_PREFIX}${keep}`, `${STAGED_PREFIX}${keep}.json`];
  const names = await readdir(paths.tmp).catch(() => [] as string[]);
  for (const name of names)
    if (name.startsWith(STAGED_PREFIX) && !kept.includes(name))
      await rm(path.join(paths.tmp, name), { recursive: true, force: true });
}

function signerStillTrusted(trusted: TrustedKeys, signer: string): boolean {
  const revoked = Object.entries(trusted.revoked ?? {}).some(
    ([fingerprint, r]) => fingerprint === signer || r.primary.toLowerCase() === signer,
  );
  return !revoked && trusted.keys.some(({ key }) => key.getFingerprint().toLowerCase() === signer);
}

/**
 * Download, verify and unpack the release into tmp/staged-NAME, ready for installRelease; one
 * staged already for this VERSION is kept as it is. Any other staged release is dropped. Returns NAME.
 */
export async function stageRelease(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  signedBy?: VersionSigner,
): Promise<string> {
  const name = releaseNameOf(info.file);
  const dir = stagedDir(ctx.paths, name);
  await dropStaged(ctx.paths, name);
  if (await findStaged(ctx, info, trusted)) {
    ctx.log.info('release already staged and verified for this VERSION; not downloaded again', { release: name });
    return name;
  }
  await rm(`${dir}.json`, { force: true });
  await rm(dir, { recursive: true, force: true });
  const unpacked = await obtainRelease(ctx, info, trusted, signedBy, dir);
  const record: StagedRecord = {
    file: info.file,
    version: info.version,
    sha256: unpacked.sha256,
    signer: unpacked.signer,
    signingKey: unpacked.signingKey,
    bytes: unpacked.bytes,
    way: unpacked.way,
    from: unpacked.from,
    root: path.relative(dir, unpacked.root),
    policy: stagingPolicy(ctx.config),
  };
  await atomicWriteFile(`${dir}.json`, JSON.stringify(record), { mode: 0o600 });
  ctx.log.info('release staged: downloaded, verified and unpacked; it is installed when this host is told to update', {
    release: name,
  });
  return name;
}
