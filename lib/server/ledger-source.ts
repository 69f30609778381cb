// Where hook-server reads an app's release ledger for GET /fleet/APP/releases and the Releases
// view (docs/fleet.md "Releases"): `fleet.APP.ledger`, else the `publish.to` of the repo that
// publishes APP. Read and verified (chain, signature, head signer) at most once per change of the
// files for a folder, once per `ttlMs` for a remote DEST; one read at a time; a ledger that does
// not verify is kept as an error the view shows, never as entries.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { ShipkitConfig } from '../config/shipkit-yml.ts';
import type { LedgerSnapshot } from '../release/fleet-releases.ts';
import { openDestination } from '../release/destination.ts';
import { certificateFor, verifiedLedger } from '../release/history.ts';
import { LEDGER_FILE, LEDGER_SIG_FILE } from '../release/ledger.ts';

/** A remote ledger is read again after this long. */
export const REMOTE_LEDGER_TTL_MS = 30_000;

export interface LedgerSourceOptions {
  /** A folder, s3://bucket/prefix or user@host:path. */
  dest: string;
  /** The certificate to trust (a keys.asc file); default DEST's keys.asc. */
  keys?: string;
  log: Logger;
  ttlMs?: number;
  now?: () => number;
}

export interface LedgerSource {
  readonly from: string;
  /** The ledger as last verified, read again when it changed. Never throws. */
  read(): Promise<LedgerSnapshot>;
}

/** What a folder's ledger files look like now: a change of any of them means a new read. */
async function folderStamp(dir: string, keys: string | undefined): Promise<string> {
  const files = [LEDGER_FILE, LEDGER_SIG_FILE, 'keys.asc'].map((f) => path.join(dir, f));
  if (keys) files.push(path.resolve(keys));
  const stats = await Promise.all(files.map((f) => stat(f).catch(() => undefined)));
  return stats.map((s) => (s ? `${s.size}:${s.mtimeMs}:${s.ino}` : '-')).join(' ');
}

export function ledgerSource(opts: LedgerSourceOptions): LedgerSource {
  const dest = openDestination(opts.dest, opts.log);
  const now = opts.now ?? Date.now;
  let last: { snapshot: LedgerSnapshot; stamp: string } | undefined;
  let reading: Promise<LedgerSnapshot> | undefined;

  async function readFresh(stamp: string): Promise<LedgerSnapshot> {
    let snapshot: LedgerSnapshot;
    try {
      const certificate = await certificateFor(dest, opts.keys);
      const { entries, primary, revoked } = await verifiedLedger(dest, certificate);
      snapshot = { from: dest.where, entries, primary, revoked, read: now() };
    } catch (error) {
      snapshot = { from: dest.where, entries: [], error: messageOf(error), read: now() };
      if (last?.snapshot.error !== snapshot.error)
        opts.log.warn('the release ledger does not verify; GET /fleet/…/releases shows the hosts only', {
          from: dest.where,
          error: snapshot.error,
        });
    }
    last = { snapshot, stamp };
    return snapshot;
  }

  async function read(): Promise<LedgerSnapshot> {
    const stamp = dest.local ? await folderStamp(dest.where, opts.keys) : '';
    const fresh = dest.local
      ? last?.stamp === stamp
      : last !== undefined && now() - last.snapshot.read < (opts.ttlMs ?? REMOTE_LEDGER_TTL_MS);
    if (fresh && last) return last.snapshot;
    reading ??= readFresh(stamp).finally(() => (reading = undefined));
    return reading;
  }

  return { from: dest.where, read };
}

/**
 * Each app of `fleet:` whose ledger can be found: `fleet.APP.ledger`, else the `publish.to` of
 * the one repo whose `publish.name` is APP (none, or several that differ: no source).
 */
export function ledgerSources(config: ShipkitConfig, log: Logger): Map<string, LedgerSource> {
  const sources = new Map<string, LedgerSource>();
  for (const app of config.fleet.values()) {
    let dest = app.ledger;
    if (!dest) {
      const targets = new Set(
        [...config.repos.values()].flatMap((repo) => (repo.publish?.name === app.app ? [repo.publish.to] : [])),
      );
      if (targets.size === 1) dest = [...targets][0];
    }
    if (dest) sources.set(app.app, ledgerSource({ dest, keys: app.keys, log }));
  }
  return sources;
}
