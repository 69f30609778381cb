// The audit trail's entries (docs/audit.md): one JSON object a line, numbered from 1, each `prev`
// the sha256 of the line before (64 zeros first), as in the release ledger. A `retention` entry
// vouches for the first line kept after older ones were cut, so the chain still verifies.
import { createHash } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';
import { GENESIS } from '../release/format/ledger.ts';

export { GENESIS };

/** What an entry records: an action taken on the control plane. */
export const AUDIT_ACTIONS = [
  'login',
  'login.failed',
  'logout',
  'sessions.end',
  'token.rotate',
  'delivery.replay',
  'delivery.replay_refused',
  'build.manual',
  'release.manual',
  'release.promote',
  'release.approve',
  'rollout.start',
  'rollout.step',
  'rollout.halt',
  'rollout.resume',
  'rollout.done',
  'rollout.override',
  'rollback',
  'fleet.forget',
  'retention',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  n: number;
  prev: string;
  at: string;
  action: AuditAction;
  /** Who: `session AbCdEfGh`, `token`, `fleet secret`, `cli USER@HOST`, `hook-server`; never a secret. */
  actor: string;
  /** The client's address (the socket's peer), or `local` for a command run on the machine. */
  from: string;
  /** The hook-server that took the action, with `queue:` (several share one trail). */
  node?: string;
  /** The repo, app or job the action was on. */
  subject: string | null;
  detail: Record<string, unknown> | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'n' | 'prev'>;

export interface AuditHead {
  n: number;
  /** sha256 of the head line's bytes (without its newline). */
  hash: string;
}

/** An entry that breaks the chain, by its number. */
export class AuditChainError extends ValidationError {
  readonly entry: number;
  constructor(entry: number, message: string) {
    super(`audit entry ${entry}: ${message}`);
    this.entry = entry;
  }
}

/** A line longer than this is not written: each text field is clipped well below it. */
export const MAX_LINE_BYTES = 16 * 1024;
const MAX_TEXT = 512;

export const sha256Hex = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** Text from a request (a repo, a user name, a reason) kept at a bounded length. */
export function clip(text: string, max = MAX_TEXT): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function clipDetail(detail: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!detail) return null;
  return Object.fromEntries(Object.entries(detail).map(([k, v]) => [k, typeof v === 'string' ? clip(v) : v] as const));
}

/** The line (without its newline) that appends `e` after `head`, its fields in the trail's order. */
export function auditLine(e: NewAuditEntry, head: AuditHead | undefined): string {
  const entry: AuditEntry = {
    n: (head?.n ?? 0) + 1,
    prev: head?.hash ?? GENESIS,
    at: e.at,
    action: e.action,
    actor: clip(e.actor, 200),
    from: clip(e.from, 200),
    ...(e.node !== undefined ? { node: clip(e.node, 200) } : {}),
    subject: e.subject === null ? null : clip(e.subject),
    detail: clipDetail(e.detail),
  };
  const line = JSON.stringify(entry);
  if (Buffer.byteLength(line) > MAX_LINE_BYTES)
    throw new ValidationError(`an audit entry of ${e.action} would be ${Buffer.byteLength(line)} bytes; too long`);
  return line;
}

/** Lines after `head`, with the head they leave. */
export function chainLines(
  entries: NewAuditEntry[],
  head: AuditHead | undefined,
): { lines: string[]; head?: AuditHead } {
  const lines: string[] = [];
  for (const e of entries) {
    const line = auditLine(e, head);
    lines.push(line);
    head = { n: (head?.n ?? 0) + 1, hash: sha256Hex(line) };
  }
  return { lines, head };
}

/** Why `e` is not a well-formed entry, or undefined. */
function entryProblem(e: Record<string, unknown>): string | undefined {
  if (!(AUDIT_ACTIONS as readonly unknown[]).includes(e.action)) return `unknown action ${JSON.stringify(e.action)}`;
  if (typeof e.at !== 'string' || Number.isNaN(Date.parse(e.at))) return '"at" is not a time';
  if (typeof e.actor !== 'string' || typeof e.from !== 'string') return '"actor" or "from" is missing';
  if (e.node !== undefined && typeof e.node !== 'string') return 'bad "node"';
  if (e.subject !== null && typeof e.subject !== 'string') return 'bad "subject"';
  if (e.detail !== null && (typeof e.detail !== 'object' || Array.isArray(e.detail))) return 'bad "detail"';
  return undefined;
}

/** The lines of a trail's text: complete ones (ending in a newline), and whether a torn one followed. */
export function splitLines(bytes: Buffer): { lines: Buffer[]; torn: boolean } {
  const end = bytes.lastIndexOf(0x0a) + 1;
  const lines: Buffer[] = [];
  for (let start = 0; start < end;) {
    const stop = bytes.indexOf(0x0a, start);
    lines.push(bytes.subarray(start, stop));
    start = stop + 1;
  }
  return { lines, torn: end < bytes.length };
}

function parseEntry(line: Buffer, n: number): AuditEntry {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line.toString('utf8'));
  } catch {
    throw new AuditChainError(n, 'is not a JSON line');
  }
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new AuditChainError(n, 'is not a JSON object');
  const problem = entryProblem(entry);
  if (problem) throw new AuditChainError(n, problem);
  return entry as unknown as AuditEntry;
}

/**
 * The trail in `bytes`, its chain checked: every line a well-formed entry, numbered on from the
 * first, each `prev` the sha256 of the line before. The first is entry 1 after 64 zeros, or the
 * first kept after a cut that a `retention` entry in the trail records (its number and hash).
 * Throws AuditChainError naming the first entry that breaks it.
 */
export function verifyAuditChain(bytes: Buffer): { entries: AuditEntry[]; head?: AuditHead; torn: boolean } {
  const { lines, torn } = splitLines(bytes);
  const entries: AuditEntry[] = [];
  let prev: string | undefined;
  let first = 1;
  for (const [i, line] of lines.entries()) {
    const entry = parseEntry(line, i === 0 ? 1 : first + i);
    if (i === 0) first = Number.isSafeInteger(entry.n) && entry.n > 0 ? entry.n : 1;
    const n = first + i;
    if (entry.n !== n)
      throw new AuditChainError(n, `is numbered ${JSON.stringify(entry.n)}: an entry was removed or moved`);
    if (i > 0 && entry.prev !== prev)
      throw new AuditChainError(
        n,
        `does not follow entry ${n - 1} (its "prev" is not that line's sha256): edited or reordered`,
      );
    entries.push(entry);
    prev = sha256Hex(line);
  }
  if (entries.length) checkStart(entries);
  return { entries, head: entries.length ? { n: first + entries.length - 1, hash: prev! } : undefined, torn };
}

/** The first entry is entry 1, or a retention entry in the trail vouches for the cut before it. */
function checkStart(entries: AuditEntry[]): void {
  const first = entries[0];
  if (first.n === 1) {
    if (first.prev !== GENESIS) throw new AuditChainError(1, 'is the first entry but its "prev" is not 64 zeros');
    return;
  }
  const vouched = entries.some(
    (e) => e.action === 'retention' && e.detail?.through === first.n - 1 && e.detail?.last_cut_sha256 === first.prev,
  );
  if (!vouched)
    throw new AuditChainError(
      first.n,
      `entries 1 to ${first.n - 1} are missing and no retention entry records that they were cut`,
    );
}

/** One line's entry, or undefined when it is damaged (`shipkit audit --verify` names it): for showing, not verifying. */
export function entryOfLine(line: Buffer): AuditEntry | undefined {
  try {
    return parseEntry(line, 0);
  } catch {
    return undefined;
  }
}
