// lib/core/unix-user.ts: the one Unix-user lookup, through the real `getent passwd`.
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { findUser, lookupUser, parsePasswdLine } from '../../../lib/core/unix-user.ts';

// [line, expected]
const lines: Array<[string, ReturnType<typeof parsePasswdLine>]> = [
  [
    'site:x:998:997:shipkit build user:/var/lib/site:/usr/sbin/nologin',
    { name: 'site', uid: 998, gid: 997, home: '/var/lib/site', shell: '/usr/sbin/nologin' },
  ],
  [
    'ldapuser:*:150001:150001::/home/ldapuser:/bin/bash\n',
    { name: 'ldapuser', uid: 150001, gid: 150001, home: '/home/ldapuser', shell: '/bin/bash' },
  ],
  ['nohome:x:5:5:::/bin/sh', { name: 'nohome', uid: 5, gid: 5, home: '/', shell: '/bin/sh' }],
  ['short:x:1:1', undefined],
  [':x:1:1::/:/bin/sh', undefined],
  ['bad:x:one:1::/:/bin/sh', undefined],
  ['bad:x:1:-1::/:/bin/sh', undefined],
  ['', undefined],
];

for (const [line, expected] of lines) {
  test(`parsePasswdLine ${JSON.stringify(line.slice(0, 30))}`, () => {
    assert.equal(parsePasswdLine(line), expected);
  });
}

test('the current user is found with its uid, gid and home', async () => {
  const me = os.userInfo();
  const account = await lookupUser(me.username);
  assert.is(account.name, me.username);
  assert.is(account.uid, me.uid);
  assert.is(account.gid, me.gid);
  assert.is(account.home, me.homedir);
});

test('root is uid 0', async () => {
  const root = await findUser('root');
  assert.is(root?.uid, 0);
  assert.is(root?.gid, 0);
});

test('a missing user: undefined from findUser, a ConfigError naming the config key from lookupUser', async () => {
  assert.is(await findUser('no-such-user-shipkit'), undefined);
  try {
    await lookupUser('no-such-user-shipkit', { where: 'shipkit.yml:12: repos.octo/site.user' });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.is(
      (error as Error).message,
      "shipkit.yml:12: repos.octo/site.user: user no-such-user-shipkit does not exist on this machine; create it (useradd --system no-such-user-shipkit) or remove `user:` from the repo's config.",
    );
  }
  await lookupUser('no-such-user-shipkit').then(
    () => assert.unreachable(),
    (error: Error) => assert.match(error.message, /^User no-such-user-shipkit does not exist/),
  );
});

test('names that look like options or hold shell characters are looked up as names, nothing else', async () => {
  for (const name of ['--help', '-s', '-sfiles', '$(id)', 'root;id', 'root root', '']) {
    assert.is(await findUser(name), undefined, name);
  }
});

test.run();
