// Where the audit trail is kept, seen from the one who records and reads it: a file in DATA
// (file-store) or a table of the queue database (pg-store). What a retention cut is, both share.
import type { AuditEntry, NewAuditEntry } from './chain.ts';
import type { HeadFile } from './head.ts';
import type { AuditQuery } from './query.ts';

/** An entry and its line as stored: the line is what the chain hashes. */
export interface AuditRow {
  entry: AuditEntry;
  line: string;
}

export interface Pruned {
  cut: number;
  /** The number of the last entry cut. */
  through?: number;
}

export interface AuditStore {
  /** Appended after the trail's head, on disk or committed before this resolves. */
  append(entries: NewAuditEntry[]): Promise<AuditEntry[]>;
  read(query: AuditQuery): Promise<AuditRow[]>;
  /** Every line, as the file holds them: what `--verify` checks. */
  readAll(): Promise<Buffer>;
  /** Entries older than `before` cut, and a `retention` entry appended that says so (by `node`, with `queue:`). */
  prune(before: Date, keepDays: number, now: Date, node?: string): Promise<Pruned>;
  /** The file or database, for messages. */
  where(): string;
  /** Where the trail's head is kept (DATA/audit-head.json), raised after each append. */
  readonly head?: HeadFile;
  close(): Promise<void>;
}

export interface Cut {
  count: number;
  through: number;
  firstAt: string;
  lastAt: string;
}

/** The entries at the front older than `before` (up to the first newer one), or undefined for none. */
export function cutOf(entries: AuditEntry[], before: Date): Cut | undefined {
  let count = 0;
  while (count < entries.length && Date.parse(entries[count].at) < before.getTime()) count++;
  if (count === 0) return undefined;
  return { count, through: entries[count - 1].n, firstAt: entries[0].at, lastAt: entries[count - 1].at };
}

/** The entry a cut leaves behind: how many entries went, through which number, and the last one's hash. */
export function retentionEntry(cut: Cut, lastCutSha256: string, keepDays: number, now: Date): NewAuditEntry {
  return {
    at: now.toISOString(),
    action: 'retention',
    actor: 'hook-server',
    from: 'local',
    subject: null,
    detail: {
      cut: cut.count,
      through: cut.through,
      last_cut_sha256: lastCutSha256,
      first_cut_at: cut.firstAt,
      last_cut_at: cut.lastAt,
      keep_days: keepDays,
    },
  };
}
