// The top-level `apps:` block of shipkit.yml (docs/environments.md): per app its release key and its
// environments (staging, production, any names), each with its DEST, fleet, the branches whose
// pushes publish there, and what it asks before a release moves in: approvals, windows, gates.
// Parsers only; a mistake is a configuration error at FILE:LINE.
import path from 'node:path';
import {
  checkKnownKeys,
  configError,
  getKey,
  valueAt,
  wholeNumber,
  type ConfigDoc,
  type KeyPath,
} from '../core/yaml-config.ts';
import { messageOf } from '../core/errors.ts';
import { nameProblem, UI_USER_PREFIX, userNameProblem } from '../core/names.ts';
import { isRemoteDestination } from '../release/dest/destination.ts';
import { parseWindow, type DeployWindow } from '../release/gates/windows.ts';
import { parseGate, type MetricGate } from '../release/gates/metric.ts';
import type { ApprovalRule } from '../release/gates/approvals.ts';
import { parseBuildEnv, type BuildEnvEntry } from './build-env.ts';
import { parseDuration } from './preview-values.ts';
import { filePath, parseStepRules, type StepRules } from './pipeline.ts';
import type { FleetApp } from './fleet.ts';
import type { PublishConfig } from './pipeline.ts';

export interface EnvironmentConfig {
  name: string;
  /** A folder (absolute), `s3://bucket/prefix` or `user@host:path`. */
  to: string;
  /** The `fleet:` app whose hosts take releases here (its secret signs the rollout's requests). */
  fleet?: FleetApp;
  /** Where releases are promoted from: `from:`, else the environment listed before this one. */
  from?: string;
  /** Pushes to these branches publish here (the repo whose publish.name is the app). */
  branches: string[];
  /** Variables (and secrets) of the builds that publish here, over the repo's `env:` of the same name. */
  env: BuildEnvEntry[];
  /** How `release rollout` moves through the fleet here; undefined = the command line's. */
  rollout?: StepRules;
  approvals?: ApprovalRule;
  windows: DeployWindow[];
  gates: MetricGate[];
  /** Promotes into this environment copy the tarball, never hard-link it to the source's (`copy: true`). */
  copy: boolean;
  keyPath: KeyPath;
}

export interface AppConfig {
  name: string;
  /** The release key (armored secret key file), absolute; `release` commands' default `--key`. */
  key?: string;
  passphraseFile?: string;
  /** hook-server as `release rollout` reaches it; else public_url, else http://listen. */
  fleetUrl?: string;
  /** In the order written: the first is where builds land, the last usually production. */
  environments: Map<string, EnvironmentConfig>;
  keyPath: KeyPath;
}

const APP_KEYS = ['key', 'passphrase', 'fleet_url', 'environments'] as const;
const ENVIRONMENT_KEYS = [
  'to',
  'fleet',
  'from',
  'branches',
  'env',
  'rollout',
  'approvals',
  'windows',
  'gates',
  'copy',
] as const;
const APPROVAL_KEYS = ['required', 'from', 'expires', 'ui_key'] as const;
const ROLLOUT_KEYS = ['steps', 'wait', 'max_failures', 'allow_missing', 'rollback'] as const;
const DAY_MS = 86_400_000;

export function parseApps(doc: ConfigDoc, fleet: Map<string, FleetApp>): Map<string, AppConfig> {
  const apps = new Map<string, AppConfig>();
  const block = getKey(doc, ['apps'], 'object');
  for (const name of Object.keys(block ?? {})) {
    const keyPath = ['apps', name];
    const problem = nameProblem(name);
    if (problem) throw configError(doc, keyPath, `is not a valid app name: it ${problem}.`);
    getKey(doc, keyPath, 'object', { required: true });
    checkKnownKeys(doc, keyPath, APP_KEYS);
    const key = getKey(doc, [...keyPath, 'key'], 'string');
    const passphrase = getKey(doc, [...keyPath, 'passphrase'], 'string');
    const fleetUrl = getKey(doc, [...keyPath, 'fleet_url'], 'string');
    if (fleetUrl !== undefined && !/^https?:\/\/[^\s/]+/.test(fleetUrl))
      throw configError(
        doc,
        [...keyPath, 'fleet_url'],
        "must be hook-server's http(s) URL, such as http://127.0.0.1:9000.",
      );
    apps.set(name, {
      name,
      key: key === undefined ? undefined : filePath(doc, [...keyPath, 'key'], key),
      passphraseFile: passphrase === undefined ? undefined : filePath(doc, [...keyPath, 'passphrase'], passphrase),
      fleetUrl: fleetUrl?.replace(/\/+$/, ''),
      environments: parseEnvironments(doc, [...keyPath, 'environments'], fleet),
      keyPath,
    });
  }
  return apps;
}

