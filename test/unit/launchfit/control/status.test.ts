// `launchfit status` (lib/launchfit/control/status.ts) from a real deploy folder: the current
// release and its version, the releases listed with the current one marked, SEQ, binding, bad
// versions, the host id with its bucket, and "not active" without a running launchfit.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { collectStatus, formatStatus } from '../../../../lib/launchfit/control/status.ts';
import { deployPaths, emptyState, writeState } from '../../../../lib/launchfit/deploy-folder/state.ts';
import { swapCurrentSymlink } from '../../../../lib/launchfit/deploy-folder/current-link.ts';
import { rolloutBucket } from '../../../../lib/release/format/bucket.ts';
import { tmpDir } from '../../../_helpers/common.ts';

const HOST = 'a'.repeat(32);

async function deployFolder() {
  const paths = deployPaths(tmpDir('shipkit-status-'));
  for (const name of ['app-linux-1.0', 'app-linux-1.1'])
    mkdirSync(path.join(paths.releases, name), { recursive: true });
  await swapCurrentSymlink(paths, 'app-linux-1.1');
  await writeState(paths, {
    ...emptyState(),
    highest: '1.1',
    previous: 'app-linux-1.0',
    bad: ['1.2'],
    seq: { seq: 7, file: 'app-linux-1.1.tar.gz', at: '2026-11-24T10:00:00Z' },
    binding: { prefix: 'app-linux', app: 'app', platform: 'linux' },
    installed: {
      'app-linux-1.0': { version: '1.0', file: 'a', sha256: '', installedAt: '2026-11-23T10:00:00Z' },
      'app-linux-1.1': { version: '1.1', file: 'b', sha256: '', installedAt: '2026-11-24T10:00:00Z' },
    },
    lastCheck: { at: '2026-11-24T10:05:00Z', ok: false, message: 'update server answered 503' },
  });
  writeFileSync(path.join(paths.meta, 'host-id'), `${HOST}\n`);
  return paths;
}

test('collected from the folder: releases, versions, SEQ, binding, bad versions, the host and its bucket', async () => {
  const paths = await deployFolder();
  const s = await collectStatus(paths);
  assert.is(s.current, 'app-linux-1.1');
  assert.is(s.version, '1.1');
  assert.is(s.previous, 'app-linux-1.0');
  assert.is(s.seq, 7);
  assert.equal(s.bad, ['1.2']);
  assert.is(s.hostId, HOST);
  assert.equal(s.bucket, { version: '1.1', bucket: Math.floor(rolloutBucket(HOST, '1.1') * 10000) / 10000 });
  assert.equal(
    s.releases.map((r) => [r.name, r.version, r.current]),
    [
      ['app-linux-1.0', '1.0', false],
      ['app-linux-1.1', '1.1', true],
    ],
  );
  assert.is(s.running, false);
});

test('formatted for a terminal', async () => {
  const text = formatStatus(await collectStatus(await deployFolder()));
  assert.match(text, /^current: {2}app-linux-1\.1 \(version 1\.1\)$/m);
  assert.match(text, /^seq: {6}7 \(the last VERSION accepted; a lower SEQ is refused\)$/m);
  assert.match(text, /^bound to: APP app PLATFORM linux$/m);
  assert.match(text, /^bad: {6}1\.2$/m);
  assert.match(text, new RegExp(`^host id:  ${HOST} \\(bucket [0-9.]+ for 1\\.1\\)$`, 'm'));
  assert.match(text, /^app: {6}launchfit run is not active$/m);
  assert.match(text, /^checked: {2}2026-11-24T10:05:00Z FAILED: update server answered 503$/m);
  assert.match(text, /^ {2}\* app-linux-1\.1 {2}1\.1 {2}2026-11-24T10:00:00Z$/m);
  assert.match(text, /^ {4}app-linux-1\.0 {2}1\.0/m);
});

test('an empty folder: nothing current, no host id, no bucket', async () => {
  const s = await collectStatus(deployPaths(tmpDir('shipkit-status-')));
  assert.equal([s.current, s.version, s.hostId, s.bucket], [undefined, undefined, undefined, undefined]);
  assert.equal(s.releases, []);
  assert.match(formatStatus(s), /^current: {2}\(none\)$/m);
});

test('a host-id file that is not a host id gives no bucket', async () => {
  const paths = await deployFolder();
  writeFileSync(path.join(paths.meta, 'host-id'), '../../etc\n');
  assert.is((await collectStatus(paths)).bucket, undefined);
});

test.run();
