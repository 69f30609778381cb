// The release ledger on the host (docs/launchfit.md): when VERSION changes, ledger.jsonl beside it
// must carry an unbroken chain, signed as a whole by a trusted subkey that is not revoked, that
// extends the one this host saw last and records this very VERSION.
import { VerificationError, messageOf } from '../../core/errors.ts';
import { checkAgainstSeen, readLedger, type LedgerHead } from '../../release/format/ledger.ts';
import { verifyDetachedSignature, type TrustedKeys } from './pgp.ts';

export interface FetchedLedger {
  text: Buffer;
  signature?: Buffer;
}

/** What a host remembers of the ledger it verified last: its head, and its length in bytes. */
export type SeenLedger = LedgerHead & { bytes?: number };

/** The lines after the `bytes` a host verified, and the signature of the new head line alone. */
export interface LedgerTail {
  text: Buffer;
  after: LedgerHead & { bytes: number };
  headSignature: Buffer;
}

/**
 * The lines appended since this host's last check, checked without the rest: they go on from
 * the head it verified (number and hash, so nothing before can have changed for it), the new
 * head line is signed by a trusted subkey that is not revoked and that the head names, and an
 * entry among them records this VERSION. The head to remember, or undefined when the tail
 * cannot vouch for it (then the whole ledger is read and checked): it never accepts what the
 * whole check would refuse.
 */
export async function checkLedgerTail(opts: {
  tail: LedgerTail;
  trusted: () => Promise<TrustedKeys>;
  versionSha256: string;
  now?: Date;
}): Promise<SeenLedger | undefined> {
  const { tail } = opts;
  try {
    const ledger = readLedger(tail.text, tail.after);
    const head = ledger.entries[ledger.entries.length - 1];
    if (!head || ledger.torn || !ledger.entries.some((e) => e.version_sha256 === opts.versionSha256)) return undefined;
    const lastLine = tail.text.subarray(tail.text.lastIndexOf(0x0a, tail.text.length - 2) + 1);
    const signed = await verifyDetachedSignature({
      data: lastLine,
      signature: tail.headSignature,
      trusted: await opts.trusted(),
      what: `ledger.jsonl's head (entry ${head.n})`,
      now: opts.now,
    });
    if (signed.signingFingerprint !== head.signer) return undefined;
    return { ...ledger.head!, bytes: tail.after.bytes + ledger.text.length };
  } catch {
    return undefined;
  }
}

/**
 * Checks `fetched` (undefined: DEST has no ledger) against the trusted keys, the head seen before
 * and the digest of the VERSION being handled; the head to remember. Throws VerificationError.
 */
export async function checkLedger(opts: {
  fetched: FetchedLedger | undefined;
  /** Asked only when there is a ledger to verify. */
  trusted: () => Promise<TrustedKeys>;
  seen: LedgerHead | undefined;
  versionSha256: string;
  now?: Date;
}): Promise<SeenLedger | undefined> {
  const { fetched, seen } = opts;
  if (!fetched) {
    if (seen)
      throw new VerificationError(
        `The update server has no ledger.jsonl, but this host saw its entry ${seen.n} before; refusing (a ` +
          `ledger removed or an older server put back).`,
      );
    return undefined;
  }
  if (!fetched.signature)
    throw new VerificationError('The update server has ledger.jsonl without ledger.jsonl.sig; refusing it.');
  let ledger;
  try {
    ledger = readLedger(fetched.text);
    checkAgainstSeen(ledger, seen);
  } catch (error) {
    throw new VerificationError(`The update server's ledger is refused: ${messageOf(error)}.`, {
      cause: error,
    });
  }
  const head = ledger.entries[ledger.entries.length - 1];
  if (!head) throw new VerificationError('The update server has an empty ledger.jsonl; refusing it.');
  const signed = await verifyDetachedSignature({
    data: ledger.text,
    signature: fetched.signature,
    trusted: await opts.trusted(),
    what: `ledger.jsonl (entry ${head.n})`,
    now: opts.now,
  });
  if (signed.signingFingerprint !== head.signer)
    throw new VerificationError(
      `The update server's ledger is refused: ledger entry ${head.n} says subkey ${head.signer} signed ` +
        `it, but the signature is by ${signed.signingFingerprint}.`,
    );
  // A crash between the ledger and VERSION leaves the head one entry ahead: search back.
  if (!ledger.entries.some((e) => e.version_sha256 === opts.versionSha256))
    throw new VerificationError(
      `VERSION (sha256 ${opts.versionSha256}) is in no entry of the update server's ledger ` +
        `(${ledger.entries.length} entries); refusing a VERSION its publisher did not record.`,
    );
  return { ...ledger.head!, bytes: ledger.text.length };
}
