// One leader among the hook-servers of one queue database: the node holding a session advisory
// lock on a connection of its own leads, with a fencing term (shipkit.leader) raised at each
// takeover that its writes check. The lock goes with the session, so a leader killed with -9 is
// replaced at another node's next try (every 2 s).
// The whole story: docs/ha.md.
import type pg from 'pg';
import type { Logger } from '../../core/log.ts';
import { messageOf } from '../../core/errors.ts';
import type { Queryable } from '../../db/connect.ts';
import { LOCKS } from '../../db/locks.ts';

export interface LeaderOptions {
  newClient(applicationName: string): pg.Client;
  log: Logger;
  /** This node's name, in shipkit.leader and the log. */
  node: string;
  /** How often a follower tries the lock and a leader checks its session (default 2 s). */
  everyMs?: number;
  /** Told when this node starts leading (with its term) and when it stops (undefined). */
  onChange?: (term: number | undefined) => void;
  /** At a handover, after this node stopped leading and before it lets go of the lock: finish its fenced writes. */
  beforeRelease?: () => Promise<void>;
}

export class Leadership {
  private readonly options: LeaderOptions;
  private client: pg.Client | undefined;
  private current: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = false;

  constructor(options: LeaderOptions) {
    this.options = options;
  }

  /** The fencing term while this node leads, else undefined. */
  get term(): number | undefined {
    return this.current;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.round = this.tryOnce().finally(() => {
        this.round = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.options.everyMs ?? 2_000);
      });
    };
    tick();
  }

  /** A follower tries the lock; a leader checks that its session (and so its lock) still lives. */
  private async tryOnce(): Promise<void> {
    try {
      if (this.current !== undefined) {
        await this.client!.query('SELECT 1');
        return;
      }
      this.client ??= await this.connect();
      const { rows } = await this.client.query(`SELECT pg_try_advisory_lock(${LOCKS.leader}) AS got`);
      if (!rows[0].got) return;
      const { rows: taken } = await this.client.query(
        `INSERT INTO shipkit.leader (id, term, node, since) VALUES (1, 1, $1, now())
         ON CONFLICT (id) DO UPDATE SET term = shipkit.leader.term + 1, node = $1, since = now() RETURNING term`,
        [this.options.node],
      );
      this.become(Number(taken[0].term));
    } catch (error) {
      this.lose(`its database session failed: ${messageOf(error)}`);
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = this.options.newClient(`shipkit hook-server ${this.options.node} (leader)`);
    client.on('error', () => this.lose('its database session was lost'));
    await client.connect();
    return client;
  }

  private become(term: number): void {
    this.current = term;
    this.options.log.info(`${this.options.node} leads (term ${term})`);
    this.options.onChange?.(term);
  }

  /** Stop leading at once (the session, and with it the lock, is gone or going). */
  private lose(why: string): void {
    const client = this.client;
    this.client = undefined;
    client?.end().catch(() => undefined);
    if (this.current === undefined) return;
    this.current = undefined;
    this.options.log.warn(`${this.options.node} no longer leads: ${why}`);
    this.options.onChange?.(undefined);
  }

  /** Hand the lead over: the lock is released now, so another node takes it at its next try. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
    const client = this.client;
    this.client = undefined;
    if (this.current !== undefined) {
      this.current = undefined;
      this.options.onChange?.(undefined);
      await this.options.beforeRelease?.().catch(() => undefined);
      await client?.query(`SELECT pg_advisory_unlock(${LOCKS.leader})`).catch(() => undefined);
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
