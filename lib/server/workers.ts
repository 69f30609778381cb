// hook-server's delivery workers, the primary's side (`workers:`; the worker's own side is
// lib/server/delivery-worker.ts): forks them through node:cluster, which shares the listening
// address among them, queues what they admit in this one process (one journal writer, its group
// commit intact), and replaces a worker that dies; stopping lets each finish what it has.
import os from 'node:os';
import { perTurn } from '../core/batch.ts';
import { messageOf } from '../core/errors.ts';
import { ownCommandFor } from '../core/script-command.ts';
import type { Logger } from '../core/log.ts';
import type { Admit, Answer } from './admit.ts';
import type { ToPrimary, ToWorker, WorkerInit } from './delivery-worker.ts';
import type { PullRequestEvent } from './forges/payload.ts';
import type { IntakeAnswer } from '../previews/shared-runner.ts';

/** Set in a worker's environment: the script runs as a delivery worker (scripts/hook-server.ts). */
export const WORKER_ENV = 'SHIPKIT_DELIVERY_WORKER';

/** How long a worker may take to start and listen. */
const START_TIMEOUT_MS = 30_000;

/**
 * `workers:` as a count of processes taking deliveries; 1 is hook-server alone. `auto` gives one
 * process per core counting hook-server's own (which keeps the journal and the jobs): cores − 1
 * workers, and so hook-server alone on two cores, where workers cost more CPU per delivery than
 * they free (docs/benchmarks.md). 1 where there is no node:cluster (Deno).
 */
export function workerCount(setting: number | 'auto', cores = os.availableParallelism?.() ?? os.cpus().length): number {
  if ('Deno' in globalThis) return 1;
  if (setting !== 'auto') return setting;
  return cores > 2 ? cores - 1 : 1;
}

export interface WorkersOptions {
  count: number;
  init: WorkerInit;
  admit: Admit;
  /** The preview runner's intake, when this process runs previews (init.previews). */
  previews?: (event: PullRequestEvent) => Promise<IntakeAnswer>;
  /** Told each delivery's answer, for /metrics. */
  countDelivery(forge: string, status: number): void;
  countOldSecret(repo: string): void;
  log: Logger;
}

export interface DeliveryWorkers {
  url: string;
  /** Tells each worker to stop accepting and finish its open requests within graceMs, then waits for it to exit. */
  stop(graceMs: number): Promise<void>;
}

type ClusterWorker = import('node:cluster').Worker;

/** The primary's hold on its workers: one slot each, refilled when its worker dies, until stopping. */
interface WorkerPool {
  cluster: import('node:cluster').Cluster;
  slots: Array<ClusterWorker | undefined>;
  stopping: boolean;
  onMessage: (worker: ClusterWorker, message: ToPrimary) => Promise<void>;
  log: Logger;
}

export async function startDeliveryWorkers(options: WorkersOptions): Promise<DeliveryWorkers> {
  const cluster = (await import('node:cluster')).default;
  const { log } = options;
  // Structured clone: a delivery's body passes as a Buffer, the config's repos as a Map.
  cluster.setupPrimary({ ...workerCommand(), serialization: 'advanced' });
  const pool: WorkerPool = { cluster, slots: [], stopping: false, onMessage: primaryEnd(options), log };
  let url: string;
  try {
    const urls = await Promise.all(Array.from({ length: options.count }, (_, slot) => forkWorker(pool, slot)));
    url = urls[0];
  } catch (error) {
    pool.stopping = true;
    for (const worker of pool.slots) worker?.kill('SIGKILL');
    throw error;
  }
  log.info('delivery workers listening', { workers: options.count, pids: pool.slots.map((w) => w?.process.pid) });
  return { url, stop: (graceMs) => stopWorkers(pool, graceMs) };
}

/** Forks the worker of one slot; resolves with its URL once it listens, rejects if it dies first. */
function forkWorker(pool: WorkerPool, slot: number): Promise<string> {
  const { log } = pool;
  const worker = pool.cluster.fork({ [WORKER_ENV]: '1' });
  pool.slots[slot] = worker;
  // A message sent as the worker dies fails here, not as an unhandled 'error'; its exit is handled below.
  worker.on('error', (error) => log.debug('a delivery worker channel error', { error: error.message }));
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`delivery worker ${slot + 1} did not listen within ${START_TIMEOUT_MS / 1000} s`));
      worker.kill('SIGKILL');
    }, START_TIMEOUT_MS);
    worker.on('message', (message: ToPrimary) => {
      if (message.t === 'listening') {
        clearTimeout(timer);
        resolve(message.url);
      } else if (message.t === 'failed') {
        clearTimeout(timer);
        reject(new Error(`delivery worker ${slot + 1}: ${message.error}`));
      } else
        pool
          .onMessage(worker, message)
          .catch((error) => log.error('a delivery worker message failed', { error: messageOf(error) }));
    });
    worker.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`delivery worker ${slot + 1} exited (${signal ?? `code ${code}`}) before it listened`));
      replaceWorker(pool, slot, worker, started, signal ?? code);
    });
  });
}

