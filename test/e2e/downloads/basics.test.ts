// @deno
// The downloads script against a loopback HTTP server this test controls: ETag/Last-Modified,
// 304, 500, slow, truncated and over-long bodies, resets, redirects, and hostile manifests.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closedPort, runScript, tmpDir } from '../../_helpers/common.ts';

// ---- the server -------------------------------------------------------------------------
const versions = new Map<string, string>(); // /f/NAME → body
const hits = new Map<string, number>(); // path → requests
let notModified = 0;
let resetMode = false;
const LAST_MODIFIED = 'Wed, 21 Oct 2026 07:28:00 GMT';
const openSockets = new Set<import('node:net').Socket>();

const server = http.createServer((req, res) => {
  const url = new URL(req.url!, 'http://x');
  const p = decodeURIComponent(url.pathname);
  hits.set(p, (hits.get(p) ?? 0) + 1);
  const raw = (head: string, body: string) => {
    req.socket.write(`HTTP/1.1 ${head}\r\nConnection: close\r\n\r\n${body}`);
    req.socket.end();
  };
  if (p.startsWith('/f/')) {
    const body = versions.get(p) ?? `body of ${p}\n`;
    const etag = `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"`;
    if (resetMode && p === '/f/resettable') {
      req.socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length + 1000}\r\n\r\n${body.slice(0, 5)}`);
      setTimeout(() => req.socket.resetAndDestroy(), 20);
      return;
    }
    if (req.headers['if-none-match'] === etag) {
      notModified++;
      res.writeHead(304, { etag });
      return res.end();
    }
    res.writeHead(200, { etag, 'last-modified': LAST_MODIFIED, 'content-length': Buffer.byteLength(body) });
    return res.end(body);
  }
  if (p === '/nolen') {
    res.writeHead(200);
    res.write('chunk1-');
    return res.end('chunk2');
  }
  if (p === '/flaky') {
    if (hits.get(p)! <= 2) {
      res.writeHead(503);
      return res.end('busy');
    }
    res.writeHead(200, { 'content-length': 6 });
    return res.end('flaky\n');
  }
  if (p === '/always500') {
    res.writeHead(500);
    return res.end('oops');
  }
  if (p === '/missing') {
    res.writeHead(404);
    return res.end('nope');
  }
  if (p === '/short') return raw('200 OK\r\nContent-Length: 100', 'x'.repeat(20));
  if (p === '/long') return raw('200 OK\r\nContent-Length: 10', 'y'.repeat(30));
  if (p === '/reset') {
    req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial');
    setTimeout(() => req.socket.resetAndDestroy(), 20);
    return;
  }
  if (p === '/hang') return; // never answers: the response-header timeout
  if (p === '/slow') {
    res.writeHead(200, { 'content-length': 100 });
    res.write('tick');
    return;
  }
  if (p === '/loop') {
    res.writeHead(302, { location: '/loop' });
    return res.end();
  }
  if (p === '/to-ftp') {
    res.writeHead(301, { location: 'ftp://127.0.0.1/x' });
    return res.end();
  }
  if (p === '/bad-location') {
    res.writeHead(302, { location: 'http://[not-a-host' });
    return res.end();
  }
  const hop = /^\/hop\/(\d+)$/.exec(p);
  if (hop) {
    const n = Number(hop[1]);
    res.writeHead(n > 0 ? 307 : 302, { location: n > 0 ? `/hop/${n - 1}` : '/f/after-hops' });
    return res.end();
  }
  res.writeHead(404);
  res.end();
});
server.on('connection', (socket) => {
  openSockets.add(socket);
  socket.on('close', () => openSockets.delete(socket));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

// ---- helpers -----------------------------------------------------------------------------
function workspace(manifest: string): string {
  const dir = tmpDir('shipkit-dl-');
  writeFileSync(path.join(dir, 'manifest.txt'), manifest);
  return dir;
}
function run(cwd: string, ...args: string[]) {
  const defaults = [
    ['--retries', '2'],
    ['--timeout', '2'],
  ]
    .filter(([flag]) => !args.includes(flag))
    .flat();
  // Generous: the 10,000-line manifest under Deno on a loaded 2-core machine took over 60 s once.
  return runScript('downloads', [...defaults, ...args], { cwd, timeoutMs: 240_000 });
}
const read = (dir: string, rel: string) => readFileSync(path.join(dir, 'downloads', rel), 'utf8');
const record = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'downloads', '.downloads.json'), 'utf8'));
const leftovers = (dir: string) =>
  readdirSync(path.join(dir, 'downloads')).filter((n) => n.startsWith('.downloads.') && n !== '.downloads.json');

// ---- tests -------------------------------------------------------------------------------
test('first run fetches, second run fetches nothing, --refresh sends conditional requests', async () => {
  const dir = workspace(
    [
      '# assets for the site',
      `${base}/f/logo.png img/logo.png`,
      `${base}/f/readme#1 docs/read me (draft).txt`,
      `${base}/f/ünï.txt ünïcødé/名前.txt`,
      `${base}/hop/3 after/hops.txt`,
      `${base}/nolen no-length.txt`,
      '',
    ].join('\n'),
  );
  const first = await run(dir);
  assert.is(first.exitCode, 0, first.stderr);
  assert.match(first.stdout, /5 fetched, 0 unchanged, 0 failed/);
  assert.is(read(dir, 'img/logo.png'), 'body of /f/logo.png\n');
  assert.is(read(dir, 'docs/read me (draft).txt'), 'body of /f/readme\n');
  assert.is(read(dir, 'ünïcødé/名前.txt'), 'body of /f/ünï.txt\n');
  assert.is(read(dir, 'after/hops.txt'), 'body of /f/after-hops\n');
  assert.is(read(dir, 'no-length.txt'), 'chunk1-chunk2');
  const rec = record(dir).files['docs/read me (draft).txt'];
  assert.is(rec.url, `${base}/f/readme`);
  assert.is(rec.tag, '1');
  assert.is(rec.size, 'body of /f/readme\n'.length);
  assert.is(rec.sha256, createHash('sha256').update('body of /f/readme\n').digest('hex'));
  assert.match(rec.etag, /^"[0-9a-f]{16}"$/);
  assert.is(rec.lastModified, LAST_MODIFIED);
  assert.equal(leftovers(dir), []);

  const before = hits.get('/f/logo.png');
  const second = await run(dir);
  assert.is(second.exitCode, 0, second.stderr);
  assert.match(second.stdout, /0 fetched, 5 unchanged, 0 failed/);
  assert.is(hits.get('/f/logo.png'), before, 'an unchanged entry is not requested again');

  versions.set('/f/logo.png', 'a new logo\n');
  const n304 = notModified;
  const refresh = await run(dir, '--refresh', '--json');
  assert.is(refresh.exitCode, 0, refresh.stderr);
  const result = JSON.parse(refresh.stdout);
  // logo changed; nolen has no validators (fetched again, same bytes → unchanged);
  // readme, ünï and after-hops answer 304.
  assert.equal([result.fetched, result.unchanged, result.failed], [1, 4, 0]);
  assert.is(notModified - n304, 3, 'three 304 answers');
  assert.is(read(dir, 'img/logo.png'), 'a new logo\n');
  assert.equal(result.files.find((f: { dest: string }) => f.dest === 'img/logo.png').status, 'fetched');
});

