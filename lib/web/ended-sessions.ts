// Status-page sessions ended before their cookie expires (POST /logout, `hook-server --end-sessions`),
// kept in DATA/ended-sessions.json, replaced atomically under a lock and re-read by hook-server when
// it changes.
// The whole story: docs/internals.md.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { chmod, chown, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { replaceViaTemp } from '../core/fs.ts';
import { WorkError, messageOf } from '../core/errors.ts';
import { acquireLock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import { SESSION_SECONDS, type Session } from './session.ts';

export const ENDED_SESSIONS_FILE = 'ended-sessions.json';
/** Logged-out sessions remembered one by one (about 60 bytes each in the file). */
export const MAX_ENDED = 10_000;
const LOCK_WAIT_MS = 5_000;

/** What the file holds. Times in ms since the epoch. */
export interface EndedState {
  /** Every session issued before this moment is ended (0: none). */
  before: number;
  /** Sessions ended one by one: id → when it was issued. */
  ended: Map<string, number>;
}

export interface EndedOptions {
  /** How long a session lasts: an entry older than that is dropped (its cookie has expired). */
  sessionSeconds?: number;
  maxEntries?: number;
}

export function endedSessionsFile(dataDir: string): string {
  return path.join(dataDir, ENDED_SESSIONS_FILE);
}

export function emptyEndedState(): EndedState {
  return { before: 0, ended: new Map() };
}

export function isEndedIn(state: EndedState, session: Pick<Session, 'id' | 'issued'>): boolean {
  return session.issued < state.before || state.ended.has(session.id);
}

/** The file's text as a state; throws on anything that is not one this module wrote. */
export function parseEndedSessions(text: string): EndedState {
  const data = JSON.parse(text) as unknown;
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new Error('not a JSON object');
  const { version, endedBefore, ended } = data as Record<string, unknown>;
  if (version !== 1) throw new Error(`unknown version ${JSON.stringify(version)}`);
  if (typeof endedBefore !== 'number' || !Number.isSafeInteger(endedBefore) || endedBefore < 0)
    throw new Error('endedBefore is not a time');
  if (!ended || typeof ended !== 'object' || Array.isArray(ended)) throw new Error('ended is not an object');
  const state: EndedState = { before: endedBefore, ended: new Map() };
  for (const [id, issued] of Object.entries(ended)) {
    if (typeof issued !== 'number' || !Number.isSafeInteger(issued)) throw new Error(`ended.${id} is not a time`);
    state.ended.set(id, issued);
  }
  return state;
}

export function formatEndedSessions(state: EndedState): string {
  const ended = Object.fromEntries([...state.ended].sort((a, b) => a[1] - b[1]));
  return `${JSON.stringify({ version: 1, endedBefore: state.before, ended })}\n`;
}

/**
 * Drops what no longer matters: entries whose cookie has expired, or that the mark already ends.
 * Past `maxEntries`, the oldest go too, and the mark moves past them so that they stay ended.
 */
export function pruneEnded(
  state: EndedState,
  now: number,
  { sessionSeconds = SESSION_SECONDS, maxEntries = MAX_ENDED }: EndedOptions = {},
): EndedState {
  const sessionMs = sessionSeconds * 1000;
  let before = state.before;
  let kept = [...state.ended]
    .filter(([, issued]) => issued >= before && issued + sessionMs > now)
    .sort((a, b) => a[1] - b[1]);
  if (kept.length > maxEntries) {
    const dropped = kept.slice(0, kept.length - maxEntries);
    before = Math.max(before, dropped.at(-1)![1] + 1);
    kept = kept.filter(([, issued]) => issued >= before);
  }
  return { before, ended: new Map(kept) };
}

/** The state on disk: empty when there is no file; throws when it cannot be read or is not one. */
export async function readEndedSessions(file: string): Promise<EndedState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyEndedState();
    throw error;
  }
  return parseEndedSessions(text);
}

export interface EndedUpdate {
  state: EndedState;
  /** Why the file on disk was not used (unreadable, or not this module's): the update started from "all ended until now" instead. */
  replaced?: string;
}

/**
 * Read, change, prune and write the file back, under its lock. A file that cannot be read is
 * replaced by one that ends every session issued until now: it refused them all already (see
 * `openEndedSessions`), and nothing it held is lost that way.
 */
export async function updateEndedSessions(
  file: string,
  change: (state: EndedState) => void,
  { now = new Date(), ...options }: EndedOptions & { now?: Date } = {},
): Promise<EndedUpdate> {
  const lock = await acquireLock(`${file}.lock`, { waitMs: LOCK_WAIT_MS, what: `The ended-sessions file ${file}` });
  try {
    let state: EndedState;
    let replaced: string | undefined;
    try {
      state = await readEndedSessions(file);
    } catch (error) {
      replaced = messageOf(error);
      // Ends every session issued until now, this millisecond included (the mark is exclusive).
      state = { before: now.getTime() + 1, ended: new Map() };
    }
    change(state);
    state = pruneEnded(state, now.getTime(), options);
    await writeEndedSessions(file, state);
    return { state, replaced };
  } finally {
    await lock.release();
  }
}

