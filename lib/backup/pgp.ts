// The OpenPGP a backup uses: secret files encrypted to a public key and decrypted with its secret
// key; MANIFEST.json signed with a release key (release/format/signature.ts) and checked against its public key.
import { readFile } from 'node:fs/promises';
import { ConfigError, messageOf } from '../core/errors.ts';
import { readSecretFile } from '../core/secrets.ts';
import { loadSigningKey, signDetached } from '../release/format/signature.ts';

/** A manifest signer, and the fingerprint of its key's primary (the manifest's `signed_by`). */
export type Signer = ((data: Buffer) => Promise<Buffer>) & { fingerprint: string };

/** Signs with the armored secret key in `keyFile` (passphrase from `passphraseFile`). */
export async function signerFor(keyFile: string, passphraseFile?: string): Promise<Signer> {
  const key = await loadSigningKey(keyFile, passphraseFile);
  const sign = async (data: Buffer) => Buffer.from(await signDetached(key, { data }));
  return Object.assign(sign, { fingerprint: key.getFingerprint().toLowerCase() });
}

/** Encrypts to the armored public key in `keyFile`; the output is an armored message. */
export async function encrypterFor(keyFile: string): Promise<(bytes: Buffer) => Promise<Buffer>> {
  const openpgp = await import('openpgp');
  const armored = await readFile(keyFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(`Cannot read --encrypt-to ${keyFile} (${error.code ?? messageOf(error)}).`);
  });
  const encryptionKeys = await openpgp.readKey({ armoredKey: armored }).catch((error: unknown) => {
    throw new ConfigError(`--encrypt-to ${keyFile} is not an armored OpenPGP public key (${messageOf(error)}).`);
  });
  // Checked now, before anything is written: a sign-only key (a release key) fails only at the first secret.
  await encryptionKeys.getEncryptionKey().catch((error: unknown) => {
    throw new ConfigError(
      `${keyFile} has no encryption subkey (${messageOf(error)}): --encrypt-to takes a key that can ` +
        `encrypt, not a signing (release) key. Make one as docs/backup.md shows (gpg --quick-add-key FINGERPRINT ` +
        `cv25519 encr), export its public half and pass that.`,
    );
  });
  return async (bytes) => {
    const message = await openpgp.createMessage({ binary: bytes });
    return Buffer.from((await openpgp.encrypt({ message, encryptionKeys })) as string);
  };
}

/** Checks a detached signature against the armored public key in `keyFile`; throws when it does not verify. */
export async function verifierFor(keyFile: string): Promise<(data: Buffer, signature: Buffer) => Promise<void>> {
  const openpgp = await import('openpgp');
  const armored = await readFile(keyFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(`Cannot read --key ${keyFile} (${error.code ?? messageOf(error)}).`);
  });
  const verificationKeys = await openpgp.readKey({ armoredKey: armored }).catch((error: unknown) => {
    throw new ConfigError(`--key ${keyFile} is not an armored OpenPGP public key (${messageOf(error)}).`);
  });
  return async (data, signature) => {
    const message = await openpgp.createMessage({ binary: data });
    const { signatures } = await openpgp.verify({
      message,
      signature: await openpgp.readSignature({ binarySignature: signature }),
      verificationKeys,
    });
    if (!signatures.length) throw new Error('it holds no signature');
    await signatures[0].verified;
  };
}

/** Decrypts armored messages with the secret key in `keyFile` (unlocked with `passphraseFile`). */
export async function decrypterFor(
  keyFile: string,
  passphraseFile?: string,
): Promise<(armored: string) => Promise<Buffer>> {
  const openpgp = await import('openpgp');
  const armored = await readFile(keyFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(`Cannot read --decrypt-key ${keyFile} (${error.code ?? messageOf(error)}).`);
  });
  let key = await openpgp.readPrivateKey({ armoredKey: armored }).catch((error: unknown) => {
    throw new ConfigError(`--decrypt-key ${keyFile} is not an armored OpenPGP secret key (${messageOf(error)}).`);
  });
  if (!key.isDecrypted()) {
    if (!passphraseFile)
      throw new ConfigError(`--decrypt-key ${keyFile} is protected by a passphrase; pass --passphrase-file FILE.`);
    const passphrase = await readSecretFile(passphraseFile, { what: 'passphrase file', passphrase: true });
    key = await openpgp.decryptKey({ privateKey: key, passphrase }).catch((error: unknown) => {
      throw new ConfigError(`The passphrase in ${passphraseFile} does not unlock ${keyFile} (${messageOf(error)}).`);
    });
  }
  return async (text) => {
    const message = await openpgp.readMessage({ armoredMessage: text });
    const { data } = await openpgp.decrypt({ message, decryptionKeys: key, format: 'binary' });
    return Buffer.from(data as Uint8Array);
  };
}
