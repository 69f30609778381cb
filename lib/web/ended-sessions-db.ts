// Status-page sessions ended on any hook-server of one queue database: a logout is written to
// shipkit.ended_sessions as well as to DATA's file, and each node reads the rows added since its
// last look every second, so the cookie is refused, and its live streams cut, on every node.
// The whole story: docs/ha.md.
import { randomUUID } from 'node:crypto';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { connectPool, startError, type Queryable, type QueueDatabase } from '../db/connect.ts';
import { ensureSchema } from '../db/schema.ts';
import { version } from '../core/cli.ts';
import type { EndedSessions } from './ended-sessions.ts';
import { SESSION_SECONDS } from './session.ts';

export interface SharedEndedSessions extends EndedSessions {
  close(): void;
}

// The id of an end-all row: no session id starts with it.
const END_ALL = '*';

/**
 * `hook-server --end-sessions` with `queue:`: the sessions issued before `before` (ms) are ended
 * on every hook-server of the queue database (each reads the row within a second).
 */
export async function endAllSharedSessions(db: QueueDatabase, before: number, log: Logger): Promise<void> {
  const pool = await connectPool(db, 'hook-server --end-sessions', log, 1);
  try {
    const client = await pool.connect();
    try {
      await ensureSchema(client, version());
    } finally {
      client.release();
    }
    await pool.query('INSERT INTO shipkit.ended_sessions (id, issued) VALUES ($1, $2)', [
      `${END_ALL}${before}-${randomUUID()}`,
      before,
    ]);
  } catch (error) {
    throw startError(error, db);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** `local` (this node's file) joined with the sessions every node of `db` ended. */
export function shareEndedSessions(
  local: EndedSessions,
  db: Queryable,
  { log, everyMs = 1_000, now = () => Date.now() }: { log: Logger; everyMs?: number; now?: () => number },
): SharedEndedSessions {
  const shared = new Map<string, number>();
  // Sessions issued before this were ended on every node (`hook-server --end-sessions`).
  let endedBefore = 0;
  let lastSeq = 0;
  let rounds = 0;
  let failing = false;
  const look = async () => {
    try {
      const { rows } = await db.query(
        'SELECT seq, id, issued FROM shipkit.ended_sessions WHERE seq > $1 ORDER BY seq LIMIT 10000',
        [lastSeq],
      );
      for (const row of rows) {
        if (String(row.id).startsWith(END_ALL)) endedBefore = Math.max(endedBefore, Number(row.issued));
        else shared.set(String(row.id), Number(row.issued));
        lastSeq = Math.max(lastSeq, Number(row.seq));
      }
      // Now and then: rows whose cookie has expired anyway are dropped, here and in the table.
      if (++rounds % 600 === 0) {
        const expired = now() - SESSION_SECONDS * 1000;
        for (const [id, issued] of shared) if (issued < expired) shared.delete(id);
        await db.query('DELETE FROM shipkit.ended_sessions WHERE issued < $1', [expired]);
      }
      failing = false;
    } catch (error) {
      if (!failing) log.warn(`could not read the sessions other hook-servers ended: ${messageOf(error)}`);
      failing = true;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => void look().finally(schedule), everyMs);
    timer.unref?.();
  };
  void look().finally(schedule);
  return {
    isEnded: (session) => local.isEnded(session) || shared.has(session.id) || session.issued < endedBefore,
    async end(session, at) {
      shared.set(session.id, session.issued);
      await Promise.all([
        local.end(session, at),
        db.query('INSERT INTO shipkit.ended_sessions (id, issued) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [
          session.id,
          session.issued,
        ]),
      ]);
    },
    close: () => clearTimeout(timer),
  };
}
