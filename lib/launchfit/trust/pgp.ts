// OpenPGP verification of detached signatures (binary or armored, binary or text mode, one or more
// signers), openpgp.js loaded only when a signature is checked; trust from a local keyfile or a
// fetched key that matches a pinned full fingerprint.
// The whole story: docs/internals.md.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { ConfigError, VerificationError, messageOf } from '../../core/errors.ts';
import { canonicalTextStream, canonicalizeText } from './gpg-text.ts';
import type { KeyPin } from '../deploy-folder/key-pin.ts';
import { readDetachedSignature, verifySignaturePacket } from '../../release/format/signature.ts';

type OpenPgp = typeof import('openpgp');
type PublicKey = import('openpgp').PublicKey;
type Subkey = import('openpgp').Subkey;
type KeyID = import('openpgp').KeyID;
type SignaturePacket = import('openpgp').SignaturePacket;

let openpgpModule: Promise<OpenPgp> | undefined;
function loadOpenPgp(): Promise<OpenPgp> {
  openpgpModule ??= import('openpgp');
  return openpgpModule;
}

/** A key a release may be signed with: the whole key, or (`onlySubkey`) one subkey of it. */
export interface TrustedKey {
  /** The key as read: primary, subkeys, their signatures. */
  key: PublicKey;
  /** Fingerprint of the one subkey trusted when the pin named a subkey. */
  onlySubkey?: string;
}

/** Revoked keys by fingerprint, as this host remembers them (lib/launchfit/trust/release-keys.ts). */
export type RevokedKeys = Record<string, { primary: string; reason: string; revokedAt?: string; seenAt: string }>;

export interface TrustedKeys {
  keys: TrustedKey[];
  /** What is trusted, for the log and for status: a primary's fingerprint, or the pinned subkey's. */
  fingerprints: string[];
  /** Every revocation seen, even one no longer in the keys: a signature by such a key is refused. */
  revoked?: RevokedKeys;
}

const KEYBOX_MAGIC = 'KBXf';

/**
 * Read public keys from armored text or binary bytes. `local` (updates.gpg.keyfile) makes an
 * unreadable file a configuration error; a key from the server is a verification failure.
 */
export async function readPublicKeys(
  data: Uint8Array | string,
  where: string,
  { local = false }: { local?: boolean } = {},
): Promise<PublicKey[]> {
  const openpgp = await loadOpenPgp();
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('latin1');
  const Refusal = local ? ConfigError : VerificationError;
  // A keybox (pubring.kbx) is GnuPG's keyring database, not an OpenPGP key: its first blob is
  // a header with "KBXf" at byte 8.
  if (text.slice(8, 12) === KEYBOX_MAGIC) {
    throw new Refusal(
      `${where} is a GnuPG keybox (pubring.kbx), not an exported key; export the signing key with \`gpg ` +
        `--armor --export FINGERPRINT > trusted.asc\` and use that file.`,
    );
  }
  try {
    let keys;
    if (text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      // A keyfile may hold several armored blocks one after the other (cat a.asc b.asc).
      const blocks =
        text.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g) ?? [];
      keys = (await Promise.all(blocks.map((armoredKeys) => openpgp.readKeys({ armoredKeys })))).flat();
    } else {
      keys = await openpgp.readKeys({ binaryKeys: typeof data === 'string' ? Buffer.from(data, 'latin1') : data });
    }
    return keys.map((key) => key.toPublic());
  } catch (error) {
    throw new Refusal(`${where} holds no readable OpenPGP public key; export it with \`gpg --armor --export KEYID\`.`, {
      cause: error,
    });
  }
}

const fingerprintOf = (k: { getFingerprint(): string }) => k.getFingerprint().toLowerCase();

/** What of `key` the pin trusts: the whole key when it names the primary, else each named subkey alone. */
function trustedPartsOf(key: PublicKey, pin: KeyPin): TrustedKey[] {
  const named = (k: PublicKey | Subkey) =>
    pin.kind === 'fingerprint'
      ? fingerprintOf(k) === pin.value
      : k.getKeyID().toHex().toLowerCase().endsWith(pin.value);
  if (named(key)) return [{ key }];
  return key
    .getSubkeys()
    .filter(named)
    .map((subkey) => ({ key, onlySubkey: fingerprintOf(subkey) }));
}

/**
 * The keys a signature may be made with. `localKeys` (from updates.gpg.keyfile) are trusted
 * as they are, narrowed by `pin` when given; `serverKeys` are trusted only when `pin` is a full
 * fingerprint, and then only the part the pin names.
 */
