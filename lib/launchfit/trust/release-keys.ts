// Which keys a release may be signed with, and the revocations a host never forgets
// (docs/release.md): the pinned certify-only primary, the subkeys it bound in the update server's
// keys.asc, and every revocation seen, kept in .launchfit/keys.json.
// The whole story: docs/internals.md.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, VerificationError, messageOf } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import type { Timeouts } from '../../http/open-get.ts';
import type { LaunchConfig } from '../deploy-folder/config.ts';
import type { FetchFn } from '../update-server/requests.ts';
import { readPublicKeys, selectTrustedKeys, type RevokedKeys, type TrustedKeys } from './pgp.ts';
import { fetchServerKey, fetchServerKeyIfAny, KEYS_ASC_CACHE } from './server-key.ts';

type PublicKey = import('openpgp').PublicKey;

export const MEMORY_FILE = 'keys.json';

interface KeyMemory {
  /** This host has fetched keys.asc from its server: from now on a missing one is an error. */
  keysAscSeen?: boolean;
  revoked: RevokedKeys;
}

export interface ReleaseKeysContext {
  config: LaunchConfig;
  /** DIR/.launchfit */
  metaDir: string;
  timeouts: Timeouts;
  fetchImpl?: FetchFn;
  now?: Date;
}

async function readMemory(metaDir: string): Promise<KeyMemory> {
  try {
    const memory = JSON.parse(await readFile(path.join(metaDir, MEMORY_FILE), 'utf8')) as KeyMemory;
    if (memory && typeof memory.revoked === 'object' && memory.revoked) return memory;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { revoked: {} };
    // A damaged memory must not silently forget revocations.
    throw new ConfigError(
      `${path.join(metaDir, MEMORY_FILE)} (the revocations this host has seen) is unreadable: ` +
        `${messageOf(error)}. Restore it from a backup; deleting it forgets revoked keys.`,
      { cause: error },
    );
  }
  throw new ConfigError(
    `${path.join(metaDir, MEMORY_FILE)} (the revocations this host has seen) is damaged. Restore it from ` +
      `a backup; deleting it forgets revoked keys.`,
  );
}

async function writeMemory(metaDir: string, memory: KeyMemory): Promise<void> {
  await ensureDir(metaDir, 0o700);
  await atomicWriteFile(path.join(metaDir, MEMORY_FILE), `${JSON.stringify(memory, null, 2)}\n`, { mode: 0o600 });
}

const fingerprintOf = (k: { getFingerprint(): string }) => k.getFingerprint().toLowerCase();

/**
 * The revocations in `key` that its own primary signed (each checked alone, so one forged
 * revocation next to a real one is not counted): the primary's and its subkeys'.
 */
export async function verifiedRevocationsIn(key: PublicKey, now: Date): Promise<RevokedKeys> {
  const openpgp = await import('openpgp');
  const { enums } = openpgp;
  const reasonOf = (flag: number | null) =>
    flag === enums.reasonForRevocation.keyCompromised
      ? 'compromised'
      : flag === enums.reasonForRevocation.keySuperseded
        ? 'superseded'
        : flag === enums.reasonForRevocation.keyRetired
          ? 'retired'
          : 'unspecified';
  const primary = fingerprintOf(key);
  const found: RevokedKeys = {};
  const at = now.toISOString();
  if (key.revocationSignatures.length && (await key.isRevoked(undefined, undefined, now).catch(() => false))) {
    found[primary] = { primary, reason: reasonOf(key.revocationSignatures[0].reasonForRevocationFlag), seenAt: at };
  }
  for (const subkey of key.getSubkeys()) {
    for (const signature of subkey.revocationSignatures) {
      const alone = new openpgp.Subkey(subkey.keyPacket, key);
      alone.revocationSignatures = [signature];
      if (await alone.isRevoked(undefined as never, undefined as never, now).catch(() => false)) {
        found[fingerprintOf(subkey)] = {
          primary,
          reason: reasonOf(signature.reasonForRevocationFlag),
          revokedAt: signature.created?.toISOString(),
          seenAt: at,
        };
        break;
      }
    }
  }
  return found;
}

function serverOf(ctx: ReleaseKeysContext): string {
  if (!ctx.config.updates.server)
    throw new ConfigError(
      `${ctx.config.file}: updates.server is not set; give the update server's URL (launchfit deploy URL).`,
    );
  return ctx.config.updates.server;
}

