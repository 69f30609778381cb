// rsync over ssh: the folder's contents to user@host:path. --delay-updates puts every changed
// file in place at the end, so a transfer that breaks leaves the remote as it was (as far as
// rsync allows); links that leave the tree are not copied (--safe-links).
import { $ } from '../../core/shell.ts';
import { RemoteError, WorkError } from '../../core/errors.ts';
import { requirePrograms } from '../../core/programs.ts';
import { sshCommand } from '../../core/ssh.ts';
import type { RsyncTarget, UploadOptions, UploadResult } from './types.ts';

export function rsyncDestination(target: RsyncTarget): string {
  return `${target.user ? `${target.user}@` : ''}${target.host}:${target.path}`;
}

/** The rsync arguments (exported for tests). */
export function rsyncArgs(target: RsyncTarget, options: UploadOptions): string[] {
  const args = [
    '--recursive',
    '--links',
    '--safe-links',
    '--perms',
    '--times',
    '--compress',
    '--delay-updates',
    '--protect-args',
    '--stats',
    '--timeout=120',
    '-e',
    sshCommand({ sshKey: options.sshKey, port: options.port ?? target.port, knownHosts: options.knownHosts }),
  ];
  if (options.dryRun) args.push('--dry-run');
  const from = options.from.replace(/\/+$/, '');
  if (options.only) {
    // `from/./a/b`: --relative keeps the path after "./" on the remote. The destination ends in
    // "/": it is a folder (made when missing), never a file named after it when one file is sent.
    const into = rsyncDestination(target).replace(/\/*$/, '/');
    args.push('--relative', ...options.only.map((file) => `${from}/./${file}`), into);
    return args;
  }
  if (options.delete) args.push('--delete-delay');
  // The trailing slash: copy the folder's contents, not the folder itself.
  args.push(`${from}/`, rsyncDestination(target));
  return args;
}

export async function uploadRsync(target: RsyncTarget, options: UploadOptions): Promise<UploadResult> {
  requirePrograms(['bash', 'rsync', 'ssh'], (options.env ?? process.env).PATH);
  const destination = rsyncDestination(target);
  const args = rsyncArgs(target, options);
  options.log.info(`rsync: ${options.from}/ → ${destination}${options.dryRun ? ' (dry run)' : ''}`);
  const result = await $({ env: options.env ?? process.env, quiet: true, nothrow: true })`rsync ${args}`;
  if (result.exitCode !== 0) throw rsyncFailure(destination, target, options, result.exitCode ?? -1, result.stderr);
  const stats = parseRsyncStats(result.stdout);
  options.log.info(`rsync: ${stats.transferred} files sent, ${stats.unchanged} unchanged, ${stats.deleted} deleted`, {
    target: destination,
  });
  return {
    target: destination,
    uploaded: stats.transferred,
    unchanged: stats.unchanged,
    deleted: stats.deleted,
    dryRun: Boolean(options.dryRun),
  };
}

export function parseRsyncStats(stdout: string): { transferred: number; unchanged: number; deleted: number } {
  const num = (re: RegExp) => Number((re.exec(stdout)?.[1] ?? '0').replace(/[,.]/g, ''));
  const files = num(/Number of files: [\d,.]+ \(reg: ([\d,.]+)/);
  const transferred = num(/Number of regular files transferred: ([\d,.]+)/);
  const deleted = num(/Number of deleted files: ([\d,.]+)/);
  return { transferred, unchanged: Math.max(0, files - transferred), deleted };
}

function rsyncFailure(
  destination: string,
  target: RsyncTarget,
  options: UploadOptions,
  code: number,
  stderr: string,
): Error {
  const detail =
    stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('rsync error:') && !/^Warning: Permanently added/.test(l))
      .slice(-3)
      .join(' / ') || `exit ${code}`;
  const port = options.port ?? target.port ?? 22;
  let advice: string;
  if (/Permission denied \(|Too many authentication failures/.test(stderr)) {
    advice = `ssh refused the credentials for ${target.user ?? 'the user'}@${target.host}; check ssh_key and the remote authorized_keys.`;
  } else if (
    /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/.test(stderr)
  ) {
    advice = `the host key of ${target.host} is not trusted; add it to known_hosts (ssh-keyscan -p ${port} ${target.host}).`;
  } else if (
    /Connection refused|Connection timed out|No route to host|Could not resolve hostname|Network is unreachable|Connection closed by|Connection reset/.test(
      stderr,
    )
  ) {
    advice = `could not reach ${target.host} port ${port}; check the host name, the port and that sshd is running.`;
  } else if (/command not found|rsync: not found|No such file or directory.*rsync/.test(stderr) && code !== 23) {
    advice = `rsync is not installed on ${target.host}.`;
  } else if (code === 23 || code === 24) {
    return new WorkError(
      `rsync to ${destination} finished only partly (exit ${code}): ${detail}. Files not sent were left as they were.`,
    );
  } else {
    advice = `rsync exited with ${code}.`;
  }
  return new RemoteError(`Upload to ${destination} failed: ${advice} (${detail})`);
}
