// A backup on S3 (lib/backup/remote.ts) against s3rver on loopback: uploaded with the manifest
// last, read back part by part into a folder that checks whole; a prefix holding a backup is
// refused; a manifest naming a part outside the backup is refused before any part is fetched.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { ConfigError, ValidationError } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { backupTo, checkRemoteEmpty, downloadBackup, isRemote, withLocalBackup } from '../../../lib/backup/remote.ts';
import { verifyBackup } from '../../../lib/backup/restore.ts';
import { takeBackup } from '../../../lib/backup/snapshot.ts';
import { s3rverEnv, startS3rver } from '../../fixtures/s3rver.ts';
import { tmpDir } from '../../_helpers/common.ts';
import { uploadFiles } from '../../../lib/stages/upload/index.ts';

const s3 = await startS3rver('backups');
// Set when this file's tests start, not at import: the unit batch imports every file first.
test.before(() => void Object.assign(process.env, s3rverEnv(s3.endpoint)));
test.after(() => s3.close());

async function config() {
  const home = tmpDir('shipkit-remote-');
  mkdirSync(path.join(home, 'data', 'logs', 'octo%2Fsite'), { recursive: true });
  writeFileSync(path.join(home, 'shipkit.yml'), 'data: ./data\nrepos: {}\n');
  writeFileSync(path.join(home, 'data', 'jobs.journal'), '{"id":"a"}\n');
  writeFileSync(path.join(home, 'data', 'logs', 'octo%2Fsite', 'logs.txt'), 'built\n');
  return loadShipkitConfig(path.join(home, 'shipkit.yml'));
}

test('which DESTs are remote', () => {
  assert.ok(isRemote('s3://backups/x'));
  assert.ok(isRemote('ops@backup.example:/srv/b'));
  assert.not.ok(isRemote('/srv/backups/x'));
});

test('up to s3:// and back: the download verifies whole', async () => {
  const cfg = await config();
  const to = 's3://backups/site/one';
  const result = await backupTo(to, silentLogger, (dir) =>
    takeBackup({ config: cfg, to: dir, version: '1', log: silentLogger }),
  );
  assert.is(result.parts, 3);
  const manifest = await withLocalBackup(to, silentLogger, (dir) => verifyBackup(dir));
  assert.equal(manifest.parts.map((p) => p.path).sort(), [
    'config/shipkit.yml',
    'data/jobs.journal',
    'data/logs/octo%2Fsite/logs.txt',
  ]);
  const error = await checkRemoteEmpty(to, silentLogger).catch((e: unknown) => e);
  assert.instance(error, ConfigError);
  assert.match(String(error), /already holds a backup/);
});

test('no manifest there: not a backup; a manifest naming ../ is refused before any part is fetched', async () => {
  const none = await downloadBackup('s3://backups/empty', tmpDir('shipkit-dl-'), silentLogger).catch((e: unknown) => e);
  assert.instance(none, ConfigError);
  assert.match(String(none), /holds no MANIFEST\.json/);
  const staged = tmpDir('shipkit-evil-');
  writeFileSync(
    path.join(staged, 'MANIFEST.json'),
    JSON.stringify({
      format: 1,
      shipkit: 'x',
      created: 'x',
      data: '.',
      left_out: [],
      parts: [{ path: '../../escape', kind: 'data', size: 1, sha256: 'a'.repeat(64) }],
    }),
  );
  await uploadFiles({ from: staged, to: 's3://backups/evil', files: ['MANIFEST.json'], log: silentLogger });
  const into = path.join(tmpDir('shipkit-dl-'), 'b');
  const evil = await downloadBackup('s3://backups/evil', into, silentLogger).catch((e: unknown) => e);
  assert.instance(evil, ValidationError);
  assert.match(String(evil), /names a part it may not/);
});

test.run();
