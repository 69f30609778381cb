// takeBackup (lib/backup/snapshot.ts) on a DATA folder laid out by hand: what goes in and what
// stays out (clones, temp files, locks, secret files without an encrypter), append-only logs cut
// at their last whole line, literal secrets never copied in clear, and no half backup on failure.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { ConfigError, WorkError } from '../../../lib/core/errors.ts';
import { silentLogger } from '../../../lib/core/log.ts';
import { checkParts, readManifest } from '../../../lib/backup/manifest.ts';
import { secretFilesOf, takeBackup } from '../../../lib/backup/snapshot.ts';
import { tmpDir } from '../../_helpers/common.ts';

const root = tmpDir('shipkit-snapshot-');
let n = 0;

/** A first-start layout: shipkit.yml with data: ., a secret file, a literal token, and DATA's files. */
async function layout() {
  const dir = path.join(root, `home${++n}`);
  const files: Record<string, string> = {
    'webhook-secret': 'the-webhook-secret\n',
    'jobs.journal': '{"a":1}\n{"a":2}\n{"a":', // a record being appended: cut off
    'fleet/fleet.log': '{"h":1}\n{"h"',
    'audit/audit.jsonl': '{"n":1}\n{"n":2', // an audit entry being appended
    'pushes.json': '{}',
    'logs/octo/site/logs.txt': 'built\n',
    'tmp/upload-1': 'half',
    'repos/octo/site/.git/HEAD': 'ref: refs/heads/main\n',
    'queue.lock': '123',
    'jobs/.j1.json.tmp-9-abc': 'x',
  };
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  writeFileSync(
    path.join(dir, 'shipkit.yml'),
    'data: .\nsecret: file:webhook-secret\ntoken: literal-read-token-0123456789\nrepos:\n  octo/site:\n    branch: main\n',
  );
  return { dir, config: await loadShipkitConfig(path.join(dir, 'shipkit.yml')) };
}

const partsOf = async (to: string) => (await readManifest(to)).parts.map((p) => p.path).sort();

test('DATA goes in without clones, temp files or locks; append-only logs end at a whole line', async () => {
  const { dir, config } = await layout();
  const to = path.join(root, `out${n}`);
  const result = await takeBackup({ config, to, version: '1.2.3', log: silentLogger });
  assert.equal(await partsOf(to), [
    'config/shipkit.yml',
    'data/audit/audit.jsonl',
    'data/fleet/fleet.log',
    'data/jobs.journal',
    'data/logs/octo/site/logs.txt',
    'data/pushes.json',
  ]);
  assert.is(readFileSync(path.join(to, 'data/jobs.journal'), 'utf8'), '{"a":1}\n{"a":2}\n');
  assert.is(readFileSync(path.join(to, 'data/fleet/fleet.log'), 'utf8'), '{"h":1}\n');
  assert.is(readFileSync(path.join(to, 'data/audit/audit.jsonl'), 'utf8'), '{"n":1}\n');
  await checkParts(to, await readManifest(to));
  assert.equal(result.leftOut.length, 2, 'the secret file and the literal token');
  assert.is(readFileSync(path.join(dir, 'jobs.journal'), 'utf8').endsWith('{"a":'), true, 'DATA untouched');
});

test('without an encrypter no secret is in the backup in clear: files left out, literals replaced', async () => {
  const { config } = await layout();
  const to = path.join(root, `out${n}`);
  const result = await takeBackup({ config, to, version: '1.2.3', log: silentLogger });
  const all = readdirSync(to, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(path.join(e.parentPath, e.name), 'utf8'))
    .join('\n');
  assert.not.match(all, /the-webhook-secret|literal-read-token/);
  assert.match(readFileSync(path.join(to, 'config/shipkit.yml'), 'utf8'), /token: env:SHIPKIT_RESTORED_SECRET_1/);
  assert.ok(result.leftOut.includes('webhook-secret'), 'named so restore can say what to put back');
  assert.equal((await readManifest(to)).left_out, result.leftOut);
});

