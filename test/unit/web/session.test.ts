// Session cookies and the login limiter: a cookie is `ID.ISSUED.MAC` under a key derived from the
// token, never the token; forged, altered, expired, other-token and previous-format cookies are
// refused; the limiter is bounded. (Ending a session: ended-sessions.test.ts.)
import { createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  clearedCookie,
  cookieValue,
  createLoginLimiter,
  createSessionKeys,
  SESSION_SECONDS,
  sessionCookie,
} from '../../../lib/web/session.ts';

const TOKEN = 'the-read-token-0123456789';
const AT = new Date('2026-11-22T12:00:00Z');

/** A cookie as the previous release made it (`EXPIRY.MAC`, key label v1): valid then, for a week from `at`. */
function previousFormatCookie(token: string, at: Date): string {
  const key = createHmac('sha256', token).update('shipkit status page session v1').digest();
  const expiry = Math.floor(at.getTime() / 1000) + SESSION_SECONDS;
  return `${expiry}.${createHmac('sha256', key).update(`session.${expiry}`).digest('base64url')}`;
}

test('a session cookie is a random id, its issue time and a MAC; it verifies until it expires, and is not the token', () => {
  const keys = createSessionKeys(TOKEN);
  const value = keys.issue(AT);
  assert.not.match(value, TOKEN);
  assert.match(value, /^[A-Za-z0-9_-]{22}\.\d{13}\.[A-Za-z0-9_-]{43}$/);
  const session = keys.verify(value, AT)!;
  assert.equal(session, {
    id: value.split('.')[0],
    issued: AT.getTime(),
    expires: AT.getTime() + SESSION_SECONDS * 1000,
  });
  assert.ok(keys.verify(value, new Date(AT.getTime() + SESSION_SECONDS * 1000 - 1)), 'the last millisecond');
  assert.is(keys.verify(value, new Date(AT.getTime() + SESSION_SECONDS * 1000)), undefined, 'expired');
  const ids = new Set(Array.from({ length: 100 }, () => keys.verify(keys.issue(AT), AT)!.id));
  assert.is(ids.size, 100, 'each login its own session id');
});

test('forged cookies are refused: altered id, issue time or MAC, another token, a later clock, made-up shapes', () => {
  const keys = createSessionKeys(TOKEN);
  const [id, issued, mac] = keys.issue(AT).split('.');
  const flip = (text: string) => `${text.slice(0, -1)}${text.endsWith('A') ? 'B' : 'A'}`;
  const forged = {
    'id altered': `${flip(id)}.${issued}.${mac}`,
    'issued a day later': `${id}.${Number(issued) + 86_400_000}.${mac}`,
    'issued a millisecond earlier': `${id}.${Number(issued) - 1}.${mac}`,
    'issued with a leading zero': `${id}.0${issued}.${mac}`,
    'MAC altered': `${id}.${issued}.${flip(mac)}`,
    'another token': createSessionKeys('another token').issue(AT),
    'issued in the future (an hour ahead)': createSessionKeys(TOKEN).issue(new Date(AT.getTime() + 3_600_000)),
    'the token itself': TOKEN,
    empty: '',
    'two parts': `${id}.${mac}`,
    'a part more': `${id}.${issued}.${mac}.x`,
  };
  for (const [what, value] of Object.entries(forged)) assert.is(keys.verify(value, AT), undefined, what);
  assert.is(keys.verify(undefined, AT), undefined);
  // A cookie issued a few seconds or minutes ahead (another clock, another node's) is still taken.
  assert.ok(keys.verify(keys.issue(new Date(AT.getTime() + 30_000)), AT));
  assert.ok(keys.verify(keys.issue(new Date(AT.getTime() + 5 * 60_000)), AT), 'a node 5 minutes ahead');
  assert.not.ok(keys.verify(keys.issue(new Date(AT.getTime() + 11 * 60_000)), AT), 'past the 10 minutes allowed');
});

test('a cookie of the previous format (EXPIRY.MAC) is refused, also when its MAC was right then', () => {
  const old = previousFormatCookie(TOKEN, AT);
  assert.match(old, /^\d+\.[A-Za-z0-9_-]{43}$/, 'made as the previous release did');
  assert.is(createSessionKeys(TOKEN).verify(old, AT), undefined);
  // Nor any re-spelling of its parts in the new shape.
  const [expiry, mac] = old.split('.');
  assert.is(createSessionKeys(TOKEN).verify(`${'A'.repeat(22)}.${expiry}000.${mac}`, AT), undefined);
});

test('tokenMatches: the token only (not a prefix, not longer)', () => {
  const keys = createSessionKeys(TOKEN);
  assert.ok(keys.tokenMatches(TOKEN));
  for (const wrong of ['', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()])
    assert.not.ok(keys.tokenMatches(wrong), wrong);
});

