// An environment's approvals (docs/environments.md "Approvals"): a small JSON document bound to one
// release (app, version, sha256) and one environment, signed by an approver's own OpenPGP key (or,
// for a status-page user `ui:NAME`, by hook-server's `ui_key`, naming the user) and kept at the
// target's DEST under approvals/, one file per approver. Given here and counted here: only a
// signature by the key the config names now, for exactly that approver and what is asked, in time.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ValidationError, messageOf } from '../../core/errors.ts';
import { ensureDir, syncDir } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { UI_USER_PREFIX, validateName } from '../../core/names.ts';
import { openDestination, type Destination } from '../dest/destination.ts';
import { ledgerActor } from '../dest/ledger.ts';
import {
  loadSigningKey,
  readDetachedSignature,
  signDetached,
  verifySignaturePacket,
  type SigningKey,
} from '../format/signature.ts';
import { validateVersion } from '../format/version-file.ts';

type OpenPgp = typeof import('openpgp');

/** The folder at DEST that holds the approvals. */
export const APPROVALS_FOLDER = 'approvals';
/** An approval is a few hundred bytes; a file (or its .sig) over this is not one. */
export const MAX_APPROVAL_BYTES = 64 * 1024;
const TYPE = 'shipkit-approval';

/** What an environment asks (shipkit.yml `approvals:`). */
export interface ApprovalRule {
  required: number;
  /** approvers' public key files (armored), absolute */
  from: string[];
  /** status-page users who may approve (`ui:NAME` in `from:`) */
  users?: string[];
  /** the public key hook-server signs their approvals with (`ui_key:`), absolute; needed with `users` */
  uiKey?: string;
  expiresMs: number;
}

export interface Approval {
  approver: string;
  uid: string;
  at: string;
  expires: string;
  by: string;
  /** sha256 of the JSON file, for the ledger */
  digest: string;
}

export interface ApprovalCheck {
  valid: Approval[];
  /** one line each: why a present approval does not count (forged, expired, for another version/env/sha256, revoked key, the publisher's key) */
  refused: string[];
  /** approvers (uid) without an approval that counts (none given, or one refused), publishers of the version left out */
  missing: string[];
  required: number;
}

/** The release and environment an approval is for. */
export interface ApprovalSubject {
  app: string;
  version: string;
  sha256: string;
  env: string;
}

/** The signed document, as kept at DEST. */
interface ApprovalDocument extends ApprovalSubject {
  type: typeof TYPE;
  approver: string;
  uid: string;
  by: string;
  at: string;
  expires: string;
}

/** One key of `rule.from`, as its file holds it now; or one status-page user, with `ui_key`'s certificate. */
interface Approver {
  /** The file's name without folder and extension (keys/alice.asc: alice), or `ui:NAME`, for messages. */
  name: string;
  file: string;
  /** The primary's fingerprint, or `ui:NAME`: the approver the document names. */
  fingerprint: string;
  /** A status-page user's name. */
  user?: string;
  /** The primary's and every subkey's fingerprint. */
  fingerprints: string[];
  uid: string;
  certificate: import('openpgp').PublicKey;
}

/** Where `approver`'s approval of `subject` is kept, relative to DEST: a fingerprint, or `ui:NAME` (ui-NAME). */
export function approvalFileName(subject: Omit<ApprovalSubject, 'sha256'>, approver: string): string {
  const tag = approver.startsWith(UI_USER_PREFIX)
    ? `ui-${approver.slice(UI_USER_PREFIX.length)}`
    : approver.slice(0, 16);
  return `${APPROVALS_FOLDER}/${subject.app}-${subject.version}-${subject.env}-${tag}.json`;
}

/** Refuses names that would make a path, and a sha256 that is not one, before anything is read. */
function checkSubject(subject: ApprovalSubject): void {
  validateName(subject.app, 'app name');
  validateVersion(subject.version, 'VERSION');
  validateName(subject.version, 'VERSION');
  validateName(subject.env, 'environment name');
  if (!/^[0-9a-f]{64}$/.test(subject.sha256))
    throw new ValidationError(`Invalid sha256 ${JSON.stringify(subject.sha256.slice(0, 70))}: give 64 hex digits.`);
}

