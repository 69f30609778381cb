// @deno
// The files way of a delta update (docs/launchfit.md "Delta updates") with real processes, gpg
// keys, a real `release publish --patches 0` and the loopback update server that logs each
// request: a host on 1.0 offered 1.1 without a patch hard-links the files 1.0 still has and
// fetches only the gzip members holding the others, by HTTP Range on the tarball; a file the app
// changed in place is fetched, not reused. A lying index (paths swapped, a path out of the
// release, another size, none at all), a server that ignores Range and a gzip bomb all end in
// the full tarball, nothing left in tmp/, and the next release goes the files way again.
// `updates.delta: false` asks for no index at all.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../lib/core/log.ts';
import { publishRelease } from '../../../lib/release/publish/publish.ts';
import { runScript } from '../../_helpers/common.ts';
import { currentOf, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const tarballOf = (v: string) => `my-app-gnu-linux-${v}.tar.gz`;
const indexOf = (v: string) => `my-app-gnu-linux-${v}.index`;
const manifestOf = (v: string) => `my-app-gnu-linux-${v}.manifest`;
const releaseOf = (v: string) => `releases/my-app-gnu-linux-${v}`;
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const at = (w: World, name: string) => path.join(w.updates, name);
const update = (host: string) => runScript('launchfit', ['update', '--dir', host]);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Module i's text: 8.5 KB that gzip cannot shrink much below half, the same in every version. */
const moduleText = (i: number) => Array.from({ length: 128 }, (_, k) => `// ${sha256(`${i}.${k}`)}\n`).join('');
/** 130 KB of the same kind: a file that gets a gzip member of its own. */
const bigText = (tag: string) => Array.from({ length: 2048 }, (_, k) => `${sha256(`${tag}.${k}`)}\n`).join('');
const MODULES = 60;
const mod = (i: number) => `lib/m${String(i).padStart(2, '0')}.js`;
/** The source file each version changes; version.txt and start.sh (executable) carry the version too. */
const CHANGED = mod(20);
const CHANGED_FILES = [CHANGED, 'start.sh', 'version.txt'];

/** The app folder of `version`: 60 modules, four large files, an executable kept and one changed, a link. */
function appFolder(w: World, version: string): string {
  const dir = w.makeApp(version);
  for (const sub of ['lib', 'bin', 'assets']) mkdirSync(path.join(dir, sub));
  for (let i = 0; i < MODULES; i++)
    writeFileSync(path.join(dir, mod(i)), moduleText(i) + (mod(i) === CHANGED ? `exports.v = '${version}';\n` : ''));
  for (const tag of ['a', 'b', 'c', 'd']) writeFileSync(path.join(dir, `assets/${tag}.bin`), bigText(tag));
  writeFileSync(path.join(dir, 'bin/keep.sh'), '#!/bin/sh\necho the same in every version\n');
  chmodSync(path.join(dir, 'bin/keep.sh'), 0o755);
  writeFileSync(path.join(dir, 'start.sh'), `#!/bin/sh\nexec node server.cjs # ${version}\n`);
  chmodSync(path.join(dir, 'start.sh'), 0o755);
  symlinkSync('lib/m01.js', path.join(dir, 'first.js'));
  return dir;
}

/** `release publish` of `version` with no patches: a host can only take the files way or the tarball. */
async function publishNoPatch(w: World, version: string): Promise<string> {
  const dir = appFolder(w, version);
  const r = await runScript('release', [
    ...['publish', dir, '--name', 'my-app', '--platform', 'gnu-linux', '--version', version],
    ...['--key', w.secretKey, '--passphrase-file', w.passFile, '--to', w.updates, '--patches', '0'],
  ]);
  assert.is(r.exitCode, 0, r.stdout + r.stderr);
  const versionText = readFileSync(at(w, 'VERSION'), 'utf8');
  assert.match(versionText, /^MANIFEST /m, 'VERSION names the manifest');
  assert.not.match(versionText, /^PATCH /m, 'VERSION offers no patch');
  return dir;
}

/** The same through `release publish`'s library call (what the command runs), for the hostile test's many releases. */
async function publishQuick(w: World, version: string): Promise<string> {
  const dir = appFolder(w, version);
  await publishRelease({
    ...{ dir, name: 'my-app', platform: 'gnu-linux', version, key: w.secretKey, passphraseFile: w.passFile },
    ...{ to: w.updates, log: silentLogger, patches: 0 },
  });
  assert.not.match(readFileSync(at(w, 'VERSION'), 'utf8'), /^PATCH /m, 'VERSION offers no patch');
  return dir;
}

/** A deploy folder beside w.deploy: another host of the same update server, `config` under `updates:`. */
function addHost(w: World, name: string, config = ''): string {
  const host = path.join(w.base, name);
  mkdirSync(host);
  w.writeConfig(config);
  for (const file of ['launchify.yml', 'trusted.asc']) copyFileSync(path.join(w.deploy, file), path.join(host, file));
  w.writeConfig();
  return host;
}

async function deploy(host: string): Promise<void> {
  const deployed = await runScript('launchfit', ['deploy', '--dir', host]);
  assert.is(deployed.exitCode, 0, deployed.stdout + deployed.stderr);
}

/**
 * One update server with three hosts deployed with 1.0 by the real `launchfit deploy` (two as
 * usual, one with `updates.delta: false`), then 1.1 published by `release publish --patches 0`.
 */
async function mainWorld() {
  const w = await makeWorld();
  await w.publish('1.0', { dir: appFolder(w, '1.0') });
  w.writeConfig();
  const hosts = {
    files: w.deploy,
    edited: addHost(w, 'deploy-edited'),
    off: addHost(w, 'deploy-off', '  delta: false\n'),
  };
  await Promise.all(Object.values(hosts).map(deploy));
  return { w, hosts, dir: await publishNoPatch(w, '1.1') };
}

/** Another update server and one host on 1.0: the hostile test publishes 1.1 and on. */
async function hostileWorld(): Promise<World> {
  const w = await makeWorld();
  await w.publish('1.0', { dir: appFolder(w, '1.0') });
  w.writeConfig();
  await deploy(w.deploy);
  return w;
}

let main: Awaited<ReturnType<typeof mainWorld>>;
let hostile: World;
test.before(async () => {
  [main, hostile] = await Promise.all([mainWorld(), hostileWorld()]);
});
test.after(async () => {
  for (const w of [main?.w, hostile]) await w?.server.close();
});

/** Each path under `root`: folders, links with their target, files with mode and digest. */
function treeOf(root: string, normalise = false, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(path.join(root, rel)).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    const st = lstatSync(path.join(root, p));
    // The published folder as a host must make it: 755 for folders and executables, else 644.
    const mode = normalise ? (st.isDirectory() || st.mode & 0o111 ? '755' : '644') : (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) Object.assign(out, { [p]: `dir ${mode}` }, treeOf(root, normalise, p));
    else if (st.isSymbolicLink()) out[p] = `link ${readlinkSync(path.join(root, p))}`;
    else out[p] = `file ${mode} ${sha256(readFileSync(path.join(root, p)))}`;
  }
  return out;
}

