// How launchfit is reached while `launchfit run` is up: a Unix socket in .launchfit/ (HTTP over it)
// for `launchfit update/status/rollback`, and an optional TCP listener that speaks the signed slave
// protocol, so `server-update APP` reaches launchfit hosts like slave hosts.
// The whole story: docs/internals.md.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { chmod, chown, lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  ConfigError,
  RemoteError,
  UsageError,
  ValidationError,
  VerificationError,
  WorkError,
  messageOf,
} from '../../core/errors.ts';
import { readControlRequest } from '../../http/control-request.ts';
import { requestIdOf } from '../../http/request-id.ts';
import { parseListen, sendJson, startHttpServer, type RunningServer } from '../../http/server.ts';
import type { Logger } from '../../core/log.ts';
import { createRequestVerifier } from '../../http/signing.ts';

export interface ControlHandlers {
  status(): Promise<unknown>;
  /**
   * Check for updates now and return the result (coalesced with a check already running);
   * `force` fetches VERSION without the last ETag, so the answer is about what is offered now;
   * `verdict` returns as soon as the result is known (update-queue.ts requestVerdict): an
   * overlapping switch answers once the new release serves, while the old one still drains.
   */
  update(options?: { force?: boolean; verdict?: boolean }): Promise<unknown>;
  /** Download, verify and unpack what is offered now, switching to nothing (checkForUpdates' `stage`). */
  prepare?(): Promise<unknown>;
  /** Back to `version` (default: the previous release); a version marked bad only with `force`. */
  rollback(version?: string, options?: { force?: boolean }): Promise<unknown>;
}

export interface ControlServer {
  close(): Promise<void>;
}

async function answer(res: ServerResponse, work: () => Promise<unknown>): Promise<void> {
  try {
    sendJson(res, 200, { ok: true, result: await work() });
  } catch (error) {
    sendJson(res, 500, { ok: false, error: messageOf(error), kind: (error as Error)?.name });
  }
}

/** Whose the control socket is: the deploy folder's owner. */
export interface SocketOwner {
  uid: number;
  gid: number;
}

/**
 * The socket's folder reachable by `owner` alone: mode 0700, and (when launchfit runs as root)
 * owned by `owner`. Not root, launchfit keeps it its own and refuses one it does not own.
 */
export async function restrictSocketFolder(
  folder: string,
  owner: SocketOwner,
  log: Logger,
  me = process.geteuid?.(),
): Promise<void> {
  const info = await lstat(folder);
  if (!info.isDirectory())
    throw new ConfigError(`${folder} is not a folder; move it away so launchfit can make its own.`);
  if (me === 0 && info.uid !== owner.uid) {
    await chown(folder, owner.uid, owner.gid);
    log.info("the control socket's folder is now the deploy folder owner's", { folder, uid: owner.uid });
  } else if (me !== 0 && me !== undefined && info.uid !== me) {
    throw new ConfigError(
      `${folder} belongs to uid ${info.uid}, not to the user launchfit runs as (uid ${me}); run launchfit ` +
        `as that user or as root, or chown the folder.`,
    );
  }
  if ((info.mode & 0o077) !== 0) {
    await chmod(folder, 0o700);
    log.warn(
      `${folder} was reachable by other users (mode ${(info.mode & 0o777).toString(8)}); it is 0700 now, ` +
        `so only its owner reaches the control socket`,
    );
  }
}

/**
 * The Unix control socket, reachable only by `owner` (see the top comment). A stale socket file
 * (no one listening) is replaced.
 */
export async function startControlSocket(
  socketPath: string,
  handlers: ControlHandlers,
  log: Logger,
  owner?: SocketOwner,
): Promise<ControlServer> {
  const existing = await requestOverSocket(socketPath, 'GET', '/status', 2_000).catch(() => undefined);
  if (existing) throw new Error(`Another launchfit is already answering on ${socketPath}.`);
  if (owner) await restrictSocketFolder(path.dirname(socketPath), owner, log);
  await rm(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://launchfit');
    if (req.method === 'GET' && url.pathname === '/status') return void answer(res, handlers.status);
    if (req.method === 'POST' && url.pathname === '/update') return void answer(res, handlers.update);
    if (req.method === 'POST' && url.pathname === '/rollback') {
      return void answer(res, () =>
        handlers.rollback(url.searchParams.get('to') ?? undefined, { force: url.searchParams.get('force') === '1' }),
      );
    }
    sendJson(res, 404, { ok: false, error: 'unknown command' });
  });
  server.requestTimeout = 0; // an update can take as long as a download
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(socketPath, 0o600);
  if (owner && process.geteuid?.() === 0) await chown(socketPath, owner.uid, owner.gid);
  log.info('control socket ready', { socket: socketPath });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => rm(socketPath, { force: true })),
  };
}

export interface SocketAnswer {
  status: number;
  body: { ok: boolean; result?: unknown; error?: string; kind?: string };
}

