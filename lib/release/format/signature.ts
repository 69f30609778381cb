// Detached OpenPGP signatures, made and checked: an armored secret key (unlocked with a passphrase
// file) signs as `gpg --detach-sign` does, and one packet is verified over bytes or a file streamed
// from disk, for the host (launchfit/trust/pgp.ts) and the publisher (dest/seq.ts) alike.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ConfigError, messageOf } from '../../core/errors.ts';
import { pathExists } from '../../core/fs.ts';
import { readSecretFile } from '../../core/secrets.ts';

type OpenPgp = typeof import('openpgp');

/** An unlocked OpenPGP secret key, ready to sign. */
export type SigningKey = Awaited<ReturnType<OpenPgp['decryptKey']>>;

/**
 * The last key this process unlocked, with the key text and passphrase that unlocked it. A build
 * checks the key before its job starts and publish then signs with it: the passphrase's S2K (~150 ms
 * of CPU in openpgp) runs once, not twice. Reused only for the same key text and passphrase.
 */
let lastUnlocked: { armored: string; passphrase: string | undefined; key: SigningKey } | undefined;

/** The decrypted secret key from an armored key file and optional passphrase file. */
export async function loadSigningKey(keyFile: string, passphraseFile?: string): Promise<SigningKey> {
  const openpgp: OpenPgp = await import('openpgp');
  let armored: string;
  try {
    armored = await readFile(keyFile, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read the secret key ${keyFile} (${(error as NodeJS.ErrnoException).code}).`, {
      cause: error,
    });
  }
  let key;
  if (
    lastUnlocked?.armored === armored &&
    (lastUnlocked.passphrase === undefined ||
      (passphraseFile !== undefined &&
        lastUnlocked.passphrase ===
          (await readSecretFile(passphraseFile, { what: 'passphrase file', passphrase: true }))))
  ) {
    key = lastUnlocked.key;
  } else {
    try {
      key = await openpgp.readPrivateKey({ armoredKey: armored });
    } catch (error) {
      throw new ConfigError(
        `${keyFile} is not an armored OpenPGP secret key; export one with \`gpg --armor --export-secret-keys KEYID\`.`,
        { cause: error },
      );
    }
    let passphrase: string | undefined;
    if (!key.isDecrypted()) {
      if (!passphraseFile)
        throw new ConfigError(`The secret key ${keyFile} is protected by a passphrase; pass --passphrase-file FILE.`);
      passphrase = await readSecretFile(passphraseFile, { what: 'passphrase file', passphrase: true });
      try {
        key = await openpgp.decryptKey({ privateKey: key, passphrase });
      } catch (error) {
        throw new ConfigError(`The passphrase in ${passphraseFile} does not unlock ${keyFile}.`, { cause: error });
      }
    }
    lastUnlocked = { armored, passphrase, key };
  }
  try {
    await key.getSigningKey();
  } catch (error) {
    throw new ConfigError(`The key in ${keyFile} cannot sign (${messageOf(error)}); is it expired or revoked?`, {
      cause: error,
    });
  }
  return key;
}

