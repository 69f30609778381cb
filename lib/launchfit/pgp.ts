// OpenPGP verification of detached signatures (binary or ASCII-armored), with openpgp.js
// loaded only when a signature is checked. Trust comes from a local keyfile, or from a key
// fetched from the update server that matches a pinned full fingerprint; a key ID only
// selects among keys that are already trusted.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { ConfigError, VerificationError } from '../core/errors.ts';

type OpenPgp = typeof import('openpgp');
type PublicKey = import('openpgp').PublicKey;

let openpgpModule: Promise<OpenPgp> | undefined;
function loadOpenPgp(): Promise<OpenPgp> {
  openpgpModule ??= import('openpgp');
  return openpgpModule;
}

export type KeyPin =
  | { kind: 'fingerprint'; value: string }
  | { kind: 'keyid'; value: string };

/** `0123 4567 …`, `0x…`: a full fingerprint (40 or 64 hex) or a long/short key ID (16/8 hex). */
export function parseKeyPin(text: string): KeyPin {
  const hex = text.replace(/\s+/g, '').replace(/^0x/i, '').toLowerCase();
  if (/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(hex)) return { kind: 'fingerprint', value: hex };
  if (/^([0-9a-f]{16}|[0-9a-f]{8})$/.test(hex)) return { kind: 'keyid', value: hex };
  throw new ConfigError(`updates.gpg.key ${JSON.stringify(text)} is neither a full fingerprint (40 or 64 hex digits) nor a key ID (8 or 16 hex digits).`);
}

export interface TrustedKeys {
  keys: PublicKey[];
  /** Primary-key fingerprints, for the log and for status. */
  fingerprints: string[];
}

/** Read public keys from armored text or binary bytes. */
export async function readPublicKeys(data: Uint8Array | string, where: string): Promise<PublicKey[]> {
  const openpgp = await loadOpenPgp();
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('latin1');
  try {
    let keys;
    if (text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      // A keyfile may hold several armored blocks one after the other (cat a.asc b.asc).
      const blocks = text.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g) ?? [];
      keys = (await Promise.all(blocks.map((armoredKeys) => openpgp.readKeys({ armoredKeys })))).flat();
    } else {
      keys = await openpgp.readKeys({ binaryKeys: typeof data === 'string' ? Buffer.from(data, 'latin1') : data });
    }
    return keys.map((key) => key.toPublic());
  } catch (error) {
    throw new VerificationError(`${where} holds no readable OpenPGP public key; export it with \`gpg --armor --export KEYID\`.`, { cause: error });
  }
}

function keyMatches(key: PublicKey, pin: KeyPin): boolean {
  const all = [key, ...key.getSubkeys()];
  if (pin.kind === 'fingerprint') return all.some((k) => k.getFingerprint().toLowerCase() === pin.value);
  return all.some((k) => k.getKeyID().toHex().toLowerCase().endsWith(pin.value));
}

/**
 * The keys a signature may be made with. `localKeys` (from updates.gpg.keyfile) are trusted
 * as they are, narrowed by `pin` when given; `serverKeys` are trusted only when `pin` is a full
 * fingerprint, and then only the matching key.
 */
export function selectTrustedKeys({ localKeys, serverKeys, pin }: { localKeys?: PublicKey[]; serverKeys?: PublicKey[]; pin?: KeyPin }): TrustedKeys {
  let keys: PublicKey[] = [];
  if (localKeys && localKeys.length) {
    keys = pin ? localKeys.filter((k) => keyMatches(k, pin)) : localKeys;
    if (!keys.length) throw new ConfigError(`No key in updates.gpg.keyfile matches updates.gpg.key ${pin!.value}; check the fingerprint or the keyfile.`);
  } else if (serverKeys) {
    if (!pin || pin.kind !== 'fingerprint') {
      throw new ConfigError('A key fetched from the update server is trusted only against a pinned full fingerprint; set updates.gpg.key to the 40- or 64-digit fingerprint, or give updates.gpg.keyfile.');
    }
    keys = serverKeys.filter((k) => keyMatches(k, pin));
    if (!keys.length) throw new VerificationError(`The key on the update server does not match the pinned fingerprint ${pin.value}; refusing to trust it.`);
  } else {
    throw new ConfigError('No trusted signing key: set updates.gpg.keyfile (or pass --keyfile) or pin updates.gpg.key to a full fingerprint.');
  }
  return { keys, fingerprints: keys.map((k) => k.getFingerprint().toLowerCase()) };
}

