// Which release an approval is for, as the source environment's signed ledger records it (never as
// the approver says it): the sha256 of its publish or promote entry, and who signed those entries,
// for they may not approve it. And the release waiting at the source to move into the target.
import os from 'node:os';
import { ValidationError } from '../../core/errors.ts';
import type { Destination } from '../dest/destination.ts';
import { trustedLedger, type HistoryOptions } from '../dest/history.ts';
import { publishEntryOf } from '../dest/ledger.ts';
import { primaryOfKeyFile, stateFolder } from '../dest/seen.ts';
import { readPublishedVersion } from '../dest/seq.ts';
import { LEDGER_FILE, type LedgerEntry } from '../format/ledger.ts';
import { validateVersion, versionKey } from '../format/version-file.ts';

/** A release of an app at the source, as its ledger records it. */
export interface SourceRecord {
  app: string;
  /** As the source spells it (1.4 and 1.4.0 are one version). */
  version: string;
  sha256: string;
  /**
   * The subkeys that signed its publish and promote entries there, and the release key's primary
   * when DEST's certificate holds them: none of these may approve it.
   */
  publishers: string[];
  /** The accounts that wrote them (`by: NAME@HOST`): no status-page user of that name may approve it. */
  publisherUsers: string[];
  /** The source DEST. */
  from: string;
}

/** How the source's ledger is trusted: as `release history` trusts it (--keys, --state, a pinned primary). */
export type LedgerTrust = Pick<HistoryOptions, 'keys' | 'state' | 'say' | 'pinned'>;

/**
 * The trust of a command run from shipkit.yml: `state` (--state, else the config folder) and, when the
 * config names the app's release key (`releaseKey`, said `by`), its primary pinned for the DEST.
 */
export async function ledgerTrustOf(opts: {
  state?: string;
  releaseKey?: string;
  by: string;
  say: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}): Promise<LedgerTrust> {
  const state = stateFolder(opts.state, opts.env ?? process.env, os.homedir());
  if (!opts.releaseKey) return { state, say: opts.say };
  return { state, say: opts.say, pinned: { primary: await primaryOfKeyFile(opts.releaseKey), by: opts.by } };
}

/**
 * `version` of `app` as the ledger at `source` records it. Throws ValidationError (exit 2) when the
 * ledger does not verify, or has no publish or promote entry of that version (`sourceName` says
 * which environment, in the message).
 */
export async function recordAtSource(
  source: Destination,
  opts: LedgerTrust & { app: string; version: string; sourceName?: string },
): Promise<SourceRecord> {
  validateVersion(opts.version, 'VERSION');
  const { entries, certificate } = await trustedLedger(source, opts);
  const record = await recordOf(entries, certificate, opts.app, opts.version, source.where);
  if (!record)
    throw new ValidationError(
      `${opts.app} ${opts.version} was never published or promoted at ${opts.sourceName ?? source.where} ` +
        `(${source.where}): its ledger has no entry of it, so there is nothing to approve. Nothing was written.`,
    );
  return record;
}

async function recordOf(
  entries: LedgerEntry[],
  certificate: string,
  app: string,
  version: string,
  from: string,
): Promise<SourceRecord | undefined> {
  const entry = publishEntryOf(entries, app, version);
  if (!entry?.version || !entry.sha256) return undefined;
  return {
    app,
    version: entry.version,
    sha256: entry.sha256,
    publishers: await publishersOf(entries, certificate, app, version),
    publisherUsers: publisherUsersOf(entries, app, version),
    from,
  };
}

/**
 * Who may not approve `version`: the subkeys that signed its publish and promote entries, and the
 * release key's primary when `certificate` holds one of them.
 */
export async function publishersOf(
  entries: LedgerEntry[],
  certificate: string,
  app: string,
  version: string,
): Promise<string[]> {
  const key = versionKey(version);
  const signers = entries
    .filter((e) => (e.action === 'publish' || e.action === 'promote') && e.app === app && e.version !== null)
    .filter((e) => versionKey(e.version!) === key)
    .map((e) => e.signer.toLowerCase());
  const openpgp = await import('openpgp');
  const releaseKey = await openpgp.readKey({ armoredKey: certificate });
  const held = new Set(releaseKey.getKeys().map((k) => k.getFingerprint().toLowerCase()));
  const primary = signers.some((s) => held.has(s)) ? [releaseKey.getFingerprint().toLowerCase()] : [];
  return [...new Set([...signers, ...primary])];
}

/**
 * Who wrote `version`'s publish and promote entries, by account: the NAME of `by: NAME@HOST` (an
 * entry a build job wrote, `by: job ID`, names nobody). A status-page user of that name is the
 * publisher, on any machine.
 */
export function publisherUsersOf(entries: LedgerEntry[], app: string, version: string): string[] {
  const key = versionKey(version);
  const names = entries
    .filter((e) => (e.action === 'publish' || e.action === 'promote') && e.app === app && e.version !== null)
    .filter((e) => versionKey(e.version!) === key)
    .map((e) => /^([^@\s]+)@[^@\s]*$/.exec(e.by)?.[1])
    .filter((name): name is string => name !== undefined);
  return [...new Set(names)];
}

/** What waits at the source to move into the target, or why nothing does. */
export type Waiting = { release: SourceRecord } | { nothing: string };

/**
 * The source's current release (its VERSION, signature checked) when it is not the target's current
 * one (same version and sha256), with its record in the source's ledger.
 */
export async function waitingRelease(
  source: Destination,
  target: Destination,
  opts: LedgerTrust & { app: string; sourceName: string; targetName: string },
): Promise<Waiting> {
  if (!(await source.read(LEDGER_FILE))) return { nothing: `nothing published at ${opts.sourceName}` };
  const { entries, certificate } = await trustedLedger(source, opts);
  const { published, problem } = await readPublishedVersion(source, certificate);
  if (problem) throw new ValidationError(`${problem}; check ${opts.sourceName}'s DEST.`);
  const current = published?.info;
  if (!current || (current.app ?? opts.app) !== opts.app)
    return { nothing: `${opts.sourceName} has no current release of ${opts.app}` };
  const release = await recordOf(entries, certificate, opts.app, current.version, source.where);
  if (!release)
    return { nothing: `${opts.sourceName}'s current ${current.version} has no publish or promote entry in its ledger` };
  const there = (await readPublishedVersion(target, certificate)).published?.info;
  if (there && versionKey(there.version) === versionKey(release.version) && there.sha256 === release.sha256)
    return { nothing: `${opts.targetName} runs ${opts.sourceName}'s current ${release.version} already` };
  return { release };
}
