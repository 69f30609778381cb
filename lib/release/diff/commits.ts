// `release diff`'s commits: the source a release was built from (its provenance statement, whose
// digest the ledger holds), and the commits between two of them listed by `git log` in a checkout
// that has both, through zx with full commit ids only.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { $ } from '../../core/shell.ts';
import { ValidationError } from '../../core/errors.ts';
import { PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE } from '../format/provenance.ts';

export interface ReleaseSource {
  repo: string | null;
  commit: string | null;
  ref: string | null;
}

export interface Commit {
  commit: string;
  author: string;
  subject: string;
}

export interface CommitList {
  /** `git log FROM..TO`, newest first; null when it could not be listed (`note` says why). */
  commits: Commit[] | null;
  /** How many FROM..TO holds (more than `commits` when the list was cut). */
  count: number | null;
  /** Why there is no list, or that it was cut; null when all is there. */
  note: string | null;
}

/** Commits listed at most; the count says how many more there are. */
export const MAX_COMMITS = 1000;
const FULL_COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

const text = (value: unknown) => (typeof value === 'string' ? value : null);

/**
 * The source named by the first statement in an APP-PLATFORM-V.intoto.jsonl, which must be about
 * the tarball `sha256`. Throws a plain Error saying what is wrong (the caller names the file).
 */
export function sourceOfProvenance(bytes: Buffer, sha256: string): ReleaseSource {
  const line = bytes.toString('utf8').split('\n')[0] ?? '';
  let statement: Record<string, any>;
  try {
    const envelope = JSON.parse(line);
    if (envelope?.payloadType !== PAYLOAD_TYPE) throw new Error(`its payloadType is not ${PAYLOAD_TYPE}`);
    statement = JSON.parse(Buffer.from(String(envelope.payload), 'base64').toString('utf8'));
  } catch (error) {
    throw new Error(
      error instanceof SyntaxError ? 'it is not a DSSE envelope holding a JSON statement' : String(error),
    );
  }
  if (statement?._type !== STATEMENT_TYPE || statement.predicateType !== PREDICATE_TYPE)
    throw new Error(`it is not an in-toto statement with a ${PREDICATE_TYPE} predicate`);
  const subjects: unknown[] = Array.isArray(statement.subject) ? statement.subject : [];
  if (!subjects.some((s) => (s as any)?.digest?.sha256 === sha256))
    throw new Error(`it is not about the tarball with sha256 ${sha256}`);
  const source = statement.predicate?.buildDefinition?.externalParameters?.source ?? {};
  return { repo: text(source.repository), commit: text(source.commit), ref: text(source.ref) };
}

export interface CommitOptions {
  /** `--repo DIR`: the checkout to ask; else `cwd`, when it has both commits. */
  repoDir?: string;
  cwd: string;
  timeoutMs?: number;
  /** Default MAX_COMMITS. */
  maxCommits?: number;
}

/** `git log --oneline FROM..TO` in the checkout that has both commits, or why it cannot be listed. */
export async function commitsBetween(from: ReleaseSource, to: ReleaseSource, opts: CommitOptions): Promise<CommitList> {
  const none = (note: string): CommitList => ({ commits: null, count: null, note });
  for (const [which, s] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (!s.commit)
      return none(`the ${which} release names no source commit (published without --source-commit or SHIPKIT_SHA)`);
    if (!FULL_COMMIT.test(s.commit)) return none(`the ${which} release's source commit is not a full commit id`);
  }
  if (from.commit === to.commit)
    return { commits: [], count: 0, note: 'both releases were built from the same commit' };
  const dir = opts.repoDir ? path.resolve(opts.repoDir) : opts.cwd;
  if (opts.repoDir && !(await stat(dir).catch(() => undefined))?.isDirectory())
    throw new ValidationError(`--repo ${opts.repoDir} is not a folder; give a git checkout of the release's source.`);
  const git = gitIn(dir, opts.timeoutMs ?? 30_000);
  const missing = [];
  for (const c of [from.commit!, to.commit!])
    if ((await git(['cat-file', '-e', `${c}^{commit}`])).exitCode !== 0) missing.push(c);
  if (missing.length)
    return none(
      opts.repoDir
        ? `${dir} does not have commit ${missing.join(' nor ')}; fetch it there (git fetch), then run again`
        : `to list them, run it in a checkout of the source that has both commits, or pass --repo CHECKOUT`,
    );
  const range = `${from.commit}..${to.commit}`;
  const counted = await git(['rev-list', '--count', range]);
  const log = await git([
    '-c',
    'log.showSignature=false',
    'log',
    '--no-decorate',
    '--no-color',
    `--max-count=${opts.maxCommits ?? MAX_COMMITS}`,
    '--format=%H%x1f%an%x1f%s',
    range,
    '--',
  ]);
  if (counted.exitCode !== 0 || log.exitCode !== 0) return none(`git log ${range} failed in ${dir}`);
  const commits = log.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [commit, author, ...subject] = line.split('\x1f');
      return { commit, author: author ?? '', subject: subject.join('\x1f') };
    });
  const count = Number(counted.stdout.trim());
  return { commits, count, note: count > commits.length ? `${count - commits.length} older commits not listed` : null };
}

/** git in `dir`, quiet, never throwing, without the caller's GIT_DIR or a prompt. */
function gitIn(dir: string, timeoutMs: number) {
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    LANG: 'C.UTF-8',
    GIT_TERMINAL_PROMPT: '0',
  };
  return async (args: string[]) => {
    try {
      return await $({ cwd: dir, env, quiet: true, nothrow: true, timeout: timeoutMs })`git ${args}`;
    } catch {
      return { exitCode: 1, stdout: '' }; // no git, or no bash for zx
    }
  };
}