/** A detached binary signature over a file (streamed) or bytes, SHA-256 or better. */
export async function signDetached(key: SigningKey, input: { file?: string; data?: Uint8Array }): Promise<Uint8Array> {
  const openpgp: OpenPgp = await import('openpgp');
  const message = input.file
    ? await openpgp.createMessage({
        binary: Readable.toWeb(createReadStream(input.file)) as unknown as ReadableStream<Uint8Array>,
      })
    : await openpgp.createMessage({ binary: input.data! });
  const config = { preferredHashAlgorithm: openpgp.enums.hash.sha256 } as Parameters<OpenPgp['sign']>[0]['config'];
  const signature = await openpgp.sign({ message, signingKeys: key, detached: true, format: 'binary', config });
  if (signature instanceof Uint8Array) return signature;
  const reader = (signature as unknown as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** The fingerprint of the subkey `key` signs with at `now`. */
export async function signingFingerprintOf(key: SigningKey, now: Date): Promise<string> {
  return (await key.getSigningKey(undefined, now)).getFingerprint().toLowerCase();
}

/**
 * The public certificate published as keys.asc (and pubkey.asc): `keysFile` (`--keys`), else
 * keys.asc beside the secret key (as `release keys` writes it), else the key's own public part.
 * A certificate of another primary, or one in which the subkey that signs now is not valid
 * (revoked there, expired, or missing), is refused before anything is published: hosts would
 * refuse the release.
 */
export async function publicCertificateFor(
  key: SigningKey,
  keyFile: string,
  keysFile: string | undefined,
  now: Date,
): Promise<string> {
  const openpgp: OpenPgp = await import('openpgp');
  const beside = path.join(path.dirname(keyFile), 'keys.asc');
  const file = keysFile ?? ((await pathExists(beside)) ? beside : undefined);
  if (!file) return key.toPublic().armor();
  let armoredKey: string;
  try {
    armoredKey = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read the public certificate ${file} (${(error as NodeJS.ErrnoException).code}).`, {
      cause: error,
    });
  }
  if (armoredKey.includes('PRIVATE KEY BLOCK'))
    throw new ConfigError(
      `${file} holds a secret key; --keys takes the public certificate (keys.asc from \`release keys\`).`,
    );
  let certificate;
  try {
    certificate = await openpgp.readKey({ armoredKey });
  } catch (error) {
    throw new ConfigError(`${file} is not an armored OpenPGP public key (keys.asc from \`release keys\`).`, {
      cause: error,
    });
  }
  const primary = key.getFingerprint().toLowerCase();
  if (certificate.getFingerprint().toLowerCase() !== primary) {
    throw new ConfigError(
      `${file} is the certificate of key ${certificate.getFingerprint().toLowerCase()}, but the release ` +
        `is signed by key ${primary}; pass the keys.asc of the signing key with --keys.`,
    );
  }
  const signingKey = await key.getSigningKey(undefined, now);
  const signing = signingKey.getFingerprint().toLowerCase();
  const valid = await certificate.getSigningKey(signingKey.getKeyID(), now).then(
    (k) => k.getFingerprint().toLowerCase() === signing,
    () => false,
  );
  if (!valid)
    throw new ConfigError(
      `The subkey ${signing} that would sign is not valid in ${file} (revoked, expired or missing there); ` +
        `hosts would refuse the release. Run \`release keys rotate\` and publish with the new signing.asc and keys.asc.`,
    );
  return certificate.armor();
}

/** A detached signature, binary or armored; throws what openpgp throws for anything else. */
export async function readDetachedSignature(bytes: Uint8Array): Promise<import('openpgp').Signature> {
  const openpgp: OpenPgp = await import('openpgp');
  const head = Buffer.from(bytes.subarray(0, 64)).toString('latin1');
  return head.includes('-----BEGIN PGP')
    ? openpgp.readSignature({ armoredSignature: Buffer.from(bytes).toString('utf8') })
    : openpgp.readSignature({ binarySignature: bytes });
}

/** What a signature covers: bytes, a file streamed from disk, or a stream (a file in canonical text form). */
export type SignedData = Uint8Array | { file: string } | ReadableStream<Uint8Array>;

/**
 * Checks that one signature `packet` verifies over `data` with `key` at `date`, and throws when it
 * does not. A file is streamed and read to its end here, so memory does not grow with it.
 */
export async function verifySignaturePacket(opts: {
  packet: import('openpgp').SignaturePacket;
  key: import('openpgp').PublicKey;
  data: SignedData;
  date: Date;
  config?: Parameters<OpenPgp['verify']>[0]['config'];
}): Promise<void> {
  const openpgp: OpenPgp = await import('openpgp');
  const only = new openpgp.PacketList<import('openpgp').SignaturePacket>();
  only.push(opts.packet);
  const binary =
    opts.data instanceof Uint8Array || opts.data instanceof ReadableStream
      ? opts.data
      : (Readable.toWeb(createReadStream(opts.data.file)) as unknown as ReadableStream<Uint8Array>);
  const result = await openpgp.verify({
    message: await openpgp.createMessage({ binary }),
    signature: new openpgp.Signature(only),
    verificationKeys: [opts.key],
    expectSigned: false,
    format: 'binary',
    date: opts.date,
    config: opts.config,
  });
  // A streamed message is hashed as it is read: read it to the end, then ask.
  if (!(binary instanceof Uint8Array)) {
    const reader = (result.data as unknown as ReadableStream<Uint8Array>).getReader();
    while (!(await reader.read()).done);
  }
  const [one] = result.signatures;
  if (!one) throw new Error('no signature');
  await one.verified;
}
