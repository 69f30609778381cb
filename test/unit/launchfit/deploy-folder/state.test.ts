// The deploy folder's layout and state file (lib/launchfit/deploy-folder/state.ts): paths under
// the folder, an empty state when there is none, a round trip through .launchfit/state.json
// (0600, atomic), old files without newer fields read whole, and a damaged file not taken for empty.
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  deployPaths,
  emptyState,
  readState,
  updateState,
  writeState,
} from '../../../../lib/launchfit/deploy-folder/state.ts';
import { tmpDir } from '../../../_helpers/common.ts';

test('the layout: releases/, current, and .launchfit/ for the rest, from a relative folder', () => {
  const p = deployPaths('srv/app/');
  assert.is(p.dir, path.resolve('srv/app'));
  assert.is(p.releases, path.join(p.dir, 'releases'));
  assert.is(p.current, path.join(p.dir, 'current'));
  for (const key of ['state', 'lock', 'socket', 'appLog', 'pidFile', 'secondPidFile', 'hookFile', 'hookLog'] as const)
    assert.is(path.dirname(p[key]), path.join(p.dir, '.launchfit'), key);
});

test('no state yet: the empty state; a written one reads back the same, 0600 and no temp left', async () => {
  const paths = deployPaths(tmpDir('shipkit-state-'));
  assert.equal(await readState(paths), emptyState());
  const state = { ...emptyState(), highest: '1.2', bad: ['1.3'], seq: { seq: 4, file: 'a.tar.gz', at: 'now' } };
  await writeState(paths, state);
  assert.equal(await readState(paths), state);
  assert.is(statSync(paths.state).mode & 0o777, 0o600);
  assert.equal(readdirSync(paths.meta), ['state.json']);
});

test('an older state file without bad/installed reads with them empty', async () => {
  const paths = deployPaths(tmpDir('shipkit-state-'));
  mkdirSync(paths.meta);
  writeFileSync(paths.state, JSON.stringify({ highest: '1.0', previous: 'app-1.0' }));
  assert.equal(await readState(paths), { bad: [], installed: {}, highest: '1.0', previous: 'app-1.0' });
});

test('a damaged state file is an error, never an empty state (that would forget SEQ and bad versions)', async () => {
  const paths = deployPaths(tmpDir('shipkit-state-'));
  mkdirSync(paths.meta);
  writeFileSync(paths.state, '{"highest": "1.0", "seq": {');
  await readState(paths).then(
    () => assert.unreachable('a torn file must not read as empty'),
    (e: unknown) => assert.instance(e, SyntaxError),
  );
});

test('updateState reads, changes and writes in one step', async () => {
  const paths = deployPaths(tmpDir('shipkit-state-'));
  await updateState(paths, (s) => s.bad.push('2.0'));
  const after = await updateState(paths, (s) => {
    s.bad.push('2.1');
    s.highest = '2.2';
  });
  assert.equal(after.bad, ['2.0', '2.1']);
  assert.equal((await readState(paths)).highest, '2.2');
  assert.ok(existsSync(paths.state));
});

test.run();
