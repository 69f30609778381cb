// The compiling server's config, shipkit.yml (docs/hook-server.md).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  checkKnownKeys,
  configError,
  getKey,
  loadYamlFile,
  type ConfigDoc,
  type KeyPath,
  valueAt,
} from '../core/yaml-config.ts';
import { ConfigError } from '../core/errors.ts';
import { repoFolderName, repoNameProblem, validateFullName } from '../core/names.ts';
import { parseBuildEnv, type BuildEnvEntry } from './build-env.ts';
import { parseFleetConfig, type FleetApp } from './fleet.ts';
import { exampleConfigHint } from './example-config.ts';
import { parseNotifyList, type NotifyTarget } from './notify.ts';
import { parseSecretList, type SecretRef } from './webhook-secret.ts';
import { parseRepoReport, parseTopReport, REPORT_KEYS, type ReportConfig } from './report.ts';
import { parseGitAuth, type GitAuthConfig } from './git-auth.ts';
import { parseCacheConfig, type RepoCache } from './cache.ts';
import { parseNodeConfig, type NodeRequest } from './node-version.ts';
import { parseGitToken, type GitTokenConfig } from './git-token.ts';
import {
  filePath,
  parsePublishConfig,
  parseRolloutConfig,
  type PublishConfig,
  type RolloutConfig,
} from './pipeline.ts';
import { parsePreviews, type PreviewsConfig } from './previews.ts';
import { parseApps, publishToEnvironment, type AppConfig } from './environments.ts';
import type { UploadEntry } from '../stages/upload/index.ts';

// publish and rollout run only when the repo has a `publish:` / `rollout:` block.
export const STEPS = ['pull', 'downloads', 'install', 'compile', 'upload', 'publish', 'rollout'] as const;
export type Step = (typeof STEPS)[number];

export interface RepoConfig {
  /** `owner/name` as configured (the key under `repos:`). */
  name: string;
  url?: string;
  branch: string;
  user?: string;
  steps: Step[];
  compile?: string;
  timeout: number;
  upload: UploadEntry[];
  release: string;
  /** The pipeline after the build (lib/config/pipeline.ts). */
  publish?: PublishConfig;
  rollout?: RolloutConfig;
  /** Webhook secret for this repo (unresolved `env:`/`file:`/literal; a list during a change-over); else the top-level one. */
  secret?: SecretRef[];
  /** `env:`: variables for every build command after the pull (lib/config/build-env.ts). */
  env: BuildEnvEntry[];
  /** This repo's own notifications (they replace the top-level list); undefined = the top level's. */
  notify?: NotifyTarget[];
  /** Commit statuses (`report:` here or at the top level; lib/config/report.ts); undefined = none. */
  report?: ReportConfig;
  /** `ssh_key:` and `known_hosts:` for the pull step's git (lib/pipeline/git-auth.ts). */
  gitAuth: GitAuthConfig;
  /** `cache:`: paths kept across `git clean` besides node_modules and downloads, or false (lib/pipeline/cache.ts). */
  cache: RepoCache;
  /** `node:`: the Node version the build runs with (lib/pipeline/node-toolchain.ts); else the repo's own files say. */
  node?: NodeRequest;
  /** `token:` (and `token_user:`) for the pull step's git over https (lib/pipeline/git-token.ts). */
  gitToken?: GitTokenConfig;
  /** `skip_unchanged:` (default true): a push whose tree, config and env were built already is not built again (lib/pipeline/up-to-date.ts). */
  skipUnchanged: boolean;
  /** `previews:`: a preview per pull request (lib/config/previews.ts); undefined = none. */
  previews?: PreviewsConfig;
  keyPath: KeyPath;
}