function parseEnvironments(
  doc: ConfigDoc,
  keyPath: KeyPath,
  fleet: Map<string, FleetApp>,
): Map<string, EnvironmentConfig> {
  const block = getKey(doc, keyPath, 'object', { required: true })!;
  const names = Object.keys(block);
  if (names.length === 0) throw configError(doc, keyPath, 'names no environment (staging:, production:, …).');
  const environments = new Map<string, EnvironmentConfig>();
  for (const [i, name] of names.entries()) {
    const at = [...keyPath, name];
    const problem = nameProblem(name);
    if (problem) throw configError(doc, at, `is not a valid environment name: it ${problem}.`);
    getKey(doc, at, 'object', { required: true });
    checkKnownKeys(doc, at, ENVIRONMENT_KEYS);
    const from = getKey(doc, [...at, 'from'], 'string') ?? (i > 0 ? names[i - 1] : undefined);
    if (from !== undefined && (from === name || !names.includes(from)))
      throw configError(doc, [...at, 'from'], `must name another environment of this app (${names.join(', ')}).`);
    const fleetName = getKey(doc, [...at, 'fleet'], 'string');
    const fleetApp = fleetName === undefined ? undefined : fleet.get(fleetName);
    if (fleetName !== undefined && !fleetApp)
      throw configError(doc, [...at, 'fleet'], `names ${fleetName}, which the top-level fleet: block does not have.`);
    environments.set(name, {
      name,
      to: destinationOf(doc, [...at, 'to']),
      fleet: fleetApp,
      from,
      branches: getKey(doc, [...at, 'branches'], 'string[]') ?? [],
      env: parseBuildEnv(doc, at),
      rollout: parseEnvironmentRollout(doc, [...at, 'rollout']),
      approvals: parseApprovals(doc, [...at, 'approvals']),
      windows: listOf(doc, [...at, 'windows'], parseWindow),
      gates: listOf(doc, [...at, 'gates'], parseGate),
      copy: getKey(doc, [...at, 'copy'], 'boolean') ?? false,
      keyPath: at,
    });
  }
  for (const [branch, holders] of branchOwners(environments))
    if (holders.length > 1)
      throw configError(doc, keyPath, `maps branch ${branch} to more than one environment (${holders.join(', ')}).`);
  return environments;
}

function branchOwners(environments: Map<string, EnvironmentConfig>): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const env of environments.values())
    for (const branch of env.branches) owners.set(branch, [...(owners.get(branch) ?? []), env.name]);
  return owners;
}

function parseEnvironmentRollout(doc: ConfigDoc, keyPath: KeyPath): StepRules | undefined {
  if (getKey(doc, keyPath, 'object') === undefined) return undefined;
  checkKnownKeys(doc, keyPath, ROLLOUT_KEYS);
  return parseStepRules(doc, keyPath);
}

