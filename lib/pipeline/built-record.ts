// The record of a repo's last whole, successful build, DATA/state/REPO/built.json: what it built
// (the commit and its tree) and with what (the config file's bytes, the build's environment, this
// shipkit), so that a push which changes none of them needs no build (lib/pipeline/up-to-date.ts).
// Every job removes it as it starts (any job changes the work folder); only a build that ran all
// of the repo's configured steps and succeeded writes it again.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile } from '../core/fs.ts';
import { version } from '../core/cli.ts';
import { gitQuery, type BuildContext } from './context.ts';

export interface BuiltRecord {
  /** The job that built it. */
  job: string;
  sha: string;
  tree: string;
  /** sha256 of the shipkit.yml file's bytes. */
  config: string;
  /** A salted digest of the build's environment (envDigest): the only trace of its secrets. */
  env: { salt: string; digest: string };
  /** The shipkit version that built it. */
  shipkit: string;
  at: string;
}

/** What of its process environment a build's result may depend on besides its `env:` (lib/jobs/process/runner.ts passes these). */
export interface ProcessVariables {
  PATH?: string;
  HOME?: string;
  LANG?: string;
}

export function builtFile(paths: { state: string }): string {
  return path.join(paths.state, 'built.json');
}

/** sha256 of the config file's bytes: any change to it, even a comment, counts. */
export async function configDigest(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/**
 * HMAC-SHA256 keyed with `salt` over a canonical JSON of the resolved `env:` (secrets' values
 * included) and the PATH, HOME and LANG the build process sees. The salt keeps a short secret
 * from being found by hashing guesses without it.
 */
export function envDigest(salt: string, vars: Record<string, string>, env: ProcessVariables): string {
  const sorted = Object.keys(vars)
    .sort()
    .map((name) => [name, vars[name]]);
  const canonical = JSON.stringify({
    vars: sorted,
    PATH: env.PATH ?? null,
    HOME: env.HOME ?? null,
    LANG: env.LANG ?? null,
  });
  return createHmac('sha256', salt).update(canonical).digest('hex');
}

/** Remove the record (none is fine): the work folder is about to change. */
export async function forgetBuilt(paths: { state: string }): Promise<void> {
  await unlink(builtFile(paths)).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** The commit the build checked out, its tree, and what it was built with, written atomically. */
export async function recordBuilt(
  ctx: BuildContext,
  { job, vars, env = process.env }: { job: string; vars: Record<string, string>; env?: ProcessVariables },
): Promise<BuiltRecord> {
  const sha = ctx.checkedOut;
  if (!sha) throw new Error('the pull step checked out no commit');
  const tree = await gitQuery(ctx, ['rev-parse', '--verify', '--quiet', `${sha}^{tree}`]);
  if (!tree) throw new Error(`git rev-parse cannot tell the tree of ${sha}`);
  const salt = randomBytes(16).toString('hex');
  const record: BuiltRecord = {
    job,
    sha,
    tree,
    config: await configDigest(ctx.config.file),
    env: { salt, digest: envDigest(salt, vars, env) },
    shipkit: version(),
    at: new Date().toISOString(),
  };
  await atomicWriteFile(builtFile(ctx.paths), `${JSON.stringify(record)}\n`, { mode: 0o600 });
  return record;
}

/** The record, or undefined when there is none; an error when it cannot be read or is not one. */
export async function readBuilt(paths: { state: string }): Promise<BuiltRecord | undefined> {
  let text: string;
  try {
    text = await readFile(builtFile(paths), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const record = JSON.parse(text) as BuiltRecord;
  const strings = [record?.job, record?.sha, record?.tree, record?.config, record?.shipkit, record?.env?.salt];
  if (!strings.every((value) => typeof value === 'string' && value !== '') || typeof record.env.digest !== 'string')
    throw new Error(`${builtFile(paths)} is not a build record`);
  return record;
}
