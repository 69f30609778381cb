// One GET sent and its headers awaited (lib/http/open-get.ts), with a fetch handed in: redirects
// resolved by hand (https never to http, a loop refused) and credentials never carried to another
// origin, the rules every streamed download and small request of the updater rely on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openGet, redirectTarget, TransferError, type TransferFailure } from '../../../lib/http/open-get.ts';

const quick = { connectMs: 500, idleMs: 300 };

function answering(make: (headers: Headers) => Response): typeof fetch {
  return (async (_url: string | URL | Request, init?: RequestInit) => make(new Headers(init?.headers))) as typeof fetch;
}

async function failsWith(kind: TransferFailure, run: () => Promise<unknown>): Promise<TransferError> {
  try {
    await run();
  } catch (error) {
    assert.instance(error, TransferError);
    assert.is((error as TransferError).kind, kind);
    return error as TransferError;
  }
  throw new Error(`expected a ${kind} TransferError`);
}

test('redirectTarget: relative and same-scheme redirects resolve; https → http, other schemes and no Location are refused', () => {
  assert.is(redirectTarget('https://u.example/app/VERSION', '/mirror/VERSION#x'), 'https://u.example/mirror/VERSION');
  assert.is(redirectTarget('http://u.example/VERSION', 'https://cdn.example/VERSION'), 'https://cdn.example/VERSION');
  assert.is(redirectTarget('http://u.example/VERSION', 'http://cdn.example/VERSION'), 'http://cdn.example/VERSION');
  const refused: Array<[string, string | null, RegExp]> = [
    [
      'https://u.example/VERSION',
      'http://u.example/VERSION',
      /redirected from https to plain http \(http:\/\/u\.example\); refusing the downgrade/,
    ],
    ['https://u.example/VERSION', 'HTTP://evil.example/VERSION', /refusing the downgrade/],
    ['https://u.example/VERSION', 'file:///etc/passwd', /redirected to a file: URL; refusing it/],
    ['https://u.example/VERSION', null, /answered 302 without a Location header/],
    ['https://u.example/VERSION', 'http://[bad', /invalid Location/],
  ];
  for (const [from, to, pattern] of refused) {
    assert.throws(
      () => redirectTarget(from, to),
      (e: unknown) => e instanceof TransferError && e.kind === 'bad-redirect' && pattern.test(e.message),
      `${from} -> ${to}`,
    );
  }
});

test('openGet follows redirects by hand: https → https is followed, https → http is refused before it is requested', async () => {
  const asked: string[] = [];
  const hops: Record<string, Response> = {};
  const fetchHops = (async (url: string | URL | Request, init?: RequestInit) => {
    asked.push(String(url));
    assert.is(init?.redirect, 'manual', 'redirects are never left to fetch');
    return hops[String(url)] ?? new Response('VERSION body');
  }) as typeof fetch;
  hops['https://u.example/VERSION'] = new Response(null, {
    status: 302,
    headers: { location: 'https://mirror.example/VERSION' },
  });
  const get = await openGet('https://u.example/VERSION', { timeouts: quick, fetch: fetchHops });
  get.done();
  assert.equal(asked, ['https://u.example/VERSION', 'https://mirror.example/VERSION']);

  asked.length = 0;
  hops['https://u.example/VERSION'] = new Response(null, {
    status: 301,
    headers: { location: 'http://u.example/VERSION' },
  });
  const error = await failsWith('bad-redirect', () =>
    openGet('https://u.example/VERSION', { timeouts: quick, fetch: fetchHops }),
  );
  assert.match(error.message, /from https to plain http/);
  assert.equal(asked, ['https://u.example/VERSION'], 'the http URL was never requested');

  asked.length = 0;
  const loop = (async (url: string | URL | Request) => {
    asked.push(String(url));
    return new Response(null, { status: 307, headers: { location: '/again' } });
  }) as typeof fetch;
  await failsWith('bad-redirect', () => openGet('https://u.example/VERSION', { timeouts: quick, fetch: loop }));
  assert.is(asked.length, 6, 'a redirect loop stops after 5 redirects');
});

test('a redirect to another origin drops Authorization and Cookie; one within the origin keeps them', async () => {
  const seen: Array<[string, Record<string, string>]> = [];
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    seen.push([url, { ...(init?.headers as Record<string, string>) }]);
    if (url === 'https://a.example/one') return new Response(null, { status: 302, headers: { location: '/two' } });
    if (url === 'https://a.example/two')
      return new Response(null, { status: 307, headers: { location: 'https://b.example/three' } });
    return new Response('ok');
  }) as typeof fetch;
  const got = await openGet('https://a.example/one', {
    timeouts: quick,
    fetch: fetchImpl,
    headers: { Authorization: 'Bearer s3cret', cookie: 'k=v', 'if-none-match': '"e"' },
  });
  got.done();
  assert.equal(
    seen.map(([url, h]) => [url, h.Authorization, h.cookie, h['if-none-match']]),
    [
      ['https://a.example/one', 'Bearer s3cret', 'k=v', '"e"'],
      ['https://a.example/two', 'Bearer s3cret', 'k=v', '"e"'],
      ['https://b.example/three', undefined, undefined, '"e"'],
    ],
  );
});

test.run();