export interface ShipkitConfig {
  file: string;
  doc: ConfigDoc;
  listen: string;
  data: string;
  /** The webhook secret (unresolved; a list during a change-over, the current one first). */
  secret?: SecretRef[];
  token?: string;
  concurrency: number;
  /**
   * `workers:` (docs/hook-server.md): processes taking hook-server's deliveries, `auto` (one per
   * core, lib/server/workers.ts) or a number; absent = 1, hook-server alone.
   */
  workers: number | 'auto';
  /** hook-server's body cap in bytes (`max_body`); undefined = its 25 MB default. */
  maxBody?: number;
  /** Status page and badges: `token` (default), `public` (states and badges, never logs), `off`. */
  ui: UiMode;
  /** `ui_users:` (docs/hook-server.md): the file of named status-page users (NAME:HASH lines), absolute. */
  uiUsers?: string;
  /** `ui_key:`: hook-server's armored secret key that signs approvals given on the status page, absolute. */
  uiKey?: string;
  /** Where hook-server is reached from outside (no trailing slash), for links in statuses and notifications. */
  publicUrl?: string;
  /** Top-level notifications, for every repo without its own `notify:`. */
  notify: NotifyTarget[];
  /**
   * `queue:` (docs/workers.md): the PostgreSQL URL, or env:NAME / file:PATH holding it, unresolved;
   * or a list of them, a primary and its standbys (docs/ha.md); absent = the local journal.
   */
  queue?: string | string[];
  /** `fleet:` (docs/fleet.md): per app, the secret its hosts' reports and `release rollout` are signed with. */
  fleet: Map<string, FleetApp>;
  /** `audit:` (docs/audit.md): `keep_days` cuts older entries of the audit trail, recorded; absent = kept forever. */
  audit?: { keepDays?: number };
  /** `apps:` (docs/environments.md): per app its release key and environments. */
  apps: Map<string, AppConfig>;
  repos: Map<string, RepoConfig>;
}

export const UI_MODES = ['token', 'public', 'off'] as const;
export type UiMode = (typeof UI_MODES)[number];

const TOP_KEYS = [
  'listen',
  'data',
  'secret',
  'token',
  'concurrency',
  'workers',
  'repos',
  'max_body',
  'logs',
  'ui',
  'ui_users',
  'ui_key',
  'public_url',
  'notify',
  'queue',
  'fleet',
  'audit',
  'apps',
  ...REPORT_KEYS,
] as const;
const REPO_KEYS = [
  'url',
  'branch',
  'user',
  'steps',
  'compile',
  'timeout',
  'upload',
  'release',
  'secret',
  'publish',
  'rollout',
  'env',
  'ssh_key',
  'known_hosts',
  'token',
  'token_user',
  'notify',
  'cache',
  'node',
  'skip_unchanged',
  'previews',
  ...REPORT_KEYS,
] as const;
export const DEFAULTS = {
  listen: '127.0.0.1:9000',
  data: '/var/lib/shipkit',
  concurrency: 1,
  branch: 'main',
  timeout: 900,
  release: 'release.sh',
};

/** `--config`, else $SHIPKIT_CONFIG, else ./shipkit.yml, else ./.shipkit/shipkit.yml (hook-server's first start), else /etc/shipkit/shipkit.yml. */
export const SYSTEM_CONFIG_FILE = '/etc/shipkit/shipkit.yml';

/** The config search of docs/hook-server.md; `systemFile` is a parameter so tests do not see this machine's /etc. */
export function findConfigFile(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
  systemFile = SYSTEM_CONFIG_FILE,
): string {
  if (flag) return configFileAt(path.resolve(cwd, flag), `--config ${flag}`);
  if (env.SHIPKIT_CONFIG)
    return configFileAt(path.resolve(cwd, env.SHIPKIT_CONFIG), `SHIPKIT_CONFIG=${env.SHIPKIT_CONFIG}`);
  const local = path.resolve(cwd, 'shipkit.yml');
  if (existsSync(local)) return local;
  const firstRun = path.resolve(cwd, '.shipkit', 'shipkit.yml');
  if (existsSync(firstRun)) return firstRun;
  if (existsSync(systemFile)) return systemFile;
  throw new ConfigError(
    `No config file: pass --config FILE, set SHIPKIT_CONFIG, or create ./shipkit.yml (${exampleConfigHint()}).`,
  );
}

/** The config file a person named; a folder is refused in words (reading it would say EISDIR). */
function configFileAt(file: string, named: string): string {
  let folder = false;
  try {
    folder = statSync(file).isDirectory();
  } catch {
    // Missing or unreadable: loading it says so.
  }
  if (!folder) return file;
  const inside = path.join(file, 'shipkit.yml');
  throw new ConfigError(
    `${named} is a folder; give the shipkit.yml file inside it${existsSync(inside) ? ` (${inside})` : ''}.`,
  );
}

