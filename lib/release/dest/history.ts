// `release history APP --from DEST` and `release rollback --list` (docs/release.md "The ledger"):
// the releases of an app as the verified ledger tells them, newest first, with their rollout state.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ValidationError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { validateName } from '../../core/names.ts';
import { openDestination, type Destination } from './destination.ts';
import type { VersionOnHosts } from '../format/fleet-report.ts';
import { readLedgerAt, revokedSubkeys } from './ledger.ts';
import { shownEscaped } from '../../core/escape.ts';
import { badVersions, type LedgerEntry } from '../format/ledger.ts';
import { readPublishedVersion } from './seq.ts';
import { versionKey } from '../format/version-file.ts';

export interface ReleaseRow {
  version: string;
  /** The publish entry's number, time, author and digests. */
  n: number;
  at: string;
  by: string;
  seq: number | null;
  sha256: string | null;
  signer: string;
  source: LedgerEntry['source'];
  /** The last ROLLOUT recorded for it (null: every host). */
  rollout: number | null;
  state: 'current' | 'halted' | 'rolled back' | 'bad' | 'previous';
  /** VERSION at DEST names it now. */
  current: boolean;
  bad: boolean;
  /** Its signing subkey is revoked in the certificate. */
  revoked: boolean;
  /** With `--fleet`: the hosts that run it, as hook-server's reports tell. */
  fleet?: Omit<VersionOnHosts, 'version'>;
}

/** The releases of `app` in `entries`, newest publish first. */
export function releasesOf(
  entries: LedgerEntry[],
  app: string,
  { current, revoked = new Set<string>() }: { current?: string; revoked?: Set<string> } = {},
): ReleaseRow[] {
  const bad = badVersions(entries.filter((e) => e.app === app));
  const rows = new Map<string, ReleaseRow>();
  for (const e of entries) {
    if (e.app !== app || !e.version) continue;
    const key = e.version;
    const row = rows.get(key);
    if (e.action === 'publish') {
      rows.delete(key); // published again: it moves to the top
      rows.set(key, {
        version: e.version,
        n: e.n,
        at: e.at,
        by: e.by,
        seq: e.seq,
        sha256: e.sha256,
        signer: e.signer,
        source: e.source,
        rollout: e.rollout,
        state: 'previous',
        current: false,
        bad: false,
        revoked: false,
      });
    } else if (row && (e.action === 'rollout' || e.action === 'halt')) row.rollout = e.rollout;
    else if (row && e.action === 'rollback') row.rollout = null;
  }
  const halted = new Set(entries.filter((e) => e.app === app && e.action === 'halt').map((e) => e.version));
  const currentKey = current === undefined ? undefined : versionKey(current);
  return [...rows.values()].reverse().map((row) => {
    const isCurrent = currentKey !== undefined && versionKey(row.version) === currentKey;
    const isBad = bad.has(row.version);
    const state = isCurrent ? 'current' : isBad ? (halted.has(row.version) ? 'halted' : 'rolled back') : 'previous';
    return { ...row, current: isCurrent, bad: isBad, revoked: revoked.has(row.signer), state };
  });
}

export interface HistoryOptions {
  app: string;
  from: string;
  /** The public certificate to trust (keys.asc from `release keys`); default DEST's keys.asc. */
  keys?: string;
  log: Logger;
}

export interface History {
  app: string;
  from: string;
  /** The primary key whose subkeys signed the ledger. */
  primary: string;
  entries: number;
  releases: ReleaseRow[];
  /** Key rotations and revocations recorded at DEST (`release keys … --to`), newest first. */
  keys: Array<{ n: number; at: string; by: string; note: string | null }>;
  /** With `--fleet`: the hosts that report to hook-server. */
  hosts?: number;
}

/** `history` with each release's hosts from GET /fleet/APP/releases (1.1 and 1.1.0 are one version). */
export function withHosts(history: History, fleet: { hosts: number; versions: VersionOnHosts[] }): History {
  const releases = history.releases.map((row) => {
    const key = versionKey(row.version);
    const on = fleet.versions.filter((v) => versionKey(v.version) === key);
    const sum = (key: 'hosts' | 'verified' | 'mismatched') => on.reduce((n, v) => n + v[key], 0);
    const counts = { hosts: sum('hosts'), verified: sum('verified'), mismatched: sum('mismatched') };
    return { ...row, fleet: { ...counts, held_by_all: on.some((v) => v.held_by_all) } };
  });
  return { ...history, releases, hosts: fleet.hosts };
}

/** A ledger whose chain, signature and head signer were checked against a certificate. */
export interface VerifiedLedger {
  entries: LedgerEntry[];
  /** The primary key whose subkeys signed the ledger. */
  primary: string;
  /** Subkeys the certificate says are revoked. */
  revoked: Set<string>;
}