/** The host runs `version`, whose folder is the one published, file for file, mode for mode; tmp/ is empty. */
function assertInstalled(host: string, version: string, dir: string): void {
  assert.is(currentOf(host), releaseOf(version));
  assert.equal(treeOf(path.join(host, releaseOf(version))), treeOf(dir, true), `${version} is the published folder`);
  assert.equal(readdirSync(path.join(host, '.launchfit/tmp')), [], 'nothing left in tmp/');
}

interface Index {
  format: string;
  tarball: string;
  size: number;
  root: string;
  members: Array<{ at: number; bytes: number; paths: string[] }>;
}
const readIndex = (w: World, v: string): Index => JSON.parse(readFileSync(at(w, indexOf(v)), 'utf8'));
const memberWith = (index: Index, p: string) => {
  const m = index.members.findIndex((member) => member.paths.includes(p));
  assert.ok(m >= 0, `the index says where ${p} is`);
  return m;
};
/** The members holding the files each release changes. */
const changedMembers = (index: Index) => new Set(CHANGED_FILES.map((p) => memberWith(index, p)));

/** The requests for `file` made since request number `since`. */
const asked = (w: World, file: string, since = 0) => w.server.requests.slice(since).filter((r) => r.path === file);
const rangeBytes = (range: string) => {
  const m = /^bytes=(\d+)-(\d+)$/.exec(range);
  assert.ok(m, `a closed range: ${range}`);
  return Number(m[2]) - Number(m[1]) + 1;
};