test('with an encrypter the secret file and the whole shipkit.yml go in encrypted', async () => {
  const { config } = await layout();
  const to = path.join(root, `out${n}`);
  const encrypt = async (bytes: Buffer) => Buffer.from(`SEALED:${bytes.toString('base64')}`);
  const result = await takeBackup({ config, to, encrypt, version: '1.2.3', log: silentLogger });
  assert.equal(result.leftOut, []);
  const parts = await partsOf(to);
  assert.ok(parts.includes('secrets/config/webhook-secret.asc') && parts.includes('secrets/config/shipkit.yml.asc'));
  assert.not.ok(parts.includes('config/shipkit.yml'), 'shipkit.yml holds a literal: only its encrypted copy');
  const sealed = readFileSync(path.join(to, 'secrets/config/webhook-secret.asc'), 'utf8');
  assert.is(Buffer.from(sealed.slice(7), 'base64').toString(), 'the-webhook-secret\n');
});

test('secretFilesOf: file: secrets inside the config folder or DATA, not the machine store', async () => {
  const { dir, config } = await layout();
  assert.equal(secretFilesOf(config), [path.join(dir, 'webhook-secret')]);
  writeFileSync(path.join(dir, 'shipkit.yml'), 'data: .\nsecret: file:/etc/shipkit/secret\nrepos: {}\n');
  assert.equal(secretFilesOf(await loadShipkitConfig(path.join(dir, 'shipkit.yml'))), []);
});

test('a secret file in a DATA outside the config folder goes under secrets/data/', async () => {
  const dir = path.join(root, `split${++n}`);
  mkdirSync(path.join(dir, 'etc'), { recursive: true });
  mkdirSync(path.join(dir, 'var', 'jobs'), { recursive: true });
  writeFileSync(path.join(dir, 'var', 'webhook-secret'), 's3cret\n');
  writeFileSync(path.join(dir, 'etc', 'shipkit.yml'), 'data: ../var\nsecret: file:../var/webhook-secret\nrepos: {}\n');
  const config = await loadShipkitConfig(path.join(dir, 'etc', 'shipkit.yml'));
  const to = path.join(root, `out-split${n}`);
  const encrypt = async (bytes: Buffer) => Buffer.from(`SEALED:${bytes.toString('base64')}`);
  await takeBackup({ config, to, encrypt, version: '1', log: silentLogger });
  assert.equal(await partsOf(to), ['config/shipkit.yml', 'secrets/data/webhook-secret.asc']);
  assert.is((await readManifest(to)).data, path.join(dir, 'var'), 'outside the config folder: kept absolute');
});

test('DEST inside DATA is refused before anything is written (it would copy itself)', async () => {
  const { dir, config } = await layout();
  for (const to of [path.join(dir, 'backups', 'b1'), dir]) {
    const error = await takeBackup({ config, to, version: '1', log: silentLogger }).catch((e: unknown) => e);
    assert.instance(error, ConfigError);
    assert.match(String(error), /is inside the data folder .* would copy itself/);
  }
  assert.not.ok(existsSync(path.join(dir, 'backups')));
});

test('DEST not empty: refused, nothing written; a failure midway leaves no backup at all', async () => {
  const { config } = await layout();
  const busy = path.join(root, `busy${n}`);
  mkdirSync(busy);
  writeFileSync(path.join(busy, 'keep'), 'mine');
  const error = await takeBackup({ config, to: busy, version: '1', log: silentLogger }).catch((e: unknown) => e);
  assert.instance(error, ConfigError);
  assert.match((error as Error).message, /not empty/);
  assert.equal(readdirSync(busy), ['keep']);

  const to = path.join(root, `broken${n}`);
  const encrypt = async () => {
    throw new Error('card removed');
  };
  const failed = await takeBackup({ config, to, encrypt, version: '1', log: silentLogger }).catch((e: unknown) => e);
  assert.instance(failed, WorkError);
  assert.match((failed as Error).message, /card removed; nothing was kept there/);
  assert.not.ok(existsSync(to), 'the half-written folder is gone');
});

test.run();
