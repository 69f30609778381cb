// The slave's HTTP edge (docs/slave-activate.md): signed `GET /?repo=NAME` starts an
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
import { Coalescer, type Joined } from '../core/coalesce.ts';
import { createLimiter, type Limiter } from '../core/pool.ts';
import { createRequestVerifier, type RequestVerifier } from '../http/signing.ts';
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
  /** Running from the moment a run is scheduled, while it waits for a slot and while it runs. */
  activation: Coalescer<RunResult>;
  runs: number;
  last?: RunResult;
}

export const DEFAULT_MAX_PARALLEL = 4;

type Scheduled = { promise: Promise<RunResult>; state: Joined };

/** The service's state (the repos, the clone slots, draining) and its request handling. */
class SlaveService {
  private readonly file: string | undefined;
  private readonly log: Logger;
  private readonly activate: (repo: string) => Promise<{ head?: string }>;
  private readonly now: () => number;
  private readonly maxUrlLength: number;
  private readonly prefix: string;
  private readonly maxParallel: number;
  private readonly verifier: RequestVerifier | undefined;
  private readonly slots: Limiter;
  private readonly repos = new Map<string, RepoState>();
  private draining = false;

  constructor({
    secret,
    file,
    log,
    activate,
    now = Date.now,
    maxUrlLength = 2048,
    prefix = '',
    maxParallel = DEFAULT_MAX_PARALLEL,
  }: SlaveServiceOptions) {
    this.file = file;
    this.log = log;
    this.activate = activate;
    this.now = now;
    this.maxUrlLength = maxUrlLength;
    this.prefix = prefix;
    this.maxParallel = maxParallel;
    this.verifier = secret ? createRequestVerifier(secret, { now }) : undefined;
    this.slots = createLimiter(maxParallel);
  }

  private stateOf(repo: string): RepoState {
    let state = this.repos.get(repo);
    if (!state) {
      const created: RepoState = { activation: new Coalescer(() => this.runNow(repo, created)), runs: 0 };
      this.repos.set(repo, (state = created));
    }
    return state;
  }

  /** Runs once a slot is free (at most maxParallel clones at once); the repo counts as running meanwhile. */
  private async runNow(repo: string, state: RepoState): Promise<RunResult> {
    const result = await this.slots.run(() => this.activateNow(repo, state));
    state.last = result;
    if (!result.ok) this.log.error(`activation of ${repo} failed: ${result.error}`, { repo });
    return result;
  }

  /** One activation in its slot, timed; skipped once the server is draining. */
  private async activateNow(repo: string, state: RepoState): Promise<RunResult> {
    const startedAt = this.now();
    const stamp = (outcome: Pick<RunResult, 'ok' | 'head' | 'error'>): RunResult => {
      const finishedAt = this.now();
      return {
        repo,
        started: new Date(startedAt).toISOString(),
        finished: new Date(finishedAt).toISOString(),
        ms: finishedAt - startedAt,
        ...outcome,
      };
    };
    if (this.draining) return stamp({ ok: false, error: 'skipped: the server is shutting down' });
    state.runs++;
    try {
      return stamp({ ok: true, head: (await this.activate(repo)).head });
    } catch (error) {
      return stamp({ ok: false, error: messageOf(error) });
    }
  }

  /** Start a run now, or, when one is running, make sure exactly one more follows it. */
  schedule(repo: string): Scheduled {
    const { promise, joined } = this.stateOf(repo).activation.request();
    return { promise, state: joined };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reqLog = this.log.child({ request: requestIdOf(req) });
    const parsed = new URL(routeUnderPrefix(pathAndQueryOf(req), this.prefix).route, 'http://slave.invalid');
    // The one open route: the optional file, for a browser that cannot sign.
    if (
      this.file &&
      req.method === 'GET' &&
      parsed.pathname === '/' &&
      parsed.search === '' &&
      !req.headers['x-shipkit-signature']
    ) {
      return serveFile(this.file, res);
    }
    const request = readControlRequest(req, {
      verifier: this.verifier,
      maxUrlLength: this.maxUrlLength,
      prefix: this.prefix,
    });
    if (request.kind === 'refused') {
      reqLog.warn(`refused: ${request.reason}`, { remote: req.socket.remoteAddress });
      return sendJson(res, request.status, { error: request.error }, request.headers);
    }
    if (request.kind === 'status') return sendJson(res, 200, this.statusReport());
    if (request.kind === 'prepare') return sendJson(res, 404, { error: 'not found' }); // not asked for: never read
    const { repo, wait } = request;
    if (this.draining) return sendJson(res, 503, { error: 'shutting down' }, { 'Retry-After': '5' });
    const { promise, state } = this.schedule(repo);
    reqLog.info(`activation ${state}`, { repo });
    if (!wait) return sendJson(res, 202, { repo, state: 'queued' });
    const result = await promise;
    return sendJson(res, result.ok ? 200 : 500, result);
  }

  statusReport() {
    const out: Record<string, unknown> = {};
    for (const [repo, state] of this.repos)
      out[repo] = {
        running: state.activation.running,
        queued: state.activation.queued,
        runs: state.runs,
        last: state.last ?? null,
      };
    return { repos: out, clones: { running: this.slots.active, waiting: this.slots.waiting, max: this.maxParallel } };
  }

  /** Refuse new work, skip queued follow-ups, and wait (bounded) for running activations. */
  async drain(graceMs: number): Promise<boolean> {
    this.draining = true;
    const running = [...this.repos.values()].filter((s) => s.activation.running).map((s) => s.activation.pending());
    if (!running.length) return true;
    this.log.info(`waiting up to ${graceMs / 1000}s for ${running.length} activation(s) to finish`);
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.allSettled(running).then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    return finished;
  }
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
  res.writeHead(200, {
    'Content-Type': contentTypeFor(filePath),
    'Content-Length': size,
    'X-Content-Type-Options': 'nosniff',
  });
  createReadStream(filePath)
    .on('error', () => res.destroy())
    .pipe(res);
}

/** The service as a plain object of bound functions: `handle` is passed on as the listener's handler. */
export function createSlaveService(options: SlaveServiceOptions) {
  const service = new SlaveService(options);
  return {
    handle: (req: IncomingMessage, res: ServerResponse) => service.handle(req, res),
    drain: (graceMs: number) => service.drain(graceMs),
    schedule: (repo: string) => service.schedule(repo),
    statusReport: () => service.statusReport(),
  };
}
