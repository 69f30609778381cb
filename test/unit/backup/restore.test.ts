// verifyBackup and restoreBackup (lib/backup/restore.ts) on backups made by takeBackup in temp
// folders: a restore puts shipkit.yml and DATA back byte for byte; a damaged part, a changed one or
// an existing target refuses with nothing written; --force keeps the old one aside.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { ConfigError, ValidationError } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { restoreBackup, verifyBackup } from '../../../lib/backup/restore.ts';
import { takeBackup } from '../../../lib/backup/snapshot.ts';
import { tmpDir } from '../../_helpers/common.ts';

const root = tmpDir('shipkit-restore-unit-');
let n = 0;

/** A backup of a small control plane (data: ./data beside shipkit.yml); gives its folder. */
async function aBackup(): Promise<string> {
  const home = path.join(root, `home${++n}`);
  mkdirSync(path.join(home, 'data', 'logs', 'octo%2Fsite'), { recursive: true });
  writeFileSync(path.join(home, 'shipkit.yml'), 'data: ./data\nsecret: env:HOOK_SECRET\nrepos: {}\n');
  writeFileSync(path.join(home, 'data', 'jobs.journal'), '{"id":"a"}\n');
  writeFileSync(path.join(home, 'data', 'logs', 'octo%2Fsite', 'logs.txt'), 'x'.repeat(3 << 20));
  const to = path.join(root, `backup${n}`);
  const config = await loadShipkitConfig(path.join(home, 'shipkit.yml'));
  await takeBackup({ config, to, version: '1.0.0', log: silentLogger });
  return to;
}

const restore = (from: string, to: string, force = false) =>
  restoreBackup({ from, to, force, log: silentLogger, now: new Date('2026-11-24T10:00:00Z') });

test('restored byte for byte: shipkit.yml in DIR, DATA where the manifest says', async () => {
  const from = await aBackup();
  const to = path.join(root, 'restored-a');
  const result = await restore(from, to);
  assert.is(result.config, path.join(to, 'shipkit.yml'));
  assert.is(result.data, path.join(to, 'data'));
  assert.equal(result.keptAside, []);
  assert.is(readFileSync(path.join(to, 'data', 'jobs.journal'), 'utf8'), '{"id":"a"}\n');
  assert.is(readFileSync(path.join(to, 'data', 'logs', 'octo%2Fsite', 'logs.txt')).length, 3 << 20);
  assert.equal(
    readdirSync(root).filter((f) => f.includes('.restoring-')),
    [],
    'no staging folder left',
  );
});

test('a part changed after the backup (same size): refused, nothing written', async () => {
  const from = await aBackup();
  const log = path.join(from, 'data', 'logs', 'octo%2Fsite', 'logs.txt');
  const bytes = readFileSync(log);
  bytes[bytes.length - 1] = 0x79;
  writeFileSync(log, bytes);
  const to = path.join(root, 'restored-b');
  const error = await restore(from, to).catch((e: unknown) => e);
  assert.instance(error, ValidationError);
  assert.match(String(error), /logs\.txt does not match its sha256/);
  assert.not.ok(existsSync(to));
  assert.equal(
    readdirSync(root).filter((f) => f.includes('restored-b')),
    [],
    'the staging folder went too',
  );
  await verifyBackup(from).then(
    () => assert.unreachable('verify must refuse it too'),
    (e: unknown) => assert.instance(e, ValidationError),
  );
});

test('a signed backup checked without a key: restored, and the unchecked signature said', async () => {
  const from = await aBackup();
  writeFileSync(path.join(from, 'MANIFEST.json.sig'), 'not checked here');
  const warned: string[] = [];
  const log = { ...silentLogger, warn: (m: string) => void warned.push(m) };
  await restoreBackup({ from, to: path.join(root, 'restored-d'), log });
  assert.equal(warned, ['MANIFEST.json.sig was not checked: give --key PUBKEY.asc to check who made this backup']);
  await verifyBackup(from, { log });
  assert.is(warned.length, 2);
});

test('an existing target: refused without force; with it, kept aside', async () => {
  const from = await aBackup();
  const to = path.join(root, 'restored-c');
  mkdirSync(to);
  writeFileSync(path.join(to, 'shipkit.yml'), 'mine\n');
  const error = await restore(from, to).catch((e: unknown) => e);
  assert.instance(error, ConfigError);
  assert.match(String(error), /already exist.*--force.*Nothing was written/);
  assert.is(readFileSync(path.join(to, 'shipkit.yml'), 'utf8'), 'mine\n');
  const result = await restore(from, to, true);
  assert.equal(result.keptAside, [`${to}.before-restore-2026-11-24T10-00-00-000Z`]);
  assert.is(readFileSync(path.join(result.keptAside[0], 'shipkit.yml'), 'utf8'), 'mine\n');
  assert.match(readFileSync(path.join(to, 'shipkit.yml'), 'utf8'), /data: \.\/data/);
});

test.run();
