// How the pull reaches a private repository (lib/pipeline/git-auth.ts), with real key files and
// the real ssh-keygen: a deploy key that is missing, readable by others, owned by another user or
// locked by a passphrase, and a known_hosts that is missing or lacks the host, each refused naming
// FILE:LINE and the fix; a good pair gives GIT_SSH_COMMAND; ssh refusals in git's output explained.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseGitAuth } from '../../../lib/config/git-auth.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { parseYamlText } from '../../../lib/core/yaml-config.ts';
import { StepFailure } from '../../../lib/pipeline/context.ts';
import { explainGitAuthFailure, prepareGitAuth } from '../../../lib/pipeline/git-auth.ts';
import { runCommand, tmpDir } from '../../_helpers/common.ts';

let dir = '';
let hostLine = '';

const keygen = async (file: string, passphrase = '') => {
  const r = await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'test', '-f', file]);
  assert.is(r.exitCode, 0, r.stderr);
  return file;
};

test.before(async () => {
  dir = tmpDir('shipkit-git-auth-');
  await keygen(path.join(dir, 'deploy_key'));
  await keygen(path.join(dir, 'locked_key'), 'a passphrase');
  await keygen(path.join(dir, "it's_key"));
  const host = await keygen(path.join(dir, 'host_key'));
  hostLine = readFileSync(`${host}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(path.join(dir, 'known_hosts'), `git.example.com ${hostLine}\n[git.example.com]:2222 ${hostLine}\n`);
  writeFileSync(path.join(dir, 'deploy_key.open'), 'x');
  writeFileSync(path.join(dir, 'not_a_key'), 'hello\n', { mode: 0o600 });
});

/** The auth of a shipkit.yml whose repo `site` names these files, and the doc that locates them. */
function authOf(settings: Record<string, string>) {
  const file = path.join(dir, 'shipkit.yml');
  const lines = ['repos:', '  site:', '    url: git@git.example.com:octo/site.git'];
  for (const [k, v] of Object.entries(settings)) lines.push(`    ${k}: ${JSON.stringify(v)}`);
  const doc = parseYamlText(`${lines.join('\n')}\n`, file);
  return { doc, auth: parseGitAuth(doc, ['repos', 'site']) };
}

async function refusal(settings: Record<string, string>, opts: Parameters<typeof prepareGitAuth>[2] = {}) {
  const { doc, auth } = authOf(settings);
  try {
    await prepareGitAuth(doc, auth, { url: 'git@git.example.com:octo/site.git', ...opts });
  } catch (error) {
    assert.instance(error, ConfigError);
    return (error as Error).message;
  }
  return 'taken';
}

test('no ssh_key and no known_hosts: nothing to set', async () => {
  const { doc, auth } = authOf({});
  assert.equal(await prepareGitAuth(doc, auth, { url: 'https://example.com/x.git' }), {});
});

test('a good deploy key and known_hosts listing the host: GIT_SSH_COMMAND with both, never prompting', async () => {
  chmodSync(path.join(dir, 'deploy_key'), 0o600);
  const { doc, auth } = authOf({ ssh_key: 'deploy_key', known_hosts: 'known_hosts' });
  for (const url of ['git@git.example.com:octo/site.git', 'ssh://git@git.example.com:2222/octo/site.git']) {
    const env = await prepareGitAuth(doc, auth, { url });
    assert.ok(env.GIT_SSH_COMMAND.includes(path.join(dir, 'deploy_key')), env.GIT_SSH_COMMAND);
    assert.ok(env.GIT_SSH_COMMAND.includes(path.join(dir, 'known_hosts')), env.GIT_SSH_COMMAND);
    assert.match(env.GIT_SSH_COMMAND, /BatchMode=yes/);
  }
});

test('each problem refused with FILE:LINE and what to do', async () => {
  chmodSync(path.join(dir, 'deploy_key'), 0o600);
  chmodSync(path.join(dir, 'locked_key'), 0o600);
  chmodSync(path.join(dir, 'deploy_key.open'), 0o644);
  const yml = path.join(dir, 'shipkit.yml');
  const cases: Array<[string, Record<string, string>, Parameters<typeof prepareGitAuth>[2], RegExp]> = [
    [
      'no key file',
      { ssh_key: 'absent_key' },
      {},
      new RegExp(`^${yml}:4: ssh_key: the deploy key .*absent_key does not exist; make one \\(ssh-keygen -t ed25519`),
    ],
    [
      'readable by others',
      { ssh_key: 'deploy_key.open' },
      {},
      /can be read by others \(mode 644\), so ssh would refuse it; run chmod 600 /,
    ],
    [
      'locked by a passphrase',
      { ssh_key: 'locked_key' },
      {},
      /is not a private key without a passphrase .*remove it with ssh-keygen -p -N '' -f /,
    ],
    [
      'not a key',
      { ssh_key: 'not_a_key' },
      {},
      /not_a_key is not a private key without a passphrase \(ssh-keygen says: /,
    ],
    [
      'owned by another user',
      { ssh_key: 'deploy_key' },
      { runAs: { user: 'builder', uid: 65534 } },
      /must belong to the user the build runs as \(builder\).*run chown builder /,
    ],
    [
      'no known_hosts file',
      { ssh_key: 'deploy_key', known_hosts: 'absent_hosts' },
      {},
      new RegExp(`^${yml}:5: known_hosts: .*absent_hosts does not exist; create it .*ssh-keyscan HOST`),
    ],
    [
      'the host not listed',
      { known_hosts: 'known_hosts' },
      { url: 'git@other.example.com:octo/site.git' },
      /other\.example\.com is not in .*known_hosts; add its host key \(ssh-keyscan other\.example\.com >> /,
    ],
    [
      'the port not listed',
      { known_hosts: 'known_hosts' },
      { url: 'ssh://git@git.example.com:2200/site.git' },
      /\[git\.example\.com\]:2200 is not in .*\(ssh-keyscan -p 2200 git\.example\.com >> /,
    ],
  ];
  for (const [label, settings, opts, want] of cases) {
    assert.match(await refusal(settings, opts), want, label);
  }
  // A path ssh cannot be given safely: a ConfigError at its key, not a shell string.
  chmodSync(path.join(dir, "it's_key"), 0o600);
  assert.match(await refusal({ ssh_key: "it's_key" }), new RegExp(`^${yml}:4: .*cannot be passed to ssh`));
});

const failure = (lines: string[]) => new StepFailure('git fetch failed', { lastLines: lines, commandExit: 128 });

test('ssh refusals in git output become sentences that say what to fix; anything else is left as it was', () => {
  const url = 'ssh://git@git.example.com:2222/octo/site.git';
  const withKey = { sshKey: '/etc/shipkit/keys/site', knownHosts: '/etc/shipkit/known_hosts', keyPath: [] };
  const cases: Array<[string[], typeof withKey | { keyPath: never[] }, RegExp | null]> = [
    [
      ['@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@'],
      withKey,
      /^\[git\.example\.com\]:2222 offered a different host key than the one in \/etc\/shipkit\/known_hosts: check with the forge/,
    ],
    [
      [
        'No ED25519 host key is known for [git.example.com]:2222 and you have requested strict checking.',
        'Host key verification failed.',
      ],
      withKey,
      /host key is not in \/etc\/shipkit\/known_hosts: add it \(ssh-keyscan -p 2222 git\.example\.com >> \/etc\/shipkit\/known_hosts/,
    ],
    [
      ['git@git.example.com: Permission denied (publickey).'],
      withKey,
      /^The deploy key \/etc\/shipkit\/keys\/site was refused by git@git\.example\.com:2222: add \/etc\/shipkit\/keys\/site\.pub/,
    ],
    [
      ['git@git.example.com: Permission denied (publickey).'],
      { keyPath: [] },
      /^git@git\.example\.com:2222 refused the build's ssh keys: set ssh_key:/,
    ],
    [['Host key verification failed.'], { keyPath: [] }, /in ~\/\.ssh\/known_hosts of the build user/],
    [['fatal: repository not found'], withKey, null],
  ];
  for (const [lines, auth, want] of cases) {
    const error = failure(lines);
    const explained = explainGitAuthFailure(error, { url, auth });
    if (!want) {
      assert.is(explained, error, lines.join(' '));
      continue;
    }
    assert.instance(explained, StepFailure);
    const e = explained as StepFailure;
    assert.match(e.message, want, lines.join(' '));
    assert.equal(e.lastLines, lines);
    assert.is(e.commandExit, 128);
    assert.is(e.cause, error);
  }
  const plain = new Error('Permission denied (publickey)');
  assert.is(explainGitAuthFailure(plain, { url, auth: withKey }), plain, 'only a failed step is explained');
});

test.run();
