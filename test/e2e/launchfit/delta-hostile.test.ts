// Hostile delta updates (docs/launchfit.md "Delta updates"), with a real host, real zstd and a
// VERSION re-signed by the trusted key (the server looks honest; what it offers is not): a zstd
// bomb, wrong bytes, manifests that lead out of the release, a patch from a release the host does
// not hold, a manifest changed or replayed, a patch header's manifest changes that are wrong, a
// host killed while fetching a patch. Each ends in the
// full tarball (or, with the tarball gone too, in no change at all), never in a half-built release.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, runScript, scriptCommand, tmpDir, waitFor } from '../../_helpers/common.ts';
import { detachSign } from '../../fixtures/launchfit/gpg.ts';
import { tinyDiskFor } from '../../_helpers/disk.ts';
import { currentOf, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const TARBALL = 'my-app-gnu-linux-1.1.tar.gz';
const MANIFEST = 'my-app-gnu-linux-1.1.manifest';
const PATCH = 'my-app-gnu-linux-1.1.from-1.0.patch';
const LEDGER = ['ledger.jsonl', 'ledger.jsonl.sig', 'ledger.head.sig'];
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const update = (w: World) => runScript('launchfit', ['update', '--dir', w.deploy]);
const at = (w: World, name: string) => path.join(w.updates, name);

/** Module text gzip cannot shrink much, the same in every version. */
const moduleText = (i: number) => Array.from({ length: 96 }, (_, k) => `// ${sha256(`${i}.${k}`)}\n`).join('');

const hexLines = (tag: string, n: number) => Array.from({ length: n }, (_, k) => `${sha256(`${tag}.${k}`)}\n`).join('');
const BIG = hexLines('big', 8 * 1024);
const SAME = hexLines('same', 24 * 1024);
const worlds: World[] = [];
test.after(async () => {
  for (const w of worlds) await w.server.close();
});

/**
 * A host on 1.0 and 1.1 published with a patch from it. No ledger: these tests re-sign VERSION,
 * which a ledger entry would then no longer record (the ledger's refusals: release/ledger.test.ts).
 */
async function hostOn10(onDisk?: string): Promise<World> {
  const w = await makeWorld();
  worlds.push(w);
  const files = (v: string) => ({
    ...Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`m${i}.js`, moduleText(i)])),
    'changed.js': `${moduleText(99)}// ${v}\n`,
    // On the tiny disk: a 512 KiB file changed by a line, which a rebuild must write out whole,
    // beside 1.5 MiB that stays the same (so that the change is worth a patch).
    ...(onDisk ? { 'big.bin': `${BIG}${v}\n`, 'same.bin': SAME } : {}),
  });
  await w.publish('1.0', { files: files('1.0') });
  for (const name of LEDGER) rmSync(at(w, name), { force: true });
  w.writeConfig('  connect_timeout: 5\n  idle_timeout: 5\n');
  if (onDisk) {
    for (const name of ['launchify.yml', 'trusted.asc'])
      copyFileSync(path.join(w.deploy, name), path.join(onDisk, name));
    w.deploy = onDisk;
  }
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  await w.publish('1.1', { files: files('1.1') });
  for (const name of LEDGER) rmSync(at(w, name), { force: true });
  assert.ok(existsSync(at(w, PATCH)), 'publish made the patch from 1.0');
  return w;
}

/** VERSION edited by `edit` and signed again by the trusted key. */
async function resign(w: World, edit: (text: string) => string): Promise<void> {
  const text = edit(readFileSync(at(w, 'VERSION'), 'utf8'));
  writeFileSync(at(w, 'VERSION'), text);
  rmSync(at(w, 'VERSION.sig'));
  await detachSign(w.g, w.key.fpr, at(w, 'VERSION'), { passphrase: 'correct horse', out: at(w, 'VERSION.sig') });
}

