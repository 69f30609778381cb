// SEQ on the publisher's side (docs/release.md): one more than DEST's signed VERSION, trusted only
// when a key of the same primary signed it; VERSION and VERSION.sig written in three atomic steps
// so that a verifying pair is there at every moment.
// The whole story: docs/internals.md.
import { ValidationError, messageOf } from '../../core/errors.ts';
import type { Destination, StepHook } from './destination.ts';
import { readDetachedSignature, verifySignaturePacket } from '../format/signature.ts';
import { MAX_SEQ, parseVersionFile, type VersionInfo } from '../format/version-file.ts';

type OpenPgp = typeof import('openpgp');

export interface PublishedVersion {
  info: VersionInfo;
  text: Buffer;
  /** The one signature (binary packet) over `text` that verified. */
  signature: Uint8Array;
}

/** DEST's VERSION, or undefined when there is none; `problem` says why one there is not trusted. */
export async function readPublishedVersion(
  dest: Destination,
  certificate: string,
): Promise<{ published?: PublishedVersion; problem?: string; hint?: string }> {
  const text = await dest.read('VERSION');
  if (!text) return {};
  const sig = await dest.read('VERSION.sig');
  if (!sig) return { problem: `${dest.where} has a VERSION without VERSION.sig` };
  const signature = await ownSignatureOver(certificate, text, sig);
  if (!signature)
    return {
      problem: `VERSION.sig in ${dest.where} is not a signature of its VERSION by this release key`,
      hint:
        'If the release key was rotated since this certificate was read, pass --keys DIR/keys.asc ' +
        '(the keys.asc `release keys rotate` wrote) so the new subkey is known. ',
    };
  let info: VersionInfo;
  try {
    info = parseVersionFile(text.toString('utf8'));
  } catch (error) {
    return { problem: `the VERSION in ${dest.where} is invalid (${messageOf(error)})` };
  }
  return { published: { info, text, signature } };
}

/**
 * The signature packet in `sigBytes` (binary or armored) that a (sub)key bound by the primary of
 * `certificate` made over `data` (bytes, or a file streamed from disk), checked at the time it
 * was made, revocations aside.
 */
export async function ownSignatureOver(
  certificate: string,
  data: Uint8Array | { file: string },
  sigBytes: Uint8Array,
): Promise<Uint8Array | undefined> {
  const openpgp: OpenPgp = await import('openpgp');
  const key = await openpgp.readKey({ armoredKey: certificate });
  key.revocationSignatures = [];
  for (const subkey of key.subkeys) subkey.revocationSignatures = [];
  const signature = await readDetachedSignature(sigBytes).catch(() => undefined);
  for (const packet of signature?.packets.slice(0, 8) ?? []) {
    try {
      await verifySignaturePacket({ packet, key, data, date: packet.created ?? new Date() });
      const only = new openpgp.PacketList<typeof packet>();
      only.push(packet);
      return only.write();
    } catch {
      // another packet may be ours
    }
  }
  return undefined;
}

/**
 * The SEQ for the next VERSION: `explicit` (--seq) or one more than DEST's. A DEST VERSION that is
 * not trusted needs --seq (its number cannot be believed, and a guess too low is refused by every
 * host); --seq must still be above a trusted one.
 */
export function nextSeq(
  current: { published?: PublishedVersion; problem?: string; hint?: string },
  explicit: number | undefined,
  where: string,
): number {
  const seq = current.published?.info.seq ?? 0;
  if (explicit !== undefined) {
    if (explicit <= seq)
      throw new ValidationError(
        `--seq ${explicit} is not above SEQ ${seq} of the VERSION at ${where}; hosts would refuse it. Nothing was written.`,
      );
    return explicit;
  }
  if (current.problem) {
    throw new ValidationError(
      `${current.problem}, so its SEQ is not trusted. ${current.hint ?? ''}Check ${where}; to replace it ` +
        `anyway, pass --seq N with N above the SEQ your hosts accepted last (launchfit status shows it). Nothing was written.`,
    );
  }
  if (seq >= MAX_SEQ)
    throw new ValidationError(
      `SEQ at ${where} is ${seq}, the largest there can be; hosts cannot be given a newer VERSION. Nothing was written.`,
    );
  return seq + 1;
}

/** Write VERSION and VERSION.sig to DEST in the three steps above; `step` sees each write. */
export function placeVersionPair(
  dest: Destination,
  text: string,
  signature: Uint8Array,
  previous: PublishedVersion | undefined,
  step?: StepHook,
): Promise<void> {
  return placeSignedPair(dest, 'VERSION', text, signature, previous?.signature, step);
}

/**
 * Write NAME and NAME.sig to DEST so that a signature of the NAME beside it is there at every
 * moment: both signatures (old and new) first, then NAME, then the new signature alone. Without a
 * `previous` signature: the signature first, so NAME never appears unsigned.
 */
export async function placeSignedPair(
  dest: Destination,
  name: string,
  text: string | Uint8Array,
  signature: Uint8Array,
  previous: Uint8Array | undefined,
  step?: StepHook,
): Promise<void> {
  const file = typeof text === 'string' ? Buffer.from(text) : text;
  if (!previous) {
    await dest.put(signature, `${name}.sig`, step);
    await dest.put(file, name, step);
    return;
  }
  const both = Buffer.concat([previous, signature]);
  await dest.put(both, `${name}.sig`, step && ((s) => step(s.replace(`${name}.sig`, `${name}.sig(both)`))));
  await dest.put(file, name, step);
  // No wait for the next second here (it was up to 1 s of every publish): the new signature
  // alone is shorter than both.sig, so the mtime+size ETag changes within the second, and every
  // signature file before both.sig was written in an earlier second (step 1 waited past it). A
  // cache still serving both.sig serves a valid signature of the new file.
  await dest.put(signature, `${name}.sig`, step, { sizeChanged: previous.length > 0 });
}
