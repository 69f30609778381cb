// The fleet registry of several hook-servers on one `queue:` database: reports, rollout states
// and forgets are in shipkit.fleet_hosts / fleet_rollouts before they are answered; each node
// keeps the hosts in memory and reads what changed every second. The database holds the rules no
// node can alone (lib/fleet/host-guard.ts: no report taken twice, no app secret for a seen host).
// The whole story: docs/ha.md.
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { MemoryFleetRegistry, type AddOutcome } from './fleet-memory.ts';
import type { FleetStore } from './fleet-store.ts';
import type { Queryable } from '../db/connect.ts';
import type { HostEntry, RolloutRecord } from '../release/format/fleet-report.ts';
import { MAX_NONCES_PER_SECOND, reportRefusal } from './host-guard.ts';

export interface SharedFleetOptions {
  log: Logger;
  /** Time between two looks at what other nodes wrote (default 1 s). */
  everyMs?: number;
  /** Whether this node leads: the leader drops the rows of hosts forgotten a day ago. */
  leads?: () => boolean;
}

// A write takes its change number when it starts and is seen when it commits: rows are read again
// from the number seen this long ago, so one that committed late is not passed over.
const OVERLAP_MS = 2_000;
// Now and then the whole registry is read again (and forgotten rows a day old dropped).
const RELOAD_EVERY = 600;

// host-guard.ts's reportRefusal (WHERE) and takeReport (s: the report replaces the entry, n: its
// signature is the host's latest) in one statement, so that two nodes cannot both take a report.
const UPSERT_REPORT = `
INSERT INTO shipkit.fleet_hosts AS h (app, host, seq, at, signed_at, enrolled, nonces, entry)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (app, host) DO UPDATE
SET (seq, at, enrolled, signed_at, nonces, entry, change, changed) = (
  SELECT CASE WHEN k.s THEN EXCLUDED.seq ELSE h.seq END, CASE WHEN k.s THEN EXCLUDED.at ELSE h.at END,
         CASE WHEN k.s THEN EXCLUDED.enrolled ELSE h.enrolled END, g.signed_at, g.nonces,
         (CASE WHEN k.s THEN EXCLUDED.entry ELSE h.entry END) - 'signed_at' - 'nonces'
           || jsonb_strip_nulls(jsonb_build_object('signed_at', g.signed_at))
           || CASE WHEN cardinality(g.nonces) > 0 THEN jsonb_build_object('nonces', g.nonces) ELSE '{}' END,
         nextval('shipkit.fleet_change'), now()
  FROM (SELECT h.entry IS NULL OR (EXCLUDED.enrolled AND NOT h.enrolled)
               OR (EXCLUDED.enrolled = h.enrolled
                   AND (EXCLUDED.seq > h.seq OR (EXCLUDED.seq = h.seq AND EXCLUDED.at >= h.at))) AS s,
               coalesce(h.entry IS NULL OR h.signed_at IS NULL OR EXCLUDED.signed_at > h.signed_at, false) AS n) k,
       LATERAL (SELECT CASE WHEN k.n THEN EXCLUDED.signed_at ELSE h.signed_at END AS signed_at,
                       CASE WHEN k.n THEN EXCLUDED.nonces WHEN EXCLUDED.signed_at = h.signed_at
                            THEN h.nonces || EXCLUDED.nonces ELSE h.nonces END AS nonces) g)
WHERE h.entry IS NULL
   OR (EXCLUDED.signed_at IS NULL
       AND (EXCLUDED.seq > h.seq OR (EXCLUDED.seq = h.seq AND EXCLUDED.at >= h.at))
       AND (EXCLUDED.enrolled OR NOT h.enrolled))
   OR (EXCLUDED.enrolled
       AND (h.signed_at IS NULL OR EXCLUDED.signed_at > h.signed_at
            OR (EXCLUDED.signed_at = h.signed_at AND NOT coalesce(EXCLUDED.nonces[1] = ANY(h.nonces), true)
                AND cardinality(h.nonces) BETWEEN 1 AND $9 - 1)))
RETURNING change, entry, (entry - 'signed_at' - 'nonces') = ($8::jsonb - 'signed_at' - 'nonces') AS replaced`;

const CHANGES = `
SELECT 'report' AS kind, app, host, entry, change FROM shipkit.fleet_hosts WHERE change > $1
UNION ALL
SELECT 'rollout', app, NULL, record, change FROM shipkit.fleet_rollouts WHERE change > $1
ORDER BY change`;

