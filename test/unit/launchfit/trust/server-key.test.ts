// The update server's key, fetched conditionally against a real loopback server: the first
// fetch keeps a copy, later ones send If-None-Match (or If-Modified-Since where the server has
// no ETags) and a 304 gives the copy back; a changed key is fetched again; a 304 to a request
// that had nothing to be conditional on, and a damaged copy, are handled.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fetchServerKey } from '../../../../lib/launchfit/trust/server-key.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { startUpdateServer, type UpdateServer } from '../../../fixtures/launchfit/update-server.ts';

let root: string;
let server: UpdateServer;
const timeouts = { connectMs: 2000, idleMs: 2000, totalMs: 10_000 };

test.before(async () => {
  root = tmpDir();
  server = await startUpdateServer(root);
});
test.after(() => server.close());

const keyRequests = (mark: number) => server.requests.slice(mark).filter((q) => q.path === 'pubkey.asc');

test('ETag: one 200, then 304s that return the kept copy; a new key is fetched again', async () => {
  const metaDir = tmpDir();
  writeFileSync(path.join(root, 'pubkey.asc'), 'key one');
  const url = `${server.url}pubkey.asc`;
  const mark = server.requests.length;
  assert.is((await fetchServerKey(url, { metaDir, timeouts })).toString(), 'key one');
  assert.is((await fetchServerKey(url, { metaDir, timeouts })).toString(), 'key one');
  assert.is((await fetchServerKey(url, { metaDir, timeouts })).toString(), 'key one');
  assert.equal(
    keyRequests(mark).map((q) => q.status),
    [200, 304, 304],
  );
  assert.ok(keyRequests(mark)[1].ifNoneMatch);
  writeFileSync(path.join(root, 'pubkey.asc'), 'key two, longer');
  assert.is((await fetchServerKey(url, { metaDir, timeouts })).toString(), 'key two, longer');
  assert.is(keyRequests(mark)[3].status, 200);
  // A copy kept for another URL is not used for this one.
  assert.is((await fetchServerKey(`${server.url}pubkey.asc?other`, { metaDir, timeouts })).length > 0, true);
  assert.is(keyRequests(mark)[4].ifNoneMatch, undefined);
});

test('Last-Modified only: If-Modified-Since, and 304 gives the kept copy', async () => {
  const metaDir = tmpDir();
  const modified = 'Sat, 21 Nov 2026 10:00:00 GMT';
  const seen: Array<string | undefined> = [];
  server.overrides.set('lm.asc', (req, res) => {
    seen.push(req.headers['if-modified-since']);
    if (req.headers['if-modified-since'] === modified) res.writeHead(304).end();
    else res.writeHead(200, { 'Last-Modified': modified }).end('dated key');
    return true;
  });
  const url = `${server.url}lm.asc`;
  assert.is((await fetchServerKey(url, { metaDir, timeouts })).toString(), 'dated key');
  assert.is((await fetchServerKey(url, { metaDir, timeouts })).toString(), 'dated key');
  assert.equal(seen, [undefined, modified]);
});

test('no validators: nothing kept, every fetch is plain; a 304 to a plain request is an error', async () => {
  const metaDir = tmpDir();
  server.overrides.set('plain.asc', (_req, res) => {
    res.writeHead(200).end('plain key');
    return true;
  });
  assert.is((await fetchServerKey(`${server.url}plain.asc`, { metaDir, timeouts })).toString(), 'plain key');
  assert.not.ok(existsSync(path.join(metaDir, 'server-key.json')));
  server.overrides.set('liar.asc', (_req, res) => {
    res.writeHead(304).end();
    return true;
  });
  try {
    await fetchServerKey(`${server.url}liar.asc`, { metaDir, timeouts });
    assert.unreachable('a 304 without a kept copy was accepted');
  } catch (error) {
    assert.match((error as Error).message, /answered 304 Not Modified to a request for a key launchfit does not have/);
  }
  try {
    await fetchServerKey(`${server.url}missing.asc`, { metaDir, timeouts });
    assert.unreachable('a missing key was accepted');
  } catch (error) {
    assert.match((error as Error).message, /is not on the update server/);
  }
});

test('a damaged copy is ignored: the key is fetched unconditionally and the copy rewritten', async () => {
  const metaDir = tmpDir();
  writeFileSync(path.join(root, 'pubkey.asc'), 'key three');
  writeFileSync(path.join(metaDir, 'server-key.json'), '{"url": "trunc');
  const mark = server.requests.length;
  assert.is((await fetchServerKey(`${server.url}pubkey.asc`, { metaDir, timeouts })).toString(), 'key three');
  assert.is(keyRequests(mark)[0].ifNoneMatch, undefined);
  assert.is(JSON.parse(readFileSync(path.join(metaDir, 'server-key.json'), 'utf8')).url, `${server.url}pubkey.asc`);
});

test.run();
