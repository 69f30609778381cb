// The release ledger (docs/release.md "The ledger"): ledger.jsonl beside VERSION, one JSON entry a
// line, each naming the sha256 of the line before it, so a removed, reordered or edited entry
// breaks the chain at its number. Read by the publisher, `release history` and launchfit alike.
import * as buffer from 'node:buffer';
import * as crypto from 'node:crypto';
import { ValidationError } from '../../core/errors.ts';
import { versionProblem } from './version-file.ts';

export const LEDGER_FILE = 'ledger.jsonl';
export const LEDGER_SIG_FILE = 'ledger.jsonl.sig';
/** A signature of the head line alone: with the chain it vouches for every line before, so a host
 * that verified the ledger up to a byte offset reads only what was appended since. */
export const LEDGER_HEAD_SIG_FILE = 'ledger.head.sig';
/** A ledger bigger than this is refused while it is read (10,000 entries are about 6 MB). */
export const MAX_LEDGER_BYTES = 64 * 1024 * 1024;
export const GENESIS = '0'.repeat(64);

/**
 * What an entry records: a release published, a rollout step or halt, a rollback, a key change, a
 * release promoted here from another environment (`promote`) or from here to another (`promoted`).
 */
export const LEDGER_ACTIONS = ['publish', 'rollout', 'halt', 'rollback', 'keys', 'promote', 'promoted'] as const;
export type LedgerAction = (typeof LEDGER_ACTIONS)[number];

export interface LedgerEntry {
  n: number;
  prev: string;
  at: string;
  /** user@host, or the job id that ran the command. */
  by: string;
  action: LedgerAction;
  app: string;
  version: string | null;
  seq: number | null;
  rollout: number | null;
  /** The tarball's sha256. */
  sha256: string | null;
  /** The sha256 of the VERSION file this entry signed. */
  version_sha256: string | null;
  manifest_sha256: string | null;
  provenance_sha256: string | null;
  /** Fingerprint of the subkey that signed the ledger with this entry. */
  signer: string;
  source: { repo: string | null; commit: string | null; ref: string | null };
  /** A rollback: the version it left. */
  from?: string;
  /** A promote: the environment and DEST the same bytes came from. */
  from_env?: string;
  from_dest?: string;
  /** A promoted note: the environment and DEST they went to. */
  to_env?: string;
  to_dest?: string;
  /** A promote with --force: the reason given for overriding the source's "not good". */
  forced?: string;
  note: string | null;
}

export type NewEntry = Omit<LedgerEntry, 'n' | 'prev'>;

/** An entry that breaks the ledger, by its number. */
export class LedgerError extends ValidationError {
  readonly entry: number;
  constructor(entry: number, message: string) {
    super(`ledger entry ${entry}: ${message}`);
    this.entry = entry;
  }
}

export interface LedgerHead {
  n: number;
  /** sha256 of the head line's bytes (without its newline). */
  hash: string;
}

export interface Ledger {
  entries: LedgerEntry[];
  head?: LedgerHead;
  /** The bytes of the complete lines: what the signature covers. */
  text: Buffer;
  /** A last line without its newline (a torn write) was left out of `entries` and `text`. */
  torn: boolean;
}

// crypto.hash (Node 20.12+) skips a Hash object per line: a tenth of reading 10,000 entries.
const oneShot = (crypto as { hash?: (algorithm: string, data: string | Uint8Array) => string }).hash;
const sha256 = (bytes: Uint8Array | string): string =>
  oneShot ? oneShot('sha256', bytes) : crypto.createHash('sha256').update(bytes).digest('hex');
