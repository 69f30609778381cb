// A real sshd on 127.0.0.1 for the tests that need ssh (upload over rsync, a private repo's pull):
// throwaway host and client keys, a free port, root's login. sshd has to run as root; when it
// cannot, startSshd returns the reason and the tests skip saying so.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, runCommand, tmpDir, waitFor } from './common.ts';

export interface Sshd {
  port: number;
  key: string;
  knownHosts: string;
  otherKey: string;
  wrongKnownHosts: string;
  child: ChildProcess;
}

export async function startSshd(): Promise<Sshd | string> {
  if (process.getuid?.() !== 0) return 'sshd needs root to switch users and the tests run as a normal user';
  for (const bin of ['/usr/sbin/sshd', '/usr/bin/ssh-keygen', '/usr/bin/rsync', '/usr/bin/ssh']) {
    if (!existsSync(bin)) return `${bin} is not installed (apt-get install openssh-server openssh-client rsync)`;
  }
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 }); // privilege separation folder
  const dir = tmpDir('shipkit-sshd-');
  for (const name of ['host_key', 'client_key', 'other_key']) {
    const r = await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(dir, name)]);
    if (r.exitCode !== 0) return `ssh-keygen failed: ${r.stderr}`;
  }
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client_key.pub')));
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${dir}/host_key`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'LogLevel ERROR',
      'MaxStartups 50',
      // A session's command runs as `bash -c` under sshd, which reads root's ~/.bashrc when it
      // takes itself for a top-level shell (SHLVL unset): on a machine whose ~/.bashrc starts
      // pyenv that cost 5 s per ssh session, and a publish over rsync opens a dozen of them.
      // Tests of shipkit's ssh and rsync calls are not tests of this machine's dotfiles.
      'SetEnv SHLVL=1',
      '',
    ].join('\n'),
  );
  const check = await runCommand('/usr/sbin/sshd', ['-t', '-f', config]);
  if (check.exitCode !== 0) return `sshd refuses the test config: ${check.stderr.trim()}`;
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  process.on('exit', () => child.kill('SIGKILL'));
  try {
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => resolve(false));
        }),
      { timeoutMs: 10_000, what: 'sshd to listen' },
    );
  } catch {
    child.kill('SIGKILL');
    return `sshd did not start: ${log.trim()}`;
  }
  const hostPub = readFileSync(path.join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  const knownHosts = path.join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);
  const wrongKnownHosts = path.join(dir, 'wrong_known_hosts');
  const otherPub = readFileSync(path.join(dir, 'other_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(wrongKnownHosts, `[127.0.0.1]:${port} ${otherPub}\n`);
  return {
    port,
    key: path.join(dir, 'client_key'),
    otherKey: path.join(dir, 'other_key'),
    knownHosts,
    wrongKnownHosts,
    child,
  };
}
