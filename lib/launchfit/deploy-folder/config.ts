// launchify.yml: the deploy folder's configuration, checked key by key so an error names the
// key and its line. A launchify.yml inside a release supplies defaults for `app:` only; the
// deploy folder's file wins key by key.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  checkKnownKeys,
  configError,
  getKey,
  loadYamlFile,
  parseYamlText,
  type ConfigDoc,
} from '../../core/yaml-config.ts';
import { ConfigError, messageOf } from '../../core/errors.ts';
import { nameProblem } from '../../core/names.ts';
import { parseListen } from '../../http/server.ts';
import { resolveAppUser, type AppAccount } from './app-env.ts';
import { parseKeyPin, type KeyPin } from './key-pin.ts';
import { parseListenSpec, type ListenSpec } from './listen-spec.ts';

export interface AppConfig {
  exec?: string;
  forever: boolean;
  /** A signal name (SIGTERM) or a command run in `current` with $LAUNCHFIT_APP_PID set. */
  kill: string;
  killTimeoutSec: number;
  /**
   * After a new instance is up (app.health: its first 2xx), how long it must stay up and answer
   * every probe before it counts as healthy; with app.listen it serves beside the old one that
   * long. Default: 0 with app.health (the first 2xx is the evidence), 5 without it.
   */
  healthyAfterSec: number;
  /** With app.health: how long a new instance may take to answer its first 2xx (startDeadlineSec). */
  startTimeoutSec?: number;
  env: Record<string, string>;
  backoffMaxSec: number;
  stableAfterSec: number;
  maxRestarts: number;
  logMaxBytes: number;
  logKeep: number;
  /** Sockets launchfit binds and hands to the app as fds 3… (systemd's LISTEN_FDS protocol). */
  listen: ListenSpec[];
  health?: HealthConfig;
  /** Seconds the old app has after `kill` to finish its requests in an overlapping switch (default kill_timeout). */
  drainSec?: number;
  /** The Unix user the app runs as (`app.user`, the deploy folder's file only); default launchfit's. */
  user?: string;
  /** That user's account, looked up when the config is loaded. */
  account?: AppAccount;
}

export interface HealthConfig {
  /** GET this URL; with app.listen it is sent over the instance's private health socket. */
  url: string;
  intervalSec: number;
  timeoutSec: number;
  /** Failed probes in a row that make a running app restart, as a crash would. */
  failures: number;
}

export interface UpdatesConfig {
  server?: string;
  /** Old releases kept besides the current and the previous one; 0 = none (`keep: false`). */
  keep: number;
  intervalSec: number;
  maxSize: number;
  maxUnpackedSize: number;
  maxRatio: number;
  /** Accept a VERSION without VERSION.sig (weaker: see launchify.example.yml). */
  allowUnsignedVersion: boolean;
  /** Rebuild a release from one held and a signed patch when VERSION offers one (`delta`, default true). */
  delta: boolean;
  connectTimeoutSec: number;
  idleTimeoutSec: number;
  downloadTimeoutSec: number;
  /** Whole-request deadline for VERSION, signatures and keys. */
  metadataTimeoutSec: number;
  /** A release download slower than this (bytes/s, averaged over minRateWindowSec) fails; 0 = off. */
  minRate: number;
  minRateWindowSec: number;
  /** Pins of the host's APP and PLATFORM (both or neither); else the first install binds them. */
  app?: string;
  platform?: string;
  gpg: { pin?: KeyPin; keyfile?: string; keyUrl?: string };
  /** Where to POST a signed report after each update attempt (docs/fleet.md), and its secret (file:/env:). */
  report?: { url: string; secret: string };
  /** APP-PLATFORM-V.intoto.jsonl: required, optional (checked when present) or off (default). */
  provenance: 'required' | 'optional' | 'off';
  /** What the provenance must name: the source repo (URL or owner/name) and a ref glob. */
  provenanceSource?: { repo?: string; ref?: string };
  /** The builder id (`runDetails.builder.id`) the provenance must name, exactly; unset: any. */
  provenanceBuilder?: string;
}

export interface LaunchConfig {
  file: string;
  dir: string;
  app: AppConfig;
  updates: UpdatesConfig;
  hooks: { beforeSymlink?: string; timeoutSec: number };
  control: { listen?: string; secret: string };
}

export const CONFIG_NAME = 'launchify.yml';

