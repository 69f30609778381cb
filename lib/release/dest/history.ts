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
import { badVersions, LEDGER_FILE, type Ledger, type LedgerEntry } from '../format/ledger.ts';
import { checkSeenLedger, readSeen, rememberSeen, seenFile, withLedgerRead } from './seen.ts';
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
  /** Promoted here (`release promote`): the environment (else the DEST) it came from. */
  from_env?: string;
  /** Promoted from here: the environments (else DESTs) it went to. */
  promoted_to?: string[];
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
    if (e.action === 'publish' || e.action === 'promote') {
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
        ...(e.action === 'promote' ? { from_env: e.from_env ?? e.from_dest ?? 'another DEST' } : {}),
      });
    } else if (row && e.action === 'promoted')
      row.promoted_to = [...(row.promoted_to ?? []), e.to_env ?? e.to_dest ?? 'another DEST'];
    else if (row && (e.action === 'rollout' || e.action === 'halt')) row.rollout = e.rollout;
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
  /** The state folder remembering each DEST's pinned key and longest ledger (`--state`); none: not remembered. */
  state?: string;
  /** Told the fingerprint trusted on first use (the script: stderr). */
  say?: (line: string) => void;
  /** The primary the config pins for DEST (shipkit.yml's publish.key), and where it says so. */
  pinned?: { primary: string; by: string };
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
  ledger: Ledger;
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
      `ledger entry ${head.n}: the ledger at ${dest.where} was last signed by subkey ${head.signer}, ` +
        `which is revoked; a thief's entry, or publish again with a valid subkey.`,
    );
  return { ledger, entries: ledger.entries, primary, revoked };
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
  const { entries, primary, revoked, certificate } = await trustedLedger(dest, { ...opts, app: opts.app });
  const releases = releasesOf(entries, opts.app, {
    current: (await readPublishedVersion(dest, certificate)).published?.info.version,
    revoked,
  });
  if (!releases.length) {
    const apps = [
      ...new Set(
        entries.filter((e) => e.action === 'publish' || e.action === 'promote').map((e) => shownEscaped(e.app)),
      ),
    ].sort();
    throw new ValidationError(
      `No releases of ${opts.app} at ${dest.where}; it has: ${apps.join(', ') || 'none'}. Check the app name.`,
    );
  }
  return {
    app: opts.app,
    from: dest.where,
    primary,
    entries: entries.length,
    releases,
    keys: entries
      .filter((e) => e.action === 'keys')
      .reverse()
      .map(({ n, at, by, note }) => ({ n, at, by, note })),
  };
}

/**
 * DEST's ledger as the publisher's side trusts it: the certificate (`keys`, else DEST's keys.asc,
 * whose primary must be the one pinned in `state`), the chain and signature verified, and, with
 * `state`, a ledger at least as long as the longest read there before and on the same chain;
 * then remembered. Throws ValidationError (exit 2) for nothing published, a key or ledger refused.
 */
