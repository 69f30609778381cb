// What the outside audit broke on the slave, against real slave-activate
// processes, real git repos and real HTTP on 127.0.0.1: a repo whose name extends another's,
// a slave served under a path (directly and behind a proxy that strips it), and a burst of
// requests for many repos that must not start a clone for each at once.
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  freePort,
  git,
  makeBareRepo,
  runCommand,
  runScript,
  startScript,
  tmpDir,
  waitFor,
} from '../../_helpers/common.ts';

const SECRET = 'test-secret-0123456789';
const base = tmpDir();
const site = await makeBareRepo(base, 'site', { 'index.html': '<h1>v1</h1>\n' });
const realGit = (await runCommand('sh', ['-c', 'command -v git'])).stdout.trim();

function signed(pathAndQuery: string, { nonce = randomBytes(16).toString('hex') } = {}) {
  const ts = Math.floor(Date.now() / 1000);
  const sig = createHmac('sha256', SECRET).update(`GET\n${pathAndQuery}\n${ts}\n${nonce}`).digest('hex');
  return { 'X-Shipkit-Timestamp': String(ts), 'X-Shipkit-Nonce': nonce, 'X-Shipkit-Signature': `sha256=${sig}` };
}

/**
 * A `git` first on PATH that logs when each clone starts and ends (to measure how many run at
 * once) and holds clones of repos matching HOLD_MATCH, after git is done, until the file
 * HOLD_UNTIL exists (at most 60 s).
 */
function gitWrapper(): { bin: string; events: string } {
  const dir = tmpDir('shipkit-gitwrap-');
  const events = path.join(dir, 'events.log');
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(
    path.join(bin, 'git'),
    `#!/bin/sh
if [ "$1" != clone ]; then exec ${realGit} "$@"; fi
echo "start $$ $(date +%s%N)" >> ${events}
sleep "\${CLONE_SECONDS:-0}"
${realGit} "$@"; rc=$?
case "$*" in *"\${HOLD_MATCH:-//none//}"*) n=0; while [ ! -e "$HOLD_UNTIL" ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done;; esac
echo "end $$ $(date +%s%N)" >> ${events}
exit $rc
`,
  );
  chmodSync(path.join(bin, 'git'), 0o755);
  return { bin, events };
}

