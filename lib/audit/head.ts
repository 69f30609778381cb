// The audit trail's head (its last entry's number and sha256) kept where the trail is not:
// DATA/audit-head.json, outside DATA/audit/ and in every backup, raised after each append, never
// lowered. `shipkit audit --verify` holds the trail against it: a trail that ends before it was
// cut, one whose entry at the kept number differs was rewritten. The whole story: docs/audit.md.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, ensureDir } from '../core/fs.ts';
import { acquireLock } from '../core/lock.ts';
import { messageOf, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { verifyAuditChain, type AuditEntry, type AuditHead } from './chain.ts';

/** Beside DATA/audit/, not in it: the file a backup copies before the trail (lib/backup/snapshot.ts). */
export const AUDIT_HEAD_FILE = 'audit-head.json';

export function auditHeadFileOf(dataDir: string): string {
  return path.join(dataDir, AUDIT_HEAD_FILE);
}

export interface KeptHead extends AuditHead {
  /** When it was kept. */
  at: string;
}

/** The trail does not reach its kept head (cut) or differs at it (rewritten). Exit 2. */
export class AuditHeadError extends ValidationError {
  readonly kind: 'cut' | 'rewritten';
  constructor(kind: 'cut' | 'rewritten', message: string) {
    super(message);
    this.kind = kind;
  }
}

/** A verified trail (chain.ts verifyAuditChain): its entries and head. */
export interface VerifiedTrail {
  entries: AuditEntry[];
  head?: AuditHead;
}

/**
 * The sha256 of entry `n` of a verified trail: each entry's `prev` names the one before, the
 * head the last; the last entry cut by retention is named by the first kept. Undefined for an
 * entry before that (or past the end).
 */
export function hashAt(trail: VerifiedTrail, n: number): string | undefined {
  const { entries, head } = trail;
  if (!head || !entries.length || n > head.n) return undefined;
  if (n === head.n) return head.hash;
  const first = entries[0].n;
  return n >= first - 1 ? entries[n - first + 1].prev : undefined;
}

/** Why `trail` does not hold against the head kept in `where`, as an error, or undefined when it does. */
export function headProblem(trail: VerifiedTrail, kept: AuditHead, where: string): AuditHeadError | undefined {
  const last = trail.head?.n ?? 0;
  if (last < kept.n) {
    const ends = last ? `ends at entry ${last}` : 'is empty';
    return new AuditHeadError(
      'cut',
      `the audit trail was cut: it ${ends}, but its head kept in ${where} is entry ${kept.n}: entries ` +
        `${last + 1} to ${kept.n} were removed from its end`,
    );
  }
  const hash = hashAt(trail, kept.n);
  if (hash !== undefined && hash !== kept.hash)
    return new AuditHeadError(
      'rewritten',
      `the audit trail was rewritten: entry ${kept.n} is not the one whose sha256 ${where} keeps ` +
        `(${kept.hash.slice(0, 16)}…): that entry or one before it was changed and the chain made again after it`,
    );
  return undefined;
}

function parseKept(text: string, file: string): KeptHead {
  let kept: Partial<KeptHead> | undefined;
  try {
    kept = JSON.parse(text);
  } catch {
    kept = undefined;
  }
  if (!kept || !Number.isSafeInteger(kept.n) || kept.n! < 1 || !/^[0-9a-f]{64}$/.test(String(kept.hash)))
    throw new ValidationError(
      `${file} is damaged (not {"n": N, "hash": SHA256}): the audit trail's kept head is unknown; compare it with a backup`,
    );
  return { n: kept.n!, hash: kept.hash!, at: String(kept.at ?? '') };
}

/** DATA/audit-head.json: read, and raised after an append by whoever appended (one process at a time). */
export class HeadFile {
  readonly file: string;
  private readonly log: Logger | undefined;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(file: string, log?: Logger) {
    this.file = file;
    this.log = log;
  }

  /** The kept head, or undefined when none is kept yet; ValidationError when the file is damaged. */
  async read(): Promise<KeptHead | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return parseKept(text, this.file);
  }

  /**
   * Raised to `head`, appended after `previous`, unless a later head is kept (another process
   * appended meanwhile). A kept head the trail no longer holds (`previous` differs at its number,
   * or `hashOf` its entry) is left as it is, for `--verify` to report: raising it would hide a cut
   * or a rewrite. Never throws: the entry is already kept; a head that lags only checks less.
   */
  keep(
    previous: AuditHead | undefined,
    head: AuditHead,
    hashOf: (n: number) => Promise<string | undefined>,
  ): Promise<void> {
    const run = this.turn.then(() => this.raise(previous, head, hashOf));
    this.turn = run.catch(() => undefined);
    return run.catch((error) =>
      this.log?.error(`audit: could not keep the trail's head in ${this.file}: ${messageOf(error)}`),
    );
  }

  private async raise(
    previous: AuditHead | undefined,
    head: AuditHead,
    hashOf: (n: number) => Promise<string | undefined>,
  ): Promise<void> {
    await ensureDir(path.dirname(this.file));
    const lock = await acquireLock(`${this.file}.lock`, { waitMs: 10_000, what: "The audit trail's head" });
    try {
      const kept = await this.read();
      if (kept && kept.n >= head.n) return;
      if (kept) {
        const hash = kept.n === previous?.n ? previous.hash : await hashOf(kept.n);
        if (hash !== undefined && hash !== kept.hash) {
          this.log?.error(
            `audit: the trail does not hold its head kept in ${this.file} (entry ${kept.n}); it is left ` +
              `as it is: run \`shipkit audit --verify\``,
          );
          return;
        }
      }
      const text = `${JSON.stringify({ n: head.n, hash: head.hash, at: new Date().toISOString() })}\n`;
      await atomicWriteFile(this.file, text, { mode: 0o640 });
    } finally {
      await lock.release();
    }
  }
}

/**
 * The trail in `bytes` verified (chain.ts), then held against the head kept in `head` when one is:
 * AuditChainError for a broken chain, AuditHeadError for a trail cut or rewritten whole.
 */
export async function verifyAgainstKept(bytes: Buffer, head: HeadFile | undefined) {
  const trail = verifyAuditChain(bytes);
  const kept = await head?.read();
  const problem = kept && headProblem(trail, kept, head!.file);
  if (problem) throw problem;
  return { ...trail, kept };
}