// buffer.isUtf8 (Node 18.14+) checks the bytes without decoding them; else decoded and compared.
const isUtf8 = (buffer as { isUtf8?: (bytes: Uint8Array) => boolean }).isUtf8;
const utf8 = (bytes: Buffer): boolean => (isUtf8 ? isUtf8(bytes) : Buffer.from(bytes.toString('utf8')).equals(bytes));
/** 64 lowercase hex digits; a loop, as a regular expression costs a tenth of reading an entry. */
function isHex64(v: string): boolean {
  if (v.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}
const FINGERPRINT = /^[0-9a-f]{16,64}$/;
const ACTIONS = new Set<unknown>(LEDGER_ACTIONS);

// Written out field by field, without a closure or a keyed loop: they run once for every entry.
const isDigest = (v: unknown) => v === null || (typeof v === 'string' && isHex64(v));
const isText = (v: unknown) => typeof v === 'string' && v.length <= 4096;
const isOptionalText = (v: unknown) => v === null || isText(v);
const isVersion = (v: unknown) => typeof v === 'string' && versionProblem(v) === undefined;

/** Why `e` is not a well-formed entry, or undefined. */
function entryProblem(e: Record<string, unknown>): string | undefined {
  if (!ACTIONS.has(e.action)) return `unknown action ${JSON.stringify(e.action)}`;
  if (typeof e.at !== 'string' || Number.isNaN(Date.parse(e.at))) return '"at" is not a time';
  if (!isText(e.by) || !isText(e.app) || !e.app) return '"by" or "app" is missing';
  if (e.version !== null && !isVersion(e.version)) return 'bad "version"';
  const { seq, rollout } = e;
  if (seq !== null && !(Number.isSafeInteger(seq) && (seq as number) > 0)) return 'bad "seq"';
  if (rollout !== null && !(typeof rollout === 'number' && rollout > 0 && rollout <= 100)) return 'bad "rollout"';
  if (!isDigest(e.sha256)) return 'bad "sha256"';
  if (!isDigest(e.version_sha256)) return 'bad "version_sha256"';
  if (!isDigest(e.manifest_sha256)) return 'bad "manifest_sha256"';
  if (!isDigest(e.provenance_sha256)) return 'bad "provenance_sha256"';
  if (typeof e.signer !== 'string' || !FINGERPRINT.test(e.signer)) return 'bad "signer"';
  const source = e.source as Record<string, unknown> | null;
  if (
    !source ||
    typeof source !== 'object' ||
    !isOptionalText(source.repo) ||
    !isOptionalText(source.commit) ||
    !isOptionalText(source.ref)
  )
    return 'bad "source"';
  if (e.from !== undefined && !isVersion(e.from)) return 'bad "from"';
  if (e.from_env !== undefined && !isText(e.from_env)) return 'bad "from_env"';
  if (e.from_dest !== undefined && !isText(e.from_dest)) return 'bad "from_dest"';
  if (e.to_env !== undefined && !isText(e.to_env)) return 'bad "to_env"';
  if (e.to_dest !== undefined && !isText(e.to_dest)) return 'bad "to_dest"';
  if (e.forced !== undefined && !isText(e.forced)) return 'bad "forced"';
  if (!isOptionalText(e.note)) return 'bad "note"';
  return undefined;
}

/** The number of the first line of `text` whose bytes are not UTF-8. */
function firstNotUtf8(text: Buffer): number {
  let n = 1;
  for (let start = 0; start < text.length; n++) {
    const stop = text.indexOf(0x0a, start);
    if (!utf8(text.subarray(start, stop))) return n;
    start = stop + 1;
  }
  return n;
}

/**
 * The ledger in `bytes`, its chain checked: every line a well-formed entry, numbered from 1, each
 * `prev` the sha256 of the line before (64 zeros for the first). Throws LedgerError naming the
 * first entry that breaks it. A torn last line (no newline) is left out and reported. With
 * `after`, `bytes` are the lines that follow that head (a tail read from its byte offset): they
 * must go on from its number and hash.
 */
export function readLedger(bytes: Buffer, after?: LedgerHead): Ledger {
  if (bytes.length > MAX_LEDGER_BYTES)
    throw new ValidationError(`the ledger is ${bytes.length} bytes, more than the ${MAX_LEDGER_BYTES} allowed`);
  const end = bytes.lastIndexOf(0x0a) + 1;
  const text = bytes.subarray(0, end);
  const first = after?.n ?? 0;
  // Checked as UTF-8, then decoded once: a line's sha256 over its string is over its bytes, as
  // long as the bytes are UTF-8 (a line that is not could hash otherwise, so it is refused).
  if (!utf8(text)) throw new LedgerError(first + firstNotUtf8(text), 'is not UTF-8 text');
  const whole = text.toString('utf8');
  const entries: LedgerEntry[] = [];
  let prev = after?.hash ?? GENESIS;
  for (let start = 0, stop = whole.indexOf('\n'); stop >= 0; start = stop + 1, stop = whole.indexOf('\n', start)) {
    const line = whole.slice(start, stop);
    const n = first + entries.length + 1;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      throw new LedgerError(n, 'is not a JSON line');
    }
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new LedgerError(n, 'is not a JSON object');
    if (entry.n !== n)
      throw new LedgerError(n, `is numbered ${JSON.stringify(entry.n)}: an entry was removed or moved`);
    if (entry.prev !== prev)
      throw new LedgerError(
        n,
        `does not follow entry ${n - 1} (its "prev" is not that line's sha256): edited or reordered`,
      );
    const problem = entryProblem(entry);
    if (problem) throw new LedgerError(n, problem);
    entries.push(entry as unknown as LedgerEntry);
    prev = sha256(line);
  }
  return {
    entries,
    head: entries.length ? { n: first + entries.length, hash: prev } : after,
    text,
    torn: end < bytes.length,
  };
}

