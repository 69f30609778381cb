// @deno
// upload over rsync+ssh against a real sshd on 127.0.0.1 (throwaway host and client keys, a
// free port). sshd has to run as root; when it cannot, the reason is printed and the tests skip.
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort, runCommand, runScript, tmpDir, waitFor } from '../../_helpers/common.ts';
import { startSshd, type Sshd } from '../../_helpers/ssh.ts';

const sshd = await startSshd();
if (typeof sshd === 'string') console.log(`SKIP upload-rsync: ${sshd}`);
const it = typeof sshd === 'string' ? test.skip : test;
const s = sshd as Sshd;

function site(): string {
  const out = path.join(tmpDir('shipkit-site-'), 'out');
  mkdirSync(path.join(out, 'a b'), { recursive: true });
  writeFileSync(path.join(out, 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(path.join(out, 'a b', 'ünïcødé 名前.txt'), 'unicode\n');
  symlinkSync('/etc/passwd', path.join(out, 'passwd'));
  symlinkSync('index.html', path.join(out, 'home.html'));
  return out;
}
const sshFlags = (over: Partial<{ key: string; knownHosts: string; port: number }> = {}) => [
  '--ssh-key',
  over.key ?? s.key,
  '--port',
  String(over.port ?? s.port),
  '--known-hosts',
  over.knownHosts ?? s.knownHosts,
];
const upload = (args: string[]) => runScript('upload', args, { timeoutMs: 60_000 });

it('uploads over ssh: names with spaces and unicode, links out of the tree not copied, unchanged second run', async () => {
  const out = site();
  const remote = path.join(tmpDir('shipkit-remote-'), 'www site');
  mkdirSync(remote);
  const first = await upload(['--from', out, '--to', `root@127.0.0.1:${remote}/`, ...sshFlags()]);
  assert.is(first.exitCode, 0, first.stderr);
  assert.match(first.stdout, /root@127\.0\.0\.1:.*: uploaded 2, unchanged 0, deleted 0/);
  assert.is(readFileSync(path.join(remote, 'a b', 'ünïcødé 名前.txt'), 'utf8'), 'unicode\n');
  assert.is(readFileSync(path.join(remote, 'index.html'), 'utf8'), '<h1>hi</h1>\n');
  assert.is(
    lstatSync(path.join(remote, 'passwd'), { throwIfNoEntry: false }),
    undefined,
    'the link to /etc/passwd is not copied',
  );
  assert.is(readlinkSync(path.join(remote, 'home.html')), 'index.html');

  const again = await upload(['--from', out, '--to', `root@127.0.0.1:${remote}/`, ...sshFlags()]);
  assert.is(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, /uploaded 0, unchanged 2, deleted 0/);
});

it('--delete removes remote extras only when asked; rsync://host:port/path works', async () => {
  const out = site();
  const remote = tmpDir('shipkit-remote-');
  writeFileSync(path.join(remote, 'stale.html'), 'old\n');
  let r = await upload([
    '--from',
    out,
    '--to',
    `rsync://root@127.0.0.1:${s.port}${remote}/`,
    '--ssh-key',
    s.key,
    '--known-hosts',
    s.knownHosts,
  ]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.ok(existsSync(path.join(remote, 'stale.html')), 'no delete without --delete');
  r = await upload(['--from', out, '--to', `root@127.0.0.1:${remote}/`, '--delete', ...sshFlags()]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /deleted 1/);
  assert.not.ok(existsSync(path.join(remote, 'stale.html')));
  assert.ok(existsSync(path.join(remote, 'index.html')));
});

it('--dry-run changes nothing', async () => {
  const out = site();
  const remote = tmpDir('shipkit-remote-');
  const r = await upload(['--from', out, '--to', `root@127.0.0.1:${remote}/`, '--dry-run', ...sshFlags()]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /would upload 2/);
  assert.not.ok(existsSync(path.join(remote, 'index.html')));
});

it('wrong credentials, an untrusted host key and an unreachable host are clear errors', async () => {
  const out = site();
  const remote = tmpDir('shipkit-remote-');
  let r = await upload(['--from', out, '--to', `root@127.0.0.1:${remote}/`, ...sshFlags({ key: s.otherKey })]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /ssh refused the credentials for root@127\.0\.0\.1; check ssh_key/);
  r = await upload([
    '--from',
    out,
    '--to',
    `root@127.0.0.1:${remote}/`,
    ...sshFlags({ knownHosts: s.wrongKnownHosts }),
  ]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /host key of 127\.0\.0\.1 is not trusted; add it to known_hosts/);
  const closed = await freePort();
  r = await upload(['--from', out, '--to', `root@127.0.0.1:${remote}/`, ...sshFlags({ port: closed })]);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, new RegExp(`could not reach 127\\.0\\.0\\.1 port ${closed}`));
  assert.not.ok(existsSync(path.join(remote, 'index.html')), 'nothing written');
});

test('hostile rsync targets and a missing source folder are refused with exit 2', async () => {
  const out = site();
  const cases: Promise<void>[] = [];
  for (const [target, pattern] of [
    ['-oProxyCommand=touch /tmp/shipkit-pwned:x', /Unknown upload target/],
    ['-oProxyCommand=x:y', /Invalid host/],
    ['root@-oProxyCommand=x:/tmp', /Invalid host/],
    ['bad user@host:/tmp', /Invalid user/],
    ['host:', /has no remote path/],
  ] as const)
    cases.push(
      upload(['--from', out, `--to=${target}`]).then((r) => {
        assert.is(r.exitCode, 2, `${target}: ${r.stderr}`);
        assert.match(r.stderr, pattern, target);
      }),
    );
  await Promise.all(cases);
  assert.not.ok(existsSync('/tmp/shipkit-pwned'));
  const r = await upload(['--from', path.join(out, 'nope'), '--to', 'root@127.0.0.1:/tmp/x/']);
  assert.is(r.exitCode, 2);
  assert.match(r.stderr, /source folder .*nope does not exist/);
});

it('upload REPO uses ssh_key, port and known_hosts from shipkit.yml (relative to it)', async () => {
  const data = tmpDir('shipkit-data-');
  const work = path.join(data, 'repos', 'octo__site');
  mkdirSync(path.join(work, 'out'), { recursive: true });
  writeFileSync(path.join(work, 'out', 'index.html'), 'configured\n');
  writeFileSync(path.join(data, 'deploy_key'), readFileSync(s.key), { mode: 0o600 });
  writeFileSync(path.join(data, 'known_hosts'), readFileSync(s.knownHosts));
  const remote = tmpDir('shipkit-remote-');
  const config = path.join(data, 'shipkit.yml');
  writeFileSync(
    config,
    [
      `data: ${data}`,
      'repos:',
      '  octo/site:',
      '    upload:',
      `      - rsync: root@127.0.0.1:${remote}/`,
      '        from: out',
      '        ssh_key: deploy_key',
      `        port: ${s.port}`,
      '        known_hosts: known_hosts',
      '',
    ].join('\n'),
  );
  const r = await upload(['octo/site', '--config', config]);
  assert.is(r.exitCode, 0, r.stderr);
  assert.is(readFileSync(path.join(remote, 'index.html'), 'utf8'), 'configured\n');
});

it('uploadFiles (release publish) sends only the listed files and leaves the rest of the remote alone', async () => {
  const { uploadFiles } = await import('../../../lib/stages/upload/index.ts');
  const { silentLogger } = await import('../../../lib/core/log.ts');
  const stage = tmpDir('shipkit-stage-');
  for (const name of ['app-1.0.tar.gz', 'VERSION', 'unlisted.txt']) writeFileSync(path.join(stage, name), `${name}\n`);
  const remote = tmpDir('shipkit-remote-');
  writeFileSync(path.join(remote, 'app-0.9.tar.gz'), 'older\n');
  const result = await uploadFiles({
    from: stage,
    to: `root@127.0.0.1:${remote}/`,
    files: ['app-1.0.tar.gz', 'VERSION'],
    log: silentLogger,
    sshKey: s.key,
    port: s.port,
    knownHosts: s.knownHosts,
  });
  assert.is(result.uploaded, 2);
  assert.is(readFileSync(path.join(remote, 'VERSION'), 'utf8'), 'VERSION\n');
  assert.ok(existsSync(path.join(remote, 'app-0.9.tar.gz')));
  assert.not.ok(existsSync(path.join(remote, 'unlisted.txt')));
});

it('read back (release publish and rollback read VERSION and list releases): files listed, one downloaded, a missing one is false', async () => {
  const { downloadTargetFile, listTargetFiles } = await import('../../../lib/stages/upload/read-back.ts');
  const remote = path.join(tmpDir('shipkit-remote-'), 'app updates');
  mkdirSync(path.join(remote, 'sub'), { recursive: true });
  writeFileSync(path.join(remote, 'VERSION'), 'CURRENT 1.0 a-1.0.tar.gz\nSEQ 7\n');
  writeFileSync(path.join(remote, 'a-1.0.tar.gz'), 'x');
  const ssh = { sshKey: s.key, port: s.port, knownHosts: s.knownHosts };
  const to = `root@127.0.0.1:${remote}`;
  assert.equal((await listTargetFiles(to, process.env, ssh)).sort(), ['VERSION', 'a-1.0.tar.gz']);
  const local = path.join(tmpDir('shipkit-local-'), 'VERSION');
  assert.is(await downloadTargetFile(to, 'VERSION', local, process.env, ssh), true);
  assert.is(readFileSync(local, 'utf8'), 'CURRENT 1.0 a-1.0.tar.gz\nSEQ 7\n');
  assert.is(await downloadTargetFile(to, 'VERSION.sig', `${local}.sig`, process.env, ssh), false);
  assert.not.ok(existsSync(`${local}.sig`));
});

it('git+ssh:// through the same sshd: ssh_key and known_hosts are used; a wrong key is a clear error', async () => {
  const out = site();
  const bare = path.join(tmpDir('shipkit-remote-'), 'pages.git');
  await runCommand('git', ['init', '--quiet', '--bare', bare]);
  const target = `git+ssh://root@127.0.0.1:${s.port}${bare}#gh-pages`;
  const env = {
    GIT_AUTHOR_NAME: 'T',
    GIT_AUTHOR_EMAIL: 't@example.com',
    GIT_COMMITTER_NAME: 'T',
    GIT_COMMITTER_EMAIL: 't@example.com',
  };
  let r = await runScript(
    'upload',
    ['--from', out, '--to', target, '--ssh-key', s.key, '--known-hosts', s.knownHosts],
    { env, timeoutMs: 60_000 },
  );
  assert.is(r.exitCode, 0, r.stderr);
  const tree = await runCommand('git', [
    '-c',
    'core.quotePath=false',
    '--git-dir',
    bare,
    'ls-tree',
    '-r',
    '--name-only',
    'gh-pages',
  ]);
  assert.equal(tree.stdout.trim().split('\n').sort(), ['a b/ünïcødé 名前.txt', 'home.html', 'index.html']);
  r = await runScript(
    'upload',
    ['--from', out, '--to', target, '--ssh-key', s.otherKey, '--known-hosts', s.knownHosts],
    { env, timeoutMs: 60_000 },
  );
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /could not read ssh:\/\/root@127\.0\.0\.1:\d+.*Permission denied.*Check the credentials/);
});

test.after(() => {
  if (typeof sshd !== 'string') sshd.child.kill('SIGTERM');
});
test.run();
