// A repo's `previews:` block in shipkit.yml (docs/previews.md): a preview per pull request, reached
// as pr-N.DOMAIN or under /PATH/pr-N/ through the user's nginx. Checked when the config is read, so
// every mistake is a configuration error naming FILE:LINE and the key; the rules of single values
// are in ./preview-values.ts, the secrets of `env:` and `database.url` are resolved when used.
import path from 'node:path';
import { checkKnownKeys, configError, getKey, valueAt, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { parseBuildEnv, type BuildEnvEntry } from './build-env.ts';
import * as values from './preview-values.ts';

export interface PreviewsConfig {
  /** pr-N.DOMAIN (lower case); exactly one of domain and path is set. */
  domain?: string;
  /** /PATH/pr-N/ under the user's own server block; always with a trailing slash. */
  path?: string;
  nginx: PreviewsNginx;
  /** The command that starts the app, serving HTTP on $PORT (or fd 3, see `binds`). */
  start: string;
  /**
   * Who binds the preview's port: `launchfit` (it hands the socket to the app as fd 3 with
   * LISTEN_FDS, and a push switches without downtime) or `app` (it binds $PORT itself; a push
   * stops the old release before the new one starts).
   */
  binds: 'launchfit' | 'app';
  /** Where its builds run: `here` (hook-server's machine) or `workers` (`shipkit worker`s of queue:). */
  buildOn: 'here' | 'workers';
  /** The path that answers 2xx before a preview's route is added. */
  health: string;
  /** Live previews of this repo at most. */
  max: number;
  /** A preview idle (no push) this long is torn down. */
  ttlMs: number;
  limits: { memoryBytes?: number; cpuPercent?: number };
  /** The preview's only variables besides SHIPKIT_PREVIEW*, SHIPKIT_PR, PORT (and DATABASE_URL). */
  env: BuildEnvEntry[];
  /** Logins that may have a preview built without an approval (besides owners, members, collaborators). */
  trusted: string[];
  /** One database per preview, copied from `template`; `url` unresolved (env:NAME, file:PATH or literal). */
  database?: { url: string; template?: string };
  /** The Unix user every preview runs as; undefined = a uid of its own each (root), else hook-server's user. */
  user?: string;
  /** Where each preview's own uid comes from (hook-server as root, no user:); undefined = the default range. */
  uids?: { from: number; to: number };
  /** HTTP basic auth in front of every preview: an htpasswd file nginx reads (absolute). */
  auth?: { usersFile: string };
  keyPath: KeyPath;
}

export interface PreviewsNginx {
  /** One pr-N.conf per preview; the user's nginx.conf includes DIR/*.conf (absolute). */
  dir: string;
  /** What each preview's server block listens on (`80`, `127.0.0.1:8080`); domain mode only. */
  listen: string;
  /** Run before every reload; a failure leaves the previous config in place. */
  test: string[];
  reload: string[];
}

export const PREVIEW_DEFAULTS = {
  dir: '/etc/nginx/shipkit-previews',
  listen: '80',
  test: 'nginx -t',
  reload: 'nginx -s reload',
  health: '/',
  binds: 'launchfit',
  max: 10,
  ttl: '72h',
} as const;
export const MAX_PREVIEWS = 100;

const KEYS = [
  'domain',
  'path',
  'nginx',
  'start',
  'binds',
  'build_on',
  'health',
  'max',
  'ttl',
  'limits',
  'env',
  'trusted',
  'database',
  'user',
  'uids',
  'auth',
];
// What a preview is given by shipkit itself (or launchfit, for the socket it listens on).
const PREVIEW_RESERVED = new Set(['PORT', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'DATABASE_URL']);

/** The repo's `previews:` block, checked; undefined when the repo has none. */
export function parsePreviews(doc: ConfigDoc, repoKeyPath: KeyPath): PreviewsConfig | undefined {
  const keyPath = [...repoKeyPath, 'previews'];
  if (valueAt(doc.data, keyPath) === undefined) return undefined;
  const block = getKey(doc, keyPath, 'object');
  if (!block) throw configError(doc, keyPath, 'must be a mapping such as {domain: preview.example.com, start: …}.');
  checkKnownKeys(doc, keyPath, KEYS);
  const at = (...keys: KeyPath) => [...keyPath, ...keys];
  const where = parseWhere(doc, keyPath);
  const start = getKey(doc, at('start'), 'string', { required: true })!;
  if (!start.trim())
    throw configError(doc, at('start'), 'is empty: give the command that starts the app, such as node server.js.');
  return {
    ...where,
    nginx: parseNginx(doc, keyPath, where.domain !== undefined),
    start,
    binds: parseBinds(doc, at('binds')),
    buildOn: parseBuildOn(doc, at('build_on')),
    health: parseHealth(doc, at('health')),
    max: parseMax(doc, at('max')),
    ttlMs: parseTtl(doc, at('ttl')),
    limits: parseLimits(doc, at('limits')),
    env: parsePreviewEnv(doc, keyPath),
    trusted: parseTrusted(doc, at('trusted')),
    database: parseDatabase(doc, at('database')),
    user: parseUser(doc, at('user')),
    uids: parseUids(doc, at('uids'), at('user')),
    auth: parseAuth(doc, at('auth')),
    keyPath,
  };
}

function parseBuildOn(doc: ConfigDoc, keyPath: KeyPath): PreviewsConfig['buildOn'] {
  const on = getKey(doc, keyPath, 'string') ?? 'here';
  if (on !== 'here' && on !== 'workers')
    throw configError(
      doc,
      keyPath,
      `must be here (hook-server's machine builds) or workers (the queue's shipkit workers build), got ${JSON.stringify(on)}.`,
    );
  if (on === 'workers' && valueAt(doc.data, ['queue']) === undefined)
    throw configError(doc, keyPath, 'workers is for a queue: database the workers take builds from; set queue: first.');
  return on;
}

function parseBinds(doc: ConfigDoc, keyPath: KeyPath): PreviewsConfig['binds'] {
  const binds = getKey(doc, keyPath, 'string') ?? PREVIEW_DEFAULTS.binds;
  if (binds !== 'launchfit' && binds !== 'app')
    throw configError(
      doc,
      keyPath,
      `must be launchfit (it binds the port and hands the app fd 3: no downtime on a push) or app (the app binds $PORT itself), got ${JSON.stringify(binds)}.`,
    );
  return binds;
}

function parseWhere(doc: ConfigDoc, keyPath: KeyPath): { domain?: string; path?: string } {
  const domain = getKey(doc, [...keyPath, 'domain'], 'string');
  const prefix = getKey(doc, [...keyPath, 'path'], 'string');
  if (domain !== undefined && prefix !== undefined)
    throw configError(
      doc,
      [...keyPath, 'path'],
      'is given with domain:; give one: domain: (pr-N.DOMAIN, wildcard DNS) or path: (/PATH/pr-N/ under your site).',
    );
  if (domain !== undefined) {
    const problem = values.previewDomainProblem(domain);
    if (problem) throw configError(doc, [...keyPath, 'domain'], `${problem}.`);
    return { domain };
  }
  if (prefix !== undefined) {
    const problem = values.previewPathProblem(prefix);
    if (problem) throw configError(doc, [...keyPath, 'path'], `${problem}.`);
    return { path: values.normalisePreviewPath(prefix) };
  }
  throw configError(
    doc,
    keyPath,
    'needs domain: (previews as pr-N.DOMAIN, such as preview.example.com) or path: (as /PATH/pr-N/, such as /previews/).',
  );
}

function parseNginx(doc: ConfigDoc, repoPreviews: KeyPath, domainMode: boolean): PreviewsNginx {
  const keyPath = [...repoPreviews, 'nginx'];
  getKey(doc, keyPath, 'object');
  checkKnownKeys(doc, keyPath, ['dir', 'listen', 'test', 'reload']);
  const dir = getKey(doc, [...keyPath, 'dir'], 'string') ?? PREVIEW_DEFAULTS.dir;
  if (!dir.trim() || /[\0-\x1f\x7f]/.test(dir))
    throw configError(
      doc,
      [...keyPath, 'dir'],
      'is empty or holds a control character: give the folder your nginx.conf includes, such as /etc/nginx/shipkit-previews.',
    );
  const rawListen = valueAt(doc.data, [...keyPath, 'listen']);
  if (rawListen !== undefined && !domainMode)
    throw configError(
      doc,
      [...keyPath, 'listen'],
      'is for domain: only; with path: previews are locations inside your own server block, which has its listen.',
    );
  const listen = values.parseListen(rawListen ?? PREVIEW_DEFAULTS.listen);
  if (listen === undefined)
    throw configError(doc, [...keyPath, 'listen'], 'must be a port (80) or ADDRESS:PORT (127.0.0.1:8080).');
  return {
    dir: path.resolve(path.dirname(doc.file), dir),
    listen,
    test: parseCommand(doc, [...keyPath, 'test'], PREVIEW_DEFAULTS.test),
    reload: parseCommand(doc, [...keyPath, 'reload'], PREVIEW_DEFAULTS.reload),
  };
}

function parseCommand(doc: ConfigDoc, keyPath: KeyPath, fallback: string): string[] {
  const text = getKey(doc, keyPath, 'string') ?? fallback;
  const split = values.splitCommand(text);
  if ('problem' in split) throw configError(doc, keyPath, `${split.problem} (such as ${fallback}).`);
  return split.argv;
}

function parseHealth(doc: ConfigDoc, keyPath: KeyPath): string {
  const health = getKey(doc, keyPath, 'string') ?? PREVIEW_DEFAULTS.health;
  if (!/^\/[\x21-\x7e]*$/.test(health) || health.includes('#'))
    throw configError(doc, keyPath, 'must be a path on the app starting with "/", such as /healthz (no spaces or #).');
  return health;
}

function parseMax(doc: ConfigDoc, keyPath: KeyPath): number {
  const max = getKey(doc, keyPath, 'number') ?? PREVIEW_DEFAULTS.max;
  if (!Number.isInteger(max) || max < 1 || max > MAX_PREVIEWS)
    throw configError(
      doc,
      keyPath,
      `must be a whole number of live previews from 1 to ${MAX_PREVIEWS} (default ${PREVIEW_DEFAULTS.max}).`,
    );
  return max;
}

function parseTtl(doc: ConfigDoc, keyPath: KeyPath): number {
  const raw = valueAt(doc.data, keyPath) ?? PREVIEW_DEFAULTS.ttl;
  const ms = values.parseDuration(raw);
  if (ms === undefined || ms < 60_000 || ms > 365 * 86_400_000)
    throw configError(
      doc,
      keyPath,
      `must be a duration from 1m to 365d such as 72h, 30m or 7d, got ${JSON.stringify(raw)}.`,
    );
  return ms;
}

function parseLimits(doc: ConfigDoc, keyPath: KeyPath): PreviewsConfig['limits'] {
  if (!getKey(doc, keyPath, 'object')) return {};
  checkKnownKeys(doc, keyPath, ['memory', 'cpu']);
  const limits: PreviewsConfig['limits'] = {};
  const memory = valueAt(doc.data, [...keyPath, 'memory']);
  if (memory !== undefined) {
    limits.memoryBytes = values.parseMemory(memory);
    if (limits.memoryBytes === undefined || limits.memoryBytes < 16 * 1024 ** 2)
      throw configError(
        doc,
        [...keyPath, 'memory'],
        `must be a size of at least 16M with K, M or G, such as 512M or 1G, got ${JSON.stringify(memory)}.`,
      );
  }
  const cpu = valueAt(doc.data, [...keyPath, 'cpu']);
  if (cpu !== undefined) {
    limits.cpuPercent = values.parseCpuPercent(cpu);
    if (limits.cpuPercent === undefined)
      throw configError(
        doc,
        [...keyPath, 'cpu'],
        `must be a share of one CPU from 1% to 100%, such as 50%, got ${JSON.stringify(cpu)}.`,
      );
  }
  return limits;
}

function parsePreviewEnv(doc: ConfigDoc, previewsKeyPath: KeyPath): BuildEnvEntry[] {
  const entries = parseBuildEnv(doc, previewsKeyPath);
  for (const entry of entries)
    if (PREVIEW_RESERVED.has(entry.name.toUpperCase()))
      throw configError(
        doc,
        entry.keyPath,
        'is set by shipkit for every preview and cannot be overridden; choose another name.',
      );
  return entries;
}

function parseTrusted(doc: ConfigDoc, keyPath: KeyPath): string[] {
  const raw = valueAt(doc.data, keyPath);
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw configError(doc, keyPath, 'must be a list of forge logins, such as [alice, bob].');
  raw.forEach((login, i) => {
    const problem = values.loginProblem(login);
    if (problem) throw configError(doc, [...keyPath, i], `${problem}; give a login such as alice.`);
  });
  return [...new Set(raw as string[])];
}

function parseDatabase(doc: ConfigDoc, keyPath: KeyPath): PreviewsConfig['database'] {
  if (!getKey(doc, keyPath, 'object')) return undefined;
  checkKnownKeys(doc, keyPath, ['url', 'template']);
  const url = getKey(doc, [...keyPath, 'url'], 'string', { required: true })!;
  if (!/^(env|file):./.test(url) && !/^postgres(ql)?:\/\/./.test(url))
    throw configError(
      doc,
      [...keyPath, 'url'],
      'must be env:NAME, file:PATH or a postgres:// URL of a role that may create databases.',
    );
  const template = getKey(doc, [...keyPath, 'template'], 'string');
  if (template !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(template))
    throw configError(
      doc,
      [...keyPath, 'template'],
      'must be a database name of letters, digits and _ (at most 63), such as site_seed.',
    );
  return { url, template };
}

/** `uids: FROM-TO`: at least 16 uids, all above the ordinary accounts' (1000–60000) and below 2^32 - 1. */
function parseUids(doc: ConfigDoc, keyPath: KeyPath, userPath: KeyPath): PreviewsConfig['uids'] {
  const value = valueAt(doc.data, keyPath);
  if (value === undefined) return undefined;
  const m = /^([0-9]{1,10})-([0-9]{1,10})$/.exec(String(value).trim());
  const [from, to] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!m || from < 65_536 || to > 4_294_967_294 || to - from < 15)
    throw configError(
      doc,
      keyPath,
      'must be a range FROM-TO of at least 16 uids between 65536 and 4294967294 that no account uses, such as 1879048192-1879113727.',
    );
  if (getKey(doc, userPath, 'string') !== undefined)
    throw configError(
      doc,
      keyPath,
      'gives each preview a uid of its own, and user: runs them all as one user: keep one.',
    );
  return { from, to };
}

function parseUser(doc: ConfigDoc, keyPath: KeyPath): string | undefined {
  const user = getKey(doc, keyPath, 'string');
  if (user === undefined) return undefined;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw configError(doc, keyPath, 'must be a Unix user name, such as www-data.');
  if (user === 'root')
    throw configError(
      doc,
      keyPath,
      "must not be root: a preview runs a pull request's code; give an unprivileged user.",
    );
  return user;
}

function parseAuth(doc: ConfigDoc, keyPath: KeyPath): PreviewsConfig['auth'] {
  if (!getKey(doc, keyPath, 'object')) return undefined;
  checkKnownKeys(doc, keyPath, ['users_file']);
  const file = getKey(doc, [...keyPath, 'users_file'], 'string', { required: true })!;
  const usersFile = path.resolve(path.dirname(doc.file), file);
  // The path goes into nginx's config (auth_basic_user_file), where a quote, `;` or `$` would mean something.
  if (!/^\/[A-Za-z0-9._/@+-]+$/.test(usersFile))
    throw configError(
      doc,
      [...keyPath, 'users_file'],
      'must be the path of an htpasswd file of letters, digits, "/", ".", "_", "-", "@", "+", such as /etc/nginx/previews.htpasswd.',
    );
  return { usersFile };
}
