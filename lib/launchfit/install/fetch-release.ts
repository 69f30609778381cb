// An update's first phase, nothing on the host touched: VERSION (conditional), its signature, the
// keys, and the release downloaded, verified and extracted into a temp folder (docs/launchfit.md).
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, RemoteError, VerificationError, messageOf } from '../../core/errors.ts';
import { ensureDir } from '../../core/fs.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import { DEFAULT_EXTRACT_LIMITS, extractRelease } from './extract.ts';
import { downloadToFile, fetchSmall, type MinRate } from '../update-server/requests.ts';
import type { Timeouts } from '../../http/open-get.ts';
import { verifyDetachedSignature, type TrustedKeys } from '../trust/pgp.ts';
import type { FetchedLedger, LedgerTail } from '../trust/ledger.ts';
import { checkProvenance } from '../trust/provenance.ts';
import { loadReleaseKeys } from '../trust/release-keys.ts';
import { LEDGER_FILE, LEDGER_HEAD_SIG_FILE, LEDGER_SIG_FILE, MAX_LEDGER_BYTES } from '../../release/format/ledger.ts';
import { MAX_VERSION_FILE_BYTES, parseVersionFile, type VersionInfo } from '../../release/format/version-file.ts';
import type { ManifestEntry } from '../../release/format/manifest.ts';
import type { DigestBook } from '../deploy-folder/file-digests.ts';
import type { InstallWay } from '../../release/format/fleet-report.ts';
import { MAX_SIGNATURE_BYTES, type UpdateContext } from './context.ts';

export function timeoutsOf(config: LaunchConfig): Timeouts {
  const u = config.updates;
  return {
    connectMs: u.connectTimeoutSec * 1000,
    idleMs: u.idleTimeoutSec * 1000,
    totalMs: u.downloadTimeoutSec * 1000,
  };
}

/** VERSION, signatures and keys are small: a short total deadline, so a drip cannot hold a check. */
export function metadataTimeoutsOf(config: LaunchConfig): Timeouts {
  return { ...timeoutsOf(config), totalMs: config.updates.metadataTimeoutSec * 1000 };
}

function minRateOf(config: LaunchConfig): MinRate | undefined {
  const u = config.updates;
  return u.minRate > 0 ? { bytesPerSec: u.minRate, windowMs: u.minRateWindowSec * 1000 } : undefined;
}

export function serverOf(config: LaunchConfig): string {
  if (!config.updates.server)
    throw new ConfigError(
      `${config.file}: updates.server is not set; give the update server's URL (launchfit deploy URL).`,
    );
  return config.updates.server;
}

/** The keys a release may be signed with (keyfile or pinned primary, with the server's keys.asc) and the revocations seen. */
export async function loadTrustedKeys(ctx: UpdateContext): Promise<TrustedKeys> {
  return loadReleaseKeys({
    config: ctx.config,
    metaDir: ctx.paths.meta,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
    now: ctx.now?.(),
  });
}

/** What makes a VERSION poll conditional: the last handled VERSION's ETag and Last-Modified. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/**
 * Fetch VERSION (and VERSION.sig) and check it: signature, EXPIRES. Null when unchanged (304).
 * VERSION.sig is required unless updates.allow_unsigned_version; even then, once a signed VERSION
 * has been seen (`signedBefore`), an unsigned one is refused: stripping the signature must not be
 * a way around EXPIRES.
 */
export async function fetchVersionInfo(
  ctx: UpdateContext,
  keys: TrustedKeys | (() => Promise<TrustedKeys>),
  since: Validators | undefined,
  signedBefore = false,
): Promise<
  | ({
      info: VersionInfo;
      signed: boolean;
      sha256: string;
      signedBy?: { primary: string; subkey: string };
    } & Validators)
  | null
