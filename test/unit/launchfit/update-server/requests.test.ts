// Download and extraction against a real loopback HTTP server: conditional polls (304),
// streamed downloads with hash and byte caps, connect/idle timeouts, Range resume, and the
// strict extractor with hand-made hostile archives.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { extractRelease } from '../../../../lib/launchfit/install/extract.ts';
import { downloadToFile, fetchSmall } from '../../../../lib/launchfit/update-server/requests.ts';
import { tmpDir } from '../../../_helpers/common.ts';
import { makeBomb, makeTarGz } from '../../../fixtures/launchfit/tarball.ts';
import { startUpdateServer, type UpdateServer } from '../../../fixtures/launchfit/update-server.ts';

let root: string;
let server: UpdateServer;
const big = Buffer.alloc(3 * 1024 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
const bigSha = createHash('sha256').update(big).digest('hex');
const quick = { connectMs: 2000, idleMs: 800, totalMs: 20_000 };

test.before(async () => {
  root = tmpDir();
  writeFileSync(path.join(root, 'VERSION'), 'CURRENT 1.0 app-1.0.tar.gz\n');
  writeFileSync(path.join(root, 'big.bin'), big);
  server = await startUpdateServer(root);
});
test.after(() => server.close());

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a rejection matching ${pattern}`);
}

test('fetchSmall: conditional GET answered 304 when unchanged', async () => {
  const first = await fetchSmall(`${server.url}VERSION`, { maxBytes: 1024 });
  assert.is(first.status, 'ok');
  const etag = (first as { etag?: string }).etag;
  assert.ok(etag);
  const again = await fetchSmall(`${server.url}VERSION`, { maxBytes: 1024, etag });
  assert.is(again.status, 'not-modified');
  assert.is(server.requests.at(-1)!.ifNoneMatch, etag);
  assert.is((await fetchSmall(`${server.url}nope`, { maxBytes: 1024 })).status, 'missing');
});

test('fetchSmall: with an ETag, If-None-Match alone (a server weighing both would 304 a same-second change)', async () => {
  const seen: Array<Record<string, string | undefined>> = [];
  const local = http.createServer((req, res) => {
    seen.push({ inm: req.headers['if-none-match'], ims: req.headers['if-modified-since'] });
    // As s3rver does: If-Modified-Since weighed on its own, whatever If-None-Match said.
    if (req.headers['if-modified-since']) res.writeHead(304).end();
    else res.writeHead(200, { etag: '"new"' }).end('CURRENT 1.1\n');
  });
  await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(local.address() as AddressInfo).port}/VERSION`;
    const lastModified = new Date().toUTCString();
    const got = await fetchSmall(url, { etag: '"old"', lastModified, maxBytes: 1024, timeouts: quick });
    assert.is(got.status, 'ok', 'the changed VERSION, not a 304');
    const none = await fetchSmall(url, { lastModified, maxBytes: 1024, timeouts: quick });
    assert.is(none.status, 'not-modified', 'without an ETag, If-Modified-Since');
    assert.equal(seen, [
      { inm: '"old"', ims: undefined },
      { inm: undefined, ims: lastModified },
    ]);
  } finally {
    await new Promise<void>((resolve) => local.close(() => resolve()));
  }
});

test('fetchSmall: a body over the cap is refused (declared or streamed)', async () => {
  await rejects(() => fetchSmall(`${server.url}big.bin`, { maxBytes: 1024 }), /more than the 1024 allowed/);
  server.overrides.set('chunked', (_req, res) => {
    res.writeHead(200);
    res.write(Buffer.alloc(800));
    res.end(Buffer.alloc(800));
    return true;
  });
  await rejects(() => fetchSmall(`${server.url}chunked`, { maxBytes: 1024 }), /more than the 1024 bytes allowed/);
});

test('downloadToFile: streams to disk and hashes', async () => {
  const dest = path.join(tmpDir(), 'big.bin');
  const r = await downloadToFile(`${server.url}big.bin`, dest, {
    maxBytes: 10 * 1024 * 1024,
    expectedSize: big.length,
    timeouts: quick,
  });
  assert.is(r.size, big.length);
  assert.is(r.sha256, bigSha);
  assert.ok(readFileSync(dest).equals(big));
  assert.not.ok(existsSync(`${dest}.part`));
});

test('downloadToFile: more than SIZE is refused and nothing is kept', async () => {
  const dir = tmpDir();
  await rejects(
    () =>
      downloadToFile(`${server.url}big.bin`, path.join(dir, 'a'), {
        maxBytes: 1e9,
        expectedSize: 1000,
        timeouts: quick,
      }),
    /more than the 1000 allowed by SIZE/,
  );
  server.overrides.set('endless', (_req, res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write(Buffer.alloc(64 * 1024)), 1);
    res.on('close', () => clearInterval(timer));
    return true;
  });
  await rejects(
    () => downloadToFile(`${server.url}endless`, path.join(dir, 'b'), { maxBytes: 1024 * 1024, timeouts: quick }),
    /sent more than the 1048576 bytes allowed/,
  );
  assert.equal(readdirSync(dir), []);
});

