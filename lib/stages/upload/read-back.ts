// Reading a target back, for `release publish` and `release rollback`: the files directly in a
// folder target (s3://bucket/prefix or user@host:path), and one of them downloaded. The same
// targets uploadFiles writes; git targets are not read back.
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { $ } from '../../core/shell.ts';
import { RemoteError, ValidationError } from '../../core/errors.ts';
import { requirePrograms } from '../../core/programs.ts';
import { sshCommand } from '../../core/ssh.ts';
import { rsyncDestination } from './rsync.ts';
import { describeS3Error, listRemote, makeS3Client } from './s3.ts';
import { parseTarget } from './targets.ts';
import type { RsyncTarget, S3Target, Target } from './types.ts';

/** ssh settings for user@host:path targets (default: the user's ssh config). */
export interface ReadBackSsh {
  sshKey?: string;
  port?: number;
  knownHosts?: string;
}

function folderTarget(to: string): S3Target | RsyncTarget {
  const target: Target = parseTarget(to);
  if (target.kind === 'git')
    throw new ValidationError(
      `A git+ target cannot be read back; publish releases to a folder, s3:// or user@host:path.`,
    );
  return target;
}

/** Names of the files directly in the target folder. */
export async function listTargetFiles(
  to: string,
  env: NodeJS.ProcessEnv = process.env,
  ssh: ReadBackSsh = {},
): Promise<string[]> {
  const target = folderTarget(to);
  if (target.kind === 's3') {
    const { s3, client, target: t } = await makeS3Client(target, env);
    try {
      const keys = [...(await listRemote(client, s3, t)).keys()];
      return keys.map((k) => k.slice(t.prefix.length)).filter((n) => n && !n.includes('/'));
    } catch (error) {
      throw describeS3Error(error, t);
    } finally {
      client.destroy();
    }
  }
  requirePrograms(['rsync', 'ssh'], env.PATH);
  const r = await $({
    env,
    quiet: true,
    nothrow: true,
  })`rsync --list-only --protect-args -e ${sshCommand({ ...ssh, port: ssh.port ?? target.port })} ${`${rsyncDestination(target).replace(/\/*$/, '')}/`}`;
  if (r.exitCode !== 0)
    throw new RemoteError(
      `Listing ${rsyncDestination(target)} failed (rsync exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-1)[0]}`,
    );
  // "-rw-r--r--          1,234 2024/01/01 12:00:00 name": regular files only.
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('-'))
    .map((l) => /^\S+\s+[\d,.]+\s+\S+\s+\S+\s(.*)$/.exec(l)?.[1])
    .filter((n): n is string => Boolean(n));
}

/** Download `name` from the target folder into `file`; false when the target has no such file. */
export async function downloadTargetFile(
  to: string,
  name: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  ssh: ReadBackSsh = {},
): Promise<boolean> {
  const target = folderTarget(to);
  if (target.kind === 's3') {
    const { s3, client, target: t } = await makeS3Client(target, env);
    try {
      const answer = await client.send(new s3.GetObjectCommand({ Bucket: t.bucket, Key: t.prefix + name }));
      await pipeline(answer.Body as Readable, createWriteStream(file));
      return true;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if ((error as { name?: string }).name === 'NoSuchKey' || status === 404) return false;
      throw describeS3Error(error, t);
    } finally {
      client.destroy();
    }
  }
  requirePrograms(['rsync', 'ssh'], env.PATH);
  const from = `${rsyncDestination(target).replace(/\/*$/, '')}/${name}`;
  const r = await $({
    env,
    quiet: true,
    nothrow: true,
  })`rsync --protect-args -e ${sshCommand({ ...ssh, port: ssh.port ?? target.port })} ${from} ${file}`;
  if (r.exitCode === 23 && /No such file or directory/.test(r.stderr)) return false;
  if (r.exitCode !== 0)
    throw new RemoteError(
      `Reading ${from} failed (rsync exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-1)[0]}`,
    );
  return true;
}
