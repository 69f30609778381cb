// The first start without a config (lib/config/first-run.ts): ./.shipkit/shipkit.yml written with a
// new webhook secret and token in 0600 files, used again on the next start, never made when a
// config is named; the message that shows the secret once.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findOrCreateConfig, firstRunMessage } from '../../../lib/config/first-run.ts';
import { loadShipkitConfig } from '../../../lib/config/shipkit-yml.ts';
import { tmpDir } from '../../_helpers/common.ts';

const env = { HOME: '/nonexistent' };
// Without a config in the working folder, the search ends at /etc/shipkit/shipkit.yml: on a machine
// with the Debian package installed there is no "no config anywhere" to test.
const SYSTEM = existsSync('/etc/shipkit/shipkit.yml');
if (SYSTEM) console.log('skipped: the first-start cases, /etc/shipkit/shipkit.yml exists on this machine');

test('no config anywhere: .shipkit/ made, with a config that loads and 0600 secret files', async () => {
  if (SYSTEM) return;
  const cwd = tmpDir('shipkit-first-');
  const choice = await findOrCreateConfig(undefined, { env, cwd });
  const dir = path.join(cwd, '.shipkit');
  assert.is(choice.file, path.join(dir, 'shipkit.yml'));
  assert.ok(choice.created);
  assert.match(choice.created!.secret, /^[0-9a-f]{64}$/);
  assert.is(readFileSync(path.join(dir, 'webhook-secret'), 'utf8'), `${choice.created!.secret}\n`);
  assert.is(readFileSync(path.join(dir, 'token'), 'utf8'), `${choice.created!.token}\n`);
  for (const f of ['webhook-secret', 'token', 'shipkit.yml'])
    assert.is(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  assert.is(statSync(dir).mode & 0o777, 0o700);
  const config = await loadShipkitConfig(choice.file);
  assert.is(config.data, dir);
  assert.is(config.repos.size, 0);
});

test('the next start uses it, and makes no new secret', async () => {
  if (SYSTEM) return;
  const cwd = tmpDir('shipkit-first-');
  const first = await findOrCreateConfig(undefined, { env, cwd });
  const again = await findOrCreateConfig(undefined, { env, cwd });
  assert.equal(again, { file: first.file });
  assert.is(readFileSync(path.join(cwd, '.shipkit', 'webhook-secret'), 'utf8').trim(), first.created!.secret);
});

test('a config named by --config or SHIPKIT_CONFIG is used as named (loading says if it is missing): no first start', async () => {
  const cwd = tmpDir('shipkit-first-');
  assert.equal(await findOrCreateConfig('/nonexistent/shipkit.yml', { env, cwd }), {
    file: '/nonexistent/shipkit.yml',
  });
  const named = { ...env, SHIPKIT_CONFIG: '/nonexistent/x.yml' };
  assert.equal(await findOrCreateConfig(undefined, { env: named, cwd }), { file: '/nonexistent/x.yml' });
  assert.not.ok(existsSync(path.join(cwd, '.shipkit')));
});

test('a shipkit.yml in the working folder is found and nothing is written', async () => {
  const cwd = tmpDir('shipkit-first-');
  mkdirSync(cwd, { recursive: true });
  writeFileSync(path.join(cwd, 'shipkit.yml'), 'repos: {}\n');
  const choice = await findOrCreateConfig(undefined, { env, cwd });
  assert.is(choice.created, undefined);
  assert.not.ok(existsSync(path.join(cwd, '.shipkit')));
});

test('firstRunMessage shows the secret and token once, and how to try it', () => {
  const text = firstRunMessage({ secret: 's3cret', token: 't0ken', dir: '/srv/.shipkit' }, 'http://127.0.0.1:9000');
  assert.match(text, /webhook secret: s3cret/);
  assert.match(text, /read token .*: t0ken/);
  assert.match(text, /curl http:\/\/127\.0\.0\.1:9000\/healthz/);
  assert.match(text, /cat \/srv\/\.shipkit\/token/);
});

test.run();
