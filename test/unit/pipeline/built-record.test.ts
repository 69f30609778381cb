// lib/pipeline/built-record.ts: the digests a push is judged "up to date" by. The environment
// digest covers every env: value (secrets too) and PATH, HOME and LANG, keyed by its salt; the
// config digest is the file's bytes.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { configDigest, envDigest, forgetBuilt, readBuilt } from '../../../lib/pipeline/built-record.ts';
import { tmpDir } from '../../_helpers/common.ts';

const VARS = { API_KEY: 's3cret', MODE: 'prod' };
const ENV = { PATH: '/usr/bin:/bin', HOME: '/home/build', LANG: 'C.UTF-8' };

test('envDigest: the same inputs in any order give the same digest', () => {
  const digest = envDigest('salt', VARS, ENV);
  assert.is(envDigest('salt', { MODE: 'prod', API_KEY: 's3cret' }, { ...ENV }), digest);
  assert.match(digest, /^[0-9a-f]{64}$/);
  assert.not.match(digest, /s3cret/);
});

test('envDigest: any change to a value, a name, PATH, HOME, LANG or the salt changes it', () => {
  const digest = envDigest('salt', VARS, ENV);
  const changed: Array<[string, string]> = [
    ['a secret value', envDigest('salt', { ...VARS, API_KEY: 's3cret2' }, ENV)],
    ['a variable more', envDigest('salt', { ...VARS, EXTRA: '' }, ENV)],
    ['a renamed variable', envDigest('salt', { API_KEY2: 's3cret', MODE: 'prod' }, ENV)],
    ['PATH', envDigest('salt', VARS, { ...ENV, PATH: '/opt/bin:/usr/bin:/bin' })],
    ['HOME', envDigest('salt', VARS, { ...ENV, HOME: '/root' })],
    ['LANG unset', envDigest('salt', VARS, { PATH: ENV.PATH, HOME: ENV.HOME })],
    ['the salt', envDigest('pepper', VARS, ENV)],
  ];
  for (const [what, other] of changed) assert.is.not(other, digest, what);
});

test('configDigest is the bytes of the file: a comment counts', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'shipkit.yml');
  writeFileSync(file, 'data: data\n');
  const first = await configDigest(file);
  writeFileSync(file, 'data: data\n# why\n');
  assert.is.not(await configDigest(file), first);
});

test('readBuilt: none is undefined, a damaged or partial record is an error; forgetBuilt takes none calmly', async () => {
  const state = tmpDir();
  assert.is(await readBuilt({ state }), undefined);
  await forgetBuilt({ state });
  for (const text of ['{"job":', '{}', '{"job":"j","sha":"a","tree":"b","config":"c","shipkit":"1","env":{}}']) {
    writeFileSync(path.join(state, 'built.json'), text);
    try {
      await readBuilt({ state });
      assert.unreachable(`${text} was taken for a record`);
    } catch (error) {
      assert.instance(error, Error);
      assert.not.instance(error, assert.Assertion);
    }
  }
  await forgetBuilt({ state });
  assert.is(await readBuilt({ state }), undefined);
});

test.run();