/**
 * The update `out` says to `version` took the files way from `from`, asking the tarball only by
 * Range (since request `since`) and for exactly the bytes of `members`, a small share of it.
 */
async function assertFilesWay(
  w: World,
  host: string,
  {
    version,
    from,
    since,
    out,
    members,
  }: { version: string; from: string; since: number; out: string; members: Set<number> },
): Promise<void> {
  const tarball = tarballOf(version);
  assert.not.match(out, /downloading the whole release|fetching only the files/);
  const rebuilt = new RegExp(`rebuilt ${esc(tarball)} from ${esc(from)} and (\\d+) bytes of the tarball`).exec(out);
  assert.ok(rebuilt, out);
  const status = await statusOf(host);
  assert.is(status.lastInstall.way, 'files');
  assert.is(status.lastInstall.from, from);
  const asks = asked(w, tarball, since);
  assert.ok(asks.length > 0, 'the tarball was asked for');
  for (const r of asks) {
    assert.ok(r.range, 'every request for the tarball has a Range');
    assert.is(r.status, 206, 'and is answered 206');
  }
  const ranged = asks.reduce((n, r) => n + rangeBytes(r.range!), 0);
  assert.is(Number(rebuilt[1]), ranged, 'the log gives the bytes asked for');
  const index = readIndex(w, version);
  const wanted = [...members].reduce((n, m) => n + index.members[m]!.bytes, 0);
  assert.is(ranged, wanted, 'exactly the members holding the files the host lacks');
  const metadata = statSync(at(w, indexOf(version))).size + statSync(at(w, manifestOf(version))).size;
  assert.is(status.lastInstall.bytes, metadata + ranged, 'status counts the index, the manifest and the members');
  const size = statSync(at(w, tarball)).size;
  assert.ok(status.lastInstall.bytes < size / 4, `${status.lastInstall.bytes} bytes of a ${size}-byte tarball`);
}

/** `launchfit update` of `host`, which must exit 0: its output, and where its requests start in the server's list. */
async function updated(w: World, host: string): Promise<{ since: number; out: string }> {
  const since = w.server.requests.length;
  const u = await update(host);
  const out = u.stdout + u.stderr;
  assert.is(u.exitCode, 0, out);
  return { since, out };
}

test('one file changed, no patch: its members fetched by Range, the rest hard-linked from 1.0', async () => {
  const { w, hosts, dir } = main;
  const host = hosts.files;
  const { since, out } = await updated(w, host);
  assert.match(out, /no patch \(VERSION offers no patch\)/);
  const members = changedMembers(readIndex(w, '1.1'));
  await assertFilesWay(w, host, { version: '1.1', from: '1.0', since, out, members });
  assertInstalled(host, '1.1', dir);
  const r10 = path.join(host, releaseOf('1.0'));
  const r11 = path.join(host, releaseOf('1.1'));
  // What 1.0 still has is the same inode; what it lacks, new files with the published bytes.
  for (const p of [mod(3), mod(59), 'assets/a.bin', 'bin/keep.sh', 'launchify.yml', 'server.cjs'])
    assert.is(statSync(path.join(r11, p)).ino, statSync(path.join(r10, p)).ino, `${p} is hard-linked from 1.0`);
  for (const p of CHANGED_FILES)
    assert.is.not(statSync(path.join(r11, p)).ino, statSync(path.join(r10, p)).ino, `${p} is a new file`);
  assert.is(statSync(path.join(r11, 'bin/keep.sh')).mode & 0o777, 0o755, 'a reused executable stays 755');
  assert.is(statSync(path.join(r11, 'start.sh')).mode & 0o777, 0o755, 'a fetched executable is 755');
  assert.is(statSync(path.join(r11, CHANGED)).mode & 0o777, 0o644);
  assert.ok(readFileSync(path.join(r11, CHANGED), 'utf8').endsWith("exports.v = '1.1';\n"));
  assert.is(readFileSync(path.join(host, 'current/version.txt'), 'utf8'), '1.1\n');
  assert.is(readlinkSync(path.join(r11, 'first.js')), 'lib/m01.js');
});