function mostAtOnce(eventsFile: string): { most: number; clones: number } {
  const events = readFileSync(eventsFile, 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .map(([kind, , ns]) => ({ delta: kind === 'start' ? 1 : -1, at: BigInt(ns) }))
    .sort((a, b) => (a.at === b.at ? a.delta - b.delta : a.at < b.at ? -1 : 1));
  let now = 0;
  let most = 0;
  for (const e of events) most = Math.max(most, (now += e.delta));
  return { most, clones: events.filter((e) => e.delta === 1).length };
}

test('activating repo "a" leaves a running activation of "a.clone-x" alone (exact names, not prefixes)', async () => {
  const neighbour = await makeBareRepo(base, 'a.clone-x', { 'x.txt': 'x\n' });
  await makeBareRepo(base, 'a', { 'a.txt': 'a\n' });
  const root = path.join(tmpDir(), 'repos');
  const wrap = gitWrapper();
  const release = path.join(tmpDir(), 'release');
  const env = { PATH: `${wrap.bin}:${process.env.PATH}`, HOLD_MATCH: 'a.clone-x.git', HOLD_UNTIL: release };
  const slow = runScript('slave-activate', ['a.clone-x', '--root', root, '--base', base], { env });
  // The neighbour's clone is done and waits to be swapped in: its lock and temp clone exist.
  await waitFor(() => existsSync(root) && readdirSync(root).some((e) => e.startsWith('.a.clone-x.clone-')), {
    what: 'the temp clone of a.clone-x',
  });
  assert.ok(existsSync(path.join(root, '.a.clone-x.lock')));
  const quick = await runScript('slave-activate', ['a', '--root', root, '--base', base], { env });
  assert.is(quick.exitCode, 0, quick.stderr);
  assert.ok(existsSync(path.join(root, '.a.clone-x.lock')), "repo a's crash recovery must not take a.clone-x's lock");
  assert.ok(
    readdirSync(root).some((e) => e.startsWith('.a.clone-x.clone-')),
    'nor its temp clone',
  );
  writeFileSync(release, '');
  const done = await slow;
  assert.is(done.exitCode, 0, done.stderr);
  assert.is((await git(path.join(root, 'a.clone-x'), 'rev-parse', 'HEAD')).stdout.trim(), neighbour.first);
  assert.ok(existsSync(path.join(root, 'a', 'a.txt')));
  assert.equal(
    readdirSync(root).filter((e) => e.startsWith('.')),
    [],
    'no leftovers once both are done',
  );
});

test('a slave under --prefix answers there directly and behind a proxy that strips the prefix', async () => {
  const root = path.join(tmpDir(), 'repos');
  const slave = await startScript(
    'slave-activate',
    ['--serve', '--listen', '127.0.0.1:0', '--root', root, '--base', base, '--prefix', '/hooks/slave/'],
    { env: { SHIPKIT_SECRET: SECRET } },
  );
  const origin = new URL(slave.url).origin; // it announces itself with its prefix
  assert.is(slave.url, `${origin}/hooks/slave`);
  // A reverse proxy as nginx's `location /hooks/slave/ { proxy_pass http://slave/; }` does it.
  const proxy = http.createServer((req, res) => {
    const stripped = (req.url ?? '/').replace(/^\/hooks\/slave/, '') || '/';
    const forward = http.request(
      `${origin}${stripped.startsWith('/') ? stripped : `/${stripped}`}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  const proxyPort = await freePort();
  await new Promise<void>((resolve) => proxy.listen(proxyPort, '127.0.0.1', resolve));
  const list = path.join(tmpDir(), 'slaves.txt');
  try {
    // Directly, the prefix in the path.
    let res = await fetch(`${origin}/hooks/slave/?repo=site&wait=1`, {
      headers: signed('/hooks/slave/?repo=site&wait=1'),
    });
    assert.is(res.status, 200, await res.clone().text());
    res = await fetch(`${origin}/hooks/slave/status`, { headers: signed('/hooks/slave/status') });
    assert.is(res.status, 200);
    // server-update to both ways of reaching it: the same signatures work for each.
    writeFileSync(list, `${origin}/hooks/slave\nhttp://127.0.0.1:${proxyPort}/hooks/slave\n`);
    const r = await runScript('server-update', ['site', '--list', list, '--wait'], { env: { SHIPKIT_SECRET: SECRET } });
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /2\/2 targets updated/);
    // The prefix does not loosen the signature: another path, a wrong secret, a replay → 401.
    res = await fetch(`http://127.0.0.1:${proxyPort}/hooks/slave/?repo=site`, {
      headers: signed('/elsewhere/?repo=site'),
    });
    assert.is(res.status, 401);
    const nonce = randomBytes(16).toString('hex');
    res = await fetch(`http://127.0.0.1:${proxyPort}/hooks/slave/?repo=site`, {
      headers: signed('/hooks/slave/?repo=site', { nonce }),
    });
    assert.is(res.status, 202);
    res = await fetch(`${origin}/hooks/slave/?repo=site`, { headers: signed('/hooks/slave/?repo=site', { nonce }) });
    assert.is(res.status, 401, 'the same nonce by the other route is a replay');
    res = await fetch(`${origin}/hooks/slavery/?repo=site`, { headers: signed('/hooks/slavery/?repo=site') });
    assert.is(res.status, 404, 'a path that only starts like the prefix is not under it');
  } finally {
    proxy.close();
    assert.is(await slave.stop(), 0);
  }
});

test('--prefix must be a plain path (exit 2)', async () => {
  for (const bad of ['hooks', '/a/../b', '/a b', '/a?x=1']) {
    const r = await runScript(
      'slave-activate',
      ['--serve', '--listen', '127.0.0.1:0', '--root', tmpDir(), '--prefix', bad],
      { env: { SHIPKIT_SECRET: SECRET } },
    );
    assert.is(r.exitCode, 2, bad);
    assert.match(r.stderr, /Invalid prefix/);
  }
});

test('a burst of signed requests for 40 repos runs at most --max-parallel clones at once, and all of them', async () => {
  const many = tmpDir();
  const names = Array.from({ length: 40 }, (_, i) => `r${i}`);
  const seed = await makeBareRepo(many, 'seed');
  for (const name of names) await runCommand('cp', ['-a', path.join(many, 'seed.git'), path.join(many, `${name}.git`)]);
  const root = path.join(tmpDir(), 'repos');
  const wrap = gitWrapper();
  const slave = await startScript(
    'slave-activate',
    ['--serve', '--listen', '127.0.0.1:0', '--root', root, '--base', many, '--max-parallel', '3'],
    {
      env: { SHIPKIT_SECRET: SECRET, PATH: `${wrap.bin}:${process.env.PATH}`, CLONE_SECONDS: '0.2' },
    },
  );
  try {
    const answers = await Promise.all(
      names.map((name) =>
        fetch(`${slave.url}/?repo=${name}`, { headers: signed(`/?repo=${name}`) }).then((r) => r.status),
      ),
    );
    assert.equal([...new Set(answers)], [202], 'every request is accepted at once');
    await waitFor(() => names.every((name) => existsSync(path.join(root, name, '.git'))), {
      timeoutMs: 60_000,
      what: 'all 40 clones',
    });
    // git makes .git as a clone starts: the last ones may still run. /status says when all ended.
    type Status = { clones: { max: number; running: number; waiting: number } };
    let status: Status | undefined;
    await waitFor(
      async () => {
        status = (await (await fetch(`${slave.url}/status`, { headers: signed('/status') })).json()) as Status;
        return status.clones.running === 0 && status.clones.waiting === 0;
      },
      { timeoutMs: 60_000, what: 'no clone running or waiting' },
    );
    assert.equal(status!.clones, { running: 0, waiting: 0, max: 3 });
    const { most, clones } = mostAtOnce(wrap.events);
    assert.is(clones, 40);
    assert.ok(most <= 3, `at most 3 clones at once, saw ${most}`);
    assert.ok(most >= 2, `the clones do overlap (saw ${most}), so the bound is what held them`);
    void seed;
  } finally {
    assert.is(await slave.stop(), 0);
  }
});

test.run();
