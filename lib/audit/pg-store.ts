// The audit trail with `queue:`: shipkit.audit in the queue database, one row per line. Each
// append takes a transaction-scoped advisory lock and reads the head inside it, so several
// hook-servers (and commands such as `deliveries replay`, in their own transaction) keep one chain.
import type pg from 'pg';
import { ensureSchema } from '../db/schema.ts';
import { type Queryable } from '../db/connect.ts';
import { connectPool, inTransaction, type QueueDatabase } from '../db/connect.ts';
import type { Logger } from '../core/log.ts';
import { version } from '../core/cli.ts';
import {
  chainLines,
  entryOfLine,
  sha256Hex,
  splitLines,
  verifyAuditChain,
  type AuditEntry,
  type NewAuditEntry,
} from './chain.ts';
import type { HeadFile } from './head.ts';
import type { AuditQuery } from './query.ts';
import { cutOf, retentionEntry, type AuditRow, type AuditStore, type Pruned } from './store.ts';
import { LOCKS } from '../db/locks.ts';

const LOCK_SQL = `SELECT pg_advisory_xact_lock(${LOCKS.audit})`;

/** `entries` appended in the caller's transaction (`client` must be in one): committed with it. */
export async function appendAuditRows(client: Queryable, entries: NewAuditEntry[]): Promise<AuditEntry[]> {
  return (await appendRows(client, entries)).added;
}

/** As appendAuditRows, with the head the entries were appended after and the one they leave. */
async function appendRows(client: Queryable, entries: NewAuditEntry[]) {
  await client.query(LOCK_SQL);
  const { rows } = await client.query('SELECT n, line FROM shipkit.audit ORDER BY n DESC LIMIT 1');
  const before = rows.length ? { n: Number(rows[0].n), hash: sha256Hex(String(rows[0].line)) } : undefined;
  const { lines, head: after } = chainLines(entries, before);
  const added = lines.map((l) => JSON.parse(l) as AuditEntry);
  for (const [i, line] of lines.entries())
    await client.query('INSERT INTO shipkit.audit (n, at, line) VALUES ($1, $2, $3)', [added[i].n, added[i].at, line]);
  return { added, before, after };
}

async function readAllIn(client: Queryable): Promise<Buffer> {
  const { rows } = await client.query('SELECT line FROM shipkit.audit ORDER BY n');
  return Buffer.from(rows.map((r) => `${r.line}\n`).join(''));
}

export class AuditTable implements AuditStore {
  private readonly pool: pg.Pool;
  private readonly db: Pick<QueueDatabase, 'where'>;
  readonly head: HeadFile | undefined;

  constructor(pool: pg.Pool, db: Pick<QueueDatabase, 'where'>, head?: HeadFile) {
    this.pool = pool;
    this.db = db;
    this.head = head;
  }

  /** A pool of its own on `db`, shipkit's tables made if missing (as the queue makes them). */
  static async open(db: QueueDatabase, name: string, log: Logger, head?: HeadFile): Promise<AuditTable> {
    const pool = await connectPool(db, name, log);
    try {
      const client = await pool.connect();
      try {
        await ensureSchema(client, version());
      } finally {
        client.release();
      }
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
    return new AuditTable(pool, db, head);
  }

  where(): string {
    return `the table shipkit.audit of the queue database at ${this.db.where}`;
  }

  /** Committed, then the head kept in DATA raised (head.ts): this node's file keeps what it appended. */
  async append(entries: NewAuditEntry[]): Promise<AuditEntry[]> {
    const { added, before, after } = await inTransaction(this.pool, (c) => appendRows(c, entries));
    if (after) await this.head?.keep(before, after, (n) => this.hashOf(n));
    return added;
  }

  private async hashOf(n: number): Promise<string | undefined> {
    const { rows } = await this.pool.query('SELECT line FROM shipkit.audit WHERE n = $1', [n]);
    return rows.length ? sha256Hex(String(rows[0].line)) : undefined;
  }

  async read({ since, limit }: AuditQuery): Promise<AuditRow[]> {
    const sql = !since
      ? 'SELECT line FROM (SELECT n, line FROM shipkit.audit ORDER BY n DESC LIMIT $1) newest ORDER BY n'
      : 'after' in since
        ? 'SELECT line FROM shipkit.audit WHERE n > $2 ORDER BY n LIMIT $1'
        : 'SELECT line FROM shipkit.audit WHERE at >= $2 ORDER BY n LIMIT $1';
    const values = !since ? [limit] : [limit, 'after' in since ? since.after : since.from];
    const { rows } = await this.pool.query(sql, values);
    return rows.flatMap((r) => {
      const entry = entryOfLine(Buffer.from(String(r.line)));
      return entry ? [{ entry, line: String(r.line) }] : [];
    });
  }

  readAll(): Promise<Buffer> {
    return readAllIn(this.pool);
  }

  /** As the file's prune, in one transaction under the append lock: any node may run it. */
  async prune(before: Date, keepDays: number, now: Date, node?: string): Promise<Pruned> {
    const pruned = await inTransaction(this.pool, async (c) => {
      await c.query(LOCK_SQL);
      const bytes = await readAllIn(c);
      const { entries, head } = verifyAuditChain(bytes);
      const cut = cutOf(entries, before);
      if (!cut || !head) return { cut: 0, before: undefined, after: undefined };
      const lastCut = splitLines(bytes).lines[cut.count - 1];
      await c.query('DELETE FROM shipkit.audit WHERE n <= $1', [cut.through]);
      const entry = retentionEntry(cut, sha256Hex(lastCut), keepDays, now);
      const appended = await appendRows(c, [{ ...entry, ...(node ? { node } : {}) }]);
      return { cut: cut.count, through: cut.through, before: appended.before, after: appended.after };
    });
    if (pruned.after) await this.head?.keep(pruned.before, pruned.after, (n) => this.hashOf(n));
    return { cut: pruned.cut, through: pruned.through };
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
