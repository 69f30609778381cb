// How one shipkit program starts another (hook-server its `build` and `release` jobs, a build its
// `litpro`): through the bundle it runs from, or the checkout's sources under the runtime it runs on.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

declare const SHIPKIT_BUNDLED: boolean | undefined;
declare const SHIPKIT_MULTICALL: boolean | undefined;

/**
 * In a bundle, the command that runs another shipkit program: the multi-call dist/shipkit.mjs
 * runs it through itself (`node shipkit.mjs build …`, litpro included), a per-script
 * dist/hook-server.mjs runs dist/build.mjs beside it. Undefined when running from sources.
 */
export function bundledCommandFor(
  name: 'build' | 'release' | 'litpro' | 'hook-server' | 'launchfit',
): string[] | undefined {
  if (typeof SHIPKIT_BUNDLED === 'undefined' || !SHIPKIT_BUNDLED) return undefined;
  const self = fileURLToPath(import.meta.url);
  if (typeof SHIPKIT_MULTICALL !== 'undefined' && SHIPKIT_MULTICALL) return [process.execPath, self, name];
  return name === 'litpro' ? undefined : [process.execPath, path.join(path.dirname(self), `${name}.mjs`)];
}

/** The command that runs a shipkit script (`build`, `release`) under the runtime we run on. */
export async function scriptCommandFor(
  name: 'build' | 'release',
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const override = env[`SHIPKIT_${name.toUpperCase()}_COMMAND`];
  if (override) return override.trim().startsWith('[') ? (JSON.parse(override) as string[]) : [override];
  return ownCommandFor(name);
}

/**
 * The command that runs a shipkit script as this installation would: through the bundle it runs
 * from, or the checkout's sources (hook-server starts itself again for its delivery workers).
 */
export function ownCommandFor(name: 'build' | 'release' | 'hook-server'): string[] {
  const bundled = bundledCommandFor(name);
  if (bundled) return bundled;
  const root = path.resolve(import.meta.dirname, '../..');
  const source = path.join(root, 'scripts', `${name}.ts`);
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  if (deno) return [deno.execPath(), 'run', '-A', '--quiet', source];
  const loader = path.join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs');
  return [process.execPath, '--import', loader, source];
}