test('a changed tag moves the previous file to old/ and fetches the new one', async () => {
  const dir = workspace(`${base}/f/app.js#1 js/app.min.js\n`);
  versions.set('/f/app.js', 'version one\n');
  assert.is((await run(dir)).exitCode, 0);
  versions.set('/f/app.js', 'version two\n');
  writeFileSync(path.join(dir, 'manifest.txt'), `${base}/f/app.js#2 js/app.min.js\n`);
  const r = await run(dir);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /previous kept as old\/js\/app@1\.min\.js/);
  assert.is(read(dir, 'js/app.min.js'), 'version two\n');
  assert.is(read(dir, 'old/js/app@1.min.js'), 'version one\n');
  assert.is(record(dir).files['js/app.min.js'].tag, '2');
});

test('failures are reported per file, retried when worth it, and the others are saved', async () => {
  const dir = workspace(
    [
      `${base}/f/good.txt good.txt`,
      `${base}/missing missing.txt`,
      `${base}/always500 always500.txt`,
      `${base}/flaky flaky.txt`,
      `${base}/short short.txt`,
      `${base}/reset reset.txt`,
      `${base}/slow slow.txt`,
      `${base}/hang hang.txt`,
      `${base}/loop loop.txt`,
      `${base}/to-ftp ftp.txt`,
      `http://127.0.0.1:${await closedPort()}/refused refused.txt`,
    ].join('\n'),
  );
  hits.delete('/always500');
  hits.delete('/flaky');
  hits.delete('/loop');
  const r = await run(dir, '--timeout', '1', '--concurrency', '10');
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stdout, /2 fetched, 0 unchanged, 9 failed/);
  assert.is(read(dir, 'good.txt'), 'body of /f/good.txt\n');
  assert.is(read(dir, 'flaky.txt'), 'flaky\n');
  assert.is(hits.get('/flaky'), 3, 'two 503s then success');
  assert.is(hits.get('/always500'), 3, '5xx is retried (1 + 2 retries)');
  assert.is(hits.get('/missing'), 1, '404 is not retried');
  assert.is(hits.get('/loop'), 6, 'a redirect loop stops after 5 redirects');
  const out = r.stdout;
  assert.match(out, /failed {2}missing\.txt: HTTP 404 Not Found/);
  assert.match(out, /failed {2}always500\.txt: HTTP 500 Internal Server Error \(after 3 attempts\)/);
  assert.match(
    out,
    /failed {2}short\.txt: (the body was shorter than its Content-Length \(100 bytes\)|the body had 20 bytes but Content-Length said 100|the connection broke)/,
  );
  assert.match(out, /failed {2}reset\.txt: the connection broke after \d+ bytes/);
  assert.match(out, /failed {2}slow\.txt: no data for 1 s after 4 bytes/);
  assert.match(out, /failed {2}hang\.txt: no response within 1 s \(after 3 attempts\)/);
  assert.match(out, /failed {2}loop\.txt: too many redirects/);
  assert.match(out, /failed {2}ftp\.txt: refusing a redirect to a ftp: URL/);
  assert.match(out, /failed {2}refused\.txt: could not connect/);
  assert.match(r.stderr, /manifest\.txt:2: missing\.txt: HTTP 404/);
  for (const name of [
    'missing.txt',
    'always500.txt',
    'short.txt',
    'reset.txt',
    'slow.txt',
    'hang.txt',
    'loop.txt',
    'ftp.txt',
    'refused.txt',
  ]) {
    assert.not.ok(existsSync(path.join(dir, 'downloads', name)), `${name} must not exist`);
  }
  assert.equal(leftovers(dir), [], 'no temp files left behind');
  assert.equal(Object.keys(record(dir).files).sort(), ['flaky.txt', 'good.txt']);
});

