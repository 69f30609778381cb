// What bench:ha and bench:scale share: hook-server nodes of the one file on one PostgreSQL
// (`queue:`, building nothing), and autocannon sending signed GitHub pushes through haproxy, a
// fresh delivery id each.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sign } from '@octokit/webhooks-methods';
import { pushPayload } from '../test/fixtures/hooks/deliveries.ts';
import { queueConfig, SECRET } from '../test/fixtures/workers.ts';
import { freePort, waitFor } from '../test/_helpers/common.ts';

export const ONE_REPO = ['octo/site'];

export interface HookNode {
  name: string;
  port: number;
  child: ChildProcess;
}

export interface NodeStart {
  bundle: string;
  env: NodeJS.ProcessEnv;
  repos?: string[];
  /** Another `queue:` than the env's (a list of servers). */
  queue?: string;
  /** More top-level keys for the node's shipkit.yml (a fleet: block). */
  extraConfig?: string;
  /** More arguments for node before the script (a CPU profile, perf's map). */
  nodeFlags?: string[];
  /** A file the node's stdout and stderr (its log) go to; by default they are dropped. */
  logFile?: string;
}

/** HA_CPU_PROF=DIR (bench:ha, bench:scale): node's flags for each node to write a V8 CPU profile there when it stops. */
export function profileFlags(): string[] {
  return process.env.HA_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.HA_CPU_PROF] : [];
}

/** A hook-server of the one file, with `queue:` and `repos`, building nothing itself; resolves once /healthz answers. */
export async function startHookNode(
  name: string,
  { bundle, env, repos = ONE_REPO, queue, extraConfig, nodeFlags = [], logFile }: NodeStart,
) {
  const port = await freePort();
  const { config } = queueConfig(name, Object.fromEntries(repos.map((r) => [r, {}])), { concurrency: 0, queue });
  if (extraConfig) appendFileSync(config, extraConfig);
  const args = [bundle, 'hook-server', '--config', config, '--listen', `127.0.0.1:${port}`, '--name', name];
  const log = logFile === undefined ? 'ignore' : openSync(logFile, 'a');
  const child = spawn(process.execPath, [...nodeFlags, ...args], { env, stdio: ['ignore', log, log] });
  if (typeof log === 'number') closeSync(log);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok, {
    timeoutMs: 30_000,
    what: `node ${name}`,
  });
  return { name, port, child } satisfies HookNode;
}

export function stopHookNode(node: HookNode): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return Promise.resolve();
  node.child.kill('SIGTERM');
  return new Promise((resolve) => node.child.once('exit', () => resolve()));
}

/** One load's answers: 2xx per second and latency. */
export interface LoadRound {
  rps: number;
  p99: number;
  non2xx: number;
  acked: number;
}

/** autocannon through `url`: signed pushes to `repos` in turn, for `seconds`. */
export async function signedLoad(
  url: string,
  { repos = ONE_REPO, seconds, connections }: { repos?: string[]; seconds: number; connections: number },
): Promise<LoadRound> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: any };
  const pushes = await Promise.all(
    repos.map(async (repo) => {
      const body = JSON.stringify(pushPayload(repo));
      return { body, signature: await sign(SECRET, body) };
    }),
  );
  let sent = 0;
  const result = await new Promise<any>((resolve, reject) =>
    autocannon(
      {
        url,
        method: 'POST',
        connections,
        duration: seconds,
        body: pushes[0].body,
        headers: { 'content-type': 'application/json', 'x-github-event': 'push' },
        requests: [
          {
            setupRequest: (req: any) => {
              const push = pushes[sent++ % pushes.length];
              const headers = {
                ...req.headers,
                'x-hub-signature-256': push.signature,
                'x-github-delivery': randomUUID(),
              };
              return { ...req, body: push.body, headers };
            },
          },
        ],
      },
      (error: Error | null, res: any) => (error ? reject(error) : resolve(res)),
    ),
  );
  return { rps: result['2xx'] / result.duration, p99: result.latency.p99, non2xx: result.non2xx, acked: result['2xx'] };
}

/** CPU time (user + system, ms) of a process from /proc; undefined when it is gone. */
export function processCpu(pid: number): { ppid: number; ms: number } | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { ppid: Number(fields[1]), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 };
  } catch {
    return undefined;
  }
}

/** CPU time of PostgreSQL's postmaster and every child of it, by pid (ms). */
export function postgresCpu(dataDir: string): Map<number, number> {
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const times = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    const stat = processCpu(Number(entry));
    if (stat && (Number(entry) === postmaster || stat.ppid === postmaster)) times.set(Number(entry), stat.ms);
  }
  return times;
}

/** The CPU spent between two readings, in ms (a process started meanwhile counts from 0). */
export const cpuSpent = (before: Map<number, number>, after: Map<number, number>) =>
  [...after].reduce((sum, [pid, ms]) => sum + ms - (before.get(pid) ?? 0), 0);
