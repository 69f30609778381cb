// The top-level `fleet:` block of shipkit.yml (docs/fleet.md): one entry per app whose hosts report
// to hook-server, with its secret (a list is a change-over: new first), max_hosts, forget_after, and
// where its release ledger is read (ledger, keys).
// The whole story: docs/internals.md.
import {
  checkKnownKeys,
  configError,
  getKey,
  valueAt,
  wholeNumber,
  type ConfigDoc,
  type KeyPath,
} from '../core/yaml-config.ts';
import path from 'node:path';
import { nameProblem } from '../core/names.ts';
import { isRemoteDestination } from '../release/dest/destination.ts';

export interface FleetApp {
  app: string;
  /** Unresolved `env:NAME` or `file:PATH` (relative to the config file); more than one during a change-over, the current first. */
  secrets: string[];
  /** Hosts the registry keeps for the app: a report of a host beyond them is refused. */
  maxHosts: number;
  /** Days after its latest report a silent host is forgotten; 0 = never. */
  forgetAfterDays: number;
  /** Where the app's release ledger is read for its Releases view (a folder made absolute, s3://… or user@host:path). */
  ledger?: string;
  /** The release certificate (keys.asc) the ledger is verified with, absolute; default the one beside the ledger. */
  keys?: string;
  keyPath: KeyPath;
}

const FLEET_APP_KEYS = ['secret', 'max_hosts', 'forget_after', 'ledger', 'keys'] as const;
export const DEFAULT_MAX_HOSTS = 50_000;
export const DEFAULT_FORGET_AFTER_DAYS = 30;

export function parseFleetConfig(doc: ConfigDoc): Map<string, FleetApp> {
  const fleet = new Map<string, FleetApp>();
  const block = getKey(doc, ['fleet'], 'object');
  if (block === undefined) return fleet;
  for (const app of Object.keys(block)) {
    const keyPath = ['fleet', app];
    const problem = nameProblem(app);
    if (problem) throw configError(doc, keyPath, `is not a valid app name: it ${problem}.`);
    getKey(doc, keyPath, 'object', { required: true });
    checkKnownKeys(doc, keyPath, FLEET_APP_KEYS);
    const value = valueAt(doc.data, [...keyPath, 'secret']);
    const secrets = Array.isArray(value)
      ? (getKey(doc, [...keyPath, 'secret'], 'string[]', { required: true }) ?? [])
      : [getKey(doc, [...keyPath, 'secret'], 'string', { required: true })!];
    if (secrets.length === 0 || secrets.length > 4)
      throw configError(doc, [...keyPath, 'secret'], 'must name 1 to 4 secrets (the current one first).');
    // A literal secret in the file would be copied into every backup and diff of it.
    secrets.forEach((secret, i) => {
      if (!/^(env|file):./.test(secret))
        throw configError(
          doc,
          Array.isArray(value) ? [...keyPath, 'secret', i] : [...keyPath, 'secret'],
          "must be env:NAME or file:PATH (the app's fleet secret, kept out of shipkit.yml).",
        );
    });
    const maxHosts = wholeNumber(doc, [...keyPath, 'max_hosts'], DEFAULT_MAX_HOSTS, 1, 10_000_000);
    const forgetAfterDays = wholeNumber(doc, [...keyPath, 'forget_after'], DEFAULT_FORGET_AFTER_DAYS, 0, 36_500);
    const ledger = getKey(doc, [...keyPath, 'ledger'], 'string');
    const keys = getKey(doc, [...keyPath, 'keys'], 'string');
    const beside = (file: string) => path.resolve(path.dirname(doc.file), file);
    fleet.set(app, {
      app,
      secrets,
      maxHosts,
      forgetAfterDays,
      ledger: ledger === undefined ? undefined : isRemoteDestination(ledger) ? ledger : beside(ledger),
      keys: keys === undefined ? undefined : beside(keys),
      keyPath,
    });
  }
  return fleet;
}
