// One delivery worker process of hook-server (`workers:`; the primary's side is
// lib/server/workers.ts): it takes connections on hook-server's address, reads, verifies and
// parses a forge's deliveries itself and asks the primary, over IPC, only to queue them; every
// other request (status page, API, fleet routes, /healthz) goes to the primary's private socket.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { perTurn } from '../core/batch.ts';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { PEER_HEADER } from '../http/peer.ts';
import { requestIdOf } from '../http/request-id.ts';
import { sendJson, startHttpServer, type ListenAddress } from '../http/server.ts';
import type { Admit, AdmitRequest, Answer } from './admit.ts';
import type { IntakeAnswer } from '../previews/shared-runner.ts';
import type { PullRequestEvent } from './forges/payload.ts';
import { countedForge, DeliveryIntake, FORGE_PATHS, refuserFor, type IntakeConfig, type Secrets } from './delivery.ts';

/** What the primary tells a worker when it starts. */
export interface WorkerInit {
  config: IntakeConfig;
  secrets: Secrets;
  /** Whether the queue keeps each delivery's body (`queue:`): sent to the primary only then. */
  keepsBody: boolean;
  listen: ListenAddress;
  /** The primary's private Unix socket, for every request that is not a delivery. */
  primary: string;
  maxBody: number;
  bodyTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  /** DATA/tmp: where large bodies are spooled. */
  tmpDir: string;
  /** The primary runs previews: pull request events go to it (remotePreviews). */
  previews: boolean;
}

/** Messages between the primary and a worker (structured clone: Buffers and Maps pass). */
export type ToWorker =
  | { t: 'init'; init: WorkerInit }
  | { t: 'answers'; answers: Array<[id: number, answer: Answer]> }
  | { t: 'previewed'; id: number; answer?: IntakeAnswer; error?: string }
  | { t: 'stop'; graceMs: number };
export type ToPrimary =
  | { t: 'ready' }
  | { t: 'listening'; url: string }
  | { t: 'admits'; admits: Array<[id: number, request: AdmitRequest]> }
  | { t: 'preview'; id: number; event: PullRequestEvent }
  | { t: 'counts'; counts: Array<[forge: string, status: number, n: number]> }
  | { t: 'old-secret'; repo: string }
  | { t: 'failed'; error: string };

/** The IPC channel to the primary (a cluster worker's `process`). */
export interface Channel {
  send(message: ToPrimary): void;
  on(event: 'message', listener: (message: ToWorker) => void): void;
  on(event: 'disconnect', listener: () => void): void;
}

export interface RunningWorker {
  url: string;
  /** Stops accepting, lets open requests finish for up to graceMs, then fails what still waits for the primary. */
  close(graceMs: number): Promise<void>;
}

/**
 * A worker's life on its channel: says it is ready, serves what the primary's init names, stops
 * when told to. Settles with the exit code once it should end (the caller leaves the channel). A
 * stop that comes while the worker is still starting waits for it and closes it: settling first
 * would leave a listening server behind a closed channel.
 */
export function serveDeliveryWorker(channel: Channel, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let started: Promise<RunningWorker | undefined> = Promise.resolve(undefined);
    channel.on('message', (message) => {
      if (message.t === 'init')
        started = startDeliveryWorker(message.init, channel, log).then(
          (worker) => {
            channel.send({ t: 'listening', url: worker.url });
            return worker;
          },
          (error) => {
            channel.send({ t: 'failed', error: messageOf(error) });
            resolve(1);
            return undefined;
          },
        );
      else if (message.t === 'stop')
        void started.then((worker) => worker?.close(message.graceMs)).finally(() => resolve(0));
    });
    channel.send({ t: 'ready' });
  });
}