test('a file the app changed in place in 1.0 is not reused: fetched with the published bytes, still the files way', async () => {
  const { w, hosts, dir } = main;
  const host = hosts.edited;
  const edited = mod(5);
  const held = path.join(host, releaseOf('1.0'), edited);
  // The same size, other bytes, the same inode: only its digest tells.
  const ino = statSync(held).ino;
  writeFileSync(held, moduleText(5).replace(/^\/\/ ./, '// X'));
  assert.is(statSync(held).ino, ino);
  const { since, out } = await updated(w, host);
  const index = readIndex(w, '1.1');
  const members = changedMembers(index).add(memberWith(index, edited));
  await assertFilesWay(w, host, { version: '1.1', from: '1.0', since, out, members });
  assertInstalled(host, '1.1', dir);
  const made = path.join(host, releaseOf('1.1'), edited);
  assert.is(readFileSync(made, 'utf8'), moduleText(5), 'the published bytes');
  assert.is.not(statSync(made).ino, ino, 'not a link to the changed file');
  assert.is(
    statSync(path.join(host, releaseOf('1.1'), mod(3))).ino,
    statSync(path.join(host, releaseOf('1.0'), mod(3))).ino,
  );
});

test('updates.delta: false asks for no index: the full tarball', async () => {
  const { w, hosts, dir } = main;
  const host = hosts.off;
  const { since, out } = await updated(w, host);
  assert.match(out, /no delta update \(updates\.delta is false\)/);
  assert.not.match(out, /fetching only the files/);
  assert.is((await statusOf(host)).lastInstall.way, 'full');
  assertInstalled(host, '1.1', dir);
  const requests = w.server.requests.slice(since);
  assert.equal(
    requests.filter((r) => r.path.endsWith('.index')),
    [],
    'no index asked for',
  );
  assert.equal(
    asked(w, tarballOf('1.1'), since).map((r) => [r.range, r.status]),
    [[undefined, 200]],
    'the tarball, whole, once',
  );
});

/** The server's answer to Range requests for `file` replaced by `answer`; other requests served as usual. */
function onRange(
  w: World,
  file: string,
  answer: (range: { from: number; to: number }, res: ServerResponse, whole: Buffer) => void,
): void {
  w.server.overrides.set(file, (req: IncomingMessage, res: ServerResponse) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) return false;
    answer({ from: Number(m[1]), to: Number(m[2]) }, res, readFileSync(at(w, file)));
    return true;
  });
}

/** 16 MiB of zeros in 16 KB of gzip. */
const BOMB = gzipSync(Buffer.alloc(16 << 20), { level: 9 });

/** The index of `version` rewritten by `edit`; what it returns puts the published one back. */
function editIndex(w: World, version: string, edit: (index: Index) => void): () => void {
  const original = readFileSync(at(w, indexOf(version)));
  const index = readIndex(w, version);
  edit(index);
  writeFileSync(at(w, indexOf(version)), `${JSON.stringify(index)}\n`);
  return () => writeFileSync(at(w, indexOf(version)), original);
}

interface Hostile {
  what: string;
  /** Spoils what the server offers for `version`; returns how to put it right. */
  spoil(w: World, version: string): () => void;
  /** The reason the files way is given up, in the log. */
  reason: RegExp;
  /** Whether the host gets as far as asking for members. */
  ranged: boolean;
}