test('a reset mid-body keeps the previous file and its record', async () => {
  versions.set('/f/resettable', 'the good old content\n');
  const dir = workspace(`${base}/f/resettable keep.txt\n`);
  assert.is((await run(dir)).exitCode, 0);
  const before = record(dir).files['keep.txt'];
  versions.set('/f/resettable', 'new content that never arrives\n');
  resetMode = true;
  try {
    const r = await run(dir, '--refresh', '--retries', '1');
    assert.is(r.exitCode, 1);
    assert.match(r.stdout, /failed {2}keep\.txt: the connection broke after 5 bytes/);
  } finally {
    resetMode = false;
  }
  assert.is(read(dir, 'keep.txt'), 'the good old content\n');
  assert.equal(record(dir).files['keep.txt'], before);
  assert.equal(leftovers(dir), []);
});

test('a body longer than Content-Length: only the declared bytes are kept', async () => {
  const dir = workspace(`${base}/long long.txt\n`);
  const r = await run(dir);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(read(dir, 'long.txt'), 'y'.repeat(10));
});

test('a redirect to an unparsable Location fails at once, with no retry', async () => {
  hits.delete('/bad-location');
  const dir = workspace(`${base}/bad-location bad.txt\n${base}/f/beside beside.txt\n`);
  const r = await run(dir);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stdout, /failed {2}bad\.txt: HTTP 302 redirect to an invalid Location \("http:\/\/\[not-a-host"\)\n/);
  assert.is(hits.get('/bad-location'), 1, 'a bad Location is not a network error: not retried');
  assert.is(read(dir, 'beside.txt'), 'body of /f/beside\n');
  assert.equal(leftovers(dir), []);
});

