// The upload stage (docs/upload.md): shipkit.yml `upload:` entries checked into plans and run in
// order, and one upload to a target. Parsing a target's text is targets.ts.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configError, formatKeyPath, type ConfigDoc, type KeyPath } from '../../core/yaml-config.ts';
import { ConfigError, ValidationError, WorkError, messageOf } from '../../core/errors.ts';
import { resolveInside } from '../../core/names.ts';
import { checkSourceFolder, isInside } from './files.ts';
import { uploadGit } from './git.ts';
import { uploadRsync } from './rsync.ts';
import { uploadS3 } from './s3.ts';
import { DEFAULT_GIT_BRANCH, ENDPOINT, gitTarget, parseTarget, s3Target, targetName } from './targets.ts';
import type { Target, UploadLog, UploadOptions, UploadResult } from './types.ts';

export type { Target, UploadOptions, UploadResult, UploadLog } from './types.ts';
export { parseTarget, targetName, type S3Settings } from './targets.ts';

/** One item of a repo's `upload:` list in shipkit.yml, as lib/config/shipkit-yml.ts reads it. */
export interface UploadEntry {
  raw: Record<string, unknown>;
  keyPath: KeyPath;
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
export async function uploadFiles(
  opts: { from: string; to: string; files: string[]; log: UploadLog } & Omit<
    UploadOptions,
    'from' | 'log' | 'only' | 'delete'
  >,
): Promise<UploadResult> {
  const { to, files, ...rest } = opts;
  const target = parseTarget(to);
  if (target.kind === 'git')
    throw new ValidationError(
      `A git+ target takes a whole folder as the branch's tree; use upload --from DIR --to ${to}.`,
    );
  if (files.length === 0) throw new ValidationError('No files to upload.');
  const root = await fs.realpath(opts.from);
  const only: string[] = [];
  for (const file of files) {
    const full = resolveInside(opts.from, file, 'file to upload');
    const real = await fs.realpath(full).catch(() => undefined);
    const st = real ? await fs.stat(real) : undefined;
    if (!real || !st?.isFile() || !isInside(root, real))
      throw new WorkError(`${full} is not a file inside ${opts.from}; nothing was uploaded.`);
    only.push(path.relative(opts.from, full).split(path.sep).join('/'));
  }
  return uploadTo(target, { ...rest, from: opts.from, log: opts.log, only });
}

// ---- shipkit.yml `upload:` entries --------------------------------------------------------

const ENTRY_KEYS = [
  'rsync',
  's3',
  'git',
  'from',
  'delete',
  'cache_control',
  'ssh_key',
  'port',
  'known_hosts',
  'concurrency',
];
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

type Kind = 'rsync' | 's3' | 'git';

/** One `upload:` entry being read: each check fails with a ConfigError naming FILE:LINE and the key. */
class EntryReader {
  private readonly raw: Record<string, unknown>;
  private readonly keyPath: KeyPath;
  private readonly context: PlanContext;

  constructor({ raw, keyPath }: UploadEntry, context: PlanContext) {
    this.raw = raw;
    this.keyPath = keyPath;
    this.context = context;
  }

  private fail(key: string | undefined, message: string): never {
    const at = key === undefined ? this.keyPath : [...this.keyPath, key];
    throw this.context.doc
      ? configError(this.context.doc, at, message)
      : new ConfigError(`${formatKeyPath(at)}: ${message}`);
  }

