// The audit trail without `queue:`: DATA/audit/audit.jsonl, appended under a lock file (hook-server
// and `hook-server --end-sessions` may both write) and synced before the action is answered. The
// head is read from the file's end each time, so no writer works from a stale one, and kept
// apart in DATA/audit-head.json (head.ts) once the line is synced. The whole story: docs/audit.md.
import { open, readFile, truncate } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir, readFileTail, syncDir } from '../core/fs.ts';
import { acquireLock } from '../core/lock.ts';
import { ValidationError } from '../core/errors.ts';
import {
  chainLines,
  MAX_LINE_BYTES,
  entryOfLine,
  sha256Hex,
  splitLines,
  verifyAuditChain,
  type AuditEntry,
  type AuditHead,
  type NewAuditEntry,
} from './chain.ts';
import type { HeadFile } from './head.ts';
import { selectEntries, type AuditQuery } from './query.ts';
import { cutOf, retentionEntry, type AuditRow, type AuditStore, type Pruned } from './store.ts';

export const AUDIT_FILE = path.join('audit', 'audit.jsonl');

export function auditFileOf(dataDir: string): string {
  return path.join(dataDir, AUDIT_FILE);
}

const LOCK_WAIT_MS = 10_000;

async function readOrEmpty(file: string, read: (file: string) => Promise<Buffer>): Promise<Buffer> {
  try {
    return await read(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw error;
  }
}

export class AuditFile implements AuditStore {
  readonly file: string;
  readonly head: HeadFile | undefined;
  /** One append or prune at a time in this process; the lock file keeps other processes out. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(file: string, head?: HeadFile) {
    this.file = file;
    this.head = head;
  }

  where(): string {
    return this.file;
  }

  append(entries: NewAuditEntry[]): Promise<AuditEntry[]> {
    return this.exclusive(async () => {
      const { head, goodBytes, torn } = await this.readHead();
      // A torn last line was never acknowledged (its writer died mid-write): cut before appending.
      if (torn) await truncate(this.file, goodBytes);
      const { lines, head: after } = chainLines(entries, head);
      await this.write(lines.map((l) => `${l}\n`).join(''));
      if (after) await this.head?.keep(head, after, (n) => this.hashOf(n));
      return lines.map((l) => JSON.parse(l) as AuditEntry);
    });
  }

  async read(query: AuditQuery): Promise<AuditRow[]> {
    const bytes = await this.readAll();
    const rows = splitLines(bytes).lines.flatMap((line) => {
      const entry = entryOfLine(line);
      return entry ? [{ entry, line: line.toString('utf8') }] : [];
    });
    return selectEntries(rows, query);
  }

  readAll(): Promise<Buffer> {
    return readOrEmpty(this.file, (f) => readFile(f));
  }

  /**
   * Entries older than `before` cut from the front, and a `retention` entry appended that records
   * how many, through which number and the last cut line's hash. A trail that does not verify is
   * not cut (the cut would hide what broke it): AuditChainError.
   */
  prune(before: Date, keepDays: number, now: Date): Promise<Pruned> {
    return this.exclusive(async () => {
      const bytes = await this.readAll();
      const { entries, head } = verifyAuditChain(bytes);
      const cut = cutOf(entries, before);
      if (!cut || !head) return { cut: 0 };
      const { lines } = splitLines(bytes);
      const kept = lines.slice(cut.count);
      const lastCut = lines[cut.count - 1];
      const entry = retentionEntry(cut, sha256Hex(lastCut), keepDays, now);
      const { lines: added, head: after } = chainLines([entry], head);
      const content = [...kept.map((l) => l.toString('utf8')), ...added].map((l) => `${l}\n`).join('');
      await atomicWriteFile(this.file, content, { mode: 0o640 });
      await this.head?.keep(head, after!, (n) => this.hashOf(n));
      return { cut: cut.count, through: cut.through };
    });
  }

  async close(): Promise<void> {
    await this.turn.catch(() => undefined);
  }

  /** The sha256 of entry `n`'s line, if the file holds it (the kept head checked before it is raised). */
  private async hashOf(n: number): Promise<string | undefined> {
    const line = splitLines(await this.readAll()).lines.find((l) => entryOfLine(l)?.n === n);
    return line && sha256Hex(line);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.turn.then(async () => {
      await ensureDir(path.dirname(this.file), 0o750);
      const lock = await acquireLock(`${this.file}.lock`, { waitMs: LOCK_WAIT_MS, what: 'The audit trail' });
      try {
        return await work();
      } finally {
        await lock.release();
      }
    });
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** The last complete line's number and hash, where the complete lines end, and whether a torn one follows. */
  private async readHead(): Promise<{ head?: AuditHead; goodBytes: number; torn: boolean }> {
    const tail = await readOrEmpty(this.file, (f) => readFileTail(f, 4 * MAX_LINE_BYTES));
    const size = await this.size();
    const end = tail.lastIndexOf(0x0a);
    const goodBytes = size - tail.length + end + 1;
    if (end < 0) return { goodBytes: 0, torn: size > 0 };
    const start = tail.lastIndexOf(0x0a, end - 1) + 1;
    const line = tail.subarray(start, end);
    let n: unknown;
    try {
      n = JSON.parse(line.toString('utf8')).n;
    } catch {
      n = undefined;
    }
    if (!Number.isSafeInteger(n))
      throw new ValidationError(`the last line of ${this.file} is damaged; run \`shipkit audit --verify\``);
    return { head: { n: n as number, hash: sha256Hex(line) }, goodBytes, torn: goodBytes < size };
  }

  private async size(): Promise<number> {
    const handle = await open(this.file, 'r').catch(() => undefined);
    if (!handle) return 0;
    try {
      return (await handle.stat()).size;
    } finally {
      await handle.close();
    }
  }

  /** Appended and on disk (data and, for a new file, its folder entry) before this resolves. */
  private async write(text: string): Promise<void> {
    const created = (await this.size()) === 0;
    const handle = await open(this.file, 'a', 0o640);
    try {
      await handle.write(text);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    if (created) await syncDir(path.dirname(this.file));
  }
}
