// Dated backup folders and keeping the newest N (lib/backup/keep.ts): names that sort by time,
// old whole backups and dead ones removed, other folders in ROOT never touched.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { datedFolder, pruneBackups } from '../../../lib/backup/keep.ts';
import { tmpDir } from '../../_helpers/common.ts';

test('datedFolder: UTC, to the second, sorts by time', () => {
  assert.is(datedFolder('/b', new Date('2026-11-24T03:17:00.123Z')), '/b/shipkit-20261124T031700Z');
  const a = path.basename(datedFolder('/b', new Date('2026-11-24T23:59:59Z')));
  const b = path.basename(datedFolder('/b', new Date('2026-11-25T00:00:00Z')));
  assert.ok(a < b);
});

test('pruneBackups keeps the newest N whole backups, drops dead ones before the newest, leaves the rest', async () => {
  const root = tmpDir('shipkit-keep-');
  const make = (name: string, whole: boolean) => {
    mkdirSync(path.join(root, name));
    if (whole) writeFileSync(path.join(root, name, 'MANIFEST.json'), '{}');
  };
  make('shipkit-20261120T031700Z', true);
  make('shipkit-20261121T031700Z', false); // died
  make('shipkit-20261122T031700Z', true);
  make('shipkit-20261123T031700Z', true);
  make('shipkit-20261124T031700Z', false); // running now, or died after the newest: kept
  make('mine', false);
  const gone = await pruneBackups(root, 2);
  assert.equal(
    gone.map((p) => path.basename(p)),
    ['shipkit-20261120T031700Z', 'shipkit-20261121T031700Z'],
  );
  assert.equal(readdirSync(root).sort(), [
    'mine',
    'shipkit-20261122T031700Z',
    'shipkit-20261123T031700Z',
    'shipkit-20261124T031700Z',
  ]);
  assert.equal(await pruneBackups(root, 2), [], 'nothing more to do');
  assert.ok(existsSync(path.join(root, 'mine')));
});

test.run();
