// @deno
// slave-activate, one-shot and --serve, as a real child process against real git repos
// (a local-path base and `git daemon` on 127.0.0.1).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { $ } from '../../../lib/core/shell.ts';
import {
  freePort,
  git,
  makeBareRepo,
  runCommand,
  runScript,
  startScript,
  tmpDir,
  waitFor,
  type Server,
} from '../../_helpers/common.ts';

const SECRET = 'test-secret-0123456789';
const base = tmpDir();
const site = await makeBareRepo(base, 'site', { 'index.html': '<h1>v1</h1>\n' });
const other = await makeBareRepo(base, 'other');

// Signed independently of lib/http/signing.ts, straight from the contract.
function signed(
  pathAndQuery: string,
  { secret = SECRET, ts = Math.floor(Date.now() / 1000), nonce = randomBytes(16).toString('hex') } = {},
) {
  const sig = createHmac('sha256', secret).update(`GET\n${pathAndQuery}\n${ts}\n${nonce}`).digest('hex');
  return { 'X-Shipkit-Timestamp': String(ts), 'X-Shipkit-Nonce': nonce, 'X-Shipkit-Signature': `sha256=${sig}` };
}

async function head(dir: string): Promise<string> {
  return (await git(dir, 'rev-parse', 'HEAD')).stdout.trim();
}

function leftovers(root: string): string[] {
  return existsSync(root) ? readdirSync(root).filter((e) => e.startsWith('.')) : [];
}

test('one-shot: clones into ROOT/REPO, then replaces it with a fresh clone', async () => {
  const root = path.join(tmpDir(), 'repos');
  let r = await runScript('slave-activate', ['site', '--root', root, '--base', base]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(await head(path.join(root, 'site')), site.first);
  writeFileSync(path.join(root, 'site', 'local-junk.txt'), 'left by hand');
  const second = await site.commit({ 'index.html': '<h1>v2</h1>\n' });
  r = await runScript('slave-activate', ['site'], { env: { SLAVE_ROOT: root, SLAVE_BASE_URL: base } });
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(await head(path.join(root, 'site')), second);
  assert.not.ok(existsSync(path.join(root, 'site', 'local-junk.txt')), 'a fresh clone, not a pull');
  assert.equal(leftovers(root), [], 'no temp or lock files left');
});

test('one-shot: a failed clone keeps the previous ROOT/REPO and exits 1', async () => {
  const root = path.join(tmpDir(), 'repos');
  assert.is((await runScript('slave-activate', ['site', '--root', root, '--base', base])).exitCode, 0);
  const before = await head(path.join(root, 'site'));
  // unknown repo: nothing to clone
  mkdirSync(path.join(root, 'nope'));
  writeFileSync(path.join(root, 'nope', 'keep.txt'), 'old');
  let r = await runScript('slave-activate', ['nope', '--root', root, '--base', base]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /Clone of .*nope\.git failed/);
  assert.match(r.stderr, /previous .* is kept/);
  assert.is(readFileSync(path.join(root, 'nope', 'keep.txt'), 'utf8'), 'old');
  // unreachable base: nothing listening on the port
  const port = await freePort();
  r = await runScript('slave-activate', ['site', '--root', root, '--base', `git://127.0.0.1:${port}`]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /failed/);
  assert.is(await head(path.join(root, 'site')), before);
  assert.equal(leftovers(root), []);
});

test('one-shot: an unwritable root is reported, exit 1, nothing created', async () => {
  const dir = tmpDir();
  writeFileSync(path.join(dir, 'file'), 'not a folder');
  const r = await runScript('slave-activate', ['site', '--root', path.join(dir, 'file', 'repos'), '--base', base]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /Cannot create the root folder/);
  const ro = path.join(dir, 'ro');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  if (process.getuid?.() === 0) {
    console.log(
      'note: running as root, so a mode-0555 folder is still writable; the ENOTDIR case above stands in for it',
    );
  } else {
    const r2 = await runScript('slave-activate', ['site', '--root', ro, '--base', base]);
    assert.is(r2.exitCode, 1);
    assert.equal(readdirSync(ro), []);
  }
});

test('one-shot: hostile repo names exit 2 and write nothing', async () => {
  const root = path.join(tmpDir(), 'repos');
  const names = [
    '../etc',
    'a/b',
    '.hidden',
    'x;rm -rf /',
    'x%00',
    '%2e%2e%2f',
    '\u0455ite' /* Cyrillic s */,
    'site\uff0fx',
    'a'.repeat(300),
    '',
  ];
  for (const name of names) {
    const r = await runScript('slave-activate', ['--root', root, '--base', base, '--', name]);
    assert.is(r.exitCode, 2, `name ${JSON.stringify(name)}: ${r.stderr}`);
    assert.match(r.stderr, /Invalid repository name|exactly one repository/);
  }
  const r = await runScript('slave-activate', ['-rf', '--root', root]);
  assert.is(r.exitCode, 2);
  assert.not.ok(existsSync(root), 'root not even created');
});

test('one-shot: two activations of one repo at once never race on the folder', async () => {
  const root = path.join(tmpDir(), 'repos');
  const results = await Promise.all(
    [1, 2, 3].map(() => runScript('slave-activate', ['site', '--root', root, '--base', base])),
  );
  for (const r of results) assert.is(r.exitCode, 0, r.stderr);
  assert.is(await head(path.join(root, 'site')), await head(site.bare));
  assert.equal(leftovers(root), []);
});

// --- serve ---------------------------------------------------------------------------------

let daemon: ChildProcess;
let daemonBase = '';
const killDaemon = () => {
  try {
    if (daemon?.pid) process.kill(-daemon.pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
};

test('serve: setup git daemon on loopback', async () => {
  const port = await freePort();
  daemon = spawn(
    'git',
    ['daemon', '--reuseaddr', '--export-all', `--base-path=${base}`, '--listen=127.0.0.1', `--port=${port}`, base],
    // Its own process group: `git daemon` runs git-daemon as a child, which killing git alone would orphan.
    { stdio: 'ignore', detached: true },
  );
  process.on('exit', () => killDaemon());
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net
          .connect(port, '127.0.0.1', () => {
            s.destroy();
            resolve(true);
          })
          .on('error', () => resolve(false));
      }),
    { what: 'git daemon' },
  );
  daemonBase = `git://127.0.0.1:${port}`;
});

