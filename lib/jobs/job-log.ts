// The job log, DATA/logs/REPO/logs.txt: every build or release appends one job between a start and
// an end line that programs parse (docs/design.md "File formats"); read back by `logs` and the pages.
// The whole story: docs/internals.md.
import { closeSync, openSync, writeSync } from 'node:fs';
import { open, readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { ensureDir, readFileTail } from '../core/fs.ts';
import { isProcessAlive } from '../core/lock.ts';
import { createTextMasker } from './masking.ts';
import { STORED_JOB_ID_SOURCE, isStoredJobId, type JobKind } from './job-id.ts';

const gunzip = promisify(gunzipCallback);

export const LOG_FILE = 'logs.txt';
const MARK = '=== shipkit job ';
// Any stored id form is read, so logs written before ids were unified still parse.
const MARK_LINE = new RegExp(`^=== shipkit job (${STORED_JOB_ID_SOURCE}) (start|end) (\\{.*\\})$`);

export type JobStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';

export interface JobHeader {
  id: string;
  repo: string;
  kind: JobKind;
  sha?: string;
  ref?: string;
  started: string;
  pid: number;
  host: string;
}

export interface JobTrailer {
  id: string;
  status: Exclude<JobStatus, 'running'>;
  exit: number;
  sha?: string;
  step?: string;
  error?: string;
  duration_ms: number;
  finished: string;
}

/** One job as `logs --list` and hook-server see it. */
export interface JobSummary
  extends
    Pick<JobHeader, 'id' | 'repo' | 'kind' | 'sha' | 'ref' | 'started'>,
    Partial<Pick<JobTrailer, 'exit' | 'step' | 'error' | 'duration_ms' | 'finished'>> {
  status: JobStatus;
  /** The file the job is in (logs.txt or a rotated .gz). */
  file: string;
}

export function formatHeader(header: JobHeader): string {
  return `${MARK}${header.id} start ${JSON.stringify(header)}\n`;
}

export function formatTrailer(trailer: JobTrailer): string {
  return `${MARK}${trailer.id} end ${JSON.stringify(trailer)}\n`;
}

/** A header or trailer line, or undefined for any other line. */
export function parseMarkLine(
  line: string,
): { id: string; kind: 'start'; header: JobHeader } | { id: string; kind: 'end'; trailer: JobTrailer } | undefined {
  if (!line.startsWith(MARK)) return undefined;
  const m = MARK_LINE.exec(line);
  if (!m) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(m[3]);
  } catch {
    return undefined;
  }
  if (data === null || typeof data !== 'object') return undefined;
  return m[2] === 'start'
    ? { id: m[1], kind: 'start', header: { ...(data as JobHeader), id: m[1] } }
    : { id: m[1], kind: 'end', trailer: { ...(data as JobTrailer), id: m[1] } };
}

/** `13:30:00.123` in UTC: the header carries the date. */
function timeOfDay(date = new Date()): string {
  return date.toISOString().slice(11, 23);
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface JobLogWriterOptions {
  /** Flush buffered lines at least this often, so `logs --follow` sees them. */
  flushMs?: number;
  now?: () => Date;
  /** Values masked as *** in everything written (lib/jobs/masking.ts): the build's secrets. */
  secrets?: readonly string[];
}

/**
 * Appends one job to logs.txt. Lines are buffered and flushed every `flushMs` or at 64 KB, so a
 * chatty step costs few system calls.
 */
export class JobLogWriter {
  readonly file: string;
  readonly header: JobHeader;
  private fd: number;
  private buffer: string[] = [];
  private buffered = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly flushMs: number;
  private readonly now: () => Date;
  private closed = false;
  /** The job's secrets: command output masks them on its stream too (lib/pipeline/exec.ts). */
  readonly secrets: readonly string[];
  private readonly mask: (text: string) => string;

  private constructor(file: string, fd: number, header: JobHeader, options: JobLogWriterOptions) {
    this.file = file;
    this.secrets = options.secrets ?? [];
    this.mask = createTextMasker(this.secrets);
    this.fd = fd;
    this.header = header;
    this.flushMs = options.flushMs ?? 200;
    this.now = options.now ?? (() => new Date());
  }

  /** Opens logs.txt in append mode, closes a previous job left without trailer, writes the header. */
  static async start(
    logsDir: string,
    header: Omit<JobHeader, 'pid' | 'host' | 'started'> & { started?: string },
    options: JobLogWriterOptions = {},
  ): Promise<JobLogWriter> {
    await ensureDir(logsDir);
    const file = path.join(logsDir, LOG_FILE);
    const full: JobHeader = {
      ...header,
      started: header.started ?? (options.now ?? (() => new Date()))().toISOString(),
      pid: process.pid,
      host: os.hostname(),
    };
    const unfinished = await lastUnfinishedJob(file);
    const fd = openSync(file, 'a', 0o640);
    const writer = new JobLogWriter(file, fd, full, options);
    if (unfinished) {
      // The caller holds the repo lock, so that job's process is gone: it was killed or crashed.
      writer.raw(
        formatTrailer({
          id: unfinished.id,
          status: 'interrupted',
          exit: 1,
          error: 'the job stopped without finishing (process killed or machine restarted)',
          duration_ms: Math.max(0, Date.now() - Date.parse(unfinished.started)),
          finished: full.started,
        }),
      );
    }
    writer.raw(formatHeader(full));
    writer.flush();
    return writer;
  }

  /** A timestamped line (or several): `13:30:00.123 text`, the job's secrets masked. */
  line(text: string, time = this.now()): void {
    this.maskedLine(this.mask(text), time);
  }

  /**
   * As line(), for text whose secrets are masked already: command output, masked on its byte
   * stream (lib/pipeline/exec.ts), which a second pass per line would only slow down.
   */
  maskedLine(text: string, time = this.now()): void {
    const stamp = timeOfDay(time);
    for (const part of text.split('\n')) this.raw(`${stamp} ${part}\n`);
  }

  /** Text written as is (it must end with a newline and must not begin with the mark). */
  raw(text: string): void {
    if (this.closed) return;
    this.buffer.push(text);
    this.buffered += text.length;
    if (this.buffered >= 65536) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.flushMs);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (!this.buffer.length) return;
    const text = this.buffer.join('');
    this.buffer = [];
    this.buffered = 0;
    writeSync(this.fd, text);
  }

  /** Writes the trailer and closes the file. */
  finish(trailer: Omit<JobTrailer, 'id' | 'finished' | 'duration_ms'>): JobTrailer {
    const finished = this.now();
    const full: JobTrailer = {
      id: this.header.id,
      ...trailer,
      ...(trailer.error ? { error: this.mask(trailer.error) } : {}),
      duration_ms: finished.getTime() - Date.parse(this.header.started),
      finished: finished.toISOString(),
    };
    this.raw(formatTrailer(full));
    this.flush();
    this.closed = true;
    closeSync(this.fd);
    return full;
  }
}

