// Status-page sessions (`ui: token`): a right token gets a cookie `ID.ISSUED.MAC` (not the token),
// a named user's password `ID.ISSUED.NAME.MAC`, MACed under a key derived from the token (and the
// user's stored hash), so a new token or password ends them and one session can be ended by its id.
// Each session has a CSRF token of its own. The whole story: docs/internals.md.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const COOKIE_NAME = 'shipkit_session';
export const SESSION_SECONDS = 7 * 24 * 3600;
/**
 * A cookie issued this far ahead of the server's clock is still taken: another process's clock,
 * rounding, or another hook-server of one database whose clock runs ahead (docs/ha.md).
 */
const CLOCK_SLACK_MS = 10 * 60_000;
const COOKIE_PATTERN = /^([A-Za-z0-9_-]{22})\.(\d{1,15})(?:\.([A-Za-z0-9][A-Za-z0-9_-]{0,63}))?\.([A-Za-z0-9_-]{43})$/;

/** A session a valid cookie stands for. Times in ms since the epoch. */
export interface Session {
  /** 22 characters of base64url: 128 random bits. */
  id: string;
  issued: number;
  /** When the cookie stops being taken: `issued` + the session's length. */
  expires: number;
  /** A named user's session (`ui_users:`); absent for a session of the read token. */
  user?: string;
}

/** A named user as a session is bound to it: the name, and the stored hash its MAC covers. */
export interface SessionUser {
  name: string;
  hash: string;
}

export interface SessionKeys {
  /** A cookie value for a new session (of `user`, when given), valid for `SESSION_SECONDS` from `now`. */
  issue(now?: Date, user?: SessionUser): string;
  /**
   * The session of a cookie value that `issue` made under this token and that has not expired;
   * undefined for anything else (forged, altered, expired, the previous `EXPIRY.MAC` format). A
   * named session needs `userOf` to give its user as it is now (gone or with a new password: none).
   * Whether the session was ended since is not its business (lib/web/ended-sessions.ts).
   */
  verify(
    value: string | undefined,
    now?: Date,
    userOf?: (name: string) => SessionUser | undefined,
  ): Session | undefined;
  /** The session's CSRF token: a form that changes something carries it (bound to the session id). */
  csrfToken(session: Pick<Session, 'id' | 'issued'>): string;
  /** `given` is the session's CSRF token (constant time, lengths not leaked). */
  csrfMatches(session: Pick<Session, 'id' | 'issued'>, given: string): boolean;
  /** The token given at the login form is the read token (constant time, lengths not leaked). */
  tokenMatches(given: string): boolean;
}

export function createSessionKeys(token: string, { seconds = SESSION_SECONDS } = {}): SessionKeys {
  // v2: cookies of the previous format (v1, `EXPIRY.MAC`) never verify, whatever their shape.
  const key = createHmac('sha256', token).update('shipkit status page session v2').digest();
  // Both sides MACed under a per-process key: equal-length buffers whatever was typed.
  const compareKey = randomBytes(32);
  const tokenMac = createHmac('sha256', compareKey).update(token).digest();
  // A token session's MAC covers `session.ID.ISSUED`; a user's `user.ID.ISSUED.NAME.HASH`: neither is the other.
  const mac = (id: string, issued: number, user?: SessionUser) =>
    createHmac('sha256', key)
      .update(user ? `user.${id}.${issued}.${user.name}.${user.hash}` : `session.${id}.${issued}`)
      .digest('base64url');
  const csrf = (session: Pick<Session, 'id' | 'issued'>) =>
    createHmac('sha256', key).update(`csrf.${session.id}.${session.issued}`).digest('base64url');
  return {
    issue(now = new Date(), user) {
      const id = randomBytes(16).toString('base64url');
      const issued = now.getTime();
      return `${id}.${issued}${user ? `.${user.name}` : ''}.${mac(id, issued, user)}`;
    },
    verify(value, now = new Date(), userOf) {
      const m = COOKIE_PATTERN.exec(value ?? '');
      if (!m) return undefined;
      const [, id, issuedText, name, given] = m;
      const user = name === undefined ? undefined : userOf?.(name);
      if (name !== undefined && user?.name !== name) return undefined;
      const issued = Number(issuedText);
      if (String(issued) !== issuedText) return undefined; // one spelling per session: no leading zeros
      const expires = issued + seconds * 1000;
      // Expired, or issued later than now (not one issued here).
      if (expires <= now.getTime() || issued > now.getTime() + CLOCK_SLACK_MS) return undefined;
      if (!timingSafeEqual(Buffer.from(mac(id, issued, user)), Buffer.from(given))) return undefined;
      return user ? { id, issued, expires, user: user.name } : { id, issued, expires };
    },
    csrfToken: csrf,
    csrfMatches(session, given) {
      const mine = createHmac('sha256', compareKey).update(csrf(session)).digest();
      return timingSafeEqual(createHmac('sha256', compareKey).update(given).digest(), mine);
    },
    tokenMatches(given) {
      return timingSafeEqual(createHmac('sha256', compareKey).update(given).digest(), tokenMac);
    },
  };
}

/** One cookie's value from a Cookie header; undefined when absent (or present twice). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  const values = (header ?? '')
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p.startsWith(`${name}=`))
    .map((p) => p.slice(name.length + 1));
  return values.length === 1 ? values[0] : undefined;
}

/** `path`: where the pages are served (`/`, or `public_url:`'s path behind a proxy, plain segments). */
export function sessionCookie(
  value: string,
  { secure, maxAge = SESSION_SECONDS, path = '/' }: { secure: boolean; maxAge?: number; path?: string },
): string {
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
