// The downloads stage's HTTP side (lib/stages/download-fetch.ts): redirects follow the shared rule
// of lib/http/download.ts, so an https URL redirected to plain http is refused, not fetched. The fetch
// is handed in because an https server on loopback would need a trusted certificate here.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { fetchToFile } from '../../../lib/stages/download-fetch.ts';
import { tmpDir } from '../../_helpers/common.ts';

function fakeFetch(routes: Record<string, () => Response>, asked: string[]): typeof fetch {
  return (async (input: string | URL | Request) => {
    const url = String(input instanceof Request ? input.url : input);
    asked.push(url);
    const route = routes[url];
    return route ? route() : new Response('not found', { status: 404 });
  }) as typeof fetch;
}

test('an https → http redirect is refused and the http URL is never asked; https → https is followed', async () => {
  const asked: string[] = [];
  const fetch = fakeFetch(
    {
      'https://cdn.example/a.png': () =>
        new Response(null, { status: 302, headers: { Location: 'http://cdn.example/a.png' } }),
      'http://cdn.example/a.png': () => new Response('evil'),
      'https://cdn.example/b.png': () =>
        new Response(null, { status: 301, headers: { Location: 'https://mirror.example/b.png#x' } }),
      'https://mirror.example/b.png': () => new Response('good'),
    },
    asked,
  );
  const dir = tmpDir();
  const temp = path.join(dir, 'a.tmp');
  const refused = await fetchToFile('https://cdn.example/a.png', {}, temp, {
    fetch,
    retries: 0,
    log: silentLogger,
  }).catch((e: Error) => e);
  assert.instance(refused, Error);
  assert.match(
    (refused as Error).message,
    /redirected from https to plain http \(http:\/\/cdn\.example\); refusing the downgrade/,
  );
  assert.equal(asked, ['https://cdn.example/a.png']);
  assert.not.ok(existsSync(temp));
  const got = await fetchToFile('https://cdn.example/b.png', {}, path.join(dir, 'b.tmp'), {
    fetch,
    retries: 0,
    log: silentLogger,
  });
  assert.is(got.size, 4);
  assert.equal(asked.slice(1), ['https://cdn.example/b.png', 'https://mirror.example/b.png']);
});

test.run();
