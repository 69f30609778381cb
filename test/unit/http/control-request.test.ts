// The signed control protocol parser shared by slave-activate --serve and launchfit's listener.
import type { IncomingMessage } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePrefix, readControlRequest, routeUnderPrefix } from '../../../lib/http/control-request.ts';
import { createRequestVerifier, signRequest } from '../../../lib/http/signing.ts';

const SECRET = 'control-secret-0123456789';
const req = (method: string, url: string, headers: Record<string, string> = {}) =>
  ({
    method,
    url,
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])),
  }) as unknown as IncomingMessage;
// Signed when its test runs, not when the file loads: a unit batch loads every file first, and on a
// busy machine the signature's timestamp would be outside the allowed window by then.
const signedReq =
  (url: string, method = 'GET') =>
  () =>
    req(method, url, signRequest(SECRET, method, url));
const unsigned = (request: IncomingMessage) => () => request;

const cases: Array<[string, () => IncomingMessage, boolean, unknown]> = [
  ['activate', signedReq('/?repo=site'), false, { kind: 'activate', repo: 'site', wait: false }],
  ['activate and wait', signedReq('/?repo=site&wait=1'), false, { kind: 'activate', repo: 'site', wait: true }],
  ['status', signedReq('/status'), false, { kind: 'status' }],
  [
    'owner/name where allowed',
    signedReq('/?repo=octo%2Fsite'),
    true,
    { kind: 'activate', repo: 'octo/site', wait: false },
  ],
];
for (const [label, request, allowOwner, expected] of cases) {
  test(label, () =>
    assert.equal(readControlRequest(request(), { verifier: createRequestVerifier(SECRET), allowOwner }), expected),
  );
}

const refusals: Array<[string, () => IncomingMessage, number, string, boolean?]> = [
  ['POST', signedReq('/?repo=site', 'POST'), 405, 'method not allowed'],
  ['unsigned', unsigned(req('GET', '/?repo=site')), 401, 'unauthorized'],
  [
    'signed for another repo',
    () => req('GET', '/?repo=site', signRequest(SECRET, 'GET', '/?repo=other')),
    401,
    'unauthorized',
  ],
  ['long target', signedReq(`/?repo=site&x=${'a'.repeat(5000)}`), 414, 'URI too long'],
  ['unknown path', signedReq('/etc/passwd'), 404, 'not found'],
  ['no repo', signedReq('/'), 400, 'missing repo'],
  ['two repos', signedReq('/?repo=a&repo=b'), 400, 'give one repo'],
  ['traversal', signedReq('/?repo=%2e%2e%2f'), 400, 'invalid repo name'],
  ['NUL', signedReq('/?repo=x%00'), 400, 'invalid repo name'],
  ['look-alike', signedReq(`/?repo=${encodeURIComponent('\u0455ite')}`), 400, 'invalid repo name'],
  ['owner/name where not allowed', signedReq('/?repo=octo%2Fsite'), 400, 'invalid repo name'],
  ['a/b/c even where owners are allowed', signedReq('/?repo=a%2Fb%2Fc'), 400, 'invalid repo name', true],
];
for (const [label, request, status, error, allowOwner] of refusals) {
  test(`refused: ${label}`, () => {
    const result = readControlRequest(request(), { verifier: createRequestVerifier(SECRET), allowOwner });
    assert.is(result.kind, 'refused');
    assert.is((result as { status: number }).status, status);
    assert.is((result as { error: string }).error, error);
  });
}

test('without a verifier (--insecure) unsigned requests pass', () => {
  assert.equal(readControlRequest(req('GET', '/?repo=site'), {}), { kind: 'activate', repo: 'site', wait: false });
});

test('under a prefix: routed without it; signed with it, whether a proxy stripped it or not', () => {
  const cases: Array<[string, { route: string; signed: string[] }]> = [
    ['/hooks/slave/?repo=a', { route: '/?repo=a', signed: ['/hooks/slave/?repo=a'] }],
    ['/hooks/slave?repo=a', { route: '/?repo=a', signed: ['/hooks/slave?repo=a'] }],
    ['/hooks/slave/status', { route: '/status', signed: ['/hooks/slave/status'] }],
    ['/hooks/slave', { route: '/', signed: ['/hooks/slave'] }],
    ['/?repo=a', { route: '/?repo=a', signed: ['/?repo=a', '/hooks/slave/?repo=a'] }],
    [
      '/hooks/slavery/?repo=a',
      { route: '/hooks/slavery/?repo=a', signed: ['/hooks/slavery/?repo=a', '/hooks/slave/hooks/slavery/?repo=a'] },
    ],
  ];
  for (const [target, expected] of cases) assert.equal(routeUnderPrefix(target, '/hooks/slave'), expected, target);
  assert.equal(routeUnderPrefix('/?repo=a', ''), { route: '/?repo=a', signed: ['/?repo=a'] });
  const verifier = createRequestVerifier(SECRET);
  const stripped = req('GET', '/?repo=site', signRequest(SECRET, 'GET', '/hooks/slave/?repo=site'));
  assert.equal(readControlRequest(stripped, { verifier, prefix: '/hooks/slave' }), {
    kind: 'activate',
    repo: 'site',
    wait: false,
  });
  const unprefixed = req('GET', '/?repo=site', signRequest(SECRET, 'GET', '/hooks/slave/?repo=site'));
  assert.is(
    readControlRequest(unprefixed, { verifier: createRequestVerifier(SECRET) }).kind,
    'refused',
    'without a prefix the prefixed signature does not match',
  );
});

test('parsePrefix: a plain path or nothing', () => {
  assert.is(parsePrefix(''), '');
  assert.is(parsePrefix('/'), '');
  assert.is(parsePrefix('/hooks/slave/'), '/hooks/slave');
  for (const bad of ['hooks', '/a/../b', '/a/./b', '/a b', '/a?x', '/a//b', '/é'])
    assert.throws(() => parsePrefix(bad), /Invalid prefix/, bad);
});

test.run();
