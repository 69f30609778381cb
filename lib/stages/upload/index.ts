// Upload targets (DESIGN §5 upload): parse `user@host:path`, `rsync://…`, `s3://bucket/prefix`,
// `git+REMOTE#BRANCH` and shipkit.yml `upload:` entries, and run them in order.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configError, formatKeyPath, type ConfigDoc, type KeyPath } from '../../core/yaml-config.ts';
import { ConfigError, ValidationError, WorkError } from '../../core/errors.ts';
import { resolveInside } from '../../core/names.ts';
import { checkSourceFolder, isInside } from './files.ts';
import { gitTargetName, uploadGit } from './git.ts';
import { rsyncDestination, uploadRsync } from './rsync.ts';
import { s3Url, uploadS3 } from './s3.ts';
import type { GitTarget, RsyncTarget, S3Target, Target, UploadLog, UploadOptions, UploadResult } from './types.ts';

export type { Target, UploadOptions, UploadResult, UploadLog } from './types.ts';

/** One item of a repo's `upload:` list in shipkit.yml, as lib/config/shipkit-yml.ts reads it. */
export interface UploadEntry {
  raw: Record<string, unknown>;
  keyPath: KeyPath;
}

const DEFAULT_GIT_BRANCH = 'gh-pages';
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;
const ENDPOINT = /^https?:\/\/\S+$/;

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
    if (endpoint !== undefined || region !== undefined) throw new ValidationError(`An endpoint or region is only for s3:// targets, not ${JSON.stringify(text)}.`);
    return target;
  }
  if (endpoint !== undefined && !ENDPOINT.test(endpoint)) throw new ValidationError(`Invalid S3 endpoint ${JSON.stringify(endpoint)}: it must be an http:// or https:// URL.`);
  return { ...target, ...(endpoint !== undefined ? { endpoint } : {}), ...(region !== undefined ? { region } : {}) };
}

function parseTargetText(text: string): Target {
  if (/[\0-\x1f\x7f]/.test(text)) throw new ValidationError(`Invalid upload target ${JSON.stringify(text)}: it holds control characters.`);
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
      throw new ValidationError(`Invalid upload target ${JSON.stringify(text)}: write rsync://[user@]host[:port]/path.`);
    }
    const remotePath = decodeURIComponent(url.pathname);
    return rsyncTarget(decodeURIComponent(url.username) || undefined, url.hostname, url.port ? Number(url.port) : undefined, remotePath, text);
  }
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? null : /^(?:([^@/:]+)@)?([^@/:[\]]+|\[[^\]]+\]):(.*)$/s.exec(text);
  if (m) return rsyncTarget(m[1], m[2], undefined, m[3], text);
  throw new ValidationError(`Unknown upload target ${JSON.stringify(text)}: use user@host:path, rsync://[user@]host[:port]/path, s3://bucket/prefix or git+REMOTE#BRANCH.`);
}

function rsyncTarget(user: string | undefined, host: string, port: number | undefined, remotePath: string, text: string): RsyncTarget {
  if (user !== undefined && !USER.test(user)) throw new ValidationError(`Invalid user ${JSON.stringify(user)} in upload target ${JSON.stringify(text)}.`);
  if (!HOST.test(host)) throw new ValidationError(`Invalid host ${JSON.stringify(host)} in upload target ${JSON.stringify(text)}.`);
  if (remotePath === '') throw new ValidationError(`Upload target ${JSON.stringify(text)} has no remote path; write user@host:/path/to/site/.`);
  return { kind: 'rsync', ...(user ? { user } : {}), host, ...(port ? { port } : {}), path: remotePath };
}

function s3Target(bucket: string, prefix: string, extra: Partial<S3Target> = {}): S3Target {
  if (!BUCKET.test(bucket)) throw new ValidationError(`Invalid S3 bucket name ${JSON.stringify(bucket)}: write s3://bucket/prefix.`);
  let clean = prefix.replace(/^\/+/, '');
  if (clean.split('/').some((s) => s === '..' || s === '.')) throw new ValidationError(`Invalid S3 prefix ${JSON.stringify(prefix)}: it must not contain "." or ".." segments.`);
  if (clean && !clean.endsWith('/')) clean += '/';
  return { kind: 's3', bucket, prefix: clean, ...extra };
}

