// A running job's log, live: `GET /jobs/ID/log?follow=1` as `text/event-stream` (DESIGN §5).
// The text is what `GET /jobs/ID/log` shows (already masked by the build): the job's section of
// DATA/logs/REPO/logs.txt once the build has written its header, else DATA/jobs/ID/output.log.
// One tail per job, shared by all of its followers: the files are polled, only new bytes are read,
// and whole lines are fanned out (a line, and so a UTF-8 character, is never cut unless it passes
// 64 KB). Each event's `id:` is SOURCE:BYTE_OFFSET (`o:` output.log, `s:` the logs.txt section),
// so a reconnecting EventSource resumes where it was with `Last-Event-ID`; when the source moves
// from output.log to the section, an `event: reset` tells the page to start over. A follower whose
// socket does not drain is dropped, not buffered for; followers are capped per job and in total.
import { open, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from '../core/log.ts';
import { requestIdOf } from '../http/request-id.ts';
import { sendJson } from '../http/server.ts';
import { PIECE, RESET, cutAtLine, dataEvent, endEvent, parseEventId, writeDrained, type Source } from './event-stream.ts';
import { ENDED, LogTail, READ_BYTES, type FollowedJob, type Follower } from './log-tail.ts';
import { registerFollowScript } from './follow-script.ts';

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

export function createLogFollow(options: LogFollowOptions): LogFollow {
  registerFollowScript();
  const pollMs = options.pollMs ?? 300;
  const keepaliveMs = options.keepaliveMs ?? 15_000;
  const retryMs = options.retryMs ?? 2_000;
  const maxPerJob = options.maxPerJob ?? 200;
  const maxTotal = options.maxTotal ?? 500;
  const maxBuffered = options.maxBuffered ?? 1024 * 1024;
  const stallMs = options.stallMs ?? 2_000;
  const { log } = options;
  const tails = new Map<string, LogTail>();
  /** Every open follower response, live or catching up: the caps count these. */
  const open_ = new Map<string, Set<ServerResponse>>();
  let total = 0;
  let closed = false;

  const outputFile = (id: string) => path.join(options.jobsDir, id, 'output.log');

  function refuse(req: IncomingMessage, res: ServerResponse, message: string): void {
    sendJson(res, 503, { error: message, request: requestIdOf(req) }, { 'Retry-After': '10' });
  }

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

  function track(id: string, res: ServerResponse): () => void {
    let set = open_.get(id);
    if (!set) open_.set(id, set = new Set());
    set.add(res);
    total++;
    let gone = false;
    return () => {
      if (gone) return;
      gone = true;
      set.delete(res);
      if (set.size === 0) open_.delete(id);
      total--;
    };
  }

  /** A finished job: everything from `offset`, then `end`, at once. */
  /**
   * Sends bytes [from, to) of a source file as events of whole lines, `start` being the source's
   * offset in the file; read a piece at a time, so a long log is never held whole. Returns the
   * offset reached, or -1 when the follower is gone.
   */
  async function sendRange(res: ServerResponse, source: Source, file: string, start: number, from: number, to: number): Promise<number> {
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

  /** A finished job: everything from `from` (when it is a place in the same text), then `end`, at once. */
  async function sendFinished(res: ServerResponse, job: FollowedJob, from: { source: Source; offset: number } | undefined): Promise<void> {
    const section = await options.readSection(job);
    const source: Source = section === undefined ? 'o' : 's';
    const data = section === undefined ? undefined : Buffer.from(section);
    const size = data?.length ?? await stat(outputFile(job.id)).then((s) => s.size, () => 0);
    const offset = from && from.source === source && from.offset <= size ? from.offset : 0;
    if (from && from.offset > 0 && offset === 0) res.write(RESET);
    const sent = data ? await sendBytes(res, source, data.subarray(offset), offset) : size > offset ? await sendRange(res, source, outputFile(job.id), 0, offset, size) : offset;
    if (sent !== -1) res.end(endEvent(job));
  }

  /** A running (or queued) job: from `from` up to where the tail is, read from the file, then the live tail. */
  async function sendLive(res: ServerResponse, job: FollowedJob, from: { source: Source; offset: number } | undefined, untrack: () => void): Promise<void> {
    let tail = tails.get(job.id);
    if (!tail) {
      const id = job.id;
      tail = new LogTail(id, job.repo, {
        jobsDir: options.jobsDir, logsDirOf: options.logsDirOf, jobOf: options.jobOf, log, pollMs, keepaliveMs, maxBuffered, stallMs,
        joining: () => (open_.get(id)?.size ?? 0) > 0,
        onStop: () => tails.delete(id),
      });
      tails.set(job.id, tail);
    }
    // The source is known before a follower catches up, so it starts from the right file.
    await tail.ready;
    const follower: Follower = {
      res,
      drop(reason) {
        log.warn('live log follower dropped: it does not read fast enough', { job: job.id, reason });
        res.destroy();
      },
    };
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
      if (sent === tail.position) {
        tail.followers.add(follower);
        res.once('close', () => tail.leave(follower));
        return;
      }
      const to = tail.position;
      const next = await sendRange(res, source!, tail.file(), tail.source === 's' ? tail.sectionStart : 0, sent, to);
      // Gone, or the file is shorter than what the tail read (trimmed): the client reconnects.
      if (next === -1 || next < to) return void res.destroy();
      sent = next;
    }
    // The tail ended while catching up: finish from the whole text.
    if (!res.destroyed && tail.done) {
      untrack();
      return sendFinished(res, options.jobOf(job.id) ?? job, source ? { source, offset: sent } : undefined);
    }
  }

  return {
    async handle(req, res, job) {
      if (closed) return refuse(req, res, 'shutting down');
      const live = !ENDED.has(job.state);
      if (live && ((open_.get(job.id)?.size ?? 0) >= maxPerJob || total >= maxTotal)) {
        log.warn('live log follower refused: too many followers', { job: job.id, followers: total });
        return refuse(req, res, 'too many followers of live logs, retry later');
      }
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff',
        // A proxy in front (nginx) must pass events on as they come.
        'X-Accel-Buffering': 'no',
      });
      if (req.method === 'HEAD') return void res.end();
      res.write(`retry: ${retryMs}\n\n`);
      const from = parseEventId(req.headers['last-event-id']);
      const untrack = track(job.id, res);
      res.once('close', untrack);
      try {
        if (live) await sendLive(res, job, from, untrack);
        else await sendFinished(res, job, from);
      } catch (error) {
        log.warn('could not send a job log to a follower', { job: job.id, error: (error as Error).message });
        res.destroy();
      }
    },
    close() {
      closed = true;
      for (const tail of [...tails.values()]) tail.stop();
      for (const set of open_.values()) for (const res of set) res.end();
    },
    stats() {
      return { tails: tails.size, followers: total };
    },
  };
}

export type { FollowedJob };
