// @deno
// server-update fanning out to real slave-activate servers (child processes) and to slaves that
// misbehave: refusing connections, never answering, answering 500, answering garbage.
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closedPort, git, makeBareRepo, runScript, startScript, tmpDir, waitFor } from '../../_helpers/common.ts';

const SECRET = 'fleet-secret-abcdef0123';
const dir = tmpDir();
const secretFile = path.join(dir, 'secret');
writeFileSync(secretFile, `${SECRET}\n`);
const base = path.join(dir, 'base');
const site = await makeBareRepo(base, 'site', { 'index.html': 'v1\n' });

const roots = [path.join(dir, 'slave1'), path.join(dir, 'slave2'), path.join(dir, 'slave3')];
const slaves = await Promise.all(
  roots.map((root) =>
    startScript('slave-activate', ['--serve', '--listen', '127.0.0.1:0', '--root', root, '--base', base], {
      env: { SHIPKIT_SECRET: SECRET },
    }),
  ),
);

// Misbehaving slaves, in this process.
const refusingPort = await closedPort();
const hanging = net.createServer((socket) => socket.on('error', () => {}));
let hits500 = 0;
/** Signed with this file's secret: a request of its own server-update, not stray traffic to a reused port. */
const signedHere = (req: http.IncomingMessage) => {
  const { 'x-shipkit-timestamp': ts, 'x-shipkit-nonce': nonce, 'x-shipkit-signature': sig } = req.headers;
  const mac = createHmac('sha256', SECRET).update(`${req.method}\n${req.url}\n${ts}\n${nonce}`).digest('hex');
  return sig === `sha256=${mac}`;
};
const failing = http.createServer((req, res) => {
  // Once in CI (4 test files at a time) it counted 18 where this test sends 3; where the other
  // 15 came from was not found (another test's requests to a port the kernel gave out again is
  // the likeliest), so only requests this file's server-update signed count.
  if (signedHere(req)) hits500++;
  res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"error":"disk full"}');
});
const garbage = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.2 garbage\r\n\r\n'));
});
const signatures: string[] = [];
const recording = http.createServer((req, res) => {
  signatures.push(
    `${req.url} ${req.headers['x-shipkit-timestamp']} ${req.headers['x-shipkit-nonce']} ${req.headers['x-shipkit-signature']}`,
  );
  res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"state":"queued"}');
});
const listenLocal = (s: net.Server) =>
  new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)));
const [hangingPort, failingPort, garbagePort, recordingPort] = await Promise.all(
  [hanging, failing, garbage, recording].map(listenLocal),
);

function list(lines: string[]): string {
  const file = path.join(tmpDir(), 'slavelist.txt');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const head = async (root: string) => (await git(path.join(root, 'site'), 'rev-parse', 'HEAD')).stdout.trim();

test('every slave clones the repo; --wait reports when they are done', async () => {
  const file = list([
    '# three real slaves, one twice',
    ...slaves.map((s) => s.url),
    '',
    slaves[0].url.replace('http://', '') + '/',
  ]);
  const r = await runScript('server-update', ['site', '--list', file, '--secret-file', secretFile, '--wait']);
  assert.is(r.exitCode, 0, r.stderr + r.stdout);
  for (const root of roots) assert.is(await head(root), site.first);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 4, 'one line per distinct target and a summary');
  assert.match(lines[3], /^3\/3 targets updated$/);
  const latest = await site.commit({ 'index.html': 'v2\n' });
  const json = await runScript('server-update', ['site', '--json', '--wait'], {
    env: { SERVER_UPDATE_LIST: file, SHIPKIT_SECRET: SECRET },
  });
  assert.is(json.exitCode, 0, json.stderr);
  const results = JSON.parse(json.stdout) as Array<{ target: string; ok: boolean; status: number; ms: number }>;
  assert.equal(
    results.map((x) => [x.target, x.ok, x.status]),
    slaves.map((s) => [s.url, true, 200]),
  );
  for (const root of roots) assert.is(await head(root), latest);
});