function gitTarget(remote: string, branch: string): GitTarget {
  if (!remote) throw new ValidationError('Invalid git target: the remote is empty; write git+REMOTE#BRANCH.');
  if (remote.startsWith('-')) throw new ValidationError(`Invalid git remote ${JSON.stringify(remote)}: it must not start with "-".`);
  if (/^ext::|^fd::/i.test(remote)) throw new ValidationError(`Invalid git remote ${JSON.stringify(remote)}: the ext:: and fd:: transports run commands and are not allowed.`);
  const badBranch = !/^[A-Za-z0-9_][A-Za-z0-9._/-]*$/.test(branch) || /\.\.|\/\/|\/$|\.lock$|\.$|@\{/.test(branch) || branch.length > 200;
  if (badBranch) throw new ValidationError(`Invalid git branch ${JSON.stringify(branch)}: use a plain branch name such as gh-pages.`);
  return { kind: 'git', remote, branch };
}

export function targetName(target: Target): string {
  if (target.kind === 'rsync') return rsyncDestination(target);
  if (target.kind === 's3') return s3Url(target);
  return gitTargetName(target);
}

/** Run one upload: the folder must exist; the target decides how. */
export async function uploadTo(target: Target, options: UploadOptions): Promise<UploadResult> {
  await checkSourceFolder(options.from);
  if (target.kind === 'rsync') return uploadRsync(target, options);
  if (target.kind === 's3') return uploadS3(target, options);
  return uploadGit(target, options);
}

/**
 * Upload only the named files of `from` (paths below it), in that order, to a target given as
 * text (`user@host:path`, `rsync://…`, `s3://bucket/prefix`). Nothing else on the remote is
 * touched. `release publish` uses it: payload first, VERSION last.
 */
export async function uploadFiles(opts: { from: string; to: string; files: string[]; log: UploadLog } & Omit<UploadOptions, 'from' | 'log' | 'only' | 'delete'>): Promise<UploadResult> {
  const { to, files, ...rest } = opts;
  const target = parseTarget(to);
  if (target.kind === 'git') throw new ValidationError(`A git+ target takes a whole folder as the branch's tree; use upload --from DIR --to ${to}.`);
  if (files.length === 0) throw new ValidationError('No files to upload.');
  const root = await fs.realpath(opts.from);
  const only: string[] = [];
  for (const file of files) {
    const full = resolveInside(opts.from, file, 'file to upload');
    const real = await fs.realpath(full).catch(() => undefined);
    const st = real ? await fs.stat(real) : undefined;
    if (!real || !st?.isFile() || !isInside(root, real)) throw new WorkError(`${full} is not a file inside ${opts.from}; nothing was uploaded.`);
    only.push(path.relative(opts.from, full).split(path.sep).join('/'));
  }
  return uploadTo(target, { ...rest, from: opts.from, log: opts.log, only });
}

// ---- shipkit.yml `upload:` entries --------------------------------------------------------

const ENTRY_KEYS = ['rsync', 's3', 'git', 'from', 'delete', 'cache_control', 'ssh_key', 'port', 'known_hosts', 'concurrency'];
const S3_KEYS = ['bucket', 'prefix', 'region', 'endpoint', 'force_path_style'];
const GIT_KEYS = ['remote', 'branch', 'message'];

export interface UploadPlan {
  target: Target;
  /** Absolute source folder inside the work folder. */
  from: string;
  options: Omit<UploadOptions, 'from' | 'log'>;
  keyPath: KeyPath;
}

export interface PlanContext {
  workDir: string;
  doc?: ConfigDoc;
  /** Relative ssh_key / known_hosts paths are taken from the config file's folder. */
  configFile?: string;
}

/** Validate one `upload:` entry into a plan. Throws ConfigError naming FILE:LINE and the key. */
export function planUpload(entry: UploadEntry, context: PlanContext): UploadPlan {
  const { raw, keyPath } = entry;
  const fail = (key: string | undefined, message: string): never => {
    const at = key === undefined ? keyPath : [...keyPath, key];
    throw context.doc ? configError(context.doc, at, message) : new ConfigError(`${formatKeyPath(at)}: ${message}`);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(undefined, 'must be a mapping such as {rsync: deploy@web1:/var/www/site/, from: out}.');
  for (const key of Object.keys(raw)) if (!ENTRY_KEYS.includes(key)) fail(key, `unknown key; expected one of: ${ENTRY_KEYS.join(', ')}.`);
  const kinds = (['rsync', 's3', 'git'] as const).filter((k) => raw[k] !== undefined);
  if (kinds.length !== 1) fail(undefined, kinds.length ? `give only one of rsync, s3 or git (found ${kinds.join(', ')}).` : 'needs one of rsync:, s3: or git:.');
  const kind = kinds[0];
  const str = (key: string, value: unknown = raw[key]): string | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value === '') fail(key, 'must be a non-empty string.');
    return value as string;
  };
  const configFile = context.configFile ?? context.doc?.file;
  const baseDir = configFile ? path.dirname(configFile) : context.workDir;
  const localPath = (key: string) => {
    const value = str(key);
    if (value === undefined) return undefined;
    if (/['\\\n\0]/.test(value)) fail(key, 'must not contain quotes, backslashes or newlines.');
    return value.startsWith('~/') ? path.join(os.homedir(), value.slice(2)) : path.resolve(baseDir, value);
  };

  let target: Target;
  try {
    const value = raw[kind];
    if (kind === 'rsync') {
      const text = str('rsync')!;
      target = parseTarget(text);
      if (target.kind !== 'rsync') fail('rsync', 'must be user@host:path or rsync://[user@]host[:port]/path.');
    } else if (kind === 's3') {
      if (typeof value === 'string') {
        target = parseTarget(value.startsWith('s3://') ? value : `s3://${value}`);
      } else if (value && typeof value === 'object' && !Array.isArray(value)) {
        const s3 = value as Record<string, unknown>;
        for (const key of Object.keys(s3)) if (!S3_KEYS.includes(key)) fail(`s3.${key}`, `unknown key; expected one of: ${S3_KEYS.join(', ')}.`);
        const bucket = str('s3.bucket', s3.bucket) ?? fail('s3', 'needs bucket:.');
        // `prefix: ""` (the bucket's root) is what DESIGN's own example writes.
        const prefix = s3.prefix === undefined || s3.prefix === null || s3.prefix === '' ? '' : str('s3.prefix', s3.prefix) ?? '';
        const endpoint = str('s3.endpoint', s3.endpoint);
        if (endpoint && !ENDPOINT.test(endpoint)) fail('s3.endpoint', 'must be an http:// or https:// URL.');
        if (s3.force_path_style !== undefined && typeof s3.force_path_style !== 'boolean') fail('s3.force_path_style', 'must be true or false.');
        target = s3Target(bucket, prefix, {
          ...(str('s3.region', s3.region) ? { region: s3.region as string } : {}),
          ...(endpoint ? { endpoint } : {}),
          ...(typeof s3.force_path_style === 'boolean' ? { forcePathStyle: s3.force_path_style } : {}),
        });
      } else {
        target = fail('s3', 'must be s3://bucket/prefix or a mapping {bucket, prefix, region, endpoint}.');
      }
    } else {
      if (typeof value === 'string') {
        target = parseTarget(value.startsWith('git+') ? value : `git+${value}`);
      } else if (value && typeof value === 'object' && !Array.isArray(value)) {
        const g = value as Record<string, unknown>;
        for (const key of Object.keys(g)) if (!GIT_KEYS.includes(key)) fail(`git.${key}`, `unknown key; expected one of: ${GIT_KEYS.join(', ')}.`);
        target = gitTarget(str('git.remote', g.remote) ?? fail('git', 'needs remote:.'), str('git.branch', g.branch) ?? DEFAULT_GIT_BRANCH);
      } else {
        target = fail('git', 'must be REMOTE#BRANCH or a mapping {remote, branch}.');
      }
    }
  } catch (error) {
    if (error instanceof ValidationError) fail(kind, error.message);
    throw error;
  }

  const fromText = str('from') ?? fail(undefined, 'needs from: (the folder to upload, inside the repo, such as out).');
  let from: string;
  try {
    from = resolveInside(context.workDir, fromText, 'upload folder');
  } catch (error) {
    return fail('from', (error as Error).message);
  }
  const options: UploadPlan['options'] = {};
  if (raw.delete !== undefined) {
    if (typeof raw.delete !== 'boolean') fail('delete', 'must be true or false.');
    options.delete = raw.delete as boolean;
  }
  if (raw.port !== undefined) {
    if (!Number.isInteger(raw.port) || (raw.port as number) < 1 || (raw.port as number) > 65535) fail('port', 'must be a port number (1-65535).');
    options.port = raw.port as number;
  }
  if (raw.concurrency !== undefined) {
    if (!Number.isInteger(raw.concurrency) || (raw.concurrency as number) < 1 || (raw.concurrency as number) > 64) fail('concurrency', 'must be a whole number from 1 to 64.');
    options.concurrency = raw.concurrency as number;
  }
  const cacheControl = str('cache_control');
  if (cacheControl !== undefined) {
    if (/[\r\n]/.test(cacheControl)) fail('cache_control', 'must be one line.');
    options.cacheControl = cacheControl;
  }
  const sshKey = localPath('ssh_key');
  if (sshKey) options.sshKey = sshKey;
  const knownHosts = localPath('known_hosts');
  if (knownHosts) options.knownHosts = knownHosts;
  if (kind === 'git' && raw.git && typeof raw.git === 'object') {
    const message = (raw.git as Record<string, unknown>).message;
    if (message !== undefined) options.message = str('git.message', message);
  }
  return { target, from, options, keyPath };
}

/** The source folder must be a real folder inside the work folder (not a link out of it). */
async function checkPlanSource(plan: UploadPlan, workDir: string): Promise<void> {
  await checkSourceFolder(plan.from);
  const [realWork, realFrom] = await Promise.all([fs.realpath(workDir), fs.realpath(plan.from)]);
  if (!isInside(realWork, realFrom) || realWork === realFrom) {
    throw new ValidationError(`The upload folder ${plan.from} resolves to ${realFrom}, outside ${workDir}; it must not be a symbolic link out of the repository.`);
  }
}

export interface StageOptions {
  workDir: string;
  entries: UploadEntry[];
  configFile?: string;
  doc?: ConfigDoc;
  sourceSha?: string;
  log: UploadLog;
  dryRun?: boolean;
}

/** Validate every entry, then upload to each in order; the first failure stops the rest. */
export async function uploadEntries(opts: StageOptions): Promise<UploadResult[]> {
  const plans = opts.entries.map((entry) => planUpload(entry, { workDir: opts.workDir, doc: opts.doc, configFile: opts.configFile ?? opts.doc?.file }));
  if (plans.length === 0) opts.log.info('upload: no upload targets configured');
  const results: UploadResult[] = [];
  for (const [i, plan] of plans.entries()) {
    const name = targetName(plan.target);
    try {
      await checkPlanSource(plan, opts.workDir);
      results.push(await uploadTo(plan.target, { ...plan.options, from: plan.from, log: opts.log, sourceSha: opts.sourceSha, dryRun: opts.dryRun || plan.options.dryRun }));
    } catch (error) {
      const rest = plans.length - i - 1;
      opts.log.error(`upload ${i + 1}/${plans.length} to ${name} failed${rest ? `; ${rest} later target(s) not attempted` : ''}`);
      throw error;
    }
  }
  return results;
}

/** The build pipeline's `upload` step: the repo's configured targets, in order. */
export async function runUploadStage(opts: StageOptions): Promise<void> {
  await uploadEntries(opts);
}

