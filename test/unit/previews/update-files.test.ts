// The previews' update-file server (lib/previews/update-files.ts): only SLUG/pr-N/updates/FILE
// under DATA/previews/ is served, never through `..` (plain or encoded), an absolute path or a
// symbolic link; conditional GETs answer 304, one Range 206; the port is kept for the next start.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  UPDATE_FILES_PORT_FILE,
  previewUpdatesUrl,
  startUpdateFiles,
  updateFileOf,
  type UpdateFilesServer,
} from '../../../lib/previews/update-files.ts';
import { tmpDir } from '../../_helpers/common.ts';

let data: string;
let outside: string;
let server: UpdateFilesServer;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with the path sent exactly as given (no normalisation of `..`). */
function ask(pathname: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path: pathname, method, headers, agent: false });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.before(async () => {
  data = tmpDir('shipkit-update-files-');
  outside = tmpDir('shipkit-update-files-out-');
  const updates = path.join(data, 'octo__site', 'pr-7', 'updates');
  mkdirSync(updates, { recursive: true });
  writeFileSync(path.join(updates, 'VERSION'), 'CURRENT 1.2 pr-7-gnu-linux-1.2.tar.gz\n');
  writeFileSync(path.join(updates, 'pr-7-gnu-linux-1.2.tar.gz'), '0123456789');
  mkdirSync(path.join(data, 'key'));
  writeFileSync(path.join(data, 'key', 'passphrase'), 'secret\n');
  writeFileSync(path.join(outside, 'secret.txt'), 'outside\n');
  symlinkSync(path.join(outside, 'secret.txt'), path.join(updates, 'linked'));
  symlinkSync(path.join(data, 'key', 'passphrase'), path.join(updates, 'passphrase'));
  // A preview folder that is a link out of DATA/previews/.
  mkdirSync(path.join(outside, 'pr-8', 'updates'), { recursive: true });
  writeFileSync(path.join(outside, 'pr-8', 'updates', 'VERSION'), 'outside\n');
  symlinkSync(path.join(outside, 'pr-8'), path.join(data, 'octo__site', 'pr-8'));
  server = await startUpdateFiles(data);
});

test.after(async () => {
  await server?.close();
});

test('a release file is served, with an ETag; HEAD has no body', async () => {
  const got = await ask('/octo__site/pr-7/updates/VERSION');
  assert.is(got.status, 200);
  assert.is(got.body, 'CURRENT 1.2 pr-7-gnu-linux-1.2.tar.gz\n');
  assert.ok(got.headers.etag, 'an ETag');
  const head = await ask('/octo__site/pr-7/updates/VERSION', {}, 'HEAD');
  assert.is(head.status, 200);
  assert.is(head.body, '');
  assert.is(head.headers['content-length'], String(got.body.length));
  assert.is((await ask('/octo__site/pr-7/updates/VERSION', {}, 'POST')).status, 405);
  assert.is(server.urlFor('octo__site', 'pr-7'), `${server.url}/octo__site/pr-7/updates/`);
  assert.is(previewUpdatesUrl('http://127.0.0.1:1/', 'a__b', 'pr-1'), 'http://127.0.0.1:1/a__b/pr-1/updates/');
});

test('If-None-Match with the ETag answers 304; a changed file a new ETag', async () => {
  const first = await ask('/octo__site/pr-7/updates/VERSION');
  const etag = String(first.headers.etag);
  const again = await ask('/octo__site/pr-7/updates/VERSION', { 'if-none-match': etag });
  assert.is(again.status, 304);
  assert.is(again.body, '');
  assert.is((await ask('/octo__site/pr-7/updates/VERSION', { 'if-none-match': '"other"' })).status, 200);
  const file = path.join(data, 'octo__site', 'pr-7', 'updates', 'VERSION');
  const tmp = `${file}.new`;
  writeFileSync(tmp, 'CURRENT 1.3 pr-7-gnu-linux-1.3.tar.gz\n');
  (await import('node:fs')).renameSync(tmp, file); // as the publisher replaces it
  const changed = await ask('/octo__site/pr-7/updates/VERSION', { 'if-none-match': etag });
  assert.is(changed.status, 200);
  assert.is.not(changed.headers.etag, etag);
  assert.is(changed.body, readFileSync(file, 'utf8'));
});

