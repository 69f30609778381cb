// @alone (installs into /etc and /usr: no other test may run beside it)
// Install as a Debian package (README "Install"): `npm run deb` builds the .deb, lintian finds no
// errors, `apt-get install ./shipkit_*.deb` puts the programs on the PATH and creates the shipkit
// user, the installed hook-server builds a litpro repo, systemd-analyze accepts the units, an
// upgrade keeps an edited /etc/shipkit/shipkit.yml, remove keeps the data and purge deletes it.
// It installs into this very machine, so it needs root and a free dpkg; otherwise it says why
// it skips.
// The commands it runs are shown in README.md (Install) and docs/build.md (the systemd timer unit).
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, runCommand, tmpDir } from '../../_helpers/common.ts';
import { assertStatusPage, buildLitproThroughHookServer } from '../../_helpers/install.ts';

const work = tmpDir('shipkit-deb-');
const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
const first = path.join(work, `shipkit_${version}_all.deb`);
const second = path.join(work, `shipkit_${version}+1_all.deb`);
// The node running the tests first (Node 24 in CI's second pass), then the system's.
const PATH = `${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`;
const apt = (...args: string[]) =>
  runCommand('apt-get', ['-y', '-q', ...args], {
    cwd: work,
    timeoutMs: 300_000,
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
const status = async () => (await runCommand('dpkg-query', ['-W', '-f=${db:Status-Abbrev}', 'shipkit'])).stdout.trim();

async function skipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root: installing a .deb needs root';
  for (const tool of ['dpkg-deb', 'apt-get', 'systemd-analyze']) {
    if ((await runCommand('sh', ['-c', `command -v ${tool}`])).exitCode !== 0) return `${tool} is not installed`;
  }
  if ((await status()).startsWith('i'))
    return 'a shipkit package is already installed here; the test would replace it (apt-get purge shipkit first)';
  const lock = await runCommand('sh', [
    '-c',
    'command -v fuser >/dev/null && fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock',
  ]);
  if (lock.exitCode === 0 && lock.stdout.trim()) return 'dpkg is locked by another process';
  return undefined;
}

const skip = await skipReason();
if (skip) {
  console.log(`install-deb: skipped: ${skip}`);
  test('skipped', () => {});
  test.run();
} else {
  test.after(async () => {
    if ((await status()).length) await apt('purge', 'shipkit');
    rmSync('/var/backups/shipkit', { recursive: true, force: true });
  });

  test('npm run deb builds shipkit_VERSION_all.deb; lintian reports no errors', async () => {
    for (const extra of [[], ['--version', `${version}+1`, '--no-bundle']]) {
      const r = await runCommand(
        process.execPath,
        ['--import', path.join(ROOT, 'node_modules/tsx/dist/loader.mjs'), 'tools/deb.ts', '--out', work, ...extra],
        { timeoutMs: 300_000 },
      );
      assert.is(r.exitCode, 0, r.stderr);
    }
    assert.ok(existsSync(first) && existsSync(second));
    const files = (await runCommand('dpkg-deb', ['-c', first])).stdout;
    for (const wanted of [
      './usr/lib/shipkit/shipkit.mjs',
      './usr/lib/shipkit/run',
      './usr/bin/shipkit -> ../lib/shipkit/run',
      './usr/bin/hook-server',
      './usr/bin/launchfit',
      './usr/bin/server-update',
      './usr/bin/slave-activate',
      './etc/shipkit/shipkit.yml',
      './lib/systemd/system/hook-server.service',
      './usr/share/doc/shipkit/copyright',
    ]) {
      assert.ok(files.includes(wanted), `${wanted} is in the package`);
    }
    for (const generic of ['build', 'logs', 'release', 'upload', 'downloads'])
      assert.not.ok(files.includes(`./usr/bin/${generic} `), `${generic} is not on the PATH`);
    if ((await runCommand('sh', ['-c', 'command -v lintian'])).exitCode !== 0) {
      console.log('install-deb: lintian is not installed (.ci/run installs it); its check is skipped');
      return;
    }
    const lint = await runCommand('lintian', ['--fail-on', 'error', first], { timeoutMs: 300_000 });
    assert.is(lint.exitCode, 0, lint.stdout + lint.stderr);
    assert.not.match(lint.stdout, /^E: /m);
    console.log(`lintian: ${lint.stdout.trim() || 'no tags'}`);
  });

  test('apt-get install ./shipkit_*.deb: programs on the PATH from /, the shipkit user, the conffile', async () => {
    const r = await apt('install', first);
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    for (const [cmd, args, usage] of [
      ['shipkit', ['--help'], /Usage: shipkit SCRIPT/],
      ['hook-server', ['--help'], /Usage: hook-server/],
      ['launchfit', ['--help'], /launchfit/],
      ['shipkit', ['build', '--help'], /Usage: build REPO/],
    ] as const) {
      const h = await runCommand(cmd, [...args], { cwd: '/', env: { PATH } });
      assert.is(h.exitCode, 0, `${cmd}: ${h.stderr}`);
      assert.match(h.stdout, usage);
    }
    assert.not.ok(existsSync('/usr/bin/build'), 'build is `shipkit build` only');
    const user = (await runCommand('getent', ['passwd', 'shipkit'])).stdout.trim().split(':');
    assert.is(user[5], '/var/lib/shipkit');
    assert.is(user[6], '/usr/sbin/nologin');
    const data = statSync('/var/lib/shipkit');
    assert.is(data.uid, Number(user[2]));
    assert.is(data.mode & 0o777, 0o750);
    // The nightly backup's folder, and the command its timer runs, as the shipkit user.
    const backups = statSync('/var/backups/shipkit');
    assert.is(backups.uid, Number(user[2]));
    assert.is(backups.mode & 0o777, 0o700);
    const nightly = await runCommand(
      'runuser',
      ['-u', 'shipkit', '--', '/usr/bin/shipkit', 'backup', '--config', '/etc/shipkit/shipkit.yml'].concat([
        '--into',
        '/var/backups/shipkit',
        '--keep',
        '7',
      ]),
      { cwd: '/', env: { PATH } },
    );
    assert.is(nightly.exitCode, 0, nightly.stderr);
    const [made] = readdirSync('/var/backups/shipkit');
    assert.ok(existsSync(path.join('/var/backups/shipkit', made, 'MANIFEST.json')), made);
    assert.match(
      (await runCommand('dpkg-query', ['-W', '-f=${Conffiles}', 'shipkit'])).stdout,
      /\/etc\/shipkit\/shipkit\.yml [0-9a-f]{32}/,
    );
    const env = statSync('/etc/shipkit/hook-server.env');
    assert.is(env.mode & 0o777, 0o640, 'the secrets are not world-readable');
    assert.match(
      readFileSync('/etc/shipkit/hook-server.env', 'utf8'),
      /^SHIPKIT_WEBHOOK_SECRET=[0-9a-f]{64}\nSHIPKIT_TOKEN=[0-9a-f]{64}\n$/,
    );
  });

  test('run picks a Node.js ≥ 20 when an older node comes first on the PATH', async () => {
    const old = path.join(work, 'old-node');
    mkdirSync(old);
    writeFileSync(path.join(old, 'node'), '#!/bin/sh\necho v18.19.0\n');
    chmodSync(path.join(old, 'node'), 0o755);
    const r = await runCommand('shipkit', ['--version'], { cwd: '/', env: { PATH: `${old}:${PATH}` } });
    assert.is(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(version.replace(/\./g, '\\.')));
  });

  test('the installed hook-server builds a litpro repo through the job command its unit names', async () => {
    const { job, log, html, pages } = await buildLitproThroughHookServer(['/usr/bin/hook-server'], {
      cwd: '/',
      path: PATH,
      env: { SHIPKIT_BUILD_COMMAND: '/usr/lib/shipkit/bin/build' },
    });
    // SHIPKIT_BUILD_COMMAND is used as given (lib/jobs/process/runner.ts): the job ran through the link.
    assert.is(job.state, 'succeeded', log);
    assert.match(html, /<h1>Hello from litpro<\/h1>/);
    assertStatusPage(pages, job.id);
  });

  test('systemd-analyze verify accepts every unit; security scores hook-server and launchfit OK or better', async () => {
    const units = (await runCommand('dpkg-query', ['-L', 'shipkit'])).stdout
      .split('\n')
      .filter((f) => /^\/lib\/systemd\/system\/.+\.(service|timer)$/.test(f));
    assert.ok(units.length >= 6, units.join(' '));
    for (const file of units) {
      const name = path.basename(file).replace('@.', '@octo-site.');
      const v = await runCommand('systemd-analyze', ['verify', name], { cwd: '/' });
      assert.is(v.exitCode, 0, `${name}: ${v.stderr}`);
      assert.is(v.stderr.trim(), '', name);
    }
    for (const unit of ['hook-server.service', 'launchfit@my-app.service']) {
      const s = await runCommand('systemd-analyze', ['security', '--offline=true', unit], { cwd: '/' });
      const score = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(s.stdout);
      assert.ok(score, s.stdout + s.stderr);
      console.log(`systemd-analyze security ${unit}: ${score![1]} ${score![2]}`);
      assert.ok(['PERFECT', 'SAFE', 'OK'].includes(score![2]), `${unit}: ${score![0]}`);
    }
  });

  test('an upgrade keeps the edited conffile, the secrets and the data', async () => {
    appendFileSync('/etc/shipkit/shipkit.yml', '# edited by the operator\n');
    const secrets = readFileSync('/etc/shipkit/hook-server.env', 'utf8');
    writeFileSync('/var/lib/shipkit/marker', 'data');
    const r = await apt('install', second);
    assert.is(r.exitCode, 0, r.stdout + r.stderr);
    assert.match(
      (await runCommand('dpkg-query', ['-W', '-f=${Version}', 'shipkit'])).stdout,
      new RegExp(`^${version.replace(/\./g, '\\.')}\\+1$`),
    );
    assert.match(readFileSync('/etc/shipkit/shipkit.yml', 'utf8'), /# edited by the operator\n$/);
    assert.is(readFileSync('/etc/shipkit/hook-server.env', 'utf8'), secrets);
    assert.ok(existsSync('/var/lib/shipkit/marker'));
  });

  test('apt-get remove keeps config and data; purge deletes them', async () => {
    const removed = await apt('remove', 'shipkit');
    assert.is(removed.exitCode, 0, removed.stdout + removed.stderr);
    assert.is(await status(), 'rc');
    assert.not.ok(existsSync('/usr/bin/shipkit'));
    assert.not.ok(existsSync('/usr/lib/shipkit'));
    assert.ok(existsSync('/etc/shipkit/shipkit.yml'));
    assert.ok(existsSync('/var/lib/shipkit/marker'));
    const purged = await apt('purge', 'shipkit');
    assert.is(purged.exitCode, 0, purged.stdout + purged.stderr);
    assert.is(await status(), '');
    assert.not.ok(existsSync('/etc/shipkit'));
    assert.not.ok(existsSync('/var/lib/shipkit'));
    assert.not.ok(existsSync('/lib/systemd/system/hook-server.service'));
    assert.ok(existsSync('/var/backups/shipkit'), 'backups outlive the package');
  });

  test.run();
}
