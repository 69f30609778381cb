// GET /fleet/APP/releases and the status page's Releases view (docs/fleet.md "Releases"): the
// app's verified ledger joined with its hosts' latest reports — per release, how many hosts run
// it, how many of them verified the ledger's digest, whether every host still holds it, and the
// rollout steps, halts and rollbacks the ledger records. One pass over the hosts.
import { releasesOf, type ReleaseRow } from '../dest/history.ts';
import type { LedgerEntry } from '../format/ledger.ts';
import type { HostEntry, ReportResult } from '../format/fleet-report.ts';
import { compareVersions, versionKey } from '../format/version-file.ts';

/** What the ledger said of an app when it was last read: its entries, or why there are none. */
export interface LedgerSnapshot {
  /** Where it was read (a folder, s3://… or user@host:path). */
  from: string;
  entries: LedgerEntry[];
  /** The primary key whose subkeys signed it. */
  primary?: string;
  revoked?: Set<string>;
  /** Why it could not be read or did not verify: the view then shows the hosts only. */
  error?: string;
  /** When it was read (ms since the epoch). */
  read: number;
}

/** A ledger entry that moved a release after its publish: a rollout step, a halt, a rollback. */
export interface ReleaseMove {
  n: number;
  at: string;
  by: string;
  action: LedgerEntry['action'];
  rollout: number | null;
  seq: number | null;
  note: string | null;
  /** A rollback: the version it left. */
  from?: string;
}

/** Hosts of one version as their reports tell. */
export interface VersionHosts {
  /** Hosts whose latest report names the version. */
  hosts: number;
  /** Of them, those that reported the sha256 the ledger records. */
  verified: number;
  /** Those that reported another sha256 (a release that is not the one published). */
  mismatched: number;
  /** Those whose report carries no sha256 (an older launchfit). */
  unknown: number;
  results: Partial<Record<ReportResult, number>>;
}

export interface ReleaseView extends Omit<ReleaseRow, 'source'>, VersionHosts {
  source: ReleaseRow['source'];
  /** Every reporting host has it as its version or the one before (launchfit keeps both): a rollback to it downloads nothing. */
  held_by_all: boolean;
  moves: ReleaseMove[];
}

export interface FleetReleases {
  app: string;
  ledger: { from: string; entries: number; primary: string | null; head: number | null; error: string | null } | null;
  /** Hosts that report. */
  hosts: number;
  /** Releases the ledger records; `releases` holds those from `offset` on (newest first). */
  total: number;
  offset: number;
  releases: ReleaseView[];
  /** Each release (on any page) that hosts run or came from, with their counts. */
  versions: Array<Pick<ReleaseView, 'version' | 'hosts' | 'verified' | 'mismatched' | 'held_by_all'>>;
  /** Versions hosts run that the ledger does not record (or all of them, without a ledger). */
  unlisted: Array<{ version: string } & VersionHosts>;
}

const emptyHosts = (): VersionHosts => ({ hosts: 0, verified: 0, mismatched: 0, unknown: 0, results: {} });

/**
 * Hosts per version, counted in one pass: `digests` maps a version hosts name to the sha256 the
 * ledger records for it; `held` counts, per version, the hosts that have it as version or previous.
 */
function countHosts(hosts: HostEntry[], digests: Map<string, string | null>) {
  const byVersion = new Map<string, VersionHosts>();
  const held = new Map<string, number>();
  for (const h of hosts) {
    let row = byVersion.get(h.version);
    if (!row) byVersion.set(h.version, (row = emptyHosts()));
    row.hosts++;
    row.results[h.result] = (row.results[h.result] ?? 0) + 1;
    const expected = digests.get(h.version);
    if (!h.sha256) row.unknown++;
    else if (expected && h.sha256 === expected) row.verified++;
    else if (expected) row.mismatched++;
    else row.unknown++;
    held.set(h.version, (held.get(h.version) ?? 0) + 1);
    if (h.previous && h.previous !== h.version) held.set(h.previous, (held.get(h.previous) ?? 0) + 1);
  }
  return { byVersion, held };
}

/** The version the ledger's head moved DEST to: what VERSION names now. */
function currentOf(entries: LedgerEntry[], app: string): string | undefined {
  return (
    entries.findLast((e) => e.app === app && e.action !== 'keys' && e.action !== 'promoted' && e.version)?.version ??
    undefined
  );
}

/** The ledger's moves of each version after its publish, oldest first. */
function movesOf(entries: LedgerEntry[], app: string): Map<string, ReleaseMove[]> {
  const moves = new Map<string, ReleaseMove[]>();
  for (const e of entries) {
    if (e.app !== app || !e.version || ['publish', 'promote', 'promoted', 'keys'].includes(e.action)) continue;
    const list = moves.get(e.version) ?? [];
    list.push({ n: e.n, at: e.at, by: e.by, action: e.action, rollout: e.rollout, seq: e.seq, note: e.note });
    if (e.from) list[list.length - 1].from = e.from;
    moves.set(e.version, list);
  }
  return moves;
}

