// A running job's log, live: `GET /jobs/ID/log?follow=1` as text/event-stream (docs/hook-server.md),
// the same text as `GET /jobs/ID/log`, from one tail per job shared by all its followers.
// The whole story: docs/internals.md.
import { open, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from '../core/log.ts';
import { requestIdOf } from '../http/request-id.ts';
import { sendJson } from '../http/server.ts';
import {
  PIECE,
  RESET,
  cutAtLine,
  dataEvent,
  endEvent,
  parseEventId,
  writeDrained,
  type Source,
} from './event-stream.ts';
import { ENDED, LogTail, READ_BYTES, type FollowedJob, type Follower, type TailDeps } from './log-tail.ts';
import { registerFollowScript } from './follow-script.ts';
import { messageOf } from '../core/errors.ts';

export interface LogFollowOptions {
  /** DATA/jobs: the job's output.log is in ID/. */
  jobsDir: string;
  /** DATA/logs/REPO of a repo: its logs.txt holds the build's own section. */
  logsDirOf: (repo: string) => string;
  /** The job's current state (the journal's). */
  jobOf: (id: string) => FollowedJob | undefined;
  /** The finished job's section of logs.txt, as `GET /jobs/ID/log` shows it (undefined: none). */
  readSection: (job: FollowedJob) => Promise<string | undefined>;
  log: Logger;
  pollMs?: number;
  keepaliveMs?: number;
  /** EventSource's reconnection delay, sent as `retry:`. */
  retryMs?: number;
  maxPerJob?: number;
  maxTotal?: number;
  /** Bytes waiting in a follower's socket buffer beyond which the tail waits for it, */
  maxBuffered?: number;
  /** and how long: a follower still over maxBuffered after that is dropped. */
  stallMs?: number;
}

export interface LogFollow {
  /** Answers an authorised `GET /jobs/ID/log?follow=1` for a job that exists. */
  handle(req: IncomingMessage, res: ServerResponse, job: FollowedJob): Promise<void>;
  /** Ends every follower and tail (hook-server's stop). */
  close(): void;
  /** Live tails and followers (tests, benchmarks). */
  stats(): { tails: number; followers: number };
}

/** A place in a text a client already has: from its `Last-Event-ID`. */
type Place = { source: Source; offset: number };

/** Sends `data[from..]` as events of whole lines; `base` is data[0]'s offset in the source. */
async function sendBytes(res: ServerResponse, source: Source, data: Buffer, base: number): Promise<number> {
  let at = 0;
  while (at < data.length) {
    const [whole] = cutAtLine(data.subarray(at, at + PIECE), PIECE);
    // The last piece of a finished text may lack its newline: it goes out as it is.
    const piece = whole.length ? whole : data.subarray(at, at + PIECE);
    at += piece.length;
    if (!(await writeDrained(res, dataEvent(`${source}:${base + at}`, piece.toString('utf8'))))) return -1;
  }
  return base + at;
}

/**
 * Sends bytes [from, to) of a source file as events of whole lines, `start` being the source's
 * offset in the file; read a piece at a time, so a long log is never held whole. Returns the
 * offset reached, or -1 when the follower is gone.
 */
async function sendRange(
  res: ServerResponse,
  source: Source,
  file: string,
  start: number,
  from: number,
  to: number,
): Promise<number> {
  const handle = await open(file, 'r');
  try {
    let at = from;
    let carry: Buffer = Buffer.alloc(0);
    while (at < to) {
      const buffer = Buffer.alloc(Math.min(READ_BYTES, to - at));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, start + at);
      if (bytesRead === 0) break;
      at += bytesRead;
      const [whole, rest] = cutAtLine(Buffer.concat([carry, buffer.subarray(0, bytesRead)]));
      carry = rest;
      if (whole.length && (await sendBytes(res, source, whole, at - rest.length - whole.length)) === -1) return -1;
    }
    if (carry.length && (await sendBytes(res, source, carry, at - carry.length)) === -1) return -1;
    return at;
  } finally {
    await handle.close();
  }
}

function refuse(req: IncomingMessage, res: ServerResponse, message: string): void {
  sendJson(res, 503, { error: message, request: requestIdOf(req) }, { 'Retry-After': '10' });
}

function writeStreamHead(res: ServerResponse): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    // A proxy in front (nginx) must pass events on as they come.
    'X-Accel-Buffering': 'no',
  });
}

/** The followers of every job: one LogTail per running job, the caps, and the catching up. */
class JobLogFollow implements LogFollow {
  private readonly options: LogFollowOptions;
  private readonly log: Logger;
  private readonly retryMs: number;
  private readonly maxPerJob: number;
  private readonly maxTotal: number;
  /** What each LogTail is made with, besides its job's own hooks. */
  private readonly tailTimings: Pick<TailDeps, 'pollMs' | 'keepaliveMs' | 'maxBuffered' | 'stallMs'>;
  private readonly tails = new Map<string, LogTail>();
  /** Every open follower response, live or catching up: the caps count these. */
  private readonly streams = new Map<string, Set<ServerResponse>>();
  private total = 0;
  private closed = false;

  constructor(options: LogFollowOptions) {
    this.options = options;
    this.log = options.log;
    this.retryMs = options.retryMs ?? 2_000;
    this.maxPerJob = options.maxPerJob ?? 200;
    this.maxTotal = options.maxTotal ?? 500;
    this.tailTimings = {
      pollMs: options.pollMs ?? 300,
      keepaliveMs: options.keepaliveMs ?? 15_000,
      maxBuffered: options.maxBuffered ?? 1024 * 1024,
      stallMs: options.stallMs ?? 2_000,
    };
  }

