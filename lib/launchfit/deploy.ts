// `launchfit deploy` (and `launchfit URL`): write launchify.yml into a fresh deploy folder,
// then install the current release, here or through the running launchfit.
import { copyFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { pathExists } from '../core/fs.ts';
import type { Logger } from '../core/log.ts';
import { CONFIG_NAME, loadLaunchConfig } from './deploy-folder/config.ts';
import { runHereOrOnRunning } from './local-or-running.ts';
import { parseKeyPin } from './deploy-folder/key-pin.ts';
import { deployPaths, type DeployPaths } from './deploy-folder/state.ts';
import type { CheckResult } from './install/context.ts';

export interface BootstrapOptions {
  url?: string;
  keyfile?: string;
  key?: string;
}

/**
 * `launchfit URL` in a folder without launchify.yml writes one (server, trusted key); an
 * existing launchify.yml is used as it is, and must agree with URL when both are given.
 * Returns the files it wrote, so a first deploy that fails can take them back.
 */
async function bootstrapConfig(paths: DeployPaths, opts: BootstrapOptions, log: Logger): Promise<string[]> {
  const file = path.join(paths.dir, CONFIG_NAME);
  if (await pathExists(file)) {
    if (opts.url || opts.keyfile || opts.key) {
      const config = await loadLaunchConfig(paths.dir);
      const want = opts.url && (opts.url.endsWith('/') ? opts.url : `${opts.url}/`);
      if (want && config.updates.server !== want) {
        throw new ConfigError(
          `${file} already sets updates.server to ${config.updates.server ?? '(nothing)'}; edit it instead of passing another URL.`,
        );
      }
      if (opts.keyfile || opts.key)
        log.warn(`${CONFIG_NAME} exists; --keyfile/--key are ignored, edit updates.gpg in it instead`);
    }
    return [];
  }
  if (!opts.url)
    throw new ConfigError(`${file} does not exist; run \`launchfit URL\` with the update server's URL to create it.`);
  if (!/^https?:\/\/\S+$/.test(opts.url))
    throw new ConfigError(`${JSON.stringify(opts.url)} is not an http:// or https:// URL.`);
  const entries = (await readdir(paths.dir)).filter((n) => n !== '.launchfit');
  if (entries.length)
    throw new ConfigError(`${paths.dir} is not empty and has no ${CONFIG_NAME}; deploy into an empty folder.`);
  if (!opts.keyfile && !opts.key)
    throw new ConfigError(
      'No trusted key: pass --keyfile PUBKEY.asc, or --key with the full fingerprint of the key on the server.',
    );
  if (opts.key && parseKeyPin(opts.key).kind !== 'fingerprint' && !opts.keyfile) {
    throw new ConfigError(
      'A key ID alone is never trusted: a key fetched from the server is trusted only against a pinned ' +
        'full fingerprint. Pass --key with all 40 (or 64) hex digits, or --keyfile.',
    );
  }
  const lines = [
    '# written by `launchfit deploy`; see launchify.example.yml for every key',
    'updates:',
    `  server: ${JSON.stringify(opts.url)}`,
    '  gpg:',
  ];
  if (opts.key) lines.push(`    key: ${JSON.stringify(opts.key.replace(/\s+/g, ''))}`);
  const written: string[] = [];
  if (opts.keyfile) {
    try {
      await copyFile(opts.keyfile, path.join(paths.dir, 'trusted.asc'));
    } catch (error) {
      throw new ConfigError(`Cannot read the key file ${opts.keyfile} (${(error as NodeJS.ErrnoException).code}).`, {
        cause: error,
      });
    }
    written.push(path.join(paths.dir, 'trusted.asc'));
    lines.push('    keyfile: trusted.asc');
  }
  await writeFile(file, `${lines.join('\n')}\n`, { flag: 'wx' });
  written.push(file);
  log.info(`wrote ${file}`);
  return written;
}

/**
 * `launchfit deploy`: write launchify.yml when the folder has none, then install the current
 * release (through the running launchfit when there is one). A first deploy that fails takes
 * back the files it wrote, so the folder can be deployed into again.
 */
export async function deployOnce(dir: string, opts: BootstrapOptions, log: Logger): Promise<CheckResult> {
  const written = await bootstrapConfig(deployPaths(dir), opts, log);
  try {
    return await runHereOrOnRunning(dir, { command: 'update' }, log);
  } catch (error) {
    for (const file of written) await rm(file, { force: true });
    throw error;
  }
}
