// The ledger at DEST, on the publisher's side: read and checked (chain and signature) before an
// entry is appended, then written with ledger.jsonl.sig in the order that keeps a verifying pair
// there at every moment (seq.ts). Writers hold DEST's publish lock (a folder's lock file, or
// dest-lock.ts on rsync and S3); on rsync and S3 the pair is also read back before VERSION.
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { ValidationError, messageOf } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { checkSeenLedger, readSeen, rememberSeen, seenFile, withLedgerRead } from './seen.ts';
import { pathExists } from '../../core/fs.ts';
import { acquireLock } from '../../core/lock.ts';
import { LOCK_NAME, lockRemoteDestination, type DestLock } from './lock.ts';
import type { Destination, StepHook } from './destination.ts';
import {
  LEDGER_FILE,
  LEDGER_HEAD_SIG_FILE,
  LEDGER_SIG_FILE,
  LedgerError,
  ledgerLine,
  readLedger,
  type Ledger,
  type LedgerEntry,
  type NewEntry,
} from '../format/ledger.ts';
import { ownSignatureOver, placeSignedPair } from './seq.ts';
import { versionKey } from '../format/version-file.ts';
import { signDetached, signingFingerprintOf, type SigningKey } from '../format/signature.ts';

export interface LedgerAtDest {
  ledger: Ledger;
  /** What this publisher remembers of DEST (seen.ts), checked when read; the new head kept when appended. */
  memory?: LedgerMemory;
  /** The signature packet over the ledger that verified, when there is a ledger. */
  signature?: Uint8Array;
  /** Fingerprint of the (sub)key that made it. */
  signedBy?: string;
}

/**
 * DEST's ledger, chain and signature (by a subkey of `certificate`'s primary) checked; empty when
 * there is none. A reader (`headFirst`) checks ledger.head.sig over the head line first: with the
 * chain checked, it vouches for every line as ledger.jsonl.sig does, without hashing the whole
 * file again in openpgp (a tenth of `release history` on 10,000 entries). A missing or stale one
 * (a publish between its two writes, a ledger older than the file) falls back to ledger.jsonl.sig.
 */
export async function readLedgerAt(
  dest: Destination,
  certificate: string,
  opts: { headFirst?: boolean; memory?: LedgerMemory } = {},
): Promise<LedgerAtDest> {
  const read = await readVerifiedLedger(dest, certificate, opts);
  if (!opts.memory) return read;
  const { state } = opts.memory;
  checkSeenLedger(read.ledger, await readSeen(state, dest.where), seenFile(state, dest.where));
  return { ...read, memory: opts.memory };
}

/** Where a writer (publish, rollback, rollout) keeps what it read and wrote at DEST: the state folder and the app. */
export interface LedgerMemory {
  state: string;
  app: string;
  /** The primary of the certificate the ledger verified with. */
  primary: string;
  log: Logger;
}

/** readLedgerAt without the memory: the ledger, chain and signature checked. */
async function readVerifiedLedger(
  dest: Destination,
  certificate: string,
  opts: { headFirst?: boolean },
): Promise<LedgerAtDest> {
  const bytes = await dest.read(LEDGER_FILE);
  if (!bytes) return { ledger: readLedger(Buffer.alloc(0)) };
  const ledger = readLedger(bytes);
  if (opts.headFirst && !ledger.torn && ledger.entries.length) {
    const headSig = await dest.read(LEDGER_HEAD_SIG_FILE);
    const text = ledger.text;
    const line = text.subarray(text.lastIndexOf(0x0a, text.length - 2) + 1); // with its newline, as signed
    const signature = headSig ? await ownSignatureOver(certificate, line, headSig) : undefined;
    const signedBy = signature && (await issuerOf(certificate, signature));
    if (signature && signedBy === ledger.entries[ledger.entries.length - 1].signer)
      return { ledger, signature, signedBy };
  }
  const sig = await dest.read(LEDGER_SIG_FILE);
  if (!sig)
    throw new ValidationError(
      `${dest.where} has ${LEDGER_FILE} without ${LEDGER_SIG_FILE}; check DEST. Nothing was written.`,
    );
  const signature = await ownSignatureOver(certificate, ledger.text, sig);
  if (!signature)
    throw new ValidationError(
      `${LEDGER_SIG_FILE} at ${dest.where} is not a signature of its ${LEDGER_FILE} ` +
        `(${ledger.entries.length} entries) by this release key; it was edited or another key wrote it. Nothing was written.`,
    );
  const signedBy = await issuerOf(certificate, signature);
  const head = ledger.entries[ledger.entries.length - 1];
  if (head && head.signer !== signedBy)
    throw new LedgerError(
      head.n,
      `says subkey ${head.signer} signed the ledger, but ${LEDGER_SIG_FILE} at ${dest.where} was made by ${signedBy}. Nothing was written.`,
    );
  if (ledger.torn)
    throw new ValidationError(
      `${LEDGER_FILE} at ${dest.where} ends in a torn line after entry ${ledger.entries.length}; restore ` +
        `it from a backup (the signature covers the entries before it). Nothing was written.`,
    );
  return { ledger, signature, signedBy };
}

