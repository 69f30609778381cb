// The update server's release keys (keys.asc, or pubkey.asc from an older publisher; trusted
// only against a pinned fingerprint or a keyfile's primary), fetched conditionally: the last copy
// and its validators (ETag, Last-Modified) are kept in .launchfit/server-key.json (pubkey.asc,
// key_url) or .launchfit/keys-asc.json (keys.asc), so an idle poll costs a 304 instead of the key.
// The copy is only a cache of what the server said: trust is decided on every check.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { RemoteError, VerificationError } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import { fetchSmall, type FetchFn } from '../update-server/requests.ts';
import type { Timeouts } from '../../http/open-get.ts';

export const MAX_KEY_BYTES = 1024 * 1024;
const CACHE_NAME = 'server-key.json';
/** Where the copy of keys.asc is kept: apart from pubkey.asc's, so the two do not evict each other. */
export const KEYS_ASC_CACHE = 'keys-asc.json';

interface CachedKey {
  url: string;
  etag?: string;
  lastModified?: string;
  key: string;
}

async function readCachedKey(file: string, url: string): Promise<CachedKey | undefined> {
  try {
    const cached = JSON.parse(await readFile(file, 'utf8')) as CachedKey;
    const valid =
      cached.url === url &&
      typeof cached.key === 'string' &&
      (typeof cached.etag === 'string' || typeof cached.lastModified === 'string');
    return valid ? cached : undefined;
  } catch {
    return undefined; // none yet, or damaged: fetch unconditionally
  }
}

interface FetchKeyOptions {
  metaDir: string;
  timeouts: Timeouts;
  fetchImpl?: FetchFn;
  cacheName?: string;
}

/** The bytes of the key at `url`: from the server, or from the cached copy when it answers 304. */
export async function fetchServerKey(url: string, opts: FetchKeyOptions): Promise<Buffer> {
  const key = await fetchServerKeyIfAny(url, opts);
  if (!key)
    throw new VerificationError(
      `The signing key ${url} is not on the update server; publish it there or set updates.gpg.keyfile.`,
    );
  return key;
}

/** As fetchServerKey, but undefined when the server has no such file (404). */
export async function fetchServerKeyIfAny(
  url: string,
  { metaDir, timeouts, fetchImpl, cacheName = CACHE_NAME }: FetchKeyOptions,
): Promise<Buffer | undefined> {
  const file = path.join(metaDir, cacheName);
  const cached = await readCachedKey(file, url);
  const res = await fetchSmall(url, {
    maxBytes: MAX_KEY_BYTES,
    etag: cached?.etag,
    lastModified: cached?.lastModified,
    timeouts,
    fetchImpl,
  });
  if (res.status === 'missing') {
    await rm(file, { force: true });
    return undefined;
  }
  if (res.status === 'not-modified') {
    if (!cached)
      throw new RemoteError(
        `${url} answered 304 Not Modified to a request for a key launchfit does not have; check the update server.`,
      );
    return Buffer.from(cached.key, 'base64');
  }
  if (res.etag || res.lastModified) {
    await ensureDir(metaDir, 0o700);
    const entry: CachedKey = { url, etag: res.etag, lastModified: res.lastModified, key: res.body.toString('base64') };
    await atomicWriteFile(file, JSON.stringify(entry), { mode: 0o600 });
  } else {
    await rm(file, { force: true });
  }
  return res.body;
}