const hostile: Array<[string, string, RegExp]> = [
  ['no destination', `${base}/f/a\n`, /manifest\.txt:1: ".*" has no destination/],
  [
    '../ destination',
    `${base}/f/a ../escape.txt\n`,
    /manifest\.txt:1: Invalid destination "\.\.\/escape\.txt": it must not contain "\.\."/,
  ],
  [
    'absolute destination',
    `${base}/f/a /tmp/escape.txt\n`,
    /manifest\.txt:1: Invalid destination "\/tmp\/escape\.txt": it must be relative/,
  ],
  [
    'file: URL',
    'file:///etc/passwd passwd\n',
    /manifest\.txt:1: "file:\/\/\/etc\/passwd": "file:" URLs are not allowed/,
  ],
  ['ftp: URL', 'ftp://example.com/x x\n', /"ftp:" URLs are not allowed/],
  [
    'duplicate destination',
    `${base}/f/a same.txt\n# x\n${base}/f/b same.txt\n`,
    /manifest\.txt:3: destination "same\.txt" is already used by manifest\.txt:1 with a different URL/,
  ],
];

test(`hostile manifests (${hostile.map(([name]) => name).join(', ')}): exit 2, a message, nothing written`, async () => {
  // Run side by side: each is a separate process and they share nothing.
  await Promise.all(
    hostile.map(async ([name, manifest, pattern]) => {
      const dir = workspace(manifest);
      const r = await run(dir);
      assert.is(r.exitCode, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, pattern, name);
      assert.not.ok(existsSync(path.join(dir, 'downloads')), `${name}: nothing written`);
      assert.not.ok(existsSync(path.join(dir, 'escape.txt')), name);
    }),
  );
});

test('hostile cloudinary.txt is refused too', async () => {
  const dir = tmpDir('shipkit-dl-');
  writeFileSync(path.join(dir, 'cloudinary.txt'), 'cloud demo\nsamples/dog w_100 ../../dog.jpg\n');
  const r = await run(dir);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /cloudinary\.txt:2: Invalid destination/);
  assert.not.ok(existsSync(path.join(dir, 'downloads')));
});

test('a symlinked folder inside downloads/ is not written through', async () => {
  const dir = workspace(`${base}/f/a linked/a.txt\n${base}/f/b fine.txt\n`);
  const outside = tmpDir('shipkit-outside-');
  mkdirSync(path.join(dir, 'downloads'));
  symlinkSync(outside, path.join(dir, 'downloads', 'linked'));
  const r = await run(dir);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, /failed {2}linked\/a\.txt: linked is a symbolic link inside the downloads folder/);
  assert.equal(readdirSync(outside), []);
  assert.is(read(dir, 'fine.txt'), 'body of /f/b\n');
});

