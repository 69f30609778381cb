// The ssh command line (lib/core/ssh.ts) that rsync -e and GIT_SSH_COMMAND get: batch mode and
// timeouts always, key, port and known_hosts when given, and one string that a real shell splits
// back into the same arguments; a path that cannot be quoted safely is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../lib/core/errors.ts';
import { sshCommand } from '../../../lib/core/ssh.ts';
import { runCommand } from '../../_helpers/common.ts';

/** The arguments a POSIX shell makes of `command` (as git does with GIT_SSH_COMMAND). */
async function shellSplit(command: string): Promise<string[]> {
  const r = await runCommand('sh', ['-c', `for a in ${command}; do printf '%s\\n' "$a"; done`]);
  assert.is(r.exitCode, 0, r.stderr);
  return r.stdout.trimEnd().split('\n');
}

test('defaults: batch mode and keepalives, nothing else', async () => {
  const args = await shellSplit(sshCommand({}));
  assert.is(args[0], 'ssh');
  assert.ok(args.includes('BatchMode=yes') && args.includes('ConnectTimeout=20'));
  assert.not.ok(args.includes('-i') || args.includes('-p'));
});

test('key, port and known_hosts: pinned host key, only that identity', async () => {
  const args = await shellSplit(sshCommand({ sshKey: '/keys/deploy', port: 2222, knownHosts: '/keys/known_hosts' }));
  const after = (flag: string) => args[args.indexOf(flag) + 1];
  assert.is(after('-p'), '2222');
  assert.is(after('-i'), '/keys/deploy');
  assert.ok(args.includes('IdentitiesOnly=yes'));
  assert.ok(args.includes('UserKnownHostsFile=/keys/known_hosts'));
  assert.ok(args.includes('StrictHostKeyChecking=yes'));
});

test('a path with spaces or shell characters comes back as one argument, never run', async () => {
  const key = '/tmp/my keys/$(touch /tmp/shipkit-pwned);x';
  const args = await shellSplit(sshCommand({ sshKey: key }));
  assert.is(args[args.indexOf('-i') + 1], key);
});

test('a quote, backslash or newline in a path is refused with a ConfigError', () => {
  for (const bad of ["/tmp/it's", '/tmp/a\\b', '/tmp/a\nb']) {
    assert.throws(
      () => sshCommand({ sshKey: bad }),
      (e: unknown) => e instanceof ConfigError && /cannot be passed to ssh/.test((e as Error).message),
    );
  }
});

test.run();
