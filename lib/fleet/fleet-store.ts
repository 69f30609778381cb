// hook-server's fleet registry (docs/fleet.md): DATA/fleet/fleet.log, an append-only log of host
// reports, rollout states and forgotten hosts, on disk before a report is answered; one entry per
// host and one rollout per app kept in memory for the routes, the page and /metrics.
// The whole story: docs/internals.md.
import path from 'node:path';
import { AppendLog, type AppendLogOwner, type AppendLogStats } from '../core/append-log.ts';
import { supersedes, type HostEntry, type RolloutRecord } from '../release/fleet-report.ts';

type LogLine =
  | { kind: 'report'; app: string; entry: HostEntry }
  | { kind: 'rollout'; app: string; rollout: RolloutRecord }
  | { kind: 'forget'; app: string; hosts: string[] };

/** What addReport did: kept it, or not (the host has a later one), or refused a new host (the app is full). */
export type AddOutcome = 'added' | 'older' | 'full';

/** Hosts named in one `forget` line at most: a fleet's worth is written as several lines. */
const FORGET_LINE_HOSTS = 1000;

export interface FleetStoreOptions {
  /** Told how long each flush's fdatasync took, in seconds. */
  onSync?: (seconds: number) => void;
  /** Told of a rewrite that failed (the file stays long; appends go on). */
  onCompactError?: (error: Error) => void;
}

export function fleetLogFile(dataDir: string): string {
  return path.join(dataDir, 'fleet', 'fleet.log');
}

function decode(value: unknown): LogLine | undefined {
  const line = value as LogLine;
  return (line?.kind === 'report' && typeof line.entry?.host === 'string') ||
    (line?.kind === 'rollout' && typeof line.rollout === 'object') ||
    (line?.kind === 'forget' && Array.isArray(line.hosts) && line.hosts.every((h) => typeof h === 'string'))
    ? line
    : undefined;
}

export class FleetStore {
  private readonly hostsByApp = new Map<string, Map<string, HostEntry>>();
  private readonly rollouts = new Map<string, RolloutRecord>();
  // Hosts whose first report is being written, per app: counted against max_hosts before they are in.
  private readonly arriving = new Map<string, Set<string>>();
  // Set by open() before the store is handed out.
  private log!: AppendLog<LogLine>;

  private constructor() {}

  /** Replay DATA/fleet/fleet.log (cutting off a torn tail) and open it for appending. */
  static async open(dataDir: string, options: FleetStoreOptions = {}): Promise<FleetStore> {
    const store = new FleetStore();
    const owner: AppendLogOwner<LogLine> = {
      apply: (lines) => store.apply(lines),
      wantsCompaction: (stats) => store.wantsCompaction(stats),
      live: () => store.live(),
    };
    store.log = await AppendLog.open(fleetLogFile(dataDir), owner, { decode, mode: 0o600, dirMode: 0o700, ...options });
    return store;
  }

  get file(): string {
    return this.log.file;
  }

  /** Lines dropped on replay (checksum or JSON wrong, or a torn last line). */
  get damaged(): number {
    return this.log.damaged;
  }

  /** Each host's latest report for `app`, in host order. */
  hosts(app: string): HostEntry[] {
    return [...(this.hostsByApp.get(app)?.values() ?? [])].sort((a, b) => (a.host < b.host ? -1 : 1));
  }

  /** Hosts per version and result, for /metrics and the status page. */
  tally(app: string): Array<{ version: string; result: string; hosts: number }> {
    const counts = new Map<string, { version: string; result: string; hosts: number }>();
    for (const entry of this.hostsByApp.get(app)?.values() ?? []) {
      const key = `${entry.version}\n${entry.result}`;
      const row = counts.get(key) ?? { version: entry.version, result: entry.result, hosts: 0 };
      row.hosts++;
      counts.set(key, row);
    }
    return [...counts.values()].sort((a, b) =>
      a.version === b.version ? a.result.localeCompare(b.result) : a.version.localeCompare(b.version),
    );
  }

  /** One host's latest report for `app`. */
  host(app: string, host: string): HostEntry | undefined {
    return this.hostsByApp.get(app)?.get(host);
  }