/** `hook-server --end-sessions`: every session issued until `now` is ended, in the file of DATA. */
export async function endAllSessions(
  dataDir: string,
  { now = new Date(), ...options }: EndedOptions & { now?: Date } = {},
): Promise<EndedUpdate & { file: string }> {
  const file = endedSessionsFile(dataDir);
  if (
    !(await stat(dataDir).then(
      (info) => info.isDirectory(),
      () => false,
    ))
  ) {
    throw new WorkError(
      `The data folder ${dataDir} does not exist: hook-server has not run with this config. Pass the --config hook-server runs with.`,
    );
  }
  try {
    const update = await updateEndedSessions(
      file,
      (state) => {
        state.before = Math.max(state.before, now.getTime() + 1);
      },
      { now, ...options },
    );
    return { ...update, file };
  } catch (error) {
    if (error instanceof WorkError) throw error;
    throw new WorkError(
      `Could not write ${file} (${messageOf(error)}); run this as the user hook-server runs as (the owner of ${dataDir}), or as root.`,
      { cause: error },
    );
  }
}

/**
 * Written as the folder's owner when root writes it (the command run by root for a hook-server
 * that runs as its own user, which must still read and replace it), 0644: it holds no secret,
 * only ids of sessions that no longer open anything, and times.
 */
async function writeEndedSessions(file: string, state: EndedState): Promise<void> {
  const owner = process.getuid?.() === 0 ? await stat(path.dirname(file)) : undefined;
  await replaceViaTemp(
    file,
    async (temp) => {
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(formatEndedSessions(state));
      } finally {
        await handle.close();
      }
      await chmod(temp, 0o644);
      if (owner && owner.uid !== 0) await chown(temp, owner.uid, owner.gid);
    },
    { durable: true },
  );
}

export interface EndedSessions {
  /**
   * Whether this session was ended: logged out, or issued before an end-all mark. Looks at the
   * file each time (a stat; read again only when it changed). A file that cannot be read ends
   * every session until it can (the bearer token still works).
   */
  isEnded(session: Pick<Session, 'id' | 'issued'>): boolean;
  /** End one session; resolves once it is on disk (refused by this process at once either way). */
  end(session: Pick<Session, 'id' | 'issued'>, now?: Date): Promise<void>;
}

/** The ended sessions of DATA; without `dataDir`, of this process only (kept in memory). */
export function openEndedSessions({
  dataDir,
  log,
  now = () => new Date(),
  ...options
}: EndedOptions & { dataDir?: string; log?: Logger; now?: () => Date } = {}): EndedSessions {
  const file = dataDir ? endedSessionsFile(dataDir) : undefined;
  let onDisk: EndedState | 'unreadable' = emptyEndedState();
  let seen: string | undefined;
  // Ended here: refused at once, while the write is under way, and even if it fails.
  let endedHere = emptyEndedState();
  let writes: Promise<unknown> = Promise.resolve();

  const unreadable = (why: string) => {
    onDisk = 'unreadable';
    log?.warn(
      `cannot read ${file}: ${why}; every status-page session is refused until it can be read (the bearer ` +
        `token still works). Run hook-server --end-sessions to write a new one (it ends every session), or fix the file`,
    );
  };

  /** Read the file again when it is not the one read last (rename gives a new inode; any write a new mtime). */
  function refresh(): void {
    if (!file) return;
    let signature: string;
    try {
      const info = statSync(file);
      signature = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      if (seen === code) return;
      seen = code;
      if (code === 'ENOENT') onDisk = emptyEndedState();
      else unreadable(messageOf(error));
      return;
    }
    if (signature === seen) return;
    seen = signature;
    try {
      onDisk = parseEndedSessions(readFileSync(file, 'utf8'));
    } catch (error) {
      unreadable(messageOf(error));
    }
  }

  return {
    isEnded(session) {
      refresh();
      return onDisk === 'unreadable' || isEndedIn(onDisk, session) || isEndedIn(endedHere, session);
    },
    async end(session, at = now()) {
      endedHere.ended.set(session.id, session.issued);
      endedHere = pruneEnded(endedHere, at.getTime(), options);
      if (!file) return;
      const write = writes.then(() =>
        updateEndedSessions(
          file,
          (state) => {
            state.ended.set(session.id, session.issued);
          },
          { now: at, ...options },
        ),
      );
      writes = write.catch(() => undefined);
      const { replaced } = await write;
      if (replaced)
        log?.warn(`${file} could not be read (${replaced}); replaced by one that ends every session issued until now`);
    },
  };
}

/**
 * A new read token in `file` (`token: file:PATH`), replacing the old one atomically with the old
 * file's mode and owner: a running hook-server follows the file, so the old token, and every
 * session made under it, stops working within a second. Returns the new token.
 */
export async function replaceTokenFile(file: string): Promise<string> {
  const old = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new WorkError(`Cannot replace the token file ${file} (${error.code ?? messageOf(error)}).`, { cause: error });
  });
  const token = randomBytes(32).toString('hex');
  try {
    await replaceViaTemp(
      file,
      async (temp) => {
        const handle = await open(temp, 'wx', 0o600);
        try {
          await handle.writeFile(`${token}\n`);
        } finally {
          await handle.close();
        }
        await chmod(temp, old.mode & 0o777);
        if (process.getuid?.() === 0) await chown(temp, old.uid, old.gid);
      },
      { durable: true },
    );
  } catch (error) {
    throw new WorkError(`Could not write ${file} (${messageOf(error)}); run this as its owner or as root.`, {
      cause: error,
    });
  }
  return token;
}
