// The one secret reader. A secret is given as `env:NAME`, `file:PATH` or a literal (docs/design.md#conventions);
// a secret file is read the same way wherever it is named (`--secret-file`, a passphrase file,
// `file:` in a config). Errors say where the secret was configured and never hold its value.
import { readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, UsageError } from './errors.ts';

// A secret is a line; more than this before the first line break is not a secret file.
const MAX_SECRET_BYTES = 64 * 1024;

export interface SecretFileOptions {
  /** Where it was configured, for errors (`shipkit.yml:4: secret`, `--secret-file`). */
  where?: string;
  /** What the file is called in errors (default `secret file`). */
  what?: string;
  /**
   * A passphrase is taken as written, as gpg's --passphrase-file does: surrounding spaces are
   * kept and it may be empty. Other secrets (tokens, HMAC keys) lose surrounding white space,
   * which an editor may have added, and must not be empty.
   */
  passphrase?: boolean;
}

/** The first line of a secret file, without its line ending (see `passphrase` for spaces). */
export async function readSecretFile(
  file: string,
  { where, what = 'secret file', passphrase = false }: SecretFileOptions = {},
): Promise<string> {
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(MAX_SECRET_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, MAX_SECRET_BYTES, 0);
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    const hint = `(${code}); check the path and its permissions.`;
    throw new ConfigError(
      where ? `${where}: cannot read ${what} ${file} ${hint}` : `Cannot read the ${what} ${file} ${hint}`,
      { cause: error },
    );
  }
  const text = bytes.toString('utf8');
  const end = text.indexOf('\n');
  if (end === -1 && bytes.length === MAX_SECRET_BYTES) {
    const sentence = `holds no line break in its first ${MAX_SECRET_BYTES / 1024} KB; is it the right file?`;
    throw new ConfigError(where ? `${where}: ${what} ${file} ${sentence}` : `The ${what} ${file} ${sentence}`);
  }
  const line = (end === -1 ? text : text.slice(0, end)).replace(/\r$/, '');
  const secret = passphrase ? line : line.trim();
  if (!secret && !passphrase)
    throw new ConfigError(where ? `${where}: ${what} ${file} is empty.` : `The ${what} ${file} is empty.`);
  return secret;
}

export interface SecretOptions {
  env?: NodeJS.ProcessEnv;
  /** What a relative `file:` path is relative to (the config file's folder). */
  baseDir?: string;
  /** Used in error messages: where the value came from (e.g. `shipkit.yml:4: secret`). */
  where?: string;
}

/** `env:NAME` → $NAME, `file:PATH` → the file's first line (trimmed), anything else is the literal. */
export async function resolveSecret(
  value: string,
  { env = process.env, baseDir = process.cwd(), where = 'secret' }: SecretOptions = {},
): Promise<string> {
  if (value.startsWith('env:')) {
    const name = value.slice(4);
    const secret = env[name];
    if (!secret) throw new ConfigError(`${where}: environment variable ${name} is not set or empty.`);
    return secret;
  }
  if (value.startsWith('file:')) return readSecretFile(path.resolve(baseDir, value.slice(5)), { where });
  if (!value) throw new ConfigError(`${where}: the secret is empty.`);
  return value;
}

/**
 * A `file:` secret that a running server follows: read again when the file's size or mtime
 * changed, looked at no more than once a second. A file that became unreadable or empty keeps
 * the last good value (and the server keeps working) until it is readable again.
 */
export class FollowedSecretFile {
  private value: string;
  private readonly file: string;
  private seen = '';
  private lookedAt = 0;
  private reading = false;

  constructor(file: string, value: string) {
    this.file = file;
    this.value = value;
    this.seen = stamp(file);
  }

  /** The value now; a change on disk shows within about a second. */
  current(now = Date.now()): string {
    if (now - this.lookedAt >= 1000 && !this.reading) {
      this.lookedAt = now;
      const seen = stamp(this.file);
      if (seen !== this.seen && seen !== '') {
        this.reading = true;
        // Read synchronously: the next request must not be judged against the old token.
        try {
          const text = readFileSync(this.file, 'utf8').split(/\r?\n/)[0].trim();
          if (text) {
            this.value = text;
            this.seen = seen;
          }
        } catch {
          /* keep the last good value */
        } finally {
          this.reading = false;
        }
      }
    }
    return this.value;
  }
}

function stamp(file: string): string {
  try {
    const s = statSync(file);
    return `${s.size}:${s.mtimeMs}:${s.ino}`;
  } catch {
    return '';
  }
}

/**
 * A secret named by a command-line flag (`--fleet-secret`): env:NAME or file:PATH only, never the
 * secret itself, which every user of the machine would see in ps.
 */
export async function resolveSecretFlag(value: string, flag: string, options: SecretOptions = {}): Promise<string> {
  if (!/^(file|env):./.test(value))
    throw new UsageError(`${flag} takes file:PATH or env:NAME (a secret on the command line would show in ps).`);
  return resolveSecret(value, { where: flag, ...options });
}