/** Who runs this: the job that runs it, else user@host. */
export function ledgerActor(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SHIPKIT_JOB_ID) return `job ${env.SHIPKIT_JOB_ID}`;
  let user = env.USER ?? '';
  try {
    user = os.userInfo().username;
  } catch {
    /* no passwd entry: $USER */
  }
  return `${user || 'unknown'}@${os.hostname()}`;
}

/**
 * DEST's publish lock, held from reading DEST's VERSION and ledger to writing them, so two
 * publishers cannot both append entry N: a folder's lock file (core/lock.ts), or on rsync and S3
 * the lock of dest-lock.ts. A second writer gets WorkError (exit 1) naming the holder.
 */
export async function lockDestination(dest: Destination): Promise<DestLock | undefined> {
  if (!dest.local) {
    const owner = { by: ledgerActor(), at: new Date().toISOString(), pid: `${process.pid}@${os.hostname()}` };
    return lockRemoteDestination(dest.where, { ...owner, token: randomBytes(12).toString('hex') });
  }
  // A folder that does not exist yet is made by the first publish; nothing there to race for.
  if (!(await pathExists(dest.where))) return undefined;
  return acquireLock(path.join(dest.where, LOCK_NAME), {
    waitMs: 0,
    what: `the release folder ${dest.where} (another release publish, rollout or rollback is writing it)`,
  });
}

/** Runs `fn` holding DEST's publish lock (see lockDestination). */
export async function withDestinationLock<T>(dest: Destination, fn: () => Promise<T>): Promise<T> {
  const lock = await lockDestination(dest);
  try {
    return await fn();
  } finally {
    await lock?.release();
  }
}

/** The newest publish (or promote: published here from another DEST) entry of `app` `version` (1.1 and 1.1.0 are one version), if any. */
export function publishEntryOf(entries: LedgerEntry[], app: string, version: string): LedgerEntry | undefined {
  const key = versionKey(version);
  return entries.findLast(
    (e) =>
      (e.action === 'publish' || e.action === 'promote') &&
      e.app === app &&
      e.version !== null &&
      versionKey(e.version) === key,
  );
}

/** The fields a later entry about a release copies from its publish entry: digests and source. */
export function publishedFacts(
  entry: LedgerEntry | undefined,
): Pick<NewEntry, 'manifest_sha256' | 'provenance_sha256' | 'source'> {
  return {
    manifest_sha256: entry?.manifest_sha256 ?? null,
    provenance_sha256: entry?.provenance_sha256 ?? null,
    source: entry?.source ?? { repo: null, commit: null, ref: null },
  };
}

/**
 * What a command knows of its entry; appendLedger adds the rest: when (default now), who
 * (ledgerActor), the sha256 of `versionText` (the VERSION it signs, if any) and the subkey that
 * signs, which is always the key that signs the file.
 */
export type EntryFacts = Omit<NewEntry, 'at' | 'by' | 'signer' | 'version_sha256'> & {
  at?: string;
  by?: string;
  versionText: string | Uint8Array | null;
};

/**
 * Appends an entry of `facts` to DEST's ledger (read and checked as `current`) and signs the
 * whole file with `key`; returns the entry as written.
 */
export async function appendLedger(
  dest: Destination,
  key: SigningKey,
  current: LedgerAtDest,
  facts: EntryFacts,
  step?: StepHook,
): Promise<LedgerEntry> {
  return placeAppend(dest, current, await prepareAppend(key, current, facts), step);
}

/** An entry made and signed, not yet written: the new ledger, its signature and the head line's. */
export interface PreparedAppend {
  line: string;
  text: Buffer;
  signature: Uint8Array;
  headSignature: Uint8Array;
}

