// `release promote APP VERSION --from DEST --to DEST` (docs/environments.md): the same tarball, its
// .sig, manifest and provenance copied from one environment's DEST to another's, the tarball's
// sha256 checked in the one read that copies it; then a VERSION with the target's next SEQ and a
// ledger entry on both sides, under both publish locks. Refusals write nothing at the target.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError, ValidationError } from '../../core/errors.ts';
import { sha256File } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { validateName } from '../../core/names.ts';
import { openDestination, type Destination, type StepHook } from '../dest/destination.ts';
import {
  lockDestination,
  placeAppend,
  prepareAppend,
  publishedFacts,
  readLedgerAt,
  type LedgerAtDest,
  type PreparedAppend,
} from '../dest/ledger.ts';
import { nextSeq, placeVersionPair, readPublishedVersion, type PublishedVersion } from '../dest/seq.ts';
import { indexFileName } from '../format/pack-index.ts';
import type { LedgerEntry } from '../format/ledger.ts';
import { loadSigningKey, publicCertificateFor, signDetached, type SigningKey } from '../format/signature.ts';
import { formatVersionFile, validateVersion, type VersionInfo } from '../format/version-file.ts';
import { copyTarball, startEarlyCopy, type EarlyCopy } from './promote-copy.ts';
import { sourceRelease, type SourceRelease } from './promote-source.ts';

// Its older tests import it from here.
export { copyHashing } from './promote-copy.ts';

export interface PromoteOptions {
  app: string;
  version: string;
  from: string;
  to: string;
  /** Names of the environments, for the ledger entries and messages (default: none, the DESTs say it). */
  fromEnv?: string;
  toEnv?: string;
  /** Which platform's tarball, when the source holds several. */
  platform?: string;
  key: string;
  passphraseFile?: string;
  keys?: string;
  /** Promote although the release is not good at the source, for this reason (recorded). */
  force?: { reason: string };
  /**
   * Copy the tarball into a folder target even where it could be linked (default: linked when
   * both folders are on one filesystem; see promote-copy.ts).
   */
  copy?: boolean;
  /** Days until the new VERSION expires; 0 = never. Default 30. */
  expiresDays?: number;
  /** ROLLOUT of the new VERSION: the target's first rollout step (`release rollout` raises it); none: every host. */
  rollout?: number;
  log: Logger;
  now?: () => Date;
  /** Called at each step (`checked`, then each write); the script can pause there for a test. */
  step?: StepHook;
  /** The state folder where the longest ledger read at each DEST is kept; none: not checked. */
  state?: string;
  /**
   * Asked under both locks once the source's rules passed, before anything is written: the target
   * environment's approvals and windows (lib/pipeline/environments.ts). Throws to refuse; its note
   * joins the target's ledger entry.
   */
  admit?: (facts: {
    version: string;
    sha256: string;
    sourceEntries: LedgerEntry[];
    certificate: string;
    /** The time the ledger entries record: windows are judged at it, so the two agree. */
    at: Date;
  }) => Promise<{ note: string }>;
}

export interface PromoteResult {
  app: string;
  version: string;
  file: string;
  sha256: string;
  size: number;
  seq: number;
  from: string;
  to: string;
  from_env: string | null;
  to_env: string | null;
  /** Carried with the tarball (the manifest, its index, the provenance). */
  carried: string[];
  /** The target's tarball is a hard link to the source's (two folders on one filesystem), not a copy. */
  linked: boolean;
  /** The "not good" rule --force overrode, if it did. */
  overrode?: string;
}

/** Refuses bad names and flags before any DEST is read. */
function checkPromoteOptions(opts: PromoteOptions): void {
  validateName(opts.app, 'app name');
  validateVersion(opts.version, 'VERSION');
  if (opts.platform !== undefined) validateName(opts.platform, 'platform');
  for (const env of [opts.fromEnv, opts.toEnv]) if (env !== undefined) validateName(env, 'environment name');
  if (opts.force && !opts.force.reason.trim())
    throw new UsageError('--force needs --reason TEXT: the reason is recorded in the ledger.');
  if (opts.force && opts.force.reason.length > 1000)
    throw new UsageError('--reason is longer than 1000 characters; say it shorter.');
}