export async function loadShipkitConfig(file: string): Promise<ShipkitConfig> {
  const doc = await loadYamlFile(file);
  return parseShipkitConfig(doc);
}

const MAX_QUEUE_SERVERS = 8;

/**
 * `queue:`: one URL (or env:/file:), or a list of them, a primary and its standbys. A literal URL
 * is checked here, where its line is known; one behind env:/file: when it is read.
 */
function parseQueue(doc: ConfigDoc): string | string[] | undefined {
  const value = valueAt(doc.data, ['queue']);
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) return getKey(doc, ['queue'], 'string');
  if (value.length === 0 || value.length > MAX_QUEUE_SERVERS)
    throw configError(
      doc,
      ['queue'],
      `must list 1 to ${MAX_QUEUE_SERVERS} PostgreSQL URLs: a primary and its standbys.`,
    );
  value.forEach((entry, i) => {
    if (typeof entry !== 'string' || entry === '')
      throw configError(doc, ['queue', i], 'must be a PostgreSQL URL, env:NAME or file:PATH.');
    if (!/^(env|file):/.test(entry) && !/^postgres(ql)?:\/\/[^\s]+$/.test(entry))
      throw configError(doc, ['queue', i], 'is not a PostgreSQL URL; use postgres://USER@HOST[:PORT]/DATABASE.');
    if (value.indexOf(entry) !== i)
      throw configError(doc, ['queue', i], `is listed already (entry ${value.indexOf(entry)}); list each server once.`);
  });
  return value as string[];
}

export function parseShipkitConfig(doc: ConfigDoc): ShipkitConfig {
  if (doc.data === null || typeof doc.data !== 'object' || Array.isArray(doc.data)) {
    throw configError(doc, [], 'the file must be a mapping of keys (listen, data, repos, ...).');
  }
  checkKnownKeys(doc, [], TOP_KEYS);
  const dataDir = getKey(doc, ['data'], 'string') ?? DEFAULTS.data;
  const concurrency = getKey(doc, ['concurrency'], 'number') ?? DEFAULTS.concurrency;
  const queue = parseQueue(doc);
  // With a shared queue, hook-server may leave every build to workers (docs/workers.md).
  const least = queue === undefined ? 1 : 0;
  if (!Number.isInteger(concurrency) || concurrency < least)
    throw configError(
      doc,
      ['concurrency'],
      `must be a whole number of at least ${least}${least ? ' (0 only with queue:)' : ''}.`,
    );
  const maxBody = getKey(doc, ['max_body'], 'number');
  if (maxBody !== undefined && (!Number.isInteger(maxBody) || maxBody < 1024))
    throw configError(doc, ['max_body'], 'must be a whole number of bytes, at least 1024.');
  const reposValue = getKey(doc, ['repos'], 'object') ?? {};
  const topReport = parseTopReport(doc);
  const fleet = parseFleetConfig(doc);
  const repos = new Map<string, RepoConfig>();
  for (const name of Object.keys(reposValue)) repos.set(name, parseRepo(doc, name, topReport, fleet));
  const apps = parseApps(doc, fleet);
  for (const repo of repos.values()) publishToEnvironment(doc, repo, apps);
  return {
    file: doc.file,
    doc,
    listen: getKey(doc, ['listen'], 'string') ?? DEFAULTS.listen,
    data: path.resolve(path.dirname(doc.file), dataDir),
    secret: parseSecretList(doc, ['secret']),
    token: getKey(doc, ['token'], 'string'),
    concurrency,
    workers: parseWorkers(doc),
    maxBody,
    ui: parseUiMode(doc),
    ...parseUiUsers(doc),
    publicUrl: parsePublicUrl(doc),
    notify: parseNotifyList(doc, []) ?? [],
    queue,
    fleet,
    audit: parseAudit(doc),
    apps,
    repos,
  };
}

/** Delivery worker processes: more than one per core only adds switching. */
export const MAX_WORKERS = 64;

function parseWorkers(doc: ConfigDoc): number | 'auto' {
  const value = valueAt(doc.data, ['workers']);
  if (value === undefined || value === null) return 1;
  if (value === 'auto') return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_WORKERS)
    throw configError(doc, ['workers'], `must be auto (one per core) or a whole number from 1 to ${MAX_WORKERS}.`);
  return value;
}