  async handle(req: IncomingMessage, res: ServerResponse, job: FollowedJob): Promise<void> {
    if (this.closed) return refuse(req, res, 'shutting down');
    const live = !ENDED.has(job.state);
    if (live && (this.followersOf(job.id) >= this.maxPerJob || this.total >= this.maxTotal)) {
      this.log.warn('live log follower refused: too many followers', { job: job.id, followers: this.total });
      return refuse(req, res, 'too many followers of live logs, retry later');
    }
    writeStreamHead(res);
    if (req.method === 'HEAD') return void res.end();
    res.write(`retry: ${this.retryMs}\n\n`);
    const from = parseEventId(req.headers['last-event-id']);
    const untrack = this.track(job.id, res);
    res.once('close', untrack);
    try {
      if (live) await this.sendLive(res, job, from, untrack);
      else await this.sendFinished(res, job, from);
    } catch (error) {
      this.log.warn('could not send a job log to a follower', { job: job.id, error: messageOf(error) });
      res.destroy();
    }
  }

  close(): void {
    this.closed = true;
    for (const tail of [...this.tails.values()]) tail.stop();
    for (const set of this.streams.values()) for (const res of set) res.end();
  }

  stats(): { tails: number; followers: number } {
    return { tails: this.tails.size, followers: this.total };
  }

  private followersOf(id: string): number {
    return this.streams.get(id)?.size ?? 0;
  }

  private outputFile(id: string): string {
    return path.join(this.options.jobsDir, id, 'output.log');
  }

  /** Counts an open response until it closes; the returned function (safe to call twice) uncounts it. */
  private track(id: string, res: ServerResponse): () => void {
    let set = this.streams.get(id);
    if (!set) this.streams.set(id, (set = new Set()));
    set.add(res);
    this.total++;
    let gone = false;
    return () => {
      if (gone) return;
      gone = true;
      set.delete(res);
      if (set.size === 0) this.streams.delete(id);
      this.total--;
    };
  }

  /** A finished job: everything from `from` (when it is a place in the same text), then `end`, at once. */
  private async sendFinished(res: ServerResponse, job: FollowedJob, from: Place | undefined): Promise<void> {
    const section = await this.options.readSection(job);
    const source: Source = section === undefined ? 'o' : 's';
    const data = section === undefined ? undefined : Buffer.from(section);
    const size =
      data?.length ??
      (await stat(this.outputFile(job.id)).then(
        (s) => s.size,
        () => 0,
      ));
    const offset = from && from.source === source && from.offset <= size ? from.offset : 0;
    if (from && from.offset > 0 && offset === 0) res.write(RESET);
    const sent = data
      ? await sendBytes(res, source, data.subarray(offset), offset)
      : size > offset
        ? await sendRange(res, source, this.outputFile(job.id), 0, offset, size)
        : offset;
    if (sent !== -1) res.end(endEvent(job));
  }

  /** The job's tail, started for its first follower. */
  private tailOf(job: FollowedJob): LogTail {
    const id = job.id;
    let tail = this.tails.get(id);
    if (!tail) {
      const { jobsDir, logsDirOf, jobOf } = this.options;
      tail = new LogTail(id, job.repo, {
        jobsDir,
        logsDirOf,
        jobOf,
        log: this.log,
        ...this.tailTimings,
        joining: () => this.followersOf(id) > 0,
        onStop: () => this.tails.delete(id),
      });
      this.tails.set(id, tail);
    }
    return tail;
  }

  /** A running (or queued) job: from `from` up to where the tail is, read from the file, then the live tail. */
  private async sendLive(
    res: ServerResponse,
    job: FollowedJob,
    from: Place | undefined,
    untrack: () => void,
  ): Promise<void> {
    const tail = this.tailOf(job);
    // The source is known before a follower catches up, so it starts from the right file.
    await tail.ready;
    let source = from?.source;
    let sent = from?.offset ?? 0;
    // The tail may move on while a follower catches up: loop until it is where the tail is.
    while (!res.destroyed && !tail.done) {
      if (source !== tail.source || sent > tail.position) {
        // Another text than the one the client has (or a place past its end): start over.
        if (sent > 0) res.write(RESET);
        source = tail.source;
        sent = 0;
      }
      if (sent === tail.position) return this.join(tail, res, job);
      const to = tail.position;
      const next = await sendRange(res, source!, tail.file(), tail.source === 's' ? tail.sectionStart : 0, sent, to);
      // Gone, or the file is shorter than what the tail read (trimmed): the client reconnects.
      if (next === -1 || next < to) return void res.destroy();
      sent = next;
    }
    // The tail ended while catching up: finish from the whole text.
    if (!res.destroyed && tail.done) {
      untrack();
      return this.sendFinished(res, this.options.jobOf(job.id) ?? job, source ? { source, offset: sent } : undefined);
    }
  }

  /** A follower that caught up goes live: the tail writes to it from now on. */
  private join(tail: LogTail, res: ServerResponse, job: FollowedJob): void {
    const follower: Follower = {
      res,
      drop: (reason) => {
        this.log.warn('live log follower dropped: it does not read fast enough', { job: job.id, reason });
        res.destroy();
      },
    };
    tail.followers.add(follower);
    res.once('close', () => tail.leave(follower));
  }
}

export function createLogFollow(options: LogFollowOptions): LogFollow {
  registerFollowScript();
  return new JobLogFollow(options);
}

export type { FollowedJob };
