// hook-server's fleet registry (docs/fleet.md): DATA/fleet/fleet.log, an append-only log of host
// reports, rollout states and forgotten hosts, on disk before a report is answered; one entry per
// host and one rollout per app kept in memory for the routes, the page and /metrics.
// The whole story: docs/internals.md.
import path from 'node:path';
import { AppendLog, type AppendLogOwner } from '../core/append-log.ts';
import { supersedes, type HostEntry, type RolloutRecord } from '../release/format/fleet-report.ts';
import { MemoryFleetRegistry, type AddOutcome } from './fleet-memory.ts';

type LogLine =
  | { kind: 'report'; app: string; entry: HostEntry }
  | { kind: 'rollout'; app: string; rollout: RolloutRecord }
  | { kind: 'forget'; app: string; hosts: string[] };

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

export class FleetStore extends MemoryFleetRegistry {
  // Set by open() before the store is handed out.
  private log!: AppendLog<LogLine>;

  private constructor() {
    super();
  }

  /** Replay DATA/fleet/fleet.log (cutting off a torn tail) and open it for appending. */
  static async open(dataDir: string, options: FleetStoreOptions = {}): Promise<FleetStore> {
    const store = new FleetStore();
    const owner: AppendLogOwner<LogLine> = {
      apply: (lines) => store.apply(lines),
      // Mostly superseded lines: more than twice the live ones, and a thousand more.
      wantsCompaction: (stats) => stats.records > 2 * store.memory.size() + 1000,
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

  /**
   * Durable once it resolves: 'added', or 'older' (the host has a later report: only the
   * signature is kept, against a replay). Nothing written: 'full' when it is a host not yet in and
   * `app` has `maxHosts` (those being written count), or a refusal of host-guard.ts.
   */
  async addReport(app: string, entry: HostEntry, { maxHosts = Infinity } = {}): Promise<AddOutcome> {
    return this.memory.admit(app, entry, maxHosts, async () => {
      const replaces = supersedes(entry, this.memory.host(app, entry.host));
      await this.write({ kind: 'report', app, entry });
      return replaces ? 'added' : 'older';
    });
  }

  /**
   * Take `hosts` out of `app`'s registry, durably once it resolves; the number of them it had
   * (those it did not have are not written). A forgotten host that reports again is a new host.
   */
  async forget(app: string, hosts: readonly string[], { silentBefore = Infinity } = {}): Promise<number> {
    const gone = this.memory.known(app, hosts, silentBefore);
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
      if (line.kind === 'rollout') this.memory.applyRollout(line.app, line.rollout);
      else if (line.kind === 'forget') this.memory.applyForget(line.app, line.hosts);
      else this.memory.applyReport(line.app, line.entry);
    }
  }

  /** Each host's latest report and each app's rollout (a forgotten host has neither a report nor a forget line left). */
  private live(): { records: LogLine[] } {
    const records: LogLine[] = [];
    for (const item of this.memory.entries())
      records.push(
        item[0] === 'report'
          ? { kind: 'report', app: item[1], entry: item[2] }
          : { kind: 'rollout', app: item[1], rollout: item[2] },
      );
    return { records };
  }

  private write(line: LogLine): Promise<void> {
    return this.log.append([line]);
  }
}
