// The listening sockets launchfit owns (`app.listen`) and hands to every app process as fds 3…,
// as systemd socket activation does: bound once, never accepted on by launchfit, shared by the old
// and new app during an update. Refused under Deno.
// The whole story: docs/internals.md.
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { lstat, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import { ConfigError } from '../../core/errors.ts';
import type { ListenSpec } from '../deploy-folder/listen-spec.ts';

export interface RawHandle {
  fd?: number;
  close(cb?: () => void): void;
  getsockname?(out: Record<string, unknown>): number;
}
type CreateServerHandle = (address: string, port: number, addressType: number) => RawHandle | number;

export interface BoundSocket {
  spec: ListenSpec;
  fd: number;
  /** The name given to the app in LISTEN_FDNAMES. */
  name: string;
}

export interface SocketSet {
  sockets: BoundSocket[];
  close(): Promise<void>;
}

function createHandle(spec: ListenSpec): RawHandle {
  const create = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;
  if (typeof create !== 'function' || 'deno' in process.versions) {
    throw new ConfigError(
      'app.listen needs launchfit to run under Node: Deno cannot hand a listening socket to a child ' +
        'process. Run launchfit with node (or the npm/one-file install), or remove app.listen.',
    );
  }
  const handle =
    spec.kind === 'unix' ? create(spec.path, -1, -1) : create(spec.host, spec.port, net.isIPv6(spec.host) ? 6 : 4);
  const failed = (code: number) => new ConfigError(describeBindError(spec, getSystemErrorName(code)));
  if (typeof handle === 'number') throw failed(handle);
  // libuv delays EADDRINUSE of a TCP bind until listen; getsockname reports it now.
  if (spec.kind === 'tcp' && handle.getsockname) {
    const code = handle.getsockname({});
    if (code < 0) {
      handle.close();
      throw failed(code);
    }
  }
  if (typeof handle.fd !== 'number' || handle.fd < 0) {
    handle.close();
    throw new ConfigError('app.listen: this runtime gives no file descriptor for a socket; run launchfit under Node.');
  }
  return handle;
}

function describeBindError(spec: ListenSpec, code: string): string {
  if (code === 'EADDRINUSE') {
    return spec.kind === 'unix'
      ? `app.listen ${spec.text}: the socket ${spec.path} is in use by another process; stop it or choose another path.`
      : `app.listen ${spec.text}: the port is already in use by another process (EADDRINUSE); stop it (ss ` +
          `-ltnp 'sport = :${spec.port}') or choose another port.`;
  }
  if (code === 'EACCES')
    return (
      `app.listen ${spec.text}: permission denied (ports below 1024 need root or ` +
      `CAP_NET_BIND_SERVICE; a socket path needs a writable folder).`
    );
  if (code === 'EADDRNOTAVAIL') return `app.listen ${spec.text}: this host has no such address.`;
  return `app.listen ${spec.text}: cannot bind (${code}).`;
}

/** A Unix socket file nobody listens on (left by a crash) is removed; a live one is not. */
async function clearStaleSocketFile(file: string): Promise<void> {
  const info = await lstat(file).catch(() => undefined);
  if (!info) return;
  if (!info.isSocket())
    throw new ConfigError(
      `${file} exists and is not a socket; app.listen will not replace it. Move it away or choose another path.`,
    );
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await rm(file, { force: true });
}

/** listen(2) on the fds in a child that exits before it could accept (see the top comment). */
function listenOnFds(fds: number[]): Promise<void> {
  const script =
    `const net=require('node:net');let n=${fds.length};for(let i=0;i<${fds.length};i++){const s=net.createServer();` +
    `s.on('error',(e)=>{process.stderr.write(String(i)+' ` +
    `'+e.code);process.exit(1)});s.listen({fd:3+i,backlog:511},()=>{if(--n===0)process.exit(0)})}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe', ...fds], env: {} });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(Object.assign(new Error(err), { index: Number(err.split(' ')[0]), code: err.split(' ')[1] })),
    );
  });
}

/**
 * Bind and listen on every spec, in order; names for LISTEN_FDNAMES come with them. All or
 * nothing: on any failure the ones already bound are closed and a ConfigError names the address.
 * `taken[i]`, when given, is entry i's socket already listening (takeSockets), used as it is.
 */
export async function bindSockets(
  entries: Array<{ spec: ListenSpec; name: string }>,
  taken: Array<RawHandle | undefined> = [],
): Promise<SocketSet> {
  const handles: RawHandle[] = [];
  const made: string[] = [];
  const closeAll = async () => {
    await Promise.all(handles.map((h) => new Promise<void>((r) => h.close(() => r()))));
    for (const file of made) await rm(file, { force: true });
  };
  try {
    for (const [i, { spec }] of entries.entries()) {
      if (taken[i]) {
        handles.push(taken[i]);
        continue;
      }
      if (spec.kind === 'unix') await clearStaleSocketFile(spec.path);
      handles.push(createHandle(spec));
      if (spec.kind === 'unix') made.push(spec.path);
    }
    if (handles.length) {
      await listenOnFds(handles.map((h) => h.fd!)).catch((error: Error & { index?: number; code?: string }) => {
        const spec = entries[error.index ?? 0]?.spec;
        throw new ConfigError(
          spec ? describeBindError(spec, error.code ?? 'unknown') : `app.listen: cannot listen (${error.message}).`,
          { cause: error },
        );
      });
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  return {
    sockets: entries.map((e, i) => ({ spec: e.spec, name: e.name, fd: handles[i].fd! })),
    close: closeAll,
  };
}

/** The environment of systemd's protocol for `sockets` passed as fds 3…; LISTEN_PID is set by the exec wrapper. */
export function listenEnv(sockets: Array<{ name: string }>): Record<string, string> {
  if (!sockets.length) return {};
  return { LISTEN_FDS: String(sockets.length), LISTEN_FDNAMES: sockets.map((s) => s.name).join(':') };
}

// Taking the listening sockets back from a running instance (docs/launchfit.md). After a kill -9
// of launchfit, the instance it left holds the only copies of app.listen's sockets; closing them
// refuses connections until they are bound again. Node cannot take an fd from another process,
// so a Perl helper does (pidfd_open + pidfd_getfd, Linux 5.6, the same user or root), puts them
// at fds 4… and execs Node, which hands them to launchfit over the IPC channel as raw handles
// (what node:cluster does), without ever accepting on them.
const TAKE = String.raw`
use strict; use POSIX ();
my ($pid, $node, $relay, @fds) = @ARGV;
my $pidfd = syscall(434, $pid + 0, 0);   # pidfd_open (the same number on every arch but alpha)
die "pidfd_open: $!\n" if $pidfd < 0;
my @got;
for my $fd (@fds) { my $n = syscall(438, $pidfd, $fd + 0, 0); die "pidfd_getfd $fd: $!\n" if $n < 0; push @got, $n }
for my $i (0 .. $#got) { POSIX::dup2($got[$i], 100 + $i) // die "dup2: $!\n" }
for my $i (0 .. $#got) { POSIX::dup2(100 + $i, 4 + $i) // die "dup2: $!\n"; POSIX::close(100 + $i) }
exec { $node } $node, '-e', $relay, scalar(@got) or die "exec $node: $!\n";
`;

const RELAY =
  "const net=require('node:net');const n=Number(process.argv[1]);for(let i=0;i<n;i++)" +
  "process.send({i},new net.Socket({fd:4+i,readable:false,writable:false})._handle);process.on('message',()=>process.exit(0));";

/**
 * The listening sockets `specs` from the process `pid`'s fds 3… (or `fds`), each checked to be
 * bound to its address (a Unix socket: its path in /proc/net/unix); undefined when they cannot
 * be taken (the reason then), nothing kept.
 */
export async function takeSockets(
  pid: number,
  specs: ListenSpec[],
  perl: string,
  fds = specs.map((_, i) => 3 + i),
): Promise<{ handles?: RawHandle[]; reason?: string }> {
  if (!specs.length || 'deno' in process.versions) return { reason: 'sockets are taken over under Node only' };
  const child = spawn(perl, ['-e', TAKE, '--', String(pid), process.execPath, RELAY, ...fds.map(String)], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: {},
  });
  const handles: RawHandle[] = [];
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const done = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(false);
    }, 10_000);
    child.on('message', (msg: { i: number }, handle: RawHandle) => {
      handles[msg.i] = handle;
      if (handles.filter(Boolean).length === specs.length) {
        clearTimeout(timer);
        child.send('done');
        resolve(true);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(handles.filter(Boolean).length === specs.length);
    });
  });
  const unixPaths = specs.some((s) => s.kind === 'unix') ? await unixSocketPaths() : new Map<string, string>();
  const wrong = handles.findIndex((h, i) => !boundTo(h, specs[i], unixPaths));
  if (!done || wrong >= 0) {
    for (const h of handles) h?.close();
    return {
      reason: !done
        ? err.trim() || 'the helper gave no sockets'
        : `fd ${fds[wrong]} is not bound to ${specs[wrong].text}`,
    };
  }
  return { handles };
}

/** The bound Unix sockets: inode → path (/proc/net/unix). */
async function unixSocketPaths(): Promise<Map<string, string>> {
  const text = await readFile('/proc/net/unix', 'latin1').catch(() => '');
  const map = new Map<string, string>();
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8) map.set(cols[6], cols.slice(7).join(' '));
  }
  return map;
}

function boundTo(handle: RawHandle | undefined, spec: ListenSpec, unixPaths: Map<string, string>): boolean {
  if (typeof handle?.fd !== 'number' || handle.fd < 0) return false;
  if (spec.kind === 'unix') {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/self/fd/${handle.fd}`))?.[1];
    return inode !== undefined && unixPaths.get(inode) === spec.path;
  }
  const out: { address?: string; port?: number } = {};
  if (!handle.getsockname || handle.getsockname(out) !== 0) return false;
  return out.port === spec.port && out.address === spec.host;
}

function readlinkSafe(file: string): string {
  try {
    return readlinkSync(file);
  } catch {
    return '';
  }
}