test('a symlinked old/ folder is not written through when a tag changes', async () => {
  versions.set('/f/tagged', 'first\n');
  const dir = workspace(`${base}/f/tagged#1 js/tagged.js\n`);
  assert.is((await run(dir)).exitCode, 0);
  const outside = tmpDir('shipkit-outside-');
  symlinkSync(outside, path.join(dir, 'downloads', 'old'));
  versions.set('/f/tagged', 'second\n');
  writeFileSync(path.join(dir, 'manifest.txt'), `${base}/f/tagged#2 js/tagged.js\n`);
  const r = await run(dir);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stdout, /failed {2}js\/tagged\.js: old is a symbolic link inside the downloads folder/);
  assert.equal(readdirSync(outside), [], 'nothing moved out of downloads/');
  assert.is(read(dir, 'js/tagged.js'), 'first\n', 'the previous file stays where it was');
  assert.is(record(dir).files['js/tagged.js'].tag, '1');
  assert.equal(leftovers(dir), []);
});

test('--manifest - reads a generated manifest from stdin; --dir changes the root', async () => {
  const dir = tmpDir('shipkit-dl-');
  const manifest = Array.from({ length: 3 }, (_, i) => `${base}/f/gen-${i} size ${i}/img.png`).join('\n');
  const r = await runScript('downloads', ['--manifest', '-', '--dir', 'public/dl'], { cwd: dir, input: manifest });
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(path.join(dir, 'public/dl/size 2/img.png'), 'utf8'), 'body of /f/gen-2\n');
});

test('usage errors: no manifest, bad flags', async () => {
  const dir = tmpDir('shipkit-dl-');
  const [none, lots, bogus, help] = await Promise.all(
    [[], ['--concurrency', 'lots'], ['--bogus'], ['--help']].map((args) => runScript('downloads', args, { cwd: dir })),
  );
  assert.is(none.exitCode, 2);
  assert.match(none.stderr, /No manifest\.txt/);
  assert.is(lots.exitCode, 2);
  assert.match(lots.stderr, /--concurrency must be a whole number/);
  assert.is(bogus.exitCode, 2);
  assert.match(bogus.stderr, /Unknown option --bogus/);
  assert.is(help.exitCode, 0);
  assert.match(help.stdout, /^Usage: downloads/);
});

test('a 10,000-line manifest is fetched, then skipped entirely on the next run', async () => {
  const lines = Array.from({ length: 10_000 }, (_, i) => `${base}/f/many/${i}#1 many/${i % 50}/file ${i}.txt`);
  const dir = workspace(`# generated\n${lines.join('\n')}\n`);
  const first = await run(dir, '--concurrency', '32');
  assert.is(first.exitCode, 0, first.stderr.slice(0, 2000));
  assert.match(first.stdout, /10000 fetched, 0 unchanged, 0 failed/);
  assert.is(read(dir, 'many/49/file 9999.txt'), 'body of /f/many/9999\n');
  const count = hits.get('/f/many/1234');
  const second = await run(dir, '--json');
  assert.is(second.exitCode, 0);
  const summary = JSON.parse(second.stdout);
  assert.equal([summary.fetched, summary.unchanged, summary.failed], [0, 10_000, 0]);
  assert.is(hits.get('/f/many/1234'), count);
});

