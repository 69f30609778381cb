// Where hook-server reads an app's release ledger for GET /fleet/APP/releases and the Releases
// view: `fleet.APP.ledger`, else the `publish.to` of the repo publishing APP; verified once per
// change (a remote DEST: per ttlMs); one that does not verify is an error, never entries. With
// `queue:` the verified bytes are kept in shipkit.ledgers for the nodes that cannot read DEST.
// The whole story: docs/fleet.md "Releases".
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { messageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { publishedTo, type ShipkitConfig } from '../config/shipkit-yml.ts';
import type { Queryable } from '../db/connect.ts';
import type { LedgerSnapshot } from '../release/rollout/fleet-view.ts';
import { openDestination, type Destination } from '../release/dest/destination.ts';
import { certificateFor, verifiedLedger } from '../release/dest/history.ts';
import { LEDGER_FILE, LEDGER_SIG_FILE } from '../release/format/ledger.ts';

/** A remote ledger is read again after this long, and so is the database's copy. */
export const REMOTE_LEDGER_TTL_MS = 30_000;

export interface LedgerSourceOptions {
  app: string;
  /** A folder, s3://bucket/prefix or user@host:path. */
  dest: string;
  /** The certificate to trust (a keys.asc file); default DEST's keys.asc. */
  keys?: string;
  log: Logger;
  /** The queue database (`queue:`): where the verified ledger is kept for the other nodes. */
  db?: Queryable;
  ttlMs?: number;
  now?: () => number;
}

export interface LedgerSource {
  /** The ledger as last verified, read again when it changed. Never throws. */
  read(): Promise<LedgerSnapshot>;
}

/** The files a ledger is verified from, as read at DEST or from the database. */
interface LedgerFiles {
  ledger: Buffer;
  sig: Buffer | undefined;
  keys: Buffer | undefined;
}

/** What a folder's ledger files look like now: a change of any of them means a new read. */
async function folderStamp(dir: string, keys: string | undefined): Promise<string> {
  const files = [LEDGER_FILE, LEDGER_SIG_FILE, 'keys.asc'].map((f) => path.join(dir, f));
  if (keys) files.push(path.resolve(keys));
  const stats = await Promise.all(files.map((f) => stat(f).catch(() => undefined)));
  return stats.map((s) => (s ? `${s.size}:${s.mtimeMs}:${s.ino}` : '-')).join(' ');
}

/** A read-only destination over bytes already read: verifiedLedger checks exactly what is kept. */
function inMemory(where: string, files: LedgerFiles): Destination {
  const byName: Record<string, Buffer | undefined> = {
    [LEDGER_FILE]: files.ledger,
    [LEDGER_SIG_FILE]: files.sig,
    'keys.asc': files.keys,
  };
  const none = () => Promise.reject(new Error('read-only'));
  return {
    where,
    local: true,
    list: async () => Object.keys(byName).filter((name) => byName[name]),
    read: async (name) => byName[name],
    localCopy: none,
    put: none,
  };
}

/** DEST's ledger files, or undefined when DEST has none here (a folder of another machine) or cannot be reached. */
async function filesAt(dest: Destination, log: Logger): Promise<LedgerFiles | undefined> {
  try {
    const ledger = await dest.read(LEDGER_FILE);
    if (!ledger) return undefined;
    const [sig, keys] = await Promise.all([dest.read(LEDGER_SIG_FILE), dest.read('keys.asc')]);
    return { ledger, sig, keys };
  } catch (error) {
    log.debug('the release ledger could not be read at its DEST', { from: dest.where, error: messageOf(error) });
    return undefined;
  }
}

async function storeCopy(db: Queryable, app: string, where: string, files: LedgerFiles, sha256: string) {
  await db.query(
    `INSERT INTO shipkit.ledgers AS l (app, dest, sha256, ledger, sig, keys) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (app) DO UPDATE SET dest = EXCLUDED.dest, sha256 = EXCLUDED.sha256, ledger = EXCLUDED.ledger,
       sig = EXCLUDED.sig, keys = EXCLUDED.keys, stored = now()
     WHERE l.sha256 <> EXCLUDED.sha256`,
    [app, where, sha256, files.ledger, files.sig, files.keys?.toString('utf8') ?? null],
  );
}

async function readCopy(db: Queryable, app: string): Promise<(LedgerFiles & { from: string }) | undefined> {
  const { rows } = await db.query(
    `SELECT dest, ledger, sig, keys, to_char(stored AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS stored
     FROM shipkit.ledgers WHERE app = $1`,
    [app],
  );
  const row = rows[0] as { dest: string; ledger: Buffer; sig: Buffer; keys: string | null; stored: string } | undefined;
  if (!row) return undefined;
  const keys = row.keys === null ? undefined : Buffer.from(row.keys);
  return { ledger: row.ledger, sig: row.sig, keys, from: `${row.dest} (the database's copy of ${row.stored})` };
}

export function ledgerSource(opts: LedgerSourceOptions): LedgerSource {
  const dest = openDestination(opts.dest, opts.log);
  const now = opts.now ?? Date.now;
  let last: { snapshot: LedgerSnapshot; stamp: string; sha256?: string } | undefined;
  let reading: Promise<LedgerSnapshot> | undefined;

  /** The files verified: entries, or the error the view shows. */
  async function verify(where: string, files: LedgerFiles): Promise<LedgerSnapshot> {
    try {
      const source = inMemory(where, files);
      const certificate = await certificateFor(source, opts.keys);
      const { entries, primary, revoked } = await verifiedLedger(source, certificate);
      return { from: where, entries, primary, revoked, read: now() };
    } catch (error) {
      return { from: where, entries: [], error: messageOf(error), read: now() };
    }
  }

  async function readFresh(stamp: string): Promise<LedgerSnapshot> {
    const atDest = await filesAt(dest, opts.log);
    const copy = !atDest && opts.db ? await readCopy(opts.db, opts.app).catch(() => undefined) : undefined;
    const files = atDest ?? copy;
    const sha256 =
      files &&
      createHash('sha256')
        .update(files.ledger)
        .update(files.sig ?? '')
        .update(files.keys ?? '')
        .digest('hex');
    const prior = last;
    let snapshot: LedgerSnapshot;
    if (!files) snapshot = { from: dest.where, entries: [], error: `no ${LEDGER_FILE} at ${dest.where}`, read: now() };
    else if (
      !stamp &&
      !opts.keys &&
      prior &&
      prior.sha256 === sha256 &&
      prior.snapshot.from === (copy?.from ?? dest.where)
    )
      snapshot = { ...prior.snapshot, read: now() }; // the same bytes read again after ttlMs: verified already
    else snapshot = await verify(copy?.from ?? dest.where, files);
    if (snapshot.error && prior?.snapshot.error !== snapshot.error)
      opts.log.warn('the release ledger does not verify; GET /fleet/…/releases shows the hosts only', {
        from: snapshot.from,
        error: snapshot.error,
      });
    // Kept for the other nodes only once verified, and only what was read at DEST.
    if (atDest && !snapshot.error && opts.db && sha256)
      await storeCopy(opts.db, opts.app, dest.where, atDest, sha256).catch((error) =>
        opts.log.warn('could not keep the release ledger in the database', { error: messageOf(error) }),
      );
    last = { snapshot, stamp, sha256 };
    return snapshot;
  }

  async function read(): Promise<LedgerSnapshot> {
    // A folder that is here is read again when its files change; anything else after ttlMs.
    const here = dest.local ? await folderStamp(dest.where, opts.keys) : '';
    const stamp = here.startsWith('-') ? '' : here;
    const fresh = stamp
      ? last?.stamp === stamp
      : last !== undefined && now() - last.snapshot.read < (opts.ttlMs ?? REMOTE_LEDGER_TTL_MS);
    if (fresh && last) return last.snapshot;
    reading ??= readFresh(stamp).finally(() => (reading = undefined));
    return reading;
  }

  return { read };
}

/**
 * Each app of `fleet:` whose ledger can be found: `fleet.APP.ledger`, else the `publish.to` of
 * the one repo whose `publish.name` is APP (none, or several that differ: no source).
 */
export function ledgerSources(config: ShipkitConfig, log: Logger, db?: Queryable): Map<string, LedgerSource> {
  const sources = new Map<string, LedgerSource>();
  for (const app of config.fleet.values()) {
    const dest = app.ledger ?? publishedTo(config, app.app);
    if (dest) sources.set(app.app, ledgerSource({ app: app.app, dest, keys: app.keys, log, db }));
  }
  return sources;
}