const TOP_KEYS = ['app', 'updates', 'hooks', 'control'] as const;
const APP_KEYS = [
  'exec',
  'forever',
  'kill',
  'kill_timeout',
  'healthy_after',
  'start_timeout',
  'env',
  'backoff_max',
  'stable_after',
  'max_restarts',
  'log_max_size',
  'log_keep',
  'listen',
  'health',
  'drain',
  'user',
] as const;
const HEALTH_KEYS = ['http', 'interval', 'timeout', 'failures'] as const;
const UPDATES_KEYS = [
  'server',
  'delta',
  'keep',
  'interval',
  'max_size',
  'max_unpacked_size',
  'max_ratio',
  'require_signed_version',
  'allow_unsigned_version',
  'connect_timeout',
  'idle_timeout',
  'download_timeout',
  'metadata_timeout',
  'min_rate',
  'min_rate_window',
  'app',
  'platform',
  'gpg',
  'provenance',
  'provenance_source',
  'provenance_builder',
  'report',
  'report_secret',
] as const;
const PROVENANCE_SOURCE_KEYS = ['repo', 'ref'] as const;
const GPG_KEYS = ['key', 'keyfile', 'key_url'] as const;
const HOOK_KEYS = ['before_symlink', 'timeout'] as const;
const CONTROL_KEYS = ['listen', 'secret'] as const;

/** healthy_after without app.health, where staying up is the only evidence of health. */
const HEALTHY_AFTER_WITHOUT_HEALTH_SEC = 5;
/** start_timeout when neither it nor a healthy_after above 0 is set. */
const START_TIMEOUT_SEC = 5;

const APP_DEFAULTS: Omit<AppConfig, 'healthyAfterSec'> = {
  forever: false,
  kill: 'SIGTERM',
  killTimeoutSec: 10,
  env: {},
  backoffMaxSec: 30,
  stableAfterSec: 60,
  maxRestarts: 10,
  logMaxBytes: 10 * 1024 * 1024,
  logKeep: 3,
  listen: [],
};

/** How long a new instance may take to its first 2xx: start_timeout, else healthy_after above 0, else 5 s. */
export function startDeadlineSec(app: AppConfig): number {
  return app.startTimeoutSec ?? (app.healthyAfterSec > 0 ? app.healthyAfterSec : START_TIMEOUT_SEC);
}

function positive(
  doc: ConfigDoc,
  keyPath: string[],
  fallback: number,
  { integer = false, allowZero = false } = {},
): number {
  const value = getKey(doc, keyPath, 'number');
  if (value === undefined) return fallback;
  if ((allowZero ? value < 0 : value <= 0) || (integer && !Number.isInteger(value))) {
    throw configError(
      doc,
      keyPath,
      `must be a ${allowZero ? 'non-negative' : 'positive'} ${integer ? 'whole number' : 'number'}, got ${value}.`,
    );
  }
  return value;
}

function parseSignal(doc: ConfigDoc, keyPath: string[], value: string): string {
  if (/^SIG[A-Z0-9]+$/.test(value)) {
    const known = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGKILL', 'SIGWINCH'];
    if (!known.includes(value))
      throw configError(doc, keyPath, `unknown signal ${value}; use one of ${known.join(', ')} or a command.`);
  }
  return value;
}

function readListen(doc: ConfigDoc, baseDir: string): ListenSpec[] | undefined {
  const raw = (doc.data as { app?: { listen?: unknown } })?.app?.listen;
  if (raw === undefined || raw === null) return undefined;
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.some((e) => typeof e !== 'string'))
    throw configError(doc, ['app', 'listen'], 'must be a list of HOST:PORT, [IPv6]:PORT or Unix socket paths.');
  const specs = list.map((text: string, i) => {
    try {
      return parseListenSpec(text, baseDir);
    } catch (error) {
      throw configError(doc, ['app', 'listen', String(i)], messageOf(error));
    }
  });
  const seen = new Set<string>();
  for (const s of specs) {
    const key = s.kind === 'unix' ? s.path : `${s.host}:${s.port}`;
    if (seen.has(key)) throw configError(doc, ['app', 'listen'], `lists ${s.text} twice.`);
    seen.add(key);
  }
  return specs;
}