const fingerprintsOf = (key: import('openpgp').PublicKey) =>
  [key, ...key.getSubkeys()].map((k) => k.getFingerprint().toLowerCase());

/** An approver's public key from `file`; throws ConfigError for a file that is not one. */
async function readCertificate(file: string, what: string): Promise<import('openpgp').PublicKey> {
  const openpgp: OpenPgp = await import('openpgp');
  const armored = await readFile(file, 'utf8').catch((error) => {
    throw new ConfigError(`Cannot read ${what} ${file} (${(error as NodeJS.ErrnoException).code}).`, {
      cause: error,
    });
  });
  if (armored.includes('PRIVATE KEY BLOCK'))
    throw new ConfigError(`${file} holds a secret key; approvals: takes public keys (${what}).`);
  return openpgp.readKey({ armoredKey: armored }).catch((error) => {
    throw new ConfigError(`${file} is not an armored OpenPGP public key (${messageOf(error)}).`, { cause: error });
  });
}

/**
 * The approvers of `rule`: its keys, one per primary (a key named twice counts once), then its
 * status-page users, each with the certificate of `ui_key`. Throws ConfigError for a file that is not one.
 */
async function readApprovers(rule: Pick<ApprovalRule, 'from' | 'users' | 'uiKey'>): Promise<Approver[]> {
  const approvers = new Map<string, Approver>();
  for (const file of rule.from) {
    const certificate = await readCertificate(file, "the approver's key");
    const fingerprint = certificate.getFingerprint().toLowerCase();
    if (approvers.has(fingerprint)) continue;
    approvers.set(fingerprint, {
      name: path.basename(file).replace(/\.(asc|gpg|pgp|key)$/i, ''),
      file,
      fingerprint,
      fingerprints: fingerprintsOf(certificate),
      uid: certificate.getUserIDs()[0] ?? fingerprint,
      certificate,
    });
  }
  if (!rule.users?.length) return [...approvers.values()];
  if (!rule.uiKey) throw new ConfigError('approvals: names status-page users (ui:NAME) but no ui_key: to check them.');
  const certificate = await readCertificate(rule.uiKey, 'the status-page key (approvals: ui_key:)');
  for (const user of rule.users)
    approvers.set(`${UI_USER_PREFIX}${user}`, {
      name: `${UI_USER_PREFIX}${user}`,
      file: rule.uiKey,
      fingerprint: `${UI_USER_PREFIX}${user}`,
      user,
      // Its key is hook-server's, not the user's: who published is told apart by name (publisherUsers).
      fingerprints: [],
      uid: `${user} (status page)`,
      certificate,
    });
  return [...approvers.values()];
}

/** The approver in `approvers` that the secret key in `keyFile` is, after the rules; nothing unlocked yet. */
async function approverOfKey(
  keyFile: string,
  approvers: Approver[],
  publishers: Set<string>,
  now: Date,
): Promise<Approver> {
  const openpgp: OpenPgp = await import('openpgp');
  const key = await readFile(keyFile, 'utf8')
    .then((armoredKey) => openpgp.readPrivateKey({ armoredKey }))
    .catch(() => undefined);
  if (!key) {
    // Not a readable secret key: loadSigningKey says why, as every command that signs does.
    await loadSigningKey(keyFile);
    throw new ConfigError(`${keyFile} is not an armored OpenPGP secret key.`);
  }
  const fingerprint = key.getFingerprint().toLowerCase();
  const approver = approvers.find((a) => a.fingerprint === fingerprint);
  if (!approver)
    throw new ValidationError(
      `The key in ${keyFile} (${fingerprint}, ${key.getUserIDs()[0] ?? 'no user id'}) is not one of the approvers ` +
        `(${approvers.map((a) => a.name).join(', ')}): approvals: from: names their public keys. Nothing was written.`,
    );
  if (
    (await key.isRevoked(undefined, undefined, now)) ||
    (await approver.certificate.isRevoked(undefined, undefined, now))
  )
    throw new ValidationError(
      `${approver.name}'s key is revoked (in ${keyFile} or ${approver.file}): a revoked key cannot approve. Nothing was written.`,
    );
  if ([...fingerprintsOf(key), ...approver.fingerprints].some((f) => publishers.has(f)))
    throw new ValidationError(
      `${approver.name} (${approver.uid}) published or promoted this version: an approval must come from someone ` +
        `else. Nothing was written.`,
    );
  return approver;
}

