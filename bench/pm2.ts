// pm2, the peer of the zero-downtime benchmark. It is installed for the benchmark only (77
// packages, 25 MB, none of which the tests or CI need), pinned, into a folder of its own outside
// the project (`npm install --prefix`, reused by later runs), and every run uses a private
// PM2_HOME in a temp folder and ends with `pm2 kill`, so no daemon is left running and the
// user's own pm2 (if any) is never touched. pm2's update check and first-run call home are off.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCommand } from '../test/_helpers/common.ts';

export const PM2_VERSION = '7.0.4';

/** The pm2 CLI, installed into BENCH_PM2_PREFIX (default: a folder in the temp dir) if not there yet. */
export async function installPm2(log: (line: string) => void): Promise<string> {
  const prefix = process.env.BENCH_PM2_PREFIX ?? path.join(os.tmpdir(), `shipkit-bench-pm2-${PM2_VERSION}`);
  const bin = path.join(prefix, 'node_modules/pm2/bin/pm2');
  if (existsSync(bin)) return bin;
  log(`installing pm2@${PM2_VERSION} into ${prefix} (for this benchmark only)...`);
  mkdirSync(prefix, { recursive: true });
  const r = await runCommand(
    'npm',
    ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', `pm2@${PM2_VERSION}`],
    { timeoutMs: 300_000 },
  );
  if (r.exitCode !== 0 || !existsSync(bin))
    throw new Error(
      `npm install pm2@${PM2_VERSION} failed; install it by hand into ${prefix} or set BENCH_PM2_PREFIX:\n${r.stderr}`,
    );
  return bin;
}

export interface Pm2App {
  name: string;
  script: string;
  cwd: string;
  mode: 'fork' | 'cluster';
  env: Record<string, string>;
  /** Workers (cluster mode); 1 unless given. */
  instances?: number;
}

export interface Pm2 {
  start(app: Pm2App): Promise<void>;
  reload(name: string): Promise<void>;
  /** `pm2 kill`: stops the apps and the daemon. */
  kill(): Promise<void>;
}

/**
 * A pm2 with its own PM2_HOME under `home`. `prefix`: a command its CLI runs under (e.g.
 * `taskset -c 0`), which the daemon it starts, and the apps, inherit.
 */
export function usePm2(bin: string, home: string, prefix: string[] = []): Pm2 {
  mkdirSync(home, { recursive: true });
  writeFileSync(path.join(home, 'touch'), String(Date.now())); // no first-run banner, no install ping
  const env = { PM2_HOME: home, PM2_DISABLE_VERSION_CHECK: '1' };
  const [cmd, ...pre] = [...prefix, process.execPath];
  const pm2 = async (...args: string[]) => {
    const r = await runCommand(cmd, [...pre, bin, ...args], { env, timeoutMs: 120_000 });
    if (r.exitCode !== 0) throw new Error(`pm2 ${args.join(' ')} failed (exit ${r.exitCode}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  return {
    async start(app) {
      // pm2's documented graceful reload: the app says `ready` (wait_ready), gets SIGINT and
      // kill_timeout to drain. One instance unless `instances` says more.
      const file = path.join(home, `${app.name}.config.json`);
      writeFileSync(
        file,
        JSON.stringify({
          apps: [
            {
              name: app.name,
              script: app.script,
              cwd: app.cwd,
              exec_mode: app.mode,
              instances: app.instances ?? 1,
              env: app.env,
              wait_ready: true,
              listen_timeout: 10_000,
              kill_timeout: 5_000,
              autorestart: true,
            },
          ],
        }),
      );
      await pm2('start', file);
    },
    async reload(name) {
      await pm2('reload', name);
    },
    async kill() {
      await pm2('kill');
    },
  };
}
