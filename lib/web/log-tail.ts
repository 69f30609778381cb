// One job's live log, read once for all of its followers (lib/web/log-follow.ts): polls the
// source file (the build's section of DATA/logs/REPO/logs.txt once its header is there, else
// DATA/jobs/ID/output.log), reads only the new bytes, and fans whole lines out as events whose
// id is the byte offset reached. A follower that lets 1 MB pile up unsent for 2 s is dropped.
// When the job ends, the rest is read, `end` sent, and every follower's stream closed.
import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from '../core/log.ts';
import { FINISHED_STATES } from '../jobs/job.ts';
import { PIECE, RESET, cutAtLine, dataEvent, drained, endEvent, type Source } from './event-stream.ts';
import { messageOf } from '../core/errors.ts';

/** What the tail needs of a job (lib/jobs/local/journal.ts's Job has these fields). */
export interface FollowedJob {
  id: string;
  repo: string;
  state: string;
  exit: number | null;
}

/** The states a job ends in: the journal's own list. */
export const ENDED: ReadonlySet<string> = new Set(FINISHED_STATES);
/** Bytes read per file read; a tick reads on while there is more, up to TICK_BYTES. */
export const READ_BYTES = 256 * 1024;
const TICK_BYTES = 8 * 1024 * 1024;
const MARK = '=== shipkit job ';

export interface Follower {
  res: ServerResponse;
  drop(reason: string): void;
}

export interface TailDeps {
  jobsDir: string;
  logsDirOf: (repo: string) => string;
  jobOf: (id: string) => FollowedJob | undefined;
  log: Logger;
  pollMs: number;
  keepaliveMs: number;
  maxBuffered: number;
  stallMs: number;
  /** Whether followers of this job are still catching up from the file (not live yet). */
  joining: () => boolean;
  /** Called once when the tail stops. */
  onStop: () => void;
}

export class LogTail {
  readonly followers = new Set<Follower>();
  source: Source | undefined;
  /** Where the section starts in logs.txt. */
  sectionStart = 0;
  /** How far logs.txt has been searched for the header. */
  searched = 0;
  /** Bytes of the source sent to followers (always at a line boundary, or at the end). */
  position = 0;
  pending: Buffer = Buffer.alloc(0);
  /** The section's trailer was read: what follows in logs.txt is another job's. */
  private sectionDone = false;
  private timer: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout;
  private busy = true;
  /**
   * The source file, open for as long as the tail reads it: when the job ends, its runner trims
   * output.log by writing a shorter copy over it (lib/jobs/process/runner.ts trimOutput), and what
   * the tail has not read yet is then only in the file it holds open.
   */
  private handle: FileHandle | undefined;
  private handleFile: string | undefined;
  done = false;
  /** Settled once the source is known (the first look for the section). */
  readonly ready: Promise<void>;

  readonly id: string;
  readonly repo: string;
  private readonly deps: TailDeps;

  constructor(id: string, repo: string, deps: TailDeps) {
    this.id = id;
    this.repo = repo;
    this.deps = deps;
    this.keepalive = setInterval(() => this.broadcast(': keepalive\n\n'), deps.keepaliveMs);
    this.timer = setInterval(() => void this.tick(), deps.pollMs);
    // What is in the file already is sent to each follower from the file (catching up): the
    // tail starts at its last whole line.
    this.ready = this.findSection()
      .catch(() => undefined)
      .then(async () => {
        this.source ??= 'o';
        this.position = await this.lastLineEnd();
      })
      .catch(() => undefined)
      .finally(() => {
        this.busy = false;
      });
  }

  file(): string {
    return this.source === 's'
      ? path.join(this.deps.logsDirOf(this.repo), 'logs.txt')
      : path.join(this.deps.jobsDir, this.id, 'output.log');
  }

  broadcast(frame: string): void {
    for (const f of this.followers) if (!f.res.destroyed) f.res.write(frame);
  }

  /**
   * Lets followers take what was written: the tail reads on when every one holds at most
   * maxBuffered unsent bytes; one still over it after stallMs is dropped (it stays behind
   * without holding memory or the others back).
   */
  async settle(): Promise<void> {
    const { maxBuffered, stallMs } = this.deps;
    const deadline = Date.now() + stallMs;
    for (const f of [...this.followers]) {
      while (!f.res.destroyed && f.res.writableLength > maxBuffered && Date.now() < deadline)
        await drained(f.res, deadline - Date.now());
      if (!f.res.destroyed && f.res.writableLength > maxBuffered)
        f.drop(`${f.res.writableLength} bytes unsent after ${stallMs} ms`);
    }
  }