test('runDownloadsStage (the build step): skipped without a manifest, counts with one, progress only on a TTY', async () => {
  const { runDownloadsStage, downloadAll } = await import('../../../lib/stages/downloads.ts');
  const { parseManifest } = await import('../../../lib/stages/manifest.ts');
  const { silentLogger } = await import('../../../lib/core/log.ts');
  const empty = tmpDir('shipkit-stage-');
  assert.equal(await runDownloadsStage({ workDir: empty, log: silentLogger }), {
    fetched: 0,
    unchanged: 0,
    failed: 0,
    skipped: 'no manifest.txt or cloudinary.txt',
  });
  assert.not.ok(existsSync(path.join(empty, 'downloads')));

  const work = workspace(`${base}/f/stage-a a.txt\n${base}/missing b.txt\n`);
  const result = await runDownloadsStage({ workDir: work, log: silentLogger, concurrency: 2 });
  assert.equal(result, { fetched: 1, unchanged: 0, failed: 1 });
  assert.equal(await runDownloadsStage({ workDir: work, log: silentLogger }), { fetched: 0, unchanged: 1, failed: 1 });

  const linked = workspace(`${base}/f/stage-a a.txt\n`);
  symlinkSync(tmpDir('shipkit-outside-'), path.join(linked, 'downloads'));
  const refused = await runDownloadsStage({ workDir: linked, log: silentLogger }).catch((e: Error) => e);
  assert.match(String((refused as Error).message), /is not a folder \(a symbolic link or file in the repo\?\)/);

  let drawn = '';
  const tty = {
    isTTY: true,
    write: (text: string) => {
      drawn += text;
      return true;
    },
  };
  const entries = parseManifest(`${base}/f/p1 p1.txt\n${base}/f/p2 p2.txt\n`);
  await downloadAll({ dir: path.join(tmpDir('shipkit-dl-'), 'downloads'), entries, log: silentLogger, progress: tty });
  assert.match(drawn, /\r\x1b\[Kdownloads: 2\/2 done, 0 active, \d+ B/);
  let piped = '';
  await downloadAll({
    dir: path.join(tmpDir('shipkit-dl-'), 'downloads'),
    entries,
    log: silentLogger,
    progress: {
      isTTY: false,
      write: (t: string) => {
        piped += t;
        return true;
      },
    },
  });
  assert.is(piped, '', 'no progress display when stderr is not a TTY');
});

test('a corrupt record means fetching again; a second run on the same folder waits for none', async () => {
  const { downloadAll } = await import('../../../lib/stages/downloads.ts');
  const { parseManifest } = await import('../../../lib/stages/manifest.ts');
  const { createLogger } = await import('../../../lib/core/log.ts');
  const { acquireLock } = await import('../../../lib/core/lock.ts');
  const dir = path.join(tmpDir('shipkit-dl-'), 'downloads');
  const entries = parseManifest(`${base}/f/rec rec.txt\n`);
  let logged = '';
  const log = createLogger({
    stream: {
      write: (t: string) => {
        logged += t;
        return true;
      },
    } as unknown as NodeJS.WritableStream,
  });
  assert.is((await downloadAll({ dir, entries, log })).fetched, 1);
  writeFileSync(path.join(dir, '.downloads.json'), '{"version":1,"files":');
  const again = await downloadAll({ dir, entries, log });
  assert.is(again.fetched, 1);
  assert.match(logged, /\.downloads\.json is not a valid record; every entry will be fetched again/);
  assert.is(JSON.parse(readFileSync(path.join(dir, '.downloads.json'), 'utf8')).files['rec.txt'].url, `${base}/f/rec`);

  const lock = await acquireLock(path.join(dir, '.downloads.lock'));
  try {
    const refused = await downloadAll({ dir, entries, log }).catch((e: Error) => e);
    assert.match(String((refused as Error).message), /is locked by process \d+/);
  } finally {
    await lock.release();
  }
});

test.after(() => {
  for (const socket of openSockets) socket.destroy();
  server.close();
});

test('several manifest problems: one per line, no literal \\n, exit 2, nothing written', async () => {
  const dir = tmpDir();
  writeFileSync(path.join(dir, 'manifest.txt'), 'notaurl a\nftp://x b\n');
  const r = await runScript('downloads', [], { cwd: dir });
  assert.is(r.exitCode, 2, r.stderr);
  assert.not.ok(r.stderr.includes('\\n'), r.stderr);
  assert.match(r.stderr, /^error: manifest\.txt:1: "notaurl".*\n  manifest\.txt:2: "ftp:\/\/x"/m);
  assert.not.ok(existsSync(path.join(dir, 'downloads')));
});

test.run();