function parseAudit(doc: ConfigDoc): { keepDays?: number } {
  if (getKey(doc, ['audit'], 'object') === undefined) return {};
  checkKnownKeys(doc, ['audit'], ['keep_days']);
  const keepDays = getKey(doc, ['audit', 'keep_days'], 'number');
  if (keepDays !== undefined && (!Number.isInteger(keepDays) || keepDays < 1 || keepDays > 36_500))
    throw configError(
      doc,
      ['audit', 'keep_days'],
      'must be a whole number of days from 1 to 36500 (absent: keep forever).',
    );
  return { keepDays };
}

/** `ui_users:` and `ui_key:`: named users log in with a password; they need the token's sessions and the page. */
function parseUiUsers(doc: ConfigDoc): { uiUsers?: string; uiKey?: string } {
  const users = getKey(doc, ['ui_users'], 'string');
  const key = getKey(doc, ['ui_key'], 'string');
  if (users !== undefined && getKey(doc, ['ui'], 'string') === 'off')
    throw configError(doc, ['ui_users'], 'names status-page users, but ui: off turns the status page off.');
  if (users !== undefined && getKey(doc, ['token'], 'string') === undefined)
    throw configError(doc, ['ui_users'], 'needs token: as well: the sessions of named users are MACed under it.');
  if (key !== undefined && users === undefined)
    throw configError(doc, ['ui_key'], 'signs approvals given by status-page users; name their file in ui_users: too.');
  return {
    uiUsers: users === undefined ? undefined : filePath(doc, ['ui_users'], users),
    uiKey: key === undefined ? undefined : filePath(doc, ['ui_key'], key),
  };
}

function parseUiMode(doc: ConfigDoc): UiMode {
  const ui = getKey(doc, ['ui'], 'string') ?? 'token';
  if (!(UI_MODES as readonly string[]).includes(ui))
    throw configError(doc, ['ui'], `must be one of ${UI_MODES.join(', ')}, got ${JSON.stringify(ui.slice(0, 40))}.`);
  return ui as UiMode;
}

/** An http(s) URL without credentials, query or fragment, its path plain segments; the trailing slash is dropped. */
function parsePublicUrl(doc: ConfigDoc): string | undefined {
  const text = getKey(doc, ['public_url'], 'string');
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw configError(doc, ['public_url'], 'must be an absolute URL such as https://ci.example.com.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw configError(doc, ['public_url'], 'must start with https:// or http://.');
  if (url.username || url.password)
    throw configError(doc, ['public_url'], 'must not carry a user name or password (it is shown in links).');
  if (url.search || url.hash || text.includes('?') || text.includes('#'))
    throw configError(doc, ['public_url'], 'must not have a query (?) or fragment (#); give the base address only.');
  // A path (hook-server behind a proxy under a prefix) goes into every link and the cookie's
  // Path: plain segments only, so nothing in it needs escaping and no `//` makes a link leave the host.
  if (!/^(?:\/[A-Za-z0-9._~-]+)*\/?$/.test(url.pathname))
    throw configError(
      doc,
      ['public_url'],
      `has a path (${JSON.stringify(url.pathname.slice(0, 60))}) that is not plain segments: use letters, digits, ".", "_", "~", "-" between single slashes, such as https://ci.example.com/ci.`,
    );
  return url.href.replace(/\/+$/, '');
}

function parseRepo(
  doc: ConfigDoc,
  name: string,
  topReport: ReturnType<typeof parseTopReport>,
  fleet: Map<string, FleetApp>,
): RepoConfig {
  const keyPath: KeyPath = ['repos', name];
  try {
    validateFullName(name);
  } catch (error) {
    throw configError(
      doc,
      keyPath,
      `is not a valid repository name (use owner/name or group/subgroup/project with letters, digits, ".", "_", "-").`,
      { cause: error },
    );
  }
  const value = getKey(doc, keyPath, 'object') ?? {};
  checkKnownKeys(doc, keyPath, REPO_KEYS);
  void value;
  const steps = (getKey(doc, [...keyPath, 'steps'], 'string[]') ?? [...STEPS]) as Step[];
  steps.forEach((step, i) => {
    if (!(STEPS as readonly string[]).includes(step))
      throw configError(
        doc,
        [...keyPath, 'steps', i],
        `unknown step ${JSON.stringify(step)}; steps are ${STEPS.join(', ')}.`,
      );
  });
  const timeout = getKey(doc, [...keyPath, 'timeout'], 'number') ?? DEFAULTS.timeout;
  if (timeout <= 0) throw configError(doc, [...keyPath, 'timeout'], 'must be a positive number of seconds.');
  const user = getKey(doc, [...keyPath, 'user'], 'string');
  if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw configError(doc, [...keyPath, 'user'], 'must be a Unix user name.');
  const uploads = getKey(doc, [...keyPath, 'upload'], 'array') ?? [];
  const upload = uploads.map((raw, i): UploadEntry => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw configError(
        doc,
        [...keyPath, 'upload', i],
        'each upload target must be a mapping such as {rsync: host:path, from: out}.',
      );
    return { raw: raw as Record<string, unknown>, keyPath: [...keyPath, 'upload', i] };
  });
  const release = getKey(doc, [...keyPath, 'release'], 'string') ?? DEFAULTS.release;
  const publish = parsePublishConfig(doc, keyPath);
  const url = getKey(doc, [...keyPath, 'url'], 'string');
  return {
    name,
    url,
    branch: getKey(doc, [...keyPath, 'branch'], 'string') ?? DEFAULTS.branch,
    user,
    steps,
    compile: getKey(doc, [...keyPath, 'compile'], 'string'),
    timeout,
    upload,
    release,
    publish,
    rollout: parseRolloutConfig(doc, keyPath, name, publish, fleet),
    secret: parseSecretList(doc, [...keyPath, 'secret']),
    env: parseBuildEnv(doc, keyPath),
    notify: parseNotifyList(doc, keyPath),
    report: parseRepoReport(doc, topReport, keyPath, name, url),
    gitAuth: parseGitAuth(doc, keyPath),
    cache: parseCacheConfig(doc, keyPath),
    node: parseNodeConfig(doc, keyPath),
    gitToken: parseGitToken(doc, keyPath),
    skipUnchanged: getKey(doc, [...keyPath, 'skip_unchanged'], 'boolean') ?? true,
    previews: parsePreviews(doc, keyPath),
    keyPath,
  };
}