/**
 * Signs an approval of `version` for `env` with the approver's key and places it (and its .sig) at
 * DEST, replacing that approver's earlier one. Throws ValidationError (exit 2, nothing written) for a
 * key that is not an approver, is revoked, or published or promoted this version.
 */
export async function giveApproval(opts: {
  dest: Destination;
  app: string;
  version: string;
  sha256: string;
  env: string;
  key: string;
  passphraseFile?: string;
  rule: ApprovalRule;
  /** fingerprints (primary and subkeys) of keys that signed this version's publish/promote entries: the approver may not be one */
  publishers: string[];
  now?: Date;
  log: Logger;
}): Promise<Approval> {
  const { app, version, sha256, env } = opts;
  checkSubject({ app, version, sha256, env });
  const now = opts.now ?? new Date();
  const publishers = new Set(opts.publishers.map((f) => f.toLowerCase()));
  const approver = await approverOfKey(opts.key, await readApprovers(opts.rule), publishers, now);
  const key = await loadSigningKey(opts.key, opts.passphraseFile);
  const subject = { app, version, sha256, env };
  return signAndPlace({ ...opts, subject, approver, key, keyFile: opts.key, by: ledgerActor(), now });
}

/**
 * The approval of `subject` by `approver`, signed with `key` (checked to count: a signature by a
 * subkey the approver's file does not hold as valid would not) and placed at DEST with its .sig.
 */
async function signAndPlace(opts: {
  dest: Destination;
  subject: ApprovalSubject;
  approver: Approver;
  key: SigningKey;
  keyFile: string;
  by: string;
  rule: ApprovalRule;
  now: Date;
  log: Logger;
}): Promise<Approval> {
  const { approver, now } = opts;
  const document: ApprovalDocument = {
    type: TYPE,
    ...opts.subject,
    approver: approver.fingerprint,
    uid: approver.uid,
    by: opts.by,
    at: now.toISOString(),
    expires: new Date(now.getTime() + opts.rule.expiresMs).toISOString(),
  };
  const json = Buffer.from(`${JSON.stringify(document)}\n`);
  const openpgp: OpenPgp = await import('openpgp');
  const signature = openpgp.armor(openpgp.enums.armor.signature, await signDetached(opts.key, { data: json }));
  if (!(await signedBy(approver, json, Buffer.from(signature), now)))
    throw new ConfigError(
      `${opts.keyFile} signs with a subkey that ${approver.file} does not hold as valid: the approval would not count. ` +
        `Export ${approver.name}'s public key again into ${approver.file}. Nothing was written.`,
    );
  return placeSigned(opts.dest, document, json, signature, opts.log);
}

/** The approval document and its armored signature placed at DEST; the approval as counted. */
async function placeSigned(
  dest: Destination,
  document: ApprovalDocument,
  json: Buffer,
  signature: string,
  log: Logger,
) {
  const { app, version, env } = document;
  await placeApproval(dest, approvalFileName(document, document.approver), json, signature, log);
  log.info('approved', { app, version, env, approver: document.approver, dest: dest.where });
  const { approver, uid, at, expires, by } = document;
  return { approver, uid, at, expires, by, digest: sha256Of(json) };
}

/**
 * A status-page user's approval, signed with hook-server's `ui_key` (`keyFile`, the secret key
 * whose public half is `rule.uiKey`) and placed at DEST as giveApproval places one. Throws
 * ValidationError (nothing written) for a user not in `from:` or who published or promoted the
 * version, ConfigError for a key that is not the one `rule.uiKey` holds.
 */
