// build of a private repository over ssh (docs/design.md `ssh_key`, `known_hosts`): a real sshd on
// 127.0.0.1 serves bare repos (the site and a submodule); an accepted deploy key clones and
// fetches, a refused key, a changed host key and an unlisted host fail saying what to fix, and
// keys ssh would refuse or could not use without a prompt are refused before anything runs.
// The deploy-key set-up and `shipkit build octo/site --steps pull` it runs are shown in docs/build.md.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { git, makeBareRepo, runCommand, runScript, tmpDir } from '../../_helpers/common.ts';
import { startSshd, type Sshd } from '../../_helpers/ssh.ts';

const sshd = await startSshd();
if (typeof sshd === 'string') console.log(`SKIP build-private-ssh: ${sshd}`);
const it = typeof sshd === 'string' ? test.skip : test;
const s = sshd as Sshd;

/** A site whose remote and submodule are reached over ssh only, and a shipkit.yml for it. */
async function privateSite() {
  const base = tmpDir('shipkit-private-');
  const lib = await makeBareRepo(path.join(base, 'git'), 'lib', { 'lib.txt': 'from the submodule\n' });
  const site = await makeBareRepo(path.join(base, 'git'), 'site', { 'README.md': 'private\n' });
  const sshUrl = (bare: string) => `ssh://root@127.0.0.1:${s.port}${bare}`;
  writeFileSync(path.join(site.work, '.gitmodules'), `[submodule "lib"]\n\tpath = lib\n\turl = ${sshUrl(lib.bare)}\n`);
  await git(site.work, 'add', '.gitmodules');
  await git(site.work, 'update-index', '--add', '--cacheinfo', `160000,${lib.first},lib`);
  await git(site.work, 'commit', '--quiet', '-m', 'add lib');
  await git(site.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  const head = (await git(site.work, 'rev-parse', 'HEAD')).stdout.trim();
  const key = path.join(base, 'deploy_key');
  copyFileSync(s.key, key);
  const config = path.join(base, 'shipkit.yml');
  const data = path.join(base, 'data');
  const write = (more: string[]) =>
    writeFileSync(
      config,
      [
        `data: ${data}`,
        'repos:',
        '  octo/site:',
        `    url: ${sshUrl(site.bare)}`,
        '    steps: [pull]',
        '    timeout: 60',
        ...more.map((line) => `    ${line}`),
        '',
      ].join('\n'),
    );
  write([`ssh_key: file:${key}`, `known_hosts: ${s.knownHosts}`]);
  const run = () =>
    runScript('build', ['octo/site', '--config', config], {
      timeoutMs: 60_000,
      env: { HOME: base, SSH_AUTH_SOCK: undefined },
    });
  return { base, key, head, write, run, work: path.join(data, 'repos', 'octo__site') };
}

it('an accepted deploy key: clone, submodule and a later fetch over ssh, without a prompt', async () => {
  const site = await privateSite();
  let r = await site.run();
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(path.join(site.work, 'README.md'), 'utf8'), 'private\n');
  assert.is(readFileSync(path.join(site.work, 'lib', 'lib.txt'), 'utf8'), 'from the submodule\n');
  r = await site.run();
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`pull: ok .*at ${site.head}`));
  assert.not.match(
    readFileSync(path.join(site.work, '.git', 'config'), 'utf8'),
    /deploy_key|sshCommand/,
    'the key is not written into the clone',
  );
});

it("a key the server refuses: exit 1, saying to add it to the repo's Deploy keys", async () => {
  const site = await privateSite();
  copyFileSync(s.otherKey, site.key);
  const r = await site.run();
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `The deploy key ${site.key} was refused by root@127\\.0\\.0\\.1:${s.port}: add ${site.key}\\.pub to the repository's Deploy keys`,
    ),
  );
  assert.not.ok(existsSync(site.work), 'nothing was cloned');
});

it('a host key that differs from known_hosts: exit 1, and nothing is fetched', async () => {
  const site = await privateSite();
  site.write([`ssh_key: ${site.key}`, `known_hosts: ${s.wrongKnownHosts}`]);
  const r = await site.run();
  assert.is(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /offered a different host key than the one in .*wrong_known_hosts/, r.stderr);
  assert.not.ok(existsSync(site.work));
});

it('refused before the job: a host not in known_hosts, a missing, open or passphrase-protected key (exit 2, FILE:LINE)', async () => {
  const site = await privateSite();
  const empty = path.join(site.base, 'known_hosts');
  writeFileSync(empty, '# no hosts yet\n');
  site.write([`ssh_key: ${site.key}`, `known_hosts: ${empty}`]);
  let r = await site.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `shipkit\\.yml:8: known_hosts: \\[127\\.0\\.0\\.1\\]:${s.port} is not in ${empty}; add its host key \\(ssh-keyscan -p ${s.port} 127\\.0\\.0\\.1 >> `,
    ),
  );

  site.write([`ssh_key: ${site.key}.missing`, `known_hosts: ${s.knownHosts}`]);
  r = await site.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(
    r.stderr,
    /shipkit\.yml:7: ssh_key: the deploy key .*deploy_key\.missing does not exist; make one \(ssh-keygen/,
  );

  site.write([`ssh_key: ${site.key}`, `known_hosts: ${s.knownHosts}`]);
  await runCommand('chmod', ['644', site.key]);
  r = await site.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /can be read by others \(mode 644\), so ssh would refuse it; run chmod 600 /);

  await runCommand('chmod', ['600', site.key]);
  const locked = await runCommand('ssh-keygen', ['-p', '-q', '-P', '', '-N', 'a passphrase', '-f', site.key]);
  assert.is(locked.exitCode, 0, locked.stderr);
  r = await site.run();
  assert.is(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /is not a private key without a passphrase .*remove it with ssh-keygen -p -N '' -f /);
  assert.not.ok(existsSync(site.work), 'nothing was cloned');
});

test.after(() => {
  if (typeof sshd !== 'string') sshd.child.kill('SIGTERM');
});
test.run();
