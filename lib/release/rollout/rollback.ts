// release rollback APP --to DEST [--version V] (docs/release.md): the publisher's signed decision to go
// back. A new VERSION with the next SEQ names the newest release at DEST older than the current
// one (or V); hosts that see SEQ take it although its version is lower. The release must still be
// at DEST, tarball and .sig, and its .sig must verify: otherwise nothing is written. Only VERSION
// and VERSION.sig change, in the order of seq.ts, so a kill at any moment leaves a pair that verifies.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ValidationError } from '../../core/errors.ts';
import { sha256File } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { validateName } from '../../core/names.ts';
import { openDestination, type Destination, type StepHook } from '../dest/destination.ts';
import {
  appendLedger,
  lockDestination,
  publishEntryOf,
  publishedFacts,
  readLedgerAt,
  revokedSubkeys,
} from '../dest/ledger.ts';
import { badVersions, LedgerError, type LedgerEntry } from '../format/ledger.ts';
import { nextSeq, ownSignatureOver, placeVersionPair, readPublishedVersion } from '../dest/seq.ts';
import { loadSigningKey, publicCertificateFor, signDetached, type SigningKey } from '../format/signature.ts';
import {
  compareVersions,
  formatVersionFile,
  validateVersion,
  versionProblem,
  type VersionInfo,
} from '../format/version-file.ts';

export interface RollbackOptions {
  name: string;
  to: string;
  /** The version to go back to; default the newest at DEST older than the current one. */
  version?: string;
  key: string;
  passphraseFile?: string;
  keys?: string;
  /** Days until the new VERSION expires; 0 = never. Default 30. */
  expiresDays?: number;
  seq?: number;
  log: Logger;
  now?: () => Date;
  /** Called at each step (`checked`, then each write); `release rollback` can pause there for a test. */
  step?: StepHook;
  /**
   * ROLLOUT of the new VERSION (rollback-steps.ts: the first step). With it, a DEST whose VERSION
   * names `version` already (a rollback in steps killed after it) is not refused but continued.
   */
  rollout?: number;
  /** The state folder where the longest ledger read at each DEST is kept (`--state`); none: not checked. */
  state?: string;
}

export interface RollbackResult {
  app: string;
  from: string;
  version: string;
  file: string;
  seq: number;
  to: string;
  /** VERSION at DEST named the release already (see `rollout`): nothing was written. */
  continued?: boolean;
}

export async function rollbackPublished(opts: RollbackOptions): Promise<RollbackResult> {
  validateName(opts.name, 'app name');
  if (opts.version !== undefined) validateVersion(opts.version, '--version');
  const now = opts.now?.() ?? new Date();
  const key = await loadSigningKey(opts.key, opts.passphraseFile);
  const certificate = await publicCertificateFor(key, opts.key, opts.keys, now);
  const dest = openDestination(opts.to, opts.log);
  const lock = await lockDestination(dest);
  try {
    return await rollbackLocked(opts, { key, certificate, dest, now });
  } finally {
    await lock?.release();
  }
}

