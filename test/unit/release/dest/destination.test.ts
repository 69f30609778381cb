// Where releases go (lib/release/dest/destination.ts), a folder here: files listed and read back, a put
// placed atomically with the steps named for the kill tests, no temp file left, remote forms
// recognised; a replaced file never keeps the mtime second of the one before it.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { isRemoteDestination, openDestination, waitForNextSecond } from '../../../../lib/release/dest/destination.ts';
import { tmpDir, waitFor } from '../../../_helpers/common.ts';

test('a folder: put, list, read, localCopy; the steps named; no temp left', async () => {
  const root = tmpDir('shipkit-dest-');
  const dest = openDestination(path.join(root, 'updates'), silentLogger);
  assert.ok(dest.local);
  assert.equal(await dest.list(), [], 'a folder not made yet lists empty');
  assert.is(await dest.read('VERSION'), undefined);
  const staged = path.join(root, 'VERSION.new');
  writeFileSync(staged, 'CURRENT 1.0 app-1.0.tar.gz\n');
  const steps: string[] = [];
  await dest.put(staged, 'VERSION', async (step) => void steps.push(step));
  assert.equal(steps, ['VERSION:temp', 'VERSION']);
  assert.equal(await dest.list(), ['VERSION']);
  assert.is((await dest.read('VERSION'))!.toString(), 'CURRENT 1.0 app-1.0.tar.gz\n');
  assert.is(await dest.localCopy('VERSION', root), path.join(root, 'updates', 'VERSION'));
  assert.is(await dest.localCopy('nope', root), undefined);
});

test('a step that throws (a kill) leaves the old file whole and no temp file', async () => {
  const root = tmpDir('shipkit-dest-');
  mkdirSync(path.join(root, 'updates'));
  writeFileSync(path.join(root, 'updates', 'VERSION'), 'old\n');
  const staged = path.join(root, 'new');
  writeFileSync(staged, 'new\n');
  const dest = openDestination(path.join(root, 'updates'), silentLogger);
  const killed = dest.put(
    staged,
    'VERSION',
    async (step) => {
      if (step === 'VERSION:temp') throw new Error('killed');
    },
    { sizeChanged: true },
  );
  await killed.then(
    () => assert.unreachable('the step threw'),
    (e: unknown) => assert.match(String(e), /killed/),
  );
  assert.is(readFileSync(path.join(root, 'updates', 'VERSION'), 'utf8'), 'old\n');
  assert.equal(readdirSync(path.join(root, 'updates')), ['VERSION']);
});

test('a put `after` a promise: written and fsynced beside its name, renamed when it settles; a rejection places nothing', async () => {
  const root = tmpDir('shipkit-dest-');
  mkdirSync(path.join(root, 'updates'));
  const dest = openDestination(path.join(root, 'updates'), silentLogger);
  const staged = path.join(root, 'manifest.new');
  writeFileSync(staged, 'files\n');
  let go = () => {};
  const steps: string[] = [];
  const placed = dest.put(staged, 'app.manifest', async (step) => void steps.push(step), {
    after: new Promise<void>((resolve) => (go = resolve)),
  });
  await waitFor(() => readdirSync(path.join(root, 'updates')).length === 1, { what: 'the temp file' });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.match(readdirSync(path.join(root, 'updates'))[0], /^\.app\.manifest\.upload-/, 'only the temp file, waiting');
  assert.equal(steps, []);
  go();
  await placed;
  assert.equal(readdirSync(path.join(root, 'updates')), ['app.manifest']);
  assert.equal(steps, ['app.manifest:temp', 'app.manifest']);

  let refuse = (_: Error) => {};
  const refused = dest.put(staged, 'app.index', undefined, {
    after: new Promise<void>((_, reject) => (refuse = reject)),
  });
  await waitFor(() => readdirSync(path.join(root, 'updates')).length === 2, { what: 'the second temp file' });
  refuse(new Error('the copy was refused'));
  try {
    await refused;
    assert.unreachable('the put should have thrown');
  } catch (error) {
    assert.match(String(error), /the copy was refused/);
  }
  assert.equal(readdirSync(path.join(root, 'updates')), ['app.manifest'], 'no temp file, no app.index');
});

test('a replaced file of the same size never keeps the second of the one before it', async () => {
  const root = tmpDir('shipkit-dest-');
  const dest = openDestination(root, silentLogger);
  const staged = path.join(root, '..', `${path.basename(root)}-staged`);
  writeFileSync(staged, 'SEQ 3\n');
  await dest.put(staged, 'VERSION');
  const first = statSync(path.join(root, 'VERSION')).mtimeMs;
  writeFileSync(staged, 'SEQ 4\n');
  await dest.put(staged, 'VERSION');
  const second = statSync(path.join(root, 'VERSION')).mtimeMs;
  assert.ok(Math.floor(second / 1000) > Math.floor(first / 1000), `${first} then ${second}`);
});

test('waitForNextSecond waits until the clock is past that second, and not at all for none', async () => {
  let now = 10_500;
  const clock = () => (now += 100);
  await waitForNextSecond(10_200, clock);
  assert.ok(now >= 11_000);
  const before = now;
  await waitForNextSecond(undefined, clock);
  assert.is(now, before);
});

test('remote forms: s3://, rsync:// and user@host:path; a folder with a colon is not one', () => {
  for (const to of ['s3://bucket/prefix', 'rsync://host/mod', 'deploy@host:/srv/updates'])
    assert.ok(isRemoteDestination(to), to);
  for (const to of ['/srv/updates', 'updates', './a:b', 'C:/x']) assert.not.ok(isRemoteDestination(to), to);
});

test.run();