export function selectTrustedKeys({
  localKeys,
  serverKeys,
  pin,
}: {
  localKeys?: PublicKey[];
  serverKeys?: PublicKey[];
  pin?: KeyPin;
}): TrustedKeys {
  let keys: TrustedKey[] = [];
  if (localKeys && localKeys.length) {
    keys = pin ? localKeys.flatMap((k) => trustedPartsOf(k, pin)) : localKeys.map((key) => ({ key }));
    if (!keys.length)
      throw new ConfigError(
        `No key in updates.gpg.keyfile matches updates.gpg.key ${pin!.value}; check the fingerprint or the keyfile.`,
      );
  } else if (serverKeys) {
    if (!pin || pin.kind !== 'fingerprint') {
      throw new ConfigError(
        'A key fetched from the update server is trusted only against a pinned full fingerprint; set ' +
          'updates.gpg.key to the 40- or 64-digit fingerprint, or give updates.gpg.keyfile.',
      );
    }
    keys = serverKeys.flatMap((k) => trustedPartsOf(k, pin));
    if (!keys.length)
      throw new VerificationError(
        `The key on the update server does not match the pinned fingerprint ${pin.value}; refusing to trust it.`,
      );
  } else {
    throw new ConfigError(
      'No trusted signing key: set updates.gpg.keyfile (or pass --keyfile) or pin updates.gpg.key to a full fingerprint.',
    );
  }
  return { keys, fingerprints: keys.map((t) => t.onlySubkey ?? fingerprintOf(t.key)) };
}

export interface VerifiedSignature {
  /** Fingerprint of the (sub)key that made the signature. */
  signingFingerprint: string;
  /** Fingerprint of its primary key. */
  primaryFingerprint: string;
  created: Date;
}

/** At most this many signatures in one signature file (each costs a pass over the file). */
export const MAX_SIGNERS = 8;

/** Read a detached signature, binary or armored. */
async function readSignatureOf(sig: Uint8Array, what: string) {
  try {
    return await readDetachedSignature(sig);
  } catch (error) {
    throw new VerificationError(
      `The signature of ${what} is not a valid OpenPGP signature; the release was not installed.`,
      { cause: error },
    );
  }
}

interface SignaturePacketView {
  hashAlgorithm: number;
  signatureType: number | null;
  issuerKeyID: KeyID;
  issuerFingerprint: Uint8Array | null;
  created: Date | null;
}

interface TrustedSigner {
  packet: SignaturePacketView;
  primary: PublicKey;
  fingerprint: string;
}

/**
 * The trusted key that made `packet`, if any: its issuer (key ID, and the fingerprint when the
 * signature names one) must be exactly one key of a trusted key, and the trusted part of it.
 */
function findTrustedSigner(packet: SignaturePacketView, trusted: TrustedKeys): TrustedSigner | undefined {
  const issuerFingerprint = packet.issuerFingerprint
    ? Buffer.from(packet.issuerFingerprint).toString('hex')
    : undefined;
  for (const { key, onlySubkey } of trusted.keys) {
    const matching = key.getKeys(packet.issuerKeyID);
    // Two keys with one key ID inside one key: openpgp would check against the first; trust neither.
    if (matching.length !== 1) continue;
    const fingerprint = fingerprintOf(matching[0]);
    if (onlySubkey && fingerprint !== onlySubkey) continue;
    if (issuerFingerprint && issuerFingerprint !== fingerprint) continue;
    return { packet, primary: key, fingerprint };
  }
  return undefined;
}

/**
 * Verify `signature` over the bytes of `file` (streamed, so memory does not grow with the file)
 * or over `data`. The signature file may hold several signatures; it is accepted when one made
 * by a trusted signer verifies. Throws VerificationError unless a trusted, currently valid (not
 * expired, not revoked) key made it with a hash other than SHA-1/MD5/RIPEMD.
 */
export async function verifyDetachedSignature(opts: {
  file?: string;
  data?: Uint8Array;
  signature: Uint8Array;
  trusted: TrustedKeys;
  what: string;
  now?: Date;
}): Promise<VerifiedSignature> {
  const now = opts.now ?? new Date();
  const sig = await readSignatureOf(opts.signature, opts.what);
  const packets = sig.packets as unknown as SignaturePacketView[];
  if (!packets.length || packets.length > MAX_SIGNERS) {
    throw new VerificationError(
      `The signature file of ${opts.what} holds ${packets.length} signatures; expected 1 to ${MAX_SIGNERS}.`,
    );
  }
  const signers = packets
    .map((p) => findTrustedSigner(p, opts.trusted))
    .filter((s): s is TrustedSigner => s !== undefined);
  if (!signers.length) {
    const issuers = packets.map((p) => p.issuerKeyID.toHex().toLowerCase());
    throw new VerificationError(
      issuers.length === 1
        ? `The signature of ${opts.what} was made by key ${issuers[0]}, which is not trusted; the release was not installed.`
        : `The signatures of ${opts.what} were made by keys ${issuers.join(', ')}, none of them trusted; the release was not installed.`,
    );
  }
  let firstError: unknown;
  for (const signer of signers) {
    try {
      refuseRemembered(signer, opts.trusted.revoked, opts.what);
      return await verifyOneSignature(signer, opts, now);
    } catch (error) {
      firstError ??= error;
    }
  }
  throw firstError;
}