test('without --wait: 202 from each, and the clones follow', async () => {
  const latest = await site.commit({ 'index.html': 'v3\n' });
  const r = await runScript('server-update', [
    'site',
    '--list',
    list(slaves.map((s) => s.url)),
    '--secret-file',
    secretFile,
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /3\/3 targets accepted/);
  for (const root of roots)
    await waitFor(async () => (await head(root).catch(() => '')) === latest, { what: `clone in ${root}` });
});

test('broken slaves are each reported as such; the rest still update; exit 1', async () => {
  const latest = await site.commit({ 'index.html': 'v4\n' });
  hits500 = 0;
  const file = list([
    `127.0.0.1:${refusingPort}`,
    `http://127.0.0.1:${hangingPort}`,
    `http://127.0.0.1:${failingPort}`,
    `http://127.0.0.1:${garbagePort}`,
    ...slaves.map((s) => s.url),
  ]);
  const t0 = Date.now();
  const r = await runScript('server-update', [
    'site',
    '--list',
    file,
    '--secret-file',
    secretFile,
    '--json',
    '--wait',
    '--timeout',
    '8',
    '--retries',
    '2',
  ]);
  assert.is(r.exitCode, 1, r.stderr);
  const results = JSON.parse(r.stdout) as Array<{ target: string; ok: boolean; status: number | null; error?: string }>;
  const byPort = (port: number) => results.find((x) => x.target.endsWith(`:${port}`))!;
  assert.match(byPort(refusingPort).error!, /connection refused/, JSON.stringify(byPort(refusingPort)));
  assert.match(byPort(hangingPort).error!, /no answer within 8s/);
  assert.is(byPort(failingPort).status, 500);
  assert.match(byPort(failingPort).error!, /HTTP 500: disk full/);
  assert.is(hits500, 3, '5xx is retried: one try and two retries');
  assert.match(byPort(garbagePort).error!, /invalid HTTP response|connection error/);
  for (const s of slaves) assert.ok(results.find((x) => x.target === s.url)!.ok);
  for (const root of roots) assert.is(await head(root), latest);
  assert.ok(Date.now() - t0 < 60_000, 'the hanging slave costs one timeout, not one per retry');
  const human = await runScript('server-update', [
    'site',
    '--list',
    file,
    '--secret-file',
    secretFile,
    '--timeout',
    '3',
    '--retries',
    '0',
  ]);
  assert.is(human.exitCode, 1);
  assert.match(human.stdout, new RegExp(`FAIL  http://127.0.0.1:${refusingPort}  connection refused`));
  assert.match(human.stdout, /3\/7 targets accepted, 4 failed/);
});

test('a 401 (wrong secret) is not retried and says what to check', async () => {
  const wrong = path.join(tmpDir(), 'wrong');
  writeFileSync(wrong, 'not-the-secret\n');
  const r = await runScript('server-update', [
    'site',
    '--list',
    list([slaves[0].url]),
    '--secret-file',
    wrong,
    '--retries',
    '3',
  ]);
  assert.is(r.exitCode, 1);
  assert.match(r.stdout, /HTTP 401 unauthorized \(is the shared secret the same on both sides\?\)/);
  assert.not.match(r.stdout, /attempts/);
});

test('requests are signed as the contract says (checked independently)', async () => {
  signatures.length = 0;
  const r = await runScript('server-update', [
    'my-repo.v2',
    '--list',
    list([`http://127.0.0.1:${recordingPort}/hooks/slave`]),
    '--secret-file',
    secretFile,
    '--wait',
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  const [url, ts, nonce, sig] = signatures[0].split(' ');
  assert.is(url, '/hooks/slave/?repo=my-repo.v2&wait=1');
  assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60);
  assert.ok(nonce.length >= 16);
  assert.is(sig, `sha256=${createHmac('sha256', SECRET).update(`GET\n${url}\n${ts}\n${nonce}`).digest('hex')}`);
});

test('--dry-run sends nothing', async () => {
  signatures.length = 0;
  const r = await runScript('server-update', [
    'site',
    '--dry-run',
    '--list',
    list([`127.0.0.1:${recordingPort}`]),
    '--secret-file',
    secretFile,
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`would send GET http://127.0.0.1:${recordingPort}/\\?repo=site \\(signed\\)`));
  assert.is(signatures.length, 0);
});

test('bad arguments and lists exit 2 with a message, sending nothing', async () => {
  signatures.length = 0;
  const good = list([`127.0.0.1:${recordingPort}`]);
  const cases: Array<[string[], RegExp, Record<string, string>?]> = [
    [
      ['site', '--list', path.join(dir, 'missing.txt'), '--secret-file', secretFile],
      /slave list .*missing\.txt does not exist/,
    ],
    [['site', '--list', list(['# only comments', '']), '--secret-file', secretFile], /has no targets/],
    [
      ['site', '--list', list(['127.0.0.1:1', 'ftp://x:21', '127.0.0.1:2']), '--secret-file', secretFile],
      /slavelist\.txt:2: "ftp:\/\/x:21" is not a target/,
    ],
    [['site', '--list', list(['http://ok:1', 'not a target']), '--secret-file', secretFile], /slavelist\.txt:2:/],
    [['site', '--list', good], /No shared secret/],
    [['../etc', '--list', good, '--secret-file', secretFile], /Invalid repository name/],
    [['a/b', '--list', good, '--secret-file', secretFile], /Invalid repository name/],
    [['site', '--list', good, '--secret-file', secretFile, '--concurrency', '0'], /--concurrency must be between/],
    [['site', '--list', good, '--secret-file', secretFile, '--timeout', 'soon'], /--timeout must be a positive number/],
    [['site', '--list', good, '--secret-file', secretFile, '--bogus'], /Unknown option --bogus/],
    [[], /Missing argument/],
    [['a', 'b', '--list', good], /Unexpected argument "b"/],
  ];
  for (const [args, message, env] of cases) {
    const r = await runScript('server-update', args, { env });
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.is(r.stderr.trim().split('\n').length, 1, 'a one-line error');
  }
  assert.is(signatures.length, 0);
});

test.after(async () => {
  await Promise.all(slaves.map((s) => s.stop()));
  for (const s of [hanging, failing, garbage, recording]) s.close();
  (failing as http.Server).closeAllConnections();
  (recording as http.Server).closeAllConnections();
});
test.run();
