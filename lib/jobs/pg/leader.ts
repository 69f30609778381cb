// One leader among the hook-servers of one queue database: a lease in shipkit.leader (term, node,
// backend pid, last renewal) that the leader renews every 2 s and that lapses after 10 s, beside a
// session advisory lock that frees at once when a leader dies. A follower takes over a lapsed lease
// (ending the stale session) or a freed lock; each takeover raises the term that fences writes.
// The whole story: docs/ha.md.
import type pg from 'pg';
import type { Logger } from '../../core/log.ts';
import { messageOf } from '../../core/errors.ts';
import type { Queryable } from '../../db/connect.ts';
import { LOCKS } from '../../db/locks.ts';

export const RENEW_EVERY_MS = 2_000;
export const LEASE_MS = 10_000;

export interface LeaderOptions {
  newClient(applicationName: string): pg.Client;
  log: Logger;
  /** This node's name, in shipkit.leader and the log. */
  node: string;
  /** How often a follower tries to lead and the leader renews its lease (default 2 s). */
  everyMs?: number;
  /** How long a lease holds without a renewal (default 10 s), on the database's clock. */
  leaseMs?: number;
  /** Told when this node starts leading (with its term) and when it stops (undefined). */
  onChange?: (term: number | undefined) => void;
  /** At a handover, after this node stopped leading and before it lets go of the lock: finish its fenced writes. */
  beforeRelease?: () => Promise<void>;
  /** A monotonic clock in ms (default performance.now): the lease as this node counts it. */
  now?: () => number;
}

/** A lease written by a node that renews it (renewed at or after the takeover: older nodes renew nothing). */
const RENEWING = 'l.renewed IS NOT NULL AND l.renewed >= l.since';
/**
 * The session of the lease's holder: its pid with the leader's application name. A pid alone is
 * not enough after a failover, where the row came from the old primary and the same pid may be
 * another program's session on the new one.
 */
const HOLDER = (pid: string, node: string) =>
  `a.pid = ${pid} AND a.application_name = left('shipkit hook-server ' || ${node} || ' (leader)', 63)`;
const LEASE = 'make_interval(secs => $2::float8 / 1000)';
/** A follower's look: the lock if it is free, and the ms the lease has left (negative: lapsed; null: none). */
const LOOK_SQL = `SELECT pg_try_advisory_lock(${LOCKS.leader}) AS got,
  (SELECT extract(epoch FROM l.renewed + ${LEASE.replace('$2', '$1')} - now()) * 1000
     FROM shipkit.leader l WHERE l.id = 1 AND ${RENEWING}) AS left_ms`;
/** With the lock: the lead, unless a lease in force is held by a session still alive (it leads without the lock). */
const TAKE_FREED_SQL = `INSERT INTO shipkit.leader AS l (id, term, node, since, renewed, pid)
  VALUES (1, 1, $1, now(), now(), pg_backend_pid())
  ON CONFLICT (id) DO UPDATE SET term = l.term + 1, node = $1, since = now(), renewed = now(), pid = pg_backend_pid()
  WHERE NOT (${RENEWING} AND l.renewed > now() - ${LEASE} AND l.pid IS DISTINCT FROM pg_backend_pid()
    AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE ${HOLDER('l.pid', 'l.node')}))
  RETURNING term`;
const LAPSED_SQL = `SELECT l.pid, l.node, l.term FROM shipkit.leader l
  WHERE l.id = 1 AND ${RENEWING} AND l.renewed <= now() - ${LEASE.replace('$2', '$1')} FOR UPDATE`;
const TAKE_SQL = `UPDATE shipkit.leader SET term = term + 1, node = $1, since = now(), renewed = now(),
  pid = pg_backend_pid() WHERE id = 1 RETURNING term`;
const RENEW_SQL = 'UPDATE shipkit.leader SET renewed = now() WHERE id = 1 AND term = $1';
const TRY_LOCK_SQL = `SELECT pg_try_advisory_lock(${LOCKS.leader}) AS got`;
const UNLOCK_SQL = `SELECT pg_advisory_unlock(${LOCKS.leader})`;
const END_STALE_SQL = `SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE ${HOLDER('$1', '$2')}`;

export class Leadership {
  private readonly options: LeaderOptions;
  private client: pg.Client | undefined;
  private current: number | undefined;
  /** When the last renewal that succeeded was sent (this node's clock): the lease runs from there. */
  private renewedAt = 0;
  private holdsLock = false;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = false;

  constructor(options: LeaderOptions) {
    this.options = options;
  }

  private get everyMs(): number {
    return this.options.everyMs ?? RENEW_EVERY_MS;
  }

  private get leaseMs(): number {
    return this.options.leaseMs ?? LEASE_MS;
  }

  private now(): number {
    return (this.options.now ?? (() => performance.now()))();
  }