/**
 * DEST's ledger checked against `certificate`: chain, signature, and a head not signed by a
 * revoked subkey. Throws LedgerError or ValidationError; an empty ledger has no entries.
 */
export async function verifiedLedger(dest: Destination, certificate: string): Promise<VerifiedLedger> {
  const { ledger } = await readLedgerAt(dest, certificate, { headFirst: true });
  const openpgp = await import('openpgp');
  const primary = (await openpgp.readKey({ armoredKey: certificate })).getFingerprint().toLowerCase();
  const revoked = await revokedSubkeys(certificate);
  const head = ledger.entries[ledger.entries.length - 1];
  // readLedgerAt checked that the head's signer made the signature.
  if (head && revoked.has(head.signer))
    throw new ValidationError(
      `ledger entry ${head.n}: the ledger at ${dest.where} was last signed by subkey ${head.signer}, which is revoked; a thief's entry, or publish again with a valid subkey.`,
    );
  return { entries: ledger.entries, primary, revoked };
}

/** The certificate to trust: the file `keys` names, else DEST's keys.asc. */
export async function certificateFor(dest: Destination, keys: string | undefined): Promise<string> {
  const certificate = keys
    ? await readFile(path.resolve(keys), 'utf8').catch((error) => {
        throw new ConfigError(`Cannot read --keys ${keys} (${(error as NodeJS.ErrnoException).code}).`);
      })
    : (await dest.read('keys.asc'))?.toString('utf8');
  if (!certificate)
    throw new ValidationError(`${dest.where} has no keys.asc; pass the release certificate with --keys keys.asc.`);
  return certificate;
}

/** The verified ledger at `from`, as rows. Throws LedgerError for a broken chain or signature. */
export async function releaseHistory(opts: HistoryOptions): Promise<History> {
  validateName(opts.app, 'app name');
  const dest = openDestination(opts.from, opts.log);
  const certificate = await certificateFor(dest, opts.keys);
  const { entries, primary, revoked } = await verifiedLedger(dest, certificate);
  if (!entries.length)
    throw new ValidationError(
      `${dest.where} has no ledger (${'ledger.jsonl'}): nothing was published there by a shipkit that keeps one.`,
    );
  const version = (await readPublishedVersion(dest, certificate)).published?.info.version;
  return {
    app: opts.app,
    from: dest.where,
    primary,
    entries: entries.length,
    releases: releasesOf(entries, opts.app, { current: version, revoked }),
    keys: entries
      .filter((e) => e.action === 'keys')
      .reverse()
      .map(({ n, at, by, note }) => ({ n, at, by, note })),
  };
}

/** The releases a rollback may go to: not the current one, not marked bad, not signed by a revoked subkey. */
export function rollbackChoices(history: History): ReleaseRow[] {
  return history.releases.filter((r) => !r.current && !r.bad && !r.revoked);
}

/** `12 hosts (12 verified)`, padded to line up; what a host count of a release says. */
export function hostsText(f: NonNullable<ReleaseRow['fleet']>): string {
  const detail = [
    `${f.verified} verified`,
    f.mismatched ? `${f.mismatched} ANOTHER DIGEST` : '',
    f.held_by_all ? 'held by all' : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `${`${f.hosts} host${f.hosts === 1 ? '' : 's'}`.padStart(11)} (${detail})`.padEnd(42);
}

/** One line a release, for a terminal: every text from the ledger shown escaped. */
export function formatHistory(history: History): string {
  const lines = [
    `${shownEscaped(history.app)} at ${history.from}: ${history.releases.length} releases, ${history.entries} ledger entries (signed by ${history.primary})${history.hosts === undefined ? '' : `; ${history.hosts} hosts report`}`,
  ];
  for (const r of history.releases) {
    const source = [r.source.repo, r.source.ref, r.source.commit?.slice(0, 12)].filter(Boolean).join(' ');
    const flags = [
      r.state,
      r.rollout !== null && r.rollout < 100 ? `ROLLOUT ${r.rollout}` : '',
      r.revoked ? 'key revoked' : '',
    ]
      .filter(Boolean)
      .join(', ');
    const hosts = r.fleet ? `${hostsText(r.fleet)}  ` : '';
    lines.push(
      `  ${r.version.padEnd(12)} ${flags.padEnd(20)} ${hosts}${r.at.slice(0, 19).replace('T', ' ')}  ${shownEscaped(r.by)}${source ? `  ${shownEscaped(source)}` : ''}`,
    );
  }
  for (const k of history.keys)
    lines.push(
      `  key change (entry ${k.n}) ${k.at.slice(0, 19).replace('T', ' ')}  ${shownEscaped(k.by)}: ${shownEscaped(k.note ?? '')}`,
    );
  return `${lines.join('\n')}\n`;
}
