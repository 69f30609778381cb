// leanFetch (lib/http/lean-fetch.ts) is the runtime's fetch after one V8 flag: requests against a
// real loopback server go and come back as with fetch (method, headers, body, status), and a
// refused connection fails as fetch fails. What the flag saves is measured in bench:delta (the
// memory of an up-to-date `launchfit update`), not asserted here.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { leanFetch } from '../../../lib/http/lean-fetch.ts';

test('a GET and a POST go and come back as with fetch; a refused connection fails as fetch does', async () => {
  const seen: Array<[string | undefined, string | undefined, string]> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push([req.method, req.headers['x-test'] as string | undefined, body]);
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'x-answer': 'yes' }).end(`got ${body.length}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const get = await leanFetch(url, { headers: { 'x-test': 'a' } });
    assert.equal([get.status, get.headers.get('x-answer'), await get.text()], [200, 'yes', 'got 0']);
    const post = await leanFetch(url, { method: 'POST', body: 'hello', headers: { 'x-test': 'b' } });
    assert.equal([post.status, await post.text()], [201, 'got 5']);
    assert.equal(seen, [
      ['GET', 'a', ''],
      ['POST', 'b', 'hello'],
    ]);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const refused = await leanFetch(url).then(
    () => undefined,
    (error: Error) => error,
  );
  assert.instance(refused, TypeError, 'as fetch: a TypeError whose cause says why');
});

test.run();