interface ChangeRow {
  kind: 'report' | 'rollout';
  app: string;
  host: string | null;
  entry: HostEntry | RolloutRecord | null;
  change: string;
}

export class SharedFleet extends MemoryFleetRegistry {
  // The change number of each host's (app\nhost) and rollout's (app) row this node has applied.
  private readonly changes = new Map<string, number>();
  // The highest change number read, and what it was at each look of the last OVERLAP_MS.
  private seen = 0;
  private marks: Array<{ at: number; change: number }> = [];
  private rounds = 0;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private looking: Promise<void> | undefined;

  private readonly db: Queryable;
  private readonly options: SharedFleetOptions;

  private constructor(db: Queryable, options: SharedFleetOptions) {
    super();
    this.db = db;
    this.options = options;
  }

  /** Every host and rollout read from the database, then a look every `everyMs`. */
  static async open(db: Queryable, options: SharedFleetOptions): Promise<SharedFleet> {
    const fleet = new SharedFleet(db, options);
    await fleet.read(0);
    fleet.schedule();
    return fleet;
  }

  /**
   * In the database when it resolves: 'added', or 'older' (the host has a later report: only the
   * signature is kept). A refusal of host-guard.ts when this node or the database knows the host
   * (its report taken, or seen: then only its credential speaks for it); 'full' as on one node (a
   * new host is counted against what this node has read: two nodes taking the last places at once
   * may go over max_hosts by a few).
   */
  addReport(app: string, entry: HostEntry, { maxHosts = Infinity } = {}): Promise<AddOutcome> {
    return this.memory.admit(app, entry, maxHosts, async () => {
      const { rows } = await this.db.query(UPSERT_REPORT, [
        app,
        entry.host,
        entry.seq,
        entry.at,
        entry.signed_at ?? null,
        entry.enrolled === true,
        entry.nonces ?? [],
        JSON.stringify(entry),
        MAX_NONCES_PER_SECOND,
      ]);
      if (!rows.length) return this.refusal(app, entry);
      const kept = rows[0].entry as HostEntry;
      if (this.newer(`${app}\n${entry.host}`, Number(rows[0].change))) {
        this.memory.applyForget(app, [entry.host]);
        this.memory.applyReport(app, kept);
      }
      return rows[0].replaced ? 'added' : 'older';
    });
  }

  /** Why the database took nothing of `entry`: its row read again and judged as host-guard.ts does. */
  private async refusal(app: string, entry: HostEntry): Promise<AddOutcome> {
    const { rows } = await this.db.query(
      'SELECT entry FROM shipkit.fleet_hosts WHERE app = $1 AND host = $2 AND entry IS NOT NULL',
      [app, entry.host],
    );
    return (rows.length && reportRefusal(entry, rows[0].entry as HostEntry)) || 'older';
  }

  /** The hosts named that the database has (and, with `silentBefore`, that are still silent since), forgotten. */
  async forget(app: string, hosts: readonly string[], { silentBefore = Infinity } = {}): Promise<number> {
    const named = [...new Set(hosts)];
    if (!named.length) return 0;
    const { rows } = await this.db.query(
      `UPDATE shipkit.fleet_hosts SET entry = NULL, change = nextval('shipkit.fleet_change'), changed = now()
       WHERE app = $1 AND host = ANY($2) AND entry IS NOT NULL AND at < $3 RETURNING host, change`,
      [app, named, Math.min(silentBefore, Number.MAX_SAFE_INTEGER)],
    );
    const gone = rows.filter((row) => this.newer(`${app}\n${row.host}`, Number(row.change)));
    this.memory.applyForget(
      app,
      gone.map((row) => String(row.host)),
    );
    return rows.length;
  }

  async setRollout(app: string, rollout: RolloutRecord): Promise<void> {
    const { rows } = await this.db.query(
      `INSERT INTO shipkit.fleet_rollouts (app, record) VALUES ($1, $2)
       ON CONFLICT (app) DO UPDATE SET record = EXCLUDED.record, change = nextval('shipkit.fleet_change')
       RETURNING change`,
      [app, JSON.stringify(rollout)],
    );
    if (this.newer(app, Number(rows[0].change))) this.memory.applyRollout(app, rollout);
  }

  /** The app's rollout row read now (not at the next look), applied when newer than this node's. */
  override async latestRollout(app: string): Promise<RolloutRecord | null> {
    const { rows } = await this.db.query('SELECT record, change FROM shipkit.fleet_rollouts WHERE app = $1', [app]);
    if (rows.length && this.newer(app, Number(rows[0].change))) this.memory.applyRollout(app, rows[0].record);
    return this.memory.rollout(app);
  }