export async function givePageApproval(opts: {
  dest: Destination;
  subject: ApprovalSubject;
  user: string;
  keyFile: string;
  rule: ApprovalRule;
  /** account names (the user of `by: NAME@HOST`) that wrote this version's publish/promote entries */
  publisherUsers: string[];
  by: string;
  now?: Date;
  log: Logger;
}): Promise<Approval> {
  const { subject, user } = opts;
  checkSubject(subject);
  const now = opts.now ?? new Date();
  const id = `${UI_USER_PREFIX}${user}`;
  const approver = (await readApprovers(opts.rule)).find((a) => a.fingerprint === id);
  if (!approver)
    throw new ValidationError(
      `${user} is not one of ${subject.env}'s approvers (approvals: from:). Nothing was written.`,
    );
  if (opts.publisherUsers.includes(user))
    throw new ValidationError(
      `${user} published or promoted ${subject.app} ${subject.version}: an approval must come from someone else. Nothing was written.`,
    );
  if (await approver.certificate.isRevoked(undefined, undefined, now))
    throw new ConfigError(`The status-page key ${approver.file} is revoked: approvals signed with it do not count.`);
  const key = await loadSigningKey(opts.keyFile);
  if (key.getFingerprint().toLowerCase() !== approver.certificate.getFingerprint().toLowerCase())
    throw new ConfigError(
      `hook-server's ui_key (${opts.keyFile}) is not the key ${subject.env}'s approvals: ui_key: holds (${approver.file}): ` +
        'export its public key there. Nothing was written.',
    );
  return signAndPlace({ ...opts, approver, key, now });
}

