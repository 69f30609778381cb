// The `current` link and releases/ (lib/launchfit/deploy-folder/current-link.ts) on a real folder: the
// swap is a rename of a new relative link, a link that is not releases/NAME is no current one,
// leftovers of a crash go (never the current or previous release), and retention keeps both.
import { existsSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deployPaths, emptyState, type LaunchState } from '../../../../lib/launchfit/deploy-folder/state.ts';
import {
  clearLeftovers,
  pruneReleases,
  readCurrent,
  removeRelease,
  swapCurrentSymlink,
} from '../../../../lib/launchfit/deploy-folder/current-link.ts';
import { tmpDir } from '../../../_helpers/common.ts';

function folder(releases: string[]) {
  const paths = deployPaths(tmpDir('shipkit-switch-'));
  for (const name of releases) {
    mkdirSync(path.join(paths.releases, name), { recursive: true });
    writeFileSync(path.join(paths.releases, name, 'server.js'), name);
  }
  return paths;
}

const installed = (names: string[]): LaunchState['installed'] =>
  Object.fromEntries(
    names.map((name, i) => [
      name,
      { version: name, file: `${name}.tar.gz`, sha256: '', installedAt: `2026-11-2${i}T00:00:00Z` },
    ]),
  );

test('swap: current becomes a relative link to releases/NAME, and can be swapped again', async () => {
  const paths = folder(['app-1', 'app-2']);
  assert.is(await readCurrent(paths), undefined);
  await swapCurrentSymlink(paths, 'app-1');
  assert.is(readlinkSync(paths.current), 'releases/app-1');
  await swapCurrentSymlink(paths, 'app-2');
  assert.is(await readCurrent(paths), 'app-2');
  assert.equal(
    readdirSync(paths.dir).filter((n) => n.includes('tmp')),
    [],
    'no temp link left',
  );
});

test('a current link that does not point into releases/ is no current release', async () => {
  const paths = folder(['app-1']);
  for (const target of ['/etc', 'releases/app-1/../../x', 'elsewhere/app-1', 'releases/']) {
    const temp = path.join(paths.dir, 'link');
    symlinkSync(target, temp);
    const { renameSync } = await import('node:fs');
    renameSync(temp, paths.current);
    assert.is(await readCurrent(paths), undefined, target);
  }
});

test('clearLeftovers: temp links, tmp/ and unfinished installs go; current and previous stay', async () => {
  const paths = folder(['app-1', 'app-2', 'app-3', 'app-half']);
  await swapCurrentSymlink(paths, 'app-2');
  symlinkSync('releases/app-3', path.join(paths.dir, '.current.tmp-123-abcd'));
  const state = { ...emptyState(), previous: 'app-1', installed: installed(['app-3']) };
  const removed = await clearLeftovers(paths, state);
  assert.equal(removed.sort(), ['.current.tmp-123-abcd', 'releases/app-half']);
  assert.equal(readdirSync(paths.releases).sort(), ['app-1', 'app-2', 'app-3']);
  assert.ok(existsSync(paths.tmp));
});

test('pruneReleases keeps the newest N and always the current and the previous one', async () => {
  const names = ['app-1', 'app-2', 'app-3', 'app-4', 'app-5'];
  const paths = folder(names);
  await swapCurrentSymlink(paths, 'app-1');
  const state = { ...emptyState(), previous: 'app-2', installed: installed(names) };
  const removed = await pruneReleases(paths, state, 3);
  assert.equal(removed.sort(), ['app-3', 'app-4']);
  assert.equal(readdirSync(paths.releases).sort(), ['app-1', 'app-2', 'app-5']);
  assert.equal(Object.keys(state.installed).sort(), ['app-1', 'app-2', 'app-5']);
});

test('removeRelease of a missing release is not an error', async () => {
  const paths = folder(['app-1']);
  await removeRelease(paths, 'app-9');
  await removeRelease(paths, 'app-1');
  assert.equal(readdirSync(paths.releases), []);
});

test.run();
