// Named status-page users (`ui_users: FILE`): one `NAME:HASH` line each, the password kept as a
// salted scrypt hash, never in clear. A login is checked in constant time, and an unknown name
// costs the same scrypt as a known one, so the answer's timing tells no name apart.
// The whole story: docs/internals.md.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { chmod, open, readFile } from 'node:fs/promises';
import { replaceViaTemp } from '../core/fs.ts';
import { ValidationError, WorkError, messageOf } from '../core/errors.ts';
import { acquireLock } from '../core/lock.ts';
import type { Logger } from '../core/log.ts';
import { userNameProblem } from '../core/names.ts';

/** scrypt's cost as written in each hash (`scrypt$LOGN$R$P$SALT$HASH`): about 32 MB and 0.1 s a login. */
const COST = { logN: 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const HASH_PATTERN = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{22,64})\$([A-Za-z0-9_-]{43})$/;
/** A password is a line of text: longer input is refused before it is hashed. */
export const MAX_PASSWORD_BYTES = 1024;
const LOCK_WAIT_MS = 5_000;

export interface UiUser {
  name: string;
  /** The stored hash: it also keys the user's sessions, so a new password ends the old ones. */
  hash: string;
}

function derive(password: string, salt: Buffer, cost: typeof COST): Promise<Buffer> {
  const options: ScryptOptions = { N: 1 << cost.logN, r: cost.r, p: cost.p, maxmem: 256 * (1 << cost.logN) * cost.r };
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

/** A new salted hash of `password`, as a users file keeps it. */
export async function hashPassword(password: string): Promise<string> {
  checkPassword(password);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, COST);
  return `scrypt$${COST.logN}$${COST.r}$${COST.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

function checkPassword(password: string): void {
  if (!password) throw new ValidationError('The password is empty: give one line of text.');
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
    throw new ValidationError(`The password is longer than ${MAX_PASSWORD_BYTES} bytes.`);
}

/** Why `hash` is not one hashPassword makes (a cost this module would not spend is refused too), or undefined. */
export function hashProblem(hash: string): string | undefined {
  const m = HASH_PATTERN.exec(hash);
  if (!m) return 'is not a hash of hook-server --add-user (scrypt$15$8$1$SALT$HASH)';
  const [logN, r, p] = m.slice(1, 4).map(Number);
  if (logN < 14 || logN > 20 || r < 8 || r > 16 || p < 1 || p > 4) return 'has an scrypt cost out of range';
  return undefined;
}

/** Whether `password` is the one `hash` was made from; constant time over the derived keys. */
export async function passwordMatches(hash: string, password: string): Promise<boolean> {
  const m = HASH_PATTERN.exec(hash);
  if (!m || hashProblem(hash) || !password || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const [logN, r, p] = m.slice(1, 4).map(Number);
  const expected = Buffer.from(m[5], 'base64url');
  const key = await derive(password, Buffer.from(m[4], 'base64url'), { logN, r, p });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** The users of a file's text; throws naming the line for anything that is not one. */
export function parseUiUsers(text: string): Map<string, UiUser> {
  const users = new Map<string, UiUser>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const [name, hash] = colon < 0 ? [line, ''] : [line.slice(0, colon), line.slice(colon + 1)];
    const problem = userNameProblem(name) ?? hashProblem(hash);
    if (problem) throw new Error(`line ${i + 1} ${problem}`);
    if (users.has(name)) throw new Error(`line ${i + 1} names ${name} a second time`);
    users.set(name, { name, hash });
  }
  return users;
}

// Spent for a name the file does not hold, so that a wrong name costs what a wrong password does.
let decoy: Promise<string> | undefined;

export interface UiUsers {
  /** The user now (the file is read again when it changed); undefined for a name it does not hold. */
  get(name: string): UiUser | undefined;
  /** The user when `name` and `password` match the file; the same scrypt work either way. */
  login(name: string, password: string): Promise<UiUser | undefined>;
}

/**
 * The users of `file`, followed while hook-server runs: a line added, changed or removed counts at
 * the next request. A file that cannot be read holds no user (said once in the log) until it can.
 */
export function openUiUsers(file: string, { log }: { log?: Logger } = {}): UiUsers {
  let users = new Map<string, UiUser>();
  let seen: string | undefined;
  function refresh(): void {
    let signature: string;
    try {
      const info = statSync(file);
      signature = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    } catch (error) {
      signature = (error as NodeJS.ErrnoException).code ?? 'error';
    }
    if (signature === seen) return;
    seen = signature;
    try {
      users = parseUiUsers(readFileSync(file, 'utf8'));
    } catch (error) {
      users = new Map();
      log?.warn(
        `cannot read the status-page users file ${file}: ${messageOf(error)}; no named user can log in until it can`,
      );
    }
  }
  return {
    get(name) {
      refresh();
      return users.get(name);
    },
    async login(name, password) {
      const user = this.get(name);
      decoy ??= hashPassword(randomBytes(12).toString('base64url'));
      const matches = await passwordMatches(user?.hash ?? (await decoy), password);
      return user && matches ? user : undefined;
    },
  };
}

/**
 * `hook-server --add-user NAME`: writes NAME's hash of `password` into `file` (made 0600 when new),
 * replacing NAME's line if there is one, atomically under the file's lock. Returns whether NAME was new.
 */
export async function addUiUser(file: string, name: string, password: string): Promise<boolean> {
  const problem = userNameProblem(name);
  if (problem) throw new ValidationError(`Invalid user name ${JSON.stringify(name.slice(0, 70))}: it ${problem}.`);
  const hash = await hashPassword(password);
  const lock = await acquireLock(`${file}.lock`, { waitMs: LOCK_WAIT_MS, what: `The users file ${file}` });
  try {
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw new WorkError(`Cannot read the users file ${file} (${error.code ?? messageOf(error)}).`, { cause: error });
    });
    try {
      parseUiUsers(text);
    } catch (error) {
      throw new ValidationError(
        `The users file ${file}: ${messageOf(error)}. Mend that line first; nothing was written.`,
      );
    }
    const lines = text.split('\n').filter((line) => line !== '');
    const at = lines.findIndex((line) => line.trim().startsWith(`${name}:`));
    if (at >= 0) lines[at] = `${name}:${hash}`;
    else lines.push(`${name}:${hash}`);
    const mode = modeOf(file);
    await replaceViaTemp(
      file,
      async (temp) => {
        const handle = await open(temp, 'wx', 0o600);
        try {
          await handle.writeFile(`${lines.join('\n')}\n`);
        } finally {
          await handle.close();
        }
        await chmod(temp, mode);
      },
      { durable: true },
    );
    return at < 0;
  } finally {
    await lock.release();
  }
}

/** The file's mode, kept when it is replaced; 0600 for a new one. */
function modeOf(file: string): number {
  try {
    return statSync(file).mode & 0o777;
  } catch {
    return 0o600;
  }
}