/** A worker that died: its slot forked again, unless hook-server is stopping or replaced it already. */
function replaceWorker(
  pool: WorkerPool,
  slot: number,
  worker: ClusterWorker,
  started: number,
  exit: string | number | null,
): void {
  if (pool.stopping || pool.slots[slot] !== worker) return;
  pool.slots[slot] = undefined;
  // One that ran a while is replaced at once; one that keeps dying as it starts, every 5 s.
  const wait = Date.now() - started < 10_000 ? 5_000 : 0;
  pool.log.warn('a delivery worker died; starting another', {
    worker: slot + 1,
    pid: worker.process.pid,
    exit,
    in: `${wait / 1000} s`,
  });
  setTimeout(() => {
    if (pool.stopping) return;
    forkWorker(pool, slot).catch((error) =>
      pool.log.error('a delivery worker could not start', { error: messageOf(error) }),
    );
  }, wait).unref();
}

/** Tells each worker to stop accepting and finish its open requests within graceMs, then waits for it to exit. */
async function stopWorkers(pool: WorkerPool, graceMs: number): Promise<void> {
  pool.stopping = true;
  await Promise.all(
    pool.slots.map(async (worker) => {
      if (!worker || worker.isDead()) return;
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      send(worker, { t: 'stop', graceMs });
      const timer = setTimeout(() => worker.kill('SIGKILL'), graceMs + 3_000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

/** What the primary does with a worker's messages: its start, its counts, and the deliveries it asks to queue. */
function primaryEnd(options: WorkersOptions): (worker: ClusterWorker, message: ToPrimary) => Promise<void> {
  /** Each worker's answers, sent together at the end of the turn their journal write ended in. */
  const answerers = new WeakMap<ClusterWorker, (answer: [number, Answer]) => void>();
  const answerTo = (worker: ClusterWorker) => {
    let answer = answerers.get(worker);
    // A worker that died meanwhile cannot answer: the job is queued all the same, and the
    // forge's retry of the delivery is told it is a duplicate.
    if (!answer) answerers.set(worker, (answer = perTurn((answers) => send(worker, { t: 'answers', answers }))));
    return answer;
  };

  return async (worker: ClusterWorker, message: ToPrimary) => {
    if (message.t === 'ready') return send(worker, { t: 'init', init: options.init });
    if (message.t === 'counts') {
      for (const [forge, status, n] of message.counts) for (let i = 0; i < n; i++) options.countDelivery(forge, status);
      return;
    }
    if (message.t === 'old-secret') return options.countOldSecret(message.repo);
    if (message.t === 'preview') return answerPreview(worker, message, options.previews);
    if (message.t !== 'admits') return;
    await Promise.all(
      message.admits.map(async ([id, request]) => {
        const raw = request.origin.raw;
        const body = raw?.body as Uint8Array | undefined;
        if (raw && body && !Buffer.isBuffer(body))
          raw.body = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        let answer: Answer;
        try {
          answer = await options.admit(request);
        } catch (error) {
          answer = { status: 503, refused: 'not accepting jobs now, retry later', detail: messageOf(error) };
        }
        answerTo(worker)([id, answer]);
      }),
    );
  };
}

/** A worker's pull request event through this process's preview runner; its answer, or why not, sent back. */
async function answerPreview(
  worker: ClusterWorker,
  { id, event }: { id: number; event: PullRequestEvent },
  previews: WorkersOptions['previews'],
): Promise<void> {
  try {
    if (!previews) throw new Error('this hook-server runs no previews');
    send(worker, { t: 'previewed', id, answer: await previews(event) });
  } catch (error) {
    send(worker, { t: 'previewed', id, error: messageOf(error) });
  }
}

/** Flags of node's that take the next argument as their value. */
const VALUED = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);

/**
 * hook-server as this installation starts it (lib/core/script-command.ts), split the way
 * node:cluster forks: node's flags, the file, and its arguments with this process's own after.
 */
function workerCommand(): { execArgv: string[]; exec: string; args: string[] } {
  const [, ...rest] = ownCommandFor('hook-server');
  let i = 0;
  while (i < rest.length && rest[i].startsWith('-')) i += VALUED.has(rest[i]) ? 2 : 1;
  return {
    execArgv: [...rest.slice(0, i), ...profilerFlags(process.execArgv)],
    exec: rest[i],
    args: [...rest.slice(i + 1), ...process.argv.slice(2)],
  };
}

/** `node --cpu-prof [--cpu-prof-dir DIR] …` profiles the workers too, each to a file of its own. */
function profilerFlags(execArgv: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    if (!/^--(cpu|heap)-prof/.test(execArgv[i])) continue;
    kept.push(execArgv[i]);
    if (/-(dir|name|interval)$/.test(execArgv[i]) && execArgv[i + 1] !== undefined) kept.push(execArgv[++i]);
  }
  return kept;
}

function send(worker: ClusterWorker, message: ToWorker): void {
  if (!worker.isConnected()) return;
  try {
    worker.send(message);
  } catch {
    // Gone between the check and the send: its exit is handled there.
  }
}