/**
 * Where app `app` is published: the `publish.to` of the repos whose `publish.name` is APP, when
 * they agree on one; undefined when none does, or they name several.
 */
export function publishedTo(config: ShipkitConfig, app: string): string | undefined {
  const targets = new Set(
    [...config.repos.values()].flatMap((repo) => (repo.publish?.name === app ? [repo.publish.to] : [])),
  );
  return targets.size === 1 ? [...targets][0] : undefined;
}

/** The repo's config, or a ConfigError that lists the configured ones. */
export function getRepo(config: ShipkitConfig, name: string): RepoConfig {
  // A name without "/" may be the last part of a configured one (`.github` for `owner/.github`).
  if (repoNameProblem(name.includes('/') ? name : `owner/${name}`))
    throw new ConfigError(
      `Invalid repository name ${JSON.stringify(name.slice(0, 60))}: use owner/name (or group/subgroup/project).`,
    );
  const byShortName = name.includes('/')
    ? []
    : [...config.repos.values()].filter((r) => r.name.split('/').pop() === name);
  if (!config.repos.has(name) && byShortName.length > 1) {
    throw new ConfigError(
      `Repository name ${name} is ambiguous in ${config.file}: use one of ${byShortName.map((r) => r.name).join(', ')}.`,
    );
  }
  const repo = config.repos.get(name) ?? byShortName[0];
  if (!repo) {
    const known = [...config.repos.keys()];
    throw new ConfigError(
      `Repository ${name} is not in ${config.file}${known.length ? ` (configured: ${known.join(', ')})` : ' (no repos: configured)'}.`,
    );
  }
  return repo;
}

/** DATA/repos, DATA/logs and DATA/state of a repo, each named by lib/core/names.ts repoFolderName. */
export function repoPaths(config: Pick<ShipkitConfig, 'data'>, name: string) {
  const slug = repoFolderName(name);
  return {
    work: path.join(config.data, 'repos', slug),
    logs: path.join(config.data, 'logs', slug),
    state: path.join(config.data, 'state', slug),
  };
}

/** The lock a running hook-server holds on DATA: one per data folder; a worker and a restore look for it. */
export function hookServerLockFile(data: string): string {
  return path.join(data, 'journal', 'hook-server.lock');
}
