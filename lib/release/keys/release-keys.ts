// `release keys` (docs/release.md): a certify-only primary kept offline, signing subkeys with an
// expiry, and keys.asc published beside VERSION, so rotating or revoking a subkey changes nothing
// on any host. The folder holds primary.asc, signing.asc and keys.asc.
// The whole story: docs/internals.md.
import { chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, UsageError, ValidationError } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir, pathExists } from '../../core/fs.ts';
import { silentLogger, type Logger } from '../../core/log.ts';
import { readSecretFile } from '../../core/secrets.ts';
import type { StepHook } from '../dest/destination.ts';
import { placeKeysAtDest, type KeysAtDest } from './at-dest.ts';

type OpenPgp = typeof import('openpgp');
type PrivateKey = import('openpgp').PrivateKey;
type Subkey = import('openpgp').Subkey;

export const PRIMARY_FILE = 'primary.asc';
export const SIGNING_FILE = 'signing.asc';
export const KEYS_FILE = 'keys.asc';

export type RevocationReason = 'compromised' | 'superseded';

export interface SubkeyInfo {
  fingerprint: string;
  created: string;
  /** ISO date, or null when it never expires. */
  expires: string | null;
  /** Why it was revoked (`compromised`, `superseded`, `unspecified`), or null. */
  revoked: string | null;
  /** Can sign now: bound, not expired, not revoked. */
  valid: boolean;
}

export interface KeysResult {
  dir: string;
  primary: string;
  subkeys: SubkeyInfo[];
  /** The subkey this command made or revoked. */
  subkey?: string;
  /** With `to`: where keys.asc was placed and the ledger entry that records the change. */
  dest?: KeysAtDest;
}

interface KeysOptions {
  dir: string;
  passphraseFile?: string;
  now?: () => Date;
}

/** rotate and revoke: with `to`, keys.asc is placed at that DEST and the change is recorded in its ledger. */
interface ChangeOptions extends KeysOptions {
  to?: string;
  log?: Logger;
  /** Sees each write at DEST (`release keys` can pause there for a test). */
  step?: StepHook;
}

const openpgpModule = (): Promise<OpenPgp> => import('openpgp');
const lower = (k: { getFingerprint(): string }) => k.getFingerprint().toLowerCase();

async function passphraseOf(file?: string): Promise<string | undefined> {
  if (file === undefined) return undefined;
  const passphrase = await readSecretFile(file, { what: 'passphrase file', passphrase: true });
  if (!passphrase)
    throw new ConfigError(
      `The passphrase file ${file} is empty; write the passphrase on its first line, or leave --passphrase-file out.`,
    );
  return passphrase;
}

function days(n: number): number {
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--expires ${n}: give a whole number of days, 1 or more (a signing subkey always expires).`);
  return n * 86_400;
}

/** Make a new release key in `dir`: a certify-only primary and one signing subkey expiring in `expiresDays`. */
export async function initReleaseKeys(
  opts: KeysOptions & { userId?: string; expiresDays?: number },
): Promise<KeysResult> {
  const openpgp = await openpgpModule();
  const expiration = days(opts.expiresDays ?? 365);
  for (const name of [PRIMARY_FILE, SIGNING_FILE, KEYS_FILE]) {
    if (await pathExists(path.join(opts.dir, name))) {
      throw new UsageError(
        `${path.join(opts.dir, name)} already exists; a release key is never overwritten. Use \`release ` +
          `keys rotate --dir ${opts.dir}\` for a new signing subkey, or another --out folder.`,
      );
    }
  }
  const passphrase = await passphraseOf(opts.passphraseFile);
  const date = opts.now?.() ?? new Date();
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [parseUserId(opts.userId ?? 'shipkit release key')],
    date,
    subkeys: [{ sign: true, keyExpirationTime: expiration, date }],
    format: 'object',
  });
  const key = await certifyOnly(openpgp, privateKey, date);
  const result = await writeKeys(openpgp, opts.dir, key, passphrase, date);
  return { ...result, subkey: result.subkeys[0]?.fingerprint };
}

function parseUserId(text: string): { name?: string; email?: string } {
  const m = /^\s*(.*?)\s*(?:<([^<>\s]+@[^<>\s]+)>)?\s*$/.exec(text);
  if (!m || (!m[1] && !m[2]))
    throw new UsageError(
      `--uid ${JSON.stringify(text)}: give a name, optionally with an e-mail address: "Release <release@example.com>".`,
    );
  return { ...(m[1] ? { name: m[1] } : {}), ...(m[2] ? { email: m[2] } : {}) };
}

