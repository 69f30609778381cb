// bench:push's two peers, each on hosts that are folders on this machine reached as
// root@127.0.0.1 over the loopback sshd (test/_helpers/ssh.ts), each taking the commit from a bare
// repo of its own (so a push to it wakes no other side):
// - pm2 deploy: the repo's ecosystem.config.cjs has one `deploy` section per host; each host has
//   its own PM2_HOME (its own daemon, as on a machine of its own) and runs git fetch, reset,
//   `npm install` and `pm2 startOrReload` (cluster mode, one instance, wait_ready: pm2's graceful
//   reload). pm2-deploy runs the hosts of one section one after the other, so the bench runs one
//   `pm2 deploy` per host at once: the fastest way a user gets from pm2.
// - the hand script (bench/push-rsync.sh): build once, rsync to every host at once, ssh restart.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { git, gitEnv, runCommand } from '../test/_helpers/common.ts';
import type { Sshd } from '../test/_helpers/ssh.ts';

const SCRIPT = path.join(import.meta.dirname, 'push-rsync.sh');

export interface Side {
  name: string;
  /** The app port of each host. */
  ports: number[];
  /** git push of the commit, then the deploy: when the tool was done (epoch ms) and its stage marks. */
  deploy(work: string): Promise<{ done: number; marks: Array<[string, number]> }>;
  /** Ends every process the side started (daemons, apps). */
  stop(): Promise<void>;
}

const sshOptions = (sshd: Sshd) => [
  `UserKnownHostsFile=${sshd.knownHosts}`,
  'StrictHostKeyChecking=yes',
  'BatchMode=yes',
  'LogLevel=ERROR',
];

/** Runs a command; its stdout, or an error with its output when it fails. */
async function must(cmd: string, args: string[], options: Parameters<typeof runCommand>[2] = {}): Promise<string> {
  const r = await runCommand(cmd, args, { timeoutMs: 300_000, ...options });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.exitCode}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The `stage NAME EPOCH_MS` lines a side's commands print, as [name, ms] in order. */
export function stageMarks(output: string): Array<[string, number]> {
  return [...output.matchAll(/^stage (\S+) (\d+)$/gm)].map((m) => [m[1], Number(m[2])]);
}

/** `git push` of HEAD from `work` to the bare repo `bare` (created on first use). */
async function pushTo(work: string, bare: string): Promise<void> {
  if (!existsSync(bare)) await git(path.dirname(bare), 'init', '--quiet', '--bare', '--initial-branch=main', bare);
  await must('git', ['push', '--quiet', bare, 'HEAD:refs/heads/main'], { cwd: work, env: gitEnv() });
}

export interface Pm2Plan {
  base: string;
  pm2Bin: string;
  sshd: Sshd;
  ports: number[];
}

const pm2Home = (plan: Pm2Plan, i: number) => path.join(plan.base, `host${i + 1}`, '.pm2');

/** The repo's ecosystem.config.cjs: the app, and one deploy section per host. */
export function ecosystemFile(plan: Pm2Plan): string {
  const deploy = Object.fromEntries(
    plan.ports.map((port, i) => [
      `host${i + 1}`,
      {
        user: 'root',
        host: '127.0.0.1',
        port: String(plan.sshd.port),
        key: plan.sshd.key,
        ssh_options: sshOptions(plan.sshd),
        ref: 'origin/main',
        repo: path.join(plan.base, 'site.git'),
        path: path.join(plan.base, `host${i + 1}`),
        // The `stage` lines only time the steps (bench/push.ts reads them from pm2's output).
        'post-deploy': [
          'echo stage install $(date +%s%3N)',
          'npm install --prefer-offline --no-audit --no-fund --loglevel=error',
          'echo stage reload $(date +%s%3N)',
          `node ${plan.pm2Bin} startOrReload ecosystem.config.cjs`,
          'echo stage done $(date +%s%3N)',
        ].join(' && '),
        env: { PM2_HOME: pm2Home(plan, i), PORT: String(port), PM2_DISABLE_VERSION_CHECK: '1' },
      },
    ]),
  );
  const app = {
    name: 'site',
    script: 'app/server.cjs',
    exec_mode: 'cluster',
    instances: 1,
    wait_ready: true,
    listen_timeout: 10_000,
    kill_timeout: 5_000,
  };
  return `module.exports = ${JSON.stringify({ apps: [app], deploy }, null, 2).replace(
    '"kill_timeout": 5000',
    '"kill_timeout": 5000,\n      "env": { "PORT": process.env.PORT }',
  )};\n`;
}

