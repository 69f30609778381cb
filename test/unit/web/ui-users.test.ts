// The status page's named users (lib/web/ui-users.ts): salted scrypt hashes, never the password;
// a login right only with the right name and password; the file followed while it changes; bad
// lines refused naming the line; `--add-user` adds or replaces one line, 0600, nothing else changed.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  addUiUser,
  hashPassword,
  hashProblem,
  openUiUsers,
  parseUiUsers,
  passwordMatches,
} from '../../../lib/web/ui-users.ts';
import { tmpDir } from '../../_helpers/common.ts';

test('a hash is salted scrypt: the password is not in it, two hashes of one password differ, each matches only it', async () => {
  const [one, two] = [await hashPassword('correct horse'), await hashPassword('correct horse')];
  assert.match(one, /^scrypt\$15\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.not.match(one, 'correct');
  assert.is.not(one, two, 'a salt of its own');
  assert.ok(await passwordMatches(one, 'correct horse'));
  assert.ok(await passwordMatches(two, 'correct horse'));
  for (const wrong of ['correct hors', 'correct horse ', 'Correct horse', '', 'x'.repeat(2000)])
    assert.not.ok(await passwordMatches(one, wrong), JSON.stringify(wrong.slice(0, 20)));
  assert.not.ok(await passwordMatches('plain', 'plain'), 'a line that is not a hash matches nothing');
  assert.is(hashProblem('scrypt$10$8$1$AAAAAAAAAAAAAAAAAAAAAA$' + 'A'.repeat(43)), 'has an scrypt cost out of range');
  await hashPassword('').then(
    () => assert.unreachable('an empty password'),
    (error: Error) => assert.match(error.message, /The password is empty/),
  );
});

test('the file: NAME:HASH lines, comments and blank lines; a bad line is refused naming it', async () => {
  const hash = await hashPassword('pw');
  const users = parseUiUsers(`# status-page users\n\nalice:${hash}\nbob-2:${hash}\n`);
  assert.equal([...users.keys()], ['alice', 'bob-2']);
  const bad: Array<[string, RegExp]> = [
    [`alice:${hash}\nalice:${hash}\n`, /line 2 names alice a second time/],
    [`al.ice:${hash}\n`, /line 1 is not a user name/],
    ['alice:secret\n', /line 1 is not a hash of hook-server --add-user/],
    ['alice\n', /line 1 is not a hash/],
  ];
  for (const [text, pattern] of bad) assert.throws(() => parseUiUsers(text), pattern);
});

test('a login needs the name and its password; the file is followed: a user removed or given a new password', async () => {
  const dir = tmpDir('ui-users-');
  const file = path.join(dir, 'ui-users');
  assert.ok(await addUiUser(file, 'alice', 'first password'), 'alice is new');
  assert.ok(await addUiUser(file, 'bob', 'bobs password'));
  assert.is(statSync(file).mode & 0o777, 0o600, 'made 0600');
  const users = openUiUsers(file);
  assert.is((await users.login('alice', 'first password'))?.name, 'alice');
  assert.is(await users.login('alice', 'bobs password'), undefined, "another user's password");
  assert.is(await users.login('carol', 'first password'), undefined, 'an unknown name');
  assert.is(await users.login('', ''), undefined);
  const before = users.get('alice')!.hash;
  assert.not.ok(await addUiUser(file, 'alice', 'second password'), 'alice replaced, not added');
  assert.is(readFileSync(file, 'utf8').match(/^alice:/gm)?.length, 1, 'one line for alice');
  assert.is.not(users.get('alice')!.hash, before, 'the new hash is read');
  assert.is(await users.login('alice', 'first password'), undefined, 'the old password no longer works');
  assert.is((await users.login('alice', 'second password'))?.name, 'alice');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/^bob:.*\n/m, ''));
  assert.is(users.get('bob'), undefined, 'a line removed by hand counts at once');
  writeFileSync(file, 'not a users file\n');
  assert.is(users.get('alice'), undefined, 'a file that cannot be read holds no user');
  await addUiUser(file, 'dave', 'pw').then(
    () => assert.unreachable('a broken file is not rewritten'),
    (error: Error) => assert.match(error.message, /line 1 .*nothing was written/),
  );
  assert.is(readFileSync(file, 'utf8'), 'not a users file\n');
  await addUiUser(file, '../x', 'pw').then(
    () => assert.unreachable('a bad name'),
    (error: Error) => assert.match(error.message, /Invalid user name/),
  );
});

test.run();