/** The key with its primary's self-certifications re-signed to allow certification only. */
async function certifyOnly(openpgp: OpenPgp, key: PrivateKey, date: Date): Promise<PrivateKey> {
  const { enums } = openpgp;
  for (const user of key.users) {
    user.selfCertifications = await Promise.all(
      user.selfCertifications.map(async (old) => {
        const sig = new openpgp.SignaturePacket();
        sig.read(old.write());
        sig.keyFlags = new Uint8Array([enums.keyFlags.certifyKeys]);
        // A fresh salt notation is added when it is signed again.
        sig.rawNotations = sig.rawNotations.filter((n) => !n.name.startsWith('salt@'));
        await (
          sig as unknown as {
            sign(k: unknown, d: unknown, date: Date, detached: boolean, config: unknown): Promise<void>;
          }
        ).sign(key.keyPacket, { userID: user.userID, key: key.keyPacket }, date, false, openpgp.config);
        return sig;
      }),
    );
  }
  return key;
}

/** Add a new signing subkey to the key in `dir`; publishing signs with the newest valid one. */
export async function rotateReleaseKeys(opts: ChangeOptions & { expiresDays?: number }): Promise<KeysResult> {
  const openpgp = await openpgpModule();
  const expiration = days(opts.expiresDays ?? 365);
  const { key, passphrase } = await readPrimary(openpgp, opts);
  const date = opts.now?.() ?? new Date();
  const before = new Set(key.getSubkeys().map(lower));
  const rotated = await key.addSubkey({ sign: true, keyExpirationTime: expiration, date });
  const subkey = rotated
    .getSubkeys()
    .map(lower)
    .find((f) => !before.has(f));
  const expires = new Date(date.getTime() + expiration * 1000).toISOString();
  const after = rotated.toPublic().armor();
  return writeChange(opts, rotated, passphrase, date, {
    before: key.toPublic().armor(),
    after,
    interim: after,
    note: `rotate: new signing subkey ${subkey}, expires ${expires}`,
    subkey,
  });
}

/** Writes DIR's three files; with `opts.to`, inside placeKeysAtDest, after DEST was checked. */
async function writeChange(
  opts: ChangeOptions,
  key: PrivateKey,
  passphrase: string | undefined,
  date: Date,
  change: { before: string; after: string; interim: string; note: string; subkey?: string },
): Promise<KeysResult> {
  const openpgp = await openpgpModule();
  const write = () => writeKeys(openpgp, opts.dir, key, passphrase, date);
  if (opts.to === undefined) return { ...(await write()), subkey: change.subkey };
  const { written, dest } = await placeKeysAtDest(
    { to: opts.to, log: opts.log ?? silentLogger, now: date, step: opts.step },
    { ...change, key },
    write,
  );
  return { ...written, subkey: change.subkey, dest };
}

const REASONS = ['compromised', 'superseded'] as const;

/** Revoke one subkey of the key in `dir`. `compromised` (the default when no reason is given is "no reason", which hosts treat the same) or `superseded`. */
export async function revokeReleaseSubkey(
  opts: ChangeOptions & { subkey: string; reason?: RevocationReason },
): Promise<KeysResult> {
  const openpgp = await openpgpModule();
  const { enums } = openpgp;
  if (opts.reason !== undefined && !REASONS.includes(opts.reason))
    throw new UsageError(`--reason ${JSON.stringify(opts.reason)}: use compromised or superseded.`);
  const wanted = opts.subkey.replace(/\s+/g, '').replace(/^0x/i, '').toLowerCase();
  if (!/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(wanted))
    throw new ValidationError(
      `${JSON.stringify(opts.subkey)} is not a full subkey fingerprint (40 or 64 hex digits); \`release keys list --dir DIR\` shows them.`,
    );
  const { key, passphrase } = await readPrimary(openpgp, opts);
  if (lower(key) === wanted)
    throw new UsageError(
      `${wanted} is the primary key; revoke a signing subkey (hosts pin the primary; to retire it, make a new key and re-pin every host).`,
    );
  const index = key.subkeys.findIndex((s) => lower(s) === wanted);
  if (index === -1)
    throw new ValidationError(
      `The key in ${opts.dir} has no subkey ${wanted}; its subkeys are ${key.subkeys.map(lower).join(', ')}.`,
    );
  const date = opts.now?.() ?? new Date();
  const previous = key.toPublic().armor();
  const flag =
    opts.reason === 'superseded'
      ? enums.reasonForRevocation.keySuperseded
      : opts.reason === 'compromised'
        ? enums.reasonForRevocation.keyCompromised
        : enums.reasonForRevocation.noReason;
  if (!(await key.subkeys[index].isRevoked(undefined as never, undefined as never, date))) {
    key.subkeys[index] = await key.subkeys[index].revoke(
      key.keyPacket as never,
      { flag, string: opts.reason ?? '' },
      date,
    );
  }
  return writeChange(opts, key, passphrase, date, {
    before: previous,
    after: key.toPublic().armor(),
    interim: previous,
    note: `revoke: subkey ${wanted}, reason ${opts.reason ?? 'unspecified'}`,
    subkey: wanted,
  });
}

