// Status-page sessions (`ui: token`): the login form checks the read token, and a right one gets
// a cookie that is not the token but `EXPIRY.MAC`, a MAC of the expiry under a key derived from
// the token. Nothing is stored on the server; changing the token ends every session. Wrong
// tokens are counted per client address and refused for a while past a few (bounded memory).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const COOKIE_NAME = 'shipkit_session';
export const SESSION_SECONDS = 7 * 24 * 3600;

export interface SessionKeys {
  /** A cookie value for a new session, valid for `SESSION_SECONDS` from `now`. */
  issue(now?: Date): string;
  /** Whether a cookie value is one `issue` made and has not expired. */
  verify(value: string | undefined, now?: Date): boolean;
  /** The token given at the login form is the read token (constant time, lengths not leaked). */
  tokenMatches(given: string): boolean;
}

export function createSessionKeys(token: string, { seconds = SESSION_SECONDS } = {}): SessionKeys {
  const key = createHmac('sha256', token).update('shipkit status page session v1').digest();
  // Both sides MACed under a per-process key: equal-length buffers whatever was typed.
  const compareKey = randomBytes(32);
  const tokenMac = createHmac('sha256', compareKey).update(token).digest();
  const mac = (expiry: number) => createHmac('sha256', key).update(`session.${expiry}`).digest('base64url');
  return {
    issue(now = new Date()) {
      const expiry = Math.floor(now.getTime() / 1000) + seconds;
      return `${expiry}.${mac(expiry)}`;
    },
    verify(value, now = new Date()) {
      const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value ?? '');
      if (!m) return false;
      const expiry = Number(m[1]);
      const nowSeconds = now.getTime() / 1000;
      // Expired, or further ahead than a session lasts (not one issued here).
      if (expiry <= nowSeconds || expiry > nowSeconds + seconds + 60) return false;
      return timingSafeEqual(Buffer.from(mac(expiry)), Buffer.from(m[2]));
    },
    tokenMatches(given) {
      return timingSafeEqual(createHmac('sha256', compareKey).update(given).digest(), tokenMac);
    },
  };
}

/** One cookie's value from a Cookie header; undefined when absent (or present twice). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  const values = (header ?? '').split(';').map((p) => p.trim()).filter((p) => p.startsWith(`${name}=`)).map((p) => p.slice(name.length + 1));
  return values.length === 1 ? values[0] : undefined;
}

/** `path`: where the pages are served (`/`, or `public_url:`'s path behind a proxy, plain segments). */
export function sessionCookie(value: string, { secure, maxAge = SESSION_SECONDS, path = '/' }: { secure: boolean; maxAge?: number; path?: string }): string {
  return `${COOKIE_NAME}=${value}; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function clearedCookie({ secure, path }: { secure: boolean; path?: string }): string {
  return sessionCookie('', { secure, maxAge: 0, path });
}

export interface LoginLimiter {
  /** Seconds until this client may try again, or 0 when it may try now. */
  blockedFor(client: string, now?: number): number;
  fail(client: string, now?: number): void;
  succeed(client: string): void;
  /** Clients tracked now (bounded by `maxClients`). */
  size(): number;
}

/**
 * At most `failures` wrong tokens per client address in `windowMs`; then every attempt from it,
 * right token or not, is refused until the window ends (else the refusals would tell a guess
 * apart). At most `maxClients` addresses are remembered: the oldest is forgotten first.
 */
export function createLoginLimiter({ failures = 5, windowMs = 60_000, maxClients = 10_000 } = {}): LoginLimiter {
  const clients = new Map<string, { count: number; since: number }>();
  const current = (client: string, now: number) => {
    const entry = clients.get(client);
    if (entry && now - entry.since >= windowMs) {
      clients.delete(client);
      return undefined;
    }
    return entry;
  };
  return {
    blockedFor(client, now = Date.now()) {
      const entry = current(client, now);
      return entry && entry.count >= failures ? Math.max(1, Math.ceil((entry.since + windowMs - now) / 1000)) : 0;
    },
    fail(client, now = Date.now()) {
      const entry = current(client, now);
      if (entry) return void entry.count++;
      if (clients.size >= maxClients) {
        for (const [key, value] of clients) if (now - value.since >= windowMs) clients.delete(key);
        if (clients.size >= maxClients) clients.delete(clients.keys().next().value!);
      }
      clients.set(client, { count: 1, since: now });
    },
    succeed(client) {
      clients.delete(client);
    },
    size: () => clients.size,
  };
}
