// lib/core/secrets.ts: the one secret reader (env:, file:, literal; secret and passphrase files).
// Real files in a temp folder; no error message ever holds a secret's value.
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, UsageError } from '../../../lib/core/errors.ts';
import { FollowedSecretFile, readSecretFile, resolveSecret, resolveSecretFlag } from '../../../lib/core/secrets.ts';
import { tmpDir } from '../../_helpers/common.ts';

const dir = tmpDir();
const SECRET = 'hunter2-Secret';
function write(name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

async function refused(run: Promise<unknown>, pattern: RegExp): Promise<string> {
  try {
    await run;
  } catch (error) {
    assert.instance(error, ConfigError);
    const message = (error as Error).message;
    assert.match(message, pattern);
    assert.not.match(message, /hunter2/, 'the value never appears in a message');
    return message;
  }
  assert.unreachable(`should have refused (${pattern})`);
  return '';
}

// [label, content, secret (trimmed), passphrase (as written)]
const files: Array<[string, string, string, string]> = [
  ['one line', `${SECRET}\n`, SECRET, SECRET],
  ['no newline at the end', SECRET, SECRET, SECRET],
  ['CRLF', `${SECRET}\r\n`, SECRET, SECRET],
  ['only one trailing newline is the line ending', `${SECRET}\n\n`, SECRET, SECRET],
  ['surrounding spaces', `  ${SECRET} \n`, SECRET, `  ${SECRET} `],
  ['a second line is not part of it', `${SECRET}\nsecond line\n`, SECRET, SECRET],
  ['unicode', 'pässwörd ✓\n', 'pässwörd ✓', 'pässwörd ✓'],
];

for (const [label, content, secret, passphrase] of files) {
  test(`readSecretFile: ${label}`, async () => {
    const file = write(`files/${label.replace(/\W+/g, '-')}`, content);
    assert.is(await readSecretFile(file), secret);
    assert.is(await readSecretFile(file, { passphrase: true }), passphrase);
    assert.is(await resolveSecret(`file:${file}`), secret);
  });
}

test('readSecretFile: missing, a folder, unreadable and empty files are ConfigErrors naming where', async () => {
  await refused(
    readSecretFile(path.join(dir, 'nope'), { where: '--secret-file' }),
    /^--secret-file: cannot read secret file .*nope \(ENOENT\); check the path/,
  );
  await refused(readSecretFile(path.join(dir, 'nope')), /^Cannot read the secret file .*nope \(ENOENT\)/);
  await refused(
    readSecretFile(dir, { where: 'shipkit.yml:3: token' }),
    /^shipkit\.yml:3: token: cannot read secret file .* \(EISDIR\)/,
  );
  await refused(
    readSecretFile(path.join(dir, 'nope'), { what: 'passphrase file', passphrase: true }),
    /^Cannot read the passphrase file .*nope \(ENOENT\)/,
  );
  await refused(readSecretFile(write('empty', '\n')), /^The secret file .*empty is empty\.$/);
  await refused(
    readSecretFile(write('blank', '   \r\n'), { where: 'launchify.yml: control.secret' }),
    /^launchify\.yml: control\.secret: secret file .*blank is empty\.$/,
  );
  if (process.getuid?.() !== 0) {
    const locked = write('locked', `${SECRET}\n`);
    chmodSync(locked, 0o000);
    await refused(readSecretFile(locked), /\(EACCES\)/);
  }
});

test('a passphrase file may be empty (a key protected by an empty passphrase)', async () => {
  assert.is(await readSecretFile(write('empty-pass', '\n'), { passphrase: true }), '');
});

test('a file that is not a secret (no line break in 64 KB) is refused without its bytes in the message', async () => {
  const big = write('big', Buffer.alloc(200 * 1024, 'hunter2'));
  await refused(
    readSecretFile(big, { where: 'shipkit.yml:9: secret' }),
    /^shipkit\.yml:9: secret: secret file .*big holds no line break in its first 64 KB/,
  );
  await refused(resolveSecret('file:/dev/zero', { where: 'x' }), /no line break/);
});

test('a long first line after which a line break follows is read whole', async () => {
  const long = 'k'.repeat(4096);
  assert.is(await readSecretFile(write('long', `${long}\nrest`)), long);
});

test('resolveSecret: env:, literal and file: relative to the config folder', async () => {
  write('conf/secrets/hook.txt', `${SECRET}\n`);
  assert.is(await resolveSecret('file:secrets/hook.txt', { baseDir: path.join(dir, 'conf') }), SECRET);
  assert.is(await resolveSecret('env:HOOK', { env: { HOOK: SECRET } }), SECRET);
  assert.is(await resolveSecret(SECRET), SECRET);
  await refused(
    resolveSecret('env:HOOK', { env: {}, where: 'shipkit.yml:2: secret' }),
    /^shipkit\.yml:2: secret: environment variable HOOK is not set or empty\.$/,
  );
  await refused(
    resolveSecret('', { where: 'shipkit.yml:2: secret' }),
    /^shipkit\.yml:2: secret: the secret is empty\.$/,
  );
});

test('FollowedSecretFile: a replaced file is read again (at most once a second); an empty or missing one keeps the last value', () => {
  const file = path.join(tmpDir(), 'token');
  writeFileSync(file, 'one\n');
  const followed = new FollowedSecretFile(file, 'one');
  let now = 10_000;
  assert.is(followed.current(now), 'one');
  writeFileSync(`${file}.new`, 'two-longer\n');
  renameSync(`${file}.new`, file);
  assert.is(followed.current(now + 500), 'one', 'not looked at again within the second');
  now += 1000;
  assert.is(followed.current(now), 'two-longer');
  writeFileSync(file, '\n');
  now += 1000;
  assert.is(followed.current(now), 'two-longer', 'an empty file is a write in progress or a mistake');
  rmSync(file);
  now += 1000;
  assert.is(followed.current(now), 'two-longer', 'a missing file too');
  writeFileSync(file, 'three\n');
  now += 1000;
  assert.is(followed.current(now), 'three');
});

test('resolveSecretFlag: env: and file: only; a literal is a usage error that does not echo it', async () => {
  assert.is(await resolveSecretFlag('env:HOOK', '--fleet-secret', { env: { HOOK: SECRET } }), SECRET);
  for (const literal of [SECRET, 'env:', 'file:']) {
    try {
      await resolveSecretFlag(literal, '--fleet-secret');
      assert.unreachable(literal);
    } catch (error) {
      assert.instance(error, UsageError);
      assert.match((error as Error).message, /^--fleet-secret takes file:PATH or env:NAME/);
      assert.not.match((error as Error).message, SECRET);
    }
  }
  await refused(
    resolveSecretFlag('env:HOOK', '--fleet-secret', { env: {} }),
    /^--fleet-secret: environment variable HOOK/,
  );
});

test.run();