/**
 * The server's release keys: keys.asc, else (never seen a keys.asc here) pubkey.asc. `required`
 * (pinned-fingerprint mode, where they are the only source of keys) makes their absence an error;
 * with a keyfile they are optional until a keys.asc has been seen.
 */
async function fetchCertificate(
  ctx: ReleaseKeysContext,
  memory: KeyMemory,
  required: boolean,
): Promise<{ bytes: Buffer; url: string } | undefined> {
  const opts = { metaDir: ctx.metaDir, timeouts: ctx.timeouts, fetchImpl: ctx.fetchImpl };
  const { keyUrl } = ctx.config.updates.gpg;
  if (keyUrl && required) return { bytes: await fetchServerKey(keyUrl, opts), url: keyUrl };
  const server = serverOf(ctx);
  const url = new URL('keys.asc', server).href;
  const bytes = await fetchServerKeyIfAny(url, { ...opts, cacheName: KEYS_ASC_CACHE });
  if (bytes) {
    memory.keysAscSeen = true;
    return { bytes, url };
  }
  if (memory.keysAscSeen) {
    throw new VerificationError(
      `${url} is missing, but this host has read it before; without it new subkeys and revocations cannot ` +
        `be checked. Publish keys.asc again (\`release publish\` writes it); the current release keeps running.`,
    );
  }
  const legacy = new URL('pubkey.asc', server).href;
  const old = await fetchServerKeyIfAny(legacy, opts);
  if (old) return { bytes: old, url: legacy };
  if (!required) return undefined;
  throw new VerificationError(
    `Neither ${url} nor ${legacy} is on the update server; publish with \`release publish\` (it writes ` +
      `keys.asc), or set updates.gpg.keyfile.`,
  );
}

/** Each local key with what the server's certificate of the same primary adds: subkeys it bound, revocations it signed. */
async function mergeSamePrimary(localKeys: PublicKey[], serverKeys: PublicKey[], now: Date): Promise<PublicKey[]> {
  return Promise.all(
    localKeys.map(async (local) => {
      let merged = local;
      for (const theirs of serverKeys.filter((k) => fingerprintOf(k) === fingerprintOf(local)))
        merged = await merged.update(theirs, now);
      return merged;
    }),
  );
}

/**
 * The keys a release may be signed with now, and every revocation this host has seen. In
 * keyfile mode the server's keys.asc is read too (when there is one), but only what the
 * keyfile's own primary signed counts.
 */
export async function loadReleaseKeys(ctx: ReleaseKeysContext): Promise<TrustedKeys> {
  const { gpg } = ctx.config.updates;
  const now = ctx.now ?? new Date();
  const memory = await readMemory(ctx.metaDir);
  const before = JSON.stringify(memory);
  let trusted: TrustedKeys;
  if (gpg.keyfile) {
    let data: Buffer;
    try {
      data = await readFile(gpg.keyfile);
    } catch (error) {
      throw new ConfigError(
        `${ctx.config.file}: updates.gpg.keyfile ${gpg.keyfile} cannot be read (${(error as NodeJS.ErrnoException).code}).`,
        { cause: error },
      );
    }
    let localKeys = await readPublicKeys(data, gpg.keyfile, { local: true });
    const certificate = ctx.config.updates.server ? await fetchCertificate(ctx, memory, false) : undefined;
    if (certificate)
      localKeys = await mergeSamePrimary(localKeys, await readPublicKeys(certificate.bytes, certificate.url), now);
    trusted = selectTrustedKeys({ localKeys, pin: gpg.pin });
  } else if (gpg.pin?.kind === 'fingerprint') {
    const certificate = (await fetchCertificate(ctx, memory, true))!;
    trusted = selectTrustedKeys({ serverKeys: await readPublicKeys(certificate.bytes, certificate.url), pin: gpg.pin });
  } else if (gpg.pin) {
    throw new ConfigError(
      `${ctx.config.file}: updates.gpg.key ${gpg.pin.value} is a key ID; a key fetched from the server is ` +
        `trusted only against a pinned full fingerprint. Set the full fingerprint, or updates.gpg.keyfile.`,
    );
  } else {
    return selectTrustedKeys({});
  }
  for (const { key } of trusted.keys) {
    for (const [fingerprint, record] of Object.entries(await verifiedRevocationsIn(key, now))) {
      if (!memory.revoked[fingerprint]) memory.revoked[fingerprint] = record;
    }
  }
  if (JSON.stringify(memory) !== before) await writeMemory(ctx.metaDir, memory);
  return { ...trusted, revoked: memory.revoked };
}