  /**
   * A node's DATA/fleet/fleet.log, copied in when the database has no registry yet (the first
   * start with `queue:`); how many hosts and rollouts were copied, or undefined when it had one.
   */
  async adopt(local: FleetStore, apps: readonly string[]): Promise<{ hosts: number; rollouts: number } | undefined> {
    const { rows } = await this.db.query(
      'SELECT EXISTS (SELECT 1 FROM shipkit.fleet_hosts) OR EXISTS (SELECT 1 FROM shipkit.fleet_rollouts) AS has',
    );
    if (rows[0].has) return undefined;
    const hosts = apps.flatMap((app) => local.hosts(app).map((entry) => ({ app, entry })));
    for (let i = 0; i < hosts.length; i += 2_000)
      await this.db.query(
        `INSERT INTO shipkit.fleet_hosts (app, host, seq, at, signed_at, enrolled, nonces, entry)
         SELECT r.app, r.entry->>'host', (r.entry->>'seq')::bigint, (r.entry->>'at')::bigint,
                (r.entry->>'signed_at')::bigint, coalesce((r.entry->>'enrolled')::boolean, false),
                ARRAY(SELECT jsonb_array_elements_text(coalesce(r.entry->'nonces', '[]'))), r.entry
         FROM jsonb_to_recordset($1::jsonb) AS r(app text, entry jsonb)
         ON CONFLICT (app, host) DO NOTHING`,
        [JSON.stringify(hosts.slice(i, i + 2_000))],
      );
    const rollouts = apps.flatMap((app) => {
      const rollout = local.rollout(app);
      return rollout ? [{ app, rollout }] : [];
    });
    for (const { app, rollout } of rollouts)
      await this.db.query(
        'INSERT INTO shipkit.fleet_rollouts (app, record) VALUES ($1, $2) ON CONFLICT (app) DO NOTHING',
        [app, JSON.stringify(rollout)],
      );
    await this.look();
    return { hosts: hosts.length, rollouts: rollouts.length };
  }

  /** No look after this; resolves once one under way has ended. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.looking;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.looking = this.look().finally(() => {
        this.looking = undefined;
        if (this.timer) this.schedule();
      });
    }, this.options.everyMs ?? 1_000);
    this.timer.unref?.();
  }

  /** What changed since the last look (reading again its overlap), or now and then everything. */
  private async look(): Promise<void> {
    try {
      if (++this.rounds % RELOAD_EVERY === 0) {
        if (this.options.leads?.())
          await this.db.query(
            `DELETE FROM shipkit.fleet_hosts WHERE entry IS NULL AND changed < now() - interval '1 day'`,
          );
        await this.read(0);
      } else {
        const now = Date.now();
        while (this.marks.length > 1 && this.marks[1].at <= now - OVERLAP_MS) this.marks.shift();
        await this.read(this.marks[0]?.change ?? this.seen);
      }
      if (this.failing) this.options.log.info('reading the fleet registry from the database again');
      this.failing = false;
    } catch (error) {
      if (!this.failing)
        this.options.log.warn(`could not read the fleet reports other hook-servers took: ${messageOf(error)}`);
      this.failing = true;
    }
  }

  /**
   * Rows changed after `from` applied (0: all of them, in place of what was known). A row is the
   * host's state now; one older than what this node wrote itself since is passed over.
   */
  private async read(from: number): Promise<void> {
    const rows = (await this.db.query(CHANGES, [from])).rows as ChangeRow[];
    if (from === 0) {
      const top = rows.reduce((max, row) => Math.max(max, Number(row.change)), 0);
      this.memory.clear();
      for (const [key, change] of this.changes) if (change <= top) this.changes.delete(key);
    }
    for (const row of rows) {
      const change = Number(row.change);
      this.seen = Math.max(this.seen, change);
      if (!this.newer(row.kind === 'rollout' ? row.app : `${row.app}\n${row.host}`, change)) continue;
      if (row.kind === 'rollout') this.memory.applyRollout(row.app, row.entry as RolloutRecord);
      else {
        this.memory.applyForget(row.app, [row.host!]);
        if (row.entry) this.memory.applyReport(row.app, row.entry as HostEntry);
      }
    }
    this.marks.push({ at: Date.now(), change: this.seen });
  }

  /** Whether `change` is the latest this node knows for `key` (then kept as such). */
  private newer(key: string, change: number): boolean {
    if (change < (this.changes.get(key) ?? 0)) return false;
    this.changes.set(key, change);
    return true;
  }
}
