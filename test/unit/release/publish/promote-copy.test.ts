// release promote's copy of the tarball: the bytes hashed are the bytes written, at every chunk
// boundary, on this thread or a worker's; a copy is never over an existing file; a changed tarball
// is refused with nothing left at the target; a tarball already there is checked, not written again;
// asked to link, a file of ours with mode 0644 on the same filesystem is linked, anything else copied.
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { openDestination } from '../../../../lib/release/dest/destination.ts';
import { copyHashing, copyTarball, hashFile, startEarlyCopy } from '../../../../lib/release/publish/promote-copy.ts';
import type { SourceRelease } from '../../../../lib/release/publish/promote-source.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const SMALL = { chunk: 4096, syncEvery: 8192 };

/** Asserts that `run` rejects with a message matching `want`. */
async function rejected(run: () => Promise<unknown>, want: RegExp): Promise<void> {
  try {
    await run();
  } catch (error) {
    assert.match(String(error), want);
    return;
  }
  assert.unreachable(`expected a rejection matching ${want}`);
}

let base: string;
test.before(() => {
  base = tmpDir();
});

test('copyHashing (hashed on this thread or a worker) and hashFile: byte for byte, the sha256 and size, at every chunk boundary', async () => {
  const cases: Array<[number, typeof SMALL | undefined]> = [
    ...[0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 5, 100_003].map((size): [number, typeof SMALL] => [size, SMALL]),
    [0, undefined],
    [9 * 1024 * 1024 + 7, undefined],
  ];
  for (const [i, [size, options]] of cases.entries()) {
    const from = path.join(base, `in-${i}`);
    const bytes = randomBytes(size);
    writeFileSync(from, bytes);
    const want = { sha256: sha256Of(bytes), size };
    const copied = { ...want, linked: false };
    for (const hashOn of ['here', 'worker'] as const) {
      const to = path.join(base, `out-${i}-${hashOn}`);
      assert.equal(
        await copyHashing(from, to, { ...options, hashOn }),
        copied,
        `copy of ${size} bytes hashed ${hashOn}`,
      );
      assert.ok(readFileSync(to).equals(bytes), `${size} bytes copied`);
    }
    assert.equal(await hashFile(from), want, `hash of ${size} bytes`);
  }
});

test("copyHashing stopped leaves no copy, hashed either way; the copy's mode is a release's", async () => {
  const from = path.join(base, 'stop-in');
  writeFileSync(from, randomBytes(10 * 4096 + 100), { mode: 0o600 });
  for (const hashOn of ['here', 'worker'] as const) {
    const stopped = path.join(base, `stopped-${hashOn}`);
    const stop = new AbortController();
    stop.abort();
    await rejected(() => copyHashing(from, stopped, { hashOn, signal: stop.signal }), /abort/i);
    assert.not.ok(existsSync(stopped), `no copy left (${hashOn})`);
    const kept = path.join(base, `kept-${hashOn}`);
    await copyHashing(from, kept, { hashOn });
    assert.is(statSync(kept).mode & 0o777, 0o644, `not the source's 0600 (${hashOn})`);
  }
});

test('copyHashing never replaces a file, and a missing source creates nothing', async () => {
  const from = path.join(base, 'exists');
  writeFileSync(from, 'x');
  await rejected(() => copyHashing(from, from), /EEXIST/);
  assert.is(readFileSync(from, 'utf8'), 'x');
  const to = path.join(base, 'never');
  await rejected(() => copyHashing(path.join(base, 'missing'), to), /ENOENT/);
  assert.not.ok(readdirSync(base).includes('never'));
});

test('copyHashing with link: a file of ours, mode 0644, is linked (the same inode) and hashed once', async () => {
  const from = path.join(base, 'link-in');
  const bytes = randomBytes(40 * 1024 * 1024 + 3); // past the worker's threshold: hashed on a worker
  writeFileSync(from, bytes, { mode: 0o644 });
  chmodSync(from, 0o644);
  for (const hashOn of ['here', 'worker'] as const) {
    const to = path.join(base, `link-out-${hashOn}`);
    const got = await copyHashing(from, to, { link: true, hashOn });
    assert.equal(got, { sha256: sha256Of(bytes), size: bytes.length, linked: true }, hashOn);
    assert.is(statSync(to).ino, statSync(from).ino, `one file (${hashOn})`);
  }
  assert.is(statSync(from).nlink, 3);
  assert.is(statSync(from).mode & 0o777, 0o644, "the source's mode unchanged");
  await rejected(() => copyHashing(from, path.join(base, 'link-out-here'), { link: true }), /EEXIST/);
});