  private str(key: string, value: unknown = this.raw[key]): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value === '') this.fail(key, 'must be a non-empty string.');
    return value as string;
  }

  /** A local file: relative to the config file's folder (or the work folder), `~/` to the home folder. */
  private localPath(key: string): string | undefined {
    const value = this.str(key);
    if (value === undefined) return undefined;
    if (/['\\\n\0]/.test(value)) this.fail(key, 'must not contain quotes, backslashes or newlines.');
    const configFile = this.context.configFile ?? this.context.doc?.file;
    const baseDir = configFile ? path.dirname(configFile) : this.context.workDir;
    return value.startsWith('~/') ? path.join(os.homedir(), value.slice(2)) : path.resolve(baseDir, value);
  }

  /** A mapping of known keys with exactly one of rsync, s3 or git. */
  kind(): Kind {
    const raw = this.raw;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      this.fail(undefined, 'must be a mapping such as {rsync: deploy@web1:/var/www/site/, from: out}.');
    for (const key of Object.keys(raw))
      if (!ENTRY_KEYS.includes(key)) this.fail(key, `unknown key; expected one of: ${ENTRY_KEYS.join(', ')}.`);
    const kinds = (['rsync', 's3', 'git'] as const).filter((k) => raw[k] !== undefined);
    if (kinds.length !== 1)
      this.fail(
        undefined,
        kinds.length
          ? `give only one of rsync, s3 or git (found ${kinds.join(', ')}).`
          : 'needs one of rsync:, s3: or git:.',
      );
    return kinds[0];
  }

  /** The target; a ValidationError from parsing it is reported at the entry's rsync, s3 or git key. */
  target(kind: Kind): Target {
    try {
      if (kind === 'rsync') return this.rsyncTarget();
      return kind === 's3' ? this.s3Target(this.raw.s3) : this.gitTarget(this.raw.git);
    } catch (error) {
      if (error instanceof ValidationError) this.fail(kind, error.message);
      throw error;
    }
  }

  private rsyncTarget(): Target {
    const target = parseTarget(this.str('rsync')!);
    if (target.kind !== 'rsync') this.fail('rsync', 'must be user@host:path or rsync://[user@]host[:port]/path.');
    return target;
  }

  private s3Target(value: unknown): Target {
    if (typeof value === 'string') return parseTarget(value.startsWith('s3://') ? value : `s3://${value}`);
    if (!value || typeof value !== 'object' || Array.isArray(value))
      this.fail('s3', 'must be s3://bucket/prefix or a mapping {bucket, prefix, region, endpoint}.');
    const s3 = value as Record<string, unknown>;
    for (const key of Object.keys(s3))
      if (!S3_KEYS.includes(key)) this.fail(`s3.${key}`, `unknown key; expected one of: ${S3_KEYS.join(', ')}.`);
    const bucket = this.str('s3.bucket', s3.bucket) ?? this.fail('s3', 'needs bucket:.');
    // `prefix: ""` (the bucket's root) is what the docs' example writes.
    const prefix =
      s3.prefix === undefined || s3.prefix === null || s3.prefix === '' ? '' : (this.str('s3.prefix', s3.prefix) ?? '');
    const endpoint = this.str('s3.endpoint', s3.endpoint);
    if (endpoint && !ENDPOINT.test(endpoint)) this.fail('s3.endpoint', 'must be an http:// or https:// URL.');
    if (s3.force_path_style !== undefined && typeof s3.force_path_style !== 'boolean')
      this.fail('s3.force_path_style', 'must be true or false.');
    return s3Target(bucket, prefix, {
      ...(this.str('s3.region', s3.region) ? { region: s3.region as string } : {}),
      ...(endpoint ? { endpoint } : {}),
      ...(typeof s3.force_path_style === 'boolean' ? { forcePathStyle: s3.force_path_style } : {}),
    });
  }

  private gitTarget(value: unknown): Target {
    if (typeof value === 'string') return parseTarget(value.startsWith('git+') ? value : `git+${value}`);
    if (!value || typeof value !== 'object' || Array.isArray(value))
      this.fail('git', 'must be REMOTE#BRANCH or a mapping {remote, branch}.');
    const g = value as Record<string, unknown>;
    for (const key of Object.keys(g))
      if (!GIT_KEYS.includes(key)) this.fail(`git.${key}`, `unknown key; expected one of: ${GIT_KEYS.join(', ')}.`);
    return gitTarget(
      this.str('git.remote', g.remote) ?? this.fail('git', 'needs remote:.'),
      this.str('git.branch', g.branch) ?? DEFAULT_GIT_BRANCH,
    );
  }

  /** The source folder, inside the work folder. */
  from(): string {
    const fromText =
      this.str('from') ?? this.fail(undefined, 'needs from: (the folder to upload, inside the repo, such as out).');
    try {
      return resolveInside(this.context.workDir, fromText, 'upload folder');
    } catch (error) {
      return this.fail('from', messageOf(error));
    }
  }

  options(kind: Kind): UploadPlan['options'] {
    const { raw } = this;
    const options: UploadPlan['options'] = {};
    if (raw.delete !== undefined) {
      if (typeof raw.delete !== 'boolean') this.fail('delete', 'must be true or false.');
      options.delete = raw.delete as boolean;
    }
    if (raw.port !== undefined) {
      if (!Number.isInteger(raw.port) || (raw.port as number) < 1 || (raw.port as number) > 65535)
        this.fail('port', 'must be a port number (1-65535).');
      options.port = raw.port as number;
    }
    if (raw.concurrency !== undefined) {
      if (!Number.isInteger(raw.concurrency) || (raw.concurrency as number) < 1 || (raw.concurrency as number) > 64)
        this.fail('concurrency', 'must be a whole number from 1 to 64.');
      options.concurrency = raw.concurrency as number;
    }
    const cacheControl = this.str('cache_control');
    if (cacheControl !== undefined) {
      if (/[\r\n]/.test(cacheControl)) this.fail('cache_control', 'must be one line.');
      options.cacheControl = cacheControl;
    }
    const sshKey = this.localPath('ssh_key');
    if (sshKey) options.sshKey = sshKey;
    const knownHosts = this.localPath('known_hosts');
    if (knownHosts) options.knownHosts = knownHosts;
    if (kind === 'git' && raw.git && typeof raw.git === 'object') {
      const message = (raw.git as Record<string, unknown>).message;
      if (message !== undefined) options.message = this.str('git.message', message);
    }
    return options;
  }
}

/** Validate one `upload:` entry into a plan. Throws ConfigError naming FILE:LINE and the key. */
export function planUpload(entry: UploadEntry, context: PlanContext): UploadPlan {
  const reader = new EntryReader(entry, context);
  const kind = reader.kind();
  const target = reader.target(kind);
  const from = reader.from();
  return { target, from, options: reader.options(kind), keyPath: entry.keyPath };
}

/** The source folder must be a real folder inside the work folder (not a link out of it). */
async function checkPlanSource(plan: UploadPlan, workDir: string): Promise<void> {
  await checkSourceFolder(plan.from);
  const [realWork, realFrom] = await Promise.all([fs.realpath(workDir), fs.realpath(plan.from)]);
  if (!isInside(realWork, realFrom) || realWork === realFrom) {
    throw new ValidationError(
      `The upload folder ${plan.from} resolves to ${realFrom}, outside ${workDir}; it must not be a symbolic link out of the repository.`,
    );
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
  const plans = opts.entries.map((entry) =>
    planUpload(entry, { workDir: opts.workDir, doc: opts.doc, configFile: opts.configFile ?? opts.doc?.file }),
  );
  if (plans.length === 0) opts.log.info('upload: no upload targets configured');
  const results: UploadResult[] = [];
  for (const [i, plan] of plans.entries()) {
    const name = targetName(plan.target);
    try {
      await checkPlanSource(plan, opts.workDir);
      results.push(
        await uploadTo(plan.target, {
          ...plan.options,
          from: plan.from,
          log: opts.log,
          sourceSha: opts.sourceSha,
          dryRun: opts.dryRun || plan.options.dryRun,
        }),
      );
    } catch (error) {
      const rest = plans.length - i - 1;
      opts.log.error(
        `upload ${i + 1}/${plans.length} to ${name} failed${rest ? `; ${rest} later target(s) not attempted` : ''}`,
      );
      throw error;
    }
  }
  return results;
}

/** The build pipeline's `upload` step: the repo's configured targets, in order. */
export async function runUploadStage(opts: StageOptions): Promise<void> {
  await uploadEntries(opts);
}