/**
 * The signing half of appendLedger: the entry of `facts` after `current`'s head, the whole file
 * signed and the head line signed. Nothing is written, so a command can sign while it still copies
 * (release promote) and write only once the copy is checked.
 */
export async function prepareAppend(
  key: SigningKey,
  current: LedgerAtDest,
  { at, by, versionText, ...facts }: EntryFacts,
): Promise<PreparedAppend> {
  const line = ledgerLine(
    {
      ...facts,
      at: at ?? new Date().toISOString(),
      by: by ?? ledgerActor(),
      version_sha256: versionText === null ? null : createHash('sha256').update(versionText).digest('hex'),
      signer: await signingFingerprintOf(key, new Date()),
    },
    current.ledger.head,
  );
  const text = Buffer.concat([current.ledger.text, Buffer.from(line)]);
  const [signature, headSignature] = await Promise.all([
    signDetached(key, { data: text }),
    signDetached(key, { data: Buffer.from(line) }),
  ]);
  return { line, text, signature, headSignature };
}

/** The writing half of appendLedger: the prepared ledger and its signature, then ledger.head.sig. */
export async function placeAppend(
  dest: Destination,
  current: LedgerAtDest,
  { line, text, signature, headSignature }: PreparedAppend,
  step?: StepHook,
): Promise<LedgerEntry> {
  await placeSignedPair(dest, LEDGER_FILE, text, signature, current.signature, step);
  if (!dest.local) {
    // Behind the lock this always holds; it is the last guard against a writer that does not take
    // it (an older shipkit, a hand copy): the pair must be ours, else stop before VERSION.
    const [back, backSig] = [await dest.read(LEDGER_FILE), await dest.read(LEDGER_SIG_FILE)];
    if (!back?.equals(text) || !backSig?.equals(signature))
      throw new ValidationError(
        `Another publisher wrote ${LEDGER_FILE} or ${LEDGER_SIG_FILE} at ${dest.where} at the same time; ` +
          `its entry ${current.ledger.entries.length + 1} is not this one. VERSION was not written; run the command again.`,
      );
  }
  // The ledger is written: it is remembered while its head signature is placed (a local file, and
  // rememberAppended only logs a failure).
  const remembered = current.memory && rememberAppended(dest.where, current.memory, readLedger(text));
  await placeHeadSignature(dest, headSignature, step);
  await remembered;
  return JSON.parse(line) as LedgerEntry;
}

/** Keeps the ledger this writer just appended to as the longest read at DEST; a failure is only logged (DEST is written). */
async function rememberAppended(where: string, memory: LedgerMemory, ledger: Ledger): Promise<void> {
  try {
    const seen = await readSeen(memory.state, where);
    const primary = seen?.primary ?? memory.primary;
    await rememberSeen(memory.state, withLedgerRead(seen, where, memory.app, primary, ledger, new Date()));
  } catch (error) {
    memory.log.warn(`could not remember ${where}'s ledger in ${memory.state}: ${messageOf(error)}`);
  }
}

/**
 * ledger.head.sig: a signature of the head line alone, after the ledger (a host reading only the
 * lines appended since its last check verifies the new head with it; one that finds it stale
 * reads the whole ledger instead), before VERSION.
 */
async function placeHeadSignature(dest: Destination, signature: Uint8Array, step?: StepHook) {
  await dest.put(signature, LEDGER_HEAD_SIG_FILE, step, { unconditional: true });
}

/** Fingerprints of the subkeys `certificate` (the publisher's own keys.asc) says are revoked. */
export async function revokedSubkeys(certificate: string): Promise<Set<string>> {
  const openpgp = await import('openpgp');
  const key = await openpgp.readKey({ armoredKey: certificate });
  return new Set(
    key.subkeys.filter((s) => s.revocationSignatures.length > 0).map((s) => s.getFingerprint().toLowerCase()),
  );
}

/** The fingerprint of the key in `certificate` that made the signature packet `signature`. */
async function issuerOf(certificate: string, signature: Uint8Array): Promise<string> {
  const openpgp = await import('openpgp');
  const key = await openpgp.readKey({ armoredKey: certificate });
  const [packet] = (await openpgp.readSignature({ binarySignature: signature })).packets;
  const [made] = key.getKeys(packet.issuerKeyID);
  return made.getFingerprint().toLowerCase();
}