test('cookie header parsing and the Set-Cookie flags', () => {
  assert.is(cookieValue('a=1; shipkit_session=abc; b=2', 'shipkit_session'), 'abc');
  assert.is(cookieValue('shipkit_session=a; shipkit_session=b', 'shipkit_session'), undefined, 'two values: neither');
  assert.is(cookieValue(undefined, 'shipkit_session'), undefined);
  assert.is(
    sessionCookie('v', { secure: true }),
    `shipkit_session=v; Path=/; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict; Secure`,
  );
  assert.not.match(sessionCookie('v', { secure: false }), 'Secure');
  assert.is(
    sessionCookie('v', { secure: false, path: '/ci' }),
    `shipkit_session=v; Path=/ci; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict`,
  );
  assert.is(
    clearedCookie({ secure: true, path: '/ci' }),
    'shipkit_session=; Path=/ci; Max-Age=0; HttpOnly; SameSite=Strict; Secure',
  );
  assert.is(clearedCookie({ secure: false }), 'shipkit_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict');
});

test('limiter: 5 failures per window, then blocked with the seconds left; success clears; memory bounded', () => {
  const limiter = createLoginLimiter({ failures: 5, windowMs: 60_000, maxClients: 100 });
  const t0 = 1_000_000;
  for (let i = 0; i < 4; i++) limiter.fail('1.2.3.4', t0 + i);
  assert.is(limiter.blockedFor('1.2.3.4', t0 + 10), 0);
  limiter.fail('1.2.3.4', t0 + 10);
  assert.is(limiter.blockedFor('1.2.3.4', t0 + 10), 60);
  assert.is(limiter.blockedFor('5.6.7.8', t0 + 10), 0, 'per client');
  assert.is(limiter.blockedFor('1.2.3.4', t0 + 60_000), 0, 'the window ends');
  limiter.fail('9.9.9.9', t0);
  limiter.succeed('9.9.9.9');
  assert.is(limiter.size(), 0);
  for (let i = 0; i < 10_000; i++) limiter.fail(`10.0.${i >> 8}.${i & 255}`, t0 + i);
  assert.ok(limiter.size() <= 100, `bounded: ${limiter.size()}`);
});

test("a named user's cookie carries the name under the MAC; a new password, a user removed or a renamed cookie ends it", () => {
  const keys = createSessionKeys(TOKEN);
  const alice = { name: 'alice', hash: 'scrypt$15$8$1$salt-one$hash' };
  const users = new Map([['alice', alice]]);
  const value = keys.issue(AT, alice);
  assert.match(value, /^[A-Za-z0-9_-]{22}\.\d{13}\.alice\.[A-Za-z0-9_-]{43}$/);
  const session = keys.verify(value, AT, (name) => users.get(name))!;
  assert.equal(session, { id: value.split('.')[0], issued: AT.getTime(), expires: session.expires, user: 'alice' });
  assert.is(keys.verify(value, AT), undefined, 'no user lookup: no named session');
  assert.is(
    keys.verify(value, AT, () => undefined),
    undefined,
    'the user removed from the file',
  );
  assert.is(
    keys.verify(value, AT, () => ({ ...alice, hash: 'scrypt$15$8$1$salt-two$hash' })),
    undefined,
    'a new password',
  );
  const [id, issued, , mac] = value.split('.');
  users.set('mallory', { name: 'mallory', hash: alice.hash });
  assert.is(
    keys.verify(`${id}.${issued}.mallory.${mac}`, AT, (n) => users.get(n)),
    undefined,
    'the name swapped',
  );
  assert.is(
    keys.verify(`${id}.${issued}.${mac}`, AT, (n) => users.get(n)),
    undefined,
    'the name dropped',
  );
  const tokenSession = keys.issue(AT);
  const [tid, tissued, tmac] = tokenSession.split('.');
  assert.is(
    keys.verify(`${tid}.${tissued}.alice.${tmac}`, AT, (n) => users.get(n)),
    undefined,
    'a name added',
  );
});

test('a CSRF token is bound to its session: another session, another token, or a guess does not match', () => {
  const keys = createSessionKeys(TOKEN);
  const one = keys.verify(keys.issue(AT), AT)!;
  const two = keys.verify(keys.issue(AT), AT)!;
  const token = keys.csrfToken(one);
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.is(keys.csrfToken(one), token, 'the same for the life of the session');
  assert.ok(keys.csrfMatches(one, token));
  assert.not.ok(keys.csrfMatches(two, token), "another session's");
  assert.not.ok(keys.csrfMatches(one, keys.csrfToken(two)));
  assert.not.ok(createSessionKeys('another token').csrfMatches(one, token), 'under another read token');
  for (const guess of ['', 'x', token.slice(0, -1), `${token}x`, token.toUpperCase()])
    assert.not.ok(keys.csrfMatches(one, guess), JSON.stringify(guess));
  assert.not.match(token, one.id, 'not the session id');
});

test.run();