  /** Look for the build's header in logs.txt (new bytes only); switch to it when it appears. */
  async findSection(): Promise<void> {
    const file = path.join(this.deps.logsDirOf(this.repo), 'logs.txt');
    const marker = Buffer.from(`${MARK}${this.id} start `);
    let handle;
    try {
      handle = await open(file, 'r');
    } catch {
      return;
    }
    try {
      const { size } = await handle.stat();
      if (size < this.searched) this.searched = 0; // rotated
      while (this.searched < size) {
        const from = Math.max(0, this.searched - marker.length);
        const buffer = Buffer.alloc(Math.min(READ_BYTES, size - from));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
        const found = buffer.subarray(0, bytesRead).indexOf(marker);
        // A header starts a line.
        if (found !== -1 && (from + found === 0 || (await this.byteAt(handle, from + found - 1)) === 0x0a)) {
          this.sectionStart = from + found;
          if (this.source === 'o') this.broadcast(RESET);
          this.source = 's';
          this.position = 0;
          this.pending = Buffer.alloc(0);
          return;
        }
        this.searched = from + bytesRead;
        if (bytesRead === 0) break;
      }
    } finally {
      await handle.close();
    }
  }

  /** Bytes of the source up to the end of its last whole line (0 when there is no file yet). */
  private async lastLineEnd(): Promise<number> {
    const start = this.source === 's' ? this.sectionStart : 0;
    let handle;
    try {
      handle = await open(this.file(), 'r');
    } catch {
      return 0;
    }
    try {
      const { size } = await handle.stat();
      const length = Math.min(PIECE, size - start);
      if (length <= 0) return 0;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, size - length);
      const [, rest] = cutAtLine(buffer.subarray(0, bytesRead), PIECE - 1);
      return size - start - rest.length;
    } finally {
      await handle.close();
    }
  }

  private async byteAt(handle: FileHandle, at: number): Promise<number> {
    const one = Buffer.alloc(1);
    await handle.read(one, 0, 1, at);
    return one[0];
  }

  /** New bytes of the source, whole lines fanned out; stops at the section's trailer. */
  async readNew(final: boolean): Promise<void> {
    if (!this.source || this.sectionDone) return;
    const start = this.source === 's' ? this.sectionStart : 0;
    const handle = await this.sourceHandle();
    if (!handle) return;
    const { size } = await handle.stat();
    let read = 0;
    // The job ended: the rest is read now, however much, before `end`.
    while ((final || read < TICK_BYTES) && this.followers.size > 0) {
      const at = start + this.position + this.pending.length;
      if (at >= size) break;
      const buffer = Buffer.alloc(Math.min(READ_BYTES, size - at));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) break;
      read += bytesRead;
      let [whole, rest] = cutAtLine(Buffer.concat([this.pending, buffer.subarray(0, bytesRead)]));
      if (this.source === 's') {
        // Lines after this job's trailer belong to the next job of the repo.
        const trailer = whole.indexOf(`${MARK}${this.id} end `);
        if (trailer !== -1) {
          whole = whole.subarray(0, whole.indexOf(0x0a, trailer) + 1);
          rest = Buffer.alloc(0);
          this.sectionDone = true;
        }
      }
      this.pending = rest;
      if (whole.length) {
        this.emit(whole);
        await this.settle();
      }
      if (this.sectionDone) break;
    }
    if (final && this.pending.length) {
      this.emit(this.pending);
      this.pending = Buffer.alloc(0);
    }
  }

  /** The source file as it was when first read, opened once (see `handle`); undefined while it does not exist. */
  private async sourceHandle(): Promise<FileHandle | undefined> {
    const file = this.file();
    if (this.handle && this.handleFile === file) return this.handle;
    await this.closeHandle();
    try {
      this.handle = await open(file, 'r');
    } catch {
      return undefined;
    }
    this.handleFile = file;
    return this.handle;
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = this.handleFile = undefined;
    await handle?.close().catch(() => undefined);
  }

  emit(bytes: Buffer): void {
    this.position += bytes.length;
    this.broadcast(dataEvent(`${this.source}:${this.position}`, bytes.toString('utf8')));
  }

  async tick(): Promise<void> {
    if (this.busy || this.done) return;
    this.busy = true;
    try {
      // The state first: what was written before the job ended is read below.
      if (this.followers.size === 0 && !this.deps.joining()) return this.stop();
      const job = this.deps.jobOf(this.id);
      const ended = !job || ENDED.has(job.state);
      if (this.source !== 's') {
        await this.findSection();
        this.source ??= 'o';
      }
      await this.readNew(ended);
      if (ended) this.finish(job ?? { id: this.id, repo: this.repo, state: 'interrupted', exit: null });
    } catch (error) {
      this.deps.log.warn('could not read a followed job log; its followers are ended', {
        job: this.id,
        error: messageOf(error),
      });
      this.stop();
    } finally {
      this.busy = false;
      // stop() during a read leaves the file open to that read.
      if (this.done) void this.closeHandle();
    }
  }

  finish(job: FollowedJob): void {
    this.broadcast(endEvent(job));
    this.stop();
  }

  stop(): void {
    if (this.done) return;
    this.done = true;
    clearInterval(this.timer);
    clearInterval(this.keepalive);
    if (!this.busy) void this.closeHandle();
    this.deps.onStop();
    for (const f of this.followers) f.res.end();
    this.followers.clear();
  }

  leave(f: Follower): void {
    this.followers.delete(f);
    if (this.followers.size === 0) this.stop();
  }
}
