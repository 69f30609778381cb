// @deno
// `release publish` as a child process: usage errors exit 2, a publish writes the contract's
// files, and gpgv accepts the signatures.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand, runScript, tmpDir } from '../helpers.ts';
import { makePublisher } from '../fixtures/launchfit/gpg.ts';

let base: string;
let secret: string;
let passFile: string;
let keyring: string;
let src: string;

test.before(async () => {
  base = tmpDir();
  ({ secret, passFile, keyring } = await makePublisher(base, 'pw'));
  src = path.join(base, 'app');
  mkdirSync(src);
  writeFileSync(path.join(src, 'server.js'), 'console.log(1)\n');
});

test('release publish --help', async () => {
  const r = await runScript('release', ['publish', '--help']);
  assert.is(r.exitCode, 0);
  assert.match(r.stdout, /release publish DIR --name APP --platform PLATFORM --version V/);
  assert.match(r.stdout, /--passphrase-file/);
});

test('usage errors exit 2 and write nothing', async () => {
  const to = path.join(base, 'never');
  const cases: Array<[string[], RegExp]> = [
    [[src, '--platform', 'gnu-linux', '--key', secret, '--to', to], /Missing --name/],
    [[src, '--name', '../x', '--platform', 'gnu-linux', '--key', secret, '--to', to], /Invalid app name/],
    [[src, '--name', 'app', '--platform', 'gnu-linux', '--version', '1.0', '--key', secret, '--to', to, '--keep', 'many'], /--keep must be a whole number/],
    [['--name', 'app'], /Missing argument|Usage/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runScript('release', ['publish', ...args]);
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  const wrongKey = await runScript('release', ['publish', src, '--name', 'app', '--platform', 'gnu-linux', '--version', '1.0', '--key', path.join(base, 'nope.asc'), '--to', to]);
  assert.is(wrongKey.exitCode, 2, wrongKey.stderr);
  assert.match(wrongKey.stderr, /Cannot read the secret key/);
  const badVersion = await runScript('release', ['publish', src, '--name', 'app', '--platform', 'gnu-linux', '--version', '1.0-rc1', '--key', secret, '--to', to]);
  assert.is(badVersion.exitCode, 2, badVersion.stderr);
  assert.match(badVersion.stderr, /hexadecimal/);
  assert.throws(() => readdirSync(to));
});

test('release publish DIR --version V … publishes what gpgv accepts', async () => {
  const to = path.join(base, 'updates');
  const args = ['publish', src, '--name', 'my-app', '--platform', 'gnu-linux', '--version', '2.a', '--key', secret, '--passphrase-file', passFile, '--to', to, '--codename', 'soda', '--json'];
  const r = await runScript('release', args);
  assert.is(r.exitCode, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.is(result.file, 'my-app-gnu-linux-2.a.tar.gz');
  assert.equal(readdirSync(to).sort(), ['VERSION', 'VERSION.sig', 'keys.asc', 'my-app-gnu-linux-2.a.tar.gz', 'my-app-gnu-linux-2.a.tar.gz.sig', 'pubkey.asc']);
  assert.match(readFileSync(path.join(to, 'VERSION'), 'utf8'), /^CURRENT 2\.a my-app-gnu-linux-2\.a\.tar\.gz\nRELEASE soda\nSHA256 [0-9a-f]{64}\nSIZE \d+\nEXPIRES /);
  const v = await runCommand('gpgv', ['--keyring', keyring, path.join(to, 'my-app-gnu-linux-2.a.tar.gz.sig'), path.join(to, 'my-app-gnu-linux-2.a.tar.gz')]);
  assert.is(v.exitCode, 0, v.stderr);
});

test.run();