/** Promotes `opts.version` of `opts.app` from one DEST to another; see the file's header. */
export async function promoteRelease(opts: PromoteOptions): Promise<PromoteResult> {
  checkPromoteOptions(opts);
  const now = opts.now?.() ?? new Date();
  const source = openDestination(opts.from, opts.log);
  const target = openDestination(opts.to, opts.log);
  if (source.where === target.where)
    throw new UsageError(`--from and --to are both ${source.where}; promote from one DEST to another.`);
  // The tarball's bytes start moving while the key is loaded and both sides are read; they are
  // kept only if those checks name the same file and its signed sha256 (promote-copy.ts).
  // Only a head start: a DEST it cannot list is left to the checks, which say so in their words.
  const early = await startEarlyCopy(source, target, { ...opts, link: !opts.copy }).catch(() => undefined);
  try {
    const key = await loadSigningKey(opts.key, opts.passphraseFile);
    const certificate = await publicCertificateFor(key, opts.key, opts.keys, now);
    const sourceLock = await lockDestination(source);
    try {
      const targetLock = await lockDestination(target);
      try {
        return await promoteLocked(opts, { key, certificate, source, target, now, early });
      } finally {
        await targetLock?.release();
      }
    } finally {
      await sourceLock?.release();
    }
  } finally {
    await early?.discard();
  }
}

interface Locked {
  key: SigningKey;
  certificate: string;
  source: Destination;
  target: Destination;
  now: Date;
  early?: EarlyCopy;
}

/** What is read at both DESTs before anything is written. */
interface Read {
  release: SourceRelease;
  sourceLedger: LedgerAtDest;
  targetLedger: LedgerAtDest;
  targetVersion: { published?: PublishedVersion; problem?: string; hint?: string };
  seq: number;
  /** The tarball is at the target already with the signed bytes (a promote run again). */
  present: boolean;
}