/** The public certificate of the key in `dir`, described. */
export async function listReleaseKeys(opts: KeysOptions): Promise<KeysResult> {
  const openpgp = await openpgpModule();
  const armoredKey = await readFile(path.join(opts.dir, KEYS_FILE), 'utf8').catch((error) => {
    throw new ConfigError(
      `Cannot read ${path.join(opts.dir, KEYS_FILE)} (${(error as NodeJS.ErrnoException).code}); make a ` +
        `key with \`release keys init --out DIR\`.`,
      { cause: error },
    );
  });
  const key = await openpgp.readKey({ armoredKey });
  return {
    dir: opts.dir,
    primary: lower(key),
    subkeys: await describeSubkeys(openpgp, key, opts.now?.() ?? new Date()),
  };
}

/** The decrypted whole key from DIR/primary.asc, and the passphrase it was locked with. */
async function readPrimary(openpgp: OpenPgp, opts: KeysOptions): Promise<{ key: PrivateKey; passphrase?: string }> {
  const file = path.join(opts.dir, PRIMARY_FILE);
  let armoredKey: string;
  try {
    armoredKey = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `Cannot read ${file} (${(error as NodeJS.ErrnoException).code}); --dir must be the folder \`release ` +
        `keys init --out\` made, with the primary key's secret.`,
      { cause: error },
    );
  }
  let key: PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey });
  } catch (error) {
    throw new ConfigError(`${file} is not an armored OpenPGP secret key.`, { cause: error });
  }
  if ((key.keyPacket as import('openpgp').SecretKeyPacket).isDummy())
    throw new ConfigError(
      `${file} holds no secret for the primary key (it is a signing-only copy); rotate and revoke need the offline primary.`,
    );
  const passphrase = await passphraseOf(opts.passphraseFile);
  if (!key.isDecrypted()) {
    if (passphrase === undefined)
      throw new ConfigError(`${file} is protected by a passphrase; pass --passphrase-file FILE.`);
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch (error) {
      throw new ConfigError(`The passphrase does not unlock ${file}.`, { cause: error });
    }
  }
  return { key, passphrase };
}

/** Write primary.asc, signing.asc and keys.asc (each by temp + rename; secrets 0600). */
async function writeKeys(
  openpgp: OpenPgp,
  dir: string,
  key: PrivateKey,
  passphrase: string | undefined,
  now: Date,
): Promise<KeysResult> {
  await ensureDir(dir, 0o700);
  await chmod(dir, 0o700);
  const locked = passphrase === undefined ? key : await openpgp.encryptKey({ privateKey: key, passphrase });
  const signing = await openpgp.readPrivateKey({ armoredKey: locked.armor() });
  (signing.keyPacket as import('openpgp').SecretKeyPacket).makeDummy();
  await atomicWriteFile(path.join(dir, KEYS_FILE), key.toPublic().armor());
  await atomicWriteFile(path.join(dir, SIGNING_FILE), signing.armor(), { mode: 0o600 });
  await atomicWriteFile(path.join(dir, PRIMARY_FILE), locked.armor(), { mode: 0o600 });
  return { dir, primary: lower(key), subkeys: await describeSubkeys(openpgp, key.toPublic(), now) };
}

async function describeSubkeys(openpgp: OpenPgp, key: import('openpgp').PublicKey, now: Date): Promise<SubkeyInfo[]> {
  const { enums } = openpgp;
  return Promise.all(
    key.getSubkeys().map(async (subkey: Subkey) => {
      const expires = await subkey.getExpirationTime().catch(() => null);
      const revocation = subkey.revocationSignatures[0];
      const revoked = await subkey.isRevoked(undefined as never, undefined as never, now).catch(() => false);
      const flag = revocation?.reasonForRevocationFlag;
      const reason = !revoked
        ? null
        : flag === enums.reasonForRevocation.keyCompromised
          ? 'compromised'
          : flag === enums.reasonForRevocation.keySuperseded
            ? 'superseded'
            : 'unspecified';
      const valid = await key.getSigningKey(subkey.getKeyID(), now).then(
        (k) => lower(k) === lower(subkey),
        () => false,
      );
      return {
        fingerprint: lower(subkey),
        created: subkey.getCreationTime().toISOString(),
        expires: expires instanceof Date ? expires.toISOString() : null,
        revoked: reason,
        valid,
      };
    }),
  );
}
