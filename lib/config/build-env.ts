// A repo's build environment, `env:` in shipkit.yml (docs/hook-server.md): variables given to every build
// command after the pull. A value is a literal, or an `env:NAME`/`file:PATH` secret; secrets are
// masked in the job log (lib/jobs/masking.ts) and only ever passed through the environment.
import path from 'node:path';
import { configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { resolveSecret } from '../core/secrets.ts';

export interface BuildEnvEntry {
  name: string;
  /** The literal value, or the unresolved `env:NAME` / `file:PATH` reference. */
  value: string;
  secret: boolean;
  keyPath: KeyPath;
}

export interface ResolvedBuildEnv {
  vars: Record<string, string>;
  /** The values that came from `env:`/`file:`, to mask. */
  secrets: string[];
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Variables shipkit sets or relies on for every command (lib/pipeline/job.ts, the pull step's git
// authentication): a repo cannot change them.
const RESERVED = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'CI',
  'GIT_TERMINAL_PROMPT',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_ASKPASS',
  'SSH_ASKPASS',
  'GIT_CONFIG_COUNT',
  'GIT_CONFIG_PARAMETERS',
  'NPM_CONFIG_CACHE',
  'NPM_CONFIG_UPDATE_NOTIFIER',
]);

/** Why `name` cannot be a build variable, or undefined when it can. */
export function buildVariableProblem(name: string): string | undefined {
  if (!VARIABLE_NAME.test(name))
    return 'is not a valid variable name (letters, digits and _, not starting with a digit)';
  const upper = name.toUpperCase();
  if (RESERVED.has(upper) || upper.startsWith('SHIPKIT_') || /^GIT_CONFIG_(KEY|VALUE)_/.test(upper))
    return 'is set by shipkit for every build and cannot be overridden';
  return undefined;
}

/** The repo's `env:` block, checked: names, and values that are strings, numbers or booleans. */
export function parseBuildEnv(doc: ConfigDoc, repoKeyPath: KeyPath): BuildEnvEntry[] {
  const keyPath = [...repoKeyPath, 'env'];
  const block = getKey(doc, keyPath, 'object');
  if (!block) return [];
  return Object.entries(block).map(([name, raw]) => {
    const entryPath = [...keyPath, name];
    const problem = buildVariableProblem(name);
    if (problem) throw configError(doc, entryPath, `${problem}; choose another name.`);
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      throw configError(
        doc,
        entryPath,
        'must be a string, a number or true/false (a secret as env:NAME or file:PATH).',
      );
    }
    const value = String(raw);
    const secret = typeof raw === 'string' && (value.startsWith('env:') || value.startsWith('file:'));
    if (secret && value.length <= value.indexOf(':') + 1)
      throw configError(doc, entryPath, `is ${value} with nothing after it; give env:NAME or file:PATH.`);
    if (value.includes('\0'))
      throw configError(doc, entryPath, 'holds a NUL character, which no environment variable can.');
    return { name, value, secret, keyPath: entryPath };
  });
}

/**
 * The variables a repo's secrets read, its `env:` entries' and its `token:`'s `env:NAME`: only
 * that repo's build is given them, and no build sees them under their own name.
 */
export function secretEnvNames(repo: { env?: readonly BuildEnvEntry[]; gitToken?: { token: string } }): string[] {
  const refs = [...(repo.env ?? []).filter((e) => e.secret).map((e) => e.value), repo.gitToken?.token];
  return refs.filter((ref): ref is string => ref?.startsWith('env:') === true).map((ref) => ref.slice(4));
}

/** Reads the secrets (a ConfigError naming FILE:LINE when one cannot be read). */
export async function resolveBuildEnv(
  doc: ConfigDoc,
  entries: readonly BuildEnvEntry[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedBuildEnv> {
  const vars: Record<string, string> = {};
  const secrets: string[] = [];
  for (const entry of entries) {
    if (!entry.secret) {
      vars[entry.name] = entry.value;
      continue;
    }
    const value = await resolveSecret(entry.value, {
      env,
      baseDir: path.dirname(doc.file),
      where: `${doc.locate(entry.keyPath)}: env.${entry.name}`,
    });
    vars[entry.name] = value;
    secrets.push(value);
  }
  return { vars, secrets };
}
