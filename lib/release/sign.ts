// Signing for `release publish`: an armored OpenPGP secret key (unlocked with a passphrase
// file) makes detached binary signatures, as `gpg --detach-sign` does (openpgp, loaded on use).
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ConfigError, messageOf } from '../core/errors.ts';
import { readSecretFile } from '../core/secrets.ts';

type OpenPgp = typeof import('openpgp');

/** The decrypted secret key from an armored key file and optional passphrase file. */
export async function loadSigningKey(keyFile: string, passphraseFile?: string) {
  const openpgp: OpenPgp = await import('openpgp');
  let armored: string;
  try { armored = await readFile(keyFile, 'utf8'); } catch (error) {
    throw new ConfigError(`Cannot read the secret key ${keyFile} (${(error as NodeJS.ErrnoException).code}).`, { cause: error });
  }
  let key;
  try { key = await openpgp.readPrivateKey({ armoredKey: armored }); } catch (error) {
    throw new ConfigError(`${keyFile} is not an armored OpenPGP secret key; export one with \`gpg --armor --export-secret-keys KEYID\`.`, { cause: error });
  }
  if (!key.isDecrypted()) {
    if (!passphraseFile) throw new ConfigError(`The secret key ${keyFile} is protected by a passphrase; pass --passphrase-file FILE.`);
    const passphrase = await readSecretFile(passphraseFile, { what: 'passphrase file', passphrase: true });
    try { key = await openpgp.decryptKey({ privateKey: key, passphrase }); } catch (error) {
      throw new ConfigError(`The passphrase in ${passphraseFile} does not unlock ${keyFile}.`, { cause: error });
    }
  }
  try {
    await key.getSigningKey();
  } catch (error) {
    throw new ConfigError(`The key in ${keyFile} cannot sign (${messageOf(error)}); is it expired or revoked?`, { cause: error });
  }
  return key;
}

/** A detached binary signature over a file (streamed) or bytes, SHA-256 or better. */
export async function signDetached(key: Awaited<ReturnType<typeof loadSigningKey>>, input: { file?: string; data?: Uint8Array }): Promise<Uint8Array> {
  const openpgp: OpenPgp = await import('openpgp');
  const message = input.file
    ? await openpgp.createMessage({ binary: Readable.toWeb(createReadStream(input.file)) as unknown as ReadableStream<Uint8Array> })
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
