// The `publish:` and `rollout:` blocks of a repo in shipkit.yml (docs/hook-server.md): the pipeline after
// the build. Checked when the config is read, so a mistake is a configuration error (exit 2,
// FILE:LINE) before any build runs; the key and the slave list are checked by build before it
// starts (lib/pipeline/publish-and-rollout.ts checkPipelineConfig).
import path from 'node:path';
import { checkKnownKeys, configError, getKey, wholeNumber, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { messageOf } from '../core/errors.ts';
import { nameProblem, resolveInside } from '../core/names.ts';
import { parseWaves } from '../fleet/rollout.ts';
import { parseAllowance, parseSteps, type Allowance } from '../release/rollout/plan.ts';
import { checkPattern } from '../release/publish/pack-filter.ts';
import type { FleetApp } from './fleet.ts';

export interface PublishConfig {
  /** Folder inside the repo's work tree, relative (no `..`). */
  from: string;
  name: string;
  platform: string;
  /** Path of the armored secret key file (`file:PATH` or a path, relative to the config file). */
  key: string;
  passphraseFile?: string;
  /** A local folder (absolute), `s3://bucket/prefix` or `user@host:path`; else the environment's. */
  to: string;
  /** The environment of `apps:` this repo's branch publishes to, if one maps it. */
  environment?: string;
  keep: number;
  codename?: string;
  expiresDays?: number;
  /** Left out of the tarball besides .git (`release publish --exclude`). */
  exclude?: string[];
  /** Put back although .git or `exclude` names it (`--include`). */
  include?: string[];
  keyPath: KeyPath;
}

/** `rollout:` is push (server-update's waves, the default) or pull (`release rollout`, docs/fleet.md). */
export type RolloutConfig = PushRolloutConfig | PullRolloutConfig;

export interface PushRolloutConfig {
  mode: 'push';
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

/** `mode: pull`: the publish step writes ROLLOUT = the first step; the rollout step raises it. */
export interface PullRolloutConfig {
  mode: 'pull';
  /** The app (publish's name); its secret is `fleet: NAME: secret:`. */
  name: string;
  /** Unresolved fleet secret of the app (from `fleet:`). */
  secret: string;
  /** hook-server as the build reaches it: `fleet_url:`, else public_url, else http://listen. */
  fleetUrl?: string;
  steps: number[];
  waitSec: number;
  maxFailures: Allowance;
  allowMissing: Allowance;
  rollback: boolean;
  keyPath: KeyPath;
}

const PUBLISH_KEYS = [
  'from',
  'name',
  'platform',
  'key',
  'passphrase',
  'to',
  'keep',
  'codename',
  'expires',
  'exclude',
  'include',
] as const;
/**
 * Hosts a push rollout tells at once. 32 (server-update's default) made a wave of 150 hosts five
 * rounds of the slowest answer each (bench:pipeline: +680 ms for 100 ms answers); 256 tells a wave
 * of up to 256 in one round and stays well under the usual 1,024 open files.
 */
export const ROLLOUT_CONCURRENCY = 256;
const ROLLOUT_KEYS = [
  'mode',
  'list',
  'secret',
  'insecure',
  'name',
  'canary',
  'waves',
  'max_failures',
  'concurrency',
  'timeout',
  'retries',
] as const;
const PULL_ROLLOUT_KEYS = ['mode', 'steps', 'wait', 'max_failures', 'allow_missing', 'rollback', 'fleet_url'] as const;

/** `file:PATH` or a plain path → an absolute path; `env:` and literal secrets are not files. */
export function filePath(doc: ConfigDoc, keyPath: KeyPath, value: string): string {
  if (value.startsWith('env:'))
    throw configError(
      doc,
      keyPath,
      'must name a file (file:/etc/shipkit/release-key.asc); a key or passphrase in the environment is not supported here.',
    );
  const file = value.startsWith('file:') ? value.slice(5) : value;
  if (!file) throw configError(doc, keyPath, 'is empty; give file:PATH.');
  return path.resolve(path.dirname(doc.file), file);
}

function plainName(doc: ConfigDoc, keyPath: KeyPath, what: string): string {
  const value = getKey(doc, keyPath, 'string', { required: true })!;
  const problem = nameProblem(value);
  if (problem) throw configError(doc, keyPath, `is not a valid ${what}: it ${problem}.`);
  return value;
}

/** `exclude:` or `include:`: a list of names or paths from `from:`, checked as `release publish` checks them. */
function packPatterns(doc: ConfigDoc, keyPath: KeyPath): string[] | undefined {
  const patterns = getKey(doc, keyPath, 'string[]');
  for (const pattern of patterns ?? []) {
    try {
      checkPattern(pattern, keyPath[keyPath.length - 1] as string);
    } catch (error) {
      throw configError(doc, keyPath, messageOf(error));
    }
  }
  return patterns;
}

export function parsePublishConfig(doc: ConfigDoc, repoKeyPath: KeyPath): PublishConfig | undefined {
  const keyPath = [...repoKeyPath, 'publish'];
  if (getKey(doc, keyPath, 'object') === undefined) return undefined;
  checkKnownKeys(doc, keyPath, PUBLISH_KEYS);
  const from = getKey(doc, [...keyPath, 'from'], 'string', { required: true })!;
  try {
    // `.` is the whole repository: what release publish leaves out (.git, exclude:) stays out.
    if (path.normalize(from) !== '.') resolveInside('/work', from, 'folder');
  } catch (error) {
    throw configError(
      doc,
      [...keyPath, 'from'],
      `must be a folder inside the repository such as dist (${messageOf(error)})`,
    );
  }
  // Absent: the environment of `apps:` whose branches: hold the repo's branch gives it (environments.ts).
  const to = getKey(doc, [...keyPath, 'to'], 'string') ?? '';
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(to)?.[1]?.toLowerCase();
  if (scheme && scheme !== 's3')
    throw configError(
      doc,
      [...keyPath, 'to'],
      `is a URL: give a folder, user@host:path or s3://bucket/prefix, where the files are written ` +
        `(http(s) URLs are what launchfit reads from).`,
    );
  const remote = !to || /^s3:\/\//.test(to) || /^[^/\s:]+@[^/\s:]+:/.test(to);
  const passphrase = getKey(doc, [...keyPath, 'passphrase'], 'string');
  const codename = getKey(doc, [...keyPath, 'codename'], 'string');
  if (codename !== undefined && nameProblem(codename))
    throw configError(doc, [...keyPath, 'codename'], `is not a valid codename: it ${nameProblem(codename)}.`);
  return {
    from: path.normalize(from),
    name: plainName(doc, [...keyPath, 'name'], 'app name'),
    platform: plainName(doc, [...keyPath, 'platform'], 'platform'),
    key: filePath(doc, [...keyPath, 'key'], getKey(doc, [...keyPath, 'key'], 'string', { required: true })!),
    passphraseFile: passphrase === undefined ? undefined : filePath(doc, [...keyPath, 'passphrase'], passphrase),
    to: remote ? to : path.resolve(path.dirname(doc.file), to),
    keep: wholeNumber(doc, [...keyPath, 'keep'], 5, 1, 10_000),
    codename,
    expiresDays:
      getKey(doc, [...keyPath, 'expires'], 'number') === undefined
        ? undefined
        : wholeNumber(doc, [...keyPath, 'expires'], 30, 0, 36_500),
    exclude: packPatterns(doc, [...keyPath, 'exclude']),
    include: packPatterns(doc, [...keyPath, 'include']),
    keyPath,
  };
}

export function parseRolloutConfig(
  doc: ConfigDoc,
  repoKeyPath: KeyPath,
  repoName: string,
  publish: PublishConfig | undefined,
  fleet: Map<string, FleetApp> = new Map(),
): RolloutConfig | undefined {
  const keyPath = [...repoKeyPath, 'rollout'];
  if (getKey(doc, keyPath, 'object') === undefined) return undefined;
  const mode = getKey(doc, [...keyPath, 'mode'], 'string') ?? 'push';
  if (mode === 'pull') return parsePullRollout(doc, keyPath, publish, fleet);
  if (mode !== 'push')
    throw configError(
      doc,
      [...keyPath, 'mode'],
      `must be push (server-update's waves) or pull (release rollout by percent), got ${JSON.stringify(mode.slice(0, 30))}.`,
    );
  checkKnownKeys(doc, keyPath, ROLLOUT_KEYS);
  const list = getKey(doc, [...keyPath, 'list'], 'string', { required: true })!;
  const secret = getKey(doc, [...keyPath, 'secret'], 'string');
  const insecure = getKey(doc, [...keyPath, 'insecure'], 'boolean') ?? false;
  if (!secret && !insecure)
    throw configError(
      doc,
      keyPath,
      "needs secret: (env:NAME or file:PATH, the fleet's shared secret), or insecure: true to send unsigned requests.",
    );
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
    mode: 'push',
    list: path.resolve(path.dirname(doc.file), list),
    secret,
    name,
    canary: wholeNumber(doc, [...keyPath, 'canary'], 0, 0, 100_000),
    shares,
    maxFailures: wholeNumber(doc, [...keyPath, 'max_failures'], 0, 0, 100_000),
    // Every host of a wave at once (up to 256): each is told, then waited for, in one round.
    concurrency: wholeNumber(doc, [...keyPath, 'concurrency'], ROLLOUT_CONCURRENCY, 1, 10_000),
    timeoutSec: wholeNumber(doc, [...keyPath, 'timeout'], 600, 1, 86_400),
    retries: wholeNumber(doc, [...keyPath, 'retries'], 2, 0, 10),
    keyPath,
  };
}

function parsePullRollout(
  doc: ConfigDoc,
  keyPath: KeyPath,
  publish: PublishConfig | undefined,
  fleet: Map<string, FleetApp>,
): PullRolloutConfig {
  checkKnownKeys(doc, keyPath, PULL_ROLLOUT_KEYS);
  if (!publish)
    throw configError(
      doc,
      [...keyPath, 'mode'],
      'pull needs a publish: block: it rolls out the release the publish step writes.',
    );
  const app = fleet.get(publish.name);
  if (!app)
    throw configError(
      doc,
      [...keyPath, 'mode'],
      `pull needs fleet: ${publish.name}: secret: (env:NAME or file:PATH) at the top level: hosts report ` +
        `with it and the rollout reads their reports with it.`,
    );
  const fleetUrl = getKey(doc, [...keyPath, 'fleet_url'], 'string');
  if (fleetUrl !== undefined && !/^https?:\/\/[^\s/]+/.test(fleetUrl))
    throw configError(
      doc,
      [...keyPath, 'fleet_url'],
      "must be hook-server's http(s) URL as builds reach it, such as http://127.0.0.1:9000.",
    );
  return {
    mode: 'pull',
    name: publish.name,
    secret: app.secrets[0],
    fleetUrl: fleetUrl?.replace(/\/+$/, ''),
    ...parseStepRules(doc, keyPath),
    keyPath,
  };
}

/** How a percentage rollout moves: steps, wait, max_failures, allow_missing, rollback (a pull `rollout:` or an environment's). */
export type StepRules = Pick<PullRolloutConfig, 'steps' | 'waitSec' | 'maxFailures' | 'allowMissing' | 'rollback'>;

export function parseStepRules(doc: ConfigDoc, keyPath: KeyPath): StepRules {
  const wait = getKey(doc, [...keyPath, 'wait'], 'number') ?? 600;
  if (!(wait > 0 && wait <= 7 * 86_400))
    throw configError(doc, [...keyPath, 'wait'], 'must be a number of seconds above 0, at most 604800 (a week).');
  const text = (key: string, fallback: string): string => {
    const raw = getKey(doc, keyPath, 'object')?.[key];
    if (raw === undefined || raw === null) return fallback;
    if (Array.isArray(raw) && raw.every((x) => typeof x === 'number' || typeof x === 'string')) return raw.join(',');
    if (typeof raw === 'number' || typeof raw === 'string') return String(raw);
    throw configError(doc, [...keyPath, key], 'must be a number, a percent, or (steps) a list of percents.');
  };
  const rule = <T>(key: string, parse: () => T): T => {
    try {
      return parse();
    } catch (error) {
      throw configError(doc, [...keyPath, key], messageOf(error).replace(/^Invalid /, 'invalid '));
    }
  };
  return {
    steps: rule('steps', () => parseSteps(text('steps', '1,10,50,100').replace(/%/g, ''), 'steps')),
    waitSec: wait,
    maxFailures: rule('max_failures', () => parseAllowance(text('max_failures', '0'), 'max_failures')),
    allowMissing: rule('allow_missing', () => parseAllowance(text('allow_missing', '0'), 'allow_missing')),
    rollback: getKey(doc, [...keyPath, 'rollback'], 'boolean') ?? true,
  };
}

/** `waves: [25%, 100%]` (a list) or `waves: 25%,100%` (one string); default [100%]. */
function valueOrDefault(doc: ConfigDoc, keyPath: KeyPath): string[] {
  const raw = getKey(doc, keyPath.slice(0, -1), 'object')?.waves;
  if (raw === undefined || raw === null) return ['100%'];
  if (typeof raw === 'string') return raw.split(',');
  if (Array.isArray(raw) && raw.length && raw.every((w) => typeof w === 'string' || typeof w === 'number'))
    return raw.map((w) => (typeof w === 'number' ? `${w}%` : w));
  throw configError(doc, keyPath, 'must be a list of growing shares ending at 100%, such as [25%, 100%].');
}