async function startSlave(root: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  return startScript(
    'slave-activate',
    ['--serve', '--listen', '127.0.0.1:0', '--root', root, '--base', daemonBase, '--header-timeout', '1', ...extra],
    { env: { SHIPKIT_SECRET: SECRET, ...env } },
  );
}

test('serve: refuses to start without a secret unless --insecure', async () => {
  const r = await runScript('slave-activate', ['--serve', '--listen', '127.0.0.1:0', '--root', tmpDir()]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /No shared secret/);
  const insecure = await startScript('slave-activate', [
    '--serve',
    '--insecure',
    '--listen',
    '127.0.0.1:0',
    '--root',
    path.join(tmpDir(), 'r'),
    '--base',
    base,
  ]);
  const res = await fetch(`${insecure.url}/?repo=site&wait=1`);
  assert.is(res.status, 200);
  assert.is(await insecure.stop(), 0);
});

test('serve: signed request through git daemon → 202, clone appears; &wait=1 → 200 with the HEAD', async () => {
  const root = path.join(tmpDir(), 'repos');
  const slave = await startSlave(root);
  try {
    let res = await fetch(`${slave.url}/?repo=site`, { headers: signed('/?repo=site') });
    assert.is(res.status, 202);
    assert.equal(await res.json(), { repo: 'site', state: 'queued' });
    await waitFor(() => existsSync(path.join(root, 'site', '.git')), { what: 'clone' });
    const latest = await site.commit({ 'index.html': '<h1>v3</h1>\n' });
    res = await fetch(`${slave.url}/?repo=site&wait=1`, { headers: signed('/?repo=site&wait=1') });
    assert.is(res.status, 200);
    const body = (await res.json()) as { ok: boolean; head: string };
    assert.is(body.ok, true);
    assert.is(body.head, latest);
    assert.is(await head(path.join(root, 'site')), latest);
    res = await fetch(`${slave.url}/?repo=missing&wait=1`, { headers: signed('/?repo=missing&wait=1') });
    assert.is(res.status, 500);
    const failed = (await res.json()) as { ok: boolean; error: string };
    assert.is(failed.ok, false);
    assert.match(failed.error, /Clone of .* failed/);
    res = await fetch(`${slave.url}/status`, { headers: signed('/status') });
    assert.is(res.status, 200);
    const status = (await res.json()) as { repos: Record<string, { last: { ok: boolean } }> };
    assert.is(status.repos.site.last.ok, true);
    assert.is(status.repos.missing.last.ok, false);
    assert.is((await fetch(`${slave.url}/status`)).status, 401, '/status is signed like the rest');
  } finally {
    assert.is(await slave.stop(), 0);
  }
});