const HOSTILE: Hostile[] = [
  {
    what: 'paths swapped between two members',
    spoil: (w, v) =>
      editIndex(w, v, (index) => {
        const m = memberWith(index, CHANGED);
        // Another member of as many modules: the same number of entries, of the same size.
        const n = index.members.findIndex(
          (o, i) =>
            i !== m &&
            o.paths.length === index.members[m]!.paths.length &&
            o.paths.every((p) => /^lib\/m\d+\.js$/.test(p)),
        );
        assert.ok(n >= 0, 'two members of modules alike');
        [index.members[m]!.paths, index.members[n]!.paths] = [index.members[n]!.paths, index.members[m]!.paths];
      }),
    reason: new RegExp(`${esc(CHANGED)} fetched from the tarball does not match its signed digest`),
    ranged: true,
  },
  {
    what: 'a path out of the release',
    spoil: (w, v) => editIndex(w, v, (index) => index.members[memberWith(index, CHANGED)]!.paths.push('../escape')),
    reason: /the tarball's index names a bad path "\.\.\/escape": it has an empty, "\." or "\.\." part/,
    ranged: false,
  },
  {
    what: 'an absolute path',
    spoil: (w, v) =>
      editIndex(w, v, (index) => {
        const paths = index.members[memberWith(index, CHANGED)]!.paths;
        paths[paths.indexOf(CHANGED)] = '/etc/passwd';
      }),
    reason: /the tarball's index names a bad path "\/etc\/passwd": it is an absolute path/,
    ranged: false,
  },
  {
    what: 'an index for another size',
    spoil: (w, v) =>
      editIndex(w, v, (index) => {
        index.size += 1;
        index.members.at(-1)!.bytes += 1;
      }),
    reason: /the tarball's index is for \d+ bytes, not the \d+ VERSION gives/,
    ranged: false,
  },
  {
    what: 'no index',
    spoil: (w, v) => {
      const original = readFileSync(at(w, indexOf(v)));
      rmSync(at(w, indexOf(v)));
      return () => writeFileSync(at(w, indexOf(v)), original);
    },
    reason: /no my-app-gnu-linux-[\d.]+\.index on the update server; the files this host lacks cannot be fetched alone/,
    ranged: false,
  },
  {
    what: 'a server that ignores Range',
    spoil: (w, v) => {
      onRange(w, tarballOf(v), (_range, res, whole) => {
        res.writeHead(200, { 'Content-Length': whole.length });
        res.end(whole);
      });
      return () => w.server.overrides.delete(tarballOf(v));
    },
    // Not "… is N bytes, more than the M allowed": the server is not hostile, it lacks Range.
    reason: /does not answer Range requests/,
    ranged: true,
  },
  {
    what: 'a gzip bomb in the members',
    spoil: (w, v) => {
      onRange(w, tarballOf(v), ({ from, to }, res, whole) => {
        const body = Buffer.alloc(to - from + 1); // the length asked for, a bomb at its start
        BOMB.copy(body, 0, 0, Math.min(body.length, BOMB.length));
        res.writeHead(206, { 'Content-Length': body.length, 'Content-Range': `bytes ${from}-${to}/${whole.length}` });
        res.end(body);
      });
      return () => w.server.overrides.delete(tarballOf(v));
    },
    reason: /a member of the tarball does not gunzip to at most the \d+ bytes its files may take/,
    ranged: true,
  },
];

test('a lying index, a server without Range, a gzip bomb: the full tarball, then the files way again', async () => {
  const w = hostile;
  const host = w.deploy;
  // Each case spoils a release (1.1, 1.3, …); the one after it (1.2, 1.4, …) is served right.
  let current = '1.0';
  let n = 1;
  const wrongReasons: string[] = [];
  for (const { what, spoil, reason, ranged } of HOSTILE) {
    const bad = `1.${n++}`;
    const dir = await publishQuick(w, bad);
    const restore = spoil(w, bad);
    let since = w.server.requests.length;
    const u = await update(host);
    const out = u.stdout + u.stderr;
    assert.is(u.exitCode, 0, `${what}: ${out}`);
    const refused =
      what === 'no index'
        ? reason
        : new RegExp(`fetching only the files my-app-gnu-linux-${esc(current)} lacks failed \\(.*${reason.source}`);
    // Collected, so that every case runs: the message is what an operator reads.
    if (!refused.test(out)) wrongReasons.push(`${what}: the log does not match ${refused}:\n${out}`);
    assert.match(out, /downloading the whole release/, what);
    assert.not.match(out, /rebuilt my-app-gnu-linux-\S+ from/, what);
    assert.is((await statusOf(host)).lastInstall.way, 'full', what);
    assertInstalled(host, bad, dir);
    const asks = asked(w, tarballOf(bad), since);
    assert.equal(
      asks.filter((r) => !r.range).map((r) => r.status),
      [200],
      `${what}: the tarball downloaded whole, once`,
    );
    assert.is(asks.length > 1, ranged, `${what}: members asked for first?`);
    current = bad;
    restore();

    // The next release, served right: the files way from the one the tarball installed.
    const good = `1.${n++}`;
    const goodDir = await publishQuick(w, good);
    since = w.server.requests.length;
    const v = await update(host);
    assert.is(v.exitCode, 0, `after ${what}: ${v.stdout}${v.stderr}`);
    const members = changedMembers(readIndex(w, good));
    await assertFilesWay(w, host, { version: good, from: bad, since, out: v.stdout + v.stderr, members });
    assertInstalled(host, good, goodDir);
    current = good;
  }
  assert.equal(wrongReasons, [], wrongReasons.join('\n\n'));
});

test.run();
