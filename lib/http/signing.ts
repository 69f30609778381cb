// Request signing for control requests (docs/design.md#request-signing):
//   X-Shipkit-Signature: sha256=HEX(HMAC-SHA256(secret, METHOD "\n" PATH_AND_QUERY "\n" TIMESTAMP "\n" NONCE))
// A request with a body (POST /fleet/reports, /fleet/rollouts) signs one more line: "\n" hex(sha256(body)).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readSecretFile } from '../core/secrets.ts';

export const TIMESTAMP_HEADER = 'x-shipkit-timestamp';
export const NONCE_HEADER = 'x-shipkit-nonce';
export const SIGNATURE_HEADER = 'x-shipkit-signature';
export const DEFAULT_WINDOW_SEC = 300;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

export function hmacSha256Hex(secret: string | Buffer, data: string | Buffer): string {
  return createHmac('sha256', secret).update(data).digest('hex');
}

/** Constant-time comparison of two strings (a length mismatch is also answered in constant time). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  // Compare against itself when lengths differ, so timing does not depend on where they differ.
  if (x.length !== y.length) {
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

export function canonicalRequest(
  method: string,
  pathAndQuery: string,
  timestamp: string,
  nonce: string,
  bodySha256?: string,
): string {
  const head = `${method.toUpperCase()}\n${pathAndQuery}\n${timestamp}\n${nonce}`;
  return bodySha256 === undefined ? head : `${head}\n${bodySha256}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface SignOptions {
  now?: () => number;
  nonce?: string;
  /** The request's body: its sha256 is signed too (the five-line form). */
  body?: string | Uint8Array;
}

// Nonces are drawn from a block of random bytes taken 256 nonces at a time (one call into the
// CSPRNG instead of one per request, for a fan-out to hundreds of hosts); each 16 bytes are used once.
let nonceBlock = Buffer.alloc(0);
let nonceAt = 0;
function freshNonce(): string {
  if (nonceAt + 16 > nonceBlock.length) {
    nonceBlock = randomBytes(16 * 256);
    nonceAt = 0;
  }
  nonceAt += 16;
  return nonceBlock.toString('hex', nonceAt - 16, nonceAt);
}

export function signRequest(
  secret: string,
  method: string,
  pathAndQuery: string,
  { now = Date.now, nonce, body }: SignOptions = {},
): Record<string, string> {
  const timestamp = String(Math.floor(now() / 1000));
  const n = nonce ?? freshNonce();
  const signature = hmacSha256Hex(
    secret,
    canonicalRequest(method, pathAndQuery, timestamp, n, body === undefined ? undefined : sha256Hex(body)),
  );
  return {
    'X-Shipkit-Timestamp': timestamp,
    'X-Shipkit-Nonce': n,
    'X-Shipkit-Signature': `sha256=${signature}`,
  };
}

/** `secret`: which of the secrets tried signed it (0 = the verifier's own, or the first of `secrets`). */
export type Verdict = { ok: true; secret: number } | { ok: false; reason: string };
type HeaderBag = Record<string, string | string[] | undefined>;

export interface VerifierOptions {
  windowSec?: number;
  now?: () => number;
  /** Upper bound on remembered nonces, so a flood cannot grow memory without limit. */
  maxNonces?: number;
}

/** Checks signed requests against a secret and remembers their nonces while they could be replayed. */
export interface RequestVerifier {
  verify(
    method: string,
    pathAndQuery: string | readonly string[],
    headers: HeaderBag,
    options?: { bodySha256?: string; secrets?: readonly string[] },
  ): Verdict;
}

export function createRequestVerifier(
  secret: string,
  { windowSec = DEFAULT_WINDOW_SEC, now = Date.now, maxNonces = 100_000 }: VerifierOptions = {},
): RequestVerifier {
  const seen = new Map<string, number>(); // nonce → expiry (ms), in insertion order

  function forgetExpired(at: number) {
    for (const [nonce, expiry] of seen) {
      if (expiry > at && seen.size <= maxNonces) break;
      seen.delete(nonce);
    }
  }

  /**
   * `pathAndQuery` may list the forms the sender may have signed (a listener behind a proxy that
   * strips its prefix accepts the path with and without it); each is compared in constant time.
   * A request with a body passes `bodySha256` (hex sha256 of the bytes received). `secrets`, when
   * given, are tried instead of the verifier's own (a host's credentials, old and new), sharing
   * its memory of nonces.
   */
  function verify(
    method: string,
    pathAndQuery: string | readonly string[],
    headers: HeaderBag,
    { bodySha256, secrets = [secret] }: { bodySha256?: string; secrets?: readonly string[] } = {},
  ): Verdict {
    const timestamp = single(headers[TIMESTAMP_HEADER]);
    const nonce = single(headers[NONCE_HEADER]);
    const signature = single(headers[SIGNATURE_HEADER]);
    if (!timestamp || !nonce || !signature) return { ok: false, reason: 'missing signature headers' };
    if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' };
    if (!NONCE_PATTERN.test(nonce)) return { ok: false, reason: 'malformed nonce' };
    const match = /^sha256=([0-9a-f]{64})$/.exec(signature);
    if (!match) return { ok: false, reason: 'malformed signature' };
    let matched = -1;
    for (const [index, key] of secrets.entries()) {
      for (const signedPath of typeof pathAndQuery === 'string' ? [pathAndQuery] : pathAndQuery) {
        const equal = safeEqual(
          hmacSha256Hex(key, canonicalRequest(method, signedPath, timestamp, nonce, bodySha256)),
          match[1],
        );
        if (equal && matched === -1) matched = index;
      }
    }
    if (matched === -1) return { ok: false, reason: 'wrong signature' };
    const at = now();
    if (Math.abs(at / 1000 - Number(timestamp)) > windowSec)
      return { ok: false, reason: 'timestamp outside the allowed window' };
    forgetExpired(at);
    if (seen.has(nonce)) return { ok: false, reason: 'replayed nonce' };
    // Remember until the timestamp can no longer be accepted.
    seen.set(nonce, (Number(timestamp) + windowSec) * 1000 + 1000);
    return { ok: true, secret: matched };
  }

  return { verify };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
}

export interface SecretSource {
  secretFile?: string;
  env?: NodeJS.ProcessEnv;
  envName?: string;
}

/** The shared secret from `--secret-file`, else $SHIPKIT_SECRET; undefined when neither is set. */
export async function loadSecret({
  secretFile,
  env = process.env,
  envName = 'SHIPKIT_SECRET',
}: SecretSource): Promise<string | undefined> {
  if (secretFile) return readSecretFile(secretFile);
  const value = env[envName];
  return value ? value : undefined;
}