/** The manifest rewritten by `edit` (its lines as objects), VERSION naming the new digest, signed. */
async function serveManifest(w: World, edit: (lines: Array<Record<string, unknown>>) => void): Promise<void> {
  const lines = readFileSync(at(w, MANIFEST), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  edit(lines);
  const text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
  writeFileSync(at(w, MANIFEST), text);
  await resign(w, (v) => v.replace(/^MANIFEST (\S+) \S+$/m, `MANIFEST $1 ${sha256(text)}`));
}

/** The patch rebuilt with one 'whole' group making every file its groups made, from `blob`. */
async function servePatchBody(w: World, body: (total: number) => Promise<Buffer>): Promise<void> {
  const bytes = readFileSync(at(w, PATCH));
  const header = JSON.parse(bytes.subarray(0, bytes.indexOf(10)).toString('utf8'));
  const files = header.groups.flatMap((g: { files: Array<Record<string, unknown>> }) =>
    g.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
  );
  const total = files.reduce((n: number, f: { size: number }) => n + f.size, 0);
  const blob = await body(total);
  const patch = Buffer.concat([
    Buffer.from(JSON.stringify({ ...header, groups: [{ kind: 'whole', bytes: blob.length, files }] }) + '\n'),
    blob,
  ]);
  writeFileSync(at(w, PATCH), patch);
  await resign(w, (v) => v.replace(/^PATCH 1\.0 (\S+) \S+ \d+$/m, `PATCH 1.0 $1 ${sha256(patch)} ${patch.length}`));
}

/** The patch's header rewritten by `edit` (its bytes after the header kept), VERSION naming the new patch, signed. */
async function servePatchHeader(w: World, edit: (header: Record<string, any>) => void): Promise<void> {
  const bytes = readFileSync(at(w, PATCH));
  const end = bytes.indexOf(10);
  const header = JSON.parse(bytes.subarray(0, end).toString('utf8'));
  edit(header);
  const patch = Buffer.concat([Buffer.from(JSON.stringify(header)), bytes.subarray(end)]);
  writeFileSync(at(w, PATCH), patch);
  await resign(w, (v) => v.replace(/^PATCH 1\.0 (\S+) \S+ \d+$/m, `PATCH 1.0 $1 ${sha256(patch)} ${patch.length}`));
}

async function zstd(input: Buffer): Promise<Buffer> {
  const dir = tmpDir('shipkit-zstd-');
  writeFileSync(path.join(dir, 'in'), input);
  const r = await runCommand('zstd', ['-q', '-f', '-19', path.join(dir, 'in'), '-o', path.join(dir, 'in.zst')]);
  assert.is(r.exitCode, 0, r.stderr);
  const out = readFileSync(path.join(dir, 'in.zst'));
  rmSync(dir, { recursive: true });
  return out;
}

/** The update with the 1.1 tarball gone: the delta refused with `pattern`, nothing changed. */
async function refusedWithoutTarball(w: World, pattern: RegExp): Promise<void> {
  const u = await update(w);
  assert.is.not(u.exitCode, 0, u.stdout + u.stderr);
  assert.match(u.stdout + u.stderr, pattern);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  assert.equal(readdirSync(path.join(w.deploy, 'releases')), ['my-app-gnu-linux-1.0']);
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/tmp')), [], 'no half-built release left');
  assert.equal(
    readdirSync(path.join(w.deploy, '.launchfit/downloads')).filter((n) => n.includes('patch')),
    [],
  );
}

/** With the tarball (or the good manifest) back, the same VERSION installs, the way it says. */
async function installsAfterAll(w: World, way: 'full' | 'patch'): Promise<void> {
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  if (way === 'full') assert.match(u.stdout + u.stderr, /downloading the whole release/);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  assert.is((await statusOf(w.deploy)).lastInstall.way, way);
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/downloads')), [], 'no partial download left behind');
}

test('a zstd bomb stops at the signed length; wrong bytes are refused by digest; both end in the tarball', async () => {
  const w = await hostOn10();
  const tarball = readFileSync(at(w, TARBALL));
  rmSync(at(w, TARBALL));
  await servePatchBody(w, () => zstd(Buffer.alloc(256 << 20))); // 256 MiB of zeros in a few KB
  await refusedWithoutTarball(
    w,
    /delta update from 1\.0 failed \(the patch does not decompress within its signed length of \d+ bytes/,
  );
  // The right length, the wrong bytes: past zstd, refused by the manifest's digest.
  await servePatchBody(w, (total) => zstd(randomBytes(total)));
  await refusedWithoutTarball(w, /delta update from 1\.0 failed \(.*(?:does not match|digest)/);
  writeFileSync(at(w, TARBALL), tarball);
  await installsAfterAll(w, 'full');
});

test('manifests that lead out of the release, repeat a path or put a file under a file: refused, nothing written', async () => {
  const w = await hostOn10();
  rmSync(at(w, TARBALL));
  const outside = path.join(w.deploy, 'releases', 'evil.txt');
  const file = (p: string) => ({ path: p, type: 'file', mode: '644', size: 5, sha256: sha256('evil\n'), target: null });
  const original = readFileSync(at(w, MANIFEST));
  const cases: Array<[string, (lines: Array<Record<string, unknown>>) => void, RegExp]> = [
    ['../', (l) => l.unshift(file('../evil.txt')), /the path "\.\.\/evil\.txt" has an empty, "\." or "\.\." part/],
    ['absolute', (l) => l.unshift(file('/tmp/evil.txt')), /the path "\/tmp\/evil\.txt" is an absolute path/],
    ['duplicate', (l) => l.push(l[l.length - 1]), /is out of order or listed twice/],
    [
      'symlink outside',
      (l) =>
        l.push({ path: 'zz-out', type: 'symlink', mode: '777', size: 0, sha256: null, target: '../../../etc/passwd' }),
      /links to "\.\.\/\.\.\/\.\.\/etc\/passwd", outside the release/,
    ],
    [
      'file under a file',
      (l) => l.push(file('version.txt/inner')),
      /the parent of "version\.txt\/inner" is not a folder/,
    ],
  ];
  for (const [, edit, pattern] of cases) {
    writeFileSync(at(w, MANIFEST), original);
    await serveManifest(w, edit);
    await refusedWithoutTarball(w, new RegExp(`delta update from 1\\.0 failed \\(.*${pattern.source}`, pattern.flags));
    assert.not.ok(existsSync(outside), 'nothing written outside the release');
  }
  writeFileSync(at(w, MANIFEST), original);
  await resign(w, (v) => v.replace(/^MANIFEST (\S+) \S+$/m, `MANIFEST $1 ${sha256(original)}`));
  await installsAfterAll(w, 'patch'); // the signed manifest back: the same patch applies
});

test('a manifest or patch changed without VERSION, a replayed manifest, a patch from 0.9: refused', async () => {
  const w = await hostOn10();
  rmSync(at(w, TARBALL));
  // Without a manifest kept for 1.0 the host fetches 1.1's whole (with one, it never asks DEST).
  rmSync(path.join(w.deploy, '.launchfit/manifests'), { recursive: true });
  const manifest = readFileSync(at(w, MANIFEST));
  writeFileSync(at(w, MANIFEST), Buffer.concat([manifest, Buffer.from('\n')]));
  await refusedWithoutTarball(w, /delta update from 1\.0 failed \(.*does not match the sha256 VERSION gives/);
  writeFileSync(at(w, MANIFEST), manifest);

  const patch = readFileSync(at(w, PATCH));
  const flipped = Buffer.from(patch);
  flipped[flipped.length - 1] ^= 1;
  writeFileSync(at(w, PATCH), flipped);
  await refusedWithoutTarball(w, /delta update from 1\.0 failed \(.*does not match the sha256 and size VERSION gives/);
  writeFileSync(at(w, PATCH), patch);

  // 1.0's own manifest, genuinely signed once, offered as 1.1's.
  const old = 'my-app-gnu-linux-1.0.manifest';
  await resign(w, (v) => v.replace(/^MANIFEST \S+ \S+$/m, `MANIFEST ${old} ${sha256(readFileSync(at(w, old)))}`));
  await refusedWithoutTarball(
    w,
    /no delta update \(the manifest my-app-gnu-linux-1\.0\.manifest is not my-app-gnu-linux-1\.1\.tar\.gz's\)/,
  );
  await resign(w, (v) => v.replace(/^MANIFEST \S+ \S+$/m, `MANIFEST ${MANIFEST} ${sha256(manifest)}`));

  await resign(w, (v) => v.replace(/^PATCH 1\.0 /m, 'PATCH 0.9 '));
  await refusedWithoutTarball(w, /no patch from a release this host holds/);
});

test("a signed patch whose header gives wrong manifest changes: not VERSION's manifest, so it is fetched whole", async () => {
  const evil = { path: 'm3.js', type: 'file', mode: '644', size: 5, sha256: sha256('evil\n'), target: null };
  const cases: Array<[string, (manifest: Record<string, any>) => void]> = [
    ['a file claimed changed', (m) => m.changed.push(evil)],
    ['a file claimed removed', (m) => m.removed.push('m4.js')],
    ['changes not in lists', (m) => (m.removed = 'm4.js')],
  ];
  for (const [what, edit] of cases) {
    const w = await hostOn10();
    rmSync(at(w, TARBALL));
    await servePatchHeader(w, (header) => edit(header.manifest));
    const u = await update(w);
    assert.is(u.exitCode, 0, `${what}: ${u.stdout}${u.stderr}`);
    assert.is(w.server.requests.filter((r) => r.path === MANIFEST).length, 1, `${what}: the manifest fetched whole`);
    if (what !== 'changes not in lists')
      assert.match(u.stdout + u.stderr, /gives another one than VERSION signs; fetching it/, what);
    assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1', what);
    assert.is((await statusOf(w.deploy)).lastInstall.way, 'patch', what);
    const release = path.join(w.deploy, 'releases/my-app-gnu-linux-1.1');
    assert.is(readFileSync(path.join(release, 'm3.js'), 'utf8'), moduleText(3), `${what}: the signed bytes`);
    assert.ok(existsSync(path.join(release, 'm4.js')), `${what}: nothing dropped`);
  }
});

test('a host killed while fetching a patch clears tmp/ at the next update and rebuilds from the patch', async () => {
  const w = await hostOn10();
  const patch = readFileSync(at(w, PATCH));
  let asked = false;
  w.server.overrides.set(PATCH, (_req, res) => {
    asked = true;
    res.writeHead(200, { 'Content-Length': patch.length });
    res.write(patch.subarray(0, patch.length >> 1)); // half, then nothing until the host is killed
    return true;
  });
  const [cmd, ...pre] = scriptCommand('launchfit');
  const child = spawn(cmd, [...pre, 'update', '--dir', w.deploy], { stdio: 'ignore' });
  await waitFor(() => asked && existsSync(path.join(w.deploy, '.launchfit/downloads', `${PATCH}.part`)), {
    timeoutMs: 20_000,
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
  w.server.overrides.delete(PATCH);
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  const status = await statusOf(w.deploy);
  assert.is(status.lastInstall.way, 'patch');
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/tmp')), []);
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/downloads')), []);
  assert.is(w.server.requests.filter((r) => r.path === TARBALL).length, 0);
});

test('a host killed while it rebuilds from the patch: nothing switched, tmp/ cleared, the next update rebuilds', async () => {
  const w = await hostOn10();
  // A zstd first on the PATH that says it was started, then waits: the rebuild is under way.
  const bin = tmpDir('shipkit-slow-zstd-');
  const started = path.join(bin, 'started');
  writeFileSync(path.join(bin, 'zstd'), `#!/bin/sh\ntouch '${started}'\nsleep 60\n`, { mode: 0o755 });
  const [cmd, ...pre] = scriptCommand('launchfit');
  const child = spawn(cmd, [...pre, 'update', '--dir', w.deploy], {
    stdio: 'ignore',
    detached: true,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  });
  await waitFor(() => existsSync(started), { timeoutMs: 30_000, what: 'the rebuild to reach zstd' });
  process.kill(-child.pid!, 'SIGKILL'); // launchfit, its shell and the waiting zstd
  await new Promise((resolve) => child.on('exit', resolve));
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0', 'nothing switched');
  assert.not.ok(existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1')), 'nothing half-written in releases/');
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  assert.is((await statusOf(w.deploy)).lastInstall.way, 'patch');
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/tmp')), []);
  assert.is(w.server.requests.filter((r) => r.path === TARBALL).length, 0);
});

test('a disk too full for the rebuild: nothing switched, tmp/ cleared; with room again, the patch applies', async () => {
  const disk = tinyDiskFor('delta update on a full disk', '8m');
  if (!disk) return;
  const w = await hostOn10(disk.dir);
  // Room for the check's own small files, not for the release: the rebuild runs out of space.
  disk.fill(48 * 1024);
  const u = await update(w);
  assert.is.not(u.exitCode, 0, u.stdout + u.stderr);
  assert.match(
    u.stdout + u.stderr,
    /delta update from 1\.0 failed \(.*(?:ENOSPC|no space|File size limit|decompress)/i,
  );
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/tmp')), [], 'no half-built release left');
  disk.free();
  await installsAfterAll(w, 'patch');
});

test.run();