async function lastUnfinishedJob(file: string): Promise<JobHeader | undefined> {
  // Jobs of a repo run one at a time (the repo lock), so only the log's last mark line counts: a
  // start is that job's, left open; an end closes the last job. Found from the end, not by parsing
  // the whole tail forward: a build's start stays the same with a long log.
  const tail = (await readFileTail(file, 1 << 20).catch(() => Buffer.alloc(0))).toString('latin1');
  const found = tail.lastIndexOf(`\n${MARK}`);
  const at = found >= 0 ? found + 1 : tail.startsWith(MARK) ? 0 : -1;
  if (at < 0) return undefined;
  const end = tail.indexOf('\n', at);
  const line = Buffer.from(tail.slice(at, end < 0 ? undefined : end), 'latin1').toString('utf8');
  const mark = parseMarkLine(line);
  return mark?.kind === 'start' ? mark.header : undefined;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** logs.txt first, then logs.1.txt.gz, logs.2.txt.gz, … (newest to oldest). */
export async function logFiles(logsDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(logsDir);
  } catch {
    return [];
  }
  const rotated = entries
    .map((name) => /^logs\.(\d+)\.txt\.gz$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => path.join(logsDir, m[0]));
  return [...(entries.includes(LOG_FILE) ? [path.join(logsDir, LOG_FILE)] : []), ...rotated];
}

/** The file's bytes (gunzipped for a rotated file); empty when it cannot be read. */
async function readLogData(file: string): Promise<Buffer> {
  try {
    const data = await readFile(file);
    return file.endsWith('.gz') ? await gunzip(data) : data;
  } catch {
    return Buffer.alloc(0);
  }
}

interface ParsedJob {
  summary: JobSummary;
  header: JobHeader;
  start: number;
  end: number;
}

/** Jobs in one file's text, oldest first, with their string offsets. */
function parseJobs(text: string, file: string, isAlive: (header: JobHeader) => boolean): ParsedJob[] {
  const jobs: ParsedJob[] = [];
  const open = new Map<string, ParsedJob>();
  let offset = 0;
  while (offset < text.length) {
    let next = text.indexOf('\n', offset);
    if (next === -1) next = text.length;
    if (text.startsWith(MARK, offset)) {
      const mark = parseMarkLine(text.slice(offset, next));
      if (mark?.kind === 'start') {
        const h = mark.header;
        const job: ParsedJob = {
          summary: {
            id: h.id,
            repo: h.repo,
            kind: h.kind,
            sha: h.sha,
            ref: h.ref,
            started: h.started,
            status: 'running',
            file,
          },
          header: h,
          start: offset,
          end: text.length,
        };
        jobs.push(job);
        open.set(h.id, job);
      } else if (mark?.kind === 'end') {
        const job = open.get(mark.id);
        if (job) {
          const t = mark.trailer;
          Object.assign(job.summary, {
            status: t.status,
            exit: t.exit,
            step: t.step,
            error: t.error,
            duration_ms: t.duration_ms,
            finished: t.finished,
            sha: t.sha ?? job.summary.sha,
          });
          job.end = Math.min(text.length, next + 1);
          open.delete(mark.id);
        }
      }
    }
    offset = next + 1;
  }
  for (const job of open.values()) {
    if (!isAlive(job.header)) job.summary.status = 'interrupted';
  }
  return jobs;
}

