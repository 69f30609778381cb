// What hook-server knows of its fleet, in memory, for the routes, the page and /metrics: each
// host's latest report and each app's rollout. The registry on disk (fleet-store.ts) and the one
// in PostgreSQL (fleet/fleet-store-db.ts) both keep one and write through it.
import { supersedes, type HostEntry, type RolloutRecord } from '../release/format/fleet-report.ts';
import { reportRefusal, takeReport } from './host-guard.ts';

/**
 * What addReport did: kept it ('added'), or only its signature against a replay ('older': the host
 * has a later report); refused a new host ('full': the app is full), or a report host-guard.ts
 * refuses ('enrolled', 'replay', 'busy').
 */
export type AddOutcome = 'added' | 'older' | 'full' | 'enrolled' | 'replay' | 'busy';

/** A fleet registry as the /fleet/ routes, the hourly sweep and the page use it. */
export interface FleetRegistry {
  /** In host order; `{ sorted: false }`: in no order, for counting (sorting 100,000 ids costs 0.3 s). */
  hosts(app: string, options?: { sorted?: boolean }): HostEntry[];
  tally(app: string): Array<{ version: string; result: string; hosts: number }>;
  /** Hosts whose latest report failed, was rolled back or skipped; the latest first. */
  failures(app: string): HostEntry[];
  /** How many hosts reported a bucket other than the one their id gives. */
  liars(app: string): number;
  host(app: string, host: string): HostEntry | undefined;
  rollout(app: string): RolloutRecord | null;
  /** The rollout as the registry holds it now: with several nodes, one another node set a moment ago. */
  latestRollout(app: string): Promise<RolloutRecord | null>;
  count(app: string): number;
  silentSince(app: string, time: number): string[];
  /** Durable once it resolves: 'added' or 'older'; nothing written: 'full' or a refusal. */
  addReport(app: string, entry: HostEntry, options?: { maxHosts?: number }): Promise<AddOutcome>;
  /**
   * Take `hosts` out of `app`, durably once it resolves; how many it had. With `silentBefore`
   * (ms), only those whose latest report is still older than that.
   */
  forget(app: string, hosts: readonly string[], options?: { silentBefore?: number }): Promise<number>;
  setRollout(app: string, rollout: RolloutRecord): Promise<void>;
  close(): Promise<void>;
}

/** Results the status page lists as failures. */
const FAILED_RESULTS: ReadonlySet<string> = new Set(['failed', 'rolled_back', 'skipped']);

const isLiar = (entry: HostEntry) =>
  entry.claimed_bucket !== null && Math.abs(entry.claimed_bucket - entry.bucket) >= 0.0001;

/**
 * What the status page and /metrics show of an app, kept as reports are taken: hosts per version
 * and result, the failing hosts, the liars. Built per call it was a pass over every host (52 ms at
 * 100,000, on every node, for every page and scrape) and a 100,000-entry array of garbage.
 */
interface Summary {
  tally: Map<string, { version: string; result: string; hosts: number }>;
  failing: Set<string>;
  liars: number;
}

/**
 * One copy of each string seen, for at most `max` strings: when full it starts again (a fleet moved
 * on to new versions, or reports with made-up ones), so the memory it holds stays bounded.
 */
class Interned {
  private readonly seen = new Map<string, string>();
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  intern(value: string): string {
    const known = this.seen.get(value);
    if (known !== undefined) return known;
    if (this.seen.size >= this.max) this.seen.clear();
    this.seen.set(value, value);
    return value;
  }
}

export class FleetMemory {
  private readonly hostsByApp = new Map<string, Map<string, HostEntry>>();
  private readonly summaries = new Map<string, Summary>();
  private readonly rollouts = new Map<string, RolloutRecord>();
  // Hosts whose first report is being written, per app: counted against max_hosts before they are in.
  private readonly arriving = new Map<string, Set<string>>();
  private readonly strings = new Interned(1024);

  /**
   * addReport's rule: a refusal of host-guard.ts; 'full' when it is a host not yet in and `app`
   * has `maxHosts` (those being written count); else what `write` made of it. A report older than
   * the host's kept one is written too when signed (its signature, against a replay), else 'older'.
   */
  async admit(app: string, entry: HostEntry, maxHosts: number, write: () => Promise<AddOutcome>): Promise<AddOutcome> {
    const current = this.host(app, entry.host);
    const refusal = reportRefusal(entry, current);
    if (refusal) return refusal;
    if (!supersedes(entry, current) && entry.signed_at === undefined) return 'older';
    const arriving = this.arriving.get(app) ?? new Set<string>();
    const isNew = !current && !arriving.has(entry.host);
    if (isNew && this.count(app) + arriving.size >= maxHosts) return 'full';
    if (!isNew) return write();
    this.arriving.set(app, arriving.add(entry.host));
    try {
      return await write();
    } finally {
      arriving.delete(entry.host);
      if (arriving.size === 0) this.arriving.delete(app);
    }
  }

  /** Each host's latest report for `app`, in host order. */
  hosts(app: string, { sorted = true } = {}): HostEntry[] {
    const all = [...(this.hostsByApp.get(app)?.values() ?? [])];
    return sorted ? all.sort((a, b) => (a.host < b.host ? -1 : 1)) : all;
  }