function readHealth(doc: ConfigDoc): HealthConfig | undefined {
  getKey(doc, ['app', 'health'], 'object');
  checkKnownKeys(doc, ['app', 'health'], HEALTH_KEYS);
  const url = getKey(doc, ['app', 'health', 'http'], 'string');
  if (url === undefined) {
    if (getKey(doc, ['app', 'health'], 'object'))
      throw configError(
        doc,
        ['app', 'health', 'http'],
        'is missing: give the URL to GET, e.g. http://127.0.0.1:8080/up.',
      );
    return undefined;
  }
  if (!/^http:\/\/[^\s/]+(\/\S*)?$/.test(url))
    throw configError(doc, ['app', 'health', 'http'], `must be an http:// URL, got ${JSON.stringify(url)}.`);
  return {
    url,
    intervalSec: positive(doc, ['app', 'health', 'interval'], 0.5),
    timeoutSec: positive(doc, ['app', 'health', 'timeout'], 2),
    failures: positive(doc, ['app', 'health', 'failures'], 3, { integer: true }),
  };
}

/** The `app:` section of a document (the deploy folder's or a release's). Only keys present. */
function readApp(doc: ConfigDoc): Partial<AppConfig> {
  checkKnownKeys(doc, ['app'], APP_KEYS);
  getKey(doc, ['app'], 'object');
  const app: Partial<AppConfig> = {};
  const exec = getKey(doc, ['app', 'exec'], 'string');
  if (exec !== undefined) {
    if (!exec.trim()) throw configError(doc, ['app', 'exec'], 'must not be empty.');
    app.exec = exec;
  }
  const forever = getKey(doc, ['app', 'forever'], 'boolean');
  if (forever !== undefined) app.forever = forever;
  const kill = getKey(doc, ['app', 'kill'], 'string');
  if (kill !== undefined) app.kill = parseSignal(doc, ['app', 'kill'], kill);
  const set = <K extends keyof AppConfig>(
    key: K,
    yamlKey: string,
    opts: { integer?: boolean; allowZero?: boolean } = {},
  ) => {
    if (getKey(doc, ['app', yamlKey], 'number') !== undefined)
      app[key] = positive(doc, ['app', yamlKey], 0, opts) as AppConfig[K];
  };
  set('killTimeoutSec', 'kill_timeout');
  set('healthyAfterSec', 'healthy_after', { allowZero: true });
  set('startTimeoutSec', 'start_timeout');
  set('backoffMaxSec', 'backoff_max');
  set('stableAfterSec', 'stable_after');
  set('maxRestarts', 'max_restarts', { integer: true });
  set('logMaxBytes', 'log_max_size', { integer: true });
  set('logKeep', 'log_keep', { integer: true, allowZero: true });
  set('drainSec', 'drain', { allowZero: true });
  const listen = readListen(doc, path.dirname(doc.file));
  if (listen) app.listen = listen;
  const user = getKey(doc, ['app', 'user'], 'string');
  if (user !== undefined) {
    if (!/^([A-Za-z_][A-Za-z0-9_.-]*\$?|#[1-9][0-9]{0,9})$/.test(user))
      throw configError(
        doc,
        ['app', 'user'],
        `must be a user name (as in /etc/passwd) or #UID, got ${JSON.stringify(user)}.`,
      );
    app.user = user;
  }
  const health = readHealth(doc);
  if (health) app.health = health;
  const env = getKey(doc, ['app', 'env'], 'object');
  if (env) {
    for (const [k, v] of Object.entries(env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        throw configError(doc, ['app', 'env', k], 'is not a valid environment variable name.');
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
        throw configError(doc, ['app', 'env', k], 'must be a string, number or boolean.');
    }
    app.env = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  }
  return app;
}

/** The app settings in force: defaults, then the release's `app:`, then the deploy folder's, key by key. */
function mergeApp(ownApp: Partial<AppConfig>, releaseApp: Partial<AppConfig>): AppConfig {
  const app: AppConfig = {
    ...APP_DEFAULTS,
    healthyAfterSec: HEALTHY_AFTER_WITHOUT_HEALTH_SEC,
    ...releaseApp,
    ...ownApp,
    env: { ...(releaseApp.env ?? {}), ...(ownApp.env ?? {}) },
  };
  // With a health check the switch comes at the new instance's first 2xx, as pm2's reload and
  // Kubernetes' (minReadySeconds 0) do; a hold after it is the user's choice (docs/launchfit.md).
  if ((ownApp.healthyAfterSec ?? releaseApp.healthyAfterSec) === undefined && app.health) app.healthyAfterSec = 0;
  // The sockets belong to the host (bound once by `run`), so only the deploy folder names them;
  // and the user: a release must not choose who it runs as.
  app.listen = ownApp.listen ?? [];
  app.user = ownApp.user;
  return app;
}

/** updates.server, as written: an http(s) URL. */
function readServer(doc: ConfigDoc): string | undefined {
  const server = getKey(doc, ['updates', 'server'], 'string');
  if (server !== undefined && !/^https?:\/\/[^\s]+$/.test(server))
    throw configError(doc, ['updates', 'server'], `must be an http:// or https:// URL, got ${JSON.stringify(server)}.`);
  return server;
}

/** updates.keep: a whole number of old releases, or false for none; 3 when unset. */
function readKeep(doc: ConfigDoc): number {
  const keepRaw = (doc.data as { updates?: { keep?: unknown } })?.updates?.keep;
  if (keepRaw === false) return 0;
  if (keepRaw === undefined || keepRaw === null) return 3;
  if (typeof keepRaw !== 'number' || !Number.isInteger(keepRaw) || keepRaw < 0)
    throw configError(
      doc,
      ['updates', 'keep'],
      `must be a whole number of releases to keep, or false, got ${JSON.stringify(keepRaw)}.`,
    );
  return keepRaw;
}

/** updates.gpg: the key pin, a keyfile (resolved against `dir`) and an http(s) key URL. */
function readGpg(doc: ConfigDoc, dir: string): UpdatesConfig['gpg'] {
  getKey(doc, ['updates', 'gpg'], 'object');
  checkKnownKeys(doc, ['updates', 'gpg'], GPG_KEYS);
  const keyText = getKey(doc, ['updates', 'gpg', 'key'], 'string');
  let pin: KeyPin | undefined;
  if (keyText !== undefined) {
    try {
      pin = parseKeyPin(keyText);
    } catch (error) {
      throw configError(doc, ['updates', 'gpg', 'key'], messageOf(error));
    }
  }
  const keyfile = getKey(doc, ['updates', 'gpg', 'keyfile'], 'string');
  const keyUrl = getKey(doc, ['updates', 'gpg', 'key_url'], 'string');
  if (keyUrl !== undefined && !/^https?:\/\//.test(keyUrl))
    throw configError(doc, ['updates', 'gpg', 'key_url'], 'must be an http:// or https:// URL.');
  return { pin, keyfile: keyfile === undefined ? undefined : path.resolve(dir, keyfile), keyUrl };
}

/** updates.allow_unsigned_version (default false), checked against the old require_signed_version. */
function readAllowUnsigned(doc: ConfigDoc): boolean {
  // require_signed_version is kept for old files: a signed VERSION is now required unless
  // allow_unsigned_version says otherwise, and the two must not contradict each other.
  const requireSigned = getKey(doc, ['updates', 'require_signed_version'], 'boolean');
  const allowUnsigned = getKey(doc, ['updates', 'allow_unsigned_version'], 'boolean') ?? false;
  if (requireSigned && allowUnsigned)
    throw configError(
      doc,
      ['updates', 'allow_unsigned_version'],
      'contradicts updates.require_signed_version: true; remove one of them.',
    );
  return allowUnsigned;
}

/** updates.app and updates.platform: valid names, both or neither. */
function readBinding(doc: ConfigDoc): { app?: string; platform?: string } {
  const boundApp = getKey(doc, ['updates', 'app'], 'string');
  const boundPlatform = getKey(doc, ['updates', 'platform'], 'string');
  for (const [key, value] of [
    ['app', boundApp],
    ['platform', boundPlatform],
  ] as const) {
    const problem = value === undefined ? undefined : nameProblem(value);
    if (problem) throw configError(doc, ['updates', key], `${JSON.stringify(value)} ${problem}.`);
  }
  if ((boundApp === undefined) !== (boundPlatform === undefined))
    throw configError(
      doc,
      ['updates', boundApp === undefined ? 'platform' : 'app'],
      "pins one half of the host's binding; set both updates.app and updates.platform, or neither.",
    );
  return { app: boundApp, platform: boundPlatform };
}

/** control.listen: HOST:PORT, checked with the listener's own parser. */
function readControlListen(doc: ConfigDoc): string | undefined {
  const listen = getKey(doc, ['control', 'listen'], 'string');
  if (listen !== undefined) {
    // The listener parses it with parseListen; checking with the same function here means a bad
    // address is refused at load time, naming the key, and never later at `run`.
    try {
      parseListen(listen);
    } catch (error) {
      throw configError(doc, ['control', 'listen'], `must be HOST:PORT, got ${JSON.stringify(listen)}.`, {
        cause: error,
      });
    }
  }
  return listen;
}

/**
 * The deploy folder's launchify.yml (`doc`) checked key by key, over the release's `app:`
 * defaults. Throws a ConfigError naming the key and its line.
 */
export function parseLaunchConfig(doc: ConfigDoc, dir: string, releaseApp: Partial<AppConfig> = {}): LaunchConfig {
  getKey(doc, [], 'object');
  checkKnownKeys(doc, [], TOP_KEYS);
  const app = mergeApp(readApp(doc), releaseApp);

  getKey(doc, ['updates'], 'object');
  checkKnownKeys(doc, ['updates'], UPDATES_KEYS);
  const server = readServer(doc);
  const keep = readKeep(doc);
  const gpg = readGpg(doc, dir);
  const allowUnsigned = readAllowUnsigned(doc);
  const binding = readBinding(doc);

  getKey(doc, ['hooks'], 'object');
  checkKnownKeys(doc, ['hooks'], HOOK_KEYS);
  const beforeSymlink = getKey(doc, ['hooks', 'before_symlink'], 'string');

  getKey(doc, ['control'], 'object');
  checkKnownKeys(doc, ['control'], CONTROL_KEYS);
  const listen = readControlListen(doc);

  return {
    file: doc.file,
    dir,
    app,
    updates: {
      server: server && (server.endsWith('/') ? server : `${server}/`),
      keep,
      intervalSec: positive(doc, ['updates', 'interval'], 300),
      maxSize: positive(doc, ['updates', 'max_size'], 2 * 1024 ** 3, { integer: true }),
      maxUnpackedSize: positive(doc, ['updates', 'max_unpacked_size'], 8 * 1024 ** 3, { integer: true }),
      maxRatio: positive(doc, ['updates', 'max_ratio'], 200),
      allowUnsignedVersion: allowUnsigned,
      delta: getKey(doc, ['updates', 'delta'], 'boolean') ?? true,
      connectTimeoutSec: positive(doc, ['updates', 'connect_timeout'], 15),
      idleTimeoutSec: positive(doc, ['updates', 'idle_timeout'], 30),
      downloadTimeoutSec: positive(doc, ['updates', 'download_timeout'], 1800),
      metadataTimeoutSec: positive(doc, ['updates', 'metadata_timeout'], 30),
      minRate: positive(doc, ['updates', 'min_rate'], 1024, { allowZero: true }),
      minRateWindowSec: positive(doc, ['updates', 'min_rate_window'], 30),
      app: binding.app,
      platform: binding.platform,
      gpg,
      ...readProvenance(doc),
      report: readReport(doc),
    },
    hooks: { beforeSymlink, timeoutSec: positive(doc, ['hooks', 'timeout'], 300) },
    control: { listen, secret: getKey(doc, ['control', 'secret'], 'string') ?? 'env:SHIPKIT_SECRET' },
  };
}

/** updates.report (an http(s) URL) and updates.report_secret (file: or env:), both or neither. */
function readReport(doc: ConfigDoc): UpdatesConfig['report'] {
  const url = getKey(doc, ['updates', 'report'], 'string');
  const secret = getKey(doc, ['updates', 'report_secret'], 'string');
  if (url === undefined) {
    if (secret !== undefined)
      throw configError(
        doc,
        ['updates', 'report_secret'],
        'is set but updates.report is not; give the URL to report to, or remove it.',
      );
    return undefined;
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    /* refused below */
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.username || parsed.password) {
    throw configError(
      doc,
      ['updates', 'report'],
      `must be an http:// or https:// URL without credentials, such as ` +
        `http://ci.example.com/fleet/reports; got ${JSON.stringify(url.slice(0, 100))}.`,
    );
  }
  if (secret === undefined)
    throw configError(
      doc,
      ['updates', 'report_secret'],
      'is required with updates.report: file:PATH or env:NAME holding the fleet secret of this app (see shipkit.yml fleet:).',
    );
  if (!/^(file|env):./.test(secret))
    throw configError(
      doc,
      ['updates', 'report_secret'],
      'must be file:PATH or env:NAME (the secret itself does not belong in launchify.yml).',
    );
  return { url: parsed.href, secret };
}

/** updates.provenance_builder: a URI, and only with a provenance to check. */
function readProvenanceBuilder(doc: ConfigDoc, mode: UpdatesConfig['provenance']): string | undefined {
  const keyPath = ['updates', 'provenance_builder'];
  const builder = getKey(doc, keyPath, 'string');
  if (builder !== undefined && !/^[a-z][a-z0-9+.-]*:\S+$/i.test(builder))
    throw configError(doc, keyPath, `must be the builder's id as a URI, got ${JSON.stringify(builder)}.`);
  if (builder !== undefined && mode === 'off')
    throw configError(
      doc,
      keyPath,
      'is set but updates.provenance is off; set it to required or optional, or remove this.',
    );
  return builder;
}

/** updates.provenance, provenance_source and provenance_builder; `required` needs a source to match. */
function readProvenance(doc: ConfigDoc): Pick<UpdatesConfig, 'provenance' | 'provenanceSource' | 'provenanceBuilder'> {
  const mode = getKey(doc, ['updates', 'provenance'], 'string') ?? 'off';
  if (mode !== 'required' && mode !== 'optional' && mode !== 'off')
    throw configError(
      doc,
      ['updates', 'provenance'],
      `must be required, optional or off, got ${JSON.stringify(mode)}.`,
    );
  getKey(doc, ['updates', 'provenance_source'], 'object');
  checkKnownKeys(doc, ['updates', 'provenance_source'], PROVENANCE_SOURCE_KEYS);
  const repo = getKey(doc, ['updates', 'provenance_source', 'repo'], 'string');
  const ref = getKey(doc, ['updates', 'provenance_source', 'ref'], 'string');
  if (repo !== undefined && !/^(https?:\/\/\S+|[\w.-]+\/[\w.-]+)$/.test(repo))
    throw configError(
      doc,
      ['updates', 'provenance_source', 'repo'],
      `must be a URL or owner/name, got ${JSON.stringify(repo)}.`,
    );
  if (ref !== undefined && !/^refs\/\S+$/.test(ref))
    throw configError(
      doc,
      ['updates', 'provenance_source', 'ref'],
      `must be a full ref or a glob such as refs/tags/v*, got ${JSON.stringify(ref)}.`,
    );
  if (mode !== 'off' && repo === undefined)
    throw configError(
      doc,
      ['updates', 'provenance_source', 'repo'],
      `is required with updates.provenance: ${mode}: the repository releases must be built from.`,
    );
  const builder = readProvenanceBuilder(doc, mode);
  return {
    provenance: mode,
    provenanceSource: repo === undefined && ref === undefined ? undefined : { repo, ref },
    ...(builder === undefined ? {} : { provenanceBuilder: builder }),
  };
}

/** The last documents read, by file: the text and what it parsed to. */
const parsedYaml = new Map<string, { text: string; doc: ConfigDoc }>();
const KEEP_PARSED = 16;

/**
 * A launchify.yml, parsed again only when its text changed: `run` reads the deploy folder's and
 * the release's at every check, prepare and start (bench:pipeline: the YAML parses were about 4 % of
 * launchfit's CPU during a push). Each caller gets its own copy of the data.
 */
async function loadLaunchYaml(file: string): Promise<ConfigDoc> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return loadYamlFile(file); // its error names what is wrong with the file
  }
  let parsed = parsedYaml.get(file);
  if (parsed?.text !== text) {
    parsed = { text, doc: parseYamlText(text, file) };
    parsedYaml.delete(file);
    if (parsedYaml.size >= KEEP_PARSED) parsedYaml.delete(parsedYaml.keys().next().value!);
    parsedYaml.set(file, parsed);
  }
  return { ...parsed.doc, data: structuredClone(parsed.doc.data) };
}

export async function loadLaunchConfig(dir: string, releaseApp: Partial<AppConfig> = {}): Promise<LaunchConfig> {
  const doc = await loadLaunchYaml(path.join(dir, CONFIG_NAME));
  const config = parseLaunchConfig(doc, dir, releaseApp);
  if (config.app.user) config.app.account = await resolveAppUser(config.app.user, `${config.file}: app.user`);
  return config;
}

export function parseLaunchConfigText(text: string, file: string, dir = path.dirname(file)): LaunchConfig {
  return parseLaunchConfig(parseYamlText(text, file), dir);
}

/** The `app:` defaults from a release's own launchify.yml; {} when it has none. */
export async function readReleaseAppDefaults(releaseDir: string): Promise<Partial<AppConfig>> {
  const file = path.join(releaseDir, CONFIG_NAME);
  let doc: ConfigDoc;
  try {
    doc = await loadLaunchYaml(file);
  } catch (error) {
    if (error instanceof ConfigError && /does not exist/.test(error.message)) return {};
    throw error;
  }
  getKey(doc, [], 'object');
  return readApp(doc);
}
