// The update server of the previews: a small static server on 127.0.0.1 that the previews'
// launchfit reads their releases from, serving only DATA/previews/SLUG/pr-N/updates/FILE (GET and
// HEAD, ETag and If-None-Match, one Range), nothing through a symbolic link, no listings. Its port
// is kept in DATA/previews/update-files.port so the launchify.yml files written before still fit.
import { constants } from 'node:fs';
import { open, readFile, realpath } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../core/fs.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { startHttpServer, type RunningServer } from '../http/server.ts';
import { validatePreviewName } from './name.ts';

/** The file under DATA/previews/ that keeps the server's port. */
export const UPDATE_FILES_PORT_FILE = 'update-files.port';

export interface UpdateFilesServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  port: number;
  /** The port kept from the last start, when it was taken and another one is used now. */
  movedFrom?: number;
  /** The URL of one preview's updates/ folder (previewUpdatesUrl). */
  urlFor(slug: string, name: string): string;
  close(): Promise<void>;
}

export type UpdateFiles = UpdateFilesServer;

const SLUG = /^[A-Za-z0-9_+][A-Za-z0-9._+-]*$/;
const FILE = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

/** The URL launchfit of preview `name` of the repo folder `slug` polls: SERVER/SLUG/pr-N/updates/. */
export function previewUpdatesUrl(serverUrl: string, slug: string, name: string): string {
  if (!SLUG.test(slug) || slug.includes('..')) throw new Error(`Invalid repo folder ${JSON.stringify(slug)}.`);
  return `${serverUrl.replace(/\/+$/, '')}/${slug}/${validatePreviewName(name)}/updates/`;
}

/** The path under `root` a request's path names, or undefined for anything but SLUG/pr-N/updates/FILE. */
export function updateFileOf(root: string, pathname: string): string | undefined {
  const raw = pathname.split('/');
  if (raw.length !== 5 || raw[0] !== '') return undefined;
  let parts: string[];
  try {
    parts = raw.slice(1).map((p) => decodeURIComponent(p));
  } catch {
    return undefined;
  }
  const [slug, name, updates, file] = parts;
  if (!SLUG.test(slug) || slug.includes('..') || updates !== 'updates') return undefined;
  if (!/^pr-[1-9][0-9]{0,8}$/.test(name) || !FILE.test(file) || file.includes('..')) return undefined;
  return path.join(root, slug, name, updates, file);
}

/** The ports launchfit's hosts may bind again later: below the ephemeral range (any outgoing connection's). */
async function stablePortRange(): Promise<[number, number]> {
  const text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').catch(() => '32768 60999');
  const low = Number(/^\s*(\d+)/.exec(text)?.[1] ?? 32768);
  if (low - 30_000 >= 1000) return [30_000, low];
  return low > 11_000 ? [10_000, low] : [1024, low];
}

const portFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/**
 * Ports this process handed out lately, with when: a preview's port is bound only once its
 * launchfit starts, seconds after the pick, so a port free then is not handed out again meanwhile
 * (previews launched at once could pick the same one, and the second launchfit find it in use).
 */
const handedOut = new Map<number, number>();
const HANDED_OUT_MS = 10 * 60_000;

/** A port free now on 127.0.0.1, below the ephemeral range (a port there may be taken by any outgoing connection). */
export async function freePort(): Promise<number> {
  const [from, to] = await stablePortRange();
  const now = Date.now();
  for (const [port, at] of handedOut) if (now - at > HANDED_OUT_MS) handedOut.delete(port);
  for (let tries = 0; tries < 50; tries++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (handedOut.has(port)) continue;
    // Taken before the check's await, so a pick running beside this one cannot take it too.
    handedOut.set(port, now);
    if (await portFree(port)) return port;
    handedOut.delete(port);
  }
  throw new Error(`No free port on 127.0.0.1 between ${from} and ${to - 1}.`);
}