export async function trustedLedger(
  dest: Destination,
  opts: Pick<HistoryOptions, 'keys' | 'state' | 'say' | 'pinned'> & { app: string; now?: Date },
): Promise<VerifiedLedger & { certificate: string }> {
  if (!(await dest.read(LEDGER_FILE)))
    throw new ValidationError(
      (await dest.read('VERSION'))
        ? `${dest.where} has no ledger (${LEDGER_FILE}): nothing was published there by a shipkit that ` +
            `keeps one; publish a release there first.`
        : `Nothing was published at ${dest.where}: it has no ledger (${LEDGER_FILE}) and no VERSION. ` +
            `Check --from, or publish there with \`release publish … --to ${dest.where}\`.`,
    );
  const seen = opts.state ? await readSeen(opts.state, dest.where) : undefined;
  const file = opts.state ? seenFile(opts.state, dest.where) : '';
  const certificate = await certificateFor(dest, opts.keys);
  const openpgp = await import('openpgp');
  const primary = (await openpgp.readKey({ armoredKey: certificate })).getFingerprint().toLowerCase();
  if (!opts.keys && opts.pinned && opts.pinned.primary !== primary)
    throw new ValidationError(
      `The keys.asc at ${dest.where} has primary ${primary}, but ${opts.pinned.by} pins ` +
        `${opts.pinned.primary}: another key's DEST, or its keys.asc was replaced. Refusing it; if the release ` +
        `key changed on purpose, pass its certificate with --keys keys.asc.`,
    );
  if (!opts.keys && !opts.pinned && seen && seen.primary !== primary)
    throw new ValidationError(
      `The keys.asc at ${dest.where} has primary ${primary}, but ${seen.primary} was pinned for it (since ` +
        `${seen.pinnedAt}, in ${file}): another key's DEST, or its keys.asc was replaced. Refusing it; if the ` +
        `release key changed on purpose, pass its certificate with --keys keys.asc (that pins it).`,
    );
  const verified = await verifiedLedger(dest, certificate);
  if (!opts.state) return { ...verified, certificate };
  checkSeenLedger(verified.ledger, seen, file);
  if (!seen && !opts.keys && !opts.pinned)
    opts.say?.(
      `First read of ${dest.where}: trusting the release key ${primary} from its keys.asc (trust on first ` +
        `use, pinned in ${file}). Compare it with your release key's fingerprint; later reads refuse another.`,
    );
  await rememberSeen(
    opts.state,
    withLedgerRead(seen, dest.where, opts.app, primary, verified.ledger, opts.now ?? new Date()),
  );
  return { ...verified, certificate };
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

/** `1 release`, `2 releases`: a count with its noun, plural when it is not 1. */
export function counted(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/** One line a release, for a terminal, its columns as wide as their longest text; every text from the ledger shown escaped. */
export function formatHistory(history: History): string {
  const lines = [
    `${shownEscaped(history.app)} at ${history.from}: ${counted(history.releases.length, 'release')}, ` +
      `${counted(history.entries, 'ledger entry', 'ledger entries')} (signed by ` +
      `${history.primary})${history.hosts === undefined ? '' : `; ${counted(history.hosts, 'host reports', 'hosts report')}`}`,
  ];
  const flagsOf = (r: ReleaseRow) =>
    [
      r.state,
      r.rollout !== null && r.rollout < 100 ? `ROLLOUT ${r.rollout}` : '',
      r.revoked ? 'key revoked' : '',
      r.from_env ? `promoted from ${shownEscaped(r.from_env)}` : '',
      r.promoted_to ? `promoted to ${r.promoted_to.map(shownEscaped).join(', ')}` : '',
    ]
      .filter(Boolean)
      .join(', ');
  const versionWidth = Math.max(0, ...history.releases.map((r) => r.version.length));
  const flagsWidth = Math.max(0, ...history.releases.map((r) => flagsOf(r).length));
  for (const r of history.releases) {
    const source = [r.source.repo, r.source.ref, r.source.commit?.slice(0, 12)].filter(Boolean).join(' ');
    const hosts = r.fleet ? `${hostsText(r.fleet)}  ` : '';
    lines.push(
      `  ${r.version.padEnd(versionWidth)}  ${flagsOf(r).padEnd(flagsWidth)}  ` +
        `${hosts}${r.at.slice(0, 19).replace('T', ' ')}  ${shownEscaped(r.by)}${source ? `  ${shownEscaped(source)}` : ''}`,
    );
  }
  for (const k of history.keys)
    lines.push(
      `  key change (entry ${k.n}) ${k.at.slice(0, 19).replace('T', ' ')}  ${shownEscaped(k.by)}: ${shownEscaped(k.note ?? '')}`,
    );
  return `${lines.join('\n')}\n`;
}

/** One environment's history, for the path of each version across an app's environments. */
export interface EnvironmentHistory {
  env: string;
  history: History;
}

/**
 * `release history APP --config`: each environment's current release, then each version's path
 * through the environments in the order shipkit.yml lists them (where it is, since when, its state).
 */
export function formatPaths(app: string, environments: EnvironmentHistory[]): string {
  const width = Math.max(...environments.map((e) => e.env.length));
  const lines = [`${shownEscaped(app)} across ${counted(environments.length, 'environment')}:`];
  for (const { env, history } of environments) {
    const current = history.releases.find((r) => r.current);
    lines.push(
      `  ${env.padEnd(width)}  ${current ? `${current.version} (${current.state}${current.rollout !== null && current.rollout < 100 ? `, ROLLOUT ${current.rollout}` : ''})` : 'no release'}  ${history.from}`,
    );
  }
  const versions = [...new Set(environments.flatMap((e) => e.history.releases.map((r) => r.version)))];
  for (const version of versions) {
    const steps = environments.flatMap(({ env, history }) => {
      const row = history.releases.find((r) => r.version === version);
      if (!row) return [];
      const how = row.from_env ? `promoted from ${shownEscaped(row.from_env)}` : 'published';
      const rollout = row.rollout !== null && row.rollout < 100 ? `, ROLLOUT ${row.rollout}` : '';
      return [`${env}: ${how} ${row.at.slice(0, 16).replace('T', ' ')}, ${row.state}${rollout}`];
    });
    lines.push(`  ${version}: ${steps.join(' → ')}`);
  }
  return `${lines.join('\n')}\n`;
}