/** Writes NAME and NAME.sig (relative to DEST, under approvals/) from memory, the JSON first. */
async function placeApproval(dest: Destination, name: string, json: Buffer, signature: string, log: Logger) {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-approval-'));
  try {
    const base = path.basename(name);
    await writeFile(path.join(scratch, base), json);
    await writeFile(path.join(scratch, `${base}.sig`), signature);
    // A DEST's put places files directly in it: a folder's approvals/ is made first, a remote DEST's
    // is written as a DEST of its own (rsync and S3 make it).
    const folder = dest.local
      ? undefined
      : openDestination(`${dest.where}${/[:/]$/.test(dest.where) ? '' : '/'}${APPROVALS_FOLDER}`, log);
    if (dest.local) await ensureDir(path.join(dest.where, APPROVALS_FOLDER));
    for (const file of [base, `${base}.sig`]) {
      if (folder) await folder.put(path.join(scratch, file), file);
      else await dest.put(path.join(scratch, file), `${APPROVALS_FOLDER}/${file}`);
    }
    if (dest.local) await syncDir(path.join(dest.where, APPROVALS_FOLDER));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

const sha256Of = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * The approvals of `version` for `env` at DEST that count under `rule` at `now`: for each key of
 * `rule.from`, its file is read (no listing) and counted only when the rules in the file's header
 * hold; otherwise the reason is one line of `refused`. Throws ConfigError for an unreadable `from` file.
 */
export async function checkApprovals(opts: {
  dest: Destination;
  app: string;
  version: string;
  sha256: string;
  env: string;
  rule: ApprovalRule;
  publishers: string[];
  /** account names that wrote the version's publish/promote entries: as status-page users they may not approve it */
  publisherUsers?: string[];
  now?: Date;
}): Promise<ApprovalCheck> {
  const { app, version, sha256, env } = opts;
  checkSubject({ app, version, sha256, env });
  const now = opts.now ?? new Date();
  const publishers = new Set([
    ...opts.publishers.map((f) => f.toLowerCase()),
    ...(opts.publisherUsers ?? []).map((u) => `${UI_USER_PREFIX}${u}`),
  ]);
  const check: ApprovalCheck = { valid: [], refused: [], missing: [], required: opts.rule.required };
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'shipkit-approvals-'));
  try {
    for (const approver of await readApprovers(opts.rule)) {
      const name = approvalFileName(opts, approver.fingerprint);
      const files = await readApprovalFiles(opts.dest, name, scratch);
      const judged =
        typeof files === 'object'
          ? await judgeApproval({ approver, ...files, asked: { app, version, sha256, env }, ...opts, publishers, now })
          : files && `${approver.name}'s approval ${name} ${files}.`;
      if (typeof judged === 'object') check.valid.push(judged);
      else {
        if (judged) check.refused.push(judged);
        // A publisher of this version is not awaited: it cannot approve it.
        if (!isPublisher(approver, publishers)) check.missing.push(approver.uid);
      }
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return check;
}

/** NAME and NAME.sig from DEST, each at most MAX_APPROVAL_BYTES; undefined when there is no NAME, else why not read. */
async function readApprovalFiles(
  dest: Destination,
  name: string,
  scratch: string,
): Promise<{ json: Buffer; signature: Buffer } | string | undefined> {
  const read = async (file: string) => {
    const copy = await dest.localCopy(file, scratch);
    if (copy === undefined) return undefined;
    if ((await stat(copy)).size > MAX_APPROVAL_BYTES) return 'too big';
    return readFile(copy);
  };
  const json = await read(name);
  if (json === undefined) return undefined;
  const signature = await read(`${name}.sig`);
  if (json === 'too big' || signature === 'too big') return `is over ${MAX_APPROVAL_BYTES / 1024} KB: not an approval`;
  if (signature === undefined) return `has no ${path.basename(name)}.sig beside it`;
  return { json, signature };
}

/** The approval in `json` when every rule holds, else the line that says which does not. */
async function judgeApproval(opts: {
  approver: Approver;
  json: Buffer;
  signature: Buffer;
  asked: ApprovalSubject;
  rule: ApprovalRule;
  publishers: Set<string>;
  now: Date;
}): Promise<Approval | string> {
  const { approver, json, asked, now } = opts;
  const who = approver.name;
  if (await approver.certificate.isRevoked(undefined, undefined, now))
    return `${who}'s key is revoked in ${approver.file}: its approval does not count.`;
  if (!(await signedBy(approver, json, opts.signature, now)))
    return (
      `${who}'s approval is not signed by ${who}'s key (${approver.file}): forged, or copied from another ` +
      `approver's file; it does not count.`
    );
  const document = parseDocument(json);
  if (!document) return `${who}'s approval is not a shipkit approval document; it does not count.`;
  for (const field of ['app', 'version', 'env', 'sha256'] as const)
    if (document[field] !== asked[field])
      return `${who}'s approval is for ${field} ${document[field]}, not ${asked[field]}; it does not count.`;
  if (document.approver !== approver.fingerprint)
    return `${who}'s approval names approver ${document.approver}, not ${who}'s key ${approver.fingerprint}; it does not count.`;
  // The rule as it is now bounds an approval given under a longer one.
  const until = Math.min(Date.parse(document.expires), Date.parse(document.at) + opts.rule.expiresMs);
  if (!(now.getTime() < until))
    return `${who}'s approval expired at ${Number.isFinite(until) ? new Date(until).toISOString() : document.expires}.`;
  if (isPublisher(approver, opts.publishers))
    return `${who} published or promoted this version: an approval must come from someone else.`;
  const { uid, at, by } = document;
  return {
    approver: approver.fingerprint,
    uid,
    at,
    expires: new Date(until).toISOString(),
    by,
    digest: sha256Of(json),
  };
}

/** A key whose fingerprint signed the version's entries, or a user (`ui:NAME` in `publishers`) who wrote them. */
function isPublisher(approver: Approver, publishers: Set<string>): boolean {
  return approver.fingerprints.some((f) => publishers.has(f)) || publishers.has(approver.fingerprint);
}

/** Whether a signature packet in `signature` verifies over `json` with the approver's certificate at `now`. */
async function signedBy(approver: Approver, json: Buffer, signature: Buffer, now: Date): Promise<boolean> {
  let packets;
  try {
    packets = (await readDetachedSignature(signature)).packets;
  } catch {
    return false;
  }
  for (const packet of packets.slice(0, 8)) {
    // Signatures carry whole seconds: one made just after `now` is not from the future.
    const date = new Date(Math.max(now.getTime(), packet.created?.getTime() ?? 0));
    const ok = await verifySignaturePacket({ packet, key: approver.certificate, data: json, date }).then(
      () => true,
      () => false,
    );
    if (ok) return true;
  }
  return false;
}

/** The document when `json` is one, with every field a string; else undefined. */
function parseDocument(json: Buffer): ApprovalDocument | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    return undefined;
  }
  const fields = ['app', 'version', 'sha256', 'env', 'approver', 'uid', 'by', 'at', 'expires'];
  const doc = value as Record<string, unknown> | null;
  if (typeof doc !== 'object' || doc === null || doc.type !== TYPE) return undefined;
  return fields.every((f) => typeof doc[f] === 'string') ? (doc as unknown as ApprovalDocument) : undefined;
}
