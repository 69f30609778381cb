// The ssh command line rsync (-e) and git (GIT_SSH_COMMAND) use: key, port and known_hosts from
// config, never a prompt.
import { ConfigError } from './errors.ts';

export interface SshSettings {
  sshKey?: string;
  port?: number;
  knownHosts?: string;
}

/** `ssh` with options as separate arguments. */
export function sshArgs({ sshKey, port, knownHosts }: SshSettings): string[] {
  const args = [
    'ssh',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=20',
    '-o',
    'ServerAliveInterval=15',
    '-o',
    'ServerAliveCountMax=4',
  ];
  if (port !== undefined) args.push('-p', String(port));
  if (sshKey) args.push('-i', sshKey, '-o', 'IdentitiesOnly=yes');
  if (knownHosts)
    args.push(
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'GlobalKnownHostsFile=/dev/null',
    );
  return args;
}

/**
 * One command string that both rsync's -e parser and a POSIX shell (GIT_SSH_COMMAND) split back
 * into the same arguments: plain words as they are, anything else in single quotes.
 */
export function sshCommand(settings: SshSettings): string {
  return sshArgs(settings)
    .map((arg) => {
      if (/^[A-Za-z0-9_./=:@,+-]+$/.test(arg)) return arg;
      if (/['\\\n\0]/.test(arg))
        throw new ConfigError(
          `The path ${JSON.stringify(arg)} cannot be passed to ssh (it holds a quote, backslash or newline); rename it.`,
        );
      return `'${arg}'`;
    })
    .join(' ');
}
