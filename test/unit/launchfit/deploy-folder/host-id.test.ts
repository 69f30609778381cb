// The host id (lib/launchfit/deploy-folder/host-id.ts): made once, 0600, 32 hex; read back unchanged; made by
// several callers at once they agree; a malformed file is an error naming it and is left alone.
import { readFileSync, statSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureHostId, hostIdFile } from '../../../../lib/launchfit/deploy-folder/host-id.ts';
import { HOST_ID_PATTERN } from '../../../../lib/release/format/bucket.ts';
import { tmpDir } from '../../../_helpers/common.ts';

test('made on first need (0600, 32 hex), the same afterwards', async () => {
  const meta = path.join(tmpDir('host-id-'), '.launchfit');
  const id = await ensureHostId({ meta });
  assert.match(id, HOST_ID_PATTERN);
  assert.is(statSync(hostIdFile({ meta })).mode & 0o777, 0o600);
  assert.is(await ensureHostId({ meta }), id);
  assert.equal(readdirSync(meta), ['host-id'], 'no temp file left');
});

test('callers at once agree on one id', async () => {
  const meta = path.join(tmpDir('host-id-'), '.launchfit');
  const ids = await Promise.all(Array.from({ length: 8 }, () => ensureHostId({ meta })));
  assert.is(new Set(ids).size, 1);
  assert.is(readFileSync(hostIdFile({ meta }), 'utf8').trim(), ids[0]);
});

test('a malformed file is an error naming it, and is not replaced', async () => {
  for (const bad of ['', 'ABCDEF0123456789ABCDEF0123456789', 'abc', '0'.repeat(33), '../../etc/passwd']) {
    const meta = path.join(tmpDir('host-id-'), '.launchfit');
    mkdirSync(meta);
    writeFileSync(path.join(meta, 'host-id'), bad);
    try {
      await ensureHostId({ meta });
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (error) {
      assert.match(String((error as Error).message), /host-id is not a host id/, bad);
    }
    assert.is(readFileSync(path.join(meta, 'host-id'), 'utf8'), bad, 'left as it was');
  }
});

test.run();
