// `npm start` with no config anywhere: hook-server runs on built-in defaults. The first start
// writes ./.shipkit/shipkit.yml with a generated webhook secret and read-API token (files kept
// 0600 beside it); the secret and token are printed that one time and never again.
import { randomBytes } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { atomicWriteFile, ensureDir, pathExists } from '../core/fs.ts';
import { exampleConfigPath } from './example-config.ts';
import { findConfigFile } from './shipkit-yml.ts';

export const FIRST_RUN_DIR = '.shipkit';

export interface ConfigChoice {
  file: string;
  /** Set on the very first start: what to show the operator once. */
  created?: { secret: string; token: string; dir: string };
}

/** The config file to use: the usual search (docs/hook-server.md), else the first-run one in ./.shipkit, made if missing. */
export async function findOrCreateConfig(
  flag: string | undefined,
  { env = process.env, cwd = process.cwd() } = {},
): Promise<ConfigChoice> {
  try {
    return { file: findConfigFile(flag, env, cwd) };
  } catch (error) {
    if (flag || env.SHIPKIT_CONFIG || !(error instanceof ConfigError)) throw error;
  }
  const dir = path.join(cwd, FIRST_RUN_DIR);
  const file = path.join(dir, 'shipkit.yml');
  if (await pathExists(file)) return { file };
  return { file, created: await writeFirstRunConfig(dir, file) };
}

async function writeFirstRunConfig(dir: string, file: string) {
  await ensureDir(dir, 0o700);
  await chmod(dir, 0o700);
  const secret = randomBytes(32).toString('hex');
  const token = randomBytes(32).toString('hex');
  await atomicWriteFile(path.join(dir, 'webhook-secret'), `${secret}\n`, { mode: 0o600 });
  await atomicWriteFile(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const example = exampleConfigPath();
  // The config is written last: its presence means the first start completed.
  await atomicWriteFile(
    file,
    [
      '# Written by hook-server on its first start. Add your repositories under repos: and restart.',
      example
        ? `# Every key, explained: ${example} (or run shipkit example-config).`
        : '# Every key, explained: run shipkit example-config.',
      'listen: 127.0.0.1:9000',
      'data: .                       # this folder: jobs, journal, repos, logs',
      "secret: file:webhook-secret   # webhook secret (enter it in the forge's webhook settings)",
      "token: file:token             # read token: GET /jobs, /metrics, and the status page's login",
      'concurrency: 1',
      'workers: auto                 # processes taking deliveries: one per core, counting this one',
      'repos: {}',
      '#  octo/site:',
      '#    branch: main',
      '#    timeout: 900',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { secret, token, dir };
}

/** What the first start prints, once. */
export function firstRunMessage(created: { secret: string; token: string; dir: string }, url: string): string {
  return [
    `First start: wrote ${path.join(created.dir, 'shipkit.yml')} (add your repos there, then restart).`,
    `  webhook secret: ${created.secret}`,
    `  read token (API, and the status page's login): ${created.token}`,
    `Both are kept in ${created.dir} (mode 0600) and will not be printed again.`,
    `Try it:  curl ${url}/healthz`,
    `         curl -H "Authorization: Bearer $(cat ${path.join(created.dir, 'token')})" ${url}/jobs`,
    `Status page: ${url}/ in a browser (log in with the read token).`,
    '',
  ].join('\n');
}
