// bench:delta's servers and meter: the update server on 127.0.0.1 that counts the bytes it sends
// (Debian's nginx with its access log's $bytes_sent, else the update-server fixture behind a
// counting TCP proxy), an rsync daemon for the peer, and a command's wall time with the peak
// memory and CPU time of it and its children (VmHWM, the sum of VmRSS, utime + stime: /proc every 10 ms).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { nginxMissing, startUpdateNginx } from '../test/fixtures/fleet-sim/nginx.ts';
import { startUpdateServer } from '../test/fixtures/launchfit/update-server.ts';
import { accepting, quietPort } from './ports.ts';

export interface CountingServer {
  /** http://127.0.0.1:PORT/ serving `root`. */
  url: string;
  what: string;
  /** A mark to count from. */
  mark(): Promise<number>;
  /** Bytes sent (headers and bodies) since `mark`. */
  bytesSince(mark: number): Promise<number>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** nginx when installed, else the fixture behind a proxy that counts what flows to the client. */
export async function startCountingServer(root: string): Promise<CountingServer> {
  if (!nginxMissing()) {
    const nginx = await startUpdateNginx(root);
    // The access log is written every 200 ms: read it until two reads agree.
    const settled = async () => {
      let last = -1;
      for (;;) {
        const rows = nginx.requests();
        if (rows.length === last) return rows;
        last = rows.length;
        await sleep(300);
      }
    };
    return {
      url: nginx.url,
      what: "Debian's nginx, $bytes_sent of its access log",
      mark: async () => (await settled()).length,
      bytesSince: async (mark) => (await settled()).slice(mark).reduce((n, r) => n + r.sent, 0),
      stop: () => nginx.stop(),
    };
  }
  const fixture = await startUpdateServer(root);
  const upstream = Number(new URL(fixture.url).port);
  let sent = 0;
  const proxy = net.createServer((client) => {
    const server = net.connect(upstream, '127.0.0.1');
    server.on('data', (chunk) => (sent += chunk.length));
    client.pipe(server).pipe(client);
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    what: 'the update-server fixture (nginx is not installed), bytes counted by a TCP proxy',
    mark: async () => sent,
    bytesSince: async (mark) => sent - mark,
    stop: async () => {
      proxy.close();
      await fixture.close();
    },
  };
}

export interface RsyncDaemon {
  /** rsync://127.0.0.1:PORT/rel/ — the module serving `root`. */
  url: string;
  stop(): Promise<void>;
}

/** `rsync --daemon --no-detach` serving `root` read-only as module `rel`, on a free port. */
export async function startRsyncDaemon(root: string, dir: string): Promise<RsyncDaemon> {
  const port = await quietPort();
  const conf = path.join(dir, 'rsyncd.conf');
  writeFileSync(
    conf,
    [
      `pid file = ${dir}/rsyncd.pid`,
      `log file = ${dir}/rsyncd.log`,
      'use chroot = no',
      `uid = ${process.getuid?.() ?? 0}`,
      `gid = ${process.getgid?.() ?? 0}`,
      '[rel]',
      `  path = ${root}`,
      '  read only = yes',
      '',
    ].join('\n'),
  );
  const child = spawn(
    'rsync',
    ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'],
    {
      stdio: 'ignore',
    },
  );
  const kill = () => child.exitCode === null && child.kill('SIGKILL');
  process.on('exit', kill);
  for (let i = 0; ; i++) {
    if (await accepting(port)) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`rsync --daemon did not start (see ${dir}/rsyncd.log)`);
    await sleep(50);
  }
  return {
    url: `rsync://127.0.0.1:${port}/rel/`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface Measured {
  ms: number;
  code: number | null;
  out: string;
  /** The command's own peak RSS (VmHWM), kB. */
  hwmKb: number;
  /** The highest sum of VmRSS over the command and its children seen in one sample, kB. */
  treeKb: number;
  /** CPU time (user + system) of the command and its children, ms (sampled: the last 10 ms missed). */
  cpuMs: number;
}

function kbOf(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // exited
  }
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU ticks of `pid` (utime, stime; with `waited`, also of its children it has waited for). */
function ticksOf(pid: number, waited: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return f[11] + f[12] + (waited ? f[13] + f[14] : 0);
  } catch {
    return 0; // exited
  }
}

function cmdlineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return undefined; // exited
  }
}

function treeOf(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    /* exited */
  }
  return [pid, ...children.flatMap(treeOf)];
}

/** Runs argv; its wall time, output, and peak memory (`memory`: also its children's, every 10 ms). */
export function measure(argv: string[], env: NodeJS.ProcessEnv, memory = false): Promise<Measured> {
  const t0 = performance.now();
  const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  let hwmKb = 0;
  let treeKb = 0;
  let ticks = 0;
  const sample = () => {
    hwmKb = Math.max(hwmKb, kbOf(child.pid!, 'VmHWM'));
    const [own, ...children] = treeOf(child.pid!);
    ticks = Math.max(ticks, ticksOf(own, true) + children.reduce((n, pid) => n + ticksOf(pid, false), 0));
    if (memory) {
      // A child forked but not yet exec'd (its command line still the parent's) maps the
      // parent's own pages, copy-on-write: its RSS is memory counted already.
      const self = cmdlineOf(child.pid!);
      const pids = treeOf(child.pid!).filter((pid, i) => i === 0 || cmdlineOf(pid) !== self);
      treeKb = Math.max(
        treeKb,
        pids.reduce((n, pid) => n + kbOf(pid, 'VmRSS'), 0),
      );
    }
  };
  const timer = setInterval(sample, 10);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearInterval(timer);
      resolve({
        ms: performance.now() - t0,
        code,
        out,
        hwmKb,
        treeKb: Math.max(treeKb, hwmKb),
        cpuMs: ticks * TICK_MS,
      });
    }),
  );
}
