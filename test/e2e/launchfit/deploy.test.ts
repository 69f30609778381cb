// @deno
// `launchfit URL` trust on the first deploy: a key fetched from the server (pubkey.asc, written
// by `release publish`) is trusted only against a pinned full fingerprint; a key ID alone or a
// wrong fingerprint installs nothing. A non-empty folder without launchify.yml is refused.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runScript } from '../../_helpers/common.ts';
import { currentOf, makeWorld, type World } from '../../fixtures/launchfit/world.ts';

let w: World;
const fresh = (name: string) => {
  const dir = path.join(w.base, name);
  mkdirSync(dir);
  return dir;
};
const leftEmpty = (dir: string) => readdirSync(dir).filter((n) => n !== '.launchfit').length === 0;

test.before(async () => {
  w = await makeWorld();
  await w.publish('1.0');
});
test.after(() => w.server.close());

test('--key with the full fingerprint: the server key is fetched, matched and trusted', async () => {
  const dir = fresh('pinned');
  const r = await runScript('launchfit', [w.server.url, '--key', w.key.fpr, '--dir', dir]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(currentOf(dir), 'releases/my-app-gnu-linux-1.0');
  assert.match(readFileSync(path.join(dir, 'launchify.yml'), 'utf8'), new RegExp(`key: "${w.key.fpr}"`));
  assert.ok(
    w.server.requests.some((q) => q.path === 'keys.asc' && q.status === 200),
    'keys.asc, the preferred name, was fetched',
  );
});

test('a wrong fingerprint, or a key ID alone, installs nothing', async () => {
  const wrong = fresh('wrong');
  let r = await runScript('launchfit', [w.server.url, '--key', 'ABCD'.repeat(10), '--dir', wrong]);
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /does not match the pinned fingerprint/);
  assert.not.ok(existsSync(path.join(wrong, 'current')));
  assert.not.ok(existsSync(path.join(wrong, 'releases')) && readdirSync(path.join(wrong, 'releases')).length > 0);
  assert.not.ok(existsSync(path.join(wrong, 'launchify.yml')), 'a failed first deploy takes its launchify.yml back');
  // ...so the same folder can be deployed again with the right key.
  r = await runScript('launchfit', [w.server.url, '--key', w.key.fpr, '--dir', wrong]);
  assert.is(r.exitCode, 0, r.stderr);

  const short = fresh('short');
  r = await runScript('launchfit', [w.server.url, '--key', w.key.fpr.slice(-16), '--dir', short]);
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /A key ID alone is never trusted/);
  assert.ok(leftEmpty(short), 'nothing written, not even launchify.yml');
});

test('a folder that is not empty and has no launchify.yml is refused', async () => {
  const busy = fresh('busy');
  writeFileSync(path.join(busy, 'precious.txt'), 'keep me');
  const r = await runScript('launchfit', [w.server.url, '--keyfile', w.pubAsc, '--dir', busy]);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /is not empty and has no launchify\.yml/);
  assert.equal(
    readdirSync(busy).filter((n) => n !== '.launchfit'),
    ['precious.txt'],
  );
  const bad = fresh('bad-config');
  writeFileSync(
    path.join(bad, 'launchify.yml'),
    'updates:\n  server: http://x/\n  gpg:\n    keyfile: k.asc\n  intervall: 5\n',
  );
  const c = await runScript('launchfit', ['deploy', '--dir', bad]);
  assert.is(c.exitCode, 2);
  assert.match(c.stderr, /launchify\.yml:5: updates\.intervall: unknown key/);
  assert.ok(leftEmpty(fresh('untouched')));
});

test.run();