  /**
   * The fencing term while this node leads, else undefined. A lease this node has not renewed in
   * time ends here, as soon as anyone asks (a node resumed after a pause knows before its timers run).
   */
  get term(): number | undefined {
    if (this.current !== undefined && this.now() - this.renewedAt > this.leaseMs)
      this.lose(`its lease was not renewed for ${this.leaseMs / 1000} s`);
    return this.current;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      let next = this.everyMs;
      this.round = this.tryOnce()
        .then((ms) => void (next = ms))
        .finally(() => {
          this.round = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, next);
        });
    };
    tick();
  }

  /** A leader renews its lease; a follower tries to lead. The ms until the next round. */
  private async tryOnce(): Promise<number> {
    try {
      if (this.term !== undefined) {
        await this.renew(this.client!, this.current!);
        return this.everyMs;
      }
      this.client ??= await this.connect();
      return await this.follow(this.client);
    } catch (error) {
      this.lose(`its database session failed: ${messageOf(error)}`);
      return this.everyMs;
    }
  }

  private async renew(client: pg.Client, term: number): Promise<void> {
    const sent = this.now();
    const { rowCount } = await client.query(RENEW_SQL, [term]);
    if (!rowCount) return this.lose('another node took the lead (its term is over)');
    this.renewedAt = sent;
    if (!this.holdsLock) this.holdsLock = (await client.query(TRY_LOCK_SQL)).rows[0].got === true;
  }

  /**
   * The lock if it is free (a leader that died let go of it), else the lease once it lapsed (a
   * leader that hangs with its session open); else the next try when the lease would lapse.
   */
  private async follow(client: pg.Client): Promise<number> {
    const sent = this.now();
    const { rows } = await client.query(LOOK_SQL, [this.leaseMs]);
    const left = rows[0].left_ms === null ? undefined : Number(rows[0].left_ms);
    if (rows[0].got) {
      const { rows: taken } = await client.query(TAKE_FREED_SQL, [this.options.node, this.leaseMs]);
      if (taken.length) {
        this.holdsLock = true;
        this.become(Number(taken[0].term), sent);
        return this.everyMs;
      }
      // A lease in force, held without the lock by a live session: it leads.
      await client.query(UNLOCK_SQL);
    } else if (left !== undefined && left <= 0 && (await this.takeLapsed(client, sent))) return this.everyMs;
    return left !== undefined && left > 0 ? Math.min(this.everyMs, Math.ceil(left) + 50) : this.everyMs;
  }

  /** The lead taken from a lease that lapsed, its holder's session ended so that it lets go of the lock. */
  private async takeLapsed(client: pg.Client, sent: number): Promise<boolean> {
    let stale: { pid: number | null; node: string; term: string } | undefined;
    let term: number | undefined;
    await client.query('BEGIN');
    try {
      stale = (await client.query(LAPSED_SQL, [this.leaseMs])).rows[0];
      if (stale) term = Number((await client.query(TAKE_SQL, [this.options.node])).rows[0].term);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    if (!stale || term === undefined) return false;
    this.options.log.warn(
      `${this.options.node} takes the lead from ${stale.node} (term ${stale.term}), whose lease was not ` +
        `renewed for ${this.leaseMs / 1000} s`,
    );
    this.become(term, sent);
    if (stale.pid !== null) await this.endStaleSession(client, stale.pid, stale.node);
    return true;
  }

  /** The stale leader's session ended (it still holds the lock), then the lock taken in its place. */
  private async endStaleSession(client: pg.Client, pid: number, node: string): Promise<void> {
    try {
      await client.query(END_STALE_SQL, [pid, node]);
    } catch (error) {
      this.options.log.warn(
        `could not end the session of the node that stopped renewing (pid ${pid}): ${messageOf(error)}; ` +
          `it lets go of the lock once it notices`,
      );
      return;
    }
    for (let i = 0; i < 10 && !this.holdsLock && this.current !== undefined; i++) {
      this.holdsLock = (await client.query(TRY_LOCK_SQL)).rows[0].got === true;
      if (!this.holdsLock) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = this.options.newClient(`shipkit hook-server ${this.options.node} (leader)`);
    client.on('error', () => this.lose('its database session was lost'));
    await client.connect();
    return client;
  }

  private become(term: number, renewedAt: number): void {
    this.current = term;
    this.renewedAt = renewedAt;
    this.options.log.info(`${this.options.node} leads (term ${term})`);
    this.options.onChange?.(term);
  }

  /** Stop leading at once: the session, and with it the lock, is ended (a lease not renewed lapses). */
  private lose(why: string): void {
    const client = this.client;
    this.client = undefined;
    this.holdsLock = false;
    client?.end().catch(() => undefined);
    if (this.current === undefined) return;
    this.current = undefined;
    this.options.log.warn(`${this.options.node} no longer leads: ${why}`);
    this.options.onChange?.(undefined);
  }

  /** Hand the lead over: the lease marked left and the lock released now, so another node takes it at its next try. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
    const client = this.client;
    this.client = undefined;
    const term = this.current;
    if (term !== undefined) {
      this.current = undefined;
      this.options.onChange?.(undefined);
      await this.options.beforeRelease?.().catch(() => undefined);
      await client
        ?.query('UPDATE shipkit.leader SET pid = NULL WHERE id = 1 AND term = $1', [term])
        .catch(() => undefined);
      await client?.query(UNLOCK_SQL).catch(() => undefined);
      this.options.log.info(`${this.options.node} hands the lead over`);
    }
    await client?.end().catch(() => undefined);
  }
}

/** Whether `term` is still the leader's term in the database (a fenced write's condition). */
export async function stillLeads(client: Queryable, term: number): Promise<boolean> {
  const { rows } = await client.query('SELECT term FROM shipkit.leader WHERE id = 1', []);
  return rows.length > 0 && Number(rows[0].term) === term;
}
