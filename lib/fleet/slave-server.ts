// The slave's HTTP edge (DESIGN §5 slave-activate --serve): signed `GET /?repo=NAME` starts an
// activation in the background, one at a time per repo; requests that arrive during a run
// coalesce into one more run. Knows nothing about git: it is handed an `activate` function.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { messageOf } from '../core/errors.ts';
import { requestIdOf } from '../http/request-id.ts';
import { HttpError, pathAndQueryOf, sendJson } from '../http/server.ts';
import type { Logger } from '../core/log.ts';
import { readControlRequest, routeUnderPrefix } from '../http/control-request.ts';
import { createLimiter } from '../core/pool.ts';
import { createRequestVerifier } from '../http/signing.ts';
import { contentTypeFor } from '../http/content-type.ts';

export interface RunResult {
  ok: boolean;
  repo: string;
  started: string;
  finished: string;
  ms: number;
  head?: string;
  error?: string;
}

export interface SlaveServiceOptions {
  /** undefined = accept unsigned requests (only with --insecure). */
  secret?: string;
  file?: string;
  log: Logger;
  activate: (repo: string) => Promise<{ head?: string }>;
  now?: () => number;
  maxUrlLength?: number;
  /** Serve the protocol under this path (`/hooks/slave`), directly or behind a proxy that strips it. */
  prefix?: string;
  /** Activations (clones) that run at once across all repos; the rest wait their turn. */
  maxParallel?: number;
}

interface RepoState {
  /** Set from the moment a run is scheduled, while it waits for a slot and while it runs. */
  running: Promise<RunResult> | null;
  queued: Promise<RunResult> | null;
  runs: number;
  last?: RunResult;
}

export const DEFAULT_MAX_PARALLEL = 4;

export function createSlaveService({ secret, file, log, activate, now = Date.now, maxUrlLength = 2048, prefix = '', maxParallel = DEFAULT_MAX_PARALLEL }: SlaveServiceOptions) {
  const verifier = secret ? createRequestVerifier(secret, { now }) : undefined;
  const slots = createLimiter(maxParallel);
  const repos = new Map<string, RepoState>();
  let draining = false;

  function stateOf(repo: string): RepoState {
    let state = repos.get(repo);
    if (!state) repos.set(repo, (state = { running: null, queued: null, runs: 0 }));
    return state;
  }

  /** Runs once a slot is free (at most maxParallel clones at once); the repo counts as running meanwhile. */
  function runNow(repo: string, state: RepoState): Promise<RunResult> {
    const run = slots.run(async (): Promise<RunResult> => {
      const startedAt = now();
      const stamp = (outcome: Pick<RunResult, 'ok' | 'head' | 'error'>): RunResult => {
        const finishedAt = now();
        return { repo, started: new Date(startedAt).toISOString(), finished: new Date(finishedAt).toISOString(), ms: finishedAt - startedAt, ...outcome };
      };
      if (draining) return stamp({ ok: false, error: 'skipped: the server is shutting down' });
      state.runs++;
      try {
        return stamp({ ok: true, head: (await activate(repo)).head });
      } catch (error) {
        return stamp({ ok: false, error: messageOf(error) });
      }
    }).then((result) => {
      state.last = result;
      if (state.running === run) state.running = null;
      if (!result.ok) log.error(`activation of ${repo} failed: ${result.error}`, { repo });
      return result;
    });
    state.running = run;
    return run;
  }

  /** Start a run now, or, when one is running, make sure exactly one more follows it. */
  function schedule(repo: string): { promise: Promise<RunResult>; state: 'started' | 'queued' | 'coalesced' } {
    const state = stateOf(repo);
    if (!state.running) return { promise: runNow(repo, state), state: 'started' };
    if (state.queued) return { promise: state.queued, state: 'coalesced' };
    const queued = state.running.then(() => {
      state.queued = null;
      if (draining) return { repo, ok: false, error: 'skipped: the server is shutting down', started: new Date(now()).toISOString(), finished: new Date(now()).toISOString(), ms: 0 };
      return runNow(repo, state);
    });
    state.queued = queued;
    return { promise: queued, state: 'queued' };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reqLog = log.child({ request: requestIdOf(req) });
    const parsed = new URL(routeUnderPrefix(pathAndQueryOf(req), prefix).route, 'http://slave.invalid');
    // The one open route: the optional file, for a browser that cannot sign.
    if (file && req.method === 'GET' && parsed.pathname === '/' && parsed.search === '' && !req.headers['x-shipkit-signature']) {
      return serveFile(file, res);
    }
    const request = readControlRequest(req, { verifier, maxUrlLength, prefix });
    if (request.kind === 'refused') {
      reqLog.warn(`refused: ${request.reason}`, { remote: req.socket.remoteAddress });
      return sendJson(res, request.status, { error: request.error }, request.headers);
    }
    if (request.kind === 'status') return sendJson(res, 200, statusReport());
    const { repo, wait } = request;
    if (draining) return sendJson(res, 503, { error: 'shutting down' }, { 'Retry-After': '5' });
    const { promise, state } = schedule(repo);
    reqLog.info(`activation ${state}`, { repo });
    if (!wait) return sendJson(res, 202, { repo, state: 'queued' });
    const result = await promise;
    return sendJson(res, result.ok ? 200 : 500, result);
  }

  async function serveFile(filePath: string, res: ServerResponse): Promise<void> {
    let size: number;
    try {
      const info = await stat(filePath);
      if (!info.isFile()) throw new Error('not a file');
      size = info.size;
    } catch {
      throw new HttpError(404, 'not found');
    }
    res.writeHead(200, { 'Content-Type': contentTypeFor(filePath), 'Content-Length': size, 'X-Content-Type-Options': 'nosniff' });
    createReadStream(filePath).on('error', () => res.destroy()).pipe(res);
  }

  function statusReport() {
    const out: Record<string, unknown> = {};
    for (const [repo, state] of repos) out[repo] = { running: Boolean(state.running), queued: Boolean(state.queued), runs: state.runs, last: state.last ?? null };
    return { repos: out, clones: { running: slots.active, waiting: slots.waiting, max: maxParallel } };
  }

  /** Refuse new work, skip queued follow-ups, and wait (bounded) for running activations. */
  async function drain(graceMs: number): Promise<boolean> {
    draining = true;
    const running = [...repos.values()].flatMap((s) => [s.running, s.queued]).filter(Boolean) as Promise<RunResult>[];
    if (!running.length) return true;
    log.info(`waiting up to ${graceMs / 1000}s for ${running.length} activation(s) to finish`);
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.allSettled(running).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    return finished;
  }

  return { handle, drain, schedule, statusReport };
}