> {
  const server = serverOf(ctx.config);
  const timeouts = metadataTimeoutsOf(ctx.config);
  const res = await fetchSmall(new URL('VERSION', server).href, {
    maxBytes: MAX_VERSION_FILE_BYTES,
    etag: since?.etag,
    lastModified: since?.lastModified,
    timeouts,
    fetchImpl: ctx.fetchImpl,
  });
  if (res.status === 'not-modified') {
    if (!since?.etag && !since?.lastModified)
      throw new RemoteError(
        `${server}VERSION answered 304 Not Modified to a request that was not conditional; the update server is misconfigured or hostile. Nothing was installed.`,
      );
    return null;
  }
  if (res.status === 'missing')
    throw new VerificationError(`${server}VERSION does not exist; is updates.server right?`);
  const now = ctx.now?.() ?? new Date();
  const sig = await fetchSmall(new URL('VERSION.sig', server).href, {
    maxBytes: MAX_SIGNATURE_BYTES,
    timeouts,
    fetchImpl: ctx.fetchImpl,
  });
  let signedBy: { primary: string; subkey: string } | undefined;
  if (sig.status === 'ok') {
    const trusted = typeof keys === 'function' ? await keys() : keys;
    const verified = await verifyDetachedSignature({
      data: res.body,
      signature: sig.body,
      trusted,
      what: 'VERSION',
      now,
    });
    signedBy = { primary: verified.primaryFingerprint, subkey: verified.signingFingerprint };
  } else if (signedBefore) {
    throw new VerificationError(
      `${server}VERSION.sig is missing, but this host has seen a signed VERSION before; refusing an unsigned one. Publish with \`release publish\` (it signs VERSION).`,
    );
  } else if (!ctx.config.updates.allowUnsignedVersion) {
    throw new VerificationError(
      `${server}VERSION.sig is missing; an unsigned VERSION is refused (publish with \`release publish\`, which signs it, or set updates.allow_unsigned_version: true, which is weaker).`,
    );
  }
  let info: VersionInfo;
  try {
    info = parseVersionFile(res.body.toString('utf8'));
  } catch (error) {
    throw new VerificationError(`The update server's VERSION is invalid: ${messageOf(error)}`, { cause: error });
  }
  if (info.expires && info.expires.getTime() < now.getTime()) {
    throw new VerificationError(
      `VERSION expired on ${info.expires.toISOString()}; the update server is stale or replaying old metadata. Publish again.`,
    );
  }
  return {
    info,
    etag: res.etag,
    lastModified: res.lastModified,
    signed: sig.status === 'ok',
    signedBy,
    sha256: createHash('sha256').update(res.body).digest('hex'),
  };
}

/** ledger.jsonl and its signature beside VERSION, or undefined when the server has no ledger. */
export async function fetchLedger(ctx: UpdateContext): Promise<FetchedLedger | undefined> {
  const server = serverOf(ctx.config);
  const res = await fetchSmall(new URL(LEDGER_FILE, server).href, {
    maxBytes: MAX_LEDGER_BYTES,
    timeouts: timeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
  });
  if (res.status !== 'ok') return undefined;
  const sig = await fetchSmall(new URL(LEDGER_SIG_FILE, server).href, {
    maxBytes: MAX_SIGNATURE_BYTES,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
  });
  return { text: res.body, signature: sig.status === 'ok' ? sig.body : undefined };
}

/**
 * The lines appended to the server's ledger since the `bytes` this host verified (a Range
 * request), with ledger.head.sig; undefined when the server sends the whole file or cannot say
 * (then the whole ledger is read and checked as on a first check).
 */
export async function fetchLedgerTail(
  ctx: UpdateContext,
  seen: { n: number; hash: string; bytes: number },
): Promise<LedgerTail | undefined> {
  const server = serverOf(ctx.config);
  const res = await fetchSmall(new URL(LEDGER_FILE, server).href, {
    maxBytes: MAX_LEDGER_BYTES,
    timeouts: timeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
    from: seen.bytes,
  }).catch(() => undefined); // 416 (a shorter file) and the rest: the whole ledger decides
  if (res?.status !== 'ok' || !res.partial) return undefined;
  const sig = await fetchSmall(new URL(LEDGER_HEAD_SIG_FILE, server).href, {
    maxBytes: MAX_SIGNATURE_BYTES,
    timeouts: metadataTimeoutsOf(ctx.config),
    fetchImpl: ctx.fetchImpl,
  }).catch(() => undefined);
  return sig?.status === 'ok' ? { text: res.body, after: seen, headSignature: sig.body } : undefined;
}

