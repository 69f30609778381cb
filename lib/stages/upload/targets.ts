// Upload targets (docs/upload.md): parse `user@host:path`, `rsync://…`, `s3://bucket/prefix` and
// `git+REMOTE#BRANCH`, each part checked, and name a target the way the operator wrote it.
import { ValidationError } from '../../core/errors.ts';
import { gitTargetName } from './git.ts';
import { rsyncDestination } from './rsync.ts';
import { s3Url } from './s3.ts';
import type { GitTarget, RsyncTarget, S3Target, Target } from './types.ts';

export const DEFAULT_GIT_BRANCH = 'gh-pages';
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
export const ENDPOINT = /^https?:\/\/\S+$/;

/** Settings only an s3:// target takes (the command line's --endpoint and --region). */
export interface S3Settings {
  endpoint?: string;
  region?: string;
}

/**
 * Parse a target from the command line. Throws ValidationError with the accepted forms.
 *   deploy@web1:/var/www/site   rsync://deploy@web1:2222/var/www/site   s3://bucket/prefix
 *   git+git@github.com:octo/site.git#gh-pages   git+/srv/git/site.git#main
 * `s3` (endpoint, region) applies to an s3:// target and is refused for any other.
 */
export function parseTarget(text: string, s3: S3Settings = {}): Target {
  const target = parseTargetText(text);
  const { endpoint, region } = s3;
  if (target.kind !== 's3') {
    if (endpoint !== undefined || region !== undefined)
      throw new ValidationError(`An endpoint or region is only for s3:// targets, not ${JSON.stringify(text)}.`);
    return target;
  }
  if (endpoint !== undefined && !ENDPOINT.test(endpoint))
    throw new ValidationError(
      `Invalid S3 endpoint ${JSON.stringify(endpoint)}: it must be an http:// or https:// URL.`,
    );
  return { ...target, ...(endpoint !== undefined ? { endpoint } : {}), ...(region !== undefined ? { region } : {}) };
}

function parseTargetText(text: string): Target {
  if (/[\0-\x1f\x7f]/.test(text))
    throw new ValidationError(`Invalid upload target ${JSON.stringify(text)}: it holds control characters.`);
  if (text.startsWith('git+')) {
    const rest = text.slice(4);
    const hash = rest.lastIndexOf('#');
    return gitTarget(hash === -1 ? rest : rest.slice(0, hash), hash === -1 ? DEFAULT_GIT_BRANCH : rest.slice(hash + 1));
  }
  if (/^s3:\/\//i.test(text)) {
    const rest = text.slice(5);
    const slash = rest.indexOf('/');
    return s3Target(slash === -1 ? rest : rest.slice(0, slash), slash === -1 ? '' : rest.slice(slash + 1));
  }
  if (/^rsync:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ValidationError(
        `Invalid upload target ${JSON.stringify(text)}: write rsync://[user@]host[:port]/path.`,
      );
    }
    const remotePath = decodeURIComponent(url.pathname);
    return rsyncTarget(
      decodeURIComponent(url.username) || undefined,
      url.hostname,
      url.port ? Number(url.port) : undefined,
      remotePath,
      text,
    );
  }
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)
    ? null
    : /^(?:([^@/:]+)@)?([^@/:[\]]+|\[[^\]]+\]):(.*)$/s.exec(text);
  if (m) return rsyncTarget(m[1], m[2], undefined, m[3], text);
  throw new ValidationError(
    `Unknown upload target ${JSON.stringify(text)}: use user@host:path, rsync://[user@]host[:port]/path, ` +
      `s3://bucket/prefix or git+REMOTE#BRANCH.`,
  );
}

function rsyncTarget(
  user: string | undefined,
  host: string,
  port: number | undefined,
  remotePath: string,
  text: string,
): RsyncTarget {
  if (user !== undefined && !USER.test(user))
    throw new ValidationError(`Invalid user ${JSON.stringify(user)} in upload target ${JSON.stringify(text)}.`);
  if (!HOST.test(host))
    throw new ValidationError(`Invalid host ${JSON.stringify(host)} in upload target ${JSON.stringify(text)}.`);
  if (remotePath === '')
    throw new ValidationError(
      `Upload target ${JSON.stringify(text)} has no remote path; write user@host:/path/to/site/.`,
    );
  return { kind: 'rsync', ...(user ? { user } : {}), host, ...(port ? { port } : {}), path: remotePath };
}

/** An s3 target from its parts (shipkit.yml's `s3:` mapping gives them apart). */
export function s3Target(bucket: string, prefix: string, extra: Partial<S3Target> = {}): S3Target {
  if (!BUCKET.test(bucket))
    throw new ValidationError(`Invalid S3 bucket name ${JSON.stringify(bucket)}: write s3://bucket/prefix.`);
  let clean = prefix.replace(/^\/+/, '');
  if (clean.split('/').some((s) => s === '..' || s === '.'))
    throw new ValidationError(`Invalid S3 prefix ${JSON.stringify(prefix)}: it must not contain "." or ".." segments.`);
  if (clean && !clean.endsWith('/')) clean += '/';
  return { kind: 's3', bucket, prefix: clean, ...extra };
}

/** A git target from its parts (shipkit.yml's `git:` mapping gives them apart). */
export function gitTarget(remote: string, branch: string): GitTarget {
  if (!remote) throw new ValidationError('Invalid git target: the remote is empty; write git+REMOTE#BRANCH.');
  if (remote.startsWith('-'))
    throw new ValidationError(`Invalid git remote ${JSON.stringify(remote)}: it must not start with "-".`);
  if (/^ext::|^fd::/i.test(remote))
    throw new ValidationError(
      `Invalid git remote ${JSON.stringify(remote)}: the ext:: and fd:: transports run commands and are not allowed.`,
    );
  const badBranch =
    !/^[A-Za-z0-9_][A-Za-z0-9._/-]*$/.test(branch) ||
    /\.\.|\/\/|\/$|\.lock$|\.$|@\{/.test(branch) ||
    branch.length > 200;
  if (badBranch)
    throw new ValidationError(
      `Invalid git branch ${JSON.stringify(branch)}: use a plain branch name such as gh-pages.`,
    );
  return { kind: 'git', remote, branch };
}

export function targetName(target: Target): string {
  if (target.kind === 'rsync') return rsyncDestination(target);
  if (target.kind === 's3') return s3Url(target);
  return gitTargetName(target);
}