  rollout(app: string): RolloutRecord | null {
    return this.rollouts.get(app) ?? null;
  }

  /** How many hosts `app` has. */
  count(app: string): number {
    return this.hostsByApp.get(app)?.size ?? 0;
  }

  /** The hosts of `app` whose latest report was accepted before `time` (ms since the epoch), in host order. */
  silentSince(app: string, time: number): string[] {
    return this.hosts(app)
      .filter((entry) => entry.at < time)
      .map((entry) => entry.host);
  }

  /**
   * Durable once it resolves: 'added'. Nothing written: 'older' when the host already has a later
   * report, 'full' when it is a host not yet in and `app` has `maxHosts` (those being written count).
   */
  async addReport(app: string, entry: HostEntry, { maxHosts = Infinity } = {}): Promise<AddOutcome> {
    const current = this.hostsByApp.get(app)?.get(entry.host);
    if (!supersedes(entry, current)) return 'older';
    const arriving = this.arriving.get(app) ?? new Set<string>();
    const isNew = !current && !arriving.has(entry.host);
    if (isNew && this.count(app) + arriving.size >= maxHosts) return 'full';
    if (!isNew) {
      await this.write({ kind: 'report', app, entry });
      return 'added';
    }
    this.arriving.set(app, arriving.add(entry.host));
    try {
      await this.write({ kind: 'report', app, entry });
    } finally {
      arriving.delete(entry.host);
      if (arriving.size === 0) this.arriving.delete(app);
    }
    return 'added';
  }

  /**
   * Take `hosts` out of `app`'s registry, durably once it resolves; the number of them it had
   * (those it did not have are not written). A forgotten host that reports again is a new host.
   */
  async forget(app: string, hosts: readonly string[]): Promise<number> {
    const known = this.hostsByApp.get(app);
    const gone = [...new Set(hosts)].filter((host) => known?.has(host));
    const lines: LogLine[] = [];
    for (let i = 0; i < gone.length; i += FORGET_LINE_HOSTS)
      lines.push({ kind: 'forget', app, hosts: gone.slice(i, i + FORGET_LINE_HOSTS) });
    await this.log.append(lines);
    return gone.length;
  }

  setRollout(app: string, rollout: RolloutRecord): Promise<void> {
    return this.write({ kind: 'rollout', app, rollout });
  }

  stats(): { lines: number; bytes: number; flushes: number } {
    const { records, bytes, flushes } = this.log.stats();
    return { lines: records, bytes, flushes };
  }

  close(): Promise<void> {
    return this.log.close();
  }

  private apply(lines: readonly LogLine[]): void {
    for (const line of lines) {
      if (line.kind === 'rollout') {
        this.rollouts.set(line.app, line.rollout);
        continue;
      }
      if (line.kind === 'forget') {
        const hosts = this.hostsByApp.get(line.app);
        for (const host of line.hosts) hosts?.delete(host);
        if (hosts?.size === 0) this.hostsByApp.delete(line.app);
        continue;
      }
      const hosts = this.hostsByApp.get(line.app) ?? new Map<string, HostEntry>();
      this.hostsByApp.set(line.app, hosts);
      // Two reports of one host in one flush: the rule decides, as it does on replay.
      if (supersedes(line.entry, hosts.get(line.entry.host))) hosts.set(line.entry.host, line.entry);
    }
  }

  /** Mostly superseded lines: more than twice the live ones, and a thousand more. */
  private wantsCompaction(stats: AppendLogStats): boolean {
    let live = this.rollouts.size;
    for (const hosts of this.hostsByApp.values()) live += hosts.size;
    return stats.records > 2 * live + 1000;
  }

  /** Each host's latest report and each app's rollout (a forgotten host has neither a report nor a forget line left). */
  private live(): { records: LogLine[] } {
    const records: LogLine[] = [];
    for (const [app, hosts] of this.hostsByApp)
      for (const entry of hosts.values()) records.push({ kind: 'report', app, entry });
    for (const [app, rollout] of this.rollouts) records.push({ kind: 'rollout', app, rollout });
    return { records };
  }

  private write(line: LogLine): Promise<void> {
    return this.log.append([line]);
  }
}