/** A release downloaded, verified and unpacked under tmp/ (`work`), its folder `root` inside. */
export interface Unpacked {
  work: string;
  root: string;
  sha256: string;
  signer: string;
  /** The subkey that made the tarball's signature (absent for a release staged by an older launchfit). */
  signingKey?: string;
  /** Bytes downloaded for it. */
  bytes: number;
  /** How it came: rebuilt from a held release (`patch`, `reuse`) or the tarball (`full`, the default). */
  way?: InstallWay;
  /** The held release's version a patch was applied to. */
  from?: string;
  /** The signed manifest the folder was built from and checked against (a rebuilt release). */
  manifest?: ManifestEntry[];
  /** The digests of the files checked as it was built, as a digest book (deploy-folder/file-digests.ts). */
  book?: DigestBook;
}

/** Download and verify the release VERSION names and unpack it into `work` (under tmp/). */
export async function fetchAndUnpack(
  ctx: UpdateContext,
  info: VersionInfo,
  trusted: TrustedKeys,
  work: string,
): Promise<Unpacked> {
  const { paths, config, log } = ctx;
  const server = serverOf(config);
  const now = ctx.now?.() ?? new Date();
  await ensureDir(paths.downloads, 0o700);
  await ensureDir(paths.tmp, 0o700);
  await ensureDir(paths.releases);
  const tarball = path.join(paths.downloads, info.file);
  const url = new URL(info.file, server).href;
  log.info('downloading release', { url, size: info.size });
  const sigRes = await fetchSmall(`${url}.sig`, {
    maxBytes: MAX_SIGNATURE_BYTES,
    timeouts: metadataTimeoutsOf(config),
    fetchImpl: ctx.fetchImpl,
  });
  if (sigRes.status !== 'ok')
    throw new VerificationError(`${url}.sig is missing; unsigned releases are never installed.`);
  const got = await downloadToFile(url, tarball, {
    maxBytes: config.updates.maxSize,
    expectedSize: info.size,
    timeouts: timeoutsOf(config),
    minRate: minRateOf(config),
    fetchImpl: ctx.fetchImpl,
  });
  try {
    if (info.size !== undefined && got.size !== info.size)
      throw new VerificationError(`${info.file} is ${got.size} bytes but VERSION says SIZE ${info.size}; refusing it.`);
    if (info.sha256 && got.sha256 !== info.sha256)
      throw new VerificationError(
        `${info.file} does not match SHA256 in VERSION; it was changed or damaged. Refusing it.`,
      );
    const verified = await verifyDetachedSignature({
      file: tarball,
      signature: sigRes.body,
      trusted,
      what: info.file,
      now,
    });
    log.info('signature verified', { file: info.file, key: verified.signingFingerprint });
    await checkProvenance({
      updates: config.updates,
      url,
      file: info.file,
      sha256: got.sha256,
      trusted,
      timeouts: metadataTimeoutsOf(config),
      fetchImpl: ctx.fetchImpl,
      log,
      now,
    });
    const root = await extractRelease(tarball, work, {
      ...DEFAULT_EXTRACT_LIMITS,
      maxUnpackedBytes: config.updates.maxUnpackedSize,
      maxRatio: config.updates.maxRatio,
    });
    return {
      work,
      root,
      sha256: got.sha256,
      signer: verified.primaryFingerprint,
      signingKey: verified.signingFingerprint,
      bytes: got.size,
    };
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(tarball, { force: true });
  }
}