async function rollbackLocked(
  opts: RollbackOptions,
  { key, certificate, dest, now }: { key: SigningKey; certificate: string; dest: Destination; now: Date },
): Promise<RollbackResult> {
  const current = await readPublishedVersion(dest, certificate);
  if (!current.published)
    throw new ValidationError(
      current.problem
        ? `${current.problem}; nothing to roll back from. Nothing was written.`
        : `${dest.where} has no VERSION; there is nothing to roll back. Nothing was written.`,
    );
  const from = current.published.info;
  const platform = from.platform ?? platformOf(from.file, opts.name, from.version);
  if ((from.app ?? opts.name) !== opts.name || !platform)
    throw new ValidationError(
      `The VERSION at ${dest.where} is for ${from.file}, not for app ${opts.name}. Nothing was written.`,
    );
  const seq = nextSeq(current, opts.seq, dest.where);
  const primary = key.getFingerprint().toLowerCase();
  const memory = opts.state ? { state: opts.state, app: opts.name, primary, log: opts.log } : undefined;
  const ledger = await readLedgerAt(dest, certificate, { memory });
  if (opts.rollout !== undefined && opts.version !== undefined && compareVersions(opts.version, from.version) === 0) {
    await checkedInLedger(ledger.ledger.entries, certificate, opts.name, from.version, dest.where);
    const back = { app: opts.name, from: from.version, version: from.version, file: from.file, to: dest.where };
    return { ...back, seq: from.seq ?? 0, continued: true };
  }
  const target = await chooseTarget(dest, opts, from, platform);
  const published = await checkedInLedger(ledger.ledger.entries, certificate, opts.name, target.version, dest.where);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-rollback-'));
  try {
    const info = await checkedRelease(dest, scratch, certificate, target, {
      app: opts.name,
      platform,
      seq,
      now,
      expiresDays: opts.expiresDays ?? 30,
      rollout: opts.rollout,
    });
    if (published && published.sha256 !== info.sha256)
      throw new LedgerError(
        published.n,
        `names ${target.file} with sha256 ${published.sha256}, but the file at ${dest.where} has ` +
          `${info.sha256}; refusing to roll back to it. Nothing was written.`,
      );
    await opts.step?.('checked');
    const text = formatVersionFile(info);
    await appendLedger(
      dest,
      key,
      ledger,
      {
        at: now.toISOString(),
        action: 'rollback',
        app: opts.name,
        version: info.version,
        seq,
        rollout: info.rollout ?? null,
        sha256: info.sha256 ?? null,
        versionText: text,
        ...publishedFacts(published),
        from: from.version,
        note: null,
      },
      opts.step,
    );
    await placeVersionPair(
      dest,
      text,
      await signDetached(key, { data: Buffer.from(text) }),
      current.published,
      opts.step,
    );
    opts.log.info('rolled back', { from: from.version, to: info.version, seq });
    return { app: opts.name, from: from.version, version: info.version, file: info.file, seq, to: dest.where };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * With a ledger at DEST, the release to go back to must be in it: its publish entry (the newest),
 * not marked bad there, not signed by a subkey revoked since. Undefined for a DEST without a ledger.
 */
async function checkedInLedger(
  entries: LedgerEntry[],
  certificate: string,
  app: string,
  version: string,
  where: string,
): Promise<LedgerEntry | undefined> {
  if (!entries.length) return undefined;
  const same = (e: LedgerEntry) => e.app === app && e.version !== null && compareVersions(e.version, version) === 0;
  const entry = publishEntryOf(entries, app, version);
  if (!entry)
    throw new ValidationError(
      `${app} ${version} is not in the ledger at ${where}: it was never published there by \`release ` +
        `publish\`. Nothing was written. See \`release rollback ${app} --to ${where} --list\`.`,
    );
  if (badVersions(entries).has(entry.version!))
    throw new LedgerError(
      entries.findLast(
        (e) =>
          (e.action === 'halt' && same(e)) ||
          (e.action === 'rollback' && e.from !== undefined && compareVersions(e.from, version) === 0),
      )!.n,
      `marks ${app} ${version} bad (halted, or rolled back from); publish it again to take it back. Nothing was written.`,
    );
  if ((await revokedSubkeys(certificate)).has(entry.signer))
    throw new LedgerError(
      entry.n,
      `${app} ${version} was signed by subkey ${entry.signer}, revoked since; publish it again with a valid subkey. Nothing was written.`,
    );
  return entry;
}

/** PLATFORM from a file name APP-PLATFORM-VERSION.tar.gz (a VERSION from before APP/PLATFORM lines). */
function platformOf(file: string, app: string, version: string): string | undefined {
  const head = `${app}-`;
  const tail = `-${version}.tar.gz`;
  return file.startsWith(head) && file.endsWith(tail) && file.length > head.length + tail.length
    ? file.slice(head.length, -tail.length)
    : undefined;
}

/** The release to go back to: `--version`, else the newest at DEST older than the current one. */
async function chooseTarget(
  dest: Destination,
  opts: RollbackOptions,
  from: VersionInfo,
  platform: string,
): Promise<{ file: string; version: string }> {
  const prefix = `${opts.name}-${platform}-`;
  const names = await dest.list();
  if (opts.version !== undefined) {
    if (compareVersions(opts.version, from.version) >= 0)
      throw new ValidationError(
        `--version ${opts.version} is not older than ${from.version}, the current release at ` +
          `${dest.where}; publish it with \`release publish\` instead. Nothing was written.`,
      );
    return { file: `${prefix}${opts.version}.tar.gz`, version: opts.version };
  }
  // A release with only its tarball or only its .sig left still counts, so the refusal names what is missing.
  const older = [...new Set(names.map((n) => n.replace(/\.sig$/, '')))]
    .filter((n) => n.startsWith(prefix) && n.endsWith('.tar.gz'))
    .map((file) => ({ file, version: file.slice(prefix.length, -'.tar.gz'.length) }))
    .filter((r) => !versionProblem(r.version) && compareVersions(r.version, from.version) < 0)
    .sort((a, b) => compareVersions(b.version, a.version));
  if (!older.length)
    throw new ValidationError(
      `${dest.where} holds no release of ${opts.name} on ${platform} older than ${from.version}; there is ` +
        `nothing to go back to. Nothing was written.`,
    );
  return older[0];
}

/** The tarball and its .sig must be at DEST and the signature must verify: hosts would refuse it otherwise. */
async function checkedRelease(
  dest: Destination,
  scratch: string,
  certificate: string,
  target: { file: string; version: string },
  v: { app: string; platform: string; seq: number; now: Date; expiresDays: number; rollout?: number },
): Promise<VersionInfo> {
  const sig = await dest.read(`${target.file}.sig`);
  const tarball = sig && (await dest.localCopy(target.file, scratch));
  if (!sig || !tarball)
    throw new ValidationError(
      `${target.file}${sig ? '' : '.sig'} is not at ${dest.where} (pruned, or never published); cannot ` +
        `roll back to ${target.version}. Nothing was written.`,
    );
  if (!(await ownSignatureOver(certificate, await readFile(tarball), sig)))
    throw new ValidationError(
      `${target.file}.sig at ${dest.where} is not a signature of ${target.file} by this release key; ` +
        `cannot roll back to it. Nothing was written.`,
    );
  return {
    version: target.version,
    file: target.file,
    sha256: await sha256File(tarball),
    size: (await stat(tarball)).size,
    expires: v.expiresDays > 0 ? new Date(v.now.getTime() + v.expiresDays * 86_400_000) : undefined,
    app: v.app,
    platform: v.platform,
    seq: v.seq,
    rollout: v.rollout,
  };
}