// The categories `answer` reports by name, so the asking side exits as the running side would.
const ERROR_KINDS = { UsageError, ConfigError, ValidationError, VerificationError, RemoteError, WorkError } as const;

/** The error a running launchfit answered with, rebuilt in its category (WorkError when unknown). */
export function errorFromAnswer(body: SocketAnswer['body']): Error {
  const message = body.error ?? 'launchfit run reported an error';
  const Kind =
    body.kind && Object.hasOwn(ERROR_KINDS, body.kind) ? ERROR_KINDS[body.kind as keyof typeof ERROR_KINDS] : WorkError;
  return new Kind(message);
}

/**
 * Have the `launchfit run` on the socket do it: its result, or its error rethrown in its
 * category; undefined when no launchfit is running there.
 */
export async function askRunning(
  socketPath: string,
  method: string,
  pathAndQuery: string,
): Promise<{ result: unknown } | undefined> {
  const live = await requestOverSocket(socketPath, method, pathAndQuery);
  if (!live) return undefined;
  if (!live.body.ok) throw errorFromAnswer(live.body);
  return { result: live.body.result };
}

/** Ask a running launchfit; undefined when nobody listens on the socket. */
export function requestOverSocket(
  socketPath: string,
  method: string,
  pathAndQuery: string,
  timeoutMs = 30 * 60_000,
): Promise<SocketAnswer | undefined> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: pathAndQuery, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (text.length < 1 << 20) text += d;
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`launchfit did not answer on ${socketPath} in time`)));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED' || error.code === 'ENOTSOCK') resolve(undefined);
      else reject(error);
    });
    req.end();
  });
}

/** The message of a check that did not end on the offered release (rolled back, marked bad). */
export function refusedCheck(result: unknown): string | undefined {
  const { action, message } = (result ?? {}) as { action?: unknown; message?: unknown };
  if (action === 'unhealthy' || action === 'skipped-bad')
    return typeof message === 'string' ? message : `update ${action}`;
  return undefined;
}

export interface ListenerOptions {
  listen: string;
  secret: string;
  /** Whether `repo=NAME` means this app (its name or the deploy folder's name). */
  accepts: (name: string) => boolean;
  log: Logger;
}

/**
 * The signed TCP listener: `GET /?repo=APP` → 202 queued (the check runs in the background,
 * coalesced), `&wait=1` → 200/500 with the result; `GET /prepare?repo=APP` → 202 preparing (the
 * offered release downloaded, verified and unpacked in the background, not switched to); `GET
 * /status`. Every request is signed
 * (docs/design.md#request-signing); a bad signature is 401 before anything else is looked at.
 */
export async function startControlListener(handlers: ControlHandlers, opts: ListenerOptions): Promise<RunningServer> {
  const verifier = createRequestVerifier(opts.secret);
  const address = parseListen(opts.listen);
  const server = await startHttpServer(
    async (req: IncomingMessage, res: ServerResponse) => {
      const request = readControlRequest(req, { verifier, allowOwner: true, prepare: Boolean(handlers.prepare) });
      if (request.kind === 'refused') {
        opts.log.warn('control request refused', {
          request: requestIdOf(req),
          reason: request.reason,
          from: req.socket.remoteAddress,
        });
        return sendJson(res, request.status, { error: request.error }, request.headers);
      }
      if (request.kind === 'status') return void answer(res, handlers.status).then(() => {});
      const { repo } = request;
      const name = repo.split('/').pop()!;
      if (!opts.accepts(name)) return sendJson(res, 404, { error: 'unknown app', repo });
      if (request.kind === 'prepare') {
        // The fleet master's prepare before this host's wave: answered at once, done in the background.
        opts.log.info('prepare requested over the control listener', {
          request: requestIdOf(req),
          repo,
          from: req.socket.remoteAddress,
        });
        handlers.prepare!().catch(() => {
          /* logged by the runner; the wave's own check downloads again */
        });
        return sendJson(res, 202, { repo, state: 'preparing' });
      }
      const { wait } = request;
      opts.log.info('update requested over the control listener', {
        request: requestIdOf(req),
        repo,
        from: req.socket.remoteAddress,
      });
      if (wait) {
        try {
          // The verdict the fleet master waits for: 200 installed or already current, 500 when
          // the offered release was rolled back or is marked bad (docs/server-update.md). It
          // comes once the new release is healthy and serving; the old one may still be draining.
          const result = await handlers.update({ force: true, verdict: true });
          const refused = refusedCheck(result);
          if (refused) return sendJson(res, 500, { ok: false, repo, error: refused, result });
          return sendJson(res, 200, { ok: true, repo, result });
        } catch (error) {
          return sendJson(res, 500, { ok: false, repo, error: messageOf(error) });
        }
      }
      handlers.update().catch(() => {
        /* logged by the runner */
      });
      return sendJson(res, 202, { repo, state: 'queued' });
    },
    { host: address.host, port: address.port, requestTimeoutMs: 0 },
  );
  opts.log.info(`control listening on ${server.url}`);
  return server;
}