async function promoteLocked(opts: PromoteOptions, locked: Locked): Promise<PromoteResult> {
  const read = await readBothSides(opts, locked);
  const { release } = read;
  const admitted = await opts.admit?.({
    version: release.version,
    sha256: release.sha256,
    sourceEntries: read.sourceLedger.ledger.entries,
    certificate: locked.certificate,
    at: locked.now,
  });
  const { source, target, key, now } = locked;
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-promote-'));
  try {
    const small = await smallFilesOf(source, release, scratch);
    const keys = await stageKeys(target, locked.certificate, scratch);
    await opts.step?.('checked');
    const manifest = release.manifest && small.includes(release.manifest.file) ? release.manifest : undefined;
    const sign = (size: number) => signWrites(opts, locked, read, { release, manifest, size, note: admitted?.note });
    // From a folder the tarball's size is known before it is copied: the entries and the VERSION
    // are signed while the copy runs, and written only once its sha256 is checked.
    const expected = source.local ? await sizeOf(path.join(source.where, release.file)) : undefined;
    const early = expected === undefined ? undefined : sign(expected);
    // Awaited below, or given up when the copy fails or its size is not the one signed.
    early?.catch(() => undefined);
    const copied = copyTarball(source, target, release, scratch, {
      present: read.present,
      step: opts.step,
      early: locked.early,
      link: !opts.copy,
    });
    // Into a folder, the carried files are written and fsynced while the tarball copies, and renamed
    // into place once its sha256 is checked (a refused copy takes them away again).
    const carried = target.local ? placeCarried(target, scratch, [...small, ...keys], opts.step, copied) : undefined;
    carried?.catch(() => undefined); // awaited below
    const { size, linked } = await copied.catch(async (error) => {
      await carried?.catch(() => undefined);
      throw error;
    });
    const signed = early && size === expected ? await early : await sign(size);
    await (carried ?? placeCarried(target, scratch, [...small, ...keys], opts.step));
    await placeAppend(target, read.targetLedger, signed.target, opts.step);
    // The target's ledger holds the promote now: its VERSION and the source's `promoted` entry go
    // at once (two DESTs; either order tells the same story after a crash between them).
    await allEnded([
      placeVersionPair(target, signed.versionText, signed.versionSignature, read.targetVersion.published, opts.step),
      placeAppend(source, read.sourceLedger, signed.source),
    ]);
    opts.log.info('promoted', { app: opts.app, version: release.version, from: source.where, to: target.where });
    return {
      app: opts.app,
      version: release.version,
      file: release.file,
      sha256: release.sha256,
      size,
      seq: read.seq,
      from: source.where,
      to: target.where,
      from_env: opts.fromEnv ?? null,
      to_env: opts.toEnv ?? null,
      carried: small.filter((n) => n !== `${release.file}.sig`),
      linked,
      ...(opts.force && release.notGood ? { overrode: release.notGood } : {}),
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The size of a local file, or undefined when it cannot be read (the copy then says why). */
async function sizeOf(file: string): Promise<number | undefined> {
  return (await stat(file).catch(() => undefined))?.size;
}

/** What a promote writes after the copy, made and signed: both ledger entries and the target's VERSION. */
interface Signed {
  target: PreparedAppend;
  source: PreparedAppend;
  versionText: string;
  versionSignature: Uint8Array;
}

/** Makes and signs the target's VERSION and `promote` entry and the source's `promoted` entry; writes nothing. */
async function signWrites(
  opts: PromoteOptions,
  { key, source, target, now }: Locked,
  read: Read,
  {
    release,
    manifest,
    size,
    note,
  }: { release: SourceRelease; manifest?: SourceRelease['manifest']; size: number; note?: string },
): Promise<Signed> {
  const versionText = formatVersionFile(versionInfo(opts, { ...release, manifest }, read.seq, size, now));
  const facts = { app: opts.app, version: release.version, rollout: opts.rollout ?? null, sha256: release.sha256 };
  const published = { ...facts, ...publishedFacts(release.record), at: now.toISOString() };
  const [targetEntry, sourceEntry, versionSignature] = await Promise.all([
    prepareAppend(key, read.targetLedger, {
      ...published,
      ...(opts.force ? { forced: opts.force.reason } : {}),
      action: 'promote',
      seq: read.seq,
      versionText,
      from_env: opts.fromEnv ?? source.where,
      from_dest: source.where,
      note: [release.codename, note].filter(Boolean).join('; ') || null,
    }),
    prepareAppend(key, read.sourceLedger, {
      ...published,
      action: 'promoted',
      seq: null,
      rollout: null,
      versionText: null,
      to_env: opts.toEnv ?? target.where,
      to_dest: target.where,
      note: null,
    }),
    signDetached(key, { data: Buffer.from(versionText) }),
  ]);
  return { target: targetEntry, source: sourceEntry, versionText, versionSignature };
}

/** Waits for every one of `writes` to end (before the locks go, whichever failed); then throws the first failure. */
async function allEnded(writes: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Reads the source (release, ledger, rules) and the target (VERSION, SEQ, ledger, an existing tarball). */
async function readBothSides(opts: PromoteOptions, { certificate, source, target, key }: Locked): Promise<Read> {
  const primary = key.getFingerprint().toLowerCase();
  const memory = (app: string) => (opts.state ? { state: opts.state, app, primary, log: opts.log } : undefined);
  const sourceVersion = await readPublishedVersion(source, certificate);
  if (sourceVersion.problem) throw new ValidationError(`${sourceVersion.problem}. Nothing was written.`);
  const sourceLedger = await readLedgerAt(source, certificate, { memory: memory(opts.app) });
  const release = sourceRelease({
    app: opts.app,
    version: opts.version,
    where: source.where,
    platform: opts.platform,
    current: sourceVersion.published?.info,
    entries: sourceLedger.ledger.entries,
    names: await source.list(),
  });
  if (release.notGood && !opts.force)
    throw new ValidationError(
      `${release.notGood}. Promote only a release that is good in the source, or pass --force --reason TEXT ` +
        `(recorded in the ledger). Nothing was written.`,
    );
  const targetVersion = await readPublishedVersion(target, certificate);
  const there = targetVersion.published?.info;
  if (there && ((there.app ?? opts.app) !== opts.app || (there.platform ?? release.platform) !== release.platform))
    throw new ValidationError(
      `The VERSION at ${target.where} is for ${there.file}, not for ${opts.app} on ${release.platform}: ` +
        `hosts there would refuse ${release.file}. Nothing was written.`,
    );
  const seq = nextSeq(targetVersion, undefined, target.where);
  const targetLedger = await readLedgerAt(target, certificate, { memory: memory(opts.app) });
  return { release, sourceLedger, targetLedger, targetVersion, seq, present: await presentAt(target, release) };
}

/** Whether the target has the tarball already: with the signed bytes (true), none (false), or other bytes (refused). */
async function presentAt(target: Destination, release: SourceRelease): Promise<boolean> {
  if (!(await target.list()).includes(release.file)) return false;
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-promote-'));
  try {
    const copy = await target.localCopy(release.file, scratch);
    if (copy && (await sha256File(copy)) === release.sha256) return true;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  throw new ValidationError(
    `${target.where} holds a ${release.file} with other bytes than the source's (sha256 is not ` +
      `${release.sha256}); refusing to replace it. Nothing was written.`,
  );
}

/**
 * The small files carried with the tarball, read from the source into `scratch` and checked
 * against their signed digests (a changed manifest or provenance is refused): the .sig, the
 * manifest and its index, the provenance.
 */
async function smallFilesOf(source: Destination, release: SourceRelease, scratch: string): Promise<string[]> {
  const names: string[] = [];
  const keep = async (name: string, bytes: Buffer) => {
    await writeFile(path.join(scratch, name), bytes);
    names.push(name);
  };
  const sig = await source.read(`${release.file}.sig`);
  if (!sig)
    throw new ValidationError(
      `${release.file}.sig is not at ${source.where}; hosts would refuse the tarball. Nothing was written.`,
    );
  await keep(`${release.file}.sig`, sig);
  for (const signed of [release.manifest, release.provenance]) {
    const bytes = signed && (await source.read(signed.file));
    if (!signed || !bytes) continue;
    if (createHash('sha256').update(bytes).digest('hex') !== signed.sha256)
      throw new ValidationError(
        `${signed.file} at ${source.where} has changed since it was signed (its sha256 is not ${signed.sha256}); ` +
          `refusing to promote it. Nothing was written.`,
      );
    await keep(signed.file, bytes);
    if (signed === release.manifest) {
      const index = await source.read(indexFileName(release.file));
      if (index) await keep(indexFileName(release.file), index);
    }
  }
  return names;
}

/**
 * The carried files placed at the target: at once into a folder (each is written, fsynced and
 * renamed on its own, the renames after `after`; their order does not matter, all come before the
 * ledger entry), one after the other elsewhere.
 */
async function placeCarried(
  target: Destination,
  scratch: string,
  names: string[],
  step?: StepHook,
  after?: Promise<unknown>,
): Promise<void> {
  const put = (name: string) => target.put(path.join(scratch, name), name, step, { after });
  if (target.local) await allEnded(names.map(put));
  else for (const name of names) await put(name);
}

/** keys.asc and pubkey.asc (the certificate the ledgers verified with) staged where the target lacks them or has others. */
async function stageKeys(target: Destination, certificate: string, scratch: string): Promise<string[]> {
  const names: string[] = [];
  for (const name of ['keys.asc', 'pubkey.asc']) {
    if ((await target.read(name))?.toString('utf8') === certificate) continue;
    await writeFile(path.join(scratch, name), certificate);
    names.push(name);
  }
  return names;
}

/** The target's VERSION: the source's release with the target's SEQ; no PATCH lines (see docs). */
function versionInfo(opts: PromoteOptions, release: SourceRelease, seq: number, size: number, now: Date): VersionInfo {
  const expiresDays = opts.expiresDays ?? 30;
  return {
    version: release.version,
    file: release.file,
    release: release.codename,
    sha256: release.sha256,
    size,
    expires: expiresDays > 0 ? new Date(now.getTime() + expiresDays * 86_400_000) : undefined,
    app: opts.app,
    platform: release.platform,
    seq,
    manifest: release.manifest,
    rollout: opts.rollout,
  };
}