test('downloadToFile: a stalled body times out, and the next try resumes with Range', async () => {
  const dir = tmpDir();
  const dest = path.join(dir, 'big.bin');
  const etag = '"fixed-etag"';
  server.overrides.set('resumable', (req, res) => {
    if (req.headers.range) {
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range)![1]);
      assert.is(req.headers['if-range'], etag);
      res.writeHead(206, {
        ETag: etag,
        'Content-Length': big.length - start,
        'Content-Range': `bytes ${start}-${big.length - 1}/${big.length}`,
      });
      res.end(big.subarray(start));
    } else {
      res.writeHead(200, { ETag: etag, 'Content-Length': big.length });
      res.write(big.subarray(0, 1024 * 1024)); // then stall
    }
    return true;
  });
  await rejects(
    () => downloadToFile(`${server.url}resumable`, dest, { maxBytes: 1e9, expectedSize: big.length, timeouts: quick }),
    /the body stalled for 0\.8 s/,
  );
  assert.ok(statSync(`${dest}.part`).size > 0);
  const r = await downloadToFile(`${server.url}resumable`, dest, {
    maxBytes: 1e9,
    expectedSize: big.length,
    timeouts: quick,
  });
  assert.ok(r.resumedFrom > 0);
  assert.is(r.sha256, bigSha);
  assert.ok(readFileSync(dest).equals(big));
});

test('downloadToFile: a server that never answers hits the connect timeout', async () => {
  const silent = http.createServer(() => {
    /* never answers */
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const port = (silent.address() as AddressInfo).port;
    await rejects(
      () =>
        downloadToFile(`http://127.0.0.1:${port}/x`, path.join(tmpDir(), 'x'), {
          maxBytes: 1e6,
          timeouts: { connectMs: 500, idleMs: 500, totalMs: 5000 },
        }),
      /no answer within 0\.5 s/,
    );
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
});

const limits = { maxUnpackedBytes: 50 * 1024 * 1024, maxRatio: 100, ratioGraceBytes: 1024 * 1024, maxEntries: 1000 };

test('extractRelease: strips one top-level folder, keeps links inside, drops setuid bits', async () => {
  const dir = tmpDir();
  const tgz = path.join(dir, 'r.tgz');
  writeFileSync(
    tgz,
    makeTarGz([
      { path: 'my-app-1.0/', type: 'dir' },
      { path: 'my-app-1.0/server.js', body: 'ok', mode: 0o4755 },
      { path: 'my-app-1.0/bin/', type: 'dir' },
      { path: 'my-app-1.0/bin/start', type: 'symlink', linkpath: '../server.js' },
    ]),
  );
  const out = await extractRelease(tgz, path.join(dir, 'work'), limits);
  assert.is(path.basename(out), 'my-app-1.0');
  assert.is(readFileSync(path.join(out, 'bin/start'), 'utf8'), 'ok');
  assert.is(statSync(path.join(out, 'server.js')).mode & 0o7777, 0o755);
  // Files at the root are kept as they are.
  writeFileSync(
    tgz,
    makeTarGz([
      { path: 'server.js', body: 'x' },
      { path: 'lib/', type: 'dir' },
    ]),
  );
  const flat = await extractRelease(tgz, path.join(dir, 'work2'), limits);
  assert.equal(readdirSync(flat).sort(), ['lib', 'server.js']);
});

test('extractRelease: hostile archives are refused and nothing is left', async () => {
  const dir = tmpDir();
  const outside = path.join(dir, 'outside');
  mkdirSync(outside);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['dotdot', makeTarGz([{ path: 'a/../../outside/x', body: 'x' }]), /contains "\.\."/],
    ['absolute', makeTarGz([{ path: `${outside}/x`, body: 'x' }]), /absolute path/],
    [
      'symlink out',
      makeTarGz([
        { path: 'link', type: 'symlink', linkpath: '../../outside' },
        { path: 'link/x', body: 'x' },
      ]),
      /outside the release/,
    ],
    [
      'symlink out after strip',
      makeTarGz([
        { path: 'top/', type: 'dir' },
        { path: 'top/l', type: 'symlink', linkpath: '../sibling' },
      ]),
      /links outside the release/,
    ],
    ['hardlink out', makeTarGz([{ path: 'h', type: 'hardlink', linkpath: '../outside/x' }]), /outside the release/],
    ['block device', makeTarGz([{ path: 'sda', type: 'blockdev' }]), /BlockDevice/],
    ['fifo', makeTarGz([{ path: 'p', type: 'fifo' }]), /FIFO/],
    ['bomb', makeBomb(40), /inflates more than 100 times/],
    ['not gzip', Buffer.from('plain text, not an archive'), /not valid gzip|unpacked/],
  ];
  for (const [label, bytes, pattern] of cases) {
    const tgz = path.join(dir, `${label}.tgz`);
    writeFileSync(tgz, bytes);
    const work = path.join(dir, `work-${label.replace(/\s/g, '-')}`);
    await rejects(() => extractRelease(tgz, work, limits), pattern);
    assert.not.ok(existsSync(work), `${label}: work folder removed`);
  }
  assert.equal(readdirSync(outside), []);
  assert.not.ok(lstatSync(dir).isSymbolicLink());
});

test('extractRelease: the unpacked-size cap', async () => {
  const dir = tmpDir();
  const tgz = path.join(dir, 'big.tgz');
  writeFileSync(tgz, makeTarGz([{ path: 'a.bin', body: big }]));
  await rejects(
    () => extractRelease(tgz, path.join(dir, 'w'), { ...limits, maxUnpackedBytes: 1024 * 1024 }),
    /unpacks to more than 1048576 bytes/,
  );
});

test.run();