function parseApprovals(doc: ConfigDoc, keyPath: KeyPath): ApprovalRule | undefined {
  if (getKey(doc, keyPath, 'object') === undefined) return undefined;
  checkKnownKeys(doc, keyPath, APPROVAL_KEYS);
  const from = getKey(doc, [...keyPath, 'from'], 'string[]', { required: true })!;
  if (from.length === 0)
    throw configError(
      doc,
      [...keyPath, 'from'],
      "must list the approvers' public keys (or status-page users, ui:NAME).",
    );
  const required = wholeNumber(doc, [...keyPath, 'required'], 1, 1, from.length);
  const expires = valueAt(doc.data, [...keyPath, 'expires']);
  const expiresMs = expires === undefined ? DAY_MS : parseDuration(expires);
  if (expiresMs === undefined || expiresMs > 30 * DAY_MS)
    throw configError(doc, [...keyPath, 'expires'], 'must be a duration such as 24h, 90m or 7d, at most 30d.');
  const keys: string[] = [];
  const users: string[] = [];
  from.forEach((entry, i) => {
    if (!entry.startsWith(UI_USER_PREFIX)) return void keys.push(filePath(doc, [...keyPath, 'from', i], entry));
    const name = entry.slice(UI_USER_PREFIX.length);
    const problem = userNameProblem(name);
    if (problem) throw configError(doc, [...keyPath, 'from', i], `names a status-page user that ${problem}.`);
    if (users.includes(name)) throw configError(doc, [...keyPath, 'from', i], `names ${entry} a second time.`);
    users.push(name);
  });
  const uiKey = getKey(doc, [...keyPath, 'ui_key'], 'string');
  if (users.length && uiKey === undefined)
    throw configError(
      doc,
      keyPath,
      "names status-page users (ui:NAME) but no ui_key: the public key hook-server signs their approvals with (its ui_key:'s).",
    );
  if (!users.length && uiKey !== undefined)
    throw configError(
      doc,
      [...keyPath, 'ui_key'],
      'is for approvals by status-page users; from: names none (ui:NAME).',
    );
  if (!users.length) return { required, from: keys, expiresMs };
  return { required, from: keys, users, uiKey: filePath(doc, [...keyPath, 'ui_key'], uiKey!), expiresMs };
}

/** A list whose entries one parser reads; its error gains the entry's FILE:LINE. */
function listOf<T>(doc: ConfigDoc, keyPath: KeyPath, parse: (raw: unknown) => T): T[] {
  const raw = valueAt(doc.data, keyPath);
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw configError(doc, keyPath, 'must be a list.');
  return raw.map((entry, i) => {
    try {
      return parse(entry);
    } catch (error) {
      throw configError(doc, [...keyPath, i], messageOf(error));
    }
  });
}

function destinationOf(doc: ConfigDoc, keyPath: KeyPath): string {
  const to = getKey(doc, keyPath, 'string', { required: true })!;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(to) && !to.startsWith('s3://'))
    throw configError(
      doc,
      keyPath,
      'must be a folder, user@host:path or s3://bucket/prefix, where releases are written.',
    );
  return isRemoteDestination(to) ? to : path.resolve(path.dirname(doc.file), to);
}

/**
 * A repo's `publish:` for the app of `apps:` whose environment lists the repo's branch: its `to:`
 * is that environment's DEST (a `to:` of its own must be the same one), and its builds get the
 * environment's `env:` over the repo's own.
 */
export function publishToEnvironment(
  doc: ConfigDoc,
  repo: { branch: string; publish?: PublishConfig; env: BuildEnvEntry[] },
  apps: Map<string, AppConfig>,
): void {
  const { branch, publish } = repo;
  if (!publish) return;
  const app = apps.get(publish.name);
  const env = [...(app?.environments.values() ?? [])].find((e) => e.branches.includes(branch));
  if (env && publish.to && publish.to !== env.to)
    throw configError(
      doc,
      [...publish.keyPath, 'to'],
      `is ${publish.to}, but branch ${branch} publishes to environment ${env.name} (${env.to}) in apps: ${publish.name}; leave to: out.`,
    );
  if (env) {
    Object.assign(publish, { to: env.to, environment: env.name });
    // The environment's variables win over the repo's own of the same name.
    const own = new Set(env.env.map((e) => e.name));
    repo.env = [...repo.env.filter((e) => !own.has(e.name)), ...env.env];
  }
  if (!publish.to)
    throw configError(
      doc,
      publish.keyPath,
      `needs to: (a folder, user@host:path or s3://bucket/prefix), or an environment of apps: ${publish.name} ` +
        `with branches: [${branch}].`,
    );
}