test('one Range is answered 206; an unsatisfiable one 416; If-Range with an old ETag the whole file', async () => {
  const file = '/octo__site/pr-7/updates/pr-7-gnu-linux-1.2.tar.gz';
  const part = await ask(file, { range: 'bytes=2-5' });
  assert.is(part.status, 206);
  assert.is(part.body, '2345');
  assert.is(part.headers['content-range'], 'bytes 2-5/10');
  assert.is((await ask(file, { range: 'bytes=7-' })).body, '789');
  assert.is((await ask(file, { range: 'bytes=-3' })).body, '789');
  assert.is((await ask(file, { range: 'bytes=10-' })).status, 416);
  const whole = await ask(file, { range: 'bytes=2-5', 'if-range': '"old"' });
  assert.is(whole.status, 200);
  assert.is(whole.body, '0123456789');
});

test('nothing outside SLUG/pr-N/updates/FILE: .., encoded .., absolute, links out, listings → 404', async () => {
  const refused = [
    '/octo__site/pr-7/updates/../../../key/passphrase',
    '/octo__site/pr-7/updates/..%2f..%2f..%2fkey%2fpassphrase',
    '/octo__site/pr-7/updates/%2e%2e',
    '/octo__site/pr-7/%2e%2e/pr-7/updates/VERSION',
    '/%2e%2e/previews/octo__site/pr-7/updates/VERSION',
    '/..%2Fkey/pr-7/updates/passphrase',
    `/${encodeURIComponent(path.join(data, 'key', 'passphrase'))}`,
    `//${data.slice(1)}/key/passphrase`,
    '/etc/passwd',
    '/key/passphrase',
    `/${UPDATE_FILES_PORT_FILE}`,
    '/octo__site/pr-7/updates/',
    '/octo__site/pr-7/updates',
    '/octo__site/pr-7/',
    '/',
    '/octo__site/pr-7/updates/linked',
    '/octo__site/pr-7/updates/passphrase',
    '/octo__site/pr-8/updates/VERSION',
    '/octo__site/pr-07/updates/VERSION',
    '/octo__site/pr-7/updates/.VERSION',
    '/octo__site/pr-7/updates/VERSION/x',
    '/octo__site/pr-7/updates/%ZZ',
    '/octo__site/pr-7/updates/VERSION%00',
  ];
  for (const p of refused) {
    const got = await ask(p);
    assert.is(got.status, 404, `${p} answered ${got.status}: ${got.body}`);
    assert.not.match(got.body, /secret|outside/);
  }
  assert.is(updateFileOf('/d', '/a/pr-1/updates/%2e%2e'), undefined);
  assert.is(updateFileOf('/d', '/a/pr-1/updates/VERSION'), '/d/a/pr-1/updates/VERSION');
});

test('the port is kept for the next start; when it is taken another is used, and said', async () => {
  const portFile = path.join(data, UPDATE_FILES_PORT_FILE);
  assert.is(Number(readFileSync(portFile, 'utf8')), server.port);
  const first = server.port;
  await server.close();
  server = await startUpdateFiles(data);
  assert.is(server.port, first, 'the same port again');
  assert.is(server.movedFrom, undefined);
  await server.close();
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(first, '127.0.0.1', () => resolve()));
  try {
    server = await startUpdateFiles(data);
    assert.is.not(server.port, first);
    assert.is(server.movedFrom, first);
    assert.is(Number(readFileSync(portFile, 'utf8')), server.port);
    assert.is((await ask('/octo__site/pr-7/updates/pr-7-gnu-linux-1.2.tar.gz')).status, 200);
  } finally {
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
  }
});

test.run();
