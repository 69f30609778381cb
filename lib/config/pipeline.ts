// The `publish:` and `rollout:` blocks of a repo in shipkit.yml (DESIGN §5): the pipeline after
// the build. Checked when the config is read, so a mistake is a configuration error (exit 2,
// FILE:LINE) before any build runs; the key and the slave list are checked by build before it
// starts (lib/build/pipeline.ts checkPipelineConfig).
import path from 'node:path';
import { checkKnownKeys, configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { messageOf } from '../core/errors.ts';
import { nameProblem, resolveInside } from '../core/names.ts';
import { parseWaves } from '../fleet/rollout.ts';

export interface PublishConfig {
  /** Folder inside the repo's work tree, relative (no `..`). */
  from: string;
  name: string;
  platform: string;
  /** Path of the armored secret key file (`file:PATH` or a path, relative to the config file). */
  key: string;
  passphraseFile?: string;
  /** A local folder (absolute), `s3://bucket/prefix` or `user@host:path`. */
  to: string;
  keep: number;
  codename?: string;
  expiresDays?: number;
  keyPath: KeyPath;
}

export interface RolloutConfig {
  list: string;
  /** Unresolved `env:`/`file:`/literal secret; undefined only with `insecure: true`. */
  secret?: string;
  /** The name sent as `?repo=`: `name:`, else publish's app name, else the repo's short name. */
  name: string;
  canary: number;
  shares: number[];
  maxFailures: number;
  concurrency: number;
  timeoutSec: number;
  retries: number;
  keyPath: KeyPath;
}

const PUBLISH_KEYS = ['from', 'name', 'platform', 'key', 'passphrase', 'to', 'keep', 'codename', 'expires'] as const;
const ROLLOUT_KEYS = ['list', 'secret', 'insecure', 'name', 'canary', 'waves', 'max_failures', 'concurrency', 'timeout', 'retries'] as const;

/** `file:PATH` or a plain path → an absolute path; `env:` and literal secrets are not files. */
function filePath(doc: ConfigDoc, keyPath: KeyPath, value: string): string {
  if (value.startsWith('env:')) throw configError(doc, keyPath, 'must name a file (file:/etc/shipkit/release-key.asc); a key or passphrase in the environment is not supported here.');
  const file = value.startsWith('file:') ? value.slice(5) : value;
  if (!file) throw configError(doc, keyPath, 'is empty; give file:PATH.');
  return path.resolve(path.dirname(doc.file), file);
}

function wholeNumber(doc: ConfigDoc, keyPath: KeyPath, fallback: number, min: number, max: number): number {
  const value = getKey(doc, keyPath, 'number') ?? fallback;
  if (!Number.isInteger(value) || value < min || value > max) throw configError(doc, keyPath, `must be a whole number from ${min} to ${max}.`);
  return value;
}

function plainName(doc: ConfigDoc, keyPath: KeyPath, what: string): string {
  const value = getKey(doc, keyPath, 'string', { required: true })!;
  const problem = nameProblem(value);
  if (problem) throw configError(doc, keyPath, `is not a valid ${what}: it ${problem}.`);
  return value;
}

export function parsePublishConfig(doc: ConfigDoc, repoKeyPath: KeyPath): PublishConfig | undefined {
  const keyPath = [...repoKeyPath, 'publish'];
  if (getKey(doc, keyPath, 'object') === undefined) return undefined;
  checkKnownKeys(doc, keyPath, PUBLISH_KEYS);
  const from = getKey(doc, [...keyPath, 'from'], 'string', { required: true })!;
  try {
    resolveInside('/work', from, 'folder');
  } catch (error) {
    throw configError(doc, [...keyPath, 'from'], `must be a folder inside the repository such as dist (${messageOf(error)})`);
  }
  const to = getKey(doc, [...keyPath, 'to'], 'string', { required: true })!;
  const remote = /^s3:\/\//.test(to) || /^[^/\s:]+@[^/\s:]+:/.test(to);
  const passphrase = getKey(doc, [...keyPath, 'passphrase'], 'string');
  const codename = getKey(doc, [...keyPath, 'codename'], 'string');
  if (codename !== undefined && nameProblem(codename)) throw configError(doc, [...keyPath, 'codename'], `is not a valid codename: it ${nameProblem(codename)}.`);
  return {
    from: path.normalize(from),
    name: plainName(doc, [...keyPath, 'name'], 'app name'),
    platform: plainName(doc, [...keyPath, 'platform'], 'platform'),
    key: filePath(doc, [...keyPath, 'key'], getKey(doc, [...keyPath, 'key'], 'string', { required: true })!),
    passphraseFile: passphrase === undefined ? undefined : filePath(doc, [...keyPath, 'passphrase'], passphrase),
    to: remote ? to : path.resolve(path.dirname(doc.file), to),
    keep: wholeNumber(doc, [...keyPath, 'keep'], 5, 1, 10_000),
    codename,
    expiresDays: getKey(doc, [...keyPath, 'expires'], 'number') === undefined ? undefined : wholeNumber(doc, [...keyPath, 'expires'], 30, 0, 36_500),
    keyPath,
  };
}

export function parseRolloutConfig(doc: ConfigDoc, repoKeyPath: KeyPath, repoName: string, publish: PublishConfig | undefined): RolloutConfig | undefined {
  const keyPath = [...repoKeyPath, 'rollout'];
  if (getKey(doc, keyPath, 'object') === undefined) return undefined;
  checkKnownKeys(doc, keyPath, ROLLOUT_KEYS);
  const list = getKey(doc, [...keyPath, 'list'], 'string', { required: true })!;
  const secret = getKey(doc, [...keyPath, 'secret'], 'string');
  const insecure = getKey(doc, [...keyPath, 'insecure'], 'boolean') ?? false;
  if (!secret && !insecure) throw configError(doc, keyPath, 'needs secret: (env:NAME or file:PATH, the fleet\'s shared secret), or insecure: true to send unsigned requests.');
  const rawWaves = valueOrDefault(doc, [...keyPath, 'waves']);
  let shares: number[];
  try {
    shares = parseWaves(rawWaves.join(','));
  } catch (error) {
    throw configError(doc, [...keyPath, 'waves'], messageOf(error).replace(/^--waves:? ?/, ''));
  }
  const name = getKey(doc, [...keyPath, 'name'], 'string') ?? publish?.name ?? repoName.split('/').pop()!;
  const problem = nameProblem(name);
  if (problem) throw configError(doc, [...keyPath, 'name'], `is not a valid app or repository name: it ${problem}.`);
  return {
    list: path.resolve(path.dirname(doc.file), list),
    secret,
    name,
    canary: wholeNumber(doc, [...keyPath, 'canary'], 0, 0, 100_000),
    shares,
    maxFailures: wholeNumber(doc, [...keyPath, 'max_failures'], 0, 0, 100_000),
    concurrency: wholeNumber(doc, [...keyPath, 'concurrency'], 32, 1, 10_000),
    timeoutSec: wholeNumber(doc, [...keyPath, 'timeout'], 600, 1, 86_400),
    retries: wholeNumber(doc, [...keyPath, 'retries'], 2, 0, 10),
    keyPath,
  };
}

/** `waves: [25%, 100%]` (a list) or `waves: 25%,100%` (one string); default [100%]. */
function valueOrDefault(doc: ConfigDoc, keyPath: KeyPath): string[] {
  const raw = getKey(doc, keyPath.slice(0, -1), 'object')?.waves;
  if (raw === undefined || raw === null) return ['100%'];
  if (typeof raw === 'string') return raw.split(',');
  if (Array.isArray(raw) && raw.length && raw.every((w) => typeof w === 'string' || typeof w === 'number')) return raw.map((w) => (typeof w === 'number' ? `${w}%` : w));
  throw configError(doc, keyPath, 'must be a list of growing shares ending at 100%, such as [25%, 100%].');
}