test('serve: requests during a run coalesce into exactly one more run', async () => {
  const big = await makeBareRepo(base, 'big', { 'blob.bin': randomBytes(3 << 20).toString('base64') });
  void big;
  const root = path.join(tmpDir(), 'repos');
  const slave = await startSlave(root);
  try {
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        fetch(`${slave.url}/?repo=big`, { headers: signed('/?repo=big') }).then((r) => r.status),
      ),
    );
    assert.equal(answers, [202, 202, 202, 202, 202, 202]);
    const status = await waitFor(
      async () => {
        const s = (await (await fetch(`${slave.url}/status`, { headers: signed('/status') })).json()) as {
          repos: Record<string, { running: boolean; queued: boolean; runs: number }>;
        };
        const b = s.repos.big;
        return b && !b.running && !b.queued ? b : undefined;
      },
      { timeoutMs: 60_000, what: 'runs to finish' },
    );
    assert.is(status!.runs, 2, 'one run, and one more for everything that arrived during it');
    assert.ok(existsSync(path.join(root, 'big', 'blob.bin')));
    assert.equal(leftovers(root), []);
  } finally {
    await slave.stop();
  }
});

test('serve: --file is served on GET / without a repo', async () => {
  const dir = tmpDir();
  const page = path.join(dir, 'index.html');
  writeFileSync(page, '<p>hello from the slave</p>');
  const slave = await startSlave(path.join(dir, 'repos'), ['--file', page]);
  try {
    const res = await fetch(`${slave.url}/`);
    assert.is(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.is(await res.text(), '<p>hello from the slave</p>');
    assert.is((await fetch(`${slave.url}/?repo=site`)).status, 401, 'a repo request still needs a signature');
  } finally {
    await slave.stop();
  }
});

test('serve: bad requests are refused and change nothing', async () => {
  const root = path.join(tmpDir(), 'repos');
  const slave = await startSlave(root);
  const get = (p: string, headers: Record<string, string> = {}, method = 'GET') =>
    fetch(`${slave.url}${p}`, { method, headers }).then(async (r) => ({ status: r.status, body: await r.text() }));
  try {
    assert.is((await get('/?repo=site')).status, 401, 'no signature');
    assert.is((await get('/?repo=site', signed('/?repo=site', { secret: 'wrong' }))).status, 401, 'wrong secret');
    const now = Math.floor(Date.now() / 1000);
    assert.is((await get('/?repo=site', signed('/?repo=site', { ts: now - 600 }))).status, 401, '10 minutes old');
    assert.is((await get('/?repo=site', signed('/?repo=site', { ts: now + 600 }))).status, 401, '10 minutes ahead');
    const once = signed('/?repo=other');
    assert.is((await get('/?repo=other', once)).status, 202);
    assert.is((await get('/?repo=other', once)).status, 401, 'replayed nonce');
    assert.is((await get('/?repo=site', signed('/?repo=other'))).status, 401, 'signature made for another repo');
    const good = signed('/?repo=site');
    assert.is(
      (await get('/?repo=site', { ...good, 'X-Shipkit-Signature': 'sha1=abc' })).status,
      401,
      'malformed signature',
    );
    assert.is(
      (await get('/?repo=site', { ...good, 'X-Shipkit-Timestamp': 'yesterday' })).status,
      401,
      'malformed timestamp',
    );
    assert.is((await get('/?repo=site', { ...good, 'X-Shipkit-Nonce': 'short' })).status, 401, 'malformed nonce');
    const post = await get('/?repo=site', signed('/?repo=site'), 'POST');
    assert.is(post.status, 405);
    assert.is((await get('/?repo=site', {}, 'DELETE')).status, 405);
    for (const name of [
      '../etc',
      'a/b',
      '.hidden',
      '-rf',
      '',
      'x;rm -rf /',
      'x\u0000',
      '../',
      '\u0455ite',
      'a'.repeat(300),
    ]) {
      const p = `/?repo=${encodeURIComponent(name)}`;
      const r = await get(p, signed(p));
      assert.is(r.status, 400, `name ${JSON.stringify(name)}`);
      assert.is(r.body.trim(), '{"error":"invalid repo name"}');
    }
    const raw = '/?repo=%2e%2e%2f';
    assert.is((await get(raw, signed(raw))).status, 400);
    const long = `/?repo=site&pad=${'a'.repeat(100_000)}`;
    const huge = await get(long, signed(long)).catch(() => ({ status: 0, body: '' }));
    assert.ok([0, 414, 431].includes(huge.status), `100 KB query string: ${huge.status}`);
    // Nothing but the one accepted request for `other` reached the disk.
    await waitFor(
      async () => {
        const s = (await (await fetch(`${slave.url}/status`, { headers: signed('/status') })).json()) as {
          repos: Record<string, unknown>;
        };
        return Object.keys(s.repos).join(',') === 'other' && !(s.repos.other as { running: boolean }).running;
      },
      { what: 'only other activated' },
    );
    assert.equal(
      readdirSync(root).filter((e) => !e.startsWith('.')),
      ['other'],
    );
    assert.match(slave.output(), /refused: replayed nonce/);
    assert.not.match(slave.output(), new RegExp(SECRET), 'the secret is never logged');
  } finally {
    await slave.stop();
  }
});

test('serve: a client trickling its headers is cut off while others are served', async () => {
  const slave = await startSlave(path.join(tmpDir(), 'repos'));
  try {
    const socket = net.connect(slave.port, '127.0.0.1');
    let closedAt = 0;
    const started = Date.now();
    socket.on('close', () => (closedAt = Date.now()));
    socket.on('error', () => {});
    socket.resume(); // read the 408 and the FIN, or 'close' never comes
    socket.write('GET /?repo=site HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('X-A: b\r\n');
    }, 200);
    const res = await fetch(`${slave.url}/?repo=site`, { headers: signed('/?repo=site') });
    assert.is(res.status, 202, 'another client is served meanwhile');
    await waitFor(() => closedAt > 0, { timeoutMs: 10_000, what: 'the trickling client to be cut off' });
    clearInterval(trickle);
    assert.ok(closedAt - started < 8_000, `cut after ${closedAt - started} ms`);
  } finally {
    await slave.stop();
  }
});