  /** Hosts per version and result, for /metrics and the status page. */
  tally(app: string): Array<{ version: string; result: string; hosts: number }> {
    const rows = [...(this.summaries.get(app)?.tally.values() ?? [])].map((row) => ({ ...row }));
    return rows.sort((a, b) =>
      a.version === b.version ? a.result.localeCompare(b.result) : a.version.localeCompare(b.version),
    );
  }

  /** The hosts of `app` whose latest report failed, was rolled back or skipped; the latest first. */
  failures(app: string): HostEntry[] {
    const hosts = this.hostsByApp.get(app);
    const failing = [...(this.summaries.get(app)?.failing ?? [])].map((host) => hosts!.get(host)!);
    return failing.sort((a, b) => b.at - a.at);
  }

  /** How many hosts of `app` claimed a bucket other than their id's. */
  liars(app: string): number {
    return this.summaries.get(app)?.liars ?? 0;
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

  /** Of `hosts`, those `app` has (once each), and with `silentBefore` only those silent since. */
  known(app: string, hosts: readonly string[], silentBefore = Infinity): string[] {
    const known = this.hostsByApp.get(app);
    return [...new Set(hosts)].filter((host) => (known?.get(host)?.at ?? Infinity) < silentBefore);
  }

  /** Take `entry` as host-guard.ts's takeReport does (the same rule on replay of what was written). */
  applyReport(app: string, entry: HostEntry): void {
    const hosts = this.hostsByApp.get(app) ?? new Map<string, HostEntry>();
    this.hostsByApp.set(app, hosts);
    const current = hosts.get(entry.host);
    const kept = takeReport(entry, current);
    // A fleet has a few versions and digests and 100,000 hosts: each host's entry points at one
    // copy of its strings instead of the copy its report was parsed into (about 80 bytes a host).
    kept.version = this.strings.intern(kept.version);
    kept.previous = this.strings.intern(kept.previous);
    if (kept.sha256 !== undefined) kept.sha256 = this.strings.intern(kept.sha256);
    hosts.set(entry.host, kept);
    if (current) this.summarise(app, current, -1);
    this.summarise(app, kept, 1);
  }

  applyForget(app: string, hosts: readonly string[]): void {
    const known = this.hostsByApp.get(app);
    for (const host of hosts) {
      const entry = known?.get(host);
      if (!entry) continue;
      known!.delete(host);
      this.summarise(app, entry, -1);
    }
    if (known?.size === 0) {
      this.hostsByApp.delete(app);
      this.summaries.delete(app);
    }
  }

  /** Counts `entry` into (1) or out of (-1) its app's summary. */
  private summarise(app: string, entry: HostEntry, sign: 1 | -1): void {
    let summary = this.summaries.get(app);
    if (!summary) this.summaries.set(app, (summary = { tally: new Map(), failing: new Set(), liars: 0 }));
    const key = `${entry.version}\n${entry.result}`;
    const row = summary.tally.get(key) ?? { version: entry.version, result: entry.result, hosts: 0 };
    row.hosts += sign;
    if (row.hosts > 0) summary.tally.set(key, row);
    else summary.tally.delete(key);
    if (FAILED_RESULTS.has(entry.result)) {
      if (sign > 0) summary.failing.add(entry.host);
      else summary.failing.delete(entry.host);
    }
    if (isLiar(entry)) summary.liars += sign;
  }

  applyRollout(app: string, rollout: RolloutRecord): void {
    this.rollouts.set(app, rollout);
  }

  /** Forget every host and rollout (hosts being written still count). */
  clear(): void {
    this.hostsByApp.clear();
    this.summaries.clear();
    this.rollouts.clear();
  }

  /** How many reports and rollouts are kept. */
  size(): number {
    let live = this.rollouts.size;
    for (const hosts of this.hostsByApp.values()) live += hosts.size;
    return live;
  }

  /** Every host's latest report and every rollout, tagged with their app. */
  *entries(): Generator<['report', string, HostEntry] | ['rollout', string, RolloutRecord]> {
    for (const [app, hosts] of this.hostsByApp) for (const entry of hosts.values()) yield ['report', app, entry];
    for (const [app, rollout] of this.rollouts) yield ['rollout', app, rollout];
  }
}

/** What every registry answers from its memory; FleetStore and SharedFleet add how they write. */
export abstract class MemoryFleetRegistry implements FleetRegistry {
  protected readonly memory = new FleetMemory();

  hosts(app: string, options?: { sorted?: boolean }): HostEntry[] {
    return this.memory.hosts(app, options);
  }

  tally(app: string): Array<{ version: string; result: string; hosts: number }> {
    return this.memory.tally(app);
  }

  failures(app: string): HostEntry[] {
    return this.memory.failures(app);
  }

  liars(app: string): number {
    return this.memory.liars(app);
  }

  host(app: string, host: string): HostEntry | undefined {
    return this.memory.host(app, host);
  }

  rollout(app: string): RolloutRecord | null {
    return this.memory.rollout(app);
  }

  latestRollout(app: string): Promise<RolloutRecord | null> {
    return Promise.resolve(this.memory.rollout(app));
  }

  count(app: string): number {
    return this.memory.count(app);
  }

  silentSince(app: string, time: number): string[] {
    return this.memory.silentSince(app, time);
  }

  abstract addReport(app: string, entry: HostEntry, options?: { maxHosts?: number }): Promise<AddOutcome>;
  abstract forget(app: string, hosts: readonly string[], options?: { silentBefore?: number }): Promise<number>;
  abstract setRollout(app: string, rollout: RolloutRecord): Promise<void>;
  abstract close(): Promise<void>;
}