/** Runs `pm2 ARGS` with PM2_HOME `home` in `cwd`. */
const pm2 = (plan: Pm2Plan, home: string, cwd: string, args: string[]): Promise<string> =>
  must(process.execPath, [plan.pm2Bin, ...args], {
    cwd,
    timeoutMs: 120_000,
    env: { PM2_HOME: home, PM2_DISABLE_VERSION_CHECK: '1' },
  });

/** pm2 deploy's hosts, set up (`pm2 deploy … setup`) and deployed once from `work`. */
export async function pm2Side(plan: Pm2Plan, work: string): Promise<Side> {
  const localHome = path.join(plan.base, 'local.pm2');
  for (const home of [localHome, ...plan.ports.map((_, i) => pm2Home(plan, i))]) {
    mkdirSync(home, { recursive: true });
    writeFileSync(path.join(home, 'touch'), String(Date.now())); // no first-run banner
  }
  const eco = path.join(work, 'ecosystem.config.cjs');
  const each = (args: (host: string) => string[]) =>
    Promise.all(plan.ports.map((_, i) => pm2(plan, localHome, work, args(`host${i + 1}`)))).then((outs) =>
      outs.join('\n'),
    );
  const side: Side = {
    name: 'pm2 deploy',
    ports: plan.ports,
    async deploy(from) {
      const pushed = Date.now();
      await pushTo(from, path.join(plan.base, 'site.git'));
      const marks: Array<[string, number]> = [
        ['pushed', pushed],
        ['deploy', Date.now()],
      ];
      const out = await each((host) => ['deploy', eco, host, '--force']);
      return { done: Date.now(), marks: [...marks, ...stageMarks(out)] };
    },
    async stop() {
      for (const home of [localHome, ...plan.ports.map((_, i) => pm2Home(plan, i))])
        if (existsSync(path.join(home, 'pm2.pid'))) await pm2(plan, home, plan.base, ['kill']).catch(() => {});
    },
  };
  try {
    // pm2's CLI starts its daemon when none runs; several `pm2 deploy` starting one at once race
    // for its socket and one hangs, so the deploying machine's daemon is started first.
    await pm2(plan, localHome, work, ['ping']);
    await pushTo(work, path.join(plan.base, 'site.git'));
    await each((host) => ['deploy', eco, host, 'setup']);
    await side.deploy(work);
  } catch (error) {
    await side.stop();
    throw error;
  }
  return side;
}

export interface ScriptPlan {
  base: string;
  sshd: Sshd;
  ports: number[];
}

/** The hand script's hosts and its build checkout, deployed once from `work`. */
export async function scriptSide(plan: ScriptPlan, work: string): Promise<Side> {
  const bare = path.join(plan.base, 'site.git');
  const checkout = path.join(plan.base, 'build');
  const hosts = plan.ports.map((port, i) => ({ dir: path.join(plan.base, `host${i + 1}`), port }));
  for (const h of hosts) mkdirSync(path.join(h.dir, 'app'), { recursive: true });
  const sshOpts = [`-p ${plan.sshd.port}`, `-i ${plan.sshd.key}`, ...sshOptions(plan.sshd).map((o) => `-o ${o}`)].join(
    ' ',
  );
  const side: Side = {
    name: 'rsync script',
    ports: plan.ports,
    async deploy(from) {
      const pushed = Date.now();
      await pushTo(from, bare);
      const marks: Array<[string, number]> = [
        ['pushed', pushed],
        ['deploy', Date.now()],
      ];
      const out = await must(SCRIPT, [checkout, ...hosts.map((h) => `${h.dir}:${h.port}`)], {
        env: { SSH_OPTS: sshOpts, STAGE_MARKS: '1' },
      });
      return { done: Date.now(), marks: [...marks, ...stageMarks(out)] };
    },
    async stop() {
      for (const h of hosts) {
        const pid = Number(
          existsSync(path.join(h.dir, 'app.pid')) && readFileSync(path.join(h.dir, 'app.pid'), 'utf8'),
        );
        if (pid) stopPid(pid);
      }
    },
  };
  try {
    await pushTo(work, bare);
    await must('git', ['clone', '--quiet', bare, checkout], { env: gitEnv() });
    await side.deploy(work);
  } catch (error) {
    await side.stop();
    throw error;
  }
  return side;
}

function stopPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** `npm install` of the app's dependencies into `dir` (from the npm cache when it has them). */
export async function installDependencies(dir: string): Promise<void> {
  await must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir });
}