/** Listens on the shared address and serves until told to stop; resolves once listening. */
export async function startDeliveryWorker(init: WorkerInit, channel: Channel, log: Logger): Promise<RunningWorker> {
  const admit = remoteAdmit(channel);
  const counter = answerCounter(channel);
  const intake = new DeliveryIntake({
    config: init.config,
    secrets: init.secrets,
    admit,
    keepsBody: init.keepsBody,
    log,
    tmpDir: init.tmpDir,
    maxBody: init.maxBody,
    bodyTimeoutMs: init.bodyTimeoutMs,
    onOldSecret: (repo) => channel.send({ t: 'old-secret', repo }),
    previews: init.previews ? remotePreviews(channel) : undefined,
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = requestIdOf(req);
    const route = new URL(req.url ?? '/', 'http://localhost').pathname;
    const target = FORGE_PATHS.get(route);
    if (!target || req.method !== 'POST') return passOn(req, res, init.primary, log);
    res.once('close', () => counter.count(countedForge(req, target), res.statusCode));
    return intake.handleDelivery(req, res, target, requestId, refuserFor(log, req, res, requestId, route));
  };
  const server = await startHttpServer(handle, {
    host: init.listen.host,
    port: init.listen.port,
    headersTimeoutMs: init.headersTimeoutMs,
    requestTimeoutMs: init.requestTimeoutMs,
    idleTimeoutMs: init.idleTimeoutMs,
  });
  server.server.maxRequestsPerSocket = 1000;
  return {
    url: server.url,
    close: async (graceMs) => {
      await server.close(graceMs);
      admit.abandon('the worker stopped');
      counter.flush();
    },
  };
}

/** Admit by asking the primary; answers that cannot come (the primary gone) fail, and are answered 503. */
function remoteAdmit(channel: Channel): Admit & { abandon(reason: string): void } {
  const waiting = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  let last = 0;
  channel.on('message', (message) => {
    if (message?.t !== 'answers') return;
    for (const [id, answer] of message.answers) {
      waiting.get(id)?.resolve(answer);
      waiting.delete(id);
    }
  });
  const abandon = (reason: string) => {
    for (const { reject } of waiting.values()) reject(new Error(reason));
    waiting.clear();
  };
  channel.on('disconnect', () => abandon("hook-server's primary process is gone"));
  const send = perTurn<[number, AdmitRequest]>((admits) => {
    try {
      channel.send({ t: 'admits', admits });
    } catch (error) {
      for (const [id] of admits) {
        waiting.get(id)?.reject(new Error(`could not reach hook-server's primary process: ${messageOf(error)}`));
        waiting.delete(id);
      }
    }
  });
  const admit = (request: AdmitRequest) =>
    new Promise<Answer>((resolve, reject) => {
      const id = ++last;
      waiting.set(id, { resolve, reject });
      send([id, request]);
    });
  return Object.assign(admit, { abandon });
}

/** A pull request event handed to the primary's preview runner, its answer awaited; the primary gone fails it. */
function remotePreviews(channel: Channel): (event: PullRequestEvent) => Promise<IntakeAnswer> {
  const waiting = new Map<number, { resolve: (a: IntakeAnswer) => void; reject: (e: Error) => void }>();
  let last = 0;
  channel.on('message', (message) => {
    if (message?.t !== 'previewed') return;
    const waiter = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.answer) waiter?.resolve(message.answer);
    else waiter?.reject(new Error(message.error ?? 'the preview runner gave no answer'));
  });
  channel.on('disconnect', () => {
    for (const { reject } of waiting.values()) reject(new Error("hook-server's primary process is gone"));
    waiting.clear();
  });
  return (event) =>
    new Promise<IntakeAnswer>((resolve, reject) => {
      const id = ++last;
      waiting.set(id, { resolve, reject });
      channel.send({ t: 'preview', id, event });
    });
}

/** The answers given, told to the primary's /metrics at most every COUNT_EVERY_MS: one message, not one per delivery. */
const COUNT_EVERY_MS = 200;

function answerCounter(channel: Channel): { count(forge: string, status: number): void; flush(): void } {
  const counts = new Map<string, [string, number, number]>();
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (counts.size === 0) return;
    const all = [...counts.values()];
    counts.clear();
    try {
      channel.send({ t: 'counts', counts: all });
    } catch {
      // The primary is gone: nobody is left to count them.
    }
  };
  return {
    count(forge, status) {
      const key = `${forge} ${status}`;
      const entry = counts.get(key) ?? [forge, status, 0];
      entry[2]++;
      counts.set(key, entry);
      timer ??= setTimeout(flush, COUNT_EVERY_MS);
    },
    flush,
  };
}

/** Headers that belong to one connection, not to the request or answer passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect']);

/** A request the primary serves: passed to its private socket as it came, with the client's address named. */
function passOn(req: IncomingMessage, res: ServerResponse, socketPath: string, log: Logger): void {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
  headers[PEER_HEADER] = req.socket.remoteAddress ?? 'unknown';
  const upstream = http.request({ socketPath, method: req.method, path: req.url, headers });
  upstream.on('response', (answer) => {
    const out: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(answer.headers))
      if (!HOP_BY_HOP.has(name) || name === 'transfer-encoding') out[name] = value;
    res.writeHead(answer.statusCode ?? 502, out);
    // A live log or event stream: each piece goes on as it comes.
    res.flushHeaders();
    answer.pipe(res);
  });
  upstream.on('error', (error) => {
    log.error('could not pass a request to the primary process', { request: requestIdOf(req), error: error.message });
    if (!res.headersSent)
      sendJson(res, 502, { error: 'hook-server is restarting, retry later', request: requestIdOf(req) });
    else res.destroy();
  });
  // The client gone (a closed live log): so is the request to the primary.
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}
