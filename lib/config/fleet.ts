// The top-level `fleet:` block of shipkit.yml (issue 23, DESIGN §8): one entry per app whose
// hosts report to hook-server, each with its own secret (hosts sign POST /fleet/reports with it,
// `release rollout` signs GET /fleet/APP and POST /fleet/rollouts with it).
//   fleet:
//     my-app:
//       secret: file:/etc/shipkit/fleet-my-app.secret   # or env:NAME
import { checkKnownKeys, configError, getKey, type ConfigDoc, type KeyPath } from '../core/yaml-config.ts';
import { nameProblem } from '../core/names.ts';

export interface FleetApp {
  app: string;
  /** Unresolved `env:NAME` or `file:PATH` (relative to the config file). */
  secret: string;
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
    const secret = getKey(doc, [...keyPath, 'secret'], 'string', { required: true })!;
    // A literal secret in the file would be copied into every backup and diff of it.
    if (!/^(env|file):./.test(secret))
      throw configError(
        doc,
        [...keyPath, 'secret'],
        "must be env:NAME or file:PATH (the app's fleet secret, kept out of shipkit.yml).",
      );
    fleet.set(app, { app, secret, keyPath });
  }
  return fleet;
}
