// `release keys rotate|revoke --to DEST` (docs/release.md "Key changes at DEST"): the changed
// keys.asc placed at DEST and the change recorded in its ledger, in the order that keeps the
// ledger's signature verifiable against the keys.asc beside it at every moment.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ValidationError, messageOf } from '../../core/errors.ts';
import { pathExists } from '../../core/fs.ts';
import type { Logger } from '../../core/log.ts';
import { openDestination, type Destination, type StepHook } from '../dest/destination.ts';
import { appendLedger, readLedgerAt, revokedSubkeys, withDestinationLock } from '../dest/ledger.ts';
import type { LedgerEntry } from '../format/ledger.ts';
import { readPublishedVersion } from '../dest/seq.ts';
import { signingFingerprintOf, type SigningKey } from '../format/signature.ts';

export interface KeyChange {
  /** The public certificate before the change (what DEST's ledger and VERSION are checked against). */
  before: string;
  /** The public certificate after it. */
  after: string;
  /**
   * The certificate placed before the ledger entry: one in which both the old head's signer and
   * the new entry's signer are valid. A rotation: `after` (it adds the subkey that signs now). A
   * revocation: `before` (the revoked subkey may have signed the old head).
   */
  interim: string;
  /** The whole key after the change, unlocked: its newest valid subkey signs the entry. */
  key: SigningKey;
  /** What changed, for the entry's note. */
  note: string;
}

export interface KeysAtDest {
  to: string;
  /** The ledger entry appended. */
  entry: LedgerEntry;
  /** Set when DEST's VERSION is signed by a subkey the change revoked: hosts refuse it until a new publish. */
  warning?: string;
}

/**
 * Under DEST's lock: checks DEST (a VERSION and ledger that verify with `change.before`) and that a
 * valid subkey can sign the entry, then runs `writeDir` (the key folder), then places the interim
 * keys.asc, appends the `keys` entry and places the final keys.asc. Nothing is written (not even
 * DIR) when a check fails.
 */
export async function placeKeysAtDest<T>(
  opts: { to: string; log: Logger; now: Date; step?: StepHook },
  change: KeyChange,
  writeDir: () => Promise<T>,
): Promise<{ written: T; dest: KeysAtDest }> {
  const dest = openDestination(opts.to, opts.log);
  if (dest.local && !(await pathExists(dest.where)))
    throw new ValidationError(`${dest.where} does not exist; give the folder \`release publish --to\` wrote.`);
  return withDestinationLock(dest, async () => {
    const version = await checkedDest(dest, change.before);
    const current = await readLedgerAt(dest, change.before);
    // A VERSION from before APP lines: the app the ledger was last about.
    const app = version.app ?? current.ledger.entries.at(-1)?.app;
    if (!app)
      throw new ValidationError(
        `The VERSION at ${dest.where} names no APP and there is no ledger to tell it; publish a release there first. Nothing was written.`,
      );
    let signer: string;
    try {
      signer = await signingFingerprintOf(change.key, opts.now);
    } catch (error) {
      throw new ValidationError(
        `No signing subkey stays valid after this change (${messageOf(error)}), so the ledger entry at ` +
          `${dest.where} could not be signed; run \`release keys rotate --dir DIR\` first. Nothing was written.`,
      );
    }
    const written = await writeDir();
    const placed = await dest.read('keys.asc');
    if (!placed || placed.toString('utf8') !== change.interim) await placeKeys(dest, change.interim, opts.step);
    const entry = await appendLedger(
      dest,
      change.key,
      current,
      {
        at: opts.now.toISOString(),
        action: 'keys',
        app,
        version: null,
        seq: null,
        rollout: null,
        sha256: null,
        versionText: null,
        manifest_sha256: null,
        provenance_sha256: null,
        source: { repo: null, commit: null, ref: null },
        note: change.note,
      },
      opts.step,
    );
    if (change.after !== change.interim) await placeKeys(dest, change.after, opts.step);
    const revoked = await revokedSubkeys(change.after);
    const warning = revoked.has(version.signer)
      ? `VERSION at ${dest.where} is signed by the revoked subkey ${version.signer}: hosts refuse it (and ` +
        `its release) until you publish again with signing.asc from the key folder.`
      : undefined;
    opts.log.info('key change recorded at DEST', { to: dest.where, entry: entry.n, signer });
    return { written, dest: { to: dest.where, entry, ...(warning ? { warning } : {}) } };
  });
}

/** DEST's VERSION must verify with this key: the app the entry is about, and who signed VERSION. */
async function checkedDest(dest: Destination, certificate: string): Promise<{ app?: string; signer: string }> {
  const read = await readPublishedVersion(dest, certificate);
  if (!read.published)
    throw new ValidationError(
      read.problem
        ? `${read.problem}; refusing to change its keys. Nothing was written.`
        : `${dest.where} has no VERSION; publish a release there first (\`release publish\` places keys.asc itself). Nothing was written.`,
    );
  const info = read.published.info;
  const openpgp = await import('openpgp');
  const key = await openpgp.readKey({ armoredKey: certificate });
  const [packet] = (await openpgp.readSignature({ binarySignature: read.published.signature })).packets;
  const [made] = key.getKeys(packet.issuerKeyID);
  return { app: info.app, signer: made.getFingerprint().toLowerCase() };
}

/** keys.asc, then the same certificate as pubkey.asc (for older hosts), as `release publish` places them. */
async function placeKeys(dest: Destination, certificate: string, step?: StepHook): Promise<void> {
  const stage = await mkdtemp(path.join(os.tmpdir(), 'shipkit-keys-'));
  try {
    const file = path.join(stage, 'keys.asc');
    await writeFile(file, certificate);
    await dest.put(file, 'keys.asc', step);
    await dest.put(file, 'pubkey.asc', step);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