test('serve: SIGTERM lets the running clone finish and exits 0', async () => {
  const root = path.join(tmpDir(), 'repos');
  const slave = await startSlave(root);
  const res = await fetch(`${slave.url}/?repo=big`, { headers: signed('/?repo=big') });
  assert.is(res.status, 202);
  await waitFor(() => /cloning/.test(slave.output()), { what: 'clone to start' });
  const code = await slave.stop('SIGTERM');
  assert.is(code, 0, slave.output());
  assert.ok(existsSync(path.join(root, 'big', 'blob.bin')), 'the clone finished before exit');
  assert.equal(leftovers(root), []);
});

test('docs recipe: a request signed with openssl and sent with curl is accepted', async () => {
  const root = path.join(tmpDir(), 'repos');
  const slave = await startSlave(root);
  try {
    const doc = readFileSync(path.join(import.meta.dirname, '../../..', 'docs/slave-activate.md'), 'utf8');
    const recipe = /<!-- signed-curl-recipe -->\n```sh[^\n]*\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(recipe, 'docs/slave-activate.md has the signed curl recipe');
    const r = await runCommand('bash', ['-euo', 'pipefail', '-c', recipe!], {
      env: { SHIPKIT_SECRET: SECRET, SLAVE: slave.url, REPO: 'site' },
    });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /"state":"queued"/);
    await waitFor(() => existsSync(path.join(root, 'site', '.git')), { what: 'clone' });
  } finally {
    await slave.stop();
  }
});

test.after(() => {
  killDaemon();
  void $;
});
test.run();