/** A key revoked once stays revoked: whatever the signature's date, and whatever keys.asc says now. */
function refuseRemembered(signer: TrustedSigner, revoked: RevokedKeys | undefined, what: string): void {
  const primary = fingerprintOf(signer.primary);
  for (const fingerprint of [primary, signer.fingerprint]) {
    const record = revoked && Object.hasOwn(revoked, fingerprint) ? revoked[fingerprint] : undefined;
    if (record && record.primary === primary) {
      throw new VerificationError(
        `The key ${fingerprint} that signed ${what} was revoked (reason: ${record.reason}; seen ` +
          `${record.seenAt}); a revocation, once seen, holds for every signature of that key whatever its date. Refusing the release.`,
      );
    }
  }
}

async function verifyOneSignature(
  signer: TrustedSigner,
  opts: { file?: string; data?: Uint8Array; what: string },
  now: Date,
): Promise<VerifiedSignature> {
  const openpgp = await loadOpenPgp();
  const { enums } = openpgp;
  const { packet, primary } = signer;
  const weak = new Set<number>([enums.hash.sha1, enums.hash.md5, enums.hash.ripemd]);
  if (weak.has(packet.hashAlgorithm)) {
    throw new VerificationError(
      `The signature of ${opts.what} uses the broken hash ` +
        `${enums.read(enums.hash, packet.hashAlgorithm)}; sign with SHA-256 or better (gpg --digest-algo SHA256).`,
    );
  }
  const textMode = packet.signatureType === enums.signature.text;
  if (!textMode && packet.signatureType !== enums.signature.binary) {
    throw new VerificationError(
      `The signature of ${opts.what} is not a signature of a file (type ${packet.signatureType}); sign with gpg --detach-sign.`,
    );
  }
  // openpgp checks the key at the signature's creation time; we also require it valid now,
  // so an expired or revoked key cannot sign a release (or replay an old one). For a pinned
  // subkey this checks its binding to the primary it came with, and that primary.
  try {
    await primary.verifyPrimaryKey(now);
    const signingKey = await primary.getSigningKey(packet.issuerKeyID as never, now);
    if (fingerprintOf(signingKey) !== signer.fingerprint)
      throw new Error(`the valid signing key with that key ID is ${fingerprintOf(signingKey)}`);
  } catch (error) {
    throw new VerificationError(
      `The key ${signer.fingerprint} that signed ${opts.what} is expired, revoked or not valid for ` +
        `signing: ${messageOf(error)}. Refusing the release.`,
      { cause: error },
    );
  }
  const config = {
    rejectMessageHashAlgorithms: new Set<number>([enums.hash.md5, enums.hash.ripemd, enums.hash.sha1]),
  } as Parameters<OpenPgp['verify']>[0]['config'];
  try {
    await verifySignaturePacket({
      packet: packet as unknown as SignaturePacket,
      key: primary,
      data: messageBytes(opts, textMode),
      date: now,
      config,
    });
    const created = packet.created ?? now;
    if (created.getTime() > now.getTime() + 24 * 3600_000) throw new Error('signature creation time is in the future');
    return { signingFingerprint: signer.fingerprint, primaryFingerprint: fingerprintOf(primary), created };
  } catch (error) {
    if (error instanceof VerificationError) throw error;
    throw new VerificationError(
      `The signature of ${opts.what} does not verify (${messageOf(error)}); the file was changed or ` +
        `signed by another key. Nothing was installed.`,
      { cause: error },
    );
  }
}

/** The bytes the signature covers: the file as it is, or its canonical text form for a text-mode signature. */
function messageBytes(
  opts: { file?: string; data?: Uint8Array; what: string },
  textMode: boolean,
): Uint8Array | ReadableStream<Uint8Array> {
  if (!opts.file) return textMode ? canonicalizeText(opts.data!, opts.what) : opts.data!;
  const stream = Readable.toWeb(createReadStream(opts.file)) as unknown as ReadableStream<Uint8Array>;
  return textMode ? stream.pipeThrough(canonicalTextStream(opts.what)) : stream;
}
