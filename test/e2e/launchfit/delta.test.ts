// Delta updates (docs/launchfit.md "Delta updates") with real processes, gpg keys, zstd and the
// loopback update server that logs each request: `release publish` writes the manifest and a
// patch, a host on 1.0 rebuilds 1.1 from it without asking for the tarball or the manifest (it
// rebuilds that from the one it kept for 1.0; a kept one spoilt or gone: fetched whole), and the
// folder it builds is the tarball's (a file that became a folder too); a file the app changed,
// `updates.delta: false` and `--no-delta` all end in the full download, said in the log and in
// `status`.
import {
  appendFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { folderDigest } from '../../../lib/launchfit/install/reuse-kept-release.ts';
import { parseVersionFile } from '../../../lib/release/format/version-file.ts';
import { runScript } from '../../_helpers/common.ts';
import { currentOf, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const TARBALL_11 = 'my-app-gnu-linux-1.1.tar.gz';
const update = (w: World) => runScript('launchfit', ['update', '--dir', w.deploy]);
const versionAt = (w: World) => parseVersionFile(readFileSync(path.join(w.updates, 'VERSION'), 'utf8'));
const requested = (w: World, file: string) => w.server.requests.filter((r) => r.path === file).length;

/** Module i's text: 8 KB that gzip cannot shrink much, the same in every version. */
const moduleText = (i: number): string =>
  Array.from({ length: 128 }, (_, k) => `// ${createHash('sha256').update(`${i}.${k}`).digest('hex')}\n`).join('');

/** An app folder for `version`: a dependency tree, a file moved in 1.1, one removed, a link, a file that becomes a folder. */
function appFolder(w: World, version: string): string {
  const dir = w.makeApp(version);
  mkdirSync(path.join(dir, 'node_modules/dep/lib'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(path.join(dir, `node_modules/dep/lib/f${i}.js`), moduleText(i));
  writeFileSync(path.join(dir, 'node_modules/dep/package.json'), '{"name":"dep","version":"1.0.0"}\n');
  symlinkSync('dep/lib/f1.js', path.join(dir, 'node_modules/first.js'));
  writeFileSync(path.join(dir, version === '1.0' ? 'old-name.txt' : 'new-name.txt'), 'moved, same bytes\n');
  if (version === '1.0') writeFileSync(path.join(dir, 'gone.txt'), 'removed in 1.1\n');
  // A path that is a file in 1.0 and a folder in 1.1, and one the other way round.
  if (version === '1.0') {
    writeFileSync(path.join(dir, 'shape'), 'a file in 1.0\n');
    mkdirSync(path.join(dir, 'turns'));
    writeFileSync(path.join(dir, 'turns/inner.txt'), 'a folder in 1.0\n');
  } else {
    mkdirSync(path.join(dir, 'shape'));
    writeFileSync(path.join(dir, 'shape/inner.txt'), 'a folder in 1.1\n');
    writeFileSync(path.join(dir, 'turns'), 'a file in 1.1\n');
  }
  if (version !== '1.0') {
    appendFileSync(path.join(dir, 'node_modules/dep/lib/f7.js'), 'exports.y = 2;\n');
    writeFileSync(path.join(dir, 'node_modules/dep/lib/added.js'), 'exports.added = true;\n');
  }
  return dir;
}

const publish = (w: World, version: string, extra: { delta?: boolean } = {}) =>
  w.publish(version, { dir: appFolder(w, version), ...extra });

const worlds: World[] = [];
test.after(async () => {
  for (const w of worlds) await w.server.close();
});

/** A host deployed with 1.0; 1.1 published after it. */
async function hostOn10(config = ''): Promise<World> {
  const w = await makeWorld();
  worlds.push(w);
  await publish(w, '1.0');
  w.writeConfig(config);
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  await publish(w, '1.1');
  return w;
}

test('1.0 → 1.1 is rebuilt from the patch: no tarball fetched, the same folder as the tarball gives', async () => {
  const w = await hostOn10();
  const info = versionAt(w);
  assert.ok(info.manifest, 'VERSION names the manifest');
  assert.equal(
    info.patches?.map((p) => p.from),
    ['1.0'],
  );
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  assert.is(requested(w, TARBALL_11), 0, 'the 1.1 tarball was not downloaded');
  assert.match(u.stdout + u.stderr, /rebuilt my-app-gnu-linux-1\.1\.tar\.gz from 1\.0.*way=patch/);
  const status = await statusOf(w.deploy);
  assert.is(status.lastInstall.way, 'patch');
  assert.is(status.lastInstall.from, '1.0');
  // The manifest was rebuilt from the one kept when 1.0 was installed: only the patch came.
  assert.is(requested(w, info.manifest!.file), 0, 'the 1.1 manifest was not fetched');
  assert.is(status.lastInstall.bytes, info.patches![0].size, 'the bytes fetched are the patch');
  assert.match(u.stdout + u.stderr, /manifest="?rebuilt from the one kept for my-app-gnu-linux-1\.0/);
  const kept = readFileSync(path.join(w.deploy, '.launchfit/manifests/my-app-gnu-linux-1.1.manifest'));
  assert.is(
    createHash('sha256').update(kept).digest('hex'),
    info.manifest!.sha256,
    '1.1 keeps the signed manifest for the next patch',
  );
  // A second host on 1.0 with delta off unpacks the tarball: the two folders are the same.
  const full = await hostOn10('  delta: false\n');
  const f = await update(full);
  assert.is(f.exitCode, 0, f.stdout + f.stderr);
  assert.is((await statusOf(full.deploy)).lastInstall.way, 'full');
  const a = await folderDigest(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1'));
  const b = await folderDigest(path.join(full.deploy, 'releases/my-app-gnu-linux-1.1'));
  assert.is(a, b, 'the rebuilt folder is the unpacked tarball, file for file, mode for mode');
  // The digest recorded for the rebuilt release (from the manifest, not a walk) is the folder's.
  const state = JSON.parse(readFileSync(path.join(w.deploy, '.launchfit/state.json'), 'utf8'));
  assert.is(state.installed['my-app-gnu-linux-1.1'].tree, a, 'the recorded tree is the folder walked');
  assert.is(readFileSync(path.join(w.deploy, 'current/shape/inner.txt'), 'utf8'), 'a folder in 1.1\n');
  assert.is(readFileSync(path.join(w.deploy, 'current/turns'), 'utf8'), 'a file in 1.1\n');
  const app = readFileSync(path.join(w.deploy, 'current/node_modules/dep/lib/f7.js'), 'utf8');
  assert.ok(app.endsWith('exports.y = 2;\n'));
});

test('a kept manifest that was edited, or is gone, is not trusted: the manifest is fetched whole', async () => {
  for (const spoil of ['edited', 'gone'] as const) {
    const w = await hostOn10();
    const info = versionAt(w);
    const kept = path.join(w.deploy, '.launchfit/manifests/my-app-gnu-linux-1.0.manifest');
    if (spoil === 'gone') unlinkSync(kept);
    // A file 1.1 keeps as is, claimed to have other bytes: what a host must not take on trust.
    else
      writeFileSync(
        kept,
        readFileSync(kept, 'utf8')
          .split('\n')
          .map((line) =>
            line.includes('/dep/lib/f3.js"')
              ? line.replace(/"sha256":"[0-9a-f]{64}"/, `"sha256":"${'0'.repeat(64)}"`)
              : line,
          )
          .join('\n'),
      );
    const u = await update(w);
    assert.is(u.exitCode, 0, u.stdout + u.stderr);
    assert.is(requested(w, info.manifest!.file), 1, `${spoil}: the manifest was fetched`);
    const status = await statusOf(w.deploy);
    assert.is(status.lastInstall.way, 'patch', spoil);
    assert.ok(status.lastInstall.bytes > info.patches![0].size, `${spoil}: the manifest's bytes counted`);
    if (spoil === 'edited') assert.match(u.stdout + u.stderr, /gives another one than VERSION signs; fetching it/);
    const a = await folderDigest(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1'));
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1', spoil);
    assert.is(
      JSON.parse(readFileSync(path.join(w.deploy, '.launchfit/state.json'), 'utf8')).installed['my-app-gnu-linux-1.1']
        .tree,
      a,
    );
  }
});

test('a file the app changed in the current release is not reused: the full tarball, said so', async () => {
  const w = await hostOn10();
  const file = path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/node_modules/dep/lib/f3.js');
  appendFileSync(file, '// edited on the host\n');
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.match(u.stdout + u.stderr, /delta update from 1\.0 failed.*f3\.js.*no longer matches its signed digest/);
  assert.is(requested(w, TARBALL_11), 1, 'the tarball was downloaded instead');
  assert.is((await statusOf(w.deploy)).lastInstall.way, 'full');
  assert.not.match(readFileSync(path.join(w.deploy, 'current/node_modules/dep/lib/f3.js'), 'utf8'), /edited/);
});

/** The held files a rebuild reused, and how many of them it read, from its log line. */
function heldFilesOf(out: string): { reused: number; read: number } {
  const m = /rebuilt my-app-gnu-linux-1\.\d\.tar\.gz from .*reused=(\d+) read=(\d+)/.exec(out);
  assert.ok(m, `no "rebuilt ... reused= read=" in the log:\n${out}`);
  return { reused: Number(m[1]), read: Number(m[2]) };
}

test('held files are checked by their digest book; one rewritten in place, its mtime put back, is read and refused', async () => {
  // Untouched: the book written when 1.0 was unpacked vouches for every file, none is read again.
  const clean = await hostOn10();
  const u = await update(clean);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  const held = heldFilesOf(u.stdout + u.stderr);
  assert.ok(held.reused > 40, `reused ${held.reused}`);
  assert.is(held.read, 0, 'no held file read again');
  assert.ok(existsSync(path.join(clean.deploy, '.launchfit/manifests/my-app-gnu-linux-1.1.digests')));
  // The same bytes count, other bytes, the old mtime: only the ctime tells, and it does.
  const w = await hostOn10();
  const file = path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/node_modules/dep/lib/f3.js');
  const before = statSync(file);
  const text = readFileSync(file, 'utf8');
  writeFileSync(
    file,
    text.replace(/[0-9a-f]/, (c) => (c === '0' ? '1' : '0')),
  );
  utimesSync(file, before.atime, before.mtime);
  assert.is(statSync(file).mtimeMs, before.mtimeMs);
  assert.is(statSync(file).size, before.size);
  const v = await update(w);
  assert.is(v.exitCode, 0, v.stdout + v.stderr);
  assert.match(v.stdout + v.stderr, /delta update from 1\.0 failed.*f3\.js.*no longer matches its signed digest/);
  assert.is.not((await statusOf(w.deploy)).lastInstall.way, 'patch');
  assert.is(readFileSync(path.join(w.deploy, 'current/node_modules/dep/lib/f3.js'), 'utf8'), text);
});

test('the digest book is carried over pruning, which changes the ctime of every file a release shared', async () => {
  const w = await hostOn10('  keep: 2\n');
  for (const version of ['1.1', '1.2', '1.3']) {
    if (version !== '1.1') await publish(w, version);
    const u = await update(w);
    assert.is(u.exitCode, 0, u.stdout + u.stderr);
    assert.is((await statusOf(w.deploy)).lastInstall.way, 'patch', version);
    // 1.2's install pruned 1.0, whose links shared every unchanged file's inode with 1.1 and 1.2.
    assert.is(heldFilesOf(u.stdout + u.stderr).read, 0, `${version}: no held file read again`);
  }
  assert.not.ok(existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.0')), '1.0 was pruned');
  assert.not.ok(existsSync(path.join(w.deploy, '.launchfit/manifests/my-app-gnu-linux-1.0.digests')));
});

test('a file of the current release replaced by a symlink is not followed or reused', async () => {
  const w = await hostOn10();
  const secret = path.join(w.base, 'secret.txt');
  writeFileSync(secret, 'not part of any release\n');
  const file = path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/node_modules/dep/lib/f5.js');
  unlinkSync(file);
  symlinkSync(secret, file);
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.match(u.stdout + u.stderr, /f5\.js in the held release is missing or not a regular file/);
  // The patch is refused; the files way fetches f5.js from the tarball instead of following the link.
  assert.is((await statusOf(w.deploy)).lastInstall.way, 'files');
  const made = path.join(w.deploy, 'releases/my-app-gnu-linux-1.1/node_modules/dep/lib/f5.js');
  assert.ok(lstatSync(made).isFile(), 'f5.js is a regular file in 1.1');
  assert.not.match(readFileSync(made, 'utf8'), /not part of any release/);
});

test('a folder of the current release replaced by a link to an exact copy is not reused through it', async () => {
  const w = await hostOn10();
  const folder = path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/node_modules/dep/lib');
  const copy = path.join(w.base, 'lib-copy');
  cpSync(folder, copy, { recursive: true });
  rmSync(folder, { recursive: true });
  symlinkSync(copy, folder);
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  // Every byte matches its signed digest: only the folder's real path tells the link.
  assert.match(u.stdout + u.stderr, /node_modules\/dep\/lib\/f\d\.js in the held release is reached through a link/);
  const made = path.join(w.deploy, 'releases/my-app-gnu-linux-1.1/node_modules/dep/lib');
  assert.ok(lstatSync(made).isDirectory(), 'lib is a real folder in 1.1, not the link');
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
});

test('updates.delta: false and publish --no-delta both mean the full tarball', async () => {
  const off = await hostOn10('  delta: false\n');
  const u = await update(off);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.match(u.stdout + u.stderr, /no delta update \(updates\.delta is false\)/);
  assert.is(requested(off, TARBALL_11), 1);
  assert.not.ok(existsSync(path.join(off.deploy, '.launchfit/manifests')), 'no manifests kept with delta off');

  // Through the command line: delta files by default, none with --no-delta.
  const w = await makeWorld();
  worlds.push(w);
  const cli = (version: string, ...extra: string[]) =>
    runScript('release', [
      ...['publish', appFolder(w, version), '--name', 'my-app', '--platform', 'gnu-linux', '--version', version],
      ...['--key', w.secretKey, '--passphrase-file', w.passFile, '--to', w.updates, ...extra],
    ]);
  const p10 = await cli('1.0');
  assert.is(p10.exitCode, 0, p10.stderr);
  assert.ok(versionAt(w).manifest, 'release publish writes the MANIFEST line by default');
  w.writeConfig();
  assert.is((await runScript('launchfit', ['deploy', '--dir', w.deploy])).exitCode, 0);
  const p11 = await cli('1.1', '--no-delta');
  assert.is(p11.exitCode, 0, p11.stderr);
  assert.equal([versionAt(w).manifest, versionAt(w).patches], [undefined, undefined]);
  const v = await update(w);
  assert.is(v.exitCode, 0, v.stdout + v.stderr);
  assert.is((await statusOf(w.deploy)).lastInstall.way, 'full');
});

test.run();