/** What a snapshot's entries say of `app`, worked out once per snapshot (a ledger of 10,000 entries). */
interface LedgerPart {
  rows: ReleaseRow[];
  moves: Map<string, ReleaseMove[]>;
  /** Each row's index by versionKey (1.1 and 1.1.0 are one). */
  keyed: Map<string, number>;
}
const parts = new WeakMap<LedgerSnapshot, Map<string, LedgerPart>>();

function ledgerPart(snapshot: LedgerSnapshot | undefined, app: string): LedgerPart {
  const cached = snapshot && parts.get(snapshot)?.get(app);
  if (cached) return cached;
  const entries = snapshot?.error ? [] : (snapshot?.entries ?? []);
  const rows = releasesOf(entries, app, { current: currentOf(entries, app), revoked: snapshot?.revoked });
  const keyed = new Map<string, number>();
  rows.forEach((r, i) => {
    const key = versionKey(r.version);
    if (!keyed.has(key)) keyed.set(key, i);
  });
  const part = { rows, moves: movesOf(entries, app), keyed };
  if (snapshot) parts.set(snapshot, (parts.get(snapshot) ?? new Map<string, LedgerPart>()).set(app, part));
  return part;
}

function addHosts(into: VersionHosts, c: VersionHosts): void {
  into.hosts += c.hosts;
  into.verified += c.verified;
  into.mismatched += c.mismatched;
  into.unknown += c.unknown;
  for (const [result, n] of Object.entries(c.results))
    into.results[result as ReportResult] = (into.results[result as ReportResult] ?? 0) + n;
}

export interface FleetReleasesOptions {
  /** Releases shown, newest first (default all). */
  limit?: number;
  /** Releases skipped before them (default 0). */
  offset?: number;
}

/** `app`'s releases as its ledger (if any) and its hosts' reports tell them. */
export function fleetReleases(
  app: string,
  hosts: HostEntry[],
  snapshot: LedgerSnapshot | undefined,
  { limit = Infinity, offset = 0 }: FleetReleasesOptions = {},
): FleetReleases {
  const { rows, moves, keyed } = ledgerPart(snapshot, app);
  // Each version a host names (running it or come from it) to its release: 1.1.0 is the ledger's
  // 1.1. A few distinct ones for any fleet, so the search through the rows is cheap.
  const named = new Set<string>();
  for (const h of hosts) named.add(h.version).add(h.previous);
  named.delete('');
  const rowOf = new Map<string, number>();
  for (const version of named) {
    const i = keyed.get(versionKey(version));
    if (i !== undefined) rowOf.set(version, i);
  }
  const digests = new Map([...rowOf].map(([version, i]) => [version, rows[i].sha256]));
  const { byVersion, held } = countHosts(hosts, digests);
  const counted = new Map<number, VersionHosts & { holding: number }>();
  for (const [version, i] of rowOf) {
    const c = counted.get(i) ?? { ...emptyHosts(), holding: 0 };
    const on = byVersion.get(version);
    if (on) addHosts(c, on);
    c.holding += held.get(version) ?? 0;
    counted.set(i, c);
  }
  const releases = rows.slice(offset, offset + limit).map((row, k): ReleaseView => {
    const { holding, ...c } = counted.get(offset + k) ?? { ...emptyHosts(), holding: 0 };
    return {
      ...row,
      ...c,
      held_by_all: hosts.length > 0 && holding >= hosts.length,
      moves: moves.get(row.version) ?? [],
    };
  });
  // Every release a host runs or came from, whichever page it is on: what a rollback may use.
  const versions = [...counted]
    .sort(([a], [b]) => a - b)
    .map(([i, c]) => ({
      version: rows[i].version,
      hosts: c.hosts,
      verified: c.verified,
      mismatched: c.mismatched,
      held_by_all: hosts.length > 0 && c.holding >= hosts.length,
    }));
  const unlisted = [...byVersion]
    .filter(([version]) => !rowOf.has(version))
    .map(([version, c]) => ({ version, ...c }))
    .sort((a, b) => compareVersions(b.version, a.version));
  const entries = snapshot?.error ? [] : (snapshot?.entries ?? []);
  return {
    app,
    ledger: snapshot
      ? {
          from: snapshot.from,
          entries: entries.length,
          primary: snapshot.primary ?? null,
          head: entries[entries.length - 1]?.n ?? null,
          error: snapshot.error ?? null,
        }
      : null,
    hosts: hosts.length,
    total: rows.length,
    offset,
    releases,
    versions,
    unlisted,
  };
}
