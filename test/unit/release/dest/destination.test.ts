// Where releases go (lib/release/dest/destination.ts), a folder here: files listed and read back, a put
// placed atomically with the steps named for the kill tests, no temp file left, remote forms
// recognised; a replaced file never keeps the mtime second of the one before it.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../../../lib/core/log.ts';
import { isRemoteDestination, openDestination, waitForNextSecond } from '../../../../lib/release/dest/destination.ts';
import { tmpDir } from '../../../_helpers/common.ts';

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
