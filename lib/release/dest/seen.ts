// What the publisher's side remembers of each DEST it read (docs/release.md "Who reads it"): the
// release key's primary it trusted there and, per app, the longest ledger it verified (n and the
// head's hash), kept in a state folder, so an older ledger put back or a DEST of another key is
// refused as a launchfit host refuses it (the chain check is format/ledger.ts's checkAgainstSeen).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError, messageOf } from '../../core/errors.ts';
import { atomicWriteFile, ensureDir } from '../../core/fs.ts';
import { checkAgainstSeen, type Ledger, type LedgerHead } from '../format/ledger.ts';

/** One DEST as remembered: its pinned primary and each app's longest verified ledger head. */
export interface SeenDest {
  dest: string;
  primary: string;
  /** When the primary was first trusted. */
  pinnedAt: string;
  heads: Record<string, LedgerHead & { at: string }>;
}

/** The primary fingerprint of the armored key in `file` (a secret key too: nothing is unlocked). */
export async function primaryOfKeyFile(file: string): Promise<string> {
  const openpgp = await import('openpgp');
  try {
    return (await openpgp.readKey({ armoredKey: await readFile(file, 'utf8') })).getFingerprint().toLowerCase();
  } catch (error) {
    throw new ValidationError(
      `Cannot read the release key ${file} (${messageOf(error)}); fix publish.key, or pass --keys.`,
    );
  }
}

/** `--state DIR`, else $XDG_CONFIG_HOME/shipkit, else ~/.config/shipkit. */
export function stateFolder(state: string | undefined, env: NodeJS.ProcessEnv, home: string): string {
  if (state) return path.resolve(state);
  const base =
    env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(home, '.config');
  return path.join(base, 'shipkit');
}

/** The file that remembers `where` in `state`: one per DEST, named by its sha256. */
export function seenFile(state: string, where: string): string {
  return path.join(state, 'release-ledgers', `${createHash('sha256').update(where).digest('hex').slice(0, 32)}.json`);
}

/** What `state` remembers of `where`, or undefined on first use. A damaged file is a ValidationError. */
export async function readSeen(state: string, where: string): Promise<SeenDest | undefined> {
  const file = seenFile(state, where);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ValidationError(`Cannot read ${file} (${messageOf(error)}); fix its permissions or pass --state DIR.`);
  }
  try {
    const seen = JSON.parse(text) as SeenDest;
    if (seen.dest === where && typeof seen.primary === 'string' && seen.heads && typeof seen.heads === 'object')
      return seen;
  } catch {
    /* reported below */
  }
  throw new ValidationError(
    `${file} is not what shipkit remembers of ${where}; restore it from a backup, or remove it to trust DEST afresh.`,
  );
}

/** Writes what is remembered of `seen.dest` (atomically: a reader never sees half a file). */
export async function rememberSeen(state: string, seen: SeenDest): Promise<void> {
  const file = seenFile(state, seen.dest);
  await ensureDir(path.dirname(file), 0o700);
  await atomicWriteFile(file, `${JSON.stringify(seen, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Refuses DEST's `ledger` when it is shorter than, or forks from, a head remembered for any app at
 * DEST; the message says what was seen and what DEST holds now.
 */
export function checkSeenLedger(ledger: Ledger, seen: SeenDest | undefined, file: string): void {
  for (const [app, head] of Object.entries(seen?.heads ?? {})) {
    try {
      checkAgainstSeen(ledger, head);
    } catch (error) {
      const entries = (n: number) => `${n} ${n === 1 ? 'entry' : 'entries'}`;
      const now = ledger.head ? `${entries(ledger.head.n)}, head sha256 ${ledger.head.hash}` : 'no entries';
      throw new ValidationError(
        `The ledger at ${seen!.dest} is refused: ${messageOf(error)}. Read before (for ${app}, ` +
          `${head.at}): ${entries(head.n)}, head sha256 ${head.hash}; DEST holds now: ${now}. Put the newer ledger ` +
          `back at DEST; if DEST was replaced on purpose, remove ${file} and read it again.`,
        { cause: error },
      );
    }
  }
}

/** `seen` with `app`'s head moved to `ledger`'s when it is longer, and `primary` pinned. */
export function withLedgerRead(
  seen: SeenDest | undefined,
  where: string,
  app: string,
  primary: string,
  ledger: Ledger,
  now: Date,
): SeenDest {
  const heads = { ...(seen?.heads ?? {}) };
  const head = ledger.head;
  // An app the ledger does not name (a typo) gets no head of its own.
  const named = ledger.entries.some((e) => e.app === app);
  if (head && named && head.n >= (heads[app]?.n ?? 0))
    heads[app] = { n: head.n, hash: head.hash, at: now.toISOString() };
  const pinnedAt = seen && seen.primary === primary ? seen.pinnedAt : now.toISOString();
  return { dest: where, primary, pinnedAt, heads };
}