test('copyHashing with link copies what it must not link: another mode, a symlink, or another filesystem', async () => {
  const from = path.join(base, 'private-in');
  writeFileSync(from, randomBytes(100_000), { mode: 0o600 });
  const to = path.join(base, 'private-out');
  assert.is((await copyHashing(from, to, { link: true })).linked, false, 'mode 0600: copied');
  assert.is.not(statSync(to).ino, statSync(from).ino);
  assert.equal([statSync(to).mode & 0o777, statSync(from).nlink], [0o644, 1]);
  // A symlink to a file that could be linked: link(2) would link the symlink itself, so it is copied.
  const real = path.join(base, 'real-in');
  writeFileSync(real, 'the bytes');
  chmodSync(real, 0o644);
  const symlinked = path.join(base, 'symlink-in');
  symlinkSync(real, symlinked);
  const viaLink = path.join(base, 'symlink-out');
  assert.is((await copyHashing(symlinked, viaLink, { link: true })).linked, false, 'a symlink: copied');
  assert.ok(lstatSync(viaLink).isFile(), 'a file of its own, not a symlink');
  assert.equal([readFileSync(viaLink, 'utf8'), statSync(real).nlink], ['the bytes', 1]);
  // /dev/shm is a tmpfs: a link across filesystems fails (EXDEV) and the file is copied.
  const shm = '/dev/shm';
  if (!existsSync(shm) || statSync(shm).dev === statSync(base).dev) {
    console.log(`  skipped the other filesystem: ${shm} is ${existsSync(shm) ? 'on the same one' : 'missing'}`);
    return;
  }
  const other = mkdtempSync(path.join(shm, 'shipkit-link-'));
  try {
    const far = path.join(other, 'far');
    const bytes = randomBytes(200_000);
    writeFileSync(far, bytes);
    chmodSync(far, 0o644);
    const near = path.join(base, 'far-copy');
    assert.equal(await copyHashing(far, near, { link: true }), {
      sha256: sha256Of(bytes),
      size: bytes.length,
      linked: false,
    });
    assert.ok(readFileSync(near).equals(bytes));
    assert.is(statSync(far).nlink, 1);
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});

test('copyTarball linking: the link is placed by rename; changed bytes are refused and the link taken away', async () => {
  const w = world('linked');
  chmodSync(path.join(w.from, w.file), 0o644);
  const got = await copyTarball(w.source, w.target, w.release, w.scratch, { present: false, step: w.step, link: true });
  assert.equal(got, { size: w.bytes.length, linked: true });
  assert.equal(readdirSync(w.to), [w.file]);
  assert.is(statSync(path.join(w.to, w.file)).ino, statSync(path.join(w.from, w.file)).ino);
  assert.equal(w.steps, [`${w.file}:temp`, w.file]);

  const bad = world('linked-changed');
  const tarball = path.join(bad.from, bad.file);
  chmodSync(tarball, 0o644);
  appendFileSync(tarball, 'x');
  await rejected(
    () => copyTarball(bad.source, bad.target, bad.release, bad.scratch, { present: false, step: bad.step, link: true }),
    /has changed since it was signed/,
  );
  assert.equal([readdirSync(bad.to), statSync(tarball).nlink, bad.steps], [[], 1, []]);
});

test('an early copy with link is a link, taken as one', async () => {
  const w = world('early-linked');
  mkdirSync(w.to);
  chmodSync(path.join(w.from, w.file), 0o644);
  const early = await startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0', link: true });
  const got = await copyTarball(w.source, w.target, w.release, w.scratch, {
    present: false,
    step: w.step,
    early,
    link: true,
  });
  await early!.discard();
  assert.equal(got, { size: w.bytes.length, linked: true });
  assert.equal(readdirSync(w.to), [w.file]);
  assert.is(statSync(path.join(w.to, w.file)).nlink, 2);
});

/** A source DEST holding a tarball, a new target, and the release as the signed record has it. */
function world(name: string) {
  const from = path.join(base, name, 'from');
  const to = path.join(base, name, 'to');
  mkdirSync(from, { recursive: true });
  const file = 'my-app-gnu-linux-1.0.tar.gz';
  const bytes = randomBytes(3 * 1024 * 1024 + 11);
  writeFileSync(path.join(from, file), bytes);
  const release: SourceRelease = { file, platform: 'gnu-linux', version: '1.0', sha256: sha256Of(bytes) };
  const steps: string[] = [];
  const step = async (s: string) => void steps.push(s);
  const [source, target] = [openDestination(from, silentLogger), openDestination(to, silentLogger)];
  return { from, to, file, bytes, release, steps, step, source, target, scratch: tmpDir() };
}

test('copyTarball places the signed bytes by temp file and rename, the steps in order', async () => {
  const w = world('places');
  const { size, linked } = await copyTarball(w.source, w.target, w.release, w.scratch, {
    present: false,
    step: w.step,
  });
  assert.equal({ size, linked }, { size: w.bytes.length, linked: false });
  assert.equal(readdirSync(w.to), [w.file]);
  assert.ok(readFileSync(path.join(w.to, w.file)).equals(w.bytes));
  assert.equal(w.steps, [`${w.file}:temp`, w.file]);
});

test('copyTarball refuses bytes other than the signed ones and leaves nothing at the target', async () => {
  const w = world('changed');
  appendFileSync(path.join(w.from, w.file), 'x');
  await rejected(
    () => copyTarball(w.source, w.target, w.release, w.scratch, { present: false, step: w.step }),
    /has changed since it was signed: its sha256 is [0-9a-f]{64}, the signed record says/,
  );
  assert.equal(readdirSync(w.to), []);
  assert.equal(w.steps, []);
});

test('copyTarball with the tarball present at the target checks the source and writes nothing', async () => {
  const w = world('present');
  mkdirSync(w.to);
  assert.equal(await copyTarball(w.source, w.target, w.release, w.scratch, { present: true, step: w.step }), {
    size: w.bytes.length,
    linked: false,
  });
  assert.equal([readdirSync(w.to), w.steps], [[], []]);
  appendFileSync(path.join(w.from, w.file), 'x');
  await rejected(
    () => copyTarball(w.source, w.target, w.release, w.scratch, { present: true, step: w.step }),
    /--force does not override this/,
  );
});

test('an early copy is taken when the checks name its file: the same bytes, renamed into place', async () => {
  const w = world('early');
  mkdirSync(w.to);
  const early = await startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0' });
  assert.is(early?.file, w.file);
  assert.is(
    (await copyTarball(w.source, w.target, w.release, w.scratch, { present: false, step: w.step, early })).size,
    w.bytes.length,
  );
  await early!.discard(); // after the rename: nothing to remove
  assert.equal(readdirSync(w.to), [w.file]);
  assert.ok(readFileSync(path.join(w.to, w.file)).equals(w.bytes));
});

test('an early copy is under way when it is returned: a thread held at once after it does not hold it', async () => {
  const w = world('early-underway');
  mkdirSync(w.to);
  const early = await startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0' });
  // As openpgp's compile does (~20 ms) in a promote: nothing of this thread runs meanwhile.
  const until = Date.now() + 300;
  while (Date.now() < until);
  const [temp] = readdirSync(w.to);
  assert.match(temp ?? 'no temp file', /^\.my-app-gnu-linux-1\.0\.tar\.gz\.upload-/);
  assert.is(statSync(path.join(w.to, temp)).size, w.bytes.length, 'the kernel copied while this thread was held');
  await early!.discard();
});

test('an early copy of bytes other than the signed ones is refused, and nothing is left at the target', async () => {
  const w = world('early-changed');
  mkdirSync(w.to);
  appendFileSync(path.join(w.from, w.file), 'x');
  const early = await startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0' });
  await rejected(
    () => copyTarball(w.source, w.target, w.release, w.scratch, { present: false, step: w.step, early }),
    /has changed since it was signed/,
  );
  await early!.discard();
  assert.equal(readdirSync(w.to), []);
});

test('an early copy discarded (the checks refused) is stopped and removed; another file named: not taken', async () => {
  const w = world('early-discard');
  mkdirSync(w.to);
  const early = await startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0' });
  await waitFor(() => readdirSync(w.to).length === 1, { what: 'its temp file' });
  assert.match(readdirSync(w.to)[0], /^\.my-app-gnu-linux-1\.0\.tar\.gz\.upload-/);
  await early!.discard();
  assert.equal(readdirSync(w.to), []);
  const other = await startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0' });
  const release = { ...w.release, file: 'my-app-gnu-linux-1.0.0.tar.gz' };
  writeFileSync(path.join(w.from, release.file), w.bytes);
  assert.is(
    (await copyTarball(w.source, w.target, release, w.scratch, { present: false, step: w.step, early: other })).size,
    w.bytes.length,
  );
  assert.equal(readdirSync(w.to), [release.file], 'the early copy went, the named file came');
});

test('no early copy without one tarball to name, without a target folder, or with the tarball there', async () => {
  const w = world('early-none');
  const ask = (fields: { platform?: string; version?: string } = {}) =>
    startEarlyCopy(w.source, w.target, { app: 'my-app', version: '1.0', ...fields });
  assert.is(await ask(), undefined, 'no target folder');
  assert.not.ok(existsSync(w.to), 'and none made');
  mkdirSync(w.to);
  assert.is(await ask({ version: '2.0' }), undefined, 'no such version');
  writeFileSync(path.join(w.from, 'my-app-musl-linux-1.0.tar.gz'), 'other');
  assert.is(await ask(), undefined, 'two platforms, none named');
  const named = await ask({ platform: 'musl-linux' });
  assert.is(named?.file, 'my-app-musl-linux-1.0.tar.gz');
  await named!.discard();
  writeFileSync(path.join(w.to, w.file), w.bytes);
  assert.is(await ask({ platform: 'gnu-linux' }), undefined, 'there already');
  assert.equal(readdirSync(w.to), [w.file]);
  const remote = openDestination('s3://bucket/x', silentLogger);
  assert.is(await startEarlyCopy(w.source, remote, { app: 'my-app', version: '1.0' }), undefined, 'a remote target');
});

test.run();
