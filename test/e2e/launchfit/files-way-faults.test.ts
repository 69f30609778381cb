// The files way of a delta update (docs/launchfit.md "Delta updates") when the host fails under
// it, with real processes: killed -9 while a member of the tarball is on its way (the next update
// clears tmp/ and takes the files way again), and a disk too full for the files it must write
// (nothing switched, nothing half-built left in releases/ or tmp/; with room again, the files way).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tinyDiskFor } from '../../_helpers/disk.ts';
import { runScript, scriptCommand, waitFor } from '../../_helpers/common.ts';
import { currentOf, makeWorld, statusOf, type World } from '../../fixtures/launchfit/world.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const hexLines = (tag: string, n: number) => Array.from({ length: n }, (_, k) => `${sha256(`${tag}.${k}`)}\n`).join('');
/** 520 KiB changed by a line in each version (a member of its own that the host must write whole), 1.5 MiB the same. */
const BIG = hexLines('big', 8 * 1024);
const SAME = hexLines('same', 24 * 1024);
const TARBALL = 'my-app-gnu-linux-1.1.tar.gz';
const update = (w: World) => runScript('launchfit', ['update', '--dir', w.deploy]);
const worlds: World[] = [];
test.after(async () => {
  for (const w of worlds) await w.server.close();
});

/** A host (in `onDisk` when given) on 1.0, and 1.1 published with no patch: the files way or the tarball. */
async function hostOn10(onDisk?: string): Promise<World> {
  const w = await makeWorld();
  worlds.push(w);
  const files = (v: string) => ({ 'big.bin': `${BIG}${v}\n`, 'same.bin': SAME });
  await w.publish('1.0', { files: files('1.0'), patches: 0 });
  w.writeConfig('  connect_timeout: 5\n  idle_timeout: 5\n');
  if (onDisk) {
    for (const name of ['launchify.yml', 'trusted.asc'])
      copyFileSync(path.join(w.deploy, name), path.join(onDisk, name));
    w.deploy = onDisk;
  }
  const deployed = await runScript('launchfit', ['deploy', '--dir', w.deploy]);
  assert.is(deployed.exitCode, 0, deployed.stderr);
  await w.publish('1.1', { files: files('1.1'), patches: 0 });
  assert.not.match(readFileSync(path.join(w.updates, 'VERSION'), 'utf8'), /^PATCH /m, 'no patch offered');
  return w;
}

/** The host updated to 1.1 the files way: every request for the tarball a Range, tmp/ and downloads/ empty. */
async function installsTheFilesWay(w: World): Promise<void> {
  const since = w.server.requests.length;
  const u = await update(w);
  assert.is(u.exitCode, 0, u.stdout + u.stderr);
  assert.match(u.stdout + u.stderr, /rebuilt my-app-gnu-linux-1\.1\.tar\.gz from 1\.0 and \d+ bytes of the tarball/);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.1');
  assert.is((await statusOf(w.deploy)).lastInstall.way, 'files');
  assert.is(
    readFileSync(path.join(w.deploy, 'current/big.bin'), 'utf8'),
    `${BIG}1.1\n`,
    'the published bytes of the changed file',
  );
  assert.is(
    statSync(path.join(w.deploy, 'current/same.bin')).ino,
    statSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.0/same.bin')).ino,
    'the unchanged file hard-linked from 1.0',
  );
  const asks = w.server.requests.slice(since).filter((r) => r.path === TARBALL);
  assert.ok(asks.length > 0 && asks.every((r) => r.range && r.status === 206), 'only members asked for');
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/tmp')), [], 'nothing left in tmp/');
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/downloads')), [], 'nothing left in downloads/');
}

test('a host killed while a member is on its way clears tmp/ at the next update and takes the files way', async () => {
  const w = await hostOn10();
  let asked = false;
  w.server.overrides.set(TARBALL, (req: IncomingMessage, res: ServerResponse) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) return false;
    asked = true;
    const [from, to] = [Number(m[1]), Number(m[2])];
    const whole = readFileSync(path.join(w.updates, TARBALL));
    res.writeHead(206, { 'Content-Length': to - from + 1, 'Content-Range': `bytes ${from}-${to}/${whole.length}` });
    res.write(whole.subarray(from, from + ((to - from + 1) >> 1))); // half, then nothing until the host is killed
    return true;
  });
  const [cmd, ...pre] = scriptCommand('launchfit');
  const child = spawn(cmd, [...pre, 'update', '--dir', w.deploy], { stdio: 'ignore' });
  await waitFor(() => asked, { timeoutMs: 20_000, what: 'a Range request for the tarball' });
  // The release being built is in tmp/ by then: 1.0's unchanged file is linked before members are asked for.
  await waitFor(() => readdirSync(path.join(w.deploy, '.launchfit/tmp')).length > 0, { what: 'a release in tmp/' });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  assert.equal(
    readdirSync(path.join(w.deploy, 'releases')),
    ['my-app-gnu-linux-1.0'],
    'nothing half-built in releases/',
  );
  w.server.overrides.delete(TARBALL);
  await installsTheFilesWay(w);
  assert.not.ok(
    w.server.requests.some((r) => r.path === TARBALL && !r.range),
    'the tarball never downloaded whole',
  );
});

test('a disk too full for the files it must write: nothing switched, tmp/ cleared; with room again, the files way', async () => {
  const disk = tinyDiskFor('the files way on a full disk', '8m');
  if (!disk) return;
  const w = await hostOn10(disk.dir);
  // Room for the check's own small files (VERSION, the manifest, the index), not for big.bin.
  disk.fill(48 * 1024);
  const u = await update(w);
  const out = u.stdout + u.stderr;
  assert.is.not(u.exitCode, 0, out);
  assert.match(out, /fetching only the files my-app-gnu-linux-1\.0 lacks failed \(.*(?:ENOSPC|no space)/i);
  assert.is(currentOf(w.deploy), 'releases/my-app-gnu-linux-1.0');
  assert.equal(
    readdirSync(path.join(w.deploy, 'releases')),
    ['my-app-gnu-linux-1.0'],
    'nothing half-built in releases/',
  );
  assert.equal(readdirSync(path.join(w.deploy, '.launchfit/tmp')), [], 'no half-built release left in tmp/');
  assert.not.ok(existsSync(path.join(w.deploy, 'releases/my-app-gnu-linux-1.1')));
  disk.free();
  await installsTheFilesWay(w);
});

test.run();