/** Whether the process that wrote a header is still running (another host's counts as running). */
const isJobProcessAlive = (header: Pick<JobHeader, 'pid' | 'host'>) => isProcessAlive(header.pid, header.host);

/** Every job in logs.txt and the rotated files, newest first. */
export async function listJobs(logsDir: string, { rotated = true } = {}): Promise<JobSummary[]> {
  const files = await logFiles(logsDir);
  const all: JobSummary[] = [];
  for (const file of rotated ? files : files.slice(0, 1)) {
    const text = (await readLogData(file)).toString('utf8');
    all.push(
      ...parseJobs(text, file, isJobProcessAlive)
        .map((j) => j.summary)
        .reverse(),
    );
  }
  return all;
}

export interface JobText {
  summary: JobSummary;
  text: string;
}

/** The job's full text (header to trailer), searching logs.txt then the rotated files. */
export async function findJob(logsDir: string, jobId?: string): Promise<JobText | undefined> {
  const found = await locateJob(logsDir, jobId);
  return found && { summary: found.summary, text: found.text };
}

/** findJob, plus the bytes of the file it was found in (followJob reads on from them). */
async function locateJob(
  logsDir: string,
  jobId: string | undefined,
): Promise<(JobText & { data: Buffer }) | undefined> {
  for (const file of await logFiles(logsDir)) {
    const data = await readLogData(file);
    const text = data.toString('utf8');
    const jobs = parseJobs(text, file, isJobProcessAlive);
    const job = jobId === undefined ? jobs[jobs.length - 1] : jobs.find((j) => j.summary.id === jobId);
    if (job) return { summary: job.summary, text: text.slice(job.start, job.end), data };
  }
  return undefined;
}

/** For hook-server's `GET /jobs/ID/log`: the job's text, or undefined when it is not in the logs. */
export async function readJobLog(logsDir: string, jobId: string): Promise<string | undefined> {
  if (!isStoredJobId(jobId)) return undefined;
  return (await findJob(logsDir, jobId))?.text;
}

/** Where hook-server keeps the section a worker sent of a job it ran (lib/jobs/pg/output.ts). */
export function sentSectionFile(jobsDir: string, jobId: string): string {
  return path.join(jobsDir, jobId, 'log.txt');
}

/**
 * A job's section wherever it ran: in this machine's logs.txt, or the copy a worker sent of its
 * own (DATA/jobs/ID/log.txt on hook-server); undefined when neither has it.
 */
export async function readJobSection(logsDir: string, jobsDir: string, jobId: string): Promise<string | undefined> {
  if (!isStoredJobId(jobId)) return undefined;
  const here = await readJobLog(logsDir, jobId).catch(() => undefined);
  if (here !== undefined) return here;
  return readFile(sentSectionFile(jobsDir, jobId), 'utf8').catch(() => undefined);
}

export interface FollowOptions {
  /** Called with each new piece of the job's text. */
  write: (text: string) => void;
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * Streams a job from logs.txt until its trailer is written (or its process is gone), then
 * returns its final summary; a finished job is written once. `jobId` undefined = the last job.
 */
export async function followJob(
  logsDir: string,
  jobId: string | undefined,
  { write, pollMs = 200, signal }: FollowOptions,
): Promise<JobSummary | undefined> {
  const file = path.join(logsDir, LOG_FILE);
  const found = await locateJob(logsDir, jobId);
  if (!found) return undefined;
  const summary = found.summary;
  const headerMark = parseMarkLine(found.text.slice(0, found.text.indexOf('\n')));
  if (summary.status !== 'running' || summary.file !== file || headerMark?.kind !== 'start') {
    write(found.text);
    return summary;
  }
  const header = headerMark.header;
  // From the header's byte offset on, read what is appended, whole lines at a time.
  let position = found.data.indexOf(Buffer.from(`${MARK}${summary.id} start `));
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for (let lastRound = false; ;) {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > position) {
        const buffer = Buffer.alloc(size - position);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        position += bytesRead;
        pending += decoder.write(buffer.subarray(0, bytesRead));
      }
    } finally {
      await handle.close();
    }
    const cut = pending.lastIndexOf('\n') + 1;
    const lines = pending.slice(0, cut).split('\n').slice(0, -1);
    pending = pending.slice(cut);
    let out = '';
    for (const line of lines) {
      const mark = parseMarkLine(line);
      if (mark?.kind === 'start' && mark.id !== summary.id) break;
      out += `${line}\n`;
      if (mark?.kind === 'end' && mark.id === summary.id) {
        write(out);
        const t = mark.trailer;
        return {
          ...summary,
          status: t.status,
          exit: t.exit,
          step: t.step,
          error: t.error,
          duration_ms: t.duration_ms,
          finished: t.finished,
          sha: t.sha ?? summary.sha,
        };
      }
    }
    if (out) write(out);
    if (lastRound) return { ...summary, status: 'interrupted' };
    if (signal?.aborted) return summary;
    // One more read after the writer is gone, in case it wrote its trailer just before exiting.
    if (!isJobProcessAlive(header)) lastRound = true;
    else await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