/** The line (with its newline) that appends `entry` after `head`, its fields in the contract's order. */
export function ledgerLine(e: NewEntry, head: LedgerHead | undefined): string {
  const line: LedgerEntry = {
    n: (head?.n ?? 0) + 1,
    prev: head?.hash ?? GENESIS,
    at: e.at,
    by: e.by,
    action: e.action,
    app: e.app,
    version: e.version,
    seq: e.seq,
    rollout: e.rollout,
    sha256: e.sha256,
    version_sha256: e.version_sha256,
    manifest_sha256: e.manifest_sha256,
    provenance_sha256: e.provenance_sha256,
    signer: e.signer,
    source: { repo: e.source.repo, commit: e.source.commit, ref: e.source.ref },
    ...(e.from !== undefined ? { from: e.from } : {}),
    ...(e.from_env !== undefined ? { from_env: e.from_env } : {}),
    ...(e.from_dest !== undefined ? { from_dest: e.from_dest } : {}),
    ...(e.to_env !== undefined ? { to_env: e.to_env } : {}),
    ...(e.to_dest !== undefined ? { to_dest: e.to_dest } : {}),
    ...(e.forced !== undefined ? { forced: e.forced } : {}),
    note: e.note,
  };
  return `${JSON.stringify(line)}\n`;
}

/**
 * Refuses a ledger that does not extend the one a reader saw before: shorter (an older chain put
 * back), or holding another line at the number it saw (a forked history).
 */
export function checkAgainstSeen(ledger: Ledger, seen: LedgerHead | undefined): void {
  if (!seen) return;
  const n = ledger.head?.n ?? 0;
  if (n < seen.n)
    throw new LedgerError(
      n,
      `the ledger ends at entry ${n}, but entry ${seen.n} was seen before: an older ledger was put back`,
    );
  if (lineHash(ledger, seen.n) !== seen.hash)
    throw new LedgerError(seen.n, 'differs from the entry seen before under this number: the history was rewritten');
}

/** sha256 of line `n` (1-based) of a checked ledger. */
export function lineHash(ledger: Ledger, n: number): string | undefined {
  if (n === ledger.head?.n) return ledger.head.hash;
  const next = ledger.entries[n];
  return next?.prev;
}

/**
 * Versions the ledger marks bad: halted in a rollout, or left by a rollback, and not published or
 * rolled out again after that.
 */
export function badVersions(entries: LedgerEntry[]): Set<string> {
  const bad = new Set<string>();
  for (const e of entries) {
    if (e.action === 'halt' && e.version) bad.add(e.version);
    else if (e.action === 'rollback' && e.from) bad.add(e.from);
    else if ((e.action === 'publish' || e.action === 'rollout' || e.action === 'promote') && e.version)
      bad.delete(e.version);
  }
  return bad;
}