function etagOf(info: { size: number; mtimeMs: number; ino: number }): string {
  return `"${info.ino.toString(16)}-${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
}

const matches = (header: string | undefined, etag: string) =>
  header !== undefined && header.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag);

/** One `bytes=A-B`, `A-` or `-N` range within `size`; null when unsatisfiable; undefined for none (or several). */
function rangeOf(header: string | undefined, size: number): { start: number; end: number } | null | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    return n === 0 || size === 0 ? null : { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start >= size || end < start ? null : { start, end };
}

const notFound = (res: ServerResponse) => {
  res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 });
  res.end('not found\n');
};

/** Opens `file` when it and every folder up to `root` is no symbolic link; undefined otherwise. */
async function openUnder(root: string, file: string) {
  try {
    if ((await realpath(file)) !== path.join(await realpath(root), path.relative(root, file))) return undefined;
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const info = await handle.stat();
    if (info.isFile()) return { handle, info };
    await handle.close();
  } catch {
    /* missing, a link, unreadable: not found */
  }
  return undefined;
}

async function serve(root: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 });
    return void res.end();
  }
  const pathname = (req.url ?? '/').split('?')[0];
  const file = updateFileOf(root, pathname);
  const opened = file === undefined ? undefined : await openUnder(root, file);
  if (!opened) return notFound(res);
  const { handle, info } = opened;
  try {
    const etag = etagOf(info);
    const headers = { etag, 'last-modified': info.mtime.toUTCString(), 'accept-ranges': 'bytes' };
    if (matches(req.headers['if-none-match'], etag)) {
      res.writeHead(304, headers);
      return void res.end();
    }
    const ifRange = req.headers['if-range'];
    const range = ifRange === undefined || ifRange === etag ? rangeOf(req.headers.range, info.size) : undefined;
    if (range === null) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${info.size}`, 'content-length': 0 });
      return void res.end();
    }
    const { start, end } = range ?? { start: 0, end: info.size - 1 };
    const length = Math.max(0, end - start + 1);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'content-type': 'application/octet-stream',
      'content-length': length,
      ...(range ? { 'content-range': `bytes ${start}-${end}/${info.size}` } : {}),
    });
    if (req.method === 'HEAD' || length === 0) return void res.end();
    await streamRange(handle, res, start, length);
  } finally {
    await handle.close();
  }
}

async function streamRange(
  handle: import('node:fs/promises').FileHandle,
  res: ServerResponse,
  start: number,
  length: number,
): Promise<void> {
  const stream = handle.createReadStream({ start, end: start + length - 1, autoClose: false });
  await new Promise<void>((resolve) => {
    stream.on('error', () => (res.destroy(), resolve()));
    res.on('close', () => (stream.destroy(), resolve()));
    stream.on('end', () => resolve());
    stream.pipe(res);
  });
}

async function keptPort(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const port = Number(text.trim());
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

/**
 * Starts the server for `previewsDir` (DATA/previews) on the port it had last time when that is
 * free, else on a new one (`movedFrom` then names the old: repoint the previews, launch.ts
 * repointPreview). The port is written to DATA/previews/update-files.port.
 */
export async function startUpdateFiles(
  previewsDir: string,
  { log = silentLogger }: { log?: Logger } = {},
): Promise<UpdateFilesServer> {
  await ensureDir(previewsDir);
  const root = path.resolve(previewsDir);
  const portFile = path.join(root, UPDATE_FILES_PORT_FILE);
  const kept = await keptPort(portFile);
  const handler = (req: IncomingMessage, res: ServerResponse) => serve(root, req, res);
  const options = { host: '127.0.0.1', requestTimeoutMs: 10 * 60_000 };
  let running: RunningServer | undefined;
  if (kept !== undefined)
    running = await startHttpServer(handler, { ...options, port: kept }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE' && error.code !== 'EACCES') throw error;
      log.warn('the update files port of the previews is taken; using another', { port: kept });
      return undefined;
    });
  for (let tries = 0; !running; tries++) {
    running = await startHttpServer(handler, { ...options, port: await freePort() }).catch((error) => {
      if (tries >= 5) throw error;
      return undefined;
    });
  }
  const port = (running.server.address() as net.AddressInfo).port;
  if (port !== kept) await atomicWriteFile(portFile, `${port}\n`);
  const server = running;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    urlFor: (slug, name) => previewUpdatesUrl(url, slug, name),
    ...(kept !== undefined && kept !== port ? { movedFrom: kept } : {}),
    close: () => server.close(1_000),
  };
}
