// A backup's MANIFEST.json (lib/backup/manifest.ts): read back with its shape and format checked,
// parts that would land outside the backup refused, and each part's size and sha256 checked.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ValidationError } from '../../../lib/core/errors.ts';
import { BACKUP_FORMAT, checkParts, readManifest, type Manifest } from '../../../lib/backup/manifest.ts';
import { tmpDir } from '../../_helpers/common.ts';

const root = tmpDir('shipkit-manifest-');
let n = 0;

/** A backup folder with one data part and the manifest given (by default the right one). */
function backup(edit: (m: Manifest) => unknown = (m) => m): string {
  const dir = path.join(root, `b${++n}`);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const bytes = Buffer.from('{"id":"j1"}\n');
  writeFileSync(path.join(dir, 'data', 'jobs.journal'), bytes);
  const manifest: Manifest = {
    format: BACKUP_FORMAT,
    shipkit: '9.9.9',
    created: '2026-11-24T00:00:00.000Z',
    data: 'data',
    parts: [
      {
        path: 'data/jobs.journal',
        kind: 'data',
        size: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      },
    ],
    left_out: [],
  };
  writeFileSync(path.join(dir, 'MANIFEST.json'), JSON.stringify(edit(manifest)));
  return dir;
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(error, ValidationError, 'refused as invalid input (exit 2)');
  return (error as Error).message;
}

test('a whole backup reads back and its parts check', async () => {
  const dir = backup();
  const manifest = await readManifest(dir);
  assert.is(manifest.parts.length, 1);
  await checkParts(dir, manifest);
});

test('no manifest: not a backup, or one cut short', async () => {
  const dir = path.join(root, 'empty');
  mkdirSync(dir);
  assert.match(await refusal(readManifest(dir)), /holds no MANIFEST\.json.*did not finish/);
});

test('a manifest that is not JSON, or not a manifest', async () => {
  const dir = backup();
  writeFileSync(path.join(dir, 'MANIFEST.json'), '{"format": 1, "parts": [');
  assert.match(await refusal(readManifest(dir)), /not JSON: the backup is damaged/);
  assert.match(await refusal(readManifest(backup(() => ({ format: '1', parts: [] })))), /not a backup manifest/);
  assert.match(await refusal(readManifest(backup(() => [1, 2]))), /not a backup manifest/);
});

test('a newer format is refused, naming the version that made it', async () => {
  const dir = backup((m) => ({ ...m, format: BACKUP_FORMAT + 1 }));
  assert.match(await refusal(readManifest(dir)), new RegExp(`format ${BACKUP_FORMAT + 1}, made by shipkit 9\\.9\\.9`));
});

test('parts outside the backup, or with a bad hash or size, are refused before anything is read', async () => {
  for (const bad of ['../etc/passwd', '/etc/passwd', 'data/../../x', 'other/x', 'data\\..\\x/../../y']) {
    const dir = backup((m) => ({ ...m, parts: [{ ...m.parts[0], path: bad }] }));
    assert.match(await refusal(readManifest(dir)), /names a part it may not/, bad);
  }
  const badHash = backup((m) => ({ ...m, parts: [{ ...m.parts[0], sha256: 'abc' }] }));
  assert.match(await refusal(readManifest(badHash)), /names a part it may not/);
  const badSize = backup((m) => ({ ...m, parts: [{ ...m.parts[0], size: -1.5 }] }));
  assert.match(await refusal(readManifest(badSize)), /names a part it may not/);
});

test('checkParts names the missing, cut and changed part', async () => {
  const missing = backup((m) => ({ ...m, parts: [{ ...m.parts[0], path: 'data/gone' }] }));
  assert.match(await refusal(checkParts(missing, await readManifest(missing))), /data\/gone is missing/);

  const cut = backup();
  writeFileSync(path.join(cut, 'data', 'jobs.journal'), '{"id"');
  assert.match(await refusal(checkParts(cut, await readManifest(cut))), /is 5 bytes, the manifest says 12/);

  const changed = backup();
  writeFileSync(path.join(changed, 'data', 'jobs.journal'), '{"id":"j2"}\n');
  assert.match(await refusal(checkParts(changed, await readManifest(changed))), /does not match its sha256.*damaged/);
});

test.run();