export interface VerifiedSignature {
  /** Fingerprint of the (sub)key that made the signature. */
  signingFingerprint: string;
  /** Fingerprint of its primary key. */
  primaryFingerprint: string;
  created: Date;
}

/** Read a detached signature, binary or armored. */
async function readDetachedSignature(sig: Uint8Array, what: string) {
  const openpgp = await loadOpenPgp();
  const head = Buffer.from(sig.subarray(0, 64)).toString('latin1');
  try {
    if (head.includes('-----BEGIN PGP')) {
      return await openpgp.readSignature({ armoredSignature: Buffer.from(sig).toString('utf8') });
    }
    return await openpgp.readSignature({ binarySignature: sig });
  } catch (error) {
    throw new VerificationError(`The signature of ${what} is not a valid OpenPGP signature; the release was not installed.`, { cause: error });
  }
}

/**
 * Verify `signature` over the bytes of `file` (streamed, so memory does not grow with the file)
 * or over `data`. Throws VerificationError unless a trusted, currently valid (not expired, not
 * revoked) key made it with a hash other than SHA-1/MD5/RIPEMD.
 */
export async function verifyDetachedSignature(opts: { file?: string; data?: Uint8Array; signature: Uint8Array; trusted: TrustedKeys; what: string; now?: Date }): Promise<VerifiedSignature> {
  const openpgp = await loadOpenPgp();
  const { enums } = openpgp;
  const now = opts.now ?? new Date();
  const sig = await readDetachedSignature(opts.signature, opts.what);
  const packets = sig.packets as unknown as Array<{ hashAlgorithm: number; issuerKeyID: { toHex(): string }; created: Date | null; signatureType: number | null }>;
  if (packets.length !== 1) throw new VerificationError(`The signature file of ${opts.what} holds ${packets.length} signatures; expected exactly one.`);
  const packet = packets[0];
  const weak = new Set<number>([enums.hash.sha1, enums.hash.md5, enums.hash.ripemd]);
  if (weak.has(packet.hashAlgorithm)) {
    throw new VerificationError(`The signature of ${opts.what} uses the broken hash ${enums.read(enums.hash, packet.hashAlgorithm)}; sign with SHA-256 or better (gpg --digest-algo SHA256).`);
  }
  const issuer = packet.issuerKeyID.toHex().toLowerCase();
  const primary = opts.trusted.keys.find((k) => k.getKeys(packet.issuerKeyID as never).length > 0);
  if (!primary) throw new VerificationError(`The signature of ${opts.what} was made by key ${issuer}, which is not trusted; the release was not installed.`);
  // openpgp checks the key at the signature's creation time; we also require it valid now,
  // so an expired or revoked key cannot sign a release (or replay an old one).
  let signingKey;
  try {
    await primary.verifyPrimaryKey(now);
    signingKey = await primary.getSigningKey(packet.issuerKeyID as never, now);
  } catch (error) {
    throw new VerificationError(`The key ${issuer} that signed ${opts.what} is expired, revoked or not valid for signing: ${(error as Error).message}. Refusing the release.`, { cause: error });
  }
  const config = {
    rejectMessageHashAlgorithms: new Set<number>([enums.hash.md5, enums.hash.ripemd, enums.hash.sha1]),
  } as Parameters<OpenPgp['verify']>[0]['config'];
  try {
    const message = opts.file
      ? await openpgp.createMessage({ binary: Readable.toWeb(createReadStream(opts.file)) as unknown as ReadableStream<Uint8Array> })
      : await openpgp.createMessage({ binary: opts.data! });
    const result = await openpgp.verify({ message, signature: sig, verificationKeys: opts.trusted.keys, expectSigned: false, format: 'binary', date: now, config });
    if (opts.file) {
      const reader = (result.data as unknown as ReadableStream<Uint8Array>).getReader();
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
    }
    const [one] = result.signatures;
    if (!one) throw new Error('no signature');
    await one.verified;
    const created = packet.created ?? now;
    if (created.getTime() > now.getTime() + 24 * 3600_000) throw new Error('signature creation time is in the future');
    return {
      signingFingerprint: signingKey.getFingerprint().toLowerCase(),
      primaryFingerprint: primary.getFingerprint().toLowerCase(),
      created,
    };
  } catch (error) {
    if (error instanceof VerificationError) throw error;
    throw new VerificationError(`The signature of ${opts.what} does not verify (${(error as Error).message}); the file was changed or signed by another key. Nothing was installed.`, { cause: error });
  }
}
