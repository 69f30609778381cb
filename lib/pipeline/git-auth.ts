// How the pull step's git reaches a private repository (docs/build.md, `ssh_key`, `known_hosts`):
// a deploy key and the host keys to trust, given to git as GIT_SSH_COMMAND (lib/core/ssh.ts),
// never prompting. The key is checked before the job starts, as ssh would check it, and a
// refusal from the remote is turned into a sentence that says what to fix.
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { $ } from '../core/shell.ts';
import { configError, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { ConfigError, messageOf } from '../core/errors.ts';
import { sshCommand } from '../core/ssh.ts';
import { StepFailure } from './context.ts';
import { sshRemoteOf, type GitAuthConfig, type SshRemote } from '../config/git-auth.ts';

function describeRemote(remote: SshRemote): string {
  return `${remote.user ? `${remote.user}@` : ''}${remote.host}${remote.port === 22 ? '' : `:${remote.port}`}`;
}

/**
 * Checks the deploy key (exists, not readable by others, no passphrase, owned by the build
 * user) and that known_hosts lists the remote's host; returns the environment for the pull.
 * Every problem is a ConfigError (exit 2) naming FILE:LINE and what to do.
 */
export async function prepareGitAuth(
  doc: ConfigDoc,
  auth: GitAuthConfig,
  { url, runAs }: { url?: string; runAs?: { user: string; uid: number } } = {},
): Promise<Record<string, string>> {
  const { sshKey, knownHosts } = auth;
  if (!sshKey && !knownHosts) return {};
  if (sshKey) await checkDeployKey(doc, [...auth.keyPath, 'ssh_key'], sshKey, runAs);
  const remote = sshRemoteOf(url);
  if (knownHosts) {
    const where = `${doc.locate([...auth.keyPath, 'known_hosts'])}: known_hosts`;
    if (!existsSync(knownHosts))
      throw new ConfigError(
        `${where}: ${knownHosts} does not exist; create it with the host keys of your git server ` +
          `(ssh-keyscan HOST >> ${knownHosts}, after checking the fingerprints).`,
      );
    if (remote && !(await knownHostsLists(knownHosts, remote)))
      throw new ConfigError(
        `${where}: ${knownHostsName(remote)} is not in ${knownHosts}; add its host key ` +
          `(${keyscanHint(remote, knownHosts)}, after checking the fingerprint against the forge's published one).`,
      );
  }
  try {
    return { GIT_SSH_COMMAND: sshCommand({ sshKey, knownHosts }) };
  } catch (error) {
    throw configError(doc, [...auth.keyPath, sshKey ? 'ssh_key' : 'known_hosts'], messageOf(error), {
      cause: error,
    });
  }
}

async function checkDeployKey(
  doc: ConfigDoc,
  keyPath: KeyPath,
  file: string,
  runAs?: { user: string; uid: number },
): Promise<void> {
  const where = `${doc.locate(keyPath)}: ssh_key`;
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile())
    throw new ConfigError(
      `${where}: the deploy key ${file} does not exist; make one (ssh-keygen -t ed25519 -N '' -f ${file}) ` +
        `and add ${file}.pub to the repository's Deploy keys.`,
    );
  if (info.mode & 0o077)
    throw new ConfigError(
      `${where}: the deploy key ${file} can be read by others (mode ${(info.mode & 0o777).toString(8)}), ` +
        `so ssh would refuse it; run chmod 600 ${file}.`,
    );
  // Root reads any key; another user only its own (mode 600).
  const owner = runAs?.uid ?? (process.getuid?.() === 0 ? undefined : process.getuid?.());
  if (owner !== undefined && info.uid !== owner)
    throw new ConfigError(
      `${where}: the deploy key ${file} must belong to the user the build runs ` +
        `as${runAs ? ` (${runAs.user})` : ''}, or ssh cannot read it; run chown ${runAs?.user ?? owner} ${file}.`,
    );
  const unlocked = await $({
    quiet: true,
    nothrow: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })`ssh-keygen -y -P ${''} -f ${file}`;
  if (unlocked.exitCode !== 0)
    throw new ConfigError(
      `${where}: ${file} is not a private key without a passphrase (ssh-keygen says: ` +
        `${unlocked.stderr.trim().split('\n').pop() || 'cannot read it'}); a build cannot type a passphrase: ` +
        `remove it with ssh-keygen -p -N '' -f ${file}.`,
    );
}

function knownHostsName(remote: SshRemote): string {
  return remote.port === 22 ? remote.host : `[${remote.host}]:${remote.port}`;
}

function keyscanHint(remote: SshRemote, file: string): string {
  return `ssh-keyscan ${remote.port === 22 ? '' : `-p ${remote.port} `}${remote.host} >> ${file}`;
}

async function knownHostsLists(file: string, remote: SshRemote): Promise<boolean> {
  const found = await $({ quiet: true, nothrow: true })`ssh-keygen -F ${knownHostsName(remote)} -f ${file}`;
  return found.exitCode === 0 && found.stdout.trim().length > 0;
}

/** A failed pull whose git output shows an ssh refusal, explained; any other error as it was. */
export function explainGitAuthFailure(error: unknown, { url, auth }: { url?: string; auth: GitAuthConfig }): unknown {
  if (!(error instanceof StepFailure)) return error;
  const output = error.lastLines.join('\n');
  const remote = sshRemoteOf(url);
  const name = remote ? describeRemote(remote) : 'the git server';
  const host = remote ? knownHostsName(remote) : 'the git server';
  const hosts = auth.knownHosts ?? '~/.ssh/known_hosts of the build user';
  let message: string | undefined;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/.test(output)) {
    message =
      `${host} offered a different host key than the one in ${hosts}: check with the forge ` +
      `whether it really changed before replacing that line (it may be an attack).`;
  } else if (/Host key verification failed|No \S+ host key is known for/.test(output)) {
    message =
      `${host}'s host key is not in ${hosts}: add it ` +
      `(${remote ? keyscanHint(remote, hosts) : 'ssh-keyscan HOST >> FILE'}, after checking the fingerprint), ` +
      `and set known_hosts: in shipkit.yml.`;
  } else if (/Permission denied \(publickey/.test(output)) {
    message = auth.sshKey
      ? `The deploy key ${auth.sshKey} was refused by ${name}: add ${auth.sshKey}.pub to the repository's ` +
        `Deploy keys (read access is enough).`
      : `${name} refused the build's ssh keys: set ssh_key: for this repo in shipkit.yml to a deploy key ` +
        `added to the repository's Deploy keys.`;
  }
  if (!message) return error;
  const explained = new StepFailure(message, {
    lastLines: error.lastLines,
    timedOut: error.timedOut,
    commandExit: error.commandExit,
  });
  explained.cause = error;
  return explained;
}
