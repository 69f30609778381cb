// The top-level `fleet:` block of shipkit.yml (docs/fleet.md): one entry per app whose hosts
// report to hook-server, each with its own secret (`release rollout` signs with it; hosts enrol
// with it and then sign with their own credential). A list is a change-over: new first, old after.
//   fleet:
//     my-app:
//       secret: file:/etc/shipkit/fleet-my-app.secret   # or env:NAME, or [NEW, OLD]
import { checkKnownKeys, configError, getKey, valueAt, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { nameProblem } from '../core/names.ts';

export interface FleetApp {
  app: string;
  /** Unresolved `env:NAME` or `file:PATH` (relative to the config file); more than one during a change-over, the current first. */
  secrets: string[];
  keyPath: KeyPath;
}

const FLEET_APP_KEYS = ['secret'] as const;

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
    fleet.set(app, { app, secrets, keyPath });
  }
  return fleet;
}
