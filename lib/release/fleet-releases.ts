// GET /fleet/APP/releases and the status page's Releases view (docs/fleet.md "Releases"): the
// app's verified ledger joined with its hosts' latest reports — per release, how many hosts run
// it, how many of them verified the ledger's digest, whether every host still holds it, and the
// rollout steps, halts and rollbacks the ledger records. One pass over the hosts.
import { releasesOf, type ReleaseRow } from './history.ts';
import type { LedgerEntry } from './ledger.ts';
import type { HostEntry, ReportResult } from './fleet-report.ts';
import { compareVersions } from './version-file.ts';

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
  releases: ReleaseView[];
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
  return entries.findLast((e) => e.app === app && e.action !== 'keys' && e.version)?.version ?? undefined;
}

/** The ledger's moves of each version after its publish, oldest first. */
function movesOf(entries: LedgerEntry[], app: string): Map<string, ReleaseMove[]> {
  const moves = new Map<string, ReleaseMove[]>();
  for (const e of entries) {
    if (e.app !== app || !e.version || e.action === 'publish' || e.action === 'keys') continue;
    const list = moves.get(e.version) ?? [];
    list.push({ n: e.n, at: e.at, by: e.by, action: e.action, rollout: e.rollout, seq: e.seq, note: e.note });
    if (e.from) list[list.length - 1].from = e.from;
    moves.set(e.version, list);
  }
  return moves;
}

/** `app`'s releases as its ledger (if any) and its hosts' reports tell them. */
export function fleetReleases(app: string, hosts: HostEntry[], snapshot: LedgerSnapshot | undefined): FleetReleases {
  const entries = snapshot?.error ? [] : (snapshot?.entries ?? []);
  const rows = releasesOf(entries, app, { current: currentOf(entries, app), revoked: snapshot?.revoked });
  // Keyed by the versions hosts name (1.1.0 is the ledger's 1.1): a few distinct ones for any fleet.
  const digests = new Map<string, string | null>();
  for (const version of new Set(hosts.map((h) => h.version)))
    digests.set(version, rows.find((r) => compareVersions(r.version, version) === 0)?.sha256 ?? null);
  const { byVersion, held } = countHosts(hosts, digests);
  const moves = movesOf(entries, app);
  const listed = new Set<string>();
  const releases = rows.map((row): ReleaseView => {
    // 1.1 and 1.1.0 are one version: a host may name it either way.
    const names = [...byVersion.keys()].filter((v) => compareVersions(v, row.version) === 0);
    const counted = emptyHosts();
    for (const name of names) {
      listed.add(name);
      const c = byVersion.get(name)!;
      counted.hosts += c.hosts;
      counted.verified += c.verified;
      counted.mismatched += c.mismatched;
      counted.unknown += c.unknown;
      for (const [result, n] of Object.entries(c.results))
        counted.results[result as ReportResult] = (counted.results[result as ReportResult] ?? 0) + n;
    }
    const holding = names.reduce((sum, name) => sum + (held.get(name) ?? 0), 0);
    return {
      ...row,
      ...counted,
      held_by_all: hosts.length > 0 && holding >= hosts.length,
      moves: moves.get(row.version) ?? [],
    };
  });
  const unlisted = [...byVersion]
    .filter(([version]) => !listed.has(version))
    .map(([version, counts]) => ({ version, ...counts }))
    .sort((a, b) => compareVersions(b.version, a.version));
  const head = entries[entries.length - 1];
  return {
    app,
    ledger: snapshot
      ? {
          from: snapshot.from,
          entries: entries.length,
          primary: snapshot.primary ?? null,
          head: head?.n ?? null,
          error: snapshot.error ?? null,
        }
      : null,
    hosts: hosts.length,
    releases,
    unlisted,
  };
}
