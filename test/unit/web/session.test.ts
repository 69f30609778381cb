// Session cookies and the login limiter: a cookie is the token's MAC of an expiry, never the
// token; forged, altered, expired and other-token cookies are refused; the limiter is bounded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { clearedCookie, cookieValue, createLoginLimiter, createSessionKeys, SESSION_SECONDS, sessionCookie } from '../../../lib/web/session.ts';

const TOKEN = 'the-read-token-0123456789';

test('a session cookie verifies until it expires, and is not the token', () => {
  const keys = createSessionKeys(TOKEN);
  const at = new Date('2026-11-22T12:00:00Z');
  const value = keys.issue(at);
  assert.not.match(value, TOKEN);
  assert.match(value, /^\d+\.[A-Za-z0-9_-]{43}$/);
  assert.ok(keys.verify(value, at));
  assert.ok(keys.verify(value, new Date(at.getTime() + (SESSION_SECONDS - 1) * 1000)));
  assert.not.ok(keys.verify(value, new Date(at.getTime() + SESSION_SECONDS * 1000)), 'expired');
});

test('forged cookies are refused: altered expiry or MAC, another token, made-up shapes', () => {
  const keys = createSessionKeys(TOKEN);
  const at = new Date('2026-11-22T12:00:00Z');
  const [expiry, mac] = keys.issue(at).split('.');
  const far = Number(expiry) + 365 * 24 * 3600;
  const flipped = `${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`;
  for (const forged of [`${far}.${mac}`, `${expiry}.${flipped}`, createSessionKeys('another token').issue(at), TOKEN, '', 'x.y', `${expiry}.${mac}.x`, `${far}.${createSessionKeys(TOKEN, { seconds: 400 * 24 * 3600 }).issue(at).split('.')[1]}`]) {
    assert.not.ok(keys.verify(forged, at), forged);
  }
  assert.not.ok(keys.verify(undefined, at));
});

test('tokenMatches: the token only (not a prefix, not longer)', () => {
  const keys = createSessionKeys(TOKEN);
  assert.ok(keys.tokenMatches(TOKEN));
  for (const wrong of ['', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()]) assert.not.ok(keys.tokenMatches(wrong), wrong);
});

test('cookie header parsing and the Set-Cookie flags', () => {
  assert.is(cookieValue('a=1; shipkit_session=abc; b=2', 'shipkit_session'), 'abc');
  assert.is(cookieValue('shipkit_session=a; shipkit_session=b', 'shipkit_session'), undefined, 'two values: neither');
  assert.is(cookieValue(undefined, 'shipkit_session'), undefined);
  assert.is(sessionCookie('v', { secure: true }), `shipkit_session=v; Path=/; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict; Secure`);
  assert.not.match(sessionCookie('v', { secure: false }), 'Secure');
  assert.is(sessionCookie('v', { secure: false, path: '/ci' }), `shipkit_session=v; Path=/ci; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict`);
  assert.is(clearedCookie({ secure: true, path: '/ci' }), 'shipkit_session=; Path=/ci; Max-Age=0; HttpOnly; SameSite=Strict; Secure');
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

test.run();
